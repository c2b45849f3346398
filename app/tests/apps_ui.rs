//! The Apps view in the window (egui_kittest, headless): the Processes / Apps switch, the apps
//! table sorted by any sortable column, an app expanded to its processes, an app's plot with its
//! history and OOM marker, pins across a process and an app, the notes on figures that are not
//! the app's own, the status bar's grouping sentence, icons and the apps CSV export.

use egui::accesskit::Role;
use egui_kittest::{Harness, kittest::Queryable as _};
use memmon::{
    app::MemmonApp,
    command::{Command, Export},
    model::Subject,
    settings::View,
    source::{AppsView, Origin, Request, Update},
};
use memmon_common::{
    apps::{
        AppEvent, AppEventKind, AppHistorySeries, AppKind, AppRow, AppSample, AppSortKey,
        AppsSnapshot, CgroupMemory,
    },
    process_key::ProcessKey,
    series::{HistorySample, HistorySeries},
};

mod common;

use common::*;

const T0: u64 = 1_795_000_000_000;

fn app(id: &str, name: &str, memory_mib: u64, swap_mib: u64, processes: u32) -> AppRow {
    AppRow {
        id: id.into(),
        kind: Some(AppKind::App),
        name: name.into(),
        unit: format!("{id}.scope"),
        cgroup_count: 1,
        process_count: processes,
        rss_sum_kb: memory_mib * 1024 / 2,
        memory: Some(CgroupMemory {
            current_kb: memory_mib * 1024,
            anon_kb: Some(memory_mib * 512),
            file_kb: Some(memory_mib * 256),
            swap_kb: Some(swap_mib * 1024),
            ..CgroupMemory::default()
        }),
        ..AppRow::default()
    }
}

fn apps() -> Vec<AppRow> {
    vec![
        app("app:browser", "Web Browser", 900, 10, 3),
        app("app:editor", "Text Editor", 300, 200, 1),
        app("app:terminal", "Terminal", 50, 0, 2),
    ]
}

fn table(rows: Vec<AppRow>) -> Update {
    Update::Apps(Box::new(AppsSnapshot {
        taken_at_unix_ms: T0,
        app_count: rows.len() as u32,
        process_count: 6,
        grouping: "Grouped by systemd unit; cgroup v2 memory controller".into(),
        grouping_us: 120,
        apps: rows,
    }))
}

/// The window in the Apps view with `rows`, and the requests so far drained.
fn apps_harness(rows: Vec<AppRow>) -> (Harness<'static, MemmonApp>, Fixture) {
    let (mut h, f) = harness(sample_rows(), Origin::Helper);
    h.get_by_label("Apps").click();
    h.run();
    f.updates.send(table(rows)).expect("send");
    h.run();
    let _ = f.requests.try_iter().count();
    (h, f)
}

fn apps_views(f: &Fixture) -> Vec<Option<AppsView>> {
    f.requests
        .try_iter()
        .filter_map(|r| match r {
            Request::Apps(view) => Some(view),
            _ => None,
        })
        .collect()
}

/// The names in the order the table draws them (top to bottom).
fn order(h: &Harness<'static, MemmonApp>, names: &[&str]) -> Vec<String> {
    let mut found: Vec<(f32, String)> = names
        .iter()
        .map(|n| (h.get_by_label(n).rect().top(), (*n).to_owned()))
        .collect();
    found.sort_by(|a, b| a.0.total_cmp(&b.0));
    found.into_iter().map(|(_, n)| n).collect()
}

fn app_history(id: &str, name: &str, events: Vec<AppEvent>) -> AppHistorySeries {
    AppHistorySeries {
        id: id.into(),
        name: name.into(),
        last_seen_unix_ms: T0 + 3_000,
        gone_unix_ms: None,
        samples: [(T0, 800), (T0 + 1_000, 900), (T0 + 2_000, 400)]
            .into_iter()
            .map(|(t, mib)| AppSample {
                unix_ms: t,
                memory_kb: mib * 1024,
                anon_kb: Some(mib * 512),
                file_kb: Some(mib * 256),
                swap_kb: 0,
                rss_sum_kb: mib * 512,
                process_count: 3,
            })
            .collect(),
        events,
        spikes: Vec::new(),
    }
}

