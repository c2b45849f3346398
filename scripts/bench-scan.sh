#!/usr/bin/env bash
# /proc scan benchmark at about 300, 1,000 and 3,000 processes. Prints one line per size.
# Usage: scripts/bench-scan.sh [ROUNDS]
exec bash "$(dirname "$0")/at-process-counts.sh" bench_scan "${1:-21}"
