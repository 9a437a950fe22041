/*
 * stmtid.c
 *		A statement's identity when PostgreSQL computes no query identifier.
 *
 * Per-statement latency and N+1 detection key statements by queryid.
 * PostgreSQL computes one (by jumbling the analysed query tree) only when
 * compute_query_id is on, or auto and a module such as pg_stat_statements
 * asked for it; that costs about 2,800 instructions on a primary-key
 * SELECT, 2.7% of all the server does for it, which alone would exceed the
 * tracking budget.  So agentmem uses PostgreSQL's identifier whenever there
 * is one (and then joins with pg_stat_statements) and otherwise
 * fingerprints the statement's text in one pass: constants (numbers,
 * string and dollar-quoted literals) become '?', comments go, white space
 * counts only between two words and unquoted letters are folded to lower
 * case.  Statements that differ only in their constants, the N+1 case,
 * share a fingerprint, as they share a query identifier; unlike the
 * jumble, two spellings of one query (say, with and without a schema
 * name) do not.
 */
#include "postgres.h"

#include "stats_internal.h"

#define FNV_OFFSET	UINT64CONST(0xcbf29ce484222325)
#define FNV_PRIME	UINT64CONST(0x100000001b3)

static inline uint64
mix(uint64 h, unsigned char c)
{
	return (h ^ c) * FNV_PRIME;
}

/*
 * An identifier or keyword, eight bytes at a time, letters folded to lower
 * case by setting bit 0x20 (which maps '_' and some non-ASCII bytes onto
 * others too: harmless for telling statements apart).
 */
static inline uint64
mix_word(uint64 h, const unsigned char *p, int len)
{
	for (; len > 0; p += 8, len -= 8)
	{
		uint64		w = 0;

		memcpy(&w, p, Min(len, 8));
		h = (h ^ (w | UINT64CONST(0x2020202020202020))) * FNV_PRIME;
		h ^= h >> 29;
	}
	return h;
}

static inline bool
is_ident_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c == '_' || c == '$' || c >= 0x80;
}

static inline bool
is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Skip a quoted literal starting at p[i] == quote; returns the index after it. */
static int
skip_quoted(const char *p, int i, int n, char quote, bool backslashes)
{
	for (i++; i < n; i++)
	{
		if (backslashes && p[i] == '\\')
			i++;
		else if (p[i] == quote)
		{
			if (i + 1 < n && p[i + 1] == quote)
				i++;			/* doubled quote */
			else
				return i + 1;
		}
	}
	return n;
}

/* A dollar quote's tag ends at the next '$'; -1 if p[i] starts none. */
static int
dollar_tag_end(const char *p, int i, int n)
{
	int			j = i + 1;

	if (j < n && p[j] >= '0' && p[j] <= '9')
		return -1;				/* a parameter, $1 */
	while (j < n && p[j] != '$')
	{
		if (!is_ident_char((unsigned char) p[j]))
			return -1;
		j++;
	}
	return j < n ? j : -1;
}

/* Skip a dollar-quoted literal whose opening tag is p[i .. end]. */
static int
skip_dollar_quoted(const char *p, int i, int end, int n)
{
	int			taglen = end - i + 1;

	for (int j = end + 1; j + taglen <= n; j++)
	{
		if (p[j] == '$' && memcmp(p + j, p + i, taglen) == 0)
			return j + taglen;
	}
	return n;
}

static int
skip_comment(const char *p, int i, int n)
{
	if (p[i] == '-')
	{
		while (i < n && p[i] != '\n')
			i++;
		return i;
	}
	/* block comments nest in PostgreSQL */
	for (int depth = 0; i < n; i++)
	{
		if (p[i] == '/' && i + 1 < n && p[i + 1] == '*')
			depth++, i++;
		else if (p[i] == '*' && i + 1 < n && p[i + 1] == '/')
		{
			i++;
			if (--depth == 0)
				return i + 1;
		}
	}
	return n;
}

/* Skip a numeric constant: digits, a fraction, an exponent. */
static int
skip_number(const char *p, int i, int n)
{
	while (i < n && ((p[i] >= '0' && p[i] <= '9') || p[i] == '.' || p[i] == '_'))
		i++;
	if (i < n && (p[i] == 'e' || p[i] == 'E'))
	{
		i++;
		if (i < n && (p[i] == '+' || p[i] == '-'))
			i++;
		while (i < n && p[i] >= '0' && p[i] <= '9')
			i++;
	}
	return i;
}

