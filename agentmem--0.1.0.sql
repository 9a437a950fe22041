-- agentmem install script.  The vector type, its operators and the hnsw
-- access method go into the schema the extension is created in (public by
-- default), as pgvector's do; everything else goes into schema agentmem.

\echo Use "CREATE EXTENSION agentmem" to load this file. \quit

-- pgvector defines the same type, operators and access method: refuse
-- cleanly instead of failing halfway on a catalog conflict.
DO $$
BEGIN
	IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'vector') THEN
		RAISE EXCEPTION 'agentmem cannot be installed in a database where the pgvector extension ("vector") is installed'
			USING ERRCODE = 'duplicate_object',
				  DETAIL = 'Both extensions define the type vector, its operators and the access method hnsw.',
				  HINT = 'agentmem is a drop-in replacement: use it in a database without pgvector, or DROP EXTENSION vector first.';
	END IF;
	IF pg_catalog.to_regtype('@extschema@.vector') IS NOT NULL THEN
		RAISE EXCEPTION 'a type named vector already exists in schema @extschema@'
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Create agentmem in another schema: CREATE EXTENSION agentmem SCHEMA other_schema.';
	END IF;
END
$$;

CREATE SCHEMA agentmem;

-- ---------------------------------------------------------------- type

CREATE TYPE vector;

CREATE FUNCTION vector_in(cstring, oid, integer) RETURNS vector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_out(vector) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_typmod_in(cstring[]) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_typmod_out(integer) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_recv(internal, oid, integer) RETURNS vector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_send(vector) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE vector (
	INPUT = vector_in,
	OUTPUT = vector_out,
	TYPMOD_IN = vector_typmod_in,
	TYPMOD_OUT = vector_typmod_out,
	RECEIVE = vector_recv,
	SEND = vector_send,
	STORAGE = external
);

-- ---------------------------------------------------------------- casts

