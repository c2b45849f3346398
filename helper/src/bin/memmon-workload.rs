//! memmon-workload: performs exactly the memory operations it is told to, so tests and
//! benchmarks can check memmon's numbers against a known truth.
//!
//! `exact` mode speaks a tiny protocol on stdin/stdout: it prepares everything (threads, buffers),
//! prints `ready`, waits for a line on stdin, performs the operations with no other syscall that
//! memmon tracks (no allocation happens in between), prints `done`, and exits when stdin closes.
use std::{
    hint::black_box,
    io::Write as _,
    sync::{
        Arc, Barrier,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "Generates known memory activity for memmon's tests and benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Perform an exact set of operations between `ready` and `done` (see module docs).
    Exact(ExactArgs),
    /// mmap+munmap one page in a loop for SECS seconds; prints calls per second.
    LoopMmap {
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
    },
    /// getppid() in a loop (a syscall memmon does not trace); prints calls per second.
    LoopGetppid {
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
    },
    /// A memory-use pattern for the diagnostics tests; prints `ready` once set up and dies with
    /// its parent (or after --seconds).
    Pattern(PatternArgs),
    /// Rename itself to NAME (prctl PR_SET_NAME: its bytes as given, at most 15), print `ready`,
    /// and wait for stdin to close (or --seconds); for the untrusted-name tests.
    Named {
        #[arg(value_parser = clap::value_parser!(std::ffi::OsString))]
        name: std::ffi::OsString,
        #[arg(long, default_value_t = 600.0)]
        seconds: f64,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Pattern {
    /// Touch --mib MiB once, then hold it.
    Steady,
    /// Alternate every --period-ms between holding --mib MiB (touched) and holding none.
    Noisy,
    /// Grow by --mib MiB per second (touched, 10 steps a second), never freeing.
    Leak,
    /// On each stdin line: map and touch --mib MiB, hold it --hold-ms, unmap it, print `done`.
    Spike,
    /// On a stdin line: map and touch 1 MiB at a time up to --mib MiB, then print `done`.
    Hog,
    /// On the first stdin line: read --read FILE through (page cache), map and touch --mib MiB,
    /// print `done`, and hold it all until stdin closes (or --seconds). Lets a test move the
    /// process into a cgroup first, so what it uses is charged there.
    Hold,
}

#[derive(clap::Args)]
struct PatternArgs {
    #[arg(value_enum)]
    pattern: Pattern,
    #[arg(long, default_value_t = 1)]
    mib: usize,
    #[arg(long, default_value_t = 1000)]
    period_ms: u64,
    #[arg(long, default_value_t = 300)]
    hold_ms: u64,
    /// Hog: pause between 1 MiB chunks (so a sampler sees it grow).
    #[arg(long, default_value_t = 0)]
    step_ms: u64,
    #[arg(long, default_value_t = 600.0)]
    seconds: f64,
    /// Hold: a file to read through first.
    #[arg(long, value_name = "FILE")]
    read: Option<std::path::PathBuf>,
}

#[derive(clap::Args)]
struct ExactArgs {
    /// Threads doing the mmap/munmap operations (each does all of them).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Successful mmaps per thread.
    #[arg(long, default_value_t = 0)]
    mmaps: usize,
    /// Length of each mmap in bytes (need not be a page multiple).
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// How many of the mapped regions each thread unmaps again.
    #[arg(long, default_value_t = 0)]
    munmaps: usize,
    /// mmaps per thread that fail (length 0, EINVAL).
    #[arg(long, default_value_t = 0)]
    failed_mmaps: usize,
    /// munmaps per thread that fail (unaligned address, EINVAL).
    #[arg(long, default_value_t = 0)]
    failed_munmaps: usize,
    /// brk calls that grow the break by --brk-step (main thread only).
    #[arg(long, default_value_t = 0)]
    brk_grow: usize,
    /// brk calls that shrink it back by --brk-step (at most --brk-grow).
    #[arg(long, default_value_t = 0)]
    brk_shrink: usize,
    #[arg(long, default_value_t = 65536)]
    brk_step: usize,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Exact(args) => exact(&args),
        Command::LoopMmap { seconds } => {
            report_rate("mmap+munmap", seconds, || {
                // SAFETY: anonymous private mapping of one page, unmapped right away.
                unsafe {
                    let p = libc::mmap(
                        std::ptr::null_mut(),
                        4096,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                        -1,
                        0,
                    );
                    if p != libc::MAP_FAILED {
                        libc::munmap(p, 4096);
                    }
                }
            })
        }
        Command::Pattern(args) => pattern(&args),
        Command::Named { name, seconds } => named(&name, seconds),
        Command::LoopGetppid { seconds } => report_rate("getppid", seconds, || {
            // SAFETY: getppid has no preconditions.
            black_box(unsafe { libc::getppid() });
        }),
    }
}

const MIB: usize = 1 << 20;

/// An anonymous mapping whose every page has been written (so it counts in RSS).
struct Touched {
    addr: *mut libc::c_void,
    len: usize,
}

impl Touched {
    fn new(len: usize) -> anyhow::Result<Touched> {
        // SAFETY: a fresh private anonymous mapping, owned by the returned value.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            bail!(
                "mmap of {len} bytes failed: {}",
                std::io::Error::last_os_error()
            );
        }
        for offset in (0..len).step_by(4096) {
            // SAFETY: inside the mapping just created, writable.
            unsafe { addr.cast::<u8>().add(offset).write_volatile(1) };
        }
        Ok(Touched { addr, len })
    }
}

