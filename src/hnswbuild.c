/*
 * hnswbuild.c
 *		CREATE INDEX: build the graph in memory, then write it out once.
 *
 * Tuples are inserted into an in-memory HNSW graph (paper, Algorithm 1)
 * while the heap is scanned.  The graph is then laid out in breadth-first
 * order from the entry point, so that an element's neighbours tend to share
 * its page, and written unlogged; the whole relation is WAL-logged at the
 * end.  If the graph outgrows maintenance_work_mem, what was built so far is
 * written out and the remaining tuples are inserted on disk, with a NOTICE.
 *
 * The build has three phases: the heap scan stores every vector in the
 * arena; the vectors are then linked in a random order (see
 * HnswMemGraphShuffledOrder); the graph is written.  Linking is where the
 * time goes, and it is what runs in parallel: PostgreSQL 15 plans parallel
 * index builds only for btree, so the AM launches its own workers (as
 * nbtsort.c does) that link elements of one graph copied into dynamic
 * shared memory, taking the next element from a shared counter.
 */
#include "postgres.h"

#include <math.h>

#include "access/parallel.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xloginsert.h"
#include "catalog/index.h"
#include "commands/progress.h"
#include "miscadmin.h"
#include "optimizer/optimizer.h"
#include "pgstat.h"
#include "storage/bufmgr.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "hnsw.h"
#include "hnswgraph.h"
#include "stats.h"

#define HNSW_KEY_SHARED		UINT64CONST(0xA6E7000000000001)
#define HNSW_KEY_ARENA		UINT64CONST(0xA6E7000000000002)
#define HNSW_KEY_ORDER		UINT64CONST(0xA6E7000000000003)
#define HNSW_KEY_QUERY		UINT64CONST(0xA6E7000000000004)

/* Below this many elements, starting workers costs more than it saves. */
#define HNSW_MIN_PARALLEL_ELEMENTS 10000

/* What the leader shares with the workers. */
typedef struct HnswBuildShared
{
	Oid			indexrelid;
	int			dim;
	int			m;
	int			ef_construction;
	HnswGraphShared graph;
} HnswBuildShared;

typedef struct BuildState
{
	Relation	heap;
	Relation	index;
	IndexInfo  *info;
	HnswDistance dist;
	int			dim;
	int			m;
	int			ef_construction;
	HnswMemGraph graph;
	bool		on_disk;		/* graph written; inserting on disk now */
	double		indtuples;
	float	   *scratch;
	MemoryContext tmp_cxt;
} BuildState;

PGDLLEXPORT void HnswParallelBuildMain(dsm_segment *seg, shm_toc *toc);

static int
index_dimensions(Relation index)
{
	int			typmod = TupleDescAttr(index->rd_att, 0)->atttypmod;

	if (typmod < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("column does not have dimensions"),
				 errhint("Declare the column as vector(n), for example vector(384).")));
	if (typmod > HNSW_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("column cannot have more than %d dimensions for hnsw index",
						HNSW_MAX_DIM)));
	return typmod;
}

static void
check_options(int m, int ef_construction)
{
	if (ef_construction < 2 * m)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ef_construction must be greater than or equal to 2 * m"),
				 errdetail("m is %d and ef_construction is %d.", m, ef_construction)));
}

/* ---------- the metapage and writing the graph ---------- */

static void
write_meta(Relation index, ForkNumber fork, int dim, int m, int efc)
{
	Buffer		buf = HnswNewBuffer(index, fork);
	Page		page = BufferGetPage(buf);
	HnswMetaPage meta;

	Assert(BufferGetBlockNumber(buf) == HNSW_METAPAGE_BLKNO);
	HnswInitPage(page);
	meta = HnswPageGetMeta(page);
	meta->magic = HNSW_MAGIC;
	meta->version = HNSW_FORMAT_VERSION;
	meta->dimensions = dim;
	meta->m = m;
	meta->ef_construction = efc;
	meta->entry_blkno = InvalidBlockNumber;
	meta->entry_offno = InvalidOffsetNumber;
	meta->entry_level = -1;
	meta->insert_blkno = HNSW_METAPAGE_BLKNO;
	((PageHeader) page)->pd_lower =
		((char *) meta + sizeof(HnswMetaPageData)) - (char *) page;
	MarkBufferDirty(buf);
	if (fork == INIT_FORKNUM)
		log_newpage_buffer(buf, true);
	UnlockReleaseBuffer(buf);
}

