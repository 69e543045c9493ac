//! Malformed and unsupported requests. Every error response has a
//! Content-Length and a short body; a framing error also has
//! `Connection: close` and the server then closes (RFC 9112 §9.6).

use crate::support::*;

/// `GET /` with a Host header, the header lines `extra` and then `body`.
fn get_with(extra: &str, body: &str) -> String {
    req("GET", "/", extra) + body
}

fn bad_requests() -> Vec<Case> {
    let host = "Host: localhost\r\n";
    vec![
        // RFC 9112 §3: request-line = method SP request-target SP HTTP-version.
        case(
            "no space after the method",
            format!("GET/ HTTP/1.1\r\n{host}\r\n"),
            400,
        ),
        case(
            "extra request-line token",
            format!("GET / HTTP/1.1 extra\r\n{host}\r\n"),
            400,
        ),
        // RFC 9112 §5: field-line = field-name ":" OWS field-value OWS.
        case("header line without colon", get_with("NoColonHere\r\n", ""), 400),
        // RFC 9110 §5.1: field-name = token.
        case("space in header name", get_with("Bad Header: x\r\n", ""), 400),
        case("@ in header name", get_with("B@d: x\r\n", ""), 400),
        // RFC 9112 §5.1: no whitespace between field name and colon; 400.
        case(
            "whitespace before colon",
            "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            400,
        ),
        // RFC 9110 §5.5: NUL is never allowed in a field value.
        case("NUL in header value", get_with("X-Test: a\0b\r\n", ""), 400),
        // RFC 9112 §2.2: a bare CR is rejected (or replaced with SP).
        case("bare CR in header value", get_with("X-Test: a\rb\r\n", ""), 400),
        // RFC 9112 §5.2: obs-fold outside message/http is rejected with 400.
        case("obs-fold line", get_with("X-Test: a\r\n  b\r\n", ""), 400),
        // RFC 9112 §3.2: exactly one Host in an HTTP/1.1 request.
        case(
            "HTTP/1.1 without Host",
            "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
            400,
        ),
        case("two Host headers", get_with("Host: other\r\n", ""), 400),
        // RFC 9112 §6.3 (5): an invalid Content-Length is an unrecoverable
        // framing error.
        case("Content-Length abc", get_with("Content-Length: abc\r\n", ""), 400),
        case("Content-Length -1", get_with("Content-Length: -1\r\n", ""), 400),
        case(
            "Content-Length '1 2'",
            get_with("Content-Length: 1 2\r\n", ""),
            400,
        ),
        case(
            "conflicting Content-Lengths",
            get_with("Content-Length: 3\r\nContent-Length: 4\r\n", "abcd"),
            400,
        ),
        // RFC 9112 §6.3 (3): Transfer-Encoding with Content-Length may be
        // rejected; this server does (request smuggling).
        case(
            "Content-Length with Transfer-Encoding",
            get_with("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"),
            400,
        ),
        // RFC 9112 §6.3 (4): chunked must be the final coding of a request.
        case(
            "Transfer-Encoding gzip",
            get_with("Transfer-Encoding: gzip\r\n", ""),
            400,
        ),
        // RFC 9112 §7: chunked is never applied more than once.
        case(
            "Transfer-Encoding chunked, chunked",
            get_with("Transfer-Encoding: chunked, chunked\r\n", "0\r\n\r\n"),
            400,
        ),
        // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
        case(
            "Transfer-Encoding in HTTP/1.0",
            "GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        // RFC 9112 §2.3: HTTP-version = HTTP-name "/" DIGIT "." DIGIT.
        case("version HTTP/1", format!("GET / HTTP/1\r\n{host}\r\n"), 400),
        case("version HTTP/a.b", format!("GET / HTTP/a.b\r\n{host}\r\n"), 400),
        case("version HTTP1.1", format!("GET / HTTP1.1\r\n{host}\r\n"), 400),
        case("version garbage", format!("GET / banana\r\n{host}\r\n"), 400),
    ]
}

model_tests! {
    fn bad_requests_get_400_and_close(s) {
        check_table(&s, &bad_requests(), After::Close, |_| {});
    }

    // RFC 9112 §7.1: chunk-size = 1*HEXDIG. The server may have answered the
    // head already (RFC 9112 §9.3 lets it respond before the body is read);
    // either way the broken framing ends the connection, and what follows
    // the bad chunk is never answered as a request.
    fn invalid_chunk_size_ends_the_connection(s) {
        let mut c = s.connect();
        c.send(get_with("Transfer-Encoding: chunked\r\n", "zz\r\nhello\r\n0\r\n\r\n"));
        c.send(get_req("/style.css"));
        let first = c.read_response();
        assert!(first.status == 200 || first.status == 400, "{}", first.summary());
        let rest = c.read_until_close();
        assert!(
            rest.is_empty() || (first.status == 200 && rest.starts_with(b"HTTP/1.1 400 ")),
            "after the bad chunk the server sent {:?}",
            String::from_utf8_lossy(&rest)
        );
    }

    // RFC 9112 §6.1: a transfer coding the server does not understand: 501.
    fn unknown_transfer_coding_is_501(s) {
        let raw = get_with("Transfer-Encoding: foo, chunked\r\n", "0\r\n\r\n");
        check(&s, raw, 501, After::Close);
    }

    // RFC 9110 §15.5.15 (RFC 9112 §3 suggests at least 8000 octets are
    // supported; this server allows 8 KiB).
    fn target_over_8k_is_414(s) {
        let target = format!("/{}", "a".repeat(9000));
        check(&s, get_req(&target), 414, After::Close);
    }

    fn target_just_under_8k_is_served(s) {
        // A long query is still part of the target.
        let target = format!("/readme.txt?{}", "q".repeat(8000));
        let resp = check(&s, get_req(&target), 200, After::Any);
        assert_eq!(resp.body, s.site.read("readme.txt"));
    }

    // RFC 6585 §5: 431 Request Header Fields Too Large.
    fn header_section_over_16k_is_431(s) {
        let extra = format!("X-Big: {}\r\n", "b".repeat(17 * 1024));
        check(&s, req("GET", "/", &extra), 431, After::Close);
    }

    fn header_section_of_many_small_fields_is_431(s) {
        let mut extra = String::new();
        for i in 0..70 {
            extra += &format!("X-Field-{i}: {}\r\n", "v".repeat(250));
        }
        // 71 fields with Host, about 18 KiB in all.
        check(&s, req("GET", "/", &extra), 431, After::Close);
    }

    fn more_than_100_fields_is_431(s) {
        let mut extra = String::new();
        for i in 0..100 {
            extra += &format!("X-{i}: v\r\n");
        }
        // 101 short fields (with Host), well under 16 KiB.
        check(&s, req("GET", "/", &extra), 431, After::Close);
    }

    fn many_fields_under_the_limits_are_served(s) {
        let mut extra = String::new();
        for i in 0..60 {
            extra += &format!("X-{i}: {}\r\n", "v".repeat(100));
        }
        let resp = check(&s, req("GET", "/readme.txt", &extra), 200, After::Any);
        assert_eq!(resp.body, s.site.read("readme.txt"));
    }

    // RFC 9110 §15.6.6: 505 HTTP Version Not Supported (major version).
    fn other_major_versions_are_505(s) {
        let cases = [
            case("HTTP/2.0", "GET / HTTP/2.0\r\nHost: localhost\r\n\r\n", 505),
            case("HTTP/3.0", "GET / HTTP/3.0\r\nHost: localhost\r\n\r\n", 505),
        ];
        check_table(&s, &cases, After::Close, |_| {});
    }

    #[tls]
    fn connection_is_usable_after_a_404(s) {
        let mut c = s.connect();
        c.send(get_req("/no-such-file.html"));
        let resp = c.read_response();
        assert_eq!(resp.status, 404, "{}", resp.summary());
        c.send(get_req("/readme.txt"));
        assert_body(&c.read_response(), &s.site.read("readme.txt"));
    }
}
