//! The app's data: the latest snapshot and where it came from, the histories and readings
//! received, the selection and the pins, and the settings. [`Model::apply`] eats what the source
//! thread sends; the other methods change the selection or settings. Every method that needs
//! something from the source returns the [`Request`]s to send — the model never sends, draws or
//! writes files itself, so plain unit tests can drive it.

use std::collections::HashMap;

use memmon_common::{
    apps::AppSortKey,
    diagnostics::{MemoryDetail, SystemSample},
    process_key::ProcessKey,
    series::HistorySeries,
    snapshot::{Mode, ProcessRow, Snapshot, SortKey},
};
use memmon_helper::history::MAX_SYSTEM_SAMPLES;

use crate::{
    settings::{Settings, View},
    source::{APPS_TOP_N, AppsView, Origin, Request, Rows, Update},
};

mod apps;
mod callsites;
mod subject;

pub use apps::{AppsModel, memory_note};
pub use callsites::CallSitesModel;
pub use subject::Subject;

/// The process a row describes (PID and start time: a reused PID is another process).
pub fn key_of(row: &ProcessRow) -> ProcessKey {
    ProcessKey::of(row)
}

#[derive(Debug, Default)]
pub struct Model {
    pub settings: Settings,
    pub snapshot: Option<Snapshot>,
    /// Snapshots received so far: a view that derives something from the snapshot (the process
    /// tree) rebuilds it only when this changes.
    pub snapshot_count: u64,
    pub origin: Option<Origin>,
    /// The source's last complaint, until the next snapshot.
    pub problem: Option<String>,
    /// The grid's filter: a name part or a PID prefix.
    pub filter: String,
    /// The selected process or app (survives refreshes and row moves).
    pub selected: Option<Subject>,
    pub plot_open: bool,
    /// Processes and apps drawn in the plot next to the selected one.
    pub pinned: Vec<Subject>,
    /// The Apps view's table and the apps' histories.
    pub apps: AppsModel,
    pub histories: HashMap<ProcessKey, HistorySeries>,
    /// Memory pressure, swap and faults over time (oldest first, bounded).
    pub system_history: Vec<SystemSample>,
    /// On-demand PSS/USS readings.
    pub details: HashMap<ProcessKey, MemoryDetail>,
    pub detail_error: Option<String>,
    /// The process the user switched high resolution on for.
    pub high_res: Option<ProcessKey>,
    /// The call-site window and its session.
    pub callsites: CallSitesModel,
    /// The last export's outcome, for the status bar.
    pub status_message: Option<String>,
    /// `--select PID`: selected as soon as a snapshot lists it.
    select_when_seen: Option<u32>,
}

impl Model {
    pub fn new(settings: Settings) -> Model {
        let pinned = settings
            .pinned_apps
            .iter()
            .map(|id| Subject::App(id.clone()))
            .collect();
        Model {
            settings,
            pinned,
            ..Default::default()
        }
    }

    /// What the source must know before its first tick (the saved sort and interval, and
    /// every process if the tree is shown).
    pub fn initial_requests(&self) -> Vec<Request> {
        vec![
            self.view_request(),
            Request::Interval(std::time::Duration::from_millis(self.settings.interval_ms)),
            self.apps_request(),
        ]
        .into_iter()
        .chain(self.settings.process_tree.then(|| self.rows_request()))
        .collect()
    }

    /// Selects `pid` (and opens its plot) once a snapshot lists it.
    pub fn select_pid_when_seen(&mut self, pid: u32) {
        self.select_when_seen = Some(pid);
    }

