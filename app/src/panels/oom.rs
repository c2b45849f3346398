//! The OOM-kill list (a window): each kill with its victim's last RSS; clicking one opens the
//! victim's history up to the kill.

use eframe::egui;
use memmon_common::diagnostics::OomSource;

use crate::{command::Command, format, model::Model};

#[derive(Default)]
pub struct OomList {
    pub open: bool,
}

impl OomList {
    pub fn ui(&mut self, ui: &mut egui::Ui, model: &Model, commands: &mut Vec<Command>) {
        if !self.open {
            return;
        }
        let kills = model
            .snapshot
            .as_ref()
            .map(|s| s.oom_kills.as_slice())
            .unwrap_or_default();
        egui::Window::new("OOM kills")
            .open(&mut self.open)
            .default_width(460.0)
            .show(ui.ctx(), |ui| {
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
                    match kill.key() {
                        Some(key) => {
                            if ui
                                .link(text)
                                .on_hover_text("Show its history up to the kill")
                                .clicked()
                            {
                                commands.push(Command::Select(key));
                            }
                        }
                        None => {
                            ui.label(text);
                        }
                    }
                }
            });
    }
}
