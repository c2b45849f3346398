#!/usr/bin/env bash
# Diagnostics cost per collector tick at about 300, 1,000 and 3,000 processes.
# Usage: scripts/bench-diagnostics.sh [TICKS]
exec bash "$(dirname "$0")/at-process-counts.sh" bench_diagnostics "${1:-41}"
