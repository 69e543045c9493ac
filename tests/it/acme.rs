//! Automatic HTTPS (issue 20) against pebble, Let's Encrypt's ACME test CA (Debian's `pebble`
//! package), on loopback: the built binary orders from a pebble started per test, whose
//! validator is pointed at the test's ports (`httpPort`, `tlsPort`) and whose DNS is
//! `pebble-challtestsrv`, answering 127.0.0.1 for every name.
//!
//! - HTTP-01 on the `--redirect-http` listener; then every model, started on the same
//!   `--state-dir`, serves the certificate obtained; then, pebble gone, a restart serves the
//!   stored one.
//! - TLS-ALPN-01 (no plaintext listener) in `prefork`, whose workers hear of the certificate
//!   by SIGHUP; renewed early (the hidden `--acme-renew-before`): a new connection sees the
//!   new certificate, while a connection opened before keeps its own and goes on working.
//! - HTTP-01 failing (pebble's validator sent to a closed port): TLS-ALPN-01 is tried next
//!   (in `process`, whose loop runs beside the redirect in a process of its own).
//! - Two instances sharing a state directory: one orders, the other serves what it stored.
//! - The CA unreachable at start, nothing stored: a handshake for the name fails cleanly,
//!   each attempt is one line, the delays grow, and once pebble answers the name is served.
//!
//! Skipped with a note where pebble is not installed, except under `CI=true` (`.ci/run`
//! installs it), where that fails the test.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bingfa::Model;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::binary::{self, poll_until, Bingfa};
use crate::pki::{issue_cert, tls_fixture};
use crate::support::{unavailable, Site, SAFETY};

/// How long an order may take here (pebble validates at once, with PEBBLE_VA_NOSLEEP).
const ORDER_WAIT: Duration = Duration::from_secs(30);

#[test]
fn http01_then_every_model_serves_the_certificate_then_a_restart_serves_it_without_the_ca() {
    let Some(ports) = Ports::new() else { return };
    let pebble = Pebble::start(&ports, ports.redirect, ports.closed, 3600);
    let site = Site::new();
    let state = tempfile::tempdir().unwrap();
    let metrics = free_port();
    let mut args = server_args(&site, &ports, "a.test", &pebble.directory, state.path(), "epoll");
    args.extend(binary::args(&[
        "--redirect-http",
        &format!("127.0.0.1:{}", ports.redirect),
    ]));
    args.extend(binary::args(&["--metrics", &format!("127.0.0.1:{metrics}")]));
    let mut server = binary::start(&args, None);
    let root = pebble.root();
    let obtained = wait_served(&server, ports.https, "a.test", &root);
    assert!(
        server.stderr_now().contains("certificate for a.test obtained"),
        "{}",
        server.stderr_now()
    );
    assert_eq!(
        curl_body(ports.https, "a.test", &root),
        fs::read(site.root().join("readme.txt")).unwrap()
    );
    let scrape = get(&format!("127.0.0.1:{metrics}"), "/metrics");
    let expiry = series(
        &scrape,
        r#"bingfa_certificate_expiry_seconds{model="epoll",name="a.test"}"#,
    );
    assert!(
        expiry > unix_now() + 3000.0,
        "the expiry of a 3600 s certificate: {expiry}"
    );
    let failures = r#"bingfa_certificate_renewal_failures_total{model="epoll",name="a.test"}"#;
    assert_eq!(series(&scrape, failures), 0.0);
    server.stop_with(nix::sys::signal::Signal::SIGTERM).unwrap();

    // Every model serves what is stored, at once (none is due: no order).
    for &model in Model::ALL {
        if unavailable(model).is_some() {
            continue;
        }
        let args = server_args(
            &site,
            &ports,
            "a.test",
            &pebble.directory,
            state.path(),
            model.name(),
        );
        let mut server = binary::start(&args, None);
        let served = served_certificate(ports.https, "a.test", &root);
        assert_eq!(
            served.as_deref(),
            Ok(&obtained[..]),
            "{model:?}: {}",
            server.stderr_now()
        );
        assert!(
            !server.stderr_now().contains("obtained"),
            "{model:?} ordered again"
        );
        server.stop_with(nix::sys::signal::Signal::SIGTERM).unwrap();
    }

    // The CA gone: what is stored is served all the same.
    drop(pebble);
    let args = server_args(
        &site,
        &ports,
        "a.test",
        &format!("https://127.0.0.1:{}/dir", ports.acme),
        state.path(),
        "reactor",
    );
    let server = binary::start(&args, None);
    assert_eq!(
        served_certificate(ports.https, "a.test", &root).as_deref(),
        Ok(&obtained[..])
    );
    assert!(server
        .stderr_now()
        .contains("serving the stored certificates of a.test"));
}

