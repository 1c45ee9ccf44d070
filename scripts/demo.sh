#!/usr/bin/env bash
# demo.sh — see the whole chain in one command: fleetboot in a private network namespace, a demo
# ISO uploaded and assigned, and a QEMU machine that network-boots it (DHCP → iPXE → boot script
# → kernel and initrd out of the ISO → the installer's kickstart → done callback → local disk on
# the next boot), with `fleetboot events --follow` printing the timeline live.
#
#   sudo bash scripts/demo.sh
#
# Needs root (network namespace, tap device) and the packages of scripts/deps.sh (installed if
# missing). Nothing touches your real network: DHCP is answered only inside the namespace. It
# ends by itself (bounded by the e2e suite's per-VM timeout, FLEETBOOT_E2E_VM_TIMEOUT) and removes
# the namespace, the server and the VM. It is internal/e2e's TestDemo, on the same machinery
# as the end-to-end suite.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/gocheck.sh
. scripts/lib/gocheck.sh
gocheck_require demo.sh
if [[ $(id -u) -ne 0 ]]; then
	echo "demo.sh: needs root for the network namespace and the VM's tap device: sudo bash scripts/demo.sh" >&2
	exit 1
fi
bash scripts/deps.sh
bash scripts/fetch-ipxe.sh
FLEETBOOT_DEMO=1 FLEETBOOT_E2E=1 exec go test ./internal/e2e -run '^TestDemo$' -count=1 -v -timeout 30m
