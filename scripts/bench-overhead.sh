#!/usr/bin/env bash
# eBPF overhead benchmark (root): calls/s of an mmap+munmap loop and of an untraced getppid loop
# under four configurations, alternated round by round so machine noise hits all of them:
#   none      no tracing
#   empty     empty programs on the same tracepoints memmon uses (the kernel's floor)
#   memmon    memmon's programs
#   bpftrace  the bpftrace one-liner counting per-PID mmap/munmap/brk entries
# Usage: scripts/bench-overhead.sh [ROUNDS] [SECONDS_PER_RUN]   (prints a Markdown table)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-7}
secs=${2:-2}
command -v bpftrace >/dev/null || { echo "bench-overhead: apt-get install bpftrace" >&2; exit 1; }
cargo build --release -q -p memmon-helper --bins --examples
workload=target/release/memmon-workload
attach=target/release/examples/attach
out=$(mktemp -d)
tracer_pid=

start_tracer() {
  local fifo=$out/ctl
  rm -f "$fifo"; mkfifo "$fifo"
  case $1 in
    none) return ;;
    empty|memmon)
      "$attach" "$1" < "$fifo" > "$out/tracer.out" 2>&1 & tracer_pid=$!
      exec 9> "$fifo"
      until grep -q attached "$out/tracer.out" 2>/dev/null; do sleep 0.05; kill -0 $tracer_pid; done ;;
    bpftrace)
      bpftrace -e 'tracepoint:syscalls:sys_enter_mmap,tracepoint:syscalls:sys_enter_munmap,tracepoint:syscalls:sys_enter_brk { @[pid] = count(); }' \
        > "$out/tracer.out" 2>&1 & tracer_pid=$!
      until grep -q Attaching "$out/tracer.out" 2>/dev/null; do sleep 0.05; kill -0 $tracer_pid; done
      sleep 0.5 ;;
  esac
}

stop_tracer() {
  [ -n "$tracer_pid" ] || return 0
  if [ "$1" = bpftrace ]; then kill -INT $tracer_pid; else exec 9>&-; fi
  wait $tracer_pid 2>/dev/null || true
  tracer_pid=
}

for round in $(seq "$rounds"); do
  for cfg in none empty memmon bpftrace; do
    start_tracer $cfg
    m=$("$workload" loop-mmap --seconds "$secs" | awk '{print $2}')
    g=$("$workload" loop-getppid --seconds "$secs" | awk '{print $2}')
    stop_tracer $cfg
    echo "$cfg $m $g" >> "$out/results"
    echo "round $round $cfg mmap+munmap=$m/s getppid=$g/s" >&2
  done
done

python3 - "$out/results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    cfg, m, g = line.split()
    rows.setdefault(cfg, ([], []))
    rows[cfg][0].append(float(m)); rows[cfg][1].append(float(g))
med = {c: (statistics.median(v[0]), statistics.median(v[1])) for c, v in rows.items()}
ns = lambda rate: 1e9 / rate
# An mmap+munmap iteration is two traced syscalls; report the added cost per syscall.
added = {c: ((ns(med[c][0]) - ns(med['none'][0])) / 2, ns(med[c][1]) - ns(med['none'][1])) for c in med}
print("| config | mmap+munmap iter/s (median) | added ns per traced syscall | vs empty floor | getppid calls/s (median) | added ns per untraced call |")
print("|---|---|---|---|---|---|")
for c in ["none", "empty", "memmon", "bpftrace"]:
    floor = added['empty'][0]
    ratio = "—" if c == "none" else f"{added[c][0] / floor:.2f}×"
    print(f"| {c} | {med[c][0]:,.0f} | {added[c][0]:+.0f} | {ratio} | {med[c][1]:,.0f} | {added[c][1]:+.0f} |")
PY
rm -rf "$out"
