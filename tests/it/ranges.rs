//! Range requests (RFC 9110 §14): single ranges (206 with Content-Range),
//! unsatisfiable ones (416), invalid ones (ignored: 200), several ranges
//! (`multipart/byteranges`, §14.6), coalescing, HEAD, `If-Range` (§13.1.5)
//! and ranges of a precompressed body.

use crate::support::*;

/// What a `Range` request must get.
#[derive(Clone, Debug)]
enum Want {
    /// 200 with the whole representation (the Range was ignored).
    Full,
    /// 206 with these inclusive byte ranges, in this order: one part as a
    /// plain 206, several as `multipart/byteranges`.
    Parts(Vec<(u64, u64)>),
    /// 416 with `Content-Range: bytes */SIZE`.
    Unsatisfiable,
    /// 200 with everything, or 416; never 206.
    FullOr416,
}

fn part(first: u64, last: u64) -> Want {
    Want::Parts(vec![(first, last)])
}

/// The representation a table asks for ranges of: a path, the header lines
/// that select the representation, and its exact bytes.
struct Target {
    path: String,
    extra: String,
    bytes: Vec<u8>,
}

impl Target {
    fn file(s: &TestServer, rel: &str) -> Target {
        Target {
            path: format!("/{rel}"),
            extra: String::new(),
            bytes: s.site.read(rel),
        }
    }
}

/// `bytes FIRST-LAST/COMPLETE` (RFC 9110 §14.4), or `None` for `bytes */COMPLETE`.
fn content_range(value: &str) -> (Option<(u64, u64)>, u64) {
    let parse = || -> Option<(Option<(u64, u64)>, u64)> {
        let (range, complete) = value.strip_prefix("bytes ")?.split_once('/')?;
        let complete = complete.parse().ok()?;
        if range == "*" {
            return Some((None, complete));
        }
        let (first, last) = range.split_once('-')?;
        Some((Some((first.parse().ok()?, last.parse().ok()?)), complete))
    };
    parse().unwrap_or_else(|| panic!("malformed Content-Range {value:?}"))
}

/// One part of a `multipart/byteranges` body.
struct Part {
    content_type: Option<String>,
    range: (u64, u64),
    complete: u64,
    data: Vec<u8>,
}

