//! The typed client of `io.github.memmon.Helper1`, used by the app and the CLI: every call is
//! bounded in time, decides whether polkit may ask the user for a password, decodes the JSON
//! payload into the shared serde types, and fails with one [`ClientError`] that says what a
//! user needs to know.

use std::{collections::HashMap, time::Duration};

use memmon_common::{
    apps::{AppHistorySeries, AppSortKey, AppsSnapshot},
    callsites::{CallSiteReport, CallSiteSource},
    diagnostics::{MemoryDetail, SystemSample},
    snapshot::{Snapshot, SortKey},
};
use serde::de::DeserializeOwned;
use zbus::{Connection, OwnedVariant, Proxy, proxy::MethodFlags};

use crate::{
    dbus::{BUS_NAME, INTERFACE, OBJECT_PATH},
    history::HistorySeries,
};

/// How long an ordinary call may take before the helper is reported as not answering.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a call that may show a password dialog may take (the helper gives polkit 120 s).
pub const INTERACTIVE_TIMEOUT: Duration = Duration::from_secs(130);

/// Why a call to the helper failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("{}", helper_missing_hint(*.in_flatpak))]
    NotInstalled { in_flatpak: bool },
    /// Polkit said no (or the dialog was dismissed).
    #[error("the helper refused: {0}")]
    NotAuthorized(String),
    /// Could be allowed after authenticating.
    #[error("the helper refused: {0}")]
    AuthenticationRequired(String),
    /// Busy or not ready: retry later.
    #[error("the helper is busy: {0}")]
    Unavailable(String),
    #[error("the helper rejected the request: {0}")]
    InvalidArgument(String),
    #[error("the helper did not answer {method} within {} s", .after.as_secs())]
    Timeout {
        method: &'static str,
        after: Duration,
    },
    #[error("the system bus is not reachable: {0}")]
    Bus(String),
    #[error("the helper sent an unreadable {what}: {error}")]
    Unreadable { what: &'static str, error: String },
}

