#!/usr/bin/env bash
# make_test_sample.sh - regenerate the small real-data sample committed under
# test/data/ from the benchmark data set (bench/fetch_glove.sh, run first if
# needed):
#   glove_sample.fvec / .words    the first 4,000 base vectors
#   glove_queries.fvec / .words   the first 100 query vectors
# Same "AGMV" header format as the full files.  The output is deterministic:
# rerunning it must leave test/data/ unchanged.
set -euo pipefail

NSAMPLE=4000
NQSAMPLE=100
DIM=100

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out=$repo/test/data
cache=${AGENTMEM_CACHE:-$HOME/.cache/agentmem}
dir=$cache/glove100

say() { printf 'make_test_sample: %s\n' "$*"; }
die() { printf 'make_test_sample: error: %s\n' "$*" >&2; exit 1; }

if [ ! -f "$dir/.complete" ]; then
	"$here/fetch_glove.sh"
fi

hdr() { od -An -t u4 -j "$2" -N 4 "$1" | tr -d ' '; }

# four bytes, little-endian
le32() {
	# shellcheck disable=SC2059  # the format is built to hold the \x escapes
	printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' \
		$(($1 & 255)) $((($1 >> 8) & 255)) $((($1 >> 16) & 255)) $((($1 >> 24) & 255)))"
}

# cut SRC STEM COUNT: first COUNT vectors and words of SRC.{fvec,words}
cut_set() {
	local src=$1 stem=$2 count=$3 n dim tmp
	n=$(hdr "$dir/$src.fvec" 4)
	dim=$(hdr "$dir/$src.fvec" 8)
	[ "$dim" = "$DIM" ] || die "$src.fvec has dimension $dim, expected $DIM"
	[ "$n" -ge "$count" ] || die "$src.fvec has only $n vectors"
	tmp=$out/.$stem.fvec.tmp
	{
		printf 'AGMV'
		le32 "$count"
		le32 "$dim"
		head -c $((12 + count * dim * 4)) "$dir/$src.fvec" | tail -c +13
	} >"$tmp"
	[ "$(stat -c %s "$tmp")" = $((12 + count * dim * 4)) ] || die "short output for $stem"
	mv -f "$tmp" "$out/$stem.fvec"
	head -n "$count" "$dir/$src.words" >"$out/$stem.words.tmp"
	mv -f "$out/$stem.words.tmp" "$out/$stem.words"
	say "$stem: $count vectors of dim $dim ($(stat -c %s "$out/$stem.fvec") bytes)"
}

mkdir -p "$out"
cut_set base glove_sample "$NSAMPLE"
cut_set queries glove_queries "$NQSAMPLE"
say "total $(du -cb "$out"/glove_* | tail -n 1 | cut -f1) bytes in $out"
