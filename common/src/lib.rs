//! Types shared by memmon's in-kernel programs, the helper and the app.
//!
//! The `#[repr(C)]` records here are written by the kernel and read by user space: they have no
//! implicit padding, no `bool` and no pointers. The `std` feature adds the snapshot model that the
//! helper, the CLI and the GUI exchange; it must never be needed by the eBPF crate.
#![cfg_attr(not(feature = "std"), no_std)]

#[cfg(feature = "std")]
pub mod apps;
pub mod callsite_record;
#[cfg(feature = "std")]
pub mod callsites;
#[cfg(feature = "std")]
pub mod column;
#[cfg(feature = "std")]
pub mod diagnostics;
#[cfg(feature = "std")]
pub mod export;
#[cfg(feature = "std")]
pub mod process_key;
#[cfg(feature = "std")]
pub mod series;
#[cfg(feature = "std")]
pub mod snapshot;
#[cfg(feature = "std")]
pub mod text;

/// Hash map: thread-group id → [`ProcRecord`].
pub const MAP_PROCS: &str = "PROCS";
/// Per-CPU array of [`DROP_SLOTS`] counters: events lost because a map was full.
pub const MAP_DROPS: &str = "DROPS";

/// Global: the system page size; mmap/munmap lengths are rounded up to it.
pub const GLOBAL_PAGE_SIZE: &str = "PAGE_SIZE";
/// Global: byte offset of `group_dead` in the `sched_process_exit` record, 0 when the kernel
/// has no such field (then the thread-group leader's exit ends the process).
pub const GLOBAL_EXIT_GROUP_DEAD_OFFSET: &str = "EXIT_GROUP_DEAD_OFFSET";

/// Globals: device and inode of the helper's PID namespace (`/proc/self/ns/pid`), both 0 in the
/// initial namespace. Kernel programs then report PIDs as that namespace numbers them.
pub const GLOBAL_PIDNS_DEV: &str = "PIDNS_DEV";
pub const GLOBAL_PIDNS_INO: &str = "PIDNS_INO";

/// Hash map: victim PID (as the kernel numbers it) → [`OomVictim`], filled by the
/// `oom:mark_victim` program and drained by user space.
pub const MAP_OOM_VICTIMS: &str = "OOM_VICTIMS";
pub const MAX_OOM_VICTIMS: u32 = 64;

/// Array of one [`RssWatch`]: the process watched in high resolution through `kmem:rss_stat`.
pub const MAP_RSS_WATCH: &str = "RSS_WATCH";

/// Drop slot: a new process could not be added to [`MAP_PROCS`].
pub const DROP_PROCS_FULL: u32 = 0;
pub const DROP_SLOTS: u32 = 1;

/// Entries compiled into the per-process map; the helper resizes it at load time to the
/// machine's `pid_max`, within [`MIN_TRACKED_PROCESSES`]..=[`MAX_TRACKED_PROCESSES_CAP`]
/// ([`tracked_processes_for`]). Processes beyond a full map are counted in [`DROP_PROCS_FULL`].
pub const MAX_TRACKED_PROCESSES: u32 = 32_768;
pub const MIN_TRACKED_PROCESSES: u32 = 4_096;
/// The map is preallocated (tracepoint programs need that on older kernels): about 160 bytes an
/// entry, so at most ~10 MiB of kernel memory even where systemd raised pid_max to 4,194,304.
pub const MAX_TRACKED_PROCESSES_CAP: u32 = 65_536;

/// How many processes the per-process map holds on a machine with this `pid_max` (no more
/// processes than PIDs can exist at once).
pub const fn tracked_processes_for(pid_max: u32) -> u32 {
    if pid_max < MIN_TRACKED_PROCESSES {
        MIN_TRACKED_PROCESSES
    } else if pid_max > MAX_TRACKED_PROCESSES_CAP {
        MAX_TRACKED_PROCESSES_CAP
    } else {
        pid_max
    }
}

/// Exact, additive counters of one process. The kernel updates them with atomic adds, so threads
/// mapping at the same time on different CPUs never lose an update.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcCounters {
    /// Successful mmap calls.
    pub mmap_count: u64,
    /// Bytes mapped by successful mmap calls (length rounded up to pages).
    pub mmap_bytes: u64,
    /// Successful munmap calls.
    pub munmap_count: u64,
    /// Bytes unmapped by successful munmap calls (length rounded up to pages).
    pub munmap_bytes: u64,
    /// brk calls that moved the break up.
    pub brk_grow_count: u64,
    /// Bytes the break moved up.
    pub brk_grow_bytes: u64,
    /// brk calls that moved the break down.
    pub brk_shrink_count: u64,
    /// Bytes the break moved down.
    pub brk_shrink_bytes: u64,
}

impl ProcCounters {
    /// Bytes allocated: mmap'd plus brk growth.
    pub fn total_allocated(&self) -> u64 {
        self.mmap_bytes.wrapping_add(self.brk_grow_bytes)
    }

    /// Bytes freed: munmap'd plus brk shrink.
    pub fn total_freed(&self) -> u64 {
        self.munmap_bytes.wrapping_add(self.brk_shrink_bytes)
    }

