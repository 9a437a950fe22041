/*
 * hnswsearch.c
 *		The one graph search, used by build, insert, scan and vacuum.
 *
 * The algorithms are those of Malkov and Yashunin's HNSW paper: greedy
 * descent through the upper layers (SEARCH-LAYER with ef = 1), best-first
 * SEARCH-LAYER (Algorithm 2) in the target layer, and the neighbour
 * selection heuristic (Algorithm 4) in hnswutils.c.  The graph itself is
 * reached only through HnswGraph.expand, so the same code walks the
 * in-memory build graph and the on-disk index.
 *
 * Candidate queues are typed binary heaps over arrays: they sit on the
 * hottest path, where a comparator called through a pointer or a palloc per
 * node (as with lib/binaryheap or pairingheap) shows up in profiles.
 */
#include "postgres.h"

#include <math.h>

#include "common/pg_prng.h"
#include "utils/memutils.h"

#include "hnsw.h"

/* ---------- visited set: simplehash over packed TIDs or indexes ---------- */

typedef struct VisitedEntry
{
	uint64		key;
	char		status;
} VisitedEntry;

#define SH_PREFIX visitedhash
#define SH_ELEMENT_TYPE VisitedEntry
#define SH_KEY_TYPE uint64
#define SH_KEY key
#define SH_HASH_KEY(tb, k) HnswHash64(k)
#define SH_EQUAL(tb, a, b) ((a) == (b))
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

/*
 * Two representations: a hash of packed TIDs for the on-disk graph, and
 * for the in-memory build graph (dense element numbers) an array of epoch
 * stamps, where a reset is one increment instead of clearing a table.
 */
HnswVisited *
HnswVisitedCreate(int expected)
{
	HnswVisited *v = palloc0(sizeof(HnswVisited));

	v->hash = visitedhash_create(CurrentMemoryContext, Max(expected, 64), NULL);
	return v;
}

HnswVisited *
HnswVisitedCreateDense(int capacity)
{
	HnswVisited *v = palloc0(sizeof(HnswVisited));

	v->nstamps = Max(capacity, 1024);
	v->stamps = palloc0(sizeof(uint32) * v->nstamps);
	v->epoch = 1;
	return v;
}

static pg_noinline void
visited_grow(HnswVisited *v, uint64 id)
{
	uint32		n = v->nstamps;

	while (n <= id)
		n *= 2;
	v->stamps = repalloc_huge(v->stamps, sizeof(uint32) * n);
	memset(v->stamps + v->nstamps, 0, sizeof(uint32) * (n - v->nstamps));
	v->nstamps = n;
}

/* HnswVisitedTestAndSet's way for hashed ids and growing stamps. */
bool
HnswVisitedTestAndSetSlow(HnswVisited *v, uint64 id)
{
	bool		found;

	if (v->hash == NULL)
	{
		if (id >= v->nstamps)
			visited_grow(v, id);
		found = v->stamps[id] == v->epoch;
		v->stamps[id] = v->epoch;
		return found;
	}
	visitedhash_insert(v->hash, id, &found);
	return found;
}

void
HnswVisitedReset(HnswVisited *v)
{
	if (v->hash == NULL)
	{
		if (++v->epoch == 0)
		{
			memset(v->stamps, 0, sizeof(uint32) * v->nstamps);
			v->epoch = 1;
		}
		return;
	}
	visitedhash_reset(v->hash);
}

/* ---------- heaps ---------- */

void
HnswHeapInit(HnswHeap *h, int capacity)
{
	h->capacity = Max(capacity, 16);
	h->count = 0;
	h->items = palloc(sizeof(HnswCandidate) * h->capacity);
}

static inline void
heap_reserve(HnswHeap *h)
{
	if (h->count == h->capacity)
	{
		h->capacity *= 2;
		h->items = repalloc(h->items, sizeof(HnswCandidate) * h->capacity);
	}
}

