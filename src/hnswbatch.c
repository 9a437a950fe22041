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
#include "access/xlog.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/freespace.h"
#include "storage/lmgr.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "hnsw.h"
#include "hnswbatch.h"
#include "hnswgraph.h"
#include "stats.h"

#define HNSW_UPDATE_LOCK HNSW_METAPAGE_BLKNO

/* Link the queue once it holds this many rows, to bound its memory. */
#define BATCH_MAX_QUEUED 20000

/* What an empty page has room for. */
#define PAGE_ROOM (BLCKSZ - SizeOfPageHeaderData - MAXALIGN(sizeof(HnswPageOpaqueData)))

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
		HnswSelectNeighbors(live, nlive, nlive, BatchPairDistance, &pa, chosen, &naccepted);
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

		if (x >= 0 && BatchEnsureVector(g, x))
		{
			stored[n] = e->accepted[start + i];
			cands[n++].id = x;
			__builtin_prefetch(node(g, x)->vec);
		}
	}
	for (int i = 0; i < n; i++)
	{
		cands[i] = BatchNodeCandidate(g, e->vec, (int32) cands[i].id);
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

static float
batch_to_new(void *arg, int32 id)
{
	return distance_to_row((BatchGraph *) arg, id);
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
	HnswSortedList l;
	int			before;
	int32		dropped;
	float		dist;

	*kept = false;
	if (!BatchEnsureLinks(g, e) || node(g, e)->level < layer)
		return -1;
	ne = node(g, e);
	if (!(ne->prepared & (1u << layer)))
		prepare_layer(g, ne, layer);
	l.ids = ne->links + start;
	l.dist = ne->ldist + start;
	l.accepted = ne->accepted + start;
	l.n = before = layer_count(ne, start, nslots);
	l.cap = nslots;
	dist = distance_to_row(g, e);
	dropped = HnswSortedListAdd(&l, q, dist, batch_to_new, g);
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
		d[i] = list[i] >= 0 && BatchEnsureVector(g, list[i]) ?
			distance_to_row(g, list[i]) : -1;
	for (int x = 0; x < ndisplaced; x++)
	{
		int			slot;
		bool		present = false;

		/* a displaced X that q links to already keeps that link */
		for (int i = 0; i < nslots && !present; i++)
		{
			present = list[i] == displaced[x];
			adopted[i] |= present;
		}
		if (present || !BatchEnsureVector(g, displaced[x]) || !node(g, displaced[x])->returnable)
			continue;
		slot = HnswAdoptSlot(d, adopted, nslots);
		if (slot < 0)
			break;
		list[slot] = displaced[x];
		d[slot] = distance_to_row(g, displaced[x]);
		adopted[slot] = true;
		nq->dirty = true;
		nq->prepared &= ~(1u << layer);	/* no longer sorted */
		nq->stored &= ~(1u << layer);
	}
}

static Size pair_room(const BatchGraph *g, int level);
static void fresh_push(BatchGraph *g, int32 q, ItemPointer heaptid);
static void place_fresh(BatchGraph *g);

/* Room left on the page the metapage names as the last (insert_blkno). */
static int
insert_page_room(BatchGraph *g)
{
	Buffer		buf = ReadBuffer(g->index, HNSW_METAPAGE_BLKNO);
	BlockNumber blkno;
	int			room = 0;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	blkno = HnswPageGetMeta(BufferGetPage(buf))->insert_blkno;
	UnlockReleaseBuffer(buf);
	if (blkno == HNSW_METAPAGE_BLKNO || blkno == InvalidBlockNumber)
		return 0;
	buf = ReadBuffer(g->index, blkno);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	if (!PageIsNew(BufferGetPage(buf)))
		room = (int) PageGetExactFreeSpace(BufferGetPage(buf));
	UnlockReleaseBuffer(buf);
	return room;
}

/*
 * Has the index room for a new element of `level` on a page it has: the
 * rest of its last page, or space VACUUM freed (the free space map)?
 * Then the row is placed there at once, the single-row way, so that small
 * batches fill pages as single-row inserts do and a space that forgets and
 * remembers does not grow.  Once neither has room, the rest of the batch
 * goes onto new pages.  (New pages for every batch made 300 one-row
 * remember() calls take 301 pages instead of 15.)
 */
static bool
room_to_reuse(BatchGraph *g, int level)
{
	int			need = (int) pair_room(g, level);

	if (g->insert_room < 0)
		g->insert_room = insert_page_room(g);
	if (g->insert_room >= need)
	{
		g->insert_room -= need;
		return true;
	}
	g->insert_room = 0;
	if (g->fsm_empty)
		return false;
	if (GetPageWithFreeSpace(g->index, need) != InvalidBlockNumber)
		return true;
	g->fsm_empty = true;
	return false;
}

/*
 * Write a new element at once, the single-row way: one that fills room left
 * on the last page or freed by VACUUM (room_to_reuse), or one too large to
 * share a page with its neighbour tuple (some 1,900 dimensions and more).
 * The new elements still only in memory go first, since it may link to
 * them.
 */
static int32
place_now(BatchGraph *g, const float *value, ItemPointer heaptid, int level,
		  HnswCandidate (*links)[HNSW_MAX_M * 2], const int *nlinks, bool new_entry)
{
	HnswLayerLinks *tids = palloc0(sizeof(HnswLayerLinks) * (level + 1));
	HnswPageChanges changes;
	ItemPointerData tid,
				ntid;
	int32		q;

	place_fresh(g);
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
						new_entry, &tid, &ntid, &changes);
	for (int i = 0; i < changes.n; i++)
		BatchTrackPage(g, changes.blkno[i], changes.before[i], changes.after[i]);
	q = BatchNodeForTid(g, &tid);
	node(g, q)->ntid = ntid;
	pfree(tids);
	return q;
}

