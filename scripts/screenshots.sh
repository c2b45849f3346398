#!/usr/bin/env bash
# Makes the AppStream screenshots (assets/screenshots/*.png, 1280×760) from a desktop-like
# session: processes named like a GNOME desktop's (firefox, gnome-shell, Xwayland, code, slack,
# pipewire, …) holding plausible amounts of memory, one leaking process ("node", +1 MiB/s) and,
# for the OOM list, a "java" that grows until a 256 MiB memory cgroup's OOM killer ends it.
# The processes are `memmon-workload pattern …` run through symlinks named like the real
# programs (the kernel takes a process's name from the path it was started by).
#   grid-plot.png   the grid sorted by RSS, the leaking process selected with its plot open
#   growth.png      the same session sorted by Growth (the leaker first)
#   oom-kills.png   the list of OOM kills (needs root and a memory cgroup, v1 or v2)
# The app runs three times, one after the other (embedded mode, light theme, its own Xvfb and
# home each time), for SECS seconds each (default 75) so the plots and the growth estimates have
# history, then saves its window and exits.
# Usage: scripts/screenshots.sh [SECS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-75}
out=assets/screenshots
cargo build --release -q -p memmon -p memmon-helper --bins
memmon=$PWD/target/release/memmon
workload=$PWD/target/release/memmon-workload

tmp=$(mktemp -d)
pids=()
xvfbs=()
cgroup=
cleanup() {
  for p in "${pids[@]}" "${xvfbs[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "$cgroup" ] && rmdir "$cgroup" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# name, pattern, MiB (steady: held; noisy: held every other --period-ms; leak: MiB per second)
session=(
  "firefox steady 612"
  "Isolated Web Co steady 243"
  "Isolated Web Co steady 181"
  "Isolated Web Co steady 96"
  "gnome-shell steady 318"
  "Xwayland steady 87"
  "code steady 431"
  "code steady 164"
  "slack steady 286"
  "thunderbird steady 352"
  "gnome-software steady 148"
  "nautilus steady 93"
  "evolution-data- steady 54"
  "gnome-terminal- steady 61"
  "tracker-miner-f steady 47"
  "pipewire steady 19"
  "wireplumber steady 23"
  "pipewire-pulse steady 14"
  "gsd-xsettings steady 28"
  "ibus-daemon steady 12"
  "evolution steady 212"
  "gjs steady 131"
  "Web Content noisy 120"
  "node leak 2"
  "Isolated Web Co leak 1"
)
mkdir "$tmp/bin"
leaker=
for entry in "${session[@]}"; do
  read -r -a words <<<"$entry"
  n=${#words[@]}
  name="${words[*]:0:n-2}" pattern=${words[n-2]} mib=${words[n-1]}
  ln -sf "$workload" "$tmp/bin/$name"
  args=(pattern "$pattern" --mib "$mib" --seconds $((3 * secs + 120)))
  if [ "$pattern" = noisy ]; then args+=(--period-ms 3000); fi
  "$tmp/bin/$name" "${args[@]}" >/dev/null </dev/null &
  pids+=($!)
  if [ -z "$leaker" ] && [ "$pattern" = leak ]; then leaker=$!; fi
done

# The OOM victim: joins a 256 MiB memory cgroup, then grows 1 MiB per 20 ms once told "go".
oom=no
if [ "$(id -u)" = 0 ]; then
  if [ -d /sys/fs/cgroup/memory ]; then
    cgroup=/sys/fs/cgroup/memory/memmon-screenshots-$$
    mkdir "$cgroup" && echo $((256 << 20)) >"$cgroup/memory.limit_in_bytes"
    if [ -e "$cgroup/memory.memsw.limit_in_bytes" ]; then
      echo $((256 << 20)) >"$cgroup/memory.memsw.limit_in_bytes"
    fi
    oom=yes
  elif grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
    echo +memory >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
    cgroup=/sys/fs/cgroup/memmon-screenshots-$$
    mkdir "$cgroup" && echo $((256 << 20)) >"$cgroup/memory.max" && echo 0 >"$cgroup/memory.swap.max"
    oom=yes
  fi
fi
if [ $oom = yes ]; then
  ln -sf "$workload" "$tmp/bin/java"
  mkfifo "$tmp/go"
  CG=$cgroup sh -c 'echo $$ >"$CG/cgroup.procs" && exec "$0" pattern hog --mib 1024 --step-ms 20' \
    "$tmp/bin/java" <"$tmp/go" >/dev/null &
  pids+=($!)
  exec 3>"$tmp/go"
else
  echo "screenshots: not root or no memory cgroup: skipping oom-kills.png" >&2
fi
sleep 2 # every process has touched its memory

run() { # DISPLAY_NUMBER PNG ARGS…
  local d=$1 png=$2 app
  shift 2
  Xvfb ":$d" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
  xvfbs+=($!)
  while [ ! -S "/tmp/.X11-unix/X$d" ]; do sleep 0.05; done
  mkdir -p "$tmp/home$d"
  DISPLAY=":$d" HOME="$tmp/home$d" XDG_CONFIG_HOME="$tmp/home$d/.config" \
    "$memmon" --source embedded --theme light --screenshot "$tmp/$png" \
    --screenshot-after "$secs" "$@" >"$tmp/$png.log" 2>&1 &
  app=$!
  if [ "$png" = oom-kills.png ]; then
    sleep $((secs / 2))
    echo go >&3 # the hog grows to the cgroup's limit and is killed within a few seconds
    exec 3>&-
  fi
  wait "$app" || { echo "memmon failed making $png:" >&2; cat "$tmp/$png.log" >&2; exit 1; }
  kill "${xvfbs[-1]}"
}
run 81 grid-plot.png --select "$leaker"
run 82 growth.png --sort growth
if [ $oom = yes ]; then
  run 83 oom-kills.png --show-oom-kills
fi
for png in grid-plot.png growth.png oom-kills.png; do
  [ -f "$tmp/$png" ] || continue
  # Smaller files, same pixels (if optipng is installed).
  if command -v optipng >/dev/null; then optipng -quiet -o2 "$tmp/$png"; fi
  cp "$tmp/$png" "$out/$png"
  echo "$out/$png: $(python3 -c "import struct,sys; d=open(sys.argv[1],'rb').read(24); print('%dx%d' % struct.unpack('>II', d[16:24]))" "$out/$png"), $(stat -c %s "$out/$png") bytes"
done
