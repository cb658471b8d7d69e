#!/bin/sh
# The Python bindings' tests (python/test_cowarena.py), for tests/run.sh.
# COWARENA_LIB names the shared library to test (make test sets it);
# PYTHON the interpreter (default python3). Without one: skipped (77).
py=${PYTHON:-python3}
here=$(dirname "$0")
if ! command -v "$py" >/dev/null 2>&1; then
	echo "test_python: skipped: $py not found (the Python bindings are not tested)"
	exit 77
fi
# A library built with a sanitizer (make asan, make tsan) needs its runtime
# loaded first (into the interpreter itself, not a wrapper script such as
# pyenv's shim: TSan crashes the shell); Python's own allocations are not
# checked for leaks.
if [ -n "$COWARENA_LIB" ] && command -v ldd >/dev/null 2>&1; then
	rt=$(ldd "$COWARENA_LIB" 2>/dev/null | awk '/lib[at]san\.so/ { print $3; exit }')
	if [ -n "$rt" ]; then
		py=$("$py" -c 'import sys; print(sys.executable)') || exit 1
		export LD_PRELOAD="$rt${LD_PRELOAD:+ $LD_PRELOAD}"
		export ASAN_OPTIONS="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
	fi
fi
exec "$py" "$here/../python/test_cowarena.py"
