#!/usr/bin/env bash
# bench/run_pgbench.sh - the pgbench scenarios of the benchmark.  Run by
# bench/run.sh (on its cluster); alone it starts its own throw-away cluster.
#
#   1. knn          one KNN search per transaction, random query vector
#   2. n_plus_one   100 agentmem.recall calls in one transaction
#                   against one agentmem.recall_batch of 100
#   3. inserts      100 single-row INSERTs against one agentmem.remember of 100
#   4. connections  persistent, new connection per transaction (-C), and
#                   through PgBouncer (transaction pooling), with pgbench -S
#   5. tracking     pgbench -S with agentmem.track = none against all
#
# Every run is PGB_TIME seconds (default 10) at 1 and 2 clients (one pgbench
# thread per client) and reports TPS (pgbench's own figure) and p50/p95/p99
# computed from pgbench's per-transaction log (-l) by pgbench/percentiles.awk.
# After each scenario it prints what agentmem.latency, agentmem.n_plus_one
# and agentmem.connections saw.  A scenario whose API is not in this build is
# skipped with a "SKIPPED:" line.  Results: $RESULTS/pgbench_$N.json and
# pgbench_summary_$N.md.
#
# Knobs: N (rows in pgb_items, default 100000), PGB_SPACE_N (rows in the
# memory space used by scenarios 2 and 3, default 20000), PGB_TIME,
# PGB_CLIENTS ("1 2"), PGB_REPEATS (rounds of scenario 5, default 3),
# SCENARIOS ("knn n_plus_one inserts connections tracking").
set -euo pipefail
source "$(dirname "$0")/../test/cluster.sh"
source "$AM_SRC/bench/lib.sh"

N=${N:-100000}
RESULTS=${RESULTS:-$AM_SRC/bench/results}
PGB_TIME=${PGB_TIME:-10}
PGB_CLIENTS=${PGB_CLIENTS:-1 2}
PGB_SPACE_N=${PGB_SPACE_N:-20000}
PGB_REPEATS=${PGB_REPEATS:-3}
SCENARIOS=${SCENARIOS:-knn n_plus_one inserts connections tracking}
SCRIPTS=$AM_SRC/bench/pgbench
((PGB_SPACE_N <= N)) || PGB_SPACE_N=$N

if [[ ${BENCH_REUSE_CLUSTER:-0} == 1 ]]; then
	# called by run.sh: its cluster (PG* variables), tools and work area
	export PATH="$AM_PGBIN:$PATH"
	AM_STARTED=0	# the cluster is run.sh's: never stop it here
	export AM_STARTED
else
	bench_packages jq:jq pgbouncer:/usr/sbin/pgbouncer
	bench_data "$N"
	am_setup_tmp
	am_build_install
	bench_tools
	bench_start_cluster
fi
LOGS=$AM_TMP/pgbench
mkdir -p "$LOGS" "$RESULTS"
JSONL=$LOGS/results.jsonl
NOTES=$LOGS/notes.txt	# SKIPPED lines and derived figures, for the summary
: >"$JSONL"
: >"$NOTES"
BOUNCER_PID=

stop_bouncer() {
	if [[ -n $BOUNCER_PID ]]; then
		kill "$BOUNCER_PID" 2>/dev/null || true
		BOUNCER_PID=
	fi
}
if [[ ${BENCH_REUSE_CLUSTER:-0} == 1 ]]; then
	trap stop_bouncer EXIT
else
	trap 'rc=$?; stop_bouncer; (exit $rc); am_cleanup' EXIT
fi

pgb_sql() { psql -X -v ON_ERROR_STOP=1 -q "$@"; }

# ------------------------------------------------------------------ data

