//! The service's life: the bus connection, the clients it serves, the collector thread that
//! runs only while an authorised client needs it, re-checks of authorisations, idle exit.
//!
//! - The collector (and with it every eBPF program) starts at the first authorised call and
//!   stops once no authorised client has been connected for the idle time; the helper exits
//!   then too (unless `--idle-exit 0`, when it stops only the collector). Unauthorised calls
//!   never start it and never keep it alive.
//! - Name departures and polkit's `Changed` are subscribed to **before** the bus name is
//!   requested, so no departure is missed; a client polkit just approved is registered only if
//!   it is still on the bus.
//! - Every registered client is re-checked without interaction every
//!   [`RECHECK_EVERY`](crate::access::RECHECK_EVERY) and at once when polkit says something
//!   changed; one that is refused is dropped with its interval and high-resolution watch.
//! - A collector thread that dies, or a panic anywhere, ends the helper with an error: D-Bus
//!   activates a fresh one on the next call instead of serving stale data.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::StreamExt as _;
use memmon_common::{
    apps::AppsSnapshot,
    process_key::ProcessKey,
    snapshot::{Mode, Snapshot, SortKey},
};
use zbus::{fdo::DBusProxy, names::OwnedUniqueName};

use super::{DETAIL_WAITING, DETAIL_WALKS, Helper, lock};
use crate::{
    Collector,
    access::{Action, BusUids, Gate, RECHECK_EVERY},
    authorize::Polkit,
    dbus::{BUS_NAME, HelperError, OBJECT_PATH},
    history::{History, apps::AppHistory},
    smaps::DetailCache,
};

/// What the collector thread publishes.
pub(super) struct Published {
    pub snapshot: Option<Arc<Snapshot>>,
    pub error: Option<String>,
    /// Encoded replies to GetSnapshot for this snapshot, by (key, descending, limit): clients
    /// polling the same view share one sort and one encoding per tick.
    pub views: Vec<((SortKey, bool, u32), Arc<str>)>,
    /// Every app of the same tick.
    pub apps: Option<Arc<AppsSnapshot>>,
}

/// One process watched through `kmem:rss_stat` at a time: the last client to ask wins, and
/// the watch ends when that client leaves the bus (or loses its authorisation).
#[derive(Default)]
pub(super) struct HighRes {
    pub wanted: Option<(OwnedUniqueName, ProcessKey)>,
    pub changed: bool,
    /// What the collector applied, and its error if it could not.
    pub applied: Option<ProcessKey>,
    pub error: Option<String>,
}

/// An authorised client connection.
pub(super) struct Client {
    pub uid: u32,
    /// The collection interval it asked for (None: the default).
    pub interval_ms: Option<u32>,
}

/// The running collector thread.
struct Running {
    thread: std::thread::JoinHandle<()>,
    stop: Arc<AtomicBool>,
}

/// State shared by the interface, the collector thread and the lifecycle tasks.
pub(super) struct Shared {
    pub gate: Gate,
    bus: DBusProxy<'static>,
    pub published: RwLock<Published>,
    /// Held while a snapshot view is sorted and encoded (see `get_snapshot`).
    pub encoding: tokio::sync::Mutex<()>,
    /// Bumped at every publication (0: nothing published since the collector started).
    published_gen: tokio::sync::watch::Sender<u64>,
    pub history: Mutex<History>,
    pub app_history: Mutex<AppHistory>,
    /// On-demand smaps_rollup readings, rate-limited per process.
    pub details: Mutex<DetailCache>,
    detail_walks: tokio::sync::Semaphore,
    detail_waiting: AtomicU32,
    /// High-resolution mode, asked for by a client and applied by the collector thread.
    pub high_res: Mutex<HighRes>,
    /// Call-site sessions, by the client that started them.
    pub callsites: Mutex<super::callsites::Sessions>,
    pub clients: Mutex<HashMap<OwnedUniqueName, Client>>,
    pub interval_ms: AtomicU32,
    default_interval_ms: u32,
    pub mode: RwLock<(Mode, Option<String>)>,
    pub started: Instant,
    use_ebpf: bool,
    collector: Mutex<Option<Running>>,
    /// Set by a collector thread that ended without being asked to.
    died: tokio::sync::Notify,
}

impl Shared {
    pub fn published_rx(&self) -> tokio::sync::watch::Receiver<u64> {
        self.published_gen.subscribe()
    }

    pub fn recompute_interval(&self, clients: &HashMap<OwnedUniqueName, Client>) {
        let fastest = clients
            .values()
            .filter_map(|c| c.interval_ms)
            .min()
            .unwrap_or(self.default_interval_ms);
        self.interval_ms.store(fastest, Ordering::Relaxed);
    }

