#!/usr/bin/env bash
# bench-simulate.sh — fleet simulator at growing fleet sizes: does the server's cost grow linearly?
#
# Runs `fleetboot simulate` (as root: it creates its own network namespaces) for each size in
# $SIZES with the same power-on rate ($RATE machines per second: the spread grows with the
# fleet) and the same payload (Debian's installer kernel + a $INITRD_MB MiB initrd), and prints
# per size: wall time, failures, the server's CPU seconds and CPU per machine, MB sent, and the
# p99 of the script, kernel and initrd phases. Linear cost means CPU per machine stays flat.
# Each run's JSON report is kept in $OUT (default: a temporary directory, printed).
#
# Usage: sudo scripts/bench-simulate.sh   (env: SIZES="250 500 1000" RATE=20 INITRD_MB=8 DHCP=full OUT=dir)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
SIZES=${SIZES:-250 500 1000}
RATE=${RATE:-20}
INITRD_MB=${INITRD_MB:-8}
DHCP=${DHCP:-full}
log() { printf 'bench-simulate: %s\n' "$*" >&2; }
[[ $(id -u) == 0 ]] || { log "needs root (network namespaces)"; exit 1; }
command -v jq >/dev/null || { log "needs jq (apt-get install jq)"; exit 1; }
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
bin="$OUT/fleetboot"
(cd "$here" && CGO_ENABLED=0 go build -o "$bin" ./cmd/fleetboot)
log "$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); reports in $OUT"

rows=()
for n in $SIZES; do
	spread=$(awk -v n="$n" -v r="$RATE" 'BEGIN{printf "%.1fs", n / r}')
	log "$n machines, spread $spread, DHCP $DHCP"
	"$bin" simulate --machines "$n" --spread "$spread" --dhcp "$DHCP" --initrd-mb "$INITRD_MB" --quiet \
		--json "$OUT/sim-$n.json" >"$OUT/sim-$n.txt" 2>"$OUT/sim-$n.err" || log "$n machines: run failed (see $OUT/sim-$n.txt)"
	[[ -s $OUT/sim-$n.json ]] || { log "no report for $n machines: $(tail -3 "$OUT/sim-$n.err")"; exit 1; }
	rows+=("$(jq -r --arg n "$n" '[$n, .wall, .failed, .server_cpu, (.server_cpu / .machines * 1000), (.bytes / 1e6),
		.phases.script.p99, .phases.kernel.p99, .phases.initrd.p99, .server_installed] |
		"\(.[0]) \(.[1]) \(.[2]) \(.[3]) \(.[4]) \(.[5]) \(.[6]) \(.[7]) \(.[8]) \(.[9])"' "$OUT/sim-$n.json")")
done
log "load afterwards $(cut -d' ' -f1-3 /proc/loadavg)"

printf '\n| machines | wall s | failed | server CPU s | CPU ms / machine | MB sent | script p99 s | kernel p99 s | initrd p99 s | installed |\n'
printf '|---|---|---|---|---|---|---|---|---|---|\n'
for r in "${rows[@]}"; do
	awk '{printf "| %d | %.1f | %d | %.2f | %.1f | %.0f | %.3f | %.3f | %.3f | %d |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10}' <<<"$r"
done
first=${rows[0]} last=${rows[-1]}
awk -v a="$first" -v b="$last" 'BEGIN{split(a, x, " "); split(b, y, " ");
	printf "\nCPU per machine at %d machines / at %d: %.2f (1.00 = linear growth of total cost)\n", y[1], x[1], y[5] / x[5]}'
