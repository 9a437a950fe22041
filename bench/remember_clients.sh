#!/usr/bin/env bash
# bench/remember_clients.sh: remember() batches of 100 rows into one space
# from one and from two clients at once (pgbench, 10 s a run).
#
# A backend keeps the graph of its last batch for its next one into the
# same index.  With two clients every batch finds pages the other client's
# batch changed; it reads those again and keeps the rest
# (BatchGraphRefresh in src/hnswbatchgraph.c).  The runs with
# hnsw.batch_graph_cache = 0 read the whole graph afresh for every batch,
# which is what every two-client batch did before that refresh.  Each run
# starts from a fresh space of 10,000 random 100-d rows.  Arguments:
# ROUNDS (default 2).  KEEP=1 keeps the work area.
set -euo pipefail
source "$(dirname "$0")/../test/cluster.sh"

rounds=${1:-2}
am_base_packages
am_setup_tmp
am_build_install
am_start_cluster "shared_buffers = '1GB'" "max_wal_size = '8GB'" "autovacuum = off"
psql -X -q -c "CREATE EXTENSION agentmem"

vec="(SELECT array_agg(random()::real - 0.5) FROM generate_series(1, 100) WHERE g > 0)::vector"
cat > "$AM_TMP/setup.sql" <<EOF
SELECT agentmem.drop_space('rc') FROM agentmem.spaces WHERE space = 'rc';
SELECT agentmem.create_space('rc', 100);
SELECT count(*) FROM agentmem.remember('rc', array_fill('base'::text, ARRAY[5000]),
	ARRAY(SELECT $vec FROM generate_series(1, 5000) g));
SELECT count(*) FROM agentmem.remember('rc', array_fill('base'::text, ARRAY[5000]),
	ARRAY(SELECT $vec FROM generate_series(1, 5000) g));
CHECKPOINT;
EOF
cat > "$AM_TMP/remember.sql" <<EOF
SELECT count(*) FROM agentmem.remember('rc', array_fill('x'::text, ARRAY[100]),
	ARRAY(SELECT $vec FROM generate_series(1, 100) g));
EOF

am_log "remember of 100 rows into a space of 10,000, pgbench 10 s a run, $rounds rounds"
printf '%-6s %-22s %8s %8s   %8s %8s\n' round graph "1 client" "avg ms" "2 clients" "avg ms"
for r in $(seq "$rounds"); do
	for cache in 32MB 0; do
		line=""
		for c in 1 2; do
			psql -X -q -f "$AM_TMP/setup.sql" >/dev/null
			out=$(PGOPTIONS="-c hnsw.batch_graph_cache=$cache" \
				pgbench -n -c "$c" -j "$c" -T 10 -f "$AM_TMP/remember.sql" 2>&1)
			tps=$(grep -oP 'tps = \K[0-9.]+' <<<"$out" | head -1)
			lat=$(grep -oP 'latency average = \K[0-9.]+' <<<"$out")
			line+=$(printf ' %8.1f %8.1f  ' "$tps" "$lat")
		done
		label=$([[ $cache == 0 ]] && echo "read afresh (cache 0)" || echo "kept, refreshed")
		printf '%-6s %-22s%s\n' "$r" "$label" "$line"
	done
done
echo "(TPS, then average latency in ms; with 2 clients the batches take turns on the index's update lock)"
