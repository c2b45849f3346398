#!/usr/bin/env bash
# Hermetic system-bus tests: a real dbus-daemon --system, real polkitd, the helper installed with
# `make install PREFIX=/usr` into throw-away overlays of /usr and /etc, D-Bus activation through
# the real setuid launch helper, and clients running as non-root test users. Everything happens
# in private PID and mount namespaces, so the machine is untouched and no daemon survives.
# Needs root. Usage: tests/bus/run.sh [PROFILE]   (binaries from target/PROFILE, default debug)
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
profile=${1:-debug}

if [ "${MEMMON_BUS_INSIDE:-}" != 1 ]; then
  [ "$(id -u)" = 0 ] || { echo "bus tests need root"; [ "${CI:-}" = true ] && exit 1; exit 0; }
  needed=(memmon-helper memmon-workload examples/bus_probe)
  [ -n "${MEMMON_BUS_BENCH:-}" ] || needed+=(memmon)
  for b in "${needed[@]}"; do
    [ -x "target/$profile/$b" ] || { echo "target/$profile/$b missing: build it first"; exit 1; }
  done
  export MEMMON_BUS_INSIDE=1
  exec unshare --pid --fork --mount --propagation private --mount-proc bash "$0" "$@"
fi

pass=0; fail=0
ok()   { pass=$((pass + 1)); echo "ok   $*"; }
bad()  { fail=$((fail + 1)); echo "FAIL $*"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }

tmp=$(mktemp -d /tmp/memmon-bus.XXXXXX)
chmod 755 "$tmp"
# Everything the run leaves (the overlays' upper layers hold a full install, ~1 GB with debug
# binaries) goes on every exit; the overlays themselves die with this mount namespace. Later
# cleanups (the apps cgroups) add themselves to `on_exit`.
overlaid=()
on_exit() {
  local d
  # On a failure, the bus daemon's log (the helper logs there) is the evidence: show its end.
  if [ "${fail:-0}" != 0 ] && [ -f "$tmp/daemon.log" ]; then
    echo "--- last 60 lines of the bus daemon's log ($tmp/daemon.log) ---"
    tail -n 60 "$tmp/daemon.log"
  fi
  for d in "${overlaid[@]}"; do umount -l "/$d" 2>/dev/null; done
  rm -rf --one-file-system "$tmp"
}
trap 'on_exit' EXIT
for d in usr etc var; do
  mkdir -p "$tmp/$d-up" "$tmp/$d-work"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$tmp/$d-up,workdir=$tmp/$d-work" "/$d" &&
    overlaid+=("$d")
done
mount -t tmpfs tmpfs /run/dbus 2>/dev/null || { mkdir -p /run/dbus && mount -t tmpfs tmpfs /run/dbus; }
mkdir -p "$tmp/bin"
cp "target/$profile/memmon-workload" "target/$profile/examples/bus_probe" "$tmp/bin/"
[ -x "target/$profile/memmon" ] && cp "target/$profile/memmon" "$tmp/bin/"
chmod -R a+rx "$tmp/bin"

# The project's real install into the overlaid /usr: `make install`, or the Debian package when
# MEMMON_DEB names one (dpkg -i, with its maintainer scripts).
if [ -n "${MEMMON_DEB:-}" ]; then
  dpkg -i "$MEMMON_DEB" >/dev/null || { echo "dpkg -i $MEMMON_DEB failed"; exit 1; }
else
  make -s install PREFIX=/usr PROFILE="$profile" >/dev/null || { echo "make install failed"; exit 1; }
