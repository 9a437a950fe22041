-- hnsw: iterative index scans (hnsw.iterative_scan, hnsw.max_scan_tuples).
--
-- 20,000 random rows; 1% of them (cat = 7) match the filter, and none of
-- those is among the 300 rows nearest the query, so a scan that stops
-- after ef_search = 40 candidates finds no matching row at all, whatever
-- graph the random levels produced, while an iterative scan must go on
-- until it has the 10 rows asked for.
SET extra_float_digits = 0;

CREATE FUNCTION rand_vec(dim int) RETURNS vector LANGUAGE sql VOLATILE AS $$
	SELECT array_agg(random() * 2 - 1)::vector FROM generate_series(1, dim)
$$;

SELECT setseed(0.7);
CREATE TEMP TABLE raw AS SELECT i AS id, rand_vec(8) AS v FROM generate_series(1, 20000) i;
CREATE TABLE items (id int, cat int, v vector(8));
INSERT INTO items
SELECT id, CASE WHEN id % 100 = 7 AND rank <= 300 THEN 100 ELSE id % 100 END AS cat, v
FROM (SELECT id, v, row_number() OVER (ORDER BY v <-> '[0,0,0,0,0,0,0,0]', id) AS rank FROM raw) r;
DROP TABLE raw;
SELECT count(*) AS rows, count(*) FILTER (WHERE cat = 7) AS matching FROM items;
CREATE INDEX items_l2 ON items USING hnsw (v vector_l2_ops);
ANALYZE items;

-- the exact answer, by sequential scan
SET enable_indexscan = off;
CREATE TABLE exact AS
SELECT id, v <-> '[0,0,0,0,0,0,0,0]' AS d FROM items WHERE cat = 7
ORDER BY v <-> '[0,0,0,0,0,0,0,0]' LIMIT 10;
RESET enable_indexscan;

SET enable_seqscan = off;
EXPLAIN (COSTS OFF)
SELECT id FROM items WHERE cat = 7 ORDER BY v <-> '[0,0,0,0,0,0,0,0]' LIMIT 10;

