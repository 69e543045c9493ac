//! The HTTP/2 protocol of a link: the `h2` crate's server, driven from memory.
//!
//! h2 is written for async I/O: it reads and writes through `AsyncRead`/`AsyncWrite` and
//! makes progress when polled. Here its I/O object is a [`Pipe`], two byte buffers and no
//! socket: `received` puts what the model read into one, and `poll` drives h2 with a waker
//! that does nothing (every `poll` of the link polls h2 again, so nothing needs waking) and
//! hands what h2 wrote into the other to the model as `Send`. So h2's framing, HPACK, flow
//! control and stream states do the protocol, the link stays sans-IO, and the models learn
//! nothing new.
//!
//! Each request h2 accepts is answered by the core ([`http::answer`]) as soon as it is whole
//! (a request body is read to its end and dropped): the same checks, handler and shaping as
//! HTTP/1.1. The response's body goes out as DATA frames in pieces of at
//! most `PIECE` bytes, as the stream's and the connection's flow-control windows allow, and
//! only while what h2 has written waits under `OUTPUT_HIGH_WATER`: a file is read (`pread`,
//! here) a piece at a time, so a 1 GiB download never sits in memory, and a client that
//! stops reading is cut by the send timeout.
//!
//! The limits h2 enforces (concurrent streams, header list and HPACK table sizes, streams
//! reset before they are accepted, resets the client provokes) are set from `Settings`;
//! floods of frames that are each harmless are counted by [`FrameGuard`](super::guard).

use super::guard::{self, FrameGuard, Verdict};
use crate::http::RequestLine;
use crate::http::{self, Action, Clock, ConstantField, Exchange, FieldName, FieldSink, Handler};
use crate::http::{Arrival, Settings, TlsSession, Transmit};
use crate::http::{Message, Pieces};
use bytes::Bytes;
use h2::server::{Connection, Handshake, SendResponse};
use h2::{Reason, RecvStream, SendStream};
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What a client sends first on an HTTP/2 connection (RFC 9113 §3.4).
pub(super) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Read from the socket at once: the room starts at `FIRST_ROOM` (a batch of requests, whose
/// fields HPACK has shrunk to a few bytes each, fits) and doubles after a read that filled it,
/// up to `INCOMING`. It is let go at rest, so each read after one takes a fresh room: a
/// small one costs little to make.
const FIRST_ROOM: usize = 2 * 1024;
const INCOMING: usize = 16 * 1024;
/// h2 stops writing frames (and so stops reading them: a PING needs its PONG written) while
/// this much waits for the model to send; no body piece is read while it waits either.
const OUTPUT_HIGH_WATER: usize = 64 * 1024;
/// A body goes out in DATA of at most this much at a time (h2 cuts frames to the peer's
/// maximum frame size).
const PIECE: usize = 16 * 1024;
/// Flow-control capacity asked for per stream at once.
const WANTED: u32 = 64 * 1024;

/// One HTTP/2 connection: h2 over a [`Pipe`], and the responses being sent.
pub(super) struct Http2 {
    state: State,
    pipe: Pipe,
    /// Where the model reads to; copied into the pipe by `received`. Its size is kept across
    /// rests (`room_size`).
    room: Vec<u8>,
    room_size: usize,
    /// What h2 wrote, taken from the pipe: `outgoing[written..]` is not yet sent.
    outgoing: Vec<u8>,
    written: usize,
    responding: Vec<Responding>,
    /// Requests whose body is still coming.
    waiting: Vec<Waiting>,
    /// Requests the handler was not ready for (`Handler::ready`), asked again at `retry_at`
    /// or on any earlier poll.
    deferred: Vec<Deferred>,
    retry_at: Option<Instant>,
    /// Scratch for each request written as an HTTP/1.1 head (`http::answer`).
    head: Vec<u8>,
    settings: Settings,
    guard: FrameGuard,
    /// The guard stopped the connection: nothing more is read, and GOAWAY with this reason
    /// goes out (once: `None` after).
    stopping: Option<Reason>,
    stopped: bool,
    /// Its deadline passed, and it is saying GOAWAY.
    expired: bool,
    /// The server is stopping: h2's first GOAWAY and PING are out, and it waits for the
    /// PING's answer to send the last (a client that never answers has the header timeout).
    draining: bool,
    peer: Option<IpAddr>,
    tls: Option<TlsSession>,
    /// When the current wait began (accept, the last bytes in or out, the first byte of a
    /// frame still arriving).
    since: Instant,
    /// While a request arrives: since when, and how many bytes, for the minimum data rate.
    arrival: Option<Arrival>,
    peer_closed: bool,
    /// h2 is done (GOAWAY sent and flushed, or the peer left): then a half-close and a
    /// linger, as for HTTP/1.1.
    ending: Ending,
}

enum State {
    Handshaking(Handshake<Pipe, Bytes>),
    Open(Connection<Pipe, Bytes>),
    Over,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Open,
    /// h2 is over; the model is to be told to half-close.
    Finishing,
    Lingering,
}

/// A request whose body is still coming: it is answered at the body's end.
struct Waiting {
    parts: ::http::request::Parts,
    body: RecvStream,
    respond: SendResponse<Bytes>,
}

/// A whole request the handler was not yet ready to answer.
struct Deferred {
    parts: ::http::request::Parts,
    respond: SendResponse<Bytes>,
}

/// A response whose body is being sent.
struct Responding {
    stream: SendStream<Bytes>,
    body: Pieces,
    /// With `Settings::observe`: what the access log will say of it.
    record: Option<Box<Record>>,
}

impl std::fmt::Debug for Http2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http2")
            .field("responding", &self.responding.len())
            .field("outgoing", &(self.outgoing.len() - self.written))
            .field("ending", &self.ending)
            .finish_non_exhaustive()
    }
}

