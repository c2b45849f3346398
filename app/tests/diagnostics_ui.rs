//! The diagnostics in the window (egui_kittest, headless): the Growth column sorts across all
//! processes and marks sustained growth, spikes are summarised under the plot, OOM kills are
//! listed and lead to the victim's history, PSS is measured on demand, and the grid and the
//! series export as CSV/JSON that parse back to the same numbers.

use egui_kittest::kittest::Queryable as _;
use memmon::{
    command::{Command, Export},
    source::{Origin, Request, Update},
};
use memmon_common::process_key::ProcessKey;
use memmon_common::{
    diagnostics::{Growth, MemoryDetail, OomKill, OomSource, Spike, SpikeKind},
    series::{HistorySample, HistorySeries},
    snapshot::SortKey,
};

mod common;

use common::*;

/// Asks for an export through the window's own command step.
fn export(
    h: &mut egui_kittest::Harness<'static, memmon::app::MemmonApp>,
    what: Export,
    path: Option<std::path::PathBuf>,
) {
    h.state_mut().commands.push(Command::Export(what, path));
    h.run();
}

fn leaky_rows() -> Vec<memmon_common::snapshot::ProcessRow> {
    let mut rows = sample_rows();
    rows[2].growth = Some(Growth {
        rss_1m: Some(2.0 * 1048576.0),
        rss_5m: Some(2.0 * 1048576.0),
        sustained: true,
        ..Default::default()
    });
    rows
}

#[test]
fn the_growth_column_sorts_by_growth_and_shows_the_rate() {
    let (mut h, f) = harness(leaky_rows(), Origin::Helper);
    let _ = views(&f.requests);
    h.get_by_label_contains("Growth").click();
    h.run();
    assert_eq!(views(&f.requests), vec![(SortKey::Growth, true)]);
    h.get_by_label("+2.0 MiB/min");
}

fn series_with_spike() -> HistorySeries {
    HistorySeries {
        pid: 99,
        start_time: 1099,
        name: "bash".into(),
        last_seen_unix_ms: 1_795_000_002_000,
        exited_unix_ms: None,
        samples: vec![HistorySample {
            unix_ms: 1_795_000_000_000,
            rss_kb: 4_000,
            peak_rss_kb: 516_000,
            net_mapped: None,
        }],
        spikes: vec![Spike {
            unix_ms: 1_795_000_001_000,
            after_unix_ms: 1_795_000_000_000,
            kind: SpikeKind::Rss,
            size_bytes: 500 << 20,
            peak_bytes: 504 << 20,
        }],
    }
}

#[test]
fn the_plot_summarises_spikes_growth_and_measures_pss_on_demand() {
    let (mut h, f) = harness(leaky_rows(), Origin::Helper);
    h.get_by_label("bash").click();
    h.run();
    f.updates
        .send(Update::History(series_with_spike()))
        .expect("send");
    h.run();
    h.get_by_label_contains("1 spike between samples — largest +500.0 MiB at");
    h.get_by_label_contains("Growth: +2.0 MiB/min (1 min)");
    h.get_by_label("sustained growth");
    h.get_by_label_contains("System");

    let _ = f.requests.try_iter().count();
    h.get_by_label("Measure PSS").click();
    h.run();
    assert!(
        f.requests
            .try_iter()
            .any(|r| r == Request::Detail(ProcessKey::new(99, 1099))),
        "PSS is asked for the selected process"
    );
    f.updates
        .send(Update::Detail(Ok(MemoryDetail {
            pid: 99,
            start_time: 1099,
            measured_unix_ms: 1_795_000_003_000,
            rss_kb: 4_000,
            pss_kb: 2_048,
            uss_kb: 1_024,
            ..Default::default()
        })))
        .expect("send");
    h.run();
    h.get_by_label_contains("PSS 2.0 MiB");
    h.get_by_label_contains("USS 1.0 MiB");
    f.updates
        .send(Update::Detail(Err(
            "no process 99 with start time 1099".into()
        )))
        .expect("send");
    h.run();
    assert_eq!(
        h.state().model.detail_error.as_deref(),
        Some("no process 99 with start time 1099")
    );
}

#[test]
fn oom_kills_are_listed_and_open_the_victims_history() {
    let (mut h, f) = harness(sample_rows(), Origin::Helper);
    let mut snap = snapshot(sample_rows());
    snap.oom_kills.push(OomKill {
        unix_ms: 1_795_000_000_500,
        pid: 4321,
        start_time: Some(777),
        name: "hog".into(),
        last_rss_kb: Some(64 * 1024),
        rss_at_kill_kb: Some(65 * 1024),
        source: OomSource::Tracepoint,
    });
    f.updates
        .send(Update::Snapshot {
            snapshot: snap,
            origin: Origin::Helper,
        })
        .expect("send");
    h.run();
    h.get_by_label("OOM kills: 1").click();
    h.run();
    let _ = f.requests.try_iter().count();
    h.get_by_label_contains("hog (PID 4321), last RSS 64.0 MiB")
        .click();
    h.run();
    assert_eq!(
        h.state().model.selected_process(),
        Some(ProcessKey::new(4321, 777))
    );
    assert!(
        f.requests
            .try_iter()
            .any(|r| r == Request::History(ProcessKey::new(4321, 777))),
        "the victim's history is asked for"
    );
}

