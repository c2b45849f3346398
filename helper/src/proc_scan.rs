//! The /proc scanner: every process's memory figures from `/proc/<pid>/status`, identified by PID
//! and start time.
//!
//! Each process's `/proc/<pid>` directory is opened once (procfs's `Process`, an `O_PATH` fd) and
//! kept while the process lives; later reads are relative to that fd, so a PID reused by a new
//! process can never be read as the old one: the old fd just stops answering. The start time
//! (`stat`) is therefore read once per process, and a tick costs one open/read/close of `status`
//! per process. A process that vanishes mid-scan is skipped, never an error.
//!
//! This module must stay free of eBPF and of anything needing privileges: the GUI's embedded
//! mode runs it as the user.

use std::{
    borrow::Cow,
    collections::HashMap,
    fs,
    io::{self, Read as _},
};

use memmon_common::{process_key::ProcessKey, text::escape_name};
use procfs::{ProcError, process::Process};

/// Memory figures of one process at one tick, in KiB as /proc reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcSample {
    pub pid: u32,
    pub start_time: u64,
    pub name: String,
    pub status: StatusFields,
}

/// The fields memmon reads from `/proc/<pid>/status` (all in KiB; absent for kernel threads).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusFields {
    pub vm_rss: Option<u64>,
    pub vm_size: Option<u64>,
    pub vm_hwm: Option<u64>,
    pub rss_anon: Option<u64>,
    pub rss_file: Option<u64>,
    pub rss_shmem: Option<u64>,
    pub vm_swap: Option<u64>,
    /// `PPid:` — the parent (0 for the namespace's init). Read with the rest of `status`, so a
    /// reparenting shows within [`STATUS_REFRESH_TICKS`] ticks.
    pub ppid: Option<u32>,
    /// `Uid:`'s first field: the real user ID (who may signal it, who owns it).
    pub uid: Option<u32>,
}

impl StatusFields {
    /// Parses the memory lines (and `PPid:`) of a `status` file and returns the `Name:` value's byte range.
    ///
    /// procfs's `Status` parser builds a map of every line (two allocations each), which costs
    /// 1.5× the read itself (BENCHMARKS.md); this reads the nine fields memmon needs in place.
    pub fn parse(text: &[u8]) -> (StatusFields, Option<std::ops::Range<usize>>) {
        let mut fields = StatusFields::default();
        let mut name = None;
        let mut offset = 0;
        for line in text.split(|&b| b == b'\n') {
            let start = offset;
            offset += line.len() + 1;
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let (key, rest) = (&line[..colon], &line[colon + 1..]);
            let slot = match key {
                b"Name" => {
                    let skip = rest
                        .iter()
                        .take_while(|&&b| b == b'\t' || b == b' ')
                        .count();
                    name = Some(start + colon + 1 + skip..start + line.len());
                    continue;
                }
                b"PPid" => {
                    fields.ppid = parse_kb(rest).and_then(|p| u32::try_from(p).ok());
                    continue;
                }
                b"Uid" => {
                    fields.uid = parse_kb(rest).and_then(|u| u32::try_from(u).ok());
                    continue;
                }
                b"VmRSS" => &mut fields.vm_rss,
                b"VmSize" => &mut fields.vm_size,
                b"VmHWM" => &mut fields.vm_hwm,
                b"RssAnon" => &mut fields.rss_anon,
                b"RssFile" => &mut fields.rss_file,
                b"RssShmem" => &mut fields.rss_shmem,
                b"VmSwap" => &mut fields.vm_swap,
                _ => continue,
            };
            *slot = parse_kb(rest);
        }
        (fields, name)
    }
}

