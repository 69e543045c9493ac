//! Starting a server: its configuration, its listening socket, and the hand-off to a model.

use crate::error::Error;
use crate::http;
use crate::models::{self, Context};
use crate::net::{self, Address, Listener};
use crate::observe::{LogFormat, Observation};
use crate::shutdown::Shutdown;
use crate::site::{Site, SiteOptions};
use socket2::{Domain, Protocol, Socket, Type};
use std::fmt;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The concurrency models; each lives in `src/models/<name>.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Model {
    /// One process per connection (fork).
    Process,
    /// One thread per connection, blocking I/O.
    Thread,
    /// A fixed pool of worker threads taking connections from a queue.
    Pool,
    /// Tokio tasks, one per connection, on a multi-thread runtime.
    #[value(alias = "coroutine")]
    Async,
    /// One thread trying every non-blocking socket in turn, no readiness API.
    Nonblocking,
    /// One thread, poll(2) over every socket each turn.
    Poll,
    /// One thread, non-blocking sockets, one epoll loop.
    Epoll,
    /// One epoll loop per worker thread, each with its own SO_REUSEPORT listener.
    Reactor,
    /// Worker processes forked at start, each running an epoll loop; the parent supervises.
    Prefork,
    /// io_uring: accept, receive and send driven by completions, one ring per worker.
    Uring,
}

impl Model {
    pub const ALL: &'static [Model] = &[
        Model::Process,
        Model::Thread,
        Model::Pool,
        Model::Async,
        Model::Nonblocking,
        Model::Poll,
        Model::Epoll,
        Model::Reactor,
        Model::Prefork,
        Model::Uring,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Model::Process => "process",
            Model::Thread => "thread",
            Model::Pool => "pool",
            Model::Async => "async",
            Model::Nonblocking => "nonblocking",
            Model::Poll => "poll",
            Model::Epoll => "epoll",
            Model::Reactor => "reactor",
            Model::Prefork => "prefork",
            Model::Uring => "uring",
        }
    }

    /// Models that fork. They must be started from a single-threaded program (the
    /// `bingfa` binary is one), never from inside a multi-threaded one such as a test runner.
    pub fn forks(self) -> bool {
        matches!(self, Model::Process | Model::Prefork)
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything a server needs to know besides its listener.
#[derive(Debug, Clone)]
pub struct Config {
    pub root: PathBuf,
    pub model: Model,
    /// Worker threads for models that have several (reactor).
    pub workers: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// A client that takes no data for this long while a response is pending is dropped.
    pub send_timeout: Duration,
    /// While a request head or body arrives, the client must keep up this many bytes per
    /// second on average (after a short grace); 0 turns the check off.
    pub min_rate: u64,
    /// On SIGTERM/SIGINT, how long responses in flight may take before they are cut.
    pub shutdown_timeout: Duration,
    /// Connections beyond this get a 503 and are closed.
    pub max_connections: usize,
    /// Serve dotfiles and dot-directories.
    pub hidden: bool,
    /// List directories that have no `index.html`.
    pub listing: bool,
    /// The page served with 404 for missing files, as a path inside the root; `404.html`
    /// at the root is used when this is `None` and that file exists.
    pub error_page: Option<PathBuf>,
    /// `Cache-Control` for every file response.
    pub cache_control: Option<String>,
    /// Files whose names carry a content hash (`app.3f9a1c2b.js`) are cached for a year.
    pub immutable_fingerprints: bool,
    /// How long a small file is served from memory before it is looked up again (an edit
    /// shows within this time); zero: look up on every request.
    pub file_cache_valid: Duration,
    /// Where each request is logged: a file (appended to; reopened on SIGHUP by the binary),
    /// or `-` for stdout. `None`: no access log.
    pub access_log: Option<PathBuf>,
    pub log_format: LogFormat,
    /// Serve Prometheus metrics and a health check on this address.
    pub metrics: Option<SocketAddr>,
}

impl Config {
    pub fn new(root: impl Into<PathBuf>) -> Config {
        let defaults = http::Settings::default();
        Config {
            root: root.into(),
            model: Model::Reactor,
            workers: available_cores(),
            header_timeout: defaults.header_timeout,
            idle_timeout: defaults.idle_timeout,
            send_timeout: defaults.send_timeout,
            min_rate: defaults.min_rate,
            shutdown_timeout: Duration::from_secs(30),
            max_connections: connection_budget(),
            hidden: false,
            listing: false,
            error_page: None,
            cache_control: None,
            immutable_fingerprints: false,
            file_cache_valid: crate::site::DEFAULT_FILE_CACHE_VALID,
            access_log: None,
            log_format: LogFormat::Combined,
            metrics: None,
        }
    }

    fn settings(&self) -> http::Settings {
        http::Settings {
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            send_timeout: self.send_timeout,
            min_rate: self.min_rate,
            // Lingering is only a courtesy to a client still sending; never longer than
            // the server would wait for a head.
            linger: http::Settings::default().linger.min(self.header_timeout),
            observe: self.access_log.is_some() || self.metrics.is_some(),
            ..http::Settings::default()
        }
    }
}

pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Raises the soft limit on open descriptors to the hard limit, as servers that hold many
/// connections do; returns the new soft limit.
pub fn raise_open_file_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        // Refused only in odd sandboxes; the current limit then stands.
        let _ = setrlimit(Resource::Nofile, limit);
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// How many connections fit the descriptor limit: each may hold its socket and a file being
/// sent, and a few descriptors are kept for listeners, epoll and the root directory.
fn connection_budget() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let soft = soft.unwrap_or(1 << 20).min(1 << 24) as usize;
    (soft.saturating_sub(64) / 2).max(1)
}

/// Binds a listener on `address`: a Unix socket (see `net::bind_unix`), or a TCP one. Every
/// TCP listener is `SO_REUSEPORT`, so the reactor can open one per worker on the same address.
pub fn bind(address: Address) -> Result<Listener, Error> {
    let addr = match address {
        Address::Tcp(addr) => addr,
        Address::Unix(path) => return net::bind_unix(&path),
    };
    if addr.port() != 0 {
        check_address_free(addr)?;
    }
    listen_reuseport(addr).map_err(|source| Error::listen(addr, source))
}

/// With `SO_REUSEPORT`, a second server of the same user could silently share a port with
/// the first. A plain bind first makes "address in use" an error, as users expect. (A server
/// that takes the port between this check and the real bind would still share it.)
fn check_address_free(addr: SocketAddr) -> Result<(), Error> {
    let probe = new_socket(addr).map_err(|source| Error::listen(addr, source))?;
    probe
        .bind(&addr.into())
        .map_err(|source| Error::listen(addr, source))
}

pub(crate) fn listen_reuseport(addr: SocketAddr) -> std::io::Result<Listener> {
    let socket = new_socket(addr)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(Listener::reusing_port(socket))
}

/// Unsent bytes below which a connection counts as writable again. It also caps what one
/// `sendfile` may leave unsent, so it sets how many rounds of wake-up and `sendfile` a large
/// body takes: at 256 KiB, a 1 MiB file took at least four, and reactor served 25-40% fewer
/// of them per second than at 2 MiB, which is as fast as no mark at all (wrk -c100 on the
/// 1 MiB file, 2 cores). A client slower than the kernel's wake-up is still seen taking data:
/// see `models::SendWatch`.
const NOTSENT_LOWAT: u32 = 2 << 20;

fn new_socket(addr: SocketAddr) -> std::io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.cloexec(),
        Some(Protocol::TCP),
    )?;
    // Restarting must not wait for old connections in TIME_WAIT.
    socket.set_reuse_address(true)?;
    tune_tcp(&socket);
    Ok(socket)
}

/// Settings for a TCP listener, bound here or passed in by systemd.
pub(crate) fn tune_tcp(socket: &Socket) {
    // Report a socket writable once its *unsent* backlog is small, not once the whole
    // (autotuned, megabytes large) send buffer has drained: a client reading slowly but
    // steadily then shows progress often, so only one that stops reading meets the send
    // timeout. Accepted sockets inherit it. Old kernels lack it; nothing else depends on it.
    let _ = socket.set_tcp_notsent_lowat(NOTSENT_LOWAT);
    // Small responses must not wait for Nagle's algorithm. Set once here, since accepted
    // sockets inherit it: a system call saved on every connection.
    let _ = socket.set_tcp_nodelay(true);
}

/// A server ready to run: its root is open and its listener bound.
#[derive(Debug)]
pub struct Server {
    listener: Listener,
    site: Site,
    config: Config,
    observation: Option<Observation>,
}

impl Server {
    pub fn new(listener: Listener, config: &Config) -> Result<Server, Error> {
        models::check_available(config.model)?;
        let options = SiteOptions {
            hidden: config.hidden,
            listing: config.listing,
            error_page: config.error_page.clone(),
            cache_control: config.cache_control.clone(),
            immutable_fingerprints: config.immutable_fingerprints,
            file_cache_valid: config.file_cache_valid,
        };
        let mut site = Site::open(&config.root, options).map_err(|source| Error::Root {
            path: config.root.clone(),
            source,
        })?;
        let observation = Observation::new(config)?;
        site.observer = observation.as_ref().map(|o| Arc::clone(o.observer()));
        Ok(Server {
            listener,
            site,
            config: config.clone(),
            observation,
        })
    }

    /// The absolute path being served.
    pub fn root(&self) -> &Path {
        self.site.root()
    }

    /// Where clients reach the server (see [`Listener::urls`]).
    pub fn urls(&self) -> Result<Vec<String>, Error> {
        self.listener
            .urls()
            .map_err(Error::io("reading the listening address"))
    }

    /// Where `--metrics` are served, once bound (with the real port if 0 was asked for).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.observation.as_ref()?.metrics_addr()
    }

    /// Serves until `shutdown` is triggered.
    pub fn run(self, shutdown: Arc<Shutdown>) -> Result<(), Error> {
        tracing::debug!("{:?}", self.config);
        let observer = self.site.observer.clone();
        let observing = match self.observation {
            Some(observation) => {
                Some(observation.start(self.config.model, self.listener.as_fd(), &shutdown)?)
            }
            None => None,
        };
        let context = Arc::new(Context::new(
            self.site,
            self.config.settings(),
            self.config.workers.max(1),
            self.config.max_connections,
            shutdown,
            self.config.shutdown_timeout,
            observer,
        ));
        let served = models::run(self.config.model, self.listener, context);
        drop(observing);
        if served.is_ok() {
            tracing::info!("stopped");
        }
        served
    }
}

/// Serves `config.root` on `listener` with `config.model` until `shutdown` is triggered.
pub fn serve(listener: Listener, config: &Config, shutdown: Arc<Shutdown>) -> Result<(), Error> {
    Server::new(listener, config)?.run(shutdown)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nagle's algorithm is turned off once, on the listener: accepted sockets inherit it.
    #[test]
    fn accepted_sockets_inherit_no_delay() {
        let listener = listen_reuseport("127.0.0.1:0".parse().unwrap()).unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let fd = std::os::fd::AsFd::as_fd(&accepted);
        assert!(rustix::net::sockopt::tcp_nodelay(fd).unwrap());
    }
}
