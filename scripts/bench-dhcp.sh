#!/usr/bin/env bash
# bench-dhcp.sh — DHCP rate side by side: fleetboot full mode, fleetboot proxy mode, ISC Kea
# (memfile leases persisted) and dnsmasq, driven by Kea's perfdhcp, in one run.
#
# Creates a pair of network namespaces (unique names, deleted on exit) joined by a veth pair:
# the server side holds 10.214.0.1/16, perfdhcp runs on the client side. Each server in turn
# is started there pinned to CPU $SERVER_CPU (taskset), perfdhcp pinned to $LOAD_CPU, and for
# every offered rate in $RATES perfdhcp runs $DUR seconds of full DORA exchanges (proxy mode:
# DISCOVER/OFFER only, with PXE options 60 and 93, as ProxyDHCP answers nothing else) from
# $CLIENTS distinct MACs. Every server starts from an empty lease database for each rate.
# Reported per server and rate: completed exchanges per second, % incomplete (exchanges
# perfdhcp started, DISCOVERs sent, that got no ACK — proxy: no OFFER), server CPU seconds
# and per completed exchange, and the ratios to Kea at the same offered rate (completed
# rate; CPU per exchange, lower is better).
# $ROUNDS rounds alternate the server order; medians are printed.
#
# Needs root, iproute2, perfdhcp (Debian kea-admin), kea-dhcp4 (kea-dhcp4-server),
# dnsmasq (dnsmasq-base), go. Nothing leaves the namespaces.
#
# Usage: sudo scripts/bench-dhcp.sh   (env: RATES="1000 3000 6000" DUR=10 CLIENTS=50000 ROUNDS=1
#                                      SERVERS="fleetboot-full fleetboot-proxy kea dnsmasq"
#                                      PROFILE=1: perf record each fleetboot run, report in the
#                                      work directory; KEEP=1 keeps that directory)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
RATES=${RATES:-1000 3000 6000}
DUR=${DUR:-10}
CLIENTS=${CLIENTS:-50000}
ROUNDS=${ROUNDS:-1}
SERVERS=${SERVERS:-fleetboot-full fleetboot-proxy kea dnsmasq}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
((($(nproc)) > 1)) || LOAD_CPU=0

log() { printf 'bench-dhcp: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}
[[ $(id -u) == 0 ]] || die "needs root (network namespaces)"
for c in ip perfdhcp kea-dhcp4 dnsmasq taskset go awk; do
	command -v "$c" >/dev/null || die "$c not found (apt-get install iproute2 kea-admin kea-dhcp4-server dnsmasq-base)"
done

work=$(mktemp -d)
id="$$-$RANDOM"
nss="fbdhcpb-$id-s" nsc="fbdhcpb-$id-c"
ifs="fbdbs${id: -5}" ifc="fbdbc${id: -5}"
srv_pid=
cleanup() {
	[[ -n $srv_pid ]] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid" 2>/dev/null
	ip netns del "$nss" 2>/dev/null || true
	ip netns del "$nsc" 2>/dev/null || true
	if [[ -n ${KEEP:-} ]]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$nss"
ip netns add "$nsc"
ip link add "$ifs" netns "$nss" type veth peer name "$ifc" netns "$nsc"
ip -n "$nss" addr add 10.214.0.1/16 dev "$ifs"
ip -n "$nsc" addr add 10.214.0.2/16 dev "$ifc"
for ns in "$nss" "$nsc"; do ip -n "$ns" link set lo up; done
ip -n "$nss" link set "$ifs" up
ip -n "$nsc" link set "$ifc" up
ip netns exec "$nss" sysctl -qw net.ipv4.neigh.default.gc_thresh3=65536 || true

log "building fleetboot"
(cd "$here" && CGO_ENABLED=0 go build -o "$work/fleetboot" ./cmd/fleetboot)

pool_start=10.214.1.0 pool_end=10.214.254.254
# start_server NAME: starts it in the server namespace (pinned), sets srv_pid, waits until it listens.
start_server() {
	local d="$work/$1"
	rm -rf "$d"
	mkdir -p "$d"
	case $1 in
	fleetboot-full | fleetboot-proxy)
		local mode=${1#fleetboot-} extra=()
		[[ $mode == full ]] && extra=(--pool "$pool_start-$pool_end" --netmask 255.255.0.0 --router 10.214.0.1)
		ip netns exec "$nss" taskset -c "$SERVER_CPU" "$work/fleetboot" serve --data "$d" --interface "$ifs" \
			--advertise-ip 10.214.0.1 --http 10.214.0.1:8080 --tftp off --dhcp "$mode" --log-level "${FB_LOG_LEVEL:-warn}" "${extra[@]}" \
			>"$d/log" 2>&1 &
		;;
	kea)
		cat >"$d/kea.json" <<JSON
{ "Dhcp4": {
  "interfaces-config": { "interfaces": [ "$ifs" ], "dhcp-socket-type": "raw" },
  "lease-database": { "type": "memfile", "persist": true, "name": "$d/leases.csv", "lfc-interval": 0 },
  "valid-lifetime": 3600,
  "subnet4": [ { "id": 1, "subnet": "10.214.0.0/16", "pools": [ { "pool": "$pool_start - $pool_end" } ],
                 "option-data": [ { "name": "routers", "data": "10.214.0.1" } ] } ],
  "loggers": [ { "name": "kea-dhcp4", "severity": "WARN", "output_options": [ { "output": "$d/kea.log" } ] } ]
} }
JSON
		KEA_LOCKFILE_DIR=$d KEA_PIDFILE_DIR=$d ip netns exec "$nss" taskset -c "$SERVER_CPU" kea-dhcp4 -c "$d/kea.json" >"$d/log" 2>&1 &
		;;
	dnsmasq)
		ip netns exec "$nss" taskset -c "$SERVER_CPU" dnsmasq --no-daemon --port=0 --interface="$ifs" --bind-interfaces \
			--dhcp-range="$pool_start,$pool_end,255.255.0.0,1h" --dhcp-lease-max=1000000 --dhcp-leasefile="$d/leases" \
			--pid-file="$d/pid" --log-facility="$d/log" --dhcp-authoritative --no-ping --quiet-dhcp --user=root --group=root >"$d/out" 2>&1 &
		;;
	esac
	srv_pid=$!
	local i
	for ((i = 0; i < 100; i++)); do
		ip netns exec "$nss" ss -Hlun 'sport = :67' | grep -q . && { sleep 0.3; return; }
		sleep 0.1
	done
	die "$1 did not start listening on port 67: $(tail -5 "$d/log" 2>/dev/null)"
}
stop_server() {
	kill "$srv_pid" 2>/dev/null || true
	wait "$srv_pid" 2>/dev/null || true
	srv_pid=
}
# cpu_ticks of srv_pid (ip netns exec and taskset exec the server: the PID is the server's).
cpu_ticks() { sed 's/.*) //' "/proc/$srv_pid/stat" | awk '{print $12 + $13}'; }

