//! The Apps view: one row per app (icon, name, kind and the numeric columns of the apps column
//! table in `memmon_common::apps::AppColumn`), sortable by header, each expandable to list its
//! processes. A click selects the app for the plot panel; a process row selects that process.

use eframe::egui::{self, Align, Key, Modifiers, Sense};
use egui_extras::TableBuilder;
use memmon_common::{
    apps::{AppColumn, AppRow},
    column::{Unit, Value},
    snapshot::ProcessRow,
};

use super::grid::{HEADER_HEIGHT, ROW_HEIGHT};
use crate::{
    command::Command,
    format,
    icons::{Icon, IconCache, letter_colour},
    model::{Model, Subject, key_of, memory_note},
};

/// Points an app's icon takes in its row.
const ICON_SIZE: f32 = 16.0;
/// How far a process row is indented under its app.
const INDENT: f32 = 30.0;

#[derive(Default)]
pub struct AppsPanel {
    /// Icon textures (view state: what is drawn, bounded).
    pub icons: IconCache,
    /// Set by keyboard navigation: bring the selected row into view once.
    scroll_to_selected: bool,
    /// Where each header title was drawn last frame (for tests of the alignment).
    title_rects: Vec<(AppColumn, egui::Rect)>,
}

/// One line of the table: an app, or one of an expanded app's processes.
#[derive(Clone, Copy)]
enum Line<'a> {
    App(&'a AppRow),
    Process(&'a ProcessRow),
    /// Expanded, its processes not here yet.
    Loading,
}

/// A cell as the GUI shows it: sizes with their unit ([`AppColumn::unit`]), rates per minute, counts and other numbers as the column table writes them, "—" when absent.
pub fn cell_text(c: AppColumn, row: &AppRow) -> String {
    let text = match c.value(row) {
        None => return "—".to_owned(),
        Some(Value::Int(n)) if c.unit() == Unit::KiB => format::kib(u64::try_from(n).unwrap_or(0)),
        Some(Value::Rate(r)) if c.unit() == Unit::BytesPerMin => format::rate(r),
        _ => c.text(row),
    };
    // The headline is the processes' RSS sum where the cgroup holds more than the app.
    if c == AppColumn::Memory && row.memory_covers.is_some() {
        format!("Σ {text}")
    } else {
        text
    }
}

/// A process's figure under an app column (blank where the column is about cgroups).
fn process_cell_text(c: AppColumn, p: &ProcessRow) -> String {
    let kib = |v: Option<u64>| v.map_or_else(|| "—".to_owned(), format::kib);
    match c {
        AppColumn::Rss => kib(p.rss_kb),
        AppColumn::Swap => kib(p.swap_kb),
        AppColumn::Growth => p
            .growth
            .and_then(|g| g.shown())
            .map_or_else(String::new, format::rate),
        AppColumn::Kind => "process".to_owned(),
        _ => String::new(),
    }
}

/// The narrowest a column may be: its widest value ("1023.9 MiB", "+121.5 MiB/min").
fn min_width(c: AppColumn) -> f32 {
    match c {
        AppColumn::Name => 150.0,
        _ if !c.numeric() => 80.0,
        _ if c.unit() == Unit::BytesPerMin => 110.0,
        _ if c.unit() == Unit::KiB => 78.0,
        _ => 60.0,
    }
}

impl AppsPanel {
    /// Where the title of a column's header was drawn in the last frame.
    pub fn title_rect(&self, column: AppColumn) -> Option<egui::Rect> {
        self.title_rects
            .iter()
            .find(|(c, _)| *c == column)
            .map(|(_, r)| *r)
    }

    /// Lines the table has now (apps and the processes of expanded ones), for the plot split.
    pub fn line_count(model: &Model) -> usize {
        lines(model, &model.apps.visible_rows(&model.filter)).len()
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, model: &Model, commands: &mut Vec<Command>) {
        self.icons.begin_frame();
        let rows = model.apps.visible_rows(&model.filter);
        self.keys_ui(ui.ctx(), model, &rows, commands);
        let lines = lines(model, &rows);
        ui.spacing_mut().scroll = egui::style::ScrollStyle::solid();
        egui::ScrollArea::horizontal()
            .id_salt("apps sideways")
            .auto_shrink(false)
            .show(ui, |ui| {
                self.table_ui(ui, model, &lines, commands);
                if lines.is_empty() {
                    let text = match (&model.apps.error, &model.apps.snapshot) {
                        (Some(e), _) => format!("No apps: {e}"),
                        (None, None) => "Waiting for the first apps table…".to_owned(),
                        (None, Some(_)) => "No app matches.".to_owned(),
                    };
                    ui.label(text);
                }
            });
    }

    fn table_ui(
        &mut self,
        ui: &mut egui::Ui,
        model: &Model,
        lines: &[Line<'_>],
        commands: &mut Vec<Command>,
    ) {
        let mut table = TableBuilder::new(ui)
            .id_salt("apps table")
            .striped(true)
            .cell_layout(egui::Layout::right_to_left(Align::Center));
        for c in AppColumn::ALL {
            let width = if c == AppColumn::Name {
                egui_extras::Column::remainder()
            } else {
                egui_extras::Column::auto()
            };
            table = table.column(width.at_least(min_width(c)).clip(!c.numeric()));
        }
        let selected = model.selected.as_ref();
        if std::mem::take(&mut self.scroll_to_selected)
            && let Some(i) = lines.iter().position(|l| is_selected(*l, selected))
        {
            table = table.scroll_to_row(i, None);
        }
        let sorted = (model.settings.app_sort, model.settings.app_descending);
        self.title_rects.clear();
        let (title_rects, icons) = (&mut self.title_rects, &mut self.icons);
        table
            .header(HEADER_HEIGHT, |mut header| {
                for c in AppColumn::ALL {
                    header.col(|ui| {
                        let descending = (c.sort_key() == Some(sorted.0)).then_some(sorted.1);
                        let (response, title) =
                            super::table::header_cell_ui(ui, c.title(), c.numeric(), descending);
                        title_rects.push((c, title));
                        let tip = match c.sort_key() {
                            Some(_) => c.tooltip().to_owned(),
                            None => format!("{} (not sortable)", c.tooltip()),
                        };
                        if response.on_hover_text(tip).clicked()
                            && let Some(key) = c.sort_key()
                        {
                            commands.push(Command::SortApps(key));
                        }
                    });
                }
            })
            .body(|body| {
                body.rows(ROW_HEIGHT, lines.len(), |mut row| {
                    let Some(&line) = lines.get(row.index()) else {
                        return;
                    };
                    row.set_selected(is_selected(line, selected));
                    let mut clicked = false;
                    for c in AppColumn::ALL {
                        row.col(|ui| {
                            clicked |= match line {
                                Line::App(app) => app_cell_ui(ui, c, app, model, icons, commands),
                                Line::Process(p) => process_cell_ui(ui, c, p),
                                Line::Loading => {
                                    if c == AppColumn::Name {
                                        left(ui, |ui| {
                                            ui.add_space(INDENT);
                                            ui.weak("Loading processes…");
                                        });
                                    }
                                    false
                                }
                            };
                        });
                    }
                    match line {
                        Line::App(app) if clicked => commands.push(Command::SelectApp {
                            id: app.id.clone(),
                            open_plot: true,
                        }),
                        Line::Process(p) if clicked => commands.push(Command::Select(key_of(p))),
                        _ => {}
                    }
                    if let Line::Process(p) = line {
                        row.response().container_context_menu(|ui| {
                            super::end_dialog::process_menu_ui(ui, p, commands);
                        });
                    }
                });
            });
    }

    /// ↑/↓, Page Up/Down, Home and End move between apps; → lists an app's processes, ←
    /// hides them; Enter opens the plot.
    fn keys_ui(
        &mut self,
        ctx: &egui::Context,
        model: &Model,
        rows: &[&AppRow],
        commands: &mut Vec<Command>,
    ) {
        if ctx.memory(|m| m.focused().is_some()) {
            return; // typing in the filter
        }
        let selected = model.selected.as_ref().and_then(Subject::app);
        let current = selected.and_then(|id| rows.iter().position(|r| r.id == id));
        let last = rows.len().saturating_sub(1);
        ctx.input_mut(|input| {
            if input.consume_key(Modifiers::NONE, Key::Enter) {
                commands.push(Command::OpenPlot);
            }
            if let Some(id) = selected {
                let expanded = model.apps.is_expanded(id);
                if (input.consume_key(Modifiers::NONE, Key::ArrowRight) && !expanded)
                    || (input.consume_key(Modifiers::NONE, Key::ArrowLeft) && expanded)
                {
                    commands.push(Command::ToggleExpanded(id.to_owned()));
                }
            }
            let target = super::table::row_navigation(input, current, last);
            if let Some(r) = target.and_then(|i| rows.get(i)) {
                commands.push(Command::SelectApp {
                    id: r.id.clone(),
                    open_plot: false,
                });
                self.scroll_to_selected = true;
            }
        });
    }
}

/// The table's lines: each app, then the processes of the expanded ones.
fn lines<'a>(model: &'a Model, rows: &[&'a AppRow]) -> Vec<Line<'a>> {
    let mut lines = Vec::with_capacity(rows.len());
    for &app in rows {
        lines.push(Line::App(app));
        if model.apps.is_expanded(&app.id) {
            if app.processes.is_empty() && app.process_count > 0 {
                lines.push(Line::Loading);
            }
            lines.extend(app.processes.iter().map(Line::Process));
        }
    }
    lines
}

fn is_selected(line: Line<'_>, selected: Option<&Subject>) -> bool {
    match (line, selected) {
        (Line::App(app), Some(Subject::App(id))) => app.id == *id,
        (Line::Process(p), Some(Subject::Process(key))) => key_of(p) == *key,
        _ => false,
    }
}

fn left<R>(ui: &mut egui::Ui, add: impl FnOnce(&mut egui::Ui) -> R) -> R {
    ui.with_layout(egui::Layout::left_to_right(Align::Center), add)
        .inner
}

/// One cell of an app's row; true when it was clicked (select the app).
fn app_cell_ui(
    ui: &mut egui::Ui,
    c: AppColumn,
    app: &AppRow,
    model: &Model,
    icons: &mut IconCache,
    commands: &mut Vec<Command>,
) -> bool {
    match c {
        AppColumn::Name => left(ui, |ui| {
            ui.spacing_mut().item_spacing.x = 4.0;
            expander_ui(ui, app, model.apps.is_expanded(&app.id), commands);
            icon_ui(ui, app, icons, commands);
            ui.add(egui::Label::new(app.name.as_str()).sense(Sense::click()))
                .on_hover_text(&app.id)
                .clicked()
        }),
        _ if !c.numeric() => {
            let text = cell_text(c, app);
            let label = left(ui, |ui| {
                ui.add(egui::Label::new(text).sense(Sense::click()))
            });
            let label = match (c, memory_note(app)) {
                (AppColumn::Kind, Some(note)) => label.on_hover_text(note),
                _ => label,
            };
            label.clicked()
        }
        _ => {
            let text = cell_text(c, app);
            let sustained = c == AppColumn::Growth && app.growth.is_some_and(|g| g.sustained);
            let rich = if sustained {
                egui::RichText::new(text).color(ui.visuals().error_fg_color)
            } else {
                egui::RichText::new(text)
            };
            let label = ui.add(egui::Label::new(rich).sense(Sense::click()));
            let label = match (c, memory_note(app)) {
                (AppColumn::Memory, Some(note)) => label.on_hover_text(note),
                _ if sustained => {
                    label.on_hover_text("Sustained growth: no fall back for 2 minutes")
                }
                _ => label,
            };
            label.clicked()
        }
    }
}

fn process_cell_ui(ui: &mut egui::Ui, c: AppColumn, p: &ProcessRow) -> bool {
    if c == AppColumn::Name {
        return left(ui, |ui| {
            ui.add_space(INDENT);
            let text = format!("{} ({})", p.name, p.pid);
            ui.add(egui::Label::new(text).sense(Sense::click()))
                .clicked()
        });
    }
    let text = process_cell_text(c, p);
    if text.is_empty() {
        return false;
    }
    let label = egui::Label::new(egui::RichText::new(text).weak()).sense(Sense::click());
    if c.numeric() {
        ui.add(label).clicked()
    } else {
        left(ui, |ui| ui.add(label).clicked())
    }
}

/// The ▶/▼ in front of an app with processes: lists or hides them.
fn expander_ui(ui: &mut egui::Ui, app: &AppRow, expanded: bool, commands: &mut Vec<Command>) {
    let (rect, response) = ui.allocate_exact_size(egui::vec2(12.0, ROW_HEIGHT), Sense::click());
    if app.process_count == 0 {
        return;
    }
    let label = if expanded {
        format!("Hide the processes of {}", app.name)
    } else {
        format!("Show the processes of {}", app.name)
    };
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
    let response = response.on_hover_text(&label);
    if ui.is_rect_visible(rect) {
        let color = if response.hovered() {
            ui.visuals().strong_text_color()
        } else {
            ui.visuals().text_color()
        };
        super::table::disclosure_triangle(ui, rect, expanded, color);
    }
    if response.clicked() {
        commands.push(Command::ToggleExpanded(app.id.clone()));
    }
}

/// The app's icon, or its first letter on a colour of its own.
fn icon_ui(ui: &mut egui::Ui, app: &AppRow, icons: &mut IconCache, commands: &mut Vec<Command>) {
    let size = egui::vec2(ICON_SIZE, ICON_SIZE);
    if let Some(name) = &app.icon {
        match icons.get(ui.ctx(), name) {
            Icon::Texture(id) => {
                ui.add(egui::Image::new((id, size)));
                return;
            }
            Icon::Load => commands.push(Command::LoadIcon(name.clone())),
            Icon::Letter => {}
        }
    }
    let (rect, _) = ui.allocate_exact_size(size, Sense::hover());
    if !ui.is_rect_visible(rect) {
        return;
    }
    let letter = app
        .name
        .chars()
        .find(|c| c.is_alphanumeric())
        .map_or('?', |c| c.to_uppercase().next().unwrap_or(c));
    let painter = ui.painter();
    painter.rect_filled(rect, 3.0, letter_colour(&app.id));
    painter.text(
        rect.center(),
        egui::Align2::CENTER_CENTER,
        letter,
        egui::FontId::proportional(11.0),
        egui::Color32::WHITE,
    );
}
