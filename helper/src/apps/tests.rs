use std::path::Path;

use super::*;

const UNIT: &str = "/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-org.gnome.Nautilus-4242.scope";

fn row(pid: u32, ppid: u32, name: &str, rss_kb: u64) -> ProcessRow {
    ProcessRow {
        pid,
        start_time: 1000 + u64::from(pid),
        name: name.into(),
        ppid: Some(ppid),
        rss_kb: Some(rss_kb),
        swap_kb: Some(1),
        ..Default::default()
    }
}

/// A directory laid out like a cgroup2 mount, with the memory files of one cgroup.
struct Tree(PathBuf);

impl Tree {
    fn new(tag: &str) -> Tree {
        let dir = std::env::temp_dir().join(format!("memmon-apps-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("tree");
        Tree(dir)
    }

    fn cgroup(&self, path: &str, current: u64, events: &str) {
        let dir = self.0.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).expect("cgroup dir");
        let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).expect(name);
        write("memory.current", &format!("{current}\n"));
        write("memory.peak", &format!("{}\n", current * 2));
        write(
            "memory.stat",
            "anon 4194304\nfile 209715200\nkernel 1048576\nshmem 0\nsock 0\n",
        );
        write("memory.swap.current", "0\n");
        write("memory.max", "max\n");
        write("memory.high", "max\n");
        write("memory.events", events);
        write(
            "memory.pressure",
            "some avg10=2.00 avg60=0.00 avg300=0.00 total=10\nfull avg10=1.00 avg60=0.00 avg300=0.00 total=5\n",
        );
    }

    fn mounts(&self) -> Mounts {
        Mounts {
            unified: Some(Mount {
                point: self.0.clone(),
                root: "/".into(),
            }),
            unified_has_memory: true,
            memory_v1: None,
            systemd_v1: None,
            cgroup_namespace: false,
        }
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `/proc/<pid>/cgroup` of each process, as a function.
fn reader(paths: &HashMap<u32, String>) -> impl FnMut(ProcessKey, &mut Vec<u8>) -> bool + '_ {
    move |key, buf| {
        buf.clear();
        match paths.get(&key.pid) {
            Some(p) => {
                buf.extend_from_slice(format!("0::{p}\n").as_bytes());
                true
            }
            None => false,
        }
    }
}

fn app<'a>(apps: &'a Apps, id: &str) -> &'a AppRow {
    apps.rows().iter().find(|r| r.id == id).unwrap_or_else(|| {
        panic!(
            "no app {id} in {:?}",
            apps.rows().iter().map(|r| &r.id).collect::<Vec<_>>()
        )
    })
}

#[test]
fn the_v2_path_reads_the_units_own_counters_and_sums_its_processes() {
    let tree = Tree::new("v2");
    tree.cgroup(UNIT, 300 << 20, "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n");
    let mut apps = Apps::with(tree.mounts(), vec![]);
    let mut rows = vec![
        row(10, 1, "nautilus", 50_000),
        row(11, 10, "nautilus-helper", 7_000),
    ];
    let paths = HashMap::from([(10, UNIT.to_owned()), (11, format!("{UNIT}/child"))]);
    apps.update(1_000, &mut rows, &mut reader(&paths), 0);
    let a = app(&apps, "u1000/app:org.gnome.Nautilus");
    assert_eq!(
        (a.process_count, a.rss_sum_kb, a.swap_sum_kb),
        (2, 57_000, 2)
    );
    assert_eq!(
        a.cgroup_count, 1,
        "a child cgroup is inside the unit's: counted once"
    );
    let m = a.memory.expect("memory");
    assert_eq!(m.version, Some(CgroupVersion::V2));
    assert_eq!(a.memory_kb(), 300 * 1024, "the cgroup's own counter");
    assert_eq!(
        (m.file_kb, m.anon_kb, m.kernel_kb),
        (Some(200 * 1024), Some(4096), Some(1024))
    );
    assert_eq!(m.pressure.map(|p| p.some_avg10), Some(2.0));
    assert_eq!(a.memory_covers, None);
    assert_eq!(rows[1].app.as_deref(), Some("u1000/app:org.gnome.Nautilus"));
    assert!(apps.describe().contains("cgroup v2"), "{}", apps.describe());
}