/*
 * Write a new element of `level` with the links chosen for it (nodes,
 * nearest first per layer), then link back to it.
 */
static void
place_and_link(BatchGraph *g, const float *value, ItemPointer heaptid, int level,
				  HnswCandidate (*links)[HNSW_MAX_M * 2], int *nlinks)
{
	bool		new_entry = g->entry < 0 || level > g->entry_level;
	int32		q;
	BNode	   *nq;

	if (pair_room(g, level) <= PAGE_ROOM && !room_to_reuse(g, level))
	{
		/* written with the others at the end (place_fresh) */
		q = BatchNewNode(g);
		node(g, q)->fresh = true;
		fresh_push(g, q, heaptid);
	}
	else
		q = place_now(g, value, heaptid, level, links, nlinks, new_entry);
	nq = node(g, q);
	nq->vec = vector_slot(g, q);
	memcpy(nq->vec, value, sizeof(float) * g->base.dim);
	nq->level = level;
	nq->returnable = true;
	nq->missing = false;
	BatchSetHot(g, q);
	BatchNewLinks(g, nq);
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
		g->entry_moved = nq->fresh;
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
}

/* Insert one queued element: search the graph in memory for its links. */
static void
insert_one(BatchGraph *g, const float *value, ItemPointer heaptid)
{
	int			level = Min(HnswRandomLevel(g->m), HNSW_MAX_LEVEL);
	HnswCandidate (*links)[HNSW_MAX_M * 2] = palloc(sizeof(*links) * (level + 1));
	int		   *nlinks = palloc0(sizeof(int) * (level + 1));

	BatchFindLinks(g, value, level, links, nlinks);
	place_and_link(g, value, heaptid, level, links, nlinks);
}

/* ---------- writing back ---------- */

/* Neighbour tuples by TID, last block first: see write_back. */
static int
ntid_cmp_desc(const void *a, const void *b)
{
	uint64		ka = HnswPackItemPointer(&(*(BNode *const *) a)->ntid);
	uint64		kb = HnswPackItemPointer(&(*(BNode *const *) b)->ntid);

	return (ka < kb) - (ka > kb);
}

/*
 * Put one node's links into its neighbour tuple, with their verdicts where
 * every link of the layer has one.  Links to elements on blocks after
 * `upto` (new pages not written yet) are left out, and their layer's
 * verdicts with them; returns whether any was.
 */
