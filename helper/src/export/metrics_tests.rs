use memmon_common::{
    apps::{AppKind, CgroupMemory, MemoryEvents},
    diagnostics::{Growth, OomSource, SystemPressure},
    snapshot::{AllocStats, SystemMemory},
};

use super::*;

fn row(pid: u32, rss_kb: u64, growth_per_min: Option<f64>) -> ProcessRow {
    ProcessRow {
        pid,
        start_time: u64::from(pid) * 10,
        name: format!("p{pid}"),
        rss_kb: Some(rss_kb),
        peak_rss_kb: Some(rss_kb + 1),
        swap_kb: Some(0),
        growth: growth_per_min.map(|g| Growth {
            rss_1m: Some(g),
            rss_5m: None,
            rss_15m: None,
            net_5m: None,
            sustained: g > 0.0,
            rss_noise: false,
        }),
        ..ProcessRow::default()
    }
}

fn snapshot(mode: Mode, processes: Vec<ProcessRow>, oom_kills: Vec<OomKill>) -> Snapshot {
    Snapshot {
        taken_at_unix_ms: 1_700_000_000_000,
        scan_duration_us: 1500,
        mode,
        mode_reason: None,
        system: SystemMemory {
            total_kb: 1000,
            available_kb: 600,
            swap_total_kb: 10,
            swap_free_kb: 5,
        },
        process_count: processes.len() as u32,
        bpf_drops: 3,
        pressure: Some(SystemPressure {
            some_avg10: Some(12.5),
            full_avg10: Some(2.0),
            some_total_us: Some(3_000_000),
            full_total_us: Some(1_000_000),
            oom_kill_total: Some(7),
            ..SystemPressure::default()
        }),
        oom_kills,
        processes,
    }
}

fn all_seen(s: &Snapshot) -> Seen {
    seen(s)
}

/// One tick's metrics with default exporter statistics.
fn tick(
    snap: &Snapshot,
    previous: &Seen,
    apps: &[AppRow],
    vm: Option<VmCounters>,
    selection: Selection,
) -> Metrics {
    Metrics::from_tick(
        snap,
        previous,
        apps,
        vm,
        selection,
        ExporterStats::default(),
    )
}

const SEL: Selection = Selection {
    top: 3,
    max_apps: 2,
};

fn text(m: Metrics) -> (String, String) {
    let e = m.encode().expect("encode");
    (
        String::from_utf8(e.text.plain.to_vec()).expect("utf8"),
        String::from_utf8(e.openmetrics.plain.to_vec()).expect("utf8"),
    )
}

fn sample_lines<'t>(text: &'t str, name: &str) -> Vec<&'t str> {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .collect()
}

#[test]
fn top_by_rss_plus_top_by_growth_among_processes_seen_twice() {
    let mut rows: Vec<ProcessRow> = (1..=50)
        .map(|pid| row(pid, u64::from(pid) * 100, None))
        .collect();
    // Small but growing fast: chosen for growth, not for size.
    rows[0].growth = row(1, 0, Some(600.0)).growth;
    rows[1].growth = row(2, 0, Some(60.0)).growth;
    // Shrinking or flat processes are not "growing".
    rows[2].growth = row(3, 0, Some(-60.0)).growth;
    rows[3].growth = row(4, 0, Some(0.0)).growth;
    let snap = snapshot(Mode::ProcOnly, rows, vec![]);
    // PID 50 (the largest) is new this tick: not eligible.
    let mut previous = all_seen(&snap);
    previous.remove(&(50, 500));
    let m = tick(&snap, &previous, &[], None, SEL);
    let pids: Vec<&str> = m.processes.iter().map(|p| p.labels[0].1.as_str()).collect();
    assert_eq!(pids, ["49", "48", "47", "1", "2"]);
    let growth: Vec<Option<f64>> = m.processes.iter().map(|p| p.growth).collect();
    assert_eq!(
        growth,
        [None, None, None, Some(10.0), Some(1.0)],
        "bytes per second"
    );
    // Nothing seen before: nothing exposed per process (the machine's figures still are).
    let m = tick(&snap, &Seen::new(), &[], None, SEL);
    assert!(m.processes.is_empty());
    let (text, _) = text(m);
    assert!(sample_lines(&text, "memmon_process_resident_memory_bytes").is_empty());
    assert!(
        !text.contains("# HELP memmon_process_resident_memory_bytes"),
        "no empty family"
    );
    assert_eq!(
        sample_lines(&text, "memmon_memory_total_bytes"),
        ["memmon_memory_total_bytes 1024000.0"]
    );
}

