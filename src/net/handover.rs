//! An upgrade in place (SIGUSR2): the server hands its listening sockets to a new copy of
//! itself, which takes them over, so that not one connection is refused meanwhile: the
//! sockets never close, and the clients that connect while the new copy starts wait in
//! their queues.
//!
//! The old server starts the new one with its sockets as descriptors 3, 4, ...: the main
//! listener, its `SO_REUSEPORT` siblings (one per further worker of `reactor` and `uring`,
//! passed on because a listener of the group closed with connections queued would reset
//! them), then the `--metrics` listener, then `--redirect-http`'s, if any; and last the
//! write end of a pipe. It says so in `BINGFA_UPGRADE`: `pid=PID listeners=N metrics=0|1
//! redirect=0|1`. The variable counts only in a process whose parent is PID, as systemd's
//! `LISTEN_PID` counts only in the process it names (a program started from the new server
//! must not take the descriptors for its own; the server also removes the variable at
//! start). Not `LISTEN_PID` itself: the new process's pid is known only after `fork`, and
//! setting a variable between `fork` and `exec` is not safe in a threaded process (it
//! allocates); its parent's pid is known before.
//!
//! The new server writes one byte to the pipe once it serves, and closes it; the old one
//! waits for that byte, or for the end of the pipe (the new one exited without serving).
//!
//! What it costs: nothing while serving, but one pointer per listener (the weak handles).

use super::activation::{listening_socket, number};
use super::unix::SocketFile;
use super::{ActivationError, Kind, Listener};
use command_fds::{CommandFdExt, FdMapping};
use rustix::pipe::{pipe_with, PipeFlags};
use socket2::Socket;
use std::ffi::OsStr;
use std::io;
use std::net::TcpListener;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::process::Command;
use std::sync::{Arc, Weak};

/// Tells the new server what it was handed (see the header).
pub const HANDOVER_VARIABLE: &str = "BINGFA_UPGRADE";

/// The first descriptor handed over, as with systemd.
const FIRST: RawFd = 3;

/// The sockets a server can hand to its successor: weak handles on its listeners (so that a
/// server that stops closes them as always; once closed, there is nothing to hand over) and
/// copies of its endpoints' listeners.
#[derive(Debug, Clone)]
pub struct Handover {
    listeners: Vec<Weak<Socket>>,
    metrics: Option<Arc<OwnedFd>>,
    redirect: Option<Arc<OwnedFd>>,
}

impl Handover {
    /// `listener` and its siblings, to be handed over while they are open.
    pub fn new(listener: &Listener) -> Handover {
        Handover {
            listeners: listener.weak_sockets(),
            metrics: None,
            redirect: None,
        }
    }

    /// With the endpoints' listeners (`--metrics`, `--redirect-http`), held open here.
    pub fn with_endpoints(self, metrics: Option<OwnedFd>, redirect: Option<OwnedFd>) -> Handover {
        Handover {
            metrics: metrics.map(Arc::new),
            redirect: redirect.map(Arc::new),
            ..self
        }
    }

    /// Sets up `command` to start with the sockets (descriptors 3 on) and the variable that
    /// names them; returns the read end of the pipe it says "serving" on. Fails if the
    /// listeners are closed already (the server is stopping).
    ///
    /// The command holds copies of the sockets until it is dropped: drop it once spawned.
    pub fn prepare(&self, command: &mut Command) -> io::Result<OwnedFd> {
        let mut handed = Vec::with_capacity(self.listeners.len() + 3);
        for weak in &self.listeners {
            let socket = weak
                .upgrade()
                .ok_or_else(|| io::Error::other("the server has stopped listening"))?;
            handed.push(OwnedFd::from(socket.try_clone()?));
        }
        for endpoint in [&self.metrics, &self.redirect].into_iter().flatten() {
            handed.push(endpoint.try_clone()?);
        }
        let (ready, tell) = pipe_with(PipeFlags::CLOEXEC)?;
        handed.push(tell);
        let mappings = handed
            .into_iter()
            .zip(FIRST..)
            .map(|(parent_fd, child_fd)| FdMapping { parent_fd, child_fd })
            .collect();
        command
            .fd_mappings(mappings)
            .map_err(|collision| io::Error::other(collision.to_string()))?;
        let layout = Layout {
            parent: std::process::id(),
            listeners: self.listeners.len(),
            metrics: self.metrics.is_some(),
            redirect: self.redirect.is_some(),
        };
        command.env(HANDOVER_VARIABLE, layout.to_string());
        Ok(ready)
    }
}

