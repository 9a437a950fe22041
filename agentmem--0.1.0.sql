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
	OUT pages bigint, OUT m integer, OUT unreachable bigint, OUT problems bigint,
	OUT lists bigint, OUT judged_lists bigint)
	AS 'MODULE_PATHNAME', 'hnsw_info' LANGUAGE C STRICT VOLATILE;
REVOKE ALL ON FUNCTION agentmem.hnsw_check(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION agentmem.hnsw_info(regclass) FROM PUBLIC;

-- ================================================================ memory spaces and embedding cache
--
-- Issue 4; reference and examples in README.md (Agent memory).  A memory space is a
-- row of agentmem.space_catalog naming an ordinary table, owned by the
-- role that created the space, in schema agentmem_spaces.  Every function
-- runs with the caller's rights: reading or changing a space needs the
-- table privileges (GRANT SELECT, INSERT, DELETE ON <table> TO role);
-- creating one needs CREATE on schema agentmem_spaces.  Space names are
-- data: they are only compared, never spliced into SQL.

GRANT USAGE ON SCHEMA agentmem TO PUBLIC;

CREATE SCHEMA agentmem_spaces;
COMMENT ON SCHEMA agentmem_spaces IS
	'tables of agentmem memory spaces, one per space, owned by their creators';
GRANT USAGE ON SCHEMA agentmem_spaces TO PUBLIC;

CREATE SEQUENCE agentmem.space_id_seq;
CREATE TABLE agentmem.space_catalog (
	id bigint PRIMARY KEY DEFAULT nextval('agentmem.space_id_seq'),
	name text NOT NULL CHECK (name <> ''),
	table_schema name NOT NULL DEFAULT 'agentmem_spaces',
	table_name name NOT NULL,
	dims integer NOT NULL,
	metric text NOT NULL CHECK (metric IN ('cosine', 'l2', 'ip')),
	m integer NOT NULL,
	ef_construction integer NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	UNIQUE (table_schema, table_name)
);
-- names of any length: unique through their digest, compared in full
CREATE UNIQUE INDEX space_catalog_name ON agentmem.space_catalog (md5(name));
COMMENT ON TABLE agentmem.space_catalog IS 'memory spaces and their tables (read agentmem.spaces)';
SELECT pg_catalog.pg_extension_config_dump('agentmem.space_catalog', '');
SELECT pg_catalog.pg_extension_config_dump('agentmem.space_id_seq', '');

-- Is the table schema.name there and owned by a role the caller acts as?
CREATE FUNCTION agentmem._space_owned(table_schema name, table_name name) RETURNS boolean
	LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
	SELECT pg_has_role(c.relowner, 'USAGE') FROM pg_class c
	 WHERE c.oid = to_regclass(format('%I.%I', table_schema, table_name))
$$;

-- Everyone reads the catalog (as everyone reads pg_class); a role
-- registers only a table it owns and unregisters only its own spaces (or
-- those whose table is gone).
ALTER TABLE agentmem.space_catalog ENABLE ROW LEVEL SECURITY;
CREATE POLICY space_catalog_read ON agentmem.space_catalog FOR SELECT USING (true);
CREATE POLICY space_catalog_register ON agentmem.space_catalog FOR INSERT
	WITH CHECK (agentmem._space_owned(table_schema, table_name));
CREATE POLICY space_catalog_unregister ON agentmem.space_catalog FOR DELETE
	USING (coalesce(agentmem._space_owned(table_schema, table_name), true));
GRANT SELECT, INSERT, DELETE ON agentmem.space_catalog TO PUBLIC;
GRANT USAGE ON SEQUENCE agentmem.space_id_seq TO PUBLIC;

CREATE FUNCTION agentmem._clip(name text) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT AS $$
	SELECT CASE WHEN length(name) > 64 THEN left(name, 61) || '...' ELSE name END
$$;

CREATE FUNCTION agentmem.create_space(space text, dims integer, metric text DEFAULT 'cosine',
	m integer DEFAULT 16, ef_construction integer DEFAULT 64) RETURNS regclass
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	v_id bigint;
	v_table text;
	v_opclass text;
BEGIN
	IF space IS NULL OR dims IS NULL OR metric IS NULL OR m IS NULL OR ef_construction IS NULL THEN
		RAISE EXCEPTION '% must not be NULL',
			CASE WHEN space IS NULL THEN 'space' WHEN dims IS NULL THEN 'dims'
				 WHEN metric IS NULL THEN 'metric' WHEN m IS NULL THEN 'm' ELSE 'ef_construction' END
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF space = '' THEN
		RAISE EXCEPTION 'space name must not be empty' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	v_opclass := CASE metric WHEN 'cosine' THEN 'vector_cosine_ops'
				 WHEN 'l2' THEN 'vector_l2_ops' WHEN 'ip' THEN 'vector_ip_ops' END;
	IF v_opclass IS NULL THEN
		RAISE EXCEPTION 'unknown metric "%"', agentmem._clip(metric)
			USING ERRCODE = 'invalid_parameter_value', HINT = 'The metric is cosine, l2 or ip.';
	END IF;
	IF dims NOT BETWEEN 1 AND 2000 THEN
		RAISE EXCEPTION 'dims must be between 1 and 2000, not %', dims
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'The hnsw index handles up to 2000 dimensions.';
	END IF;
	IF m NOT BETWEEN 2 AND 100 THEN
		RAISE EXCEPTION 'm must be between 2 and 100, not %', m USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF ef_construction NOT BETWEEN 4 AND 1000 THEN
		RAISE EXCEPTION 'ef_construction must be between 4 and 1000, not %', ef_construction
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF EXISTS (SELECT 1 FROM agentmem.space_catalog c WHERE md5(c.name) = md5(space) AND c.name = space) THEN
		RAISE EXCEPTION 'memory space "%" already exists', agentmem._clip(space)
			USING ERRCODE = 'duplicate_object';
	END IF;

	-- s<id>_<up to 40 lower-case letters, digits and _ of the name>
	v_id := nextval('agentmem.space_id_seq');
	v_table := 's' || v_id || coalesce('_' || nullif(btrim(left(
		regexp_replace(lower(space), '[^a-z0-9_]+', '_', 'g'), 40), '_'), ''), '');
	EXECUTE format('CREATE TABLE agentmem_spaces.%I ('
		'id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, '
		'content text NOT NULL, '
		'embedding @extschema@.vector(%s) NOT NULL, '
		'metadata jsonb NOT NULL DEFAULT ''{}'', '
		'created_at timestamptz NOT NULL DEFAULT now())', v_table, dims);
	EXECUTE format('CREATE INDEX %I ON agentmem_spaces.%I USING hnsw (embedding @extschema@.%I)'
		' WITH (m = %s, ef_construction = %s)', v_table || '_embedding', v_table, v_opclass, m, ef_construction);
	EXECUTE format('COMMENT ON TABLE agentmem_spaces.%I IS %L', v_table,
		'agentmem memory space ' || agentmem._clip(space));
	BEGIN
		INSERT INTO agentmem.space_catalog (id, name, table_name, dims, metric, m, ef_construction)
		VALUES (v_id, space, v_table, dims, metric, m, ef_construction);
	EXCEPTION WHEN unique_violation THEN
		RAISE EXCEPTION 'memory space "%" already exists', agentmem._clip(space)
			USING ERRCODE = 'duplicate_object';
	END;
	RETURN format('agentmem_spaces.%I', v_table)::regclass;
END
$$;
COMMENT ON FUNCTION agentmem.create_space(text, integer, text, integer, integer) IS
	'create a memory space: a table in schema agentmem_spaces with an hnsw index; returns the table';

CREATE FUNCTION agentmem.drop_space(space text) RETURNS void
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r record;
	v_owner oid;
BEGIN
	IF space IS NULL THEN
		RAISE EXCEPTION 'space must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT * INTO r FROM agentmem.space_catalog c WHERE md5(c.name) = md5(space) AND c.name = space;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'memory space "%" does not exist', agentmem._clip(space)
			USING ERRCODE = 'undefined_object';
	END IF;
	SELECT c.relowner INTO v_owner FROM pg_class c
	 WHERE c.oid = to_regclass(format('%I.%I', r.table_schema, r.table_name));
	IF FOUND THEN
		IF NOT pg_has_role(v_owner, 'USAGE') THEN
			RAISE EXCEPTION 'must be owner of memory space "%"', agentmem._clip(space)
				USING ERRCODE = 'insufficient_privilege',
					  DETAIL = format('Its table %I.%I belongs to %I.', r.table_schema, r.table_name,
									  pg_get_userbyid(v_owner));
		END IF;
		EXECUTE format('DROP TABLE %I.%I', r.table_schema, r.table_name);
	END IF;
	DELETE FROM agentmem.space_catalog WHERE id = r.id;
END
$$;
COMMENT ON FUNCTION agentmem.drop_space(text) IS 'drop a memory space and its table';

-- A space's table dropped directly (DROP TABLE, DROP OWNED) leaves the catalog too.
CREATE FUNCTION agentmem._space_table_dropped() RETURNS event_trigger
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF to_regclass('agentmem.space_catalog') IS NOT NULL THEN
		DELETE FROM agentmem.space_catalog c USING pg_event_trigger_dropped_objects() o
		 WHERE o.object_type = 'table' AND o.schema_name = c.table_schema
		   AND o.object_name = c.table_name;
	END IF;
END
$$;
CREATE EVENT TRIGGER agentmem_space_table_dropped ON sql_drop
	EXECUTE FUNCTION agentmem._space_table_dropped();

-- Exact row count of a space's table, or NULL without SELECT on it.
CREATE FUNCTION agentmem._space_rows(table_schema name, table_name name) RETURNS bigint
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t regclass := to_regclass(format('%I.%I', table_schema, table_name));
	n bigint;
BEGIN
	IF t IS NULL OR NOT has_table_privilege(t, 'SELECT') THEN
		RETURN NULL;
	END IF;
	EXECUTE format('SELECT count(*) FROM %I.%I', table_schema, table_name) INTO n;
	RETURN n;
END
$$;

CREATE VIEW agentmem.spaces AS
SELECT c.name AS space,
	   format('%I.%I', c.table_schema, c.table_name) AS table_name,
	   c.dims, c.metric, c.m, c.ef_construction,
	   agentmem._space_rows(c.table_schema, c.table_name) AS rows,
	   pg_catalog.pg_get_userbyid(r.relowner) AS owner,
	   c.created_at
  FROM agentmem.space_catalog c
  LEFT JOIN pg_catalog.pg_class r
	ON r.oid = pg_catalog.to_regclass(format('%I.%I', c.table_schema, c.table_name));
COMMENT ON VIEW agentmem.spaces IS
	'memory spaces: settings, table, owner, and row count (NULL without SELECT on the table)';
GRANT SELECT ON agentmem.spaces TO PUBLIC;

CREATE FUNCTION agentmem.space_table(space text) RETURNS regclass
	AS 'MODULE_PATHNAME', 'agentmem_space_table' LANGUAGE C STABLE;
COMMENT ON FUNCTION agentmem.space_table(text) IS 'the table of a memory space';

CREATE FUNCTION agentmem.remember(space text, contents text[], embeddings vector[],
	metadata jsonb[] DEFAULT NULL) RETURNS SETOF bigint
	AS 'MODULE_PATHNAME', 'agentmem_remember' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION agentmem.remember(text, text[], vector[], jsonb[]) IS
	'insert rows into a memory space in one statement, all or nothing; returns their ids in input order';

CREATE FUNCTION agentmem.remember_texts(space text, model text, contents text[],
	metadata jsonb[] DEFAULT NULL) RETURNS SETOF bigint
	AS 'MODULE_PATHNAME', 'agentmem_remember_texts' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION agentmem.remember_texts(text, text, text[], jsonb[]) IS
	'remember, with every embedding taken from the embedding cache';

CREATE FUNCTION agentmem.recall(space text, query vector, k integer DEFAULT 10, filter jsonb DEFAULT NULL)
	RETURNS TABLE(id bigint, content text, metadata jsonb, distance double precision)
	AS 'MODULE_PATHNAME', 'agentmem_recall' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION agentmem.recall(text, vector, integer, jsonb) IS
	'the k rows of a memory space nearest to query (whose metadata contains filter), nearest first';

CREATE FUNCTION agentmem.recall_batch(space text, queries vector[], k integer DEFAULT 10,
	filter jsonb DEFAULT NULL)
	RETURNS TABLE(query_no integer, rank integer, id bigint, content text, metadata jsonb,
				  distance double precision)
	AS 'MODULE_PATHNAME', 'agentmem_recall_batch' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION agentmem.recall_batch(text, vector[], integer, jsonb) IS
	'recall for every query in one call; query_no is 1-based';

CREATE FUNCTION agentmem.recall_text(space text, model text, query text, k integer DEFAULT 10,
	filter jsonb DEFAULT NULL)
	RETURNS TABLE(id bigint, content text, metadata jsonb, distance double precision)
	AS 'MODULE_PATHNAME', 'agentmem_recall_text' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION agentmem.recall_text(text, text, text, integer, jsonb) IS
	'recall with the cached embedding of query';

CREATE FUNCTION agentmem.forget(space text, ids bigint[]) RETURNS bigint
	AS 'MODULE_PATHNAME', 'agentmem_forget' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION agentmem.forget(text, bigint[]) IS 'delete rows of a memory space; returns how many';

-- ---------------------------------------------------------------- embedding cache
--
-- Not granted to PUBLIC: whoever may write the cache decides what others
-- read from it.  GRANT SELECT ON agentmem.cache, agentmem.cache_claims to
-- readers; SELECT, INSERT, UPDATE, DELETE ON agentmem.cache,
-- agentmem.cache_models, agentmem.cache_claims to writers.

CREATE TABLE agentmem.cache (
	key bytea PRIMARY KEY CHECK (octet_length(key) = 32),	-- SHA-256(model, 0x00, text)
	model_key bigint NOT NULL,
	embedding vector NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	last_used timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX cache_last_used ON agentmem.cache (last_used);
COMMENT ON TABLE agentmem.cache IS 'embedding cache: one row per (model, text), keyed by SHA-256';

CREATE TABLE agentmem.cache_models (
	model_key bigint PRIMARY KEY,	-- first 8 bytes of SHA-256(model)
	model text NOT NULL
);
COMMENT ON TABLE agentmem.cache_models IS 'the model names of agentmem.cache';

CREATE TABLE agentmem.cache_claims (
	key bytea PRIMARY KEY,
	model_key bigint NOT NULL,
	claimer_pid integer NOT NULL,
	claimed_at timestamptz NOT NULL,
	expires_at timestamptz NOT NULL
);
COMMENT ON TABLE agentmem.cache_claims IS
	'texts a session is embedding (agentmem.cache_claim); released by cache_put';

SELECT pg_catalog.pg_extension_config_dump('agentmem.cache', '');
SELECT pg_catalog.pg_extension_config_dump('agentmem.cache_models', '');

-- The number of entries, kept by statement triggers in 16 rows so that
-- concurrent puts seldom wait for each other; cache_put reads it to
-- enforce agentmem.cache_max_entries without counting the table.
CREATE TABLE agentmem.cache_count (
	shard integer PRIMARY KEY,
	entries bigint NOT NULL
);
INSERT INTO agentmem.cache_count SELECT g, 0 FROM generate_series(0, 15) g;
GRANT SELECT ON agentmem.cache_count TO PUBLIC;

CREATE FUNCTION agentmem._cache_count_insert() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	UPDATE agentmem.cache_count SET entries = entries + (SELECT count(*) FROM new_rows)
	 WHERE shard = pg_backend_pid() % 16;
	RETURN NULL;
END
$$;
CREATE FUNCTION agentmem._cache_count_delete() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	UPDATE agentmem.cache_count SET entries = entries - (SELECT count(*) FROM old_rows)
	 WHERE shard = pg_backend_pid() % 16;
	RETURN NULL;
END
$$;
CREATE FUNCTION agentmem._cache_count_truncate() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	UPDATE agentmem.cache_count SET entries = 0;
	RETURN NULL;
END
$$;
CREATE TRIGGER cache_count_insert AFTER INSERT ON agentmem.cache
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
	EXECUTE FUNCTION agentmem._cache_count_insert();
CREATE TRIGGER cache_count_delete AFTER DELETE ON agentmem.cache
	REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
	EXECUTE FUNCTION agentmem._cache_count_delete();
CREATE TRIGGER cache_count_truncate AFTER TRUNCATE ON agentmem.cache
	FOR EACH STATEMENT EXECUTE FUNCTION agentmem._cache_count_truncate();

-- Count the entries again (cache_evict does, in case triggers were off).
CREATE FUNCTION agentmem._cache_recount() RETURNS bigint
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	n bigint;
BEGIN
	IF current_setting('transaction_isolation') <> 'read committed' THEN
		RETURN NULL;			-- an older snapshot would count wrong
	END IF;
	LOCK TABLE agentmem.cache_count IN EXCLUSIVE MODE;
	SELECT count(*) INTO n FROM agentmem.cache;
	UPDATE agentmem.cache_count SET entries = CASE WHEN shard = 0 THEN n ELSE 0 END;
	RETURN n;
END
$$;

CREATE FUNCTION agentmem._backend_alive(pid integer) RETURNS boolean
	AS 'MODULE_PATHNAME', 'agentmem_backend_alive' LANGUAGE C VOLATILE STRICT PARALLEL SAFE;

CREATE FUNCTION agentmem.cache_key(model text, content text) RETURNS bytea
	AS 'MODULE_PATHNAME', 'agentmem_cache_key' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION agentmem.cache_key(text, text) IS
	'the cache key of a text: SHA-256 over the model name, a 0x00 byte and the text';

CREATE FUNCTION agentmem.cache_put(model text, texts text[], embeddings vector[]) RETURNS bigint
	AS 'MODULE_PATHNAME', 'agentmem_cache_put' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION agentmem.cache_put(text, text[], vector[]) IS
	'store embeddings of texts; returns how many entries are new';

CREATE FUNCTION agentmem.cache_get(model text, texts text[])
	RETURNS TABLE(ord integer, embedding vector)
	AS 'MODULE_PATHNAME', 'agentmem_cache_get' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION agentmem.cache_get(text, text[]) IS
	'the cached embedding of every text, in order, NULL for a miss';

CREATE FUNCTION agentmem.cache_misses(model text, texts text[])
	RETURNS TABLE(ord integer, content text)
	AS 'MODULE_PATHNAME', 'agentmem_cache_misses' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION agentmem.cache_misses(text, text[]) IS
	'each distinct uncached text once, at its first position';

CREATE FUNCTION agentmem.cache_claim(model text, texts text[], lease interval DEFAULT '30 seconds')
	RETURNS TABLE(ord integer, content text)
	AS 'MODULE_PATHNAME', 'agentmem_cache_claim' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION agentmem.cache_claim(text, text[], interval) IS
	'the distinct uncached texts no other live session is embedding, claimed for lease';

CREATE FUNCTION agentmem.cache_wait(model text, texts text[], timeout interval DEFAULT '10 seconds')
	RETURNS TABLE(ord integer, embedding vector)
	AS 'MODULE_PATHNAME', 'agentmem_cache_wait' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION agentmem.cache_wait(text, text[], interval) IS
	'wait (at most timeout) for texts others claimed to be stored; then like cache_get';

CREATE FUNCTION agentmem.cache_evict(max_entries bigint DEFAULT NULL, older_than interval DEFAULT NULL)
	RETURNS bigint
	AS 'MODULE_PATHNAME', 'agentmem_cache_evict' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION agentmem.cache_evict(bigint, interval) IS
	'evict entries unused for older_than, then the least recently used beyond max_entries';

CREATE FUNCTION agentmem._cache_counters(OUT model_key bigint, OUT model text, OUT hits bigint,
	OUT misses bigint, OUT puts bigint, OUT evictions bigint, OUT stats_reset timestamptz)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'agentmem_cache_counters' LANGUAGE C VOLATILE;

CREATE FUNCTION agentmem.cache_stats_reset() RETURNS timestamptz
	AS 'MODULE_PATHNAME', 'agentmem_cache_stats_reset' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION agentmem.cache_stats_reset() FROM PUBLIC;
COMMENT ON FUNCTION agentmem.cache_stats_reset() IS
	'reset the embedding cache counters of this database';

CREATE VIEW agentmem.cache_stats AS
WITH entries AS (
	SELECT c.model_key, count(*) AS entries, sum(pg_catalog.pg_column_size(c.*))::bigint AS bytes
	  FROM agentmem.cache c GROUP BY c.model_key
), counters AS MATERIALIZED (
	SELECT * FROM agentmem._cache_counters()
)
SELECT coalesce(m.model, k.model) AS model,
	   coalesce(e.entries, 0) AS entries,
	   coalesce(e.bytes, 0) AS bytes,
	   coalesce(k.hits, 0) AS hits,
	   coalesce(k.misses, 0) AS misses,
	   CASE WHEN k.hits + k.misses > 0 THEN k.hits::float8 / (k.hits + k.misses) END AS hit_ratio,
	   coalesce(k.puts, 0) AS puts,
	   coalesce(k.evictions, 0) AS evictions,
	   (SELECT d.stats_reset FROM counters d WHERE d.model_key = 0) AS stats_reset
  FROM entries e
  FULL JOIN (SELECT * FROM counters WHERE model_key <> 0) k ON k.model_key = e.model_key
  LEFT JOIN agentmem.cache_models m ON m.model_key = coalesce(e.model_key, k.model_key);
COMMENT ON VIEW agentmem.cache_stats IS
	'embedding cache per model: entries, bytes, and hits, misses, puts, evictions since stats_reset';
GRANT SELECT ON agentmem.cache_stats TO PUBLIC;

-- ---------------------------------------------------------------- statistics
-- Latency percentiles, N+1 detection and connection churn (README.md, Statistics).
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

CREATE FUNCTION agentmem.statement_id(query text) RETURNS bigint
	AS 'MODULE_PATHNAME', 'agentmem_statement_id' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION agentmem.statement_id(text) IS
	'the queryid agentmem records for a statement when the server computes no query identifiers';

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