#[test]
fn the_switch_shows_the_apps_table_is_remembered_and_has_keys() {
    let (mut h, f) = harness(sample_rows(), Origin::Helper);
    assert_eq!(
        apps_views(&f),
        vec![None],
        "the Processes view fetches no apps"
    );
    h.get_by_label("Apps").click();
    h.run();
    assert_eq!(
        h.state().model.settings.view,
        View::Apps,
        "saved in settings"
    );
    assert_eq!(
        apps_views(&f),
        vec![Some(AppsView {
            key: AppSortKey::Memory,
            descending: true,
            limit: memmon::source::APPS_TOP_N,
            expanded: Vec::new(),
        })]
    );
    h.get_by_label("Waiting for the first apps table…");
    f.updates.send(table(apps())).expect("send");
    h.run();
    h.get_by_label("Web Browser");
    h.get_by_label("900.0 MiB");
    h.get_by_label("Memory, sorted descending");
    assert!(
        h.query_by_label("firefox").is_none(),
        "the process grid is not drawn"
    );
    h.get_by_label("3 apps");
    // Ctrl+1 and Ctrl+2 switch.
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Num1);
    h.run();
    assert_eq!(h.state().model.settings.view, View::Processes);
    h.get_by_label("firefox");
    assert_eq!(apps_views(&f), vec![None], "no apps fetched any more");
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Num2);
    h.run();
    assert_eq!(h.state().model.settings.view, View::Apps);
    h.get_by_label("Web Browser");
    // The next run starts in the Apps view.
    let (h, f) = harness_with(
        h.state().model.settings.clone(),
        sample_rows(),
        Origin::Helper,
    );
    assert!(matches!(apps_views(&f).as_slice(), [Some(_)]));
    h.get_by_label("Waiting for the first apps table…");
}

#[test]
fn sorting_by_a_column_orders_the_rows_and_asks_the_source() {
    let (mut h, f) = apps_harness(apps());
    let names = ["Web Browser", "Text Editor", "Terminal"];
    assert_eq!(
        order(&h, &names),
        ["Web Browser", "Text Editor", "Terminal"]
    );
    h.get_by_label("Swap").click();
    h.run();
    assert_eq!(
        order(&h, &names),
        ["Text Editor", "Web Browser", "Terminal"],
        "largest swap first, before the source answers"
    );
    let views = apps_views(&f);
    assert!(
        matches!(views.as_slice(), [Some(v)] if v.key == AppSortKey::Swap && v.descending),
        "{views:?}"
    );
    h.get_by_label("Swap, sorted descending").click();
    h.run();
    assert_eq!(
        order(&h, &names),
        ["Terminal", "Web Browser", "Text Editor"]
    );
    h.get_by_label("App").click();
    h.run();
    assert_eq!(
        order(&h, &names),
        ["Terminal", "Text Editor", "Web Browser"]
    );
    h.get_by_label("App, sorted ascending");
    // Every sortable column of the table sorts.
    for c in memmon_common::apps::AppColumn::ALL {
        let Some(key) = c.sort_key() else { continue };
        let _ = apps_views(&f);
        let title = c.title();
        let labels = [
            title.to_owned(),
            format!("{title}, sorted descending"),
            format!("{title}, sorted ascending"),
        ];
        let header = labels
            .iter()
            .find_map(|label| h.query_by_label(label))
            .expect("the header cell");
        header.click();
        h.run();
        assert_eq!(h.state().model.settings.app_sort, key, "{}", c.title());
        assert!(matches!(apps_views(&f).as_slice(), [Some(v)] if v.key == key));
    }
}

