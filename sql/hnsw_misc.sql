-- hnsw: unlogged and temporary tables, REINDEX, CREATE INDEX CONCURRENTLY,
-- REINDEX CONCURRENTLY, a build that outgrows maintenance_work_mem, and
-- what the access method refuses (CLUSTER).
SET extra_float_digits = 0;

-- rand_vec() and knn(): see sql/include/hnsw_helpers.psql
\getenv abs_srcdir PG_ABS_SRCDIR
\set helpers :abs_srcdir '/sql/include/hnsw_helpers.psql'
\i :helpers

-- Index against sequential scan on table `tbl` with operator `op` for four
-- fixed queries: the 20 nearest in order, and every row as a set.
CREATE FUNCTION compare(tbl text, op text, dim int)
RETURNS TABLE (queries bigint, same_top20 bigint, same_rows bigint) LANGUAGE sql AS $$
	WITH q AS (SELECT array_fill((g - 2.5)::real / 4, ARRAY[dim])::vector AS v FROM generate_series(1, 4) g)
	SELECT count(*),
		   count(*) FILTER (WHERE knn(format('SELECT id FROM %s ORDER BY v %s %L LIMIT 20', tbl, op, q.v), true)
								= knn(format('SELECT id FROM %s ORDER BY v %s %L LIMIT 20', tbl, op, q.v), false)),
		   count(*) FILTER (WHERE (SELECT array_agg(x ORDER BY x) FROM unnest(
									knn(format('SELECT id FROM %s ORDER BY v %s %L LIMIT 1000', tbl, op, q.v), true)) x)
								= knn(format('SELECT id FROM %s ORDER BY id', tbl), false))
	FROM q
$$;
SET hnsw.ef_search = 1000;
SELECT setseed(0.9);

-- ---------------------------------------------------------- unlogged
-- The init fork holds an empty index (one metapage), the main fork the
-- real one.
CREATE UNLOGGED TABLE ul (id int, v vector(4));
INSERT INTO ul SELECT i, rand_vec(4) FROM generate_series(1, 300) i;
CREATE INDEX ul_cos ON ul USING hnsw (v vector_cosine_ops);
SELECT relpersistence FROM pg_class WHERE relname = 'ul_cos';
SELECT (pg_stat_file(pg_relation_filepath('ul_cos') || '_init')).size AS init_fork_bytes;
INSERT INTO ul SELECT i, rand_vec(4) FROM generate_series(301, 400) i;
SELECT elements, problems FROM agentmem.hnsw_info('ul_cos');
SELECT * FROM agentmem.hnsw_check('ul_cos');
SELECT * FROM compare('ul', '<=>', 4);
-- an unlogged table created empty, then filled
CREATE UNLOGGED TABLE ul2 (id int, v vector(4));
CREATE INDEX ul2_l1 ON ul2 USING hnsw (v vector_l1_ops);
SELECT (pg_stat_file(pg_relation_filepath('ul2_l1') || '_init')).size AS init_fork_bytes;
INSERT INTO ul2 SELECT i, rand_vec(4) FROM generate_series(1, 200) i;
DELETE FROM ul2 WHERE id % 3 = 0;
VACUUM ul2;
SELECT elements, deleted, problems FROM agentmem.hnsw_info('ul2_l1');
SELECT * FROM agentmem.hnsw_check('ul2_l1');
SELECT * FROM compare('ul2', '<+>', 4);
-- and a logged table turned unlogged and back rewrites its index
ALTER TABLE ul2 SET LOGGED;
SELECT relpersistence FROM pg_class WHERE relname = 'ul2_l1';
SELECT * FROM agentmem.hnsw_check('ul2_l1');
SELECT * FROM compare('ul2', '<+>', 4);
DROP TABLE ul, ul2;

-- ------------------------------------------------------------- temporary
CREATE TEMP TABLE tmp (id int, v vector(4));
INSERT INTO tmp SELECT i, rand_vec(4) FROM generate_series(1, 200) i;
CREATE INDEX tmp_ip ON tmp USING hnsw (v vector_ip_ops);
INSERT INTO tmp SELECT i, rand_vec(4) FROM generate_series(201, 300) i;
SELECT elements, problems FROM agentmem.hnsw_info('tmp_ip');
SELECT * FROM compare('tmp', '<#>', 4);
DROP TABLE tmp;