#[test]
fn a_hostile_process_name_is_one_escaped_label_value() {
    let mut evil = row(7, 5000, None);
    evil.name = "a\"b\\c\nd} 1\nx".to_owned();
    let snap = snapshot(Mode::ProcOnly, vec![evil], vec![]);
    let m = tick(&snap, &all_seen(&snap), &[], None, SEL);
    let (text, om) = text(m);
    for t in [&text, &om] {
        let lines = sample_lines(t, "memmon_process_resident_memory_bytes");
        assert_eq!(
            lines,
            [r#"memmon_process_resident_memory_bytes{pid="7",comm="a\"b\\c\nd} 1\nx"} 5120000.0"#]
        );
    }
}

#[test]
fn both_formats_describe_every_family_and_follow_the_naming_rules() {
    let mut rows: Vec<ProcessRow> = (1..=5).map(|pid| row(pid, 1000, Some(120.0))).collect();
    rows[0].alloc = Some(AllocStats {
        mmap_count: 4,
        munmap_count: 2,
        brk_count: 1,
        net_mapped: 8192,
        ..AllocStats::default()
    });
    let kill = |pid, name: &str| OomKill {
        unix_ms: 1_700_000_000_000 + u64::from(pid),
        pid,
        start_time: None,
        name: name.to_owned(),
        last_rss_kb: Some(100),
        rss_at_kill_kb: None,
        source: OomSource::Counter,
    };
    let snap = snapshot(Mode::Full, rows, vec![kill(9, "hog")]);
    let vm = VmCounters {
        pswpin: 1,
        pswpout: 2,
        pgfault: 3,
        pgmajfault: 4,
        oom_kill: Some(7),
    };
    let m = tick(&snap, &all_seen(&snap), &[], Some(vm), SEL);
    let (text, om) = text(m);
    assert!(om.ends_with("# EOF\n"));
    assert!(!text.contains("# EOF"));
    for t in [&text, &om] {
        let mut helped = HashSet::new();
        for line in t.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect("help text");
                assert!(help.len() > 10, "{name}: {help}");
                assert!(helped.insert(name.to_owned()), "{name} described twice");
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("type");
                assert!(helped.contains(name), "{name} has no HELP");
                assert!(
                    name.starts_with("memmon_") || name.starts_with("process_"),
                    "{name}"
                );
                match kind {
                    "counter" => assert!(
                        t == &om || name.ends_with("_total"),
                        "counter {name} must end in _total"
                    ),
                    "gauge" => assert!(!name.ends_with("_total"), "{name}"),
                    _ => {}
                }
            }
        }
    }
    assert_eq!(
        sample_lines(&text, "memmon_process_mmap_calls_total"),
        [r#"memmon_process_mmap_calls_total{pid="1",comm="p1"} 4"#]
    );
    assert_eq!(
        sample_lines(&text, "memmon_ebpf_dropped_events_total"),
        ["memmon_ebpf_dropped_events_total 3"]
    );
    assert_eq!(
        sample_lines(&text, "memmon_memory_pressure_avg10_ratio"),
        [
            r#"memmon_memory_pressure_avg10_ratio{kind="some"} 0.125"#,
            r#"memmon_memory_pressure_avg10_ratio{kind="full"} 0.02"#
        ]
    );
    assert_eq!(
        sample_lines(&text, "memmon_swap_out_bytes_total"),
        ["memmon_swap_out_bytes_total 8192.0"]
    );
    assert_eq!(
        sample_lines(&text, "memmon_oom_kills_total"),
        ["memmon_oom_kills_total 7"]
    );
    assert_eq!(
        sample_lines(&om, "memmon_oom_victim_info"),
        [r#"memmon_oom_victim_info{pid="9",comm="hog",source="counter"} 1"#]
    );
    assert!(om.contains(
        "# UNIT memmon_process_resident_memory_growth_bytes_per_second bytes_per_second"
    ));
    // /proc only: no eBPF families at all.
    let mut rows = snap.processes;
    for r in &mut rows {
        r.alloc = None;
    }
    let snap = snapshot(Mode::ProcOnly, rows, vec![]);
    let (text, _) = self::text(tick(&snap, &all_seen(&snap), &[], None, SEL));
    for family in [
        "memmon_process_mmap_calls_total",
        "memmon_ebpf_dropped_events_total",
        "memmon_process_net_mapped_bytes",
    ] {
        assert!(!text.contains(family), "{family} without eBPF");
    }
    assert!(text.contains("memmon_ebpf_enabled 0"));
}

#[test]
fn victims_are_the_last_ten_once_each() {
    let kill = |i: u32, pid: u32| OomKill {
        unix_ms: u64::from(i),
        pid,
        start_time: None,
        name: "hog".to_owned(),
        last_rss_kb: None,
        rss_at_kill_kb: None,
        source: OomSource::Tracepoint,
    };
    // 20 kills; the last two name the same PID (reused).
    let mut kills: Vec<OomKill> = (0..19).map(|i| kill(i, 100 + i)).collect();
    kills.push(kill(19, 118));
    let snap = snapshot(Mode::ProcOnly, vec![], kills);
    let m = tick(&snap, &Seen::new(), &[], None, SEL);
    let pids: Vec<u32> = m.victims.iter().map(|v| v.pid).collect();
    assert_eq!(pids, [118, 117, 116, 115, 114, 113, 112, 111, 110, 109]);
    assert_eq!(m.victims[0].unix_ms, 19, "the latest kill of a reused PID");
}

#[test]
fn apps_are_the_largest_with_their_own_cgroup_figures() {
    let app = |id: &str, rss_kb: u64, memory: Option<CgroupMemory>, covers: Option<&str>| AppRow {
        id: id.to_owned(),
        kind: Some(AppKind::Service),
        name: id.to_owned(),
        icon: None,
        unit: format!("{id}.service"),
        cgroup_count: 1,
        process_count: 2,
        rss_sum_kb: rss_kb,
        swap_sum_kb: 0,
        alloc: None,
        memory,
        memory_covers: covers.map(str::to_owned),
        growth: None,
        spike: None,
        processes: vec![],
    };
    let cg = CgroupMemory {
        current_kb: 5000,
        file_kb: Some(1000),
        limit_kb: Some(8000),
        events: MemoryEvents {
            oom_kill: 2,
            oom: 3,
            ..MemoryEvents::default()
        },
        ..CgroupMemory::default()
    };
    let apps = [
        app("service:small", 10, None, None),
        app("service:db", 100, Some(cg), None),
        app("session:1", 3000, Some(cg), Some("/user.slice")),
    ];
    let snap = snapshot(Mode::ProcOnly, vec![], vec![]);
    let m = tick(&snap, &Seen::new(), &apps, None, SEL);
    let (text, _) = text(m);
    assert_eq!(
        sample_lines(&text, "memmon_app_memory_bytes"),
        [
            r#"memmon_app_memory_bytes{app="service:db"} 5120000.0"#,
            r#"memmon_app_memory_bytes{app="session:1"} 3072000.0"#
        ],
        "the two largest (max_apps 2); a shared cgroup counts its processes' RSS"
    );
    // Limits and events only from the app's own cgroup.
    assert_eq!(
        sample_lines(&text, "memmon_app_memory_limit_bytes"),
        [r#"memmon_app_memory_limit_bytes{app="service:db"} 8192000.0"#]
    );
    assert_eq!(
        sample_lines(&text, "memmon_app_oom_kills_total"),
        [r#"memmon_app_oom_kills_total{app="service:db"} 2"#]
    );
    assert_eq!(
        sample_lines(&text, "memmon_app_page_cache_bytes"),
        [r#"memmon_app_page_cache_bytes{app="service:db"} 1024000.0"#]
    );
    let none = Selection {
        top: 3,
        max_apps: 0,
    };
    let (text, _) = self::text(tick(&snap, &Seen::new(), &apps, None, none));
    assert!(!text.contains("memmon_app_"));
}

#[test]
fn each_encoding_is_also_gzipped_once() {
    use std::io::Read as _;
    let rows: Vec<ProcessRow> = (1..=30).map(|pid| row(pid, 1000, None)).collect();
    let snap = snapshot(Mode::ProcOnly, rows, vec![]);
    let e = tick(&snap, &all_seen(&snap), &[], None, SEL)
        .encode()
        .expect("encode");
    for body in [&e.text, &e.openmetrics] {
        let gz = body.gzip.as_ref().expect("gzipped");
        assert!(
            gz.len() < body.plain.len() / 2,
            "{} -> {}",
            body.plain.len(),
            gz.len()
        );
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut plain)
            .expect("valid gzip");
        assert_eq!(plain, body.plain);
    }
}
