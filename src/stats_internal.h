/*
 * stats_internal.h
 *		The statistics' shared memory, shared by stats.c (recording) and
 *		statsfuncs.c (the SQL views).
 *
 * One StatsSlot per PGPROC that can run code (MaxBackends regular
 * backends, then the auxiliary processes), indexed by MyProc->pgprocno.
 * Only the process owning that PGPROC writes its slot, bracketing each
 * change with two increments of changecount (odd while writing), as
 * PgBackendStatus does; a reader copies what it needs and retries when
 * changecount was odd or moved.  Writers never wait and take no lock.
 *
 * A slot's data belong to a reset generation: agentmem.latency_reset()
 * only bumps StatsShared.generation; readers ignore slots of older
 * generations, and the owner clears its slot before its next write.
 *
 * Each slot ends with a StatTable of agentmem.max_statements entries
 * (per-statement latency, sparse; see stattable.h).
 */
#ifndef AGENTMEM_STATS_INTERNAL_H
#define AGENTMEM_STATS_INTERNAL_H

#include "port/atomics.h"
#include "utils/timestamp.h"

#include "histogram.h"
#include "stats.h"
#include "stattable.h"

#define STATS_N1_ENTRIES	16	/* N+1 findings kept per slot */
#define STATS_N1_QUERY_LEN	256 /* bytes of query text kept with one */
#define STATS_START_SECONDS 64	/* ring of session starts per second */

/* One statement seen repeating in a transaction or burst. */
typedef struct StatsN1Entry
{
	StatKey		key;			/* queryid 0: free */
	uint64		occurrences;	/* transactions or bursts over the threshold */
	uint64		max_repeats;	/* most executions in one of them */
	uint64		total_us;		/* time of all executions in them */
	TimestampTz last_seen;
	char		query[STATS_N1_QUERY_LEN];
} StatsN1Entry;

typedef struct StatsStartCount
{
	int64		second;			/* Unix time */
	uint64		count;			/* sessions started in that second */
} StatsStartCount;

/* Connections: recorded at session start and end. */
typedef struct StatsSessions
{
	uint64		started;
	uint64		ended;
	uint64		ended_short;	/* ended sessions that lasted < 1 s */
	Histogram	lifetime;		/* session lifetime, us */
	Histogram	xacts;			/* transactions per session */
	StatsStartCount starts[STATS_START_SECONDS];	/* by second % size */
} StatsSessions;

typedef struct StatsSlot
{
	pg_atomic_uint32 changecount;	/* odd while the owner writes */
	uint64		generation;		/* reset generation of the data below */

	Histogram	ops[AGENTMEM_NUM_OPS];	/* latency, us */
	StatsSessions sessions;
	StatsN1Entry n1[STATS_N1_ENTRIES];

	/* a StatTable follows at offsetof(StatsSlot) + MAXALIGN */
} StatsSlot;

typedef struct StatsShared
{
	pg_atomic_uint64 generation;	/* bumped by each reset */
	int			nslots;
	int			max_statements;
	Size		slot_size;
	char		slots[FLEXIBLE_ARRAY_MEMBER];
} StatsShared;

extern StatsShared *stats_shared;

#define STATS_TABLE_OFFSET MAXALIGN(sizeof(StatsSlot))

static inline StatsSlot *
StatsSlotAt(int i)
{
	return (StatsSlot *) (stats_shared->slots + (Size) i * stats_shared->slot_size);
}

static inline StatTable *
StatsSlotTable(StatsSlot *slot)
{
	return (StatTable *) ((char *) slot + STATS_TABLE_OFFSET);
}

extern const char *const stats_op_names[AGENTMEM_NUM_OPS];

extern void StatsRequireShared(void);

/* stmtid.c */
extern uint64 StatementFingerprint(const char *src, int loc, int len);
extern bool StatsCopySlot(int i, Size offset, Size len, void *dest);

#endif							/* AGENTMEM_STATS_INTERNAL_H */
