#!/usr/bin/env bash
# What a call-site session costs, side by side in one run (BENCHMARKS.md, "Call sites"):
# ns per malloc+free and per mmap+munmap pair of a C loop (scripts/bench/alloc_loop.c), with no
# session, with a session on that process, and (mappings) with a session on another, idle one.
# Rounds alternate the conditions; prints each condition's median. Needs root and a release build
# (`cargo build --release -p memmon-helper`). Usage: scripts/bench-callsites.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
helper=target/release/memmon-helper
[ -x "$helper" ] || { echo "build $helper first"; exit 1; }
bin=$(mktemp -d)
trap 'rm -rf "$bin"; kill $(jobs -p) 2>/dev/null || true' EXIT
cc -O2 -o "$bin/alloc_loop" scripts/bench/alloc_loop.c
sleep 600 & idle=$!

# run KIND N SESSION_ARGS... -> ns per pair ("" SESSION_ARGS: no session; "other": on $idle)
run() {
  local kind=$1 n=$2 target=$3; shift 3
  coproc LOOP { exec "$bin/alloc_loop" "$kind" "$n"; }
  local pid=$LOOP_PID line hp=
  read -r line <&"${LOOP[0]}"
  case $target in
    self) "$helper" callsites "$pid" --seconds 60 "$@" --json > /dev/null & hp=$! ;;
    other) "$helper" callsites "$idle" --seconds 60 "$@" --json > /dev/null & hp=$! ;;
  esac
  if [ -n "$hp" ]; then
    for _ in $(seq 100); do bpftool prog show 2>/dev/null | grep -q 'name cs_' && break; sleep 0.05; done
    sleep 0.3
  fi
  echo go >&"${LOOP[1]}"
  read -r line <&"${LOOP[0]}"
  wait "$LOOP_PID" 2>/dev/null || true
  if [ -n "$hp" ]; then kill -INT "$hp"; wait "$hp" 2>/dev/null || true; fi
  echo "$line"
}

declare -A results
conditions=(
  "malloc 2000000 none"
  "malloc 200000 self --source heap --sample 1"
  "malloc 1000000 self --source heap --sample 1000"
  "malloc 1000000 self --source heap"
  "mmap 200000 none"
  "mmap 200000 other --source mappings"
  "mmap 50000 self --source mappings"
)
for r in $(seq "$rounds"); do
  for c in "${conditions[@]}"; do
    # shellcheck disable=SC2086
    v=$(run $c)
    results[$c]+="$v "
  done
done
for c in "${conditions[@]}"; do
  median=$(tr ' ' '\n' <<<"${results[$c]}" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  printf '%-48s median %8s ns/pair  (%s)\n' "$c" "$median" "${results[$c]}"
done
