/*
 * hnswgraph.c
 *		The in-memory graph of CREATE INDEX: insert, repair, lay out, write.
 *
 * Elements are numbered in insertion order; neighbour lists hold those
 * numbers and each link's distance, so pruning a full list needs no
 * recomputation of the owner's distances.  In a parallel build every
 * participant inserts into the same graph; a list is read and changed only
 * under its element's LWLock, and vectors never change once published.
 */
#include "postgres.h"

#include "commands/progress.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/bufmgr.h"
#include "utils/memutils.h"

#include "hnswgraph.h"

typedef struct MemGraphView
{
	HnswGraph	base;
	HnswMemGraph *mg;
} MemGraphView;

#define ELEMENT_HEADER MAXALIGN(sizeof(HnswMemElement))

static inline int
layer_start(int m, int layer)
{
	return HNSW_LAYER_START(m, layer);
}

static inline int
layer_cap(int m, int layer)
{
	return HNSW_LAYER_SLOTS(m, layer);
}

static inline Size
element_size(int dim, int m, int level)
{
	int			nslots = HNSW_NEIGHBOR_SLOTS(m, level);

	return MAXALIGN(ELEMENT_HEADER + sizeof(float) * dim + sizeof(int32) * (level + 1) +
					(sizeof(int32) + sizeof(float) + sizeof(bool)) * nslots);
}

static inline HnswMemElement *
elem(const HnswMemGraph *g, int id)
{
	return (HnswMemElement *) (g->arena + g->registry[id]);
}

static inline float *
elem_vec(HnswMemElement *e)
{
	return (float *) ((char *) e + ELEMENT_HEADER);
}

static inline int32 *
elem_counts(const HnswMemGraph *g, HnswMemElement *e)
{
	return (int32 *) (elem_vec(e) + g->dim);
}

static inline int32 *
elem_nbrs(const HnswMemGraph *g, HnswMemElement *e)
{
	return elem_counts(g, e) + e->level + 1;
}

static inline float *
elem_ndist(const HnswMemGraph *g, HnswMemElement *e)
{
	return (float *) (elem_nbrs(g, e) + HNSW_NEIGHBOR_SLOTS(g->m, e->level));
}

static inline bool *
elem_accepted(const HnswMemGraph *g, HnswMemElement *e)
{
	return (bool *) (elem_ndist(g, e) + HNSW_NEIGHBOR_SLOTS(g->m, e->level));
}

/* Element locks matter only when several processes build the graph. */
static inline void
elem_lock(const HnswMemGraph *g, HnswMemElement *e, LWLockMode mode)
{
	if (g->parallel)
		LWLockAcquire(&e->lock, mode);
}

static inline void
elem_unlock(const HnswMemGraph *g, HnswMemElement *e)
{
	if (g->parallel)
		LWLockRelease(&e->lock);
}

/*
 * Unvisited neighbours are collected first and their vectors prefetched, so
 * the cache misses of the distance computations overlap (as hnswlib does).
 */
static void
mem_expand(HnswGraph *g, const HnswCandidate *c, int layer,
		   HnswVisited *visited, HnswEmitFn emit, void *arg)
{
	HnswMemGraph *mg = ((MemGraphView *) g)->mg;
	HnswMemElement *e = elem(mg, c->id);
	int32		ids[HNSW_MAX_M * 2];
	int32		todo[HNSW_MAX_M * 2];
	int			n,
				ntodo = 0;
	int			lines = (g->dim * sizeof(float) + 63) / 64;

	elem_lock(mg, e, LW_SHARED);
	n = elem_counts(mg, e)[layer];
	memcpy(ids, elem_nbrs(mg, e) + layer_start(mg->m, layer), sizeof(int32) * n);
	elem_unlock(mg, e);

	for (int i = 0; i < n; i++)
	{
		if (HnswVisitedTestAndSet(visited, ids[i]))
			continue;
		todo[ntodo++] = ids[i];
		for (int l = 0; l < lines; l++)
			__builtin_prefetch((const char *) elem_vec(elem(mg, ids[i])) + 64 * l);
	}
	for (int i = 0; i < ntodo; i++)
	{
		HnswMemElement *ne = elem(mg, todo[i]);
		HnswCandidate nc;

		nc.id = todo[i];
		nc.ref = 0;
		nc.heaptid = 0;
		nc.distance = HnswDistanceCompute(&mg->dist, g->query, elem_vec(ne), g->dim);
		nc.returnable = true;
		nc.level = ne->level;
		emit(arg, &nc);
	}
}

