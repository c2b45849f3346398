//! Call-site sessions: which code of one process obtains the memory it keeps.
//!
//! A [`Session`] loads the call-site programs for one process and one source, decodes their
//! records on its own thread (unwinding each stack from `.eh_frame`, counting outstanding bytes
//! per distinct stack, naming frames as they appear) and ends by itself when its time is up or
//! the process exits; [`Session::stop`] or dropping it ends it earlier. Everything is detached
//! when it ends. The helper's CLI (`memmon-helper callsites`) and its D-Bus methods use it.
//!
//! Limits: x86_64; the stack copy is `STACK_COPY_BYTES` (16 KiB) from the stack pointer, so a
//! stack deeper than that loses its outermost frames (the site says `truncated`); at most
//! `tally::MAX_STACKS` distinct stacks (later ones merge into one site).

mod modules;
mod probes;
mod symbols;
mod tally;
mod unwind;

use std::{
    collections::HashSet,
    os::fd::AsRawFd as _,
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use memmon_common::{
    callsite_record::{
        CALL_SITE_HEADER_BYTES, CS_ALLOCS_SAMPLED, CS_ALLOCS_SEEN, CS_FREES_SEEN, CS_LIVE_FULL,
        CS_NO_STACK, CS_RING_FULL, CallSiteHeader, FLAG_STACK_CUT, KIND_ALLOC, KIND_BRK, KIND_FREE,
        KIND_MMAP, KIND_MREMAP, KIND_MUNMAP,
    },
    callsites::{
        CallSite, CallSiteReport, CallSiteSource, CallSiteStats, MAX_REPORTED_FRAMES,
        MAX_REPORTED_SITES, MAX_SESSION_SECONDS, SessionState,
    },
    text::escape_name,
};

use modules::{LoadedModule, heap_end, load_modules, read_maps};
use probes::Probes;
use symbols::Symbols;
use tally::Tally;
use unwind::StackUnwinder;

#[derive(Debug, thiserror::Error)]
pub enum CallSiteError {
    #[error("a session lasts 1 to {MAX_SESSION_SECONDS} seconds, not {0}")]
    InvalidSeconds(u32),
    #[error("the sampling interval must be 1 or more (1 records every allocator call)")]
    InvalidSample,
    #[error("no process with PID {0}")]
    NoSuchProcess(u32),
    #[error("cannot read process {pid}'s memory map: {reason}")]
    Unreadable { pid: u32, reason: String },
    #[error(
        "this build of memmon-helper has no eBPF programs (bpf-linker was not installed when it \
         was built)"
    )]
    NoObject,
    #[error("the kernel refused the call-site programs: {0}")]
    Load(String),
    #[error("cannot attach {program}: {reason}")]
    Attach { program: String, reason: String },
    #[error(
        "process {0} maps no binary that defines malloc that the helper can read (a Go \
         program, a static binary without symbols, or a binary in a directory the helper may \
         not enter): use the mappings source"
    )]
    NoAllocator(u32),
    #[error(
        "the kernel allows the uprobes of the heap source only with CAP_SYS_ADMIN, which the \
         helper service does not keep (docs/security.md): use the mappings source, or run \
         `sudo memmon-helper callsites PID --source heap`"
    )]
    UprobesNeedAdmin,
}

/// What a session is asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRequest {
    pub pid: u32,
    pub source: CallSiteSource,
    pub seconds: u32,
    /// Heap: record one allocator call in this many; `None` adapts it to the call rate.
    pub sample_every: Option<u32>,
}

/// Heap samples per second the adaptive interval aims below. Each costs a stack copy in the
/// kernel and ~18 µs here (unwinding and bookkeeping, release build): ~7 % of a core at this
/// rate (BENCHMARKS.md, "Call sites").
const TARGET_SAMPLES_PER_SECOND: u64 = 4_000;
const MAX_SAMPLE_EVERY: u32 = 1 << 16;
/// How often the report is rebuilt, the interval adapted and the process checked.
const TICK: Duration = Duration::from_millis(100);
/// Modules are re-read when a stack leaves every known one, at most this often.
const MODULE_REFRESH: Duration = Duration::from_secs(1);
const PAGE: u64 = 4096;

