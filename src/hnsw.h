/*
 * hnsw.h
 *		The hnsw index access method: on-disk format and shared declarations.
 *
 * The index is a Hierarchical Navigable Small World graph (Malkov and
 * Yashunin, "Efficient and robust approximate nearest neighbor search using
 * HNSW graphs", 2016/2018) stored in ordinary buffer-managed pages.
 *
 * Layout (format version HNSW_FORMAT_VERSION):
 *
 *	block 0		metapage: HnswMetaPageData after the page header
 *	block 1..	element pages: pairs of tuples, an element tuple
 *				(HnswElementTupleData: heap TID, level, flags, the vector)
 *				and its neighbour tuple (HnswNeighborTupleData: the element's
 *				neighbour lists for layers 0..level, fixed size so it is
 *				updated in place).  The neighbour tuple is placed right after
 *				its element on the same page when both fit, else on a later
 *				page; the element tuple records where.
 *
 * Format 2 added the verdict bits of neighbour slots (below); an index of
 * format 1 must be rebuilt with REINDEX.
 *
 * Every page has an HnswPageOpaqueData special area.  Neighbour lists hold
 * the TIDs of element tuples; an empty slot is an invalid TID.  A vector is
 * stored normalised when the operator class is cosine, so the graph can use
 * the inner product throughout.
 *
 * All changes after the build are WAL-logged with GenericXLog; the build
 * writes its pages unlogged and logs the whole relation at the end.
 */
#ifndef AGENTMEM_HNSW_H
#define AGENTMEM_HNSW_H

#include "postgres.h"

#include "access/amapi.h"
#include "access/genam.h"
#include "access/generic_xlog.h"
#include "nodes/execnodes.h"
#include "storage/bufmgr.h"
#include "utils/relcache.h"

#include "distance.h"
#include "vector.h"

#define HNSW_MAGIC				0x414D4853	/* "AMHS" */
#define HNSW_FORMAT_VERSION		2
#define HNSW_METAPAGE_BLKNO		0
#define HNSW_PAGE_ID			0xFF91

/* reloptions and their limits */
#define HNSW_DEFAULT_M			16
#define HNSW_MIN_M				2
#define HNSW_MAX_M				100
#define HNSW_DEFAULT_EF_CONSTRUCTION 64
#define HNSW_MIN_EF_CONSTRUCTION 4
#define HNSW_MAX_EF_CONSTRUCTION 1000
#define HNSW_DEFAULT_EF_SEARCH	40
#define HNSW_MAX_EF_SEARCH		1000
#define HNSW_MAX_LEVEL			16
#define HNSW_MAX_DIM			2000

/* operator class support functions */
#define HNSW_DISTANCE_PROC		1
#define HNSW_NORM_PROC			2

/* progress phases for pg_stat_progress_create_index */
#define HNSW_PHASE_LOAD			2
#define HNSW_PHASE_GRAPH		3
#define HNSW_PHASE_WRITE		4

typedef enum HnswIterativeScan
{
	HNSW_ITERATIVE_OFF,
	HNSW_ITERATIVE_RELAXED,
	HNSW_ITERATIVE_STRICT
} HnswIterativeScan;

/* settings (hnsw.c) */
extern int	hnsw_ef_search;
extern int	hnsw_iterative_scan;
extern int	hnsw_max_scan_tuples;
extern int	hnsw_batch_graph_cache;
extern int	hnsw_test_crash_after_page_writes;
extern int	hnsw_test_fail_after_page_writes;
extern bool hnsw_test_verify_kept_graph;

/* ---------- on-disk structures ---------- */

typedef struct HnswMetaPageData
{
	uint32		magic;
	uint32		version;
	uint32		dimensions;
	uint16		m;
	uint16		ef_construction;
	BlockNumber entry_blkno;	/* entry point element, or invalid */
	OffsetNumber entry_offno;
	int16		entry_level;
	BlockNumber insert_blkno;	/* last page, where inserts try first */

	/*
	 * Nonzero while a batch writes its changed lists (hnswbatch.c).  Its
	 * records can only go one page at a time, and a list that dropped an old
	 * neighbour may reach disk before the lists that lead to that neighbour
	 * another way; so a batch cut short by a crash or an error leaves this
	 * set, and whoever next gets the update lock relinks what is
	 * unreachable (hnswrelink.c).  Zero in indexes older than the field:
	 * the page's unused space always was.
	 */
	uint32		batch_writing;
} HnswMetaPageData;

