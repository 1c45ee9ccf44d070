#!/usr/bin/env bash
# bench-tftp.sh — fleetboot's TFTP server against tftpd-hpa, on loopback, same file, same client.
#
# Both servers serve embed/ipxe/$FILE (default ipxe.efi, ~1 MiB): tftpd-hpa runs in the
# foreground (in.tftpd -L) from a private copy of the file, fleetboot's through the test binary
# of internal/tftp (TestServeForBench, which serves the embedded iPXE files as `fleetboot serve`
# does). Each server gets $SEQ downloads one after another and $SEQ downloads by $PAR parallel
# workers, with curl asking blksize $BLKSIZE and tsize (as UEFI firmware does). The work is
# split into $ROUNDS rounds that alternate between the servers, so load from other processes
# on the machine hits both alike. Reported: files/s, MiB/s, failures, fleetboot's CPU per file,
# and the fleetboot/tftpd-hpa throughput ratio (> 1: fleetboot is faster). tftpd-hpa's CPU is
# not reported: it forks a child per transfer with SIGCHLD ignored, so the children's CPU time
# is accounted nowhere we can read.
#
# Needs: go, curl (with TFTP, as Debian builds it), tftpd-hpa (apt-get install tftpd-hpa; its
# service need not run), ss (iproute2), and the iPXE binaries (scripts/fetch-ipxe.sh).
# Only loopback is used. Both servers are started here and stopped by their PIDs.
#
# Usage: scripts/bench-tftp.sh     (env: SEQ=200 PAR=20 ROUNDS=5 BLKSIZE=1468 FILE=ipxe.efi)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
FILE=${FILE:-ipxe.efi}
SEQ=${SEQ:-200}
PAR=${PAR:-20}
ROUNDS=${ROUNDS:-5}
BLKSIZE=${BLKSIZE:-1468}

log() { printf 'bench-tftp: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

for cmd in go curl ss in.tftpd sha256sum awk; do
	command -v "$cmd" >/dev/null || die "$cmd not found (tftpd-hpa: apt-get install tftpd-hpa)"
done
curl -V | grep -qw tftp || die "curl has no TFTP support"
src="$here/embed/ipxe/$FILE"
[[ -s $src ]] || die "$src missing: run scripts/fetch-ipxe.sh"
((SEQ > 0 && PAR > 0 && ROUNDS > 0 && SEQ % (ROUNDS * PAR) == 0)) ||
	die "SEQ ($SEQ) must be a positive multiple of ROUNDS × PAR ($ROUNDS × $PAR)"
per_round=$((SEQ / ROUNDS))

work=$(mktemp -d)
pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

# free_port prints a UDP port nothing on this machine listens on.
free_port() {
	local p i
	for ((i = 0; i < 100; i++)); do
		p=$((20000 + RANDOM % 40000))
		if ! ss -Hlun "sport = :$p" | grep -q .; then
			echo "$p"
			return
		fi
	done
	die "no free UDP port found"
}

# cpu_ticks prints user+system time of a process and its reaped children, in clock ticks.
cpu_ticks() {
	# After the ")" that ends the command name, fields 12-15 are utime stime cutime cstime.
	sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13 + $14 + $15}'
}

# wait_ready waits until a download from url succeeds.
wait_ready() {
	local i
	for ((i = 0; i < 100; i++)); do
		if curl -s --max-time 2 -o /dev/null "$1"; then
			return
		fi
		sleep 0.1
	done
	die "server at $1 never answered"
}

now() { date +%s.%N; }
add() { awk -v a="$1" -v b="$2" -v c="$3" 'BEGIN{printf "%.6f", a + c - b}'; } # a + (c - b)

# fetch url out: one download as firmware does it (tsize + blksize).
fetch() {
	curl -s --max-time 30 --tftp-blksize "$BLKSIZE" -o "$2" "$1"
}

# run_seq name url n: n downloads one after another.
run_seq() {
	local i
	for ((i = 0; i < $3; i++)); do
		fetch "$2" /dev/null || echo seq >>"$work/fails.$1"
	done
}

# run_par name url n: n downloads by PAR workers.
run_par() {
	local w workers=()
	for ((w = 0; w < PAR; w++)); do
		(
			for ((i = 0; i < $3 / PAR; i++)); do
				fetch "$2" /dev/null || echo par >>"$work/fails.$1"
			done
		) &
		workers+=($!)
	done
	for w in "${workers[@]}"; do
		wait "$w"
	done
}

