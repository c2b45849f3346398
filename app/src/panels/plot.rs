//! The plot panel: the selected process's RSS over time (with pinned processes, spike markers
//! and OOM kills), its growth and on-demand PSS/USS, and below it the system's memory pressure,
//! swap and fault rates on the same time axis. It also decides how much of the window it takes
//! ([`split`]).

use eframe::egui;
use memmon_common::{
    diagnostics::{RSS_STAT_NS_PER_EVENT_OTHERS, RSS_STAT_NS_PER_EVENT_WATCHED, Spike},
    process_key::ProcessKey,
    series::{HistorySample, HistorySeries},
};

use crate::{
    command::{Command, Export},
    format,
    model::{Model, Subject},
    settings::SystemMetric,
};

/// The plot panel's smallest useful height (its buttons, a readable plot and the system plot).
pub const MIN_HEIGHT: f32 = 260.0;

/// The plot panel's height range and default within `available` points, for a grid with
/// `rows` rows: it starts at `fraction` of the space, never squeezes the grid below the rows it
/// has (up to [`MIN_VISIBLE_ROWS`](super::grid::MIN_VISIBLE_ROWS)), and takes the room a short
/// grid leaves empty. Returns (default, min, max).
pub fn split(available: f32, rows: usize, fraction: f32) -> (f32, f32, f32) {
    use super::grid::{MIN_VISIBLE_ROWS, height_for_rows};
    let grid_keeps = height_for_rows(rows.min(MIN_VISIBLE_ROWS));
    let grid_wants = height_for_rows(rows);
    let max = (available - grid_keeps).max(MIN_HEIGHT.min(available));
    let min = (available - grid_wants).clamp(MIN_HEIGHT.min(max), max);
    let default = (available * fraction).clamp(min, max);
    (default, min, max)
}

#[derive(Default)]
pub struct PlotPanel {
    /// Where the process plot was drawn (for "Export plot PNG").
    pub plot_rect: Option<egui::Rect>,
}

/// What high-resolution mode costs, for the text next to its switch: the measured nanoseconds
/// per page fault and, at the system's current fault rate, the share of one core.
pub fn high_res_cost(faults_per_s: Option<f64>) -> String {
    let per_fault = format!(
        "+{RSS_STAT_NS_PER_EVENT_OTHERS:.0} ns per page fault system-wide \
         (+{RSS_STAT_NS_PER_EVENT_WATCHED:.0} ns in this process)"
    );
    match faults_per_s {
        Some(rate) => format!(
            "{per_fault}; at {rate:.0} faults/s now ≈ {:.2} % of a core",
            rate * RSS_STAT_NS_PER_EVENT_OTHERS / 1e9 * 100.0
        ),
        None => per_fault,
    }
}

/// One line of text about a process's spikes, for the plot's caption (and tests).
pub fn spike_summary(spikes: &[Spike]) -> String {
    match spikes.iter().max_by_key(|s| s.size_bytes) {
        None => "No spikes seen".to_owned(),
        Some(big) => format!(
            "{} spike{} between samples — largest +{} at {}",
            spikes.len(),
            if spikes.len() == 1 { "" } else { "s" },
            format::kib(big.size_bytes / 1024),
            format::clock(big.unix_ms)
        ),
    }
}

/// A y-axis tick in MiB as a size with its unit ("512 KiB", "1.5 MiB", "-2.0 MiB").
pub fn mib_tick(mib: f64) -> String {
    let bytes = mib * 1_048_576.0;
    if bytes < 0.0 {
        format!("-{}", format::bytes(-bytes))
    } else {
        format::bytes(bytes)
    }
}

