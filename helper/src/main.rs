//! memmon-helper: the privileged collector of Memory Monitor, also a command-line tool.
//!
//! `memmon-helper snapshot` prints the top processes once (or every `--watch` seconds): as root
//! with eBPF allocation tracking (Full mode), otherwise from /proc alone, saying why on stderr.
use std::{
    io::{self, Write as _},
    process::ExitCode,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use memmon_common::{
    apps::{AppSortKey, AppsSnapshot, MAX_EXPANDED_APPS},
    column::Column,
    snapshot::{Mode, ProcessRow, Snapshot, SortKey, top_by},
};
use memmon_helper::{
    Collector,
    client::HelperClient,
    dbus::MAX_LIMIT,
    service::{self, ServeOptions},
};

#[derive(Parser)]
#[command(
    name = "memmon-helper",
    version,
    about = "Memory Monitor's collector and command-line tool"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the top processes by a memory column.
    Snapshot(SnapshotArgs),
    /// Run the system service io.github.memmon.Helper1 (what D-Bus activation starts).
    Serve(ServeArgs),
    /// PSS, USS and swap PSS of one process from /proc/PID/smaps_rollup (read on demand).
    Detail(DetailArgs),
    /// Where one process allocates: its call sites ranked by outstanding bytes (root).
    Callsites(cli_callsites::CallSitesArgs),
    /// Serve the collector's metrics to Prometheus (OpenMetrics over HTTP) until stopped.
    #[cfg(feature = "exporter")]
    Export(cli_export::ExportArgs),
}

mod cli_callsites;
#[cfg(feature = "exporter")]
mod cli_export;

#[derive(clap::Args)]
struct DetailArgs {
    /// The process ID.
    pid: u32,
    /// Ask the running service over the system bus (polkit-authorised) instead of reading
    /// /proc here (which needs the right to read that process).
    #[arg(long)]
    bus: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Exit after SECS without an authorised client (0: never).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    idle_exit: u64,
    /// Default collection interval in milliseconds (250..=10000).
    #[arg(long, default_value_t = memmon_helper::dbus::DEFAULT_INTERVAL_MS,
          value_parser = clap::value_parser!(u32).range(250..=10_000))]
    interval_ms: u32,
    /// Do not load eBPF programs.
    #[arg(long)]
    no_ebpf: bool,
}

#[derive(clap::Args)]
struct SnapshotArgs {
    /// How many processes to show (1..=100000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    top: u32,
    #[arg(long, help = sort_help())]
    sort: Option<String>,
    /// Apps instead of processes: processes grouped by their systemd unit (cgroup), with the
    /// kernel's memory count for each app's cgroup.
    #[arg(long)]
    apps: bool,
    /// With --apps: list the processes of the app with this id (repeatable, at most 16).
    #[arg(long, value_name = "APP_ID", requires = "apps")]
    expand: Vec<String>,
    /// Smallest first (default: largest first; names A→Z when sorting by name or pid).
    #[arg(long)]
    ascending: bool,
    /// One JSON document per tick, one per line.
    #[arg(long)]
    json: bool,
    /// CSV: a header line, then one line per process (per tick with --watch).
    #[arg(long, conflicts_with = "json")]
    csv: bool,
    /// Repeat every SECS seconds (0.1..=3600) until interrupted.
    #[arg(long, value_name = "SECS", value_parser = parse_interval)]
    watch: Option<Duration>,
    /// Do not load eBPF programs even when running as root.
    #[arg(long)]
    no_ebpf: bool,
    /// Ask the running service (io.github.memmon.Helper1 on the system bus) as the calling user,
    /// instead of reading /proc here; --top is then at most 1000.
    #[arg(long, conflicts_with = "no_ebpf")]
    bus: bool,
    /// With --bus: ask the service to collect every MS milliseconds (250..=10000) while this
    /// command runs.
    #[arg(long, value_name = "MS", requires = "bus",
          value_parser = clap::value_parser!(u32).range(250..=10_000))]
    interval_ms: Option<u32>,
    /// With --bus: watch every RSS change of process PID (kmem:rss_stat) while this command
    /// runs — exact peaks between samples, at a cost on every page fault (see the README).
    #[arg(long, value_name = "PID", requires = "bus")]
    high_res: Option<u32>,
}

