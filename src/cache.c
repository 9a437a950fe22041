/*
 * cache.c
 *		The embedding cache: put, get, misses, claim, wait and evict.
 *
 * An entry of agentmem.cache is keyed by SHA-256 over the model name, one
 * 0x00 byte and the text (the bytes in the database encoding), so only
 * an exact match of both is ever a hit.  Texts are not stored.
 *
 * Lookups probe the primary key directly (no planner, no executor: a few
 * microseconds a key), as the caller and with a fresh snapshot.  A hit
 * writes nothing: the counters are in shared memory (cachestats.c), and
 * an entry's last_used, which orders eviction, is refreshed only when it
 * is older than agentmem.cache_touch_interval, for all such hits of a call
 * in one UPDATE that skips rows another session has locked.
 *
 * The thundering herd: cache_claim returns the uncached texts that no
 * other live session holds a fresh claim on, and records claims for them
 * (agentmem.cache_claims); cache_put releases the claims of what it
 * stores; cache_wait waits, bounded, until the texts others claimed are
 * stored, or nobody is working on them any more.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "storage/procarray.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "memory.h"
#include "stats.h"

PG_FUNCTION_INFO_V1(agentmem_cache_key);
PG_FUNCTION_INFO_V1(agentmem_cache_put);
PG_FUNCTION_INFO_V1(agentmem_cache_get);
PG_FUNCTION_INFO_V1(agentmem_cache_misses);
PG_FUNCTION_INFO_V1(agentmem_cache_claim);
PG_FUNCTION_INFO_V1(agentmem_cache_wait);
PG_FUNCTION_INFO_V1(agentmem_cache_evict);
PG_FUNCTION_INFO_V1(agentmem_backend_alive);

#define CACHE_GRANT_HINT \
	"GRANT SELECT, INSERT, UPDATE, DELETE ON agentmem.cache, agentmem.cache_models, agentmem.cache_claims TO %s;"

/* A batch of texts of one model, with their keys. */
typedef struct CacheBatch
{
	text	   *model;
	int64		model_key;
	int			n;
	Datum	   *texts;			/* none NULL */
	bytea	  **keys;
} CacheBatch;

/* What a probe found: per position, the embedding or not. */
typedef struct CacheProbe
{
	Datum	   *embeddings;		/* detoasted copies; 0 for a miss */
	bool	   *found;
	int			nfound;
	int			first_missing;	/* 1-based; 0 if none */
} CacheProbe;

/* ---------------------------------------------------------------- keys */

static void
hash_key(pg_cryptohash_ctx *ctx, text *model, text *content, uint8 *out)
{
	static const uint8 separator = 0;

	if (pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (uint8 *) VARDATA_ANY(model), VARSIZE_ANY_EXHDR(model)) < 0 ||
		pg_cryptohash_update(ctx, &separator, 1) < 0 ||
		pg_cryptohash_update(ctx, (uint8 *) VARDATA_ANY(content), VARSIZE_ANY_EXHDR(content)) < 0 ||
		pg_cryptohash_final(ctx, out, CACHE_KEY_LEN) < 0)
		elog(ERROR, "could not compute a SHA-256 digest: %s", pg_cryptohash_error(ctx));
}

/* The 64-bit key that groups a model's entries and counters (never 0). */
static int64
model_key(text *model)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	uint8		digest[CACHE_KEY_LEN];
	int64		key;

	if (pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (uint8 *) VARDATA_ANY(model), VARSIZE_ANY_EXHDR(model)) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not compute a SHA-256 digest: %s", pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);
	memcpy(&key, digest, sizeof(key));
	return key == 0 ? 1 : key;
}

