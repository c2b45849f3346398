//! `memmon-helper export` against a real Prometheus server (Debian's), promtool, and the
//! Python client's strict OpenMetrics parser. The tests run one at a time (each starts its own
//! exporter and Prometheus on free loopback ports).

#[path = "support/memcg.rs"]
mod memcg;
#[path = "support/pattern.rs"]
mod pattern;
#[path = "exporter/support.rs"]
mod support;

use std::{
    collections::HashSet,
    io::Write as _,
    process::{Command, Stdio},
    sync::{Arc, Barrier, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use pattern::Pattern;
use support::*;

/// A workload pattern that said it is ready.
fn workload(args: &[&str]) -> Pattern {
    let mut p = Pattern::spawn(args);
    p.expect("ready");
    p
}

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

#[test]
fn prometheus_ranks_the_leaker_first_matches_proc_and_counts_an_oom_kill() {
    let _serial = serial();
    let exporter = Exporter::start(&[]);
    let prom = Prometheus::start(exporter.port);
    prom.wait_for(
        "the exporter is scraped",
        "up{job=\"memmon\"} == 1",
        Duration::from_secs(30),
        |r| r.len() == 1,
    );

    // 8 MiB/s, touched: the fastest-growing process on the machine.
    let leaker = workload(&["leak", "--mib", "8", "--seconds", "300"]);
    let pid = leaker.pid().to_string();
    let started = Instant::now();
    let top = prom.wait_for(
        "the leaker is topk(1) by growth",
        "topk(1, memmon_process_resident_memory_growth_bytes_per_second)",
        Duration::from_secs(60),
        |r| r.len() == 1 && r[0]["metric"]["pid"] == pid.as_str(),
    );
    eprintln!(
        "the leaker ranked first by growth after {:?}",
        started.elapsed()
    );
    assert_eq!(top[0]["metric"]["comm"], "memmon-workload");
    let rate = sample_value(&top[0]);
    assert!(
        (4.0 * 1048576.0..=12.0 * 1048576.0).contains(&rate),
        "growth {rate} B/s, the leaker grows 8 MiB/s"
    );

    // Frozen, its RSS holds still: what Prometheus stored must match /proc within 5 %.
    let leaker_pid = leaker.pid() as i32;
    // SAFETY: kill with a PID this test spawned and has not reaped.
    assert_eq!(unsafe { libc::kill(leaker_pid, libc::SIGSTOP) }, 0);
    std::thread::sleep(Duration::from_millis(3500));
    let proc_bytes = rss_kb(leaker.pid()) as f64 * 1024.0;
    let stored = prom
        .value(&format!(
            "memmon_process_resident_memory_bytes{{pid=\"{pid}\"}}"
        ))
        .expect("the leaker's RSS series");
    let off = (stored - proc_bytes).abs() / proc_bytes;
    eprintln!(
        "RSS: Prometheus {stored} B, /proc {proc_bytes} B ({:.2} % apart)",
        off * 100.0
    );
    assert!(off <= 0.05, "Prometheus {stored} vs /proc {proc_bytes}");
    drop(leaker);

    // Apps reach Prometheus too, with their info series.
    let apps = prom.query("memmon_app_memory_bytes * on (app) group_left (name) memmon_app_info");
    assert!(
        !apps.is_empty(),
        "no app series joined with memmon_app_info"
    );

    // The shipped rules load and evaluate against real data without errors.
    let rules = prom.api("/api/v1/rules");
    let mut evaluated = 0;
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            assert_ne!(
                rule["health"], "err",
                "rule {} failed: {}",
                rule["name"], rule["lastError"]
            );
            evaluated += usize::from(rule["health"] == "ok");
        }
    }
    assert!(evaluated > 0, "no rule evaluated: {rules}");

    if !can_run_as_root("the OOM part (a memory cgroup)") {
        return;
    }
    let before = prom
        .value("memmon_oom_kills_total")
        .expect("the OOM kill counter");
    let cgroup = memcg::MemCgroup::create(64 << 20);
    let mut hog = workload(&["hog", "--mib", "512", "--step-ms", "10"]);
    let hog_pid = hog.pid();
    cgroup.add(hog_pid);
    // Let a collection see it alive, then let it grow into the limit.
    std::thread::sleep(Duration::from_millis(1500));
    hog.stdin.write_all(b"go\n").expect("go");
    let status = hog.child.wait().expect("wait");
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the hog should be OOM-killed: {status}"
    );
    prom.wait_for(
        "the OOM kill counter rises",
        "memmon_oom_kills_total",
        Duration::from_secs(20),
        |r| r.len() == 1 && sample_value(&r[0]) > before,
    );
    prom.wait_for(
        "the alert's expression sees it",
        "increase(memmon_oom_kills_total[1m]) > 0",
        Duration::from_secs(20),
        |r| r.len() == 1,
    );
    prom.wait_for(
        "the victim is named",
        &format!("memmon_oom_victim_info{{pid=\"{hog_pid}\",comm=\"memmon-workload\"}}"),
        Duration::from_secs(20),
        |r| r.len() == 1,
    );
}

