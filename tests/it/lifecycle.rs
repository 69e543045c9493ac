//! Graceful stop, the connection limit and concurrent clients.

use std::net::TcpStream;
use std::thread::{scope, sleep};
use std::time::Duration;

use crate::support::*;

model_tests! {
    fn stop_without_any_connection(s) {
        s.stop();
    }

    fn stop_after_serving(s) {
        let resps = get(&s, req("GET", "/big.bin", "Connection: close\r\n"));
        assert_body(&resps[0], &big_bin());
        let addr = s.addr;
        s.stop();
        // serve returned, so the listener is gone.
        assert!(TcpStream::connect(addr).is_err(), "{addr} still accepts after stop");
    }

    // An idle keep-alive connection holds no request: it does not keep
    // serve from returning (and is closed).
    fn stop_with_an_idle_connection_open(s) {
        let mut c = s.connect();
        c.send(get_req("/readme.txt"));
        assert_body(&c.read_response(), &s.site.read("readme.txt"));
        s.stop();
        c.assert_closed();
    }

    // RFC 9110 §15.6.4: 503 when the server cannot take the connection.
    fn max_connections_refuses_with_503(model m) {
        let s = TestServer::start_with(m, |c| c.max_connections = 2);
        let mut c1 = s.connect();
        c1.send(get_req("/readme.txt"));
        assert_body(&c1.read_response(), &s.site.read("readme.txt"));
        let mut c2 = s.connect();
        c2.send(get_req("/readme.txt"));
        assert_body(&c2.read_response(), &s.site.read("readme.txt"));

        let mut c3 = s.connect();
        c3.send(get_req("/readme.txt"));
        let resp = c3.read_response();
        assert_eq!(resp.status, 503, "third connection: {}", resp.summary());
        assert!(resp.header("content-length").is_some(), "{}", resp.summary());
        assert!(resp.has_token("connection", "close"), "{}", resp.summary());
        c3.assert_closed();

        // The first two are unaffected.
        c2.send(get_req("/style.css"));
        assert_body(&c2.read_response(), &s.site.read("style.css"));

        // Once the server has seen c1 go, a new connection is served. It may
        // take the server a moment to notice: retry, boundedly.
        drop(c1);
        let mut served = false;
        for _ in 0..100 {
            let mut c = s.connect();
            c.send(req("GET", "/data.json", "Connection: close\r\n"));
            let resp = c.read_response();
            if resp.status == 200 {
                assert_body(&resp, &s.site.read("data.json"));
                served = true;
                break;
            }
            assert_eq!(resp.status, 503, "{}", resp.summary());
            sleep(Duration::from_millis(50));
        }
        assert!(served, "no connection was served after one of the two was closed");
        c2.send(get_req("/app.js"));
        assert_body(&c2.read_response(), &s.site.read("app.js"));
    }

    fn concurrent_clients(s) {
        let addr = s.addr;
        let expected = [
            ("/readme.txt", s.site.read("readme.txt")),
            ("/big.bin", big_bin()),
            ("/style.css", s.site.read("style.css")),
        ];
        scope(|scope| {
            for t in 0..6 {
                let expected = &expected;
                scope.spawn(move || {
                    if t % 2 == 0 {
                        // One connection per request.
                        for i in 0..10 {
                            let (path, body) = &expected[(t + i) % expected.len()];
                            let mut c = Client::connect(addr);
                            c.send(req("GET", path, "Connection: close\r\n"));
                            assert_body(&c.read_response(), body);
                            c.assert_closed();
                        }
                    } else {
                        // One keep-alive connection, then closed by the client.
                        let mut c = Client::connect(addr);
                        for i in 0..15 {
                            let (path, body) = &expected[(t + i) % expected.len()];
                            c.send(get_req(path));
                            assert_body(&c.read_response(), body);
                        }
                    }
                });
            }
        });
    }
}
