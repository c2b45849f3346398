#!/usr/bin/env bash
# Prometheus exporter benchmark (BENCHMARKS.md, "Prometheus exporter"), side by side in one run,
# with PROCS (default 1,000) extra `sleep 3600` processes alive:
#
# 1. Cost of being scraped. Each round runs, one at a time and in a rotated order, four exporters:
#      memmon       target/release/memmon-helper export (/proc-only, default --interval 5)
#      memmon-ebpf  the same with --ebpf
#      memmon-15    /proc-only with --interval 15: one collection per 15 s scrape
#      node         /usr/bin/prometheus-node-exporter (default collectors)
#      process      /usr/bin/prometheus-process-exporter, every process grouped by name
#                   (process_names: {{.Comm}} for cmdline .+; its defaults: -gather-smaps, -threads)
#    Once an exporter is ready (memmon: two collections done) and scraped once (warm-up, not
#    counted), it is scraped every SCRAPE_EVERY (15) s for WINDOW (60) s, as Prometheus would, with
#    Prometheus' Accept header (OpenMetrics preferred: memmon answers OpenMetrics 1.0, the two Go
#    exporters text 0.0.4). Recorded: utime+stime delta of /proc/PID/stat over the window (% of a
#    core, CPU ms per scrape), VmRSS at the window's end, the response size (uncompressed) and sample
#    count; then a burst of ceil(BURST/ROUNDS) back-to-back scrapes (curl time_total, a new
#    connection each; pooled over rounds for p50/p99) with its utime+stime delta (CPU per scrape at
#    scrape time only, pooled: /proc/PID/stat counts 10 ms ticks), VmHWM, and one scrape without an
#    Accept header.
#    memmon's CPU includes its collection every 5 s (12 ticks per window, 3 per scrape); the Go
#    exporters read /proc when scraped.
# 2. eBPF tax. Each round, in a rotated order: no exporter / memmon export (/proc-only) / memmon
#    export --ebpf; while each runs, `memmon-workload loop-getppid` and `loop-mmap` (LOOP_SECS s each).
#
# Prints per-round lines on stderr and two Markdown tables (medians over rounds) on stdout.
# Root (for --ebpf). Build first: cargo build --release -p memmon-helper
# Usage: sudo scripts/bench-exporter.sh [ROUNDS]      (default 3; ~19 min)
#        env: WINDOW=60 SCRAPE_EVERY=15 BURST=150 LOOP_SECS=3 PROCS=1000
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
window=${WINDOW:-60}
every=${SCRAPE_EVERY:-15}
burst=${BURST:-150}
loop_secs=${LOOP_SECS:-3}
nprocs=${PROCS:-1000}
helper=target/release/memmon-helper
workload=target/release/memmon-workload
node_bin=/usr/bin/prometheus-node-exporter
proc_bin=/usr/bin/prometheus-process-exporter
accept='Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5'
declare -A port=([memmon]=19464 [memmon-ebpf]=19464 [memmon-15]=19464 [node]=19100 [process]=19256)

[ "$(id -u)" = 0 ] || { echo "bench-exporter: run as root (--ebpf)" >&2; exit 1; }
for b in "$helper" "$workload"; do
  [ -x "$b" ] || { echo "bench-exporter: build $b first (cargo build --release -p memmon-helper)" >&2; exit 1; }
done
for b in "$node_bin" "$proc_bin"; do
  [ -x "$b" ] || { echo "bench-exporter: apt-get install -y prometheus-node-exporter prometheus-process-exporter" >&2; exit 1; }
done
for p in 19464 19100 19256; do
  if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$p/"; then
    echo "bench-exporter: something already listens on 127.0.0.1:$p" >&2; exit 1
  fi
done

