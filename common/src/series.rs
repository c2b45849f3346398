//! Per-process history as clients receive it (over D-Bus as JSON, or from the embedded store).

use serde::{Deserialize, Serialize};

use crate::diagnostics::Spike;

/// One point of a process's history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistorySample {
    pub unix_ms: u64,
    pub rss_kb: u64,
    pub peak_rss_kb: u64,
    /// Net mapped bytes (eBPF), absent in /proc-only and embedded modes.
    pub net_mapped: Option<i64>,
}

/// A process's history. Values hold between samples (change-only storage): the series is flat
/// from each sample until the next, and until `last_seen_unix_ms`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistorySeries {
    pub pid: u32,
    pub start_time: u64,
    pub name: String,
    pub last_seen_unix_ms: u64,
    /// Set once the process has exited (the first tick that did not see it).
    pub exited_unix_ms: Option<u64>,
    pub samples: Vec<HistorySample>,
    /// Spikes seen between samples, oldest first (bounded).
    #[serde(default)]
    pub spikes: Vec<Spike>,
}
