//! Per-process memory history: every process the collector has seen, identified by PID and start
//! time, kept as change-only samples in a bounded ring.
//!
//! Bounds (stated, enforced): at most [`MAX_SAMPLES_PER_PROCESS`] samples per process (30 min at
//! 1 s even if every tick changes something; an idle process costs one sample), 16 bytes each;
//! at most [`MAX_SERIES`] processes, live or exited; an exited process is kept
//! [`KEEP_EXITED_MS`] and evicted longest-dead first. Worst case: 4,096 × 1,800 × 16 B ≈ 118 MB
//! if every process changed every tick for 30 minutes; typical desktops store a few MB.
//!
//! It never reads /proc itself: the collector feeds it snapshots.

use std::collections::{HashMap, VecDeque};

use memmon_common::{
    diagnostics::{Spike, SystemSample},
    process_key::ProcessKey,
    snapshot::Snapshot,
};

pub const MAX_SAMPLES_PER_PROCESS: usize = 1_800;
pub const MAX_SERIES: usize = 4_096;
pub const KEEP_EXITED_MS: u64 = 10 * 60 * 1000;
/// Spikes kept per process (newest kept).
pub const MAX_SPIKES_PER_PROCESS: usize = 64;
/// System samples kept (30 min at 1 s; 1,800 × 96 B).
pub const MAX_SYSTEM_SAMPLES: usize = 1_800;
/// OOM victims whose history is kept for as long as the store lives (oldest released first).
pub const MAX_KEPT_VICTIMS: usize = 16;

pub mod apps;

pub use memmon_common::series::{HistorySample, HistorySeries};

/// 16-byte stored sample: time relative to the store's epoch, sizes in KiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Packed {
    /// Milliseconds since `History::epoch_ms` / 8 (an 8 ms grain, 1.1 years of range).
    t: u32,
    rss_kb: u32,
    peak_kb: u32,
    /// Net mapped in KiB; `i32::MIN` = not tracked.
    net_kib: i32,
}

const TIME_GRAIN_MS: u64 = 8;
const NET_ABSENT: i32 = i32::MIN;

struct Series {
    name: String,
    samples: VecDeque<Packed>,
    last_seen_ms: u64,
    exited_ms: Option<u64>,
    spikes: VecDeque<Spike>,
    /// An OOM victim: kept past [`KEEP_EXITED_MS`].
    kept: bool,
}

#[derive(Default)]
pub struct History {
    epoch_ms: u64,
    series: HashMap<ProcessKey, Series>,
    system: VecDeque<SystemSample>,
    kept: VecDeque<ProcessKey>,
    /// Processes not admitted because the store was full of live processes (reported once).
    pub refused: u64,
}

impl History {
    pub fn new() -> History {
        History::default()
    }

    /// Records one tick. `snapshot` must list **all** processes (not a top-N), so that a missing
    /// process means it exited.
    pub fn record(&mut self, snapshot: &Snapshot) {
        let now = snapshot.taken_at_unix_ms;
        if self.epoch_ms == 0 {
            self.epoch_ms = now;
        }
        let t = (now.saturating_sub(self.epoch_ms) / TIME_GRAIN_MS).min(u64::from(u32::MAX)) as u32;
        for row in &snapshot.processes {
            let Some(rss_kb) = row.rss_kb else { continue }; // kernel threads have no memory
            let packed = Packed {
                t,
                rss_kb: clamp_u32(rss_kb),
                peak_kb: clamp_u32(row.peak_rss_kb.unwrap_or(rss_kb)),
                net_kib: row.alloc.map_or(NET_ABSENT, |a| {
                    (a.net_mapped / 1024).clamp(i64::from(i32::MIN + 1), i64::from(i32::MAX)) as i32
                }),
            };
            let key = row.key();
            if !self.series.contains_key(&key) && !self.make_room() {
                self.refused += 1;
                continue;
            }
            let series = self.series.entry(key).or_insert_with(|| Series {
                name: row.name.clone(),
                samples: VecDeque::new(),
                last_seen_ms: now,
                exited_ms: None,
                spikes: VecDeque::new(),
                kept: false,
            });
            if let Some(spike) = row.spike {
                if series.spikes.len() == MAX_SPIKES_PER_PROCESS {
                    series.spikes.pop_front();
                }
                series.spikes.push_back(spike);
            }
            series.last_seen_ms = now;
            let changed = series.samples.back().is_none_or(|last| {
                (last.rss_kb, last.peak_kb, last.net_kib)
                    != (packed.rss_kb, packed.peak_kb, packed.net_kib)
            });
            if changed {
                if series.samples.len() == MAX_SAMPLES_PER_PROCESS {
                    series.samples.pop_front();
                }
                series.samples.push_back(packed);
            }
            if series.name != row.name {
                series.name.clone_from(&row.name);
            }
        }
        // Processes not seen this tick have exited; forget those dead long enough.
        self.series.retain(|_, s| {
            if s.last_seen_ms < now && s.exited_ms.is_none() {
                s.exited_ms = Some(now);
            }
            s.kept
                || s.exited_ms
                    .is_none_or(|exited| now.saturating_sub(exited) < KEEP_EXITED_MS)
        });
        for kill in &snapshot.oom_kills {
            if let Some(key) = kill.key() {
                self.keep(key);
            }
        }
        if self.system.len() == MAX_SYSTEM_SAMPLES {
            self.system.pop_front();
        }
        self.system.push_back(SystemSample {
            unix_ms: now,
            used_kb: snapshot.system.used_kb(),
            swap_used_kb: snapshot.system.swap_used_kb(),
            pressure: snapshot.pressure.unwrap_or_default(),
        });
    }

