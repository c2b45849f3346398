//! Growth rates and spikes for **every** process, updated once per collector tick.
//!
//! Growth: each process's RSS (and net mapped) is averaged into 5-second slots kept for 15
//! minutes (180 slots, 40 B each). When a slot closes, each window (1, 5, 15 min) is reduced to at
//! most 20 points (means of consecutive slots) and its Theil–Sen slope — the median of all
//! pairwise slopes — is the growth rate. So per process the work is O(1) per tick plus, once per
//! 5 s, O(slots + 20²); a process whose window is flat skips the pairwise step. Linear in the
//! number of processes.
//!
//! Spikes: between two samples a process may rise and fall back unseen; VmHWM (the kernel's peak
//! RSS) and the eBPF peak of net mapped bytes still reveal it. A spike is recorded when a peak
//! rose since the previous sample and stands above both neighbouring samples by at least
//! [`SPIKE_MIN_BYTES`]. Peaks only rise, so a transient smaller than an earlier peak is not seen.

use std::collections::{HashMap, VecDeque};

use memmon_common::{
    diagnostics::{Growth, Spike, SpikeKind},
    process_key::ProcessKey,
    snapshot::ProcessRow,
};

/// Width of one averaging slot.
pub const SLOT_MS: u64 = 5_000;
/// The growth windows: 1, 5 and 15 minutes.
pub const WINDOWS_MS: [u64; 3] = [60_000, 300_000, 900_000];
const MAX_SLOTS: usize = (900_000 / SLOT_MS) as usize;
/// Theil–Sen runs on at most this many points per window (190 pairs).
const MAX_POINTS: usize = 20;
const MIN_POINTS: usize = 4;
/// Growth that lasted this long without falling back is "sustained".
pub const SUSTAINED_MS: u64 = 120_000;
/// ... and rose at least this much over the last [`SUSTAINED_MS`].
pub const SUSTAINED_RISE_KB: f64 = 1024.0;
/// A spike must stand this far above both neighbouring samples.
pub const SPIKE_MIN_BYTES: u64 = 4 << 20;

/// A process that was seen last tick and not this one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vanished {
    pub pid: u32,
    pub start_time: u64,
    pub name: String,
    pub last_rss_kb: u64,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    t_ms: f64,
    rss_kb: f64,
    /// Net mapped, KiB; NaN when not tracked.
    net_kb: f64,
}

#[derive(Default)]
struct Accumulator {
    start_ms: u64,
    n: u32,
    t_sum: f64,
    rss_sum: f64,
    net_sum: f64,
    net_n: u32,
}

#[derive(Clone, Copy)]
struct Previous {
    unix_ms: u64,
    rss_kb: u64,
    hwm_kb: u64,
    net: Option<i64>,
    peak_net: Option<i64>,
    /// The exact peak since the previous sample (high-resolution mode only).
    traced_peak_kb: Option<u64>,
}

struct Track {
    name: String,
    slots: VecDeque<Slot>,
    acc: Accumulator,
    /// Time of the first slot of the current run of slots that did not fall back.
    run_start_ms: f64,
    growth: Option<Growth>,
    prev: Previous,
    seen_tick: u64,
}

#[derive(Default)]
pub struct Trends {
    tracks: HashMap<ProcessKey, Track>,
    tick: u64,
    vanished: Vec<Vanished>,
}

impl Trends {
    pub fn new() -> Trends {
        Trends::default()
    }

