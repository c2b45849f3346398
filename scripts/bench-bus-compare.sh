#!/usr/bin/env bash
# The helper service benchmark (scripts/bench-bus.sh) side by side with the helper of an older
# commit: builds REV in a worktree with its own target dir, then alternates old/new ROUNDS times.
#   sudo scripts/bench-bus-compare.sh REV [ROUNDS]      (IDLE_SECS, LOAD_SECS as in bench-bus.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: bench-bus-compare.sh REV [ROUNDS]}; rounds=${2:-2}
old=$PWD/target/compare-$(git rev-parse --short "$rev")
[ -d "$old" ] || git worktree add -f "$old" "$rev" >/dev/null
(cd "$old" && MEMMON_REQUIRE_EBPF=1 CARGO_TARGET_DIR="$old/target" \
  cargo build --release -q -p memmon-helper --bins --examples)
cargo build --release -q -p memmon-helper --bins --examples
for round in $(seq "$rounds"); do
  for tree in "$old" "$PWD"; do
    echo "== round $round $([ "$tree" = "$PWD" ] && echo now || echo "$rev")"
    (cd "$tree" && MEMMON_BUS_BENCH=1 MEMMON_BENCH_IDLE_SECS=${IDLE_SECS:-60} \
      MEMMON_BENCH_LOAD_SECS=${LOAD_SECS:-30} bash tests/bus/run.sh release 2>&1 |
      grep -E '^(idle|load|clients)')
  done
done
