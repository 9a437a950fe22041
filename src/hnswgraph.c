/*
 * hnswgraph.c
 *		The in-memory graph of CREATE INDEX: insert, repair, lay out, write.
 *
 * Elements are numbered in insertion order; neighbour lists hold those
 * numbers and each link's distance, so pruning a full list needs no
 * recomputation of the owner's distances.
 */
#include "postgres.h"

#include "commands/progress.h"
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

/*
 * Unvisited neighbours are collected first and their vectors prefetched, so
 * the cache misses of the distance computations overlap (as hnswlib does).
 */
static void
mem_expand(HnswGraph *g, const HnswCandidate *c, int layer,
		   HnswVisited *visited, HnswEmitFn emit, void *arg)
{
	HnswMemGraph *mg = ((MemGraphView *) g)->mg;
	HnswMemElement *e = &mg->elements[c->id];
	const int32 *ids = e->nbrs + layer_start(mg->m, layer);
	int			n = e->counts[layer];
	int32		todo[HNSW_MAX_M * 2];
	int			ntodo = 0;
	int			lines = (g->dim * sizeof(float) + 63) / 64;

	for (int i = 0; i < n; i++)
	{
		if (HnswVisitedTestAndSet(visited, ids[i]))
			continue;
		todo[ntodo++] = ids[i];
		for (int l = 0; l < lines; l++)
			__builtin_prefetch((const char *) mg->elements[ids[i]].vec + 64 * l);
	}
	for (int i = 0; i < ntodo; i++)
	{
		HnswMemElement *ne = &mg->elements[todo[i]];
		HnswCandidate nc;

		nc.id = todo[i];
		nc.ref = 0;
		nc.heaptid = 0;
		nc.distance = HnswDistanceCompute(&mg->dist, g->query, ne->vec, g->dim);
		nc.returnable = true;
		nc.level = ne->level;
		emit(arg, &nc);
	}
}

void
HnswMemGraphInit(HnswMemGraph *g, MemoryContext cxt, int dim, int m,
				 int ef_construction, const HnswDistance *dist)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);

	g->cxt = cxt;
	g->dim = dim;
	g->m = m;
	g->ef_construction = ef_construction;
	g->dist = *dist;
	g->count = 0;
	g->capacity = 1024;
	g->elements = palloc(sizeof(HnswMemElement) * g->capacity);
	g->entry = -1;
	HnswSearchStateInit(&g->search, ef_construction, false,
						HnswVisitedCreateDense(1024));
	MemoryContextSwitchTo(old);
}

static int
new_element(HnswMemGraph *g, const float *vec, ItemPointer heaptid)
{
	HnswMemElement *e;
	int			nslots;

	if (g->count == g->capacity)
	{
		g->capacity *= 2;
		g->elements = repalloc_huge(g->elements, sizeof(HnswMemElement) * g->capacity);
	}
	e = &g->elements[g->count];
	e->heaptid = *heaptid;
	e->level = HnswRandomLevel(g->m);
	nslots = HNSW_NEIGHBOR_SLOTS(g->m, e->level);
	e->vec = palloc(sizeof(float) * g->dim);
	memcpy(e->vec, vec, sizeof(float) * g->dim);
	e->counts = palloc0(sizeof(int32) * (e->level + 1));
	e->nbrs = palloc(sizeof(int32) * nslots);
	e->ndist = palloc(sizeof(float) * nslots);
	e->accepted = palloc(sizeof(bool) * nslots);
	return g->count++;
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
							   pa->g->elements[pa->cands[i].id].vec,
							   pa->g->elements[pa->cands[j].id].vec, pa->g->dim);
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

	HnswSortCandidates(cands, n);
	k = HnswSelectNeighbors(cands, n, layer_cap(g->m, layer),
							mem_pair_distance, &pa, chosen, &naccepted);
	for (int i = 0; i < k; i++)
		verdict[chosen[i]] = i < naccepted ? 2 : 1;
	for (int i = 0; i < n; i++)
	{
		if (verdict[i] == 0)
			continue;
		e->nbrs[start + out] = (int32) cands[i].id;
		e->ndist[start + out] = cands[i].distance;
		e->accepted[start + out] = verdict[i] == 2;
		out++;
	}
	e->counts[layer] = out;
	pfree(verdict);
}

/* Insert a link at its sorted place; the list must have room. */
static void
insert_sorted(HnswMemElement *e, int start, int n, int32 id, float d, bool accepted)
{
	int			pos = n;

	while (pos > 0 && e->ndist[start + pos - 1] > d)
	{
		e->nbrs[start + pos] = e->nbrs[start + pos - 1];
		e->ndist[start + pos] = e->ndist[start + pos - 1];
		e->accepted[start + pos] = e->accepted[start + pos - 1];
		pos--;
	}
	e->nbrs[start + pos] = id;
	e->ndist[start + pos] = d;
	e->accepted[start + pos] = accepted;
}

