//! The call-site window's data: which process it is for, the helper's session and its latest
//! report. One window (and one session, as the helper allows per connection) at a time.

use memmon_common::{
    callsites::{CallSiteReport, CallSiteSource},
    process_key::ProcessKey,
};

use crate::source::Request;

#[derive(Debug, Default)]
pub struct CallSitesModel {
    /// The process the window is open for, and its name.
    pub target: Option<(ProcessKey, String)>,
    /// The helper's session id, once it started.
    pub session: Option<u32>,
    /// Asked to start, no answer yet (polkit may be asking for a password).
    pub starting: bool,
    pub report: Option<CallSiteReport>,
    pub error: Option<String>,
}

impl CallSitesModel {
    /// Opens the window for a process. Another process's running session is stopped.
    pub fn open(&mut self, key: ProcessKey, name: String) -> Option<Request> {
        if self.target.as_ref().is_some_and(|(k, _)| *k == key) {
            return None;
        }
        let stop = self.stop_request();
        *self = CallSitesModel {
            target: Some((key, name)),
            ..CallSitesModel::default()
        };
        stop
    }

    /// Closes the window, stopping a running session.
    pub fn close(&mut self) -> Option<Request> {
        let stop = self.stop_request();
        *self = CallSitesModel::default();
        stop
    }

    pub fn start(&mut self, source: CallSiteSource, seconds: u32) -> Option<Request> {
        let (key, _) = self.target.as_ref()?;
        if self.starting || self.is_running() {
            return None;
        }
        let key = *key;
        self.starting = true;
        self.session = None;
        self.report = None;
        self.error = None;
        Some(Request::StartCallSites {
            key,
            source,
            seconds,
        })
    }

    /// A running session's stop (the user's "Stop", or closing the window).
    pub fn stop_request(&self) -> Option<Request> {
        self.is_running()
            .then_some(self.session)
            .flatten()
            .map(Request::StopCallSites)
    }

    /// Collecting: started and not finished.
    pub fn is_running(&self) -> bool {
        self.session.is_some() && self.report.as_ref().is_none_or(CallSiteReport::is_running)
    }

    /// Asked each tick while a session runs.
    pub fn poll_request(&self) -> Option<Request> {
        self.is_running()
            .then_some(self.session)
            .flatten()
            .map(Request::PollCallSites)
    }

    /// The helper's answer to a start for process `key`.
    pub fn apply_started(
        &mut self,
        key: ProcessKey,
        started: Result<u32, String>,
    ) -> Option<Request> {
        let ours = self.starting && self.target.as_ref().is_some_and(|(k, _)| *k == key);
        if !ours {
            // The window was closed or moved to another process meanwhile: end that session.
            return started.ok().map(Request::StopCallSites);
        }
        self.starting = false;
        match started {
            Ok(id) => {
                self.session = Some(id);
                Some(Request::PollCallSites(id))
            }
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }

    pub fn apply_report(&mut self, report: Result<CallSiteReport, String>) {
        match report {
            Ok(r) if self.target.as_ref().is_some_and(|(k, _)| k.pid == r.pid) => {
                self.report = Some(r);
            }
            Ok(_) => {}
            Err(e) => {
                // The session is gone (the helper restarted): nothing more will come.
                self.error = Some(e);
                self.session = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use memmon_common::callsites::SessionState;

    use super::*;

    const KEY: ProcessKey = ProcessKey {
        pid: 42,
        start_time: 7,
    };

    #[test]
    fn a_session_starts_polls_and_ends() {
        let mut m = CallSitesModel::default();
        assert_eq!(m.open(KEY, "leaker".into()), None);
        let start = m.start(CallSiteSource::Heap, 30);
        assert!(matches!(
            start,
            Some(Request::StartCallSites {
                key: KEY,
                seconds: 30,
                ..
            })
        ));
        assert_eq!(
            m.start(CallSiteSource::Heap, 30),
            None,
            "one start at a time"
        );
        assert_eq!(m.apply_started(KEY, Ok(5)), Some(Request::PollCallSites(5)));
        assert!(m.is_running());
        assert_eq!(m.poll_request(), Some(Request::PollCallSites(5)));
        m.apply_report(Ok(CallSiteReport {
            pid: 42,
            state: SessionState::Finished("its 30 s are up".into()),
            ..CallSiteReport::default()
        }));
        assert!(!m.is_running());
        assert_eq!(m.poll_request(), None);
        assert_eq!(m.close(), None, "a finished session needs no stop");
    }

    #[test]
    fn closing_or_switching_stops_a_running_session() {
        let mut m = CallSitesModel::default();
        m.open(KEY, "leaker".into());
        m.start(CallSiteSource::Mappings, 10);
        m.apply_started(KEY, Ok(9));
        let other = ProcessKey {
            pid: 43,
            start_time: 1,
        };
        assert_eq!(m.open(other, "x".into()), Some(Request::StopCallSites(9)));
        assert!(m.session.is_none());
        // A session that started after its window closed is stopped at once.
        m.start(CallSiteSource::Heap, 10);
        m.close();
        assert_eq!(
            m.apply_started(KEY, Ok(11)),
            Some(Request::StopCallSites(11))
        );
        // A late answer for the process the window showed before is not this window's.
        m.open(other, "x".into());
        m.start(CallSiteSource::Heap, 10);
        assert_eq!(
            m.apply_started(KEY, Ok(12)),
            Some(Request::StopCallSites(12))
        );
        assert!(m.starting, "still waiting for its own answer");
        assert_eq!(
            m.apply_started(other, Ok(13)),
            Some(Request::PollCallSites(13))
        );
    }

    #[test]
    fn errors_are_kept_for_the_window() {
        let mut m = CallSitesModel::default();
        m.open(KEY, "leaker".into());
        m.start(CallSiteSource::Heap, 10);
        assert_eq!(m.apply_started(KEY, Err("needs the helper".into())), None);
        assert_eq!(m.error.as_deref(), Some("needs the helper"));
        assert!(!m.is_running() && !m.starting);
    }
}
