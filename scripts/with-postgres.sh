#!/usr/bin/env bash
# with-postgres.sh CMD [ARGS...] — run CMD beside a throwaway PostgreSQL server.
#
# Creates a cluster in a fresh temporary directory (initdb, trust authentication), starts it
# listening ONLY on a unix socket in that directory (no TCP port, so parallel runs never
# collide, and processes in other network namespaces reach it through the file system),
# exports FLEETBOOT_TEST_POSTGRES (a libpq/pgx connection string) for CMD, and stops the server
# by the PID in its postmaster.pid and removes the directory when CMD ends, whatever its status.
# Tests that need PostgreSQL (internal/store/pgtest) create one database each on this server.
#
# PostgreSQL refuses to run as root: as root the server runs as the "postgres" user of
# Debian's postgresql package (scripts/deps.sh installs it); as anyone else, as that user.
set -euo pipefail

(($# > 0)) || { echo "usage: with-postgres.sh CMD [ARGS...]" >&2; exit 2; }

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [[ -z $bindir || ! -x $bindir/pg_ctl ]]; then
	echo "with-postgres.sh: PostgreSQL server binaries not found (apt-get install postgresql; scripts/deps.sh)" >&2
	exit 1
fi

dir=$(mktemp -d /tmp/fleetboot-pg.XXXXXX)
chmod 0755 "$dir"
as=()
dbuser=$(id -un)
if [[ $(id -u) == 0 ]]; then
	chown postgres: "$dir"
	as=(runuser -u postgres --)
	dbuser=postgres
fi

pid=
cleanup() {
	local rc=$?
	if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
		# SIGINT = "fast" shutdown: roll back sessions, checkpoint, exit. Bounded wait, then KILL.
		kill -INT "$pid" 2>/dev/null || true
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -rf "$dir"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"${as[@]}" "$bindir/initdb" -D "$dir/data" -U "$dbuser" -A trust -E UTF8 --no-locale --no-sync >"$dir/initdb.log" 2>&1 ||
	{ cat "$dir/initdb.log" >&2; exit 1; }
# fsync off: a test cluster that is thrown away needs no durability, and the shared CI machine
# is slow at fsync. max_connections: every test package opens its own pools.
"${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -s \
	-o "-c listen_addresses='' -c unix_socket_directories='$dir' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" start ||
	{ cat "$dir/server.log" >&2; exit 1; }
pid=$(head -1 "$dir/data/postmaster.pid")

export FLEETBOOT_TEST_POSTGRES="host=$dir user=$dbuser dbname=postgres sslmode=disable"
echo "with-postgres.sh: PostgreSQL $("$bindir/postgres" -V | awk '{print $3}') on $dir (pid $pid)" >&2
"$@"
