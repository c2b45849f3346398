//! What the call-site programs (`ebpf/src/callsites.rs`) send to the helper: one record per
//! event of the watched process, a fixed header followed by a copy of the user stack.
//!
//! The programs are loaded for one call-site session and unloaded when it ends; the records are
//! unwound in user space from `.eh_frame` (framehop), so no frame pointers are needed.

/// Ring buffer of records ([`CallSiteHeader`] + `stack_len` bytes of user stack).
pub const MAP_CS_EVENTS: &str = "CS_EVENTS";
/// Array of one [`CallSiteConfig`], written by user space while the programs run.
pub const MAP_CS_CONFIG: &str = "CS_CONFIG";
/// Per-CPU array of [`CS_COUNTER_SLOTS`] counters.
pub const MAP_CS_COUNTERS: &str = "CS_COUNTERS";
/// Global: the watched process (thread-group id as the helper's PID namespace numbers it).
pub const GLOBAL_CS_TGID: &str = "CS_TGID";

/// Bytes of user stack copied per record, from the stack pointer up. A stack deeper than this
/// loses its outermost frames (the record says it was cut); the frames nearest the allocation,
/// which decide the call site, are always kept.
pub const STACK_COPY_BYTES: usize = 16 * 1024;
/// The ring buffer's size: ~500 full records, a quarter of a second at the adaptive sampler's
/// highest rate.
pub const EVENTS_RING_BYTES: u32 = 8 << 20;
/// Sampled heap blocks the kernel remembers (to match their `free`); more are counted in
/// [`CS_LIVE_FULL`] and not reported.
pub const MAX_LIVE_SAMPLES: u32 = 131_072;
/// Threads inside an allocator call at once (entry seen, return not yet).
pub const MAX_PENDING_CALLS: u32 = 16_384;

/// Counter slots.
/// Heap calls seen (malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign).
pub const CS_ALLOCS_SEEN: u32 = 0;
/// Heap calls sampled (a record was sent or tried).
pub const CS_ALLOCS_SAMPLED: u32 = 1;
/// `free` calls seen.
pub const CS_FREES_SEEN: u32 = 2;
/// Records lost: the ring buffer was full.
pub const CS_RING_FULL: u32 = 3;
/// Sampled blocks not recorded: the live table was full.
pub const CS_LIVE_FULL: u32 = 4;
/// Records without a stack: not even the first stack page could be read.
pub const CS_NO_STACK: u32 = 5;
/// Mapping-source events of the watched process (mmap, munmap, mremap, brk).
pub const CS_MAP_EVENTS: u32 = 6;
pub const CS_COUNTER_SLOTS: u32 = 7;

/// Record kinds.
/// A successful mmap: `addr` = the mapping, `len` = its length, `aux` = flags in the lower and
/// prot in the upper 32 bits, `aux2` = fd.
pub const KIND_MMAP: u32 = 1;
/// A successful munmap of `addr`..`addr + len` (no stack).
pub const KIND_MUNMAP: u32 = 2;
/// A successful mremap: `addr`/`len` the new mapping, `aux`/`aux2` the old address and length.
pub const KIND_MREMAP: u32 = 3;
/// A brk call that returned the break `addr` (unchanged when it failed).
pub const KIND_BRK: u32 = 4;
/// A sampled heap block: `addr`, `len` bytes, standing for `weight` blocks like it.
pub const KIND_ALLOC: u32 = 5;
/// A sampled heap block at `addr` was freed (no stack).
pub const KIND_FREE: u32 = 6;

/// Set in `flags` when the stack copy stopped at [`STACK_COPY_BYTES`] (the stack may be deeper).
pub const FLAG_STACK_CUT: u32 = 1;

/// What user space tells the running programs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallSiteConfig {
    /// Record one heap call in this many (random, so no allocation pattern can alias with it);
    /// 0 stops recording new blocks (frees are still matched).
    pub sample_every: u32,
    pub _pad: u32,
}

/// The fixed part of a record; `stack_len` bytes of the user stack, read from `sp` up, follow.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallSiteHeader {
    pub kind: u32,
    pub stack_len: u32,
    /// The thread (as the helper's PID namespace numbers it).
    pub tid: u32,
    pub flags: u32,
    /// `bpf_ktime_get_boot_ns` at the event.
    pub time_ns: u64,
    pub addr: u64,
    pub len: u64,
    pub aux: u64,
    pub aux2: u64,
    /// For [`KIND_ALLOC`]: the sampling interval in force, so the block stands for this many.
    pub weight: u64,
    /// User registers where the stack copy starts: instruction, stack and frame pointer.
    pub ip: u64,
    pub sp: u64,
    pub bp: u64,
}

/// Header size in bytes (the stack starts here).
pub const CALL_SITE_HEADER_BYTES: usize = core::mem::size_of::<CallSiteHeader>();

/// A whole record as the program builds it (in a per-CPU scratch slot, too big for the BPF
/// stack); only `CALL_SITE_HEADER_BYTES + stack_len` bytes are sent.
#[repr(C)]
pub struct CallSiteRecord {
    pub header: CallSiteHeader,
    pub stack: [u8; STACK_COPY_BYTES],
}

#[cfg(feature = "user")]
// SAFETY: `#[repr(C)]` of two u32 (8 bytes, no padding); every bit pattern is valid.
unsafe impl aya::Pod for CallSiteConfig {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_has_no_implicit_padding() {
        // 4 u32 + 9 u64: any padding would make the record's layout compiler-dependent.
        assert_eq!(CALL_SITE_HEADER_BYTES, 4 * 4 + 9 * 8);
        assert_eq!(
            core::mem::size_of::<CallSiteRecord>(),
            CALL_SITE_HEADER_BYTES + STACK_COPY_BYTES
        );
        // Per-CPU array values must fit the kernel's per-CPU unit (32 KiB).
        assert!(core::mem::size_of::<CallSiteRecord>() <= 32 * 1024);
    }
}