static bool
fill_links(BatchGraph *g, BNode *n, HnswNeighborTuple nt, BlockNumber upto)
{
	bool		omitted = false;

	for (int layer = 0; layer <= n->level; layer++)
	{
		int			start = HNSW_LAYER_START(g->m, layer);
		int			end = start + HNSW_LAYER_SLOTS(g->m, layer);
		bool		known = ((n->prepared | n->stored) & (1u << layer)) != 0;

		for (int i = start; i < end; i++)
		{
			if (n->links[i] >= 0 &&
				ItemPointerGetBlockNumber(&node(g, n->links[i])->tid) > upto)
				known = false;
		}
		for (int i = start; i < end; i++)
		{
			ItemPointer tid = n->links[i] < 0 ? NULL : &node(g, n->links[i])->tid;

			if (tid == NULL || ItemPointerGetBlockNumber(tid) > upto)
			{
				omitted |= tid != NULL;
				ItemPointerSetInvalid(&nt->slots[i]);
			}
			else if (known)
				HnswSlotSet(&nt->slots[i], tid, n->accepted[i]);
			else
				nt->slots[i] = *tid;
		}
	}
	return omitted;
}

/* Write one node's links into its neighbour tuple on a registered page. */
static void
write_links(BatchGraph *g, Page page, BNode *n)
{
	OffsetNumber off = ItemPointerGetOffsetNumber(&n->ntid);
	ItemId		iid;
	HnswNeighborTuple nt;

	if (off > PageGetMaxOffsetNumber(page))
		return;
	iid = PageGetItemId(page, off);
	if (!ItemIdIsNormal(iid))
		return;
	nt = (HnswNeighborTuple) PageGetItem(page, iid);
	if (nt->type != HNSW_NEIGHBOR_TUPLE || nt->nslots != HNSW_NEIGHBOR_SLOTS(g->m, n->level))
		return;
	fill_links(g, n, nt, MaxBlockNumber);
}

/* ---------- the batch's new elements, a page at a time ---------- */

/* Room a new element takes: its neighbour tuple, element tuple, line pointers. */
static Size
pair_room(const BatchGraph *g, int level)
{
	return MAXALIGN(HNSW_NEIGHBOR_TUPLE_SIZE(g->m, level)) +
		MAXALIGN(HNSW_ELEMENT_TUPLE_SIZE(g->base.dim)) + 2 * sizeof(ItemIdData);
}

static void
fresh_push(BatchGraph *g, int32 q, ItemPointer heaptid)
{
	if (g->nfresh == g->fresh_cap)
	{
		g->fresh_cap = Max(g->fresh_cap * 2, 256);
		g->fresh = g->fresh ? repalloc(g->fresh, sizeof(int32) * g->fresh_cap) :
			MemoryContextAlloc(g->cxt, sizeof(int32) * g->fresh_cap);
		g->fresh_heaptids = g->fresh_heaptids ?
			repalloc(g->fresh_heaptids, sizeof(ItemPointerData) * g->fresh_cap) :
			MemoryContextAlloc(g->cxt, sizeof(ItemPointerData) * g->fresh_cap);
	}
	g->fresh[g->nfresh] = q;
	g->fresh_heaptids[g->nfresh++] = *heaptid;
}

/* One page change of the batch, logged by GenericXLog and tracked. */
typedef struct PageChange
{
	Buffer		buf;
	GenericXLogState *state;
	XLogRecPtr	before;			/* the LSN memory saw; invalid for a new page */
} PageChange;

/* Lock page `blkno` and register it; returns the copy to edit. */
static Page
change_begin(BatchGraph *g, BlockNumber blkno, int flags, PageChange *pc)
{
	pc->buf = ReadBuffer(g->index, blkno);
	LockBuffer(pc->buf, BUFFER_LOCK_EXCLUSIVE);
	pc->before = (flags & GENERIC_XLOG_FULL_IMAGE) ? InvalidXLogRecPtr :
		PageGetLSN(BufferGetPage(pc->buf));
	pc->state = GenericXLogStart(g->index);
	return GenericXLogRegisterBuffer(pc->state, pc->buf, flags);
}

static void fail_for_test(int written);

static void
change_finish(BatchGraph *g, PageChange *pc)
{
	GenericXLogFinish(pc->state);
	BatchTrackPage(g, BufferGetBlockNumber(pc->buf), pc->before,
				   PageGetLSN(BufferGetPage(pc->buf)));
	UnlockReleaseBuffer(pc->buf);
	fail_for_test(++g->page_writes);
}

