//! /proc scan benchmark: cost per process of one full scan, side by side in one run, for
//!   floor    open+read+close of every /proc/<pid>/status (no parsing), the minimum any scan pays
//!   memmon   memmon's ProcScanner (steady state: directories already open)
//!   procfs   the procfs crate used naively: all_processes() + status() for each
//!   ps       `ps -eo pid,rss,vsz,comm` (a whole process run, output discarded)
//!   collect  memmon's whole tick (scan + eBPF record lookups + merge + meminfo); Full mode when
//!            run as root
//! Usage: bench_scan [ROUNDS]; rounds alternate the four so noise hits all of them.
use std::{
    fs::{self, File},
    io::Read as _,
    process::{Command, Stdio},
    time::Instant,
};

use memmon_helper::{Collector, proc_scan::ProcScanner};

fn pids() -> Vec<u32> {
    fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

fn floor(buf: &mut Vec<u8>) -> usize {
    let mut n = 0;
    for pid in pids() {
        let Ok(mut f) = File::open(format!("/proc/{pid}/status")) else {
            continue;
        };
        buf.clear();
        if f.read_to_end(buf).is_ok() {
            n += 1;
        }
    }
    n
}

fn procfs_naive() -> usize {
    let Ok(all) = procfs::process::all_processes() else {
        return 0;
    };
    all.filter_map(Result::ok)
        .filter(|p| p.status().is_ok())
        .count()
}

fn ps() -> usize {
    let ok = Command::new("ps")
        .args(["-eo", "pid,rss,vsz,comm"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok { pids().len() } else { 0 }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(21);
    let mut scanner = ProcScanner::new();
    let mut samples = Vec::new();
    let mut buf = Vec::with_capacity(4096);
    // Warm up: open every directory once, fault in caches.
    let _ = scanner.scan(&mut samples);
    floor(&mut buf);
    let mut collector = Collector::with_ebpf();
    let _ = collector.collect();
    let mut t: [Vec<f64>; 5] = Default::default();
    let mut count = 0;
    for _ in 0..rounds {
        for (i, slot) in t.iter_mut().enumerate() {
            let start = Instant::now();
            let n = match i {
                0 => floor(&mut buf),
                1 => {
                    let _ = scanner.scan(&mut samples);
                    samples.len()
                }
                2 => procfs_naive(),
                3 => ps(),
                _ => collector.collect().map_or(0, |s| s.processes.len()),
            };
            let us = start.elapsed().as_secs_f64() * 1e6;
            if n > 0 {
                slot.push(us / n as f64);
            }
            count = count.max(n);
        }
    }
    let [f, m, p, s, c] = t.map(|mut v| median(&mut v));
    println!(
        "processes={count} floor_us={f:.2} memmon_us={m:.2} procfs_us={p:.2} ps_us={s:.2} \
         collect_{}_us={c:.2} memmon/floor={:.2} procfs/floor={:.2} ps/floor={:.2} memmon/ps={:.2} \
         collect/floor={:.2}",
        collector.mode().label().replace(' ', "-"),
        m / f,
        p / f,
        s / f,
        m / s,
        c / f
    );
}
