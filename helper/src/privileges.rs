//! Least privilege for `memmon-helper serve`: it keeps only the capabilities it uses, in code,
//! so it is confined the same way whether systemd, D-Bus or a person started it.
//!
//! | capability | for |
//! |---|---|
//! | `CAP_BPF` | loading the programs and reading their maps |
//! | `CAP_PERFMON` | attaching them to tracepoints (`perf_event_open`) |
//! | `CAP_SYS_PTRACE` | `smaps_rollup` of another user's process (`GetMemoryDetail`) |
//! | `CAP_DAC_READ_SEARCH` | reading /proc files of processes whose directories are not world-readable |
//!
//! The programs are loaded again each time the collector restarts (after an idle period), so
//! these stay for the helper's lifetime; everything else is dropped from the effective,
//! permitted, inheritable, ambient and bounding sets before the helper talks to the bus.

use caps::{CapSet, Capability, CapsHashSet};

pub const KEPT: [Capability; 4] = [
    Capability::CAP_BPF,
    Capability::CAP_PERFMON,
    Capability::CAP_SYS_PTRACE,
    Capability::CAP_DAC_READ_SEARCH,
];

#[derive(Debug, thiserror::Error)]
#[error("cannot change the {set} capability set: {source}")]
pub struct PrivilegeError {
    set: &'static str,
    #[source]
    source: caps::errors::CapsError,
}

fn err(set: &'static str) -> impl FnOnce(caps::errors::CapsError) -> PrivilegeError {
    move |source| PrivilegeError { set, source }
}

/// Drops every capability but [`KEPT`] (those this process has, if it is not root).
pub fn keep_only_needed() -> Result<CapsHashSet, PrivilegeError> {
    keep_only(&KEPT)
}

/// Drops every capability but `keep` (those of them this process has).
pub fn keep_only(keep: &[Capability]) -> Result<CapsHashSet, PrivilegeError> {
    let permitted = caps::read(None, CapSet::Permitted).map_err(err("permitted"))?;
    let kept: CapsHashSet = keep
        .iter()
        .copied()
        .filter(|c| permitted.contains(c))
        .collect();
    // The bounding set can only shrink while CAP_SETPCAP is still effective: first.
    if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP).unwrap_or(false) {
        for cap in caps::all() {
            if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
                caps::drop(None, CapSet::Bounding, cap).map_err(err("bounding"))?;
            }
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(err("ambient"))?;
    caps::clear(None, CapSet::Inheritable).map_err(err("inheritable"))?;
    caps::set(None, CapSet::Effective, &kept).map_err(err("effective"))?;
    caps::set(None, CapSet::Permitted, &kept).map_err(err("permitted"))?;
    log::info!(
        "capabilities kept: {}",
        if kept.is_empty() {
            "none".to_owned()
        } else {
            let mut names: Vec<String> = kept.iter().map(|c| c.to_string()).collect();
            names.sort();
            names.join(", ")
        }
    );
    Ok(kept)
}