    /// Feeds one tick of **all** processes and fills each row's `growth` and `spike`.
    pub fn update(&mut self, now_ms: u64, rows: &mut [ProcessRow]) {
        self.tick += 1;
        let tick = self.tick;
        for row in rows.iter_mut() {
            let Some(rss_kb) = row.rss_kb else { continue }; // kernel threads
            let hwm_kb = row.peak_rss_kb.unwrap_or(rss_kb);
            let net = row.alloc.map(|a| a.net_mapped);
            let peak_net = row.alloc.map(|a| a.peak_net_mapped);
            let now = Previous {
                unix_ms: now_ms,
                rss_kb,
                hwm_kb,
                net,
                peak_net,
                traced_peak_kb: row.high_res.map(|h| h.peak_rss_kb),
            };
            let track = match self.tracks.entry(row.key()) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(Track {
                    name: row.name.clone(),
                    slots: VecDeque::new(),
                    // Stagger slot boundaries by PID: processes first seen on the same tick
                    // (all of them, when the collector starts) must not all close a slot on
                    // the same later tick.
                    acc: Accumulator {
                        start_ms: now_ms.saturating_sub(stagger(row.pid)),
                        ..Accumulator::default()
                    },
                    run_start_ms: now_ms as f64,
                    growth: None,
                    prev: now,
                    seen_tick: tick,
                }),
            };
            track.seen_tick = tick;
            row.spike = spike(&track.prev, &now);
            track.prev = now;
            if track.acc.n > 0 && now_ms.saturating_sub(track.acc.start_ms) >= SLOT_MS {
                track.close_slot();
            }
            track.add(now_ms, rss_kb, net);
            row.growth = track.growth;
        }
        self.vanished.clear();
        let vanished = &mut self.vanished;
        self.tracks.retain(|&ProcessKey { pid, start_time }, t| {
            let alive = t.seen_tick == tick;
            if !alive {
                vanished.push(Vanished {
                    pid,
                    start_time,
                    name: std::mem::take(&mut t.name),
                    last_rss_kb: t.prev.rss_kb,
                });
            }
            alive
        });
    }

    /// Processes the last [`Trends::update`] no longer saw.
    pub fn vanished(&self) -> &[Vanished] {
        &self.vanished
    }

    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }
}

/// Growth and spikes of one value that is not a process's RSS (an app's memory), with the
/// same estimator and the same thresholds as processes.
pub struct SeriesTrend {
    track: Track,
}

impl SeriesTrend {
    /// `seed` staggers slot boundaries between series first seen on the same tick.
    pub fn new(now_ms: u64, seed: u32, value_kb: u64, peak_kb: Option<u64>) -> SeriesTrend {
        let prev = Previous {
            unix_ms: now_ms,
            rss_kb: value_kb,
            hwm_kb: peak_kb.unwrap_or(value_kb),
            net: None,
            peak_net: None,
            traced_peak_kb: None,
        };
        SeriesTrend {
            track: Track {
                name: String::new(),
                slots: VecDeque::new(),
                acc: Accumulator {
                    start_ms: now_ms.saturating_sub(stagger(seed)),
                    ..Accumulator::default()
                },
                run_start_ms: now_ms as f64,
                growth: None,
                prev,
                seen_tick: 0,
            },
        }
    }

    /// Feeds one sample: the value and the highest value the kernel saw (`peak_kb`, e.g. a
    /// cgroup's `memory.peak`), which reveals a spike between samples. Returns the growth so far
    /// and a spike this sample revealed.
    pub fn update(
        &mut self,
        now_ms: u64,
        value_kb: u64,
        peak_kb: Option<u64>,
    ) -> (Option<Growth>, Option<Spike>) {
        let track = &mut self.track;
        let now = Previous {
            unix_ms: now_ms,
            rss_kb: value_kb,
            hwm_kb: peak_kb.unwrap_or(value_kb),
            net: None,
            peak_net: None,
            traced_peak_kb: None,
        };
        let spike = if peak_kb.is_some() {
            spike(&track.prev, &now)
        } else {
            None
        };
        track.prev = now;
        if track.acc.n > 0 && now_ms.saturating_sub(track.acc.start_ms) >= SLOT_MS {
            track.close_slot();
        }
        track.add(now_ms, value_kb, None);
        (track.growth, spike)
    }
}

impl Track {
    fn add(&mut self, now_ms: u64, rss_kb: u64, net: Option<i64>) {
        let acc = &mut self.acc;
        if acc.n == 0 && acc.start_ms == 0 {
            acc.start_ms = now_ms;
        }
        acc.n += 1;
        acc.t_sum += now_ms as f64;
        acc.rss_sum += rss_kb as f64;
        if let Some(net) = net {
            acc.net_sum += net as f64 / 1024.0;
            acc.net_n += 1;
        }
    }

