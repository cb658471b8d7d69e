#!/bin/sh
# Runs every benchmark in BUILD/bench; extra arguments (e.g. --quick) are
# passed to each. Tables go to stdout and, except with --quick, to
# bench/results/ (markdown, CSV, and SVG plots where gnuplot is installed).
build=${1:-build}
shift
mkdir -p bench/results
case " $* " in
*" --quick "*) ;;
*)
	{
		echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
		echo "kernel: $(uname -sr)"
		echo "cpu: $(nproc) x $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)"
		echo "memory: $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
		echo "scratch: $(df -T /var/tmp | awk 'NR == 2 {print $2 " on " $1}')"
		echo "load: $(cut -d' ' -f1 /proc/loadavg) (1-minute average at the start, $(nproc) CPUs)"
	} >bench/results/machine.txt
	;;
esac
status=0
for b in "$build"/bench/bench_*; do
	[ -x "$b" ] || continue
	echo "## $(basename "$b")"
	echo
	"$b" --out bench/results "$@" || { echo "!!! $(basename "$b") failed"; status=1; }
done
exit $status
