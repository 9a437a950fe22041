/*
 * hnswutils.c
 *		Pages, the metapage, distances and the on-disk view of the graph.
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_proc.h"
#include "storage/buf_internals.h"
#include "storage/bufpage.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "hnsw.h"
#include "hnswgraph.h"

int
HnswGetM(Relation index)
{
	HnswOptions *opts = (HnswOptions *) index->rd_options;

	return opts ? opts->m : HNSW_DEFAULT_M;
}

int
HnswGetEfConstruction(Relation index)
{
	HnswOptions *opts = (HnswOptions *) index->rd_options;

	return opts ? opts->ef_construction : HNSW_DEFAULT_EF_CONSTRUCTION;
}

/* ---------- distances ---------- */

/* The C symbol behind an operator class support function. */
static char *
support_symbol(Relation index, uint16 procnum)
{
	Oid			procid = index_getprocid(index, 1, procnum);
	HeapTuple	tup;
	Datum		src;
	bool		isnull;
	char	   *result;

	if (!OidIsValid(procid))
		return NULL;
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(procid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", procid);
	src = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_prosrc, &isnull);
	result = isnull ? NULL : TextDatumGetCString(src);
	ReleaseSysCache(tup);
	return result;
}

/*
 * Map the operator class to a kernel.  The support function is looked up
 * once per index open and the kernel is then called directly, which is the
 * point: fmgr calls in the search loop cost more than the arithmetic.
 */
void
HnswInitDistance(Relation index, HnswDistance *d)
{
	char	   *sym = support_symbol(index, HNSW_DISTANCE_PROC);

	memset(d, 0, sizeof(HnswDistance));
	d->normalize = OidIsValid(index_getprocid(index, 1, HNSW_NORM_PROC));
	if (sym && strcmp(sym, "vector_l2_squared_distance") == 0)
	{
		d->metric = HNSW_METRIC_L2;
		d->kernel = distance_kernels.l2_squared;
	}
	else if (sym && strcmp(sym, "vector_negative_inner_product") == 0)
	{
		d->metric = d->normalize ? HNSW_METRIC_COSINE : HNSW_METRIC_IP;
		d->kernel = distance_kernels.inner_product;
		d->negate = true;
	}
	else if (sym && strcmp(sym, "l1_distance") == 0)
	{
		d->metric = HNSW_METRIC_L1;
		d->kernel = distance_kernels.l1;
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("operator class of index \"%s\" has an unsupported distance function",
						RelationGetRelationName(index))));
}

/*
 * Copy a value into the index's representation.  Returns false when the
 * value cannot be placed in the graph: a zero vector has no direction, so
 * cosine indexes skip it (a sequential scan still returns it).
 */
bool
HnswPrepareValue(const HnswDistance *d, Vector *v, float *out)
{
	memcpy(out, v->x, sizeof(float) * v->dim);
	if (d->normalize)
	{
		double		norm = 0;

		for (int i = 0; i < v->dim; i++)
			norm += (double) v->x[i] * v->x[i];
		norm = sqrt(norm);
		if (norm == 0 || !isfinite(norm))
			return false;
		for (int i = 0; i < v->dim; i++)
			out[i] = v->x[i] / norm;
	}
	return true;
}

/* ---------- per-backend cache of an open index ---------- */

/*
 * Kept in rd_amcache, so it goes away with any relcache invalidation: the
 * distance kernel, and for every block the buffer it was last found in.
 * ReadRecentBuffer() pins such a buffer without the buffer mapping table
 * lookup that otherwise dominates a search's buffer accesses.
 */
typedef struct HnswCache
{
	bool		dist_valid;
	HnswDistance dist;
	BlockNumber nrecent;
	Buffer	   *recent;
} HnswCache;

static HnswCache *
hnsw_cache(Relation index)
{
	if (index->rd_amcache == NULL)
		index->rd_amcache = MemoryContextAllocZero(index->rd_indexcxt, sizeof(HnswCache));
	return (HnswCache *) index->rd_amcache;
}

