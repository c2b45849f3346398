//! `memmon-helper export`: the collector as a Prometheus exporter (see `export.rs`).
//!
//! Every flag can also come from the environment (`MEMMON_EXPORTER_*`), which is how the
//! systemd unit reads `/etc/default/memmon-exporter`.

use std::{
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use anyhow::Context as _;
use caps::Capability;
use memmon_common::snapshot::Mode;
use memmon_helper::{
    Collector,
    export::{
        self,
        http::{DEFAULT_LISTEN, Limits, Listen},
        metrics::Selection,
    },
};

#[derive(clap::Args)]
pub struct ExportArgs {
    /// Where to serve /metrics: IP:PORT, or unix:/absolute/path for a Unix socket (e.g. behind
    /// a TLS proxy). Anything but loopback exposes process names and sizes to the network.
    #[arg(long, env = "MEMMON_EXPORTER_LISTEN", default_value = DEFAULT_LISTEN,
          value_parser = parse_listen)]
    listen: Listen,
    /// Collect every SECS seconds (0.5..=60); scrapes between two collections get the same data.
    #[arg(long, value_name = "SECS", env = "MEMMON_EXPORTER_INTERVAL", default_value = "5",
          value_parser = parse_interval)]
    interval: Duration,
    /// Expose the top N processes by RSS and the top N by growth (1..=500): at most 2N
    /// processes, each with at most 9 series.
    #[arg(long, value_name = "N", env = "MEMMON_EXPORTER_TOP", default_value_t = 20,
          value_parser = clap::value_parser!(u16).range(1..=500))]
    top: u16,
    /// Expose the largest N apps by memory (0..=1000; 0: no app series).
    #[arg(long, value_name = "N", env = "MEMMON_EXPORTER_MAX_APPS", default_value_t = 100,
          value_parser = clap::value_parser!(u16).range(0..=1000))]
    max_apps: u16,
    /// Also count every process's mmap/munmap/brk with eBPF (root, CAP_BPF + CAP_PERFMON).
    /// While on, every syscall on the machine pays about 60 ns and every mmap/munmap/brk
    /// 0.2-0.5 µs (README, BENCHMARKS.md).
    #[arg(long, env = "MEMMON_EXPORTER_EBPF",
          value_parser = clap::builder::BoolishValueParser::new())]
    ebpf: bool,
}

fn parse_listen(s: &str) -> Result<Listen, String> {
    s.parse()
        .map_err(|e: export::http::HttpError| e.to_string())
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    crate::parse_seconds(s, 0.5, 60.0)
}

pub fn export(args: &ExportArgs) -> anyhow::Result<()> {
    // Bind first: a taken port or a bad path fails before any program is loaded.
    let bound = args.listen.bind()?;
    let collector = if args.ebpf {
        Collector::with_ebpf()
    } else {
        Collector::proc_only("eBPF not requested (--ebpf) — /proc data only")
    };
    if let Some(reason) = collector.mode_reason() {
        if args.ebpf {
            log::warn!("{reason}");
        } else {
            log::info!("{reason}");
        }
    }
    // Reading /proc needs no capability; the loaded programs' maps need CAP_BPF (and
    // CAP_PERFMON stays for the tracepoints' perf events).
    let keep: &[Capability] = if collector.mode() == Mode::Full {
        &[Capability::CAP_BPF, Capability::CAP_PERFMON]
    } else {
        &[]
    };
    memmon_helper::privileges::keep_only(keep).context("dropping capabilities")?;

    let selection = Selection {
        top: usize::from(args.top),
        max_apps: usize::from(args.max_apps),
    };
    let (publish, latest) = tokio::sync::watch::channel(None);
    let stop = Arc::new(AtomicBool::new(false));
    let collecting = {
        let stop = Arc::clone(&stop);
        let interval = args.interval;
        std::thread::Builder::new()
            .name("memmon-collect".to_owned())
            .spawn(move || export::collect_loop(collector, interval, selection, publish, stop))
            .context("starting the collector thread")?
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .thread_name("memmon-export")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    log::info!(
        "serving {} (every {:?}, top {} processes, {} apps)",
        args.listen,
        args.interval,
        args.top,
        args.max_apps
    );
    let served = runtime.block_on(async {
        let shutdown = shutdown_signal()?;
        anyhow::Ok(export::http::serve(bound, latest, Limits::default(), shutdown).await?)
    });
    stop.store(true, std::sync::atomic::Ordering::Release);
    collecting.thread().unpark();
    if collecting.join().is_err() {
        anyhow::bail!("the collector thread panicked");
    }
    served?;
    log::info!("stopped");
    Ok(())
}

/// Completes on SIGTERM (systemd's stop) or SIGINT.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("handling SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("handling SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
