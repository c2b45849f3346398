//! memmon's collector library: the /proc scanner (always), the eBPF tracker (feature `ebpf`) and
//! the collector that merges them into snapshots. The GUI uses it without the `ebpf` feature for
//! its embedded mode; the `memmon-helper` binary uses all of it.

pub mod access;
pub mod apps;
pub mod authorize;
/// Allocation call sites of one process (eBPF; unwinding is x86_64 for now).
#[cfg(all(feature = "ebpf", target_arch = "x86_64"))]
pub mod callsites;
pub mod client;
pub mod collector;
pub mod dbus;
/// `memmon-helper export`: Prometheus / OpenMetrics over HTTP.
#[cfg(feature = "exporter")]
pub mod export;
pub mod history;
pub mod oom;
pub mod pressure;
pub mod privileges;
pub mod proc_scan;
pub mod service;
pub mod smaps;
/// The eBPF programs; a build without the `ebpf` feature gets a tracker with the same API that
/// never starts and says why (`tracker/none.rs`).
#[cfg(feature = "ebpf")]
pub mod tracker;
#[cfg(not(feature = "ebpf"))]
#[path = "tracker/none.rs"]
pub mod tracker;
pub mod trends;

pub use collector::{CollectError, Collector};
