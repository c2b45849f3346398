//! The D-Bus contract of `io.github.memmon.Helper1`: names, errors, the client proxy and the
//! payloads. Documented in docs/dbus-api.md; the service side is in `service.rs`.
//!
//! Snapshots and histories travel as JSON documents (`s`) of the `memmon_common::snapshot` and
//! [`crate::history`] types, exactly what `memmon-helper snapshot --json` prints, so every
//! client, CLI and test reads one schema.

use std::collections::HashMap;

use zbus::OwnedVariant;

pub const BUS_NAME: &str = "io.github.memmon.Helper1";
pub const OBJECT_PATH: &str = "/io/github/memmon/Helper1";
pub const INTERFACE: &str = "io.github.memmon.Helper1";
/// The polkit action every data method checks for the caller.
pub const POLKIT_ACTION: &str = "io.github.memmon.monitor";

pub const MIN_INTERVAL_MS: u32 = 250;
pub const MAX_INTERVAL_MS: u32 = 10_000;
pub const DEFAULT_INTERVAL_MS: u32 = 1_000;
pub const MAX_LIMIT: u32 = 1_000;

/// Errors the helper returns; names are `io.github.memmon.Helper1.Error.<Variant>`.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "io.github.memmon.Helper1.Error")]
pub enum HelperError {
    #[zbus(error)]
    ZBus(zbus::Error),
    /// The caller may not read process data (polkit said no).
    NotAuthorized(String),
    /// The caller could be authorised after authenticating, but did not allow interaction or
    /// no authentication agent is running.
    AuthenticationRequired(String),
    /// A bad argument (unknown sort key, limit out of range, unknown process, interval out of
    /// range); the message says which and what is accepted.
    InvalidArgument(String),
    /// The data is not there yet (first scan still running) or the collector failed.
    Unavailable(String),
}

#[zbus::proxy(
    interface = "io.github.memmon.Helper1",
    default_service = "io.github.memmon.Helper1",
    default_path = "/io/github/memmon/Helper1"
)]
pub trait Helper1 {
    /// version, mode, mode_reason, interval_ms, process_count, uptime_s, bpf_drops,
    /// history_processes.
    #[zbus(allow_interactive_auth)]
    fn get_info(&self) -> zbus::Result<HashMap<String, OwnedVariant>>;

    /// JSON `Snapshot` of the top `limit` (1..=1000) processes by `sort_key`.
    #[zbus(allow_interactive_auth)]
    fn get_snapshot(&self, sort_key: &str, descending: bool, limit: u32) -> zbus::Result<String>;

    /// JSON `HistorySeries` of one process (PID + start time in clock ticks after boot).
    #[zbus(allow_interactive_auth)]
    fn get_history(&self, pid: u32, start_time: u64) -> zbus::Result<String>;

    /// JSON array of `SystemSample` (memory, PSI, swap and fault rates) newer than
    /// `since_unix_ms` (0 = all kept, up to 30 minutes).
    #[zbus(allow_interactive_auth)]
    fn get_system_history(&self, since_unix_ms: u64) -> zbus::Result<String>;

    /// JSON `MemoryDetail` (PSS, USS, swap PSS from smaps_rollup) of one process; read at most
    /// once per 5 s per process, later calls get that reading.
    #[zbus(allow_interactive_auth)]
    fn get_memory_detail(&self, pid: u32, start_time: u64) -> zbus::Result<String>;

    /// Watches every RSS change of one process through `kmem:rss_stat` (exact peaks between
    /// samples, in its rows' `high_res`), or stops. One process at a time, the last caller's;
    /// it ends when that caller leaves the bus. Full mode only. While on, every page fault on
    /// the system costs more (see `memmon_common::diagnostics::RSS_STAT_NS_PER_EVENT_OTHERS`).
    #[zbus(allow_interactive_auth)]
    fn set_high_resolution(&self, pid: u32, start_time: u64, enable: bool) -> zbus::Result<()>;

    /// Asks for a collection interval (250..=10000 ms) while this client is connected.
    #[zbus(allow_interactive_auth)]
    fn set_interval(&self, ms: u32) -> zbus::Result<()>;
}
