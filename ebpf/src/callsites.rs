//! memmon's call-site programs: loaded for one call-site session, for one process, and unloaded
//! when the session ends (nothing here runs outside a session).
//!
//! Two sources, attached separately:
//! - **mappings**: the `sys_exit_*` tracepoints of mmap, munmap, mremap and brk. They fire for
//!   every process on the machine; all but the watched one leave after one PID comparison.
//! - **heap**: uprobes on the watched process's allocator entry points and uretprobes on their
//!   returns (attached to that process only). One call in `sample_every`, chosen at random, is
//!   recorded with its stack; the sampled blocks' addresses are kept so their `free` is seen.
//!
//! A record is built in a per-CPU scratch slot: the header, then the user stack copied page by
//! page from the stack pointer up (at most `STACK_COPY_BYTES`), and only the used length is
//! sent through the ring buffer. User space unwinds it from `.eh_frame`.
//!
//! These programs must never fail a syscall or an allocation: every error path returns 0.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::pt_regs,
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_prandom_u32, bpf_ktime_get_boot_ns, bpf_ktime_get_ns,
        bpf_probe_read_user,
    },
    macros::{map, tracepoint, uprobe, uretprobe},
    maps::{Array, HashMap, PerCpuArray, RingBuf},
    programs::{ProbeContext, RetProbeContext, TracePointContext},
};
use memmon_common::callsite_record::{
    CALL_SITE_HEADER_BYTES, CS_ALLOCS_SAMPLED, CS_ALLOCS_SEEN, CS_COUNTER_SLOTS, CS_FREES_SEEN,
    CS_LIVE_FULL, CS_MAP_EVENTS, CS_NO_STACK, CS_RING_FULL, CallSiteConfig, CallSiteHeader,
    CallSiteRecord, EVENTS_RING_BYTES, FLAG_STACK_CUT, KIND_ALLOC, KIND_BRK, KIND_FREE, KIND_MMAP,
    KIND_MREMAP, KIND_MUNMAP, MAX_LIVE_SAMPLES, MAX_PENDING_CALLS, STACK_COPY_BYTES,
};
use shared::{current_pid_tgid, is_err, syscall_arg, syscall_ret, user_regs};

/// The watched process; set by user space before loading (`GLOBAL_CS_TGID`).
#[unsafe(no_mangle)]
static CS_TGID: u32 = 0;

const PAGE: u64 = 4096;
static U64_MAX: u64 = u64::MAX;
/// Pages copied after the first (partial) one.
const FULL_PAGES: u64 = (STACK_COPY_BYTES as u64 / PAGE) - 1;

#[map]
static CS_EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_RING_BYTES, 0);

#[map]
static CS_CONFIG: Array<CallSiteConfig> = Array::with_max_entries(1, 0);

#[map]
static CS_COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(CS_COUNTER_SLOTS, 0);

#[map]
static CS_SCRATCH: PerCpuArray<CallSiteRecord> = PerCpuArray::with_max_entries(1, 0);

/// Sampled heap blocks not yet freed: address → weight.
#[map]
static CS_LIVE: HashMap<u64, u64> = HashMap::with_max_entries(MAX_LIVE_SAMPLES, NO_PREALLOC);

/// Allocator calls between entry and return: (thread, function) → what the entry saw. Keyed by
/// function too, so an allocator calling another (glibc's realloc calls malloc) keeps both.
#[map]
static CS_PENDING: HashMap<PendingKey, Pending> =
    HashMap::with_max_entries(MAX_PENDING_CALLS, NO_PREALLOC);

const NO_PREALLOC: u32 = 1; // BPF_F_NO_PREALLOC