static void
set_meta_entry(Relation index, ItemPointer entry, int entry_level)
{
	Buffer		buf = ReadBuffer(index, HNSW_METAPAGE_BLKNO);
	HnswMetaPage meta;

	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	meta = HnswPageGetMeta(BufferGetPage(buf));
	if (entry)
	{
		meta->entry_blkno = ItemPointerGetBlockNumber(entry);
		meta->entry_offno = ItemPointerGetOffsetNumber(entry);
		meta->entry_level = entry_level;
	}
	meta->insert_blkno = RelationGetNumberOfBlocks(index) - 1;
	MarkBufferDirty(buf);
	UnlockReleaseBuffer(buf);
}

/* Write every page of the laid-out graph and WAL-log the relation once. */
static void
flush_graph(BuildState *bs)
{
	HnswMemGraph *g = &bs->graph;
	HnswLayout	layout;
	int			entry = g->sh->entry;

	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, HNSW_PHASE_WRITE);
	pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_TOTAL, HnswMemGraphCount(g));
	HnswMemGraphEnsureReachable(g);
	HnswMemGraphLayout(g, &layout);
	HnswMemGraphWrite(g, &layout, bs->index);
	set_meta_entry(bs->index, entry >= 0 ? &layout.tids[entry] : NULL,
				   HnswMemGraphEntryLevel(g));
	if (RelationNeedsWAL(bs->index))
		log_newpage_range(bs->index, MAIN_FORKNUM, 0,
						  RelationGetNumberOfBlocks(bs->index), true);
}

static void
report_overflow(double tuples)
{
	ereport(NOTICE,
			(errmsg("hnsw graph no longer fits into maintenance_work_mem after %.0f tuples",
					tuples),
			 errdetail("Building will take significantly more time."),
			 errhint("Increase maintenance_work_mem to speed up builds.")));
}

/* ---------- loading tuples ---------- */

/* The value as the index stores it, or NULL if it is not indexed. */
static float *
prepare_value(BuildState *bs, Datum value)
{
	Vector	   *v = DatumGetVector(value);

	if (v->dim != bs->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("expected %d dimensions, not %d", bs->dim, v->dim)));
	return HnswPrepareValue(&bs->dist, v, bs->scratch) ? bs->scratch : NULL;
}

/* Link what the arena holds, in random order, and write it out. */
static void
link_and_flush(BuildState *bs)
{
	int32	   *order = HnswMemGraphShuffledOrder(&bs->graph);

	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, HNSW_PHASE_GRAPH);
	HnswMemGraphLinkAll(&bs->graph, order, true);
	pfree(order);
	flush_graph(bs);
}

static void
build_callback(Relation index, ItemPointer tid, Datum *values, bool *isnull,
			   bool tupleIsAlive, void *state)
{
	BuildState *bs = state;
	MemoryContext old;
	float	   *value;

	if (isnull[0])
		return;
	old = MemoryContextSwitchTo(bs->tmp_cxt);
	value = prepare_value(bs, values[0]);
	if (value != NULL)
	{
		if (!bs->on_disk && !HnswMemGraphAdd(&bs->graph, value, tid))
		{
			/* the arena is full: finish the graph, go on on disk */
			report_overflow(bs->indtuples);
			MemoryContextSwitchTo(old);
			link_and_flush(bs);
			MemoryContextSwitchTo(bs->tmp_cxt);
			bs->on_disk = true;
			pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, HNSW_PHASE_LOAD);
		}
		if (bs->on_disk)
			HnswInsertOnDisk(index, value, tid, &bs->dist, true);
		bs->indtuples++;
		pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, bs->indtuples);
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(bs->tmp_cxt);
}