/* Point the metapage at the last new page. */
static void
update_meta(BatchGraph *g, BlockNumber last)
{
	PageChange	pc;
	HnswMetaPage meta = HnswPageGetMeta(change_begin(g, HNSW_METAPAGE_BLKNO, 0, &pc));

	meta->insert_blkno = last;
	g->insert_room = -1;
	change_finish(g, &pc);
}

/*
 * Mark on the metapage that the batch writes its changed lists now, or
 * that it has written them all (batch_writing in hnsw.h).  The closing
 * record also points the metapage at a new entry point of the batch's,
 * once every list is written: until then a new element's lists may still
 * lack their links to later pages (place_fresh), and a crash would leave
 * searches starting from a node that leads almost nowhere (the review of
 * 2ff4de5 saw 506-1,001 elements unreachable after such a crash).
 */
static void
mark_writing(BatchGraph *g, bool writing)
{
	PageChange	pc;
	Page		page = change_begin(g, HNSW_METAPAGE_BLKNO, 0, &pc);
	HnswMetaPage meta = HnswPageGetMeta(page);

	HnswSetBatchWriting(page, writing);
	if (!writing && g->entry_moved)
	{
		BNode	   *e = node(g, g->entry);

		meta->entry_blkno = ItemPointerGetBlockNumber(&e->tid);
		meta->entry_offno = ItemPointerGetOffsetNumber(&e->tid);
		meta->entry_level = e->level;
		g->entry_moved = false;
	}
	change_finish(g, &pc);
}

/* Write the new elements laid out on page `blkno`, one WAL record. */
static void
write_fresh_page(BatchGraph *g, BlockNumber blkno, int from, int to,
				 HnswElementTuple et, HnswNeighborTuple nt)
{
	PageChange	pc;
	Page		page = change_begin(g, blkno, GENERIC_XLOG_FULL_IMAGE, &pc);
	Size		esize = HNSW_ELEMENT_TUPLE_SIZE(g->base.dim);

	HnswInitPage(page);
	for (int i = from; i < to; i++)
	{
		BNode	   *n = node(g, g->fresh[i]);
		Size		nsize = HNSW_NEIGHBOR_TUPLE_SIZE(g->m, n->level);

		HnswBuildTuples(g->base.dim, g->m, n->level, n->vec, &g->fresh_heaptids[i], NULL, et, nt);
		et->neighbortid = n->ntid;
		/* a link to a later page waits for write_back: see place_fresh */
		n->dirty = fill_links(g, n, nt, blkno);
		if (PageAddItem(page, (Item) nt, nsize, InvalidOffsetNumber, false, false) !=
			ItemPointerGetOffsetNumber(&n->ntid) ||
			PageAddItem(page, (Item) et, esize, InvalidOffsetNumber, false, false) !=
			ItemPointerGetOffsetNumber(&n->tid))
			elog(ERROR, "hnsw: new elements do not fit page %u of index \"%s\" as laid out",
				 blkno, RelationGetRelationName(g->index));
	}
	change_finish(g, &pc);
}

/*
 * hnsw.test_crash_after_page_writes and hnsw.test_fail_after_page_writes:
 * the tests' stand-ins for a crash (once the WAL writer has flushed the
 * records so far) or an error between two of a batch's page records (new
 * pages, the metapage, lists).
 */
static void
fail_for_test(int written)
{
	if (written == hnsw_test_crash_after_page_writes)
	{
		XLogFlush(GetXLogInsertRecPtr());
		elog(PANIC, "hnsw: crashing after %d page writes, as hnsw.test_crash_after_page_writes asks",
			 written);
	}
	if (written == hnsw_test_fail_after_page_writes)
		elog(ERROR, "hnsw: failing after %d page writes, as hnsw.test_fail_after_page_writes asks",
			 written);
}

/*
 * Write the batch's new elements, which so far live only in memory, onto
 * new pages: the pages are added first, so that every new element has its
 * TIDs before any of them is written (they link each other), then each is
 * filled and logged whole, then the metapage.  One WAL record per page
 * instead of one per row, and no page delta to compute.  Nothing on disk
 * leads to them before the lists written after this do (write_back), nor
 * to the new pages before they are written: until then they are empty
 * pages, as after any extension cut short.  For the same reason a page's
 * lists leave out links to new elements on the pages after it; write_back
 * adds them once every page is logged.  (Writing them at once left
 * "dangling link" problems after a crash between two page records.)
 */