/* sign = 1 for a min-heap, -1 for a max-heap */
static inline bool
heap_before(const HnswCandidate *a, const HnswCandidate *b, int sign)
{
	return sign > 0 ? a->distance < b->distance : a->distance > b->distance;
}

static inline void
heap_push(HnswHeap *h, const HnswCandidate *c, int sign)
{
	int			i;

	heap_reserve(h);
	i = h->count++;
	while (i > 0)
	{
		int			parent = (i - 1) / 2;

		if (!heap_before(c, &h->items[parent], sign))
			break;
		h->items[i] = h->items[parent];
		i = parent;
	}
	h->items[i] = *c;
}

static inline HnswCandidate
heap_pop(HnswHeap *h, int sign)
{
	HnswCandidate top = h->items[0];
	HnswCandidate last = h->items[--h->count];
	int			i = 0;

	for (;;)
	{
		int			child = 2 * i + 1;

		if (child >= h->count)
			break;
		if (child + 1 < h->count &&
			heap_before(&h->items[child + 1], &h->items[child], sign))
			child++;
		if (!heap_before(&h->items[child], &last, sign))
			break;
		h->items[i] = h->items[child];
		i = child;
	}
	if (h->count > 0)
		h->items[i] = last;
	return top;
}

void
HnswHeapPushMin(HnswHeap *h, const HnswCandidate *c)
{
	heap_push(h, c, 1);
}

HnswCandidate
HnswHeapPopMin(HnswHeap *h)
{
	return heap_pop(h, 1);
}

void
HnswHeapPushMax(HnswHeap *h, const HnswCandidate *c)
{
	heap_push(h, c, -1);
}

HnswCandidate
HnswHeapPopMax(HnswHeap *h)
{
	return heap_pop(h, -1);
}

static inline int
candidate_cmp(const HnswCandidate *ca, const HnswCandidate *cb)
{
	if (ca->distance != cb->distance)
		return ca->distance < cb->distance ? -1 : 1;
	/* ties broken by identity so the order is deterministic */
	return (ca->id > cb->id) - (ca->id < cb->id);
}

/*
 * Nearest first, with a sort specialised for candidates (PostgreSQL's
 * sort_template.h): the comparator is inlined, which matters for the
 * short lists sorted once per layer of every search.
 */
#define ST_SORT sort_candidates
#define ST_ELEMENT_TYPE HnswCandidate
#define ST_COMPARE(a, b) candidate_cmp(a, b)
#define ST_SCOPE static
#define ST_DECLARE
#define ST_DEFINE
#include "lib/sort_template.h"

void
HnswSortCandidates(HnswCandidate *items, int n)
{
	sort_candidates(items, n);
}

/* ---------- level assignment ---------- */

/*
 * The paper's level distribution: floor(-ln(U) * mL) with mL = 1/ln(M),
 * capped so a level always fits the neighbour tuple.
 */
int
HnswRandomLevel(int m)
{
	double		ml = 1 / log(m);
	double		u = pg_prng_double(&pg_global_prng_state);
	int			level = (int) floor(-log(1.0 - u) * ml);

	return Min(level, HNSW_MAX_LEVEL);
}

/* ---------- searches ---------- */

void
HnswSearchStateInit(HnswSearchState *s, int ef, bool keep_discarded,
					HnswVisited *visited)
{
	s->visited = visited ? visited : HnswVisitedCreate(ef * 32);
	HnswHeapInit(&s->frontier, ef * 2);
	HnswHeapInit(&s->results, ef + 1);
	HnswHeapInit(&s->discarded, keep_discarded ? ef : 16);
	s->keep_discarded = keep_discarded;
}

typedef struct GreedyArg
{
	HnswCandidate best;
	bool		improved;
} GreedyArg;

static void
greedy_emit(void *arg, const HnswCandidate *c)
{
	GreedyArg  *g = arg;

	if (c->distance < g->best.distance)
	{
		g->best = *c;
		g->improved = true;
	}
}