/* The index's distance, looked up once per backend and relcache entry. */
void
HnswGetDistance(Relation index, HnswDistance *d)
{
	HnswCache  *c = hnsw_cache(index);

	if (!c->dist_valid)
	{
		HnswInitDistance(index, &c->dist);
		c->dist_valid = true;
	}
	*d = c->dist;
}

/* ReadBuffer for search paths: try the buffer the block was last seen in. */
Buffer
HnswReadBuffer(Relation index, BlockNumber blkno)
{
	HnswCache  *c = hnsw_cache(index);
	Buffer		buf;

	if (blkno < c->nrecent && BufferIsValid(c->recent[blkno]) &&
		ReadRecentBuffer(index->rd_node, MAIN_FORKNUM, blkno, c->recent[blkno]))
		return c->recent[blkno];
	buf = ReadBuffer(index, blkno);
	if (blkno >= c->nrecent)
	{
		BlockNumber n = Max(Max(c->nrecent * 2, blkno + 1), 1024);

		if (c->recent == NULL)
			c->recent = MemoryContextAllocZero(index->rd_indexcxt, sizeof(Buffer) * n);
		else
		{
			c->recent = repalloc(c->recent, sizeof(Buffer) * n);
			memset(c->recent + c->nrecent, 0, sizeof(Buffer) * (n - c->nrecent));
		}
		c->nrecent = n;
	}
	c->recent[blkno] = buf;
	return buf;
}

/*
 * A parallel worker starts with an empty map, so each block it reads costs
 * a buffer mapping lookup and the prefetch pass of disk_expand finds no
 * buffer to prefetch; the leader hands its map over.  Entries are hints:
 * ReadRecentBuffer checks each before use.
 */
BlockNumber
HnswRecentExport(Relation index, Buffer *out, BlockNumber max)
{
	HnswCache  *c = hnsw_cache(index);
	BlockNumber n = Min(c->nrecent, max);

	if (out != NULL && n > 0)
		memcpy(out, c->recent, sizeof(Buffer) * n);
	return n;
}

void
HnswRecentImport(Relation index, const Buffer *in, BlockNumber n)
{
	HnswCache  *c = hnsw_cache(index);

	if (n == 0)
		return;
	if (c->nrecent < n)
	{
		c->recent = c->recent == NULL ?
			MemoryContextAllocZero(index->rd_indexcxt, sizeof(Buffer) * n) :
			repalloc(c->recent, sizeof(Buffer) * n);
		memset(c->recent + c->nrecent, 0, sizeof(Buffer) * (n - c->nrecent));
		c->nrecent = n;
	}
	for (BlockNumber b = 0; b < n; b++)
		if (c->recent[b] <= 0 && in[b] > 0)	/* shared buffers only */
			c->recent[b] = in[b];
}

/* ---------- pages ---------- */

void
HnswInitPage(Page page)
{
	HnswPageOpaque opaque;

	PageInit(page, BLCKSZ, sizeof(HnswPageOpaqueData));
	opaque = HnswPageGetOpaque(page);
	opaque->next_blkno = InvalidBlockNumber;
	opaque->flags = 0;
	opaque->page_id = HNSW_PAGE_ID;
}

static void
check_meta(Relation index, HnswMetaPage meta)
{
	if (meta->magic != HNSW_MAGIC)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" is not an hnsw index",
						RelationGetRelationName(index))));
	if (meta->version != HNSW_FORMAT_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("hnsw index \"%s\" has format version %u, expected %u",
						RelationGetRelationName(index), meta->version,
						HNSW_FORMAT_VERSION),
				 errhint("REINDEX the index.")));
}

void
HnswReadMeta(Relation index, HnswMetaPageData *meta)
{
	HnswReadMetaLSN(index, meta, NULL);
}