    /// Registers an authorised caller (confirming it is still on the bus, since its departure
    /// may have been seen while polkit was asked) and starts the collector if needed.
    pub async fn register(
        self: &Arc<Self>,
        name: &OwnedUniqueName,
        uid: u32,
    ) -> Result<(), HelperError> {
        let new = {
            let mut clients = lock(&self.clients);
            let new = !clients.contains_key(name);
            if new {
                clients.insert(
                    name.clone(),
                    Client {
                        uid,
                        interval_ms: None,
                    },
                );
            }
            new
        };
        if new {
            let name_ref = zbus::names::BusName::Unique(name.as_ref());
            if !self.bus.name_has_owner(name_ref).await.unwrap_or(false) {
                self.drop_client(name);
                return Err(HelperError::NotAuthorized(
                    "the caller left the bus while it was being authorised".into(),
                ));
            }
            log::info!("client {name} (uid {uid}) registered");
        }
        self.start_collector()
    }

    /// Forgets a client: its interval request, its high-resolution watch and its call-site
    /// session.
    pub fn drop_client(&self, name: &OwnedUniqueName) {
        if let Some(session) = lock(&self.callsites).remove(name) {
            log::info!("client {name} left: ending its call-site session");
            session.end_in_background("its client left");
        }
        {
            let mut h = lock(&self.high_res);
            if h.wanted.as_ref().is_some_and(|(owner, _)| owner == name) {
                h.wanted = None;
                h.changed = true;
            }
        }
        let mut clients = lock(&self.clients);
        if clients.remove(name).is_some() {
            self.recompute_interval(&clients);
        }
    }

    /// A permit for one page-table walk; calls beyond those waiting are told to retry.
    pub async fn detail_permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, HelperError> {
        struct Waiting<'a>(&'a AtomicU32);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        if self.detail_waiting.fetch_add(1, Ordering::SeqCst) >= DETAIL_WAITING as u32 {
            self.detail_waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(HelperError::Unavailable(
                "the helper is busy (too many memory detail requests waiting); retry in a moment"
                    .into(),
            ));
        }
        let _waiting = Waiting(&self.detail_waiting);
        self.detail_walks
            .acquire()
            .await
            .map_err(|e| HelperError::Unavailable(format!("memory detail: {e}")))
    }

    fn start_collector(self: &Arc<Self>) -> Result<(), HelperError> {
        let mut running = lock(&self.collector);
        if running.is_some() {
            return Ok(());
        }
        let stop = Arc::new(AtomicBool::new(false));
        self.published_gen.send_replace(0);
        let thread = spawn_collector(Arc::clone(self), Arc::clone(&stop))
            .map_err(|e| HelperError::Unavailable(format!("cannot start the collector: {e}")))?;
        log::info!("collector started");
        *running = Some(Running { thread, stop });
        Ok(())
    }

    /// Stops the collector (detaching its programs) and waits for it.
    async fn stop_collector(&self) {
        let running = lock(&self.collector).take();
        if let Some(Running { thread, stop }) = running {
            stop.store(true, Ordering::SeqCst);
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            let mut p = self.published.write().unwrap_or_else(|p| p.into_inner());
            p.snapshot = None;
            p.apps = None;
            p.views.clear();
            p.error = None;
            lock(&self.high_res).applied = None;
            log::info!("collector stopped: no authorised client");
        }
    }

    fn collector_running(&self) -> bool {
        lock(&self.collector).is_some()
    }
}

/// Options of `memmon-helper serve`.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Exit after this long without an authorised client (None: never).
    pub idle_exit: Option<Duration>,
    pub interval_ms: u32,
    pub use_ebpf: bool,
}

/// How long the collector keeps running without clients when the helper never exits.
const LINGER_WITHOUT_EXIT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("another memmon-helper already owns {BUS_NAME} on the system bus")]
    NameTaken,
    #[error("cannot connect to the system bus: {0}")]
    Bus(#[source] zbus::Error),
    #[error("cannot reach polkit: {0}")]
    Polkit(#[source] zbus::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error("the collector thread ended unexpectedly; exiting so that a fresh helper is started")]
    CollectorDied,
}

/// Why `serve` returned.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    Signal,
    Idle,
    BusClosed,
}

