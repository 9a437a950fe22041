/*
 * hnswinsert.c
 *		INSERT into an hnsw index: search, place, link back (Algorithm 1).
 *
 * Concurrency: inserts hold the index's update lock (a heavyweight lock on
 * the metapage's block number) in share mode, or in exclusive mode when the
 * new element becomes the entry point; vacuum takes it exclusively while it
 * repairs and frees elements.  Page contents are protected by buffer locks,
 * taken one page at a time except metapage-then-data-page when placing an
 * element, so inserts cannot deadlock each other.  Every change is
 * WAL-logged with GenericXLog.
 */
#include "postgres.h"

#include "access/generic_xlog.h"
#include "storage/freespace.h"
#include "storage/lmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "hnsw.h"
#include "hnswgraph.h"
#include "stats.h"

#define HNSW_UPDATE_LOCK HNSW_METAPAGE_BLKNO

typedef HnswLayerLinks LayerLinks;

/* ---------- reading vectors for the heuristic ---------- */

/* Copy an element's vector (and its neighbour TID); false if not an element. */
static bool
load_vector(Relation index, ItemPointer tid, int dim, float *out,
			ItemPointer neighbortid, bool *deleted)
{
	Buffer		buf = ReadBuffer(index, ItemPointerGetBlockNumber(tid));
	Page		page;
	OffsetNumber off = ItemPointerGetOffsetNumber(tid);
	bool		ok = false;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	if (off >= FirstOffsetNumber && off <= PageGetMaxOffsetNumber(page))
	{
		ItemId		iid = PageGetItemId(page, off);
		HnswElementTuple et = ItemIdIsNormal(iid) ?
			(HnswElementTuple) PageGetItem(page, iid) : NULL;

		if (et && et->type == HNSW_ELEMENT_TUPLE)
		{
			memcpy(out, et->x, sizeof(float) * dim);
			if (neighbortid)
				*neighbortid = et->neighbortid;
			if (deleted)
				*deleted = (et->flags & HNSW_ELEMENT_DELETED) != 0 ||
					!ItemPointerIsValid(&et->heaptid);
			ok = true;
		}
	}
	UnlockReleaseBuffer(buf);
	return ok;
}

/* Candidates whose vectors are read on first use by the heuristic. */
typedef struct LazyVectors
{
	Relation	index;
	int			dim;
	const HnswDistance *dist;
	const HnswCandidate *cands;
	float	  **vecs;
} LazyVectors;

static const float *
lazy_vector(LazyVectors *lv, int i)
{
	if (lv->vecs[i] == NULL)
	{
		ItemPointerData tid;

		lv->vecs[i] = palloc(sizeof(float) * lv->dim);
		HnswUnpackTid(lv->cands[i].id, &tid);
		if (!load_vector(lv->index, &tid, lv->dim, lv->vecs[i], NULL, NULL))
			memset(lv->vecs[i], 0, sizeof(float) * lv->dim);
	}
	return lv->vecs[i];
}

static float
lazy_pair_distance(void *arg, int i, int j)
{
	LazyVectors *lv = arg;

	return HnswDistanceCompute(lv->dist, lazy_vector(lv, i), lazy_vector(lv, j),
							   lv->dim);
}

/* Choose up to `max` of the sorted candidates with Algorithm 4. */
static int
select_on_disk(Relation index, int dim, const HnswDistance *dist,
			   HnswCandidate *cands, int n, int max, int *chosen, int *naccepted)
{
	LazyVectors lv = {index, dim, dist, cands, palloc0(sizeof(float *) * Max(n, 1))};

	return HnswSelectNeighbors(cands, n, max, lazy_pair_distance, &lv, chosen, naccepted);
}

/* ---------- placing the new element ---------- */

static bool
page_has_room(Page page, Size need)
{
	return PageGetFreeSpace(page) >= need;
}

/*
 * Find a page with room for both tuples: the last page first, then one the
 * free space map knows of (space vacuum freed), else a new page.  Called
 * with the metapage exclusively locked; returns the data page locked.
 */
