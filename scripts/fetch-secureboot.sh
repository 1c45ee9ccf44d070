#!/usr/bin/env bash
# fetch-secureboot.sh — put Debian's signed UEFI x64 boot chain into embed/secureboot so
# `go build` embeds it: the Microsoft-signed shim (with Debian's certificate) and the
# Debian-signed network GRUB. fleetboot hands them to UEFI x64 machines with Secure Boot on.
#
#  - shimx64.efi   ← shim-signed (Debian bookworm) /usr/lib/shim/shimx64.efi.signed (shim 16.1)
#  - grubnetx64.efi ← grub-efi-amd64-signed (Debian trixie, GRUB 2.12)
#                     /usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed
#    trixie's, not bookworm's: bookworm's GRUB 2.06, loaded by UEFI HTTP Boot, fetches no config
#    and stops at its prompt (verified under QEMU/OVMF; see README "Firmware facts").
#
# Both packages are pinned by version and sha256 and downloaded from the system's own Debian
# mirror with a private apt configuration (scripts/lib/debfetch.sh; DEBIAN_MIRROR overrides).
# Only the one file is taken from each .deb (shim-signed's dependencies are not needed).
# Nothing here is committed: embed/secureboot/* is gitignored. Without these files fleetboot
# still builds and runs; it then serves iPXE to every machine and says so in its start-up log.
# Idempotent: does nothing when embed/secureboot already holds the pinned versions (FORCE=1
# refetches).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
dest="$here/embed/secureboot"
cache="$here/.cache/secureboot"

shim_suite=bookworm
shim_version="1.51~1+deb12u1+16.1-2~deb12u1"
shim_sha256="c2acf5e559664bbadb7ce5789f9a321f39754a34854d3097b8cc0369df513b3b"
grub_suite=trixie
grub_version="1+2.12+9+deb13u4"
grub_sha256="9090ac76b1bb4d009298583c6e5af1e7b2cae8bce96a40d42a271eb2f750b536"

# shellcheck source=lib/debfetch.sh
. "$here/scripts/lib/debfetch.sh"

log() { printf 'fetch-secureboot: %s\n' "$*" >&2; }

want_version="debian shim-signed $shim_version ($shim_suite), grub-efi-amd64-signed $grub_version ($grub_suite)"
if [[ -z ${FORCE:-} && -f $dest/VERSION && $(cat "$dest/VERSION") == "$want_version" &&
	-f $dest/shimx64.efi && -f $dest/grubnetx64.efi ]]; then
	log "embed/secureboot already holds: $want_version; FORCE=1 to refetch"
	exit 0
fi

mkdir -p "$cache" "$dest"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

shim_deb=$(debfetch "$shim_suite" shim-signed "$shim_version" "$shim_sha256" "$cache")
grub_deb=$(debfetch "$grub_suite" grub-efi-amd64-signed "$grub_version" "$grub_sha256" "$cache")
dpkg-deb -x "$shim_deb" "$stage/shim"
dpkg-deb -x "$grub_deb" "$stage/grub"
cp "$stage/shim/usr/lib/shim/shimx64.efi.signed" "$stage/shimx64.efi"
cp "$stage/grub/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed" "$stage/grubnetx64.efi"
echo "$want_version" >"$stage/VERSION"

find "$dest" -mindepth 1 ! -name README.md -delete
cp "$stage/shimx64.efi" "$stage/grubnetx64.efi" "$stage/VERSION" "$dest/"
(cd "$dest" && sha256sum -- *.efi >SHA256SUMS)
log "embed/secureboot now holds: $want_version"
(cd "$dest" && cat SHA256SUMS >&2)