static void
place_fresh(BatchGraph *g)
{
	int		   *page_of;
	int		   *first;
	BlockNumber *blocks;
	int			npages = 0;
	Size		room = 0;
	OffsetNumber off = 0;
	HnswElementTuple et;
	HnswNeighborTuple nt;

	if (g->nfresh == 0)
		return;
	page_of = palloc(sizeof(int) * g->nfresh);
	first = palloc(sizeof(int) * (g->nfresh + 1));
	for (int i = 0; i < g->nfresh; i++)
	{
		BNode	   *n = node(g, g->fresh[i]);
		Size		need = pair_room(g, n->level);

		if (npages == 0 || need > room)
		{
			first[npages++] = i;
			room = PAGE_ROOM;
			off = 0;
		}
		room -= need;
		page_of[i] = npages - 1;
		ItemPointerSet(&n->ntid, InvalidBlockNumber, off + 1);
		ItemPointerSet(&n->tid, InvalidBlockNumber, off + 2);
		off += 2;
	}
	first[npages] = g->nfresh;

	blocks = palloc(sizeof(BlockNumber) * npages);
	for (int p = 0; p < npages; p++)
	{
		Buffer		buf = HnswNewBuffer(g->index, MAIN_FORKNUM);

		blocks[p] = BufferGetBlockNumber(buf);
		UnlockReleaseBuffer(buf);
	}
	for (int i = 0; i < g->nfresh; i++)
	{
		BNode	   *n = node(g, g->fresh[i]);
		ItemPointerData tid;

		ItemPointerSetBlockNumber(&n->ntid, blocks[page_of[i]]);
		ItemPointerSet(&tid, blocks[page_of[i]], ItemPointerGetOffsetNumber(&n->tid));
		BatchSetTid(g, g->fresh[i], &tid);
		n->fresh = false;
	}

	et = palloc(HNSW_ELEMENT_TUPLE_SIZE(g->base.dim));
	nt = palloc(HNSW_NEIGHBOR_TUPLE_SIZE(g->m, HNSW_MAX_LEVEL));
	for (int p = 0; p < npages; p++)
		write_fresh_page(g, blocks[p], first[p], first[p + 1], et, nt);
	update_meta(g, blocks[npages - 1]);
	g->nfresh = 0;
	pfree(et);
	pfree(nt);
	pfree(blocks);
	pfree(page_of);
	pfree(first);
}

/*
 * Write every changed list back, one WAL record per page, between two
 * metapage records that mark the batch as writing (see batch_writing).
 * The pages go last block first, so the new pages' lists get their links
 * to later pages before any old list leads to them: a crash in between then
 * leaves old lists pointing at complete new lists, not at ones that lead
 * almost nowhere (TAP 026: with the old order, 2 of 3,080 rows stayed
 * unfindable at ef_search 100 even once every element was relinked).
 */
static void
write_back(BatchGraph *g)
{
	BNode	  **dirty;
	int			ndirty = 0;

	/* the new elements first: the lists below link to them by TID */
	place_fresh(g);
	dirty = palloc(sizeof(BNode *) * Max(g->nnodes, 1));

	for (int i = 0; i < g->nnodes; i++)
	{
		if (node(g, i)->dirty && node(g, i)->links)
			dirty[ndirty++] = node(g, i);
	}
	qsort(dirty, ndirty, sizeof(BNode *), ntid_cmp_desc);
	if (ndirty > 0)
		mark_writing(g, true);
	for (int i = 0; i < ndirty;)
	{
		BlockNumber blkno = ItemPointerGetBlockNumber(&dirty[i]->ntid);
		PageChange	pc;
		Page		page = change_begin(g, blkno, 0, &pc);

		for (; i < ndirty && ItemPointerGetBlockNumber(&dirty[i]->ntid) == blkno; i++)
		{
			write_links(g, page, dirty[i]);
			dirty[i]->dirty = false;
		}
		change_finish(g, &pc);
	}
	if (ndirty > 0 || g->entry_moved)
		mark_writing(g, false);
	pfree(dirty);
}