setup_data() {
	local t0
	t0=$(now_s)
	am_log "pgbench data: $N GloVe vectors in pgb_items (hnsw cosine, m 16, ef_construction 64), 1,000 in pgb_queries"
	sql "DROP TABLE IF EXISTS pgb_items, pgb_queries, pgb_ins"
	sql "CREATE TABLE pgb_queries (id int PRIMARY KEY, word text NOT NULL, q vector(100) NOT NULL)"
	sql "CREATE TABLE pgb_items (id int PRIMARY KEY, word text NOT NULL, embedding vector(100) NOT NULL)"
	"$BENCH_BIN/fvec_dump" --copy "$BENCH_GLOVE/queries.fvec" "$BENCH_GLOVE/queries.words" |
		pgb_sql -c "\\copy pgb_queries FROM STDIN"
	"$BENCH_BIN/fvec_dump" --copy -n "$N" "$BENCH_GLOVE/base.fvec" "$BENCH_GLOVE/base.words" |
		pgb_sql -c "\\copy pgb_items FROM STDIN"
	sql "SET maintenance_work_mem = '1GB'; CREATE INDEX pgb_items_hnsw ON pgb_items
		USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
	sql "VACUUM ANALYZE pgb_items"
	sql "VACUUM ANALYZE pgb_queries"
	# pgbench's own tables for -S (scenarios 4 and 5): scale 10, 1M accounts
	pgbench -i -q -s 10 -I dtGvp >"$LOGS/pgbench_init.log" 2>&1 ||
		{ cat "$LOGS/pgbench_init.log"; am_die "pgbench -i failed"; }
	am_log "data ready in $(elapsed "$t0") s"
}

# The memory space 'pgb' for scenarios 2 and 3: PGB_SPACE_N words of
# pgb_items, stored through agentmem.remember 1,000 per call.
SPACE_READY=0
setup_space() {
	((SPACE_READY)) && return 0
	local t0 lo
	t0=$(now_s)
	am_log "memory space 'pgb': $PGB_SPACE_N words via agentmem.remember, 1,000 per call"
	sql "SELECT agentmem.create_space('pgb', 100, 'cosine', 16, 64)" >/dev/null
	for ((lo = 0; lo < PGB_SPACE_N; lo += 1000)); do
		sql "SELECT count(*) FROM agentmem.remember('pgb',
			ARRAY(SELECT word FROM pgb_items WHERE id >= $lo AND id < least($lo + 1000, $PGB_SPACE_N) ORDER BY id),
			ARRAY(SELECT embedding FROM pgb_items WHERE id >= $lo AND id < least($lo + 1000, $PGB_SPACE_N) ORDER BY id))" >/dev/null
	done
	local secs
	secs=$(elapsed "$t0")
	printf 'space pgb: %s rows stored through agentmem.remember, 1,000 per call, in %s s (%s rows/s)\n' \
		"$PGB_SPACE_N" "$secs" "$(awk -v n="$PGB_SPACE_N" -v t="$secs" 'BEGIN { printf "%.0f", n / t }')" |
		tee -a "$NOTES"
	SPACE_READY=1
}

# ------------------------------------------------------------------ running