/* The metapage, and (unless lsn is NULL) its LSN as read. */
void
HnswReadMetaLSN(Relation index, HnswMetaPageData *meta, XLogRecPtr *lsn)
{
	Buffer		buf = HnswReadBuffer(index, HNSW_METAPAGE_BLKNO);

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	*meta = *HnswPageGetMeta(BufferGetPage(buf));
	if (lsn)
		*lsn = PageGetLSN(BufferGetPage(buf));
	UnlockReleaseBuffer(buf);
	check_meta(index, meta);
}

/* A new, exclusively locked, initialised page at the end of the fork. */
Buffer
HnswNewBuffer(Relation index, ForkNumber fork)
{
	Buffer		buf;
	bool		need_lock = !RELATION_IS_LOCAL(index);

	if (need_lock)
		LockRelationForExtension(index, ExclusiveLock);
	buf = ReadBufferExtended(index, fork, P_NEW, RBM_NORMAL, NULL);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	if (need_lock)
		UnlockRelationForExtension(index, ExclusiveLock);
	return buf;
}

/* ---------- the graph on disk ---------- */

/* Copy the slots of one layer of a neighbour tuple; returns how many. */
static int
read_neighbor_list(Relation index, int m, uint64 ref, int layer,
				   ItemPointerData *out)
{
	ItemPointerData tid;
	Buffer		buf;
	Page		page;
	ItemId		iid;
	HnswNeighborTuple ntup;
	int			n = 0;

	HnswUnpackTid(ref, &tid);
	buf = HnswReadBuffer(index, ItemPointerGetBlockNumber(&tid));
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	if (ItemPointerGetOffsetNumber(&tid) <= PageGetMaxOffsetNumber(page))
	{
		iid = PageGetItemId(page, ItemPointerGetOffsetNumber(&tid));
		ntup = ItemIdIsNormal(iid) ? (HnswNeighborTuple) PageGetItem(page, iid) : NULL;
		if (ntup && ntup->type == HNSW_NEIGHBOR_TUPLE && ntup->level >= layer)
		{
			int			start = HNSW_LAYER_START(m, layer);
			int			count = HNSW_LAYER_SLOTS(m, layer);

			for (int i = 0; i < count; i++)
			{
				if (ItemPointerIsValid(&ntup->slots[start + i]))
					out[n++] = HnswSlotTid(&ntup->slots[start + i]);
			}
		}
	}
	UnlockReleaseBuffer(buf);
	return n;
}

/* Insertion sort by (block, offset): lists are short, qsort costs more. */
static void
sort_tids(ItemPointerData *tids, int n)
{
	for (int i = 1; i < n; i++)
	{
		ItemPointerData t = tids[i];
		uint64		key = HnswPackItemPointer(&t);
		int			j = i;

		while (j > 0 && HnswPackItemPointer(&tids[j - 1]) > key)
		{
			tids[j] = tids[j - 1];
			j--;
		}
		tids[j] = t;
	}
}

/* Fill a candidate from an element tuple; false if it is not one. */
static inline bool
element_candidate(const HnswGraph *g, Page page, OffsetNumber off,
				  BlockNumber blkno, HnswCandidate *c)
{
	ItemId		iid;
	HnswElementTuple etup;

	if (off < FirstOffsetNumber || off > PageGetMaxOffsetNumber(page))
		return false;
	iid = PageGetItemId(page, off);
	if (!ItemIdIsNormal(iid))
		return false;
	etup = (HnswElementTuple) PageGetItem(page, iid);
	if (etup->type != HNSW_ELEMENT_TUPLE)
		return false;
	c->id = HnswPackTid(blkno, off);
	c->ref = HnswPackItemPointer(&etup->neighbortid);
	c->heaptid = HnswPackItemPointer(&etup->heaptid);
	c->level = etup->level;
	c->distance = HnswDistanceCompute(&g->dist, g->query, etup->x, g->dim);
	c->returnable = !(etup->flags & HNSW_ELEMENT_DELETED) &&
		ItemPointerIsValid(&etup->heaptid);
	return true;
}