static void
init_build_state(BuildState *bs, Relation heap, Relation index, IndexInfo *info)
{
	memset(bs, 0, sizeof(BuildState));
	bs->heap = heap;
	bs->index = index;
	bs->info = info;
	bs->dim = index_dimensions(index);
	bs->m = HnswGetM(index);
	bs->ef_construction = HnswGetEfConstruction(index);
	check_options(bs->m, bs->ef_construction);
	HnswInitDistance(index, &bs->dist);
	bs->scratch = palloc(sizeof(float) * bs->dim);
	bs->tmp_cxt = AllocSetContextCreate(CurrentMemoryContext, "hnsw build tuple",
										ALLOCSET_DEFAULT_SIZES);
}

/* ---------- parallel linking ---------- */

void
HnswParallelBuildMain(dsm_segment *seg, shm_toc *toc)
{
	HnswBuildShared *shared = shm_toc_lookup(toc, HNSW_KEY_SHARED, false);
	char	   *arena = shm_toc_lookup(toc, HNSW_KEY_ARENA, false);
	int32	   *order = shm_toc_lookup(toc, HNSW_KEY_ORDER, false);
	char	   *query = shm_toc_lookup(toc, HNSW_KEY_QUERY, true);
	Relation	index;
	HnswDistance dist;
	HnswMemGraph graph;

	if (query)
	{
		debug_query_string = query;
		pgstat_report_activity(STATE_RUNNING, query);
	}
	/* the leader holds the real locks; we are in its lock group */
	index = index_open(shared->indexrelid, AccessShareLock);
	HnswInitDistance(index, &dist);
	HnswMemGraphAttach(&graph, &shared->graph, arena, shared->dim, shared->m,
					   shared->ef_construction, &dist, true);
	HnswMemGraphLinkAll(&graph, order, false);
	index_close(index, AccessShareLock);
}

/*
 * Link the stored elements with `nworkers` workers plus the leader, then
 * write the graph.  Returns false, having done nothing, if no shared memory
 * segment could be had.  The arena is copied into the segment: a moment's
 * memcpy, and the heap scan stays simple and serial.
 */
static bool
link_parallel(BuildState *bs, int nworkers)
{
	ParallelContext *pcxt;
	int			count = HnswMemGraphCount(&bs->graph);
	Size		used = HnswMemGraphUsed(&bs->graph);
	HnswBuildShared *shared;
	char	   *arena;
	int32	   *order;
	int32	   *local_order;

	EnterParallelMode();
	pcxt = CreateParallelContext("agentmem", "HnswParallelBuildMain", nworkers);
	shm_toc_estimate_chunk(&pcxt->estimator, sizeof(HnswBuildShared));
	shm_toc_estimate_chunk(&pcxt->estimator, used);
	shm_toc_estimate_chunk(&pcxt->estimator, sizeof(int32) * count);
	if (debug_query_string)
		shm_toc_estimate_chunk(&pcxt->estimator, strlen(debug_query_string) + 1);
	shm_toc_estimate_keys(&pcxt->estimator, 4);
	InitializeParallelDSM(pcxt);
	if (pcxt->seg == NULL)
	{
		DestroyParallelContext(pcxt);
		ExitParallelMode();
		return false;
	}

	shared = shm_toc_allocate(pcxt->toc, sizeof(HnswBuildShared));
	shared->indexrelid = RelationGetRelid(bs->index);
	shared->dim = bs->dim;
	shared->m = bs->m;
	shared->ef_construction = bs->ef_construction;
	arena = shm_toc_allocate(pcxt->toc, used);
	HnswMemGraphShare(&bs->graph, &shared->graph, arena);
	order = shm_toc_allocate(pcxt->toc, sizeof(int32) * count);
	local_order = HnswMemGraphShuffledOrder(&bs->graph);
	memcpy(order, local_order, sizeof(int32) * count);
	pfree(local_order);
	shm_toc_insert(pcxt->toc, HNSW_KEY_SHARED, shared);
	shm_toc_insert(pcxt->toc, HNSW_KEY_ARENA, arena);
	shm_toc_insert(pcxt->toc, HNSW_KEY_ORDER, order);
	if (debug_query_string)
	{
		char	   *query = shm_toc_allocate(pcxt->toc, strlen(debug_query_string) + 1);

		strcpy(query, debug_query_string);
		shm_toc_insert(pcxt->toc, HNSW_KEY_QUERY, query);
	}

	/* the leader works on the shared copy too, then writes it out */
	HnswMemGraphAttach(&bs->graph, &shared->graph, arena, bs->dim, bs->m,
					   bs->ef_construction, &bs->dist, true);
	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, HNSW_PHASE_GRAPH);
	LaunchParallelWorkers(pcxt);
	HnswMemGraphLinkAll(&bs->graph, order, true);
	WaitForParallelWorkersToFinish(pcxt);
	flush_graph(bs);
	DestroyParallelContext(pcxt);
	ExitParallelMode();
	return true;
}