static Buffer
find_insert_page(Relation index, Buffer metabuf, Size need, bool *extended)
{
	HnswMetaPage meta = HnswPageGetMeta(BufferGetPage(metabuf));
	BlockNumber blkno = meta->insert_blkno;
	Buffer		buf;

	*extended = false;
	if (blkno != HNSW_METAPAGE_BLKNO && blkno != InvalidBlockNumber)
	{
		buf = ReadBuffer(index, blkno);
		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		if (page_has_room(BufferGetPage(buf), need))
			return buf;
		UnlockReleaseBuffer(buf);
	}
	blkno = GetPageWithFreeSpace(index, need);
	while (blkno != InvalidBlockNumber && blkno != HNSW_METAPAGE_BLKNO)
	{
		Size		avail;

		buf = ReadBuffer(index, blkno);
		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		if (PageIsNew(BufferGetPage(buf)))
		{
			/* never written (VACUUM found it so under the update lock): take it whole */
			*extended = true;
			return buf;
		}
		if (page_has_room(BufferGetPage(buf), need))
			return buf;
		avail = PageGetFreeSpace(BufferGetPage(buf));
		UnlockReleaseBuffer(buf);
		blkno = RecordAndGetPageWithFreeSpace(index, blkno, avail, need);
	}
	*extended = true;
	return HnswNewBuffer(index, MAIN_FORKNUM);
}

/* An element tuple and its neighbour tuple, with `links` per layer (NULL: none yet). */
void
HnswBuildTuples(int dim, int m, int level, const float *value, ItemPointer heaptid,
				const HnswLayerLinks *links, HnswElementTuple et, HnswNeighborTuple nt)
{
	int			nslots = HNSW_NEIGHBOR_SLOTS(m, level);

	memset(et, 0, HNSW_ELEMENT_TUPLE_SIZE(dim));
	et->type = HNSW_ELEMENT_TUPLE;
	et->level = level;
	et->heaptid = *heaptid;
	memcpy(et->x, value, sizeof(float) * dim);

	memset(nt, 0, HNSW_NEIGHBOR_TUPLE_SIZE(m, level));
	nt->type = HNSW_NEIGHBOR_TUPLE;
	nt->level = level;
	nt->nslots = nslots;
	for (int i = 0; i < nslots; i++)
		ItemPointerSetInvalid(&nt->slots[i]);
	for (int layer = 0; links != NULL && layer <= level; layer++)
	{
		int			start = HNSW_LAYER_START(m, layer);

		for (int i = 0; i < links[layer].n; i++)
			HnswSlotSet(&nt->slots[start + i], &links[layer].tids[i],
						links[layer].accepted[i]);
	}
}

/* Register a page for change, initialising it if it was just added. */
static Page
register_page(GenericXLogState *state, Buffer buf, bool fresh)
{
	Page		page = GenericXLogRegisterBuffer(state, buf, fresh ? GENERIC_XLOG_FULL_IMAGE : 0);

	if (fresh)
		HnswInitPage(page);
	return page;
}

/*
 * Write the element and its neighbour tuple in one WAL record, with the
 * metapage when the last page or the entry point changes.  The two tuples
 * share a page when they fit on one; a large vector (over ~1,900
 * dimensions) gets a fresh page of its own.
 */
