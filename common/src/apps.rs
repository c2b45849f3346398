//! Apps: processes grouped by the systemd unit (cgroup) they run in, with the kernel's own memory
//! accounting for that cgroup. Shared by the helper, the CLI, D-Bus and the GUI.
//!
//! A browser or an IDE is many processes; the desktop already starts each app in its own cgroup
//! (a systemd scope or service), and the kernel counts that cgroup's memory exactly — page cache
//! and kernel memory included, which no sum of RSS shows. An [`AppRow`] carries both: the
//! cgroup's figures ([`CgroupMemory`]) and the sums over its processes.

mod column;

use std::{cmp::Ordering, fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{
    diagnostics::{Growth, Spike},
    snapshot::{AllocStats, ProcessRow},
};

/// What kind of unit an app was recognised from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppKind {
    /// A desktop app started by the session (`app-[launcher-]ID-RANDOM.scope`,
    /// `app-[launcher-]ID@RANDOM.service`, `app-ID.slice`).
    App,
    /// A Flatpak app (`app-flatpak-ID-RANDOM.scope`).
    Flatpak,
    /// A snap (`snap.NAME.APP-….scope` or `snap.NAME.APP.service`).
    Snap,
    /// A login session (`session-N.scope`): everything started from a terminal login or SSH.
    Session,
    /// A service of a user's service manager (`user@UID.service/…/NAME.service`).
    UserService,
    /// A system service (`/system.slice/NAME.service`, `init.scope`).
    Service,
    /// A container (`docker-ID.scope`, `libpod-ID.scope`).
    Container,
    /// No systemd unit: grouped under its top ancestor process (the fallback where no systemd
    /// manages the cgroups).
    ProcessTree,
}

impl AppKind {
    pub fn label(self) -> &'static str {
        match self {
            AppKind::App => "app",
            AppKind::Flatpak => "Flatpak",
            AppKind::Snap => "snap",
            AppKind::Session => "session",
            AppKind::UserService => "user service",
            AppKind::Service => "system service",
            AppKind::Container => "container",
            AppKind::ProcessTree => "process tree",
        }
    }
}

/// Which cgroup interface a figure was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CgroupVersion {
    V1,
    V2,
}

/// The memory controller's counters for one app's cgroup(s), in KiB (summed when an app runs in
/// several cgroups, e.g. two instances' scopes). Fields the kernel does not provide are `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CgroupMemory {
    pub version: Option<CgroupVersion>,
    /// `memory.current` (v2) / `memory.usage_in_bytes` (v1): everything charged to the cgroup.
    pub current_kb: u64,
    /// `memory.peak` (v2) / `memory.max_usage_in_bytes` (v1): the highest `current` reached.
    pub peak_kb: Option<u64>,
    /// Anonymous memory (`anon` / v1 `total_rss`).
    pub anon_kb: Option<u64>,
    /// Page cache (`file` / v1 `total_cache`).
    pub file_kb: Option<u64>,
    /// Kernel memory (`kernel`, v2 only; v1 `kmem.usage_in_bytes` when present).
    pub kernel_kb: Option<u64>,
    pub shmem_kb: Option<u64>,
    /// Network buffers (`sock`, v2 only).
    pub sock_kb: Option<u64>,
    /// Swap used (`memory.swap.current` / v1 `total_swap`).
    pub swap_kb: Option<u64>,
    /// The hard limit (`memory.max` / `memory.limit_in_bytes`); `None` when unlimited.
    pub limit_kb: Option<u64>,
    /// The throttling threshold (`memory.high`, v2 only); `None` when unlimited.
    pub high_kb: Option<u64>,
    /// `memory.events` counters (v1: `failcnt` + `memsw.failcnt` as `max`, `oom_control`'s
    /// `oom_kill`).
    pub events: MemoryEvents,
    /// The cgroup's own pressure stall information (`memory.pressure`, v2 only).
    pub pressure: Option<CgroupPressure>,
}

