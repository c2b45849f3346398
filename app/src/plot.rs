//! The plot panel: the selected process's RSS over time (with pinned processes, spike markers
//! and OOM kills), its growth and on-demand PSS/USS, and below it the system's memory pressure,
//! swap and fault rates on the same time axis.

use eframe::egui;
use memmon_common::{
    diagnostics::{
        RSS_STAT_NS_PER_EVENT_OTHERS, RSS_STAT_NS_PER_EVENT_WATCHED, Spike, SystemSample,
    },
    series::{HistorySample, HistorySeries},
    snapshot::Mode,
};

use crate::{
    app::{Command, ExportWhat, MemmonApp},
    export::DataExport,
    format,
};

/// What the system plot under the process plot shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SystemMetric {
    /// PSI: share of time tasks stalled on memory (avg10, %).
    #[default]
    Pressure,
    /// Pages swapped in and out per second.
    Swap,
    /// Page faults (all, and major) per second.
    Faults,
}

impl SystemMetric {
    const ALL: [SystemMetric; 3] = [
        SystemMetric::Pressure,
        SystemMetric::Swap,
        SystemMetric::Faults,
    ];

    fn label(self) -> &'static str {
        match self {
            SystemMetric::Pressure => "Memory pressure (PSI avg10, %)",
            SystemMetric::Swap => "Swap in/out (pages/s)",
            SystemMetric::Faults => "Page faults (/s)",
        }
    }

    /// (series name, value) pairs of one sample.
    fn values(self, s: &SystemSample) -> [(&'static str, Option<f64>); 2] {
        let p = &s.pressure;
        match self {
            SystemMetric::Pressure => [("some", p.some_avg10), ("full", p.full_avg10)],
            SystemMetric::Swap => [
                ("swap in", Some(p.swap_in_per_s)),
                ("swap out", Some(p.swap_out_per_s)),
            ],
            SystemMetric::Faults => [
                ("faults", Some(p.faults_per_s)),
                ("major faults", Some(p.major_faults_per_s)),
            ],
        }
    }
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

impl MemmonApp {
    pub(crate) fn plot_ui(&mut self, ui: &mut egui::Ui) {
        let Some((pid, start_time)) = self.selected else {
            return;
        };
        let series = self.histories.get(&(pid, start_time));
        let row = self.snapshot.as_ref().and_then(|s| {
            s.processes
                .iter()
                .find(|r| (r.pid, r.start_time) == (pid, start_time))
        });
        let name = series
            .map(|s| s.name.clone())
            .or_else(|| row.map(|r| r.name.clone()))
            .unwrap_or_default();
        ui.horizontal_wrapped(|ui| {
            ui.heading(format!("{name} (PID {pid}) — RSS over time"));
            if let Some(exited) = series.and_then(|s| s.exited_unix_ms) {
                ui.label(format!("exited at {}", format::clock(exited)));
            }
            let pinned = self.pinned.contains(&(pid, start_time));
            if ui
                .button(if pinned { "Unpin" } else { "Pin" })
                .on_hover_text("Keep this process in the plot to compare it with others")
                .clicked()
            {
                self.commands
                    .push(Command::TogglePin(pid, start_time, name.clone()));
            }
            if ui
                .button("Measure PSS")
                .on_hover_text(
                    "Read proportional and unique set sizes from smaps_rollup now (at most once \
                     every 5 s per process: it walks the process's page tables)",
                )
                .clicked()
            {
                self.commands.push(Command::MeasureDetail(pid, start_time));
            }
            let full = self.origin == Some(crate::source::Origin::Helper)
                && self.snapshot.as_ref().is_some_and(|s| s.mode == Mode::Full);
            let mut on = self.high_res == Some((pid, start_time));
            let faults = self
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
                self.commands.push(Command::HighRes(pid, start_time, on));
            }
            if full {
                ui.weak(format!("+{RSS_STAT_NS_PER_EVENT_OTHERS:.0} ns/fault"));
            }
            if ui.button("Export plot PNG").clicked() {
                self.commands.push(Command::Export(ExportWhat::Plot));
            }
            if ui
                .button("Export series CSV")
                .on_hover_text(
                    "The history of this process and the pinned ones, one line per sample",
                )
                .clicked()
            {
                self.commands
                    .push(Command::ExportData(DataExport::SeriesCsv));
            }
            if ui.button("Close").clicked() {
                self.plot_open = false;
            }
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
            if let Some(d) = self.details.get(&(pid, start_time)) {
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
            } else if let Some(e) = &self.detail_error {
                ui.colored_label(ui.visuals().warn_fg_color, format!("PSS: {e}"));
            }
        });
        let Some(series) = series else {
            ui.label("Loading history…");
            return;
        };
        ui.label(spike_summary(&series.spikes));
        let link = egui::Id::unique("memmon-time-axis");
        let system_height = 110.0;
        let height = (ui.available_height() - system_height - 30.0).max(80.0);
        let response = self.process_plot(ui, series, link, height);
        self.plot_rect = Some(response.rect);
        self.system_plot_ui(ui, link);
    }

    fn process_plot(
        &self,
        ui: &mut egui::Ui,
        series: &HistorySeries,
        link: egui::Id,
        height: f32,
    ) -> egui::Response {
        let key = (series.pid, series.start_time);
        let mib = 1.0 / 1024.0;
        let rss = step_points(series, &|s| Some(s.rss_kb as f64 * mib));
        let peak = step_points(series, &|s| Some(s.peak_rss_kb as f64 * mib));
        let net = step_points(series, &|s| s.net_mapped.map(|n| n as f64 / 1048576.0));
        let spikes: Vec<[f64; 2]> = series
            .spikes
            .iter()
            .map(|s| [s.unix_ms as f64 / 1000.0, s.peak_bytes as f64 / 1048576.0])
            .collect();
        let pinned_series: Vec<&HistorySeries> = self
            .pinned
            .iter()
            .filter(|&&p| p != key)
            .filter_map(|p| self.histories.get(p))
            .collect();
        let kills: Vec<f64> = self
            .snapshot
            .iter()
            .flat_map(|s| &s.oom_kills)
            .map(|k| k.unix_ms as f64 / 1000.0)
            .collect();
        egui_plot::Plot::new(("history", key.0, key.1))
            .height(height)
            .link_axis(link, [true, false])
            .legend(egui_plot::Legend::default())
            .x_axis_formatter(|mark, _| format::clock((mark.value * 1000.0) as u64))
            .y_axis_label("MiB")
            .label_formatter(|hover| match hover {
                egui_plot::HoverPosition::NearDataPoint {
                    plot_name,
                    position,
                    ..
                } => Some(format!(
                    "{plot_name}\n{} — {:.1} MiB",
                    format::clock((position.x * 1000.0) as u64),
                    position.y
                )),
                egui_plot::HoverPosition::Elsewhere { .. } => None,
            })
            .show(ui, |plot| {
                plot.line(egui_plot::Line::new("RSS", rss));
                plot.line(
                    egui_plot::Line::new("Peak RSS", peak)
                        .style(egui_plot::LineStyle::dashed_loose()),
                );
                if !net.is_empty() {
                    plot.line(egui_plot::Line::new("Net mapped", net));
                }
                for other in &pinned_series {
                    plot.line(egui_plot::Line::new(
                        format!("RSS {} ({})", other.name, other.pid),
                        step_points(other, &|s| Some(s.rss_kb as f64 * mib)),
                    ));
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

    fn system_plot_ui(&mut self, ui: &mut egui::Ui, link: egui::Id) {
        let metric = self.settings.system_metric;
        ui.horizontal(|ui| {
            egui::ComboBox::from_label("System")
                .selected_text(metric.label())
                .show_ui(ui, |ui| {
                    for m in SystemMetric::ALL {
                        if ui.selectable_label(m == metric, m.label()).clicked() {
                            self.settings.system_metric = m;
                        }
                    }
                });
        });
        let mut lines: [Vec<[f64; 2]>; 2] = [Vec::new(), Vec::new()];
        let mut names = ["", ""];
        for sample in &self.system_history {
            let t = sample.unix_ms as f64 / 1000.0;
            for (i, (name, value)) in metric.values(sample).into_iter().enumerate() {
                names[i] = name;
                if let Some(v) = value {
                    lines[i].push([t, v]);
                }
            }
        }
        egui_plot::Plot::new("system")
            .height(ui.available_height().max(60.0))
            .link_axis(link, [true, false])
            .legend(egui_plot::Legend::default())
            .x_axis_formatter(|mark, _| format::clock((mark.value * 1000.0) as u64))
            .show(ui, |plot| {
                for (name, points) in names.into_iter().zip(lines) {
                    if !points.is_empty() {
                        plot.line(egui_plot::Line::new(name, points));
                    }
                }
            });
    }
}

/// A change-only series as plot points: values hold until the next change, so draw steps, and
/// extend the last value to when the process was last seen.
pub(crate) fn step_points(
    series: &HistorySeries,
    value: &dyn Fn(&HistorySample) -> Option<f64>,
) -> Vec<[f64; 2]> {
    let mut pts: Vec<[f64; 2]> = Vec::with_capacity(series.samples.len() * 2 + 1);
    for s in &series.samples {
        let Some(v) = value(s) else { continue };
        let t = s.unix_ms as f64 / 1000.0;
        if let Some(&[_, prev]) = pts.last() {
            pts.push([t, prev]);
        }
        pts.push([t, v]);
    }
    if let Some(&[_, v]) = pts.last() {
        pts.push([series.last_seen_unix_ms as f64 / 1000.0, v]);
    }
    pts
}
