//! memmon's in-kernel programs.
//!
//! Only `sys_exit_*` tracepoints are used: the return value says whether the call succeeded and,
//! for mmap/munmap, the length is read back from the task's saved user registers, so no
//! enter/exit pairing map (and no second tracepoint per syscall) is needed. Each process
//! (thread-group id) has one record: one hash lookup per event, counters and net bytes updated
//! with atomic adds (exact under concurrency), no clock read on the hot path. Records are removed
//! when the thread group dies.
//!
//! These programs must never fail a syscall or block: every error path just returns 0.
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![allow(internal_features)]

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{
    EbpfContext as _,
    bindings::BPF_NOEXIST,
    helpers::{bpf_ktime_get_boot_ns, bpf_probe_read_kernel_str_bytes},
    macros::{map, tracepoint},
    maps::{Array, HashMap, PerCpuArray},
    programs::TracePointContext,
};
use memmon_common::{
    DROP_PROCS_FULL, DROP_SLOTS, MAX_OOM_VICTIMS, MAX_TRACKED_PROCESSES, OomVictim, ProcRecord,
    ProcState, RssWatch,
};
use shared::{current_pid_tgid, current_tgid, is_err, syscall_arg, syscall_ret, user_regs};

/// Set by user space before loading (see `memmon_common::GLOBAL_PAGE_SIZE`).
#[unsafe(no_mangle)]
static PAGE_SIZE: u64 = 4096;
/// Set by user space before loading (see `memmon_common::GLOBAL_EXIT_GROUP_DEAD_OFFSET`).
#[unsafe(no_mangle)]
static EXIT_GROUP_DEAD_OFFSET: u64 = 0;
#[map]
static PROCS: HashMap<u32, ProcRecord> = HashMap::with_max_entries(MAX_TRACKED_PROCESSES, 0);

#[map]
static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(DROP_SLOTS, 0);

#[map]
static OOM_VICTIMS: HashMap<u32, OomVictim> = HashMap::with_max_entries(MAX_OOM_VICTIMS, 0);

#[map]
static RSS_WATCH: Array<RssWatch> = Array::with_max_entries(1, 0);

#[tracepoint(category = "syscalls", name = "sys_exit_mmap")]
pub fn memmon_exit_mmap(ctx: TracePointContext) -> u32 {
    match try_exit_mmap(&ctx) {
        Ok(r) | Err(r) => r,
    }
}

#[tracepoint(category = "syscalls", name = "sys_exit_munmap")]
pub fn memmon_exit_munmap(ctx: TracePointContext) -> u32 {
    match try_exit_munmap(&ctx) {
        Ok(r) | Err(r) => r,
    }
}

#[tracepoint(category = "syscalls", name = "sys_exit_brk")]
pub fn memmon_exit_brk(ctx: TracePointContext) -> u32 {
    match try_exit_brk(&ctx) {
        Ok(r) | Err(r) => r,
    }
}

#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn memmon_process_exit(ctx: TracePointContext) -> u32 {
    match try_process_exit(&ctx) {
        Ok(r) | Err(r) => r,
    }
}

fn try_exit_mmap(ctx: &TracePointContext) -> Result<u32, u32> {
    if is_err(syscall_ret(ctx)) {
        return Ok(0);
    }
    let bytes = page_round_up(second_syscall_arg()?);
    let rec = record_for(current_tgid()?)?;
    // SAFETY: `rec` points to a live map value; every shared field is updated atomically.
    unsafe {
        add(&raw mut (*rec).counters.mmap_count, 1);
        add(&raw mut (*rec).counters.mmap_bytes, bytes);
        add_net(&raw mut (*rec).state, bytes as i64);
    }
    Ok(0)
}

fn try_exit_munmap(ctx: &TracePointContext) -> Result<u32, u32> {
    if syscall_ret(ctx) != 0 {
        return Ok(0);
    }
    let bytes = page_round_up(second_syscall_arg()?);
    let rec = record_for(current_tgid()?)?;
    // SAFETY: as in `try_exit_mmap`.
    unsafe {
        add(&raw mut (*rec).counters.munmap_count, 1);
        add(&raw mut (*rec).counters.munmap_bytes, bytes);
        add_net(&raw mut (*rec).state, -(bytes as i64));
    }
    Ok(0)
}

