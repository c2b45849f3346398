//! Loads memmon's eBPF programs, attaches them to their tracepoints and reads the per-process
//! maps. Dropping the [`Tracker`] detaches every program.
//!
//! It never decides what the user sees: it returns what the kernel recorded, and the collector
//! merges it with /proc (including the PID-reuse guard).

use std::{collections::HashSet, fs};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array as BpfArray, HashMap as BpfHashMap, MapData, PerCpuArray},
    programs::{TracePoint, trace_point::TracePointLinkId},
};
use memmon_common::{
    GLOBAL_EXIT_GROUP_DEAD_OFFSET, GLOBAL_PAGE_SIZE, GLOBAL_PIDNS_DEV, GLOBAL_PIDNS_INO, MAP_DROPS,
    MAP_OOM_VICTIMS, MAP_PROCS, MAP_RSS_WATCH, OomVictim, ProcRecord, RssWatch,
};

/// The object built by build.rs (empty when bpf-linker was missing at build time).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/memmon"));

/// Benchmark baseline: empty programs on the same tracepoints (see `ebpf/src/empty.rs`).
static EMPTY_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/memmon-empty"));

/// (program, category, tracepoint)
const PROGRAMS: [(&str, &str, &str); 4] = [
    ("memmon_exit_mmap", "syscalls", "sys_exit_mmap"),
    ("memmon_exit_munmap", "syscalls", "sys_exit_munmap"),
    ("memmon_exit_brk", "syscalls", "sys_exit_brk"),
    ("memmon_process_exit", "sched", "sched_process_exit"),
];

