//! Every model serves a handler that is not the site: `bingfa::serve_handler`
//! with `Echo`, a fake handler that names the request it saw. This proves the
//! models are generic over the core's `Handler` and none of them depends on
//! the site (the config's root does not even exist).
//!
//! The models that do not fork run `serve_handler` on a thread of the test
//! process. The forking ones (`Model::forks()`: process, prefork) must not
//! fork inside the multi-threaded test runner, and a fake handler cannot be
//! handed to the `bingfa` binary, so the test binary runs itself as the
//! server: `serve_child` below, alone, with `--test-threads=1`, so that at the
//! fork its process has only the test's thread and libtest's main thread,
//! which only waits to join it and holds no lock.

use std::borrow::Cow;
use std::fs;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::{Builder, JoinHandle};

use bingfa::http::{Body, Handler, Method, Reply, Request, Status};
use bingfa::{Config, Model, Shutdown};
use nix::sys::signal::{SigSet, Signal};

use crate::binary::{self, poll_until};
use crate::support::*;

/// Set (to a model's name) in the environment of the test binary run as a
/// server by `serve_child`.
const CHILD_ENV: &str = "BINGFA_IT_HANDLER_CHILD";

/// The full name of `serve_child`, as `--exact` wants it: its path without
/// the crate's name (`handler::serve_child`).
fn child_test() -> String {
    let module = module_path!().split_once("::").map_or("", |(_, module)| module);
    format!("{module}::serve_child")
}

/// What `serve_child` writes on stderr once it listens, followed by
/// `127.0.0.1:PORT/`. Stderr, not stdout: libtest writes its own banner on
/// stdout first, and `binary::launch` reads only the first stdout line.
const LISTENING: &str = "fake handler listening at http://";

/// The fake handler: `200 text/plain` naming the method and the raw path, for
/// every path but `/missing`, which is a 404. Paths under `/later` it is ready
/// for only every third time it is asked (`Handler::ready`), as a site is
/// while a password hash is checked on another thread.
struct Echo;

static LATER_ASKED: AtomicU32 = AtomicU32::new(0);

impl Handler for Echo {
    fn ready(&self, request: &Request<'_>) -> bool {
        !request.path.starts_with(b"/later") || LATER_ASKED.fetch_add(1, Ordering::Relaxed) % 3 == 2
    }

    fn handle(&self, request: &Request<'_>) -> Reply {
        if request.path == b"/missing" {
            return Reply::error(Status::NotFound);
        }
        let method = match request.method {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
        };
        let body = format!(
            "fake handler saw {method} {}",
            String::from_utf8_lossy(request.path)
        );
        Reply::ok(
            Cow::Borrowed("text/plain"),
            Body::Shared(Arc::from(body.into_bytes())),
        )
    }
}

/// The config both ways of running use: `model` with two workers, and a root
/// that does not exist, which `serve_handler` must never look at.
fn config(model: Model) -> Config {
    let mut config = Config::new("/nonexistent/bingfa-fake-handler-has-no-site");
    config.model = model;
    config.workers = 2;
    config
}

model_tests! {
    fn serves_a_fake_handler(model m) {
        if m.forks() {
            let mut child = Child::start(m);
            exercise(m, child.addr);
            if let Err(e) = child.stop() {
                panic!("[{m}] {e}");
            }
        } else {
            let server = InProcess::start(m);
            exercise(m, server.addr);
            if let Err(e) = server.stop() {
                panic!("[{m}] {e}");
            }
        }
    }
}

