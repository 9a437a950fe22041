# shellcheck shell=bash
# bench/lib.sh: shared by bench/run.sh, bench/run_pgbench.sh and bench/demo.sh.
# Source it after test/cluster.sh.  Defines bench_* helpers:
#   bench_packages [extra PKG:CHECK ...]   what the benchmarks need
#   bench_data                             GloVe files and ground truth
#   bench_tools                            annbench and fvec_dump in $BENCH_BIN
#   sql / sqlv / has_fn / has_view         psql helpers and API detection

BENCH_DIR=$AM_SRC/bench
BENCH_GLOVE=${AGENTMEM_CACHE:-$HOME/.cache/agentmem}/glove100
BENCH_NBASE_FULL=340479

bench_packages() {
	am_base_packages
	am_require_packages npm:npm libpq-dev:/usr/include/postgresql/libpq-fe.h "$@"
}

# bench_data [N]: fetch GloVe (cached) and make sure the exact ground truth
# over the first N base vectors exists.
bench_data() {
	local n=${1:-100000}
	am_log "GloVe data (cached in $BENCH_GLOVE)"
	bash "$BENCH_DIR/fetch_glove.sh" | sed 's/^/    /'
	if [[ ! -s $BENCH_GLOVE/gt_cosine_$n.i32 || ! -s $BENCH_GLOVE/gt_l2_$n.i32 ]]; then
		bash "$BENCH_DIR/ground_truth.sh" "$n" | sed 's/^/    /'
	fi
}

bench_tools() {
	BENCH_BIN=$AM_TMP/bin
	mkdir -p "$BENCH_BIN"
	local inc
	inc=$("$AM_SYS_PGBIN/pg_config" --includedir)
	cc -O2 -Wall -Wextra -Werror -I"$inc" -o "$BENCH_BIN/annbench" \
		"$BENCH_DIR/annbench.c" -lpq -lm || am_die "cannot compile annbench"
	cc -O2 -Wall -Wextra -Werror -o "$BENCH_BIN/fvec_dump" "$BENCH_DIR/fvec_dump.c" ||
		am_die "cannot compile fvec_dump"
	export BENCH_BIN
}

# sql "statement": run quietly, unaligned, tuples only; stop on error.
sql() {
	psql -X -v ON_ERROR_STOP=1 -Atq -c "SET client_min_messages = warning" -c "$1"
}

# sqlv "statement" ...: run and show the result as a table (for humans).
sqlv() {
	local s args=()
	for s in "$@"; do args+=(-c "$s"); done
	psql -X -v ON_ERROR_STOP=1 -q -P footer=off "${args[@]}"
}

# has_fn 'agentmem.remember(text,text[],vector[],jsonb[])': does the function
# exist?  Exact signature first (to_regprocedure); if only the name exists
# the signature differs from the one in the issue: say so and accept it,
# since callers pass arguments by position and rely on defaults.
has_fn() {
	local sig=$1 name=${1%%(*}
	[[ $(sql "SELECT to_regprocedure('$sig') IS NOT NULL") == t ]] && return 0
	if [[ $(sql "SELECT count(*) FROM pg_proc WHERE proname = split_part('$name', '.', 2)
		AND pronamespace = to_regnamespace(split_part('$name', '.', 1))") != 0 ]]; then
		printf 'NOTE: %s exists but not with the signature %s\n' "$name" "$sig" >&2
		return 0
	fi
	return 1
}

# has_view agentmem.latency: does the relation exist?
has_view() {
	[[ $(sql "SELECT to_regclass('$1') IS NOT NULL") == t ]]
}

# skipped WHAT [why]: the standard line for a part whose API is missing.
skipped() {
	printf 'SKIPPED: %s not available yet%s\n' "$1" "${2:+ ($2)}"
}

# now_s: seconds since the epoch with decimals, for timing shell steps.
now_s() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }'; }

# bench_start_cluster: a throw-away cluster tuned for benchmarking on this
# machine.  shared_buffers holds the largest index and table of the run
# (2 GB, or a quarter of RAM on a small machine); maintenance_work_mem lets
# the hnsw build keep the whole graph in memory; one parallel maintenance
# worker (2 cores: leader + 1).  Durability stays at PostgreSQL's defaults
# (fsync and synchronous_commit on; BENCH_FSYNC=off to change that), so
# commit costs are real.  Autovacuum is off so that no background vacuum
# lands in a timed run; the benchmark vacuums when it means to.
bench_start_cluster() {
	local mem_mb sb_mb
	mem_mb=$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)
	sb_mb=$((mem_mb / 4))
	((sb_mb > 2048)) && sb_mb=2048
	BENCH_SETTINGS=(
		"shared_buffers = ${sb_mb}MB"
		"maintenance_work_mem = 2GB"
		"max_parallel_maintenance_workers = 1"
		"max_parallel_workers = 2"
		"work_mem = 64MB"
		"effective_cache_size = $((mem_mb / 2))MB"
		"fsync = ${BENCH_FSYNC:-on}"
		"max_wal_size = 8GB"
		"checkpoint_timeout = 1h"
		"autovacuum = off"
		"jit = off"
	)
	bench_check_load
	am_start_cluster "${BENCH_SETTINGS[@]}"
	sql "CREATE EXTENSION IF NOT EXISTS agentmem" >/dev/null
	bench_init_sql
}

# bench_init_sql: BENCH_INIT_SQL=file.sql is run once after CREATE
# EXTENSION (e.g. extra settings, or a stand-in for an API that has not
# landed yet, to exercise the scripts' API paths).
bench_init_sql() {
	if [[ -n ${BENCH_INIT_SQL:-} ]]; then
		am_log "running $BENCH_INIT_SQL"
		psql -X -q -v ON_ERROR_STOP=1 -f "$BENCH_INIT_SQL" >/dev/null
	fi
}

# bench_check_load: warn when other processes keep the CPUs busy, since the
# figures then measure the neighbours as much as agentmem.
bench_check_load() {
	local load
	load=$(cut -d' ' -f1 /proc/loadavg)
	BENCH_LOADAVG=$load
	if awk -v l="$load" -v c="$(nproc)" 'BEGIN { exit !(l > c / 4) }'; then
		printf 'WARNING: load average %s on %s cores before the run: other processes are using the CPU and the figures will suffer\n' "$load" "$(nproc)"
	fi
}
