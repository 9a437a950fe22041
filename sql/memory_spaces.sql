-- Memory spaces: create, remember, recall, recall_batch, forget, drop.
SET extra_float_digits = 0;

-- ------------------------------------------------ create_space and the catalog
SELECT agentmem.create_space('assistant', 3)::text ~ '^agentmem_spaces\.s[0-9]+_assistant$' AS table_ok;
SELECT space, table_name ~ '^agentmem_spaces\.s[0-9]+_assistant$' AS table_ok,
	   dims, metric, m, ef_construction, rows, owner
  FROM agentmem.spaces;
-- the table is an ordinary table with the documented columns and an hnsw index
SELECT attname, format_type(atttypid, atttypmod) AS type, attnotnull
  FROM pg_attribute
 WHERE attrelid = agentmem.space_table('assistant') AND attnum > 0 ORDER BY attnum;
SELECT regexp_replace(pg_get_indexdef(indexrelid), 's[0-9]+_', 'sN_', 'g') AS index
  FROM pg_index WHERE indrelid = agentmem.space_table('assistant') ORDER BY indexrelid;
SELECT agentmem.create_space('l2 space', 2, 'l2', m => 8, ef_construction => 32)::text ~ '_l2_space$';
SELECT agentmem.create_space('ip space', 2, 'ip')::text ~ '_ip_space$';
SELECT regexp_replace(pg_get_indexdef(indexrelid), 's[0-9]+_', 'sN_', 'g') AS index
  FROM pg_index i JOIN agentmem.spaces s ON i.indrelid = s.table_name::regclass
 WHERE s.space IN ('l2 space', 'ip space') AND NOT i.indisprimary ORDER BY s.space;

-- ------------------------------------------------ names are data
-- quotes, semicolons, backslashes, unicode, spaces, 10,000 characters
SELECT agentmem.create_space(name, 2) IS NOT NULL AS created
  FROM (VALUES ('Robert''); DROP TABLE agentmem.space_catalog; --'),
			   ('"quoted" name'), ('back\slash $1 %s %I'), ('Ünïcødé 記憶'), ('  '),
			   (repeat('x', 10000)), (repeat('y', 10000) || ';')) v(name);
SELECT length(space), left(space, 20) AS space_start, table_name ~ '^agentmem_spaces\.s[0-9]+(_[a-z0-9_]*)?$' AS safe_table
  FROM agentmem.spaces WHERE space NOT IN ('assistant', 'l2 space', 'ip space') ORDER BY space;
SELECT count(*) FROM agentmem.space_catalog;	-- still there
-- each works as a space
SELECT count(*) FROM agentmem.remember('Robert''); DROP TABLE agentmem.space_catalog; --',
	ARRAY['a'], ARRAY['[1,2]']::vector[]);
SELECT content FROM agentmem.recall('Robert''); DROP TABLE agentmem.space_catalog; --', '[1,2]', 1);
SELECT count(*) FROM agentmem.remember(repeat('x', 10000), ARRAY['long'], ARRAY['[1,2]']::vector[]);
SELECT content FROM agentmem.recall(repeat('x', 10000), '[1,2]', 1);
SELECT content FROM agentmem.recall(repeat('y', 10000) || ';', '[1,2]', 1);
SELECT count(*) FROM agentmem.remember('Ünïcødé 記憶', ARRAY['u'], ARRAY['[1,2]']::vector[]);
SELECT content FROM agentmem.recall('Ünïcødé 記憶', '[1,2]', 1);
-- a name that differs only by a trailing character is another space
SELECT count(*) FROM agentmem.recall(repeat('x', 9999), '[1,2]', 1);

-- ------------------------------------------------ remember: ids in input order
SELECT * FROM agentmem.remember('assistant',
	ARRAY['the cat sat', 'the dog ran', 'a bird sang', 'the cat slept'],
	ARRAY['[1,0,0]', '[0,1,0]', '[0,0,1]', '[0.9,0.1,0]']::vector[],
	ARRAY['{"kind": "cat"}', '{"kind": "dog"}', NULL, '{"kind": "cat", "day": 2}']::jsonb[]);
SELECT agentmem.space_table('assistant') AS assistant_table \gset
SELECT id, content, embedding, metadata, created_at <= now() AS created_ok
  FROM :assistant_table ORDER BY id;
-- without metadata: '{}'
SELECT * FROM agentmem.remember('assistant', ARRAY['fish swam'], ARRAY['[0,0.5,0.5]']::vector[]);
-- nothing to remember is no error
SELECT count(*) FROM agentmem.remember('assistant', '{}', '{}');
SELECT rows FROM agentmem.spaces WHERE space = 'assistant';

-- ------------------------------------------------ recall
SELECT id, content, metadata, round(distance::numeric, 4) AS distance
  FROM agentmem.recall('assistant', '[1,0.05,0]', 3);
SELECT id, content, round(distance::numeric, 4) AS distance
  FROM agentmem.recall('assistant', '[1,0.05,0]', 10);
