//! What every model is given, and the clocks and intervals the loops share.

use super::children::Children;
use super::hangups::{OnHangup, OnUpgrade, Report, Watcher};
use super::limit::{Admission, ConnectionLimit};
use crate::net::{Peer, Stream};
use crate::observe::trace::Trace;
use crate::observe::{Observer, Writer};
use crate::seam::{Clock, Link, Settings, TlsConfig, TrustedProxies};
use crate::shutdown::{Shutdown, SignalReader};
use slab::Slab;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// What every model shares: the handler that answers requests, the connection policy and
/// the shutdown signal.
#[derive(Debug)]
pub(crate) struct Context<H> {
    pub handler: H,
    pub settings: Settings,
    pub workers: usize,
    pub limit: ConnectionLimit,
    pub shutdown: Arc<Shutdown>,
    /// After shutdown is triggered, how long responses in flight may take.
    pub shutdown_timeout: Duration,
    /// The sockets the blocking models' threads are serving.
    pub live: LiveSockets,
    /// With `--access-log` or `--metrics`: told of each accepted connection.
    pub observer: Option<Arc<Observer>>,
    /// With `--tls-cert`: every connection speaks TLS.
    pub tls: Option<TlsConfig>,
    /// With `--proxy-protocol`: the sources whose connections open with a PROXY header;
    /// a connection from any other is refused.
    proxy_protocol: Option<TrustedProxies>,
    /// What SIGHUP makes a process do, if anything.
    on_hangup: Option<OnHangup>,
    /// What SIGUSR2 makes the server's main process do, if anything.
    on_upgrade: Option<OnUpgrade>,
    /// With `--trace-model`: where the model says what it does.
    pub trace: Trace,
}

impl<H> Context<H> {
    pub fn new(
        handler: H,
        settings: Settings,
        workers: usize,
        max_connections: usize,
        shutdown: Arc<Shutdown>,
        shutdown_timeout: Duration,
        observer: Option<Arc<Observer>>,
    ) -> Context<H> {
        let gauge = observer.as_ref().and_then(|observer| observer.open_gauge());
        let limit = ConnectionLimit::new(max_connections, gauge);
        Context {
            handler,
            settings,
            workers,
            limit,
            shutdown,
            shutdown_timeout,
            live: LiveSockets::default(),
            observer,
            tls: None,
            proxy_protocol: None,
            on_hangup: None,
            on_upgrade: None,
            trace: Trace::OFF,
        }
    }

    /// The model says what it does on `trace` (`--trace-model`).
    pub fn with_trace(self, trace: Trace) -> Context<H> {
        Context { trace, ..self }
    }

    /// Every connection accepted speaks TLS with `tls`, if given.
    pub fn with_tls(self, tls: Option<TlsConfig>) -> Context<H> {
        Context { tls, ..self }
    }

    /// With `trusted` given, every connection must come from one of them (a Unix socket's
    /// client counts as one) and open with a PROXY protocol header; others are refused.
    pub fn with_proxy_protocol(self, trusted: Option<TrustedProxies>) -> Context<H> {
        Context {
            proxy_protocol: trusted,
            ..self
        }
    }

    /// On SIGHUP (with the binary's signal handling), each process runs `on_hangup`.
    pub fn with_hangup(self, on_hangup: OnHangup) -> Context<H> {
        Context {
            on_hangup: Some(on_hangup),
            ..self
        }
    }

    /// On SIGUSR2 (with the binary's signal handling), the server's main process runs
    /// `on_upgrade`.
    pub fn with_upgrade(self, on_upgrade: Option<OnUpgrade>) -> Context<H> {
        Context { on_upgrade, ..self }
    }

    /// Whether SIGUSR2 does something: the server's main process reads it then.
    pub fn upgrades(&self) -> bool {
        self.on_upgrade.is_some() && self.shutdown.watches_signals()
    }