#[test]
fn numeric_titles_sit_over_their_values() {
    let (h, _f) = apps_harness(apps());
    let value = h.get_by_label("900.0 MiB").rect();
    let title = h
        .state()
        .apps_panel()
        .title_rect(memmon_common::apps::AppColumn::Memory)
        .expect("title drawn");
    assert!(
        (title.right() - value.right()).abs() <= 1.5,
        "{title:?} over {value:?}"
    );
}

#[test]
fn expanding_an_app_lists_its_processes_and_a_process_opens_its_plot() {
    let (mut h, f) = apps_harness(apps());
    h.get_by_label("Show the processes of Web Browser").click();
    h.run();
    let views = apps_views(&f);
    assert!(
        matches!(views.as_slice(), [Some(v)] if v.expanded == ["app:browser"]),
        "{views:?}"
    );
    h.get_by_label("Loading processes…");
    let mut rows = apps();
    rows[0].processes = vec![row(42, "firefox", 600_000), row(43, "firefox-gpu", 200_000)];
    f.updates.send(table(rows)).expect("send");
    h.run();
    assert!(h.query_by_label("Loading processes…").is_none());
    assert_eq!(
        order(
            &h,
            &[
                "Web Browser",
                "firefox (42)",
                "firefox-gpu (43)",
                "Text Editor"
            ]
        ),
        [
            "Web Browser",
            "firefox (42)",
            "firefox-gpu (43)",
            "Text Editor"
        ],
        "the processes under their app"
    );
    h.get_by_label("585.9 MiB"); // firefox's RSS under "RSS sum"
    h.get_by_label("firefox (42)").click();
    h.run();
    assert_eq!(
        h.state().model.selected_process(),
        Some(ProcessKey::new(42, 1042))
    );
    assert!(
        f.requests
            .try_iter()
            .any(|r| r == Request::History(ProcessKey::new(42, 1042)))
    );
    // Collapsing hides them again (→ / ← do the same for the selected app).
    h.get_by_label("Hide the processes of Web Browser").click();
    h.run();
    assert!(h.query_by_label("firefox (42)").is_none());
    let views = apps_views(&f);
    assert!(matches!(views.as_slice(), [Some(v)] if v.expanded.is_empty()));
    h.get_by_label("Text Editor").click();
    h.run();
    h.key_press(egui::Key::ArrowRight);
    h.run();
    assert!(h.state().model.apps.is_expanded("app:editor"));
    h.key_press(egui::Key::ArrowLeft);
    h.run();
    assert!(!h.state().model.apps.is_expanded("app:editor"));
}

#[test]
fn clicking_an_app_plots_its_history_with_its_oom_kill() {
    let (mut h, f) = apps_harness(apps());
    h.get_by_label("Web Browser").click();
    h.run();
    assert_eq!(
        h.state().model.selected,
        Some(Subject::App("app:browser".into()))
    );
    let asked: Vec<Request> = f.requests.try_iter().collect();
    assert!(
        asked.contains(&Request::AppHistory("app:browser".into())),
        "asked at once, with history from before the click: {asked:?}"
    );
    h.get_by_label_contains("Web Browser — memory over time");
    h.get_by_label("Loading history…");
    let oom = AppEvent {
        unix_ms: T0 + 2_000,
        kind: AppEventKind::OomKill,
        count: 1,
    };
    f.updates
        .send(Update::AppHistory(app_history(
            "app:browser",
            "Web Browser",
            vec![oom],
        )))
        .expect("send");
    h.run();
    assert!(h.query_by_label("Loading history…").is_none());
    assert!(h.state().plot_rect().is_some(), "the plot is drawn");
    // The legend names each line and the OOM marker; the caption counts the kill.
    for entry in ["Memory", "Anon", "Page cache", "Swap", "OOM kills"] {
        h.get_by_role_and_label(Role::CheckBox, entry);
    }
    assert!(
        h.query_by_role_and_label(Role::CheckBox, "Spikes (peak)")
            .is_none()
    );
    h.get_by_label_contains("1 OOM kill — last at");
    // Arrow keys move between apps and the open plot follows at once.
    let _ = f.requests.try_iter().count();
    h.key_press(egui::Key::ArrowDown);
    h.run();
    assert_eq!(
        h.state().model.selected,
        Some(Subject::App("app:editor".into()))
    );
    assert!(
        f.requests
            .try_iter()
            .any(|r| r == Request::AppHistory("app:editor".into()))
    );
}

