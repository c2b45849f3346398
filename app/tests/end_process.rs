//! Ending a process from the window (egui_kittest), on real processes: the row menu and the
//! Delete key open a confirmation that names the process and its memory; SIGTERM ends a
//! cooperative child; one that ignores SIGTERM is offered "Force quit" (SIGKILL) after 3 s; another
//! user's process cannot be chosen; a process that exited since the last update is refused.
//!
//! The rows are the real collector's (as embedded mode reads them). These tests run as root
//! here and on CI; the other user's process is started with `setpriv` — missing it (or root)
//! on CI (`CI=true`) is a failure.

use std::{
    os::unix::process::ExitStatusExt as _,
    process::{Child, Command as Process, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use egui_kittest::{
    Harness,
    kittest::{NodeT as _, Queryable as _},
};
use memmon::{app::MemmonApp, end_process::FORCE_QUIT_AFTER, source::Origin};
use memmon_common::{column::kib, snapshot::ProcessRow};

mod common;

use common::*;

/// A child killed and reaped when the test ends, however it ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Reaped {
    fn spawn(program: &str, args: &[&str]) -> Reaped {
        Reaped(
            Process::new(program)
                .args(args)
                .stdin(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("{program}: {e}")),
        )
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

/// The process's row as the embedded collector reads it, once it runs `name`.
fn real_row(pid: u32, name: &str) -> ProcessRow {
    let mut collector = memmon_helper::Collector::embedded("test");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let snapshot = collector.collect().expect("a /proc scan");
        if let Some(row) = snapshot
            .processes
            .into_iter()
            .find(|r| r.pid == pid && r.name == name && r.rss_kb.is_some())
        {
            return row;
        }
        assert!(Instant::now() < deadline, "{pid} never ran {name}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The window with this one process in it (so its name is a unique label).
fn window_with(row: &ProcessRow) -> Harness<'static, MemmonApp> {
    harness(vec![row.clone()], Origin::Helper).0
}

fn open_menu(h: &mut Harness<'static, MemmonApp>, name: &str) {
    h.get_by_label(name).click_secondary();
    h.run();
}

/// The dialog's question, which names the process and says how much memory it uses.
fn assert_confirmation(h: &Harness<'static, MemmonApp>, row: &ProcessRow) {
    h.get_by_label(&format!("End “{}” (PID {})?", row.name, row.pid));
    let rss = kib(row.rss_kb.expect("rss"));
    h.get_by_label(&format!("It uses {rss} of memory (RSS)."));
}

/// Runs frames until `label` appears, at most `limit` (stepping: while the dialog waits for the
/// process, its spinner keeps repainting, so the frames never "settle").
fn run_until_label(h: &mut Harness<'static, MemmonApp>, label: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while h.query_by_label_contains(label).is_none() {
        assert!(Instant::now() < deadline, "“{label}” never appeared");
        std::thread::sleep(Duration::from_millis(50));
        h.run_steps(2);
    }
}

#[test]
fn the_row_menu_asks_first_and_sigterm_ends_a_cooperative_child() {
    let mut child = Reaped::spawn("sleep", &["60"]);
    let row = real_row(child.pid(), "sleep");
    let mut h = window_with(&row);
    open_menu(&mut h, "sleep");
    h.get_by_label("End process…").click();
    h.run();
    assert_confirmation(&h, &row);
    assert!(
        child.exit_within(Duration::from_millis(200)).is_none(),
        "nothing is sent before the user confirms"
    );
    h.get_by_label("End process").click();
    h.run_steps(2); // a spinner repaints while it waits
    let status = child.exit_within(Duration::from_secs(5)).expect("it exits");
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    run_until_label(&mut h, "has ended (SIGTERM)", Duration::from_secs(2));
    h.get_by_label("Close").click();
    h.run();
    assert!(h.query_by_label_contains("has ended").is_none());
}

#[test]
fn cancel_leaves_the_process_alone() {
    let mut child = Reaped::spawn("sleep", &["60"]);
    let row = real_row(child.pid(), "sleep");
    let mut h = window_with(&row);
    h.get_by_label("sleep").click();
    h.run();
    h.key_press(egui::Key::Delete);
    h.run();
    assert_confirmation(&h, &row);
    h.get_by_label("Cancel").click();
    h.run();
    assert!(h.query_by_label_contains("End “sleep”").is_none());
    assert!(child.exit_within(Duration::from_millis(300)).is_none());
}

#[test]
fn a_child_that_ignores_sigterm_is_offered_force_quit_which_ends_it() {
    let mut child = Reaped::spawn("sh", &["-c", "trap '' TERM; exec sleep 60"]);
    let row = real_row(child.pid(), "sleep");
    let ignored = procfs::process::Process::new(child.pid() as i32)
        .and_then(|p| p.status())
        .expect("status")
        .sigign;
    assert_ne!(
        ignored & (1 << (libc::SIGTERM - 1)),
        0,
        "sleep ignores SIGTERM"
    );
    let mut h = window_with(&row);
    // By keyboard this time: select, then Delete.
    h.get_by_label("sleep").click();
    h.run();
    h.key_press(egui::Key::Delete);
    h.run();
    assert_confirmation(&h, &row);
    h.get_by_label("End process").click();
    h.run_steps(2); // a spinner repaints while it waits
    h.get_by_label_contains("to quit (SIGTERM)…");
    assert!(
        h.query_by_label("Force quit").is_none(),
        "not before {FORCE_QUIT_AFTER:?}"
    );
    run_until_label(
        &mut h,
        "is still running",
        FORCE_QUIT_AFTER + Duration::from_secs(3),
    );
    assert!(
        child.exit_within(Duration::ZERO).is_none(),
        "SIGTERM was ignored"
    );
    h.get_by_label("Force quit").click();
    h.run_steps(2); // a spinner repaints while it waits
    let status = child.exit_within(Duration::from_secs(5)).expect("it exits");
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    run_until_label(&mut h, "has ended (SIGKILL)", Duration::from_secs(2));
}

/// `setpriv` to run a child as nobody; on CI its absence (or not being root) is a failure.
fn as_nobody() -> Option<Reaped> {
    let why = if memmon::end_process::own_uid() != 0 {
        "starting another user's process needs root".to_owned()
    } else {
        match Process::new("setpriv").arg("--version").output() {
            Ok(o) if o.status.success() => {
                return Some(Reaped::spawn(
                    "setpriv",
                    &[
                        "--reuid=65534",
                        "--regid=65534",
                        "--clear-groups",
                        "--",
                        "sleep",
                        "60",
                    ],
                ));
            }
            Ok(o) => format!("setpriv --version failed: {o:?}"),
            Err(e) => format!("setpriv is missing: {e}"),
        }
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}, and CI=true: refusing to skip");
    }
    eprintln!("SKIPPED: {why}");
    None
}

#[test]
fn another_users_process_cannot_be_chosen() {
    let Some(mut other) = as_nobody() else {
        return;
    };
    let row = real_row(other.pid(), "sleep");
    assert_eq!(row.uid, Some(65534), "the collector read its real UID");
    let mut h = window_with(&row);
    open_menu(&mut h, "sleep");
    let entry = h.get_by_label("End process…");
    assert!(
        entry.accesskit_node().is_disabled(),
        "another user's process is not offered"
    );
    let owner = memmon::end_process::user_name(65534)
        .map_or_else(|| "65534".to_owned(), |n| format!("{n}/65534"));
    h.get_by_label(&format!("Owned by user {owner}"));
    entry.click();
    h.run();
    assert!(h.query_by_label_contains("End “sleep”").is_none());
    // Delete on its row explains instead of asking, and nothing is sent.
    h.key_press(egui::Key::Escape);
    h.run();
    h.get_by_label("sleep").click();
    h.run();
    h.key_press(egui::Key::Delete);
    h.run();
    h.get_by_label_contains(&format!(
        "it is owned by user {owner}: you can only end your own"
    ));
    assert!(h.query_by_label("End process").is_none());
    assert!(
        other.exit_within(Duration::from_millis(300)).is_none(),
        "still running"
    );
}

#[test]
fn a_process_that_exited_since_the_last_update_is_refused() {
    let mut child = Reaped::spawn("sleep", &["60"]);
    let row = real_row(child.pid(), "sleep");
    let mut h = window_with(&row);
    open_menu(&mut h, "sleep");
    h.get_by_label("End process…").click();
    h.run();
    assert_confirmation(&h, &row);
    // It exits (and is reaped) while the dialog is open: its PID may even be reused by now.
    child.0.kill().expect("kill");
    child.0.wait().expect("wait");
    h.get_by_label("End process").click();
    h.run();
    let refused = h
        .query_by_label_contains("it has already exited")
        .or_else(|| h.query_by_label_contains("its PID now belongs to another process"));
    assert!(refused.is_some(), "a stale process is refused");
    h.get_by_label_contains(&format!("Could not end “sleep” (PID {})", row.pid));
}

#[test]
fn a_process_listed_under_its_app_can_be_ended_from_its_menu() {
    use memmon::source::Update;
    use memmon_common::apps::{AppKind, AppRow, AppsSnapshot};
    let mut child = Reaped::spawn("sleep", &["60"]);
    let row = real_row(child.pid(), "sleep");
    // The process table does not list it (not in the top 100): only the Apps view does.
    let (mut h, f) = harness(vec![common::row(1, "init", 1_000)], Origin::Helper);
    h.get_by_label("Apps").click();
    h.run();
    let table = |processes: Vec<ProcessRow>| {
        Update::Apps(Box::new(AppsSnapshot {
            taken_at_unix_ms: row.start_time,
            app_count: 1,
            process_count: 1,
            grouping: "Grouped by systemd unit".into(),
            grouping_us: 1,
            apps: vec![AppRow {
                id: "app:sleeper".into(),
                kind: Some(AppKind::App),
                name: "Sleeper".into(),
                process_count: 1,
                rss_sum_kb: row.rss_kb.unwrap_or(0),
                processes,
                ..AppRow::default()
            }],
        }))
    };
    f.updates.send(table(Vec::new())).expect("send");
    h.run();
    h.get_by_label("Show the processes of Sleeper").click();
    h.run();
    f.updates.send(table(vec![row.clone()])).expect("send");
    h.run();
    open_menu(&mut h, &format!("sleep ({})", row.pid));
    h.get_by_label("End process…").click();
    h.run();
    assert_confirmation(&h, &row);
    h.get_by_label("End process").click();
    h.run_steps(2);
    let status = child.exit_within(Duration::from_secs(5)).expect("it exits");
    assert_eq!(status.signal(), Some(libc::SIGTERM));
}