/*
 * Start loading the counts and layer-0 links of the node the search will
 * most likely expand next; its vector is in cache from its distance, but
 * they lie after the vector.
 */
static void
mem_prefetch(HnswGraph *g, uint64 id)
{
	HnswMemGraph *mg = ((MemGraphView *) g)->mg;
	const char *p = (const char *) elem_counts(mg, elem(mg, (int32) id));

	__builtin_prefetch(p);
	__builtin_prefetch(p + 64);
	__builtin_prefetch(p + 128);
}

/* The arena holds the registry, then the elements. */
Size
HnswGraphArenaSize(Size budget)
{
	return Max(budget, (Size) 1024 * 1024);
}

void
HnswGraphSharedInit(HnswGraphShared *sh, Size arena_size, int dim, int m)
{
	Size		per = element_size(dim, m, 0) + sizeof(Size);

	sh->arena_size = arena_size;
	sh->capacity = Min(arena_size / per, (Size) PG_INT32_MAX);
	pg_atomic_init_u64(&sh->used, MAXALIGN(sizeof(Size) * sh->capacity));
	pg_atomic_init_u32(&sh->count, 0);
	pg_atomic_init_u32(&sh->overflowed, 0);
	pg_atomic_init_u32(&sh->next_link, 0);
	sh->lock_tranche = 0;
	sh->entry = -1;
}

void
HnswMemGraphAttach(HnswMemGraph *g, HnswGraphShared *sh, char *arena, int dim,
				   int m, int ef_construction, const HnswDistance *dist,
				   bool parallel)
{
	g->sh = sh;
	g->arena = arena;
	g->registry = (Size *) arena;
	g->parallel = parallel;
	g->dim = dim;
	g->m = m;
	g->ef_construction = ef_construction;
	g->dist = *dist;
	if (parallel)
		LWLockRegisterTranche(sh->lock_tranche, "hnsw build");
	HnswSearchStateInit(&g->search, ef_construction, false,
						HnswVisitedCreateDense(Min(sh->capacity, 1024 * 1024)));
}

int
HnswMemGraphCount(HnswMemGraph *g)
{
	return Min(pg_atomic_read_u32(&g->sh->count), g->sh->capacity);
}

ItemPointer
HnswMemGraphHeapTid(HnswMemGraph *g, int id)
{
	return &elem(g, id)->heaptid;
}

int
HnswMemGraphEntryLevel(HnswMemGraph *g)
{
	return g->sh->entry >= 0 ? elem(g, g->sh->entry)->level : -1;
}

/* Reserve and initialise an element; -1 when the arena is full. */
static int
new_element(HnswMemGraph *g, const float *vec, ItemPointer heaptid)
{
	int			level = HnswRandomLevel(g->m);
	Size		size = element_size(g->dim, g->m, level);
	uint64		off = pg_atomic_fetch_add_u64(&g->sh->used, size);
	uint32		id;
	HnswMemElement *e;

	if (off + size > g->sh->arena_size ||
		(id = pg_atomic_fetch_add_u32(&g->sh->count, 1)) >= g->sh->capacity)
	{
		pg_atomic_write_u32(&g->sh->overflowed, 1);
		return -1;
	}
	e = (HnswMemElement *) (g->arena + off);
	e->heaptid = *heaptid;
	e->level = level;
	if (g->parallel)
		LWLockInitialize(&e->lock, g->sh->lock_tranche);
	memcpy(elem_vec(e), vec, sizeof(float) * g->dim);
	memset(elem_counts(g, e), 0, sizeof(int32) * (level + 1));
	/* publish the offset only once the element is complete */
	pg_write_barrier();
	g->registry[id] = off;
	return id;
}

