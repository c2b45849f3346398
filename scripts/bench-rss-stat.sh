#!/usr/bin/env bash
# High-resolution mode (kmem:rss_stat) overhead on a loop touching fresh pages. Needs root.
# Usage: scripts/bench-rss-stat.sh [ROUNDS] [SECONDS_PER_RUN]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p memmon-helper --examples
target/release/examples/bench_rss_stat "${1:-9}" "${2:-1}"
