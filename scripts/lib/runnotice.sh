# runnotice.sh — sourced by run.sh: before fleetboot starts answering on a LAN, say where and
# what it will answer (from `fleetboot serve --dry-run`, so the interface is found exactly the
# way serve finds it) and how to run it without DHCP instead. Never asks anything: on a
# terminal it waits a few seconds (Enter starts at once, Ctrl-C stops); without one (CI, no
# stdin) it does not wait at all. RUN_WAIT=N sets the wait in seconds, RUN_WAIT=0 skips it.

# runnotice_field PLAN KEY prints the first word of PLAN's "KEY:" line.
runnotice_field() {
	awk -v k="$2:" '$1 == k { v = $2; sub(/:$/, "", v); print v; exit }' <<<"$1"
}

# runnotice_without_dhcp ARGS… prints the run.sh command line for ARGS with --dhcp off in place
# of any --dhcp given.
runnotice_without_dhcp() {
	local out=(bash scripts/run.sh --dhcp off) skip=
	for a in "$@"; do
		if [[ -n $skip ]]; then
			skip=
			continue
		fi
		case $a in
		--dhcp) skip=1 ;;
		--dhcp=*) ;;
		*) out+=("$a") ;;
		esac
	done
	printf '%q ' "${out[@]}" | sed 's/ $//'
	echo
}

# runnotice PLAN ARGS…: PLAN is `fleetboot serve --dry-run ARGS…`'s output.
runnotice() {
	local plan=$1
	shift
	local mode iface lan
	mode=$(runnotice_field "$plan" dhcp)
	iface=$(runnotice_field "$plan" interface)
	lan=$(runnotice_field "$plan" lan)
	{
		echo "run.sh: fleetboot serve will run like this (fleetboot serve --dry-run):"
		sed 's/^/    /' <<<"$plan"
	} >&2
	case $mode in
	proxy)
		cat >&2 <<-EOF
			run.sh: it will answer PXE clients on interface $iface, on the LAN it is on ($lan).
			run.sh: Proxy mode hands out no addresses (your DHCP server keeps doing that), but every machine
			run.sh: there that boots from the network gets fleetboot's boot loader and menu, next to any PXE
			run.sh: server you already run.
		EOF
		;;
	full)
		cat >&2 <<-EOF
			run.sh: it will be the DHCP server on interface $iface, for the LAN it is on ($lan): any DHCP
			run.sh: client there may get an address from it. Never run it next to another DHCP server.
		EOF
		;;
	*) return 0 ;; # answers nothing by itself
	esac
	cat >&2 <<-EOF
		run.sh: To answer no DHCP at all (your DHCP server then points machines at fleetboot: README,
		run.sh: "Pointing an existing DHCP server at fleetboot"), run instead:
		run.sh:     $(runnotice_without_dhcp "$@")
	EOF
	runnotice_wait
}

# runnotice_wait waits RUN_WAIT seconds (default 10 on a terminal, else 0); Enter ends it early.
runnotice_wait() {
	local n
	if [[ -t 0 && -t 2 ]]; then n=${RUN_WAIT:-10}; else n=${RUN_WAIT:-0}; fi
	if ! [[ $n =~ ^[0-9]+$ ]]; then
		echo "run.sh: RUN_WAIT must be a number of seconds, not '$n'" >&2
		exit 2
	fi
	((n > 0)) || return 0
	echo "run.sh: starting in $n s: Enter starts now, Ctrl-C stops (RUN_WAIT=0 skips this wait)" >&2
	while ((n > 0)); do
		if [[ -t 0 ]]; then
			read -r -s -t 1 _ && break
		else
			sleep 1
		fi
		n=$((n - 1))
	done
}
