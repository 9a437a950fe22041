/*
 * membench.c
 *		Memory-space and embedding-cache benchmark over a real connection.
 *
 * Measures, over TCP with one client, the three speed targets of issue 4:
 *
 *	remember	1,000 rows in one agentmem.remember call against 1,000
 *				single-row INSERT round trips (prepared, autocommit) into a
 *				twin space: same data, same index, same starting size;
 *	recall		agentmem.recall_batch of 100 queries against 100
 *				agentmem.recall round trips (prepared), checking that the
 *				results are identical; with and without a filter; and, for
 *				reference, 100 round trips of the plain SQL query;
 *	cache		agentmem.cache_get and cache_misses of 1,000 texts in one call
 *				with 100,000 entries cached (results in text and binary).
 *
 * Every figure is the median of --reps runs after one warm-up run.  Data:
 * GloVe 100-d (bench/fetch_glove.sh) if present, else random vectors.
 * Connection settings come from the usual PG* environment variables.
 *
 *	membench [--data DIR] [--base N] [--remember-base N] [--reps R]
 *			 [--cache-entries N] [--only recall|remember|cache]
 */
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

#include "libpq-fe.h"

#include "fvec.h"

#define NREMEMBER 1000
#define NQUERIES 100
#define NLOOKUP 1000
#define K 10
#define MAX_REPS 99

typedef struct Options
{
	const char *data;
	int			base;			/* rows of the recall space */
	int			remember_base;	/* rows already in the remember spaces */
	int			reps;
	int			cache_entries;
	const char *only;			/* recall, remember or cache; NULL: all */
} Options;

static PGconn *conn;
static float *vectors;			/* base vectors */
static char **words;
static uint32_t nvectors,
			dim;
