//! The Processes / Apps switch above the table (Ctrl+1 / Ctrl+2).

use eframe::egui::{self, Key, Modifiers};

use crate::{command::Command, model::Model, settings::View};

#[derive(Default)]
pub struct ViewTabs;

impl ViewTabs {
    pub fn ui(&mut self, ui: &mut egui::Ui, model: &Model, commands: &mut Vec<Command>) {
        let current = model.settings.view;
        ui.input_mut(|input| {
            for (key, view) in [(Key::Num1, View::Processes), (Key::Num2, View::Apps)] {
                if input.consume_key(Modifiers::COMMAND, key) && view != current {
                    commands.push(Command::ShowView(view));
                }
            }
        });
        ui.horizontal(|ui| {
            let tabs = [
                (View::Processes, "Processes", "One row per process (Ctrl+1)"),
                (
                    View::Apps,
                    "Apps",
                    "One row per app: processes grouped by the systemd unit they run in, with \
                     the kernel's own count of the app's memory (Ctrl+2)",
                ),
            ];
            for (view, label, tip) in tabs {
                if ui
                    .selectable_label(current == view, label)
                    .on_hover_text(tip)
                    .clicked()
                    && current != view
                {
                    commands.push(Command::ShowView(view));
                }
            }
            if current == View::Processes {
                ui.separator();
                if ui
                    .selectable_label(model.settings.process_tree, "Tree")
                    .on_hover_text(
                        "Each process under its parent, with the totals of what is below it (T)",
                    )
                    .clicked()
                {
                    commands.push(Command::ToggleTree);
                }
            }
            if current == View::Apps
                && let Some(apps) = &model.apps.snapshot
            {
                ui.separator();
                let shown = apps.apps.len();
                let all = apps.app_count as usize;
                ui.label(if shown < all {
                    format!("{shown} of {all} apps")
                } else {
                    format!("{all} apps")
                });
            }
            // The table shown is the last one that came; say why no newer one did.
            if current == View::Apps
                && let Some(e) = &model.apps.error
            {
                ui.separator();
                ui.colored_label(ui.visuals().warn_fg_color, format!("Apps not updated: {e}"));
            }
        });
    }
}
