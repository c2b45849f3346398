//! The kittest fixture shared by the UI test files: the real `MemmonApp` fed through its real
//! channels.
#![allow(dead_code)] // each test file uses a different part

use std::sync::mpsc::{self, Receiver, Sender};

use egui_kittest::Harness;
use memmon::{
    app::MemmonApp,
    settings::Settings,
    source::{Origin, Request, Update},
};
use memmon_common::snapshot::{AllocStats, Mode, ProcessRow, Snapshot, SortKey, SystemMemory};

pub struct Fixture {
    pub updates: Sender<Update>,
    pub requests: Receiver<Request>,
}

pub fn row(pid: u32, name: &str, rss_kb: u64) -> ProcessRow {
    ProcessRow {
        pid,
        start_time: 1000 + u64::from(pid),
        name: name.to_owned(),
        rss_kb: Some(rss_kb),
        virtual_kb: Some(rss_kb * 4),
        peak_rss_kb: Some(rss_kb + 10),
        swap_kb: Some(0),
        alloc: Some(AllocStats {
            mmap_count: u64::from(pid),
            net_mapped: 4096,
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn snapshot(rows: Vec<ProcessRow>) -> Box<Snapshot> {
    Box::new(Snapshot {
        taken_at_unix_ms: 1_795_000_000_000,
        scan_duration_us: 100,
        mode: Mode::Full,
        mode_reason: None,
        system: SystemMemory {
            total_kb: 8 << 20,
            available_kb: 4 << 20,
            swap_total_kb: 0,
            swap_free_kb: 0,
        },
        process_count: rows.len() as u32,
        bpf_drops: 0,
        pressure: None,
        oom_kills: Vec::new(),
        processes: rows,
    })
}

pub fn harness(rows: Vec<ProcessRow>, origin: Origin) -> (Harness<'static, MemmonApp>, Fixture) {
    harness_with(Settings::default(), rows, origin)
}

/// The fixture with saved settings (as if from an earlier run).
pub fn harness_with(
    settings: Settings,
    rows: Vec<ProcessRow>,
    origin: Origin,
) -> (Harness<'static, MemmonApp>, Fixture) {
    let (update_tx, update_rx) = mpsc::channel();
    let (request_tx, request_rx) = mpsc::channel();
    let app = MemmonApp::new(settings, update_rx, request_tx);
    update_tx
        .send(Update::Snapshot {
            snapshot: snapshot(rows),
            origin,
        })
        .expect("send");
    let mut harness = Harness::builder()
        .with_size([1280.0, 760.0])
        .build_ui_state(
            |ui, app: &mut MemmonApp| {
                app.drain_updates();
                app.ui(ui);
                let ctx = ui.ctx().clone();
                app.apply_commands(&ctx);
            },
            app,
        );
    harness.run();
    (
        harness,
        Fixture {
            updates: update_tx,
            requests: request_rx,
        },
    )
}

pub fn sample_rows() -> Vec<ProcessRow> {
    vec![
        row(42, "firefox", 900_000),
        row(7, "Xorg", 300_000),
        row(99, "bash", 4_000),
    ]
}

pub fn views(requests: &Receiver<Request>) -> Vec<(SortKey, bool)> {
    requests
        .try_iter()
        .filter_map(|r| match r {
            Request::View { key, descending } => Some((key, descending)),
            _ => None,
        })
        .collect()
}

/// A window export: 1280×760 and not blank (more than 50 colours).
pub fn assert_window_png(png: &std::path::Path) {
    let image = image::open(png).expect("a readable PNG").to_rgba8();
    assert_eq!(image.dimensions(), (1280, 760), "the window's size");
    let mut colours = std::collections::HashSet::new();
    for p in image.pixels() {
        colours.insert(p.0);
        if colours.len() > 50 {
            break;
        }
    }
    assert!(
        colours.len() > 50,
        "the picture looks blank ({} colours)",
        colours.len()
    );
}

/// Drawing slack allowed when comparing rects, in points.
pub const FIT_EPS: f32 = 0.5;

/// The label showing `text` is drawn at its full laid-out width (not cut short with "…") and
/// within `column` (its header cell's rect); `what` names it in the failure message.
pub fn assert_cell_fits(
    h: &Harness<'_, MemmonApp>,
    text: &str,
    column: eframe::egui::Rect,
    font: &eframe::egui::FontId,
    what: &str,
) {
    use eframe::egui;
    use egui_kittest::kittest::Queryable as _;
    let cell = h
        .query_by_label(text)
        .unwrap_or_else(|| panic!("{what}: no cell shows {text:?}"))
        .rect();
    let needed = h
        .ctx
        .fonts_mut(|f| {
            let mut job = egui::text::LayoutJob::simple_singleline(
                text.to_owned(),
                font.clone(),
                egui::Color32::WHITE,
            );
            job.halign = egui::Align::RIGHT;
            f.layout_job(job)
        })
        .size()
        .x;
    assert!(
        cell.width() + FIT_EPS >= needed,
        "{what} {text:?} is drawn {} wide, needs {needed} (column {column:?})",
        cell.width()
    );
    assert!(
        cell.left() >= column.left() - FIT_EPS && cell.right() <= column.right() + FIT_EPS,
        "{what} {text:?} at {cell:?} does not fit its column {column:?}"
    );
}
