//! UI build time per frame (no GPU): `egui::Context::run_ui` over the real `MemmonApp` with a
//! 1280×760 screen, plus tessellation, for a snapshot of 100 rows and one of 10,000 rows.
//! Usage: bench_frame [FRAMES]   (release build; prints medians in µs)
use std::{sync::mpsc, time::Instant};

use eframe::egui;
use memmon::{
    app::MemmonApp,
    settings::Settings,
    source::{Origin, Update},
};
use memmon_common::snapshot::{AllocStats, Mode, ProcessRow, Snapshot, SystemMemory};

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

fn measure(rows: u32, frames: usize) -> f64 {
    let (update_tx, update_rx) = mpsc::channel();
    let (request_tx, _request_rx) = mpsc::channel();
    let mut app = MemmonApp::new(Settings::default(), update_rx, request_tx);
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
        // A fresh snapshot every frame: the worst case (a new tick each frame).
        let _ = update_tx.send(Update::Snapshot {
            snapshot: Box::new(snapshot(rows)),
            origin: Origin::Helper,
        });
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
}
