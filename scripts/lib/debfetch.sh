# debfetch.sh — sourced by the fetch scripts: download one pinned Debian package from another
# suite (e.g. trixie on a bookworm host) without touching the system's apt setup, and extract it.
#
# The mirror is never written down here: it comes from the system's own apt configuration
# (`apt-get indextargets`, so deb822 .sources and one-line .list files both count), or from
# DEBIAN_MIRROR when set. Proxies and other settings in /etc/apt/apt.conf.d apply as usual,
# so a site mirror or an apt proxy just works.

# debfetch_mirror prints the URI of the repository the system uses for its own Debian release
# (component main), e.g. the site mirror. Fails when none is configured.
#
# `apt-get indextargets` lists only what `apt-get update` has fetched; a fresh container image
# (Docker's debian and golang images ship without /var/lib/apt/lists) lists nothing. Then the
# URIs apt *would* fetch (`apt-get --print-uris update`, which reads the sources and downloads
# nothing) say the same: <REPO_URI>dists/<SUITE>/main/binary-…/Packages.
debfetch_mirror() {
	if [[ -n ${DEBIAN_MIRROR:-} ]]; then
		echo "${DEBIAN_MIRROR%/}"
		return
	fi
	local codename targets uri
	codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
	targets=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' 2>/dev/null)
	if [[ -z $targets ]]; then
		targets=$(apt-get --print-uris update 2>/dev/null |
			sed -n "s|^'\(.*/\)dists/\([^/]*\)/\([^/]*\)/binary-[^/]*/Packages[^']*'.*|\1 \2 \3|p")
	fi
	uri=$(awk -v c="$codename" '$3 == "main" && ($2 == c || c == "") { print $1; exit }' <<<"$targets")
	if [[ -z $uri ]]; then
		uri=$(awk '$3 == "main" && $2 !~ /-(security|updates|backports)$/ { print $1; exit }' <<<"$targets")
	fi
	if [[ -z $uri ]]; then
		echo "debfetch: no Debian mirror in the system's apt configuration (set DEBIAN_MIRROR)" >&2
		return 1
	fi
	echo "${uri%/}"
}

# debfetch SUITE PACKAGE VERSION SHA256 CACHE_DIR: make sure CACHE_DIR holds PACKAGE_VERSION's
# .deb with that sha256 (download it from SUITE of the system's mirror if not), print its path.
# A .deb whose sha256 differs is deleted and refused.
debfetch() {
	local suite=$1 pkg=$2 version=$3 sha=$4 cache=$5
	local deb="$cache/${pkg}_${version//:/%3a}.deb"
	mkdir -p "$cache"
	if [[ ! -f $deb ]] || ! echo "$sha  $deb" | sha256sum -c --status; then
		local mirror apt
		mirror=$(debfetch_mirror) || return 1
		apt=$(mktemp -d)
		mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/dl"
		echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" >"$apt/sources.list"
		: >"$apt/status"
		local opts=(-o "Dir::Etc::sourcelist=$apt/sources.list" -o "Dir::Etc::sourceparts=-"
			-o "Dir::State::Lists=$apt/lists" -o "Dir::State::status=$apt/status"
			-o "Dir::Cache=$apt/cache" -o "APT::Sandbox::User=root" -o "Debug::NoLocking=1")
		echo "debfetch: downloading $pkg=$version from $suite" >&2
		if ! apt-get "${opts[@]}" -qq update >&2 ||
			! (cd "$apt/dl" && apt-get "${opts[@]}" -qq download "$pkg=$version" >&2); then
			rm -rf "$apt"
			return 1
		fi
		mv "$apt"/dl/"${pkg}"_*.deb "$deb"
		rm -rf "$apt"
	fi
	if ! echo "$sha  $deb" | sha256sum -c --status; then
		echo "debfetch: sha256 mismatch for $deb (want $sha); refusing it" >&2
		rm -f "$deb"
		return 1
	fi
	echo "$deb"
}
