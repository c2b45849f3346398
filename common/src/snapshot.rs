//! The snapshot model: what one collector tick knows about the system and its processes, and how
//! to pick the top N rows by any column. Shared by the helper, the CLI, D-Bus and the GUI.
//!
//! Every per-process datum that can fail to be read is an `Option`: a failed read degrades one
//! cell, never the snapshot.

use std::{cmp::Ordering, fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{
    column::{self, Column, Value},
    diagnostics::{Growth, HighRes, OomKill, Spike, SystemPressure},
};

/// Where the data comes from; always shown to the user together with the reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The helper with eBPF attached: /proc data plus allocation tracking.
    Full,
    /// /proc data only; eBPF could not be used (the reason says why).
    ProcOnly,
    /// The app reads /proc itself, without the helper.
    Embedded,
}

/// Milliseconds since the Unix epoch now (0 if the clock is before it): the time base of every
/// `*_unix_ms` field.
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::Full => "Full",
            Mode::ProcOnly => "/proc only",
            Mode::Embedded => "Embedded",
        }
    }
}

/// System-wide memory from /proc/meminfo, in KiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemMemory {
    pub total_kb: u64,
    pub available_kb: u64,
    pub swap_total_kb: u64,
    pub swap_free_kb: u64,
}

impl SystemMemory {
    pub fn used_kb(&self) -> u64 {
        self.total_kb.saturating_sub(self.available_kb)
    }
    pub fn swap_used_kb(&self) -> u64 {
        self.swap_total_kb.saturating_sub(self.swap_free_kb)
    }
}

/// Allocation activity tracked by eBPF since tracking began (or since the process started, if
/// later). Byte counts are page-rounded for mmap/munmap and exact for brk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocStats {
    pub mmap_count: u64,
    pub munmap_count: u64,
    /// brk calls that moved the break (up or down).
    pub brk_count: u64,
    pub total_allocated: u64,
    pub total_freed: u64,
    pub alloc_count: u64,
    pub free_count: u64,
    /// Allocated minus freed: "net mapped", never RSS. Negative when the process unmapped memory
    /// it had mapped before tracking began.
    pub net_mapped: i64,
    /// The highest `net_mapped` reached.
    pub peak_net_mapped: i64,
    /// Wall-clock time (ms since the Unix epoch) of the collector tick that first saw the
    /// latest change in these counters: the last allocation activity, to one tick.
    pub last_activity_unix_ms: u64,
}

/// One process (thread group), identified by PID *and* start time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessRow {
    pub pid: u32,
    /// Start time in clock ticks after boot (`/proc/<pid>/stat` field 22); with the PID it
    /// identifies a process uniquely even when PIDs are reused.
    pub start_time: u64,
    pub name: String,
    /// The parent's PID (`PPid:` of `status`; 0 for the namespace's init and kernel roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppid: Option<u32>,
    /// The real user ID that owns the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// The id of the app ([`crate::apps::AppRow::id`]) the process was grouped into (shared by
    /// the app's rows: one allocation per app, not per process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<std::sync::Arc<str>>,
    pub rss_kb: Option<u64>,
    pub virtual_kb: Option<u64>,
    /// VmHWM: the highest RSS the process reached.
    pub peak_rss_kb: Option<u64>,
    pub rss_anon_kb: Option<u64>,
    pub rss_file_kb: Option<u64>,
    pub rss_shmem_kb: Option<u64>,
    pub swap_kb: Option<u64>,
    /// None when eBPF is not active or has seen no call from this process.
    pub alloc: Option<AllocStats>,
    /// Growth rates from the process's history; `None` until there is enough of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub growth: Option<Growth>,
    /// A spike revealed by this sample (between the previous sample and this one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spike: Option<Spike>,
    /// Set for the one process watched in high-resolution mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_res: Option<HighRes>,
}

/// One collector tick.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Wall-clock time of the scan, milliseconds since the Unix epoch.
    pub taken_at_unix_ms: u64,
    /// How long the scan took, microseconds.
    pub scan_duration_us: u64,
    pub mode: Mode,
    /// Why the mode is not Full (or a note about Full mode); shown once, clearly.
    pub mode_reason: Option<String>,
    pub system: SystemMemory,
    /// How many processes the scan saw (the rows may be a top-N subset).
    pub process_count: u32,
    /// Events the kernel programs could not record because a map was full (0 unless Full).
    pub bpf_drops: u64,
    /// Memory pressure, swap and fault rates; `None` if /proc/vmstat could not be read.
    #[serde(default)]
    pub pressure: Option<SystemPressure>,
    /// OOM kills seen since the collector started (newest last, bounded).
    #[serde(default)]
    pub oom_kills: Vec<OomKill>,
    pub processes: Vec<ProcessRow>,
}

