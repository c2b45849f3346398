//! Diagnostics against real processes and the real /proc of this kernel (no root needed): a
//! leaker is found by growth among steady and noisy processes, and a transient 500 MiB spike
//! between two samples is captured with its size.

use std::{
    io::Write as _,
    time::{Duration, Instant},
};

use memmon_common::{
    diagnostics::SpikeKind,
    snapshot::{SortKey, top_by},
};
use memmon_helper::{Collector, history::History};

const MIB: f64 = 1_048_576.0;

#[path = "support/pattern.rs"]
mod pattern;
use pattern::Pattern;

#[test]
fn a_real_leaker_is_first_by_growth_within_60_s_and_no_steady_process_is_flagged() {
    let mut steady: Vec<Pattern> = (0..200)
        .map(|_| Pattern::spawn(&["steady", "--mib", "1", "--seconds", "300"]))
        .collect();
    // ±50 MiB: toggling 100 MiB every 700 ms.
    let mut noisy: Vec<Pattern> = (0..5)
        .map(|_| Pattern::spawn(&["noisy", "--mib", "100", "--period-ms", "700"]))
        .collect();
    for p in steady.iter_mut().chain(noisy.iter_mut()) {
        p.expect("ready");
    }
    let mut leaker = Pattern::spawn(&["leak", "--mib", "2", "--seconds", "300"]);
    leaker.expect("ready");
    let calm: Vec<u32> = steady.iter().chain(&noisy).map(Pattern::pid).collect();

    let mut collector = Collector::embedded("test");
    let started = Instant::now();
    let mut first_at = None;
    let mut tick = 0u32;
    while started.elapsed() < Duration::from_secs(62) {
        let snap = collector.collect().expect("collect");
        tick += 1;
        for row in snap.processes.iter().filter(|r| calm.contains(&r.pid)) {
            assert!(
                !row.growth.is_some_and(|g| g.sustained),
                "{} (pid {}) flagged as sustained growth at {:?}: {:?}",
                row.name,
                row.pid,
                started.elapsed(),
                row.growth
            );
        }
        let top = top_by(&snap.processes, SortKey::Growth, true, 100);
        if top[0].pid == leaker.pid() {
            let rate = top[0].growth.and_then(|g| g.headline()).expect("rate") / MIB;
            assert!(
                (80.0..=160.0).contains(&rate),
                "the leaker grows 120 MiB/min, measured {rate:.1}"
            );
            first_at.get_or_insert(started.elapsed());
        }
        let next = started + Duration::from_secs(u64::from(tick));
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let at = first_at.expect("the leaker was never first by growth within 62 s");
    assert!(at <= Duration::from_secs(60), "first only at {at:?}");
    eprintln!("leaker first by growth after {at:?}");
}

#[test]
fn a_500_mib_spike_between_two_samples_is_captured_with_its_size() {
    let mut spiker = Pattern::spawn(&["spike", "--mib", "500", "--hold-ms", "300"]);
    spiker.expect("ready");
    let mut collector = Collector::embedded("test");
    let mut history = History::new();
    let before = collector.collect().expect("collect");
    history.record(&before);
    let t0 = Instant::now();
    writeln!(spiker.stdin, "go").expect("trigger");
    spiker.stdin.flush().expect("flush");
    spiker.expect("done");
    std::thread::sleep(Duration::from_secs(1).saturating_sub(t0.elapsed()));
    let after = collector.collect().expect("collect");
    history.record(&after);
    let row = after
        .processes
        .iter()
        .find(|r| r.pid == spiker.pid())
        .expect("spiker listed");
    let spike = row.spike.expect("a spike between the two samples");
    assert_eq!(spike.kind, SpikeKind::Rss);
    let size = spike.size_bytes as f64 / MIB;
    assert!(
        (450.0..=550.0).contains(&size),
        "spike of {size:.1} MiB, want 500 ± 10 %"
    );
    assert!(
        row.rss_kb.expect("rss") < 100 * 1024,
        "the memory was freed again: {row:?}"
    );
    let series = history.series(row.key()).expect("history of the spiker");
    assert_eq!(
        series.spikes,
        vec![spike],
        "the spike is kept in the history"
    );
}