/* ---------- linking a queue ---------- */

/* A batch being linked into one index. */
typedef struct BatchLinker
{
	HnswDistance dist;
	BatchGraph	graph;			/* in graph_cxt */
	MemoryContext graph_cxt;
	MemoryContext scratch;		/* reset after every row */
	Size		limit;			/* for graph_cxt: maintenance_work_mem */
} BatchLinker;

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

/* Read the graph's start (entry point, metapage) into a fresh graph. */
static void
init_graph(BatchLinker *lk, Relation index)
{
	MemoryContext old = MemoryContextSwitchTo(lk->graph_cxt);
	HnswMetaPageData meta;
	XLogRecPtr	lsn;

	HnswReadMetaLSN(index, &meta, &lsn);
	BatchGraphInit(&lk->graph, index, &meta, &lk->dist);
	BatchTrackPage(&lk->graph, HNSW_METAPAGE_BLKNO, lsn, lsn);
	MemoryContextSwitchTo(old);
}

/*
 * Keep the part of the graph in memory within maintenance_work_mem: past
 * it, write it back and start afresh from the index, so a batch into a
 * huge index of long vectors cannot take unbounded memory.
 */
static void
bound_graph(BatchLinker *lk)
{
	if (MemoryContextMemAllocated(lk->graph_cxt, true) <= lk->limit)
		return;
	write_back(&lk->graph);
	MemoryContextReset(lk->graph_cxt);
	init_graph(lk, lk->graph.index);
}

/* Link the rows one after the other, each searched in the graph in memory. */
static void
link_serially(BatchLinker *lk, const float *values, const ItemPointerData *heaptids,
			  int n, int dim)
{
	for (int i = 0; i < n; i++)
	{
		MemoryContext old;

		CHECK_FOR_INTERRUPTS();
		old = MemoryContextSwitchTo(lk->scratch);
		insert_one(&lk->graph, values + (Size) i * dim, (ItemPointer) &heaptids[i]);
		MemoryContextSwitchTo(old);
		MemoryContextReset(lk->scratch);
		if (i + 1 < n)
			bound_graph(lk);
	}
}

/* ---------- the graph kept between batches ---------- */

/*
 * After a batch, everything memory holds of the graph is what its pages
 * hold, so the backend keeps it (within hnsw.batch_graph_cache) for its
 * next batch into the same index: an agent remembering batch after batch
 * then reads each page of its space once, not once per batch.  The next
 * batch checks every page memory holds something of against the LSN memory
 * saw (BatchGraphRefresh, under the update lock): what another backend's
 * insert, batch, VACUUM or relinking changed in between is forgotten and
 * read again where the batch's searches come, the rest is reused.  (Reading
 * the whole graph afresh instead made two clients remembering into one
 * space slower together than one alone.)  An index that is not WAL-logged
 * has no LSNs to go by, and is never kept.  The graph lives in a child of TopMemoryContext
 * (linking_cxt while a batch uses it), dropped on any error.
 */
typedef struct KeptGraph
{
	MemoryContext cxt;
	Oid			indexoid;
	RelFileNode node;
	BatchGraph	graph;
} KeptGraph;

static KeptGraph kept;
static MemoryContext linking_cxt = NULL;
static bool kept_callback_registered = false;

/*
 * Its index's relcache entry was invalidated (DROP INDEX, drop_space,
 * VACUUM or ANALYZE updating its statistics, or a cache reset): free the
 * memory now rather than at the next batch.  Never the graph of a batch
 * being linked: that one is not in `kept`.
 */
static void
kept_relcache_callback(Datum arg, Oid relid)
{
	if (kept.cxt != NULL && (relid == InvalidOid || relid == kept.indexoid))
	{
		MemoryContextDelete(kept.cxt);
		kept.cxt = NULL;
	}
}

static void
forget_linking_graph(void)
{
	if (linking_cxt)
		MemoryContextDelete(linking_cxt);
	linking_cxt = NULL;
}