/* Character classes, so the common characters take one table lookup. */
enum
{
	CL_PUNCT = 0,				/* operators and the like: hashed as they are */
	CL_SPACE,
	CL_LETTER,					/* starts an identifier or keyword */
	CL_DIGIT,
	CL_SPECIAL					/* ' " $ - / . : look closer */
};

static uint8 char_class[256];
static bool ident_char[256];	/* continues an identifier */

static void
init_tables(void)
{
	for (int c = 0; c < 256; c++)
	{
		ident_char[c] = is_ident_char(c);
		if (is_space(c))
			char_class[c] = CL_SPACE;
		else if (c >= '0' && c <= '9')
			char_class[c] = CL_DIGIT;
		else if (c == '\'' || c == '"' || c == '$' || c == '-' || c == '/' || c == '.')
			char_class[c] = CL_SPECIAL;
		else if (is_ident_char(c))
			char_class[c] = CL_LETTER;
		else
			char_class[c] = CL_PUNCT;
	}
}

/*
 * Fingerprint of the statement at src[loc .. loc + len) (len <= 0: to the
 * end; loc < 0: all of src).  Never 0, which means "no identifier".
 */
uint64
StatementFingerprint(const char *src, int loc, int len)
{
	static bool tables_ready = false;
	uint64		h = FNV_OFFSET;
	const unsigned char *p;
	int			n;
	bool		space = false;	/* white space or a comment was skipped */
	bool		word = false;	/* the last thing hashed was a word */

	if (!tables_ready)
	{
		init_tables();
		tables_ready = true;
	}
	if (src == NULL)
		return 1;
	/*
	 * PostgreSQL's statement locations lie within the query string; reading
	 * only the statement keeps a string of many statements linear.
	 */
	if (loc > 0)
		src += loc;
	n = len > 0 ? strnlen(src, len) : strlen(src);
	p = (const unsigned char *) src;
	while (n > 0 && (is_space(p[n - 1]) || p[n - 1] == ';'))
		n--;					/* trailing semicolons and spaces */

	for (int i = 0; i < n;)
	{
		unsigned char c = p[i];
		int			end;

		switch (char_class[c])
		{
			case CL_SPACE:
				space = true;
				i++;
				continue;
			case CL_PUNCT:
				h = mix(h, c);
				word = false;
				i++;
				continue;
			case CL_LETTER:
				/* a keyword or identifier, folded to lower case */
				if (space && word)
					h = mix(h, ' ');
				space = false;
				end = i;
				do
					end++;
				while (end < n && ident_char[p[end]]);
				h = mix_word(h, p + i, end - i);
				i = end;
				word = true;
				continue;
			case CL_DIGIT:
				i = skip_number((const char *) p, i, n);
				break;			/* a constant */
			default:
				/* ' " $ - / . */
				if ((c == '-' && i + 1 < n && p[i + 1] == '-') ||
					(c == '/' && i + 1 < n && p[i + 1] == '*'))
				{
					i = skip_comment((const char *) p, i, n);
					space = true;
					continue;
				}
				if (c == '\'')
				{
					/* E'...' (the E right before it, alone) takes backslash escapes */
					bool		escapes = i > 0 && (p[i - 1] == 'e' || p[i - 1] == 'E') &&
						(i < 2 || !is_ident_char(p[i - 2]));

					i = skip_quoted((const char *) p, i, n, '\'', escapes);
					break;		/* a constant */
				}
				if (c == '$' && (end = dollar_tag_end((const char *) p, i, n)) >= 0)
				{
					i = skip_dollar_quoted((const char *) p, i, end, n);
					break;		/* a constant */
				}
				if (c == '.' && i + 1 < n && p[i + 1] >= '0' && p[i + 1] <= '9')
				{
					i = skip_number((const char *) p, i, n);
					break;		/* a constant */
				}
				if (c == '"')
				{
					/* a quoted identifier keeps its case */
					end = skip_quoted((const char *) p, i, n, '"', false);
					if (space && word)
						h = mix(h, ' ');
					space = false;
					for (; i < end; i++)
						h = mix(h, p[i]);
					word = true;
					continue;
				}
				/* $1, or - / . as operators */
				if (c == '$')
				{
					if (space && word)
						h = mix(h, ' ');
					space = false;
					do
						h = mix(h, p[i++]);
					while (i < n && ident_char[p[i]]);
					word = true;
					continue;
				}
				h = mix(h, c);
				word = false;
				i++;
				continue;
		}
		/* a constant ends here: hash it as '?', a word of its own */
		if (space && word)
			h = mix(h, ' ');
		space = false;
		h = mix(h, '?');
		word = true;
	}
	return h != 0 ? h : 1;
}
