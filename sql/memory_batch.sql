-- remember() links its rows into the hnsw index together (hnswbatch.c):
-- the graph it leaves must be as searchable as row-by-row inserts leave it,
-- a scan during the INSERT must see the queued rows, and an error must
-- leave no batch open behind it.
SELECT setseed(0.5);
\i sql/include/hnsw_helpers.psql

CREATE FUNCTION remember_random(space text, n int, dim int DEFAULT 16) RETURNS bigint
LANGUAGE sql AS $$
	SELECT count(*) FROM agentmem.remember(space,
		(SELECT array_agg('row ' || i) FROM generate_series(1, n) i),
		(SELECT array_agg(rand_vec(dim)) FROM generate_series(1, n) i))
$$;

-- problems hnsw_check finds in every vector index of a space's table
CREATE FUNCTION check_space(space text) RETURNS bigint LANGUAGE sql AS $$
	SELECT count(*) FROM pg_index i, agentmem.hnsw_check(i.indexrelid::regclass)
	 WHERE i.indrelid = agentmem.space_table(space) AND NOT i.indisprimary
$$;

-- run a statement with %s standing for a space's table (unlike \gexec,
-- this does not echo the table's name, which depends on the test order)
CREATE FUNCTION on_space(space text, stmt text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format(stmt, agentmem.space_table(space));
END $$;

-- rows whose own embedding, searched through index `idx`, finds them first
CREATE FUNCTION found_self(space text, idx regclass, op text DEFAULT '<->') RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	t regclass := agentmem.space_table(space);
	q text := format('SELECT count(*) FROM %s a WHERE a.id = '
					 '(SELECT b.id FROM %s b ORDER BY b.embedding %s a.embedding LIMIT 1)', t, t, op);
	plan text := '';
	line text;
	n bigint;
BEGIN
	PERFORM set_config('enable_seqscan', 'off', true);
	PERFORM set_config('enable_bitmapscan', 'off', true);
	FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
		plan := plan || line || E'\n';
	END LOOP;
	IF plan NOT LIKE '%Index Scan using ' || (SELECT relname FROM pg_class WHERE oid = idx) || ' on%' THEN
		RAISE EXCEPTION 'expected a scan of %: %', idx, plan;
	END IF;
	EXECUTE q INTO n;
	RETURN n;
END $$;

-- recall@k of the index against exact search, over nq random queries
CREATE FUNCTION recall_at(tab regclass, nq int, k int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
	hits int := 0;
	q vector;
	sql text;
BEGIN
	FOR i IN 1..nq LOOP
		q := rand_vec(16);
		sql := format('SELECT id FROM %s ORDER BY embedding <-> %L LIMIT %s', tab, q, k);
		hits := hits + cardinality(ARRAY(SELECT unnest(knn(sql, true))
										 INTERSECT SELECT unnest(knn(sql, false))));
	END LOOP;
	RETURN hits::float8 / (nq * k);
END $$;

-- ------------------------------------------------ into an empty space, then a filled one
SELECT agentmem.create_space('batch', 16, 'l2', m => 8, ef_construction => 40) IS NOT NULL AS created;
SELECT remember_random('batch', 1500);
SELECT check_space('batch') AS problems;
SELECT remember_random('batch', 700);
SELECT check_space('batch') AS problems;
SET hnsw.ef_search = 100;
-- (an approximate index may miss a row or two: 99% is the bar)
SELECT found_self('batch', (agentmem.space_table('batch')::text || '_embedding')::regclass)
	   >= 0.99 * rows AS found_self, rows
  FROM agentmem.spaces WHERE space = 'batch';

-- as searchable as the same rows inserted one by one (same data, same index)
CREATE TABLE one_by_one (id bigint, embedding vector(16));
CREATE INDEX one_by_one_idx ON one_by_one USING hnsw (embedding vector_l2_ops)
  WITH (m = 8, ef_construction = 40);
DO $$
DECLARE r record;
BEGIN
	FOR r IN EXECUTE format('SELECT id, embedding FROM %s ORDER BY id', agentmem.space_table('batch')) LOOP
		INSERT INTO one_by_one VALUES (r.id, r.embedding);
	END LOOP;
END $$;
SET hnsw.ef_search = 40;
SELECT setseed(0.25);
CREATE TEMP TABLE recall_batch AS SELECT recall_at(agentmem.space_table('batch'), 100, 10) AS r;
SELECT setseed(0.25);
CREATE TEMP TABLE recall_rows AS SELECT recall_at('one_by_one', 100, 10) AS r;
SELECT b.r > 0.85 AS batch_recall_ok, b.r >= o.r - 0.03 AS as_good_as_row_by_row
  FROM recall_batch b, recall_rows o;
RESET hnsw.ef_search;

-- ------------------------------------------------ a scan during the INSERT sees the queued rows
SELECT agentmem.create_space('trig', 4, 'l2') IS NOT NULL AS created;
SELECT remember_random('trig', 50, 4);
CREATE TABLE trig_log (id bigint, nearest bigint);
CREATE FUNCTION trig_search() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE nearest bigint;
BEGIN
	SET LOCAL enable_seqscan = off;
	EXECUTE format('SELECT id FROM %s ORDER BY embedding <-> %L LIMIT 1', TG_RELID::regclass, NEW.embedding)
	   INTO nearest;
	INSERT INTO trig_log VALUES (NEW.id, nearest);
	RETURN NULL;
END $$;
SELECT on_space('trig', 'CREATE TRIGGER search_each AFTER INSERT ON %s FOR EACH ROW EXECUTE FUNCTION trig_search()');
SELECT remember_random('trig', 30, 4);
SELECT count(*) AS logged, count(*) FILTER (WHERE id = nearest) AS found_itself FROM trig_log;
SELECT check_space('trig') AS problems;

-- ------------------------------------------------ errors leave no batch open
CREATE FUNCTION trig_boom() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.content = 'boom' THEN
		RAISE EXCEPTION 'boom at row %', NEW.content;
	END IF;
	RETURN NEW;
END $$;
SELECT on_space('trig', 'CREATE TRIGGER boom BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION trig_boom()');
SELECT on_space('trig', 'DROP TRIGGER search_each ON %s');
SELECT rows AS before FROM agentmem.spaces WHERE space = 'trig';
-- the error comes from the INSERT, after rows before it were queued
\set VERBOSITY terse
SELECT count(*) FROM agentmem.remember('trig', ARRAY['a', 'b', 'boom', 'c'],
	ARRAY['[1,1,1,1]', '[2,2,2,2]', '[3,3,3,3]', '[4,4,4,4]']::vector[]);
\set VERBOSITY default
SELECT rows AS after FROM agentmem.spaces WHERE space = 'trig';
-- a plain INSERT afterwards goes straight into the index, not into a
-- forgotten queue: the next search finds it
SELECT on_space('trig', 'INSERT INTO %s (content, embedding) VALUES (''plain'', ''[9,9,9,9]'')');
SELECT content FROM agentmem.recall('trig', '[9,9,9,9]', 1);
-- the same with the error caught in a subtransaction, in one transaction
BEGIN;
DO $$
BEGIN
	PERFORM agentmem.remember('trig', ARRAY['d', 'boom'], ARRAY['[5,5,5,5]', '[6,6,6,6]']::vector[]);
EXCEPTION WHEN raise_exception THEN
	RAISE NOTICE 'caught: %', SQLERRM;
END $$;
SELECT count(*) FROM agentmem.remember('trig', ARRAY['e'], ARRAY['[7,7,7,7]']::vector[]);
SELECT on_space('trig', 'INSERT INTO %s (content, embedding) VALUES (''plain 2'', ''[8,8,8,8]'')');
SELECT content FROM agentmem.recall('trig', '[7,7,7,7]', 1)
UNION ALL
SELECT content FROM agentmem.recall('trig', '[8,8,8,8]', 1);
COMMIT;
SELECT check_space('trig') AS problems;

-- ------------------------------------------------ a second vector index on the table
SELECT on_space('batch', 'CREATE INDEX batch_cosine ON %s USING hnsw (embedding vector_cosine_ops)');
SELECT remember_random('batch', 300);
SELECT check_space('batch') AS problems;
SET hnsw.ef_search = 100;
SELECT found_self('batch', (agentmem.space_table('batch')::text || '_embedding')::regclass)
	   >= 0.99 * rows AS found_l2,
	   found_self('batch', 'agentmem_spaces.batch_cosine', '<=>') >= 0.99 * rows AS found_cosine, rows
  FROM agentmem.spaces WHERE space = 'batch';
RESET hnsw.ef_search;

-- ------------------------------------------------ a batch larger than the queue
-- (linked in parts of 20,000 rows while the INSERT runs), with the graph in
-- memory written back and dropped each time it outgrows maintenance_work_mem
SELECT agentmem.create_space('large', 2, 'l2', m => 4, ef_construction => 10) IS NOT NULL AS created;
SET maintenance_work_mem = '1MB';
SELECT remember_random('large', 20500, 2);
RESET maintenance_work_mem;
SELECT check_space('large') AS problems;
SET hnsw.ef_search = 40;
SELECT found_self('large', (agentmem.space_table('large')::text || '_embedding')::regclass)
	   >= 0.99 * 20500 AS found_self;
RESET hnsw.ef_search;

-- ------------------------------------------------ hnsw_insert latency: one sample per row
SELECT agentmem.latency_reset();
SELECT remember_random('trig', 25, 4);
SELECT calls FROM agentmem.latency WHERE operation = 'hnsw_insert';

-- ------------------------------------------------ displaced neighbours stay reachable
-- A batch row's back-links can drop one of its own neighbours from another
-- neighbour's list; its link from the row must then stay (hnsw_basic has
-- the single-row case).  Before, 2 to 8 of these 6,000 rows were
-- unreachable after every run.
SELECT agentmem.create_space('small_m', 4, 'l2', m => 2, ef_construction => 8) IS NOT NULL AS created;
SELECT sum(remember_random('small_m', 300, 4)) FROM generate_series(1, 20);
SELECT check_space('small_m') AS problems;

-- ------------------------------------------------ where new elements go
-- A batch writes its new elements onto new pages at the end, unless the
-- index has room VACUUM freed: a space that forgets and remembers as much
-- must not grow (new pages only would add some 14 here).
SELECT agentmem.create_space('churn', 32, 'l2', m => 4, ef_construction => 16) IS NOT NULL AS created;
SELECT remember_random('churn', 2000, 32);
SELECT agentmem.space_table('churn') AS churn_table,
	   agentmem.space_table('churn')::text || '_embedding' AS churn_index \gset
SELECT pg_relation_size(:'churn_index'::regclass) / 8192 AS pages_before \gset
DELETE FROM :churn_table WHERE id % 4 = 0;
VACUUM :churn_table;
SELECT remember_random('churn', 500, 32);
SELECT pg_relation_size(:'churn_index'::regclass) / 8192 - :pages_before <= 2 AS did_not_grow;
SELECT check_space('churn') AS problems;
-- (m = 4 and ef_construction = 16 find 98-99% of rows themselves at
-- ef_search 200, as before the churn)
SET hnsw.ef_search = 200;
SELECT found_self('churn', :'churn_index'::regclass) >= 0.97 * 2000 AS found_self;
RESET hnsw.ef_search;
-- Small batches fill the last page before they start a new one, as
-- single-row inserts do: 100 one-row and 40 five-row calls take no more
-- pages than one call of all 300 rows (a new page for every call would
-- take 140).
SELECT agentmem.create_space('small_calls', 32, 'l2') IS NOT NULL AS created,
	   agentmem.create_space('one_call', 32, 'l2') IS NOT NULL AS created;
SELECT sum(remember_random('small_calls', 1, 32)) FROM generate_series(1, 100);
SELECT sum(remember_random('small_calls', 5, 32)) FROM generate_series(1, 40);
SELECT remember_random('one_call', 300, 32);
SELECT pg_relation_size(agentmem.space_table('small_calls')::text || '_embedding') <=
	   pg_relation_size(agentmem.space_table('one_call')::text || '_embedding') + 8192 AS as_compact;
SELECT check_space('small_calls') AS problems;

-- ------------------------------------------------ the graph kept between batches
-- A backend keeps the graph of its last batch in memory for its next batch
-- into the same index, reads again the pages that changed meanwhile (a
-- plain INSERT), and drops it when the index's relcache entry
-- is invalidated (VACUUM, REINDEX): no message then.  (The index gets a
-- fixed name here, so that the DEBUG messages can show it.)
SELECT agentmem.create_space('kept', 8, 'l2', m => 4, ef_construction => 16) IS NOT NULL AS created;
SELECT agentmem.space_table('kept') AS kept_table,
	   agentmem.space_table('kept')::text || '_embedding' AS kept_default \gset
DROP INDEX :kept_default;
CREATE INDEX kept_idx ON :kept_table USING hnsw (embedding vector_l2_ops) WITH (m = 4, ef_construction = 16);
SELECT remember_random('kept', 300, 8);
SET client_min_messages = debug1;
SELECT remember_random('kept', 300, 8);
RESET client_min_messages;
INSERT INTO :kept_table (content, embedding) VALUES ('plain', '[0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5]');
SET client_min_messages = debug1;
SELECT remember_random('kept', 300, 8);
SELECT remember_random('kept', 300, 8);
RESET client_min_messages;
DELETE FROM :kept_table WHERE id % 5 = 0;
VACUUM :kept_table;
SET client_min_messages = debug1;
SELECT remember_random('kept', 300, 8);
RESET client_min_messages;
REINDEX INDEX agentmem_spaces.kept_idx;
SET client_min_messages = debug1;
SELECT remember_random('kept', 300, 8);
SELECT remember_random('kept', 300, 8);
RESET client_min_messages;
-- turned off: nothing kept, nothing reused
SET hnsw.batch_graph_cache = 0;
SET client_min_messages = debug1;
SELECT remember_random('kept', 100, 8);
SELECT remember_random('kept', 100, 8);
RESET client_min_messages;
RESET hnsw.batch_graph_cache;
-- whatever was reused, the index is sound and every row is found
SELECT check_space('kept') AS problems;
SELECT count(*) AS rows FROM :kept_table;
SET hnsw.ef_search = 100;
SELECT found_self('kept', 'agentmem_spaces.kept_idx') >= 0.99 * (SELECT count(*) FROM :kept_table) AS found_self;
RESET hnsw.ef_search;

-- a batch that fails while writing its lists (a test-only setting makes it
-- raise an error after its 6th page record: a 20-row batch writes at most
-- one new page and the metapage before its lists) leaves the metapage's mark,
-- which hnsw_check reports; the next batch relinks the index first
SELECT agentmem.create_space('cut', 8, 'l2') IS NOT NULL AS created;
SELECT remember_random('cut', 400, 8);
SET hnsw.test_fail_after_page_writes = 6;
SELECT remember_random('cut', 20, 8);
RESET hnsw.test_fail_after_page_writes;
SELECT DISTINCT kind FROM pg_index i, agentmem.hnsw_check(i.indexrelid::regclass)
 WHERE i.indrelid = agentmem.space_table('cut') AND NOT i.indisprimary AND kind <> 'unreachable';
SELECT remember_random('cut', 100, 8);
SELECT check_space('cut') AS problems;
SELECT agentmem.space_table('cut') AS cut_table \gset
SELECT count(*) AS rows FROM :cut_table;
SET hnsw.ef_search = 400;
SELECT found_self('cut', (:'cut_table' || '_embedding')::regclass) = 500 AS found_self;
RESET hnsw.ef_search;

SELECT agentmem.drop_space(space) FROM agentmem.spaces ORDER BY space;
DROP FUNCTION remember_random(text, int, int), check_space(text), on_space(text, text),
	found_self(text, regclass, text), recall_at(regclass, int, int), trig_search(), trig_boom(),
	rand_vec(int), knn(text, bool);