typedef struct PairArg
{
	HnswMemGraph *g;
	const HnswCandidate *cands;
} PairArg;

static float
mem_pair_distance(void *arg, int i, int j)
{
	PairArg    *pa = arg;

	return HnswDistanceCompute(&pa->g->dist,
							   elem_vec(elem(pa->g, pa->cands[i].id)),
							   elem_vec(elem(pa->g, pa->cands[j].id)), pa->g->dim);
}

/*
 * Replace e's list in `layer` by the heuristic's choice among cands, kept
 * sorted by distance with each link's heuristic verdict.
 */
static void
set_neighbors(HnswMemGraph *g, HnswMemElement *e, int layer,
			  HnswCandidate *cands, int n)
{
	int			chosen[HNSW_MAX_M * 2 + 1];
	int8	   *verdict = palloc0(Max(n, 1));
	PairArg		pa = {g, cands};
	int			start = layer_start(g->m, layer);
	int			k,
				naccepted,
				out = 0;
	int32	   *nbrs = elem_nbrs(g, e);
	float	   *ndist = elem_ndist(g, e);
	bool	   *acc = elem_accepted(g, e);

	HnswSortCandidates(cands, n);
	k = HnswSelectNeighbors(cands, n, layer_cap(g->m, layer),
							mem_pair_distance, &pa, chosen, &naccepted);
	for (int i = 0; i < k; i++)
		verdict[chosen[i]] = i < naccepted ? 2 : 1;
	elem_lock(g, e, LW_EXCLUSIVE);
	for (int i = 0; i < n; i++)
	{
		if (verdict[i] == 0)
			continue;
		nbrs[start + out] = (int32) cands[i].id;
		ndist[start + out] = cands[i].distance;
		acc[start + out] = verdict[i] == 2;
		out++;
	}
	elem_counts(g, e)[layer] = out;
	elem_unlock(g, e);
	pfree(verdict);
}

/* A view of e's list that starts at slot `start` and holds n links. */
static HnswSortedList
list_view(const HnswMemGraph *g, HnswMemElement *e, int start, int n, int cap)
{
	HnswSortedList l;

	l.ids = elem_nbrs(g, e) + start;
	l.dist = elem_ndist(g, e) + start;
	l.accepted = elem_accepted(g, e) + start;
	l.n = n;
	l.cap = cap;
	return l;
}

/* Insert a link at its sorted place; the list must have room. */
static void
insert_sorted(const HnswMemGraph *g, HnswMemElement *e, int start, int n,
			  int32 id, float d, bool accepted)
{
	HnswSortedList l = list_view(g, e, start, n, n + 1);

	HnswSortedListInsert(&l, id, d, accepted);
}

static void
remove_slot(const HnswMemGraph *g, HnswMemElement *e, int start, int n, int pos)
{
	HnswSortedList l = list_view(g, e, start, n, n);

	HnswSortedListRemove(&l, pos);
}

typedef struct ToNewArg
{
	HnswMemGraph *g;
	const float *q;
} ToNewArg;

static float
mem_to_new(void *arg, int32 id)
{
	ToNewArg   *a = arg;

	return HnswDistanceCompute(&a->g->dist, a->q, elem_vec(elem(a->g, id)), a->g->dim);
}

/*
 * Link `from` to new element `to` (HnswSortedListAdd: the heuristic applied
 * incrementally).  Returns the element pushed out of the list, or -1.
 */
