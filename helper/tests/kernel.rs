//! Real-kernel tests: load memmon's programs, drive a child that performs exactly known
//! operations, and check the snapshot. They need root; on CI (`CI=true`) not being able to run
//! them is a failure, elsewhere they say why and return.
#![cfg(feature = "ebpf")]

use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    sync::{Mutex, MutexGuard, OnceLock},
    time::{Duration, Instant},
};

use memmon_common::{
    diagnostics::{OomSource, SpikeKind},
    process_key::ProcessKey,
    snapshot::{AllocStats, Mode, ProcessRow},
};
use memmon_helper::Collector;

const WORKLOAD: &str = env!("CARGO_BIN_EXE_memmon-workload");
const PAGE: u64 = 4096;

/// Returns false (after saying why) when these tests cannot run here; panics on CI.
fn can_run() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let why = "kernel tests need root to load eBPF programs";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}, and CI=true: refusing to skip");
    }
    eprintln!("SKIPPED: {why}");
    false
}

fn collector() -> MutexGuard<'static, Collector> {
    static COLLECTOR: OnceLock<Mutex<Collector>> = OnceLock::new();
    let c = COLLECTOR.get_or_init(|| {
        let c = Collector::with_ebpf();
        assert_eq!(
            c.mode(),
            Mode::Full,
            "eBPF unavailable as root: {:?}",
            c.mode_reason()
        );
        Mutex::new(c)
    });
    c.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Children are spawned one at a time so the PID-reuse test can steer PID allocation.
static SPAWN: Mutex<()> = Mutex::new(());

struct Workload {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Workload {
    fn spawn(args: &[&str]) -> Workload {
        let _guard = SPAWN.lock().unwrap_or_else(|p| p.into_inner());
        Self::spawn_unlocked(args)
    }

    fn spawn_unlocked(args: &[&str]) -> Workload {
        // The programs must be attached before the child does anything.
        drop(collector());
        let mut child = Command::new(WORKLOAD)
            .arg("exact")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn memmon-workload");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut w = Workload {
            child,
            stdin,
            stdout,
        };
        w.expect_line("ready");
        w
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn expect_line(&mut self, want: &str) {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("read from workload");
        assert_eq!(line.trim(), want, "workload said {line:?}");
    }

    /// Performs the operations and waits until they are all done.
    fn go(&mut self) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(b"go\n").expect("write go");
        stdin.flush().expect("flush");
        self.expect_line("done");
    }

    /// Lets the child exit and reaps it.
    fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "workload failed: {status}");
    }
}

fn row(c: &mut Collector, pid: u32) -> Option<ProcessRow> {
    let snap = c.collect().expect("collect");
    snap.processes.into_iter().find(|r| r.pid == pid)
}

fn alloc(c: &mut Collector, pid: u32) -> AllocStats {
    row(c, pid)
        .expect("process listed")
        .alloc
        .unwrap_or_default()
}

fn round_up(len: u64) -> u64 {
    len.div_ceil(PAGE) * PAGE
}