impl Http2 {
    /// An HTTP/2 connection whose first bytes, `received` (the preface, perhaps more), have
    /// already come; accepted at `accepted`.
    pub fn new(settings: Settings, accepted: Instant, received: &[u8]) -> Http2 {
        let pipe = Pipe::default();
        let mut builder = h2::server::Builder::new();
        builder
            .max_concurrent_streams(settings.h2_max_streams)
            .max_header_list_size(u32::try_from(settings.limits.max_header_bytes).unwrap_or(u32::MAX))
            .header_table_size(HPACK_TABLE)
            .max_send_buffer_size(WANTED as usize);
        let handshake = builder.handshake(pipe.clone());
        let mut h2 = Http2 {
            state: State::Handshaking(handshake),
            pipe,
            room: Vec::new(),
            room_size: FIRST_ROOM,
            outgoing: Vec::new(),
            written: 0,
            responding: Vec::new(),
            waiting: Vec::new(),
            deferred: Vec::new(),
            retry_at: None,
            head: Vec::new(),
            settings,
            peer: None,
            tls: None,
            since: accepted,
            arrival: None,
            peer_closed: false,
            ending: Ending::Open,
            guard: FrameGuard::default(),
            stopping: None,
            stopped: false,
            expired: false,
            draining: false,
        };
        h2.take_in(received);
        h2
    }

    pub fn set_peer(&mut self, peer: Option<IpAddr>) {
        self.peer = peer;
    }

    pub fn peer(&self) -> Option<IpAddr> {
        self.peer
    }

