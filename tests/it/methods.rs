//! Request methods: GET and HEAD are served, the others are refused.

use crate::support::*;

/// The Allow header lists exactly GET and HEAD (in any order).
#[track_caller]
fn assert_allow_get_head(resp: &Response) {
    let allow = resp
        .header("allow")
        .unwrap_or_else(|| panic!("no Allow: {}", resp.summary()));
    let mut methods: Vec<&str> = allow.split(',').map(str::trim).collect();
    methods.sort_unstable();
    assert_eq!(methods, ["GET", "HEAD"], "Allow: {allow:?}");
}

model_tests! {
    // RFC 9110 §15.5.6: 405 must carry an Allow header (§10.2.1).
    fn known_methods_other_than_get_head_are_405(s) {
        let cases = [
            case("POST", req("POST", "/", ""), 405),
            case(
                "POST with body",
                req("POST", "/readme.txt", "Content-Length: 3\r\n") + "abc",
                405,
            ),
            case("PUT", req("PUT", "/readme.txt", "Content-Length: 0\r\n"), 405),
            case("DELETE", req("DELETE", "/readme.txt", ""), 405),
            case("PATCH", req("PATCH", "/readme.txt", "Content-Length: 0\r\n"), 405),
            case("OPTIONS", req("OPTIONS", "/", ""), 405),
            case("OPTIONS *", req("OPTIONS", "*", ""), 405),
            case("TRACE", req("TRACE", "/", ""), 405),
            // RFC 9112 §3.2.3: authority-form is only for CONNECT.
            case(
                "CONNECT authority-form",
                "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
                405,
            ),
        ];
        check_table(&s, &cases, After::Any, assert_allow_get_head);
    }

    // RFC 9110 §9.1: an unrecognized method gets 501; method names are
    // case-sensitive, so `get` is not GET.
    fn unknown_methods_are_501(s) {
        let cases = [
            case("BREW", req("BREW", "/", ""), 501),
            case("lowercase get", req("get", "/readme.txt", ""), 501),
            case("lowercase head", req("head", "/readme.txt", ""), 501),
            case("Get", req("Get", "/readme.txt", ""), 501),
        ];
        check_table(&s, &cases, After::Any, |_| {});
    }

    fn connection_is_usable_after_a_405(s) {
        let mut c = s.connect();
        c.send(req("DELETE", "/readme.txt", ""));
        let resp = c.read_response();
        assert_eq!(resp.status, 405, "{}", resp.summary());
        c.send(req("POST", "/readme.txt", "Content-Length: 4\r\n") + "GET ");
        let resp = c.read_response();
        assert_eq!(resp.status, 405, "{}", resp.summary());
        c.send(get_req("/readme.txt"));
        assert_body(&c.read_response(), &s.site.read("readme.txt"));
    }

    // RFC 9110 §9.3.2: HEAD is GET without the content; the header fields
    // (Content-Length of the representation included) are the same.
    fn head_has_the_headers_of_get_and_no_body(s) {
        let mut c = s.connect();
        for path in ["/", "/readme.txt", "/big.bin", "/pixel.png", "/missing.html", "/docs"] {
            c.send(get_req(path));
            let get = c.read_response();
            c.send(req("HEAD", path, ""));
            let head = c.read_head_response();
            assert_eq!(head.status, get.status, "HEAD {path}: {}", head.summary());
            for name in ["content-length", "content-type", "server", "location"] {
                assert_eq!(
                    head.header(name),
                    get.header(name),
                    "HEAD {path}: header {name} differs from GET"
                );
            }
            if get.status == 200 {
                assert_eq!(head.content_length(), Some(get.body.len() as u64), "HEAD {path}");
            }
        }
        // Had the server sent a body after a HEAD response, this would read it.
        c.send(get_req("/readme.txt"));
        assert_body(&c.read_response(), &s.site.read("readme.txt"));
    }

    fn head_of_big_file_sends_no_body(s) {
        let mut c = s.connect();
        c.send(req("HEAD", "/big.bin", ""));
        let head = c.read_head_response();
        assert_eq!(head.status, 200, "{}", head.summary());
        assert_eq!(head.content_length(), Some(BIG_LEN as u64));
        c.send(req("GET", "/data.json", "Connection: close\r\n"));
        assert_body(&c.read_response(), &s.site.read("data.json"));
        c.assert_closed();
    }

    fn pipelined_heads(s) {
        let raw = req("HEAD", "/", "") + &req("HEAD", "/big.bin", "")
            + &req("HEAD", "/readme.txt", "Connection: close\r\n");
        let resps = get(&s, raw);
        assert_eq!(resps.len(), 3, "{resps:?}");
        assert!(resps.iter().all(|r| r.status == 200), "{resps:?}");
        assert_eq!(resps[1].content_length(), Some(BIG_LEN as u64));
    }
}
