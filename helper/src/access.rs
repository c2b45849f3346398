//! Who may call the helper: polkit's answer for each caller connection, kept honest and bounded.
//!
//! - Root (uid 0) is allowed without asking polkit, as systemd does.
//! - A "yes" is cached per connection and action, and dropped when polkit says its rules or
//!   authorisations changed ([`Gate::invalidate`]) or after [`RECHECK_EVERY`]; the next call
//!   then asks again without interaction (so an inactive session, a removed rule or an expired
//!   `auth_admin_keep` loses access).
//! - At most one check is in flight per connection (other calls of that connection wait for
//!   its answer), at most [`MAX_CHECKS_PER_UID`] per user and [`MAX_CHECKS_IN_FLIGHT`] in all;
//!   further checks queue for [`QUEUE_WAIT`] at most, in bounded queues. Overload is answered
//!   with a retryable `Unavailable`, never with `NotAuthorized`.
//! - Each connection may make [`CALLS_PER_SECOND`] calls a second (bursts of [`CALL_BURST`]).
//! - A refusal is remembered for [`REFUSAL_KEPT`], so a denied client calling in a loop does
//!   not become a loop of polkit checks.
//! - Every decision polkit makes is logged with the uid, the action and the result.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::{
    authorize::{Authorizer, CheckError, Decision},
    dbus::{ACTION_INSPECT, ACTION_MONITOR, HelperError},
};

pub const MAX_CHECKS_IN_FLIGHT: usize = 32;
pub const MAX_CHECKS_PER_UID: usize = 4;
/// Checks beyond those in flight wait their turn, at most this long and this many (in all and
/// per uid); beyond that the call is told to retry.
pub const QUEUE_WAIT: Duration = Duration::from_secs(5);
pub const MAX_WAITING: usize = 512;
pub const MAX_WAITING_PER_UID: usize = 64;
/// Connections tracked at once (authorised or not); each leaves when its name leaves the bus.
pub const MAX_CONNECTIONS: usize = 4096;
/// How long a "yes" is trusted before it is asked again (without interaction).
pub const RECHECK_EVERY: Duration = Duration::from_secs(30);
pub const REFUSAL_KEPT: Duration = Duration::from_secs(2);
pub const CALLS_PER_SECOND: f64 = 50.0;
pub const CALL_BURST: f64 = 100.0;
/// How long asking the bus for a caller's uid may take.
const UID_TIMEOUT: Duration = Duration::from_secs(5);

/// The two polkit actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Snapshots, histories, system history, info, interval.
    Monitor,
    /// Detail of a process the caller cannot read itself; high resolution.
    Inspect,
}

impl Action {
    pub fn id(self) -> &'static str {
        match self {
            Action::Monitor => ACTION_MONITOR,
            Action::Inspect => ACTION_INSPECT,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Action::Monitor => "reading the memory use of all processes",
            Action::Inspect => "inspecting another user's process or tracing at high resolution",
        }
    }

    fn index(self) -> usize {
        match self {
            Action::Monitor => 0,
            Action::Inspect => 1,
        }
    }
}

/// Looks up a bus name's uid (the bus daemon in production, a table in tests).
pub trait UidLookup: Send + Sync {
    fn uid<'a>(
        &'a self,
        caller: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<u32, String>> + Send + 'a>>;
}

/// The bus daemon's `GetConnectionUnixUser`.
pub struct BusUids(pub zbus::fdo::DBusProxy<'static>);

impl UidLookup for BusUids {
    fn uid<'a>(
        &'a self,
        caller: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<u32, String>> + Send + 'a>> {
        Box::pin(async move {
            let name = zbus::names::BusName::try_from(caller).map_err(|e| e.to_string())?;
            self.0
                .get_connection_unix_user(name)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// A caller that may proceed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Granted {
    pub uid: u32,
}

type Outcome = Result<Granted, HelperError>;

#[derive(Default)]
struct Conn {
    uid: Option<u32>,
    /// When polkit last said yes, and the generation of rules it said it under.
    grants: [Option<(Instant, u64)>; 2],
    /// The last refusal: when, under which generation, whether interaction was allowed.
    refusal: [Option<(Instant, u64, bool, HelperError)>; 2],
    /// The check in flight for this connection, which other calls wait for.
    in_flight: Option<(Action, tokio::sync::watch::Receiver<Option<Outcome>>)>,
    tokens: f64,
    refilled: Option<Instant>,
}

impl Conn {
    fn take_token(&mut self, now: Instant) -> bool {
        let elapsed = self.refilled.map_or(Duration::MAX, |t| now - t);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * CALLS_PER_SECOND).min(CALL_BURST);
        self.refilled = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Default)]
struct State {
    conns: HashMap<String, Conn>,
    /// Check slots per uid (dropped when no check of that uid runs or waits).
    per_uid: HashMap<u32, Arc<Limit>>,
    /// Bumped by every polkit `Changed`: grants and refusals of older generations are stale.
    generation: u64,
}

pub struct Gate {
    auth: Arc<dyn Authorizer>,
    uids: Arc<dyn UidLookup>,
    state: Mutex<State>,
    all: Limit,
}

/// Slots for checks, with a bounded queue of checks waiting for one.
struct Limit {
    slots: Arc<tokio::sync::Semaphore>,
    waiting: std::sync::atomic::AtomicUsize,
    max_waiting: usize,
}

impl Limit {
    fn new(slots: usize, max_waiting: usize) -> Limit {
        Limit {
            slots: Arc::new(tokio::sync::Semaphore::new(slots)),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            max_waiting,
        }
    }

    /// A slot now, or after waiting in the queue (at most [`QUEUE_WAIT`]), or `Unavailable`.
    async fn enter(&self, what: &str) -> Result<tokio::sync::OwnedSemaphorePermit, HelperError> {
        use std::sync::atomic::Ordering::SeqCst;
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, SeqCst) >= self.max_waiting {
            self.waiting.fetch_sub(1, SeqCst);
            return Err(busy(&format!(
                "too many authorisation checks waiting {what}"
            )));
        }
        let acquired =
            tokio::time::timeout(QUEUE_WAIT, Arc::clone(&self.slots).acquire_owned()).await;
        self.waiting.fetch_sub(1, SeqCst);
        match acquired {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(busy(&format!(
                "authorisation checks {what} queued too long"
            ))),
        }
    }

    fn idle(&self, slots: usize) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        self.slots.available_permits() == slots && self.waiting.load(SeqCst) == 0
    }
}

