//! What the plot panel can show and the pins can hold: a process or an app. One key for both,
//! so a pinned app and a pinned process are compared in the same plot.

use memmon_common::process_key::ProcessKey;

use crate::source::Request;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A process (PID and start time: a reused PID is another process).
    Process(ProcessKey),
    /// An app, by its stable id (`app:org.gnome.Nautilus`, `service:ssh`, …).
    App(String),
}

impl Subject {
    /// The process, if this is one.
    pub fn process(&self) -> Option<ProcessKey> {
        match self {
            Subject::Process(key) => Some(*key),
            Subject::App(_) => None,
        }
    }

    /// The app's id, if this is one.
    pub fn app(&self) -> Option<&str> {
        match self {
            Subject::App(id) => Some(id),
            Subject::Process(_) => None,
        }
    }

    /// What to ask the source for this subject's stored history.
    pub fn history_request(&self) -> Request {
        match self {
            Subject::Process(key) => Request::History(*key),
            Subject::App(id) => Request::AppHistory(id.clone()),
        }
    }
}

impl From<ProcessKey> for Subject {
    fn from(key: ProcessKey) -> Subject {
        Subject::Process(key)
    }
}

impl PartialEq<ProcessKey> for Subject {
    fn eq(&self, key: &ProcessKey) -> bool {
        self.process() == Some(*key)
    }
}
