//! The Memory Monitor window: status bar, the sortable top-100 grid, and the RSS-over-time plot
//! of the selected process. Drawing functions (`*_ui`) only record what the user asked for in
//! `self.commands`; the commands are applied after the frame (requests to the source thread,
//! exports, quitting), so no I/O happens while drawing.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::mpsc::{Receiver, Sender},
    time::Duration,
};

use eframe::egui::{self, Key, Modifiers};
use egui_extras::{Column, TableBuilder};
use memmon_common::{
    diagnostics::{MemoryDetail, OomSource, SystemSample},
    snapshot::{Mode, ProcessRow, Snapshot, SortKey},
};
use memmon_helper::history::{HistorySeries, MAX_SYSTEM_SAMPLES};
use serde::{Deserialize, Serialize};

use crate::{
    export::DataExport,
    format,
    plot::SystemMetric,
    source::{Origin, Request, Update},
};

/// Settings kept across runs (eframe persistence); runtime state is not saved.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub sort: SortKey,
    pub descending: bool,
    pub interval_ms: u64,
    /// Names of pinned processes, re-pinned when a process of that name is seen.
    pub pinned_names: Vec<String>,
    /// What the system plot under the process plot shows.
    pub system_metric: SystemMetric,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sort: SortKey::Rss,
            descending: true,
            interval_ms: 1000,
            pinned_names: Vec::new(),
            system_metric: SystemMetric::default(),
        }
    }
}

pub const INTERVALS_MS: [u64; 5] = [500, 1000, 2000, 3000, 5000];

/// The grid's columns: header, what it measures, its sort key.
const COLUMNS: [(&str, &str, SortKey); 11] = [
    ("PID", "Process ID (thread-group id)", SortKey::Pid),
    ("Name", "Process name (comm)", SortKey::Name),
    (
        "RSS",
        "Resident set size: memory in RAM now (VmRSS)",
        SortKey::Rss,
    ),
    (
        "Virtual",
        "Virtual address space size (VmSize)",
        SortKey::Virt,
    ),
    (
        "Peak RSS",
        "The highest RSS this process reached (VmHWM)",
        SortKey::Peak,
    ),
    (
        "Net mapped",
        "Net mapped: bytes mapped minus unmapped (mmap/munmap/brk) since tracking began — not RSS",
        SortKey::Net,
    ),
    (
        "Mmap#",
        "Successful mmap calls since tracking began",
        SortKey::Mmap,
    ),
    (
        "Munmap#",
        "Successful munmap calls since tracking began",
        SortKey::Munmap,
    ),
    (
        "Brk",
        "brk calls that moved the program break",
        SortKey::Brk,
    ),
    ("Swap", "Memory swapped out (VmSwap)", SortKey::Swap),
    (
        "Growth",
        "RSS growth per minute (Theil–Sen over 5 min, 1 min while less is known), ranked across \
         all processes; red: grown without falling back for 2 minutes or more",
        SortKey::Growth,
    ),
];

/// What the user asked for during a frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Sort(SortKey),
    Select(u32, u64),
    OpenPlot,
    Interval(u64),
    /// Pin or unpin a process for comparison in the plot.
    TogglePin(u32, u64, String),
    Export(ExportWhat),
    ExportData(DataExport),
    /// Read PSS/USS of a process now.
    MeasureDetail(u32, u64),
    /// Watch every RSS change of a process (true) or stop (false).
    HighRes(u32, u64, bool),
    /// Ask for the helper again, interactively (the banner's "Try again").
    RetryHelper,
    Quit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportWhat {
    Window,
    Plot,
}

