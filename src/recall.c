/*
 * recall.c
 *		recall, recall_batch and recall_text: the nearest rows of a space.
 *
 * Every query runs one saved generic plan per (space, filter or not):
 *
 *	SELECT id, content, metadata, distance FROM (
 *		SELECT id, content, metadata, embedding OP $1 AS distance FROM t
 *		[WHERE metadata @> $3] ORDER BY embedding OP $1 LIMIT $2) s
 *	ORDER BY distance, id
 *
 * with hnsw.iterative_scan = relaxed_order, so the hnsw scan goes on past
 * ef_search candidates until k rows have passed the filter, and the outer
 * ORDER BY puts back in place the few rows a resumed search finds late.
 * enable_seqscan is off while the plan runs, so that a plan first made
 * while the space was small still uses the index when it has grown.
 *
 * Should fewer than k rows come back (a filter so selective that the scan
 * reached hnsw.max_scan_tuples first, or a space with fewer than k rows),
 * the same query runs again as an exact scan of the matching rows: recall
 * returns k rows whenever k matching rows exist.
 *
 * recall_batch runs the same plans for every query within one call, so
 * its results are those of recall, query by query; what it saves is the
 * round trip, the parse and the function call of every query but one.
 * With RECALL_PARALLEL_MIN_QUERIES queries or more it also spreads them
 * over parallel workers (at most max_parallel_workers_per_gather, and
 * fewer than the machine's CPUs), which
 * take queries one at a time from a shared counter, as the leader does, and
 * send their rows back through a message queue each; the leader emits all
 * rows in query order at the end.  Leader and workers then read with the
 * leader's snapshot (recall takes a fresh one per query).
 */
#include "postgres.h"

#include <unistd.h>

#include "access/amapi.h"
#include "access/genam.h"
#include "access/parallel.h"
#include "access/table.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "optimizer/cost.h"
#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/shm_mq.h"
#include "storage/shm_toc.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rls.h"
#include "utils/wait_event.h"

#include "hnsw.h"
#include "memory.h"
#include "stats.h"
#include "vector.h"

PG_FUNCTION_INFO_V1(agentmem_recall);
PG_FUNCTION_INFO_V1(agentmem_recall_batch);
PG_FUNCTION_INFO_V1(agentmem_recall_text);

typedef struct RecallPlans
{
	SPIPlanPtr	index;			/* hnsw scan */
	SPIPlanPtr	exact;			/* exact scan, when the index gave < k */
	char	   *seqscan;		/* the caller's enable_seqscan */
} RecallPlans;

/* Parallel recall_batch: below this many queries, workers cost more than they save. */
#define RECALL_PARALLEL_MIN_QUERIES 16
#define RECALL_MQ_SIZE			(256 * 1024)
#define RECALL_QUALNAME_MAX		(4 * NAMEDATALEN + 8)

#define RECALL_KEY_SHARED		UINT64CONST(0xA6E3000000000001)
#define RECALL_KEY_QUERIES		UINT64CONST(0xA6E3000000000002)
#define RECALL_KEY_FILTER		UINT64CONST(0xA6E3000000000003)
#define RECALL_KEY_QUEUES		UINT64CONST(0xA6E3000000000004)
#define RECALL_KEY_HINTS		UINT64CONST(0xA6E3000000000005)
#define RECALL_HINT_MAX_BLOCKS	(1 << 20)	/* per index: 4 MB of hints */

/* What the workers need to know, in the parallel context's shared memory. */
typedef struct RecallShared
{
	pg_atomic_uint32 next;		/* the next query to answer (0-based) */
	int			nqueries;
	int			k;
	bool		has_filter;
	MemoryMetric metric;
	int			dims;
	Oid			vectype;
	Size		query_size;		/* bytes of one query vector */
	char		qualname[RECALL_QUALNAME_MAX];
	char		vecschema[2 * NAMEDATALEN + 4];
	char		seqscan[16];	/* the caller's enable_seqscan */
} RecallShared;

