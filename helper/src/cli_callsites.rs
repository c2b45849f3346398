//! `memmon-helper callsites PID`: a call-site session run here (as root), its report printed
//! when it ends (time up, process exited, or Ctrl-C).

use std::{
    io::{self, IsTerminal as _, Write as _},
    path::PathBuf,
    sync::atomic::Ordering,
    time::Duration,
};

use anyhow::Context as _;
use memmon_common::callsites::{CallSiteSource, DEFAULT_SESSION_SECONDS, MAX_SESSION_SECONDS};

#[derive(clap::Args)]
pub struct CallSitesArgs {
    /// The process ID.
    pid: u32,
    /// How long to collect (1 to 600 seconds).
    #[arg(long, default_value_t = DEFAULT_SESSION_SECONDS,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_SESSION_SECONDS)))]
    seconds: u32,
    /// mappings: memory mapped from the kernel (mmap, mremap, brk), any allocator, cheap.
    /// heap: malloc/calloc/realloc/free calls, sampled, exact call sites.
    #[arg(long, default_value = "mappings", value_parser = parse_source)]
    source: CallSiteSource,
    /// Heap: record one allocator call in N (default: adapts to the call rate).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    sample: Option<u32>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also write folded stacks (flamegraph.pl / inferno / speedscope input) to FILE.
    #[arg(long, value_name = "FILE")]
    folded: Option<PathBuf>,
    /// Frames shown per call site in the text report.
    #[arg(long, default_value_t = 8)]
    frames: usize,
}

fn parse_source(s: &str) -> Result<CallSiteSource, String> {
    s.parse()
}

#[cfg(all(feature = "ebpf", target_arch = "x86_64"))]
pub fn callsites(args: &CallSitesArgs) -> anyhow::Result<()> {
    use memmon_helper::callsites::{Session, SessionRequest};

    super::install_signal_handlers()?;
    let session = Session::start(SessionRequest {
        pid: args.pid,
        source: args.source,
        seconds: args.seconds,
        sample_every: args.sample,
    })?;
    if io::stderr().is_terminal() {
        eprintln!(
            "Collecting {} call sites of PID {} for {} s (Ctrl-C ends early)…",
            args.source, args.pid, args.seconds
        );
    }
    while session.is_running() {
        if super::STOP.load(Ordering::SeqCst) {
            session.stop("interrupted");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let report = session.wait();
    if let Some(path) = &args.folded {
        std::fs::write(path, report.folded())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &report).context("writing JSON")?;
        writeln!(out)?;
    } else {
        write!(out, "{}", report.text(args.frames))?;
    }
    Ok(())
}

#[cfg(not(all(feature = "ebpf", target_arch = "x86_64")))]
pub fn callsites(_args: &CallSitesArgs) -> anyhow::Result<()> {
    anyhow::bail!("this build of memmon-helper has no call-site support (eBPF on x86_64)")
}
