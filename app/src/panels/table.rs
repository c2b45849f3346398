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
