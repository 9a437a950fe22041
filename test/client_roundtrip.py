#!/usr/bin/python3
"""client_roundtrip.py: the vector type as a psycopg 3 client sees it.

Run by test/t/002_client_roundtrip.t with a libpq connection string as its
only argument, against a database where agentmem is installed.  It checks

  (a) the text form round trips every float4 bit pattern, and prints each
      element as float4out does;
  (b) binary COPY in and out with a dumper and loader that implement
      pgvector's wire format (int16 dim, int16 0, dim float4, network byte
      order), compared bit for bit;
  (c) binary query results and binary parameters against the text form;
  (d) malformed binary input, by COPY FROM binary and as a bind parameter,
      fails with the right SQLSTATE and leaves the server working.

It prints one "ok - ..." or "not ok - ..." line per check, "# ..." for
details, and exits non-zero when a check fails.
"""
import math
import random
import struct
import sys

import psycopg
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format
from psycopg.types import TypeInfo

SEED = 20240607
FLT_MAX = struct.unpack(">f", b"\x7f\x7f\xff\xff")[0]
FLT_TRUE_MIN = struct.unpack(">f", b"\x00\x00\x00\x01")[0]

results = {"pass": 0, "fail": 0, "todo": 0}


def check(ok, description, detail=None, todo=None):
    """Print one result line; detail goes out as a comment on failure.

    A check marked todo is a known bug in src/: it is reported with a TODO
    directive, so its failure does not fail the run and its passing shows
    up as "unexpectedly succeeded".
    """
    directive = f" # TODO {todo}" if todo else ""
    if ok or todo:
        results["pass" if ok else "todo"] += 1
    else:
        results["fail"] += 1
    print(f"{'ok' if ok else 'not ok'} - {description}{directive}")
    if not ok:
        if detail:
            for line in str(detail).splitlines():
                print(f"# {line}")
    sys.stdout.flush()
    return ok


def f32(x):
    """The float4 nearest to x, as a Python float."""
    return struct.unpack(">f", struct.pack(">f", x))[0]


class Vector:
    """A client-side vector: float4 values, compared bit for bit."""

    __slots__ = ("values",)

    def __init__(self, values):
        self.values = tuple(f32(v) for v in values)

    def bits(self):
        return struct.pack(f">{len(self.values)}f", *self.values)

    def __eq__(self, other):
        return isinstance(other, Vector) and self.bits() == other.bits()

    def __repr__(self):
        return "Vector(%s)" % ",".join(repr(v) for v in self.values)

    def literal(self):
        # repr() of a float4 value read back by strtof gives the same float4
        return "[" + ",".join(repr(v) for v in self.values) + "]"


class RawVector:
    """Bytes sent as they are, as a binary value of type vector."""

    def __init__(self, data):
        self.data = data


def wire(values, dim=None, reserved=0):
    """pgvector's wire format; dim and reserved can be made wrong."""
    dim = len(values) if dim is None else dim
    return struct.pack(f">hh{len(values)}f", dim, reserved, *values)


class VectorBinaryDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj):
        return wire(obj.values)


class RawVectorDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj):
        return obj.data


class VectorBinaryLoader(Loader):
    format = Format.BINARY

    def load(self, data):
        data = bytes(data)
        dim, reserved = struct.unpack_from(">hh", data)
        if reserved != 0 or len(data) != 4 + 4 * dim:
            raise ValueError(f"bad vector from server: {data!r}")
        return Vector(struct.unpack_from(f">{dim}f", data, 4))


class VectorTextLoader(Loader):
    format = Format.TEXT

    def load(self, data):
        text = data if isinstance(data, str) else bytes(data).decode()
        if not (text.startswith("[") and text.endswith("]")):
            raise ValueError(f"bad vector text from server: {text!r}")
        return Vector(float(x) for x in text[1:-1].split(","))


def register_vector(conn):
    info = TypeInfo.fetch(conn, "vector")
    if info is None:
        raise SystemExit("Bail out! type vector not found")
    info.register(conn)
    dumper = type("VectorDumper", (VectorBinaryDumper,), {"oid": info.oid})
    raw = type("RawDumper", (RawVectorDumper,), {"oid": info.oid})
    # both are also registered by oid, where the last one wins: COPY with
    # set_types() must use the real dumper
    conn.adapters.register_dumper(RawVector, raw)
    conn.adapters.register_dumper(Vector, dumper)
    conn.adapters.register_loader(info.oid, VectorBinaryLoader)
    conn.adapters.register_loader(info.oid, VectorTextLoader)
    return info.oid


