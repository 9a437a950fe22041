#!/usr/bin/env bash
# bench/plot.sh [RESULTS_DIR] [N] - PNG plots of a benchmark run (gnuplot):
#
#   recall_qps_<N>.png         recall@10 against QPS, one line per
#                              configuration (points are ef_search values),
#                              with pgvector 0.8.6's reference figures from
#                              the hnsw issue where they exist for this N
#   latency_hist_<N>_<scenario>.png
#                              agentmem.latency_histogram of each operation
#                              recorded during a pgbench scenario
#                              (hist_<N>_<scenario>.<op>.dat written by
#                              run_pgbench.sh when the statistics exist)
#
# Reads the JSON and .dat files of bench/run.sh; needs gnuplot and jq.
set -euo pipefail

RESULTS=${1:-$(cd "$(dirname "$0")" && pwd)/results}
N=${2:-100000}
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 1; }
command -v jq >/dev/null || { echo "plot.sh: jq not found (apt-get install jq)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

say() { printf 'plot: %s\n' "$*"; }

# pgvector 0.8.6 on this kind of machine (issue 3), recall@10 and QPS.
reference() {
	case $N in
		100000)
			REF_TITLE="pgvector 0.8.6, cosine 16/64 (reference)"
			printf '%s\n' "0.604 1039 10" "0.710 863 20" "0.802 603 40" \
				"0.867 399 80" "0.905 233 160" "0.931 136 320" ;;
		340479)
			REF_TITLE="pgvector 0.8.6, cosine 16/200 (reference)"
			printf '%s\n' "0.772 661 20" "0.861 514 40" "0.924 345 80" \
				"0.961 213 160" "0.983 120 320" "0.993 62 640" ;;
		*) return 1 ;;
	esac
}

plot_recall_qps() {
	local files=() f i=0 plots=() out=$RESULTS/recall_qps_$N.png
	mapfile -t files < <(ls "$RESULTS"/ann_"$N"_*.json 2>/dev/null | sort)
	if ((${#files[@]} == 0)); then
		say "no ann_${N}_*.json in $RESULTS: no recall/QPS plot"
		return 0
	fi
	local colors=("#1f77b4" "#d62728" "#2ca02c" "#9467bd" "#ff7f0e" "#8c564b" "#e377c2" "#17becf") c
	for f in "${files[@]}"; do
		c=${colors[i % ${#colors[@]}]}
		i=$((i + 1))
		jq -r '.search[] | "\(.recall) \(.qps) \(.ef_search)"' "$f" >"$work/cfg$i.dat"
		plots+=("'$work/cfg$i.dat' using 1:2 with linespoints lw 2 pt 7 lc rgb '$c' title '$(jq -r '"agentmem, \(.metric) \(.m)/\(.ef_construction)"' "$f")'")
		plots+=("'$work/cfg$i.dat' using 1:2:3 with labels offset 0,0.8 font ',8' tc rgb '$c' notitle")
	done
	local sub=""
	if [[ -s $RESULTS/env_$N.json ]]; then
		sub=$(jq -r '"\\n\(.date), commit \(.commit), \(.cores) cores, load average \(.loadavg_at_start // "?") at the start"' "$RESULTS/env_$N.json")
	fi
	if reference >"$work/ref.dat"; then
		plots+=("'$work/ref.dat' using 1:2 with linespoints dt 2 lw 2 pt 6 lc rgb 'gray40' title '$REF_TITLE'")
	fi
	gnuplot <<-EOF
		set terminal pngcairo size 1000,650 font ',11' noenhanced
		set output '$out'
		set title "GloVe 100-d, $N base vectors, 1,000 queries: recall@10 against QPS (one client, labels: ef_search)$sub"
		set xlabel 'recall@10'
		set ylabel 'queries per second (log scale)'
		set logscale y
		set grid
		set key bottom left
		plot $(IFS=,; echo "${plots[*]}")
	EOF
	say "$out"
}

plot_histograms() {
	local scenario files f plots stats out op unit k
	for scenario in $(ls "$RESULTS"/hist_"$N"_*.dat 2>/dev/null | sed "s|.*/hist_${N}_||; s|\..*||" | sort -u); do
		mapfile -t files < <(ls "$RESULTS"/hist_"${N}"_"${scenario}".*.dat)
		plots=() stats=() k=0
		for f in "${files[@]}"; do
			# skip empty histograms (header line only)
			[[ $(grep -vc '^#' "$f") -gt 0 ]] || continue
			k=$((k + 1))
			op=$(basename "$f" .dat | sed "s/^hist_${N}_${scenario}\.//; s/_/ /g")
			# each bucket a box from its lower to its upper bound, height
			# the bucket's share of the operation's calls
			stats+=("stats '$f' using 3 name 'H$k' nooutput")
			plots+=("'$f' using ((\$1+\$2)/2):(100*\$3/H${k}_sum):(\$2-\$1) with boxes title '$op'")
		done
		((${#plots[@]})) || continue
		unit=$(sed -n '1s/.*columns: *//p' "${files[0]}")
		out=$RESULTS/latency_hist_${N}_$scenario.png
		gnuplot <<-EOF
			set terminal pngcairo size 1000,600 font ',11' noenhanced
			set output '$out'
			set title "agentmem.latency_histogram after the '$scenario' pgbench scenario ($N rows)"
			set xlabel 'latency (log scale; histogram columns: $unit)'
			set ylabel "share of the operation's calls, %"
			set logscale x
			set grid
			set key top right
			set style fill transparent solid 0.35 border
			$(printf '%s\n' "${stats[@]}")
			plot $(IFS=,; echo "${plots[*]}")
		EOF
		say "$out"
	done
	if ! ls "$RESULTS"/hist_"$N"_*.dat >/dev/null 2>&1; then
		say "no agentmem.latency_histogram data for N=$N (statistics not in this build): no latency histograms"
	fi
}

plot_recall_qps
plot_histograms
