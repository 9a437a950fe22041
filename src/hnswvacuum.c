/*
 * hnswvacuum.c
 *		VACUUM: drop dead heap rows, repair the graph, free the space.
 *
 * Three passes over the index:
 *	1. mark elements whose heap row is dead as deleted (scans skip them at
 *	   once but still traverse them);
 *	2. with the update lock held exclusively (inserts wait), move the entry
 *	   point off a deleted element and repair every live element whose
 *	   lists name a deleted one: the deleted neighbour is replaced by the
 *	   best of its own neighbours and the remaining links, chosen with the
 *	   selection heuristic, so the graph stays navigable after churn;
 *	3. remove the deleted elements' tuples, keeping line pointer numbers
 *	   stable, and tell the free space map so inserts reuse the space.
 * Every VACUUM then makes sure each live element can be reached from the
 * entry point (pruning can drop an element's last incoming link), linking
 * any that cannot from a reachable neighbour.
 */
#include "postgres.h"

#include <float.h>

#include "access/generic_xlog.h"
#include "commands/vacuum.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/freespace.h"
#include "storage/indexfsm.h"
#include "storage/lmgr.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "hnsw.h"
#include "hnswgraph.h"

#define HNSW_UPDATE_LOCK HNSW_METAPAGE_BLKNO

typedef struct VacuumState
{
	IndexVacuumInfo *info;
	IndexBulkDeleteResult *stats;
	IndexBulkDeleteCallback callback;
	void	   *callback_state;
	Relation	index;
	HnswMetaPageData meta;
	HnswDistance dist;
	HTAB	   *deleted;		/* packed element TID -> DeletedEntry */
	HTAB	   *deleted_ntids;	/* packed neighbour tuple TIDs to free */
	ItemPointerData best_live;	/* highest-level live element */
	int			best_level;
	BufferAccessStrategy bas;
	MemoryContext tmp_cxt;
} VacuumState;

typedef struct DeletedEntry
{
	uint64		tid;
	ItemPointerData ntid;		/* its neighbour tuple */
} DeletedEntry;

static bool
is_deleted(VacuumState *vs, ItemPointer tid)
{
	uint64		key = HnswPackItemPointer(tid);

	return hash_search(vs->deleted, &key, HASH_FIND, NULL) != NULL;
}

/* Lock a page for change and register it for WAL; returns the copy to edit. */
static Page
begin_page_change(VacuumState *vs, BlockNumber blkno, Buffer *buf,
				  GenericXLogState **state)
{
	*buf = ReadBufferExtended(vs->index, MAIN_FORKNUM, blkno, RBM_NORMAL, vs->bas);
	LockBuffer(*buf, BUFFER_LOCK_EXCLUSIVE);
	*state = GenericXLogStart(vs->index);
	return GenericXLogRegisterBuffer(*state, *buf, 0);
}

/* Log the change if there was one, and release the page. */
static void
end_page_change(Buffer buf, GenericXLogState *state, bool changed)
{
	if (changed)
		GenericXLogFinish(state);
	else
		GenericXLogAbort(state);
	UnlockReleaseBuffer(buf);
}

/* ---------- pass 1 ---------- */

static void
mark_page(VacuumState *vs, BlockNumber blkno)
{
	Buffer		buf;
	GenericXLogState *state;
	Page		page = begin_page_change(vs, blkno, &buf, &state);
	bool		changed = false;

	for (OffsetNumber off = FirstOffsetNumber; off <= PageGetMaxOffsetNumber(page); off++)
	{
		ItemId		iid = PageGetItemId(page, off);
		HnswElementTuple et;

		if (!ItemIdIsNormal(iid))
			continue;
		et = (HnswElementTuple) PageGetItem(page, iid);
		if (et->type != HNSW_ELEMENT_TUPLE)
			continue;
		if (!(et->flags & HNSW_ELEMENT_DELETED) && ItemPointerIsValid(&et->heaptid) &&
			vs->callback(&et->heaptid, vs->callback_state))
		{
			et->flags |= HNSW_ELEMENT_DELETED;
			changed = true;
			vs->stats->tuples_removed++;
		}
		if (et->flags & HNSW_ELEMENT_DELETED)
		{
			uint64		key = HnswPackTid(blkno, off);
			DeletedEntry *d = hash_search(vs->deleted, &key, HASH_ENTER, NULL);

			d->ntid = et->neighbortid;
			key = HnswPackItemPointer(&et->neighbortid);
			hash_search(vs->deleted_ntids, &key, HASH_ENTER, NULL);
		}
		else
		{
			vs->stats->num_index_tuples++;
			if (et->level > vs->best_level)
			{
				vs->best_level = et->level;
				ItemPointerSet(&vs->best_live, blkno, off);
			}
		}
	}
	end_page_change(buf, state, changed);
}

