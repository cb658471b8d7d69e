#!/bin/sh
# Runs every example in BUILD/examples, then the Python ones (with python3),
# each printing what it shows.
build=${1:-build}
status=0
# The write-ahead logs in /tmp (where the examples make their files): an
# example removes what it made, its logs and their spares included.
logs() { ls -d /tmp/*.cowlog* 2>/dev/null || true; }
for e in "$build"/examples/*; do
	[ -x "$e" ] || continue
	echo "=== $(basename "$e")"
	before=$(logs)
	"$e" || { echo "!!! $(basename "$e") failed"; status=1; }
	for f in $(logs); do
		case " $(echo $before) " in
		*" $f "*) ;;
		*) echo "!!! $(basename "$e") left $f behind"; status=1 ;;
		esac
	done
	echo
done
# The Python examples, on the library just built.
for e in "$(dirname "$0")"/*.py; do
	[ -f "$e" ] || continue
	echo "=== $(basename "$e")"
	if ! command -v python3 >/dev/null 2>&1; then
		echo "skipped: python3 not found"
		echo
		continue
	fi
	COWARENA_LIB="$build/libcowarena.so.0" python3 "$e" ||
		{ echo "!!! $(basename "$e") failed"; status=1; }
	echo
done
exit $status
