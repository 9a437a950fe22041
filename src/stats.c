/*
 * stats.c
 *		Latency statistics, N+1 detection and connection churn: settings,
 *		shared memory, hooks and the recording path.
 *
 * Everything here needs shared_preload_libraries = 'agentmem'; loaded any
 * other way, StatsInit does nothing, timers stay off, and the views raise
 * an error (statsfuncs.c).
 *
 * Recording never takes a lock: each process writes only its own slot
 * (stats_internal.h), under a change counter that readers check.  What is
 * recorded, by agentmem.track:
 *	- agentmem: the operations of agentmem itself (hnsw scan, insert and
 *	  build; the memory API and the embedding cache call
 *	  AgentmemLatencyRecord or a timer), and sessions (start, end,
 *	  lifetime, transactions);
 *	- all: also every top-level statement: the 'all statements' latency,
 *	  latency per (userid, dbid, queryid), and N+1 detection.
 * A statement's latency is its execution time as pg_stat_statements counts
 * total_exec_time (ExecutorRun + ExecutorFinish; all of ProcessUtility for
 * utility statements), so the two can be joined on queryid.  Statements
 * that fail are not counted.
 *
 * N+1 detection counts the executions of each queryid within a group of
 * top-level statements of one session: a transaction block (explicit, or
 * the implicit one of a multi-statement query string), or else a burst of
 * autocommit statements, each starting less than
 * agentmem.n_plus_one_burst_gap milliseconds after the previous one ended.
 * A statement repeated agentmem.n_plus_one_threshold times in one group is
 * recorded (and reported, per agentmem.n_plus_one_log).
 */
#include "postgres.h"

#include <time.h>

#include "access/parallel.h"
#include "access/xact.h"
#include "executor/executor.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "parser/scansup.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/utility.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "stats_internal.h"

/*
 * From libpq/auth.h, declared here because that header includes
 * libpq-be.h, which on Debian's builds needs the GSSAPI headers (an extra
 * build dependency) for nothing we use.
 */
struct Port;
typedef void (*ClientAuthentication_hook_type) (struct Port *, int);
extern PGDLLIMPORT ClientAuthentication_hook_type ClientAuthentication_hook;

typedef enum StatsTrack
{
	STATS_TRACK_NONE,
	STATS_TRACK_AGENTMEM,
	STATS_TRACK_ALL
} StatsTrack;

typedef enum StatsN1Log
{
	STATS_N1_LOG_NONE,
	STATS_N1_LOG_NOTICE,
	STATS_N1_LOG_WARNING
} StatsN1Log;

static const struct config_enum_entry track_options[] = {
	{"none", STATS_TRACK_NONE, false},
	{"agentmem", STATS_TRACK_AGENTMEM, false},
	{"all", STATS_TRACK_ALL, false},
	{NULL, 0, false}
};

static const struct config_enum_entry n1_log_options[] = {
	{"none", STATS_N1_LOG_NONE, false},
	{"notice", STATS_N1_LOG_NOTICE, false},
	{"warning", STATS_N1_LOG_WARNING, false},
	{NULL, 0, false}
};

const char *const stats_op_names[AGENTMEM_NUM_OPS] = {
	"hnsw_scan", "hnsw_insert", "hnsw_build", "remember", "recall",
	"recall_batch", "cache_lookup", "cache_put", "all statements"
};

/* settings */
static int	stats_track = STATS_TRACK_AGENTMEM;
static int	stats_max_statements = 100;
static int	stats_n1_threshold = 5;
static int	stats_n1_log = STATS_N1_LOG_NONE;
static int	stats_n1_burst_gap = 100;	/* ms */

/* derived from agentmem.track by its assign hook */
bool		agentmem_track_ops = false;
static bool stats_track_statements = false;

static bool stats_preloaded = false;
StatsShared *stats_shared = NULL;

/* this process's slot, found on first use */
static StatsSlot *stats_my_slot = NULL;
static void *stats_scratch = NULL;	/* for StatTableRecord's evictions */

/* nesting depth of executor and utility calls, as in pg_stat_statements */
static int	stats_nesting = 0;