#[test]
fn the_exposition_parses_strictly_and_every_family_is_described() {
    let _serial = serial();
    // As root (CI) with eBPF, so its families are checked too.
    let ebpf = is_root();
    let exporter = Exporter::start(if ebpf { &["--ebpf"] } else { &[] });
    // A process gets series once it lived through two collections.
    std::thread::sleep(Duration::from_millis(2500));

    let text = exporter.metrics(None);
    assert_eq!(
        text.header("content-type").as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let mut lint = Command::new(require(PROMTOOL))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    lint.stdin
        .take()
        .expect("stdin")
        .write_all(&text.body)
        .expect("write");
    let out = lint.wait_with_output().expect("promtool");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let om = exporter.metrics(Some(PROMETHEUS_ACCEPT));
    assert_eq!(
        om.header("content-type").as_deref(),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(om.text().ends_with("# EOF\n"));
    // As Prometheus asks: gzip (compressed once per collection).
    let gz = exporter.metrics_with(&format!(
        "Accept: {PROMETHEUS_ACCEPT}\r\nAccept-Encoding: gzip\r\n"
    ));
    assert_eq!(gz.header("content-encoding").as_deref(), Some("gzip"));
    let mut unzipped = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&gz.body[..]),
        &mut unzipped,
    )
    .expect("a valid gzip body");
    assert!(unzipped.starts_with("# HELP ") && unzipped.ends_with("# EOF\n"));
    assert!(
        gz.body.len() * 3 < om.body.len(),
        "{} gzipped vs {}",
        gz.body.len(),
        om.body.len()
    );
    // The Python client's OpenMetrics parser is strict (types, units, suffixes, escaping, EOF).
    let script = r#"
import sys, json
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse
for f in parse(sys.stdin.read()):
    print(json.dumps({"name": f.name, "type": f.type, "unit": f.unit, "help": f.documentation,
                      "samples": [[s.name, s.labels, s.value] for s in f.samples]}))
"#;
    let mut parser = Command::new(require(PYTHON))
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    parser
        .stdin
        .take()
        .expect("stdin")
        .write_all(&om.body)
        .expect("write");
    let out = parser.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "strict OpenMetrics parse failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let families: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let mut names = HashSet::new();
    for f in &families {
        let name = f["name"].as_str().expect("name");
        let help = f["help"].as_str().unwrap_or("");
        assert!(help.len() > 10, "{name} has no real HELP: {help:?}");
        let unit = f["unit"].as_str().unwrap_or("");
        assert!(
            unit.is_empty() || name.ends_with(&format!("_{unit}")),
            "{name} vs unit {unit}"
        );
        assert!(
            !f["samples"].as_array().expect("samples").is_empty(),
            "{name} is empty"
        );
        names.insert(name.to_owned());
    }
    let mut expected = vec![
        "memmon_memory_total_bytes",
        "memmon_memory_available_bytes",
        "memmon_swap_total_bytes",
        "memmon_memory_pressure_avg10_ratio",
        "memmon_memory_pressure_stalled_seconds",
        "memmon_swap_in_bytes",
        "memmon_page_faults",
        "memmon_oom_kills",
        "memmon_scan_duration_seconds",
        "memmon_process_resident_memory_bytes",
        "memmon_process_peak_resident_memory_bytes",
        "memmon_app",
        "memmon_app_memory_bytes",
        "process_cpu_seconds",
        "process_resident_memory_bytes",
    ];
    if ebpf {
        expected.extend([
            "memmon_process_mmap_calls",
            "memmon_process_net_mapped_bytes",
            "memmon_ebpf_dropped_events",
        ]);
    }
    for name in expected {
        assert!(names.contains(name), "{name} missing from {names:?}");
    }
    let family = |name: &str| families.iter().find(|f| f["name"] == name).expect(name);
    let rss = family("memmon_process_resident_memory_bytes")["samples"]
        .as_array()
        .expect("samples")
        .len();
    assert!((1..=40).contains(&rss), "{rss} processes: at most 2 x 20");
    let mode = &family("memmon_exporter_build")["samples"][0][1]["mode"];
    assert_eq!(mode, if ebpf { "full" } else { "proc-only" });
}

