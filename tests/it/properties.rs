//! Properties of the sans-IO core over generated streams: no sockets, no models, only
//! `bingfa::http::Connection` driven as a socket would drive it, with a fake handler.
//!
//! - Any split of a valid pipelined stream into reads yields the same bytes out as one read.
//! - Garbage after a valid prefix never changes the answers to the prefix.
//!
//! Streams come from a small deterministic PRNG (xorshift64*), so a failure names the seed
//! and stream that reproduce it. `fuzz/` (cargo fuzz) explores the same core with arbitrary
//! bytes; this is the part of it that runs in `cargo test`.

use bingfa::http::{
    Action, Body, Clock, Connection, EntityTag, Handler, Reply, Request, Settings, Status, Transmit,
    Validators,
};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

/// Streams generated per property. Each is checked under `SPLITS` random splits.
const STREAMS: usize = 300;
const SPLITS: usize = 8;

/// xorshift64*: a few lines, no dependency, and the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0), near enough for test data.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `1/n`.
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// A handler whose answer depends only on the path, so every run answers alike:
/// `/missing…` 404, `/dir…` a redirect, `/v…` a body with validators (so conditional and
/// range requests are shaped by the core), anything else a body naming the path.
struct FakeSite;

impl Handler for FakeSite {
    fn handle(&self, request: &Request<'_>) -> Reply {
        let path = request.path;
        if path.starts_with(b"/missing") {
            return Reply::error(Status::NotFound);
        }
        if path.starts_with(b"/dir") {
            return Reply::moved_permanently(format!("/dir{}/", path.len()));
        }
        let body = format!("content of {}\n", String::from_utf8_lossy(path)).repeat(1 + path.len() % 3);
        let mut reply = Reply::ok(
            Cow::Borrowed("text/plain"),
            Body::Shared(Arc::from(body.into_bytes())),
        );
        if path.starts_with(b"/v") {
            reply.validators = Some(Validators::new(
                EntityTag::strong("v1").unwrap(),
                UNIX_EPOCH + Duration::from_secs(784_000_000),
            ));
        }
        reply
    }
}

/// What a connection did with a stream: the bytes it sent, whether it asked to half-close,
/// whether it closed.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    out: Vec<u8>,
    finished: bool,
    closed: bool,
}

/// Feeds `pieces` one read each (cut further only where a piece does not fit the buffer
/// offered), writes everything it is asked to send, and after the last piece either reports
/// end of stream (`close_at_end`) or stops when the connection asks for more.
fn run(pieces: &[&[u8]], close_at_end: bool) -> Outcome {
    let clock = Clock::new(UNIX_EPOCH + Duration::from_secs(784_111_777), Instant::now());
    let mut conn = Connection::new(Settings::default(), clock.now());
    let mut pieces = pieces.iter().copied().filter(|piece| !piece.is_empty());
    let mut current: &[u8] = &[];
    let mut outcome = Outcome {
        out: Vec::new(),
        finished: false,
        closed: false,
    };
    let mut eof = false;
    for _ in 0..1_000_000 {
        match conn.poll(&clock, &FakeSite) {
            Action::Send(Transmit::Bytes { bytes, .. }) => {
                outcome.out.extend_from_slice(bytes);
                let n = bytes.len();
                conn.sent(n, clock.now());
            }
            Action::Send(Transmit::File { .. }) => unreachable!("the fake site has no files"),
            Action::Receive { buf, .. } => {
                if current.is_empty() {
                    match pieces.next() {
                        Some(piece) => current = piece,
                        None if close_at_end && !eof => {
                            eof = true;
                            conn.received(0, clock.now());
                            continue;
                        }
                        None => return outcome,
                    }
                }
                let n = current.len().min(buf.len());
                buf[..n].copy_from_slice(&current[..n]);
                current = &current[n..];
                conn.received(n, clock.now());
            }
            Action::Finish => outcome.finished = true,
            Action::Close => {
                outcome.closed = true;
                return outcome;
            }
        }
    }
    panic!("the connection made no progress");
}

/// A valid pipelined stream, with whether each request is a HEAD (its response has no body).
struct Stream {
    bytes: Vec<u8>,
    heads: Vec<bool>,
}

fn random_path(rng: &mut Rng) -> String {
    const STARTS: [&str; 6] = ["/", "/v", "/missing", "/dir", "/a", "/%E4%B8%AD"];
    const CHARS: &[u8] = b"abcxyz0189-._~";
    let mut path = rng.pick(&STARTS).to_string();
    for _ in 0..rng.below(4) {
        for _ in 0..rng.below(6) {
            path.push(*rng.pick(CHARS) as char);
        }
        if rng.one_in(3) {
            path.push_str("%20");
        }
        path.push('/');
    }
    if rng.one_in(2) {
        path.push_str("index.html");
    }
    if rng.one_in(5) {
        path.push_str("?q=1&r=%2F");
    }
    path
}

