//! Watching the server run: the access log (`--access-log`), Prometheus metrics and a health
//! check (`--metrics`), and lifecycle and error events on stderr (`--log-level`).
//!
//! The HTTP core reports each answered request to its handler ([`Exchange`]), and the seam
//! each TLS handshake ([`Handshake`]); the site passes them to the [`Observer`], which counts
//! them and logs the requests. With neither the log nor the metrics
//! on there is no observer, and the core keeps no record of exchanges at all.
//!
//! - `format`: the access-log line formats.
//! - `access_log`: the per-process writer that keeps the disk off the serving threads.
//! - `metrics`: counters in memory shared across processes, rendered as Prometheus text.
//! - `scrape`: the core's handler for `/metrics` and `/healthz`, which the server runs on
//!   the metrics listener with one of its models.
//! - `trace`: `--trace-model`, the models' own events on stderr, for watching one work.

mod access_log;
mod format;
mod metrics;
mod scrape;
pub(crate) mod trace;

pub use format::LogFormat;

use crate::error::Error;
use crate::http::{Exchange, Handshake, TrustedProxies};
use access_log::AccessLog;
pub(crate) use access_log::Writer;
use metrics::Metrics;
pub(crate) use metrics::OpenGauge;
pub(crate) use scrape::MetricsHandler;
pub use scrape::{Health, Healthy};
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// What `--access-log` and `--metrics` need while a server runs.
#[derive(Debug)]
pub(crate) struct Observer {
    log: Option<AccessLog>,
    metrics: Option<Arc<Metrics>>,
    /// Whose `Forwarded` / `X-Forwarded-For` names the client in the log.
    trusted: TrustedProxies,
}

impl Observer {
    /// Opens what is asked for: the access log at `log` (a file, or `-` for stdout) in
    /// `format`, and the counters of `metrics_for` (a model's name) if metrics are on. `None`
    /// when neither is. A request from one of the `trusted` proxies is logged under the client
    /// its `Forwarded` or `X-Forwarded-For` names.
    ///
    /// With metrics, the certificates of `certificate_names` (automatic HTTPS) are watched too.
    pub fn open(
        log: Option<&Path>,
        format: LogFormat,
        metrics_for: Option<&'static str>,
        trusted: TrustedProxies,
        certificate_names: &[String],
    ) -> Result<Option<Arc<Observer>>, Error> {
        if log.is_none() && metrics_for.is_none() {
            return Ok(None);
        }
        let log = match log {
            Some(path) => Some(AccessLog::open(path, format).map_err(|source| Error::AccessLog {
                path: path.to_path_buf(),
                source,
            })?),
            None => None,
        };
        let metrics = match metrics_for {
            Some(model) => Some(
                Metrics::with_certificates(model, certificate_names)
                    .map_err(Error::io("setting up the metrics"))?,
            ),
            None => None,
        };
        if let Some(log) = &log {
            tracing::info!("access log: {} ({} format)", log.describe(), log.format());
        }
        Ok(Some(Arc::new(Observer {
            log,
            metrics,
            trusted,
        })))
    }

    /// A connection was accepted: counts it, and says whether the log shows the peer's
    /// address (a `getpeername` that is not made otherwise). A socket that has no IP address
    /// (a Unix socket) logs as `-`.
    pub fn accepted(&self) -> bool {
        if let Some(metrics) = &self.metrics {
            metrics.accepted();
        }
        self.log.is_some()
    }

    /// A connection was refused: with `--proxy-protocol`, its source is not in
    /// `--trusted-proxies`. Counted (no access-log line: that log has a line per response,
    /// and it got none).
    pub fn proxy_refused(&self) {
        if let Some(metrics) = &self.metrics {
            metrics.proxy_refused();
        }
    }

    /// The handler that answers scrapes of these metrics, if metrics are on.
    pub fn metrics_handler(&self) -> Option<MetricsHandler> {
        self.metrics.clone().map(MetricsHandler::new)
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
            match self.forwarded_client(exchange) {
                Some(client) => log.record(
                    &Exchange {
                        peer: client,
                        ..*exchange
                    },
                    duration,
                    self.metrics.as_deref(),
                ),
                None => log.record(exchange, duration, self.metrics.as_deref()),
            }
        }
    }

    /// The client a trusted proxy names, when it names another than the peer.
    fn forwarded_client(&self, exchange: &Exchange<'_>) -> Option<Option<IpAddr>> {
        if exchange.forwarded.is_none() && exchange.forwarded_for.is_none() {
            return None;
        }
        let client = self
            .trusted
            .client(exchange.peer, exchange.forwarded, exchange.forwarded_for);
        (client != exchange.peer).then_some(client)
    }

    /// The access log's file was rotated (SIGHUP): it is opened again by its path.
    pub fn reopen_log(&self) {
        if let Some(log) = &self.log {
            log.reopen();
        }
    }

    /// A TLS handshake is over: counted, if metrics are on. (The access log shows the session
    /// on each exchange instead.)
    pub fn handshake(&self, outcome: Handshake<'_>) {
        if let Some(metrics) = &self.metrics {
            metrics.handshake(outcome);
        }
    }

    /// What automatic HTTPS tells the metrics of its certificates, if metrics are on.
    pub fn certificate_metrics(&self) -> Option<CertificateMetrics> {
        self.metrics.clone().map(CertificateMetrics)
    }

    /// The open-connections gauge, if metrics are on.
    pub fn open_gauge(&self) -> Option<OpenGauge> {
        self.metrics.as_ref().map(Metrics::open_gauge)
    }

    /// Starts the access-log writer of the calling process, if there is a log. A process
    /// without one writes each line as it comes.
    pub fn start_writer(&self) -> Option<Writer> {
        let log = self.log.as_ref()?;
        log.start()
            .map_err(|e| {
                tracing::error!("cannot start the access-log writer, writing each line at once: {e}")
            })
            .ok()
    }
}

/// The metrics of the certificates automatic HTTPS obtains, by name (in memory shared with
/// every process of the server, the one that orders included).
#[derive(Debug, Clone)]
pub(crate) struct CertificateMetrics(Arc<Metrics>);

impl CertificateMetrics {
    /// The certificate served for `name` now expires at `expiry`.
    pub fn expires(&self, name: &str, expiry: SystemTime) {
        let seconds = expiry.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.0
            .certificate_expires(name, i64::try_from(seconds).unwrap_or(i64::MAX));
    }

    /// An order for `name`'s certificate failed.
    pub fn order_failed(&self, name: &str) {
        self.0.certificate_order_failed(name);
    }
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