#[test]
fn tls_alpn01_in_prefork_then_an_early_renewal_swaps_without_dropping_a_connection() {
    let Some(ports) = Ports::new() else { return };
    let pebble = Pebble::start(&ports, ports.closed, ports.https, 3600);
    let site = Site::new();
    let state = tempfile::tempdir().unwrap();
    let mut args = server_args(
        &site,
        &ports,
        "b.test",
        &pebble.directory,
        state.path(),
        "prefork",
    );
    // Renewal due 3 s after each certificate was issued.
    args.extend(binary::args(&["-w", "2", "--acme-renew-before", "3597"]));
    let server = binary::start(&args, None);
    let root = pebble.root();
    let first = wait_served(&server, ports.https, "b.test", &root);
    let mut old = TlsConnection::open(ports.https, "b.test", &root);
    assert_eq!(old.certificate(), first);
    assert!(old.get("/readme.txt").starts_with("HTTP/1.1 200"));
    let renewed = poll_until(ORDER_WAIT, || {
        let served = served_certificate(ports.https, "b.test", &root).ok()?;
        (served != first).then_some(served)
    });
    let renewed = renewed.unwrap_or_else(|| panic!("not renewed; stderr: {}", server.stderr_now()));
    assert_ne!(renewed, first);
    let response = old.get("/readme.txt");
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "the old connection: {response:?}"
    );
    assert_eq!(
        old.certificate(),
        first,
        "an open connection keeps its certificate"
    );
    let stderr = server.stderr_now();
    assert!(stderr.matches("obtained").count() >= 2, "{stderr}");
    assert!(
        !stderr.contains("HTTP-01"),
        "no plaintext listener: TLS-ALPN-01 only: {stderr}"
    );
}

