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
    collections::BTreeSet,
    os::unix::process::ExitStatusExt as _,
    process::Command,
    time::{Duration, Instant},
};

use memmon_common::callsites::{CallSite, CallSiteSource, SessionState, is_runtime_module};

#[path = "callsites/support.rs"]
mod support;

use support::*;

/// Session length for the measuring tests: the workload's phase (7 s at most) plus the wait
/// for the programs to attach, with room to spare (the session's clock starts once attached).
const SESSION_SECONDS: &str = "12";
/// The heap and mappings phases of the measuring tests.
const HEAP_PHASE_MS: u64 = 7000;
const MAPS_PHASE_MS: u64 = 6000;
/// Tolerance of every measured figure against what the workload reports.
const TOLERANCE: f64 = 0.10;

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
