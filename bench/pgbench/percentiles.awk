# percentiles.awk: latency percentiles from pgbench's per-transaction log.
#
#   cat PREFIX.* | awk '$3 ~ /^[0-9]+$/ { print $3 }' | sort -n |
#       awk -f percentiles.awk
#
# Input: one latency in microseconds per line, sorted ascending (pgbench -l
# writes "client_id transaction_no time script_no time_epoch time_us ...",
# where time is the transaction's latency in microseconds, or "failed" /
# "skipped").  Output, one line: count p50 p95 p99 mean max, in
# milliseconds.  Nearest-rank percentiles: the p-th percentile is the
# smallest sample with at least p% of the samples at or below it.
function rank(p,    r) {
	r = int(p * NR / 100)
	if (r < p * NR / 100)
		r++
	if (r < 1)
		r = 1
	return v[r] / 1000
}
{ v[NR] = $1; sum += $1 }
END {
	if (NR == 0) {
		print "0 - - - - -"
		exit
	}
	printf "%d %.3f %.3f %.3f %.3f %.3f\n", NR, rank(50), rank(95), rank(99), sum / NR / 1000, v[NR] / 1000
}
