//! Cost of high-resolution mode (`kmem:rss_stat` attached) on a page-fault-heavy loop: touching
//! fresh anonymous pages (one RSS counter change each), side by side in one run, rounds
//! alternating, for
//!   off       memmon's programs attached, high resolution off (the program is not attached)
//!   others    high resolution on for another process: every fault pays the filter
//!   watched   high resolution on for this process: every fault is recorded
//! Needs root. Usage: bench_rss_stat [ROUNDS] [SECONDS_PER_RUN]; prints ns per fault (medians)
//! and the added ns against `off`.
use std::time::{Duration, Instant};

use memmon_helper::tracker::Tracker;

const CHUNK: usize = 64 << 20;
const PAGE: usize = 4096;

/// Touches fresh pages for `secs`: map 64 MiB, write one byte per page, unmap, again.
/// Returns nanoseconds per touched page.
fn fault_loop(secs: f64) -> f64 {
    let deadline = Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut pages = 0u64;
    while started.elapsed() < deadline {
        // SAFETY: a fresh private anonymous mapping, written inside its bounds, then unmapped.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                CHUNK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED, "mmap");
            for off in (0..CHUNK).step_by(PAGE) {
                p.cast::<u8>().add(off).write_volatile(1);
            }
            libc::munmap(p, CHUNK);
        }
        pages += (CHUNK / PAGE) as u64;
    }
    started.elapsed().as_nanos() as f64 / pages as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(7);
    let secs: f64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1.0);
    let mut tracker = Tracker::start(4096).map_err(|e| anyhow::anyhow!("{e}"))?;
    let me = std::process::id();
    // Any other live process: PID 1 of this namespace.
    let other = 1u32;
    let (mut off, mut others, mut watched) = (Vec::new(), Vec::new(), Vec::new());
    let mut events = 0u64;
    for _ in 0..rounds {
        tracker.watch_rss(None).map_err(anyhow::Error::msg)?;
        off.push(fault_loop(secs));
        tracker
            .watch_rss(Some((other, [0; 4])))
            .map_err(anyhow::Error::msg)?;
        others.push(fault_loop(secs));
        tracker
            .watch_rss(Some((me, [0; 4])))
            .map_err(anyhow::Error::msg)?;
        watched.push(fault_loop(secs));
        events += tracker.take_rss_watch().map_or(0, |w| w.events);
    }
    tracker.watch_rss(None).map_err(anyhow::Error::msg)?;
    let (off, others, watched) = (median(&mut off), median(&mut others), median(&mut watched));
    println!("rounds {rounds} x {secs} s per variant; {events} events recorded while watched");
    println!("off      {off:7.1} ns/fault");
    println!(
        "others   {others:7.1} ns/fault  {:+6.1} ns ({:.2}x)",
        others - off,
        others / off
    );
    println!(
        "watched  {watched:7.1} ns/fault  {:+6.1} ns ({:.2}x)",
        watched - off,
        watched / off
    );
    Ok(())
}
