//! Wiring a server together: its configuration, the site, what observes it, and the hand-off
//! of a bound listener to a model. Nothing here serves a byte itself.

mod certificates;
mod endpoint;
mod upgrade;

pub use crate::acme::{default_state_dir, LETS_ENCRYPT, LETS_ENCRYPT_STAGING};
use crate::acme::{Acme, AcmeSettings, Publish};
use crate::engine::{Context, OnHangup, OnUpgrade, Report};
use crate::error::Error;
/// For the command line to check `--index` names as the root will.
pub use crate::fs::check_index_name;
use crate::http;
pub use crate::http::Cidr;
use crate::http::TrustedProxies;
use crate::models::{self, Model};
use crate::net::{Handover, Listener, Ready, SocketFile, TakenOver};
use crate::observe::trace::Trace;
use crate::observe::{Health, Healthy, LogFormat, Observer};
use crate::seam::TlsConfig;
use crate::shutdown::{Phase, Shutdown};
pub use crate::site::{hash_password, AuthRule, AuthRuleError};
pub use crate::site::{
    AllowOrigin, Cors, HeaderField, HeaderRule, HeaderRuleError, HostName, HostNameError, RedirectError,
    RedirectRule, DEFAULT_REDIRECT_STATUS,
};
use crate::site::{Hosts, HttpsRedirect, Site, SiteOptions};
use certificates::{load_tls, reload_on_hangup};
use endpoint::{Companion, Endpoint};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use upgrade::Upgrade;
pub use upgrade::{Relaunch, READY_WITHIN};

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
    /// On SIGTERM/SIGINT, how long to go on serving first, with `/healthz` saying 503
    /// `draining` and every response closing its connection, so that a load balancer takes
    /// the server out of rotation and keep-alive clients move elsewhere. At most
    /// `shutdown_timeout`.
    pub drain_delay: Duration,
    /// Connections beyond this get a 503 and are closed.
    pub max_connections: usize,
    /// HTTP/2: streams one connection may have open at once.
    pub h2_max_streams: u32,
    /// Serve dotfiles and dot-directories.
    pub hidden: bool,
    /// List directories that have no `index.html`.
    pub listing: bool,
    /// The page served with 404 for missing files, as a path inside the root; `404.html`
    /// at the root is used when this is `None` and that file exists.
    pub error_page: Option<PathBuf>,
    /// A GET or HEAD that would be a 404 gets this page with 200 (a path inside the root, for
    /// single-page apps), unless its last segment has an extension other than `.html`.
    pub fallback: Option<PathBuf>,
    /// `/about` serves `about.html`; `/about.html` and `/docs/index.html` are redirected to
    /// `/about` and `/docs/`.
    pub clean_urls: bool,
    /// A directory's index file names, tried in order.
    pub index: Vec<String>,
    /// `Cache-Control` for every file response.
    pub cache_control: Option<String>,
    /// Files whose names carry a content hash (`app.3f9a1c2b.js`) are cached for a year.
    pub immutable_fingerprints: bool,
    /// `X-Content-Type-Options: nosniff` on every response.
    pub nosniff: bool,
    /// `--header`: fields on every response of the site.
    pub headers: Vec<HeaderField>,
    /// `[[headers]]`: fields on the responses for the paths each rule's glob matches.
    pub header_rules: Vec<HeaderRule>,
    /// `--cors`: which origins' scripts may read the site.
    pub cors: Cors,
    /// `[[redirects]]`: redirects and rewrites, the first that matches a path applies.
    pub redirects: Vec<RedirectRule>,
    /// How long a small file is served from memory before it is looked up again (an edit
    /// shows within this time); zero: look up on every request.
    pub file_cache_valid: Duration,
    /// Compress text-like files without a precompressed sibling on the fly, up to
    /// `compress_max` bytes, keeping `compress_cache` bytes of results in memory.
    pub compress: bool,
    pub compress_max: u64,
    pub compress_cache: u64,
    /// `[[auth]]`: basic auth for the paths each rule's glob matches (the first that matches
    /// decides), passwords as bcrypt or argon2 hashes.
    pub auth: Vec<AuthRule>,
    /// Where each request is logged: a file (appended to; reopened on SIGHUP by the binary),
    /// or `-` for stdout. `None`: no access log.
    pub access_log: Option<PathBuf>,
    pub log_format: LogFormat,
    /// `--trace-model`: the model says on stderr what it does, at most 20 lines a second
    /// (see `observe::trace`). Off, it costs a branch where an event could be said.
    pub trace_model: bool,
    /// Serve Prometheus metrics and a health check on this address.
    pub metrics: Option<SocketAddr>,
    /// Serve HTTPS with this certificate chain and key (PEM files), both or neither.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// More certificates (chain, key) beside `tls_cert`, each offered to the clients whose
    /// SNI names one of its names; `tls_cert` stays the one for every other client (a config
    /// file's `[[tls]]` tables).
    pub sni_certificates: Vec<(PathBuf, PathBuf)>,
    /// On HTTPS responses, `Strict-Transport-Security: max-age=` this many seconds.
    pub hsts: Option<u64>,
    /// A plaintext listener here answers every request with a redirect to HTTPS.
    pub redirect_http: Option<SocketAddr>,
    /// Automatic HTTPS: certificates for these names (checked host names, lowercase) are
    /// obtained from an ACME CA and renewed, and HTTPS served with them.
    pub acme_domains: Vec<String>,
    /// The ACME account's contact address, for the CA's notices.
    pub acme_email: Option<String>,
    /// The ACME CA's directory URL (Let's Encrypt's production one by default).
    pub acme_directory: String,
    /// Trust the CA's HTTPS by the roots in this PEM file (a private or test CA).
    pub acme_ca_root: Option<PathBuf>,
    /// Where automatic HTTPS keeps its account and certificates; `None`: `bingfa` in the XDG
    /// state directory.
    pub state_dir: Option<PathBuf>,
    /// Test only: renew a certificate with this much of its lifetime left instead of a third.
    pub acme_renew_before: Option<Duration>,
    /// Every connection opens with a PROXY protocol header (v1 or v2) from one of the
    /// `trusted_proxies`, naming the client; connections from anyone else are refused.
    pub proxy_protocol: bool,
    /// The sources trusted to name the client: by a PROXY header, and by `Forwarded` or
    /// `X-Forwarded-For` in the access log. Loopback by default.
    pub trusted_proxies: Vec<Cidr>,
    /// Virtual hosts (a config file's `[[hosts]]` tables): sites of their own for the
    /// requests naming their hosts; the options above serve every other host.
    pub hosts: Vec<VirtualHost>,
}

