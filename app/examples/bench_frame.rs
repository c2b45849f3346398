//! UI build time per frame (no GPU): `egui::Context::run_ui` over the real `MemmonApp` with a
//! 1280×760 screen, plus tessellation, for a snapshot of 100 rows and one of 10,000 rows, and
//! for the Apps view with 500 apps (a new table every frame; then with an app's plot open on a
//! full history of 1,800 samples).
//! Usage: bench_frame [FRAMES]   (release build; prints medians in µs)
use std::{sync::mpsc, time::Instant};

use eframe::egui;
use memmon::{
    app::MemmonApp,
    command::Command,
    settings::{Settings, View},
    source::{Origin, Update},
};
use memmon_common::{
    apps::{
        AppEvent, AppEventKind, AppHistorySeries, AppKind, AppRow, AppSample, AppsSnapshot,
        CgroupMemory,
    },
    snapshot::{AllocStats, Mode, ProcessRow, Snapshot, SystemMemory},
};

fn snapshot(n: u32) -> Snapshot {
    Snapshot {
        taken_at_unix_ms: 1_795_000_000_000,
        scan_duration_us: 0,
        mode: Mode::Full,
        mode_reason: None,
        system: SystemMemory {
            total_kb: 8 << 20,
            available_kb: 4 << 20,
            swap_total_kb: 1 << 20,
            swap_free_kb: 1 << 20,
        },
        process_count: n,
        bpf_drops: 0,
        pressure: None,
        oom_kills: Vec::new(),
        processes: (1..=n)
            .map(|pid| ProcessRow {
                pid,
                start_time: u64::from(pid),
                name: format!("process-{pid}"),
                rss_kb: Some(u64::from(pid) * 97),
                virtual_kb: Some(u64::from(pid) * 400),
                peak_rss_kb: Some(u64::from(pid) * 99),
                swap_kb: Some(0),
                alloc: Some(AllocStats {
                    mmap_count: u64::from(pid),
                    net_mapped: 1 << 20,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
    }
}

/// `n` apps of every kind, with cgroup figures, as the source sends them.
fn apps(n: u32) -> AppsSnapshot {
    let kinds = [
        AppKind::App,
        AppKind::Flatpak,
        AppKind::Service,
        AppKind::UserService,
        AppKind::Session,
    ];
    AppsSnapshot {
        taken_at_unix_ms: 1_795_000_000_000,
        app_count: n,
        process_count: n * 4,
        grouping: "Grouped by systemd unit; cgroup v2 memory controller".into(),
        grouping_us: 900,
        apps: (0..n)
            .map(|i| {
                let kb = u64::from(n - i) * 2048;
                AppRow {
                    id: format!("app:org.example.App{i}"),
                    kind: Some(kinds[i as usize % kinds.len()]),
                    name: format!("Example App {i}"),
                    unit: format!("app-gnome-org.example.App{i}-{}.scope", 1000 + i),
                    cgroup_count: 1,
                    process_count: 4,
                    rss_sum_kb: kb / 2,
                    swap_sum_kb: 0,
                    memory: Some(CgroupMemory {
                        current_kb: kb,
                        anon_kb: Some(kb / 2),
                        file_kb: Some(kb / 3),
                        kernel_kb: Some(kb / 20),
                        swap_kb: Some(0),
                        ..CgroupMemory::default()
                    }),
                    ..AppRow::default()
                }
            })
            .collect(),
    }
}

/// A full app history (1,800 samples, half an hour at 1 s) with a few events.
fn app_history(id: &str) -> AppHistorySeries {
    let t0 = 1_795_000_000_000 - 1_800_000;
    AppHistorySeries {
        id: id.to_owned(),
        name: "Example App 0".into(),
        last_seen_unix_ms: 1_795_000_000_000,
        gone_unix_ms: None,
        samples: (0..1_800u64)
            .map(|i| AppSample {
                unix_ms: t0 + i * 1000,
                memory_kb: 500_000 + (i * 37) % 9_000,
                anon_kb: Some(300_000 + (i * 11) % 5_000),
                file_kb: Some(150_000),
                swap_kb: 0,
                rss_sum_kb: 250_000,
                process_count: 4,
            })
            .collect(),
        events: (0..8)
            .map(|i| AppEvent {
                unix_ms: t0 + i * 200_000,
                kind: AppEventKind::OomKill,
                count: 1,
            })
            .collect(),
        spikes: Vec::new(),
    }
}

/// The Apps view with `n` apps, a new table every frame; with `plot`, the first app's plot is
/// open on a full history.
fn measure_apps(n: u32, plot: bool, frames: usize) -> f64 {
    let (update_tx, update_rx) = mpsc::channel();
    let (request_tx, _request_rx) = mpsc::channel();
    let settings = Settings {
        view: View::Apps,
        ..Settings::default()
    };
    let mut app = MemmonApp::new(settings, update_rx, request_tx);
    let _ = update_tx.send(Update::Snapshot {
        snapshot: Box::new(snapshot(100)),
        origin: Origin::Helper,
    });
    if plot {
        let id = "app:org.example.App0".to_owned();
        app.commands.push(Command::SelectApp {
            id: id.clone(),
            open_plot: true,
        });
        let _ = update_tx.send(Update::AppHistory(app_history(&id)));
    }
    let table = apps(n);
    frames_of(&mut app, frames, || {
        let _ = update_tx.send(Update::Apps(Box::new(table.clone())));
    })
}

fn measure(rows: u32, frames: usize) -> f64 {
    let (update_tx, update_rx) = mpsc::channel();
    let (request_tx, _request_rx) = mpsc::channel();
    let mut app = MemmonApp::new(Settings::default(), update_rx, request_tx);
    // A fresh snapshot every frame: the worst case (a new tick each frame).
    frames_of(&mut app, frames, || {
        let _ = update_tx.send(Update::Snapshot {
            snapshot: Box::new(snapshot(rows)),
            origin: Origin::Helper,
        });
    })
}

/// The median time of `frames` frames (after 10 to settle), `feed` called before each.
fn frames_of(app: &mut MemmonApp, frames: usize, feed: impl Fn()) -> f64 {
    let ctx = egui::Context::default();
    let input = || egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(
            egui::Pos2::ZERO,
            egui::vec2(1280.0, 760.0),
        )),
        ..Default::default()
    };
    let mut times = Vec::with_capacity(frames);
    for i in 0..frames + 10 {
        feed();
        app.drain_updates();
        let start = Instant::now();
        let mut output = ctx.run_ui(input(), |ui| app.ui(ui));
        // No renderer takes the font textures (epaint asserts in debug builds otherwise).
        output.textures_delta.clear();
        let _ = ctx.tessellate(output.shapes, output.pixels_per_point);
        app.apply_commands(&ctx);
        if i >= 10 {
            times.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    let frames: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    println!("frame_us_median rows=100: {:.0}", measure(100, frames));
    println!("frame_us_median rows=10000: {:.0}", measure(10_000, frames));
    println!(
        "frame_us_median apps=500: {:.0}",
        measure_apps(500, false, frames)
    );
    println!(
        "frame_us_median apps=500 plot: {:.0}",
        measure_apps(500, true, frames)
    );
}
