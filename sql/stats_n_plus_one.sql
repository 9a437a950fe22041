-- N+1 detection: a statement repeated agentmem.n_plus_one_threshold (5)
-- times in one transaction, or in one burst of autocommit statements, is
-- recorded in agentmem.n_plus_one and reported per agentmem.n_plus_one_log.
SET agentmem.track = 'all';
-- PostgreSQL's query identifiers here (stats_statement_id tests agentmem's fingerprints)
SET compute_query_id = on;
SET agentmem.n_plus_one_log = 'notice';
SHOW agentmem.n_plus_one_threshold;
SHOW agentmem.n_plus_one_burst_gap;

CREATE TABLE n1_items (id int PRIMARY KEY, body text);
INSERT INTO n1_items SELECT i, 'item ' || i FROM generate_series(1, 100) i;
SELECT agentmem.latency_reset();

-- a loop of 10 single-row SELECTs by id in one transaction: reported once
BEGIN;
SELECT format('SELECT body FROM n1_items WHERE id = %s', i) FROM generate_series(1, 10) i
\gexec
COMMIT;

SELECT query, occurrences, max_repeats, total_ms > 0 AS timed,
	   last_seen <= now() + interval '1 minute' AS seen, userid = 'postgres'::regrole AS mine
  FROM agentmem.n_plus_one;

-- the batched form, one SELECT with = ANY(array), is not
BEGIN;
SELECT body FROM n1_items WHERE id = ANY (ARRAY[11, 12, 13, 14, 15, 16, 17, 18, 19, 20]) ORDER BY id;
COMMIT;
SELECT count(*) AS batched_reported FROM agentmem.n_plus_one WHERE query LIKE '%ANY%';

-- four repeats stay under the threshold
BEGIN;
SELECT format('SELECT id FROM n1_items WHERE body = %L', 'item ' || i) FROM generate_series(1, 4) i
\gexec
COMMIT;
SELECT count(*) AS four_reported FROM agentmem.n_plus_one WHERE query LIKE '%body =%';

-- a second transaction with 6 repeats: one more occurrence, max stays 10
BEGIN;
SELECT format('SELECT body FROM n1_items WHERE id = %s', i) FROM generate_series(21, 26) i
\gexec
COMMIT;
SELECT occurrences, max_repeats FROM agentmem.n_plus_one WHERE query LIKE '%WHERE id = %';

-- a burst of autocommit statements counts like a transaction (a generous
-- gap, so that a slow machine or valgrind does not split the burst)
SELECT agentmem.latency_reset();
SET agentmem.n_plus_one_log = 'warning';
SET agentmem.n_plus_one_burst_gap = '10s';
SELECT format('UPDATE n1_items SET body = body WHERE id = %s', i) FROM generate_series(1, 7) i
\gexec
SELECT query, occurrences, max_repeats FROM agentmem.n_plus_one;
RESET agentmem.n_plus_one_burst_gap;

-- with a burst gap of 0 every autocommit statement is alone: no burst
SELECT agentmem.latency_reset();
SET agentmem.n_plus_one_burst_gap = 0;
SELECT format('SELECT body FROM n1_items WHERE id = %s', i) FROM generate_series(1, 7) i
\gexec
SELECT count(*) AS no_burst FROM agentmem.n_plus_one;
RESET agentmem.n_plus_one_burst_gap;

-- repeats split by a transaction block are two groups, not one
SELECT agentmem.latency_reset();
SELECT body FROM n1_items WHERE id = 1;
SELECT body FROM n1_items WHERE id = 2;
SELECT body FROM n1_items WHERE id = 3;
BEGIN;
SELECT body FROM n1_items WHERE id = 4;
SELECT body FROM n1_items WHERE id = 5;
COMMIT;
SELECT count(*) AS split_reported FROM agentmem.n_plus_one;

-- threshold 0 turns detection off; a lower threshold reports sooner
SELECT agentmem.latency_reset();
SET agentmem.n_plus_one_threshold = 0;
BEGIN;
SELECT format('SELECT body FROM n1_items WHERE id = %s', i) FROM generate_series(1, 8) i
\gexec
COMMIT;
SELECT count(*) AS disabled FROM agentmem.n_plus_one;
SET agentmem.n_plus_one_threshold = 2;
SET agentmem.n_plus_one_log = 'none';
BEGIN;
SELECT body FROM n1_items WHERE id = 1;
SELECT body FROM n1_items WHERE id = 2;
COMMIT;
SELECT query, occurrences, max_repeats FROM agentmem.n_plus_one;
RESET agentmem.n_plus_one_threshold;
RESET agentmem.n_plus_one_log;

DROP TABLE n1_items;
