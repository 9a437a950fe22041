-- hnsw: reloptions, settings and every error a user can provoke, each with
-- its SQLSTATE, and that a failed statement leaves nothing half-written.
SET extra_float_digits = 0;

CREATE FUNCTION expect_error(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

CREATE TABLE t (id int, v vector(3));
INSERT INTO t SELECT i, ARRAY[i, i % 7, i % 3]::real[] FROM generate_series(1, 50) i;

-- ------------------------------------------------------------ reloptions
-- m is 2..100, ef_construction 4..1000 (22023)
SELECT expect_error($$CREATE INDEX bad ON t USING hnsw (v) WITH (m = 1)$$);
SELECT expect_error($$CREATE INDEX bad ON t USING hnsw (v) WITH (m = 101)$$);
SELECT expect_error($$CREATE INDEX bad ON t USING hnsw (v) WITH (m = 0)$$);
SELECT expect_error($$CREATE INDEX bad ON t USING hnsw (v) WITH (m = -16)$$);
SELECT expect_error($$CREATE INDEX bad ON t USING hnsw (v) WITH (m = 'sixteen')$$);
SELECT expect_error($$CREATE INDEX bad ON t USING hnsw (v) WITH (ef_construction = 3)$$);
SELECT expect_error($$CREATE INDEX bad ON t USING hnsw (v) WITH (ef_construction = 1001)$$);
-- ef_construction must be at least 2 * m, with m given or the default 16
SELECT expect_error($$CREATE INDEX bad ON t USING hnsw (v) WITH (m = 16, ef_construction = 31)$$);
SELECT expect_error($$CREATE INDEX bad ON t USING hnsw (v) WITH (ef_construction = 20)$$);
SELECT expect_error($$CREATE INDEX bad ON t USING hnsw (v) WITH (m = 40)$$);
SELECT expect_error($$CREATE INDEX bad ON t USING hnsw (v) WITH (m = 100, ef_construction = 199)$$);
-- unknown options
SELECT expect_error($$CREATE INDEX bad ON t USING hnsw (v) WITH (ef_search = 10)$$);
SELECT expect_error($$CREATE INDEX bad ON t USING hnsw (v) WITH (lists = 100)$$);
-- none of the failures left an index behind
SELECT count(*) FROM pg_class WHERE relname = 'bad';

-- the limits themselves are accepted, and an index built with them works
CREATE INDEX t_min ON t USING hnsw (v) WITH (m = 2, ef_construction = 4);
CREATE INDEX t_max ON t USING hnsw (v) WITH (m = 100, ef_construction = 1000);
CREATE INDEX t_eq ON t USING hnsw (v) WITH (m = 16, ef_construction = 32);
CREATE INDEX t_def ON t USING hnsw (v);
SELECT c.relname, c.reloptions, i.m, i.elements, i.problems
FROM pg_class c, agentmem.hnsw_info(c.oid) i
WHERE c.relname IN ('t_min', 't_max', 't_eq', 't_def') ORDER BY c.relname;
SELECT count(*) FROM agentmem.hnsw_check('t_min');
SELECT count(*) FROM agentmem.hnsw_check('t_max');
-- ALTER INDEX validates the same ranges
SELECT expect_error($$ALTER INDEX t_def SET (m = 1)$$);
SELECT expect_error($$ALTER INDEX t_def SET (ef_construction = 1001)$$);
SELECT expect_error($$ALTER INDEX t_def SET (foo = 1)$$);
DROP INDEX t_min, t_max, t_eq, t_def;

-- ------------------------------------------------------ what can be indexed
-- a column without dimensions (22023)
CREATE TABLE nodim (id int, v vector);
INSERT INTO nodim VALUES (1, '[1,2]'), (2, '[1,2,3]');
SELECT expect_error($$CREATE INDEX ON nodim USING hnsw (v)$$);
SELECT expect_error($$CREATE INDEX ON nodim USING hnsw (v vector_cosine_ops)$$);
-- an empty one too
TRUNCATE nodim;
SELECT expect_error($$CREATE INDEX ON nodim USING hnsw (v)$$);
SELECT count(*) FROM pg_indexes WHERE tablename = 'nodim';
DROP TABLE nodim;

-- at most 2000 dimensions (54000)
CREATE TABLE d2001 (id int, v vector(2001));
SELECT expect_error($$CREATE INDEX ON d2001 USING hnsw (v)$$);
SELECT expect_error($$CREATE INDEX ON d2001 USING hnsw (v vector_l1_ops)$$);
DROP TABLE d2001;

-- exactly 2000 is accepted: build, query, and insert afterwards (each row
-- needs an element tuple of 8,016 bytes, more than half a page)
CREATE TABLE d2000 (id int, v vector(2000));
INSERT INTO d2000 SELECT i, array_fill(i::real, ARRAY[2000])::vector FROM generate_series(1, 4) i;
CREATE INDEX d2000_l2 ON d2000 USING hnsw (v);
SELECT elements, problems FROM agentmem.hnsw_info('d2000_l2');
SELECT * FROM agentmem.hnsw_check('d2000_l2');
SET enable_seqscan = off;
SELECT id FROM d2000 ORDER BY v <-> array_fill(2.2::real, ARRAY[2000])::vector LIMIT 3;
SELECT expect_error($$INSERT INTO d2000 SELECT i, array_fill(i::real, ARRAY[2000])::vector FROM generate_series(5, 8) i$$);
SELECT count(*) FROM d2000;
SELECT elements, problems FROM agentmem.hnsw_info('d2000_l2');
SELECT * FROM agentmem.hnsw_check('d2000_l2');
SELECT id FROM d2000 ORDER BY v <-> array_fill(6.2::real, ARRAY[2000])::vector LIMIT 3;
-- and inserts into an index that was empty when built
CREATE TABLE d2000e (id int, v vector(2000));
CREATE INDEX d2000e_cos ON d2000e USING hnsw (v vector_cosine_ops);
SELECT expect_error($$INSERT INTO d2000e SELECT i, array_fill(i::real, ARRAY[2000])::vector FROM generate_series(1, 3) i$$);
SELECT count(*) FROM d2000e;
SELECT * FROM agentmem.hnsw_check('d2000e_cos');
RESET enable_seqscan;
DROP TABLE d2000, d2000e;

-- what the access method does not support (0A000) and other types (42704)
CREATE TABLE two (id int, a vector(2), b vector(2));
SELECT expect_error($$CREATE INDEX ON two USING hnsw (a, b)$$);
SELECT expect_error($$CREATE UNIQUE INDEX ON two USING hnsw (a)$$);
SELECT expect_error($$CREATE INDEX ON two USING hnsw (a) INCLUDE (id)$$);
SELECT expect_error($$CREATE INDEX ON two USING hnsw (id)$$);
SELECT expect_error($$CREATE INDEX ON two USING hnsw (a vector_ops)$$);
SELECT expect_error($$CREATE INDEX ON two USING hnsw (a int4_ops)$$);
DROP TABLE two;

-- an operator class whose distance function the access method does not know
CREATE OPERATOR CLASS vector_bad_ops FOR TYPE vector USING hnsw AS
	OPERATOR 1 <-> (vector, vector) FOR ORDER BY float_ops,
	FUNCTION 1 l2_distance(vector, vector);
SELECT expect_error($$CREATE INDEX bad ON t USING hnsw (v vector_bad_ops)$$);
DROP OPERATOR CLASS vector_bad_ops USING hnsw;

-- --------------------------------------------------- bad queries and rows
CREATE INDEX t_l2 ON t USING hnsw (v);
SET enable_seqscan = off;
-- a query vector of other dimensions (22000), through the index
SELECT expect_error($$SELECT id FROM t ORDER BY v <-> '[1,2]' LIMIT 1$$);
SELECT expect_error($$SELECT id FROM t ORDER BY v <-> '[1,2,3,4]' LIMIT 1$$);
-- the same error as without the index
RESET enable_seqscan;
DROP INDEX t_l2;
SELECT expect_error($$SELECT id FROM t ORDER BY v <-> '[1,2]' LIMIT 1$$);
CREATE INDEX t_l2 ON t USING hnsw (v);
-- rows of other dimensions are refused by the column type before the index
SELECT expect_error($$INSERT INTO t VALUES (100, '[1,2]')$$);
SELECT expect_error($$INSERT INTO t VALUES (100, '[1,2,3]'), (101, '[1,2,3,4]')$$);
SELECT expect_error($$UPDATE t SET v = '[1,2]' WHERE id = 1$$);
-- nothing half-written: the index has the table's 50 rows and is sound
SELECT count(*) FROM t;
SELECT elements, deleted, problems FROM agentmem.hnsw_info('t_l2');
-- an insert that fails after the index insert (a constraint checked later)
-- leaves an element behind whose row is dead: it must never be returned
CREATE UNIQUE INDEX t_id ON t (id);
SELECT expect_error($$INSERT INTO t VALUES (1, '[100,100,100]')$$);
SET enable_seqscan = off;
SET hnsw.ef_search = 100;
SELECT id FROM t ORDER BY v <-> '[100,100,100]' LIMIT 2;
SELECT count(*) FROM (SELECT id FROM t ORDER BY v <-> '[100,100,100]' LIMIT 100) s;
SELECT * FROM agentmem.hnsw_check('t_l2');
RESET hnsw.ef_search;
RESET enable_seqscan;

-- ------------------------------------------------------------ settings
SHOW hnsw.ef_search;
SHOW hnsw.iterative_scan;
SHOW hnsw.max_scan_tuples;
SELECT expect_error($$SET hnsw.ef_search = 0$$);
SELECT expect_error($$SET hnsw.ef_search = 1001$$);
SELECT expect_error($$SET hnsw.ef_search = -1$$);
SELECT expect_error($$SET hnsw.ef_search = 'forty'$$);
SELECT expect_error($$SET hnsw.iterative_scan = 'on'$$);
SELECT expect_error($$SET hnsw.iterative_scan = 'strict'$$);
SELECT expect_error($$SET hnsw.max_scan_tuples = 0$$);
-- the hnsw prefix is reserved: a misspelt setting is an error, not a no-op
SELECT expect_error($$SET hnsw.efsearch = 10$$);
-- the limits are accepted
SET hnsw.ef_search = 1;
SET hnsw.ef_search = 1000;
SET hnsw.iterative_scan = relaxed_order;
SET hnsw.iterative_scan = strict_order;
SET hnsw.iterative_scan = off;
SET hnsw.max_scan_tuples = 1;
SHOW hnsw.ef_search;
SHOW hnsw.max_scan_tuples;
RESET hnsw.ef_search;
RESET hnsw.iterative_scan;
RESET hnsw.max_scan_tuples;
-- failed SETs changed nothing
SHOW hnsw.ef_search;

-- ------------------------------------------------------ the verifier itself
SELECT expect_error($$SELECT * FROM agentmem.hnsw_check('t')$$);
SELECT expect_error($$SELECT * FROM agentmem.hnsw_check('t_id')$$);
SELECT expect_error($$SELECT * FROM agentmem.hnsw_info('t_id')$$);
SELECT * FROM agentmem.hnsw_check(NULL);
-- not for everyone
CREATE ROLE regress_hnsw_user;
GRANT SELECT ON t TO regress_hnsw_user;
GRANT USAGE ON SCHEMA agentmem TO regress_hnsw_user;
SET ROLE regress_hnsw_user;
SELECT expect_error($$SELECT * FROM agentmem.hnsw_check('t_l2')$$);
SELECT expect_error($$SELECT * FROM agentmem.hnsw_info('t_l2')$$);
-- but the index is
SELECT count(*) FROM (SELECT id FROM t ORDER BY v <-> '[1,1,1]' LIMIT 5) s;
RESET ROLE;
REVOKE ALL ON t FROM regress_hnsw_user;
REVOKE USAGE ON SCHEMA agentmem FROM regress_hnsw_user;
DROP ROLE regress_hnsw_user;

DROP TABLE t;
DROP FUNCTION expect_error(text);
