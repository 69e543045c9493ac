//! Clients too slow to be worth a connection: one that stops taking the
//! response (`--send-timeout`), one that sends its request below the
//! minimum data rate (`--min-rate`, after its grace); and the clients that
//! are merely slow, which must be served in full.
//!
//! Every wait is a bounded poll (a safety net); no elapsed time is asserted.

use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::binary::{poll_until, tcp_state};
use crate::support::*;

/// A download far larger than the socket buffers on both ends (the server's
/// send buffer may grow to a few MiB): sparse, all zeros.
const HUGE: u64 = 64 << 20;

/// A client receive buffer this small makes the server's sends block soon.
const SMALL_RCVBUF: usize = 4096;

/// Bound on the polls below: many times any timeout the tests configure.
const PATIENCE: Duration = Duration::from_secs(15);

/// `/proc/net/tcp` state 1.
const ESTABLISHED: u8 = 1;

/// What a connection closed by the server may have received: nothing, or
/// responses that start like `allowed` statuses.
#[track_caller]
fn assert_only(c: &Client, allowed: &[u16]) {
    let got = c.buffered();
    let ok = got.is_empty()
        || allowed
            .iter()
            .any(|status| got.starts_with(format!("HTTP/1.1 {status} ").as_bytes()));
    assert!(
        ok,
        "expected nothing or a response with status in {allowed:?} before the close; got {:?}",
        String::from_utf8_lossy(&got[..got.len().min(300)])
    );
}

/// Sends `bytes` one per `pause` until the server closes the connection
/// (true) or all are sent and it is still open (false).
fn trickle_until_closed(c: &mut Client, bytes: &[u8], pause: Duration) -> bool {
    for b in bytes {
        c.send([*b]);
        if c.closed_within(pause) {
            return true;
        }
    }
    false
}

/// A reader that takes `chunk` bytes every `pause`: slow, but steady.
fn read_steadily(c: &mut Client, len: usize, chunk: usize, pause: Duration) -> Vec<u8> {
    let mut body = Vec::with_capacity(len);
    let mut buf = vec![0u8; chunk];
    while body.len() < len {
        let want = chunk.min(len - body.len());
        match c.read_some(&mut buf[..want]) {
            Some(0) => panic!("the server closed after {} of {len} body bytes", body.len()),
            Some(n) => body.extend_from_slice(&buf[..n]),
            None => panic!(
                "nothing from the server within {SAFETY:?} after {} bytes",
                body.len()
            ),
        }
        sleep(pause);
    }
    body
}

/// A few MiB, more than fits in the socket buffers at once.
const STEADY_LEN: usize = 4 << 20;

fn steady_reader_gets_every_byte(s: &TestServer) {
    let expected = pseudo_random(STEADY_LEN);
    s.site.write("steady.bin", &expected);
    let mut c = Client::connect_with_rcvbuf(s.addr, 16 * 1024);
    c.send(get_req("/steady.bin"));
    let resp = c.read_head_only();
    assert_eq!(resp.status, 200, "{}", resp.summary());
    assert_eq!(
        resp.content_length(),
        Some(STEADY_LEN as u64),
        "{}",
        resp.summary()
    );
    let body = read_steadily(&mut c, STEADY_LEN, 64 * 1024, Duration::from_millis(50));
    if body != expected {
        let first = body.iter().zip(&expected).position(|(a, b)| a != b);
        panic!(
            "[{}] the slowly read body differs, first at offset {first:?}",
            s.model
        );
    }
    // Still a working keep-alive connection.
    c.send(get_req("/readme.txt"));
    assert_body(&c.read_response(), &s.site.read("readme.txt"));
}

