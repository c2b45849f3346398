//! Loads the call-site object for one process and attaches one source's programs. Dropping
//! [`Probes`] detaches and unloads everything; the links are file descriptors of this process,
//! so the kernel also detaches them when the helper exits or is killed (nothing is pinned).

use std::{num::NonZeroU32, os::fd::AsRawFd as _};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, PerCpuArray, RingBuf},
    programs::{TracePoint, UProbe, uprobe::UProbeScope},
};
use memmon_common::{
    GLOBAL_PIDNS_DEV, GLOBAL_PIDNS_INO,
    callsite_record::{
        CS_COUNTER_SLOTS, CallSiteConfig, GLOBAL_CS_TGID, MAP_CS_CONFIG, MAP_CS_COUNTERS,
        MAP_CS_EVENTS,
    },
    callsites::CallSiteSource,
};

use super::{CallSiteError, modules::LoadedModule};

/// The call-site object built by build.rs (empty when bpf-linker was missing).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/memmon-callsites"));

/// (program, tracepoint) of the mappings source.
const MAPPING_PROGRAMS: [(&str, &str); 4] = [
    ("cs_exit_mmap", "sys_exit_mmap"),
    ("cs_exit_munmap", "sys_exit_munmap"),
    ("cs_exit_mremap", "sys_exit_mremap"),
    ("cs_exit_brk", "sys_exit_brk"),
];

/// (allocator function, entry program, return program) of the heap source. `aligned_alloc`
/// and `memalign` share a signature and so their programs.
const HEAP_PROGRAMS: [(&str, &str, Option<&str>); 7] = [
    ("malloc", "cs_malloc", Some("cs_malloc_ret")),
    ("calloc", "cs_calloc", Some("cs_calloc_ret")),
    ("realloc", "cs_realloc", Some("cs_realloc_ret")),
    (
        "posix_memalign",
        "cs_posix_memalign",
        Some("cs_posix_memalign_ret"),
    ),
    ("aligned_alloc", "cs_memalign", Some("cs_memalign_ret")),
    ("memalign", "cs_memalign", Some("cs_memalign_ret")),
    ("free", "cs_free", None),
];

pub struct Probes {
    // Keeps the programs and links alive.
    _ebpf: Ebpf,
    pub events: RingBuf<MapData>,
    config: Array<MapData, CallSiteConfig>,
    counters: PerCpuArray<MapData, u64>,
    /// Heap: the binaries whose allocator is probed (file names).
    pub probed: Vec<String>,
}