/// Counts of `memory.events` (since the cgroup was created).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryEvents {
    pub low: u64,
    /// Times the cgroup was throttled above `memory.high`.
    pub high: u64,
    /// Times usage hit `memory.max` (v1: `memory.failcnt`).
    pub max: u64,
    /// Times the OOM killer was invoked for the cgroup.
    pub oom: u64,
    /// Processes the OOM killer ended in the cgroup.
    pub oom_kill: u64,
}

/// `memory.pressure` of one cgroup: share of time (%) its tasks stalled on memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CgroupPressure {
    pub some_avg10: f64,
    pub full_avg10: f64,
    pub some_total_us: u64,
    pub full_total_us: u64,
}

/// An event of an app's cgroup between two samples (a marker on the app's plot).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppEvent {
    /// The sample that saw the counter rise.
    pub unix_ms: u64,
    pub kind: AppEventKind,
    /// By how much the counter rose.
    pub count: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppEventKind {
    /// Usage reached `memory.high` and the cgroup was throttled.
    High,
    /// Usage reached the hard limit.
    Max,
    /// The OOM killer ended a process of the app.
    OomKill,
}

/// One app at one tick.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AppRow {
    /// Stable identity: the kind and the decoded id, e.g. `app:org.gnome.Nautilus`,
    /// `flatpak:org.mozilla.firefox`, `service:ssh`, `session:3`.
    pub id: String,
    pub kind: Option<AppKind>,
    /// What users know it as: the desktop entry's name where one matches, else the id.
    pub name: String,
    /// The desktop entry's icon name (or path), for the GUI to look up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    /// The systemd unit (the first one seen when the app has several instances).
    pub unit: String,
    /// Distinct cgroups the app's processes run in.
    pub cgroup_count: u32,
    pub process_count: u32,
    /// Sum of the processes' RSS: double-counts pages they share (libraries, shared memory).
    pub rss_sum_kb: u64,
    pub swap_sum_kb: u64,
    /// The eBPF allocation counters summed over the app's live processes (Full mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alloc: Option<AllocStats>,
    /// The kernel's accounting for the app's cgroup; `None` where no memory controller covers
    /// it (then only the sums above are known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<CgroupMemory>,
    /// Set when the cgroup figure is not the app's own: the cgroup it was read from also holds
    /// other processes (e.g. a login session's scope, or a memory controller mounted coarser
    /// than the systemd tree). Names the cgroup it covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_covers: Option<String>,
    /// Growth of [`AppRow::memory_kb`], from the same Theil–Sen estimator as processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub growth: Option<Growth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spike: Option<Spike>,
    /// The app's processes, largest RSS first — filled only for apps the caller expanded (and
    /// bounded by [`MAX_EXPANDED_PROCESSES`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<ProcessRow>,
}

/// Processes listed per expanded app.
pub const MAX_EXPANDED_PROCESSES: usize = 500;
/// Apps a caller may expand in one request.
pub const MAX_EXPANDED_APPS: usize = 16;

impl AppRow {
    /// The headline figure: the cgroup's own usage where the kernel accounts the app on its
    /// own, else the sum of its processes' RSS.
    pub fn memory_kb(&self) -> u64 {
        match (&self.memory, &self.memory_covers) {
            (Some(m), None) => m.current_kb,
            _ => self.rss_sum_kb,
        }
    }

    /// Page cache charged to the app (own cgroup only).
    pub fn file_kb(&self) -> Option<u64> {
        self.own_memory().and_then(|m| m.file_kb)
    }

    pub fn anon_kb(&self) -> Option<u64> {
        self.own_memory().and_then(|m| m.anon_kb)
    }

    /// Swap: the cgroup's where it is the app's own, else the processes' sum.
    pub fn swap_kb(&self) -> u64 {
        self.own_memory()
            .and_then(|m| m.swap_kb)
            .unwrap_or(self.swap_sum_kb)
    }

    fn own_memory(&self) -> Option<&CgroupMemory> {
        self.memory
            .as_ref()
            .filter(|_| self.memory_covers.is_none())
    }
}