    /// Keeps a process's history past the usual expiry (an OOM victim), up to
    /// [`MAX_KEPT_VICTIMS`] of them.
    pub fn keep(&mut self, key: ProcessKey) {
        let Some(series) = self.series.get_mut(&key) else {
            return;
        };
        if series.kept {
            return;
        }
        series.kept = true;
        self.kept.push_back(key);
        if self.kept.len() > MAX_KEPT_VICTIMS
            && let Some(old) = self.kept.pop_front()
            && let Some(s) = self.series.get_mut(&old)
        {
            s.kept = false;
        }
    }

    /// System samples newer than `since_unix_ms`, oldest first.
    pub fn system_since(&self, since_unix_ms: u64) -> Vec<SystemSample> {
        let first = self.system.partition_point(|s| s.unix_ms <= since_unix_ms);
        self.system.range(first..).copied().collect()
    }

    /// Makes room for one more series by evicting the longest-dead one; false if all are live.
    fn make_room(&mut self) -> bool {
        if self.series.len() < MAX_SERIES {
            return true;
        }
        let oldest_dead = self
            .series
            .iter()
            .filter(|(_, s)| !s.kept)
            .filter_map(|(k, s)| s.exited_ms.map(|e| (e, *k)))
            .min();
        match oldest_dead {
            Some((_, key)) => {
                self.series.remove(&key);
                true
            }
            None => false,
        }
    }

    /// The history of one process, or None if it was never seen (or is long gone).
    pub fn series(&self, key: ProcessKey) -> Option<HistorySeries> {
        let s = self.series.get(&key)?;
        Some(HistorySeries {
            pid: key.pid,
            start_time: key.start_time,
            name: s.name.clone(),
            last_seen_unix_ms: s.last_seen_ms,
            exited_unix_ms: s.exited_ms,
            samples: s
                .samples
                .iter()
                .map(|p| HistorySample {
                    unix_ms: self.epoch_ms + u64::from(p.t) * TIME_GRAIN_MS,
                    rss_kb: u64::from(p.rss_kb),
                    peak_rss_kb: u64::from(p.peak_kb),
                    net_mapped: (p.net_kib != NET_ABSENT).then_some(i64::from(p.net_kib) * 1024),
                })
                .collect(),
            spikes: s.spikes.iter().copied().collect(),
        })
    }

    /// Processes with a history (live and recently exited).
    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Samples stored across all processes (for memory accounting).
    pub fn sample_count(&self) -> usize {
        self.series.values().map(|s| s.samples.len()).sum()
    }
}

