//! Shared harness: the fixture site, a server (on a thread, or the binary for
//! the forking models), and a raw TCP client that parses responses with
//! httparse.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::symlink;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use bingfa::{Config, Model, Shutdown};
use nix::sys::signal::Signal;

use crate::binary;
// The test PKI's files, and more certificates from its CA (made at test time: pki.rs).
pub use crate::pki::{issue_cert, tls_fixture};

/// Every blocking read and write on a test socket gives up after this long.
/// It is a safety net against hangs, never an assertion about speed.
pub const SAFETY: Duration = Duration::from_secs(10);

/// Content of `outside/secret.txt`, beside (not inside) the served root.
pub const SECRET: &str = "TOP-SECRET-bingfa-content-outside-the-root\n";

/// Size of the generated `big.bin`.
pub const BIG_LEN: usize = 1 << 20;

// ---------------------------------------------------------------------------
// The site
// ---------------------------------------------------------------------------

/// A fresh copy of `tests/fixture/site` in a temporary directory:
///
/// ```text
/// TMP/site/...              the fixture, symlinks preserved
/// TMP/site/big.bin          1 MiB of deterministic bytes
/// TMP/site/escape.txt   ->  ../outside/secret.txt
/// TMP/site/abs          ->  /etc/passwd
/// TMP/outside/secret.txt
/// ```
pub struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    pub fn new() -> Site {
        let dir = tempfile::tempdir().expect("create temp dir");
        let site = dir.path().join("site");
        copy_tree(&fixture_dir(), &site);
        // A checkout without symlink support turns them into small files.
        ensure_symlink("index.html", &site.join("link.html"));
        ensure_symlink("docs", &site.join("docs-link"));
        fs::write(site.join("big.bin"), big_bin()).expect("write big.bin");
        fs::create_dir(dir.path().join("outside")).expect("mkdir outside");
        fs::write(dir.path().join("outside/secret.txt"), SECRET).expect("write secret");
        symlink("../outside/secret.txt", site.join("escape.txt")).expect("symlink escape.txt");
        symlink("/etc/passwd", site.join("abs")).expect("symlink abs");
        Site { dir }
    }

    /// The directory that is served.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("site")
    }

    /// Bytes of a file under the served root (`rel` has no leading slash).
    pub fn read(&self, rel: &str) -> Vec<u8> {
        let path = self.root().join(rel);
        fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// Writes a file under the served root, creating its parent directories.
    pub fn write(&self, rel: &str, content: &[u8]) {
        let path = self.root().join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
        }
        fs::write(&path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()))
    }

    /// Creates a file of `len` zero bytes under the served root without
    /// writing them (a sparse file: `set_len`), for downloads of any size.
    pub fn sparse(&self, rel: &str, len: u64) {
        let path = self.root().join(rel);
        fs::File::create(&path)
            .and_then(|f| f.set_len(len))
            .unwrap_or_else(|e| panic!("create sparse {}: {e}", path.display()))
    }

    /// Sets the modification time of a file under the served root.
    pub fn set_mtime(&self, rel: &str, when: SystemTime) {
        let path = self.root().join(rel);
        fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(when))
            .unwrap_or_else(|e| panic!("set mtime of {}: {e}", path.display()))
    }
}

pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture/site")
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    let entries = fs::read_dir(from).unwrap_or_else(|e| panic!("read_dir {}: {e}", from.display()));
    for entry in entries {
        let entry = entry.expect("dir entry");
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = fs::symlink_metadata(&src).expect("lstat").file_type();
        if kind.is_symlink() {
            symlink(fs::read_link(&src).expect("readlink"), &dst).expect("symlink");
        } else if kind.is_dir() {
            copy_tree(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
        }
    }
}

fn ensure_symlink(target: &str, link: &Path) {
    let is_link = fs::symlink_metadata(link).map(|m| m.file_type().is_symlink());
    if !matches!(is_link, Ok(true)) {
        let _ = fs::remove_file(link);
        symlink(target, link).expect("recreate fixture symlink");
    }
}

/// 1 MiB from a 64-bit LCG (top byte of each step): deterministic and without
/// a short period, so a misplaced or repeated chunk changes the bytes.
pub fn big_bin() -> Vec<u8> {
    pseudo_random(BIG_LEN)
}

/// `len` bytes from the LCG of `big_bin` (which is its first 1 MiB).
pub fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 56) as u8
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

/// A server serving a fresh `Site`, run the way its model allows:
///
/// - `bingfa::serve` on a thread of the test process, for every model that
///   does not fork. Stopping triggers the `Shutdown` and joins the thread,
///   which proves `serve` returns `Ok`.
/// - The built `bingfa` binary as a child process for the models that fork
///   (`Model::forks()`: forking inside the multi-threaded test runner is
///   unsafe). The `Config` becomes command-line flags, the port comes from the
///   start line, and stopping sends SIGTERM and waits (bounded) for exit
///   status 0.
///
/// Clients see no difference: they only use `addr`. With `BINGFA_IT_BINARY`
/// set in the environment, every model runs through the binary (to check
/// that both ways agree).
pub struct TestServer {
    pub addr: SocketAddr,
    pub model: Model,
    /// Where `--metrics` are served, if the config asked for them.
    pub metrics: Option<SocketAddr>,
    /// Where `--redirect-http` listens, if the config asked for it.
    pub redirect: Option<SocketAddr>,
    runner: Runner,
    // Last: the files outlive the server, which `Drop` stops first.
    pub site: Site,
}

enum Runner {
    InProcess {
        shutdown: Arc<Shutdown>,
        handle: Option<JoinHandle<Result<(), String>>>,
    },
    Binary {
        bingfa: binary::Bingfa,
        stopped: bool,
        /// Panics on its stderr do not fail `stop` (see `expect_panics`).
        panics_expected: bool,
    },
}

impl TestServer {
    pub fn start(model: Model) -> TestServer {
        TestServer::start_with(model, |_| {})
    }

    /// Starts with `workers: 2` and `model`, after `adjust` has changed the
    /// config.
    pub fn start_with(model: Model, adjust: impl FnOnce(&mut Config)) -> TestServer {
        TestServer::start_prepared(model, |_| {}, adjust)
    }

    /// Like `start_with`, after `prepare` has changed the site copy (files
    /// that must exist before the server starts, such as an error page).
    pub fn start_prepared(
        model: Model,
        prepare: impl FnOnce(&Site),
        adjust: impl FnOnce(&mut Config),
    ) -> TestServer {
        let site = Site::new();
        prepare(&site);
        let mut config = Config::new(site.root());
        config.model = model;
        config.workers = 2;
        adjust(&mut config);
        let over_tls = serve_over_tls(&mut config);
        let server = if config.model.forks() || std::env::var_os("BINGFA_IT_BINARY").is_some() {
            TestServer::run_binary(&config, site)
        } else {
            TestServer::run_in_process(&config, site)
        };
        if over_tls {
            tls_servers().insert(server.addr);
        }
        server
    }