/// A column users can sort by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SortKey {
    Pid,
    Name,
    Rss,
    Virt,
    Peak,
    Anon,
    File,
    Shmem,
    Swap,
    Mmap,
    Munmap,
    Brk,
    Net,
    PeakNet,
    Allocated,
    Freed,
    /// RSS growth rate ([`Growth::headline`]).
    Growth,
}

impl SortKey {
    /// Every sort key, in the column table's order ([`Column::ALL`]).
    pub const ALL: [SortKey; column::SORTABLE] = column::SORT_KEYS;

    /// The column this key sorts by.
    pub const fn column(self) -> Column {
        column::BY_SORT_KEY[self as usize]
    }

    /// The name used on the command line and over D-Bus ([`Column::cli_name`]).
    pub const fn as_str(self) -> &'static str {
        column::SORT_NAMES[self as usize]
    }

    /// Orders two rows by this column alone (ascending).
    pub fn compare(self, a: &ProcessRow, b: &ProcessRow) -> Ordering {
        let column = self.column();
        match (column.value(a), column.value(b)) {
            (Some(Value::Text(a)), Some(Value::Text(b))) => a.cmp(b),
            (a, b) => a
                .and_then(Value::sort_number)
                .cmp(&b.and_then(Value::sort_number)),
        }
    }

    /// Orders rows for display: by this column in the given direction, ties by PID ascending.
    pub fn order(self, descending: bool, a: &ProcessRow, b: &ProcessRow) -> Ordering {
        let by_key = self.compare(a, b);
        let by_key = if descending { by_key.reverse() } else { by_key };
        by_key.then(a.pid.cmp(&b.pid))
    }
}

impl fmt::Display for SortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown sort column name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSortKey(pub String);

impl fmt::Display for UnknownSortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown sort key {:?}; expected one of: ", self.0)?;
        for (i, key) in SortKey::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(key.as_str())?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownSortKey {}

impl FromStr for SortKey {
    type Err = UnknownSortKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // No key is longer than this: a longer (maybe megabytes long) string is not copied.
        const LONGEST: usize = 16;
        let quoted = || UnknownSortKey(s.chars().take(LONGEST * 2).collect());
        if s.len() > LONGEST * 4 {
            return Err(quoted());
        }
        let lower = s.trim().to_ascii_lowercase();
        SortKey::ALL
            .into_iter()
            .find(|k| k.as_str() == lower)
            .ok_or_else(quoted)
    }
}