/*
 * Descend from from_level down to (but not into) to_level, moving to the
 * nearest neighbour while that gets closer: SEARCH-LAYER with ef = 1.
 * `visited` is scratch space, reset here.
 */
HnswCandidate
HnswGreedySearch(HnswGraph *g, HnswVisited *visited, HnswCandidate entry,
				 int from_level, int to_level)
{
	GreedyArg	arg;

	arg.best = entry;
	HnswVisitedReset(visited);
	for (int layer = from_level; layer > to_level; layer--)
	{
		do
		{
			HnswCandidate current = arg.best;

			arg.improved = false;
			HnswVisitedTestAndSet(visited, current.id);
			g->expand(g, &current, layer, visited, greedy_emit, &arg);
		} while (arg.improved);
		/* the next layer may revisit nodes seen here */
		HnswVisitedReset(visited);
	}
	return arg.best;
}

typedef struct LayerArg
{
	HnswSearchState *s;
	int			ef;
} LayerArg;

/* Offer a newly seen node to the frontier and the result set. */
static void
layer_emit(void *arg, const HnswCandidate *c)
{
	LayerArg   *la = arg;
	HnswSearchState *s = la->s;
	bool		full = s->results.count >= la->ef;

	if (full && c->distance >= s->results.items[0].distance)
	{
		if (s->keep_discarded)
		{
			HnswHeapPushMin(&s->frontier, c);
			if (c->returnable)
				HnswHeapPushMin(&s->discarded, c);
		}
		return;
	}
	HnswHeapPushMin(&s->frontier, c);
	if (!c->returnable)
		return;
	HnswHeapPushMax(&s->results, c);
	if (s->results.count > la->ef)
	{
		HnswCandidate out = HnswHeapPopMax(&s->results);

		if (s->keep_discarded)
			HnswHeapPushMin(&s->discarded, &out);
	}
}

/*
 * Best-first expansion until the nearest unexpanded node is farther than
 * the farthest of the ef results (Algorithm 2).  With keep_discarded the
 * frontier keeps every node seen, so a later round can continue from it.
 */
static void
expand_until_stable(HnswGraph *g, HnswSearchState *s, int ef, int layer)
{
	LayerArg	arg = {s, ef};

	while (s->frontier.count > 0)
	{
		HnswCandidate c;

		if (s->results.count >= ef &&
			s->frontier.items[0].distance > s->results.items[0].distance)
			break;
		c = HnswHeapPopMin(&s->frontier);
		/* the frontier's next is most often expanded next */
		if (g->prefetch && s->frontier.count > 0)
			g->prefetch(g, s->frontier.items[0].id);
		g->expand(g, &c, layer, s->visited, layer_emit, &arg);
	}
}

void
HnswSearchLayer(HnswGraph *g, HnswSearchState *s,
				const HnswCandidate *entries, int nentries, int ef, int layer)
{
	for (int i = 0; i < nentries; i++)
	{
		if (HnswVisitedTestAndSet(s->visited, entries[i].id))
			continue;
		HnswHeapPushMin(&s->frontier, &entries[i]);
		if (entries[i].returnable)
		{
			HnswHeapPushMax(&s->results, &entries[i]);
			if (s->results.count > ef)
			{
				HnswCandidate out = HnswHeapPopMax(&s->results);

				if (s->keep_discarded)
					HnswHeapPushMin(&s->discarded, &out);
			}
		}
	}
	expand_until_stable(g, s, ef, layer);
}

/*
 * Iterative scan: after the caller consumed `results`, refill it with the
 * next ef nearest nodes.  Discarded results come back first, then the
 * frontier is expanded further (pgvector 0.8's iterative index scans
 * follow the same idea).
 */
void
HnswSearchResume(HnswGraph *g, HnswSearchState *s, int ef)
{
	s->results.count = 0;
	while (s->discarded.count > 0 && s->results.count < ef)
	{
		HnswCandidate c = HnswHeapPopMin(&s->discarded);

		HnswHeapPushMax(&s->results, &c);
	}
	expand_until_stable(g, s, ef, 0);
}
