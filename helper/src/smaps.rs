//! PSS / USS / swap-PSS of one process from `/proc/<pid>/smaps_rollup`, on demand only.
//!
//! Reading smaps_rollup walks every page table of the process under its mmap lock, which can
//! stall a large process: it is never read periodically or for all processes, and the same
//! process is read at most once per [`MIN_INTERVAL_MS`] (later requests get the cached copy).

use std::collections::HashMap;

use memmon_common::{diagnostics::MemoryDetail, process_key::ProcessKey};

pub const MIN_INTERVAL_MS: u64 = 5_000;
/// Cached readings kept. When full, the oldest reading older than [`MIN_INTERVAL_MS`] makes
/// room; a cache full of fresh readings refuses new walks ([`DetailError::Busy`]) rather than
/// forget a reading and walk that process again too soon.
const MAX_CACHED: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum DetailError {
    #[error("no process {pid} with start time {start_time} (it exited, or the PID was reused)")]
    NoSuchProcess { pid: u32, start_time: u64 },
    #[error(
        "too many processes were measured in the last {} s; retry in a moment",
        MIN_INTERVAL_MS / 1000
    )]
    Busy,
    #[error("cannot read /proc/{pid}/smaps_rollup: {source}")]
    Read {
        pid: u32,
        #[source]
        source: procfs::ProcError,
    },
}

/// Reads the rollup of `pid`, checking it is still the process that started at `start_time`.
pub fn read_detail(pid: u32, start_time: u64, now_ms: u64) -> Result<MemoryDetail, DetailError> {
    let gone = || DetailError::NoSuchProcess { pid, start_time };
    let process =
        crate::proc_scan::open_process(ProcessKey::new(pid, start_time)).ok_or_else(gone)?;
    let rollup = process
        .smaps_rollup()
        .map_err(|source| DetailError::Read { pid, source })?;
    let map = rollup
        .memory_map_rollup
        .0
        .first()
        .map(|m| &m.extension.map)
        .ok_or_else(gone)?; // a kernel thread or a zombie has no mappings
    let kb = |key: &str| map.get(key).copied().unwrap_or(0) / 1024;
    Ok(MemoryDetail {
        pid,
        start_time,
        measured_unix_ms: now_ms,
        rss_kb: kb("Rss"),
        pss_kb: kb("Pss"),
        pss_anon_kb: kb("Pss_Anon"),
        pss_file_kb: kb("Pss_File"),
        pss_shmem_kb: kb("Pss_Shmem"),
        uss_kb: kb("Private_Clean") + kb("Private_Dirty"),
        swap_kb: kb("Swap"),
        swap_pss_kb: kb("SwapPss"),
    })
}

/// Rate-limits [`read_detail`] per process.
#[derive(Default)]
pub struct DetailCache {
    readings: HashMap<ProcessKey, MemoryDetail>,
}

impl DetailCache {
    pub fn new() -> DetailCache {
        DetailCache::default()
    }

    /// A reading at most [`MIN_INTERVAL_MS`] old: the cached one, or a fresh read.
    pub fn get(&mut self, key: ProcessKey, now_ms: u64) -> Result<MemoryDetail, DetailError> {
        if let Some(d) = self.readings.get(&key)
            && now_ms.saturating_sub(d.measured_unix_ms) < MIN_INTERVAL_MS
        {
            return Ok(*d);
        }
        if self.readings.len() >= MAX_CACHED && !self.readings.contains_key(&key) {
            let oldest = self
                .readings
                .iter()
                .min_by_key(|(_, d)| d.measured_unix_ms)
                .filter(|(_, d)| now_ms.saturating_sub(d.measured_unix_ms) >= MIN_INTERVAL_MS)
                .map(|(key, _)| *key);
            match oldest {
                Some(key) => self.readings.remove(&key),
                None => return Err(DetailError::Busy),
            };
        }
        let detail = read_detail(key.pid, key.start_time, now_ms)?;
        self.readings.insert(key, detail);
        Ok(detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own_start_time() -> u64 {
        procfs::process::Process::myself()
            .and_then(|p| p.stat())
            .expect("own stat")
            .starttime
    }

    #[test]
    fn reads_own_rollup_from_this_kernel() {
        let pid = std::process::id();
        // 8 MiB of private, touched memory: it must appear in USS and PSS.
        let block = vec![7u8; 8 << 20];
        std::hint::black_box(&block);
        let d = read_detail(pid, own_start_time(), 1).expect("own smaps_rollup");
        assert!(d.uss_kb >= 8 * 1024, "{d:?}");
        assert!(d.pss_kb >= d.uss_kb && d.rss_kb >= d.pss_kb, "{d:?}");
        assert!(d.pss_anon_kb >= 8 * 1024, "{d:?}");
        assert_eq!(
            d.pss_kb,
            d.pss_anon_kb + d.pss_file_kb + d.pss_shmem_kb,
            "{d:?}"
        );
    }

    #[test]
    fn a_wrong_start_time_is_refused() {
        let err = read_detail(std::process::id(), own_start_time() + 1, 1).expect_err("stale");
        assert!(matches!(err, DetailError::NoSuchProcess { .. }), "{err}");
        assert!(err.to_string().contains("exited, or the PID was reused"));
    }

    #[test]
    fn the_cache_reads_a_process_at_most_once_per_interval() {
        let own = ProcessKey::new(std::process::id(), own_start_time());
        let mut cache = DetailCache::new();
        let a = cache.get(own, 10_000).expect("read");
        let b = cache
            .get(own, 10_000 + MIN_INTERVAL_MS - 1)
            .expect("cached");
        assert_eq!(
            b.measured_unix_ms, a.measured_unix_ms,
            "served from the cache"
        );
        let c = cache.get(own, 10_000 + MIN_INTERVAL_MS).expect("fresh");
        assert_eq!(c.measured_unix_ms, 10_000 + MIN_INTERVAL_MS);
    }

    #[test]
    fn a_full_cache_evicts_only_stale_readings_never_a_fresh_one() {
        let key = ProcessKey::new(std::process::id(), own_start_time());
        let mut cache = DetailCache::new();
        let own = cache.get(key, 100_000).expect("read");
        // Fill the cache with fresh readings of other (made-up) processes.
        for i in 1..MAX_CACHED as u64 {
            let fake = MemoryDetail {
                measured_unix_ms: 100_000 + i,
                ..own
            };
            cache
                .readings
                .insert(ProcessKey::new(u32::MAX - i as u32, i), fake);
        }
        assert_eq!(cache.readings.len(), MAX_CACHED);
        // Within the interval our reading is served from the cache, not evicted.
        let again = cache.get(key, 103_000).expect("cached");
        assert_eq!(again.measured_unix_ms, 100_000);
        // A new process while every reading is fresh: refused, nothing forgotten.
        assert!(matches!(
            cache.get(ProcessKey::new(1, 0), 103_000),
            Err(DetailError::Busy)
        ));
        assert_eq!(cache.readings.len(), MAX_CACHED);
        // Later, the oldest stale reading (ours) makes room: exactly one entry goes.
        let _ = cache.get(ProcessKey::new(key.pid + 1_000_000, 1), 105_000);
        assert!(!cache.readings.contains_key(&key));
        assert_eq!(cache.readings.len(), MAX_CACHED - 1);
    }
}