/// Runs the service until SIGTERM/SIGINT, the idle timeout or the bus going away.
pub async fn serve(options: ServeOptions) -> Result<Exit, ServeError> {
    // The helper is started by the bus: its output is its only voice.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        log::error!("panic: {info}; exiting (the next call starts a fresh helper)");
        std::process::exit(70);
    }));

    let conn = zbus::connection::Builder::system()
        .build()
        .await
        .map_err(ServeError::Bus)?;
    let polkit = Polkit::new(&conn).await.map_err(ServeError::Polkit)?;
    let bus = DBusProxy::new(&conn).await.map_err(ServeError::Bus)?;
    // Subscribed before the name is requested: no departure or change can be missed.
    let departures = bus
        .receive_name_owner_changed()
        .await
        .map_err(ServeError::Bus)?;
    let changes = polkit
        .authority()
        .receive_changed()
        .await
        .map_err(ServeError::Polkit)?;
    let (published_gen, _) = tokio::sync::watch::channel(0);
    let shared = Arc::new(Shared {
        gate: Gate::new(Arc::new(polkit), Arc::new(BusUids(bus.clone()))),
        bus,
        published: RwLock::new(Published {
            snapshot: None,
            error: None,
            views: Vec::new(),
            apps: None,
        }),
        published_gen,
        encoding: tokio::sync::Mutex::new(()),
        history: Mutex::new(History::new()),
        app_history: Mutex::new(AppHistory::new()),
        details: Mutex::new(DetailCache::new()),
        detail_walks: tokio::sync::Semaphore::new(DETAIL_WALKS),
        detail_waiting: AtomicU32::new(0),
        high_res: Mutex::new(HighRes::default()),
        callsites: Mutex::new(Default::default()),
        clients: Mutex::new(HashMap::new()),
        interval_ms: AtomicU32::new(options.interval_ms),
        default_interval_ms: options.interval_ms,
        mode: RwLock::new((Mode::ProcOnly, Some("the collector has not started".into()))),
        started: Instant::now(),
        use_ebpf: options.use_ebpf,
        collector: Mutex::new(None),
        died: tokio::sync::Notify::new(),
    });
    conn.object_server()
        .at(
            OBJECT_PATH,
            Helper {
                shared: Arc::clone(&shared),
            },
        )
        .await
        .map_err(ServeError::Bus)?;
    let flags = zbus::fdo::RequestNameFlags::DO_NOT_QUEUE;
    match conn.request_name_with_flags(BUS_NAME, flags).await {
        Ok(
            zbus::fdo::RequestNameReply::PrimaryOwner | zbus::fdo::RequestNameReply::AlreadyOwner,
        ) => {}
        Ok(_) | Err(zbus::Error::NameTaken) => return Err(ServeError::NameTaken),
        Err(e) => return Err(ServeError::Bus(e)),
    }
    log::info!("serving {BUS_NAME} on the system bus; nothing runs until an authorised call");

    let exit = tokio::select! {
        r = signals() => { r.map_err(ServeError::Signals)?; Ok(Exit::Signal) }
        () = idle_watch(Arc::clone(&shared), options.idle_exit) => Ok(Exit::Idle),
        () = conn.closed() => Ok(Exit::BusClosed),
        () = forget_departed_clients(departures, Arc::clone(&shared)) => Ok(Exit::BusClosed),
        () = recheck_clients(changes, Arc::clone(&shared)) => Ok(Exit::BusClosed),
        () = shared.died.notified() => Err(ServeError::CollectorDied),
    };
    // The collector owns the eBPF programs: joining it detaches them before we return. So do
    // the call-site sessions (ended here, each waiting for its thread).
    shared.stop_collector().await;
    let sessions = lock(&shared.callsites).drain();
    if !sessions.is_empty() {
        let _ = tokio::task::spawn_blocking(move || drop(sessions)).await;
    }
    exit
}

fn spawn_collector(
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("memmon-collector".into())
        .spawn(move || {
            /// Tells the service if this thread ends without being asked to.
            struct Watchdog<'a>(&'a Shared, &'a AtomicBool);
            impl Drop for Watchdog<'_> {
                fn drop(&mut self) {
                    if !self.1.load(Ordering::SeqCst) {
                        self.0.died.notify_one();
                    }
                }
            }
            let _watchdog = Watchdog(&shared, &stop);
            let mut collector = if shared.use_ebpf {
                Collector::with_ebpf()
            } else {
                Collector::embedded("eBPF disabled by --no-ebpf — /proc data only")
            };
            if let Some(reason) = collector.mode_reason() {
                log::warn!("{reason}");
            }
            *shared.mode.write().unwrap_or_else(|p| p.into_inner()) =
                (collector.mode(), collector.mode_reason().map(str::to_owned));
            lock(&shared.high_res).changed = true;
            while !stop.load(Ordering::SeqCst) {
                let tick = Instant::now();
                {
                    let mut h = lock(&shared.high_res);
                    if std::mem::take(&mut h.changed) {
                        let target = h.wanted.as_ref().map(|&(_, key)| key);
                        h.error = collector.watch_rss(target).err();
                    }
                    h.applied = collector.rss_target();
                }
                match collector.collect() {
                    Ok(snapshot) => {
                        lock(&shared.history).record(&snapshot);
                        let apps = collector.apps();
                        lock(&shared.app_history).record(
                            snapshot.taken_at_unix_ms,
                            apps.rows(),
                            apps.events(),
                        );
                        let apps = Arc::new(apps.snapshot());
                        let mut p = shared.published.write().unwrap_or_else(|p| p.into_inner());
                        p.snapshot = Some(Arc::new(snapshot));
                        p.apps = Some(apps);
                        p.views.clear();
                        p.error = None;
                    }
                    Err(e) => {
                        log::error!("collecting: {e}");
                        shared
                            .published
                            .write()
                            .unwrap_or_else(|p| p.into_inner())
                            .error = Some(e.to_string());
                    }
                }
                shared.published_gen.send_modify(|g| *g += 1);
                let interval =
                    Duration::from_millis(u64::from(shared.interval_ms.load(Ordering::Relaxed)));
                while tick.elapsed() < interval && !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(
                        Duration::from_millis(25).min(interval.saturating_sub(tick.elapsed())),
                    );
                }
            }
            // Dropping the collector here detaches the eBPF programs.
        })
}