# pgb_run SCENARIO VARIANT CLIENTS [pgbench options...]: one timed run;
# prints a table row and appends a JSON line.  A failed run is reported,
# counted in FAILED_RUNS and does not stop the others.
FAILED_RUNS=0
pgb_run() {
	local scenario=$1 variant=$2 clients=$3
	shift 3
	local prefix
	prefix=$LOGS/$(printf '%s' "${scenario}_${variant}_c$clients" | tr -c 'A-Za-z0-9_.-' '_')
	local tps failed stats n p50 p95 p99 mean max cycle cn c50 c95 c99
	rm -f "$prefix".*
	if ! pgbench -n -T "$PGB_TIME" -c "$clients" -j "$clients" -l --log-prefix="$prefix" \
		"$@" >"$prefix.out" 2>&1; then
		echo "FAILED: pgbench $scenario / $variant, $clients clients:"
		tail -n 20 "$prefix.out" | sed 's/^/    /'
		FAILED_RUNS=$((FAILED_RUNS + 1))
		return 0
	fi
	tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$prefix.out" | head -n 1)
	failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$prefix.out")
	stats=$(cat "$prefix".[0-9]* | awk '$3 ~ /^[0-9]+$/ { print $3 }' | sort -n |
		awk -f "$SCRIPTS/percentiles.awk")
	read -r n p50 p95 p99 mean max <<<"$stats"
	# "cycle": time between one transaction's end and the next one's on the
	# same client, i.e. with -C the connect + transaction + disconnect a
	# client pays (pgbench's own latency leaves the connection out).
	cycle=$(for f in "$prefix".[0-9]*; do
		awk '$3 ~ /^[0-9]+$/ { t = $5 * 1000000 + $6; if ($1 in last) print t - last[$1]; last[$1] = t }' "$f"
	done | sort -n | awk -f "$SCRIPTS/percentiles.awk")
	read -r cn c50 c95 c99 _ <<<"$cycle"
	[[ $cn == 0 ]] && c50=null c95=null c99=null
	if [[ $n == 0 ]]; then
		echo "FAILED: pgbench $scenario / $variant, $clients clients: no transaction in the log"
		FAILED_RUNS=$((FAILED_RUNS + 1))
		return 0
	fi
	printf '| %-12s | %-22s | %7s | %9.1f | %8s | %8s | %8s | %8s |\n' \
		"$scenario" "$variant" "$clients" "$tps" "$p50" "$p95" "$p99" "$n"
	jq -cn --arg s "$scenario" --arg v "$variant" --argjson c "$clients" \
		--argjson tps "${tps:-0}" --argjson n "$n" --argjson failed "${failed:-0}" \
		--argjson p50 "$p50" --argjson p95 "$p95" --argjson p99 "$p99" \
		--argjson mean "$mean" --argjson max "$max" --argjson t "$PGB_TIME" \
		--argjson c50 "$c50" --argjson c95 "$c95" --argjson c99 "$c99" \
		'{scenario: $s, variant: $v, clients: $c, tps: $tps, transactions: $n,
		  failed: $failed, p50_ms: $p50, p95_ms: $p95, p99_ms: $p99,
		  mean_ms: $mean, max_ms: $max, seconds: $t,
		  cycle_p50_ms: $c50, cycle_p95_ms: $c95, cycle_p99_ms: $c99}' >>"$JSONL"
	if [[ $scenario == connections ]]; then
		printf '| %-12s | %-22s | %7s | %9s | %8s | %8s | %8s | %8s |\n' \
			"" "  incl. connect: cycle" "" "" "$c50" "$c95" "$c99" ""
	fi
}

table_head() {
	printf '| %-12s | %-22s | %7s | %9s | %8s | %8s | %8s | %8s |\n' \
		scenario variant clients TPS "p50 ms" "p95 ms" "p99 ms" "tx"
	echo "|--------------|------------------------|---------|-----------|----------|----------|----------|----------|"
}

heading() {
	echo
	echo "=== $1"
	echo "$2"
	echo
}

# skip WHAT WHY: print the SKIPPED line and keep it for the summary.
skip() {
	skipped "$1" "$2" | tee -a "$NOTES"
}

# Statistics views: reset before a scenario, shown after it.
stats_reset() {
	STATS_SINCE=$(sql "SELECT now()")
	if has_fn 'agentmem.latency_reset()' 2>/dev/null; then
		sql "SELECT agentmem.latency_reset()" >/dev/null
	fi
}

show_stats() {	# scenario name, for histogram files
	echo
	echo "--- what agentmem saw"
	if has_view agentmem.latency; then
		pgb_sql -P footer=off -c "SELECT * FROM agentmem.latency WHERE calls > 0 ORDER BY calls DESC"
		save_histograms "$1"
	else
		skipped agentmem.latency "statistics, issue 5"
	fi
	if has_view agentmem.n_plus_one; then
		pgb_sql -P footer=off -P format=wrapped -P columns=140 -c \
			"SELECT occurrences, max_repeats, round(total_ms::numeric, 1) AS total_ms,
			        left(regexp_replace(query, '\s+', ' ', 'g'), 70) AS query
			   FROM agentmem.n_plus_one WHERE last_seen >= '$STATS_SINCE'
			  ORDER BY occurrences DESC LIMIT 5" 2>/dev/null ||
			pgb_sql -P footer=off -P format=wrapped -P columns=140 -c \
				"SELECT * FROM agentmem.n_plus_one LIMIT 5"
	else
		skipped agentmem.n_plus_one "statistics, issue 5"
	fi
	show_connections
}