    /// The built binary serving `config`, as a child process.
    fn run_binary(config: &Config, site: Site) -> TestServer {
        let bingfa = binary::start(&flags(config), None);
        let metrics = config.metrics.map(|_| metrics_addr(&bingfa));
        let redirect = config.redirect_http.map(|_| redirect_addr(&bingfa));
        TestServer {
            addr: bingfa.addr,
            model: config.model,
            metrics,
            redirect,
            runner: Runner::Binary {
                bingfa,
                stopped: false,
                panics_expected: false,
            },
            site,
        }
    }

    /// `bingfa::Server` serving `config` on a thread of the test process.
    fn run_in_process(config: &Config, site: Site) -> TestServer {
        let model = config.model;
        let listener = bingfa::bind("127.0.0.1:0".parse().unwrap())
            .unwrap_or_else(|e| panic!("bingfa::bind(127.0.0.1:0): {e}"));
        let addr = listener.local_addr().expect("local_addr");
        let shutdown = Shutdown::new().expect("Shutdown::new");
        let stop = Arc::clone(&shutdown);
        let server = bingfa::Server::new(listener, config).unwrap_or_else(|e| panic!("Server::new: {e}"));
        let metrics = server.metrics_addr();
        let redirect = server.redirect_addr();
        let handle = thread::Builder::new()
            .name(format!("bingfa-{model}"))
            .spawn(move || server.run(stop).map_err(|e| e.to_string()))
            .expect("spawn server thread");
        TestServer {
            addr,
            model,
            metrics,
            redirect,
            runner: Runner::InProcess {
                shutdown,
                handle: Some(handle),
            },
            site,
        }
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// The server's process, for a model run through the binary.
    pub fn bingfa(&self) -> Option<&binary::Bingfa> {
        match &self.runner {
            Runner::Binary { bingfa, .. } => Some(bingfa),
            Runner::InProcess { .. } => None,
        }
    }

    /// Starts stopping the server without waiting: `shutdown.trigger()`, or
    /// SIGTERM to the binary (once: `stop` then waits without signalling
    /// again, so a draining server is not told twice).
    pub fn begin_stop(&mut self) {
        match &mut self.runner {
            Runner::InProcess { shutdown, .. } => shutdown.trigger(),
            Runner::Binary { bingfa, .. } => {
                if let Err(e) = bingfa.begin_stop(Signal::SIGTERM) {
                    panic!("[{}] (pid {}) {e}", self.model, bingfa.pid);
                }
            }
        }
    }

    /// For a test that makes the server panic on purpose: a panic on the
    /// binary's stderr no longer fails `stop`.
    pub fn expect_panics(&mut self) {
        if let Runner::Binary { panics_expected, .. } = &mut self.runner {
            *panics_expected = true;
        }
    }

    /// Stops the server and asserts it stopped cleanly: `serve` returns
    /// `Ok(())` after `shutdown.trigger()`, or the binary exits with status 0
    /// after SIGTERM and leaves no process of its group behind.
    pub fn stop(mut self) {
        if let Err(e) = self.stop_inner() {
            panic!("{e}");
        }
    }

    fn stop_inner(&mut self) -> Result<(), String> {
        let model = self.model;
        // Before the port is free for another server to take.
        tls_servers().remove(&self.addr);
        match &mut self.runner {
            Runner::InProcess { shutdown, handle } => {
                let Some(handle) = handle.take() else {
                    return Ok(());
                };
                shutdown.trigger();
                let deadline = Instant::now() + SAFETY;
                while !handle.is_finished() {
                    if Instant::now() >= deadline {
                        // The thread is left behind; the test fails.
                        return Err(format!(
                            "[{model}] serve did not return within {SAFETY:?} of shutdown.trigger()"
                        ));
                    }
                    thread::sleep(Duration::from_millis(5));
                }
                match handle.join() {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(format!("[{model}] serve returned an error: {e}")),
                    Err(_) => Err(format!("[{model}] the serve thread panicked")),
                }
            }
            Runner::Binary {
                bingfa,
                stopped,
                panics_expected,
            } => {
                if std::mem::replace(stopped, true) {
                    return Ok(());
                }
                let result = bingfa
                    .begin_stop(Signal::SIGTERM)
                    .and_then(|()| bingfa.finish_stop(*panics_expected));
                // Whatever went wrong, nothing of it is left running.
                bingfa.kill_group();
                result.map_err(|e| format!("[{model}] (pid {}) {e}", bingfa.pid))
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Err(e) = self.stop_inner() {
            if thread::panicking() {
                eprintln!("{e}");
            } else {
                panic!("{e}");
            }
        }
    }
}

/// The command line that makes the binary run `config`. Every field is
/// named, so a new `Config` field does not compile until it is handled here.
pub fn flags(config: &Config) -> Vec<String> {
    let Config {
        root,
        model,
        workers,
        header_timeout,
        idle_timeout,
        send_timeout,
        min_rate,
        shutdown_timeout,
        drain_delay,
        max_connections,
        h2_max_streams,
        hidden,
        listing,
        error_page,
        fallback,
        clean_urls,
        index,
        cache_control,
        immutable_fingerprints,
        nosniff,
        headers,
        header_rules: _,
        cors,
        redirects: _,
        file_cache_valid,
        compress,
        compress_max,
        compress_cache,
        auth: _,
        access_log,
        log_format,
        trace_model,
        metrics,
        tls_cert,
        tls_key,
        sni_certificates,
        hsts,
        redirect_http,
        acme_domains,
        acme_email,
        acme_directory,
        acme_ca_root,
        state_dir,
        acme_renew_before,
        proxy_protocol,
        trusted_proxies,
        // Written as `[[hosts]]` tables with the rules.
        hosts: _,
    } = config;
    let mut flags = vec![
        root.to_str().expect("UTF-8 root").to_string(),
        "-b".into(),
        "127.0.0.1:0".into(),
        "-m".into(),
        model.name().into(),
        "-w".into(),
        workers.to_string(),
        "--header-timeout".into(),
        seconds(*header_timeout),
        "--idle-timeout".into(),
        seconds(*idle_timeout),
        "--send-timeout".into(),
        seconds(*send_timeout),
        "--min-rate".into(),
        min_rate.to_string(),
        "--shutdown-timeout".into(),
        seconds(*shutdown_timeout),
        "--drain-delay".into(),
        seconds(*drain_delay),
        "--max-connections".into(),
        max_connections.to_string(),
        "--h2-max-streams".into(),
        h2_max_streams.to_string(),
        "--file-cache-valid".into(),
        seconds(*file_cache_valid),
        "--log-format".into(),
        log_format.name().into(),
        "--compress-max".into(),
        compress_max.to_string(),
        "--compress-cache".into(),
        compress_cache.to_string(),
        "--index".into(),
        index.join(","),
    ];
    if *compress {
        flags.push("--compress".into());
    }
    if *hidden {
        flags.push("--hidden".into());
    }
    if *listing {
        flags.push("--listing".into());
    }
    if let Some(page) = error_page {
        flags.push("--error-page".into());
        flags.push(page.to_str().expect("UTF-8 error page").to_string());
    }
    if let Some(page) = fallback {
        flags.push("--fallback".into());
        flags.push(page.to_str().expect("UTF-8 fallback").to_string());
    }
    if *clean_urls {
        flags.push("--clean-urls".into());
    }
    if let Some(value) = cache_control {
        flags.push("--cache-control".into());
        flags.push(value.clone());
    }
    if !*nosniff {
        flags.push("--no-nosniff".into());
    }
    for field in headers {
        flags.push(format!("--header={field}"));
    }
    match cors {
        bingfa::server::Cors::Off => {}
        bingfa::server::Cors::AnyOrigin => flags.push("--cors".into()),
        bingfa::server::Cors::Origins(origins) => {
            flags.extend(origins.iter().map(|origin| format!("--cors={}", origin.as_str())))
        }
    }
    if *immutable_fingerprints {
        flags.push("--immutable-fingerprints".into());
    }
    if *trace_model {
        flags.push("--trace-model".into());
    }
    if let Some(path) = access_log {
        flags.push("--access-log".into());
        flags.push(path.to_str().expect("UTF-8 access log path").to_string());
    }
    if let Some(addr) = metrics {
        flags.push("--metrics".into());
        flags.push(addr.to_string());
    }
    if let Some(addr) = redirect_http {
        flags.push("--redirect-http".into());
        flags.push(addr.to_string());
    }
    if let Some(seconds) = hsts {
        flags.push("--hsts".into());
        flags.push(seconds.to_string());
    }
    for (flag, path) in [("--tls-cert", tls_cert), ("--tls-key", tls_key)] {
        if let Some(path) = path {
            flags.push(flag.into());
            flags.push(path.to_str().expect("UTF-8 TLS path").to_string());
        }
    }
    for name in acme_domains {
        flags.push(format!("--acme-domain={name}"));
    }
    if let Some(email) = acme_email {
        flags.push(format!("--acme-email={email}"));
    }
    flags.push(format!("--acme-directory={acme_directory}"));
    for (flag, path) in [("--acme-ca-root", acme_ca_root), ("--state-dir", state_dir)] {
        if let Some(path) = path {
            flags.push(flag.into());
            flags.push(path.to_str().expect("UTF-8 path").to_string());
        }
    }
    if let Some(before) = acme_renew_before {
        flags.push("--acme-renew-before".into());
        flags.push(seconds(*before));
    }
    let rules = bingfa::cli::config::rule_tables(config).expect("rule tables as TOML");
    if !sni_certificates.is_empty() {
        flags.push("--config".into());
        flags.push(tls_tables_file(sni_certificates, &rules));
    } else if !rules.is_empty() {
        flags.push("--config".into());
        flags.push(rule_tables_file(root, &rules));
    }
    if *proxy_protocol {
        flags.push("--proxy-protocol".into());
    }
    let trusted: Vec<String> = trusted_proxies.iter().map(ToString::to_string).collect();
    flags.push(format!("--trusted-proxies={}", trusted.join(",")));
    flags
}

/// A config file holding only `[[tls]]` tables for `certificates` (which the command line
/// has no option for), and `rules` (the rule tables), beside the first certificate, which
/// outlives the test.
fn tls_tables_file(certificates: &[(PathBuf, PathBuf)], rules: &str) -> String {
    let mut text = String::new();
    for (cert, key) in certificates {
        text += &format!("[[tls]]\ncert = {:?}\nkey = {:?}\n", cert, key);
    }
    text += rules;
    let path = certificates[0].0.with_extension("toml");
    fs::write(&path, text).expect("write the [[tls]] config file");
    path.to_str().expect("UTF-8 TLS path").to_string()
}

/// A config file holding only the rule tables `rules` (`[[headers]]`, `[[redirects]]`,
/// `[[auth]]`, `[[hosts]]`: the command line has no option for them), beside the site's
/// root, which outlives the test.
fn rule_tables_file(root: &Path, rules: &str) -> String {
    let path = root.with_extension("rules.toml");
    fs::write(&path, rules).expect("write the rules config file");
    path.to_str().expect("UTF-8 root").to_string()
}

/// The metrics address a running binary announces on stderr (with the real port when it
/// was given port 0): `... metrics at http://ADDR/metrics, ...`.
pub fn metrics_addr(bingfa: &binary::Bingfa) -> SocketAddr {
    announced(bingfa, "metrics at http://", "/metrics")
}

/// The `--redirect-http` address a running binary announces on stderr: `http://ADDR/
/// redirects to https`.
pub fn redirect_addr(bingfa: &binary::Bingfa) -> SocketAddr {
    announced(bingfa, "INFO http://", "/ redirects to https")
}

/// The address between `before` and `after` on a running binary's stderr, once it is there.
fn announced(bingfa: &binary::Bingfa, before: &str, after: &str) -> SocketAddr {
    let found = binary::poll_until(SAFETY, || {
        let stderr = bingfa.stderr_now();
        let at = stderr.find(before)? + before.len();
        let end = at + stderr[at..].find(after)?;
        stderr[at..end].parse().ok()
    });
    found.unwrap_or_else(|| panic!("no {before}ADDR{after} on stderr: {:?}", bingfa.stderr_now()))
}

/// `Duration` as the command line takes it: `60`, `0.3`.
fn seconds(d: Duration) -> String {
    let text = d.as_secs_f64().to_string();
    assert_eq!(
        Duration::from_secs_f64(text.parse().unwrap()),
        d,
        "{d:?} does not round-trip as {text} seconds"
    );
    text
}

// ---------------------------------------------------------------------------
// Models that may be unavailable
// ---------------------------------------------------------------------------

/// Why `model` cannot be tested here, if it cannot: only `uring`, and only
/// when (1) the binary, started with `-m uring`, fails with exactly one
/// stderr line containing "not available here", and (2) io_uring really is
/// unusable here (setting up a ring fails). A uring model that refuses to run
/// where io_uring works is not skipped: its tests run and fail.
///
/// The probe runs once per test process, and starts the binary only where a
/// ring cannot be set up.
pub fn unavailable(model: Model) -> Option<&'static str> {
    static URING: OnceLock<Option<String>> = OnceLock::new();
    if model != Model::Uring {
        return None;
    }
    URING.get_or_init(probe_uring).as_deref()
}

fn probe_uring() -> Option<String> {
    // Where a ring can be set up, nothing is skipped: no need to ask the model.
    let ring = io_uring::IoUring::new(2).map(drop);
    ring.as_ref().err()?;
    let root = fixture_dir();
    let argv = binary::args(&[
        "-b",
        "127.0.0.1:0",
        "-m",
        "uring",
        "-w",
        "1",
        root.to_str().unwrap(),
    ]);
    let (status, stderr) = match binary::spawn(&argv, None) {
        binary::Started::Failed { status, stderr } => (status, stderr),
        binary::Started::Serving(mut bingfa) => {
            // The start line comes before the model runs: it may still fail.
            if let Ok(mut c) = Client::try_connect(bingfa.addr) {
                c.send(req("GET", "/", "Connection: close\r\n"));
                if c.stirred_within(SAFETY) && c.buf.starts_with(b"HTTP/1.1 ") {
                    let _ = bingfa.stop_with(Signal::SIGTERM);
                    return None;
                }
            }
            match bingfa.wait_exit() {
                Some(status) => (status, bingfa.stderr_now()),
                None => return None,
            }
        }
    };
    uring_skip_reason(status, &stderr, ring)
}

/// The skip rule of `unavailable`, given how the binary ended and whether a
/// ring could be set up here.
fn uring_skip_reason(status: ExitStatus, stderr: &str, ring: std::io::Result<()>) -> Option<String> {
    let lines: Vec<&str> = stderr.lines().collect();
    let says_unavailable = !status.success() && lines.len() == 1 && lines[0].contains("not available here");
    match ring {
        // io_uring works here: the model has no reason to refuse.
        Ok(()) => None,
        Err(e) if says_unavailable => Some(format!("{} (io_uring_setup: {e})", lines[0].trim())),
        Err(_) => None,
    }
}

#[test]
fn uring_is_skipped_only_when_io_uring_is_disabled() {
    use std::os::unix::process::ExitStatusExt;
    let (ok, failed) = (ExitStatus::from_raw(0), ExitStatus::from_raw(1 << 8));
    let refusal = "bingfa: the uring model is not available here: io_uring is disabled\n";
    let disabled = || Err(std::io::Error::from_raw_os_error(1)); // EPERM
    let skipped = uring_skip_reason(failed, refusal, disabled());
    assert!(skipped.is_some_and(|why| why.contains("io_uring is disabled")));
    // Not skipped: io_uring works here, whatever the model says.
    assert_eq!(uring_skip_reason(failed, refusal, Ok(())), None);
    // Not skipped: any other way of failing.
    let two_lines = "bingfa: the uring model is not available here\nmore\n";
    assert_eq!(uring_skip_reason(failed, two_lines, disabled()), None);
    assert_eq!(
        uring_skip_reason(failed, "bingfa: cannot listen\n", disabled()),
        None
    );
    assert_eq!(uring_skip_reason(failed, "", disabled()), None);
    assert_eq!(uring_skip_reason(ok, refusal, disabled()), None);
}

/// For `model_tests!`: true (after a note on stderr, which the test harness
/// does not capture) if the test `name` is to be skipped.
pub fn skip(model: Model, name: &str) -> bool {
    match unavailable(model) {
        None => false,
        Some(why) => {
            let _ = writeln!(std::io::stderr(), "note: skipping {name}: {why}");
            true
        }
    }
}

// ---------------------------------------------------------------------------
// The suite over TLS
// ---------------------------------------------------------------------------

/// How a `model_tests!` test reaches its servers: in plaintext, or over TLS (its
/// `MODEL::tls::NAME` run): every `TestServer` it starts serves HTTPS with the test
/// certificate, and every `Client` that connects to one speaks TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Plaintext,
    Tls,
}

/// The tests of `model_tests!` whose TLS run could not mean what their plaintext run means,
/// each with why: `FILE` for a whole file, or `FILE::NAME`. Their `tls` runs return at once
/// after a note.
const NOT_OVER_TLS: &[(&str, &str)] = &[
    (
        "clients",
        "external programs are handed http:// URLs; its HTTPS cases run in every model already",
    ),
    (
        "goaway",
        "raw HTTP/2 frames with prior knowledge: over TLS, ALPN chooses (h2 and clients cover it)",
    ),
    (
        "handler",
        "serves its own handler through bingfa::serve_handler, not a TestServer",
    ),
    (
        "listening::serves_over_a_unix_socket",
        "its own server on a Unix socket, with a raw client",
    ),
    (
        "observe::tls_sessions_are_logged_and_handshakes_counted",
        "sends plain HTTP to a TLS server on purpose, in every model already",
    ),
    (
        "slowloris",
        "its slow clients are raw TCP streams; the TLS case runs in every model already",
    ),
    (
        "tls",
        "every test there serves HTTPS with certificates of its own, in every model already",
    ),
    (
        "upgrade",
        "starts the binary itself, to replace it on disk; the handover does not look at bytes",
    ),
    (
        "timeouts::stalled_tls_handshake_is_closed",
        "sends raw handshake bytes to a TLS server in every model already",
    ),
];

/// The reason `name` (a test's module path and name) is in `NOT_OVER_TLS`, if it is.
fn not_over_tls(name: &str) -> Option<&'static str> {
    NOT_OVER_TLS
        .iter()
        .find(|(entry, _)| entry_names(entry, name))
        .map(|(_, why)| *why)
}

