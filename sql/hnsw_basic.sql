-- hnsw: every operator class, the planner's use of each, exact results
-- when ef_search covers the table, NULL and zero vectors.
--
-- The graph gets random levels on every build, so this file only asserts
-- what holds for any sound graph: with hnsw.ef_search >= the number of
-- rows the search reaches every element, so the index must return exactly
-- what a sequential scan returns.
SET extra_float_digits = 0;

-- rand_vec() and knn(): see sql/include/hnsw_helpers.psql
\getenv abs_srcdir PG_ABS_SRCDIR
\set helpers :abs_srcdir '/sql/include/hnsw_helpers.psql'
\i :helpers

SELECT setseed(0.42);
CREATE TABLE items (id int, v vector(8));
INSERT INTO items SELECT i, rand_vec(8) FROM generate_series(1, 300) i;
CREATE TABLE queries (qid int, v vector(8));
INSERT INTO queries SELECT i, rand_vec(8) FROM generate_series(1, 5) i;
CREATE TABLE ops (opclass text, op text);
INSERT INTO ops VALUES ('vector_l2_ops', '<->'), ('vector_ip_ops', '<#>'),
	('vector_cosine_ops', '<=>'), ('vector_l1_ops', '<+>');

-- ------------------------------------------------------------ EXPLAIN
-- Each operator class answers ORDER BY col <its operator> const LIMIT k.
SET enable_seqscan = off;
CREATE INDEX items_l2 ON items USING hnsw (v vector_l2_ops);
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY v <-> '[1,2,3,4,5,6,7,8]' LIMIT 5;
-- and nothing else, even with sequential scans disabled:
-- no ORDER BY (a distance filter is not an index condition)
EXPLAIN (COSTS OFF) SELECT id FROM items WHERE v <-> '[1,2,3,4,5,6,7,8]' < 1;
EXPLAIN (COSTS OFF) SELECT id FROM items LIMIT 5;
-- another operator than the operator class's
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY v <#> '[1,2,3,4,5,6,7,8]' LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY v <=> '[1,2,3,4,5,6,7,8]' LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY v <+> '[1,2,3,4,5,6,7,8]' LIMIT 5;
-- farthest first
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY v <-> '[1,2,3,4,5,6,7,8]' DESC LIMIT 5;
-- the function instead of the operator
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY l2_distance(v, '[1,2,3,4,5,6,7,8]') LIMIT 5;
-- (the operators are their own commutators: const <-> col is col <-> const)
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY '[1,2,3,4,5,6,7,8]' <-> v LIMIT 5;
DROP INDEX items_l2;

CREATE INDEX items_ip ON items USING hnsw (v vector_ip_ops);
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY v <#> '[1,2,3,4,5,6,7,8]' LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY v <-> '[1,2,3,4,5,6,7,8]' LIMIT 5;
DROP INDEX items_ip;

CREATE INDEX items_cos ON items USING hnsw (v vector_cosine_ops);
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY v <=> '[1,2,3,4,5,6,7,8]' LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY v <#> '[1,2,3,4,5,6,7,8]' LIMIT 5;
DROP INDEX items_cos;

CREATE INDEX items_l1 ON items USING hnsw (v vector_l1_ops);
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY v <+> '[1,2,3,4,5,6,7,8]' LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY v <-> '[1,2,3,4,5,6,7,8]' LIMIT 5;
DROP INDEX items_l1;
RESET enable_seqscan;