typedef HnswMetaPageData *HnswMetaPage;

typedef struct HnswPageOpaqueData
{
	BlockNumber next_blkno;		/* unused, kept for tools that walk pages */
	uint16		flags;
	uint16		page_id;		/* HNSW_PAGE_ID, for pg_filedump */
} HnswPageOpaqueData;

typedef HnswPageOpaqueData *HnswPageOpaque;

#define HnswPageGetOpaque(page) ((HnswPageOpaque) PageGetSpecialPointer(page))
#define HnswPageGetMeta(page) ((HnswMetaPage) PageGetContents(page))

#define HNSW_ELEMENT_TUPLE		1
#define HNSW_NEIGHBOR_TUPLE		2

/* element flags */
#define HNSW_ELEMENT_DELETED	0x01	/* heap row gone; still traversable */

typedef struct HnswElementTupleData
{
	uint8		type;			/* HNSW_ELEMENT_TUPLE */
	uint8		level;
	uint8		flags;
	uint8		unused;
	ItemPointerData heaptid;
	ItemPointerData neighbortid;
	float		x[FLEXIBLE_ARRAY_MEMBER];	/* metapage's dimensions */
} HnswElementTupleData;

typedef HnswElementTupleData *HnswElementTuple;

/*
 * Neighbour lists: element TIDs, nearest first is not guaranteed.  No
 * distances are stored, which keeps the index smaller than pgvector's; an
 * insert that must prune a full list reads the vectors it needs.
 *
 * A slot may also carry the neighbour heuristic's verdict on its link
 * (HNSW_SLOT_ACCEPTED or HNSW_SLOT_REJECTED in the top bits of the offset,
 * which real offsets never reach).  Writers that know the verdicts (the
 * build, batched inserts) store them; others write plain TIDs, meaning
 * "unknown".  A list whose every link carries a verdict can take a new
 * link incrementally, without re-running the heuristic over its members.
 * Readers take slots through HnswSlotTid.
 */
typedef struct HnswNeighborTupleData
{
	uint8		type;			/* HNSW_NEIGHBOR_TUPLE */
	uint8		level;			/* same as the element's */
	uint16		nslots;
	ItemPointerData slots[FLEXIBLE_ARRAY_MEMBER];
} HnswNeighborTupleData;

typedef HnswNeighborTupleData *HnswNeighborTuple;

#define HNSW_SLOT_ACCEPTED		0x8000
#define HNSW_SLOT_REJECTED		0x4000
#define HNSW_SLOT_VERDICT		(HNSW_SLOT_ACCEPTED | HNSW_SLOT_REJECTED)

StaticAssertDecl(MaxOffsetNumber < HNSW_SLOT_REJECTED,
				 "verdict bits must lie above every offset number");

/* The element TID of a slot, without its verdict. */
static inline ItemPointerData
HnswSlotTid(const ItemPointerData *slot)
{
	ItemPointerData tid = *slot;

	tid.ip_posid &= ~HNSW_SLOT_VERDICT;
	return tid;
}

/* A slot's verdict bits: 0 (unknown, or an empty slot) or one flag. */
static inline uint16
HnswSlotVerdict(const ItemPointerData *slot)
{
	return slot->ip_posid & HNSW_SLOT_VERDICT;
}

/* Store a link with its verdict. */
static inline void
HnswSlotSet(ItemPointerData *slot, const ItemPointerData *tid, bool accepted)
{
	*slot = HnswSlotTid(tid);
	slot->ip_posid |= accepted ? HNSW_SLOT_ACCEPTED : HNSW_SLOT_REJECTED;
}

/* Copy n slots as plain TIDs. */
static inline void
HnswSlotTids(ItemPointerData *out, const ItemPointerData *slots, int n)
{
	for (int i = 0; i < n; i++)
		out[i] = HnswSlotTid(&slots[i]);
}

