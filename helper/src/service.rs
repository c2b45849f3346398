//! `memmon-helper serve`: the D-Bus-activated system service.
//!
//! One collector thread scans on its own interval and publishes the latest full snapshot and the
//! history; method calls only read what it published (serving never rescans /proc, so ten
//! clients cost what one costs). Every data method is authorised through polkit for the
//! **caller** (the message's sender), cached per unique bus name until that name leaves the bus.
//! Nothing is ever broadcast: there are no signals carrying process data.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::StreamExt as _;
use memmon_common::snapshot::{Mode, Snapshot, SortKey, top_by};
use zbus::{
    Connection, OwnedVariant, Variant,
    fdo::DBusProxy,
    message::{Flags, Header},
    names::OwnedUniqueName,
};

pub use crate::authorize::{Authorizer, Polkit};
use crate::{
    Collector,
    dbus::{BUS_NAME, HelperError, MAX_INTERVAL_MS, MAX_LIMIT, MIN_INTERVAL_MS, OBJECT_PATH},
    history::History,
    smaps::{DetailCache, DetailError},
};

fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What the collector thread publishes.
struct Published {
    snapshot: Option<Arc<Snapshot>>,
    error: Option<String>,
    /// Encoded replies to GetSnapshot for this snapshot, by (key, descending, limit): clients
    /// polling the same view share one sort and one encoding per tick.
    views: Vec<((SortKey, bool, u32), Arc<str>)>,
}

/// Views kept per snapshot (distinct queries in one tick).
const MAX_CACHED_VIEWS: usize = 16;

/// One process watched through `kmem:rss_stat` at a time: the last client to ask wins, and
/// the watch ends when that client leaves the bus.
#[derive(Default)]
struct HighRes {
    wanted: Option<(OwnedUniqueName, (u32, u64))>,
    changed: bool,
    /// What the collector applied, and its error if it could not.
    applied: Option<(u32, u64)>,
    error: Option<String>,
}

/// State shared by the interface, the collector thread and the lifecycle tasks.
struct Shared {
    published: RwLock<Published>,
    history: Mutex<History>,
    /// On-demand smaps_rollup readings, rate-limited per process.
    details: Mutex<DetailCache>,
    /// High-resolution mode, asked for by a client and applied by the collector thread.
    high_res: Mutex<HighRes>,
    /// Authorised unique names → the interval each asked for (None = default).
    clients: Mutex<HashMap<OwnedUniqueName, Option<u32>>>,
    interval_ms: AtomicU32,
    default_interval_ms: u32,
    mode: RwLock<(Mode, Option<String>)>,
    started: Instant,
    stop: AtomicBool,
}

impl Shared {
    fn new(default_interval_ms: u32, mode: Mode, reason: Option<String>) -> Shared {
        Shared {
            published: RwLock::new(Published {
                snapshot: None,
                error: None,
                views: Vec::new(),
            }),
            history: Mutex::new(History::new()),
            details: Mutex::new(DetailCache::new()),
            high_res: Mutex::new(HighRes::default()),
            clients: Mutex::new(HashMap::new()),
            interval_ms: AtomicU32::new(default_interval_ms),
            default_interval_ms,
            mode: RwLock::new((mode, reason)),
            started: Instant::now(),
            stop: AtomicBool::new(false),
        }
    }

    fn recompute_interval(&self, clients: &HashMap<OwnedUniqueName, Option<u32>>) {
        let fastest = clients
            .values()
            .flatten()
            .copied()
            .min()
            .unwrap_or(self.default_interval_ms);
        self.interval_ms.store(fastest, Ordering::Relaxed);
    }
}

pub struct Helper {
    shared: Arc<Shared>,
    auth: Box<dyn Authorizer>,
}

impl Helper {
    async fn authorize(&self, header: &Header<'_>) -> Result<OwnedUniqueName, HelperError> {
        let sender = header
            .sender()
            .ok_or_else(|| HelperError::NotAuthorized("the call has no sender".into()))?;
        let owned = OwnedUniqueName::from(sender.to_owned());
        if lock(&self.shared.clients).contains_key(&owned) {
            return Ok(owned);
        }
        let interactive = header
            .primary()
            .flags()
            .contains(Flags::ALLOW_INTERACTIVE_AUTH);
        self.auth.check(sender, header, interactive).await?;
        let mut clients = lock(&self.shared.clients);
        clients.entry(owned.clone()).or_insert(None);
        Ok(owned)
    }