    /// Allocation operations: successful mmaps plus brk growths.
    pub fn alloc_count(&self) -> u64 {
        self.mmap_count.wrapping_add(self.brk_grow_count)
    }

    /// Free operations: successful munmaps plus brk shrinks.
    pub fn free_count(&self) -> u64 {
        self.munmap_count.wrapping_add(self.brk_shrink_count)
    }

    /// Net mapped bytes since tracking began (negative when a process unmaps memory it had
    /// mapped before tracking started).
    pub fn net_mapped(&self) -> i64 {
        (self.total_allocated() as i64).wrapping_sub(self.total_freed() as i64)
    }
}

/// Process-wide state next to the counters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcState {
    /// `bpf_ktime_get_boot_ns` when the entry was created; user space ignores an entry created
    /// before the process with this PID started (a reused PID never inherits old counters).
    pub first_seen_ns: u64,
    /// The last program break seen, 0 until the first brk call returns.
    pub last_brk: u64,
    /// Net mapped bytes (atomic adds, exact).
    pub net: i64,
    /// The highest `net` reached. Exact while one thread maps at a time; threads mapping at the
    /// same instant on different CPUs can make it lag (user space clamps it to the exact net).
    pub peak_net: i64,
}

/// Everything the kernel keeps for one process: one map value, so one lookup per event.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcRecord {
    pub counters: ProcCounters,
    pub state: ProcState,
}

/// What the kernel said when its OOM killer chose a victim (`oom:mark_victim`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OomVictim {
    /// `bpf_ktime_get_boot_ns` at the event.
    pub marked_ns: u64,
    /// anon + file + shmem RSS of the victim, KiB.
    pub rss_kb: u64,
    /// The victim's `comm`, NUL-padded.
    pub comm: [u8; 16],
}

/// High-resolution RSS of one process, from every `kmem:rss_stat` event of it (each change of
/// one of its RSS counters). User space sets `tgid` (0 = off) and seeds `members`; the kernel
/// keeps the rest current; user space reads it each tick and resets `max_rss` to `rss`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RssWatch {
    pub tgid: u32,
    pub _pad: u32,
    /// Bytes per counter: file pages, anonymous pages, swap entries, shmem pages.
    pub members: [i64; 4],
    /// file + anon + shmem at the last event, bytes.
    pub rss: i64,
    /// The highest `rss` since user space last reset it.
    pub max_rss: i64,
    /// rss_stat events seen for the watched process.
    pub events: u64,
}

#[cfg(feature = "user")]
// SAFETY: `#[repr(C)]` of u32/i64/u64 fields with explicit padding (64 bytes, no implicit
// padding); every bit pattern is valid.
unsafe impl aya::Pod for RssWatch {}

#[cfg(feature = "user")]
// SAFETY: `#[repr(C)]` of two u64 and a byte array (32 bytes, no padding); every bit pattern is
// valid.
unsafe impl aya::Pod for OomVictim {}

#[cfg(feature = "user")]
// SAFETY: plain `#[repr(C)]` record of u64/i64 fields with no padding; every bit pattern is valid.
unsafe impl aya::Pod for ProcCounters {}
#[cfg(feature = "user")]
// SAFETY: plain `#[repr(C)]` record of u64/i64 fields with no padding; every bit pattern is valid.
unsafe impl aya::Pod for ProcState {}
#[cfg(feature = "user")]
// SAFETY: two padding-free `#[repr(C)]` records of u64/i64 fields; every bit pattern is valid.
unsafe impl aya::Pod for ProcRecord {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_have_no_padding() {
        assert_eq!(core::mem::size_of::<ProcCounters>(), 8 * 8);
        assert_eq!(core::mem::size_of::<ProcState>(), 4 * 8);
        assert_eq!(core::mem::size_of::<ProcRecord>(), 12 * 8);
        assert_eq!(core::mem::size_of::<OomVictim>(), 32);
        assert_eq!(core::mem::size_of::<RssWatch>(), 64);
    }

    #[test]
    fn the_process_map_follows_pid_max_within_bounds() {
        assert_eq!(
            tracked_processes_for(32_768),
            32_768,
            "the kernel's default"
        );
        assert_eq!(
            tracked_processes_for(4_194_304),
            MAX_TRACKED_PROCESSES_CAP,
            "systemd's"
        );
        assert_eq!(tracked_processes_for(300), MIN_TRACKED_PROCESSES);
        assert_eq!(tracked_processes_for(50_000), 50_000);
    }

    #[test]
    fn derived_totals() {
        let a = ProcCounters {
            mmap_count: 2,
            mmap_bytes: 8192,
            munmap_count: 2,
            munmap_bytes: 20480,
            brk_grow_count: 1,
            brk_grow_bytes: 100,
            brk_shrink_count: 0,
            brk_shrink_bytes: 0,
        };
        assert_eq!(a.alloc_count(), 3);
        assert_eq!(a.free_count(), 2);
        assert_eq!(a.total_allocated(), 8292);
        assert_eq!(a.total_freed(), 20480);
        assert_eq!(a.net_mapped(), 8292 - 20480);
    }
}
