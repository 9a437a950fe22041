-- hnsw: scans and the planner.  The planner's own choice with real costs,
-- parameters, rescans (LATERAL), filters, partial and expression indexes,
-- cursors, and queries whose distances are all NULL or NaN.
SET extra_float_digits = 0;

-- rand_vec() and knn(): see sql/include/hnsw_helpers.psql
\getenv abs_srcdir PG_ABS_SRCDIR
\set helpers :abs_srcdir '/sql/include/hnsw_helpers.psql'
\i :helpers

-- ------------------------------------------------- the planner's own choice
-- With real statistics and default settings the planner takes the index for
-- a k-nearest query on a table of some size, and not where it cannot help.
SELECT setseed(0.1);
CREATE TABLE big (id int, cat int, v vector(4));
INSERT INTO big SELECT i, i % 10, rand_vec(4) FROM generate_series(1, 5000) i;
CREATE INDEX big_l2 ON big USING hnsw (v vector_l2_ops);
CREATE INDEX big_cos ON big USING hnsw (v vector_cosine_ops);
ANALYZE big;
EXPLAIN (COSTS OFF) SELECT id FROM big ORDER BY v <-> '[0.1,0.2,0.3,0.4]' LIMIT 10;
EXPLAIN (COSTS OFF) SELECT id FROM big ORDER BY v <=> '[0.1,0.2,0.3,0.4]' LIMIT 10;
EXPLAIN (COSTS OFF) SELECT id FROM big WHERE cat = 3 ORDER BY v <-> '[0.1,0.2,0.3,0.4]' LIMIT 10;
-- no index for the inner product or L1, and none for DESC
EXPLAIN (COSTS OFF) SELECT id FROM big ORDER BY v <#> '[0.1,0.2,0.3,0.4]' LIMIT 10;
EXPLAIN (COSTS OFF) SELECT id FROM big ORDER BY v <-> '[0.1,0.2,0.3,0.4]' DESC LIMIT 10;
EXPLAIN (COSTS OFF) SELECT count(*) FROM big WHERE v <-> '[0.1,0.2,0.3,0.4]' < 0.5;
-- a selective filter on another column is better served without it
CREATE INDEX big_id ON big (id);
EXPLAIN (COSTS OFF) SELECT id FROM big WHERE id = 17 ORDER BY v <-> '[0.1,0.2,0.3,0.4]' LIMIT 10;
DROP INDEX big_id;
-- the query's own result with the default ef_search: 10 rows, nearest first
SELECT count(*), bool_and(d >= prev) AS ascending
FROM (SELECT v <-> '[0.1,0.2,0.3,0.4]' AS d,
			 lag(v <-> '[0.1,0.2,0.3,0.4]', 1, 0) OVER () AS prev
	  FROM (SELECT v FROM big ORDER BY v <-> '[0.1,0.2,0.3,0.4]' LIMIT 10) s) s;
DROP TABLE big;

-- --------------------------------------------------------- exact results
-- From here on ef_search covers the tables, so every index answer must
-- equal the sequential scan's.
SET hnsw.ef_search = 1000;
SELECT setseed(0.2);
CREATE TABLE items (id int, cat int, v vector(6));
INSERT INTO items SELECT i, i % 4, rand_vec(6) FROM generate_series(1, 600) i;
CREATE TABLE queries (qid int, v vector(6));
INSERT INTO queries SELECT i, rand_vec(6) FROM generate_series(1, 8) i;
CREATE INDEX items_l2 ON items USING hnsw (v vector_l2_ops) WITH (m = 8, ef_construction = 40);