impl Drop for Touched {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping this value owns.
        unsafe { libc::munmap(self.addr, self.len) };
    }
}

fn pattern(args: &PatternArgs) -> anyhow::Result<()> {
    // SAFETY: prctl with constant arguments; the child dies when the test that spawned it does.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds.clamp(0.1, 3600.0));
    let size = args.mib * MIB;
    let say = |what: &str| {
        println!("{what}");
        let _ = std::io::stdout().flush();
    };
    match args.pattern {
        Pattern::Steady => {
            let _held = Touched::new(size.max(4096))?;
            say("ready");
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
        }
        Pattern::Noisy => {
            say("ready");
            let mut held = None;
            while Instant::now() < deadline {
                held = match held {
                    Some(_) => None,
                    None => Some(Touched::new(size)?),
                };
                std::thread::sleep(Duration::from_millis(args.period_ms));
            }
        }
        Pattern::Leak => {
            say("ready");
            let mut leaked = Vec::new();
            while Instant::now() < deadline {
                leaked.push(Touched::new(size / 10)?);
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Pattern::Hold => {
            say("ready");
            if !wait_for_line() {
                return Ok(());
            }
            if let Some(path) = &args.read {
                let mut file = std::fs::File::open(path)
                    .with_context(|| format!("opening {}", path.display()))?;
                std::io::copy(&mut file, &mut std::io::sink()).context("reading")?;
            }
            let _held = (size > 0).then(|| Touched::new(size)).transpose()?;
            say("done");
            while Instant::now() < deadline && wait_for_line() {}
        }
        Pattern::Spike | Pattern::Hog => {
            say("ready");
            loop {
                if !wait_for_line() || Instant::now() > deadline {
                    return Ok(());
                }
                if args.pattern == Pattern::Spike {
                    let spike = Touched::new(size)?;
                    std::thread::sleep(Duration::from_millis(args.hold_ms));
                    drop(spike);
                } else {
                    let mut chunks = Vec::new();
                    for _ in 0..args.mib {
                        chunks.push(Touched::new(MIB)?);
                        std::thread::sleep(Duration::from_millis(args.step_ms));
                    }
                    black_box(&chunks);
                }
                say("done");
            }
        }
    }
    Ok(())
}

fn named(name: &std::ffi::OsStr, seconds: f64) -> anyhow::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    let comm = std::ffi::CString::new(name.as_bytes()).context("NAME must not contain NUL")?;
    if comm.as_bytes().len() > 15 {
        bail!(
            "NAME is {} bytes; the kernel keeps at most 15",
            comm.as_bytes().len()
        );
    }
    // SAFETY: prctl with constant arguments; the child dies when the test that spawned it does.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // SAFETY: PR_SET_NAME reads a NUL-terminated string, which `comm` is, and keeps no pointer.
    if unsafe { libc::prctl(libc::PR_SET_NAME, comm.as_ptr()) } != 0 {
        bail!("PR_SET_NAME failed: {}", std::io::Error::last_os_error());
    }
    println!("ready");
    std::io::stdout().flush().context("stdout")?;
    let (done, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Ends when stdin closes.
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        let _ = done.send(());
    });
    let _ = wait.recv_timeout(Duration::from_secs_f64(seconds.clamp(0.1, 3600.0)));
    Ok(())
}

fn report_rate(what: &str, seconds: f64, mut op: impl FnMut()) -> anyhow::Result<()> {
    if !(seconds > 0.0 && seconds <= 3600.0) {
        bail!("--seconds must be in (0, 3600], got {seconds}");
    }
    let deadline = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut calls: u64 = 0;
    while start.elapsed() < deadline {
        for _ in 0..1000 {
            op();
        }
        calls += 1000;
    }
    let rate = calls as f64 / start.elapsed().as_secs_f64();
    println!("{what} {rate:.0} calls/s");
    Ok(())
}

