-- hnsw: DELETE, UPDATE, VACUUM.  Deleted rows never come back, the graph
-- stays sound (agentmem.hnsw_check returns no row after every phase), and
-- the space of removed elements is reused by later inserts.
--
-- hnsw.ef_search covers the table (up to 1,000 elements, live or dead), so
-- index scans must equal sequential scans.  That also catches a removed element whose heap TID was reused by
-- a new row: the index would return that row twice or at the old distance.
SET extra_float_digits = 0;

-- rand_vec() and knn(): see sql/include/hnsw_helpers.psql
\getenv abs_srcdir PG_ABS_SRCDIR
\set helpers :abs_srcdir '/sql/include/hnsw_helpers.psql'
\i :helpers

SELECT setseed(0.3);
CREATE TABLE items (id int, v vector(8)) WITH (autovacuum_enabled = off);
INSERT INTO items SELECT i, rand_vec(8) FROM generate_series(1, 800) i;
CREATE TABLE queries (qid int, v vector(8));
INSERT INTO queries SELECT i, rand_vec(8) FROM generate_series(1, 6) i;
CREATE INDEX items_l2 ON items USING hnsw (v vector_l2_ops);

-- Index against sequential scan for every query: the 30 nearest in the
-- same order; all rows the index returns, as a set, equal to the table's;
-- no row twice.
CREATE FUNCTION compare() RETURNS TABLE (queries bigint, same_top30 bigint,
										 same_rows bigint, no_duplicates bigint)
LANGUAGE sql AS $$
	SELECT count(*),
		   count(*) FILTER (WHERE knn(format('SELECT id FROM items ORDER BY v <-> %L LIMIT 30', q.v), true)
								= knn(format('SELECT id FROM items ORDER BY v <-> %L LIMIT 30', q.v), false)),
		   count(*) FILTER (WHERE (SELECT array_agg(DISTINCT x ORDER BY x) FROM unnest(a) x)
								IS NOT DISTINCT FROM (SELECT array_agg(id ORDER BY id) FROM items)),
		   count(*) FILTER (WHERE cardinality(a) = (SELECT count(DISTINCT x) FROM unnest(a) x))
	FROM queries q,
		 LATERAL knn(format('SELECT id FROM items ORDER BY v <-> %L LIMIT 2000', q.v), true) a
$$;

SET hnsw.ef_search = 1000;
CREATE TABLE sizes AS SELECT 'built' AS phase, pages FROM agentmem.hnsw_info('items_l2');
SELECT elements, deleted, unreachable, problems FROM agentmem.hnsw_info('items_l2');
SELECT * FROM compare();

-- ------------------------------------------------ delete half, then vacuum
DELETE FROM items WHERE id % 2 = 0;
-- before VACUUM the index still holds the elements; scans skip their rows
SELECT elements, deleted, problems FROM agentmem.hnsw_info('items_l2');
SELECT * FROM compare();
VACUUM items;
SELECT elements, deleted, unreachable, problems FROM agentmem.hnsw_info('items_l2');
SELECT * FROM agentmem.hnsw_check('items_l2');
SELECT * FROM compare();
-- VACUUM does not shrink the index: the pages stay, with free space
SELECT pages = (SELECT pages FROM sizes WHERE phase = 'built') AS same_pages FROM agentmem.hnsw_info('items_l2');

-- New rows take the freed heap TIDs and index space.  Without reuse the
-- index would grow by about 13 pages (400 elements of 256 bytes and more);
-- it may grow by a page or two where the random levels of the new elements
-- ask for more room than the old ones freed, or free space is fragmented.
INSERT INTO items SELECT i, rand_vec(8) FROM generate_series(1001, 1400) i;
SELECT count(*) > 0 AS rows_in_reused_heap_slots FROM items
WHERE id > 1000 AND (ctid::text::point)[0] < (SELECT max((ctid::text::point)[0]) FROM items WHERE id <= 1000);
SELECT elements, deleted, unreachable, problems FROM agentmem.hnsw_info('items_l2');
SELECT pages <= (SELECT pages FROM sizes WHERE phase = 'built') + 2 AS space_reused FROM agentmem.hnsw_info('items_l2');
SELECT * FROM agentmem.hnsw_check('items_l2');
SELECT * FROM compare();
-- a second VACUUM with nothing to remove changes nothing
VACUUM items;
SELECT elements, deleted, problems FROM agentmem.hnsw_info('items_l2');

-- --------------------------------------------------------------- UPDATE
-- a new vector is a new element; the old one goes with the old row version
UPDATE items SET v = rand_vec(8) WHERE id % 5 = 1;
SELECT elements, deleted, problems FROM agentmem.hnsw_info('items_l2');
SELECT * FROM compare();
VACUUM items;
SELECT elements, deleted, unreachable, problems FROM agentmem.hnsw_info('items_l2');
SELECT * FROM compare();

-- an insert rolled back leaves elements of dead rows until VACUUM
BEGIN;
INSERT INTO items SELECT i, rand_vec(8) FROM generate_series(2001, 2150) i;
ROLLBACK;
SELECT elements, problems FROM agentmem.hnsw_info('items_l2');
SELECT * FROM compare();
VACUUM items;
SELECT elements, deleted, unreachable, problems FROM agentmem.hnsw_info('items_l2');

