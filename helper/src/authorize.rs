//! Who may read process data: polkit, asked about the **caller** of each method (subject
//! `system-bus-name` = the message's sender, never the helper itself).

use std::{collections::HashMap, future::Future, pin::Pin};

use zbus::{Connection, message::Header, names::UniqueName};
use zbus_polkit::policykit1::{AuthorityProxy, CheckAuthorizationFlags, Subject};

use crate::dbus::{HelperError, POLKIT_ACTION};

/// How authorisation is decided; polkit in production, a fake in unit tests.
pub trait Authorizer: Send + Sync {
    fn check<'a>(
        &'a self,
        sender: &'a UniqueName<'_>,
        header: &'a Header<'_>,
        interactive: bool,
    ) -> Pin<Box<dyn Future<Output = Result<(), HelperError>> + Send + 'a>>;
}

/// Asks polkitd about the caller (subject `system-bus-name` = the message's sender).
pub struct Polkit {
    authority: AuthorityProxy<'static>,
}

impl Polkit {
    pub async fn new(conn: &Connection) -> zbus::Result<Polkit> {
        Ok(Polkit {
            authority: AuthorityProxy::new(conn).await?,
        })
    }
}

impl Authorizer for Polkit {
    fn check<'a>(
        &'a self,
        sender: &'a UniqueName<'_>,
        header: &'a Header<'_>,
        interactive: bool,
    ) -> Pin<Box<dyn Future<Output = Result<(), HelperError>> + Send + 'a>> {
        Box::pin(async move {
            let subject = Subject::new_for_message_header(header).map_err(|e| {
                HelperError::NotAuthorized(format!("cannot identify the caller {sender}: {e}"))
            })?;
            let flags = if interactive {
                CheckAuthorizationFlags::ALLOW_USER_INTERACTION
            } else {
                CheckAuthorizationFlags::empty()
            };
            let result = self
                .authority
                .check_authorization(&subject, POLKIT_ACTION, &HashMap::new(), flags, "")
                .await
                .map_err(|e| {
                    HelperError::NotAuthorized(format!("polkit could not be asked: {e}"))
                })?;
            if result.is_authorized {
                Ok(())
            } else if result.is_challenge {
                Err(HelperError::AuthenticationRequired(format!(
                    "reading process memory data ({POLKIT_ACTION}) needs authentication; allow \
                     interactive authorisation and run a polkit agent"
                )))
            } else {
                Err(HelperError::NotAuthorized(format!(
                    "polkit denies {POLKIT_ACTION} (reading process memory data) to this caller"
                )))
            }
        })
    }
}