#[repr(C)]
#[derive(Clone, Copy)]
struct PendingKey {
    pid_tgid: u64,
    func: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Pending {
    /// Bytes asked for.
    size: u64,
    /// realloc: the old block; posix_memalign: where the result is stored.
    aux: u64,
    /// The sampling interval if this call was sampled, else 0.
    weight: u64,
    /// `bpf_ktime_get_ns` at entry: a marker whose return never came (the thread died inside
    /// the call) stops counting as "inside an allocator" after [`STALE_PENDING_NS`].
    entered_ns: u64,
}

/// How long an allocator call may take before its entry marker is ignored.
const STALE_PENDING_NS: u64 = 100_000_000;

const FN_MALLOC: u64 = 1;
const FN_CALLOC: u64 = 2;
const FN_REALLOC: u64 = 3;
const FN_MEMALIGN: u64 = 4;
const FN_POSIX_MEMALIGN: u64 = 5;

// --- mappings source -------------------------------------------------------------------------

#[tracepoint(category = "syscalls", name = "sys_exit_mmap")]
pub fn cs_exit_mmap(ctx: TracePointContext) -> u32 {
    let ret = syscall_ret(&ctx);
    if is_err(ret) {
        return 0;
    }
    mapping_event(KIND_MMAP, ret, |regs| {
        // SAFETY: `regs` comes from `user_regs`. `aux`: flags, with prot in the upper half.
        unsafe {
            (
                syscall_arg(regs, 1),
                (syscall_arg(regs, 3) & 0xffff_ffff) | (syscall_arg(regs, 2) << 32),
                syscall_arg(regs, 4),
            )
        }
    })
}

#[tracepoint(category = "syscalls", name = "sys_exit_munmap")]
pub fn cs_exit_munmap(ctx: TracePointContext) -> u32 {
    if syscall_ret(&ctx) != 0 || !is_target() {
        return 0;
    }
    let Ok(regs) = user_regs() else { return 0 };
    count(CS_MAP_EVENTS);
    // SAFETY: `regs` comes from `user_regs`.
    let (addr, len) = unsafe { (syscall_arg(regs, 0), syscall_arg(regs, 1)) };
    send_bare(KIND_MUNMAP, addr, len);
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_mremap")]
pub fn cs_exit_mremap(ctx: TracePointContext) -> u32 {
    let ret = syscall_ret(&ctx);
    if is_err(ret) {
        return 0;
    }
    mapping_event(KIND_MREMAP, ret, |regs| {
        // SAFETY: `regs` comes from `user_regs`.
        unsafe {
            (
                syscall_arg(regs, 2),
                syscall_arg(regs, 0),
                syscall_arg(regs, 1),
            )
        }
    })
}

#[tracepoint(category = "syscalls", name = "sys_exit_brk")]
pub fn cs_exit_brk(ctx: TracePointContext) -> u32 {
    let ret = syscall_ret(&ctx);
    if ret == 0 || is_err(ret) {
        return 0;
    }
    mapping_event(KIND_BRK, ret, |_| (0, 0, 0))
}

/// A mapping event of the watched process with its stack: `args` gives (len, aux, aux2).
#[inline(always)]
fn mapping_event(
    kind: u32,
    addr: u64,
    args: impl FnOnce(*const pt_regs) -> (u64, u64, u64),
) -> u32 {
    if !is_target() {
        return 0;
    }
    let Ok(regs) = user_regs() else { return 0 };
    count(CS_MAP_EVENTS);
    let (len, aux, aux2) = args(regs);
    let _ = send_with_stack(regs, kind, addr, len, aux, aux2, 0);
    0
}

// --- heap source -----------------------------------------------------------------------------

#[uprobe]
pub fn cs_malloc(ctx: ProbeContext) -> u32 {
    let size: u64 = ctx.arg(0).unwrap_or(0);
    heap_entry(FN_MALLOC, size, 0)
}

#[uretprobe]
pub fn cs_malloc_ret(ctx: RetProbeContext) -> u32 {
    heap_return(&ctx, FN_MALLOC)
}

#[uprobe]
pub fn cs_calloc(ctx: ProbeContext) -> u32 {
    let n: u64 = ctx.arg(0).unwrap_or(0);
    let size: u64 = ctx.arg(1).unwrap_or(0);
    // No 128-bit multiply in BPF: divide to test for overflow (such a calloc fails anyway).
    // The limit is read through a volatile load so LLVM cannot turn the test back into a
    // 128-bit multiply-with-overflow.
    // SAFETY: a plain `static` of the program's own.
    let max = unsafe { core::ptr::read_volatile(&U64_MAX) };
    let bytes = if size != 0 && n > max / size {
        u64::MAX
    } else {
        n.wrapping_mul(size)
    };
    heap_entry(FN_CALLOC, bytes, 0)
}

#[uretprobe]
pub fn cs_calloc_ret(ctx: RetProbeContext) -> u32 {
    heap_return(&ctx, FN_CALLOC)
}

#[uprobe]
pub fn cs_realloc(ctx: ProbeContext) -> u32 {
    let old: u64 = ctx.arg(0).unwrap_or(0);
    let size: u64 = ctx.arg(1).unwrap_or(0);
    heap_entry(FN_REALLOC, size, old)
}

#[uretprobe]
pub fn cs_realloc_ret(ctx: RetProbeContext) -> u32 {
    heap_return(&ctx, FN_REALLOC)
}

/// `aligned_alloc(alignment, size)` and `memalign(alignment, size)`.
#[uprobe]
pub fn cs_memalign(ctx: ProbeContext) -> u32 {
    let size: u64 = ctx.arg(1).unwrap_or(0);
    heap_entry(FN_MEMALIGN, size, 0)
}

#[uretprobe]
pub fn cs_memalign_ret(ctx: RetProbeContext) -> u32 {
    heap_return(&ctx, FN_MEMALIGN)
}

/// `posix_memalign(memptr, alignment, size)`: the block is stored at `memptr`.
#[uprobe]
pub fn cs_posix_memalign(ctx: ProbeContext) -> u32 {
    let memptr: u64 = ctx.arg(0).unwrap_or(0);
    let size: u64 = ctx.arg(2).unwrap_or(0);
    heap_entry(FN_POSIX_MEMALIGN, size, memptr)
}

#[uretprobe]
pub fn cs_posix_memalign_ret(ctx: RetProbeContext) -> u32 {
    heap_return(&ctx, FN_POSIX_MEMALIGN)
}

#[uprobe]
pub fn cs_free(ctx: ProbeContext) -> u32 {
    let addr: u64 = ctx.arg(0).unwrap_or(0);
    if addr == 0 || !is_target() {
        return 0;
    }
    count(CS_FREES_SEEN);
    forget_block(addr);
    0
}

/// Decides at entry whether this call is sampled; remembers what the return needs. An unsampled
/// call that frees nothing leaves no trace (no map update on the common path).
#[inline(always)]
fn heap_entry(func: u64, size: u64, aux: u64) -> u32 {
    if !is_target() {
        return 0;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    // A call made by another allocator function belongs to that outer call (glibc's
    // realloc(NULL, n) and memalign call malloc; musl's memalign calls aligned_alloc): counting
    // it too would record such blocks twice as often.
    if inside_allocator(pid_tgid, now) {
        return 0;
    }
    count(CS_ALLOCS_SEEN);
    let every = CS_CONFIG.get(0).map_or(0, |c| c.sample_every) as u64;
    // SAFETY: helper without arguments.
    let sampled =
        every != 0 && (every == 1 || (unsafe { bpf_get_prandom_u32() } as u64) % every == 0);
    let weight = if sampled { every } else { 0 };
    // The functions that call others always leave their marker; the rest only when sampled.
    let outer = matches!(func, FN_REALLOC | FN_MEMALIGN | FN_POSIX_MEMALIGN);
    if weight == 0 && !outer {
        return 0;
    }
    if weight != 0 {
        count(CS_ALLOCS_SAMPLED);
    }
    let key = PendingKey { pid_tgid, func };
    let pending = Pending {
        size,
        aux,
        weight,
        entered_ns: now,
    };
    let _ = CS_PENDING.insert(&key, &pending, 0);
    0
}

/// Whether this thread is inside realloc, memalign/aligned_alloc or posix_memalign now.
#[inline(always)]
fn inside_allocator(pid_tgid: u64, now: u64) -> bool {
    let outer = |func| {
        // SAFETY: the value is only read.
        unsafe { CS_PENDING.get(&PendingKey { pid_tgid, func }) }
            .is_some_and(|p| now.wrapping_sub(p.entered_ns) < STALE_PENDING_NS)
    };
    outer(FN_REALLOC) || outer(FN_MEMALIGN) || outer(FN_POSIX_MEMALIGN)
}

#[inline(always)]
fn heap_return(ctx: &RetProbeContext, func: u64) -> u32 {
    let key = PendingKey {
        pid_tgid: bpf_get_current_pid_tgid(),
        func,
    };
    // SAFETY: the value is copied out before the entry is removed.
    let Some(pending) = (unsafe { CS_PENDING.get(&key) }).copied() else {
        return 0;
    };
    let _ = CS_PENDING.remove(&key);
    let ret: u64 = ctx.ret();
    let addr = match func {
        FN_POSIX_MEMALIGN => {
            if ret as u32 != 0 || pending.aux == 0 {
                return 0;
            }
            // SAFETY: reads 8 bytes of the caller's memory; a fault leaves the block unrecorded.
            match unsafe { bpf_probe_read_user(pending.aux as *const u64) } {
                Ok(addr) => addr,
                Err(_) => return 0,
            }
        }
        _ => ret,
    };
    if func == FN_REALLOC && pending.aux != 0 && (addr != 0 || pending.size == 0) {
        // The old block is gone (moved, or freed by realloc(p, 0)).
        forget_block(pending.aux);
    }
    if pending.weight == 0 || addr == 0 {
        return 0;
    }
    if CS_LIVE.insert(&addr, &pending.weight, 0).is_err() {
        count(CS_LIVE_FULL);
        return 0;
    }
    let regs = ctx.regs as *const pt_regs;
    if send_with_stack(regs, KIND_ALLOC, addr, pending.size, 0, 0, pending.weight).is_err() {
        // Unreported blocks must not be matched by a later free.
        let _ = CS_LIVE.remove(&addr);
    }
    0
}

#[inline(always)]
fn forget_block(addr: u64) {
    if CS_LIVE.remove(&addr).is_ok() {
        send_bare(KIND_FREE, addr, 0);
    }
}

// --- records ---------------------------------------------------------------------------------

#[inline(always)]
fn is_target() -> bool {
    // SAFETY: a `static` the loader rewrote; volatile so the value is not folded.
    let target = unsafe { core::ptr::read_volatile(&CS_TGID) };
    matches!(current_pid_tgid(), Ok((_, tgid)) if tgid == target && target != 0)
}

fn header(kind: u32, addr: u64, len: u64) -> CallSiteHeader {
    CallSiteHeader {
        kind,
        tid: current_pid_tgid().map_or(0, |(pid, _)| pid),
        // SAFETY: helper without arguments.
        time_ns: unsafe { bpf_ktime_get_boot_ns() },
        addr,
        len,
        ..CallSiteHeader::default()
    }
}

/// A record without a stack (munmap, free).
#[inline(always)]
fn send_bare(kind: u32, addr: u64, len: u64) {
    let h = header(kind, addr, len);
    if CS_EVENTS.output::<CallSiteHeader>(&h, 0).is_err() {
        count(CS_RING_FULL);
    }
}

/// A record with the user registers and stack at `regs`.
#[inline(always)]
fn send_with_stack(
    regs: *const pt_regs,
    kind: u32,
    addr: u64,
    len: u64,
    aux: u64,
    aux2: u64,
    weight: u64,
) -> Result<(), ()> {
    let rec = CS_SCRATCH.get_ptr_mut(0).ok_or(())?;
    let (ip, sp, bp) = user_ip_sp_bp(regs);
    // SAFETY: `rec` is this CPU's scratch slot, used by nothing else while this program runs
    // (programs are not preempted by one another on a CPU).
    unsafe {
        (*rec).header = CallSiteHeader {
            aux,
            aux2,
            weight,
            ip,
            sp,
            bp,
            ..header(kind, addr, len)
        };
        let (copied, cut) = copy_stack(&raw mut (*rec).stack, sp);
        if copied == 0 {
            count(CS_NO_STACK);
        }
        (*rec).header.stack_len = copied as u32;
        (*rec).header.flags = if cut { FLAG_STACK_CUT } else { 0 };
        let size = CALL_SITE_HEADER_BYTES as u64 + (copied & (STACK_COPY_BYTES as u64 * 2 - 1));
        if size > core::mem::size_of::<CallSiteRecord>() as u64 {
            return Err(());
        }
        let bytes = core::slice::from_raw_parts(rec.cast::<u8>(), size as usize);
        if CS_EVENTS.output::<[u8]>(bytes, 0).is_err() {
            count(CS_RING_FULL);
            return Err(());
        }
    }
    Ok(())
}

/// Copies the user stack from `sp` up, page by page, stopping at the first page that cannot be
/// read (the end of the stack mapping). Returns (bytes copied, whether the copy limit cut it).
///
/// # Safety
/// `stack` must point to a `STACK_COPY_BYTES` buffer in a map value.
#[inline(always)]
unsafe fn copy_stack(stack: *mut [u8; STACK_COPY_BYTES], sp: u64) -> (u64, bool) {
    let dst = stack.cast::<u8>();
    // The rest of the page `sp` is in: 1..=PAGE bytes.
    let first = PAGE - (sp & (PAGE - 1));
    if first == 0 || first > PAGE {
        return (0, false);
    }
    // SAFETY: `first` <= PAGE <= STACK_COPY_BYTES; a fault makes the helper fail, not the task.
    if unsafe { read_user(dst, first, sp) }.is_err() {
        return (0, false);
    }
    let mut copied = first;
    let mut i = 0;
    while i < FULL_PAGES {
        let off = first + i * PAGE;
        if off > STACK_COPY_BYTES as u64 - PAGE {
            break;
        }
        // SAFETY: `off + PAGE <= STACK_COPY_BYTES`, checked above.
        if unsafe { read_user(dst.add(off as usize), PAGE, sp + off) }.is_err() {
            return (copied, false);
        }
        copied = off + PAGE;
        i += 1;
    }
    (copied, true)
}

/// # Safety
/// `dst` must have `len` writable bytes in a map value.
#[inline(always)]
unsafe fn read_user(dst: *mut u8, len: u64, src: u64) -> Result<(), ()> {
    // SAFETY: guaranteed by the caller; the helper checks the user address itself.
    let rc = unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_user(dst.cast(), len as u32, src as *const _)
    };
    if rc == 0 { Ok(()) } else { Err(()) }
}

#[cfg(bpf_target_arch = "x86_64")]
#[inline(always)]
fn user_ip_sp_bp(regs: *const pt_regs) -> (u64, u64, u64) {
    // SAFETY: `regs` is a program context or `bpf_task_pt_regs` result; the verifier makes the
    // loads fault-safe.
    unsafe {
        (
            core::ptr::read_volatile(&(*regs).rip) as u64,
            core::ptr::read_volatile(&(*regs).rsp) as u64,
            core::ptr::read_volatile(&(*regs).rbp) as u64,
        )
    }
}

#[cfg(bpf_target_arch = "aarch64")]
#[inline(always)]
fn user_ip_sp_bp(regs: *const pt_regs) -> (u64, u64, u64) {
    // SAFETY: as for x86_64.
    unsafe {
        let regs = regs.cast::<aya_ebpf::bindings::user_pt_regs>();
        (
            core::ptr::read_volatile(&(*regs).pc),
            core::ptr::read_volatile(&(*regs).sp),
            core::ptr::read_volatile(&(*regs).regs[29]),
        )
    }
}

#[inline(always)]
fn count(slot: u32) {
    if let Some(ptr) = CS_COUNTERS.get_ptr_mut(slot) {
        // SAFETY: this CPU's copy of a per-CPU array slot.
        unsafe { *ptr += 1 };
    }
}

mod runtime;
mod shared;
