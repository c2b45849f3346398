//! `memmon-helper callsites` against a real kernel: a C program with known leak sites
//! (`tests/fixtures/leaker.c`, built here without frame pointers, so stacks must be unwound from
//! `.eh_frame`) is watched while it allocates exactly what it reports, and the report must name
//! each site and measure its bytes. Also: nothing of a session (programs named `cs_*`) stays
//! loaded after it ends or its helper is killed, and bad requests fail clearly.
//!
//! They need root and a build with eBPF programs; on CI (`CI=true`) not being able to run them
//! is a failure, elsewhere they say why and return. Tests that load programs run one at a time
//! (`serial`): the program checks would otherwise see another test's session.
#![cfg(all(feature = "ebpf", target_arch = "x86_64"))]

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{BufRead as _, BufReader, Read, Write as _},
    os::unix::process::ExitStatusExt as _,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, ExitStatus, Stdio},
    sync::{Mutex, MutexGuard, OnceLock, mpsc},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use memmon_common::callsites::{
    CallSite, CallSiteReport, CallSiteSource, Frame, SessionState, is_runtime_module,
};
use memmon_helper::tracker::{Tracker, TrackerError};

const HELPER: &str = env!("CARGO_BIN_EXE_memmon-helper");
const LEAKER_C: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/leaker.c");
const PAGE: u64 = 4096;
const MIB: u64 = 1 << 20;

/// Session length for the measuring tests: the workload's phase (7 s at most) plus the wait
/// for the programs to attach, with room to spare (the session's clock starts once attached).
const SESSION_SECONDS: &str = "12";
/// The heap and mappings phases of the measuring tests.
const HEAP_PHASE_MS: u64 = 7000;
const MAPS_PHASE_MS: u64 = 6000;
/// Tolerance of every measured figure against what the workload reports.
const TOLERANCE: f64 = 0.10;

// --- can these tests run here ------------------------------------------------------------

fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Returns false (after saying why) when these tests cannot run here; panics on CI.
fn can_run() -> bool {
    static WHY_NOT: OnceLock<Option<String>> = OnceLock::new();
    let why_not = WHY_NOT.get_or_init(|| {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Some("call-site tests need root to load eBPF programs".to_owned());
        }
        // A build without bpf-linker has placeholder objects (the call-site one included, both
        // come from the same build.rs step): loading memmon's own programs tells which.
        match Tracker::start(memmon_helper::proc_scan::page_size()) {
            Ok(tracker) => {
                drop(tracker); // detaches them again
                None
            }
            Err(err @ TrackerError::NoObject) => Some(err.to_string()),
            Err(err) => panic!("eBPF unavailable as root: {err}"),
        }
    });
    let Some(why) = why_not else {
        return true;
    };
    if on_ci() {
        panic!("{why}, and CI=true: refusing to skip");
    }
    eprintln!("SKIPPED: {why}");
    false
}

/// Tests that start sessions hold this while they run: the checks of loaded `cs_*` programs
/// must see only their own session's.
fn serial() -> MutexGuard<'static, ()> {
    static SESSIONS: Mutex<()> = Mutex::new(());
    SESSIONS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// --- the loaded call-site programs --------------------------------------------------------

/// Loaded eBPF programs named `cs_*` (a session's programs), by id. Ids are never reused
/// quickly, so comparing id sets tells this test's programs from leftovers of earlier runs.
fn cs_programs() -> BTreeMap<u32, String> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter_map(|p| {
            let name = p.name_as_str()?;
            name.starts_with("cs_").then(|| (p.id(), name.to_owned()))
        })
        .collect()
}

/// `cs_*` programs loaded now that were not loaded in `before`.
fn new_cs_programs(before: &BTreeMap<u32, String>) -> BTreeMap<u32, String> {
    let mut now = cs_programs();
    now.retain(|id, _| !before.contains_key(id));
    now
}

/// Waits until the session started by `helper` has attached its programs: new `cs_*` programs
/// appeared and their set stayed the same for half a second (they are loaded and attached one
/// by one). Returns them. Panics with the helper's stderr if it exits first.
fn wait_until_attached(
    helper: &mut Helper,
    before: &BTreeMap<u32, String>,
) -> BTreeMap<u32, String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = BTreeMap::new();
    let mut unchanged_since = Instant::now();
    loop {
        if let Some(out) = helper.try_finish() {
            panic!(
                "the helper exited before attaching ({}): {}",
                out.status, out.stderr
            );
        }
        let now = new_cs_programs(before);
        if now != seen {
            seen = now;
            unchanged_since = Instant::now();
        } else if !seen.is_empty() && unchanged_since.elapsed() >= Duration::from_millis(500) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no call-site programs attached within 20 s (seen: {seen:?})"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The last program is attached just after it is loaded.
    std::thread::sleep(Duration::from_millis(300));
    seen
}

