//! The tracker of a build without the `ebpf` feature (the GUI's embedded collector, or
//! `--no-default-features`): the same API as the real one (`tracker.rs`), but [`Tracker::start`]
//! always fails and says why, so the collector runs on /proc alone and shows that reason. No
//! [`Tracker`] value can exist, so its other methods are never called.

use std::{collections::HashSet, convert::Infallible};

use memmon_common::{OomVictim, ProcRecord, RssWatch};

#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    #[error("memmon-helper was built without the ebpf feature")]
    NotBuilt,
}

/// Never constructed: [`Tracker::start`] always returns [`TrackerError::NotBuilt`].
pub struct Tracker {
    never: Infallible,
}

impl Tracker {
    pub fn start(_page_size: u64) -> Result<Tracker, TrackerError> {
        Err(TrackerError::NotBuilt)
    }

    pub fn watch_rss(&mut self, _target: Option<(u32, [i64; 4])>) -> Result<(), String> {
        match self.never {}
    }

    pub fn take_rss_watch(&mut self) -> Option<RssWatch> {
        match self.never {}
    }

    pub fn rss_watch_available(&self) -> Result<(), String> {
        match self.never {}
    }

    pub fn names_oom_victims(&self) -> bool {
        match self.never {}
    }

    pub fn drain_oom_victims(&mut self) -> Vec<(u32, OomVictim)> {
        match self.never {}
    }

    pub fn record(&self, _tgid: u32) -> Option<ProcRecord> {
        match self.never {}
    }

    pub fn forget(&mut self, _tgid: u32) {
        match self.never {}
    }

    pub fn retain(&mut self, _alive: &HashSet<u32>) -> usize {
        match self.never {}
    }

    pub fn capacity(&self) -> Option<u32> {
        match self.never {}
    }

    pub fn drops(&self) -> u64 {
        match self.never {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_says_why_there_is_no_data() {
        let err = Tracker::start(4096).err().expect("never starts");
        assert_eq!(
            err.to_string(),
            "memmon-helper was built without the ebpf feature"
        );
    }

    #[test]
    fn the_collector_runs_on_proc_alone_and_says_why() {
        let mut c = crate::Collector::with_ebpf();
        assert_eq!(c.mode(), memmon_common::snapshot::Mode::ProcOnly);
        assert_eq!(
            c.mode_reason(),
            Some("memmon-helper was built without the ebpf feature — /proc data only")
        );
        assert_eq!(
            c.watch_rss(None),
            Err("high resolution needs eBPF (Full mode)".into())
        );
        let snap = c.collect().expect("collect");
        assert!(snap.processes.iter().all(|r| r.alloc.is_none()));
        assert_eq!(snap.bpf_drops, 0);
    }
}
