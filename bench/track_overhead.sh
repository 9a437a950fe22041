#!/usr/bin/env bash
# bench/track_overhead.sh: what agentmem.track costs on pgbench's built-in
# select-only workload (pgbench -S).
#
# Builds and installs agentmem into a private cluster (test/cluster.sh),
# preloaded, initialises pgbench at scale $SCALE, then runs $ROUNDS rounds;
# each round runs pgbench -S for $DURATION seconds once per setting of
# agentmem.track (none, agentmem, all), in a rotating order so drift does
# not favour one setting.  The setting is changed with ALTER SYSTEM and a
# reload; every pgbench run opens fresh connections, which pick it up.
# compute_query_id stays auto: agentmem does not ask PostgreSQL for query
# identifiers, and fingerprints statement texts itself when there are none
# (src/stmtid.c).
# Reports the median TPS per setting, and the loss against none as the
# median of the per-round ratios.  Then, since load from other processes
# moves sequential runs by more than the effect measured, it runs a
# pgbench stream with agentmem.track = none and one with all at the same
# time, $ROUNDS times, and reports the median ratio of their TPS, next to
# the same pairing of none with none as a control for the noise.
#
# Wall-clock TPS on a small shared machine is noisy, so when valgrind is
# installed the script also counts instructions, which do not depend on
# load: a single-user backend (postgres --single) runs the same
# primary-key SELECT $STATEMENTS times under callgrind with each setting;
# the difference per statement is what tracking adds, compared with what
# the statement costs (measured as the difference between $STATEMENTS and
# twice as many statements, so startup and one-time costs cancel out).
#
#   bash bench/track_overhead.sh            # 7 rounds x 3 settings x 15 s
#   ROUNDS=3 DURATION=10 CLIENTS=4 bash bench/track_overhead.sh
set -euo pipefail
source "$(dirname "$0")/../test/cluster.sh"

ROUNDS=${ROUNDS:-7}
DURATION=${DURATION:-15}
STATEMENTS=${STATEMENTS:-3000}
CLIENTS=${CLIENTS:-2}
THREADS=${THREADS:-$CLIENTS}
SCALE=${SCALE:-10}
MODES=(none agentmem all)

am_base_packages
am_setup_tmp
am_build_install
am_start_cluster "shared_buffers = '256MB'" "agentmem.track = none"

am_log "pgbench -i -s $SCALE"
pgbench -i -q -s "$SCALE" postgres >"$AM_TMP/init.log" 2>&1 || { cat "$AM_TMP/init.log"; exit 1; }
psql -X -q -c 'CREATE EXTENSION agentmem' postgres

set_track() {
	psql -X -q -c "ALTER SYSTEM SET agentmem.track = '$1'" \
		-c 'SELECT pg_reload_conf()' postgres >/dev/null
	local i
	for i in $(seq 50); do
		[[ $(psql -X -At -c 'SHOW agentmem.track' postgres) == "$1" ]] && return 0
		sleep 0.1
	done
	am_die "agentmem.track did not become $1"
}

run_pgbench() {
	pgbench -n -S -c "$CLIENTS" -j "$THREADS" -T "$DURATION" postgres 2>&1 |
		sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p'
}

# warm up the cache and the CPU
set_track none
am_log "warm-up ($DURATION s)"
run_pgbench >/dev/null