static void
recall_prepare(const MemorySpace *space, bool has_filter, RecallPlans *plans)
{
	const char *op = MemoryMetricOperator(space->metric);
	Oid			argtypes[3] = {space->vectype, INT8OID, JSONBOID};
	const char *where = has_filter ? " WHERE metadata OPERATOR(pg_catalog.@>) $3" : "";
	char	   *sql;

	sql = psprintf("SELECT id, content, metadata, distance FROM ("
				   "SELECT id, content, metadata, embedding OPERATOR(%s.%s) $1 AS distance"
				   " FROM %s%s ORDER BY embedding OPERATOR(%s.%s) $1 LIMIT $2) s"
				   " ORDER BY distance, id",
				   space->vecschema, op, space->qualname, where, space->vecschema, op);
	plans->index = MemoryPlan(sql, has_filter ? 3 : 2, argtypes);
	/* "+ 0" keeps the planner from answering the ORDER BY with the index */
	sql = psprintf("SELECT id, content, metadata, embedding OPERATOR(%s.%s) $1 AS distance"
				   " FROM %s%s ORDER BY (embedding OPERATOR(%s.%s) $1) + 0, id LIMIT $2",
				   space->vecschema, op, space->qualname, where, space->vecschema, op);
	plans->exact = MemoryPlan(sql, has_filter ? 3 : 2, argtypes);
	plans->seqscan = pstrdup(GetConfigOption("enable_seqscan", false, false));
}

