/*
 * hnswbatchgraph.c
 *		The part of an hnsw graph a batched insert holds in memory.
 *
 * Nodes are created as the batch meets element TIDs and filled a whole
 * page at a time (vectors, and the neighbour lists found on the same
 * page), so a search that wanders over the graph reads each page once.
 * Node numbers are dense, which gives the search a dense visited set and
 * lets nodes, vectors and the bits a search reads per neighbour live in
 * separate chunked arrays.
 */
#include "postgres.h"

#include "storage/bufmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "hnswbatch.h"
#include "hnswgraph.h"

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

static void read_page(BatchGraph *g, BlockNumber blkno, bool refresh, bool *seen, int32 nseen);
static bool links_same(BatchGraph *g, BNode *n, Page page, OffsetNumber off);

void
BatchSetHot(BatchGraph *g, int32 j)
{
	BNode	   *n = node(g, j);

	*hot(g, j) = n->level | (n->vec ? HOT_VECTOR : 0) |
		(n->missing ? HOT_MISSING : 0) | (n->returnable ? HOT_RETURNABLE : 0);
}

/* A new, empty node, in no TID's map entry yet. */
int32
BatchNewNode(BatchGraph *g)
{
	int			c = g->nnodes >> g->chunk_shift;
	int32		j;

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
	j = g->nnodes++;
	memset(node(g, j), 0, sizeof(BNode));
	*hot(g, j) = 0;
	ItemPointerSetInvalid(&node(g, j)->tid);
	return j;
}

/* Give node j its element TID (a new element, once written). */
void
BatchSetTid(BatchGraph *g, int32 j, ItemPointer tid)
{
	bool		found;
	TidEntry   *e = tidmap_insert(g->map, HnswPackItemPointer(tid), &found);

	Assert(!found);
	e->node = j;
	node(g, j)->tid = *tid;
}

/* The node of an element TID, a stub (nothing read) if new. */
int32
BatchNodeForTid(BatchGraph *g, ItemPointer tid)
{
	bool		found;
	TidEntry   *e = tidmap_insert(g->map, HnswPackItemPointer(tid), &found);

	if (!found)
	{
		e->node = BatchNewNode(g);
		node(g, e->node)->tid = *tid;
	}
	return e->node;
}

/* Empty lists for a node of `level`, with room for distances and verdicts. */
void
BatchNewLinks(BatchGraph *g, BNode *n)
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

	if (n->links == NULL)
		BatchNewLinks(g, n);
	else
	{
		/* read again after a refresh found the list changed: same level */
		for (int i = 0; i < nslots; i++)
			n->links[i] = -1;
		n->prepared = 0;
		n->stored = 0;
	}
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
			n->links[i] = BatchNodeForTid(g, &tid);
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
cover_block(BatchGraph *g, BlockNumber blkno)
{
	if (blkno >= g->nloaded)
	{
		BlockNumber n = Max(g->nloaded * 2, blkno + 1);

		g->loaded = repalloc_huge(g->loaded, sizeof(bool) * n);
		memset(g->loaded + g->nloaded, 0, sizeof(bool) * (n - g->nloaded));
		g->tracked = repalloc_huge(g->tracked, sizeof(bool) * n);
		memset(g->tracked + g->nloaded, 0, sizeof(bool) * (n - g->nloaded));
		g->lsn = repalloc_huge(g->lsn, sizeof(XLogRecPtr) * n);
		g->nloaded = n;
	}
}

static void
mark_loaded(BatchGraph *g, BlockNumber blkno)
{
	cover_block(g, blkno);
	g->loaded[blkno] = true;
}

/*
 * Page LSNs: what lets a backend keep the graph in memory from one batch to
 * the next (hnswbatch.c).  Every page memory holds something of is tracked
 * with the LSN it had when read, or after this batch changed it.  A page
 * whose LSN is not the tracked one when read again, or just before this
 * batch changes it, was changed by someone else meanwhile (VACUUM marks
 * deletions without the update lock): memory may be behind it, so the
 * graph must not be kept.  `before` is the page's LSN when read or just
 * before a change, `after` its LSN now.
 */
