-- Statement identity when PostgreSQL computes no query identifier
-- (compute_query_id off, or auto without pg_stat_statements): agentmem
-- fingerprints the statement text, constants removed (stmtid.c).
SET agentmem.track = 'all';
SET compute_query_id = off;
SET agentmem.n_plus_one_log = 'notice';

-- ------------------------------------------------ the fingerprint
-- statements that differ only in constants, spacing, case, comments and a
-- trailing semicolon share one identifier
SELECT count(DISTINCT agentmem.statement_id(q)) AS ids
  FROM (VALUES ('SELECT abalance FROM pgbench_accounts WHERE aid = 12345;'),
			   ('select abalance   from pgbench_accounts where aid=7'),
			   (E'SELECT abalance\n\tFROM pgbench_accounts -- a comment\n WHERE aid = 1.5e3 ;'),
			   ('SELECT /* one /* nested */ comment */ abalance FROM pgbench_accounts WHERE aid = 0')) v(q);
-- string and dollar-quoted literals are constants too, quotes included
SELECT count(DISTINCT agentmem.statement_id(q)) AS ids
  FROM (VALUES ('SELECT * FROM t WHERE name = ''x'''),
			   ('SELECT * FROM t WHERE name = ''it''''s; -- not a comment'''),
			   ('SELECT * FROM t WHERE name = $q$it''s$q$'),
			   ('SELECT * FROM t WHERE name = $$x$$')) v(q);
-- what is not a constant tells statements apart: identifiers (quoted ones
-- keep their case), parameters, operators, the number of values in a list
SELECT count(DISTINCT agentmem.statement_id(q)) AS ids
  FROM (VALUES ('SELECT * FROM t WHERE a = 1'), ('SELECT * FROM t WHERE b = 1'),
			   ('SELECT * FROM "T" WHERE a = 1'), ('SELECT * FROM t WHERE a = $1'),
			   ('SELECT * FROM t WHERE a = $2'), ('SELECT * FROM t WHERE a > 1'),
			   ('SELECT * FROM t WHERE a IN (1, 2)'), ('SELECT * FROM t WHERE a IN (1, 2, 3)'),
			   ('SELECT * FROM t1 WHERE a = 1'), ('SELECT * FROM t WHERE a = E''x''')) v(q);
-- a backslash ends an E'' string only when escaped: the rest still counts
SELECT agentmem.statement_id(E'SELECT 1 WHERE x = E''a\\'' AND y = 2') =
	   agentmem.statement_id(E'SELECT 1 WHERE x = E''b\\'' AND y = 3') AS escapes_read;
-- anything is a valid input
SELECT agentmem.statement_id(NULL) IS NULL AS null_in_null_out,
	   agentmem.statement_id('') <> 0 AS empty,
	   agentmem.statement_id('''unterminated') <> 0 AS unterminated,
	   agentmem.statement_id('$tag$ never closed') <> 0 AS unclosed_dollar,
	   agentmem.statement_id('/* never closed') <> 0 AS unclosed_comment;

-- ------------------------------------------------ what the views record
CREATE TABLE sid_items (id int PRIMARY KEY, body text);
INSERT INTO sid_items SELECT i, 'item ' || i FROM generate_series(1, 50) i;
SELECT agentmem.latency_reset();
SELECT body FROM sid_items WHERE id = 1;
select body from sid_items where id=2;
SELECT body FROM sid_items WHERE id = 3 /* by id */;
SELECT calls FROM agentmem.statement_latency
 WHERE queryid = agentmem.statement_id('SELECT body FROM sid_items WHERE id = 0');
-- PostgreSQL's own identifier is used whenever it computes one
SET compute_query_id = on;
SELECT body FROM sid_items WHERE id = 4;
SELECT count(*) AS rows_for_text_id, sum(calls) AS calls FROM agentmem.statement_latency
 WHERE queryid = agentmem.statement_id('SELECT body FROM sid_items WHERE id = 0');
SET compute_query_id = off;

-- N+1 detection works with fingerprints: a loop of literal SELECTs
SELECT agentmem.latency_reset();
BEGIN;
SELECT format('SELECT body FROM sid_items WHERE id = %s', i) FROM generate_series(10, 19) i
\gexec
COMMIT;
SELECT query, occurrences, max_repeats,
	   queryid = agentmem.statement_id('SELECT body FROM sid_items WHERE id = 0') AS same_id
  FROM agentmem.n_plus_one;

DROP TABLE sid_items;
RESET compute_query_id;
RESET agentmem.n_plus_one_log;
RESET agentmem.track;