-- ----------------------------------------------------- REINDEX, CONCURRENTLY
CREATE TABLE items (id int, v vector(4));
INSERT INTO items SELECT i, rand_vec(4) FROM generate_series(1, 400) i;
CREATE INDEX items_l2 ON items USING hnsw (v vector_l2_ops) WITH (m = 6, ef_construction = 20);
DELETE FROM items WHERE id % 4 = 0;
REINDEX INDEX items_l2;
SELECT elements, deleted, m, problems FROM agentmem.hnsw_info('items_l2');
SELECT * FROM compare('items', '<->', 4);
REINDEX TABLE items;
SELECT elements, deleted, m, problems FROM agentmem.hnsw_info('items_l2');
-- concurrently: a new index replaces the old, reloptions kept
SELECT pg_relation_filenode('items_l2') AS old_filenode \gset
REINDEX INDEX CONCURRENTLY items_l2;
SELECT pg_relation_filenode('items_l2') <> :old_filenode AS rebuilt,
	   (SELECT reloptions FROM pg_class WHERE relname = 'items_l2') AS reloptions;
SELECT elements, deleted, m, problems FROM agentmem.hnsw_info('items_l2');
SELECT * FROM agentmem.hnsw_check('items_l2');
SELECT * FROM compare('items', '<->', 4);
REINDEX TABLE CONCURRENTLY items;
SELECT * FROM agentmem.hnsw_check('items_l2');
DROP INDEX items_l2;

-- CREATE INDEX CONCURRENTLY, which cannot run in a transaction block
BEGIN;
CREATE INDEX CONCURRENTLY items_cic ON items USING hnsw (v vector_l2_ops);
ROLLBACK;
CREATE INDEX CONCURRENTLY items_cic ON items USING hnsw (v vector_l2_ops);
SELECT indisvalid, indisready FROM pg_index WHERE indexrelid = 'items_cic'::regclass;
INSERT INTO items SELECT i, rand_vec(4) FROM generate_series(401, 500) i;
SELECT elements, problems FROM agentmem.hnsw_info('items_cic');
SELECT * FROM agentmem.hnsw_check('items_cic');
SELECT * FROM compare('items', '<->', 4);
DROP INDEX CONCURRENTLY items_cic;
-- a failed CREATE INDEX CONCURRENTLY leaves an invalid index, which
-- REINDEX repairs
CREATE INDEX CONCURRENTLY items_bad ON items USING hnsw (v vector_l2_ops) WITH (m = 50);
SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_bad'::regclass;
DROP INDEX items_bad;

-- CLUSTER needs an index that can order the table by itself
CREATE INDEX items_l2 ON items USING hnsw (v);
CLUSTER items USING items_l2;
DROP TABLE items;

-- ------------------------------------------------- maintenance_work_mem
-- 1MB holds the in-memory graph of a few hundred of these 192-d rows; the
-- build then writes what it has and inserts the rest on disk.  (The NOTICE
-- says after how many rows, which depends on the random levels, so it is
-- checked by t/025_hnsw_build.t; here only the result.)
CREATE TABLE mwm (id int, v vector(192));
INSERT INTO mwm SELECT i, rand_vec(192) FROM generate_series(1, 800) i;
SET maintenance_work_mem = '1MB';
SET client_min_messages = warning;
CREATE INDEX mwm_l2 ON mwm USING hnsw (v vector_l2_ops);
CREATE INDEX mwm_cos ON mwm USING hnsw (v vector_cosine_ops) WITH (m = 8, ef_construction = 16);
RESET client_min_messages;
RESET maintenance_work_mem;
SELECT elements, deleted, unreachable, problems FROM agentmem.hnsw_info('mwm_l2');
SELECT elements, deleted, unreachable, problems FROM agentmem.hnsw_info('mwm_cos');
SELECT * FROM agentmem.hnsw_check('mwm_l2');
SELECT * FROM agentmem.hnsw_check('mwm_cos');
SELECT * FROM compare('mwm', '<->', 192);
SELECT * FROM compare('mwm', '<=>', 192);
DROP TABLE mwm;

RESET hnsw.ef_search;
DROP FUNCTION compare(text, text, int);
DROP FUNCTION knn(text, bool);
DROP FUNCTION rand_vec(int);
