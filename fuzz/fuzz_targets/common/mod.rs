//! What the fuzz targets of the HTTP path share: a fake handler that remembers what it
//! answered, and a checker that every byte sent back is a well-formed response to it.

use bingfa::http::{Body, EntityTag, Exchange, Handler, Method, Reply, Request, Status, Validators};
use std::borrow::Cow;
use std::cell::RefCell;
use std::fs::File;
use std::io::Write;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, UNIX_EPOCH};

/// The wall clock of every run: Sun, 06 Nov 1994 08:49:37 GMT.
pub const NOW: u64 = 784_111_777;
/// The strong ETag of every `/v…` resource.
pub const ETAG: &str = "\"v1\"";
/// Bytes of the `/b…` resources: a few of them pipelined pass the core's output high-water mark.
pub const BIG: usize = 70_000;

/// What the fake handler answered to one request, to check the response against.
#[derive(Debug, Clone)]
pub struct Call {
    pub head: bool,
    pub kind: Kind,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// 200 with an in-memory body and no validators.
    Plain,
    /// 200 with validators: conditional requests and ranges apply.
    Validated,
    /// An error page.
    Error(u16),
    /// 301 to this location.
    Redirect(String),
}

/// Answers by the first byte of the path after `/`:
/// `v` validated, `e` error (404/403/500 by the next byte), `r` redirect, `z` an empty static
/// body, `b` a 70 000-byte body, `f` a 40 000-byte file (a `Body::File`, validated, so that
/// ranges of it are sent too), anything else a plain body of up to 299 bytes.
/// Every reply carries `Cache-Control: fuzz-N` (N counts the calls) so that its response can
/// be matched to the call: the core keeps that field on every shaped reply except a 412.
#[derive(Default)]
pub struct FakeSite {
    pub calls: RefCell<Vec<Call>>,
}

impl Handler for FakeSite {
    fn handle(&self, request: &Request<'_>) -> Reply {
        let path = request.path;
        let hash = fnv(path);
        let content = |len: usize| -> Vec<u8> {
            (0..len)
                .map(|i| (hash as usize).wrapping_add(i.wrapping_mul(7)) as u8)
                .collect()
        };
        let plain = (hash >> 16) as usize % 300;
        let (kind, mut reply, body) = match path.get(1) {
            Some(b'f') => {
                let file = site_file();
                let mut reply = file.reply();
                reply.validators = Some(validators());
                (Kind::Validated, reply, file.content.clone())
            }
            Some(b'v') => {
                let body = content(plain);
                let mut reply = shared(&body);
                reply.validators = Some(validators());
                (Kind::Validated, reply, body)
            }
            Some(b'e') => {
                let status = match path.get(2) {
                    Some(b'3') => Status::Forbidden,
                    Some(b'5') => Status::InternalServerError,
                    _ => Status::NotFound,
                };
                let reply = Reply::error(status);
                let body = status_page(&reply);
                (Kind::Error(status.code()), reply, body)
            }
            Some(b'r') => {
                let location = format!("/moved/{hash:x}/");
                let reply = Reply::moved_permanently(location.clone());
                let body = status_page(&reply);
                (Kind::Redirect(location), reply, body)
            }
            Some(b'z') => (
                Kind::Plain,
                Reply::ok(Cow::Borrowed("text/plain"), Body::Static(b"")),
                Vec::new(),
            ),
            Some(b'b') => {
                let body = content(BIG);
                (Kind::Plain, shared(&body), body)
            }
            _ => {
                let body = content(plain);
                (Kind::Plain, shared(&body), body)
            }
        };
        let mut calls = self.calls.borrow_mut();
        reply.cache_control = Some(Arc::from(format!("fuzz-{}", calls.len())));
        calls.push(Call {
            head: request.method == Method::Head,
            kind,
            body,
        });
        reply
    }

    fn exchanged(&self, exchange: &Exchange<'_>) {
        // Every response has a head, so it is longer than its content.
        assert!(exchange.bytes > exchange.body_bytes, "{exchange:?}");
    }
}