#[test]
fn a_pinned_process_and_a_pinned_app_are_compared_in_one_plot() {
    let (mut h, f) = harness(sample_rows(), Origin::Helper);
    h.get_by_label("Xorg").click();
    h.run();
    h.get_by_label("Pin").click();
    h.run();
    f.updates
        .send(Update::History(HistorySeries {
            pid: 7,
            start_time: 1007,
            name: "Xorg".into(),
            last_seen_unix_ms: T0 + 3_000,
            samples: vec![HistorySample {
                unix_ms: T0,
                rss_kb: 300_000,
                peak_rss_kb: 300_000,
                net_mapped: None,
            }],
            ..Default::default()
        }))
        .expect("send");
    h.get_by_label("Apps").click();
    h.run();
    f.updates.send(table(apps())).expect("send");
    h.run();
    h.get_by_label("Web Browser").click();
    h.run();
    h.get_by_label("Pin").click();
    h.run();
    assert_eq!(
        h.state().model.pinned,
        vec![
            Subject::Process(ProcessKey::new(7, 1007)),
            Subject::App("app:browser".into())
        ]
    );
    assert_eq!(h.state().model.settings.pinned_apps, ["app:browser"]);
    f.updates
        .send(Update::AppHistory(app_history(
            "app:browser",
            "Web Browser",
            Vec::new(),
        )))
        .expect("send");
    h.run();
    // The app's plot shows the pinned process beside it …
    h.get_by_role_and_label(Role::CheckBox, "RSS Xorg (7)");
    // … and a process's plot shows the pinned app.
    h.state_mut()
        .commands
        .push(Command::Select(ProcessKey::new(7, 1007)));
    h.run();
    h.get_by_role_and_label(Role::CheckBox, "Memory Web Browser (app)");
    // Both stay current with every refresh.
    let _ = f.requests.try_iter().count();
    f.updates
        .send(Update::Snapshot {
            snapshot: snapshot(sample_rows()),
            origin: Origin::Helper,
        })
        .expect("send");
    h.run();
    let asked: Vec<Request> = f.requests.try_iter().collect();
    assert!(
        asked.contains(&Request::History(ProcessKey::new(7, 1007))),
        "{asked:?}"
    );
    assert!(
        asked.contains(&Request::AppHistory("app:browser".into())),
        "{asked:?}"
    );
}

#[test]
fn figures_that_are_not_the_apps_own_say_so() {
    let mut shared = app("service:cron", "cron", 0, 0, 1);
    shared.kind = Some(AppKind::Service);
    shared.rss_sum_kb = 3 * 1024;
    shared.memory_covers = Some("/system.slice".into());
    let mut session = app("session:3", "session 3", 40, 0, 4);
    session.kind = Some(AppKind::Session);
    let (mut h, f) = apps_harness(vec![shared, session]);
    // The headline of a shared cgroup is the RSS sum, marked.
    h.get_by_label("Σ 3.0 MiB");
    h.get_by_label("cron").click();
    h.run();
    f.updates
        .send(Update::AppHistory(app_history(
            "service:cron",
            "cron",
            Vec::new(),
        )))
        .expect("send");
    h.run();
    h.get_by_label_contains("Memory is the sum of its processes' RSS");
    h.get_by_label_contains("/system.slice, also holds other processes");
    h.get_by_label("session 3").click();
    h.run();
    h.get_by_label_contains("Its cgroup covers the whole login session");
    // The RSS sum column says what it double-counts.
    h.get_by_label("RSS sum").hover();
    for _ in 0..10 {
        h.step();
    }
    h.get_by_label_contains("counts pages they share");
}

