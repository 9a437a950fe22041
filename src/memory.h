/*
 * memory.h
 *		Agent memory: memory spaces (memory.c, recall.c) and the embedding
 *		cache (cache.c, cachestats.c).
 *
 * A memory space is a row of agentmem.space_catalog naming an ordinary
 * table in schema agentmem_spaces, created by agentmem.create_space (SQL).
 * The C functions reach that table through SPI as the calling role, after
 * an explicit privilege check whose message names the space.  Space names
 * are only ever passed as SQL parameters; the generated table names that
 * are spliced into queries are quoted with quote_identifier.
 */
#ifndef AGENTMEM_MEMORY_H
#define AGENTMEM_MEMORY_H

#include "postgres.h"

#include "executor/spi.h"
#include "storage/dsm.h"
#include "storage/shm_toc.h"
#include "utils/acl.h"
#include "utils/array.h"

typedef enum MemoryMetric
{
	MEMORY_METRIC_COSINE,
	MEMORY_METRIC_L2,
	MEMORY_METRIC_IP
} MemoryMetric;

/* A memory space, resolved and checked by MemorySpaceOpen. */
typedef struct MemorySpace
{
	const char *name;			/* the space name, for messages (clipped) */
	Oid			relid;			/* its table */
	char	   *qualname;		/* quoted schema.table, for SQL text */
	char	   *vecschema;		/* quoted schema of the type vector */
	Oid			vectype;		/* the type vector */
	int			dims;			/* the embedding column's dimensions */
	MemoryMetric metric;
} MemorySpace;

/* memory.c */
extern void AgentmemMemoryInit(void);
extern void MemorySpaceOpen(text *name, AclMode required, const char *action,
							MemorySpace *space);
extern const char *MemoryClipName(const char *name);
extern const char *MemoryMetricOperator(MemoryMetric metric);
extern SPIPlanPtr MemoryPlan(const char *sql, int nargs, Oid *argtypes);
extern text *MemoryTextArg(FunctionCallInfo fcinfo, int argno, const char *argname);
extern ArrayType *MemoryArrayArg(FunctionCallInfo fcinfo, int argno, const char *argname);
extern void MemoryRejectNulls(const bool *nulls, int n, const char *what,
							  const char *detail);
extern Datum *MemoryArrayElements(ArrayType *arr, const char *argname,
								  bool **nulls, int *n);
extern void MemoryCheckEmbedding(const MemorySpace *space, Datum value,
								 const char *what, int pos);

/* recall.c */
extern PGDLLEXPORT void agentmem_recall_worker(dsm_segment *seg, shm_toc *toc);
extern void RecallInto(FunctionCallInfo fcinfo, const MemorySpace *space,
					   Datum *queries, int nqueries, bool batch,
					   int k, Datum filter, bool has_filter);

/* cache.c */
#define CACHE_KEY_LEN 32		/* SHA-256 */

extern Datum *CacheLookupTexts(text *model, Datum *texts, int n, bool **found,
							   int *nmissing, int *first_missing);

/* cachestats.c */
typedef enum CacheCounter
{
	CACHE_HITS,
	CACHE_MISSES,
	CACHE_PUTS,
	CACHE_EVICTIONS,
	CACHE_NCOUNTERS
} CacheCounter;

extern int	cache_max_entries;
extern int	cache_touch_interval;
extern void CacheStatsInit(void);
extern void CacheCount(int64 model_key, text *model, CacheCounter counter,
					   uint64 n);

#endif							/* AGENTMEM_MEMORY_H */