pub struct MemmonApp {
    pub settings: Settings,
    pub(crate) updates: Receiver<Update>,
    pub(crate) requests: Sender<Request>,
    pub snapshot: Option<Snapshot>,
    pub origin: Option<Origin>,
    pub problem: Option<String>,
    pub filter: String,
    /// The selected process, by PID and start time (survives refreshes and row moves).
    pub selected: Option<(u32, u64)>,
    pub plot_open: bool,
    /// Processes drawn in the plot next to the selected one, by (pid, start time).
    pub pinned: Vec<(u32, u64)>,
    /// Histories received, by (pid, start time).
    pub histories: HashMap<(u32, u64), HistorySeries>,
    pub commands: Vec<Command>,
    pub status_message: Option<String>,
    pub(crate) focus_filter: bool,
    /// Set by keyboard navigation: bring the selected row into view once.
    pub(crate) scroll_to_selected: bool,
    /// `--screenshot PATH`: export once the first data is shown, then quit.
    pub screenshot_then_quit: Option<PathBuf>,
    pub(crate) exports: (Sender<String>, Receiver<String>),
    pub(crate) plot_rect: Option<egui::Rect>,
    pub(crate) frames_with_data: u32,
    /// `--select PID`: selected as soon as a snapshot lists it.
    pub(crate) select_when_seen: Option<u32>,
    /// For `MEMMON_TRACE_STARTUP=1`: when the process started (set by `main`).
    pub launched: std::time::Instant,
    /// Memory pressure, swap and faults over time (oldest first, bounded).
    pub system_history: Vec<SystemSample>,
    /// On-demand PSS/USS readings, by (pid, start time).
    pub details: HashMap<(u32, u64), MemoryDetail>,
    pub detail_error: Option<String>,
    /// The OOM-kill list window.
    pub oom_open: bool,
    /// The process the user switched high resolution on for.
    pub high_res: Option<(u32, u64)>,
}

impl MemmonApp {
    pub fn new(
        settings: Settings,
        updates: Receiver<Update>,
        requests: Sender<Request>,
    ) -> MemmonApp {
        let _ = requests.send(Request::View {
            key: settings.sort,
            descending: settings.descending,
        });
        let _ = requests.send(Request::Interval(Duration::from_millis(
            settings.interval_ms,
        )));
        MemmonApp {
            settings,
            updates,
            requests,
            snapshot: None,
            origin: None,
            problem: None,
            filter: String::new(),
            selected: None,
            plot_open: false,
            pinned: Vec::new(),
            histories: HashMap::new(),
            commands: Vec::new(),
            status_message: None,
            focus_filter: false,
            scroll_to_selected: false,
            screenshot_then_quit: None,
            exports: std::sync::mpsc::channel(),
            plot_rect: None,
            frames_with_data: 0,
            select_when_seen: None,
            launched: std::time::Instant::now(),
            system_history: Vec::new(),
            details: HashMap::new(),
            detail_error: None,
            oom_open: false,
            high_res: None,
        }
    }

    /// Selects `pid` (and opens its plot) once a snapshot lists it.
    pub fn select_pid_when_seen(&mut self, pid: u32) {
        self.select_when_seen = Some(pid);
    }