void
BatchTrackPage(BatchGraph *g, BlockNumber blkno, XLogRecPtr before, XLogRecPtr after)
{
	cover_block(g, blkno);
	if (g->tracked[blkno] && g->lsn[blkno] != before)
		g->stale = true;
	g->tracked[blkno] = true;
	g->lsn[blkno] = after;
}

/* The graph's entry point: the metapage's (its level too), or none. */
static void
set_entry(BatchGraph *g, const HnswMetaPageData *meta)
{
	g->entry = -1;
	g->entry_moved = false;
	if (meta->entry_blkno != InvalidBlockNumber)
	{
		ItemPointerData tid;

		ItemPointerSet(&tid, meta->entry_blkno, meta->entry_offno);
		g->entry = BatchNodeForTid(g, &tid);
		g->entry_level = meta->entry_level;
	}
}

/* Read the metapage's entry point again, and track the metapage. */
static void
read_entry(BatchGraph *g)
{
	HnswMetaPageData meta;
	XLogRecPtr	lsn;

	HnswReadMetaLSN(g->index, &meta, &lsn);
	set_entry(g, &meta);
	BatchTrackPage(g, HNSW_METAPAGE_BLKNO, lsn, lsn);
}

/* Node j back to a stub: read again from its pages when a search meets it. */
static void
forget_node(BatchGraph *g, int32 j)
{
	BNode	   *n = node(g, j);

	n->vec = NULL;
	n->links = NULL;			/* the old arrays stay in the context */
	n->ldist = NULL;
	n->accepted = NULL;
	n->prepared = 0;
	n->stored = 0;
	n->level = 0;
	n->returnable = false;
	n->missing = false;
	ItemPointerSetInvalid(&n->ntid);
	BatchSetHot(g, j);
}

static bool
block_changed(const bool *changed, BlockNumber nblocks, ItemPointer tid)
{
	return ItemPointerIsValid(tid) && ItemPointerGetBlockNumber(tid) < nblocks &&
		changed[ItemPointerGetBlockNumber(tid)];
}

/*
 * Make a kept graph current for a later batch, under the update lock.
 * Every tracked page whose LSN is no longer the one memory saw was changed
 * by someone else meanwhile (an insert, a batch, VACUUM, a relinking): it
 * is read again, and memory takes from it each element and list that
 * differs, keeping the rest with what it worked out of them (sorted lists,
 * verdicts, distances).  Nodes memory held of it that are no element any
 * more go back to stubs.  (Any change to a list or element changes its
 * page's LSN, and VACUUM frees an element only after taking it out of every
 * list, so a list on an unchanged page names only elements that are still
 * what memory holds of them.)  Returns how many pages changed, or -1 if the
 * graph cannot be kept: the index shrank, or its entry point is no element.
 */
