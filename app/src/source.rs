//! The app's data source: a named background thread that talks to the helper over the system bus
//! (zbus proxy) or, when the helper is missing or refuses, runs the embedded /proc collector. It
//! sends owned updates to the UI over a channel and wakes the UI with `request_repaint`; the UI
//! never blocks on it.

use std::{
    sync::mpsc::{Receiver, RecvTimeoutError, Sender},
    time::{Duration, Instant},
};

use memmon_common::{
    diagnostics::{MemoryDetail, SystemSample},
    snapshot::{Snapshot, SortKey, top_by},
};
use memmon_helper::{
    Collector,
    dbus::{Helper1Proxy, MAX_LIMIT},
    history::{History, HistorySeries},
    smaps::DetailCache,
};

/// Rows the grid shows.
pub const TOP_N: u32 = 100;
/// How often a lost helper is looked for again.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceChoice {
    /// The helper if it is installed and authorises us, else the embedded collector.
    Auto,
    /// Only the helper (errors are shown, no fallback).
    Helper,
    /// Only the embedded /proc collector, as this user.
    Embedded,
}

/// What the UI asks of the source.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    View {
        key: SortKey,
        descending: bool,
    },
    Interval(Duration),
    History {
        pid: u32,
        start_time: u64,
    },
    /// System samples (pressure, swap, faults) newer than this time.
    SystemHistory {
        since_unix_ms: u64,
    },
    /// PSS/USS of one process (smaps_rollup, rate-limited by whoever reads it).
    Detail {
        pid: u32,
        start_time: u64,
    },
    /// Watch every RSS change of one process (helper in Full mode only), or stop.
    HighRes {
        pid: u32,
        start_time: u64,
        enable: bool,
    },
}

/// Where the current data comes from, with the sentence the banner shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Helper,
    Embedded {
        why: String,
    },
    /// `--source helper` and the helper cannot be used.
    Unavailable {
        why: String,
    },
}

/// What the source sends the UI.
#[derive(Debug)]
pub enum Update {
    Snapshot {
        snapshot: Box<Snapshot>,
        origin: Origin,
    },
    History(HistorySeries),
    SystemHistory(Vec<SystemSample>),
    Detail(Result<MemoryDetail, String>),
    Problem(String),
}

/// Starts the source thread.
pub fn spawn(
    choice: SourceChoice,
    requests: Receiver<Request>,
    updates: Sender<Update>,
    wake: impl Fn() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("memmon-source".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = updates.send(Update::Problem(format!(
                        "cannot start the async runtime: {e}"
                    )));
                    wake();
                    return;
                }
            };
            let mut source = Source {
                choice,
                key: SortKey::Rss,
                descending: true,
                interval: Duration::from_secs(1),
                helper: None,
                helper_error: None,
                last_attempt: None,
                embedded: None,
                details: DetailCache::new(),
                last_sent: None,
            };
            source.run(&runtime, &requests, &updates, &wake);
        })
}

struct Embedded {
    collector: Collector,
    history: History,
}

struct Source {
    choice: SourceChoice,
    key: SortKey,
    descending: bool,
    interval: Duration,
    helper: Option<Helper1Proxy<'static>>,
    helper_error: Option<String>,
    last_attempt: Option<Instant>,
    embedded: Option<Embedded>,
    /// Embedded mode's smaps_rollup readings (as this user: own processes only).
    details: DetailCache,
    /// What the UI was last sent: an identical tick is not sent again (no repaint, no CPU).
    last_sent: Option<(Origin, Snapshot)>,
}

