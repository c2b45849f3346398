#!/usr/bin/env bash
# Peak RSS (VmHWM) of `memmon-helper snapshot --watch 1` (table output to /dev/null) over
# SECONDS (default 60) with about 1,000 processes on the machine. Run as root for Full mode.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
cargo build --release -q -p memmon-helper --bins
sleepers=()
cleanup() { [ ${#sleepers[@]} -eq 0 ] || kill "${sleepers[@]}" 2>/dev/null || true; }
trap cleanup EXIT
now=$(ls -d /proc/[0-9]* | wc -l)
for _ in $(seq $((1000 - now))); do sleep 600 & sleepers+=($!); done
target/release/memmon-helper snapshot --watch 1 > /dev/null 2>/tmp/bench-rss.err &
helper=$!
sleep "$secs"
hwm=$(awk '/VmHWM/ {print $2}' /proc/$helper/status)
rss=$(awk '/VmRSS/ {print $2}' /proc/$helper/status)
cpu=$(awk '{print $14 + $15}' /proc/$helper/stat)
kill -INT $helper; wait $helper
echo "processes=$(ls -d /proc/[0-9]* | wc -l) seconds=$secs peak_rss_kb=$hwm rss_kb=$rss cpu_ticks=$cpu ($(getconf CLK_TCK)/s) mode=$(grep -q . /tmp/bench-rss.err && cat /tmp/bench-rss.err || echo Full)"