    fn close_slot(&mut self) {
        let acc = std::mem::take(&mut self.acc);
        let n = f64::from(acc.n);
        let slot = Slot {
            t_ms: acc.t_sum / n,
            rss_kb: acc.rss_sum / n,
            net_kb: if acc.net_n > 0 {
                acc.net_sum / f64::from(acc.net_n)
            } else {
                f64::NAN
            },
        };
        if let Some(last) = self.slots.back() {
            let tolerance = (last.rss_kb * 0.005).max(64.0);
            if slot.rss_kb < last.rss_kb - tolerance {
                self.run_start_ms = slot.t_ms;
            }
        } else {
            self.run_start_ms = slot.t_ms;
        }
        if self.slots.len() == MAX_SLOTS {
            self.slots.pop_front();
        }
        self.slots.push_back(slot);
        self.growth = Some(self.estimate());
    }

    fn estimate(&self) -> Growth {
        let Some(newest) = self.slots.back() else {
            return Growth::default();
        };
        let mut slopes = [None; 3];
        for (slope, window) in slopes.iter_mut().zip(WINDOWS_MS) {
            *slope = window_slope(&self.slots, newest.t_ms, window as f64, |s| s.rss_kb);
        }
        let rates = slopes.map(|s| s.map(|s| s.rate));
        // The headline's window (5 min, else 1 min): is its trend distinguishable from zero?
        let rss_noise = slopes[1]
            .or(slopes[0])
            .is_some_and(|s| s.low <= 0.0 && s.high >= 0.0);
        let net_5m = if newest.net_kb.is_nan() {
            None
        } else {
            window_slope(&self.slots, newest.t_ms, WINDOWS_MS[1] as f64, |s| s.net_kb)
                .map(|s| s.rate)
        };
        let cutoff = newest.t_ms - SUSTAINED_MS as f64;
        let sustained = newest.t_ms - self.run_start_ms
            >= SUSTAINED_MS as f64 - SLOT_MS as f64 / 2.0
            && self
                .slots
                .iter()
                .find(|s| s.t_ms >= cutoff - SLOT_MS as f64 / 2.0)
                .is_some_and(|then| newest.rss_kb - then.rss_kb >= SUSTAINED_RISE_KB);
        Growth {
            rss_1m: rates[0],
            rss_5m: rates[1],
            rss_15m: rates[2],
            net_5m,
            sustained,
            rss_noise,
        }
    }
}

/// A PID-dependent share of a slot (Knuth's multiplicative hash), to spread slot closings.
fn stagger(pid: u32) -> u64 {
    u64::from(pid.wrapping_mul(2_654_435_761)) % SLOT_MS
}

/// A Theil–Sen slope with its 95 % confidence interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Slope {
    pub rate: f64,
    pub low: f64,
    pub high: f64,
}

impl Slope {
    fn scaled(self, k: f64) -> Slope {
        Slope {
            rate: self.rate * k,
            low: self.low * k,
            high: self.high * k,
        }
    }
}

/// The Theil–Sen slope, in bytes per minute, of the slots in the last `window_ms`, or `None` if
/// they span less than half the window (then a shorter window speaks for it).
fn window_slope(
    slots: &VecDeque<Slot>,
    newest_ms: f64,
    window_ms: f64,
    value: impl Fn(&Slot) -> f64,
) -> Option<Slope> {
    let from = newest_ms - window_ms;
    let count = slots.iter().rev().take_while(|s| s.t_ms > from).count();
    let first = slots.len() - count;
    let oldest = slots.get(first)?;
    if count < MIN_POINTS || newest_ms - oldest.t_ms < window_ms / 2.0 - SLOT_MS as f64 {
        return None;
    }
    // Reduce to at most MAX_POINTS means of consecutive slots.
    let group = count.div_ceil(MAX_POINTS);
    let mut points: Vec<(f64, f64)> = Vec::with_capacity(MAX_POINTS);
    let (mut flat, mut first_value) = (true, None);
    for chunk in slots.range(first..).collect::<Vec<_>>().chunks(group) {
        let n = chunk.len() as f64;
        let t = chunk.iter().map(|s| s.t_ms).sum::<f64>() / n;
        let v = chunk.iter().map(|s| value(s)).sum::<f64>() / n;
        if v.is_nan() {
            return None;
        }
        flat &= *first_value.get_or_insert(v) == v;
        points.push((t, v));
    }
    if flat {
        return Some(Slope {
            rate: 0.0,
            low: 0.0,
            high: 0.0,
        });
    }
    theil_sen_ci(&points).map(|kb_per_ms| kb_per_ms.scaled(1024.0 * 60_000.0))
}

