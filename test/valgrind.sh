#!/usr/bin/env bash
# test/valgrind.sh: run the regression tests, test/valgrind_workload.sql
# and test/client_roundtrip.py against a server under valgrind memcheck,
# then report every valgrind error with agentmem in its stack or in the
# origin of the uninitialised bytes.  Not part of `make test` (it takes a
# minute or more); run it by hand after changing C code:
#
#   bash test/valgrind.sh            # exits non-zero on agentmem errors
#   KEEP=1 bash test/valgrind.sh     # keep the logs ($AM_TMP/valgrind/)
#   CLIENT=0 bash test/valgrind.sh   # without the psycopg client test
#   TESTS="vector_type" bash ...     # only these regression tests
#
# Debian's PostgreSQL is not built with USE_VALGRIND, so palloc'd memory
# is not marked undefined or inaccessible per chunk: a read past a palloc
# chunk inside an allocation block goes unseen, while reads of
# uninitialised malloc'd memory, invalid reads past malloc'd blocks and
# uninitialised values in conditional jumps are still found.  Errors that
# stay inside PostgreSQL are counted but not shown; test/valgrind.supp
# silences the known false positives.
#
# Valgrind's virtual CPU has no AVX-512, so under valgrind agentmem picks
# the AVX2 kernels (or scalar); test/t/001_distance_kernels.t covers the
# AVX-512 ones natively.
set -uo pipefail
source "$(dirname "$0")/cluster.sh"

am_base_packages
am_require_packages valgrind:valgrind libipc-run-perl:/usr/share/perl5/IPC/Run.pm \
	python3-psycopg:/usr/lib/python3/dist-packages/psycopg/__init__.py
am_setup_tmp
am_build_install

VG_LOGS=$AM_TMP/valgrind
mkdir -p "$VG_LOGS"

# am_start_cluster starts the server with pg_ctl; here the postmaster runs
# under valgrind instead, and its forked backends with it.
vg_start_cluster() {
	AM_DATA=$AM_TMP/data
	AM_SOCK=$AM_TMP/sock
	AM_PORT=$(am_free_port)
	mkdir -p "$AM_SOCK"
	[[ $(id -u) -eq 0 ]] && chown -R nobody "$AM_TMP"
	am_as_server_user initdb -D "$AM_DATA" -A trust -U postgres --no-sync \
		>"$AM_TMP/initdb.log" 2>&1 || { cat "$AM_TMP/initdb.log"; am_die "initdb failed"; }
	cat >>"$AM_DATA/postgresql.conf" <<-EOF
		port = $AM_PORT
		listen_addresses = ''
		unix_socket_directories = '$AM_SOCK'
		shared_preload_libraries = 'agentmem'
		fsync = off
		jit = off
		max_connections = 20
		log_min_messages = warning
		statement_timeout = 0
	EOF
	am_log "starting postgres under valgrind (logs in $VG_LOGS)"
	am_as_server_user valgrind --quiet --trace-children=yes \
		--suppressions="$AM_SRC/test/valgrind.supp" \
		--error-markers=VALGRINDERROR-BEGIN,VALGRINDERROR-END \
		--leak-check=no --track-origins=yes --num-callers=40 \
		--gen-suppressions=all \
		--log-file="$VG_LOGS/%p.log" \
		"$AM_PGBIN/postgres" -D "$AM_DATA" >"$AM_TMP/server.log" 2>&1 &
	AM_VG_PID=$!
	local i
	for i in $(seq 1 300); do
		pg_isready -q -h "$AM_SOCK" -p "$AM_PORT" && break
		kill -0 "$AM_VG_PID" 2>/dev/null || { cat "$AM_TMP/server.log"; am_die "server died"; }
		sleep 1
	done
	pg_isready -q -h "$AM_SOCK" -p "$AM_PORT" || am_die "server did not start under valgrind"
	AM_STARTED=1
	export PGHOST=$AM_SOCK PGPORT=$AM_PORT PGUSER=postgres PGDATABASE=postgres
	am_log "server running under valgrind on socket $AM_SOCK port $AM_PORT"
}

