//! Asking polkit about a caller: subject `system-bus-name` = the message's sender (never the
//! helper itself), one action, interactive or not, bounded in time and cancellable.
//!
//! The policy around these checks (caching, limits, re-checks) is in [`crate::access`].

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use zbus::{Connection, Variant};

/// What polkit answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Yes,
    /// Could be authorised after authenticating (no interaction allowed, or no agent).
    Challenge,
    /// The user dismissed the authentication dialog.
    Dismissed,
    No,
}

/// Why a check has no decision.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("polkit did not answer within {0:?} (the check was cancelled)")]
    Timeout(Duration),
    #[error("polkit could not be asked: {0}")]
    Failed(String),
}

/// How authorisation is decided; polkit in production, a fake in unit tests.
pub trait Authorizer: Send + Sync {
    /// Asks whether the bus name `caller` may do `action`.
    fn check<'a>(
        &'a self,
        caller: &'a str,
        action: &'static str,
        interactive: bool,
    ) -> Pin<Box<dyn Future<Output = Result<Decision, CheckError>> + Send + 'a>>;
}

/// How long polkit may take. An interactive check waits for a person typing a password.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
pub const INTERACTIVE_CHECK_TIMEOUT: Duration = Duration::from_secs(120);

const ALLOW_USER_INTERACTION: u32 = 1;

#[zbus::proxy(
    interface = "org.freedesktop.PolicyKit1.Authority",
    default_service = "org.freedesktop.PolicyKit1",
    default_path = "/org/freedesktop/PolicyKit1/Authority"
)]
pub trait Authority {
    /// (is_authorized, is_challenge, details)
    fn check_authorization(
        &self,
        subject: &(&str, HashMap<&str, Variant<'_>>),
        action_id: &str,
        details: &HashMap<&str, &str>,
        flags: u32,
        cancellation_id: &str,
    ) -> zbus::Result<(bool, bool, HashMap<String, String>)>;

    fn cancel_check_authorization(&self, cancellation_id: &str) -> zbus::Result<()>;

    /// Actions or authorisations changed (a rule file, a session becoming inactive, an
    /// expired temporary authorisation).
    #[zbus(signal)]
    fn changed(&self) -> zbus::Result<()>;
}

/// Asks polkitd.
pub struct Polkit {
    authority: AuthorityProxy<'static>,
    next_id: AtomicU64,
}

impl Polkit {
    pub async fn new(conn: &Connection) -> zbus::Result<Polkit> {
        Ok(Polkit {
            authority: AuthorityProxy::new(conn).await?,
            next_id: AtomicU64::new(1),
        })
    }

    pub fn authority(&self) -> &AuthorityProxy<'static> {
        &self.authority
    }
}

impl Authorizer for Polkit {
    fn check<'a>(
        &'a self,
        caller: &'a str,
        action: &'static str,
        interactive: bool,
    ) -> Pin<Box<dyn Future<Output = Result<Decision, CheckError>> + Send + 'a>> {
        Box::pin(async move {
            let subject = (
                "system-bus-name",
                HashMap::from([("name", Variant::from(caller))]),
            );
            let (flags, timeout) = if interactive {
                (ALLOW_USER_INTERACTION, INTERACTIVE_CHECK_TIMEOUT)
            } else {
                (0, CHECK_TIMEOUT)
            };
            let cancellation_id = format!(
                "memmon-{}-{}",
                std::process::id(),
                self.next_id.fetch_add(1, Ordering::Relaxed)
            );
            let details = HashMap::new();
            let call = self.authority.check_authorization(
                &subject,
                action,
                &details,
                flags,
                &cancellation_id,
            );
            match tokio::time::timeout(timeout, call).await {
                Ok(Ok((true, _, _))) => Ok(Decision::Yes),
                Ok(Ok((false, true, _))) => Ok(Decision::Challenge),
                Ok(Ok((false, false, details))) => Ok(
                    if details
                        .get("polkit.dismissed")
                        .is_some_and(|v| !v.is_empty())
                    {
                        Decision::Dismissed
                    } else {
                        Decision::No
                    },
                ),
                Ok(Err(e)) => Err(CheckError::Failed(e.to_string())),
                Err(_) => {
                    // Best effort: polkit forgets the check (and closes its dialog).
                    let cancel = self.authority.cancel_check_authorization(&cancellation_id);
                    let _ = tokio::time::timeout(Duration::from_secs(1), cancel).await;
                    Err(CheckError::Timeout(timeout))
                }
            }
        })
    }
}