int
BatchGraphRefresh(BatchGraph *g)
{
	BlockNumber nblocks = RelationGetNumberOfBlocks(g->index);
	BlockNumber ntracked = g->nloaded;
	bool	   *changed = palloc0(sizeof(bool) * ntracked);
	int32		nseen = g->nnodes;
	bool	   *seen = palloc0(sizeof(bool) * Max(nseen, 1));
	int			nchanged = 0;

	for (BlockNumber b = 0; b < ntracked; b++)
	{
		Buffer		buf;
		XLogRecPtr	lsn;

		if (!g->tracked[b])
			continue;
		if (b >= nblocks)
			return -1;
		buf = HnswReadBuffer(g->index, b);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		lsn = PageGetLSN(BufferGetPage(buf));
		UnlockReleaseBuffer(buf);
		if (lsn == g->lsn[b])
			continue;
		changed[b] = true;
		g->tracked[b] = false;	/* tracked again as read */
		nchanged++;
	}
	if (nchanged == 0)
		return 0;
	for (int32 j = 0; j < nseen; j++)
	{
		BNode	   *n = node(g, j);

		/* links on a page of their own (long vectors): read when needed */
		if (n->links && block_changed(changed, ntracked, &n->ntid) &&
			ItemPointerGetBlockNumber(&n->ntid) != ItemPointerGetBlockNumber(&n->tid))
		{
			n->links = NULL;
			n->prepared = 0;
			n->stored = 0;
		}
		/* nodes of changed pages must show up when those are read */
		seen[j] = !(n->vec && block_changed(changed, ntracked, &n->tid));
	}
	for (BlockNumber b = HNSW_METAPAGE_BLKNO + 1; b < ntracked; b++)
	{
		if (changed[b])
			read_page(g, b, true, seen, nseen);
	}
	for (int32 j = 0; j < nseen; j++)
	{
		if (!seen[j])
			forget_node(g, j);
	}
	/* prepare_layer takes a verdict only for members still returnable */
	if (g->lost_returnable)
	{
		for (int32 j = 0; j < g->nnodes; j++)
			node(g, j)->prepared = 0;
		g->lost_returnable = false;
	}
	if (changed[HNSW_METAPAGE_BLKNO])
		read_entry(g);
	pfree(changed);
	pfree(seen);
	if (g->entry >= 0)
	{
		if (!BatchEnsureLinks(g, g->entry))
			return -1;
		g->entry_level = node(g, g->entry)->level;
	}
	return nchanged;
}

/* Whether node n's links (by node number) name exactly the TIDs of `nt`. */
static bool
links_match(BatchGraph *g, BNode *n, HnswNeighborTuple nt)
{
	int			nslots = HNSW_NEIGHBOR_SLOTS(g->m, n->level);
	uint64		mem[HNSW_NEIGHBOR_SLOTS(HNSW_MAX_M, 0)];
	uint64		disk[HNSW_NEIGHBOR_SLOTS(HNSW_MAX_M, 0)];

	for (int layer = 0; layer <= n->level; layer++)
	{
		int			start = HNSW_LAYER_START(g->m, layer);
		int			nmem = 0,
					ndisk = 0;

		for (int i = start; i < start + HNSW_LAYER_SLOTS(g->m, layer); i++)
		{
			ItemPointerData tid = HnswSlotTid(&nt->slots[i]);

			if (n->links[i] >= 0)
				mem[nmem++] = HnswPackItemPointer(&node(g, n->links[i])->tid);
			if (ItemPointerIsValid(&tid))
				disk[ndisk++] = HnswPackItemPointer(&tid);
		}
		/* memory may hold a list sorted, so compare them as sets */
		if (nmem != ndisk)
			return false;
		for (int i = 0; i < nmem; i++)
		{
			bool		found = false;

			for (int k = 0; k < ndisk && !found; k++)
				found = mem[i] == disk[k];
			if (!found)
				return false;
		}
	}
	return nslots == nt->nslots;
}

/*
 * Whether node n's links still are those of the neighbour tuple at `off`,
 * slot by slot with their verdicts.  A list memory sorted without writing
 * it, or that a single-row insert rewrote in another order with new
 * verdicts, is read again.
 */
static bool
links_same(BatchGraph *g, BNode *n, Page page, OffsetNumber off)
{
	ItemId		iid = PageGetItemId(page, off);
	HnswNeighborTuple nt;
	int			nslots = HNSW_NEIGHBOR_SLOTS(g->m, n->level);
	bool		in_order = true;

	if (!ItemIdIsNormal(iid))
		return false;
	nt = (HnswNeighborTuple) PageGetItem(page, iid);
	if (nt->type != HNSW_NEIGHBOR_TUPLE || nt->nslots != nslots)
		return false;
	for (int i = 0; i < nslots && in_order; i++)
	{
		ItemPointerData tid = HnswSlotTid(&nt->slots[i]);
		uint16		verdict = HnswSlotVerdict(&nt->slots[i]);

		in_order = n->links[i] >= 0 ?
			HnswPackItemPointer(&node(g, n->links[i])->tid) == HnswPackItemPointer(&tid) &&
			(verdict == 0 || (verdict == HNSW_SLOT_ACCEPTED) == n->accepted[i]) :
			!ItemPointerIsValid(&tid);
	}
	return in_order;
}

