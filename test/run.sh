#!/usr/bin/env bash
# test/run.sh: the whole test suite (`make test`).  Installs what is missing,
# builds with warnings as errors, installs into a private copy of
# PostgreSQL, runs every pg_regress test (sql/, expected/), every isolation
# spec (test/specs/) and every TAP test (test/t/), and exits non-zero on any
# failure.  Each runner has a time limit so a hang fails instead of stalling CI.
# KEEP=1 keeps the work area; TESTS="a b" runs only those
# regression tests; TAP="t/x.t" only those TAP files.
set -uo pipefail
source "$(dirname "$0")/cluster.sh"

am_base_packages
am_require_packages libipc-run-perl:/usr/share/perl5/IPC/Run.pm \
	python3-psycopg:/usr/lib/python3/dist-packages/psycopg/__init__.py \
	python3:python3 perl:prove
am_setup_tmp
am_build_install

passed=0 failed=0
failed_names=()

count_result() {	# name rc
	if [[ $2 -eq 0 ]]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		failed_names+=("$1")
	fi
}

run_regress() {
	local tests=${TESTS:-$(cd "$AM_SRC/sql" && ls *.sql | sed 's/\.sql$//' | sort)}
	local out=$AM_TMP/regress
	mkdir -p "$out"
	am_log "pg_regress: $(echo $tests | wc -w) tests"
	timeout 900 "$AM_PGLIB/pgxs/src/test/regress/pg_regress" --bindir="$AM_PGBIN" \
		--host="$AM_SOCK" --port="$AM_PORT" --user=postgres \
		--inputdir="$AM_SRC" --outputdir="$out" \
		--load-extension=agentmem --dbname=agentmem_regress $tests 2>&1 |
		tee "$AM_TMP/regress.out"
	local rc=${PIPESTATUS[0]} before=$failed line
	while read -r line; do
		local name=$(echo "$line" | awk '{print $2}')
		if [[ $line == *" ... ok"* ]]; then count_result "regress/$name" 0
		else count_result "regress/$name" 1; fi
	done < <(grep -E '^(test| ) ?[a-z_0-9]+ +\.\.\. ' "$AM_TMP/regress.out" | sed 's/^ /test/')
	((rc != 0 && failed == before)) && count_result "regress/pg_regress(exit $rc)" 1
	if [[ -s $out/regression.diffs ]]; then
		echo "---- regression.diffs (first 200 lines) ----"
		head -200 "$out/regression.diffs"
	fi
}

run_isolation() {
	local specs=()
	[[ -d $AM_SRC/test/specs ]] || return 0
	specs=($(cd "$AM_SRC/test/specs" && ls *.spec 2>/dev/null | sed 's/\.spec$//' | sort))
	((${#specs[@]})) || return 0
	local out=$AM_TMP/isolation
	mkdir -p "$out"
	am_log "pg_isolation_regress: ${#specs[@]} specs"
	timeout 600 "$AM_PGLIB/pgxs/src/test/isolation/pg_isolation_regress" --bindir="$AM_PGBIN" \
		--host="$AM_SOCK" --port="$AM_PORT" --user=postgres \
		--inputdir="$AM_SRC/test" --outputdir="$out" \
		--load-extension=agentmem --dbname=agentmem_isolation "${specs[@]}" 2>&1 |
		tee "$AM_TMP/isolation.out"
	local name
	for name in "${specs[@]}"; do
		if grep -qE "^(test| ) ?$name +\.\.\. ok" "$AM_TMP/isolation.out"; then
			count_result "isolation/$name" 0
		else
			count_result "isolation/$name" 1
		fi
	done
	[[ -s $out/regression.diffs ]] && head -200 "$out/regression.diffs"
	return 0
}

# TAP tests start their own clusters with PostgreSQL::Test::Cluster from the
# private installation; they run as the server user from a readable copy.
run_tap() {
	local tapdir=$AM_TMP/tap files
	cp -a "$AM_SRC/test" "$tapdir"
	[[ $(id -u) -eq 0 ]] && chown -R nobody "$tapdir" "$AM_TMP"
	files=${TAP:-$(cd "$tapdir" && ls t/*.t 2>/dev/null)}
	[[ -n $files ]] || return 0
	am_log "prove: $(echo $files | wc -w) files"
	# One prove per file: with -v, prove prints a file's verdict on a line
	# of its own after the file's output, so its exit status is the
	# reliable per-file result.
	: >"$AM_TMP/prove.out"
	local f rc
	for f in $files; do
		(cd "$tapdir" && am_as_server_user env \
			PERL5LIB="$AM_PGLIB/pgxs/src/test/perl" \
			PG_REGRESS="$AM_PGLIB/pgxs/src/test/regress/pg_regress" \
			AGENTMEM_SRC="$AM_SRC" AGENTMEM_TEST="$tapdir" TESTDATADIR="$tapdir/tmp_check" \
			PGHOST= PGPORT= PG_TEST_TIMEOUT_DEFAULT=300 \
			timeout 900 prove -v --timer "$f") 2>&1 | tee -a "$AM_TMP/prove.out"
		rc=${PIPESTATUS[0]}
		count_result "tap/$f" "$rc"
	done
	if ((failed)) && [[ -d $tapdir/tmp_check/log ]]; then
		echo "---- TAP logs: $tapdir/tmp_check/log (use KEEP=1 to keep them) ----"
	fi
}

am_start_cluster
run_regress
run_isolation
am_stop_cluster
[[ -z ${TESTS:-} ]] && run_tap

echo
((failed)) && printf 'FAILED: %s\n' "${failed_names[@]}"
echo "agentmem: $passed passed, $failed failed"
((failed == 0))
