//! `memmon-helper serve`: the D-Bus-activated system service — its interface.
//!
//! One collector thread scans on its own interval and publishes the latest full snapshot and the
//! history; method calls only read what it published (serving never rescans /proc, so ten
//! clients cost what one costs). Every method is authorised for the **caller** (the message's
//! sender) by [`crate::access::Gate`]. Nothing system-wide happens before an authorised call:
//! the collector and its eBPF programs start at the first one ([`lifecycle`]). Nothing is ever
//! broadcast: there are no signals carrying process data.

mod callsites;
mod lifecycle;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock, atomic::Ordering},
    time::Duration,
};

use memmon_common::{
    apps::{AppSortKey, MAX_EXPANDED_APPS},
    process_key::ProcessKey,
    snapshot::{Mode, Snapshot, SortKey, top_by, unix_ms_now},
};
use zbus::{
    OwnedVariant, Variant,
    message::{Flags, Header},
    names::OwnedUniqueName,
};

pub use crate::authorize::{Authorizer, Polkit};
pub use lifecycle::{Exit, ServeError, ServeOptions, serve};
use lifecycle::{Published, Shared};

use crate::{
    access::Action,
    dbus::{HelperError, MAX_APP_ID, MAX_INTERVAL_MS, MAX_LIMIT, MIN_INTERVAL_MS},
    smaps::DetailError,
};

/// Views of at most this many rows are encoded on the executor; larger ones off it.
const INLINE_ROWS: u32 = 100;
/// Views kept per snapshot (distinct queries in one tick).
const MAX_CACHED_VIEWS: usize = 16;
/// How long a call waits for the collector's first scan after it started.
const FIRST_SCAN_WAIT: Duration = Duration::from_secs(10);
/// Page-table walks (`GetMemoryDetail`) at once, and calls allowed to wait for one.
const DETAIL_WALKS: usize = 2;
const DETAIL_WAITING: usize = 64;

pub struct Helper {
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

/// A reply payload as the JSON document clients read.
fn encode(value: &impl serde::Serialize) -> Result<String, HelperError> {
    serde_json::to_string(value).map_err(|e| HelperError::Unavailable(format!("encoding: {e}")))
}

impl Helper {
    /// Authorises the caller for `action` (always `monitor` first), registers it as a client,
    /// starts the collector if it is not running and returns the caller's name and uid.
    async fn admit(
        &self,
        header: &Header<'_>,
        action: Action,
    ) -> Result<(OwnedUniqueName, u32), HelperError> {
        let sender = header
            .sender()
            .ok_or_else(|| HelperError::NotAuthorized("the call has no sender".into()))?;
        let interactive = header
            .primary()
            .flags()
            .contains(Flags::ALLOW_INTERACTIVE_AUTH);
        let gate = &self.shared.gate;
        let granted = gate
            .authorize(sender.as_str(), Action::Monitor, interactive, false)
            .await?;
        if action == Action::Inspect {
            gate.authorize(sender.as_str(), Action::Inspect, interactive, false)
                .await?;
        }
        let name = OwnedUniqueName::from(sender.to_owned());
        self.shared.register(&name, granted.uid).await?;
        Ok((name, granted.uid))
    }