/*
 * hnsw.test_verify_kept_graph: after BatchGraphRefresh, every node memory
 * still holds must be what its pages hold (vector, level, neighbour tuple,
 * whether it may be returned, links as a set),
 * else an error names the first that is not.  For the tests only: it reads
 * every page memory holds something of.
 */
void
BatchGraphVerify(BatchGraph *g)
{
	for (int32 j = 0; j < g->nnodes; j++)
	{
		BNode	   *n = node(g, j);
		Buffer		buf;
		Page		page;
		ItemId		iid;
		bool		ok = true;

		if (n->vec == NULL || n->missing)
			continue;
		buf = HnswReadBuffer(g->index, ItemPointerGetBlockNumber(&n->tid));
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		iid = ItemPointerGetOffsetNumber(&n->tid) <= PageGetMaxOffsetNumber(page) ?
			PageGetItemId(page, ItemPointerGetOffsetNumber(&n->tid)) : NULL;
		if (iid == NULL || !ItemIdIsNormal(iid))
			ok = false;
		else
		{
			HnswElementTuple et = (HnswElementTuple) PageGetItem(page, iid);

			ok = et->type == HNSW_ELEMENT_TUPLE && et->level == n->level &&
				ItemPointerEquals(&et->neighbortid, &n->ntid) &&
				n->returnable == (!(et->flags & HNSW_ELEMENT_DELETED) &&
								  ItemPointerIsValid(&et->heaptid)) &&
				memcmp(et->x, n->vec, sizeof(float) * g->base.dim) == 0;
		}
		UnlockReleaseBuffer(buf);
		if (ok && n->links)
		{
			buf = HnswReadBuffer(g->index, ItemPointerGetBlockNumber(&n->ntid));
			LockBuffer(buf, BUFFER_LOCK_SHARE);
			page = BufferGetPage(buf);
			iid = ItemPointerGetOffsetNumber(&n->ntid) <= PageGetMaxOffsetNumber(page) ?
				PageGetItemId(page, ItemPointerGetOffsetNumber(&n->ntid)) : NULL;
			ok = iid != NULL && ItemIdIsNormal(iid) &&
				links_match(g, n, (HnswNeighborTuple) PageGetItem(page, iid));
			UnlockReleaseBuffer(buf);
		}
		if (!ok)
			elog(ERROR, "hnsw: the kept graph of index \"%s\" differs from the index at element (%u,%u)",
				 RelationGetRelationName(g->index), ItemPointerGetBlockNumber(&n->tid),
				 ItemPointerGetOffsetNumber(&n->tid));
	}
}

/* Whether memory holds element `et` as node n does: its vector, level and neighbour tuple. */
static bool
element_same(BatchGraph *g, BNode *n, HnswElementTuple et)
{
	return n->level == et->level && ItemPointerEquals(&n->ntid, &et->neighbortid) &&
		memcmp(n->vec, et->x, sizeof(float) * g->base.dim) == 0;
}

/*
 * Read every element of a page, and the links of those whose neighbour
 * tuple is on the same page.  Nodes read before keep what they have (their
 * links in memory may be newer than the page), unless `refresh`: then the
 * page changed since memory read it, under the update lock, and memory
 * takes what differs (BatchGraphRefresh); nodes found there are marked in
 * `seen` (by node number, below `nseen`).
 */