/*
 * Execution time of the top-level queries being run, by QueryDesc: the
 * time inside ExecutorRun and ExecutorFinish, summed from ExecutorStart
 * to ExecutorEnd.  Several top-level queries can be open at once (portals
 * of the extended protocol), rarely more than one or two.  An entry of a
 * query that failed is never ended: it is reused when its QueryDesc
 * address comes back, or as the oldest entry.  (Timing here rather than
 * through queryDesc->totaltime spares INSTRUMENT_ALL's buffer and WAL
 * accounting, half the cost of tracking.)
 */
#define STATS_OPEN_QUERIES 8
typedef struct StatsQueryTime
{
	QueryDesc  *queryDesc;		/* NULL: free */
	uint64		seq;			/* order of registration */
	instr_time	total;
} StatsQueryTime;

static StatsQueryTime stats_queries[STATS_OPEN_QUERIES];
static uint64 stats_query_seq = 0;

/* session tracking */
static bool stats_session_tracked = false;
static uint64 stats_session_xacts = 0;

/*
 * N+1 detection, backend-local: executions per statement in the current
 * group.  Entries of older groups count as empty, so a new group costs
 * one increment.
 */
#define N1_LOCAL_SIZE 256
typedef struct N1Local
{
	StatKey		key;
	uint64		group;
	uint64		us;				/* time of the executions in this group */
	uint32		count;
} N1Local;

static N1Local n1_local[N1_LOCAL_SIZE];
static uint64 n1_group = 1;
static bool n1_in_block = false;
static LocalTransactionId n1_lxid = InvalidLocalTransactionId;
static TimestampTz n1_last_end = 0;
static char n1_text[STATS_N1_QUERY_LEN];

/* saved hooks */
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static ClientAuthentication_hook_type prev_ClientAuthentication = NULL;

static void stats_shmem_request(void);
static void stats_shmem_startup(void);
static void stats_ExecutorStart(QueryDesc *queryDesc, int eflags);
static void stats_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction,
							  uint64 count, bool execute_once);
static void stats_ExecutorFinish(QueryDesc *queryDesc);
static void stats_ExecutorEnd(QueryDesc *queryDesc);
static void stats_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
								 bool readOnlyTree, ProcessUtilityContext context,
								 ParamListInfo params, QueryEnvironment *queryEnv,
								 DestReceiver *dest, QueryCompletion *qc);
static void stats_client_authentication(struct Port *port, int status);

/* ---------------------------------------------------------------- setup */

static void
stats_assign_track(int newval, void *extra)
{
	agentmem_track_ops = stats_preloaded && newval != STATS_TRACK_NONE;
	stats_track_statements = stats_preloaded && newval == STATS_TRACK_ALL;
}