    /// The latest snapshot, waiting for the first scan of a collector that just started.
    async fn latest(&self) -> Result<Arc<Snapshot>, HelperError> {
        let mut published = self.shared.published_rx();
        let wait = published.wait_for(|generation| *generation > 0);
        let _ = tokio::time::timeout(FIRST_SCAN_WAIT, wait).await;
        let p: std::sync::RwLockReadGuard<'_, Published> = read(&self.shared.published);
        match (&p.snapshot, &p.error) {
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

#[zbus::interface(name = "io.github.memmon.Helper1")]
impl Helper {
    #[zbus(out_args("info"))]
    async fn get_info(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<HashMap<String, OwnedVariant>, HelperError> {
        self.admit(&header, Action::Monitor).await?;
        let latest = self.latest().await;
        let (mode, reason) = read(&self.shared.mode).clone();
        let (process_count, bpf_drops) = latest
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
            (h.applied.map_or(0, |key| key.pid), h.error.clone())
        };
        put("high_res_pid", Variant::from(high_res_pid));
        put(
            "high_res_error",
            Variant::from(high_res_error.unwrap_or_default()),
        );
        put(
            "clients",
            Variant::from(lock(&self.shared.clients).len() as u32),
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
        self.admit(&header, Action::Monitor).await?;
        // The error quotes at most 32 characters of a (maybe megabytes long) key.
        let key: SortKey = sort_key
            .parse()
            .map_err(|e| HelperError::InvalidArgument(format!("{e}")))?;
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(HelperError::InvalidArgument(format!(
                "limit {limit} is out of range: use 1 to {MAX_LIMIT}"
            )));
        }
        let query = (key, descending, limit);
        let cached = || {
            read(&self.shared.published)
                .views
                .iter()
                .find(|(q, _)| *q == query)
                .map(|(_, json)| json.to_string())
        };
        if let Some(json) = cached() {
            return Ok(json);
        }
        // One encoding at a time: clients asking for the same view meanwhile wait for it (without
        // holding up the executor) and then read it from the cache instead of encoding it again.
        let _encoding = self.shared.encoding.lock().await;
        if let Some(json) = cached() {
            return Ok(json);
        }
        let latest = self.latest().await?;
        let snapshot = Arc::clone(&latest);
        let view = move || {
            let view = Snapshot {
                taken_at_unix_ms: snapshot.taken_at_unix_ms,
                scan_duration_us: snapshot.scan_duration_us,
                mode: snapshot.mode,
                mode_reason: snapshot.mode_reason.clone(),
                system: snapshot.system,
                process_count: snapshot.process_count,
                bpf_drops: snapshot.bpf_drops,
                pressure: snapshot.pressure,
                oom_kills: snapshot.oom_kills.clone(),
                processes: top_by(&snapshot.processes, key, descending, limit as usize),
            };
            encode(&view)
        };
        // The app's 100 rows encode in well under a millisecond: here, without a thread
        // hand-off. Larger views (up to 1,000 rows) go off the executor, so one heavy client
        // does not hold up the others' calls.
        let json: Arc<str> = if limit <= INLINE_ROWS {
            view()?
        } else {
            tokio::task::spawn_blocking(view)
                .await
                .map_err(|e| HelperError::Unavailable(format!("encoding the snapshot: {e}")))??
        }
        .into();
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

    /// The top apps; those in `expanded` carry their processes.
    #[zbus(out_args("apps_json"))]
    async fn get_apps(
        &self,
        #[zbus(header)] header: Header<'_>,
        sort_key: &str,
        descending: bool,
        limit: u32,
        expanded: Vec<String>,
    ) -> Result<String, HelperError> {
        self.admit(&header, Action::Monitor).await?;
        let key: AppSortKey = sort_key
            .parse()
            .map_err(|e| HelperError::InvalidArgument(format!("{e}")))?;
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(HelperError::InvalidArgument(format!(
                "limit {limit} is out of range: use 1 to {MAX_LIMIT}"
            )));
        }
        if expanded.len() > MAX_EXPANDED_APPS || expanded.iter().any(|id| id.len() > MAX_APP_ID) {
            return Err(HelperError::InvalidArgument(format!(
                "expand at most {MAX_EXPANDED_APPS} apps, each id at most {MAX_APP_ID} bytes"
            )));
        }
        let snapshot = self.latest().await?;
        let apps = read(&self.shared.published)
            .apps
            .clone()
            .ok_or_else(|| HelperError::Unavailable("no apps yet; retry shortly".into()))?;
        let _encoding = self.shared.encoding.lock().await;
        let view = move || {
            encode(&crate::apps::view(
                &apps, &snapshot, key, descending, limit, &expanded,
            ))
        };
        tokio::task::spawn_blocking(view)
            .await
            .map_err(|e| HelperError::Unavailable(format!("encoding the apps: {e}")))?
    }

    #[zbus(out_args("history_json"))]
    async fn get_app_history(
        &self,
        #[zbus(header)] header: Header<'_>,
        id: &str,
    ) -> Result<String, HelperError> {
        self.admit(&header, Action::Monitor).await?;
        if id.len() > MAX_APP_ID {
            return Err(HelperError::InvalidArgument(format!(
                "app ids are at most {MAX_APP_ID} bytes"
            )));
        }
        let series = lock(&self.shared.app_history).series(id).ok_or_else(|| {
            HelperError::InvalidArgument(format!(
                "no history for app {:?}: not seen by the helper, or gone more than 10 minutes ago",
                id.chars().take(64).collect::<String>()
            ))
        })?;
        encode(&series)
    }

    #[zbus(out_args("history_json"))]
    async fn get_history(
        &self,
        #[zbus(header)] header: Header<'_>,
        pid: u32,
        start_time: u64,
    ) -> Result<String, HelperError> {
        self.admit(&header, Action::Monitor).await?;
        let key = ProcessKey::new(pid, start_time);
        let series = lock(&self.shared.history).series(key).ok_or_else(|| {
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
        self.admit(&header, Action::Monitor).await?;
        let samples = lock(&self.shared.history).system_since(since_unix_ms);
        encode(&samples)
    }

    /// PSS/USS of one process. The caller's own processes need `monitor`; another user's need
    /// `inspect`. Walks are rate-limited per process (the cache), bounded in number at once,
    /// and bounded in how many calls may wait for one.
    #[zbus(out_args("detail_json"))]
    async fn get_memory_detail(
        &self,
        #[zbus(header)] header: Header<'_>,
        pid: u32,
        start_time: u64,
    ) -> Result<String, HelperError> {
        let (_, uid) = self.admit(&header, Action::Monitor).await?;
        let owner = procfs::process::Process::new(pid as i32)
            .and_then(|p| Ok((p.uid()?, p.stat()?.starttime)))
            .ok()
            .filter(|(_, start)| *start == start_time)
            .map(|(owner, _)| owner)
            .ok_or_else(|| {
                HelperError::InvalidArgument(
                    DetailError::NoSuchProcess { pid, start_time }.to_string(),
                )
            })?;
        if owner != uid {
            self.admit(&header, Action::Inspect).await?;
        }
        let shared = Arc::clone(&self.shared);
        let _permit = self.shared.detail_permit().await?;
        // smaps_rollup walks the process's page tables: off the async workers.
        let detail = tokio::task::spawn_blocking(move || {
            lock(&shared.details).get(ProcessKey::new(pid, start_time), unix_ms_now())
        })
        .await
        .map_err(|e| HelperError::Unavailable(format!("reading smaps_rollup: {e}")))?
        .map_err(|e| match e {
            e @ DetailError::NoSuchProcess { .. } => HelperError::InvalidArgument(e.to_string()),
            e @ DetailError::Busy => HelperError::Unavailable(e.to_string()),
            e => HelperError::Unavailable(e.to_string()),
        })?;
        encode(&detail)
    }

    /// Watches every RSS change of one process (needs `inspect`). `enable = false` ends only
    /// the caller's own watch.
    async fn set_high_resolution(
        &self,
        #[zbus(header)] header: Header<'_>,
        pid: u32,
        start_time: u64,
        enable: bool,
    ) -> Result<(), HelperError> {
        let (name, _) = self.admit(&header, Action::Inspect).await?;
        self.latest().await?;
        let (mode, reason) = read(&self.shared.mode).clone();
        if mode != Mode::Full {
            return Err(HelperError::Unavailable(format!(
                "high resolution needs eBPF (Full mode): {}",
                reason.unwrap_or_default()
            )));
        }
        let key = ProcessKey::new(pid, start_time);
        if enable && crate::proc_scan::open_process(key).is_none() {
            return Err(HelperError::InvalidArgument(format!(
                "no process {pid} with start time {start_time}"
            )));
        }
        let mut h = lock(&self.shared.high_res);
        if enable {
            h.wanted = Some((name, key));
            h.changed = true;
        } else if h
            .wanted
            .as_ref()
            .is_some_and(|(owner, watched)| *owner == name && *watched == key)
        {
            h.wanted = None;
            h.changed = true;
        }
        Ok(())
    }

    /// Starts a call-site session (needs `inspect`); see docs/dbus-api.md.
    async fn start_call_sites(
        &self,
        #[zbus(header)] header: Header<'_>,
        pid: u32,
        start_time: u64,
        source: String,
        seconds: u32,
        sample_every: u32,
    ) -> Result<u32, HelperError> {
        let (name, uid) = self.admit(&header, Action::Inspect).await?;
        let source = source
            .parse::<memmon_common::callsites::CallSiteSource>()
            .map_err(HelperError::InvalidArgument)?;
        if seconds == 0 || seconds > memmon_common::callsites::MAX_SESSION_SECONDS {
            return Err(HelperError::InvalidArgument(format!(
                "a session lasts 1 to {} seconds, not {seconds}",
                memmon_common::callsites::MAX_SESSION_SECONDS
            )));
        }
        let previous = lock(&self.shared.callsites).make_room(&name)?;
        if let Some(previous) = previous {
            previous.end_in_background("its client started another session");
        }
        let req = callsites::StartRequest {
            pid,
            start_time,
            source,
            seconds,
            sample_every,
        };
        let started = tokio::task::spawn_blocking(move || callsites::start(req))
            .await
            .map_err(|e| HelperError::Unavailable(format!("starting the session: {e}")))
            .and_then(|r| r);
        let session = match started {
            Ok(session) => session,
            Err(e) => {
                lock(&self.shared.callsites).release();
                return Err(e);
            }
        };
        log::info!(
            "call sites of PID {pid} ({source}, {seconds} s) started for {name} (uid {uid})"
        );
        // The client may have left while the programs were attached.
        if !lock(&self.shared.clients).contains_key(&name) {
            lock(&self.shared.callsites).release();
            callsites::Taken::from(session).end_in_background("its client left");
            return Err(HelperError::NotAuthorized(
                "the caller left the bus while the session started".into(),
            ));
        }
        let (id, replaced) = lock(&self.shared.callsites).insert(name, session);
        if let Some(replaced) = replaced {
            replaced.end_in_background("its client started another session");
        }
        Ok(id)
    }

    /// JSON `CallSiteReport` of the caller's session.
    #[zbus(out_args("report_json"))]
    async fn get_call_sites(
        &self,
        #[zbus(header)] header: Header<'_>,
        session: u32,
    ) -> Result<String, HelperError> {
        let (name, _) = self.admit(&header, Action::Inspect).await?;
        let report = lock(&self.shared.callsites).report(&name, session)?;
        encode(&report)
    }

    async fn stop_call_sites(
        &self,
        #[zbus(header)] header: Header<'_>,
        session: u32,
    ) -> Result<(), HelperError> {
        let (name, _) = self.admit(&header, Action::Inspect).await?;
        lock(&self.shared.callsites).stop(&name, session)
    }

    async fn set_interval(
        &self,
        #[zbus(header)] header: Header<'_>,
        ms: u32,
    ) -> Result<(), HelperError> {
        let (name, _) = self.admit(&header, Action::Monitor).await?;
        if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&ms) {
            return Err(HelperError::InvalidArgument(format!(
                "interval {ms} ms is out of range: use {MIN_INTERVAL_MS} to {MAX_INTERVAL_MS} ms"
            )));
        }
        let mut clients = lock(&self.shared.clients);
        if let Some(client) = clients.get_mut(&name) {
            client.interval_ms = Some(ms);
        }
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
