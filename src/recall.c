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
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

#include "memory.h"
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
recall_run(const RecallPlans *plans, Datum *values, int k)
{
	if (SPI_execute_plan(plans->index, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "agentmem: recall failed");
	if (SPI_processed < (uint64) k)
	{
		int			level = NewGUCNestLevel();

		set_guc("enable_seqscan", plans->seqscan);
		SPI_freetuptable(SPI_tuptable);
		if (SPI_execute_plan(plans->exact, values, NULL, false, 0) != SPI_OK_SELECT)
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
	values[1] = Int64GetDatum(k);
	values[2] = filter;
	for (q = 0; q < nqueries; q++)
	{
		values[0] = queries[q];
		recall_run(&plans, values, k);
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

static text *
recall_text_arg(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", argname)));
	return PG_GETARG_TEXT_PP(argno);
}

/*
 * agentmem.recall(space, query vector, k int DEFAULT 10, filter jsonb
 *		DEFAULT NULL) RETURNS TABLE(id, content, metadata, distance)
 */
Datum
agentmem_recall(PG_FUNCTION_ARGS)
{
	text	   *name = recall_text_arg(fcinfo, 0, "space");
	Datum		query;
	int			k = recall_k(fcinfo, 2);
	MemorySpace space;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("query must not be NULL")));
	query = PointerGetDatum(PG_DETOAST_DATUM(PG_GETARG_DATUM(1)));
	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	MemorySpaceOpen(name, ACL_SELECT, "recall", &space);
	RecallInto(fcinfo, &space, &query, 1, false, k,
			   PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3), !PG_ARGISNULL(3));
	SPI_finish();
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
	text	   *name = recall_text_arg(fcinfo, 0, "space");
	ArrayType  *arr;
	int			k = recall_k(fcinfo, 2);
	MemorySpace space;
	Datum	   *queries;
	bool	   *nulls;
	int			n,
				i;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("queries must not be NULL")));
	arr = PG_GETARG_ARRAYTYPE_P(1);
	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	MemorySpaceOpen(name, ACL_SELECT, "recall_batch", &space);
	queries = MemoryArrayElements(arr, "queries", &nulls, &n);
	for (i = 0; i < n; i++)
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("query %d is NULL", i + 1)));
	RecallInto(fcinfo, &space, queries, n, true, k,
			   PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3), !PG_ARGISNULL(3));
	SPI_finish();
	return (Datum) 0;
}

/*
 * agentmem.recall_text(space, model, query text, k int DEFAULT 10, filter
 *		jsonb DEFAULT NULL): recall with the query's cached embedding.
 */
Datum
agentmem_recall_text(PG_FUNCTION_ARGS)
{
	text	   *name = recall_text_arg(fcinfo, 0, "space");
	text	   *model = recall_text_arg(fcinfo, 1, "model");
	text	   *query = recall_text_arg(fcinfo, 2, "query");
	int			k = recall_k(fcinfo, 3);
	Datum		text_datum = PointerGetDatum(query);
	Datum	   *emb;
	bool	   *found;
	int			nmissing,
				first_missing;
	MemorySpace space;

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
	return (Datum) 0;
}
