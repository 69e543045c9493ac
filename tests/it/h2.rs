//! HTTP/2 (RFC 9113): by prior knowledge on plaintext (h2c), by ALPN `h2` over TLS.
//!
//! - Every file, directory, error, conditional and range request is answered over HTTP/2 as
//!   over HTTP/1.1: the same status, fields (but `date`, and HTTP/1.1's connection fields)
//!   and body. A request body larger than the windows is read, then answered.
//! - The limits the server advertises (SETTINGS) and keeps: concurrent streams
//!   (`--h2-max-streams`), the header list size (the header limit).
//! - The attacks of the last years: rapid reset (CVE-2023-44487), CONTINUATION floods
//!   (CVE-2024-27316), floods of SETTINGS, PING, empty DATA and WINDOW_UPDATE (CVE-2019-9512,
//!   -9515, -9518), and a peer that breaks the protocol, answered with the error code RFC 9113
//!   names. Requests that stall or trickle (the header timeout, `--min-rate`), a client that
//!   never opens its window (the send timeout). After each, the server serves another client.
//! - HTTP/1.x requests that only look like HTTP/2 at first, or ask for `Upgrade: h2c`, are
//!   answered as HTTP/1.x, at once; the preface in pieces is HTTP/2 still.
//! - The access log and the metrics say `HTTP/2.0`.
//!
//! Two clients, on real sockets, speaking TLS with ALPN `h2` to a server started over TLS:
//! `H2Client`, the h2 crate's client driven from memory as the server drives h2
//! (src/seam/h2.rs), for well-formed exchanges; and `Raw`, frames written by hand (the
//! 9-byte frame header, then the payload; request header blocks from HPACK's static table)
//! and the server's frames read back, for what no well-behaved client sends.

use std::fs;
use std::future::Future;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bingfa::observe::LogFormat;
use bytes::Bytes;
use h2::Reason;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::binary::poll_until;
use crate::support::*;

/// What a client sends first on an HTTP/2 connection (RFC 9113 §3.4).
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// Frame types (RFC 9113 §6), flags and SETTINGS identifiers (§6.5.2).
const DATA: u8 = 0x0;
pub(crate) const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
pub(crate) const SETTINGS: u8 = 0x4;
pub(crate) const PING: u8 = 0x6;
pub(crate) const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;

pub(crate) const END_STREAM: u8 = 0x1;
pub(crate) const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
const SETTINGS_ENABLE_PUSH: u16 = 0x2;
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
const SETTINGS_MAX_HEADER_LIST_SIZE: u16 = 0x6;

/// The flow-control window a peer starts with (RFC 9113 §6.9.2).
const INITIAL_WINDOW: usize = 65_535;
/// The server's header limit (`Limits::max_header_bytes`), which is its header list size too.
const HEADER_LIMIT: u32 = 16 * 1024;
/// Frames in a flood: ten times what a client with no request may send before the server
/// calls it one, so a guard a little more lenient still has to act.
const FLOOD: usize = 10_000;
/// The pause between the pieces of a trickle: 10 a second.
const TRICKLE: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------------------
// The wire
// ---------------------------------------------------------------------------

/// A connection to a test server (`support::Wire`): TCP, or TLS offering ALPN `h2` alone to
/// a server started over TLS (trusting the test CA, for `localhost`).
impl Wire {
    fn connect(s: &TestServer) -> Wire {
        let socket = TcpStream::connect(s.addr).unwrap_or_else(|e| panic!("connect to {}: {e}", s.addr));
        socket.set_read_timeout(Some(SAFETY)).unwrap();
        socket.set_write_timeout(Some(SAFETY)).unwrap();
        socket.set_nodelay(true).unwrap();
        Wire::over_with(socket, h2_tls_client_config()).expect("a TLS client")
    }

    /// The protocol TLS agreed on, once the handshake is done; `None` over TCP.
    fn alpn(&self) -> Option<Vec<u8>> {
        match self {
            Wire::Tcp(_) => None,
            Wire::Tls(tls) => tls.conn.alpn_protocol().map(<[u8]>::to_vec),
        }
    }

    /// Writes all of `bytes`; false if the server has closed, or stopped reading for the
    /// safety timeout (what it sent before is still there to read).
    fn send(&mut self, bytes: &[u8]) -> bool {
        match self.write_all(bytes).and_then(|()| self.flush()) {
            Ok(()) => true,
            Err(e) => match e.kind() {
                ErrorKind::BrokenPipe
                | ErrorKind::ConnectionReset
                | ErrorKind::UnexpectedEof
                | ErrorKind::WouldBlock
                | ErrorKind::TimedOut => false,
                _ => panic!("write to server: {e}"),
            },
        }
    }

    /// One read, waiting at most `wait`: `Some(0)` once the server has closed (or reset),
    /// `None` if nothing came.
    fn read_within(&mut self, into: &mut [u8], wait: Duration) -> Option<usize> {
        let wait = wait.max(Duration::from_millis(1)); // a zero timeout is refused
        self.socket().set_read_timeout(Some(wait)).unwrap();
        let read = loop {
            match self.read(into) {
                Ok(n) => break Some(n),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break Some(0),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break None,
                Err(e) => panic!("read from server: {e}"),
            }
        };
        self.socket().set_read_timeout(Some(SAFETY)).unwrap();
        read
    }
}

/// The bytes between a `Wire` and h2's client: what came from the server, what h2 wrote.
#[derive(Default)]
struct Buffers {
    input: Vec<u8>,
    output: Vec<u8>,
    closed: bool,
}

/// h2's I/O object (h2 owns it, so the client keeps a second handle).
#[derive(Clone, Default)]
struct Pipe(Arc<Mutex<Buffers>>);

