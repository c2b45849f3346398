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
/// The polkit action every method checks for the caller: snapshots, histories, system history,
/// info, interval. `allow_active=yes`: the local active user needs no password.
pub const ACTION_MONITOR: &str = "io.github.memmon.monitor";
/// The polkit action for what costs or reveals more: `GetMemoryDetail` of a process the caller
/// could not read itself, and `SetHighResolution`. `auth_admin_keep` for everyone.
pub const ACTION_INSPECT: &str = "io.github.memmon.inspect";

pub const MIN_INTERVAL_MS: u32 = 250;
pub const MAX_INTERVAL_MS: u32 = 10_000;
pub const DEFAULT_INTERVAL_MS: u32 = 1_000;
pub const MAX_LIMIT: u32 = 1_000;
/// App ids longer than this are refused (real ones are well below 300 bytes).
pub const MAX_APP_ID: usize = 1_024;
/// Call-site sessions running at once on the machine (each holds an 8 MiB ring buffer and
/// decodes stacks on a thread of its own).
pub const MAX_CALLSITE_SESSIONS: usize = 2;

/// Errors the helper returns; names are `io.github.memmon.Helper1.Error.<Variant>`.
#[derive(Debug, Clone, zbus::DBusError)]
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
    /// Retry later: the helper is busy (too many authorisation checks in flight, or this client
    /// calls too fast), polkit did not answer in time, or the data is not there yet. Never a
    /// refusal.
    Unavailable(String),
}

/// The generated proxy. Its calls never allow interactive authorisation: clients use
/// [`crate::client::HelperClient`], which decides per call and bounds every call in time.
#[zbus::proxy(
    interface = "io.github.memmon.Helper1",
    default_service = "io.github.memmon.Helper1",
    default_path = "/io/github/memmon/Helper1"
)]
pub trait Helper1 {
    /// version, mode, mode_reason, interval_ms, process_count, uptime_s, bpf_drops,
    /// history_processes, high_res_pid, high_res_error (see docs/dbus-api.md).
    fn get_info(&self) -> zbus::Result<HashMap<String, OwnedVariant>>;

    /// JSON `Snapshot` of the top `limit` (1..=1000) processes by `sort_key`.
    fn get_snapshot(&self, sort_key: &str, descending: bool, limit: u32) -> zbus::Result<String>;

    /// JSON `HistorySeries` of one process (PID + start time in clock ticks after boot).
    fn get_history(&self, pid: u32, start_time: u64) -> zbus::Result<String>;

    /// JSON array of `SystemSample` (memory, PSI, swap and fault rates) newer than
    /// `since_unix_ms` (0 = all kept, up to 30 minutes).
    fn get_system_history(&self, since_unix_ms: u64) -> zbus::Result<String>;

    /// JSON `MemoryDetail` (PSS, USS, swap PSS from smaps_rollup) of one process; read at most
    /// once per 5 s per process, later calls get that reading.
    fn get_memory_detail(&self, pid: u32, start_time: u64) -> zbus::Result<String>;

    /// Watches every RSS change of one process through `kmem:rss_stat` (exact peaks between
    /// samples, in its rows' `high_res`), or stops. One process at a time, the last caller's;
    /// it ends when that caller leaves the bus. Full mode only. While on, every page fault on
    /// the system costs more (see `memmon_common::diagnostics::RSS_STAT_NS_PER_EVENT_OTHERS`).
    fn set_high_resolution(&self, pid: u32, start_time: u64, enable: bool) -> zbus::Result<()>;

    /// JSON `AppsSnapshot` of the top `limit` (1..=1000) apps by `sort_key` (an `AppSortKey`
    /// name); the apps named in `expanded` (at most 16) carry their processes (up to 500 each).
    fn get_apps(
        &self,
        sort_key: &str,
        descending: bool,
        limit: u32,
        expanded: &[&str],
    ) -> zbus::Result<String>;

    /// JSON `AppHistorySeries` of one app (its `id`), with its limit and OOM events.
    fn get_app_history(&self, id: &str) -> zbus::Result<String>;

    /// Asks for a collection interval (250..=10000 ms) while this client is connected.
    fn set_interval(&self, ms: u32) -> zbus::Result<()>;

    /// Starts a call-site session for one process (needs `inspect`): `source` is `mappings` or
    /// `heap`, `seconds` 1..=600, `sample_every` the heap sampling interval (0: adaptive).
    /// Returns the session's id. One session per connection (a new one ends the previous);
    /// it ends when its time is up, its process exits, `StopCallSites` is called, or the
    /// connection leaves the bus.
    fn start_call_sites(
        &self,
        pid: u32,
        start_time: u64,
        source: &str,
        seconds: u32,
        sample_every: u32,
    ) -> zbus::Result<u32>;

    /// JSON `CallSiteReport` of this connection's session `session`: so far while it runs,
    /// final once it ended (state `finished` with the reason).
    fn get_call_sites(&self, session: u32) -> zbus::Result<String>;

    /// Ends this connection's session `session` early; its report stays readable.
    fn stop_call_sites(&self, session: u32) -> zbus::Result<()>;
}