declare -A tps ratio round
for ((r = 0; r < ROUNDS; r++)); do
	line="round $((r + 1)):"
	for ((k = 0; k < ${#MODES[@]}; k++)); do
		mode=${MODES[$(((k + r) % ${#MODES[@]}))]}
		set_track "$mode"
		t=$(run_pgbench)
		[[ -n $t ]] || am_die "pgbench failed"
		tps[$mode]+="$t "
		round[$mode]=$t
		line+=" $mode=$t"
	done
	for mode in "${MODES[@]}"; do
		ratio[$mode]+="$(awk -v b="${round[none]}" -v m="${round[$mode]}" 'BEGIN {print m / b}') "
	done
	am_log "$line"
done

# Paired: two pgbench -S streams at once, one whose sessions run with
# agentmem.track = none and one with all (set per session through
# PGOPTIONS), so that both meet the same load from everything else on the
# machine; the ratio of their TPS is the cost of tracking.  Each round
# also pairs none with none: how far that ratio strays from 1 is the
# noise of the method.
set_track agentmem
paired() {	# track-a track-b: prints TPS(b) / TPS(a)
	local ta tb
	PGOPTIONS="-c agentmem.track=$1" \
		pgbench -n -S -c 1 -j 1 -T "$DURATION" postgres >"$AM_TMP/p_a" 2>&1 &
	PGOPTIONS="-c agentmem.track=$2" \
		pgbench -n -S -c 1 -j 1 -T "$DURATION" postgres >"$AM_TMP/p_b" 2>&1 &
	wait
	ta=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' "$AM_TMP/p_a")
	tb=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' "$AM_TMP/p_b")
	[[ -n $ta && -n $tb ]] || am_die "paired pgbench failed"
	awk -v a="$ta" -v b="$tb" 'BEGIN {printf "%.4f", b / a}'
}
ab_ratios="" aa_ratios=""
for ((r = 0; r < ROUNDS; r++)); do
	ab=$(paired none all)
	aa=$(paired none none)
	ab_ratios+="$ab " aa_ratios+="$aa "
	am_log "paired round $((r + 1)): all/none $ab, none/none $aa"
done

# statements recorded in the last 'all' run, as a sanity check
set_track all
psql -X -q -c 'SELECT agentmem.latency_reset()' postgres >/dev/null
run_pgbench >/dev/null
recorded=$(psql -X -At -c "SELECT calls FROM agentmem.latency WHERE operation = 'all statements'" postgres)

median() { printf '%s\n' $1 | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo
echo "pgbench -S, scale $SCALE, $CLIENTS clients, $THREADS threads, $DURATION s x $ROUNDS rounds ($(nproc) CPUs)"
for mode in "${MODES[@]}"; do
	m=$(median "${tps[$mode]}")
	loss=$(awk -v r="$(median "${ratio[$mode]}")" 'BEGIN {printf "%.2f", (1 - r) * 100}')
	printf 'agentmem.track = %-8s median TPS %10.1f  loss vs none %6s%%   (runs: %s)\n' \
		"$mode" "$m" "$loss" "${tps[$mode]% }"
done
echo "a $DURATION s run under 'all' recorded $recorded statements"
ab=$(median "$ab_ratios") aa=$(median "$aa_ratios")
echo "paired streams, $ROUNDS rounds: TPS all/none median $ab (loss $(awk -v r="$ab" 'BEGIN {printf "%.2f", (1 - r) * 100}')%)," \
	"control none/none median $aa (ratios all/none: ${ab_ratios% }; none/none: ${aa_ratios% })"

# ------------------------------------------------ instructions (callgrind)
command -v valgrind >/dev/null || { echo "valgrind not installed: no instruction counts"; exit 0; }
am_stop_cluster
# N and 2N statements: the difference cancels startup and one-time costs
awk -v n="$((2 * STATEMENTS))" -v rows="$((SCALE * 100000))" 'BEGIN {
	srand(1); for (i = 0; i < n; i++)
		printf "SELECT abalance FROM pgbench_accounts WHERE aid = %d;\n", 1 + int(rand() * rows) }' >"$AM_TMP/select2.sql"
head -n "$STATEMENTS" "$AM_TMP/select2.sql" >"$AM_TMP/select1.sql"
chmod 644 "$AM_TMP"/select[12].sql
instructions() {	# track compute_query_id file
	am_as_server_user env TMPDIR="$AM_TMP" valgrind --tool=callgrind --callgrind-out-file=/dev/null \
		postgres --single -D "$AM_DATA" -c agentmem.track="$1" -c compute_query_id="$2" postgres \
		<"$3" 2>&1 >/dev/null | sed -n 's/.*Collected : \([0-9]*\)/\1/p'
}
per_select() {	# track compute_query_id: instructions per SELECT
	local a b
	a=$(instructions "$1" "$2" "$AM_TMP/select1.sql")
	b=$(instructions "$1" "$2" "$AM_TMP/select2.sql")
	awk -v a="$a" -v b="$b" -v n="$STATEMENTS" 'BEGIN {printf "%.0f", (b - a) / n}'
}
am_log "callgrind: $STATEMENTS and $((2 * STATEMENTS)) SELECTs in a single-user backend per setting"
base=$(per_select none auto)
agm=$(per_select agentmem auto)
all=$(per_select all auto)
qid=$(per_select none on)
allqid=$(per_select all on)
added() {	# label instructions reference
	awk -v l="$1" -v x="$2" -v r="$3" -v b="$base" \
		'BEGIN {printf "%-62s %+6.0f instructions per SELECT (%+.2f%%)\n", l, x - r, (x - r) / b * 100}'
}
echo "instructions per SELECT with agentmem.track = none: $base"
added "agentmem.track = agentmem" "$agm" "$base"
added "agentmem.track = all (statement fingerprints)" "$all" "$base"
echo "with query identifiers computed by the server (compute_query_id = on, as with pg_stat_statements):"
added "  computing them (PostgreSQL's cost, not agentmem's)" "$qid" "$base"
added "  agentmem.track = all on top (using them)" "$allqid" "$qid"
