//! Per-app memory history, kept like process history: change-only samples in bounded rings.
//!
//! Bounds (stated, enforced): at most [`MAX_SAMPLES_PER_APP`] samples per app (30 min at 1 s
//! even if every tick changes), 40 bytes each; at most [`MAX_APPS`] apps, live or gone; an app
//! none of whose processes is left is kept [`KEEP_GONE_MS`] and evicted longest-gone first; at
//! most [`MAX_EVENTS_PER_APP`] limit/OOM events and as many spikes per app. Worst case:
//! 512 × 1,800 × 40 B ≈ 37 MB; a desktop with 50 apps that all change every tick, 3.6 MB.

use std::collections::{HashMap, VecDeque};

use memmon_common::{
    apps::{AppEvent, AppHistorySeries, AppRow, AppSample},
    diagnostics::Spike,
};

pub const MAX_SAMPLES_PER_APP: usize = 1_800;
pub const MAX_APPS: usize = 512;
pub const KEEP_GONE_MS: u64 = 10 * 60 * 1000;
pub const MAX_EVENTS_PER_APP: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq)]
struct Packed {
    /// Milliseconds since the store's epoch / 8.
    t: u32,
    memory_kb: u32,
    /// `u32::MAX`: unknown.
    anon_kb: u32,
    file_kb: u32,
    swap_kb: u32,
    rss_sum_kb: u32,
    processes: u32,
}

const GRAIN_MS: u64 = 8;
const ABSENT: u32 = u32::MAX;

struct Series {
    name: String,
    samples: VecDeque<Packed>,
    last_seen_ms: u64,
    gone_ms: Option<u64>,
    events: VecDeque<AppEvent>,
    spikes: VecDeque<Spike>,
}

#[derive(Default)]
pub struct AppHistory {
    epoch_ms: u64,
    series: HashMap<String, Series>,
    /// Apps not admitted because the store was full of live ones.
    pub refused: u64,
}

fn clamp(kb: u64) -> u32 {
    kb.min(u64::from(ABSENT - 1)) as u32
}

fn push_bounded<T>(ring: &mut VecDeque<T>, value: T, max: usize) {
    if ring.len() == max {
        ring.pop_front();
    }
    ring.push_back(value);
}

impl AppHistory {
    pub fn new() -> AppHistory {
        AppHistory::default()
    }

    /// Records one tick of **all** apps (an app missing from `apps` is gone) and the limit and
    /// OOM events that tick saw.
    pub fn record(&mut self, now: u64, apps: &[AppRow], events: &[(String, AppEvent)]) {
        if self.epoch_ms == 0 {
            self.epoch_ms = now;
        }
        let t = (now.saturating_sub(self.epoch_ms) / GRAIN_MS).min(u64::from(u32::MAX)) as u32;
        for app in apps {
            if !self.series.contains_key(&app.id) && !self.make_room() {
                self.refused += 1;
                continue;
            }
            let series = self.series.entry(app.id.clone()).or_insert_with(|| Series {
                name: app.name.clone(),
                samples: VecDeque::new(),
                last_seen_ms: now,
                gone_ms: None,
                events: VecDeque::new(),
                spikes: VecDeque::new(),
            });
            series.last_seen_ms = now;
            series.gone_ms = None;
            if series.name != app.name {
                series.name.clone_from(&app.name);
            }
            if let Some(spike) = app.spike {
                push_bounded(&mut series.spikes, spike, MAX_EVENTS_PER_APP);
            }
            let packed = Packed {
                t,
                memory_kb: clamp(app.memory_kb()),
                anon_kb: app.anon_kb().map_or(ABSENT, clamp),
                file_kb: app.file_kb().map_or(ABSENT, clamp),
                swap_kb: clamp(app.swap_kb()),
                rss_sum_kb: clamp(app.rss_sum_kb),
                processes: app.process_count,
            };
            let changed = series
                .samples
                .back()
                .is_none_or(|last| Packed { t, ..*last } != packed);
            if changed {
                push_bounded(&mut series.samples, packed, MAX_SAMPLES_PER_APP);
            }
        }
        for (id, event) in events {
            if let Some(series) = self.series.get_mut(id) {
                push_bounded(&mut series.events, *event, MAX_EVENTS_PER_APP);
            }
        }
        self.series.retain(|_, s| {
            if s.last_seen_ms < now && s.gone_ms.is_none() {
                s.gone_ms = Some(now);
            }
            s.gone_ms
                .is_none_or(|gone| now.saturating_sub(gone) < KEEP_GONE_MS)
        });
    }

