//! What the call-site tests share: whether they can run here, the loaded `cs_*` programs, the
//! C fixture and the helper as children, and reading a report.
#![allow(dead_code)] // not every test uses every helper

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader, Read, Write as _},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, ExitStatus, Stdio},
    sync::{Mutex, MutexGuard, OnceLock, mpsc},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use memmon_common::callsites::{CallSite, CallSiteReport, Frame};
use memmon_helper::tracker::{Tracker, TrackerError};

pub const HELPER: &str = env!("CARGO_BIN_EXE_memmon-helper");
pub const LEAKER_C: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/leaker.c");
pub const PAGE: u64 = 4096;
pub const MIB: u64 = 1 << 20;

// --- can these tests run here ------------------------------------------------------------

pub fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Returns false (after saying why) when these tests cannot run here; panics on CI.
pub fn can_run() -> bool {
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
pub fn serial() -> MutexGuard<'static, ()> {
    static SESSIONS: Mutex<()> = Mutex::new(());
    SESSIONS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// --- the loaded call-site programs --------------------------------------------------------

/// Loaded eBPF programs named `cs_*` (a session's programs), by id. Ids are never reused
/// quickly, so comparing id sets tells this test's programs from leftovers of earlier runs.
pub fn cs_programs() -> BTreeMap<u32, String> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter_map(|p| {
            let name = p.name_as_str()?;
            name.starts_with("cs_").then(|| (p.id(), name.to_owned()))
        })
        .collect()
}

/// `cs_*` programs loaded now that were not loaded in `before`.
pub fn new_cs_programs(before: &BTreeMap<u32, String>) -> BTreeMap<u32, String> {
    let mut now = cs_programs();
    now.retain(|id, _| !before.contains_key(id));
    now
}

/// Waits until the session started by `helper` has attached its programs: new `cs_*` programs
/// appeared and their set stayed the same for half a second (they are loaded and attached one
/// by one). Returns them. Panics with the helper's stderr if it exits first.
pub fn wait_until_attached(
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
pub fn assert_programs_gone(before: &BTreeMap<u32, String>, after_what: &str) {
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
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("memmon-callsites-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Compiles the fixture into `dir`, without frame pointers and with debug info.
pub fn build_leaker(dir: &TempDir) -> PathBuf {
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
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
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
pub struct Leaked(pub BTreeMap<String, u64>);

impl Leaked {
    pub fn parse(line: &str) -> Leaked {
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

    pub fn bytes(&self, site: &str) -> u64 {
        *self
            .0
            .get(site)
            .unwrap_or_else(|| panic!("the leaker did not report {site}: {self:?}"))
    }
}

/// The fixture, driven through its stdin/stdout protocol. Its output is read on a thread, so a
/// hung leaker fails the test instead of hanging it; dropping it kills and reaps it.
pub struct Leaker {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub lines: mpsc::Receiver<String>,
}

impl Leaker {
    pub fn start(binary: &Path) -> Leaker {
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

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn line(&mut self, timeout: Duration) -> String {
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

    pub fn send(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("leaker stdin open");
        writeln!(stdin, "{command}").expect("write to the leaker");
        stdin.flush().expect("flush to the leaker");
    }

    /// Runs one phase (`heap` or `maps`) for `ms` milliseconds and returns what it leaked.
    pub fn run(&mut self, phase: &str, ms: u64) -> Leaked {
        self.send(&format!("{phase} {ms}"));
        Leaked::parse(&self.line(Duration::from_millis(ms) + Duration::from_secs(20)))
    }

    /// Tells it to exit and reaps it (a session sees the exit once the process is gone).
    pub fn quit(&mut self) {
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
pub struct HelperOutput {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl HelperOutput {
    /// The report of a successful `--json` run: stdout must be exactly one JSON object.
    pub fn report(&self) -> CallSiteReport {
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
pub struct Helper {
    pub child: Child,
    pub stdout: Option<JoinHandle<Vec<u8>>>,
    pub stderr: Option<JoinHandle<Vec<u8>>>,
}

pub fn read_all(mut from: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        bytes
    })
}

impl Helper {
    pub fn spawn(args: &[&str]) -> Helper {
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

    pub fn collect(&mut self, status: ExitStatus) -> HelperOutput {
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
    pub fn try_finish(&mut self) -> Option<HelperOutput> {
        let status = self.child.try_wait().expect("wait for the helper")?;
        Some(self.collect(status))
    }

    /// Waits for it to exit by itself; kills it and fails after `timeout`.
    pub fn finish(&mut self, timeout: Duration) -> HelperOutput {
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
    pub fn kill(&mut self) -> HelperOutput {
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
pub fn assert_still_running(helper: &mut Helper) {
    if let Some(out) = helper.try_finish() {
        panic!(
            "the session ended before the workload was done ({}; attaching took too long?): {}",
            out.status, out.stderr
        );
    }
}

/// A session on `pid` with `args` after the PID.
pub fn callsites(pid: u32, args: &[&str]) -> Helper {
    let pid = pid.to_string();
    Helper::spawn(&[&["callsites", pid.as_str()][..], args].concat())
}

// --- reading a report ---------------------------------------------------------------------

/// Whether `frame` is the function `name` (or a compiler clone of it, `name.constprop.0`).
pub fn function_is(frame: &Frame, name: &str) -> bool {
    frame.function.as_deref().is_some_and(|f| {
        f.strip_prefix(name)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    })
}

/// Index of the first frame of `site` in function `name`, innermost first.
pub fn position(site: &CallSite, name: &str) -> Option<usize> {
    site.frames.iter().position(|f| function_is(f, name))
}

/// The sites with a frame in function `name`.
pub fn sites_through<'a>(report: &'a CallSiteReport, name: &str) -> Vec<&'a CallSite> {
    report
        .sites
        .iter()
        .filter(|s| position(s, name).is_some())
        .collect()
}

pub fn within(actual: u64, low: f64, high: f64) -> bool {
    (low..=high).contains(&(actual as f64))
}

/// The report as text, for failure messages.
pub fn shown(report: &CallSiteReport) -> String {
    format!("{:?}\n{}", report.stats, report.text(12))
}

/// Checks the unwinding of one leak site: the blamed frame (first outside the C library) is
/// `blamed`, with its source line; each of `outer` appears further out, in that order, `main`
/// last.
pub fn assert_unwound(report: &CallSiteReport, site: &CallSite, blamed: &str, outer: &[&str]) {
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