fi
# Test users: t1 in the group a rule will grant, t2 not.
groupadd -f memmon-readers
groupadd -f memmon-inspectors
id memmon-t1 >/dev/null 2>&1 || useradd -M -N -s /usr/sbin/nologin -G memmon-readers,memmon-inspectors memmon-t1
id memmon-t3 >/dev/null 2>&1 || useradd -M -N -s /usr/sbin/nologin -G memmon-readers memmon-t3
id memmon-t2 >/dev/null 2>&1 || useradd -M -N -s /usr/sbin/nologin memmon-t2
mkdir -p /etc/polkit-1/rules.d
rm -f /etc/polkit-1/rules.d/*memmon*

# The helper's log (every authorisation decision) reaches the bus daemon's output.
dbus-daemon --system --nofork --nopidfile --nosyslog > "$tmp/daemon.log" 2>&1 & bus_pid=$!
for _ in $(seq 100); do [ -S /run/dbus/system_bus_socket ] && break; sleep 0.02; done
/usr/lib/polkit-1/polkitd --no-debug >/dev/null 2>&1 & polkit_pid=$!

as() { local user=$1; shift; setpriv --reuid "$user" --regid "$(id -g "$user")" --init-groups -- "$@"; }
call() { # call USER METHOD [ARGS...]: raw D-Bus call, prints the reply or the error
  local user=$1 method=$2; shift 2
  local cmd=(dbus-send --system --print-reply --reply-timeout=10000 --dest=io.github.memmon.Helper1
             /io/github/memmon/Helper1 "io.github.memmon.Helper1.$method" "$@")
  if [ "$user" = root ]; then "${cmd[@]}" 2>&1; else as "$user" "${cmd[@]}" 2>&1; fi
}
has_owner() {
  dbus-send --system --print-reply --dest=org.freedesktop.DBus / org.freedesktop.DBus.NameHasOwner \
    "string:$1" 2>/dev/null | grep -q 'boolean true'
}
wait_for() { local i; for i in $(seq "${2:-250}"); do eval "$1" && return 0; sleep 0.02; done; return 1; }
helper_pid() {
  dbus-send --system --print-reply --dest=org.freedesktop.DBus / \
    org.freedesktop.DBus.GetConnectionUnixProcessID string:io.github.memmon.Helper1 2>/dev/null |
    awk '/uint32/ {print $2}'
}
# bus_probe (helper/examples/bus_probe.rs) makes a client's calls as USER through the typed
# client and checks them itself; its "ok"/"FAIL" lines are counted here, and a probe that stops
# with an error is a failure too.
probe() {
  local user=$1; shift; local out rc failed=0
  out=$(as "$user" "$tmp/bin/bus_probe" "$@" 2>&1); rc=$?
  while IFS= read -r l; do
    case "$l" in "ok   "*) ok "${l#ok   }";; "FAIL "*) bad "${l#FAIL }"; failed=1;; *) echo "     $l";; esac
  done <<<"$out"
  [ "$rc" = 0 ] || [ "$failed" = 1 ] || bad "bus_probe $* as $user stopped (status $rc): $(tail -1 <<<"$out")"
}
memmon_programs() { bpftool prog show 2>/dev/null | grep -c 'name memmon_'; }

check "polkitd is on the bus" wait_for "has_owner org.freedesktop.PolicyKit1"

# --- activation and GetInfo -------------------------------------------------------------------
check "the helper is not running before the first call" bash -c '! dbus-send --system --print-reply --dest=org.freedesktop.DBus / org.freedesktop.DBus.NameHasOwner string:io.github.memmon.Helper1 | grep -q true'
out=$(call memmon-t2 GetInfo)
check "an unauthorised GetInfo activates the helper but is refused" grep -q 'Error.AuthenticationRequired' <<<"$out"
check "... and nothing system-wide starts: no program attached" test "$(memmon_programs)" = 0
check "... no collector thread" bash -c "! grep -qs memmon-collector /proc/$(helper_pid)/task/*/comm"
info=$(call root GetInfo)
check "root is authorised without polkit and GetInfo answers" grep -q '"mode"' <<<"$info"
check "... the first authorised call attaches the programs" test "$(memmon_programs)" -ge 4
check "the activated helper runs in Full mode" grep -A1 '"mode"' <<<"$info" | grep -q '"full"'
check "the helper runs as root" bash -c "[ \"\$(stat -c %u /proc/$(helper_pid))\" = 0 ]"

if [ -n "${MEMMON_DUMP_INTROSPECTION:-}" ]; then
  dbus-send --system --print-reply=literal --dest=io.github.memmon.Helper1 /io/github/memmon/Helper1 \
    org.freedesktop.DBus.Introspectable.Introspect > "$MEMMON_DUMP_INTROSPECTION"
fi