    pub fn set_tls(&mut self, session: Option<TlsSession>) {
        self.tls = session;
    }

    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// The next step for the model; requests are answered by `handler` on the way.
    pub fn poll(&mut self, clock: &Clock, handler: &impl Handler) -> Action<'_> {
        loop {
            if self.written < self.outgoing.len() {
                return Action::Send(Transmit::Bytes {
                    bytes: &self.outgoing[self.written..],
                    more: false,
                });
            }
            self.drive(clock, handler);
            if self.take_output() {
                continue;
            }
            return match self.ending {
                _ if self.peer_closed => Action::Close,
                Ending::Open => self.receive(),
                Ending::Finishing => {
                    self.ending = Ending::Lingering;
                    self.since = clock.now();
                    Action::Finish
                }
                Ending::Lingering => self.receive(),
            };
        }
    }

    /// `n` bytes were read into the room of the last `Receive`; 0: the peer closed.
    pub fn received(&mut self, n: usize, now: Instant) {
        if n == 0 {
            self.since = now;
            self.peer_closed = true;
            self.pipe.lock().peer_closed = true;
            return;
        }
        if n == self.room.len() {
            self.room_size = (self.room_size * 2).min(INCOMING);
        }
        let trickling = self.guard.within_frame();
        let room = std::mem::take(&mut self.room);
        self.take_in(&room[..n]);
        self.room = room;
        // A frame cut across reads keeps the time its first byte came: the header timeout
        // counts from there, as for an HTTP/1.1 head. Otherwise the wait starts over.
        if !(trickling && self.guard.within_frame()) {
            self.since = now;
        }
        if self.arriving() {
            self.arrival.get_or_insert(Arrival::new(now, 0)).add(n);
        } else {
            self.arrival = None;
        }
    }

    /// Whether a request is on its way: a frame begun and not ended, or a request body that
    /// has not ended. The header timeout and the minimum data rate apply, as to an HTTP/1.1
    /// request.
    fn arriving(&self) -> bool {
        self.guard.within_frame() || !self.waiting.is_empty()
    }

    /// Bytes from the client: to h2, unless they flood or come after the end.
    fn take_in(&mut self, bytes: &[u8]) {
        if self.ending == Ending::Lingering || self.stopped || self.stopping.is_some() {
            return; // after the end, whatever comes is dropped
        }
        let mut pipe = self.pipe.lock();
        if let Verdict::Stop(reason) = self.guard.pass(bytes, &mut pipe.input) {
            self.stopping = Some(reason);
        }
    }

    /// `n` bytes of the last `Send` were written.
    pub fn sent(&mut self, n: usize, now: Instant) {
        self.written += n;
        self.since = now;
        if self.written >= self.outgoing.len() {
            self.outgoing.clear();
            self.written = 0;
        }
    }

    /// The client took some of what the kernel holds for it: the send timeout starts over.
    pub fn progressed(&mut self, now: Instant) {
        if self.sending() {
            self.since = now;
        }
    }

    /// Nothing more to read for now: buffers holding nothing are let go.
    pub fn rest(&mut self) {
        self.room = Vec::new();
        if self.outgoing.is_empty() {
            self.outgoing = Vec::new();
        }
        let mut pipe = self.pipe.lock();
        if pipe.input.is_empty() {
            pipe.input = Vec::new();
        }
        if pipe.output.is_empty() {
            pipe.output = Vec::new();
        }
    }

    /// The server is stopping: GOAWAY, the streams in flight finish, then the end. Whether
    /// there is a GOAWAY to send.
    pub fn drain(&mut self) -> bool {
        match &mut self.state {
            State::Open(conn) => {
                conn.graceful_shutdown();
                self.draining = true;
                true
            }
            State::Handshaking(_) => {
                self.end();
                false
            }
            State::Over => false,
        }
    }

    /// While the server drains before it stops (`Settings::closing`), a connection that
    /// brings a request is answered and told GOAWAY, gracefully, as HTTP/1.1 says
    /// `Connection: close`: the client takes its next request to a new connection.
    fn close_if_draining(&mut self) {
        if !self.draining && self.settings.closing() {
            self.drain();
        }
    }

    /// The deadline passed: an idle connection (or one whose request never ends) says
    /// GOAWAY before it closes, within the linger time. Whether it has that to send; not
    /// while a response is stuck (the client takes nothing), nor a second time.
    pub fn expire(&mut self, now: Instant) -> bool {
        if self.retry_at.is_some_and(|retry| now >= retry) && now < self.wait_deadline() {
            return true; // only the time to ask the handler again: poll on
        }
        if self.expired || self.sending() {
            return false;
        }
        let State::Open(conn) = &mut self.state else {
            return false;
        };
        conn.abrupt_shutdown(Reason::NO_ERROR);
        self.expired = true;
        self.since = now;
        true
    }

    /// When to close if nothing happens: the send timeout while a response is being sent,
    /// the header timeout until the connection is set up, while a request body comes and
    /// while a stopping server waits for the client's answer to its GOAWAY's PING,
    /// the idle timeout between requests, the linger time after the end.
    pub fn deadline(&self) -> Instant {
        let deadline = self.wait_deadline();
        self.retry_at.map_or(deadline, |retry| retry.min(deadline))
    }

    fn wait_deadline(&self) -> Instant {
        let allowed = if self.ending == Ending::Lingering || self.expired {
            self.settings.linger
        } else if self.sending() {
            self.settings.send_timeout
        } else if matches!(self.state, State::Handshaking(_)) || self.arriving() || self.draining {
            self.settings.header_timeout
        } else {
            self.settings.idle_timeout
        };
        let too_slow = self
            .arrival
            .filter(|_| self.arriving() && !self.sending())
            .and_then(|arrival| arrival.too_slow_at(self.settings.min_rate));
        let deadline = self.since + allowed;
        too_slow.map_or(deadline, |too_slow| deadline.min(too_slow))
    }

    /// Whether a response is on its way: bytes to write, or a body to send.
    fn sending(&self) -> bool {
        self.written < self.outgoing.len() || !self.responding.is_empty()
    }

    fn receive(&mut self) -> Action<'_> {
        let deadline = self.deadline();
        self.room.resize(self.room_size, 0);
        Action::Receive {
            buf: &mut self.room,
            deadline,
        }
    }

    /// Moves what h2 wrote into `outgoing`; whether there was any.
    fn take_output(&mut self) -> bool {
        let mut pipe = self.pipe.lock();
        if pipe.output.is_empty() {
            return false;
        }
        std::mem::swap(&mut self.outgoing, &mut pipe.output);
        self.written = 0;
        true
    }

    /// Lets h2 read what came and write what it must, answers the requests it accepted and
    /// sends body pieces while there is room, until none of that makes progress.
    fn drive(&mut self, clock: &Clock, handler: &impl Handler) {
        let mut cx = Context::from_waker(Waker::noop());
        if let State::Handshaking(handshake) = &mut self.state {
            match Pin::new(handshake).poll(&mut cx) {
                Poll::Ready(Ok(conn)) => self.state = State::Open(conn),
                Poll::Ready(Err(_)) => self.end(),
                Poll::Pending => return,
            }
        }
        loop {
            let mut progressed = false;
            loop {
                let State::Open(conn) = &mut self.state else {
                    return;
                };
                match conn.poll_accept(&mut cx) {
                    Poll::Ready(Some(Ok((request, respond)))) => {
                        progressed = true;
                        self.accepted(request, respond, clock, handler);
                        self.close_if_draining();
                    }
                    // A stream's error is h2's to answer (RST_STREAM); here it only ends
                    // the stream.
                    Poll::Ready(Some(Err(error))) if error.is_reset() => progressed = true,
                    Poll::Ready(Some(Err(_))) | Poll::Ready(None) => {
                        self.end();
                        return;
                    }
                    Poll::Pending => break,
                }
            }
            // The frames before the one at fault are h2's now; then the connection ends.
            if let (Some(reason), State::Open(conn)) = (self.stopping.take(), &mut self.state) {
                conn.abrupt_shutdown(reason);
                self.stopped = true;
                continue;
            }
            progressed |= self.read_bodies(&mut cx, clock, handler);
            progressed |= self.retry_deferred(clock, handler);
            progressed |= self.send_pieces(clock, handler);
            if !progressed {
                return;
            }
        }
    }

    /// h2 is over: what it wrote goes out, then the half-close.
    fn end(&mut self) {
        self.state = State::Over;
        self.responding.clear();
        self.waiting.clear();
        self.deferred.clear();
        if self.ending == Ending::Open {
            self.ending = Ending::Finishing;
        }
    }

    /// A request h2 accepted: answered now if it is whole, else once its body has come
    /// (and been dropped). So a body's frames are read to its end whatever the response.
    fn accepted(
        &mut self,
        request: ::http::Request<RecvStream>,
        respond: SendResponse<Bytes>,
        clock: &Clock,
        handler: &impl Handler,
    ) {
        let (parts, body) = request.into_parts();
        if body.is_end_stream() {
            self.answer(parts, respond, clock, handler);
        } else {
            self.waiting.push(Waiting { parts, body, respond });
        }
    }

    /// Reads the bodies of the requests that have one, dropping the data; answers those
    /// whose body has ended. Whether any made progress.
    fn read_bodies(&mut self, cx: &mut Context<'_>, clock: &Clock, handler: &impl Handler) -> bool {
        let mut progressed = false;
        let mut index = 0;
        while index < self.waiting.len() {
            let waiting = &mut self.waiting[index];
            match waiting.body.poll_data(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    progressed = true;
                    let _ = waiting.body.flow_control().release_capacity(data.len());
                }
                Poll::Ready(None) => {
                    progressed = true;
                    let done = self.waiting.swap_remove(index);
                    self.answer(done.parts, done.respond, clock, handler);
                }
                // Reset, or broken: the stream is over (h2 has said why).
                Poll::Ready(Some(Err(_))) => {
                    progressed = true;
                    self.waiting.swap_remove(index);
                }
                Poll::Pending => index += 1,
            }
        }
        progressed
    }

    /// Asks the handler again about the requests it was not ready for; whether it answered
    /// any.
    fn retry_deferred(&mut self, clock: &Clock, handler: &impl Handler) -> bool {
        if self.deferred.is_empty() {
            return false;
        }
        let deferred = std::mem::take(&mut self.deferred);
        let before = deferred.len();
        self.retry_at = None;
        for Deferred { parts, respond } in deferred {
            self.answer(parts, respond, clock, handler);
        }
        self.deferred.len() < before
    }

    /// Answers one request; its response joins those being sent if a body follows. One the
    /// handler is not ready for waits in `deferred`.
    fn answer(
        &mut self,
        parts: ::http::request::Parts,
        mut respond: SendResponse<Bytes>,
        clock: &Clock,
        handler: &impl Handler,
    ) {
        let path = parts.uri.path_and_query().map_or("", |p| p.as_str());
        let message = Message {
            method: parts.method.as_str().as_bytes(),
            path: path.as_bytes(),
            authority: parts.uri.authority().map(|a| a.as_str().as_bytes()),
        };
        let fields = parts
            .headers
            .iter()
            .map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes()));
        let limits = self.settings.limits;
        let sni = match &self.tls {
            Some(session) if self.settings.match_sni => session.sni.as_deref(),
            _ => None,
        };
        let answer = match http::answer(message, fields, &mut self.head, &limits, sni, clock, handler) {
            Ok(Some(answer)) => answer,
            Ok(None) => {
                self.deferred.push(Deferred { parts, respond });
                self.retry_at = Some(clock.now() + http::RETRY_LATER);
                return;
            }
            Err(http::Malformed) => {
                respond.send_reset(Reason::PROTOCOL_ERROR);
                return;
            }
        };
        let mut response = ::http::Response::new(());
        response.headers_mut().reserve(FIELDS);
        *response.status_mut() = ::http::StatusCode::from_u16(answer.status())
            .unwrap_or(::http::StatusCode::INTERNAL_SERVER_ERROR);
        answer.write_fields(&mut Fields(response.headers_mut()), clock, &self.settings);
        let record = self.settings.observe.then(|| {
            let (status, body_bytes) = (answer.status(), answer.content_bytes());
            Box::new(Record::of(&message, &parts.headers, status, body_bytes, clock))
        });
        let head_only = answer.head_only();
        let Ok(stream) = respond.send_response(response, head_only) else {
            return; // the client reset the stream meanwhile
        };
        let responding = Responding {
            stream,
            body: answer.into_body(),
            record,
        };
        if head_only {
            self.finished(responding, clock, handler);
        } else {
            self.responding.push(responding);
        }
    }

    /// Hands body pieces to h2 as flow control allows, while little waits to be written;
    /// reports the responses all handed over. Whether any piece went.
    fn send_pieces(&mut self, clock: &Clock, handler: &impl Handler) -> bool {
        let mut progressed = false;
        let mut index = 0;
        while index < self.responding.len() {
            if self.pipe.lock().output.len() >= OUTPUT_HIGH_WATER {
                break;
            }
            let responding = &mut self.responding[index];
            match send_piece(responding) {
                Sent::Piece => {
                    progressed = true;
                    self.guard.earned(guard::PER_PIECE);
                    let responding = &mut self.responding[index];
                    if responding.body.is_empty() {
                        let done = self.responding.swap_remove(index);
                        self.finished(done, clock, handler);
                        continue;
                    }
                }
                Sent::Nothing => {}
                Sent::Failed => {
                    // Reset by the client, or the file shrank: the stream ends here.
                    let mut failed = self.responding.swap_remove(index);
                    failed.stream.send_reset(Reason::INTERNAL_ERROR);
                    progressed = true;
                    continue;
                }
            }
            index += 1;
        }
        progressed
    }

    /// A response is all handed to h2: its exchange is told (with `Settings::observe`).
    fn finished(&mut self, responding: Responding, clock: &Clock, handler: &impl Handler) {
        if let Some(record) = responding.record {
            handler.exchanged(&record.exchange(self.peer, self.tls.as_ref(), clock));
        }
    }
}

