//! The Processes view as a tree (the "Tree" switch, or T): each process under its parent,
//! collapsible, with the grid's columns. A collapsed row stands for its whole subtree: its
//! additive columns (RSS, swap, counts, net mapped, growth) show the subtree's totals, marked
//! "Σ"; the "RSS (subtree)" column shows the total of every parent, open or not. Siblings are
//! ordered by the grid's sort column (subtree totals for the additive ones).
//!
//! The tree is rebuilt from the snapshot's parent PIDs every frame ([`ProcessTree`]), so a
//! process whose parent exited appears under its new parent with the next update; which nodes
//! the user closed is kept by [`ProcessKey`], so it survives updates and moves.

use std::collections::HashSet;

use eframe::egui::{self, Align, Key, Modifiers, Sense};
use egui_extras::TableBuilder;
use memmon_common::{
    column::{self, Column, Unit},
    process_key::ProcessKey,
    snapshot::{ProcessRow, SortKey},
};

use crate::{
    command::Command,
    model::Model,
    panels::{
        end_dialog,
        grid::{HEADER_HEIGHT, ROW_HEIGHT},
        table::header_cell_ui,
    },
    process_tree::{ProcessTree, VisibleNode, is_additive},
};

/// Indentation per level, and the deepest level indented further.
const INDENT: f32 = 14.0;
const MAX_INDENT_LEVELS: usize = 12;
/// Closed nodes remembered at most (the oldest are forgotten past it: processes long gone).
const MAX_COLLAPSED: usize = 4096;

/// A process as the last frame listed it (for tests and assistive checks).
#[derive(Clone, Debug, PartialEq)]
pub struct ShownNode {
    pub key: ProcessKey,
    pub parent: Option<ProcessKey>,
    pub depth: usize,
    pub has_children: bool,
    pub expanded: bool,
    /// Processes below it.
    pub descendants: usize,
    /// RSS of it and its descendants.
    pub subtree_rss_kb: Option<u64>,
}

#[derive(Clone, Copy, PartialEq)]
enum TreeColumn {
    Process(Column),
    /// RSS of the process and its descendants.
    SubtreeRss,
}

#[derive(Default)]
pub struct ProcessTreeView {
    /// Processes whose children the user hid (all others are open).
    collapsed: HashSet<ProcessKey>,
    /// Set by keyboard navigation: bring the selected row into view once.
    scroll_to_selected: bool,
    shown: Vec<ShownNode>,
    /// The tree of the current snapshot and sort order (building one of 3,000 processes takes
    /// about 2 ms, too much for every frame).
    cache: Option<(TreeOf, ProcessTree)>,
}

/// What a cached tree was built from: the snapshot (by count and size) and the sort order.
type TreeOf = (u64, usize, SortKey, bool);

impl ProcessTreeView {
    /// What the last frame listed, in order (scrolled-out rows included).
    pub fn shown(&self) -> &[ShownNode] {
        &self.shown
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, model: &Model, commands: &mut Vec<Command>) {
        let rows: &[ProcessRow] = model
            .snapshot
            .as_ref()
            .map(|s| s.processes.as_slice())
            .unwrap_or_default();
        let (sort, descending) = (model.settings.sort, model.settings.descending);
        let of = (model.snapshot_count, rows.len(), sort, descending);
        let tree = match self.cache.take() {
            Some((built_of, tree)) if built_of == of => tree,
            _ => ProcessTree::build(rows, sort, descending),
        };
        self.tree_ui(ui, model, rows, &tree, commands);
        self.cache = Some((of, tree));
    }

