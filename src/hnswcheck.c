/*
 * hnswcheck.c
 *		agentmem.hnsw_check(index): structural verification of an hnsw index.
 *
 * Reads every page with inserts and vacuum held off (the update lock in
 * exclusive mode) and reports one row per problem: bad pages, elements
 * without a matching neighbour tuple, links to freed or non-element slots,
 * links to elements below the layer, duplicate or self links, an entry
 * point that is missing or not on the top level, live elements that cannot
 * be reached from the entry point, and heap TIDs that point nowhere.
 * agentmem.hnsw_info(index) reports the counts it gathered.
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/xlog.h"
#include "catalog/pg_am.h"
#include "catalog/pg_index.h"
#include "commands/defrem.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"

#include "hnsw.h"

PG_FUNCTION_INFO_V1(hnsw_check);
PG_FUNCTION_INFO_V1(hnsw_info);

#define MAX_PROBLEMS 1000

typedef struct CheckElement
{
	uint64		tid;			/* key */
	ItemPointerData ntid;
	ItemPointerData heaptid;
	uint8		level;
	bool		deleted;
	bool		reached;
} CheckElement;

typedef struct CheckNeighbors
{
	uint64		tid;			/* key */
	uint8		level;
	bool		used;
} CheckNeighbors;

typedef struct CheckState
{
	Relation	index;
	Relation	heap;
	BlockNumber heap_blocks;
	HnswMetaPageData meta;
	HTAB	   *elements;
	HTAB	   *neighbors;
	ReturnSetInfo *rsinfo;		/* NULL: count only */
	int64		problems;
	int64		live;
	int64		deleted;
	int64		unreachable;
	int64		lists;			/* non-empty lists of live elements */
	int64		judged_lists;	/* those whose every link has a verdict */
	int			max_level;
	BlockNumber pages;
} CheckState;

static void
report(CheckState *cs, const char *kind, ItemPointer tid, const char *fmt,...)
{
	Datum		values[3];
	bool		nulls[3] = {false, tid == NULL, false};
	char		buf[256];
	va_list		ap;

	cs->problems++;
	if (cs->rsinfo == NULL || cs->problems > MAX_PROBLEMS)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	values[0] = CStringGetTextDatum(kind);
	values[1] = tid ? PointerGetDatum(tid) : (Datum) 0;
	values[2] = CStringGetTextDatum(buf);
	tuplestore_putvalues(cs->rsinfo->setResult, cs->rsinfo->setDesc, values, nulls);
}

static void
collect_page(CheckState *cs, BlockNumber blkno)
{
	Buffer		buf = ReadBuffer(cs->index, blkno);
	Page		page;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	if (PageIsNew(page) || HnswPageGetOpaque(page)->page_id != HNSW_PAGE_ID)
	{
		ItemPointerData tid;

		ItemPointerSet(&tid, blkno, FirstOffsetNumber);
		if (!PageIsNew(page))
			report(cs, "bad page", &tid, "block %u is not an hnsw page", blkno);
		UnlockReleaseBuffer(buf);
		return;
	}
	for (OffsetNumber off = FirstOffsetNumber; off <= PageGetMaxOffsetNumber(page); off++)
	{
		ItemId		iid = PageGetItemId(page, off);
		HnswElementTuple et;
		uint64		key = HnswPackTid(blkno, off);

		if (!ItemIdIsNormal(iid))
			continue;
		et = (HnswElementTuple) PageGetItem(page, iid);
		if (et->type == HNSW_ELEMENT_TUPLE)
		{
			CheckElement *e = hash_search(cs->elements, &key, HASH_ENTER, NULL);

			e->ntid = et->neighbortid;
			e->heaptid = et->heaptid;
			e->level = et->level;
			e->deleted = (et->flags & HNSW_ELEMENT_DELETED) != 0;
			e->reached = false;
		}
		else if (et->type == HNSW_NEIGHBOR_TUPLE)
		{
			CheckNeighbors *n = hash_search(cs->neighbors, &key, HASH_ENTER, NULL);

			n->level = ((HnswNeighborTuple) et)->level;
			n->used = false;
		}
		else
		{
			ItemPointerData tid;

			ItemPointerSet(&tid, blkno, off);
			report(cs, "bad tuple", &tid, "unknown tuple type %u", et->type);
		}
	}
	UnlockReleaseBuffer(buf);
}

