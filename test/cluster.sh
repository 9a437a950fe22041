# test/cluster.sh: shared by test/run.sh, bench/demo.sh and bench/run.sh.
#
# Installs what is missing, builds agentmem, installs it into a private,
# relocated copy of PostgreSQL 15 (so no root is needed to install the
# extension and the system installation is never touched), and starts or
# stops a throw-away cluster.  Source it; it defines am_* functions.

AM_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
AM_PGVER=15
AM_SYS_PGBIN=/usr/lib/postgresql/$AM_PGVER/bin

am_log() { printf '==> %s\n' "$*"; }
am_die() { printf 'agentmem: %s\n' "$*" >&2; exit 1; }

# am_require_packages PKG:CHECK ...  CHECK is a file that must exist or a
# command that must be on PATH; missing packages are installed when we are
# root, otherwise we stop with the exact command to run.
am_require_packages() {
	local missing=() spec pkg check
	for spec in "$@"; do
		pkg=${spec%%:*} check=${spec#*:}
		if [[ $check == /* ]]; then
			[[ -e $check ]] || missing+=("$pkg")
		else
			command -v "$check" >/dev/null 2>&1 || missing+=("$pkg")
		fi
	done
	((${#missing[@]} == 0)) && return 0
	if [[ $(id -u) -eq 0 ]]; then
		am_log "installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >/dev/null || am_die "apt-get update failed"
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
			am_die "apt-get install ${missing[*]} failed"
	else
		am_die "missing packages; run: sudo apt-get install -y ${missing[*]}"
	fi
}

am_base_packages() {
	am_require_packages \
		postgresql-$AM_PGVER:$AM_SYS_PGBIN/postgres \
		postgresql-server-dev-$AM_PGVER:/usr/lib/postgresql/$AM_PGVER/lib/pgxs/src/makefiles/pgxs.mk \
		postgresql-client-$AM_PGVER:$AM_SYS_PGBIN/psql \
		make:make gcc:gcc
}

# am_setup_tmp: a private work area, removed on exit unless KEEP=1.
am_setup_tmp() {
	AM_TMP=$(mktemp -d "${TMPDIR:-/tmp}/agentmem.XXXXXX")
	chmod 755 "$AM_TMP"
	trap am_cleanup EXIT
}

am_cleanup() {
	local rc=$?
	am_stop_cluster
	if [[ ${KEEP:-0} != 1 && -n ${AM_TMP:-} ]]; then
		rm -rf "$AM_TMP"
	fi
	exit $rc
}

# am_build_install: build (warnings are errors) and install into a relocated
# copy of the PostgreSQL tree under $AM_TMP/pg.  PostgreSQL finds its share
# and lib directories relative to its binaries, so the copy is self-contained.
am_build_install() {
	local pgc=$AM_SYS_PGBIN/pg_config root=$AM_TMP/pg
	am_log "building agentmem"
	make -C "$AM_SRC" -s PG_CONFIG="$pgc" WERROR=1 >"$AM_TMP/build.log" 2>&1 ||
		{ cat "$AM_TMP/build.log"; am_die "build failed"; }
	local libtree share
	libtree=$(dirname "$($pgc --bindir)")	# /usr/lib/postgresql/15
	share=$($pgc --sharedir)				# /usr/share/postgresql/15
	rm -rf "$root"
	mkdir -p "$root$(dirname "$libtree")" "$root$(dirname "$share")"
	cp -a "$libtree" "$root$(dirname "$libtree")/"
	cp -a "$share" "$root$(dirname "$share")/"
	make -C "$AM_SRC" -s PG_CONFIG="$pgc" DESTDIR="$root" install >>"$AM_TMP/build.log" 2>&1 ||
		{ cat "$AM_TMP/build.log"; am_die "install failed"; }
	AM_PGBIN=$root$($pgc --bindir)
	AM_PGSHARE=$root$($pgc --sharedir)
	AM_PGLIB=$root$($pgc --pkglibdir)
	export PATH="$AM_PGBIN:$PATH"
}

# The server refuses to run as root; as root we run it as `nobody`.
am_server_user() {
	if [[ $(id -u) -eq 0 ]]; then echo nobody; else id -un; fi
}

am_as_server_user() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u nobody -- env PATH="$PATH" HOME="$AM_TMP" "$@"
	else
		"$@"
	fi
}

am_free_port() {
	local p
	for p in $(seq $((54320 + RANDOM % 500)) 55999); do
		if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	am_die "no free port found"
}

# am_start_cluster [extra postgresql.conf lines...]
am_start_cluster() {
	AM_DATA=$AM_TMP/data
	AM_SOCK=$AM_TMP/sock
	AM_PORT=$(am_free_port)
	mkdir -p "$AM_SOCK"
	[[ $(id -u) -eq 0 ]] && chown -R nobody "$AM_TMP"
	am_as_server_user initdb -D "$AM_DATA" -A trust -U postgres --no-sync \
		>"$AM_TMP/initdb.log" 2>&1 || { cat "$AM_TMP/initdb.log"; am_die "initdb failed"; }
	{
		echo "port = $AM_PORT"
		echo "listen_addresses = '127.0.0.1'"
		echo "unix_socket_directories = '$AM_SOCK'"
		echo "shared_preload_libraries = 'agentmem'"
		echo "fsync = off"
		echo "max_connections = 100"
		echo "max_prepared_transactions = 10"
		echo "log_min_messages = warning"
		local line
		for line in "$@"; do echo "$line"; done
	} >>"$AM_DATA/postgresql.conf"
	# a port found free can be taken by a concurrent run before we bind it:
	# try a few ports (the last `port =` line in the file wins)
	local attempt
	for attempt in 1 2 3 4 5; do
		if am_as_server_user pg_ctl -D "$AM_DATA" -l "$AM_TMP/server.log" -w -t 60 \
			start >/dev/null; then
			break
		fi
		grep -q "Address already in use" "$AM_TMP/server.log" && ((attempt < 5)) ||
			{ cat "$AM_TMP/server.log"; am_die "server did not start"; }
		AM_PORT=$(am_free_port)
		echo "port = $AM_PORT" >>"$AM_DATA/postgresql.conf"
	done
	AM_STARTED=1
	export PGHOST=$AM_SOCK PGPORT=$AM_PORT PGUSER=postgres PGDATABASE=postgres
	am_log "cluster running on port $AM_PORT (socket $AM_SOCK)"
}

am_stop_cluster() {
	if [[ ${AM_STARTED:-0} == 1 ]]; then
		am_as_server_user pg_ctl -D "$AM_DATA" -m fast -w stop >/dev/null 2>&1 || true
		AM_STARTED=0
	fi
}
