//! The plot panel's content for a selected app: its memory over time (total, anonymous, page
//! cache, swap) from its history, its cgroup's limit and OOM events and its spikes as markers,
//! with the pinned processes and apps beside it. Also the pinned lines the process plot draws.

use eframe::egui;
use memmon_common::apps::{AppEventKind, AppHistorySeries, AppRow, AppSample};

use super::plot::{memory_plot, spike_summary, steps, system_plot_ui};
use crate::{
    command::{Command, Export},
    format,
    model::{Model, Subject, memory_note},
};

/// Draws the app's part of the plot panel; returns where its plot was drawn.
pub(super) fn ui(
    ui: &mut egui::Ui,
    model: &Model,
    id: &str,
    commands: &mut Vec<Command>,
) -> Option<egui::Rect> {
    let series = model.apps.histories.get(id);
    let row = model.apps.row(id);
    let name = model.apps.name_of(id);
    ui.horizontal_wrapped(|ui| {
        ui.heading(format!("{name} — memory over time"));
        if let Some(kind) = row.and_then(|r| r.kind) {
            ui.weak(kind.label());
        }
        if let Some(gone) = series.and_then(|s| s.gone_unix_ms) {
            ui.label(format!("no process left since {}", format::clock(gone)));
        }
        buttons_ui(ui, model, id, &name, commands);
    });
    if let Some(row) = row {
        ui.horizontal_wrapped(|ui| figures_ui(ui, row));
        if let Some(note) = memory_note(row) {
            ui.colored_label(ui.visuals().warn_fg_color, note);
        }
    }
    let Some(series) = series else {
        ui.label("Loading history…");
        return None;
    };
    ui.label(format!(
        "{} · {}",
        event_summary(series),
        spike_summary(&series.spikes)
    ));
    let link = egui::Id::unique("memmon-time-axis");
    let row_height = ui.spacing().interact_size.y + ui.spacing().item_spacing.y;
    let left = ui.available_height() - row_height;
    let system_height = (left * 0.33).clamp(70.0, 180.0);
    let height = (left - system_height - ui.spacing().item_spacing.y).max(100.0);
    let rect = app_plot_ui(ui, model, series, link, height).rect;
    system_plot_ui(ui, model, link, commands);
    Some(rect)
}

fn buttons_ui(ui: &mut egui::Ui, model: &Model, id: &str, name: &str, commands: &mut Vec<Command>) {
    let subject = Subject::App(id.to_owned());
    let pinned = model.pinned.contains(&subject);
    if ui
        .button(if pinned { "Unpin" } else { "Pin" })
        .on_hover_text("Keep this app in the plot to compare it with others (apps or processes)")
        .clicked()
    {
        commands.push(Command::TogglePin(subject, name.to_owned()));
    }
    if ui.button("Export plot PNG").clicked() {
        commands.push(Command::Export(Export::PlotPng, None));
    }
    if ui.button("Close").clicked() {
        commands.push(Command::ClosePlot);
    }
}

