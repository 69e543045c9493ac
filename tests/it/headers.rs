//! Error pages (the site's `404.html`, `--error-page`, the built-in page),
//! caching headers (`--cache-control`, `--immutable-fingerprints`) and
//! `Expect: 100-continue`.

use crate::support::*;

const SITE_404: &[u8] = b"<!doctype html>\n<title>Lost</title>\n<p>The site's own 404 page.</p>\n";
const CONFIGURED_404: &[u8] = b"<!doctype html>\n<title>Missing</title>\n<p>The configured error page.</p>\n";

/// Asserts a 404 that is exactly `page` (GET) or announces its length
/// (HEAD), as `text/html; charset=utf-8`, then that the connection still
/// answers.
#[track_caller]
fn assert_404_page(s: &TestServer, method: &str, path: &str, page: &[u8]) {
    let mut c = s.connect();
    c.send(req(method, path, ""));
    let resp = if method == "HEAD" {
        c.read_head_response()
    } else {
        c.read_response()
    };
    assert_eq!(resp.status, 404, "{method} {path}: {}", resp.summary());
    assert_eq!(
        resp.header("content-type"),
        Some("text/html; charset=utf-8"),
        "{}",
        resp.summary()
    );
    assert_eq!(
        resp.content_length(),
        Some(page.len() as u64),
        "{method} {path}: {}",
        resp.summary()
    );
    if method == "GET" {
        assert!(
            resp.body == page,
            "{method} {path}: not the expected page: {}",
            resp.summary()
        );
    }
    c.send(get_req("/readme.txt"));
    assert_body(&c.read_response(), &s.site.read("readme.txt"));
}

/// The missing things an error page stands for.
const MISSING: [&str; 4] = ["/nope.html", "/docs/nope", "/nope/", "/noindex/"];