    /// Takes one update from the source; returns what to ask the source next.
    pub fn apply(&mut self, update: Update) -> Vec<Request> {
        match update {
            Update::Snapshot { snapshot, origin } => {
                let mut requests = Vec::new();
                if let Some(pid) = self.select_when_seen
                    && let Some(row) = snapshot.processes.iter().find(|r| r.pid == pid)
                {
                    self.select_when_seen = None;
                    self.selected = Some(Subject::Process(key_of(row)));
                    self.plot_open = true;
                }
                self.repin(&snapshot);
                self.snapshot = Some(*snapshot);
                self.snapshot_count += 1;
                self.origin = Some(origin);
                self.problem = None;
                // Keep the plot of the selected and the pinned processes current.
                requests.extend(self.plot_requests());
                // And a running call-site session's report.
                requests.extend(self.callsites.poll_request());
                requests
            }
            Update::CallSitesStarted(key, started) => self
                .callsites
                .apply_started(key, started)
                .into_iter()
                .collect(),
            Update::CallSites(report) => {
                self.callsites.apply_report(report);
                Vec::new()
            }
            Update::SystemHistory(samples) => {
                let last = self.system_history.last().map_or(0, |s| s.unix_ms);
                self.system_history
                    .extend(samples.into_iter().filter(|s| s.unix_ms > last));
                let excess = self.system_history.len().saturating_sub(MAX_SYSTEM_SAMPLES);
                self.system_history.drain(..excess);
                Vec::new()
            }
            Update::Detail(Ok(detail)) => {
                self.detail_error = None;
                self.details.insert(detail.key(), detail);
                Vec::new()
            }
            Update::Detail(Err(e)) => {
                self.detail_error = Some(e);
                Vec::new()
            }
            Update::History(series) => {
                let key = series.key();
                let merged = match self.histories.remove(&key) {
                    Some(old) => merge_history(old, series),
                    None => series,
                };
                self.histories.insert(key, merged);
                Vec::new()
            }
            Update::Problem(p) => {
                self.problem = Some(p);
                Vec::new()
            }
            Update::Apps(snapshot) => {
                let (key, descending) = (self.settings.app_sort, self.settings.app_descending);
                self.apps.apply(*snapshot, key, descending);
                Vec::new()
            }
            Update::AppsError(e) => {
                self.apps.error = Some(e);
                Vec::new()
            }
            Update::AppHistory(series) => {
                self.apps.apply_history(series);
                Vec::new()
            }
        }
    }

    /// Pins again, by name, the processes pinned in an earlier run (or before a restart).
    fn repin(&mut self, snapshot: &Snapshot) {
        for name in &self.settings.pinned_names {
            let already = self.pinned.iter().any(|p| {
                p.process()
                    .and_then(|k| self.histories.get(&k))
                    .is_some_and(|h| &h.name == name)
            });
            if let Some(row) = snapshot.processes.iter().find(|r| &r.name == name)
                && !already
                && !self.pinned.contains(&Subject::Process(key_of(row)))
            {
                self.pinned.push(Subject::Process(key_of(row)));
            }
        }
    }

    /// The histories the open plot draws (selected and pinned) and the system samples it lacks.
    pub fn plot_requests(&self) -> Vec<Request> {
        let selected = self.selected.as_ref().filter(|_| self.plot_open);
        let mut requests: Vec<Request> = selected
            .into_iter()
            .chain(self.pinned.iter().filter(|&p| Some(p) != selected))
            .map(Subject::history_request)
            .collect();
        if selected.is_some() {
            let since_unix_ms = self.system_history.last().map_or(0, |s| s.unix_ms);
            requests.push(Request::SystemHistory { since_unix_ms });
        }
        requests
    }

    /// Selects a process or an app; `open_plot` also opens the plot. An open plot asks for
    /// the new subject's history at once, not at the next tick.
    pub fn select(&mut self, subject: impl Into<Subject>, open_plot: bool) -> Vec<Request> {
        let subject = subject.into();
        let changed = self.selected.as_ref() != Some(&subject) || (open_plot && !self.plot_open);
        let mut requests = vec![subject.history_request()];
        self.selected = Some(subject);
        self.plot_open |= open_plot;
        if !changed || !self.plot_open {
            return Vec::new();
        }
        let since_unix_ms = self.system_history.last().map_or(0, |s| s.unix_ms);
        requests.push(Request::SystemHistory { since_unix_ms });
        requests
    }

    pub fn open_plot(&mut self) -> Vec<Request> {
        match self.selected.clone() {
            Some(subject) => self.select(subject, true),
            None => Vec::new(),
        }
    }

    pub fn close_plot(&mut self) {
        self.plot_open = false;
    }

    /// The same column again reverses the order; names and PIDs read naturally A→Z and
    /// low→high, sizes largest first.
    pub fn sort_by(&mut self, key: SortKey) -> Request {
        if self.settings.sort == key {
            self.settings.descending = !self.settings.descending;
        } else {
            self.settings.sort = key;
            self.settings.descending = !matches!(key, SortKey::Name | SortKey::Pid);
        }
        self.view_request()
    }

    fn view_request(&self) -> Request {
        Request::View {
            key: self.settings.sort,
            descending: self.settings.descending,
        }
    }

    /// Shows the Processes view as a tree or as the grid: the tree needs every process (up to
    /// the helper's limit), the grid the top 100.
    pub fn toggle_tree(&mut self) -> Request {
        self.settings.process_tree = !self.settings.process_tree;
        self.rows_request()
    }

