/*
 * hnswgraph.h
 *		The in-memory HNSW graph used by CREATE INDEX.
 *
 * The graph lives in one arena addressed by offsets, so the same code
 * serves a serial build (arena in local memory) and a parallel build
 * (arena in the dynamic shared memory segment every participant maps at
 * its own address).  Elements are numbered densely in insertion order; a
 * registry maps numbers to arena offsets.
 */
#ifndef AGENTMEM_HNSWGRAPH_H
#define AGENTMEM_HNSWGRAPH_H

#include "port/atomics.h"
#include "storage/lwlock.h"

#include "hnsw.h"

/*
 * One element: this header, then the vector, the per-layer counts, the
 * neighbour numbers, their distances (ascending) and whether each link
 * passed the selection heuristic (else it is a fill link).
 */
typedef struct HnswMemElement
{
	ItemPointerData heaptid;
	uint8		level;
	LWLock		lock;			/* guards the lists in a parallel build */
} HnswMemElement;

/* The part of the graph shared by all participants. */
typedef struct HnswGraphShared
{
	Size		arena_size;
	pg_atomic_uint64 used;		/* bump allocator */
	pg_atomic_uint32 count;		/* elements registered */
	pg_atomic_uint32 overflowed;	/* arena full: stop adding */
	pg_atomic_uint32 next_link;	/* next position in the link order */
	uint32		capacity;		/* registry slots */
	int			lock_tranche;
	LWLock		entry_lock;		/* entry point, and top-level inserts */
	int32		entry;
} HnswGraphShared;

/* A participant's view of the graph. */
typedef struct HnswMemGraph
{
	HnswGraphShared *sh;
	char	   *arena;			/* registry first, then elements */
	Size	   *registry;		/* element number -> arena offset */
	bool		parallel;
	int			dim;
	int			m;
	int			ef_construction;
	HnswDistance dist;
	HnswSearchState search;		/* this participant's scratch */
} HnswMemGraph;

/* Where each element and its neighbour tuple go on disk. */
typedef struct HnswLayout
{
	int		   *order;			/* elements in write order */
	ItemPointerData *tids;		/* element tuple, by element number */
	ItemPointerData *ntids;		/* neighbour tuple, by element number */
} HnswLayout;

extern Size HnswGraphArenaSize(Size budget);
extern void HnswGraphSharedInit(HnswGraphShared *sh, Size arena_size, int dim,
								int m);
extern void HnswMemGraphAttach(HnswMemGraph *g, HnswGraphShared *sh, char *arena,
							   int dim, int m, int ef_construction,
							   const HnswDistance *dist, bool parallel);
extern bool HnswMemGraphAdd(HnswMemGraph *g, const float *vec, ItemPointer heaptid);
extern int32 *HnswMemGraphShuffledOrder(HnswMemGraph *g);
extern void HnswMemGraphLinkAll(HnswMemGraph *g, const int32 *order, bool report);
extern void HnswMemGraphShare(HnswMemGraph *src, HnswGraphShared *dst, char *dst_arena);
extern Size HnswMemGraphUsed(HnswMemGraph *g);
extern int	HnswMemGraphCount(HnswMemGraph *g);
extern ItemPointer HnswMemGraphHeapTid(HnswMemGraph *g, int id);
extern int	HnswMemGraphEnsureReachable(HnswMemGraph *g);
extern void HnswMemGraphLayout(HnswMemGraph *g, HnswLayout *layout);
extern void HnswMemGraphWrite(HnswMemGraph *g, HnswLayout *layout, Relation index);
extern int	HnswMemGraphEntryLevel(HnswMemGraph *g);

/* hnswutils.c: Algorithm 4, shared by the build and on-disk inserts */
typedef float (*HnswPairDistanceFn) (void *arg, int i, int j);
extern int	HnswSelectNeighbors(const HnswCandidate *sorted, int n, int max,
								HnswPairDistanceFn pair, void *arg, int *chosen,
								int *naccepted);

/*
 * hnswutils.c: a neighbour list in memory, nearest first, with each link's
 * heuristic verdict (accepted, or a fill link); the build and batched
 * inserts keep their lists this way.
 */
typedef struct HnswSortedList
{
	int32	   *ids;
	float	   *dist;
	bool	   *accepted;
	int			n;				/* links in use */
	int			cap;
} HnswSortedList;

/* distance from the element being linked to member `id` */
typedef float (*HnswMemberDistanceFn) (void *arg, int32 id);

extern void HnswSortedListInsert(HnswSortedList *l, int32 id, float dist, bool accepted);
extern void HnswSortedListRemove(HnswSortedList *l, int pos);
extern int32 HnswSortedListAdd(HnswSortedList *l, int32 q, float dist,
							   HnswMemberDistanceFn to_q, void *arg);

/* hnswutils.c: where a displaced link is adopted (adopt_displaced) */
extern int	HnswAdoptSlot(const float *dist, const bool *adopted, int n);

#endif							/* AGENTMEM_HNSWGRAPH_H */