static void
place_element(Relation index, HnswElementTuple et, Size esize,
			  HnswNeighborTuple nt, Size nsize, bool new_entry,
			  ItemPointer result, HnswPageChanges *changes)
{
	Size		empty = BLCKSZ - SizeOfPageHeaderData -
		MAXALIGN(sizeof(HnswPageOpaqueData)) - sizeof(ItemIdData);
	Size		pair = MAXALIGN(esize) + MAXALIGN(nsize) + sizeof(ItemIdData);
	bool		together = pair <= empty;
	Buffer		metabuf = ReadBuffer(index, HNSW_METAPAGE_BLKNO);
	Buffer		nbuf,
				ebuf,
				bufs[3];
	bool		extended;
	GenericXLogState *state;
	Page		npage,
				epage;
	HnswMetaPage meta;
	OffsetNumber noff,
				eoff;

	LockBuffer(metabuf, BUFFER_LOCK_EXCLUSIVE);
	nbuf = find_insert_page(index, metabuf, together ? pair : MAXALIGN(nsize), &extended);
	ebuf = together ? nbuf : HnswNewBuffer(index, MAIN_FORKNUM);
	bufs[0] = metabuf;
	bufs[1] = nbuf;
	bufs[2] = ebuf;
	changes->n = together ? 2 : 3;
	for (int i = 0; i < changes->n; i++)
	{
		changes->blkno[i] = BufferGetBlockNumber(bufs[i]);
		changes->before[i] = PageGetLSN(BufferGetPage(bufs[i]));
	}
	state = GenericXLogStart(index);
	npage = register_page(state, nbuf, extended);
	epage = together ? npage : register_page(state, ebuf, true);
	meta = HnswPageGetMeta(GenericXLogRegisterBuffer(state, metabuf, 0));

	noff = PageAddItem(npage, (Item) nt, nsize, InvalidOffsetNumber, false, false);
	ItemPointerSet(&et->neighbortid, BufferGetBlockNumber(nbuf), noff);
	eoff = PageAddItem(epage, (Item) et, esize, InvalidOffsetNumber, false, false);
	if (noff == InvalidOffsetNumber || eoff == InvalidOffsetNumber)
		elog(ERROR, "hnsw: failed to add element to page %u of index \"%s\"",
			 BufferGetBlockNumber(ebuf), RelationGetRelationName(index));
	ItemPointerSet(result, BufferGetBlockNumber(ebuf), eoff);

	if (extended)
		meta->insert_blkno = BufferGetBlockNumber(nbuf);
	if (new_entry)
	{
		meta->entry_blkno = BufferGetBlockNumber(ebuf);
		meta->entry_offno = eoff;
		meta->entry_level = et->level;
	}
	GenericXLogFinish(state);
	for (int i = 0; i < changes->n; i++)
		changes->after[i] = PageGetLSN(BufferGetPage(bufs[i]));
	if (!together)
		UnlockReleaseBuffer(ebuf);
	UnlockReleaseBuffer(nbuf);
	UnlockReleaseBuffer(metabuf);
}

/*
 * Write a new element whose links are already chosen; returns the TIDs of
 * its element and neighbour tuples, and in `changes` (unless NULL) the pages
 * written.  The caller holds the update lock.
 */
void
HnswPlaceNewElement(Relation index, int dim, int m, int level, const float *value,
					ItemPointer heaptid, const HnswLayerLinks *links,
					bool new_entry, ItemPointer tid, ItemPointer ntid,
					HnswPageChanges *changes)
{
	HnswPageChanges ignored;

	Size		esize = HNSW_ELEMENT_TUPLE_SIZE(dim);
	Size		nsize = HNSW_NEIGHBOR_TUPLE_SIZE(m, level);
	HnswElementTuple et = palloc(esize);
	HnswNeighborTuple nt = palloc(nsize);

	HnswBuildTuples(dim, m, level, value, heaptid, links, et, nt);
	place_element(index, et, esize, nt, nsize, new_entry, tid,
				  changes ? changes : &ignored);
	*ntid = et->neighbortid;
	pfree(et);
	pfree(nt);
}

/* ---------- linking back ---------- */