/* ---------- pass 2 ---------- */

typedef struct RepairVectors
{
	VacuumState *vs;
	HnswCandidate *cands;
	float	  **vecs;
} RepairVectors;

static bool
read_element(VacuumState *vs, ItemPointer tid, float *vec, ItemPointer ntid)
{
	Buffer		buf = ReadBufferExtended(vs->index, MAIN_FORKNUM,
										 ItemPointerGetBlockNumber(tid), RBM_NORMAL, vs->bas);
	Page		page;
	OffsetNumber off = ItemPointerGetOffsetNumber(tid);
	bool		ok = false;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	if (off <= PageGetMaxOffsetNumber(page) && ItemIdIsNormal(PageGetItemId(page, off)))
	{
		HnswElementTuple et = (HnswElementTuple) PageGetItem(page, PageGetItemId(page, off));

		if (et->type == HNSW_ELEMENT_TUPLE)
		{
			if (vec)
				memcpy(vec, et->x, sizeof(float) * vs->meta.dimensions);
			if (ntid)
				*ntid = et->neighbortid;
			ok = true;
		}
	}
	UnlockReleaseBuffer(buf);
	return ok;
}

static float
repair_pair_distance(void *arg, int i, int j)
{
	RepairVectors *rv = arg;

	return HnswDistanceCompute(&rv->vs->dist, rv->vecs[i], rv->vecs[j],
							   rv->vs->meta.dimensions);
}

/* Read one layer of the neighbour tuple at ntid (share lock). */
static int
read_list(VacuumState *vs, ItemPointer ntid, int layer, ItemPointerData *out)
{
	Buffer		buf = ReadBufferExtended(vs->index, MAIN_FORKNUM,
										 ItemPointerGetBlockNumber(ntid), RBM_NORMAL, vs->bas);
	Page		page;
	OffsetNumber off = ItemPointerGetOffsetNumber(ntid);
	int			n = 0;
	int			m = vs->meta.m;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	if (off <= PageGetMaxOffsetNumber(page) && ItemIdIsNormal(PageGetItemId(page, off)))
	{
		HnswNeighborTuple nt = (HnswNeighborTuple) PageGetItem(page, PageGetItemId(page, off));

		if (nt->type == HNSW_NEIGHBOR_TUPLE && nt->level >= layer)
		{
			int			start = HNSW_LAYER_START(m, layer);

			for (int i = 0; i < HNSW_LAYER_SLOTS(m, layer); i++)
			{
				if (ItemPointerIsValid(&nt->slots[start + i]))
					out[n++] = HnswSlotTid(&nt->slots[start + i]);
			}
		}
	}
	UnlockReleaseBuffer(buf);
	return n;
}

static bool
in_candidates(HnswCandidate *cands, int n, uint64 id)
{
	for (int i = 0; i < n; i++)
	{
		if (cands[i].id == id)
			return true;
	}
	return false;
}

/*
 * Rebuild one layer of element `tid`'s list: live members stay candidates,
 * each deleted member is replaced by its own live neighbours, and the
 * heuristic picks the new list.
 */
