//! The process grid: the sortable top-100 table, its header (the whole cell sorts, titles
//! aligned like their numbers) and keyboard navigation. In Embedded mode the allocation columns,
//! which could only show "—", are left out (the banner says so).

use eframe::egui::{self, Align, Key, Modifiers, Sense};
use egui_extras::{Column, TableBuilder};
use memmon_common::snapshot::{ProcessRow, SortKey};

use crate::{
    command::Command,
    format,
    model::{Model, key_of},
};

pub const HEADER_HEIGHT: f32 = 22.0;
pub const ROW_HEIGHT: f32 = 20.0;
/// Rows the grid keeps visible however far the plot is dragged open.
pub const MIN_VISIBLE_ROWS: usize = 5;

/// The height the grid needs to show `rows` rows (with its header and margins).
pub fn height_for_rows(rows: usize) -> f32 {
    HEADER_HEIGHT + rows as f32 * ROW_HEIGHT + 24.0
}

/// One column: what it shows, how it is aligned, and whether it needs allocation tracking.
struct GridColumn {
    key: SortKey,
    title: &'static str,
    tip: &'static str,
    align: Align,
    needs_allocation_tracking: bool,
}

const fn col(key: SortKey, title: &'static str, tip: &'static str) -> GridColumn {
    GridColumn {
        key,
        title,
        tip,
        align: Align::Max,
        needs_allocation_tracking: false,
    }
}

const fn alloc(key: SortKey, title: &'static str, tip: &'static str) -> GridColumn {
    GridColumn {
        needs_allocation_tracking: true,
        ..col(key, title, tip)
    }
}

const COLUMNS: [GridColumn; 11] = [
    col(SortKey::Pid, "PID", "Process ID (thread-group id)"),
    GridColumn {
        align: Align::Min,
        ..col(SortKey::Name, "Name", "Process name (comm)")
    },
    col(
        SortKey::Rss,
        "RSS",
        "Resident set size: memory in RAM now (VmRSS)",
    ),
    col(
        SortKey::Virt,
        "Virtual",
        "Virtual address space size (VmSize)",
    ),
    col(
        SortKey::Peak,
        "Peak RSS",
        "The highest RSS this process reached (VmHWM)",
    ),
    alloc(
        SortKey::Net,
        "Net mapped",
        "Net mapped: bytes mapped minus unmapped (mmap/munmap/brk) since tracking began — not RSS",
    ),
    alloc(
        SortKey::Mmap,
        "Mmap#",
        "Successful mmap calls since tracking began",
    ),
    alloc(
        SortKey::Munmap,
        "Munmap#",
        "Successful munmap calls since tracking began",
    ),
    alloc(
        SortKey::Brk,
        "Brk",
        "brk calls that moved the program break",
    ),
    col(SortKey::Swap, "Swap", "Memory swapped out (VmSwap)"),
    col(
        SortKey::Growth,
        "Growth",
        "RSS growth per minute (Theil–Sen over 5 min, 1 min while less is known), ranked across \
         all processes; red: grown without falling back for 2 minutes or more",
    ),
];

/// A cell's text.
fn cell_text(key: SortKey, r: &ProcessRow) -> String {
    let dash = || "—".to_owned();
    let a = r.alloc.as_ref();
    match key {
        SortKey::Pid => r.pid.to_string(),
        SortKey::Name => r.name.clone(),
        SortKey::Rss => r.rss_kb.map_or_else(dash, format::kib),
        SortKey::Virt => r.virtual_kb.map_or_else(dash, format::kib),
        SortKey::Peak => r.peak_rss_kb.map_or_else(dash, format::kib),
        SortKey::Net => a.map_or_else(dash, |a| format::signed_bytes(a.net_mapped)),
        SortKey::Mmap => a.map_or_else(dash, |a| a.mmap_count.to_string()),
        SortKey::Munmap => a.map_or_else(dash, |a| a.munmap_count.to_string()),
        SortKey::Brk => a.map_or_else(dash, |a| a.brk_count.to_string()),
        SortKey::Swap => r.swap_kb.map_or_else(dash, format::kib),
        SortKey::Growth => r
            .growth
            .and_then(|g| g.headline())
            .map_or_else(dash, format::rate),
        _ => dash(),
    }
}

#[derive(Default)]
pub struct Grid {
    /// Set by keyboard navigation: bring the selected row into view once.
    scroll_to_selected: bool,
    /// Where each header title was drawn last frame (for tests of the alignment).
    title_rects: Vec<(SortKey, egui::Rect)>,
}