/// The top apps of one tick (`GetApps`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AppsSnapshot {
    pub taken_at_unix_ms: u64,
    /// All apps the tick saw (the rows may be a top-N subset).
    pub app_count: u32,
    pub process_count: u32,
    /// How the processes were grouped: `systemd` units or the `process-tree` fallback, and the
    /// memory controller's interface, as a sentence for the status bar.
    pub grouping: String,
    /// Microseconds the grouping and the cgroup reads took in this tick.
    pub grouping_us: u64,
    pub apps: Vec<AppRow>,
}

/// A column the apps table can be sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppSortKey {
    Name,
    Memory,
    Anon,
    File,
    Swap,
    Rss,
    Processes,
    Growth,
    Kernel,
    Limit,
    Pressure,
    OomKills,
}

impl AppSortKey {
    pub const ALL: [AppSortKey; 12] = [
        AppSortKey::Name,
        AppSortKey::Memory,
        AppSortKey::Anon,
        AppSortKey::File,
        AppSortKey::Swap,
        AppSortKey::Rss,
        AppSortKey::Processes,
        AppSortKey::Growth,
        AppSortKey::Kernel,
        AppSortKey::Limit,
        AppSortKey::Pressure,
        AppSortKey::OomKills,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            AppSortKey::Name => "name",
            AppSortKey::Memory => "memory",
            AppSortKey::Anon => "anon",
            AppSortKey::File => "file",
            AppSortKey::Swap => "swap",
            AppSortKey::Rss => "rss",
            AppSortKey::Processes => "processes",
            AppSortKey::Growth => "growth",
            AppSortKey::Kernel => "kernel",
            AppSortKey::Limit => "limit",
            AppSortKey::Pressure => "pressure",
            AppSortKey::OomKills => "oom-kills",
        }
    }

    /// The sort value of a row (numbers only; `Name` sorts by text in [`AppSortKey::compare`]).
    fn number(self, row: &AppRow) -> Option<f64> {
        let kb = |v: Option<u64>| v.map(|v| v as f64);
        match self {
            AppSortKey::Name => None,
            AppSortKey::Memory => Some(row.memory_kb() as f64),
            AppSortKey::Anon => kb(row.anon_kb()),
            AppSortKey::File => kb(row.file_kb()),
            AppSortKey::Swap => Some(row.swap_kb() as f64),
            AppSortKey::Rss => Some(row.rss_sum_kb as f64),
            AppSortKey::Processes => Some(f64::from(row.process_count)),
            AppSortKey::Growth => row.growth.and_then(|g| g.shown()),
            AppSortKey::Kernel => kb(row.own_memory().and_then(|m| m.kernel_kb)),
            AppSortKey::Limit => kb(row.memory.and_then(|m| m.limit_kb)),
            AppSortKey::Pressure => row.memory.and_then(|m| m.pressure).map(|p| p.some_avg10),
            AppSortKey::OomKills => row.memory.map(|m| m.events.oom_kill as f64),
        }
    }

    /// Orders two rows by this column alone (ascending; a missing value sorts lowest).
    pub fn compare(self, a: &AppRow, b: &AppRow) -> Ordering {
        if self == AppSortKey::Name {
            return a.name.to_lowercase().cmp(&b.name.to_lowercase());
        }
        match (self.number(a), self.number(b)) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            (a, b) => a.is_some().cmp(&b.is_some()),
        }
    }

    /// Display order: by this column in the given direction, ties by id.
    pub fn order(self, descending: bool, a: &AppRow, b: &AppRow) -> Ordering {
        let by_key = self.compare(a, b);
        let by_key = if descending { by_key.reverse() } else { by_key };
        by_key.then_with(|| a.id.cmp(&b.id))
    }
}

impl fmt::Display for AppSortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown apps sort column name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAppSortKey(pub String);

impl fmt::Display for UnknownAppSortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown apps sort key {:?}; expected one of: ", self.0)?;
        let names: Vec<&str> = AppSortKey::ALL.iter().map(|k| k.as_str()).collect();
        f.write_str(&names.join(", "))
    }
}

impl std::error::Error for UnknownAppSortKey {}

