/*
 * stattable.c
 *		Per-statement sparse latency histograms in one flat block: lookup,
 *		recording, eviction of the least frequent statements.  Pure C; see
 *		stattable.h for the layout.
 */
#include "stattable.h"

#include <string.h>

/* The splitmix64 finalizer: a cheap, well-mixed 64-bit hash. */
static inline uint64_t
mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	x ^= x >> 31;
	return x;
}

static inline uint64_t
key_hash(const StatKey *key)
{
	return mix64(key->queryid ^ mix64(((uint64_t) key->userid << 32) | key->dbid));
}

static inline bool
key_equal(const StatKey *a, const StatKey *b)
{
	return a->queryid == b->queryid && a->userid == b->userid && a->dbid == b->dbid;
}

/* First probe position of (entry, bucket) among max_cells cells. */
static inline uint32_t
cell_home(const StatTable *t, uint32_t entry, uint32_t bucket)
{
	uint64_t	h = mix64(((uint64_t) entry << 32) | bucket);

	return (uint32_t) (((h >> 32) * t->max_cells) >> 32);
}

static uint32_t
index_size_for(uint32_t max_entries)
{
	uint32_t	n = 2;

	while (n < 2 * max_entries)
		n <<= 1;
	return n;
}

static uint32_t
cells_for(uint32_t max_entries)
{
	/* room for every bucket of a single statement under the 3/4 limit */
	uint32_t	min_cells = HISTOGRAM_BUCKETS * 4 / 3 + 2;
	uint64_t	n = (uint64_t) max_entries * STATTABLE_CELLS_PER_ENTRY;

	return n < min_cells ? min_cells : (uint32_t) n;
}

size_t
StatTableSize(uint32_t max_entries)
{
	return sizeof(StatTable) + (size_t) max_entries * sizeof(StatEntry) +
		(size_t) index_size_for(max_entries) * sizeof(uint32_t) +
		(size_t) cells_for(max_entries) * sizeof(StatCell);
}

/* Scratch memory the writer lends StatTableRecord for evictions. */
size_t
StatTableScratchSize(uint32_t max_entries)
{
	return (size_t) cells_for(max_entries) * sizeof(StatCell);
}

void
StatTableInit(StatTable *t, uint32_t max_entries)
{
	memset(t, 0, StatTableSize(max_entries));
	t->max_entries = max_entries;
	t->index_size = index_size_for(max_entries);
	t->max_cells = cells_for(max_entries);
	t->cell_limit = (uint32_t) ((uint64_t) t->max_cells * 3 / 4);
}

/* Forget every statement, keeping the sizes. */
void
StatTableClear(StatTable *t)
{
	StatTableInit(t, t->max_entries);
}

/* Position of the entry holding key, or -1. */
int
StatTableFind(const StatTable *t, const StatKey *key)
{
	const StatEntry *entries = StatTableEntries(t);
	const uint32_t *index = StatTableIndex(t);
	uint32_t	mask = t->index_size - 1;
	uint32_t	p = (uint32_t) key_hash(key) & mask;

	while (index[p] != 0)
	{
		if (key_equal(&entries[index[p] - 1].key, key))
			return (int) index[p] - 1;
		p = (p + 1) & mask;
	}
	return -1;
}

static void
index_insert(StatTable *t, uint32_t entry)
{
	uint32_t   *index = StatTableIndex(t);
	uint32_t	mask = t->index_size - 1;
	uint32_t	p = (uint32_t) key_hash(&StatTableEntries(t)[entry].key) & mask;

	while (index[p] != 0)
		p = (p + 1) & mask;
	index[p] = entry + 1;
}

/* The cell of (entry, bucket), or the empty cell where it would go. */
static uint32_t
cell_find(const StatTable *t, uint32_t entry, uint32_t bucket)
{
	const StatCell *cells = StatTableCells(t);
	uint32_t	p = cell_home(t, entry, bucket);

	while (cells[p].entry != 0 &&
		   (cells[p].entry != entry + 1 || cells[p].bucket != bucket))
		p = p + 1 == t->max_cells ? 0 : p + 1;
	return p;
}

/*
 * Rebuild the index and the cells after entries were dropped: the cells
 * of live entries are copied to scratch and put back, so probe chains have
 * no holes.
 */