#define HNSW_ELEMENT_TUPLE_SIZE(dim) \
	MAXALIGN(offsetof(HnswElementTupleData, x) + sizeof(float) * (dim))
#define HNSW_LAYER_SLOTS(m, layer) ((layer) == 0 ? 2 * (m) : (m))
#define HNSW_NEIGHBOR_SLOTS(m, level) (2 * (m) + (level) * (m))
#define HNSW_NEIGHBOR_TUPLE_SIZE(m, level) \
	MAXALIGN(offsetof(HnswNeighborTupleData, slots) + \
			 sizeof(ItemPointerData) * HNSW_NEIGHBOR_SLOTS(m, level))
/* first slot of a layer: layer 0 has 2m slots, every other layer m */
#define HNSW_LAYER_START(m, layer) ((layer) == 0 ? 0 : (m) * ((layer) + 1))

#define HNSW_MAX_TUPLE_SPACE \
	(BLCKSZ - MAXALIGN(SizeOfPageHeaderData) - \
	 MAXALIGN(sizeof(HnswPageOpaqueData)) - 2 * sizeof(ItemIdData))

/* ---------- in-memory helpers ---------- */

/* MurmurHash3's 64-bit finaliser: cheap and mixes all bits (hash tables). */
static inline uint32
HnswHash64(uint64 k)
{
	k ^= k >> 33;
	k *= UINT64CONST(0xff51afd7ed558ccd);
	k ^= k >> 33;
	k *= UINT64CONST(0xc4ceb9fe1a85ec53);
	k ^= k >> 33;
	return (uint32) k;
}

/* TIDs packed into 64 bits: the search's element identifiers on disk. */
static inline uint64
HnswPackTid(BlockNumber blkno, OffsetNumber offno)
{
	return ((uint64) blkno << 16) | offno;
}

static inline uint64
HnswPackItemPointer(ItemPointer tid)
{
	return HnswPackTid(ItemPointerGetBlockNumberNoCheck(tid),
					   ItemPointerGetOffsetNumberNoCheck(tid));
}

static inline void
HnswUnpackTid(uint64 packed, ItemPointer tid)
{
	ItemPointerSet(tid, (BlockNumber) (packed >> 16), (OffsetNumber) (packed & 0xFFFF));
}

/*
 * How an index measures distance: a kernel called through a plain function
 * pointer, never fmgr, plus whether vectors are normalised first (cosine).
 * Distances are the operator's value or a monotone transform of it (squared
 * L2, 1 - cos as negative inner product + 1).
 */
typedef enum HnswMetric
{
	HNSW_METRIC_L2,
	HNSW_METRIC_IP,
	HNSW_METRIC_COSINE,
	HNSW_METRIC_L1
} HnswMetric;

typedef struct HnswDistance
{
	HnswMetric	metric;
	DistanceFn	kernel;
	bool		negate;			/* inner product: smaller is nearer */
	bool		normalize;
} HnswDistance;

static inline float
HnswDistanceCompute(const HnswDistance *d, const float *a, const float *b, int dim)
{
	float		r = d->kernel(a, b, dim);

	return d->negate ? -r : r;
}

/* A graph node met by a search: its identity, neighbour tuple and distance. */
typedef struct HnswCandidate
{
	uint64		id;				/* packed element TID, or in-memory index */
	uint64		ref;			/* packed neighbour TID (disk) */
	uint64		heaptid;		/* packed heap TID (disk) */
	float		distance;
	bool		returnable;		/* not deleted */
	uint8		level;
} HnswCandidate;

/*
 * Nodes seen by one search: stamps indexed by a dense node number, or a
 * hash of ids (hnswsearch.c).  Defined here so that the dense test, on the
 * innermost loop of every search, is inlined.
 */
typedef struct HnswVisited
{
	struct visitedhash_hash *hash;	/* NULL when dense */
	uint32	   *stamps;
	uint32		nstamps;
	uint32		epoch;
} HnswVisited;
typedef void (*HnswEmitFn) (void *arg, const HnswCandidate *c);