-- ------------------------------------------------ index == sequential scan
-- For every operator class and query: the 50 nearest in the same order,
-- and all 300 rows as a set (near ties may swap between the index's float
-- kernels and the operators, so the full order is compared on the head).
SET hnsw.ef_search = 1000;
CREATE FUNCTION compare_opclass(opc text, op text)
RETURNS TABLE (opclass text, queries bigint, same_top50 bigint, same_set bigint,
			   elements bigint, problems bigint) LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('CREATE INDEX items_idx ON items USING hnsw (v %s)', opc);
	RETURN QUERY
	SELECT opc, count(*),
		   count(*) FILTER (WHERE knn(format('SELECT id FROM items ORDER BY v %s %L LIMIT 50', op, q.v), true)
								= knn(format('SELECT id FROM items ORDER BY v %s %L LIMIT 50', op, q.v), false)),
		   count(*) FILTER (WHERE (SELECT array_agg(x ORDER BY x) FROM unnest(
									knn(format('SELECT id FROM items ORDER BY v %s %L LIMIT 300', op, q.v), true)) x)
								= (SELECT array_agg(id ORDER BY id) FROM items)),
		   (SELECT i.elements FROM agentmem.hnsw_info('items_idx') i),
		   (SELECT count(*) FROM agentmem.hnsw_check('items_idx'))
	FROM queries q;
	DROP INDEX items_idx;
END $$;
SELECT c.* FROM ops, compare_opclass(ops.opclass, ops.op) c;

-- the same after single-row inserts into an existing index (the on-disk
-- insert path instead of the build), including into an empty index
CREATE TABLE items2 (id int, v vector(8));
CREATE INDEX items2_cos ON items2 USING hnsw (v vector_cosine_ops) WITH (m = 4, ef_construction = 8);
SELECT * FROM agentmem.hnsw_info('items2_cos');
DO $$
BEGIN
	FOR i IN 1..200 LOOP
		INSERT INTO items2 SELECT id, v FROM items WHERE id = i;
	END LOOP;
END $$;
SELECT elements, deleted, m, unreachable, problems FROM agentmem.hnsw_info('items2_cos');
SELECT * FROM agentmem.hnsw_check('items2_cos');
SELECT qid,
	   knn(format('SELECT id FROM items2 ORDER BY v <=> %L LIMIT 30', v), true)
	 = knn(format('SELECT id FROM items2 ORDER BY v <=> %L LIMIT 30', v), false) AS same_top30,
	   cardinality(knn(format('SELECT id FROM items2 ORDER BY v <=> %L LIMIT 500', v), true)) AS index_rows
FROM queries ORDER BY qid;
DROP TABLE items2;

-- A build with the shortest lists (m = 4, ef_construction = 8) on 5,000
-- random 32-dimensional rows: the build must leave every element
-- reachable, so that a complete scan (iterative, no tuple limit) returns
-- every row.  (Three builds, as the graph differs every time.)
CREATE TABLE rnd (id int, v vector(32));
INSERT INTO rnd SELECT i, rand_vec(32) FROM generate_series(1, 5000) i;
CREATE TABLE rnd_result (round int, elements bigint, unreachable bigint, index_rows int);
SET hnsw.iterative_scan = relaxed_order;
SET hnsw.max_scan_tuples = 1000000;
SELECT 'DROP INDEX IF EXISTS rnd_l2',
	   'CREATE INDEX rnd_l2 ON rnd USING hnsw (v vector_l2_ops) WITH (m = 4, ef_construction = 8)',
	   format($$INSERT INTO rnd_result SELECT %s, elements, unreachable,
			  (SELECT count(DISTINCT id) FROM unnest(knn('SELECT id FROM rnd ORDER BY v <-> (SELECT v FROM rnd WHERE id = 1) LIMIT 10000', true)) id)
			  FROM agentmem.hnsw_info('rnd_l2')$$, r)
FROM generate_series(1, 3) r \gexec
RESET hnsw.iterative_scan;
RESET hnsw.max_scan_tuples;
SELECT * FROM rnd_result ORDER BY round;
DROP TABLE rnd, rnd_result;