    /// SIGUSR2 came, to a forking parent: the upgrade runs in a child of its own, so that
    /// the parent stays single-threaded and its loop goes on while the new copy starts.
    pub fn upgrade_in_child(&self, children: &mut Children) {
        let Some(on_upgrade) = &self.on_upgrade else {
            return;
        };
        let upgrade = || {
            on_upgrade.run();
            0
        };
        if let Err(e) = children.spawn(upgrade) {
            tracing::error!("upgrade failed: cannot fork: {e}; still serving");
        }
    }

    /// SIGHUP came, to a process that looks for it in its own loop.
    pub fn hung_up(&self, report: Report) {
        if let Some(on_hangup) = &self.on_hangup {
            on_hangup.run(report);
        }
    }

    /// After the accept loop stopped: waits until every admitted connection has ended, or
    /// the shutdown timeout has passed (the caller then returns, cutting what is left).
    pub fn wait_for_connections(&self) {
        let give_up = Instant::now() + self.shutdown_timeout;
        while self.limit.open() > 0 && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.live.cut_all();
    }

    /// The link for a newly accepted connection on `socket`, with its place under the
    /// connection limit; beyond the limit, a link that only answers 503.
    pub fn accept(&self, clock: &Clock, socket: &Stream) -> (Link, Option<Admission>) {
        match self.limit.admit() {
            Some(admission) => (
                self.placed(
                    Link::new(self.settings, clock.now(), self.tls.as_ref()),
                    clock,
                    socket,
                ),
                Some(admission),
            ),
            None => (self.overloaded(clock, socket), None),
        }
    }

    /// A link that only answers 503, for a model that refuses a connection itself.
    pub fn overloaded(&self, clock: &Clock, socket: &Stream) -> Link {
        self.placed(
            Link::overloaded(self.settings, clock, self.tls.as_ref()),
            clock,
            socket,
        )
    }

    /// Tells a new link who is at the other end, if anyone asks: the observer (which counts
    /// it, and logs the peer's address), and `--proxy-protocol` (a trusted source's link
    /// first reads the PROXY header; any other source's is refused, closed unanswered).
    fn placed(&self, mut link: Link, clock: &Clock, socket: &Stream) -> Link {
        let logs_peer = self.observer.as_ref().is_some_and(|observer| observer.accepted());
        if !logs_peer && self.proxy_protocol.is_none() {
            return link;
        }
        let peer = socket.peer();
        if logs_peer {
            link.set_peer(peer.ip());
        }
        match (&self.proxy_protocol, peer) {
            (None, _) => link,
            (Some(trusted), Peer::Ip(ip)) if !trusted.contains(ip) => self.refused(Some(ip), clock),
            (Some(_), Peer::Unknown) => self.refused(None, clock),
            (Some(_), Peer::Ip(_) | Peer::Local) => {
                link.expect_proxy_header(clock.now());
                link
            }
        }
    }