# tftpd-hpa: -L foreground, -s chroot into the root, -B cap the block size like fleetboot.
# As root it drops to "nobody", so the root must be world-readable.
root="$work/root"
mkdir -p "$root"
cp "$src" "$root/$FILE"
chmod 755 "$work" "$root"
chmod 644 "$root/$FILE"
hpa_port=$(free_port)
in.tftpd -L -s "$root" -a "127.0.0.1:$hpa_port" -B 1468 2>"$work/tftpd.log" &
pids+=($!)

log "building internal/tftp test binary"
(cd "$here" && go test -c -o "$work/tftp.test" ./internal/tftp)
fb_port=$(free_port)
FLEETBOOT_TFTP_BENCH_ADDR="127.0.0.1:$fb_port" FLEETBOOT_TFTP_BENCH_READY="$work/ready" \
	"$work/tftp.test" -test.run '^TestServeForBench$' 2>"$work/fleetboot.log" >/dev/null &
fb_pid=$!
pids+=("$fb_pid")

declare -A url=([fleetboot]="tftp://127.0.0.1:$fb_port/$FILE" [tftpd-hpa]="tftp://127.0.0.1:$hpa_port/$FILE")
declare -A seq_s=([fleetboot]=0 [tftpd-hpa]=0) par_s=([fleetboot]=0 [tftpd-hpa]=0)
wait_ready "${url[tftpd-hpa]}"
wait_ready "${url[fleetboot]}"
[[ -s $work/ready ]] || die "fleetboot server did not report ready"

want=$(sha256sum <"$src" | cut -d' ' -f1)
for s in fleetboot tftpd-hpa; do
	fetch "${url[$s]}" "$work/check"
	[[ $(sha256sum <"$work/check" | cut -d' ' -f1) == "$want" ]] || die "$s served different bytes"
	: >"$work/fails.$s"
done

size=$(stat -c %s "$src")
log "$FILE ($size bytes), blksize $BLKSIZE, curl $(curl -V | awk 'NR==1{print $2}'), $(nproc) CPUs," \
	"load $(cut -d' ' -f1-3 /proc/loadavg)"
log "$SEQ sequential + $SEQ over $PAR parallel workers per server, in $ROUNDS alternating rounds"
c0=$(cpu_ticks "$fb_pid")
for ((r = 0; r < ROUNDS; r++)); do
	order=(fleetboot tftpd-hpa)
	((r % 2 == 0)) || order=(tftpd-hpa fleetboot)
	for s in "${order[@]}"; do
		t0=$(now)
		run_seq "$s" "${url[$s]}" "$per_round"
		seq_s[$s]=$(add "${seq_s[$s]}" "$t0" "$(now)")
	done
	for s in "${order[@]}"; do
		t0=$(now)
		run_par "$s" "${url[$s]}" "$per_round"
		par_s[$s]=$(add "${par_s[$s]}" "$t0" "$(now)")
	done
done
c1=$(cpu_ticks "$fb_pid")
log "load afterwards $(cut -d' ' -f1-3 /proc/loadavg)"

printf '%-10s %12s %12s %10s %10s %12s %9s\n' server seq_files/s par_files/s seq_MiB/s par_MiB/s cpu_ms/file failures
for s in fleetboot tftpd-hpa; do
	cpu=n/a
	[[ $s == fleetboot ]] && cpu=$(awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v n=$((2 * SEQ)) \
		'BEGIN{printf "%.2f", t * 1000 / hz / n}')
	awk -v s="$s" -v n="$SEQ" -v a="${seq_s[$s]}" -v b="${par_s[$s]}" -v size="$size" -v cpu="$cpu" \
		-v f="$(wc -l <"$work/fails.$s")" 'BEGIN{
		printf "%-10s %12.2f %12.2f %10.1f %10.1f %12s %9d\n", s, n/a, n/b, n*size/a/1048576, n*size/b/1048576, cpu, f }'
done
awk -v fa="${seq_s[fleetboot]}" -v fb="${par_s[fleetboot]}" -v ha="${seq_s[tftpd-hpa]}" -v hb="${par_s[tftpd-hpa]}" 'BEGIN{
	printf "ratio fleetboot/tftpd-hpa (throughput, > 1 is faster): sequential %.2fx, parallel %.2fx\n", ha/fa, hb/fb }'
fails=$(cat "$work"/fails.* | wc -l)
((fails == 0)) || die "$fails downloads failed"
