#!/usr/bin/env bash
# bench-http.sh — fleetboot's HTTP ISO serving and upload against nginx (and dd), on loopback.
#
# One run builds a test ISO with xorriso (a $BIG_MB MiB file, a $MID_MB MiB file and random
# filler up to $UPLOAD_MB MiB; all pseudo-random data from shred's ISAAC generator, which
# neither compresses nor dedups), uploads it to fleetboot $REPS times with `curl -T` against
# `dd conv=fsync` of the same file to the same disk, then serves the two files from the ISO
# with fleetboot (GET /isos/{id}/files/<path>) and, extracted with xorriso, with nginx
# (sendfile on, tcp_nopush off as by default, access_log off: fleetboot logs no per-request
# lines at info level either).
# Every measurement runs $REPS times per server, alternating which server goes first, and the
# median is reported:
#   1. one 1 GiB stream: curl's download speed, and the server CPU seconds it cost
#      (nanoseconds from /proc/PID/task/*/schedstat; nginx: master + workers);
#   2. $CONC concurrent clients fetching the $MID_MB MiB file (wrk, $DUR s): aggregate MB/s,
#      p99 latency, and server CPU per GB sent;
#   3. random 64 KiB Range requests inside the 1 GiB file (wrk + Lua, -c$RANGE_CONC -t2, $DUR s);
#   4. upload MB/s (bytes / curl's total time, which includes fleetboot's fsync, index and
#      detection) against dd (bs=4M conv=fsync, bytes / wall time), and fleetboot's VmRSS:
#      before the upload, peak of 0.2 s samples, and VmHWM (reset through clear_refs first).
# Server and load run on separate cores (taskset): both servers on $SERVER_CPUS, curl and wrk
# on $LOAD_CPUS. nginx runs $NGINX_WORKERS workers (auto = one per server CPU); Go's
# GOMAXPROCS follows the affinity mask, so it is the server CPU count too.
#
# Needs: go, curl, wrk, nginx (nginx-light), xorriso, shred (coreutils), ss (iproute2), and
# the iPXE binaries (scripts/fetch-ipxe.sh). Only 127.0.0.1 is used; fleetboot runs with DHCP
# and TFTP off. Everything is started here, stopped by PID and deleted on exit.
# Disk: about 3 × UPLOAD_MB + BIG_MB + MID_MB at peak, under $TMPDIR (default /tmp).
#
# Usage: scripts/bench-http.sh   (env: REPS=3 DUR=15 CONC=200 RANGE_CONC=32 BIG_MB=1024
#                                 MID_MB=30 UPLOAD_MB=4096 NGINX_WORKERS=auto
#                                 SERVER_CPUS=0 LOAD_CPUS=1; on one CPU both are 0)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
REPS=${REPS:-3}
DUR=${DUR:-15}
CONC=${CONC:-200}
RANGE_CONC=${RANGE_CONC:-32}
BIG_MB=${BIG_MB:-1024}
MID_MB=${MID_MB:-30}
UPLOAD_MB=${UPLOAD_MB:-4096}
NGINX_WORKERS=${NGINX_WORKERS:-auto}
if (($(nproc) > 1)); then
	SERVER_CPUS=${SERVER_CPUS:-0}
	LOAD_CPUS=${LOAD_CPUS:-1}
else
	SERVER_CPUS=${SERVER_CPUS:-0}
	LOAD_CPUS=${LOAD_CPUS:-0}
fi