static void
repair_layer(VacuumState *vs, ItemPointer tid, float *base, ItemPointer ntid,
			 int layer, ItemPointerData *list, int n)
{
	int			cap = HNSW_LAYER_SLOTS(vs->meta.m, layer);
	int			maxc = cap * (cap + 1);
	HnswCandidate *cands = palloc(sizeof(HnswCandidate) * maxc);
	float	  **vecs = palloc(sizeof(float *) * maxc);
	ItemPointerData hop[HNSW_MAX_M * 2];
	int			ncand = 0;
	int			chosen[HNSW_MAX_M * 2];
	int			k,
				naccepted;
	RepairVectors rv = {vs, cands, vecs};
	uint64		self = HnswPackItemPointer(tid);

	for (int i = 0; i < n; i++)
	{
		ItemPointerData dntid;
		int			nh = 0;
		ItemPointer src = &list[i];

		if (is_deleted(vs, &list[i]))
		{
			uint64		key = HnswPackItemPointer(&list[i]);
			DeletedEntry *d = hash_search(vs->deleted, &key, HASH_FIND, NULL);

			dntid = d->ntid;
			nh = read_list(vs, &dntid, layer, hop);
			src = NULL;
		}
		for (int j = -1; j < nh; j++)
		{
			ItemPointer c = (j < 0) ? src : &hop[j];
			uint64		id;

			if (c == NULL || ncand >= maxc)
				continue;
			id = HnswPackItemPointer(c);
			if (id == self || is_deleted(vs, c) || in_candidates(cands, ncand, id))
				continue;
			vecs[ncand] = palloc(sizeof(float) * vs->meta.dimensions);
			if (!read_element(vs, c, vecs[ncand], NULL))
				continue;
			cands[ncand].id = id;
			cands[ncand].distance = HnswDistanceCompute(&vs->dist, base, vecs[ncand],
														vs->meta.dimensions);
			ncand++;
		}
	}
	/* sort candidates and their vectors together: sort indexes */
	{
		HnswCandidate *sorted = palloc(sizeof(HnswCandidate) * Max(ncand, 1));
		float	  **svecs = palloc(sizeof(float *) * Max(ncand, 1));

		for (int i = 0; i < ncand; i++)
		{
			sorted[i] = cands[i];
			sorted[i].ref = i;	/* remember the vector's slot */
		}
		HnswSortCandidates(sorted, ncand);
		for (int i = 0; i < ncand; i++)
			svecs[i] = vecs[sorted[i].ref];
		rv.cands = sorted;
		rv.vecs = svecs;
		k = HnswSelectNeighbors(sorted, ncand, cap, repair_pair_distance, &rv, chosen, &naccepted);
		{
			Buffer		buf = ReadBufferExtended(vs->index, MAIN_FORKNUM,
												 ItemPointerGetBlockNumber(ntid), RBM_NORMAL, vs->bas);
			GenericXLogState *state;
			Page		page;
			HnswNeighborTuple nt;
			int			start = HNSW_LAYER_START(vs->meta.m, layer);

			LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
			state = GenericXLogStart(vs->index);
			page = GenericXLogRegisterBuffer(state, buf, 0);
			nt = (HnswNeighborTuple) PageGetItem(page,
												 PageGetItemId(page, ItemPointerGetOffsetNumber(ntid)));
			for (int i = 0; i < cap; i++)
			{
				if (i < k)
				{
					ItemPointerData tid;

					HnswUnpackTid(sorted[chosen[i]].id, &tid);
					HnswSlotSet(&nt->slots[start + i], &tid, i < naccepted);
				}
				else
					ItemPointerSetInvalid(&nt->slots[start + i]);
			}
			GenericXLogFinish(state);
			UnlockReleaseBuffer(buf);
		}
	}
}

/* Repair every layer of one live element that links to a deleted one. */
static void
repair_element(VacuumState *vs, ItemPointer tid, int level, ItemPointer ntid,
			   float *base)
{
	ItemPointerData list[HNSW_MAX_M * 2];

	for (int layer = 0; layer <= level; layer++)
	{
		int			n = read_list(vs, ntid, layer, list);
		bool		needs = false;

		for (int i = 0; i < n && !needs; i++)
			needs = is_deleted(vs, &list[i]);
		if (needs)
			repair_layer(vs, tid, base, ntid, layer, list, n);
	}
}