/*
 * The graph as the one search implementation sees it.  expand() reports
 * every not-yet-visited neighbour of `c` in `layer`, marking it visited and
 * computing its distance to the query; the in-memory build graph and the
 * on-disk index each provide one.
 */
typedef struct HnswGraph
{
	void		(*expand) (struct HnswGraph *g, const HnswCandidate *c, int layer,
						   HnswVisited *visited, HnswEmitFn emit, void *arg);
	/* optional: start loading what expanding `id` will read */
	void		(*prefetch) (struct HnswGraph *g, uint64 id);
	const float *query;
	int			dim;
	HnswDistance dist;
} HnswGraph;

/* The graph on disk; callers allocate it, HnswDiskGraphInit fills it. */
typedef struct HnswDiskGraph
{
	HnswGraph	base;
	Relation	index;
	int			m;
	ItemPointerData *todo;		/* scratch: unvisited neighbours */
} HnswDiskGraph;

typedef struct HnswOptions
{
	int32		vl_len_;		/* varlena header (do not touch directly) */
	int			m;
	int			ef_construction;
} HnswOptions;

/* A growable array of candidates sorted or heaped by distance. */
typedef struct HnswHeap
{
	HnswCandidate *items;
	int			count;
	int			capacity;
} HnswHeap;

/* Search state that an iterative scan resumes from. */
typedef struct HnswSearchState
{
	HnswVisited *visited;
	HnswHeap	frontier;		/* min-heap: not yet expanded */
	HnswHeap	results;		/* max-heap: the ef nearest returnable */
	HnswHeap	discarded;		/* min-heap: returnable, pushed out of results */
	bool		keep_discarded;
} HnswSearchState;

/* hnswsearch.c */
extern HnswVisited *HnswVisitedCreate(int expected);
extern HnswVisited *HnswVisitedCreateDense(int capacity);
extern bool HnswVisitedTestAndSetSlow(HnswVisited *v, uint64 id);
extern void HnswVisitedReset(HnswVisited *v);

/* Returns true if id had been visited already; marks it visited. */
static inline bool
HnswVisitedTestAndSet(HnswVisited *v, uint64 id)
{
	bool		found;

	if (v->hash != NULL || id >= v->nstamps)
		return HnswVisitedTestAndSetSlow(v, id);
	found = v->stamps[id] == v->epoch;
	v->stamps[id] = v->epoch;
	return found;
}
extern void HnswHeapInit(HnswHeap *h, int capacity);
extern void HnswHeapPushMin(HnswHeap *h, const HnswCandidate *c);
extern HnswCandidate HnswHeapPopMin(HnswHeap *h);
extern void HnswHeapPushMax(HnswHeap *h, const HnswCandidate *c);
extern HnswCandidate HnswHeapPopMax(HnswHeap *h);
extern void HnswSortCandidates(HnswCandidate *items, int n);
extern void HnswSearchStateInit(HnswSearchState *s, int ef, bool keep_discarded,
								HnswVisited *visited);
extern HnswCandidate HnswGreedySearch(HnswGraph *g, HnswVisited *visited,
									  HnswCandidate entry, int from_level,
									  int to_level);
extern void HnswSearchLayer(HnswGraph *g, HnswSearchState *s,
							const HnswCandidate *entries, int nentries,
							int ef, int layer);
extern void HnswSearchResume(HnswGraph *g, HnswSearchState *s, int ef);
extern int	HnswRandomLevel(int m);

/* hnswutils.c */
extern void HnswInitDistance(Relation index, HnswDistance *d);
extern void HnswGetDistance(Relation index, HnswDistance *d);
extern Buffer HnswReadBuffer(Relation index, BlockNumber blkno);
extern BlockNumber HnswRecentExport(Relation index, Buffer *out, BlockNumber max);
extern void HnswRecentImport(Relation index, const Buffer *in, BlockNumber n);
extern bool HnswPrepareValue(const HnswDistance *d, Vector *v, float *out);
extern void HnswInitPage(Page page);
extern void HnswReadMeta(Relation index, HnswMetaPageData *meta);
extern void HnswReadMetaLSN(Relation index, HnswMetaPageData *meta, XLogRecPtr *lsn);
extern int	HnswGetM(Relation index);
extern int	HnswGetEfConstruction(Relation index);
extern Buffer HnswNewBuffer(Relation index, ForkNumber fork);
extern void HnswDiskGraphInit(HnswDiskGraph *g, Relation index, const float *query,
							  int dim, const HnswDistance *dist);