    fn make_room(&mut self) -> bool {
        if self.series.len() < MAX_APPS {
            return true;
        }
        let oldest_gone = self
            .series
            .iter()
            .filter_map(|(k, s)| s.gone_ms.map(|g| (g, k.clone())))
            .min();
        match oldest_gone {
            Some((_, key)) => {
                self.series.remove(&key);
                true
            }
            None => false,
        }
    }

    /// The history of one app, or `None` if it was never seen (or is long gone).
    pub fn series(&self, id: &str) -> Option<AppHistorySeries> {
        let s = self.series.get(id)?;
        let known = |v: u32| (v != ABSENT).then_some(u64::from(v));
        Some(AppHistorySeries {
            id: id.to_owned(),
            name: s.name.clone(),
            last_seen_unix_ms: s.last_seen_ms,
            gone_unix_ms: s.gone_ms,
            samples: s
                .samples
                .iter()
                .map(|p| AppSample {
                    unix_ms: self.epoch_ms + u64::from(p.t) * GRAIN_MS,
                    memory_kb: u64::from(p.memory_kb),
                    anon_kb: known(p.anon_kb),
                    file_kb: known(p.file_kb),
                    swap_kb: u64::from(p.swap_kb),
                    rss_sum_kb: u64::from(p.rss_sum_kb),
                    process_count: p.processes,
                })
                .collect(),
            events: s.events.iter().copied().collect(),
            spikes: s.spikes.iter().copied().collect(),
        })
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use memmon_common::apps::{AppEventKind, CgroupMemory};

    use super::*;

    fn app(id: &str, kb: u64) -> AppRow {
        AppRow {
            id: id.into(),
            name: id.into(),
            process_count: 2,
            rss_sum_kb: kb / 2,
            memory: Some(CgroupMemory {
                current_kb: kb,
                file_kb: Some(kb / 4),
                ..CgroupMemory::default()
            }),
            ..AppRow::default()
        }
    }

    #[test]
    fn samples_are_change_only_and_events_are_kept_as_markers() {
        let mut h = AppHistory::new();
        let oom = AppEvent {
            unix_ms: 2_000,
            kind: AppEventKind::OomKill,
            count: 1,
        };
        h.record(1_000, &[app("a", 100)], &[]);
        h.record(2_000, &[app("a", 100)], &[("a".into(), oom)]);
        h.record(3_000, &[app("a", 300)], &[]);
        let s = h.series("a").expect("series");
        let points: Vec<(u64, u64, Option<u64>)> = s
            .samples
            .iter()
            .map(|p| (p.unix_ms, p.memory_kb, p.file_kb))
            .collect();
        assert_eq!(points, [(1_000, 100, Some(25)), (3_000, 300, Some(75))]);
        assert_eq!(s.events, [oom]);
        assert_eq!(s.gone_unix_ms, None);
    }

    #[test]
    fn gone_apps_are_kept_ten_minutes_and_the_store_is_bounded() {
        let mut h = AppHistory::new();
        h.record(1_000, &[app("gone", 1)], &[]);
        h.record(2_000, &[], &[]);
        assert_eq!(h.series("gone").and_then(|s| s.gone_unix_ms), Some(2_000));
        h.record(2_000 + KEEP_GONE_MS, &[], &[]);
        assert!(h.series("gone").is_none());
        let many: Vec<AppRow> = (0..MAX_APPS + 5)
            .map(|i| app(&format!("a{i}"), 1))
            .collect();
        h.record(3_000 + KEEP_GONE_MS, &many, &[]);
        assert_eq!(h.len(), MAX_APPS);
        assert_eq!(h.refused, 5);
    }
}
