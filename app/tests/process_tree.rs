//! The process tree on the real window headless (egui_kittest): the switch and what it asks of
//! the source, parents and subtotals of a known tree, collapsing (kept by process across
//! updates), the keyboard, and a real fork tree in which a middle process is killed and its
//! child shows under its new parent after the next update.
//!
//! The real test makes this test process a child subreaper (PR_SET_CHILD_SUBREAPER), so the
//! orphan is reparented to it and can be reaped; no other test in this binary leaves orphans.

use std::{
    os::unix::fs::symlink,
    process::{Child, Command as Process, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use egui_kittest::{Harness, kittest::Queryable as _};
use memmon::{
    app::MemmonApp,
    settings::Settings,
    source::{self, Origin, Request, Rows, SourceChoice, TOP_N, Update},
};
use memmon_common::{
    process_key::ProcessKey,
    snapshot::{ProcessRow, Snapshot},
};

mod common;

use common::*;

fn child_of(pid: u32, ppid: u32, name: &str, rss_kb: u64) -> ProcessRow {
    ProcessRow {
        ppid: Some(ppid),
        uid: Some(0),
        ..row(pid, name, rss_kb)
    }
}

/// init(1) ─┬─ shell(100) ─┬─ editor(101) ── plugin(103)
///          │              └─ pager(102)
///          └─ daemon(200)
/// stray(300), whose parent is not in the data
fn family() -> Vec<ProcessRow> {
    vec![
        child_of(1, 0, "init", 10_000),
        child_of(100, 1, "shell", 4_000),
        child_of(101, 100, "editor", 300_000),
        child_of(102, 100, "pager", 2_000),
        child_of(103, 101, "plugin", 500_000),
        child_of(200, 1, "daemon", 50_000),
        child_of(300, 999, "stray", 1_000),
    ]
}

fn key(pid: u32) -> ProcessKey {
    ProcessKey::new(pid, 1000 + u64::from(pid))
}

fn tree_settings() -> Settings {
    Settings {
        process_tree: true,
        ..Settings::default()
    }
}

/// (pid, parent pid, depth) of every row the tree listed, in order.
fn listed(h: &egui_kittest::Harness<'_, memmon::app::MemmonApp>) -> Vec<(u32, Option<u32>, usize)> {
    h.state()
        .tree()
        .shown()
        .iter()
        .map(|n| (n.key.pid, n.parent.map(|p| p.pid), n.depth))
        .collect()
}

fn kib(kb: u64) -> String {
    memmon_common::column::kib(kb)
}

#[test]
fn the_switch_shows_the_tree_and_asks_for_every_process() {
    let (mut h, f) = harness(family(), Origin::Helper);
    let _ = f.requests.try_iter().count();
    assert!(h.state().tree().shown().is_empty(), "the grid first");
    h.get_by_label("Tree").click();
    h.run();
    assert!(h.state().model.settings.process_tree);
    let asked: Vec<Request> = f.requests.try_iter().collect();
    assert!(asked.contains(&Request::Rows(Rows::All)), "{asked:?}");
    // Largest subtree first at every level (sorted by RSS, descending).
    assert_eq!(
        listed(&h),
        vec![
            (1, None, 0),
            (100, Some(1), 1),
            (101, Some(100), 2),
            (103, Some(101), 3),
            (102, Some(100), 2),
            (200, Some(1), 1),
            (300, None, 0),
        ]
    );
    // Sorted by RSS, siblings are ordered by this column: the arrow is on it.
    h.get_by_label("RSS (subtree), sorted descending");
    h.get_by_label("RSS");
    // shell's subtree: 4,000 + 300,000 + 2,000 + 500,000 KiB.
    h.get_by_label(&kib(806_000));
    h.get_by_label(&kib(866_000)); // init's
    // Back to the grid: the top 100 again.
    h.key_press(egui::Key::T);
    h.run();
    assert!(!h.state().model.settings.process_tree);
    assert!(f.requests.try_iter().any(|r| r == Request::Rows(Rows::Top)));
    assert!(h.query_by_label_contains("RSS (subtree)").is_none());
}

#[test]
fn a_tree_shown_at_start_asks_for_every_process_at_once() {
    let (_h, f) = harness_with(tree_settings(), family(), Origin::Helper);
    let asked: Vec<Request> = f.requests.try_iter().collect();
    assert!(asked.contains(&Request::Rows(Rows::All)), "{asked:?}");
}

#[test]
fn a_collapsed_process_shows_its_subtree_totals_and_stays_collapsed_across_updates() {
    let (mut h, f) = harness_with(tree_settings(), family(), Origin::Helper);
    h.get_by_label("Collapse shell").click();
    h.run();
    assert_eq!(
        listed(&h).iter().map(|l| l.0).collect::<Vec<_>>(),
        vec![1, 100, 200, 300]
    );
    // RSS, virtual and swap of the collapsed row are the subtree's.
    h.get_by_label(&format!("Σ {}", kib(806_000)));
    h.get_by_label(&format!("Σ {}", kib(806_000 * 4)));
    h.get_by_label("+3");
    assert!(h.query_by_label("editor").is_none(), "hidden under shell");

    // editor exits; the kernel gives its child to init. shell stays collapsed (by key).
    let mut after: Vec<ProcessRow> = family().into_iter().filter(|r| r.pid != 101).collect();
    if let Some(plugin) = after.iter_mut().find(|r| r.pid == 103) {
        plugin.ppid = Some(1);
    }
    f.updates
        .send(Update::Snapshot {
            snapshot: snapshot(after),
            origin: Origin::Helper,
        })
        .expect("send");
    h.run();
    assert_eq!(
        listed(&h),
        vec![
            (1, None, 0),
            (103, Some(1), 1),
            (200, Some(1), 1),
            (100, Some(1), 1),
            (300, None, 0)
        ]
    );
    h.get_by_label(&format!("Σ {}", kib(6_000)));
    h.get_by_label("Expand shell (1 below)").click();
    h.run();
    assert!(listed(&h).contains(&(102, Some(100), 2)));
}

#[test]
fn the_keyboard_walks_opens_and_closes_the_tree() {
    let (mut h, _f) = harness_with(tree_settings(), family(), Origin::Helper);
    h.key_press(egui::Key::ArrowDown);
    h.run();
    assert_eq!(h.state().model.selected_process(), Some(key(1)));
    h.key_press(egui::Key::ArrowDown);
    h.run();
    assert_eq!(h.state().model.selected_process(), Some(key(100)));
    // ← closes shell, ← again goes to its parent, → on init goes to its first child.
    h.key_press(egui::Key::ArrowLeft);
    h.run();
    assert!(!h.state().tree().shown()[1].expanded);
    h.key_press(egui::Key::ArrowLeft);
    h.run();
    assert_eq!(h.state().model.selected_process(), Some(key(1)));
    h.key_press(egui::Key::ArrowRight);
    h.run();
    assert_eq!(h.state().model.selected_process(), Some(key(100)));
    h.key_press(egui::Key::ArrowRight);
    h.run();
    assert!(h.state().tree().shown()[1].expanded, "→ opens it again");
    h.key_press(egui::Key::End);
    h.run();
    assert_eq!(h.state().model.selected_process(), Some(key(300)));
}

#[test]
fn the_filter_keeps_the_way_to_each_match() {
    let (mut h, _f) = harness_with(tree_settings(), family(), Origin::Helper);
    h.get_by_label("Collapse init").click();
    h.run();
    h.state_mut().model.filter = "plug".into();
    h.run();
    assert_eq!(
        listed(&h),
        vec![
            (1, None, 0),
            (100, Some(1), 1),
            (101, Some(100), 2),
            (103, Some(101), 3)
        ]
    );
    h.state_mut().model.filter = "nothing like it".into();
    h.run();
    h.get_by_label("No process matches.");
}

#[test]
fn an_empty_snapshot_and_a_large_one_do_not_panic() {
    let (mut h, f) = harness_with(tree_settings(), Vec::new(), Origin::Helper);
    h.get_by_label("No process matches.");
    // 3,000 processes in a chain 30 deep and 100 wide.
    let many: Vec<ProcessRow> = (1..=3000)
        .map(|p| child_of(p, p.saturating_sub(100), "worker", u64::from(p)))
        .collect();
    f.updates
        .send(Update::Snapshot {
            snapshot: snapshot(many),
            origin: Origin::Helper,
        })
        .expect("send");
    h.run();
    let shown = h.state().tree().shown();
    assert_eq!(shown.len(), 3000);
    assert_eq!(shown.iter().map(|n| n.depth).max(), Some(29));
    h.key_press(egui::Key::End);
    h.run();
    assert!(h.state().model.selected_process().is_some());
}

// ---- a real fork tree ----

/// One collector, as the embedded source keeps it across ticks.
struct Scanner(memmon_helper::Collector);

impl Scanner {
    fn snapshot(&mut self) -> Snapshot {
        self.0.collect().expect("a /proc scan")
    }
}

fn row_of(snapshot: &Snapshot, pid: u32) -> Option<&ProcessRow> {
    snapshot.processes.iter().find(|r| r.pid == pid)
}

/// A process's direct children named `name`, from /proc.
fn child_named(parent: u32, name: &str) -> Option<u32> {
    let processes = procfs::process::all_processes().ok()?;
    processes
        .filter_map(Result::ok)
        .filter_map(|p| p.stat().ok())
        .find(|s| s.ppid == parent as i32 && s.comm == name)
        .map(|s| s.pid as u32)
}

fn wait_for_child(parent: u32, name: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = child_named(parent, name) {
            return pid;
        }
        assert!(Instant::now() < deadline, "no child {name} of {parent}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn kill(pid: u32) {
    // SAFETY: kill has no memory effects; the PID is one of this test's descendants.
    let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill {pid}");
}

fn reap(pid: u32) {
    // SAFETY: waits for one child of this process that the test made; status may be null.
    unsafe { libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0) };
}

/// Ends the fork tree whatever happens in the test.
struct Cleanup(Vec<u32>, Option<Child>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for &pid in self.0.iter().rev() {
            // SAFETY: as in `kill`; failure (already gone) is fine here.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        if let Some(mut a) = self.1.take() {
            let _ = a.wait();
        }
    }
}

#[test]
fn a_real_fork_tree_and_its_orphan_reparented_after_a_middle_process_exits() {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER only sets a flag of this process.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(rc, 0, "PR_SET_CHILD_SUBREAPER");
    let me = std::process::id();
    // Distinct names (comm is the name the program was started by): a symlink per level.
    let dir = std::env::temp_dir().join(format!("memmon-tree-{me}"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let name = |level: &str| format!("qzt{level}{me}");
    for (level, program) in [
        ("A", "/bin/sh"),
        ("B", "/bin/sh"),
        ("C", "/bin/sh"),
        ("D", "/bin/sleep"),
    ] {
        let link = dir.join(name(level));
        let _ = std::fs::remove_file(&link);
        symlink(program, &link).expect("symlink");
    }
    let path = |level: &str| dir.join(name(level)).display().to_string();
    // A ── B ── C ── D (sleep): each shell starts the next in the background and waits.
    let script = format!(
        "{b} -c '{c} -c \"{d} 60 & wait\" & wait' & wait",
        b = path("B"),
        c = path("C"),
        d = path("D")
    );
    let a = Process::new(path("A"))
        .args(["-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn the tree");
    let pid_a = a.id();
    let mut cleanup = Cleanup(vec![pid_a], Some(a));
    let pid_b = wait_for_child(pid_a, &name("B"));
    cleanup.0.push(pid_b);
    let pid_c = wait_for_child(pid_b, &name("C"));
    cleanup.0.push(pid_c);
    let pid_d = wait_for_child(pid_c, &name("D"));
    cleanup.0.push(pid_d);

    let mut scanner = Scanner(memmon_helper::Collector::embedded("test"));
    let before = scanner.snapshot();
    let rss = |s: &Snapshot, pid| row_of(s, pid).and_then(|r| r.rss_kb).unwrap_or(0);
    let (mut h, f) = harness_with(tree_settings(), before.processes.clone(), Origin::Helper);
    h.state_mut().model.filter = "qzt".into();
    h.run();
    let found = |h: &egui_kittest::Harness<'_, memmon::app::MemmonApp>, pid: u32| {
        h.state()
            .tree()
            .shown()
            .iter()
            .find(|n| n.key.pid == pid)
            .cloned()
            .unwrap_or_else(|| panic!("{pid} is not in the tree: {:?}", listed(h)))
    };
    assert_eq!(found(&h, pid_a).parent.map(|p| p.pid), Some(me));
    assert_eq!(found(&h, pid_b).parent.map(|p| p.pid), Some(pid_a));
    assert_eq!(found(&h, pid_c).parent.map(|p| p.pid), Some(pid_b));
    assert_eq!(found(&h, pid_d).parent.map(|p| p.pid), Some(pid_c));
    assert_eq!(found(&h, pid_d).depth, found(&h, pid_a).depth + 3);
    let sum: u64 = [pid_b, pid_c, pid_d].iter().map(|&p| rss(&before, p)).sum();
    assert!(sum > 0);
    assert_eq!(found(&h, pid_b).subtree_rss_kb, Some(sum));
    assert_eq!(found(&h, pid_b).descendants, 2);
    // Collapse C: its row stands for C and D.
    h.get_by_label(&format!("Collapse {}", name("C"))).click();
    h.run();
    let c_and_d = rss(&before, pid_c) + rss(&before, pid_d);
    h.get_by_label(&format!("Σ {}", kib(c_and_d)));

    // B exits: C is an orphan, reparented to this process (the subreaper); A, whose `wait`
    // returns, exits too.
    kill(pid_b);
    let after = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = scanner.snapshot();
            // A reaps B when its `wait` returns.
            if row_of(&s, pid_c).is_some_and(|r| r.ppid == Some(me)) && row_of(&s, pid_b).is_none()
            {
                break s;
            }
            assert!(Instant::now() < deadline, "C was never seen under {me}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert!(row_of(&after, pid_b).is_none(), "B is gone");
    f.updates
        .send(Update::Snapshot {
            snapshot: Box::new(after),
            origin: Origin::Helper,
        })
        .expect("send");
    h.run();
    let c = found(&h, pid_c);
    assert_eq!(c.parent.map(|p| p.pid), Some(me), "under its new parent");
    assert_eq!(c.depth, found(&h, me).depth + 1);
    assert!(
        !c.expanded,
        "still collapsed: kept by process, not by place"
    );
    assert_eq!(c.descendants, 1);
    assert!(h.state().tree().shown().iter().all(|n| n.key.pid != pid_b));

    // D ends, C's `wait` returns and C exits: reaped here, its new parent.
    cleanup.0.clear();
    kill(pid_d);
    reap(pid_c);
    let _ = std::fs::remove_dir_all(&dir);
}

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
fn the_embedded_source_sends_every_process_while_the_tree_is_shown() {
    // More processes than the grid's top 100, all children of this test.
    let children: Vec<Child> = (0..TOP_N + 10)
        .map(|_| {
            Process::new("sleep")
                .arg("60")
                .stdin(Stdio::null())
                .spawn()
                .expect("sleep")
        })
        .collect();
    struct Reap(Vec<Child>);
    impl Drop for Reap {
        fn drop(&mut self) {
            for c in &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let children = Reap(children);
    let me = std::process::id();

    let (update_tx, update_rx) = mpsc::channel();
    let (request_tx, request_rx) = mpsc::channel();
    let _source = source::spawn(SourceChoice::Embedded, request_rx, update_tx, || {})
        .expect("the source thread");
    let settings = Settings {
        interval_ms: 500,
        ..tree_settings()
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
    let all_children = |app: &MemmonApp| {
        app.tree()
            .shown()
            .iter()
            .find(|n| n.key.pid == me)
            .is_some_and(|n| n.descendants >= children.0.len())
    };
    run_until(&mut h, "this process with all its children", all_children);
    let snapshot = h.state().model.snapshot.clone().expect("a snapshot");
    assert!(snapshot.processes.len() > TOP_N as usize);
    assert_eq!(
        snapshot.processes.len(),
        snapshot.process_count as usize,
        "every process, not the top {TOP_N}"
    );
    // The grid again: the top 100.
    h.key_press(egui::Key::T);
    run_until(&mut h, "the top 100 again", |app| {
        app.model
            .snapshot
            .as_ref()
            .is_some_and(|s| s.processes.len() == TOP_N as usize)
    });
}