/// The app's figures now: the cgroup's breakdown, the sums, limits, peak, pressure and growth.
fn figures_ui(ui: &mut egui::Ui, row: &AppRow) {
    let kib = |v: Option<u64>| v.map_or_else(|| "—".to_owned(), format::kib);
    let mut parts = vec![
        format!("Memory {}", format::kib(row.memory_kb())),
        format!("anon {}", kib(row.anon_kb())),
        format!("page cache {}", kib(row.file_kb())),
        format!("swap {}", format::kib(row.swap_kb())),
        format!("RSS sum {}", format::kib(row.rss_sum_kb)),
        format!(
            "{} process{} in {} cgroup{}",
            row.process_count,
            if row.process_count == 1 { "" } else { "es" },
            row.cgroup_count,
            if row.cgroup_count == 1 { "" } else { "s" }
        ),
    ];
    if let Some(m) = row.memory.filter(|_| row.memory_covers.is_none()) {
        if let Some(peak) = m.peak_kb {
            parts.push(format!("peak {}", format::kib(peak)));
        }
        if let Some(k) = m.kernel_kb {
            parts.push(format!("kernel {}", format::kib(k)));
        }
    }
    if let Some(m) = row.memory {
        if let Some(limit) = m.limit_kb {
            parts.push(format!("limit {}", format::kib(limit)));
        }
        if let Some(high) = m.high_kb {
            parts.push(format!("high {}", format::kib(high)));
        }
        if let Some(p) = m.pressure {
            parts.push(format!("pressure {:.1} %", p.some_avg10));
        }
    }
    ui.label(parts.join(" · "))
        .on_hover_text(format!("unit {}", row.unit));
    if let Some(g) = row.growth {
        let rate = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), format::rate);
        ui.separator();
        ui.label(format!(
            "Growth: {} (1 min) · {} (5 min) · {} (15 min)",
            rate(g.rss_1m),
            rate(g.rss_5m),
            rate(g.rss_15m)
        ));
        if g.sustained {
            ui.colored_label(ui.visuals().error_fg_color, "sustained growth");
        }
    }
}

/// What a marker series is called in the legend.
fn event_name(kind: AppEventKind) -> &'static str {
    match kind {
        AppEventKind::OomKill => "OOM kills",
        AppEventKind::Max => "Limit reached (max)",
        AppEventKind::High => "Throttled (high)",
    }
}

/// One line about the cgroup's events, for the caption (and tests).
pub fn event_summary(series: &AppHistorySeries) -> String {
    if series.events.is_empty() {
        return "No limit or OOM events".to_owned();
    }
    let count = |kind| -> u64 {
        series
            .events
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.count)
            .sum()
    };
    let mut parts = Vec::new();
    for (kind, one, many) in [
        (AppEventKind::OomKill, "OOM kill", "OOM kills"),
        (AppEventKind::Max, "limit hit", "limit hits"),
        (
            AppEventKind::High,
            "throttle above high",
            "throttles above high",
        ),
    ] {
        match count(kind) {
            0 => {}
            1 => parts.push(format!("1 {one}")),
            n => parts.push(format!("{n} {many}")),
        }
    }
    let last = series.events.iter().map(|e| e.unix_ms).max().unwrap_or(0);
    format!("{} — last at {}", parts.join(", "), format::clock(last))
}

/// An app's series as step points of one value (MiB).
fn app_steps(
    series: &AppHistorySeries,
    value: impl Fn(&AppSample) -> Option<u64>,
) -> Vec<[f64; 2]> {
    steps(
        series
            .samples
            .iter()
            .map(|s| (s.unix_ms, value(s).map(|kb| kb as f64 / 1024.0))),
        series.last_seen_unix_ms,
    )
}

/// The app's memory (MiB) at a moment: the last sample at or before it.
fn memory_at(series: &AppHistorySeries, unix_ms: u64) -> f64 {
    let i = series.samples.partition_point(|s| s.unix_ms <= unix_ms);
    let sample = i.checked_sub(1).and_then(|i| series.samples.get(i));
    sample.map_or(0.0, |s| s.memory_kb as f64 / 1024.0)
}

/// Lines of the pinned processes and apps other than `except`, named for the legend.
pub fn pinned_lines(model: &Model, except: &Subject) -> Vec<(String, Vec<[f64; 2]>)> {
    model
        .pinned
        .iter()
        .filter(|&p| p != except)
        .filter_map(|p| match p {
            Subject::Process(key) => model.histories.get(key).map(|h| {
                let points = steps(
                    h.samples
                        .iter()
                        .map(|s| (s.unix_ms, Some(s.rss_kb as f64 / 1024.0))),
                    h.last_seen_unix_ms,
                );
                (format!("RSS {} ({})", h.name, h.pid), points)
            }),
            Subject::App(id) => model.apps.histories.get(id).map(|h| {
                let points = app_steps(h, |s| Some(s.memory_kb));
                (format!("Memory {} (app)", h.name), points)
            }),
        })
        .collect()
}

