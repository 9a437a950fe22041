#!/usr/bin/env bash
# bench/run.sh - `make bench`: the whole benchmark on a throw-away cluster.
#
#   make bench                 100,000 GloVe base vectors, the default matrix
#   make bench FULL=1          all 340,479 base vectors, full ef_search sweeps
#
# 1. ANN (bench/annbench.c): for each configuration below, load the base
#    vectors, build the hnsw index serially and again with one parallel
#    worker, then recall@10 / QPS / p50 / p99 over the 1,000 queries for each
#    ef_search, single-row insert rate, VACUUM after deleting 10% and recall
#    after it.
# 2. pgbench scenarios (bench/run_pgbench.sh; SKIP_PGBENCH=1 leaves them out).
# 3. Plots (bench/plot.sh, gnuplot).
# Tables go to the terminal; JSON, a Markdown summary and PNGs to
# bench/results/ (raw logs to bench/results/logs/, not committed).
#
# Knobs (environment or make variables):
#   N=20000            another base size (ground truth computed and cached)
#   CONFIGS="metric:m:efc:ef,ef,...[:ef_after,...] ..."   replace the matrix
#                      (ef_after: the sweep after VACUUM; default the same)
#   WORKERS=0,1        max_parallel_maintenance_workers of each build
#   INSERTS=1000       single-row inserts timed per configuration
#   SKIP_ANN=1 SKIP_PGBENCH=1 SKIP_PLOTS=1 BENCH_FSYNC=off KEEP=1
set -euo pipefail
source "$(dirname "$0")/../test/cluster.sh"
source "$AM_SRC/bench/lib.sh"

T_START=$(now_s)
FULL=${FULL:-0}
if [[ $FULL == 1 ]]; then N=${N:-$BENCH_NBASE_FULL}; else N=${N:-100000}; fi
[[ $N =~ ^[0-9]+$ && $N -ge 1000 && $N -le $BENCH_NBASE_FULL ]] ||
	am_die "N must be a number between 1000 and $BENCH_NBASE_FULL"
WORKERS=${WORKERS:-0,1}
INSERTS=${INSERTS:-1000}
RESULTS=${RESULTS:-$AM_SRC/bench/results}

# The default matrix fits the 20-minute budget on 2 cores: the full
# ef_search sweep for both cosine configurations (the reference figures in
# the hnsw issue are cosine), four points for L2; after VACUUM, four points
# for cosine and two for L2.  FULL=1 sweeps everything, before and after
# VACUUM, and adds ef_search 640 to cosine 16/200, as in the reference.
EF_FULL=10,20,40,80,160,320,400
if [[ -z ${CONFIGS:-} ]]; then
	if [[ $FULL == 1 ]]; then
		CONFIGS="cosine:16:64:$EF_FULL cosine:16:200:$EF_FULL,640 l2:16:64:$EF_FULL l2:16:200:$EF_FULL"
	else
		CONFIGS="cosine:16:64:$EF_FULL:10,40,160,400 cosine:16:200:$EF_FULL:10,40,160,400"
		CONFIGS+=" l2:16:64:10,40,160,400:40,160 l2:16:200:10,40,160,400:40,160"
	fi
fi

bench_packages jq:jq gnuplot-nox:gnuplot pgbouncer:/usr/sbin/pgbouncer
bench_data "$N"
am_setup_tmp
am_build_install
bench_tools
bench_start_cluster
mkdir -p "$RESULTS/logs"
export RESULTS N

# What this run ran on, for the summary and the README.
write_env() {
	local cpu kernel commit dirty
	cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
	commit=$(git -C "$AM_SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)
	dirty=$(git -C "$AM_SRC" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo "+changes" || true)
	kernel=$(sql "SELECT agentmem.distance_kernel()" 2>/dev/null || echo unknown)
	jq -n --arg cpu "$cpu" --argjson cores "$(nproc)" \
		--argjson mem_mb "$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)" \
		--arg pg "$(sql 'SHOW server_version')" --arg commit "$commit$dirty" \
		--arg kernel "$kernel" --arg date "$(date -u +%Y-%m-%dT%H:%MZ)" \
		--argjson n "$N" --arg configs "$CONFIGS" --arg load "${BENCH_LOADAVG:-}" \
		--arg settings "$(printf '%s; ' "${BENCH_SETTINGS[@]}")" \
		'{date: $date, commit: $commit, cpu: $cpu, cores: $cores, mem_mb: $mem_mb,
		  postgres: $pg, distance_kernel: $kernel, n: $n, configs: $configs,
		  settings: $settings, loadavg_at_start: $load}' >"$RESULTS/env_$N.json"
}
write_env

ann_json() {	# metric m efc
	echo "$RESULTS/ann_${N}_$1_m$2_efc$3.json"
}