#[test]
fn series_stay_bounded_while_5000_short_lived_processes_come_and_go() {
    let _serial = serial();
    let exporter = Exporter::start(&[]);
    let prom = Prometheus::start(exporter.port);
    let all_process_series = "count({__name__=~\"memmon_process_.+\"})";
    prom.wait_for(
        "process series are scraped",
        all_process_series,
        Duration::from_secs(30),
        |r| r.len() == 1,
    );
    let before = prom.value(all_process_series).expect("count");
    let baseline = prom.value("memmon_processes").expect("memmon_processes");
    let started = Instant::now();
    // 5,000 processes of 4 MiB each (larger than most on a quiet machine), 100 alive at a
    // time, each living 0.3 s: every collection sees a hundred of them.
    let mut pids = HashSet::new();
    let mut peak_instant = 0.0f64;
    for batch in 0..50 {
        let children: Vec<_> = (0..100)
            .map(|_| {
                Command::new(WORKLOAD)
                    .args(["pattern", "steady", "--mib", "4", "--seconds", "0.3"])
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("spawn")
            })
            .collect();
        for mut child in children {
            pids.insert(child.id().to_string());
            child.wait().expect("wait");
        }
        if batch % 10 == 9 {
            peak_instant = peak_instant.max(prom.value(all_process_series).unwrap_or(0.0));
        }
    }
    assert_eq!(pids.len(), 5000);
    let window = started.elapsed().as_secs() + 5;
    std::thread::sleep(Duration::from_secs(3));
    let after = prom.value(all_process_series).expect("count");
    // Distinct process series Prometheus received during the churn.
    let distinct: f64 = [
        "memmon_process_resident_memory_bytes",
        "memmon_process_peak_resident_memory_bytes",
        "memmon_process_swap_bytes",
        "memmon_process_resident_memory_growth_bytes_per_second",
        "memmon_process_growth_sustained",
    ]
    .iter()
    .map(|name| {
        prom.value(&format!("count(count_over_time({name}[{window}s]))"))
            .unwrap_or(0.0)
    })
    .sum();
    let churned: Vec<String> = prom
        .query(&format!(
            "group by (pid) (count_over_time(memmon_process_resident_memory_bytes[{window}s]))"
        ))
        .iter()
        .filter_map(|s| s["metric"]["pid"].as_str().map(str::to_owned))
        .filter(|pid| pids.contains(pid))
        .collect();
    let processes_seen = prom
        .value(&format!("max_over_time(memmon_processes[{window}s])"))
        .expect("memmon_processes");
    eprintln!(
        "process series: {before} before, {peak_instant} at most during, {after} after, {distinct} \
         distinct over {window} s; the exporter saw up to {processes_seen} processes at once"
    );
    assert!(
        processes_seen >= baseline + 50.0,
        "the collections saw the churn: {processes_seen} processes at most, {baseline} before"
    );
    // The stated bound: 2 x --top processes x 9 families (5 without eBPF).
    assert!(before <= 200.0 && peak_instant <= 200.0 && after <= 200.0);
    assert!(
        churned.is_empty(),
        "short-lived processes got series: {churned:?}"
    );
    assert!(
        distinct <= before + 50.0,
        "{distinct} distinct series (was {before})"
    );
    let rss = rss_kb(exporter.pid());
    assert!(rss < 64 * 1024, "exporter RSS {rss} KiB after the churn");
}

