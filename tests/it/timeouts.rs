//! Header and idle timeouts. The server is started with 300 ms timeouts; a
//! test only checks that the server closes the connection at all (the
//! client's 10 s read timeout is a safety net, no elapsed time is asserted).

use std::thread::sleep;
use std::time::Duration;

use crate::support::*;

const SHORT: Duration = Duration::from_millis(300);

fn short_timeouts(m: bingfa::Model) -> TestServer {
    TestServer::start_with(m, |c| {
        c.header_timeout = SHORT;
        c.idle_timeout = SHORT;
    })
}

/// The server closes, having sent nothing or a 408 (RFC 9110 §15.5.9).
#[track_caller]
fn assert_closed_maybe_408(c: &mut Client) {
    let rest = c.read_until_close();
    assert!(
        rest.is_empty() || rest.starts_with(b"HTTP/1.1 408 "),
        "expected a close (or a 408), got {:?}",
        String::from_utf8_lossy(&rest)
    );
}

/// With TLS and the short header timeout: the handshake counts against it from accept.
fn short_timeouts_tls(m: bingfa::Model) -> TestServer {
    TestServer::start_with(m, |c| {
        c.header_timeout = SHORT;
        c.idle_timeout = SHORT;
        c.tls_cert = Some(tls_fixture("cert.pem"));
        c.tls_key = Some(tls_fixture("key.pem"));
    })
}

model_tests! {
    fn stalled_tls_handshake_is_closed(model m) {
        let s = short_timeouts_tls(m);
        // A handshake record announcing 512 bytes, of which one arrives.
        let mut c = s.connect();
        c.send(b"\x16\x03\x01\x02\x00\x01");
        let rest = c.read_until_close();
        assert!(rest.is_empty() || rest[0] == 0x15, "a close, or an alert first: {rest:?}");
        // And a client that connects and sends nothing at all.
        let mut c = s.connect();
        let rest = c.read_until_close();
        assert!(rest.is_empty() || rest[0] == 0x15, "a close, or an alert first: {rest:?}");
    }

    fn partial_head_is_closed(model m) {
        let s = short_timeouts(m);
        let mut c = s.connect();
        c.send("GET /readme.txt HTTP/1.1\r\nHo");
        assert_closed_maybe_408(&mut c);
    }

    fn silent_connection_is_closed(model m) {
        let s = short_timeouts(m);
        let mut c = s.connect();
        assert_closed_maybe_408(&mut c);
    }

    // A client trickling header bytes slower than the header timeout allows
    // does not keep the connection forever (slowloris).
    fn trickled_head_is_closed(model m) {
        let s = short_timeouts(m);
        let mut c = s.connect();
        // One header line every 150 ms, for at most ~9 s: thirty times the
        // 300 ms header timeout (a bound on the loop, not a speed check). The
        // deadline is for the whole head, so the server closes though bytes
        // keep coming.
        let lines = std::iter::once("GET / HTTP/1.1\r\n".to_string())
            .chain((0..59).map(|i| format!("X-{i}: v\r\n")));
        let mut stirred = false;
        for line in lines {
            c.send(line);
            if c.stirred_within(Duration::from_millis(150)) {
                stirred = true;
                break;
            }
        }
        assert!(stirred, "a head trickled for ~9 s was still being read (300 ms header timeout)");
        assert_closed_maybe_408(&mut c);
    }

    fn idle_keep_alive_connection_is_closed(model m) {
        let s = short_timeouts(m);
        let mut c = s.connect();
        c.send(get_req("/readme.txt"));
        let resp = c.read_response();
        assert_body(&resp, &s.site.read("readme.txt"));
        c.assert_closed();
    }

    fn timeouts_do_not_cut_a_prompt_client(model m) {
        let s = short_timeouts(m);
        let mut c = s.connect();
        for _ in 0..3 {
            c.send(get_req("/readme.txt"));
            assert_body(&c.read_response(), &s.site.read("readme.txt"));
        }
        c.send(get_req("/big.bin"));
        assert_body(&c.read_response(), &big_bin());
    }

    fn idle_connection_is_kept_with_default_timeouts(s) {
        let mut c = s.connect();
        sleep(Duration::from_millis(500));
        c.send(get_req("/readme.txt"));
        assert_body(&c.read_response(), &s.site.read("readme.txt"));
        sleep(Duration::from_millis(500));
        c.send(get_req("/style.css"));
        assert_body(&c.read_response(), &s.site.read("style.css"));
    }
}
