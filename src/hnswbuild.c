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
 */
#include "postgres.h"

#include <math.h>

#include "access/tableam.h"
#include "access/xloginsert.h"
#include "catalog/index.h"
#include "commands/progress.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/bufmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "hnsw.h"
#include "hnswgraph.h"
#include "stats.h"

typedef struct BuildState
{
	Relation	heap;
	Relation	index;
	HnswDistance dist;
	int			dim;
	int			m;
	int			ef_construction;
	HnswMemGraph graph;
	MemoryContext graph_cxt;
	MemoryContext tmp_cxt;
	Size		mem_limit;
	bool		on_disk;		/* graph written; inserting on disk now */
	double		reltuples;
	double		indtuples;
	float	   *scratch;
} BuildState;

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

/* ---------- writing the graph ---------- */

static void
write_meta(Relation index, ForkNumber fork, int dim, int m, int efc,
		   ItemPointer entry, int entry_level, BlockNumber last)
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
	meta->entry_blkno = entry ? ItemPointerGetBlockNumber(entry) : InvalidBlockNumber;
	meta->entry_offno = entry ? ItemPointerGetOffsetNumber(entry) : InvalidOffsetNumber;
	meta->entry_level = entry ? entry_level : -1;
	meta->insert_blkno = last;
	((PageHeader) page)->pd_lower =
		((char *) meta + sizeof(HnswMetaPageData)) - (char *) page;
	MarkBufferDirty(buf);
	if (fork == INIT_FORKNUM)
		log_newpage_buffer(buf, true);
	UnlockReleaseBuffer(buf);
}

/* Write every page of the laid-out graph, then the metapage's entry. */
static void
flush_graph(BuildState *bs)
{
	HnswMemGraph *g = &bs->graph;
	HnswLayout	layout;
	ItemPointerData entry;

	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, HNSW_PHASE_WRITE);
	HnswMemGraphEnsureReachable(g);
	HnswMemGraphLayout(g, &layout);
	HnswMemGraphWrite(g, &layout, bs->index);
	ItemPointerSetInvalid(&entry);
	if (g->entry >= 0)
		entry = layout.tids[g->entry];
	/* the metapage was reserved as block 0 before the data pages */
	{
		Buffer		buf = ReadBuffer(bs->index, HNSW_METAPAGE_BLKNO);
		HnswMetaPage meta;

		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		meta = HnswPageGetMeta(BufferGetPage(buf));
		if (g->entry >= 0)
		{
			meta->entry_blkno = ItemPointerGetBlockNumber(&entry);
			meta->entry_offno = ItemPointerGetOffsetNumber(&entry);
			meta->entry_level = g->elements[g->entry].level;
		}
		meta->insert_blkno = RelationGetNumberOfBlocks(bs->index) - 1;
		MarkBufferDirty(buf);
		UnlockReleaseBuffer(buf);
	}
	if (RelationNeedsWAL(bs->index))
		log_newpage_range(bs->index, MAIN_FORKNUM, 0,
						  RelationGetNumberOfBlocks(bs->index), true);
}

/* ---------- loading tuples ---------- */

static void
switch_to_disk(BuildState *bs)
{
	ereport(NOTICE,
			(errmsg("hnsw graph no longer fits into maintenance_work_mem after %.0f tuples",
					bs->indtuples),
			 errdetail("Building will take significantly more time."),
			 errhint("Increase maintenance_work_mem to speed up builds.")));
	flush_graph(bs);
	MemoryContextDelete(bs->graph_cxt);
	bs->graph_cxt = NULL;
	bs->on_disk = true;
}

static void
build_callback(Relation index, ItemPointer tid, Datum *values, bool *isnull,
			   bool tupleIsAlive, void *state)
{
	BuildState *bs = state;
	MemoryContext old;
	Vector	   *v;

	if (isnull[0])
		return;
	old = MemoryContextSwitchTo(bs->tmp_cxt);
	v = DatumGetVector(values[0]);
	if (v->dim != bs->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("expected %d dimensions, not %d", bs->dim, v->dim)));
	if (HnswPrepareValue(&bs->dist, v, bs->scratch))
	{
		if (bs->on_disk)
			HnswInsertOnDisk(index, bs->scratch, tid, &bs->dist, true);
		else
		{
			MemoryContextSwitchTo(bs->graph_cxt);
			HnswMemGraphInsert(&bs->graph, bs->scratch, tid);
			if (MemoryContextMemAllocated(bs->graph_cxt, true) > bs->mem_limit)
				switch_to_disk(bs);
		}
		bs->indtuples++;
		pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, bs->indtuples);
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(bs->tmp_cxt);
}

static void
init_build_state(BuildState *bs, Relation heap, Relation index)
{
	memset(bs, 0, sizeof(BuildState));
	bs->heap = heap;
	bs->index = index;
	bs->dim = index_dimensions(index);
	bs->m = HnswGetM(index);
	bs->ef_construction = HnswGetEfConstruction(index);
	check_options(bs->m, bs->ef_construction);
	HnswInitDistance(index, &bs->dist);
	bs->mem_limit = (Size) maintenance_work_mem * 1024;
	bs->scratch = palloc(sizeof(float) * bs->dim);
	bs->graph_cxt = AllocSetContextCreate(CurrentMemoryContext, "hnsw build graph",
										  ALLOCSET_DEFAULT_SIZES);
	bs->tmp_cxt = AllocSetContextCreate(CurrentMemoryContext, "hnsw build tuple",
										ALLOCSET_DEFAULT_SIZES);
	HnswMemGraphInit(&bs->graph, bs->graph_cxt, bs->dim, bs->m,
					 bs->ef_construction, &bs->dist);
}

IndexBuildResult *
hnswbuild(Relation heap, Relation index, IndexInfo *info)
{
	BuildState	bs;
	IndexBuildResult *result;
	AgentmemTimer timer;

	AgentmemTimerStart(&timer);
	if (RelationGetNumberOfBlocks(index) != 0)
		elog(ERROR, "index \"%s\" already contains data", RelationGetRelationName(index));
	init_build_state(&bs, heap, index);

	/* block 0: the metapage, entry filled in when the graph is written */
	write_meta(index, MAIN_FORKNUM, bs.dim, bs.m, bs.ef_construction,
			   NULL, -1, HNSW_METAPAGE_BLKNO);

	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, HNSW_PHASE_LOAD);
	if (heap->rd_rel->reltuples > 0)
		pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_TOTAL,
									 heap->rd_rel->reltuples);
	bs.reltuples = table_index_build_scan(heap, index, info, true, true,
										  build_callback, &bs, NULL);
	if (!bs.on_disk)
	{
		flush_graph(&bs);
		MemoryContextDelete(bs.graph_cxt);
	}
	MemoryContextDelete(bs.tmp_cxt);

	result = palloc(sizeof(IndexBuildResult));
	result->heap_tuples = bs.reltuples;
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
	write_meta(index, INIT_FORKNUM, dim, m, efc, NULL, -1, HNSW_METAPAGE_BLKNO);
}