out=$(mktemp -d)
exp_pid=
sleeps=()
cleanup() {
  set +e
  if [ -n "$exp_pid" ]; then kill "$exp_pid" 2>/dev/null; wait "$exp_pid" 2>/dev/null; fi
  if [ ${#sleeps[@]} -gt 0 ]; then kill "${sleeps[@]}" 2>/dev/null; wait "${sleeps[@]}" 2>/dev/null; fi
  rm -rf "$out"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat > "$out/process-exporter.yml" <<'EOF'
process_names:
  - name: "{{.Comm}}"
    cmdline:
      - '.+'
EOF

hz=$(getconf CLK_TCK)
now() { date +%s.%N; }
# utime+stime in clock ticks (fields 14 and 15; the comm field may hold spaces, so cut after ')')
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
sleep_until() { local d; d=$(awk -v t="$1" -v n="$(now)" 'BEGIN {d = t - n; print (d > 0 ? d : 0)}'); sleep "$d"; }
metric() { awk -v m="$2" '$1 == m {print $2 + 0}' "$1"; }

start_exporter() { # NAME [MIN_SCANS, default 2]
  local name=$1 scans=${2:-2} url="http://127.0.0.1:${port[$1]}/metrics" deadline cmd
  case $name in
    memmon) cmd=("$helper" export --listen "127.0.0.1:${port[$name]}") ;;
    memmon-ebpf) cmd=("$helper" export --listen "127.0.0.1:${port[$name]}" --ebpf) ;;
    memmon-15) cmd=("$helper" export --listen "127.0.0.1:${port[$name]}" --interval 15) ;;
    node) cmd=("$node_bin" "--web.listen-address=127.0.0.1:${port[$name]}") ;;
    process) cmd=("$proc_bin" -web.listen-address "127.0.0.1:${port[$name]}" -config.path "$out/process-exporter.yml") ;;
  esac
  "${cmd[@]}" > "$out/$name.log" 2>&1 &
  exp_pid=$!
  deadline=$(( SECONDS + 60 ))
  while :; do
    kill -0 "$exp_pid" 2>/dev/null || { echo "bench-exporter: $name exited:" >&2; cat "$out/$name.log" >&2; exit 1; }
    [ $SECONDS -lt $deadline ] || { echo "bench-exporter: $name not ready after 60 s" >&2; exit 1; }
    if curl -sf -o "$out/ready" -H "$accept" "$url" 2>/dev/null; then
      case $name in
        memmon*) # MIN_SCANS collections done (the first sees every process for the first time)
          if [ "$(metric "$out/ready" memmon_scans_total)" -ge "$scans" ] 2>/dev/null &&
             { [ "$name" != memmon-ebpf ] || [ "$(metric "$out/ready" memmon_ebpf_enabled)" = 1 ]; }; then break; fi ;;
        *) break ;;
      esac
    fi
    sleep 0.1
  done
}

stop_exporter() {
  kill "$exp_pid"; wait "$exp_pid" 2>/dev/null || true; exp_pid=
}

