//! What one collector tick exposes to Prometheus, and its encoding with the official client's
//! encoders (OpenMetrics 1.0 text, and the Prometheus text format 0.0.4 for other scrapers).
//!
//! Every label set is bounded: the processes are the top N by RSS plus the top N by growth
//! (at most 2N series per process metric), the apps the largest M, the OOM victims the last
//! [`MAX_VICTIM_SERIES`]. Label values are process names (`comm`, at most 15 bytes, escaped by
//! the scanner) and app ids; never command lines.

use std::{collections::HashSet, fmt};

use bytes::Bytes;
use memmon_common::{
    apps::AppRow,
    diagnostics::{OomKill, OomSource},
    snapshot::{Mode, ProcessRow, Snapshot, SortKey},
};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeCounterValue, EncodeLabelSet, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::{Registry, Unit},
};

use crate::pressure::VmCounters;

/// OOM victims exposed (the most recent ones).
pub const MAX_VICTIM_SERIES: usize = 10;

/// How many processes and apps get their own series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selection {
    /// Top N by RSS and top N by growth (a process in both counts once).
    pub top: usize,
    /// The largest apps by memory; 0 exposes none.
    pub max_apps: usize,
}

/// The exporter's own resource use and counters, read at each tick.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ExporterStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    pub scans: u64,
    pub scan_errors: u64,
}

impl ExporterStats {
    /// This process's CPU time, memory and descriptors from /proc/self (zeros where unreadable).
    pub fn read_self(scans: u64, scan_errors: u64) -> ExporterStats {
        let mut stats = ExporterStats {
            scans,
            scan_errors,
            ..ExporterStats::default()
        };
        if let Ok(me) = procfs::process::Process::myself() {
            if let Ok(stat) = me.stat() {
                let ticks = crate::proc_scan::clock_ticks_per_second() as f64;
                stats.cpu_seconds = (stat.utime + stat.stime) as f64 / ticks;
                stats.resident_bytes = stat.rss.saturating_mul(crate::proc_scan::page_size());
                stats.virtual_bytes = stat.vsize;
            }
            stats.open_fds = me.fd_count().map_or(0, |n| n as u64);
        }
        stats
    }
}