static void
remove_slot(HnswMemElement *e, int start, int n, int pos)
{
	for (int i = pos; i < n - 1; i++)
	{
		e->nbrs[start + i] = e->nbrs[start + i + 1];
		e->ndist[start + i] = e->ndist[start + i + 1];
		e->accepted[start + i] = e->accepted[start + i + 1];
	}
}

/*
 * Link `from` to new element `to`.  The heuristic is applied
 * incrementally: the new link is checked against the accepted links
 * nearer than it, and accepted links farther than it are checked against
 * the new one only.  A full list then drops its farthest fill link, or its
 * farthest link if all passed.  That costs at most one distance per slot
 * instead of re-running Algorithm 4 over the whole list (pgvector caches
 * the same verdicts for the same reason).
 */
static void
add_backlink(HnswMemGraph *g, int from, int to, float distance, int layer)
{
	HnswMemElement *e = &g->elements[from];
	const float *q = g->elements[to].vec;
	int			start = layer_start(g->m, layer);
	int			n = e->counts[layer];
	bool		accepted = true;

	for (int i = 0; i < n && e->ndist[start + i] <= distance && accepted; i++)
	{
		if (e->accepted[start + i] &&
			HnswDistanceCompute(&g->dist, q, g->elements[e->nbrs[start + i]].vec,
								g->dim) < distance)
			accepted = false;
	}
	if (accepted)
	{
		for (int i = 0; i < n; i++)
		{
			if (e->ndist[start + i] > distance && e->accepted[start + i] &&
				HnswDistanceCompute(&g->dist, q, g->elements[e->nbrs[start + i]].vec,
									g->dim) < e->ndist[start + i])
				e->accepted[start + i] = false;
		}
	}
	if (n == layer_cap(g->m, layer))
	{
		int			drop = n - 1;

		for (int i = n - 1; i >= 0; i--)
		{
			if (!e->accepted[start + i])
			{
				drop = i;
				break;
			}
		}
		if (accepted || e->ndist[start + drop] > distance || e->accepted[start + drop])
		{
			if (!accepted && e->ndist[start + drop] <= distance)
				return;			/* the new link would be the one dropped */
			remove_slot(e, start, n, drop);
			n--;
		}
		else
			return;
	}
	insert_sorted(e, start, n, to, distance, accepted);
	e->counts[layer] = n + 1;
}