/* Read one layer of a neighbour tuple; returns the slot count, or -1. */
static int
read_layer(Page page, OffsetNumber off, int m, int layer, ItemPointerData *out)
{
	ItemId		iid;
	HnswNeighborTuple nt;
	int			start = HNSW_LAYER_START(m, layer);

	if (off > PageGetMaxOffsetNumber(page))
		return -1;
	iid = PageGetItemId(page, off);
	if (!ItemIdIsNormal(iid))
		return -1;
	nt = (HnswNeighborTuple) PageGetItem(page, iid);
	if (nt->type != HNSW_NEIGHBOR_TUPLE || nt->level < layer)
		return -1;
	HnswSlotTids(out, &nt->slots[start], HNSW_LAYER_SLOTS(m, layer));
	return HNSW_LAYER_SLOTS(m, layer);
}

/*
 * Apply a change to one layer of a neighbour tuple under an exclusive lock,
 * provided the layer still reads `expect` (NULL: add `add` to a free slot,
 * whatever the list holds).  Returns false if neither applies.
 */
static bool
write_layer(Relation index, ItemPointer ntid, int m, int layer,
			const ItemPointerData *expect, const ItemPointerData *replace,
			ItemPointer add)
{
	Buffer		buf = ReadBuffer(index, ItemPointerGetBlockNumber(ntid));
	GenericXLogState *state;
	Page		page;
	ItemPointerData current[HNSW_MAX_M * 2];
	int			n,
				start = HNSW_LAYER_START(m, layer);
	bool		done = false;
	HnswNeighborTuple nt;

	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	state = GenericXLogStart(index);
	page = GenericXLogRegisterBuffer(state, buf, 0);
	n = read_layer(page, ItemPointerGetOffsetNumber(ntid), m, layer, current);
	if (n > 0)
	{
		nt = (HnswNeighborTuple) PageGetItem(page,
											 PageGetItemId(page, ItemPointerGetOffsetNumber(ntid)));
		if (expect && memcmp(current, expect, sizeof(ItemPointerData) * n) == 0)
		{
			memcpy(&nt->slots[start], replace, sizeof(ItemPointerData) * n);
			done = true;
		}
		for (int i = 0; !done && add && i < n; i++)
		{
			if (!ItemPointerIsValid(&current[i]))
			{
				nt->slots[start + i] = *add;
				done = true;
			}
		}
	}
	if (done)
		GenericXLogFinish(state);
	else
		GenericXLogAbort(state);
	UnlockReleaseBuffer(buf);
	return done;
}

/*
 * With `force`, the new element takes the place of the farthest link the
 * heuristic kept instead of it: its only way in when every neighbour's
 * heuristic turned it down.
 */
static void
force_chosen(const HnswCandidate *cands, int ncand, int *chosen, int k,
			 ItemPointer newtid, int *forced)
{
	uint64		q = HnswPackItemPointer(newtid);
	int			qpos = -1;

	*forced = -1;
	for (int i = 0; i < ncand; i++)
	{
		if (cands[i].id == q)
			qpos = i;
	}
	if (qpos < 0 || k == 0)
		return;
	*forced = 0;
	for (int j = 1; j < k; j++)
	{
		if (cands[chosen[j]].distance > cands[chosen[*forced]].distance)
			*forced = j;
	}
	chosen[*forced] = qpos;
}

/*
 * Add the new element to neighbour `ntid`'s list in `layer`.  A free slot
 * is taken directly; a full list is re-pruned with the heuristic over its
 * members and the new element (deleted members drop out), computed without
 * locks and applied only if the list did not change meanwhile.  Returns
 * whether the new element is in the list now.
 */
