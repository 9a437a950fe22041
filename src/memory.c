/*
 * memory.c
 *		Memory spaces: finding and checking a space, remember,
 *		remember_texts, forget and space_table.
 *
 * create_space, drop_space and the agentmem.spaces view are SQL (see the
 * install script); recall lives in recall.c.  Everything here runs with
 * the caller's rights.  See memory.h for how names are kept out of SQL.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "parser/parse_type.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "hnsw.h"
#include "memory.h"
#include "stats.h"
#include "vector.h"

PG_FUNCTION_INFO_V1(agentmem_remember);
PG_FUNCTION_INFO_V1(agentmem_remember_texts);
PG_FUNCTION_INFO_V1(agentmem_forget);
PG_FUNCTION_INFO_V1(agentmem_space_table);

/* Names longer than this are clipped in messages. */
#define MEMORY_NAME_SHOWN 64

/* The cache of prepared statements, keyed by argument types and text. */
#define PLAN_KEY_MAX 1024
#define PLAN_CACHE_MAX 256

typedef struct PlanEntry
{
	char		key[PLAN_KEY_MAX];
	SPIPlanPtr	plan;
} PlanEntry;

static HTAB *plan_cache = NULL;

/* Called from _PG_init. */
void
AgentmemMemoryInit(void)
{
	CacheStatsInit();
}

/* A name for messages: the first MEMORY_NAME_SHOWN bytes, then "...". */
const char *
MemoryClipName(const char *name)
{
	int			len = strlen(name);
	int			clip;

	if (len <= MEMORY_NAME_SHOWN)
		return name;
	clip = pg_mbcliplen(name, len, MEMORY_NAME_SHOWN - 3);
	return psprintf("%.*s...", clip, name);
}

const char *
MemoryMetricOperator(MemoryMetric metric)
{
	switch (metric)
	{
		case MEMORY_METRIC_COSINE:
			return "<=>";
		case MEMORY_METRIC_L2:
			return "<->";
		case MEMORY_METRIC_IP:
			return "<#>";
	}
	return NULL;				/* keep the compiler quiet */
}

static void
plan_cache_reset(void)
{
	HASH_SEQ_STATUS status;
	PlanEntry  *e;
	HASHCTL		ctl;

	if (plan_cache != NULL)
	{
		hash_seq_init(&status, plan_cache);
		while ((e = hash_seq_search(&status)) != NULL)
			SPI_freeplan(e->plan);
		hash_destroy(plan_cache);
	}
	ctl.keysize = PLAN_KEY_MAX;
	ctl.entrysize = sizeof(PlanEntry);
	plan_cache = hash_create("agentmem plans", 64, &ctl, HASH_ELEM | HASH_STRINGS);
}

/*
 * A saved generic plan for sql, prepared once per backend.  Generic, so a
 * call does no planning; the plan cache replans it by itself when a table
 * it uses changes.  The cache is emptied when it reaches PLAN_CACHE_MAX
 * statements (a backend touching hundreds of spaces).
 */
SPIPlanPtr
MemoryPlan(const char *sql, int nargs, Oid *argtypes)
{
	char		key[PLAN_KEY_MAX];
	StringInfoData buf;
	PlanEntry  *e;
	bool		found;
	SPIPlanPtr	plan;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < nargs; i++)
		appendStringInfo(&buf, "%u,", argtypes[i]);
	appendStringInfo(&buf, "|%s", sql);
	if (buf.len >= PLAN_KEY_MAX)
		elog(ERROR, "agentmem statement too long to cache (%d bytes)", buf.len);
	MemSet(key, 0, sizeof(key));
	memcpy(key, buf.data, buf.len);
	pfree(buf.data);

	if (plan_cache == NULL || hash_get_num_entries(plan_cache) >= PLAN_CACHE_MAX)
		plan_cache_reset();
	e = hash_search(plan_cache, key, HASH_FIND, &found);
	if (found)
		return e->plan;

	plan = SPI_prepare_cursor(sql, nargs, argtypes, CURSOR_OPT_GENERIC_PLAN);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	e = hash_search(plan_cache, key, HASH_ENTER, NULL);
	e->plan = plan;
	return plan;
}

/*
 * The elements of a one-dimensional array argument (an empty array has
 * none).  Positions in messages are 1-based ordinals, whatever the
 * array's lower bound.
 */
Datum *
MemoryArrayElements(ArrayType *arr, const char *argname, bool **nulls, int *n)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a one-dimensional array", argname)));
	get_typlenbyvalalign(ARR_ELEMTYPE(arr), &typlen, &typbyval, &typalign);
	deconstruct_array(arr, ARR_ELEMTYPE(arr), typlen, typbyval, typalign,
					  &elems, nulls, n);
	return elems;
}