# run_perf NAME RATE: prints "completed_per_s incomplete_pct cpu_s".
run_perf() {
	local name=$1 rate=$2 args=() out c0 c1
	[[ $name == fleetboot-proxy ]] && args=(-i -o 60,505845436c69656e743a417263683a30303030373a554e44493a303033303136 -o 93,0007)
	c0=$(cpu_ticks)
	local perf_pid=
	if [[ -n ${PROFILE:-} ]]; then
		perf record -F 999 -g -p "$srv_pid" -o "$work/perf.data.$name.$rate" -- sleep "$DUR" >/dev/null 2>&1 &
		perf_pid=$!
	fi
	out=$(ip netns exec "$nsc" taskset -c "$LOAD_CPU" perfdhcp -4 -g single -l "$ifc" -r "$rate" -R "$CLIENTS" -p "$DUR" \
		-d 2 "${args[@]}" 2>&1) || true
	c1=$(cpu_ticks)
	if [[ -n $perf_pid ]]; then
		wait "$perf_pid" || true
		perf report -i "$work/perf.data.$name.$rate" --no-children --percent-limit 1 --stdio -g none \
			>"$work/profile.$name.$rate.txt" 2>/dev/null || true
		log "  profile of $name at $rate/s: $work/profile.$name.$rate.txt"
	fi
	echo "$out" >"$work/perf.$name.$rate.$RANDOM"
	# Exchanges started: the first section's sent packets (DISCOVERs); completed: the last
	# section's received packets (ACKs for DORA, OFFERs with -i). Incomplete counts both a
	# DISCOVER and a REQUEST left unanswered.
	awk -v dur="$DUR" -v ticks="$((c1 - c0))" -v hz="$(getconf CLK_TCK)" '
		/sent packets:/ && sent == "" {sent = $3}
		/received packets:/ {recv = $3}
		END { if (sent == 0) { print "0 100 0"; exit }
			printf "%.0f %.1f %.2f\n", recv / dur, (sent - recv) * 100 / sent, ticks / hz }' <<<"$out"
}

log "$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); servers on CPU $SERVER_CPU, perfdhcp on CPU $LOAD_CPU"
declare -A res
for ((r = 0; r < ROUNDS; r++)); do
	order=($SERVERS)
	((r % 2 == 0)) || mapfile -t order < <(printf '%s\n' $SERVERS | tac)
	for s in "${order[@]}"; do
		for rate in $RATES; do
			start_server "$s"
			read -r done_s inc cpu < <(run_perf "$s" "$rate")
			stop_server
			log "  $s at $rate/s offered: $done_s/s completed, $inc % incomplete, server CPU ${cpu}s"
			res[$s,$rate]+=" $done_s:$inc:$cpu"
		done
	done
done
log "load afterwards $(cut -d' ' -f1-3 /proc/loadavg)"

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
field() { local x out=(); for x in $1; do out+=("$(cut -d: -f"$2" <<<"$x")"); done; median "${out[@]}"; }
# CPU per exchange: server CPU seconds over the exchanges completed (µs); on a loaded machine,
# where perfdhcp may not reach the offered rate, it compares servers better than the rate.
per_exchange() { awk -v c="$1" -v d="$2" -v dur="$DUR" 'BEGIN{ if (d > 0) printf "%.0f", c * 1e6 / (d * dur); else print "n/a" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a != "n/a" && b != "n/a" && b > 0) printf "%.2f", a / b; else print "n/a" }'; }
printf '\n| server | offered/s | completed/s | incomplete %% | server CPU s | CPU µs / exchange | rate ratio to Kea | CPU / exchange ratio to Kea |\n|---|---|---|---|---|---|---|---|\n'
for s in $SERVERS; do
	for rate in $RATES; do
		v=${res[$s,$rate]} k=${res[kea,$rate]:-}
		d=$(field "$v" 1) cpu=$(field "$v" 3)
		us=$(per_exchange "$cpu" "$d")
		rr=n/a cr=n/a
		if [[ -n $k ]]; then
			kd=$(field "$k" 1)
			rr=$(ratio "$d" "$kd")
			cr=$(ratio "$us" "$(per_exchange "$(field "$k" 3)" "$kd")")
		fi
		printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$s" "$rate" "$d" "$(field "$v" 2)" "$cpu" "$us" "$rr" "$cr"
	done
done
echo "(proxy mode: DISCOVER → OFFER only; the others: full DISCOVER/OFFER/REQUEST/ACK)"
