//! The certificates an HTTPS server offers: chosen by the name the client asks for (SNI, the
//! `[[tls]]` tables), and read again on SIGHUP, in every model. `openssl s_client` checks
//! which certificate was served by verifying it for a name; a connection that stays open
//! across a reload is a rustls client in this process.

use crate::binary::{self, poll_until, Bingfa};
use crate::clients::{arg, client, Program};
use crate::support::{flags, issue_cert, tls_fixture, tls_stream, TestServer};
use bingfa::{Config, Model};
use nix::sys::signal::Signal;
use rustls::pki_types::CertificateDer;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// How long a reload may take to show, at most: a safety bound, not a timing assertion.
const RELOAD_BOUND: Duration = Duration::from_secs(10);

/// Whether `openssl s_client` connecting to `addr` with SNI `sni` (`None`: none sent)
/// verifies the served certificate, signed by the test CA, for `name` (a DNS name or an IP
/// address); and the served certificate, in PEM.
fn served(openssl: &Program, addr: SocketAddr, sni: Option<&str>, name: &str) -> (bool, String) {
    let ca = tls_fixture("ca.pem");
    let connect = addr.to_string();
    let mut args = vec!["s_client", "-connect", &connect, "-CAfile", arg(&ca)];
    match sni {
        Some(sni) => args.extend(["-servername", sni]),
        None => args.push("-noservername"),
    }
    let check = if name.parse::<std::net::IpAddr>().is_ok() {
        "-verify_ip"
    } else {
        "-verify_hostname"
    };
    args.extend([check, name]);
    let ran = openssl.run_fed(&args, b"");
    let verified = ran.stdout.contains("Verify return code: 0 (ok)");
    let begin = ran.stdout.find("-----BEGIN CERTIFICATE-----");
    let end = ran.stdout.find("-----END CERTIFICATE-----");
    let pem = match (begin, end) {
        (Some(begin), Some(end)) => without_whitespace(&ran.stdout[begin..end]),
        _ => panic!("no certificate in the output of s_client\n{}", ran.output()),
    };
    (verified, pem)
}

/// The first certificate of a PEM file, as `served` shows it.
fn first_certificate(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    let end = text.find("-----END CERTIFICATE-----").unwrap();
    without_whitespace(&text[..end])
}

/// PEM text without its line breaks, which writers place differently.
fn without_whitespace(text: &str) -> String {
    text.split_whitespace().collect()
}

fn with_certificates(config: &mut Config, sni: Vec<(std::path::PathBuf, std::path::PathBuf)>) {
    config.tls_cert = Some(tls_fixture("cert.pem"));
    config.tls_key = Some(tls_fixture("key.pem"));
    config.sni_certificates = sni;
}

fn sni_picks_the_certificate(model: Model, openssl: &Program) {
    let sni = vec![issue_cert(&["example.com", "*.example.org"])];
    let s = TestServer::start_with(model, |config| with_certificates(config, sni));
    let verified = |sni, name| served(openssl, s.addr, sni, name).0;
    assert!(verified(Some("example.com"), "example.com"));
    assert!(verified(Some("a.example.org"), "a.example.org"), "a wildcard");
    // No SNI, or a name no certificate has: the default, the one for localhost and 127.0.0.1.
    assert!(verified(None, "127.0.0.1"));
    assert!(verified(Some("unknown.test"), "localhost"));
    assert!(!verified(Some("unknown.test"), "example.com"));
    s.stop();
}

/// A TLS connection of this process, trusting the test CA, that asks for files on one
/// keep-alive connection.
struct KeptOpen(rustls::StreamOwned<rustls::ClientConnection, TcpStream>);

impl KeptOpen {
    fn connect(addr: SocketAddr) -> KeptOpen {
        KeptOpen(tls_stream(addr).unwrap())
    }

