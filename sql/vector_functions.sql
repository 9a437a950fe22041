-- Distances, functions, arithmetic, ordering, hashing and aggregates.
SET extra_float_digits = 0;

SELECT l2_distance('[0,0]', '[3,4]'), '[0,0]'::vector <-> '[3,4]';
SELECT inner_product('[1,2]', '[3,4]'), '[1,2]'::vector <#> '[3,4]';
SELECT cosine_distance('[1,0]', '[0,1]'), '[1,1]'::vector <=> '[2,2]',
	   '[1,0]'::vector <=> '[-1,0]';
SELECT l1_distance('[1,2,3]', '[4,0,3]'), '[1,2,3]'::vector <+> '[4,0,3]';
SELECT vector_l2_squared_distance('[0,0]', '[3,4]');
SELECT vector_spherical_distance('[1,0]', '[0,1]');
-- cosine with a zero vector is undefined (NaN), as for pgvector
SELECT cosine_distance('[0,0]', '[1,1]');
-- huge but finite values: computed in double, not Infinity
SELECT l2_distance('[3e38]', '[-3e38]'), inner_product('[3e38,3e38]', '[3e38,3e38]');
SELECT cosine_distance('[3e38,3e38]', '[1e38,1e38]') < 1e-6 AS same_direction;
SELECT cosine_distance('[1e-30,0]', '[2e-30,0]') AS tiny_same_direction;
SELECT l1_distance('[3e38]', '[-3e38]');
SELECT l2_distance('[1e-30]', '[2e-30]') AS tiny_l2, '[1e-30,0]'::vector <-> '[0,1e-30]' AS tiny_l2_2;
-- long vectors take the SIMD path; compare with a plain SQL computation
WITH v AS (SELECT array_agg(sin(i)::real)::vector AS a, array_agg(cos(i)::real)::vector AS b,
				  array_agg(sin(i)::real) AS aa, array_agg(cos(i)::real) AS ba
		   FROM generate_series(1, 1001) i)
SELECT abs(l2_distance(a, b) - sqrt((SELECT sum((x - y) ^ 2) FROM unnest(aa, ba) u(x, y)))) < 1e-3 AS l2_ok,
	   abs(inner_product(a, b) - (SELECT sum(x * y) FROM unnest(aa, ba) u(x, y))) < 1e-3 AS ip_ok,
	   abs(l1_distance(a, b) - (SELECT sum(abs(x - y)) FROM unnest(aa, ba) u(x, y))) < 1e-2 AS l1_ok
FROM v;

SELECT vector_dims('[1,2,3]'), vector_norm('[3,4]');
SELECT l2_normalize('[3,4]'), l2_normalize('[0,0]');
SELECT subvector('[1,2,3,4,5]', 2, 3), subvector('[1,2,3]', 0, 2), subvector('[1,2,3]', 3, 10);

SELECT '[1,2]'::vector + '[3,4]', '[1,2]'::vector - '[3,4]', '[1,2]'::vector * '[3,4]';
SELECT '[1,2]'::vector || '[3]';

-- ordering and equality: element by element, then length
SELECT '[1,2]'::vector < '[1,3]', '[1,2]'::vector < '[1,2,0]', '[2]'::vector > '[1,9]';
SELECT '[1,2]'::vector = '[1,2]', '[0]'::vector = '[-0]', '[1,2]'::vector <> '[1,2,3]';
SELECT vector_cmp('[1,2]', '[1,2]'), vector_cmp('[1]', '[2]'), vector_cmp('[3]', '[2]');
CREATE TABLE vo (id int, v vector);
INSERT INTO vo VALUES (1, '[3,1]'), (2, '[1,2]'), (3, '[1,2]'), (4, '[1,2,0]'), (5, '[0]'), (6, '[-0]');
SELECT v FROM vo ORDER BY v, id;
SELECT DISTINCT v FROM vo ORDER BY v;
SELECT v, count(*) FROM vo GROUP BY v ORDER BY v;
-- hash opclass: hash aggregation and hash joins agree with btree, -0 = 0
SET enable_sort = off;
EXPLAIN (COSTS OFF) SELECT v, count(*) FROM vo GROUP BY v;
SELECT v, count(*) FROM vo GROUP BY v ORDER BY 1;
RESET enable_sort;
SELECT vector_hash('[0]') = vector_hash('[-0]') AS zero_hashes_equal,
	   vector_hash_extended('[1,2]', 7) = vector_hash_extended('[1,2]', 7) AS stable;
SET enable_mergejoin = off; SET enable_nestloop = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM vo a JOIN vo b ON a.v = b.v;
SELECT count(*) FROM vo a JOIN vo b ON a.v = b.v;
RESET enable_mergejoin; RESET enable_nestloop;
CREATE UNIQUE INDEX vo_v ON vo (v) WHERE id <> 3 AND id <> 6;
CREATE INDEX vo_h ON vo USING hash (v);
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM vo WHERE v = '[1,2]';
SELECT id FROM vo WHERE v = '[1,2]' ORDER BY id;
RESET enable_seqscan;
DROP TABLE vo;

-- aggregates (NULLs skipped; avg of nothing is NULL)
CREATE TABLE va (v vector(2));
SELECT avg(v), sum(v) FROM va;
INSERT INTO va VALUES ('[1,2]'), ('[3,6]'), (NULL);
SELECT avg(v), sum(v) FROM va;
-- parallel, combinable: force a parallel plan over many rows
INSERT INTO va SELECT '[1,1]' FROM generate_series(1, 20000);
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT avg(v), sum(v) FROM va;
SELECT avg(v), sum(v) FROM va;
RESET ALL;
DROP TABLE va;

SELECT agentmem.distance_kernel() IN ('scalar', 'avx2', 'avx512');