show_connections() {
	if has_view agentmem.connections; then
		pgb_sql -P footer=off -x -c "SELECT * FROM agentmem.connections"
	else
		skipped agentmem.connections "statistics, issue 5"
	fi
}

# The latency histogram of every operation that ran, for bench/plot.sh:
# $RESULTS/hist_<N>_<scenario>.<operation>.dat, "lower upper count" rows,
# column names in a comment line.
save_histograms() {
	local scenario=$1 op file cols
	local sel lo hi cnt
	has_fn 'agentmem.latency_histogram(text)' 2>/dev/null || return 0
	# the OUT columns, expected (lower, upper, count) with perhaps a unit
	# suffix; picked by name so that extra columns do not matter
	cols=$(sql "SELECT string_agg(a, ' ') FROM unnest((SELECT proargnames[2:] FROM pg_proc
		WHERE oid = to_regprocedure('agentmem.latency_histogram(text)'))) a") || cols=
	lo=$(tr ' ' '\n' <<<"$cols" | grep -m1 -i 'low' || true)
	hi=$(tr ' ' '\n' <<<"$cols" | grep -m1 -i 'up' || true)
	cnt=$(tr ' ' '\n' <<<"$cols" | grep -m1 -i 'count' || true)
	if [[ -n $lo && -n $hi && -n $cnt ]]; then sel="$lo, $hi, $cnt"; else sel="*"; fi
	while IFS= read -r op; do
		[[ -n $op ]] || continue
		file=$RESULTS/hist_${N}_$scenario.$(printf '%s' "$op" | tr -c 'A-Za-z0-9_' '_').dat
		{
			echo "# agentmem.latency_histogram('$op') after scenario $scenario; columns: $cols"
			psql -X -Atq -F ' ' -c "SELECT $sel FROM agentmem.latency_histogram('$op')"
		} >"$file" || rm -f "$file"
	done < <(sql "SELECT operation FROM agentmem.latency WHERE calls > 0")
}

# ------------------------------------------------------------------ scenarios

scenario_knn() {
	heading "1. KNN search" "One nearest-neighbour query (k = 10, cosine, ef_search 40) per transaction; the query vector is picked at random from 1,000 by id.  $N rows, prepared statements."
	stats_reset
	table_head
	local c
	for c in $PGB_CLIENTS; do
		pgb_run knn hnsw_knn "$c" -M prepared -f "$SCRIPTS/knn.sql"
	done
	show_stats knn
}

scenario_n_plus_one() {
	heading "2. N+1 against batch" "100 agentmem.recall calls in one transaction against one agentmem.recall_batch of the same 100 queries (k = 10, space of $PGB_SPACE_N words)."
	if ! has_fn 'agentmem.recall(text,vector,integer,jsonb)'; then
		skip agentmem.recall "memory API, issue 4: scenario 2 skipped"; return 0
	fi
	if ! has_fn 'agentmem.recall_batch(text,vector[],integer,jsonb)'; then
		skip agentmem.recall_batch "memory API, issue 4: scenario 2 skipped"; return 0
	fi
	if ! has_fn 'agentmem.remember(text,text[],vector[],jsonb[])'; then
		skip agentmem.remember "memory API, issue 4, needed to fill the space: scenario 2 skipped"; return 0
	fi
	setup_space
	check_batch_equals_loop
	stats_reset
	table_head
	local c
	for c in $PGB_CLIENTS; do
		pgb_run n_plus_one "100x recall" "$c" -M prepared -f "$SCRIPTS/recall_loop.sql"
		pgb_run n_plus_one "recall_batch of 100" "$c" -M prepared -f "$SCRIPTS/recall_batch.sql"
	done
	show_stats n_plus_one
}

