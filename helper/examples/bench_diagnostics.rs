//! Diagnostics benchmark: what each diagnostic adds to a collector tick, side by side with the
//! /proc scan it rides on, at the number of processes the machine runs now.
//!   scan       the /proc scan of a real tick (Collector timings, embedded mode)
//!   trends     growth + spikes for every row of that tick (real rows, real clock)
//!   pressure   PSI + vmstat read and rates (+ OOM bookkeeping)
//!   trends-worst  every process's RSS changes every tick, 15 minutes of 1 s ticks replayed
//!              with synthetic time (full windows, Theil–Sen on every slot close, no flat
//!              shortcut): median per tick
//!   smaps      one on-demand smaps_rollup read of a 256 MiB process (never periodic)
//! Usage: bench_diagnostics [TICKS]; prints medians in µs and ratios to the scan.
use std::time::Instant;

use memmon_helper::{Collector, smaps, trends::Trends};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let ticks: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(41);
    let mut collector = Collector::embedded("bench");
    let mut rows = Vec::new();
    let (mut scan, mut trends, mut pressure) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..ticks {
        let snap = collector.collect()?;
        if i == 0 {
            continue; // the first tick opens every directory
        }
        let t = collector.timings();
        scan.push(t.scan_us as f64);
        trends.push(t.trends_us as f64);
        pressure.push(t.pressure_us as f64);
        rows = snap.processes;
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let n = rows.len();
    let scan_med = median(&mut scan);
    let trends_med = median(&mut trends);
    let pressure_med = median(&mut pressure);

    // Worst case: every process changes every tick, 15 minutes replayed at 1 s.
    let mut worst = Trends::new();
    let mut per_tick = Vec::with_capacity(900);
    let t0 = 1_700_000_000_000u64;
    let mut replay = rows.clone();
    for second in 0..900u64 {
        for (i, r) in replay.iter_mut().enumerate() {
            let base = 10_000 + i as u64;
            let rss = base + (second * 37 + i as u64 * 11) % 5_000;
            r.rss_kb = Some(rss);
            r.peak_rss_kb = Some(rss.max(r.peak_rss_kb.unwrap_or(0)));
        }
        let started = Instant::now();
        worst.update(t0 + second * 1000, &mut replay);
        per_tick.push(started.elapsed().as_secs_f64() * 1e6);
    }
    let worst_all = median(&mut per_tick.clone());
    let worst_mean = per_tick[300..].iter().sum::<f64>() / 600.0;
    let worst_max = per_tick[300..].iter().copied().fold(0.0, f64::max);
    let worst_full = median(&mut per_tick[300..].to_vec());

    // On demand: smaps_rollup of a process holding 256 MiB of touched memory (this one).
    let block = vec![1u8; 256 << 20];
    std::hint::black_box(&block);
    let me = procfs::process::Process::myself()?.stat()?;
    let mut reads = Vec::new();
    for _ in 0..21 {
        let started = Instant::now();
        smaps::read_detail(std::process::id(), me.starttime, 0)?;
        reads.push(started.elapsed().as_secs_f64() * 1e6);
    }
    let smaps_med = median(&mut reads);

    println!("processes {n}, ticks {}", ticks - 1);
    println!(
        "scan            {scan_med:9.1} µs/tick  {:6.2} µs/process",
        scan_med / n as f64
    );
    println!(
        "trends          {trends_med:9.1} µs/tick  {:6.3} µs/process  {:5.1} % of scan",
        trends_med / n as f64,
        100.0 * trends_med / scan_med
    );
    println!(
        "pressure        {pressure_med:9.1} µs/tick  {:>22.1} % of scan",
        100.0 * pressure_med / scan_med
    );
    println!(
        "trends-worst    {worst_full:9.1} µs/tick  {:6.3} µs/process  {:5.1} % of scan  (all 900 ticks: {worst_all:.1})",
        worst_full / n as f64,
        100.0 * worst_full / scan_med
    );
    println!(
        "trends-worst    mean {worst_mean:.1} µs/tick ({:.1} % of scan), max {worst_max:.1} µs ({:.1} % of scan; slot closings are staggered by PID)",
        100.0 * worst_mean / scan_med,
        100.0 * worst_max / scan_med
    );
    println!("smaps (256 MiB) {smaps_med:9.1} µs/read  (on demand only)");
    Ok(())
}
