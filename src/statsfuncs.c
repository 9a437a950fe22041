/*
 * statsfuncs.c
 *		The SQL side of the statistics: the functions behind the views
 *		agentmem.latency, agentmem.statement_latency, agentmem.n_plus_one and
 *		agentmem.connections, and latency_histogram, slo_check and
 *		latency_reset.
 *
 * Readers copy each backend's slot consistently (StatsCopySlot) and merge
 * the copies in local memory; they never make a writer wait.  As in
 * pg_stat_statements, rows of other users (per-statement latency, N+1
 * findings, which carry query text) are shown only to superusers and
 * members of pg_read_all_stats.
 */
#include "postgres.h"

#include <math.h>
#include <time.h>

#include "catalog/pg_authid.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "stats_internal.h"

PG_FUNCTION_INFO_V1(agentmem_latency);
PG_FUNCTION_INFO_V1(agentmem_statement_id);
PG_FUNCTION_INFO_V1(agentmem_statement_latency);
PG_FUNCTION_INFO_V1(agentmem_latency_histogram);
PG_FUNCTION_INFO_V1(agentmem_latency_reset);
PG_FUNCTION_INFO_V1(agentmem_slo_check);
PG_FUNCTION_INFO_V1(agentmem_n_plus_one);
PG_FUNCTION_INFO_V1(agentmem_connections);

/* latency columns shared by agentmem.latency and statement_latency */
#define LATENCY_COLS 8
static const double latency_quantiles[] = {0.5, 0.9, 0.95, 0.99, 0.999};

/* Connection-churn thresholds; README.md (Statistics) documents them. */
#define CHURN_MIN_SESSIONS		10	/* fewer started: no verdict */
#define CHURN_HIGH_RATE			10.0	/* sessions/s: churn is high */
#define CHURN_SOME_RATE			1.0 /* sessions/s: high if most are short */
#define CHURN_SHORT_SHARE		0.5 /* share of sessions under 1 s */
#define CHURN_WINDOW_SECONDS	60

static inline double
us_to_ms(double us)
{
	return us / 1000.0;
}

/* calls, mean_ms, p50_ms .. p999_ms, max_ms of h into values/nulls. */
static void
latency_columns(const Histogram *h, Datum *values, bool *nulls)
{
	int			i;

	values[0] = Int64GetDatum((int64) h->count);
	nulls[0] = false;
	for (i = 1; i < LATENCY_COLS; i++)
		nulls[i] = h->count == 0;
	if (h->count == 0)
		return;
	values[1] = Float8GetDatum(us_to_ms(HistogramMean(h)));
	for (i = 0; i < lengthof(latency_quantiles); i++)
		values[2 + i] = Float8GetDatum(us_to_ms(HistogramPercentile(h, latency_quantiles[i])));
	values[7] = Float8GetDatum(us_to_ms((double) h->max));
}

/* Merge the histogram of operation op over every slot. */
static void
merge_op(int op, Histogram *out)
{
	Histogram  *tmp = palloc(sizeof(Histogram));
	int			i;

	HistogramInit(out);
	for (i = 0; i < stats_shared->nslots; i++)
		if (StatsCopySlot(i, offsetof(StatsSlot, ops) + op * sizeof(Histogram),
						  sizeof(Histogram), tmp))
			HistogramMerge(out, tmp);
	pfree(tmp);
}

/* The operation named name, or an error listing the names. */
static int
parse_op(text *name)
{
	char	   *s = text_to_cstring(name);
	StringInfoData names;
	int			op;

	for (op = 0; op < AGENTMEM_NUM_OPS; op++)
		if (strcmp(s, stats_op_names[op]) == 0)
			return op;
	initStringInfo(&names);
	for (op = 0; op < AGENTMEM_NUM_OPS; op++)
		appendStringInfo(&names, "%s%s", op ? ", " : "", stats_op_names[op]);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown agentmem operation \"%s\"", s),
			 errhint("Operations are: %s.", names.data)));
	return -1;					/* not reached */
}

/* May the current user see rows of userid? */
static bool
may_see_user(Oid userid, bool all_stats)
{
	return all_stats || userid == GetUserId();
}

/* ---------------------------------------------------------------- latency */