# recall_batch must give the same rows as the loop of recall calls.
check_batch_equals_loop() {
	local diff
	diff=$(sql "WITH qs AS (SELECT id, q, row_number() OVER (ORDER BY id)::int AS n
	                          FROM pgb_queries WHERE id < 100),
	            loop AS (SELECT qs.n, r.id FROM qs, LATERAL agentmem.recall('pgb', qs.q, 10) r),
	            batch AS (SELECT b.query_no AS n, b.id FROM agentmem.recall_batch('pgb',
	                          ARRAY(SELECT q FROM qs ORDER BY n), 10) b)
	       SELECT count(*) FROM loop FULL JOIN batch USING (n, id)
	        WHERE loop.id IS NULL OR batch.id IS NULL")
	if [[ $diff == 0 ]]; then
		echo "check: recall_batch of 100 queries returns the same ids as 100 recall calls"
	else
		echo "WARNING: recall_batch and 100 recall calls differ in $diff (query, id) pairs"
	fi
}

scenario_inserts() {
	heading "3. Inserts" "100 single-row INSERTs (autocommit, one round trip each) into a table shaped like a memory space with the same hnsw index, against one agentmem.remember of the same 100 rows."
	local have_remember=1 c
	has_fn 'agentmem.remember(text,text[],vector[],jsonb[])' || have_remember=0
	sql "CREATE TABLE pgb_ins (id bigserial PRIMARY KEY, content text NOT NULL,
		embedding vector(100) NOT NULL, metadata jsonb, created_at timestamptz NOT NULL DEFAULT now())"
	sql "INSERT INTO pgb_ins (content, embedding) SELECT word, embedding FROM pgb_items
		WHERE id < $PGB_SPACE_N ORDER BY id"
	sql "SET maintenance_work_mem = '1GB'; CREATE INDEX ON pgb_ins USING hnsw (embedding vector_cosine_ops)
		WITH (m = 16, ef_construction = 64)"
	sql "VACUUM ANALYZE pgb_ins"
	((have_remember)) && setup_space
	echo "both start with $PGB_SPACE_N rows"
	stats_reset
	table_head
	for c in $PGB_CLIENTS; do
		pgb_run inserts "100x INSERT" "$c" -M prepared -f "$SCRIPTS/insert_single.sql"
		if ((have_remember)); then
			pgb_run inserts "remember of 100" "$c" -M prepared -f "$SCRIPTS/remember_100.sql"
		fi
	done
	((have_remember)) || skip agentmem.remember "memory API, issue 4: scenario 3 ran the single-row side only"
	show_stats inserts
}

start_bouncer() {
	local dir=$AM_TMP/pgbouncer _try
	BOUNCER_PORT=$(am_free_port)
	mkdir -p "$dir"
	cat >"$dir/pgbouncer.ini" <<-EOF
		[databases]
		postgres = host=127.0.0.1 port=$PGPORT dbname=postgres user=postgres
		[pgbouncer]
		listen_addr = 127.0.0.1
		listen_port = $BOUNCER_PORT
		unix_socket_dir =
		auth_type = any
		pool_mode = transaction
		default_pool_size = 4
		max_client_conn = 200
		logfile = $dir/pgbouncer.log
		pidfile = $dir/pgbouncer.pid
	EOF
	[[ $(id -u) -eq 0 ]] && chown -R nobody "$dir"
	am_as_server_user pgbouncer -d "$dir/pgbouncer.ini" ||
		{ cat "$dir/pgbouncer.log" 2>/dev/null; am_die "pgbouncer did not start"; }
	for _try in $(seq 50); do
		[[ -s $dir/pgbouncer.pid ]] && BOUNCER_PID=$(cat "$dir/pgbouncer.pid")
		psql -X -h 127.0.0.1 -p "$BOUNCER_PORT" -Atqc "SELECT 1" >/dev/null 2>&1 && break
		sleep 0.1
	done
	[[ -n $BOUNCER_PID ]] || am_die "pgbouncer did not write its pid file"
	am_log "PgBouncer $(pgbouncer --version | head -n 1 | awk '{print $2}') on 127.0.0.1:$BOUNCER_PORT (transaction pooling, pool size 4)"
}

