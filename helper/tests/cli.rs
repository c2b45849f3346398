//! The `memmon-helper snapshot` command line: output, exit codes, the /proc-only fallback and
//! clean detaching on SIGTERM. Tests that need root fail on CI (`CI=true`) instead of skipping.
use std::{
    os::unix::fs::PermissionsExt as _,
    path::PathBuf,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use memmon_common::snapshot::{Mode, Snapshot};

const HELPER: &str = env!("CARGO_BIN_EXE_memmon-helper");

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn require_root(what: &str) -> bool {
    if is_root() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} needs root, and CI=true: refusing to skip");
    }
    eprintln!("SKIPPED: {what} needs root");
    false
}

fn run(args: &[&str]) -> Output {
    Command::new(HELPER)
        .args(args)
        .output()
        .expect("run memmon-helper")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn bad_input_gets_a_clear_message_and_exit_code_2() {
    let cases: [(&[&str], &str); 8] = [
        (
            &["snapshot", "--sort", "bogus"],
            "unknown sort key \"bogus\"",
        ),
        (
            &["snapshot", "--apps", "--sort", "rss-bogus"],
            "unknown apps sort key \"rss-bogus\"",
        ),
        (&["snapshot", "--expand", "app:x"], "--apps"),
        (&["snapshot", "--top", "0"], "0 is not in 1..=100000"),
        (&["snapshot", "--top", "many"], "invalid value 'many'"),
        (&["snapshot", "--watch", "0"], "out of range"),
        (
            &["snapshot", "--watch", "soon"],
            "is not a number of seconds",
        ),
        (
            &["snapshot", "--frobnicate"],
            "unexpected argument '--frobnicate'",
        ),
    ];
    for (args, want) in cases {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains(want),
            "{args:?}: stderr {err:?} lacks {want:?}"
        );
        assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
    }
    assert_eq!(run(&[]).status.code(), Some(2), "a subcommand is required");
}

#[test]
fn table_has_the_seeds_columns_sorted_as_asked() {
    let out = run(&["snapshot", "--no-ebpf", "--top", "5", "--sort", "rss"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    let title = lines.next().expect("title line");
    assert!(title.contains("top 5 by rss"), "{title}");
    let pressure = lines.next().expect("pressure line");
    assert!(
        pressure.starts_with("pressure (avg10): some ") && pressure.contains("OOM kills"),
        "{pressure}"
    );
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(
        header,
        [
            "PID",
            "NAME",
            "RSS(MB)",
            "VIRT(MB)",
            "PEAK(MB)",
            "SWAP(MB)",
            "MMAP#",
            "MUNMAP#",
            "BRK#",
            "NET(MB)",
            "GROWTH(MB/min)",
            "NOTE"
        ]
    );
    let rss: Vec<f64> = lines
        .map(|l| {
            l.split_whitespace()
                .nth(2)
                .expect("rss column")
                .parse()
                .unwrap_or(0.0)
        })
        .collect();
    assert_eq!(rss.len(), 5);
    assert!(
        rss.windows(2).all(|w| w[0] >= w[1]),
        "not sorted by RSS: {rss:?}"
    );
    assert!(
        text(&out.stderr).contains("--no-ebpf"),
        "the reason for /proc-only is given"
    );
}

#[test]
fn json_is_one_document_per_tick() {
    let out = run(&[
        "snapshot",
        "--no-ebpf",
        "--json",
        "--top",
        "3",
        "--sort",
        "pid",
        "--ascending",
    ]);
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    let docs: Vec<Snapshot> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("valid JSON line"))
        .collect();
    assert_eq!(docs.len(), 1);
    let pids: Vec<u32> = docs[0].processes.iter().map(|r| r.pid).collect();
    assert_eq!(pids.len(), 3);
    assert!(pids.windows(2).all(|w| w[0] < w[1]), "{pids:?}");
    assert!(docs[0].process_count >= 3);
}

/// A copy of the helper that an unprivileged user can execute (the build tree may be private).
fn world_executable_helper() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("memmon-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    let copy = dir.join("memmon-helper");
    std::fs::copy(HELPER, &copy).expect("copy helper");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    copy
}

#[test]
fn as_a_normal_user_it_falls_back_to_proc_only_and_says_why() {
    let out = if is_root() {
        let helper = world_executable_helper();
        let out = Command::new("setpriv")
            .args([
                "--reuid",
                "65534",
                "--regid",
                "65534",
                "--clear-groups",
                "--",
            ])
            .arg(&helper)
            .args(["snapshot", "--json", "--top", "10"])
            .output()
            .expect("run setpriv (util-linux)");
        let _ = std::fs::remove_dir_all(helper.parent().expect("dir"));
        out
    } else {
        run(&["snapshot", "--json", "--top", "10"])
    };
    assert!(out.status.success(), "{out:?}");
    let snap: Snapshot = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(snap.mode, Mode::ProcOnly);
    let reason = snap.mode_reason.expect("a reason");
    assert!(
        reason.contains("root") && reason.contains("/proc data only"),
        "{reason}"
    );
    assert!(
        text(&out.stderr).contains(&reason),
        "the reason is printed on stderr"
    );
    assert_eq!(snap.processes.len(), 10);
    assert!(
        snap.processes.iter().any(|r| r.rss_kb.unwrap_or(0) > 0),
        "/proc data present"
    );
    assert!(snap.processes.iter().all(|r| r.alloc.is_none()));
}

fn memmon_programs_loaded() -> usize {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| p.name_as_str().is_some_and(|n| n.starts_with("memmon_")))
        .count()
}