model_tests! {
    // RFC 9110 §15.5.5: a 404 may carry any explanation; a `404.html` at
    // the root is that explanation for every missing file.
    fn site_404_page_is_served_for_missing_files(model m) {
        let s = TestServer::start_prepared(m, |site| site.write("404.html", SITE_404), |_| {});
        let rows: Vec<(&str, &str)> = MISSING.iter().flat_map(|p| [("GET", *p), ("HEAD", *p)]).collect();
        table(s.model, &rows, |(method, path)| format!("{method} {path}"), |&(method, path)| {
            assert_404_page(&s, method, path, SITE_404);
        });
        // Other errors keep their own built-in pages.
        let resp = exchange(&s, "POST", "/readme.txt", "Content-Length: 0\r\n");
        assert_eq!(resp.status, 405, "{}", resp.summary());
        assert!(resp.body != SITE_404, "a 405 with the 404 page");
    }

    // RFC 9110 §15.5.5: the page named by `error_page` (a path inside the
    // root) is the 404 page, ahead of a `404.html`.
    fn configured_error_page_is_served_for_missing_files(model m) {
        let s = TestServer::start_prepared(
            m,
            |site| {
                site.write("errors/missing.html", CONFIGURED_404);
                site.write("404.html", SITE_404);
            },
            |c| c.error_page = Some("errors/missing.html".into()),
        );
        let rows: Vec<(&str, &str)> = MISSING.iter().flat_map(|p| [("GET", *p), ("HEAD", *p)]).collect();
        table(s.model, &rows, |(method, path)| format!("{method} {path}"), |&(method, path)| {
            assert_404_page(&s, method, path, CONFIGURED_404);
        });
    }

    // RFC 9110 §15.5.5: without a page of the site's, the built-in short
    // HTML page.
    fn builtin_404_page_without_a_site_page(s) {
        for path in MISSING {
            let resp = check(&s, get_req(path), 404, After::Any);
            assert_eq!(resp.header("content-type"), Some("text/html; charset=utf-8"), "{}", resp.summary());
            assert!(resp.body != SITE_404 && resp.body != CONFIGURED_404);
            check(&s, req("HEAD", path, ""), 404, After::Any);
        }
    }

    // RFC 9111 §5.2.2: the configured Cache-Control on every file response:
    // 200, HEAD, 206, 304 (RFC 9110 §15.4.5 requires it there) and a
    // precompressed body.
    fn cache_control_on_file_responses(model m) {
        let value = "public, max-age=60";
        let s = TestServer::start_with(m, |c| c.cache_control = Some(value.into()));
        s.site.set_mtime("readme.txt", long_ago());
        let etag = strong_etag(&exchange(&s, "GET", "/readme.txt", ""));
        let rows = [
            ("GET", "/readme.txt", String::new(), 200),
            ("HEAD", "/readme.txt", String::new(), 200),
            ("GET", "/", String::new(), 200),
            ("GET", "/big.bin", String::new(), 200),
            ("GET", "/readme.txt", "Range: bytes=0-9\r\n".into(), 206),
            ("GET", "/big.bin", "Range: bytes=0-9\r\n".into(), 206),
            ("GET", "/readme.txt", format!("If-None-Match: {etag}\r\n"), 304),
            ("HEAD", "/readme.txt", format!("If-Modified-Since: {}\r\n", LONG_AGO[0]), 304),
            ("GET", "/app.js", "Accept-Encoding: br\r\n".into(), 200),
        ];
        table(s.model, &rows, |r| format!("{} {} {:?}", r.0, r.1, r.2), |(method, path, extra, status)| {
            let resp = exchange(&s, method, path, extra);
            assert_eq!(resp.status, *status, "{}", resp.summary());
            assert_eq!(resp.header("cache-control"), Some(value), "{}", resp.summary());
            assert_eq!(resp.header_count("cache-control"), 1, "{}", resp.summary());
        });
    }

    // RFC 9111 §5.2.2.1 (max-age) and RFC 8246 (immutable): a file whose
    // name carries a content hash never changes under that name, so it is
    // cached for a year; other files keep the configured value, or none.
    fn immutable_fingerprints(model m) {
        let year = "public, max-age=31536000, immutable";
        let prepare = |site: &Site| site.write("app.3f9a1c2b.js", &site.read("app.js"));
        for configured in [None, Some("public, max-age=60")] {
            let s = TestServer::start_prepared(m, prepare, |c| {
                c.immutable_fingerprints = true;
                c.cache_control = configured.map(String::from);
            });
            s.site.set_mtime("app.3f9a1c2b.js", long_ago());
            let etag = strong_etag(&exchange(&s, "GET", "/app.3f9a1c2b.js", ""));
            let rows = [
                ("GET", "/app.3f9a1c2b.js", String::new(), 200, Some(year)),
                ("HEAD", "/app.3f9a1c2b.js", String::new(), 200, Some(year)),
                ("GET", "/app.3f9a1c2b.js", "Range: bytes=0-9\r\n".into(), 206, Some(year)),
                ("GET", "/app.3f9a1c2b.js", format!("If-None-Match: {etag}\r\n"), 304, Some(year)),
                ("GET", "/app.js", String::new(), 200, configured),
                ("GET", "/app.js", "Accept-Encoding: gzip\r\n".into(), 200, configured),
                ("GET", "/style.css", String::new(), 200, configured),
            ];
            table(
                s.model,
                &rows,
                |r| format!("cache_control {configured:?}: {} {} {:?}", r.0, r.1, r.2),
                |(method, path, extra, status, want)| {
                    let resp = exchange(&s, method, path, extra);
                    assert_eq!(resp.status, *status, "{}", resp.summary());
                    assert_eq!(resp.header("cache-control"), *want, "{}", resp.summary());
                },
            );
        }
    }

    // RFC 9110 §10.1.1: a server may answer before the content arrives, and
    // then does not send 100 (Continue); the client then sends the content
    // or closes. Here the content follows the 200, then another request.
    fn expect_100_continue_gets_the_final_response_at_once(s) {
        for (method, path, status) in [("GET", "/readme.txt", 200), ("POST", "/readme.txt", 405)] {
            let mut c = s.connect();
            c.send(req(method, path, "Expect: 100-continue\r\nContent-Length: 10\r\n"));
            let resp = c.read_response();
            assert_eq!(resp.status, status, "{method} {path} with Expect, no content sent: {}", resp.summary());
            if status == 200 {
                assert_body(&resp, &s.site.read("readme.txt"));
            }
            if !resp.has_token("connection", "close") {
                c.send("0123456789");
                c.send(get_req("/style.css"));
                assert_body(&c.read_response(), &s.site.read("style.css"));
            }
        }
    }

    // RFC 9110 §10.1.1: "A server that receives a 100-continue expectation
    // in an HTTP/1.0 request MUST ignore that expectation": no 1xx, ever
    // (RFC 9110 §15.2: no 1xx to an HTTP/1.0 client).
    fn expect_100_continue_from_http_1_0_gets_no_1xx(s) {
        let mut c = s.connect();
        c.send("GET /readme.txt HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n");
        let resp = c.read_response();
        assert_eq!(resp.status, 200, "{}", resp.summary());
        assert_body(&resp, &s.site.read("readme.txt"));
        // With the content sent, HTTP/1.0 ends with the close.
        c.send("0123456789");
        let rest = c.read_until_close();
        assert!(rest.is_empty(), "more after the response: {:?}", String::from_utf8_lossy(&rest));
    }

    // RFC 9110 §10.1.1: 100-continue is the only expectation; any other is a 417.
    fn an_unknown_expectation_is_417(s) {
        let cases = [
            case("teapot", req("GET", "/readme.txt", "Expect: teapot\r\n"), 417),
            case("list", req("GET", "/readme.txt", "Expect: 100-continue, x\r\n"), 417),
        ];
        check_table(&s, &cases, After::Any, |_| {});
    }

    // RFC 9112 §3.2: a Host that is not `uri-host [":" port]` is a 400.
    fn a_host_that_is_not_a_host_is_400(s) {
        let host = |value: &str| format!("GET /readme.txt HTTP/1.1\r\nHost: {value}\r\n\r\n");
        let cases = [
            case("a list", host("a,b"), 400),
            case("a port of letters", host("example.com:abc"), 400),
            case("two ports", host("example.com:1:2"), 400),
            case("an open bracket", host("[::1"), 400),
            case("a name and a port", host("example.com:8080"), 200),
            case("an IPv6 literal", host("[::1]:8080"), 200),
        ];
        check_table(&s, &cases, After::Any, |_| {});
    }

    // Content-Types are right, so browsers are told not to guess: on files,
    // on error pages and on the core's own refusals alike.
    #[tls]
    fn nosniff_on_every_response(s) {
        for (method, path) in [("GET", "/readme.txt"), ("GET", "/missing"), ("DELETE", "/")] {
            let resp = exchange(&s, method, path, "");
            assert_eq!(resp.header("x-content-type-options"), Some("nosniff"), "{}", resp.summary());
        }
    }

    fn no_nosniff_leaves_it_out(model m) {
        let s = TestServer::start_with(m, |c| c.nosniff = false);
        let resp = exchange(&s, "GET", "/readme.txt", "");
        assert_eq!(resp.header("x-content-type-options"), None, "{}", resp.summary());
    }
}
