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

/// The window in the Apps view, fed by the real source thread in Embedded mode (the thread ends
/// when the window, which holds its channels, is dropped).
fn embedded_window() -> Harness<'static, MemmonApp> {
    let (update_tx, update_rx) = mpsc::channel();
    let (request_tx, request_rx) = mpsc::channel();
    source::spawn(SourceChoice::Embedded, request_rx, update_tx, || {}).expect("the source thread");
    let settings = Settings {
        view: View::Apps,
        interval_ms: 500,
        ..Settings::default()
    };
    let app = MemmonApp::new(settings, update_rx, request_tx);
    Harness::builder()
        .with_size([1280.0, 760.0])
        .build_ui_state(
            |ui, app: &mut MemmonApp| {
                app.drain_updates();
                app.ui(ui);
                let ctx = ui.ctx().clone();
                app.apply_commands(&ctx);
            },
            app,
        )
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

    let mut h = embedded_window();
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

/// A Flatpak app's scope made for the test in every cgroup hierarchy, with one process in it;
/// removed (process killed, directories removed) when dropped, also when the test fails.
struct FlatpakScope {
    dirs: Vec<std::path::PathBuf>,
    memory_dir: std::path::PathBuf,
    child: std::process::Child,
}

impl FlatpakScope {
    fn new() -> FlatpakScope {
        use memmon_helper::apps::Mounts;
        let mounts = Mounts::discover();
        let relative = format!(
            "memmon-kittest-{}/user.slice/user-1000.slice/user@1000.service/app.slice/app-flatpak-org.example.KittestApp-77.scope",
            std::process::id()
        );
        let memory_mount = if mounts.unified_has_memory {
            mounts.unified.clone()
        } else {
            mounts.memory_v1.clone()
        }
        .expect("a memory controller");
        let roots: Vec<std::path::PathBuf> =
            [&mounts.systemd_v1, &mounts.unified, &mounts.memory_v1]
                .into_iter()
                .flatten()
                .map(|m| m.point.clone())
                .collect();
        let mut dirs = Vec::new();
        for root in &roots {
            let mut dir = root.clone();
            for component in relative.split('/') {
                dir = dir.join(component);
                if !dir.exists() {
                    std::fs::create_dir(&dir).expect("mkdir");
                    dirs.push(dir.clone());
                }
            }
        }
        // The child moves itself, then execs: what it allocates is charged to the scope.
        let procs: Vec<String> = roots
            .iter()
            .map(|r| r.join(&relative).join("cgroup.procs").display().to_string())
            .collect();
        let script = format!(
            "for f in {}; do echo $$ > $f; done; exec sleep 60",
            procs.join(" ")
        );
        let child = std::process::Command::new("sh")
            .args(["-c", &script])
            .spawn()
            .expect("spawn");
        FlatpakScope {
            dirs,
            memory_dir: memory_mount.point.join(&relative),
            child,
        }
    }

    fn usage_kb(&self) -> u64 {
        let read = |f: &str| std::fs::read_to_string(self.memory_dir.join(f));
        let text = read("memory.current")
            .or_else(|_| read("memory.usage_in_bytes"))
            .expect("usage");
        text.trim().parse::<u64>().expect("a number") / 1024
    }
}

impl Drop for FlatpakScope {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for dir in self.dirs.iter().rev() {
            for _ in 0..100 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[test]
fn an_app_in_its_own_cgroup_shows_in_the_window_with_the_cgroups_own_memory() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "creating cgroups needs root, and CI=true: refusing to skip"
        );
        eprintln!("SKIPPED: creating cgroups needs root");
        return;
    }
    let scope = FlatpakScope::new();
    let id = "u1000/flatpak:org.example.KittestApp";
    let mut h = embedded_window();
    let child = scope.child.id();
    h.state_mut()
        .commands
        .push(Command::ToggleExpanded(id.to_owned()));
    run_until(&mut h, "the Flatpak app with its sleep", |app| {
        app.model.apps.row(id).is_some_and(|r| {
            r.processes
                .iter()
                .any(|p| p.pid == child && p.name == "sleep")
        })
    });
    let row = h.state().model.apps.row(id).cloned().expect("the app");
    assert_eq!(row.kind, Some(memmon_common::apps::AppKind::Flatpak));
    assert_eq!(row.process_count, 1);
    assert_eq!(row.memory_covers, None, "its own cgroup");
    let usage = scope.usage_kb();
    assert!(
        row.memory_kb().abs_diff(usage) * 50 <= usage.max(1),
        "the window's memory {} KiB is the cgroup's counter {usage} KiB",
        row.memory_kb()
    );
    h.run();
    h.get_by_label("org.example.KittestApp");
    h.get_by_label(&format!("sleep ({child})"));
}
