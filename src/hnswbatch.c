/*
 * hnswbatch.c
 *		Batched inserts: the rows of one remember() call linked together.
 *
 * While a batch is open (HnswBatchBegin), hnswinsert only queues the
 * prepared vector and the heap TID.  HnswBatchEnd links what was queued,
 * one index at a time, under the index's update lock held exclusively:
 *
 *	- the part of the graph the batch touches is read into memory once, a
 *	  whole page at a time (vectors and neighbour lists), as it is met;
 *	- each new element is searched for, written, and linked back with the
 *	  same search, heuristic and adoption rule as a single insert
 *	  (hnswinsert.c), but against the lists in memory;
 *	- every neighbour list the batch changed is written back once, one
 *	  GenericXLog record per page.
 *
 * A single insert reads some thirty vectors through the buffer manager for
 * every back-link it adds and WAL-logs each list it changes; in a batch the
 * reads hit memory and a page changed by many new elements is logged once.
 * That is where the batch's speed comes from (bench/membench.c).
 *
 * Semantics are those of row-by-row inserts: a scan of an index with queued
 * rows, in the backend that queued them, links them first (hnswrescan), so
 * a trigger that searches the table during the INSERT still finds them.
 * The exclusive lock keeps concurrent inserts of other sessions waiting
 * while a batch is linked, which is what makes the lists in memory the
 * truth; scans go on, and see each page change atomically.
 */
#include "postgres.h"

#include "access/generic_xlog.h"
#include "access/genam.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "hnsw.h"
#include "hnswgraph.h"
#include "stats.h"

#define HNSW_UPDATE_LOCK HNSW_METAPAGE_BLKNO

/* Link the queue once it holds this many rows, to bound its memory. */
#define BATCH_MAX_QUEUED 20000

/* ---------- the queue ---------- */

typedef struct QueuedIndex
{
	Oid			indexoid;
	int			dim;
	int			n;
	int			capacity;
	ItemPointerData *heaptids;
	float	   *values;			/* n * dim, prepared (normalised if cosine) */
	struct QueuedIndex *next;
} QueuedIndex;

static bool batch_open = false;
static bool batch_failed = false;	/* linking failed part-way */
static MemoryContext batch_cxt = NULL;
static QueuedIndex *queued = NULL;

/* The queue's memory went away with its transaction: forget it. */
static void
batch_context_gone(void *arg)
{
	batch_open = false;
	batch_failed = false;
	batch_cxt = NULL;
	queued = NULL;
}

/*
 * Linking that failed part-way (in a subtransaction that caught the error:
 * a trigger's scan links the queue, say) has left rows unlinked whose heap
 * tuples the statement still inserts.  Nothing may use the batch again:
 * the statement must fail rather than commit rows its index cannot find.
 */
static void
check_not_failed(void)
{
	if (batch_failed)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("hnsw: an earlier error interrupted linking the rows of this statement into the index"),
				 errhint("Retry the statement.")));
}

/* Is a batch open?  Parallel workers cannot see its queue. */
bool
HnswBatchIsOpen(void)
{
	return batch_open;
}

/*
 * Open a batch.  Returns false if one is open already (a remember() called
 * from a trigger of another): its rows join the outer batch, and only the
 * caller that opened it ends it.
 */
bool
HnswBatchBegin(void)
{
	MemoryContextCallback *cb;

	if (batch_open)
		return false;
	batch_cxt = AllocSetContextCreate(TopTransactionContext, "hnsw batch",
									  ALLOCSET_DEFAULT_SIZES);
	cb = MemoryContextAlloc(batch_cxt, sizeof(MemoryContextCallback));
	cb->func = batch_context_gone;
	cb->arg = NULL;
	MemoryContextRegisterResetCallback(batch_cxt, cb);
	queued = NULL;
	batch_open = true;
	return true;
}

/* Drop the queue without linking it (the statement failed). */
void
HnswBatchAbandon(void)
{
	if (batch_cxt)
		MemoryContextDelete(batch_cxt);	/* resets the state via callback */
}

static QueuedIndex *
queue_for(Relation index, int dim)
{
	QueuedIndex *q;

	for (q = queued; q; q = q->next)
	{
		if (q->indexoid == RelationGetRelid(index))
			return q;
	}
	q = MemoryContextAllocZero(batch_cxt, sizeof(QueuedIndex));
	q->indexoid = RelationGetRelid(index);
	q->dim = dim;
	q->capacity = 64;
	q->heaptids = MemoryContextAlloc(batch_cxt, sizeof(ItemPointerData) * q->capacity);
	q->values = MemoryContextAlloc(batch_cxt, sizeof(float) * dim * q->capacity);
	q->next = queued;
	queued = q;
	return q;
}

static void link_queue(Relation index, QueuedIndex *q);