CREATE FUNCTION vector(vector, integer, boolean) RETURNS vector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_vector(integer[], integer, boolean) RETURNS vector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_vector(real[], integer, boolean) RETURNS vector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_vector(double precision[], integer, boolean) RETURNS vector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_vector(numeric[], integer, boolean) RETURNS vector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_to_float4(vector, integer, boolean) RETURNS real[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_to_float8(vector, integer, boolean) RETURNS double precision[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_to_int4(vector, integer, boolean) RETURNS integer[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_to_numeric(vector, integer, boolean) RETURNS numeric[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE CAST (vector AS vector) WITH FUNCTION vector(vector, integer, boolean) AS IMPLICIT;
CREATE CAST (integer[] AS vector) WITH FUNCTION array_to_vector(integer[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (real[] AS vector) WITH FUNCTION array_to_vector(real[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (double precision[] AS vector) WITH FUNCTION array_to_vector(double precision[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (numeric[] AS vector) WITH FUNCTION array_to_vector(numeric[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (vector AS real[]) WITH FUNCTION vector_to_float4(vector, integer, boolean) AS IMPLICIT;
CREATE CAST (vector AS double precision[]) WITH FUNCTION vector_to_float8(vector, integer, boolean);
CREATE CAST (vector AS integer[]) WITH FUNCTION vector_to_int4(vector, integer, boolean);
CREATE CAST (vector AS numeric[]) WITH FUNCTION vector_to_numeric(vector, integer, boolean);

-- ---------------------------------------------------------------- functions

CREATE FUNCTION l2_distance(vector, vector) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION inner_product(vector, vector) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION cosine_distance(vector, vector) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION l1_distance(vector, vector) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_dims(vector) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_norm(vector) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION l2_normalize(vector) RETURNS vector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION subvector(vector, integer, integer) RETURNS vector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- support functions behind the operators and the index operator classes
CREATE FUNCTION vector_l2_squared_distance(vector, vector) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_negative_inner_product(vector, vector) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_spherical_distance(vector, vector) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_add(vector, vector) RETURNS vector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_sub(vector, vector) RETURNS vector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_mul(vector, vector) RETURNS vector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_concat(vector, vector) RETURNS vector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_lt(vector, vector) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_le(vector, vector) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_eq(vector, vector) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_ne(vector, vector) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_ge(vector, vector) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_gt(vector, vector) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_cmp(vector, vector) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_hash(vector) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_hash_extended(vector, bigint) RETURNS bigint
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- ---------------------------------------------------------------- aggregates

CREATE FUNCTION vector_accum(double precision[], vector) RETURNS double precision[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_combine(double precision[], double precision[]) RETURNS double precision[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_avg(double precision[]) RETURNS vector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE AGGREGATE avg(vector) (
	SFUNC = vector_accum,
	STYPE = double precision[],
	FINALFUNC = vector_avg,
	COMBINEFUNC = vector_combine,
	INITCOND = '{0}',
	PARALLEL = SAFE
);

CREATE AGGREGATE sum(vector) (
	SFUNC = vector_add,
	STYPE = vector,
	COMBINEFUNC = vector_add,
	PARALLEL = SAFE
);

-- ---------------------------------------------------------------- operators

CREATE OPERATOR <-> (
	LEFTARG = vector, RIGHTARG = vector, PROCEDURE = l2_distance,
	COMMUTATOR = '<->'
);
CREATE OPERATOR <#> (
	LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_negative_inner_product,
	COMMUTATOR = '<#>'
);
CREATE OPERATOR <=> (
	LEFTARG = vector, RIGHTARG = vector, PROCEDURE = cosine_distance,
	COMMUTATOR = '<=>'
);
CREATE OPERATOR <+> (
	LEFTARG = vector, RIGHTARG = vector, PROCEDURE = l1_distance,
	COMMUTATOR = '<+>'
);
CREATE OPERATOR + (
	LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_add,
	COMMUTATOR = +
);
CREATE OPERATOR - (
	LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_sub
);
CREATE OPERATOR * (
	LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_mul,
	COMMUTATOR = *
);
CREATE OPERATOR || (
	LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_concat
);
CREATE OPERATOR < (
	LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_lt,
	COMMUTATOR = >, NEGATOR = >=,
	RESTRICT = scalarltsel, JOIN = scalarltjoinsel
);
CREATE OPERATOR <= (
	LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_le,
	COMMUTATOR = >=, NEGATOR = >,
	RESTRICT = scalarlesel, JOIN = scalarlejoinsel
);
CREATE OPERATOR = (
	LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_eq,
	COMMUTATOR = =, NEGATOR = <>,
	RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES
);
CREATE OPERATOR <> (
	LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_ne,
	COMMUTATOR = <>, NEGATOR = =,
	RESTRICT = neqsel, JOIN = neqjoinsel
);
CREATE OPERATOR >= (
	LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_ge,
	COMMUTATOR = <=, NEGATOR = <,
	RESTRICT = scalargesel, JOIN = scalargejoinsel
);
CREATE OPERATOR > (
	LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_gt,
	COMMUTATOR = <, NEGATOR = <=,
	RESTRICT = scalargtsel, JOIN = scalargtjoinsel
);

CREATE OPERATOR CLASS vector_ops
	DEFAULT FOR TYPE vector USING btree AS
	OPERATOR 1 <,
	OPERATOR 2 <=,
	OPERATOR 3 =,
	OPERATOR 4 >=,
	OPERATOR 5 >,
	FUNCTION 1 vector_cmp(vector, vector);

CREATE OPERATOR CLASS vector_ops
	DEFAULT FOR TYPE vector USING hash AS
	OPERATOR 1 =,
	FUNCTION 1 vector_hash(vector),
	FUNCTION 2 vector_hash_extended(vector, bigint);

-- ---------------------------------------------------------------- agentmem schema

CREATE FUNCTION agentmem.distance_kernel() RETURNS text
	AS 'MODULE_PATHNAME', 'agentmem_distance_kernel' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION agentmem.distance_kernel() IS
	'the SIMD variant of the distance kernels chosen for this CPU at load time';

-- ---------------------------------------------------------------- hnsw

CREATE FUNCTION hnswhandler(internal) RETURNS index_am_handler
	AS 'MODULE_PATHNAME' LANGUAGE C;
CREATE ACCESS METHOD hnsw TYPE INDEX HANDLER hnswhandler;
COMMENT ON ACCESS METHOD hnsw IS 'hierarchical navigable small world graph for nearest-neighbour search';

CREATE OPERATOR CLASS vector_l2_ops
	DEFAULT FOR TYPE vector USING hnsw AS
	OPERATOR 1 <-> (vector, vector) FOR ORDER BY float_ops,
	FUNCTION 1 vector_l2_squared_distance(vector, vector);

CREATE OPERATOR CLASS vector_ip_ops
	FOR TYPE vector USING hnsw AS
	OPERATOR 1 <#> (vector, vector) FOR ORDER BY float_ops,
	FUNCTION 1 vector_negative_inner_product(vector, vector);

CREATE OPERATOR CLASS vector_cosine_ops
	FOR TYPE vector USING hnsw AS
	OPERATOR 1 <=> (vector, vector) FOR ORDER BY float_ops,
	FUNCTION 1 vector_negative_inner_product(vector, vector),
	FUNCTION 2 vector_norm(vector);

CREATE OPERATOR CLASS vector_l1_ops
	FOR TYPE vector USING hnsw AS
	OPERATOR 1 <+> (vector, vector) FOR ORDER BY float_ops,
	FUNCTION 1 l1_distance(vector, vector);

CREATE FUNCTION agentmem.hnsw_check(index regclass,
	OUT kind text, OUT element tid, OUT detail text) RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'hnsw_check' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION agentmem.hnsw_check(regclass) IS
	'verify the structure of an hnsw index: one row per problem, none when sound';
CREATE FUNCTION agentmem.hnsw_info(index regclass,
	OUT elements bigint, OUT deleted bigint, OUT entry_level integer,
	OUT pages bigint, OUT m integer, OUT unreachable bigint, OUT problems bigint)
	AS 'MODULE_PATHNAME', 'hnsw_info' LANGUAGE C STRICT VOLATILE;
REVOKE ALL ON FUNCTION agentmem.hnsw_check(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION agentmem.hnsw_info(regclass) FROM PUBLIC;

-- ---------------------------------------------------------------- statistics
-- Latency percentiles, N+1 detection and connection churn (docs/statistics.md).
-- The functions need shared_preload_libraries = 'agentmem'; without it they
-- raise object_not_in_prerequisite_state with a hint saying how to enable it.

-- every role may read the statistics views (rows of other users are
-- filtered inside, as in pg_stat_statements)
GRANT USAGE ON SCHEMA agentmem TO PUBLIC;

CREATE FUNCTION agentmem.latency_stats(
	OUT operation text, OUT calls bigint, OUT mean_ms float8,
	OUT p50_ms float8, OUT p90_ms float8, OUT p95_ms float8, OUT p99_ms float8,
	OUT p999_ms float8, OUT max_ms float8) RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'agentmem_latency' LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
CREATE VIEW agentmem.latency AS SELECT * FROM agentmem.latency_stats();
COMMENT ON VIEW agentmem.latency IS
	'latency percentiles of agentmem operations and of all top-level statements';

CREATE FUNCTION agentmem.statement_latency_stats(
	OUT userid oid, OUT dbid oid, OUT queryid bigint, OUT calls bigint, OUT mean_ms float8,
	OUT p50_ms float8, OUT p90_ms float8, OUT p95_ms float8, OUT p99_ms float8,
	OUT p999_ms float8, OUT max_ms float8) RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'agentmem_statement_latency' LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
CREATE VIEW agentmem.statement_latency AS SELECT * FROM agentmem.statement_latency_stats();
COMMENT ON VIEW agentmem.statement_latency IS
	'latency percentiles per statement (joins pg_stat_statements on userid, dbid, queryid)';

CREATE FUNCTION agentmem.latency_histogram(operation text,
	OUT lower float8, OUT upper float8, OUT count bigint) RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'agentmem_latency_histogram' LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION agentmem.latency_histogram(text) IS
	'non-empty latency buckets [lower, upper) in milliseconds of one operation, for plotting';

CREATE FUNCTION agentmem.slo_check(operation text, p50_ms float8, p99_ms float8,
	OUT target text, OUT target_ms float8, OUT calls bigint, OUT actual_ms float8,
	OUT met boolean) RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'agentmem_slo_check' LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION agentmem.slo_check(text, float8, float8) IS
	'compare the p50 and p99 latency of an operation with targets in milliseconds';

CREATE FUNCTION agentmem.latency_reset() RETURNS void
	AS 'MODULE_PATHNAME', 'agentmem_latency_reset' LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION agentmem.latency_reset() IS
	'forget all statistics: latencies, statements, N+1 findings, sessions';
REVOKE ALL ON FUNCTION agentmem.latency_reset() FROM PUBLIC;

CREATE FUNCTION agentmem.n_plus_one_stats(
	OUT userid oid, OUT dbid oid, OUT queryid bigint, OUT query text,
	OUT occurrences bigint, OUT max_repeats bigint, OUT total_ms float8,
	OUT last_seen timestamptz) RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'agentmem_n_plus_one' LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
CREATE VIEW agentmem.n_plus_one AS SELECT * FROM agentmem.n_plus_one_stats();
COMMENT ON VIEW agentmem.n_plus_one IS
	'statements repeated agentmem.n_plus_one_threshold times or more in one transaction or burst';

CREATE FUNCTION agentmem.connection_stats(
	OUT sessions_started bigint, OUT sessions_ended bigint, OUT sessions_per_second float8,
	OUT lifetime_p50_ms float8, OUT lifetime_p99_ms float8, OUT share_under_1s float8,
	OUT tx_per_session_p50 float8, OUT advice text) RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'agentmem_connections' LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
CREATE VIEW agentmem.connections AS SELECT * FROM agentmem.connection_stats();
COMMENT ON VIEW agentmem.connections IS
	'connection churn: sessions started and ended, lifetimes, transactions per session, advice';

GRANT SELECT ON agentmem.latency, agentmem.statement_latency, agentmem.n_plus_one,
	agentmem.connections TO PUBLIC;