-- a parameter instead of a constant, in a generic plan
SET plan_cache_mode = force_generic_plan;
SET enable_seqscan = off;
PREPARE nearest(vector) AS SELECT id FROM items ORDER BY v <-> $1 LIMIT 20;
EXPLAIN (COSTS OFF) EXECUTE nearest('[0,0,0,0,0,0]');
SELECT v AS q1 FROM queries WHERE qid = 1 \gset
SELECT v AS q2 FROM queries WHERE qid = 2 \gset
CREATE TABLE prepared1 AS EXECUTE nearest(:'q1');
CREATE TABLE prepared2 AS EXECUTE nearest(:'q2');
RESET enable_seqscan;
SELECT (SELECT array_agg(id) FROM prepared1) = knn(format('SELECT id FROM items ORDER BY v <-> %L LIMIT 20', :'q1'), false) AS q1_same_as_seqscan,
	   (SELECT array_agg(id) FROM prepared2) = knn(format('SELECT id FROM items ORDER BY v <-> %L LIMIT 20', :'q2'), false) AS q2_same_as_seqscan;
DROP TABLE prepared1, prepared2;
RESET plan_cache_mode;

-- LATERAL: one index scan rescanned with a new query vector per outer row
SET enable_seqscan = off;
EXPLAIN (COSTS OFF)
SELECT q.qid, n.id FROM queries q
CROSS JOIN LATERAL (SELECT id FROM items ORDER BY items.v <-> q.v LIMIT 5) n;
CREATE TABLE lateral_ids AS
SELECT q.qid, array_agg(n.id ORDER BY n.rn) AS ids FROM queries q
CROSS JOIN LATERAL (SELECT id, row_number() OVER () AS rn
					FROM (SELECT id FROM items ORDER BY items.v <-> q.v LIMIT 5) s) n
GROUP BY q.qid;
RESET enable_seqscan;
SELECT count(*) AS queries,
	   count(*) FILTER (WHERE l.ids = knn(format('SELECT id FROM items ORDER BY v <-> %L LIMIT 5', q.v), false)) AS same_as_seqscan
FROM lateral_ids l JOIN queries q USING (qid);

-- a filter on another column: the index returns candidates, the filter
-- drops rows; with ef_search covering the table nothing is missed
SELECT count(*) AS queries,
	   count(*) FILTER (WHERE knn(format('SELECT id FROM items WHERE cat = 2 ORDER BY v <-> %L LIMIT 10', v), true)
							= knn(format('SELECT id FROM items WHERE cat = 2 ORDER BY v <-> %L LIMIT 10', v), false)) AS same_as_seqscan
FROM queries;

-- a cursor: forwards, and backwards through the executor's materialisation
BEGIN;
SET LOCAL enable_seqscan = off;
DECLARE c SCROLL CURSOR FOR SELECT id FROM items ORDER BY v <-> '[0.5,0.5,0.5,0.5,0.5,0.5]' LIMIT 10;
FETCH 4 FROM c;
FETCH BACKWARD 2 FROM c;
FETCH ALL FROM c;
COMMIT;
SELECT knn($$SELECT id FROM items ORDER BY v <-> '[0.5,0.5,0.5,0.5,0.5,0.5]' LIMIT 10$$, false) AS seqscan_ids;

-- a partial index answers queries whose WHERE implies its predicate
CREATE INDEX items_cat1 ON items USING hnsw (v vector_cosine_ops) WHERE cat = 1;
SELECT elements FROM agentmem.hnsw_info('items_cat1');
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM items WHERE cat = 1 ORDER BY v <=> '[1,0,0,0,0,0]' LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM items WHERE cat = 2 ORDER BY v <=> '[1,0,0,0,0,0]' LIMIT 5;
RESET enable_seqscan;
SELECT knn($$SELECT id FROM items WHERE cat = 1 ORDER BY v <=> '[1,0,0,0,0,0]' LIMIT 20$$, true)
	 = knn($$SELECT id FROM items WHERE cat = 1 ORDER BY v <=> '[1,0,0,0,0,0]' LIMIT 20$$, false) AS same_as_seqscan;
-- rows entering and leaving the predicate
UPDATE items SET cat = 1 WHERE id IN (2, 3);
UPDATE items SET cat = 0 WHERE id = 5;
SELECT elements FROM agentmem.hnsw_info('items_cat1');
SELECT knn($$SELECT id FROM items WHERE cat = 1 ORDER BY v <=> '[1,0,0,0,0,0]' LIMIT 300$$, true)
	 = knn($$SELECT id FROM items WHERE cat = 1 ORDER BY v <=> '[1,0,0,0,0,0]' LIMIT 300$$, false) AS same_as_seqscan;
