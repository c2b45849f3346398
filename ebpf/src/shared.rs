//! What both memmon objects (the always-on counters and the call-site programs) need: the
//! current task's PIDs as the helper's namespace numbers them, syscall return values and the
//! user registers saved at syscall entry.

use aya_ebpf::{
    EbpfContext as _,
    bindings::{bpf_pidns_info, pt_regs},
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_task_btf, bpf_task_pt_regs},
    programs::TracePointContext,
};

/// Offset of `long ret` in every `syscalls:sys_exit_*` record (stable ABI of syscall tracepoints).
const SYS_EXIT_RET_OFFSET: usize = 16;
/// Error returns are -4095..=-1 (`IS_ERR_VALUE`).
const MAX_ERRNO: u64 = 4095;

/// The helper's PID namespace (device and inode of /proc/self/ns/pid), or 0/0 when it runs in
/// the initial namespace: PIDs are then reported as that namespace numbers them, matching the
/// helper's /proc (see `memmon_common::GLOBAL_PIDNS_DEV`).
#[unsafe(no_mangle)]
static PIDNS_DEV: u64 = 0;
#[unsafe(no_mangle)]
static PIDNS_INO: u64 = 0;

#[inline(always)]
pub fn syscall_ret(ctx: &TracePointContext) -> u64 {
    // SAFETY: every sys_exit record has `long ret` at this offset; tracepoint programs may load
    // their record directly (the verifier checks the bounds), which avoids a probe-read call.
    let ret = unsafe {
        core::ptr::read_volatile(
            ctx.as_ptr()
                .cast::<u8>()
                .add(SYS_EXIT_RET_OFFSET)
                .cast::<i64>(),
        )
    };
    ret as u64
}

#[inline(always)]
pub fn is_err(ret: u64) -> bool {
    ret > u64::MAX - MAX_ERRNO
}

/// (thread id, thread-group id) as the helper's PID namespace sees them; an error for a task
/// outside that namespace (it is not one of the helper's processes).
#[inline(always)]
pub fn current_pid_tgid() -> Result<(u32, u32), u32> {
    // SAFETY: `static`s the loader may have rewritten; volatile so they are not folded.
    let (dev, ino) = unsafe {
        (
            core::ptr::read_volatile(&PIDNS_DEV),
            core::ptr::read_volatile(&PIDNS_INO),
        )
    };
    if ino == 0 {
        let pid_tgid = bpf_get_current_pid_tgid();
        return Ok((pid_tgid as u32, (pid_tgid >> 32) as u32));
    }
    let mut info = bpf_pidns_info { pid: 0, tgid: 0 };
    // SAFETY: the helper writes `size` bytes into `info`, a stack struct of that size.
    let rc = unsafe {
        aya_ebpf::helpers::generated::bpf_get_ns_current_pid_tgid(
            dev,
            ino,
            &mut info,
            core::mem::size_of::<bpf_pidns_info>() as u32,
        )
    };
    if rc != 0 {
        return Err(0);
    }
    Ok((info.pid, info.tgid))
}

/// (Only the counters' object uses it.)
#[allow(dead_code)]
#[inline(always)]
pub fn current_tgid() -> Result<u32, u32> {
    current_pid_tgid().map(|(_, tgid)| tgid)
}

/// The user registers the kernel saved when the current task entered the kernel; at a syscall's
/// exit tracepoint they still hold the syscall's arguments and the user stack and instruction
/// pointers.
#[inline(always)]
pub fn user_regs() -> Result<*const pt_regs, u32> {
    // SAFETY: both helpers are allowed in tracing programs; the task is the current one, so its
    // pt_regs stay valid while this program runs.
    let regs = unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) as *const pt_regs };
    if regs.is_null() { Err(0) } else { Ok(regs) }
}

/// Syscall argument `n` (0-based, n < 6) from the saved user registers.
///
/// # Safety
/// `regs` must come from [`user_regs`] or be a program context's `pt_regs`.
#[cfg(bpf_target_arch = "x86_64")]
#[inline(always)]
pub unsafe fn syscall_arg(regs: *const pt_regs, n: usize) -> u64 {
    // SAFETY: `regs` is a BTF-typed or context pointer; the verifier turns these loads into
    // fault-safe ones. x86_64 passes syscall arguments in rdi, rsi, rdx, r10, r8, r9.
    unsafe {
        (match n {
            0 => core::ptr::read_volatile(&(*regs).rdi),
            1 => core::ptr::read_volatile(&(*regs).rsi),
            2 => core::ptr::read_volatile(&(*regs).rdx),
            3 => core::ptr::read_volatile(&(*regs).r10),
            4 => core::ptr::read_volatile(&(*regs).r8),
            _ => core::ptr::read_volatile(&(*regs).r9),
        }) as u64
    }
}

/// # Safety
/// As for x86_64.
#[cfg(bpf_target_arch = "aarch64")]
#[inline(always)]
pub unsafe fn syscall_arg(regs: *const pt_regs, n: usize) -> u64 {
    // SAFETY: as for x86_64; aarch64 passes syscall arguments in x0..x5 (x0 holds the return
    // value at exit, so only n >= 1 is meaningful there).
    unsafe {
        let regs = regs.cast::<aya_ebpf::bindings::user_pt_regs>();
        core::ptr::read_volatile(&(*regs).regs[n & 7])
    }
}
