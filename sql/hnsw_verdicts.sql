-- Verdicts stored with links (hnsw.h, format 2): the build, batched
-- inserts, single inserts that re-prune a list and VACUUM's repair store
-- each link's heuristic verdict, so a later batch extends lists without
-- re-running the heuristic.  hnsw_info counts the lists whose every link
-- carries one.
SELECT setseed(0.25);
\i sql/include/hnsw_helpers.psql

CREATE TABLE vd (id bigserial PRIMARY KEY, embedding vector(8));
INSERT INTO vd (embedding) SELECT rand_vec(8) FROM generate_series(1, 2000);
CREATE INDEX vd_idx ON vd USING hnsw (embedding vector_l2_ops) WITH (m = 4);

-- the build stores the verdict of every link
SELECT lists > 2000 AS has_lists, judged_lists = lists AS all_judged, problems
  FROM agentmem.hnsw_info('vd_idx');

-- single-row inserts: lists they re-prune and the new elements' own lists
-- keep verdicts; a link added to a free slot leaves its list unjudged
INSERT INTO vd (embedding) SELECT rand_vec(8) FROM generate_series(1, 200);
SELECT judged_lists::float / lists > 0.5 AS mostly_judged, problems
  FROM agentmem.hnsw_info('vd_idx');

-- a remember() batch into a built index writes back every list it
-- touched with verdicts (plain TIDs leave under 1% judged here, verdicts
-- over 85%: lists that adopted a displaced link are left unjudged)
SELECT agentmem.create_space('vds', 8, 'l2', m => 4) IS NOT NULL AS created;
SELECT count(*) FROM agentmem.remember('vds',
	(SELECT array_agg('r' || i) FROM generate_series(1, 1500) i),
	(SELECT array_agg(rand_vec(8)) FROM generate_series(1, 1500) i));
SELECT agentmem.space_table('vds')::text || '_embedding' AS vds_idx \gset
REINDEX INDEX :vds_idx;
SELECT judged_lists = lists AS reindexed_judged FROM agentmem.hnsw_info(:'vds_idx');
SELECT count(*) FROM agentmem.remember('vds',
	(SELECT array_agg('s' || i) FROM generate_series(1, 1500) i),
	(SELECT array_agg(rand_vec(8)) FROM generate_series(1, 1500) i));
SELECT judged_lists::float / lists > 0.75 AS batch_judged, problems
  FROM agentmem.hnsw_info(:'vds_idx');

-- every row of both batches is found by searching for its own vector
SELECT format('SELECT count(*) = 3000 AS all_found FROM %1$s a WHERE a.id = '
			  '(SELECT b.id FROM %1$s b ORDER BY b.embedding <-> a.embedding LIMIT 1)',
			  agentmem.space_table('vds')) AS q \gset
SET enable_seqscan = off;
:q;
RESET enable_seqscan;

-- VACUUM's repair re-chooses lists with the heuristic and stores verdicts:
-- the share of judged lists grows (plain TIDs would shrink it)
SELECT judged_lists::float / lists AS judged_before FROM agentmem.hnsw_info('vd_idx') \gset
DELETE FROM vd WHERE id % 3 = 0;
VACUUM vd;
SELECT judged_lists::float / lists > :judged_before AS repaired_judged, problems, unreachable
  FROM agentmem.hnsw_info('vd_idx');

SELECT agentmem.drop_space('vds');
DROP TABLE vd;
DROP FUNCTION rand_vec(int), knn(text, bool);