struct Shared {
    report: Mutex<CallSiteReport>,
    /// Set to end the session, with the reason it ended.
    stop: Mutex<Option<String>>,
}

pub struct Session {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Session {
    /// Checks the request, attaches the programs (errors are returned here) and starts
    /// collecting on a thread of its own.
    pub fn start(req: SessionRequest) -> Result<Session, CallSiteError> {
        if req.seconds == 0 || req.seconds > MAX_SESSION_SECONDS {
            return Err(CallSiteError::InvalidSeconds(req.seconds));
        }
        if req.sample_every == Some(0) {
            return Err(CallSiteError::InvalidSample);
        }
        let start_time = start_time(req.pid).ok_or(CallSiteError::NoSuchProcess(req.pid))?;
        let comm = std::fs::read(format!("/proc/{}/comm", req.pid))
            .map(|b| escape_name(b.strip_suffix(b"\n").unwrap_or(&b)))
            .map_err(|_| CallSiteError::NoSuchProcess(req.pid))?;
        let maps = read_maps(req.pid).map_err(|e| CallSiteError::Unreadable {
            pid: req.pid,
            reason: e.to_string(),
        })?;
        let modules = load_modules(req.pid, &maps);
        let first_every = req.sample_every.unwrap_or(1);
        let probes = Probes::attach(req.pid, req.source, first_every, &modules)?;
        let mut tally = Tally::new();
        if let Some(brk) = heap_end(&maps) {
            tally.set_brk(brk);
        }
        let report = CallSiteReport {
            pid: req.pid,
            comm,
            source: req.source,
            state: SessionState::Running,
            duration_ms: u64::from(req.seconds) * 1000,
            sample_every: if req.source == CallSiteSource::Heap {
                first_every
            } else {
                1
            },
            adaptive: req.source == CallSiteSource::Heap && req.sample_every.is_none(),
            probed: probes.probed.clone(),
            ..CallSiteReport::default()
        };
        let shared = Arc::new(Shared {
            report: Mutex::new(report),
            stop: Mutex::new(None),
        });
        let mut unwinder = StackUnwinder::new();
        unwinder.add_modules(&modules);
        let collector = Collector {
            req,
            start_time,
            probes,
            modules,
            unwinder,
            tally,
            stats: CallSiteStats::default(),
            sample_every: first_every,
            last_sampled: 0,
            last_adapt: Instant::now(),
            last_refresh: Instant::now(),
            shared: Arc::clone(&shared),
        };
        let on_panic = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("memmon-callsites".into())
            .spawn(move || {
                // A bug (or a binary that trips the unwinder) must not leave the report saying
                // "running" forever: the programs are detached as the collector unwinds.
                let run = std::panic::AssertUnwindSafe(|| collector.run());
                if let Err(panic) = std::panic::catch_unwind(run) {
                    let why = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    lock(&on_panic.report).state =
                        SessionState::Failed(format!("an internal error ended it: {why}"));
                }
            })
            .map_err(|e| CallSiteError::Load(format!("cannot start the session thread: {e}")))?;
        Ok(Session {
            shared,
            thread: Some(thread),
        })
    }

    /// What the session found so far (or in the end).
    pub fn report(&self) -> CallSiteReport {
        lock(&self.shared.report).clone()
    }

    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Ends the session early, saying why; the report keeps what was found.
    pub fn stop(&self, reason: &str) {
        lock(&self.shared.stop).get_or_insert_with(|| reason.to_owned());
    }

