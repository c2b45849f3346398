//! Headless UI tests (egui_kittest): the real `MemmonApp` fed through its real channels,
//! clicked and typed at by AccessKit label, with assertions on state and on what it asks of its
//! data source.
use egui_kittest::kittest::Queryable as _;
use memmon::model::Subject;
use memmon::source::{Origin, Request, Update};
use memmon_common::process_key::ProcessKey;
use memmon_common::snapshot::{Mode, ProcessRow, SortKey};

mod common;

use common::*;

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
    assert_eq!(h.state().model.settings.sort, SortKey::Mmap);
    assert!(!h.state().model.settings.descending);
}

#[test]
fn clicking_a_row_opens_its_plot_and_asks_for_history() {
    let (mut h, f) = harness(sample_rows(), Origin::Helper);
    let _ = f.requests.try_iter().count();
    h.get_by_label("Xorg").click();
    h.run();
    assert_eq!(
        h.state().model.selected_process(),
        Some(ProcessKey::new(7, 1007))
    );
    assert!(h.state().model.plot_open);
    assert!(
        f.requests
            .try_iter()
            .any(|r| r == Request::History(ProcessKey::new(7, 1007))),
        "history requested for the clicked process"
    );
    h.get_by_label_contains("Xorg (PID 7)");
}

#[test]
fn the_filter_narrows_rows_by_name_or_pid() {
    let (mut h, _f) = harness(sample_rows(), Origin::Helper);
    h.state_mut().model.filter = "fire".into();
    h.run();
    assert_eq!(h.state().model.visible_rows().len(), 1);
    assert!(
        h.query_by_label("Xorg").is_none(),
        "filtered-out rows are not drawn"
    );
    h.state_mut().model.filter = "9".into();
    h.run();
    let pids: Vec<u32> = h
        .state()
        .model
        .visible_rows()
        .iter()
        .map(|r| r.pid)
        .collect();
    assert_eq!(pids, vec![99]);
}

#[test]
fn keyboard_moves_the_selection_and_enter_opens_the_plot() {
    let (mut h, _f) = harness(sample_rows(), Origin::Helper);
    h.key_press(egui::Key::ArrowDown);
    h.run();
    assert_eq!(
        h.state().model.selected_process(),
        Some(ProcessKey::new(42, 1042))
    );
    h.key_press(egui::Key::ArrowDown);
    h.run();
    assert_eq!(
        h.state().model.selected_process(),
        Some(ProcessKey::new(7, 1007))
    );
    h.key_press(egui::Key::End);
    h.run();
    assert_eq!(
        h.state().model.selected_process(),
        Some(ProcessKey::new(99, 1099))
    );
    h.key_press(egui::Key::Home);
    h.run();
    assert_eq!(
        h.state().model.selected_process(),
        Some(ProcessKey::new(42, 1042))
    );
    assert!(!h.state().model.plot_open);
    h.key_press(egui::Key::Enter);
    h.run();
    assert!(h.state().model.plot_open);
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
    assert_eq!(
        h.state().model.selected_process(),
        Some(ProcessKey::new(99, 1099))
    );
    assert_eq!(
        h.state().model.visible_rows()[0].pid,
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
    assert_eq!(h.state().model.visible_rows().len(), 10_000);
    h.key_press(egui::Key::End);
    h.run();
    assert_eq!(
        h.state().model.selected_process(),
        Some(ProcessKey::new(10_000, 11_000))
    );
}

#[test]
fn after_a_refusal_the_banner_offers_one_more_try_and_never_asks_by_itself() {
    let (mut h, f) = harness(
        sample_rows(),
        Origin::Embedded {
            why: "the helper refused: the authentication dialog was dismissed".into(),
            can_retry: true,
        },
    );
    h.get_by_label_contains("dialog was dismissed");
    for _ in 0..5 {
        h.run();
    }
    assert!(
        !f.requests.try_iter().any(|r| r == Request::RetryHelper),
        "the app never retries interactively on its own"
    );
    h.get_by_label("Try again").click();
    h.run();
    assert_eq!(
        f.requests
            .try_iter()
            .filter(|r| *r == Request::RetryHelper)
            .count(),
        1,
        "one click, one interactive attempt"
    );
    // Embedded by choice: nothing to try again.
    let (h, _f) = harness(
        sample_rows(),
        Origin::Embedded {
            why: "started with --source embedded".into(),
            can_retry: false,
        },
    );
    assert!(h.query_by_label("Try again").is_none());
}

#[test]
fn the_banner_says_which_mode_and_why() {
    let (h, _f) = harness(
        sample_rows(),
        Origin::Embedded {
            why: "the helper is not installed".into(),
            can_retry: true,
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
    assert_eq!(h.state().model.settings.interval_ms, 2000);
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
    assert_eq!(
        h.state().model.pinned,
        vec![
            Subject::Process(ProcessKey::new(7, 1007)),
            Subject::Process(ProcessKey::new(42, 1042))
        ]
    );
    assert_eq!(
        h.state().model.settings.pinned_names,
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
    for key in [ProcessKey::new(7, 1007), ProcessKey::new(42, 1042)] {
        assert!(asked.contains(&Request::History(key)), "{asked:?}");
    }
    h.get_by_label("Unpin").click();
    h.run();
    assert_eq!(
        h.state().model.pinned,
        vec![Subject::Process(ProcessKey::new(7, 1007))]
    );
}