/// What `send_piece` did.
enum Sent {
    Piece,
    Nothing,
    Failed,
}

/// Hands the next piece of `responding`'s body to h2, as much as its flow-control
/// capacity allows.
fn send_piece(responding: &mut Responding) -> Sent {
    let stream = &mut responding.stream;
    if stream.capacity() == 0 {
        stream.reserve_capacity(WANTED as usize);
        if stream.capacity() == 0 {
            return Sent::Nothing;
        }
    }
    let room = stream.capacity().min(PIECE);
    let piece = match responding.body.front() {
        Transmit::Bytes { bytes, .. } => Bytes::copy_from_slice(&bytes[..room.min(bytes.len())]),
        Transmit::File { file, offset, len } => {
            // Read into the piece's spare capacity: no zeroing of what the read overwrites.
            let mut piece = Vec::with_capacity(room.min(len));
            match rustix::io::pread(file, rustix::buffer::spare_capacity(&mut piece), offset) {
                Ok(n) if n > 0 => {}
                _ => return Sent::Failed,
            }
            Bytes::from(piece)
        }
    };
    let n = piece.len();
    responding.body.advance(n);
    let last = responding.body.is_empty();
    match stream.send_data(piece, last) {
        Ok(()) => Sent::Piece,
        Err(_) => Sent::Failed,
    }
}

