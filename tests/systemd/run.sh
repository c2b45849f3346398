#!/usr/bin/env bash
# The hardened unit under a real systemd, fully isolated: systemd boots as PID 1 of a
# systemd-nspawn container whose root is a throw-away overlay of this machine's / (its own
# /tmp, /run, /dev, read-only /sys and /proc/sys, its own hostname, no network). The project is
# installed into that root with `make install`, and the helper is D-Bus activated through the
# container's bus, so that SystemdService= makes the container's systemd start
# memmon-helper.service with every hardening line of packaging/systemd/memmon-helper.service.in.
# Checks: the unit starts on a call and stays idle (no eBPF) for a denied user, attaches its
# programs and serves a polkit-granted non-root user a Full-mode snapshot, runs with the
# unit's confinement, and exits when idle (unit inactive, programs gone). A marker in the host's
# /tmp proves nothing outside the container changed. The container is torn down on every path.
# Needs root and systemd-container. Usage: tests/systemd/run.sh [PROFILE]   (default debug)
#
# Why an overlay of / and not a debootstrapped tree: it needs no download, boots in about a
# second, and the container runs exactly this machine's systemd, dbus, polkit and libraries.
set -uo pipefail
cd "$(dirname "$0")/../.."
profile=${1:-debug}
# What the helper's unit needs from the container's bounding set and seccomp filter (nspawn's
# own filter refuses bpf(2), and its bounding set lacks these two capabilities).
CONTAINER_CAPS=CAP_BPF,CAP_PERFMON
CONTAINER_SYSCALLS="bpf perf_event_open"
IDLE_SECS=5