/// The `--sort` help, from the column tables.
fn sort_help() -> String {
    let keys: Vec<&str> = SortKey::ALL.iter().map(|k| k.as_str()).collect();
    let app_keys: Vec<&str> = AppSortKey::ALL.iter().map(|k| k.as_str()).collect();
    format!(
        "Column to rank by: {} (default rss; {} is the RSS growth rate; needs --watch or --bus). \
         With --apps: {} (default memory)",
        keys.join(", "),
        SortKey::Growth,
        app_keys.join(", ")
    )
}

/// What to rank by, parsed from `--sort` for processes or apps.
#[derive(Clone, Copy)]
enum Ranking {
    Processes(SortKey),
    Apps(AppSortKey),
}

impl Ranking {
    fn of(args: &SnapshotArgs) -> anyhow::Result<Ranking> {
        let sort = args.sort.as_deref();
        Ok(if args.apps {
            Ranking::Apps(sort.map_or(Ok(AppSortKey::Memory), str::parse)?)
        } else {
            Ranking::Processes(sort.map_or(Ok(SortKey::Rss), str::parse)?)
        })
    }
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    parse_seconds(s, 0.1, 3600.0)
}

/// A number of seconds (a trailing `s` allowed) between `min` and `max`, for flags.
fn parse_seconds(s: &str, min: f64, max: f64) -> Result<Duration, String> {
    let secs: f64 = s
        .trim_end_matches('s')
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(min..=max).contains(&secs) {
        return Err(format!(
            "{secs} s is out of range: use {min} to {max} seconds"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() -> anyhow::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe; the struct is
        // fully initialised before use.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(sig, &action, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error()).context("installing a signal handler");
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The service logs its lifecycle and every authorisation decision (to the journal when
    // started by systemd); the CLI only warnings.
    let default_filter = match cli.command {
        Command::Serve(_) => "info",
        #[cfg(feature = "exporter")]
        Command::Export(_) => "info",
        _ => "warn",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_filter))
        .init();
    let result = match cli.command {
        Command::Snapshot(args) => snapshot(&args),
        Command::Serve(args) => serve(&args),
        Command::Detail(args) => detail(&args),
        Command::Callsites(args) => cli_callsites::callsites(&args),
        #[cfg(feature = "exporter")]
        Command::Export(args) => cli_export::export(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("memmon-helper: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let options = ServeOptions {
        idle_exit: (args.idle_exit > 0).then(|| Duration::from_secs(args.idle_exit)),
        interval_ms: args.interval_ms,
        use_ebpf: !args.no_ebpf,
    };
    memmon_helper::privileges::keep_only_needed().context("dropping capabilities")?;
    // One executor thread; whatever may be slow (sorting and encoding a snapshot, a page-table
    // walk) runs on at most 4 blocking threads, so one heavy client never holds up the others.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(4)
        .thread_name("memmon-serve")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let exit = runtime.block_on(service::serve(options))?;
    log::info!("exiting: {exit:?}");
    Ok(())
}

/// Where snapshots come from: this process's own collector, or the running service.
enum Source {
    Local(Box<Collector>),
    Bus {
        runtime: tokio::runtime::Runtime,
        client: HelperClient,
    },
}

impl Source {
    fn open(args: &SnapshotArgs) -> anyhow::Result<Source> {
        if args.bus {
            if args.top > MAX_LIMIT {
                anyhow::bail!(
                    "--top {} is too many with --bus: the service returns at most {MAX_LIMIT}",
                    args.top
                );
            }
            let runtime = runtime()?;
            let client = runtime.block_on(async {
                let client = HelperClient::connect().await?;
                // A terminal user may be asked for a password once, here.
                client.info(true).await?;
                if let Some(ms) = args.interval_ms {
                    client.set_interval(ms).await?;
                }
                if let Some(pid) = args.high_res {
                    let start_time = procfs::process::Process::new(pid as i32)
                        .and_then(|p| p.stat())
                        .with_context(|| format!("no process {pid}"))?
                        .starttime;
                    client
                        .set_high_resolution(pid, start_time, true, true)
                        .await?;
                }
                anyhow::Ok(client)
            })?;
            return Ok(Source::Bus { runtime, client });
        }
        let collector = if args.no_ebpf {
            Collector::embedded("eBPF disabled by --no-ebpf — /proc data only")
        } else {
            Collector::with_ebpf()
        };
        if collector.mode() != Mode::Full
            && let Some(reason) = collector.mode_reason()
        {
            eprintln!("memmon-helper: {reason}");
        }
        Ok(Source::Local(Box::new(collector)))
    }

    fn next(&mut self, args: &SnapshotArgs, ranking: Ranking) -> anyhow::Result<Output> {
        let descending = !args.ascending;
        match (self, ranking) {
            (Source::Local(collector), ranking) => {
                let mut snap = collector.collect().context("collecting a snapshot")?;
                Ok(match ranking {
                    Ranking::Processes(key) => {
                        snap.processes =
                            top_by(&snap.processes, key, descending, args.top as usize);
                        Output::Processes(snap)
                    }
                    Ranking::Apps(key) => Output::Apps(memmon_helper::apps::view(
                        &collector.apps().snapshot(),
                        &snap,
                        key,
                        descending,
                        args.top,
                        &args.expand,
                    )),
                })
            }
            (Source::Bus { runtime, client }, Ranking::Processes(key)) => Ok(Output::Processes(
                runtime.block_on(client.snapshot(key, descending, args.top))?,
            )),
            (Source::Bus { runtime, client }, Ranking::Apps(key)) => {
                let expanded: Vec<&str> = args.expand.iter().map(String::as_str).collect();
                Ok(Output::Apps(runtime.block_on(
                    client.apps(key, descending, args.top, &expanded),
                )?))
            }
        }
    }
}

enum Output {
    Processes(Snapshot),
    Apps(AppsSnapshot),
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn snapshot(args: &SnapshotArgs) -> anyhow::Result<()> {
    install_signal_handlers()?;
    // A bad --sort is a usage error like any other bad value: clap's message, exit code 2.
    let ranking = Ranking::of(args).unwrap_or_else(|e| {
        use clap::CommandFactory as _;
        Cli::command()
            .error(clap::error::ErrorKind::InvalidValue, format!("--sort: {e}"))
            .exit()
    });
    if args.expand.len() > MAX_EXPANDED_APPS {
        anyhow::bail!("--expand: at most {MAX_EXPANDED_APPS} apps");
    }
    let mut source = Source::open(args)?;
    let growth = matches!(
        ranking,
        Ranking::Processes(SortKey::Growth) | Ranking::Apps(AppSortKey::Growth)
    );
    if growth && args.watch.is_none() && !args.bus {
        eprintln!(
            "memmon-helper: growth needs at least 30 s of history; one snapshot has none — use \
             --watch, or --bus to ask the running helper"
        );
    }
    let stdout = io::stdout();
    loop {
        let tick = Instant::now();
        let output = source.next(args, ranking)?;
        let mut out = stdout.lock();
        match (&output, ranking) {
            (Output::Processes(snap), _) if args.json => {
                serde_json::to_writer(&mut out, snap).context("writing JSON")?;
                writeln!(out)?;
            }
            (Output::Apps(apps), _) if args.json => {
                serde_json::to_writer(&mut out, apps).context("writing JSON")?;
                writeln!(out)?;
            }
            (Output::Processes(snap), _) if args.csv => {
                out.write_all(memmon_common::export::grid_csv(&snap.processes).as_bytes())?;
            }
            (Output::Apps(apps), _) if args.csv => {
                out.write_all(memmon_common::apps::apps_csv(&apps.apps).as_bytes())?;
            }
            (Output::Processes(snap), Ranking::Processes(key)) => {
                write_table(&mut out, snap, key, args.ascending)?;
            }
            (Output::Apps(apps), Ranking::Apps(key)) => {
                memmon_helper::apps::report::write_table(&mut out, apps, key.as_str())?;
            }
            _ => {}
        }
        out.flush()?;
        drop(out);
        let Some(interval) = args.watch else {
            return Ok(());
        };
        // Sleep in slices so SIGINT/SIGTERM end the loop promptly (and detach the programs).
        while tick.elapsed() < interval {
            if STOP.load(Ordering::SeqCst) {
                return Ok(());
            }
            std::thread::sleep(
                Duration::from_millis(20).min(interval.saturating_sub(tick.elapsed())),
            );
        }
        if STOP.load(Ordering::SeqCst) {
            return Ok(());
        }
    }
}

fn write_table(
    out: &mut impl io::Write,
    snap: &Snapshot,
    sort: SortKey,
    ascending: bool,
) -> io::Result<()> {
    let sys = &snap.system;
    writeln!(
        out,
        "Memory Monitor — {} mode — {} processes — memory {} / {} MiB used, swap {} / {} MiB — top {} by {}{}",
        snap.mode.label(),
        snap.process_count,
        sys.used_kb() / 1024,
        sys.total_kb / 1024,
        sys.swap_used_kb() / 1024,
        sys.swap_total_kb / 1024,
        snap.processes.len(),
        sort,
        if ascending { " (ascending)" } else { "" },
    )?;
    if let Some(p) = &snap.pressure {
        let pct = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}%"));
        writeln!(
            out,
            "pressure (avg10): some {} full {} — swap in/out {:.0}/{:.0} pages/s — faults {:.0}/s ({:.0} major) — OOM kills since boot {}",
            pct(p.some_avg10),
            pct(p.full_avg10),
            p.swap_in_per_s,
            p.swap_out_per_s,
            p.faults_per_s,
            p.major_faults_per_s,
            p.oom_kill_total
                .map_or_else(|| "-".to_owned(), |n| n.to_string()),
        )?;
    }
    for kill in &snap.oom_kills {
        writeln!(
            out,
            "OOM kill at {}: {} (PID {}), last RSS {} MiB{}",
            memmon_common::export::iso_utc(kill.unix_ms),
            kill.name,
            kill.pid,
            kill.last_rss_kb
                .or(kill.rss_at_kill_kb)
                .map_or_else(|| "-".to_owned(), |kb| (kb / 1024).to_string()),
            match kill.source {
                memmon_common::diagnostics::OomSource::Tracepoint => "",
                memmon_common::diagnostics::OomSource::Counter =>
                    " (inferred: vanished as the counter rose)",
            }
        )?;
    }
    if snap.bpf_drops > 0 {
        writeln!(
            out,
            "warning: {} eBPF events lost because a map was full",
            snap.bpf_drops
        )?;
    }
    let columns: Vec<Column> = Column::listed_columns().collect();
    let mut line = String::new();
    for c in &columns {
        line.push_str(&c.table_cell(&c.table_heading()));
        line.push(' ');
    }
    writeln!(out, "{line} NOTE")?;
    for row in &snap.processes {
        line.clear();
        for c in &columns {
            line.push_str(&c.table_cell(&c.table_text(row)));
            line.push(' ');
        }
        writeln!(out, "{line} {}", note(row))?;
    }
    Ok(())
}

/// What the columns cannot show: sustained growth, the high-resolution peak, a spike.
fn note(row: &ProcessRow) -> String {
    let mut note = String::new();
    if row.growth.is_some_and(|g| g.sustained) {
        note.push_str("sustained growth ");
    }
    if let Some(h) = row.high_res {
        note.push_str(&format!(
            "hi-res peak {:.1} MB ({} changes) ",
            h.peak_rss_kb as f64 / 1024.0,
            h.changes
        ));
    }
    if let Some(spike) = row.spike {
        note.push_str(&format!(
            "spike +{:.1} MB ",
            spike.size_bytes as f64 / 1048576.0
        ));
    }
    note.truncate(note.trim_end().len());
    note
}

fn detail(args: &DetailArgs) -> anyhow::Result<()> {
    let stat = procfs::process::Process::new(args.pid as i32)
        .and_then(|p| p.stat())
        .with_context(|| format!("no process {}", args.pid))?;
    let detail = if args.bus {
        runtime()?.block_on(async {
            HelperClient::connect()
                .await?
                .memory_detail(args.pid, stat.starttime, true)
                .await
        })?
    } else {
        let now = memmon_common::snapshot::unix_ms_now();
        memmon_helper::smaps::read_detail(args.pid, stat.starttime, now)?
    };
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &detail).context("writing JSON")?;
        writeln!(out)?;
        return Ok(());
    }
    let d: memmon_common::diagnostics::MemoryDetail = detail;
    let name = memmon_common::text::escape_name(stat.comm.as_bytes());
    writeln!(out, "PID {} ({name})", d.pid)?;
    for (label, kb) in [
        ("RSS", d.rss_kb),
        ("PSS", d.pss_kb),
        ("  anon", d.pss_anon_kb),
        ("  file", d.pss_file_kb),
        ("  shmem", d.pss_shmem_kb),
        ("USS", d.uss_kb),
        ("Swap", d.swap_kb),
        ("Swap PSS", d.swap_pss_kb),
    ] {
        writeln!(out, "{label:<10} {kb:>12} KiB")?;
    }
    Ok(())
}