/// Room for the most header fields a response has, so that the map is made once.
const FIELDS: usize = 16;

/// The HPACK dynamic table the server lets a client use (SETTINGS_HEADER_TABLE_SIZE): the
/// protocol's default.
const HPACK_TABLE: u32 = 4096;

/// The response's fields into h2's header map, names in lower case (`http`'s constants).
/// The core writes only valid values.
struct Fields<'a>(&'a mut ::http::HeaderMap);

impl FieldSink for Fields<'_> {
    fn field(&mut self, name: FieldName, value: &[u8]) {
        if let Ok(value) = ::http::HeaderValue::from_bytes(value) {
            self.0.append(header_name(name), value);
        }
    }

    fn constant(&mut self, field: ConstantField) {
        let value = ::http::HeaderValue::from_static(field.value());
        self.0.append(header_name(field.name()), value);
    }

    fn extra(&mut self, name: &str, value: &str) {
        let name = ::http::HeaderName::from_bytes(name.as_bytes());
        if let (Ok(name), Ok(value)) = (name, ::http::HeaderValue::from_str(value)) {
            self.0.append(name, value);
        }
    }
}

/// `http`'s constant for each field the core writes: no name is parsed per response.
fn header_name(name: FieldName) -> ::http::HeaderName {
    use ::http::header;
    match name {
        FieldName::Server => header::SERVER,
        FieldName::Date => header::DATE,
        FieldName::ContentType => header::CONTENT_TYPE,
        FieldName::ContentEncoding => header::CONTENT_ENCODING,
        FieldName::ContentLength => header::CONTENT_LENGTH,
        FieldName::ContentRange => header::CONTENT_RANGE,
        FieldName::AcceptRanges => header::ACCEPT_RANGES,
        FieldName::ETag => header::ETAG,
        FieldName::LastModified => header::LAST_MODIFIED,
        FieldName::Vary => header::VARY,
        FieldName::CacheControl => header::CACHE_CONTROL,
        FieldName::Location => header::LOCATION,
        FieldName::Allow => header::ALLOW,
        FieldName::StrictTransportSecurity => header::STRICT_TRANSPORT_SECURITY,
        FieldName::XContentTypeOptions => header::X_CONTENT_TYPE_OPTIONS,
    }
}

