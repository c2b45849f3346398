//! The call-site window ("Find where it allocates"): choose a source and a duration, start a
//! session in the helper, and watch the call tree fill in — the allocating functions first, each
//! expanding to its callers — with copy-as-text and folded-stack export.

use eframe::egui;
use memmon_common::callsites::{
    CallSiteReport, CallSiteSource, DEFAULT_SESSION_SECONDS, MAX_SESSION_SECONDS, SessionState,
};

use crate::{
    callsite_tree::{Node, bottom_up},
    command::{Command, Export},
    format,
    model::Model,
};

/// Frames per call site in "Copy as text".
const COPY_FRAMES: usize = 16;
/// Roots shown (the rest are summed in one line).
const MAX_ROOTS: usize = 50;

pub struct CallSitesWindow {
    source: CallSiteSource,
    seconds: u32,
    /// The tree of the report it was built from (rebuilt when a new report arrives).
    tree: Vec<Node>,
    built_from: Option<(u32, u64, usize)>,
}

impl Default for CallSitesWindow {
    fn default() -> Self {
        CallSitesWindow {
            source: CallSiteSource::Mappings,
            seconds: DEFAULT_SESSION_SECONDS,
            tree: Vec::new(),
            built_from: None,
        }
    }
}

impl CallSitesWindow {
    /// The tree as last drawn (for tests).
    pub fn tree(&self) -> &[Node] {
        &self.tree
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, model: &Model, commands: &mut Vec<Command>) {
        let cs = &model.callsites;
        let Some((key, name)) = &cs.target else {
            return;
        };
        if let Some(report) = &cs.report {
            let stamp = (report.pid, report.elapsed_ms, report.sites.len());
            if self.built_from != Some(stamp) {
                self.tree = bottom_up(report);
                self.built_from = Some(stamp);
            }
        } else {
            self.tree.clear();
            self.built_from = None;
        }
        if cs.is_running() || cs.starting {
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(500));
        }
        let mut open = true;
        egui::Window::new(format!("Where {name} (PID {}) allocates", key.pid))
            .id(egui::Id::unique("memmon-callsites"))
            .open(&mut open)
            .default_size([720.0, 520.0])
            .show(ui.ctx(), |ui| {
                self.controls_ui(ui, model, commands);
                ui.separator();
                if let Some(e) = &cs.error {
                    ui.colored_label(ui.visuals().warn_fg_color, e);
                }
                if let Some(report) = &cs.report {
                    summary_ui(ui, report);
                    ui.horizontal(|ui| {
                        if ui
                            .button("Copy as text")
                            .on_hover_text("The ranked call sites with their frames")
                            .clicked()
                        {
                            commands.push(Command::CopyText(report.text(COPY_FRAMES)));
                        }
                        if ui
                            .button("Export folded stacks")
                            .on_hover_text(
                                "One line per call site (outermost frame first) with its \
                                 outstanding bytes: flamegraph.pl, inferno and speedscope read it",
                            )
                            .clicked()
                        {
                            commands.push(Command::Export(Export::CallSitesFolded, None));
                        }
                    });
                    ui.separator();
                    egui::ScrollArea::vertical()
                        .auto_shrink([false, false])
                        .show(ui, |ui| tree_ui(ui, &self.tree, report));
                }
            });
        if !open {
            commands.push(Command::CloseCallSites);
        }
    }

    fn controls_ui(&mut self, ui: &mut egui::Ui, model: &Model, commands: &mut Vec<Command>) {
        let cs = &model.callsites;
        let busy = cs.is_running() || cs.starting;
        ui.add_enabled_ui(!busy, |ui| {
            for source in CallSiteSource::ALL {
                let title = match source {
                    CallSiteSource::Mappings => "Mappings (any allocator, cheap)",
                    CallSiteSource::Heap => "Heap calls (malloc/free, precise, sampled)",
                };
                ui.radio_value(&mut self.source, source, title);
                ui.indent(source.as_str(), |ui| ui.weak(source.describe()));
            }
            ui.horizontal(|ui| {
                ui.label("For");
                ui.add(
                    egui::DragValue::new(&mut self.seconds)
                        .range(1..=MAX_SESSION_SECONDS)
                        .suffix(" s"),
                );
            });
        });
        ui.horizontal(|ui| {
            if busy {
                let (elapsed, total) = cs
                    .report
                    .as_ref()
                    .map_or((0, u64::from(self.seconds) * 1000), |r| {
                        (r.elapsed_ms, r.duration_ms.max(1))
                    });
                ui.add(
                    egui::ProgressBar::new(elapsed as f32 / total as f32)
                        .desired_width(220.0)
                        .text(if cs.starting {
                            "starting…".to_owned()
                        } else {
                            format!("{} of {} s", elapsed / 1000, total / 1000)
                        }),
                );
                if ui.add_enabled(!cs.starting, egui::Button::new("Stop")).clicked() {
                    commands.push(Command::StopCallSites);
                }
            } else {
                let start = ui.add_enabled(model.is_full(), egui::Button::new("Start"));
                let start = start.on_disabled_hover_text(
                    "Needs the helper with eBPF (Full mode): it attaches programs to the process \
                     as root",
                );
                if start.clicked() {
                    commands.push(Command::StartCallSites {
                        source: self.source,
                        seconds: self.seconds,
                    });
                }
                ui.weak("Attaches only while it runs; another user's process asks for an admin password.");
            }
        });
    }
}