/// Whether the `NOT_OVER_TLS` entry `entry` (`FILE` or `FILE::NAME`) names the test `name`
/// (`CRATE::FILE::MODEL::tls::NAME`).
fn entry_names(entry: &str, name: &str) -> bool {
    let file = name.split("::").nth(1);
    let test = name.rsplit("::").next();
    match entry.split_once("::") {
        Some((entry_file, entry_test)) => file == Some(entry_file) && test == Some(entry_test),
        None => file == Some(entry),
    }
}

thread_local! {
    /// While this thread's test runs over TLS: whether it has started a server yet.
    static OVER_TLS: Cell<Option<bool>> = const { Cell::new(None) };
}

/// For `model_tests!`: begins the test `name` (its module path and name) over `transport`,
/// or returns `None` after a note on stderr (which the test harness does not capture) if it
/// is skipped: its model is unavailable here, or it is in `NOT_OVER_TLS`.
pub fn begin(model: Model, transport: Transport, name: &'static str) -> Option<Run> {
    if skip(model, name) {
        return None;
    }
    if transport == Transport::Tls {
        if let Some(why) = not_over_tls(name) {
            let _ = writeln!(std::io::stderr(), "note: skipping {name}: {why}");
            return None;
        }
        OVER_TLS.set(Some(false));
    }
    Some(Run { name })
}