Datum
agentmem_latency(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Histogram  *h;
	int			op;

	StatsRequireShared();
	InitMaterializedSRF(fcinfo, 0);
	h = palloc(sizeof(Histogram));
	for (op = 0; op < AGENTMEM_NUM_OPS; op++)
	{
		Datum		values[1 + LATENCY_COLS];
		bool		nulls[1 + LATENCY_COLS];

		merge_op(op, h);
		values[0] = CStringGetTextDatum(stats_op_names[op]);
		nulls[0] = false;
		latency_columns(h, values + 1, nulls + 1);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}

Datum
agentmem_latency_histogram(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Histogram  *h;
	int			op,
				b;

	StatsRequireShared();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("operation must not be null")));
	op = parse_op(PG_GETARG_TEXT_PP(0));
	InitMaterializedSRF(fcinfo, 0);
	h = palloc(sizeof(Histogram));
	merge_op(op, h);
	for (b = 0; b < HISTOGRAM_BUCKETS; b++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		if (h->buckets[b] == 0)
			continue;
		values[0] = Float8GetDatum(us_to_ms((double) HistogramBucketLower(b)));
		values[1] = Float8GetDatum(us_to_ms((double) HistogramBucketUpper(b)));
		values[2] = Int64GetDatum((int64) h->buckets[b]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}

Datum
agentmem_latency_reset(PG_FUNCTION_ARGS)
{
	StatsRequireShared();
	pg_atomic_fetch_add_u64(&stats_shared->generation, 1);
	PG_RETURN_VOID();
}

/*
 * agentmem.statement_id(query text): the identifier agentmem records for a
 * statement when PostgreSQL computes none (stmtid.c).  Needs no shared
 * memory: it is a pure function of the text.
 */
Datum
agentmem_statement_id(PG_FUNCTION_ARGS)
{
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(0));

	PG_RETURN_INT64((int64) StatementFingerprint(query, -1, 0));
}

/* A target argument: not null, not NaN, not negative. */
static double
slo_target(FunctionCallInfo fcinfo, int arg, const char *name)
{
	double		v;

	if (PG_ARGISNULL(arg))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name),
				 errhint("Give both targets in milliseconds, e.g. agentmem.slo_check('recall', 20, 100).")));
	v = PG_GETARG_FLOAT8(arg);
	if (isnan(v) || v < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a non-negative number of milliseconds, not %g", name, v)));
	return v;
}

