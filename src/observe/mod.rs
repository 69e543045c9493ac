//! Watching the server run: the access log (`--access-log`), Prometheus metrics and a health
//! check (`--metrics`), and lifecycle and error events on stderr (`--log-level`).
//!
//! The HTTP core reports each answered request to its handler ([`Exchange`]); the site passes
//! it to the [`Observer`], which counts it and logs it. With neither the log nor the metrics
//! on there is no observer, and the core keeps no record of exchanges at all.
//!
//! - `format`: the access-log line formats.
//! - `access_log`: the per-process writer that keeps the disk off the serving threads.
//! - `metrics`: counters in memory shared across processes, rendered as Prometheus text.
//! - `endpoint`: the tiny HTTP listener for `/metrics` and `/healthz`.

mod access_log;
mod endpoint;
mod format;
mod metrics;

pub use format::LogFormat;

use crate::error::Error;
use crate::http::{Connection, Exchange};
use crate::server::{Config, Model};
use crate::shutdown::{self, Shutdown};
use access_log::AccessLog;
pub(crate) use access_log::Writer;
use endpoint::Endpoint;
use metrics::Metrics;
pub(crate) use metrics::OpenGauge;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// What `--access-log` and `--metrics` need while a server runs.
#[derive(Debug)]
pub(crate) struct Observer {
    log: Option<AccessLog>,
    metrics: Option<Arc<Metrics>>,
}

impl Observer {
    /// A connection was accepted: counts it, and gives its connection the peer's address if
    /// the log shows it (a `getpeername` that is not made otherwise). A socket that has no
    /// IP address (a Unix socket) logs as `-`.
    pub fn accepted(&self, conn: &mut Connection, socket: BorrowedFd<'_>) {
        if let Some(metrics) = &self.metrics {
            metrics.accepted();
        }
        if self.log.is_some() {
            conn.set_peer(peer_ip(socket));
        }
    }

    /// An exchange is over: its response's last byte has just gone out.
    pub fn exchanged(&self, exchange: &Exchange<'_>) {
        // The models' clocks move once per loop turn, too coarse for a request answered
        // within one turn: the one clock read an exchange costs when observed.
        let duration = Instant::now().saturating_duration_since(exchange.received);
        if let Some(metrics) = &self.metrics {
            metrics.exchanged(exchange, duration);
        }
        if let Some(log) = &self.log {
            log.record(exchange, duration, self.metrics.as_deref());
        }
    }

    /// The open-connections gauge, if metrics are on.
    pub fn open_gauge(&self) -> Option<OpenGauge> {
        self.metrics.as_ref().map(Metrics::open_gauge)
    }

    /// Starts the access-log writer of the calling process, if there is a log. A process
    /// without one writes each line as it comes. With `hangups` (the binary, which blocks
    /// SIGHUP), the writer reopens the file on SIGHUP.
    pub fn start_writer(&self, hangups: bool) -> Option<Writer> {
        let log = self.log.as_ref()?;
        let hangups = match hangups.then(shutdown::hangups).transpose() {
            Ok(hangups) => hangups,
            Err(e) => {
                tracing::error!("cannot watch SIGHUP, the access log will not be reopened: {e}");
                None
            }
        };
        log.start(hangups)
            .map_err(|e| {
                tracing::error!("cannot start the access-log writer, writing each line at once: {e}")
            })
            .ok()
    }
}

/// The client's IP address, if the socket has one (IPv4 clients of an IPv6 socket as IPv4).
fn peer_ip(socket: BorrowedFd<'_>) -> Option<IpAddr> {
    let peer = rustix::net::getpeername(socket).ok()??;
    let peer = SocketAddr::try_from(peer).ok()?;
    Some(peer.ip().to_canonical())
}

/// A server's observation, set up before it runs: the observer, and the metrics listener,
/// bound at once so that a bad address is an error at start.
#[derive(Debug)]
pub(crate) struct Observation {
    observer: Arc<Observer>,
    endpoint: Option<(TcpListener, Arc<Metrics>)>,
}