/*
 * Prefetch what pinning and reading the neighbours will touch, for every
 * neighbour whose block has a recent buffer: the buffer descriptor, the
 * page header and the line pointer, then (reading those line pointers
 * without a pin: a hint only, a stale one prefetches a useless line) the
 * element tuple.  A pin is a locked instruction, which keeps later loads
 * from overlapping an outstanding miss; without this pass every neighbour
 * cost three misses in a row (descriptor, header, line pointer).
 */
#define PREFETCH_MAX_OFFSET ((BLCKSZ - SizeOfPageHeaderData) / sizeof(ItemIdData))

static void
prefetch_elements(HnswDiskGraph *dg, const ItemPointerData *tids, int n)
{
	HnswCache  *c = hnsw_cache(dg->index);
	int			lines = (dg->base.dim * sizeof(float) + offsetof(HnswElementTupleData, x) + 63) / 64;
	char	   *pages[HNSW_NEIGHBOR_SLOTS(HNSW_MAX_M, 0)];

	/* the start of each tuple; the hardware prefetcher follows a long one */
	lines = Min(lines, 8);

	for (int i = 0; i < n; i++)
	{
		BlockNumber blkno = ItemPointerGetBlockNumber(&tids[i]);
		Buffer		b = blkno < c->nrecent ? c->recent[blkno] : InvalidBuffer;

		pages[i] = NULL;
		if (b <= 0)
			continue;
		pages[i] = (char *) BufferGetPage(b);
		__builtin_prefetch(GetBufferDescriptor(b - 1));
		__builtin_prefetch(pages[i]);
		__builtin_prefetch(PageGetItemId(pages[i], ItemPointerGetOffsetNumber(&tids[i])));
	}
	for (int i = 0; i < n; i++)
	{
		ItemId		iid;

		/* the read itself must stay inside the page */
		if (pages[i] == NULL ||
			ItemPointerGetOffsetNumber(&tids[i]) > PREFETCH_MAX_OFFSET)
			continue;
		iid = PageGetItemId(pages[i], ItemPointerGetOffsetNumber(&tids[i]));
		for (int l = 0; l < lines; l++)
			__builtin_prefetch(pages[i] + ItemIdGetOffset(iid) + 64 * l);
	}
}

/*
 * Pages a neighbour list's expansion keeps pinned at once.  PostgreSQL
 * tracks a backend's first 8 pins in an array and the rest in a hash
 * table, whose lookups cost more than the overlap of further prefetches
 * gains.
 */
#define EXPAND_PIN_WINDOW 6

/*
 * Neighbours are grouped by page, so all distances on one page are computed
 * under a single pin and share lock.  A window of pages is pinned first and
 * their element tuples prefetched, so the cache misses overlap.  (Reading
 * line pointers to prefetch without the content lock is only a hint: a
 * stale one prefetches a useless line, never a wrong result.)
 */
