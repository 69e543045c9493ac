//! Validators and conditional requests: `ETag` and `Last-Modified` on file
//! responses (RFC 9110 §8.8), `If-None-Match`, `If-Modified-Since`,
//! `If-Match` and `If-Unmodified-Since` (RFC 9110 §13.1) and the order in
//! which they are evaluated (RFC 9110 §13.2.2). HEAD answers as GET does.

use std::time::{Duration, SystemTime};

use crate::support::*;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// The files the tables run on: one small enough for the in-memory cache,
/// one large enough for sendfile.
const FILES: [&str; 2] = ["readme.txt", "big.bin"];

/// Gives `rel` the `long_ago()` modification time and returns its strong
/// ETag, read from a plain GET.
fn prepare(s: &TestServer, rel: &str) -> String {
    s.site.set_mtime(rel, long_ago());
    let resp = exchange(s, "GET", &format!("/{rel}"), "");
    assert_eq!(resp.status, 200, "GET /{rel}: {}", resp.summary());
    strong_etag(&resp)
}

/// Runs every row (a name, the conditional header lines, the status) as GET
/// and as HEAD on `/rel`, on fresh connections, through `check_table`. Every
/// 200 and 304 carries the ETag `etag`; a 304 has a Date (RFC 9110 §15.4.5).
#[track_caller]
fn conditional_table(s: &TestServer, rel: &str, etag: &str, rows: &[(&str, String, u16)]) {
    let cases: Vec<Case> = rows
        .iter()
        .flat_map(|(name, extra, status)| {
            ["GET", "HEAD"].map(|m| {
                case(
                    format!("{m} /{rel} {name}"),
                    req(m, &format!("/{rel}"), extra),
                    *status,
                )
            })
        })
        .collect();
    check_table(s, &cases, After::Any, |resp| {
        if resp.status == 200 || resp.status == 304 {
            assert_eq!(resp.header("etag"), Some(etag), "{}", resp.summary());
        }
        if resp.status == 304 {
            assert!(
                resp.header("date").is_some(),
                "304 without Date: {}",
                resp.summary()
            );
        }
        if resp.status == 412 {
            let ct = resp.header("content-type").unwrap_or("");
            assert!(ct.starts_with("text/html"), "412 with Content-Type {ct:?}");
        }
    });
}