async fn signals() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// Stops the collector once no authorised client has been connected for `idle` (or for
/// [`LINGER_WITHOUT_EXIT`] when the helper never exits), and completes then if `idle` is set.
async fn idle_watch(shared: Arc<Shared>, idle: Option<Duration>) {
    let linger = idle.unwrap_or(LINGER_WITHOUT_EXIT);
    let tick = Duration::from_millis(250).min(linger);
    let mut idle_for = Duration::ZERO;
    let mut last = Instant::now();
    loop {
        tokio::time::sleep(tick).await;
        // Time the helper could not run (SIGSTOP, a suspended machine) is not idle time: a
        // wake-up counts at most two ticks. Otherwise a helper resumed after a long stop would
        // exit at once, before the calls queued for it meanwhile are even read.
        let step = last.elapsed().min(tick * 2);
        last = Instant::now();
        if !lock(&shared.clients).is_empty() {
            idle_for = Duration::ZERO;
            continue;
        }
        idle_for += step;
        if idle_for >= linger {
            if shared.collector_running() {
                shared.stop_collector().await;
            }
            if let Some(idle) = idle {
                log::info!("no authorised client for {idle:?}: exiting");
                return;
            }
        }
    }
}

/// Drops a client when its name leaves the bus. Completes only if the bus stops delivering
/// the signal (it has gone away).
async fn forget_departed_clients(
    mut changes: zbus::fdo::NameOwnerChangedStream,
    shared: Arc<Shared>,
) {
    while let Some(change) = changes.next().await {
        let Ok(args) = change.args() else { continue };
        if args.new_owner().is_some() {
            continue;
        }
        let zbus::names::BusName::Unique(name) = args.name() else {
            continue;
        };
        shared.gate.forget(name.as_str());
        shared.drop_client(&OwnedUniqueName::from(name.to_owned()));
    }
}

/// Re-asks polkit, without interaction, about every registered client: every
/// [`RECHECK_EVERY`] and soon after polkit's `Changed`. A refused client is dropped.
async fn recheck_clients(mut changes: crate::authorize::ChangedStream, shared: Arc<Shared>) {
    let mut ticker = tokio::time::interval(RECHECK_EVERY);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            signal = changes.next() => {
                if signal.is_none() {
                    return; // polkit's signal stream ended with the bus
                }
                log::info!("polkit reports a change: re-checking every client");
                shared.gate.invalidate();
            }
        }
        let clients: Vec<(OwnedUniqueName, u32)> = lock(&shared.clients)
            .iter()
            .map(|(n, c)| (n.clone(), c.uid))
            .collect();
        for (name, uid) in clients {
            if uid == 0 {
                continue;
            }
            match shared
                .gate
                .authorize(name.as_str(), Action::Monitor, false, true)
                .await
            {
                Ok(_) | Err(HelperError::Unavailable(_)) => {}
                Err(e) => {
                    log::info!("client {name} (uid {uid}) lost its authorisation: {e}");
                    shared.drop_client(&name);
                    continue;
                }
            }
            // A call-site session also needs `inspect` to go on.
            if !lock(&shared.callsites).has(&name) {
                continue;
            }
            if let Err(
                e @ (HelperError::NotAuthorized(_) | HelperError::AuthenticationRequired(_)),
            ) = shared
                .gate
                .authorize(name.as_str(), Action::Inspect, false, true)
                .await
            {
                log::info!(
                    "client {name} (uid {uid}) lost `inspect`: {e}; ending its call-site session"
                );
                if let Some(session) = lock(&shared.callsites).remove(&name) {
                    session.end_in_background("its client lost the inspect authorisation");
                }
            }
        }
    }
}
