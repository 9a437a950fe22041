/*
 * cachestats.c
 *		The embedding cache's settings and its counters in shared memory.
 *
 * Hits, misses, puts and evictions are counted per (database, model) in a
 * fixed shared hash table, so that counting a hit writes no table row.  A
 * call adds to its model's counters once per kind: a shared lock to find
 * the entry and atomic additions (the exclusive lock only to create an
 * entry).  The table exists only with agentmem in shared_preload_libraries;
 * without it the cache works, nothing is counted, and the counters (so
 * agentmem.cache_stats) raise an error that says how to enable them.
 *
 * A database's entry of model key 0 holds the time its counters were last
 * reset (or began).
 */
#include "postgres.h"

#include <limits.h>

#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "memory.h"

PG_FUNCTION_INFO_V1(agentmem_cache_counters);
PG_FUNCTION_INFO_V1(agentmem_cache_stats_reset);

#define CACHE_STATS_MAX 1024	/* (database, model) pairs in the cluster */
#define CACHE_MODEL_SHOWN 64	/* bytes of a model name kept for display */
#define CACHE_DB_ENTRY 0		/* model key of a database's reset entry */

int			cache_max_entries = 0;
int			cache_touch_interval = 60;

typedef struct CacheStatsKey
{
	Oid			dbid;
	int64		model_key;
} CacheStatsKey;

typedef struct CacheStatsEntry
{
	CacheStatsKey key;
	pg_atomic_uint64 counters[CACHE_NCOUNTERS];
	TimestampTz reset;			/* used in the database's entry */
	char		model[CACHE_MODEL_SHOWN];
} CacheStatsEntry;

typedef struct CacheStatsShared
{
	LWLock	   *lock;
} CacheStatsShared;

static CacheStatsShared *cache_shared = NULL;
static HTAB *cache_hash = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
cache_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(CacheStatsShared)) +
						   hash_estimate_size(CACHE_STATS_MAX, sizeof(CacheStatsEntry)));
	RequestNamedLWLockTranche("agentmem_cache", 1);
}

static void
cache_shmem_startup(void)
{
	HASHCTL		info;
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	cache_shared = ShmemInitStruct("agentmem cache stats", sizeof(CacheStatsShared), &found);
	if (!found)
		cache_shared->lock = &(GetNamedLWLockTranche("agentmem_cache"))->lock;
	info.keysize = sizeof(CacheStatsKey);
	info.entrysize = sizeof(CacheStatsEntry);
	cache_hash = ShmemInitHash("agentmem cache stats hash", CACHE_STATS_MAX, CACHE_STATS_MAX,
							   &info, HASH_ELEM | HASH_BLOBS);
	LWLockRelease(AddinShmemInitLock);
}