fn app_plot_ui(
    ui: &mut egui::Ui,
    model: &Model,
    series: &AppHistorySeries,
    link: egui::Id,
    height: f32,
) -> egui::Response {
    let total = app_steps(series, |s| Some(s.memory_kb));
    let anon = app_steps(series, |s| s.anon_kb);
    let file = app_steps(series, |s| s.file_kb);
    let swap = app_steps(series, |s| Some(s.swap_kb));
    let pinned = pinned_lines(model, &Subject::App(series.id.clone()));
    let spikes: Vec<[f64; 2]> = series
        .spikes
        .iter()
        .map(|s| [s.unix_ms as f64 / 1000.0, s.peak_bytes as f64 / 1048576.0])
        .collect();
    let markers: Vec<(AppEventKind, Vec<[f64; 2]>)> =
        [AppEventKind::OomKill, AppEventKind::Max, AppEventKind::High]
            .into_iter()
            .map(|kind| {
                let points = series
                    .events
                    .iter()
                    .filter(|e| e.kind == kind)
                    .map(|e| [e.unix_ms as f64 / 1000.0, memory_at(series, e.unix_ms)])
                    .collect();
                (kind, points)
            })
            .collect();
    let last_seen = series.last_seen_unix_ms as f64 / 1000.0;
    memory_plot(("app history", &series.id), height, last_seen, link)
        .show(ui, |plot| {
            plot.line(egui_plot::Line::new("Memory", total));
            for (name, points) in [("Anon", anon), ("Page cache", file), ("Swap", swap)] {
                if !points.is_empty() {
                    plot.line(
                        egui_plot::Line::new(name, points)
                            .style(egui_plot::LineStyle::dashed_loose()),
                    );
                }
            }
            for (name, points) in pinned {
                plot.line(egui_plot::Line::new(name, points));
            }
            if !spikes.is_empty() {
                plot.points(
                    egui_plot::Points::new("Spikes (peak)", spikes)
                        .shape(egui_plot::MarkerShape::Diamond)
                        .radius(5.0),
                );
            }
            for (kind, points) in markers {
                if points.is_empty() {
                    continue;
                }
                let shape = match kind {
                    AppEventKind::OomKill => egui_plot::MarkerShape::Cross,
                    AppEventKind::Max => egui_plot::MarkerShape::Up,
                    AppEventKind::High => egui_plot::MarkerShape::Square,
                };
                plot.points(
                    egui_plot::Points::new(event_name(kind), points)
                        .shape(shape)
                        .filled(true)
                        .radius(6.0),
                );
            }
        })
        .response
}

#[cfg(test)]
mod tests {
    use memmon_common::apps::AppEvent;

    use super::*;

    #[test]
    fn events_are_counted_by_kind_in_the_caption() {
        let mut series = AppHistorySeries::default();
        assert_eq!(event_summary(&series), "No limit or OOM events");
        let event = |kind, count| AppEvent {
            unix_ms: 1_000,
            kind,
            count,
        };
        series.events = vec![
            event(AppEventKind::OomKill, 1),
            event(AppEventKind::Max, 2),
            event(AppEventKind::Max, 1),
        ];
        let text = event_summary(&series);
        assert!(
            text.starts_with("1 OOM kill, 3 limit hits — last at"),
            "{text}"
        );
    }

    #[test]
    fn markers_sit_on_the_memory_line() {
        let sample = |t, kb| AppSample {
            unix_ms: t,
            memory_kb: kb,
            ..AppSample::default()
        };
        let series = AppHistorySeries {
            samples: vec![sample(1_000, 1024), sample(3_000, 4096)],
            ..AppHistorySeries::default()
        };
        assert_eq!(memory_at(&series, 500), 0.0);
        assert_eq!(memory_at(&series, 2_000), 1.0);
        assert_eq!(memory_at(&series, 3_000), 4.0);
    }
}