/// Fields that shape a response without changing its framing.
fn random_fields(rng: &mut Rng, request: &mut Vec<u8>) {
    const FIELDS: [&str; 11] = [
        "User-Agent: property/1.0\r\n",
        "Accept: */*\r\n",
        "Accept-Encoding: gzip, br\r\n",
        "If-None-Match: \"v1\"\r\n",
        "If-None-Match: \"v0\", W/\"v1\"\r\n",
        "If-Match: \"v2\"\r\n",
        "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n",
        "Range: bytes=0-4\r\n",
        "Range: bytes=2-3,7-9,-2\r\n",
        "Range: bytes=9999-\r\n",
        "X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
    ];
    for _ in 0..rng.below(4) {
        request.extend_from_slice(rng.pick(&FIELDS).as_bytes());
    }
}

/// Request bodies are skipped by the core: make them look like requests now and then, so a
/// body that is ever parsed as a head shows in the output.
fn random_body(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(120);
    if rng.one_in(3) {
        b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1 + len / 40)
    } else {
        rng.bytes(len)
    }
}

fn random_stream(rng: &mut Rng) -> Stream {
    let count = 1 + rng.below(8);
    let mut bytes = Vec::new();
    let mut heads = Vec::new();
    for i in 0..count {
        let last = i + 1 == count;
        let head = rng.one_in(4);
        let method = if head { "HEAD" } else { "GET" };
        let http10 = rng.one_in(8);
        let version = if http10 { "HTTP/1.0" } else { "HTTP/1.1" };
        let mut request = format!("{method} {} {version}\r\n", random_path(rng)).into_bytes();
        if !http10 || rng.one_in(2) {
            request.extend_from_slice(b"Host: example.test\r\n");
        }
        random_fields(rng, &mut request);
        if http10 {
            request.extend_from_slice(b"Connection: keep-alive\r\n");
        } else if last && rng.one_in(4) {
            request.extend_from_slice(b"Connection: close\r\n");
        }
        // HTTP/1.0 has no chunked framing (the core refuses it), so 1.0 bodies are counted.
        match rng.below(4) {
            0 => {
                let body = random_body(rng);
                request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
                request.extend_from_slice(&body);
            }
            1 if !http10 => {
                request.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                for _ in 0..rng.below(4) {
                    let chunk = random_body(rng);
                    if chunk.is_empty() {
                        continue; // A zero-size chunk is the last one.
                    }
                    let extension = if rng.one_in(3) { ";ext=\"v\"" } else { "" };
                    request.extend_from_slice(format!("{:x}{extension}\r\n", chunk.len()).as_bytes());
                    request.extend_from_slice(&chunk);
                    request.extend_from_slice(b"\r\n");
                }
                request.extend_from_slice(b"0\r\n");
                if rng.one_in(3) {
                    request.extend_from_slice(b"Trailer-Field: x\r\n");
                }
                request.extend_from_slice(b"\r\n");
            }
            _ => request.extend_from_slice(b"\r\n"),
        }
        bytes.extend_from_slice(&request);
        heads.push(head);
    }
    Stream { bytes, heads }
}

/// Cuts `bytes` into 3 to 10 pieces at random places (some may be empty).
fn random_split<'a>(rng: &mut Rng, bytes: &'a [u8]) -> Vec<&'a [u8]> {
    let pieces = 3 + rng.below(8);
    let mut cuts: Vec<usize> = (0..pieces - 1).map(|_| rng.below(bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut split = Vec::with_capacity(pieces);
    let mut start = 0;
    for cut in cuts {
        split.push(&bytes[start..cut]);
        start = cut;
    }
    split.push(&bytes[start..]);
    split
}

/// Splits `out` into its responses, using `heads` to know which have no body; fails unless
/// there is exactly one well-formed response per request.
fn responses<'a>(out: &'a [u8], heads: &[bool]) -> Vec<&'a [u8]> {
    let mut responses = Vec::new();
    let mut at = 0;
    for &head in heads {
        let mut fields = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut fields);
        let Ok(httparse::Status::Complete(head_len)) = response.parse(&out[at..]) else {
            panic!(
                "response {} does not parse: {:?}",
                responses.len(),
                String::from_utf8_lossy(&out[at..])
            );
        };
        let length = response
            .headers
            .iter()
            .find(|field| field.name.eq_ignore_ascii_case("content-length"))
            .map(|field| {
                std::str::from_utf8(field.value)
                    .unwrap()
                    .parse::<usize>()
                    .unwrap()
            });
        let body_len = match (response.code, length) {
            (Some(304), None) => 0,
            (_, Some(_)) if head => 0,
            (_, Some(length)) => length,
            (code, None) => panic!("status {code:?} without Content-Length"),
        };
        let end = at + head_len + body_len;
        assert!(end <= out.len(), "response {} is cut short", responses.len());
        responses.push(&out[at..end]);
        at = end;
    }
    assert_eq!(at, out.len(), "bytes after the last response");
    responses
}