/// One virtual host: the site served to requests whose host is one of `names`.
///
/// Its options are its own: one it does not set has its built-in default, not the value the
/// top level gives the default site (as a site block in Caddy). What it cannot set is the
/// server's, shared by every site: compression, the small-file cache's validity,
/// `--immutable-fingerprints`, `--no-nosniff`, the timeouts and TLS.
#[derive(Debug, Clone)]
pub struct VirtualHost {
    pub names: Vec<HostName>,
    pub root: PathBuf,
    pub hidden: bool,
    pub listing: bool,
    pub error_page: Option<PathBuf>,
    pub fallback: Option<PathBuf>,
    pub clean_urls: bool,
    pub index: Vec<String>,
    pub cache_control: Option<String>,
    pub headers: Vec<HeaderField>,
    pub header_rules: Vec<HeaderRule>,
    pub cors: Cors,
    pub redirects: Vec<RedirectRule>,
    /// `[[hosts.auth]]`: basic auth of its own, as its headers are.
    pub auth: Vec<AuthRule>,
}

impl VirtualHost {
    /// `root` served for `names`, every option at its default.
    pub fn new(names: Vec<HostName>, root: impl Into<PathBuf>) -> VirtualHost {
        let defaults = Config::new("");
        VirtualHost {
            names,
            root: root.into(),
            hidden: defaults.hidden,
            listing: defaults.listing,
            error_page: defaults.error_page,
            fallback: defaults.fallback,
            clean_urls: defaults.clean_urls,
            index: defaults.index,
            cache_control: defaults.cache_control,
            headers: defaults.headers,
            header_rules: defaults.header_rules,
            cors: defaults.cors,
            redirects: defaults.redirects,
            auth: defaults.auth,
        }
    }