def random_float4(rng):
    """A float4 from anywhere in the range: normal, denormal, zeros, extremes."""
    kind = rng.random()
    if kind < 0.05:
        return rng.choice([0.0, -0.0, FLT_MAX, -FLT_MAX, FLT_TRUE_MIN,
                           -FLT_TRUE_MIN, 1.0, -1.0])
    if kind < 0.15:
        # random bit pattern, excluding NaN and infinities
        while True:
            v = struct.unpack(">f", struct.pack(">I", rng.getrandbits(32)))[0]
            if math.isfinite(v):
                return v
    return f32(rng.uniform(-1, 1) * 10.0 ** rng.uniform(-44, 38))


def random_vector(rng, dim):
    return Vector(random_float4(rng) for _ in range(dim))


def sqlstate_of(fn):
    """Run fn; return (sqlstate, message) of the error, or (None, None)."""
    try:
        fn()
    except psycopg.Error as e:
        return e.sqlstate, e.diag.message_primary
    return None, None


# ------------------------------------------------------------ (a) text


def test_text(conn, rng):
    fixed = [
        ("[1,2,3]", "[1,2,3]"),
        (" [ 1.5 , -0.25,1e3 ] ", "[1.5,-0.25,1000]"),
        ("[-0]", "[-0]"),
        ("[0.1]", "[0.1]"),
        ("[3.4028235e38,-3.4028235e38]", "[3.4028235e+38,-3.4028235e+38]"),
        ("[1e-45]", "[1e-45]"),
        ("[1.17549435e-38]", "[1.1754944e-38]"),
    ]
    with conn.cursor() as cur:
        for literal, want in fixed:
            cur.execute("SELECT %s::vector::text", [literal])
            got = cur.fetchone()[0]
            check(got == want, f"text: {literal!r} prints as {want}",
                  f"got {got!r}")

        vectors = [random_vector(rng, rng.randint(1, 40)) for _ in range(300)]
        bad_bits, bad_float4out, bad_stable = [], [], []
        for v in vectors:
            cur.execute("SELECT %s::vector::text, %s::vector::real[]::text, "
                        "%s::vector::text::vector::text",
                        [v.literal(), v.literal(), v.literal()])
            text, real_array, twice = cur.fetchone()
            back = VectorTextLoader(0).load(text.encode())
            if back != v:
                bad_bits.append(f"{v.literal()} came back as {text}")
            # real[] prints with float4out: elements must be identical
            if text[1:-1].split(",") != real_array[1:-1].split(","):
                bad_float4out.append(f"{text} vs real[] {real_array}")
            if twice != text:
                bad_stable.append(f"{text} then {twice}")
        check(not bad_bits,
              f"text: {len(vectors)} random vectors (normal, denormal, -0, "
              "extremes) read back with the same float4 bits",
              "\n".join(bad_bits[:5]))
        check(not bad_float4out,
              "text: every element prints exactly as float4out prints it",
              "\n".join(bad_float4out[:5]))
        check(not bad_stable, "text: output read back prints identically",
              "\n".join(bad_stable[:5]))

        # the longest vector
        v = random_vector(rng, 16000)
        cur.execute("SELECT %s::vector::text", [v.literal()])
        back = VectorTextLoader(0).load(cur.fetchone()[0].encode())
        check(back == v, "text: a 16000-dimension vector round trips")


# ------------------------------------------------------------ (b) COPY


def copy_in_binary(conn, table, rows, types):
    with conn.cursor() as cur:
        with cur.copy(f"COPY {table} FROM STDIN (FORMAT binary)") as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)


def copy_out_binary(conn, query, types):
    with conn.cursor() as cur:
        with cur.copy(f"COPY ({query}) TO STDOUT (FORMAT binary)") as copy:
            copy.set_types(types)
            return list(copy.rows())


def text_rows(conn, query):
    with conn.cursor() as cur:
        cur.execute(query)
        return [(i, VectorTextLoader(0).load(t.encode())) for i, t in cur]