impl FromStr for AppSortKey {
    type Err = UnknownAppSortKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let quoted = || UnknownAppSortKey(s.chars().take(32).collect());
        if s.len() > 64 {
            return Err(quoted());
        }
        let lower = s.trim().to_ascii_lowercase();
        AppSortKey::ALL
            .into_iter()
            .find(|k| k.as_str() == lower)
            .ok_or_else(quoted)
    }
}

/// The top `limit` apps by `key` (ties by id), in display order.
pub fn top_apps(rows: &[AppRow], key: AppSortKey, descending: bool, limit: usize) -> Vec<AppRow> {
    let mut order: Vec<&AppRow> = rows.iter().collect();
    order.sort_unstable_by(|a, b| key.order(descending, a, b));
    order.into_iter().take(limit).cloned().collect()
}

pub use column::AppColumn;

/// The apps as CSV: a header line, then one line per app (the columns of [`AppColumn::ALL`]).
pub fn apps_csv(rows: &[AppRow]) -> String {
    let names: Vec<&str> = AppColumn::ALL.iter().map(|c| c.csv_name()).collect();
    let mut out = names.join(",");
    out.push('\n');
    for row in rows {
        let cells: Vec<String> = AppColumn::ALL.iter().map(|c| c.csv_value(row)).collect();
        crate::export::csv_line(&mut out, &cells);
    }
    out
}

/// One point of an app's history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSample {
    pub unix_ms: u64,
    /// [`AppRow::memory_kb`] at that tick.
    pub memory_kb: u64,
    pub anon_kb: Option<u64>,
    /// Page cache.
    pub file_kb: Option<u64>,
    pub swap_kb: u64,
    pub rss_sum_kb: u64,
    pub process_count: u32,
}

/// An app's history (`GetAppHistory`): change-only samples like a process's, plus the cgroup's
/// limit and OOM events as markers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AppHistorySeries {
    pub id: String,
    pub name: String,
    pub last_seen_unix_ms: u64,
    /// Set once no process of the app is left.
    pub gone_unix_ms: Option<u64>,
    pub samples: Vec<AppSample>,
    #[serde(default)]
    pub events: Vec<AppEvent>,
    #[serde(default)]
    pub spikes: Vec<Spike>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(id: &str, memory: Option<u64>, covers: Option<&str>, rss: u64) -> AppRow {
        AppRow {
            id: id.into(),
            name: id.into(),
            rss_sum_kb: rss,
            memory: memory.map(|current_kb| CgroupMemory {
                current_kb,
                file_kb: Some(current_kb / 2),
                ..CgroupMemory::default()
            }),
            memory_covers: covers.map(Into::into),
            ..AppRow::default()
        }
    }

    #[test]
    fn the_headline_is_the_cgroup_only_when_it_is_the_apps_own() {
        assert_eq!(app("a", Some(900), None, 100).memory_kb(), 900);
        let shared = app("b", Some(900), Some("/user.slice"), 100);
        assert_eq!(shared.memory_kb(), 100);
        assert_eq!(
            shared.file_kb(),
            None,
            "page cache of a shared cgroup is not the app's"
        );
        assert_eq!(app("c", None, None, 70).memory_kb(), 70);
    }

    #[test]
    fn apps_sort_by_memory_then_id_and_missing_values_sort_low() {
        let rows = [
            app("b", Some(500), None, 1),
            app("a", Some(500), None, 1),
            app("c", None, None, 900),
            app("d", Some(10), None, 1),
        ];
        let top = top_apps(&rows, AppSortKey::Memory, true, 3);
        let ids: Vec<&str> = top.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["c", "a", "b"]);
        let by_file = top_apps(&rows, AppSortKey::File, true, 4);
        assert_eq!(by_file.last().map(|r| r.id.as_str()), Some("c"));
    }

    #[test]
    fn sort_keys_parse_and_reject_with_the_list() {
        for key in AppSortKey::ALL {
            assert_eq!(key.as_str().parse::<AppSortKey>(), Ok(key));
        }
        assert_eq!(" Memory ".parse::<AppSortKey>(), Ok(AppSortKey::Memory));
        let err = "x".repeat(10_000).parse::<AppSortKey>().unwrap_err();
        assert!(err.0.len() <= 32);
        assert!(err.to_string().contains("oom-kills"));
    }
}