static HnswCandidate
mem_candidate(HnswMemGraph *g, const float *query, int id)
{
	HnswCandidate c;

	c.id = id;
	c.ref = 0;
	c.heaptid = 0;
	c.distance = HnswDistanceCompute(&g->dist, query, g->elements[id].vec, g->dim);
	c.returnable = true;
	c.level = g->elements[id].level;
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

/* Paper, Algorithm 1. */
void
HnswMemGraphInsert(HnswMemGraph *g, const float *vec, ItemPointer heaptid)
{
	int			q = new_element(g, vec, heaptid);
	HnswMemElement *e = &g->elements[q];
	MemGraphView view;
	HnswCandidate ep;
	HnswCandidate *entries;
	int			nentries = 1;
	int			entry_level;

	if (g->entry < 0)
	{
		g->entry = q;
		return;
	}
	view.base.expand = mem_expand;
	view.base.query = e->vec;
	view.base.dim = g->dim;
	view.base.dist = g->dist;
	view.mg = g;

	entry_level = g->elements[g->entry].level;
	ep = mem_candidate(g, e->vec, g->entry);
	if (entry_level > e->level)
		ep = HnswGreedySearch(&view.base, g->search.visited, ep, entry_level, e->level);
	entries = palloc(sizeof(HnswCandidate) * (g->ef_construction + 1));
	entries[0] = ep;

	for (int layer = Min(e->level, entry_level); layer >= 0; layer--)
	{
		HnswSearchState *s = &g->search;
		int			start = layer_start(g->m, layer);

		reset_search(s);
		HnswSearchLayer(&view.base, s, entries, nentries, g->ef_construction, layer);
		nentries = s->results.count;
		memcpy(entries, s->results.items, sizeof(HnswCandidate) * nentries);
		set_neighbors(g, e, layer, entries, nentries);
		for (int i = 0; i < e->counts[layer]; i++)
			add_backlink(g, e->nbrs[start + i], q, e->ndist[start + i], layer);
	}
	pfree(entries);
	if (e->level > entry_level)
		g->entry = q;
}

/* ---------- reachability ---------- */

/* Mark everything reachable from `from` in layer 0; returns how many new. */
static int
mark_reachable(HnswMemGraph *g, int from, bool *reached, int *queue)
{
	int			head = 0,
				tail = 0,
				found = 0;

	if (reached[from])
		return 0;
	reached[from] = true;
	queue[tail++] = from;
	while (head < tail)
	{
		HnswMemElement *e = &g->elements[queue[head++]];

		found++;
		for (int i = 0; i < e->counts[0]; i++)
		{
			int			n = e->nbrs[i];

			if (!reached[n])
			{
				reached[n] = true;
				queue[tail++] = n;
			}
		}
	}
	return found;
}

/*
 * Pruning can leave an element with no incoming link, so no search could
 * ever return it.  Link each such element from its nearest reachable
 * neighbour (or from the entry point), replacing that node's farthest link
 * when its list is full, and repeat until everything is reachable.
 * Returns the number of links added.
 */
int
HnswMemGraphEnsureReachable(HnswMemGraph *g)
{
	bool	   *reached;
	int		   *queue;
	int			added = 0;

	if (g->entry < 0)
		return 0;
	reached = palloc(sizeof(bool) * g->count);
	queue = palloc(sizeof(int) * g->count);
	for (int round = 0; round < 8; round++)
	{
		int			before = added;

		memset(reached, 0, sizeof(bool) * g->count);
		mark_reachable(g, g->entry, reached, queue);
		for (int u = 0; u < g->count; u++)
		{
			HnswMemElement *ue = &g->elements[u];
			int			from = g->entry;
			HnswMemElement *fe;
			float		d;

			if (reached[u])
				continue;
			for (int i = 0; i < ue->counts[0]; i++)
			{
				if (reached[ue->nbrs[i]])
				{
					from = ue->nbrs[i];
					break;
				}
			}
			fe = &g->elements[from];
			d = HnswDistanceCompute(&g->dist, fe->vec, ue->vec, g->dim);
			if (fe->counts[0] == layer_cap(g->m, 0))
				fe->counts[0]--;	/* drop the farthest link */
			insert_sorted(fe, 0, fe->counts[0], u, d, true);
			fe->counts[0]++;
			added++;
			mark_reachable(g, u, reached, queue);
		}
		if (added == before)
			break;
	}
	pfree(reached);
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
	bool	   *reached = palloc0(sizeof(bool) * Max(g->count, 1));
	int			n = 0;
	PagePlacer	p;
	Size		esize = HNSW_ELEMENT_TUPLE_SIZE(g->dim);

	layout->order = palloc(sizeof(int) * Max(g->count, 1));
	layout->tids = palloc(sizeof(ItemPointerData) * Max(g->count, 1));
	layout->ntids = palloc(sizeof(ItemPointerData) * Max(g->count, 1));
	if (g->entry >= 0)
		n = mark_reachable(g, g->entry, reached, layout->order);
	for (int i = 0; i < g->count; i++)
	{
		if (!reached[i])
			layout->order[n++] = i;
	}
	Assert(n == g->count);

	p.blkno = HNSW_METAPAGE_BLKNO;
	placer_new_page(&p);
	for (int i = 0; i < g->count; i++)
	{
		int			id = layout->order[i];
		Size		nsize = HNSW_NEIGHBOR_TUPLE_SIZE(g->m, g->elements[id].level);

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
	HnswMemElement *e = &g->elements[id];

	memset(et, 0, HNSW_ELEMENT_TUPLE_SIZE(g->dim));
	et->type = HNSW_ELEMENT_TUPLE;
	et->level = e->level;
	et->heaptid = e->heaptid;
	et->neighbortid = layout->ntids[id];
	memcpy(et->x, e->vec, sizeof(float) * g->dim);
}

static void
fill_neighbors(HnswMemGraph *g, HnswLayout *layout, int id, HnswNeighborTuple nt)
{
	HnswMemElement *e = &g->elements[id];
	int			nslots = HNSW_NEIGHBOR_SLOTS(g->m, e->level);

	memset(nt, 0, HNSW_NEIGHBOR_TUPLE_SIZE(g->m, e->level));
	nt->type = HNSW_NEIGHBOR_TUPLE;
	nt->level = e->level;
	nt->nslots = nslots;
	for (int i = 0; i < nslots; i++)
		ItemPointerSetInvalid(&nt->slots[i]);
	for (int layer = 0; layer <= e->level; layer++)
	{
		int			start = layer_start(g->m, layer);

		for (int i = 0; i < e->counts[layer]; i++)
			nt->slots[start + i] = layout->tids[e->nbrs[start + i]];
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

	for (int i = 0; i < g->count; i++)
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
						 HNSW_NEIGHBOR_TUPLE_SIZE(g->m, g->elements[id].level), tids[k]);
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