static void
set_guc(const char *name, const char *value)
{
	(void) set_config_option(name, value, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

/* Run one query; the exact plan if the index returned fewer than k rows. */
static void
recall_run(const RecallPlans *plans, Datum *values, int k, bool read_only)
{
	if (SPI_execute_plan(plans->index, values, NULL, read_only, 0) != SPI_OK_SELECT)
		elog(ERROR, "agentmem: recall failed");
	if (SPI_processed < (uint64) k)
	{
		int			level = NewGUCNestLevel();

		set_guc("enable_seqscan", plans->seqscan);
		SPI_freetuptable(SPI_tuptable);
		if (SPI_execute_plan(plans->exact, values, NULL, read_only, 0) != SPI_OK_SELECT)
			elog(ERROR, "agentmem: exact recall failed");
		AtEOXact_GUC(true, level);
	}
}

/* Append the rows of the last query to the result, numbered if batch. */
static void
recall_emit(ReturnSetInfo *rsinfo, bool batch, int query_no)
{
	Datum		values[6];
	bool		nulls[6] = {false};
	int			off = batch ? 2 : 0;
	uint64		i;
	int			c;

	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];

		values[0] = Int32GetDatum(query_no);
		values[1] = Int32GetDatum((int32) i + 1);
		for (c = 0; c < 4; c++)
		{
			Datum		d = SPI_getbinval(tup, SPI_tuptable->tupdesc, c + 1, &nulls[off + c]);

			/* content and metadata may be toast pointers into the table */
			if ((c == 1 || c == 2) && !nulls[off + c])
				d = PointerGetDatum(PG_DETOAST_DATUM_PACKED(d));
			values[off + c] = d;
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_freetuptable(SPI_tuptable);
}

static bool
is_zero_vector(Datum value)
{
	Vector	   *v = DatumGetVector(value);
	int			i;

	for (i = 0; i < v->dim; i++)
		if (v->x[i] != 0)
			return false;
	return true;
}

/* ---------------------------------------------------------------- parallel recall_batch */

/*
 * The rows of the last query (0-based number q), flattened: int32 q,
 * int32 rows, then per row int64 id, float8 distance and content and
 * metadata as int32 length (-1 for NULL) and bytes.
 */
static void
rows_serialize(StringInfo buf, int32 q)
{
	int32		n = (int32) SPI_processed;
	uint64		i;

	appendBinaryStringInfo(buf, (char *) &q, sizeof(q));
	appendBinaryStringInfo(buf, (char *) &n, sizeof(n));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
		float8		dist = DatumGetFloat8(SPI_getbinval(tup, SPI_tuptable->tupdesc, 4, &isnull));
		int			c;

		appendBinaryStringInfo(buf, (char *) &id, sizeof(id));
		appendBinaryStringInfo(buf, (char *) &dist, sizeof(dist));
		for (c = 2; c <= 3; c++)
		{
			Datum		d = SPI_getbinval(tup, SPI_tuptable->tupdesc, c, &isnull);
			int32		len = -1;

			if (!isnull)
			{
				struct varlena *v = PG_DETOAST_DATUM_PACKED(d);

				len = VARSIZE_ANY_EXHDR(v);
				appendBinaryStringInfo(buf, (char *) &len, sizeof(len));
				appendBinaryStringInfo(buf, VARDATA_ANY(v), len);
			}
			else
				appendBinaryStringInfo(buf, (char *) &len, sizeof(len));
		}
	}
	SPI_freetuptable(SPI_tuptable);
}

static const char *
take(const char *p, void *out, Size n)
{
	memcpy(out, p, n);
	return p + n;
}

/* Emit the rows flattened by rows_serialize. */
static void
rows_emit(ReturnSetInfo *rsinfo, const char *p)
{
	int32		q,
				n,
				i;

	p = take(p, &q, sizeof(q));
	p = take(p, &n, sizeof(n));
	for (i = 0; i < n; i++)
	{
		Datum		values[6];
		bool		nulls[6] = {false};
		int64		id;
		float8		dist;
		int			c;

		p = take(p, &id, sizeof(id));
		p = take(p, &dist, sizeof(dist));
		values[0] = Int32GetDatum(q + 1);
		values[1] = Int32GetDatum(i + 1);
		values[2] = Int64GetDatum(id);
		values[5] = Float8GetDatum(dist);
		for (c = 3; c <= 4; c++)
		{
			int32		len;

			p = take(p, &len, sizeof(len));
			nulls[c] = len < 0;
			if (len >= 0)
			{
				struct varlena *v = palloc(VARHDRSZ + len);

				SET_VARSIZE(v, VARHDRSZ + len);
				p = take(p, VARDATA(v), len);
				values[c] = PointerGetDatum(v);
			}
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/* ---------- buffer hints for the workers ---------- */

/*
 * The leader's map of where each block of the space's hnsw indexes was last
 * found in shared buffers (HnswRecentExport), for the workers to start
 * from: without it a worker pays a buffer mapping lookup per block and its
 * searches cost ~1.5x the leader's.  Layout: int32 count, then per index
 * Oid, BlockNumber n and n Buffers.
 */
typedef struct RecallHint
{
	Oid			index;
	BlockNumber n;
} RecallHint;

/* One index's hints, copied out while the index is open. */
typedef struct RecallHints
{
	RecallHint	head;
	Buffer	   *bufs;
} RecallHints;

static List *
hints_collect(Oid relid, Size *size)
{
	Relation	heap = table_open(relid, AccessShareLock);
	List	   *indexes = RelationGetIndexList(heap);
	List	   *hints = NIL;
	ListCell   *lc;

	*size = sizeof(int32);
	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);

		if (index->rd_indam->amgettuple == hnswgettuple)
		{
			RecallHints *h = palloc(sizeof(RecallHints));

			h->head.index = RelationGetRelid(index);
			h->head.n = HnswRecentExport(index, NULL, RECALL_HINT_MAX_BLOCKS);
			h->bufs = palloc(sizeof(Buffer) * Max(h->head.n, 1));
			HnswRecentExport(index, h->bufs, h->head.n);
			*size += sizeof(RecallHint) + sizeof(Buffer) * h->head.n;
			hints = lappend(hints, h);
		}
		index_close(index, AccessShareLock);
	}
	table_close(heap, AccessShareLock);
	return hints;
}

static void
hints_write(List *hints, char *area)
{
	int32		count = list_length(hints);
	ListCell   *lc;

	memcpy(area, &count, sizeof(count));
	area += sizeof(count);
	foreach(lc, hints)
	{
		RecallHints *h = lfirst(lc);

		memcpy(area, &h->head, sizeof(RecallHint));
		area += sizeof(RecallHint);
		memcpy(area, h->bufs, sizeof(Buffer) * h->head.n);
		area += sizeof(Buffer) * h->head.n;
	}
}

static void
hints_read(const char *area)
{
	int32		count;

	area = take(area, &count, sizeof(count));
	for (int i = 0; i < count; i++)
	{
		RecallHint	h;
		Relation	index;

		area = take(area, &h, sizeof(h));
		index = index_open(h.index, AccessShareLock);
		HnswRecentImport(index, (const Buffer *) area, h.n);
		index_close(index, AccessShareLock);
		area += sizeof(Buffer) * h.n;
	}
}

/* The leader's view of its workers' queues and of the results so far. */
typedef struct RecallCollector
{
	int			nqueues;
	shm_mq_handle **mqh;
	bool	   *detached;
	char	  **results;		/* per query, flattened rows */
} RecallCollector;

/* Take the messages waiting in the queues; with `wait`, all until detached. */
static void
collect(RecallCollector *rc, bool wait)
{
	for (;;)
	{
		int			active = 0,
					i;
		bool		got = false;

		for (i = 0; i < rc->nqueues; i++)
		{
			Size		nbytes;
			void	   *data;
			shm_mq_result r;
			int32		q;

			if (rc->detached[i])
				continue;
			r = shm_mq_receive(rc->mqh[i], &nbytes, &data, true);
			if (r == SHM_MQ_DETACHED)
			{
				rc->detached[i] = true;
				continue;
			}
			active++;
			if (r != SHM_MQ_SUCCESS)
				continue;
			memcpy(&q, data, sizeof(q));
			rc->results[q] = palloc(nbytes);
			memcpy(rc->results[q], data, nbytes);
			got = true;
		}
		if (active == 0 || (!wait && !got))
			return;
		if (!got)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1L, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * How many workers to ask for: one per RECALL_PARALLEL_MIN_QUERIES queries,
 * at most max_parallel_workers_per_gather, and at most one fewer than the
 * machine has CPUs (but one even on a single CPU), since the leader
 * searches too.  (sysconf counts the CPUs online, not an affinity mask or
 * a cgroup's quota.)  Searches are CPU-bound:
 * on two CPUs, 100 queries took 39 ms alone, 25 ms with one worker and
 * 35 ms with two.
 */
static int
recall_workers(int nqueries)
{
	long		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int			n = Min(max_parallel_workers_per_gather, nqueries / RECALL_PARALLEL_MIN_QUERIES);

	if (ncpu > 0)
		n = Min(n, (int) Max(ncpu - 1, 1));
	return n;
}

/*
 * Answer the queries with parallel workers, taking a share as the leader;
 * false if no worker could be started (nothing was answered then).  The
 * hnsw.* and enable_seqscan settings are already those of the queries.
 */
static bool
recall_parallel(FunctionCallInfo fcinfo, const MemorySpace *space, const RecallPlans *plans,
				Datum *queries, int nqueries, int k, Datum filter, bool has_filter)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ParallelContext *pcxt;
	RecallShared *shared;
	RecallCollector rc;
	char	   *qarea,
			   *mqarea;
	Size		qsize = VECTOR_SIZE(space->dims);
	int			nworkers = recall_workers(nqueries);
	Size		hsize;
	List	   *hints = hints_collect(space->relid, &hsize);
	Datum		values[3];
	StringInfoData buf;
	uint32		q;
	int			i;

	EnterParallelMode();
	pcxt = CreateParallelContext("$libdir/agentmem", "agentmem_recall_worker", nworkers);
	shm_toc_estimate_chunk(&pcxt->estimator, sizeof(RecallShared));
	shm_toc_estimate_chunk(&pcxt->estimator, mul_size(qsize, nqueries));
	shm_toc_estimate_chunk(&pcxt->estimator, has_filter ? VARSIZE_ANY(DatumGetPointer(filter)) : 1);
	shm_toc_estimate_chunk(&pcxt->estimator, mul_size(RECALL_MQ_SIZE, nworkers));
	shm_toc_estimate_chunk(&pcxt->estimator, hsize);
	shm_toc_estimate_keys(&pcxt->estimator, 5);
	InitializeParallelDSM(pcxt);
	if (pcxt->seg == NULL)
	{
		DestroyParallelContext(pcxt);
		ExitParallelMode();
		return false;
	}

	shared = shm_toc_allocate(pcxt->toc, sizeof(RecallShared));
	MemSet(shared, 0, sizeof(RecallShared));
	pg_atomic_init_u32(&shared->next, 0);
	shared->nqueries = nqueries;
	shared->k = k;
	shared->has_filter = has_filter;
	shared->metric = space->metric;
	shared->dims = space->dims;
	shared->vectype = space->vectype;
	shared->query_size = qsize;
	strlcpy(shared->qualname, space->qualname, sizeof(shared->qualname));
	strlcpy(shared->vecschema, space->vecschema, sizeof(shared->vecschema));
	strlcpy(shared->seqscan, plans->seqscan, sizeof(shared->seqscan));
	shm_toc_insert(pcxt->toc, RECALL_KEY_SHARED, shared);
	qarea = shm_toc_allocate(pcxt->toc, mul_size(qsize, nqueries));
	for (i = 0; i < nqueries; i++)
		memcpy(qarea + i * qsize, DatumGetVector(queries[i]), qsize);	/* all checked: qsize bytes */
	shm_toc_insert(pcxt->toc, RECALL_KEY_QUERIES, qarea);
	if (has_filter)
	{
		char	   *f = shm_toc_allocate(pcxt->toc, VARSIZE_ANY(DatumGetPointer(filter)));

		memcpy(f, DatumGetPointer(filter), VARSIZE_ANY(DatumGetPointer(filter)));
		shm_toc_insert(pcxt->toc, RECALL_KEY_FILTER, f);
	}
	{
		char	   *harea = shm_toc_allocate(pcxt->toc, hsize);

		hints_write(hints, harea);
		shm_toc_insert(pcxt->toc, RECALL_KEY_HINTS, harea);
	}
	mqarea = shm_toc_allocate(pcxt->toc, mul_size(RECALL_MQ_SIZE, nworkers));
	shm_toc_insert(pcxt->toc, RECALL_KEY_QUEUES, mqarea);
	rc.nqueues = nworkers;
	rc.mqh = palloc(sizeof(shm_mq_handle *) * nworkers);
	rc.detached = palloc0(sizeof(bool) * nworkers);
	rc.results = palloc0(sizeof(char *) * nqueries);
	for (i = 0; i < nworkers; i++)
	{
		shm_mq	   *mq = shm_mq_create(mqarea + (Size) i * RECALL_MQ_SIZE, RECALL_MQ_SIZE);

		shm_mq_set_receiver(mq, MyProc);
		rc.mqh[i] = shm_mq_attach(mq, pcxt->seg, NULL);
	}

	LaunchParallelWorkers(pcxt);
	if (pcxt->nworkers_launched == 0)
	{
		DestroyParallelContext(pcxt);
		ExitParallelMode();
		return false;
	}
	elog(DEBUG1, "agentmem: recall_batch of %d queries with %d parallel worker%s",
		 nqueries, pcxt->nworkers_launched, pcxt->nworkers_launched == 1 ? "" : "s");
	for (i = 0; i < nworkers; i++)
	{
		if (i < pcxt->nworkers_launched)
			shm_mq_set_handle(rc.mqh[i], pcxt->worker[i].bgwhandle);
		else
			rc.detached[i] = true;
	}

	/* the leader's share */
	initStringInfo(&buf);
	values[1] = Int64GetDatum(k);
	values[2] = filter;
	while ((q = pg_atomic_fetch_add_u32(&shared->next, 1)) < (uint32) nqueries)
	{
		values[0] = queries[q];
		recall_run(plans, values, k, true);
		resetStringInfo(&buf);
		rows_serialize(&buf, (int32) q);
		rc.results[q] = palloc(buf.len);
		memcpy(rc.results[q], buf.data, buf.len);
		collect(&rc, false);
	}
	collect(&rc, true);
	WaitForParallelWorkersToFinish(pcxt);
	DestroyParallelContext(pcxt);
	ExitParallelMode();

	for (i = 0; i < nqueries; i++)
	{
		if (rc.results[i] == NULL)
			elog(ERROR, "agentmem: recall_batch lost the result of query %d", i + 1);
		rows_emit(rsinfo, rc.results[i]);
	}
	return true;
}

/* A parallel worker of recall_batch: answer queries until none is left. */
void
agentmem_recall_worker(dsm_segment *seg, shm_toc *toc)
{
	RecallShared *shared = shm_toc_lookup(toc, RECALL_KEY_SHARED, false);
	char	   *qarea = shm_toc_lookup(toc, RECALL_KEY_QUERIES, false);
	char	   *mqarea = shm_toc_lookup(toc, RECALL_KEY_QUEUES, false);
	shm_mq	   *mq = (shm_mq *) (mqarea + (Size) ParallelWorkerNumber * RECALL_MQ_SIZE);
	shm_mq_handle *mqh;
	MemorySpace space;
	RecallPlans plans;
	Datum		values[3];
	StringInfoData buf;
	uint32		q;
	int			level;

	shm_mq_set_sender(mq, MyProc);
	mqh = shm_mq_attach(mq, seg, NULL);
	MemSet(&space, 0, sizeof(space));
	space.name = "(parallel worker)";
	space.qualname = shared->qualname;
	space.vecschema = shared->vecschema;
	space.vectype = shared->vectype;
	space.dims = shared->dims;
	space.metric = shared->metric;

	SPI_connect();
	hints_read(shm_toc_lookup(toc, RECALL_KEY_HINTS, false));
	recall_prepare(&space, shared->has_filter, &plans);
	plans.seqscan = shared->seqscan;
	level = NewGUCNestLevel();
	set_guc("hnsw.iterative_scan", "relaxed_order");
	set_guc("enable_seqscan", "off");
	values[1] = Int64GetDatum(shared->k);
	values[2] = shared->has_filter ?
		PointerGetDatum(shm_toc_lookup(toc, RECALL_KEY_FILTER, false)) : (Datum) 0;
	initStringInfo(&buf);
	while ((q = pg_atomic_fetch_add_u32(&shared->next, 1)) < (uint32) shared->nqueries)
	{
		values[0] = PointerGetDatum(qarea + q * shared->query_size);
		recall_run(&plans, values, shared->k, true);
		resetStringInfo(&buf);
		rows_serialize(&buf, (int32) q);
		if (shm_mq_send(mqh, buf.len, buf.data, false, true) != SHM_MQ_SUCCESS)
			break;				/* the leader is gone */
	}
	AtEOXact_GUC(true, level);
	SPI_finish();
	shm_mq_detach(mqh);
}

/*
 * Check every query, then answer them in order into the materialized
 * result of fcinfo.  SPI must be connected.
 */
void
RecallInto(FunctionCallInfo fcinfo, const MemorySpace *space, Datum *queries,
		   int nqueries, bool batch, int k, Datum filter, bool has_filter)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	RecallPlans plans;
	Datum		values[3];
	int			level,
				q;

	if (k < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("k must be at least 1, not %d", k)));
	for (q = 0; q < nqueries; q++)
	{
		MemoryCheckEmbedding(space, queries[q], "query", batch ? q + 1 : 0);
		if (space->metric == MEMORY_METRIC_COSINE && is_zero_vector(queries[q]))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("%s is the zero vector, whose cosine distance is undefined",
							batch ? psprintf("query %d", q + 1) : "query")));
	}

	recall_prepare(space, has_filter, &plans);
	level = NewGUCNestLevel();
	set_guc("hnsw.iterative_scan", "relaxed_order");
	set_guc("enable_seqscan", "off");
	/*
	 * Parallel workers for a large batch, unless row-level security applies
	 * (its policies could call functions that cannot run in a worker) or a
	 * remember() batch is open in this backend (workers cannot see its
	 * queued rows; the leader's scans link them first).
	 */
	if (batch && nqueries >= RECALL_PARALLEL_MIN_QUERIES && max_parallel_workers_per_gather > 0 &&
		!IsInParallelMode() && !HnswBatchIsOpen() && check_enable_rls(space->relid, InvalidOid, true) != RLS_ENABLED &&
		recall_parallel(fcinfo, space, &plans, queries, nqueries, k, filter, has_filter))
	{
		AtEOXact_GUC(true, level);
		return;
	}
	values[1] = Int64GetDatum(k);
	values[2] = filter;
	for (q = 0; q < nqueries; q++)
	{
		values[0] = queries[q];
		recall_run(&plans, values, k, false);
		recall_emit(rsinfo, batch, q + 1);
	}
	AtEOXact_GUC(true, level);
}

