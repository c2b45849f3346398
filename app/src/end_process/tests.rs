//! Ending real processes: children of the test, and one of another user.

use std::{
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use std::os::unix::process::ExitStatusExt as _;

use super::*;

/// A child that is killed and reaped when the test ends, however it ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Reaped {
    fn spawn(program: &str, args: &[&str]) -> Reaped {
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        Reaped(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn key(&self) -> ProcessKey {
        key_of(self.pid())
    }

    /// Its exit status, waiting at most `limit`.
    fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

fn key_of(pid: u32) -> ProcessKey {
    let stat = procfs::process::Process::new(pid as i32)
        .and_then(|p| p.stat())
        .expect("the child's stat");
    ProcessKey::new(pid, stat.starttime)
}

/// Whether `pid` ignores SIGTERM (`SigIgn:` in its status).
fn ignores_term(pid: u32) -> bool {
    let status = procfs::process::Process::new(pid as i32)
        .and_then(|p| p.status())
        .expect("status");
    status.sigign & (1 << (libc::SIGTERM - 1)) != 0
}

/// Waits until the shell has exec'd into `sleep` (its name changes), so the test signals the
/// program it means to.
fn wait_for_name(pid: u32, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let comm = procfs::process::Process::new(pid as i32).and_then(|p| p.stat().map(|s| s.comm));
        if comm.as_deref().is_ok_and(|c| c == name) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{pid} never became {name}: {comm:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn sigterm_ends_a_cooperative_child() {
    let mut child = Reaped::spawn("sleep", &["60"]);
    let target = end(child.key(), Signal::Term).expect("ended");
    let status = child.exit_within(Duration::from_secs(5)).expect("it exits");
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    assert!(target.has_exited(), "the pidfd says so too");
}

#[test]
fn a_child_that_ignores_sigterm_survives_it_and_sigkill_ends_it() {
    let mut child = Reaped::spawn("sh", &["-c", "trap '' TERM; exec sleep 60"]);
    wait_for_name(child.pid(), "sleep");
    assert!(
        ignores_term(child.pid()),
        "sleep inherited the ignored SIGTERM"
    );
    let target = end(child.key(), Signal::Term).expect("SIGTERM sent");
    assert!(
        child.exit_within(Duration::from_millis(500)).is_none(),
        "SIGTERM is ignored"
    );
    assert!(!target.has_exited());
    target.signal(Signal::Kill).expect("SIGKILL sent");
    let status = child.exit_within(Duration::from_secs(5)).expect("it exits");
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(target.has_exited());
    // Reaped now: nothing left to signal, and nothing else is signalled.
    assert!(matches!(target.signal(Signal::Kill), Err(EndError::Gone)));
}

#[test]
fn a_stale_key_is_refused() {
    let mut child = Reaped::spawn("sleep", &["60"]);
    let key = child.key();
    // The same PID with another start time: the process the user chose has exited and
    // this PID was given to another one. It is left alone.
    let reused = ProcessKey::new(key.pid, key.start_time + 1);
    assert!(matches!(Target::open(reused), Err(EndError::Reused)));
    assert!(
        child.exit_within(Duration::from_millis(200)).is_none(),
        "still running"
    );
    // Exited and reaped: gone.
    child.0.kill().expect("kill");
    child.0.wait().expect("wait");
    match end(key, Signal::Term) {
        Err(EndError::Gone) | Err(EndError::Reused) => {}
        other => panic!("a stale key must be refused: {other:?}"),
    }
}

/// `setpriv` to run a child as `nobody`; on CI its absence (or not being root) is a failure.
fn as_nobody(args: &[&str]) -> Option<Reaped> {
    let why = if own_uid() != 0 {
        "running as another user needs root".to_owned()
    } else {
        match Command::new("setpriv").arg("--version").output() {
            Ok(o) if o.status.success() => return Some(nobody(args)),
            Ok(o) => format!("setpriv --version failed: {o:?}"),
            Err(e) => format!("setpriv is missing: {e}"),
        }
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}, and CI=true: refusing to skip");
    }
    eprintln!("SKIPPED: {why}");
    None
}

fn nobody(args: &[&str]) -> Reaped {
    let mut all = vec!["--reuid=65534", "--regid=65534", "--clear-groups", "--"];
    all.extend_from_slice(args);
    let child = Reaped::spawn("setpriv", &all);
    wait_for_name(child.pid(), "sleep");
    child
}

#[test]
fn another_users_process_cannot_be_ended() {
    let Some(mut other) = as_nobody(&["sleep", "60"]) else {
        return;
    };
    let key = other.key();
    match end(key, Signal::Kill) {
        Err(EndError::NotYours { uid: 65534 }) => {}
        other => panic!("another user's process must be refused: {other:?}"),
    }
    assert!(
        other.exit_within(Duration::from_millis(300)).is_none(),
        "it still runs (even though the test is root)"
    );
    let row = ProcessRow {
        pid: key.pid,
        start_time: key.start_time,
        uid: Some(65534),
        ..Default::default()
    };
    let why = may_end(&row).expect_err("not the user's");
    assert!(why.starts_with("owned by user "), "{why}");
    assert!(why.ends_with("65534"), "{why}");
    let mine = ProcessRow {
        uid: Some(own_uid()),
        ..row.clone()
    };
    assert_eq!(may_end(&mine), Ok(()));
    let unknown = ProcessRow { uid: None, ..row };
    assert!(may_end(&unknown).is_err());
}

#[test]
fn user_names_come_from_the_user_database() {
    assert_eq!(user_name(0).as_deref(), Some("root"));
    assert_eq!(owner_phrase(0), "owned by user root/0");
    assert_eq!(user_name(4_000_000_000), None);
    assert_eq!(owner_phrase(4_000_000_000), "owned by user 4000000000");
}
