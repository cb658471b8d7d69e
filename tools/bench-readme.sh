#!/bin/sh
# SPDX-License-Identifier: MIT
# Puts one `make bench` run into docs/bench/ and the README, so that every
# figure the README shows comes from that run:
#  - copies the run's tables (.md), CSV files, plots (.svg) and
#    machine.txt from RESULTS (default bench/results) to docs/bench/;
#  - rewrites each README block between a line "<!-- bench:NAME ... -->"
#    and the line "<!-- /bench:NAME -->":
#      NAME "date": the run's date, kernel, machine, load and a note
#        (machine.txt: date, kernel, cpu, memory, scratch, load, note);
#      NAME "headline" followed by table names: the headline table, from
#        the rows the run wrote to headline-TABLE.md, in that order;
#      any other NAME: docs/bench/NAME.md (its "### title" in bold), and
#        with the word "plot" in the marker, the plot NAME.svg below it.
# Usage: tools/bench-readme.sh [RESULTS]   (from anywhere in the tree)
set -e
root=$(cd "$(dirname "$0")/.." && pwd)
res=${1:-$root/bench/results}
docs=$root/docs/bench
if [ ! -f "$res/machine.txt" ]; then
	echo "bench-readme: no run in $res (run make bench first)" >&2
	exit 1
fi
mkdir -p "$docs"
# RESULTS may be docs/bench itself: only the README is rewritten then.
if [ "$(cd "$res" && pwd)" != "$(cd "$docs" && pwd)" ]; then
	for f in "$res"/*.md "$res"/*.csv "$res"/*.svg "$res/machine.txt"; do
		if [ -f "$f" ]; then cp "$f" "$docs/"; fi
	done
fi
tmp=$(mktemp "$root/README.md.XXXXXX")
trap 'rm -f "$tmp"' EXIT
awk -v docs="$docs" '
function field(key,    line, v) {
	v = ""
	while ((getline line < (docs "/machine.txt")) > 0)
		if (index(line, key ": ") == 1)
			v = substr(line, length(key) + 3)
	close(docs "/machine.txt")
	return v
}
function table(name, plot,    f, line, first, title, blank) {
	f = docs "/" name ".md"
	first = 1
	blank = 0
	while ((getline line < f) > 0) {
		if (first && line ~ /^### /) {
			title = substr(line, 5)
			print "**" title "**"
			first = 0
			continue
		}
		first = 0
		if (line == "") {
			blank++
			continue
		}
		for (; blank > 0; blank--)
			print ""
		print line
	}
	close(f)
	if (plot && (getline line < (docs "/" name ".svg")) > 0) {
		close(docs "/" name ".svg")
		print ""
		print "![" title "](docs/bench/" name ".svg)"
	}
}
function headline(n, names,    i, f, line) {
	print "| what | cowarena | against | ratio |"
	print "|---|---:|---|---:|"
	for (i = 2; i <= n; i++) {
		f = docs "/headline-" names[i] ".md"
		while ((getline line < f) > 0)
			print line
		close(f)
	}
}
/^<!-- bench:[a-z0-9-]+( .*)? -->$/ {
	print
	n = split(substr($0, 6, length($0) - 9), w, " ")
	name = substr(w[1], 7)
	if (name == "date") {
		print "Measured on " field("date") ", " field("kernel") \
		    ", " field("cpu") ", " field("memory") \
		    ", scratch files on " field("scratch") "."
		if (field("load") != "")
			print "Load: " field("load") "."
		if (field("note") != "")
			print field("note")
	}
	else if (name == "headline")
		headline(n, w)
	else
		table(name, $0 ~ / plot -->$/)
	skip = "<!-- /bench:" name " -->"
	next
}
skip != "" && $0 == skip { skip = "" }
skip == "" { print }
' "$root/README.md" >"$tmp"
mv "$tmp" "$root/README.md"
trap - EXIT
