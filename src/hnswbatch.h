/*
 * hnswbatch.h
 *		The part of an hnsw graph that a batched insert holds in memory.
 *
 * hnswbatchgraph.c reads it from the index a page at a time and searches
 * it; hnswbatch.c links a batch's rows into it and writes it back.
 */
#ifndef AGENTMEM_HNSWBATCH_H
#define AGENTMEM_HNSWBATCH_H

#include "hnsw.h"

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
	bool		fresh;			/* new in this batch, not on disk yet: no TIDs */
} BNode;

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
	struct tidmap_hash *map;	/* element TID -> node number */
	bool	   *loaded;			/* by block: page read */
	bool	   *tracked;		/* by block: memory holds something of it */
	XLogRecPtr *lsn;			/* by block, if tracked: the LSN memory saw */
	BlockNumber nloaded;		/* length of the three */
	bool		stale;			/* a page changed under the batch: do not keep */
	HnswVisited *visited;		/* dense, by node number */
	int32		entry;			/* -1: empty graph */
	bool		entry_moved;	/* the metapage's entry point is behind */
	bool		fsm_empty;		/* no page with room left for a new element */
	int			insert_room;	/* bytes left on the last page; -1: not read */
	int			page_writes;	/* page records written (the crash tests count them) */
	bool		lost_returnable;	/* a refresh saw an element deleted */
	/* the batch's new elements, in order, until written (hnswbatch.c) */
	int32	   *fresh;
	ItemPointerData *fresh_heaptids;
	int			nfresh;
	int			fresh_cap;
	/* distances to the row being linked, by node, valid when memo_epoch = epoch */
	const float *row;
	float	   *memo;
	uint32	   *memo_epoch;
	uint32		epoch;
	int32		nmemo;
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

static inline float
node_distance(BatchGraph *g, const float *a, int32 j)
{
	return HnswDistanceCompute(&g->base.dist, a, node(g, j)->vec, g->base.dim);
}

extern void BatchMemoGrow(BatchGraph *g, int32 j);

/*
 * The distance from the row being linked to node j, which its search most
 * likely computed already: its back-links need the distance from the row
 * to every member of its neighbours' lists, and the search expanded the
 * same neighbourhood.  (Distances are symmetric to the bit: the kernels
 * multiply pairwise and sum in one order.)
 */
static inline void
memo_put(BatchGraph *g, int32 j, float d)
{
	if (j >= g->nmemo)
		BatchMemoGrow(g, j);
	g->memo[j] = d;
	g->memo_epoch[j] = g->epoch;
}

static inline float
distance_to_row(BatchGraph *g, int32 j)
{
	float		d;

	if (j < g->nmemo && g->memo_epoch[j] == g->epoch)
		return g->memo[j];
	d = node_distance(g, g->row, j);
	memo_put(g, j, d);
	return d;
}

typedef struct PairArg
{
	BatchGraph *g;
	const HnswCandidate *cands;
} PairArg;

extern void BatchTrackPage(BatchGraph *g, BlockNumber blkno, XLogRecPtr before,
						   XLogRecPtr after);
extern int	BatchGraphRefresh(BatchGraph *g);
extern void BatchGraphVerify(BatchGraph *g);
extern void BatchGraphInit(BatchGraph *g, Relation index, const HnswMetaPageData *meta,
						   const HnswDistance *dist);
extern int32 BatchNodeForTid(BatchGraph *g, ItemPointer tid);
extern int32 BatchNewNode(BatchGraph *g);
extern void BatchSetTid(BatchGraph *g, int32 j, ItemPointer tid);
extern void BatchNewLinks(BatchGraph *g, BNode *n);
extern void BatchSetHot(BatchGraph *g, int32 j);
extern bool BatchEnsureVector(BatchGraph *g, int32 j);
extern bool BatchEnsureLinks(BatchGraph *g, int32 j);
extern float BatchPairDistance(void *arg, int i, int j);
extern HnswCandidate BatchNodeCandidate(BatchGraph *g, const float *query, int32 j);
extern void BatchFindLinks(BatchGraph *g, const float *value, int level,
						   HnswCandidate (*links)[HNSW_MAX_M * 2], int *nlinks);

#endif							/* AGENTMEM_HNSWBATCH_H */