static text *
check_model(text *model)
{
	if (VARSIZE_ANY_EXHDR(model) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model name must not be empty")));
	return model;
}

/* The texts of an array argument with their keys; NULL texts are errors. */
static void
batch_init(CacheBatch *b, text *model, Datum *texts, int n)
{
	pg_cryptohash_ctx *ctx;
	int			i;

	b->model = check_model(model);
	b->model_key = model_key(model);
	b->n = n;
	b->texts = texts;
	b->keys = palloc(sizeof(bytea *) * Max(n, 1));
	ctx = pg_cryptohash_create(PG_SHA256);
	for (i = 0; i < n; i++)
	{
		b->keys[i] = palloc(VARHDRSZ + CACHE_KEY_LEN);
		SET_VARSIZE(b->keys[i], VARHDRSZ + CACHE_KEY_LEN);
		hash_key(ctx, model, DatumGetTextPP(texts[i]), (uint8 *) VARDATA(b->keys[i]));
	}
	pg_cryptohash_free(ctx);
}

static void
batch_from_args(FunctionCallInfo fcinfo, CacheBatch *b)
{
	text	   *model = MemoryTextArg(fcinfo, 0, "model");
	ArrayType  *arr = MemoryArrayArg(fcinfo, 1, "texts");
	Datum	   *texts;
	bool	   *nulls;
	int			n;

	texts = MemoryArrayElements(arr, "texts", &nulls, &n);
	MemoryRejectNulls(nulls, n, "text", NULL);
	batch_init(b, model, texts, n);
}

static ArrayType *
keys_array(bytea **keys, int n)
{
	return construct_array((Datum *) keys, n, BYTEAOID, -1, false, TYPALIGN_INT);
}

/* ---------------------------------------------------------------- tables */

static Oid
cache_table(const char *name)
{
	return get_relname_relid(name, get_namespace_oid("agentmem", false));
}

static void
cache_check_privileges(Oid relid, AclMode mode, const char *action)
{
	AclMode		missing = mode & ~pg_class_aclmask(relid, GetUserId(), mode, ACLMASK_ALL);

	if (missing)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for the embedding cache"),
				 errdetail("%s needs %s%s%s%s on table agentmem.%s.", action,
						   (missing & ACL_SELECT) ? "SELECT " : "",
						   (missing & ACL_INSERT) ? "INSERT " : "",
						   (missing & ACL_UPDATE) ? "UPDATE " : "",
						   (missing & ACL_DELETE) ? "DELETE " : "",
						   get_rel_name(relid)),
				 errhint(CACHE_GRANT_HINT,
						 quote_identifier(GetUserNameFromId(GetUserId(), false)))));
}

/* May this call refresh last_used?  Not read-only, and allowed to. */
static bool
cache_may_touch(Oid relid)
{
	return !RecoveryInProgress() && !XactReadOnly &&
		pg_class_aclcheck(relid, GetUserId(), ACL_UPDATE) == ACLCHECK_OK;
}

/* Order positions by their keys (ties by position). */
static int
key_index_cmp(const void *a, const void *b, void *arg)
{
	bytea	  **keys = (bytea **) arg;
	int			ia = *(const int *) a,
				ib = *(const int *) b;
	int			c = memcmp(VARDATA(keys[ia]), VARDATA(keys[ib]), CACHE_KEY_LEN);

	return c != 0 ? c : (ia > ib) - (ia < ib);
}

/*
 * Probe the primary key of agentmem.cache for every key of the batch, as
 * the caller, with a fresh snapshot (so that cache_wait sees what others
 * committed meanwhile).  Found embeddings are detoasted copies in the
 * caller's memory context.  Keys of hits older than the touch interval
 * go to *stale (if given).
 */
