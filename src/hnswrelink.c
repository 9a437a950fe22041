/*
 * hnswrelink.c
 *		Finishing a remember() batch that was cut short while it wrote its
 *		changed neighbour lists.
 *
 * A batch writes its lists one page per WAL record (GenericXLog logs at
 * most four pages at once), and a list that took a new element in and
 * dropped an old neighbour may reach disk before the lists that lead to
 * that neighbour another way.  So write_back marks the metapage
 * (batch_writing) before its first list record and clears the mark with
 * its last.  A mark seen by a backend that gets the index's update lock
 * means that batch ended part-way (a crash, or an error), and old
 * elements may be unreachable: the backend relinks them (VACUUM's
 * reachability pass, HnswRelinkLocked) and clears the mark, as btree
 * finishes a page split cut short at the next insert that meets it.
 *
 * Inserts, batches and VACUUM do that themselves: they need the lock
 * anyway.  A search must not: the pass reads the whole index (about a
 * second for 200,000 rows), which a search under statement_timeout might
 * never finish, in a transaction that may be read-only.  A search that
 * meets the mark starts a background worker to relink instead, and goes
 * on with the index as it is, as it would during a running batch.
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/index.h"
#include "catalog/pg_class.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "tcop/tcopprot.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "hnsw.h"

#define HNSW_UPDATE_LOCK HNSW_METAPAGE_BLKNO

PGDLLEXPORT void hnsw_relink_main(Datum arg);

/*
 * Mark or clear a batch writing its lists on the metapage (a page being
 * changed with GenericXLog).  pd_lower must cover the field: GenericXLog
 * logs nothing of the page's unused space and zeroes it, and the metapage
 * of an index built before the field ends before it.
 */
void
HnswSetBatchWriting(Page metapage, bool writing)
{
	HnswMetaPage meta = HnswPageGetMeta(metapage);
	LocationIndex end = ((char *) meta + sizeof(HnswMetaPageData)) - (char *) metapage;

	if (((PageHeader) metapage)->pd_lower < end)
		((PageHeader) metapage)->pd_lower = end;
	meta->batch_writing = writing ? 1 : 0;
}

/* Clear the metapage's mark, if set; the caller holds the update lock. */
void
HnswClearBatchWriting(Relation index)
{
	Buffer		buf = ReadBuffer(index, HNSW_METAPAGE_BLKNO);
	GenericXLogState *state;
	Page		page;

	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	if (HnswPageGetMeta(BufferGetPage(buf))->batch_writing)
	{
		state = GenericXLogStart(index);
		page = GenericXLogRegisterBuffer(state, buf, 0);
		HnswSetBatchWriting(page, false);
		GenericXLogFinish(state);
	}
	UnlockReleaseBuffer(buf);
}

/*
 * Relink the index if the mark says a batch was cut short; the caller
 * holds the update lock exclusively.  True if it did.
 */
bool
HnswRelinkIfCutShort(Relation index)
{
	HnswMetaPageData meta;

	HnswReadMeta(index, &meta);
	if (!meta.batch_writing)
		return false;
	ereport(LOG,
			(errmsg("hnsw: relinking index \"%s\" after a batch that ended part-way",
					RelationGetRelationName(index))));
	HnswRelinkLocked(index, NULL);
	return true;
}

/*
 * For a writer that met the mark before taking the update lock: wait for
 * the lock exclusively, and relink if the mark is still there (the batch
 * that set it may just have been running).  Nothing is written during
 * recovery: a standby gets the primary's relinking through the WAL.
 */
void
HnswFinishBatch(Relation index)
{
	if (RecoveryInProgress())
		return;
	LockPage(index, HNSW_UPDATE_LOCK, ExclusiveLock);
	HnswRelinkIfCutShort(index);
	UnlockPage(index, HNSW_UPDATE_LOCK, ExclusiveLock);
}

/*
 * When this backend may next ask for a relinking worker for an index: a
 * few indexes, each asked for at most every RELINK_FIRST_RETRY_MS, twice
 * as long after each request up to RELINK_MAX_RETRY_MS, so that a worker
 * that cannot finish (a database closed to connections, a corrupt page)
 * does not flood the log.
 */
#define RELINK_FIRST_RETRY_MS	10000
#define RELINK_MAX_RETRY_MS		(10 * 60 * 1000)
#define RELINK_TRACKED			8

typedef struct RelinkRequest
{
	Oid			index;
	TimestampTz next;
	int			retry_ms;
} RelinkRequest;

static RelinkRequest requests[RELINK_TRACKED];