#[test]
fn grid_and_series_exports_parse_back_to_the_same_numbers() {
    let (mut h, f) = harness(leaky_rows(), Origin::Helper);
    let dir = std::env::temp_dir().join(format!("memmon-ui-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");

    let csv_path = dir.join("grid.csv");
    export(&mut h, Export::GridCsv, Some(csv_path.clone()));
    let mut reader = csv::Reader::from_path(&csv_path).expect("grid CSV written");
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("record")).collect();
    assert_eq!(records.len(), 3);
    let bash = records.iter().find(|r| &r[2] == "bash").expect("bash row");
    assert_eq!(&bash[0], "99");
    assert_eq!(bash[3].parse::<u64>(), Ok(4_000));
    assert_eq!(bash[18].parse::<f64>(), Ok(2.0 * 1048576.0));
    assert_eq!(&bash[21], "true");

    let json_path = dir.join("grid.json");
    export(&mut h, Export::GridJson, Some(json_path.clone()));
    let back: memmon_common::snapshot::Snapshot =
        serde_json::from_slice(&std::fs::read(&json_path).expect("grid JSON written"))
            .expect("parses");
    assert_eq!(
        back.processes,
        h.state().model.snapshot.as_ref().expect("snap").processes
    );

    // (Row clicks are tested elsewhere; the status message just moved the rows.)
    h.state_mut()
        .commands
        .push(Command::Select(ProcessKey::new(99, 1099)));
    h.run();
    f.updates
        .send(Update::History(series_with_spike()))
        .expect("send");
    h.run();
    let series_path = dir.join("series.csv");
    export(&mut h, Export::SeriesCsv, Some(series_path.clone()));
    let mut reader = csv::Reader::from_path(&series_path).expect("series CSV written");
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("record")).collect();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0][3].parse::<u64>(), Ok(1_795_000_000_000));
    assert_eq!(records[0][6].parse::<u64>(), Ok(516_000));
    assert!(
        h.state()
            .model
            .status_message
            .as_deref()
            .is_some_and(|m| m.starts_with("Saved ")),
        "{:?}",
        h.state().model.status_message
    );

    // An unwritable place is a message, not a crash.
    export(
        &mut h,
        Export::GridCsv,
        Some(dir.join("no-such-dir").join("grid.csv")),
    );
    assert!(
        h.state()
            .model
            .status_message
            .as_deref()
            .is_some_and(|m| m.starts_with("Could not save")),
        "{:?}",
        h.state().model.status_message
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_high_resolution_switch_shows_its_cost_and_asks_the_helper() {
    let (mut h, f) = harness(sample_rows(), Origin::Helper);
    h.get_by_label("bash").click();
    h.run();
    h.get_by_label("+457 ns/fault");
    let _ = f.requests.try_iter().count();
    h.get_by_label("High resolution").click();
    h.run();
    assert!(
        f.requests.try_iter().any(|r| r
            == Request::HighRes {
                key: ProcessKey::new(99, 1099),
                enable: true
            }),
        "high resolution asked for the selected process"
    );
    assert_eq!(h.state().model.high_res, Some(ProcessKey::new(99, 1099)));
    h.get_by_label("High resolution").click();
    h.run();
    assert!(
        f.requests
            .try_iter()
            .any(|r| matches!(r, Request::HighRes { enable: false, .. }))
    );
    assert_eq!(h.state().model.high_res, None);
    let cost = memmon::panels::plot::high_res_cost(Some(100_000.0));
    assert!(
        cost.contains("+457 ns per page fault") && cost.contains("≈ 4.57 % of a core"),
        "{cost}"
    );
}

#[test]
fn high_resolution_is_off_limits_in_embedded_mode() {
    let (mut h, f) = harness(
        sample_rows(),
        Origin::Embedded {
            why: "no helper".into(),
            can_retry: true,
        },
    );
    h.get_by_label("bash").click();
    h.run();
    let _ = f.requests.try_iter().count();
    h.get_by_label("High resolution").click();
    h.run();
    assert!(
        !f.requests
            .try_iter()
            .any(|r| matches!(r, Request::HighRes { .. })),
        "the switch is disabled without the helper"
    );
    assert_eq!(h.state().model.high_res, None);
}