    /// Takes what the source thread sent, without blocking.
    pub fn drain_updates(&mut self) {
        while let Ok(update) = self.updates.try_recv() {
            match update {
                Update::Snapshot { snapshot, origin } => {
                    if let Some(pid) = self.select_when_seen
                        && let Some(row) = snapshot.processes.iter().find(|r| r.pid == pid)
                    {
                        self.select_when_seen = None;
                        self.commands.push(Command::Select(row.pid, row.start_time));
                    }
                    for name in &self.settings.pinned_names {
                        let already = self
                            .pinned
                            .iter()
                            .any(|p| self.histories.get(p).is_some_and(|h| &h.name == name));
                        if let Some(row) = snapshot.processes.iter().find(|r| &r.name == name)
                            && !already
                            && !self.pinned.contains(&(row.pid, row.start_time))
                        {
                            self.pinned.push((row.pid, row.start_time));
                        }
                    }
                    if std::env::var_os("MEMMON_TRACE_SOURCE").is_some() {
                        // For tests: where each snapshot came from and when it was taken.
                        eprintln!(
                            "memmon: snapshot {} from {origin:?}",
                            snapshot.taken_at_unix_ms
                        );
                    }
                    self.snapshot = Some(*snapshot);
                    self.origin = Some(origin);
                    self.problem = None;
                    // Keep the plot of the selected and the pinned processes current.
                    let selected = self.selected.filter(|_| self.plot_open);
                    for &(pid, start_time) in selected.iter().chain(self.pinned.iter()) {
                        let _ = self.requests.send(Request::History { pid, start_time });
                    }
                    if selected.is_some() {
                        let since_unix_ms = self.system_history.last().map_or(0, |s| s.unix_ms);
                        let _ = self.requests.send(Request::SystemHistory { since_unix_ms });
                    }
                }
                Update::SystemHistory(samples) => {
                    let last = self.system_history.last().map_or(0, |s| s.unix_ms);
                    self.system_history
                        .extend(samples.into_iter().filter(|s| s.unix_ms > last));
                    let excess = self.system_history.len().saturating_sub(MAX_SYSTEM_SAMPLES);
                    self.system_history.drain(..excess);
                }
                Update::Detail(Ok(detail)) => {
                    self.detail_error = None;
                    self.details.insert((detail.pid, detail.start_time), detail);
                }
                Update::Detail(Err(e)) => self.detail_error = Some(e),
                Update::History(series) => {
                    let key = (series.pid, series.start_time);
                    let merged = match self.histories.remove(&key) {
                        Some(old) => merge_history(old, series),
                        None => series,
                    };
                    self.histories.insert(key, merged);
                }
                Update::Problem(p) => self.problem = Some(p),
            }
        }
        while let Ok(message) = self.exports.1.try_recv() {
            self.status_message = Some(message);
        }
    }

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

    pub fn ui(&mut self, ui: &mut egui::Ui) {
        if std::env::var_os("MEMMON_TRACE_REPAINT").is_some() {
            // Why this frame was drawn (egui records the callers that asked for it).
            eprintln!(
                "memmon: frame {} causes {:?}",
                ui.ctx().cumulative_frame_nr(),
                ui.ctx().repaint_causes()
            );
        }
        self.keyboard_ui(ui.ctx());
        egui::Panel::top("status").show(ui, |ui| self.status_ui(ui));
        if let Some(text) = self.banner_text() {
            let can_retry = matches!(
                &self.origin,
                Some(Origin::Embedded {
                    can_retry: true,
                    ..
                }) | Some(Origin::Unavailable { .. })
            );
            egui::Panel::top("banner").show(ui, |ui| {
                ui.horizontal_wrapped(|ui| {
                    ui.colored_label(ui.visuals().warn_fg_color, text);
                    if can_retry
                        && ui
                            .button("Try again")
                            .on_hover_text(
                                "Ask the helper again; your system may ask for a password",
                            )
                            .clicked()
                    {
                        self.commands.push(Command::RetryHelper);
                    }
                });
            });
        }
        if self.plot_open && self.selected.is_some() {
            egui::Panel::bottom("plot")
                .resizable(true)
                .default_size(260.0)
                .show(ui, |ui| self.plot_ui(ui));
        }
        egui::CentralPanel::default().show(ui, |ui| self.grid_ui(ui));
        self.oom_ui(ui.ctx());
        if self
            .snapshot
            .as_ref()
            .is_some_and(|s| !s.processes.is_empty())
        {
            self.frames_with_data += 1;
            if self.frames_with_data == 1 && std::env::var_os("MEMMON_TRACE_STARTUP").is_some() {
                eprintln!(
                    "memmon: first populated frame {} ms after launch",
                    self.launched.elapsed().as_millis()
                );
            }
        }
        if self.frames_with_data == 2
            && let Some(path) = self.screenshot_then_quit.clone()
        {
            self.export(ui.ctx(), ExportWhat::Window, Some(path), true);
        }
    }

