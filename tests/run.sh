#!/bin/sh
# Runs each test program, prints its output, then one summary line.
# A program that exits 77 was skipped as a whole (the kernel lacks a feature,
# or a script its tool). A program still running after TEST_TIMEOUT seconds
# (default 1200: the slowest, under ThreadSanitizer, takes a few minutes)
# is killed and counts as failed, so that a hang (a lock left held by a
# test that crashed, say) fails the run with its name instead of stalling
# it.
passed=0 failed=0 skipped=0 bad=""
for t in "$@"; do
	name=$(basename "$t")
	out=$(timeout -k 10 "${TEST_TIMEOUT:-1200}" "$t" 2>&1)
	rc=$?
	printf '%s\n' "$out"
	if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
		echo "$name: stopped at the time limit (${TEST_TIMEOUT:-1200} s) or killed"
		failed=$((failed + 1)); bad="$bad $name"; continue
	fi
	if [ $rc -eq 77 ]; then
		skipped=$((skipped + 1)); continue
	fi
	# A program without cmocka's output (a script) is one check.
	if ! printf '%s\n' "$out" | grep -q '^\[==========\]'; then
		if [ $rc -eq 0 ]; then
			passed=$((passed + 1))
		else
			failed=$((failed + 1)); bad="$bad $name"
		fi
		continue
	fi
	p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
	f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
	s=$(printf '%s\n' "$out" | sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
	passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
	if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
		failed=$((failed + 1)) # crashed or exited early
	fi
	[ $rc -ne 0 ] && bad="$bad $name"
done
[ -n "$bad" ] && echo "failing programs:$bad"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ -z "$bad" ]