static void
cache_probe(CacheBatch *b, CacheProbe *p, bytea ***stale, int *nstale)
{
	Oid			relid = cache_table("cache");
	Relation	rel,
				idx;
	AttrNumber	att_emb,
				att_used;
	Snapshot	snap;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	ScanKeyData skey;
	TimestampTz threshold;
	int		   *order;
	int			j;

	cache_check_privileges(relid, ACL_SELECT, "a cache lookup");
	p->embeddings = palloc0(sizeof(Datum) * Max(b->n, 1));
	p->found = palloc0(sizeof(bool) * Max(b->n, 1));
	p->nfound = 0;
	p->first_missing = 0;
	if (stale)
	{
		*stale = palloc(sizeof(bytea *) * Max(b->n, 1));
		*nstale = 0;
	}
	threshold = GetCurrentTimestamp() - (int64) cache_touch_interval * USECS_PER_SEC;

	rel = table_open(relid, AccessShareLock);
	idx = index_open(RelationGetPrimaryKeyIndex(rel), AccessShareLock);
	att_emb = get_attnum(relid, "embedding");
	att_used = get_attnum(relid, "last_used");
	CommandCounterIncrement();
	snap = RegisterSnapshot(GetTransactionSnapshot());
	scan = index_beginscan(rel, idx, snap, 1, 0);
	slot = table_slot_create(rel, NULL);

	/*
	 * Probe in key order: successive descents then share the upper pages
	 * of the index, and often a leaf, while they are in the CPU's cache.
	 */
	order = palloc(sizeof(int) * Max(b->n, 1));
	for (j = 0; j < b->n; j++)
		order[j] = j;
	qsort_arg(order, b->n, sizeof(int), key_index_cmp, b->keys);
	for (j = 0; j < b->n; j++)
	{
		int			i = order[j];
		bool		isnull;

		ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_BYTEAEQ, PointerGetDatum(b->keys[i]));
		index_rescan(scan, &skey, 1, NULL, 0);
		if (!index_getnext_slot(scan, ForwardScanDirection, slot))
			continue;
		p->embeddings[i] = PointerGetDatum(PG_DETOAST_DATUM_COPY(slot_getattr(slot, att_emb, &isnull)));
		p->found[i] = true;
		p->nfound++;
		if (stale && DatumGetTimestampTz(slot_getattr(slot, att_used, &isnull)) < threshold)
			(*stale)[(*nstale)++] = b->keys[i];
		CHECK_FOR_INTERRUPTS();
	}
	for (j = 0; j < b->n && p->first_missing == 0; j++)
		if (!p->found[j])
			p->first_missing = j + 1;
	pfree(order);
	ExecDropSingleTupleTableSlot(slot);
	index_endscan(scan);
	UnregisterSnapshot(snap);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
}

/* Refresh last_used of stale hits, skipping rows others have locked. */
static void
cache_touch(bytea **keys, int n)
{
	Oid			argtypes[1] = {BYTEAARRAYOID};
	Datum		values[1];

	if (n == 0 || !cache_may_touch(cache_table("cache")))
		return;
	values[0] = PointerGetDatum(keys_array(keys, n));
	SPI_connect();
	if (SPI_execute_with_args("UPDATE agentmem.cache c SET last_used = pg_catalog.clock_timestamp()"
							  " FROM (SELECT key FROM agentmem.cache WHERE key = ANY ($1)"
							  " FOR UPDATE SKIP LOCKED) s WHERE c.key = s.key",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "agentmem: cache touch failed");
	SPI_finish();
}

/* A counted lookup: probe, count hits and misses, touch stale hits. */
static void
cache_lookup(CacheBatch *b, CacheProbe *p)
{
	bytea	  **stale;
	int			nstale;

	cache_probe(b, p, &stale, &nstale);
	CacheCount(b->model_key, b->model, CACHE_HITS, p->nfound);
	CacheCount(b->model_key, b->model, CACHE_MISSES, b->n - p->nfound);
	cache_touch(stale, nstale);
}

/*
 * For memory.c and recall.c: the cached embeddings of texts (none NULL),
 * counted as lookups.  SPI may be connected.
 */
Datum *
CacheLookupTexts(text *model, Datum *texts, int n, bool **found,
				 int *nmissing, int *first_missing)
{
	CacheBatch	b;
	CacheProbe	p;

	batch_init(&b, model, texts, n);
	cache_lookup(&b, &p);
	*found = p.found;
	*nmissing = n - p.nfound;
	*first_missing = p.first_missing;
	return p.embeddings;
}

/* ---------------------------------------------------------------- SQL API */

/* agentmem.cache_key(model, content) RETURNS bytea */
Datum
agentmem_cache_key(PG_FUNCTION_ARGS)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	bytea	   *key = palloc(VARHDRSZ + CACHE_KEY_LEN);

	SET_VARSIZE(key, VARHDRSZ + CACHE_KEY_LEN);
	hash_key(ctx, PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1), (uint8 *) VARDATA(key));
	pg_cryptohash_free(ctx);
	PG_RETURN_BYTEA_P(key);
}