/* Is the heap line pointer behind a live element in use? */
static bool
heap_tid_valid(CheckState *cs, ItemPointer htid)
{
	Buffer		buf;
	Page		page;
	OffsetNumber off = ItemPointerGetOffsetNumber(htid);
	bool		ok;

	if (!ItemPointerIsValid(htid) || ItemPointerGetBlockNumber(htid) >= cs->heap_blocks)
		return false;
	buf = ReadBuffer(cs->heap, ItemPointerGetBlockNumber(htid));
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	ok = off >= FirstOffsetNumber && off <= PageGetMaxOffsetNumber(page) &&
		ItemIdIsUsed(PageGetItemId(page, off));
	UnlockReleaseBuffer(buf);
	return ok;
}

/* Count a list, and whether every link in it carries a verdict. */
static void
count_verdicts(CheckState *cs, const ItemPointerData *slots, int n)
{
	int			links = 0,
				judged = 0;

	for (int i = 0; i < n; i++)
	{
		if (ItemPointerIsValid(&slots[i]))
		{
			links++;
			judged += HnswSlotVerdict(&slots[i]) != 0;
		}
	}
	if (links == 0)
		return;
	cs->lists++;
	cs->judged_lists += judged == links;
}

/* Check one element's neighbour lists against the collected elements. */
static void
check_links(CheckState *cs, CheckElement *e, ItemPointer etid)
{
	uint64		nkey = HnswPackItemPointer(&e->ntid);
	CheckNeighbors *n = hash_search(cs->neighbors, &nkey, HASH_FIND, NULL);
	Buffer		buf;
	Page		page;
	HnswNeighborTuple nt;
	int			m = cs->meta.m;

	if (n == NULL)
	{
		report(cs, "missing neighbours", etid, "neighbour tuple (%u,%u) not found",
			   ItemPointerGetBlockNumberNoCheck(&e->ntid),
			   ItemPointerGetOffsetNumberNoCheck(&e->ntid));
		return;
	}
	if (n->used)
		report(cs, "shared neighbours", etid, "neighbour tuple used by two elements");
	n->used = true;
	if (n->level != e->level)
		report(cs, "level mismatch", etid, "element level %d, neighbour tuple level %d",
			   e->level, n->level);
	if (e->deleted)
		return;
	buf = ReadBuffer(cs->index, ItemPointerGetBlockNumber(&e->ntid));
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	nt = (HnswNeighborTuple) PageGetItem(page, PageGetItemId(page,
															 ItemPointerGetOffsetNumber(&e->ntid)));
	for (int layer = 0; layer <= Min(e->level, nt->level); layer++)
	{
		int			start = HNSW_LAYER_START(m, layer);
		int			cap = HNSW_LAYER_SLOTS(m, layer);

		count_verdicts(cs, &nt->slots[start], cap);
		for (int i = 0; i < cap; i++)
		{
			ItemPointerData tid = HnswSlotTid(&nt->slots[start + i]);
			ItemPointer t = &tid;
			uint64		k;
			CheckElement *target;
			uint16		verdict = HnswSlotVerdict(&nt->slots[start + i]);

			if (verdict == HNSW_SLOT_VERDICT || (verdict != 0 && !ItemPointerIsValid(t)))
				report(cs, "bad verdict", etid, "layer %d slot %d has verdict bits 0x%04x",
					   layer, i, verdict);
			if (!ItemPointerIsValid(t))
				continue;
			k = HnswPackItemPointer(t);
			target = hash_search(cs->elements, &k, HASH_FIND, NULL);
			if (k == e->tid)
				report(cs, "self link", etid, "layer %d links to itself", layer);
			else if (target == NULL)
				report(cs, "dangling link", etid, "layer %d links to (%u,%u), not an element",
					   layer, ItemPointerGetBlockNumber(t), ItemPointerGetOffsetNumber(t));
			else if (target->level < layer)
				report(cs, "level mismatch", etid,
					   "layer %d links to (%u,%u) of level %d", layer,
					   ItemPointerGetBlockNumber(t), ItemPointerGetOffsetNumber(t),
					   target->level);
			for (int j = 0; j < i; j++)
			{
				ItemPointerData other = HnswSlotTid(&nt->slots[start + j]);

				if (ItemPointerEquals(t, &other))
					report(cs, "duplicate link", etid, "layer %d links twice to (%u,%u)",
						   layer, ItemPointerGetBlockNumber(t), ItemPointerGetOffsetNumber(t));
			}
		}
	}
	UnlockReleaseBuffer(buf);
}

