//! Benchmark baseline: empty programs on exactly the tracepoints memmon uses, i.e. the kernel's
//! own cost of having a BPF program on them. Never loaded by memmon itself.
#![no_std]
#![no_main]

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};

#[tracepoint(category = "syscalls", name = "sys_exit_mmap")]
pub fn empty_exit_mmap(_ctx: TracePointContext) -> u32 {
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_munmap")]
pub fn empty_exit_munmap(_ctx: TracePointContext) -> u32 {
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_brk")]
pub fn empty_exit_brk(_ctx: TracePointContext) -> u32 {
    0
}

#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn empty_process_exit(_ctx: TracePointContext) -> u32 {
    0
}

mod runtime;
