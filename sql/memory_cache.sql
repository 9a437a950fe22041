-- The embedding cache: keys, put, get, misses, statistics, eviction, claims.
CREATE FUNCTION expect_error(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
TRUNCATE agentmem.cache, agentmem.cache_models, agentmem.cache_claims;
SELECT agentmem.cache_stats_reset() <= now() + interval '1 minute' AS reset;

-- ------------------------------------------------ keys: SHA-256 over model, 0x00, text
SELECT agentmem.cache_key('all-MiniLM-L6-v2', 'hello world')
	 = sha256(convert_to('all-MiniLM-L6-v2', 'UTF8') || '\x00'::bytea || convert_to('hello world', 'UTF8')) AS same;
SELECT agentmem.cache_key('ab', 'c') <> agentmem.cache_key('a', 'bc') AS separated,
	   agentmem.cache_key('m', 'Text') <> agentmem.cache_key('m', 'text') AS exact,
	   agentmem.cache_key('m', 'text') <> agentmem.cache_key('m', 'text ') AS exact_space,
	   octet_length(agentmem.cache_key('m', '')) AS key_bytes;

-- ------------------------------------------------ put, get, misses
SELECT * FROM agentmem.cache_misses('m', ARRAY['a', 'b', 'a', 'c', 'b']);
SELECT agentmem.cache_put('m', ARRAY['a', 'b', 'a'], ARRAY['[1,0]', '[0,1]', '[9,9]']::vector[]);
SELECT agentmem.cache_put('m', ARRAY['b', 'c'], ARRAY['[5,5]', '[1,1]']::vector[]);
SELECT * FROM agentmem.cache_get('m', ARRAY['c', 'x', 'a', 'b', 'a']);
SELECT * FROM agentmem.cache_misses('m', ARRAY['a', 'x', 'b', 'y', 'x']);
-- another model is another cache
SELECT * FROM agentmem.cache_get('other', ARRAY['a']);
SELECT agentmem.cache_put('other', ARRAY['a'], ARRAY['[1,2,3]']::vector[]);
SELECT * FROM agentmem.cache_get('other', ARRAY['a']);
-- empty inputs
SELECT count(*) FROM agentmem.cache_get('m', '{}');
SELECT count(*) FROM agentmem.cache_misses('m', '{}');
SELECT agentmem.cache_put('m', '{}', '{}');
-- texts are compared exactly, and any text works
SELECT agentmem.cache_put('m', ARRAY['', ' ', E'line\nbreak', repeat('long ', 20000), '''; DROP TABLE agentmem.cache; --'],
	ARRAY['[1,1]', '[2,2]', '[3,3]', '[4,4]', '[5,5]']::vector[]);
SELECT * FROM agentmem.cache_get('m', ARRAY['', ' ', E'line\nbreak', repeat('long ', 20000), '''; DROP TABLE agentmem.cache; --', 'A']);
SELECT count(*) FROM agentmem.cache;

-- ------------------------------------------------ errors
SELECT expect_error($$SELECT agentmem.cache_put(NULL, ARRAY['a'], ARRAY['[1]']::vector[])$$);
SELECT expect_error($$SELECT agentmem.cache_put('', ARRAY['a'], ARRAY['[1]']::vector[])$$);
SELECT expect_error($$SELECT agentmem.cache_put('m', NULL, ARRAY['[1]']::vector[])$$);
SELECT expect_error($$SELECT agentmem.cache_put('m', ARRAY['a'], NULL)$$);
SELECT expect_error($$SELECT agentmem.cache_put('m', ARRAY['a', 'b'], ARRAY['[1]']::vector[])$$);
SELECT expect_error($$SELECT agentmem.cache_put('m', ARRAY['a'], ARRAY['[1]', '[2]']::vector[])$$);
SELECT expect_error($$SELECT agentmem.cache_put('m', ARRAY['a', NULL], ARRAY['[1]', '[2]']::vector[])$$);
SELECT expect_error($$SELECT agentmem.cache_put('m', ARRAY['a', 'b'], ARRAY['[1]', NULL]::vector[])$$);
SELECT expect_error($$SELECT agentmem.cache_put('m', ARRAY[['a'], ['b']], ARRAY['[1]', '[2]']::vector[])$$);
SELECT expect_error($$SELECT * FROM agentmem.cache_get(NULL, ARRAY['a'])$$);
SELECT expect_error($$SELECT * FROM agentmem.cache_get('', ARRAY['a'])$$);
SELECT expect_error($$SELECT * FROM agentmem.cache_get('m', NULL)$$);
SELECT expect_error($$SELECT * FROM agentmem.cache_get('m', ARRAY['a', NULL])$$);
SELECT expect_error($$SELECT * FROM agentmem.cache_misses('m', ARRAY[NULL, 'a'])$$);
SELECT expect_error($$SELECT * FROM agentmem.cache_claim('m', ARRAY['a'], NULL)$$);
SELECT expect_error($$SELECT * FROM agentmem.cache_claim('m', ARRAY['a'], '0 s')$$);
SELECT expect_error($$SELECT * FROM agentmem.cache_claim('m', ARRAY['a'], '-1 s')$$);
SELECT expect_error($$SELECT * FROM agentmem.cache_wait('m', ARRAY['a'], NULL)$$);
SELECT expect_error($$SELECT * FROM agentmem.cache_wait('m', ARRAY['a'], '-1 s')$$);
SELECT expect_error($$SELECT agentmem.cache_evict(-1)$$);
SELECT expect_error($$SELECT agentmem.cache_evict(NULL, '-1 day')$$);
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT expect_error($$SELECT * FROM agentmem.cache_wait('m', ARRAY['a'])$$);
ROLLBACK;

-- ------------------------------------------------ statistics: hits are counted, not written
SELECT model, entries, bytes > 0 AS bytes, hits, misses, round(hit_ratio::numeric, 3) AS hit_ratio,
	   puts, evictions, stats_reset <= now() AS reset_ok
  FROM agentmem.cache_stats ORDER BY model;
SELECT xmin AS xmin_before FROM agentmem.cache WHERE key = agentmem.cache_key('m', 'a') \gset
SELECT count(embedding) FROM agentmem.cache_get('m', ARRAY['a', 'a', 'a']);
SELECT xmin = :'xmin_before' AS not_written FROM agentmem.cache WHERE key = agentmem.cache_key('m', 'a');
SELECT hits, misses FROM agentmem.cache_stats WHERE model = 'm';
-- a read-only transaction can look up too
BEGIN READ ONLY;
SELECT count(embedding) FROM agentmem.cache_get('m', ARRAY['a', 'b']);
COMMIT;
SELECT agentmem.cache_stats_reset() IS NOT NULL;
SELECT model, entries, hits, misses, hit_ratio, puts, evictions FROM agentmem.cache_stats ORDER BY model;

-- ------------------------------------------------ eviction, least recently used first
TRUNCATE agentmem.cache;
SELECT sum(entries) FROM agentmem.cache_count;
SET agentmem.cache_touch_interval = 0;		-- every hit refreshes last_used
SELECT agentmem.cache_put('m', ARRAY['a'], ARRAY['[1]']::vector[]);
SELECT agentmem.cache_put('m', ARRAY['b'], ARRAY['[2]']::vector[]);
SELECT agentmem.cache_put('m', ARRAY['c'], ARRAY['[3]']::vector[]);
SELECT count(embedding) FROM agentmem.cache_get('m', ARRAY['a']);	-- a is now the most recent
SELECT agentmem.cache_evict(2);
SELECT ord, embedding FROM agentmem.cache_get('m', ARRAY['a', 'b', 'c']);
-- agentmem.cache_max_entries is enforced by cache_put
SET agentmem.cache_max_entries = 3;
SELECT agentmem.cache_put('m', ARRAY['d', 'e'], ARRAY['[4]', '[5]']::vector[]);
SELECT ord, embedding FROM agentmem.cache_get('m', ARRAY['a', 'b', 'c', 'd', 'e']);
SELECT count(*), (SELECT sum(entries) FROM agentmem.cache_count) AS counted FROM agentmem.cache;
-- and by cache_evict() without arguments
SET agentmem.cache_max_entries = 1;
SELECT agentmem.cache_evict();
SELECT ord, embedding FROM agentmem.cache_get('m', ARRAY['a', 'd', 'e']);
RESET agentmem.cache_max_entries;
-- older_than: entries unused for that long
SELECT agentmem.cache_put('m', ARRAY['f', 'g'], ARRAY['[6]', '[7]']::vector[]);
UPDATE agentmem.cache SET last_used = now() - interval '2 days' WHERE key = agentmem.cache_key('m', 'f');
SELECT agentmem.cache_evict(older_than => '1 day');
SELECT ord, embedding FROM agentmem.cache_get('m', ARRAY['e', 'f', 'g']);
SELECT agentmem.cache_evict(older_than => '0 s');
SELECT count(*) FROM agentmem.cache;
RESET agentmem.cache_touch_interval;
SELECT model, entries, puts, evictions FROM agentmem.cache_stats ORDER BY model;
-- cache_evict re-counts what bypassed the triggers
SET session_replication_role = replica;
SELECT agentmem.cache_put('m', ARRAY['h'], ARRAY['[8]']::vector[]);
RESET session_replication_role;
SELECT sum(entries) AS counted_before FROM agentmem.cache_count;
SELECT agentmem.cache_evict(max_entries => 100);
SELECT sum(entries) AS counted_after, (SELECT count(*) FROM agentmem.cache) AS actual FROM agentmem.cache_count;

-- ------------------------------------------------ claims, as seen from one session
TRUNCATE agentmem.cache, agentmem.cache_claims;
SELECT agentmem.cache_put('m', ARRAY['cached'], ARRAY['[1]']::vector[]);
SELECT * FROM agentmem.cache_claim('m', ARRAY['cached', 'new 1', 'new 2', 'new 1']);
SELECT count(*), bool_and(claimer_pid = pg_backend_pid()) AS mine,
	   bool_and(expires_at > now() AND expires_at <= clock_timestamp() + interval '30 s') AS lease
  FROM agentmem.cache_claims;
-- our own claims are ours again (the lease is extended)
SELECT * FROM agentmem.cache_claim('m', ARRAY['new 2', 'new 1'], '1 minute');
SELECT bool_and(expires_at > clock_timestamp() + interval '50 s') FROM agentmem.cache_claims;
-- claims of sessions that are gone, or whose lease expired, are taken over
UPDATE agentmem.cache_claims SET claimer_pid = 0 WHERE key = agentmem.cache_key('m', 'new 1');
UPDATE agentmem.cache_claims SET claimer_pid = pg_backend_pid() + 1000000,
	expires_at = clock_timestamp() - interval '1 s' WHERE key = agentmem.cache_key('m', 'new 2');
SELECT * FROM agentmem.cache_claim('m', ARRAY['new 1', 'new 2']);
-- nobody else works on them: cache_wait does not wait
SELECT ord, embedding FROM agentmem.cache_wait('m', ARRAY['cached', 'new 1'], '1 minute');
-- cache_put releases the claims of what it stores
SELECT agentmem.cache_put('m', ARRAY['new 1'], ARRAY['[2]']::vector[]);
SELECT count(*) FROM agentmem.cache_claims;
SELECT ord, embedding FROM agentmem.cache_wait('m', ARRAY['cached', 'new 1']);
-- cache_evict drops expired claims
UPDATE agentmem.cache_claims SET expires_at = clock_timestamp() - interval '1 s';
SELECT agentmem.cache_evict(max_entries => 100);
SELECT count(*) FROM agentmem.cache_claims;

TRUNCATE agentmem.cache, agentmem.cache_models, agentmem.cache_claims;
DROP FUNCTION expect_error(text);