    fn tree_ui(
        &mut self,
        ui: &mut egui::Ui,
        model: &Model,
        rows: &[ProcessRow],
        tree: &ProcessTree,
        commands: &mut Vec<Command>,
    ) {
        let needle = model.filter.trim().to_lowercase();
        let matches = |r: &ProcessRow| {
            r.name.to_lowercase().contains(&needle) || r.pid.to_string().starts_with(&needle)
        };
        let filter: Option<&dyn Fn(&ProcessRow) -> bool> = (!needle.is_empty()).then_some(&matches);
        let collapsed = &self.collapsed;
        let visible = tree.visible(rows, |k| !collapsed.contains(&k), filter);
        self.record_shown(rows, tree, &visible);

        self.toolbar_ui(ui, model, rows, tree);
        self.keys_ui(ui.ctx(), model, rows, tree, &visible, commands);
        let shown = model.allocation_columns_shown();
        let mut columns = Vec::new();
        for c in Column::listed_columns().filter(|c| shown || !c.full_mode_only()) {
            columns.push(TreeColumn::Process(c));
            if c == Column::Rss {
                columns.push(TreeColumn::SubtreeRss);
            }
        }
        ui.spacing_mut().scroll = egui::style::ScrollStyle::solid();
        egui::ScrollArea::horizontal()
            .id_salt(("tree sideways", shown))
            .auto_shrink(false)
            .show(ui, |ui| {
                self.table_ui(ui, model, rows, tree, &visible, &columns, commands);
                if visible.is_empty() {
                    ui.label(if model.snapshot.is_none() {
                        "Waiting for the first scan…"
                    } else {
                        "No process matches."
                    });
                }
            });
    }

    fn record_shown(&mut self, rows: &[ProcessRow], tree: &ProcessTree, visible: &[VisibleNode]) {
        self.shown.clear();
        for v in visible {
            let (Some(row), Some(node)) = (rows.get(v.index), tree.nodes.get(v.index)) else {
                continue;
            };
            self.shown.push(ShownNode {
                key: row.key(),
                parent: node.parent.and_then(|p| rows.get(p)).map(ProcessRow::key),
                depth: v.depth,
                has_children: v.has_children,
                expanded: v.expanded,
                descendants: node.descendants,
                subtree_rss_kb: node.subtree.rss_kb,
            });
        }
        if self.collapsed.len() > MAX_COLLAPSED {
            let present: HashSet<ProcessKey> = rows.iter().map(ProcessRow::key).collect();
            self.collapsed.retain(|k| present.contains(k));
        }
    }

