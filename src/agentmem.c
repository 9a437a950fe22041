/*
 * agentmem.c
 *		Module entry point: load-time setup of kernels, settings and hooks.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "distance.h"
#include "hnsw.h"
#include "memory.h"
#include "stats.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(agentmem_distance_kernel);

void		_PG_init(void);

void
_PG_init(void)
{
	DistanceKernelsInit();
	HnswInitSettings();
	AgentmemMemoryInit();
	StatsInit();
	/* only now: reserving the prefix drops placeholders not yet defined */
	MarkGUCPrefixReserved("agentmem");
}

Datum
agentmem_distance_kernel(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(distance_kernels.name));
}