    /// Applies the frame's commands (called after drawing).
    pub fn apply_commands(&mut self, ctx: &egui::Context) {
        for command in std::mem::take(&mut self.commands) {
            match command {
                Command::Sort(key) => {
                    if self.settings.sort == key {
                        self.settings.descending = !self.settings.descending;
                    } else {
                        self.settings.sort = key;
                        // Names and PIDs read naturally A→Z / low→high; sizes largest first.
                        self.settings.descending = !matches!(key, SortKey::Name | SortKey::Pid);
                    }
                    let _ = self.requests.send(Request::View {
                        key: self.settings.sort,
                        descending: self.settings.descending,
                    });
                }
                Command::Select(pid, start_time) => {
                    self.selected = Some((pid, start_time));
                    self.plot_open = true;
                    let _ = self.requests.send(Request::History { pid, start_time });
                }
                Command::OpenPlot => {
                    if let Some((pid, start_time)) = self.selected {
                        self.plot_open = true;
                        let _ = self.requests.send(Request::History { pid, start_time });
                    }
                }
                Command::TogglePin(pid, start_time, name) => {
                    if let Some(i) = self.pinned.iter().position(|&p| p == (pid, start_time)) {
                        self.pinned.remove(i);
                        self.settings.pinned_names.retain(|n| n != &name);
                    } else {
                        self.pinned.push((pid, start_time));
                        if !self.settings.pinned_names.contains(&name) {
                            self.settings.pinned_names.push(name);
                        }
                        let _ = self.requests.send(Request::History { pid, start_time });
                    }
                }
                Command::Interval(ms) => {
                    self.settings.interval_ms = ms;
                    let _ = self
                        .requests
                        .send(Request::Interval(Duration::from_millis(ms)));
                }
                Command::Export(what) => self.export(ctx, what, None, false),
                Command::ExportData(what) => self.export_data(what, None),
                Command::MeasureDetail(pid, start_time) => {
                    self.detail_error = None;
                    let _ = self.requests.send(Request::Detail { pid, start_time });
                }
                Command::HighRes(pid, start_time, enable) => {
                    self.high_res = enable.then_some((pid, start_time));
                    let _ = self.requests.send(Request::HighRes {
                        pid,
                        start_time,
                        enable,
                    });
                }
                Command::RetryHelper => {
                    self.problem = None;
                    let _ = self.requests.send(Request::RetryHelper);
                }
                Command::Quit => ctx.send_viewport_cmd(egui::ViewportCommand::Close),
            }
        }
    }

    /// The list of OOM kills; clicking one opens the victim's last history.
    fn oom_ui(&mut self, ctx: &egui::Context) {
        if !self.oom_open {
            return;
        }
        let kills = self
            .snapshot
            .as_ref()
            .map(|s| s.oom_kills.clone())
            .unwrap_or_default();
        let mut open = true;
        egui::Window::new("OOM kills")
            .open(&mut open)
            .default_width(460.0)
            .show(ctx, |ui| {
                if kills.is_empty() {
                    ui.label("No OOM kill since the collector started.");
                }
                for kill in kills.iter().rev() {
                    let size = kill
                        .last_rss_kb
                        .or(kill.rss_at_kill_kb)
                        .map_or_else(|| "—".to_owned(), format::kib);
                    let how = match kill.source {
                        OomSource::Tracepoint => "",
                        OomSource::Counter => " (inferred)",
                    };
                    let text = format!(
                        "{} — {} (PID {}), last RSS {size}{how}",
                        format::clock(kill.unix_ms),
                        kill.name,
                        kill.pid
                    );
                    match kill.start_time {
                        Some(start_time) => {
                            if ui
                                .link(text)
                                .on_hover_text("Show its history up to the kill")
                                .clicked()
                            {
                                self.commands.push(Command::Select(kill.pid, start_time));
                            }
                        }
                        None => {
                            ui.label(text);
                        }
                    }
                }
            });
        self.oom_open = open;
    }