model_tests! {
    // RFC 9110 §8.8.3: a strong entity-tag; §8.8.2: Last-Modified, an
    // HTTP-date (§5.6.7) no later than Date (§8.8.2.1). On 200s from memory
    // and from sendfile, on HEAD, and on 206s (the same representation).
    fn file_responses_carry_validators(s) {
        for rel in FILES {
            s.site.set_mtime(rel, long_ago());
        }
        let rows = [
            ("GET", "/readme.txt", "", 200, true),
            ("HEAD", "/readme.txt", "", 200, true),
            ("GET", "/big.bin", "", 200, true),
            ("HEAD", "/big.bin", "", 200, true),
            ("GET", "/", "", 200, false),
            ("GET", "/docs/", "", 200, false),
            ("GET", "/readme.txt", "Range: bytes=0-9\r\n", 206, true),
            ("GET", "/big.bin", "Range: bytes=100-199\r\n", 206, true),
        ];
        table(s.model, &rows, |r| format!("{} {} {:?}", r.0, r.1, r.2), |&(method, path, extra, status, dated)| {
            let resp = exchange(&s, method, path, extra);
            assert_eq!(resp.status, status, "{}", resp.summary());
            strong_etag(&resp);
            assert_eq!(resp.header_count("last-modified"), 1, "{}", resp.summary());
            let modified = date_header(&resp, "last-modified");
            let date = date_header(&resp, "date");
            assert!(modified <= date, "Last-Modified later than Date: {}", resp.summary());
            if dated {
                assert_eq!(modified, long_ago(), "Last-Modified is not the file's mtime: {}", resp.summary());
            }
        });
        // The 206 carries the validators of the whole file's 200.
        for rel in FILES {
            let full = exchange(&s, "GET", &format!("/{rel}"), "");
            let part = exchange(&s, "GET", &format!("/{rel}"), "Range: bytes=0-0\r\n");
            assert_eq!(part.status, 206, "{}", part.summary());
            assert_eq!(strong_etag(&full), strong_etag(&part), "/{rel}");
            assert_eq!(full.header("last-modified"), part.header("last-modified"), "/{rel}");
        }
    }

    // RFC 9110 §8.8.2.1: a modification time in the future is replaced by
    // the message origination date.
    fn last_modified_is_never_later_than_date(s) {
        let future = SystemTime::now() + DAY;
        for rel in FILES {
            s.site.set_mtime(rel, future);
            for method in ["GET", "HEAD"] {
                let resp = exchange(&s, method, &format!("/{rel}"), "");
                assert_eq!(resp.status, 200, "{}", resp.summary());
                let modified = date_header(&resp, "last-modified");
                let date = date_header(&resp, "date");
                assert!(modified <= date, "{method} /{rel}: Last-Modified later than Date: {}", resp.summary());
            }
        }
    }

    // RFC 9110 §8.8.3: the entity-tag identifies one version of the
    // representation: the same on every request, connection and worker, and
    // for HEAD as for GET (§9.3.2).
    fn etag_is_stable_across_requests(s) {
        for rel in FILES {
            let path = format!("/{rel}");
            let first = strong_etag(&exchange(&s, "GET", &path, ""));
            let mut c = s.connect();
            for _ in 0..3 {
                c.send(get_req(&path));
                assert_eq!(strong_etag(&c.read_response()), first, "{path} on one connection");
            }
            for _ in 0..4 {
                assert_eq!(strong_etag(&exchange(&s, "GET", &path, "")), first, "{path} on a new connection");
                assert_eq!(strong_etag(&exchange(&s, "HEAD", &path, "")), first, "HEAD {path}");
            }
        }
    }

    // RFC 9110 §8.8.3: a new version of the file gets a new entity-tag and
    // Last-Modified, even with the same length; the old tag no longer
    // matches (§13.1.2).
    fn etag_changes_when_the_file_changes(model m) {
        let s = TestServer::start_with(m, |c| c.file_cache_valid = Duration::ZERO);
        let old_etag = prepare(&s, "readme.txt");
        let old = s.site.read("readme.txt");
        let mut new = old.clone();
        for b in new.iter_mut() {
            *b = if *b == b'\n' { b'\n' } else { b'x' };
        }
        assert_ne!(new, old);
        s.site.write("readme.txt", &new);
        s.site.set_mtime("readme.txt", long_ago() + DAY);
        let resp = exchange(&s, "GET", "/readme.txt", "");
        assert_body(&resp, &new);
        let new_etag = strong_etag(&resp);
        assert_ne!(new_etag, old_etag, "the ETag did not change with the file");
        assert_eq!(date_header(&resp, "last-modified"), long_ago() + DAY);
        let stale = exchange(&s, "GET", "/readme.txt", &format!("If-None-Match: {old_etag}\r\n"));
        assert_body(&stale, &new);
        let fresh = exchange(&s, "GET", "/readme.txt", &format!("If-None-Match: {new_etag}\r\n"));
        assert_eq!(fresh.status, 304, "{}", fresh.summary());
        // And the big file, rewritten in place.
        let old_etag = prepare(&s, "big.bin");
        let mut big = big_bin();
        big.reverse();
        s.site.write("big.bin", &big);
        s.site.set_mtime("big.bin", long_ago() + DAY);
        let resp = exchange(&s, "GET", "/big.bin", "");
        assert_body(&resp, &big);
        assert_ne!(strong_etag(&resp), old_etag, "the ETag of big.bin did not change");
    }

    // RFC 9110 §8.8: a page the server makes up (error, redirect) is no
    // version of a file: no ETag and no Last-Modified.
    fn generated_pages_have_no_validators(s) {
        let rows = [
            ("GET", "/nope.html", 404),
            ("HEAD", "/nope.html", 404),
            ("GET", "/docs", 301),
            ("GET", "/noindex/", 404),
            ("POST", "/readme.txt", 405),
        ];
        table(s.model, &rows, |r| format!("{} {}", r.0, r.1), |&(method, path, status)| {
            let extra = if method == "POST" { "Content-Length: 0\r\n" } else { "" };
            let resp = exchange(&s, method, path, extra);
            assert_eq!(resp.status, status, "{}", resp.summary());
            assert_eq!(resp.header("etag"), None, "{}", resp.summary());
            assert_eq!(resp.header("last-modified"), None, "{}", resp.summary());
        });
    }

    // RFC 9110 §13.1.2: If-None-Match, weak comparison; a match is 304 for
    // GET and HEAD.
    fn if_none_match(s) {
        for rel in FILES {
            let e = prepare(&s, rel);
            let rows = [
                ("the current tag", format!("If-None-Match: {e}\r\n"), 304),
                ("a list containing it", format!("If-None-Match: \"x\", {e}\r\n"), 304),
                // RFC 9110 §5.3: field lines of one name form one list.
                ("two field lines", format!("If-None-Match: \"x\"\r\nIf-None-Match: {e}\r\n"), 304),
                ("*", "If-None-Match: *\r\n".into(), 304),
                // §8.8.3.2: weak comparison ignores the W/ prefix.
                ("the weak form", format!("If-None-Match: W/{e}\r\n"), 304),
                ("another tag", "If-None-Match: \"other\"\r\n".into(), 200),
                ("a list of other tags", "If-None-Match: \"a\", \"b\", W/\"c\"\r\n".into(), 200),
            ];
            conditional_table(&s, rel, &e, &rows);
        }
    }

    // RFC 9110 §13.1.3: If-Modified-Since; §5.6.7: all three date formats.
    fn if_modified_since(s) {
        for rel in FILES {
            let e = prepare(&s, rel);
            let later = http_date(long_ago() + DAY);
            let earlier = http_date(long_ago() - DAY);
            let rows = [
                ("Last-Modified itself", format!("If-Modified-Since: {}\r\n", LONG_AGO[0]), 304),
                ("as rfc850-date", format!("If-Modified-Since: {}\r\n", LONG_AGO[1]), 304),
                ("as asctime-date", format!("If-Modified-Since: {}\r\n", LONG_AGO[2]), 304),
                ("a later date", format!("If-Modified-Since: {later}\r\n"), 304),
                ("an earlier date", format!("If-Modified-Since: {earlier}\r\n"), 200),
                ("an invalid date is ignored", "If-Modified-Since: yesterday\r\n".into(), 200),
                // §13.1.3: ignored when If-None-Match is present.
                (
                    "ignored beside a non-matching If-None-Match",
                    format!("If-None-Match: \"other\"\r\nIf-Modified-Since: {later}\r\n"),
                    200,
                ),
                (
                    "ignored beside a matching If-None-Match",
                    format!("If-None-Match: {e}\r\nIf-Modified-Since: {earlier}\r\n"),
                    304,
                ),
            ];
            conditional_table(&s, rel, &e, &rows);
        }
    }

    // RFC 9110 §13.1.1: If-Match, strong comparison; a failure is 412.
    fn if_match(s) {
        for rel in FILES {
            let e = prepare(&s, rel);
            let rows = [
                ("the current tag", format!("If-Match: {e}\r\n"), 200),
                ("a list containing it", format!("If-Match: \"x\", {e}\r\n"), 200),
                // RFC 9110 §5.3: field lines of one name form one list.
                ("two field lines", format!("If-Match: \"x\"\r\nIf-Match: {e}\r\n"), 200),
                ("another tag", "If-Match: \"other\"\r\n".into(), 412),
                ("*", "If-Match: *\r\n".into(), 200),
                // §8.8.3.2: a weak tag never matches strongly.
                ("the weak form", format!("If-Match: W/{e}\r\n"), 412),
            ];
            conditional_table(&s, rel, &e, &rows);
        }
    }

    // RFC 9110 §13.1.4: If-Unmodified-Since; ignored with If-Match.
    fn if_unmodified_since(s) {
        for rel in FILES {
            let e = prepare(&s, rel);
            let later = http_date(long_ago() + DAY);
            let earlier = http_date(long_ago() - DAY);
            let rows = [
                ("an earlier date", format!("If-Unmodified-Since: {earlier}\r\n"), 412),
                ("a later date", format!("If-Unmodified-Since: {later}\r\n"), 200),
                ("Last-Modified itself", format!("If-Unmodified-Since: {}\r\n", LONG_AGO[0]), 200),
                ("an invalid date is ignored", "If-Unmodified-Since: soon\r\n".into(), 200),
                (
                    "ignored beside a matching If-Match",
                    format!("If-Match: {e}\r\nIf-Unmodified-Since: {earlier}\r\n"),
                    200,
                ),
            ];
            conditional_table(&s, rel, &e, &rows);
        }
    }

    // RFC 9110 §13.2.2: If-Match, then If-Unmodified-Since, then
    // If-None-Match, then If-Modified-Since.
    fn precondition_precedence(s) {
        for rel in FILES {
            let e = prepare(&s, rel);
            let later = http_date(long_ago() + DAY);
            let earlier = http_date(long_ago() - DAY);
            let rows = [
                (
                    "failing If-Match before matching If-None-Match",
                    format!("If-Match: \"other\"\r\nIf-None-Match: {e}\r\n"),
                    412,
                ),
                (
                    "failing If-Unmodified-Since before matching If-None-Match",
                    format!("If-Unmodified-Since: {earlier}\r\nIf-None-Match: {e}\r\n"),
                    412,
                ),
                (
                    "passing If-Match, matching If-None-Match",
                    format!("If-Match: {e}\r\nIf-None-Match: {e}\r\n"),
                    304,
                ),
                (
                    "passing If-Match, If-Modified-Since later",
                    format!("If-Match: {e}\r\nIf-Modified-Since: {later}\r\n"),
                    304,
                ),
                (
                    "failing If-Match with a range",
                    "If-Match: \"other\"\r\nRange: bytes=0-1\r\n".into(),
                    412,
                ),
                (
                    "matching If-None-Match with a range",
                    format!("If-None-Match: {e}\r\nRange: bytes=0-1\r\n"),
                    304,
                ),
            ];
            conditional_table(&s, rel, &e, &rows);
        }
    }

    // RFC 9110 §15.4.5: a 304 has no content, but the ETag and Date a 200
    // would have; Content-Length, if sent, is the 200's (§8.6). The
    // connection stays open (RFC 9112 §9.3): what follows is answered, and a
    // stray body would be read as the next response and fail it.
    #[tls]
    fn not_modified_has_no_body_and_keeps_the_connection(s) {
        for rel in FILES {
            let path = format!("/{rel}");
            let e = prepare(&s, rel);
            let mut c = s.connect();
            c.send(get_req(&path));
            let full = c.read_response();
            assert_body(&full, &s.site.read(rel));
            for method in ["GET", "HEAD", "GET"] {
                c.send(req(method, &path, &format!("If-None-Match: {e}\r\n")));
                let resp = c.read_head_response();
                assert_eq!(resp.status, 304, "{method} {path}: {}", resp.summary());
                assert_eq!(resp.header("etag"), Some(e.as_str()), "{}", resp.summary());
                date_header(&resp, "date");
                if let Some(len) = resp.content_length() {
                    assert_eq!(Some(len), full.content_length(), "304 Content-Length: {}", resp.summary());
                }
                assert!(!resp.has_token("connection", "close"), "{}", resp.summary());
                c.send(get_req("/readme.txt"));
                assert_body(&c.read_response(), &s.site.read("readme.txt"));
            }
            // Pipelined: the 304 and the next answer in one go.
            c.send(req("GET", &path, &format!("If-None-Match: {e}\r\n")) + &get_req("/style.css"));
            assert_eq!(c.read_head_response().status, 304);
            assert_body(&c.read_response(), &s.site.read("style.css"));
        }
    }

    // RFC 9110 §15.5.13: 412, with a short HTML page; the request was well
    // framed, so the connection stays open.
    fn precondition_failed_keeps_the_connection(s) {
        for rel in FILES {
            let path = format!("/{rel}");
            prepare(&s, rel);
            let earlier = http_date(long_ago() - DAY);
            let mut c = s.connect();
            for extra in [
                "If-Match: \"other\"\r\n".to_string(),
                format!("If-Unmodified-Since: {earlier}\r\n"),
            ] {
                c.send(req("GET", &path, &extra));
                let resp = c.read_response();
                assert_eq!(resp.status, 412, "{extra:?}: {}", resp.summary());
                let ct = resp.header("content-type").unwrap_or("");
                assert!(ct.starts_with("text/html"), "412 with Content-Type {ct:?}");
                assert!(!resp.body.is_empty() && resp.body.len() <= 1024, "{}", resp.summary());
                assert_eq!(resp.content_length(), Some(resp.body.len() as u64));
                assert!(!resp.has_token("connection", "close"), "{}", resp.summary());
                c.send(req("HEAD", &path, &extra));
                assert_eq!(c.read_head_response().status, 412);
                c.send(get_req(&path));
                assert_body(&c.read_response(), &s.site.read(rel));
            }
        }
    }
}
