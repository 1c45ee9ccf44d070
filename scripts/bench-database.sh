#!/usr/bin/env bash
# bench-database.sh — the same simulated fleet against fleetboot on SQLite (the default) and on
# PostgreSQL (--database), side by side: DHCP (the firmware's DORA, full mode: every offer is a
# lease write) and boot-script latency, plus wall time and failures.
#
# Runs `fleetboot simulate` (root: network namespaces) twice with the same fleet, once with the
# default SQLite file and once with --serve-arg=--database=… on a throwaway PostgreSQL cluster
# (scripts/with-postgres.sh; the server in its namespace reaches it through the unix socket).
# Prints one row per backend and run — DHCP (the firmware's DORA: the rate is MACHINES over
# SPREAD; p50/p99 say how fast each was answered), boot-script p50/p99, the server's CPU
# seconds — and the PostgreSQL/SQLite ratios of each run. Figures depend on the machine and its
# load: compare the two rows of one run, not runs on different machines; RUNS=3 repeats the
# pair to show the spread.
#
# Usage: sudo scripts/bench-database.sh   (env: MACHINES=200 SPREAD=10s INITRD_MB=2 RUNS=1 OUT=dir)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
MACHINES=${MACHINES:-200}
SPREAD=${SPREAD:-10s}
INITRD_MB=${INITRD_MB:-2}
RUNS=${RUNS:-1}
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
for r in $(seq 1 "$RUNS"); do
	run "sqlite-$r"
	# with-postgres.sh's server, as a URL (the socket directory in host=); a fresh cluster per run.
	export -f run log
	export bin MACHINES SPREAD INITRD_MB OUT r
	bash "$here/scripts/with-postgres.sh" bash -c '
		host=$(sed -E "s/.*host=([^ ]+).*/\1/" <<<"$FLEETBOOT_TEST_POSTGRES")
		user=$(sed -E "s/.*user=([^ ]+).*/\1/" <<<"$FLEETBOOT_TEST_POSTGRES")
		run "postgres-$r" "--serve-arg=--database=postgres://$user@/postgres?host=$host&sslmode=disable"'
done

printf '%-11s %7s %6s %8s %10s %10s %12s %12s %6s\n' backend wall_s failed dora/s dhcp_p50_s dhcp_p99_s script_p50_s script_p99_s cpu_s
row() { # the DORA rate is the firmware DHCP exchanges the fleet made, over the power-on spread
	jq -r --arg n "$1" '[$n, .wall, .failed, (.phases.dhcp.count / .power_on_spread * 10 | round / 10),
		.phases.dhcp.p50, .phases.dhcp.p99, .phases.script.p50, .phases.script.p99, .server_cpu] | @tsv' "$OUT/$1.json" |
		awk -F'\t' '{printf "%-11s %7s %6s %8s %10s %10s %12s %12s %6s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9}'
}
for r in $(seq 1 "$RUNS"); do
	row "sqlite-$r"
	row "postgres-$r"
	jq -rn --arg r "$r" --slurpfile s "$OUT/sqlite-$r.json" --slurpfile p "$OUT/postgres-$r.json" \
		'def q(a; b): if b > 0 then (a / b * 10 | round / 10 | tostring) + "x" else "-" end;
		"  run \($r) postgres/sqlite: dhcp p50 \(q($p[0].phases.dhcp.p50; $s[0].phases.dhcp.p50)) p99 \(q($p[0].phases.dhcp.p99; $s[0].phases.dhcp.p99)), script p50 \(q($p[0].phases.script.p50; $s[0].phases.script.p50)) p99 \(q($p[0].phases.script.p99; $s[0].phases.script.p99)), cpu \(q($p[0].server_cpu; $s[0].server_cpu))"'
done
