-- Every input error: its SQLSTATE and message.
CREATE FUNCTION expect_error(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- malformed text (22P02)
SELECT expect_error($$SELECT '1,2'::vector$$);
SELECT expect_error($$SELECT '[1,2'::vector$$);
SELECT expect_error($$SELECT '[1,,2]'::vector$$);
SELECT expect_error($$SELECT '[1,2,]'::vector$$);
SELECT expect_error($$SELECT '[1 2]'::vector$$);
SELECT expect_error($$SELECT '[1,a]'::vector$$);
SELECT expect_error($$SELECT '[1,2] x'::vector$$);
SELECT expect_error($$SELECT ''::vector$$);
-- NaN and Infinity (22000), out of float4 range (22003)
SELECT expect_error($$SELECT '[NaN]'::vector$$);
SELECT expect_error($$SELECT '[1,Infinity]'::vector$$);
SELECT expect_error($$SELECT '[-inf]'::vector$$);
SELECT expect_error($$SELECT '[1e39]'::vector$$);
SELECT expect_error($$SELECT ARRAY['NaN']::real[]::vector$$);
SELECT expect_error($$SELECT ARRAY['Infinity']::double precision[]::vector$$);
SELECT expect_error($$SELECT ARRAY[1e39]::double precision[]::vector$$);
SELECT expect_error($$SELECT ARRAY['NaN']::numeric[]::vector$$);
SELECT expect_error($$SELECT ARRAY[1e400]::numeric[]::vector$$);
-- empty (22000) and too many dimensions (54000)
SELECT expect_error($$SELECT '[]'::vector$$);
SELECT expect_error($$SELECT '[ ]'::vector$$);
SELECT expect_error($$SELECT '{}'::real[]::vector$$);
SELECT expect_error($$SELECT ('[' || repeat('1,', 16000) || '1]')::vector$$);
SELECT expect_error($$SELECT array_fill(1, ARRAY[16001])::vector$$);
SELECT expect_error($$SELECT subvector('[1,2,3]', 1, 0)$$);
SELECT expect_error($$SELECT subvector('[1,2,3]', 5, 2)$$);
-- typmod (22023 for the declaration, 22000 for a mismatch)
SELECT expect_error($$SELECT '[1]'::vector(0)$$);
SELECT expect_error($$SELECT '[1]'::vector(16001)$$);
SELECT expect_error($$CREATE TABLE bad (v vector(2,3))$$);
SELECT expect_error($$SELECT '[1,2,3]'::vector(2)$$);
SELECT expect_error($$SELECT ARRAY[1,2,3]::vector(2)$$);
SELECT expect_error($$SELECT '[1,2]'::vector(2)::vector(3)$$);
CREATE TABLE vt (v vector(3));
SELECT expect_error($$INSERT INTO vt VALUES ('[1,2]')$$);
SELECT expect_error($$INSERT INTO vt VALUES (ARRAY[1,2]::real[])$$);
SELECT expect_error($$UPDATE vt SET v = '[1,2,3,4]'$$);
-- dimension mismatch between operands (22000)
SELECT expect_error($$SELECT '[1,2]'::vector <-> '[1,2,3]'$$);
SELECT expect_error($$SELECT '[1,2]'::vector <#> '[1,2,3]'$$);
SELECT expect_error($$SELECT '[1,2]'::vector <=> '[1,2,3]'$$);
SELECT expect_error($$SELECT '[1,2]'::vector <+> '[1,2,3]'$$);
SELECT expect_error($$SELECT '[1,2]'::vector + '[1,2,3]'$$);
SELECT expect_error($$SELECT '[1,2]'::vector - '[1]'$$);
SELECT expect_error($$SELECT '[1,2]'::vector * '[1]'$$);
SELECT expect_error($$SELECT avg(v) FROM (VALUES ('[1,2]'::vector), ('[1]')) t(v)$$);
SELECT expect_error($$SELECT sum(v) FROM (VALUES ('[1,2]'::vector), ('[1]')) t(v)$$);
-- NULL array elements (22004), multi-dimensional arrays (22000)
SELECT expect_error($$SELECT ARRAY[1,NULL,3]::vector$$);
SELECT expect_error($$SELECT ARRAY[[1,2],[3,4]]::vector$$);
-- arithmetic overflow to Infinity (22003)
SELECT expect_error($$SELECT '[3e38]'::vector + '[3e38]'$$);
SELECT expect_error($$SELECT '[-3e38]'::vector - '[3e38]'$$);
SELECT expect_error($$SELECT '[1e20]'::vector * '[1e20]'$$);
SELECT expect_error($$SELECT sum(v) FROM (VALUES ('[3e38]'::vector), ('[3e38]')) t(v)$$);
SELECT expect_error($$SELECT '[3e9]'::vector::integer[]$$);
SELECT expect_error($$SELECT ('[' || repeat('1,', 9999) || '1]')::vector || ('[' || repeat('1,', 6000) || '1]')::vector$$);
-- NULLs: strict functions return NULL, no error
SELECT l2_distance(NULL, '[1]') IS NULL, vector_dims(NULL) IS NULL, NULL::vector <=> '[1]' IS NULL;
-- the errors themselves, as a client sees them
\set VERBOSITY terse
SELECT '[1,2'::vector;
SELECT '[1,2]'::vector <-> '[1,2,3]';
\set VERBOSITY default
DROP TABLE vt;
DROP FUNCTION expect_error(text);