-- Inserts that fill the gap between two clusters: rows 1..100 and
-- 151..200 of a band, then 101..150 between them.  Each insert re-prunes
-- its neighbours' full lists; no element may lose its last incoming link,
-- or index scans lose rows at any ef_search.  (m = 4 keeps lists short;
-- three rounds, as the graph differs every time.)
CREATE TABLE band (id int, v vector(3));
CREATE TABLE band_result (round int, elements bigint, unreachable bigint, index_rows int);
SELECT 'DROP INDEX IF EXISTS band_l2', 'TRUNCATE band',
	   'INSERT INTO band SELECT i, ARRAY[i, (i * 7) % 11, (i * 3) % 5]::real[] FROM generate_series(1, 100) i',
	   'CREATE INDEX band_l2 ON band USING hnsw (v vector_l2_ops) WITH (m = 4, ef_construction = 8)',
	   'INSERT INTO band SELECT i, ARRAY[i, (i * 7) % 11, (i * 3) % 5]::real[] FROM generate_series(151, 200) i',
	   'INSERT INTO band SELECT i, ARRAY[i, (i * 7) % 11, (i * 3) % 5]::real[] FROM generate_series(101, 150) i',
	   format($$INSERT INTO band_result SELECT %s, elements, unreachable,
			  cardinality(knn('SELECT id FROM band ORDER BY v <-> ''[149.3,0.1,0.2]'' LIMIT 1000', true))
			  FROM agentmem.hnsw_info('band_l2')$$, r)
FROM generate_series(1, 3) r \gexec
SELECT * FROM band_result ORDER BY round;
DROP TABLE band, band_result;

-- Identical vectors inserted one by one (the same text remembered twice
-- is common): the heuristic turns a new copy down from every list that
-- already holds another copy, so a copy no neighbour keeps is linked from
-- its nearest one by force; without that, 55 of 60 copies were
-- unreachable and a complete scan returned 6 rows.
CREATE TABLE dup (id int, v vector(3));
CREATE INDEX dup_l2 ON dup USING hnsw (v vector_l2_ops) WITH (m = 2, ef_construction = 4);
INSERT INTO dup SELECT i, '[1,2,3]' FROM generate_series(1, 60) i;
SELECT elements, unreachable, problems FROM agentmem.hnsw_info('dup_l2');
SET enable_seqscan = off;
SET hnsw.iterative_scan = relaxed_order;
SELECT count(*) AS scanned FROM (SELECT id FROM dup ORDER BY v <-> '[1,2,3]' LIMIT 100) s;
-- VACUUM's repair and reachability pass with the copies among other rows:
-- the copies link only each other and the entry's links all lead the way,
-- so the pass must find a spare link elsewhere (it left up to 13 of 300
-- unreachable before it did)
INSERT INTO dup SELECT i, ARRAY[i, i % 7, i % 3]::real[] FROM generate_series(61, 400) i;
DELETE FROM dup WHERE id % 4 = 0;
VACUUM dup;
SELECT elements, unreachable, problems FROM agentmem.hnsw_info('dup_l2');
-- (not asserted: that a scan for the copies returns all of them.  Their
-- lists hold nothing but copies, so a scan whose descent lands in one
-- group of copies may not get out of it; see README, "The hnsw index".)
RESET enable_seqscan;
RESET hnsw.iterative_scan;
DROP TABLE dup;

-- One neighbour's list can drop another of the new element's neighbours
-- (the new element is nearer to it); the new element then links to it and
-- that link is its way in, so adopting some other dropped element must not
-- take its place.  It did: 4 to 10 of these 6,000 rows were unreachable
-- after every run.
CREATE TABLE small_m (id int, v vector(4));
CREATE INDEX small_m_l2 ON small_m USING hnsw (v vector_l2_ops) WITH (m = 2, ef_construction = 8);
INSERT INTO small_m SELECT i, rand_vec(4) FROM generate_series(1, 6000) i;
SELECT elements, unreachable, problems FROM agentmem.hnsw_info('small_m_l2');
DROP TABLE small_m;