/* ERROR if any element is NULL: "<what> <position> is NULL", with detail. */
void
MemoryRejectNulls(const bool *nulls, int n, const char *what, const char *detail)
{
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s %d is NULL", what, i + 1),
					 detail ? errdetail("%s", detail) : 0));
	}
}

static char *
privilege_names(AclMode mode)
{
	static const struct
	{
		AclMode		bit;
		const char *name;
	}			privs[] = {
		{ACL_SELECT, "SELECT"}, {ACL_INSERT, "INSERT"},
		{ACL_UPDATE, "UPDATE"}, {ACL_DELETE, "DELETE"},
	};
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < lengthof(privs); i++)
		if (mode & privs[i].bit)
			appendStringInfo(&buf, "%s%s", buf.len ? ", " : "", privs[i].name);
	return buf.data;
}

static MemoryMetric
parse_metric(const char *metric, const char *clipped)
{
	if (strcmp(metric, "cosine") == 0)
		return MEMORY_METRIC_COSINE;
	if (strcmp(metric, "l2") == 0)
		return MEMORY_METRIC_L2;
	if (strcmp(metric, "ip") == 0)
		return MEMORY_METRIC_IP;
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("memory space \"%s\" has an unknown metric \"%s\"", clipped, metric)));
	return MEMORY_METRIC_COSINE;	/* keep the compiler quiet */
}

/*
 * The embedding column: its type must be vector(dims).  Fills in the
 * type, its schema and the dimensions.
 */
static void
space_embedding_column(MemorySpace *space)
{
	AttrNumber	attnum = get_attnum(space->relid, "embedding");
	Oid			typid = InvalidOid,
				collid;
	int32		typmod = -1;
	HeapTuple	tup;

	if (attnum != InvalidAttrNumber)
		get_atttypetypmodcoll(space->relid, attnum, &typid, &typmod, &collid);
	tup = OidIsValid(typid) ? SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid)) : NULL;
	if (!HeapTupleIsValid(tup) ||
		strcmp(NameStr(((Form_pg_type) GETSTRUCT(tup))->typname), "vector") != 0 ||
		typmod < 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("table %s of memory space \"%s\" has no column embedding of type vector(n)",
						space->qualname, space->name)));
	space->vectype = typid;
	space->dims = typmod;
	space->vecschema = (char *) quote_identifier(
		get_namespace_name(((Form_pg_type) GETSTRUCT(tup))->typnamespace));
	ReleaseSysCache(tup);
}

/*
 * Find a space by name and check that the caller holds `required` on its
 * table; `action` names the function for the message.  SPI must be
 * connected.
 */
void
MemorySpaceOpen(text *name, AclMode required, const char *action, MemorySpace *space)
{
	static const char *sql =
		"SELECT table_schema::text, table_name::text, metric"
		" FROM agentmem.space_catalog"
		" WHERE pg_catalog.md5(name) = pg_catalog.md5($1) AND name = $1";
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	char	   *schema,
			   *table,
			   *metric;
	Oid			nsp;
	AclMode		missing;

	MemSet(space, 0, sizeof(*space));
	space->name = MemoryClipName(text_to_cstring(name));
	values[0] = PointerGetDatum(name);
	if (SPI_execute_plan(MemoryPlan(sql, 1, argtypes), values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "agentmem: space lookup failed");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("memory space \"%s\" does not exist", space->name),
				 errhint("Create it with agentmem.create_space(space, dims).")));
	schema = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	table = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	metric = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	space->qualname = quote_qualified_identifier(schema, table);
	space->metric = parse_metric(metric, space->name);

	nsp = get_namespace_oid(schema, true);
	space->relid = OidIsValid(nsp) ? get_relname_relid(table, nsp) : InvalidOid;
	if (!OidIsValid(space->relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("the table %s of memory space \"%s\" does not exist",
						space->qualname, space->name),
				 errhint("Drop the space with agentmem.drop_space and create it again.")));

	missing = required & ~pg_class_aclmask(space->relid, GetUserId(), required, ACLMASK_ALL);
	if (missing)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for memory space \"%s\"", space->name),
				 errdetail("%s needs %s on table %s.", action,
						   privilege_names(required), space->qualname),
				 errhint("The owner of the space can grant it: GRANT %s ON %s TO %s;",
						 privilege_names(missing), space->qualname,
						 quote_identifier(GetUserNameFromId(GetUserId(), false)))));
	space_embedding_column(space);
}

/*
 * Check an embedding bound for `space`: the right dimensions and only
 * finite values (the vector type never builds anything else, but a
 * message naming the position is worth the loop).
 */