impl Pipe {
    fn lock(&self) -> MutexGuard<'_, Buffers> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl AsyncRead for Pipe {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let mut pipe = self.lock();
        if pipe.input.is_empty() {
            // The end of stream, or nothing yet: everything is polled again after a read.
            return if pipe.closed {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            };
        }
        let n = pipe.input.len().min(buf.remaining());
        buf.put_slice(&pipe.input[..n]);
        pipe.input.drain(..n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Pipe {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, bytes: &[u8]) -> Poll<std::io::Result<usize>> {
        self.lock().output.extend_from_slice(bytes);
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Polls `poll` until it is ready, moving bytes between `wire` and `pipe` meanwhile: what h2
/// wrote goes out, and the server is read when h2 has nothing to write. The waker does
/// nothing: everything is polled again after every read and write.
fn drive<T>(wire: &mut Wire, pipe: &Pipe, mut poll: impl FnMut(&mut Context<'_>) -> Poll<T>) -> T {
    let mut cx = Context::from_waker(Waker::noop());
    let mut chunk = vec![0; 64 * 1024];
    loop {
        let ready = poll(&mut cx);
        let output = std::mem::take(&mut pipe.lock().output);
        if !output.is_empty() {
            // A server that closed is seen at the next read.
            wire.send(&output);
        }
        if let Poll::Ready(done) = ready {
            return done;
        }
        if !output.is_empty() {
            continue;
        }
        assert!(!pipe.lock().closed, "the server closed while h2 waited for it");
        match wire.read_within(&mut chunk, SAFETY) {
            Some(0) => pipe.lock().closed = true,
            Some(n) => pipe.lock().input.extend_from_slice(&chunk[..n]),
            None => panic!("the server sent nothing for {SAFETY:?} while h2 waited for it"),
        }
    }
}

/// A request of the tests: method, target, fields and body, sent the same over either
/// protocol.
#[derive(Clone, Debug)]
struct Ask {
    method: &'static str,
    target: String,
    fields: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn ask(method: &'static str, target: impl Into<String>) -> Ask {
    Ask {
        method,
        target: target.into(),
        fields: Vec::new(),
        body: Vec::new(),
    }
}

impl Ask {
    fn with(mut self, name: &'static str, value: impl Into<String>) -> Ask {
        self.fields.push((name, value.into()));
        self
    }

    fn with_body(mut self, body: Vec<u8>) -> Ask {
        self.body = body;
        self
    }

    /// As HTTP/1.1, with `Host: localhost` (and a Content-Length for a body).
    fn http1(&self) -> Vec<u8> {
        let mut extra: String = self.fields.iter().map(|(n, v)| format!("{n}: {v}\r\n")).collect();
        if !self.body.is_empty() {
            extra += &format!("Content-Length: {}\r\n", self.body.len());
        }
        [req(self.method, &self.target, &extra).as_bytes(), &self.body].concat()
    }

    /// As HTTP/2, with `:authority localhost`.
    fn http2(&self, scheme: &str) -> ::http::Request<()> {
        let mut request = ::http::Request::builder()
            .method(self.method)
            .uri(format!("{scheme}://localhost{}", self.target));
        for (name, value) in &self.fields {
            request = request.header(*name, value);
        }
        request.body(()).unwrap_or_else(|e| panic!("{self:?}: {e}"))
    }
}

/// A response over HTTP/2: status, fields (names in lower case, as HTTP/2 has them), body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub fields: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// One request on its way, in the order its parts come.
enum Stream {
    Head(h2::client::ResponseFuture),
    Body(::http::response::Parts, h2::RecvStream, Vec<u8>),
    Done(Result<Answer, h2::Error>),
}

impl Stream {
    /// Moves on as far as what has come allows; whether it is done.
    fn advance(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            let next = match self {
                Stream::Head(future) => match Pin::new(future).poll(cx) {
                    Poll::Ready(Ok(response)) => {
                        let (parts, body) = response.into_parts();
                        Stream::Body(parts, body, Vec::new())
                    }
                    Poll::Ready(Err(e)) => Stream::Done(Err(e)),
                    Poll::Pending => return false,
                },
                Stream::Body(parts, body, bytes) => match body.poll_data(cx) {
                    Poll::Ready(Some(Ok(data))) => {
                        bytes.extend_from_slice(&data);
                        let _ = body.flow_control().release_capacity(data.len());
                        continue;
                    }
                    Poll::Ready(Some(Err(e))) => Stream::Done(Err(e)),
                    Poll::Ready(None) => Stream::Done(Ok(Answer {
                        status: parts.status.as_u16(),
                        fields: parts
                            .headers
                            .iter()
                            .map(|(n, v)| {
                                (
                                    n.as_str().to_string(),
                                    String::from_utf8_lossy(v.as_bytes()).into(),
                                )
                            })
                            .collect(),
                        body: std::mem::take(bytes),
                    })),
                    Poll::Pending => return false,
                },
                Stream::Done(_) => return true,
            };
            *self = next;
        }
    }
}

/// The h2 crate's client on one connection.
pub(crate) struct H2Client {
    wire: Wire,
    pipe: Pipe,
    /// `None` once h2 says the connection is over.
    connection: Option<h2::client::Connection<Pipe, Bytes>>,
    send: h2::client::SendRequest<Bytes>,
    scheme: &'static str,
}

impl H2Client {
    pub(crate) fn connect(s: &TestServer) -> H2Client {
        let mut wire = Wire::connect(s);
        let pipe = Pipe::default();
        let mut handshake = Box::pin(h2::client::handshake(pipe.clone()));
        let (send, connection) = drive(&mut wire, &pipe, |cx| handshake.as_mut().poll(cx))
            .unwrap_or_else(|e| panic!("[{}] h2 handshake: {e}", s.model));
        let scheme = if serves_tls(s.addr) { "https" } else { "http" };
        H2Client {
            wire,
            pipe,
            connection: Some(connection),
            send,
            scheme,
        }
    }

    /// Drives the connection until `step` is ready.
    fn until<T>(
        &mut self,
        mut step: impl FnMut(&mut Context<'_>, &mut h2::client::SendRequest<Bytes>) -> Poll<T>,
    ) -> T {
        let H2Client {
            wire,
            pipe,
            connection,
            send,
            ..
        } = self;
        let mut poll_connection = |cx: &mut Context<'_>| {
            if let Some(conn) = connection {
                if Pin::new(conn).poll(cx).is_ready() {
                    *connection = None;
                }
            }
        };
        drive(wire, pipe, |cx| {
            poll_connection(cx);
            let ready = step(cx, send);
            // What the step asked for (a request, a window update) is written now.
            poll_connection(cx);
            ready
        })
    }

    /// Sends every request at once, each on its own stream, and reads every answer.
    fn exchange(&mut self, asks: &[Ask]) -> Vec<Result<Answer, h2::Error>> {
        let mut streams = Vec::new();
        for ask in asks {
            let request = ask.http2(self.scheme);
            let ready = self.until(|cx, send| send.poll_ready(cx));
            let sent = ready.and_then(|()| self.send.send_request(request, ask.body.is_empty()));
            // A body goes whole to h2, which sends it as the server's windows allow.
            let sent = sent.and_then(|(response, mut body)| {
                if !ask.body.is_empty() {
                    body.send_data(Bytes::from(ask.body.clone()), true)?;
                }
                Ok(response)
            });
            streams.push(match sent {
                Ok(response) => Stream::Head(response),
                Err(e) => Stream::Done(Err(e)),
            });
        }
        self.until(|cx, _| {
            let mut all = true;
            for stream in streams.iter_mut() {
                all &= stream.advance(cx);
            }
            if all {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        streams
            .into_iter()
            .map(|stream| match stream {
                Stream::Done(result) => result,
                _ => unreachable!("every stream is done"),
            })
            .collect()
    }

    /// A GET of `target`, answered.
    #[track_caller]
    pub(crate) fn get(&mut self, target: &str) -> Answer {
        let mut answers = self.exchange(&[ask("GET", target)]);
        answers
            .remove(0)
            .unwrap_or_else(|e| panic!("GET {target} over HTTP/2: {e}"))
    }
}

/// Another client is served after whatever came before: a GET over HTTP/2 on a new
/// connection is answered with the file.
#[track_caller]
fn still_serves(s: &TestServer) {
    let answer = H2Client::connect(s).get("/readme.txt");
    assert_eq!(answer.status, 200, "[{}] {answer:?}", s.model);
    assert_eq!(answer.body, s.site.read("readme.txt"), "[{}]", s.model);
}

// ---------------------------------------------------------------------------
// Frames by hand
// ---------------------------------------------------------------------------

/// A frame: the 9-byte header (length, type, flags, stream) and the payload (RFC 9113 §4.1).
pub(crate) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("a frame's length");
    assert!(len < 1 << 24, "a frame's length fits 24 bits");
    let mut bytes = len.to_be_bytes()[1..].to_vec();
    bytes.extend_from_slice(&[kind, flags]);
    bytes.extend_from_slice(&stream.to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// A SETTINGS frame holding `entries`.
fn settings(entries: &[(u16, u32)]) -> Vec<u8> {
    let payload: Vec<u8> = entries
        .iter()
        .flat_map(|(id, value)| [&id.to_be_bytes()[..], &value.to_be_bytes()].concat())
        .collect();
    frame(SETTINGS, 0, 0, &payload)
}

/// A field whose name is entry `index` of HPACK's static table and whose value is a literal,
/// not indexed (RFC 7541 §6.2.2; values under 127 bytes, not Huffman-coded).
fn literal(index: u8, value: &str) -> Vec<u8> {
    assert!(index < 16 && value.len() < 127);
    [&[index, value.len() as u8][..], value.as_bytes()].concat()
}

/// A field with a new name, literal and not indexed (RFC 7541 §6.2.2, lengths under 127).
fn literal_named(name: &str, value: &str) -> Vec<u8> {
    assert!(name.len() < 127 && value.len() < 127);
    let mut bytes = vec![0, name.len() as u8];
    bytes.extend_from_slice(name.as_bytes());
    bytes.push(value.len() as u8);
    bytes.extend_from_slice(value.as_bytes());
    bytes
}

/// The status of a response's header block when it opens with an indexed `:status` of
/// HPACK's static table (RFC 7541 Appendix A: 8 to 14), as h2 encodes those statuses.
fn indexed_status(block: &[u8]) -> Option<u16> {
    let statuses = [200, 204, 206, 304, 400, 404, 500];
    let index = usize::from(block.first()? & 0x7f);
    (block[0] & 0x80 != 0 && (8..=14).contains(&index)).then(|| statuses[index - 8])
}

/// A frame the server sent.
#[derive(Debug)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

/// What a GOAWAY says (RFC 9113 §6.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct GoAway {
    last_stream: u32,
    code: Reason,
}

impl Frame {
    fn goaway(&self) -> GoAway {
        let word = |at: usize| u32::from_be_bytes(self.payload[at..at + 4].try_into().unwrap());
        GoAway {
            last_stream: word(0) & 0x7fff_ffff,
            code: Reason::from(word(4)),
        }
    }

    fn error_code(&self) -> Reason {
        Reason::from(u32::from_be_bytes(self.payload[..4].try_into().unwrap()))
    }

    fn settings(&self) -> Vec<(u16, u32)> {
        self.payload
            .chunks_exact(6)
            .map(|e| {
                (
                    u16::from_be_bytes([e[0], e[1]]),
                    u32::from_be_bytes([e[2], e[3], e[4], e[5]]),
                )
            })
            .collect()
    }
}

/// A request's header block to `s`: `method` (`GET` indexed, any other literal), `:scheme`
/// (https over TLS), `target`, `:authority localhost`, all from HPACK's static table.
fn request_block(s: &TestServer, method: &str, target: &str) -> Vec<u8> {
    let mut block = match method {
        "GET" => vec![0x82],
        _ => literal(2, method),
    };
    // `:scheme` https or http: entries 7 and 6.
    block.push(if serves_tls(s.addr) { 0x87 } else { 0x86 });
    match target {
        "/" => block.push(0x84),
        _ => block.extend(literal(4, target)),
    }
    block.extend(literal(1, "localhost"));
    block
}

/// HEADERS opening `stream` with a GET of `target` to `s`; `flags` beside END_HEADERS.
fn get_frame(s: &TestServer, stream: u32, target: &str, flags: u8) -> Vec<u8> {
    frame(
        HEADERS,
        END_HEADERS | flags,
        stream,
        &request_block(s, "GET", target),
    )
}

/// A connection that speaks HTTP/2 frame by frame.
struct Raw {
    wire: Wire,
    buf: Vec<u8>,
    /// Frames read while looking for another stream's (see `response`).
    held: Vec<Frame>,
}

impl Raw {
    /// Connects, sending nothing yet.
    fn new(s: &TestServer) -> Raw {
        Raw {
            wire: Wire::connect(s),
            buf: Vec::new(),
            held: Vec::new(),
        }
    }

    /// Connects and sends the preface and an empty SETTINGS; reads the server's SETTINGS and
    /// acknowledges them. Their entries.
    fn open(s: &TestServer) -> (Raw, Vec<(u16, u32)>) {
        let mut raw = Raw::new(s);
        raw.send(&[PREFACE, &settings(&[])].concat());
        let server = loop {
            match raw.frame() {
                Some(f) if f.kind == SETTINGS && f.flags & ACK == 0 => break f.settings(),
                Some(_) => {}
                None => panic!("[{}] the server closed before its SETTINGS", s.model),
            }
        };
        raw.send(&frame(SETTINGS, ACK, 0, &[]));
        (raw, server)
    }

    /// Connects as `open` does.
    fn connect(s: &TestServer) -> Raw {
        Raw::open(s).0
    }

    fn send(&mut self, bytes: &[u8]) -> bool {
        self.wire.send(bytes)
    }

    /// The next frame, within the safety timeout; `None` once the server has closed.
    fn frame(&mut self) -> Option<Frame> {
        self.frame_within(SAFETY)
            .unwrap_or_else(|| panic!("no frame from the server within {SAFETY:?}"))
    }

    /// The next frame if one comes within `wait`: `Some(None)` once the server has closed.
    fn frame_within(&mut self, wait: Duration) -> Option<Option<Frame>> {
        let deadline = Instant::now() + wait;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(frame) = self.parse() {
                return Some(Some(frame));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            match self.wire.read_within(&mut chunk, left) {
                Some(0) => return Some(None),
                Some(n) => self.buf.extend_from_slice(&chunk[..n]),
                None => return None,
            }
        }
    }

    fn parse(&mut self) -> Option<Frame> {
        let header = self.buf.get(..9)?;
        let len = usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
        if self.buf.len() < 9 + len {
            return None;
        }
        let frame = Frame {
            kind: header[3],
            flags: header[4],
            stream: u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff,
            payload: self.buf[9..9 + len].to_vec(),
        };
        self.buf.drain(..9 + len);
        Some(frame)
    }

    /// Reads frames up to a GOAWAY: what it says; `None` if the server closes without one.
    fn goaway(&mut self) -> Option<GoAway> {
        loop {
            let frame = self.frame()?;
            if frame.kind == GOAWAY {
                return Some(frame.goaway());
            }
        }
    }

    /// A GOAWAY among the frames that come within `wait`, if one does.
    fn goaway_within(&mut self, wait: Duration) -> Option<GoAway> {
        while let Some(Some(frame)) = self.frame_within(wait) {
            if frame.kind == GOAWAY {
                return Some(frame.goaway());
            }
        }
        None
    }

    /// Reads (and drops) what comes until the server closes: true if it does within `wait`.
    fn closes_within(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.frame_within(left) {
                Some(Some(_)) => {}
                Some(None) => return true,
                None => return false,
            }
        }
    }

    /// Reads the response on `stream` to its end: its status (if indexed, see
    /// `indexed_status`) and the length of its body. Other streams' frames are kept for
    /// their own turn.
    fn response(&mut self, stream: u32) -> (Option<u16>, usize) {
        let mut status = None;
        let mut body = 0;
        loop {
            let frame = match self.held.iter().position(|f| f.stream == stream) {
                Some(at) => self.held.remove(at),
                None => self
                    .frame()
                    .unwrap_or_else(|| panic!("the server closed before the end of stream {stream}")),
            };
            if frame.stream != stream {
                if frame.stream != 0 {
                    self.held.push(frame);
                }
                continue;
            }
            match frame.kind {
                HEADERS => status = indexed_status(&frame.payload),
                DATA => body += frame.payload.len(),
                RST_STREAM => panic!("stream {stream} reset: {:?}", frame.error_code()),
                _ => {}
            }
            if frame.flags & END_STREAM != 0 && matches!(frame.kind, HEADERS | DATA) {
                return (status, body);
            }
        }
    }
}

/// Sends `attack` on a new connection (after the preface and SETTINGS): the server must
/// answer GOAWAY `code` and close, and serve another client after. The GOAWAY.
#[track_caller]
fn answered_with_goaway(s: &TestServer, what: &str, attack: &[u8], code: Reason) -> GoAway {
    let mut raw = Raw::connect(s);
    raw.send(attack);
    let goaway = raw.goaway();
    let goaway = goaway.unwrap_or_else(|| panic!("[{}] {what}: closed without GOAWAY", s.model));
    assert_eq!(goaway.code, code, "[{}] {what}: {goaway:?}", s.model);
    assert!(
        raw.closes_within(SAFETY),
        "[{}] {what}: still open after GOAWAY",
        s.model
    );
    still_serves(s);
    goaway
}

/// Sends `pieces` one at a time, `TRICKLE` apart, reading what the server sends meanwhile:
/// whether the server closed before the last piece was sent.
fn closed_while_trickling(raw: &mut Raw, pieces: impl IntoIterator<Item = Vec<u8>>) -> bool {
    for piece in pieces {
        if !raw.send(&piece) {
            return true;
        }
        let until = Instant::now() + TRICKLE;
        while let Some(frame) = raw.frame_within(until.saturating_duration_since(Instant::now())) {
            if frame.is_none() {
                return true;
            }
        }
    }
    false
}

/// `count` copies of `one`, after `before`.
fn repeated(before: &[u8], one: &[u8], count: usize) -> Vec<u8> {
    [before, &one.repeat(count)].concat()
}

// ---------------------------------------------------------------------------
// The same answers as HTTP/1.1
// ---------------------------------------------------------------------------

/// Bytes of a path kept as they are in a request target; the rest is percent-encoded.
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'.')
    .remove(b'-')
    .remove(b'_')
    .remove(b'~');

/// Every entry of the served tree as a target: files, symlinks (not followed), hidden names,
/// and directories with and without their slash.
fn site_targets(root: &Path, rel: &str, into: &mut Vec<String>) {
    let mut entries: Vec<_> = fs::read_dir(root.join(rel))
        .expect("read the site")
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .into_string()
                .expect("UTF-8 names")
        })
        .collect();
    entries.sort();
    for name in entries {
        let path = format!("{rel}{name}");
        let target = format!("/{}", utf8_percent_encode(&path, PATH));
        into.push(target.clone());
        let kind = fs::symlink_metadata(root.join(&path)).expect("lstat").file_type();
        if kind.is_dir() {
            into.push(format!("{target}/"));
            site_targets(root, &format!("{path}/"), into);
        }
    }
}

/// The requests whose answers must not depend on the protocol: a GET of every entry of the
/// site, HEADs, errors, and conditional and range requests of `index.html` (whose validators
/// `validators`, an HTTP/1.1 answer, gives), each with the status it must get.
fn protocol_free_requests(s: &TestServer, validators: &Response) -> Vec<(Ask, Option<u16>)> {
    let mut targets = Vec::new();
    site_targets(&s.site.root(), "", &mut targets);
    let etag = validators.header("etag").expect("an ETag").to_string();
    let modified = validators
        .header("last-modified")
        .expect("a Last-Modified")
        .to_string();
    let mut asks: Vec<(Ask, Option<u16>)> = targets.into_iter().map(|t| (ask("GET", t), None)).collect();
    let index = "/index.html";
    asks.extend([
        (ask("HEAD", index), Some(200)),
        (ask("HEAD", "/big.bin"), Some(200)),
        (ask("GET", "/nope.html"), Some(404)),
        (ask("GET", "/%2e%2e/outside/secret.txt"), None),
        (ask("GET", "/docs/../readme.txt"), None),
        (ask("GET", "/readme.txt?query=1"), Some(200)),
        (ask("POST", index), Some(405)),
        (ask("GET", index).with("if-none-match", etag.clone()), Some(304)),
        (ask("HEAD", index).with("if-none-match", etag.clone()), Some(304)),
        (
            ask("GET", index).with("if-modified-since", modified.clone()),
            Some(304),
        ),
        (ask("GET", index).with("if-match", "\"nope\""), Some(412)),
        (ask("GET", index).with("if-unmodified-since", LONG_AGO[0]), None),
        (ask("GET", index).with("range", "bytes=0-9"), Some(206)),
        (ask("GET", index).with("range", "bytes=-5"), Some(206)),
        (ask("GET", index).with("range", "bytes=0-1,5-6"), Some(206)),
        (
            ask("GET", "/big.bin").with("range", "bytes=100-200,300000-"),
            Some(206),
        ),
        (ask("GET", index).with("range", "bytes=99999999-"), Some(416)),
        (
            ask("GET", index)
                .with("range", "bytes=0-9")
                .with("if-range", etag.clone()),
            Some(206),
        ),
        (
            ask("GET", index)
                .with("range", "bytes=0-9")
                .with("if-range", "\"old\""),
            Some(200),
        ),
        (
            ask("GET", "/app.js").with("accept-encoding", "br, gzip, zstd"),
            Some(200),
        ),
    ]);
    asks
}

/// The HTTP/1.1 answers to `asks`, on keep-alive connections (a new one after a close).
fn http1_answers(s: &TestServer, asks: &[(Ask, Option<u16>)]) -> Vec<Response> {
    let mut c = s.connect();
    asks.iter()
        .map(|(ask, _)| {
            c.send(ask.http1());
            let resp = if ask.method == "HEAD" {
                c.read_head_response()
            } else {
                c.read_response()
            };
            if resp.has_token("connection", "close") {
                c = s.connect();
            }
            resp
        })
        .collect()
}

/// Fields as both protocols must agree on them: names in lower case, sorted by name (the
/// order of one name's values kept), without `date` (a second may pass) and without the
/// fields of an HTTP/1.1 connection, which HTTP/2 forbids (RFC 9113 §8.2.2).
fn comparable(fields: &[(String, String)]) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = fields
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .filter(|(n, _)| !["date", "connection", "keep-alive"].contains(&n.as_str()))
        .collect();
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    fields
}

/// How the HTTP/2 answer differs from the HTTP/1.1 one, if it does.
fn difference(h1: &Response, h2: &Answer) -> Option<String> {
    if h1.status != h2.status {
        return Some(format!(
            "status {} over HTTP/1.1, {} over HTTP/2",
            h1.status, h2.status
        ));
    }
    let (one, two) = (comparable(&h1.headers), comparable(&h2.fields));
    if one != two {
        return Some(format!("fields\n    HTTP/1.1 {one:?}\n    HTTP/2   {two:?}"));
    }
    if h1.body != h2.body {
        let at = h1.body.iter().zip(&h2.body).position(|(a, b)| a != b);
        return Some(format!(
            "bodies of {} and {} bytes, first difference at {at:?}",
            h1.body.len(),
            h2.body.len()
        ));
    }
    None
}

/// The fields HTTP/2 forbids (RFC 9113 §8.2.2).
fn connection_specific(answer: &Answer) -> Vec<&str> {
    let forbidden = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
    ];
    answer
        .fields
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| forbidden.contains(n))
        .collect()
}

