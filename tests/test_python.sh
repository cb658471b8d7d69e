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
exec "$py" "$here/../python/test_cowarena.py"