/* Take the kept graph into lk if it is that of `index` and current. */
static bool
reuse_kept(BatchLinker *lk, Relation index)
{
	int			changed;

	if (kept.cxt == NULL)
		return false;
	linking_cxt = kept.cxt;
	kept.cxt = NULL;
	if (kept.indexoid != RelationGetRelid(index) ||
		!RelFileNodeEquals(kept.node, index->rd_node) ||
		hnsw_batch_graph_cache == 0)
	{
		forget_linking_graph();
		return false;
	}
	kept.graph.index = index;
	kept.graph.base.dist = lk->dist;
	kept.graph.fsm_empty = false;	/* VACUUM may have freed space since */
	kept.graph.insert_room = -1;
	kept.graph.page_writes = 0;
	changed = BatchGraphRefresh(&kept.graph);
	if (changed < 0)
	{
		elog(DEBUG1, "hnsw: index \"%s\" changed since the last batch; its graph is read afresh",
			 RelationGetRelationName(index));
		forget_linking_graph();
		return false;
	}
	if (hnsw_test_verify_kept_graph)
		BatchGraphVerify(&kept.graph);
	if (changed > 0)
	{
		elog(DEBUG1, "hnsw: index \"%s\" changed since the last batch; its changed pages are read again",
			 RelationGetRelationName(index));
		elog(DEBUG2, "hnsw: %d pages of index \"%s\" changed since the last batch",
			 changed, RelationGetRelationName(index));
	}
	else
		elog(DEBUG1, "hnsw: batch into \"%s\" reuses the graph of the last batch",
			 RelationGetRelationName(index));
	lk->graph_cxt = linking_cxt;
	lk->graph = kept.graph;
	return true;
}

/* After a batch: keep its graph if allowed, else free it. */
static void
keep_or_free(BatchLinker *lk, Relation index)
{
	if (linking_cxt != NULL && !lk->graph.stale && RelationNeedsWAL(index) &&
		MemoryContextMemAllocated(linking_cxt, true) <= (Size) hnsw_batch_graph_cache * 1024)
	{
		if (!kept_callback_registered)
		{
			CacheRegisterRelcacheCallback(kept_relcache_callback, (Datum) 0);
			kept_callback_registered = true;
		}
		kept.cxt = linking_cxt;
		kept.indexoid = RelationGetRelid(index);
		kept.node = index->rd_node;
		kept.graph = lk->graph;
		kept.graph.row = NULL;	/* the queue they point into goes */
		kept.graph.base.query = NULL;
		linking_cxt = NULL;
	}
	forget_linking_graph();
}

/*
 * Link the rows queued for one index.  hnsw_insert latency gets one sample
 * per row: the batch's time divided evenly.
 */
static void
link_queue(Relation index, QueuedIndex *q)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "hnsw batch link",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	BatchLinker lk;
	instr_time	start;
	int			n = q->n;

	INSTR_TIME_SET_CURRENT(start);
	q->n = 0;					/* never linked twice: see check_not_failed */
	lk.scratch = AllocSetContextCreate(cxt, "hnsw batch insert", ALLOCSET_DEFAULT_SIZES);
	lk.limit = (Size) maintenance_work_mem * 1024;
	PG_TRY();
	{
		HnswGetDistance(index, &lk.dist);
		LockPage(index, HNSW_UPDATE_LOCK, ExclusiveLock);
		HnswRelinkIfCutShort(index);
		if (!reuse_kept(&lk, index))
		{
			/* long-lived only if it may be kept */
			lk.graph_cxt = AllocSetContextCreate(hnsw_batch_graph_cache > 0 ? TopMemoryContext : cxt,
												 "hnsw batch graph", ALLOCSET_DEFAULT_SIZES);
			if (hnsw_batch_graph_cache > 0)
				linking_cxt = lk.graph_cxt;
			init_graph(&lk, index);
		}
		link_serially(&lk, q->values, q->heaptids, n, q->dim);
		write_back(&lk.graph);
	}
	PG_CATCH();
	{
		/* the graph's context may be the current one */
		MemoryContextSwitchTo(old);
		batch_failed = true;
		forget_linking_graph();
		PG_RE_THROW();
	}
	PG_END_TRY();
	UnlockPage(index, HNSW_UPDATE_LOCK, ExclusiveLock);
	keep_or_free(&lk, index);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	record_latency(start, n);
}