/// Waits (up to 5 s: the kernel frees programs once their last reference goes) until none of
/// the `cs_*` programs that were not loaded in `before` is loaded any more.
fn assert_programs_gone(before: &BTreeMap<u32, String>, after_what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = new_cs_programs(before);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "call-site programs still loaded 5 s after {after_what}: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// --- children -----------------------------------------------------------------------------

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("memmon-callsites-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Compiles the fixture into `dir`, without frame pointers and with debug info.
fn build_leaker(dir: &TempDir) -> PathBuf {
    let binary = dir.path().join("leaker");
    let out = match Command::new("cc")
        .args(["-O2", "-fomit-frame-pointer", "-g", "-o"])
        .arg(&binary)
        .arg(LEAKER_C)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("`cc` not found: the call-site tests compile {LEAKER_C} (install gcc or clang)")
        }
        Err(e) => panic!("cannot run cc: {e}"),
    };
    assert!(
        out.status.success(),
        "cc failed to build {LEAKER_C} ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    binary
}

/// Waits up to `timeout` for `child` to exit.
fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait for a child") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The bytes each site of the leaker allocated in one phase and never freed (its `done` line).
#[derive(Debug)]
struct Leaked(BTreeMap<String, u64>);

impl Leaked {
    fn parse(line: &str) -> Leaked {
        let fields = line
            .strip_prefix("done ")
            .unwrap_or_else(|| panic!("the leaker said {line:?}, not done …"));
        Leaked(
            fields
                .split_whitespace()
                .map(|field| {
                    let (key, value) = field
                        .split_once('=')
                        .unwrap_or_else(|| panic!("bad field {field:?} in {line:?}"));
                    let value = value
                        .parse()
                        .unwrap_or_else(|_| panic!("bad number in {field:?} of {line:?}"));
                    (key.to_owned(), value)
                })
                .collect(),
        )
    }

    fn bytes(&self, site: &str) -> u64 {
        *self
            .0
            .get(site)
            .unwrap_or_else(|| panic!("the leaker did not report {site}: {self:?}"))
    }
}

/// The fixture, driven through its stdin/stdout protocol. Its output is read on a thread, so a
/// hung leaker fails the test instead of hanging it; dropping it kills and reaps it.
struct Leaker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Leaker {
    fn start(binary: &Path) -> Leaker {
        let mut child = Command::new(binary)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the leaker");
        let stdout = child.stdout.take().expect("leaker stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        let mut leaker = Leaker {
            child,
            stdin,
            lines,
        };
        let ready = leaker.line(Duration::from_secs(10));
        assert_eq!(
            ready,
            format!("ready {}", leaker.pid()),
            "the leaker's first line"
        );
        leaker
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn line(&mut self, timeout: Duration) -> String {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("the leaker said nothing for {timeout:?}")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                "the leaker closed its output: {:?}",
                wait_timeout(&mut self.child, Duration::from_secs(1))
            ),
        }
    }

    fn send(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("leaker stdin open");
        writeln!(stdin, "{command}").expect("write to the leaker");
        stdin.flush().expect("flush to the leaker");
    }

    /// Runs one phase (`heap` or `maps`) for `ms` milliseconds and returns what it leaked.
    fn run(&mut self, phase: &str, ms: u64) -> Leaked {
        self.send(&format!("{phase} {ms}"));
        Leaked::parse(&self.line(Duration::from_millis(ms) + Duration::from_secs(20)))
    }

    /// Tells it to exit and reaps it (a session sees the exit once the process is gone).
    fn quit(&mut self) {
        self.send("quit");
        drop(self.stdin.take());
        let status = wait_timeout(&mut self.child, Duration::from_secs(10))
            .expect("the leaker did not exit on quit");
        assert!(status.success(), "the leaker failed: {status}");
    }
}