#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    #[error(
        "this build of memmon-helper has no eBPF programs (bpf-linker was not installed when it \
         was built)"
    )]
    NoObject,
    #[error("eBPF needs root (CAP_BPF and CAP_PERFMON); running as uid {uid}")]
    NotRoot { uid: u32 },
    #[error("the kernel refused to load memmon's eBPF programs: {0}")]
    Load(#[source] aya::EbpfError),
    #[error("cannot attach {program} to {category}:{name}: {source}")]
    Attach {
        program: &'static str,
        category: &'static str,
        name: &'static str,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    #[error("the eBPF object lacks {0}")]
    Missing(&'static str),
    #[error("cannot use eBPF map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
}

/// Loads and attaches the empty baseline programs (benchmarks only); dropping the result
/// detaches them.
#[doc(hidden)]
pub fn attach_empty_baseline() -> Result<Ebpf, TrackerError> {
    if EMPTY_OBJECT.is_empty() {
        return Err(TrackerError::NoObject);
    }
    let mut ebpf = EbpfLoader::new()
        .load(EMPTY_OBJECT)
        .map_err(TrackerError::Load)?;
    attach_all(&mut ebpf, "empty_")?;
    Ok(ebpf)
}

pub struct Tracker {
    // Keeps programs and links alive; dropping it detaches them.
    ebpf: Ebpf,
    procs: BpfHashMap<MapData, u32, ProcRecord>,
    drops: PerCpuArray<MapData, u64>,
    /// OOM victims named by `oom:mark_victim`; `None` when that program is not attached (the
    /// collector then falls back to the `oom_kill` counter).
    oom: Option<BpfHashMap<MapData, u32, OomVictim>>,
    /// High-resolution RSS of one process (`kmem:rss_stat`), or why it is not available.
    rss_watch: Result<BpfArray<MapData, RssWatch>, String>,
    /// Attached only while a process is watched: the program runs on every RSS change.
    rss_link: Option<TracePointLinkId>,
}

impl Tracker {
    /// Loads and attaches everything, or says exactly why not.
    pub fn start(page_size: u64) -> Result<Tracker, TrackerError> {
        if OBJECT.is_empty() {
            return Err(TrackerError::NoObject);
        }
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        if uid == 0 {
            ensure_tracefs();
        }
        let group_dead_offset = exit_group_dead_offset();
        let (pidns_dev, pidns_ino) = own_pid_namespace();
        let entries = tracked_processes();
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(MAP_PROCS, entries)
            .override_global(GLOBAL_PAGE_SIZE, &page_size, true)
            .override_global(GLOBAL_EXIT_GROUP_DEAD_OFFSET, &group_dead_offset, true)
            .override_global(GLOBAL_PIDNS_DEV, &pidns_dev, true)
            .override_global(GLOBAL_PIDNS_INO, &pidns_ino, true)
            .load(OBJECT)
            .map_err(|e| match e {
                _ if uid != 0 => TrackerError::NotRoot { uid },
                e => TrackerError::Load(e),
            })?;
        attach_all(&mut ebpf, "memmon_")?;
        let procs = take_map(&mut ebpf, MAP_PROCS)?;
        let drops = take_map(&mut ebpf, MAP_DROPS)?;
        let oom = match attach_oom(&mut ebpf, pidns_ino != 0) {
            Ok(map) => Some(map),
            Err(why) => {
                log::info!("OOM victims from the oom_kill counter only: {why}");
                None
            }
        };
        let rss_watch = load_rss_watch(&mut ebpf);
        Ok(Tracker {
            ebpf,
            procs,
            drops,
            oom,
            rss_watch,
            rss_link: None,
        })
    }

    /// Watches every RSS change of one process (`Some((tgid, counters))`, the counters seeded
    /// from /proc in bytes: file, anon, swap entries, shmem), or stops (`None`). The program is
    /// attached only while a process is watched.
    pub fn watch_rss(&mut self, target: Option<(u32, [i64; 4])>) -> Result<(), String> {
        let map = self.rss_watch.as_mut().map_err(|why| why.clone())?;
        let value = target.map_or_else(RssWatch::default, |(tgid, members)| {
            let rss = members[0] + members[1] + members[3];
            RssWatch {
                tgid,
                members,
                rss,
                max_rss: rss,
                ..RssWatch::default()
            }
        });
        map.set(0, value, 0)
            .map_err(|e| format!("cannot set the watched process: {e}"))?;
        let tp = tracepoint(&mut self.ebpf, "memmon_rss_stat")?;
        match (target, self.rss_link.take()) {
            (Some(_), Some(link)) => self.rss_link = Some(link),
            (Some(_), None) => {
                self.rss_link = Some(
                    tp.attach("kmem", "rss_stat")
                        .map_err(|e| format!("cannot attach kmem:rss_stat: {e}"))?,
                );
            }
            (None, Some(link)) => tp
                .detach(link)
                .map_err(|e| format!("cannot detach kmem:rss_stat: {e}"))?,
            (None, None) => {}
        }
        Ok(())
    }

    /// What the kernel saw of the watched process since the last call (`None` when none is
    /// watched); restarts the peak from the current RSS.
    pub fn take_rss_watch(&mut self) -> Option<RssWatch> {
        let map = self.rss_watch.as_mut().ok()?;
        let seen = map.get(&0, 0).ok().filter(|w| w.tgid != 0)?;
        let _ = map.set(
            0,
            RssWatch {
                max_rss: seen.rss,
                ..seen
            },
            0,
        );
        Some(seen)
    }

    /// Whether high-resolution mode can be used, or why not.
    pub fn rss_watch_available(&self) -> Result<(), String> {
        self.rss_watch.as_ref().map(drop).map_err(Clone::clone)
    }

    /// Whether the kernel names OOM victims to us (`oom:mark_victim` attached).
    pub fn names_oom_victims(&self) -> bool {
        self.oom.is_some()
    }

    /// The OOM victims marked since the last call, as (PID, record).
    pub fn drain_oom_victims(&mut self) -> Vec<(u32, OomVictim)> {
        let Some(map) = self.oom.as_mut() else {
            return Vec::new();
        };
        let pids: Vec<u32> = map.keys().filter_map(Result::ok).collect();
        let mut victims = Vec::with_capacity(pids.len());
        for pid in pids {
            if let Ok(victim) = map.get(&pid, 0) {
                victims.push((pid, victim));
            }
            let _ = map.remove(&pid);
        }
        victims.sort_by_key(|(_, v)| v.marked_ns);
        victims
    }

    /// What the kernel recorded for `tgid`; `None` if it has seen no call from it.
    pub fn record(&self, tgid: u32) -> Option<ProcRecord> {
        self.procs.get(&tgid, 0).ok()
    }

    /// Forgets a process's record (a stale entry left by a PID's previous owner).
    pub fn forget(&mut self, tgid: u32) {
        // Already gone is fine.
        let _ = self.procs.remove(&tgid);
    }

    /// Removes records of processes not in `alive` (exits the kernel side could not see).
    pub fn retain(&mut self, alive: &HashSet<u32>) -> usize {
        let stale: Vec<u32> = self
            .procs
            .keys()
            .filter_map(Result::ok)
            .filter(|pid| !alive.contains(pid))
            .collect();
        for &pid in &stale {
            self.forget(pid);
        }
        stale.len()
    }

    /// Events dropped because a map was full, all CPUs and slots.
    /// Processes the kernel's per-process map holds (as loaded).
    pub fn capacity(&self) -> Option<u32> {
        use aya::maps::IterableMap as _;
        self.procs.map().info().ok().map(|i| i.max_entries())
    }

    pub fn drops(&self) -> u64 {
        self.drops
            .iter()
            .filter_map(Result::ok)
            .map(|per_cpu| per_cpu.iter().sum::<u64>())
            .sum()
    }
}

/// Loads every program of `PROGRAMS` (named with `prefix` instead of `memmon_`) and attaches it.
fn attach_all(ebpf: &mut Ebpf, prefix: &str) -> Result<(), TrackerError> {
    for (program, category, name) in PROGRAMS {
        let attach_err = |source| TrackerError::Attach {
            program,
            category,
            name,
            source: Box::new(source),
        };
        let tp: &mut TracePoint = ebpf
            .program_mut(&program.replacen("memmon_", prefix, 1))
            .ok_or(TrackerError::Missing(program))?
            .try_into()
            .map_err(attach_err)?;
        tp.load()
            .and_then(|()| tp.attach(category, name).map(drop))
            .map_err(attach_err)?;
    }
    Ok(())
}

/// The `oom:mark_victim` fields the program reads, at the offsets it reads them.
const OOM_FIELDS: [(&str, u64); 5] = [
    ("pid", 8),
    ("comm", 12),
    ("anon_rss", 24),
    ("file_rss", 32),
    ("shmem_rss", 40),
];

/// Attaches the OOM program if this kernel's record layout is the one it reads.
fn attach_oom(
    ebpf: &mut Ebpf,
    in_child_pid_namespace: bool,
) -> Result<BpfHashMap<MapData, u32, OomVictim>, String> {
    if in_child_pid_namespace {
        // The tracepoint reports the victim's PID in the initial namespace.
        return Err("the helper runs in a child PID namespace".into());
    }
    let tp = checked_tracepoint(
        ebpf,
        "memmon_oom_mark_victim",
        "oom",
        "mark_victim",
        &OOM_FIELDS,
    )?;
    tp.load()
        .and_then(|()| tp.attach("oom", "mark_victim").map(drop))
        .map_err(|e| format!("cannot attach oom:mark_victim: {e}"))?;
    take_map(ebpf, MAP_OOM_VICTIMS).map_err(|e| e.to_string())
}

/// The `kmem:rss_stat` fields the program reads, at the offsets it reads them.
const RSS_STAT_FIELDS: [(&str, u64); 3] = [("curr", 12), ("member", 16), ("size", 24)];

/// Loads (without attaching) the high-resolution RSS program if this kernel's layout matches.
/// The per-process map's size for this machine: its `pid_max`, bounded
/// ([`memmon_common::tracked_processes_for`]).
pub fn tracked_processes() -> u32 {
    let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(memmon_common::MAX_TRACKED_PROCESSES);
    memmon_common::tracked_processes_for(pid_max)
}

fn load_rss_watch(ebpf: &mut Ebpf) -> Result<BpfArray<MapData, RssWatch>, String> {
    let tp = checked_tracepoint(
        ebpf,
        "memmon_rss_stat",
        "kmem",
        "rss_stat",
        &RSS_STAT_FIELDS,
    )?;
    tp.load()
        .map_err(|e| format!("the kernel refused the kmem:rss_stat program: {e}"))?;
    take_map(ebpf, MAP_RSS_WATCH).map_err(|e| e.to_string())
}

/// The tracepoint program `program`, once this kernel's `category:name` record is checked to
/// have each of `fields` at the offset the program reads it from.
fn checked_tracepoint<'a>(
    ebpf: &'a mut Ebpf,
    program: &str,
    category: &str,
    name: &str,
    fields: &[(&str, u64)],
) -> Result<&'a mut TracePoint, String> {
    let format = tracefs_format(&format!("{category}/{name}"))
        .ok_or_else(|| format!("this kernel has no {category}:{name} tracepoint"))?;
    for &(field, offset) in fields {
        if parse_field_offset(&format, field) != Some(offset) {
            return Err(format!(
                "{category}:{name} has no {field} at offset {offset}"
            ));
        }
    }
    tracepoint(ebpf, program)
}