/// The checks, over real sockets to the server at `addr`.
fn exercise(model: Model, addr: SocketAddr) {
    // Keep-alive: everything up to the `Connection: close` on one connection.
    let mut c = Client::connect(addr);
    c.send(get_req("/hello"));
    expect_echo(model, &c.read_response(), "GET /hello");
    // A request the handler is not ready for is kept and asked about again,
    // and the one pipelined behind it waits its turn.
    c.send(get_req("/later/1") + &get_req("/after"));
    expect_echo(model, &c.read_response(), "GET /later/1");
    expect_echo(model, &c.read_response(), "GET /after");
    // Likewise over HTTP/2 (prior knowledge), on one connection, where the
    // other stream need not wait.
    let nghttp = Command::new("nghttp")
        .args(["--no-dep", "--timeout=20"])
        .arg(format!("http://{addr}/later/2"))
        .arg(format!("http://{addr}/after"))
        .output()
        .expect("nghttp runs");
    let bodies = String::from_utf8_lossy(&nghttp.stdout);
    for seen in ["GET /later/2", "GET /after"] {
        assert!(
            bodies.contains(&format!("fake handler saw {seen}")),
            "[{model}] over HTTP/2, {seen}: {bodies} {}",
            String::from_utf8_lossy(&nghttp.stderr)
        );
    }
    // The handler sees the path still percent-encoded, without the query.
    c.send(get_req("/a%20b/c.txt?q=1"));
    expect_echo(model, &c.read_response(), "GET /a%20b/c.txt");

    // HEAD: the head of what GET would get, and no body (had one been sent,
    // the next response on the connection would not parse).
    c.send(req("HEAD", "/hello", ""));
    let head = c.read_head_response();
    assert_eq!(head.status, 200, "[{model}] HEAD /hello: {}", head.summary());
    assert_eq!(
        head.header("content-type"),
        Some("text/plain"),
        "[{model}] HEAD /hello"
    );
    assert_eq!(
        head.content_length(),
        Some("fake handler saw HEAD /hello".len() as u64),
        "[{model}] HEAD /hello: {}",
        head.summary()
    );

    // The handler's 404, on a connection that stays open.
    c.send(get_req("/missing"));
    let missing = c.read_response();
    assert_eq!(
        missing.status,
        404,
        "[{model}] GET /missing: {}",
        missing.summary()
    );
    assert_eq!(
        missing.content_length(),
        Some(missing.body.len() as u64),
        "[{model}] GET /missing: {}",
        missing.summary()
    );
    assert!(!missing.body.is_empty(), "[{model}] GET /missing: empty 404 body");
    assert!(
        !missing.has_token("connection", "close"),
        "[{model}] {}",
        missing.summary()
    );

    // A method the handler never sees: the core answers 405 itself, and the
    // connection stays usable.
    c.send(req("POST", "/x", "Content-Length: 3\r\n") + "abc");
    let post = c.read_response();
    assert_eq!(post.status, 405, "[{model}] POST /x: {}", post.summary());
    let allow = post
        .header("allow")
        .unwrap_or_else(|| panic!("[{model}] POST /x: no Allow: {}", post.summary()));
    let mut allowed: Vec<&str> = allow.split(',').map(str::trim).collect();
    allowed.sort_unstable();
    assert_eq!(allowed, ["GET", "HEAD"], "[{model}] POST /x: Allow {allow:?}");
    assert!(
        !post.body_str().contains("fake handler"),
        "[{model}] POST /x reached the handler: {}",
        post.summary()
    );

    c.send(req("GET", "/bye", "Connection: close\r\n"));
    let bye = c.read_response();
    expect_body(model, &bye, "GET /bye");
    assert!(
        bye.has_token("connection", "close"),
        "[{model}] {}",
        bye.summary()
    );
    c.assert_closed();

    // A malformed request line: the core's 400, then it closes.
    let mut c = Client::connect(addr);
    c.send("GET/ HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let bad = c.read_response();
    assert_eq!(
        bad.status,
        400,
        "[{model}] malformed request line: {}",
        bad.summary()
    );
    assert!(
        !bad.body_str().contains("fake handler"),
        "[{model}] a malformed request reached the handler: {}",
        bad.summary()
    );
    assert!(
        bad.has_token("connection", "close"),
        "[{model}] {}",
        bad.summary()
    );
    c.assert_closed();
}

/// A keep-alive 200 from `Echo` for `seen` (`METHOD PATH`).
#[track_caller]
fn expect_echo(model: Model, resp: &Response, seen: &str) {
    expect_body(model, resp, seen);
    assert!(
        !resp.has_token("connection", "close"),
        "[{model}] {seen}: the connection should stay open: {}",
        resp.summary()
    );
}

/// A 200 from `Echo` for `seen`, framed by its Content-Length.
#[track_caller]
fn expect_body(model: Model, resp: &Response, seen: &str) {
    let expected = format!("fake handler saw {seen}");
    assert_eq!(resp.status, 200, "[{model}] {seen}: {}", resp.summary());
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain"),
        "[{model}] {seen}"
    );
    assert_eq!(
        resp.content_length(),
        Some(expected.len() as u64),
        "[{model}] {seen}: {}",
        resp.summary()
    );
    assert_eq!(resp.body_str(), expected, "[{model}] {seen}");
}

