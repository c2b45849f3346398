//! Ending a process the user owns, race-free: the process is opened as a pidfd, then
//! `/proc/<pid>` is checked to still be **the** process the user chose (same start time, so the
//! same [`ProcessKey`]) and to belong to the app's real user; every signal goes through that
//! pidfd, so a PID reused in the meantime can never receive it.
//!
//! The app does this as the user: the helper stays read-only. Only processes whose real UID is
//! the app's real UID may be ended — when the app runs as root, only root's own processes.
//! This module has effects (signals) and is only called while the app applies its commands,
//! after the frame; the one exception, [`Target::has_exited`], only polls.

use std::{
    collections::HashMap,
    ffi::CStr,
    fmt, io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::{Mutex, OnceLock},
};

use memmon_common::{process_key::ProcessKey, snapshot::ProcessRow};

/// How long a process may take to quit after SIGTERM before the dialog offers SIGKILL.
pub const FORCE_QUIT_AFTER: std::time::Duration = std::time::Duration::from_secs(3);

/// The signals the app sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: ask the process to quit (it may save its work, or ignore it).
    Term,
    /// SIGKILL: end it now ("Force quit").
    Kill,
}

impl Signal {
    fn number(self) -> libc::c_int {
        match self {
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Signal::Term => "SIGTERM",
            Signal::Kill => "SIGKILL",
        }
    }
}

/// Why a process could not be signalled.
#[derive(Debug)]
pub enum EndError {
    /// It has exited.
    Gone,
    /// Its PID now belongs to another process: the one chosen has exited.
    Reused,
    /// It belongs to another user (real UID).
    NotYours {
        uid: u32,
    },
    /// The kernel refused (EPERM), e.g. a process that changed its credentials.
    PermissionDenied,
    /// No pidfd support (Linux before 5.3).
    Unsupported,
    Io(io::Error),
}

impl fmt::Display for EndError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndError::Gone => f.write_str("it has already exited"),
            EndError::Reused => f.write_str(
                "it has exited and its PID now belongs to another process, which was left alone",
            ),
            EndError::NotYours { uid } => write!(
                f,
                "it is {}: you can only end your own processes",
                owner_phrase(*uid)
            ),
            EndError::PermissionDenied => {
                f.write_str("permission denied (EPERM): the system does not let you signal it")
            }
            EndError::Unsupported => {
                f.write_str("this kernel has no pidfd support (Linux 5.3 or later is needed)")
            }
            EndError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for EndError {}

impl EndError {
    fn from_errno(e: io::Error) -> EndError {
        match e.raw_os_error() {
            Some(libc::ESRCH) => EndError::Gone,
            Some(libc::EPERM) => EndError::PermissionDenied,
            Some(libc::ENOSYS) => EndError::Unsupported,
            _ => EndError::Io(e),
        }
    }
}

/// The app's real user ID.
pub fn own_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// Whether the user may end the process of this row: `Err` says why not ("owned by user
/// nobody/65534"). The row's UID is the collector's; [`Target::open`] checks again.
pub fn may_end(row: &ProcessRow) -> Result<(), String> {
    match row.uid {
        Some(uid) if uid == own_uid() => Ok(()),
        Some(uid) => Err(owner_phrase(uid)),
        None => Err("its owner is not known".to_owned()),
    }
}

/// "owned by user nobody/65534" (or "owned by user 65534" without a name).
pub fn owner_phrase(uid: u32) -> String {
    match user_name(uid) {
        Some(name) => format!("owned by user {name}/{uid}"),
        None => format!("owned by user {uid}"),
    }
}

/// The login name of a UID (the system's user database), looked up once per UID.
pub fn user_name(uid: u32) -> Option<String> {
    static NAMES: OnceLock<Mutex<HashMap<u32, Option<String>>>> = OnceLock::new();
    let names = NAMES.get_or_init(Default::default);
    let mut names = names
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    names.entry(uid).or_insert_with(|| lookup_user(uid)).clone()
}