    /// Its site's options: its own, and the server's shared ones from `config`.
    fn site_options(&self, config: &Config) -> SiteOptions {
        SiteOptions {
            hidden: self.hidden,
            listing: self.listing,
            error_page: self.error_page.clone(),
            cache_control: self.cache_control.clone(),
            fallback: self.fallback.clone(),
            clean_urls: self.clean_urls,
            index: self.index.clone(),
            headers: self.headers.clone(),
            header_rules: self.header_rules.clone(),
            cors: self.cors.clone(),
            redirects: self.redirects.clone(),
            auth: self.auth.clone(),
            ..config.site_options()
        }
    }
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
            drain_delay: Duration::ZERO,
            max_connections: connection_budget(),
            h2_max_streams: defaults.h2_max_streams,
            hidden: false,
            listing: false,
            error_page: None,
            fallback: None,
            clean_urls: false,
            index: vec![crate::fs::DEFAULT_INDEX.to_string()],
            cache_control: None,
            immutable_fingerprints: false,
            nosniff: defaults.nosniff,
            headers: Vec::new(),
            header_rules: Vec::new(),
            cors: Cors::Off,
            redirects: Vec::new(),
            file_cache_valid: crate::site::DEFAULT_FILE_CACHE_VALID,
            compress: false,
            compress_max: crate::site::DEFAULT_COMPRESS_MAX,
            compress_cache: crate::site::DEFAULT_COMPRESS_CACHE,
            auth: Vec::new(),
            access_log: None,
            log_format: LogFormat::Combined,
            trace_model: false,
            metrics: None,
            tls_cert: None,
            tls_key: None,
            sni_certificates: Vec::new(),
            hsts: None,
            redirect_http: None,
            acme_domains: Vec::new(),
            acme_email: None,
            acme_directory: LETS_ENCRYPT.to_string(),
            acme_ca_root: None,
            state_dir: None,
            acme_renew_before: None,
            proxy_protocol: false,
            trusted_proxies: TrustedProxies::default().blocks().to_vec(),
            hosts: Vec::new(),
        }
    }

    /// The default site's options (ROOT's, for every host no `[[hosts]]` table names).
    fn site_options(&self) -> SiteOptions {
        SiteOptions {
            hidden: self.hidden,
            listing: self.listing,
            error_page: self.error_page.clone(),
            cache_control: self.cache_control.clone(),
            immutable_fingerprints: self.immutable_fingerprints,
            file_cache_valid: self.file_cache_valid,
            compress: self.compress,
            compress_max: self.compress_max,
            compress_cache: self.compress_cache,
            fallback: self.fallback.clone(),
            clean_urls: self.clean_urls,
            index: self.index.clone(),
            headers: self.headers.clone(),
            header_rules: self.header_rules.clone(),
            cors: self.cors.clone(),
            redirects: self.redirects.clone(),
            auth: self.auth.clone(),
        }
    }

    /// A drain longer than the shutdown timeout is a mistake: whoever stops the server
    /// (systemd, Kubernetes) gives it about the shutdown timeout before it kills it.
    fn check_drain_delay(&self) -> Result<(), Error> {
        if self.drain_delay > self.shutdown_timeout {
            return Err(Error::DrainDelay {
                drain_delay: self.drain_delay,
                shutdown_timeout: self.shutdown_timeout,
            });
        }
        Ok(())
    }

    /// The core's settings, with `shutdown`'s drain raising their closing flag.
    fn settings_with(&self, shutdown: &Shutdown) -> http::Settings {
        shutdown.set_drain_delay(self.drain_delay);
        http::Settings {
            closing: Some(shutdown.closing()),
            ..self.settings()
        }
    }

    /// Automatic HTTPS's settings, with `acme_domains`; its state directory defaults to the
    /// XDG one, from the process's environment.
    fn acme_settings(&self) -> Result<Option<AcmeSettings>, Error> {
        if self.acme_domains.is_empty() {
            return Ok(None);
        }
        let state_dir = match &self.state_dir {
            Some(dir) => dir.clone(),
            None => {
                default_state_dir(|name| std::env::var_os(name)).map_err(|e| Error::Acme(e.to_string()))?
            }
        };
        Ok(Some(AcmeSettings {
            names: self.acme_domains.clone(),
            email: self.acme_email.clone(),
            directory: self.acme_directory.clone(),
            ca_root: self.acme_ca_root.clone(),
            state_dir,
            renew_before: self.acme_renew_before,
        }))
    }

    /// With `--proxy-protocol`, the sources whose connections open with a PROXY header.
    fn proxy_header_from(&self) -> Option<TrustedProxies> {
        self.proxy_protocol
            .then(|| TrustedProxies::new(self.trusted_proxies.iter().copied()))
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
            h2_max_streams: self.h2_max_streams,
            nosniff: self.nosniff,
            // With virtual hosts, a connection made for one site is not answered by another.
            match_sni: !self.hosts.is_empty(),
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

/// A server ready to run: its root is open, its listener bound, and its access log and
/// metrics listener too, so that every mistake in the configuration shows before it serves.
#[derive(Debug)]
pub struct Server {
    listener: Listener,
    served: Served,
    config: Config,
    observer: Option<Arc<Observer>>,
    metrics_listener: Option<TcpListener>,
    tls: Option<TlsConfig>,
    redirect: Option<(TcpListener, HttpsRedirect)>,
    /// Taking over from a server it upgrades: told once this one serves.
    ready: Option<Ready>,
    /// On SIGUSR2, start this again and hand it the sockets (the binary only).
    relaunch: Option<Relaunch>,
    acme: Option<Acme>,
}

/// Listeners handed over by the server this one upgrades, used instead of binding.
#[derive(Debug, Default)]
struct Handed {
    metrics: Option<TcpListener>,
    redirect: Option<TcpListener>,
    ready: Option<Ready>,
}

/// What answers the requests: the site, or the sites of virtual hosts. A server without
/// hosts serves its `Site` itself, so its models run with that handler unchanged.
#[derive(Debug)]
enum Served {
    Site(Site),
    Hosts(Hosts),
}

impl Served {
    /// The default site, or the only one.
    fn default_site(&self) -> &Site {
        match self {
            Served::Site(site) => site,
            Served::Hosts(hosts) => hosts.default_site(),
        }
    }
}

/// Scrapers connected at once to `--metrics`, beyond which it says 503.
const METRICS_CONNECTIONS: usize = 64;

impl Server {
    pub fn new(listener: Listener, config: &Config) -> Result<Server, Error> {
        Server::open(listener, Handed::default(), config)
    }

    /// A server on the sockets the server it upgrades handed over (see `net::Handover`): its
    /// listener, and its `--metrics` and `--redirect-http` listeners where both have them.
    pub fn taking_over(taken: TakenOver, config: &Config) -> Result<Server, Error> {
        let handed = Handed {
            metrics: taken.metrics,
            redirect: taken.redirect,
            ready: Some(taken.ready),
        };
        Server::open(taken.listener, handed, config)
    }

    /// On SIGUSR2, starts `relaunch` (this program again) with the listening sockets, and
    /// once it serves, drains and stops (see `server/upgrade.rs`).
    pub fn upgrading_with(self, relaunch: Relaunch) -> Server {
        Server {
            relaunch: Some(relaunch),
            ..self
        }
    }

    fn open(listener: Listener, handed: Handed, config: &Config) -> Result<Server, Error> {
        config.model.check_available()?;
        config.check_drain_delay()?;
        let acme = open_acme(config)?;
        let (tls, chains) = match &acme {
            Some(acme) => (Some(acme_tls(acme, config)?), None),
            None => load_tls(config)?.unzip(),
        };
        let redirect = match config.redirect_http {
            Some(addr) => Some(redirect_to_https(
                addr,
                handed.redirect,
                &listener,
                |port| match &acme {
                    Some(acme) => Some(HttpsRedirect::for_names(acme.names(), port)),
                    None => HttpsRedirect::new(chains.as_deref()?, port),
                },
            )?),
            None => None,
        };
        let site = open_site(&config.root, config.site_options())?;
        let metrics_for = config.metrics.map(|_| config.model.name());
        let trusted = TrustedProxies::new(config.trusted_proxies.iter().copied());
        let observer = Observer::open(
            config.access_log.as_deref(),
            config.log_format,
            metrics_for,
            trusted,
            acme.as_ref().map_or(&[], |acme| acme.names()),
        )?;
        let metrics_listener = match (config.metrics, handed.metrics) {
            (Some(_), Some(listener)) => Some(listener),
            (Some(addr), None) => {
                Some(TcpListener::bind(addr).map_err(|source| Error::Metrics { addr, source })?)
            }
            (None, _) => None,
        };
        let served = serve_sites(site, config, observer.clone())?;
        Ok(Server {
            listener,
            served,
            config: config.clone(),
            observer,
            metrics_listener,
            tls,
            redirect,
            ready: handed.ready,
            relaunch: None,
            acme,
        })
    }

    /// The absolute path being served.
    pub fn root(&self) -> &Path {
        self.served.default_site().root()
    }

    /// Where clients reach the server (see [`Listener::urls`]).
    pub fn urls(&self) -> Result<Vec<String>, Error> {
        let urls = self
            .listener
            .urls()
            .map_err(Error::io("reading the listening address"))?;
        Ok(match self.tls {
            Some(_) => urls
                .iter()
                .map(|url| url.replacen("http://", "https://", 1))
                .collect(),
            None => urls,
        })
    }

    /// Where `--metrics` are served, once bound (with the real port if 0 was asked for).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref()?.local_addr().ok()
    }

    /// Where `--redirect-http` listens, once bound (with the real port if 0 was asked for).
    pub fn redirect_addr(&self) -> Option<SocketAddr> {
        self.redirect.as_ref()?.0.local_addr().ok()
    }

    /// Serves until `shutdown` is triggered.
    pub fn run(self, shutdown: Arc<Shutdown>) -> Result<(), Error> {
        tracing::debug!("{:?}", self.config);
        let model = self.config.model;
        let server_listener = self.listener.as_raw_fd();
        let mut endpoints = Vec::new();
        // For an upgrade, copies of the endpoints' listeners, which they move into a thread
        // or process of their own.
        let handed_endpoints = match &self.relaunch {
            Some(_) => (
                copy(self.metrics_listener.as_ref())?,
                copy(self.redirect.as_ref().map(|(listener, _)| listener))?,
            ),
            None => (None, None),
        };
        let metrics = self.observer.as_ref().and_then(|o| o.metrics_handler());
        let metrics = metrics.map(|handler| handler.with_health(health_of(&shutdown)));
        if let (Some(listener), Some(handler)) = (self.metrics_listener, metrics) {
            let addr = local_addr(&listener)?;
            let endpoint = Endpoint::start(
                listener,
                handler,
                METRICS_CONNECTIONS,
                None,
                model.forks(),
                server_listener,
            )?;
            endpoints.push(endpoint);
            tracing::info!("metrics at http://{addr}/metrics, health at http://{addr}/healthz");
        }
        let mut ordering = match (&self.acme, &self.tls) {
            (Some(acme), Some(tls)) => Some(ordering(
                acme,
                tls,
                &self.config,
                &shutdown,
                self.observer.as_deref(),
            )),
            _ => None,
        };
        if let Some((listener, handler)) = self.redirect {
            let addr = local_addr(&listener)?;
            let most = self.config.max_connections;
            let endpoint = match (&self.acme, ordering.take()) {
                // HTTP-01 is answered here, from the memory of the process that orders.
                (Some(acme), Some(ordering)) => Endpoint::start(
                    listener,
                    acme.answer_http01(handler),
                    most,
                    Some(ordering(true)),
                    model.forks(),
                    server_listener,
                )?,
                _ => Endpoint::start(listener, handler, most, None, model.forks(), server_listener)?,
            };
            endpoints.push(endpoint);
            tracing::info!("http://{addr}/ redirects to https");
        }
        if let Some(ordering) = ordering {
            endpoints.push(Endpoint::alone(ordering(false), model.forks(), server_listener)?);
        }
        let on_hangup = reload_on_hangup(
            &self.config,
            self.tls.clone(),
            self.observer.clone(),
            self.acme.clone(),
        );
        let upgrade = self.relaunch.map(|relaunch| Upgradable {
            relaunch,
            metrics: handed_endpoints.0,
            redirect: handed_endpoints.1,
        });
        let serving = Serving {
            config: &self.config,
            listener: self.listener,
            shutdown,
            tls: self.tls,
            observer: self.observer,
            on_hangup,
            endpoints,
            ready: self.ready,
            upgrade,
        };
        let served = match self.served {
            Served::Site(site) => serving.run(site),
            Served::Hosts(hosts) => serving.run(hosts),
        };
        if served.is_ok() {
            tracing::info!("stopped");
        }
        served
    }
}