/* agentmem.cache_get(model, texts) RETURNS TABLE(ord int, embedding vector) */
Datum
agentmem_cache_get(PG_FUNCTION_ARGS)
{
	AgentmemTimer timer;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	CacheBatch	b;
	CacheProbe	p;
	int			i;

	AgentmemTimerStart(&timer);
	batch_from_args(fcinfo, &b);
	InitMaterializedSRF(fcinfo, 0);
	cache_lookup(&b, &p);
	for (i = 0; i < b.n; i++)
	{
		Datum		values[2] = {Int32GetDatum(i + 1), p.embeddings[i]};
		bool		nulls[2] = {false, !p.found[i]};

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	AgentmemTimerRecord(&timer, AGENTMEM_OP_CACHE_LOOKUP);
	return (Datum) 0;
}

/*
 * Keep in `mask` only the first position of each distinct key; returns how
 * many remain.
 */
static int
first_occurrences(bytea **keys, int n, bool *mask)
{
	int		   *idx = palloc(sizeof(int) * Max(n, 1));
	int			m = 0,
				i,
				kept = 0;

	for (i = 0; i < n; i++)
		if (mask[i])
			idx[m++] = i;
	qsort_arg(idx, m, sizeof(int), key_index_cmp, keys);
	for (i = 0; i < m; i++)
	{
		if (i > 0 && memcmp(VARDATA(keys[idx[i]]), VARDATA(keys[idx[i - 1]]), CACHE_KEY_LEN) == 0)
			mask[idx[i]] = false;
		else
			kept++;
	}
	pfree(idx);
	return kept;
}

static void
emit_texts(FunctionCallInfo fcinfo, CacheBatch *b, bool *mask)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			i;

	for (i = 0; i < b->n; i++)
	{
		Datum		values[2] = {Int32GetDatum(i + 1), b->texts[i]};
		bool		nulls[2] = {false, false};

		if (mask[i])
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/*
 * agentmem.cache_misses(model, texts) RETURNS TABLE(ord int, content text):
 * each distinct uncached text once, at its first position.
 */
Datum
agentmem_cache_misses(PG_FUNCTION_ARGS)
{
	AgentmemTimer timer;
	CacheBatch	b;
	CacheProbe	p;
	bool	   *missing;
	int			i;

	AgentmemTimerStart(&timer);
	batch_from_args(fcinfo, &b);
	InitMaterializedSRF(fcinfo, 0);
	cache_lookup(&b, &p);
	missing = palloc(sizeof(bool) * Max(b.n, 1));
	for (i = 0; i < b.n; i++)
		missing[i] = !p.found[i];
	(void) first_occurrences(b.keys, b.n, missing);
	emit_texts(fcinfo, &b, missing);
	AgentmemTimerRecord(&timer, AGENTMEM_OP_CACHE_LOOKUP);
	return (Datum) 0;
}

static int
int64_cmp(const void *a, const void *b)
{
	int64		x = *(const int64 *) a,
				y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/* Delete by the given SQL (RETURNING model_key) and count per model. */
static uint64
cache_delete_counted(const char *sql, int nargs, Oid *argtypes, Datum *values)
{
	uint64		n,
				i,
				run = 0;
	int64		prev = 0;
	int64	   *keys;

	if (SPI_execute_with_args(sql, nargs, argtypes, values, NULL, false, 0) != SPI_OK_DELETE_RETURNING)
		elog(ERROR, "agentmem: cache eviction failed");
	n = SPI_processed;
	keys = palloc(sizeof(int64) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		bool		isnull;

		keys[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
	}
	/* a handful of models: count runs of the same key after sorting */
	qsort(keys, n, sizeof(int64), int64_cmp);
	for (i = 0; i <= n; i++)
	{
		if (i == n || (run > 0 && keys[i] != prev))
		{
			if (run > 0)
				CacheCount(prev, NULL, CACHE_EVICTIONS, run);
			run = 0;
		}
		if (i < n)
		{
			prev = keys[i];
			run++;
		}
	}
	return n;
}

/* Evict the n least recently used entries (fewer if others hold locks). */
static uint64
cache_evict_lru(int64 n)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(n)};

	if (n <= 0)
		return 0;
	return cache_delete_counted("DELETE FROM agentmem.cache c USING (SELECT key FROM agentmem.cache"
								" ORDER BY last_used LIMIT $1 FOR UPDATE SKIP LOCKED) v"
								" WHERE c.key = v.key RETURNING c.model_key",
								1, argtypes, values);
}

/* The number of entries, from the counts kept by the table's triggers. */
static int64
cache_entries(void)
{
	bool		isnull;
	Datum		d;

	if (SPI_execute("SELECT pg_catalog.sum(entries)::int8 FROM agentmem.cache_count", false, 1) != SPI_OK_SELECT)
		elog(ERROR, "agentmem: cache count failed");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetInt64(d);
}

/*
 * agentmem.cache_put(model, texts, embeddings) RETURNS bigint: stores the
 * entries not cached yet, releases claims on all of them and enforces
 * agentmem.cache_max_entries; returns how many entries are new.
 */
Datum
agentmem_cache_put(PG_FUNCTION_ARGS)
{
	AgentmemTimer timer;
	CacheBatch	b;
	ArrayType  *embarr;
	bool	   *embnulls;
	int			nemb;
	Oid			relid = cache_table("cache");
	Oid			argtypes[3];
	Datum		values[3];
	uint64		inserted;

	AgentmemTimerStart(&timer);
	batch_from_args(fcinfo, &b);
	embarr = MemoryArrayArg(fcinfo, 2, "embeddings");
	(void) MemoryArrayElements(embarr, "embeddings", &embnulls, &nemb);
	if (nemb != b.n)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("texts has %d element%s but embeddings has %d: element %d has no %s",
						b.n, b.n == 1 ? "" : "s", nemb, Min(b.n, nemb) + 1,
						b.n < nemb ? "text" : "embedding"),
				 errdetail("Nothing was stored.")));
	MemoryRejectNulls(embnulls, nemb, "embedding", "Nothing was stored.");
	cache_check_privileges(relid, ACL_INSERT, "cache_put");

	SPI_connect();
	argtypes[0] = INT8OID;
	argtypes[1] = TEXTOID;
	values[0] = Int64GetDatum(b.model_key);
	values[1] = PointerGetDatum(b.model);
	if (SPI_execute_plan(MemoryPlan("INSERT INTO agentmem.cache_models (model_key, model)"
									" VALUES ($1, $2) ON CONFLICT DO NOTHING", 2, argtypes),
						 values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "agentmem: cache model insert failed");

	argtypes[0] = BYTEAARRAYOID;
	argtypes[1] = INT8OID;
	argtypes[2] = get_array_type(ARR_ELEMTYPE(embarr));
	values[0] = PointerGetDatum(keys_array(b.keys, b.n));
	values[1] = Int64GetDatum(b.model_key);
	values[2] = PointerGetDatum(embarr);
	if (SPI_execute_plan(MemoryPlan("INSERT INTO agentmem.cache (key, model_key, embedding)"
									" SELECT u.k, $2, u.e FROM ROWS FROM (pg_catalog.unnest($1),"
									" pg_catalog.unnest($3)) AS u(k, e)"
									" ON CONFLICT (key) DO NOTHING", 3, argtypes),
						 values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "agentmem: cache insert failed");
	inserted = SPI_processed;
	if (SPI_execute_plan(MemoryPlan("DELETE FROM agentmem.cache_claims WHERE key = ANY ($1)",
									1, argtypes),
						 values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "agentmem: cache claim release failed");
	CacheCount(b.model_key, b.model, CACHE_PUTS, inserted);

	if (cache_max_entries > 0 && inserted > 0)
		(void) cache_evict_lru(cache_entries() - cache_max_entries);
	SPI_finish();
	AgentmemTimerRecord(&timer, AGENTMEM_OP_CACHE_PUT);
	PG_RETURN_INT64((int64) inserted);
}

static int
key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, CACHE_KEY_LEN);
}

/* The keys of the positions in mask, as a bytea[] datum. */
static Datum
masked_keys(CacheBatch *b, bool *mask, int *n)
{
	bytea	  **keys = palloc(sizeof(bytea *) * Max(b->n, 1));
	int			i;

	*n = 0;
	for (i = 0; i < b->n; i++)
		if (mask[i])
			keys[(*n)++] = b->keys[i];
	return PointerGetDatum(keys_array(keys, *n));
}

/* Keep in mask only positions whose key the last SPI result returned. */
static void
keep_returned_keys(CacheBatch *b, bool *mask)
{
	uint64		n = SPI_processed,
				r;
	uint8	   *got = palloc(CACHE_KEY_LEN * Max(n, 1));
	int			i;

	for (r = 0; r < n; r++)
	{
		bool		isnull;
		bytea	   *k = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[r],
													  SPI_tuptable->tupdesc, 1, &isnull));

		memcpy(got + r * CACHE_KEY_LEN, VARDATA_ANY(k), CACHE_KEY_LEN);
	}
	qsort(got, n, CACHE_KEY_LEN, key_cmp);
	for (i = 0; i < b->n; i++)
		if (mask[i] && bsearch(VARDATA(b->keys[i]), got, n, CACHE_KEY_LEN, key_cmp) == NULL)
			mask[i] = false;
}

