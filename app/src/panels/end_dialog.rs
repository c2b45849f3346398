//! "End process": the row menu's entry (grid and tree) and the confirmation dialog. The dialog
//! names the process and its memory; on confirmation the app asks it to quit (SIGTERM), and if
//! it is still running [`FORCE_QUIT_AFTER`] later the dialog offers "Force quit" (SIGKILL).
//!
//! Drawing only queues [`Command`]s; the app applies them after the frame through
//! [`EndProcessDialog::ask`] and [`EndProcessDialog::send`], which call [`crate::end_process`].
//! Only the user's own processes (same real UID as the app) can be chosen.

use std::time::Instant;

use eframe::egui;
use memmon_common::{process_key::ProcessKey, snapshot::ProcessRow};

use crate::{
    command::Command,
    end_process::{self, EndError, FORCE_QUIT_AFTER, Signal, Target},
    format,
    model::Model,
};

/// The row menu (right click on a process): "End process…", disabled with the reason for
/// another user's process.
pub fn process_menu_ui(ui: &mut egui::Ui, row: &ProcessRow, commands: &mut Vec<Command>) {
    let allowed = end_process::may_end(row);
    let button = ui.add_enabled(allowed.is_ok(), egui::Button::new("End process…"));
    match &allowed {
        Ok(()) => {
            if button
                .on_hover_text("Ask it to quit (Delete); force it if it does not")
                .clicked()
            {
                commands.push(Command::AskToEnd(row.key()));
                ui.close();
            }
        }
        Err(why) => {
            let why = capitalised(why);
            button.on_disabled_hover_text(format!("{why}: you can only end your own processes"));
            ui.weak(why);
        }
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The process being ended and how far it got.
struct Ending {
    key: ProcessKey,
    name: String,
    rss_kb: Option<u64>,
    phase: Phase,
}

enum Phase {
    /// Asking the user.
    Confirm,
    /// Not the user's process (Delete on another's row).
    Refused(String),
    /// SIGTERM sent at `since`.
    Asked {
        target: Target,
        since: Instant,
    },
    /// SIGKILL sent.
    Forced {
        target: Target,
    },
    Ended(Signal),
    Failed(String),
}

#[derive(Default)]
pub struct EndProcessDialog {
    ending: Option<Ending>,
}

impl EndProcessDialog {
    pub fn is_open(&self) -> bool {
        self.ending.is_some()
    }

    /// Opens the confirmation for this process (a queued [`Command::AskToEnd`]).
    pub fn ask(&mut self, row: &ProcessRow) {
        let phase = match end_process::may_end(row) {
            Ok(()) => Phase::Confirm,
            Err(why) => Phase::Refused(format!("it is {why}: you can only end your own processes")),
        };
        self.ending = Some(Ending {
            key: row.key(),
            name: row.name.clone(),
            rss_kb: row.rss_kb,
            phase,
        });
    }

    /// Sends the signal (a queued [`Command::EndProcess`]): SIGTERM opens the process anew,
    /// SIGKILL goes through the pidfd SIGTERM went through.
    pub fn send(&mut self, key: ProcessKey, signal: Signal) {
        let Some(ending) = self.ending.as_mut().filter(|e| e.key == key) else {
            return; // the dialog was closed meanwhile
        };
        let phase = std::mem::replace(&mut ending.phase, Phase::Confirm);
        ending.phase = match (signal, phase) {
            (Signal::Kill, Phase::Asked { target, .. } | Phase::Forced { target }) => {
                match target.signal(Signal::Kill) {
                    Ok(()) => Phase::Forced { target },
                    Err(EndError::Gone) => Phase::Ended(Signal::Term),
                    Err(e) => Phase::Failed(e.to_string()),
                }
            }
            (signal, _) => match end_process::end(key, signal) {
                Ok(target) if signal == Signal::Kill => Phase::Forced { target },
                Ok(target) => Phase::Asked {
                    target,
                    since: Instant::now(),
                },
                Err(e) => Phase::Failed(e.to_string()),
            },
        };
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, _model: &Model, commands: &mut Vec<Command>) {
        let Some(ending) = &mut self.ending else {
            return;
        };
        // Polling the pidfd only reads: whether the process has exited yet.
        let exited = match &ending.phase {
            Phase::Asked { target, .. } => target.has_exited().then_some(Signal::Term),
            Phase::Forced { target } => target.has_exited().then_some(Signal::Kill),
            _ => None,
        };
        if let Some(signal) = exited {
            ending.phase = Phase::Ended(signal);
        }
        if matches!(ending.phase, Phase::Asked { .. } | Phase::Forced { .. }) {
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(100));
        }
        let who = format!("“{}” (PID {})", ending.name, ending.key.pid);
        let mut close = false;
        let modal = egui::Modal::new(egui::Id::unique("memmon-end-process")).show(ui.ctx(), |ui| {
            ui.set_max_width(420.0);
            ui.heading("End a process");
            ui.add_space(6.0);
            match &ending.phase {
                Phase::Confirm => {
                    ui.label(format!("End {who}?"));
                    let rss = ending.rss_kb.map_or_else(|| "—".to_owned(), format::kib);
                    ui.label(format!("It uses {rss} of memory (RSS)."));
                    ui.weak(
                        "It is asked to quit (SIGTERM) and may save its work; what it has not \
                         saved may be lost.",
                    );
                    ui.add_space(8.0);
                    ui.horizontal(|ui| {
                        if ui.button("End process").clicked() {
                            commands.push(Command::EndProcess(ending.key, Signal::Term));
                        }
                        close |= ui.button("Cancel").clicked();
                    });
                }
                Phase::Refused(why) | Phase::Failed(why) => {
                    ui.label(format!("Could not end {who}: {why}."));
                    ui.add_space(8.0);
                    close |= ui.button("Close").clicked();
                }
                Phase::Asked { since, .. } => {
                    let waited = since.elapsed();
                    if waited < FORCE_QUIT_AFTER {
                        ui.horizontal(|ui| {
                            ui.spinner();
                            ui.label(format!("Asked {who} to quit (SIGTERM)…"));
                        });
                        ui.add_space(8.0);
                        close |= ui.button("Close").clicked();
                    } else {
                        ui.label(format!(
                            "{who} is still running {} s after it was asked to quit.",
                            waited.as_secs()
                        ));
                        ui.weak("Force quit ends it at once (SIGKILL): it cannot save anything.");
                        ui.add_space(8.0);
                        ui.horizontal(|ui| {
                            if ui.button("Force quit").clicked() {
                                commands.push(Command::EndProcess(ending.key, Signal::Kill));
                            }
                            close |= ui.button("Close").clicked();
                        });
                    }
                }
                Phase::Forced { .. } => {
                    ui.horizontal(|ui| {
                        ui.spinner();
                        ui.label(format!("Forcing {who} to quit (SIGKILL)…"));
                    });
                    ui.add_space(8.0);
                    close |= ui.button("Close").clicked();
                }
                Phase::Ended(signal) => {
                    ui.label(format!("{who} has ended ({}).", signal.name()));
                    ui.add_space(8.0);
                    close |= ui.button("Close").clicked();
                }
            }
        });
        if close || modal.should_close() {
            self.ending = None;
        }
    }
}
