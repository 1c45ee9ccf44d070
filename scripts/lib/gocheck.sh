# gocheck.sh — sourced by run.sh and test.sh: make sure a Go toolchain that can build this
# module is there, before anything else runs, and say what to do when it is not.
#
# go.mod's `go` line is the version the module needs. What happens with an older `go`:
#  - Go 1.21 or newer, GOTOOLCHAIN=auto (Go's default): the go command downloads the needed
#    toolchain from the module proxy by itself and runs it (go.dev/doc/toolchain). Fine.
#  - Go 1.21 or newer, GOTOOLCHAIN=local: it refuses ("go.mod requires go >= …").
#  - Go before 1.21 (Debian 12's golang-go is 1.19): it cannot fetch a toolchain and fails on
#    go.mod's three-part version ("invalid go version '1.26.8': must match format 1.23").

# Where go.dev's tarball installs go (a variable so the tests can point it elsewhere).
gocheck_tarball_bin=/usr/local/go/bin

# gocheck_need prints the Go version go.mod (in the current directory) asks for.
gocheck_need() {
	awk '$1 == "go" { print $2; exit }' go.mod
}

# gocheck_at_least A B succeeds when version A >= version B (both like 1.26.8, 1.21rc2).
gocheck_at_least() {
	[[ $(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1) == "$2" ]]
}

# gocheck_version GO prints the version (1.26.8) of the go binary GO itself, not of a
# toolchain it would switch to: asked outside the module, where go.mod cannot make it switch
# (and download) first.
gocheck_version() {
	local v
	v=$(cd / && GOTOOLCHAIN=local "$1" version 2>/dev/null | awk '{ print $3 }')
	echo "${v#go}"
}

# gocheck_require NAME: exits with a message naming NAME (the calling script) unless the go on
# PATH, or the one in /usr/local/go/bin (where go.dev's tarball goes), can build this module.
# When only the latter can, it is put first on PATH.
gocheck_require() {
	local who=$1 need have go tc
	need=$(gocheck_need)
	if [[ -z $need ]]; then
		echo "$who: no go line in go.mod" >&2
		exit 1
	fi
	go=$(command -v go || true)
	local tarball=$gocheck_tarball_bin/go
	if [[ -x $tarball && $go != "$tarball" ]]; then
		have=$(gocheck_version "$tarball")
		if [[ -z $go ]] || { gocheck_at_least "$have" "$need" && ! gocheck_at_least "$(gocheck_version "$go")" "$need"; }; then
			export PATH=$gocheck_tarball_bin:$PATH
			go=$tarball
		fi
	fi
	if [[ -z $go ]]; then
		echo "$who: Go is not installed. This module needs Go $need (a Go >= 1.21 fetches it itself):" >&2
		echo "$who:   https://go.dev/dl/ — e.g. tar -C /usr/local -xzf go$need.linux-amd64.tar.gz" >&2
		echo "$who: (Debian 12's golang-go package is Go 1.19: too old)" >&2
		exit 1
	fi
	have=$(gocheck_version "$go")
	case $have in
	devel* | "") return 0 ;; # a development build: let the go command judge
	esac
	if gocheck_at_least "$have" "$need"; then
		return 0
	fi
	if ! gocheck_at_least "$have" 1.21; then
		echo "$who: $go is Go $have: too old. go.mod needs Go $need, and a Go before 1.21 cannot fetch a newer toolchain." >&2
		echo "$who: (Debian 12's golang-go is 1.19.) Install Go $need, or any Go >= 1.21, from https://go.dev/dl/" >&2
		echo "$who:   e.g. tar -C /usr/local -xzf go$need.linux-amd64.tar.gz (this script prefers /usr/local/go/bin/go)" >&2
		exit 1
	fi
	tc=$(cd / && "$go" env GOTOOLCHAIN 2>/dev/null)
	case $tc in
	path | *+path)
		# Go runs a go$need it finds on PATH, and downloads nothing.
		command -v "go$need" >/dev/null && return 0
		;&
	local)
		echo "$who: $go is Go $have, go.mod needs Go $need, and GOTOOLCHAIN=$tc stops Go from fetching it." >&2
		echo "$who: Install Go $need (https://go.dev/dl/), or let Go fetch it: GOTOOLCHAIN=auto bash scripts/$who" >&2
		exit 1
		;;
	esac
	echo "$who: $go is Go $have, go.mod needs Go $need: the go command downloads go$need from the module proxy itself (GOTOOLCHAIN=$tc)" >&2
}
