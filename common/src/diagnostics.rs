//! Diagnostics derived from the history rather than read from one scan: growth rates, spikes,
//! system memory pressure, OOM kills and on-demand proportional set sizes.

use serde::{Deserialize, Serialize};

/// How fast a process's memory grows, estimated robustly (Theil–Sen: the median of pairwise
/// slopes, so a few outliers or an oscillation do not move it) from its recent history.
/// Rates are in bytes per minute; `None` while a window holds too little data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Growth {
    pub rss_1m: Option<f64>,
    pub rss_5m: Option<f64>,
    pub rss_15m: Option<f64>,
    /// Net mapped bytes (eBPF) over 5 minutes; `None` without eBPF data.
    pub net_5m: Option<f64>,
    /// RSS has grown without falling back for at least 2 minutes, by at least 1 MiB in the last 2.
    pub sustained: bool,
    /// The headline rate is not distinguishable from zero: the 95 % confidence interval of its
    /// Theil–Sen slope (Sen's, from the pairwise slopes) includes 0 — an oscillating or jumpy
    /// process, not a trend.
    #[serde(default)]
    pub rss_noise: bool,
}

impl Growth {
    /// The rate of the longest window that has data, so a young process is judged from what is
    /// known and an old one from the steadier 5-minute view.
    pub fn headline(&self) -> Option<f64> {
        self.rss_5m.or(self.rss_1m)
    }

    /// What the grid shows and sorts by: the headline rate, or 0 when it is within the noise
    /// (shown as "≈ 0"), so the column ranks trends, not oscillations.
    pub fn shown(&self) -> Option<f64> {
        self.headline()
            .map(|rate| if self.rss_noise { 0.0 } else { rate })
    }
}

/// High-resolution view of the one watched process between two samples (`kmem:rss_stat`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HighRes {
    /// The highest RSS (file + anon + shmem) since the previous sample, KiB.
    pub peak_rss_kb: u64,
    /// RSS counter changes seen since the previous sample.
    pub changes: u64,
}

/// Measured cost of high-resolution mode (`kmem:rss_stat` attached): nanoseconds added to every
/// RSS counter change (≈ every page fault) of every process on the system, and to those of the
/// watched process. From `scripts/bench-rss-stat.sh` on the reference VM (BENCHMARKS.md).
pub const RSS_STAT_NS_PER_EVENT_OTHERS: f64 = 457.0;
pub const RSS_STAT_NS_PER_EVENT_WATCHED: f64 = 539.0;

/// What rose and fell back between two samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SpikeKind {
    /// VmHWM (peak RSS) rose above the RSS of both neighbouring samples.
    Rss,
    /// The eBPF peak of net mapped bytes rose above both neighbouring samples' net mapped.
    NetMapped,
    /// High-resolution mode saw every RSS change: the exact peak between the samples (seen even
    /// below an earlier peak).
    RssTraced,
}

/// A transient rise in memory between two collector samples, seen only through a peak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spike {
    /// The sample that revealed it; the spike happened after `after_unix_ms` and before this.
    pub unix_ms: u64,
    pub after_unix_ms: u64,
    pub kind: SpikeKind,
    /// How far the peak rose above the higher of the two neighbouring samples, in bytes.
    pub size_bytes: u64,
    /// The peak itself, in bytes (VmHWM, or peak net mapped).
    pub peak_bytes: u64,
}

/// System memory pressure from `/proc/pressure/memory` and `/proc/vmstat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SystemPressure {
    /// Share of time (%) in the last 10 s in which some / all tasks stalled on memory; `None`
    /// when the kernel has no PSI.
    pub some_avg10: Option<f64>,
    pub full_avg10: Option<f64>,
    /// Total stall time, microseconds.
    pub some_total_us: Option<u64>,
    pub full_total_us: Option<u64>,
    /// Rates since the previous sample (pages or events per second; 0 on the first sample).
    pub swap_in_per_s: f64,
    pub swap_out_per_s: f64,
    pub faults_per_s: f64,
    pub major_faults_per_s: f64,
    /// The kernel's `oom_kill` counter (since boot).
    pub oom_kill_total: Option<u64>,
}

/// One point of the system's history (same time axis as process histories).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SystemSample {
    pub unix_ms: u64,
    pub used_kb: u64,
    pub swap_used_kb: u64,
    pub pressure: SystemPressure,
}

/// How an OOM kill was learned of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OomSource {
    /// The `oom:mark_victim` tracepoint named the victim.
    Tracepoint,
    /// The `oom_kill` counter rose and this process vanished in the same tick (the largest
    /// such process is named; it is the likely victim, not a certain one).
    Counter,
}

/// A process the kernel's OOM killer ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OomKill {
    pub unix_ms: u64,
    pub pid: u32,
    /// With the PID, the key of the victim's history (if the collector had seen it).
    pub start_time: Option<u64>,
    pub name: String,
    /// The RSS of its last sample before it died.
    pub last_rss_kb: Option<u64>,
    /// Anonymous + file + shmem RSS when the kernel chose it (tracepoint only).
    pub rss_at_kill_kb: Option<u64>,
    pub source: OomSource,
}

/// Proportional and unique set sizes from `/proc/<pid>/smaps_rollup`, read on demand.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryDetail {
    pub pid: u32,
    pub start_time: u64,
    /// When it was read (ms since the Unix epoch); repeated requests within 5 s get this copy.
    pub measured_unix_ms: u64,
    pub rss_kb: u64,
    /// Proportional set size: private pages plus a fair share of shared ones.
    pub pss_kb: u64,
    pub pss_anon_kb: u64,
    pub pss_file_kb: u64,
    pub pss_shmem_kb: u64,
    /// Unique set size: pages only this process maps (private clean + private dirty).
    pub uss_kb: u64,
    pub swap_kb: u64,
    pub swap_pss_kb: u64,
}
