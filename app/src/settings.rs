//! What the app remembers across runs (eframe persistence). Runtime state lives in the
//! [`Model`](crate::model::Model) and the panels, and is never saved.

use memmon_common::{apps::AppSortKey, diagnostics::SystemSample, snapshot::SortKey};
use serde::{Deserialize, Serialize};

/// Settings kept across runs; `#[serde(default)]` so older saved settings still load.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub sort: SortKey,
    pub descending: bool,
    pub interval_ms: u64,
    /// Names of pinned processes, re-pinned when a process of that name is seen.
    pub pinned_names: Vec<String>,
    /// What the system plot under the process plot shows.
    pub system_metric: SystemMetric,
    /// The plot panel's share of the window's height below the status bar, when it is open.
    pub plot_fraction: f32,
    /// Processes or Apps.
    pub view: View,
    /// The apps table's sort column and direction.
    pub app_sort: AppSortKey,
    pub app_descending: bool,
    /// Ids of pinned apps (stable across runs, so pinned again as they are).
    pub pinned_apps: Vec<String>,
    /// The Processes view as a parent/child tree instead of the flat grid.
    pub process_tree: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sort: SortKey::Rss,
            descending: true,
            interval_ms: 1000,
            pinned_names: Vec::new(),
            system_metric: SystemMetric::default(),
            plot_fraction: DEFAULT_PLOT_FRACTION,
            view: View::default(),
            app_sort: AppSortKey::Memory,
            app_descending: true,
            process_tree: false,
            pinned_apps: Vec::new(),
        }
    }
}

/// The refresh intervals the status bar offers.
pub const INTERVALS_MS: [u64; 5] = [500, 1000, 2000, 3000, 5000];

/// The plot's default share of the window when it opens.
pub const DEFAULT_PLOT_FRACTION: f32 = 0.5;

/// Which table the window shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum View {
    /// One row per process.
    #[default]
    Processes,
    /// One row per app (processes grouped by systemd unit).
    Apps,
}

/// What the system plot under the process plot shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SystemMetric {
    /// PSI: share of time tasks stalled on memory (avg10, %).
    #[default]
    Pressure,
    /// Pages swapped in and out per second.
    Swap,
    /// Page faults (all, and major) per second.
    Faults,
}

impl SystemMetric {
    pub const ALL: [SystemMetric; 3] = [
        SystemMetric::Pressure,
        SystemMetric::Swap,
        SystemMetric::Faults,
    ];

    pub fn label(self) -> &'static str {
        match self {
            SystemMetric::Pressure => "Memory pressure (PSI avg10, %)",
            SystemMetric::Swap => "Swap in/out (pages/s)",
            SystemMetric::Faults => "Page faults (/s)",
        }
    }

    /// The unit after a tick value on the system plot's axis.
    pub fn unit(self) -> &'static str {
        match self {
            SystemMetric::Pressure => "%",
            SystemMetric::Swap => "pages/s",
            SystemMetric::Faults => "/s",
        }
    }

    /// (series name, value) pairs of one sample.
    pub fn values(self, s: &SystemSample) -> [(&'static str, Option<f64>); 2] {
        let p = &s.pressure;
        match self {
            SystemMetric::Pressure => [("some", p.some_avg10), ("full", p.full_avg10)],
            SystemMetric::Swap => [
                ("swap in", Some(p.swap_in_per_s)),
                ("swap out", Some(p.swap_out_per_s)),
            ],
            SystemMetric::Faults => [
                ("faults", Some(p.faults_per_s)),
                ("major faults", Some(p.major_faults_per_s)),
            ],
        }
    }
}
