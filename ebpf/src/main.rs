//! memmon's in-kernel programs.
//!
//! Only `sys_exit_*` tracepoints are used: the return value says whether the call succeeded and,
//! for mmap/munmap, the length is read back from the task's saved user registers, so no
//! enter/exit pairing map (and no second tracepoint per syscall) is needed. Per process
//! (thread-group id) the additive counters live in a per-CPU map (exact under concurrency) and the
//! break / peak state in a shared map. Entries are removed when the thread group dies.
//!
//! These programs must never fail a syscall or block: every error path just returns 0.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{BPF_NOEXIST, pt_regs},
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task_btf, bpf_ktime_get_boot_ns,
        bpf_probe_read_kernel, bpf_task_pt_regs,
    },
    macros::{map, tracepoint},
    maps::{HashMap, PerCpuArray, PerCpuHashMap},
    programs::TracePointContext,
};
use memmon_common::{
    DROP_COUNTERS_FULL, DROP_SLOTS, DROP_STATE_FULL, MAX_TRACKED_PROCESSES, ProcCounters, ProcState,
};

/// Offset of `long ret` in every `syscalls:sys_exit_*` record (stable ABI of syscall tracepoints).
const SYS_EXIT_RET_OFFSET: usize = 16;
/// Error returns are -4095..=-1 (`IS_ERR_VALUE`).
const MAX_ERRNO: u64 = 4095;

/// Set by user space before loading (see `memmon_common::GLOBAL_PAGE_SIZE`).
#[unsafe(no_mangle)]
static PAGE_SIZE: u64 = 4096;
/// Set by user space before loading (see `memmon_common::GLOBAL_EXIT_GROUP_DEAD_OFFSET`).
#[unsafe(no_mangle)]
static EXIT_GROUP_DEAD_OFFSET: u64 = 0;

#[map]
static PROC_COUNTERS: PerCpuHashMap<u32, ProcCounters> =
    PerCpuHashMap::with_max_entries(MAX_TRACKED_PROCESSES, 0);

#[map]
static PROC_STATE: HashMap<u32, ProcState> = HashMap::with_max_entries(MAX_TRACKED_PROCESSES, 0);

#[map]
static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(DROP_SLOTS, 0);

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
    let ret = syscall_ret(ctx)?;
    if is_err(ret) {
        return Ok(0);
    }
    let bytes = page_round_up(second_syscall_arg()?);
    let tgid = current_tgid();
    let now = now_ns();
    let counters = counters_for(tgid)?;
    // SAFETY: `counters` points into this CPU's copy of a live map value; no other CPU writes it.
    unsafe {
        (*counters).mmap_count += 1;
        (*counters).mmap_bytes += bytes;
    }
    let state = state_for(tgid, now)?;
    // SAFETY: `state` points to a live map value; a concurrent writer can only make peak lag.
    unsafe { add_net(state, bytes as i64, now) };
    Ok(0)
}

fn try_exit_munmap(ctx: &TracePointContext) -> Result<u32, u32> {
    if syscall_ret(ctx)? != 0 {
        return Ok(0);
    }
    let bytes = page_round_up(second_syscall_arg()?);
    let tgid = current_tgid();
    let now = now_ns();
    let counters = counters_for(tgid)?;
    // SAFETY: as in `try_exit_mmap`.
    unsafe {
        (*counters).munmap_count += 1;
        (*counters).munmap_bytes += bytes;
    }
    let state = state_for(tgid, now)?;
    // SAFETY: as in `try_exit_mmap`.
    unsafe { add_net(state, -(bytes as i64), now) };
    Ok(0)
}

fn try_exit_brk(ctx: &TracePointContext) -> Result<u32, u32> {
    // brk returns the new break on success and the unchanged one on failure.
    let new_brk = syscall_ret(ctx)?;
    if new_brk == 0 || is_err(new_brk) {
        return Ok(0);
    }
    let tgid = current_tgid();
    let now = now_ns();
    let state = state_for(tgid, now)?;
    // SAFETY: `state` points to a live map value of this process.
    let last_brk = unsafe { (*state).last_brk };
    if last_brk == new_brk {
        return Ok(0);
    }
    // SAFETY: as above.
    unsafe { (*state).last_brk = new_brk };
    if last_brk == 0 {
        // The first brk seen only learns where the break is.
        return Ok(0);
    }
    let counters = counters_for(tgid)?;
    if new_brk > last_brk {
        let grown = new_brk - last_brk;
        // SAFETY: as in `try_exit_mmap`.
        unsafe {
            (*counters).brk_grow_count += 1;
            (*counters).brk_grow_bytes += grown;
            add_net(state, grown as i64, now);
        }
    } else {
        let shrunk = last_brk - new_brk;
        // SAFETY: as in `try_exit_mmap`.
        unsafe {
            (*counters).brk_shrink_count += 1;
            (*counters).brk_shrink_bytes += shrunk;
            add_net(state, -(shrunk as i64), now);
        }
    }
    Ok(0)
}