static void
disk_expand(HnswGraph *g, const HnswCandidate *c, int layer,
			HnswVisited *visited, HnswEmitFn emit, void *arg)
{
	HnswDiskGraph *dg = (HnswDiskGraph *) g;
	int			n = read_neighbor_list(dg->index, dg->m, c->ref, layer, dg->todo);
	int			keep = 0;
	int			lines = (g->dim * sizeof(float) + offsetof(HnswElementTupleData, x) + 63) / 64;

	for (int i = 0; i < n; i++)
	{
		if (!HnswVisitedTestAndSet(visited, HnswPackItemPointer(&dg->todo[i])))
			dg->todo[keep++] = dg->todo[i];
	}
	sort_tids(dg->todo, keep);
	prefetch_elements(dg, dg->todo, keep);

	for (int first = 0; first < keep;)
	{
		Buffer		bufs[EXPAND_PIN_WINDOW];
		int			group_end[EXPAND_PIN_WINDOW];
		int			ngroups = 0;
		int			i;

		for (i = first; i < keep; i++)
		{
			BlockNumber blkno = ItemPointerGetBlockNumber(&dg->todo[i]);
			Page		page;
			ItemId		iid;

			if (i == first || blkno != ItemPointerGetBlockNumber(&dg->todo[i - 1]))
			{
				if (ngroups == EXPAND_PIN_WINDOW)
					break;
				bufs[ngroups++] = HnswReadBuffer(dg->index, blkno);
			}
			group_end[ngroups - 1] = i + 1;
			page = BufferGetPage(bufs[ngroups - 1]);
			if (ItemPointerGetOffsetNumber(&dg->todo[i]) > PageGetMaxOffsetNumber(page))
				continue;
			/*
			 * Again, for tuples prefetch_elements saw too: skipping those
			 * made recall_batch 30-50% slower (A/B, 3 rounds); presumably
			 * the early prefetch is too far ahead to stay in cache.
			 */
			iid = PageGetItemId(page, ItemPointerGetOffsetNumber(&dg->todo[i]));
			for (int l = 0; l < lines; l++)
				__builtin_prefetch((char *) page + ItemIdGetOffset(iid) + 64 * l);
		}

		for (int grp = 0, k = first; grp < ngroups; grp++)
		{
			Page		page = BufferGetPage(bufs[grp]);
			BlockNumber blkno = BufferGetBlockNumber(bufs[grp]);

			LockBuffer(bufs[grp], BUFFER_LOCK_SHARE);
			for (; k < group_end[grp]; k++)
			{
				HnswCandidate nc;

				if (element_candidate(g, page, ItemPointerGetOffsetNumber(&dg->todo[k]),
									  blkno, &nc))
					emit(arg, &nc);
			}
			UnlockReleaseBuffer(bufs[grp]);
		}
		first = i;
	}
}

void
HnswDiskGraphInit(HnswDiskGraph *dg, Relation index, const float *query,
				  int dim, const HnswDistance *dist)
{
	dg->base.expand = disk_expand;
	dg->base.prefetch = NULL;
	dg->base.query = query;
	dg->base.dim = dim;
	dg->base.dist = *dist;
	dg->index = index;
	dg->m = HnswGetM(index);
	dg->todo = palloc(sizeof(ItemPointerData) * HNSW_NEIGHBOR_SLOTS(HNSW_MAX_M, 0));
}

void
HnswDiskGraphRelease(HnswDiskGraph *dg)
{
	pfree(dg->todo);
}

/* Read one element as a candidate for the graph's query. */
bool
HnswLoadCandidate(Relation index, ItemPointer tid, const HnswGraph *g,
				  HnswCandidate *c)
{
	Buffer		buf = HnswReadBuffer(index, ItemPointerGetBlockNumber(tid));
	bool		ok;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	ok = element_candidate(g, BufferGetPage(buf), ItemPointerGetOffsetNumber(tid),
						   ItemPointerGetBlockNumber(tid), c);
	UnlockReleaseBuffer(buf);
	return ok;
}

/*
 * The neighbour selection heuristic (paper, Algorithm 4): walk the
 * candidates nearest first and keep one if it is closer to the base element
 * than to every candidate kept so far, which spreads links in different
 * directions so the graph can cross between clusters.  Slots still free
 * are then filled with the nearest rejected candidates (the paper's
 * keepPrunedConnections, as pgvector does): a fuller list costs a little
 * per hop and buys recall at a given ef.  `pair(arg, i, j)` is the distance
 * between candidates i and j.  Returns how many were chosen; the first
 * *naccepted of chosen[] passed the heuristic, the rest are the fill.
 */