impl Drop for Leaker {
    fn drop(&mut self) {
        // Both are no-ops once `quit` reaped it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a finished `memmon-helper` run left.
#[derive(Debug)]
struct HelperOutput {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
}

impl HelperOutput {
    /// The report of a successful `--json` run: stdout must be exactly one JSON object.
    fn report(&self) -> CallSiteReport {
        assert!(
            self.status.success(),
            "memmon-helper callsites failed ({}): {}",
            self.status,
            self.stderr
        );
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one CallSiteReport JSON object ({e}): {}",
                String::from_utf8_lossy(&self.stdout)
            )
        })
    }
}

/// A running `memmon-helper`, its stdout and stderr read on threads (a large report must not
/// block it on a full pipe). Dropping it kills and reaps it.
struct Helper {
    child: Child,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

fn read_all(mut from: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        bytes
    })
}

impl Helper {
    fn spawn(args: &[&str]) -> Helper {
        let mut child = Command::new(HELPER)
            .args(args)
            // Only what the helper itself prints (the error-message checks count lines).
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start memmon-helper");
        let stdout = read_all(child.stdout.take().expect("stdout"));
        let stderr = read_all(child.stderr.take().expect("stderr"));
        Helper {
            child,
            stdout: Some(stdout),
            stderr: Some(stderr),
        }
    }

    fn collect(&mut self, status: ExitStatus) -> HelperOutput {
        let join = |h: Option<JoinHandle<Vec<u8>>>| {
            h.map(|h| h.join().expect("output reader"))
                .unwrap_or_default()
        };
        HelperOutput {
            status,
            stdout: join(self.stdout.take()),
            stderr: String::from_utf8_lossy(&join(self.stderr.take())).into_owned(),
        }
    }

    /// Its output if it has exited.
    fn try_finish(&mut self) -> Option<HelperOutput> {
        let status = self.child.try_wait().expect("wait for the helper")?;
        Some(self.collect(status))
    }

    /// Waits for it to exit by itself; kills it and fails after `timeout`.
    fn finish(&mut self, timeout: Duration) -> HelperOutput {
        match wait_timeout(&mut self.child, timeout) {
            Some(status) => self.collect(status),
            None => {
                let out = self.kill();
                panic!(
                    "memmon-helper still running after {timeout:?}: {}",
                    out.stderr
                )
            }
        }
    }

    /// SIGKILL, then reap.
    fn kill(&mut self) -> HelperOutput {
        let _ = self.child.kill();
        let status = self.child.wait().expect("reap the helper");
        self.collect(status)
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fails if the session already ended: its report would miss part of the workload.
fn assert_still_running(helper: &mut Helper) {
    if let Some(out) = helper.try_finish() {
        panic!(
            "the session ended before the workload was done ({}; attaching took too long?): {}",
            out.status, out.stderr
        );
    }
}

/// A session on `pid` with `args` after the PID.
fn callsites(pid: u32, args: &[&str]) -> Helper {
    let pid = pid.to_string();
    Helper::spawn(&[&["callsites", pid.as_str()][..], args].concat())
}

// --- reading a report ---------------------------------------------------------------------

/// Whether `frame` is the function `name` (or a compiler clone of it, `name.constprop.0`).
fn function_is(frame: &Frame, name: &str) -> bool {
    frame.function.as_deref().is_some_and(|f| {
        f.strip_prefix(name)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    })
}

/// Index of the first frame of `site` in function `name`, innermost first.
fn position(site: &CallSite, name: &str) -> Option<usize> {
    site.frames.iter().position(|f| function_is(f, name))
}

/// The sites with a frame in function `name`.
fn sites_through<'a>(report: &'a CallSiteReport, name: &str) -> Vec<&'a CallSite> {
    report
        .sites
        .iter()
        .filter(|s| position(s, name).is_some())
        .collect()
}

fn within(actual: u64, low: f64, high: f64) -> bool {
    (low..=high).contains(&(actual as f64))
}

/// The report as text, for failure messages.
fn shown(report: &CallSiteReport) -> String {
    format!("{:?}\n{}", report.stats, report.text(12))
}