/// A test begun by `begin`. Over TLS, its end ends the thread's TLS mode, and fails a test
/// that started no `TestServer`: its TLS run would only repeat its plaintext one.
pub struct Run {
    name: &'static str,
}

impl Drop for Run {
    fn drop(&mut self) {
        let started = OVER_TLS.take();
        if started == Some(false) && !thread::panicking() {
            panic!(
                "{} started no TestServer, so its TLS run is its plaintext run again: \
                 list it in NOT_OVER_TLS (tests/it/support.rs)",
                self.name
            );
        }
    }
}

/// While this thread's test runs over TLS: `config` serves HTTPS with the test certificate
/// (unless the test gave one), and true, so that clients speak TLS to the server.
fn serve_over_tls(config: &mut Config) -> bool {
    if OVER_TLS.get().is_none() {
        return false;
    }
    OVER_TLS.set(Some(true));
    if config.tls_cert.is_none() {
        config.tls_cert = Some(tls_fixture("cert.pem"));
        config.tls_key = Some(tls_fixture("key.pem"));
    }
    true
}

/// Whether this thread's test runs over TLS (its `TestServer`s will serve HTTPS): for a
/// test that must give the server certificates of its own then.
pub fn over_tls() -> bool {
    OVER_TLS.get().is_some()
}