/// One process's series.
#[derive(Debug, Clone, PartialEq)]
struct ProcessSeries {
    labels: [(&'static str, String); 2],
    rss: Option<f64>,
    peak_rss: Option<f64>,
    swap: Option<f64>,
    growth: Option<f64>,
    sustained: Option<bool>,
    net_mapped: Option<f64>,
    mmap: Option<u64>,
    munmap: Option<u64>,
    brk: Option<u64>,
}

/// One app's series.
#[derive(Debug, Clone, PartialEq)]
struct AppSeries {
    id: [(&'static str, String); 1],
    info: [(&'static str, String); 4],
    memory: f64,
    anon: Option<f64>,
    page_cache: Option<f64>,
    swap: f64,
    growth: Option<f64>,
    sustained: Option<bool>,
    limit: Option<f64>,
    processes: f64,
    /// `memory.events` of the app's own cgroup: oom, oom_kill, max, high.
    events: Option<[u64; 4]>,
}

/// Everything one scrape shows, owned (a tick's data, detached from the collector).
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    version: &'static str,
    mode: Mode,
    taken_at_s: f64,
    scan_seconds: f64,
    process_count: u64,
    memory: [f64; 4],
    /// some, full
    psi_avg10: [Option<f64>; 2],
    psi_total_s: [Option<f64>; 2],
    vm: Option<VmCounters>,
    page_size: u64,
    oom_kills_total: Option<u64>,
    victims: Vec<OomKill>,
    bpf_drops: Option<u64>,
    stats: ExporterStats,
    processes: Vec<ProcessSeries>,
    apps: Vec<AppSeries>,
}

fn kib(kb: u64) -> f64 {
    kb as f64 * 1024.0
}

/// The growth figure the grid ranks by (0 within the noise), bytes per minute → per second.
fn growth_per_s(g: &memmon_common::diagnostics::Growth) -> Option<f64> {
    g.shown().map(|per_min| per_min / 60.0)
}

impl Metrics {
    /// The series of one tick: `snapshot` holds every process, `apps` every app; `previous`
    /// the processes of the tick before.
    pub fn from_tick(
        snapshot: &Snapshot,
        previous: &Seen,
        apps: &[AppRow],
        vm: Option<VmCounters>,
        selection: Selection,
        stats: ExporterStats,
    ) -> Metrics {
        let pressure = snapshot.pressure.as_ref();
        let full = snapshot.mode == Mode::Full;
        // The most recent first; one series per (pid, comm), so a reused PID is not a
        // duplicate series.
        let mut victims: Vec<OomKill> = Vec::with_capacity(MAX_VICTIM_SERIES);
        for kill in snapshot.oom_kills.iter().rev() {
            if victims.len() == MAX_VICTIM_SERIES {
                break;
            }
            if !victims
                .iter()
                .any(|v| v.pid == kill.pid && v.name == kill.name)
            {
                victims.push(kill.clone());
            }
        }
        let mut app_rows: Vec<&AppRow> = apps.iter().collect();
        app_rows.sort_by(|a, b| b.memory_kb().cmp(&a.memory_kb()).then(a.id.cmp(&b.id)));
        app_rows.truncate(selection.max_apps);
        Metrics {
            version: env!("CARGO_PKG_VERSION"),
            mode: snapshot.mode,
            taken_at_s: snapshot.taken_at_unix_ms as f64 / 1000.0,
            scan_seconds: snapshot.scan_duration_us as f64 / 1e6,
            process_count: u64::from(snapshot.process_count),
            memory: [
                kib(snapshot.system.total_kb),
                kib(snapshot.system.available_kb),
                kib(snapshot.system.swap_total_kb),
                kib(snapshot.system.swap_free_kb),
            ],
            psi_avg10: [
                pressure.and_then(|p| p.some_avg10).map(|v| v / 100.0),
                pressure.and_then(|p| p.full_avg10).map(|v| v / 100.0),
            ],
            psi_total_s: [
                pressure
                    .and_then(|p| p.some_total_us)
                    .map(|v| v as f64 / 1e6),
                pressure
                    .and_then(|p| p.full_total_us)
                    .map(|v| v as f64 / 1e6),
            ],
            vm,
            page_size: crate::proc_scan::page_size(),
            oom_kills_total: pressure.and_then(|p| p.oom_kill_total),
            victims,
            bpf_drops: full.then_some(snapshot.bpf_drops),
            stats,
            processes: selected_processes(&snapshot.processes, selection.top, previous)
                .into_iter()
                .map(process_series)
                .collect(),
            apps: app_rows.into_iter().map(app_series).collect(),
        }
    }

    /// Both encodings of these metrics.
    pub fn encode(self) -> Result<Exposition, fmt::Error> {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut openmetrics = String::with_capacity(64 * 1024);
        prometheus_client::encoding::text::encode(&mut openmetrics, &registry)?;
        let mut text = String::with_capacity(64 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
        Ok(Exposition {
            openmetrics: Bytes::from(openmetrics),
            text: Bytes::from(text),
        })
    }
}

/// One tick's metrics, encoded once and shared by every scrape until the next tick.
#[derive(Clone, Debug)]
pub struct Exposition {
    pub openmetrics: Bytes,
    pub text: Bytes,
}

/// `Content-Type` of [`Exposition::openmetrics`].
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// `Content-Type` of [`Exposition::text`].
pub const TEXT_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The processes of the previous tick, by (PID, start time): only a process that lived through
/// two collections gets series, so short-lived processes (builds, shell pipelines) never create
/// series that Prometheus would keep for hours.
pub type Seen = HashSet<(u32, u64)>;

/// Every process of `snapshot`, as the next tick's [`Seen`].
pub fn seen(snapshot: &Snapshot) -> Seen {
    snapshot
        .processes
        .iter()
        .map(|r| (r.pid, r.start_time))
        .collect()
}

/// The top `top` by RSS, then those of the top `top` by growth (rate above 0, outside the noise)
/// that were not already chosen; among the processes also in `previous`.
fn selected_processes<'r>(
    rows: &'r [ProcessRow],
    top: usize,
    previous: &Seen,
) -> Vec<&'r ProcessRow> {
    let eligible: Vec<&ProcessRow> = rows
        .iter()
        .filter(|r| previous.contains(&(r.pid, r.start_time)))
        .collect();
    let mut chosen = largest(eligible.clone(), top, |a, b| SortKey::Rss.order(true, a, b));
    let rate = |r: &ProcessRow| r.growth.as_ref().and_then(growth_per_s).unwrap_or(0.0);
    let growing: Vec<&ProcessRow> = eligible.into_iter().filter(|r| rate(r) > 0.0).collect();
    for row in largest(growing, top, |a, b| {
        rate(b).total_cmp(&rate(a)).then(a.pid.cmp(&b.pid))
    }) {
        if !chosen.iter().any(|c| std::ptr::eq(*c, row)) {
            chosen.push(row);
        }
    }
    chosen
}

/// The first `n` of `rows` in `order`, sorted: a selection, then a sort of the n selected.
fn largest(
    mut rows: Vec<&ProcessRow>,
    n: usize,
    order: impl Fn(&ProcessRow, &ProcessRow) -> std::cmp::Ordering,
) -> Vec<&ProcessRow> {
    let cmp = |a: &&ProcessRow, b: &&ProcessRow| order(a, b);
    if n == 0 {
        return Vec::new();
    }
    if n < rows.len() {
        rows.select_nth_unstable_by(n - 1, cmp);
        rows.truncate(n);
    }
    rows.sort_unstable_by(cmp);
    rows
}

fn process_series(row: &ProcessRow) -> ProcessSeries {
    let alloc = row.alloc.as_ref();
    ProcessSeries {
        labels: [("pid", row.pid.to_string()), ("comm", row.name.clone())],
        rss: row.rss_kb.map(kib),
        peak_rss: row.peak_rss_kb.map(kib),
        swap: row.swap_kb.map(kib),
        growth: row.growth.as_ref().and_then(growth_per_s),
        sustained: row.growth.as_ref().map(|g| g.sustained),
        net_mapped: alloc.map(|a| a.net_mapped as f64),
        mmap: alloc.map(|a| a.mmap_count),
        munmap: alloc.map(|a| a.munmap_count),
        brk: alloc.map(|a| a.brk_count),
    }
}

fn app_series(app: &AppRow) -> AppSeries {
    let own = app.memory.as_ref().filter(|_| app.memory_covers.is_none());
    AppSeries {
        id: [("app", app.id.clone())],
        info: [
            ("app", app.id.clone()),
            ("name", app.name.clone()),
            ("kind", app.kind.map_or("", |k| k.label()).to_owned()),
            ("unit", app.unit.clone()),
        ],
        memory: kib(app.memory_kb()),
        anon: app.anon_kb().map(kib),
        page_cache: app.file_kb().map(kib),
        swap: kib(app.swap_kb()),
        growth: app.growth.as_ref().and_then(growth_per_s),
        sustained: app.growth.as_ref().map(|g| g.sustained),
        limit: own.and_then(|m| m.limit_kb).map(kib),
        processes: f64::from(app.process_count),
        events: own.map(|m| [m.events.oom, m.events.oom_kill, m.events.max, m.events.high]),
    }
}

/// Writes one metric family if it has at least one sample (an empty family says nothing and
/// some parsers reject it).
fn family<L: EncodeLabelSet, V: Copy>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    kind: MetricType,
    samples: impl IntoIterator<Item = (L, V)>,
    write: impl Fn(V, prometheus_client::encoding::MetricEncoder) -> fmt::Result,
) -> fmt::Result {
    let mut samples = samples.into_iter().peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(name, help, unit.as_ref(), kind)?;
    for (labels, value) in samples {
        write(value, metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauges<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    samples: impl IntoIterator<Item = (L, f64)>,
) -> fmt::Result {
    family(
        encoder,
        name,
        help,
        unit,
        MetricType::Gauge,
        samples,
        |v, m| ConstGauge::new(v).encode(m),
    )
}

/// Counters: `u64` for counts (exact), `f64` for seconds and bytes.
fn counters<L: EncodeLabelSet, V: EncodeCounterValue + Copy>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    samples: impl IntoIterator<Item = (L, V)>,
) -> fmt::Result {
    family(
        encoder,
        name,
        help,
        unit,
        MetricType::Counter,
        samples,
        |v, m| ConstCounter::new(v).encode(m),
    )
}

fn infos<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label_sets: impl IntoIterator<Item = L>,
) -> fmt::Result {
    let mut sets = label_sets.into_iter().peekable();
    if sets.peek().is_none() {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Info)?;
    for labels in sets {
        metric.encode_info(&labels)?;
    }
    Ok(())
}

type NoLabels = [(&'static str, &'static str); 0];
const NO_LABELS: NoLabels = [];

fn one(value: Option<f64>) -> Option<(NoLabels, f64)> {
    value.map(|v| (NO_LABELS, v))
}

fn one_count(value: Option<u64>) -> Option<(NoLabels, u64)> {
    value.map(|v| (NO_LABELS, v))
}

const BYTES: Option<Unit> = Some(Unit::Bytes);
const SECONDS: Option<Unit> = Some(Unit::Seconds);

fn bytes_per_second() -> Option<Unit> {
    Some(Unit::Other("bytes_per_second".to_owned()))
}

impl Collector for Metrics {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        self.encode_machine(&mut e)?;
        self.encode_processes(&mut e)?;
        self.encode_apps(&mut e)?;
        self.encode_exporter(&mut e)
    }
}

impl Metrics {
    fn encode_machine(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        let [total, available, swap_total, swap_free] = self.memory;
        gauges(
            e,
            "memmon_memory_total",
            "Physical memory (MemTotal).",
            BYTES,
            one(Some(total)),
        )?;
        gauges(
            e,
            "memmon_memory_available",
            "Memory available for new work without swapping (MemAvailable).",
            BYTES,
            one(Some(available)),
        )?;
        gauges(
            e,
            "memmon_swap_total",
            "Swap space (SwapTotal).",
            BYTES,
            one(Some(swap_total)),
        )?;
        gauges(
            e,
            "memmon_swap_free",
            "Unused swap space (SwapFree).",
            BYTES,
            one(Some(swap_free)),
        )?;
        let kinds = |values: [Option<f64>; 2]| {
            ["some", "full"]
                .into_iter()
                .zip(values)
                .filter_map(|(kind, v)| v.map(|v| ([("kind", kind)], v)))
        };
        gauges(
            e,
            "memmon_memory_pressure_avg10",
            "Share of the last 10 s in which some (kind=some) or all (kind=full) non-idle tasks \
             stalled on memory (PSI avg10, 0-1).",
            Some(Unit::Other("ratio".to_owned())),
            kinds(self.psi_avg10),
        )?;
        counters(
            e,
            "memmon_memory_pressure_stalled",
            "Time some (kind=some) or all (kind=full) non-idle tasks stalled on memory since \
             boot (PSI total).",
            SECONDS,
            kinds(self.psi_total_s),
        )?;
        if let Some(vm) = self.vm {
            let pages = |n: u64| n as f64 * self.page_size as f64;
            counters(
                e,
                "memmon_swap_in",
                "Memory read back from swap since boot (pswpin pages x page size).",
                BYTES,
                one(Some(pages(vm.pswpin))),
            )?;
            counters(
                e,
                "memmon_swap_out",
                "Memory written out to swap since boot (pswpout pages x page size).",
                BYTES,
                one(Some(pages(vm.pswpout))),
            )?;
            counters(
                e,
                "memmon_page_faults",
                "Page faults since boot, minor and major (pgfault).",
                None,
                one_count(Some(vm.pgfault)),
            )?;
            counters(
                e,
                "memmon_major_page_faults",
                "Page faults that needed I/O since boot (pgmajfault).",
                None,
                one_count(Some(vm.pgmajfault)),
            )?;
        }
        counters(
            e,
            "memmon_oom_kills",
            "Processes the kernel's OOM killer ended since boot, system-wide and in memory-limited \
             cgroups (oom_kill of /proc/vmstat).",
            None,
            one_count(self.oom_kills_total),
        )?;
        infos(
            e,
            "memmon_oom_victim",
            "The last OOM-killed processes (at most 10): pid, comm, and how the victim was named \
             (tracepoint: by the kernel; counter: the largest process gone when oom_kill rose).",
            self.victims.iter().map(victim_labels),
        )?;
        gauges(
            e,
            "memmon_oom_victim_killed_timestamp",
            "When each of the last OOM victims was killed (Unix time).",
            SECONDS,
            self.victims
                .iter()
                .map(|v| (victim_key(v), v.unix_ms as f64 / 1000.0)),
        )?;
        gauges(
            e,
            "memmon_oom_victim_resident_memory",
            "The RSS of each of the last OOM victims when it was last sampled.",
            BYTES,
            self.victims
                .iter()
                .filter_map(|v| v.last_rss_kb.map(|kb| (victim_key(v), kib(kb)))),
        )?;
        gauges(
            e,
            "memmon_processes",
            "Processes the last scan saw.",
            None,
            one(Some(self.process_count as f64)),
        )?;
        gauges(
            e,
            "memmon_ebpf_enabled",
            "1 when the eBPF programs count every process's mmap/munmap/brk (--ebpf), else 0.",
            None,
            one(Some(if self.mode == Mode::Full { 1.0 } else { 0.0 })),
        )?;
        counters(
            e,
            "memmon_ebpf_dropped_events",
            "Allocation events the eBPF programs could not record because a map was full.",
            None,
            one_count(self.bpf_drops),
        )
    }

    fn encode_processes(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        let p = &self.processes;
        let each = |f: fn(&ProcessSeries) -> Option<f64>| {
            p.iter()
                .filter_map(move |s| f(s).map(|v| (s.labels.clone(), v)))
        };
        let count_each = |f: fn(&ProcessSeries) -> Option<u64>| {
            p.iter()
                .filter_map(move |s| f(s).map(|v| (s.labels.clone(), v)))
        };
        gauges(
            e,
            "memmon_process_resident_memory",
            "Resident set size (VmRSS) of the top processes by RSS and by growth.",
            BYTES,
            each(|s| s.rss),
        )?;
        gauges(
            e,
            "memmon_process_peak_resident_memory",
            "The highest RSS the process reached (VmHWM).",
            BYTES,
            each(|s| s.peak_rss),
        )?;
        gauges(
            e,
            "memmon_process_swap",
            "Swapped-out memory of the process (VmSwap).",
            BYTES,
            each(|s| s.swap),
        )?;
        gauges(
            e,
            "memmon_process_resident_memory_growth",
            "RSS growth rate: Theil-Sen slope over 5 minutes (1 minute while younger), 0 when \
             within the noise.",
            bytes_per_second(),
            each(|s| s.growth),
        )?;
        gauges(
            e,
            "memmon_process_growth_sustained",
            "1 when RSS has not fallen back for 2 minutes and rose at least 1 MiB in the last 2.",
            None,
            each(|s| s.sustained.map(|b| f64::from(u8::from(b)))),
        )?;
        gauges(
            e,
            "memmon_process_net_mapped",
            "Bytes mapped minus unmapped by mmap/munmap/brk since tracking began (eBPF).",
            BYTES,
            each(|s| s.net_mapped),
        )?;
        counters(
            e,
            "memmon_process_mmap_calls",
            "Successful mmap calls (eBPF).",
            None,
            count_each(|s| s.mmap),
        )?;
        counters(
            e,
            "memmon_process_munmap_calls",
            "Successful munmap calls (eBPF).",
            None,
            count_each(|s| s.munmap),
        )?;
        counters(
            e,
            "memmon_process_brk_calls",
            "brk calls that moved the program break (eBPF).",
            None,
            count_each(|s| s.brk),
        )
    }

    fn encode_apps(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        let a = &self.apps;
        let each = |f: fn(&AppSeries) -> Option<f64>| {
            a.iter()
                .filter_map(move |s| f(s).map(|v| (s.id.clone(), v)))
        };
        infos(
            e,
            "memmon_app",
            "Each app (processes grouped by systemd unit / cgroup): its name, kind and unit.",
            a.iter().map(|s| s.info.clone()),
        )?;
        gauges(
            e,
            "memmon_app_memory",
            "The app's memory: its cgroup's memory.current (anon + page cache + kernel) where \
             the cgroup is its own, else the sum of its processes' RSS.",
            BYTES,
            each(|s| Some(s.memory)),
        )?;
        gauges(
            e,
            "memmon_app_anon_memory",
            "Anonymous memory charged to the app's cgroup.",
            BYTES,
            each(|s| s.anon),
        )?;
        gauges(
            e,
            "memmon_app_page_cache",
            "Page cache charged to the app's cgroup.",
            BYTES,
            each(|s| s.page_cache),
        )?;
        gauges(
            e,
            "memmon_app_swap",
            "Swap used by the app.",
            BYTES,
            each(|s| Some(s.swap)),
        )?;
        gauges(
            e,
            "memmon_app_memory_growth",
            "Growth rate of the app's memory (Theil-Sen, as for processes).",
            bytes_per_second(),
            each(|s| s.growth),
        )?;
        gauges(
            e,
            "memmon_app_growth_sustained",
            "1 when the app's memory has not fallen back for 2 minutes and rose at least 1 MiB.",
            None,
            each(|s| s.sustained.map(|b| f64::from(u8::from(b)))),
        )?;
        gauges(
            e,
            "memmon_app_memory_limit",
            "The hard memory limit of the app's cgroup (memory.max); absent when unlimited.",
            BYTES,
            each(|s| s.limit),
        )?;
        gauges(
            e,
            "memmon_app_processes",
            "Processes in the app.",
            None,
            each(|s| Some(s.processes)),
        )?;
        let event = |i: usize| {
            a.iter()
                .filter_map(move |s| s.events.map(|ev| (s.id.clone(), ev[i])))
        };
        counters(
            e,
            "memmon_app_oom_events",
            "Times the OOM killer was invoked for the app's cgroup (memory.events oom).",
            None,
            event(0),
        )?;
        counters(
            e,
            "memmon_app_oom_kills",
            "Processes the OOM killer ended in the app's cgroup (memory.events oom_kill).",
            None,
            event(1),
        )?;
        counters(
            e,
            "memmon_app_memory_limit_hits",
            "Times the app's cgroup hit its hard limit (memory.events max).",
            None,
            event(2),
        )?;
        counters(
            e,
            "memmon_app_memory_high_throttles",
            "Times the app's cgroup was throttled above memory.high (memory.events high).",
            None,
            event(3),
        )
    }

    fn encode_exporter(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        infos(
            e,
            "memmon_exporter_build",
            "The exporter's version and collection mode (full: eBPF and /proc; proc-only).",
            [[
                ("version", self.version),
                (
                    "mode",
                    if self.mode == Mode::Full {
                        "full"
                    } else {
                        "proc-only"
                    },
                ),
            ]],
        )?;
        gauges(
            e,
            "memmon_scan_duration",
            "How long the last collection (/proc scan, apps, trends) took.",
            SECONDS,
            one(Some(self.scan_seconds)),
        )?;
        gauges(
            e,
            "memmon_last_scan_timestamp",
            "When the last collection ran (Unix time).",
            SECONDS,
            one(Some(self.taken_at_s)),
        )?;
        counters(
            e,
            "memmon_scans",
            "Collections since the exporter started.",
            None,
            one_count(Some(self.stats.scans)),
        )?;
        counters(
            e,
            "memmon_scan_errors",
            "Collections that failed (the previous one is served meanwhile).",
            None,
            one_count(Some(self.stats.scan_errors)),
        )?;
        counters(
            e,
            "process_cpu",
            "CPU time the exporter used (user + system).",
            SECONDS,
            one(Some(self.stats.cpu_seconds)),
        )?;
        gauges(
            e,
            "process_resident_memory",
            "The exporter's resident memory.",
            BYTES,
            one(Some(self.stats.resident_bytes as f64)),
        )?;
        gauges(
            e,
            "process_virtual_memory",
            "The exporter's virtual memory.",
            BYTES,
            one(Some(self.stats.virtual_bytes as f64)),
        )?;
        gauges(
            e,
            "process_open_fds",
            "The exporter's open file descriptors.",
            None,
            one(Some(self.stats.open_fds as f64)),
        )
    }
}

fn victim_key(v: &OomKill) -> [(&'static str, String); 2] {
    [("pid", v.pid.to_string()), ("comm", v.name.clone())]
}

fn victim_labels(v: &OomKill) -> [(&'static str, String); 3] {
    let [pid, comm] = victim_key(v);
    let source = match v.source {
        OomSource::Tracepoint => "tracepoint",
        OomSource::Counter => "counter",
    };
    [pid, comm, ("source", source.to_owned())]
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