/* May this backend ask for a worker for `index` now?  If so, note it. */
static bool
may_request(Oid index)
{
	TimestampTz now = GetCurrentTimestamp();
	RelinkRequest *r = NULL;

	for (int i = 0; i < RELINK_TRACKED && r == NULL; i++)
	{
		if (requests[i].index == index)
			r = &requests[i];
	}
	if (r == NULL)
	{
		/* a free entry, else the one allowed soonest */
		r = &requests[0];
		for (int i = 1; i < RELINK_TRACKED; i++)
		{
			if (requests[i].next < r->next)
				r = &requests[i];
		}
		r->index = index;
		r->next = 0;
		r->retry_ms = RELINK_FIRST_RETRY_MS;
	}
	if (now < r->next)
		return false;
	r->next = TimestampTzPlusMilliseconds(now, r->retry_ms);
	r->retry_ms = Min(r->retry_ms * 2, RELINK_MAX_RETRY_MS);
	return true;
}

/* Whether the mark is set and no one holds the update lock, checked under it. */
static bool
cut_short_and_idle(Relation index)
{
	HnswMetaPageData meta;

	if (!ConditionalLockPage(index, HNSW_UPDATE_LOCK, ExclusiveLock))
		return false;
	HnswReadMeta(index, &meta);
	UnlockPage(index, HNSW_UPDATE_LOCK, ExclusiveLock);
	return meta.batch_writing != 0;
}

/*
 * For a search that met the mark.  A batch may be running and have set
 * it: then the lock is taken, and if it is free once more, that batch is
 * gone and the mark with it.  Else start a background worker to relink.
 * Not during recovery or in a parallel worker.
 */
void
HnswRequestRelink(Relation index)
{
	BackgroundWorker w;
	BackgroundWorkerHandle *handle;

	if (RecoveryInProgress() || IsInParallelMode() ||
		!cut_short_and_idle(index) || !may_request(RelationGetRelid(index)))
		return;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(w.bgw_library_name, BGW_MAXLEN, "agentmem");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "hnsw_relink_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "agentmem hnsw relink of index %u",
			 RelationGetRelid(index));
	snprintf(w.bgw_type, BGW_MAXLEN, "agentmem hnsw relink");
	w.bgw_main_arg = ObjectIdGetDatum(RelationGetRelid(index));
	memcpy(w.bgw_extra, &MyDatabaseId, sizeof(Oid));
	if (!RegisterDynamicBackgroundWorker(&w, &handle))
		ereport(LOG,
				(errmsg("hnsw: could not start a worker to relink index \"%s\"",
						RelationGetRelationName(index)),
				 errhint("Raise max_worker_processes, or VACUUM the table.")));
}

/*
 * The worker: connect to the index's database (as the bootstrap
 * superuser, like autovacuum, and also where connections are not
 * allowed), lock its table as a reader would, and relink, unless someone
 * holds the update lock: whoever does relinks first (an insert, a batch,
 * VACUUM or another such worker; a search never holds it long), so many
 * searches asking at once cost one relinking, not one each.  An index
 * dropped, or whose OID now names something else, is left alone.
 */
void
hnsw_relink_main(Datum arg)
{
	Oid			indexoid = DatumGetObjectId(arg);
	Oid			dboid;
	Oid			heapoid;
	Relation	index = NULL;

	/* die() only sets a flag: a FATAL inside GenericXLogFinish would PANIC */
	pqsignal(SIGTERM, die);
	memcpy(&dboid, MyBgworkerEntry->bgw_extra, sizeof(Oid));
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, BGWORKER_BYPASS_ALLOWCONN);
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	heapoid = IndexGetRelation(indexoid, true);
	if (OidIsValid(heapoid))
	{
		LockRelationOid(heapoid, AccessShareLock);
		index = try_relation_open(indexoid, RowExclusiveLock);
		if (index != NULL &&
			(index->rd_rel->relkind != RELKIND_INDEX ||
			 index->rd_rel->relam != get_index_am_oid("hnsw", true)))
		{
			relation_close(index, RowExclusiveLock);
			index = NULL;
		}
	}
	/* the relinking needs no snapshot: do not hold back the xmin horizon */
	PopActiveSnapshot();
	InvalidateCatalogSnapshot();
	if (index != NULL)
	{
		if (ConditionalLockPage(index, HNSW_UPDATE_LOCK, ExclusiveLock))
		{
			HnswRelinkIfCutShort(index);
			UnlockPage(index, HNSW_UPDATE_LOCK, ExclusiveLock);
		}
		relation_close(index, RowExclusiveLock);
	}
	CommitTransactionCommand();
}