impl Observation {
    /// `None` when `config` asks for neither an access log nor metrics.
    pub fn new(config: &Config) -> Result<Option<Observation>, Error> {
        if config.access_log.is_none() && config.metrics.is_none() {
            return Ok(None);
        }
        let log = match &config.access_log {
            Some(path) => {
                Some(
                    AccessLog::open(path, config.log_format).map_err(|source| Error::AccessLog {
                        path: path.clone(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let endpoint = match config.metrics {
            Some(addr) => {
                let listener = TcpListener::bind(addr).map_err(|source| Error::Metrics { addr, source })?;
                let metrics =
                    Metrics::new(config.model.name()).map_err(Error::io("setting up the metrics"))?;
                Some((listener, metrics))
            }
            None => None,
        };
        let metrics = endpoint.as_ref().map(|(_, metrics)| Arc::clone(metrics));
        let observer = Arc::new(Observer { log, metrics });
        Ok(Some(Observation { observer, endpoint }))
    }

    pub fn observer(&self) -> &Arc<Observer> {
        &self.observer
    }

    /// Where the metrics are served (with the real port when 0 was asked for).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.endpoint.as_ref()?.0.local_addr().ok()
    }

    /// Starts what runs beside the model: the metrics endpoint, and this process's log
    /// writer. A forking model's parent starts no thread (it must stay single-threaded): its
    /// endpoint runs in a process of its own, and its serving processes start their writers.
    pub fn start(
        self,
        model: Model,
        server_listener: BorrowedFd<'_>,
        shutdown: &Shutdown,
    ) -> Result<Observing, Error> {
        if let Some(log) = &self.observer.log {
            tracing::info!("access log: {} ({} format)", log.describe(), log.format());
        }
        let endpoint = match self.endpoint {
            Some((listener, metrics)) => {
                let addr = listener
                    .local_addr()
                    .map_err(Error::io("reading the metrics address"))?;
                let endpoint = if model.forks() {
                    Endpoint::in_process(listener, metrics, server_listener.as_raw_fd())?
                } else {
                    Endpoint::on_thread(listener, metrics)?
                };
                tracing::info!("metrics at http://{addr}/metrics, health at http://{addr}/healthz");
                Some(endpoint)
            }
            None => None,
        };
        let writer = if model.forks() {
            None
        } else {
            self.observer.start_writer(shutdown.watches_signals())
        };
        Ok(Observing {
            _writer: writer,
            _endpoint: endpoint,
        })
    }
}

/// What runs beside the model while it serves; dropped, it writes the last log lines and
/// stops the endpoint.
#[derive(Debug)]
pub(crate) struct Observing {
    // The writer first: lines logged while the endpoint stops still get written.
    _writer: Option<Writer>,
    _endpoint: Option<Endpoint>,
}

/// An accept failed for want of descriptors or memory (the model pauses, then tries again):
/// said on stderr at most once a second per process, however often it happens.
pub(crate) fn accept_failed(error: &io::Error) {
    static LAST_SAID: AtomicU64 = AtomicU64::new(0);
    let second = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    if LAST_SAID.swap(second, Relaxed) != second {
        tracing::warn!("cannot accept a connection: {error}; clients wait in the backlog");
    }
}

/// How much the server says on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    /// errors only
    Error,
    /// and what goes wrong without stopping the server (a worker restarted, lines dropped)
    Warn,
    /// and the lifecycle: where logs and metrics go, stopping
    Info,
    /// and details: the settings in force, each log reopening
    Debug,
    /// everything
    Trace,
}

impl LogLevel {
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }

    fn tracing(self) -> tracing::Level {
        match self {
            LogLevel::Error => tracing::Level::ERROR,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Trace => tracing::Level::TRACE,
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Sends the server's events at `level` and above to stderr, one line each:
/// `2025-01-02T03:04:05.678901Z  INFO message`. For the binary; a program that embeds the
/// server sets up its own `tracing` subscriber, or none.
pub fn log_to_stderr(level: LogLevel) {
    let subscriber = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level.tracing())
        .with_target(false)
        .finish();
    // Fails only if a subscriber is set already, which then stays.
    let _ = tracing::subscriber::set_global_default(subscriber);
}
