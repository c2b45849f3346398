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
    diagnostics::OomKill,
    snapshot::{Mode, ProcessRow, Snapshot, SortKey},
};
use prometheus_client::registry::Registry;

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

    /// Both encodings of these metrics, each also gzipped.
    pub fn encode(self) -> Result<Exposition, fmt::Error> {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut openmetrics = String::with_capacity(64 * 1024);
        prometheus_client::encoding::text::encode(&mut openmetrics, &registry)?;
        let mut text = String::with_capacity(64 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
        Ok(Exposition {
            openmetrics: Body::new(openmetrics),
            text: Body::new(text),
        })
    }
}

/// One tick's metrics, encoded once and shared by every scrape until the next tick.
#[derive(Clone, Debug)]
pub struct Exposition {
    pub openmetrics: Body,
    pub text: Body,
}

/// One encoding, plain and gzipped (compressed once per tick, so a gzip scrape costs no more
/// than a plain one).
#[derive(Clone, Debug)]
pub struct Body {
    pub plain: Bytes,
    /// `None` if compressing failed (then the plain body is served).
    pub gzip: Option<Bytes>,
}

impl Body {
    pub fn new(text: String) -> Body {
        use std::io::Write as _;
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(text.len() / 4),
            flate2::Compression::default(),
        );
        let gzip = encoder
            .write_all(text.as_bytes())
            .and_then(|()| encoder.finish())
            .map(Bytes::from)
            .inspect_err(|err| log::warn!("gzip of the exposition failed: {err}"))
            .ok();
        Body {
            plain: Bytes::from(text),
            gzip,
        }
    }
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

mod encode;

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