static void
read_page(BatchGraph *g, BlockNumber blkno, bool refresh, bool *seen, int32 nseen)
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
	BatchTrackPage(g, blkno, PageGetLSN(page), PageGetLSN(page));
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
		bool		returnable;

		if (!ItemIdIsNormal(iid))
			continue;
		et = (HnswElementTuple) PageGetItem(page, iid);
		if (et->type != HNSW_ELEMENT_TUPLE)
			continue;
		ItemPointerSet(&tid, blkno, off);
		j = BatchNodeForTid(g, &tid);
		n = node(g, j);
		if (seen && j < nseen)
			seen[j] = true;
		if (n->vec && !refresh)
			continue;			/* within a batch memory may be newer */
		if (n->vec == NULL || !element_same(g, n, et))
		{
			n->vec = vector_slot(g, j);
			memcpy(n->vec, et->x, sizeof(float) * g->base.dim);
			n->level = et->level;
			n->ntid = et->neighbortid;
			n->links = NULL;	/* read below, or when needed */
		}
		returnable = !(et->flags & HNSW_ELEMENT_DELETED) && ItemPointerIsValid(&et->heaptid);
		/* VACUUM marked it deleted: lists that judged it must judge again */
		g->lost_returnable |= refresh && n->returnable && !returnable;
		n->returnable = returnable;
		n->missing = false;
		BatchSetHot(g, j);
		if (ItemPointerGetBlockNumber(&n->ntid) == blkno &&
			ItemPointerGetOffsetNumber(&n->ntid) <= maxoff)
			owner[ItemPointerGetOffsetNumber(&n->ntid)] = j;
	}
	for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off++)
	{
		BNode	   *n;

		if (owner[off] < 0)
			continue;
		n = node(g, owner[off]);
		if (n->links == NULL || (refresh && !links_same(g, n, page, off)))
			read_links(g, n, page, off);
	}
	UnlockReleaseBuffer(buf);
	pfree(owner);
}

static void
load_page(BatchGraph *g, BlockNumber blkno)
{
	read_page(g, blkno, false, NULL, 0);
}

/* Make sure a node's vector is in memory; false if it is no element. */
bool
BatchEnsureVector(BatchGraph *g, int32 j)
{
	BNode	   *n = node(g, j);

	if (n->vec == NULL && !n->missing)
	{
		BlockNumber blkno = ItemPointerGetBlockNumber(&n->tid);

		if (!page_loaded(g, blkno))
			load_page(g, blkno);
		n->missing = n->vec == NULL;
		BatchSetHot(g, j);
	}
	return !n->missing;
}

/* Make sure a node's links are in memory; false if it is no element. */
bool
BatchEnsureLinks(BatchGraph *g, int32 j)
{
	BNode	   *n = node(g, j);

	if (!BatchEnsureVector(g, j))
		return false;
	if (n->links == NULL)
	{
		/* its neighbour tuple is on another page (a large vector) */
		Buffer		buf = HnswReadBuffer(g->index, ItemPointerGetBlockNumber(&n->ntid));

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		BatchTrackPage(g, BufferGetBlockNumber(buf), PageGetLSN(BufferGetPage(buf)),
					   PageGetLSN(BufferGetPage(buf)));
		read_links(g, n, BufferGetPage(buf), ItemPointerGetOffsetNumber(&n->ntid));
		UnlockReleaseBuffer(buf);
	}
	return true;
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

	if (!BatchEnsureLinks(g, (int32) c->id))
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
		if (!(*hot(g, j) & HOT_VECTOR) && !BatchEnsureVector(g, j))
			continue;
		todo[ntodo++] = j;
		/* its node too: if it joins the frontier, batch_prefetch reads it */
		__builtin_prefetch(node(g, j));
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
		memo_put(g, todo[i], nc.distance);
		nc.returnable = (h & HOT_RETURNABLE) != 0;
		nc.level = h & HOT_LEVEL;
		emit(arg, &nc);
	}
}