/* Queue one prepared value if a batch is open; false: insert it now. */
bool
HnswBatchQueue(Relation index, int dim, const float *value, ItemPointer heaptid)
{
	QueuedIndex *q;

	if (!batch_open)
		return false;
	check_not_failed();
	q = queue_for(index, dim);
	if (q->n == q->capacity)
	{
		q->capacity *= 2;
		q->heaptids = repalloc(q->heaptids, sizeof(ItemPointerData) * q->capacity);
		q->values = repalloc_huge(q->values, sizeof(float) * dim * q->capacity);
	}
	q->heaptids[q->n] = *heaptid;
	memcpy(q->values + (Size) q->n * dim, value, sizeof(float) * dim);
	q->n++;
	if (q->n >= BATCH_MAX_QUEUED)
		link_queue(index, q);
	return true;
}

/* Link the rows queued for `index`, if any: a scan is about to read it. */
void
HnswBatchFlushIndex(Relation index)
{
	if (!batch_open)
		return;
	check_not_failed();
	for (QueuedIndex *q = queued; q; q = q->next)
	{
		if (q->indexoid == RelationGetRelid(index) && q->n > 0)
			link_queue(index, q);
	}
}

/* Link everything queued and close the batch. */
void
HnswBatchEnd(void)
{
	check_not_failed();
	for (QueuedIndex *q = queued; q; q = q->next)
	{
		Relation	index;

		if (q->n == 0)
			continue;
		/* the INSERT holds RowExclusiveLock on it until the transaction ends */
		index = index_open(q->indexoid, RowExclusiveLock);
		link_queue(index, q);
		index_close(index, NoLock);
	}
	HnswBatchAbandon();
}

/* ---------- the part of the graph in memory ---------- */

typedef struct BNode
{
	ItemPointerData tid;		/* element tuple */
	ItemPointerData ntid;		/* neighbour tuple */
	float	   *vec;			/* NULL until the element's page is read */
	int32	   *links;			/* node numbers by slot, -1 free; NULL: unread */
	float	   *ldist;			/* distance of each link, when prepared */
	bool	   *accepted;		/* each link's heuristic verdict, when prepared */
	uint32		prepared;		/* layers whose lists are sorted, with verdicts */
	uint32		stored;			/* layers read with every link's verdict */
	uint8		level;
	bool		returnable;
	bool		missing;		/* the TID holds no element */
	bool		dirty;			/* links differ from the page */
} BNode;

typedef struct TidEntry
{
	uint64		key;			/* packed element TID */
	int32		node;
	char		status;
} TidEntry;

#define SH_PREFIX tidmap
#define SH_ELEMENT_TYPE TidEntry
#define SH_KEY_TYPE uint64
#define SH_KEY key
#define SH_HASH_KEY(tb, k) HnswHash64(k)
#define SH_EQUAL(tb, a, b) ((a) == (b))
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

typedef struct BatchGraph
{
	HnswGraph	base;			/* what the search sees; query set per search */
	Relation	index;
	int			m;
	int			ef_construction;
	MemoryContext cxt;			/* nodes live here for the whole batch */
	BNode	  **chunks;			/* nodes in chunks, so they never move */
	float	  **vchunks;		/* their vectors, chunk by chunk alike */
	uint16	  **hchunks;		/* what a search needs of them, compactly */
	int			nchunks;
	int			chunk_shift;	/* log2 of nodes per chunk */
	int			nnodes;
	tidmap_hash *map;			/* element TID -> node number */
	bool	   *loaded;			/* by block: page read */
	BlockNumber nloaded;
	HnswVisited *visited;		/* dense, by node number */
	int32		entry;			/* -1: empty graph */
	int			entry_level;
} BatchGraph;

/*
 * The bits of a node a search reads for every neighbour it meets, kept in
 * an array of their own: reading them from the node would cost a cache
 * miss per neighbour.
 */
#define HOT_LEVEL		0x00FF
#define HOT_VECTOR		0x0100	/* vector in memory */
#define HOT_MISSING		0x0200	/* no element at that TID */
#define HOT_RETURNABLE	0x0400

static inline uint16 *
hot(const BatchGraph *g, int32 j)
{
	return &g->hchunks[j >> g->chunk_shift][j & ((1 << g->chunk_shift) - 1)];
}

static inline BNode *
node(const BatchGraph *g, int32 j)
{
	return &g->chunks[j >> g->chunk_shift][j & ((1 << g->chunk_shift) - 1)];
}

/* Where node j's vector goes: nodes near in number are near in memory. */
static inline float *
vector_slot(const BatchGraph *g, int32 j)
{
	return g->vchunks[j >> g->chunk_shift] +
		(Size) (j & ((1 << g->chunk_shift) - 1)) * g->base.dim;
}