/// Checks the unwinding of one leak site: the blamed frame (first outside the C library) is
/// `blamed`, with its source line; each of `outer` appears further out, in that order, `main`
/// last.
fn assert_unwound(report: &CallSiteReport, site: &CallSite, blamed: &str, outer: &[&str]) {
    let frame = site
        .blamed_frame()
        .unwrap_or_else(|| panic!("a {blamed} site without frames:\n{}", shown(report)));
    assert!(
        function_is(frame, blamed),
        "the {blamed} site blames {:?}:\n{}",
        frame.function,
        shown(report)
    );
    assert!(
        frame
            .file
            .as_deref()
            .is_some_and(|f| f.ends_with("leaker.c"))
            && frame.line.is_some(),
        "{blamed} has no source line (built with -g): {frame:?}"
    );
    let mut last = position(site, blamed).expect("blamed frame is a frame");
    for name in outer.iter().chain(&["main"]) {
        let at = position(site, name).unwrap_or_else(|| {
            panic!(
                "the {blamed} stack lacks {name}: unwinding without frame pointers stopped \
                 early:\n{}",
                shown(report)
            )
        });
        assert!(
            at > last,
            "{name} is not outside the frames before it in the {blamed} stack:\n{}",
            shown(report)
        );
        last = at;
    }
}

// --- the tests ----------------------------------------------------------------------------

/// (site as the leaker reports it, the function a heap stack blames, the frames further out)
const HEAP_LEAKS: [(&str, &str, &[&str]); 3] = [
    ("leak_small", "leak_small", &["heap_phase"]),
    (
        "leak_medium",
        "inner_wrapper",
        &["outer_wrapper", "leak_medium", "heap_phase"],
    ),
    ("leak_large", "leak_large", &["heap_phase"]),
];

/// Which heap leak a site is: the first frame that is one of their blamed functions.
fn heap_leak(site: &CallSite) -> Option<&'static str> {
    site.frames.iter().find_map(|f| {
        HEAP_LEAKS
            .iter()
            .find(|(_, blamed, _)| function_is(f, blamed))
            .map(|(leak, _, _)| *leak)
    })
}

#[test]
fn heap_sites_are_found_and_measured_without_frame_pointers() {
    if !can_run() {
        return;
    }
    let _serial = serial();
    let dir = TempDir::new("heap");
    let mut leaker = Leaker::start(&build_leaker(&dir));
    let folded = dir.path().join("stacks.folded");
    let before = cs_programs();
    // Every call recorded (`--sample 1`): with random sampling, leak_large's ~280 blocks taken
    // 1 in 2 would be off by ±6 % (one standard deviation), too coarse for ±10 %.
    let mut helper = callsites(
        leaker.pid(),
        &[
            "--seconds",
            SESSION_SECONDS,
            "--source",
            "heap",
            "--sample",
            "1",
            "--json",
            "--folded",
            folded.to_str().expect("UTF-8 temp path"),
        ],
    );
    wait_until_attached(&mut helper, &before);
    let leaked = leaker.run("heap", HEAP_PHASE_MS);
    assert_still_running(&mut helper);
    let out = helper.finish(Duration::from_secs(40));
    leaker.quit();
    let report = out.report();
    assert_programs_gone(&before, "the session ended");

    assert_eq!(report.pid, leaker.pid());
    assert_eq!(report.comm, "leaker");
    assert_eq!(report.source, CallSiteSource::Heap);
    assert!(
        matches!(report.state, SessionState::Finished(_)),
        "{:?}",
        report.state
    );
    assert_eq!((report.sample_every, report.adaptive), (1, false));
    assert!(
        report.probed.iter().any(|m| is_runtime_module(m)),
        "the C library's allocator is probed: {:?}",
        report.probed
    );
    let listed: u64 = report.sites.iter().map(|s| s.outstanding_bytes).sum();
    assert!(report.outstanding_bytes >= listed, "{}", shown(&report));

    // The three leaks are the three biggest sites, one stack each.
    let top: BTreeSet<Option<&str>> = report.sites.iter().take(3).map(heap_leak).collect();
    let want: BTreeSet<Option<&str>> = HEAP_LEAKS.iter().map(|(leak, _, _)| Some(*leak)).collect();
    assert_eq!(top, want, "the top three sites:\n{}", shown(&report));

    for (leak, blamed, outer) in HEAP_LEAKS {
        let sites: Vec<&CallSite> = report
            .sites
            .iter()
            .filter(|s| heap_leak(s) == Some(leak))
            .collect();
        assert_eq!(
            sites.len(),
            1,
            "{leak} is called from one place:\n{}",
            shown(&report)
        );
        let site = sites[0];
        assert_unwound(&report, site, blamed, outer);
        let expected = leaked.bytes(leak) as f64;
        assert!(
            within(
                site.outstanding_bytes,
                expected * (1.0 - TOLERANCE),
                expected * (1.0 + TOLERANCE)
            ),
            "{leak}: {} bytes outstanding, the leaker leaked {expected}:\n{}",
            site.outstanding_bytes,
            shown(&report)
        );
    }

    // Churn frees everything it allocates.
    let churn = sites_through(&report, "churn");
    let allocated: u64 = churn.iter().map(|s| s.allocated_bytes).sum();
    let outstanding: u64 = churn.iter().map(|s| s.outstanding_bytes).sum();
    assert!(
        allocated > 0,
        "churn's allocations are seen:\n{}",
        shown(&report)
    );
    assert!(
        outstanding < (allocated / 100).max(2048),
        "churn: {outstanding} of {allocated} bytes outstanding, the leaker left {}:\n{}",
        leaked.bytes("churn_outstanding"),
        shown(&report)
    );

    // --folded: the report's own folded stacks.
    let written = std::fs::read_to_string(&folded).expect("the --folded file was written");
    assert_eq!(written, report.folded());
    assert!(
        written
            .lines()
            .any(|l| l.starts_with("main;") || l.contains(";main;")),
        "{written}"
    );
}