/// `"   1234 kB"` → 1234.
fn parse_kb(value: &[u8]) -> Option<u64> {
    let digits = value.iter().skip_while(|b| b.is_ascii_whitespace());
    let mut n: u64 = 0;
    let mut any = false;
    for &b in digits {
        if !b.is_ascii_digit() {
            break;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        any = true;
    }
    any.then_some(n)
}

/// Why a scan could not run at all (a single process failing is never an error).
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot list /proc: {0}")]
    ListProc(#[source] io::Error),
}

/// `status` is re-read at least this often (ticks) even when `statm` shows no change, so a name
/// change (prctl) or swap movement without an RSS change is picked up.
const STATUS_REFRESH_TICKS: u64 = 10;

struct Tracked {
    /// `None` when no more directory fds could be kept open; then reads go by path.
    dir: Option<Process>,
    start_time: u64,
    seen_tick: u64,
    /// The last full reading of `status`, with the `statm` (size, resident) pages read just
    /// before it and the tick it was taken.
    last: Option<(ProcSample, (u64, u64), u64)>,
}

/// Scans /proc; keep one and call [`ProcScanner::scan`] every tick.
pub struct ProcScanner {
    tracked: HashMap<u32, Tracked>,
    tick: u64,
    buf: Vec<u8>,
    pids: Vec<u32>,
    /// How many `/proc/<pid>` directory fds may stay open.
    max_open_dirs: usize,
    open_dirs: usize,
}

impl Default for ProcScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcScanner {
    pub fn new() -> Self {
        let soft = raise_fd_limit();
        ProcScanner {
            tracked: HashMap::new(),
            tick: 0,
            buf: Vec::with_capacity(4096),
            pids: Vec::new(),
            // Leave room for everything else the process opens.
            max_open_dirs: soft.saturating_sub(256) as usize,
            open_dirs: 0,
        }
    }

    /// One pass over every process; `out` is cleared and refilled (its allocation reused).
    pub fn scan(&mut self, out: &mut Vec<ProcSample>) -> Result<(), ScanError> {
        self.tick += 1;
        out.clear();
        list_pids(&mut self.pids).map_err(ScanError::ListProc)?;
        let pids = std::mem::take(&mut self.pids);
        for &pid in &pids {
            if let Some(sample) = self.sample(pid) {
                out.push(sample);
            }
        }
        self.pids = pids;
        let tick = self.tick;
        let before = self.tracked.len();
        self.tracked.retain(|_, t| t.seen_tick == tick);
        if self.tracked.len() != before {
            self.open_dirs = self.tracked.values().filter(|t| t.dir.is_some()).count();
        }
        Ok(())
    }

    fn sample(&mut self, pid: u32) -> Option<ProcSample> {
        let tick = self.tick;
        if let Some(tracked) = self.tracked.get_mut(&pid) {
            tracked.seen_tick = tick;
            match sample_known(pid, tracked, tick, &mut self.buf) {
                Ok(sample) => return Some(sample),
                Err(_) => {
                    // Gone, or the PID now belongs to a new process: forget the old one.
                    if let Some(old) = self.tracked.remove(&pid)
                        && old.dir.is_some()
                    {
                        self.open_dirs -= 1;
                    }
                }
            }
        }
        self.sample_new(pid)
    }

    fn sample_new(&mut self, pid: u32) -> Option<ProcSample> {
        let dir = Process::new(pid as i32).ok()?;
        let start_time = dir.stat().ok()?.starttime;
        read_at(&dir, "status", &mut self.buf).ok()?;
        let keep = self.open_dirs < self.max_open_dirs;
        if keep {
            self.open_dirs += 1;
        }
        let sample = sample_from(pid, start_time, &self.buf);
        self.tracked.insert(
            pid,
            Tracked {
                dir: keep.then_some(dir),
                start_time,
                seen_tick: self.tick,
                last: None,
            },
        );
        Some(sample)
    }

    /// Reads `/proc/<pid>/<file>` of exactly the process `key` into `buf`: through the kept
    /// directory fd (so a reused PID cannot answer), else by path with the start time checked.
    pub fn read_file(&mut self, key: ProcessKey, file: &str, buf: &mut Vec<u8>) -> bool {
        match self.tracked.get(&key.pid) {
            Some(Tracked {
                dir: Some(dir),
                start_time,
                ..
            }) if *start_time == key.start_time => read_at(dir, file, buf).is_ok(),
            _ => open_process(key).is_some_and(|p| read_at(&p, file, buf).is_ok()),
        }
    }

    /// Processes currently tracked (for tests and diagnostics).
    pub fn tracked_count(&self) -> usize {
        self.tracked.len()
    }
}

/// A process seen before. The cheap `statm` (about half the kernel's cost of `status`) says
/// whether size or RSS moved; only then (or every [`STATUS_REFRESH_TICKS`]) is `status` read.
fn sample_known(
    pid: u32,
    tracked: &mut Tracked,
    tick: u64,
    buf: &mut Vec<u8>,
) -> Result<ProcSample, ProcError> {
    let Some(dir) = &tracked.dir else {
        read_status_by_path(pid, tracked.start_time, buf)?;
        return Ok(sample_from(pid, tracked.start_time, buf));
    };
    read_at(dir, "statm", buf)?;
    let statm = parse_statm(buf).ok_or(ProcError::Incomplete(None))?;
    if let Some((sample, at_status, status_tick)) = &tracked.last
        && *at_status == statm
        && tick - status_tick < STATUS_REFRESH_TICKS
    {
        return Ok(sample.clone());
    }
    read_at(dir, "status", buf)?;
    let sample = sample_from(pid, tracked.start_time, buf);
    tracked.last = Some((sample.clone(), statm, tick));
    Ok(sample)
}

/// `statm`'s first two fields: total program size and resident set, in pages.
fn parse_statm(text: &[u8]) -> Option<(u64, u64)> {
    let mut fields = text
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let mut number = || -> Option<u64> { std::str::from_utf8(fields.next()?).ok()?.parse().ok() };
    Some((number()?, number()?))
}

fn sample_from(pid: u32, start_time: u64, status: &[u8]) -> ProcSample {
    let (fields, name) = StatusFields::parse(status);
    // The name is chosen by the process's owner: escaped here, once, for every consumer.
    let name = name
        .and_then(|r| status.get(r))
        .map(|n| escape_name(&status_name_bytes(n)))
        .unwrap_or_default();
    ProcSample {
        pid,
        start_time,
        name,
        status: fields,
    }
}

/// The `comm` bytes behind `status`'s `Name:` value, which the kernel writes with `\\` for a
/// backslash and `\n` for a newline (and every other byte raw).
fn status_name_bytes(value: &[u8]) -> Cow<'_, [u8]> {
    if !value.contains(&b'\\') {
        return Cow::Borrowed(value);
    }
    let mut raw = Vec::with_capacity(value.len());
    let mut bytes = value.iter().copied();
    while let Some(b) = bytes.next() {
        match (b, bytes.clone().next()) {
            (b'\\', Some(b'\\')) => raw.push(b'\\'),
            (b'\\', Some(b'n')) => raw.push(b'\n'),
            _ => {
                raw.push(b);
                continue;
            }
        }
        bytes.next();
    }
    Cow::Owned(raw)
}

