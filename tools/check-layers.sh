#!/bin/sh
# SPDX-License-Identifier: MIT
# Checks that calls between the library's modules go down the layers:
# reads the symbols of the object files with nm, draws an edge from each
# object to every other object that defines a symbol it uses, and compares
# the edges with the layer table (tools/layers.txt, mirrored in
# docs/DESIGN.md). It fails, naming the edge and the symbols, on an edge up
# or sideways that the table does not list as a known exception, on a
# module the table does not place, on a cycle, and on a listed exception
# that no longer exists (so the list only shrinks).
#
# usage: tools/check-layers.sh [-l layers.txt] [-v] file.o...
# -v also lists the edges that pass and the known exceptions.
set -eu
layers="$(dirname "$0")/layers.txt"
verbose=0
while [ $# -gt 0 ]; do
	case "$1" in
	-l) layers="$2"; shift 2 ;;
	-v) verbose=1; shift ;;
	*) break ;;
	esac
done
if [ $# -eq 0 ]; then
	echo "usage: $0 [-l layers.txt] [-v] file.o..." >&2
	exit 2
fi
NM=${NM:-nm}
# POSIX format, one symbol a line: "file.o: name type [value size]".
syms=$($NM -A -P -g "$@") || { echo "check-layers: nm failed" >&2; exit 2; }
printf '%s\n' "$syms" | awk -v layers="$layers" -v verbose="$verbose" '
function modname(f) {
	sub(/:$/, "", f); sub(/.*\//, "", f); sub(/\.o$/, "", f)
	return f
}
# Depth-first search for cycles; a back edge closes one.
function dfs(m,    i, t) {
	state[m] = 1; stack[++depth] = m
	for (i = 1; i <= nout[m]; i++) {
		t = out[m, i]
		if (state[t] == 1)
			report_cycle(t)
		else if (state[t] == 0)
			dfs(t)
	}
	depth--; state[m] = 2
}
function report_cycle(t,    i, s, known, e) {
	s = ""; known = 1
	for (i = 1; i <= depth; i++)
		if (stack[i] == t) break
	for (; i <= depth; i++) {
		s = s stack[i] " -> "
		e = stack[i] SUBSEP (i < depth ? stack[i + 1] : t)
		if (!(e in allow) && !(e in down)) known = 0
	}
	s = s t
	if (known) {
		if (verbose) printf "check-layers: known cycle (listed exceptions): %s\n", s
	} else {
		printf "check-layers: CYCLE: %s\n", s
		bad++
	}
}
BEGIN {
	while ((getline line < layers) > 0) {
		sub(/#.*/, "", line)
		n = split(line, w, /[ \t]+/)
		if (w[1] == "") { for (i = 1; i < n; i++) w[i] = w[i + 1]; n-- }
		if (n == 0) continue
		if (w[1] == "allow") {
			reason = line
			sub(/^[ \t]*allow[ \t]+[^ \t]+[ \t]+[^ \t]+[ \t]*/, "", reason)
			allow[w[2], w[3]] = reason
		} else {
			rank[w[1]] = w[2] + 0
			# optional third column: the only lower modules it may use
			if (n >= 3) {
				only[w[1]] = 1
				k = split(w[3], u, /,/)
				for (i = 1; i <= k; i++) may[w[1], u[i]] = 1
			}
		}
	}
	close(layers)
	if (length(rank) == 0) {
		printf "check-layers: no layers read from %s\n", layers
		exit 2
	}
}
{
	f = modname($1); name = $2; type = $3
	mods[f] = 1
	if (type == "U" || type == "w" || type == "v")
		use[f, name] = 1
	else
		def[name] = f
}
END {
	bad = 0
	for (m in mods)
		if (!(m in rank)) {
			printf "check-layers: module %s has no layer in %s\n", m, layers
			bad++
		}
	for (k in use) {
		split(k, p, SUBSEP); f = p[1]; s = p[2]
		if (!(s in def) || def[s] == f) continue
		t = def[s]
		e = f SUBSEP t
		if (!(e in edge)) {
			edge[e] = 1
			out[f, ++nout[f]] = t
		}
		via[e] = via[e] " " s
	}
	for (e in edge) {
		split(e, p, SUBSEP); f = p[1]; t = p[2]
		if (!(f in rank) || !(t in rank)) continue
		if (rank[f] > rank[t] && (!(f in only) || (e in may))) {
			down[e] = 1
			if (verbose)
				printf "check-layers: ok %s -> %s\n", f, t
			continue
		}
		dir = rank[f] == rank[t] ? "sideways" : rank[f] < rank[t] ? "up" : "unlisted"
		if (e in allow) {
			nknown++
			if (verbose) printf "check-layers: known %s edge %s -> %s (%s):%s\n", \
				dir == "unlisted" ? "unlisted" : dir, f, t, allow[e], via[e]
			continue
		}
		if (dir == "unlisted")
			printf "check-layers: edge %s -> %s not among the modules %s may use:%s\n", \
				f, t, f, via[e]
		else
			printf "check-layers: %s edge %s (layer %d) -> %s (layer %d):%s\n", \
				dir, f, rank[f], t, rank[t], via[e]
		bad++
	}
	for (e in allow) {
		split(e, p, SUBSEP)
		if (!(e in edge) && (p[1] in mods) && (p[2] in mods)) {
			printf "check-layers: listed exception %s -> %s no longer exists: remove it from %s\n", \
				p[1], p[2], layers
			bad++
		} else if (e in down) {
			printf "check-layers: listed exception %s -> %s is a legal edge now: remove it from %s\n", \
				p[1], p[2], layers
			bad++
		}
	}
	for (m in mods)
		if (state[m] == 0) { depth = 0; dfs(m) }
	if (bad) {
		printf "check-layers: %d problem(s)\n", bad
		exit 1
	}
	n = 0; for (e in edge) n++
	if (nknown)
		printf "check-layers: %d modules, %d edges; calls go down but for %d known exceptions listed in %s (-v shows them)\n", \
			length(mods), n, nknown, layers
	else
		printf "check-layers: %d modules, %d edges, calls go down\n", length(mods), n
}'