static void
set_hot(BatchGraph *g, int32 j)
{
	BNode	   *n = node(g, j);

	*hot(g, j) = n->level | (n->vec ? HOT_VECTOR : 0) |
		(n->missing ? HOT_MISSING : 0) | (n->returnable ? HOT_RETURNABLE : 0);
}

/* The node of an element TID, a stub (nothing read) if new. */
static int32
node_for_tid(BatchGraph *g, ItemPointer tid)
{
	bool		found;
	TidEntry   *e = tidmap_insert(g->map, HnswPackItemPointer(tid), &found);

	if (!found)
	{
		int			c = g->nnodes >> g->chunk_shift;

		if (c == g->nchunks)
		{
			g->nchunks++;
			g->chunks = repalloc(g->chunks, sizeof(BNode *) * g->nchunks);
			g->vchunks = repalloc(g->vchunks, sizeof(float *) * g->nchunks);
			g->hchunks = repalloc(g->hchunks, sizeof(uint16 *) * g->nchunks);
			g->hchunks[c] = MemoryContextAlloc(g->cxt, sizeof(uint16) << g->chunk_shift);
			g->chunks[c] = MemoryContextAlloc(g->cxt, sizeof(BNode) << g->chunk_shift);
			g->vchunks[c] = MemoryContextAllocHuge(g->cxt, (sizeof(float) * g->base.dim)
												   << g->chunk_shift);
		}
		e->node = g->nnodes++;
		memset(node(g, e->node), 0, sizeof(BNode));
		*hot(g, e->node) = 0;
		node(g, e->node)->tid = *tid;
	}
	return e->node;
}

/* Empty lists for a node of `level`, with room for distances and verdicts. */
static void
new_links(BatchGraph *g, BNode *n)
{
	int			nslots = HNSW_NEIGHBOR_SLOTS(g->m, n->level);
	char	   *chunk = MemoryContextAlloc(g->cxt, nslots *
										   (sizeof(int32) + sizeof(float) + sizeof(bool)));

	n->links = (int32 *) chunk;
	n->ldist = (float *) (chunk + nslots * sizeof(int32));
	n->accepted = (bool *) (chunk + nslots * (sizeof(int32) + sizeof(float)));
	n->prepared = 0;
	n->stored = 0;
	for (int i = 0; i < nslots; i++)
		n->links[i] = -1;
}

/* Take an element's links from its neighbour tuple (invalid: no links). */
static void
read_links(BatchGraph *g, BNode *n, Page page, OffsetNumber off)
{
	ItemId		iid;
	HnswNeighborTuple nt = NULL;
	int			nslots = HNSW_NEIGHBOR_SLOTS(g->m, n->level);

	new_links(g, n);
	if (off < FirstOffsetNumber || off > PageGetMaxOffsetNumber(page))
		return;
	iid = PageGetItemId(page, off);
	if (ItemIdIsNormal(iid))
		nt = (HnswNeighborTuple) PageGetItem(page, iid);
	if (!nt || nt->type != HNSW_NEIGHBOR_TUPLE || nt->nslots != nslots)
		return;
	for (int layer = 0; layer <= n->level; layer++)
	{
		int			start = HNSW_LAYER_START(g->m, layer);
		bool		known = true;

		for (int i = start; i < start + HNSW_LAYER_SLOTS(g->m, layer); i++)
		{
			ItemPointerData tid = HnswSlotTid(&nt->slots[i]);

			if (!ItemPointerIsValid(&tid))
				continue;
			n->links[i] = node_for_tid(g, &tid);
			n->accepted[i] = HnswSlotVerdict(&nt->slots[i]) == HNSW_SLOT_ACCEPTED;
			known &= HnswSlotVerdict(&nt->slots[i]) != 0;
		}
		if (known)
			n->stored |= 1u << layer;
	}
}

static bool
page_loaded(BatchGraph *g, BlockNumber blkno)
{
	return blkno < g->nloaded && g->loaded[blkno];
}

static void
mark_loaded(BatchGraph *g, BlockNumber blkno)
{
	if (blkno >= g->nloaded)
	{
		BlockNumber n = Max(g->nloaded * 2, blkno + 1);

		g->loaded = repalloc_huge(g->loaded, sizeof(bool) * n);
		memset(g->loaded + g->nloaded, 0, sizeof(bool) * (n - g->nloaded));
		g->nloaded = n;
	}
	g->loaded[blkno] = true;
}

/*
 * Read every element of a page, and the links of those whose neighbour
 * tuple is on the same page.  Nodes read before keep what they have: their
 * links in memory may be newer than the page.
 */