fn read_at(dir: &Process, file: &str, buf: &mut Vec<u8>) -> Result<(), ProcError> {
    let mut file = dir.open_relative(file)?;
    buf.clear();
    file.read_to_end(buf)?;
    Ok(())
}

/// The fallback when no directory fd is kept: read by path and re-check the start time so a
/// reused PID is still told apart.
fn read_status_by_path(pid: u32, start_time: u64, buf: &mut Vec<u8>) -> Result<(), ProcError> {
    let dir = Process::new(pid as i32)?;
    if dir.stat()?.starttime != start_time {
        return Err(ProcError::NotFound(None));
    }
    read_at(&dir, "status", buf)
}

fn list_pids(pids: &mut Vec<u32>) -> io::Result<()> {
    pids.clear();
    for entry in fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        if let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        {
            pids.push(pid);
        }
    }
    Ok(())
}

/// Raises the soft open-file limit to the hard one (one fd per live process is kept) and
/// returns the soft limit now in force.
fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur < lim.rlim_max {
        let want = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct; raising the soft limit up to the hard one is
        // always permitted.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            return want.rlim_cur;
        }
    }
    lim.rlim_cur
}

/// The process `key` names, if it still runs: the same PID **and** the same start time (the PID
/// with another start time is a process that reused the number). Later reads through the
/// returned handle use the same directory fd, so a reused PID cannot slip in between.
pub fn open_process(key: ProcessKey) -> Option<Process> {
    let process = Process::new(i32::try_from(key.pid).ok()?).ok()?;
    let stat = process.stat().ok()?;
    key.is(key.pid, stat.starttime).then_some(process)
}