/// The addresses of the servers started over TLS: a `Client` connecting to one speaks TLS.
/// Shared by every thread, since a test's clients may connect from threads of their own.
fn tls_servers() -> MutexGuard<'static, BTreeSet<SocketAddr>> {
    static SERVERS: Mutex<BTreeSet<SocketAddr>> = Mutex::new(BTreeSet::new());
    SERVERS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether the server at `addr` was started over TLS: a client of its own (not a `Client`)
/// must then speak TLS to it.
pub fn serves_tls(addr: SocketAddr) -> bool {
    tls_servers().contains(&addr)
}

/// A TLS connection to `addr` as the suite's clients make them (trusting the test CA, for
/// `localhost`), with the safety timeout on reads; the handshake happens at the first read or
/// write.
pub fn tls_stream(
    addr: SocketAddr,
) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("a DNS name");
    let tls = rustls::ClientConnection::new(tls_client_config(), name).map_err(std::io::Error::other)?;
    let socket = TcpStream::connect(addr)?;
    socket.set_read_timeout(Some(SAFETY))?;
    Ok(rustls::StreamOwned::new(tls, socket))
}

/// The suite's TLS client: trusts the test CA and offers ALPN `http/1.1`, as a browser
/// would. One for the process, so its session cache lets later connections resume.
fn tls_client_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    Arc::clone(CONFIG.get_or_init(|| Arc::new(client_config_offering(b"http/1.1"))))
}

/// A TLS client for HTTP/2: trusts the test CA and offers ALPN `h2` alone. One for the
/// process.
pub fn h2_tls_client_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    Arc::clone(CONFIG.get_or_init(|| Arc::new(client_config_offering(b"h2"))))
}

/// A rustls client configuration that trusts the test CA and offers the one protocol `alpn`.
fn client_config_offering(alpn: &[u8]) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let ca = CertificateDer::from_pem_file(tls_fixture("ca.pem")).expect("the test CA");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).expect("the test CA is a CA certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("rustls's default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    config
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Response {
    /// Minor version: 1 for `HTTP/1.1`.
    pub minor: u8,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// First value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    /// Whether a comma-separated header (such as Connection) lists `token`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length").map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("bad Content-Length {v:?}"))
        })
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A one-line summary for assertion messages.
    pub fn summary(&self) -> String {
        let mut body = self.body_str();
        if body.len() > 200 {
            let mut end = 200;
            while !body.is_char_boundary(end) {
                end -= 1;
            }
            body.truncate(end);
            body.push_str("...");
        }
        format!(
            "{} {} {:?} body {:?}",
            self.status, self.reason, self.headers, body
        )
    }
}

/// Asserts a 200 whose body is exactly `expected`, without dumping megabytes.
#[track_caller]
pub fn assert_body(resp: &Response, expected: &[u8]) {
    assert_eq!(resp.status, 200, "expected 200, got {}", resp.summary());
    if resp.body != expected {
        let first_diff = resp.body.iter().zip(expected).position(|(a, b)| a != b);
        panic!(
            "body differs: got {} bytes, expected {}; first differing offset {:?}; got {}",
            resp.body.len(),
            expected.len(),
            first_diff,
            resp.summary()
        );
    }
}

// ---------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------

/// A raw HTTP/1.1 client on one TCP connection, over TLS to a server started over TLS (see
/// `Transport`). Bytes read but not yet parsed stay buffered, so pipelined responses are read
/// one after the other.
pub struct Client {
    wire: Wire,
    buf: Vec<u8>,
}

/// What a `Client` reads and writes: the TCP stream, or TLS over it. (The HTTP/2 tests
/// make theirs with a client offering `h2`.)
pub enum Wire {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Wire {
    /// TLS over `stream` with the TLS client `config` if its server was started over TLS,
    /// else `stream` itself. The handshake happens at the first read or write, so a client
    /// that connects and sends nothing is as silent as in plaintext.
    pub fn over_with(stream: TcpStream, config: Arc<rustls::ClientConfig>) -> std::io::Result<Wire> {
        Wire::over_named(stream, config, "localhost")
    }

    /// As [`Wire::over_with`], for the server `name` (the SNI, and the name the certificate
    /// must have; an IP address sends no SNI).
    pub fn over_named(
        stream: TcpStream,
        config: Arc<rustls::ClientConfig>,
        name: &str,
    ) -> std::io::Result<Wire> {
        if !tls_servers().contains(&stream.peer_addr()?) {
            return Ok(Wire::Tcp(stream));
        }
        let name = rustls::pki_types::ServerName::try_from(name.to_owned()).map_err(std::io::Error::other)?;
        let tls = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
        Ok(Wire::Tls(Box::new(rustls::StreamOwned::new(tls, stream))))
    }

    /// The TCP socket, for its options and addresses.
    pub fn socket(&self) -> &TcpStream {
        match self {
            Wire::Tcp(stream) => stream,
            Wire::Tls(tls) => tls.get_ref(),
        }
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Wire::Tcp(stream) => stream.read(buf),
            Wire::Tls(tls) => match tls.read(buf) {
                // A connection cut by the server (a timeout, the shutdown timeout, a panic)
                // ends without `close_notify`: rustls calls that an unexpected end, where TCP
                // reports an end. The tests mean the same by both.
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(0),
                read => read,
            },
        }
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Wire::Tcp(stream) => stream.write(buf),
            Wire::Tls(tls) => tls.write(buf),
        }
    }

    /// Over TLS: writes out the records rustls still holds.
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Wire::Tcp(stream) => stream.flush(),
            Wire::Tls(tls) => tls.flush(),
        }
    }
}

