//! Apps from real cgroups: hierarchies built for the test in the `name=systemd` (v1), cgroup2
//! and v1 memory hierarchies, with unit names of every kind, and real processes that allocate
//! known amounts in them. Needs root; on CI (`CI=true`) not being able to run fails.
//!
//! Each test makes its own tree below `memmon-apps-<test>-<pid>` at the root of each hierarchy
//! and removes it afterwards, also when the test fails (the guard's `Drop`).

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use memmon_common::apps::{AppEventKind, AppKind, AppRow, AppsSnapshot, CgroupVersion};
use memmon_helper::{
    Collector,
    apps::{Mounts, RECHECK_TICKS},
    history::apps::AppHistory,
};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_memmon-workload");
const HELPER: &str = env!("CARGO_BIN_EXE_memmon-helper");
const USER_APPS: &str = "user.slice/user-1000.slice/user@1000.service/app.slice";

/// One test at a time: the OOM test infers its victim from the processes that vanished, and
/// the other tests' processes must not vanish at the same moment.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn can_run() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let why = "the apps tests create cgroups and need root";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}, and CI=true: refusing to skip");
    }
    eprintln!("SKIPPED: {why}");
    false
}

/// A process that holds a known amount of memory (and page cache) once told to.
struct Holder {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Holder {
    fn spawn(mib: usize, read: Option<&Path>) -> Holder {
        let mut command = Command::new(WORKLOAD);
        command.args(["pattern", "hold", "--mib", &mib.to_string()]);
        if let Some(file) = read {
            command.arg("--read").arg(file);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn memmon-workload");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut h = Holder {
            child,
            stdin,
            stdout,
        };
        h.expect("ready");
        h
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn expect(&mut self, want: &str) {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("read from workload");
        assert_eq!(line.trim(), want, "workload said {line:?}");
    }

    /// Allocates (after the process was moved into its cgroups, so it is charged there).
    fn go(&mut self) {
        let stdin = self.stdin.as_mut().expect("stdin");
        stdin.write_all(b"go\n").expect("go");
        stdin.flush().expect("flush");
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test's cgroups in the three hierarchies, removed on drop.
struct Tree {
    /// (hierarchy root, our base directory) per hierarchy: systemd, unified, memory.
    bases: Vec<PathBuf>,
    base_name: String,
    created: Vec<PathBuf>,
    holders: Vec<Holder>,
    mounts: Mounts,
}

impl Tree {
    fn new(tag: &str) -> Tree {
        let mounts = Mounts::discover();
        let points: Vec<PathBuf> = [&mounts.systemd_v1, &mounts.unified, &mounts.memory_v1]
            .into_iter()
            .flatten()
            .map(|m| m.point.clone())
            .collect();
        assert!(
            mounts.memory_v1.is_some() || mounts.unified_has_memory,
            "no memory controller mounted: {mounts:?}"
        );
        let base_name = format!("memmon-apps-{tag}-{}", std::process::id());
        let mut tree = Tree {
            bases: Vec::new(),
            base_name: base_name.clone(),
            created: Vec::new(),
            holders: Vec::new(),
            mounts,
        };
        for point in points {
            let base = point.join(&base_name);
            tree.mkdir(&base);
            tree.bases.push(base);
        }
        tree
    }

    fn mkdir(&mut self, dir: &Path) {
        if !dir.exists() {
            std::fs::create_dir(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
            self.created.push(dir.to_owned());
        }
    }

    /// Creates `relative` below the base in every hierarchy; returns the cgroup path as
    /// `/proc/<pid>/cgroup` will name it.
    fn unit(&mut self, relative: &str) -> String {
        for base in self.bases.clone() {
            let mut dir = base;
            for component in relative.split('/') {
                dir = dir.join(component);
                self.mkdir(&dir);
            }
        }
        format!("/{}/{relative}", self.base_name)
    }

    /// The unit's directory in the memory controller's hierarchy.
    fn memory_dir(&self, path: &str) -> PathBuf {
        let mount = if self.mounts.unified_has_memory {
            self.mounts.unified.as_ref()
        } else {
            self.mounts.memory_v1.as_ref()
        };
        mount.expect("memory mount").dir(path).expect("dir")
    }

    /// Moves `pid` into `path` in every hierarchy.
    fn enter(&self, path: &str, pid: u32) {
        for base in &self.bases {
            let dir = base
                .parent()
                .expect("mount")
                .join(path.trim_start_matches('/'));
            std::fs::write(dir.join("cgroup.procs"), pid.to_string())
                .unwrap_or_else(|e| panic!("moving {pid} into {}: {e}", dir.display()));
        }
    }

    /// Starts a process in `path` holding `mib` MiB (and having read `read`); returns its PID.
    fn start(&mut self, path: &str, mib: usize, read: Option<&Path>) -> u32 {
        let mut holder = Holder::spawn(mib, read);
        let pid = holder.pid();
        self.enter(path, pid);
        holder.go();
        holder.expect("done");
        self.holders.push(holder);
        pid
    }

    /// The kernel's own usage of the cgroup, KiB.
    fn usage_kb(&self, path: &str) -> u64 {
        let dir = self.memory_dir(path);
        let file = if self.mounts.unified_has_memory {
            "memory.current"
        } else {
            "memory.usage_in_bytes"
        };
        let text = std::fs::read_to_string(dir.join(file)).expect("usage");
        text.trim().parse::<u64>().expect("number") / 1024
    }

    fn write(&self, path: &str, file: &str, value: &str) {
        std::fs::write(self.memory_dir(path).join(file), value)
            .unwrap_or_else(|e| panic!("{file} = {value}: {e}"));
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        self.holders.clear(); // kills and reaps every process
        for dir in self.created.iter().rev() {
            // A cgroup whose last process is still exiting is busy for a moment.
            let until = Instant::now() + Duration::from_secs(5);
            while std::fs::remove_dir(dir).is_err() && dir.exists() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn app<'a>(apps: &'a [AppRow], id: &str) -> &'a AppRow {
    apps.iter().find(|a| a.id == id).unwrap_or_else(|| {
        let ids: Vec<&str> = apps.iter().map(|a| a.id.as_str()).collect();
        panic!("no app {id} among {ids:?}")
    })
}

fn within(got: u64, want: u64, percent: u64) -> bool {
    got.abs_diff(want) * 100 <= want * percent
}

#[test]
fn units_of_every_kind_group_exactly_and_show_their_cgroups_own_memory() {
    if !can_run() {
        return;
    }
    let _serial = serial();
    let mut tree = Tree::new("kinds");
    let units = [
        (
            "u1000/app:org.gnome.Nautilus",
            AppKind::App,
            format!("{USER_APPS}/app-gnome-org.gnome.Nautilus-4242.scope"),
            vec![16, 24],
        ),
        (
            "u1000/flatpak:org.mozilla.firefox",
            AppKind::Flatpak,
            format!("{USER_APPS}/app-flatpak-org.mozilla.firefox-5151.scope"),
            vec![32],
        ),
        (
            "u1000/snap:chromium",
            AppKind::Snap,
            format!("{USER_APPS}/snap.chromium.chromium-3c1f2a9e.scope"),
            vec![8],
        ),
        (
            "service:memmon-test-svc",
            AppKind::Service,
            "system.slice/memmon-test-svc.service".to_owned(),
            vec![12],
        ),
        (
            "session:9001",
            AppKind::Session,
            "user.slice/user-1000.slice/session-9001.scope".to_owned(),
            vec![20],
        ),
    ];
    let mut paths = HashMap::new();
    let mut pids = HashMap::new();
    for (id, _, relative, sizes) in &units {
        let path = tree.unit(relative);
        for &mib in sizes {
            let pid = tree.start(&path, mib, None);
            pids.insert(pid, *id);
        }
        paths.insert(*id, path);
    }
    let mut collector = Collector::embedded("test");
    let snap = collector.collect().expect("collect");
    let apps = collector.apps().rows().to_vec();
    let grouped = collector.apps().snapshot();
    for (id, kind, _, sizes) in &units {
        let a = app(&apps, id);
        assert_eq!(a.kind, Some(*kind), "{id}");
        assert_eq!(a.process_count as usize, sizes.len(), "{id}");
        assert_eq!(a.memory_covers, None, "{id}: its own cgroup");
        let usage = tree.usage_kb(&paths[id]);
        assert!(
            within(a.memory_kb(), usage, 2),
            "{id}: memory {} KiB, the cgroup's counter {usage} KiB",
            a.memory_kb()
        );
        let held: u64 = sizes.iter().map(|&m| m as u64 * 1024).sum();
        assert!(
            a.memory_kb() >= held,
            "{id}: {} KiB < {held} KiB held",
            a.memory_kb()
        );
        let m = a.memory.expect("cgroup memory");
        let version = if tree.mounts.unified_has_memory {
            CgroupVersion::V2
        } else {
            CgroupVersion::V1
        };
        assert_eq!(m.version, Some(version));
        assert!(
            m.anon_kb.unwrap_or(0) >= held * 9 / 10,
            "{id}: anon {:?}",
            m.anon_kb
        );
        if tree.mounts.unified.is_some() {
            assert!(m.pressure.is_some(), "{id}: the unit's own memory.pressure");
        }
    }
    for row in snap.processes.iter().filter(|p| pids.contains_key(&p.pid)) {
        assert_eq!(row.app.as_deref(), Some(pids[&row.pid]), "PID {}", row.pid);
    }
    assert!(
        grouped.grouping.contains("cgroup v"),
        "{}",
        grouped.grouping
    );

    // The CLI groups them the same way (its own collector, one tick).
    let out = Command::new(HELPER)
        .args(["snapshot", "--apps", "--json", "--top", "1000", "--no-ebpf"])
        .output()
        .expect("run memmon-helper");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: AppsSnapshot = serde_json::from_slice(&out.stdout).expect("apps JSON");
    for (id, kind, _, sizes) in &units {
        let a = app(&cli.apps, id);
        assert_eq!(
            (a.kind, a.process_count as usize),
            (Some(*kind), sizes.len()),
            "{id}"
        );
        let usage = tree.usage_kb(&paths[id]);
        assert!(
            within(a.memory_kb(), usage, 2),
            "{id} (CLI): {} KiB, the cgroup's counter {usage} KiB: {a:?}",
            a.memory_kb()
        );
    }
    let expanded = Command::new(HELPER)
        .args([
            "snapshot",
            "--apps",
            "--no-ebpf",
            "--expand",
            "u1000/app:org.gnome.Nautilus",
        ])
        .output()
        .expect("run memmon-helper");
    let table = String::from_utf8_lossy(&expanded.stdout);
    let nautilus_pids: Vec<u32> = pids
        .iter()
        .filter(|(_, id)| **id == "u1000/app:org.gnome.Nautilus")
        .map(|(p, _)| *p)
        .collect();
    for pid in nautilus_pids {
        assert!(
            table.contains(&format!("PID {pid:>7}")),
            "PID {pid} listed under its app:\n{table}"
        );
    }
}

#[test]
fn page_cache_read_by_an_app_counts_as_its_memory_while_its_rss_stays_small() {
    if !can_run() {
        return;
    }
    let _serial = serial();
    let mut tree = Tree::new("cache");
    // A 200 MiB file on disk (not tmpfs), dropped from the cache so the reader loads it.
    let file = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("memmon-apps-cache-{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&file).expect("create");
        let chunk = vec![0x5au8; 1 << 20];
        for _ in 0..200 {
            f.write_all(&chunk).expect("write");
        }
        f.sync_all().expect("fsync");
        use std::os::fd::AsRawFd as _;
        // SAFETY: an advisory call on an open file descriptor.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _remove = Remove(file.clone());
    let path = tree.unit(&format!(
        "{USER_APPS}/app-gnome-org.gnome.TextEditor-77.scope"
    ));
    tree.start(&path, 0, Some(&file));
    let mut collector = Collector::embedded("test");
    collector.collect().expect("collect");
    let a = app(collector.apps().rows(), "u1000/app:org.gnome.TextEditor");
    let file_kb = a.file_kb().expect("page cache");
    assert!(file_kb >= 190 * 1024, "page cache {file_kb} KiB");
    assert!(
        a.rss_sum_kb < 20 * 1024,
        "RSS stays small: {} KiB",
        a.rss_sum_kb
    );
    assert!(
        a.memory_kb() >= 190 * 1024,
        "the app's memory includes its page cache"
    );
}

#[test]
fn an_app_that_hits_its_limit_shows_the_max_events_and_the_oom_kill() {
    if !can_run() {
        return;
    }
    let _serial = serial();
    let mut tree = Tree::new("limit");
    let path = tree.unit(&format!("{USER_APPS}/app-org.example.Hog-99.scope"));
    let limit = (64u64 << 20).to_string();
    if tree.mounts.unified_has_memory {
        tree.write(&path, "memory.max", &limit);
        tree.write(&path, "memory.swap.max", "0");
    } else {
        tree.write(&path, "memory.limit_in_bytes", &limit);
        if tree
            .memory_dir(&path)
            .join("memory.memsw.limit_in_bytes")
            .exists()
        {
            tree.write(&path, "memory.memsw.limit_in_bytes", &limit);
        }
    }
    // One quiet process keeps the app alive; a hog in the same scope is OOM-killed.
    tree.start(&path, 4, None);
    let mut collector = Collector::embedded("test");
    let mut history = AppHistory::new();
    let tick = |collector: &mut Collector, history: &mut AppHistory| {
        let snap = collector.collect().expect("collect");
        let apps = collector.apps();
        history.record(snap.taken_at_unix_ms, apps.rows(), apps.events());
        snap
    };
    tick(&mut collector, &mut history);
    let mut hog = Command::new(WORKLOAD)
        .args(["pattern", "hog", "--mib", "512", "--step-ms", "5"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn hog");
    let mut out = BufReader::new(hog.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("ready");
    tree.enter(&path, hog.id());
    tick(&mut collector, &mut history);
    hog.stdin
        .as_mut()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("go");
    // Sampled while it grows (as the app would), so its last RSS is its large one.
    let mut snaps = Vec::new();
    let status = loop {
        if let Some(status) = hog.try_wait().expect("wait") {
            break status;
        }
        snaps.push(tick(&mut collector, &mut history));
        std::thread::sleep(Duration::from_millis(50));
    };
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the hog is OOM-killed: {status}"
    );
    for _ in 0..(memmon_helper::apps::DETAIL_TICKS + 1) {
        snaps.push(tick(&mut collector, &mut history));
    }
    let id = "u1000/app:org.example.Hog";
    let series = history.series(id).expect("the app's history");
    let kinds: Vec<AppEventKind> = series.events.iter().map(|e| e.kind).collect();
    assert!(
        kinds.contains(&AppEventKind::OomKill),
        "events {:?}",
        series.events
    );
    assert!(
        kinds.contains(&AppEventKind::Max),
        "events {:?}",
        series.events
    );
    let a = app(collector.apps().rows(), id);
    let m = a.memory.expect("memory");
    assert_eq!(m.limit_kb, Some(64 * 1024));
    assert!(
        m.events.oom_kill >= 1 && m.events.max >= 1,
        "{:?}",
        m.events
    );
    let victim = hog.id();
    assert!(
        snaps
            .iter()
            .any(|s| s.oom_kills.iter().any(|k| k.pid == victim)),
        "the victim {victim} is in the OOM list"
    );
}

#[test]
fn a_process_moved_into_a_scope_after_it_started_is_regrouped_in_time() {
    if !can_run() {
        return;
    }
    let _serial = serial();
    let mut tree = Tree::new("move");
    let session = tree.unit("user.slice/user-1000.slice/session-9002.scope");
    let scope = tree.unit(&format!("{USER_APPS}/app-org.kde.konsole-5.scope"));
    let service = tree.unit("system.slice/memmon-test-late.service");
    let pid = tree.start(&session, 1, None);
    let mut collector = Collector::embedded("test");
    let group = |collector: &mut Collector| {
        let snap = collector.collect().expect("collect");
        snap.processes
            .iter()
            .find(|p| p.pid == pid)
            .and_then(|p| p.app.clone())
    };
    assert_eq!(group(&mut collector).as_deref(), Some("session:9002"));
    // As a desktop does right after starting a process: regrouped at the next tick.
    tree.enter(&scope, pid);
    assert_eq!(
        group(&mut collector).as_deref(),
        Some("u1000/app:org.kde.konsole")
    );
    for _ in 0..memmon_helper::apps::YOUNG_TICKS {
        group(&mut collector);
    }
    // Much later: within RECHECK_TICKS ticks.
    tree.enter(&service, pid);
    let ticks = (1..=RECHECK_TICKS)
        .find(|_| group(&mut collector).as_deref() == Some("service:memmon-test-late"));
    assert!(
        ticks.is_some(),
        "not regrouped within {RECHECK_TICKS} ticks"
    );
}