static bool
link_back(Relation index, int dim, int m, const HnswDistance *dist,
		  ItemPointer nbr, ItemPointer newtid, int layer, bool force,
		  ItemPointer dropped)
{
	ItemPointerData ntid;
	ItemPointerData current[HNSW_MAX_M * 2];
	ItemPointerData replace[HNSW_MAX_M * 2];
	HnswCandidate cands[HNSW_MAX_M * 2 + 1];
	int			chosen[HNSW_MAX_M * 2 + 1];
	float	   *base = palloc(sizeof(float) * dim);
	float	   *vec = palloc(sizeof(float) * dim);
	int			n,
				ncand = 0,
				k,
				naccepted;
	Buffer		buf;
	bool		new_chosen = false;
	int			forced = -1;

	ItemPointerSetInvalid(dropped);
	if (!load_vector(index, nbr, dim, base, &ntid, NULL))
		return false;
	if (write_layer(index, &ntid, m, layer, NULL, NULL, newtid))
		return true;

	buf = ReadBuffer(index, ItemPointerGetBlockNumber(&ntid));
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	n = read_layer(BufferGetPage(buf), ItemPointerGetOffsetNumber(&ntid), m, layer, current);
	UnlockReleaseBuffer(buf);
	if (n <= 0)
		return false;

	for (int i = 0; i <= n; i++)
	{
		ItemPointer tid = i < n ? &current[i] : newtid;
		bool		deleted;

		if (!ItemPointerIsValid(tid) ||
			!load_vector(index, tid, dim, vec, NULL, &deleted) || deleted)
			continue;
		cands[ncand].id = HnswPackItemPointer(tid);
		cands[ncand].distance = HnswDistanceCompute(dist, base, vec, dim);
		ncand++;
	}
	HnswSortCandidates(cands, ncand);
	k = select_on_disk(index, dim, dist, cands, ncand, n, chosen, &naccepted);
	for (int j = 0; j < k; j++)
		new_chosen |= cands[chosen[j]].id == HnswPackItemPointer(newtid);
	if (!new_chosen && force)
	{
		force_chosen(cands, ncand, chosen, k, newtid, &forced);
		new_chosen = forced >= 0;
	}
	for (int i = 0; i < n; i++)
	{
		if (i < k)
		{
			ItemPointerData tid;

			HnswUnpackTid(cands[chosen[i]].id, &tid);
			/* a forced link is fill, not a link the heuristic accepted */
			HnswSlotSet(&replace[i], &tid, i < naccepted && i != forced);
		}
		else
			ItemPointerSetInvalid(&replace[i]);
	}
	if (!write_layer(index, &ntid, m, layer, current, replace, NULL))
		return write_layer(index, &ntid, m, layer, NULL, NULL, newtid);
	/* report the live member the new element pushed out, if any */
	for (int i = 0; new_chosen && i < ncand; i++)
	{
		bool		kept = false;

		for (int j = 0; j < k && !kept; j++)
			kept = chosen[j] == i;
		if (!kept)
		{
			HnswUnpackTid(cands[i].id, dropped);
			break;
		}
	}
	return new_chosen;
}

/*
 * The heuristic drops a link X from a neighbour's list when the new element
 * q is nearer to X, on the premise that X stays reachable through q.  Make
 * the premise true: link q to every X it displaced, replacing q's farthest
 * links if need be.  Those were added a moment ago, so replacing them
 * cannot strand anything, while dropping X could strand a whole cluster
 * (an element's last incoming link) -- unless the link replaced leads to an
 * X itself: one neighbour's list can displace another of q's neighbours,
 * whose link from q is then its way in and must stay.
 */