    fn rows_request(&self) -> Request {
        Request::Rows(if self.settings.process_tree {
            Rows::All
        } else {
            Rows::Top
        })
    }

    pub fn set_interval(&mut self, ms: u64) -> Request {
        self.settings.interval_ms = ms;
        Request::Interval(std::time::Duration::from_millis(ms))
    }

    /// Pins or unpins a process (remembered by `name`) or an app (remembered by its id).
    pub fn toggle_pin(&mut self, subject: impl Into<Subject>, name: String) -> Vec<Request> {
        let subject = subject.into();
        let remembered = match &subject {
            Subject::Process(_) => (&mut self.settings.pinned_names, name),
            Subject::App(id) => (&mut self.settings.pinned_apps, id.clone()),
        };
        if let Some(i) = self.pinned.iter().position(|p| *p == subject) {
            self.pinned.remove(i);
            remembered.0.retain(|n| *n != remembered.1);
            return Vec::new();
        }
        if !remembered.0.contains(&remembered.1) {
            remembered.0.push(remembered.1);
        }
        let request = subject.history_request();
        self.pinned.push(subject);
        vec![request]
    }

    /// Shows the processes or the apps table; the source fetches apps only for the Apps view.
    pub fn set_view(&mut self, view: View) -> Request {
        self.settings.view = view;
        self.apps_request()
    }

    /// Sorts the apps table: the same column again reverses; names read A→Z, numbers largest
    /// first. The rows shown reorder at once.
    pub fn sort_apps_by(&mut self, key: AppSortKey) -> Request {
        if self.settings.app_sort == key {
            self.settings.app_descending = !self.settings.app_descending;
        } else {
            self.settings.app_sort = key;
            self.settings.app_descending = key != AppSortKey::Name;
        }
        let (key, descending) = (self.settings.app_sort, self.settings.app_descending);
        self.apps.sort(key, descending);
        self.apps_request()
    }

    /// Lists or hides an app's processes (the source sends them with the app).
    pub fn toggle_expanded(&mut self, id: &str) -> Request {
        self.apps.toggle_expanded(id);
        self.apps_request()
    }

    /// What the source must send for the apps table (nothing outside the Apps view).
    pub fn apps_request(&self) -> Request {
        Request::Apps((self.settings.view == View::Apps).then(|| AppsView {
            key: self.settings.app_sort,
            descending: self.settings.app_descending,
            limit: APPS_TOP_N,
            expanded: self.apps.expanded.clone(),
        }))
    }

    pub fn measure_detail(&mut self, key: ProcessKey) -> Request {
        self.detail_error = None;
        Request::Detail(key)
    }

    pub fn set_high_res(&mut self, key: ProcessKey, enable: bool) -> Request {
        self.high_res = enable.then_some(key);
        Request::HighRes { key, enable }
    }

    pub fn retry_helper(&mut self) -> Request {
        self.problem = None;
        Request::RetryHelper
    }

    // ---- queries ----

    /// Rows after the filter, in the order the source sent them.
    pub fn visible_rows(&self) -> Vec<&ProcessRow> {
        let Some(snapshot) = &self.snapshot else {
            return Vec::new();
        };
        let needle = self.filter.trim().to_lowercase();
        snapshot
            .processes
            .iter()
            .filter(|r| {
                needle.is_empty()
                    || r.name.to_lowercase().contains(&needle)
                    || r.pid.to_string().starts_with(&needle)
            })
            .collect()
    }

    /// The row of a process in the current snapshot.
    /// A listed process: in the process table, else among an expanded app's processes.
    pub fn row(&self, key: ProcessKey) -> Option<&ProcessRow> {
        let listed = self.snapshot.as_ref().map(|s| s.processes.as_slice());
        let in_apps = self
            .apps
            .snapshot
            .as_ref()
            .into_iter()
            .flat_map(|a| &a.apps);
        listed
            .into_iter()
            .flatten()
            .chain(in_apps.flat_map(|app| &app.processes))
            .find(|r| key_of(r) == key)
    }

    /// The selected process, if a process (not an app) is selected.
    pub fn selected_process(&self) -> Option<ProcessKey> {
        self.selected.as_ref().and_then(Subject::process)
    }

    /// A process's or an app's name, for the plot's legend and title.
    pub fn subject_name(&self, subject: &Subject) -> String {
        match subject {
            Subject::Process(key) => self.name_of(*key),
            Subject::App(id) => self.apps.name_of(id),
        }
    }