if [ -n "${MEMMON_BUS_BENCH:-}" ]; then
  # Benchmarks (scripts/bench-bus.sh): a granted user, the helper at its default 1 s interval.
  mkdir -p /etc/polkit-1/rules.d
  printf '%s\n' 'polkit.addRule(function(a, s) { if (a.id == "io.github.memmon.monitor" && s.isInGroup("memmon-readers")) return polkit.Result.YES; });' \
    > /etc/polkit-1/rules.d/50-memmon-bench.rules
  sleep 0.3
  cp "$root/target/$profile/examples/bench_bus" "$tmp/bin/"; chmod a+rx "$tmp/bin/bench_bus"
  sleepers=()
  for _ in $(seq $((1000 - $(ls -d /proc/[0-9]* | wc -l)))); do sleep 900 & sleepers+=($!); done
  sample() { # sample PID: "cpu_ticks rss_kb"
    echo "$(awk '{print $14 + $15}' /proc/$1/stat) $(awk '/VmRSS/ {print $2}' /proc/$1/status)"; }
  # Idle: one client activates, then leaves; the helper keeps scanning 1,000 processes.
  hp=$(helper_pid); [ -n "$hp" ] && kill -TERM "$hp" && wait_for "! kill -0 $hp 2>/dev/null"
  sed -i 's|memmon-helper serve$|memmon-helper serve --idle-exit 0|' /usr/share/dbus-1/system-services/io.github.memmon.Helper1.service
  dbus-send --system --type=method_call --dest=org.freedesktop.DBus / org.freedesktop.DBus.ReloadConfig
  sleep 0.2
  # One client stays connected without calling (the collector runs only while one does).
  (exec setpriv --reuid memmon-t1 --regid "$(id -g memmon-t1)" --init-groups -- \
    /usr/bin/memmon-helper snapshot --bus --top 1 --watch 3600 > /dev/null 2>&1) & idle_client=$!
  wait_for "[ -n \"\$(helper_pid)\" ]" 250
  hp=$(helper_pid); sleep 5
  read -r c0 r0 <<<"$(sample "$hp")"
  sleep "${MEMMON_BENCH_IDLE_SECS:-120}"
  read -r c1 r1 <<<"$(sample "$hp")"
  tck=$(getconf CLK_TCK)
  echo "idle: processes=$(ls -d /proc/[0-9]* | wc -l) seconds=${MEMMON_BENCH_IDLE_SECS:-120} cpu_percent=$(awk -v d=$((c1 - c0)) -v t="$tck" -v s="${MEMMON_BENCH_IDLE_SECS:-120}" 'BEGIN {printf "%.2f", 100 * d / t / s}') rss_kb_start=$r0 rss_kb_end=$r1 history_samples=n/a"
  # Load: 20 clients at 10 Hz.
  read -r c0 r0 <<<"$(sample "$hp")"; t0=$(date +%s.%N)
  as memmon-t1 "$tmp/bin/bench_bus" 20 10 "${MEMMON_BENCH_LOAD_SECS:-30}"
  read -r c1 r1 <<<"$(sample "$hp")"; t1=$(date +%s.%N)
  echo "load: cpu_percent=$(awk -v d=$((c1 - c0)) -v t="$tck" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", 100 * d / t / (b - a)}') rss_kb_before=$r0 rss_kb_after=$r1 peak_rss_kb=$(awk '/VmHWM/ {print $2}' /proc/$hp/status)"
  kill "${sleepers[@]}" "$idle_client" 2>/dev/null; kill -TERM "$hp"; kill "$polkit_pid" "$bus_pid" 2>/dev/null
  exit 0
fi

# --- authorisation ----------------------------------------------------------------------------
# No logind session here, so polkit sees every test user as "any": monitor is auth_admin_keep
# for them (as for an SSH user), and without an agent that is AuthenticationRequired.
out=$(call memmon-t1 GetSnapshot string:rss boolean:true uint32:10)
check "a user outside an active session must authenticate (AuthenticationRequired)" grep -q 'io.github.memmon.Helper1.Error.AuthenticationRequired' <<<"$out"
check "... with a clear message" grep -q 'needs authentication as an administrator' <<<"$out"
out=$(as memmon-t1 /usr/bin/memmon-helper snapshot --bus 2>&1)
check "the CLI reports the refusal and fails" grep -q 'refused' <<<"$out"

cat > /etc/polkit-1/rules.d/50-memmon-test.rules <<'RULES'
polkit.addRule(function(action, subject) {
  if (action.id == "io.github.memmon.monitor" && subject.isInGroup("memmon-readers")) {
    return polkit.Result.YES;
  }
  if (action.id == "io.github.memmon.inspect" && subject.isInGroup("memmon-inspectors")) {
    return polkit.Result.YES;
  }
  if (action.id.indexOf("io.github.memmon.") == 0 && subject.user == "memmon-t2") {
    return polkit.Result.NO;
  }
});
RULES
sleep 0.3  # polkitd reloads rules by inotify

# A child doing exactly known operations, driven through its stdin/stdout.
coproc WL { exec "$tmp/bin/memmon-workload" exact --mmaps 40 --size 10000 --munmaps 15 --failed-mmaps 9; }
wl_out=${WL[0]}; wl_in=${WL[1]}; wl_pid=$WL_PID
read -r line <&"$wl_out"
check "workload ready" test "$line" = ready
# Exact eBPF counts for a child doing known operations (bus_probe drives its own child).
probe memmon-t1 exact-counts "$tmp/bin/memmon-workload"
out=$(call memmon-t2 GetInfo)
check "a non-member is still denied" grep -q 'NotAuthorized' <<<"$out"
out=$(call memmon-t1 GetInfo)
check "a member gets GetInfo" grep -q '"process_count"' <<<"$out"

