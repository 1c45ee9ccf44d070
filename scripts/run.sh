#!/usr/bin/env bash
# run.sh — install what fleetboot needs on a Debian machine, build it, and serve.
#
# Default: proxyDHCP (gives no addresses; your DHCP server keeps doing that) on the interface of
# the default route, TFTP and HTTP (:8080) on that interface's address, data in ./data.
# Extra arguments go to `fleetboot serve` (see `bin/fleetboot serve --help`), e.g.
#   bash scripts/run.sh --interface eth1 --dhcp full --pool 10.0.0.100-10.0.0.199
# Run as root: DHCP and TFTP use privileged ports and apt installs the iPXE package.
#
# Before serving it shows where fleetboot will answer (interface, LAN, DHCP mode: `fleetboot
# serve --dry-run`) and how to run with --dhcp off instead; on a terminal it then waits 10 s
# (Enter starts at once, Ctrl-C stops, RUN_WAIT=N changes the wait). Without a terminal it
# does not wait.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/gocheck.sh
. scripts/lib/gocheck.sh
# shellcheck source=lib/runnotice.sh
. scripts/lib/runnotice.sh
gocheck_require run.sh
if ! command -v dpkg-deb >/dev/null || ! command -v apt-get >/dev/null; then
	echo "run.sh: needs a Debian-based system (apt-get, dpkg-deb)" >&2
	exit 1
fi
bash scripts/fetch-ipxe.sh
# The signed shim + GRUB are optional: without them fleetboot serves iPXE to every machine.
bash scripts/fetch-secureboot.sh || echo "run.sh: no signed shim + GRUB (see above); Secure Boot machines will not boot" >&2
# CGO_ENABLED=0: a static binary (pure-Go SQLite, Go resolver), copyable to any Linux host.
CGO_ENABLED=0 go build -o bin/fleetboot ./cmd/fleetboot
for a in "$@"; do
	case $a in
	-h | --help | --dry-run | --dry-run=*) exec ./bin/fleetboot serve --data ./data "$@" ;;
	esac
done
# Fails, with serve's own message, on what serve would refuse (no default route, bad flags).
plan=$(./bin/fleetboot serve --dry-run --data ./data "$@")
runnotice "$plan" "$@"
exec ./bin/fleetboot serve --data ./data "$@"