log() { printf 'bench-http: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

for cmd in go curl wrk nginx xorriso shred ss awk sha256sum cmp taskset; do
	command -v "$cmd" >/dev/null || die "$cmd not found (apt-get install curl wrk nginx-light xorriso iproute2)"
done
[[ -s $here/embed/ipxe/ipxe.efi ]] || die "embed/ipxe is empty: run scripts/fetch-ipxe.sh"
((REPS > 0 && DUR > 0 && CONC > 0 && RANGE_CONC > 0 && MID_MB > 0 && BIG_MB > 0)) || die "bad parameters"
filler_mb=$((UPLOAD_MB - BIG_MB - MID_MB - 8))
((filler_mb >= 0)) || die "UPLOAD_MB ($UPLOAD_MB) must exceed BIG_MB + MID_MB + 8"

# cpus_in prints how many CPUs a taskset list such as "0", "0-1" or "0,2" names.
cpus_in() { awk -F, '{n = 0; for (i = 1; i <= NF; i++) { split($i, r, "-"); n += (r[2] == "" ? 1 : r[2] - r[1] + 1) } print n}' <<<"$1"; }
server_ncpu=$(cpus_in "$SERVER_CPUS")
load_ncpu=$(cpus_in "$LOAD_CPUS")
[[ $NGINX_WORKERS == auto ]] && NGINX_WORKERS=$server_ncpu
onload() { taskset -c "$LOAD_CPUS" "$@"; }

work=$(mktemp -d)
cd "$work" # nothing below may leave files in the caller's directory
need_kb=$(((3 * UPLOAD_MB + BIG_MB + MID_MB + 1024) * 1024))
avail_kb=$(df -Pk "$work" | awk 'NR==2{print $4}')
((avail_kb > need_kb)) || { rm -rf "$work"; die "need $((need_kb / 1048576)) GiB free in $work, have $((avail_kb / 1048576))"; }

pids=()
sampler=
cleanup() {
	local pid
	[[ -n $sampler ]] && kill "$sampler" 2>/dev/null
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}" $sampler; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }

# free_port prints a TCP port nothing on this machine listens on.
free_port() {
	local p i
	for ((i = 0; i < 100; i++)); do
		p=$((20000 + RANDOM % 40000))
		if ! ss -Hltn "sport = :$p" | grep -q .; then
			echo "$p"
			return
		fi
	done
	die "no free TCP port found"
}

# wait_ready waits until url answers 200.
wait_ready() {
	local i
	for ((i = 0; i < 100; i++)); do
		curl -sf --max-time 2 -o /dev/null "$1" && return
		sleep 0.1
	done
	die "server at $1 never answered"
}

# cpu_ns prints the CPU nanoseconds the given PIDs have used (all threads of each): the first
# field of /proc/PID/task/TID/schedstat, exact to the nanosecond, where utime+stime in
# /proc/PID/stat count 10 ms clock ticks (a 1 GiB stream costs ~120 ms, so ticks were ±8 %).
# Threads that have exited are not counted; neither server ends threads while serving.
cpu_ns() {
	local p f t=0 v
	for p in "$@"; do
		[[ -d /proc/$p ]] || die "process $p is gone"
		for f in /proc/"$p"/task/*/schedstat; do
			read -r v _ <"$f" 2>/dev/null || continue
			t=$((t + v))
		done
	done
	echo "$t"
}

# median prints the median of its arguments (the lower middle one for an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

# calc evaluates an awk expression and prints it with format fmt.
calc() { awk "BEGIN{printf \"$1\", $2}"; }

log "load before: $(uptime)"
log "busiest processes: $(ps -eo pcpu=,comm= --sort=-pcpu | head -4 | awk '{printf "%s %s%%; ", $2, $1}')"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- test data --------------------------------------------------------------------------
log "generating ${BIG_MB} + ${MID_MB} + ${filler_mb} MiB of pseudo-random data"
src="$work/src"
mkdir -p "$src"
gen() { : >"$1" && shred -n 1 -s "$2M" "$1"; }
gen "$src/big.bin" "$BIG_MB"
gen "$src/mid.bin" "$MID_MB"
maps=(-map "$src/big.bin" /big.bin -map "$src/mid.bin" /mid.bin)
if ((filler_mb > 0)); then
	gen "$src/filler.bin" "$filler_mb"
	maps+=(-map "$src/filler.bin" /filler.bin)
fi
iso="$work/bench.iso"
xorriso -no_rc -outdev "$iso" -volid FLEETBENCH -joliet off "${maps[@]}" >"$work/xorriso.log" 2>&1 ||
	die "xorriso failed: $(tail -3 "$work/xorriso.log")"
root="$work/nginx-root"
mkdir -p "$root"
xorriso -no_rc -osirrox on -indev "$iso" -extract /big.bin "$root/big.bin" -extract /mid.bin "$root/mid.bin" \
	>>"$work/xorriso.log" 2>&1 || die "xorriso extract failed: $(tail -3 "$work/xorriso.log")"
cmp -s "$src/big.bin" "$root/big.bin" && cmp -s "$src/mid.bin" "$root/mid.bin" || die "extracted files differ"
rm -rf "$src"
iso_bytes=$(stat -c %s "$iso")
big_bytes=$(stat -c %s "$root/big.bin")
mid_bytes=$(stat -c %s "$root/mid.bin")
# nginx workers drop to "nobody": the root must be reachable for them.
chmod 711 "$work"
chmod 755 "$root"
chmod 644 "$root"/*.bin

# ---- fleetboot --------------------------------------------------------------------------
log "building fleetboot"
(cd "$here" && CGO_ENABLED=0 go build -o "$work/fleetboot" ./cmd/fleetboot)
fb_port=$(free_port)
fb_url="http://127.0.0.1:$fb_port"
data="$work/data"
taskset -c "$SERVER_CPUS" "$work/fleetboot" serve --dhcp off --tftp off --interface lo --advertise-ip 127.0.0.1 \
	--http "127.0.0.1:$fb_port" --data "$data" >"$work/fleetboot.log" 2>&1 &
fb_pid=$!
pids+=("$fb_pid")
wait_ready "$fb_url/healthz"
for ((i = 0; i < 50; i++)); do
	[[ -s $data/api-token ]] && break
	sleep 0.1
done
[[ -s $data/api-token ]] || die "fleetboot wrote no $data/api-token"
token=$(<"$data/api-token")

# rss_kb prints a VmRSS or VmHWM line's value (kB) of fleetboot.
rss_kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$fb_pid/status"; }

# ---- 4. upload (first: the last upload is the ISO the serving tests use) -----------------
log "upload: ${iso_bytes} bytes, $REPS × (curl -T to fleetboot, dd conv=fsync to the same disk)"
declare -a up_mbs dd_mbs rss_start rss_peak rss_hwm
id=
for ((r = 0; r < REPS; r++)); do
	order=(fleetboot dd)
	((r % 2 == 0)) || order=(dd fleetboot)
	for s in "${order[@]}"; do
		sync
		if [[ $s == dd ]]; then
			t0=$(now)
			dd if="$iso" of="$work/dd.out" bs=4M conv=fsync status=none
			t1=$(now)
			rm -f "$work/dd.out"
			dd_mbs+=("$(calc %.1f "$iso_bytes / ($t1 - $t0) / 1e6")")
			continue
		fi
		rss_start+=("$(rss_kb VmRSS)")
		# Writing 5 to clear_refs resets VmHWM to the current RSS (Linux ≥ 4.0, needs ptrace rights).
		echo 5 2>/dev/null >"/proc/$fb_pid/clear_refs" || log "cannot reset VmHWM: it covers the process lifetime"
		(
			# Bounded: at most 10 minutes of samples.
			for ((i = 0; i < 3000; i++)); do
				rss_kb VmRSS || exit 0
				sleep 0.2
			done
		) >"$work/rss.$r" &
		sampler=$!
		out=$(curl -sS -T "$iso" -H "Authorization: Bearer $token" -o "$work/upload.json" \
			-w '%{http_code} %{size_upload} %{time_total}' "$fb_url/api/v1/isos/bench$r") || die "upload failed"
		kill "$sampler" 2>/dev/null || true
		wait "$sampler" 2>/dev/null || true
		sampler=
		rss_hwm+=("$(rss_kb VmHWM)")
		read -r code sent secs <<<"$out"
		[[ $code == 201 ]] || die "upload answered $code: $(cat "$work/upload.json")"
		((sent == iso_bytes)) || die "curl sent $sent of $iso_bytes bytes"
		up_mbs+=("$(calc %.1f "$sent / $secs / 1e6")")
		rss_peak+=("$(sort -n "$work/rss.$r" | tail -1)")
		id=$(sed -n 's/.*"id":"\([0-9a-f]*\)".*/\1/p' "$work/upload.json")
		[[ -n $id ]] || die "no id in $(cat "$work/upload.json")"
		if ((r < REPS - 1)); then
			curl -sSf -X DELETE -H "Authorization: Bearer $token" -o /dev/null "$fb_url/api/v1/isos/$id" ||
				die "DELETE /api/v1/isos/$id failed"
		fi
	done
	log "  round $((r + 1)): fleetboot ${up_mbs[-1]} MB/s (RSS ${rss_start[-1]} → peak ${rss_peak[-1]}, HWM ${rss_hwm[-1]} kB), dd ${dd_mbs[-1]} MB/s"
done
[[ $(find "$data" -name '*.iso' | wc -l) == 1 ]] || log "WARNING: data dir holds $(find "$data" -name '*.iso' | wc -l) .iso files after deletes"

# ---- nginx ------------------------------------------------------------------------------
ng_port=$(free_port)
ng="$work/nginx"
mkdir -p "$ng"
cat >"$ng/nginx.conf" <<EOF
worker_processes $NGINX_WORKERS;
pid $ng/nginx.pid;
error_log $ng/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	sendfile on;
	# tcp_nopush (TCP_CORK) stays off, nginx's default: with it on, 64 KiB Range responses on
	# loopback stall on delayed ACKs (measured: ~970 req/s, p99 48 ms, against ~31000 req/s
	# off), which would flatter fleetboot.
	tcp_nopush off;
	keepalive_requests 1000000;
	default_type application/octet-stream;
	client_body_temp_path $ng/body;
	proxy_temp_path $ng/proxy;
	fastcgi_temp_path $ng/fastcgi;
	uwsgi_temp_path $ng/uwsgi;
	scgi_temp_path $ng/scgi;
	server {
		listen 127.0.0.1:$ng_port;
		root $root;
	}
}
EOF
taskset -c "$SERVER_CPUS" nginx -p "$ng" -e "$ng/error.log" -c "$ng/nginx.conf" -g 'daemon off;' &
ng_pid=$!
pids+=("$ng_pid")
ng_url="http://127.0.0.1:$ng_port"
wait_ready "$ng_url/mid.bin"
mapfile -t ng_workers < <(pgrep -P "$ng_pid")
((${#ng_workers[@]} > 0)) || die "nginx started no workers"

declare -A big_url=([fleetboot]="$fb_url/isos/$id/files/big.bin" [nginx]="$ng_url/big.bin")
declare -A mid_url=([fleetboot]="$fb_url/isos/$id/files/mid.bin" [nginx]="$ng_url/mid.bin")
declare -A srv_pids=([fleetboot]="$fb_pid" [nginx]="$ng_pid ${ng_workers[*]}")

roff=$((big_bytes / 3 + 12345))
# Both serve the same bytes (this also pulls both copies into the page cache).
for s in fleetboot nginx; do
	curl -sSf "${big_url[$s]}" | sha256sum >"$work/sum.big.$s"
	curl -sSf -r "$roff-$((roff + 65535))" -o "$work/range.$s" "${big_url[$s]}"
	curl -sSf -o "$work/mid.$s" "${mid_url[$s]}"
done
cmp -s "$work/sum.big.fleetboot" "$work/sum.big.nginx" || die "big.bin differs between the servers"
cmp -s "$work/range.fleetboot" "$work/range.nginx" || die "a Range response differs between the servers"
[[ $(stat -c %s "$work/range.nginx") == 65536 ]] || die "Range response is not 64 KiB"
cmp -s "$work/mid.fleetboot" "$root/mid.bin" || die "mid.bin from fleetboot differs"
log "both servers send identical bytes (1 GiB sha256, a 64 KiB Range, the ${MID_MB} MiB file)"
log "nginx $NGINX_WORKERS worker_processes → ${#ng_workers[@]} workers; $(nproc) CPUs; load now $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- 1. single 1 GiB stream ---------------------------------------------------------------
declare -A stream_mbs stream_cpu
log "1: single ${BIG_MB} MiB stream, $REPS rounds"
for ((r = 0; r < REPS; r++)); do
	order=(fleetboot nginx)
	((r % 2 == 0)) || order=(nginx fleetboot)
	for s in "${order[@]}"; do
		# shellcheck disable=SC2086 # srv_pids holds several PIDs for nginx
		c0=$(cpu_ns ${srv_pids[$s]})
		read -r code size speed < <(onload curl -s -o /dev/null -w '%{http_code} %{size_download} %{speed_download}\n' "${big_url[$s]}")
		# shellcheck disable=SC2086
		c1=$(cpu_ns ${srv_pids[$s]})
		[[ $code == 200 && $size == "$big_bytes" ]] || die "$s: stream got $code, $size bytes"
		stream_mbs[$s]+=" $(calc %.1f "$speed / 1e6")"
		stream_cpu[$s]+=" $(calc %.3f "($c1 - $c0) / 1e9 / ($size / 1e9)")"
	done
done

# ---- wrk runs -----------------------------------------------------------------------------
cat >"$work/stats.lua" <<'EOF'
-- done prints wrk's totals in one machine-readable line.
done = function(summary, latency, requests)
	local e = summary.errors
	io.write(string.format("RESULT %.0f %.0f %.0f %.0f %.0f %d %d %d %d %d\n", summary.requests, summary.bytes,
		summary.duration, latency:percentile(50), latency:percentile(99),
		e.connect, e.read, e.write, e.status, e.timeout))
end
EOF
cat "$work/stats.lua" - >"$work/range.lua" <<'EOF'
-- Each thread draws its own fixed sequence of 64 KiB ranges, the same for both servers.
local threads = 0
setup = function(thread)
	threads = threads + 1
	thread:set("id", threads)
end
init = function(args)
	size = tonumber(args[1])
	math.randomseed(id * 104729 + 17)
end
request = function()
	local x = math.random(0, size - 65536)
	return wrk.format(nil, nil, { Range = string.format("bytes=%d-%d", x, x + 65535) })
end
EOF

# run_wrk server url conns script [args…]: one wrk run; prints "req/s MB/s p50_ms p99_ms cpu_s errors bytes/req".
run_wrk() {
	local s=$1 url=$2 conns=$3 script=$4 c0 c1 line
	shift 4
	# shellcheck disable=SC2086
	c0=$(cpu_ns ${srv_pids[$s]})
	line=$(onload wrk -t"$load_ncpu" -c"$conns" -d"${DUR}s" --timeout 60s --latency -s "$script" "$url" -- "$@" | grep '^RESULT') ||
		die "wrk against $s failed"
	# shellcheck disable=SC2086
	c1=$(cpu_ns ${srv_pids[$s]})
	awk -v c="$((c1 - c0))" '{
		req = $2; bytes = $3; us = $4
		printf "%.1f %.1f %.1f %.1f %.3f %d %.0f\n", req / us * 1e6, bytes / us, $5 / 1000, $6 / 1000, c / 1e9,
			$7 + $8 + $9 + $10 + $11, (req > 0 ? bytes / req : 0)
	}' <<<"$line"
}

declare -A conc_mbs conc_p99 conc_cpugb conc_err conc_done range_rps range_cpu range_err
log "2: $CONC clients × ${MID_MB} MiB file, ${DUR}s, $REPS rounds"
for ((r = 0; r < REPS; r++)); do
	order=(fleetboot nginx)
	((r % 2 == 0)) || order=(nginx fleetboot)
	for s in "${order[@]}"; do
		read -r rps mbs p50 p99 cpu errs bpr < <(run_wrk "$s" "${mid_url[$s]}" "$CONC" "$work/stats.lua")
		log "  $s: $rps req/s, $mbs MB/s, p50 ${p50} ms, p99 ${p99} ms, cpu ${cpu}s, errors $errs"
		conc_mbs[$s]+=" $mbs"
		conc_p99[$s]+=" $p99"
		conc_cpugb[$s]+=" $(calc %.3f "$cpu / ($mbs * $DUR / 1000)")"
		conc_err[$s]=$((${conc_err[$s]:-0} + errs))
		# p99 is over the responses that completed inside the window: with $CONC clients
		# starting at once and each response taking seconds, that may be little more than one
		# per client, and then p99 says how evenly the first responses finished.
		conc_done[$s]+=" $(calc %.0f "$rps * $DUR")"
	done
done

log "3: random 64 KiB Ranges in the ${BIG_MB} MiB file, $RANGE_CONC connections, ${DUR}s, $REPS rounds"
for ((r = 0; r < REPS; r++)); do
	order=(fleetboot nginx)
	((r % 2 == 0)) || order=(nginx fleetboot)
	for s in "${order[@]}"; do
		read -r rps mbs p50 p99 cpu errs bpr < <(run_wrk "$s" "${big_url[$s]}" "$RANGE_CONC" "$work/range.lua" "$big_bytes")
		# 64 KiB body plus headers: anything far off means Range was not honoured.
		((bpr > 65536 && bpr < 67000)) || die "$s: $bpr bytes per Range response"
		log "  $s: $rps req/s, p99 ${p99} ms, cpu ${cpu}s, errors $errs"
		range_rps[$s]+=" $rps"
		range_cpu[$s]+=" $(calc %.1f "$cpu * 1e6 / ($rps * $DUR)")"
		range_err[$s]=$((${range_err[$s]:-0} + errs))
	done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report -------------------------------------------------------------------------------
# m NAME SERVER: median of an accumulated list.
m() {
	local -n arr=$1
	# shellcheck disable=SC2086
	median ${arr[$2]}
}
fs=$(m stream_mbs fleetboot) ns=$(m stream_mbs nginx)
fc=$(m stream_cpu fleetboot) nc=$(m stream_cpu nginx)
fm=$(m conc_mbs fleetboot) nm=$(m conc_mbs nginx)
fp=$(m conc_p99 fleetboot) np=$(m conc_p99 nginx)
fg=$(m conc_cpugb fleetboot) ng_g=$(m conc_cpugb nginx)
fr=$(m range_rps fleetboot) nr=$(m range_rps nginx)
frc=$(m range_cpu fleetboot) nrc=$(m range_cpu nginx)
fu=$(median "${up_mbs[@]}") du=$(median "${dd_mbs[@]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
check() { awk -v r="$1" -v op="$2" -v t="$3" 'BEGIN{ ok = (op == ">=") ? r >= t : r <= t; printf "%s (target %s %s)", ok ? "ok" : "MISSED", op, t }'; }
rss_line="start $(median "${rss_start[@]}") kB, sampled peak $(median "${rss_peak[@]}") kB, VmHWM $(median "${rss_hwm[@]}") kB"
max_growth=0
for ((r = 0; r < REPS; r++)); do
	g=$((rss_hwm[r] - rss_start[r]))
	((g > max_growth)) && max_growth=$g
done

cat <<EOF

## fleetboot vs nginx — HTTP ISO serving and upload (loopback, medians of $REPS alternating rounds)

$(nproc) CPUs ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)), load average before $load_before, after $load_after
(other processes share the machine: compare the ratios, not the absolute numbers).
nginx $(nginx -v 2>&1 | cut -d/ -f2): worker_processes $NGINX_WORKERS (${#ng_workers[@]} workers), sendfile on, tcp_nopush off, access_log off.
Servers pinned to CPU(s) $SERVER_CPUS (fleetboot GOMAXPROCS $server_ncpu), curl and wrk -t$load_ncpu --timeout 60s to CPU(s) $LOAD_CPUS. ISO $iso_bytes bytes; big.bin $big_bytes, mid.bin $mid_bytes bytes.

| metric | fleetboot | nginx (or dd) | ratio | verdict |
|---|---|---|---|---|
| ${BIG_MB} MiB single stream, MB/s | $fs | $ns | $(ratio "$fs" "$ns") | $(check "$(ratio "$fs" "$ns")" ">=" 1.1) |
| ${BIG_MB} MiB single stream, server CPU s per GB | $fc | $nc | $(ratio "$fc" "$nc") | $(check "$(ratio "$fc" "$nc")" "<=" 1.0) |
| $CONC clients × ${MID_MB} MiB, aggregate MB/s | $fm | $nm | $(ratio "$fm" "$nm") | $(check "$(ratio "$fm" "$nm")" ">=" 1) |
| $CONC clients × ${MID_MB} MiB, p99 latency ms | $fp | $np | $(ratio "$fp" "$np") | $(check "$(ratio "$fp" "$np")" "<=" 1.0) |
| $CONC clients × ${MID_MB} MiB, server CPU s per GB | $fg | $ng_g | $(ratio "$fg" "$ng_g") | $(check "$(ratio "$fg" "$ng_g")" "<=" 1.0) |
| 64 KiB random Range, req/s (c$RANGE_CONC) | $fr | $nr | $(ratio "$fr" "$nr") | $(check "$(ratio "$fr" "$nr")" ">=" 1.0) |
| 64 KiB random Range, server CPU µs per request | $frc | $nrc | $(ratio "$frc" "$nrc") | (lower is better) |
| upload $((iso_bytes / 1000000)) MB, MB/s (dd conv=fsync) | $fu | $du | $(ratio "$fu" "$du") | $(check "$(ratio "$fu" "$du")" ">=" 0.8) |
| upload, fleetboot RSS | $rss_line | | | largest VmHWM − start: $((max_growth / 1024)) MiB |

wrk errors (all rounds): $CONC-client fleetboot ${conc_err[fleetboot]}, nginx ${conc_err[nginx]}; Range fleetboot ${range_err[fleetboot]}, nginx ${range_err[nginx]}.
Per round — stream MB/s fleetboot:${stream_mbs[fleetboot]} nginx:${stream_mbs[nginx]}; stream CPU s fleetboot:${stream_cpu[fleetboot]} nginx:${stream_cpu[nginx]}
  $CONC-client MB/s fleetboot:${conc_mbs[fleetboot]} nginx:${conc_mbs[nginx]}; p99 ms fleetboot:${conc_p99[fleetboot]} nginx:${conc_p99[nginx]}
  $CONC-client responses completed (p99 is over these) fleetboot:${conc_done[fleetboot]} nginx:${conc_done[nginx]}
  $CONC-client CPU s per GB fleetboot:${conc_cpugb[fleetboot]} nginx:${conc_cpugb[nginx]}; Range CPU µs per request fleetboot:${range_cpu[fleetboot]} nginx:${range_cpu[nginx]}
  Range req/s fleetboot:${range_rps[fleetboot]} nginx:${range_rps[nginx]}; upload MB/s fleetboot: ${up_mbs[*]} dd: ${dd_mbs[*]}
  upload RSS kB start: ${rss_start[*]}; sampled peak: ${rss_peak[*]}; VmHWM: ${rss_hwm[*]}
EOF