# --- the app, end to end: a granted user's window shows Full mode with eBPF columns ---------
if command -v Xvfb >/dev/null; then
  Xvfb :57 -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 & xvfb_pid=$!
  wait_for "[ -S /tmp/.X11-unix/X57 ]"
  mkdir -p "$tmp/home-t1"; chown memmon-t1 "$tmp/home-t1"; chmod 700 "$tmp/home-t1"
  out=$(as memmon-t1 env DISPLAY=:57 HOME="$tmp/home-t1" XDG_RUNTIME_DIR="$tmp/home-t1" \
        "$tmp/bin/memmon" --source helper --select "$wl_pid" --screenshot "$tmp/home-t1/full.png" 2>&1)
  check "the app, as a granted user, shows Full mode" grep -q 'mode: Full' <<<"$out"
  check "... with allocation data in its rows" grep -Eq 'rows, [1-9][0-9]* with allocation data' <<<"$out"
  check "... and exports its window" test -s "$tmp/home-t1/full.png"
  [ -z "${MEMMON_SAVE_SCREENSHOT:-}" ] || cp "$tmp/home-t1/full.png" "$MEMMON_SAVE_SCREENSHOT"
  exec_line=$(sed -n 's/^Exec=//p' /usr/share/applications/io.github.memmon.MemoryMonitor.desktop)
  # shellcheck disable=SC2086
  out=$(as memmon-t1 env DISPLAY=:57 HOME="$tmp/home-t1" XDG_RUNTIME_DIR="$tmp/home-t1" PATH=/usr/bin:/bin \
        $exec_line --screenshot "$tmp/home-t1/menu.png" 2>&1)
  check "the installed .desktop Exec line starts the installed app (Full mode)" grep -q 'mode: Full' <<<"$out"
  mkdir -p "$tmp/home-t2"; chown memmon-t2 "$tmp/home-t2"; chmod 700 "$tmp/home-t2"
  out=$(as memmon-t2 env DISPLAY=:57 HOME="$tmp/home-t2" XDG_RUNTIME_DIR="$tmp/home-t2" \
        "$tmp/bin/memmon" --screenshot "$tmp/home-t2/t2.png" 2>&1)
  check "a denied user's app falls back to Embedded mode" grep -q 'mode: Embedded' <<<"$out"
  if [ -z "${MEMMON_DEB:-}" ]; then
  # Left running for 30 s, a denied user's app asks interactively exactly once.
  t2_uid=$(id -u memmon-t2)
  before=$(grep -c "uid=$t2_uid .*interactive=yes" "$tmp/daemon.log")
  as memmon-t2 env DISPLAY=:57 HOME="$tmp/home-t2" XDG_RUNTIME_DIR="$tmp/home-t2" MEMMON_TRACE_SOURCE=1 \
    "$tmp/bin/memmon" > "$tmp/app-t2.log" 2>&1 & app_t2=$!
  sleep 30
  kill "$app_t2"; wait "$app_t2" 2>/dev/null
  asked=$(( $(grep -c "uid=$t2_uid .*interactive=yes" "$tmp/daemon.log") - before ))
  check "... exactly one interactive authorisation attempt in 30 s (the helper logged $asked)" test "$asked" = 1
  check "... the banner's reason is the refusal, with Try again offered" \
    grep -q 'can_retry: true' <(grep 'refused' "$tmp/app-t2.log" | tail -1)
  fi
  # The helper is killed (SIGKILL, then D-Bus activates a new one): the running app gets data
  # from the new helper within 2 s, without a restart of its own.
  as memmon-t1 env DISPLAY=:57 HOME="$tmp/home-t1" XDG_RUNTIME_DIR="$tmp/home-t1" MEMMON_TRACE_SOURCE=1 \
    "$tmp/bin/memmon" --source helper > "$tmp/app.log" 2>&1 & app_pid=$!
  wait_for "grep -q 'from Helper' '$tmp/app.log'" 500
  old_helper=$(helper_pid)
  kill -KILL "$old_helper"; killed_ms=$(($(date +%s%N) / 1000000))
  wait_for "! kill -0 $old_helper 2>/dev/null" 250
  fresh_from_helper() { awk -v t="$killed_ms" '$2 == "snapshot" && $3 > t && /from Helper/ {f=1} END {exit !f}' "$tmp/app.log"; }
  wait_for fresh_from_helper 150   # 3 s at most, then judged below
  first_ms=$(awk -v t="$killed_ms" '$2 == "snapshot" && $3 > t && /from Helper/ {print $3; exit}' "$tmp/app.log")
  check "the app gets data from the restarted helper within 2 s" \
    test -n "$first_ms" -a "$((${first_ms:-999999999999999} - killed_ms))" -le 2000
  check "... from a new helper process" test -n "$(helper_pid)" -a "$(helper_pid)" != "$old_helper"
  if [ -z "${MEMMON_DEB:-}" ]; then
    # Stopped for 30 s (SIGSTOP): the app says the helper does not answer instead of waiting
    # forever, then has helper data again soon after SIGCONT.
    stopped=$(helper_pid); kill -STOP "$stopped"
    check "a stopped helper: the running app reports that it does not answer (within 8 s)" \
      wait_for "grep -q 'did not answer' '$tmp/app.log'" 400
    sleep 22; kill -CONT "$stopped"; cont_ms=$(($(date +%s%N) / 1000000))
    fresh_after_cont() { awk -v t="$cont_ms" '$2 == "snapshot" && $3 > t && /from Helper/ {f=1} END {exit !f}' "$tmp/app.log"; }
    check "... and has helper data again within 15 s of SIGCONT" wait_for fresh_after_cont 750
  fi
  kill "$app_pid"; wait "$app_pid" 2>/dev/null
  sleep 2   # the new helper's history must reach back before the history checks below ask
  kill "$xvfb_pid"; wait "$xvfb_pid" 2>/dev/null