/// What a server was handed by the one it upgraded.
#[derive(Debug)]
pub struct TakenOver {
    /// The main listener, with its siblings.
    pub listener: Listener,
    pub metrics: Option<TcpListener>,
    pub redirect: Option<TcpListener>,
    /// Told once the server serves.
    pub ready: Ready,
}

/// The old server's pipe: one byte says "serving".
#[derive(Debug)]
pub struct Ready(OwnedFd);

impl Ready {
    /// Tells the old server this one serves (it then drains and exits), and closes the pipe.
    pub fn tell(self) {
        // The old server may have given up and gone (EPIPE): this one serves anyway.
        let _ = rustix::io::write(&self.0, b"1");
    }
}

/// The sockets handed over by the server this process was started by to upgrade it, if it
/// was. Either way the variable is removed from the environment, so nothing started from
/// here takes it for its own. Call it once, before any thread starts (it changes the
/// environment).
pub fn taken_over() -> Result<Option<TakenOver>, ActivationError> {
    let value = std::env::var_os(HANDOVER_VARIABLE);
    std::env::remove_var(HANDOVER_VARIABLE);
    let Some(value) = value else {
        return Ok(None);
    };
    let layout = Layout::parse(&value)?;
    if layout.parent != std::os::unix::process::parent_id() {
        return Ok(None);
    }
    // SAFETY: the parent named in the variable started this process with these descriptors
    // open (see the header), and nothing in it has claimed them: this runs once, at start.
    unsafe { layout.adopt() }.map(Some)
}

/// What `BINGFA_UPGRADE` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    parent: u32,
    listeners: usize,
    metrics: bool,
    redirect: bool,
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid={} listeners={} metrics={} redirect={}",
            self.parent,
            self.listeners,
            u8::from(self.metrics),
            u8::from(self.redirect)
        )
    }
}

impl Layout {
    fn parse(value: &OsStr) -> Result<Layout, ActivationError> {
        let wrong = || ActivationError::Handover {
            variable: HANDOVER_VARIABLE,
            value: value.to_string_lossy().into_owned(),
        };
        let text = value.to_str().ok_or_else(wrong)?;
        let mut fields = text.split(' ').map(|field| field.split_once('='));
        let mut next = |key: &'static str| match fields.next() {
            Some(Some((found, value))) if found == key => number(key, OsStr::new(value)),
            _ => Err(wrong()),
        };
        let layout = Layout {
            parent: u32::try_from(next("pid")?).map_err(|_| wrong())?,
            listeners: next("listeners")?,
            metrics: flag(next("metrics")?).ok_or_else(wrong)?,
            redirect: flag(next("redirect")?).ok_or_else(wrong)?,
        };
        if fields.next().is_some() || layout.listeners == 0 {
            return Err(wrong());
        }
        Ok(layout)
    }

    /// Takes the descriptors this layout names.
    ///
    /// # Safety
    /// They must have been handed to this process open, and not be claimed by anything in it.
    unsafe fn adopt(self) -> Result<TakenOver, ActivationError> {
        let mut fds = FIRST..;
        let mut next = || fds.next().unwrap_or(RawFd::MAX);
        let mut listeners = Vec::with_capacity(self.listeners);
        for _ in 0..self.listeners {
            // SAFETY: as the caller promises.
            let (socket, kind) = unsafe { listening_socket(next()) }?;
            listeners.push(handed_listener(socket, kind));
        }
        let mut endpoint = |present: bool| -> Result<Option<TcpListener>, ActivationError> {
            if !present {
                return Ok(None);
            }
            let fd = next();
            // SAFETY: as the caller promises.
            match unsafe { listening_socket(fd) }? {
                (socket, Kind::Tcp) => Ok(Some(TcpListener::from(socket))),
                (_, Kind::Unix) => Err(ActivationError::Family(fd)),
            }
        };
        let metrics = endpoint(self.metrics)?;
        let redirect = endpoint(self.redirect)?;
        let fd = next();
        // SAFETY: as the caller promises: the last descriptor is the pipe's write end.
        let ready = unsafe { OwnedFd::from_raw_fd(fd) };
        if let Err(e) = rustix::io::fcntl_setfd(&ready, rustix::io::FdFlags::CLOEXEC) {
            // Not open after all, so not ours to close.
            std::mem::forget(ready);
            return Err(ActivationError::NotOpen(fd, e.into()));
        }
        let mut listeners = listeners.into_iter();
        let mut listener = listeners.next().ok_or(ActivationError::NotListening(FIRST))?;
        listener.siblings = listeners.collect();
        Ok(TakenOver {
            listener,
            metrics,
            redirect,
            ready: Ready(ready),
        })
    }
}