static Interval *
interval_arg(FunctionCallInfo fcinfo, int argno, const char *argname, bool zero_ok)
{
	Interval   *iv;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", argname)));
	iv = PG_GETARG_INTERVAL_P(argno);
	if (iv->month < 0 || iv->day < 0 || iv->time < 0 ||
		(!zero_ok && iv->month == 0 && iv->day == 0 && iv->time == 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be %s", argname, zero_ok ? "zero or positive" : "positive")));
	return iv;
}

/*
 * agentmem.cache_claim(model, texts, lease interval DEFAULT '30 s')
 *		RETURNS TABLE(ord int, content text)
 *
 * The distinct uncached texts (first position) that this session should
 * embed: those on which nobody else holds a claim that is fresh (lease not
 * expired) and alive (its session still connected).  Claims them for
 * `lease`.  A text that someone stored meanwhile is not returned.
 */
Datum
agentmem_cache_claim(PG_FUNCTION_ARGS)
{
	CacheBatch	b;
	CacheProbe	p;
	bool	   *claim;
	int			n,
				i;
	Oid			argtypes[3] = {BYTEAARRAYOID, INT8OID, INTERVALOID};
	Datum		values[3];

	batch_from_args(fcinfo, &b);
	values[2] = IntervalPGetDatum(interval_arg(fcinfo, 2, "lease", false));
	InitMaterializedSRF(fcinfo, 0);
	cache_lookup(&b, &p);
	claim = palloc(sizeof(bool) * Max(b.n, 1));
	for (i = 0; i < b.n; i++)
		claim[i] = !p.found[i];
	if (first_occurrences(b.keys, b.n, claim) == 0)
		return (Datum) 0;
	values[0] = masked_keys(&b, claim, &n);
	values[1] = Int64GetDatum(b.model_key);

	SPI_connect();
	if (SPI_execute_plan(MemoryPlan("INSERT INTO agentmem.cache_claims AS c"
									" (key, model_key, claimer_pid, claimed_at, expires_at)"
									" SELECT k, $2, pg_catalog.pg_backend_pid(), pg_catalog.clock_timestamp(),"
									" pg_catalog.clock_timestamp() + $3 FROM pg_catalog.unnest($1) AS k"
									" ON CONFLICT (key) DO UPDATE SET model_key = excluded.model_key,"
									" claimer_pid = excluded.claimer_pid, claimed_at = excluded.claimed_at,"
									" expires_at = excluded.expires_at"
									" WHERE c.expires_at <= pg_catalog.clock_timestamp()"
									" OR c.claimer_pid = excluded.claimer_pid"
									" OR NOT agentmem._backend_alive(c.claimer_pid)"
									" RETURNING key", 3, argtypes),
						 values, NULL, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "agentmem: cache claim failed");
	keep_returned_keys(&b, claim);

	/* stored by someone between our lookup and our claim: release those */
	cache_probe(&b, &p, NULL, NULL);
	for (i = 0; i < b.n; i++)
		p.found[i] = p.found[i] && claim[i];
	values[0] = masked_keys(&b, p.found, &n);
	if (n > 0 &&
		SPI_execute_with_args("DELETE FROM agentmem.cache_claims WHERE key = ANY ($1)"
							  " AND claimer_pid = pg_catalog.pg_backend_pid()",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "agentmem: cache claim release failed");
	SPI_finish();
	for (i = 0; i < b.n; i++)
		claim[i] = claim[i] && !p.found[i];
	emit_texts(fcinfo, &b, claim);
	return (Datum) 0;
}

/* Does a live session other than ours hold a fresh claim on a missing key? */
static bool
others_working(CacheBatch *b, CacheProbe *p)
{
	Oid			argtypes[1] = {BYTEAARRAYOID};
	Datum		values[1];
	bool	   *missing = palloc(sizeof(bool) * Max(b->n, 1));
	bool		working;
	int			n,
				i;

	for (i = 0; i < b->n; i++)
		missing[i] = !p->found[i];
	values[0] = masked_keys(b, missing, &n);
	SPI_connect();
	if (SPI_execute_plan(MemoryPlan("SELECT 1 FROM agentmem.cache_claims WHERE key = ANY ($1)"
									" AND expires_at > pg_catalog.clock_timestamp()"
									" AND claimer_pid <> pg_catalog.pg_backend_pid()"
									" AND agentmem._backend_alive(claimer_pid) LIMIT 1",
									1, argtypes),
						 values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "agentmem: cache claim lookup failed");
	working = SPI_processed > 0;
	SPI_finish();
	return working;
}

static int64
interval_usecs(Interval *iv)
{
	double		us = (double) iv->time +
		((double) iv->day + (double) iv->month * DAYS_PER_MONTH) * USECS_PER_DAY;

	return us > (double) PG_INT64_MAX / 2 ? PG_INT64_MAX / 2 : (int64) us;
}

/*
 * agentmem.cache_wait(model, texts, timeout interval DEFAULT '10 s')
 *		RETURNS TABLE(ord int, embedding vector)
 *
 * Waits until every text is cached, or the timeout passes, or no other
 * live session holds a fresh claim on any missing text (nobody would
 * store it: claim it yourself).  Returns one row per input, NULL for a
 * text still missing.  Polls every 5 to 100 ms with a fresh snapshot, so
 * it needs READ COMMITTED.  Not counted as a lookup.
 */
Datum
agentmem_cache_wait(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	CacheBatch	b;
	CacheProbe	p;
	TimestampTz deadline;
	long		sleep_ms = 5;
	MemoryContext loopcxt,
				old;
	int			i;

	batch_from_args(fcinfo, &b);
	deadline = GetCurrentTimestamp() + interval_usecs(interval_arg(fcinfo, 2, "timeout", true));
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("agentmem.cache_wait needs the READ COMMITTED isolation level"),
				 errdetail("With one snapshot per transaction it would never see what other sessions store.")));
	InitMaterializedSRF(fcinfo, 0);
	loopcxt = AllocSetContextCreate(CurrentMemoryContext, "agentmem cache_wait",
									ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(loopcxt);
	for (;;)
	{
		TimestampTz now;

		MemoryContextReset(loopcxt);
		cache_probe(&b, &p, NULL, NULL);
		now = GetCurrentTimestamp();
		if (p.nfound == b.n || now >= deadline || !others_working(&b, &p))
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(sleep_ms, (deadline - now) / 1000 + 1), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		sleep_ms = Min(sleep_ms * 2, 100);
	}
	MemoryContextSwitchTo(old);
	for (i = 0; i < b.n; i++)
	{
		Datum		values[2] = {Int32GetDatum(i + 1), p.embeddings[i]};
		bool		nulls[2] = {false, !p.found[i]};

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	MemoryContextDelete(loopcxt);
	return (Datum) 0;
}

/*
 * agentmem.cache_evict(max_entries bigint DEFAULT NULL, older_than interval
 *		DEFAULT NULL) RETURNS bigint
 *
 * Evicts entries unused for older_than, then least recently used entries
 * until at most max_entries remain (agentmem.cache_max_entries when both
 * are NULL); drops expired claims; re-counts the entries first.  Returns
 * how many entries were evicted.
 */
Datum
agentmem_cache_evict(PG_FUNCTION_ARGS)
{
	Oid			relid = cache_table("cache");
	int64		limit = -1;
	uint64		evicted = 0;

	if (!PG_ARGISNULL(0))
	{
		limit = PG_GETARG_INT64(0);
		if (limit < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("max_entries must be zero or positive")));
	}
	else if (PG_ARGISNULL(1) && cache_max_entries > 0)
		limit = cache_max_entries;
	cache_check_privileges(relid, ACL_SELECT | ACL_UPDATE | ACL_DELETE, "cache_evict");

	SPI_connect();
	if (SPI_execute("SELECT agentmem._cache_recount()", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "agentmem: cache recount failed");
	if (!PG_ARGISNULL(1))
	{
		Oid			argtypes[1] = {INTERVALOID};
		Datum		values[1] = {IntervalPGetDatum(interval_arg(fcinfo, 1, "older_than", true))};

		evicted += cache_delete_counted("DELETE FROM agentmem.cache c USING (SELECT key FROM agentmem.cache"
										" WHERE last_used < pg_catalog.clock_timestamp() - $1"
										" FOR UPDATE SKIP LOCKED) v"
										" WHERE c.key = v.key RETURNING c.model_key",
										1, argtypes, values);
	}
	if (limit >= 0)
		evicted += cache_evict_lru(cache_entries() - limit);
	if (SPI_execute("DELETE FROM agentmem.cache_claims WHERE expires_at < pg_catalog.clock_timestamp()",
					false, 0) != SPI_OK_DELETE)
		elog(ERROR, "agentmem: expired claims cleanup failed");
	SPI_finish();
	PG_RETURN_INT64((int64) evicted);
}

/* agentmem._backend_alive(pid) RETURNS bool: is that backend connected? */
Datum
agentmem_backend_alive(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(BackendPidGetProc(PG_GETARG_INT32(0)) != NULL);
}