/// What the access log says of one stream, copied from its request.
struct Record {
    /// Method, target, Referer, User-Agent, Forwarded and X-Forwarded-For, one after the
    /// other, and where each ends.
    text: Vec<u8>,
    ends: [usize; 6],
    /// Which of the four fields came.
    present: [bool; 4],
    status: u16,
    body_bytes: u64,
    received: Instant,
}

impl Record {
    fn of(
        message: &Message<'_>,
        headers: &::http::HeaderMap,
        status: u16,
        body_bytes: u64,
        clock: &Clock,
    ) -> Record {
        let first = |name| {
            headers
                .get(name)
                .map(|v: &::http::HeaderValue| v.as_bytes().to_vec())
        };
        let fields = [
            first(::http::header::REFERER),
            first(::http::header::USER_AGENT),
            joined(headers, ::http::header::FORWARDED),
            joined(headers, X_FORWARDED_FOR),
        ];
        let mut text = Vec::new();
        let mut ends = [0; 6];
        let parts = [Some(message.method), Some(message.path)]
            .into_iter()
            .chain(fields.iter().map(Option::as_deref));
        for (end, part) in ends.iter_mut().zip(parts) {
            text.extend_from_slice(part.unwrap_or_default());
            *end = text.len();
        }
        Record {
            text,
            ends,
            present: fields.each_ref().map(Option::is_some),
            status,
            body_bytes,
            received: clock.now(),
        }
    }

