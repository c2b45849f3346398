//! The Memory Monitor window: lays out the panels, feeds the [`Model`] with what the source
//! thread sends, and applies the frame's [`Command`]s after drawing — the one place where the
//! app has effects (requests to the source, files, the window).

use std::{
    path::PathBuf,
    sync::mpsc::{Receiver, Sender},
};

use eframe::egui::{self, Key, Modifiers};

use crate::{
    command::{Command, Export},
    export,
    icons::IconLoader,
    model::{Model, Subject},
    panels::{
        apps::AppsPanel, banner::Banner, callsites::CallSitesWindow, end_dialog::EndProcessDialog,
        grid::Grid, oom::OomList, plot, plot::PlotPanel, status_bar::StatusBar,
        tree::ProcessTreeView, view_tabs::ViewTabs,
    },
    settings::{Settings, View},
    source::{Request, Update},
};

pub struct MemmonApp {
    pub model: Model,
    /// What the panels asked for during this frame, applied by [`Self::apply_commands`].
    pub commands: Vec<Command>,
    status_bar: StatusBar,
    banner: Banner,
    grid: Grid,
    tree: ProcessTreeView,
    end_dialog: EndProcessDialog,
    plot: PlotPanel,
    oom: OomList,
    view_tabs: ViewTabs,
    apps: AppsPanel,
    callsites: CallSitesWindow,
    /// Finds and decodes app icons off the UI thread.
    icon_loader: IconLoader,
    updates: Receiver<Update>,
    requests: Sender<Request>,
    /// Requests the model asked for while eating updates; sent with the frame's commands.
    outbox: Vec<Request>,
    /// Screenshot results (they arrive after the frame that asked).
    exports: (Sender<String>, Receiver<String>),
    /// `--screenshot PATH`: export once the first data is shown, then quit.
    pub screenshot_then_quit: Option<PathBuf>,
    /// `--screenshot-after SECS`: not before this long after [`Self::launched`].
    pub screenshot_after: std::time::Duration,
    /// For `MEMMON_TRACE_STARTUP=1`: when the process started (set by `main`).
    pub launched: std::time::Instant,
    frames_with_data: u32,
    /// The plot panel's bounds and height in the last frame: (available, min, max, height).
    plot_layout: Option<(f32, f32, f32, f32)>,
}

impl MemmonApp {
    pub fn new(
        settings: Settings,
        updates: Receiver<Update>,
        requests: Sender<Request>,
    ) -> MemmonApp {
        let model = Model::new(settings);
        let outbox = model.initial_requests();
        MemmonApp {
            model,
            commands: Vec::new(),
            status_bar: StatusBar,
            banner: Banner,
            grid: Grid::default(),
            tree: ProcessTreeView::default(),
            end_dialog: EndProcessDialog::default(),
            plot: PlotPanel::default(),
            oom: OomList::default(),
            view_tabs: ViewTabs,
            apps: AppsPanel::default(),
            callsites: CallSitesWindow::default(),
            icon_loader: IconLoader::default(),
            updates,
            requests,
            outbox,
            exports: std::sync::mpsc::channel(),
            screenshot_then_quit: None,
            screenshot_after: std::time::Duration::ZERO,
            launched: std::time::Instant::now(),
            frames_with_data: 0,
            plot_layout: None,
        }
    }

    /// Selects `pid` (and opens its plot) once a snapshot lists it.
    pub fn select_pid_when_seen(&mut self, pid: u32) {
        self.model.select_pid_when_seen(pid);
    }

    /// The grid panel (its view state, for tests).
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// The process tree panel (its view state, for tests).
    pub fn tree(&self) -> &ProcessTreeView {
        &self.tree
    }

    /// The apps panel (its view state, for tests).
    pub fn apps_panel(&self) -> &AppsPanel {
        &self.apps
    }

    /// The call-site window (its view state, for tests).
    pub fn callsites_window(&self) -> &CallSitesWindow {
        &self.callsites
    }

    /// Where the process plot was drawn in the last frame.
    pub fn plot_rect(&self) -> Option<egui::Rect> {
        self.plot.plot_rect
    }