else
  bad "Xvfb missing: the app end-to-end test cannot run"
fi

# --- history ---------------------------------------------------------------------------------
start=$(awk '{print $22}' /proc/$wl_pid/stat)
probe memmon-t1 history "$wl_pid"

# --- diagnostics: system history, PSS on demand ------------------------------------------------
probe memmon-t1 system-history
# PSS/USS of a root-owned process for a user granted inspect.
probe memmon-t1 detail "$wl_pid"
out=$(call memmon-t2 GetMemoryDetail "uint32:$wl_pid" "uint64:$start")
check "... denied to a non-member" grep -q 'NotAuthorized' <<<"$out"
out=$(call memmon-t3 GetMemoryDetail "uint32:$wl_pid" "uint64:$start")
check "... another user's process needs inspect: a monitor-only user must authenticate" grep -q 'AuthenticationRequired' <<<"$out"
(exec setpriv --reuid memmon-t3 --regid "$(id -g memmon-t3)" --init-groups -- sleep 30) & own_pid=$!
sleep 0.2
probe memmon-t3 detail "$own_pid"   # its own process: monitor is enough
kill "$own_pid" 2>/dev/null; wait "$own_pid" 2>/dev/null
out=$(as memmon-t1 /usr/bin/memmon-helper detail --bus --json "$wl_pid" 2>&1)
check "memmon-helper detail --bus gives a granted user the same reading" grep -Eq '"pss_kb":[1-9]' <<<"$out"
out=$(as memmon-t1 /usr/bin/memmon-helper detail "$wl_pid" 2>&1); rc=$?
check "... which the user cannot read directly (exit 1, with the reason)" \
  test "$rc" = 1 -a -n "$(grep -i 'smaps_rollup' <<<"$out")"

# --- high resolution (kmem:rss_stat) for one process while its client stays ---------------
info_u32() { call "$1" GetInfo | grep -A1 "\"$2\"" | sed -n 's/.*uint32 \([0-9]*\).*/\1/p'; }
(exec setpriv --reuid memmon-t1 --regid "$(id -g memmon-t1)" --init-groups -- \
  /usr/bin/memmon-helper snapshot --bus --json --top 1000 --high-res "$wl_pid" --watch 0.4 \
  > "$tmp/hires.out" 2>&1) & hires=$!
check "high resolution follows the client that asked (GetInfo high_res_pid)" \
  wait_for "[ \"\$(info_u32 memmon-t1 high_res_pid)\" = $wl_pid ]" 150
sleep 1
kill -TERM $hires; wait $hires
check "... and it ends when that client leaves the bus" \
  wait_for "[ \"\$(info_u32 memmon-t1 high_res_pid)\" = 0 ]" 150
probe memmon-t1 high-res "$wl_pid"
out=$(call memmon-t2 SetHighResolution "uint32:$wl_pid" "uint64:$start" boolean:true)
check "... denied to a non-member" grep -q 'NotAuthorized' <<<"$out"
out=$(call memmon-t3 SetHighResolution "uint32:$wl_pid" "uint64:$start" boolean:true)
check "... and needs inspect (a monitor-only user must authenticate)" grep -q 'AuthenticationRequired' <<<"$out"
out=$(call memmon-t1 SetHighResolution "uint32:$wl_pid" "uint64:$((start + 1))" boolean:true)
check "... InvalidArgument for a stale start time" grep -q 'InvalidArgument' <<<"$out"

# --- bad arguments -----------------------------------------------------------------------------
for args in "GetSnapshot string:bogus boolean:true uint32:10" "GetSnapshot string:rss boolean:true uint32:0" \
            "GetSnapshot string:rss boolean:true uint32:1001" "GetHistory uint32:0 uint64:0" \
            "SetInterval uint32:100" "SetInterval uint32:20000" "GetMemoryDetail uint32:0 uint64:0"; do
  # shellcheck disable=SC2086
  out=$(call memmon-t1 $args)
  check "InvalidArgument for $args" grep -q 'io.github.memmon.Helper1.Error.InvalidArgument' <<<"$out"
done

# --- every sort key: every column of the table ranks all processes ----------------------------
probe memmon-t1 sort-keys

