//! The app's data source: a named background thread that talks to the helper over the system bus
//! ([`HelperClient`], every call bounded in time) or, when the helper is missing, refuses or
//! stops answering, runs the embedded /proc collector. It sends owned updates to the UI over a
//! channel and wakes the UI with `request_repaint`; the UI never blocks on it.
//!
//! Authorisation is asked interactively (polkit may show a password dialog) **once per launch**
//! and once per "Try again" click, never in a loop: after a refusal the source stays embedded
//! and asks again only without interaction, backing off from [`REFUSED_RETRY`] to
//! [`REFUSED_RETRY_MAX`]. A helper that is missing or stops answering is looked for again after
//! [`LOST_RETRY`], backing off to [`LOST_RETRY_MAX`]. Connection attempts run in the
//! background, so embedded data keeps flowing while a dialog is open.

use std::{
    sync::{
        Arc,
        mpsc::{Receiver, RecvTimeoutError, Sender},
    },
    time::{Duration, Instant},
};

use memmon_common::{
    apps::{AppHistorySeries, AppsSnapshot},
    callsites::{CallSiteReport, CallSiteSource},
    diagnostics::{MemoryDetail, SystemSample},
    process_key::ProcessKey,
    snapshot::{Snapshot, SortKey, top_by, unix_ms_now},
};
use memmon_helper::{
    Collector,
    client::{ClientError, HelperClient},
    history::{History, HistorySeries, apps::AppHistory},
    smaps::DetailCache,
};

mod apps;
mod rows;

pub use apps::{APPS_TOP_N, AppsView};
pub use rows::Rows;

/// Rows the grid shows.
pub const TOP_N: u32 = 100;
/// Why the embedded mode cannot find call sites.
pub const CALL_SITES_NEED_HELPER: &str = "finding call sites needs memmon's helper (it attaches \
     eBPF programs to the process as root); it is not in use now — see the banner";
/// Back-off after polkit refused (non-interactive re-asks only).
pub const REFUSED_RETRY: Duration = Duration::from_secs(5);
pub const REFUSED_RETRY_MAX: Duration = Duration::from_secs(60);
/// Back-off while the helper is missing or not answering.
pub const LOST_RETRY: Duration = Duration::from_secs(1);
pub const LOST_RETRY_MAX: Duration = Duration::from_secs(10);

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
    /// The stored history of one process.
    History(ProcessKey),
    /// System samples (pressure, swap, faults) newer than this time.
    SystemHistory {
        since_unix_ms: u64,
    },
    /// PSS/USS of one process (smaps_rollup, rate-limited by whoever reads it).
    Detail(ProcessKey),
    /// Watch every RSS change of one process (helper in Full mode only), or stop.
    HighRes {
        key: ProcessKey,
        enable: bool,
    },
    /// The user clicked "Try again": one more interactive attempt to use the helper.
    RetryHelper,
    /// The apps table each tick while the Apps view is shown; `None`: not shown, none sent.
    Apps(Option<AppsView>),
    /// The stored history of one app (by id).
    AppHistory(String),
    /// How many processes each snapshot carries (the process tree wants every one).
    Rows(Rows),
    /// Start a call-site session (helper only; polkit may ask for a password).
    StartCallSites {
        key: ProcessKey,
        source: CallSiteSource,
        seconds: u32,
    },
    /// The session's report so far.
    PollCallSites(u32),
    StopCallSites(u32),
}

/// Where the current data comes from, with the sentence the banner shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Helper,
    Embedded {
        why: String,
        /// The helper could be tried again (false when the user chose `--source embedded`).
        can_retry: bool,
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
    /// The apps table (Apps view only), rows in the view's order.
    Apps(Box<AppsSnapshot>),
    /// Why no apps table came this tick.
    AppsError(String),
    AppHistory(AppHistorySeries),
    /// The session id for the process it was asked for, or why it could not start.
    CallSitesStarted(ProcessKey, Result<u32, String>),
    CallSites(Result<CallSiteReport, String>),
}