/// Parses a `multipart/byteranges` body (RFC 9110 §14.6, RFC 2046 §5.1.1)
/// exactly: each part's length comes from its Content-Range, and the body
/// (read by Content-Length) must end with the close delimiter and CRLF.
#[track_caller]
fn multipart(resp: &Response) -> Vec<Part> {
    let ct = resp
        .header("content-type")
        .unwrap_or_else(|| panic!("no Content-Type: {}", resp.summary()));
    let (mime, params) = ct.split_once(';').unwrap_or((ct, ""));
    assert!(
        mime.trim().eq_ignore_ascii_case("multipart/byteranges"),
        "Content-Type {ct:?} is not multipart/byteranges"
    );
    let boundary = params
        .split(';')
        .filter_map(|p| p.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| value.trim().trim_matches('"').to_string())
        .unwrap_or_else(|| panic!("Content-Type {ct:?} has no boundary"));
    assert!(
        !boundary.is_empty() && boundary.len() <= 70,
        "boundary {boundary:?} (RFC 2046 §5.1.1)"
    );
    let delimiter = format!("--{boundary}").into_bytes();
    let body = &resp.body;
    let shown = || String::from_utf8_lossy(&body[..body.len().min(400)]).into_owned();
    // A preamble is allowed before the first delimiter, which starts a line.
    let mut pos = body
        .windows(delimiter.len())
        .position(|w| w == delimiter.as_slice())
        .unwrap_or_else(|| panic!("no delimiter {boundary:?} in the body {:?}", shown()));
    assert!(
        pos == 0 || body[..pos].ends_with(b"\r\n"),
        "first delimiter not at a line start: {:?}",
        shown()
    );
    let mut parts = Vec::new();
    loop {
        assert!(
            body[pos..].starts_with(&delimiter),
            "expected a delimiter at {pos}: {:?}",
            shown()
        );
        pos += delimiter.len();
        if body[pos..].starts_with(b"--") {
            assert_eq!(
                &body[pos + 2..],
                b"\r\n",
                "the body must end with the close delimiter and CRLF, exactly as framed by Content-Length"
            );
            break;
        }
        assert!(
            body[pos..].starts_with(b"\r\n"),
            "no CRLF after the delimiter at {pos}: {:?}",
            shown()
        );
        pos += 2;
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let (len, headers) = match httparse::parse_headers(&body[pos..], &mut headers) {
            Ok(httparse::Status::Complete(done)) => done,
            other => panic!("part headers at {pos}: {other:?}: {:?}", shown()),
        };
        pos += len;
        let header = |name: &str| {
            headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        let cr =
            header("content-range").unwrap_or_else(|| panic!("part without Content-Range: {:?}", shown()));
        let (range, complete) = content_range(&cr);
        let (first, last) = range.unwrap_or_else(|| panic!("part with Content-Range {cr:?}"));
        let n = usize::try_from(last - first + 1).unwrap();
        assert!(pos + n + 2 <= body.len(), "part {cr:?} runs past the body");
        parts.push(Part {
            content_type: header("content-type"),
            range: (first, last),
            complete,
            data: body[pos..pos + n].to_vec(),
        });
        pos += n;
        assert!(body[pos..].starts_with(b"\r\n"), "no CRLF after the part {cr:?}");
        pos += 2;
    }
    parts
}

/// Checks a response to a Range request against `want`, for `target` whose
/// 200 has the Content-Type `content_type`.
#[track_caller]
fn check_range(resp: &Response, target: &Target, content_type: Option<&str>, want: &Want) {
    let size = target.bytes.len() as u64;
    let slice = |(first, last): (u64, u64)| &target.bytes[first as usize..=last as usize];
    match want {
        Want::Full => {
            assert_body(resp, &target.bytes);
            assert_eq!(resp.header("content-range"), None, "{}", resp.summary());
            assert_eq!(resp.header("accept-ranges"), Some("bytes"), "{}", resp.summary());
        }
        Want::FullOr416 => match resp.status {
            200 => assert_body(resp, &target.bytes),
            416 => check_range(resp, target, content_type, &Want::Unsatisfiable),
            _ => panic!("expected 200 or 416, got {}", resp.summary()),
        },
        Want::Unsatisfiable => {
            assert_eq!(resp.status, 416, "{}", resp.summary());
            assert_eq!(
                resp.header("content-range"),
                Some(format!("bytes */{size}").as_str()),
                "{}",
                resp.summary()
            );
            assert!(resp.body.len() <= 1024, "{}", resp.summary());
        }
        Want::Parts(ranges) => {
            assert_eq!(resp.status, 206, "{}", resp.summary());
            assert!(
                resp.header("etag").is_some(),
                "206 without ETag: {}",
                resp.summary()
            );
            if let [only] = ranges.as_slice() {
                let cr = resp
                    .header("content-range")
                    .unwrap_or_else(|| panic!("206 without Content-Range: {}", resp.summary()));
                assert_eq!(content_range(cr), (Some(*only), size), "Content-Range {cr:?}");
                assert_eq!(resp.header("content-type"), content_type, "{}", resp.summary());
                assert_eq!(resp.content_length(), Some(only.1 - only.0 + 1));
                if resp.body != slice(*only) {
                    panic!("206 {cr:?}: wrong bytes ({} of them)", resp.body.len());
                }
            } else {
                assert_eq!(
                    resp.header("content-range"),
                    None,
                    "multipart 206 with Content-Range"
                );
                let parts = multipart(resp);
                let got: Vec<(u64, u64)> = parts.iter().map(|p| p.range).collect();
                assert_eq!(&got, ranges, "the parts' ranges");
                for p in &parts {
                    assert_eq!(p.complete, size, "complete length of part {:?}", p.range);
                    assert_eq!(
                        p.content_type.as_deref(),
                        content_type,
                        "Content-Type of part {:?}",
                        p.range
                    );
                    assert!(p.data == slice(p.range), "part {:?}: wrong bytes", p.range);
                }
            }
        }
    }
}

/// Runs every row (a Range field value and what it must get) as a GET of
/// `target` on a fresh connection, each followed on that connection by a
/// GET of `/style.css`: a response longer or shorter than its Content-Length
/// makes that one fail.
#[track_caller]
fn range_table(s: &TestServer, target: &Target, rows: &[(String, Want)]) {
    let rows: Vec<(String, String, Want)> = rows
        .iter()
        .map(|(range, want)| (String::new(), range.clone(), want.clone()))
        .collect();
    range_table_with(s, target, &rows);
}

/// `range_table` with more header lines (`extra`, each ending in CRLF) per
/// row: `(extra, range, want)`.
#[track_caller]
fn range_table_with(s: &TestServer, target: &Target, rows: &[(String, String, Want)]) {
    let plain = exchange(s, "GET", &target.path, &target.extra);
    assert_body(&plain, &target.bytes);
    let content_type = plain.header("content-type");
    let style = s.site.read("style.css");
    table(
        s.model,
        rows,
        |(extra, range, _)| format!("GET {} {extra:?} Range: {range:.60}", target.path),
        |(extra, range, want)| {
            let mut c = s.connect();
            c.send(req(
                "GET",
                &target.path,
                &format!("{}{extra}Range: {range}\r\n", target.extra),
            ));
            let resp = c.read_response();
            check_range(&resp, target, content_type, want);
            c.send(get_req("/style.css"));
            assert_body(&c.read_response(), &style);
        },
    );
}

/// The single-range cases of RFC 9110 §14.1.1–§14.1.3 for a representation
/// of `n` bytes (at least 200).
fn single_ranges(n: u64) -> Vec<(String, Want)> {
    vec![
        ("bytes=0-99".into(), part(0, 99)),
        ("bytes=0-0".into(), part(0, 0)),
        // §14.1.2: last-pos may be omitted: to the end.
        ("bytes=100-".into(), part(100, n - 1)),
        // §14.1.2: suffix-range, the last N bytes.
        ("bytes=-100".into(), part(n - 100, n - 1)),
        ("bytes=-1".into(), part(n - 1, n - 1)),
        // §14.1.2: a last-pos at or beyond the end is the end.
        ("bytes=10-999999999".into(), part(10, n - 1)),
        (format!("bytes={}-{}", n - 1, n - 1), part(n - 1, n - 1)),
        (format!("bytes=0-{}", n - 1), part(0, n - 1)),
        (format!("bytes=0-{n}"), part(0, n - 1)),
        // §14.1.3: a suffix longer than the representation is all of it.
        (format!("bytes=-{}", n + 50), part(0, n - 1)),
        // §14.1: range units are case-insensitive.
        ("BYTES=0-9".into(), part(0, 9)),
        // §14.1.1: unsatisfiable specs are dropped while another is
        // satisfiable.
        (format!("bytes=0-1,{n}-"), part(0, 1)),
        // §14.1.1: first-pos at or past the end, and -0, are unsatisfiable.
        (format!("bytes={n}-"), Want::Unsatisfiable),
        (format!("bytes={n}-{}", n + 10), Want::Unsatisfiable),
        ("bytes=-0".into(), Want::Unsatisfiable),
        (format!("bytes={n}-,-0"), Want::Unsatisfiable),
        // §14.2: a Range that does not parse is ignored.
        ("bytes=abc".into(), Want::Full),
        ("bytes=5-2".into(), Want::Full),
        ("bytes=".into(), Want::Full),
        ("bytes=-".into(), Want::Full),
        ("bytes=1-2-3".into(), Want::Full),
        ("bytes=0x10-20".into(), Want::Full),
        ("items=0-1".into(), Want::Full),
        ("bytes 0-1".into(), Want::Full),
    ]
}

/// Several ranges (RFC 9110 §14.6): parts in the requested order (RFC 9110
/// §15.3.7.2: the server SHOULD send the parts in the order of the
/// range-specs), coalesced when they overlap or touch, for a representation
/// of `n` bytes (at least 200).
fn several_ranges(n: u64) -> Vec<(String, Want)> {
    vec![
        ("bytes=0-9,20-29".into(), Want::Parts(vec![(0, 9), (20, 29)])),
        // §5.6.1: OWS around the list's commas.
        ("bytes=0-9 , 20-29".into(), Want::Parts(vec![(0, 9), (20, 29)])),
        (
            "bytes=0-0,-1,100-149".into(),
            Want::Parts(vec![(0, 0), (n - 1, n - 1), (100, 149)]),
        ),
        // Overlapping, adjacent: one range, so no multipart.
        ("bytes=0-9,5-14".into(), part(0, 14)),
        ("bytes=5-14,0-9".into(), part(0, 14)),
        ("bytes=0-9,10-19".into(), part(0, 19)),
        ("bytes=0-,10-20".into(), part(0, n - 1)),
        // §14.1.1: a server may refuse many small ranges; never 200 parts.
        (
            format!(
                "bytes={}",
                (0..200)
                    .map(|i| format!("{0}-{0}", 2 * i))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Want::FullOr416,
        ),
    ]
}

model_tests! {
    // RFC 9110 §14.3: file responses advertise byte ranges.
    fn file_responses_accept_ranges(s) {
        for path in ["/readme.txt", "/big.bin", "/", "/app.js"] {
            for method in ["GET", "HEAD"] {
                let resp = exchange(&s, method, path, "");
                assert_eq!(resp.status, 200, "{method} {path}: {}", resp.summary());
                assert_eq!(resp.header("accept-ranges"), Some("bytes"), "{method} {path}: {}", resp.summary());
            }
        }
    }

    // RFC 9110 §14.1.2, §14.4, §15.3.7: one range of a small (in-memory)
    // file and of the 1 MiB one (sendfile).
    fn single_range(s) {
        for rel in ["index.html", "big.bin"] {
            let target = Target::file(&s, rel);
            range_table(&s, &target, &single_ranges(target.bytes.len() as u64));
        }
        // Deep inside the big file.
        let target = Target::file(&s, "big.bin");
        let rows = [
            ("bytes=500000-600000".to_string(), part(500_000, 600_000)),
            ("bytes=1000-1047999".to_string(), part(1000, 1_047_999)),
            ("bytes=-700000".to_string(), part(BIG_LEN as u64 - 700_000, BIG_LEN as u64 - 1)),
        ];
        range_table(&s, &target, &rows);
    }

    // RFC 9110 §14.1.1: no range of an empty representation is
    // satisfiable: 416 with `bytes */0`.
    fn ranges_of_an_empty_file(s) {
        s.site.write("empty.txt", b"");
        let target = Target::file(&s, "empty.txt");
        let rows: Vec<(String, Want)> = ["bytes=0-0", "bytes=0-", "bytes=-5", "bytes=0-9,20-29"]
            .iter()
            .map(|r| (r.to_string(), Want::Unsatisfiable))
            .collect();
        range_table(&s, &target, &rows);
        let resp = exchange(&s, "HEAD", "/empty.txt", "Range: bytes=0-0\r\n");
        assert_eq!(resp.status, 200, "{}", resp.summary());
        assert_eq!(resp.content_length(), Some(0));
    }

    // RFC 9110 §14.6: several ranges are sent as multipart/byteranges, each
    // part with its Content-Type and Content-Range; overlapping ones are
    // coalesced; a flood of tiny ranges is refused.
    #[tls]
    fn several_ranges_are_multipart(s) {
        for rel in ["index.html", "big.bin"] {
            let target = Target::file(&s, rel);
            range_table(&s, &target, &several_ranges(target.bytes.len() as u64));
        }
        let target = Target::file(&s, "big.bin");
        let n = BIG_LEN as u64;
        let rows = [(
            "bytes=0-99999,500000-599999,-100000".to_string(),
            Want::Parts(vec![(0, 99_999), (500_000, 599_999), (n - 100_000, n - 1)]),
        )];
        range_table(&s, &target, &rows);
    }

    // RFC 9110 §14.2: range handling is defined for GET only; HEAD ignores
    // Range and answers as for a plain GET.
    fn range_on_head_is_ignored(s) {
        for rel in ["index.html", "big.bin"] {
            let path = format!("/{rel}");
            let len = s.site.read(rel).len() as u64;
            let rows = ["bytes=0-99", "bytes=-100", "bytes=0-9,20-29", &format!("bytes={len}-")].map(String::from);
            table(s.model, &rows, |r| format!("HEAD {path} Range: {r}"), |range| {
                let mut c = s.connect();
                c.send(req("HEAD", &path, &format!("Range: {range}\r\n")));
                let resp = c.read_head_response();
                assert_eq!(resp.status, 200, "{}", resp.summary());
                assert_eq!(resp.content_length(), Some(len), "{}", resp.summary());
                assert_eq!(resp.header("content-range"), None, "{}", resp.summary());
                c.send(get_req("/style.css"));
                assert_body(&c.read_response(), &s.site.read("style.css"));
            });
        }
    }

    // RFC 9110 §13.1.5: If-Range: the range only if the validator matches
    // strongly (an entity-tag, or exactly the Last-Modified date); the whole
    // representation otherwise.
    fn if_range(s) {
        for rel in ["index.html", "big.bin"] {
            s.site.set_mtime(rel, long_ago());
            let target = Target::file(&s, rel);
            let e = strong_etag(&exchange(&s, "GET", &target.path, ""));
            let other_date = http_date(long_ago() - std::time::Duration::from_secs(1));
            let later_date = http_date(long_ago() + std::time::Duration::from_secs(1));
            let rows: Vec<(String, String, Want)> = [
                (format!("If-Range: {e}"), part(0, 99)),
                ("If-Range: \"other\"".to_string(), Want::Full),
                (format!("If-Range: W/{e}"), Want::Full),
                (format!("If-Range: {}", LONG_AGO[0]), part(0, 99)),
                (format!("If-Range: {other_date}"), Want::Full),
                (format!("If-Range: {later_date}"), Want::Full),
                ("If-Range: not a validator".to_string(), Want::Full),
            ]
            .into_iter()
            .map(|(if_range, want)| (format!("{if_range}\r\n"), "bytes=0-99".to_string(), want))
            .collect();
            range_table_with(&s, &target, &rows);
        }
    }

    // RFC 9110 §14.1.2 with §8.4: the range applies to the selected
    // representation, here the gzip-coded app.js.gz.
    fn ranges_of_a_precompressed_body(s) {
        let target = Target {
            path: "/app.js".into(),
            extra: "Accept-Encoding: gzip\r\n".into(),
            bytes: s.site.read("app.js.gz"),
        };
        let n = target.bytes.len() as u64;
        let rows = [
            ("bytes=0-9".to_string(), part(0, 9)),
            ("bytes=-20".to_string(), part(n - 20, n - 1)),
            ("bytes=0-9,20-29".to_string(), Want::Parts(vec![(0, 9), (20, 29)])),
            (format!("bytes={n}-"), Want::Unsatisfiable),
        ];
        range_table(&s, &target, &rows);
        let resp = exchange(&s, "GET", "/app.js", "Accept-Encoding: gzip\r\nRange: bytes=0-9\r\n");
        assert_eq!(resp.status, 206, "{}", resp.summary());
        assert_eq!(resp.header("content-encoding"), Some("gzip"), "{}", resp.summary());
        assert!(resp.has_token("vary", "accept-encoding"), "{}", resp.summary());
    }
}

/// The harness's own parser: exact framing or a failure.
#[test]
fn multipart_parser_is_exact() {
    let response = |body: &str| Response {
        minor: 1,
        status: 206,
        reason: "Partial Content".into(),
        headers: vec![("Content-Type".into(), "multipart/byteranges; boundary=XYZ".into())],
        body: body.as_bytes().to_vec(),
    };
    let good = "--XYZ\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-2/10\r\n\r\nabc\r\n\
                --XYZ\r\nContent-Range: bytes 8-9/10\r\n\r\nij\r\n--XYZ--\r\n";
    let parts = multipart(&response(good));
    assert_eq!(parts.len(), 2);
    assert_eq!(
        (parts[0].range, parts[0].complete, &parts[0].data[..]),
        ((0, 2), 10, &b"abc"[..])
    );
    assert_eq!(parts[0].content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        (
            parts[1].range,
            parts[1].content_type.as_deref(),
            &parts[1].data[..]
        ),
        ((8, 9), None, &b"ij"[..])
    );
    assert_eq!(
        multipart(&response(&format!("\r\n{good}"))).len(),
        2,
        "a CRLF preamble"
    );
    for bad in [
        good.replace("--XYZ--\r\n", "--XYZ--\r\nmore"),
        good.replace("--XYZ--\r\n", "--XYZ--"),
        good.replace("abc", "abcd"),
        good.replace("ij\r\n", "i\r\n"),
        good.replace("--XYZ--", "--XYZ"),
        good.replace("bytes 0-2/10", "bytes */10"),
    ] {
        let outcome = std::panic::catch_unwind(|| multipart(&response(&bad)));
        assert!(outcome.is_err(), "accepted {bad:?}");
    }
}