pass=0; fail=0
ok()   { pass=$((pass + 1)); echo "ok   $*"; }
bad()  { fail=$((fail + 1)); echo "FAIL $*"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
summary() { echo "systemd tests: $pass passed, $fail failed"; }
# Cannot run at all: a failure on CI, a visible skip elsewhere.
unable() {
  echo "systemd tests cannot run: $*"
  if [ "${CI:-}" = true ]; then bad "$*"; summary; exit 1; fi
  echo "SKIP (not on CI)"; summary; exit 0
}

[ "$(id -u)" = 0 ] || unable "they need root"
for tool in systemd-nspawn nsenter bpftool python3 make; do
  command -v "$tool" >/dev/null || unable "$tool is missing (scripts/setup.sh installs it)"
done
[ -x "target/$profile/memmon-helper" ] || { echo "target/$profile/memmon-helper missing: build it first"; exit 1; }
[ -d /sys/kernel/tracing/events ] || unable "tracefs is not mounted on /sys/kernel/tracing (scripts/setup.sh mounts it)"

S=$(mktemp -d /var/tmp/memmon-systemd.XXXXXX)
marker=$(mktemp /tmp/memmon-systemd-marker.XXXXXX)
echo "left by tests/systemd/run.sh; must survive the container" > "$marker"
host_uts=$(readlink /proc/self/ns/uts); host_name=$(hostname)
nspawn_pid=; pid1=; torn_down=; cgroups=()

# Stops the container (SIGTERM to systemd-nspawn, then SIGKILL to its PID 1 and to nspawn if
# it does not stop within 10 s), unmounts the overlay and deletes it. Safe to call twice.
teardown() {
  [ -n "$torn_down" ] && return 0
  torn_down=1
  if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
    kill -TERM "$nspawn_pid"
    for _ in $(seq 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$nspawn_pid" 2>/dev/null; then
      echo "systemd-nspawn did not stop within 10 s: killing the container"
      [ -n "$pid1" ] && kill -KILL "$pid1" 2>/dev/null
      kill -KILL "$nspawn_pid" 2>/dev/null
    fi
    wait "$nspawn_pid" 2>/dev/null
  fi
  local cg
  for cg in "${cgroups[@]}"; do
    [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
    [ -d "$cg" ] && echo "cannot remove the cgroup $cg"
  done
  if mountpoint -q "$S/root"; then
    umount "$S/root" 2>/dev/null || umount -l "$S/root"
  fi
  if mountpoint -q "$S/root"; then
    echo "cannot unmount $S/root: left in place"
  else
    rm -rf --one-file-system "$S"
  fi
}
trap 'teardown; rm -f "$marker"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the container's root: an overlay of /, with the project installed into it -------------
mkdir -p "$S/up" "$S/work" "$S/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$S/up,workdir=$S/work" "$S/root" ||
  unable "cannot mount an overlay of / on $S/root"
R=$S/root
make -s install PREFIX=/usr PROFILE="$profile" DESTDIR="$R" >/dev/null || unable "make install DESTDIR=$R failed"
# t1 is in the group the polkit rule grants, t2 is not.
groupadd -R "$R" -f memmon-readers
grep -q '^memmon-t1:' "$R/etc/passwd" || useradd -R "$R" -M -N -s /usr/sbin/nologin -G memmon-readers memmon-t1
grep -q '^memmon-t2:' "$R/etc/passwd" || useradd -R "$R" -M -N -s /usr/sbin/nologin memmon-t2
mkdir -p "$R/etc/polkit-1/rules.d"
rm -f "$R"/etc/polkit-1/rules.d/*memmon*
cat > "$R/etc/polkit-1/rules.d/50-memmon-test.rules" <<'RULES'
polkit.addRule(function(action, subject) {
  if ((action.id == "io.github.memmon.monitor" || action.id == "io.github.memmon.inspect") &&
      subject.isInGroup("memmon-readers")) {
    return polkit.Result.YES;
  }
});
RULES
# The only change to the shipped unit: a short idle timeout (the default is 60 s).
mkdir -p "$R/etc/systemd/system/memmon-helper.service.d"
printf '[Service]\nExecStart=\nExecStart=/usr/bin/memmon-helper serve --idle-exit %s\n' "$IDLE_SECS" \
  > "$R/etc/systemd/system/memmon-helper.service.d/50-test-idle.conf"

# --- boot ---------------------------------------------------------------------------------
# systemd-nspawn (not started by a systemd) makes payload/ and supervisor/ cgroups inside its
# own cgroup and leaves them behind: give it a cgroup of its own in each hierarchy that tracks
# processes (cgroup2, and name=systemd on a hybrid machine), removed again by teardown.
cg_name=$(basename "$S")
own_cgroup() { local p; p=$(awk -F: -v h="$1" '$2 == h {print $3}' /proc/self/cgroup); echo "${p%/}"; }
if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
  cgroups+=("/sys/fs/cgroup$(own_cgroup '')/$cg_name")
else
  [ -d /sys/fs/cgroup/unified ] && cgroups+=("/sys/fs/cgroup/unified$(own_cgroup '')/$cg_name")
  [ -d /sys/fs/cgroup/systemd ] && cgroups+=("/sys/fs/cgroup/systemd$(own_cgroup name=systemd)/$cg_name")
fi
for cg in "${cgroups[@]}"; do mkdir "$cg" || unable "cannot create the cgroup $cg"; done
# sockets.target: sysinit (journald, tmpfiles) and dbus.socket; nothing from timers.target or
# multi-user.target.wants, so none of this machine's enabled services or timers start in the
# container. polkit and the helper are started on demand by D-Bus activation.
t0=$(date +%s%N)
(for cg in "${cgroups[@]}"; do echo "$BASHPID" > "$cg/cgroup.procs" || exit 1; done
 exec systemd-nspawn -q -D "$R" --boot --register=no --private-network --console=pipe --keep-unit \
  --capability="$CONTAINER_CAPS" --system-call-filter="$CONTAINER_SYSCALLS" \
  systemd.unit=sockets.target) </dev/null >"$S/console.log" 2>&1 &
nspawn_pid=$!
for _ in $(seq 200); do
  for p in $(pgrep -P "$nspawn_pid"); do
    grep -qE '^NSpid:.*[[:space:]]1$' "/proc/$p/status" 2>/dev/null && pid1=$p
  done
  [ -n "$pid1" ] && break
  kill -0 "$nspawn_pid" 2>/dev/null || break
  sleep 0.05
done
[ -n "$pid1" ] || { cat "$S/console.log"; unable "systemd-nspawn started no PID 1"; }
ct() { nsenter --target "$pid1" --mount --uts --ipc --net --pid -- "$@"; }
state=
for _ in $(seq 600); do
  state=$(ct systemctl is-system-running 2>/dev/null)
  case $state in running|degraded) break ;; esac
  kill -0 "$nspawn_pid" 2>/dev/null || break
  sleep 0.1
done
check "systemd boots in the container ($state in $((($(date +%s%N) - t0) / 1000000)) ms)" \
  test "$state" = running -o "$state" = degraded
[ "$state" = running ] || ct systemctl --failed --no-legend
check "... with its own UTS namespace" test "$(readlink "/proc/$pid1/ns/uts")" != "$host_uts"
check "... and its own /tmp (the host's marker is not visible inside)" ct test ! -e "$marker"
# systemd mounts tracefs at boot (sys-kernel-tracing.mount); inside nspawn that unit is skipped
# (ConditionCapability=CAP_SYS_RAWIO), so mount it as the machine's systemd would.
ct mount -t tracefs nodev /sys/kernel/tracing ||
  bad "cannot mount tracefs in the container"

# --- helpers --------------------------------------------------------------------------------
as() { local user=$1; shift; ct setpriv --reuid "$user" --regid "$(ct id -g "$user")" --init-groups -- "$@"; }
call() { # call USER|root METHOD [ARGS...]: raw D-Bus call, prints the reply or the error
  local user=$1 method=$2; shift 2
  local cmd=(timeout 30 dbus-send --system --print-reply --reply-timeout=10000
             --dest=io.github.memmon.Helper1 /io/github/memmon/Helper1 "io.github.memmon.Helper1.$method" "$@")
  if [ "$user" = root ]; then ct "${cmd[@]}" 2>&1; else as "$user" "${cmd[@]}" 2>&1; fi
}
unit() { ct systemctl show -P "$1" memmon-helper.service; }
bus_owner_pid() {
  ct dbus-send --system --print-reply --dest=org.freedesktop.DBus / \
    org.freedesktop.DBus.GetConnectionUnixProcessID string:io.github.memmon.Helper1 2>/dev/null |
    awk '/uint32/ {print $2}'
}
host_pid() { # the host's PID of the container's PID $1
  local p ns; ns=$(readlink "/proc/$pid1/ns/pid")
  for p in $(pgrep -x memmon-helper); do
    [ "$(readlink "/proc/$p/ns/pid")" = "$ns" ] &&
      grep -qE "^NSpid:.*[[:space:]]$1\$" "/proc/$p/status" && { echo "$p"; return 0; }
  done
  return 1
}
attached() { # ids of the programs host PID $1 holds linked to tracepoints (its bpf_link fds)
  local f
  for f in /proc/"$1"/fdinfo/*; do
    awk '$1 == "event_type:" && $2 == "tracepoint" {t = 1} $1 == "prog_id:" {id = $2}
         END {if (t && id != "") print id}' "$f" 2>/dev/null
  done | sort -u
}
wait_for() { local i; for i in $(seq "${2:-250}"); do eval "$1" && return 0; sleep 0.02; done; return 1; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }

# --- activation for a denied user: systemd starts the unit, nothing system-wide happens ----
check "memmon-helper.service is installed and inactive before any call" \
  test "$(unit LoadState) $(unit ActiveState)" = "loaded inactive"
out=$(call memmon-t2 GetInfo)
# No rule and no active session: auth_admin_keep, so AuthenticationRequired (NotAuthorized if
# the policy said no): either way refused.
check "a user without a polkit rule is refused" \
  grep -Eq 'io.github.memmon.Helper1.Error.(NotAuthorized|AuthenticationRequired)' <<<"$out"
main=$(unit MainPID)
check "D-Bus handed activation to systemd: memmon-helper.service is active" \
  test "$(unit ActiveState)" = active -a "${main:-0}" != 0
check "... and its main process owns io.github.memmon.Helper1" test "$(bus_owner_pid)" = "$main"
hp=$(host_pid "$main")
check "no program is attached before an authorised call" test -n "$hp" -a -z "$(attached "${hp:-0}")"

# --- a granted user: Full mode, programs attached -----------------------------------------
# A client stays connected through the checks of the running helper below, so the 5 s idle
# exit cannot begin during them however long they take on a loaded machine.
(as memmon-t1 timeout 120 /usr/bin/memmon-helper snapshot --bus --top 1 --watch 1 >/dev/null 2>&1) &
keeper=$!
snap=$(as memmon-t1 timeout 30 /usr/bin/memmon-helper snapshot --bus --json --top 1000 2>&1)
mode=$(json 'print(" — ".join(x for x in (d["mode"], d.get("mode_reason")) if x))' <<<"$snap" 2>/dev/null || head -c 300 <<<"$snap")
check "a granted non-root user gets a Full-mode snapshot (mode: $mode)" test "${mode%% *}" = full
check "... listing the container's processes" json 'assert len(d["processes"]) >= 3 and any(p["pid"] == 1 for p in d["processes"])' <<<"$snap"
check "... from the same unit process" test "$(unit MainPID)" = "$main"
# Read until stable: the collector may still be attaching its last programs (up to 2 s). The
# links are the helper's own (its fds); the names come from the kernel's list of programs, in
# which only this container's helper has memmon_* ones now.
loaded_named() { bpftool prog show 2>/dev/null </dev/null | grep -c ' name memmon_'; }
four_linked() { progs=$(attached "${hp:-0}"); [ "$(wc -w <<<"$progs")" -ge 4 ] && [ "$(loaded_named)" -ge 4 ]; }
progs=
wait_for four_linked 100
check "its programs are attached now ($(wc -w <<<"$progs") tracepoint links, $(loaded_named) memmon programs, seen from the host)" \
  four_linked
# (after the programs check: these calls take a few seconds of the 5 s idle time)
# Apps from a real systemd's units, read by the hardened helper (read-only cgroupfs, no
# CAP_DAC_*): its own unit and the bus are services with their cgroup's memory.
apps=$(as memmon-t1 timeout 30 /usr/bin/memmon-helper snapshot --bus --apps --json --top 1000 2>&1)
check "GetApps groups the container's processes by their real systemd units" \
  json 'ids = {a["id"] for a in d["apps"]}; assert {"service:memmon-helper", "service:dbus", "service:systemd"} <= ids, ids' <<<"$apps"
# What the helper can claim depends on the memory controller it sees. Here the unit runs in a
# cgroup namespace of its own whose memory root is the container's (one v1 memory cgroup for the
# whole container): the unit's figure is then labelled as covering that root, and the app's
# headline is its RSS sum.
if ct grep -q ' - cgroup2 .*' /proc/1/mountinfo && ct grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null ||
   ct grep -Eq ' - cgroup cgroup [^ ]*memory' /proc/1/mountinfo; then has_memory=True; else has_memory=False; fi
check "... the helper's own unit: one process, and a cgroup figure exactly when a memory controller is mounted ($has_memory)" \
  json "a = [a for a in d['apps'] if a['id'] == 'service:memmon-helper'][0]; assert a['process_count'] == 1 and a['rss_sum_kb'] > 0, a; assert ('memory' in a) == $has_memory, a; assert not $has_memory or a['memory']['current_kb'] > 0, a; assert ('no memory controller' in d['grouping']) != $has_memory, d['grouping']" <<<"$apps"

# --- the unit's confinement is in force -----------------------------------------------------
st=$(ct cat "/proc/$main/status")
field() { awk -v k="$1:" '$1 == k {print $2}' <<<"$st"; }
check "bounding and effective capabilities are exactly CAP_BPF CAP_PERFMON" \
  test "$(field CapBnd) $(field CapEff)" = "000000c000000000 000000c000000000"
check "NoNewPrivileges is set" test "$(field NoNewPrivs)" = 1
check "a seccomp filter of its own is installed (SystemCallFilter and friends)" \
  test "$(field Seccomp)" = 2 -a "$(field Seccomp_filters)" -gt "$(awk '$1 == "Seccomp_filters:" {print $2}' "/proc/$pid1/status")"
check "UMask is 0077" test "$(field Umask)" = 0077
for ns in net uts ipc mnt; do
  check "its own $ns namespace" test "$(readlink "/proc/$hp/ns/$ns")" != "$(readlink "/proc/$pid1/ns/$ns")"
done
check "PrivateDevices: no block device in its /dev" test -z "$(ct find "/proc/$main/root/dev" -type b)"
mnt() { # mnt PATH: "root-of-mount options" of the mount the helper sees at PATH
  awk -v p="$1" '$5 == p {r = $4 " " $6} END {print r}' "/proc/$hp/mountinfo"; }
check "ProtectHome: /root is an inaccessible mount for it" grep -q 'inaccessible' <<<"$(mnt /root)"
check "ProtectSystem=strict: its / is read-only" grep -q ' ro' <<<"$(mnt /)"
check "PrivateTmp: its /tmp is its own" grep -q 'systemd-private-.*memmon-helper.service' <<<"$(mnt /tmp)"
check "ProtectKernelTunables: its /sys is read-only, tracefs still readable" \
  bash -c "grep -q ' ro' <<<'$(mnt /sys)' && grep -qx '[0-9][0-9]*' /proc/$hp/root/sys/kernel/tracing/events/syscalls/sys_enter_mmap/id"
cg2=/sys/fs/cgroup; [ -d /sys/fs/cgroup/unified ] && cg2=/sys/fs/cgroup/unified
cg2="$cg2$(awk -F: '$1 == 0 {print $3}' "/proc/$hp/cgroup")"
check "IPAddressDeny: systemd's firewall programs guard its cgroup both ways" \
  bash -c "bpftool cgroup show '$cg2' | grep -q sd_fw_ingress && bpftool cgroup show '$cg2' | grep -q sd_fw_egress"
want=$(awk '/^Max open files/ {print $5}' "/proc/$pid1/limits")
[ "$want" -gt 33024 ] && want=33024
check "LimitNOFILE is applied (33024, or this machine's hard limit $want if lower)" \
  test "$(awk '/^Max open files/ {print $4 "/" $5}' "/proc/$hp/limits")" = "$want/$want"
check "its threads and RSS are well inside TasksMax=32 and MemoryMax=512M" \
  test "$(field Threads)" -le 16 -a "$(field VmRSS)" -lt $((128 * 1024))
# CAP_PERFMON passes the kernel's ptrace read check: smaps_rollup of another user's process,
# even a non-dumpable one, without CAP_SYS_PTRACE (asked as root: no polkit involved).
ct setpriv --reuid memmon-t2 --regid "$(ct id -g memmon-t2)" --clear-groups -- /usr/bin/python3 -c \
  'import ctypes, signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0
time.sleep(60)' &
target_runner=$!
wait_for "ct pgrep -u memmon-t2 -x python3 >/dev/null" 150
tp=$(ct pgrep -u memmon-t2 -x python3 | head -1)
detail=$(call root GetMemoryDetail "uint32:${tp:-0}" "uint64:$(ct awk '{print $22}' "/proc/${tp:-0}/stat" 2>/dev/null)" |
         sed -n 's/^ *string "\(.*\)"$/\1/p' | sed 's/\\"/"/g')
check "GetMemoryDetail reads another user's non-dumpable process (CAP_PERFMON, no CAP_SYS_PTRACE)" \
  json "assert d['pid'] == ${tp:-0} and d['pss_kb'] > 0" <<<"$detail"
# A call-site session under the same confinement: the mappings source reads the process's maps
# and the binaries it maps and attaches its tracepoints (CAP_BPF and CAP_PERFMON only). The heap
# source's uprobes need CAP_SYS_ADMIN on this kernel: refused, saying so. dbus-send leaves at
# once, which ends the session.
tstart=$(ct awk '{print $22}' "/proc/${tp:-0}/stat" 2>/dev/null)
out=$(call root StartCallSites "uint32:${tp:-0}" "uint64:${tstart:-0}" string:mappings uint32:30 uint32:0)
check "StartCallSites (mappings) attaches for another user's non-dumpable process ($(tail -1 <<<"$out" | tr -s ' '))" \
  grep -q 'uint32 [1-9]' <<<"$out"
out=$(call root StartCallSites "uint32:${tp:-0}" "uint64:${tstart:-0}" string:heap uint32:30 uint32:0)
check "... the heap source is refused with its reason (uprobes need CAP_SYS_ADMIN)" \
  grep -q 'InvalidArgument.*CAP_SYS_ADMIN' <<<"$out"
check "... and its programs are gone once its client has left the bus" \
  wait_for '[ "$(bpftool prog show 2>/dev/null </dev/null | grep -c "name cs_")" = 0 ]' 250
ct pkill -u memmon-t2 -x python3; wait "$target_runner" 2>/dev/null || true

# --- idle exit --------------------------------------------------------------------------------
ct pkill -f 'memmon-helper snapshot --bus --top 1 --watch 1'; wait "$keeper" 2>/dev/null || true
check "the unit goes inactive when idle (--idle-exit $IDLE_SECS)" \
  wait_for '[ "$(unit ActiveState)" = inactive ]' $(((IDLE_SECS + 7) * 50))
check "... having exited cleanly (Result=success)" test "$(unit Result)" = success
gone() { local id; for id in $progs; do bpftool prog show id "$id" >/dev/null 2>&1 && return 1; done; return 0; }
check "... and its programs are gone from the kernel" wait_for gone 100

# --- the exporter: installed and disabled; /proc-only and without capabilities by default ----
eunit() { ct systemctl show -P "$1" memmon-exporter.service; }
scrape() { ct python3 -c "import urllib.request as u; print(u.urlopen('http://127.0.0.1:9464/metrics', timeout=5).read().decode())" 2>/dev/null; }
estatus() { ct cat "/proc/$(eunit MainPID)/status" 2>/dev/null; }
efield() { awk -v k="$1:" '$1 == k {print $2}' <<<"$es"; }
enabled=$(ct systemctl is-enabled memmon-exporter.service 2>/dev/null)
check "memmon-exporter.service is installed, disabled by default and inactive ($enabled, $(eunit ActiveState))" \
  test "$enabled $(eunit ActiveState)" = "disabled inactive"
ct systemctl start memmon-exporter.service
check "systemctl start memmon-exporter: /metrics is served on 127.0.0.1:9464" \
  wait_for 'scrape | grep -q "^memmon_memory_total_bytes "' 300
m=$(scrape)
check "... /proc-only by default, with the container's processes and apps" bash -c '
  grep -q "^memmon_exporter_build_info{.*mode=\"proc-only\"" <<<"$1" && grep -q "^memmon_ebpf_enabled 0" <<<"$1" &&
  grep -q "^memmon_processes [1-9]" <<<"$1" && grep -q "^memmon_app_memory_bytes{app=\"service:memmon-exporter\"}" <<<"$1"' _ "$m"
es=$(estatus); ehp=$(host_pid "$(eunit MainPID)")
# It cannot shrink its bounding set itself (no CAP_SETPCAP): the unit's CAP_BPF CAP_PERFMON.
check "... holding no capability (effective and permitted sets empty; bounding: the unit's two)" \
  test "$(efield CapEff) $(efield CapPrm) $(efield CapBnd)" = "0000000000000000 0000000000000000 000000c000000000"
check "... with NoNewPrivileges, its own seccomp filter and UMask 0077" \
  test "$(efield NoNewPrivs) $(efield Seccomp) $(efield Umask)" = "1 2 0077"
check "... a read-only / (ProtectSystem=strict) and its own /tmp" bash -c "
  awk '\$5 == \"/\" {print \$6}' /proc/${ehp:-0}/mountinfo | grep -q '^ro' &&
  grep -q 'systemd-private-.*memmon-exporter.service' /proc/${ehp:-0}/mountinfo"
check "... listening on loopback only (127.0.0.1:9464)" bash -c '
  ct() { nsenter --target '"$pid1"' --net -- "$@"; }
  t=$(ct cat /proc/net/tcp /proc/net/tcp6)
  grep -q " 0100007F:24F8 00000000:0000 0A" <<<"$t" && ! grep -Eq " 0+:24F8 0+:0000 0A" <<<"$t"'
check "... and no eBPF program attached" test -n "$ehp" -a -z "$(attached "${ehp:-0}")"
# eBPF on request, from the settings file the unit reads.
ct sh -c 'echo MEMMON_EXPORTER_EBPF=1 >> /etc/default/memmon-exporter'
ct systemctl restart memmon-exporter.service
check "MEMMON_EXPORTER_EBPF=1 in /etc/default/memmon-exporter: Full mode after a restart" \
  wait_for 'scrape | grep -q "^memmon_ebpf_enabled 1"' 300
es=$(estatus); ehp=$(host_pid "$(eunit MainPID)")
check "... keeping exactly CAP_BPF and CAP_PERFMON" \
  test "$(efield CapEff) $(efield CapBnd)" = "000000c000000000 000000c000000000"
check "... with its programs attached (seen from the host)" \
  wait_for '[ "$(attached "${ehp:-0}" | wc -w)" -ge 4 ]' 250
check "... and per-process mmap counters among its metrics" \
  wait_for 'scrape | grep -q "^memmon_process_mmap_calls_total{pid="' 300
eprogs=$(attached "${ehp:-0}")
ct systemctl stop memmon-exporter.service
check "systemctl stop memmon-exporter: inactive, Result=success" \
  test "$(eunit ActiveState) $(eunit Result)" = "inactive success"
egone() { local id; for id in $eprogs; do bpftool prog show id "$id" >/dev/null 2>&1 && return 1; done; return 0; }
check "... and its programs are gone from the kernel" wait_for egone 100

# dbus-daemon says "Activating via systemd" or, before systemd is on the bus, "Activating
# systemd to hand-off".
check "dbus-daemon logged the hand-off to systemd for unit memmon-helper.service" \
  bash -c "nsenter --target $pid1 --mount --uts --ipc --net --pid -- journalctl -q --no-pager -b -t dbus-daemon |
    grep -Eq \"Activating (via systemd|systemd to hand-off): service name='io.github.memmon.Helper1' unit='memmon-helper.service'\""

# --- teardown: the container leaves nothing behind --------------------------------------------
teardown
check "the container stopped and its overlay is gone" bash -c "! kill -0 $nspawn_pid 2>/dev/null && test ! -e '$S'"
check "... and so is its cgroup" bash -c 'for cg; do [ ! -e "$cg" ] || exit 1; done' _ "${cgroups[@]}"
check "the host's /tmp marker survived" grep -q 'must survive' "$marker"
check "the host's hostname is unchanged" test "$(hostname)" = "$host_name"
summary
[ "$fail" = 0 ]