#[test]
fn exact_counts_and_bytes_for_a_known_workload() {
    if !can_run() {
        return;
    }
    let (mmaps, size, munmaps, failed_mmaps, failed_munmaps) = (20u64, 10_000u64, 7u64, 5, 3);
    let (grow, shrink, step) = (4u64, 3u64, 65_536u64);
    let mut w = Workload::spawn(&[
        "--mmaps",
        &mmaps.to_string(),
        "--size",
        &size.to_string(),
        "--munmaps",
        &munmaps.to_string(),
        "--failed-mmaps",
        &failed_mmaps.to_string(),
        "--failed-munmaps",
        &failed_munmaps.to_string(),
        "--brk-grow",
        &grow.to_string(),
        "--brk-shrink",
        &shrink.to_string(),
        "--brk-step",
        &step.to_string(),
    ]);
    let pid = w.pid();
    let before = alloc(&mut collector(), pid);
    w.go();
    let after = alloc(&mut collector(), pid);
    w.finish();

    let mapped = mmaps * round_up(size);
    let unmapped = munmaps * round_up(size);
    assert_eq!(
        after.mmap_count - before.mmap_count,
        mmaps,
        "failed mmaps must not count"
    );
    assert_eq!(
        after.munmap_count - before.munmap_count,
        munmaps,
        "failed munmaps must not count"
    );
    assert_eq!(after.brk_count - before.brk_count, grow + shrink);
    assert_eq!(after.alloc_count - before.alloc_count, mmaps + grow);
    assert_eq!(after.free_count - before.free_count, munmaps + shrink);
    assert_eq!(
        after.total_allocated - before.total_allocated,
        mapped + grow * step
    );
    assert_eq!(
        after.total_freed - before.total_freed,
        unmapped + shrink * step
    );
    assert_eq!(
        after.net_mapped - before.net_mapped,
        (mapped + grow * step) as i64 - (unmapped + shrink * step) as i64
    );
    assert!(after.peak_net_mapped >= after.net_mapped);
    assert!(after.last_activity_unix_ms >= before.last_activity_unix_ms);
    assert!(after.last_activity_unix_ms > 0);
}

#[test]
fn the_kernels_process_map_is_sized_from_pid_max() {
    if !can_run() {
        return;
    }
    let c = collector();
    let pid_max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .expect("pid_max")
        .trim()
        .parse()
        .expect("a number");
    assert_eq!(
        c.kernel_capacity(),
        Some(memmon_common::tracked_processes_for(pid_max)),
        "pid_max {pid_max}"
    );
}

#[test]
fn threads_are_summed_under_their_process() {
    if !can_run() {
        return;
    }
    let (threads, mmaps, munmaps) = (4u64, 50u64, 30u64);
    let mut w = Workload::spawn(&[
        "--threads",
        &threads.to_string(),
        "--mmaps",
        &mmaps.to_string(),
        "--munmaps",
        &munmaps.to_string(),
        "--size",
        "8192",
    ]);
    let pid = w.pid();
    let before = alloc(&mut collector(), pid);
    w.go();
    let after = alloc(&mut collector(), pid);
    w.finish();
    assert_eq!(after.mmap_count - before.mmap_count, threads * mmaps);
    assert_eq!(after.munmap_count - before.munmap_count, threads * munmaps);
    assert_eq!(
        after.total_allocated - before.total_allocated,
        threads * mmaps * 8192
    );
    assert_eq!(
        after.total_freed - before.total_freed,
        threads * munmaps * 8192
    );
}

#[test]
fn an_exited_process_disappears_with_its_kernel_record() {
    if !can_run() {
        return;
    }
    let mut w = Workload::spawn(&["--mmaps", "3"]);
    let pid = w.pid();
    w.go();
    {
        let mut c = collector();
        assert!(row(&mut c, pid).is_some());
        assert!(
            c.kernel_record(pid).is_some(),
            "the kernel saw the child's mmaps"
        );
    }
    w.finish();
    let mut c = collector();
    assert!(row(&mut c, pid).is_none(), "exited process still listed");
    assert!(
        c.kernel_record(pid).is_none(),
        "kernel record not removed on exit"
    );
}