/// The file of every site: more than one piece of the TLS seam's `pread` (16 KiB).
fn site_file() -> &'static SiteFile {
    static FILE: OnceLock<SiteFile> = OnceLock::new();
    FILE.get_or_init(|| SiteFile::new(40_000))
}

/// A file the site serves: an unnamed temporary file, so nothing is left behind.
struct SiteFile {
    file: File,
    content: Vec<u8>,
}

impl SiteFile {
    /// `len` bytes of a fixed pattern.
    fn new(len: usize) -> SiteFile {
        let content: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut file = tempfile::tempfile().expect("a temporary file");
        file.write_all(&content).expect("the temporary file written");
        SiteFile { file, content }
    }

    fn reply(&self) -> Reply {
        let file = self.file.try_clone().expect("the file's descriptor duplicated");
        let len = self.content.len() as u64;
        Reply::ok(
            Cow::Borrowed("application/octet-stream"),
            Body::File { file, len },
        )
    }
}

/// The validators of every validated resource.
fn validators() -> Validators {
    Validators::new(
        EntityTag::strong(&ETAG[1..ETAG.len() - 1]).unwrap(),
        UNIX_EPOCH + Duration::from_secs(NOW - 1000),
    )
}

fn shared(body: &[u8]) -> Reply {
    Reply::ok(
        Cow::Borrowed("application/octet-stream"),
        Body::Shared(Arc::from(body)),
    )
}

fn status_page(reply: &Reply) -> Vec<u8> {
    match &reply.body {
        Body::Static(bytes) => bytes.to_vec(),
        Body::Shared(bytes) => bytes.to_vec(),
        Body::File { .. } => unreachable!("status pages are in memory"),
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Every byte of `out` must belong to a well-formed response.
///
/// A response's body length is known from the call it answers: responses that carry
/// `Cache-Control: fuzz-N` answer handler call N (so calls are answered in order, and a
/// HEAD's response has headers only); a 412 without it answers the next call (the core
/// replaces a failed precondition's reply by its own 412 page, dropping the tag); any other
/// response was made by the core itself (400, 405, 413, 414, 431, 501, 505, and 503 on a
/// connection beyond the limit), and its body follows in full. A 304 has no `Content-Length` and no body; every other response has one.
/// Returns where each response starts.
pub fn check_responses(out: &[u8], calls: &[Call]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 0;
    let mut next_call = 0;
    while at < out.len() {
        starts.push(at);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let head_len = match response.parse(&out[at..]) {
            Ok(httparse::Status::Complete(len)) => len,
            other => panic!(
                "no response head at byte {at}: {other:?} in {:?}",
                String::from_utf8_lossy(&out[at..out.len().min(at + 200)])
            ),
        };
        assert_eq!(response.version, Some(1), "HTTP/1.1 responses only");
        let code = response.code.expect("a complete head has a code");
        let field = |name: &str| -> Option<&str> {
            let mut values = response
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name));
            let value = values
                .next()
                .map(|h| std::str::from_utf8(h.value).expect("ASCII field"));
            assert!(values.next().is_none(), "{name} appears twice");
            value
        };
        assert_eq!(field("Server"), Some("bingfa"));
        assert!(field("Date").is_some(), "no Date");
        let length: Option<usize> = field("Content-Length").map(|v| v.parse().expect("a decimal length"));
        let call = match field("Cache-Control").and_then(|v| v.strip_prefix("fuzz-")) {
            Some(n) => {
                let n: usize = n.parse().expect("a call number");
                assert_eq!(n, next_call, "responses out of order");
                Some(n)
            }
            None if code == 412 => Some(next_call),
            None => {
                assert!(
                    [400, 405, 413, 414, 431, 501, 503, 505].contains(&code),
                    "status {code} made by the core itself"
                );
                None
            }
        };
        let call = call.map(|n| {
            next_call += 1;
            calls
                .get(n)
                .unwrap_or_else(|| panic!("response to call {n}, of {} calls", calls.len()))
        });
        let length = match (code, length) {
            (304, None) => 0,
            (304, Some(_)) => panic!("a 304 with Content-Length"),
            (_, Some(length)) => length,
            (_, None) => panic!("status {code} without Content-Length"),
        };
        if code != 304 {
            assert!(
                field("Content-Type").is_some(),
                "status {code} without Content-Type"
            );
        }
        let head_only = call.is_some_and(|c| c.head);
        let body_start = at + head_len;
        let follows = if head_only || code == 304 { 0 } else { length };
        assert!(
            out.len() - body_start >= follows,
            "status {code} announces {length} bytes, {} follow",
            out.len() - body_start
        );
        let body = &out[body_start..body_start + follows];
        if let Some(call) = call {
            check_answer(call, code, length, body, &field);
        }
        at = body_start + follows;
        if field("Connection") == Some("close") {
            assert_eq!(
                at,
                out.len(),
                "bytes after a response that said Connection: close"
            );
        }
    }
    assert_eq!(next_call, calls.len(), "a handler call without its response");
    starts
}

