/*
 * hnsw.c
 *		The hnsw access method's handler, options, settings and costing.
 */
#include "postgres.h"

#include <math.h>

#include "access/reloptions.h"
#include "catalog/pg_opclass.h"
#include "commands/progress.h"
#include "commands/vacuum.h"
#include "optimizer/optimizer.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/selfuncs.h"
#include "utils/syscache.h"

#include "hnsw.h"

PG_FUNCTION_INFO_V1(hnswhandler);

int			hnsw_ef_search = HNSW_DEFAULT_EF_SEARCH;
int			hnsw_iterative_scan = HNSW_ITERATIVE_OFF;
int			hnsw_max_scan_tuples = 20000;
int			hnsw_batch_graph_cache = 32 * 1024;	/* kB */
int			hnsw_test_crash_after_page_writes = 0;
int			hnsw_test_fail_after_page_writes = 0;
bool		hnsw_test_verify_kept_graph = false;

static relopt_kind hnsw_relopt_kind;

static const struct config_enum_entry iterative_scan_options[] = {
	{"off", HNSW_ITERATIVE_OFF, false},
	{"relaxed_order", HNSW_ITERATIVE_RELAXED, false},
	{"strict_order", HNSW_ITERATIVE_STRICT, false},
	{NULL, 0, false}
};

