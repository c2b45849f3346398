//! The collector: one tick = a /proc scan merged with what the eBPF programs recorded, as a
//! [`Snapshot`] of **all** processes (callers pick their top N with `top_by`).
//!
//! It owns its state and hands out owned snapshots; it never shares a lock with a consumer.

use std::{
    collections::{HashMap, HashSet},
    time::Instant,
};

use memmon_common::{
    ProcRecord,
    process_key::ProcessKey,
    snapshot::{AllocStats, Mode, ProcessRow, Snapshot, SystemMemory, unix_ms_now},
};
use procfs::{Current as _, Meminfo};

pub use crate::oom::MAX_OOM_KILLS;
use crate::{
    apps::Apps,
    oom::{NamedVictim, OomKills},
    pressure::PressureReader,
    proc_scan::{ProcSample, ProcScanner, ScanError},
    tracker::Tracker,
    trends::Trends,
};

/// Stale kernel entries (exits the programs could not see) are swept this often, in ticks.
const GC_EVERY_TICKS: u32 = 30;

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Scan(#[from] ScanError),
    #[error("cannot read /proc/meminfo: {0}")]
    Meminfo(#[source] procfs::ProcError),
}

pub struct Collector {
    scanner: ProcScanner,
    samples: Vec<ProcSample>,
    mode: Mode,
    reason: Option<String>,
    /// Nanoseconds per clock tick, to compare /proc start times with kernel timestamps.
    ns_per_clock_tick: u64,
    /// The eBPF programs (a build without the `ebpf` feature never has one).
    tracker: Option<Tracker>,
    ticks_since_gc: u32,
    /// When each process's counters last changed, to date its last activity.
    activity: HashMap<u32, Activity>,
    tick: u64,
    taken_at_unix_ms: u64,
    trends: Trends,
    pressure: PressureReader,
    oom_kills: OomKills,
    timings: Timings,
    /// The process watched in high-resolution mode, and its event count at the last tick.
    rss_target: Option<(ProcessKey, u64)>,
    /// Processes grouped into apps, with their cgroups' memory.
    apps: Apps,
}

/// What the last tick spent on each part, microseconds (for benchmarks).
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    pub scan_us: u64,
    pub trends_us: u64,
    pub pressure_us: u64,
    /// Grouping processes into apps and reading their cgroups.
    pub apps_us: u64,
}

struct Activity {
    start_time: u64,
    ops: u64,
    changed_unix_ms: u64,
    seen_tick: u64,
}

impl Collector {
    /// The app's embedded mode: /proc only, as the calling user.
    pub fn embedded(reason: impl Into<String>) -> Collector {
        Collector::new(Mode::Embedded, Some(reason.into()))
    }

    /// The helper's collector without eBPF (the exporter's default): /proc only, for `reason`.
    pub fn proc_only(reason: impl Into<String>) -> Collector {
        Collector::new(Mode::ProcOnly, Some(reason.into()))
    }

    /// The same collector grouping apps with `apps` (e.g. the GUI's, which adds the user's own
    /// desktop entries to the system's).
    pub fn with_apps(mut self, apps: Apps) -> Collector {
        self.apps = apps;
        self
    }

    /// The helper's collector: tries to load and attach the eBPF programs; on failure (or in a
    /// build without the `ebpf` feature) it runs in /proc-only mode and
    /// [`Collector::mode_reason`] says why.
    pub fn with_ebpf() -> Collector {
        match Tracker::start(crate::proc_scan::page_size()) {
            Ok(tracker) => {
                let mut c = Collector::new(Mode::Full, None);
                c.tracker = Some(tracker);
                c
            }
            Err(err) => Collector::new(Mode::ProcOnly, Some(format!("{err} — /proc data only"))),
        }
    }

    fn new(mode: Mode, reason: Option<String>) -> Collector {
        Collector {
            scanner: ProcScanner::new(),
            samples: Vec::new(),
            mode,
            reason,
            ns_per_clock_tick: 1_000_000_000 / crate::proc_scan::clock_ticks_per_second(),
            tracker: None,
            ticks_since_gc: 0,
            activity: HashMap::new(),
            tick: 0,
            taken_at_unix_ms: 0,
            trends: Trends::new(),
            pressure: PressureReader::new(),
            oom_kills: OomKills::new(),
            timings: Timings::default(),
            rss_target: None,
            apps: Apps::new(),
        }
    }