impl Grid {
    /// Where the title of a column's header was drawn in the last frame.
    pub fn title_rect(&self, key: SortKey) -> Option<egui::Rect> {
        self.title_rects
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, r)| *r)
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, model: &Model, commands: &mut Vec<Command>) {
        let rows = model.visible_rows();
        self.keys_ui(ui.ctx(), model, &rows, commands);
        let selected_index = model
            .selected
            .and_then(|sel| rows.iter().position(|r| key_of(r) == sel));
        let shown = model.allocation_columns_shown();
        let columns: Vec<&GridColumn> = COLUMNS
            .iter()
            .filter(|c| shown || !c.needs_allocation_tracking)
            .collect();
        let mut table = TableBuilder::new(ui)
            .id_salt(("grid", shown))
            .striped(true)
            .cell_layout(egui::Layout::right_to_left(Align::Center));
        for c in &columns {
            table = table.column(match c.key {
                SortKey::Pid => Column::auto().at_least(60.0),
                SortKey::Name => Column::initial(180.0).at_least(80.0).clip(true),
                _ => Column::auto().at_least(80.0),
            });
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
                for c in &columns {
                    header.col(|ui| {
                        let descending = (c.key == sorted.0).then_some(sorted.1);
                        let (response, title) = header_cell_ui(ui, c, descending);
                        title_rects.push((c.key, title));
                        if response.on_hover_text(c.tip).clicked() {
                            commands.push(Command::Sort(c.key));
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
                    for c in &columns {
                        row.col(|ui| {
                            let text = cell_text(c.key, r);
                            let label = if c.align == Align::Min {
                                ui.with_layout(egui::Layout::left_to_right(Align::Center), |ui| {
                                    ui.add(egui::Label::new(text).sense(Sense::click()))
                                })
                                .inner
                            } else if c.key == SortKey::Growth && sustained {
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
                });
            });
        if rows.is_empty() {
            ui.label(if model.snapshot.is_none() {
                "Waiting for the first scan…"
            } else {
                "No process matches."
            });
        }
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
            .selected
            .and_then(|sel| rows.iter().position(|r| key_of(r) == sel));
        let last = rows.len().saturating_sub(1);
        ctx.input_mut(|input| {
            if input.consume_key(Modifiers::NONE, Key::Enter) {
                commands.push(Command::OpenPlot);
            }
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
            if let Some(r) = target.and_then(|i| rows.get(i)) {
                commands.push(Command::MoveSelection(key_of(r)));
                self.scroll_to_selected = true;
            }
        });
    }
}

/// A header cell: the whole cell is the click target; the title sits where the column's values
/// do (numbers right, names left) and the sort arrow beside it, away from the values' edge.
/// Returns the cell's response and where the title was drawn.
fn header_cell_ui(
    ui: &mut egui::Ui,
    c: &GridColumn,
    descending: Option<bool>,
) -> (egui::Response, egui::Rect) {
    const ARROW: f32 = 14.0;
    let text_color = ui.visuals().strong_text_color();
    let galley = ui.painter().layout_no_wrap(
        c.title.to_owned(),
        egui::TextStyle::Body.resolve(ui.style()),
        text_color,
    );
    let desired = galley.size().x + ARROW + 4.0;
    let width = if ui.is_sizing_pass() {
        desired
    } else {
        ui.available_width().max(desired)
    };
    let (rect, response) =
        ui.allocate_exact_size(egui::vec2(width, ui.available_height()), Sense::click());
    let label = match descending {
        None => c.title.to_owned(),
        Some(true) => format!("{}, sorted descending", c.title),
        Some(false) => format!("{}, sorted ascending", c.title),
    };
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
    let (title_x, arrow_x) = match c.align {
        Align::Min => (rect.left(), rect.left() + galley.size().x + ARROW / 2.0),
        _ => (
            rect.right() - galley.size().x,
            rect.right() - galley.size().x - ARROW / 2.0,
        ),
    };
    let title = egui::Rect::from_min_size(
        egui::pos2(title_x, rect.center().y - galley.size().y / 2.0),
        galley.size(),
    );
    if ui.is_rect_visible(rect) {
        let painter = ui.painter();
        if response.hovered() {
            painter.rect_filled(rect, 2.0, ui.visuals().widgets.hovered.weak_bg_fill);
        }
        painter.galley(title.min, galley, text_color);
        if let Some(descending) = descending {
            let (x, y) = (arrow_x, rect.center().y);
            let points = if descending {
                vec![
                    egui::pos2(x - 4.0, y - 2.5),
                    egui::pos2(x + 4.0, y - 2.5),
                    egui::pos2(x, y + 3.0),
                ]
            } else {
                vec![
                    egui::pos2(x - 4.0, y + 2.5),
                    egui::pos2(x + 4.0, y + 2.5),
                    egui::pos2(x, y - 3.0),
                ]
            };
            painter.add(egui::Shape::convex_polygon(
                points,
                text_color,
                egui::Stroke::NONE,
            ));
        }
    }
    (response, title)
}