#[test]
fn bad_requests_are_refused_and_200_concurrent_scrapes_are_served() {
    let _serial = serial();
    let exporter = Exporter::start(&[]);
    let port = exporter.port;
    assert_eq!(get(port, "/nope", "").status, 404);
    assert_eq!(get(port, "/metrics/x", "").status, 404);
    let landing = get(port, "/", "");
    assert_eq!(landing.status, 200);
    assert!(landing.text().contains("href=\"/metrics\""));
    let post = raw(
        port,
        b"POST /metrics HTTP/1.0\r\nContent-Length: 4\r\n\r\nx=1\n",
    )
    .expect("post");
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow").as_deref(), Some("GET, HEAD"));
    let with_body = raw(
        port,
        b"GET /metrics HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello",
    )
    .expect("body");
    assert_eq!(with_body.status, 413, "{}", with_body.text());
    let huge = format!(
        "GET /metrics HTTP/1.0\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    assert_eq!(raw(port, huge.as_bytes()).expect("huge header").status, 431);
    let head = raw(port, b"HEAD /metrics HTTP/1.0\r\n\r\n").expect("head");
    assert_eq!((head.status, head.body.len()), (200, 0));
    let garbage = raw(port, b"\x16\x03\x01 not http at all\r\n\r\n").expect("garbage");
    assert_eq!(garbage.status, 400);

    let body_len = exporter.metrics(None).body.len();
    let rss_before = rss_kb(exporter.pid());
    let mut rss_max = rss_before;
    for _round in 0..5 {
        let start = Arc::new(Barrier::new(200));
        let threads: Vec<_> = (0..200)
            .map(|_| {
                let start = Arc::clone(&start);
                std::thread::spawn(move || {
                    start.wait();
                    let res = get(port, "/metrics", "");
                    (res.status, res.body.len())
                })
            })
            .collect();
        for t in threads {
            let (status, len) = t.join().expect("scraper");
            assert_eq!(status, 200);
            assert!(
                len > body_len / 2,
                "{len} bytes (a full exposition is ~{body_len})"
            );
        }
        rss_max = rss_max.max(rss_kb(exporter.pid()));
    }
    eprintln!(
        "exporter RSS: {rss_before} KiB before 5 x 200 concurrent scrapes, {rss_max} KiB at most after"
    );
    // The stated bound (README): 64 MiB, and no more than 16 MiB above its idle size.
    assert!(
        rss_max < 64 * 1024 && rss_max < rss_before + 16 * 1024,
        "{rss_before} -> {rss_max} KiB"
    );
    assert_eq!(exporter.metrics(None).status, 200, "still serving");
}

#[test]
fn bad_settings_are_refused_and_a_unix_socket_or_the_environment_can_be_used() {
    let _serial = serial();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(HELPER)
            .arg("export")
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for (args, env, says) in [
        (
            &["--listen", "nonsense"][..],
            &[][..],
            "invalid listen address",
        ),
        (
            &["--listen", "unix:relative.sock"],
            &[],
            "invalid listen address",
        ),
        (&["--interval", "0"], &[], "out of range"),
        (&["--interval", "soon"], &[], "not a number"),
        (&["--top", "0"], &[], "--top"),
        (
            &[],
            &[("MEMMON_EXPORTER_LISTEN", "localhost")],
            "invalid listen address",
        ),
    ] {
        let (code, stderr) = run(args, env);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    // A taken port: one clear line, at once.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let (code, stderr) = run(&["--listen", &addr], &[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot listen on") && stderr.contains("in use"),
        "{stderr}"
    );

    // The environment (the systemd unit's /etc/default/memmon-exporter) sets the address.
    let port = free_port();
    let child = die_with_parent(
        Command::new(HELPER)
            .arg("export")
            .env("MEMMON_EXPORTER_LISTEN", format!("127.0.0.1:{port}"))
            .env("MEMMON_EXPORTER_INTERVAL", "1")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null()),
    )
    .spawn()
    .expect("spawn");
    let _child = Guard(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !raw(port, b"GET /metrics HTTP/1.0\r\n\r\n").is_ok_and(|r| r.status == 200) {
        assert!(
            Instant::now() < deadline,
            "not serving on the port from the environment"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A Unix socket, removed when the exporter stops.
    let dir = std::env::temp_dir().join(format!("memmon-export-sock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let sock = dir.join("metrics.sock");
    let mut child = die_with_parent(
        Command::new(HELPER)
            .args(["export", "--interval", "1", "--listen"])
            .arg(format!("unix:{}", sock.display()))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null()),
    )
    .spawn()
    .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        use std::io::Read as _;
        if let Ok(mut s) = std::os::unix::net::UnixStream::connect(&sock) {
            s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
                .expect("write");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            if out.starts_with("HTTP/1.0 200") {
                break out;
            }
        }
        assert!(
            Instant::now() < deadline,
            "not serving on {}",
            sock.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(body.contains("memmon_memory_total_bytes"));
    // SAFETY: kill with a PID this test spawned and has not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = child.wait().expect("wait");
    assert!(status.success(), "SIGTERM is a clean stop: {status}");
    assert!(!sock.exists(), "the socket file is removed");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_shipped_rules_pass_promtool_check_and_their_unit_tests() {
    let dir = repo_root().join("packaging/prometheus");
    for args in [
        ["check", "rules", "memmon.rules.yml"],
        ["test", "rules", "memmon.rules.test.yml"],
    ] {
        let out = Command::new(require(PROMTOOL))
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("promtool");
        assert!(
            out.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
