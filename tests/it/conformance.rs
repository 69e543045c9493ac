//! HTTP/2 conformance: httpwg's 107 cases of RFC 9113 (h2spec's, rewritten in Rust; `cargo
//! install --locked httpwg-cli`, which `.ci/run` does) against every model, over h2c (prior
//! knowledge on plaintext) and over TLS (ALPN h2). httpwg speaks plaintext only, so over TLS
//! it talks to a forwarder in this process that opens a TLS connection to the server for each
//! of its connections (`TlsForwarder`).
//!
//! Every case must pass but those of `KNOWN_FAILURES`, each failing for a reason named there.
//! Without httpwg the tests pass after a note, except under `CI=true` (see `clients::client`).

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use crate::clients::{client, tail, Program};
use crate::support::*;

// The tests' modules are named after the models (`thread`, `process`, ...): nothing imported
// here may take one of those names.

/// httpwg-cli 0.2.5's case count (`.ci/run` installs that version).
const CASES: usize = 107;

/// The cases that may fail, with why; each must name a case httpwg runs.
const KNOWN_FAILURES: [(&str, &str); 3] = [
    (
        "RFC 9113 :: 4. http frames :: invalid header block fragment",
        "expects COMPRESSION_ERROR for a header block HPACK cannot decode; h2 answers \
         PROTOCOL_ERROR, from inside the crate",
    ),
    (
        "RFC 9113 :: 8. expressing http semantics in http2 :: sends headers frame with pseudo header in trailer",
        "expects a stream error; h2 drops pseudo-header fields in trailers without one",
    ),
    (
        "RFC 9113 :: 8. expressing http semantics in http2 :: sends headers frame with te trailers",
        "expects 200 to a POST; a static server answers 405, as it does over HTTP/1.1",
    ),
];

/// How long httpwg waits for each frame it expects (its default: 250 ms), and for a connection.
/// The server is a debug build sharing two cores with other tests, answering 107 connections
/// opened at once; a case that fails by a timeout (pseudo header in trailer) makes the run
/// last this long.
const FRAME_TIMEOUT_MS: &str = "2000";

/// Pool workers here: httpwg opens a connection per case, all at once, and a pool worker serves
/// one connection at a time, so the pool gets one worker a connection, as the thread model has.
const POOL_WORKERS: usize = 128;

/// How httpwg reaches the server.
#[derive(Clone, Copy, Debug)]
enum Over {
    /// h2c: HTTP/2 from the first byte on plaintext.
    H2c,
    /// ALPN h2 over TLS, through a `TlsForwarder`.
    Tls,
}

/// Runs httpwg against a server of `model` over `over` and checks its verdicts.
fn httpwg_conformance(model: bingfa::Model, over: Over, name: &str) {
    if skip(model, name) {
        return;
    }
    let Some(httpwg) = client("httpwg") else {
        return;
    };
    let s = TestServer::start_with(model, |config| {
        if model == bingfa::Model::Pool {
            config.workers = POOL_WORKERS;
        }
        if let Over::Tls = over {
            config.tls_cert = Some(tls_fixture("cert.pem"));
            config.tls_key = Some(tls_fixture("key.pem"));
        }
    });
    let verdicts = match over {
        Over::H2c => run_httpwg(&httpwg, s.addr),
        Over::Tls => {
            // One for each case, and one for httpwg's first look whether the port listens.
            let forwarder = TlsForwarder::start(s.addr, CASES + 1);
            let verdicts = run_httpwg(&httpwg, forwarder.addr);
            forwarder.assert_every_session_was_h2();
            verdicts
        }
    };
    // Shown with `--nocapture`.
    println!(
        "httpwg, {model} over {over:?}: {}; failed: {:?}",
        verdicts.summary,
        verdicts.failed()
    );
    verdicts.assert_only_known_failures();
}

/// What httpwg said.
struct Verdicts {
    /// Every case it ran, and those that passed, by name.
    ran: BTreeSet<String>,
    passed: BTreeSet<String>,
    /// Its last line but one, after `Passed `: `N/107 tests in ...`.
    summary: String,
    /// Its output, for messages.
    output: String,
}

/// httpwg with `-v` (a line per case started) against `addr`.
fn run_httpwg(httpwg: &Program, addr: SocketAddr) -> Verdicts {
    let addr = addr.to_string();
    let args = [
        "-v",
        "--frame-timeout",
        FRAME_TIMEOUT_MS,
        "--connect-timeout",
        FRAME_TIMEOUT_MS,
        "-a",
        &addr,
    ];
    let ran = httpwg.run(&args);
    // It reports on stderr, in colour.
    let output = without_colours(&ran.stderr);
    let named = |mark: &str| -> BTreeSet<String> {
        output
            .lines()
            .filter_map(|line| line.split_once(mark))
            .map(|(_, name)| name.trim().to_string())
            .collect()
    };
    let summary = output
        .lines()
        .find_map(|line| line.split_once("Passed ").map(|(_, rest)| rest.to_string()))
        .unwrap_or_else(|| panic!("no summary from httpwg (exit {}):\n{}", ran.status, ran.output()));
    Verdicts {
        ran: named("Running test: "),
        passed: named("Test passed: "),
        summary,
        output,
    }
}

