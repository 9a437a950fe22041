#!/usr/bin/env bash
# bench/memory_bench.sh: the speed targets of the memory API (issue 4).
#
# Builds agentmem into a private PostgreSQL, starts a throw-away cluster
# (test/cluster.sh) and runs bench/membench.c over TCP: remember against
# single-row INSERTs, recall_batch against recall round trips (results
# compared), cache_get / cache_misses with 100,000 entries cached.  Uses
# the GloVe 100-d data of bench/fetch_glove.sh when present, else random
# vectors.  Arguments go to membench (--base N, --remember-base N,
# --reps R, --cache-entries N, --data DIR, --only recall|remember|cache).
# KEEP=1 keeps the work area.
#
# The cluster runs with PostgreSQL's default durability (fsync = on, as a
# real server would: a single-row INSERT in autocommit waits for its WAL
# flush); FSYNC=off runs it like the test suite does.  Autovacuum is off so
# that it does not run in the middle of a measurement.
set -euo pipefail
source "$(dirname "$0")/../test/cluster.sh"

am_base_packages
am_require_packages libpq-dev:/usr/include/postgresql/libpq-fe.h
am_setup_tmp
am_build_install
am_log "building membench"
gcc -O2 -Wall -Wextra -o "$AM_TMP/membench" "$AM_SRC/bench/membench.c" \
	-I"$("$AM_SYS_PGBIN/pg_config" --includedir)" -lpq -lm
am_start_cluster "shared_buffers = '1GB'" "max_wal_size = '8GB'" "autovacuum = off" \
	"max_parallel_maintenance_workers = 2" "fsync = ${FSYNC:-on}"
psql -X -q -c "CREATE EXTENSION agentmem"
am_log "membench $*"
PGHOST=127.0.0.1 "$AM_TMP/membench" "$@"
