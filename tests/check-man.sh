#!/bin/sh
# SPDX-License-Identifier: MIT
# The man pages match the library: every cow_* function that
# BUILD/libcowarena.so exports has a page in docs/man/ (NAME.3, a page of
# its own or a ".so" link to the page it shares), no page names a cow_*
# function that does not exist (file names, NAME lines, references and
# calls in any page), every command of `cowarena --help` is in cowarena(1),
# every ".so" link points at a page there, and every page renders without
# groff warnings (skipped, exit 77, without groff).
# Run by `make test`; prints one line per problem, exits 1 if any.
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
man=$root/docs/man
lib=$build/libcowarena.so
status=0

fail() {
	echo "check-man: $*"
	status=1
}

[ -f "$lib" ] || { echo "check-man: $lib not built"; exit 1; }
syms=$(nm -D --defined-only "$lib" |
	awk '$3 ~ /^cow_[a-z0-9]/ { sub(/@.*/, "", $3); print $3 }' | sort -u)
[ -n "$syms" ] || { echo "check-man: no cow_* symbols in $lib"; exit 1; }

exists() {
	printf '%s\n' "$syms" | grep -qx "$1"
}

# Every exported function has a page.
for s in $syms; do
	[ -f "$man/$s.3" ] || fail "$s is exported but has no page ($man/$s.3)"
done

# Every section-3 page is named after a function that exists, and so is
# every function its NAME line lists.
for p in "$man"/*.3; do
	[ -e "$p" ] || continue
	n=$(basename "$p" .3)
	exists "$n" || fail "$n.3: no such function in $lib"
	for f in $(sed -n '/^\.SH NAME/{n;s/ \\-.*//;s/,/ /g;p;}' "$p"); do
		exists "$f" || fail "$n.3: NAME lists $f, which does not exist"
	done
done

# References (".BR cow_x (3)", "cow_x ()") and calls ("cow_x(") in every
# page name functions that exist.
for p in "$man"/*.[0-9]; do
	for f in $(grep -o 'cow_[a-z0-9_]* \{0,1\}(' "$p" | sed 's/ *($//' |
		sort -u); do
		exists "$f" || fail "$(basename "$p"): names $f, which does not exist"
	done
done

# Every command the tool lists in its --help has an entry in cowarena(1).
tool=$build/cowarena
if [ -x "$tool" ]; then
	cmds=$("$tool" --help | sed -n '/^commands:/,/^[a-z]/{s/^  \([a-z][a-z-]*\) .*/\1/p;}')
	[ -n "$cmds" ] || fail "no commands in the output of cowarena --help"
	for c in $cmds; do
		grep -Eq "^\.BI? \"?(cowarena )?$c( |\"|\$)" "$man/cowarena.1" ||
			fail "cowarena.1: the command '$c' (in cowarena --help) is not documented"
	done
else
	fail "$tool not built"
fi

# ".so" links point at a page that is there; the rest render cleanly.
pages=""
for p in "$man"/*.[0-9]; do
	if grep -q '^\.so ' "$p"; then
		t=$(sed -n 's/^\.so man[0-9]\///p' "$p")
		[ "$(wc -l <"$p")" -eq 1 ] && [ -n "$t" ] && [ -f "$man/$t" ] ||
			fail "$(basename "$p"): .so link to a page that is not in docs/man"
	else
		pages="$pages $p"
	fi
done
if ! command -v groff >/dev/null 2>&1; then
	[ $status -ne 0 ] && exit 1
	echo "check-man: groff is not installed: rendering not checked (skipped)"
	exit 77
fi
for p in $pages; do
	out=$(groff -man -ww -z "$p" 2>&1)
	[ -z "$out" ] || fail "$(basename "$p") renders with warnings: $out"
done
[ $status -eq 0 ] && echo "check-man: $(echo $syms | wc -w) functions, $(ls "$man" | wc -l) pages: ok"
exit $status
