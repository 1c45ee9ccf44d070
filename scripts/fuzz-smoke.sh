#!/usr/bin/env bash
# fuzz-smoke.sh — a short fuzz run of every `func Fuzz…` target in the module (scripts/test.sh
# runs it before the unit tests). Enough to catch a regression that crashes on odd input; it
# is not a fuzzing campaign (for that: go test -fuzz '^FuzzX$' -fuzztime 1000000x ./internal/x/).
#
#   bash scripts/fuzz-smoke.sh            # every target, with the budgets below
#   FUZZTIME=200000x bash scripts/fuzz-smoke.sh   # one budget for every target
#   bash scripts/fuzz-smoke.sh --list     # print the targets and their budgets, run nothing
#   bash scripts/fuzz-smoke.sh DIR        # the module in DIR instead of this repository
#
# Budgets are execution counts (-fuzztime=Nx), never durations: with a duration, Go's fuzz
# coordinator can race its own deadline and fail a target with a bare "context deadline
# exceeded" and no failing input (golang/go#75804, fixed in Go 1.27; go.mod pins 1.26). A count
# has no deadline to race, so a loaded machine only makes the smoke slower, never red.
#
# A target that finds a failing input fails the run: Go writes the input to
# <package>/testdata/fuzz/<target>/ and prints how to reproduce it. Every target runs even
# after a failure, so one run names all of them.
set -euo pipefail

list=
if [[ ${1:-} == --list ]]; then
	list=1
	shift
fi
root=$(cd "${1:-$(dirname "$0")/..}" && pwd -P)
cd "$root"

# Executions per target, sized so each takes 2–4 s on a 2-core machine with nothing else
# running (measured execs/s in parentheses; fuzzing uses one worker per core). A target not
# listed gets default_budget. An entry naming a target that no longer exists fails the run,
# so the table cannot rot.
default_budget=10000x
declare -A budget=(
	[internal/dhcp:FuzzClassify]=20000x      # (7500/s)
	[internal/dhcp:FuzzRespond]=15000x       # (5200/s)
	[internal/distro:FuzzGrubCfg]=50000x     # (20000/s)
	[internal/distro:FuzzIsolinuxCfg]=30000x # (12000/s)
	[internal/distro:FuzzTreeinfo]=30000x    # (11600/s)
	[internal/distro:FuzzDetect]=10000x      # (4800/s; the seed layouts make its baseline slow)
	[internal/iso9660:FuzzBuildIndex]=10000x  # (3500/s)
	[internal/provision:FuzzParseSysInfo]=20000x # (7800/s)
	[internal/provision:FuzzCheckAnswer]=20000x  # (6300/s)
	[internal/iso9660:FuzzReadIndex]=10000x   # (3600/s)
	[internal/secureboot:FuzzImage]=10000x    # (4400/s at load 35: PE/Authenticode/shim parsers)
	[internal/tftp:FuzzRequestName]=25000x   # (8800/s)
	[internal/tftp:FuzzRequest]=15000x       # (4300/s)
)

if (($# > 0)); then
	budget=() # the table is this repository's
fi

count_form='^[1-9][0-9]*x$'
if [[ -n ${FUZZTIME:-} && ! $FUZZTIME =~ $count_form ]]; then
	echo "fuzz-smoke: FUZZTIME must be an execution count such as 50000x, not '$FUZZTIME'" >&2
	echo "fuzz-smoke: (a duration races Go's fuzz coordinator deadline: golang/go#75804)" >&2
	exit 2
fi
if ! [[ $default_budget =~ $count_form ]]; then
	echo "fuzz-smoke: default_budget '$default_budget' is not a count" >&2
	exit 2
fi

# targets prints "DIR TARGET" for every fuzz target in the module's test files, as the go
# command sees them (testdata, vendor and dot-directories are not packages).
targets() {
	local dir files f rel
	go list -f '{{.Dir}} {{join .TestGoFiles " "}} {{join .XTestGoFiles " "}}' ./... |
		while read -r dir files; do
			rel=.
			[[ $dir == "$root" ]] || rel=${dir#"$root"/}
			for f in $files; do
				grep -o '^func Fuzz[A-Za-z0-9_]*' "$dir/$f" | sed "s|^func |$rel |" || true
			done
		done | sort
}

mapfile -t found < <(targets)
if ((${#found[@]} == 0)); then
	echo "fuzz-smoke: no fuzz targets below $root" >&2
	exit 1
fi

declare -A seen=()
failed=()
for line in "${found[@]}"; do
	read -r dir target <<<"$line"
	key="$dir:$target"
	seen[$key]=1
	n=${budget[$key]:-$default_budget}
	if ! [[ $n =~ $count_form ]]; then
		echo "fuzz-smoke: budget '$n' for $key is not a count" >&2
		exit 2
	fi
	n=${FUZZTIME:-$n}
	if [[ -n $list ]]; then
		echo "$dir $target $n"
		continue
	fi
	echo "-- $target ($dir, $n)"
	# -timeout is a safety net against a hung toolchain, ~100× what a target takes; a hanging
	# input is caught by the fuzzer itself (and written out as a failing input).
	if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$n" -timeout 15m "./$dir/"; then
		failed+=("$key")
	fi
done

# Checked after the runs too, so a stale entry never hides a failing target.
stale=()
for key in "${!budget[@]}"; do
	[[ -n ${seen[$key]:-} ]] || stale+=("$key")
done
if ((${#stale[@]})); then
	echo "fuzz-smoke: budget table names targets that do not exist: ${stale[*]}" >&2
	echo "fuzz-smoke: update the table in $0" >&2
	exit 1
fi
if ((${#failed[@]})); then
	echo "fuzz-smoke: FAILED: ${failed[*]} (failing inputs are under <package>/testdata/fuzz/<target>/)" >&2
	exit 1
fi
[[ -n $list ]] || echo "fuzz-smoke: ${#found[@]} targets passed"