impl Probes {
    /// Loads the object for `pid` and attaches `source`. For the heap source, `modules` are the
    /// process's binaries: every one that defines `malloc` (the C library, or an allocator
    /// linked in or preloaded: jemalloc, tcmalloc, mimalloc built to replace malloc) gets
    /// uprobes on the allocator functions it defines.
    pub fn attach(
        pid: u32,
        source: CallSiteSource,
        sample_every: u32,
        modules: &[LoadedModule],
    ) -> Result<Probes, CallSiteError> {
        if OBJECT.is_empty() {
            return Err(CallSiteError::NoObject);
        }
        let (pidns_dev, pidns_ino) = crate::tracker::own_pid_namespace();
        let mut ebpf = EbpfLoader::new()
            .override_global(GLOBAL_CS_TGID, &pid, true)
            .override_global(GLOBAL_PIDNS_DEV, &pidns_dev, true)
            .override_global(GLOBAL_PIDNS_INO, &pidns_ino, true)
            .load(OBJECT)
            .map_err(|e| CallSiteError::Load(e.to_string()))?;
        let mut config: Array<MapData, CallSiteConfig> = take(&mut ebpf, MAP_CS_CONFIG)?;
        let sample_every = if source == CallSiteSource::Heap {
            sample_every
        } else {
            0
        };
        config
            .set(
                0,
                CallSiteConfig {
                    sample_every,
                    _pad: 0,
                },
                0,
            )
            .map_err(|e| CallSiteError::Load(format!("setting the sampling interval: {e}")))?;
        let events: RingBuf<MapData> = take(&mut ebpf, MAP_CS_EVENTS)?;
        let counters: PerCpuArray<MapData, u64> = take(&mut ebpf, MAP_CS_COUNTERS)?;
        let mut probed = Vec::new();
        match source {
            CallSiteSource::Mappings => {
                crate::tracker::ensure_tracefs();
                for (program, tracepoint) in MAPPING_PROGRAMS {
                    let prog: &mut TracePoint = program_mut(&mut ebpf, program)?;
                    prog.load().map_err(|e| attach_error(program, e))?;
                    prog.attach("syscalls", tracepoint)
                        .map_err(|e| attach_error(program, e))?;
                }
            }
            CallSiteSource::Heap => {
                let pid_nz = NonZeroU32::new(pid).ok_or(CallSiteError::NoSuchProcess(pid))?;
                let names: Vec<&str> = HEAP_PROGRAMS.iter().map(|(f, _, _)| *f).collect();
                for module in modules {
                    let mut offsets = module.function_offsets(&names);
                    // Aliases (glibc < 2.38: aligned_alloc is memalign) share one program: attach
                    // it once per address, or it would run twice per call.
                    let mut seen = std::collections::HashSet::new();
                    offsets.retain(|(function, offset)| {
                        let entry = HEAP_PROGRAMS.iter().find(|(f, _, _)| f == function);
                        seen.insert((entry.map(|(_, e, _)| *e), *offset))
                    });
                    if !offsets.iter().any(|(f, _)| f == "malloc") {
                        continue;
                    }
                    for (function, offset) in &offsets {
                        let Some((_, entry, ret)) =
                            HEAP_PROGRAMS.iter().find(|(f, _, _)| f == function)
                        else {
                            continue;
                        };
                        log::debug!(
                            "call sites: {function} at {offset:#x} of {}",
                            module.opened.display()
                        );
                        for program in std::iter::once(*entry).chain(*ret) {
                            let prog: &mut UProbe = program_mut(&mut ebpf, program)?;
                            if prog.fd().is_err() {
                                prog.load().map_err(|e| attach_error(program, e))?;
                            }
                            prog.attach(*offset, &module.opened, UProbeScope::OneProcess(pid_nz))
                                .map_err(|e| {
                                    if is_permission_error(&e) {
                                        return CallSiteError::UprobesNeedAdmin;
                                    }
                                    CallSiteError::Attach {
                                        program: format!(
                                            "{program} on {function} in {}",
                                            module.name
                                        ),
                                        reason: with_sources(&e),
                                    }
                                })?;
                        }
                    }
                    probed.push(module.name.clone());
                }
                if probed.is_empty() {
                    return Err(CallSiteError::NoAllocator(pid));
                }
            }
        }
        log::debug!("call sites: ring buffer fd {}", events.as_raw_fd());
        Ok(Probes {
            _ebpf: ebpf,
            events,
            config,
            counters,
            probed,
        })
    }

    /// Changes the heap sampling interval while the programs run.
    pub fn set_sample_every(&mut self, every: u32) -> Result<(), CallSiteError> {
        self.config
            .set(
                0,
                CallSiteConfig {
                    sample_every: every,
                    _pad: 0,
                },
                0,
            )
            .map_err(|e| CallSiteError::Load(format!("setting the sampling interval: {e}")))
    }

    /// The counters, summed over CPUs (indexed by the `CS_*` slots).
    pub fn counters(&self) -> [u64; CS_COUNTER_SLOTS as usize] {
        let mut sums = [0u64; CS_COUNTER_SLOTS as usize];
        for (slot, sum) in sums.iter_mut().enumerate() {
            if let Ok(values) = self.counters.get(&(slot as u32), 0) {
                *sum = values.iter().copied().fold(0u64, u64::wrapping_add);
            }
        }
        sums
    }
}

fn take<M>(ebpf: &mut Ebpf, name: &'static str) -> Result<M, CallSiteError>
where
    M: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| CallSiteError::Load(format!("the object lacks the map {name}")))?;
    M::try_from(map).map_err(|e| CallSiteError::Load(format!("map {name}: {e}")))
}

fn program_mut<'a, P>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut P, CallSiteError>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let prog = ebpf
        .program_mut(name)
        .ok_or_else(|| CallSiteError::Load(format!("the object lacks the program {name}")))?;
    prog.try_into()
        .map_err(|e: aya::programs::ProgramError| CallSiteError::Load(format!("{name}: {e}")))
}

fn attach_error(program: &str, e: aya::programs::ProgramError) -> CallSiteError {
    CallSiteError::Attach {
        program: program.to_owned(),
        reason: with_sources(&e),
    }
}

/// The kernel refused the uprobe (EACCES/EPERM): on Linux 6.18 creating one needs
/// CAP_SYS_ADMIN, which CAP_PERFMON does not replace.
fn is_permission_error(e: &aya::programs::ProgramError) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && matches!(io.raw_os_error(), Some(libc::EACCES | libc::EPERM))
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// An error with its causes ("`perf_event_open` failed: Permission denied").
fn with_sources(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