#[test]
fn the_status_bar_says_how_apps_are_grouped_only_in_the_apps_view() {
    let (mut h, _f) = apps_harness(apps());
    h.get_by_label("Grouped by systemd unit; cgroup v2 memory controller");
    h.get_by_label("Processes").click();
    h.run();
    assert!(
        h.query_by_label_contains("Grouped by systemd unit")
            .is_none()
    );
}

#[test]
fn the_apps_table_exports_as_csv() {
    let (mut h, _f) = apps_harness(apps());
    let dir = std::env::temp_dir().join(format!("memmon-apps-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("apps.csv");
    h.state_mut()
        .commands
        .push(Command::Export(Export::AppsCsv, Some(path.clone())));
    h.run();
    let mut reader = csv::Reader::from_path(&path).expect("apps CSV written");
    let header = reader.headers().expect("header").clone();
    let memory = header
        .iter()
        .position(|c| c == "memory_kb")
        .expect("a memory column");
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("record")).collect();
    assert_eq!(records.len(), 3);
    assert_eq!(&records[0][0], "Web Browser", "in the table's order");
    assert_eq!(records[0][memory].parse::<u64>(), Ok(900 * 1024));
    h.get_by_label_contains("Saved");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_apps_icon_is_loaded_off_the_ui_thread_and_others_get_letters() {
    let dir = std::env::temp_dir().join(format!("memmon-apps-icon-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let png = dir.join("browser.png");
    image::RgbaImage::from_pixel(48, 48, image::Rgba([10, 120, 200, 255]))
        .save(&png)
        .expect("icon written");
    let icon = png.to_string_lossy().into_owned();
    let mut rows = apps();
    rows[0].icon = Some(icon.clone());
    let (mut h, _f) = apps_harness(rows);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !h.state().apps_panel().icons.is_ready(&icon) {
        assert!(
            std::time::Instant::now() < deadline,
            "the icon was not loaded"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        h.run();
    }
    assert_eq!(
        h.state().apps_panel().icons.len(),
        1,
        "apps without an icon name ask for none"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn many_apps_and_an_empty_table_do_not_panic() {
    let many: Vec<AppRow> = (0..500)
        .map(|i| app(&format!("app:a{i}"), &format!("App {i}"), i, 0, 1))
        .collect();
    let (mut h, f) = apps_harness(many);
    h.key_press(egui::Key::End);
    h.run();
    assert_eq!(
        h.state().model.selected,
        Some(Subject::App("app:a0".into())),
        "the smallest is last"
    );
    f.updates.send(table(Vec::new())).expect("send");
    h.run();
    h.get_by_label("No app matches.");
}

#[test]
fn an_apps_error_is_shown_beside_the_last_table_until_the_next_one() {
    let (mut h, f) = apps_harness(apps());
    f.updates
        .send(Update::AppsError(
            "the helper cannot list apps: UnknownMethod".into(),
        ))
        .expect("send");
    h.run();
    h.get_by_label("Apps not updated: the helper cannot list apps: UnknownMethod");
    h.get_by_label("Web Browser");
    f.updates.send(table(apps())).expect("send");
    h.run();
    assert!(h.query_by_label_contains("Apps not updated").is_none());
    // With no table at all, the error takes the table's place.
    let (mut h, f) = harness(sample_rows(), Origin::Helper);
    h.get_by_label("Apps").click();
    h.run();
    f.updates
        .send(Update::AppsError("the helper is busy: overloaded".into()))
        .expect("send");
    h.run();
    h.get_by_label("No apps: the helper is busy: overloaded");
}
