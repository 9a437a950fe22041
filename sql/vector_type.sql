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

-- text input reads every number to the float strtof gives (float4 input):
-- plain decimals take a fast path (vector.c, parse_plain_decimal), the rest
-- strtof; 20,000 random forms, 1-20 significant digits, point anywhere,
-- exponents, signs, leading zeros, and float midpoints that must round to
-- even (16777217 lies halfway between 16777216 and 16777218)
SELECT setseed(0.25);
CREATE TEMP TABLE num_forms AS
SELECT CASE WHEN random() < 0.3 THEN '-' WHEN random() < 0.1 THEN '+' ELSE '' END ||
	   CASE WHEN random() < 0.1 THEN '00' ELSE '' END ||
	   CASE WHEN pt = 0 THEN '.' || digits
			WHEN pt > length(digits) THEN digits
			ELSE substr(digits, 1, pt) || '.' || substr(digits, pt + 1) END ||
	   CASE WHEN random() < 0.4 THEN 'e' || (floor(random() * 50) - 25)::int ELSE '' END AS s
FROM (SELECT digits, floor(random() * (length(digits) + 2))::int AS pt
	  FROM (SELECT (SELECT string_agg(floor(random() * 10)::int::text, '')
					FROM generate_series(1, 1 + (g % 20)) WHERE g > 0) AS digits
			FROM generate_series(1, 20000) g) d) f
UNION ALL
SELECT unnest(ARRAY['16777217', '16777219', '-16777217', '1.6777217e7', '33554434',
					'33554438', '0.0', '-0', '000', '1.e3', '+.5', '3.4028235e38',
					'1.17549435e-38', '9007199254740993', '0.1', '0.3', '2.5e-1']);
SELECT count(*) > 19000 AS enough_forms,
	   count(*) FILTER (WHERE float4send((('[' || s || ']')::vector::real[])[1]) <>
								float4send(s::real)) AS read_differently
FROM num_forms
WHERE s::numeric = 0 OR abs(s::numeric) BETWEEN 1.2e-38 AND 3.4e38;

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