static void
stats_define_settings(void)
{
	DefineCustomEnumVariable("agentmem.track",
							 "Which latencies agentmem records.",
							 "none: nothing; agentmem: agentmem's own operations and sessions; "
							 "all: also every top-level statement, per-statement latency and N+1 detection.",
							 &stats_track, STATS_TRACK_AGENTMEM, track_options,
							 PGC_SUSET, 0, NULL, stats_assign_track, NULL);
	DefineCustomIntVariable("agentmem.max_statements",
							"Statements whose latency each backend keeps (the most frequent).",
							NULL, &stats_max_statements, 100, 0, 10000,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("agentmem.n_plus_one_threshold",
							"Executions of one statement in one transaction or burst that count as N+1.",
							"0 turns N+1 detection off.",
							&stats_n1_threshold, 5, 0, INT_MAX,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomEnumVariable("agentmem.n_plus_one_log",
							 "How a detected N+1 pattern is reported to the session.",
							 NULL, &stats_n1_log, STATS_N1_LOG_NONE, n1_log_options,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("agentmem.n_plus_one_burst_gap",
							"Idle time that ends a burst of autocommit statements, for N+1 detection.",
							NULL, &stats_n1_burst_gap, 100, 0, 3600 * 1000,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
}

/*
 * Called from _PG_init.  Outside shared_preload_libraries there is no
 * shared memory to record into: define nothing and hook nothing.
 */
void
StatsInit(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	stats_preloaded = true;
	stats_define_settings();
	stats_assign_track(stats_track, NULL);

	/*
	 * Per-statement rows and N+1 detection need statement identities.
	 * agentmem does not ask PostgreSQL for query identifiers (EnableQueryId):
	 * computing them costs about 2.7% of a primary-key SELECT.  It uses them
	 * when the server computes them anyway (compute_query_id = on, or
	 * pg_stat_statements), and its own fingerprint otherwise (stmtid.c).
	 */
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = stats_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = stats_shmem_startup;
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = stats_ExecutorStart;
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = stats_ExecutorRun;
	prev_ExecutorFinish = ExecutorFinish_hook;
	ExecutorFinish_hook = stats_ExecutorFinish;
	prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = stats_ExecutorEnd;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = stats_ProcessUtility;
	prev_ClientAuthentication = ClientAuthentication_hook;
	ClientAuthentication_hook = stats_client_authentication;
}

/* Regular backends plus auxiliary processes: every PGPROC that runs code. */
static int
stats_nslots(void)
{
	return MaxBackends + NUM_AUXILIARY_PROCS;
}

static Size
stats_slot_size(void)
{
	return TYPEALIGN(PG_CACHE_LINE_SIZE,
					 STATS_TABLE_OFFSET + StatTableSize(stats_max_statements));
}

static Size
stats_memsize(void)
{
	return add_size(offsetof(StatsShared, slots),
					mul_size(stats_nslots(), stats_slot_size()));
}

static void
stats_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(stats_memsize());
}

static void
stats_shmem_startup(void)
{
	bool		found;
	int			i;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	stats_shared = ShmemInitStruct("agentmem statistics", stats_memsize(), &found);
	if (!found)
	{
		memset(stats_shared, 0, stats_memsize());
		pg_atomic_init_u64(&stats_shared->generation, 1);
		stats_shared->nslots = stats_nslots();
		stats_shared->max_statements = stats_max_statements;
		stats_shared->slot_size = stats_slot_size();
		for (i = 0; i < stats_shared->nslots; i++)
		{
			StatsSlot  *slot = StatsSlotAt(i);

			pg_atomic_init_u32(&slot->changecount, 0);
			slot->generation = 0;	/* stale: cleared on first write */
			StatTableInit(StatsSlotTable(slot), (uint32) stats_max_statements);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

/* ---------------------------------------------------------------- slots */

static inline StatsSlot *
stats_find_my_slot(void)
{
	int			procno;

	if (likely(stats_my_slot != NULL))
		return stats_my_slot;
	if (stats_shared == NULL || MyProc == NULL)
		return NULL;
#if PG_VERSION_NUM >= 170000
	procno = MyProcNumber;
#else
	procno = MyProc->pgprocno;
#endif
	if (procno < 0 || procno >= stats_shared->nslots)
		return NULL;
	stats_my_slot = StatsSlotAt(procno);
	return stats_my_slot;
}

static void
stats_clear_slot(StatsSlot *slot, uint64 generation)
{
	memset((char *) slot + offsetof(StatsSlot, ops), 0,
		   sizeof(StatsSlot) - offsetof(StatsSlot, ops));
	StatTableClear(StatsSlotTable(slot));
	slot->generation = generation;
}

/*
 * Open this process's slot for writing, or NULL when there is none.  No
 * ereport may happen between this and stats_end_write: readers would spin
 * on the odd change counter.
 */
static inline StatsSlot *
stats_begin_write(void)
{
	StatsSlot  *slot = stats_find_my_slot();
	uint64		generation;

	if (slot == NULL)
		return NULL;
	pg_atomic_write_u32(&slot->changecount, pg_atomic_read_u32(&slot->changecount) + 1);
	pg_write_barrier();
	generation = pg_atomic_read_u64(&stats_shared->generation);
	if (unlikely(slot->generation != generation))
		stats_clear_slot(slot, generation);
	return slot;
}

static inline void
stats_end_write(StatsSlot *slot)
{
	pg_write_barrier();
	pg_atomic_write_u32(&slot->changecount, pg_atomic_read_u32(&slot->changecount) + 1);
}

/*
 * Copy len bytes at offset of slot i, consistently with respect to its
 * writer.  Returns false when the slot's data predate the last reset (the
 * copy is then to be ignored).
 */
bool
StatsCopySlot(int i, Size offset, Size len, void *dest)
{
	StatsSlot  *slot = StatsSlotAt(i);
	uint64		generation = pg_atomic_read_u64(&stats_shared->generation);
	int			tries;

	for (tries = 1;; tries++)
	{
		uint32		before = pg_atomic_read_u32(&slot->changecount);

		if ((before & 1) == 0)
		{
			uint64		slot_generation;

			pg_read_barrier();
			slot_generation = ((volatile StatsSlot *) slot)->generation;
			memcpy(dest, (char *) slot + offset, len);
			pg_read_barrier();
			if (pg_atomic_read_u32(&slot->changecount) == before)
				return slot_generation == generation;
		}
		if (tries % 64 == 0)
			CHECK_FOR_INTERRUPTS();
		pg_spin_delay();
	}
}

/* The error every statistics function raises without preloading. */
void
StatsRequireShared(void)
{
	if (stats_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("agentmem statistics are not enabled"),
				 errdetail("agentmem was not loaded through shared_preload_libraries, so it has no shared memory to keep statistics in."),
				 errhint("Add agentmem to shared_preload_libraries in postgresql.conf "
						 "(shared_preload_libraries = 'agentmem') and restart the server.")));
}

/* ---------------------------------------------------------------- operations */

/* Record one sample of an agentmem operation, in microseconds. */
void
AgentmemLatencyRecord(AgentmemOp op, uint64 elapsed_us)
{
	StatsSlot  *slot;

	if (!agentmem_track_ops || (int) op < 0 || (int) op >= AGENTMEM_NUM_OPS)
		return;
	slot = stats_begin_write();
	if (slot == NULL)
		return;
	HistogramRecord(&slot->ops[op], elapsed_us);
	stats_end_write(slot);
}

static inline uint64
stats_us(double seconds)
{
	return seconds <= 0 ? 0 : (uint64) (seconds * 1000000.0 + 0.5);
}

/* Stop the timer, record the time it accumulated (if any), clear it. */
void
AgentmemTimerRecord(AgentmemTimer *timer, AgentmemOp op)
{
	AgentmemTimerPause(timer);
	if (timer->used)
		AgentmemLatencyRecord(op, stats_us(INSTR_TIME_GET_DOUBLE(timer->total)));
	INSTR_TIME_SET_ZERO(timer->total);
	timer->used = false;
}

/* ---------------------------------------------------------------- N+1 */

static inline uint32
n1_hash(const StatKey *key)
{
	uint64		h = key->queryid ^ ((uint64) key->userid * UINT64CONST(0x9e3779b97f4a7c15));

	return (uint32) (h ^ (h >> 29) ^ (h >> 47));
}

/*
 * Count one execution of key (taking us microseconds) in the current
 * group, starting a new group first when this statement begins one.
 * Returns the executions of key in the group so far (0 when the local
 * table is full) and their total time in *group_us.
 */
static uint32
n1_count(const StatKey *key, uint64 us, uint64 *group_us, bool *in_block)
{
	TimestampTz start = GetCurrentStatementStartTimestamp();
	bool		block = IsTransactionBlock();
#if PG_VERSION_NUM >= 170000
	LocalTransactionId lxid = MyProc->vxid.lxid;
#else
	LocalTransactionId lxid = MyProc->lxid;
#endif
	uint32		i,
				p;

	if (block ? (!n1_in_block || lxid != n1_lxid)
		: (n1_in_block || start - n1_last_end >= (int64) stats_n1_burst_gap * 1000))
		n1_group++;
	n1_in_block = block;
	n1_lxid = lxid;
	n1_last_end = Max(n1_last_end, start + (int64) us);
	*in_block = block;

	p = n1_hash(key) & (N1_LOCAL_SIZE - 1);
	for (i = 0; i < N1_LOCAL_SIZE; i++, p = (p + 1) & (N1_LOCAL_SIZE - 1))
	{
		N1Local    *e = &n1_local[p];

		if (e->group != n1_group)
		{
			e->key = *key;
			e->group = n1_group;
			e->count = 0;
			e->us = 0;
		}
		else if (e->key.queryid != key->queryid || e->key.userid != key->userid ||
				 e->key.dbid != key->dbid)
			continue;
		e->count++;
		e->us += us;
		*group_us = e->us;
		return e->count;
	}
	return 0;
}

/* The statement's own text (not the whole query string), clipped. */
static void
n1_capture_text(QueryDesc *queryDesc)
{
	const char *src = queryDesc->sourceText;
	int			loc = queryDesc->plannedstmt->stmt_location;
	int			len = queryDesc->plannedstmt->stmt_len;
	int			total;

	n1_text[0] = '\0';
	if (src == NULL)
		return;
	total = strlen(src);
	if (loc >= 0 && loc <= total)
	{
		src += loc;
		total -= loc;
		if (len <= 0 || len > total)
			len = total;
	}
	else
		len = total;
	while (len > 0 && scanner_isspace(*src))
		src++, len--;
	while (len > 0 && (scanner_isspace(src[len - 1]) || src[len - 1] == ';'))
		len--;
	len = pg_mbcliplen(src, len, STATS_N1_QUERY_LEN - 1);
	memcpy(n1_text, src, len);
	n1_text[len] = '\0';
}

/* Record repeats of key in this slot's N+1 table (inside a write). */
static void
n1_store(StatsSlot *slot, const StatKey *key, uint32 repeats, uint64 add_us,
		 bool with_text)
{
	StatsN1Entry *e = NULL;
	int			i;

	for (i = 0; i < STATS_N1_ENTRIES; i++)
	{
		StatsN1Entry *c = &slot->n1[i];

		if (c->key.queryid == key->queryid && c->key.userid == key->userid &&
			c->key.dbid == key->dbid)
		{
			e = c;
			break;
		}
		/* otherwise prefer a free entry, then the least recently seen */
		if (e == NULL || (e->key.queryid != 0 &&
						  (c->key.queryid == 0 || c->last_seen < e->last_seen)))
			e = c;
	}
	if (i == STATS_N1_ENTRIES)
	{
		memset(e, 0, sizeof(StatsN1Entry));
		e->key = *key;
		e->occurrences = 1;
	}
	else if (repeats == (uint32) stats_n1_threshold)
		e->occurrences++;
	if (with_text)
		strlcpy(e->query, n1_text, STATS_N1_QUERY_LEN);
	e->max_repeats = Max(e->max_repeats, repeats);
	e->total_us += add_us;
	e->last_seen = GetCurrentStatementStartTimestamp();
}

static void
n1_report(uint32 repeats, bool in_block)
{
	int			level = stats_n1_log == STATS_N1_LOG_WARNING ? WARNING : NOTICE;

	ereport(level,
			(errmsg(in_block
					? "possible N+1 query pattern: the same statement ran %u times in one transaction"
					: "possible N+1 query pattern: the same statement ran %u times in one burst of autocommit statements",
					repeats),
			 errdetail("Statement: %s", n1_text),
			 errhint("Fetch the rows in one statement, e.g. WHERE id = ANY($1) with an array of keys; "
					 "for agentmem memories use agentmem.recall_batch() for many queries "
					 "and agentmem.remember() with arrays for many rows.")));
}

/* ---------------------------------------------------------------- statements */

static void
stats_ensure_scratch(void)
{
	if (stats_scratch == NULL)
		stats_scratch = MemoryContextAlloc(TopMemoryContext,
										   StatTableScratchSize((uint32) stats_shared->max_statements));
}

/*
 * A top-level statement finished after us microseconds: record it, and
 * for planned statements (queryDesc given) look for N+1 repeats.
 */
static void
stats_statement_done(uint64 queryid, uint64 us, QueryDesc *queryDesc)
{
	StatKey		key;
	StatsSlot  *slot;
	uint32		repeats = 0;
	uint64		group_us = 0;
	bool		in_block = false;
	bool		reached;

	key.queryid = queryid;
	key.userid = GetUserId();
	key.dbid = MyDatabaseId;
	if (queryDesc != NULL && queryid != 0 && stats_n1_threshold > 0)
		repeats = n1_count(&key, us, &group_us, &in_block);
	reached = repeats > 0 && repeats == (uint32) stats_n1_threshold;
	if (reached)
		n1_capture_text(queryDesc);
	stats_ensure_scratch();

	slot = stats_begin_write();
	if (slot == NULL)
		return;
	HistogramRecord(&slot->ops[AGENTMEM_OP_STATEMENT], us);
	if (queryid != 0)
		StatTableRecord(StatsSlotTable(slot), &key, us, stats_scratch);
	if (repeats > 0 && repeats >= (uint32) stats_n1_threshold)
		n1_store(slot, &key, repeats, reached ? group_us : us, reached);
	stats_end_write(slot);

	if (reached && stats_n1_log != STATS_N1_LOG_NONE)
		n1_report(repeats, in_block);
}

/* PostgreSQL's query identifier if it computed one, else ours. */
static uint64
statement_id(const PlannedStmt *pstmt, const char *source)
{
	if (pstmt->queryId != 0)
		return pstmt->queryId;
	return StatementFingerprint(source, pstmt->stmt_location, pstmt->stmt_len);
}

static inline bool
stats_statement_tracked(void)
{
	return stats_track_statements && stats_nesting == 0 && !IsParallelWorker();
}

static inline StatsQueryTime *
query_time_find(QueryDesc *queryDesc)
{
	int			i;

	for (i = 0; i < STATS_OPEN_QUERIES; i++)
		if (stats_queries[i].queryDesc == queryDesc)
			return &stats_queries[i];
	return NULL;
}

static void
query_time_start(QueryDesc *queryDesc)
{
	StatsQueryTime *e = query_time_find(queryDesc);
	int			i;

	for (i = 0; e == NULL && i < STATS_OPEN_QUERIES; i++)
		if (stats_queries[i].queryDesc == NULL)
			e = &stats_queries[i];
	if (e == NULL)
	{
		/* all taken: reuse the oldest, most likely a query that failed */
		e = &stats_queries[0];
		for (i = 1; i < STATS_OPEN_QUERIES; i++)
			if (stats_queries[i].seq < e->seq)
				e = &stats_queries[i];
	}
	e->queryDesc = queryDesc;
	e->seq = ++stats_query_seq;
	INSTR_TIME_SET_ZERO(e->total);
}

static void
stats_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
	if (stats_statement_tracked())
		query_time_start(queryDesc);
}

static void
run_nested(QueryDesc *queryDesc, ScanDirection direction, uint64 count,
		   bool execute_once, bool finish)
{
	stats_nesting++;
	PG_TRY();
	{
		if (finish && prev_ExecutorFinish)
			prev_ExecutorFinish(queryDesc);
		else if (finish)
			standard_ExecutorFinish(queryDesc);
		else if (prev_ExecutorRun)
			prev_ExecutorRun(queryDesc, direction, count, execute_once);
		else
			standard_ExecutorRun(queryDesc, direction, count, execute_once);
	}
	PG_CATCH();
	{
		stats_nesting--;
		PG_RE_THROW();
	}
	PG_END_TRY();
	stats_nesting--;
}

/* ExecutorRun and ExecutorFinish: one level down, timed at the top. */
static void
run_timed(QueryDesc *queryDesc, ScanDirection direction, uint64 count,
		  bool execute_once, bool finish)
{
	StatsQueryTime *e = stats_statement_tracked() ? query_time_find(queryDesc) : NULL;
	instr_time	start,
				end;

	if (e == NULL)
	{
		run_nested(queryDesc, direction, count, execute_once, finish);
		return;
	}
	INSTR_TIME_SET_CURRENT(start);
	run_nested(queryDesc, direction, count, execute_once, finish);
	INSTR_TIME_SET_CURRENT(end);
	INSTR_TIME_ACCUM_DIFF(e->total, end, start);
}

static void
stats_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction, uint64 count,
				  bool execute_once)
{
	run_timed(queryDesc, direction, count, execute_once, false);
}

static void
stats_ExecutorFinish(QueryDesc *queryDesc)
{
	run_timed(queryDesc, NoMovementScanDirection, 0, false, true);
}

static void
stats_ExecutorEnd(QueryDesc *queryDesc)
{
	StatsQueryTime *e = stats_statement_tracked() ? query_time_find(queryDesc) : NULL;

	if (e != NULL)
	{
		e->queryDesc = NULL;
		stats_statement_done(statement_id(queryDesc->plannedstmt, queryDesc->sourceText),
							 stats_us(INSTR_TIME_GET_DOUBLE(e->total)), queryDesc);
	}
	if (prev_ExecutorEnd)
		prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
}

/* Run the utility statement one nesting level down. */
static void
stats_run_utility(PlannedStmt *pstmt, const char *queryString,
				  bool readOnlyTree, ProcessUtilityContext context,
				  ParamListInfo params, QueryEnvironment *queryEnv,
				  DestReceiver *dest, QueryCompletion *qc, bool nest)
{
	if (nest)
		stats_nesting++;
	PG_TRY();
	{
		if (prev_ProcessUtility)
			prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
	}
	PG_CATCH();
	{
		if (nest)
			stats_nesting--;
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (nest)
		stats_nesting--;
}

/*
 * Utility statements are timed whole.  EXECUTE, PREPARE and DEALLOCATE
 * are passed through at the same nesting level, so the statement EXECUTE
 * runs is counted by the executor hooks under its own queryid, once.
 */
static void
stats_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
					 bool readOnlyTree, ProcessUtilityContext context,
					 ParamListInfo params, QueryEnvironment *queryEnv,
					 DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	uint64		queryid;
	bool		passthrough = IsA(parsetree, ExecuteStmt) ||
		IsA(parsetree, PrepareStmt) || IsA(parsetree, DeallocateStmt);
	instr_time	start,
				duration;

	if (passthrough || !stats_statement_tracked())
	{
		stats_run_utility(pstmt, queryString, readOnlyTree, context, params,
						  queryEnv, dest, qc, !passthrough);
		return;
	}
	queryid = statement_id(pstmt, queryString);	/* pstmt may not survive */
	INSTR_TIME_SET_CURRENT(start);
	stats_run_utility(pstmt, queryString, readOnlyTree, context, params,
					  queryEnv, dest, qc, true);
	INSTR_TIME_SET_CURRENT(duration);
	INSTR_TIME_SUBTRACT(duration, start);
	stats_statement_done(queryid, stats_us(INSTR_TIME_GET_DOUBLE(duration)), NULL);
}

/* ---------------------------------------------------------------- sessions */

static void
stats_xact_callback(XactEvent event, void *arg)
{
	if ((event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		 event == XACT_EVENT_PREPARE) && IsNormalProcessingMode())
		stats_session_xacts++;
}

/* before_shmem_exit: the session ends; this process still owns its slot. */
static void
stats_session_end(int code, Datum arg)
{
	StatsSlot  *slot;
	int64		lifetime = GetCurrentTimestamp() - MyStartTimestamp;

	if (!stats_session_tracked)
		return;
	stats_session_tracked = false;
	if (lifetime < 0)
		lifetime = 0;
	slot = stats_begin_write();
	if (slot == NULL)
		return;
	slot->sessions.ended++;
	if (lifetime < USECS_PER_SEC)
		slot->sessions.ended_short++;
	HistogramRecord(&slot->sessions.lifetime, (uint64) lifetime);
	HistogramRecord(&slot->sessions.xacts, stats_session_xacts);
	stats_end_write(slot);
}

/* A client connection was authenticated: a session starts. */
static void
stats_client_authentication(struct Port *port, int status)
{
	StatsSlot  *slot;

	if (prev_ClientAuthentication)
		prev_ClientAuthentication(port, status);
	if (status != STATUS_OK || !agentmem_track_ops)
		return;

	slot = stats_begin_write();
	if (slot == NULL)
		return;
	{
		int64		second = (int64) MyStartTime;
		StatsStartCount *s = &slot->sessions.starts[second % STATS_START_SECONDS];

		if (s->second != second)
		{
			s->second = second;
			s->count = 0;
		}
		s->count++;
		slot->sessions.started++;
	}
	stats_end_write(slot);

	stats_session_tracked = true;
	stats_session_xacts = 0;
	RegisterXactCallback(stats_xact_callback, NULL);
	before_shmem_exit(stats_session_end, (Datum) 0);
}
