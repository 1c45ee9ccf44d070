#!/usr/bin/env bash
# bench-tftp.sh — fleetboot's TFTP server against dnsmasq's (--enable-tftp), side by side in one
# run, same file, same client, in network namespaces this script creates.
#
# Two namespaces (unique names, deleted on exit) are joined by a veth pair (MTU 1500, as on a
# real boot network, so the largest block is 1468 bytes): the server side holds 10.215.0.1
# (fleetboot: the real `fleetboot serve --dhcp off`, serving its embedded iPXE binaries) and
# 10.215.0.3 (dnsmasq --enable-tftp serving a copy of the same file), both on port 69, both
# started at once and pinned to CPU $SERVER_CPU (taskset); curl, the client, runs in the other
# namespace pinned to $LOAD_CPU. curl asks for tsize and blksize, as UEFI firmware does.
# Both servers log each transfer as they do by default (fleetboot at info, dnsmasq's "sent").
#
# Workloads, each over $ROUNDS rounds that alternate which server goes first (load from other
# processes on the machine then hits both alike):
#   seq512    $SEQ downloads one after another, blksize 512 (BIOS PXE ROMs ask no blksize)
#   seq1468   $SEQ downloads one after another, blksize 1468 (EDK2's request)
#   par       $CLIENTS concurrent clients, each $PER downloads in a row, blksize 1468
# Reported per server and workload: MB/s (10^6 bytes), server CPU ms per MB (utime+stime from
# /proc/PID/stat of the server process; dnsmasq serves TFTP in its one process), context
# switches per MB (voluntary and involuntary, summed over the process's threads: a lock-step
# transfer sleeps once per block, and every extra thread woken per block shows here) and failures
# (curl errors, e.g. exit 28 for a download not done within 60 s, or a short download); then
# fleetboot/dnsmasq ratios: throughput (> 1: fleetboot faster) and CPU per MB (< 1: fleetboot
# cheaper), over the whole run and as the range of the per-round ratios. The script exits
# non-zero on any failure, after saying what the failures were.
#
# Needs root (namespaces), iproute2, taskset, curl with TFTP (Debian's has it), dnsmasq
# (dnsmasq-base), go, the iPXE binaries (scripts/fetch-ipxe.sh), and for PERF_OUT perf
# (linux-perf). Nothing leaves the namespaces; both servers are started here and stopped by
# their PIDs.
#
# Usage: sudo scripts/bench-tftp.sh   (env: FILE=ipxe.efi SEQ=20 CLIENTS=100 PER=2 ROUNDS=3
#                                      WORKLOADS="seq512 seq1468 par" SERVER_CPU=0 LOAD_CPU=1
#                                      PERF_OUT=file: perf record fleetboot's process meanwhile,
#                                      or PERF_SERVER=dnsmasq's;
#                                      FLEETBOOT_GODEBUG=...: GODEBUG for fleetboot's process, an
#                                      experiment only, e.g. schedtrace=2147483647 keeps Go's
#                                      sysmon thread polling instead of sleeping until the next
#                                      system call wakes it — see docs/benchmarks.md)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
FILE=${FILE:-ipxe.efi}
SEQ=${SEQ:-20}
CLIENTS=${CLIENTS:-100}
PER=${PER:-2}
ROUNDS=${ROUNDS:-3}
WORKLOADS=${WORKLOADS:-seq512 seq1468 par}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
((($(nproc)) > 1)) || LOAD_CPU=0