model_tests! {
    // --send-timeout: a client that requests a large file and then reads
    // nothing is dropped. Seen from outside: the server's end of the
    // connection leaves ESTABLISHED (closed; what it had queued may still
    // be delivered), and reading then yields less than the file before the
    // end of the stream.
    fn client_that_stops_reading_is_dropped(model m) {
        let s = TestServer::start_prepared(
            m,
            |site| site.sparse("huge.bin", HUGE),
            |c| c.send_timeout = Duration::from_secs(1),
        );
        let mut c = Client::connect_with_rcvbuf(s.addr, SMALL_RCVBUF);
        c.send(req("GET", "/huge.bin", "Connection: close\r\n"));
        let (server_end, client_end) = (s.addr, c.local_addr());
        let dropped = poll_until(PATIENCE, || {
            (tcp_state(server_end, client_end) != Some(ESTABLISHED)).then_some(())
        });
        assert!(
            dropped.is_some(),
            "[{m}] the server still holds a connection whose client has read nothing for \
             {PATIENCE:?} (send timeout 1 s)"
        );
        let resp = c.read_head_only();
        assert_eq!(resp.status, 200, "{}", resp.summary());
        let got = c.count_until_close(HUGE);
        assert!(got < HUGE, "[{m}] all {HUGE} bytes arrived: the stalled client was not dropped");
    }

    // The default send timeout (60 s) does not cut a reader that takes
    // 64 KiB every 50 ms.
    fn slow_steady_reader_gets_every_byte(s) {
        steady_reader_gets_every_byte(&s);
    }

    // Nor does a 2 s send timeout: the download takes longer than that in
    // all (about 3.3 s), but data moves every 50 ms (the timeout is for no
    // progress at all, not for the whole response). Not 1 s: on a loaded
    // machine the reading test thread itself may stall for a second. A server that counts from its own
    // last successful send fails this: the kernel's send buffer (autotuned
    // up to tcp_wmem's maximum, 4 MiB here) takes most of the file at once,
    // and readiness for writing comes back only once much of it has
    // drained, which at this client's pace takes longer than 1 s.
    fn slow_steady_reader_outlasts_a_short_send_timeout(model m) {
        let s = TestServer::start_with(m, |c| c.send_timeout = Duration::from_secs(2));
        steady_reader_gets_every_byte(&s);
    }

    // --min-rate: a head trickled at 10 bytes/s (below 500 bytes/s, long
    // after the grace) is closed, though the header timeout (30 s) is far.
    fn head_below_the_minimum_rate_is_closed(model m) {
        let s = TestServer::start_with(m, |c| {
            c.header_timeout = Duration::from_secs(30);
            c.min_rate = 500;
        });
        let mut c = s.connect();
        // Never a complete head: 150 bytes, ~15 s at one per 100 ms.
        let head = format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-Pad: {}", "a".repeat(150));
        let start = Instant::now();
        let closed = trickle_until_closed(&mut c, &head.as_bytes()[..150], Duration::from_millis(100));
        assert!(
            closed,
            "[{m}] a head trickled at 10 bytes/s for {:?} was still being read (min rate 500)",
            start.elapsed()
        );
        assert_only(&c, &[408]);
    }

    // With --min-rate 0, the same kind of trickle, longer than the grace
    // (~3 s), is served.
    fn trickled_head_is_served_without_a_minimum_rate(model m) {
        let s = TestServer::start_with(m, |c| {
            c.header_timeout = Duration::from_secs(30);
            c.min_rate = 0;
        });
        let mut c = s.connect();
        let head = "GET /readme.txt HTTP/1.1\r\nHost: localhost\r\nX-Pad: 0123456789\r\n\r\n";
        assert!(head.len() >= 60);
        c.send_bytewise(head, Duration::from_millis(50));
        assert_body(&c.read_response(), &s.site.read("readme.txt"));
    }

    // A request body trickled below the rate is closed too.
    fn body_below_the_minimum_rate_is_closed(model m) {
        let s = TestServer::start_with(m, |c| {
            c.header_timeout = Duration::from_secs(30);
            c.min_rate = 500;
        });
        let mut c = s.connect();
        c.send(req("GET", "/readme.txt", "Content-Length: 100000\r\n"));
        let start = Instant::now();
        let closed = trickle_until_closed(&mut c, &[b'x'; 150], Duration::from_millis(100));
        assert!(
            closed,
            "[{m}] a body trickled at 10 bytes/s for {:?} was still being read (min rate 500)",
            start.elapsed()
        );
        // The answer to the GET may have gone out before the body was cut.
        assert_only(&c, &[200, 408]);
    }
}