fn lookup_user(uid: u32) -> Option<String> {
    let mut len = 1024usize;
    loop {
        let mut buf: Vec<libc::c_char> = vec![0; len];
        // SAFETY: passwd is plain data; getpwuid_r fills it (or leaves it unused).
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for writes for the duration of the call and `buf`'s
        // length is passed with it.
        let rc =
            unsafe { libc::getpwuid_r(uid, &mut entry, buf.as_mut_ptr(), buf.len(), &mut result) };
        if rc == libc::ERANGE && len < (1 << 20) {
            len *= 4;
            continue;
        }
        if rc != 0 || result.is_null() || entry.pw_name.is_null() {
            return None;
        }
        // SAFETY: on success pw_name points to a NUL-terminated string inside `buf`, alive here.
        let name = unsafe { CStr::from_ptr(entry.pw_name) };
        return Some(name.to_string_lossy().into_owned());
    }
}

/// A process opened for signalling: a pidfd checked to be the process `key` names.
#[derive(Debug)]
pub struct Target {
    key: ProcessKey,
    pidfd: OwnedFd,
}

impl Target {
    /// Opens the process `key` names, if it still runs and belongs to the app's real user.
    pub fn open(key: ProcessKey) -> Result<Target, EndError> {
        let pid = libc::pid_t::try_from(key.pid).map_err(|_| EndError::Gone)?;
        // SAFETY: pidfd_open takes a PID and flags by value and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) };
        if fd < 0 {
            return Err(EndError::from_errno(io::Error::last_os_error()));
        }
        let fd = libc::c_int::try_from(fd).map_err(|_| EndError::Io(io::Error::other("bad fd")))?;
        // SAFETY: `fd` is a new file descriptor that nothing else owns.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd) };
        let target = Target { key, pidfd };
        // The pidfd holds the process the PID named when it was opened. /proc/<pid> read now is
        // that process only if it is still alive afterwards (checked below through the pidfd):
        // a process that is alive held its PID all along.
        let process = procfs::process::Process::new(pid).map_err(proc_error)?;
        let start_time = process.stat().map_err(proc_error)?.starttime;
        if start_time != key.start_time {
            return Err(EndError::Reused);
        }
        let uid = process.status().map_err(proc_error)?.ruid;
        if uid != own_uid() {
            return Err(EndError::NotYours { uid });
        }
        target.send(0)?;
        Ok(target)
    }

    pub fn key(&self) -> ProcessKey {
        self.key
    }

    /// Sends `signal` to the process (never to another that reused its PID).
    pub fn signal(&self, signal: Signal) -> Result<(), EndError> {
        self.send(signal.number())
    }

    fn send(&self, signal: libc::c_int) -> Result<(), EndError> {
        // SAFETY: the pidfd is open for this call's duration; a null siginfo means "as kill()".
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0 as libc::c_uint,
            )
        };
        if rc < 0 {
            return Err(EndError::from_errno(io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Whether the process has exited (a zombie waiting for its parent counts as exited).
    /// Never blocks.
    pub fn has_exited(&self) -> bool {
        let mut poll = libc::pollfd {
            fd: self.pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, and a zero timeout.
        let ready = unsafe { libc::poll(&mut poll, 1, 0) };
        ready > 0 && poll.revents & (libc::POLLIN | libc::POLLHUP) != 0
    }
}

/// Opens the process `key` names and sends it `signal` (see [`Target::open`]).
pub fn end(key: ProcessKey, signal: Signal) -> Result<Target, EndError> {
    let target = Target::open(key)?;
    target.signal(signal)?;
    Ok(target)
}

fn proc_error(e: procfs::ProcError) -> EndError {
    match e {
        procfs::ProcError::NotFound(_) => EndError::Gone,
        procfs::ProcError::PermissionDenied(_) => EndError::PermissionDenied,
        procfs::ProcError::Io(e, _) => EndError::Io(e),
        other => EndError::Io(io::Error::other(other.to_string())),
    }
}

#[cfg(test)]
mod tests;