#[test]
fn limit_and_oom_events_become_markers_at_the_next_detail_read() {
    let tree = Tree::new("events");
    tree.cgroup(UNIT, 64 << 20, "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n");
    let mut apps = Apps::with(tree.mounts(), vec![]);
    let paths = HashMap::from([(10, UNIT.to_owned())]);
    let mut t = 0;
    let mut tick = |apps: &mut Apps| {
        t += 1_000;
        let mut rows = vec![row(10, 1, "hog", 60_000)];
        apps.update(t, &mut rows, &mut reader(&paths), 0);
        apps.events().to_vec()
    };
    assert!(tick(&mut apps).is_empty());
    tree.cgroup(UNIT, 64 << 20, "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n");
    let mut seen = Vec::new();
    for _ in 0..DETAIL_TICKS {
        seen.extend(tick(&mut apps));
    }
    let kinds: Vec<(AppEventKind, u64)> = seen.iter().map(|(_, e)| (e.kind, e.count)).collect();
    assert_eq!(kinds, [(AppEventKind::Max, 7), (AppEventKind::OomKill, 1)]);
    assert!(
        seen.iter()
            .all(|(id, _)| id == "u1000/app:org.gnome.Nautilus")
    );
}

#[test]
fn without_systemd_processes_group_under_their_top_ancestor() {
    let mut apps = Apps::with(Mounts::default(), vec![]);
    let mut rows = vec![
        row(1, 0, "init", 1_000),
        row(20, 1, "sshd", 2_000),
        row(21, 20, "bash", 3_000),
        row(22, 21, "vim", 4_000),
        row(30, 1, "cron", 500),
    ];
    let paths: HashMap<u32, String> = rows.iter().map(|r| (r.pid, "/".to_owned())).collect();
    apps.update(1_000, &mut rows, &mut reader(&paths), 0);
    let ssh = app(&apps, "tree:20@1020");
    assert_eq!(
        (ssh.name.as_str(), ssh.process_count, ssh.rss_sum_kb),
        ("sshd", 3, 9_000)
    );
    assert_eq!(ssh.memory, None, "no cgroup figure for a process tree");
    assert_eq!(app(&apps, "tree:1@1001").process_count, 1);
    assert_eq!(rows[3].app.as_deref(), Some("tree:20@1020"));
    // The parent exits: its children are reparented to init and form their own group.
    let mut rows = vec![
        row(1, 0, "init", 1_000),
        row(21, 1, "bash", 3_000),
        row(22, 21, "vim", 4_000),
    ];
    apps.update(2_000, &mut rows, &mut reader(&paths), 0);
    assert_eq!(app(&apps, "tree:21@1021").process_count, 2);
    assert!(apps.describe().contains("top ancestor"));
}

#[test]
fn a_process_moved_into_a_scope_is_regrouped_in_time() {
    let mut apps = Apps::with(Mounts::default(), vec![]);
    let scope =
        "/user.slice/user-1000.slice/user@1000.service/app.slice/app-org.kde.konsole-77.scope";
    let mut paths = HashMap::from([(40, "/user.slice/user-1000.slice/session-2.scope".to_owned())]);
    let mut now = 0;
    let mut group = |apps: &mut Apps, paths: &HashMap<u32, String>| {
        now += 1_000;
        let mut rows = vec![row(40, 1, "konsole", 9_000)];
        apps.update(now, &mut rows, &mut reader(paths), 0);
        rows[0].app.as_deref().expect("grouped").to_owned()
    };
    assert_eq!(group(&mut apps, &paths), "session:2");
    // Young: moved on its second tick, regrouped on the next.
    paths.insert(40, scope.to_owned());
    assert_eq!(group(&mut apps, &paths), "u1000/app:org.kde.konsole");
    // Old: moved after its young ticks, regrouped within RECHECK_TICKS.
    for _ in 0..YOUNG_TICKS {
        group(&mut apps, &paths);
    }
    paths.insert(40, "/system.slice/cron.service".to_owned());
    let ticks = (1..=RECHECK_TICKS + 1)
        .find(|_| group(&mut apps, &paths) == "service:cron")
        .expect("regrouped");
    assert!(ticks <= RECHECK_TICKS, "took {ticks} ticks");
}