#[test]
fn sigterm_and_sigint_detach_the_programs_and_exit_0() {
    if !require_root("attaching eBPF programs") {
        return;
    }
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let before = memmon_programs_loaded();
        let child = Command::new(HELPER)
            .args(["snapshot", "--json", "--watch", "0.2", "--top", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        // Wait until it is attached and printing.
        let deadline = Instant::now() + Duration::from_secs(10);
        while memmon_programs_loaded() < before + 4 {
            assert!(Instant::now() < deadline, "programs never appeared");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(500));
        // SAFETY: signalling our own child by PID.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let out = child.wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(0), "signal {signal}: {out:?}");
        let stdout = text(&out.stdout);
        let ticks: Vec<Snapshot> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON"))
            .collect();
        assert!(
            ticks.len() >= 2,
            "expected repeated ticks, got {}",
            ticks.len()
        );
        assert!(ticks.iter().all(|t| t.mode == Mode::Full));
        assert_eq!(
            memmon_programs_loaded(),
            before,
            "programs left attached after signal {signal}"
        );
    }
}

#[test]
fn csv_has_the_grid_columns_and_one_line_per_process() {
    let out = run(&["snapshot", "--no-ebpf", "--csv", "--top", "3"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    let mut reader = csv::Reader::from_reader(stdout.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, memmon_common::export::GRID_COLUMNS);
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("record")).collect();
    assert_eq!(rows.len(), 3);
    let rss: Vec<u64> = rows.iter().map(|r| r[3].parse().expect("rss_kb")).collect();
    assert!(rss.windows(2).all(|w| w[0] >= w[1]), "{rss:?}");
    let both = run(&["snapshot", "--csv", "--json"]);
    assert_eq!(both.status.code(), Some(2), "--csv and --json conflict");
}

#[test]
fn detail_reads_pss_and_uss_of_a_process_and_refuses_a_missing_one() {
    let me = std::process::id().to_string();
    let out = run(&["detail", &me, "--json"]);
    assert!(out.status.success(), "{out:?}");
    let d: memmon_common::diagnostics::MemoryDetail =
        serde_json::from_slice(&out.stdout).expect("detail JSON");
    assert_eq!(d.pid, std::process::id());
    assert!(
        d.pss_kb > 0 && d.uss_kb > 0 && d.pss_kb <= d.rss_kb,
        "{d:?}"
    );
    let table = text(&run(&["detail", &me]).stdout);
    assert!(table.contains("PSS") && table.contains("USS"), "{table}");
    let missing = run(&["detail", "4194304"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("no process 4194304"),
        "{missing:?}"
    );
}

/// A `memmon-workload named` child: it has renamed itself once this returns.
struct Named(std::process::Child);

impl Named {
    fn spawn(name: &[u8]) -> Named {
        use std::{ffi::OsStr, io::BufRead as _, os::unix::ffi::OsStrExt as _};
        let mut child = Command::new(env!("CARGO_BIN_EXE_memmon-workload"))
            .arg("named")
            .arg(OsStr::from_bytes(name))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn memmon-workload");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read");
        assert_eq!(line, "ready\n", "workload named {name:?}");
        Named(child)
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        drop(self.0.stdin.take()); // it exits when stdin closes
        let _ = self.0.wait();
    }
}

/// Output a terminal or a bidi-aware viewer shows as it is: UTF-8, no control characters but
/// line ends, no direction overrides.
fn assert_inert(what: &str, out: &[u8]) {
    let text = std::str::from_utf8(out).unwrap_or_else(|e| panic!("{what}: not UTF-8: {e}"));
    let bad = text.chars().find(|&c| {
        (c.is_control() && c != '\n')
            || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
    });
    assert_eq!(bad, None, "{what} holds a control character");
}

#[test]
fn untrusted_names_are_escaped_in_every_output_and_neutralised_in_csv() {
    // (comm as the process sets it, the name every output must show)
    let cases: [(&[u8], &str); 3] = [
        (b"\x1b[31mevil\x1b[0m", "\\x1b[31mevil\\x1b[0m"),
        (b"=1+1", "=1+1"),
        // a right-to-left override, a C1 CSI, a byte that is not UTF-8 and a backslash
        (
            b"\xe2\x80\xaeab\xc2\x9b\xff\\",
            "\\xe2\\x80\\xaeab\\xc2\\x9b\\xff\\\\",
        ),
    ];
    let children: Vec<Named> = cases.iter().map(|(raw, _)| Named::spawn(raw)).collect();
    let pids: Vec<u32> = children.iter().map(|c| c.0.id()).collect();
    let all = ["snapshot", "--no-ebpf", "--top", "100000", "--sort", "pid"];

    let json = run(&[&all[..], &["--json"]].concat());
    assert!(json.status.success(), "{json:?}");
    assert_inert("snapshot --json", &json.stdout);
    let snap: Snapshot = serde_json::from_slice(&json.stdout).expect("JSON");
    for (pid, (_, want)) in pids.iter().zip(&cases) {
        let row = snap
            .processes
            .iter()
            .find(|r| r.pid == *pid)
            .expect("workload row");
        assert_eq!(row.name, *want, "JSON name of {pid}");
    }

    let csv_out = run(&[&all[..], &["--csv"]].concat());
    assert!(csv_out.status.success(), "{csv_out:?}");
    assert_inert("snapshot --csv", &csv_out.stdout);
    let mut reader = csv::Reader::from_reader(&csv_out.stdout[..]);
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("record")).collect();
    for (pid, (_, want)) in pids.iter().zip(&cases) {
        let row = rows
            .iter()
            .find(|r| r[0] == pid.to_string())
            .expect("workload line");
        let want = if want.starts_with('=') {
            format!("'{want}")
        } else {
            (*want).to_owned()
        };
        assert_eq!(row[2], want, "CSV name of {pid}");
    }

    let table = run(&all);
    assert!(table.status.success(), "{table:?}");
    assert_inert("snapshot (table)", &table.stdout);
    let table = text(&table.stdout);
    let line = |pid: u32| {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(&pid.to_string()))
            .unwrap_or_else(|| panic!("no table line for {pid}"))
            .to_owned()
    };
    assert!(
        line(pids[0]).contains(" \\x1b[31mevil"),
        "{}",
        line(pids[0])
    );
    assert!(line(pids[1]).contains(" =1+1 "), "{}", line(pids[1]));
    assert!(
        line(pids[2]).contains(" \\xe2\\x80\\xaeab"),
        "{}",
        line(pids[2])
    );
}
