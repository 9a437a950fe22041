-- agentmem.latency, statement_latency, latency_histogram, slo_check and
-- latency_reset: counts equal the statements run, percentiles are ordered,
-- reset forgets.  Timings vary, so only counts and comparisons are shown.
SET agentmem.track = 'all';
-- PostgreSQL's query identifiers here (stats_statement_id tests agentmem's fingerprints)
SET compute_query_id = on;
SET agentmem.n_plus_one_log = 'none';

-- queryid of a statement, from EXPLAIN (runs nested: not counted itself)
CREATE FUNCTION pg_temp.qid(q text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	plan json;
BEGIN
	EXECUTE 'EXPLAIN (VERBOSE, FORMAT JSON) ' || q INTO plan;
	RETURN (plan -> 0 ->> 'Query Identifier')::bigint;
END
$$;

CREATE TABLE stats_items (id int PRIMARY KEY, v vector(3));
INSERT INTO stats_items SELECT i, ARRAY[i % 7, i % 11, i % 13]::real[]::vector
	FROM generate_series(1, 200) i;

-- ------------------------------------------------ reset, then known work
SELECT agentmem.latency_reset();
SELECT operation, calls FROM agentmem.latency;

CREATE INDEX stats_items_v ON stats_items USING hnsw (v vector_l2_ops);
INSERT INTO stats_items VALUES (201, '[1,2,3]'), (202, '[3,2,1]'), (203, NULL);
SET enable_seqscan = off;
SELECT id FROM stats_items ORDER BY v <-> '[1,2,3]' LIMIT 1;
SELECT id FROM stats_items ORDER BY v <-> '[3,2,1]' LIMIT 1;
SELECT id FROM stats_items ORDER BY v <-> '[0,0,0]' LIMIT 2;
RESET enable_seqscan;
SELECT pg_sleep(0.01);
SELECT pg_sleep(0.01);
SELECT pg_sleep(0.01);

-- one build, two inserts (the NULL is not indexed), three scans;
-- statements: reset, the view, CREATE INDEX, INSERT, SET, 3 SELECTs,
-- RESET, 3 sleeps = 12
SELECT operation, calls FROM agentmem.latency;

-- percentiles are ordered and lie within [0, max]; mean <= max
SELECT operation, calls > 0 AS sampled,
	   p50_ms <= p90_ms AND p90_ms <= p95_ms AND p95_ms <= p99_ms AND
	   p99_ms <= p999_ms AND p999_ms <= max_ms AND mean_ms <= max_ms AND p50_ms >= 0 AS ordered
  FROM agentmem.latency WHERE calls > 0;

-- the sleeps: 3 calls of one queryid, each at least 10 ms
SELECT calls, p50_ms >= 10 AS p50_at_least_10ms, max_ms >= 10 AS max_at_least_10ms,
	   max_ms < 10000 AS max_sane, userid = 'postgres'::regrole AS mine,
	   dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AS this_db
  FROM agentmem.statement_latency WHERE queryid = pg_temp.qid('SELECT pg_sleep(0.01)');

-- the histogram's buckets add up to the calls and are ordered, non-empty
SELECT sum(count) AS bucket_total, bool_and(lower < upper) AS bounds_ok,
	   bool_and(count > 0) AS non_empty
  FROM agentmem.latency_histogram('hnsw_scan');
SELECT count(*) = (SELECT calls FROM agentmem.latency WHERE operation = 'all statements') AS all_counted
  FROM (SELECT generate_series(1, count::int) FROM agentmem.latency_histogram('all statements')) s;
SELECT count(*) AS empty_histogram FROM agentmem.latency_histogram('recall');

-- slo_check: one row per target
SELECT target, target_ms, calls, actual_ms > 0 AS has_actual, met
  FROM agentmem.slo_check('hnsw_build', 0, 1e9);
SELECT target, target_ms, calls, actual_ms, met
  FROM agentmem.slo_check('cache_put', 5, 50);

-- ------------------------------------------------ statement counts
SELECT agentmem.latency_reset();
SELECT count(*) AS five FROM stats_items WHERE id < 5;
SELECT count(*) AS five FROM stats_items WHERE id < 6;
SELECT count(*) AS five FROM stats_items WHERE id < 7;
PREPARE stats_q(int) AS SELECT count(*) FROM stats_items WHERE id < $1;
EXECUTE stats_q(3);
EXECUTE stats_q(4);
-- EXECUTE counts as the prepared statement, once per execution
SELECT calls FROM agentmem.statement_latency
 WHERE queryid = pg_temp.qid('SELECT count(*) FROM stats_items WHERE id < 5');
SELECT calls FROM agentmem.statement_latency
 WHERE queryid = pg_temp.qid('EXECUTE stats_q(3)');
DEALLOCATE stats_q;
-- nested statements (inside a function) are not top-level
DO $$ BEGIN FOR i IN 1..20 LOOP PERFORM count(*) FROM stats_items WHERE id < i; END LOOP; END $$;
SELECT calls FROM agentmem.statement_latency
 WHERE queryid = pg_temp.qid('SELECT count(*) FROM stats_items WHERE id < 5');
-- reset + 3 counts + PREPARE (not counted) + 2 EXECUTE + 2 SELECT + DEALLOCATE
-- (not counted) + DO + 1 SELECT = 10; a statement is counted when it ends
SELECT calls FROM agentmem.latency WHERE operation = 'all statements';
-- the same 10, and the query above
SELECT sum(calls) AS by_statement FROM agentmem.statement_latency;

-- ------------------------------------------------ track = agentmem, none
SELECT agentmem.latency_reset();
SET agentmem.track = 'agentmem';
SELECT count(*) FROM stats_items;
SET enable_seqscan = off;
SELECT id FROM stats_items ORDER BY v <-> '[1,2,3]' LIMIT 1;
RESET enable_seqscan;
SET agentmem.track = 'none';
SET enable_seqscan = off;
SELECT id FROM stats_items ORDER BY v <-> '[1,2,3]' LIMIT 1;
RESET enable_seqscan;
SET agentmem.track = 'all';
-- only the reset, the first SET and the scan under 'agentmem' were recorded
SELECT operation, calls FROM agentmem.latency WHERE calls > 0;

-- ------------------------------------------------ reset forgets
SELECT agentmem.latency_reset();
SELECT operation, calls FROM agentmem.latency WHERE calls > 0;
-- the reset and the query on agentmem.latency just above
SELECT count(*) AS statements_left FROM agentmem.statement_latency;
SELECT count(*) AS n_plus_one_left FROM agentmem.n_plus_one;

DROP TABLE stats_items;
