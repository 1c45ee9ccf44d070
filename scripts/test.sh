#!/usr/bin/env bash
# test.sh — everything CI runs: install the test dependencies (Debian packages, the iPXE
# binaries, the signed shim + GRUB), check formatting and vet, a short fuzz smoke on every untrusted-input parser, then
# all tests with the race detector, including the end-to-end QEMU boot suite
# (internal/e2e: network namespaces, SeaBIOS and OVMF VMs), both stages beside a throwaway
# PostgreSQL server (scripts/with-postgres.sh). Run as root on Debian.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/gocheck.sh
. scripts/lib/gocheck.sh
gocheck_require test.sh
[[ $(id -u) == 0 ]] || { echo "test.sh: run as root (apt, network namespaces, QEMU taps)" >&2; exit 1; }

bash scripts/deps.sh
bash scripts/fetch-ipxe.sh
bash scripts/fetch-secureboot.sh

echo "== gofmt"
bad=$(gofmt -l cmd internal embed scripts)
if [[ -n $bad ]]; then
	echo "gofmt: these files need formatting:" >&2
	echo "$bad" >&2
	exit 1
fi
echo "== go vet"
go vet ./...

echo "== fuzz smoke"
# Every fuzz target, each with an execution-count budget of a few seconds (scripts/fuzz-smoke.sh;
# FUZZTIME=Nx overrides all budgets). A failing input fails the run.
bash scripts/fuzz-smoke.sh

echo "== go test -race (unit, interop, real-firmware DHCP, web UI in headless Chromium; SQLite and PostgreSQL backends)"
# The web UI test (internal/webui) drives Debian's chromium (deps.sh installs it); with CI=true a
# missing browser fails instead of skipping. Its screenshots of every page go to
# $FLEETBOOT_ARTIFACTS/ui-screenshots.
# with-postgres.sh starts a throwaway PostgreSQL cluster (unix socket only, stopped by PID at
# the end) and exports FLEETBOOT_TEST_POSTGRES; the storage suites run on both backends
# (internal/store/storetest). Under CI=true a suite without PostgreSQL fails instead of skipping.
# internal/simulate's HA-pair tests run two `fleetboot serve` processes in network namespaces
# on one bridge against this server (200 machines at once; kill -9 of one instance mid-install).
export FLEETBOOT_ARTIFACTS="${FLEETBOOT_ARTIFACTS:-$(mktemp -d "${TMPDIR:-/tmp}/fleetboot-artifacts.XXXXXX")}"
echo "web UI screenshots: $FLEETBOOT_ARTIFACTS/ui-screenshots"
CI="${CI:-true}" bash scripts/with-postgres.sh go test -race -count=1 -timeout 30m $(go list ./... | grep -v /internal/e2e)
echo "web UI screenshots: $FLEETBOOT_ARTIFACTS/ui-screenshots"

# Last, verbose so the per-scenario boot-time table is in the log; its closing "ok" line is
# the run's summary. Every VM has its own bound (FLEETBOOT_E2E_VM_TIMEOUT, 10 min by default,
# installers 3×) that fails with the VM's console in the log. VMs boot in parallel, so the
# package timeout is a backstop above the longest of those bounds plus setup, and below CI's
# 90-minute limit, so a hang still ends in go test's own report (goroutine dump) in the log.
# The multi-site scenario (two instances on one PostgreSQL, sites_test.go) needs the database
# too: this stage runs beside a cluster of its own, and with CI=true a missing server fails it.
echo "== end-to-end QEMU boot suite"
CI="${CI:-true}" bash scripts/with-postgres.sh go test -race -count=1 -timeout 60m -v ./internal/e2e/