impl PlotPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, model: &Model, commands: &mut Vec<Command>) {
        // Fill the panel even while the history loads: a resizable panel keeps the size its
        // contents used, and would shrink to its minimum.
        ui.set_min_height(ui.available_height());
        let key = match &model.selected {
            Some(Subject::Process(key)) => *key,
            Some(Subject::App(id)) => {
                self.plot_rect = super::app_plot::ui(ui, model, id, commands);
                return;
            }
            None => return,
        };
        let pid = key.pid;
        let series = model.histories.get(&key);
        let row = model.row(key);
        let name = model.name_of(key);
        ui.horizontal_wrapped(|ui| {
            ui.heading(format!("{name} (PID {pid}) — RSS over time"));
            if let Some(exited) = series.and_then(|s| s.exited_unix_ms) {
                ui.label(format!("exited at {}", format::clock(exited)));
            }
            buttons_ui(ui, model, key, &name, commands);
        });
        ui.horizontal_wrapped(|ui| {
            if let Some(g) = row.and_then(|r| r.growth) {
                let rate = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), format::rate);
                ui.label(format!(
                    "Growth: {} (1 min) · {} (5 min) · {} (15 min) · net mapped {} (5 min)",
                    rate(g.rss_1m),
                    rate(g.rss_5m),
                    rate(g.rss_15m),
                    rate(g.net_5m)
                ));
                if g.sustained {
                    ui.colored_label(ui.visuals().error_fg_color, "sustained growth");
                }
                ui.separator();
            }
            if let Some(h) = row.and_then(|r| r.high_res) {
                ui.label(format!(
                    "High resolution: {} RSS changes since the last sample, peak {}",
                    h.changes,
                    format::kib(h.peak_rss_kb)
                ));
                ui.separator();
            }
            if let Some(d) = model.details.get(&key) {
                ui.label(format!(
                    "PSS {} (anon {}, file {}, shmem {}) · USS {} · swap PSS {} — measured {}",
                    format::kib(d.pss_kb),
                    format::kib(d.pss_anon_kb),
                    format::kib(d.pss_file_kb),
                    format::kib(d.pss_shmem_kb),
                    format::kib(d.uss_kb),
                    format::kib(d.swap_pss_kb),
                    format::clock(d.measured_unix_ms)
                ));
            } else if let Some(e) = &model.detail_error {
                ui.colored_label(ui.visuals().warn_fg_color, format!("PSS: {e}"));
            }
        });
        let Some(series) = series else {
            self.plot_rect = None;
            ui.label("Loading history…");
            return;
        };
        ui.label(spike_summary(&series.spikes));
        let link = egui::Id::unique("memmon-time-axis");
        // The system plot takes a third of what is left, the process plot the rest.
        let row_height = ui.spacing().interact_size.y + ui.spacing().item_spacing.y;
        let left = ui.available_height() - row_height;
        let system_height = (left * 0.33).clamp(70.0, 180.0);
        let height = (left - system_height - ui.spacing().item_spacing.y).max(100.0);
        let response = process_plot_ui(ui, model, series, link, height);
        self.plot_rect = Some(response.rect);
        system_plot_ui(ui, model, link, commands);
    }
}

fn buttons_ui(
    ui: &mut egui::Ui,
    model: &Model,
    key: ProcessKey,
    name: &str,
    commands: &mut Vec<Command>,
) {
    let pinned = model.pinned.contains(&Subject::Process(key));
    if ui
        .button(if pinned { "Unpin" } else { "Pin" })
        .on_hover_text(
            "Keep this process in the plot to compare it with others (processes or apps)",
        )
        .clicked()
    {
        commands.push(Command::TogglePin(Subject::Process(key), name.to_owned()));
    }
    if ui
        .button("Measure PSS")
        .on_hover_text(
            "Read proportional and unique set sizes from smaps_rollup now (at most once \
             every 5 s per process: it walks the process's page tables)",
        )
        .clicked()
    {
        commands.push(Command::MeasureDetail(key));
    }
    let full = model.is_full();
    let mut on = model.high_res == Some(key);
    let faults = model
        .snapshot
        .as_ref()
        .and_then(|s| s.pressure)
        .map(|p| p.faults_per_s);
    let cost = high_res_cost(faults);
    let switch = ui
        .add_enabled(full, egui::Checkbox::new(&mut on, "High resolution"))
        .on_hover_text(format!(
            "Trace every RSS change of this process (kmem:rss_stat): exact peaks between \
             samples, even below an earlier peak. Costs {cost} while on."
        ))
        .on_disabled_hover_text("Needs the helper with eBPF (Full mode)");
    if switch.changed() {
        commands.push(Command::HighRes(key, on));
    }
    if full {
        ui.weak(format!("+{RSS_STAT_NS_PER_EVENT_OTHERS:.0} ns/fault"));
    }
    if ui
        .add_enabled(full, egui::Button::new("Find where it allocates…"))
        .on_hover_text(
            "Which code of this process gets the memory it keeps: its call sites ranked by \
             outstanding bytes, from eBPF programs attached only while you look",
        )
        .on_disabled_hover_text("Needs the helper with eBPF (Full mode)")
        .clicked()
    {
        commands.push(Command::OpenCallSites(key, name.to_owned()));
    }
    if ui.button("Export plot PNG").clicked() {
        commands.push(Command::Export(Export::PlotPng, None));
    }
    if ui
        .button("Export series CSV")
        .on_hover_text("The history of this process and the pinned ones, one line per sample")
        .clicked()
    {
        commands.push(Command::Export(Export::SeriesCsv, None));
    }
    if ui.button("Close").clicked() {
        commands.push(Command::ClosePlot);
    }
}