model_tests! {
    #[tls]
    /// Every entry of the site, HEADs, errors, conditional (304, 412) and range requests (one
    /// range, several, 416) are answered over HTTP/2 as over HTTP/1.1: the same status, fields
    /// and body, all on one connection, the streams at once.
    fn answers_as_http1_does(s) {
        let m = s.model;
        let mut c = s.connect();
        c.send(get_req("/index.html"));
        let validators = c.read_response();
        let asks = protocol_free_requests(&s, &validators);
        let h1 = http1_answers(&s, &asks);
        let mut client = H2Client::connect(&s);
        let h2 = client.exchange(&asks.iter().map(|(a, _)| a.clone()).collect::<Vec<_>>());
        if serves_tls(s.addr) {
            assert_eq!(client.wire.alpn().as_deref(), Some(&b"h2"[..]), "[{m}] ALPN");
        }
        let mut wrong = Vec::new();
        for (((ask, status), h1), h2) in asks.iter().zip(&h1).zip(&h2) {
            let shown = format!("{} {} {:?}", ask.method, ask.target, ask.fields);
            if status.is_some_and(|status| status != h1.status) {
                wrong.push(format!("{shown}: HTTP/1.1 answered {}, not {status:?}", h1.status));
            }
            match h2 {
                Err(e) => wrong.push(format!("{shown}: HTTP/2 failed: {e}")),
                Ok(h2) => {
                    if let Some(why) = difference(h1, h2) {
                        wrong.push(format!("{shown}: {why}"));
                    }
                    let forbidden = connection_specific(h2);
                    if !forbidden.is_empty() {
                        wrong.push(format!("{shown}: HTTP/2 answer with {forbidden:?}"));
                    }
                }
            }
        }
        assert!(wrong.is_empty(), "[{m}] {} of {} requests:\n  {}", wrong.len(), asks.len(), wrong.join("\n  "));
    }

    /// The server's SETTINGS say what it keeps to: MAX_CONCURRENT_STREAMS is
    /// `--h2-max-streams`, MAX_HEADER_LIST_SIZE the header limit, the HPACK table 4096. A
    /// stream beyond the limit is refused (RST_STREAM REFUSED_STREAM, RFC 9113 §5.1.2), those
    /// within are answered, and a stream opened once some have closed is answered too.
    fn streams_beyond_the_limit_are_refused(model m) {
        let s = TestServer::start_with(m, |c| c.h2_max_streams = 4);
        let (mut raw, server) = Raw::open(&s);
        let setting = |id| server.iter().find(|(i, _)| *i == id).map(|(_, v)| *v);
        assert_eq!(setting(SETTINGS_MAX_CONCURRENT_STREAMS), Some(4), "[{m}] {server:?}");
        assert_eq!(setting(SETTINGS_MAX_HEADER_LIST_SIZE), Some(HEADER_LIMIT), "[{m}] {server:?}");
        assert!(
            setting(SETTINGS_HEADER_TABLE_SIZE).is_none_or(|size| size == 4096),
            "[{m}] {server:?}"
        );
        // Four GETs whose (empty) body has not ended: four open streams, then a fifth.
        let open: Vec<u8> = [1, 3, 5, 7, 9].iter().flat_map(|&id| get_frame(&s, id, "/readme.txt", 0)).collect();
        raw.send(&open);
        let refused = loop {
            let frame = raw.frame().unwrap_or_else(|| panic!("[{m}] closed instead of refusing stream 9"));
            if frame.kind == RST_STREAM || frame.kind == GOAWAY {
                break frame;
            }
        };
        assert_eq!((refused.kind, refused.stream), (RST_STREAM, 9), "[{m}] {refused:?}");
        assert_eq!(refused.error_code(), Reason::REFUSED_STREAM, "[{m}]");
        let ends: Vec<u8> = [1, 3, 5, 7].iter().flat_map(|&id| frame(DATA, END_STREAM, id, &[])).collect();
        raw.send(&ends);
        let readme = s.site.read("readme.txt").len();
        for id in [1, 3, 5, 7] {
            assert_eq!(raw.response(id), (Some(200), readme), "[{m}] stream {id}");
        }
        raw.send(&get_frame(&s, 11, "/readme.txt", END_STREAM));
        assert_eq!(raw.response(11), (Some(200), readme), "[{m}] stream 11");
        still_serves(&s);
    }

    /// A header list above the limit (RFC 9113 §10.5.1) is answered 431, or its stream
    /// reset; the connection stays usable (the block is decoded, HPACK's state kept), and
    /// its next request is answered.
    fn a_header_list_above_the_limit_is_refused_alone(s) {
        let m = s.model;
        let mut client = H2Client::connect(&s);
        let big = ask("GET", "/readme.txt").with("x-big", "a".repeat(HEADER_LIMIT as usize + 1024));
        let answers = client.exchange(&[big]);
        match &answers[0] {
            Ok(answer) => assert_eq!(answer.status, 431, "[{m}] {answer:?}"),
            Err(e) => assert!(e.is_reset(), "[{m}] not a stream error: {e}"),
        }
        let after = client.get("/readme.txt");
        assert_eq!((after.status, after.body), (200, s.site.read("readme.txt")), "[{m}]");
        still_serves(&s);
    }

    /// A request body far larger than the flow-control windows (1 MiB) is read to its end, the
    /// server opening its windows as it goes, and the request answered then (405: a static
    /// server takes no POST); the connection serves on.
    fn a_body_larger_than_the_window_is_read_and_answered(s) {
        let m = s.model;
        let mut client = H2Client::connect(&s);
        let post = ask("POST", "/index.html").with_body(pseudo_random(1 << 20));
        let answers = client.exchange(&[post.clone(), ask("GET", "/readme.txt"), post]);
        let statuses: Vec<u16> = answers.iter().map(|a| a.as_ref().map_or(0, |a| a.status)).collect();
        assert_eq!(statuses, [405, 200, 405], "[{m}] {answers:?}");
        let after = client.get("/readme.txt");
        assert_eq!((after.status, after.body), (200, s.site.read("readme.txt")), "[{m}]");
    }

    /// Rapid reset (CVE-2023-44487): requests each reset at once, in a loop, cost the
    /// server work and the client nothing; GOAWAY ENHANCE_YOUR_CALM.
    fn rapid_reset_is_cut(s) {
        let cancel = u32::from(Reason::CANCEL).to_be_bytes();
        let pairs: Vec<u8> = (0..FLOOD as u32)
            .flat_map(|n| {
                let id = 1 + 2 * n;
                [get_frame(&s, id, "/readme.txt", END_STREAM), frame(RST_STREAM, 0, id, &cancel)].concat()
            })
            .collect();
        answered_with_goaway(&s, "rapid reset", &pairs, Reason::ENHANCE_YOUR_CALM);
    }

    /// A CONTINUATION flood (CVE-2024-27316): a header block that never ends. The server
    /// calls it off with GOAWAY long before the block is large (it does not buffer it
    /// without bound) and closes.
    fn continuation_flood_is_cut(s) {
        let m = s.model;
        let mut raw = Raw::connect(&s);
        raw.send(&frame(HEADERS, END_STREAM, 1, &request_block(&s, "GET", "/readme.txt")));
        let field = literal_named("x-flood", &"a".repeat(100));
        let continuation = frame(CONTINUATION, 0, 1, &field.repeat(40)); // 4 KiB of fields
        let batch = continuation.repeat(16);
        let most = 64 << 20; // bytes of header block sent before giving up on a GOAWAY
        let mut sent = 0;
        let mut goaway = None;
        while goaway.is_none() && sent < most && raw.send(&batch) {
            sent += batch.len();
            goaway = raw.goaway_within(Duration::from_millis(20));
        }
        let goaway = goaway.or_else(|| raw.goaway());
        let goaway = goaway.unwrap_or_else(|| panic!("[{m}] closed without GOAWAY after {sent} bytes"));
        assert_eq!(goaway.code, Reason::ENHANCE_YOUR_CALM, "[{m}] {goaway:?} after {sent} bytes");
        assert_eq!(goaway.last_stream, 0, "[{m}] the request was never whole: {goaway:?}");
        assert!(sent < most, "[{m}] {sent} bytes of one header block and no GOAWAY");
        assert!(raw.closes_within(SAFETY), "[{m}] still open after GOAWAY");
        still_serves(&s);
    }

    /// SETTINGS frames, each to acknowledge (CVE-2019-9515): GOAWAY ENHANCE_YOUR_CALM.
    fn settings_flood_is_cut(s) {
        let flood = repeated(&[], &frame(SETTINGS, 0, 0, &[]), FLOOD);
        answered_with_goaway(&s, "SETTINGS flood", &flood, Reason::ENHANCE_YOUR_CALM);
    }

    /// PINGs, each to answer (CVE-2019-9512): GOAWAY ENHANCE_YOUR_CALM.
    fn ping_flood_is_cut(s) {
        let flood = repeated(&[], &frame(PING, 0, 0, &[7; 8]), FLOOD);
        answered_with_goaway(&s, "PING flood", &flood, Reason::ENHANCE_YOUR_CALM);
    }

    /// Empty DATA frames on an open stream (CVE-2019-9518): GOAWAY ENHANCE_YOUR_CALM.
    fn empty_data_flood_is_cut(s) {
        let open = get_frame(&s, 1, "/readme.txt", 0);
        let flood = repeated(&open, &frame(DATA, 0, 1, &[]), FLOOD);
        answered_with_goaway(&s, "empty DATA flood", &flood, Reason::ENHANCE_YOUR_CALM);
    }

    /// WINDOW_UPDATEs that no download explains: GOAWAY ENHANCE_YOUR_CALM.
    fn window_update_flood_is_cut(s) {
        let flood = repeated(&[], &frame(WINDOW_UPDATE, 0, 0, &1u32.to_be_bytes()), FLOOD);
        answered_with_goaway(&s, "WINDOW_UPDATE flood", &flood, Reason::ENHANCE_YOUR_CALM);
    }

    /// A peer that breaks the protocol after a good request gets the connection error RFC
    /// 9113 names, in a GOAWAY whose last stream is the request's, and the close.
    fn protocol_errors_end_the_connection_with_their_code(s) {
        let m = s.model;
        let cases: Vec<(&str, Vec<u8>, Reason)> = vec![
            // §6.1
            ("DATA on stream 0", frame(DATA, 0, 0, b"garbage"), Reason::PROTOCOL_ERROR),
            // §5.1.1
            (
                "HEADERS on an even stream",
                get_frame(&s, 4, "/", END_STREAM),
                Reason::PROTOCOL_ERROR,
            ),
            // §6.9
            (
                "WINDOW_UPDATE of 0 on the connection",
                frame(WINDOW_UPDATE, 0, 0, &0u32.to_be_bytes()),
                Reason::PROTOCOL_ERROR,
            ),
            // §6.5.2
            ("ENABLE_PUSH of 2", settings(&[(SETTINGS_ENABLE_PUSH, 2)]), Reason::PROTOCOL_ERROR),
            // §6.10
            (
                "CONTINUATION after a whole header block",
                frame(CONTINUATION, END_HEADERS, 1, &[0x82]),
                Reason::PROTOCOL_ERROR,
            ),
            // §6.7
            ("PING of 6 bytes", frame(PING, 0, 0, &[0; 6]), Reason::FRAME_SIZE_ERROR),
            // §6.5.2
            (
                "INITIAL_WINDOW_SIZE above 2^31-1",
                settings(&[(SETTINGS_INITIAL_WINDOW_SIZE, 1 << 31)]),
                Reason::FLOW_CONTROL_ERROR,
            ),
            // §5.1: the stream is closed both ways.
            (
                "HEADERS again on the answered stream",
                get_frame(&s, 1, "/", END_STREAM),
                Reason::STREAM_CLOSED,
            ),
        ];
        table(m, &cases, |(name, _, _)| name.to_string(), |(name, breach, code)| {
            let mut raw = Raw::connect(&s);
            raw.send(&get_frame(&s, 1, "/readme.txt", END_STREAM));
            let readme = s.site.read("readme.txt").len();
            assert_eq!(raw.response(1), (Some(200), readme), "the good request");
            raw.send(breach);
            let goaway = raw.goaway().unwrap_or_else(|| panic!("{name}: closed without GOAWAY"));
            assert_eq!(goaway, GoAway { last_stream: 1, code: *code }, "{name}");
            assert!(raw.closes_within(SAFETY), "{name}: still open after GOAWAY");
        });
        still_serves(&s);
    }

    /// A request whose body never comes (HEADERS without END_STREAM, then nothing): the
    /// connection is closed at the header timeout (the idle and send timeouts, 60 s, are
    /// longer than the wait).
    fn a_stream_that_never_ends_is_closed_at_the_header_timeout(model m) {
        let s = TestServer::start_with(m, |c| c.header_timeout = Duration::from_millis(500));
        let mut raw = Raw::connect(&s);
        raw.send(&get_frame(&s, 1, "/readme.txt", 0));
        assert!(raw.closes_within(SAFETY), "[{m}] still open {SAFETY:?} after a header timeout of 0.5 s");
        still_serves(&s);
    }

    /// A HEADERS frame that stops halfway is a request head that stops halfway: the
    /// connection is closed at the header timeout, as an HTTP/1.1 connection with half a
    /// head is, not held for the idle timeout (60 s, longer than the wait).
    fn half_a_headers_frame_is_closed_at_the_header_timeout(model m) {
        let s = TestServer::start_with(m, |c| c.header_timeout = Duration::from_millis(500));
        let headers = get_frame(&s, 1, "/readme.txt", END_STREAM);
        let mut raw = Raw::connect(&s);
        raw.send(&headers[..headers.len() / 2]);
        assert!(raw.closes_within(SAFETY), "[{m}] still open {SAFETY:?} after a header timeout of 0.5 s");
        still_serves(&s);
    }

    /// A header block trickled a byte at a time (slowloris over HTTP/2: 10 bytes a second,
    /// far below `--min-rate` 500) is closed as an HTTP/1.1 head is (slow_clients.rs), though
    /// the header timeout (30 s) is far; 100 bytes (10 s) at most are sent.
    fn a_header_block_below_the_minimum_rate_is_closed(model m) {
        let s = TestServer::start_with(m, |c| {
            c.header_timeout = Duration::from_secs(30);
            c.min_rate = 500;
        });
        let mut raw = Raw::connect(&s);
        let mut block = request_block(&s, "GET", "/readme.txt");
        block.extend(literal_named("x-pad", &"a".repeat(120)));
        let headers = frame(HEADERS, END_HEADERS | END_STREAM, 1, &block);
        let bytes = headers[..100].iter().map(|b| vec![*b]);
        assert!(
            closed_while_trickling(&mut raw, bytes),
            "[{m}] a header block trickled at 10 bytes/s for 10 s is still being read (min rate 500)"
        );
        still_serves(&s);
    }

    /// A request body trickled in DATA frames of one byte (100 bytes a second with their
    /// frame headers, below `--min-rate` 500) is closed as over HTTP/1.1, though the header
    /// timeout (30 s) is far; 100 frames (10 s) at most are sent.
    fn a_body_below_the_minimum_rate_is_closed(model m) {
        let s = TestServer::start_with(m, |c| {
            c.header_timeout = Duration::from_secs(30);
            c.min_rate = 500;
        });
        let mut raw = Raw::connect(&s);
        raw.send(&get_frame(&s, 1, "/readme.txt", 0));
        let data = (0..100).map(|_| frame(DATA, 0, 1, b"x"));
        assert!(
            closed_while_trickling(&mut raw, data),
            "[{m}] a body trickled at 100 bytes/s for 10 s is still being read (min rate 500)"
        );
        still_serves(&s);
    }

    /// A client that reads but never opens its window (no WINDOW_UPDATE) on a big download:
    /// the server sends what the window allows, then the send timeout closes it.
    fn a_download_whose_window_never_opens_is_cut_at_the_send_timeout(model m) {
        // The header timeout is longer than the safety timeout: only the send timeout cuts.
        let s = TestServer::start_with(m, |c| {
            c.send_timeout = Duration::from_millis(500);
            c.header_timeout = SAFETY * 3;
        });
        let mut raw = Raw::connect(&s);
        raw.send(&get_frame(&s, 1, "/big.bin", END_STREAM));
        let mut status = None;
        let mut data = 0;
        let deadline = Instant::now() + SAFETY;
        let closed = loop {
            match raw.frame_within(deadline.saturating_duration_since(Instant::now())) {
                Some(Some(frame)) if frame.stream == 1 && frame.kind == HEADERS => {
                    status = indexed_status(&frame.payload);
                }
                Some(Some(frame)) if frame.stream == 1 && frame.kind == DATA => data += frame.payload.len(),
                Some(Some(_)) => {}
                Some(None) => break true,
                None => break false,
            }
        };
        assert_eq!(status, Some(200), "[{m}]");
        assert!(data > 0 && data <= INITIAL_WINDOW, "[{m}] {data} bytes in a window of {INITIAL_WINDOW}");
        assert!(closed, "[{m}] still open {SAFETY:?} after a send timeout of 0.5 s");
        still_serves(&s);
    }

    /// `Upgrade: h2c` (RFC 7540 §3.2, removed by RFC 9113) is not taken up: HTTP/1.1 answers,
    /// 200, no 101.
    fn an_upgrade_to_h2c_is_answered_as_http1(s) {
        let mut c = s.connect();
        c.send(req(
            "GET",
            "/index.html",
            "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n",
        ));
        let resp = c.read_response();
        assert_eq!((resp.status, resp.minor), (200, 1), "[{}] {}", s.model, resp.summary());
        assert_eq!(resp.header("upgrade"), None, "[{}] {}", s.model, resp.summary());
        assert_body(&resp, &s.site.read("index.html"));
    }

    /// HTTP/1.x requests shorter than HTTP/2's 24-byte preface, or that share its first
    /// bytes, are answered at once, not held for 24 bytes (the header timeout is longer than
    /// the safety timeout of the reads, so a server that waited would fail them).
    fn short_http1_requests_are_answered_without_waiting(model m) {
        let s = TestServer::start_with(m, |c| c.header_timeout = SAFETY * 3);
        let index = s.site.read("index.html");
        let mut c = s.connect();
        c.send("GET / HTTP/1.0\r\n\r\n");
        assert_body(&c.read_response(), &index);
        // "P" could begin the preface; "O" cannot.
        let mut c = s.connect();
        c.send("P");
        std::thread::sleep(Duration::from_millis(50));
        c.send("OST / HTTP/1.0\r\n\r\n");
        assert_eq!(c.read_response().status, 405, "[{m}] POST in pieces");
        // The preface's first 14 bytes, then HTTP/1.1 where it says HTTP/2.0.
        let mut c = s.connect();
        c.send_bytewise("PRI * HTTP/1.1\r\n\r\n", Duration::from_millis(1));
        let resp = c.read_response();
        assert_eq!(resp.status, 400, "[{m}] {}", resp.summary());
    }

    /// The preface arriving a byte at a time (each a prefix of an HTTP/1.x request too) still
    /// makes the connection HTTP/2 once it is whole.
    fn a_preface_in_pieces_is_still_http2(s) {
        let mut raw = Raw::new(&s);
        for byte in PREFACE {
            raw.send(&[*byte]);
            std::thread::sleep(Duration::from_millis(2));
        }
        raw.send(&[settings(&[]), get_frame(&s, 1, "/readme.txt", END_STREAM)].concat());
        let readme = s.site.read("readme.txt").len();
        assert_eq!(raw.response(1), (Some(200), readme), "[{}]", s.model);
    }

    /// An exchange over HTTP/2 is logged with `HTTP/2.0` and counted under that protocol.
    fn access_log_and_metrics_say_http2(model m) {
        let s = TestServer::start_with(m, |c| {
            c.access_log = Some(c.root.parent().unwrap().join("access.log"));
            c.log_format = LogFormat::Common;
            c.metrics = Some("127.0.0.1:0".parse().unwrap());
        });
        let mut client = H2Client::connect(&s);
        let answers = client.exchange(&[ask("GET", "/readme.txt?h2=1"), ask("GET", "/missing?h2=2")]);
        let statuses: Vec<u16> = answers.iter().map(|a| a.as_ref().map_or(0, |a| a.status)).collect();
        assert_eq!(statuses, [200, 404], "[{m}] {answers:?}");
        let readme = s.site.read("readme.txt").len();
        let log = s.site.root().parent().unwrap().join("access.log");
        let text = poll_until(SAFETY, || {
            let text = fs::read_to_string(&log).unwrap_or_default();
            (text.lines().count() >= 2).then_some(text)
        });
        let text = text.unwrap_or_else(|| panic!("[{m}] two lines never logged: {:?}", fs::read_to_string(&log)));
        for line in [
            format!("\"GET /readme.txt?h2=1 HTTP/2.0\" 200 {readme}"),
            "\"GET /missing?h2=2 HTTP/2.0\" 404 ".to_string(),
        ] {
            assert!(text.contains(&line), "[{m}] no {line:?} in:\n{text}");
        }
        let metrics = s.metrics.expect("a metrics address");
        let series = |protocol: &str| format!("bingfa_protocol_requests_total{{model=\"{}\",protocol=\"{protocol}\"}} ", m.name());
        let counted = poll_until(SAFETY, || {
            let text = scrape_metrics(metrics);
            text.contains(&format!("{}2\n", series("HTTP/2.0"))).then_some(text)
        });
        let text = counted.unwrap_or_else(|| panic!("[{m}] HTTP/2.0 never counted twice:\n{}", scrape_metrics(metrics)));
        assert!(text.contains(&format!("{}0\n", series("HTTP/1.1"))), "[{m}]\n{text}");
    }
}

/// The text of `/metrics` at `addr`.
fn scrape_metrics(addr: std::net::SocketAddr) -> String {
    let mut c = Client::connect(addr);
    c.send(req("GET", "/metrics", ""));
    let resp = c.read_response();
    assert_eq!(resp.status, 200, "{}", resp.summary());
    resp.body_str()
}