static int
recall_k(FunctionCallInfo fcinfo, int argno)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("k must not be NULL")));
	return PG_GETARG_INT32(argno);
}

/*
 * agentmem.recall(space, query vector, k int DEFAULT 10, filter jsonb
 *		DEFAULT NULL) RETURNS TABLE(id, content, metadata, distance)
 */
Datum
agentmem_recall(PG_FUNCTION_ARGS)
{
	AgentmemTimer timer;
	text	   *name = MemoryTextArg(fcinfo, 0, "space");
	Datum		query;
	int			k = recall_k(fcinfo, 2);
	MemorySpace space;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("query must not be NULL")));
	AgentmemTimerStart(&timer);
	query = PointerGetDatum(PG_GETARG_VECTOR_P(1));
	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	MemorySpaceOpen(name, ACL_SELECT, "recall", &space);
	RecallInto(fcinfo, &space, &query, 1, false, k,
			   PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3), !PG_ARGISNULL(3));
	SPI_finish();
	AgentmemTimerRecord(&timer, AGENTMEM_OP_RECALL);
	return (Datum) 0;
}

/*
 * agentmem.recall_batch(space, queries vector[], k int DEFAULT 10, filter
 *		jsonb DEFAULT NULL) RETURNS TABLE(query_no, rank, id, content,
 *		metadata, distance)
 */