enum Fill {
    Data,
    Closed,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::try_connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
    }

    pub fn try_connect(addr: SocketAddr) -> std::io::Result<Client> {
        Client::from_stream(TcpStream::connect(addr)?)
    }

    /// Connects, and writes each of `parts` on the bare TCP stream first, a pause between
    /// them (so they reach the server in separate reads): a PROXY protocol header, which
    /// comes before TLS. Then goes on as `connect`; an error if the server has already cut
    /// the connection (a reset leaves the socket without a peer).
    pub fn connect_after(addr: SocketAddr, parts: &[&[u8]]) -> std::io::Result<Client> {
        let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream.set_nodelay(true).expect("TCP_NODELAY");
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                thread::sleep(Duration::from_millis(20));
            }
            // A server that refuses the connection may have closed it already.
            let _ = stream.write_all(part);
        }
        Client::from_stream(stream)
    }

    /// Connects with a receive buffer of about `bytes` (set before the
    /// connection, so the advertised window stays small too): a client
    /// that stops reading soon makes the server's sends block.
    pub fn connect_with_rcvbuf(addr: SocketAddr, bytes: usize) -> Client {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
        socket.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
        socket
            .connect(&addr.into())
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Client::from_stream(socket.into()).expect("set up the client socket")
    }

    /// A client on `stream`: over TLS (for `localhost`) if its server was started over TLS.
    fn from_stream(stream: TcpStream) -> std::io::Result<Client> {
        Client::from_stream_named(stream, "localhost")
    }

    /// Connects as `connect`; over TLS, for the server `name` (its SNI) rather than
    /// `localhost`.
    pub fn connect_named(addr: SocketAddr, name: &str) -> Client {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Client::from_stream_named(stream, name).unwrap_or_else(|e| panic!("connect to {addr} as {name}: {e}"))
    }

    fn from_stream_named(stream: TcpStream, name: &str) -> std::io::Result<Client> {
        stream.set_read_timeout(Some(SAFETY))?;
        stream.set_write_timeout(Some(SAFETY))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            wire: Wire::over_named(stream, tls_client_config(), name)?,
            buf: Vec::new(),
        })
    }

    /// Writes all of `bytes` in one `write_all` (over TLS, and flushes it out).
    /// A server that has already answered and closed makes the write fail
    /// with EPIPE or ECONNRESET (or, over TLS, end the handshake early): that
    /// is ignored, as what it answered is still there to be read.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        let sent = self
            .wire
            .write_all(bytes.as_ref())
            .and_then(|()| self.wire.flush());
        if let Err(e) = sent {
            match e.kind() {
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof => {}
                _ => panic!("write to server: {e}"),
            }
        }
    }

    /// Writes one byte per `write` (over TLS, one record each), pausing between them.
    pub fn send_bytewise(&mut self, bytes: impl AsRef<[u8]>, pause: Duration) {
        for b in bytes.as_ref() {
            self.send([*b]);
            thread::sleep(pause);
        }
    }

    fn fill(&mut self) -> Fill {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match self.wire.read(&mut chunk) {
                Ok(0) => return Fill::Closed,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Fill::Data;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Fill::Closed,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!(
                        "no data from the server within the {SAFETY:?} safety timeout \
                         (buffered: {:?})",
                        String::from_utf8_lossy(&self.buf)
                    )
                }
                Err(e) => panic!("read from server: {e}"),
            }
        }
    }

    /// Reads one response; its body is framed by Content-Length (or, if there
    /// is none, by the close of the connection), none for 1xx, 204 and 304.
    pub fn read_response(&mut self) -> Response {
        self.read_response_inner(false)
    }

    /// Reads the response to a HEAD request: head only, never a body.
    pub fn read_head_response(&mut self) -> Response {
        self.read_response_inner(true)
    }

    fn read_response_inner(&mut self, head: bool) -> Response {
        let (len, mut resp) = loop {
            let parsed = {
                let mut headers = [httparse::EMPTY_HEADER; 256];
                let mut r = httparse::Response::new(&mut headers);
                match r.parse(&self.buf) {
                    Ok(httparse::Status::Complete(len)) => Some((
                        len,
                        Response {
                            minor: r.version.unwrap_or(0),
                            status: r.code.unwrap_or(0),
                            reason: r.reason.unwrap_or("").to_string(),
                            headers: r
                                .headers
                                .iter()
                                .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into()))
                                .collect(),
                            body: Vec::new(),
                        },
                    )),
                    Ok(httparse::Status::Partial) => None,
                    Err(e) => panic!(
                        "malformed response head ({e}): {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ),
                }
            };
            match parsed {
                Some(done) => break done,
                None => {
                    if let Fill::Closed = self.fill() {
                        panic!(
                            "connection closed before a complete response head; got {:?}",
                            String::from_utf8_lossy(&self.buf)
                        );
                    }
                }
            }
        };
        self.buf.drain(..len);
        let bodiless = head || resp.status < 200 || resp.status == 204 || resp.status == 304;
        if bodiless {
            return resp;
        }
        assert!(
            resp.header("transfer-encoding").is_none(),
            "unexpected Transfer-Encoding in a response: {resp:?}"
        );
        match resp.content_length() {
            Some(n) => {
                let n = usize::try_from(n).expect("Content-Length fits usize");
                while self.buf.len() < n {
                    if let Fill::Closed = self.fill() {
                        panic!(
                            "connection closed after {} of {n} body bytes: {}",
                            self.buf.len(),
                            resp.summary()
                        );
                    }
                }
                resp.body = self.buf.drain(..n).collect();
            }
            // RFC 9112 §6.3 (8): no framing, the body runs to the close.
            None => resp.body = self.read_until_close(),
        }
        resp
    }

    /// Everything the server still sends until it closes (EOF or reset).
    pub fn read_until_close(&mut self) -> Vec<u8> {
        while let Fill::Data = self.fill() {}
        std::mem::take(&mut self.buf)
    }

    /// Asserts the server closes the connection without sending anything more
    /// (the read returns 0 or fails with ECONNRESET before the safety timeout).
    #[track_caller]
    pub fn assert_closed(&mut self) {
        let rest = self.read_until_close();
        assert!(
            rest.is_empty(),
            "expected the server to close; it sent {:?}",
            String::from_utf8_lossy(&rest)
        );
    }

    /// The client's end of the connection.
    pub fn local_addr(&self) -> SocketAddr {
        self.wire.socket().local_addr().expect("local_addr")
    }

    /// Reads what the server sends (keeping it buffered) for up to `wait`;
    /// true as soon as the server has closed (EOF or reset), false if it is
    /// still open when `wait` is over.
    pub fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let mut chunk = [0u8; 64 * 1024];
        let closed = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break false;
            }
            self.wire.socket().set_read_timeout(Some(left)).unwrap();
            match self.wire.read(&mut chunk) {
                Ok(0) => break true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break true,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("read from server: {e}"),
            }
        };
        self.wire.socket().set_read_timeout(Some(SAFETY)).unwrap();
        closed
    }

    /// What has been read but not yet taken as a response.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// One `read` of at most `into.len()` bytes, after what is buffered
    /// (served first): `Some(0)` at EOF or reset, `None` if nothing came
    /// within the `SAFETY` timeout.
    pub fn read_some(&mut self, into: &mut [u8]) -> Option<usize> {
        if !self.buf.is_empty() {
            let n = self.buf.len().min(into.len());
            into[..n].copy_from_slice(&self.buf[..n]);
            self.buf.drain(..n);
            return Some(n);
        }
        loop {
            match self.wire.read(into) {
                Ok(n) => return Some(n),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Some(0),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return None,
                Err(e) => panic!("read from server: {e}"),
            }
        }
    }

    /// Reads up to `len` bytes (of a body too large to keep) until the
    /// server closes: how many came (`len` if all did).
    pub fn count_until_close(&mut self, len: u64) -> u64 {
        let mut chunk = vec![0u8; 256 * 1024];
        let mut got = 0u64;
        while got < len {
            match self.read_some(&mut chunk) {
                Some(0) => break,
                Some(n) => got += n as u64,
                None => {
                    panic!("the server neither sent nor closed within {SAFETY:?}, after {got} of {len} bytes")
                }
            }
        }
        got
    }

    /// Reads a response head only (the body, if any, stays to be read with
    /// `read_some`): for bodies too large to hold in memory.
    pub fn read_head_only(&mut self) -> Response {
        self.read_response_inner(true)
    }

    /// Waits up to `wait` for the server to send something or close; true if
    /// it did (what it sent stays buffered for `read_until_close`).
    pub fn stirred_within(&mut self, wait: Duration) -> bool {
        self.wire.socket().set_read_timeout(Some(wait)).unwrap();
        let mut chunk = [0u8; 4096];
        let stirred = loop {
            match self.wire.read(&mut chunk) {
                Ok(0) => break true,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    break true;
                }
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break true,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break false,
                // Not an answer: a thread that just dropped an io_uring sees its next blocking
                // read interrupted once (the ring's teardown runs as task work).
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("read from server: {e}"),
            }
        };
        self.wire.socket().set_read_timeout(Some(SAFETY)).unwrap();
        stirred
    }
}