fn try_exit_brk(ctx: &TracePointContext) -> Result<u32, u32> {
    // brk returns the new break on success and the unchanged one on failure.
    let new_brk = syscall_ret(ctx);
    if new_brk == 0 || is_err(new_brk) {
        return Ok(0);
    }
    let rec = record_for(current_tgid()?)?;
    // SAFETY: `rec` points to a live map value. brk calls of one process are serialised by the
    // kernel (mmap lock), so `last_brk` needs no atomics.
    unsafe {
        let last_brk = (*rec).state.last_brk;
        if last_brk == new_brk {
            return Ok(0);
        }
        (*rec).state.last_brk = new_brk;
        if last_brk == 0 {
            // The first brk seen only learns where the break is.
            return Ok(0);
        }
        let c = &raw mut (*rec).counters;
        if new_brk > last_brk {
            let grown = new_brk - last_brk;
            add(&raw mut (*c).brk_grow_count, 1);
            add(&raw mut (*c).brk_grow_bytes, grown);
            add_net(&raw mut (*rec).state, grown as i64);
        } else {
            let shrunk = last_brk - new_brk;
            add(&raw mut (*c).brk_shrink_count, 1);
            add(&raw mut (*c).brk_shrink_bytes, shrunk);
            add_net(&raw mut (*rec).state, -(shrunk as i64));
        }
    }
    Ok(0)
}

fn try_process_exit(ctx: &TracePointContext) -> Result<u32, u32> {
    let (pid, tgid) = current_pid_tgid()?;
    // SAFETY: a `static` the loader may have rewritten; volatile so the value is not folded.
    let group_dead_offset = unsafe { core::ptr::read_volatile(&EXIT_GROUP_DEAD_OFFSET) };
    let group_dead = if group_dead_offset == 0 {
        // Older kernels: the process ends with its thread-group leader.
        pid == tgid
    } else {
        // SAFETY: the offset was read from this tracepoint's format file by user space.
        unsafe { ctx.read_at::<u8>(group_dead_offset as usize) }.map_err(|_| 0u32)? != 0
    };
    if group_dead {
        // Already absent is fine.
        let _ = PROCS.remove(&tgid);
    }
    Ok(0)
}

/// `oom:mark_victim` record layout (Linux 6.x; user space attaches this program only after
/// checking the tracepoint's format file has exactly these fields at these offsets).
const OOM_PID_OFFSET: usize = 8;
const OOM_COMM_LOC_OFFSET: usize = 12;
const OOM_ANON_RSS_OFFSET: usize = 24;
const OOM_FILE_RSS_OFFSET: usize = 32;
const OOM_SHMEM_RSS_OFFSET: usize = 40;

#[tracepoint(category = "oom", name = "mark_victim")]
pub fn memmon_oom_mark_victim(ctx: TracePointContext) -> u32 {
    match try_oom_mark_victim(&ctx) {
        Ok(r) | Err(r) => r,
    }
}

fn try_oom_mark_victim(ctx: &TracePointContext) -> Result<u32, u32> {
    // SAFETY: offsets checked against the format file by user space before attaching.
    let (pid, comm_loc, anon, file, shmem) = unsafe {
        (
            ctx.read_at::<i32>(OOM_PID_OFFSET).map_err(|_| 0u32)?,
            ctx.read_at::<u32>(OOM_COMM_LOC_OFFSET).map_err(|_| 0u32)?,
            ctx.read_at::<u64>(OOM_ANON_RSS_OFFSET).map_err(|_| 0u32)?,
            ctx.read_at::<u64>(OOM_FILE_RSS_OFFSET).map_err(|_| 0u32)?,
            ctx.read_at::<u64>(OOM_SHMEM_RSS_OFFSET).map_err(|_| 0u32)?,
        )
    };
    let mut victim = OomVictim {
        // SAFETY: helper without arguments, allowed in tracepoint programs.
        marked_ns: unsafe { bpf_ktime_get_boot_ns() },
        rss_kb: anon.saturating_add(file).saturating_add(shmem),
        comm: [0; 16],
    };
    // A `__data_loc` field: low 16 bits are the string's offset in the record.
    let comm = (ctx.as_ptr() as *const u8).wrapping_add((comm_loc & 0xffff) as usize);
    // SAFETY: reads at most 16 bytes of kernel memory into a stack buffer; a fault only leaves
    // the name empty.
    let _ = unsafe { bpf_probe_read_kernel_str_bytes(comm, &mut victim.comm) };
    // A full map (64 kills not yet drained) loses this victim's details, not the kill count.
    let _ = OOM_VICTIMS.insert(&(pid as u32), &victim, 0);
    Ok(0)
}

/// `kmem:rss_stat` record layout (checked against the format file before attaching).
const RSS_CURR_OFFSET: usize = 12;
const RSS_MEMBER_OFFSET: usize = 16;
const RSS_SIZE_OFFSET: usize = 24;

/// Every change of any process's RSS counters (page faults, unmaps, reclaim) passes here while
/// high-resolution mode is on; all but the watched process leave after one array lookup.
#[tracepoint(category = "kmem", name = "rss_stat")]
pub fn memmon_rss_stat(ctx: TracePointContext) -> u32 {
    match try_rss_stat(&ctx) {
        Ok(r) | Err(r) => r,
    }
}