fn shown(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn any_split_of_a_valid_pipeline_gives_the_same_responses() {
    let started = Instant::now();
    let mut rng = Rng::new(0x000b_19fa);
    let mut runs = 0;
    for n in 0..STREAMS {
        let stream = random_stream(&mut rng);
        let close_at_end = rng.one_in(2);
        let whole = run(&[&stream.bytes], close_at_end);
        let answered = responses(&whole.out, &stream.heads);
        for (i, response) in answered.iter().enumerate() {
            assert!(
                !shown(response).contains("/smuggled"),
                "stream {n}: a request body was read as a request"
            );
            assert!(response.starts_with(b"HTTP/1.1 "), "stream {n}, response {i}");
        }
        for _ in 0..SPLITS {
            let split = random_split(&mut rng, &stream.bytes);
            let outcome = run(&split, close_at_end);
            runs += 1;
            if outcome != whole {
                let lengths: Vec<usize> = split.iter().map(|piece| piece.len()).collect();
                panic!(
                    "stream {n} in pieces {lengths:?} (close at end: {close_at_end}) answers \
                     differently from one read.\n--- stream\n{}\n--- one read ({whole:?})\n{}\n--- pieces\n{}",
                    shown(&stream.bytes),
                    shown(&whole.out),
                    shown(&outcome.out),
                );
            }
        }
        // One byte at a time, the most extreme split, for a few streams.
        if n % 50 == 0 {
            let bytes: Vec<&[u8]> = stream.bytes.chunks(1).collect();
            assert_eq!(run(&bytes, close_at_end), whole, "stream {n} one byte at a time");
        }
    }
    assert!(runs >= STREAMS * SPLITS);
    eprintln!(
        "{STREAMS} streams, {runs} splits compared in {:?}",
        started.elapsed()
    );
}

/// Garbage: random bytes, or HTTP-looking fragments that are wrong in some way.
fn random_garbage(rng: &mut Rng) -> Vec<u8> {
    const FRAGMENTS: [&[u8]; 12] = [
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET /a HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n",
        b"\x00\x01\x02\xff\xfe",
        b"\r\n\r\n\r\n",
        b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
        b"GET /a\r\n\r\n",
        b" HTTP/1.1 200 OK\r\n",
        b"GET /a HTTP/1.1\r\nHost x\r\n\r\n",
    ];
    let mut garbage = Vec::new();
    for _ in 0..1 + rng.below(4) {
        if rng.one_in(2) {
            let fragment: &[u8] = FRAGMENTS[rng.below(FRAGMENTS.len())];
            garbage.extend_from_slice(fragment);
        } else {
            let len = 1 + rng.below(64);
            garbage.extend(rng.bytes(len));
        }
    }
    garbage
}

#[test]
fn garbage_after_a_valid_prefix_never_changes_its_responses() {
    let started = Instant::now();
    let mut rng = Rng::new(0x09a7_ba9e);
    let mut garbled = 0;
    for n in 0..STREAMS {
        let stream = random_stream(&mut rng);
        let prefix = run(&[&stream.bytes], false);
        let answered = responses(&prefix.out, &stream.heads).len();
        assert_eq!(answered, stream.heads.len(), "stream {n}");
        for _ in 0..2 {
            let mut bytes = stream.bytes.clone();
            bytes.extend(random_garbage(&mut rng));
            let close_at_end = rng.one_in(2);
            let whole = run(&[&bytes], close_at_end);
            let split = random_split(&mut rng, &bytes);
            let pieces = run(&split, close_at_end);
            for (how, outcome) in [("in one read", &whole), ("in pieces", &pieces)] {
                assert!(
                    outcome.out.starts_with(&prefix.out),
                    "stream {n} with garbage {how}: the answers to the valid prefix changed.\n\
                     --- stream\n{}\n--- prefix alone\n{}\n--- with garbage\n{}",
                    shown(&bytes),
                    shown(&prefix.out),
                    shown(&outcome.out),
                );
            }
            garbled += 1;
        }
    }
    eprintln!(
        "{STREAMS} streams, {garbled} garbage tails (each in one read and in pieces) checked in {:?}",
        started.elapsed()
    );
}