    /// A link that closes unanswered, for a connection from `peer` (`None`: it could not be
    /// told) that `--proxy-protocol` refuses. Counted in the metrics; said on stderr, the
    /// first of each process at `info`, every one at `debug`, so a flood cannot fill the log.
    fn refused(&self, peer: Option<std::net::IpAddr>, clock: &Clock) -> Link {
        static TOLD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if let Some(observer) = &self.observer {
            observer.proxy_refused();
        }
        let peer = peer.map_or_else(|| "an unknown source".to_string(), |ip| ip.to_string());
        if TOLD.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::debug!("refused a connection from {peer}: not in --trusted-proxies");
        } else {
            tracing::info!(
                "refused a connection from {peer}: not in --trusted-proxies (--proxy-protocol); \
                 every one is counted in bingfa_proxy_refused_total"
            );
        }
        Link::refused(self.settings, clock.now())
    }

    /// Starts what a serving process that may start threads (not a forking parent) runs
    /// beside its connections: the access log's writer, and when the binary's signals are
    /// in use, the SIGHUP watcher and the reader of SIGINT and SIGTERM (which start the drain,
    /// see `shutdown`). Dropped, they stop (the writer writes what is left).
    pub fn serving_process(&self, report: Report) -> ProcessServices {
        let signals = self
            .shutdown
            .read_signals_on_thread()
            .map_err(|e| tracing::error!("cannot read SIGTERM, only SIGKILL will stop: {e}"))
            .ok()
            .flatten();
        let writer = self
            .observer
            .as_ref()
            .and_then(|observer| observer.start_writer());
        // The process that tells is the server's main one (the others reload quietly): only
        // it upgrades.
        let on_upgrade = self.on_upgrade.clone().filter(|_| report == Report::Tell);
        let watcher = match &self.on_hangup {
            Some(on_hangup) if self.shutdown.watches_signals() => {
                Watcher::start(on_hangup.clone(), report, on_upgrade)
                    .map_err(|e| tracing::error!("cannot watch SIGHUP, it will do nothing: {e}"))
                    .ok()
            }
            _ => None,
        };
        ProcessServices {
            _writer: writer,
            _watcher: watcher,
            _signals: signals,
        }
    }
}

/// The threads a serving process runs beside its connections; see
/// [`Context::serving_process`].
#[derive(Debug)]
pub(crate) struct ProcessServices {
    _writer: Option<Writer>,
    _watcher: Option<Watcher>,
    _signals: Option<SignalReader>,
}

/// The sockets of the connections the blocking models' threads are serving. A thread
/// blocked in `send` cannot be told to stop, but its socket can be shut down under it: that
/// is how a stopping server cuts what is still open after its shutdown timeout.
///
/// It holds descriptor numbers, not duplicates, so a connection costs one descriptor, not two
/// (with duplicates, `thread` ran out of descriptors at 10,000 connections). A number is safe
/// to use because a socket leaves the table, under its lock, before it is closed (see
/// [`Tracked`]), and `cut_all` uses the numbers under the same lock: a number in the table
/// always names the connection's own open socket, never a later file given the same number.
#[derive(Debug, Default)]
pub(crate) struct LiveSockets(Mutex<Slab<RawFd>>);

/// A socket's place in [`LiveSockets`], given up when dropped: it borrows the socket, so it
/// is dropped before the socket can be closed.
pub(crate) struct Tracked<'a> {
    live: &'a LiveSockets,
    key: usize,
    _socket: PhantomData<&'a Stream>,
}

impl LiveSockets {
    /// Tracks `socket` until the returned guard is dropped.
    pub fn track<'a>(&'a self, socket: &'a Stream) -> Tracked<'a> {
        let key = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(socket.as_raw_fd());
        Tracked {
            live: self,
            key,
            _socket: PhantomData,
        }
    }

    /// Shuts down every tracked socket: blocked reads and writes on it fail at once.
    fn cut_all(&self) {
        for (_, &fd) in self.0.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            // SAFETY: the descriptor is open, and still this connection's socket: it leaves
            // the table (under this lock, held here) before its socket is closed.
            let socket = unsafe { BorrowedFd::borrow_raw(fd) };
            let _ = rustix::net::shutdown(socket, rustix::net::Shutdown::Both);
        }
    }
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        self.live
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .try_remove(self.key);
    }
}

/// Reads both OS clocks for the core.
pub(crate) fn clock_now() -> Clock {
    Clock::new(SystemTime::now(), Instant::now())
}

/// Moves `clock` to now: once per turn of a loop, not per request.
pub(crate) fn tick(clock: &mut Clock) {
    clock.tick(SystemTime::now(), Instant::now());
}

/// Timeouts are checked a few times per shortest timeout, and at least once a second.
pub(crate) fn sweep_interval(settings: &Settings) -> Duration {
    let shortest = settings
        .header_timeout
        .min(settings.idle_timeout)
        .min(settings.linger);
    (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}