#[test]
fn a_reused_pid_starts_from_zero() {
    if !can_run() {
        return;
    }
    let _guard = SPAWN.lock().unwrap_or_else(|p| p.into_inner());
    let mut old = Workload::spawn_unlocked(&["--mmaps", "1000"]);
    let pid = old.pid();
    old.go();
    let old_row = row(&mut collector(), pid).expect("old process listed");
    assert!(old_row.alloc.expect("tracked").mmap_count >= 1000);
    old.finish();
    // Start times have a 10 ms grain; a PID reused within the same tick is not the case under
    // test here (the kernel-side record is deleted at exit either way).
    std::thread::sleep(Duration::from_millis(30));

    // Ask the kernel to hand the same PID out again (other processes may race us: retry).
    let deadline = Instant::now() + Duration::from_secs(20);
    let new = loop {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string())
            .expect("write ns_last_pid (needs root and CONFIG_CHECKPOINT_RESTORE)");
        let w = Workload::spawn_unlocked(&[]);
        if w.pid() == pid {
            break w;
        }
        w.finish();
        assert!(Instant::now() < deadline, "could not get PID {pid} reused");
    };
    let new_row = row(&mut collector(), pid).expect("new process listed");
    assert_ne!(
        new_row.start_time, old_row.start_time,
        "same PID, new process"
    );
    let counts = new_row.alloc.unwrap_or_default();
    assert!(
        counts.mmap_count < 200,
        "the new process inherited the old one's counters: {counts:?}"
    );
    new.finish();
}

#[test]
fn the_kernels_net_and_peak_agree_with_its_counters() {
    if !can_run() {
        return;
    }
    // One thread maps and unmaps, so the shared peak cannot lag: the running net kept by the
    // kernel (atomic adds) must equal the counters' net, and the peak must cover the high point.
    let (mmaps, munmaps, size) = (30u64, 10u64, 4096u64);
    let mut w = Workload::spawn(&[
        "--mmaps",
        &mmaps.to_string(),
        "--munmaps",
        &munmaps.to_string(),
        "--size",
        &size.to_string(),
    ]);
    let pid = w.pid();
    let before = collector()
        .kernel_record(pid)
        .expect("start-up calls recorded");
    w.go();
    let after = collector().kernel_record(pid).expect("record");
    w.finish();
    assert_eq!(after.state.net, after.counters.net_mapped(), "{after:?}");
    assert!(
        after.state.peak_net >= before.state.net + (mmaps * size) as i64,
        "peak {} missed the high point {}",
        after.state.peak_net,
        before.state.net + (mmaps * size) as i64
    );
    assert_eq!(
        after.state.net - before.state.net,
        ((mmaps - munmaps) * size) as i64
    );
    let snap = collector().collect().expect("collect");
    assert_eq!(snap.mode, Mode::Full);
    assert_eq!(snap.bpf_drops, 0, "no map should be full on this machine");
}

#[path = "support/memcg.rs"]
mod memcg;
use memcg::MemCgroup;