/* Collect the live elements of a page, then repair each. */
static void
repair_page(VacuumState *vs, BlockNumber blkno)
{
	Buffer		buf = ReadBufferExtended(vs->index, MAIN_FORKNUM, blkno,
										 RBM_NORMAL, vs->bas);
	Page		page;
	int			n = 0;
	OffsetNumber offs[MaxOffsetNumber];
	uint8		levels[MaxOffsetNumber];
	ItemPointerData ntids[MaxOffsetNumber];
	float	   *base = palloc(sizeof(float) * vs->meta.dimensions);

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	for (OffsetNumber off = FirstOffsetNumber; off <= PageGetMaxOffsetNumber(page); off++)
	{
		ItemId		iid = PageGetItemId(page, off);
		HnswElementTuple et;

		if (!ItemIdIsNormal(iid))
			continue;
		et = (HnswElementTuple) PageGetItem(page, iid);
		if (et->type != HNSW_ELEMENT_TUPLE || (et->flags & HNSW_ELEMENT_DELETED))
			continue;
		offs[n] = off;
		levels[n] = et->level;
		ntids[n] = et->neighbortid;
		n++;
	}
	UnlockReleaseBuffer(buf);

	for (int i = 0; i < n; i++)
	{
		ItemPointerData tid;

		ItemPointerSet(&tid, blkno, offs[i]);
		MemoryContextReset(vs->tmp_cxt);
		if (read_element(vs, &tid, base, NULL))
		{
			MemoryContext old = MemoryContextSwitchTo(vs->tmp_cxt);

			repair_element(vs, &tid, levels[i], &ntids[i], base);
			MemoryContextSwitchTo(old);
		}
	}
	pfree(base);
}

/* Point the metapage at a live element if the entry point was deleted. */
static void
repair_entry(VacuumState *vs)
{
	ItemPointerData entry;
	Buffer		buf;
	GenericXLogState *state;
	HnswMetaPage meta;

	if (vs->meta.entry_blkno == InvalidBlockNumber)
		return;
	ItemPointerSet(&entry, vs->meta.entry_blkno, vs->meta.entry_offno);
	if (!is_deleted(vs, &entry))
		return;
	buf = ReadBuffer(vs->index, HNSW_METAPAGE_BLKNO);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	state = GenericXLogStart(vs->index);
	meta = HnswPageGetMeta(GenericXLogRegisterBuffer(state, buf, 0));
	if (vs->best_level >= 0)
	{
		meta->entry_blkno = ItemPointerGetBlockNumber(&vs->best_live);
		meta->entry_offno = ItemPointerGetOffsetNumber(&vs->best_live);
		meta->entry_level = vs->best_level;
	}
	else
	{
		meta->entry_blkno = InvalidBlockNumber;
		meta->entry_offno = InvalidOffsetNumber;
		meta->entry_level = -1;
	}
	GenericXLogFinish(state);
	UnlockReleaseBuffer(buf);
}

/* ---------- pass 3 ---------- */

static void
free_page(VacuumState *vs, BlockNumber blkno)
{
	Buffer		buf;
	GenericXLogState *state;
	Page		page = begin_page_change(vs, blkno, &buf, &state);
	bool		changed = false;

	for (OffsetNumber off = FirstOffsetNumber; off <= PageGetMaxOffsetNumber(page); off++)
	{
		ItemId		iid = PageGetItemId(page, off);
		HnswElementTuple et;
		ItemPointerData tid;

		if (!ItemIdIsNormal(iid))
			continue;
		et = (HnswElementTuple) PageGetItem(page, iid);
		ItemPointerSet(&tid, blkno, off);
		if (et->type == HNSW_NEIGHBOR_TUPLE)
		{
			uint64		key = HnswPackItemPointer(&tid);

			if (hash_search(vs->deleted_ntids, &key, HASH_FIND, NULL) == NULL)
				continue;
		}
		else if (!(et->flags & HNSW_ELEMENT_DELETED) || !is_deleted(vs, &tid))
			continue;
		PageIndexTupleDeleteNoCompact(page, off);
		changed = true;
	}
	RecordPageWithFreeSpace(vs->index, blkno, PageGetFreeSpace(page));
	end_page_change(buf, state, changed);
}

/* ---------- entry points ---------- */

