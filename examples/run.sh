#!/bin/sh
# Runs every example in BUILD/examples, each printing what it shows.
build=${1:-build}
status=0
for e in "$build"/examples/*; do
	[ -x "$e" ] || continue
	echo "=== $(basename "$e")"
	"$e" || { echo "!!! $(basename "$e") failed"; status=1; }
	echo
done
exit $status