    /// Time spent in each part of the last tick.
    pub fn timings(&self) -> Timings {
        self.timings
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn mode_reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// One tick: every process, merged.
    pub fn collect(&mut self) -> Result<Snapshot, CollectError> {
        let started = Instant::now();
        let taken_at_unix_ms = unix_ms_now();
        self.tick += 1;
        self.taken_at_unix_ms = taken_at_unix_ms;
        self.scanner.scan(&mut self.samples)?;
        let system = system_memory()?;
        let samples = std::mem::take(&mut self.samples);
        let mut rows = Vec::with_capacity(samples.len());
        for sample in &samples {
            let alloc = self.alloc_stats(sample);
            rows.push(row_from(sample, alloc));
        }
        self.samples = samples;
        let bpf_drops = self.after_tick();
        self.high_res(&mut rows);
        let scanned = Instant::now();
        self.trends.update(taken_at_unix_ms, &mut rows);
        let trended = Instant::now();
        let scanner = &mut self.scanner;
        let scan_us = scanned.duration_since(started).as_micros() as u64;
        self.apps.update(
            taken_at_unix_ms,
            &mut rows,
            &mut |key, buf| scanner.read_file(key, "cgroup", buf),
            scan_us,
        );
        let grouped = Instant::now();
        let pressure = self.pressure.read();
        let named = self.named_oom_victims();
        self.oom_kills.note(
            taken_at_unix_ms,
            pressure.and_then(|p| p.oom_kill_total),
            named,
            self.trends.vanished(),
            &rows,
        );
        self.timings = Timings {
            scan_us: scanned.duration_since(started).as_micros() as u64,
            trends_us: trended.duration_since(scanned).as_micros() as u64,
            apps_us: grouped.duration_since(trended).as_micros() as u64,
            pressure_us: grouped.elapsed().as_micros() as u64,
        };
        Ok(Snapshot {
            taken_at_unix_ms,
            scan_duration_us: started.elapsed().as_micros() as u64,
            mode: self.mode,
            mode_reason: self.reason.clone(),
            system,
            process_count: rows.len() as u32,
            bpf_drops,
            pressure,
            oom_kills: self.oom_kills.kills().cloned().collect(),
            processes: rows,
        })
    }

    /// `/proc/vmstat`'s swap, fault and OOM-kill counters as of the last tick.
    pub fn vm_counters(&self) -> Option<crate::pressure::VmCounters> {
        self.pressure.counters()
    }

    /// The apps of the last tick (processes grouped by cgroup).
    pub fn apps(&self) -> &Apps {
        &self.apps
    }

    /// Watches every RSS change of one process through `kmem:rss_stat` (`None` stops). Only
    /// one process at a time; Full mode only. The process must still be the one that started
    /// at `start_time`.
    pub fn watch_rss(&mut self, target: Option<ProcessKey>) -> Result<(), String> {
        let tracker = self
            .tracker
            .as_mut()
            .ok_or("high resolution needs eBPF (Full mode)")?;
        let Some(key) = target else {
            self.rss_target = None;
            return tracker.watch_rss(None);
        };
        let gone = || format!("no {key}");
        let process = crate::proc_scan::open_process(key).ok_or_else(gone)?;
        let status = process.status().map_err(|_| gone())?;
        let bytes = |kb: Option<u64>| kb.unwrap_or(0).saturating_mul(1024) as i64;
        let members = [
            bytes(status.rssfile),
            bytes(status.rssanon),
            bytes(status.vmswap),
            bytes(status.rssshmem),
        ];
        tracker.watch_rss(Some((key.pid, members)))?;
        self.rss_target = Some((key, 0));
        Ok(())
    }

    /// The watched process, if any.
    pub fn rss_target(&self) -> Option<ProcessKey> {
        self.rss_target.map(|(key, _)| key)
    }

    /// Fills the watched process's row with what the kernel saw since the last tick; stops
    /// watching a process that exited.
    fn high_res(&mut self, rows: &mut [ProcessRow]) {
        let Some((key, last_events)) = self.rss_target else {
            return;
        };
        let Some(row) = rows.iter_mut().find(|r| r.key() == key) else {
            let _ = self.watch_rss(None);
            return;
        };
        let Some(seen) = self.tracker.as_mut().and_then(|t| t.take_rss_watch()) else {
            return;
        };
        row.high_res = Some(memmon_common::diagnostics::HighRes {
            peak_rss_kb: (seen.max_rss.max(0) as u64) / 1024,
            changes: seen.events.saturating_sub(last_events),
        });
        self.rss_target = Some((key, seen.events));
    }

    /// Victims the kernel named since the last tick; `None` when it does not name them.
    fn named_oom_victims(&mut self) -> Option<Vec<NamedVictim>> {
        let tracker = self.tracker.as_mut()?;
        let victims = tracker.drain_oom_victims();
        tracker.names_oom_victims().then(|| {
            victims
                .iter()
                .map(|(pid, v)| NamedVictim::from_kernel(*pid, v))
                .collect()
        })
    }

    fn alloc_stats(&mut self, sample: &ProcSample) -> Option<AllocStats> {
        let tracker = self.tracker.as_mut()?;
        let record = tracker.record(sample.pid)?;
        if recorded_before_start(
            record.state.first_seen_ns,
            sample.start_time,
            self.ns_per_clock_tick,
        ) {
            // Recorded before this process existed: a previous owner of the PID.
            tracker.forget(sample.pid);
            return None;
        }
        let ops = record.counters.alloc_count() + record.counters.free_count();
        let (tick, now) = (self.tick, self.taken_at_unix_ms);
        let activity = self.activity.entry(sample.pid).or_insert(Activity {
            start_time: sample.start_time,
            ops,
            changed_unix_ms: now,
            seen_tick: tick,
        });
        if activity.start_time != sample.start_time || activity.ops != ops {
            *activity = Activity {
                start_time: sample.start_time,
                ops,
                changed_unix_ms: now,
                seen_tick: tick,
            };
        }
        activity.seen_tick = tick;
        Some(alloc_from(&record, activity.changed_unix_ms))
    }

    fn after_tick(&mut self) -> u64 {
        let Some(tracker) = self.tracker.as_mut() else {
            return 0;
        };
        let tick = self.tick;
        self.activity.retain(|_, a| a.seen_tick == tick);
        self.ticks_since_gc += 1;
        if self.ticks_since_gc >= GC_EVERY_TICKS {
            self.ticks_since_gc = 0;
            let alive: HashSet<u32> = self.samples.iter().map(|s| s.pid).collect();
            tracker.retain(&alive);
        }
        tracker.drops()
    }

    /// Processes the kernel's per-process map holds (None without eBPF).
    pub fn kernel_capacity(&self) -> Option<u32> {
        self.tracker.as_ref().and_then(Tracker::capacity)
    }

    /// What the kernel holds for `pid` (tests check exit cleanup and in-kernel consistency).
    pub fn kernel_record(&self, pid: u32) -> Option<ProcRecord> {
        self.tracker.as_ref().and_then(|t| t.record(pid))
    }
}

/// A kernel record created before the process with that PID started belongs to a previous owner
/// of the PID. Start times are whole clock ticks (rounded down), kernel times nanoseconds, both
/// since boot (CLOCK_BOOTTIME).
pub fn recorded_before_start(first_seen_ns: u64, start_time_ticks: u64, ns_per_tick: u64) -> bool {
    first_seen_ns != 0 && first_seen_ns < start_time_ticks.saturating_mul(ns_per_tick)
}

fn alloc_from(record: &ProcRecord, last_activity_unix_ms: u64) -> AllocStats {
    let c = &record.counters;
    let net_mapped = c.net_mapped();
    AllocStats {
        mmap_count: c.mmap_count,
        munmap_count: c.munmap_count,
        brk_count: c.brk_grow_count + c.brk_shrink_count,
        total_allocated: c.total_allocated(),
        total_freed: c.total_freed(),
        alloc_count: c.alloc_count(),
        free_count: c.free_count(),
        net_mapped,
        // The shared peak can lag under truly concurrent mapping; never below the exact net.
        peak_net_mapped: record.state.peak_net.max(net_mapped),
        last_activity_unix_ms,
    }
}

fn row_from(sample: &ProcSample, alloc: Option<AllocStats>) -> ProcessRow {
    let s = &sample.status;
    ProcessRow {
        pid: sample.pid,
        start_time: sample.start_time,
        name: sample.name.clone(),
        ppid: s.ppid,
        uid: s.uid,
        app: None,
        rss_kb: s.vm_rss,
        virtual_kb: s.vm_size,
        peak_rss_kb: s.vm_hwm,
        rss_anon_kb: s.rss_anon,
        rss_file_kb: s.rss_file,
        rss_shmem_kb: s.rss_shmem,
        swap_kb: s.vm_swap,
        alloc,
        growth: None,
        spike: None,
        high_res: None,
    }
}

fn system_memory() -> Result<SystemMemory, CollectError> {
    let m = Meminfo::current().map_err(CollectError::Meminfo)?;
    Ok(SystemMemory {
        total_kb: m.mem_total / 1024,
        available_kb: m.mem_available.unwrap_or(m.mem_free) / 1024,
        swap_total_kb: m.swap_total / 1024,
        swap_free_kb: m.swap_free / 1024,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_older_than_the_process_is_stale() {
        // Process started at tick 500 (5.00 s at 100 Hz).
        assert!(recorded_before_start(4_999_999_999, 500, 10_000_000));
        assert!(!recorded_before_start(5_000_000_000, 500, 10_000_000));
        assert!(!recorded_before_start(5_004_000_000, 500, 10_000_000));
        assert!(
            !recorded_before_start(0, 500, 10_000_000),
            "0 means unknown, not stale"
        );
    }

    #[test]
    fn embedded_snapshot_has_this_process_and_system_memory() {
        let mut c = Collector::embedded("no helper");
        let snap = c.collect().expect("collect");
        assert_eq!(snap.mode, Mode::Embedded);
        assert_eq!(snap.mode_reason.as_deref(), Some("no helper"));
        assert!(snap.system.total_kb > 0 && snap.system.available_kb <= snap.system.total_kb);
        assert_eq!(snap.process_count as usize, snap.processes.len());
        let me = snap
            .processes
            .iter()
            .find(|r| r.pid == std::process::id())
            .expect("own row");
        assert!(me.rss_kb.unwrap_or(0) > 0);
        assert!(me.alloc.is_none(), "embedded mode has no eBPF data");
    }
}