/* ---------- entry points ---------- */

IndexBuildResult *
hnswbuild(Relation heap, Relation index, IndexInfo *info)
{
	BuildState	bs;
	IndexBuildResult *result;
	double		reltuples;
	Size		arena_size = HnswGraphArenaSize((Size) maintenance_work_mem * 1024);
	HnswGraphShared *sh = palloc(sizeof(HnswGraphShared));
	char	   *arena;
	AgentmemTimer timer;

	AgentmemTimerStart(&timer);
	if (RelationGetNumberOfBlocks(index) != 0)
		elog(ERROR, "index \"%s\" already contains data", RelationGetRelationName(index));
	init_build_state(&bs, heap, index, info);
	write_meta(index, MAIN_FORKNUM, bs.dim, bs.m, bs.ef_construction);

	/* the arena is touched only as far as it is used */
	arena = MemoryContextAllocHuge(CurrentMemoryContext, arena_size);
	HnswGraphSharedInit(sh, arena_size, bs.dim, bs.m);
	HnswMemGraphAttach(&bs.graph, sh, arena, bs.dim, bs.m, bs.ef_construction,
					   &bs.dist, false);

	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, HNSW_PHASE_LOAD);
	if (heap->rd_rel->reltuples > 0)
		pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_TOTAL,
									 heap->rd_rel->reltuples);
	reltuples = table_index_build_scan(heap, index, info, true, true,
									   build_callback, &bs, NULL);
	if (!bs.on_disk)
	{
		int			count = HnswMemGraphCount(&bs.graph);
		int			nworkers = count < HNSW_MIN_PARALLEL_ELEMENTS ? 0 :
			plan_create_index_workers(RelationGetRelid(heap), RelationGetRelid(index));

		pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_TOTAL, count);
		if (nworkers == 0 || !link_parallel(&bs, nworkers))
			link_and_flush(&bs);
	}
	pfree(arena);
	MemoryContextDelete(bs.tmp_cxt);

	result = palloc(sizeof(IndexBuildResult));
	result->heap_tuples = reltuples;
	result->index_tuples = bs.indtuples;
	AgentmemTimerRecord(&timer, AGENTMEM_OP_HNSW_BUILD);
	return result;
}

/* Unlogged tables: the init fork holds an empty index. */
void
hnswbuildempty(Relation index)
{
	int			dim = index_dimensions(index);
	int			m = HnswGetM(index);
	int			efc = HnswGetEfConstruction(index);

	check_options(m, efc);
	write_meta(index, INIT_FORKNUM, dim, m, efc);
}
