//! The banner under the status bar: which mode is active and why, or the source's problem, with
//! "Try again" when the helper can be asked once more.

use eframe::egui;

use crate::{command::Command, model::Model};

/// No view state: what it shows is the model's.
#[derive(Default)]
pub struct Banner;

impl Banner {
    pub fn ui(&mut self, ui: &mut egui::Ui, model: &Model, commands: &mut Vec<Command>) {
        let Some(text) = model.banner_text() else {
            return;
        };
        ui.horizontal_wrapped(|ui| {
            ui.colored_label(ui.visuals().warn_fg_color, text);
            if model.can_retry()
                && ui
                    .button("Try again")
                    .on_hover_text("Ask the helper again; your system may ask for a password")
                    .clicked()
            {
                commands.push(Command::RetryHelper);
            }
        });
    }
}