fn summary_ui(ui: &mut egui::Ui, r: &CallSiteReport) {
    let state = match &r.state {
        SessionState::Running => "collecting".to_owned(),
        SessionState::Finished(why) => format!("finished: {why}"),
        SessionState::Failed(why) => format!("failed: {why}"),
    };
    ui.label(format!(
        "{} outstanding of {} allocated since the start ({state})",
        format::bytes(r.outstanding_bytes as f64),
        format::bytes(r.allocated_bytes as f64),
    ));
    if r.source == CallSiteSource::Heap {
        ui.weak(format!(
            "Heap calls, 1 in {}{} recorded: {} allocator calls, {} frees (probed: {})",
            r.sample_every,
            if r.adaptive {
                " (adapts to the call rate)"
            } else {
                ""
            },
            r.stats.allocs_seen,
            r.stats.frees_seen,
            r.probed.join(", ")
        ));
    }
    let lost = r.stats.lost_records + r.stats.lost_blocks;
    if lost > 0 {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            format!("{lost} records were lost: the figures undercount"),
        );
    }
}

fn tree_ui(ui: &mut egui::Ui, roots: &[Node], report: &CallSiteReport) {
    if roots.is_empty() {
        ui.weak(if report.is_running() {
            "No allocation yet."
        } else {
            "No allocation during the session."
        });
        return;
    }
    let total = report.outstanding_bytes.max(1);
    for (i, node) in roots.iter().take(MAX_ROOTS).enumerate() {
        node_ui(ui, node, total, egui::Id::unique(("cs-root", i)), i < 3);
    }
    if roots.len() > MAX_ROOTS {
        let rest = roots[MAX_ROOTS..]
            .iter()
            .fold(0u64, |sum, n| sum.saturating_add(n.outstanding_bytes));
        ui.weak(format!(
            "{} more functions with {} outstanding",
            roots.len() - MAX_ROOTS,
            format::bytes(rest as f64)
        ));
    }
}

fn node_ui(ui: &mut egui::Ui, node: &Node, total: u64, id: egui::Id, open: bool) {
    let line = format!(
        "{:>10}  {:>5.1} %  {}",
        format::bytes(node.outstanding_bytes as f64),
        node.outstanding_bytes as f64 * 100.0 / total as f64,
        node.label
    );
    let hover = hover_text(node);
    if node.children.is_empty() {
        ui.horizontal(|ui| {
            ui.add_space(ui.spacing().indent);
            ui.monospace(line).on_hover_text(hover);
        });
        return;
    }
    egui::CollapsingHeader::new(egui::RichText::new(line).monospace())
        .id_salt(id)
        .default_open(open)
        .show(ui, |ui| {
            for (i, child) in node.children.iter().enumerate() {
                node_ui(ui, child, total, id.with(i), false);
            }
        })
        .header_response
        .on_hover_text(hover);
}

fn hover_text(node: &Node) -> String {
    let mut text = format!(
        "{}\n{} allocated in {} calls",
        node.label,
        format::bytes(node.allocated_bytes as f64),
        node.alloc_count
    );
    if let Some(location) = &node.location {
        text.push_str(&format!("\nat {location}"));
    }
    if let Some(module) = &node.module {
        text.push_str(&format!("\nin {module}"));
    }
    if let Some(via) = &node.via {
        text.push_str(&format!("\nvia {via}"));
    }
    text
}