/*
 * The search is about to expand the node after `id`'s turn: start loading
 * its link array now, a cache miss that otherwise stalls the next
 * batch_expand (a quarter of its samples).  Turning it off made remember's
 * batches 7-10% slower (batches into one space in ABBA order; an A/A run
 * of that method moves +-4%).
 */
static void
batch_prefetch(HnswGraph *base, uint64 id)
{
	BNode	   *n = node((BatchGraph *) base, (int32) id);

	if (n->links)
		__builtin_prefetch(n->links);
}

void
BatchGraphInit(BatchGraph *g, Relation index, const HnswMetaPageData *meta,
		   const HnswDistance *dist)
{
	memset(g, 0, sizeof(BatchGraph));
	g->base.expand = batch_expand;
	g->base.prefetch = batch_prefetch;
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
	g->tracked = palloc0(sizeof(bool) * g->nloaded);
	g->lsn = palloc(sizeof(XLogRecPtr) * g->nloaded);
	g->visited = HnswVisitedCreateDense(1024);
	g->insert_room = -1;
	set_entry(g, meta);
	if (g->entry >= 0)
	{
		if (!BatchEnsureLinks(g, g->entry))
			ereport(ERROR,
					(errcode(ERRCODE_INDEX_CORRUPTED),
					 errmsg("hnsw index \"%s\" has an invalid entry point",
							RelationGetRelationName(index))));
		g->entry_level = node(g, g->entry)->level;
	}
}

/* ---------- linking in memory ---------- */

void
BatchMemoGrow(BatchGraph *g, int32 j)
{
	int32		n = Max(Max(g->nmemo * 2, j + 1), 1024);

	if (g->memo == NULL)
	{
		g->memo = MemoryContextAlloc(g->cxt, sizeof(float) * n);
		g->memo_epoch = MemoryContextAllocZero(g->cxt, sizeof(uint32) * n);
	}
	else
	{
		g->memo = repalloc(g->memo, sizeof(float) * n);
		g->memo_epoch = repalloc(g->memo_epoch, sizeof(uint32) * n);
		memset(g->memo_epoch + g->nmemo, 0, sizeof(uint32) * (n - g->nmemo));
	}
	g->nmemo = n;
}

float
BatchPairDistance(void *arg, int i, int j)
{
	PairArg    *pa = arg;

	return node_distance(pa->g, node(pa->g, (int32) pa->cands[i].id)->vec,
						 (int32) pa->cands[j].id);
}

HnswCandidate
BatchNodeCandidate(BatchGraph *g, const float *query, int32 j)
{
	HnswCandidate c = {0};

	c.id = j;
	c.distance = node_distance(g, query, j);
	c.returnable = node(g, j)->returnable;
	c.level = node(g, j)->level;
	return c;
}

/*
 * Search each layer for a new element of `level` and choose its links
 * there with the heuristic (node numbers, in the order chosen: the links
 * it accepted first).  `returnable` carries each link's verdict from here
 * on.  Layers above `level` only lead the way.
 */
void
BatchFindLinks(BatchGraph *g, const float *value, int level,
			   HnswCandidate (*links)[HNSW_MAX_M * 2], int *nlinks)
{
	int			efc = g->ef_construction;
	HnswCandidate *entries;
	int			nentries = 1;

	/* a new row: forget the distances to the last one */
	g->row = value;
	if (++g->epoch == 0)
	{
		memset(g->memo_epoch, 0, sizeof(uint32) * g->nmemo);
		g->epoch = 1;
	}
	if (g->entry < 0)
		return;					/* an empty graph: no links */
	entries = palloc(sizeof(HnswCandidate) * (efc + 1));
	g->base.query = value;
	entries[0] = BatchNodeCandidate(g, value, g->entry);
	memo_put(g, g->entry, entries[0].distance);
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
											BatchPairDistance, &pa, chosen, &naccepted);
		for (int i = 0; i < nlinks[layer]; i++)
		{
			links[layer][i] = entries[chosen[i]];
			links[layer][i].returnable = i < naccepted;
		}
	}
	pfree(entries);
}