void
MemoryCheckEmbedding(const MemorySpace *space, Datum value, const char *what, int pos)
{
	Vector	   *v = DatumGetVector(value);
	char	   *label = pos > 0 ? psprintf("%s %d", what, pos) : pstrdup(what);
	int			i;

	if (v->dim != space->dims)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("%s has %d dimensions, but memory space \"%s\" has %d",
						label, v->dim, space->name, space->dims)));
	for (i = 0; i < v->dim; i++)
		if (!isfinite(v->x[i]))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("%s has %s at dimension %d", label,
							isnan(v->x[i]) ? "NaN" : "an infinite value", i + 1)));
	pfree(label);
}

/* A function's array argument, which must not be NULL. */
ArrayType *
MemoryArrayArg(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", argname)));
	return PG_GETARG_ARRAYTYPE_P(argno);
}

/* A function's text argument, which must not be NULL. */
text *
MemoryTextArg(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", argname)));
	return PG_GETARG_TEXT_PP(argno);
}

/*
 * Arrays a (na elements) and b (nb) must pair up; a1 and b1 name one
 * element of each.
 */
static void
length_mismatch(const char *a, const char *a1, int na, const char *b, const char *b1, int nb)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s has %d element%s but %s has %d: element %d has no %s",
					a, na, na == 1 ? "" : "s", b, nb, Min(na, nb) + 1, na < nb ? a1 : b1),
			 errdetail("Nothing was remembered.")));
}

/*
 * Validate what remember is given, element by element, so that the first
 * bad element is reported by position and nothing is inserted.
 */
static void
remember_check(const MemorySpace *space, ArrayType *contents, Datum *embeddings,
			   bool *embnulls, int nemb, ArrayType *metadata)
{
	bool	   *cnulls;
	int			ncontents,
				nmeta = 0,
				i;
	bool	   *mnulls;

	(void) MemoryArrayElements(contents, "contents", &cnulls, &ncontents);
	if (ncontents != nemb)
		length_mismatch("contents", "content", ncontents, "embeddings", "embedding", nemb);
	if (metadata != NULL)
	{
		(void) MemoryArrayElements(metadata, "metadata", &mnulls, &nmeta);
		if (nmeta != ncontents)
			length_mismatch("contents", "content", ncontents, "metadata", "metadata", nmeta);
	}
	for (i = 0; i < ncontents; i++)
	{
		if (cnulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("content %d is NULL", i + 1),
					 errdetail("Nothing was remembered.")));
		if (embnulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("embedding %d is NULL", i + 1),
					 errdetail("Nothing was remembered.")));
		MemoryCheckEmbedding(space, embeddings[i], "embedding", i + 1);
	}
}

/*
 * Run the INSERT with the hnsw index inserts queued, then link them into
 * the graph together (hnswbatch.c): much cheaper than row by row.
 */
static void
insert_batched(SPIPlanPtr plan, Datum *values, const char *nulls)
{
	bool		opened = HnswBatchBegin();

	PG_TRY();
	{
		if (SPI_execute_plan(plan, values, nulls, false, 0) != SPI_OK_INSERT_RETURNING)
			elog(ERROR, "agentmem: remember insert failed");
		if (opened)
			HnswBatchEnd();
	}
	PG_CATCH();
	{
		if (opened)
			HnswBatchAbandon();
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/*
 * Insert the rows in one statement and return their ids in input order:
 * rows are inserted in ordinal order and the identity column hands out
 * increasing ids, so RETURNING yields them in that order.
 */
static void
remember_insert(FunctionCallInfo fcinfo, const MemorySpace *space, Datum contents,
				Datum embeddings, Datum metadata, bool metadata_null)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *sql;
	Oid			argtypes[3] = {TEXTARRAYOID, get_array_type(space->vectype), JSONBARRAYOID};
	Datum		values[3] = {contents, embeddings, metadata};
	char		nulls[3] = {' ', ' ', metadata_null ? 'n' : ' '};
	uint64		i;

	sql = psprintf("INSERT INTO %s (content, embedding, metadata)"
				   " SELECT u.c, u.e, COALESCE(u.m, '{}'::pg_catalog.jsonb)"
				   " FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
				   " pg_catalog.unnest($3)) WITH ORDINALITY AS u(c, e, m, ord)"
				   " ORDER BY u.ord RETURNING id",
				   space->qualname);
	insert_batched(MemoryPlan(sql, 3, argtypes), values, nulls);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		id = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &id, &isnull);
	}
}

/* Check every element, then insert them all: remember and remember_texts. */
static void
remember_rows(FunctionCallInfo fcinfo, const MemorySpace *space, ArrayType *contents,
			  ArrayType *embeddings, Datum *emb, bool *embnulls, int nemb,
			  ArrayType *metadata)
{
	remember_check(space, contents, emb, embnulls, nemb, metadata);
	remember_insert(fcinfo, space, PointerGetDatum(contents), PointerGetDatum(embeddings),
					PointerGetDatum(metadata), metadata == NULL);
}

/*
 * agentmem.remember(space, contents text[], embeddings vector[],
 *					 metadata jsonb[] DEFAULT NULL) RETURNS SETOF bigint
 */
