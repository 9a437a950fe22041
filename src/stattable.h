/*
 * stattable.h
 *		A fixed-size table of per-statement latency histograms kept sparse,
 *		in one flat block of memory (pure C, no PostgreSQL headers).
 *
 * Each backend owns one StatTable in shared memory and is its only writer;
 * readers copy it and merge.  A dense Histogram per statement would cost
 * 8 kB, times statements, times backends; here a statement's non-empty
 * buckets live in a shared pool of cells, a hash table keyed by (entry,
 * bucket), so a statement costs what it uses (typically a few dozen
 * buckets).  Counts stay exact.  When the table runs out of entries or
 * cells, the tenth of the entries with the fewest calls is evicted (their
 * samples are lost, as pg_stat_statements loses deallocated entries), so
 * the table keeps the backend's most frequent statements.
 *
 * Layout of the block: StatTable header, then max_entries StatEntry, then
 * index_size uint32 (open-addressing index of entries by key, values are
 * entry + 1, 0 is empty), then max_cells StatCell (open addressing by
 * entry and bucket).  Entries never move, so a cell refers to its entry by
 * position.
 */
#ifndef AGENTMEM_STATTABLE_H
#define AGENTMEM_STATTABLE_H

#include "histogram.h"

typedef struct StatKey
{
	uint64_t	queryid;
	uint32_t	userid;
	uint32_t	dbid;
} StatKey;

typedef struct StatEntry
{
	StatKey		key;
	uint64_t	calls;
	uint64_t	sum;			/* exact, as in Histogram */
	uint64_t	min;
	uint64_t	max;
	uint32_t	ncells;			/* cells holding this entry's buckets */
	uint32_t	used;			/* 1 when the entry holds a statement */
} StatEntry;

typedef struct StatCell
{
	uint32_t	entry;			/* entry + 1; 0 for an empty cell */
	uint32_t	bucket;
	uint64_t	count;
} StatCell;

typedef struct StatTable
{
	uint32_t	max_entries;
	uint32_t	index_size;		/* a power of two >= 2 * max_entries */
	uint32_t	max_cells;
	uint32_t	cell_limit;		/* at most 3/4 of the cells are used */
	uint32_t	nentries;
	uint32_t	ncells;
	uint64_t	evicted;		/* entries evicted to make room */
} StatTable;

/* Cells provisioned per entry, on average (a statement may use more). */
#define STATTABLE_CELLS_PER_ENTRY 24

#define StatTableEntries(t) \
	((StatEntry *) ((char *) (t) + sizeof(StatTable)))
#define StatTableIndex(t) \
	((uint32_t *) (StatTableEntries(t) + (t)->max_entries))
#define StatTableCells(t) \
	((StatCell *) (StatTableIndex(t) + (t)->index_size))

extern size_t StatTableSize(uint32_t max_entries);
extern size_t StatTableScratchSize(uint32_t max_entries);
extern void StatTableInit(StatTable *t, uint32_t max_entries);
extern void StatTableClear(StatTable *t);
extern int	StatTableFind(const StatTable *t, const StatKey *key);
extern void StatTableRecord(StatTable *t, const StatKey *key, uint64_t value,
							void *scratch);
extern void StatTableEntryHistogram(const StatTable *t, int entry, Histogram *out);

#endif							/* AGENTMEM_STATTABLE_H */