# --- apps: a desktop app's scope, made for this test in every cgroup hierarchy ----------------
apps_unit="memmon-bus-apps-$$/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-org.example.BusTest-7.scope"
apps_dirs=()
if [ -e /sys/fs/cgroup/cgroup.controllers ]; then   # unified only: the memory controller down the path
  apps_dirs=(/sys/fs/cgroup); d=/sys/fs/cgroup
  for c in ${apps_unit//\// }; do
    echo +memory > "$d/cgroup.subtree_control" 2>/dev/null; d="$d/$c"; mkdir -p "$d"
  done
else
  for h in systemd unified memory; do
    [ -d "/sys/fs/cgroup/$h" ] && mkdir -p "/sys/fs/cgroup/$h/$apps_unit" && apps_dirs+=("/sys/fs/cgroup/$h")
  done
fi
remove_apps_cgroups() {
  local h d
  for h in "${apps_dirs[@]}"; do
    d="$h/$apps_unit"
    while [ "$d" != "$h" ]; do rmdir "$d" 2>/dev/null; d=$(dirname "$d"); done
  done
}
trap 'remove_apps_cgroups; on_exit' EXIT
coproc HOLD { exec "$tmp/bin/memmon-workload" pattern hold --mib 24; }
read -r line <&"${HOLD[0]}"
for h in "${apps_dirs[@]}"; do echo "$HOLD_PID" > "$h/$apps_unit/cgroup.procs"; done
echo go >&"${HOLD[1]}"; read -r line <&"${HOLD[0]}"
check "the app's process holds its memory in its scope" test "$line" = done
apps_memory=/sys/fs/cgroup/memory/$apps_unit
[ -d /sys/fs/cgroup/memory ] || apps_memory=/sys/fs/cgroup/$apps_unit
sleep 2   # two ticks of history
probe memmon-t1 apps "u1000/app:org.example.BusTest" "$apps_memory" "$HOLD_PID"
out=$(call memmon-t2 GetApps string:memory boolean:true uint32:10 array:string:)
check "GetApps is denied to a non-member" grep -q 'NotAuthorized' <<<"$out"
out=$(call memmon-t1 GetApps string:bogus boolean:true uint32:10 array:string:)
check "GetApps: InvalidArgument for an unknown sort key" grep -q 'Error.InvalidArgument' <<<"$out"
out=$(as memmon-t1 /usr/bin/memmon-helper snapshot --bus --apps --top 1000 2>&1)
check "memmon-helper snapshot --bus --apps lists the app" grep -q 'org.example.BusTest' <<<"$out"
kill "$HOLD_PID" 2>/dev/null; wait "$HOLD_PID" 2>/dev/null

# --- concurrency, disconnects ------------------------------------------------------------------
(exec setpriv --reuid memmon-t1 --regid "$(id -g memmon-t1)" --init-groups -- \
  /usr/bin/memmon-helper snapshot --bus --json --top 5 --watch 0.3 > "$tmp/watch.out" 2>&1) & watcher=$!
for _ in 1 2 3 4 5; do call memmon-t1 GetInfo >/dev/null; done
sleep 1.5
kill -TERM $watcher; wait $watcher; rc=$?
check "a second client coming and going does not disturb the first" test "$rc" = 0 -a "$(grep -c '"processes"' "$tmp/watch.out")" -ge 4
(exec setpriv --reuid memmon-t1 --regid "$(id -g memmon-t1)" --init-groups -- \
  /usr/bin/memmon-helper snapshot --bus --json --top 1 --watch 0.3 --interval-ms 300 > /dev/null 2>&1) & fast=$!
sleep 1
check "SetInterval: the collector runs at the interval a connected client asked for" \
  bash -c "grep -A1 '\"interval_ms\"' <<<\"\$(dbus-send --system --print-reply --dest=io.github.memmon.Helper1 /io/github/memmon/Helper1 io.github.memmon.Helper1.GetInfo)\" | grep -q 'uint32 300'"
kill -TERM $fast; wait $fast
sleep 0.5
check "... and returns to the default when that client leaves" \
  bash -c "grep -A1 '\"interval_ms\"' <<<\"\$(dbus-send --system --print-reply --dest=io.github.memmon.Helper1 /io/github/memmon/Helper1 io.github.memmon.Helper1.GetInfo)\" | grep -q 'uint32 1000'"


if [ -z "${MEMMON_DEB:-}" ]; then  # the .deb re-run (tests/packaging) checks the install path only
# --- adversarial clients (helper/examples/bus_probe.rs checks its own pass conditions) ---------
info_u32_root() { call root GetInfo | grep -A1 "\"$1\"" | sed -n 's/.*uint32 \([0-9]*\).*/\1/p'; }
# A denied user floods (8 connections x 128 calls) while a granted user makes 20 fresh calls.
as memmon-t2 "$tmp/bin/bus_probe" flood 8 128 > "$tmp/flood.out" 2>&1 & flood=$!
probe memmon-t1 fresh 20 2000
wait "$flood"
while IFS= read -r l; do case "$l" in "ok   "*) ok "${l#ok   }";; "FAIL "*) bad "${l#FAIL }";; esac; done < "$tmp/flood.out"
check "... the flood was refused or told to retry, never let in" bash -c "! grep -q \"'ok'\" '$tmp/flood.out' && ! grep -q '\"ok\"' '$tmp/flood.out'"
# 200 clients set an interval and a high-resolution watch, and leave before any answer.
probe memmon-t1 fire-and-forget 200 "$wl_pid"
check "... the interval returns to the default once they are gone" wait_for "[ \"\$(info_u32_root interval_ms)\" = 1000 ]" 150
check "... no high-resolution watch is left" wait_for "[ \"\$(info_u32_root high_res_pid)\" = 0 ]" 150
check "... only the connected clients stay registered (root's own calls)" test "$(info_u32_root clients)" -le 1
probe memmon-t1 bad-inputs
check "... the helper still answers after the bad inputs" grep -q '"process_count"' <<<"$(call memmon-t1 GetInfo)"
probe memmon-t1 detail-interleaved "$wl_pid" 256
hp=$(helper_pid); max_threads=0
( while kill -0 "$hp" 2>/dev/null; do ls /proc/$hp/task | wc -l; sleep 0.05; done ) > "$tmp/threads" & sampler=$!
probe memmon-t1 detail-burst "$wl_pid" 2000
kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
max_threads=$(sort -n "$tmp/threads" | tail -1)
check "... 2,000 concurrent detail calls keep the helper at most 12 threads (max $max_threads)" test "${max_threads:-99}" -le 12
# A client asks for 1,000-row snapshots and never reads the replies: others are not held up.
as memmon-t1 "$tmp/bin/bus_probe" stalled-reader > "$tmp/stalled.out" 2>&1 & stalled=$!
wait_for "grep -q sent '$tmp/stalled.out'" 250
kill -STOP "$stalled"
probe memmon-t3 info-latency 100 100
kill -KILL "$stalled"; wait "$stalled" 2>/dev/null
# A granted user loses its rule while it watches: refused within the re-check interval (30 s;
# polkit's Changed signal makes it about a second).
id memmon-t4 >/dev/null 2>&1 || useradd -M -N -s /usr/sbin/nologin memmon-t4
echo 'polkit.addRule(function(a, s) { if (a.id == "io.github.memmon.monitor" && s.user == "memmon-t4") return polkit.Result.YES; });' \
  > /etc/polkit-1/rules.d/60-memmon-t4.rules