static void
load_page(BatchGraph *g, BlockNumber blkno)
{
	Buffer		buf;
	Page		page;
	OffsetNumber maxoff;
	int32	   *owner;

	if (blkno >= g->nloaded && blkno >= RelationGetNumberOfBlocks(g->index))
		return;					/* a corrupt link: its node stays missing */
	mark_loaded(g, blkno);
	buf = HnswReadBuffer(g->index, blkno);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	maxoff = PageIsNew(page) ? InvalidOffsetNumber : PageGetMaxOffsetNumber(page);
	owner = palloc(sizeof(int32) * (maxoff + 1));
	for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off++)
		owner[off] = -1;		/* a neighbour tuple may precede its element */
	for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off++)
	{
		ItemId		iid = PageGetItemId(page, off);
		HnswElementTuple et;
		ItemPointerData tid;
		BNode	   *n;
		int32		j;

		if (!ItemIdIsNormal(iid))
			continue;
		et = (HnswElementTuple) PageGetItem(page, iid);
		if (et->type != HNSW_ELEMENT_TUPLE)
			continue;
		ItemPointerSet(&tid, blkno, off);
		j = node_for_tid(g, &tid);
		n = node(g, j);
		if (n->vec)
			continue;
		n->vec = vector_slot(g, j);
		memcpy(n->vec, et->x, sizeof(float) * g->base.dim);
		n->level = et->level;
		n->ntid = et->neighbortid;
		n->returnable = !(et->flags & HNSW_ELEMENT_DELETED) &&
			ItemPointerIsValid(&et->heaptid);
		n->missing = false;
		set_hot(g, j);
		if (ItemPointerGetBlockNumber(&n->ntid) == blkno &&
			ItemPointerGetOffsetNumber(&n->ntid) <= maxoff)
			owner[ItemPointerGetOffsetNumber(&n->ntid)] = j;
	}
	for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off++)
	{
		if (owner[off] >= 0 && node(g, owner[off])->links == NULL)
			read_links(g, node(g, owner[off]), page, off);
	}
	UnlockReleaseBuffer(buf);
	pfree(owner);
}

/* Make sure a node's vector is in memory; false if it is no element. */
static bool
ensure_vector(BatchGraph *g, int32 j)
{
	BNode	   *n = node(g, j);

	if (n->vec == NULL && !n->missing)
	{
		BlockNumber blkno = ItemPointerGetBlockNumber(&n->tid);

		if (!page_loaded(g, blkno))
			load_page(g, blkno);
		n->missing = n->vec == NULL;
		set_hot(g, j);
	}
	return !n->missing;
}

/* Make sure a node's links are in memory; false if it is no element. */
static bool
ensure_links(BatchGraph *g, int32 j)
{
	BNode	   *n = node(g, j);

	if (!ensure_vector(g, j))
		return false;
	if (n->links == NULL)
	{
		/* its neighbour tuple is on another page (a large vector) */
		Buffer		buf = HnswReadBuffer(g->index, ItemPointerGetBlockNumber(&n->ntid));

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		read_links(g, n, BufferGetPage(buf), ItemPointerGetOffsetNumber(&n->ntid));
		UnlockReleaseBuffer(buf);
	}
	return true;
}

static inline float
node_distance(BatchGraph *g, const float *a, int32 j)
{
	return HnswDistanceCompute(&g->base.dist, a, node(g, j)->vec, g->base.dim);
}

/*
 * Neighbours not visited yet are gathered first and their vectors
 * prefetched, so that the cache misses of the distance computations
 * overlap instead of coming one after the other.
 */
static void
batch_expand(HnswGraph *base, const HnswCandidate *c, int layer,
			 HnswVisited *visited, HnswEmitFn emit, void *arg)
{
	BatchGraph *g = (BatchGraph *) base;
	BNode	   *n;
	int			start = HNSW_LAYER_START(g->m, layer);
	int			nslots = HNSW_LAYER_SLOTS(g->m, layer);
	int32		todo[HNSW_MAX_M * 2];
	int			ntodo = 0;
	int			lines = (g->base.dim * sizeof(float) + 63) / 64;

	if (!ensure_links(g, (int32) c->id))
		return;
	n = node(g, c->id);
	if (n->level < layer)
		return;
	for (int i = 0; i < nslots; i++)
	{
		int32		j = n->links[start + i];
		const float *vec;

		if (j < 0 || HnswVisitedTestAndSet(visited, j))
			continue;
		if (!(*hot(g, j) & HOT_VECTOR) && !ensure_vector(g, j))
			continue;
		todo[ntodo++] = j;
		vec = vector_slot(g, j);
		for (int l = 0; l < lines; l++)
			__builtin_prefetch((const char *) vec + 64 * l);
	}
	for (int i = 0; i < ntodo; i++)
	{
		uint16		h = *hot(g, todo[i]);
		HnswCandidate nc;

		nc.id = todo[i];
		nc.ref = 0;
		nc.heaptid = 0;
		nc.distance = HnswDistanceCompute(&g->base.dist, base->query,
										  vector_slot(g, todo[i]), g->base.dim);
		nc.returnable = (h & HOT_RETURNABLE) != 0;
		nc.level = h & HOT_LEVEL;
		emit(arg, &nc);
	}
}

