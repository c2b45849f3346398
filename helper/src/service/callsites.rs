//! Call-site sessions over D-Bus (`StartCallSites`, `GetCallSites`, `StopCallSites`).
//!
//! - Each session belongs to the client connection that started it: only that connection can
//!   read or stop it, and it ends when that connection leaves the bus or loses its
//!   authorisation (`Shared::drop_client`). A client has at most one session: starting another
//!   ends the previous one.
//! - At most [`MAX_CALLSITE_SESSIONS`] run at once on the machine (each holds an 8 MiB ring
//!   buffer and decodes stacks); beyond that callers get `Unavailable`.
//! - A finished session's report stays readable by its client until it starts another or
//!   leaves, or [`MAX_KEPT_SESSIONS`] newer sessions pushed it out.
//! - Sessions end (and detach) when the helper exits; the kernel detaches them when it is
//!   killed, since nothing is pinned.

use std::collections::HashMap;

use memmon_common::callsites::CallSiteReport;
use zbus::names::OwnedUniqueName;

use crate::dbus::{HelperError, MAX_CALLSITE_SESSIONS};

/// Sessions kept (finished ones readable by their clients) at most; a report is up to ~2 MB.
const MAX_KEPT_SESSIONS: usize = 16;

#[cfg(all(feature = "ebpf", target_arch = "x86_64"))]
pub(super) type SessionHandle = crate::callsites::Session;

/// A stand-in where this build has no call-site support: never constructed.
#[cfg(not(all(feature = "ebpf", target_arch = "x86_64")))]
pub(super) enum SessionHandle {}

#[cfg(not(all(feature = "ebpf", target_arch = "x86_64")))]
impl SessionHandle {
    fn report(&self) -> CallSiteReport {
        match *self {}
    }
    fn is_running(&self) -> bool {
        match *self {}
    }
    fn stop(&self, _reason: &str) {
        match *self {}
    }
}

struct Owned {
    id: u32,
    session: SessionHandle,
}

#[derive(Default)]
pub(super) struct Sessions {
    next_id: u32,
    by_client: HashMap<OwnedUniqueName, Owned>,
    /// Places reserved by starts in progress (programs being attached).
    starting: usize,
}

/// What a start needs, checked by the interface.
#[cfg_attr(not(all(feature = "ebpf", target_arch = "x86_64")), allow(dead_code))]
pub(super) struct StartRequest {
    pub pid: u32,
    pub start_time: u64,
    pub source: memmon_common::callsites::CallSiteSource,
    pub seconds: u32,
    /// 0: adaptive.
    pub sample_every: u32,
}

impl Sessions {
    /// Reserves a place for the client's new session, taking its previous one out (to be ended
    /// off the executor). Refused, keeping the previous one, when the machine has
    /// [`MAX_CALLSITE_SESSIONS`] running or starting for other clients. Every reservation ends
    /// with [`Self::insert`] or [`Self::release`].
    pub fn make_room(&mut self, client: &OwnedUniqueName) -> Result<Option<Taken>, HelperError> {
        let busy = self.starting
            + self
                .by_client
                .iter()
                .filter(|(c, o)| *c != client && o.session.is_running())
                .count();
        if busy >= MAX_CALLSITE_SESSIONS {
            return Err(HelperError::Unavailable(format!(
                "{busy} call-site sessions are running (at most {MAX_CALLSITE_SESSIONS}); \
                 retry when one ends"
            )));
        }
        self.starting += 1;
        Ok(self.by_client.remove(client).map(|o| Taken(o.session)))
    }

    /// A reservation that did not become a session.
    pub fn release(&mut self) {
        self.starting = self.starting.saturating_sub(1);
    }

