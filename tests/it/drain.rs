//! Graceful stop with responses in flight: `shutdown.trigger()` in the test
//! process, SIGTERM for the binary (`TestServer::begin_stop` hides which).
//! A download under way completes byte-exact, idle connections are closed,
//! new connections are refused, and then the server stops; a download that
//! does not move is cut after `--shutdown-timeout`.
//!
//! With `--drain-delay`, the server first drains softly: it serves on,
//! every response with `Connection: close`, and `/healthz` says 503
//! `draining`; idle keep-alive connections stay open until then; after the
//! delay it stops as above, by itself.
//!
//! (Stopping with nothing in flight is in `lifecycle.rs`.)

use std::net::SocketAddr;
use std::thread::{scope, sleep};
use std::time::Duration;

use crate::binary::poll_until;
use crate::support::*;

/// A download that takes a while: sparse, all zeros.
const GIB: u64 = 1 << 30;
/// Shutdown begins once this much of it has arrived.
const TRIGGER_AFTER: u64 = 4 << 20;
const CHUNK: usize = 256 * 1024;
static ZEROS: [u8; CHUNK] = [0; CHUNK];

/// Bound on waits that may last as long as the rest of the download.
const PATIENCE: Duration = Duration::from_secs(60);

/// Run once shutdown has begun, beside the download: the idle keep-alive
/// connection is closed (with nothing sent), and then a new connection is
/// refused: connecting fails, or the connection is closed unanswered.
fn idle_closed_and_new_refused(mut idle: Client, addr: SocketAddr, model: bingfa::Model) {
    assert!(
        idle.closed_within(PATIENCE),
        "[{model}] an idle keep-alive connection was still open {PATIENCE:?} after shutdown began"
    );
    assert!(
        idle.buffered().is_empty(),
        "[{model}] the idle connection got {:?} at shutdown",
        String::from_utf8_lossy(idle.buffered())
    );
    // Every worker (thread or process) has had time to see the shutdown,
    // not only the one that held the idle connection.
    sleep(Duration::from_millis(200));
    if let Ok(mut late) = Client::try_connect(addr) {
        late.send(req("GET", "/readme.txt", "Connection: close\r\n"));
        assert!(
            late.closed_within(PATIENCE),
            "[{model}] a connection made after shutdown began was neither refused nor closed \
             within {PATIENCE:?}"
        );
        assert!(
            late.buffered().is_empty(),
            "[{model}] a connection made after shutdown began was answered: {:?}",
            String::from_utf8_lossy(&late.buffered()[..late.buffered().len().min(300)])
        );
    }
}