Datum
agentmem_remember(PG_FUNCTION_ARGS)
{
	AgentmemTimer timer;
	text	   *name = MemoryTextArg(fcinfo, 0, "space");
	ArrayType  *contents = MemoryArrayArg(fcinfo, 1, "contents");
	ArrayType  *embeddings = MemoryArrayArg(fcinfo, 2, "embeddings");
	ArrayType  *metadata = PG_ARGISNULL(3) ? NULL : PG_GETARG_ARRAYTYPE_P(3);
	MemorySpace space;
	Datum	   *emb;
	bool	   *embnulls;
	int			nemb;

	AgentmemTimerStart(&timer);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	SPI_connect();
	MemorySpaceOpen(name, ACL_INSERT | ACL_SELECT, "remember", &space);
	emb = MemoryArrayElements(embeddings, "embeddings", &embnulls, &nemb);
	remember_rows(fcinfo, &space, contents, embeddings, emb, embnulls, nemb, metadata);
	SPI_finish();
	AgentmemTimerRecord(&timer, AGENTMEM_OP_REMEMBER);
	return (Datum) 0;
}

/*
 * agentmem.remember_texts(space, model, contents text[],
 *						   metadata jsonb[] DEFAULT NULL) RETURNS SETOF bigint
 *
 * remember with every embedding taken from the cache; if any is missing
 * nothing is inserted and the error says how many and the first position.
 */
Datum
agentmem_remember_texts(PG_FUNCTION_ARGS)
{
	AgentmemTimer timer;
	text	   *name = MemoryTextArg(fcinfo, 0, "space");
	text	   *model = MemoryTextArg(fcinfo, 1, "model");
	ArrayType  *contents = MemoryArrayArg(fcinfo, 2, "contents");
	ArrayType  *metadata = PG_ARGISNULL(3) ? NULL : PG_GETARG_ARRAYTYPE_P(3);
	MemorySpace space;
	Datum	   *texts,
			   *emb;
	bool	   *tnulls,
			   *found;
	int			n,
				nmissing,
				first_missing;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	ArrayType  *embeddings;

	AgentmemTimerStart(&timer);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	SPI_connect();
	MemorySpaceOpen(name, ACL_INSERT | ACL_SELECT, "remember_texts", &space);
	texts = MemoryArrayElements(contents, "contents", &tnulls, &n);
	MemoryRejectNulls(tnulls, n, "content", "Nothing was remembered.");
	emb = CacheLookupTexts(model, texts, n, &found, &nmissing, &first_missing);
	if (nmissing > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%d of %d contents have no cached embedding for model \"%s\"; the first is content %d",
						nmissing, n, MemoryClipName(text_to_cstring(model)), first_missing),
				 errdetail("Nothing was remembered."),
				 errhint("Call agentmem.cache_misses(model, contents), embed what it returns and store it with agentmem.cache_put first.")));
	get_typlenbyvalalign(space.vectype, &typlen, &typbyval, &typalign);
	embeddings = construct_array(emb, n, space.vectype, typlen, typbyval, typalign);
	remember_rows(fcinfo, &space, contents, embeddings, emb, palloc0(sizeof(bool) * Max(n, 1)),
				  n, metadata);
	SPI_finish();
	AgentmemTimerRecord(&timer, AGENTMEM_OP_REMEMBER);
	return (Datum) 0;
}

/* agentmem.forget(space, ids bigint[]) RETURNS bigint: rows deleted */
Datum
agentmem_forget(PG_FUNCTION_ARGS)
{
	text	   *name = MemoryTextArg(fcinfo, 0, "space");
	ArrayType  *ids = MemoryArrayArg(fcinfo, 1, "ids");
	MemorySpace space;
	Oid			argtypes[1] = {INT8ARRAYOID};
	Datum		values[1] = {PointerGetDatum(ids)};
	char	   *sql;
	uint64		deleted;

	SPI_connect();
	MemorySpaceOpen(name, ACL_DELETE | ACL_SELECT, "forget", &space);
	sql = psprintf("DELETE FROM %s WHERE id = ANY ($1)", space.qualname);
	if (SPI_execute_plan(MemoryPlan(sql, 1, argtypes), values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "agentmem: forget failed");
	deleted = SPI_processed;
	SPI_finish();
	PG_RETURN_INT64((int64) deleted);
}

/* agentmem.space_table(space) RETURNS regclass: the table behind a space */
Datum
agentmem_space_table(PG_FUNCTION_ARGS)
{
	text	   *name = MemoryTextArg(fcinfo, 0, "space");
	MemorySpace space;

	SPI_connect();
	MemorySpaceOpen(name, 0, "space_table", &space);
	SPI_finish();
	PG_RETURN_OID(space.relid);
}