static float *queries;
static uint32_t nqueries;

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void
die(const char *fmt, ...)
{
	va_list		ap;

	va_start(ap, fmt);
	fprintf(stderr, "membench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static PGresult *
check(PGresult *r, const char *what)
{
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		die("%s: %s", what, PQerrorMessage(conn));
	return r;
}

static void
exec(const char *fmt, ...)
{
	char		sql[8192];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	PQclear(check(PQexec(conn, sql), sql));
}

static char *
query_value(const char *sql)
{
	PGresult   *r = check(PQexec(conn, sql), sql);
	char	   *v = strdup(PQgetvalue(r, 0, 0));

	PQclear(r);
	return v;
}

/* ---------------------------------------------------------------- text building */

typedef struct Buf
{
	char	   *data;
	size_t		len,
				cap;
} Buf;

static void
buf_reserve(Buf *b, size_t more)
{
	if (b->len + more + 1 > b->cap)
	{
		b->cap = (b->len + more + 1) * 2;
		b->data = realloc(b->data, b->cap);
		if (b->data == NULL)
			die("out of memory");
	}
}

static void
buf_printf(Buf *b, const char *fmt, ...)
{
	va_list		ap;
	int			n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	buf_reserve(b, n);
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, n + 1, fmt, ap);
	va_end(ap);
	b->len += n;
}

static void
buf_vector(Buf *b, const float *v)
{
	buf_printf(b, "[");
	for (uint32_t i = 0; i < dim; i++)
		buf_printf(b, i ? ",%.9g" : "%.9g", v[i]);
	buf_printf(b, "]");
}

/* An element of an array literal: double-quoted, " and \ escaped. */
static void
buf_array_elem(Buf *b, const char *s)
{
	size_t		n = strlen(s);

	buf_reserve(b, 2 * n + 2);
	b->data[b->len++] = '"';
	for (; *s; s++)
	{
		if (*s == '"' || *s == '\\')
			b->data[b->len++] = '\\';
		b->data[b->len++] = *s;
	}
	b->data[b->len++] = '"';
	b->data[b->len] = '\0';
}

static char *
vector_text(const float *v)
{
	Buf			b = {0};

	buf_vector(&b, v);
	return b.data;
}

static char *
metadata_text(int i)
{
	char	   *s = malloc(32);

	snprintf(s, 32, "{\"tag\": %d}", i % 10);
	return s;
}

/* Array literals of words, vectors and metadata of rows [from, from+n). */
static void
row_arrays(int from, int n, char **texts, char **vecs, char **meta)
{
	Buf			t = {0},
				v = {0},
				m = {0};

	buf_printf(&t, "{");
	buf_printf(&v, "{");
	buf_printf(&m, "{");
	for (int i = 0; i < n; i++)
	{
		Buf			e = {0};

		if (i)
		{
			buf_printf(&t, ",");
			buf_printf(&v, ",");
			buf_printf(&m, ",");
		}
		buf_array_elem(&t, words[from + i]);
		buf_vector(&e, vectors + (size_t) (from + i) * dim);
		buf_array_elem(&v, e.data);
		free(e.data);
		e.data = metadata_text(from + i);
		buf_array_elem(&m, e.data);
		free(e.data);
	}
	buf_printf(&t, "}");
	buf_printf(&v, "}");
	buf_printf(&m, "}");
	*texts = t.data;
	*vecs = v.data;
	if (meta)
		*meta = m.data;
	else
		free(m.data);
}

/* ---------------------------------------------------------------- data */

static void
load_data(const Options *o)
{
	char		path[4096];
	uint32_t	qdim;

	snprintf(path, sizeof(path), "%s/base.fvec", o->data);
	if (access(path, R_OK) == 0)
	{
		FILE	   *f;
		char		line[1024];
		uint32_t	i = 0;

		vectors = fvec_read(path, 0, &nvectors, &dim);
		snprintf(path, sizeof(path), "%s/queries.fvec", o->data);
		queries = fvec_read(path, NQUERIES, &nqueries, &qdim);
		snprintf(path, sizeof(path), "%s/base.words", o->data);
		f = fopen(path, "r");
		if (f == NULL)
			die("cannot open %s", path);
		words = malloc(sizeof(char *) * nvectors);
		while (i < nvectors && fgets(line, sizeof(line), f))
		{
			line[strcspn(line, "\n")] = '\0';
			words[i++] = strdup(line);
		}
		fclose(f);
		if (i != nvectors)
			die("%s has fewer words than vectors", path);
		printf("data: GloVe 100-d from %s (%u vectors, %u queries)\n", o->data, nvectors, nqueries);
	}
	else
	{
		uint64_t	s = 42;

		dim = 100;
		nvectors = o->base + o->cache_entries + 2 * NLOOKUP + 4 * NREMEMBER + o->remember_base;
		nqueries = NQUERIES;
		vectors = malloc(sizeof(float) * nvectors * dim);
		queries = malloc(sizeof(float) * nqueries * dim);
		words = malloc(sizeof(char *) * nvectors);
		for (size_t i = 0; i < (size_t) nvectors * dim + (size_t) nqueries * dim; i++)
		{
			s = s * 6364136223846793005ULL + 1442695040888963407ULL;
			float		x = (float) ((s >> 33) % 20001) / 10000.0f - 1.0f;

			if (i < (size_t) nvectors * dim)
				vectors[i] = x;
			else
				queries[i - (size_t) nvectors * dim] = x;
		}
		for (uint32_t i = 0; i < nvectors; i++)
		{
			words[i] = malloc(24);
			snprintf(words[i], 24, "w%u", i);
		}
		printf("data: %u random 100-d vectors (no GloVe data in %s)\n", nvectors, o->data);
	}
	if ((int64_t) nvectors < (int64_t) o->base + 4 * NREMEMBER + o->remember_base + 2 * NLOOKUP)
		die("not enough vectors for --base %d", o->base);
}

/* Load rows [from, from+n) into a space's table with COPY, index rebuilt. */
static void
load_space(const char *space, int from, int n)
{
	char		sql[1024];
	char	   *table,
			   *indexdef;
	PGresult   *r;

	snprintf(sql, sizeof(sql), "SELECT agentmem.space_table('%s')::text", space);
	table = query_value(sql);
	snprintf(sql, sizeof(sql),
			 "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = '%s'::regclass"
			 " AND NOT indisprimary", table);
	indexdef = query_value(sql);
	exec("DROP INDEX %s_embedding", table);
	snprintf(sql, sizeof(sql), "COPY %s (content, embedding, metadata) FROM STDIN", table);
	r = PQexec(conn, sql);
	if (PQresultStatus(r) != PGRES_COPY_IN)
		die("COPY: %s", PQerrorMessage(conn));
	PQclear(r);
	for (int i = from; i < from + n; i++)
	{
		Buf			b = {0};

		/* GloVe words have no tab, newline or backslash; escape anyway */
		for (const char *c = words[i]; *c; c++)
			buf_printf(&b, (*c == '\\' || *c == '\t' || *c == '\n') ? "\\%c" : "%c", *c);
		buf_printf(&b, "\t");
		buf_vector(&b, vectors + (size_t) i * dim);
		buf_printf(&b, "\t{\"tag\": %d}\n", i % 10);
		if (PQputCopyData(conn, b.data, b.len) != 1)
			die("COPY: %s", PQerrorMessage(conn));
		free(b.data);
	}
	if (PQputCopyEnd(conn, NULL) != 1)
		die("COPY: %s", PQerrorMessage(conn));
	PQclear(check(PQgetResult(conn), "COPY"));
	exec("%s", indexdef);
	exec("VACUUM ANALYZE %s", table);
	free(table);
	free(indexdef);
}

static double
median(double *v, int n)
{
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && v[j] < v[j - 1]; j--)
		{
			double		t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int	failures = 0;

/* The machine's load average: other work on it inflates every figure. */
static void
print_load(const char *when)
{
	FILE	   *f = fopen("/proc/loadavg", "r");
	char		line[128] = "?";

	if (f)
	{
		if (fgets(line, sizeof(line), f) == NULL)
			strcpy(line, "?");
		fclose(f);
	}
	line[strcspn(line, "\n")] = '\0';
	printf("load average %s: %s (%ld CPUs)\n", when, line, sysconf(_SC_NPROCESSORS_ONLN));
}

static void
verdict(const char *what, bool ok)
{
	printf("  %-58s %s\n", what, ok ? "MET" : "NOT MET");
	if (!ok)
		failures++;
}

/* ---------------------------------------------------------------- remember */

/*
 * 1,000 single-row INSERTs into space `rows_space` against one remember of
 * the same 1,000 rows into `batch_space`, --reps times (each time the next
 * 1,000 rows); returns the speed-up of the medians.
 */
static double
remember_pair(const Options *o, const char *rows_space, const char *batch_space, int from)
{
	double		t_rows[MAX_REPS],
				t_batch[MAX_REPS];
	char	   *table;
	char		sql[512];
	double		rows,
				batch;

	snprintf(sql, sizeof(sql), "SELECT agentmem.space_table('%s')::text", rows_space);
	table = query_value(sql);
	snprintf(sql, sizeof(sql),
			 "INSERT INTO %s (content, embedding, metadata) VALUES ($1, $2::vector, $3::jsonb) RETURNING id",
			 table);
	PQclear(check(PQprepare(conn, rows_space, sql, 3, NULL), "prepare insert"));
	snprintf(sql, sizeof(sql),
			 "SELECT * FROM agentmem.remember('%s', $1::text[], $2::vector[], $3::jsonb[])", batch_space);
	PQclear(check(PQprepare(conn, batch_space, sql, 3, NULL), "prepare remember"));

	/* the client's text is built before the clocks start, for both */
	for (int rep = 0; rep < o->reps; rep++)
	{
		int			start = from + rep * NREMEMBER;
		char	   *texts,
				   *vecs,
				   *meta;
		char	   *v[NREMEMBER],
				   *m[NREMEMBER];
		const char *params[3];
		double		t0;
		PGresult   *r;

		for (int i = 0; i < NREMEMBER; i++)
		{
			v[i] = vector_text(vectors + (size_t) (start + i) * dim);
			m[i] = metadata_text(start + i);
		}
		t0 = now_ms();
		for (int i = 0; i < NREMEMBER; i++)
		{
			params[0] = words[start + i];
			params[1] = v[i];
			params[2] = m[i];
			PQclear(check(PQexecPrepared(conn, rows_space, 3, params, NULL, NULL, 0), "insert"));
		}
		t_rows[rep] = now_ms() - t0;
		for (int i = 0; i < NREMEMBER; i++)
		{
			free(v[i]);
			free(m[i]);
		}

		row_arrays(start, NREMEMBER, &texts, &vecs, &meta);
		t0 = now_ms();
		params[0] = texts;
		params[1] = vecs;
		params[2] = meta;
		r = check(PQexecPrepared(conn, batch_space, 3, params, NULL, NULL, 0), "remember");
		if (PQntuples(r) != NREMEMBER)
			die("remember returned %d ids", PQntuples(r));
		PQclear(r);
		t_batch[rep] = now_ms() - t0;
		free(texts);
		free(vecs);
		free(meta);
	}
	rows = median(t_rows, o->reps);
	batch = median(t_batch, o->reps);
	printf("    %d single-row INSERT round trips: %9.1f ms  (%.3f ms a row; fastest run %.1f ms)\n",
		   NREMEMBER, rows, rows / NREMEMBER, t_rows[0]);
	printf("    one remember of %d rows:          %9.1f ms  (%.3f ms a row; fastest run %.1f ms)\n",
		   NREMEMBER, batch, batch / NREMEMBER, t_batch[0]);
	printf("    speed-up: %.1fx\n", rows / batch);
	free(table);
	return rows / batch;
}

static void
bench_remember(const Options *o)
{
	int			from = o->base;
	const char *spaces[4] = {"bench_rows", "bench_batch", "bench_rows_noindex", "bench_batch_noindex"};
	double		speedup;

	printf("\nremember: %d rows, into spaces that already hold %d rows (m=16, ef_construction=64)\n",
		   NREMEMBER, o->remember_base);
	for (int i = 0; i < 4; i++)
	{
		exec("SELECT agentmem.drop_space(space) FROM agentmem.spaces WHERE space = '%s'", spaces[i]);
		exec("SELECT agentmem.create_space('%s', %u)", spaces[i], dim);
		if (o->remember_base > 0)
			load_space(spaces[i], from, o->remember_base);
	}
	from += o->remember_base;
	printf("  spaces as created (with their hnsw index):\n");
	speedup = remember_pair(o, spaces[0], spaces[1], from);
	verdict("remember of 1,000 rows >= 10x faster than 1,000 INSERTs", speedup >= 10);

	/* reference: what batching saves when no vector index has to be updated */
	for (int i = 2; i < 4; i++)
	{
		char		sql[256];
		char	   *table;

		snprintf(sql, sizeof(sql), "SELECT agentmem.space_table('%s')::text", spaces[i]);
		table = query_value(sql);
		exec("DROP INDEX %s_embedding", table);
		free(table);
	}
	printf("  for reference, the same into spaces whose hnsw index was dropped:\n");
	(void) remember_pair(o, spaces[2], spaces[3], from);
}

/* ---------------------------------------------------------------- recall */

/* ids of one query's result, from rows with the given query_no column */
static void
result_ids(PGresult *r, int idcol, int qcol, int qno, long *ids, int *n)
{
	*n = 0;
	for (int i = 0; i < PQntuples(r); i++)
		if (qcol < 0 || atoi(PQgetvalue(r, i, qcol)) == qno)
			ids[(*n)++] = atol(PQgetvalue(r, i, idcol));
}

static void
bench_recall_variant(const Options *o, char **qtext, const char *filter)
{
	double		t_single[MAX_REPS],
				t_batch[MAX_REPS],
				t_sql[MAX_REPS];
	PGresult   *singles[NQUERIES];
	PGresult   *batch = NULL;
	Buf			arr = {0};
	char		kbuf[16];
	char	   *table = query_value("SELECT agentmem.space_table('bench_recall')::text");
	char		sql[1024];
	int			mismatches = 0,
				short_results = 0;

	snprintf(kbuf, sizeof(kbuf), "%d", K);
	buf_printf(&arr, "{");
	for (int q = 0; q < NQUERIES; q++)
	{
		if (q)
			buf_printf(&arr, ",");
		buf_array_elem(&arr, qtext[q]);
	}
	buf_printf(&arr, "}");
	snprintf(sql, sizeof(sql),
			 "SELECT id, content, metadata, embedding <=> $1::vector AS distance FROM %s%s"
			 " ORDER BY embedding <=> $1::vector LIMIT %d",
			 table, filter ? " WHERE metadata @> $2::jsonb" : "", K);
	PQclear(check(PQprepare(conn, filter ? "sqlf" : "sql", sql, filter ? 2 : 1, NULL), "prepare sql"));

	for (int rep = -1; rep < o->reps; rep++)
	{
		const char *params[4] = {"bench_recall", NULL, kbuf, filter};
		double		t0;

		t0 = now_ms();
		for (int q = 0; q < NQUERIES; q++)
		{
			params[1] = qtext[q];
			if (rep == o->reps - 1)
				singles[q] = check(PQexecPrepared(conn, "recall", 4, params, NULL, NULL, 0), "recall");
			else
				PQclear(check(PQexecPrepared(conn, "recall", 4, params, NULL, NULL, 0), "recall"));
		}
		if (rep >= 0)
			t_single[rep] = now_ms() - t0;

		params[1] = arr.data;
		t0 = now_ms();
		if (rep == o->reps - 1)
			batch = check(PQexecPrepared(conn, "recall_batch", 4, params, NULL, NULL, 0), "recall_batch");
		else
			PQclear(check(PQexecPrepared(conn, "recall_batch", 4, params, NULL, NULL, 0), "recall_batch"));
		if (rep >= 0)
			t_batch[rep] = now_ms() - t0;

		t0 = now_ms();
		for (int q = 0; q < NQUERIES; q++)
		{
			const char *p2[2] = {qtext[q], filter};

			PQclear(check(PQexecPrepared(conn, filter ? "sqlf" : "sql", filter ? 2 : 1, p2, NULL, NULL, 0), "sql"));
		}
		if (rep >= 0)
			t_sql[rep] = now_ms() - t0;
	}

	for (int q = 0; q < NQUERIES; q++)
	{
		long		a[1000],
					b[1000];
		int			na,
					nb;

		result_ids(singles[q], 0, -1, 0, a, &na);
		result_ids(batch, 2, 0, q + 1, b, &nb);
		if (na != nb || memcmp(a, b, sizeof(long) * na) != 0)
			mismatches++;
		if (na < K)
			short_results++;
		PQclear(singles[q]);
	}
	PQclear(batch);
	{
		double		s = median(t_single, o->reps),
					b = median(t_batch, o->reps),
					p = median(t_sql, o->reps);

		printf("  filter %s\n", filter ? filter : "none");
		printf("    %d recall round trips:       %8.2f ms  (%.3f ms a query; fastest run %.2f ms)\n",
			   NQUERIES, s, s / NQUERIES, t_single[0]);
		printf("    one recall_batch of %d:      %8.2f ms  (%.3f ms a query; fastest run %.2f ms)\n",
			   NQUERIES, b, b / NQUERIES, t_batch[0]);
		printf("    %d plain SQL round trips:    %8.2f ms  (%.3f ms a query, for reference)\n", NQUERIES, p, p / NQUERIES);
		printf("    speed-up of recall_batch: %.2fx; results identical for %d of %d queries; %d with fewer than %d rows\n",
			   s / b, NQUERIES - mismatches, NQUERIES, short_results, K);
		if (!filter)
			verdict("recall_batch of 100 >= 3x faster than 100 recalls", s / b >= 3);
		verdict(filter ? "  ... identical results (filtered)" : "  ... identical results", mismatches == 0);
	}
	free(arr.data);
	free(table);
}

static void
bench_recall(const Options *o)
{
	char	   *qtext[NQUERIES];
	double		t0 = now_ms();

	printf("\nrecall: %d queries, k=%d, space of %d rows (cosine, m=16, ef_construction=64, ef_search=%s)\n",
		   NQUERIES, K, o->base, query_value("SHOW hnsw.ef_search"));
	exec("SELECT agentmem.drop_space(space) FROM agentmem.spaces WHERE space = 'bench_recall'");
	exec("SELECT agentmem.create_space('bench_recall', %u)", dim);
	load_space("bench_recall", 0, o->base);
	printf("  (loaded with COPY and an index build in %.1f s)\n", (now_ms() - t0) / 1000);
	for (int q = 0; q < NQUERIES; q++)
		qtext[q] = vector_text(queries + (size_t) q * dim);
	PQclear(check(PQprepare(conn, "recall",
							"SELECT * FROM agentmem.recall($1, $2::vector, $3::int, $4::jsonb)",
							4, NULL), "prepare recall"));
	PQclear(check(PQprepare(conn, "recall_batch",
							"SELECT * FROM agentmem.recall_batch($1, $2::vector[], $3::int, $4::jsonb)",
							4, NULL), "prepare recall_batch"));
	/* the plain SQL reference gets the iterative scan recall uses */
	exec("SET hnsw.iterative_scan = relaxed_order");
	bench_recall_variant(o, qtext, NULL);
	bench_recall_variant(o, qtext, "{\"tag\": 3}");
	exec("RESET hnsw.iterative_scan");
}

/* ---------------------------------------------------------------- cache */

static double lookup_min;		/* fastest run of the last time_lookup */

static double
time_lookup(const char *stmt, const char *texts, int format, int reps, int *rows)
{
	double		t[MAX_REPS * 4];
	double		m;
	const char *params[2] = {"glove-100d", texts};

	for (int rep = -1; rep < reps; rep++)
	{
		double		t0 = now_ms();
		PGresult   *r = check(PQexecPrepared(conn, stmt, 2, params, NULL, NULL, format), stmt);

		if (rep >= 0)
			t[rep] = now_ms() - t0;
		*rows = PQntuples(r);
		PQclear(r);
	}
	m = median(t, reps);
	lookup_min = t[0];
	return m;
}

static void
bench_cache(const Options *o)
{
	int			from = o->base + o->remember_base + o->reps * NREMEMBER;
	int			n = o->cache_entries;
	int			reps = o->reps * 4;
	double		t0;
	char	   *hits,
			   *half;
	Buf			b = {0};
	int			rows;

	if (from + n + NLOOKUP > (int) nvectors)
		n = nvectors - from - NLOOKUP;
	printf("\ncache: %d texts a call, %d entries cached\n", NLOOKUP, n);
	exec("TRUNCATE agentmem.cache, agentmem.cache_models, agentmem.cache_claims");
	PQclear(check(PQprepare(conn, "put", "SELECT agentmem.cache_put($1, $2::text[], $3::vector[])", 3, NULL),
				  "prepare put"));
	t0 = now_ms();
	for (int i = 0; i < n; i += NLOOKUP)
	{
		char	   *texts,
				   *v;
		const char *params[3] = {"glove-100d", NULL, NULL};

		row_arrays(from + i, (i + NLOOKUP <= n) ? NLOOKUP : n - i, &texts, &v, NULL);
		params[1] = texts;
		params[2] = v;
		PQclear(check(PQexecPrepared(conn, "put", 3, params, NULL, NULL, 0), "cache_put"));
		free(texts);
		free(v);
	}
	printf("  cache_put of %d entries in batches of %d: %.1f s\n", n, NLOOKUP, (now_ms() - t0) / 1000);
	exec("VACUUM ANALYZE agentmem.cache");

	/* 1,000 cached texts spread over the cache; 500 of them plus 500 new */
	buf_printf(&b, "{");
	for (int i = 0; i < NLOOKUP; i++)
	{
		if (i)
			buf_printf(&b, ",");
		buf_array_elem(&b, words[from + (int) ((int64_t) i * n / NLOOKUP)]);
	}
	buf_printf(&b, "}");
	hits = b.data;
	memset(&b, 0, sizeof(b));
	buf_printf(&b, "{");
	for (int i = 0; i < NLOOKUP; i++)
	{
		if (i)
			buf_printf(&b, ",");
		buf_array_elem(&b, i % 2 ? words[from + (int) ((int64_t) i * n / NLOOKUP)] : words[from + n + i]);
	}
	buf_printf(&b, "}");
	half = b.data;

	PQclear(check(PQprepare(conn, "get", "SELECT * FROM agentmem.cache_get($1, $2::text[])", 2, NULL), "prepare get"));
	PQclear(check(PQprepare(conn, "misses", "SELECT * FROM agentmem.cache_misses($1, $2::text[])", 2, NULL),
				  "prepare misses"));
	{
		double		get_bin,
					get_txt,
					mis_all,
					mis_half,
					touch;
		double		min_bin,
					min_txt,
					min_all,
					min_half,
					min_touch;
		int			r2,
					r3;

		/* each measurement starts with a warm-up call, which refreshes
		 * last_used where due: the timed calls find nothing to refresh */
		get_bin = time_lookup("get", hits, 1, reps, &rows);
		min_bin = lookup_min;
		if (rows != NLOOKUP)
			die("cache_get returned %d rows", rows);
		get_txt = time_lookup("get", hits, 0, reps, &rows);
		min_txt = lookup_min;
		mis_all = time_lookup("misses", hits, 0, reps, &r2);
		min_all = lookup_min;
		mis_half = time_lookup("misses", half, 0, reps, &r3);
		min_half = lookup_min;
		exec("SET agentmem.cache_touch_interval = 0");
		touch = time_lookup("get", hits, 1, reps, &rows);
		min_touch = lookup_min;
		exec("RESET agentmem.cache_touch_interval");
		printf("  median of %d runs (fastest run):\n", reps);
		printf("  cache_get, %d hits, binary results:    %6.2f ms  (%.2f)\n", NLOOKUP, get_bin, min_bin);
		printf("  cache_get, %d hits, text results:      %6.2f ms  (%.2f)\n", NLOOKUP, get_txt, min_txt);
		printf("  cache_misses, all cached (%d rows):       %6.2f ms  (%.2f)\n", r2, mis_all, min_all);
		printf("  cache_misses, half cached (%d rows):    %6.2f ms  (%.2f)\n", r3, mis_half, min_half);
		printf("  cache_get refreshing last_used of all %d (cache_touch_interval = 0): %.2f ms  (%.2f)\n",
			   NLOOKUP, touch, min_touch);
		verdict("cache_get of 1,000 texts < 10 ms (binary results)", get_bin < 10);
		verdict("cache_misses of 1,000 texts < 10 ms", mis_all < 10 && mis_half < 10);
	}
	free(hits);
	free(half);
}

int
main(int argc, char **argv)
{
	Options		o = {NULL, 100000, 10000, 5, 100000, NULL};
	static struct option longopts[] = {
		{"data", required_argument, NULL, 'd'},
		{"base", required_argument, NULL, 'b'},
		{"remember-base", required_argument, NULL, 'r'},
		{"reps", required_argument, NULL, 'R'},
		{"cache-entries", required_argument, NULL, 'c'},
		{"only", required_argument, NULL, 'o'},
		{NULL, 0, NULL, 0}
	};
	char		defdata[4096];
	int			c;

	snprintf(defdata, sizeof(defdata), "%s/.cache/agentmem/glove100",
			 getenv("HOME") ? getenv("HOME") : ".");
	o.data = defdata;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1)
	{
		switch (c)
		{
			case 'd':
				o.data = optarg;
				break;
			case 'b':
				o.base = atoi(optarg);
				break;
			case 'r':
				o.remember_base = atoi(optarg);
				break;
			case 'R':
				o.reps = atoi(optarg);
				break;
			case 'c':
				o.cache_entries = atoi(optarg);
				break;
			case 'o':
				o.only = optarg;
				break;
			default:
				die("usage: membench [--data DIR] [--base N] [--remember-base N] [--reps R] [--cache-entries N] [--only recall|remember|cache]");
		}
	}
	if (o.reps < 1 || o.reps > MAX_REPS)
		die("--reps must be between 1 and %d", MAX_REPS);
	conn = PQconnectdb("");
	if (PQstatus(conn) != CONNECTION_OK)
		die("connection failed: %s", PQerrorMessage(conn));
	printf("server: %s, connection: %s\n", query_value("SELECT version()"),
		   PQhost(conn) && PQhost(conn)[0] != '/' ? "TCP" : "Unix socket");
	exec("SET client_min_messages = warning");
	exec("SET maintenance_work_mem = '1GB'");
	print_load("at start");
	load_data(&o);
	if (!o.only || strcmp(o.only, "recall") == 0)
		bench_recall(&o);
	if (!o.only || strcmp(o.only, "remember") == 0)
		bench_remember(&o);
	if (!o.only || strcmp(o.only, "cache") == 0)
		bench_cache(&o);
	print_load("at end");
	printf("\n%s\n", failures ? "some targets NOT MET" : "all targets met");
	PQfinish(conn);
	return 0;
}