-- ----------------------------------------------------- NULL and zero vectors
-- NULLs are never indexed; a zero vector has no direction, so a cosine
-- index leaves it out too, while L2 indexes it.  A sequential scan returns
-- them all, as before the index existed.
CREATE TABLE nz (id int, v vector(3));
INSERT INTO nz VALUES (1, '[1,0,0]'), (2, '[0,1,0]'), (3, '[1,1,0]'), (4, NULL), (5, '[0,0,0]'),
	(6, '[0,0,1]'), (7, NULL), (8, '[0,0,0]'), (9, '[1,1,1]');
CREATE INDEX nz_cos ON nz USING hnsw (v vector_cosine_ops);
CREATE INDEX nz_l2 ON nz USING hnsw (v vector_l2_ops);
SELECT 'cosine' AS index, elements, deleted FROM agentmem.hnsw_info('nz_cos')
UNION ALL SELECT 'l2', elements, deleted FROM agentmem.hnsw_info('nz_l2');
-- rows added later are treated the same way
INSERT INTO nz VALUES (10, NULL), (11, '[0,0,0]'), (12, '[2,0,0]');
SELECT 'cosine' AS index, elements, deleted FROM agentmem.hnsw_info('nz_cos')
UNION ALL SELECT 'l2', elements, deleted FROM agentmem.hnsw_info('nz_l2');
SELECT * FROM agentmem.hnsw_check('nz_cos');
SELECT * FROM agentmem.hnsw_check('nz_l2');
-- index scans return the indexed rows ...
SELECT knn($$SELECT id FROM nz ORDER BY v <=> '[1,0.1,0]' LIMIT 20$$, true) AS cosine_index;
-- the two zero vectors tie, so compare the set, then check the order
SELECT array_agg(id ORDER BY v <-> '[1,0.1,0]', id) AS l2_index
FROM nz WHERE id = ANY (knn($$SELECT id FROM nz ORDER BY v <-> '[1,0.1,0]' LIMIT 20$$, true));
SELECT bool_and(d >= coalesce(prev, d)) AS l2_index_in_order
FROM (SELECT d, lag(d) OVER (ORDER BY ord) AS prev
	  FROM unnest(knn($$SELECT id FROM nz ORDER BY v <-> '[1,0.1,0]' LIMIT 20$$, true))
		   WITH ORDINALITY AS u(id, ord)
	  JOIN LATERAL (SELECT v <-> '[1,0.1,0]' AS d FROM nz WHERE nz.id = u.id) x ON true) s;
-- ... a sequential scan returns every row, NULLs and zero vectors last
SELECT knn($$SELECT id FROM nz ORDER BY v <=> '[1,0.1,0]', id LIMIT 20$$, false) AS cosine_seq;
SELECT knn($$SELECT id FROM nz ORDER BY v <-> '[1,0.1,0]', id LIMIT 20$$, false) AS l2_seq;
SELECT id, v <=> '[1,0.1,0]' AS cosine_distance FROM nz WHERE v IS NULL OR vector_norm(v) = 0 ORDER BY id;
DROP TABLE nz;

-- a table of NULLs only: an index with no entry point answers with no rows
CREATE TABLE only_null (id int, v vector(2));
INSERT INTO only_null SELECT i, NULL FROM generate_series(1, 10) i;
CREATE INDEX ON only_null USING hnsw (v);
SELECT elements, entry_level, problems FROM agentmem.hnsw_info('only_null_v_idx');
SELECT knn($$SELECT id FROM only_null ORDER BY v <-> '[1,1]' LIMIT 5$$, true) AS index_ids;
-- the first non-NULL row becomes the entry point
INSERT INTO only_null VALUES (11, '[3,4]');
SELECT knn($$SELECT id FROM only_null ORDER BY v <-> '[1,1]' LIMIT 5$$, true) AS index_ids;
SELECT elements, entry_level >= 0 AS has_entry, problems FROM agentmem.hnsw_info('only_null_v_idx');
DROP TABLE only_null;

RESET hnsw.ef_search;
DROP FUNCTION compare_opclass(text, text);
DROP TABLE items, queries, ops;
DROP FUNCTION knn(text, bool);
DROP FUNCTION rand_vec(int);