// ---------------------------------------------------------------------------
// Requests and checks
// ---------------------------------------------------------------------------

/// `GET {target} HTTP/1.1` with a Host header.
pub fn get_req(target: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

/// A request with a Host header and `extra` header lines (each ending in CRLF).
pub fn req(method: &str, target: &str, extra: &str) -> String {
    format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n")
}

/// Sends `raw` on a fresh connection and reads responses until the server
/// closes the connection or sends `Connection: close`. The last request in
/// `raw` must make the server close (`Connection: close`, or an error),
/// otherwise this fails at the safety timeout. A `raw` starting with `HEAD `
/// is read as HEAD responses.
pub fn get(s: &TestServer, raw: impl AsRef<[u8]>) -> Vec<Response> {
    let raw = raw.as_ref();
    let head = raw.starts_with(b"HEAD ");
    let mut c = s.connect();
    c.send(raw);
    let mut out = Vec::new();
    for _ in 0..1000 {
        if c.buf.is_empty() {
            if let Fill::Closed = c.fill() {
                break;
            }
        }
        let resp = c.read_response_inner(head);
        let close = resp.has_token("connection", "close");
        out.push(resp);
        if close {
            break;
        }
    }
    out
}

/// What a check expects of the connection after the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// `Connection: close` in the response, then the server closes.
    Close,
    /// Either way.
    Any,
}

/// Sends `raw` on a fresh connection and checks the first response: its
/// status, and for an error status a Content-Length and a short body. With
/// `After::Close` also `Connection: close` and the close itself.
#[track_caller]
pub fn check(s: &TestServer, raw: impl AsRef<[u8]>, status: u16, after: After) -> Response {
    let raw = raw.as_ref();
    let shown = String::from_utf8_lossy(&raw[..raw.len().min(160)]).into_owned();
    let head = raw.starts_with(b"HEAD ");
    let mut c = s.connect();
    c.send(raw);
    let resp = if head {
        c.read_head_response()
    } else {
        c.read_response()
    };
    assert_eq!(resp.status, status, "request {shown:?}: got {}", resp.summary());
    if status >= 400 {
        assert!(
            resp.header("content-length").is_some(),
            "request {shown:?}: error response without Content-Length: {}",
            resp.summary()
        );
    }
    if status >= 400 && !head {
        assert!(
            !resp.body.is_empty() && resp.body.len() <= 1024,
            "request {shown:?}: error body should be short and non-empty, is {} bytes",
            resp.body.len()
        );
    }
    if after == After::Close {
        assert!(
            resp.has_token("connection", "close"),
            "request {shown:?}: expected Connection: close in {}",
            resp.summary()
        );
        let rest = c.read_until_close();
        assert!(
            rest.is_empty(),
            "request {shown:?}: expected the server to close after the response, it sent {:?}",
            String::from_utf8_lossy(&rest)
        );
    }
    resp
}

/// One row of a table of requests and the status each must get.
pub struct Case {
    pub name: String,
    pub raw: Vec<u8>,
    pub status: u16,
}

pub fn case(name: impl Into<String>, raw: impl AsRef<[u8]>, status: u16) -> Case {
    Case {
        name: name.into(),
        raw: raw.as_ref().to_vec(),
        status,
    }
}

/// Runs `check` (then `extra` on the response) for every case, then fails
/// once listing every case that failed, so one run shows all the deviations
/// of a model.
#[track_caller]
pub fn check_table(s: &TestServer, cases: &[Case], after: After, extra: impl Fn(&Response)) {
    table(
        s.model,
        cases,
        |c| c.name.clone(),
        |c| {
            let resp = check(s, &c.raw, c.status, after);
            extra(&resp);
        },
    );
}