impl ClientError {
    /// Polkit's answer was no: asking again without a person's action is pointless.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            ClientError::NotAuthorized(_) | ClientError::AuthenticationRequired(_)
        )
    }

    fn from_bus(err: zbus::Error) -> ClientError {
        match err {
            zbus::Error::MethodError(name, message, _) => {
                let message = message.unwrap_or_default();
                match name.as_str().rsplit('.').next().unwrap_or_default() {
                    "ServiceUnknown" | "NameHasNoOwner" => ClientError::NotInstalled {
                        in_flatpak: std::path::Path::new("/.flatpak-info").exists(),
                    },
                    "NotAuthorized" => ClientError::NotAuthorized(message),
                    "AuthenticationRequired" => ClientError::AuthenticationRequired(message),
                    "Unavailable" => ClientError::Unavailable(message),
                    "InvalidArgument" => ClientError::InvalidArgument(message),
                    _ => ClientError::Bus(format!("{name}: {message}")),
                }
            }
            other => ClientError::Bus(other.to_string()),
        }
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

/// A connection to the helper (activated by the first call).
#[derive(Clone, Debug)]
pub struct HelperClient {
    proxy: Proxy<'static>,
}

impl HelperClient {
    /// Connects to the system bus; the helper itself is started by the first call.
    pub async fn connect() -> Result<HelperClient, ClientError> {
        let connect = async {
            let conn = Connection::system().await?;
            Proxy::new(&conn, BUS_NAME, OBJECT_PATH, INTERFACE).await
        };
        let proxy = tokio::time::timeout(CALL_TIMEOUT, connect)
            .await
            .map_err(|_| ClientError::Bus("connecting timed out".into()))?
            .map_err(ClientError::from_bus)?;
        Ok(HelperClient { proxy })
    }

    async fn call<B, R>(
        &self,
        method: &'static str,
        interactive: bool,
        body: &B,
    ) -> Result<R, ClientError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
        R: for<'d> zbus::zvariant::DynamicDeserialize<'d>,
    {
        let (flags, after) = if interactive {
            (MethodFlags::ALLOW_INTERACTIVE_AUTH, INTERACTIVE_TIMEOUT)
        } else {
            (MethodFlags::empty(), CALL_TIMEOUT)
        };
        let reply = tokio::time::timeout(after, self.proxy.call_with_flags(method, flags, body))
            .await
            .map_err(|_| ClientError::Timeout { method, after })?
            .map_err(ClientError::from_bus)?;
        reply.ok_or_else(|| ClientError::Bus(format!("{method} sent no reply")))
    }

    async fn call_json<B, R>(
        &self,
        method: &'static str,
        interactive: bool,
        body: &B,
        what: &'static str,
    ) -> Result<R, ClientError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
        R: DeserializeOwned,
    {
        let json: String = self.call(method, interactive, body).await?;
        serde_json::from_str(&json).map_err(|e| ClientError::Unreadable {
            what,
            error: e.to_string(),
        })
    }

    /// `GetInfo`. `interactive`: polkit may show a password dialog (once per launch, or when the
    /// user asks to try again — never in a loop).
    pub async fn info(
        &self,
        interactive: bool,
    ) -> Result<HashMap<String, OwnedVariant>, ClientError> {
        self.call("GetInfo", interactive, &()).await
    }

    pub async fn snapshot(
        &self,
        key: SortKey,
        descending: bool,
        limit: u32,
    ) -> Result<Snapshot, ClientError> {
        self.call_json(
            "GetSnapshot",
            false,
            &(key.as_str(), descending, limit),
            "snapshot",
        )
        .await
    }

    pub async fn history(&self, pid: u32, start_time: u64) -> Result<HistorySeries, ClientError> {
        self.call_json("GetHistory", false, &(pid, start_time), "history")
            .await
    }

    pub async fn system_history(
        &self,
        since_unix_ms: u64,
    ) -> Result<Vec<SystemSample>, ClientError> {
        self.call_json(
            "GetSystemHistory",
            false,
            &(since_unix_ms,),
            "system history",
        )
        .await
    }

    /// `GetMemoryDetail`: another user's process needs the `inspect` action, which asks for an
    /// administrator's password; pass `interactive` only for a person's explicit request.
    pub async fn memory_detail(
        &self,
        pid: u32,
        start_time: u64,
        interactive: bool,
    ) -> Result<MemoryDetail, ClientError> {
        self.call_json(
            "GetMemoryDetail",
            interactive,
            &(pid, start_time),
            "memory detail",
        )
        .await
    }

    pub async fn set_high_resolution(
        &self,
        pid: u32,
        start_time: u64,
        enable: bool,
        interactive: bool,
    ) -> Result<(), ClientError> {
        self.call("SetHighResolution", interactive, &(pid, start_time, enable))
            .await
    }

    /// `GetApps`: the top apps, with the processes of those in `expanded`.
    pub async fn apps(
        &self,
        key: AppSortKey,
        descending: bool,
        limit: u32,
        expanded: &[&str],
    ) -> Result<AppsSnapshot, ClientError> {
        self.call_json(
            "GetApps",
            false,
            &(key.as_str(), descending, limit, expanded),
            "apps",
        )
        .await
    }

    pub async fn app_history(&self, id: &str) -> Result<AppHistorySeries, ClientError> {
        self.call_json("GetAppHistory", false, &(id,), "app history")
            .await
    }

    pub async fn set_interval(&self, ms: u32) -> Result<(), ClientError> {
        self.call("SetInterval", false, &(ms,)).await
    }

    /// `StartCallSites` (needs `inspect`: pass `interactive` for a person's explicit request).
    /// `sample_every` 0 adapts the heap sampling interval. Returns the session id.
    pub async fn start_call_sites(
        &self,
        pid: u32,
        start_time: u64,
        source: CallSiteSource,
        seconds: u32,
        sample_every: u32,
        interactive: bool,
    ) -> Result<u32, ClientError> {
        self.call(
            "StartCallSites",
            interactive,
            &(pid, start_time, source.as_str(), seconds, sample_every),
        )
        .await
    }

    /// `GetCallSites`: the session's report so far, or its final one.
    pub async fn call_sites(&self, session: u32) -> Result<CallSiteReport, ClientError> {
        self.call_json("GetCallSites", false, &(session,), "call sites")
            .await
    }

    pub async fn stop_call_sites(&self, session: u32) -> Result<(), ClientError> {
        self.call("StopCallSites", false, &(session,)).await
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

    #[test]
    fn helper_errors_map_to_what_the_user_needs() {
        let err = |name: &str| {
            ClientError::from_bus(zbus::Error::MethodError(
                zbus::names::OwnedErrorName::try_from(name).expect("name"),
                Some("because".into()),
                zbus::message::Message::method_call("/", "X")
                    .build(&())
                    .expect("message"),
            ))
        };
        assert_eq!(
            err("io.github.memmon.Helper1.Error.NotAuthorized"),
            ClientError::NotAuthorized("because".into())
        );
        assert!(err("io.github.memmon.Helper1.Error.AuthenticationRequired").is_refusal());
        assert!(!err("io.github.memmon.Helper1.Error.Unavailable").is_refusal());
        assert!(matches!(
            err("org.freedesktop.DBus.Error.ServiceUnknown"),
            ClientError::NotInstalled { .. }
        ));
        let timeout = ClientError::Timeout {
            method: "GetSnapshot",
            after: CALL_TIMEOUT,
        };
        assert_eq!(
            timeout.to_string(),
            "the helper did not answer GetSnapshot within 5 s"
        );
    }
}