/// Automatic HTTPS, if asked for: its state directory open, its CA's roots read.
fn open_acme(config: &Config) -> Result<Option<Acme>, Error> {
    let Some(settings) = config.acme_settings()? else {
        return Ok(None);
    };
    Acme::open(&settings)
        .map(Some)
        .map_err(|e| Error::Acme(e.to_string()))
}

/// The TLS configuration of automatic HTTPS: what is stored, and the challenge answers.
fn acme_tls(acme: &Acme, config: &Config) -> Result<TlsConfig, Error> {
    let tls = acme.tls().map_err(|e| Error::Acme(e.to_string()))?;
    Ok(tls.with_hsts(config.hsts))
}

/// Automatic HTTPS's ordering loop, made into a companion of an endpoint once it is known
/// whether that endpoint answers HTTP-01 (the argument). Each certificate it obtains reaches
/// the serving processes: reloaded into `tls` in place when the loop runs in this process;
/// for the forking models, whose loop runs in a process of its own, by SIGHUP to this one,
/// which reads it in its loop and passes it on to its workers (only where the binary's
/// signal handling blocks SIGHUP; elsewhere they serve what was stored at start).
fn ordering(
    acme: &Acme,
    tls: &TlsConfig,
    config: &Config,
    shutdown: &Shutdown,
    observer: Option<&Observer>,
) -> impl FnOnce(bool) -> Companion {
    let publish = if !config.model.forks() {
        let (acme, tls) = (acme.clone(), tls.clone());
        Some(Publish::Reload(Arc::new(move || {
            acme.reload(&tls);
        })))
    } else if shutdown.watches_signals() {
        Some(Publish::Signal(nix::unistd::getpid()))
    } else {
        tracing::warn!(
            "the {} model serves new certificates from its next start",
            config.model.name()
        );
        None
    };
    let metrics = observer.and_then(Observer::certificate_metrics);
    let acme = acme.clone();
    move |http01| {
        let manager = acme.manager(http01, publish, metrics);
        Box::new(move |stop: &Shutdown| manager.run(stop))
    }
}

