//! The errors that stop the server, each one line for the person who started it.

use crate::net::{ActivationError, ListenError};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot serve {}: {source}", path.display())]
    Root { path: PathBuf, source: io::Error },
    /// Virtual hosts that cannot be told apart (`[[hosts]]`).
    #[error("virtual hosts: {0}")]
    Hosts(String),
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("cannot use the socket systemd passed (LISTEN_FDS): {0}")]
    Activation(#[from] ActivationError),
    /// The sockets handed over by the server this one upgrades (SIGUSR2).
    #[error("cannot take over the sockets of the server upgraded (BINGFA_UPGRADE): {0}")]
    Handover(ActivationError),
    #[error("cannot open the access log {}: {source}", path.display())]
    AccessLog { path: PathBuf, source: io::Error },
    #[error("cannot read {}: {source}", path.display())]
    TlsFile { path: PathBuf, source: io::Error },
    #[error("cannot serve HTTPS with {}: {reason}", cert.display())]
    Tls { cert: PathBuf, reason: String },
    /// Automatic HTTPS cannot start (its state directory, its CA's roots).
    #[error("automatic HTTPS: {0}")]
    Acme(String),
    #[error("cannot redirect HTTP on {addr}: {source}")]
    Redirect { addr: SocketAddr, source: io::Error },
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics { addr: SocketAddr, source: io::Error },
    #[error(
        "--drain-delay ({}) is longer than --shutdown-timeout ({}): the server would be killed while draining",
        humantime(*drain_delay), humantime(*shutdown_timeout)
    )]
    DrainDelay {
        drain_delay: std::time::Duration,
        shutdown_timeout: std::time::Duration,
    },
    #[error("the {model} model is not available here: {reason}")]
    Unavailable { model: &'static str, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        source: io::Error,
    },
}

impl Error {
    /// Wraps an I/O error with what the server was doing when it happened.
    pub fn io(context: &'static str) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Io { context, source }
    }
}

/// A duration as seconds, as the command line takes it: `2s`, `0.5s`.
fn humantime(duration: std::time::Duration) -> String {
    format!("{}s", duration.as_secs_f64())
}
