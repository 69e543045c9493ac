//! Persistent connections, pipelining, message bodies and request targets.

use std::time::Duration;

use bingfa::{Config, Model};
use nix::sys::signal::Signal;

use crate::binary;
use crate::support::*;

model_tests! {
    // RFC 9112 §9.3: HTTP/1.1 connections persist unless "close" is sent.
    fn keep_alive_by_default(s) {
        let mut c = s.connect();
        c.send(get_req("/readme.txt"));
        let first = c.read_response();
        assert_body(&first, &s.site.read("readme.txt"));
        assert!(!first.has_token("connection", "close"), "{}", first.summary());
        c.send(get_req("/style.css"));
        assert_body(&c.read_response(), &s.site.read("style.css"));
    }

    // RFC 9112 §9.6: the server closes after the response to a request with
    // the "close" option, and should say so.
    fn connection_close_is_honoured(s) {
        let mut c = s.connect();
        c.send(req("GET", "/readme.txt", "Connection: close\r\n"));
        let resp = c.read_response();
        assert_body(&resp, &s.site.read("readme.txt"));
        assert!(resp.has_token("connection", "close"), "{}", resp.summary());
        c.assert_closed();
    }

    // RFC 9112 §9.3: an HTTP/1.0 connection closes unless "keep-alive".
    fn http10_closes_by_default(s) {
        let mut c = s.connect();
        c.send("GET /readme.txt HTTP/1.0\r\n\r\n");
        assert_body(&c.read_response(), &s.site.read("readme.txt"));
        c.assert_closed();
    }

    // RFC 9112 §9.3 and Appendix C.2.2: HTTP/1.0 keep-alive.
    fn http10_keep_alive_is_kept(s) {
        let mut c = s.connect();
        c.send("GET /readme.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let resp = c.read_response();
        assert_body(&resp, &s.site.read("readme.txt"));
        assert!(resp.has_token("connection", "keep-alive"), "{}", resp.summary());
        c.send("GET /data.json HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert_body(&c.read_response(), &s.site.read("data.json"));
        c.send("GET /style.css HTTP/1.0\r\n\r\n");
        assert_body(&c.read_response(), &s.site.read("style.css"));
        c.assert_closed();
    }

    // RFC 9112 §9.3.2: pipelined requests are answered in order.
    #[tls]
    fn pipeline_of_64_in_one_write(s) {
        let files = ["readme.txt", "style.css", "data.json", "app.js"];
        let mut raw = String::new();
        for i in 0..64 {
            raw += &get_req(&format!("/{}", files[i % files.len()]));
        }
        let mut c = s.connect();
        c.send(raw);
        for i in 0..64 {
            let resp = c.read_response();
            let file = files[i % files.len()];
            assert_eq!(resp.status, 200, "response {i}: {}", resp.summary());
            assert_eq!(resp.body, s.site.read(file), "response {i} should be {file}");
        }
        // Still usable afterwards.
        c.send(req("GET", "/logo.svg", "Connection: close\r\n"));
        assert_body(&c.read_response(), &s.site.read("logo.svg"));
        c.assert_closed();
    }

    // RFC 9112 §9.3.2: the responses before the bad request are complete,
    // then the error, then the close.
    #[tls]
    fn pipeline_ending_in_bad_request(s) {
        let mut raw = String::new();
        raw += &get_req("/readme.txt");
        raw += &get_req("/style.css");
        raw += &req("HEAD", "/data.json", "");
        raw += "GET/ HTTP/1.1\r\nHost: localhost\r\n\r\n";
        let mut c = s.connect();
        c.send(raw);
        assert_body(&c.read_response(), &s.site.read("readme.txt"));
        assert_body(&c.read_response(), &s.site.read("style.css"));
        let head = c.read_head_response();
        assert_eq!(head.status, 200, "{}", head.summary());
        let bad = c.read_response();
        assert_eq!(bad.status, 400, "{}", bad.summary());
        assert!(bad.has_token("connection", "close"), "{}", bad.summary());
        c.assert_closed();
    }

    fn request_sent_one_byte_at_a_time(s) {
        let mut c = s.connect();
        c.send_bytewise(
            "GET /readme.txt HTTP/1.1\r\nHost: localhost\r\nUser-Agent: slow\r\n\r\n",
            Duration::from_millis(1),
        );
        assert_body(&c.read_response(), &s.site.read("readme.txt"));
    }

    fn get_helper_reads_until_close(s) {
        let raw = get_req("/readme.txt") + &req("GET", "/app.js", "Connection: close\r\n");
        let resps = get(&s, raw);
        assert_eq!(resps.len(), 2);
        assert_body(&resps[0], &s.site.read("readme.txt"));
        assert_body(&resps[1], &s.site.read("app.js"));
    }

    // RFC 9112 §6: a body the server does not need is still read (and
    // dropped) so that the next request on the connection is found.
    fn content_length_body_is_consumed(s) {
        let raw = req("GET", "/readme.txt", "Content-Length: 5\r\n")
            + "hello"
            + &req("GET", "/style.css", "Connection: close\r\n");
        let resps = get(&s, raw);
        assert_eq!(resps.len(), 2, "{resps:?}");
        assert_body(&resps[0], &s.site.read("readme.txt"));
        assert_body(&resps[1], &s.site.read("style.css"));
    }

    // RFC 9112 §7.1: chunked body with chunk extensions (§7.1.1) and a
    // trailer section (§7.1.2), consumed and dropped.
    fn chunked_body_is_consumed(s) {
        let raw = req("GET", "/readme.txt", "Transfer-Encoding: chunked\r\n")
            + "5;name=value;flag\r\nhello\r\n"
            + "A\r\n0123456789\r\n"
            + "0\r\nX-Trailer: done\r\n\r\n"
            + &req("GET", "/style.css", "Connection: close\r\n");
        let resps = get(&s, raw);
        assert_eq!(resps.len(), 2, "{resps:?}");
        assert_body(&resps[0], &s.site.read("readme.txt"));
        assert_body(&resps[1], &s.site.read("style.css"));
    }

    fn body_split_across_writes(s) {
        let mut c = s.connect();
        c.send(req("GET", "/readme.txt", "Content-Length: 10\r\n") + "abc");
        std::thread::sleep(Duration::from_millis(20));
        c.send("defg");
        std::thread::sleep(Duration::from_millis(20));
        c.send("hij");
        assert_body(&c.read_response(), &s.site.read("readme.txt"));
        c.send(req("GET", "/data.json", "Transfer-Encoding: chunked\r\n") + "3\r\nab");
        std::thread::sleep(Duration::from_millis(20));
        c.send("c\r\n0\r\n");
        std::thread::sleep(Duration::from_millis(20));
        c.send("\r\n");
        assert_body(&c.read_response(), &s.site.read("data.json"));
        c.send(get_req("/app.js"));
        assert_body(&c.read_response(), &s.site.read("app.js"));
    }

    // RFC 9112 §6: body octets are never parsed as a request.
    fn body_that_looks_like_a_request_is_not_answered(s) {
        let smuggled = "GET /docs/guide.html HTTP/1.1\r\nHost: localhost\r\n\r\n";
        let raw = req("GET", "/readme.txt", &format!("Content-Length: {}\r\n", smuggled.len()))
            + smuggled
            + &req("GET", "/app.js", "Connection: close\r\n");
        let resps = get(&s, raw);
        assert_eq!(resps.len(), 2, "the body was answered as a request: {resps:?}");
        assert_body(&resps[0], &s.site.read("readme.txt"));
        assert_body(&resps[1], &s.site.read("app.js"));

        let raw = req("GET", "/readme.txt", "Transfer-Encoding: chunked\r\n")
            + &format!("{:x}\r\n{smuggled}\r\n0\r\n\r\n", smuggled.len())
            + &req("GET", "/app.js", "Connection: close\r\n");
        let resps = get(&s, raw);
        assert_eq!(resps.len(), 2, "the chunked body was answered as a request: {resps:?}");
        assert_body(&resps[0], &s.site.read("readme.txt"));
        assert_body(&resps[1], &s.site.read("app.js"));
    }

    // RFC 9110 §15.5.14: 413 for a body over the limit (1 MiB), then close
    // (the rest of the body is not read).
    #[tls]
    fn content_length_over_limit_is_413(s) {
        check(&s, req("GET", "/", "Content-Length: 1048577\r\n"), 413, After::Close);
        check(&s, req("GET", "/readme.txt", "Content-Length: 5000000000\r\n"), 413, After::Close);
    }

    // RFC 9112 §3.2.2: absolute-form targets.
    fn absolute_form_target(s) {
        let mut c = s.connect();
        c.send("GET http://localhost/readme.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert_body(&c.read_response(), &s.site.read("readme.txt"));
    }

    // RFC 3986 §3.4: the query is not part of the path.
    fn query_is_ignored(s) {
        let mut c = s.connect();
        c.send(get_req("/readme.txt?x=1&y=../../etc"));
        assert_body(&c.read_response(), &s.site.read("readme.txt"));
        c.send(get_req("/?a=b"));
        assert_body(&c.read_response(), &s.site.read("index.html"));
    }

    // RFC 9110 §2.5: a higher minor version of a supported major version is
    // handled as the highest minor version supported.
    fn http_1_2_is_served_as_1_1(s) {
        let mut c = s.connect();
        c.send("GET /readme.txt HTTP/1.2\r\nHost: localhost\r\n\r\n");
        let resp = c.read_response();
        assert_body(&resp, &s.site.read("readme.txt"));
        assert_eq!(resp.minor, 1, "{}", resp.summary());
    }
}

/// Idle connections that send a request at the same moment, more of them than `uring` has
/// provided buffers (128 per ring, `engine/ring.rs`).
const AT_ONCE: usize = 300;

/// `uring` receives into buffers the kernel picks from the ring's provided buffers when data
/// comes. When more requests arrive in one turn of its loop than there are buffers, the
/// receives left without one fail (`ENOBUFS`) and are made again: every request is
/// answered. The server is stopped (SIGSTOP) while `AT_ONCE` idle connections each send a
/// request, so that all of them are there when it goes on (on the release build, `perf record
/// -e io_uring:io_uring_complete` saw 14 receives complete with -105, ENOBUFS, in one run).
#[test]
fn uring_receives_again_when_more_requests_come_at_once_than_it_has_buffers() {
    if skip(Model::Uring, module_path!()) {
        return;
    }
    let site = Site::new();
    let mut config = Config::new(site.root());
    config.model = Model::Uring;
    config.workers = 1;
    let mut server = binary::start(&flags(&config), None);
    let readme = site.read("readme.txt");
    let mut clients: Vec<Client> = (0..AT_ONCE)
        .map(|_| {
            let mut c = Client::connect(server.addr);
            c.send(get_req("/readme.txt"));
            assert_body(&c.read_response(), &readme);
            c
        })
        .collect();
    server.signal(Signal::SIGSTOP);
    for c in &mut clients {
        c.send(get_req("/readme.txt"));
    }
    server.signal(Signal::SIGCONT);
    for c in &mut clients {
        assert_body(&c.read_response(), &readme);
    }
    server
        .stop_with(Signal::SIGTERM)
        .unwrap_or_else(|e| panic!("{e}"));
}