/* Breadth-first walk of layer 0 from the entry point. */
static void
mark_reachable(CheckState *cs, uint64 entry)
{
	uint64	   *queue = palloc(sizeof(uint64) * (hash_get_num_entries(cs->elements) + 1));
	int64		head = 0,
				tail = 0;
	CheckElement *e = hash_search(cs->elements, &entry, HASH_FIND, NULL);
	int			m = cs->meta.m;

	/* the entry counts as reached only through a link back to it */
	if (e == NULL)
		return;
	queue[tail++] = entry;
	while (head < tail)
	{
		CheckElement *cur = hash_search(cs->elements, &queue[head++], HASH_FIND, NULL);
		ItemPointerData slots[HNSW_MAX_M * 2];
		Buffer		buf;
		Page		page;
		HnswNeighborTuple nt;

		CHECK_FOR_INTERRUPTS();
		buf = ReadBuffer(cs->index, ItemPointerGetBlockNumber(&cur->ntid));
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		nt = (HnswNeighborTuple) PageGetItem(page, PageGetItemId(page,
																 ItemPointerGetOffsetNumber(&cur->ntid)));
		HnswSlotTids(slots, nt->slots, HNSW_LAYER_SLOTS(m, 0));
		UnlockReleaseBuffer(buf);
		for (int i = 0; i < HNSW_LAYER_SLOTS(m, 0); i++)
		{
			uint64		k;
			CheckElement *t;

			if (!ItemPointerIsValid(&slots[i]))
				continue;
			k = HnswPackItemPointer(&slots[i]);
			t = hash_search(cs->elements, &k, HASH_FIND, NULL);
			if (t && !t->reached)
			{
				t->reached = true;
				queue[tail++] = k;
			}
		}
	}
	pfree(queue);
}

static void
check_entry(CheckState *cs)
{
	ItemPointerData entry;
	uint64		key;
	CheckElement *e;

	if (cs->meta.entry_blkno == InvalidBlockNumber)
	{
		if (cs->live > 0)
			report(cs, "no entry point", NULL, "%lld live elements but no entry point",
				   (long long) cs->live);
		return;
	}
	ItemPointerSet(&entry, cs->meta.entry_blkno, cs->meta.entry_offno);
	key = HnswPackItemPointer(&entry);
	e = hash_search(cs->elements, &key, HASH_FIND, NULL);
	if (e == NULL)
	{
		report(cs, "bad entry point", &entry, "entry point is not an element");
		return;
	}
	if (e->level != cs->meta.entry_level)
		report(cs, "bad entry point", &entry, "metapage says level %d, element has %d",
			   cs->meta.entry_level, e->level);
	if (cs->max_level > e->level)
		report(cs, "bad entry point", &entry, "entry level %d below the top level %d",
			   e->level, cs->max_level);
	if (e->deleted)
		report(cs, "bad entry point", &entry, "entry point is deleted");
	mark_reachable(cs, key);
}