DROP INDEX items_cat1;

-- an expression index
CREATE INDEX items_sub ON items USING hnsw ((subvector(v, 1, 3)::vector(3)) vector_l1_ops);
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY subvector(v, 1, 3)::vector(3) <+> '[0,0,1]' LIMIT 5;
RESET enable_seqscan;
SELECT knn($$SELECT id FROM items ORDER BY subvector(v, 1, 3)::vector(3) <+> '[0,0,1]' LIMIT 30$$, true)
	 = knn($$SELECT id FROM items ORDER BY subvector(v, 1, 3)::vector(3) <+> '[0,0,1]' LIMIT 30$$, false) AS same_as_seqscan;
SELECT * FROM agentmem.hnsw_check('items_sub');
DROP INDEX items_sub;

-- ------------------------------------------- distances that are all equal
-- A NULL query makes every distance NULL and a zero query every cosine
-- distance NaN: the order is arbitrary, but ORDER BY ... LIMIT k still
-- returns k rows, through the index as without it.
SET plan_cache_mode = force_generic_plan;
SET enable_seqscan = off;
PREPARE nearest_l2(vector) AS SELECT id FROM items ORDER BY v <-> $1 LIMIT 5;
EXPLAIN (COSTS OFF) EXECUTE nearest_l2(NULL);
SELECT count(*) FROM (SELECT 1 FROM items ORDER BY v <-> NULL::vector LIMIT 5) s;
CREATE TEMP TABLE null_rows AS EXECUTE nearest_l2(NULL);
SELECT count(*) AS index_rows_for_null_query FROM null_rows;
RESET enable_seqscan;
RESET plan_cache_mode;
CREATE INDEX items_cos ON items USING hnsw (v vector_cosine_ops);
SELECT cardinality(knn($$SELECT id FROM items ORDER BY v <=> '[0,0,0,0,0,0]' LIMIT 5$$, false)) AS seqscan_rows,
	   cardinality(knn($$SELECT id FROM items ORDER BY v <=> '[0,0,0,0,0,0]' LIMIT 5$$, true)) AS index_rows;
DROP INDEX items_cos;

-- ----------------------------------------------------- empty and truncated
CREATE TABLE empty (id int, v vector(2));
CREATE INDEX empty_idx ON empty USING hnsw (v);
SELECT knn($$SELECT id FROM empty ORDER BY v <-> '[1,1]' LIMIT 5$$, true) AS index_ids;
INSERT INTO empty VALUES (1, '[1,1]'), (2, '[2,2]'), (3, '[0,0]');
SELECT knn($$SELECT id FROM empty ORDER BY v <-> '[1.1,1.1]' LIMIT 5$$, true) AS index_ids;
TRUNCATE empty;
SELECT elements, entry_level, pages FROM agentmem.hnsw_info('empty_idx');
SELECT knn($$SELECT id FROM empty ORDER BY v <-> '[1,1]' LIMIT 5$$, true) AS index_ids;
INSERT INTO empty VALUES (4, '[5,5]'), (5, '[1,1]');
SELECT knn($$SELECT id FROM empty ORDER BY v <-> '[1.1,1.1]' LIMIT 5$$, true) AS index_ids;
SELECT * FROM agentmem.hnsw_check('empty_idx');
-- TRUNCATE rolled back keeps the old index
BEGIN;
TRUNCATE empty;
ROLLBACK;
SELECT knn($$SELECT id FROM empty ORDER BY v <-> '[1.1,1.1]' LIMIT 5$$, true) AS index_ids;
DROP TABLE empty;

RESET hnsw.ef_search;
DROP TABLE items, queries, lateral_ids, null_rows;
DROP FUNCTION knn(text, bool);
DROP FUNCTION rand_vec(int);
