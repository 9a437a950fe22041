/*
 * annbench.c
 *		Approximate nearest-neighbour benchmark over a PostgreSQL connection.
 *
 * Loads the first N base vectors into a table (text COPY), builds an hnsw
 * index and times it (once per entry of --workers, e.g. "0,1" for a serial
 * build and then one with a parallel worker; the last index is kept and
 * searched), then for each ef_search runs every query once to warm the
 * cache and once timed, with a prepared statement, one client, and reports recall@10 against the exact ground truth, QPS,
 * p50 and p99 latency.  Optionally measures VACUUM after deleting 10% of
 * the rows (with recall afterwards against the ground truth minus the
 * deleted rows, then agentmem.hnsw_check on the index if the function
 * exists), and single-row inserts (last, with vectors that are not
 * queries, then deleted again).  Connection settings come from the usual
 * PG* environment variables.
 *
 *	annbench --base F --queries F --gt F -n N --metric cosine|l2|ip
 *			 [--m 16] [--efc 64] [--ef 10,20,...] [--ef-after 40,160]
 *			 [--workers W[,W...]]
 *			 [--table items] [--reuse] [--inserts N] [--vacuum]
 *			 [--json out.json] [--label text]
 *
 * --ef-after gives the ef_search values of the sweep after VACUUM (default:
 * those of --ef).  Times: "load" is COPY plus VACUUM ANALYZE; each build is
 * the CREATE INDEX alone.  The index size is taken right after the last
 * build.
 */
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <time.h>

#include "libpq-fe.h"

#include "fvec.h"

#define K 10
#define MAX_EF 32
#define MAX_BUILDS 4

typedef struct Options
{
	const char *base, *queries, *gt, *metric, *table, *json, *label;
	int			n, m, efc, inserts;
	int			efs[MAX_EF], nef;
	int			efs_after[MAX_EF], nef_after;	/* sweep after VACUUM */
	bool		ef_after_set;
	int			builds[MAX_BUILDS], nbuild;	/* worker counts, one per build */
	bool		reuse, vacuum;
} Options;

typedef struct Result
{
	int			ef;
	double		recall, qps, p50, p99, mean;
} Result;

static PGconn *conn;

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static PGresult *
run(const char *sql)
{
	PGresult   *r = PQexec(conn, sql);

	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
	{
		fprintf(stderr, "annbench: %s\n  in: %s\n", PQerrorMessage(conn), sql);
		exit(1);
	}
	return r;
}

static void
exec(const char *fmt, ...)
{
	char		sql[4096];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	PQclear(run(sql));
}

static char *
vector_text(const float *v, int dim)
{
	char	   *s = malloc(dim * 16 + 3);
	char	   *p = s;

	*p++ = '[';
	for (int i = 0; i < dim; i++)
		p += sprintf(p, i ? ",%.9g" : "%.9g", v[i]);
	*p++ = ']';
	*p = '\0';
	return s;
}

static const char *
opclass(const char *metric)
{
	if (strcmp(metric, "l2") == 0)
		return "vector_l2_ops";
	if (strcmp(metric, "ip") == 0)
		return "vector_ip_ops";
	return "vector_cosine_ops";
}

static const char *
op(const char *metric)
{
	if (strcmp(metric, "l2") == 0)
		return "<->";
	if (strcmp(metric, "ip") == 0)
		return "<#>";
	return "<=>";
}

static void
load(const Options *o, const float *base, int dim)
{
	exec("DROP TABLE IF EXISTS %s", o->table);
	exec("CREATE TABLE %s (id bigint PRIMARY KEY, embedding vector(%d))", o->table, dim);
	PQclear(run("BEGIN"));
	{
		char		sql[256];
		PGresult   *r;

		snprintf(sql, sizeof(sql), "COPY %s (id, embedding) FROM STDIN", o->table);
		r = PQexec(conn, sql);
		if (PQresultStatus(r) != PGRES_COPY_IN)
		{
			fprintf(stderr, "annbench: COPY failed: %s", PQerrorMessage(conn));
			exit(1);
		}
		PQclear(r);
	}
	for (int i = 0; i < o->n; i++)
	{
		char	   *v = vector_text(base + (size_t) i * dim, dim);
		char	   *line = malloc(strlen(v) + 32);
		int			len = sprintf(line, "%d\t%s\n", i, v);

		if (PQputCopyData(conn, line, len) != 1)
		{
			fprintf(stderr, "annbench: COPY data: %s", PQerrorMessage(conn));
			exit(1);
		}
		free(v);
		free(line);
	}
	PQputCopyEnd(conn, NULL);
	PQclear(PQgetResult(conn));
	PQclear(run("COMMIT"));
	exec("VACUUM ANALYZE %s", o->table);
	fprintf(stderr, "loaded %d rows\n", o->n);
}