fn tracepoint<'a>(ebpf: &'a mut Ebpf, program: &str) -> Result<&'a mut TracePoint, String> {
    ebpf.program_mut(program)
        .ok_or_else(|| format!("the eBPF object lacks {program}"))?
        .try_into()
        .map_err(|e| format!("{program}: {e}"))
}

fn tracefs_format(event: &str) -> Option<String> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .find_map(|root| fs::read_to_string(format!("{root}/events/{event}/format")).ok())
}

fn take_map<M>(ebpf: &mut Ebpf, name: &'static str) -> Result<M, TrackerError>
where
    M: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or(TrackerError::Missing(name))?;
    M::try_from(map).map_err(|source| TrackerError::Map { name, source })
}

/// (device, inode) of this process's PID namespace, or (0, 0) in the initial one, where the
/// kernel's plain PIDs already match /proc (and the cheaper helper is used).
pub(crate) fn own_pid_namespace() -> (u64, u64) {
    /// `PROC_PID_INIT_INO`: the initial PID namespace's inode number.
    const INIT_PID_NS_INO: u64 = 0xEFFF_FFFC;
    use std::os::unix::fs::MetadataExt as _;
    match fs::metadata("/proc/self/ns/pid") {
        Ok(m) if m.ino() != INIT_PID_NS_INO => (m.dev(), m.ino()),
        _ => (0, 0),
    }
}