static int
add_backlink(HnswMemGraph *g, int from, int to, float distance, int layer)
{
	HnswMemElement *e = elem(g, from);
	ToNewArg	arg = {g, elem_vec(elem(g, to))};
	int32	   *counts;
	HnswSortedList l;
	int			dropped;

	elem_lock(g, e, LW_EXCLUSIVE);
	counts = elem_counts(g, e);
	l = list_view(g, e, layer_start(g->m, layer), counts[layer], layer_cap(g->m, layer));
	dropped = HnswSortedListAdd(&l, to, distance, mem_to_new, &arg);
	counts[layer] = l.n;
	elem_unlock(g, e);
	return dropped;
}

static HnswCandidate
mem_candidate(HnswMemGraph *g, const float *query, int id)
{
	HnswCandidate c;
	HnswMemElement *e = elem(g, id);

	c.id = id;
	c.ref = 0;
	c.heaptid = 0;
	c.distance = HnswDistanceCompute(&g->dist, query, elem_vec(e), g->dim);
	c.returnable = true;
	c.level = e->level;
	return c;
}

static void
reset_search(HnswSearchState *s)
{
	HnswVisitedReset(s->visited);
	s->frontier.count = 0;
	s->results.count = 0;
	s->discarded.count = 0;
}

/* Link element q into the graph below entry `entry` (Algorithm 1). */
static void
connect_element(HnswMemGraph *g, int q, int entry)
{
	HnswMemElement *e = elem(g, q);
	MemGraphView view;
	HnswCandidate ep;
	HnswCandidate *entries;
	int			nentries = 1;
	int			entry_level = elem(g, entry)->level;

	view.base.expand = mem_expand;
	view.base.prefetch = mem_prefetch;
	view.base.query = elem_vec(e);
	view.base.dim = g->dim;
	view.base.dist = g->dist;
	view.mg = g;

	ep = mem_candidate(g, elem_vec(e), entry);
	if (entry_level > e->level)
		ep = HnswGreedySearch(&view.base, g->search.visited, ep, entry_level, e->level);
	entries = palloc(sizeof(HnswCandidate) * (g->ef_construction + 1));
	entries[0] = ep;

	for (int layer = Min(e->level, entry_level); layer >= 0; layer--)
	{
		HnswSearchState *s = &g->search;
		int			start = layer_start(g->m, layer);
		int32		links[HNSW_MAX_M * 2];
		float		dists[HNSW_MAX_M * 2];
		int			nlinks;

		reset_search(s);
		HnswSearchLayer(&view.base, s, entries, nentries, g->ef_construction, layer);
		nentries = s->results.count;
		memcpy(entries, s->results.items, sizeof(HnswCandidate) * nentries);
		set_neighbors(g, e, layer, entries, nentries);
		elem_lock(g, e, LW_SHARED);
		nlinks = elem_counts(g, e)[layer];
		memcpy(links, elem_nbrs(g, e) + start, sizeof(int32) * nlinks);
		memcpy(dists, elem_ndist(g, e) + start, sizeof(float) * nlinks);
		elem_unlock(g, e);
		/*
		 * Elements a back-link displaces are not adopted here, unlike on
		 * disk: it costs recall (0.85 -> 0.81 at ef_search 40 on GloVe), and
		 * HnswMemGraphEnsureReachable repairs the whole graph before it is
		 * written.
		 */
		for (int i = 0; i < nlinks; i++)
			(void) add_backlink(g, links[i], q, dists[i], layer);
	}
	pfree(entries);
}

/*
 * Store one vector in the arena, not linked yet.  Returns false when the
 * arena is full.
 */
bool
HnswMemGraphAdd(HnswMemGraph *g, const float *vec, ItemPointer heaptid)
{
	if (pg_atomic_read_u32(&g->sh->overflowed))
		return false;
	return new_element(g, vec, heaptid) >= 0;
}

/*
 * Link element q (Algorithm 1).  In a parallel build an insert that raises
 * the top level holds the entry lock throughout, as hnswlib does, so the
 * entry point only ever moves up to a fully linked element.
 */