fn try_rss_stat(ctx: &TracePointContext) -> Result<u32, u32> {
    let watch = RSS_WATCH.get_ptr_mut(0).ok_or(0u32)?;
    // SAFETY: slot 0 of a one-entry array map, alive while the program runs.
    let target = unsafe { core::ptr::read_volatile(&raw const (*watch).tgid) };
    if target == 0 {
        return Ok(0);
    }
    // SAFETY: offsets checked against the format file by user space before attaching.
    let curr = unsafe { ctx.read_at::<u32>(RSS_CURR_OFFSET) }.map_err(|_| 0u32)?;
    // `curr`: the counter belongs to the current task's mm (not reclaim from elsewhere).
    if curr == 0 || current_tgid()? != target {
        return Ok(0);
    }
    // SAFETY: as above.
    let (member, size) = unsafe {
        (
            ctx.read_at::<i32>(RSS_MEMBER_OFFSET).map_err(|_| 0u32)?,
            ctx.read_at::<i64>(RSS_SIZE_OFFSET).map_err(|_| 0u32)?,
        )
    };
    // SAFETY: `watch` points into the live map value; concurrent threads of the target may
    // interleave plain stores, which can only make one event's view a little stale.
    unsafe {
        let members = &raw mut (*watch).members;
        match member {
            0 => (*members)[0] = size,
            1 => (*members)[1] = size,
            2 => (*members)[2] = size,
            3 => (*members)[3] = size,
            _ => return Ok(0),
        }
        let rss = (*members)[0] + (*members)[1] + (*members)[3];
        (*watch).rss = rss;
        if rss > (*watch).max_rss {
            (*watch).max_rss = rss;
        }
        add(&raw mut (*watch).events, 1);
    }
    Ok(0)
}

#[inline(always)]
fn page_round_up(len: u64) -> u64 {
    // SAFETY: a `static` the loader may have rewritten; volatile so the value is not folded.
    let page = unsafe { core::ptr::read_volatile(&PAGE_SIZE) };
    let mask = page.wrapping_sub(1);
    len.wrapping_add(mask) & !mask
}

#[inline(always)]
fn record_for(tgid: u32) -> Result<*mut ProcRecord, u32> {
    if let Some(ptr) = PROCS.get_ptr_mut(&tgid) {
        return Ok(ptr);
    }
    let fresh = ProcRecord {
        state: ProcState {
            // SAFETY: helper without arguments, allowed in tracepoint programs.
            first_seen_ns: unsafe { bpf_ktime_get_boot_ns() },
            ..ProcState::default()
        },
        ..ProcRecord::default()
    };
    // Fails if another thread of the process inserted it first (found below) or the map is full.
    let _ = PROCS.insert(&tgid, &fresh, BPF_NOEXIST as u64);
    match PROCS.get_ptr_mut(&tgid) {
        Some(ptr) => Ok(ptr),
        None => {
            count_drop(DROP_PROCS_FULL);
            Err(0)
        }
    }
}

/// Atomic add whose result is unused: a single BPF `lock xadd`, valid on every BPF CPU version.
///
/// # Safety
/// `field` must point into a live map value.
#[inline(always)]
unsafe fn add(field: *mut u64, value: u64) {
    // SAFETY: guaranteed by the caller; the result is deliberately ignored (no fetch needed).
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(field, value) };
}

/// # Safety
/// `state` must point into a live map value.
#[inline(always)]
unsafe fn add_net(state: *mut ProcState, delta: i64) {
    // SAFETY: guaranteed by the caller. `net` is exact (atomic add); `peak_net` is a plain
    // max that a racing thread can only make lag, never exceed the true peak.
    unsafe {
        add((&raw mut (*state).net).cast::<u64>(), delta as u64);
        let net = core::ptr::read_volatile(&raw const (*state).net);
        if net > (*state).peak_net {
            (*state).peak_net = net;
        }
    }
}

#[inline(always)]
fn count_drop(slot: u32) {
    if let Some(ptr) = DROPS.get_ptr_mut(slot) {
        // SAFETY: this CPU's copy of a per-CPU array slot.
        unsafe { *ptr += 1 };
    }
}

mod runtime;

/// The second syscall argument (the length for mmap and munmap), read from the user registers
/// the kernel saved on entry; they are unchanged at syscall exit.
#[inline(always)]
fn second_syscall_arg() -> Result<u64, u32> {
    let regs = user_regs()?;
    // SAFETY: `regs` comes from `user_regs`.
    Ok(unsafe { syscall_arg(regs, 1) })
}

mod shared;