static void
graph_init(BatchGraph *g, Relation index, const HnswMetaPageData *meta,
		   const HnswDistance *dist)
{
	memset(g, 0, sizeof(BatchGraph));
	g->base.expand = batch_expand;
	g->base.dim = meta->dimensions;
	g->base.dist = *dist;
	g->index = index;
	g->m = meta->m;
	g->ef_construction = meta->ef_construction;
	g->cxt = CurrentMemoryContext;
	/* chunks of up to 1,024 nodes and about a megabyte of vectors */
	g->chunk_shift = 10;
	while (g->chunk_shift > 3 &&
		   ((Size) g->base.dim * sizeof(float) << g->chunk_shift) > 1024 * 1024)
		g->chunk_shift--;
	g->chunks = palloc(sizeof(BNode *));
	g->vchunks = palloc(sizeof(float *));
	g->hchunks = palloc(sizeof(uint16 *));
	g->map = tidmap_create(CurrentMemoryContext, 1024, NULL);
	g->nloaded = 1024;
	g->loaded = palloc0(sizeof(bool) * g->nloaded);
	g->visited = HnswVisitedCreateDense(1024);
	g->entry = -1;
	if (meta->entry_blkno != InvalidBlockNumber)
	{
		ItemPointerData tid;

		ItemPointerSet(&tid, meta->entry_blkno, meta->entry_offno);
		g->entry = node_for_tid(g, &tid);
		if (!ensure_links(g, g->entry))
			ereport(ERROR,
					(errcode(ERRCODE_INDEX_CORRUPTED),
					 errmsg("hnsw index \"%s\" has an invalid entry point",
							RelationGetRelationName(index))));
		g->entry_level = node(g, g->entry)->level;
	}
}

/* ---------- linking in memory ---------- */

typedef struct PairArg
{
	BatchGraph *g;
	const HnswCandidate *cands;
} PairArg;

static float
pair_distance(void *arg, int i, int j)
{
	PairArg    *pa = arg;

	return node_distance(pa->g, node(pa->g, (int32) pa->cands[i].id)->vec,
						 (int32) pa->cands[j].id);
}

static HnswCandidate
node_candidate(BatchGraph *g, const float *query, int32 j)
{
	HnswCandidate c = {0};

	c.id = j;
	c.distance = node_distance(g, query, j);
	c.returnable = node(g, j)->returnable;
	c.level = node(g, j)->level;
	return c;
}

/* Search each layer for the new element and choose its links (node numbers). */
static void
find_links(BatchGraph *g, const float *value, int level, HnswCandidate (*links)[HNSW_MAX_M * 2],
		   int *nlinks)
{
	int			efc = g->ef_construction;
	HnswCandidate *entries = palloc(sizeof(HnswCandidate) * (efc + 1));
	int			nentries = 1;

	g->base.query = value;
	entries[0] = node_candidate(g, value, g->entry);
	if (g->entry_level > level)
		entries[0] = HnswGreedySearch(&g->base, g->visited, entries[0],
									  g->entry_level, level);
	for (int layer = Min(level, g->entry_level); layer >= 0; layer--)
	{
		HnswSearchState s;
		int			chosen[HNSW_MAX_M * 2];
		int			naccepted;
		PairArg		pa = {g, entries};

		HnswVisitedReset(g->visited);
		HnswSearchStateInit(&s, efc, false, g->visited);
		HnswSearchLayer(&g->base, &s, entries, nentries, efc, layer);
		if (s.results.count == 0)
			continue;			/* only deleted nodes seen: keep the entries */
		nentries = s.results.count;
		memcpy(entries, s.results.items, sizeof(HnswCandidate) * nentries);
		HnswSortCandidates(entries, nentries);
		nlinks[layer] = HnswSelectNeighbors(entries, nentries,
											HNSW_LAYER_SLOTS(g->m, layer),
											pair_distance, &pa, chosen, &naccepted);
		for (int i = 0; i < nlinks[layer]; i++)
		{
			links[layer][i] = entries[chosen[i]];
			/* `returnable` carries the verdict from here on */
			links[layer][i].returnable = i < naccepted;
		}
	}
}

/* Links of a prepared layer: valid ones first, nearest first. */
static inline int
layer_count(BNode *n, int start, int nslots)
{
	int			c = 0;

	while (c < nslots && n->links[start + c] >= 0)
		c++;
	return c;
}