fn try_process_exit(ctx: &TracePointContext) -> Result<u32, u32> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    // SAFETY: a `static` the loader may have rewritten; volatile so the value is not folded.
    let group_dead_offset = unsafe { core::ptr::read_volatile(&EXIT_GROUP_DEAD_OFFSET) };
    let group_dead = if group_dead_offset == 0 {
        // Older kernels: the process ends with its thread-group leader.
        pid_tgid as u32 == tgid
    } else {
        // SAFETY: the offset was read from this tracepoint's format file by user space.
        unsafe { ctx.read_at::<u8>(group_dead_offset as usize) }.map_err(|_| 0u32)? != 0
    };
    if group_dead {
        let _ = PROC_COUNTERS.remove(&tgid);
        let _ = PROC_STATE.remove(&tgid);
    }
    Ok(0)
}

#[inline(always)]
fn syscall_ret(ctx: &TracePointContext) -> Result<u64, u32> {
    // SAFETY: every sys_exit record has `long ret` at this offset.
    unsafe { ctx.read_at::<i64>(SYS_EXIT_RET_OFFSET) }
        .map(|r| r as u64)
        .map_err(|_| 0u32)
}

#[inline(always)]
fn is_err(ret: u64) -> bool {
    ret > u64::MAX - MAX_ERRNO
}

#[inline(always)]
fn current_tgid() -> u32 {
    (bpf_get_current_pid_tgid() >> 32) as u32
}

#[inline(always)]
fn now_ns() -> u64 {
    // SAFETY: helper without arguments, allowed in tracepoint programs.
    unsafe { bpf_ktime_get_boot_ns() }
}

#[inline(always)]
fn page_round_up(len: u64) -> u64 {
    // SAFETY: a `static` the loader may have rewritten; volatile so the value is not folded.
    let page = unsafe { core::ptr::read_volatile(&PAGE_SIZE) };
    let mask = page.wrapping_sub(1);
    len.wrapping_add(mask) & !mask
}

/// The second syscall argument (the length for mmap and munmap), read from the user registers
/// the kernel saved on entry; they are unchanged at syscall exit.
#[inline(always)]
fn second_syscall_arg() -> Result<u64, u32> {
    // SAFETY: both helpers are allowed in tracing programs; the task is the current one, so its
    // pt_regs stay valid for the duration of this program, and the read is checked.
    unsafe {
        let task = bpf_get_current_task_btf();
        let regs = bpf_task_pt_regs(task) as *const pt_regs;
        if regs.is_null() {
            return Err(0);
        }
        read_arg2(regs)
    }
}

#[cfg(bpf_target_arch = "x86_64")]
#[inline(always)]
unsafe fn read_arg2(regs: *const pt_regs) -> Result<u64, u32> {
    // SAFETY: `regs` is a kernel pointer; bpf_probe_read_kernel checks the access.
    unsafe { bpf_probe_read_kernel(&(*regs).rsi) }
        .map(|v| v as u64)
        .map_err(|_| 0u32)
}

#[cfg(bpf_target_arch = "aarch64")]
#[inline(always)]
unsafe fn read_arg2(regs: *const pt_regs) -> Result<u64, u32> {
    // SAFETY: `regs` is a kernel pointer; bpf_probe_read_kernel checks the access.
    unsafe { bpf_probe_read_kernel(&(*regs).regs[1]) }.map_err(|_| 0u32)
}

#[inline(always)]
fn counters_for(tgid: u32) -> Result<*mut ProcCounters, u32> {
    if let Some(ptr) = PROC_COUNTERS.get_ptr_mut(&tgid) {
        return Ok(ptr);
    }
    if PROC_COUNTERS
        .insert(&tgid, &ProcCounters::default(), BPF_NOEXIST as u64)
        .is_err()
    {
        // Either another CPU inserted it first (found below) or the map is full.
        if let Some(ptr) = PROC_COUNTERS.get_ptr_mut(&tgid) {
            return Ok(ptr);
        }
        count_drop(DROP_COUNTERS_FULL);
        return Err(0);
    }
    PROC_COUNTERS.get_ptr_mut(&tgid).ok_or(0)
}

#[inline(always)]
fn state_for(tgid: u32, now: u64) -> Result<*mut ProcState, u32> {
    if let Some(ptr) = PROC_STATE.get_ptr_mut(&tgid) {
        return Ok(ptr);
    }
    let fresh = ProcState {
        first_seen_ns: now,
        ..ProcState::default()
    };
    if PROC_STATE
        .insert(&tgid, &fresh, BPF_NOEXIST as u64)
        .is_err()
    {
        if let Some(ptr) = PROC_STATE.get_ptr_mut(&tgid) {
            return Ok(ptr);
        }
        count_drop(DROP_STATE_FULL);
        return Err(0);
    }
    PROC_STATE.get_ptr_mut(&tgid).ok_or(0)
}

/// # Safety
/// `state` must point to a live `PROC_STATE` value.
#[inline(always)]
unsafe fn add_net(state: *mut ProcState, delta: i64, now: u64) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        let net = (*state).net.wrapping_add(delta);
        (*state).net = net;
        if net > (*state).peak_net {
            (*state).peak_net = net;
        }
        (*state).last_update_ns = now;
    }
}

#[inline(always)]
fn count_drop(slot: u32) {
    if let Some(ptr) = DROPS.get_ptr_mut(slot) {
        // SAFETY: this CPU's copy of a per-CPU array slot.
        unsafe { *ptr += 1 };
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // SAFETY: the verifier rejects any program with a reachable panic, so this is never reached.
    unsafe { core::hint::unreachable_unchecked() }
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
