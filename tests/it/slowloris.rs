//! Slowloris: many connections that each send part of a head and then
//! nothing. With a long header timeout and no minimum rate (so only their
//! number matters), a normal client must still be served.
//!
//! `pool` cannot promise this: a worker is held by a connection for its
//! whole life, so `--workers` slow clients stall it until the header timeout
//! frees them (its header comment and the README say so). Its case in the
//! per-model test asserts nothing; `pool_is_freed_by_the_header_timeout`
//! checks the bound it does promise.
//!
//! In the test process, 1000 slow connections cost 2000 descriptors (both
//! ends; the open-file limit here is far above that) and, for `thread`,
//! 1000 threads; through the binary, `process` forks 1000 children.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bingfa::Model;

use crate::support::*;

const SLOW: usize = 1000;
const PARTIAL_HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n";

/// `n` connections that each send `start` and then nothing.
fn slow_connections(addr: SocketAddr, n: usize, start: &[u8]) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut t = TcpStream::connect(addr).unwrap_or_else(|e| panic!("slow connection {i}: {e}"));
            t.write_all(start)
                .unwrap_or_else(|e| panic!("slow connection {i}: {e}"));
            t
        })
        .collect()
}

/// Whether the server has neither closed nor reset `t` (nothing to read yet).
fn still_open(t: &TcpStream) -> bool {
    t.set_nonblocking(true).unwrap();
    let open = matches!(t.peek(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    t.set_nonblocking(false).unwrap();
    open
}

/// One normal request on a fresh connection: 200 (bounded by the client's
/// read timeout, `SAFETY`).
fn served(s: &TestServer) {
    let resp = check(
        s,
        req("GET", "/readme.txt", "Connection: close\r\n"),
        200,
        After::Close,
    );
    assert_body(&resp, &s.site.read("readme.txt"));
}

model_tests! {
    fn served_beside_1000_slow_connections(model m) {
        if m == Model::Pool {
            // The documented exception (see the top of this file).
            return;
        }
        let s = TestServer::start_with(m, |c| {
            c.header_timeout = Duration::from_secs(30);
            c.min_rate = 0;
        });
        // Declared after `s`, so closed before the server is stopped.
        let slow = slow_connections(s.addr, SLOW, PARTIAL_HEAD);
        // The client connects after all of them: accepted after them too.
        served(&s);
        // And the slow ones were not cut to make room: all still open.
        let cut = slow.iter().filter(|t| !still_open(t)).count();
        assert_eq!(cut, 0, "[{m}] {cut} of {SLOW} slow connections were closed (header timeout 30 s)");
    }

    fn served_over_tls_beside_1000_stalled_handshakes(model m) {
        if m == Model::Pool {
            // The documented exception (see the top of this file).
            return;
        }
        let s = TestServer::start_with(m, |c| {
            c.header_timeout = Duration::from_secs(30);
            c.min_rate = 0;
            c.tls_cert = Some(tls_fixture("cert.pem"));
            c.tls_key = Some(tls_fixture("key.pem"));
        });
        let stalled = slow_connections(s.addr, SLOW, PARTIAL_HELLO);
        let answer = https_get(s.addr, "/readme.txt");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "[{m}] {answer}");
        assert!(answer.ends_with(&String::from_utf8_lossy(&s.site.read("readme.txt")).into_owned()), "[{m}] {answer}");
        let cut = stalled.iter().filter(|t| !still_open(t)).count();
        assert_eq!(cut, 0, "[{m}] {cut} of {SLOW} stalled handshakes were closed (header timeout 30 s)");
    }
}

/// The first bytes of a TLS handshake, then nothing: a handshake record announcing 512 bytes.
const PARTIAL_HELLO: &[u8] = b"\x16\x03\x01\x02\x00\x01\x00";

/// One HTTPS request on a fresh connection, trusting the test CA: its answer, up to the close.
fn https_get(addr: SocketAddr, path: &str) -> String {
    use std::io::Read;
    let mut tls = crate::support::tls_stream(addr).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    // The server closes after its answer (with `close_notify`).
    tls.read_to_end(&mut answer).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// What `pool` does promise: slow clients hold its workers only until the
/// header timeout, after which a normal client is served.
#[test]
fn pool_is_freed_by_the_header_timeout() {
    let s = TestServer::start_with(Model::Pool, |c| {
        c.header_timeout = Duration::from_millis(300);
        c.min_rate = 0;
    });
    // Five times its 2 workers.
    let _slow = slow_connections(s.addr, 10, PARTIAL_HEAD);
    served(&s);
}