/* The heuristic (Algorithm 4) over the live members of a sorted list. */
static void
judge_members(BatchGraph *g, HnswCandidate *cands, int n)
{
	HnswCandidate live[HNSW_MAX_M * 2];
	int			chosen[HNSW_MAX_M * 2];
	bool		live_accepted[HNSW_MAX_M * 2] = {0};
	int			nlive = 0,
				naccepted = 0;
	PairArg		pa = {g, live};

	for (int i = 0; i < n; i++)
	{
		if (cands[i].returnable)
			live[nlive++] = cands[i];
	}
	if (nlive > 0)
		HnswSelectNeighbors(live, nlive, nlive, pair_distance, &pa, chosen, &naccepted);
	for (int i = 0; i < naccepted; i++)
		live_accepted[chosen[i]] = true;
	for (int i = 0, l = 0; i < n; i++)
	{
		if (cands[i].returnable)
			cands[i].ref = live_accepted[l++];
	}
}

/*
 * Sort a list read from disk by distance and give each link its verdict:
 * the one stored with it when every link has one, else that of the
 * heuristic run over the live members here.  Deleted members count as
 * fill, so they are the first to go.  Done once per list and batch: after
 * that every back-link is added incrementally, as in the build.
 */
static void
prepare_layer(BatchGraph *g, BNode *e, int layer)
{
	int			start = HNSW_LAYER_START(g->m, layer);
	int			nslots = HNSW_LAYER_SLOTS(g->m, layer);
	HnswCandidate cands[HNSW_MAX_M * 2];
	bool		stored[HNSW_MAX_M * 2];
	int			n = 0;

	for (int i = 0; i < nslots; i++)
	{
		int32		x = e->links[start + i];

		if (x >= 0 && ensure_vector(g, x))
		{
			stored[n] = e->accepted[start + i];
			cands[n++].id = x;
			__builtin_prefetch(node(g, x)->vec);
		}
	}
	for (int i = 0; i < n; i++)
	{
		cands[i] = node_candidate(g, e->vec, (int32) cands[i].id);
		cands[i].ref = stored[i];	/* the verdict, from here on */
	}
	HnswSortCandidates(cands, n);
	if (!(e->stored & (1u << layer)))
		judge_members(g, cands, n);
	for (int i = 0; i < nslots; i++)
	{
		e->links[start + i] = i < n ? (int32) cands[i].id : -1;
		e->ldist[start + i] = i < n ? cands[i].distance : 0;
		e->accepted[start + i] = i < n && cands[i].returnable && cands[i].ref;
	}
	e->prepared |= 1u << layer;
}

typedef struct ToNewArg
{
	BatchGraph *g;
	const float *q;
} ToNewArg;

static float
batch_to_new(void *arg, int32 id)
{
	ToNewArg   *a = arg;

	return node_distance(a->g, a->q, id);
}

/*
 * Add q to e's list in `layer` (HnswSortedListAdd: the heuristic applied
 * incrementally, as in the build); with `force`, in place of the farthest
 * member if the heuristic turned q down.  Returns the live member q pushed
 * out, or -1; *kept says whether q is in the list now.
 */
static int32
link_back(BatchGraph *g, int32 e, int32 q, int layer, bool force, bool *kept)
{
	BNode	   *ne;
	int			start = HNSW_LAYER_START(g->m, layer);
	int			nslots = HNSW_LAYER_SLOTS(g->m, layer);
	ToNewArg	arg = {g, node(g, q)->vec};
	HnswSortedList l;
	int			before;
	int32		dropped;
	float		dist;

	*kept = false;
	if (!ensure_links(g, e) || node(g, e)->level < layer)
		return -1;
	ne = node(g, e);
	if (!(ne->prepared & (1u << layer)))
		prepare_layer(g, ne, layer);
	l.ids = ne->links + start;
	l.dist = ne->ldist + start;
	l.accepted = ne->accepted + start;
	l.n = before = layer_count(ne, start, nslots);
	l.cap = nslots;
	dist = node_distance(g, ne->vec, q);
	dropped = HnswSortedListAdd(&l, q, dist, batch_to_new, &arg);
	if (dropped < 0 && l.n == before && force && l.n > 0)
	{
		/* a full list turned q down: q takes the farthest member's place */
		dropped = l.ids[l.n - 1];
		HnswSortedListRemove(&l, l.n - 1);
		HnswSortedListInsert(&l, q, dist, false);
	}
	/* q went in: the list grew, or pushed a member out */
	*kept = dropped >= 0 || l.n > before;
	if (*kept)
		ne->dirty = true;
	/* only a live member needs adopting (a deleted one goes anyway) */
	return dropped >= 0 && node(g, dropped)->returnable ? dropped : -1;
}

/*
 * Link q to the members its back-links displaced, in a free slot or in
 * place of its farthest link not adopted here (adopt_displaced in
 * hnswinsert.c says why).
 */