/// The one way tables run: `run` on every row, then a single failure listing
/// every row that panicked (named by `name`), so one run shows all the
/// deviations of a model.
#[track_caller]
pub fn table<T>(model: Model, rows: &[T], name: impl Fn(&T) -> String, run: impl Fn(&T)) {
    let failures: Vec<String> = rows
        .iter()
        .filter_map(|row| {
            panic::catch_unwind(AssertUnwindSafe(|| run(row)))
                .err()
                .map(|e| format!("  {}: {}", name(row), panic_message(&e)))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "[{model}] {} of {} cases failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

/// Sends one request (`req(method, path, extra)`) on a fresh connection and
/// reads its response (as a HEAD response for `HEAD`).
pub fn exchange(s: &TestServer, method: &str, path: &str, extra: &str) -> Response {
    let mut c = s.connect();
    c.send(req(method, path, extra));
    if method == "HEAD" {
        c.read_head_response()
    } else {
        c.read_response()
    }
}

/// The response's `ETag`, asserted to be a strong entity-tag (RFC 9110
/// §8.8.3: `opaque-tag = DQUOTE *etagc DQUOTE`, no `W/`).
#[track_caller]
pub fn strong_etag(resp: &Response) -> String {
    let etag = resp
        .header("etag")
        .unwrap_or_else(|| panic!("no ETag: {}", resp.summary()));
    assert_eq!(resp.header_count("etag"), 1, "{}", resp.summary());
    let inner = etag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or_else(|| panic!("ETag {etag:?} is not a quoted strong entity-tag"));
    assert!(
        inner
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80),
        "ETag {etag:?}: characters outside etagc"
    );
    etag.to_string()
}

/// The modification time tests give files whose `Last-Modified` they
/// compare: 2023-11-14 22:13:20 UTC, long past, so the date is exact and a
/// strong validator (RFC 9110 §8.8.2.2).
pub fn long_ago() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// `long_ago()` in the three HTTP-date formats (RFC 9110 §5.6.7): IMF-fixdate,
/// rfc850-date and asctime-date.
pub const LONG_AGO: [&str; 3] = [
    "Tue, 14 Nov 2023 22:13:20 GMT",
    "Tuesday, 14-Nov-23 22:13:20 GMT",
    "Tue Nov 14 22:13:20 2023",
];

/// `t` as an IMF-fixdate.
pub fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// An HTTP date header of the response, parsed (RFC 9110 §5.6.7).
#[track_caller]
pub fn date_header(resp: &Response, name: &str) -> SystemTime {
    let value = resp
        .header(name)
        .unwrap_or_else(|| panic!("no {name}: {}", resp.summary()));
    assert!(value.ends_with(" GMT"), "{name} {value:?} is not an IMF-fixdate");
    httpdate::parse_http_date(value).unwrap_or_else(|e| panic!("{name} {value:?} is not an HTTP date: {e}"))
}

pub fn panic_message(e: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = e.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = e.downcast_ref::<&str>() {
        s.to_string()
    } else {
        "(non-string panic)".to_string()
    }
}

// ---------------------------------------------------------------------------

/// `model_tests!` takes its modules from `model_list!`, which names the
/// models by hand (a macro cannot iterate `Model::ALL`); this fails if
/// `Model::ALL` changes without that list.
#[test]
fn models_are_the_ten_tested_ones() {
    macro_rules! tested {
        (; $($module:ident $variant:ident),*) => {
            &[$((stringify!($module), Model::$variant)),*]
        };
    }
    let tested: &[(&str, Model)] = model_list!(tested!());
    let models: Vec<Model> = tested.iter().map(|(_, m)| *m).collect();
    assert_eq!(
        models,
        Model::ALL,
        "model_list! in tests/it/main.rs and Model::ALL differ"
    );
    for (module, model) in tested {
        assert_eq!(
            module.trim_start_matches("r#"),
            model.name(),
            "module {module} tests {model}: `cargo test --test it {}::` would not select it",
            model.name()
        );
    }
    assert_eq!(Model::ALL.len(), 10);
    let forking: Vec<Model> = Model::ALL.iter().copied().filter(|m| m.forks()).collect();
    assert_eq!(forking, [Model::Process, Model::Prefork]);
}

/// Every entry of `NOT_OVER_TLS` names tests that exist (as the test binary lists them), so
/// a test renamed or removed does not leave its entry behind.
#[test]
fn not_over_tls_names_tests_that_exist() {
    let exe = std::env::current_exe().expect("the test binary");
    let listed = std::process::Command::new(exe)
        .args(["--list", "--format", "terse"])
        .output()
        .expect("the test binary lists its tests");
    let listed = String::from_utf8(listed.stdout).expect("UTF-8 test names");
    let tls_runs: Vec<String> = listed
        .lines()
        .filter_map(|line| line.strip_suffix(": test"))
        .filter(|name| name.contains("::reactor::tls::"))
        .map(|name| format!("it::{name}"))
        .collect();
    assert!(!tls_runs.is_empty(), "no reactor::tls:: test listed:\n{listed}");
    for (entry, _) in NOT_OVER_TLS {
        assert!(
            tls_runs.iter().any(|name| entry_names(entry, name)),
            "NOT_OVER_TLS lists {entry:?}, which names no test"
        );
    }
    assert!(entry_names(
        "files",
        "it::files::reactor::tls::big_file_is_byte_exact"
    ));
    assert!(entry_names(
        "files::big_file_is_byte_exact",
        "it::files::epoll::tls::big_file_is_byte_exact"
    ));
    assert!(!entry_names(
        "files::big_file",
        "it::files::reactor::tls::big_file_is_byte_exact"
    ));
    assert!(!entry_names(
        "file",
        "it::files::reactor::tls::big_file_is_byte_exact"
    ));
}

#[test]
fn config_defaults() {
    let c = Config::new("/srv/www");
    assert_eq!(c.root, PathBuf::from("/srv/www"));
    assert_eq!(c.model, Model::Reactor);
    assert!(c.workers >= 1);
    assert_eq!(c.header_timeout, Duration::from_secs(10));
    assert_eq!(c.idle_timeout, Duration::from_secs(60));
    assert_eq!(c.send_timeout, Duration::from_secs(60));
    assert_eq!(c.min_rate, 500);
    assert_eq!(c.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(c.drain_delay, Duration::ZERO);
    // From RLIMIT_NOFILE (raised to its maximum), never zero.
    assert!(c.max_connections > 0);
    assert!(!c.hidden);
    assert!(!c.listing);
    assert_eq!(c.error_page, None);
    assert_eq!(c.fallback, None);
    assert!(!c.clean_urls);
    assert_eq!(c.index, ["index.html"]);
    assert_eq!(c.cache_control, None);
    assert!(!c.immutable_fingerprints);
    assert!(!c.compress);
    assert_eq!(c.compress_max, 8 << 20);
    assert_eq!(c.compress_cache, 64 << 20);
}
