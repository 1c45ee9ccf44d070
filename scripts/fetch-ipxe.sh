#!/usr/bin/env bash
# fetch-ipxe.sh — put Debian's iPXE binaries into embed/ipxe so `go build` embeds them.
#
# Source, in order of preference:
#  1. Debian trixie's `ipxe` package (1.21.1+git20250501), pinned by version and sha256, downloaded
#     from the system's own Debian mirror with a private apt configuration (scripts/lib/debfetch.sh:
#     the system's apt sources are read, not changed; DEBIAN_MIRROR overrides). It has HTTPS,
#     arm64, autoexec.ipxe support and a ~4 s IPv6 wait instead of ~16 s (see docs/ipxe.md).
#  2. The system's `ipxe` package (Debian bookworm: 1.0.0+git-20190125), installed with apt-get if
#     missing. Works, boots slower; chosen automatically when trixie cannot be reached, or forced
#     with IPXE_SOURCE=system.
#
# Nothing here is committed: embed/ipxe/* is gitignored. Run as root (apt). Idempotent: does
# nothing when embed/ipxe already holds the pinned version (set FORCE=1 to refetch).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
dest="$here/embed/ipxe"
cache="$here/.cache/ipxe"
pin_version="1.21.1+git20250501.dad20602+dfsg-1"
pin_sha256="eeaca79dbde0fb86c102bf1d362c6f6a67ed0ddab38b3dd12e1b332339f5dd99"
source=${IPXE_SOURCE:-trixie}

# shellcheck source=lib/debfetch.sh
. "$here/scripts/lib/debfetch.sh"

log() { printf 'fetch-ipxe: %s\n' "$*" >&2; }

if [[ -z ${FORCE:-} && -f $dest/VERSION && -f $dest/undionly.kpxe ]]; then
	log "embed/ipxe already holds $(cat "$dest/VERSION"); FORCE=1 to refetch"
	exit 0
fi

mkdir -p "$cache" "$dest"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

fetch_trixie() {
	local deb
	deb=$(debfetch trixie ipxe "$pin_version" "$pin_sha256" "$cache") || return 1
	dpkg-deb -x "$deb" "$stage/root"
	local lib="$stage/root/usr/lib/ipxe"
	cp "$lib/undionly.kpxe" "$lib/snponly.efi" "$stage/"
	cp "$lib/ipxe-amd64.efi" "$stage/ipxe.efi"
	cp "$lib/ipxe-arm64.efi" "$stage/ipxe-arm64.efi"
	echo "debian-trixie ipxe $pin_version" >"$stage/VERSION"
}

fetch_system() {
	if ! dpkg-query -W -f='${Status}' ipxe 2>/dev/null | grep -q "ok installed"; then
		log "installing Debian's ipxe package"
		# Package lists first: a fresh system or container image (Docker's debian and golang
		# images) has none, and apt-get install would not find the package.
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ipxe >&2
	fi
	local lib=/usr/lib/ipxe
	cp "$lib/undionly.kpxe" "$stage/"
	cp "$lib/snponly.efi" "$stage/" 2>/dev/null || cp /usr/lib/ipxe/snponly.efi "$stage/"
	if [[ -f $lib/ipxe-amd64.efi ]]; then cp "$lib/ipxe-amd64.efi" "$stage/ipxe.efi"; else cp "$lib/ipxe.efi" "$stage/ipxe.efi"; fi
	if [[ -f $lib/ipxe-arm64.efi ]]; then cp "$lib/ipxe-arm64.efi" "$stage/"; fi
	echo "debian-system ipxe $(dpkg-query -W -f='${Version}' ipxe)" >"$stage/VERSION"
}

case $source in
trixie) fetch_trixie || { log "Debian trixie not reachable or package refused; falling back to the system's ipxe package"; fetch_system; } ;;
system) fetch_system ;;
*) log "IPXE_SOURCE must be trixie or system, not '$source'"; exit 2 ;;
esac

find "$dest" -mindepth 1 ! -name README.md -delete
(cd "$stage" && cp undionly.kpxe snponly.efi ipxe.efi VERSION "$dest/" && { [[ -f ipxe-arm64.efi ]] && cp ipxe-arm64.efi "$dest/" || true; })
(cd "$dest" && sha256sum -- *.kpxe *.efi >SHA256SUMS)
log "embed/ipxe now holds: $(cat "$dest/VERSION")"
(cd "$dest" && cat SHA256SUMS >&2)
