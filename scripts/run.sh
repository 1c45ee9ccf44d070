#!/usr/bin/env bash
# run.sh — install what fleetboot needs on a Debian machine, build it, and serve.
#
# Default: proxyDHCP (gives no addresses; your DHCP server keeps doing that) on the interface of
# the default route, TFTP and HTTP (:8080) on that interface's address, data in ./data.
# Extra arguments go to `fleetboot serve` (see `bin/fleetboot serve --help`), e.g.
#   bash scripts/run.sh --interface eth1 --dhcp full --pool 10.0.0.100-10.0.0.199
# Run as root: DHCP and TFTP use privileged ports and apt installs the iPXE package.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null || { echo "run.sh: Go is not installed (https://go.dev/doc/install)" >&2; exit 1; }
if ! command -v dpkg-deb >/dev/null || ! command -v apt-get >/dev/null; then
	echo "run.sh: needs a Debian-based system (apt-get, dpkg-deb)" >&2
	exit 1
fi
bash scripts/fetch-ipxe.sh
# The signed shim + GRUB are optional: without them fleetboot serves iPXE to every machine.
bash scripts/fetch-secureboot.sh || echo "run.sh: no signed shim + GRUB (see above); Secure Boot machines will not boot" >&2
# CGO_ENABLED=0: a static binary (pure-Go SQLite, Go resolver), copyable to any Linux host.
CGO_ENABLED=0 go build -o bin/fleetboot ./cmd/fleetboot
exec ./bin/fleetboot serve --data ./data "$@"