static void
link_element(HnswMemGraph *g, int q)
{
	int			entry;
	bool		exclusive = false;

	if (g->parallel)
		LWLockAcquire(&g->sh->entry_lock, LW_SHARED);
	entry = g->sh->entry;
	if (entry < 0 || elem(g, q)->level > elem(g, entry)->level)
	{
		if (g->parallel)
		{
			LWLockRelease(&g->sh->entry_lock);
			LWLockAcquire(&g->sh->entry_lock, LW_EXCLUSIVE);
		}
		exclusive = true;
		entry = g->sh->entry;
	}
	else if (g->parallel)
		LWLockRelease(&g->sh->entry_lock);

	if (entry >= 0)
		connect_element(g, q, entry);
	if (exclusive)
	{
		if (entry < 0 || elem(g, q)->level > elem(g, entry)->level)
			g->sh->entry = q;
		if (g->parallel)
			LWLockRelease(&g->sh->entry_lock);
	}
}

/*
 * A random insertion order for the elements stored so far.  Heap order is
 * often sorted by something (time, frequency, source), and HNSW inserted in
 * sorted order links the late elements poorly: on GloVe in its frequency
 * order, recall@10 at ef_search 40 is 0.78 in heap order and 0.84 shuffled.
 */
int32 *
HnswMemGraphShuffledOrder(HnswMemGraph *g)
{
	int			count = HnswMemGraphCount(g);
	int32	   *order = MemoryContextAllocHuge(CurrentMemoryContext,
											   sizeof(int32) * Max(count, 1));
	pg_prng_state rng;

	pg_prng_seed(&rng, (uint64) count * UINT64CONST(0x9E3779B97F4A7C15));
	for (int i = 0; i < count; i++)
		order[i] = i;
	for (int i = count - 1; i > 0; i--)
	{
		int			j = (int) pg_prng_uint64_range(&rng, 0, i);
		int32		t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	return order;
}

/*
 * Link every stored element, in `order`.  Participants of a parallel build
 * all call this and take the next element from a shared counter.
 */
void
HnswMemGraphLinkAll(HnswMemGraph *g, const int32 *order, bool report)
{
	int			count = HnswMemGraphCount(g);

	for (;;)
	{
		uint32		i = pg_atomic_fetch_add_u32(&g->sh->next_link, 1);

		if (i >= (uint32) count)
			break;
		link_element(g, order[i]);
		if ((i & 255) == 0)
		{
			CHECK_FOR_INTERRUPTS();
			if (report)
				pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, i);
		}
	}
}

/*
 * Copy a locally built arena into shared memory for a parallel build, and
 * give every element a lock.
 */
void
HnswMemGraphShare(HnswMemGraph *src, HnswGraphShared *dst, char *dst_arena)
{
	int			count = HnswMemGraphCount(src);
	HnswMemGraph view;

	*dst = *src->sh;
	dst->lock_tranche = LWLockNewTrancheId();
	LWLockInitialize(&dst->entry_lock, dst->lock_tranche);
	memcpy(dst_arena, src->arena, pg_atomic_read_u64(&src->sh->used));
	pg_atomic_init_u64(&dst->used, pg_atomic_read_u64(&src->sh->used));
	pg_atomic_init_u32(&dst->count, count);
	pg_atomic_init_u32(&dst->overflowed, 0);
	pg_atomic_init_u32(&dst->next_link, 0);
	view.arena = dst_arena;
	view.registry = (Size *) dst_arena;
	for (int i = 0; i < count; i++)
		LWLockInitialize(&elem(&view, i)->lock, dst->lock_tranche);
}

/* Size of the arena actually used, for copying it. */
Size
HnswMemGraphUsed(HnswMemGraph *g)
{
	return pg_atomic_read_u64(&g->sh->used);
}

/* ---------- reachability ---------- */

/*
 * Mark what is reachable in layer 0 by at least one link from the nodes
 * already queued, breadth first, recording for each newly reached node the
 * node whose link reached it first (its parent: those links form a
 * spanning tree of everything reached).  A node counts only if some link
 * leads to it: a search reaches layer 0 at whatever node the descent ends
 * on, so even the entry point needs an incoming link.
 */
