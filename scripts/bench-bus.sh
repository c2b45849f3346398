#!/usr/bin/env bash
# Helper service benchmarks inside the hermetic bus harness (release build, root):
#   idle  helper CPU and RSS at the default 1 s interval with 1,000 processes (IDLE_SECS, 120)
#   load  20 clients calling GetSnapshot("rss", true, 100) at 10 Hz (LOAD_SECS, 30): helper CPU,
#         RSS, and call latency p50/p99
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p memmon-helper --bins --examples
MEMMON_BUS_BENCH=1 MEMMON_BENCH_IDLE_SECS=${IDLE_SECS:-120} MEMMON_BENCH_LOAD_SECS=${LOAD_SECS:-30} \
  bash tests/bus/run.sh release 2>&1 | grep -E '^(idle|load|clients)'