/// What `/healthz` says: the phase `shutdown` is in (the same in every process of a forking
/// model: it lives in shared memory).
fn health_of(shutdown: &Arc<Shutdown>) -> Health {
    let shutdown = Arc::clone(shutdown);
    Health::new(move || match shutdown.phase() {
        Phase::Starting => Healthy::Starting,
        Phase::Serving => Healthy::Ready,
        Phase::Draining => Healthy::Draining,
    })
}

/// A copy of `listener`'s socket, if there is one.
fn copy(listener: Option<&TcpListener>) -> Result<Option<OwnedFd>, Error> {
    let copy = |listener: &TcpListener| listener.try_clone().map(OwnedFd::from);
    listener
        .map(copy)
        .transpose()
        .map_err(Error::io("keeping a listener for an upgrade"))
}

/// What runs a model with a handler, besides the handler.
struct Serving<'c> {
    config: &'c Config,
    listener: Listener,
    shutdown: Arc<Shutdown>,
    tls: Option<TlsConfig>,
    observer: Option<Arc<Observer>>,
    on_hangup: OnHangup,
    /// Served beside the server until it stops (`--metrics`, `--redirect-http`).
    endpoints: Vec<Endpoint>,
    /// Told once this server serves, if it takes over from one it upgrades.
    ready: Option<Ready>,
    /// With the binary: how SIGUSR2 starts the next copy, and the endpoints' listeners to
    /// hand it.
    upgrade: Option<Upgradable>,
}