static void
spread_reach(HnswMemGraph *g, bool *reached, int32 *parent, int *queue,
			 int head, int tail)
{
	while (head < tail)
	{
		int			from = queue[head++];
		HnswMemElement *e = elem(g, from);
		int32	   *nbrs = elem_nbrs(g, e);

		for (int i = 0; i < elem_counts(g, e)[0]; i++)
		{
			int			n = nbrs[i];

			if (!reached[n])
			{
				reached[n] = true;
				parent[n] = from;
				queue[tail++] = n;
			}
		}
	}
}

/*
 * The slot of f's layer-0 list that a new link may take without cutting
 * anything off: a free one (count), else the farthest link that is not a
 * tree link (its target stays reached through its own parent); -1 if
 * every link is one.
 */
static int
spare_slot(HnswMemGraph *g, int f, const int32 *parent)
{
	HnswMemElement *fe = elem(g, f);
	int			count = elem_counts(g, fe)[0];
	int32	   *nbrs = elem_nbrs(g, fe);

	if (count < layer_cap(g->m, 0))
		return count;
	for (int i = count - 1; i >= 0; i--)
	{
		if (parent[nbrs[i]] != f)
			return i;
	}
	return -1;
}

/* A reached node that can link to u: its nearest reached neighbour first. */
static int
choose_linker(HnswMemGraph *g, int u, int entry, const bool *reached,
			  const int32 *parent)
{
	HnswMemElement *ue = elem(g, u);
	int32	   *unbrs = elem_nbrs(g, ue);
	int			count = HnswMemGraphCount(g);

	for (int i = 0; i < elem_counts(g, ue)[0]; i++)
	{
		if (unbrs[i] != u && reached[unbrs[i]] && spare_slot(g, unbrs[i], parent) >= 0)
			return unbrs[i];
	}
	if (entry != u && spare_slot(g, entry, parent) >= 0)
		return entry;
	for (int f = 0; f < count; f++)
	{
		if (f != u && reached[f] && spare_slot(g, f, parent) >= 0)
			return f;
	}
	return -1;
}

/*
 * Pruning can leave an element with no incoming link, so no search could
 * ever return it.  Link each such element from a reached node, nearest
 * first, in a free slot or in place of a link that is not part of the
 * spanning tree of what is reached: the tree stays whole, so nothing
 * reached is ever cut off again, and one pass over the elements leaves
 * everything reachable (the entry point's own links are where the walk
 * starts).  Returns the number of links added.
 */
int
HnswMemGraphEnsureReachable(HnswMemGraph *g)
{
	int			count = HnswMemGraphCount(g);
	int			entry = g->sh->entry;
	bool	   *reached;
	int32	   *parent;
	int		   *queue;
	int			tail = 0,
				added = 0;

	if (entry < 0)
		return 0;
	reached = MemoryContextAllocExtended(CurrentMemoryContext, sizeof(bool) * count,
										 MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	parent = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * count);
	queue = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int) * (count + 1));
	for (int i = 0; i < count; i++)
		parent[i] = -1;
	queue[tail++] = entry;
	spread_reach(g, reached, parent, queue, 0, tail);
	for (int u = 0; u < count; u++)
	{
		int			f,
					slot;
		HnswMemElement *fe;
		int32	   *fcounts;
		float		d;

		if (reached[u] || (f = choose_linker(g, u, entry, reached, parent)) < 0)
			continue;
		fe = elem(g, f);
		fcounts = elem_counts(g, fe);
		slot = spare_slot(g, f, parent);
		if (slot < fcounts[0])
		{
			remove_slot(g, fe, 0, fcounts[0], slot);
			fcounts[0]--;
		}
		d = HnswDistanceCompute(&g->dist, elem_vec(fe), elem_vec(elem(g, u)), g->dim);
		insert_sorted(g, fe, 0, fcounts[0], u, d, true);
		fcounts[0]++;
		added++;
		reached[u] = true;
		parent[u] = f;
		queue[0] = u;
		spread_reach(g, reached, parent, queue, 0, 1);
	}
	pfree(reached);
	pfree(parent);
	pfree(queue);
	return added;
}

