-- test/valgrind_workload.sql: run by test/valgrind.sh after pg_regress.
--
-- Without USE_VALGRIND, memcheck sees only malloc block boundaries, and
-- palloc serves requests above 8 kB from a malloc block of their own.  So
-- this runs every vector function on vectors of more than 2,048
-- dimensions (and on short ones with odd tails), where a read or write
-- past the end of a vector is caught.  :copyfile is a server-writable path
-- for a binary COPY round trip (vector_send and vector_recv).  A wrong
-- result stops the script with an error.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE FUNCTION pg_temp.expect(ok boolean, what text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	IF ok IS NOT TRUE THEN
		RAISE EXCEPTION 'valgrind workload: % failed', what;
	END IF;
END $$;

CREATE TABLE vg (id int PRIMARY KEY, a vector, b vector);
INSERT INTO vg
SELECT d, (SELECT array_agg(sin(i * d)::real) FROM generate_series(1, d) i)::vector,
		  (SELECT array_agg(cos(i + d)::real) FROM generate_series(1, d) i)::vector
FROM unnest(ARRAY[1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 65,
				  2047, 2048, 2049, 2055, 4095, 8191, 16000]) d;

\o /dev/null
SELECT id, a <-> b, a <#> b, a <=> b, a <+> b,
	   l2_distance(a, b), inner_product(a, b), cosine_distance(a, b), l1_distance(a, b),
	   vector_l2_squared_distance(a, b), vector_negative_inner_product(a, b),
	   vector_spherical_distance(a, b), vector_norm(a), vector_dims(a),
	   (a + b) - b, a * b, l2_normalize(a), subvector(a, 1, id), subvector(a, id, 5),
	   a::real[], a::double precision[], a::numeric[], a::text
FROM vg ORDER BY id;
SELECT id, avg(v), sum(v) FROM (SELECT id, a AS v FROM vg UNION ALL SELECT id, b FROM vg) s
GROUP BY id ORDER BY id;
\o

SELECT pg_temp.expect(bool_and(abs((a <-> b) - sqrt(vector_l2_squared_distance(a, b))) < 1e-6 * (1 + (a <-> b))),
					  'l2 distance against its square')
FROM vg;
SELECT pg_temp.expect(bool_and(vector_dims(a || b) = 2 * id), 'concatenation')
FROM vg WHERE id <= 8000;
SELECT pg_temp.expect(bool_and(a::real[]::vector = a AND a::double precision[]::vector = a
							   AND a::text::vector = a),
					  'casts round trip')
FROM vg;
-- float4 to numeric keeps FLT_DIG (6) digits in PostgreSQL 15: not exact
SELECT pg_temp.expect(bool_and(a::numeric[]::vector <-> a < 1e-5 * (1 + vector_norm(a))),
					  'numeric[] cast round trip within float4 -> numeric rounding')
FROM vg;
SELECT pg_temp.expect(bool_and(array_length(a::integer[], 1) = id), 'integer[] cast')
FROM vg;
SELECT pg_temp.expect(bool_and(vector_cmp(a, a) = 0 AND a = a AND NOT a < a), 'comparison')
FROM vg;
SELECT pg_temp.expect(count(DISTINCT vector_hash(a)) = count(*)
					  AND count(DISTINCT vector_hash_extended(b, 7)) = count(*), 'hashing')
FROM vg;
SELECT pg_temp.expect(bool_and(length(vector_send(a)) = 4 + 4 * id), 'vector_send length')
FROM vg;

-- binary COPY out and back in: vector_send, vector_recv
COPY vg TO :'copyfile' (FORMAT binary);
CREATE TABLE vg2 (LIKE vg);
COPY vg2 FROM :'copyfile' (FORMAT binary);
SELECT pg_temp.expect(count(*) = 21 AND bool_and(vg.a = vg2.a AND vg.b = vg2.b),
					  'binary COPY round trip')
FROM vg JOIN vg2 USING (id);

-- index paths that call the support functions
-- (a btree entry must fit in a page: vector storage is not compressed)
CREATE INDEX ON vg USING btree (a) WHERE id < 2000;
CREATE INDEX ON vg USING hash (b);
SET enable_seqscan = off;
SELECT pg_temp.expect(count(*) = 1, 'btree lookup')
FROM vg WHERE id < 2000 AND a = (SELECT a FROM vg2 WHERE id = 65);
SELECT pg_temp.expect(count(*) = 1, 'hash lookup')
FROM vg WHERE b = (SELECT b FROM vg2 WHERE id = 16000);
RESET enable_seqscan;
DROP TABLE vg, vg2;

-- batched inserts (hnswbatch.c): into an empty space, into a filled one
-- whose index was built by CREATE INDEX, through a trigger that searches
-- during the INSERT, and a failing batch
SELECT agentmem.create_space('vgb', 24, 'l2', m => 4, ef_construction => 16) IS NOT NULL;
SELECT pg_temp.expect(count(*) = 300, 'remember into an empty space')
FROM agentmem.remember('vgb', array_fill('r'::text, ARRAY[300]),
	ARRAY(SELECT array_agg(random())::vector FROM generate_series(1, 300) r, generate_series(1, 24) d
		  GROUP BY r));
SELECT format('DROP INDEX %s_embedding; CREATE INDEX ON %s USING hnsw (embedding vector_l2_ops) WITH (m = 4)',
			  agentmem.space_table('vgb'), agentmem.space_table('vgb')) \gexec
CREATE FUNCTION pg_temp.vg_search() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	SET LOCAL enable_seqscan = off;
	EXECUTE format('SELECT id FROM %s ORDER BY embedding <-> %L LIMIT 1', TG_RELID::regclass, NEW.embedding);
	IF NEW.content = 'boom' THEN
		RAISE EXCEPTION 'boom';
	END IF;
	RETURN NULL;
END $$;
SELECT format('CREATE TRIGGER vg AFTER INSERT ON %s FOR EACH ROW EXECUTE FUNCTION pg_temp.vg_search()',
			  agentmem.space_table('vgb')) \gexec
SELECT pg_temp.expect(count(*) = 200, 'remember into a built index, searched by a trigger')
FROM agentmem.remember('vgb', array_fill('s'::text, ARRAY[200]),
	ARRAY(SELECT array_agg(random())::vector FROM generate_series(1, 200) r, generate_series(1, 24) d
		  GROUP BY r));
DO $$
BEGIN
	PERFORM agentmem.remember('vgb', ARRAY['x', 'boom'], ARRAY[array_fill(0.5::real, ARRAY[24])::vector,
															  array_fill(0.6::real, ARRAY[24])::vector]);
EXCEPTION WHEN raise_exception THEN NULL;
END $$;
SELECT pg_temp.expect(count(*) = 0, 'hnsw_check after batches')
FROM agentmem.hnsw_check((agentmem.space_table('vgb')::text || '_embedding_idx')::regclass);
SELECT agentmem.drop_space('vgb');

-- statement fingerprints (stmtid.c) on awkward texts
SELECT pg_temp.expect(bool_and(agentmem.statement_id(q) <> 0), 'statement_id on awkward texts')
FROM (VALUES (''), (' '), (';'), ('$'), ('$$'), ('$a'), ('E'''), ('"'), ('/*'), ('--'), ('1e'), ('.5.'),
			 (E'SELECT ''\\'), (repeat('x', 100000))) v(q);

-- identical vectors (forced links, hnswinsert.c / hnswbatch.c), verdict
-- bits read and counted, VACUUM's repair writing verdicts
CREATE TABLE vg_dup (id int, v vector(3));
CREATE INDEX vg_dup_l2 ON vg_dup USING hnsw (v vector_l2_ops) WITH (m = 2, ef_construction = 4);
INSERT INTO vg_dup SELECT i, '[1,2,3]' FROM generate_series(1, 40) i;
INSERT INTO vg_dup SELECT i, ARRAY[i, i % 7, i % 3]::real[]::vector FROM generate_series(41, 400) i;
SELECT pg_temp.expect(unreachable = 0 AND problems = 0 AND judged_lists > 0, 'duplicates inserted one by one')
FROM agentmem.hnsw_info('vg_dup_l2');
DELETE FROM vg_dup WHERE id % 4 = 0;
VACUUM vg_dup;
SELECT pg_temp.expect(problems = 0, 'vacuum after duplicates') FROM agentmem.hnsw_info('vg_dup_l2');
DROP TABLE vg_dup;
SELECT agentmem.create_space('vgd', 3, 'l2', m => 2, ef_construction => 4) IS NOT NULL;
SELECT pg_temp.expect(count(*) = 300, 'remember of identical vectors')
FROM agentmem.remember('vgd', array_fill('d'::text, ARRAY[300]), array_fill('[1,2,3]'::vector, ARRAY[300]));
SELECT pg_temp.expect(unreachable = 0 AND problems = 0, 'identical vectors remembered')
FROM agentmem.hnsw_info((agentmem.space_table('vgd')::text || '_embedding')::regclass);
SELECT agentmem.drop_space('vgd');

-- the graph a backend keeps between batches (hnswbatch.c): reused, read
-- afresh after a plain INSERT and after VACUUM, dropped by a failed batch;
-- and scans reusing their search state (hnswscan.c), nested and after an error
SELECT agentmem.create_space('vgk', 6, 'l2', m => 4, ef_construction => 8) IS NOT NULL;
CREATE FUNCTION pg_temp.vgk_batch(n int) RETURNS bigint LANGUAGE sql AS $$
	SELECT count(*) FROM agentmem.remember('vgk', array_fill('k'::text, ARRAY[n]),
		(SELECT array_agg(ARRAY[random(), random(), random(), random(), random(), random()]::real[]::vector)
		   FROM generate_series(1, n)))
$$;
SELECT pg_temp.expect(pg_temp.vgk_batch(150) + pg_temp.vgk_batch(150) = 300, 'two batches, the second reusing the graph');
SELECT agentmem.space_table('vgk') AS vgk \gset
INSERT INTO :vgk (content, embedding) VALUES ('plain', '[0.5,0.5,0.5,0.5,0.5,0.5]');
SELECT pg_temp.expect(pg_temp.vgk_batch(100) = 100, 'a batch after a plain insert');
DELETE FROM :vgk WHERE id % 3 = 0;
VACUUM :vgk;
SELECT pg_temp.expect(pg_temp.vgk_batch(100) = 100, 'a batch after VACUUM');
DO $$
BEGIN
	PERFORM agentmem.remember('vgk', ARRAY['x', 'y'], ARRAY['[1,1,1,1,1,1]', '[1,1,1,1,1,NaN]']::vector[]);
EXCEPTION WHEN OTHERS THEN NULL;
END $$;
SELECT pg_temp.expect(pg_temp.vgk_batch(100) = 100, 'a batch after a failed one');
SELECT pg_temp.expect(problems = 0 AND unreachable = 0, 'kept graph batches')
FROM agentmem.hnsw_info((agentmem.space_table('vgk')::text || '_embedding')::regclass);
SET hnsw.iterative_scan = relaxed_order;
SELECT pg_temp.expect(count(*) = 15, 'nested scans')
FROM (SELECT embedding FROM :vgk ORDER BY embedding <-> '[0,0,0,0,0,0]' LIMIT 5) o,
	 LATERAL (SELECT id FROM :vgk i ORDER BY i.embedding <-> o.embedding LIMIT 3) n;
SET vg.n = 0;
DO $$
BEGIN
	-- fails at the third row, while the scan is open
	EXECUTE format('SELECT 1 / (3 - set_config(''vg.n'', (current_setting(''vg.n'')::int + 1)::text, false)::int)'
				   ' FROM (SELECT id FROM %s ORDER BY embedding <-> %L LIMIT 10) s',
				   agentmem.space_table('vgk'), '[0,0,0,0,0,0]');
EXCEPTION WHEN division_by_zero THEN NULL;
END $$;
SELECT pg_temp.expect(count(*) = 10, 'a scan after a failed one')
FROM (SELECT id FROM :vgk ORDER BY embedding <-> '[0,0,0,0,0,0]' LIMIT 10) s;
RESET hnsw.iterative_scan;
-- a batch cut short while writing its lists: the mark it leaves, the next
-- batch's relinking, and a search asking for the relinking worker
SET hnsw.test_fail_after_page_writes = 4;
DO $$
BEGIN
	PERFORM pg_temp.vgk_batch(30);
EXCEPTION WHEN internal_error THEN NULL;
END $$;
RESET hnsw.test_fail_after_page_writes;
SELECT pg_temp.expect(count(*) = 1, 'a batch cut short leaves the mark')
FROM agentmem.hnsw_check((agentmem.space_table('vgk')::text || '_embedding')::regclass)
WHERE kind = 'batch cut short';
SELECT pg_temp.expect(count(*) = 5, 'a search while the mark is there')
FROM (SELECT id FROM :vgk ORDER BY embedding <-> '[0,0,0,0,0,0]' LIMIT 5) s;
SELECT pg_temp.expect(pg_temp.vgk_batch(30) = 30, 'a batch after one cut short');
SELECT pg_temp.expect(problems = 0 AND unreachable = 0, 'relinked after the batch cut short')
FROM agentmem.hnsw_info((agentmem.space_table('vgk')::text || '_embedding')::regclass);
SELECT agentmem.drop_space('vgk');