    /// Expand all / Collapse all, and a note when the source sent fewer processes than exist.
    fn toolbar_ui(
        &mut self,
        ui: &mut egui::Ui,
        model: &Model,
        rows: &[ProcessRow],
        tree: &ProcessTree,
    ) {
        ui.horizontal(|ui| {
            if ui
                .button("Expand all")
                .on_hover_text("Show every process under its parent")
                .clicked()
            {
                self.collapsed.clear();
            }
            if ui
                .button("Collapse all")
                .on_hover_text("Show only the processes without a parent here")
                .clicked()
            {
                self.collapsed = tree
                    .nodes
                    .iter()
                    .zip(rows)
                    .filter(|(n, _)| !n.children.is_empty())
                    .map(|(_, r)| r.key())
                    .collect();
            }
            ui.weak("Σ: a collapsed process with everything below it");
            if let Some(s) = &model.snapshot
                && (s.process_count as usize) > rows.len()
            {
                ui.separator();
                ui.colored_label(
                    ui.visuals().warn_fg_color,
                    format!(
                        "Showing {} of {} processes (the first by the sort column); the others' \
                         children appear without their parent",
                        rows.len(),
                        s.process_count
                    ),
                );
            }
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn table_ui(
        &mut self,
        ui: &mut egui::Ui,
        model: &Model,
        rows: &[ProcessRow],
        tree: &ProcessTree,
        visible: &[VisibleNode],
        columns: &[TreeColumn],
        commands: &mut Vec<Command>,
    ) {
        let selected = model.selected_process();
        let selected_index = selected.and_then(|sel| {
            visible
                .iter()
                .position(|v| rows.get(v.index).is_some_and(|r| r.key() == sel))
        });
        let shown = model.allocation_columns_shown();
        let mut table = TableBuilder::new(ui)
            .id_salt(("tree", shown))
            .striped(true)
            .cell_layout(egui::Layout::right_to_left(Align::Center));
        for c in columns {
            let (width, at_least) = match c {
                TreeColumn::Process(c) if c.align() == column::Align::Left => {
                    (egui_extras::Column::remainder(), 220.0)
                }
                TreeColumn::Process(c) if c.unit() == Unit::Id => {
                    (egui_extras::Column::auto(), 60.0)
                }
                TreeColumn::Process(c) if c.unit() == Unit::BytesPerMin => {
                    (egui_extras::Column::auto(), 120.0)
                }
                _ => (egui_extras::Column::auto(), 100.0),
            };
            let clip = matches!(c, TreeColumn::Process(c) if c.align() == column::Align::Left);
            table = table.column(width.at_least(at_least).clip(clip));
        }
        if std::mem::take(&mut self.scroll_to_selected)
            && let Some(i) = selected_index
        {
            table = table.scroll_to_row(i, None);
        }
        let sorted = (model.settings.sort, model.settings.descending);
        let mut toggled: Vec<ProcessKey> = Vec::new();
        table
            .header(HEADER_HEIGHT, |mut header| {
                for &c in columns {
                    header.col(|ui| {
                        let (title, align, tip, key) = match c {
                            TreeColumn::Process(c) => {
                                (c.title(), c.align(), header_tip(c), c.sort_key())
                            }
                            TreeColumn::SubtreeRss => (
                                "RSS (subtree)",
                                column::Align::Right,
                                "RSS of the process and everything below it; sorting by RSS \
                                 orders siblings by it"
                                    .to_owned(),
                                Some(SortKey::Rss),
                            ),
                        };
                        let descending = (key == Some(sorted.0)
                            && (c != TreeColumn::Process(Column::Rss)
                                || !columns.contains(&TreeColumn::SubtreeRss)))
                        .then_some(sorted.1);
                        let right = align == column::Align::Right;
                        let (response, _) = header_cell_ui(ui, title, right, descending);
                        if response.on_hover_text(tip).clicked()
                            && let Some(key) = key
                        {
                            commands.push(Command::Sort(key));
                        }
                    });
                }
            })
            .body(|body| {
                body.rows(ROW_HEIGHT, visible.len(), |mut row| {
                    let Some(v) = visible.get(row.index()) else {
                        return;
                    };
                    let (Some(r), Some(node)) = (rows.get(v.index), tree.nodes.get(v.index)) else {
                        return;
                    };
                    row.set_selected(selected_index == Some(row.index()));
                    // A closed node stands for its subtree.
                    let totals = v.has_children && !v.expanded;
                    let mut clicked = false;
                    for &c in columns {
                        row.col(|ui| {
                            let response = match c {
                                TreeColumn::Process(Column::Name) => {
                                    ui.with_layout(
                                        egui::Layout::left_to_right(Align::Center),
                                        |ui| {
                                            if name_cell_ui(ui, r, v, node.descendants) {
                                                toggled.push(r.key());
                                            }
                                            ui.add(
                                                egui::Label::new(r.name.as_str())
                                                    .sense(Sense::click()),
                                            )
                                        },
                                    )
                                    .inner
                                }
                                TreeColumn::Process(c) => {
                                    value_cell_ui(ui, c, r, &node.subtree, totals)
                                }
                                TreeColumn::SubtreeRss => ui
                                    .add(
                                        egui::Label::new(Column::Rss.display(&node.subtree))
                                            .sense(Sense::click()),
                                    )
                                    .on_hover_text(format!(
                                        "{} and the {} processes below it",
                                        r.name, node.descendants
                                    )),
                            };
                            clicked |= response.clicked();
                        });
                    }
                    if clicked {
                        commands.push(Command::Select(r.key()));
                    }
                    row.response()
                        .container_context_menu(|ui| end_dialog::process_menu_ui(ui, r, commands));
                });
            });
        for key in toggled {
            if !self.collapsed.remove(&key) {
                self.collapsed.insert(key);
            }
        }
    }

    /// The grid's keys (arrows, Page Up/Down, Home, End, Enter) over the shown rows; ← closes
    /// the selected process (or goes to its parent), → opens it (or goes to its first child).
    fn keys_ui(
        &mut self,
        ctx: &egui::Context,
        model: &Model,
        rows: &[ProcessRow],
        tree: &ProcessTree,
        visible: &[VisibleNode],
        commands: &mut Vec<Command>,
    ) {
        if ctx.memory(|m| m.focused().is_some()) {
            return; // typing in the filter
        }
        let key_at = |i: usize| {
            visible
                .get(i)
                .and_then(|v| rows.get(v.index))
                .map(ProcessRow::key)
        };
        let selected = model.selected_process();
        let current = selected.and_then(|sel| (0..visible.len()).find(|&i| key_at(i) == Some(sel)));
        let last = visible.len().saturating_sub(1);
        ctx.input_mut(|input| {
            if input.consume_key(Modifiers::NONE, Key::Enter) {
                commands.push(Command::OpenPlot);
            }
            let current_node = current.and_then(|i| visible.get(i));
            let mut target = if input.consume_key(Modifiers::NONE, Key::ArrowDown) {
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
            if let (Some(i), Some(node)) = (current, current_node) {
                let key = key_at(i);
                if input.consume_key(Modifiers::NONE, Key::ArrowLeft) {
                    if node.has_children && node.expanded {
                        self.collapsed.extend(key);
                    } else if let Some(parent) = tree.nodes.get(node.index).and_then(|n| n.parent) {
                        target = visible.iter().position(|v| v.index == parent);
                    }
                } else if input.consume_key(Modifiers::NONE, Key::ArrowRight) && node.has_children {
                    if node.expanded {
                        target = Some((i + 1).min(last));
                    } else if let Some(key) = key {
                        self.collapsed.remove(&key);
                    }
                }
            }
            if let Some(key) = target.and_then(key_at) {
                commands.push(Command::MoveSelection(key));
                self.scroll_to_selected = true;
            }
        });
    }
}

/// The header's tooltip: the column's, and for the additive ones what a collapsed row shows.
fn header_tip(c: Column) -> String {
    if is_additive(c) {
        format!(
            "{} — on a collapsed row (Σ), the total of the process and everything below it",
            c.tooltip()
        )
    } else {
        c.tooltip().to_owned()
    }
}

/// Indentation and the open/close triangle; true when it was clicked.
fn name_cell_ui(ui: &mut egui::Ui, r: &ProcessRow, v: &VisibleNode, descendants: usize) -> bool {
    ui.add_space(v.depth.min(MAX_INDENT_LEVELS) as f32 * INDENT);
    let (rect, response) =
        ui.allocate_exact_size(egui::vec2(INDENT, ui.available_height()), Sense::click());
    if !v.has_children {
        return false;
    }
    let label = if v.expanded {
        format!("Collapse {}", r.name)
    } else {
        format!("Expand {} ({descendants} below)", r.name)
    };
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
    if ui.is_rect_visible(rect) {
        let color = if response.hovered() {
            ui.visuals().strong_text_color()
        } else {
            ui.visuals().text_color()
        };
        super::table::disclosure_triangle(ui, rect, v.expanded, color);
    }
    let clicked = response.on_hover_text(label).clicked();
    if !v.expanded {
        ui.weak(format!("+{descendants}"));
    }
    clicked
}

/// A number cell: the process's own value, or on a collapsed row the subtree's total ("Σ").
fn value_cell_ui(
    ui: &mut egui::Ui,
    c: Column,
    own: &ProcessRow,
    subtree: &ProcessRow,
    totals: bool,
) -> egui::Response {
    let total = totals && is_additive(c);
    let source = if total { subtree } else { own };
    let text = c.display(source);
    let text = if total { format!("Σ {text}") } else { text };
    let mut rich = egui::RichText::new(text);
    if c == Column::Growth && source.growth.is_some_and(|g| g.sustained) {
        rich = rich.color(ui.visuals().error_fg_color);
    }
    let response = ui.add(egui::Label::new(rich).sense(Sense::click()));
    if total {
        response.on_hover_text(format!(
            "Total of {} and everything below it; {} alone: {}",
            own.name,
            own.name,
            c.display(own)
        ))
    } else {
        response
    }
}