static void
run_check(CheckState *cs, Oid indexoid)
{
	HASHCTL		ctl;
	HASH_SEQ_STATUS seq;
	CheckElement *e;
	BlockNumber nblocks;

	cs->index = index_open(indexoid, AccessShareLock);
	if (cs->index->rd_rel->relam != get_index_am_oid("hnsw", false))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not an hnsw index", RelationGetRelationName(cs->index))));
	cs->heap = relation_open(cs->index->rd_index->indrelid, AccessShareLock);
	LockPage(cs->index, HNSW_METAPAGE_BLKNO, ExclusiveLock);
	HnswReadMeta(cs->index, &cs->meta);
	cs->heap_blocks = RelationGetNumberOfBlocks(cs->heap);

	ctl.keysize = sizeof(uint64);
	ctl.entrysize = sizeof(CheckElement);
	ctl.hcxt = CurrentMemoryContext;
	cs->elements = hash_create("hnsw check elements", 1024, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	ctl.entrysize = sizeof(CheckNeighbors);
	cs->neighbors = hash_create("hnsw check neighbours", 1024, &ctl,
								HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	nblocks = RelationGetNumberOfBlocks(cs->index);
	cs->pages = nblocks;
	for (BlockNumber blkno = HNSW_METAPAGE_BLKNO + 1; blkno < nblocks; blkno++)
	{
		CHECK_FOR_INTERRUPTS();
		collect_page(cs, blkno);
	}

	hash_seq_init(&seq, cs->elements);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		ItemPointerData etid;

		HnswUnpackTid(e->tid, &etid);
		if (e->deleted)
			cs->deleted++;
		else
		{
			cs->live++;
			cs->max_level = Max(cs->max_level, e->level);
			if (!heap_tid_valid(cs, &e->heaptid))
				report(cs, "bad heap tid", &etid, "heap TID (%u,%u) points at no row",
					   ItemPointerGetBlockNumberNoCheck(&e->heaptid),
					   ItemPointerGetOffsetNumberNoCheck(&e->heaptid));
		}
		check_links(cs, e, &etid);
	}
	check_entry(cs);
	/* on a standby the lock does not hold off the primary's batches */
	if (cs->meta.batch_writing && RecoveryInProgress())
		report(cs, "batch writing", NULL,
			   "the primary is writing a batch's lists, or one was cut short: the primary relinks the index after it");
	else if (cs->meta.batch_writing)
		report(cs, "batch cut short", NULL,
			   "a batch ended while writing its lists; the next insert, batch or VACUUM relinks the index, "
			   "and a search starts a worker to do so");

	hash_seq_init(&seq, cs->elements);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		ItemPointerData etid;

		if (e->deleted || e->reached || cs->meta.entry_blkno == InvalidBlockNumber ||
			cs->live == 1)
			continue;
		HnswUnpackTid(e->tid, &etid);
		cs->unreachable++;
		report(cs, "unreachable", &etid, "live element not reachable from the entry point");
	}
	UnlockPage(cs->index, HNSW_METAPAGE_BLKNO, ExclusiveLock);
	relation_close(cs->heap, AccessShareLock);
	index_close(cs->index, AccessShareLock);
}

Datum
hnsw_check(PG_FUNCTION_ARGS)
{
	CheckState	cs;

	memset(&cs, 0, sizeof(cs));
	InitMaterializedSRF(fcinfo, 0);
	cs.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	run_check(&cs, PG_GETARG_OID(0));
	return (Datum) 0;
}

Datum
hnsw_info(PG_FUNCTION_ARGS)
{
	CheckState	cs;
	TupleDesc	desc;
	Datum		values[9];
	bool		nulls[9] = {0};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	memset(&cs, 0, sizeof(cs));
	run_check(&cs, PG_GETARG_OID(0));
	values[0] = Int64GetDatum(cs.live);
	values[1] = Int64GetDatum(cs.deleted);
	values[2] = Int32GetDatum(cs.meta.entry_level);
	values[3] = Int64GetDatum(cs.pages);
	values[4] = Int32GetDatum(cs.meta.m);
	values[5] = Int64GetDatum(cs.unreachable);
	values[6] = Int64GetDatum(cs.problems);
	values[7] = Int64GetDatum(cs.lists);
	values[8] = Int64GetDatum(cs.judged_lists);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