-- filter: metadata @> filter
SELECT id, content, round(distance::numeric, 4) AS distance
  FROM agentmem.recall('assistant', '[0,1,0]', 2, '{"kind": "cat"}');
SELECT id, content FROM agentmem.recall('assistant', '[0,1,0]', 5, '{"kind": "cat", "day": 2}');
SELECT id, content FROM agentmem.recall('assistant', '[0,1,0]', 5, '{"kind": "cow"}');
SELECT count(*) FROM agentmem.recall('assistant', '[0,1,0]', 5, '{}');
-- the metrics: l2 and negative inner product
SELECT count(*) FROM agentmem.remember('l2 space', ARRAY['near', 'far', 'origin'],
	ARRAY['[1,1]', '[10,10]', '[0,0]']::vector[]);
SELECT content, distance FROM agentmem.recall('l2 space', '[1,2]', 3);
SELECT count(*) FROM agentmem.remember('ip space', ARRAY['small', 'big', 'opposite'],
	ARRAY['[1,1]', '[10,10]', '[-5,-5]']::vector[]);
SELECT content, distance FROM agentmem.recall('ip space', '[1,1]', 3);
-- the caller's hnsw.iterative_scan is left as it was
SHOW hnsw.iterative_scan;

-- ------------------------------------------------ recall_batch = recall, query by query
SELECT query_no, rank, id, content, round(distance::numeric, 4) AS distance
  FROM agentmem.recall_batch('assistant', ARRAY['[1,0.05,0]', '[0,0,1]', '[0,1,0]']::vector[], 2);
SELECT query_no, rank, id FROM agentmem.recall_batch('assistant',
	ARRAY['[0,1,0]', '[1,0,0]']::vector[], 3, '{"kind": "cat"}');
SELECT count(*) FROM agentmem.recall_batch('assistant', '{}', 3);

-- ------------------------------------------------ a larger space: k rows behind a filter
SELECT agentmem.create_space('big', 3) IS NOT NULL;
SELECT count(*) FROM agentmem.remember('big',
	(SELECT array_agg('row ' || i ORDER BY i) FROM generate_series(1, 2000) i),
	(SELECT array_agg(ARRAY[sin(i), cos(i), sin(i * 0.37)]::vector ORDER BY i) FROM generate_series(1, 2000) i),
	(SELECT array_agg(CASE WHEN i % 300 = 0 THEN '{"rare": true}'
						   ELSE jsonb_build_object('tag', i % 10) END ORDER BY i)
	   FROM generate_series(1, 2000) i));
SET hnsw.ef_search = 10;
-- 10% of the rows match, 50 wanted (more than ef_search): 50 come back
SELECT count(*), bool_and(metadata @> '{"tag": 3}') AS all_match
  FROM agentmem.recall('big', '[0.3,0.9,0.1]', 50, '{"tag": 3}');
-- 6 rows match: all 6 come back, nearest first
SELECT agentmem.space_table('big') AS big_table \gset
CREATE TEMP TABLE rare_exact AS
SELECT id, row_number() OVER (ORDER BY embedding <=> '[0.3,0.9,0.1]', id) AS rank
  FROM :big_table WHERE metadata @> '{"rare": true}';
SELECT count(*) FROM rare_exact;
SELECT count(*) AS n, bool_and(r.id = e.id) AS same_as_exact
  FROM (SELECT id, row_number() OVER () AS rank
		  FROM agentmem.recall('big', '[0.3,0.9,0.1]', 10, '{"rare": true}')) r
  JOIN rare_exact e USING (rank);
-- even when the index scan gives up early, the exact scan completes the answer
SET hnsw.max_scan_tuples = 5;
SELECT count(*) AS n, bool_and(r.id = e.id) AS same_as_exact
  FROM (SELECT id, row_number() OVER () AS rank
		  FROM agentmem.recall('big', '[0.3,0.9,0.1]', 4, '{"rare": true}')) r
  JOIN rare_exact e USING (rank);
RESET hnsw.max_scan_tuples;
-- results are nearest first, and recall_batch agrees with recall
SELECT bool_and(ok) AS ordered FROM (
	SELECT distance >= lag(distance, 1, 0::float8) OVER (ORDER BY ordinality) AS ok
	  FROM agentmem.recall('big', '[0.1,0.2,0.3]', 100) WITH ORDINALITY) s;
WITH q AS (SELECT n, ARRAY[cos(n), sin(n), 0.5]::vector AS v FROM generate_series(1, 20) n),
single AS (SELECT q.n, r.id, row_number() OVER (PARTITION BY q.n) AS rank
			 FROM q, LATERAL agentmem.recall('big', q.v, 7, '{"tag": 4}') r),
batch AS (SELECT query_no AS n, id, rank
			FROM agentmem.recall_batch('big', (SELECT array_agg(v ORDER BY n) FROM q), 7, '{"tag": 4}'))
SELECT count(*) AS rows, count(*) FILTER (WHERE s.id IS NOT DISTINCT FROM b.id) AS same
  FROM single s FULL JOIN batch b USING (n, rank);
