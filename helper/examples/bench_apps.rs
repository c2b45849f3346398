//! The per-tick cost of grouping processes into apps and reading the apps' cgroups, as a share
//! of the /proc scan, at 300 / 1,000 / 3,000 processes across 50 apps (BENCHMARKS.md, "Apps").
//!
//! Needs root: it builds 50 app scopes in every cgroup hierarchy (below
//! `memmon-bench-apps-<pid>`, removed at the end) and starts `sleep` processes in them. Run it
//! in a fresh PID namespace so only its processes are scanned:
//!
//!   unshare --pid --fork --mount-proc target/release/examples/bench_apps [TICKS]
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
        "| processes | apps | scan (median µs) | grouping + cgroups (median µs) | share of the scan |"
    );
    println!("|---|---|---|---|---|");
    for target in [300usize, 1_000, 3_000] {
        while bench.children.len() < target {
            let child = Command::new("sleep")
                .arg("600")
                .stdin(Stdio::null())
                .spawn()
                .context("spawn sleep")?;
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
        for _ in 0..ticks {
            collector.collect()?;
            let t = collector.timings();
            scan.push(t.scan_us);
            apps.push(t.apps_us);
        }
        let app_count = collector.apps().rows().len();
        let (scan, apps) = (median(scan), median(apps));
        println!(
            "| {target} | {app_count} | {scan} | {apps} | {:.1} % |",
            apps as f64 * 100.0 / scan.max(1) as f64
        );
    }
    Ok(())
}