impl Verdicts {
    /// The cases run and not passed. A case that panics prints no `Test failed` line, so
    /// these are not read from those lines.
    fn failed(&self) -> Vec<&String> {
        self.ran.difference(&self.passed).collect()
    }

    /// Every case ran, and every one that did not pass is in `KNOWN_FAILURES`.
    fn assert_only_known_failures(&self) {
        assert_eq!(
            self.ran.len(),
            CASES,
            "httpwg ran another number of cases than httpwg-cli 0.2.5's ({})\n{}",
            self.summary,
            tail(&self.output)
        );
        assert!(
            self.summary
                .starts_with(&format!("{}/{CASES} ", self.passed.len())),
            "the summary disagrees with the cases passed ({}): {}",
            self.passed.len(),
            self.summary
        );
        for (known, _) in KNOWN_FAILURES {
            assert!(self.ran.contains(known), "httpwg has no case {known:?}");
        }
        let failed = self.failed();
        let unexpected: Vec<&&String> = failed
            .iter()
            .filter(|name| KNOWN_FAILURES.iter().all(|(known, _)| *known != name.as_str()))
            .collect();
        assert!(
            unexpected.is_empty(),
            "unexpected failures: {unexpected:#?}\nall failures: {failed:#?}\n{}\n{}",
            self.summary,
            tail(&self.output)
        );
    }
}

/// `text` without its ANSI escape sequences (`ESC [ ... letter`).
fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// A TLS-terminating forwarder for httpwg
// ---------------------------------------------------------------------------

/// Listens on a port of 127.0.0.1 and forwards each connection to the server over TLS: a
/// rustls client trusting the test CA and offering ALPN `h2` alone, a thread per connection
/// for what the server sends and one for what httpwg sends.
///
/// httpwg gives the server a frame timeout to answer its preface, and opens its connections
/// all at once: a TLS handshake each, made then, would be counted in that time, a hundred of
/// them at once on a loaded machine. So the sessions are opened beforehand, one after the
/// other, and each connection httpwg makes takes one (or opens one if none is left).
struct TlsForwarder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// The protocols ALPN chose, one entry per session opened.
    chosen: Arc<Mutex<Vec<Option<Vec<u8>>>>>,
    accepting: Option<JoinHandle<()>>,
}

/// A TLS connection to the server, its handshake done.
struct Session {
    tls: rustls::ClientConnection,
    socket: TcpStream,
}

impl TlsForwarder {
    /// Forwards to `server`, with `ready` sessions opened before it accepts.
    fn start(server: SocketAddr, ready: usize) -> TlsForwarder {
        let chosen = Arc::new(Mutex::new(Vec::new()));
        let open = {
            let chosen = Arc::clone(&chosen);
            move || -> io::Result<Session> {
                let session = Session::open(server)?;
                let alpn = session.tls.alpn_protocol().map(<[u8]>::to_vec);
                chosen.lock().unwrap_or_else(PoisonError::into_inner).push(alpn);
                Ok(session)
            }
        };
        let mut sessions: Vec<Session> = (0..ready)
            .map(|_| open().unwrap_or_else(|e| panic!("a TLS session to {server}: {e}")))
            .collect();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the forwarder");
        let addr = listener.local_addr().expect("the forwarder's address");
        let stop = Arc::new(AtomicBool::new(false));
        let accepting = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for plain in listener.incoming() {
                    if stop.load(Relaxed) {
                        break;
                    }
                    let Ok(plain) = plain else { continue };
                    // A connection without a session is closed: httpwg reports its case.
                    let Some(session) = sessions.pop().or_else(|| open().ok()) else {
                        continue;
                    };
                    std::thread::spawn(move || session.forward(plain));
                }
            })
        };
        TlsForwarder {
            addr,
            stop,
            chosen,
            accepting: Some(accepting),
        }
    }

    /// Every session it opened spoke HTTP/2 (ALPN h2).
    #[track_caller]
    fn assert_every_session_was_h2(&self) {
        let chosen = self.chosen.lock().unwrap_or_else(PoisonError::into_inner);
        let not_h2: Vec<_> = chosen
            .iter()
            .filter(|alpn| alpn.as_deref() != Some(b"h2"))
            .collect();
        assert!(
            !chosen.is_empty() && not_h2.is_empty(),
            "{} TLS sessions, these without ALPN h2: {not_h2:?}",
            chosen.len()
        );
    }
}