/// The top `limit` rows by `key` across **all** of `rows` (ties by PID ascending), in display
/// order. Runs in O(n + k log k): a selection, then a sort of the k selected rows.
pub fn top_by(
    rows: &[ProcessRow],
    key: SortKey,
    descending: bool,
    limit: usize,
) -> Vec<ProcessRow> {
    let mut order: Vec<&ProcessRow> = rows.iter().collect();
    let limit = limit.min(order.len());
    if limit == 0 {
        return Vec::new();
    }
    let cmp = |a: &&ProcessRow, b: &&ProcessRow| key.order(descending, a, b);
    if limit < order.len() {
        order.select_nth_unstable_by(limit - 1, cmp);
        order.truncate(limit);
    }
    order.sort_unstable_by(cmp);
    order.into_iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pid: u32, name: &str, rss: Option<u64>, net: Option<i64>) -> ProcessRow {
        ProcessRow {
            pid,
            start_time: 100 + u64::from(pid),
            name: name.to_owned(),
            ppid: None,
            uid: None,
            app: None,
            rss_kb: rss,
            virtual_kb: rss.map(|r| r * 3 + u64::from(pid % 7)),
            peak_rss_kb: rss.map(|r| r + u64::from(pid % 5)),
            rss_anon_kb: rss.map(|r| r / 2),
            rss_file_kb: rss.map(|r| r / 3),
            rss_shmem_kb: rss.map(|r| r % 11),
            swap_kb: Some(u64::from(pid % 4)),
            alloc: net.map(|n| AllocStats {
                mmap_count: u64::from(pid % 13),
                munmap_count: u64::from(pid % 6),
                brk_count: u64::from(pid % 3),
                total_allocated: n.unsigned_abs() + 10,
                total_freed: u64::from(pid % 9) * 4096,
                alloc_count: 1,
                free_count: 1,
                net_mapped: n,
                peak_net_mapped: n.max(0) + i64::from(pid % 2),
                last_activity_unix_ms: 0,
            }),
            growth: net.map(|n| Growth {
                rss_5m: (n % 3 != 0).then_some(n as f64 * 1000.25),
                rss_1m: Some(f64::from(pid)),
                ..Default::default()
            }),
            spike: None,
            high_res: None,
        }
    }

    /// Deterministic pseudo-random rows with many ties and missing values.
    fn sample(n: u32) -> Vec<ProcessRow> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (1..=n)
            .map(|pid| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let rss = if x.is_multiple_of(10) {
                    None
                } else {
                    Some(x % 50)
                };
                let net = if x.is_multiple_of(7) {
                    None
                } else {
                    Some((x % 40) as i64 - 20)
                };
                let names = ["bash", "Xorg", "firefox", "a", "bash", "zsh"];
                row(pid * 7 % 1009, names[(x % 6) as usize], rss, net)
            })
            .collect()
    }

    #[test]
    fn top_by_agrees_with_brute_force_for_every_key() {
        let rows = sample(600);
        for key in SortKey::ALL {
            for descending in [true, false] {
                let mut brute = rows.clone();
                brute.sort_by(|a, b| key.order(descending, a, b));
                for limit in [0, 1, 7, 100, 599, 600, 1000] {
                    let want: Vec<u32> = brute.iter().take(limit).map(|r| r.pid).collect();
                    let got: Vec<u32> = top_by(&rows, key, descending, limit)
                        .iter()
                        .map(|r| r.pid)
                        .collect();
                    assert_eq!(got, want, "key {key} descending {descending} limit {limit}");
                }
            }
        }
    }

    #[test]
    fn default_order_is_rss_descending_ties_by_pid() {
        let rows = vec![
            row(5, "a", Some(10), None),
            row(3, "b", Some(10), None),
            row(9, "c", Some(20), None),
            row(1, "d", None, None),
        ];
        let pids: Vec<u32> = top_by(&rows, SortKey::Rss, true, 10)
            .iter()
            .map(|r| r.pid)
            .collect();
        assert_eq!(pids, vec![9, 3, 5, 1]);
    }

    #[test]
    fn top_is_selected_by_the_column_not_by_rss() {
        // The process with the most mmaps has the smallest RSS: it must still be first.
        let mut rows: Vec<ProcessRow> = (1..=200)
            .map(|p| row(p, "x", Some(1000 + u64::from(p)), Some(0)))
            .collect();
        rows[0].rss_kb = Some(1);
        rows[0].alloc.as_mut().expect("has alloc").mmap_count = 1_000_000;
        let top = top_by(&rows, SortKey::Mmap, true, 100);
        assert_eq!(top[0].pid, 1);
    }

    #[test]
    fn sort_keys_parse_and_reject() {
        for key in SortKey::ALL {
            assert_eq!(key.as_str().parse::<SortKey>(), Ok(key));
        }
        assert_eq!("RSS".parse::<SortKey>(), Ok(SortKey::Rss));
        let err = "bogus".parse::<SortKey>().expect_err("bogus is not a key");
        let msg = err.to_string();
        assert!(
            msg.contains("\"bogus\"") && msg.contains("rss") && msg.contains("peak-net"),
            "{msg}"
        );
        // A huge argument is quoted only in part.
        let huge = "x"
            .repeat(1 << 20)
            .parse::<SortKey>()
            .expect_err("not a key");
        assert!(huge.to_string().len() < 400, "{huge}");
        // D-Bus and JSON carry the same names as the command line.
        for key in SortKey::ALL {
            let json = serde_json::to_string(&key).expect("serialises");
            assert_eq!(json, format!("\"{}\"", key.as_str()));
        }
    }

    #[test]
    fn snapshot_json_round_trips() {
        let snap = Snapshot {
            taken_at_unix_ms: 1,
            scan_duration_us: 2,
            mode: Mode::ProcOnly,
            mode_reason: Some("no BTF".into()),
            system: SystemMemory {
                total_kb: 10,
                available_kb: 4,
                swap_total_kb: 0,
                swap_free_kb: 0,
            },
            process_count: 2,
            bpf_drops: 0,
            pressure: Some(crate::diagnostics::SystemPressure {
                some_avg10: Some(1.5),
                faults_per_s: 10.0,
                ..Default::default()
            }),
            oom_kills: Vec::new(),
            processes: sample(2),
        };
        let text = serde_json::to_string(&snap).expect("serialises");
        assert!(text.contains("\"mode\":\"proc-only\""), "{text}");
        let back: Snapshot = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, snap);
        assert_eq!(snap.system.used_kb(), 6);
    }
}