/// Clock ticks per second, for converting /proc start times.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as u64 } else { 100 }
}

/// The system page size in bytes.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 { size as u64 } else { 4096 }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &[u8] = b"Name:\tmy prog\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t42\nPPid:\t7\nUid:\t1000\t1000\t1000\t1000\n\
VmPeak:\t   12345 kB\nVmSize:\t   12000 kB\nVmHWM:\t     900 kB\nVmRSS:\t     800 kB\n\
RssAnon:\t     500 kB\nRssFile:\t     280 kB\nRssShmem:\t      20 kB\nVmSwap:\t       7 kB\nThreads:\t1\n";

    #[test]
    fn parses_memory_fields_and_name() {
        let (f, name) = StatusFields::parse(STATUS);
        assert_eq!(&STATUS[name.expect("has a name")], b"my prog");
        assert_eq!(
            f,
            StatusFields {
                vm_rss: Some(800),
                vm_size: Some(12000),
                vm_hwm: Some(900),
                rss_anon: Some(500),
                rss_file: Some(280),
                rss_shmem: Some(20),
                vm_swap: Some(7),
                ppid: Some(7),
                uid: Some(1000),
            }
        );
    }

    #[test]
    fn names_are_escaped_after_undoing_the_kernels_status_escapes() {
        let name = |status: &[u8]| sample_from(1, 0, status).name;
        assert_eq!(
            name(b"Name:\t\x1b[31mevil\nVmRSS:\t4 kB\n"),
            "\\x1b[31mevil"
        );
        // status shows a backslash as `\\` and a newline as `\n`: the name holds one of each.
        assert_eq!(name(b"Name:\ta\\\\b\\nc\n"), "a\\\\b\\x0ac");
        assert_eq!(
            name(b"Name:\tx\xff\xe2\x80\xae\x7f\n"),
            "x\\xff\\xe2\\x80\\xae\\x7f"
        );
        assert_eq!(name(b"Name:\tbash\n"), "bash");
        assert_eq!(status_name_bytes(b"a\\"), &b"a\\"[..]);
    }

    #[test]
    fn a_process_renaming_itself_with_escapes_is_seen_escaped() {
        // The real kernel path: a thread's comm as /proc/<pid>/status shows it.
        let handle = std::thread::spawn(|| {
            let comm = c"\x1b]0;t\x07a\\b\n\xc2\x9b";
            // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
            assert_eq!(unsafe { libc::prctl(libc::PR_SET_NAME, comm.as_ptr()) }, 0);
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() };
            let status = fs::read(format!("/proc/self/task/{tid}/status")).expect("status");
            sample_from(1, 0, &status).name
        });
        let name = handle.join().expect("thread");
        assert_eq!(name, "\\x1b]0;t\\x07a\\\\b\\x0a\\xc2\\x9b");
    }

    #[test]
    fn kernel_thread_has_no_memory_fields() {
        let (f, name) = StatusFields::parse(b"Name:\tkworker/0:1\nState:\tI (idle)\nThreads:\t1\n");
        assert_eq!(f, StatusFields::default());
        assert!(name.is_some());
    }

    #[test]
    fn agrees_with_procfs_on_this_machine() {
        // Our in-place parser must read exactly what procfs's full parser reads.
        let me = Process::myself().expect("own /proc entry");
        let full = me.status().expect("procfs parses status");
        let mut buf = Vec::new();
        read_at(&me, "status", &mut buf).expect("read status");
        let (f, name) = StatusFields::parse(&buf);
        assert_eq!(&buf[name.expect("name")], full.name.as_bytes());
        // RSS can move between the two reads; the size fields of an idle test thread do not.
        assert_eq!(f.vm_hwm.is_some(), full.vmhwm.is_some());
        assert_eq!(f.rss_shmem.is_some(), full.rssshmem.is_some());
        assert_eq!(f.vm_swap, full.vmswap);
    }

    #[test]
    fn parses_statm() {
        assert_eq!(parse_statm(b"1234 567 89 1 0 300 0\n"), Some((1234, 567)));
        assert_eq!(parse_statm(b"0 0 0 0 0 0 0\n"), Some((0, 0)));
        assert_eq!(parse_statm(b"12\n"), None);
        assert_eq!(parse_statm(b"x y\n"), None);
    }

    #[test]
    fn a_growing_process_is_re_read_at_once() {
        // A child that grows its RSS between two scans must show the new RSS and peak on the
        // very next scan (the statm shortcut must not hide it).
        let mut scanner = ProcScanner::new();
        let mut out = Vec::new();
        let mut child = std::process::Command::new("python3")
            .args(["-c", "import sys,time\nsys.stdin.readline()\nb=bytearray(64<<20)\nprint('grown',flush=True)\nsys.stdin.readline()"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn python3");
        let pid = child.id();
        std::thread::sleep(std::time::Duration::from_millis(300));
        scanner.scan(&mut out).expect("scan");
        scanner.scan(&mut out).expect("scan");
        let small = out
            .iter()
            .find(|s| s.pid == pid)
            .expect("child")
            .status
            .vm_rss
            .expect("rss");
        use std::io::{BufRead as _, Write as _};
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"\n").expect("write");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read");
        scanner.scan(&mut out).expect("scan");
        let row = out.iter().find(|s| s.pid == pid).expect("child").status;
        assert!(
            row.vm_rss.expect("rss") >= small + 60 * 1024,
            "{small} -> {row:?}"
        );
        assert!(row.vm_hwm.expect("hwm") >= row.vm_rss.expect("rss"));
        drop(stdin);
        child.wait().expect("reap");
    }

    #[test]
    fn garbage_yields_none_not_panic() {
        let (f, _) = StatusFields::parse(
            b"VmRSS:\tlots kB\nVmSize\nVmHWM:\t99999999999999999999999 kB\n:::\n",
        );
        assert_eq!(f.vm_rss, None);
        assert_eq!(f.vm_hwm, None);
        assert_eq!(parse_kb(b"  12 kB"), Some(12));
    }

    #[test]
    fn scan_sees_itself_and_a_child_that_exits() {
        let mut scanner = ProcScanner::new();
        let mut out = Vec::new();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        scanner.scan(&mut out).expect("scan");
        let me = std::process::id();
        let mine = out.iter().find(|s| s.pid == me).expect("own row");
        assert!(mine.status.vm_rss.unwrap_or(0) > 0);
        let child_pid = child.id();
        let row = out.iter().find(|s| s.pid == child_pid).expect("child row");
        assert_eq!(row.name, "sleep");
        child.kill().expect("kill");
        child.wait().expect("reap");
        scanner.scan(&mut out).expect("scan");
        assert!(
            out.iter().all(|s| s.pid != child_pid),
            "exited child still listed"
        );
        assert!(scanner.tracked_count() <= out.len() + 1);
    }
}