// ---------------------------------------------------------------------------
// A model that does not fork: `serve_handler` on a thread
// ---------------------------------------------------------------------------

struct InProcess {
    addr: SocketAddr,
    shutdown: Arc<Shutdown>,
    handle: Option<JoinHandle<Result<(), String>>>,
}

impl InProcess {
    fn start(model: Model) -> InProcess {
        let listener = bingfa::bind("127.0.0.1:0".parse().unwrap())
            .unwrap_or_else(|e| panic!("bingfa::bind(127.0.0.1:0): {e}"));
        let addr = listener.local_addr().expect("local_addr");
        let shutdown = Shutdown::new().expect("Shutdown::new");
        let stop = Arc::clone(&shutdown);
        let config = config(model);
        let handle = Builder::new()
            .name(format!("bingfa-handler-{model}"))
            .spawn(move || bingfa::serve_handler(listener, &config, Echo, stop).map_err(|e| e.to_string()))
            .expect("spawn server thread");
        InProcess {
            addr,
            shutdown,
            handle: Some(handle),
        }
    }

    /// Triggers the shutdown and waits (bounded) for `serve_handler` to
    /// return, which must be `Ok`.
    fn stop(mut self) -> Result<(), String> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<(), String> {
        let Some(handle) = self.handle.take() else {
            return Ok(());
        };
        self.shutdown.trigger();
        if poll_until(SAFETY, || handle.is_finished().then_some(())).is_none() {
            // The thread is left behind; the test fails.
            return Err(format!(
                "serve_handler did not return within {SAFETY:?} of shutdown.trigger()"
            ));
        }
        match handle.join() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("serve_handler returned an error: {e}")),
            Err(_) => Err("the serve_handler thread panicked".to_string()),
        }
    }
}

impl Drop for InProcess {
    /// After a failed check: the server is stopped all the same.
    fn drop(&mut self) {
        if let Err(e) = self.stop_inner() {
            eprintln!("{e}");
        }
    }
}

// ---------------------------------------------------------------------------
// A model that forks: this test binary, running `serve_child` alone
// ---------------------------------------------------------------------------

/// The test binary serving `Echo` in a process of its own (and group: see
/// `binary::launch`). Dropping it kills the whole group.
struct Child {
    addr: SocketAddr,
    process: binary::Bingfa,
}