static void
adopt_displaced(BatchGraph *g, int32 q, int layer, const int32 *displaced,
				int ndisplaced)
{
	BNode	   *nq = node(g, q);
	int32	   *list = nq->links + HNSW_LAYER_START(g->m, layer);
	int			nslots = HNSW_LAYER_SLOTS(g->m, layer);
	float		d[HNSW_MAX_M * 2];
	bool		adopted[HNSW_MAX_M * 2] = {0};

	if (ndisplaced == 0)
		return;
	for (int i = 0; i < nslots; i++)
		d[i] = list[i] >= 0 && ensure_vector(g, list[i]) ?
			node_distance(g, nq->vec, list[i]) : -1;
	for (int x = 0; x < ndisplaced; x++)
	{
		int			slot;
		bool		present = false;

		for (int i = 0; i < nslots && !present; i++)
			present = list[i] == displaced[x];
		if (present || !ensure_vector(g, displaced[x]) || !node(g, displaced[x])->returnable)
			continue;
		slot = HnswAdoptSlot(d, adopted, nslots);
		if (slot < 0)
			break;
		list[slot] = displaced[x];
		d[slot] = node_distance(g, nq->vec, displaced[x]);
		adopted[slot] = true;
		nq->dirty = true;
		nq->prepared &= ~(1u << layer);	/* no longer sorted */
		nq->stored &= ~(1u << layer);
	}
}

/* Insert one queued element: choose links, write it, link back. */
static void
insert_one(BatchGraph *g, const float *value, ItemPointer heaptid,
		   MemoryContext scratch)
{
	int			level = Min(HnswRandomLevel(g->m), HNSW_MAX_LEVEL);
	HnswCandidate (*links)[HNSW_MAX_M * 2];
	int		   *nlinks;
	HnswLayerLinks *tids;
	bool		new_entry = g->entry < 0 || level > g->entry_level;
	ItemPointerData tid,
				ntid;
	int32		q;
	BNode	   *nq;
	MemoryContext old = MemoryContextSwitchTo(scratch);

	links = palloc(sizeof(*links) * (level + 1));
	nlinks = palloc0(sizeof(int) * (level + 1));
	tids = palloc0(sizeof(HnswLayerLinks) * (level + 1));
	if (g->entry >= 0)
		find_links(g, value, level, links, nlinks);
	for (int layer = 0; layer <= level; layer++)
	{
		tids[layer].n = nlinks[layer];
		for (int i = 0; i < nlinks[layer]; i++)
		{
			tids[layer].tids[i] = node(g, (int32) links[layer][i].id)->tid;
			tids[layer].accepted[i] = links[layer][i].returnable;
		}
	}
	HnswPlaceNewElement(g->index, g->base.dim, g->m, level, value, heaptid, tids,
						new_entry, &tid, &ntid);

	q = node_for_tid(g, &tid);
	nq = node(g, q);
	nq->vec = vector_slot(g, q);
	memcpy(nq->vec, value, sizeof(float) * g->base.dim);
	nq->level = level;
	nq->ntid = ntid;
	nq->returnable = true;
	nq->missing = false;
	set_hot(g, q);
	new_links(g, nq);
	for (int layer = 0; layer <= level; layer++)
	{
		int			start = HNSW_LAYER_START(g->m, layer);

		/* kept nearest first with the verdicts, ready for back-links */
		HnswSortCandidates(links[layer], nlinks[layer]);
		for (int i = 0; i < nlinks[layer]; i++)
		{
			nq->links[start + i] = (int32) links[layer][i].id;
			nq->ldist[start + i] = links[layer][i].distance;
			nq->accepted[start + i] = links[layer][i].returnable;
		}
		nq->prepared |= 1u << layer;
	}
	if (new_entry)
	{
		g->entry = q;
		g->entry_level = level;
	}

	for (int layer = 0; layer <= level; layer++)
	{
		int32		displaced[HNSW_MAX_M * 2];
		int			ndisplaced = 0;

		bool		linked = false;

		for (int i = 0; i < nlinks[layer]; i++)
		{
			bool		kept;
			int32		x = link_back(g, (int32) links[layer][i].id, q, layer, false, &kept);

			linked |= kept;
			if (x >= 0)
				displaced[ndisplaced++] = x;
		}
		/* nothing leads to q in layer 0: its nearest neighbour must (hnswinsert.c) */
		if (layer == 0 && !linked && nlinks[0] > 0)
		{
			bool		kept;
			int32		x = link_back(g, (int32) links[0][0].id, q, 0, true, &kept);

			if (x >= 0)
				displaced[ndisplaced++] = x;
		}
		adopt_displaced(g, q, layer, displaced, ndisplaced);
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(scratch);
}

/* ---------- writing back ---------- */

static int
ntid_cmp(const void *a, const void *b)
{
	uint64		ka = HnswPackItemPointer(&(*(BNode *const *) a)->ntid);
	uint64		kb = HnswPackItemPointer(&(*(BNode *const *) b)->ntid);

	return (ka > kb) - (ka < kb);
}

/*
 * Write one node's links into its neighbour tuple on a registered page,
 * with their verdicts where every link of the layer has one.
 */
static void
write_links(BatchGraph *g, Page page, BNode *n)
{
	OffsetNumber off = ItemPointerGetOffsetNumber(&n->ntid);
	ItemId		iid;
	HnswNeighborTuple nt;
	int			nslots = HNSW_NEIGHBOR_SLOTS(g->m, n->level);

	if (off > PageGetMaxOffsetNumber(page))
		return;
	iid = PageGetItemId(page, off);
	if (!ItemIdIsNormal(iid))
		return;
	nt = (HnswNeighborTuple) PageGetItem(page, iid);
	if (nt->type != HNSW_NEIGHBOR_TUPLE || nt->nslots != nslots)
		return;
	for (int layer = 0; layer <= n->level; layer++)
	{
		int			start = HNSW_LAYER_START(g->m, layer);
		bool		known = ((n->prepared | n->stored) & (1u << layer)) != 0;

		for (int i = start; i < start + HNSW_LAYER_SLOTS(g->m, layer); i++)
		{
			if (n->links[i] < 0)
				ItemPointerSetInvalid(&nt->slots[i]);
			else if (known)
				HnswSlotSet(&nt->slots[i], &node(g, n->links[i])->tid, n->accepted[i]);
			else
				nt->slots[i] = node(g, n->links[i])->tid;
		}
	}
}

/* Write every changed list back, one WAL record per page. */
static void
write_back(BatchGraph *g)
{
	BNode	  **dirty = palloc(sizeof(BNode *) * Max(g->nnodes, 1));
	int			ndirty = 0;

	for (int i = 0; i < g->nnodes; i++)
	{
		if (node(g, i)->dirty && node(g, i)->links)
			dirty[ndirty++] = node(g, i);
	}
	qsort(dirty, ndirty, sizeof(BNode *), ntid_cmp);
	for (int i = 0; i < ndirty;)
	{
		BlockNumber blkno = ItemPointerGetBlockNumber(&dirty[i]->ntid);
		Buffer		buf = ReadBuffer(g->index, blkno);
		GenericXLogState *state;
		Page		page;

		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		state = GenericXLogStart(g->index);
		page = GenericXLogRegisterBuffer(state, buf, 0);
		for (; i < ndirty && ItemPointerGetBlockNumber(&dirty[i]->ntid) == blkno; i++)
			write_links(g, page, dirty[i]);
		GenericXLogFinish(state);
		UnlockReleaseBuffer(buf);
	}
	pfree(dirty);
}

/* ---------- linking a queue ---------- */

static void
record_latency(instr_time start, int n)
{
	instr_time	now;
	uint64		per_row;

	if (!agentmem_track_ops || n == 0)
		return;
	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, start);
	per_row = INSTR_TIME_GET_MICROSEC(now) / n;
	for (int i = 0; i < n; i++)
		AgentmemLatencyRecord(AGENTMEM_OP_HNSW_INSERT, per_row);
}