vg_run_regress() {
	local tests out=$AM_TMP/regress
	tests=${TESTS:-$(cd "$AM_SRC/sql" && ls *.sql | sed 's/\.sql$//' | sort)}
	mkdir -p "$out"
	am_log "pg_regress under valgrind: $(echo $tests | wc -w) tests"
	"$AM_PGLIB/pgxs/src/test/regress/pg_regress" --bindir="$AM_PGBIN" \
		--host="$AM_SOCK" --port="$AM_PORT" --user=postgres \
		--inputdir="$AM_SRC" --outputdir="$out" \
		--load-extension=agentmem --dbname=agentmem_valgrind $tests
	REGRESS_RC=$?
}

vg_run_workload() {
	am_log "valgrind_workload.sql (long vectors, binary COPY)"
	createdb agentmem_workload && psql -qX -d agentmem_workload -c 'CREATE EXTENSION agentmem' ||
		am_die "cannot create the workload database"
	am_log "distance kernels under valgrind: $(psql -qAtX -d agentmem_workload -c 'SELECT agentmem.distance_kernel()')"
	psql -qX -d agentmem_workload -v copyfile="$AM_TMP/vg_copy.bin" \
		-f "$AM_SRC/test/valgrind_workload.sql" >"$AM_TMP/workload.out" 2>&1
	WORKLOAD_RC=$?
	((WORKLOAD_RC == 0)) || cat "$AM_TMP/workload.out"
}

vg_run_client() {
	[[ ${CLIENT:-1} == 1 ]] || return 0
	am_log "client_roundtrip.py under valgrind"
	createdb agentmem_client && psql -qX -d agentmem_client -c 'CREATE EXTENSION agentmem' ||
		am_die "cannot create the client test database"
	/usr/bin/python3 "$AM_SRC/test/client_roundtrip.py" \
		"host=$AM_SOCK port=$AM_PORT user=postgres dbname=agentmem_client" |
		grep -E '^(not ok|# [0-9]+ passed)' | grep -v '# TODO'
	CLIENT_RC=${PIPESTATUS[0]}
}

# Print every error block (between the error markers) whose stack or
# origin of uninitialised bytes has a frame in agentmem; summarise the
# others by their kind and first named PostgreSQL function.  A write of
# uninitialised bytes (WAL, a data file) counts by their origin only: the
# backend that happens to flush a WAL page, inside an index build say,
# writes every record on it, PostgreSQL's own padding included.
vg_scan() {
	am_log "scanning valgrind logs"
	awk -v pattern='agentmem\\.so|[(](vector|vector_ops|distance|agentmem|hnsw)[a-z_]*\\.c:' '
		{ sub(/^==[0-9]+== /, "") }
		/VALGRINDERROR-BEGIN/ { inblock = 1; block = ""; kind = ""; where = ""; next }
		/VALGRINDERROR-END/ {
			inblock = 0; total++
			judged = block
			if (kind ~ /^Syscall param (pwrite64|write)[(]buf[)]/) {
				judged = ""
				if (index(block, "Uninitialised value was created"))
					judged = substr(block, index(block, "Uninitialised value was created"))
			}
			if (judged ~ pattern) {
				ours++
				printf "---- agentmem error in %s ----\n%s\n", FILENAME, block
			} else
				other[kind " (" where ")"]++
			next
		}
		inblock {
			block = block $0 "\n"
			if (kind == "") kind = $0
			if (where == "" && $0 ~ /^ +(at|by) 0x[0-9A-F]+: [A-Za-z_]+ \(in .*postgres\)/) {
				where = $0; sub(/^ +(at|by) 0x[0-9A-F]+: /, "", where); sub(/ .*/, "", where)
			}
		}
		END {
			for (k in other) printf "  outside agentmem: %d x %s\n", other[k], k
			printf "valgrind: %d errors, %d with agentmem in the stack or origin\n", total, ours
			exit ours > 0
		}' "$VG_LOGS"/*.log
}

vg_start_cluster
REGRESS_RC=0 CLIENT_RC=0 WORKLOAD_RC=0
vg_run_regress
vg_run_workload
vg_run_client
am_stop_cluster
wait "$AM_VG_PID" 2>/dev/null
vg_scan
SCAN_RC=$?

echo "pg_regress exit $REGRESS_RC, valgrind_workload.sql exit $WORKLOAD_RC," \
	"client_roundtrip.py exit $CLIENT_RC, agentmem errors: $([[ $SCAN_RC == 0 ]] && echo none || echo found)"
((REGRESS_RC == 0 && WORKLOAD_RC == 0 && CLIENT_RC == 0 && SCAN_RC == 0))
