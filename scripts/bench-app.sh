#!/usr/bin/env bash
# App benchmarks (release build, glow renderer under Xvfb, embedded mode against the real /proc):
#   frame    UI build + tessellation time per frame, 100 rows and 10,000 rows (bench_frame)
#   startup  process start → first frame showing data (MEMMON_TRACE_STARTUP=1), 5 runs
#   cpu/rss  the app left running for SECS (default 60) at its default 1 s refresh
#   idle     CPU with no new data: `--source helper` with no helper on the bus, so every tick is
#            the same empty view (nothing is sent to the UI, nothing repaints)
# Usage: scripts/bench-app.sh [SECS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
cargo build --release -q -p memmon --bins --examples
target/release/examples/bench_frame 300
display=:71
Xvfb $display -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 & xvfb=$!
trap 'kill $xvfb 2>/dev/null' EXIT
while [ ! -S /tmp/.X11-unix/X71 ]; do sleep 0.05; done
home=$(mktemp -d)
for i in 1 2 3 4 5; do
  DISPLAY=$display HOME=$home MEMMON_TRACE_STARTUP=1 target/release/memmon --source embedded \
    --screenshot "$home/s.png" 2>&1 >/dev/null | grep -o 'first populated frame [0-9]* ms after launch'
done
DISPLAY=$display HOME=$home target/release/memmon --source embedded >/dev/null 2>&1 & app=$!
sleep 5
c0=$(awk '{print $14 + $15}' /proc/$app/stat)
sleep "$secs"
c1=$(awk '{print $14 + $15}' /proc/$app/stat)
rss=$(awk '/VmRSS/ {print $2}' /proc/$app/status)
echo "app: seconds=$secs cpu_percent=$(python3 -c "print(round(100*($c1-$c0)/$(getconf CLK_TCK)/$secs,2))") rss_kb=$rss"
kill $app; wait $app 2>/dev/null || true
DISPLAY=$display HOME=$home DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent \
  target/release/memmon --source helper >/dev/null 2>&1 & app=$!
sleep 5
c0=$(awk '{print $14 + $15}' /proc/$app/stat)
sleep 30
c1=$(awk '{print $14 + $15}' /proc/$app/stat)
echo "app idle (no new data): seconds=30 cpu_percent=$(python3 -c "print(round(100*($c1-$c0)/$(getconf CLK_TCK)/30,2))")"
kill $app; wait $app 2>/dev/null || true
rm -rf "$home"
