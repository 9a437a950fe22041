/*
 * fvec_dump.c
 *		Print vectors of a .fvec file (and their words) as text for psql.
 *
 * Used by bench/run_pgbench.sh and bench/demo.sh to load the GloVe data
 * into tables without any client library beyond psql:
 *
 *	fvec_dump [--copy | --sql-arrays B] [-n N] [--offset O] FILE.fvec [FILE.words]
 *
 * Writes one line per vector: "id<TAB>word<TAB>[v1,v2,...]" where id is the
 * 0-based position in the file (so it matches the ground-truth files) and
 * the vector uses pgvector's text form with the fewest digits that read
 * back as the exact same float.  Without a words file the word column is left out.
 *
 * --copy escapes backslashes, tabs and newlines in words the way COPY's
 * text format wants them (GloVe has a word that is a single backslash);
 * without it words are printed raw and a word containing a tab or newline
 * is an error, so the output is safe to split on tabs and lines.
 *
 * --sql-arrays B groups B vectors per line instead, as SQL literals ready to
 * be cast to text[] and vector[] (what a client sends to agentmem.remember):
 * "first_id<TAB>count<TAB>'{"w1","w2",...}'<TAB>'{"[...]","[...]",...}'".
 * Array elements are double-quoted with backslash and double quote escaped,
 * and single quotes doubled for the SQL literal (standard_conforming_strings
 * on, PostgreSQL's default).  Needs the words file.
 */
#include "fvec.h"

/* Shortest "%.Ng" that reads back as exactly the same float. */
static void
put_float(float x, int first)
{
	char		buf[32];

	for (int prec = 6; prec <= 9; prec++)
	{
		snprintf(buf, sizeof(buf), "%.*g", prec, x);
		if (strtof(buf, NULL) == x)
			break;
	}
	if (!first)
		putchar(',');
	fputs(buf, stdout);
}

static void
usage(void)
{
	fprintf(stderr, "usage: fvec_dump [--copy | --sql-arrays B] [-n N] [--offset O] FILE.fvec [FILE.words]\n");
	exit(2);
}

/* One element of a quoted SQL array literal: "word" with escapes. */
static void
put_array_word(const char *w)
{
	putchar('"');
	for (const char *p = w; *p; p++)
	{
		if (*p == '"' || *p == '\\')
			putchar('\\');
		if (*p == '\'')
			putchar('\'');
		putchar(*p);
	}
	putchar('"');
}

static void
put_vector(const float *x, uint32_t dim)
{
	putchar('[');
	for (uint32_t d = 0; d < dim; d++)
		put_float(x[d], d == 0);
	putchar(']');
}

/* --sql-arrays: lines of B words and B vectors as SQL array literals. */
static void
put_batches(const float *v, uint32_t dim, char **words, uint32_t from,
			uint32_t to, long batch)
{
	for (uint32_t lo = from; lo < to; lo += batch)
	{
		uint32_t	hi = to - lo < batch ? to : lo + batch;

		printf("%u\t%u\t'{", lo, hi - lo);
		for (uint32_t i = lo; i < hi; i++)
		{
			if (i > lo)
				putchar(',');
			put_array_word(words[i]);
		}
		fputs("}'\t'{", stdout);
		for (uint32_t i = lo; i < hi; i++)
		{
			fputs(i > lo ? ",\"" : "\"", stdout);
			put_vector(v + (size_t) i * dim, dim);
			putchar('"');
		}
		fputs("}'\n", stdout);
	}
}

static void
put_word(const char *w, int copy)
{
	for (const char *p = w; *p; p++)
	{
		if (*p == '\t' || *p == '\n' || *p == '\r')
		{
			if (!copy)
				fv_die("word contains a tab or newline: %s", w);
			fputs(*p == '\t' ? "\\t" : *p == '\n' ? "\\n" : "\\r", stdout);
		}
		else if (*p == '\\' && copy)
			fputs("\\\\", stdout);
		else
			putchar(*p);
	}
}

int
main(int argc, char **argv)
{
	const char *fvec = NULL,
			   *words = NULL;
	long		limit = 0,
				offset = 0,
				batch = 0;
	char	  **wordv = NULL;
	int			copy = 0;
	uint32_t	n,
				dim;
	float	   *v;
	FILE	   *wf = NULL;
	char		line[4096];

	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--copy") == 0)
			copy = 1;
		else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
			limit = atol(argv[++i]);
		else if (strcmp(argv[i], "--offset") == 0 && i + 1 < argc)
			offset = atol(argv[++i]);
		else if (strcmp(argv[i], "--sql-arrays") == 0 && i + 1 < argc)
		{
			batch = atol(argv[++i]);
			if (batch <= 0)
				usage();
		}
		else if (argv[i][0] == '-')
			usage();
		else if (!fvec)
			fvec = argv[i];
		else if (!words)
			words = argv[i];
		else
			usage();
	}
	if (!fvec || limit < 0 || offset < 0 || (batch && (copy || !words)))
		usage();

	/* read offset + limit vectors (0 = all), then skip the first offset */
	v = fvec_read(fvec, limit ? (uint32_t) (offset + limit) : 0, &n, &dim);
	if (words && (wf = fopen(words, "r")) == NULL)
		fv_die("cannot open %s", words);
	if (batch)
		wordv = fv_xmalloc(sizeof(char *) * n);

	for (uint32_t i = 0; i < n; i++)
	{
		const float *x = v + (size_t) i * dim;

		if (wf)
		{
			size_t		len;

			if (!fgets(line, sizeof(line), wf))
				fv_die("%s has fewer words than vectors", words);
			len = strlen(line);
			if (len && line[len - 1] == '\n')
				line[--len] = '\0';
		}
		if ((long) i < offset)
			continue;
		if (batch)
		{
			if (strchr(line, '\t') || strchr(line, '\r'))
				fv_die("word contains a tab or newline: %s", line);
			wordv[i] = strdup(line);
			continue;
		}
		printf("%u\t", i);
		if (wf)
		{
			put_word(line, copy);
			putchar('\t');
		}
		put_vector(x, dim);
		putchar('\n');
	}
	if (batch && (long) n > offset)
		put_batches(v, dim, wordv, (uint32_t) offset, n, batch);
	if (fflush(stdout) != 0 || ferror(stdout))
		fv_die("write error on %s", "stdout");
	free(v);
	return 0;
}
