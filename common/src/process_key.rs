//! Which process a datum belongs to: its PID **and** its start time.
//!
//! PIDs are reused: a PID alone can name a process that exited and a later one that got its
//! number. Every store keyed by process (histories, trends, readings, the selection) uses
//! [`ProcessKey`], so "is this still the same process" is answered in one place: same PID and
//! same start time. The D-Bus methods still take the two numbers as separate arguments and the
//! JSON keeps its `pid` / `start_time` fields; this type is what each side builds from them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{
    diagnostics::{MemoryDetail, OomKill},
    series::HistorySeries,
    snapshot::ProcessRow,
};

/// A process: PID plus start time (clock ticks after boot, `/proc/<pid>/stat` field 22).
///
/// Ordered by PID, then start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProcessKey {
    pub pid: u32,
    pub start_time: u64,
}

impl ProcessKey {
    pub const fn new(pid: u32, start_time: u64) -> ProcessKey {
        ProcessKey { pid, start_time }
    }

    /// The process a snapshot row describes.
    pub fn of(row: &ProcessRow) -> ProcessKey {
        ProcessKey::new(row.pid, row.start_time)
    }

    /// Whether a process seen as `pid`, started at `start_time`, is this one. A PID with
    /// another start time is a different process that reused the number.
    pub fn is(self, pid: u32, start_time: u64) -> bool {
        self == ProcessKey::new(pid, start_time)
    }
}

impl fmt::Display for ProcessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "process {} with start time {}",
            self.pid, self.start_time
        )
    }
}

impl ProcessRow {
    pub fn key(&self) -> ProcessKey {
        ProcessKey::of(self)
    }
}

impl HistorySeries {
    pub fn key(&self) -> ProcessKey {
        ProcessKey::new(self.pid, self.start_time)
    }
}

impl MemoryDetail {
    pub fn key(&self) -> ProcessKey {
        ProcessKey::new(self.pid, self.start_time)
    }
}

impl OomKill {
    /// The victim's key, if the collector knew its start time.
    pub fn key(&self) -> Option<ProcessKey> {
        self.start_time
            .map(|start| ProcessKey::new(self.pid, start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_pid_is_another_process() {
        let key = ProcessKey::new(42, 1_000);
        assert!(key.is(42, 1_000));
        assert!(!key.is(42, 1_001), "same PID, later start: PID reused");
        assert!(!key.is(43, 1_000));
        assert_ne!(key, ProcessKey::new(42, 1_001));
    }

    #[test]
    fn keys_order_by_pid_then_start_time() {
        let mut keys = vec![
            ProcessKey::new(9, 1),
            ProcessKey::new(2, 7),
            ProcessKey::new(2, 3),
        ];
        keys.sort();
        assert_eq!(
            keys,
            [
                ProcessKey::new(2, 3),
                ProcessKey::new(2, 7),
                ProcessKey::new(9, 1)
            ]
        );
    }

    #[test]
    fn serializes_with_the_wire_field_names() {
        let json = serde_json::to_string(&ProcessKey::new(7, 1007)).expect("json");
        assert_eq!(json, r#"{"pid":7,"start_time":1007}"#);
    }
}