sleep 0.3
(exec setpriv --reuid memmon-t4 --regid "$(id -g memmon-t4)" --init-groups -- \
  /usr/bin/memmon-helper snapshot --bus --json --top 1 --watch 1 > "$tmp/t4.out" 2> "$tmp/t4.err") & t4=$!
check "a granted watcher gets snapshots" wait_for "grep -q processes '$tmp/t4.out'" 250
rm -f /etc/polkit-1/rules.d/60-memmon-t4.rules; removed=$(date +%s)
wait_for "! kill -0 $t4 2>/dev/null" 1750
took=$(( $(date +%s) - removed ))
check "... after its rule is removed it is refused within 30 s (took ${took} s)" bash -c "! kill -0 $t4 2>/dev/null && [ $took -le 31 ] && grep -q refused '$tmp/t4.err'"
kill "$t4" 2>/dev/null; wait "$t4" 2>/dev/null
# SIGKILL with high resolution on: the kernel detaches everything.
(exec setpriv --reuid memmon-t1 --regid "$(id -g memmon-t1)" --init-groups -- \
  /usr/bin/memmon-helper snapshot --bus --json --top 1 --high-res "$wl_pid" --watch 0.5 > /dev/null 2>&1) & hr=$!
check "high resolution on before the SIGKILL" wait_for "[ \"\$(info_u32_root high_res_pid)\" = $wl_pid ]" 150
kill -STOP "$hr"; hp=$(helper_pid); kill -KILL "$hp"
wait_for "! kill -0 $hp 2>/dev/null"
check "SIGKILL of the helper leaves no program and no rss_stat link" wait_for "[ \"\$(memmon_programs)\" = 0 ]" 100
kill -KILL "$hr"; wait "$hr" 2>/dev/null
# SIGSTOP for 30 s: the CLI reports a timeout, then works again after SIGCONT.
call memmon-t1 GetInfo > /dev/null; hp=$(helper_pid)
kill -STOP "$hp"
out=$(as memmon-t1 /usr/bin/memmon-helper snapshot --bus --top 1 2>&1); rc=$?
check "a stopped helper: the CLI reports a timeout (exit 1)" bash -c "[ $rc = 1 ] && grep -q 'did not answer' <<<'$out'"
sleep 24; kill -CONT "$hp"
out=$(as memmon-t1 /usr/bin/memmon-helper snapshot --bus --json --top 1 2>&1)
check "... and works again after SIGCONT" grep -q '"processes"' <<<"$out" || head -c 600 <<<"$out"

fi  # adversarial clients

# --- second instance --------------------------------------------------------------------------
out=$(/usr/bin/memmon-helper serve 2>&1); rc=$?
check "a second instance refuses cleanly" test "$rc" = 1
check "... saying why" grep -q 'already owns io.github.memmon.Helper1' <<<"$out" || echo "$out"