model_tests! {
    fn download_in_flight_completes_after_shutdown(model m) {
        let mut s = TestServer::start_prepared(
            m,
            |site| site.sparse("huge.bin", GIB),
            // Far more than the download needs, even on a loaded machine:
            // this test is about the graceful path, not the forced one.
            |c| c.shutdown_timeout = Duration::from_secs(300),
        );
        let addr = s.addr;
        let mut idle = s.connect();
        idle.send(get_req("/readme.txt"));
        assert_body(&idle.read_response(), &s.site.read("readme.txt"));
        let mut idle = Some(idle);

        let mut dl = s.connect();
        dl.send(get_req("/huge.bin"));
        let resp = dl.read_head_only();
        assert_eq!(resp.status, 200, "{}", resp.summary());
        assert_eq!(resp.content_length(), Some(GIB), "{}", resp.summary());

        scope(|scope| {
            let mut watcher = None;
            let mut buf = vec![0u8; CHUNK];
            let mut got = 0u64;
            while got < GIB {
                let n = match dl.read_some(&mut buf) {
                    Some(0) => panic!(
                        "[{m}] the download was cut after {got} of {GIB} bytes (shutdown began at \
                         {TRIGGER_AFTER})"
                    ),
                    Some(n) => n,
                    None => panic!("[{m}] the download stalled for {SAFETY:?} after {got} bytes"),
                };
                assert!(
                    buf[..n] == ZEROS[..n],
                    "[{m}] non-zero bytes within offsets {got}..{}",
                    got + n as u64
                );
                got += n as u64;
                if watcher.is_none() && got >= TRIGGER_AFTER {
                    s.begin_stop();
                    let idle = idle.take().unwrap();
                    watcher = Some(scope.spawn(move || idle_closed_and_new_refused(idle, addr, m)));
                }
            }
            assert_eq!(got, GIB, "[{m}] more bytes than the Content-Length");
            // Its response complete, the connection is closed, nothing more sent.
            assert!(
                dl.closed_within(PATIENCE),
                "[{m}] the finished download's connection was still open {PATIENCE:?} later"
            );
            assert!(dl.buffered().is_empty(), "[{m}] bytes after the body");
            if let Err(panic) = watcher.expect("shutdown began").join() {
                std::panic::resume_unwind(panic);
            }
        });
        // Then the server stops: serve returns Ok, or the binary exits 0
        // (bounded by SAFETY; not signalled again).
        s.stop();
    }

    // --shutdown-timeout: a download whose client reads nothing is cut, and
    // the server stops anyway (send timeout at its default, 60 s).
    #[tls]
    fn shutdown_timeout_cuts_a_stalled_download(model m) {
        const HUGE: u64 = 64 << 20;
        let mut s = TestServer::start_prepared(
            m,
            |site| site.sparse("huge.bin", HUGE),
            |c| c.shutdown_timeout = Duration::from_secs(1),
        );
        let mut c = Client::connect_with_rcvbuf(s.addr, 4096);
        c.send(req("GET", "/huge.bin", "Connection: close\r\n"));
        let resp = c.read_head_only();
        assert_eq!(resp.status, 200, "{}", resp.summary());
        s.begin_stop();
        // Exits (status 0) or returns Ok, within SAFETY.
        s.stop();
        // What was queued may still arrive, then the end: not the whole file.
        let got = c.count_until_close(HUGE);
        assert!(got < HUGE, "[{m}] all {HUGE} bytes arrived after a forced stop");
    }

    // --drain-delay: after SIGTERM (or the first trigger) the server still
    // serves, new connections and old ones alike, each response closing its
    // connection; /healthz says 503 draining; an idle keep-alive connection
    // stays open through the delay and is closed at its end; then the server
    // stops by itself (exit 0 / serve returns Ok).
    fn drain_delay_serves_on_with_connection_close(model m) {
        let mut s = TestServer::start_with(m, |c| {
            c.drain_delay = DRAIN_DELAY;
            c.metrics = Some("127.0.0.1:0".parse().unwrap());
        });
        let metrics = s.metrics.expect("--metrics is on");
        let readme = s.site.read("readme.txt");
        // 503 starting until the model has the listener, then 200 ok.
        let ready = poll_until(PATIENCE, || (healthz(metrics) == (200, "ok\n".into())).then_some(()));
        assert!(ready.is_some(), "[{m}] /healthz never said 200 ok: {:?}", healthz(metrics));
        let mut before = s.connect();
        before.send(get_req("/readme.txt"));
        let resp = before.read_response();
        assert_body(&resp, &readme);
        assert!(!resp.has_token("connection", "close"), "[{m}] {}", resp.summary());
        let mut idle = s.connect();
        idle.send(get_req("/readme.txt"));
        assert_body(&idle.read_response(), &readme);

        s.begin_stop();
        // The binary reads its signal on its own time: wait (bounded) for it.
        let draining = poll_until(PATIENCE, || {
            (healthz(metrics) == (503, "draining\n".into())).then_some(())
        });
        assert!(draining.is_some(), "[{m}] /healthz never said 503 draining: {:?}", healthz(metrics));

        // The old connection first: in `pool` it holds a worker, which its
        // closing frees for the new one (the idle one holds the other).
        before.send(get_req("/readme.txt"));
        let resp = before.read_response();
        served_and_closed(&resp, "a keep-alive connection from before", m);
        assert_body(&resp, &readme);
        assert!(before.closed_within(PATIENCE), "[{m}] the old connection stayed open");

        let mut late = s.connect();
        late.send(get_req("/readme.txt"));
        let resp = late.read_response();
        served_and_closed(&resp, "a new connection", m);
        assert_body(&resp, &readme);
        assert!(late.closed_within(PATIENCE), "[{m}] the new connection stayed open");

        // Still draining (so the idle one was left alone until now, its
        // requests all answered): at the delay's end it is closed, unanswered.
        assert!(
            idle.closed_within(DRAIN_DELAY + PATIENCE),
            "[{m}] an idle keep-alive connection outlived the drain delay"
        );
        assert!(idle.buffered().is_empty(), "[{m}] the idle connection got {:?}", idle.buffered());
        // The server stops by itself: the port refuses (or closes) new clients.
        let stopped = poll_until(PATIENCE, || match Client::try_connect(s.addr) {
            Err(_) => Some(()),
            Ok(mut c) => {
                c.send(req("GET", "/readme.txt", "Connection: close\r\n"));
                (c.closed_within(PATIENCE) && c.buffered().is_empty()).then_some(())
            }
        });
        assert!(stopped.is_some(), "[{m}] still serving after the drain delay");
        // Exit 0, or serve returned Ok.
        s.stop();
    }
}

/// The drain delay of the tests below: long enough that a loaded machine
/// makes its few requests well within it (each check is a bounded wait, none
/// a measure of time), short enough to wait out.
const DRAIN_DELAY: Duration = Duration::from_secs(5);

/// `GET /healthz` from the metrics endpoint: its status and body.
fn healthz(metrics: SocketAddr) -> (u16, String) {
    let mut c = Client::connect(metrics);
    c.send(req("GET", "/healthz", "Connection: close\r\n"));
    let resp = c.read_response();
    (resp.status, resp.body_str())
}

/// A response that a draining server sent: 200, and the connection closed.
fn served_and_closed(resp: &Response, what: &str, model: bingfa::Model) {
    assert_eq!(resp.status, 200, "[{model}] {what}: {}", resp.summary());
    assert!(
        resp.has_token("connection", "close"),
        "[{model}] {what}: no Connection: close while draining: {}",
        resp.summary()
    );
}

// The drain delay cannot outlast the shutdown timeout: one line, at start.
#[test]
fn drain_delay_longer_than_shutdown_timeout_is_refused() {
    let site = Site::new();
    let root = site.root();
    let root = root.to_str().expect("UTF-8 root");
    let args = [
        "--drain-delay",
        "10",
        "--shutdown-timeout",
        "2.5",
        "-b",
        "127.0.0.1:0",
        root,
    ];
    crate::binary::fails_in_one_line(
        &crate::binary::args(&args),
        "--drain-delay (10s) is longer than --shutdown-timeout (2.5s)",
    );
}