static void
rebuild(StatTable *t, void *scratch)
{
	StatEntry  *entries = StatTableEntries(t);
	StatCell   *cells = StatTableCells(t);
	StatCell   *old = (StatCell *) scratch;
	uint32_t	i;

	memset(StatTableIndex(t), 0, t->index_size * sizeof(uint32_t));
	for (i = 0; i < t->max_entries; i++)
	{
		entries[i].ncells = 0;
		if (entries[i].used)
			index_insert(t, i);
	}
	memcpy(old, cells, t->max_cells * sizeof(StatCell));
	memset(cells, 0, t->max_cells * sizeof(StatCell));
	t->ncells = 0;
	for (i = 0; i < t->max_cells; i++)
	{
		uint32_t	p;

		if (old[i].entry == 0 || !entries[old[i].entry - 1].used)
			continue;
		p = cell_find(t, old[i].entry - 1, old[i].bucket);
		cells[p] = old[i];
		entries[old[i].entry - 1].ncells++;
		t->ncells++;
	}
}

/*
 * Drop the tenth of the entries with the fewest calls (at least one),
 * never entry keep; repeat while the cells are over their limit.
 */
static void
evict(StatTable *t, int keep, void *scratch)
{
	StatEntry  *entries = StatTableEntries(t);
	uint32_t	batch = t->max_entries / 10 > 0 ? t->max_entries / 10 : 1;

	do
	{
		uint32_t	n,
					i;
		bool		dropped = false;

		for (n = 0; n < batch; n++)
		{
			int			victim = -1;

			for (i = 0; i < t->max_entries; i++)
				if (entries[i].used && (int) i != keep &&
					(victim < 0 || entries[i].calls < entries[victim].calls))
					victim = (int) i;
			if (victim < 0)
				break;
			memset(&entries[victim], 0, sizeof(StatEntry));
			t->nentries--;
			t->evicted++;
			dropped = true;
		}
		if (!dropped)
			break;
		rebuild(t, scratch);
	} while (keep >= 0 && t->ncells >= t->cell_limit);
}

static int
add_entry(StatTable *t, const StatKey *key)
{
	StatEntry  *entries = StatTableEntries(t);
	uint32_t	i;

	for (i = 0; i < t->max_entries; i++)
		if (!entries[i].used)
			break;
	memset(&entries[i], 0, sizeof(StatEntry));
	entries[i].key = *key;
	entries[i].used = 1;
	t->nentries++;
	index_insert(t, i);
	return (int) i;
}

/*
 * Count one execution of the statement key that took value (us).  scratch
 * must hold StatTableScratchSize(max_entries) bytes; it is only used when
 * entries are evicted.
 */
void
StatTableRecord(StatTable *t, const StatKey *key, uint64_t value, void *scratch)
{
	StatEntry  *entries = StatTableEntries(t);
	StatCell   *cells = StatTableCells(t);
	StatEntry  *e;
	int			ei;
	uint32_t	bucket = (uint32_t) HistogramBucket(value);
	uint32_t	p;

	if (t->max_entries == 0)
		return;
	ei = StatTableFind(t, key);
	if (ei < 0)
	{
		if (t->nentries >= t->max_entries)
			evict(t, -1, scratch);
		ei = add_entry(t, key);
	}
	p = cell_find(t, (uint32_t) ei, bucket);
	if (cells[p].entry == 0)
	{
		if (t->ncells >= t->cell_limit)
		{
			evict(t, ei, scratch);
			p = cell_find(t, (uint32_t) ei, bucket);
		}
		cells[p].entry = (uint32_t) ei + 1;
		cells[p].bucket = bucket;
		cells[p].count = 0;
		entries[ei].ncells++;
		t->ncells++;
	}
	cells[p].count++;

	e = &entries[ei];
	if (e->calls == 0 || value < e->min)
		e->min = value;
	if (e->calls == 0 || value > e->max)
		e->max = value;
	e->calls++;
	e->sum += value;
}

/* The dense histogram of one entry. */
void
StatTableEntryHistogram(const StatTable *t, int entry, Histogram *out)
{
	const StatEntry *e = &StatTableEntries(t)[entry];
	const StatCell *cells = StatTableCells(t);
	uint32_t	i;

	HistogramInit(out);
	if (!e->used || e->calls == 0)
		return;
	out->count = e->calls;
	out->sum = e->sum;
	out->min = e->min;
	out->max = e->max;
	for (i = 0; i < t->max_cells; i++)
		if (cells[i].entry == (uint32_t) entry + 1)
			out->buckets[cells[i].bucket] += cells[i].count;
}