#[test]
fn http01_failing_falls_back_to_tls_alpn01() {
    let Some(ports) = Ports::new() else { return };
    // The validator asks HTTP-01 on a port nobody listens on.
    let pebble = Pebble::start(&ports, ports.closed, ports.https, 3600);
    let site = Site::new();
    let state = tempfile::tempdir().unwrap();
    // `process`: the loop runs beside the redirect in a process of its own, and tells the
    // parent (which forks a child per connection) by SIGHUP.
    let mut args = server_args(
        &site,
        &ports,
        "c.test",
        &pebble.directory,
        state.path(),
        "process",
    );
    args.extend(binary::args(&[
        "--redirect-http",
        &format!("127.0.0.1:{}", ports.redirect),
    ]));
    let server = binary::start(&args, None);
    wait_served(&server, ports.https, "c.test", &pebble.root());
    let stderr = server.stderr_now();
    let fell_back = stderr
        .lines()
        .find(|line| line.contains("HTTP-01 order failed"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(fell_back.contains("trying TLS-ALPN-01"), "{fell_back}");
    assert!(
        fell_back.contains("urn:ietf:params:acme:error:"),
        "the CA's problem: {fell_back}"
    );
    assert_eq!(stderr.matches("obtained").count(), 1, "{stderr}");
    assert!(
        stderr.contains("SIGHUP: serving the certificates of c.test"),
        "{stderr}"
    );
}

#[test]
fn the_ca_unreachable_at_start_is_retried_with_backoff_and_served_once_it_answers() {
    let Some(ports) = Ports::new() else { return };
    let site = Site::new();
    let state = tempfile::tempdir().unwrap();
    let directory = format!("https://127.0.0.1:{}/dir", ports.acme);
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut args = server_args(&site, &ports, "d.test", &directory, state.path(), "thread");
    args.extend(binary::args(&["--metrics", &metrics]));
    let server = binary::start(&args, None);
    let attempts = |server: &Bingfa| server.stderr_now().matches("cannot reach the CA").count();
    poll_until(SAFETY, || (attempts(&server) >= 2).then_some(()))
        .unwrap_or_else(|| panic!("no second attempt; stderr: {}", server.stderr_now()));
    let refused = served_certificate(ports.https, "d.test", &tls_fixture("ca.pem"));
    let refused = refused.expect_err("no certificate yet: the handshake fails");
    assert!(refused.contains("AccessDenied"), "an alert: {refused}");
    let scrape = get(&metrics, "/metrics");
    let expiry = r#"bingfa_certificate_expiry_seconds{model="thread",name="d.test"}"#;
    assert_eq!(series(&scrape, expiry), 0.0, "no certificate yet");
    let failures = r#"bingfa_certificate_renewal_failures_total{model="thread",name="d.test"}"#;
    assert!(series(&scrape, failures) >= 2.0, "{scrape}");
    let pebble = Pebble::start(&ports, ports.closed, ports.https, 3600);
    wait_served(&server, ports.https, "d.test", &pebble.root());
    let stderr = server.stderr_now();
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("cannot reach the CA"))
        .collect();
    let delays: Vec<u64> = lines.iter().map(|line| next_attempt_in(line)).collect();
    assert!(
        delays.windows(2).all(|d| d[1] > d[0]),
        "growing delays: {lines:#?}"
    );
    assert!(
        lines.iter().all(|line| line.contains("none to serve yet")),
        "{lines:#?}"
    );
}

#[test]
fn instances_sharing_a_state_dir_order_once() {
    let Some(ports) = Ports::new() else { return };
    let pebble = Pebble::start(&ports, ports.closed, ports.https, 3600);
    let site = Site::new();
    let state = tempfile::tempdir().unwrap();
    let first = server_args(&site, &ports, "e.test", &pebble.directory, state.path(), "epoll");
    let mut second = first.clone();
    let other_port = free_port();
    let at = second.iter().position(|arg| arg == "-b").unwrap() + 1;
    second[at] = format!("127.0.0.1:{other_port}");
    let servers = [binary::start(&first, None), binary::start(&second, None)];
    let root = pebble.root();
    // pebble validates on the first one's port; whichever orders, both serve it.
    let obtained = poll_until(ORDER_WAIT, || {
        served_certificate(ports.https, "e.test", &root).ok()
    })
    .unwrap_or_else(|| {
        panic!(
            "not served: {} / {}",
            servers[0].stderr_now(),
            servers[1].stderr_now()
        )
    });
    let other = wait_served(&servers[1], other_port, "e.test", &root);
    assert_eq!(obtained, other);
    let logs: Vec<String> = servers.iter().map(Bingfa::stderr_now).collect();
    let orders: usize = logs.iter().map(|log| log.matches("obtained").count()).sum();
    assert_eq!(orders, 1, "one order between them: {logs:#?}");
    assert!(
        logs.iter()
            .any(|log| log.contains("another process stored a new one")),
        "{logs:#?}"
    );
}

#[test]
fn what_automatic_https_cannot_use_stops_the_start_in_one_line() {
    let site = Site::new();
    let root = site.root();
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("root.txt");
    fs::write(&not_pem, "not a certificate").unwrap();
    let file_as_state_dir = not_pem.to_str().unwrap();
    let base = [
        root.to_str().unwrap(),
        "-b",
        "127.0.0.1:0",
        "--acme-domain",
        "a.test",
    ];
    let with = |more: &[&str]| binary::args(&[&base[..], more].concat());
    binary::fails_in_one_line(
        &with(&["--state-dir", file_as_state_dir]),
        "automatic HTTPS: cannot use the state directory",
    );
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    binary::fails_in_one_line(
        &with(&["--state-dir", state, "--acme-ca-root", not_pem.to_str().unwrap()]),
        "holds no PEM certificate",
    );
    binary::fails_in_one_line(&with(&["--acme-domain", "*.a.test"]), "wildcard");
}

/// The seconds a failure line names: `..., next attempt in 2s`.
fn next_attempt_in(line: &str) -> u64 {
    let (_, after) = line
        .rsplit_once("next attempt in ")
        .unwrap_or_else(|| panic!("{line}"));
    after
        .trim_end()
        .trim_end_matches('s')
        .parse()
        .unwrap_or_else(|_| panic!("{line}"))
}

// ---------------------------------------------------------------------------
// pebble
// ---------------------------------------------------------------------------

/// The ports of one test, free when chosen: the server's HTTPS and plaintext listeners,
/// pebble's ACME, management and DNS ports, and one left closed (a validator sent there
/// fails).
struct Ports {
    https: u16,
    redirect: u16,
    acme: u16,
    management: u16,
    dns: u16,
    closed: u16,
    roots: Arc<tempfile::TempDir>,
}

impl Ports {
    /// `None` (after a note) where pebble is not installed, but under `CI=true`.
    fn new() -> Option<Ports> {
        if !pebble_installed() {
            return None;
        }
        Some(Ports {
            https: free_port(),
            redirect: free_port(),
            acme: free_port(),
            management: free_port(),
            dns: free_port(),
            closed: free_port(),
            roots: Arc::new(tempfile::tempdir().unwrap()),
        })
    }
}

fn pebble_installed() -> bool {
    let found = ["pebble", "pebble-challtestsrv"].iter().all(|tool| {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
    });
    if found {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("pebble is not installed, and CI=true: .ci/run should have installed it");
    }
    // Straight to stderr: the test harness would capture `eprintln!`.
    let _ = writeln!(std::io::stderr(), "skipped: pebble not installed");
    false
}

/// A free port on 127.0.0.1 now (bound, then released): pebble's configuration names the
/// server's ports before either starts.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

/// pebble and its DNS, killed when dropped.
struct Pebble {
    directory: String,
    management: u16,
    dir: tempfile::TempDir,
    /// Where its root is kept, dropped with the test, not with pebble.
    roots: Arc<tempfile::TempDir>,
    children: Vec<Child>,
}

impl Pebble {
    /// pebble on `ports.acme`, validating HTTP-01 on `http_port` and TLS-ALPN-01 on
    /// `tls_port`, issuing certificates valid for `validity` seconds; its listener's
    /// certificate is signed by the test CA (`--acme-ca-root`).
    fn start(ports: &Ports, http_port: u16, tls_port: u16, validity: u64) -> Pebble {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = issue_cert(&["127.0.0.1", "localhost"]);
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{}", ports.acme),
                "managementListenAddress": format!("127.0.0.1:{}", ports.management),
                "certificate": cert,
                "privateKey": key,
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "certificateValidityPeriod": validity,
            }
        });
        let config_path = dir.path().join("pebble.json");
        fs::write(&config_path, config.to_string()).unwrap();
        let log = |name: &str| Stdio::from(fs::File::create(dir.path().join(name)).unwrap());
        let dns = format!("127.0.0.1:{}", ports.dns);
        let challtestsrv = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-dns01", &dns])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{}", free_port())])
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.err"))
            .spawn()
            .expect("start pebble-challtestsrv");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &dns])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .expect("start pebble");
        let running = Pebble {
            directory: format!("https://127.0.0.1:{}/dir", ports.acme),
            management: ports.management,
            dir,
            roots: Arc::clone(&ports.roots),
            children: vec![challtestsrv, pebble],
        };
        for port in [ports.acme, ports.management] {
            let up = poll_until(SAFETY, || TcpStream::connect(("127.0.0.1", port)).ok());
            assert!(
                up.is_some(),
                "pebble is not listening on {port}: {}",
                running.log()
            );
        }
        running
    }

    /// The root that pebble's certificates chain to (made anew by each pebble), as a file
    /// that outlives pebble.
    fn root(&self) -> PathBuf {
        let url = format!("https://127.0.0.1:{}/roots/0", self.management);
        let path = self.roots.path().join("root.pem");
        let fetched = Command::new("curl")
            .args(["-sSf", "--cacert"])
            .arg(tls_fixture("ca.pem"))
            .arg("-o")
            .arg(&path)
            .arg(&url)
            .status()
            .expect("run curl");
        assert!(fetched.success(), "GET {url}");
        path
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// The server and its clients
// ---------------------------------------------------------------------------

fn server_args(
    site: &Site,
    ports: &Ports,
    name: &str,
    directory: &str,
    state: &Path,
    model: &str,
) -> Vec<String> {
    let root = site.root();
    binary::args(&[
        root.to_str().unwrap(),
        "-m",
        model,
        "-b",
        &format!("127.0.0.1:{}", ports.https),
        "--acme-domain",
        name,
        "--acme-email",
        "ops@example.com",
        "--acme-directory",
        directory,
        "--acme-ca-root",
        tls_fixture("ca.pem").to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ])
}

/// Waits until `name` is served with a certificate that `root` vouches for; returns it.
fn wait_served(server: &Bingfa, port: u16, name: &str, root: &Path) -> Vec<u8> {
    poll_until(ORDER_WAIT, || served_certificate(port, name, root).ok())
        .unwrap_or_else(|| panic!("{name} not served; stderr: {}", server.stderr_now()))
}

fn client_config(root: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(root).unwrap() {
        roots.add(certificate.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// The certificate (DER) served to a client naming `name`, which it trusts by `root`; or
/// why the handshake failed.
fn served_certificate(port: u16, name: &str, root: &Path) -> Result<Vec<u8>, String> {
    let mut connection = TlsConnection::try_open(port, name, root)?;
    connection.finish_handshake()?;
    Ok(connection.certificate())
}

/// A TLS connection to the server trusting `root`, for `name`.
struct TlsConnection(rustls::StreamOwned<rustls::ClientConnection, TcpStream>);

impl TlsConnection {
    fn try_open(port: u16, name: &str, root: &Path) -> Result<TlsConnection, String> {
        let server_name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
        let conn =
            rustls::ClientConnection::new(client_config(root), server_name).map_err(|e| e.to_string())?;
        let socket =
            TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).map_err(|e| e.to_string())?;
        socket.set_read_timeout(Some(SAFETY)).unwrap();
        Ok(TlsConnection(rustls::StreamOwned::new(conn, socket)))
    }

    fn open(port: u16, name: &str, root: &Path) -> TlsConnection {
        let mut connection = TlsConnection::try_open(port, name, root).unwrap();
        connection.finish_handshake().unwrap();
        connection
    }

    fn finish_handshake(&mut self) -> Result<(), String> {
        let rustls::StreamOwned { conn, sock } = &mut self.0;
        while conn.is_handshaking() {
            conn.complete_io(sock).map_err(|e| format!("{e:?}"))?;
        }
        Ok(())
    }

    fn certificate(&self) -> Vec<u8> {
        let certificates = self.0.conn.peer_certificates().expect("a completed handshake");
        certificates[0].to_vec()
    }

    /// GET `path` on this keep-alive connection: the response's head and body.
    fn get(&mut self, path: &str) -> String {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        self.0.write_all(request.as_bytes()).unwrap();
        read_response(&mut self.0)
    }
}

/// One response with a Content-Length, read whole.
fn read_response(from: &mut impl Read) -> String {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if bytes.len() >= end + 4 + length {
                return text;
            }
        }
        let n = from.read(&mut chunk).unwrap();
        assert!(
            n > 0,
            "the connection closed mid-response: {:?}",
            String::from_utf8_lossy(&bytes)
        );
        bytes.extend_from_slice(&chunk[..n]);
    }
}

/// GET `path` from `addr` in plaintext, the whole response.
fn get(addr: &str, path: &str) -> String {
    let mut socket = TcpStream::connect(addr).unwrap();
    socket.set_read_timeout(Some(SAFETY)).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).unwrap();
    response
}

/// The value of a Prometheus series (name and labels exactly as written).
fn series(text: &str, name: &str) -> f64 {
    let line = text
        .lines()
        .find(|line| line.rsplit_once(' ').is_some_and(|(s, _)| s == name))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"));
    line.rsplit_once(' ').unwrap().1.parse().unwrap()
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The body curl gets from `https://NAME:PORT/readme.txt`, trusting `root` alone.
fn curl_body(port: u16, name: &str, root: &Path) -> Vec<u8> {
    let started = Instant::now();
    let output = Command::new("curl")
        .args(["-sSf", "--max-time", "10", "--cacert"])
        .arg(root)
        .arg("--resolve")
        .arg(format!("{name}:{port}:127.0.0.1"))
        .arg(format!("https://{name}:{port}/readme.txt"))
        .output()
        .expect("run curl");
    assert!(
        output.status.success(),
        "curl after {:?}: {}",
        started.elapsed(),
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}
