-- Every error of the memory-space functions: its SQLSTATE and message.
CREATE FUNCTION expect_error(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

SELECT agentmem.create_space('s', 3) IS NOT NULL;
SELECT count(*) FROM agentmem.remember('s', ARRAY['one'], ARRAY['[1,2,3]']::vector[]);

-- ------------------------------------------------ create_space
-- NULL arguments (22004)
SELECT expect_error($$SELECT agentmem.create_space(NULL, 3)$$);
SELECT expect_error($$SELECT agentmem.create_space('x', NULL)$$);
SELECT expect_error($$SELECT agentmem.create_space('x', 3, NULL)$$);
SELECT expect_error($$SELECT agentmem.create_space('x', 3, 'l2', NULL)$$);
SELECT expect_error($$SELECT agentmem.create_space('x', 3, 'l2', 16, NULL)$$);
-- bad values (22023)
SELECT expect_error($$SELECT agentmem.create_space('', 3)$$);
SELECT expect_error($$SELECT agentmem.create_space('x', 0)$$);
SELECT expect_error($$SELECT agentmem.create_space('x', 2001)$$);
SELECT expect_error($$SELECT agentmem.create_space('x', 3, 'dot')$$);
SELECT expect_error($$SELECT agentmem.create_space('x', 3, 'COSINE')$$);
SELECT expect_error($$SELECT agentmem.create_space('x', 3, 'cosine', 1)$$);
SELECT expect_error($$SELECT agentmem.create_space('x', 3, 'cosine', 101)$$);
SELECT expect_error($$SELECT agentmem.create_space('x', 3, 'cosine', 16, 3)$$);
SELECT expect_error($$SELECT agentmem.create_space('x', 3, 'cosine', 16, 1001)$$);
-- a space that exists (42710); long names are clipped in messages
SELECT expect_error($$SELECT agentmem.create_space('s', 3)$$);
SELECT agentmem.create_space(repeat('z', 10000), 2) IS NOT NULL;
SELECT expect_error($$SELECT agentmem.create_space(repeat('z', 10000), 2)$$);
SELECT agentmem.drop_space(repeat('z', 10000));
-- nothing was left behind by the failures
SELECT space FROM agentmem.spaces;

-- ------------------------------------------------ unknown spaces (42704), NULL space (22004)
SELECT expect_error($$SELECT agentmem.drop_space('nope')$$);
SELECT expect_error($$SELECT agentmem.drop_space(NULL)$$);
SELECT expect_error($$SELECT * FROM agentmem.remember('nope', ARRAY['a'], ARRAY['[1,2,3]']::vector[])$$);
SELECT expect_error($$SELECT * FROM agentmem.remember(NULL, ARRAY['a'], ARRAY['[1,2,3]']::vector[])$$);
SELECT expect_error($$SELECT * FROM agentmem.recall('nope', '[1,2,3]')$$);
SELECT expect_error($$SELECT * FROM agentmem.recall(NULL, '[1,2,3]')$$);
SELECT expect_error($$SELECT * FROM agentmem.recall_batch('nope', ARRAY['[1,2,3]']::vector[])$$);
SELECT expect_error($$SELECT * FROM agentmem.recall_text('nope', 'm', 'q')$$);
SELECT expect_error($$SELECT agentmem.forget('nope', ARRAY[1])$$);
SELECT expect_error($$SELECT agentmem.space_table('nope')$$);
SELECT expect_error($$SELECT agentmem.space_table('')$$);
SELECT expect_error($$SELECT agentmem.space_table(repeat('q', 10000))$$);
SELECT expect_error($$SELECT agentmem.space_table('s''; DROP TABLE agentmem.space_catalog; --')$$);

-- ------------------------------------------------ remember: all or nothing, the position named
-- length mismatch (22023)
SELECT expect_error($$SELECT * FROM agentmem.remember('s', ARRAY['a','b','c'], ARRAY['[1,2,3]','[1,2,3]']::vector[])$$);
SELECT expect_error($$SELECT * FROM agentmem.remember('s', ARRAY['a'], ARRAY['[1,2,3]','[1,2,3]']::vector[])$$);
SELECT expect_error($$SELECT * FROM agentmem.remember('s', ARRAY['a','b'], ARRAY['[1,2,3]','[1,2,3]']::vector[], ARRAY['{}']::jsonb[])$$);
SELECT expect_error($$SELECT * FROM agentmem.remember('s', ARRAY['a'], ARRAY['[1,2,3]']::vector[], ARRAY['{}','{}']::jsonb[])$$);
-- NULL arrays and NULL elements (22004)
SELECT expect_error($$SELECT * FROM agentmem.remember('s', NULL, ARRAY['[1,2,3]']::vector[])$$);
SELECT expect_error($$SELECT * FROM agentmem.remember('s', ARRAY['a'], NULL)$$);
SELECT expect_error($$SELECT * FROM agentmem.remember('s', ARRAY['a','b',NULL], ARRAY['[1,2,3]','[1,2,3]','[1,2,3]']::vector[])$$);
SELECT expect_error($$SELECT * FROM agentmem.remember('s', ARRAY['a','b','c'], ARRAY['[1,2,3]',NULL,'[1,2,3]']::vector[])$$);
-- wrong dimensions (22000)
SELECT expect_error($$SELECT * FROM agentmem.remember('s', ARRAY['a','b','c','d'], ARRAY['[1,2,3]','[1,2,3]','[1,2,3]','[1,2]']::vector[])$$);
-- the first bad element is the one reported
SELECT expect_error($$SELECT * FROM agentmem.remember('s', ARRAY['a','b',NULL], ARRAY['[1,2,3]','[1,2]','[1,2,3]']::vector[])$$);
-- NaN and infinity cannot reach remember: the vector type rejects them as the
-- array is read, before the call (22000)
SELECT expect_error($$SELECT * FROM agentmem.remember('s', ARRAY['a','b'], ARRAY['[1,2,3]','[1,NaN,3]']::vector[])$$);
SELECT expect_error($$SELECT * FROM agentmem.remember('s', ARRAY['a','b'], '{"[1,2,3]","[1,2,Infinity]"}')$$);
-- multi-dimensional arrays (22023)
SELECT expect_error($$SELECT * FROM agentmem.remember('s', ARRAY[['a'],['b']], ARRAY['[1,2,3]','[1,2,3]']::vector[])$$);
SELECT expect_error($$SELECT * FROM agentmem.remember('s', ARRAY['a','b'], ARRAY[['[1,2,3]'],['[1,2,3]']]::vector[])$$);
-- a failing batch inserts nothing
SELECT rows FROM agentmem.spaces WHERE space = 's';
-- DETAIL says so
\set VERBOSITY default
SELECT * FROM agentmem.remember('s', ARRAY['a','b'], ARRAY['[1,2,3]',NULL]::vector[]);
\set VERBOSITY terse

-- ------------------------------------------------ remember_texts and recall_text: the cache must have them (55000)
SELECT agentmem.cache_put('m', ARRAY['known'], ARRAY['[1,0,0]']::vector[]);
SELECT expect_error($$SELECT * FROM agentmem.remember_texts('s', 'm', ARRAY['known','new 1','known','new 2'])$$);
SELECT expect_error($$SELECT * FROM agentmem.remember_texts('s', 'other model', ARRAY['known'])$$);
SELECT expect_error($$SELECT * FROM agentmem.remember_texts('s', 'm', ARRAY['known', NULL])$$);
SELECT expect_error($$SELECT * FROM agentmem.remember_texts('s', NULL, ARRAY['known'])$$);
SELECT expect_error($$SELECT * FROM agentmem.remember_texts('s', 'm', NULL)$$);
SELECT expect_error($$SELECT * FROM agentmem.remember_texts('s', 'm', ARRAY['known'], ARRAY['{}','{}']::jsonb[])$$);
SELECT expect_error($$SELECT * FROM agentmem.recall_text('s', 'm', 'unknown')$$);
SELECT expect_error($$SELECT * FROM agentmem.recall_text('s', 'm', NULL)$$);
SELECT expect_error($$SELECT * FROM agentmem.recall_text('s', NULL, 'known')$$);
SELECT agentmem.cache_put('m2', ARRAY['two dims'], ARRAY['[1,0]']::vector[]);
SELECT expect_error($$SELECT * FROM agentmem.remember_texts('s', 'm2', ARRAY['two dims'])$$);
SELECT expect_error($$SELECT * FROM agentmem.recall_text('s', 'm2', 'two dims')$$);
\set VERBOSITY default
SELECT * FROM agentmem.remember_texts('s', 'm', ARRAY['known','new 1']);
\set VERBOSITY terse
SELECT rows FROM agentmem.spaces WHERE space = 's';
TRUNCATE agentmem.cache, agentmem.cache_models;

-- ------------------------------------------------ recall and recall_batch
SELECT expect_error($$SELECT * FROM agentmem.recall('s', NULL)$$);
SELECT expect_error($$SELECT * FROM agentmem.recall('s', '[1,2]')$$);
SELECT expect_error($$SELECT * FROM agentmem.recall('s', '[0,0,0]')$$);
SELECT expect_error($$SELECT * FROM agentmem.recall('s', '[1,2,3]', 0)$$);
SELECT expect_error($$SELECT * FROM agentmem.recall('s', '[1,2,3]', -1)$$);
SELECT expect_error($$SELECT * FROM agentmem.recall('s', '[1,2,3]', NULL)$$);
SELECT expect_error($$SELECT * FROM agentmem.recall('s', '[1,2,3]', 3, '{"a": 1')$$);
SELECT expect_error($$SELECT * FROM agentmem.recall_batch('s', NULL)$$);
SELECT expect_error($$SELECT * FROM agentmem.recall_batch('s', ARRAY['[1,2,3]',NULL]::vector[])$$);
SELECT expect_error($$SELECT * FROM agentmem.recall_batch('s', ARRAY['[1,2,3]','[1,2,3]','[1,2]']::vector[])$$);
SELECT expect_error($$SELECT * FROM agentmem.recall_batch('s', ARRAY['[1,2,3]','[0,0,0]']::vector[])$$);
SELECT expect_error($$SELECT * FROM agentmem.recall_batch('s', ARRAY[['[1,2,3]'],['[1,2,3]']]::vector[])$$);
SELECT expect_error($$SELECT * FROM agentmem.recall_batch('s', ARRAY['[1,2,3]']::vector[], 0)$$);
-- zero vectors are fine under l2
SELECT agentmem.create_space('l2', 3, 'l2') IS NOT NULL;
SELECT count(*) FROM agentmem.recall('l2', '[0,0,0]');
SELECT agentmem.drop_space('l2');

-- ------------------------------------------------ forget
SELECT expect_error($$SELECT agentmem.forget('s', NULL)$$);
SELECT expect_error($$SELECT agentmem.forget(NULL, ARRAY[1])$$);
SELECT agentmem.forget('s', ARRAY[NULL, 1]::bigint[]);

-- ------------------------------------------------ a damaged space
SELECT agentmem.space_table('s') AS s_table \gset
ALTER TABLE :s_table RENAME TO renamed;
-- the event trigger does not fire for a rename: the catalog still names the old table
SELECT regexp_replace(expect_error($$SELECT * FROM agentmem.recall('s', '[1,2,3]')$$), 's[0-9]+_', 'sN_');
SELECT agentmem.drop_space('s');
DROP TABLE agentmem_spaces.renamed;

DROP FUNCTION expect_error(text);