def test_copy(conn, rng):
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE rt3 (id int8 PRIMARY KEY, v vector(3))")
        cur.execute("CREATE TABLE rtn (id int8 PRIMARY KEY, v vector)")

        # our dumper's bytes are exactly what the server's vector_send makes
        v = Vector([1.5, -0.0, FLT_MAX])
        cur.execute("SELECT vector_send(%s::vector)", [v.literal()])
        server = bytes(cur.fetchone()[0])
        check(server == wire(v.values),
              "wire: vector_send gives int16 dim, int16 0, float4 big-endian",
              f"server {server.hex()} client {wire(v.values).hex()}")

    rows3 = [(i, random_vector(rng, 3)) for i in range(500)]
    rows3.append((500, Vector([-0.0, FLT_TRUE_MIN, -FLT_MAX])))
    copy_in_binary(conn, "rt3", rows3, ["int8", "vector"])
    back = copy_out_binary(conn, "SELECT id, v FROM rt3 ORDER BY id",
                           ["int8", "vector"])
    check(back == rows3,
          f"copy: {len(rows3)} rows of vector(3) COPY FROM/TO binary, bit for bit",
          first_difference(rows3, back))
    check(text_rows(conn, "SELECT id, v::text FROM rt3 ORDER BY id") == rows3,
          "copy: binary COPY input reads back identically as text")

    dims = [1, 2, 7, 8, 9, 16, 17, 100, 1000, 15999, 16000]
    rowsn = [(d, random_vector(rng, d)) for d in dims]
    copy_in_binary(conn, "rtn", rowsn, ["int8", "vector"])
    back = copy_out_binary(conn, "SELECT id, v FROM rtn ORDER BY id",
                           ["int8", "vector"])
    check(back == rowsn,
          f"copy: unconstrained vector of dims {dims} round trips in binary",
          first_difference(rowsn, back))
    check(text_rows(conn, "SELECT id, v::text FROM rtn ORDER BY id") == rowsn,
          "copy: those vectors read back identically as text")

    # text COPY of the same table gives the same values
    with conn.cursor() as cur:
        with cur.copy("COPY (SELECT id, v FROM rt3 ORDER BY id) TO STDOUT") as copy:
            copy.set_types(["int8", "vector"])
            text_back = list(copy.rows())
    check(text_back == rows3, "copy: text COPY TO gives the same values")


def first_difference(want, got):
    if len(want) != len(got):
        return f"{len(want)} rows written, {len(got)} read"
    for w, g in zip(want, got):
        if tuple(w) != tuple(g):
            return f"wrote {w!r}\nread  {g!r}"
    return None


# ------------------------------------------------------------ (c) binary results


def test_binary_results(conn, rng):
    want = text_rows(conn, "SELECT id, v::text FROM rt3 ORDER BY id")
    with conn.cursor(binary=True) as cur:
        cur.execute("SELECT id, v FROM rt3 ORDER BY id")
        got = [tuple(r) for r in cur]
    check(got == want, f"binary results: {len(got)} rows equal the text form",
          first_difference(want, got))

    with conn.cursor(binary=True) as cur:
        cur.execute("SELECT id, v FROM rtn ORDER BY id")
        got = [tuple(r) for r in cur]
    want = text_rows(conn, "SELECT id, v::text FROM rtn ORDER BY id")
    check(got == want, "binary results: long vectors equal the text form",
          first_difference(want, got))

    # binary parameters: sent with our dumper, returned in binary and text
    bad = []
    with conn.cursor(binary=True) as cur:
        for _ in range(200):
            v = random_vector(rng, rng.randint(1, 64))
            cur.execute("SELECT %b, %b::text", [v, v])
            got, text = cur.fetchone()
            if got != v or VectorTextLoader(0).load(text) != v:
                bad.append(f"sent {v!r}, got {got!r} / {text}")
    check(not bad, "binary parameters: 200 vectors come back unchanged in "
          "binary and text results", "\n".join(bad[:5]))

    with conn.cursor() as cur:
        cur.execute("SELECT %b <-> %b, %b <#> %b",
                    [Vector([0, 0]), Vector([3, 4]), Vector([1, 2]), Vector([3, 4])])
        l2, nip = cur.fetchone()
    check(l2 == 5.0 and nip == -11.0,
          "binary parameters work with operators ([0,0] <-> [3,4] = 5, "
          "[1,2] <#> [3,4] = -11)", f"got {l2}, {nip}")


# ------------------------------------------------------------ (d) bad input


COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = struct.pack(">h", -1)


def copy_stream(field):
    """A complete binary COPY stream of one row with one field."""
    return (COPY_HEADER + struct.pack(">hi", 1, len(field)) + field
            + COPY_TRAILER)


def copy_raw(conn, table, data):
    with conn.cursor() as cur:
        with cur.copy(f"COPY {table} FROM STDIN (FORMAT binary)") as copy:
            copy.write(data)


def row_count(conn, table):
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table}")
        return cur.fetchone()[0]


def server_alive(conn):
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            return cur.fetchone()[0] == 1
    except psycopg.Error:
        return False


