#!/bin/sh
# SPDX-License-Identifier: MIT
# Tests tools/check-layers.sh on small objects built here: calls down pass;
# an edge up, an edge sideways, an edge outside a module's may-use list, a
# module without a layer, a cycle and a stale exception fail, naming the
# edge; a listed exception passes and is reported as known.
#
# usage: tools/test-check-layers.sh [cc]
set -u
cc=${1:-${CC:-cc}}
here=$(cd "$(dirname "$0")" && pwd)
check="$here/check-layers.sh"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail=0

cat > "$dir/layers.txt" <<'L'
top     4
snap    3
commit  3       low
track   2       low
low     1
allow   up2     top     only in the "known" case
L

# obj NAME 'C source': compiles one fixture object into a case directory.
obj() {
	printf '%s\n' "$2" > "$dir/$1.c"
	"$cc" -c -o "$case_dir/$1.o" "$dir/$1.c" || exit 2
}
newcase() {
	case_dir="$dir/$1"
	mkdir -p "$case_dir"
}
# expect pass|fail CASE [text the output must contain]
expect() {
	out=$("$check" -v -l "$dir/layers.txt" "$case_dir"/*.o 2>&1)
	rc=$?
	ok=1
	if [ "$1" = pass ] && [ $rc -ne 0 ]; then ok=0; fi
	if [ "$1" = fail ] && [ $rc -ne 1 ]; then ok=0; fi
	if [ -n "${3:-}" ] && ! printf '%s\n' "$out" | grep -qF -- "$3"; then
		ok=0
	fi
	if [ $ok -eq 1 ]; then
		echo "check-layers self-test: $2: ok"
	else
		echo "check-layers self-test: $2: FAILED (rc $rc, wanted $1${3:+ with \"$3\"})"
		printf '%s\n' "$out" | sed 's/^/    /'
		fail=1
	fi
}

LOW='int cow__low(void) { return 1; }'
TRACK='int cow__low(void); int cow__track(void) { return cow__low(); }'
SNAP='int cow__track(void); int cow__snap(void) { return cow__track(); }'
TOP='int cow__snap(void); int cow__top(void) { return cow__snap(); }'

newcase down
obj low "$LOW"; obj track "$TRACK"; obj snap "$SNAP"; obj top "$TOP"
expect pass "calls down" "calls go down"

newcase up
obj low "$LOW"; obj snap "$SNAP"; obj top "$TOP"
obj track 'int cow__low(void); int cow__snap(void);
int cow__track(void) { return cow__low() + cow__snap(); }'
expect fail "an edge up" "up edge track (layer 2) -> snap (layer 3): cow__snap"

newcase cycle
obj low "$LOW"; obj snap "$SNAP"
obj track 'int cow__snap(void); int cow__track(void) { return cow__snap(); }'
expect fail "a cycle" "CYCLE"

newcase sideways
obj low "$LOW"; obj track "$TRACK"; obj snap "$SNAP"
obj commit 'int cow__snap(void); int cow__commit(void) { return cow__snap(); }'
expect fail "an edge sideways" "sideways edge commit (layer 3) -> snap (layer 3)"

newcase unlisted
obj low "$LOW"; obj track "$TRACK"
obj commit 'int cow__track(void); int cow__commit(void) { return cow__track(); }'
expect fail "an edge outside the may-use list" "edge commit -> track not among"

newcase nolayer
obj low "$LOW"
obj stray 'int cow__low(void); int cow__stray(void) { return cow__low(); }'
expect fail "a module without a layer" "module stray has no layer"

newcase known
obj top 'int cow__top(void) { return 1; }'
obj up2 'int cow__top(void); int cow__up2(void) { return cow__top(); }'
sed -i 's/^top     4/top     4\nup2     1/' "$dir/layers.txt"
expect pass "a listed exception" "known up edge up2 -> top"

newcase stale
obj top 'int cow__top(void) { return 1; }'
obj up2 'int cow__up2(void) { return 2; }'
expect fail "a listed exception that no longer exists" \
	"listed exception up2 -> top no longer exists"

exit $fail