static void
adopt_displaced(Relation index, int dim, int m, const HnswDistance *dist,
				const float *qvec, ItemPointer qntid, int layer,
				ItemPointerData *displaced, int ndisplaced)
{
	ItemPointerData current[HNSW_MAX_M * 2];
	ItemPointerData next[HNSW_MAX_M * 2];
	float		d[HNSW_MAX_M * 2];
	bool		adopted[HNSW_MAX_M * 2] = {0};
	float	   *vec = palloc(sizeof(float) * dim);
	Buffer		buf;
	int			n;

	if (ndisplaced == 0)
		return;
	buf = ReadBuffer(index, ItemPointerGetBlockNumber(qntid));
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	n = read_layer(BufferGetPage(buf), ItemPointerGetOffsetNumber(qntid), m, layer, current);
	UnlockReleaseBuffer(buf);
	if (n <= 0)
		return;
	memcpy(next, current, sizeof(ItemPointerData) * n);
	for (int i = 0; i < n; i++)
	{
		d[i] = -1;				/* free slot */
		if (ItemPointerIsValid(&next[i]) && load_vector(index, &next[i], dim, vec, NULL, NULL))
			d[i] = HnswDistanceCompute(dist, qvec, vec, dim);
	}
	for (int x = 0; x < ndisplaced; x++)
	{
		int			slot;
		bool		present = false;

		/* a displaced X that q links to already keeps that link */
		for (int i = 0; i < n && !present; i++)
		{
			present = ItemPointerEquals(&next[i], &displaced[x]);
			adopted[i] |= present;
		}
		if (present || !load_vector(index, &displaced[x], dim, vec, NULL, NULL))
			continue;
		slot = HnswAdoptSlot(d, adopted, n);
		if (slot < 0)
			break;
		next[slot] = displaced[x];
		d[slot] = HnswDistanceCompute(dist, qvec, vec, dim);
		adopted[slot] = true;
	}
	write_layer(index, qntid, m, layer, current, next, NULL);
}

/* ---------- the insert ---------- */

/* Search each layer from the entry point and choose the new links. */
static void
find_neighbors(Relation index, HnswMetaPageData *meta, const float *value,
			   const HnswDistance *dist, int level, LayerLinks *links)
{
	HnswDiskGraph dg;
	HnswSearchState s;
	HnswCandidate ep;
	HnswCandidate *entries;
	int			nentries = 1;
	ItemPointerData entry;
	int			efc = meta->ef_construction;

	HnswDiskGraphInit(&dg, index, value, meta->dimensions, dist);
	ItemPointerSet(&entry, meta->entry_blkno, meta->entry_offno);
	if (!HnswLoadCandidate(index, &entry, &dg.base, &ep))
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("hnsw index \"%s\" has an invalid entry point",
						RelationGetRelationName(index))));
	if (meta->entry_level > level)
		ep = HnswGreedySearch(&dg.base, HnswVisitedCreate(256), ep, meta->entry_level, level);
	entries = palloc(sizeof(HnswCandidate) * (efc + 1));
	entries[0] = ep;

	for (int layer = Min(level, meta->entry_level); layer >= 0; layer--)
	{
		int			chosen[HNSW_MAX_M * 2];
		int			k,
					naccepted;

		HnswSearchStateInit(&s, efc, false, NULL);
		HnswSearchLayer(&dg.base, &s, entries, nentries, efc, layer);
		if (s.results.count == 0)
			continue;			/* only deleted nodes seen: keep the entries */
		nentries = s.results.count;
		memcpy(entries, s.results.items, sizeof(HnswCandidate) * nentries);
		HnswSortCandidates(entries, nentries);
		k = select_on_disk(index, meta->dimensions, dist, entries, nentries,
						   HNSW_LAYER_SLOTS(meta->m, layer), chosen, &naccepted);
		links[layer].n = k;
		for (int i = 0; i < k; i++)
		{
			HnswUnpackTid(entries[chosen[i]].id, &links[layer].tids[i]);
			links[layer].dists[i] = entries[chosen[i]].distance;
			links[layer].accepted[i] = i < naccepted;
		}
	}
	HnswDiskGraphRelease(&dg);
}

static bool
becomes_entry(const HnswMetaPageData *meta, int level)
{
	return meta->entry_blkno == InvalidBlockNumber || level > meta->entry_level;
}

/*
 * Take the update lock for a new element of `level`: shared, so inserts
 * run side by side, or exclusive if it becomes the entry point; *meta is
 * read under it.  A batch cut short (hnswrelink.c) is finished first,
 * also one cut short while this waited for the lock.
 */