impl Source {
    fn run(
        &mut self,
        rt: &tokio::runtime::Runtime,
        requests: &Receiver<Request>,
        updates: &Sender<Update>,
        wake: &dyn Fn(),
    ) {
        loop {
            let tick = Instant::now();
            let update = self.tick(rt);
            if self.is_news(&update) {
                if updates.send(update).is_err() {
                    return; // the UI has gone
                }
                wake();
            }
            // Requests wake us early: a new sort order is fetched at once.
            loop {
                let left = self.interval.saturating_sub(tick.elapsed());
                match requests.recv_timeout(left) {
                    Ok(Request::View { key, descending }) => {
                        self.key = key;
                        self.descending = descending;
                        self.last_sent = None; // a new view is always news
                        break;
                    }
                    Ok(Request::Interval(interval)) => {
                        self.interval = interval;
                        if let Some(proxy) = &self.helper {
                            let ms = interval.as_millis().min(u128::from(u32::MAX)) as u32;
                            // The helper bounds it; a refusal only means the default is used.
                            let _ = rt.block_on(proxy.set_interval(ms));
                        }
                    }
                    Ok(request) => {
                        if let Some(update) = self.answer(rt, request) {
                            if updates.send(update).is_err() {
                                return;
                            }
                            wake();
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        }
    }

    /// False for a snapshot whose data equals the last one sent (only its time differs).
    fn is_news(&mut self, update: &Update) -> bool {
        let Update::Snapshot { snapshot, origin } = update else {
            return true;
        };
        let same = self.last_sent.as_ref().is_some_and(|(o, s)| {
            o == origin
                && s.mode == snapshot.mode
                && s.mode_reason == snapshot.mode_reason
                && s.system == snapshot.system
                && s.process_count == snapshot.process_count
                && s.bpf_drops == snapshot.bpf_drops
                && s.pressure == snapshot.pressure
                && s.oom_kills == snapshot.oom_kills
                && s.processes == snapshot.processes
        });
        if !same {
            self.last_sent = Some((origin.clone(), (**snapshot).clone()));
        }
        !same
    }

    fn tick(&mut self, rt: &tokio::runtime::Runtime) -> Update {
        if self.choice != SourceChoice::Embedded && self.helper.is_none() {
            self.connect(rt);
        }
        if let Some(proxy) = &self.helper {
            match rt.block_on(proxy.get_snapshot(
                self.key.as_str(),
                self.descending,
                TOP_N.min(MAX_LIMIT),
            )) {
                Ok(json) => match serde_json::from_str::<Snapshot>(&json) {
                    Ok(snapshot) => {
                        return Update::Snapshot {
                            snapshot: Box::new(snapshot),
                            origin: Origin::Helper,
                        };
                    }
                    Err(e) => {
                        self.lose_helper(format!("the helper sent an unreadable snapshot: {e}"))
                    }
                },
                Err(e) => self.lose_helper(describe(&e)),
            }
        }
        let why = self
            .helper_error
            .clone()
            .unwrap_or_else(|| "started with --source embedded".into());
        if self.choice == SourceChoice::Helper {
            return Update::Snapshot {
                snapshot: Box::new(empty_snapshot()),
                origin: Origin::Unavailable { why },
            };
        }
        let embedded = self.embedded.get_or_insert_with(|| Embedded {
            collector: Collector::embedded("reading /proc as this user, without eBPF"),
            history: History::new(),
        });
        match embedded.collector.collect() {
            Ok(mut snapshot) => {
                embedded.history.record(&snapshot);
                snapshot.processes = top_by(
                    &snapshot.processes,
                    self.key,
                    self.descending,
                    TOP_N as usize,
                );
                Update::Snapshot {
                    snapshot: Box::new(snapshot),
                    origin: Origin::Embedded { why },
                }
            }
            Err(e) => Update::Problem(format!("reading /proc failed: {e}")),
        }
    }

    fn connect(&mut self, rt: &tokio::runtime::Runtime) {
        if self
            .last_attempt
            .is_some_and(|t| t.elapsed() < RECONNECT_EVERY)
        {
            return;
        }
        self.last_attempt = Some(Instant::now());
        let result = rt.block_on(async {
            let conn = zbus::Connection::system().await?;
            let proxy = Helper1Proxy::new(&conn).await?;
            // Activates the helper and asks polkit (interactively) for us.
            proxy.get_info().await?;
            let ms = self.interval.as_millis().min(u128::from(u32::MAX)) as u32;
            let _ = proxy.set_interval(ms).await;
            zbus::Result::Ok(proxy)
        });
        match result {
            Ok(proxy) => {
                self.helper = Some(proxy);
                self.helper_error = None;
            }
            Err(e) => self.helper_error = Some(describe(&e)),
        }
    }

    fn lose_helper(&mut self, why: String) {
        self.helper = None;
        self.helper_error = Some(why);
        self.last_attempt = None; // retry on the next tick
    }

    /// Answers a data request from the helper, or from the embedded store.
    fn answer(&mut self, rt: &tokio::runtime::Runtime, request: Request) -> Option<Update> {
        if let Some(proxy) = &self.helper {
            return Some(match request {
                Request::History { pid, start_time } => decode(
                    rt.block_on(proxy.get_history(pid, start_time)),
                    Update::History,
                ),
                Request::SystemHistory { since_unix_ms } => decode(
                    rt.block_on(proxy.get_system_history(since_unix_ms)),
                    Update::SystemHistory,
                ),
                Request::Detail { pid, start_time } => Update::Detail(
                    rt.block_on(proxy.get_memory_detail(pid, start_time))
                        .map_err(|e| describe(&e))
                        .and_then(|json| {
                            serde_json::from_str(&json)
                                .map_err(|e| format!("the helper sent an unreadable reading: {e}"))
                        }),
                ),
                Request::HighRes {
                    pid,
                    start_time,
                    enable,
                } => match rt.block_on(proxy.set_high_resolution(pid, start_time, enable)) {
                    Ok(()) => return None,
                    Err(e) => Update::Problem(format!("high resolution: {}", describe(&e))),
                },
                Request::View { .. } | Request::Interval(_) => return None,
            });
        }
        match request {
            Request::History { pid, start_time } => {
                let series = self.embedded.as_ref()?.history.series(pid, start_time)?;
                Some(Update::History(series))
            }
            Request::SystemHistory { since_unix_ms } => Some(Update::SystemHistory(
                self.embedded.as_ref()?.history.system_since(since_unix_ms),
            )),
            Request::Detail { pid, start_time } => Some(Update::Detail(
                self.details
                    .get(pid, start_time, unix_ms_now())
                    .map_err(|e| e.to_string()),
            )),
            Request::HighRes { enable: true, .. } => Some(Update::Problem(
                "high resolution needs the helper with eBPF (Full mode)".into(),
            )),
            Request::HighRes { .. } | Request::View { .. } | Request::Interval(_) => None,
        }
    }
}

/// A JSON reply of the helper as an update, or the problem it poses.
fn decode<T: serde::de::DeserializeOwned>(
    reply: zbus::Result<String>,
    update: impl FnOnce(T) -> Update,
) -> Update {
    match reply {
        Ok(json) => match serde_json::from_str(&json) {
            Ok(value) => update(value),
            Err(e) => Update::Problem(format!("the helper sent an unreadable reply: {e}")),
        },
        Err(e) => Update::Problem(describe(&e)),
    }
}

fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The sentence a user needs for a helper error.
pub fn describe(err: &zbus::Error) -> String {
    match err {
        zbus::Error::MethodError(name, message, _) => {
            let name = name.as_str();
            let message = message.as_deref().unwrap_or("");
            if name.ends_with("ServiceUnknown") {
                helper_missing_hint(std::path::Path::new("/.flatpak-info").exists())
            } else if name.ends_with("NotAuthorized") || name.ends_with("AuthenticationRequired") {
                format!("the helper refused: {message}")
            } else {
                format!("{name}: {message}")
            }
        }
        other => format!("the system bus is not reachable: {other}"),
    }
}

/// What to tell a user whose system has no helper. A sandboxed (Flatpak) app cannot load eBPF,
/// so the helper must come from the host.
pub fn helper_missing_hint(in_flatpak: bool) -> String {
    if in_flatpak {
        format!(
            "the helper is not installed on this computer; Memory Monitor runs as a Flatpak and cannot \
             track allocations by itself, and inside its sandbox it sees only its own processes — \
             install the host helper: `sudo apt install ./memmon_{}_amd64.deb` (or from source: \
             `make && sudo make install PREFIX=/usr`)",
            env!("CARGO_PKG_VERSION")
        )
    } else {
        "the helper is not installed (no io.github.memmon.Helper1 on the system bus) — install \
         memmon-helper (`sudo make install PREFIX=/usr` or the memmon .deb) to see allocation activity"
            .into()
    }
}

fn empty_snapshot() -> Snapshot {
    Snapshot {
        taken_at_unix_ms: 0,
        scan_duration_us: 0,
        mode: memmon_common::snapshot::Mode::Embedded,
        mode_reason: None,
        system: Default::default(),
        process_count: 0,
        bpf_drops: 0,
        pressure: None,
        oom_kills: Vec::new(),
        processes: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_helper_is_explained_for_each_packaging() {
        let host = helper_missing_hint(false);
        assert!(
            host.contains("not installed") && host.contains("make install"),
            "{host}"
        );
        let sandboxed = helper_missing_hint(true);
        assert!(
            sandboxed.contains("Flatpak") && sandboxed.contains("host helper"),
            "{sandboxed}"
        );
        assert!(sandboxed.contains(".deb"), "{sandboxed}");
    }
}