/// Tracepoints are attached through tracefs; systemd mounts it, minimal systems may not.
pub(crate) fn ensure_tracefs() {
    const TRACEFS: &str = "/sys/kernel/tracing";
    if fs::metadata(format!("{TRACEFS}/events")).is_ok() {
        return;
    }
    // SAFETY: plain mount(2) with NUL-terminated literals; failure is reported by aya's attach
    // error right after.
    let rc = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            c"/sys/kernel/tracing".as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        log::warn!(
            "cannot mount tracefs on {TRACEFS}: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Offset of `group_dead` in the `sched_process_exit` record, or 0 where the kernel lacks it.
fn exit_group_dead_offset() -> u64 {
    tracefs_format("sched/sched_process_exit")
        .and_then(|format| parse_field_offset(&format, "group_dead"))
        .unwrap_or(0)
}

/// Finds `field:<type> <name>;\toffset:N;` in a tracepoint format file.
fn parse_field_offset(format: &str, name: &str) -> Option<u64> {
    format.lines().find_map(|line| {
        let line = line.trim();
        let decl = line.strip_prefix("field:")?.split(';').next()?;
        // `char comm[16]` and `__data_loc char[] comm` both name `comm`.
        let field = decl.rsplit(' ').next()?;
        if field.split('[').next()? != name {
            return None;
        }
        let offset = line.split("offset:").nth(1)?.split(';').next()?;
        offset.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_group_dead_offset() {
        let format = "name: sched_process_exit\nformat:\n\
            \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
            \tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\
            \tfield:pid_t pid;\toffset:24;\tsize:4;\tsigned:1;\n\
            \tfield:bool group_dead;\toffset:32;\tsize:1;\tsigned:0;\n";
        assert_eq!(parse_field_offset(format, "group_dead"), Some(32));
        assert_eq!(parse_field_offset(format, "pid"), Some(24));
        assert_eq!(parse_field_offset(format, "nope"), None);
    }
}