# scrape NAME [ACCEPT] -> "http_code bytes seconds"; the body is left in $out/body
scrape() {
  local h=()
  [ $# -lt 2 ] || h=(-H "$2")
  curl -s -o "$out/body" "${h[@]}" -w '%{http_code} %{size_download} %{time_total}\n' \
    "http://127.0.0.1:${port[$1]}/metrics"
}

# Measure one exporter's window and burst; appends to $out/results and $out/latency
measure() { # NAME ROUND
  local name=$1 round=$2 c0 c1 t0 t1 i code bytes secs sizes=() rss hwm samples tick n plain b0 b1
  start_exporter "$name"
  scrape "$name" "$accept" > /dev/null # warm-up
  c0=$(cpu_ticks "$exp_pid"); t0=$(now)
  for ((i = 0; i * every < window; i++)); do
    sleep_until "$(awk -v t="$t0" -v o=$((i * every)) 'BEGIN {printf "%.3f", t + o}')"
    read -r code bytes secs < <(scrape "$name" "$accept")
    [ "$code" = 200 ] || { echo "bench-exporter: $name answered $code" >&2; exit 1; }
    sizes+=("$bytes")
  done
  sleep_until "$(awk -v t="$t0" -v w="$window" 'BEGIN {printf "%.3f", t + w}')"
  c1=$(cpu_ticks "$exp_pid"); t1=$(now)
  rss=$(status_kb "$exp_pid" VmRSS)
  samples=$(grep -vc '^#' "$out/body" || true)
  tick=$(metric "$out/body" memmon_scan_duration_seconds); tick=${tick:--}
  n=$(( (burst + rounds - 1) / rounds ))
  b0=$(cpu_ticks "$exp_pid")
  for ((i = 0; i < n; i++)); do
    read -r code bytes secs < <(scrape "$name" "$accept")
    [ "$code" = 200 ] || { echo "bench-exporter: $name answered $code" >&2; exit 1; }
    echo "$name $secs" >> "$out/latency"
  done
  b1=$(cpu_ticks "$exp_pid")
  read -r code plain secs < <(scrape "$name")
  hwm=$(status_kb "$exp_pid" VmHWM)
  stop_exporter
  local size; size=$(printf '%s\n' "${sizes[@]}" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
  local cpu_s; cpu_s=$(awk -v a="$c0" -v b="$c1" -v hz="$hz" 'BEGIN {printf "%.2f", (b - a) / hz}')
  local wall; wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
  local bcpu; bcpu=$(awk -v a="$b0" -v b="$b1" -v hz="$hz" 'BEGIN {printf "%.2f", (b - a) / hz}')
  echo "$name $round $cpu_s $wall ${#sizes[@]} $rss $hwm $size $samples $plain $tick $bcpu $n" >> "$out/results"
  printf 'round %s %-11s cpu=%ss in %ss (%s scrapes) rss=%skB hwm=%skB bytes=%s samples=%s plain=%s tick=%ss burst=%s scrapes in %ss cpu\n' \
    "$round" "$name" "$cpu_s" "$wall" "${#sizes[@]}" "$rss" "$hwm" "$size" "$samples" "$plain" "$tick" "$n" "$bcpu" >&2
}

tax() { # CONFIG ROUND
  local cfg=$1 round=$2 g m
  case $cfg in
    none) ;;
    proc) start_exporter memmon 1 ;;
    ebpf) start_exporter memmon-ebpf 1 ;;
  esac
  sleep 1
  g=$("$workload" loop-getppid --seconds "$loop_secs" | awk '{print $2}')
  m=$("$workload" loop-mmap --seconds "$loop_secs" | awk '{print $2}')
  [ -z "$exp_pid" ] || stop_exporter
  echo "$cfg $g $m" >> "$out/tax"
  printf 'round %s tax %-4s getppid=%s/s mmap+munmap=%s/s\n' "$round" "$cfg" "$g" "$m" >&2
}

start=$SECONDS
for ((i = 0; i < nprocs; i++)); do
  sleep 3600 < /dev/null > /dev/null 2>&1 &
  sleeps+=($!)
done
sleep 1
echo "processes: $(ls -d /proc/[0-9]* | wc -l); $(nproc) CPUs; $(uname -r); rounds=$rounds window=${window}s every=${every}s burst=$burst loop=${loop_secs}s" >&2

