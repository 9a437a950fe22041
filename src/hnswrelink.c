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
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "hnsw.h"

#define HNSW_UPDATE_LOCK HNSW_METAPAGE_BLKNO

/* A backend asks for a relinking worker at most this often per index. */
#define RELINK_REQUEST_INTERVAL_MS 10000

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
 * For a search that met the mark: if no one holds the update lock (else a
 * batch or insert is at work, and will relink if it must), start a
 * background worker to relink, at most once per RELINK_REQUEST_INTERVAL_MS
 * per backend and index.  Not during recovery or in a parallel worker.
 */
void
HnswRequestRelink(Relation index)
{
	static Oid	last_index = InvalidOid;
	static TimestampTz last_request = 0;
	TimestampTz now = GetCurrentTimestamp();
	BackgroundWorker w;
	BackgroundWorkerHandle *handle;

	if (RecoveryInProgress() || IsInParallelMode() ||
		(last_index == RelationGetRelid(index) &&
		 !TimestampDifferenceExceeds(last_request, now, RELINK_REQUEST_INTERVAL_MS)))
		return;
	if (!ConditionalLockPage(index, HNSW_UPDATE_LOCK, ExclusiveLock))
		return;
	UnlockPage(index, HNSW_UPDATE_LOCK, ExclusiveLock);
	last_index = RelationGetRelid(index);
	last_request = now;

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
 * superuser, like autovacuum), lock its table as a reader would, and
 * relink.  An index dropped, or whose OID now names something else, is
 * left alone.
 */
void
hnsw_relink_main(Datum arg)
{
	Oid			indexoid = DatumGetObjectId(arg);
	Oid			dboid;
	Oid			heapoid;
	Relation	index;

	memcpy(&dboid, MyBgworkerEntry->bgw_extra, sizeof(Oid));
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	heapoid = IndexGetRelation(indexoid, true);
	if (OidIsValid(heapoid))
	{
		LockRelationOid(heapoid, AccessShareLock);
		index = try_relation_open(indexoid, RowExclusiveLock);
		if (index != NULL)
		{
			if (index->rd_rel->relkind == RELKIND_INDEX &&
				index->rd_rel->relam == get_index_am_oid("hnsw", true))
				HnswFinishBatch(index);
			relation_close(index, RowExclusiveLock);
		}
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
}
