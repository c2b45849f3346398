//! System memory pressure: PSI from `/proc/pressure/memory` and swap / page-fault / OOM-kill
//! counters from `/proc/vmstat`, turned into rates between two reads.

use std::{collections::HashMap, time::Instant};

use memmon_common::diagnostics::SystemPressure;
use procfs::{Current as _, MemoryPressure};

/// The `/proc/vmstat` counters we follow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmCounters {
    pub pswpin: u64,
    pub pswpout: u64,
    pub pgfault: u64,
    pub pgmajfault: u64,
    /// Absent on kernels before 4.13.
    pub oom_kill: Option<u64>,
}

impl VmCounters {
    /// From `procfs::vmstat()`'s map; a missing swap or fault counter reads as 0.
    pub fn from_vmstat(map: &HashMap<String, i64>) -> VmCounters {
        let get = |k: &str| map.get(k).map(|&v| v.max(0) as u64);
        VmCounters {
            pswpin: get("pswpin").unwrap_or(0),
            pswpout: get("pswpout").unwrap_or(0),
            pgfault: get("pgfault").unwrap_or(0),
            pgmajfault: get("pgmajfault").unwrap_or(0),
            oom_kill: get("oom_kill"),
        }
    }
}

#[derive(Default)]
pub struct PressureReader {
    prev: Option<(Instant, VmCounters)>,
}

impl PressureReader {
    pub fn new() -> PressureReader {
        PressureReader::default()
    }

    /// One reading; `None` if /proc/vmstat cannot be read. PSI fields are `None` on kernels
    /// without PSI (or with `psi=0`).
    pub fn read(&mut self) -> Option<SystemPressure> {
        let counters = VmCounters::from_vmstat(&procfs::vmstat().ok()?);
        let psi = MemoryPressure::current().ok();
        Some(self.next(Instant::now(), counters, psi))
    }

    /// The counters of the last reading (the exporter publishes them as they are).
    pub fn counters(&self) -> Option<VmCounters> {
        self.prev.map(|(_, counters)| counters)
    }

    /// Rates between the previous reading and this one (0 on the first).
    pub fn next(
        &mut self,
        now: Instant,
        counters: VmCounters,
        psi: Option<MemoryPressure>,
    ) -> SystemPressure {
        let rate = |f: fn(&VmCounters) -> u64| match self.prev {
            Some((then, prev)) => {
                let secs = now.duration_since(then).as_secs_f64();
                if secs > 0.0 {
                    f(&counters).saturating_sub(f(&prev)) as f64 / secs
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        let pressure = SystemPressure {
            some_avg10: psi.as_ref().map(|p| f64::from(p.some.avg10)),
            full_avg10: psi.as_ref().map(|p| f64::from(p.full.avg10)),
            some_total_us: psi.as_ref().map(|p| p.some.total),
            full_total_us: psi.as_ref().map(|p| p.full.total),
            swap_in_per_s: rate(|c| c.pswpin),
            swap_out_per_s: rate(|c| c.pswpout),
            faults_per_s: rate(|c| c.pgfault),
            major_faults_per_s: rate(|c| c.pgmajfault),
            oom_kill_total: counters.oom_kill,
        };
        self.prev = Some((now, counters));
        pressure
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn reads_this_kernels_files() {
        let mut reader = PressureReader::new();
        let first = reader.read().expect("/proc/vmstat is readable");
        assert_eq!(first.faults_per_s, 0.0, "no rate before a second reading");
        assert!(first.oom_kill_total.is_some(), "Linux ≥ 4.13 has oom_kill");
        // This kernel has PSI (CONFIG_PSI); if a machine boots with psi=0 this says so.
        let psi = procfs::MemoryPressure::current().expect("/proc/pressure/memory");
        assert!(first.some_avg10.is_some() && first.full_total_us.is_some());
        assert!(
            psi.some.total >= psi.full.total,
            "some stall time includes full"
        );
        // Touch fresh pages between the readings: the fault rate must see them.
        std::thread::sleep(Duration::from_millis(20));
        let pages: Vec<Vec<u8>> = (0..2000).map(|_| vec![1u8; 4096]).collect();
        std::hint::black_box(&pages);
        let second = reader.read().expect("vmstat");
        assert!(second.faults_per_s > 0.0, "{second:?}");
    }

    #[test]
    fn rates_are_deltas_over_elapsed_time() {
        let mut reader = PressureReader::new();
        let t0 = Instant::now();
        let c = |pswpin, pgfault, oom| VmCounters {
            pswpin,
            pswpout: 0,
            pgfault,
            pgmajfault: 0,
            oom_kill: Some(oom),
        };
        reader.next(t0, c(100, 1000, 0), None);
        let p = reader.next(t0 + Duration::from_millis(500), c(150, 3000, 1), None);
        assert_eq!(p.swap_in_per_s, 100.0);
        assert_eq!(p.faults_per_s, 4000.0);
        assert_eq!(p.oom_kill_total, Some(1));
        assert_eq!(p.some_avg10, None);
        // A counter that went backwards (a wrap) is not a negative rate.
        let p = reader.next(t0 + Duration::from_millis(1500), c(10, 3000, 1), None);
        assert_eq!(p.swap_in_per_s, 0.0);
    }

    #[test]
    fn parses_real_vmstat_keys() {
        let map = procfs::vmstat().expect("vmstat");
        let c = VmCounters::from_vmstat(&map);
        assert!(c.pgfault > 0, "{c:?}");
        assert_eq!(Some(c.pgfault as i64), map.get("pgfault").copied());
    }
}
