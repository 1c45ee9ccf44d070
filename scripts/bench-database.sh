#!/usr/bin/env bash
# bench-database.sh — the same simulated fleet against fleetboot on SQLite (the default) and on
# PostgreSQL (--database), side by side: DHCP (the firmware's DORA, full mode: every offer is a
# lease write) and boot-script latency, plus wall time and failures.
#
# Runs `fleetboot simulate` (root: network namespaces) twice with the same fleet, once with the
# default SQLite file and once with --serve-arg=--database=… on a throwaway PostgreSQL cluster
# (scripts/with-postgres.sh; the server in its namespace reaches it through the unix socket).
# Prints one row per backend. Figures depend on the machine and its load: compare the two rows
# of one run, not runs on different machines.
#
# Usage: sudo scripts/bench-database.sh   (env: MACHINES=200 SPREAD=10s INITRD_MB=2 OUT=dir)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
MACHINES=${MACHINES:-200}
SPREAD=${SPREAD:-10s}
INITRD_MB=${INITRD_MB:-2}
log() { printf 'bench-database: %s\n' "$*" >&2; }
[[ $(id -u) == 0 ]] || { log "needs root (network namespaces)"; exit 1; }
command -v jq >/dev/null || { log "needs jq (apt-get install jq)"; exit 1; }
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
bin="$OUT/fleetboot"
(cd "$here" && CGO_ENABLED=0 go build -o "$bin" ./cmd/fleetboot)
log "$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); $MACHINES machines over $SPREAD; reports in $OUT"

run() { # NAME [serve args…]
	local name=$1
	shift
	"$bin" simulate --machines "$MACHINES" --spread "$SPREAD" --dhcp full --initrd-mb "$INITRD_MB" --quiet \
		--json "$OUT/$name.json" "$@" >"$OUT/$name.txt" 2>"$OUT/$name.err" || log "$name: run failed (see $OUT/$name.txt)"
	[[ -s $OUT/$name.json ]] || { log "no report for $name: $(tail -3 "$OUT/$name.err")"; exit 1; }
}
run sqlite
# with-postgres.sh's server, as a URL (the socket directory in host=).
export -f run log
export bin MACHINES SPREAD INITRD_MB OUT
bash "$here/scripts/with-postgres.sh" bash -c '
	host=$(sed -E "s/.*host=([^ ]+).*/\1/" <<<"$FLEETBOOT_TEST_POSTGRES")
	user=$(sed -E "s/.*user=([^ ]+).*/\1/" <<<"$FLEETBOOT_TEST_POSTGRES")
	run postgres "--serve-arg=--database=postgres://$user@/postgres?host=$host&sslmode=disable"'

printf '%-9s %8s %6s %10s %10s %10s %12s\n' backend wall_s failed dhcp_p50_s dhcp_p99_s script_p50_s script_p99_s
for name in sqlite postgres; do
	jq -r --arg n "$name" '[$n, .wall, .failed, .phases.dhcp.p50, .phases.dhcp.p99, .phases.script.p50, .phases.script.p99] | @tsv' "$OUT/$name.json" |
		awk -F'\t' '{printf "%-9s %8s %6s %10s %10s %10s %12s\n", $1, $2, $3, $4, $5, $6, $7}'
done