-- Fails unless the query's plan scans the hnsw index.
CREATE FUNCTION assert_index_scan(query text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	plan text := '';
	line text;
BEGIN
	FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || query LOOP
		plan := plan || line || E'\n';
	END LOOP;
	IF plan NOT LIKE '%Index Scan using items_l2%' THEN
		RAISE EXCEPTION 'not an index scan: %', plan;
	END IF;
END $$;

-- Run the filtered query and summarise: rows returned, distinct ids, rows
-- in non-decreasing distance order, and how many of the exact 10.
CREATE FUNCTION filtered(k int DEFAULT 10)
RETURNS TABLE (iterative_scan text, returned bigint, distinct_ids bigint,
			   in_order bool, of_exact_top10 bigint) LANGUAGE plpgsql AS $$
BEGIN
	PERFORM assert_index_scan(format($q$SELECT id FROM items WHERE cat = 7
		ORDER BY v <-> '[0,0,0,0,0,0,0,0]' LIMIT %s$q$, k));
	RETURN QUERY
	WITH r AS (
		SELECT row_number() OVER () AS n, id, d FROM (
			SELECT id, v <-> '[0,0,0,0,0,0,0,0]' AS d FROM items WHERE cat = 7
			ORDER BY v <-> '[0,0,0,0,0,0,0,0]' LIMIT k) s)
	SELECT current_setting('hnsw.iterative_scan'), count(*), count(DISTINCT id),
		   coalesce(bool_and(d >= coalesce(prev, 0)), true),
		   (SELECT count(*) FROM r JOIN exact USING (id))
	FROM (SELECT id, d, lag(d) OVER (ORDER BY n) AS prev FROM r) s;
END $$;

-- off: only the ef_search nearest are candidates, none of them matches
SET hnsw.iterative_scan = off;
SELECT * FROM filtered();
-- on: ten rows, found among the nearest matching ones
SET hnsw.iterative_scan = relaxed_order;
SELECT iterative_scan, returned, distinct_ids, of_exact_top10 >= 8 AS recall_ok FROM filtered();
SET hnsw.iterative_scan = strict_order;
SELECT iterative_scan, returned, distinct_ids, in_order, of_exact_top10 >= 8 AS recall_ok FROM filtered();
-- with a larger ef_search as well
SET hnsw.ef_search = 200;
SELECT iterative_scan, returned, distinct_ids, in_order, of_exact_top10 >= 9 AS recall_ok FROM filtered();
SET hnsw.iterative_scan = relaxed_order;
SELECT iterative_scan, returned, distinct_ids, of_exact_top10 >= 9 AS recall_ok FROM filtered();
RESET hnsw.ef_search;
-- and with ef_search 1 (a batch of one row at a time)
SET hnsw.ef_search = 1;
SET hnsw.iterative_scan = strict_order;
SELECT iterative_scan, returned, distinct_ids, in_order FROM filtered();
RESET hnsw.ef_search;

-- hnsw.max_scan_tuples stops the scan: after ~100 rows it has not reached
-- any matching row (the nearest is beyond rank 300), after 20,000 it has
SET hnsw.max_scan_tuples = 100;
SET hnsw.iterative_scan = relaxed_order;
SELECT iterative_scan, returned FROM filtered();
SET hnsw.iterative_scan = strict_order;
SELECT iterative_scan, returned FROM filtered();
SET hnsw.max_scan_tuples = 20000;
SELECT iterative_scan, returned FROM filtered();
RESET hnsw.max_scan_tuples;

-- -------------------------------------------------- without a filter
-- off: at most ef_search rows, even when more are asked for
CREATE FUNCTION nearest(k int)
RETURNS TABLE (iterative_scan text, returned bigint, distinct_ids bigint, in_order bool)
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM assert_index_scan(format($q$SELECT id FROM items
		ORDER BY v <-> '[0.3,0,0,0,0,0,0,-0.3]' LIMIT %s$q$, k));
	RETURN QUERY
	WITH r AS (
		SELECT row_number() OVER () AS n, id, d FROM (
			SELECT id, v <-> '[0.3,0,0,0,0,0,0,-0.3]' AS d FROM items
			ORDER BY v <-> '[0.3,0,0,0,0,0,0,-0.3]' LIMIT k) s)
	SELECT current_setting('hnsw.iterative_scan'), count(*), count(DISTINCT id),
		   coalesce(bool_and(d >= coalesce(prev, 0)), true)
	FROM (SELECT id, d, lag(d) OVER (ORDER BY n) AS prev FROM r) s;
END $$;
SET hnsw.iterative_scan = off;
SELECT * FROM nearest(100);
SET hnsw.ef_search = 7;
SELECT * FROM nearest(100);
RESET hnsw.ef_search;
-- on: as many as asked for, never the same row twice
SET hnsw.iterative_scan = relaxed_order;
SELECT iterative_scan, returned, distinct_ids FROM nearest(500);
SET hnsw.iterative_scan = strict_order;
SELECT * FROM nearest(500);
-- an iterative scan with no limit on tuples walks the whole graph: every
-- row exactly once (every element is reachable)
SET hnsw.max_scan_tuples = 1000000;
SET hnsw.iterative_scan = relaxed_order;
SELECT iterative_scan, returned, distinct_ids FROM nearest(30000);
RESET hnsw.max_scan_tuples;
SELECT count(*) FROM agentmem.hnsw_check('items_l2');

-- the setting is read when a scan starts: a LATERAL scan rescanned per
-- outer row follows it, and every outer row gets its 3 matching rows
SET hnsw.iterative_scan = relaxed_order;
SELECT count(*) AS rows, count(DISTINCT q.g) AS queries
FROM generate_series(1, 5) q(g)
CROSS JOIN LATERAL (SELECT id FROM items WHERE cat = 7
					ORDER BY v <-> array_fill(q.g / 100.0, ARRAY[8])::vector LIMIT 3) n;

-- A backend reuses one search state from scan to scan.  Scans open at
-- once must not share it: under an outer scan that resumes its search
-- between the inner scans of a LATERAL join (cat = 7 is far from the
-- query), both return what the same queries return one at a time.
SET hnsw.iterative_scan = relaxed_order;
CREATE TEMP TABLE outer_alone AS
SELECT id FROM items WHERE cat = 7 ORDER BY v <-> '[0,0,0,0,0,0,0,0]' LIMIT 5;
CREATE TEMP TABLE nested AS
SELECT o.id AS outer_id, n.id, n.rank
FROM (SELECT id, v FROM items WHERE cat = 7 ORDER BY v <-> '[0,0,0,0,0,0,0,0]' LIMIT 5) o
CROSS JOIN LATERAL (SELECT id, row_number() OVER () AS rank FROM (
	SELECT id FROM items ORDER BY v <-> o.v LIMIT 4) i) n;
CREATE TEMP TABLE alone (outer_id int, id int, rank bigint);
DO $$
DECLARE
	o record;
BEGIN
	FOR o IN SELECT DISTINCT outer_id FROM nested LOOP
		INSERT INTO alone
		SELECT o.outer_id, id, row_number() OVER () FROM (
			SELECT id FROM items
			ORDER BY v <-> (SELECT v FROM items WHERE id = o.outer_id) LIMIT 4) i;
	END LOOP;
END $$;
SELECT count(*) AS nested_rows,
	   (SELECT count(*) FROM nested JOIN alone USING (outer_id, id, rank)) AS same_as_alone,
	   (SELECT count(DISTINCT outer_id) FROM nested JOIN outer_alone ON outer_id = outer_alone.id)
		   AS outer_same_as_alone
FROM nested;
-- a scan that fails midway (in a subtransaction, then at top level) leaves
-- later scans their own state: same rows as before the failures
CREATE TEMP TABLE before AS
SELECT id FROM items ORDER BY v <-> '[0.2,0,0,0,0,0,0,0.2]' LIMIT 20;
CREATE FUNCTION fail_at(target int, n int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
	IF n = target THEN
		RAISE EXCEPTION 'failing on purpose at row %', n;
	END IF;
	RETURN n;
END $$;
DO $$
BEGIN
	BEGIN
		PERFORM fail_at(7, (row_number() OVER ())::int) FROM (
			SELECT id FROM items ORDER BY v <-> '[0.2,0,0,0,0,0,0,0.2]' LIMIT 20) s;
	EXCEPTION WHEN raise_exception THEN
		RAISE NOTICE 'caught: %', SQLERRM;
	END;
	IF (SELECT count(*) FROM (SELECT id FROM items
			ORDER BY v <-> '[0.2,0,0,0,0,0,0,0.2]' LIMIT 20) s JOIN before USING (id)) <> 20 THEN
		RAISE EXCEPTION 'a scan after the failed one returned other rows';
	END IF;
END $$;
SELECT fail_at(7, (row_number() OVER ())::int) FROM (
	SELECT id FROM items ORDER BY v <-> '[0.2,0,0,0,0,0,0,0.2]' LIMIT 20) s;
SELECT count(*) AS same_rows FROM (
	SELECT id FROM items ORDER BY v <-> '[0.2,0,0,0,0,0,0,0.2]' LIMIT 20) s JOIN before USING (id);
-- hnsw.ef_search raised between the fetches of a cursor: the later,
-- larger batches are returned whole, each row once
CREATE FUNCTION fetch_growing() RETURNS TABLE (fetched bigint, distinct_ids bigint)
LANGUAGE plpgsql AS $$
DECLARE
	c refcursor;
	r record;
	ids int[] := '{}';
BEGIN
	PERFORM set_config('hnsw.ef_search', '5', true);
	OPEN c NO SCROLL FOR SELECT id FROM items ORDER BY v <-> '[0,0,0.4,0,0,0,0,0]';
	FOR i IN 1..2000 LOOP
		IF i = 4 THEN
			PERFORM set_config('hnsw.ef_search', '300', true);
		END IF;
		FETCH c INTO r;
		EXIT WHEN NOT FOUND;
		ids := ids || r.id;
	END LOOP;
	CLOSE c;
	RETURN QUERY SELECT count(*), count(DISTINCT x) FROM unnest(ids) x;
END $$;
SELECT * FROM fetch_growing();
RESET hnsw.ef_search;

RESET hnsw.iterative_scan;
RESET enable_seqscan;
DROP TABLE nested, alone, outer_alone, before;
DROP FUNCTION fail_at(int, int);
DROP FUNCTION fetch_growing();
DROP FUNCTION filtered(int);
DROP FUNCTION nearest(int);
DROP FUNCTION assert_index_scan(text);
DROP TABLE items, exact;
DROP FUNCTION rand_vec(int);