/* Called from _PG_init: settings, and shared memory when preloaded. */
void
CacheStatsInit(void)
{
	DefineCustomIntVariable("agentmem.cache_max_entries",
							"Most entries the embedding cache keeps (0: no limit).",
							"cache_put evicts the least recently used entries beyond it.",
							&cache_max_entries, 0, 0, INT_MAX,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("agentmem.cache_touch_interval",
							"How stale a cache entry's last use may get before a hit refreshes it.",
							"Eviction order is accurate to this interval; 0 refreshes on every hit.",
							&cache_touch_interval, 60, 0, 7 * 24 * 3600,
							PGC_USERSET, GUC_UNIT_S, NULL, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = cache_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = cache_shmem_startup;
}

static void
entry_init(CacheStatsEntry *e, text *model)
{
	int			i;

	for (i = 0; i < CACHE_NCOUNTERS; i++)
		pg_atomic_init_u64(&e->counters[i], 0);
	e->reset = GetCurrentTimestamp();
	e->model[0] = '\0';
	if (model != NULL)
		text_to_cstring_buffer(model, e->model, sizeof(e->model));
}

static CacheStatsEntry *
entry_enter(int64 model_key, text *model)
{
	CacheStatsKey key;
	CacheStatsEntry *e;
	bool		found;

	MemSet(&key, 0, sizeof(key));
	key.dbid = MyDatabaseId;
	key.model_key = model_key;
	e = hash_search(cache_hash, &key, HASH_ENTER_NULL, &found);
	if (e != NULL && !found)
		entry_init(e, model);
	return e;
}

/*
 * Find or create an entry; the lock is held (shared or exclusive) on
 * return.  Creating a database's first model entry creates its reset
 * entry too, so stats_reset says when counting began.
 */
static CacheStatsEntry *
entry_get(int64 model_key, text *model)
{
	CacheStatsKey key;
	CacheStatsEntry *e;

	MemSet(&key, 0, sizeof(key));
	key.dbid = MyDatabaseId;
	key.model_key = model_key;
	LWLockAcquire(cache_shared->lock, LW_SHARED);
	e = hash_search(cache_hash, &key, HASH_FIND, NULL);
	if (e != NULL)
		return e;
	LWLockRelease(cache_shared->lock);
	LWLockAcquire(cache_shared->lock, LW_EXCLUSIVE);
	if (entry_enter(CACHE_DB_ENTRY, NULL) == NULL)
		return NULL;
	return entry_enter(model_key, model);	/* NULL when the table is full */
}

/* Add n to a model's counter; a no-op without shared memory. */
void
CacheCount(int64 model_key, text *model, CacheCounter counter, uint64 n)
{
	CacheStatsEntry *e;

	if (cache_shared == NULL || n == 0)
		return;
	e = entry_get(model_key, model);
	if (e != NULL)
		pg_atomic_fetch_add_u64(&e->counters[counter], n);
	LWLockRelease(cache_shared->lock);
}

static void
require_shared(void)
{
	if (cache_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the embedding cache statistics need agentmem in shared_preload_libraries"),
				 errhint("Add agentmem to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/*
 * agentmem._cache_counters() RETURNS TABLE(model_key bigint, model text,
 *		hits bigint, misses bigint, puts bigint, evictions bigint,
 *		stats_reset timestamptz): this database's counters, and a row with
 *		model_key 0 for the database itself (when anything was counted or
 *		reset).
 */
Datum
agentmem_cache_counters(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HASH_SEQ_STATUS status;
	CacheStatsEntry *e;
	Datum		values[7];
	bool		nulls[7] = {false};
	int			i;

	require_shared();
	InitMaterializedSRF(fcinfo, 0);
	LWLockAcquire(cache_shared->lock, LW_SHARED);
	hash_seq_init(&status, cache_hash);
	while ((e = hash_seq_search(&status)) != NULL)
	{
		if (e->key.dbid != MyDatabaseId)
			continue;
		values[0] = Int64GetDatum(e->key.model_key);
		values[1] = CStringGetTextDatum(e->model);
		nulls[1] = e->key.model_key == CACHE_DB_ENTRY;
		for (i = 0; i < CACHE_NCOUNTERS; i++)
			values[2 + i] = Int64GetDatum((int64) pg_atomic_read_u64(&e->counters[i]));
		values[6] = TimestampTzGetDatum(e->reset);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(cache_shared->lock);
	return (Datum) 0;
}

/* agentmem.cache_stats_reset() RETURNS timestamptz: for this database */
Datum
agentmem_cache_stats_reset(PG_FUNCTION_ARGS)
{
	HASH_SEQ_STATUS status;
	CacheStatsEntry *e;
	TimestampTz now = GetCurrentTimestamp();

	require_shared();
	LWLockAcquire(cache_shared->lock, LW_EXCLUSIVE);
	hash_seq_init(&status, cache_hash);
	while ((e = hash_seq_search(&status)) != NULL)
		if (e->key.dbid == MyDatabaseId)
			hash_search(cache_hash, &e->key, HASH_REMOVE, NULL);
	e = entry_enter(CACHE_DB_ENTRY, NULL);
	if (e != NULL)
		e->reset = now;
	LWLockRelease(cache_shared->lock);
	PG_RETURN_TIMESTAMPTZ(now);
}
