//! The status bar: mode, refresh interval, system memory, OOM kills, the filter and the export
//! menu — on one line at the default width (what does not fit is the last export's message,
//! which is shortened).

use eframe::egui::{self, Key, Modifiers};

use crate::{
    command::{Command, Export},
    format,
    model::Model,
    settings::{INTERVALS_MS, View},
};

/// No view state of its own: the filter's text is the model's, its cursor egui's.
#[derive(Default)]
pub struct StatusBar;

impl StatusBar {
    pub fn ui(&mut self, ui: &mut egui::Ui, model: &Model, commands: &mut Vec<Command>) {
        ui.horizontal(|ui| {
            ui.strong(format!("Mode: {}", model.mode_label()));
            ui.separator();
            let current = model.settings.interval_ms;
            let seconds = |ms: u64| format!("{:.1} s", ms as f64 / 1000.0);
            egui::ComboBox::from_label("Refresh")
                .selected_text(seconds(current))
                .width(60.0)
                .show_ui(ui, |ui| {
                    for ms in INTERVALS_MS {
                        if ui.selectable_label(current == ms, seconds(ms)).clicked() {
                            commands.push(Command::Interval(ms));
                        }
                    }
                });
            if let Some(s) = &model.snapshot {
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
                    commands.push(Command::ShowOomKills);
                }
                if s.bpf_drops > 0 {
                    ui.colored_label(
                        ui.visuals().warn_fg_color,
                        format!("{} eBPF events lost", s.bpf_drops),
                    );
                }
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                export_menu_ui(ui, commands);
                filter_ui(ui, model, commands);
                if let Some(m) = &model.status_message {
                    ui.add(egui::Label::new(m.as_str()).truncate())
                        .on_hover_text(m.as_str());
                }
                // How apps were grouped (systemd units or process trees, which cgroup files).
                if model.settings.view == View::Apps
                    && let Some(apps) = &model.apps.snapshot
                {
                    ui.add(egui::Label::new(apps.grouping.as_str()).truncate())
                        .on_hover_text(format!(
                            "{} (grouping took {} µs)",
                            apps.grouping, apps.grouping_us
                        ));
                }
            });
        });
    }
}

fn filter_ui(ui: &mut egui::Ui, model: &Model, commands: &mut Vec<Command>) {
    let mut text = model.filter.clone();
    let edit = ui.add(
        egui::TextEdit::singleline(&mut text)
            .hint_text(match model.settings.view {
                View::Processes => "name or PID",
                View::Apps => "app name or id",
            })
            .desired_width(120.0),
    );
    ui.label("Filter:");
    if edit.changed() {
        commands.push(Command::Filter(text));
    }
    if ui.input_mut(|i| i.consume_key(Modifiers::COMMAND, Key::F)) {
        edit.request_focus();
    }
}

fn export_menu_ui(ui: &mut egui::Ui, commands: &mut Vec<Command>) {
    ui.menu_button("Export", |ui| {
        let items = [
            (
                "Window as PNG",
                "Save a screenshot of the window (Ctrl+S)",
                Export::WindowPng,
            ),
            (
                "Grid as CSV",
                "Save the grid's rows as CSV",
                Export::GridCsv,
            ),
            (
                "Grid as JSON",
                "Save the snapshot with the grid's rows as JSON",
                Export::GridJson,
            ),
            (
                "Apps as CSV",
                "Save the apps table's rows as CSV (the Apps view's columns, all apps it lists)",
                Export::AppsCsv,
            ),
        ];
        for (label, tip, what) in items {
            if ui.button(label).on_hover_text(tip).clicked() {
                commands.push(Command::Export(what, None));
                ui.close();
            }
        }
    })
    .response
    .on_hover_text(
        "Save the window as PNG, the grid as CSV or JSON, or the apps as CSV, in your Pictures \
         folder",
    );
}