struct Upgradable {
    relaunch: Relaunch,
    metrics: Option<OwnedFd>,
    redirect: Option<OwnedFd>,
}

impl Serving<'_> {
    /// Serves with `handler` until the shutdown is triggered.
    fn run<H>(mut self, handler: H) -> Result<(), Error>
    where
        H: http::Handler + Send + Sync + 'static,
    {
        let config = self.config;
        if config.model.listens_per_worker() {
            // Before serving, so that an upgrade can hand every one of them over.
            let more = config.workers.max(1) - 1;
            self.listener
                .open_siblings(more)
                .map_err(Error::io("opening a listener per worker"))?;
        }
        // Removed once the server has stopped, unless a new copy serves it then.
        let socket_file = self.listener.take_socket_file();
        let on_upgrade = self.upgrade.map(|upgradable| {
            let handover =
                Handover::new(&self.listener).with_endpoints(upgradable.metrics, upgradable.redirect);
            let upgrade = Upgrade::new(
                upgradable.relaunch,
                handover,
                Arc::clone(&self.shutdown),
                &self.endpoints,
                config.idle_timeout.min(config.shutdown_timeout),
            );
            OnUpgrade::new(move || upgrade.run())
        });
        let shutdown = Arc::clone(&self.shutdown);
        let context = Context::new(
            handler,
            config.settings_with(&self.shutdown),
            config.workers.max(1),
            config.max_connections,
            self.shutdown,
            config.shutdown_timeout,
            self.observer,
        )
        .with_tls(self.tls)
        .with_proxy_protocol(config.proxy_header_from())
        .with_hangup(self.on_hangup)
        .with_upgrade(on_upgrade)
        .with_trace(Trace::new(config.trace_model));
        // A forking model's parent starts no thread: its serving processes start their own
        // log writers and SIGHUP watchers, and the endpoints beside it run in processes of
        // their own.
        let services = (!config.model.forks()).then(|| context.serving_process(Report::Tell));
        context.shutdown.serving();
        if let Some(ready) = self.ready {
            ready.tell();
        }
        let served = models::run(config.model, self.listener, Arc::new(context));
        drop(self.endpoints);
        drop(services);
        leave_or_remove(socket_file, &shutdown);
        served
    }
}

