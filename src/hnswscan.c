/*
 * hnswscan.c
 *		Index scans: ORDER BY vector <op> constant, nearest first.
 *
 * The first call searches the graph (greedy descent, then ef_search-wide
 * best-first search of layer 0) and returns the results nearest first.
 * With hnsw.iterative_scan on, a scan whose rows were all consumed (for
 * instance rejected by a WHERE clause) resumes the search from where it
 * stopped, until hnsw.max_scan_tuples elements have been returned.
 */
#include "postgres.h"

#include "access/relscan.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "hnsw.h"
#include "stats.h"

typedef struct HnswScanOpaqueData
{
	MemoryContext cxt;			/* reset by every rescan */
	HnswDistance dist;
	bool		started;
	bool		done;
	float	   *query;
	HnswDiskGraph graph;
	HnswSearchState *search;	/* &own, or the backend's spare */
	HnswSearchState own;
	bool		holds_spare;
	HnswCandidate *batch;		/* current results, nearest first */
	int			batch_cap;
	int			nbatch;
	int			next;
	int64		returned;
	float		last_distance;
	AgentmemTimer timer;		/* time in hnswgettuple: one hnsw_scan sample */
} HnswScanOpaqueData;

typedef HnswScanOpaqueData *HnswScanOpaque;

/*
 * One search state kept for the backend's next scan.  A scan's visited set
 * and candidate heaps grow to tens of kilobytes; allocated afresh for every
 * scan, glibc gives them back to the kernel when the scan ends and the next
 * scan page-faults them in again: 15% of a recall_batch's time, where every
 * query is a new scan.  A scan uses the spare in place (its heaps grow in
 * the spare's context), so a scan that errors out leaves it whole; the
 * end of the transaction frees it for the next one (a scan that failed in
 * a subtransaction never returns it).  A spare that grew big (a long
 * iterative scan) is dropped rather than kept, since resetting its visited
 * set costs a memset.
 */
#define SCAN_SPARE_MAX_BYTES	(1024 * 1024)

typedef struct ScanSpare
{
	MemoryContext cxt;
	HnswSearchState search;
	bool		in_use;
} ScanSpare;

static ScanSpare *spare = NULL;
static bool spare_callback_registered = false;

/* No scan outlives its transaction (holdable cursors are materialised). */
static void
spare_xact_callback(XactEvent event, void *arg)
{
	if (spare && (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
				  event == XACT_EVENT_PREPARE || event == XACT_EVENT_PARALLEL_COMMIT ||
				  event == XACT_EVENT_PARALLEL_ABORT))
		spare->in_use = false;
}

/* The backend's spare search state if free (made on first use), else NULL. */
static HnswSearchState *
take_spare(HnswScanOpaque so, int ef, bool keep_discarded)
{
	if (!spare_callback_registered)
	{
		RegisterXactCallback(spare_xact_callback, NULL);
		spare_callback_registered = true;
	}
	if (spare == NULL)
	{
		MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "hnsw scan spare",
												  ALLOCSET_DEFAULT_SIZES);
		MemoryContext old = MemoryContextSwitchTo(cxt);

		spare = palloc0(sizeof(ScanSpare));
		spare->cxt = cxt;
		HnswSearchStateInit(&spare->search, ef, keep_discarded, NULL);
		MemoryContextSwitchTo(old);
	}
	else if (spare->in_use)
		return NULL;
	HnswVisitedReset(spare->search.visited);
	spare->search.frontier.count = 0;
	spare->search.results.count = 0;
	spare->search.discarded.count = 0;
	spare->search.keep_discarded = keep_discarded;
	spare->in_use = true;
	so->holds_spare = true;
	return &spare->search;
}

/* Give the spare back, with the heaps as they grew. */
static void
return_spare(HnswScanOpaque so)
{
	if (!so->holds_spare)
		return;
	so->holds_spare = false;
	so->search = NULL;
	spare->in_use = false;
	if (MemoryContextMemAllocated(spare->cxt, false) > SCAN_SPARE_MAX_BYTES)
	{
		MemoryContextDelete(spare->cxt);
		spare = NULL;
	}
}

IndexScanDesc
hnswbeginscan(Relation index, int nkeys, int norderbys)
{
	IndexScanDesc scan = RelationGetIndexScan(index, nkeys, norderbys);
	HnswScanOpaque so = palloc0(sizeof(HnswScanOpaqueData));

	so->cxt = AllocSetContextCreate(CurrentMemoryContext, "hnsw scan",
									ALLOCSET_DEFAULT_SIZES);
	HnswGetDistance(index, &so->dist);
	scan->opaque = so;
	return scan;
}

void
hnswrescan(IndexScanDesc scan, ScanKey keys, int nkeys,
		   ScanKey orderbys, int norderbys)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;

	/* rows this backend queued in a batch must be found: link them first */
	HnswBatchFlushIndex(scan->indexRelation);
	if (keys && scan->numberOfKeys > 0)
		memmove(scan->keyData, keys, scan->numberOfKeys * sizeof(ScanKeyData));
	if (orderbys && scan->numberOfOrderBys > 0)
		memmove(scan->orderByData, orderbys, scan->numberOfOrderBys * sizeof(ScanKeyData));
	AgentmemTimerRecord(&so->timer, AGENTMEM_OP_HNSW_SCAN);
	return_spare(so);
	MemoryContextReset(so->cxt);
	so->batch = NULL;
	so->started = false;
	so->done = false;
	so->nbatch = 0;
	so->next = 0;
	so->returned = 0;
}