fn flag(value: usize) -> Option<bool> {
    match value {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// A listener as the old server had it: bound with `SO_REUSEPORT` (so siblings may join it)
/// if it was; a Unix socket's file ours to remove at the stop, as it was the old server's.
/// Its blocking mode is left as it is: the old server, still serving on the same socket,
/// runs the same model, which set the mode it needs.
fn handed_listener(socket: Socket, kind: Kind) -> Listener {
    match kind {
        Kind::Tcp => {
            let reuse_port = socket.reuse_port().unwrap_or(false);
            Listener::new(socket, kind, reuse_port, None)
        }
        Kind::Unix => {
            let file = SocketFile::of_handed_over(&socket);
            Listener::new(socket, kind, false, file)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Layout, String> {
        Layout::parse(OsStr::new(text)).map_err(|e| e.to_string())
    }

    #[test]
    fn the_variable_reads_back_what_was_written() {
        let layout = Layout {
            parent: 4242,
            listeners: 3,
            metrics: true,
            redirect: false,
        };
        assert_eq!(layout.to_string(), "pid=4242 listeners=3 metrics=1 redirect=0");
        assert_eq!(parse(&layout.to_string()), Ok(layout));
    }

    #[test]
    fn a_variable_of_another_shape_is_an_error() {
        for text in [
            "",
            "pid=1",
            "pid=1 listeners=0 metrics=0 redirect=0",
            "pid=1 listeners=1 metrics=2 redirect=0",
            "pid=x listeners=1 metrics=0 redirect=0",
            "listeners=1 pid=1 metrics=0 redirect=0",
            "pid=1 listeners=1 metrics=0 redirect=0 more=1",
        ] {
            let error = parse(text).unwrap_err();
            assert!(
                error.starts_with("BINGFA_UPGRADE") || error.contains("not a number"),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn a_command_is_given_the_sockets_from_descriptor_3_and_the_pipe_last() {
        let listener = crate::net::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let metrics = TcpListener::bind("127.0.0.1:0").unwrap();
        let handover = Handover::new(&listener).with_endpoints(Some(metrics.into()), None);
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "printf %s \"$BINGFA_UPGRADE\" >&5; ls /proc/self/fd >/dev/null",
        ]);
        let ready = handover.prepare(&mut command).unwrap();
        let out = command
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
            .wait()
            .unwrap();
        drop(command);
        assert!(out.success());
        let mut said = [0u8; 128];
        let n = rustix::io::read(&ready, &mut said).unwrap();
        let said = std::str::from_utf8(&said[..n]).unwrap();
        assert_eq!(
            said,
            format!("pid={} listeners=1 metrics=1 redirect=0", std::process::id())
        );
        drop(listener);
        assert!(
            handover.prepare(&mut Command::new("true")).is_err(),
            "closed: nothing to hand over"
        );
    }
}