impl Child {
    fn start(model: Model) -> Child {
        let exe = std::env::current_exe().expect("current_exe");
        let name = child_test();
        let args = binary::args(&[&name, "--exact", "--test-threads=1", "--nocapture"]);
        let mut cmd = Command::new(&exe);
        cmd.args(&args).env(CHILD_ENV, model.name());
        // SAFETY: pthread_sigmask(3) only, which is async-signal-safe. The
        // mask survives exec, so libtest's main thread blocks SIGTERM too:
        // unblocked there, SIGTERM would kill the process instead of waking
        // the signalfd of `Shutdown::on_signals` (which blocks the signals in
        // the calling thread only).
        unsafe {
            cmd.pre_exec(|| shutdown_signals().thread_block().map_err(std::io::Error::from));
        }
        let mut process = match binary::launch(cmd, &args) {
            binary::Started::Serving(process) => process,
            binary::Started::Failed { status, stderr } => {
                panic!("[{model}] {name} exited ({status}) at once; stderr: {stderr:?}")
            }
        };
        // The start line `launch` waited for is libtest's banner; the address
        // follows on stderr. Dropping `process` after a failure kills it.
        let found = poll_until(SAFETY, || {
            if let Some(status) = process.try_exit() {
                return Some(Err(status));
            }
            listening_addr(&process.stderr_now()).map(Ok)
        });
        match found {
            Some(Ok(addr)) => Child { addr, process },
            Some(Err(status)) => panic!(
                "[{model}] {name} exited ({status}) before listening; stderr: {:?}",
                process.stderr_now()
            ),
            None => panic!(
                "[{model}] {name} did not say where it listens within {SAFETY:?}; stderr: {:?}",
                process.stderr_now()
            ),
        }
    }

    /// SIGTERM, then (bounded) exit status 0, no process of its group left
    /// and no panic on its stderr.
    fn stop(&mut self) -> Result<(), String> {
        let result = self
            .process
            .begin_stop(Signal::SIGTERM)
            .and_then(|()| self.process.finish_stop(false));
        // Whatever went wrong, nothing of it is left running.
        self.process.kill_group();
        result.map_err(|e| format!("(pid {}) {e}", self.process.pid))
    }
}

/// The address in a complete `LISTENING` line of `stderr`, if there is one.
fn listening_addr(stderr: &str) -> Option<SocketAddr> {
    let at = stderr.find(LISTENING)?;
    let line = stderr[at..].split_inclusive('\n').next()?;
    line.ends_with('\n').then(|| binary::url_addr(line))
}

/// The signals `Shutdown::on_signals` blocks.
fn shutdown_signals() -> SigSet {
    let mut signals = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        signals.add(signal);
    }
    signals
}

/// The server side of `Child`: without `CHILD_ENV` (every ordinary run) it
/// does nothing. With it, it serves `Echo` with the model it names until
/// SIGTERM, after checking that forking is safe here.
#[test]
fn serve_child() {
    let Some(name) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    // First, before this test starts any thread.
    let shutdown = Shutdown::on_signals().expect("Shutdown::on_signals");
    let model = *Model::ALL
        .iter()
        .find(|m| name == m.name())
        .unwrap_or_else(|| panic!("{CHILD_ENV}={name:?} names no model"));
    // libtest's main thread, waiting to join this one, and this one: no other
    // thread could hold a lock at the fork.
    let threads = fs::read_dir("/proc/self/task")
        .expect("read /proc/self/task")
        .count();
    assert!(
        threads <= 2,
        "{threads} threads before forking; run as `{} --exact --test-threads=1`",
        child_test()
    );
    // The main thread's mask (the thread group leader's status), inherited
    // from `Child::start`: without it SIGTERM would kill the process.
    let status = fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let blocked = status
        .lines()
        .find_map(|line| line.strip_prefix("SigBlk:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .expect("SigBlk in /proc/self/status");
    let sigterm = 1u64 << (Signal::SIGTERM as i32 - 1);
    assert_ne!(blocked & sigterm, 0, "SIGTERM is not blocked in the main thread");

    let listener = bingfa::bind("127.0.0.1:0".parse().unwrap())
        .unwrap_or_else(|e| panic!("bingfa::bind(127.0.0.1:0): {e}"));
    let addr = listener.local_addr().expect("local_addr");
    eprintln!("{LISTENING}{addr}/");
    if let Err(e) = bingfa::serve_handler(listener, &config(model), Echo, shutdown) {
        panic!("[{model}] serve_handler returned an error: {e}");
    }
}