fn exact(args: &ExactArgs) -> anyhow::Result<()> {
    if args.munmaps > args.mmaps {
        bail!(
            "--munmaps ({}) cannot exceed --mmaps ({})",
            args.munmaps,
            args.mmaps
        );
    }
    if args.brk_shrink > args.brk_grow {
        bail!(
            "--brk-shrink ({}) cannot exceed --brk-grow ({})",
            args.brk_shrink,
            args.brk_grow
        );
    }
    if args.threads == 0 || args.size == 0 {
        bail!("--threads and --size must be at least 1");
    }
    // Threads must be fully started (std maps each one a signal stack as it starts) before
    // `ready`, or their start-up would land among the counted operations.
    let started = Arc::new(Barrier::new(args.threads + 1));
    let start = Arc::new(Barrier::new(args.threads + 1));
    let finished = Arc::new(AtomicUsize::new(0));
    for _ in 0..args.threads {
        let started = Arc::clone(&started);
        let start = Arc::clone(&start);
        let finished = Arc::clone(&finished);
        let (mmaps, munmaps, size) = (args.mmaps, args.munmaps, args.size);
        let (failed_mmaps, failed_munmaps) = (args.failed_mmaps, args.failed_munmaps);
        std::thread::Builder::new()
            .spawn(move || {
                let mut regions: Vec<usize> = Vec::with_capacity(mmaps);
                started.wait();
                start.wait();
                map_unmap(
                    &mut regions,
                    mmaps,
                    munmaps,
                    size,
                    failed_mmaps,
                    failed_munmaps,
                );
                finished.fetch_add(1, Ordering::SeqCst);
                // Stay alive (holding the mappings) until the process exits.
                loop {
                    std::thread::park();
                }
            })
            .context("spawning a worker thread")?;
    }
    started.wait();
    // SAFETY: brk(0) only reports the current break.
    let base = unsafe { libc::syscall(libc::SYS_brk, 0usize) } as usize;
    raw_write(b"ready\n");
    wait_for_line();
    start.wait();
    for i in 1..=args.brk_grow {
        set_break(base + i * args.brk_step)?;
    }
    for i in 1..=args.brk_shrink {
        set_break(base + (args.brk_grow - i) * args.brk_step)?;
    }
    while finished.load(Ordering::SeqCst) < args.threads {
        std::thread::yield_now();
    }
    raw_write(b"done\n");
    // Exit when the test closes our stdin.
    let mut byte = [0u8; 64];
    // SAFETY: reading into a stack buffer of the given length.
    while unsafe { libc::read(0, byte.as_mut_ptr().cast(), byte.len()) } > 0 {}
    // SAFETY: exit without running destructors or allocating.
    unsafe { libc::_exit(0) }
}

fn map_unmap(
    regions: &mut Vec<usize>,
    mmaps: usize,
    munmaps: usize,
    size: usize,
    failed_mmaps: usize,
    failed_munmaps: usize,
) {
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    for _ in 0..mmaps {
        // SAFETY: a fresh anonymous mapping; the capacity was reserved, so push does not allocate.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), size, prot, flags, -1, 0) };
        if p == libc::MAP_FAILED {
            raw_write(b"mmap failed unexpectedly\n");
            // SAFETY: immediate exit on an impossible failure.
            unsafe { libc::_exit(3) };
        }
        regions.push(p as usize);
    }
    for _ in 0..failed_mmaps {
        // SAFETY: length 0 always fails with EINVAL and maps nothing.
        unsafe { libc::mmap(std::ptr::null_mut(), 0, prot, flags, -1, 0) };
    }
    for &addr in regions.iter().take(munmaps) {
        // SAFETY: unmapping a region this thread mapped and nobody uses.
        unsafe { libc::munmap(addr as *mut libc::c_void, size) };
    }
    for _ in 0..failed_munmaps {
        // SAFETY: an unaligned address (1) always fails with EINVAL and unmaps nothing.
        unsafe { libc::munmap(std::ptr::dangling_mut::<libc::c_void>(), 4096) };
    }
}

fn set_break(addr: usize) -> anyhow::Result<()> {
    // SAFETY: moves the program break within memory this program owns above the heap start;
    // nothing is allocated from the heap while the break is moved.
    let now = unsafe { libc::syscall(libc::SYS_brk, addr) } as usize;
    if now != addr {
        bail!("brk({addr:#x}) left the break at {now:#x}");
    }
    Ok(())
}

fn raw_write(bytes: &[u8]) {
    let _ = std::io::stdout().flush();
    // SAFETY: writing a valid buffer to stdout.
    unsafe { libc::write(1, bytes.as_ptr().cast(), bytes.len()) };
}

/// Reads up to a newline; false at end of input.
fn wait_for_line() -> bool {
    let mut byte = [0u8; 1];
    loop {
        // SAFETY: reading into a one-byte stack buffer.
        let n = unsafe { libc::read(0, byte.as_mut_ptr().cast(), 1) };
        if n <= 0 {
            return false;
        }
        if byte[0] == b'\n' {
            return true;
        }
    }
}