#[test]
fn mapping_sites_are_found_and_measured_without_frame_pointers() {
    if !can_run() {
        return;
    }
    let _serial = serial();
    let dir = TempDir::new("maps");
    let mut leaker = Leaker::start(&build_leaker(&dir));
    let before = cs_programs();
    let mut helper = callsites(
        leaker.pid(),
        &[
            "--seconds",
            SESSION_SECONDS,
            "--source",
            "mappings",
            "--json",
        ],
    );
    wait_until_attached(&mut helper, &before);
    let leaked = leaker.run("maps", MAPS_PHASE_MS);
    assert_still_running(&mut helper);
    let out = helper.finish(Duration::from_secs(40));
    leaker.quit();
    let report = out.report();
    assert_programs_gone(&before, "the session ended");

    assert_eq!(report.pid, leaker.pid());
    assert_eq!(report.source, CallSiteSource::Mappings);
    assert_eq!(report.sample_every, 1);
    assert!(
        matches!(report.state, SessionState::Finished(_)),
        "{:?}",
        report.state
    );

    // Mapping stacks start in the C library's mmap/brk wrapper (below malloc for leak_big);
    // the blamed frame is the first outside it.
    for name in ["leak_big", "grow_brk"] {
        let sites = sites_through(&report, name);
        assert!(!sites.is_empty(), "no {name} site:\n{}", shown(&report));
        for site in sites {
            let first = site.frames.first().expect("frames");
            assert!(
                first.module.as_deref().is_some_and(is_runtime_module),
                "a {name} stack starts outside the C library: {first:?}"
            );
            assert_unwound(&report, site, name, &["maps_phase"]);
        }
    }

    // Each 1 MiB block is one mapping of its size plus glibc's chunk header, rounded up to
    // pages: 1 MiB + one page.
    let big = leaked.bytes("leak_big");
    assert_eq!(big % MIB, 0, "{leaked:?}");
    let blocks = big / MIB;
    assert!(blocks >= 20, "too few blocks to measure: {leaked:?}");
    let big_sites = sites_through(&report, "leak_big");
    let mapped: u64 = big_sites.iter().map(|s| s.outstanding_bytes).sum();
    assert!(
        within(
            mapped,
            (blocks * MIB) as f64 * (1.0 - TOLERANCE),
            (blocks * (MIB + PAGE)) as f64 * (1.0 + TOLERANCE)
        ),
        "leak_big: {mapped} bytes outstanding for {blocks} blocks of 1 MiB:\n{}",
        shown(&report)
    );
    assert!(
        position(&report.sites[0], "leak_big").is_some(),
        "leak_big's ~{blocks} MiB is the biggest site:\n{}",
        shown(&report)
    );

    let grown = leaked.bytes("grow_brk") as f64;
    let brk: u64 = sites_through(&report, "grow_brk")
        .iter()
        .map(|s| s.outstanding_bytes)
        .sum();
    assert!(
        within(brk, grown * (1.0 - TOLERANCE), grown * (1.0 + TOLERANCE)),
        "grow_brk: {brk} bytes outstanding, the leaker grew the heap by {grown}:\n{}",
        shown(&report)
    );
}

