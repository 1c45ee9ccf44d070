#!/usr/bin/env bash
# deps.sh — install the Debian packages the tests need (idempotent; apt-get update only when
# something is missing). QEMU + firmware for the boot suite, xorriso for ISO fixtures, dnsmasq
# as the stand-in site DHCP server, tftp-hpa as an interop peer, a Debian kernel as test payload.
set -euo pipefail
pkgs=(ca-certificates curl git iproute2 qemu-system-x86 ipxe-qemu ovmf ipxe xorriso busybox-static cpio
	dnsmasq-base debian-installer-12-netboot-amd64 tftp-hpa)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "deps: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
