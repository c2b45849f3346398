//! The process grid: the sortable top-100 table, its header (the whole cell sorts, titles
//! aligned like their numbers) and keyboard navigation. In Embedded mode the allocation columns,
//! which could only show "—", are left out (the banner says so). What each column shows comes
//! from the column table in `memmon_common::column`.

use eframe::egui::{self, Align, Key, Modifiers, Sense};
use egui_extras::TableBuilder;
use memmon_common::{
    column::{self, Column, Unit},
    snapshot::{ProcessRow, SortKey},
};

use crate::{
    command::Command,
    model::{Model, key_of},
    panels::end_dialog,
};

pub const HEADER_HEIGHT: f32 = 22.0;
pub const ROW_HEIGHT: f32 = 20.0;
/// Rows the grid keeps visible however far the plot is dragged open.
pub const MIN_VISIBLE_ROWS: usize = 5;

/// The height the grid needs to show `rows` rows (with its header and margins).
pub fn height_for_rows(rows: usize) -> f32 {
    HEADER_HEIGHT + rows as f32 * ROW_HEIGHT + 24.0
}

#[derive(Default)]
pub struct Grid {
    /// Set by keyboard navigation: bring the selected row into view once.
    scroll_to_selected: bool,
    /// Where each header title was drawn last frame (for tests of the alignment).
    title_rects: Vec<(Column, egui::Rect)>,
}

impl Grid {
    /// Where the title of a column's header was drawn in the last frame.
    pub fn title_rect(&self, key: SortKey) -> Option<egui::Rect> {
        let column = key.column();
        self.title_rects
            .iter()
            .find(|(c, _)| *c == column)
            .map(|(_, r)| *r)
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, model: &Model, commands: &mut Vec<Command>) {
        let rows = model.visible_rows();
        self.keys_ui(ui.ctx(), model, &rows, commands);
        let selected_index = model
            .selected_process()
            .and_then(|sel| rows.iter().position(|r| key_of(r) == sel));
        let shown = model.allocation_columns_shown();
        let columns: Vec<Column> = Column::listed_columns()
            .filter(|c| shown || !c.full_mode_only())
            .collect();
        // A scroll bar beside the rows, not over the last column's values.
        ui.spacing_mut().scroll = egui::style::ScrollStyle::solid();
        // Narrower than the columns need (about 1,100 pt in Full mode), the grid scrolls
        // sideways rather than cutting the last columns' numbers off at the window's edge.
        egui::ScrollArea::horizontal()
            .id_salt(("grid sideways", shown))
            .auto_shrink(false)
            .show(ui, |ui| {
                self.table_ui(ui, model, &rows, &columns, selected_index, commands);
                if rows.is_empty() {
                    ui.label(if model.snapshot.is_none() {
                        "Waiting for the first scan…"
                    } else {
                        "No process matches."
                    });
                }
            });
    }

    fn table_ui(
        &mut self,
        ui: &mut egui::Ui,
        model: &Model,
        rows: &[&ProcessRow],
        columns: &[Column],
        selected_index: Option<usize>,
        commands: &mut Vec<Command>,
    ) {
        let shown = model.allocation_columns_shown();
        let mut table = TableBuilder::new(ui)
            .id_salt(("grid", shown))
            .striped(true)
            .cell_layout(egui::Layout::right_to_left(Align::Center));
        for c in columns {
            // Widths that fit the widest value of the unit ("+121.5 MiB/min", "1023.9 MiB"),
            // since an auto column sizes to the rows of its first frame only; the name takes
            // what is left, so the table spans the window with the numbers together.
            let at_least = match (c.align(), c.unit()) {
                (column::Align::Left, _) => 180.0,
                (_, Unit::Id) => 60.0,
                (_, Unit::BytesPerMin) => 120.0,
                _ => 90.0,
            };
            let width = if c.align() == column::Align::Left {
                egui_extras::Column::remainder()
            } else {
                egui_extras::Column::auto()
            };
            table = table.column(
                width
                    .at_least(at_least)
                    .clip(c.align() == column::Align::Left),
            );
        }
        if std::mem::take(&mut self.scroll_to_selected)
            && let Some(i) = selected_index
        {
            table = table.scroll_to_row(i, None);
        }
        let sorted = (model.settings.sort, model.settings.descending);
        self.title_rects.clear();
        let title_rects = &mut self.title_rects;
        table
            .header(HEADER_HEIGHT, |mut header| {
                for &c in columns {
                    header.col(|ui| {
                        let descending = (c.sort_key() == Some(sorted.0)).then_some(sorted.1);
                        let (response, title) = super::table::header_cell_ui(
                            ui,
                            c.title(),
                            c.align() == column::Align::Right,
                            descending,
                        );
                        title_rects.push((c, title));
                        if response.on_hover_text(c.tooltip()).clicked()
                            && let Some(key) = c.sort_key()
                        {
                            commands.push(Command::Sort(key));
                        }
                    });
                }
            })
            .body(|body| {
                body.rows(ROW_HEIGHT, rows.len(), |mut row| {
                    let index = row.index();
                    let Some(r) = rows.get(index) else { return };
                    row.set_selected(selected_index == Some(index));
                    let sustained = r.growth.is_some_and(|g| g.sustained);
                    let mut clicked = false;
                    for &c in columns {
                        row.col(|ui| {
                            let text = c.display(r);
                            let label = if c.align() == column::Align::Left {
                                ui.with_layout(egui::Layout::left_to_right(Align::Center), |ui| {
                                    ui.add(egui::Label::new(text).sense(Sense::click()))
                                })
                                .inner
                            } else if c == Column::Growth && sustained {
                                let red =
                                    egui::RichText::new(text).color(ui.visuals().error_fg_color);
                                ui.add(egui::Label::new(red).sense(Sense::click()))
                                    .on_hover_text("Sustained growth: no fall back for 2 minutes")
                            } else {
                                ui.add(egui::Label::new(text).sense(Sense::click()))
                            };
                            clicked |= label.clicked();
                        });
                    }
                    if clicked {
                        commands.push(Command::Select(key_of(r)));
                    }
                    row.response()
                        .container_context_menu(|ui| end_dialog::process_menu_ui(ui, r, commands));
                });
            });
    }

    /// Arrow keys, Page Up/Down, Home and End move the selection; Enter opens the plot.
    fn keys_ui(
        &mut self,
        ctx: &egui::Context,
        model: &Model,
        rows: &[&ProcessRow],
        commands: &mut Vec<Command>,
    ) {
        if ctx.memory(|m| m.focused().is_some()) {
            return; // typing in the filter
        }
        let current = model
            .selected_process()
            .and_then(|sel| rows.iter().position(|r| key_of(r) == sel));
        let last = rows.len().saturating_sub(1);
        ctx.input_mut(|input| {
            if input.consume_key(Modifiers::NONE, Key::Enter) {
                commands.push(Command::OpenPlot);
            }
            let target = super::table::row_navigation(input, current, last);
            if let Some(r) = target.and_then(|i| rows.get(i)) {
                commands.push(Command::MoveSelection(key_of(r)));
                self.scroll_to_selected = true;
            }
        });
    }
}