/* Take the current results out of the max-heap, nearest first. */
static void
take_batch(HnswScanOpaque so)
{
	HnswHeap   *r = &so->search->results;

	/* hnsw.ef_search may have changed between the fetches of a cursor */
	if (so->batch == NULL || so->batch_cap < r->count)
	{
		so->batch_cap = Max(r->count, hnsw_ef_search + 1);
		so->batch = so->batch ? repalloc(so->batch, sizeof(HnswCandidate) * so->batch_cap)
			: palloc(sizeof(HnswCandidate) * so->batch_cap);
	}
	memcpy(so->batch, r->items, sizeof(HnswCandidate) * r->count);
	so->nbatch = r->count;
	so->next = 0;
	r->count = 0;
	HnswSortCandidates(so->batch, so->nbatch);
}

/* Prepare the query and run the first search; false if nothing to return. */
static bool
start_scan(IndexScanDesc scan)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;
	Relation	index = scan->indexRelation;
	HnswMetaPageData meta;
	ItemPointerData entry;
	HnswCandidate ep;
	Vector	   *v;

	if (scan->numberOfOrderBys != 1)
		return false;
	HnswReadMeta(index, &meta);
	if (meta.batch_writing)
		HnswRequestRelink(index);
	if (meta.entry_blkno == InvalidBlockNumber)
		return false;
	so->query = palloc0(sizeof(float) * meta.dimensions);

	/*
	 * A NULL query, or a zero one under cosine, orders nothing: every
	 * distance is NULL or NaN.  A sequential scan still returns the rows, in
	 * no particular order, so the scan does too, searching with a zero
	 * vector under which all elements tie.
	 */
	if (!(scan->orderByData[0].sk_flags & SK_ISNULL))
	{
		v = DatumGetVector(scan->orderByData[0].sk_argument);
		if (v->dim != (int) meta.dimensions)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("different vector dimensions %u and %d", meta.dimensions, v->dim)));
		if (!HnswPrepareValue(&so->dist, v, so->query))
			memset(so->query, 0, sizeof(float) * meta.dimensions);
	}

	HnswDiskGraphInit(&so->graph, index, so->query, meta.dimensions, &so->dist);
	ItemPointerSet(&entry, meta.entry_blkno, meta.entry_offno);
	if (!HnswLoadCandidate(index, &entry, &so->graph.base, &ep))
		return false;
	so->search = take_spare(so, hnsw_ef_search, hnsw_iterative_scan != HNSW_ITERATIVE_OFF);
	if (so->search == NULL)
	{
		so->search = &so->own;
		HnswSearchStateInit(so->search, hnsw_ef_search,
							hnsw_iterative_scan != HNSW_ITERATIVE_OFF, NULL);
	}
	if (meta.entry_level > 0)
	{
		ep = HnswGreedySearch(&so->graph.base, so->search->visited, ep,
							  meta.entry_level, 0);
		HnswVisitedReset(so->search->visited);
	}
	HnswSearchLayer(&so->graph.base, so->search, &ep, 1, hnsw_ef_search, 0);
	take_batch(so);
	return true;
}

/* Iterative scans: fetch the next batch; false when the search is spent. */
static bool
next_batch(IndexScanDesc scan)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;

	if (hnsw_iterative_scan == HNSW_ITERATIVE_OFF ||
		so->returned >= hnsw_max_scan_tuples)
		return false;
	HnswSearchResume(&so->graph.base, so->search, hnsw_ef_search);
	take_batch(so);
	return so->nbatch > 0;
}

bool
hnswgettuple(IndexScanDesc scan, ScanDirection dir)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;
	MemoryContext old;
	bool		found = false;

	if (so->done)
		return false;
	AgentmemTimerResume(&so->timer);
	old = MemoryContextSwitchTo(so->cxt);
	if (!so->started)
	{
		so->started = true;
		if (!start_scan(scan))
			so->done = true;
	}
	while (!so->done && !found)
	{
		HnswCandidate *c;

		if (so->next >= so->nbatch && !next_batch(scan))
		{
			so->done = true;
			break;
		}
		if (so->next >= so->nbatch)
			continue;
		c = &so->batch[so->next++];
		/* strict order: drop what a later round found nearer than before */
		if (hnsw_iterative_scan == HNSW_ITERATIVE_STRICT && so->returned > 0 &&
			c->distance < so->last_distance)
			continue;
		HnswUnpackTid(c->heaptid, &scan->xs_heaptid);
		scan->xs_recheckorderby = false;
		so->last_distance = c->distance;
		so->returned++;
		found = true;
	}
	MemoryContextSwitchTo(old);
	AgentmemTimerPause(&so->timer);
	CHECK_FOR_INTERRUPTS();
	return found;
}

void
hnswendscan(IndexScanDesc scan)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;

	AgentmemTimerRecord(&so->timer, AGENTMEM_OP_HNSW_SCAN);
	return_spare(so);
	MemoryContextDelete(so->cxt);
	pfree(so);
	scan->opaque = NULL;
}