Datum
agentmem_slo_check(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const char *names[2] = {"p50", "p99"};
	const double q[2] = {0.5, 0.99};
	double		target[2];
	Histogram  *h;
	int			op,
				i;

	StatsRequireShared();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("operation must not be null")));
	op = parse_op(PG_GETARG_TEXT_PP(0));
	target[0] = slo_target(fcinfo, 1, "p50_ms");
	target[1] = slo_target(fcinfo, 2, "p99_ms");

	InitMaterializedSRF(fcinfo, 0);
	h = palloc(sizeof(Histogram));
	merge_op(op, h);
	for (i = 0; i < 2; i++)
	{
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};

		values[0] = CStringGetTextDatum(names[i]);
		values[1] = Float8GetDatum(target[i]);
		values[2] = Int64GetDatum((int64) h->count);
		if (h->count == 0)
		{
			/* no samples: the target is neither met nor missed */
			nulls[3] = nulls[4] = true;
		}
		else
		{
			double		actual = us_to_ms(HistogramPercentile(h, q[i]));

			values[3] = Float8GetDatum(actual);
			values[4] = BoolGetDatum(actual <= target[i]);
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------- statements */

typedef struct MergedStatement
{
	StatKey		key;			/* hash key: must be first */
	Histogram	h;
} MergedStatement;

static HTAB *
merged_table(const char *name, Size entrysize)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(StatKey);
	ctl.entrysize = entrysize;
	ctl.hcxt = CurrentMemoryContext;
	return hash_create(name, 256, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/* Merge one slot's statement table into merged. */
static void
merge_statements(HTAB *merged, StatTable *t, bool all_stats, MergedStatement **map)
{
	StatEntry  *entries = StatTableEntries(t);
	StatCell   *cells = StatTableCells(t);
	uint32		i;

	for (i = 0; i < t->max_entries; i++)
	{
		StatEntry  *e = &entries[i];
		MergedStatement *m;
		bool		found;

		map[i] = NULL;
		if (!e->used || e->calls == 0 || !may_see_user(e->key.userid, all_stats))
			continue;
		m = hash_search(merged, &e->key, HASH_ENTER, &found);
		if (!found)
			HistogramInit(&m->h);
		/* count, sum, min and max here; the buckets come from the cells */
		if (m->h.count == 0 || e->min < m->h.min)
			m->h.min = e->min;
		if (m->h.count == 0 || e->max > m->h.max)
			m->h.max = e->max;
		m->h.count += e->calls;
		m->h.sum += e->sum;
		map[i] = m;
	}
	for (i = 0; i < t->max_cells; i++)
		if (cells[i].entry != 0 && map[cells[i].entry - 1] != NULL)
			map[cells[i].entry - 1]->h.buckets[cells[i].bucket] += cells[i].count;
}

Datum
agentmem_statement_latency(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bool		all_stats = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
	Size		len;
	HTAB	   *merged;
	StatTable  *copy;
	MergedStatement **map;
	HASH_SEQ_STATUS seq;
	MergedStatement *m;
	int			i;

	StatsRequireShared();
	len = StatTableSize((uint32) stats_shared->max_statements);
	InitMaterializedSRF(fcinfo, 0);
	merged = merged_table("agentmem statement latency", sizeof(MergedStatement));
	copy = palloc(len);
	map = palloc(sizeof(MergedStatement *) * Max(stats_shared->max_statements, 1));
	for (i = 0; i < stats_shared->nslots; i++)
		if (StatsCopySlot(i, STATS_TABLE_OFFSET, len, copy))
			merge_statements(merged, copy, all_stats, map);

	hash_seq_init(&seq, merged);
	while ((m = hash_seq_search(&seq)) != NULL)
	{
		Datum		values[3 + LATENCY_COLS];
		bool		nulls[3 + LATENCY_COLS];

		values[0] = ObjectIdGetDatum((Oid) m->key.userid);
		values[1] = ObjectIdGetDatum((Oid) m->key.dbid);
		values[2] = Int64GetDatum((int64) m->key.queryid);
		nulls[0] = nulls[1] = nulls[2] = false;
		latency_columns(&m->h, values + 3, nulls + 3);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------- N+1 */

typedef struct MergedN1
{
	StatKey		key;			/* hash key: must be first */
	StatsN1Entry n1;
} MergedN1;

Datum
agentmem_n_plus_one(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bool		all_stats = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
	StatsN1Entry *copy;
	HTAB	   *merged;
	HASH_SEQ_STATUS seq;
	MergedN1   *m;
	int			i,
				j;

	StatsRequireShared();
	InitMaterializedSRF(fcinfo, 0);
	merged = merged_table("agentmem n_plus_one", sizeof(MergedN1));
	copy = palloc(sizeof(StatsN1Entry) * STATS_N1_ENTRIES);
	for (i = 0; i < stats_shared->nslots; i++)
	{
		if (!StatsCopySlot(i, offsetof(StatsSlot, n1),
						   sizeof(StatsN1Entry) * STATS_N1_ENTRIES, copy))
			continue;
		for (j = 0; j < STATS_N1_ENTRIES; j++)
		{
			StatsN1Entry *e = &copy[j];
			bool		found;

			if (e->key.queryid == 0 || !may_see_user(e->key.userid, all_stats))
				continue;
			m = hash_search(merged, &e->key, HASH_ENTER, &found);
			if (!found)
			{
				m->n1 = *e;
				continue;
			}
			m->n1.occurrences += e->occurrences;
			m->n1.max_repeats = Max(m->n1.max_repeats, e->max_repeats);
			m->n1.total_us += e->total_us;
			if (e->query[0] != '\0' &&
				(m->n1.query[0] == '\0' || e->last_seen > m->n1.last_seen))
				memcpy(m->n1.query, e->query, STATS_N1_QUERY_LEN);
			m->n1.last_seen = Max(m->n1.last_seen, e->last_seen);
		}
	}

	hash_seq_init(&seq, merged);
	while ((m = hash_seq_search(&seq)) != NULL)
	{
		Datum		values[8];
		bool		nulls[8] = {false, false, false, false, false, false, false, false};

		values[0] = ObjectIdGetDatum((Oid) m->key.userid);
		values[1] = ObjectIdGetDatum((Oid) m->key.dbid);
		values[2] = Int64GetDatum((int64) m->key.queryid);
		m->n1.query[STATS_N1_QUERY_LEN - 1] = '\0';
		if (m->n1.query[0] == '\0')
			nulls[3] = true;
		else
			values[3] = CStringGetTextDatum(m->n1.query);
		values[4] = Int64GetDatum((int64) m->n1.occurrences);
		values[5] = Int64GetDatum((int64) m->n1.max_repeats);
		values[6] = Float8GetDatum(us_to_ms((double) m->n1.total_us));
		values[7] = TimestampTzGetDatum(m->n1.last_seen);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------- connections */

static char *
churn_advice(uint64 started, double rate, double short_share, double xacts_p50)
{
	if (started < CHURN_MIN_SESSIONS)
		return psprintf("not enough sessions to judge connection churn yet "
						"(%llu started since the last reset, %d needed)",
						(unsigned long long) started, CHURN_MIN_SESSIONS);
	if (rate >= CHURN_HIGH_RATE ||
		(rate >= CHURN_SOME_RATE && short_share >= CHURN_SHORT_SHARE))
		return psprintf("high connection churn: %.1f new sessions/s over the last minute, "
						"%.0f%% of sessions last under 1 s, median %.0f transactions per session; "
						"every new session costs a process start and authentication. "
						"Put a connection pooler such as PgBouncer (pool_mode = transaction) "
						"in front of the server, or keep connections open in the application's pool",
						rate, short_share * 100, xacts_p50);
	return psprintf("connection churn is low: %.1f new sessions/s over the last minute, "
					"%.0f%% of sessions last under 1 s; no pooler needed on that account",
					rate, short_share * 100);
}

Datum
agentmem_connections(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	StatsSessions *copy;
	Histogram  *lifetime,
			   *xacts;
	uint64		started = 0,
				ended = 0,
				shorter = 0,
				recent = 0;
	int64		now = (int64) time(NULL);
	double		rate,
				short_share,
				xacts_p50;
	Datum		values[8];
	bool		nulls[8] = {false, false, false, false, false, false, false, false};
	int			i,
				s;

	StatsRequireShared();
	InitMaterializedSRF(fcinfo, 0);
	copy = palloc(sizeof(StatsSessions));
	lifetime = palloc0(sizeof(Histogram));
	xacts = palloc0(sizeof(Histogram));
	for (i = 0; i < stats_shared->nslots; i++)
	{
		if (!StatsCopySlot(i, offsetof(StatsSlot, sessions), sizeof(StatsSessions), copy))
			continue;
		started += copy->started;
		ended += copy->ended;
		shorter += copy->ended_short;
		HistogramMerge(lifetime, &copy->lifetime);
		HistogramMerge(xacts, &copy->xacts);
		for (s = 0; s < STATS_START_SECONDS; s++)
			if (copy->starts[s].second > now - CHURN_WINDOW_SECONDS &&
				copy->starts[s].second <= now)
				recent += copy->starts[s].count;
	}

	rate = (double) recent / CHURN_WINDOW_SECONDS;
	short_share = ended ? (double) shorter / ended : 0.0;
	xacts_p50 = xacts->count ? HistogramPercentile(xacts, 0.5) : 0.0;

	values[0] = Int64GetDatum((int64) started);
	values[1] = Int64GetDatum((int64) ended);
	values[2] = Float8GetDatum(rate);
	values[3] = Float8GetDatum(us_to_ms(HistogramPercentile(lifetime, 0.5)));
	values[4] = Float8GetDatum(us_to_ms(HistogramPercentile(lifetime, 0.99)));
	nulls[3] = nulls[4] = lifetime->count == 0;
	values[5] = Float8GetDatum(short_share);
	nulls[5] = ended == 0;
	values[6] = Float8GetDatum(xacts_p50);
	nulls[6] = xacts->count == 0;
	values[7] = CStringGetTextDatum(churn_advice(started, rate, short_share, xacts_p50));
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	PG_RETURN_VOID();
}