fn process_plot_ui(
    ui: &mut egui::Ui,
    model: &Model,
    series: &HistorySeries,
    link: egui::Id,
    height: f32,
) -> egui::Response {
    let key = series.key();
    let mib = 1.0 / 1024.0;
    let rss = step_points(series, &|s| Some(s.rss_kb as f64 * mib));
    let peak = step_points(series, &|s| Some(s.peak_rss_kb as f64 * mib));
    let net = step_points(series, &|s| s.net_mapped.map(|n| n as f64 / 1048576.0));
    let spikes: Vec<[f64; 2]> = series
        .spikes
        .iter()
        .map(|s| [s.unix_ms as f64 / 1000.0, s.peak_bytes as f64 / 1048576.0])
        .collect();
    let pinned = super::app_plot::pinned_lines(model, &Subject::Process(key));
    let kills: Vec<f64> = model
        .snapshot
        .iter()
        .flat_map(|s| &s.oom_kills)
        .map(|k| k.unix_ms as f64 / 1000.0)
        .collect();
    // At least the last minute: one sample's instant would repeat one clock time on every tick.
    let last_seen = series.last_seen_unix_ms as f64 / 1000.0;
    memory_plot(("history", key), height, last_seen, link)
        .show(ui, |plot| {
            plot.line(egui_plot::Line::new("RSS", rss));
            plot.line(
                egui_plot::Line::new("Peak RSS", peak).style(egui_plot::LineStyle::dashed_loose()),
            );
            if !net.is_empty() {
                plot.line(egui_plot::Line::new("Net mapped", net));
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
            for x in kills {
                plot.vline(egui_plot::VLine::new("OOM kill", x));
            }
        })
        .response
}

pub(super) fn system_plot_ui(
    ui: &mut egui::Ui,
    model: &Model,
    link: egui::Id,
    commands: &mut Vec<Command>,
) {
    let metric = model.settings.system_metric;
    ui.horizontal(|ui| {
        egui::ComboBox::from_label("System")
            .selected_text(metric.label())
            .show_ui(ui, |ui| {
                for m in SystemMetric::ALL {
                    if ui.selectable_label(m == metric, m.label()).clicked() {
                        commands.push(Command::SystemMetric(m));
                    }
                }
            });
    });
    let mut lines: [Vec<[f64; 2]>; 2] = [Vec::new(), Vec::new()];
    let mut names = ["", ""];
    for sample in &model.system_history {
        let t = sample.unix_ms as f64 / 1000.0;
        for (i, (name, value)) in metric.values(sample).into_iter().enumerate() {
            names[i] = name;
            if let Some(v) = value {
                lines[i].push([t, v]);
            }
        }
    }
    let unit = metric.unit();
    egui_plot::Plot::new("system")
        .height(ui.available_height().max(60.0))
        .link_axis(link, [true, false])
        .legend(egui_plot::Legend::default())
        .include_y(0.0)
        .y_axis_min_width(64.0)
        .x_axis_formatter(|mark, _| format::clock((mark.value * 1000.0) as u64))
        .y_axis_formatter(move |mark, _| format!("{} {unit}", trim_number(mark.value)))
        .show(ui, |plot| {
            for (name, points) in names.into_iter().zip(lines) {
                if !points.is_empty() {
                    plot.line(egui_plot::Line::new(name, points));
                }
            }
        });
}

/// "12", "0.5", "1.25": a tick value without trailing zeros.
fn trim_number(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A change-only series as plot points: values hold until the next change, so draw steps, and
/// extend the last value to when the process was last seen.
pub fn step_points(
    series: &HistorySeries,
    value: &dyn Fn(&HistorySample) -> Option<f64>,
) -> Vec<[f64; 2]> {
    steps(
        series.samples.iter().map(|s| (s.unix_ms, value(s))),
        series.last_seen_unix_ms,
    )
}

/// Change-only `(unix ms, value)` samples as step points, the last value held until
/// `last_seen_unix_ms` (processes' and apps' series alike).
pub fn steps(
    samples: impl ExactSizeIterator<Item = (u64, Option<f64>)>,
    last_seen_unix_ms: u64,
) -> Vec<[f64; 2]> {
    let mut pts: Vec<[f64; 2]> = Vec::with_capacity(samples.len() * 2 + 1);
    for (unix_ms, value) in samples {
        let Some(v) = value else { continue };
        let t = unix_ms as f64 / 1000.0;
        if let Some(&[_, prev]) = pts.last() {
            pts.push([t, prev]);
        }
        pts.push([t, v]);
    }
    if let Some(&[_, v]) = pts.last() {
        pts.push([last_seen_unix_ms as f64 / 1000.0, v]);
    }
    pts
}

/// A memory-over-time plot on the shared time axis: at least the last minute before
/// `last_seen` (seconds), from 0, MiB ticks, and the clock time and size on hover. Used for a
/// process's and an app's history.
pub fn memory_plot<'a>(
    id: impl std::hash::Hash + std::fmt::Debug,
    height: f32,
    last_seen: f64,
    link: egui::Id,
) -> egui_plot::Plot<'a> {
    egui_plot::Plot::new(id)
        .height(height)
        .include_x(last_seen - 60.0)
        .include_x(last_seen)
        .link_axis(link, [true, false])
        .legend(egui_plot::Legend::default())
        .include_y(0.0)
        .y_axis_min_width(64.0)
        .x_axis_formatter(|mark, _| format::clock((mark.value * 1000.0) as u64))
        .y_axis_formatter(|mark, _| mib_tick(mark.value))
        .label_formatter(|hover| match hover {
            egui_plot::HoverPosition::NearDataPoint {
                plot_name,
                position,
                ..
            } => Some(format!(
                "{plot_name}\n{} — {}",
                format::clock((position.x * 1000.0) as u64),
                mib_tick(position.y)
            )),
            egui_plot::HoverPosition::Elsewhere { .. } => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_carry_their_units() {
        assert_eq!(mib_tick(0.0), "0 B");
        assert_eq!(mib_tick(0.5), "512 KiB");
        assert_eq!(mib_tick(150.0), "150.0 MiB");
        assert_eq!(mib_tick(-2.0), "-2.0 MiB");
        assert_eq!(trim_number(12.0), "12");
        assert_eq!(trim_number(0.25), "0.25");
    }

    #[test]
    fn the_split_gives_the_plot_room_but_keeps_the_grids_rows() {
        // 1280×760 window: about 700 points below the status bar.
        let (default, min, max) = split(700.0, 100, 0.5);
        assert!(default >= 0.45 * 700.0, "{default}");
        assert!(min >= MIN_HEIGHT && min <= default && default <= max);
        assert!(
            700.0 - max >= super::super::grid::height_for_rows(5),
            "five rows stay visible"
        );
        // Six rows: the plot takes what the grid leaves empty.
        let (default, _, _) = split(700.0, 6, 0.5);
        assert!(
            (700.0 - default - super::super::grid::height_for_rows(6)).abs() < 1.0,
            "{default}"
        );
        // A tiny window still gets a usable plot.
        let (default, min, max) = split(300.0, 100, 0.5);
        assert!(
            min <= default && default <= max && max <= 300.0,
            "{min} {default} {max}"
        );
    }
}