exporters=(memmon memmon-ebpf memmon-15 node process)
configs=(none proc ebpf)
for ((r = 0; r < rounds; r++)); do
  for ((k = 0; k < ${#exporters[@]}; k++)); do
    measure "${exporters[(k + r) % ${#exporters[@]}]}" $((r + 1))
  done
  for ((k = 0; k < ${#configs[@]}; k++)); do
    tax "${configs[(k + r) % ${#configs[@]}]}" $((r + 1))
  done
done
echo "total $((SECONDS - start)) s" >&2

python3 - "$out/results" "$out/latency" "$out/tax" <<'PY'
import math, statistics as st, sys
res, lat, tax = {}, {}, {}
for line in open(sys.argv[1]):
    name, rnd, cpu, wall, n, rss, hwm, size, samples, plain, tick, bcpu, bn = line.split()
    res.setdefault(name, []).append(dict(cpu=float(cpu), wall=float(wall), n=int(n), rss=int(rss),
        bcpu=float(bcpu), bn=int(bn),
        hwm=int(hwm), size=int(size), samples=int(samples), plain=int(plain),
        tick=None if tick == '-' else float(tick)))
for line in open(sys.argv[2]):
    name, s = line.split(); lat.setdefault(name, []).append(float(s))
for line in open(sys.argv[3]):
    cfg, g, m = line.split(); tax.setdefault(cfg, ([], [])); tax[cfg][0].append(float(g)); tax[cfg][1].append(float(m))

def pct(xs, p):
    xs = sorted(xs); return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)]
names = ['memmon', 'memmon-ebpf', 'memmon-15', 'node', 'process']
heads = ['memmon /proc-only', 'memmon --ebpf', 'memmon --interval 15', 'node_exporter', 'process-exporter']
med = lambda name, f: st.median(f(r) for r in res[name])
rows = [
    ('CPU, % of a core over the window', lambda n: med(n, lambda r: 100 * r['cpu'] / r['wall']), '{:.2f} %'),
    ('CPU per scrape, ms (window CPU ÷ scrapes)', lambda n: med(n, lambda r: 1000 * r['cpu'] / r['n']), '{:.1f}'),
    ('CPU per scrape in the burst (scrape-time work only; pooled over rounds), ms',
     lambda n: 1000 * sum(r['bcpu'] for r in res[n]) / sum(r['bn'] for r in res[n]), '{:.2f}'),
    ('VmRSS at the window\'s end, MB', lambda n: med(n, lambda r: r['rss'] / 1024), '{:.1f}'),
    ('VmHWM (peak), max over rounds, MB', lambda n: max(r['hwm'] for r in res[n]) / 1024, '{:.1f}'),
    ('response, bytes (Prometheus\' Accept)', lambda n: med(n, lambda r: r['size']), '{:,.0f}'),
    ('response, bytes (no Accept: text 0.0.4)', lambda n: med(n, lambda r: r['plain']), '{:,.0f}'),
    ('samples in a response', lambda n: med(n, lambda r: r['samples']), '{:,.0f}'),
    ('scrape latency p50, ms', lambda n: 1000 * pct(lat[n], 50), '{:.2f}'),
    ('scrape latency p99, ms', lambda n: 1000 * pct(lat[n], 99), '{:.2f}'),
]
print('| | ' + ' | '.join(heads) + ' | memmon/node | memmon --ebpf/node | memmon --interval 15/node | memmon/process-exporter |')
print('|---' * (len(heads) + 5) + '|')
for label, f, fmt in rows:
    v = {n: f(n) for n in names}
    ratio = lambda a, b: f"{v[a] / v[b]:.2f}×" if v[b] else '—'
    print(f'| {label} | ' + ' | '.join(fmt.format(v[n]) for n in names) +
          f" | {ratio('memmon', 'node')} | {ratio('memmon-ebpf', 'node')} | {ratio('memmon-15', 'node')} | {ratio('memmon', 'process')} |")
print()
print('per round, CPU % of a core: ' + '; '.join(
    f"{n} " + ' / '.join(f"{100 * r['cpu'] / r['wall']:.2f}" for r in res[n]) for n in names))
print('scrapes per window: ' + ', '.join(f"{n} {res[n][0]['n']}" for n in names) +
      '; burst latencies pooled: ' + ', '.join(f"{n} {len(lat[n])}" for n in names))
for n in ('memmon', 'memmon-ebpf', 'memmon-15'):
    ticks = [r['tick'] for r in res[n] if r['tick'] is not None]
    if ticks:
        print(f'{n}: memmon_scan_duration_seconds at the window\'s end, median {1000 * st.median(ticks):.1f} ms')
print()
mg = {c: st.median(v[0]) for c, v in tax.items()}
mm = {c: st.median(v[1]) for c, v in tax.items()}
ns = lambda rate: 1e9 / rate
print('| exporter running | getppid calls/s (median) | added ns per getppid | mmap+munmap iter/s (median) | added ns per iteration | added ns per traced syscall |')
print('|---|---|---|---|---|---|')
for c, label in (('none', 'none'), ('proc', 'memmon export (/proc-only)'), ('ebpf', 'memmon export --ebpf')):
    dg = ns(mg[c]) - ns(mg['none']); dm = ns(mm[c]) - ns(mm['none'])
    print(f'| {label} | {mg[c]:,.0f} | {dg:+.0f} | {mm[c]:,.0f} | {dm:+.0f} | {dm / 2:+.0f} |')
print()
print('per round: ' + '; '.join(f"{c} getppid " + ' / '.join(f'{x:,.0f}' for x in tax[c][0]) +
      ' mmap ' + ' / '.join(f'{x:,.0f}' for x in tax[c][1]) for c in ('none', 'proc', 'ebpf')))
PY