# vector_recv reads the header with pq_getmsgint, which reports a value
# shorter than 4 bytes as 08P01 protocol_violation ("insufficient data left
# in message") instead of 22P03 like every other malformed value.
BAD_INPUTS = [
    # (description, table, field bytes, sqlstate, message fragment[, todo])
    ("truncated: 2 bytes, no reserved field", "bad",
     struct.pack(">h", 3), "22P03", None),
    ("truncated: empty value (0 bytes)", "bad", b"", "22P03", None),
    ("truncated: dim 3 with 2 values", "bad",
     wire([1, 2], dim=3), "22P03", None),
    ("truncated: dim 3 with the last value cut to 2 bytes", "bad",
     wire([1, 2, 3])[:-2], "22P03", None),
    ("dim 3 with 4 values (trailing bytes)", "bad",
     wire([1, 2, 3, 4], dim=3), "22P03", None),
    ("reserved field 1", "bad", wire([1, 2, 3], reserved=1), "22P03", None),
    ("reserved field -1", "bad", wire([1, 2, 3], reserved=-1), "22P03", None),
    ("dim 0", "bad", wire([]), "22000", "at least 1 dimension"),
    ("dim -1", "bad", wire([1], dim=-1), "22000", "at least 1 dimension"),
    ("dim 16001", "bad", wire([0.5] * 16001), "54000", "16000"),
    ("NaN inside", "bad", wire([1, float("nan"), 3]), "22000", "NaN"),
    ("Infinity inside", "bad", wire([1, 2, float("inf")]), "22000", "infinite"),
    ("-Infinity inside", "bad", wire([float("-inf")]), "22000", "infinite"),
    ("dim 2 for a vector(3) column", "bad3", wire([1, 2]), "22000",
     "expected 3 dimensions, not 2"),
    ("dim 4 for a vector(3) column", "bad3", wire([1, 2, 3, 4]), "22000",
     "expected 3 dimensions, not 4"),
]


def test_bad_input(conn):
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE bad (v vector)")
        cur.execute("CREATE TABLE bad3 (v vector(3))")

    # the stream builder itself makes valid COPY data
    copy_raw(conn, "bad", copy_stream(wire([1, 2, 3])))
    copy_raw(conn, "bad3", copy_stream(wire([4, 5, 6])))
    with conn.cursor() as cur:
        cur.execute("SELECT (SELECT v::text FROM bad), (SELECT v::text FROM bad3)")
        got = cur.fetchone()
    check(got == ("[1,2,3]", "[4,5,6]"),
          "bad input: a well-formed hand-made binary COPY stream is accepted",
          f"got {got}")
    counts = {"bad": row_count(conn, "bad"), "bad3": row_count(conn, "bad3")}

    for description, table, field, want_state, fragment, *todo in BAD_INPUTS:
        state, message = sqlstate_of(
            lambda: copy_raw(conn, table, copy_stream(field)))
        ok = state == want_state and (fragment is None or fragment in (message or ""))
        check(ok, f"bad COPY input: {description} -> {want_state}"
              + (f" ({fragment!r})" if fragment else ""),
              f"got {state}: {message}", todo=todo[0] if todo else None)
        check(server_alive(conn) and row_count(conn, table) == counts[table],
              f"bad COPY input: {description}: server alive, no row added")

    # the same values as binary bind parameters
    for description, table, field, want_state, fragment, *todo in BAD_INPUTS:
        if table == "bad3":
            query = "INSERT INTO bad3 VALUES (%b)"
        else:
            query = "SELECT %b::text"
        state, message = sqlstate_of(
            lambda: conn.execute(query, [RawVector(field)]))
        ok = state == want_state and (fragment is None or fragment in (message or ""))
        check(ok, f"bad binary parameter: {description} -> {want_state}",
              f"got {state}: {message}", todo=todo[0] if todo else None)
    check(server_alive(conn), "bad binary parameters: server alive afterwards")


def run_section(section, conn, rng):
    """A section that raises is one failed check; the others still run."""
    try:
        if section is test_bad_input:
            section(conn)
        else:
            section(conn, rng)
    except Exception as e:  # noqa: BLE001 - report anything, keep going
        check(False, f"{section.__name__} ran to completion",
              f"{type(e).__name__}: {e}")
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: client_roundtrip.py CONNINFO")
    rng = random.Random(SEED)
    print(f"# psycopg {psycopg.__version__}, libpq implementation "
          f"{psycopg.pq.__impl__}, seed {SEED}")
    with psycopg.connect(sys.argv[1], autocommit=True) as conn:
        register_vector(conn)
        for section in (test_text, test_copy, test_binary_results, test_bad_input):
            run_section(section, conn, rng)
    with psycopg.connect(sys.argv[1], autocommit=True) as conn:
        check(server_alive(conn), "a new connection works at the end")
    print(f"# {results['pass']} passed, {results['fail']} failed, "
          f"{results['todo']} known bugs (TODO)")
    return 1 if results["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