# --- SIGTERM detaches ---------------------------------------------------------------------------
exec {wl_in}>&-; wait "$wl_pid" 2>/dev/null
hp=$(helper_pid)
check "programs are attached while the helper runs" test "$(memmon_programs)" -ge 4
kill -TERM "$hp"
check "SIGTERM ends the helper" wait_for "! kill -0 $hp 2>/dev/null"
check "SIGTERM leaves no attached program behind" test "$(memmon_programs)" = 0

# --- idle exit ---------------------------------------------------------------------------------
sed -i 's|memmon-helper serve$|memmon-helper serve --idle-exit 2|' /usr/share/dbus-1/system-services/io.github.memmon.Helper1.service
dbus-send --system --type=method_call --dest=org.freedesktop.DBus / org.freedesktop.DBus.ReloadConfig
sleep 0.2
call memmon-t1 GetInfo >/dev/null
hp=$(helper_pid)
check "re-activated for the idle test" test -n "$hp"
check "the helper exits when idle (2 s without clients)" wait_for "! kill -0 $hp 2>/dev/null" 300

if [ -z "${MEMMON_DEB:-}" ]; then
# --- a denied user cannot keep the helper alive or make it attach anything -------------------
# Introspect + GetInfo every 50 s for 3 minutes at the default 60 s idle exit: no memmon program
# is ever attached, and the helper started by the first call exits 60 s later regardless.
sed -i 's|memmon-helper serve --idle-exit 2$|memmon-helper serve|' /usr/share/dbus-1/system-services/io.github.memmon.Helper1.service
dbus-send --system --type=method_call --dest=org.freedesktop.DBus / org.freedesktop.DBus.ReloadConfig
sleep 0.2
( while :; do memmon_programs; sleep 1; done ) > "$tmp/denied-progs" 2>/dev/null & sampler=$!
denied_pids=()
for round in 0 1 2 3; do
  as memmon-t2 dbus-send --system --print-reply --dest=io.github.memmon.Helper1 /io/github/memmon/Helper1 \
    org.freedesktop.DBus.Introspectable.Introspect > /dev/null 2>&1
  call memmon-t2 GetInfo > /dev/null
  denied_pids+=("$(helper_pid)")
  [ "$round" = 3 ] || sleep 50
done
sleep 30
kill "$sampler"; wait "$sampler" 2>/dev/null
check "denied calls for 3 minutes: no memmon program was attached at any time" \
  test "$(sort -n "$tmp/denied-progs" | tail -1)" = 0
check "... the helper they activated exited on idle despite them (${denied_pids[*]})" \
  bash -c "! kill -0 ${denied_pids[0]} 2>/dev/null && [ '${denied_pids[0]}' != '${denied_pids[2]}' ]"

fi

# --- call sites -------------------------------------------------------------------------------
# Sessions run their own programs (named cs_*), attached only while a session runs.
cs_programs() { bpftool prog show 2>/dev/null | grep -c 'name cs_'; }
check "no call-site program is attached before any session" test "$(cs_programs)" = 0
probe memmon-t1 callsites "$tmp/bin/memmon-workload"
check "... and none once the sessions ended" wait_for '[ "$(cs_programs)" = 0 ]' 250
out=$(call memmon-t3 StartCallSites uint32:1 uint64:0 string:mappings uint32:5 uint32:0)
check "StartCallSites needs inspect (a monitor-only user must authenticate)" \
  grep -q 'AuthenticationRequired' <<<"$out"
out=$(call memmon-t2 GetCallSites uint32:1)
check "GetCallSites is denied to a non-member" grep -q 'NotAuthorized' <<<"$out"
probe memmon-t1 callsites-leave "$tmp/bin/memmon-workload"
check "a session whose client left the bus is detached within 5 s" \
  wait_for '[ "$(cs_programs)" = 0 ]' 250

if [ -n "${MEMMON_DEB:-}" ]; then
  # An upgrade (the package installed again) stops the running helper: the next call starts
  # the new binary.
  call memmon-t1 GetInfo > /dev/null; hp=$(helper_pid)
  dpkg -i "$MEMMON_DEB" > /dev/null 2>&1
  check "upgrading the .deb stops the running helper" wait_for "! kill -0 $hp 2>/dev/null" 150
  check "... and the next call starts a new one" grep -q '"process_count"' <<<"$(call memmon-t1 GetInfo)"
fi

# --- bus goes away ------------------------------------------------------------------------------
call memmon-t1 GetInfo >/dev/null
hp=$(helper_pid)
kill -TERM "$bus_pid"; wait "$bus_pid" 2>/dev/null
check "killing the bus makes the helper exit" wait_for "! kill -0 $hp 2>/dev/null" 150

kill "$polkit_pid" 2>/dev/null
echo "bus tests: $pass passed, $fail failed"
[ "$fail" = 0 ]