    /// Waits until the session ends and returns its final report.
    pub fn wait(mut self) -> CallSiteReport {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.report()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop("the session was closed");
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn start_time(pid: u32) -> Option<u64> {
    let pid = i32::try_from(pid).ok().filter(|&p| p > 0)?;
    Some(
        procfs::process::Process::new(pid)
            .ok()?
            .stat()
            .ok()?
            .starttime,
    )
}

/// The process that started at `start_time` is still running (not gone, not a zombie waiting
/// for its parent, not replaced by another with its PID).
fn still_running(pid: u32, start_time: u64) -> bool {
    let Some(stat) = i32::try_from(pid)
        .ok()
        .and_then(|p| procfs::process::Process::new(p).ok()?.stat().ok())
    else {
        return false;
    };
    stat.starttime == start_time && !matches!(stat.state, 'Z' | 'X' | 'x')
}

struct Collector {
    req: SessionRequest,
    start_time: u64,
    probes: Probes,
    modules: Vec<LoadedModule>,
    unwinder: StackUnwinder,
    tally: Tally,
    stats: CallSiteStats,
    sample_every: u32,
    last_sampled: u64,
    last_adapt: Instant,
    last_refresh: Instant,
    shared: Arc<Shared>,
}

impl Collector {
    fn run(mut self) {
        // blazesym's symbolizer stays on this thread (it is not Send).
        let mut symbols = Symbols::new();
        let started = Instant::now();
        let deadline = started + Duration::from_secs(u64::from(self.req.seconds));
        let mut next_tick = started + TICK;
        let ending = loop {
            self.wait_for_records(next_tick.min(deadline));
            self.drain();
            let now = Instant::now();
            if let Some(reason) = lock(&self.shared.stop).clone() {
                break reason;
            }
            if now >= deadline {
                break format!("its {} s are up", self.req.seconds);
            }
            if now >= next_tick {
                next_tick = now + TICK;
                if !still_running(self.req.pid, self.start_time) {
                    break format!("process {} exited", self.req.pid);
                }
                self.adapt_sampling();
                self.publish(&mut symbols, started, SessionState::Running);
            }
        };
        // The last records, then the programs go before the final report is built.
        self.drain();
        self.publish(&mut symbols, started, SessionState::Finished(ending));
    }

    fn wait_for_records(&self, until: Instant) {
        let timeout = until.saturating_duration_since(Instant::now());
        let mut fds = [libc::pollfd {
            fd: self.probes.events.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let ms = timeout.as_millis().min(1000) as libc::c_int;
        // SAFETY: one valid pollfd for the ring buffer's fd, which `self` keeps open.
        unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
    }

    fn drain(&mut self) {
        // Bounded per call so a flood cannot starve the stop and deadline checks.
        for _ in 0..100_000 {
            let Some(item) = self.probes.events.next() else {
                return;
            };
            let record: Vec<u8> = item.to_vec();
            drop(item);
            self.handle(&record);
        }
    }

    fn handle(&mut self, record: &[u8]) {
        let Some(h) = decode_header(record) else {
            return;
        };
        self.stats.records += 1;
        let stack = &record[CALL_SITE_HEADER_BYTES..];
        let stack = &stack[..(h.stack_len as usize).min(stack.len())];
        match h.kind {
            KIND_MUNMAP => self.tally.unmap(h.addr, page_up(h.len)),
            KIND_FREE => self.tally.free(h.addr),
            // An address-space reservation (PROT_NONE: thread stacks' guards, malloc arenas,
            // JIT and GC heaps) uses no memory: it only replaces what it covers.
            KIND_MMAP if h.aux >> 32 == 0 => self.tally.unmap(h.addr, page_up(h.len)),
            KIND_MMAP => {
                let site = self.site(&h, stack);
                self.tally.map(h.addr, page_up(h.len), site);
            }
            KIND_MREMAP => {
                let site = self.site(&h, stack);
                self.tally
                    .remap(h.aux, page_up(h.aux2), h.addr, page_up(h.len), site);
            }
            // A brk that moved nothing (a query, or a failed call) has no call site.
            KIND_BRK if self.tally.brk_value() != Some(h.addr) => {
                let site = self.site(&h, stack);
                self.tally.brk(h.addr, site);
            }
            KIND_ALLOC => {
                let site = self.site(&h, stack);
                self.tally.alloc(h.addr, h.len, h.weight, site);
            }
            _ => {}
        }
    }

    /// The call site of a record with a stack.
    fn site(&mut self, h: &CallSiteHeader, stack: &[u8]) -> tally::SiteId {
        if h.flags & FLAG_STACK_CUT != 0 {
            self.stats.cut_stacks += 1;
        }
        let ip_is_return = h.kind == KIND_ALLOC;
        let mut unwound = self.unwinder.unwind(h.ip, h.sp, h.bp, stack, ip_is_return);
        if unwound.frames.iter().any(|&a| !self.in_modules(a))
            && self.last_refresh.elapsed() >= MODULE_REFRESH
        {
            self.refresh_modules();
            unwound = self.unwinder.unwind(h.ip, h.sp, h.bp, stack, ip_is_return);
        }
        let cut = unwound.truncated && h.flags & FLAG_STACK_CUT != 0;
        self.tally.intern(&unwound.frames, cut || unwound.truncated)
    }

    fn in_modules(&self, addr: u64) -> bool {
        self.modules.iter().any(|m| m.avma.contains(&addr))
    }

    /// A library loaded after the session started: re-read the maps and add new binaries.
    fn refresh_modules(&mut self) {
        self.last_refresh = Instant::now();
        let Ok(maps) = read_maps(self.req.pid) else {
            return;
        };
        let known: HashSet<u64> = self.modules.iter().map(|m| m.avma.start).collect();
        let fresh: Vec<LoadedModule> = load_modules(self.req.pid, &maps)
            .into_iter()
            .filter(|m| !known.contains(&m.avma.start))
            .collect();
        self.unwinder.add_modules(&fresh);
        self.modules.extend(fresh);
    }

    /// Keeps heap samples near [`TARGET_SAMPLES_PER_SECOND`] when no interval was asked for.
    fn adapt_sampling(&mut self) {
        let counters = self.probes.counters();
        let sampled = counters[CS_ALLOCS_SAMPLED as usize];
        // Over the time that really passed: a late tick must not look like a burst.
        let elapsed = self.last_adapt.elapsed().as_secs_f64().max(0.001);
        self.last_adapt = Instant::now();
        let per_second = (sampled.saturating_sub(self.last_sampled)) as f64 / elapsed;
        self.last_sampled = sampled;
        if self.req.source != CallSiteSource::Heap || self.req.sample_every.is_some() {
            return;
        }
        let target = TARGET_SAMPLES_PER_SECOND as f64;
        let next = if per_second > target && self.sample_every < MAX_SAMPLE_EVERY {
            // Jump straight to about the right interval.
            let factor = (per_second / target).ceil().max(2.0) as u32;
            self.sample_every
                .saturating_mul(factor.next_power_of_two())
                .min(MAX_SAMPLE_EVERY)
        } else if per_second * 2.0 < target * 0.8 && self.sample_every > 1 {
            // Halving still stays below the target, with a margin against see-sawing.
            self.sample_every / 2
        } else {
            return;
        };
        if self.probes.set_sample_every(next).is_ok() {
            self.sample_every = next;
        }
    }

    /// Names new frames and publishes the ranked report.
    fn publish(&mut self, symbols: &mut Symbols, started: Instant, state: SessionState) {
        let mut ranked: Vec<&tally::Site> = self
            .tally
            .sites()
            .iter()
            .filter(|s| s.figures.alloc_count > 0)
            .collect();
        ranked.sort_by(|a, b| {
            (b.figures.outstanding_bytes, b.figures.allocated_bytes)
                .cmp(&(a.figures.outstanding_bytes, a.figures.allocated_bytes))
        });
        ranked.truncate(MAX_REPORTED_SITES);
        let unnamed: Vec<u64> = ranked
            .iter()
            .flat_map(|s| s.stack.iter().take(MAX_REPORTED_FRAMES).copied())
            .filter(|&a| !symbols.is_named(a))
            .collect();
        symbols.resolve(unnamed, &self.modules);
        let sites: Vec<CallSite> = ranked
            .iter()
            .map(|s| {
                let mut frames: Vec<_> = s
                    .stack
                    .iter()
                    .flat_map(|&a| symbols.frames(a))
                    .take(MAX_REPORTED_FRAMES)
                    .collect();
                if s.stack.is_empty() {
                    frames.push(memmon_common::callsites::Frame {
                        function: Some("[other stacks]".into()),
                        ..Default::default()
                    });
                }
                CallSite {
                    outstanding_bytes: s.figures.outstanding_bytes,
                    outstanding_count: s.figures.outstanding_count,
                    allocated_bytes: s.figures.allocated_bytes,
                    alloc_count: s.figures.alloc_count,
                    frames,
                    truncated: s.truncated,
                }
            })
            .collect();
        let (outstanding, allocated) = self.tally.sites().iter().fold((0u64, 0u64), |(o, a), s| {
            (
                o.saturating_add(s.figures.outstanding_bytes),
                a.saturating_add(s.figures.allocated_bytes),
            )
        });
        let counters = self.probes.counters();
        let mut stats = self.stats.clone();
        stats.allocs_seen = counters[CS_ALLOCS_SEEN as usize];
        stats.allocs_sampled = counters[CS_ALLOCS_SAMPLED as usize];
        stats.frees_seen = counters[CS_FREES_SEEN as usize];
        stats.lost_records = counters[CS_RING_FULL as usize];
        stats.lost_blocks = counters[CS_LIVE_FULL as usize].saturating_add(self.tally.untracked);
        stats.no_stack = counters[CS_NO_STACK as usize];
        stats.distinct_stacks = self.tally.distinct_stacks();
        stats.merged_stacks = self.tally.merged_stacks;
        let mut report = lock(&self.shared.report);
        report.state = state;
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        if report.source == CallSiteSource::Heap {
            report.sample_every = self.sample_every;
        }
        report.stats = stats;
        report.outstanding_bytes = outstanding;
        report.allocated_bytes = allocated;
        report.sites = sites;
    }
}

fn decode_header(record: &[u8]) -> Option<CallSiteHeader> {
    let bytes = record.get(..CALL_SITE_HEADER_BYTES)?;
    let u32_at = |o: usize| u32::from_ne_bytes(bytes[o..o + 4].try_into().unwrap_or_default());
    let u64_at = |o: usize| u64::from_ne_bytes(bytes[o..o + 8].try_into().unwrap_or_default());
    Some(CallSiteHeader {
        kind: u32_at(0),
        stack_len: u32_at(4),
        tid: u32_at(8),
        flags: u32_at(12),
        time_ns: u64_at(16),
        addr: u64_at(24),
        len: u64_at(32),
        aux: u64_at(40),
        aux2: u64_at(48),
        weight: u64_at(56),
        ip: u64_at(64),
        sp: u64_at(72),
        bp: u64_at(80),
    })
}

fn page_up(len: u64) -> u64 {
    len.saturating_add(PAGE - 1) & !(PAGE - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_decode_field_by_field() {
        let h = CallSiteHeader {
            kind: KIND_MMAP,
            stack_len: 8,
            tid: 7,
            flags: FLAG_STACK_CUT,
            time_ns: 1,
            addr: 2,
            len: 3,
            aux: 4,
            aux2: 5,
            weight: 6,
            ip: 7,
            sp: 8,
            bp: 9,
        };
        // SAFETY: a repr(C) header of plain integers viewed as its bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts((&raw const h).cast::<u8>(), CALL_SITE_HEADER_BYTES)
        };
        assert_eq!(decode_header(bytes), Some(h));
        assert_eq!(decode_header(&bytes[..10]), None);
    }

    #[test]
    fn bad_requests_are_refused_before_anything_is_loaded() {
        let req = |pid, seconds, sample_every| SessionRequest {
            pid,
            source: CallSiteSource::Heap,
            seconds,
            sample_every,
        };
        let me = std::process::id();
        assert!(matches!(
            Session::start(req(me, 0, None)),
            Err(CallSiteError::InvalidSeconds(0))
        ));
        assert!(matches!(
            Session::start(req(me, 601, None)),
            Err(CallSiteError::InvalidSeconds(601))
        ));
        assert!(matches!(
            Session::start(req(me, 5, Some(0))),
            Err(CallSiteError::InvalidSample)
        ));
        assert!(matches!(
            Session::start(req(0, 5, None)),
            Err(CallSiteError::NoSuchProcess(0))
        ));
    }
}
