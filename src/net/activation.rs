//! systemd socket activation (sd_listen_fds(3)): systemd binds the socket of the unit's
//! `ListenStream=`, starts the server when the first client connects (or at boot), and passes
//! the socket as descriptor 3, with `LISTEN_PID` set to the server's pid and `LISTEN_FDS` to
//! how many sockets it passed from 3 on. Clients that connect while the server starts or
//! restarts wait in the socket's backlog, and the server needs no privilege for port 80.
//!
//! Only the first socket is served: bingfa listens on one socket. `--bind` is then not used.

use super::{Kind, Listener};
use rustix::io::FdFlags;
use rustix::net::{sockopt, AddressFamily, SocketType};
use socket2::Socket;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// `SD_LISTEN_FDS_START`: the first passed descriptor.
const FIRST: RawFd = 3;

const VARIABLES: [&str; 3] = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"];

#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error("{name} is not a number: '{value}'")]
    NotANumber { name: &'static str, value: String },
    #[error("descriptor {0} is not open: {1}")]
    NotOpen(RawFd, io::Error),
    #[error("descriptor {0} is not a listening stream socket")]
    NotListening(RawFd),
    #[error("descriptor {0} is neither an IP nor a Unix socket")]
    Family(RawFd),
    #[error("descriptor {0}: {1}")]
    Io(RawFd, io::Error),
    /// `BINGFA_UPGRADE` does not say what the handover protocol says (net/handover.rs).
    #[error("{variable} is not understood: '{value}'")]
    Handover { variable: &'static str, value: String },
}

/// The socket systemd passed to this process.
#[derive(Debug)]
pub struct Inherited {
    pub listener: Listener,
    /// How many sockets were passed; only the first is served.
    pub sockets: usize,
}

/// The listening socket systemd passed to this process, if it passed any. Either way, the
/// variables are removed from the environment, so nothing started from here takes them for
/// its own. Call it once, before any thread starts (it changes the environment).
pub fn inherited() -> Result<Option<Inherited>, ActivationError> {
    let pid = std::env::var_os("LISTEN_PID");
    let fds = std::env::var_os("LISTEN_FDS");
    for name in VARIABLES {
        std::env::remove_var(name);
    }
    let sockets = passed(pid.as_deref(), fds.as_deref(), std::process::id())?;
    if sockets == 0 {
        return Ok(None);
    }
    let listener = adopt()?;
    Ok(Some(Inherited { listener, sockets }))
}

/// How many sockets the variables say were passed to process `me`: none unless `LISTEN_PID`
/// names it (the variables may have been meant for a parent).
fn passed(pid: Option<&OsStr>, fds: Option<&OsStr>, me: u32) -> Result<usize, ActivationError> {
    let Some(pid) = pid else {
        return Ok(0);
    };
    if number("LISTEN_PID", pid)? != me as usize {
        return Ok(0);
    }
    fds.map_or(Ok(0), |fds| number("LISTEN_FDS", fds))
}

/// Takes descriptor 3 as the listener, once it is known to be one. systemd's
/// `NonBlocking=` may have set it non-blocking; each model sets the mode it needs.
fn adopt() -> Result<Listener, ActivationError> {
    // SAFETY: LISTEN_PID names this process, so by the protocol descriptor 3 was passed to it
    // open, and nothing in it has claimed the descriptor: this runs once, at start.
    let (socket, kind) = unsafe { listening_socket(FIRST) }?;
    socket
        .set_nonblocking(false)
        .map_err(|e| ActivationError::Io(FIRST, e))?;
    Ok(Listener::new(socket, kind, false, None))
}

/// Descriptor `fd` as a listening socket of a kind served, made close-on-exec (so that no
/// program started from here inherits it), and tuned if TCP.
///
/// # Safety
/// `fd` must have been passed to this process open, and not be claimed by anything in it.
pub(super) unsafe fn listening_socket(fd: RawFd) -> Result<(Socket, Kind), ActivationError> {
    // SAFETY: as the caller promises.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // Also the check that it is open.
    if let Err(e) = rustix::io::fcntl_setfd(&owned, FdFlags::CLOEXEC) {
        // Not open after all, so not ours to close.
        std::mem::forget(owned);
        return Err(ActivationError::NotOpen(fd, e.into()));
    }
    let kind = kind(&owned, fd)?;
    let socket = Socket::from(owned);
    if kind == Kind::Tcp {
        super::tcp::tune(&socket);
    }
    Ok((socket, kind))
}

/// Which kind of listener `fd` is, if it is a listening stream socket of a kind served.
fn kind(owned: &OwnedFd, fd: RawFd) -> Result<Kind, ActivationError> {
    // Any error here (ENOTSOCK, say) also means: not a listening stream socket.
    let stream = matches!(sockopt::socket_type(owned), Ok(SocketType::STREAM));
    if !stream || !matches!(sockopt::socket_acceptconn(owned), Ok(true)) {
        return Err(ActivationError::NotListening(fd));
    }
    match sockopt::socket_domain(owned).map_err(|e| ActivationError::Io(fd, e.into()))? {
        AddressFamily::INET | AddressFamily::INET6 => Ok(Kind::Tcp),
        AddressFamily::UNIX => Ok(Kind::Unix),
        _ => Err(ActivationError::Family(fd)),
    }
}

/// `text`, a number of `name`.
pub(super) fn number(name: &'static str, value: &OsStr) -> Result<usize, ActivationError> {
    let text = value.to_string_lossy();
    text.parse().map_err(|_| ActivationError::NotANumber {
        name,
        value: text.into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passed_to(pid: Option<&str>, fds: Option<&str>, me: u32) -> Result<usize, ActivationError> {
        passed(pid.map(OsStr::new), fds.map(OsStr::new), me)
    }

    #[test]
    fn sockets_count_only_for_the_process_named() {
        assert_eq!(passed_to(Some("42"), Some("1"), 42).unwrap(), 1);
        assert_eq!(passed_to(Some("42"), Some("3"), 42).unwrap(), 3);
        assert_eq!(
            passed_to(Some("41"), Some("1"), 42).unwrap(),
            0,
            "another process's"
        );
        assert_eq!(passed_to(None, Some("1"), 42).unwrap(), 0);
        assert_eq!(passed_to(Some("42"), None, 42).unwrap(), 0);
        assert_eq!(passed_to(Some("42"), Some("0"), 42).unwrap(), 0);
    }

    #[test]
    fn a_variable_that_is_not_a_number_is_an_error() {
        let error = passed_to(Some("x"), Some("1"), 42).unwrap_err();
        assert_eq!(error.to_string(), "LISTEN_PID is not a number: 'x'");
        let error = passed_to(Some("42"), Some("-1"), 42).unwrap_err();
        assert_eq!(error.to_string(), "LISTEN_FDS is not a number: '-1'");
    }
}