fn clamp_u32(kb: u64) -> u32 {
    kb.min(u64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use memmon_common::snapshot::{AllocStats, Mode, ProcessRow, SystemMemory};

    use super::*;

    fn snap(at: u64, rows: &[(u32, u64, u64)]) -> Snapshot {
        Snapshot {
            taken_at_unix_ms: at,
            scan_duration_us: 0,
            mode: Mode::Full,
            mode_reason: None,
            system: SystemMemory::default(),
            process_count: rows.len() as u32,
            bpf_drops: 0,
            pressure: None,
            oom_kills: Vec::new(),
            processes: rows
                .iter()
                .map(|&(pid, start, rss)| ProcessRow {
                    pid,
                    start_time: start,
                    name: format!("p{pid}"),
                    rss_kb: Some(rss),
                    peak_rss_kb: Some(rss),
                    alloc: Some(AllocStats {
                        net_mapped: rss as i64 * 1024,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn stores_changes_only_and_round_trips_values() {
        let mut h = History::new();
        h.record(&snap(1_000_000, &[(7, 50, 100)]));
        h.record(&snap(1_001_000, &[(7, 50, 100)]));
        h.record(&snap(1_002_000, &[(7, 50, 300)]));
        let s = h.series(ProcessKey::new(7, 50)).expect("series");
        assert_eq!(s.samples.len(), 2, "an unchanged tick adds no sample");
        assert_eq!(s.samples[0].unix_ms, 1_000_000);
        assert_eq!(s.samples[1].unix_ms, 1_002_000);
        assert_eq!(s.samples[1].rss_kb, 300);
        assert_eq!(s.samples[1].net_mapped, Some(300 * 1024));
        assert_eq!(s.last_seen_unix_ms, 1_002_000);
        assert_eq!(s.exited_unix_ms, None);
    }

    #[test]
    fn a_reused_pid_gets_none_of_the_old_samples() {
        let mut h = History::new();
        h.record(&snap(1_000_000, &[(7, 50, 100)]));
        h.record(&snap(1_001_000, &[(7, 90, 999)]));
        let old = h
            .series(ProcessKey::new(7, 50))
            .expect("old kept after exit");
        assert_eq!(old.exited_unix_ms, Some(1_001_000));
        let new = h.series(ProcessKey::new(7, 90)).expect("new");
        assert_eq!(new.samples.len(), 1);
        assert_eq!(new.samples[0].rss_kb, 999);
    }

    #[test]
    fn exited_processes_are_kept_ten_minutes() {
        let mut h = History::new();
        h.record(&snap(1_000_000, &[(7, 50, 100)]));
        h.record(&snap(1_001_000, &[]));
        h.record(&snap(1_001_000 + KEEP_EXITED_MS - 1, &[]));
        assert!(h.series(ProcessKey::new(7, 50)).is_some());
        h.record(&snap(1_001_000 + KEEP_EXITED_MS, &[]));
        assert!(h.series(ProcessKey::new(7, 50)).is_none());
    }

    #[test]
    fn rings_and_store_are_bounded() {
        let mut h = History::new();
        for i in 0..(MAX_SAMPLES_PER_PROCESS as u64 + 10) {
            h.record(&snap(1_000_000 + i * 1000, &[(1, 1, i)]));
        }
        let s = h.series(ProcessKey::new(1, 1)).expect("series");
        assert_eq!(s.samples.len(), MAX_SAMPLES_PER_PROCESS);
        assert_eq!(s.samples[0].rss_kb, 10, "oldest samples dropped first");

        let mut h = History::new();
        let rows: Vec<(u32, u64, u64)> = (0..MAX_SERIES as u32 + 5).map(|p| (p, 1, 10)).collect();
        h.record(&snap(1_000_000, &rows));
        assert_eq!(h.len(), MAX_SERIES);
        assert_eq!(
            h.refused, 5,
            "live processes beyond the bound are refused, not evicted"
        );
        // Once some exit, newcomers evict the longest-dead first.
        h.record(&snap(1_001_000, &rows[10..MAX_SERIES]));
        h.record(&snap(1_002_000, &[(99_999, 1, 1)]));
        assert!(h.series(ProcessKey::new(99_999, 1)).is_some());
    }

    #[test]
    fn spikes_system_samples_and_oom_victims_are_kept() {
        use memmon_common::diagnostics::{OomKill, OomSource, SpikeKind, SystemPressure};
        let mut h = History::new();
        let mut first = snap(1_000_000, &[(7, 50, 100), (8, 60, 100)]);
        first.processes[0].spike = Some(Spike {
            unix_ms: 1_000_000,
            after_unix_ms: 999_000,
            kind: SpikeKind::Rss,
            size_bytes: 500 << 20,
            peak_bytes: 501 << 20,
        });
        first.pressure = Some(SystemPressure {
            some_avg10: Some(2.5),
            ..Default::default()
        });
        h.record(&first);
        let s = h.series(ProcessKey::new(7, 50)).expect("series");
        assert_eq!(s.spikes.len(), 1);
        assert_eq!(s.spikes[0].size_bytes, 500 << 20);
        // PID 7 is OOM-killed: its history outlives the 10-minute expiry; PID 8's does not.
        let mut second = snap(1_001_000, &[]);
        second.oom_kills.push(OomKill {
            unix_ms: 1_001_000,
            pid: 7,
            start_time: Some(50),
            name: "p7".into(),
            last_rss_kb: Some(100),
            rss_at_kill_kb: None,
            source: OomSource::Counter,
        });
        h.record(&second);
        h.record(&snap(1_001_000 + KEEP_EXITED_MS + 1, &[]));
        assert!(
            h.series(ProcessKey::new(7, 50)).is_some(),
            "the victim's history is kept"
        );
        assert!(h.series(ProcessKey::new(8, 60)).is_none());
        let system = h.system_since(0);
        assert_eq!(system.len(), 3);
        assert_eq!(system[0].pressure.some_avg10, Some(2.5));
        assert_eq!(h.system_since(1_000_000).len(), 2, "strictly newer");
    }
}