    /// A process's name, from its history or its row.
    pub fn name_of(&self, key: ProcessKey) -> String {
        self.histories
            .get(&key)
            .map(|s| s.name.clone())
            .or_else(|| self.row(key).map(|r| r.name.clone()))
            .unwrap_or_default()
    }

    /// Whether the plot panel is shown.
    pub fn plot_shown(&self) -> bool {
        self.plot_open && self.selected.is_some()
    }

    /// "Full", "/proc only", "Embedded", "Helper unavailable" or "Starting…".
    pub fn mode_label(&self) -> String {
        match (&self.origin, &self.snapshot) {
            (Some(Origin::Helper), Some(s)) => s.mode.label().to_owned(),
            (Some(Origin::Embedded { .. }), _) => Mode::Embedded.label().to_owned(),
            (Some(Origin::Unavailable { .. }), _) => "Helper unavailable".to_owned(),
            _ => "Starting…".to_owned(),
        }
    }

    /// The helper with eBPF: what high resolution needs.
    pub fn is_full(&self) -> bool {
        self.origin == Some(Origin::Helper)
            && self.snapshot.as_ref().is_some_and(|s| s.mode == Mode::Full)
    }

    /// False in Embedded mode, where the allocation columns could only ever show "—".
    pub fn allocation_columns_shown(&self) -> bool {
        !matches!(self.origin, Some(Origin::Embedded { .. }))
    }

    /// What the banner says: the source's problem, or which mode is active and why.
    pub fn banner_text(&self) -> Option<String> {
        if let Some(p) = &self.problem {
            return Some(p.clone());
        }
        match (&self.origin, &self.snapshot) {
            (Some(Origin::Embedded { why, .. }), _) => Some(format!(
                "Embedded mode: reading /proc as you, without allocation tracking, because {why}. \
                 Install and authorise memmon-helper for Full mode (it adds the net mapped, \
                 mmap, munmap and brk columns, hidden until then)."
            )),
            (Some(Origin::Unavailable { why }), _) => {
                Some(format!("The helper cannot be used: {why}"))
            }
            (Some(Origin::Helper), Some(s)) if s.mode == Mode::ProcOnly => Some(format!(
                "/proc-only mode: {}",
                s.mode_reason.as_deref().unwrap_or("eBPF is unavailable")
            )),
            _ => None,
        }
    }

    /// Whether the banner offers "Try again".
    pub fn can_retry(&self) -> bool {
        matches!(
            &self.origin,
            Some(Origin::Embedded {
                can_retry: true,
                ..
            }) | Some(Origin::Unavailable { .. })
        )
    }

    /// The histories an export of the plotted series writes: selected first, then pinned.
    pub fn plotted_series(&self) -> Vec<&HistorySeries> {
        let mut seen: Vec<ProcessKey> = Vec::new();
        self.selected
            .iter()
            .chain(self.pinned.iter())
            .filter_map(Subject::process)
            .filter(|&k| {
                let new = !seen.contains(&k);
                seen.push(k);
                new
            })
            .filter_map(|k| self.histories.get(&k))
            .collect()
    }

    /// What a `--screenshot` picture shows (tests and documentation read this line).
    pub fn summary(&self) -> String {
        let rows = self.visible_rows();
        format!(
            "mode: {}, {} rows, {} with allocation data",
            self.mode_label(),
            rows.len(),
            rows.iter().filter(|r| r.alloc.is_some()).count()
        )
    }
}

/// A newer history of the same process, keeping what only the older one has: after the helper
/// restarts, its history begins anew, and the plot must not lose what was already drawn.
pub fn merge_history(old: HistorySeries, mut new: HistorySeries) -> HistorySeries {
    prepend_older(old.samples, &mut new.samples, |s| s.unix_ms);
    prepend_older(old.spikes, &mut new.spikes, |s| s.unix_ms);
    new
}

/// Puts before `new` the items of `old` that are older than `new`'s first (by `unix_ms`).
pub(crate) fn prepend_older<T>(old: Vec<T>, new: &mut Vec<T>, unix_ms: impl Fn(&T) -> u64) {
    let first = new.first().map_or(u64::MAX, &unix_ms);
    let mut merged: Vec<T> = old.into_iter().filter(|x| unix_ms(x) < first).collect();
    merged.append(new);
    *new = merged;
}

#[cfg(test)]
mod tests;
