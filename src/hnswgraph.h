/*
 * hnswgraph.h
 *		The in-memory HNSW graph used by CREATE INDEX.
 */
#ifndef AGENTMEM_HNSWGRAPH_H
#define AGENTMEM_HNSWGRAPH_H

#include "hnsw.h"

typedef struct HnswMemElement
{
	ItemPointerData heaptid;
	uint8		level;
	float	   *vec;
	int32	   *counts;			/* neighbours used, per layer */
	int32	   *nbrs;			/* HNSW_NEIGHBOR_SLOTS(m, level) indexes */
	float	   *ndist;			/* distance to each neighbour, ascending */
	bool	   *accepted;		/* passed the heuristic (else a fill link) */
} HnswMemElement;

typedef struct HnswMemGraph
{
	MemoryContext cxt;
	int			dim;
	int			m;
	int			ef_construction;
	HnswDistance dist;
	HnswMemElement *elements;
	int			count;
	int			capacity;
	int			entry;			/* index of the entry point, or -1 */
	HnswSearchState search;		/* reused by every insert */
} HnswMemGraph;

/* Where each element and its neighbour tuple go on disk. */
typedef struct HnswLayout
{
	int		   *order;			/* elements in write order */
	ItemPointerData *tids;		/* element tuple, by element index */
	ItemPointerData *ntids;		/* neighbour tuple, by element index */
} HnswLayout;

extern void HnswMemGraphInit(HnswMemGraph *g, MemoryContext cxt, int dim, int m,
							 int ef_construction, const HnswDistance *dist);
extern void HnswMemGraphInsert(HnswMemGraph *g, const float *vec, ItemPointer heaptid);
extern int	HnswMemGraphEnsureReachable(HnswMemGraph *g);
extern void HnswMemGraphLayout(HnswMemGraph *g, HnswLayout *layout);
extern void HnswMemGraphWrite(HnswMemGraph *g, HnswLayout *layout, Relation index);

/* hnswutils.c: Algorithm 4, shared by the build and on-disk inserts */
typedef float (*HnswPairDistanceFn) (void *arg, int i, int j);
extern int	HnswSelectNeighbors(const HnswCandidate *sorted, int n, int max,
								HnswPairDistanceFn pair, void *arg, int *chosen,
								int *naccepted);

#endif							/* AGENTMEM_HNSWGRAPH_H */