/// The response to one handler call says what the call answered.
fn check_answer<'a>(
    call: &Call,
    code: u16,
    length: usize,
    body: &[u8],
    field: &dyn Fn(&str) -> Option<&'a str>,
) {
    let full = call.body.len();
    match &call.kind {
        Kind::Plain => {
            assert_eq!((code, length), (200, full));
            assert!(call.head || body == call.body, "the body is not the handler's");
        }
        Kind::Error(status) => {
            assert_eq!((code, length), (*status, full));
            assert!(call.head || body == call.body);
        }
        Kind::Redirect(location) => {
            assert_eq!((code, length), (301, full));
            assert_eq!(field("Location"), Some(location.as_str()));
        }
        Kind::Validated => match code {
            200 => {
                assert_eq!(length, full);
                assert_eq!(field("ETag"), Some(ETAG));
                assert!(call.head || body == call.body);
            }
            304 => assert_eq!(field("ETag"), Some(ETAG)),
            412 => {}
            206 => {
                assert!(!call.head, "a range answered to HEAD");
                let content_type = field("Content-Type").unwrap_or_default();
                if let Some(boundary) = content_type.strip_prefix("multipart/byteranges; boundary=") {
                    assert!(field("Content-Range").is_none());
                    let opening = format!("\r\n--{boundary}\r\n");
                    let closing = format!("\r\n--{boundary}--\r\n");
                    assert!(body.starts_with(opening.as_bytes()), "multipart opening");
                    assert!(body.ends_with(closing.as_bytes()), "multipart closing");
                } else {
                    let range = field("Content-Range").expect("206 with Content-Range");
                    let (first, last, size) = parse_content_range(range);
                    assert_eq!(size, full, "Content-Range size");
                    assert!(first <= last && last < full, "range {range} of {full}");
                    assert_eq!(length, last - first + 1);
                    assert_eq!(body, &call.body[first..=last]);
                }
            }
            416 => {
                assert!(!call.head, "416 answered to HEAD");
                assert_eq!(field("Content-Range"), Some(format!("bytes */{full}").as_str()));
            }
            _ => panic!("status {code} for a validated resource"),
        },
    }
}

/// `bytes FIRST-LAST/SIZE`
fn parse_content_range(value: &str) -> (usize, usize, usize) {
    let parse = || -> Option<(usize, usize, usize)> {
        let (range, size) = value.strip_prefix("bytes ")?.split_once('/')?;
        let (first, last) = range.split_once('-')?;
        Some((first.parse().ok()?, last.parse().ok()?, size.parse().ok()?))
    };
    parse().unwrap_or_else(|| panic!("malformed Content-Range {value:?}"))
}

/// Cuts `rest` into `count` pieces: its first `count - 1` bytes (as many as there are) are
/// the lengths of the first pieces, the last piece takes what is left of the stream.
/// Returns the pieces and the whole stream.
pub fn pieces(count: usize, rest: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let cuts = rest.len().min(count - 1);
    let (lengths, stream) = rest.split_at(cuts);
    let mut pieces = Vec::with_capacity(count);
    let mut remaining = stream;
    for &len in lengths {
        let (piece, tail) = remaining.split_at(usize::from(len).min(remaining.len()));
        pieces.push(piece);
        remaining = tail;
    }
    pieces.push(remaining);
    (pieces, stream)
}
