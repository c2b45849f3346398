//! The memory controller's files, cgroup v2 and v1: where the hierarchies are mounted, and
//! parsers for each file (pure, tested on files recorded from real systems).
//!
//! Files are opened once per cgroup and re-read with `pread` at offset 0 (the kernel regenerates
//! a cgroup file's content on every read from the start); that costs about a seventh of an
//! open/read/close, whose path walk dominates (BENCHMARKS.md, "Apps").

use std::{
    fs::File,
    io,
    os::unix::fs::FileExt as _,
    path::{Path, PathBuf},
};

use memmon_common::apps::{CgroupMemory, CgroupPressure, CgroupVersion, MemoryEvents};

/// Where the cgroup hierarchies memmon reads are mounted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mounts {
    /// The cgroup2 mount, and whether the memory controller is enabled on it.
    pub unified: Option<Mount>,
    pub unified_has_memory: bool,
    /// The v1 hierarchy with the memory controller.
    pub memory_v1: Option<Mount>,
    /// The v1 `name=systemd` hierarchy.
    pub systemd_v1: Option<Mount>,
    /// This process runs in a cgroup namespace of its own (a hardened service, a container):
    /// then `/` in `/proc/<pid>/cgroup` is the namespace's root, not the whole machine.
    pub cgroup_namespace: bool,
}

/// The inode of the initial cgroup namespace (`PROC_CGROUP_INIT_INO`, fixed in the kernel).
const INITIAL_CGROUP_NAMESPACE: u64 = 0xEFFF_FFFB;

/// One mount of a cgroup hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub point: PathBuf,
    /// The cgroup the mount shows as its root (`/` unless a sub-tree was bind-mounted).
    pub root: String,
}

impl Mount {
    /// The directory of the cgroup at `path` (as `/proc/<pid>/cgroup` names it).
    pub fn dir(&self, path: &str) -> Option<PathBuf> {
        let relative = if self.root == "/" {
            path
        } else {
            path.strip_prefix(self.root.as_str())
                .filter(|r| r.is_empty() || r.starts_with('/'))?
        };
        let relative = relative.trim_start_matches('/');
        Some(if relative.is_empty() {
            self.point.clone()
        } else {
            self.point.join(relative)
        })
    }
}

impl Mounts {
    /// Reads `/proc/self/mountinfo`.
    pub fn discover() -> Mounts {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts = Mounts::parse(&mountinfo);
        use std::os::unix::fs::MetadataExt as _;
        mounts.cgroup_namespace = std::fs::metadata("/proc/self/ns/cgroup")
            .is_ok_and(|m| m.ino() != INITIAL_CGROUP_NAMESPACE);
        if let Some(unified) = &mounts.unified {
            let controllers = std::fs::read_to_string(unified.point.join("cgroup.controllers"))
                .unwrap_or_default();
            mounts.unified_has_memory = controllers.split_whitespace().any(|c| c == "memory");
        }
        mounts
    }

    /// Parses mountinfo lines: `ID PARENT MAJ:MIN ROOT POINT OPTS [TAGS] - FSTYPE SOURCE SUPER`.
    pub fn parse(mountinfo: &str) -> Mounts {
        let mut mounts = Mounts::default();
        for line in mountinfo.lines() {
            let Some((before, after)) = line.split_once(" - ") else {
                continue;
            };
            let fields: Vec<&str> = before.split(' ').collect();
            let mut tail = after.split(' ');
            let (Some(fstype), _source, Some(options)) = (tail.next(), tail.next(), tail.next())
            else {
                continue;
            };
            let (Some(root), Some(point)) = (fields.get(3), fields.get(4)) else {
                continue;
            };
            let mount = Mount {
                point: PathBuf::from(unescape_mount(point)),
                root: unescape_mount(root),
            };
            match fstype {
                "cgroup2" if mounts.unified.is_none() => mounts.unified = Some(mount),
                "cgroup" => {
                    let opts: Vec<&str> = options.split(',').collect();
                    if opts.contains(&"memory") && mounts.memory_v1.is_none() {
                        mounts.memory_v1 = Some(mount);
                    } else if opts.contains(&"name=systemd") && mounts.systemd_v1.is_none() {
                        mounts.systemd_v1 = Some(mount);
                    }
                }
                _ => {}
            }
        }
        mounts
    }

    /// A sentence for the status bar: how memory is accounted here.
    pub fn describe(&self) -> &'static str {
        match (self.unified_has_memory, self.memory_v1.is_some()) {
            (true, _) => "cgroup v2 memory controller",
            (false, true) => "cgroup v1 memory controller",
            (false, false) => "no memory controller mounted: sums of process RSS only",
        }
    }
}