/// Runs a hog in a 64 MiB cgroup until the OOM killer ends it; returns its PID.
fn provoke_oom_kill(c: &mut Collector, cgroup: &MemCgroup) -> u32 {
    let mut hog = Command::new(WORKLOAD)
        .args(["pattern", "hog", "--mib", "512", "--step-ms", "10"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn hog");
    let pid = hog.id();
    let mut stdout = BufReader::new(hog.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("ready");
    assert_eq!(line.trim(), "ready");
    cgroup.add(pid);
    c.collect().expect("collect: the hog is seen alive");
    let mut stdin = hog.stdin.take().expect("stdin");
    stdin.write_all(b"go\n").expect("go");
    stdin.flush().expect("flush");
    // Sample it while it grows (about 0.7 s to the limit), so its last RSS is its large one.
    let status = loop {
        if let Some(status) = hog.try_wait().expect("wait") {
            break status;
        }
        c.collect().expect("collect");
        std::thread::sleep(Duration::from_millis(100));
    };
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the hog should be OOM-killed: {status}"
    );
    pid
}

#[test]
fn an_oom_kill_in_a_memory_limited_cgroup_is_listed_with_its_victim() {
    if !can_run() {
        return;
    }
    let cgroup = MemCgroup::create(64 << 20);
    // Full mode: the oom:mark_victim program names the victim.
    let mut c = collector();
    let pid = provoke_oom_kill(&mut c, &cgroup);
    let snap = c.collect().expect("collect");
    let kill = snap
        .oom_kills
        .iter()
        .find(|k| k.pid == pid)
        .unwrap_or_else(|| panic!("victim {pid} not listed: {:?}", snap.oom_kills));
    assert_eq!(kill.source, OomSource::Tracepoint);
    assert_eq!(kill.name, "memmon-workload");
    assert!(kill.start_time.is_some(), "{kill:?}");
    let at_kill = kill.rss_at_kill_kb.expect("RSS at the kill") / 1024;
    assert!((40..=70).contains(&at_kill), "{at_kill} MiB at the kill");
    // `c` (the shared collector's lock) stays held to the end: the other tests wait, so none of
    // their workloads can exit during the part below, whose inference names the largest
    // process gone in the tick of the kill (CI once saw another test's 92 MB workload taken).

    // Without eBPF: the oom_kill counter rose and the hog vanished in the same tick.
    let mut embedded = Collector::embedded("test");
    embedded.collect().expect("first tick");
    let pid = provoke_oom_kill(&mut embedded, &cgroup);
    let snap = embedded.collect().expect("collect");
    let kill = snap
        .oom_kills
        .iter()
        .find(|k| k.pid == pid)
        .unwrap_or_else(|| panic!("victim {pid} not inferred: {:?}", snap.oom_kills));
    assert_eq!(kill.source, OomSource::Counter);
    assert_eq!(kill.name, "memmon-workload");
    assert!(
        kill.last_rss_kb.is_some_and(|kb| kb > 16 * 1024),
        "its last sample shows it grown: {kill:?}"
    );
}

#[test]
fn high_resolution_mode_sees_a_spike_below_an_earlier_peak_with_its_size() {
    if !can_run() {
        return;
    }
    // Its own collector: another test's tick must not take this process's peak.
    let mut c = Collector::with_ebpf();
    assert_eq!(c.mode(), Mode::Full, "{:?}", c.mode_reason());
    let mut spiker = Command::new(WORKLOAD)
        .args(["pattern", "spike", "--mib", "200", "--hold-ms", "100"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn spiker");
    let pid = spiker.id();
    let mut stdin = spiker.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(spiker.stdout.take().expect("stdout"));
    let mut line = String::new();
    let mut expect = |want: &str| {
        line.clear();
        stdout.read_line(&mut line).expect("read spiker");
        assert_eq!(line.trim(), want);
    };
    expect("ready");
    let key = row(&mut c, pid).expect("spiker listed").key();
    let err = c
        .watch_rss(Some(ProcessKey::new(pid, key.start_time + 1)))
        .expect_err("a stale start time is refused");
    assert!(err.contains("no process"), "{err}");
    c.watch_rss(Some(key)).expect("watch");
    assert_eq!(c.rss_target(), Some(key));
    c.collect().expect("collect");
    let mut spikes = Vec::new();
    for _ in 0..2 {
        stdin.write_all(b"go\n").expect("go");
        stdin.flush().expect("flush");
        expect("done");
        let r = row(&mut c, pid).expect("spiker listed");
        let high_res = r
            .high_res
            .expect("the watched row has high-resolution data");
        assert!(
            high_res.changes >= 200 * 256,
            "every page of 200 MiB changes RSS: {high_res:?}"
        );
        spikes.push(r.spike);
    }
    // The second spike does not raise VmHWM above the first: only the traced peak shows it.
    let second = spikes[1].expect("the second spike is seen");
    assert_eq!(second.kind, SpikeKind::RssTraced);
    let mib = second.size_bytes as f64 / 1048576.0;
    assert!(
        (180.0..=220.0).contains(&mib),
        "{mib:.1} MiB, want 200 ± 10 %"
    );
    assert!(spikes[0].is_some(), "the first spike is seen too");
    c.watch_rss(None).expect("stop");
    assert_eq!(c.rss_target(), None);
    let r = row(&mut c, pid).expect("listed");
    assert_eq!(r.high_res, None, "not watched any more");
    drop(stdin);
    let _ = spiker.wait();
}