log() { printf 'bench-tftp: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}
[[ $(id -u) == 0 ]] || die "needs root (network namespaces)"
for c in ip taskset curl dnsmasq go awk sha256sum ss getconf; do
	command -v "$c" >/dev/null || die "$c not found (apt-get install iproute2 util-linux curl dnsmasq-base)"
done
curl -V | grep -qw tftp || die "curl has no TFTP support"
src="$here/embed/ipxe/$FILE"
[[ -s $src ]] || die "$src missing: run scripts/fetch-ipxe.sh"
((SEQ > 0 && CLIENTS > 0 && PER > 0 && ROUNDS > 0)) || die "SEQ, CLIENTS, PER and ROUNDS must be positive"

work=$(mktemp -d)
chmod 755 "$work"
id="$$-$RANDOM"
nss="fbtftpb-$id-s" nsc="fbtftpb-$id-c"
ifs="fbtbs${id: -5}" ifc="fbtbc${id: -5}"
declare -A pid
cleanup() {
	local p
	for p in "${pid[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pid[@]}"; do wait "$p" 2>/dev/null || true; done
	ip netns del "$nss" 2>/dev/null || true
	ip netns del "$nsc" 2>/dev/null || true
	if [[ -n ${KEEP:-} ]]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$nss"
ip netns add "$nsc"
ip link add "$ifs" netns "$nss" type veth peer name "$ifc" netns "$nsc"
ip -n "$nss" addr add 10.215.0.1/24 dev "$ifs"
ip -n "$nss" addr add 10.215.0.3/24 dev "$ifs"
ip -n "$nsc" addr add 10.215.0.2/24 dev "$ifc"
for ns in "$nss" "$nsc"; do ip -n "$ns" link set lo up; done
ip -n "$nss" link set "$ifs" up
ip -n "$nsc" link set "$ifc" up

log "building fleetboot"
(cd "$here" && CGO_ENABLED=0 go build -o "$work/fleetboot" ./cmd/fleetboot)

declare -A addr=([fleetboot]=10.215.0.1 [dnsmasq]=10.215.0.3)
mkdir -p "$work/fleetboot.d" "$work/dnsmasq.d" "$work/root"
cp "$src" "$work/root/$FILE"
chmod 755 "$work/root" && chmod 644 "$work/root/$FILE"
ip netns exec "$nss" env ${FLEETBOOT_GODEBUG:+GODEBUG="$FLEETBOOT_GODEBUG"} taskset -c "$SERVER_CPU" "$work/fleetboot" serve --data "$work/fleetboot.d" --interface "$ifs" \
	--advertise-ip 10.215.0.1 --http 10.215.0.1:8080 --dhcp off --tftp 10.215.0.1:69 \
	>"$work/fleetboot.log" 2>&1 &
pid[fleetboot]=$!
# --tftp-max: dnsmasq refuses transfers beyond 50 at once by default.
ip netns exec "$nss" taskset -c "$SERVER_CPU" dnsmasq --no-daemon --port=0 --listen-address=10.215.0.3 \
	--bind-interfaces --enable-tftp --tftp-root="$work/root" --tftp-max=1000 --pid-file="$work/dnsmasq.d/pid" \
	--log-facility="$work/dnsmasq.log" --user=root --group=root >"$work/dnsmasq.out" 2>&1 &
pid[dnsmasq]=$!

onclient() { ip netns exec "$nsc" taskset -c "$LOAD_CPU" "$@"; }
url() { echo "tftp://${addr[$1]}/$FILE"; }
want=$(sha256sum <"$src" | cut -d' ' -f1)
size=$(stat -c %s "$src")
for s in fleetboot dnsmasq; do
	ok=
	for ((i = 0; i < 100; i++)); do
		if onclient curl -s --max-time 2 --tftp-blksize 1468 -o "$work/check.$s" "$(url "$s")"; then
			ok=1
			break
		fi
		kill -0 "${pid[$s]}" 2>/dev/null || die "$s exited: $(tail -5 "$work/$s.log" "$work/$s.out" 2>/dev/null)"
		sleep 0.1
	done
	[[ -n $ok ]] || die "$s never answered"
	[[ $(sha256sum <"$work/check.$s" | cut -d' ' -f1) == "$want" ]] || die "$s served different bytes"
done

# cpu_ticks NAME: user+system clock ticks of the server process so far (all its threads).
cpu_ticks() { sed 's/.*) //' "/proc/${pid[$1]}/stat" | awk '{print $12 + $13}'; }
now() { date +%s.%N; }
# cswitches NAME: context switches of the server process so far, summed over its threads (Go's
# threads live as long as the process, so none takes its count away by exiting).
cswitches() {
	cat "/proc/${pid[$1]}"/task/*/status 2>/dev/null |
		awk '/^(voluntary|nonvoluntary)_ctxt_switches:/ {n += $2} END {printf "%d", n}'
}

# fetch_loop NAME BLKSIZE N FILE: N downloads in a row. Each adds the bytes it received to
# FILE.bytes (one line); a curl error or a short file is a failure (one line in FILE).
fetch_loop() {
	local i got rc
	for ((i = 0; i < $3; i++)); do
		rc=0
		got=$(curl -s --max-time 60 --tftp-blksize "$2" -o /dev/null -w '%{size_download}' "$(url "$1")") || rc=$?
		echo "${got:-0}" >>"$4.bytes"
		if ((rc != 0)); then
			echo "curl exit $rc" >>"$4" # 28: not done within --max-time
		elif [[ $got != "$size" ]]; then
			echo "short download" >>"$4"
		fi
	done
}
export -f fetch_loop url
export FILE size

# run NAME WORKLOAD: one round of the workload against one server; adds to the totals.
# MB/s and CPU per MB count the bytes received, so that failed downloads do not flatter a server.
declare -A secs bytes ticks fails rsecs rticks rbytes csw
run() {
	local s=$1 w=$2 f="$work/fails.$1.$2" t0 t1 c0 c1 b x0 x1
	: >>"$f"
	rm -f "$f.bytes"
	x0=$(cswitches "$s")
	c0=$(cpu_ticks "$s")
	t0=$(now)
	case $w in
	seq512) onclient bash -c "$(declare -p addr); fetch_loop $s 512 $SEQ $f" ;;
	seq1468) onclient bash -c "$(declare -p addr); fetch_loop $s 1468 $SEQ $f" ;;
	par)
		onclient bash -c "$(declare -p addr)"'
			for ((c = 0; c < '"$CLIENTS"'; c++)); do fetch_loop '"$s 1468 $PER $f"' & done; wait'
		;;
	*) die "unknown workload $w" ;;
	esac
	t1=$(now)
	c1=$(cpu_ticks "$s")
	x1=$(cswitches "$s")
	csw[$s,$w]=$((${csw[$s,$w]:-0} + x1 - x0))
	secs[$s,$w]=$(awk -v a="${secs[$s,$w]:-0}" -v b="$t0" -v c="$t1" 'BEGIN{printf "%.6f", a + c - b}')
	b=$(awk '{n += $1} END {printf "%d", n}' "$f.bytes")
	((b > 0)) || die "$s: no bytes at all in $w"
	bytes[$s,$w]=$((${bytes[$s,$w]:-0} + b))
	rbytes[$s,$w,$r]=$b
	ticks[$s,$w]=$((${ticks[$s,$w]:-0} + c1 - c0))
	fails[$s,$w]=$(wc -l <"$f")
	rsecs[$s,$w,$r]=$(awk -v b="$t0" -v c="$t1" 'BEGIN{printf "%.6f", c - b}')
	rticks[$s,$w,$r]=$((c1 - c0))
}

if [[ -n ${PERF_OUT:-} ]]; then
	# Profile one server's process for the whole run (its share of each round).
	perf record -q -F 1999 -g -p "${pid[${PERF_SERVER:-fleetboot}]}" -o "$PERF_OUT" 2>"$work/perf.log" &
	pid[perf]=$!
fi
[[ -z ${FLEETBOOT_GODEBUG:-} ]] || log "EXPERIMENT: fleetboot runs with GODEBUG=$FLEETBOOT_GODEBUG"
log "$FILE ($size bytes), curl $(curl -V | awk 'NR==1{print $2}'), dnsmasq $(dnsmasq --version | awk 'NR==1{print $3}')," \
	"$(nproc) CPUs, servers on CPU $SERVER_CPU, client on CPU $LOAD_CPU, load $(cut -d' ' -f1-3 /proc/loadavg)"
log "per round: seq* $SEQ downloads in a row, par $CLIENTS clients × $PER downloads; $ROUNDS rounds"
for ((r = 0; r < ROUNDS; r++)); do
	order=(fleetboot dnsmasq)
	((r % 2 == 0)) || order=(dnsmasq fleetboot)
	for w in $WORKLOADS; do
		for s in "${order[@]}"; do
			run "$s" "$w"
		done
	done
	log "round $((r + 1)) of $ROUNDS done, load $(cut -d' ' -f1-3 /proc/loadavg)"
done
for s in fleetboot dnsmasq; do kill -0 "${pid[$s]}" 2>/dev/null || die "$s died during the run"; done
if [[ -n ${pid[perf]:-} ]]; then
	kill -INT "${pid[perf]}" && wait "${pid[perf]}" || true
	unset 'pid[perf]'
	log "perf profile of ${PERF_SERVER:-fleetboot} in $PERF_OUT (perf report -i $PERF_OUT --no-children)"
fi

hz=$(getconf CLK_TCK)
mbps() { awk -v b="${bytes[$1,$2]}" -v t="${secs[$1,$2]}" 'BEGIN{printf "%.2f", b / t / 1e6}'; }
cpumb() { awk -v k="${ticks[$1,$2]}" -v hz="$hz" -v b="${bytes[$1,$2]}" 'BEGIN{printf "%.2f", k * 1000 / hz / (b / 1e6)}'; }
cswmb() { awk -v k="${csw[$1,$2]}" -v b="${bytes[$1,$2]}" 'BEGIN{printf "%.0f", k / (b / 1e6)}'; }
# spread WORKLOAD: "min–max" of the per-round throughput and CPU-per-byte ratios.
spread() {
	local r tr=() cr=()
	for ((r = 0; r < ROUNDS; r++)); do
		set -- "$1" "${rbytes[fleetboot,$1,$r]}" "${rbytes[dnsmasq,$1,$r]}"
		tr+=("$(awk -v f="${rsecs[fleetboot,$1,$r]}" -v d="${rsecs[dnsmasq,$1,$r]}" -v fb="$2" -v db="$3" \
			'BEGIN{printf "%.2f", (fb / f) / (db / d)}')")
		cr+=("$(awk -v f="${rticks[fleetboot,$1,$r]}" -v d="${rticks[dnsmasq,$1,$r]}" -v fb="$2" -v db="$3" \
			'BEGIN{ if (d > 0) printf "%.2f", (f / fb) / (d / db); else print "inf" }')")
	done
	printf '%s–%s× | %s–%s×' "$(printf '%s\n' "${tr[@]}" | sort -g | head -1)" "$(printf '%s\n' "${tr[@]}" | sort -g | tail -1)" \
		"$(printf '%s\n' "${cr[@]}" | sort -g | head -1)" "$(printf '%s\n' "${cr[@]}" | sort -g | tail -1)"
}
printf '\n| workload | fleetboot MB/s | dnsmasq MB/s | throughput ratio | fleetboot CPU ms/MB | dnsmasq CPU ms/MB | CPU ratio | rounds: throughput ratio | rounds: CPU ratio | context switches per MB (fb/dnsmasq) | failures (fb/dnsmasq) |\n'
printf '|---|---|---|---|---|---|---|---|---|---|---|\n'
total_fails=0
for w in $WORKLOADS; do
	fm=$(mbps fleetboot "$w") dm=$(mbps dnsmasq "$w") fc=$(cpumb fleetboot "$w") dc=$(cpumb dnsmasq "$w")
	printf '| %s | %s | %s | %s× | %s | %s | %s× | %s | %s/%s | %s/%s |\n' "$w" "$fm" "$dm" \
		"$(awk -v a="$fm" -v b="$dm" 'BEGIN{printf "%.2f", a / b}')" "$fc" "$dc" \
		"$(awk -v a="$fc" -v b="$dc" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "n/a" }')" \
		"$(spread "$w")" "$(cswmb fleetboot "$w")" "$(cswmb dnsmasq "$w")" "${fails[fleetboot,$w]}" "${fails[dnsmasq,$w]}"
	total_fails=$((total_fails + fails[fleetboot,$w] + fails[dnsmasq,$w]))
done
echo "(throughput ratio fleetboot/dnsmasq, > 1: fleetboot faster; CPU ratio, < 1: fleetboot cheaper per MB)"
if ((total_fails > 0)); then
	for f in "$work"/fails.*; do
		[[ $f == *.bytes ]] && continue # received byte counts, not failures
		[[ -s $f ]] && log "failures ${f##*/fails.}: $(sort "$f" | uniq -c | sort -rn | head -3 | awk '{$1 = $1 "×"; print}' | paste -sd';')"
	done
	# What the servers said about it (curl's exit 68 is any TFTP error code 1 from the server,
	# which pin/tftp also sends when it gives up on a silent client).
	log "fleetboot's failed transfers: $(grep -o 'msg="tftp \(transfer failed\|refused\)".* err=.*' "$work/fleetboot.log" |
		sed 's/.* err=//; s/[0-9][0-9]*/N/g' | sort | uniq -c | sort -rn | head -3 | awk '{$1 = $1 "×"; print}' | paste -sd';')"
	log "dnsmasq's failed transfers: $(grep -i 'failed\|error' "$work/dnsmasq.log" | sed 's/.*dnsmasq-tftp\[[0-9]*\]: //; s/[0-9][0-9]*/N/g' |
		sort | uniq -c | sort -rn | head -3 | awk '{$1 = $1 "×"; print}' | paste -sd';')"
	die "$total_fails downloads failed"
fi