/*
 * Link the rows queued for one index.  The part of the graph in memory is
 * written back and dropped whenever it outgrows maintenance_work_mem, so a
 * batch into a huge index of long vectors cannot take unbounded memory.
 * hnsw_insert latency gets one sample per row: the batch's time divided
 * evenly.
 */
static void
link_queue(Relation index, QueuedIndex *q)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "hnsw batch link",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext graph_cxt = AllocSetContextCreate(cxt, "hnsw batch graph",
													ALLOCSET_DEFAULT_SIZES);
	MemoryContext scratch = AllocSetContextCreate(cxt, "hnsw batch insert",
												  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(graph_cxt);
	Size		limit = (Size) maintenance_work_mem * 1024;
	HnswMetaPageData meta;
	HnswDistance dist;
	BatchGraph	g;
	instr_time	start;
	int			n = q->n;

	INSTR_TIME_SET_CURRENT(start);
	q->n = 0;					/* never linked twice: see check_not_failed */
	PG_TRY();
	{
		HnswGetDistance(index, &dist);
		LockPage(index, HNSW_UPDATE_LOCK, ExclusiveLock);
		HnswReadMeta(index, &meta);
		graph_init(&g, index, &meta, &dist);
		for (int i = 0; i < n; i++)
		{
			CHECK_FOR_INTERRUPTS();
			insert_one(&g, q->values + (Size) i * q->dim, &q->heaptids[i], scratch);
			if (i + 1 < n && MemoryContextMemAllocated(graph_cxt, true) > limit)
			{
				write_back(&g);
				MemoryContextReset(graph_cxt);
				HnswReadMeta(index, &meta);
				graph_init(&g, index, &meta, &dist);
			}
		}
		write_back(&g);
	}
	PG_CATCH();
	{
		batch_failed = true;
		PG_RE_THROW();
	}
	PG_END_TRY();
	UnlockPage(index, HNSW_UPDATE_LOCK, ExclusiveLock);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	record_latency(start, n);
}