static void
for_each_page(VacuumState *vs, void (*fn) (VacuumState *, BlockNumber))
{
	BlockNumber nblocks = RelationGetNumberOfBlocks(vs->index);

	for (BlockNumber blkno = HNSW_METAPAGE_BLKNO + 1; blkno < nblocks; blkno++)
	{
		vacuum_delay_point();
		fn(vs, blkno);
	}
}

IndexBulkDeleteResult *
hnswbulkdelete(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
			   IndexBulkDeleteCallback callback, void *callback_state)
{
	VacuumState vs;
	HASHCTL		ctl;

	if (stats == NULL)
		stats = palloc0(sizeof(IndexBulkDeleteResult));
	memset(&vs, 0, sizeof(vs));
	vs.info = info;
	vs.stats = stats;
	vs.callback = callback;
	vs.callback_state = callback_state;
	vs.index = info->index;
	vs.bas = GetAccessStrategy(BAS_BULKREAD);
	vs.best_level = -1;
	vs.tmp_cxt = AllocSetContextCreate(CurrentMemoryContext, "hnsw vacuum",
									   ALLOCSET_DEFAULT_SIZES);
	HnswReadMeta(vs.index, &vs.meta);
	HnswInitDistance(vs.index, &vs.dist);
	ctl.keysize = sizeof(uint64);
	ctl.entrysize = sizeof(DeletedEntry);
	ctl.hcxt = CurrentMemoryContext;
	vs.deleted = hash_create("hnsw vacuum deleted", 1024, &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	ctl.entrysize = sizeof(uint64);
	vs.deleted_ntids = hash_create("hnsw vacuum deleted neighbours", 1024, &ctl,
								   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	stats->num_index_tuples = 0;

	for_each_page(&vs, mark_page);
	if (hash_get_num_entries(vs.deleted) > 0)
	{
		LockPage(vs.index, HNSW_UPDATE_LOCK, ExclusiveLock);
		HnswReadMeta(vs.index, &vs.meta);
		repair_entry(&vs);
		for_each_page(&vs, repair_page);
		for_each_page(&vs, free_page);
		UnlockPage(vs.index, HNSW_UPDATE_LOCK, ExclusiveLock);
		IndexFreeSpaceMapVacuum(vs.index);
	}
	MemoryContextDelete(vs.tmp_cxt);
	stats->num_pages = RelationGetNumberOfBlocks(vs.index);
	return stats;
}

/* ---------- reachability ---------- */

typedef struct ReachEntry
{
	uint64		tid;			/* key */
	ItemPointerData ntid;
	bool		reached;
	uint64		parent;			/* the element whose link reached it first */
} ReachEntry;

#define NO_PARENT	PG_UINT64_MAX

static HTAB *
collect_live(Relation index, BufferAccessStrategy bas, int *empty_pages)
{
	HASHCTL		ctl;
	HTAB	   *h;
	BlockNumber nblocks = RelationGetNumberOfBlocks(index);

	ctl.keysize = sizeof(uint64);
	ctl.entrysize = sizeof(ReachEntry);
	ctl.hcxt = CurrentMemoryContext;
	h = hash_create("hnsw vacuum reachability", 1024, &ctl,
					HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	for (BlockNumber blkno = HNSW_METAPAGE_BLKNO + 1; blkno < nblocks; blkno++)
	{
		Buffer		buf = ReadBufferExtended(index, MAIN_FORKNUM, blkno, RBM_NORMAL, bas);
		Page		page;

		vacuum_delay_point();
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		if (PageIsNew(page))
		{
			/*
			 * Added but never written: a batch or insert that failed or
			 * crashed between extending the index and logging the page.
			 * With the update lock held no one is between the two now, so
			 * inserts may take it (find_insert_page initialises it).
			 */
			RecordPageWithFreeSpace(index, blkno, BLCKSZ - SizeOfPageHeaderData -
									MAXALIGN(sizeof(HnswPageOpaqueData)));
			(*empty_pages)++;
		}
		for (OffsetNumber off = FirstOffsetNumber; off <= PageGetMaxOffsetNumber(page); off++)
		{
			ItemId		iid = PageGetItemId(page, off);
			HnswElementTuple et;
			uint64		key = HnswPackTid(blkno, off);
			ReachEntry *e;

			if (!ItemIdIsNormal(iid))
				continue;
			et = (HnswElementTuple) PageGetItem(page, iid);
			if (et->type != HNSW_ELEMENT_TUPLE || (et->flags & HNSW_ELEMENT_DELETED))
				continue;
			e = hash_search(h, &key, HASH_ENTER, NULL);
			e->ntid = et->neighbortid;
			e->reached = false;
			e->parent = NO_PARENT;
		}
		UnlockReleaseBuffer(buf);
	}
	return h;
}

/* Layer-0 links of the element behind `e`. */
static int
layer0_links(Relation index, ReachEntry *e, int m, ItemPointerData *out)
{
	Buffer		buf = ReadBuffer(index, ItemPointerGetBlockNumber(&e->ntid));
	Page		page;
	HnswNeighborTuple nt;
	int			n = 0;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	nt = (HnswNeighborTuple) PageGetItem(page, PageGetItemId(page,
															 ItemPointerGetOffsetNumber(&e->ntid)));
	for (int i = 0; i < HNSW_LAYER_SLOTS(m, 0); i++)
	{
		if (ItemPointerIsValid(&nt->slots[i]))
			out[n++] = HnswSlotTid(&nt->slots[i]);
	}
	UnlockReleaseBuffer(buf);
	return n;
}

/*
 * Mark what `start` reaches by at least one layer-0 link, recording for
 * each newly reached element the one whose link reached it (its parent:
 * those links form a spanning tree of what is reached).  `start` itself
 * counts only if a link leads back to it: a search reaches layer 0 at
 * whatever node its descent ends on, so even the entry point needs one.
 */
static void
walk_from(Relation index, HTAB *live, uint64 start, int m)
{
	uint64	   *queue;
	long		head = 0,
				tail = 0;

	if (hash_search(live, &start, HASH_FIND, NULL) == NULL)
		return;
	queue = palloc(sizeof(uint64) * (hash_get_num_entries(live) + 1));
	queue[tail++] = start;
	while (head < tail)
	{
		ItemPointerData links[HNSW_MAX_M * 2];
		ReachEntry *e = hash_search(live, &queue[head++], HASH_FIND, NULL);
		int			n;

		CHECK_FOR_INTERRUPTS();
		n = layer0_links(index, e, m, links);

		for (int i = 0; i < n; i++)
		{
			uint64		k = HnswPackItemPointer(&links[i]);
			ReachEntry *t = hash_search(live, &k, HASH_FIND, NULL);

			if (t && !t->reached)
			{
				t->reached = true;
				t->parent = e->tid;
				queue[tail++] = k;
			}
		}
	}
	pfree(queue);
}

/* The vector of the element at packed TID `tid` (a live one: it exists). */
static void
element_vector(Relation index, uint64 tid, int dim, float *out)
{
	ItemPointerData t;
	Buffer		buf;
	Page		page;

	HnswUnpackTid(tid, &t);
	buf = ReadBuffer(index, ItemPointerGetBlockNumber(&t));
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	memcpy(out, ((HnswElementTuple) PageGetItem(page, PageGetItemId(page,
																	ItemPointerGetOffsetNumber(&t))))->x,
		   sizeof(float) * dim);
	UnlockReleaseBuffer(buf);
}

/*
 * Give `to` an incoming layer-0 link from `from`: a free slot if there is
 * one, else the slot of from's farthest link that is not a tree link (its
 * target stays reached through its own parent, so nothing is stranded).
 * False if every link of `from` is a tree link.
 */
static bool
link_unreachable(Relation index, HTAB *live, const HnswDistance *dist, int dim,
				 int m, ReachEntry *from, ReachEntry *to)
{
	float	   *base = palloc(sizeof(float) * dim);
	ItemPointerData to_tid;
	ItemPointerData slots[HNSW_MAX_M * 2];
	ItemPointerData current[HNSW_MAX_M * 2];
	int			cap = HNSW_LAYER_SLOTS(m, 0);
	int			slot = -1;
	float		worst = -FLT_MAX;
	Buffer		buf;
	GenericXLogState *state;
	Page		page;
	HnswNeighborTuple nt;
	HnswDiskGraph dg;
	bool		free_slot,
				linked;

	HnswUnpackTid(to->tid, &to_tid);
	HnswDiskGraphInit(&dg, index, base, dim, dist);
	element_vector(index, from->tid, dim, base);

	/* choose the slot from a copy: reading neighbours locks their pages */
	buf = ReadBuffer(index, ItemPointerGetBlockNumber(&from->ntid));
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	nt = (HnswNeighborTuple) PageGetItem(page, PageGetItemId(page,
															 ItemPointerGetOffsetNumber(&from->ntid)));
	HnswSlotTids(slots, nt->slots, cap);
	UnlockReleaseBuffer(buf);

	for (int i = 0; i < cap && slot < 0; i++)
	{
		if (!ItemPointerIsValid(&slots[i]))
			slot = i;
	}
	free_slot = slot >= 0;
	for (int i = 0; !free_slot && i < cap; i++)
	{
		uint64		k = HnswPackItemPointer(&slots[i]);
		ReachEntry *t = hash_search(live, &k, HASH_FIND, NULL);
		HnswCandidate c;

		if (t != NULL && t->parent == from->tid)
			continue;			/* a tree link */
		if (!HnswLoadCandidate(index, &slots[i], &dg.base, &c))
			c.distance = FLT_MAX;	/* not an element: replace it first */
		if (c.distance > worst)
		{
			worst = c.distance;
			slot = i;
		}
	}

	buf = ReadBuffer(index, ItemPointerGetBlockNumber(&from->ntid));
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	state = GenericXLogStart(index);
	page = GenericXLogRegisterBuffer(state, buf, 0);
	nt = (HnswNeighborTuple) PageGetItem(page, PageGetItemId(page,
															 ItemPointerGetOffsetNumber(&from->ntid)));
	/* inserts are held off, so the list cannot have changed; check anyway */
	HnswSlotTids(current, nt->slots, cap);
	linked = slot >= 0 && memcmp(slots, current, sizeof(ItemPointerData) * cap) == 0;
	if (linked)
	{
		nt->slots[slot] = to_tid;
		GenericXLogFinish(state);
	}
	else
		GenericXLogAbort(state);
	UnlockReleaseBuffer(buf);
	HnswDiskGraphRelease(&dg);
	pfree(base);
	return linked;
}

/*
 * Link e from `from` if that is a reached element (or the entry point,
 * where the walk starts) with a link to spare.
 */
static bool
try_link(Relation index, HTAB *live, const HnswDistance *dist,
		 const HnswMetaPageData *meta, ReachEntry *from, ReachEntry *e)
{
	if (from == NULL || from == e ||
		!(from->reached || from->tid == HnswPackTid(meta->entry_blkno, meta->entry_offno)) ||
		!link_unreachable(index, live, dist, meta->dimensions, meta->m, from, e))
		return false;
	e->parent = from->tid;
	return true;
}

/*
 * When no neighbour of e can link to it: the reached elements nearest to
 * e (a layer-0 search from the entry), then any reached element, until one
 * has a link to spare.  Copies of one vector that only link each other
 * come here: the entry's links are all tree links.
 */
static bool
link_from_anywhere(Relation index, HTAB *live, const HnswDistance *dist,
				   const HnswMetaPageData *meta, uint64 entry, ReachEntry *e)
{
	float	   *vec = palloc(sizeof(float) * meta->dimensions);
	HnswDiskGraph dg;
	HnswSearchState s;
	HnswCandidate ep;
	ItemPointerData etid;
	HASH_SEQ_STATUS seq;
	ReachEntry *from;
	bool		linked = false;

	element_vector(index, e->tid, meta->dimensions, vec);
	HnswDiskGraphInit(&dg, index, vec, meta->dimensions, dist);
	HnswUnpackTid(entry, &etid);
	if (HnswLoadCandidate(index, &etid, &dg.base, &ep))
	{
		HnswSearchStateInit(&s, meta->ef_construction, false, NULL);
		HnswSearchLayer(&dg.base, &s, &ep, 1, meta->ef_construction, 0);
		HnswSortCandidates(s.results.items, s.results.count);
		for (int i = 0; i < s.results.count && !linked; i++)
			linked = try_link(index, live, dist, meta,
							  hash_search(live, &s.results.items[i].id, HASH_FIND, NULL), e);
	}
	HnswDiskGraphRelease(&dg);
	pfree(vec);
	if (linked)
		return true;
	hash_seq_init(&seq, live);
	while ((from = hash_seq_search(&seq)) != NULL)
	{
		CHECK_FOR_INTERRUPTS();
		if (try_link(index, live, dist, meta, from, e))
		{
			hash_seq_term(&seq);
			return true;
		}
	}
	return false;
}

/* Link e from the first of its reached neighbours (else the entry) that can. */
static bool
link_from_reached(Relation index, HTAB *live, const HnswDistance *dist,
				  const HnswMetaPageData *meta, uint64 entry, ReachEntry *e)
{
	ItemPointerData links[HNSW_MAX_M * 2];
	int			n = layer0_links(index, e, meta->m, links);

	for (int i = 0; i <= n; i++)
	{
		uint64		k = i < n ? HnswPackItemPointer(&links[i]) : entry;

		if (try_link(index, live, dist, meta, hash_search(live, &k, HASH_FIND, NULL), e))
			return true;
	}
	return false;
}

/*
 * One pass: link every live element the walk from the entry misses.  A new
 * link only ever replaces a link that is not part of the walk's spanning
 * tree, so nothing reached is cut off and one pass normally leaves
 * everything reachable.
 */
static int
reachability_pass(Relation index, BufferAccessStrategy bas, HnswMetaPageData *meta,
				  const HnswDistance *dist, int *empty_pages)
{
	HTAB	   *live = collect_live(index, bas, empty_pages);
	HASH_SEQ_STATUS seq;
	ReachEntry *e;
	uint64		entry = HnswPackTid(meta->entry_blkno, meta->entry_offno);
	int			linked = 0;

	walk_from(index, live, entry, meta->m);
	hash_seq_init(&seq, live);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		CHECK_FOR_INTERRUPTS();
		if (e->reached ||
			!(link_from_reached(index, live, dist, meta, entry, e) ||
			  link_from_anywhere(index, live, dist, meta, entry, e)))
			continue;
		linked++;
		e->reached = true;
		walk_from(index, live, e->tid, meta->m);
	}
	hash_destroy(live);
	return linked;
}

/*
 * Link every live element that cannot be reached from the entry point; the
 * caller holds the update lock exclusively, so no insert runs meanwhile.
 * Another pass runs only if the last one linked something (an element none
 * of whose reached neighbours had a spare link may be reachable from a new
 * one), at most 16.  Then no batch cut short is left to finish.
 */
void
HnswRelinkLocked(Relation index, BufferAccessStrategy bas)
{
	HnswMetaPageData meta;
	HnswDistance dist;
	int			empty_pages = 0;

	HnswReadMeta(index, &meta);
	if (meta.entry_blkno != InvalidBlockNumber)
	{
		HnswGetDistance(index, &dist);
		for (int pass = 0; pass < 16; pass++)
		{
			if (reachability_pass(index, bas, &meta, &dist, &empty_pages) == 0)
				break;
		}
	}
	if (meta.batch_writing)
		HnswClearBatchWriting(index);
	if (empty_pages > 0)
		IndexFreeSpaceMapVacuum(index);
}

/* VACUUM's last step: relink what is unreachable, with inserts held off. */
static void
repair_reachability(Relation index, BufferAccessStrategy bas)
{
	LockPage(index, HNSW_UPDATE_LOCK, ExclusiveLock);
	HnswRelinkLocked(index, bas);
	UnlockPage(index, HNSW_UPDATE_LOCK, ExclusiveLock);
}

IndexBulkDeleteResult *
hnswvacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats)
{
	if (info->analyze_only)
		return stats;
	if (stats == NULL)
	{
		/* no bulkdelete pass: report the heap's count, estimated */
		stats = palloc0(sizeof(IndexBulkDeleteResult));
		stats->num_index_tuples = info->num_heap_tuples;
		stats->estimated_count = info->estimated_count;
	}
	repair_reachability(info->index, info->strategy);
	stats->num_pages = RelationGetNumberOfBlocks(info->index);
	return stats;
}
