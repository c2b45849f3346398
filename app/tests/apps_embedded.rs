//! The Apps view on real data: the window (egui_kittest, headless) fed by the real source thread
//! in Embedded mode, reading this machine's /proc and cgroups. The test process itself must show
//! up under its app once that app is expanded, and the app's plot must get its recorded history.

use std::{
    sync::mpsc,
    time::{Duration, Instant},
};

use egui_kittest::{Harness, kittest::Queryable as _};
use memmon::{
    app::MemmonApp,
    command::Command,
    settings::{Settings, View},
    source::{self, SourceChoice},
};

/// Runs frames until `done` holds (the source thread answers in the background).
fn run_until(h: &mut Harness<'static, MemmonApp>, what: &str, done: impl Fn(&MemmonApp) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(h.state()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
        h.run();
    }
}

#[test]
fn the_embedded_source_lists_this_process_under_its_app_and_plots_the_app() {
    // Which app this process belongs to, as the collector groups it.
    let me = std::process::id();
    let mut collector = memmon_helper::Collector::embedded("test");
    let snapshot = collector.collect().expect("a /proc scan");
    let mine = snapshot
        .processes
        .iter()
        .find(|r| r.pid == me)
        .expect("this process in the scan");
    let id: String = mine
        .app
        .as_deref()
        .expect("this process grouped into an app")
        .to_owned();

    let (update_tx, update_rx) = mpsc::channel();
    let (request_tx, request_rx) = mpsc::channel();
    let _source = source::spawn(SourceChoice::Embedded, request_rx, update_tx, || {})
        .expect("the source thread");
    let settings = Settings {
        view: View::Apps,
        interval_ms: 500,
        ..Settings::default()
    };
    let app = MemmonApp::new(settings, update_rx, request_tx);
    let mut h = Harness::builder()
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
    run_until(&mut h, "the apps table", |app| {
        app.model.apps.row(&id).is_some()
    });
    let table = h.state().model.apps.snapshot.clone().expect("a table");
    assert!(table.process_count as usize >= table.apps.len());
    assert!(!table.grouping.is_empty(), "the grouping is described");
    h.get_by_label(&table.grouping);

    h.state_mut()
        .commands
        .push(Command::ToggleExpanded(id.clone()));
    run_until(&mut h, "this process under its app", |app| {
        app.model
            .apps
            .row(&id)
            .is_some_and(|r| r.processes.iter().any(|p| p.pid == me))
    });
    let row = h.state().model.apps.row(&id).cloned().expect("the app");
    let me_row = row
        .processes
        .iter()
        .find(|p| p.pid == me)
        .expect("this process");
    assert_eq!(me_row.app.as_deref(), Some(id.as_str()));
    assert!(row.rss_sum_kb >= me_row.rss_kb.unwrap_or(0));
    h.run();
    h.get_by_label(&format!("{} ({me})", me_row.name));

    h.state_mut().commands.push(Command::SelectApp {
        id: id.clone(),
        open_plot: true,
    });
    run_until(&mut h, "the app's history", |app| {
        app.model
            .apps
            .histories
            .get(&id)
            .is_some_and(|s| !s.samples.is_empty())
    });
    h.run();
    h.get_by_label_contains(&format!("{} — memory over time", row.name));
    assert!(h.state().plot_rect().is_some(), "the plot is drawn");
}