impl Drop for TlsForwarder {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        // Wakes the accepting thread, which then sees `stop`.
        let _ = TcpStream::connect(self.addr);
        if let Some(accepting) = self.accepting.take() {
            let _ = accepting.join();
        }
    }
}

impl Session {
    fn open(server: SocketAddr) -> io::Result<Session> {
        let mut socket = TcpStream::connect(server)?;
        socket.set_read_timeout(Some(SAFETY))?;
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("a DNS name");
        let mut tls =
            rustls::ClientConnection::new(h2_tls_client_config(), name).map_err(io::Error::other)?;
        while tls.is_handshaking() {
            tls.complete_io(&mut socket)?;
        }
        // Reads wait for the server as long as httpwg's connection lasts.
        socket.set_read_timeout(None)?;
        Ok(Session { tls, socket })
    }

    /// Forwards `plain` to the server until either side closes.
    fn forward(self, plain: TcpStream) {
        let Session { tls, socket } = self;
        let tls = Arc::new(Mutex::new(tls));
        let (Ok(plain_in), Ok(socket_out)) = (plain.try_clone(), socket.try_clone()) else {
            return;
        };
        let upstream = {
            let tls = Arc::clone(&tls);
            std::thread::spawn(move || to_server(plain_in, &tls, socket_out))
        };
        to_client(socket, &tls, plain);
        let _ = upstream.join();
    }
}

/// What httpwg sends, encrypted to the server; at its end, close_notify and a half-close.
/// The only thread that writes to the server's socket, so records go out in order.
fn to_server(mut plain: TcpStream, tls: &Mutex<rustls::ClientConnection>, mut socket: TcpStream) {
    let mut buf = [0; 16 * 1024];
    loop {
        let n = plain.read(&mut buf).unwrap_or(0);
        let records = {
            let mut tls = tls.lock().unwrap_or_else(PoisonError::into_inner);
            if n == 0 {
                tls.send_close_notify();
            } else if tls.writer().write_all(&buf[..n]).is_err() {
                break;
            }
            let mut records = Vec::new();
            while tls.wants_write() {
                if tls.write_tls(&mut records).is_err() {
                    break;
                }
            }
            records
        };
        if socket.write_all(&records).is_err() || n == 0 {
            break;
        }
    }
    let _ = socket.shutdown(Shutdown::Write);
}

/// What the server sends, decrypted to httpwg, until the server closes; then httpwg's
/// connection is closed both ways, which ends `to_server` too.
fn to_client(mut socket: TcpStream, tls: &Mutex<rustls::ClientConnection>, mut plain: TcpStream) {
    let mut buf = [0; 16 * 1024];
    loop {
        let n = socket.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        let (clear, closed) = decrypt(tls, &buf[..n]);
        if plain.write_all(&clear).is_err() || closed {
            break;
        }
    }
    let _ = plain.shutdown(Shutdown::Both);
}

/// The plaintext in `records`, and whether the session is over (close_notify, or an error).
fn decrypt(tls: &Mutex<rustls::ClientConnection>, mut records: &[u8]) -> (Vec<u8>, bool) {
    let mut tls = tls.lock().unwrap_or_else(PoisonError::into_inner);
    let mut clear = Vec::new();
    while !records.is_empty() {
        if tls.read_tls(&mut records).is_err() || tls.process_new_packets().is_err() {
            return (clear, true);
        }
        let mut piece = [0; 16 * 1024];
        loop {
            match tls.reader().read(&mut piece) {
                Ok(0) => return (clear, true),
                Ok(n) => clear.extend_from_slice(&piece[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return (clear, true),
            }
        }
    }
    (clear, false)
}

// ---------------------------------------------------------------------------
// Every model, over h2c and over TLS
// ---------------------------------------------------------------------------

/// Two tests per model of `model_list!`, in a module named after it:
/// `conformance::epoll::httpwg_over_h2c` and `conformance::epoll::httpwg_over_tls`.
macro_rules! conformance_tests {
    (; $($module:ident $variant:ident),*) => {
        $(
            mod $module {
                #[test]
                fn httpwg_over_h2c() {
                    super::httpwg_conformance(
                        bingfa::Model::$variant,
                        super::Over::H2c,
                        concat!(module_path!(), "::httpwg_over_h2c"),
                    );
                }

                #[test]
                fn httpwg_over_tls() {
                    super::httpwg_conformance(
                        bingfa::Model::$variant,
                        super::Over::Tls,
                        concat!(module_path!(), "::httpwg_over_tls"),
                    );
                }
            }
        )*
    };
}

model_list!(conformance_tests!());
