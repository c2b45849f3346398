#!/usr/bin/env bash
# Runs a release example of memmon-helper at about 300, 1,000 and 3,000 processes: extra `sleep`
# processes are started to reach each count and killed afterwards.
# Usage: scripts/at-process-counts.sh EXAMPLE [ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
example=$1; shift
cargo build --release -q -p memmon-helper --examples
sleepers=()
cleanup() { [ ${#sleepers[@]} -eq 0 ] || kill "${sleepers[@]}" 2>/dev/null || true; }
trap cleanup EXIT
for target in 300 1000 3000; do
  now=$(ls -d /proc/[0-9]* | wc -l)
  for _ in $(seq $((target - now))); do sleep 600 & sleepers+=($!); done
  "target/release/examples/$example" "$@"
done
