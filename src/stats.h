/*
 * stats.h
 *		What the rest of agentmem calls to report latencies.
 *
 * Time an operation with an AgentmemTimer:
 *
 *		AgentmemTimer timer;
 *
 *		AgentmemTimerStart(&timer);
 *		... the operation ...
 *		AgentmemTimerRecord(&timer, AGENTMEM_OP_RECALL);
 *
 * or, for work spread over several calls (an index scan), Resume/Pause
 * around each call of a zero-initialised timer and Record once at the end.
 * When statistics are off (agentmem not in shared_preload_libraries, or
 * agentmem.track = none) a timer costs one test of a global flag.
 * AgentmemLatencyRecord records a duration measured some other way.
 *
 * Recording writes to the calling backend's own slot in shared memory and
 * takes no lock; see stats.c and the Statistics section of README.md.
 */
#ifndef AGENTMEM_STATS_H
#define AGENTMEM_STATS_H

#include "portability/instr_time.h"

/* Keep in step with stats_op_names in stats.c. */
typedef enum AgentmemOp
{
	AGENTMEM_OP_HNSW_SCAN,		/* time spent in hnswgettuple, per scan */
	AGENTMEM_OP_HNSW_INSERT,	/* one hnswinsert call */
	AGENTMEM_OP_HNSW_BUILD,		/* one hnswbuild call */
	AGENTMEM_OP_REMEMBER,
	AGENTMEM_OP_RECALL,
	AGENTMEM_OP_RECALL_BATCH,
	AGENTMEM_OP_CACHE_LOOKUP,
	AGENTMEM_OP_CACHE_PUT,
	AGENTMEM_OP_STATEMENT,		/* every top-level statement: 'all statements' */
	AGENTMEM_NUM_OPS
} AgentmemOp;

typedef struct AgentmemTimer
{
	instr_time	start;
	instr_time	total;
	bool		running;
	bool		used;
} AgentmemTimer;

/* true when agentmem is preloaded and agentmem.track is not none */
extern PGDLLIMPORT bool agentmem_track_ops;

extern void StatsInit(void);
extern void AgentmemLatencyRecord(AgentmemOp op, uint64 elapsed_us);
extern void AgentmemTimerRecord(AgentmemTimer *timer, AgentmemOp op);

/* Start (or continue) timing; the timer must be zeroed or recorded before. */
static inline void
AgentmemTimerResume(AgentmemTimer *timer)
{
	if (agentmem_track_ops)
	{
		INSTR_TIME_SET_CURRENT(timer->start);
		timer->running = true;
	}
}

/* Start timing from zero. */
static inline void
AgentmemTimerStart(AgentmemTimer *timer)
{
	INSTR_TIME_SET_ZERO(timer->total);
	timer->running = false;
	timer->used = false;
	AgentmemTimerResume(timer);
}

/* Stop timing, keeping the time so far. */
static inline void
AgentmemTimerPause(AgentmemTimer *timer)
{
	if (timer->running)
	{
		instr_time	now;

		INSTR_TIME_SET_CURRENT(now);
		INSTR_TIME_ACCUM_DIFF(timer->total, now, timer->start);
		timer->running = false;
		timer->used = true;
	}
}

#endif							/* AGENTMEM_STATS_H */
