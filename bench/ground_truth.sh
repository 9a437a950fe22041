#!/usr/bin/env bash
# shellcheck disable=SC2015  # "A && B || die" is meant: die if either test fails
# ground_truth.sh [N|full] [--check R] - exact top-100 ground truth for the
# GloVe benchmark over the first N base vectors (default 100000, or all
# 340479 with FULL=1 or "full"), for cosine, l2 and ip, written as
#   ${AGENTMEM_CACHE:-$HOME/.cache/agentmem}/glove100/gt_<metric>_<N>.i32
# ("AGGT" | u32 nq | u32 k=100 | nq*k int32 base indices, nearest first,
# ties to the lower index).  Cached: files already there are kept.  Fetches
# the data first (bench/fetch_glove.sh) if it is not there yet.  After
# computing, recomputes R queries (default 3) the slow way as a self-check.
set -euo pipefail

NBASE=340479
K=100

here=$(cd "$(dirname "$0")" && pwd)
cache=${AGENTMEM_CACHE:-$HOME/.cache/agentmem}
dir=$cache/glove100

say() { printf 'glove100: %s\n' "$*"; }
die() { printf 'glove100: error: %s\n' "$*" >&2; exit 1; }

n=
check=3
while [ $# -gt 0 ]; do
	case $1 in
		--check) [ $# -ge 2 ] || die "--check needs a number"; check=$2; shift 2 ;;
		full) n=$NBASE; shift ;;
		-h|--help) sed -n '2,10p' "$0"; exit 0 ;;
		*) n=$1; shift ;;
	esac
done
if [ -z "$n" ]; then
	if [ "${FULL:-0}" = 1 ]; then n=$NBASE; else n=100000; fi
fi
case $n in
	''|*[!0-9]*) die "N must be a number of base vectors (100..$NBASE) or 'full', got '$n'" ;;
esac
[ "$n" -ge "$K" ] && [ "$n" -le "$NBASE" ] || die "N must be between $K and $NBASE, got $n"
case $check in ''|*[!0-9]*) die "--check needs a number, got '$check'" ;; esac

done_for() {
	local m
	for m in cosine l2 ip; do
		[ -s "$dir/gt_${m}_$1.i32" ] || return 1
	done
}

if done_for "$n"; then
	say "ground truth for N=$n already present"
	exit 0
fi

if [ ! -f "$dir/.complete" ]; then
	say "data not there yet; running fetch_glove.sh first"
	"$here/fetch_glove.sh"
	if done_for "$n"; then exit 0; fi
fi

exec 9>"$dir/.gt.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi
if done_for "$n"; then
	say "ground truth for N=$n already present"
	exit 0
fi

work=$(mktemp -d "$dir/tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT
cc -O2 -Wall -Wextra -Werror -pthread -o "$work/ground_truth" "$here/ground_truth.c" -lm

say "computing exact top-$K for 1000 queries over $n base vectors (cosine, l2, ip)"
t0=$(date +%s)
"$work/ground_truth" -b "$dir/base.fvec" -q "$dir/queries.fvec" -o "$work" \
	-n "$n" -k "$K" -t 2 --check "$check" | sed '/^wrote /d; s/^/glove100:   /'
for m in cosine l2 ip; do
	mv -f "$work/gt_${m}_$n.i32" "$dir/gt_${m}_$n.i32"
done
say "ground truth for N=$n ready in $(( $(date +%s) - t0 )) s"
