//! The per-tick cost of grouping processes into apps and reading the apps' cgroups, as a share
//! of the /proc scan, at 300 / 1,000 / 3,000 processes across 50 apps (BENCHMARKS.md, "Apps").
//!
//! Needs root: it builds 50 app scopes in every cgroup hierarchy (below
//! `memmon-bench-apps-<pid>`, removed at the end) and starts `sleep` processes in them. Run it
//! in a fresh PID namespace so only its processes are scanned:
//!
//!   unshare --pid --fork --mount-proc target/release/examples/bench_apps [TICKS] [--busy]
//!
//! Idle by default (`sleep`s: a cgroup's `current` is then re-read every 5 ticks); `--busy`
//! runs `memmon-workload pattern noisy` instead (1 MiB touched and freed every 300 ms, so every
//! app's RSS moves every tick and every cgroup's `current` is read every tick).
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
};

use anyhow::Context as _;
use memmon_helper::{Collector, apps::Mounts};

const APPS: usize = 50;

struct Bench {
    dirs: Vec<PathBuf>,
    children: Vec<Child>,
}

impl Drop for Bench {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for dir in self.dirs.iter().rev() {
            for _ in 0..100 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let ticks: usize = std::env::args()
        .nth(1)
        .map(|t| t.parse())
        .transpose()?
        .unwrap_or(30);
    let busy = std::env::args().any(|a| a == "--busy");
    let workload = std::env::current_exe()?
        .parent()
        .and_then(|examples| examples.parent())
        .map(|dir| dir.join("memmon-workload"))
        .context("the build directory")?;
    let mounts = Mounts::discover();
    let roots: Vec<PathBuf> = [&mounts.systemd_v1, &mounts.unified, &mounts.memory_v1]
        .into_iter()
        .flatten()
        .map(|m| m.point.clone())
        .collect();
    let mut bench = Bench {
        dirs: Vec::new(),
        children: Vec::new(),
    };
    let base = format!("memmon-bench-apps-{}", std::process::id());
    let mut units = Vec::new();
    for i in 0..APPS {
        let relative = format!(
            "{base}/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-org.example.App{i}-{i}.scope"
        );
        for root in &roots {
            let mut dir = root.clone();
            for component in relative.split('/') {
                dir = dir.join(component);
                if !dir.exists() {
                    std::fs::create_dir(&dir)
                        .with_context(|| format!("mkdir {}", dir.display()))?;
                    bench.dirs.push(dir.clone());
                }
            }
        }
        units.push(relative);
    }
    println!(
        "| processes | apps | scan µs (median / mean) | apps µs (median / mean) | share of the scan (median / mean) | mean µs: cgroup re-reads, sums, cgroup counters, rows |"
    );
    println!("|---|---|---|---|---|---|");
    for target in [300usize, 1_000, 3_000] {
        while bench.children.len() < target {
            let mut command = if busy {
                let mut c = Command::new(&workload);
                c.args(["pattern", "noisy", "--mib", "1", "--period-ms", "300"]);
                c.stdout(Stdio::null());
                c
            } else {
                let mut c = Command::new("sleep");
                c.arg("600");
                c
            };
            let child = command
                .stdin(Stdio::null())
                .spawn()
                .context("spawn a process")?;
            let unit = &units[bench.children.len() % APPS];
            for root in &roots {
                std::fs::write(root.join(unit).join("cgroup.procs"), child.id().to_string())
                    .context("move into the unit")?;
            }
            bench.children.push(child);
        }
        let mut collector = Collector::embedded("bench");
        // Warm up: every process's first cgroup reads and the young re-reads.
        for _ in 0..8 {
            collector.collect()?;
        }
        let (mut scan, mut apps) = (Vec::new(), Vec::new());
        let mut phases = [0u64; 4];
        for _ in 0..ticks {
            collector.collect()?;
            let t = collector.timings();
            scan.push(t.scan_us);
            apps.push(t.apps_us);
            for (sum, p) in phases.iter_mut().zip(collector.apps().phases_us()) {
                *sum += p;
            }
        }
        let app_count = collector.apps().rows().len();
        let mean = |v: &[u64]| v.iter().sum::<u64>() / v.len().max(1) as u64;
        let (scan_mean, apps_mean) = (mean(&scan), mean(&apps));
        let (scan, apps) = (median(scan), median(apps));
        let phases = phases.map(|p| p / ticks.max(1) as u64);
        println!(
            "| {target} | {app_count} | {scan} / {scan_mean} | {apps} / {apps_mean} | {:.1} % / {:.1} % | {phases:?} |",
            apps as f64 * 100.0 / scan.max(1) as f64,
            apps_mean as f64 * 100.0 / scan_mean.max(1) as f64
        );
    }
    Ok(())
}