/* Build the index with the given max_parallel_maintenance_workers; seconds. */
static double
build(const Options *o, int workers)
{
	double		t0,
				s;

	exec("DROP INDEX IF EXISTS %s_hnsw", o->table);
	exec("SET max_parallel_maintenance_workers = %d", workers);
	t0 = now_ms();
	exec("CREATE INDEX %s_hnsw ON %s USING hnsw (embedding %s) WITH (m = %d, ef_construction = %d)",
		 o->table, o->table, opclass(o->metric), o->m, o->efc);
	s = (now_ms() - t0) / 1000;
	printf("build: %.1f s (m=%d, ef_construction=%d, max_parallel_maintenance_workers=%d)\n",
		   s, o->m, o->efc, workers);
	fflush(stdout);
	return s;
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

/* Recall@10 of one result list against the first 10 live ground-truth ids. */
static double
recall_of(PGresult *r, const int32_t *gt, int gtk, const bool *gone)
{
	int			truth[K],
				nt = 0,
				hits = 0;

	for (int i = 0; i < gtk && nt < K; i++)
	{
		if (!gone || !gone[gt[i]])
			truth[nt++] = gt[i];
	}
	for (int i = 0; i < PQntuples(r); i++)
	{
		int			id = atoi(PQgetvalue(r, i, 0));

		for (int j = 0; j < nt; j++)
		{
			if (truth[j] == id)
			{
				hits++;
				break;
			}
		}
	}
	return nt ? (double) hits / nt : 1.0;
}

static Result
measure(int ef, char **qtext, int nq, const int32_t *gt,
		int gtk, const bool *gone)
{
	Result		res = {.ef = ef};
	double	   *lat = malloc(sizeof(double) * nq);
	double		total = 0,
				recall = 0;

	exec("SET hnsw.ef_search = %d", ef);
	for (int pass = 0; pass < 2; pass++)
	{
		for (int q = 0; q < nq; q++)
		{
			const char *params[1] = {qtext[q]};
			double		t0 = now_ms();
			PGresult   *r = PQexecPrepared(conn, "knn", 1, params, NULL, NULL, 0);

			if (PQresultStatus(r) != PGRES_TUPLES_OK)
			{
				fprintf(stderr, "annbench: query: %s", PQerrorMessage(conn));
				exit(1);
			}
			if (pass == 1)
			{
				lat[q] = now_ms() - t0;
				total += lat[q];
				recall += recall_of(r, gt + (size_t) q * gtk, gtk, gone);
			}
			PQclear(r);
		}
	}
	qsort(lat, nq, sizeof(double), cmp_double);
	res.recall = recall / nq;
	res.qps = nq / (total / 1000);
	res.mean = total / nq;
	res.p50 = lat[nq / 2];
	res.p99 = lat[(int) ceil(nq * 0.99) - 1];
	free(lat);
	return res;
}

static void
prepare(const Options *o)
{
	char		sql[512];
	PGresult   *r;

	snprintf(sql, sizeof(sql), "SELECT id FROM %s ORDER BY embedding %s $1 LIMIT %d",
			 o->table, op(o->metric), K);
	r = PQprepare(conn, "knn", sql, 0, NULL);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
	{
		fprintf(stderr, "annbench: prepare: %s", PQerrorMessage(conn));
		exit(1);
	}
	PQclear(r);
}

/* Parse "10,20,40" into efs; returns the count. */
static int
parse_efs(int *efs, const char *s)
{
	char	   *copy = strdup(s);
	int			n = 0;

	for (char *tok = strtok(copy, ","); tok && n < MAX_EF; tok = strtok(NULL, ","))
		efs[n++] = atoi(tok);
	free(copy);
	return n;
}

static void
parse_builds(Options *o, const char *s)
{
	char	   *copy = strdup(s);

	o->nbuild = 0;
	for (char *tok = strtok(copy, ","); tok && o->nbuild < MAX_BUILDS; tok = strtok(NULL, ","))
		o->builds[o->nbuild++] = atoi(tok);
	free(copy);
}

static double
insert_rate(const Options *o, const float *vecs, int dim, int count)
{
	double		t0;
	char		sql[256];
	PGresult   *r;

	snprintf(sql, sizeof(sql), "INSERT INTO %s (id, embedding) VALUES ($1, $2)", o->table);
	r = PQprepare(conn, "ins", sql, 0, NULL);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
	{
		fprintf(stderr, "annbench: prepare: %s", PQerrorMessage(conn));
		exit(1);
	}
	PQclear(r);
	t0 = now_ms();
	for (int i = 0; i < count; i++)
	{
		char	   *v = vector_text(vecs + (size_t) i * dim, dim);
		char		id[32];
		const char *params[2] = {id, v};

		snprintf(id, sizeof(id), "%d", 100000000 + i);
		r = PQexecPrepared(conn, "ins", 2, params, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
		{
			fprintf(stderr, "annbench: insert: %s", PQerrorMessage(conn));
			exit(1);
		}
		PQclear(r);
		free(v);
	}
	return count / ((now_ms() - t0) / 1000);
}

static double
index_mb(const Options *o)
{
	char		sql[256];
	PGresult   *r;
	double		mb;

	snprintf(sql, sizeof(sql), "SELECT pg_relation_size('%s_hnsw') / 1048576.0", o->table);
	r = run(sql);
	mb = atof(PQgetvalue(r, 0, 0));
	PQclear(r);
	return mb;
}

/* Problems agentmem.hnsw_check reports for the index, or -1 if unavailable. */
static long
check_index(const Options *o)
{
	char		sql[256];
	PGresult   *r;
	long		problems;

	r = run("SELECT to_regprocedure('agentmem.hnsw_check(regclass)') IS NOT NULL");
	problems = strcmp(PQgetvalue(r, 0, 0), "t") == 0 ? 0 : -1;
	PQclear(r);
	if (problems < 0)
		return -1;
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM agentmem.hnsw_check('%s_hnsw')", o->table);
	r = run(sql);
	problems = atol(PQgetvalue(r, 0, 0));
	PQclear(r);
	if (problems > 0)
	{
		snprintf(sql, sizeof(sql), "SELECT kind, element, detail FROM agentmem.hnsw_check('%s_hnsw') LIMIT 5", o->table);
		r = run(sql);
		for (int i = 0; i < PQntuples(r); i++)
			fprintf(stderr, "hnsw_check: %s %s %s\n", PQgetvalue(r, i, 0),
					PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
		PQclear(r);
	}
	return problems;
}

static void
print_results(const char *title, Result *res, int n)
{
	printf("%s\n| ef_search | recall@10 | QPS | p50 ms | p99 ms |\n|---|---|---|---|---|\n", title);
	for (int i = 0; i < n; i++)
		printf("| %d | %.3f | %.0f | %.2f | %.2f |\n", res[i].ef, res[i].recall,
			   res[i].qps, res[i].p50, res[i].p99);
	fflush(stdout);
}

typedef struct Summary
{
	double		load_s,
				build_s[MAX_BUILDS],
				index_mb,
				index_mb_after_vacuum,
				inserts_per_s,
				vacuum_s;
	long		check_problems;
} Summary;

static void
write_json(const Options *o, Result *res, int n, const Summary *sm,
		   Result *after, int nafter)
{
	FILE	   *f = fopen(o->json, "w");

	if (!f)
	{
		perror(o->json);
		exit(1);
	}
	fprintf(f, "{\"label\": \"%s\", \"n\": %d, \"metric\": \"%s\", \"m\": %d, "
			"\"ef_construction\": %d, \"load_s\": %.2f,\n \"builds\": [",
			o->label ? o->label : "", o->n, o->metric, o->m, o->efc, sm->load_s);
	for (int i = 0; i < o->nbuild && !o->reuse; i++)
		fprintf(f, "%s{\"workers\": %d, \"build_s\": %.2f}", i ? ", " : "",
				o->builds[i], sm->build_s[i]);
	fprintf(f, "],\n \"index_mb\": %.1f, \"insert_rows_per_s\": %.1f, \"vacuum_s\": %.2f, "
			"\"index_mb_after_vacuum\": %.1f, \"check_problems\": %ld,\n \"search\": [",
			sm->index_mb, sm->inserts_per_s, sm->vacuum_s, sm->index_mb_after_vacuum,
			sm->check_problems);
	for (int i = 0; i < n; i++)
		fprintf(f, "%s\n  {\"ef_search\": %d, \"recall\": %.4f, \"qps\": %.1f, "
				"\"p50_ms\": %.3f, \"p99_ms\": %.3f, \"mean_ms\": %.3f}",
				i ? "," : "", res[i].ef, res[i].recall, res[i].qps, res[i].p50,
				res[i].p99, res[i].mean);
	fprintf(f, "],\n \"after_vacuum\": [");
	for (int i = 0; i < nafter; i++)
		fprintf(f, "%s\n  {\"ef_search\": %d, \"recall\": %.4f, \"qps\": %.1f, "
				"\"p50_ms\": %.3f, \"p99_ms\": %.3f}",
				i ? "," : "", after[i].ef, after[i].recall, after[i].qps,
				after[i].p50, after[i].p99);
	fprintf(f, "]}\n");
	fclose(f);
}

int
main(int argc, char **argv)
{
	Options		o = {.metric = "cosine", .table = "items", .n = 100000, .m = 16,
	.efc = 64, .nbuild = 1};
	static struct option longopts[] = {
		{"base", 1, 0, 'b'}, {"queries", 1, 0, 'q'}, {"gt", 1, 0, 'g'},
		{"n", 1, 0, 'n'}, {"metric", 1, 0, 'M'}, {"m", 1, 0, 'm'},
		{"efc", 1, 0, 'c'}, {"ef", 1, 0, 'e'}, {"workers", 1, 0, 'w'},
		{"table", 1, 0, 't'}, {"reuse", 0, 0, 'r'}, {"inserts", 1, 0, 'i'},
		{"vacuum", 0, 0, 'v'}, {"json", 1, 0, 'j'}, {"label", 1, 0, 'l'},
		{"ef-after", 1, 0, 'a'},
		{0, 0, 0, 0}
	};
	int			c;
	uint32_t	nb,
				dim,
				nq,
				qdim,
				gtq,
				gtk;
	float	   *base,
			   *queries;
	int32_t    *gt;
	char	  **qtext;
	Result		res[MAX_EF],
				after[MAX_EF];
	Summary		sm = {.check_problems = -1};
	double		t0;
	int			nafter = 0;

	o.nef = parse_efs(o.efs, "10,20,40,80,160,320");
	while ((c = getopt_long(argc, argv, "n:", longopts, NULL)) != -1)
	{
		switch (c)
		{
			case 'b': o.base = optarg; break;
			case 'q': o.queries = optarg; break;
			case 'g': o.gt = optarg; break;
			case 'n': o.n = atoi(optarg); break;
			case 'M': o.metric = optarg; break;
			case 'm': o.m = atoi(optarg); break;
			case 'c': o.efc = atoi(optarg); break;
			case 'e': o.nef = parse_efs(o.efs, optarg); break;
			case 'a':
				o.nef_after = parse_efs(o.efs_after, optarg);
				o.ef_after_set = true;
				break;
			case 'w': parse_builds(&o, optarg); break;
			case 't': o.table = optarg; break;
			case 'r': o.reuse = true; break;
			case 'i': o.inserts = atoi(optarg); break;
			case 'v': o.vacuum = true; break;
			case 'j': o.json = optarg; break;
			case 'l': o.label = optarg; break;
			default:
				fprintf(stderr, "usage: see the comment at the top of annbench.c\n");
				return 2;
		}
	}
	if (!o.base || !o.queries || !o.gt)
	{
		fprintf(stderr, "annbench: --base, --queries and --gt are required\n");
		return 2;
	}
	base = fvec_read(o.base, o.n + (o.inserts > 0 ? o.inserts : 0), &nb, &dim);
	queries = fvec_read(o.queries, 0, &nq, &qdim);
	gt = gt_read(o.gt, &gtq, &gtk);
	if ((int) nb < o.n || qdim != dim || gtq != nq)
	{
		fprintf(stderr, "annbench: inconsistent inputs\n");
		return 1;
	}
	conn = PQconnectdb("");
	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "annbench: %s", PQerrorMessage(conn));
		return 1;
	}
	PQclear(run("SET client_min_messages = warning"));
	if (!o.reuse)
	{
		t0 = now_ms();
		load(&o, base, dim);
		sm.load_s = (now_ms() - t0) / 1000;
		printf("load: %.1f s (%d rows, COPY + VACUUM ANALYZE)\n", sm.load_s, o.n);
		for (int i = 0; i < o.nbuild; i++)
			sm.build_s[i] = build(&o, o.builds[i]);
	}
	qtext = malloc(sizeof(char *) * nq);
	for (uint32_t i = 0; i < nq; i++)
		qtext[i] = vector_text(queries + (size_t) i * dim, dim);
	prepare(&o);
	sm.index_mb = index_mb(&o);
	printf("index size: %.1f MB\n", sm.index_mb);
	for (int i = 0; i < o.nef; i++)
	{
		res[i] = measure(o.efs[i], qtext, nq, gt, gtk, NULL);
		fprintf(stderr, "ef_search %d: recall %.3f, %.0f QPS\n", res[i].ef,
				res[i].recall, res[i].qps);
	}
	print_results("search (1 client, prepared, warm cache)", res, o.nef);

	if (o.vacuum)
	{
		bool	   *gone = calloc(o.n, sizeof(bool));

		for (int i = 0; i < o.n; i += 10)
			gone[i] = true;
		exec("DELETE FROM %s WHERE id %% 10 = 0", o.table);
		t0 = now_ms();
		exec("VACUUM %s", o.table);
		sm.vacuum_s = (now_ms() - t0) / 1000;
		printf("VACUUM after deleting 10%%: %.1f s\n", sm.vacuum_s);
		if (!o.ef_after_set)
		{
			memcpy(o.efs_after, o.efs, sizeof(o.efs));
			o.nef_after = o.nef;
		}
		for (int i = 0; i < o.nef_after; i++)
			after[nafter++] = measure(o.efs_after[i], qtext, nq, gt, gtk, gone);
		print_results("search after VACUUM (recall against the remaining rows)", after, nafter);
	}
	sm.index_mb_after_vacuum = index_mb(&o);
	if (o.vacuum)
	{
		sm.check_problems = check_index(&o);
		if (sm.check_problems >= 0)
			printf("agentmem.hnsw_check after VACUUM: %ld problem(s)\n", sm.check_problems);
	}

	/*
	 * Inserts come last and use base vectors after the first N (never the
	 * queries, whose neighbourhoods they would otherwise reshape), or the
	 * queries when the file has no more (N = all): nothing is measured
	 * after them.
	 */
	if (o.inserts > 0)
	{
		int			count = o.inserts;
		const float *src = base + (size_t) o.n * dim;

		if ((int) nb < o.n + count)
		{
			src = queries;
			count = count < (int) nq ? count : (int) nq;
		}
		sm.inserts_per_s = insert_rate(&o, src, dim, count);
		printf("single-row inserts (prepared, autocommit): %.0f rows/s over %d rows\n",
			   sm.inserts_per_s, count);
		exec("DELETE FROM %s WHERE id >= 100000000", o.table);
	}
	if (o.json)
		write_json(&o, res, o.nef, &sm, after, nafter);
	PQfinish(conn);
	return 0;
}