Datum
agentmem_recall_batch(PG_FUNCTION_ARGS)
{
	AgentmemTimer timer;
	text	   *name = MemoryTextArg(fcinfo, 0, "space");
	ArrayType  *arr = MemoryArrayArg(fcinfo, 1, "queries");
	int			k = recall_k(fcinfo, 2);
	MemorySpace space;
	Datum	   *queries;
	bool	   *nulls;
	int			n;

	AgentmemTimerStart(&timer);
	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	MemorySpaceOpen(name, ACL_SELECT, "recall_batch", &space);
	queries = MemoryArrayElements(arr, "queries", &nulls, &n);
	MemoryRejectNulls(nulls, n, "query", NULL);
	RecallInto(fcinfo, &space, queries, n, true, k,
			   PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3), !PG_ARGISNULL(3));
	SPI_finish();
	AgentmemTimerRecord(&timer, AGENTMEM_OP_RECALL_BATCH);
	return (Datum) 0;
}

/*
 * agentmem.recall_text(space, model, query text, k int DEFAULT 10, filter
 *		jsonb DEFAULT NULL): recall with the query's cached embedding.
 */
Datum
agentmem_recall_text(PG_FUNCTION_ARGS)
{
	AgentmemTimer timer;
	text	   *name = MemoryTextArg(fcinfo, 0, "space");
	text	   *model = MemoryTextArg(fcinfo, 1, "model");
	text	   *query = MemoryTextArg(fcinfo, 2, "query");
	int			k = recall_k(fcinfo, 3);
	Datum		text_datum = PointerGetDatum(query);
	Datum	   *emb;
	bool	   *found;
	int			nmissing,
				first_missing;
	MemorySpace space;

	AgentmemTimerStart(&timer);
	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	MemorySpaceOpen(name, ACL_SELECT, "recall_text", &space);
	emb = CacheLookupTexts(model, &text_datum, 1, &found, &nmissing, &first_missing);
	if (nmissing > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the query has no cached embedding for model \"%s\"",
						MemoryClipName(text_to_cstring(model))),
				 errhint("Embed it and store it with agentmem.cache_put first.")));
	RecallInto(fcinfo, &space, emb, 1, false, k,
			   PG_ARGISNULL(4) ? (Datum) 0 : PG_GETARG_DATUM(4), !PG_ARGISNULL(4));
	SPI_finish();
	AgentmemTimerRecord(&timer, AGENTMEM_OP_RECALL);
	return (Datum) 0;
}