/// The median of the slopes between every pair of points (with distinct times).
pub fn theil_sen(points: &[(f64, f64)]) -> Option<f64> {
    theil_sen_ci(points).map(|s| s.rate)
}

/// The Theil–Sen slope with Sen's (1968) distribution-free 95 % confidence interval: of the N
/// pairwise slopes in order, those at ranks (N − C)/2 and (N + C)/2, where
/// C = 1.96 · √(n(n−1)(2n+5)/18) for n points. At most 20 points (190 slopes): a full sort is
/// cheap.
pub fn theil_sen_ci(points: &[(f64, f64)]) -> Option<Slope> {
    let mut slopes = Vec::with_capacity(points.len() * points.len() / 2);
    for (i, &(t0, v0)) in points.iter().enumerate() {
        for &(t1, v1) in &points[i + 1..] {
            if t1 != t0 {
                slopes.push((v1 - v0) / (t1 - t0));
            }
        }
    }
    if slopes.is_empty() {
        return None;
    }
    slopes.sort_unstable_by(f64::total_cmp);
    let count = slopes.len();
    let mid = count / 2;
    let rate = if count % 2 == 1 {
        slopes[mid]
    } else {
        (slopes[mid - 1] + slopes[mid]) / 2.0
    };
    let n = points.len() as f64;
    let c = 1.96 * (n * (n - 1.0) * (2.0 * n + 5.0) / 18.0).sqrt();
    let low_rank = ((count as f64 - c) / 2.0).floor().max(0.0) as usize;
    let high_rank = ((count as f64 + c) / 2.0).ceil() as usize;
    Some(Slope {
        rate,
        low: slopes[low_rank.min(count - 1)],
        high: slopes[high_rank.min(count - 1)],
    })
}

/// A peak that rose since `prev` and stands above both neighbouring samples.
fn spike(prev: &Previous, now: &Previous) -> Option<Spike> {
    let rss = (now.hwm_kb > prev.hwm_kb).then(|| {
        (
            now.hwm_kb * 1024,
            prev.rss_kb.max(now.rss_kb) * 1024,
            SpikeKind::Rss,
        )
    });
    let traced = now.traced_peak_kb.map(|peak| {
        (
            peak * 1024,
            prev.rss_kb.max(now.rss_kb) * 1024,
            SpikeKind::RssTraced,
        )
    });
    let net = match (prev.peak_net, now.peak_net, prev.net, now.net) {
        (Some(p0), Some(p1), Some(n0), Some(n1)) if p1 > p0 => Some((
            p1.max(0) as u64,
            n0.max(n1).max(0) as u64,
            SpikeKind::NetMapped,
        )),
        _ => None,
    };
    [traced, rss, net]
        .into_iter()
        .flatten()
        .filter(|&(peak, neighbour, _)| peak >= neighbour + SPIKE_MIN_BYTES)
        .max_by_key(|&(peak, neighbour, _)| peak - neighbour)
        .map(|(peak, neighbour, kind)| Spike {
            unix_ms: now.unix_ms,
            after_unix_ms: prev.unix_ms,
            kind,
            size_bytes: peak - neighbour,
            peak_bytes: peak,
        })
}

#[cfg(test)]
mod tests;
