//! The model without egui: updates in, requests out.

use memmon_common::{
    diagnostics::SystemSample,
    series::{HistorySample, HistorySeries},
    snapshot::{Mode, ProcessRow, Snapshot, SortKey},
};

use super::*;

fn row(pid: u32, name: &str) -> ProcessRow {
    ProcessRow {
        pid,
        start_time: 1000 + u64::from(pid),
        name: name.to_owned(),
        rss_kb: Some(u64::from(pid) * 100),
        ..Default::default()
    }
}

fn snapshot(rows: Vec<ProcessRow>) -> Update {
    Update::Snapshot {
        snapshot: Box::new(Snapshot {
            taken_at_unix_ms: 5_000,
            scan_duration_us: 1,
            mode: Mode::Full,
            mode_reason: None,
            system: Default::default(),
            process_count: rows.len() as u32,
            bpf_drops: 0,
            pressure: None,
            oom_kills: Vec::new(),
            processes: rows,
        }),
        origin: Origin::Helper,
    }
}

fn series(times: &[u64]) -> HistorySeries {
    HistorySeries {
        pid: 1,
        start_time: 2,
        samples: times
            .iter()
            .map(|&t| HistorySample {
                unix_ms: t,
                rss_kb: t,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn history(pid: u32) -> Request {
    Request::History(ProcessKey::new(pid, 1000 + u64::from(pid)))
}

#[test]
fn a_restarted_helpers_shorter_history_keeps_the_older_samples() {
    let merged = merge_history(series(&[10, 20, 30]), series(&[25, 40]));
    let times: Vec<u64> = merged.samples.iter().map(|s| s.unix_ms).collect();
    assert_eq!(times, [10, 20, 25, 40]);
    // A refresh of the same history changes nothing.
    let same = merge_history(series(&[10, 20]), series(&[10, 20, 30]));
    assert_eq!(same, series(&[10, 20, 30]));
}

#[test]
fn the_saved_view_is_asked_for_first() {
    let model = Model::new(Settings {
        sort: SortKey::Growth,
        descending: false,
        interval_ms: 2000,
        ..Default::default()
    });
    assert_eq!(
        model.initial_requests(),
        vec![
            Request::View {
                key: SortKey::Growth,
                descending: false
            },
            Request::Interval(std::time::Duration::from_millis(2000)),
            Request::Apps(None),
        ]
    );
    // The Apps view, remembered: the source sends the apps table from the start.
    let model = Model::new(Settings {
        view: View::Apps,
        app_sort: AppSortKey::Swap,
        ..Default::default()
    });
    assert!(
        model
            .initial_requests()
            .contains(&Request::Apps(Some(AppsView {
                key: AppSortKey::Swap,
                descending: true,
                limit: APPS_TOP_N,
                expanded: Vec::new(),
            }))),
        "{:?}",
        model.initial_requests()
    );
}

#[test]
fn moving_the_selection_with_the_plot_open_asks_for_the_new_history_at_once() {
    let mut m = Model::new(Settings::default());
    m.apply(snapshot(vec![row(1, "a"), row(2, "b")]));
    // Closed plot: moving asks nothing.
    assert!(m.select(ProcessKey::new(1, 1001), false).is_empty());
    assert!(!m.plot_open);
    let asked = m.open_plot();
    assert!(asked.contains(&history(1)), "{asked:?}");
    assert!(m.plot_open);
    let asked = m.select(ProcessKey::new(2, 1002), false);
    assert!(asked.contains(&history(2)), "{asked:?}");
    assert!(
        asked
            .iter()
            .any(|r| matches!(r, Request::SystemHistory { .. }))
    );
    // The same process again: nothing new to ask.
    assert!(m.select(ProcessKey::new(2, 1002), false).is_empty());
}

#[test]
fn each_snapshot_refreshes_the_plotted_histories_only_while_the_plot_is_open() {
    let mut m = Model::new(Settings::default());
    assert!(m.apply(snapshot(vec![row(1, "a")])).is_empty());
    m.select(ProcessKey::new(1, 1001), true);
    m.toggle_pin(ProcessKey::new(7, 1007), "pinned".into());
    let asked = m.apply(snapshot(vec![row(1, "a")]));
    assert_eq!(
        asked,
        vec![
            history(1),
            history(7),
            Request::SystemHistory { since_unix_ms: 0 }
        ]
    );
    m.apply(Update::SystemHistory(vec![SystemSample {
        unix_ms: 4_000,
        ..Default::default()
    }]));
    m.close_plot();
    assert_eq!(
        m.apply(snapshot(vec![row(1, "a")])),
        vec![history(7)],
        "pins stay current, the closed plot's process does not"
    );
    m.open_plot();
    assert!(
        m.plot_requests().contains(&Request::SystemHistory {
            since_unix_ms: 4_000
        }),
        "only newer system samples are asked for"
    );
}

#[test]
fn select_when_seen_waits_for_the_pid_then_opens_its_plot() {
    let mut m = Model::new(Settings::default());
    m.select_pid_when_seen(3);
    m.apply(snapshot(vec![row(1, "a")]));
    assert_eq!(m.selected_process(), None);
    let asked = m.apply(snapshot(vec![row(1, "a"), row(3, "c")]));
    assert_eq!(m.selected_process(), Some(ProcessKey::new(3, 1003)));
    assert!(m.plot_shown());
    assert!(asked.contains(&history(3)));
}

#[test]
fn pins_are_remembered_by_name_and_come_back() {
    let mut m = Model::new(Settings::default());
    m.toggle_pin(ProcessKey::new(4, 1004), "editor".into());
    let settings = m.settings.clone();
    let mut next_run = Model::new(settings);
    next_run.apply(snapshot(vec![row(9, "editor"), row(1, "a")]));
    assert_eq!(
        next_run.pinned,
        vec![Subject::Process(ProcessKey::new(9, 1009))]
    );
    next_run.toggle_pin(ProcessKey::new(9, 1009), "editor".into());
    assert!(next_run.pinned.is_empty());
    assert!(next_run.settings.pinned_names.is_empty());
}

#[test]
fn sorting_toggles_and_picks_a_natural_direction() {
    let mut m = Model::new(Settings::default());
    assert_eq!(
        m.sort_by(SortKey::Name),
        Request::View {
            key: SortKey::Name,
            descending: false
        }
    );
    assert_eq!(
        m.sort_by(SortKey::Name),
        Request::View {
            key: SortKey::Name,
            descending: true
        }
    );
    m.sort_by(SortKey::Swap);
    assert!(m.settings.descending);
}

#[test]
fn the_filter_matches_names_and_pid_prefixes() {
    let mut m = Model::new(Settings::default());
    m.apply(snapshot(vec![
        row(42, "Firefox"),
        row(7, "Xorg"),
        row(421, "x"),
    ]));
    m.filter = "fire".into();
    assert_eq!(m.visible_rows().len(), 1);
    m.filter = " 42".into();
    let pids: Vec<u32> = m.visible_rows().iter().map(|r| r.pid).collect();
    assert_eq!(pids, vec![42, 421]);
}

#[test]
fn modes_banner_and_allocation_columns() {
    let mut m = Model::new(Settings::default());
    assert_eq!(m.mode_label(), "Starting…");
    assert!(m.allocation_columns_shown());
    m.apply(snapshot(vec![row(1, "a")]));
    assert_eq!(m.mode_label(), "Full");
    assert!(m.is_full());
    assert_eq!(m.banner_text(), None);
    let Update::Snapshot { snapshot: s, .. } = snapshot(vec![row(1, "a")]) else {
        unreachable!()
    };
    m.apply(Update::Snapshot {
        snapshot: s,
        origin: Origin::Embedded {
            why: "no helper".into(),
            can_retry: true,
        },
    });
    assert_eq!(m.mode_label(), "Embedded");
    assert!(!m.is_full());
    assert!(!m.allocation_columns_shown());
    assert!(m.can_retry());
    let banner = m.banner_text().unwrap_or_default();
    assert!(
        banner.contains("because no helper") && banner.contains("hidden"),
        "{banner}"
    );
    m.apply(Update::Problem("the helper is busy".into()));
    assert_eq!(m.banner_text().as_deref(), Some("the helper is busy"));
    assert_eq!(
        m.summary(),
        "mode: Embedded, 1 rows, 0 with allocation data"
    );
}

#[test]
fn plotted_series_are_the_selected_then_the_pinned_once_each() {
    let mut m = Model::new(Settings::default());
    let mut a = series(&[1]);
    a.pid = 1;
    a.start_time = 1001;
    let mut b = series(&[2]);
    b.pid = 2;
    b.start_time = 1002;
    m.apply(Update::History(a));
    m.apply(Update::History(b));
    m.select(ProcessKey::new(2, 1002), true);
    m.toggle_pin(ProcessKey::new(1, 1001), "a".into());
    m.toggle_pin(ProcessKey::new(2, 1002), "b".into());
    let pids: Vec<u32> = m.plotted_series().iter().map(|s| s.pid).collect();
    assert_eq!(pids, vec![2, 1]);
}

#[test]
fn high_res_and_detail_requests() {
    let mut m = Model::new(Settings::default());
    m.detail_error = Some("old".into());
    assert_eq!(
        m.measure_detail(ProcessKey::new(5, 6)),
        Request::Detail(ProcessKey::new(5, 6))
    );
    assert_eq!(m.detail_error, None);
    m.set_high_res(ProcessKey::new(5, 6), true);
    assert_eq!(m.high_res, Some(ProcessKey::new(5, 6)));
    m.set_high_res(ProcessKey::new(5, 6), false);
    assert_eq!(m.high_res, None);
}

#[test]
fn an_app_and_a_process_are_selected_and_pinned_alike() {
    let mut m = Model::new(Settings::default());
    m.apply(snapshot(vec![row(1, "a")]));
    let asked = m.select(Subject::App("app:firefox".into()), true);
    assert!(
        asked.contains(&Request::AppHistory("app:firefox".into())),
        "{asked:?}"
    );
    m.toggle_pin(Subject::App("app:firefox".into()), "Firefox".into());
    m.toggle_pin(ProcessKey::new(1, 1001), "a".into());
    assert_eq!(m.settings.pinned_apps, ["app:firefox"]);
    assert_eq!(m.settings.pinned_names, ["a"]);
    // Every refresh keeps both plotted series current, the selected app once.
    let asked = m.apply(snapshot(vec![row(1, "a")]));
    assert_eq!(
        asked
            .iter()
            .filter(|r| matches!(r, Request::AppHistory(_) | Request::History(_)))
            .count(),
        2,
        "{asked:?}"
    );
    // Pinned apps come back by id in the next run.
    let next_run = Model::new(m.settings.clone());
    assert_eq!(next_run.pinned, [Subject::App("app:firefox".into())]);
    m.toggle_pin(Subject::App("app:firefox".into()), String::new());
    assert!(m.settings.pinned_apps.is_empty());
}

#[test]
fn switching_views_and_sorting_apps_ask_the_source() {
    let mut m = Model::new(Settings::default());
    assert!(matches!(m.set_view(View::Apps), Request::Apps(Some(_))));
    let Request::Apps(Some(view)) = m.sort_apps_by(AppSortKey::Memory) else {
        panic!("an apps view");
    };
    assert_eq!(
        (view.key, view.descending),
        (AppSortKey::Memory, false),
        "reversed"
    );
    let Request::Apps(Some(view)) = m.sort_apps_by(AppSortKey::Name) else {
        panic!("an apps view");
    };
    assert_eq!(
        (view.key, view.descending),
        (AppSortKey::Name, false),
        "names A→Z"
    );
    let Request::Apps(Some(view)) = m.toggle_expanded("app:x") else {
        panic!("an apps view");
    };
    assert_eq!(view.expanded, ["app:x"]);
    assert_eq!(
        m.set_view(View::Processes),
        Request::Apps(None),
        "no apps fetched"
    );
}
