#!/usr/bin/env bash
# deps.sh — install the Debian packages the tests need: the end-to-end boot suite
# (internal/e2e), ISO fixtures, interop peers.
#
# Idempotent: installs only what is missing, and runs `apt-get update` only then. Needs root
# (the suite itself needs root too: network namespaces and tap devices). Debian 12 (bookworm)
# package names; the payload kernel comes from debian-installer-12-netboot-amd64.
#
#   qemu-system-x86   qemu-system-x86_64 (TCG; no KVM needed)
#   seabios           legacy BIOS firmware (a dependency of qemu-system-x86; listed to be explicit)
#   ipxe-qemu         the NIC option ROMs (iPXE) the "bios" scenario boots through
#   ovmf              UEFI firmware: OVMF_CODE_4M.fd / OVMF_VARS_4M.fd
#   ipxe              ipxe.lkrn, the non-iPXE-looking legacy PXE client of the "bios-tftp" scenario
#   busybox-static    the payload initramfs's only binary (a dynamic busybox cannot run there)
#   debian-installer-12-netboot-amd64   a real kernel to boot (Debian-signed: internal/secureboot)
#   debian-installer-12-netboot-arm64   Debian's signed arm64 kernel, shim and GRUB (internal/secureboot);
#                     the real arm64 installer the mixed-fleet scenario boots
#   shim-signed, grub-efi-amd64-signed  Debian's signed shim and GRUB: internal/secureboot
#                     checks its trust decisions against them
#   qemu-system-arm   qemu-system-aarch64: the arm64 machines of the mixed-fleet scenario
#   qemu-efi-aarch64  AAVMF, UEFI for them: /usr/share/AAVMF/AAVMF_{CODE,VARS}.fd
#   iproute2          ip netns / bridge / veth / tuntap
#   dnsmasq-base      the site DHCP server stand-in for proxy mode (no service gets started)
#   cpio              interop test of the suite's initramfs writer
#   xorriso           builds the ISO fixtures (internal/iso9660, internal/isostore, internal/e2e)
#   udftools          mkudffs: a UDF-only image the ISO store must refuse
#   tftp-hpa          TFTP client interop peer (internal/tftp)
#   curl, ca-certificates, git   fetching and the TFTP/HTTP interop tests
#   wrk, nginx-light  scripts/bench-http.sh (load generator, the HTTP peer; no test needs them)
#   kea-admin, kea-dhcp4-server  scripts/bench-dhcp.sh (perfdhcp, the DHCP peer; the Debian service
#                     it enables listens on no interface: /etc/kea/kea-dhcp4.conf names none)
#   jq                scripts/bench-simulate.sh reads the simulator's JSON reports
#   systemd           systemd-analyze verify/security of scripts/systemd/fleetboot.service
#   chromium          headless browser for the web UI test (internal/webui, driven by chromedp)
#   postgresql        the PostgreSQL server the storage suites run against (scripts/with-postgres.sh
#                     starts a throwaway cluster; the packaged service is not used)
set -euo pipefail

pkgs=(
	qemu-system-x86
	seabios
	ipxe-qemu
	ovmf
	ipxe
	busybox-static
	debian-installer-12-netboot-amd64
	debian-installer-12-netboot-arm64
	shim-signed
	grub-efi-amd64-signed
	qemu-system-arm
	qemu-efi-aarch64
	iproute2
	dnsmasq-base
	cpio
	xorriso
	udftools
	tftp-hpa
	curl
	ca-certificates
	git
	systemd
	chromium
	postgresql
)

missing=()
for p in "${pkgs[@]}"; do
	if [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) != installed ]]; then
		missing+=("$p")
	fi
done

if ((${#missing[@]} == 0)); then
	echo "deps: all ${#pkgs[@]} packages installed" >&2
	exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
	echo "deps: missing ${missing[*]}; run as root to install them" >&2
	exit 1
fi

echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