extern void HnswDiskGraphRelease(HnswDiskGraph *g);
extern bool HnswLoadCandidate(Relation index, ItemPointer tid,
							  const HnswGraph *g, HnswCandidate *c);

/* hnsw.c */
extern bytea *hnswoptions(Datum reloptions, bool validate);
extern void HnswInitSettings(void);

/* AM callbacks */
extern IndexBuildResult *hnswbuild(Relation heap, Relation index, IndexInfo *info);
extern void hnswbuildempty(Relation index);
extern bool hnswinsert(Relation index, Datum *values, bool *isnull,
					   ItemPointer heap_tid, Relation heap,
					   IndexUniqueCheck checkUnique, bool indexUnchanged,
					   IndexInfo *indexInfo);
extern IndexBulkDeleteResult *hnswbulkdelete(IndexVacuumInfo *info,
											 IndexBulkDeleteResult *stats,
											 IndexBulkDeleteCallback callback,
											 void *callback_state);
extern IndexBulkDeleteResult *hnswvacuumcleanup(IndexVacuumInfo *info,
												IndexBulkDeleteResult *stats);

/* hnswvacuum.c: link every unreachable element, update lock held */
extern void HnswRelinkLocked(Relation index, BufferAccessStrategy bas);

/* hnswrelink.c: a batch cut short while writing its lists (batch_writing) */
extern void HnswSetBatchWriting(Page metapage, bool writing);
extern void HnswClearBatchWriting(Relation index);
extern bool HnswRelinkIfCutShort(Relation index);
extern void HnswFinishBatch(Relation index);
extern void HnswRequestRelink(Relation index);
extern IndexScanDesc hnswbeginscan(Relation index, int nkeys, int norderbys);
extern void hnswrescan(IndexScanDesc scan, ScanKey keys, int nkeys,
					   ScanKey orderbys, int norderbys);
extern bool hnswgettuple(IndexScanDesc scan, ScanDirection dir);
extern void hnswendscan(IndexScanDesc scan);

/* The chosen neighbours of a new element in one layer. */
typedef struct HnswLayerLinks
{
	int			n;
	ItemPointerData tids[HNSW_MAX_M * 2];
	float		dists[HNSW_MAX_M * 2];
	bool		accepted[HNSW_MAX_M * 2];	/* the heuristic's verdicts */
} HnswLayerLinks;

/* The pages one change wrote, with their LSNs just before and after it. */
typedef struct HnswPageChanges
{
	int			n;
	BlockNumber blkno[3];
	XLogRecPtr	before[3];
	XLogRecPtr	after[3];
} HnswPageChanges;

/* hnswinsert.c: insert one prepared value on disk (also used by the build) */
extern void HnswInsertOnDisk(Relation index, const float *value,
							 ItemPointer heaptid, const HnswDistance *dist,
							 bool building);
extern void HnswBuildTuples(int dim, int m, int level, const float *value,
							ItemPointer heaptid, const HnswLayerLinks *links,
							HnswElementTuple et, HnswNeighborTuple nt);
extern void HnswPlaceNewElement(Relation index, int dim, int m, int level,
								const float *value, ItemPointer heaptid,
								const HnswLayerLinks *links, bool new_entry,
								ItemPointer tid, ItemPointer ntid,
								HnswPageChanges *changes);

/* hnswbatch.c: inserts queued while a batch is open, linked together */
extern bool HnswBatchBegin(void);
extern bool HnswBatchIsOpen(void);
extern void HnswBatchEnd(void);
extern void HnswBatchAbandon(void);
extern bool HnswBatchQueue(Relation index, int dim, const float *value,
						   ItemPointer heaptid);
extern void HnswBatchFlushIndex(Relation index);

#endif							/* AGENTMEM_HNSW_H */
