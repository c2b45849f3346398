//! What the process grid and the apps table share: the header cell (the whole cell sorts, the
//! title sits where the column's values do, with the sort arrow beside it).

use eframe::egui::{self, Sense};

/// A header cell: the whole cell is the click target; the title sits where the column's values
/// do (numbers right, names left) and the sort arrow beside it, away from the values' edge.
/// `descending` is the sort direction when the table is sorted by this column.
/// Returns the cell's response and where the title was drawn.
pub fn header_cell_ui(
    ui: &mut egui::Ui,
    title: &str,
    right_aligned: bool,
    descending: Option<bool>,
) -> (egui::Response, egui::Rect) {
    const ARROW: f32 = 14.0;
    let text_color = ui.visuals().strong_text_color();
    let galley = ui.painter().layout_no_wrap(
        title.to_owned(),
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
        None => title.to_owned(),
        Some(true) => format!("{title}, sorted descending"),
        Some(false) => format!("{title}, sorted ascending"),
    };
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
    let (title_x, arrow_x) = if right_aligned {
        (
            rect.right() - galley.size().x,
            rect.right() - galley.size().x - ARROW / 2.0,
        )
    } else {
        (rect.left(), rect.left() + galley.size().x + ARROW / 2.0)
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

/// The row a navigation key moves to: ↓/↑ one, Page Down/Up 20, Home/End the ends (keys are
/// consumed); `None` without one. `last` is the last row's index.
pub fn row_navigation(
    input: &mut egui::InputState,
    current: Option<usize>,
    last: usize,
) -> Option<usize> {
    use egui::{Key, Modifiers};
    let mut pressed = |key| input.consume_key(Modifiers::NONE, key);
    if pressed(Key::ArrowDown) {
        Some(current.map_or(0, |i| (i + 1).min(last)))
    } else if pressed(Key::ArrowUp) {
        Some(current.map_or(0, |i| i.saturating_sub(1)))
    } else if pressed(Key::PageDown) {
        Some(current.map_or(0, |i| (i + 20).min(last)))
    } else if pressed(Key::PageUp) {
        Some(current.map_or(0, |i| i.saturating_sub(20)))
    } else if pressed(Key::Home) {
        Some(0)
    } else if pressed(Key::End) {
        Some(last)
    } else {
        None
    }
}

/// The ▶ (closed) or ▼ (open) of an expandable row, centred in `rect`.
pub fn disclosure_triangle(ui: &egui::Ui, rect: egui::Rect, expanded: bool, color: egui::Color32) {
    let c = rect.center();
    let points = if expanded {
        vec![
            egui::pos2(c.x - 4.0, c.y - 2.5),
            egui::pos2(c.x + 4.0, c.y - 2.5),
            egui::pos2(c.x, c.y + 3.5),
        ]
    } else {
        vec![
            egui::pos2(c.x - 2.5, c.y - 4.0),
            egui::pos2(c.x - 2.5, c.y + 4.0),
            egui::pos2(c.x + 3.5, c.y),
        ]
    };
    ui.painter().add(egui::Shape::convex_polygon(
        points,
        color,
        egui::Stroke::NONE,
    ));
}