    /// Files the started session under its client; returns the id and a session it replaced
    /// (the same client's concurrent start), to be ended off the executor.
    pub fn insert(
        &mut self,
        client: OwnedUniqueName,
        session: SessionHandle,
    ) -> (u32, Option<Taken>) {
        self.release();
        // Finished reports stay readable, but at most MAX_KEPT_SESSIONS of them: the oldest go.
        while self.by_client.len() >= MAX_KEPT_SESSIONS {
            let oldest = self
                .by_client
                .iter()
                .filter(|(_, o)| !o.session.is_running())
                .min_by_key(|(_, o)| o.id)
                .map(|(c, _)| c.clone());
            let Some(oldest) = oldest else { break };
            self.by_client.remove(&oldest);
        }
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let id = self.next_id;
        let replaced = self
            .by_client
            .insert(client, Owned { id, session })
            .map(|o| Taken(o.session));
        (id, replaced)
    }

    /// The report of the client's session `id`.
    pub fn report(&self, client: &OwnedUniqueName, id: u32) -> Result<CallSiteReport, HelperError> {
        Ok(self.owned(client, id)?.session.report())
    }

    pub fn stop(&self, client: &OwnedUniqueName, id: u32) -> Result<(), HelperError> {
        self.owned(client, id)?
            .session
            .stop("stopped by its client");
        Ok(())
    }

    /// Removes the client's session (it left the bus or lost its authorisation).
    pub fn remove(&mut self, client: &OwnedUniqueName) -> Option<Taken> {
        self.by_client.remove(client).map(|o| Taken(o.session))
    }

    pub fn has(&self, client: &OwnedUniqueName) -> bool {
        self.by_client.contains_key(client)
    }

    /// Every session, for the helper's exit.
    pub fn drain(&mut self) -> Vec<Taken> {
        self.by_client
            .drain()
            .map(|(_, o)| Taken(o.session))
            .collect()
    }

    fn owned(&self, client: &OwnedUniqueName, id: u32) -> Result<&Owned, HelperError> {
        self.by_client
            .get(client)
            .filter(|o| o.id == id)
            .ok_or_else(|| {
                HelperError::InvalidArgument(format!(
                    "no call-site session {id} of this connection (sessions belong to the \
                     connection that started them)"
                ))
            })
    }
}

/// A session taken out of the registry. Dropping it ends the session and waits for its thread
/// (up to one decoding tick and the final naming of frames), so it is dropped with
/// [`Taken::end_in_background`], never on the async executor.
pub(super) struct Taken(SessionHandle);

impl From<SessionHandle> for Taken {
    fn from(session: SessionHandle) -> Taken {
        Taken(session)
    }
}

impl Taken {
    pub fn end_in_background(self, reason: &'static str) {
        self.0.stop(reason);
        let _ = std::thread::Builder::new()
            .name("memmon-cs-end".into())
            .spawn(move || drop(self));
    }
}

/// Starts a session (blocking: it loads programs and reads the process's binaries).
#[cfg(all(feature = "ebpf", target_arch = "x86_64"))]
pub(super) fn start(req: StartRequest) -> Result<SessionHandle, HelperError> {
    use crate::callsites::{CallSiteError, Session, SessionRequest};

    let key = memmon_common::process_key::ProcessKey::new(req.pid, req.start_time);
    if crate::proc_scan::open_process(key).is_none() {
        return Err(HelperError::InvalidArgument(format!(
            "no process {} with start time {}",
            req.pid, req.start_time
        )));
    }
    Session::start(SessionRequest {
        pid: req.pid,
        source: req.source,
        seconds: req.seconds,
        sample_every: (req.sample_every > 0).then_some(req.sample_every),
    })
    .map_err(|e| match e {
        e @ (CallSiteError::InvalidSeconds(_)
        | CallSiteError::InvalidSample
        | CallSiteError::NoSuchProcess(_)
        | CallSiteError::NoAllocator(_)
        // Retrying cannot help: this service cannot offer the heap source here.
        | CallSiteError::UprobesNeedAdmin) => HelperError::InvalidArgument(e.to_string()),
        e => HelperError::Unavailable(e.to_string()),
    })
}

#[cfg(not(all(feature = "ebpf", target_arch = "x86_64")))]
pub(super) fn start(_req: StartRequest) -> Result<SessionHandle, HelperError> {
    Err(HelperError::Unavailable(
        "this build of memmon-helper has no call-site support (eBPF on x86_64)".into(),
    ))
}
