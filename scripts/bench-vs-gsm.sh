#!/usr/bin/env bash
# memmon side by side with GNOME System Monitor (Debian's gnome-system-monitor), same Xvfb, same
# run: CPU (utime+stime of the process, all threads, from /proc/PID/stat) over SECS seconds and
# RSS (VmRSS) at the end, at 300 and 3,000 processes. Everything runs in a new PID namespace with
# its own /proc (unshare --pid --mount-proc), so both apps see exactly the processes started here —
# `sleep`s added to reach the count — whatever else runs on the machine; they all end with it. Each app is started alone, left WARM seconds, then measured;
# the two alternate (order swapped every round) for ROUNDS rounds per size. Medians and the ratio
# memmon/GSM are printed.
#   memmon: release build, glow renderer (llvmpipe), embedded mode, default settings (sorted by
#           RSS, the grid showing the top 100), 1 s refresh, window 1280×760.
#   GSM:    the Processes tab, update-interval 1000 ms, all users' processes (GSettings keyfile
#           backend in a private HOME, a private session bus), default window size.
# Usage: scripts/bench-vs-gsm.sh [ROUNDS] [SECS] [WARM]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
secs=${2:-60}
warm=${3:-10}
sizes=(300 3000)
if [ -z "${MEMMON_BENCH_IN_NS:-}" ]; then
  if ! command -v gnome-system-monitor >/dev/null; then
    apt-get install -y -q gnome-system-monitor >/dev/null
  fi
  cargo build --release -q -p memmon --bins
fi
if [ -z "${MEMMON_BENCH_IN_NS:-}" ]; then
  exec unshare --pid --fork --mount-proc env MEMMON_BENCH_IN_NS=1 "$0" "$@"
fi
memmon=$PWD/target/release/memmon
hz=$(getconf CLK_TCK)

tmp=$(mktemp -d)
sleeps=()
xvfb=
bus=
cleanup() {
  for p in "${sleeps[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$xvfb" ] && kill "$xvfb" 2>/dev/null
  [ -n "$bus" ] && kill "$bus" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

display=:74
Xvfb $display -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
while [ ! -S /tmp/.X11-unix/X74 ]; do sleep 0.05; done
export DISPLAY=$display HOME=$tmp XDG_CONFIG_HOME=$tmp/.config XDG_RUNTIME_DIR=$tmp/run
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
read -r DBUS_SESSION_BUS_ADDRESS bus < <(dbus-daemon --session --fork --print-address=1 --print-pid=1 | paste -sd' ')
export DBUS_SESSION_BUS_ADDRESS GSETTINGS_BACKEND=keyfile NO_AT_BRIDGE=1
gsettings set org.gnome.gnome-system-monitor update-interval 1000
gsettings set org.gnome.gnome-system-monitor current-tab processes
gsettings set org.gnome.gnome-system-monitor show-whose-processes all

processes() { find /proc -maxdepth 1 -name '[0-9]*' 2>/dev/null | wc -l; }

# Starts app $1, waits $warm s, measures $secs s; prints "cpu_percent rss_kb".
measure() {
  local app=$1 pid
  case $app in
    memmon) "$memmon" --source embedded >/dev/null 2>&1 & pid=$! ;;
    gsm) gnome-system-monitor >/dev/null 2>&1 & pid=$! ;;
  esac
  sleep "$warm"
  local c0 c1 rss
  c0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  sleep "$secs"
  c1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  python3 -c "print(round(100*($c1-$c0)/$hz/$secs, 2), $rss)"
}

summary=()
for size in "${sizes[@]}"; do
  while [ "$(processes)" -lt "$size" ]; do
    sleep 100000 &
    sleeps+=($!)
  done
  declare -A cpu=() rss=()
  for round in $(seq 1 "$rounds"); do
    if [ $((round % 2)) = 1 ]; then order=(memmon gsm); else order=(gsm memmon); fi
    for app in "${order[@]}"; do
      read -r c r < <(measure "$app")
      cpu[$app]+="$c "
      rss[$app]+="$r "
      echo "processes=$(processes) round=$round app=$app seconds=$secs cpu_percent=$c rss_kb=$r"
    done
  done
  summary+=("$(python3 - "$size" "${cpu[memmon]}" "${cpu[gsm]}" "${rss[memmon]}" "${rss[gsm]}" <<'EOF'
import statistics as s, sys
size = sys.argv[1]
cm, cg, rm, rg = (s.median(float(x) for x in a.split()) for a in sys.argv[2:6])
print(f"size={size} memmon_cpu_percent={cm:.2f} gsm_cpu_percent={cg:.2f} cpu_ratio={cm / cg:.2f} "
      f"memmon_rss_kb={rm:.0f} gsm_rss_kb={rg:.0f} rss_ratio={rm / rg:.2f}")
EOF
)")
  unset cpu rss
done
printf '%s\n' "${summary[@]}"