-- from 16 queries on, recall_batch spreads them over parallel workers: same rows
CREATE TEMP TABLE par AS SELECT * FROM agentmem.recall_batch('big', '{}', 1) WITH NO DATA;
CREATE TEMP TABLE ser AS TABLE par WITH NO DATA;
CREATE TEMP TABLE par2 AS TABLE par WITH NO DATA;
CREATE TEMP TABLE ser2 AS TABLE par WITH NO DATA;
SET max_parallel_workers_per_gather = 1;
SET client_min_messages = debug1;
INSERT INTO par
SELECT * FROM agentmem.recall_batch('big',
	(SELECT array_agg(ARRAY[cos(n), sin(n), 0.5]::vector ORDER BY n) FROM generate_series(1, 40) n), 7, '{"tag": 4}');
RESET client_min_messages;
SET max_parallel_workers_per_gather = 0;
INSERT INTO ser
SELECT * FROM agentmem.recall_batch('big',
	(SELECT array_agg(ARRAY[cos(n), sin(n), 0.5]::vector ORDER BY n) FROM generate_series(1, 40) n), 7, '{"tag": 4}');
RESET max_parallel_workers_per_gather;
SELECT count(*) AS rows, count(*) FILTER (WHERE p IS NOT DISTINCT FROM s) AS same
  FROM par p FULL JOIN ser s USING (query_no, rank);
-- long contents and the exact fallback, in the workers too
SELECT count(*) FROM agentmem.remember('big', ARRAY[repeat('long ', 5000), repeat('longer ', 9000)],
	ARRAY['[0.3,0.9,0.1]', '[0.31,0.9,0.1]']::vector[], ARRAY['{"rare": true, "long": 1}', '{"rare": true, "long": 2}']::jsonb[]);
SET hnsw.max_scan_tuples = 5;
-- (one worker whatever the machine: recall_batch never runs more
-- processes than there are CPUs, and CI machines may have two)
SET max_parallel_workers_per_gather = 1;
SET client_min_messages = debug1;
INSERT INTO par2
SELECT * FROM agentmem.recall_batch('big',
	(SELECT array_agg(ARRAY[0.3, 0.9, n * 0.01]::vector ORDER BY n) FROM generate_series(1, 32) n), 8, '{"rare": true}');
RESET client_min_messages;
SET max_parallel_workers_per_gather = 0;
INSERT INTO ser2
SELECT * FROM agentmem.recall_batch('big',
	(SELECT array_agg(ARRAY[0.3, 0.9, n * 0.01]::vector ORDER BY n) FROM generate_series(1, 32) n), 8, '{"rare": true}');
RESET max_parallel_workers_per_gather;
RESET hnsw.max_scan_tuples;
SELECT count(*) AS rows, count(*) FILTER (WHERE p IS NOT DISTINCT FROM s) AS same,
	   sum(length(p.content)) FILTER (WHERE p.metadata ? 'long') AS long_chars
  FROM par2 p FULL JOIN ser2 s USING (query_no, rank);
RESET hnsw.ef_search;
-- a space's search never sees another space's rows
SELECT count(*) FROM agentmem.recall('l2 space', '[0.5,0.5]', 100);

-- ------------------------------------------------ the cache path: remember_texts, recall_text
SELECT agentmem.cache_put('toy-model', ARRAY['hello', 'world'], ARRAY['[1,0,0]', '[0,1,0]']::vector[]);
SELECT * FROM agentmem.remember_texts('assistant', 'toy-model', ARRAY['world', 'hello'],
	ARRAY['{"src": "cache"}', NULL]::jsonb[]);
SELECT content, metadata, distance FROM agentmem.recall_text('assistant', 'toy-model', 'world', 2,
	'{"src": "cache"}');
TRUNCATE agentmem.cache, agentmem.cache_models;

-- ------------------------------------------------ forget
SELECT agentmem.forget('assistant', ARRAY[2, 4, 999]);
SELECT agentmem.forget('assistant', '{}');
SELECT id, content FROM agentmem.recall('assistant', '[0.9,0.1,0]', 10);

-- ------------------------------------------------ drop
SELECT agentmem.drop_space('assistant');
SELECT count(*) FROM agentmem.spaces WHERE space = 'assistant';
SELECT to_regclass(:'assistant_table');
-- a space whose table is dropped directly leaves the catalog with it
SELECT agentmem.space_table('l2 space') AS l2_table \gset
DROP TABLE :l2_table;
SELECT count(*) FROM agentmem.spaces WHERE space = 'l2 space';
-- the name can be used again
SELECT agentmem.create_space('assistant', 4)::text ~ '_assistant$';
SELECT dims, rows FROM agentmem.spaces WHERE space = 'assistant';
SELECT agentmem.drop_space(space) FROM agentmem.spaces;
SELECT count(*) FROM agentmem.space_catalog;
SELECT count(*) FROM pg_class WHERE relnamespace = 'agentmem_spaces'::regnamespace;