run_ann() {
	local spec metric m efc efs efs_after json t0
	for spec in $CONFIGS; do
		IFS=: read -r metric m efc efs efs_after <<<"$spec"
		efs_after=${efs_after:-$efs}
		json=$(ann_json "$metric" "$m" "$efc")
		echo
		am_log "ANN: $N base vectors, $metric, m=$m, ef_construction=$efc, ef_search $efs (after VACUUM: $efs_after)"
		t0=$(now_s)
		"$BENCH_BIN/annbench" --base "$BENCH_GLOVE/base.fvec" \
			--queries "$BENCH_GLOVE/queries.fvec" \
			--gt "$BENCH_GLOVE/gt_${metric}_$N.i32" -n "$N" --metric "$metric" \
			--m "$m" --efc "$efc" --ef "$efs" --ef-after "$efs_after" --workers "$WORKERS" \
			--inserts "$INSERTS" --vacuum --table ann_items \
			--label "$metric m=$m efc=$efc" --json "$json.tmp" \
			2>"$RESULTS/logs/ann_${N}_${metric}_m${m}_efc$efc.log" ||
			{ cat "$RESULTS/logs/ann_${N}_${metric}_m${m}_efc$efc.log"; am_die "annbench failed"; }
		jq --argjson wall "$(elapsed "$t0")" '. + {wall_s: $wall}' "$json.tmp" >"$json"
		rm -f "$json.tmp"
		am_log "configuration done in $(elapsed "$t0") s"
	done
	sql "DROP TABLE IF EXISTS ann_items"
}

# Markdown tables from the JSON files of this run.
ann_summary() {
	local spec metric m efc json
	echo "## ANN: GloVe 100-d, $N base vectors, 1,000 queries, recall@10, one client, prepared statements"
	echo
	echo "| metric | m | ef_construction | build serial s | build 1 worker s | index MB | inserts/s | VACUUM s | hnsw_check |"
	echo "|---|---|---|---|---|---|---|---|---|"
	for spec in $CONFIGS; do
		IFS=: read -r metric m efc _ <<<"$spec"
		json=$(ann_json "$metric" "$m" "$efc")
		[[ -s $json ]] || continue
		jq -r '"| \(.metric) | \(.m) | \(.ef_construction) | "
			+ ([.builds[] | select(.workers == 0) | .build_s | tostring] | first // "-") + " | "
			+ ([.builds[] | select(.workers > 0) | .build_s | tostring] | first // "-") + " | "
			+ "\(.index_mb) | \(.insert_rows_per_s | round) | \(.vacuum_s) | "
			+ (if .check_problems < 0 then "n/a" elif .check_problems == 0 then "ok"
			   else "\(.check_problems) problems" end) + " |"' "$json"
	done
	for spec in $CONFIGS; do
		IFS=: read -r metric m efc _ <<<"$spec"
		json=$(ann_json "$metric" "$m" "$efc")
		[[ -s $json ]] || continue
		echo
		echo "### $metric, m = $m, ef_construction = $efc"
		echo
		echo "| ef_search | recall@10 | QPS | p50 ms | p99 ms | recall after VACUUM | QPS after VACUUM |"
		echo "|---|---|---|---|---|---|---|"
		jq -r '.after_vacuum as $a | .search[] | . as $s
			| ($a | map(select(.ef_search == $s.ef_search)) | first) as $v
			| "| \(.ef_search) | \(.recall * 1000 | round / 1000) | \(.qps | round) | \(.p50_ms * 100 | round / 100) | \(.p99_ms * 100 | round / 100) | "
			  + (if $v then "\($v.recall * 1000 | round / 1000) | \($v.qps | round)" else "- | -" end) + " |"' "$json"
	done
}

SUMMARY=$RESULTS/summary_$N.md
{
	echo "# agentmem benchmark, $(jq -r '"\(.date), commit \(.commit), \(.cores) cores \(.cpu), PostgreSQL \(.postgres), kernels \(.distance_kernel)"' "$RESULTS/env_$N.json")"
	echo
} >"$SUMMARY"

if [[ ${SKIP_ANN:-0} != 1 ]]; then
	run_ann
	echo
	ann_summary | tee -a "$SUMMARY"
fi

if [[ ${SKIP_PGBENCH:-0} != 1 ]]; then
	echo
	BENCH_REUSE_CLUSTER=1 AM_TMP=$AM_TMP AM_PGBIN=$AM_PGBIN BENCH_BIN=$BENCH_BIN \
		bash "$AM_SRC/bench/run_pgbench.sh"
	if [[ -s $RESULTS/pgbench_summary_$N.md ]]; then
		{ echo; cat "$RESULTS/pgbench_summary_$N.md"; } >>"$SUMMARY"
	fi
fi

if [[ ${SKIP_PLOTS:-0} != 1 ]]; then
	echo
	bash "$AM_SRC/bench/plot.sh" "$RESULTS" "$N"
fi

TOTAL_S=$(elapsed "$T_START")
printf '\nWhole run: %s s (load average at the start %s, at the end %s).\n' "$TOTAL_S" \
	"${BENCH_LOADAVG:-?}" "$(cut -d' ' -f1 /proc/loadavg)" >>"$SUMMARY"
jq --argjson s "$TOTAL_S" --arg l "$(cut -d' ' -f1 /proc/loadavg)" \
	'. + {total_s: $s, loadavg_at_end: $l}' "$RESULTS/env_$N.json" >"$RESULTS/env_$N.json.tmp" &&
	mv "$RESULTS/env_$N.json.tmp" "$RESULTS/env_$N.json"
echo
am_log "results in $RESULTS (summary: $(basename "$SUMMARY")); whole run took $TOTAL_S s"