/// Starts the source thread.
pub fn spawn(
    choice: SourceChoice,
    requests: Receiver<Request>,
    updates: Sender<Update>,
    wake: impl Fn() + Send + Sync + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let wake: Arc<dyn Fn() + Send + Sync> = Arc::new(wake);
    std::thread::Builder::new()
        .name("memmon-source".into())
        .spawn(move || {
            // One worker: connection attempts and dialogs progress while embedded ticks run.
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("memmon-bus")
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
                rows: Rows::Top,
                interval: Duration::from_secs(1),
                helper: None,
                helper_error: None,
                attempt: None,
                interactive_left: true,
                next_attempt: None,
                backoff: Duration::ZERO,
                embedded: None,
                details: DetailCache::new(),
                last_sent: None,
                apps: apps::AppsFeed::default(),
                updates: updates.clone(),
                wake: Arc::clone(&wake),
            };
            source.run(&runtime, &requests, &updates, &*wake);
        })
}

struct Embedded {
    collector: Collector,
    history: History,
    /// Recorded every tick, whatever the view.
    app_history: AppHistory,
}

type Attempt = tokio::task::JoinHandle<Result<HelperClient, ClientError>>;

struct Source {
    choice: SourceChoice,
    key: SortKey,
    descending: bool,
    rows: Rows,
    interval: Duration,
    /// The helper, once it answered and authorised us.
    helper: Option<HelperClient>,
    /// Why the helper is not used now.
    helper_error: Option<ClientError>,
    /// A connection attempt running in the background.
    attempt: Option<Attempt>,
    /// Whether the next attempt may show a password dialog (once per launch and per click).
    interactive_left: bool,
    next_attempt: Option<Instant>,
    backoff: Duration,
    embedded: Option<Embedded>,
    /// Embedded mode's smaps_rollup readings (as this user: own processes only).
    details: DetailCache,
    /// What the UI was last sent: an identical tick is not sent again (no repaint, no CPU).
    last_sent: Option<(Origin, Snapshot)>,
    /// The Apps view's table.
    apps: apps::AppsFeed,
    /// For answers that arrive from background tasks (calls that may show a dialog).
    updates: Sender<Update>,
    wake: Arc<dyn Fn() + Send + Sync>,
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
            let news = [
                Some(update).filter(|u| self.is_news(u)),
                self.apps.take_news(),
            ];
            if news.iter().any(Option::is_some) {
                for update in news.into_iter().flatten() {
                    if updates.send(update).is_err() {
                        return; // the UI has gone
                    }
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
                    Ok(Request::Rows(rows)) => {
                        if rows != self.rows {
                            self.rows = rows;
                            self.last_sent = None;
                            break; // the tree's rows at once
                        }
                    }
                    Ok(Request::Interval(interval)) => {
                        self.interval = interval;
                        if let Some(client) = &self.helper {
                            // The helper bounds it; a refusal only means the default is used.
                            let _ = rt.block_on(client.set_interval(interval_ms(interval)));
                        }
                    }
                    Ok(Request::Apps(view)) => {
                        let fetch = view.is_some();
                        self.apps.set_view(view);
                        if fetch {
                            break; // the table at once, not at the next tick
                        }
                    }
                    Ok(Request::RetryHelper) => {
                        if self.helper.is_none() && self.choice != SourceChoice::Embedded {
                            self.interactive_left = true;
                            self.next_attempt = None;
                            self.backoff = Duration::ZERO;
                            break;
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
        if let Some(client) = &self.helper {
            match rt.block_on(client.snapshot(self.key, self.descending, self.rows.helper_limit()))
            {
                Ok(snapshot) => {
                    self.apps.fetch_from_helper(rt, client);
                    return Update::Snapshot {
                        snapshot: Box::new(snapshot),
                        origin: Origin::Helper,
                    };
                }
                // Busy or still starting: this tick has no data, the helper stays.
                Err(ClientError::Unavailable(why)) => {
                    return Update::Problem(format!("the helper is busy: {why}"));
                }
                Err(e) => self.lose_helper(e),
            }
        }
        let why = self
            .helper_error
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_else(|| match self.choice {
                SourceChoice::Embedded => "started with --source embedded".into(),
                _ => "the helper is being asked".into(),
            });
        if self.choice == SourceChoice::Helper {
            return Update::Snapshot {
                snapshot: Box::new(empty_snapshot()),
                origin: Origin::Unavailable { why },
            };
        }
        let embedded = self.embedded.get_or_insert_with(|| Embedded {
            collector: apps::embedded_collector(),
            history: History::new(),
            app_history: AppHistory::new(),
        });
        match embedded.collector.collect() {
            Ok(mut snapshot) => {
                embedded.history.record(&snapshot);
                let grouped = embedded.collector.apps();
                embedded.app_history.record(
                    snapshot.taken_at_unix_ms,
                    grouped.rows(),
                    grouped.events(),
                );
                self.apps.take_from_embedded(grouped, &snapshot);
                snapshot.processes = top_by(
                    &snapshot.processes,
                    self.key,
                    self.descending,
                    self.rows.embedded_limit(),
                );
                Update::Snapshot {
                    snapshot: Box::new(snapshot),
                    origin: Origin::Embedded {
                        why,
                        can_retry: self.choice != SourceChoice::Embedded,
                    },
                }
            }
            Err(e) => Update::Problem(format!("reading /proc failed: {e}")),
        }
    }

    /// Starts a connection attempt when one is due, or takes the result of the running one.
    fn connect(&mut self, rt: &tokio::runtime::Runtime) {
        if let Some(attempt) = &self.attempt {
            if !attempt.is_finished() {
                return;
            }
            let result = self.attempt.take().map(|a| rt.block_on(a));
            match result {
                Some(Ok(Ok(client))) => {
                    let _ = rt.block_on(client.set_interval(interval_ms(self.interval)));
                    self.helper = Some(client);
                    self.helper_error = None;
                    self.backoff = Duration::ZERO;
                    self.last_sent = None;
                }
                Some(Ok(Err(e))) => self.wait_after(e),
                Some(Err(e)) => self.wait_after(ClientError::Bus(format!("connecting: {e}"))),
                None => {}
            }
            return;
        }
        if self.next_attempt.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let interactive = std::mem::take(&mut self.interactive_left);
        self.attempt = Some(rt.spawn(async move {
            let client = HelperClient::connect().await?;
            // Activates the helper; polkit may ask for a password if `interactive`.
            client.info(interactive).await?;
            Ok(client)
        }));
        if interactive {
            // The dialog may be open for a while: show embedded data meanwhile, but wait a
            // moment first so a user who needs no dialog goes straight to Full mode.
            let started = Instant::now();
            while self.attempt.as_ref().is_some_and(|a| !a.is_finished())
                && started.elapsed() < Duration::from_millis(1500)
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            self.connect(rt);
        }
    }

    /// Schedules the next (non-interactive) attempt after a failed one.
    fn wait_after(&mut self, e: ClientError) {
        let (first, max) = if e.is_refusal() {
            (REFUSED_RETRY, REFUSED_RETRY_MAX)
        } else {
            (LOST_RETRY, LOST_RETRY_MAX)
        };
        self.backoff = if self.backoff.is_zero() {
            first
        } else {
            (self.backoff * 2).clamp(first, max)
        };
        self.next_attempt = Some(Instant::now() + self.backoff);
        self.helper_error = Some(e);
    }

    /// A working helper failed a call: fall back at once, and look for it again on the next
    /// tick (a restarted helper is back within a second), then with back-off.
    fn lose_helper(&mut self, why: ClientError) {
        self.helper = None;
        self.next_attempt = None;
        self.backoff = Duration::ZERO;
        self.helper_error = Some(why);
    }

    /// Answers a data request from the helper, or from the embedded store.
    fn answer(&mut self, rt: &tokio::runtime::Runtime, request: Request) -> Option<Update> {
        if let Some(client) = &self.helper {
            return match request {
                Request::History(key) => Some(
                    rt.block_on(client.history(key.pid, key.start_time))
                        .map_or_else(|e| Update::Problem(e.to_string()), Update::History),
                ),
                Request::SystemHistory { since_unix_ms } => Some(
                    rt.block_on(client.system_history(since_unix_ms))
                        .map_or_else(|e| Update::Problem(e.to_string()), Update::SystemHistory),
                ),
                Request::AppHistory(id) => Some(
                    rt.block_on(client.app_history(&id))
                        .map_or_else(|e| Update::Problem(e.to_string()), Update::AppHistory),
                ),
                // A person's click: polkit may ask for a password (another user's process),
                // so the call runs in the background and answers when it is done.
                Request::Detail(key) => {
                    let client = client.clone();
                    self.answer_later(rt, async move {
                        Update::Detail(
                            client
                                .memory_detail(key.pid, key.start_time, true)
                                .await
                                .map_err(|e| e.to_string()),
                        )
                    });
                    None
                }
                Request::HighRes { key, enable } => {
                    let client = client.clone();
                    self.answer_later(rt, async move {
                        match client
                            .set_high_resolution(key.pid, key.start_time, enable, enable)
                            .await
                        {
                            Ok(()) => None,
                            Err(e) => Some(Update::Problem(format!("high resolution: {e}"))),
                        }
                    });
                    None
                }
                // A person's click: polkit may ask for a password (`inspect`).
                Request::StartCallSites {
                    key,
                    source,
                    seconds,
                } => {
                    let client = client.clone();
                    self.answer_later(rt, async move {
                        Update::CallSitesStarted(
                            key,
                            client
                                .start_call_sites(key.pid, key.start_time, source, seconds, 0, true)
                                .await
                                .map_err(|e| e.to_string()),
                        )
                    });
                    None
                }
                Request::PollCallSites(id) => {
                    let client = client.clone();
                    self.answer_later(rt, async move {
                        Update::CallSites(client.call_sites(id).await.map_err(|e| e.to_string()))
                    });
                    None
                }
                Request::StopCallSites(id) => {
                    let client = client.clone();
                    self.answer_later(rt, async move {
                        match client.stop_call_sites(id).await {
                            // Its final report follows.
                            Ok(()) => Some(Update::CallSites(
                                client.call_sites(id).await.map_err(|e| e.to_string()),
                            )),
                            Err(e) => Some(Update::Problem(format!("call sites: {e}"))),
                        }
                    });
                    None
                }
                Request::View { .. }
                | Request::Interval(_)
                | Request::RetryHelper
                | Request::Apps(_)
                | Request::Rows(_) => None,
            };
        }
        match request {
            Request::History(key) => {
                let series = self.embedded.as_ref()?.history.series(key)?;
                Some(Update::History(series))
            }
            Request::SystemHistory { since_unix_ms } => Some(Update::SystemHistory(
                self.embedded.as_ref()?.history.system_since(since_unix_ms),
            )),
            Request::AppHistory(id) => Some(Update::AppHistory(
                self.embedded.as_ref()?.app_history.series(&id)?,
            )),
            Request::Detail(key) => Some(Update::Detail(
                self.details
                    .get(key, unix_ms_now())
                    .map_err(|e| e.to_string()),
            )),
            Request::HighRes { enable: true, .. } => Some(Update::Problem(
                "high resolution needs the helper with eBPF (Full mode)".into(),
            )),
            Request::StartCallSites { key, .. } => Some(Update::CallSitesStarted(
                key,
                Err(CALL_SITES_NEED_HELPER.into()),
            )),
            Request::HighRes { .. }
            | Request::PollCallSites(_)
            | Request::StopCallSites(_)
            | Request::View { .. }
            | Request::Interval(_)
            | Request::RetryHelper
            | Request::Apps(_)
            | Request::Rows(_) => None,
        }
    }

    /// Runs a call in the background; its update (if any) reaches the UI when it is done.
    fn answer_later<F, U>(&self, rt: &tokio::runtime::Runtime, call: F)
    where
        F: std::future::Future<Output = U> + Send + 'static,
        U: Into<Option<Update>>,
    {
        let updates = self.updates.clone();
        let wake = Arc::clone(&self.wake);
        rt.spawn(async move {
            if let Some(update) = call.await.into()
                && updates.send(update).is_ok()
            {
                wake();
            }
        });
    }
}

fn interval_ms(interval: Duration) -> u32 {
    interval.as_millis().min(u128::from(u32::MAX)) as u32
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