int
HnswSelectNeighbors(const HnswCandidate *sorted, int n, int max,
					HnswPairDistanceFn pair, void *arg, int *chosen,
					int *naccepted)
{
	int			nchosen = 0;
	int		   *rejected = palloc(sizeof(int) * Max(n, 1));
	int			nrejected = 0;

	for (int i = 0; i < n && nchosen < max; i++)
	{
		bool		keep = true;

		for (int j = 0; j < nchosen && keep; j++)
		{
			if (pair(arg, i, chosen[j]) < sorted[i].distance)
				keep = false;
		}
		if (keep)
			chosen[nchosen++] = i;
		else
			rejected[nrejected++] = i;
	}
	if (naccepted)
		*naccepted = nchosen;
	for (int i = 0; i < nrejected && nchosen < max; i++)
		chosen[nchosen++] = rejected[i];
	pfree(rejected);
	return nchosen;
}

/* ---------- neighbour lists in memory, nearest first ---------- */

/* Insert a link at its sorted place; the list must have room. */
void
HnswSortedListInsert(HnswSortedList *l, int32 id, float dist, bool accepted)
{
	int			pos = l->n;

	while (pos > 0 && l->dist[pos - 1] > dist)
	{
		l->ids[pos] = l->ids[pos - 1];
		l->dist[pos] = l->dist[pos - 1];
		l->accepted[pos] = l->accepted[pos - 1];
		pos--;
	}
	l->ids[pos] = id;
	l->dist[pos] = dist;
	l->accepted[pos] = accepted;
	l->n++;
}

void
HnswSortedListRemove(HnswSortedList *l, int pos)
{
	for (int i = pos; i < l->n - 1; i++)
	{
		l->ids[i] = l->ids[i + 1];
		l->dist[i] = l->dist[i + 1];
		l->accepted[i] = l->accepted[i + 1];
	}
	l->n--;
}

/*
 * Link new element q, at distance `dist`, into the list.  The heuristic is
 * applied incrementally: q is checked against the accepted links nearer
 * than it, and accepted links farther than q against q only.  A full list
 * then drops its farthest fill link, or its farthest link if all passed;
 * a rejected q farther than every fill link is not kept.  That costs at
 * most one distance per slot instead of re-running Algorithm 4 over the
 * whole list (pgvector caches the same verdicts for the same reason).
 * Returns the member q pushed out of the list, or -1.
 */
int32
HnswSortedListAdd(HnswSortedList *l, int32 q, float dist,
				  HnswMemberDistanceFn to_q, void *arg)
{
	bool		accepted = true;
	int32		dropped = -1;

	for (int i = 0; i < l->n && l->dist[i] <= dist && accepted; i++)
	{
		if (l->accepted[i] && to_q(arg, l->ids[i]) < dist)
			accepted = false;
	}
	for (int i = 0; accepted && i < l->n; i++)
	{
		if (l->dist[i] > dist && l->accepted[i] && to_q(arg, l->ids[i]) < l->dist[i])
			l->accepted[i] = false;
	}
	if (l->n == l->cap)
	{
		int			drop = l->n - 1;

		for (int i = l->n - 1; i >= 0; i--)
		{
			if (!l->accepted[i])
			{
				drop = i;
				break;
			}
		}
		if (!accepted && (l->accepted[drop] || l->dist[drop] <= dist))
			return -1;
		dropped = l->ids[drop];
		HnswSortedListRemove(l, drop);
	}
	HnswSortedListInsert(l, q, dist, accepted);
	return dropped;
}

/*
 * The slot of a list (n slots, distances `dist`, -1 for a free one) that a
 * displaced link takes: a free slot, else the farthest link not adopted
 * already; -1 if every slot holds an adopted link.
 */
int
HnswAdoptSlot(const float *dist, const bool *adopted, int n)
{
	int			slot = -1;

	for (int i = 0; i < n; i++)
	{
		if (adopted[i])
			continue;
		if (dist[i] < 0)
			return i;
		if (slot < 0 || dist[i] > dist[slot])
			slot = i;
	}
	return slot;
}