#[test]
fn a_coarser_memory_hierarchy_is_labelled_not_claimed() {
    // Hybrid v1: the memory controller knows only the user's slice.
    let tree = Tree::new("v1");
    let slice = "/user.slice/user-1000.slice";
    let dir = tree.0.join(slice.trim_start_matches('/'));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("memory.usage_in_bytes"), "1073741824\n").expect("usage");
    std::fs::write(dir.join("memory.stat"), "total_rss 1\ntotal_cache 2\n").expect("stat");
    let mounts = Mounts {
        memory_v1: Some(Mount {
            point: tree.0.clone(),
            root: "/".into(),
        }),
        ..Mounts::default()
    };
    let mut apps = Apps::with(mounts, vec![]);
    let mut rows = vec![row(50, 1, "firefox", 400_000)];
    let mut read = |_: ProcessKey, buf: &mut Vec<u8>| {
        buf.clear();
        buf.extend_from_slice(
            format!("5:memory:{slice}\n1:name=systemd:{UNIT}\n0::{UNIT}\n").as_bytes(),
        );
        true
    };
    apps.update(1_000, &mut rows, &mut read, 0);
    let a = app(&apps, "u1000/app:org.gnome.Nautilus");
    assert_eq!(a.memory_covers.as_deref(), Some(slice));
    assert_eq!(a.memory.map(|m| m.current_kb), Some(1 << 20));
    assert_eq!(
        a.memory_kb(),
        400_000,
        "the headline is the RSS sum, not the slice's figure"
    );
    assert!(Path::new(&dir).exists());
}

#[test]
fn an_oom_kill_of_an_apps_last_process_is_still_seen() {
    let tree = Tree::new("last");
    tree.cgroup(UNIT, 64 << 20, "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n");
    let mut apps = Apps::with(tree.mounts(), vec![]);
    let paths = HashMap::from([(10, UNIT.to_owned())]);
    apps.update(
        1_000,
        &mut [row(10, 1, "hog", 60_000)],
        &mut reader(&paths),
        0,
    );
    assert!(apps.events().is_empty());
    // Killed between two ticks: the next tick has no process in the app, but the cgroup says.
    tree.cgroup(UNIT, 0, "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n");
    apps.update(
        2_000,
        &mut [row(11, 1, "other", 1_000)],
        &mut reader(&paths),
        0,
    );
    let kinds: Vec<AppEventKind> = apps.events().iter().map(|(_, e)| e.kind).collect();
    assert_eq!(kinds, [AppEventKind::Max, AppEventKind::OomKill]);
    assert!(
        apps.rows()
            .iter()
            .all(|r| r.id != "u1000/app:org.gnome.Nautilus")
    );
}

#[test]
fn in_a_cgroup_namespace_its_root_is_not_the_whole_machine() {
    // A hardened service on a hybrid host: its own cgroup namespace, memory at its root.
    let mut mounts = Mounts::parse(
        "35 31 0:32 / /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n\
         40 31 0:37 / /sys/fs/cgroup/systemd ro - cgroup cgroup rw,name=systemd\n",
    );
    let paths = CgroupPaths::parse(
        "9:name=systemd:/system.slice/memmon-helper.service\n4:memory:/\n0::/system.slice/memmon-helper.service\n",
    );
    let identity = identity::identify(paths.systemd().expect("path")).expect("unit");
    assert_eq!(
        memory_source(&mounts, &paths, &identity),
        None,
        "/ is the whole machine"
    );
    mounts.cgroup_namespace = true;
    let source = memory_source(&mounts, &paths, &identity).expect("the namespace's root");
    assert_eq!(source.dir, PathBuf::from("/sys/fs/cgroup/memory"));
    assert_eq!(
        source.covers.as_deref(),
        Some("/ (the root of this cgroup namespace)")
    );
}