    /// `GET /readme.txt` on the connection: the status line of the answer (its body is read
    /// too, so the next request starts clean).
    fn readme(&mut self) -> String {
        let request = b"GET /readme.txt HTTP/1.1\r\nHost: localhost\r\n\r\n";
        self.0.write_all(request).unwrap();
        let mut answer = Vec::new();
        let mut chunk = [0; 4096];
        let complete = |answer: &[u8]| {
            let head_end = answer.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
            let head = String::from_utf8_lossy(&answer[..head_end]).to_ascii_lowercase();
            let length = head.split("content-length: ").nth(1)?.split("\r\n").next()?;
            (answer.len() >= head_end + length.parse::<usize>().ok()?).then_some(())
        };
        while complete(&answer).is_none() {
            let n = self.0.read(&mut chunk).unwrap();
            assert!(
                n > 0,
                "the connection closed: {}",
                String::from_utf8_lossy(&answer)
            );
            answer.extend_from_slice(&chunk[..n]);
        }
        let text = String::from_utf8_lossy(&answer);
        text.lines().next().unwrap_or_default().to_string()
    }

    fn certificate(&self) -> CertificateDer<'static> {
        self.0.conn.peer_certificates().unwrap()[0].clone().into_owned()
    }
}

/// Sends SIGHUP, then waits until a new connection is served `expected`.
fn reload_until_served(bingfa: &Bingfa, openssl: &Program, expected: &str) {
    bingfa.signal(Signal::SIGHUP);
    let seen = poll_until(RELOAD_BOUND, || {
        let (verified, pem) = served(openssl, bingfa.addr, Some("localhost"), "localhost");
        (verified && pem == expected).then_some(())
    });
    assert!(
        seen.is_some(),
        "the new certificate never showed: {}",
        bingfa.stderr_now()
    );
}

fn sighup_reloads_the_certificates(model: Model, openssl: &Program) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("live.pem"), dir.path().join("live.key"));
    let install = |(from_cert, from_key): (std::path::PathBuf, std::path::PathBuf)| {
        fs::copy(from_cert, &cert).unwrap();
        fs::copy(from_key, &key).unwrap();
    };
    install((tls_fixture("cert.pem"), tls_fixture("key.pem")));
    let site = crate::support::Site::new();
    let mut config = Config::new(site.root());
    config.model = model;
    config.workers = 2;
    config.tls_cert = Some(cert.clone());
    config.tls_key = Some(key.clone());
    // The binary for every model: SIGHUP is the binary's.
    let mut bingfa = binary::start(&flags(&config), None);
    let mut open = KeptOpen::connect(bingfa.addr);
    assert_eq!(open.readme(), "HTTP/1.1 200 OK");
    let first = open.certificate();

    // New handshakes get the new certificate; the open connection goes on.
    install(issue_cert(&["localhost", "127.0.0.1"]));
    reload_until_served(&bingfa, openssl, &first_certificate(&cert));
    assert_eq!(open.readme(), "HTTP/1.1 200 OK", "the open connection");
    assert_eq!(open.certificate(), first);

    // A key that does not load: one error line, and the certificate in use stays.
    let in_use = first_certificate(&cert);
    fs::write(&key, "not a key").unwrap();
    bingfa.signal(Signal::SIGHUP);
    let told = poll_until(RELOAD_BOUND, || {
        let stderr = bingfa.stderr_now();
        stderr.contains("SIGHUP: cannot serve HTTPS").then_some(stderr)
    });
    let stderr = told.unwrap_or_else(|| panic!("no error line: {}", bingfa.stderr_now()));
    assert_eq!(
        stderr.matches("SIGHUP: cannot serve HTTPS").count(),
        1,
        "{stderr}"
    );
    for _ in 0..3 {
        let (verified, pem) = served(openssl, bingfa.addr, Some("localhost"), "localhost");
        assert!(verified && pem == in_use, "the certificate in use changed");
    }
    bingfa.stop_with(Signal::SIGTERM).unwrap();
}

model_tests! {
    fn sni_picks_the_certificate_else_the_default(model m) {
        if let Some(openssl) = client("openssl") {
            sni_picks_the_certificate(m, &openssl);
        }
    }

    fn sighup_reloads_certificates_for_new_connections_only(model m) {
        if let Some(openssl) = client("openssl") {
            sighup_reloads_the_certificates(m, &openssl);
        }
    }
}