    fn latest(&self) -> Result<Arc<Snapshot>, HelperError> {
        let published = self
            .shared
            .published
            .read()
            .unwrap_or_else(|p| p.into_inner());
        match (&published.snapshot, &published.error) {
            (Some(s), _) => Ok(Arc::clone(s)),
            (None, Some(e)) => Err(HelperError::Unavailable(format!(
                "the collector failed: {e}"
            ))),
            (None, None) => Err(HelperError::Unavailable(
                "the first scan is still running; retry shortly".into(),
            )),
        }
    }
}

/// A reply payload as the JSON document clients read.
fn encode(value: &impl serde::Serialize) -> Result<String, HelperError> {
    serde_json::to_string(value).map_err(|e| HelperError::Unavailable(format!("encoding: {e}")))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[zbus::interface(name = "io.github.memmon.Helper1")]
impl Helper {
    #[zbus(out_args("info"))]
    async fn get_info(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<HashMap<String, OwnedVariant>, HelperError> {
        self.authorize(&header).await?;
        let (mode, reason) = self
            .shared
            .mode
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let (process_count, bpf_drops) = self
            .latest()
            .map(|s| (s.process_count, s.bpf_drops))
            .unwrap_or((0, 0));
        let history = lock(&self.shared.history).len() as u32;
        let mut info: HashMap<String, OwnedVariant> = HashMap::new();
        let mut put = |k: &str, v: Variant<'_>| {
            if let Ok(v) = v.try_into_owned() {
                info.insert(k.to_owned(), v);
            }
        };
        put("version", Variant::from(env!("CARGO_PKG_VERSION")));
        put("mode", Variant::from(mode_name(mode)));
        put("mode_reason", Variant::from(reason.unwrap_or_default()));
        put(
            "interval_ms",
            Variant::from(self.shared.interval_ms.load(Ordering::Relaxed)),
        );
        put("process_count", Variant::from(process_count));
        put(
            "uptime_s",
            Variant::from(self.shared.started.elapsed().as_secs()),
        );
        put("bpf_drops", Variant::from(bpf_drops));
        put("history_processes", Variant::from(history));
        let (high_res_pid, high_res_error) = {
            let h = lock(&self.shared.high_res);
            (h.applied.map_or(0, |(pid, _)| pid), h.error.clone())
        };
        put("high_res_pid", Variant::from(high_res_pid));
        put(
            "high_res_error",
            Variant::from(high_res_error.unwrap_or_default()),
        );
        Ok(info)
    }

    #[zbus(out_args("snapshot_json"))]
    async fn get_snapshot(
        &self,
        #[zbus(header)] header: Header<'_>,
        sort_key: &str,
        descending: bool,
        limit: u32,
    ) -> Result<String, HelperError> {
        self.authorize(&header).await?;
        let key: SortKey = sort_key
            .parse()
            .map_err(|e| HelperError::InvalidArgument(format!("{e}")))?;
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(HelperError::InvalidArgument(format!(
                "limit {limit} is out of range: use 1 to {MAX_LIMIT}"
            )));
        }
        let query = (key, descending, limit);
        {
            let published = self
                .shared
                .published
                .read()
                .unwrap_or_else(|p| p.into_inner());
            if let Some((_, json)) = published.views.iter().find(|(q, _)| *q == query) {
                return Ok(json.to_string());
            }
        }
        let latest = self.latest()?;
        let view = Snapshot {
            taken_at_unix_ms: latest.taken_at_unix_ms,
            scan_duration_us: latest.scan_duration_us,
            mode: latest.mode,
            mode_reason: latest.mode_reason.clone(),
            system: latest.system,
            process_count: latest.process_count,
            bpf_drops: latest.bpf_drops,
            pressure: latest.pressure,
            oom_kills: latest.oom_kills.clone(),
            processes: top_by(&latest.processes, key, descending, limit as usize),
        };
        let json: Arc<str> = encode(&view)?.into();
        let mut published = self
            .shared
            .published
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let current = published
            .snapshot
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, &latest));
        if current && published.views.len() < MAX_CACHED_VIEWS {
            published.views.push((query, Arc::clone(&json)));
        }
        Ok(json.to_string())
    }

    #[zbus(out_args("history_json"))]
    async fn get_history(
        &self,
        #[zbus(header)] header: Header<'_>,
        pid: u32,
        start_time: u64,
    ) -> Result<String, HelperError> {
        self.authorize(&header).await?;
        let series = lock(&self.shared.history).series(pid, start_time).ok_or_else(|| {
            HelperError::InvalidArgument(format!(
                "no history for PID {pid} with start time {start_time}: not seen by the helper, \
                 exited more than 10 minutes ago, or the PID now belongs to another process"
            ))
        })?;
        encode(&series)
    }

    #[zbus(out_args("samples_json"))]
    async fn get_system_history(
        &self,
        #[zbus(header)] header: Header<'_>,
        since_unix_ms: u64,
    ) -> Result<String, HelperError> {
        self.authorize(&header).await?;
        let samples = lock(&self.shared.history).system_since(since_unix_ms);
        encode(&samples)
    }

    #[zbus(out_args("detail_json"))]
    async fn get_memory_detail(
        &self,
        #[zbus(header)] header: Header<'_>,
        pid: u32,
        start_time: u64,
    ) -> Result<String, HelperError> {
        self.authorize(&header).await?;
        let shared = Arc::clone(&self.shared);
        // smaps_rollup walks the process's page tables: off the async workers.
        let detail = tokio::task::spawn_blocking(move || {
            lock(&shared.details).get(pid, start_time, unix_ms_now())
        })
        .await
        .map_err(|e| HelperError::Unavailable(format!("reading smaps_rollup: {e}")))?
        .map_err(|e| match e {
            e @ DetailError::NoSuchProcess { .. } => HelperError::InvalidArgument(e.to_string()),
            e => HelperError::Unavailable(e.to_string()),
        })?;
        encode(&detail)
    }

    async fn set_high_resolution(
        &self,
        #[zbus(header)] header: Header<'_>,
        pid: u32,
        start_time: u64,
        enable: bool,
    ) -> Result<(), HelperError> {
        let name = self.authorize(&header).await?;
        let (mode, reason) = self
            .shared
            .mode
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if mode != Mode::Full {
            return Err(HelperError::Unavailable(format!(
                "high resolution needs eBPF (Full mode): {}",
                reason.unwrap_or_default()
            )));
        }
        let same = procfs::process::Process::new(pid as i32)
            .and_then(|p| p.stat())
            .is_ok_and(|stat| stat.starttime == start_time);
        if enable && !same {
            return Err(HelperError::InvalidArgument(format!(
                "no process {pid} with start time {start_time}"
            )));
        }
        let mut h = lock(&self.shared.high_res);
        if enable {
            h.wanted = Some((name, (pid, start_time)));
        } else if h
            .wanted
            .as_ref()
            .is_some_and(|(_, key)| *key == (pid, start_time))
        {
            h.wanted = None;
        }
        h.changed = true;
        Ok(())
    }

    async fn set_interval(
        &self,
        #[zbus(header)] header: Header<'_>,
        ms: u32,
    ) -> Result<(), HelperError> {
        let name = self.authorize(&header).await?;
        if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&ms) {
            return Err(HelperError::InvalidArgument(format!(
                "interval {ms} ms is out of range: use {MIN_INTERVAL_MS} to {MAX_INTERVAL_MS} ms"
            )));
        }
        let mut clients = lock(&self.shared.clients);
        clients.insert(name, Some(ms));
        self.shared.recompute_interval(&clients);
        Ok(())
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Full => "full",
        Mode::ProcOnly => "proc-only",
        Mode::Embedded => "embedded",
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

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("another memmon-helper already owns {BUS_NAME} on the system bus")]
    NameTaken,
    #[error("cannot connect to the system bus: {0}")]
    Bus(#[source] zbus::Error),
    #[error("cannot reach polkit: {0}")]
    Polkit(#[source] zbus::Error),
    #[error("cannot start the collector thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
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
    let collector = if options.use_ebpf {
        Collector::with_ebpf()
    } else {
        Collector::embedded("eBPF disabled by --no-ebpf — /proc data only")
    };
    let shared = Arc::new(Shared::new(
        options.interval_ms,
        collector.mode(),
        collector.mode_reason().map(str::to_owned),
    ));
    if let Some(reason) = collector.mode_reason() {
        log::warn!("{reason}");
    }
    let collector_thread =
        spawn_collector(collector, Arc::clone(&shared)).map_err(ServeError::Thread)?;

    // Handlers are in place before the name is requested, so no early call is lost.
    let conn = zbus::connection::Builder::system()
        .build()
        .await
        .map_err(ServeError::Bus)?;
    let auth = Polkit::new(&conn).await.map_err(ServeError::Polkit)?;
    conn.object_server()
        .at(
            OBJECT_PATH,
            Helper {
                shared: Arc::clone(&shared),
                auth: Box::new(auth),
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
    log::info!("serving {BUS_NAME} on the system bus");

    let exit = tokio::select! {
        r = signals() => { r.map_err(ServeError::Signals)?; Exit::Signal }
        () = idle_watch(Arc::clone(&shared), options.idle_exit) => Exit::Idle,
        () = conn.closed() => Exit::BusClosed,
        () = forget_departed_clients(&conn, Arc::clone(&shared)) => Exit::BusClosed,
    };
    shared.stop.store(true, Ordering::SeqCst);
    // The collector owns the eBPF programs: joining it detaches them before we return.
    let _ = tokio::task::spawn_blocking(move || collector_thread.join()).await;
    Ok(exit)
}

fn spawn_collector(
    mut collector: Collector,
    shared: Arc<Shared>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("memmon-collector".into())
        .spawn(move || {
            while !shared.stop.load(Ordering::SeqCst) {
                let tick = Instant::now();
                {
                    let mut h = lock(&shared.high_res);
                    if std::mem::take(&mut h.changed) {
                        let target = h.wanted.as_ref().map(|(_, key)| *key);
                        h.error = collector.watch_rss(target).err();
                    }
                    h.applied = collector.rss_target();
                }
                match collector.collect() {
                    Ok(snapshot) => {
                        lock(&shared.history).record(&snapshot);
                        let mut p = shared.published.write().unwrap_or_else(|p| p.into_inner());
                        p.snapshot = Some(Arc::new(snapshot));
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
                let interval =
                    Duration::from_millis(u64::from(shared.interval_ms.load(Ordering::Relaxed)));
                while tick.elapsed() < interval && !shared.stop.load(Ordering::SeqCst) {
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

/// Completes once no authorised client has been connected for `idle`.
async fn idle_watch(shared: Arc<Shared>, idle: Option<Duration>) {
    let Some(idle) = idle else {
        return std::future::pending().await;
    };
    let mut idle_since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(250).min(idle)).await;
        if !lock(&shared.clients).is_empty() {
            idle_since = Instant::now();
        } else if idle_since.elapsed() >= idle {
            log::info!("no authorised client for {idle:?}: exiting");
            return;
        }
    }
}

/// Drops a client's cached authorisation and interval request when its name leaves the bus.
/// Completes only if the bus stops delivering the signal (it has gone away).
async fn forget_departed_clients(conn: &Connection, shared: Arc<Shared>) {
    let Ok(dbus) = DBusProxy::new(conn).await else {
        return;
    };
    let Ok(mut changes) = dbus.receive_name_owner_changed().await else {
        return;
    };
    while let Some(change) = changes.next().await {
        let Ok(args) = change.args() else { continue };
        if args.new_owner().is_some() {
            continue;
        }
        let zbus::names::BusName::Unique(name) = args.name() else {
            continue;
        };
        let name = OwnedUniqueName::from(name.to_owned());
        {
            let mut h = lock(&shared.high_res);
            if h.wanted.as_ref().is_some_and(|(owner, _)| *owner == name) {
                h.wanted = None;
                h.changed = true;
            }
        }
        let mut clients = lock(&shared.clients);
        if clients.remove(&name).is_some() {
            shared.recompute_interval(&clients);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fastest_requested_interval_wins_and_default_returns() {
        let shared = Shared::new(1000, Mode::Full, None);
        let a = OwnedUniqueName::try_from(":1.7").expect("name");
        let b = OwnedUniqueName::try_from(":1.9").expect("name");
        let mut clients = HashMap::new();
        clients.insert(a.clone(), Some(2000));
        clients.insert(b.clone(), Some(500));
        shared.recompute_interval(&clients);
        assert_eq!(shared.interval_ms.load(Ordering::Relaxed), 500);
        clients.remove(&b);
        shared.recompute_interval(&clients);
        assert_eq!(shared.interval_ms.load(Ordering::Relaxed), 2000);
        clients.remove(&a);
        shared.recompute_interval(&clients);
        assert_eq!(shared.interval_ms.load(Ordering::Relaxed), 1000);
    }
}