/* ---------- layout ---------- */

typedef struct PagePlacer
{
	BlockNumber blkno;
	Size		lower;
	Size		upper;
	OffsetNumber next_off;
} PagePlacer;

static void
placer_new_page(PagePlacer *p)
{
	p->blkno++;
	p->lower = SizeOfPageHeaderData;
	p->upper = BLCKSZ - MAXALIGN(sizeof(HnswPageOpaqueData));
	p->next_off = FirstOffsetNumber;
}

static bool
placer_fits(const PagePlacer *p, Size size1, Size size2)
{
	Size		need = MAXALIGN(size1) + MAXALIGN(size2) +
		(size2 ? 2 : 1) * sizeof(ItemIdData);

	return p->lower + need <= p->upper;
}

static void
placer_place(PagePlacer *p, Size size, ItemPointer tid)
{
	if (!placer_fits(p, size, 0))
		placer_new_page(p);
	ItemPointerSet(tid, p->blkno, p->next_off++);
	p->lower += sizeof(ItemIdData);
	p->upper -= MAXALIGN(size);
}

/*
 * Breadth-first order from the entry point over layer 0 (elements that
 * are not reachable go last), then pack element and neighbour tuple pairs
 * into pages in that order, keeping a pair on one page whenever it fits.
 */
void
HnswMemGraphLayout(HnswMemGraph *g, HnswLayout *layout)
{
	int			count = HnswMemGraphCount(g);
	bool	   *reached = MemoryContextAllocExtended(CurrentMemoryContext, sizeof(bool) * Max(count, 1), MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	int			n = 0;
	PagePlacer	p;
	Size		esize = HNSW_ELEMENT_TUPLE_SIZE(g->dim);

	layout->order = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int) * Max(count, 1));
	layout->tids = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(ItemPointerData) * Max(count, 1));
	layout->ntids = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(ItemPointerData) * Max(count, 1));
	if (g->sh->entry >= 0)
	{
		/* breadth-first from the entry point */
		reached[g->sh->entry] = true;
		layout->order[n++] = g->sh->entry;
		for (int head = 0; head < n; head++)
		{
			HnswMemElement *e = elem(g, layout->order[head]);
			int32	   *nbrs = elem_nbrs(g, e);

			for (int i = 0; i < elem_counts(g, e)[0]; i++)
			{
				if (!reached[nbrs[i]])
				{
					reached[nbrs[i]] = true;
					layout->order[n++] = nbrs[i];
				}
			}
		}
	}
	for (int i = 0; i < count; i++)
	{
		if (!reached[i])
			layout->order[n++] = i;
	}
	Assert(n == count);

	p.blkno = HNSW_METAPAGE_BLKNO;
	placer_new_page(&p);
	for (int i = 0; i < count; i++)
	{
		int			id = layout->order[i];
		Size		nsize = HNSW_NEIGHBOR_TUPLE_SIZE(g->m, elem(g, id)->level);

		if (!placer_fits(&p, esize, nsize))
		{
			PagePlacer	fresh = p;

			placer_new_page(&fresh);
			if (placer_fits(&fresh, esize, nsize))
				p = fresh;
		}
		placer_place(&p, esize, &layout->tids[id]);
		placer_place(&p, nsize, &layout->ntids[id]);
	}
	pfree(reached);
}

/* ---------- writing ---------- */

static void
add_item(Page page, void *item, Size size, ItemPointer expect)
{
	OffsetNumber off = PageAddItem(page, (Item) item, size, InvalidOffsetNumber,
								   false, false);

	if (off != ItemPointerGetOffsetNumber(expect))
		elog(ERROR, "hnsw build: tuple placed at offset %u, expected %u",
			 off, ItemPointerGetOffsetNumber(expect));
}