/// Ends a connection's check however it ends: the calls waiting for it are told.
struct InFlight<'a> {
    gate: &'a Gate,
    caller: &'a str,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.gate.lock().conns.get_mut(self.caller) {
            c.in_flight = None;
        }
    }
}

fn busy(why: &str) -> HelperError {
    HelperError::Unavailable(format!("the helper is busy ({why}); retry in a moment"))
}

impl Gate {
    pub fn new(auth: Arc<dyn Authorizer>, uids: Arc<dyn UidLookup>) -> Gate {
        Gate {
            auth,
            uids,
            state: Mutex::new(State::default()),
            all: Limit::new(MAX_CHECKS_IN_FLIGHT, MAX_WAITING),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `caller` may do `action` now. `interactive`: the call allows polkit to ask for a
    /// password. `fresh`: ask polkit even if a "yes" is cached (the periodic re-check).
    pub async fn authorize(
        &self,
        caller: &str,
        action: Action,
        interactive: bool,
        fresh: bool,
    ) -> Outcome {
        let now = Instant::now();
        {
            let mut st = self.lock();
            let known = st.conns.len();
            if !st.conns.contains_key(caller) && known >= MAX_CONNECTIONS {
                return Err(busy("too many client connections"));
            }
            let conn = st.conns.entry(caller.to_owned()).or_default();
            if !fresh && !conn.take_token(now) {
                return Err(busy(&format!(
                    "this client makes more than {CALLS_PER_SECOND} calls a second"
                )));
            }
        }
        // A few rounds: a call may wait for another action's check of the same connection.
        for _ in 0..4 {
            let waiter = {
                let mut st = self.lock();
                let generation = st.generation;
                let Some(conn) = st.conns.get_mut(caller) else {
                    return Err(HelperError::NotAuthorized("the caller left the bus".into()));
                };
                if conn.uid == Some(0) {
                    return Ok(Granted { uid: 0 });
                }
                let i = action.index();
                if !fresh
                    && let (Some(uid), Some((at, g))) = (conn.uid, conn.grants[i])
                    && g == generation
                    && now.duration_since(at) < RECHECK_EVERY
                {
                    return Ok(Granted { uid });
                }
                if !fresh
                    && let Some((at, g, was_interactive, err)) = &conn.refusal[i]
                    && *g == generation
                    && now.duration_since(*at) < REFUSAL_KEPT
                    && (*was_interactive || !interactive)
                {
                    return Err(err.clone());
                }
                conn.in_flight
                    .as_ref()
                    .map(|(a, rx)| (*a == action, rx.clone()))
            };
            match waiter {
                Some((same, mut rx)) => {
                    let outcome = rx
                        .wait_for(Option::is_some)
                        .await
                        .ok()
                        .and_then(|v| v.clone());
                    match outcome {
                        Some(outcome) if same && !fresh && !interactive => return outcome,
                        Some(_) => continue, // now decide for this call's own terms
                        None => return Err(busy("an authorisation check was interrupted")),
                    }
                }
                None => return self.lead(caller, action, interactive).await,
            }
        }
        Err(busy("authorisation checks of this client keep overlapping"))
    }

    /// Runs the one check of this connection, and tells the calls waiting for it.
    async fn lead(&self, caller: &str, action: Action, interactive: bool) -> Outcome {
        let (tx, rx) = tokio::sync::watch::channel(None);
        let (generation, known_uid) = {
            let mut st = self.lock();
            let generation = st.generation;
            let conn = st.conns.entry(caller.to_owned()).or_default();
            conn.in_flight = Some((action, rx));
            (generation, conn.uid)
        };
        let in_flight = InFlight { gate: self, caller };
        let outcome = self
            .decide(caller, action, interactive, known_uid, generation)
            .await;
        let _ = tx.send(Some(outcome.clone()));
        drop(in_flight);
        outcome
    }

    async fn decide(
        &self,
        caller: &str,
        action: Action,
        interactive: bool,
        known_uid: Option<u32>,
        generation: u64,
    ) -> Outcome {
        // The uid first (one lookup per connection at a time), then a slot of that uid, then
        // one of all: a flooding user holds at most its own few slots of the global ones.
        let uid = match known_uid {
            Some(uid) => uid,
            None => {
                let uid = match tokio::time::timeout(UID_TIMEOUT, self.uids.uid(caller)).await {
                    Ok(Ok(uid)) => uid,
                    Ok(Err(e)) => {
                        return Err(HelperError::NotAuthorized(format!(
                            "cannot identify the caller {caller}: {e}"
                        )));
                    }
                    Err(_) => return Err(busy("the bus did not say who the caller is in time")),
                };
                if let Some(c) = self.lock().conns.get_mut(caller) {
                    c.uid = Some(uid);
                }
                if uid == 0 {
                    log::info!("authorisation: uid=0 name={caller} allowed (root)");
                }
                uid
            }
        };
        if uid == 0 {
            return Ok(Granted { uid });
        }
        let limit = Arc::clone(
            self.lock()
                .per_uid
                .entry(uid)
                .or_insert_with(|| Arc::new(Limit::new(MAX_CHECKS_PER_UID, MAX_WAITING_PER_UID))),
        );
        let uid_slot = limit.enter(&format!("for uid {uid}")).await;
        let asked = match uid_slot {
            Ok(_uid_slot) => match self.all.enter("in all").await {
                Ok(_slot) => Ok(self.auth.check(caller, action.id(), interactive).await),
                Err(busy) => Err(busy),
            },
            Err(busy) => Err(busy),
        };
        self.forget_idle_limit(uid, &limit);
        let result = asked?;
        let tag = match &result {
            Ok(Decision::Yes) => "yes",
            Ok(Decision::Challenge) => "auth-required",
            Ok(Decision::Dismissed) => "dismissed",
            Ok(Decision::No) => "no",
            Err(CheckError::Timeout(_)) => "timeout",
            Err(CheckError::Failed(_)) => "error",
        };
        log::info!(
            "authorisation: uid={uid} name={caller} action={} interactive={} result={tag}",
            action.id(),
            if interactive { "yes" } else { "no" },
        );
        let outcome = match result {
            Ok(Decision::Yes) => Ok(Granted { uid }),
            Ok(Decision::Challenge) => Err(HelperError::AuthenticationRequired(format!(
                "{} ({}) needs authentication as an administrator{}",
                action.what(),
                action.id(),
                if interactive {
                    ", and no polkit authentication agent answered"
                } else {
                    "; allow interactive authorisation and run a polkit agent"
                }
            ))),
            Ok(Decision::Dismissed) => Err(HelperError::NotAuthorized(format!(
                "the authentication dialog for {} ({}) was dismissed",
                action.what(),
                action.id()
            ))),
            Ok(Decision::No) => Err(HelperError::NotAuthorized(format!(
                "polkit denies {} ({}) to this caller",
                action.id(),
                action.what()
            ))),
            Err(e) => Err(HelperError::Unavailable(format!("{e}; retry in a moment"))),
        };
        let now = Instant::now();
        let mut st = self.lock();
        if let Some(c) = st.conns.get_mut(caller) {
            let i = action.index();
            match &outcome {
                Ok(_) => {
                    c.grants[i] = Some((now, generation));
                    c.refusal[i] = None;
                }
                Err(
                    e @ (HelperError::NotAuthorized(_) | HelperError::AuthenticationRequired(_)),
                ) => {
                    c.grants[i] = None;
                    c.refusal[i] = Some((now, generation, interactive, e.clone()));
                }
                Err(_) => {}
            }
        }
        outcome
    }

    /// Drops a uid's slots once nothing of that uid runs or waits (the map stays bounded).
    fn forget_idle_limit(&self, uid: u32, limit: &Arc<Limit>) {
        let mut st = self.lock();
        // Ours plus the map's reference: no other check holds it.
        if Arc::strong_count(limit) <= 2 && limit.idle(MAX_CHECKS_PER_UID) {
            st.per_uid.remove(&uid);
        }
    }

    /// Polkit's rules or authorisations changed: every cached answer is asked again.
    pub fn invalidate(&self) {
        self.lock().generation += 1;
    }

    /// The name left the bus.
    pub fn forget(&self, caller: &str) {
        self.lock().conns.remove(caller);
    }

    /// Connections tracked (authorised or not).
    pub fn tracked(&self) -> usize {
        self.lock().conns.len()
    }
}

#[cfg(test)]
mod tests;
