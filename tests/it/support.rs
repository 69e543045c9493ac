//! Shared harness: the fixture site, a server running on a thread, and a raw
//! TCP client that parses responses with httparse.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::symlink;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bingfa::{Config, Model, Shutdown};

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

    pub fn write(&self, rel: &str, content: &[u8]) {
        let path = self.root().join(rel);
        fs::write(&path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()))
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
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..BIG_LEN)
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

/// `bingfa::serve` on a thread, serving a fresh `Site`. Dropping it triggers
/// the shutdown and joins the thread, which proves `serve` returns.
pub struct TestServer {
    pub addr: SocketAddr,
    pub model: Model,
    pub site: Site,
    shutdown: Arc<Shutdown>,
    handle: Option<JoinHandle<Result<(), String>>>,
}

impl TestServer {
    pub fn start(model: Model) -> TestServer {
        TestServer::start_with(model, |_| {})
    }

    /// Starts with `workers: 2` and `model`, after `adjust` has changed the
    /// config.
    pub fn start_with(model: Model, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let site = Site::new();
        let mut config = Config::new(site.root());
        config.model = model;
        config.workers = 2;
        adjust(&mut config);
        let listener = bingfa::bind("127.0.0.1:0".parse().unwrap())
            .unwrap_or_else(|e| panic!("bingfa::bind(127.0.0.1:0): {e}"));
        let addr = listener.local_addr().expect("local_addr");
        let shutdown = Shutdown::new().expect("Shutdown::new");
        let stop = Arc::clone(&shutdown);
        let handle = thread::Builder::new()
            .name(format!("bingfa-{model}"))
            .spawn(move || bingfa::serve(listener, &config, stop).map_err(|e| e.to_string()))
            .expect("spawn server thread");
        TestServer {
            addr,
            model,
            site,
            shutdown,
            handle: Some(handle),
        }
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Triggers the shutdown and asserts that `serve` returns `Ok(())`.
    pub fn stop(mut self) {
        if let Err(e) = self.stop_inner() {
            panic!("{e}");
        }
    }

    fn stop_inner(&mut self) -> Result<(), String> {
        let Some(handle) = self.handle.take() else {
            return Ok(());
        };
        self.shutdown.trigger();
        let deadline = Instant::now() + SAFETY;
        while !handle.is_finished() {
            if Instant::now() >= deadline {
                // The thread is left behind; the test fails.
                return Err(format!(
                    "[{}] serve did not return within {SAFETY:?} of shutdown.trigger()",
                    self.model
                ));
            }
            thread::sleep(Duration::from_millis(5));
        }
        match handle.join() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("[{}] serve returned an error: {e}", self.model)),
            Err(_) => Err(format!("[{}] the serve thread panicked", self.model)),
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

/// A raw HTTP/1.1 client on one TCP connection. Bytes read but not yet parsed
/// stay buffered, so pipelined responses are read one after the other.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

enum Fill {
    Data,
    Closed,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream.set_read_timeout(Some(SAFETY)).unwrap();
        stream.set_write_timeout(Some(SAFETY)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes all of `bytes` in one `write_all`. A server that has already
    /// answered and closed makes the write fail with EPIPE or ECONNRESET:
    /// that is ignored, as what it answered is still there to be read.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        if let Err(e) = self.stream.write_all(bytes.as_ref()) {
            match e.kind() {
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset => {}
                _ => panic!("write to server: {e}"),
            }
        }
    }

    /// Writes one byte per `write`, pausing between them.
    pub fn send_bytewise(&mut self, bytes: impl AsRef<[u8]>, pause: Duration) {
        for b in bytes.as_ref() {
            self.send([*b]);
            self.stream.flush().unwrap();
            thread::sleep(pause);
        }
    }

    fn fill(&mut self) -> Fill {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
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

    /// Waits up to `wait` for the server to send something or close; true if
    /// it did (what it sent stays buffered for `read_until_close`).
    pub fn stirred_within(&mut self, wait: Duration) -> bool {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut chunk = [0u8; 4096];
        let stirred = match self.stream.read(&mut chunk) {
            Ok(0) => true,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => true,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            Err(e) if e.kind() == ErrorKind::Interrupted => false,
            Err(e) => panic!("read from server: {e}"),
        };
        self.stream.set_read_timeout(Some(SAFETY)).unwrap();
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
    let mut c = s.connect();
    c.send(raw);
    let resp = if raw.starts_with(b"HEAD ") {
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
    pub name: &'static str,
    pub raw: Vec<u8>,
    pub status: u16,
}

pub fn case(name: &'static str, raw: impl AsRef<[u8]>, status: u16) -> Case {
    Case {
        name,
        raw: raw.as_ref().to_vec(),
        status,
    }
}

/// Runs `check` (then `extra` on the response) for every case, then fails
/// once listing every case that failed, so one run shows all the deviations
/// of a model.
#[track_caller]
pub fn check_table(s: &TestServer, cases: &[Case], after: After, extra: impl Fn(&Response)) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            panic::catch_unwind(AssertUnwindSafe(|| {
                let resp = check(s, &c.raw, c.status, after);
                extra(&resp);
            }))
            .err()
            .map(|e| format!("  {}: {}", c.name, panic_message(&e)))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "[{}] {} of {} cases failed:\n{}",
        s.model,
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
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

/// `model_tests!` lists the models by hand; this fails if `Model::ALL` changes.
#[test]
fn models_are_the_three_tested_ones() {
    let all: Vec<Model> = Model::ALL.to_vec();
    assert_eq!(all, vec![Model::Thread, Model::Epoll, Model::Reactor]);
    let names: Vec<String> = all.iter().map(|m| m.to_string()).collect();
    assert_eq!(names, ["thread", "epoll", "reactor"]);
}

#[test]
fn config_defaults() {
    let c = Config::new("/srv/www");
    assert_eq!(c.root, PathBuf::from("/srv/www"));
    assert_eq!(c.model, Model::Reactor);
    assert!(c.workers >= 1);
    assert_eq!(c.header_timeout, Duration::from_secs(10));
    assert_eq!(c.idle_timeout, Duration::from_secs(60));
    assert!(!c.hidden);
}