    fn exchange<'a>(
        &'a self,
        peer: Option<IpAddr>,
        tls: Option<&'a TlsSession>,
        clock: &Clock,
    ) -> Exchange<'a> {
        let [method, target, referer, user_agent, forwarded, forwarded_for] = self.ends;
        let field = |i: usize, range: std::ops::Range<usize>| self.present[i].then(|| &self.text[range]);
        Exchange {
            peer,
            tls,
            request: Some(RequestLine {
                method: &self.text[..method],
                target: &self.text[method..target],
                version: "HTTP/2.0",
            }),
            referer: field(0, target..referer),
            user_agent: field(1, referer..user_agent),
            forwarded: field(2, user_agent..forwarded),
            forwarded_for: field(3, forwarded..forwarded_for),
            status: self.status,
            body_bytes: self.body_bytes,
            // The head went HPACK-compressed among other streams' frames: only the content
            // is counted.
            bytes: self.body_bytes,
            received: self.received,
            time: clock.wall(),
        }
    }
}

const X_FORWARDED_FOR: ::http::HeaderName = ::http::HeaderName::from_static("x-forwarded-for");

/// Every value of `name`, joined by commas as one list; `None` if the field did not come.
fn joined(headers: &::http::HeaderMap, name: ::http::HeaderName) -> Option<Vec<u8>> {
    let mut values = headers.get_all(name).iter();
    let mut list = values.next()?.as_bytes().to_vec();
    for value in values {
        list.extend_from_slice(b", ");
        list.extend_from_slice(value.as_bytes());
    }
    Some(list)
}

/// The bytes between the link and h2: what came from the peer, what h2 wrote for it.
#[derive(Debug, Default)]
struct Buffers {
    input: Vec<u8>,
    /// `input[read..]` is not yet read by h2.
    read: usize,
    output: Vec<u8>,
    peer_closed: bool,
}

/// h2's I/O object: the link's buffers, shared with it (h2 owns its I/O object and lends it
/// to no one, so the link keeps a second handle).
#[derive(Debug, Clone, Default)]
struct Pipe(Arc<Mutex<Buffers>>);

impl Pipe {
    fn lock(&self) -> MutexGuard<'_, Buffers> {
        // Nothing panics while holding it; should something, the buffers are still whole.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl AsyncRead for Pipe {
    fn poll_read(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut pipe = self.lock();
        let unread = pipe.input.len() - pipe.read;
        if unread == 0 {
            // The end of stream, or nothing yet: the link polls again when more comes.
            return if pipe.peer_closed {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            };
        }
        let n = unread.min(buf.remaining());
        let start = pipe.read;
        buf.put_slice(&pipe.input[start..start + n]);
        pipe.read += n;
        if pipe.read == pipe.input.len() {
            pipe.input.clear();
            pipe.read = 0;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Pipe {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        let mut pipe = self.lock();
        if pipe.output.len() >= OUTPUT_HIGH_WATER {
            return Poll::Pending; // the link polls again once the model has sent some
        }
        pipe.output.extend_from_slice(bytes);
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
