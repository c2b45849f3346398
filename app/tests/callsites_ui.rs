//! The call-site window (egui_kittest): opened from the plot panel, started with the chosen
//! source, filled from the helper's reports as a caller tree, copied and exported, and stopped
//! when it is closed.
use egui_kittest::kittest::Queryable as _;
use memmon::source::{Origin, Request, Update};
use memmon_common::{
    callsites::{CallSite, CallSiteReport, CallSiteSource, Frame, SessionState},
    process_key::ProcessKey,
};

mod common;

use common::*;

const LEAKER: ProcessKey = ProcessKey {
    pid: 7,
    start_time: 1007,
};

fn frame(function: &str, module: &str) -> Frame {
    Frame {
        addr: 0x1000,
        function: Some(function.into()),
        file: Some("leaker.c".into()),
        line: Some(42),
        module: Some(module.into()),
    }
}

fn report(state: SessionState) -> CallSiteReport {
    let site = |bytes: u64, frames: &[(&str, &str)]| CallSite {
        outstanding_bytes: bytes,
        outstanding_count: 1,
        allocated_bytes: bytes,
        alloc_count: 10,
        frames: frames.iter().map(|(f, m)| frame(f, m)).collect(),
        truncated: false,
    };
    CallSiteReport {
        pid: LEAKER.pid,
        comm: "leaker".into(),
        source: CallSiteSource::Heap,
        state,
        elapsed_ms: 4_000,
        duration_ms: 30_000,
        sample_every: 1,
        adaptive: true,
        probed: vec!["libc.so.6".into()],
        outstanding_bytes: 3 << 20,
        allocated_bytes: 5 << 20,
        sites: vec![
            site(
                2 << 20,
                &[
                    ("leak_large", "leaker"),
                    ("heap_phase", "leaker"),
                    ("main", "leaker"),
                ],
            ),
            site(
                1 << 20,
                &[
                    ("inner_wrapper", "leaker"),
                    ("outer_wrapper", "leaker"),
                    ("main", "leaker"),
                ],
            ),
        ],
        ..CallSiteReport::default()
    }
}

fn open_window(h: &mut egui_kittest::Harness<'static, memmon::app::MemmonApp>) {
    h.get_by_label("Xorg").click();
    h.run();
    h.get_by_label("Find where it allocates…").click();
    h.run();
}

#[test]
fn a_session_starts_from_the_plot_and_its_report_becomes_a_caller_tree() {
    let (mut h, f) = harness(sample_rows(), Origin::Helper);
    open_window(&mut h);
    h.get_by_label_contains("Where Xorg (PID 7) allocates");
    let _ = f.requests.try_iter().count();

    h.get_by_label("Heap calls (malloc/free, precise, sampled)")
        .click();
    h.run();
    h.get_by_label("Start").click();
    h.run();
    let asked: Vec<Request> = f.requests.try_iter().collect();
    assert!(
        asked.contains(&Request::StartCallSites {
            key: LEAKER,
            source: CallSiteSource::Heap,
            seconds: 30
        }),
        "{asked:?}"
    );

    f.updates
        .send(Update::CallSitesStarted(LEAKER, Ok(3)))
        .unwrap();
    f.updates
        .send(Update::CallSites(Ok(report(SessionState::Running))))
        .unwrap();
    h.run();
    assert!(h.state().model.callsites.is_running());
    // The allocating functions are the roots, largest first, with their share.
    h.get_by_label_contains("66.7 %  leak_large");
    h.get_by_label_contains("33.3 %  inner_wrapper");
    // The largest roots are open: their callers show.
    h.get_by_label_contains("outer_wrapper");
    let tree = h.state().callsites_window().tree();
    assert_eq!(tree[0].label, "leak_large");
    assert_eq!(tree[1].children[0].label, "outer_wrapper");
    // The running session is polled each tick.
    f.updates
        .send(Update::Snapshot {
            snapshot: snapshot(sample_rows()),
            origin: Origin::Helper,
        })
        .unwrap();
    h.run();
    assert!(
        f.requests
            .try_iter()
            .any(|r| r == Request::PollCallSites(3))
    );

    // Stop, then the final report.
    h.get_by_label("Stop").click();
    h.run();
    assert!(
        f.requests
            .try_iter()
            .any(|r| r == Request::StopCallSites(3))
    );
    f.updates
        .send(Update::CallSites(Ok(report(SessionState::Finished(
            "stopped by its client".into(),
        )))))
        .unwrap();
    h.run();
    assert!(!h.state().model.callsites.is_running());
    h.get_by_label_contains("finished: stopped by its client");
}

#[test]
fn the_report_is_copied_as_text_and_exported_as_folded_stacks() {
    let dir = std::env::temp_dir().join(format!("memmon-callsites-ui-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut h, f) = harness(sample_rows(), Origin::Helper);
    open_window(&mut h);
    h.get_by_label("Start").click();
    h.run();
    f.updates
        .send(Update::CallSitesStarted(LEAKER, Ok(1)))
        .unwrap();
    f.updates
        .send(Update::CallSites(Ok(report(SessionState::Running))))
        .unwrap();
    h.run();

    h.get_by_label("Copy as text").click();
    // The frame that handles the click puts the text on the clipboard (its output).
    h.step();
    let copied = h
        .output()
        .platform_output
        .commands
        .iter()
        .find_map(|c| match c {
            egui::OutputCommand::CopyText(t) => Some(t.clone()),
            _ => None,
        });
    let copied = copied.expect("the text went to the clipboard");
    assert!(copied.contains("#1 2.0 MiB outstanding"), "{copied}");
    assert!(
        copied.contains("leak_large at leaker.c:42 [leaker]"),
        "{copied}"
    );

    let path = dir.join("sites.folded");
    h.state_mut()
        .commands
        .push(memmon::command::Command::Export(
            memmon::command::Export::CallSitesFolded,
            Some(path.clone()),
        ));
    h.run();
    let folded = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        folded,
        "main;heap_phase;leak_large 2097152\nmain;outer_wrapper;inner_wrapper 1048576\n"
    );
}

#[test]
fn closing_the_window_stops_its_session_and_embedded_mode_cannot_start_one() {
    let (mut h, f) = harness(sample_rows(), Origin::Helper);
    open_window(&mut h);
    h.get_by_label("Start").click();
    h.run();
    f.updates
        .send(Update::CallSitesStarted(LEAKER, Ok(8)))
        .unwrap();
    h.run();
    let _ = f.requests.try_iter().count();
    h.state_mut()
        .commands
        .push(memmon::command::Command::CloseCallSites);
    h.run();
    assert!(
        f.requests
            .try_iter()
            .any(|r| r == Request::StopCallSites(8))
    );
    assert!(h.state().model.callsites.target.is_none());

    // Without the helper (embedded mode) the button is there but disabled, with the reason.
    let embedded = Origin::Embedded {
        why: "no helper".into(),
        can_retry: true,
    };
    let (mut h, f) = harness(sample_rows(), embedded);
    h.get_by_label("Xorg").click();
    h.run();
    let _ = f.requests.try_iter().count();
    h.get_by_label("Find where it allocates…").click();
    h.run();
    assert!(
        h.state().model.callsites.target.is_none(),
        "the button is disabled without the helper"
    );
}