/// A Unix socket's file is removed at the stop, unless another copy of the server was handed
/// the socket: it serves it now.
fn leave_or_remove(file: Option<SocketFile>, shutdown: &Shutdown) {
    match file {
        Some(file) if shutdown.handed_over() => file.keep(),
        other => drop(other),
    }
}

fn open_site(root: &Path, options: SiteOptions) -> Result<Site, Error> {
    Site::open(root, options).map_err(|source| Error::Root {
        path: root.to_path_buf(),
        source,
    })
}

/// The site alone (told of exchanges itself), or, with `[[hosts]]`, every host's site with
/// `default` for every other host (the dispatcher told of exchanges once, for all).
fn serve_sites(mut default: Site, config: &Config, observer: Option<Arc<Observer>>) -> Result<Served, Error> {
    if config.hosts.is_empty() {
        default.observer = observer;
        return Ok(Served::Site(default));
    }
    let mut sites = Vec::with_capacity(config.hosts.len());
    for host in &config.hosts {
        let site = open_site(&host.root, host.site_options(config))?;
        sites.push((host.names.clone(), site));
    }
    let hosts = Hosts::new(default, sites, observer).map_err(|e| Error::Hosts(e.to_string()))?;
    Ok(Served::Hosts(hosts))
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr, Error> {
    listener
        .local_addr()
        .map_err(Error::io("reading a listening address"))
}

/// `--redirect-http ADDR`: its listener (`handed` over, or bound here), and the handler that
/// sends every request to the same place on `https_listener`, for the names HTTPS serves
/// (`to`, given its port: `None` without HTTPS).
fn redirect_to_https(
    addr: SocketAddr,
    handed: Option<TcpListener>,
    https_listener: &Listener,
    to: impl FnOnce(u16) -> Option<HttpsRedirect>,
) -> Result<(TcpListener, HttpsRedirect), Error> {
    let refused = |reason: &str| Error::Redirect {
        addr,
        source: std::io::Error::other(reason.to_string()),
    };
    let port = https_listener
        .local_addr()
        .map_err(|_| refused("HTTPS must listen on a TCP port"))?
        .port();
    let handler = to(port).ok_or_else(|| refused("it needs --tls-cert or --acme-domain"))?;
    let listener = match handed {
        Some(listener) => listener,
        None => TcpListener::bind(addr).map_err(|source| Error::Redirect { addr, source })?,
    };
    Ok((listener, handler))
}

/// Serves `config.root` on `listener` with `config.model` until `shutdown` is triggered.
pub fn serve(listener: Listener, config: &Config, shutdown: Arc<Shutdown>) -> Result<(), Error> {
    Server::new(listener, config)?.run(shutdown)
}

/// Serves `listener` with `config.model` until `shutdown` is triggered, every request answered
/// by `handler` instead of a folder: the same models, core and connection policy (timeouts,
/// workers, `--max-connections`, TLS and HSTS, automatic HTTPS by TLS-ALPN-01) as [`serve`],
/// for a program that answers on its own terms. The site's own options (`root`, listing,
/// caching, logs, metrics, the redirect listener) do not apply.
pub fn serve_handler<H>(
    listener: Listener,
    config: &Config,
    handler: H,
    shutdown: Arc<Shutdown>,
) -> Result<(), Error>
where
    H: http::Handler + Send + Sync + 'static,
{
    config.model.check_available()?;
    let acme = open_acme(config)?;
    let tls = match &acme {
        Some(acme) => Some(acme_tls(acme, config)?),
        None => load_tls(config)?.map(|(tls, _)| tls),
    };
    let on_hangup = reload_on_hangup(config, tls.clone(), None, acme.clone());
    config.check_drain_delay()?;
    let mut endpoints = Vec::new();
    if let (Some(acme), Some(tls)) = (&acme, &tls) {
        let companion = ordering(acme, tls, config, &shutdown, None)(false);
        endpoints.push(Endpoint::alone(
            companion,
            config.model.forks(),
            listener.as_raw_fd(),
        )?);
    }
    let serving = Serving {
        config,
        listener,
        shutdown,
        tls,
        observer: None,
        on_hangup,
        endpoints,
        ready: None,
        upgrade: None,
    };
    serving.run(handler)
}