#[test]
fn sessions_unload_their_programs_when_the_process_exits_or_the_helper_is_killed() {
    if !can_run() {
        return;
    }
    let _serial = serial();
    let dir = TempDir::new("lifecycle");
    let leaker_binary = build_leaker(&dir);

    // A long session ends early, and cleanly, when its process exits.
    let mut leaker = Leaker::start(&leaker_binary);
    let before = cs_programs();
    let mut helper = callsites(
        leaker.pid(),
        &["--seconds", "60", "--source", "heap", "--json"],
    );
    let attached = wait_until_attached(&mut helper, &before);
    assert!(
        attached.values().any(|name| name == "cs_malloc"),
        "{attached:?}"
    );
    leaker.run("heap", 2000);
    let exited_at = Instant::now();
    leaker.quit();
    let out = helper.finish(Duration::from_secs(15));
    let report = out.report();
    assert!(
        exited_at.elapsed() < Duration::from_secs(10),
        "the session outlived its process by {:?}",
        exited_at.elapsed()
    );
    match &report.state {
        SessionState::Finished(reason) => assert!(reason.contains("exit"), "{reason}"),
        other => panic!("state {other:?}"),
    }
    assert!(report.elapsed_ms < 30_000, "{}", report.elapsed_ms);
    // No interval asked for: it adapts. Whatever interval it chose, churn's sampled blocks are
    // all freed, so only leak sites can have bytes outstanding (and ~1,100 leaks were sampled
    // at least once at any interval up to 1 in 64).
    assert!(report.adaptive, "{}", shown(&report));
    assert!(
        report.stats.allocs_sampled > 0 && report.stats.allocs_sampled <= report.stats.allocs_seen,
        "{}",
        shown(&report)
    );
    let leaking: Vec<&CallSite> = report
        .sites
        .iter()
        .filter(|s| s.outstanding_bytes > 0)
        .collect();
    assert!(
        !leaking.is_empty() && leaking.iter().all(|s| heap_leak(s).is_some()),
        "only the leak sites have bytes outstanding:\n{}",
        shown(&report)
    );
    assert_programs_gone(&before, "the session ended with its process");

    // SIGKILL mid-session: the kernel drops the programs with the helper's descriptors.
    for (source, phase, program) in [
        ("heap", "heap", "cs_malloc"),
        ("mappings", "maps", "cs_exit_mmap"),
    ] {
        let mut leaker = Leaker::start(&leaker_binary);
        let before = cs_programs();
        let mut helper = callsites(
            leaker.pid(),
            &["--seconds", "60", "--source", source, "--json"],
        );
        let attached = wait_until_attached(&mut helper, &before);
        assert!(
            attached.values().any(|name| name == program),
            "{source}: {attached:?}"
        );
        leaker.run(phase, 500);
        let out = helper.kill();
        assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{out:?}");
        assert_programs_gone(&before, &format!("a {source} session's helper was killed"));
        leaker.quit();
    }
}

#[test]
fn bad_requests_exit_non_zero_naming_the_problem_and_load_nothing() {
    let _serial = serial();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let before = root.then(cs_programs);
    let me = std::process::id();

    // Usage errors, found by clap before anything is loaded (no root needed): exit code 2.
    let cases: [(&[&str], &[&str]); 4] = [
        (&["--seconds", "0"], &["--seconds", "0"]),
        (&["--seconds", "601"], &["--seconds", "601"]),
        (&["--source", "bogus"], &["--source", "bogus"]),
        (&["--seconds", "soon"], &["--seconds", "soon"]),
    ];
    for (args, names) in cases {
        // A wrongly accepted request would watch this test for up to 601 s: cut it short.
        let out = callsites(me, args).finish(Duration::from_secs(15));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        for name in names {
            assert!(
                out.stderr.contains(name),
                "{args:?}: stderr {:?} lacks {name:?}",
                out.stderr
            );
        }
        assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
    }

    if !can_run() {
        return;
    }
    // A PID that just went away (reaped here, so nobody else has it yet in all likelihood).
    let mut gone = Command::new("true").spawn().expect("run true");
    let pid = gone.id();
    gone.wait().expect("reap true");
    for source in ["mappings", "heap"] {
        let out = callsites(pid, &["--seconds", "1", "--source", source, "--json"])
            .finish(Duration::from_secs(15));
        assert_eq!(out.status.code(), Some(1), "{source}: {out:?}");
        let lines: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert!(
            lines.len() == 1 && lines[0].contains(&pid.to_string()),
            "{source}: one line naming PID {pid} expected on stderr: {:?}",
            out.stderr
        );
    }
    assert_programs_gone(before.as_ref().expect("root"), "refused requests");
}