    fn banner_text(&self) -> Option<String> {
        if let Some(p) = &self.problem {
            return Some(p.clone());
        }
        match (&self.origin, &self.snapshot) {
            (Some(Origin::Embedded { why, .. }), _) => Some(format!(
                "Embedded mode: reading /proc as you, without allocation tracking, because {why}. \
                 Install and authorise memmon-helper for Full mode."
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

    pub(crate) fn mode_label(&self) -> String {
        match (&self.origin, &self.snapshot) {
            (Some(Origin::Helper), Some(s)) => s.mode.label().to_owned(),
            (Some(Origin::Embedded { .. }), _) => Mode::Embedded.label().to_owned(),
            (Some(Origin::Unavailable { .. }), _) => "Helper unavailable".to_owned(),
            _ => "Starting…".to_owned(),
        }
    }

    fn status_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal_wrapped(|ui| {
            ui.strong(format!("Mode: {}", self.mode_label()));
            ui.separator();
            let current = self.settings.interval_ms;
            egui::ComboBox::from_label("Refresh")
                .selected_text(format!("{:.1} s", current as f64 / 1000.0))
                .show_ui(ui, |ui| {
                    for ms in INTERVALS_MS {
                        if ui
                            .selectable_label(current == ms, format!("{:.1} s", ms as f64 / 1000.0))
                            .clicked()
                        {
                            self.commands.push(Command::Interval(ms));
                        }
                    }
                });
            if let Some(s) = &self.snapshot {
                ui.separator();
                ui.label(format!("{} processes", s.process_count));
                ui.separator();
                ui.label(format!("Updated {}", format::clock(s.taken_at_unix_ms)));
                ui.separator();
                ui.label(format!(
                    "Memory {} / {}",
                    format::kib(s.system.used_kb()),
                    format::kib(s.system.total_kb)
                ));
                ui.label(format!(
                    "Swap {} / {}",
                    format::kib(s.system.swap_used_kb()),
                    format::kib(s.system.swap_total_kb)
                ));
                if let Some(p) = &s.pressure
                    && let Some(some) = p.some_avg10
                {
                    ui.label(format!("Pressure {some:.1}%")).on_hover_text(
                        "PSI: share of the last 10 s in which some task stalled on memory",
                    );
                }
                if !s.oom_kills.is_empty()
                    && ui
                        .button(format!("OOM kills: {}", s.oom_kills.len()))
                        .on_hover_text("Processes the kernel's OOM killer ended")
                        .clicked()
                {
                    self.oom_open = true;
                }
                if s.bpf_drops > 0 {
                    ui.colored_label(
                        ui.visuals().warn_fg_color,
                        format!("{} eBPF events lost", s.bpf_drops),
                    );
                }
            }
            ui.separator();
            ui.label("Filter:");
            let filter = ui.add(
                egui::TextEdit::singleline(&mut self.filter)
                    .hint_text("name or PID")
                    .desired_width(140.0),
            );
            if std::mem::take(&mut self.focus_filter) {
                filter.request_focus();
            }
            if ui
                .button("Export PNG")
                .on_hover_text("Save a screenshot of the window (Ctrl+S)")
                .clicked()
            {
                self.commands.push(Command::Export(ExportWhat::Window));
            }
            if ui
                .button("Export CSV")
                .on_hover_text("Save the grid's rows as CSV")
                .clicked()
            {
                self.commands.push(Command::ExportData(DataExport::GridCsv));
            }
            if ui
                .button("Export JSON")
                .on_hover_text("Save the snapshot with the grid's rows as JSON")
                .clicked()
            {
                self.commands
                    .push(Command::ExportData(DataExport::GridJson));
            }
            if let Some(m) = &self.status_message {
                ui.label(m);
            }
        });
    }

    fn grid_ui(&mut self, ui: &mut egui::Ui) {
        // Rows are borrowed, not cloned: the grid is drawn every frame.
        let mut commands = Vec::new();
        let scroll_to_selected = std::mem::take(&mut self.scroll_to_selected);
        let rows = self.visible_rows();
        let selected_index = self
            .selected
            .and_then(|sel| rows.iter().position(|r| (r.pid, r.start_time) == sel));
        let mut table = TableBuilder::new(ui)
            .striped(true)
            .cell_layout(egui::Layout::right_to_left(egui::Align::Center))
            .column(Column::auto().at_least(60.0))
            .column(Column::initial(160.0).at_least(80.0).clip(true))
            .columns(Column::auto().at_least(80.0), COLUMNS.len() - 2);
        if scroll_to_selected && let Some(i) = selected_index {
            table = table.scroll_to_row(i, None);
        }
        let (sort, descending) = (self.settings.sort, self.settings.descending);
        table
            .header(22.0, |mut header| {
                for (title, tip, key) in COLUMNS {
                    let arrow = if key == sort {
                        if descending { " v" } else { " ^" }
                    } else {
                        ""
                    };
                    // The title is the click target (left-aligned so it stays inside its cell;
                    // egui_extras' cell responses lag a column behind, so they are not used).
                    header.col(|ui| {
                        let title = egui::RichText::new(format!("{title}{arrow}")).strong();
                        ui.with_layout(egui::Layout::left_to_right(egui::Align::Center), |ui| {
                            let label = ui
                                .add(egui::Label::new(title).sense(egui::Sense::click()))
                                .on_hover_text(tip);
                            if label.clicked() {
                                commands.push(Command::Sort(key));
                            }
                        });
                    });
                }
            })
            .body(|body| {
                body.rows(20.0, rows.len(), |mut row| {
                    let index = row.index();
                    let Some(r) = rows.get(index) else { return };
                    row.set_selected(selected_index == Some(index));
                    let a = r.alloc.as_ref();
                    let dash = || "—".to_owned();
                    let cells = [
                        r.pid.to_string(),
                        r.name.clone(),
                        r.rss_kb.map_or_else(dash, format::kib),
                        r.virtual_kb.map_or_else(dash, format::kib),
                        r.peak_rss_kb.map_or_else(dash, format::kib),
                        a.map_or_else(dash, |a| format::signed_bytes(a.net_mapped)),
                        a.map_or_else(dash, |a| a.mmap_count.to_string()),
                        a.map_or_else(dash, |a| a.munmap_count.to_string()),
                        a.map_or_else(dash, |a| a.brk_count.to_string()),
                        r.swap_kb.map_or_else(dash, format::kib),
                        r.growth
                            .and_then(|g| g.headline())
                            .map_or_else(dash, format::rate),
                    ];
                    let sustained = r.growth.is_some_and(|g| g.sustained);
                    let mut clicked = false;
                    for (i, text) in cells.into_iter().enumerate() {
                        row.col(|ui| {
                            let label = if i == 1 {
                                ui.with_layout(
                                    egui::Layout::left_to_right(egui::Align::Center),
                                    |ui| ui.add(egui::Label::new(text).sense(egui::Sense::click())),
                                )
                                .inner
                            } else if i == COLUMNS.len() - 1 && sustained {
                                let red =
                                    egui::RichText::new(text).color(ui.visuals().error_fg_color);
                                ui.add(egui::Label::new(red).sense(egui::Sense::click()))
                                    .on_hover_text("Sustained growth: no fall back for 2 minutes")
                            } else {
                                ui.add(egui::Label::new(text).sense(egui::Sense::click()))
                            };
                            clicked |= label.clicked();
                        });
                    }
                    if clicked {
                        commands.push(Command::Select(r.pid, r.start_time));
                    }
                });
            });
        if rows.is_empty() {
            ui.label(if self.snapshot.is_none() {
                "Waiting for the first scan…"
            } else {
                "No process matches."
            });
        }
        drop(rows);
        self.commands.extend(commands);
    }

    fn keyboard_ui(&mut self, ctx: &egui::Context) {
        let typing = ctx.memory(|m| m.focused().is_some());
        let rows: Vec<(u32, u64)> = self
            .visible_rows()
            .iter()
            .map(|r| (r.pid, r.start_time))
            .collect();
        ctx.input_mut(|input| {
            if input.consume_key(Modifiers::COMMAND, Key::F) {
                self.focus_filter = true;
            }
            if input.consume_key(Modifiers::COMMAND, Key::S) {
                self.commands.push(Command::Export(ExportWhat::Window));
            }
            if input.consume_key(Modifiers::COMMAND, Key::Q) {
                self.commands.push(Command::Quit);
            }
            if typing {
                return;
            }
            if input.consume_key(Modifiers::NONE, Key::Q) {
                self.commands.push(Command::Quit);
            }
            if input.consume_key(Modifiers::NONE, Key::Enter) {
                self.commands.push(Command::OpenPlot);
            }
            let current = self
                .selected
                .and_then(|sel| rows.iter().position(|r| *r == sel));
            let last = rows.len().saturating_sub(1);
            let target = if input.consume_key(Modifiers::NONE, Key::ArrowDown) {
                Some(current.map_or(0, |i| (i + 1).min(last)))
            } else if input.consume_key(Modifiers::NONE, Key::ArrowUp) {
                Some(current.map_or(0, |i| i.saturating_sub(1)))
            } else if input.consume_key(Modifiers::NONE, Key::PageDown) {
                Some(current.map_or(0, |i| (i + 20).min(last)))
            } else if input.consume_key(Modifiers::NONE, Key::PageUp) {
                Some(current.map_or(0, |i| i.saturating_sub(20)))
            } else if input.consume_key(Modifiers::NONE, Key::Home) {
                Some(0)
            } else if input.consume_key(Modifiers::NONE, Key::End) {
                Some(last)
            } else {
                None
            };
            if let Some(&(pid, start_time)) = target.and_then(|i| rows.get(i)) {
                self.selected = Some((pid, start_time));
                self.scroll_to_selected = true;
            }
        });
    }
}

/// A newer history of the same process, keeping what only the older one has: after the helper
/// restarts, its history begins anew, and the plot must not lose what was already drawn.
pub fn merge_history(old: HistorySeries, mut new: HistorySeries) -> HistorySeries {
    let first_new = new.samples.first().map_or(u64::MAX, |s| s.unix_ms);
    let mut samples: Vec<_> = old
        .samples
        .into_iter()
        .filter(|s| s.unix_ms < first_new)
        .collect();
    samples.append(&mut new.samples);
    new.samples = samples;
    let first_spike = new.spikes.first().map_or(u64::MAX, |s| s.unix_ms);
    let mut spikes: Vec<_> = old
        .spikes
        .into_iter()
        .filter(|s| s.unix_ms < first_spike)
        .collect();
    spikes.append(&mut new.spikes);
    new.spikes = spikes;
    new
}

impl eframe::App for MemmonApp {
    fn logic(&mut self, _ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.drain_updates();
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        MemmonApp::ui(self, ui);
        let ctx = ui.ctx().clone();
        self.apply_commands(&ctx);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.settings);
    }
}

#[cfg(test)]
mod tests {
    use memmon_common::series::HistorySample;

    use super::*;

    fn series(times: &[u64]) -> HistorySeries {
        HistorySeries {
            pid: 1,
            start_time: 2,
            samples: times
                .iter()
                .map(|&t| HistorySample {
                    unix_ms: t,
                    rss_kb: t,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_restarted_helpers_shorter_history_keeps_the_older_samples() {
        let merged = merge_history(series(&[10, 20, 30]), series(&[25, 40]));
        let times: Vec<u64> = merged.samples.iter().map(|s| s.unix_ms).collect();
        assert_eq!(times, [10, 20, 25, 40]);
        // A refresh of the same history changes nothing.
        let same = merge_history(series(&[10, 20]), series(&[10, 20, 30]));
        assert_eq!(same, series(&[10, 20, 30]));
    }
}
