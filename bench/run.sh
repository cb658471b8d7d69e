#!/bin/sh
# Runs every benchmark in BUILD/bench; extra arguments (e.g. --quick) are
# passed to each. Tables go to stdout and bench/results/.
build=${1:-build}
shift
mkdir -p bench/results
status=0
for b in "$build"/bench/bench_*; do
	[ -x "$b" ] || continue
	"$b" "$@" || { echo "!!! $(basename "$b") failed"; status=1; }
done
exit $status