/* Called from _PG_init: reloptions and the hnsw.* settings. */
void
HnswInitSettings(void)
{
	hnsw_relopt_kind = add_reloption_kind();
	add_int_reloption(hnsw_relopt_kind, "m",
					  "Maximum number of connections per element and layer",
					  HNSW_DEFAULT_M, HNSW_MIN_M, HNSW_MAX_M, AccessExclusiveLock);
	add_int_reloption(hnsw_relopt_kind, "ef_construction",
					  "Size of the candidate list when building the graph",
					  HNSW_DEFAULT_EF_CONSTRUCTION, HNSW_MIN_EF_CONSTRUCTION,
					  HNSW_MAX_EF_CONSTRUCTION, AccessExclusiveLock);

	DefineCustomIntVariable("hnsw.ef_search",
							"Size of the candidate list for hnsw index scans.",
							"Larger values give better recall and slower scans.",
							&hnsw_ef_search, HNSW_DEFAULT_EF_SEARCH, 1,
							HNSW_MAX_EF_SEARCH, PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomEnumVariable("hnsw.iterative_scan",
							 "Whether an hnsw scan goes on past ef_search rows.",
							 "With a filter, keeps searching until enough rows pass it.",
							 &hnsw_iterative_scan, HNSW_ITERATIVE_OFF,
							 iterative_scan_options, PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("hnsw.max_scan_tuples",
							"Most tuples an iterative hnsw scan visits.",
							NULL, &hnsw_max_scan_tuples, 20000, 1, INT_MAX,
							PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("hnsw.batch_graph_cache",
							"Memory a backend may keep the graph of its last batched insert in.",
							"The next remember() into the same index reuses it if no page "
							"changed meanwhile; 0 turns the reuse off.",
							&hnsw_batch_graph_cache, 32 * 1024, 0, MAX_KILOBYTES,
							PGC_USERSET, GUC_UNIT_KB, NULL, NULL, NULL);
	/* for the crash tests only (test/t/026_hnsw_batch_wal.t) */
	DefineCustomIntVariable("hnsw.test_crash_after_page_writes",
							"Test only: crash once a batch has written this many pages.",
							"0, the default, never crashes.",
							&hnsw_test_crash_after_page_writes, 0, 0, INT_MAX,
							PGC_SUSET, GUC_NOT_IN_SAMPLE | GUC_NO_SHOW_ALL,
							NULL, NULL, NULL);
	DefineCustomIntVariable("hnsw.test_fail_after_page_writes",
							"Test only: raise an error once a batch has written this many pages.",
							"0, the default, never does.",
							&hnsw_test_fail_after_page_writes, 0, 0, INT_MAX,
							PGC_SUSET, GUC_NOT_IN_SAMPLE | GUC_NO_SHOW_ALL,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("hnsw.test_verify_kept_graph",
							 "Test only: check a kept batch graph against the index before reusing it.",
							 NULL, &hnsw_test_verify_kept_graph, false,
							 PGC_SUSET, GUC_NOT_IN_SAMPLE | GUC_NO_SHOW_ALL,
							 NULL, NULL, NULL);
	MarkGUCPrefixReserved("hnsw");
}

bytea *
hnswoptions(Datum reloptions, bool validate)
{
	static const relopt_parse_elt tab[] = {
		{"m", RELOPT_TYPE_INT, offsetof(HnswOptions, m)},
		{"ef_construction", RELOPT_TYPE_INT, offsetof(HnswOptions, ef_construction)},
	};

	return (bytea *) build_reloptions(reloptions, validate, hnsw_relopt_kind,
									  sizeof(HnswOptions), tab, lengthof(tab));
}

/*
 * The planner should use the index only to answer ORDER BY distance LIMIT
 * k.  The scan does all its work before returning the first row, so the
 * startup cost is the total cost: about ef_search expansions, each
 * computing distances for a node's neighbours.
 */
static void
hnswcostestimate(PlannerInfo *root, IndexPath *path, double loop_count,
				 Cost *startup, Cost *total, Selectivity *selectivity,
				 double *correlation, double *pages)
{
	GenericCosts costs;
	double		visited;
	int			m = HNSW_DEFAULT_M;
	Relation	index;

	if (path->indexorderbys == NIL)
	{
		*startup = *total = get_float8_infinity();
		*selectivity = 0;
		*correlation = 0;
		*pages = 0;
		return;
	}

	index = index_open(path->indexinfo->indexoid, NoLock);
	m = HnswGetM(index);
	index_close(index, NoLock);

	visited = (double) hnsw_ef_search * m;
	MemSet(&costs, 0, sizeof(costs));
	costs.numIndexTuples = Min(visited, path->indexinfo->tuples);
	genericcostestimate(root, path, loop_count, &costs);

	*startup = costs.indexTotalCost;
	*total = costs.indexTotalCost;
	*selectivity = costs.indexSelectivity;
	*correlation = 0;
	*pages = costs.numIndexPages;
}

static char *
hnswbuildphasename(int64 phase)
{
	switch (phase)
	{
		case PROGRESS_CREATEIDX_SUBPHASE_INITIALIZE:
			return "initializing";
		case HNSW_PHASE_LOAD:
			return "loading tuples";
		case HNSW_PHASE_GRAPH:
			return "building graph";
		case HNSW_PHASE_WRITE:
			return "writing index";
		default:
			return NULL;
	}
}

static bool
hnswvalidate(Oid opclassoid)
{
	return true;
}

Datum
hnswhandler(PG_FUNCTION_ARGS)
{
	IndexAmRoutine *am = makeNode(IndexAmRoutine);

	am->amstrategies = 0;
	am->amsupport = 2;
	am->amoptsprocnum = 0;
	am->amcanorder = false;
	am->amcanorderbyop = true;
	am->amcanbackward = false;
	am->amcanunique = false;
	am->amcanmulticol = false;
	am->amoptionalkey = true;
	am->amsearcharray = false;
	am->amsearchnulls = false;
	am->amstorage = false;
	am->amclusterable = false;
	am->ampredlocks = false;
	am->amcanparallel = false;
	am->amcaninclude = false;
	am->amusemaintenanceworkmem = true;
	am->amparallelvacuumoptions = VACUUM_OPTION_PARALLEL_BULKDEL;
	am->amkeytype = InvalidOid;

	am->ambuild = hnswbuild;
	am->ambuildempty = hnswbuildempty;
	am->aminsert = hnswinsert;
	am->ambulkdelete = hnswbulkdelete;
	am->amvacuumcleanup = hnswvacuumcleanup;
	am->amcanreturn = NULL;
	am->amcostestimate = hnswcostestimate;
	am->amoptions = hnswoptions;
	am->amproperty = NULL;
	am->ambuildphasename = hnswbuildphasename;
	am->amvalidate = hnswvalidate;
	am->amadjustmembers = NULL;
	am->ambeginscan = hnswbeginscan;
	am->amrescan = hnswrescan;
	am->amgettuple = hnswgettuple;
	am->amgetbitmap = NULL;
	am->amendscan = hnswendscan;
	am->ammarkpos = NULL;
	am->amrestrpos = NULL;
	am->amestimateparallelscan = NULL;
	am->aminitparallelscan = NULL;
	am->amparallelrescan = NULL;

	PG_RETURN_POINTER(am);
}