static void
fill_element(HnswMemGraph *g, HnswLayout *layout, int id, HnswElementTuple et)
{
	HnswMemElement *e = elem(g, id);

	memset(et, 0, HNSW_ELEMENT_TUPLE_SIZE(g->dim));
	et->type = HNSW_ELEMENT_TUPLE;
	et->level = e->level;
	et->heaptid = e->heaptid;
	et->neighbortid = layout->ntids[id];
	memcpy(et->x, elem_vec(e), sizeof(float) * g->dim);
}

static void
fill_neighbors(HnswMemGraph *g, HnswLayout *layout, int id, HnswNeighborTuple nt)
{
	HnswMemElement *e = elem(g, id);
	int			nslots = HNSW_NEIGHBOR_SLOTS(g->m, e->level);
	int32	   *counts = elem_counts(g, e);
	int32	   *nbrs = elem_nbrs(g, e);
	bool	   *acc = elem_accepted(g, e);

	memset(nt, 0, HNSW_NEIGHBOR_TUPLE_SIZE(g->m, e->level));
	nt->type = HNSW_NEIGHBOR_TUPLE;
	nt->level = e->level;
	nt->nslots = nslots;
	for (int i = 0; i < nslots; i++)
		ItemPointerSetInvalid(&nt->slots[i]);
	for (int layer = 0; layer <= e->level; layer++)
	{
		int			start = layer_start(g->m, layer);

		/* with their verdicts, so that inserts can extend the list cheaply */
		for (int i = 0; i < counts[layer]; i++)
			HnswSlotSet(&nt->slots[start + i], &layout->tids[nbrs[start + i]],
						acc[start + i]);
	}
}

/*
 * Write the pages in block order.  Pages go through shared buffers without
 * WAL; the caller logs the whole relation once (log_newpage_range).
 */
void
HnswMemGraphWrite(HnswMemGraph *g, HnswLayout *layout, Relation index)
{
	Size		esize = HNSW_ELEMENT_TUPLE_SIZE(g->dim);
	char	   *etup = palloc(esize);
	char	   *ntup = palloc(HNSW_NEIGHBOR_TUPLE_SIZE(g->m, HNSW_MAX_LEVEL));
	Buffer		buf = InvalidBuffer;
	BlockNumber cur = HNSW_METAPAGE_BLKNO;

	int			count = HnswMemGraphCount(g);

	for (int i = 0; i < count; i++)
	{
		int			id = layout->order[i];
		ItemPointer tids[2] = {&layout->tids[id], &layout->ntids[id]};

		fill_element(g, layout, id, (HnswElementTuple) etup);
		fill_neighbors(g, layout, id, (HnswNeighborTuple) ntup);
		for (int k = 0; k < 2; k++)
		{
			if (ItemPointerGetBlockNumber(tids[k]) != cur)
			{
				if (BufferIsValid(buf))
				{
					MarkBufferDirty(buf);
					UnlockReleaseBuffer(buf);
				}
				buf = HnswNewBuffer(index, MAIN_FORKNUM);
				cur = BufferGetBlockNumber(buf);
				if (cur != ItemPointerGetBlockNumber(tids[k]))
					elog(ERROR, "hnsw build: wrote block %u, expected %u",
						 cur, ItemPointerGetBlockNumber(tids[k]));
				HnswInitPage(BufferGetPage(buf));
			}
			if (k == 0)
				add_item(BufferGetPage(buf), etup, esize, tids[k]);
			else
				add_item(BufferGetPage(buf), ntup,
						 HNSW_NEIGHBOR_TUPLE_SIZE(g->m, elem(g, id)->level), tids[k]);
		}
		if ((i & 1023) == 0)
		{
			CHECK_FOR_INTERRUPTS();
			pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, i);
		}
	}
	if (BufferIsValid(buf))
	{
		MarkBufferDirty(buf);
		UnlockReleaseBuffer(buf);
	}
	pfree(etup);
	pfree(ntup);
}