/// mountinfo escapes space, tab, newline and backslash as octal `\NNN`.
fn unescape_mount(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(octal) = bytes.get(i + 1..i + 4)
            && octal.iter().all(|b| (b'0'..=b'7').contains(b))
        {
            out.push((octal[0] - b'0') * 64 + (octal[1] - b'0') * 8 + (octal[2] - b'0'));
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Values at or above this are "no limit" (v1 prints `PAGE_COUNTER_MAX` pages as bytes).
const UNLIMITED: u64 = 1 << 62;

/// The open files of one cgroup's memory controller.
pub struct MemoryFiles {
    version: CgroupVersion,
    /// `memory.current` / `memory.usage_in_bytes`: read every tick.
    current: File,
    /// The rest, re-read every few ticks.
    stat: Option<File>,
    peak: Option<File>,
    swap: Option<File>,
    limit: Option<File>,
    high: Option<File>,
    events: Option<File>,
    oom_control: Option<File>,
    /// v1 with swap accounting: a charge that hits the memory+swap limit counts here.
    memsw_failcnt: Option<File>,
    kmem: Option<File>,
    /// `memory.pressure` (v2; on hybrid systems the cgroup2 mirror of the unit has it).
    pressure: Option<File>,
}

impl MemoryFiles {
    /// Opens the memory files of the cgroup at `dir`; `pressure` is the cgroup's
    /// `memory.pressure` when it lives elsewhere (the cgroup2 mirror on a hybrid system).
    pub fn open(dir: &Path, version: CgroupVersion, pressure: Option<&Path>) -> io::Result<Self> {
        let open = |name: &str| File::open(dir.join(name)).ok();
        let files = match version {
            CgroupVersion::V2 => MemoryFiles {
                version,
                current: File::open(dir.join("memory.current"))?,
                stat: open("memory.stat"),
                peak: open("memory.peak"),
                swap: open("memory.swap.current"),
                limit: open("memory.max"),
                high: open("memory.high"),
                events: open("memory.events"),
                oom_control: None,
                memsw_failcnt: None,
                kmem: None,
                pressure: open("memory.pressure"),
            },
            CgroupVersion::V1 => MemoryFiles {
                version,
                current: File::open(dir.join("memory.usage_in_bytes"))?,
                stat: open("memory.stat"),
                peak: open("memory.max_usage_in_bytes"),
                swap: None,
                limit: open("memory.limit_in_bytes"),
                high: None,
                events: open("memory.failcnt"),
                oom_control: open("memory.oom_control"),
                memsw_failcnt: open("memory.memsw.failcnt"),
                kmem: open("memory.kmem.usage_in_bytes"),
                pressure: pressure.and_then(|p| File::open(p).ok()),
            },
        };
        Ok(files)
    }

    /// `current` only (the per-tick read). `None` once the cgroup is gone.
    pub fn read_current(&self, buf: &mut Vec<u8>) -> Option<u64> {
        let n = read(&self.current, buf).ok()?;
        parse_number(&buf[..n]).map(|b| b / 1024)
    }

    /// Everything, into `memory` (whose `current_kb` the caller set).
    pub fn read_details(&self, buf: &mut Vec<u8>, memory: &mut CgroupMemory) {
        memory.version = Some(self.version);
        let mut number = |file: &Option<File>| -> Option<u64> {
            let n = read(file.as_ref()?, buf).ok()?;
            parse_number(&buf[..n])
        };
        memory.peak_kb = number(&self.peak).map(|b| b / 1024);
        memory.limit_kb = number(&self.limit)
            .filter(|&b| b < UNLIMITED)
            .map(|b| b / 1024);
        memory.high_kb = number(&self.high)
            .filter(|&b| b < UNLIMITED)
            .map(|b| b / 1024);
        memory.swap_kb = number(&self.swap).map(|b| b / 1024);
        memory.kernel_kb = number(&self.kmem).map(|b| b / 1024);
        match self.version {
            CgroupVersion::V2 => {
                if let Some(text) = self.text(&self.events, buf) {
                    memory.events = parse_events_v2(&text);
                }
            }
            CgroupVersion::V1 => {
                // The memory limit's and the memory+swap limit's (checked first) hits. Recent
                // kernels (6.18 here) leave both at 0 even when a charge fails; then a peak at
                // the limit counts as (at least) one hit.
                let failed =
                    number(&self.events).unwrap_or(0) + number(&self.memsw_failcnt).unwrap_or(0);
                let reached =
                    matches!((memory.peak_kb, memory.limit_kb), (Some(p), Some(l)) if p >= l);
                memory.events.max = failed.max(u64::from(reached));
                if let Some(text) = self.text(&self.oom_control, buf) {
                    let (oom, oom_kill) = parse_oom_control(&text);
                    memory.events.oom = oom;
                    memory.events.oom_kill = oom_kill;
                }
            }
        }
        if let Some(text) = self.text(&self.stat, buf) {
            apply_stat(self.version, &text, memory);
        }
        memory.pressure = self
            .text(&self.pressure, buf)
            .and_then(|t| parse_pressure(&t));
    }

    fn text(&self, file: &Option<File>, buf: &mut Vec<u8>) -> Option<String> {
        let n = read(file.as_ref()?, buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }
}

/// Reads a whole cgroup file from offset 0 into `buf` (one `pread` unless it is longer than the
/// buffer); returns how many bytes it holds. The
/// buffer keeps its length between reads (8 KiB, more only for a longer file), so a read costs
/// no allocation and no clearing.
fn read(file: &File, buf: &mut Vec<u8>) -> io::Result<usize> {
    if buf.len() < 8 * 1024 {
        buf.resize(8 * 1024, 0);
    }
    let mut filled = 0;
    loop {
        let room = buf.len() - filled;
        let n = file.read_at(&mut buf[filled..], filled as u64)?;
        filled += n;
        // A cgroup file is generated whole on each read from 0: a read that did not fill the
        // room it had was the end (this saves the second, empty read).
        if n < room {
            break;
        }
        if filled == buf.len() {
            if buf.len() >= 256 * 1024 {
                break; // No memory file is this long; stop rather than grow without bound.
            }
            buf.resize(buf.len() * 2, 0);
        }
    }
    Ok(filled)
}

/// A single number (`max` and anything unparsable are `None`).
pub fn parse_number(text: &[u8]) -> Option<u64> {
    std::str::from_utf8(text).ok()?.trim().parse().ok()
}

fn key_values(text: &str) -> impl Iterator<Item = (&str, u64)> {
    text.lines().filter_map(|line| {
        let (key, value) = line.split_once(' ')?;
        Some((key, value.trim().parse().ok()?))
    })
}

/// `memory.events` (v2): `low N`, `high N`, `max N`, `oom N`, `oom_kill N`, ….
pub fn parse_events_v2(text: &str) -> MemoryEvents {
    let mut events = MemoryEvents::default();
    for (key, value) in key_values(text) {
        match key {
            "low" => events.low = value,
            "high" => events.high = value,
            "max" => events.max = value,
            "oom" => events.oom = value,
            "oom_kill" => events.oom_kill = value,
            _ => {}
        }
    }
    events
}

/// v1 `memory.oom_control`: `under_oom` (as an OOM that is happening) and `oom_kill`.
pub fn parse_oom_control(text: &str) -> (u64, u64) {
    let (mut under, mut kills) = (0, 0);
    for (key, value) in key_values(text) {
        match key {
            "under_oom" => under = value,
            "oom_kill" => kills = value,
            _ => {}
        }
    }
    (under, kills)
}

/// Fills the `memory.stat` fields: v2 `anon file kernel shmem sock`; v1 the hierarchical
/// `total_rss total_cache total_shmem total_swap` (with `rss_huge` inside `rss` on v1).
pub fn apply_stat(version: CgroupVersion, text: &str, memory: &mut CgroupMemory) {
    let kb = |v: u64| Some(v / 1024);
    for (key, value) in key_values(text) {
        match (version, key) {
            (CgroupVersion::V2, "anon") | (CgroupVersion::V1, "total_rss") => {
                memory.anon_kb = kb(value);
            }
            (CgroupVersion::V2, "file") | (CgroupVersion::V1, "total_cache") => {
                memory.file_kb = kb(value);
            }
            (CgroupVersion::V2, "kernel") => memory.kernel_kb = kb(value),
            (CgroupVersion::V2, "shmem") | (CgroupVersion::V1, "total_shmem") => {
                memory.shmem_kb = kb(value);
            }
            (CgroupVersion::V2, "sock") => memory.sock_kb = kb(value),
            (CgroupVersion::V1, "total_swap") => memory.swap_kb = kb(value),
            _ => {}
        }
    }
}

/// `memory.pressure`: `some avg10=… avg60=… avg300=… total=…` and the `full` line.
pub fn parse_pressure(text: &str) -> Option<CgroupPressure> {
    let mut pressure = CgroupPressure::default();
    let mut seen = false;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let which = fields.next();
        let (mut avg10, mut total) = (None, None);
        for field in fields {
            if let Some(v) = field.strip_prefix("avg10=") {
                avg10 = v.parse::<f64>().ok().filter(|v| v.is_finite());
            } else if let Some(v) = field.strip_prefix("total=") {
                total = v.parse::<u64>().ok();
            }
        }
        let (Some(avg10), Some(total)) = (avg10, total) else {
            continue;
        };
        match which {
            Some("some") => {
                (pressure.some_avg10, pressure.some_total_us) = (avg10, total);
                seen = true;
            }
            Some("full") => (pressure.full_avg10, pressure.full_total_us) = (avg10, total),
            _ => {}
        }
    }
    seen.then_some(pressure)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded on a Fedora 40 desktop (cgroup v2), from
    /// `/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-org.gnome.Nautilus-4242.scope`.
    const V2_STAT: &str = "anon 52236288\nfile 187195392\nkernel 9498624\nkernel_stack 425984\npagetables 1863680\nsec_pagetables 0\npercpu 1440\nsock 4096\nvmalloc 24576\nshmem 2633728\nzswap 0\nzswapped 0\nfile_mapped 97366016\nfile_dirty 0\nfile_writeback 0\nswapcached 0\nanon_thp 0\nfile_thp 0\nshmem_thp 0\ninactive_anon 0\nactive_anon 54820864\ninactive_file 118697984\nactive_file 65863680\nunevictable 0\nslab_reclaimable 5856032\nslab_unreclaimable 1192440\nslab 7048472\n";
    const V2_EVENTS: &str = "low 0\nhigh 12\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n";
    const V2_PRESSURE: &str = "some avg10=1.25 avg60=0.40 avg300=0.08 total=1234567\nfull avg10=0.50 avg60=0.10 avg300=0.02 total=654321\n";
    /// This machine's v1 `memory.stat` (Linux 6.18, hybrid hierarchy), abridged.
    const V1_STAT: &str = "cache 100818944\nrss 1986560\nrss_huge 0\nshmem 0\nmapped_file 32768\nswap 0\nhierarchical_memory_limit 9223372036854771712\ntotal_cache 100818944\ntotal_rss 1986560\ntotal_rss_huge 0\ntotal_shmem 4096\ntotal_mapped_file 32768\ntotal_swap 8192\n";

    #[test]
    fn v2_files_recorded_from_a_real_system_parse() {
        let mut m = CgroupMemory::default();
        apply_stat(CgroupVersion::V2, V2_STAT, &mut m);
        assert_eq!(m.anon_kb, Some(52236288 / 1024));
        assert_eq!(m.file_kb, Some(187195392 / 1024));
        assert_eq!(m.kernel_kb, Some(9498624 / 1024));
        assert_eq!(m.shmem_kb, Some(2633728 / 1024));
        assert_eq!(m.sock_kb, Some(4));
        let e = parse_events_v2(V2_EVENTS);
        assert_eq!((e.low, e.high, e.max, e.oom, e.oom_kill), (0, 12, 3, 1, 1));
        let p = parse_pressure(V2_PRESSURE).expect("psi");
        assert_eq!((p.some_avg10, p.full_avg10), (1.25, 0.5));
        assert_eq!((p.some_total_us, p.full_total_us), (1234567, 654321));
        assert_eq!(parse_number(b"max\n"), None);
        assert_eq!(parse_number(b"268435456\n"), Some(268435456));
    }

    #[test]
    fn v1_files_parse() {
        let mut m = CgroupMemory::default();
        apply_stat(CgroupVersion::V1, V1_STAT, &mut m);
        assert_eq!(m.anon_kb, Some(1986560 / 1024));
        assert_eq!(m.file_kb, Some(100818944 / 1024));
        assert_eq!((m.shmem_kb, m.swap_kb), (Some(4), Some(8)));
        assert_eq!(m.kernel_kb, None);
        assert_eq!(
            parse_oom_control("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            (0, 2)
        );
        assert_eq!(parse_pressure("garbage\n"), None);
    }

    #[test]
    fn mounts_of_a_hybrid_and_a_unified_system() {
        let hybrid = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n\
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        let m = Mounts::parse(hybrid);
        assert_eq!(
            m.memory_v1.as_ref().map(|m| m.point.clone()),
            Some("/sys/fs/cgroup/memory".into())
        );
        assert_eq!(
            m.systemd_v1.as_ref().map(|m| m.point.clone()),
            Some("/sys/fs/cgroup/systemd".into())
        );
        assert_eq!(
            m.unified.as_ref().map(|m| m.point.clone()),
            Some("/sys/fs/cgroup/unified".into())
        );
        let unified = Mounts::parse(
            "29 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n",
        );
        assert_eq!(unified.memory_v1, None);
        let mount = unified.unified.expect("cgroup2");
        assert_eq!(
            mount.dir("/user.slice/a.scope"),
            Some("/sys/fs/cgroup/user.slice/a.scope".into())
        );
        assert_eq!(mount.dir("/"), Some("/sys/fs/cgroup".into()));
        let sub = Mount {
            point: "/mnt/cg".into(),
            root: "/lxc/c1".into(),
        };
        assert_eq!(
            sub.dir("/lxc/c1/app.scope"),
            Some("/mnt/cg/app.scope".into())
        );
        assert_eq!(sub.dir("/elsewhere"), None);
        assert_eq!(sub.dir("/lxc/c10/x"), None);
        assert_eq!(unescape_mount("/a\\040b"), "/a b");
    }
}
