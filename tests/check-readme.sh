#!/bin/sh
# SPDX-License-Identifier: MIT
# The README's example cannot rot: its code block is examples/readme.c
# (without the SPDX line), the program built from it (BUILD/examples/readme)
# runs and checks its own results, and what it prints is the README's
# "It prints" block. Run by `make test`.
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
status=0

# The n-th fenced block after "## Example", without its fences.
block() {
	awk -v want="$1" '
		/^## / { inex = ($0 == "## Example") }
		inex && /^```/ { if (inblk) { inblk = 0; n++; next }
				 inblk = 1; next }
		inex && inblk && n + 1 == want { print }
	' "$root/README.md"
}

block 1 >"$tmp/code"
sed 1d "$root/examples/readme.c" >"$tmp/file"
if ! diff -u "$tmp/file" "$tmp/code" >"$tmp/diff"; then
	echo "check-readme: the README's example differs from examples/readme.c:"
	cat "$tmp/diff"
	status=1
fi
if ! "$build/examples/readme" >"$tmp/out" 2>&1; then
	echo "check-readme: $build/examples/readme failed:"
	cat "$tmp/out"
	exit 1
fi
block 2 >"$tmp/want"
if ! diff -u "$tmp/want" "$tmp/out"; then
	echo "check-readme: the README's \"It prints\" differs from the output"
	status=1
fi
[ $status -eq 0 ] && echo "check-readme: the README's example is examples/readme.c and prints what it says: ok"
exit $status