    /// Takes what the source thread sent, without blocking.
    pub fn drain_updates(&mut self) {
        while let Ok(update) = self.updates.try_recv() {
            if let Update::Snapshot { snapshot, origin } = &update
                && std::env::var_os("MEMMON_TRACE_SOURCE").is_some()
            {
                // For tests: where each snapshot came from and when it was taken.
                eprintln!(
                    "memmon: snapshot {} from {origin:?}",
                    snapshot.taken_at_unix_ms
                );
            }
            let follow_up = self.model.apply(update);
            self.outbox.extend(follow_up);
        }
        while let Ok(message) = self.exports.1.try_recv() {
            self.model.status_message = Some(message);
        }
        while let Some((icon, image)) = self.icon_loader.try_recv() {
            self.apps.icons.arrived(icon, image);
        }
    }

    /// Draws the frame; what the user asks for is queued in `self.commands`.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        if std::env::var_os("MEMMON_TRACE_REPAINT").is_some() {
            // Why this frame was drawn (egui records the callers that asked for it).
            eprintln!(
                "memmon: frame {} causes {:?}",
                ui.ctx().cumulative_frame_nr(),
                ui.ctx().repaint_causes()
            );
        }
        self.shortcuts(ui.ctx());
        let (model, commands) = (&self.model, &mut self.commands);
        egui::Panel::top("status").show(ui, |ui| self.status_bar.ui(ui, model, commands));
        if model.banner_text().is_some() {
            egui::Panel::top("banner").show(ui, |ui| self.banner.ui(ui, model, commands));
        }
        egui::Panel::top("views").show(ui, |ui| self.view_tabs.ui(ui, model, commands));
        let apps_view = model.settings.view == View::Apps;
        if model.plot_shown() {
            let available = ui.available_height();
            let rows = if apps_view {
                AppsPanel::line_count(model)
            } else {
                model.visible_rows().len()
            };
            let (default, min, max) = plot::split(available, rows, model.settings.plot_fraction);
            let panel = egui::Panel::bottom("plot")
                .resizable(true)
                .default_size(default)
                .min_size(min)
                .max_size(max)
                .show(ui, |ui| self.plot.ui(ui, model, commands));
            // The user moved the split (by pointer or assistive technology) when the panel's
            // size changed while its bounds did not; remember that share of the window.
            let now = (available, min, max, panel.response.rect.height());
            if let Some((a, lo, hi, height)) = self.plot_layout
                && (a, lo, hi) == (now.0, now.1, now.2)
                && (height - now.3).abs() > 0.5
                && available > 0.0
            {
                commands.push(Command::PlotSplit(now.3 / available));
            }
            self.plot_layout = Some(now);
        } else {
            self.plot_layout = None;
        }
        if apps_view {
            egui::CentralPanel::default().show(ui, |ui| self.apps.ui(ui, model, commands));
        } else if model.settings.process_tree {
            egui::CentralPanel::default().show(ui, |ui| self.tree.ui(ui, model, commands));
        } else {
            egui::CentralPanel::default().show(ui, |ui| self.grid.ui(ui, model, commands));
        }
        self.oom.ui(ui, model, commands);
        self.end_dialog.ui(ui, model, commands);
        self.callsites.ui(ui, model, commands);
        if model
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
        if self.frames_with_data >= 2
            && self.launched.elapsed() >= self.screenshot_after
            && let Some(path) = self.screenshot_then_quit.take()
        {
            self.commands.push(Command::ScreenshotThenQuit(path));
        }
    }

    /// Window-wide keys: Ctrl+S exports the window, Ctrl+Q (or Q outside the filter) quits;
    /// outside the filter T switches the process tree and Delete ends the selected process.
    fn shortcuts(&mut self, ctx: &egui::Context) {
        let typing = ctx.memory(|m| m.focused().is_some());
        let processes = self.model.settings.view == View::Processes;
        ctx.input_mut(|input| {
            if !typing && processes && input.consume_key(Modifiers::NONE, Key::T) {
                self.commands.push(Command::ToggleTree);
            }
            if !typing
                && !self.end_dialog.is_open()
                && let Some(key) = self.model.selected_process()
                && input.consume_key(Modifiers::NONE, Key::Delete)
            {
                self.commands.push(Command::AskToEnd(key));
            }
            if input.consume_key(Modifiers::COMMAND, Key::S) {
                self.commands.push(Command::Export(Export::WindowPng, None));
            }
            if input.consume_key(Modifiers::COMMAND, Key::Q)
                || (!typing && input.consume_key(Modifiers::NONE, Key::Q))
            {
                self.commands.push(Command::Quit);
            }
        });
    }

    /// Applies the frame's commands (called after drawing): the model changes, then the
    /// requests go to the source, files are written and the window is told what to do.
    pub fn apply_commands(&mut self, ctx: &egui::Context) {
        let mut requests = std::mem::take(&mut self.outbox);
        if !self.commands.is_empty() {
            // The frame was drawn before the change: show its result (user actions only).
            ctx.request_repaint();
        }
        let model = &mut self.model;
        for command in std::mem::take(&mut self.commands) {
            match command {
                Command::Sort(key) => requests.push(model.sort_by(key)),
                Command::Select(key) => requests.extend(model.select(key, true)),
                Command::MoveSelection(key) => requests.extend(model.select(key, false)),
                Command::OpenPlot => requests.extend(model.open_plot()),
                Command::ClosePlot => model.close_plot(),
                Command::Interval(ms) => requests.push(model.set_interval(ms)),
                Command::Filter(text) => model.filter = text,
                Command::TogglePin(subject, name) => {
                    requests.extend(model.toggle_pin(subject, name));
                }
                Command::ShowView(view) => requests.push(model.set_view(view)),
                Command::SortApps(key) => requests.push(model.sort_apps_by(key)),
                Command::SelectApp { id, open_plot } => {
                    requests.extend(model.select(Subject::App(id), open_plot));
                }
                Command::ToggleExpanded(id) => requests.push(model.toggle_expanded(&id)),
                Command::LoadIcon(icon) => {
                    let ctx = ctx.clone();
                    self.icon_loader
                        .request(icon, move || ctx.request_repaint());
                }
                Command::SystemMetric(metric) => model.settings.system_metric = metric,
                Command::PlotSplit(fraction) => model.settings.plot_fraction = fraction,
                Command::MeasureDetail(key) => requests.push(model.measure_detail(key)),
                Command::HighRes(key, on) => requests.push(model.set_high_res(key, on)),
                Command::RetryHelper => requests.push(model.retry_helper()),
                Command::ShowOomKills => self.oom.open = true,
                Command::ToggleTree => requests.push(model.toggle_tree()),
                Command::AskToEnd(key) => match model.row(key) {
                    Some(row) => self.end_dialog.ask(row),
                    None => {
                        model.status_message = Some(format!(
                            "PID {} is no longer listed: it has exited or left the top 100",
                            key.pid
                        ));
                    }
                },
                Command::EndProcess(key, signal) => self.end_dialog.send(key, signal),
                Command::OpenCallSites(key, name) => {
                    requests.extend(model.callsites.open(key, name));
                }
                Command::StartCallSites { source, seconds } => {
                    requests.extend(model.callsites.start(source, seconds));
                }
                Command::StopCallSites => requests.extend(model.callsites.stop_request()),
                Command::CloseCallSites => requests.extend(model.callsites.close()),
                Command::CopyText(text) => {
                    ctx.copy_text(text);
                    model.status_message = Some("Copied the call sites as text".into());
                }
                Command::Export(what, path) => {
                    let path = path.unwrap_or_else(|| export::default_path(what));
                    if what.is_picture() {
                        let crop = match what {
                            Export::PlotPng => self.plot.plot_rect,
                            _ => None,
                        };
                        export::request_png(
                            ctx,
                            export::Screenshot {
                                path,
                                crop,
                                quit_with_summary: None,
                                done: self.exports.0.clone(),
                            },
                        );
                    } else {
                        model.status_message = Some(export::write_data(model, what, &path));
                    }
                }
                Command::ScreenshotThenQuit(path) => export::request_png(
                    ctx,
                    export::Screenshot {
                        path,
                        crop: None,
                        quit_with_summary: Some(model.summary()),
                        done: self.exports.0.clone(),
                    },
                ),
                Command::Quit => ctx.send_viewport_cmd(egui::ViewportCommand::Close),
            }
        }
        for request in requests {
            // The source thread only ends with the app.
            let _ = self.requests.send(request);
        }
    }
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
        eframe::set_value(storage, eframe::APP_KEY, &self.model.settings);
    }
}