scenario_connections() {
	heading "4. Connections" "pgbench -S (one primary-key SELECT per transaction) over TCP: persistent connections, a new connection per transaction (-C), and both through PgBouncer in transaction pooling mode.  agentmem.connections after each."
	start_bouncer
	stats_reset
	local c variant
	for variant in persistent new_per_tx bouncer_new_per_tx bouncer_persistent; do
		table_head
		for c in $PGB_CLIENTS; do
			case $variant in
				persistent) pgb_run connections "$variant" "$c" -S -h 127.0.0.1 ;;
				new_per_tx) pgb_run connections "$variant" "$c" -S -C -h 127.0.0.1 ;;
				bouncer_new_per_tx) pgb_run connections "$variant" "$c" -S -C -h 127.0.0.1 -p "$BOUNCER_PORT" ;;
				bouncer_persistent) pgb_run connections "$variant" "$c" -S -h 127.0.0.1 -p "$BOUNCER_PORT" ;;
			esac
		done
		echo
		echo "--- agentmem.connections after '$variant'"
		show_connections
		echo
	done
	show_stats connections
	stop_bouncer
}

scenario_tracking() {
	heading "5. Tracking overhead" "pgbench -S (its built-in select-only workload, simple protocol) with agentmem.track = none against all, alternating, $PGB_REPEATS rounds of ${PGB_TIME} s each; the budget is 2% of TPS."
	if [[ -z $(sql "SELECT current_setting('agentmem.track', true)") ]]; then
		skip "setting agentmem.track" "statistics, issue 5: scenario 5 skipped"; return 0
	fi
	local c r track
	stats_reset
	table_head
	for c in $PGB_CLIENTS; do
		for ((r = 1; r <= PGB_REPEATS; r++)); do
			for track in none all; do
				PGOPTIONS="-c agentmem.track=$track" \
					pgb_run tracking "track=$track round $r" "$c" -S
			done
		done
	done
	echo
	jq -rs 'map(select(.scenario == "tracking"))
		| group_by(.clients)[] | . as $g
		| ($g | map(select(.variant | startswith("track=none"))) | map(.tps) | sort | .[length / 2 | floor]) as $none
		| ($g | map(select(.variant | startswith("track=all"))) | map(.tps) | sort | .[length / 2 | floor]) as $all
		| "tracking overhead, \($g[0].clients) client(s): median TPS with agentmem.track = none \($none | round), all \($all | round): overhead \((1 - $all / $none) * 1000 | round / 10)% (budget 2%)"' "$JSONL" |
		tee -a "$NOTES"
	show_stats tracking
}

# ------------------------------------------------------------------ main

T0=$(now_s)
am_log "pgbench scenarios: $SCENARIOS; ${PGB_TIME} s per run; clients: $PGB_CLIENTS"
setup_data
for s in $SCENARIOS; do
	"scenario_$s"
done

jq -s '.' "$JSONL" >"$RESULTS/pgbench_$N.json"
{
	echo "## pgbench: $PGB_TIME s per run, one pgbench thread per client; latency percentiles from the per-transaction log"
	echo
	echo "| scenario | variant | clients | TPS | p50 ms | p95 ms | p99 ms |"
	echo "|---|---|---|---|---|---|---|"
	jq -r '.[] | "| \(.scenario) | \(.variant) | \(.clients) | \(.tps | round) | \(.p50_ms) | \(.p95_ms) | \(.p99_ms) |"' \
		"$RESULTS/pgbench_$N.json"
	if jq -e 'any(.[]; .scenario == "connections")' "$RESULTS/pgbench_$N.json" >/dev/null; then
		echo
		echo "Connections, as the client sees them: time from one transaction's end to the next one's on the same client (with -C: connect + transaction + disconnect)."
		echo
		echo "| variant | clients | TPS | p50 ms | p95 ms | p99 ms |"
		echo "|---|---|---|---|---|---|"
		jq -r '.[] | select(.scenario == "connections") | "| \(.variant) | \(.clients) | \(.tps | round) | \(.cycle_p50_ms) | \(.cycle_p95_ms) | \(.cycle_p99_ms) |"' \
			"$RESULTS/pgbench_$N.json"
	fi
	if [[ -s $NOTES ]]; then
		echo
		sed 's/^/- /' "$NOTES"
	fi
} >"$RESULTS/pgbench_summary_$N.md"
echo
am_log "pgbench scenarios done in $(elapsed "$T0") s; $RESULTS/pgbench_$N.json"
if ((FAILED_RUNS)); then
	am_die "$FAILED_RUNS pgbench run(s) failed"
fi