-- ------------------------------------------------------------ heavy churn
-- Rounds of deleting a fifth of the rows, VACUUM and inserting as many:
-- the graph is repaired around removed elements, so it stays sound and
-- recall at the default ef_search does not decay; the index stays about
-- the size it had before (without reuse it would grow by 5 pages a round).
CREATE FUNCTION recall_at_40() RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE
	hits bigint := 0;
	q record;
BEGIN
	PERFORM set_config('hnsw.ef_search', '40', true);
	FOR q IN SELECT * FROM queries LOOP
		hits := hits + (SELECT count(*) FROM
			unnest(knn(format('SELECT id FROM items ORDER BY v <-> %L LIMIT 10', q.v), true)) a(id)
			JOIN unnest(knn(format('SELECT id FROM items ORDER BY v <-> %L LIMIT 10', q.v), false)) e(id)
			USING (id));
	END LOOP;
	RETURN hits / (10.0 * (SELECT count(*) FROM queries));
END $$;
INSERT INTO sizes SELECT 'before churn', pages FROM agentmem.hnsw_info('items_l2');
CREATE TABLE churn (round int, elements bigint, problems bigint, recall numeric, pages bigint);
SELECT format('DELETE FROM items WHERE id IN (SELECT id FROM items ORDER BY random() LIMIT 160)'),
	   'VACUUM items',
	   format('INSERT INTO items SELECT i, rand_vec(8) FROM generate_series(%s, %s) i',
			  3000 + 200 * r, 3159 + 200 * r),
	   format($$INSERT INTO churn SELECT %s, elements, problems, recall_at_40(), pages
			  FROM agentmem.hnsw_info('items_l2')$$, r)
FROM generate_series(1, 5) r \gexec
SELECT round, elements, problems, recall >= 0.9 AS recall_ok,
	   pages <= (SELECT pages FROM sizes WHERE phase = 'before churn') + 2 AS space_reused
FROM churn ORDER BY round;
SELECT * FROM agentmem.hnsw_check('items_l2');
SELECT * FROM compare();

-- ------------------------------------------------------- delete everything
-- The entry point goes too; the empty graph has none, and the next insert
-- becomes the new one.
DELETE FROM items;
VACUUM items;
SELECT elements, deleted, entry_level, problems FROM agentmem.hnsw_info('items_l2');
SELECT knn($$SELECT id FROM items ORDER BY v <-> '[0,0,0,0,0,0,0,0]' LIMIT 10$$, true) AS index_ids;
INSERT INTO items VALUES (1, '[1,1,1,1,1,1,1,1]'), (2, '[0,0,0,0,0,0,0,0]'), (3, '[2,2,2,2,2,2,2,2]');
SELECT elements, deleted, entry_level >= 0 AS has_entry, problems FROM agentmem.hnsw_info('items_l2');
SELECT knn($$SELECT id FROM items ORDER BY v <-> '[0.9,0.9,0.9,0.9,0.9,0.9,0.9,0.9]' LIMIT 10$$, true) AS index_ids;
SELECT * FROM agentmem.hnsw_check('items_l2');

-- most rows deleted (the entry point with them, most likely): the rest
-- stay reachable
INSERT INTO items SELECT i, rand_vec(8) FROM generate_series(10, 809) i;
DELETE FROM items WHERE id % 10 <> 3;
VACUUM items;
SELECT elements, deleted, unreachable, problems FROM agentmem.hnsw_info('items_l2');
SELECT * FROM agentmem.hnsw_check('items_l2');
SELECT * FROM compare();

-- An element whose incoming links all came from elements that are now
-- deleted: [2,...,2] lies outside the cube the other rows fill, next to
-- [1,...,1], which is deleted with most others.  The repair must leave it
-- reachable, or index scans lose its row.  (Three rounds, as the graph
-- differs every time.)
CREATE TABLE outlier (round int, elements bigint, unreachable bigint, missing bigint);
SELECT 'TRUNCATE items',
	   $$INSERT INTO items VALUES (1, '[1,1,1,1,1,1,1,1]'), (3, '[2,2,2,2,2,2,2,2]')$$,
	   'INSERT INTO items SELECT i, rand_vec(8) FROM generate_series(10, 809) i',
	   'DELETE FROM items WHERE id % 10 <> 3',
	   'VACUUM items',
	   format($$INSERT INTO outlier SELECT %s, elements, unreachable,
			  (SELECT count(*) FROM items) - cardinality(knn('SELECT id FROM items ORDER BY v <-> ''[0,0,0,0,0,0,0,0]'' LIMIT 1000', true))
			  FROM agentmem.hnsw_info('items_l2')$$, r)
FROM generate_series(1, 3) r \gexec
SELECT * FROM outlier ORDER BY round;
SELECT * FROM compare();

-- VACUUM FULL rebuilds the index
VACUUM FULL items;
SELECT elements, deleted, unreachable, problems FROM agentmem.hnsw_info('items_l2');
SELECT * FROM compare();
DROP TABLE churn, outlier;
DROP FUNCTION recall_at_40();

RESET hnsw.ef_search;
DROP FUNCTION compare();
DROP TABLE items, queries, sizes;
DROP FUNCTION knn(text, bool);
DROP FUNCTION rand_vec(int);
