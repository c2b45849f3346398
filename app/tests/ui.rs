//! Headless UI tests (egui_kittest): the real `MemmonApp` fed through its real channels,
//! clicked and typed at by AccessKit label, with assertions on state and on what it asks of its
//! data source.
use std::sync::mpsc::{self, Receiver, Sender};

use egui_kittest::{Harness, kittest::Queryable as _};
use memmon::{
    app::{MemmonApp, Settings},
    source::{Origin, Request, Update},
};
use memmon_common::snapshot::{AllocStats, Mode, ProcessRow, Snapshot, SortKey, SystemMemory};

struct Fixture {
    updates: Sender<Update>,
    requests: Receiver<Request>,
}

fn row(pid: u32, name: &str, rss_kb: u64) -> ProcessRow {
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

fn snapshot(rows: Vec<ProcessRow>) -> Box<Snapshot> {
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
        processes: rows,
    })
}

fn harness(rows: Vec<ProcessRow>, origin: Origin) -> (Harness<'static, MemmonApp>, Fixture) {
    let (update_tx, update_rx) = mpsc::channel();
    let (request_tx, request_rx) = mpsc::channel();
    let app = MemmonApp::new(Settings::default(), update_rx, request_tx);
    update_tx
        .send(Update::Snapshot {
            snapshot: snapshot(rows),
            origin,
        })
        .expect("send");
    let mut harness = Harness::builder()
        .with_size([1100.0, 720.0])
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

fn sample_rows() -> Vec<ProcessRow> {
    vec![
        row(42, "firefox", 900_000),
        row(7, "Xorg", 300_000),
        row(99, "bash", 4_000),
    ]
}

fn views(requests: &Receiver<Request>) -> Vec<(SortKey, bool)> {
    requests
        .try_iter()
        .filter_map(|r| match r {
            Request::View { key, descending } => Some((key, descending)),
            _ => None,
        })
        .collect()
}

#[test]
fn header_click_sorts_by_that_column_and_toggles() {
    let (mut h, f) = harness(sample_rows(), Origin::Helper);
    assert_eq!(
        views(&f.requests),
        vec![(SortKey::Rss, true)],
        "the default view is RSS, largest first"
    );
    h.get_by_label("Mmap#").click();
    h.run();
    assert_eq!(views(&f.requests), vec![(SortKey::Mmap, true)]);
    h.get_by_label_contains("Mmap#").click();
    h.run();
    assert_eq!(
        views(&f.requests),
        vec![(SortKey::Mmap, false)],
        "a second click reverses"
    );
    assert_eq!(h.state().settings.sort, SortKey::Mmap);
    assert!(!h.state().settings.descending);
}

#[test]
fn clicking_a_row_opens_its_plot_and_asks_for_history() {
    let (mut h, f) = harness(sample_rows(), Origin::Helper);
    let _ = f.requests.try_iter().count();
    h.get_by_label("Xorg").click();
    h.run();
    assert_eq!(h.state().selected, Some((7, 1007)));
    assert!(h.state().plot_open);
    assert!(
        f.requests.try_iter().any(|r| r
            == Request::History {
                pid: 7,
                start_time: 1007
            }),
        "history requested for the clicked process"
    );
    h.get_by_label_contains("Xorg (PID 7)");
}

#[test]
fn the_filter_narrows_rows_by_name_or_pid() {
    let (mut h, _f) = harness(sample_rows(), Origin::Helper);
    h.state_mut().filter = "fire".into();
    h.run();
    assert_eq!(h.state().visible_rows().len(), 1);
    assert!(
        h.query_by_label("Xorg").is_none(),
        "filtered-out rows are not drawn"
    );
    h.state_mut().filter = "9".into();
    h.run();
    let pids: Vec<u32> = h.state().visible_rows().iter().map(|r| r.pid).collect();
    assert_eq!(pids, vec![99]);
}

#[test]
fn keyboard_moves_the_selection_and_enter_opens_the_plot() {
    let (mut h, _f) = harness(sample_rows(), Origin::Helper);
    h.key_press(egui::Key::ArrowDown);
    h.run();
    assert_eq!(h.state().selected, Some((42, 1042)));
    h.key_press(egui::Key::ArrowDown);
    h.run();
    assert_eq!(h.state().selected, Some((7, 1007)));
    h.key_press(egui::Key::End);
    h.run();
    assert_eq!(h.state().selected, Some((99, 1099)));
    h.key_press(egui::Key::Home);
    h.run();
    assert_eq!(h.state().selected, Some((42, 1042)));
    assert!(!h.state().plot_open);
    h.key_press(egui::Key::Enter);
    h.run();
    assert!(h.state().plot_open);
}

#[test]
fn the_selection_survives_a_refresh_in_which_rows_move() {
    let (mut h, f) = harness(sample_rows(), Origin::Helper);
    h.get_by_label("bash").click();
    h.run();
    let mut moved = sample_rows();
    moved.reverse();
    moved.insert(0, row(5, "newcomer", 2_000_000));
    f.updates
        .send(Update::Snapshot {
            snapshot: snapshot(moved),
            origin: Origin::Helper,
        })
        .expect("send");
    h.run();
    assert_eq!(h.state().selected, Some((99, 1099)));
    assert_eq!(
        h.state().visible_rows()[0].pid,
        5,
        "the refresh was applied"
    );
}

#[test]
fn empty_and_huge_snapshots_do_not_panic() {
    let (mut h, f) = harness(Vec::new(), Origin::Helper);
    h.get_by_label("No process matches.");
    let many: Vec<ProcessRow> = (1..=10_000)
        .map(|p| row(p, "worker", u64::from(p)))
        .collect();
    f.updates
        .send(Update::Snapshot {
            snapshot: snapshot(many),
            origin: Origin::Helper,
        })
        .expect("send");
    h.run();
    assert_eq!(h.state().visible_rows().len(), 10_000);
    h.key_press(egui::Key::End);
    h.run();
    assert_eq!(h.state().selected, Some((10_000, 11_000)));
}

#[test]
fn the_banner_says_which_mode_and_why() {
    let (h, _f) = harness(
        sample_rows(),
        Origin::Embedded {
            why: "the helper is not installed".into(),
        },
    );
    h.get_by_label_contains("Embedded mode: reading /proc as you");
    h.get_by_label_contains("because the helper is not installed");
    h.get_by_label("Mode: Embedded");

    let (h, _f) = harness(sample_rows(), Origin::Helper);
    h.get_by_label("Mode: Full");
    assert!(
        h.query_by_label_contains("Embedded mode").is_none(),
        "no banner in Full mode"
    );

    let (mut h, f) = harness(sample_rows(), Origin::Helper);
    let mut s = snapshot(sample_rows());
    s.mode = Mode::ProcOnly;
    s.mode_reason = Some("eBPF needs root".into());
    f.updates
        .send(Update::Snapshot {
            snapshot: s,
            origin: Origin::Helper,
        })
        .expect("send");
    h.run();
    h.get_by_label("Mode: /proc only");
    h.get_by_label_contains("/proc-only mode: eBPF needs root");
}

#[test]
fn the_interval_selector_asks_the_source() {
    let (mut h, f) = harness(sample_rows(), Origin::Helper);
    let _ = f.requests.try_iter().count();
    h.get_by_label("Refresh").click();
    h.run();
    h.get_by_label("2.0 s").click();
    h.run();
    assert_eq!(h.state().settings.interval_ms, 2000);
    assert!(
        f.requests
            .try_iter()
            .any(|r| r == Request::Interval(std::time::Duration::from_millis(2000)))
    );
}

#[test]
fn two_processes_can_be_pinned_and_compared() {
    let (mut h, f) = harness(sample_rows(), Origin::Helper);
    h.get_by_label("Xorg").click();
    h.run();
    h.get_by_label("Pin").click();
    h.run();
    h.get_by_label("firefox").click();
    h.run();
    h.get_by_label("Pin").click();
    h.run();
    assert_eq!(h.state().pinned, vec![(7, 1007), (42, 1042)]);
    assert_eq!(
        h.state().settings.pinned_names,
        vec!["Xorg".to_owned(), "firefox".to_owned()]
    );
    // Both histories are asked for on every refresh.
    let _ = f.requests.try_iter().count();
    f.updates
        .send(Update::Snapshot {
            snapshot: snapshot(sample_rows()),
            origin: Origin::Helper,
        })
        .expect("send");
    h.run();
    let asked: Vec<Request> = f.requests.try_iter().collect();
    for (pid, start_time) in [(7, 1007), (42, 1042)] {
        assert!(
            asked.contains(&Request::History { pid, start_time }),
            "{asked:?}"
        );
    }
    h.get_by_label("Unpin").click();
    h.run();
    assert_eq!(h.state().pinned, vec![(7, 1007)]);
}