static LOCKMODE
lock_for_insert(Relation index, int level, HnswMetaPageData *meta)
{
	for (;;)
	{
		LOCKMODE	mode;

		if (meta->batch_writing)
		{
			HnswFinishBatch(index);
			HnswReadMeta(index, meta);
		}
		mode = becomes_entry(meta, level) ? ExclusiveLock : ShareLock;
		LockPage(index, HNSW_UPDATE_LOCK, mode);
		HnswReadMeta(index, meta);	/* the entry may have moved meanwhile */
		if (!meta->batch_writing && (mode == ExclusiveLock || !becomes_entry(meta, level)))
			return mode;
		UnlockPage(index, HNSW_UPDATE_LOCK, mode);
	}
}

void
HnswInsertOnDisk(Relation index, const float *value, ItemPointer heaptid,
				 const HnswDistance *dist, bool building)
{
	HnswMetaPageData meta;
	LOCKMODE	lockmode;
	int			level;
	LayerLinks *links;
	ItemPointerData newtid,
				newntid;
	bool		new_entry;

	HnswReadMeta(index, &meta);
	level = Min(HnswRandomLevel(meta.m), HNSW_MAX_LEVEL);
	lockmode = lock_for_insert(index, level, &meta);
	new_entry = becomes_entry(&meta, level);

	links = palloc0(sizeof(LayerLinks) * (level + 1));
	if (meta.entry_blkno != InvalidBlockNumber)
		find_neighbors(index, &meta, value, dist, level, links);
	HnswPlaceNewElement(index, meta.dimensions, meta.m, level, value, heaptid,
						links, new_entry, &newtid, &newntid, NULL);

	for (int layer = 0; layer <= level; layer++)
	{
		ItemPointerData displaced[HNSW_MAX_M * 2];
		int			ndisplaced = 0;
		bool		linked = false;

		for (int i = 0; i < links[layer].n; i++)
		{
			linked |= link_back(index, meta.dimensions, meta.m, dist, &links[layer].tids[i],
								&newtid, layer, false, &displaced[ndisplaced]);
			if (ItemPointerIsValid(&displaced[ndisplaced]))
				ndisplaced++;
		}

		/*
		 * Every neighbour turned the new element down: nothing would lead
		 * to it in layer 0.  Its nearest neighbour takes it in place of its
		 * farthest link, which the new element then adopts.
		 */
		if (layer == 0 && !linked && links[0].n > 0)
		{
			link_back(index, meta.dimensions, meta.m, dist, &links[0].tids[0],
					  &newtid, 0, true, &displaced[ndisplaced]);
			if (ItemPointerIsValid(&displaced[ndisplaced]))
				ndisplaced++;
		}
		adopt_displaced(index, meta.dimensions, meta.m, dist, value, &newntid,
						layer, displaced, ndisplaced);
	}
	UnlockPage(index, HNSW_UPDATE_LOCK, lockmode);
}

bool
hnswinsert(Relation index, Datum *values, bool *isnull, ItemPointer heap_tid,
		   Relation heap, IndexUniqueCheck checkUnique, bool indexUnchanged,
		   IndexInfo *indexInfo)
{
	MemoryContext cxt,
				old;
	HnswDistance dist;
	HnswMetaPageData meta;
	Vector	   *v;
	float	   *value;
	AgentmemTimer timer;
	bool		queued;

	if (isnull[0])
		return false;
	AgentmemTimerStart(&timer);
	cxt = AllocSetContextCreate(CurrentMemoryContext, "hnsw insert",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	v = DatumGetVector(values[0]);
	HnswReadMeta(index, &meta);
	if (v->dim != (int) meta.dimensions)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("expected %u dimensions, not %d", meta.dimensions, v->dim)));
	HnswGetDistance(index, &dist);
	value = palloc(sizeof(float) * v->dim);
	if (!HnswPrepareValue(&dist, v, value))
		queued = false;			/* nothing to index */
	else if (!(queued = HnswBatchQueue(index, v->dim, value, heap_tid)))
		HnswInsertOnDisk(index, value, heap_tid, &dist, false);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	/* a queued row's time is recorded when its batch is linked */
	if (!queued)
		AgentmemTimerRecord(&timer, AGENTMEM_OP_HNSW_INSERT);
	return false;
}
