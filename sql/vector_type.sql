-- The vector type: text I/O, typmod, binary I/O and casts.
SET extra_float_digits = 0;	-- output must not depend on it

-- text form, white space tolerated
SELECT '[1,2.5,-3e-2]'::vector;
SELECT '  [ 1 , 2 ,3 ]  '::vector;
SELECT E'[\t1,\n2]'::vector;
SELECT '[1e-45]'::vector;		-- smallest denormal survives
SELECT '[3.4028235e38,-3.4028235e38]'::vector;
-- shortest round-trip output: every float reads back to the same bits
SELECT '[0.1,0.2,0.3,1e-7,123456789,3.1415927]'::vector;
SELECT v::text::vector = v AS round_trips
FROM (SELECT array_agg(((random() - 0.5) * 10 ^ (random() * 60 - 30))::real)::vector(64) AS v
      FROM generate_series(1, 64)) s;

-- typmod on input and on assignment
SELECT '[1,2,3]'::vector(3);
CREATE TABLE vt (v vector(3));
INSERT INTO vt VALUES ('[1,2,3]'), (NULL);
SELECT * FROM vt ORDER BY v;
SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'vt'::regclass AND attname = 'v';
SELECT vector_dims(('[' || repeat('1,', 15999) || '1]')::vector);
CREATE TABLE vmax (v vector(16000));
INSERT INTO vmax SELECT ('[' || repeat('1,', 15999) || '1]')::vector;
SELECT vector_dims(v), vector_norm(v) FROM vmax;
DROP TABLE vmax;

-- binary send/recv: pgvector's wire format (int16 dim, int16 0, float4s)
SELECT vector_send('[1,2.5]'::vector);
CREATE TABLE vbin (v vector(3));
DO $$
DECLARE f text := '/tmp/agentmem_regress_' || pg_backend_pid() || '.bin';
BEGIN
	EXECUTE format($q$COPY (SELECT '[1,-2.5,3e-3]'::vector AS v) TO %L WITH (FORMAT binary)$q$, f);
	EXECUTE format('COPY vbin FROM %L WITH (FORMAT binary)', f);
END $$;
SELECT * FROM vbin;

-- casts from arrays
SELECT ARRAY[1,2,3]::vector;
SELECT ARRAY[1.5,2.5]::real[]::vector;
SELECT ARRAY[1.5,2.5]::double precision[]::vector;
SELECT ARRAY[1.25,-2]::numeric[]::vector;
SELECT ARRAY[1,2,3]::vector(3);
INSERT INTO vt VALUES (ARRAY[4,5,6]::real[]);
-- and to arrays
SELECT '[1,2.5]'::vector::real[];
SELECT '[1,2.5]'::vector::double precision[];
SELECT '[1,2.5,-2.5]'::vector::integer[];
SELECT '[1,2.5]'::vector::numeric[];
SELECT '[1,2.5]'::vector(2)::vector(2);

DROP TABLE vt, vbin;
