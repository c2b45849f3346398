#!/usr/bin/env bash
# The whole test suite: installs what is missing, then builds with the real eBPF object
# (MEMMON_REQUIRE_EBPF=1 refuses the placeholder) and runs every test. Kernel tests need root.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
export MEMMON_REQUIRE_EBPF=1

cargo fmt --all -- --check
# Lints as errors, every unsafe block with its SAFETY comment.
cargo clippy --locked --all-targets -- -D warnings -W clippy::undocumented_unsafe_blocks

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked 2>&1 | tee "$log" || status=$?
# Real dbus-daemon + polkitd + D-Bus activation, in private namespaces (needs the debug build).
bash tests/bus/run.sh debug 2>&1 | tee -a "$log" || status=$?
# The hardened systemd unit under a real systemd, booted in an isolated systemd-nspawn container.
bash tests/systemd/run.sh debug 2>&1 | tee -a "$log" || status=$?
bash tests/packaging/run.sh 2>&1 | tee -a "$log" || status=$?
# One closing line for the whole run (cargo prints one per test binary).
awk '/^(test result:|bus tests:|systemd tests:|packaging tests:)/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
# A step that failed before running its tests (a build error) has no counts of its own.
[ "$status" = 0 ] || echo "FAILED: a step exited with status $status (see above)"
exit "$status"
