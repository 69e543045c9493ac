//! One HTTP/1.1 connection as a state machine: bytes in, what to send out, when to close.
//!
//! The I/O layer drives it with one loop, whatever the concurrency model:
//!
//! ```text
//! loop {
//!     match conn.poll(&clock, &handler) {
//!         Action::Send(t)       => { let n = write(socket, t)?; conn.sent(n, now) }
//!         Action::Receive { buf, deadline } => { let n = read(socket, buf)?; conn.received(n, now) }
//!         Action::Finish        => shutdown(socket, Write),
//!         Action::Close         => break,
//!     }
//! }
//! ```
//! and closes the connection when `conn.deadline()` has passed.

use super::body::{BodySkip, Skipped};
use super::clock::Clock;
use super::exchange::{self, Answered, Exchange, Exchanges, Handshake, TlsSession};
use super::reply::{self, Body, Persistence, Reply};
use super::request::{self, Head, Intent, Limits, Parsed, Request, Version};
use super::shape::{shape, Layout, Shaped};
use super::status::Status;
use core::net::IpAddr;
use std::collections::VecDeque;
use std::fs::File;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Answers requests that made it through the protocol checks (GET and HEAD of a path).
pub trait Handler {
    fn handle(&self, request: &Request<'_>) -> Reply;

    /// Whether OPTIONS requests reach [`handle`](Handler::handle) (a site answering CORS
    /// preflight); if not, the core answers them 405.
    fn answers_options(&self) -> bool {
        false
    }

    /// Whether `request` can be answered now without slow work on this thread (a password
    /// hash to check): if not, the handler starts that work elsewhere and the core keeps the
    /// request and asks again after [`RETRY_LATER`], so that an event loop serving others
    /// never waits on it.
    fn ready(&self, _request: &Request<'_>) -> bool {
        true
    }

    /// A response is all sent (with `Settings::observe` only): for an access log, metrics.
    fn exchanged(&self, _exchange: &Exchange<'_>) {}

    /// A connection's TLS handshake is over, completed or failed (with `Settings::observe`
    /// only, told by the I/O layer once per connection): for metrics.
    fn handshake(&self, _outcome: Handshake<'_>) {}
}

/// The handler's reply to `request`, or the core's 405 to an OPTIONS it does not answer;
/// `None` while the handler is not [ready](Handler::ready) for it.
pub(crate) fn ask(handler: &impl Handler, request: &Request<'_>) -> Option<Reply> {
    if request.misdirected() {
        return Some(Reply::error(Status::MisdirectedRequest));
    }
    if request.method == request::Method::Options && !handler.answers_options() {
        return Some(Reply::error(Status::MethodNotAllowed));
    }
    handler.ready(request).then(|| handler.handle(request))
}

/// How soon a request the handler was not ready for is asked again: the I/O layer's next
/// look at a connection whose deadline has passed (an event loop's sweep may come later).
pub const RETRY_LATER: Duration = Duration::from_millis(10);

/// Per-connection policy: limits and timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub limits: Limits,
    /// From the first byte of a head (or from accept) until the head is complete; also the
    /// longest pause allowed while a request body trickles in.
    pub header_timeout: Duration,
    /// Keep-alive: how long a connection may sit between requests.
    pub idle_timeout: Duration,
    /// How long a client may take no data while a response is pending.
    pub send_timeout: Duration,
    /// Bytes per second a client must average while a request arrives, after `RATE_GRACE`;
    /// 0: no minimum.
    pub min_rate: u64,
    /// After the last response on a connection the server half-closes and drains what the
    /// client still sends for this long, so that closing does not reset the connection and
    /// destroy a response the client has not read yet (RFC 9112 §9.6).
    pub linger: Duration,
    /// Tell the handler of every exchange ([`Handler::exchanged`]); off, the core keeps no
    /// record of them.
    pub observe: bool,
    /// `Strict-Transport-Security: max-age=` this on every response: for connections over
    /// TLS only (RFC 6797 §7.2: a browser ignores it over plaintext).
    pub hsts: Option<u64>,
    /// HTTP/2: requests a client may have in flight at once on one connection
    /// (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub h2_max_streams: u32,
    /// `X-Content-Type-Options: nosniff` on every response (unless the handler's fields
    /// replace it): the server's Content-Types are right, so browsers should never guess.
    pub nosniff: bool,
    /// Raised while the server drains before it stops (`--drain-delay`): every response then
    /// closes its connection (HTTP/1.1 `Connection: close`; HTTP/2 a graceful GOAWAY), so
    /// that clients take their next request elsewhere rather than meet a closing socket.
    pub closing: Option<&'static AtomicBool>,
    /// Over TLS, a request naming another host than the client's SNI gets 421 Misdirected
    /// Request (for virtual hosts: a connection made for one site is not answered by
    /// another). The I/O layer tells the session ([`Connection::set_tls`]) when this is on.
    pub match_sni: bool,
}

impl Settings {
    /// Whether the server is draining (see [`Settings::closing`]).
    pub fn closing(&self) -> bool {
        self.closing
            .is_some_and(|closing| closing.load(Ordering::Relaxed))
    }
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            limits: Limits::default(),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            min_rate: 500,
            linger: Duration::from_secs(2),
            observe: false,
            hsts: None,
            h2_max_streams: 128,
            nosniff: true,
            closing: None,
            match_sni: false,
        }
    }
}

/// What the I/O layer should do next.
#[derive(Debug)]
pub enum Action<'a> {
    Send(Transmit<'a>),
    /// Read into `buf`, then call [`Connection::received`]; give up on the connection if
    /// nothing arrives by `deadline`.
    Receive {
        buf: &'a mut [u8],
        deadline: Instant,
    },
    /// All responses are out: shut down the write side, keep reading until the peer closes.
    Finish,
    /// Close the socket: the peer has closed, or its last request said it was the last and
    /// nothing followed it, so closing cannot reset the connection under the response.
    Close,
}

/// Bytes to write, or a range of an open file to send with sendfile.
#[derive(Debug)]
pub enum Transmit<'a> {
    /// `more`: a file range follows at once (a head before its body): send with `MSG_MORE`,
    /// so the head shares a packet with the body instead of leaving alone.
    Bytes {
        bytes: &'a [u8],
        more: bool,
    },
    File {
        file: &'a File,
        offset: u64,
        len: usize,
    },
}

/// Buffered input never grows past this; every limit on a head is below it.
const MAX_INPUT: usize = 32 * 1024;
/// Most request heads fit; and a buffer this small is quick to take and give back per request.
const INITIAL_INPUT: usize = 1024;
/// Pipelined requests stop being answered while this much output waits to be written,
/// so a client that sends and never reads cannot make the server buffer without bound.
const OUTPUT_HIGH_WATER: usize = 256 * 1024;
/// Likewise for open files waiting to be sent.
const MAX_QUEUED_FILES: usize = 4;
/// Upper bound for one sendfile call.
const MAX_SENDFILE: u64 = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    Head,
    Body(BodySkip),
    /// No further request will be read: the last response is queued or the input is unusable.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Open,
    /// The write side is shut down; waiting for the peer's end of stream.
    Lingering,
}

/// The protocol state of one connection. It owns the input and output buffers; it never
/// touches a socket or a clock.
#[derive(Debug)]
pub struct Connection {
    settings: Settings,
    input: Vec<u8>,
    /// `input[consumed..filled]` is received but not yet parsed.
    filled: usize,
    consumed: usize,
    output: Output,
    reading: Reading,
    body_skipped: u64,
    ending: Ending,
    peer_closed: bool,
    /// The client said its request was its last (`Connection: close`, or HTTP/1.0 without
    /// keep-alive), the request had no body and nothing followed it: once the response is
    /// out, closing at once is safe, with no half-close and linger (nginx does the same).
    client_ends: bool,
    served_any: bool,
    /// Set by [`Connection::drain`]: no request after the one in flight is answered.
    draining: bool,
    /// When the current wait began (accept, the first byte of a head, a response queued,
    /// the last bytes sent, the last body progress, the half-close): the base of `deadline`.
    waiting_since: Instant,
    /// The request now arriving, for the minimum data rate.
    arriving: Option<Arrival>,
    /// With `Settings::observe`: the exchanges whose responses are not yet all sent.
    observed: Option<Box<Exchanges>>,
    /// With `Settings::match_sni`: the server name the TLS client asked for.
    sni: Option<Box<str>>,
    /// The handler was not ready for the buffered request: when to ask again.
    retry_at: Option<Instant>,
}

/// When the first byte of something the minimum data rate applies to came (a request, or a
/// TLS handshake), and how many bytes have come since.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrival {
    since: Instant,
    bytes: u64,
}

/// How long a request may arrive at any pace before the minimum data rate applies: one
/// slow round trip, so a client on a poor link is not cut for its first packets.
const RATE_GRACE: Duration = Duration::from_secs(2);

impl Arrival {
    pub fn new(since: Instant, bytes: u64) -> Arrival {
        Arrival { since, bytes }
    }

    pub fn add(&mut self, bytes: usize) {
        self.bytes += bytes as u64;
    }

    /// When what has come is too little for `min_rate` bytes a second (after the grace);
    /// `None` when there is no minimum (0). Every `min_rate` bytes buy one more second.
    pub fn too_slow_at(&self, min_rate: u64) -> Option<Instant> {
        if min_rate == 0 {
            return None;
        }
        let earned = Duration::from_secs_f64(self.bytes as f64 / min_rate as f64);
        Some(self.since + RATE_GRACE + earned)
    }
}

impl Connection {
    pub fn new(settings: Settings, now: Instant) -> Connection {
        Connection {
            settings,
            input: Vec::new(),
            filled: 0,
            consumed: 0,
            output: Output::default(),
            reading: Reading::Head,
            body_skipped: 0,
            ending: Ending::Open,
            peer_closed: false,
            client_ends: false,
            served_any: false,
            draining: false,
            waiting_since: now,
            arriving: None,
            observed: settings.observe.then(Box::default),
            sni: None,
            retry_at: None,
        }
    }

    /// A connection accepted beyond the connection limit: it only says 503 and closes.
    pub fn overloaded(settings: Settings, clock: &Clock) -> Connection {
        Connection::refusing(settings, clock, Status::ServiceUnavailable)
    }

    /// A connection that has nothing to do but close.
    pub fn closed(settings: Settings, now: Instant) -> Connection {
        let mut conn = Connection::new(settings, now);
        conn.reading = Reading::Done;
        conn.peer_closed = true;
        conn
    }

    /// A connection that only answers `status` with its page and closes, whatever it is sent.
    pub fn refusing(settings: Settings, clock: &Clock, status: Status) -> Connection {
        let mut conn = Connection::new(settings, clock.now());
        let refusal = Shaped::whole(Reply::error(status));
        conn.queue(refusal, false, clock, Persistence::Close, None);
        conn.reading = Reading::Done;
        conn
    }

    /// The next step for the I/O layer. Answers every complete request already buffered
    /// before asking for more bytes, so pipelined responses leave together.
    pub fn poll(&mut self, clock: &Clock, handler: &impl Handler) -> Action<'_> {
        if let Some(observed) = &mut self.observed {
            observed.report(clock, handler);
        }
        if self.output.is_empty() {
            self.answer_buffered(clock, handler);
            if !self.output.is_empty() {
                self.waiting_since = clock.now(); // the send timeout starts now
            }
        }
        if !self.output.is_empty() {
            return Action::Send(self.output.front());
        }
        if self.reading != Reading::Done {
            return self.receive();
        }
        if self.peer_closed || (self.client_ends && self.filled == self.consumed) {
            return Action::Close;
        }
        if self.ending == Ending::Open {
            self.ending = Ending::Lingering;
            self.waiting_since = clock.now();
            return Action::Finish;
        }
        // Lingering: whatever arrives now is dropped.
        self.filled = 0;
        self.consumed = 0;
        self.receive()
    }

    /// `n` bytes were read into the buffer from the last [`Action::Receive`]; 0 means the
    /// peer closed its side.
    pub fn received(&mut self, n: usize, now: Instant) {
        if n == 0 {
            self.peer_closed = true;
            return;
        }
        let starts_a_head = self.reading == Reading::Head && self.filled == self.consumed;
        if starts_a_head || matches!(self.reading, Reading::Body(_)) {
            self.waiting_since = now;
        }
        if self.reading != Reading::Done {
            self.arriving.get_or_insert(Arrival::new(now, 0)).add(n);
        }
        self.filled += n;
    }

    /// `n` bytes of the last [`Action::Send`] were written.
    pub fn sent(&mut self, n: usize, now: Instant) {
        self.output.advance(n);
        if let Some(observed) = &mut self.observed {
            observed.sent(n);
        }
        // Progress: the send timeout (or, once all is sent, the idle timeout) starts over.
        self.waiting_since = now;
    }

    /// The client took some of the bytes already handed to the kernel (the I/O layer learns
    /// this from the socket: the engine's `SendWatch`): while a response is being sent, the
    /// send timeout starts over.
    pub fn progressed(&mut self, now: Instant) {
        if !self.output.is_empty() {
            self.waiting_since = now;
        }
    }

    /// The client's address, for the handler's [`Exchange`]s (kept with `Settings::observe`).
    pub fn set_peer(&mut self, peer: Option<IpAddr>) {
        if let Some(observed) = &mut self.observed {
            observed.set_peer(peer);
        }
    }

    /// The client's address as [`Connection::set_peer`] gave it (kept with `Settings::observe`).
    pub fn peer(&self) -> Option<IpAddr> {
        self.observed.as_ref().and_then(|observed| observed.peer())
    }

    /// The TLS session the connection runs over, for the handler's [`Exchange`]s (kept with
    /// `Settings::observe`) and its SNI (kept with `Settings::match_sni`). Plaintext
    /// connections are never told.
    pub fn set_tls(&mut self, session: TlsSession) {
        if self.settings.match_sni {
            self.sni.clone_from(&session.sni);
        }
        if let Some(observed) = &mut self.observed {
            observed.set_tls(session);
        }
    }

    /// The I/O layer has nothing more to read for now: an input buffer holding no unparsed
    /// bytes is let go, so a connection idling between requests costs no buffer (the next
    /// read takes a fresh one).
    pub fn rest(&mut self) {
        if self.filled == self.consumed {
            self.input = Vec::new();
            self.filled = 0;
            self.consumed = 0;
        }
    }

    /// Stops taking requests, for a server that is shutting down: the response in flight
    /// is finished (and a request body being skipped, read to its end), then the connection
    /// ends as after `Connection: close`. An idle connection ends at once.
    pub fn drain(&mut self) {
        self.draining = true;
        if self.reading == Reading::Head {
            self.reading = Reading::Done;
        }
    }

    /// What has been received and not yet parsed: for the seam, which looks at a plaintext
    /// connection's first bytes to choose its protocol before this one answers them.
    pub fn unparsed(&self) -> &[u8] {
        &self.input[self.consumed..self.filled]
    }

    /// Asks for more bytes without answering what is buffered (what the first bytes are
    /// cannot be told yet). Not once the input has ended: nothing more will come.
    pub fn await_more(&mut self) -> Action<'_> {
        self.receive()
    }

    /// The peer has closed its side: nothing more will be received.
    pub fn input_ended(&self) -> bool {
        self.peer_closed
    }

    /// The policy this connection was made with.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// When the connection should be closed if nothing happens: while output is pending,
    /// the send timeout since the last bytes went out; otherwise the header timeout (and
    /// the minimum data rate) while a head or body arrives, the idle timeout between
    /// requests, the linger time after the half-close.
    pub fn deadline(&self) -> Instant {
        if self.output.is_empty() {
            let deadline = self.wait_deadline();
            self.retry_at.map_or(deadline, |retry| retry.min(deadline))
        } else {
            self.waiting_since + self.settings.send_timeout
        }
    }

    fn wait_deadline(&self) -> Instant {
        let allowed = match (self.ending, self.reading) {
            (Ending::Lingering, _) => self.settings.linger,
            (_, Reading::Head) if self.filled == self.consumed && self.served_any => {
                self.settings.idle_timeout
            }
            _ => self.settings.header_timeout,
        };
        let deadline = self.waiting_since + allowed;
        // A request waiting on the handler has arrived whole: no rate to keep up.
        let too_slow = self
            .arriving
            .filter(|_| self.reading != Reading::Done && self.retry_at.is_none())
            .and_then(|arrival| arrival.too_slow_at(self.settings.min_rate));
        too_slow.map_or(deadline, |too_slow| deadline.min(too_slow))
    }

    /// A request has arrived whole (head and body): the rate clock stops, or restarts for
    /// the next request if some of it is already buffered.
    fn request_arrived(&mut self, now: Instant) {
        let buffered = (self.filled - self.consumed) as u64;
        self.arriving = (buffered > 0).then_some(Arrival::new(now, buffered));
    }

    fn receive(&mut self) -> Action<'_> {
        let deadline = self.deadline();
        Action::Receive {
            buf: self.receive_space(),
            deadline,
        }
    }

    fn receive_space(&mut self) -> &mut [u8] {
        let full = self.filled == self.input.len();
        if full && self.consumed > 0 {
            self.input.copy_within(self.consumed..self.filled, 0);
            self.filled -= self.consumed;
            self.consumed = 0;
        }
        // Grow when nothing could be made room for, and when the last read filled the
        // buffer: a client sending more than it holds (a long pipeline) gets bigger reads.
        if self.filled == self.input.len() || (full && self.input.len() < MAX_INPUT) {
            let grown = (self.input.len() * 2).clamp(INITIAL_INPUT, MAX_INPUT);
            self.input.resize(grown, 0);
        }
        if self.filled == self.input.len() {
            // Unreachable while every head limit is below MAX_INPUT; if it ever happens,
            // stop reading rather than hand out an empty buffer that reads as end of stream.
            self.reading = Reading::Done;
            self.filled = 0;
            self.consumed = 0;
        }
        &mut self.input[self.filled..]
    }

    /// The deadline passed: whether that was only the time to ask the handler again about
    /// a request it was not ready for (then the I/O layer polls on), or the end.
    pub fn expire(&mut self, now: Instant) -> bool {
        self.retry_at.is_some_and(|retry| now >= retry) && now < self.wait_deadline()
    }

    fn answer_buffered(&mut self, clock: &Clock, handler: &impl Handler) {
        self.retry_at = None;
        while !self.output.is_full() {
            match self.reading {
                Reading::Done => break,
                Reading::Body(skip) => {
                    if !self.skip_body(skip, clock.now()) {
                        break;
                    }
                }
                Reading::Head => {
                    if !self.answer_one(clock, handler) {
                        break;
                    }
                }
            }
        }
        if self.filled == self.consumed {
            self.filled = 0;
            self.consumed = 0;
        }
    }

    /// Skips buffered body bytes; true when the body is over and the next head may follow.
    fn skip_body(&mut self, mut skip: BodySkip, now: Instant) -> bool {
        let input = &self.input[self.consumed..self.filled];
        let max_body = self.settings.limits.max_body;
        match skip.skip(input, max_body, &mut self.body_skipped) {
            Skipped::More(n) => {
                self.consumed += n;
                self.reading = if self.peer_closed {
                    Reading::Done
                } else {
                    Reading::Body(skip)
                };
                false
            }
            Skipped::Done(n) => {
                self.consumed += n;
                self.request_arrived(now);
                self.reading = if self.draining {
                    Reading::Done
                } else {
                    Reading::Head
                };
                true
            }
            Skipped::Invalid => {
                self.reading = Reading::Done;
                false
            }
        }
    }

    /// Parses and answers one buffered head; false when there is none (yet).
    fn answer_one(&mut self, clock: &Clock, handler: &impl Handler) -> bool {
        let start = self.consumed;
        if start == self.filled {
            // Nothing buffered: the common case between requests, not worth a parse.
            if self.peer_closed {
                self.reading = Reading::Done;
            }
            return false;
        }
        let parsed = request::parse(&mut self.input[start..self.filled], &self.settings.limits);
        match parsed {
            Parsed::Partial => {
                if self.peer_closed {
                    self.reading = Reading::Done;
                }
                false
            }
            Parsed::Invalid(status) => {
                let response = Shaped::whole(Reply::error(status));
                self.queue(response, false, clock, Persistence::Close, None);
                self.reading = Reading::Done;
                false
            }
            Parsed::Complete { head, len } => {
                self.consumed += len;
                if !self.respond(head, start, clock, handler) {
                    self.consumed = start; // kept whole, to be parsed and asked again
                    self.retry_at = Some(clock.now() + RETRY_LATER);
                    return false;
                }
                true
            }
        }
    }

    /// Queues `response`; with `Settings::observe`, notes it and its request (`answered`,
    /// `None` if there is no request line), to report them once the response is all sent.
    fn queue(
        &mut self,
        response: Shaped,
        head_only: bool,
        clock: &Clock,
        persistence: Persistence,
        answered: Option<Answered>,
    ) {
        let noted = self
            .observed
            .is_some()
            .then(|| exchange::summary(&response, head_only));
        self.output
            .push(response, head_only, clock, persistence, &self.settings);
        if let (Some(observed), Some(noted)) = (&mut self.observed, noted) {
            let since = self.arriving.map_or(clock.now(), |arrival| arrival.since);
            let request = answered.map(|answered| (&self.input[answered.start..], answered));
            observed.queued(request, noted, self.output.pending(), since);
        }
    }

    /// Answers the request whose head starts at `head_start`; false if the handler was not
    /// ready for it (nothing else is changed then: it is answered on a later poll).
    fn respond(&mut self, head: Head, head_start: usize, clock: &Clock, handler: &impl Handler) -> bool {
        // A client waiting for 100 Continue may never send its body; rather than guess
        // whether the next bytes are body or request, answer and close.
        let keep_alive =
            head.keep_alive && !(head.expects_continue && head.framing.is_some()) && !self.settings.closing();
        let persistence = match (keep_alive, head.version) {
            (false, _) => Persistence::Close,
            (true, Version::Http10) => Persistence::KeepAlive,
            (true, Version::Http11) => Persistence::Implicit,
        };
        let answered = self.observed.is_some().then(|| Answered::of(&head, head_start));
        let (response, head_only) = match head.intent {
            Intent::Serve { method, path } => {
                let head_bytes = &self.input[head_start..];
                let path = if path.is_empty() { b"/" } else { &head_bytes[path] };
                let (target_at, target_len) = head.spans.target;
                let request = Request {
                    method,
                    path,
                    now: clock.now(),
                    target: &head_bytes[target_at..target_at + target_len],
                    head: head_bytes,
                    fields: &head.fields,
                    sni: self.sni.as_deref(),
                };
                let Some(reply) = ask(handler, &request) else {
                    return false;
                };
                (shape(reply, &request), method == request::Method::Head)
            }
            Intent::Refuse(status) => (Shaped::whole(Reply::error(status)), false),
        };
        self.queue(response, head_only, clock, persistence, answered);
        self.served_any = true;
        self.body_skipped = 0;
        self.client_ends = !head.keep_alive && head.framing.is_none();
        self.reading = match BodySkip::start(head.framing) {
            _ if !keep_alive => Reading::Done,
            Some(skip) => Reading::Body(skip),
            None if self.draining => Reading::Done,
            None => Reading::Head,
        };
        if !matches!(self.reading, Reading::Body(_)) {
            self.request_arrived(clock.now());
        }
        true
    }
}

/// Responses waiting to be written, in order. Consecutive in-memory parts share one buffer,
/// so a batch of pipelined responses leaves in one write.
#[derive(Debug, Default)]
pub(super) struct Output {
    queue: VecDeque<Segment>,
}

#[derive(Debug)]
enum Segment {
    Bytes {
        data: Vec<u8>,
        sent: usize,
    },
    /// A range of a file; the parts of a multipart response share the open file.
    File {
        file: Arc<File>,
        offset: u64,
        end: u64,
    },
}

/// A body's bytes, ready to be cut into ranges.
enum Source {
    Memory(MemoryBytes),
    File(Arc<File>),
}

enum MemoryBytes {
    Static(&'static [u8]),
    Shared(Arc<[u8]>),
}

impl AsRef<[u8]> for MemoryBytes {
    fn as_ref(&self) -> &[u8] {
        match self {
            MemoryBytes::Static(bytes) => bytes,
            MemoryBytes::Shared(bytes) => bytes,
        }
    }
}

impl From<Body> for Source {
    fn from(body: Body) -> Source {
        match body {
            Body::Static(bytes) => Source::Memory(MemoryBytes::Static(bytes)),
            Body::Shared(bytes) => Source::Memory(MemoryBytes::Shared(bytes)),
            Body::File { file, .. } => Source::File(Arc::new(file)),
        }
    }
}

impl Output {
    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Bytes queued and not yet sent.
    fn pending(&self) -> u64 {
        let left = |segment: &Segment| match segment {
            Segment::Bytes { data, sent } => (data.len() - sent) as u64,
            Segment::File { offset, end, .. } => end - offset,
        };
        self.queue.iter().map(left).sum()
    }

    fn is_full(&self) -> bool {
        let mut memory = 0;
        let mut files = 0;
        for segment in &self.queue {
            match segment {
                Segment::Bytes { data, sent } => memory += data.len() - sent,
                Segment::File { .. } => files += 1,
            }
        }
        memory >= OUTPUT_HIGH_WATER || files >= MAX_QUEUED_FILES
    }

    fn push(
        &mut self,
        response: Shaped,
        head_only: bool,
        clock: &Clock,
        persistence: Persistence,
        settings: &Settings,
    ) {
        reply::write_head(self.tail_bytes(), &response, clock, persistence, settings);
        if head_only {
            return; // RFC 9110 §9.3.2: HEAD gets the headers GET would, and no content.
        }
        self.push_body(response);
    }

    /// Queues the content of `response`: its body, or the parts of its ranges.
    pub(super) fn push_body(&mut self, response: Shaped) {
        let Shaped { reply, layout } = response;
        let size = reply.body.len();
        let body = Source::from(reply.body);
        match layout {
            Layout::Whole | Layout::Unsatisfiable { .. } => self.push_range(&body, 0..size),
            Layout::NotModified => {}
            Layout::Single { range, .. } => self.push_range(&body, range),
            Layout::Multipart { parts, closing } => {
                for (part_head, range) in parts {
                    self.tail_bytes().extend_from_slice(&part_head);
                    self.push_range(&body, range);
                }
                self.tail_bytes().extend_from_slice(&closing);
            }
        }
    }

    /// Queues bytes `range` of `body`: copied if in memory, as a sendfile range if a file.
    fn push_range(&mut self, body: &Source, range: Range<u64>) {
        match body {
            _ if range.is_empty() => {}
            Source::Memory(bytes) => {
                let bytes = &bytes.as_ref()[range.start as usize..range.end as usize];
                self.tail_bytes().extend_from_slice(bytes);
            }
            Source::File(file) => self.queue.push_back(Segment::File {
                file: Arc::clone(file),
                offset: range.start,
                end: range.end,
            }),
        }
    }

    /// The in-memory buffer at the end of the queue, started if the queue ends with a file.
    fn tail_bytes(&mut self) -> &mut Vec<u8> {
        if !matches!(self.queue.back(), Some(Segment::Bytes { .. })) {
            self.queue.push_back(Segment::Bytes {
                data: Vec::with_capacity(1024),
                sent: 0,
            });
        }
        match self.queue.back_mut() {
            Some(Segment::Bytes { data, .. }) => data,
            _ => unreachable!("a bytes segment was just pushed"),
        }
    }

    /// The first pending segment. Call only when not empty.
    pub(super) fn front(&self) -> Transmit<'_> {
        match self.queue.front() {
            Some(Segment::Bytes { data, sent }) => Transmit::Bytes {
                bytes: &data[*sent..],
                more: matches!(self.queue.get(1), Some(Segment::File { .. })),
            },
            Some(Segment::File { file, offset, end }) => Transmit::File {
                file: file.as_ref(),
                offset: *offset,
                len: (end - offset).min(MAX_SENDFILE) as usize,
            },
            None => Transmit::Bytes {
                bytes: &[],
                more: false,
            },
        }
    }

    pub(super) fn advance(&mut self, n: usize) {
        let finished = match self.queue.front_mut() {
            Some(Segment::Bytes { data, sent }) => {
                *sent += n;
                *sent >= data.len()
            }
            Some(Segment::File { offset, end, .. }) => {
                *offset += n as u64;
                *offset >= *end
            }
            None => false,
        };
        if finished {
            self.queue.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;
    use std::sync::Arc;
    use std::time::{SystemTime, UNIX_EPOCH};

    /// Serves `/<name>` as a body naming the file, `/missing` as 404.
    struct FakeSite;

    impl Handler for FakeSite {
        fn handle(&self, request: &Request<'_>) -> Reply {
            if request.path == b"/missing" {
                return Reply::error(Status::NotFound);
            }
            let body = format!("content of {}", String::from_utf8_lossy(request.path));
            Reply::ok(
                Cow::Borrowed("text/plain"),
                Body::Shared(Arc::from(body.into_bytes())),
            )
        }
    }

    fn clock() -> Clock {
        Clock::new(UNIX_EPOCH + Duration::from_secs(784_111_777), Instant::now())
    }

    #[test]
    fn a_closed_connection_only_closes() {
        let clock = clock();
        let mut conn = Connection::closed(Settings::default(), clock.now());
        assert!(matches!(conn.poll(&clock, &FakeSite), Action::Close));
    }

    /// Feeds `pieces` one receive at a time and returns everything the connection sent, with
    /// the number of writes and whether it ended by closing. A stand-in for a socket.
    fn run(pieces: &[&[u8]]) -> (Vec<u8>, usize, bool) {
        let clock = clock();
        let mut conn = Connection::new(Settings::default(), clock.now());
        let mut pending: VecDeque<&[u8]> = pieces.iter().copied().collect();
        let mut out = Vec::new();
        let mut writes = 0;
        loop {
            match conn.poll(&clock, &FakeSite) {
                Action::Send(Transmit::Bytes { bytes, .. }) => {
                    out.extend_from_slice(bytes);
                    writes += 1;
                    let n = bytes.len();
                    conn.sent(n, clock.now());
                }
                Action::Send(Transmit::File { .. }) => unreachable!("the fake site has no files"),
                Action::Receive { buf, .. } => match pending.pop_front() {
                    // A piece larger than the buffer arrives in several reads, as from a socket.
                    Some(piece) => {
                        let n = piece.len().min(buf.len());
                        buf[..n].copy_from_slice(&piece[..n]);
                        if n < piece.len() {
                            pending.push_front(&piece[n..]);
                        }
                        conn.received(n, clock.now());
                    }
                    None => return (out, writes, false),
                },
                Action::Finish => {}
                Action::Close => return (out, writes, true),
            }
        }
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    const GET_A: &str = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";

    /// Not ready for `/slow` until it has been asked `answer_on` times.
    struct SlowSite {
        asked: std::cell::Cell<u32>,
        answer_on: u32,
    }

    impl Handler for SlowSite {
        fn handle(&self, request: &Request<'_>) -> Reply {
            FakeSite.handle(request)
        }

        fn ready(&self, request: &Request<'_>) -> bool {
            if request.path != b"/slow" {
                return true;
            }
            self.asked.set(self.asked.get() + 1);
            self.asked.get() >= self.answer_on
        }
    }

    #[test]
    fn a_request_the_handler_is_not_ready_for_is_kept_and_asked_again() {
        let site = SlowSite {
            asked: std::cell::Cell::new(0),
            answer_on: 3,
        };
        let clock = clock();
        let mut conn = Connection::new(Settings::default(), clock.now());
        let pipelined = b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n";
        let Action::Receive { buf, .. } = conn.poll(&clock, &site) else {
            panic!("a fresh connection reads")
        };
        buf[..pipelined.len()].copy_from_slice(pipelined);
        conn.received(pipelined.len(), clock.now());
        let Action::Receive { deadline, .. } = conn.poll(&clock, &site) else {
            panic!("nothing to send before the handler is ready")
        };
        assert_eq!(deadline, clock.now() + RETRY_LATER, "asked again soon");
        assert!(!conn.expire(clock.now()), "not yet");
        assert!(conn.expire(deadline), "then: poll on");
        assert!(
            matches!(conn.poll(&clock, &site), Action::Receive { .. }),
            "asked a second time"
        );
        let Action::Send(Transmit::Bytes { bytes, .. }) = conn.poll(&clock, &site) else {
            panic!("answered the third time")
        };
        let out = text(bytes);
        assert!(out.contains("content of /slow"), "{out}");
        assert!(
            out.contains("content of /a"),
            "the pipelined request after it, in order: {out}"
        );
        assert!(out.find("/slow") < out.find("of /a"));
        assert_eq!(site.asked.get(), 3);
        let idle_timeout = clock.now() + Settings::default().header_timeout;
        assert!(
            !conn.expire(idle_timeout),
            "past its real deadline a connection ends"
        );
    }

    #[test]
    fn keeps_http11_connections_open() {
        let (out, _, closed) = run(&[GET_A.as_bytes(), GET_A.as_bytes()]);
        assert_eq!(text(&out).matches("HTTP/1.1 200 OK").count(), 2);
        assert!(!closed);
        assert!(text(&out).contains("Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"));
        assert!(text(&out).contains("Server: bingfa\r\n"));
        assert!(text(&out).contains("Content-Length: 13\r\n"));
    }

    #[test]
    fn closes_after_connection_close_and_http10() {
        for raw in [
            "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "GET /a HTTP/1.0\r\n\r\n",
        ] {
            let (out, _, _) = run(&[raw.as_bytes(), GET_A.as_bytes()]);
            assert_eq!(text(&out).matches("HTTP/1.1 200 OK").count(), 1, "{raw}");
            assert!(text(&out).contains("Connection: close\r\n"));
        }
        let (out, _, _) = run(&[
            b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            GET_A.as_bytes(),
        ]);
        assert_eq!(text(&out).matches("HTTP/1.1 200 OK").count(), 2);
        assert!(text(&out).contains("Connection: keep-alive\r\n"));
    }

    #[test]
    fn pipelined_responses_leave_in_one_write() {
        let pipeline = GET_A.repeat(32);
        let (out, writes, _) = run(&[pipeline.as_bytes()]);
        assert_eq!(text(&out).matches("HTTP/1.1 200 OK").count(), 32);
        assert_eq!(writes, 1);
        // More than a fresh input buffer holds: one write per buffer filled.
        let pipeline = GET_A.repeat(1000);
        let (out, writes, _) = run(&[pipeline.as_bytes()]);
        assert_eq!(text(&out).matches("HTTP/1.1 200 OK").count(), 1000);
        assert!(writes <= 8, "{writes} writes: the buffer grows with the pipeline");
    }

    /// Every split of a pipelined stream into two reads gives the same bytes out.
    #[test]
    fn any_split_of_a_pipeline_gives_the_same_responses() {
        let stream = concat!(
            "GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
            "HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
            "GET /d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n0\r\nT: v\r\n\r\n",
            "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
            "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /f HTTP/1.0\r\n\r\n",
        )
        .as_bytes();
        let (whole, _, whole_closed) = run(&[stream]);
        assert_eq!(text(&whole).matches("HTTP/1.1 ").count(), 7);
        for at in 1..stream.len() {
            let (out, _, closed) = run(&[&stream[..at], &stream[at..]]);
            assert_eq!(text(&out), text(&whole), "split at {at}");
            assert_eq!(closed, whole_closed);
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(text(&run(&bytes).0), text(&whole), "one byte at a time");
    }

    #[test]
    fn head_has_headers_but_no_body() {
        let (out, _, _) = run(&[b"HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n"]);
        let out = text(&out);
        assert!(out.contains("Content-Length: 13\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\n"), "nothing after the head: {out}");
    }

    #[test]
    fn a_body_is_never_read_as_a_request() {
        let smuggled =
            "GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 28\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
        let (out, _, _) = run(&[smuggled.as_bytes()]);
        assert_eq!(text(&out).matches("HTTP/1.1 200 OK").count(), 1);
        assert!(!text(&out).contains("content of /b"));
    }

    #[test]
    fn a_framing_error_ends_the_pipeline_after_earlier_answers() {
        let stream = format!("{GET_A}{GET_A}GET / HTTP/1.1\r\n\r\n{GET_A}");
        let (out, _, closed) = run(&[stream.as_bytes(), b""]);
        let out = text(&out);
        assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2);
        assert!(out.contains("HTTP/1.1 400 Bad Request\r\n"));
        assert!(out.trim_end().ends_with("</html>"));
        assert!(out.contains("Connection: close\r\n"));
        assert!(closed, "closes once the peer has closed");
    }

    #[test]
    fn method_errors_keep_the_connection() {
        let (out, _, _) = run(&[b"DELETE /a HTTP/1.1\r\nHost: x\r\n\r\n", GET_A.as_bytes()]);
        let out = text(&out);
        assert!(out.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(out.contains("Allow: GET, HEAD\r\n"));
        assert!(out.contains("HTTP/1.1 200 OK"));
    }

    /// Sends the one response `conn` has queued, then returns what it asks next.
    fn answer<'c>(conn: &'c mut Connection, clock: &Clock, request: &[u8]) -> Action<'c> {
        feed(conn, clock, request, clock.now());
        let Action::Send(Transmit::Bytes { bytes, .. }) = conn.poll(clock, &FakeSite) else {
            panic!("no response")
        };
        let n = bytes.len();
        conn.sent(n, clock.now());
        conn.poll(clock, &FakeSite)
    }

    #[test]
    fn lingers_after_the_last_response_until_the_peer_closes() {
        let clock = clock();
        let mut conn = Connection::new(Settings::default(), clock.now());
        // The server ends this one (a framing error): the client may still be sending.
        let action = answer(&mut conn, &clock, b"GET /a HTTP/1.1\r\n\r\n");
        assert!(matches!(action, Action::Finish));
        assert!(matches!(conn.poll(&clock, &FakeSite), Action::Receive { .. }));
        assert_eq!(conn.deadline(), clock.now() + Settings::default().linger);
        conn.received(0, clock.now());
        assert!(matches!(conn.poll(&clock, &FakeSite), Action::Close));
    }

    #[test]
    fn closes_at_once_when_the_client_said_it_was_done() {
        let clock = clock();
        for (request, closes_at_once) in [
            ("GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", true),
            ("GET /a HTTP/1.0\r\n\r\n", true),
            // Bytes after a last request: the client misbehaves and may send more.
            (
                "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET",
                false,
            ),
            // A body the server does not read to its end.
            (
                "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 9\r\n\r\n",
                false,
            ),
        ] {
            let mut conn = Connection::new(Settings::default(), clock.now());
            let action = answer(&mut conn, &clock, request.as_bytes());
            let closed = matches!(action, Action::Close);
            assert_eq!(closed, closes_at_once, "{request:?}");
        }
    }

    /// Feeds `bytes` to `conn` as one receive at `at`.
    fn feed(conn: &mut Connection, clock: &Clock, bytes: &[u8], at: Instant) {
        let Action::Receive { buf, .. } = conn.poll(clock, &FakeSite) else {
            panic!("the connection does not want bytes")
        };
        buf[..bytes.len()].copy_from_slice(bytes);
        conn.received(bytes.len(), at);
    }

    #[test]
    fn deadlines_follow_the_phase() {
        let secs = Duration::from_secs;
        let settings = Settings {
            header_timeout: secs(3),
            idle_timeout: secs(7),
            send_timeout: secs(5),
            min_rate: 0,
            ..Settings::default()
        };
        let start = clock();
        let mut conn = Connection::new(settings, start.now());
        assert_eq!(conn.deadline(), start.now() + secs(3), "fresh: header");
        let later = start.now() + secs(1);
        feed(&mut conn, &start, GET_A.as_bytes(), later);
        let Action::Send(Transmit::Bytes { bytes, .. }) = conn.poll(&start, &FakeSite) else {
            panic!()
        };
        let n = bytes.len();
        assert_eq!(
            conn.deadline(),
            start.now() + secs(5),
            "output pending: send timeout"
        );
        conn.sent(n, later);
        assert_eq!(conn.deadline(), later + secs(7), "idle between requests");
        let partial = later + secs(2);
        feed(&mut conn, &start, b"G", partial);
        assert_eq!(conn.deadline(), partial + secs(3), "partial head");
    }

    #[test]
    fn a_trickle_below_the_minimum_rate_runs_out_of_time() {
        let secs = Duration::from_secs;
        let settings = Settings {
            header_timeout: secs(60),
            min_rate: 100,
            ..Settings::default()
        };
        let clock = clock();
        let mut conn = Connection::new(settings, clock.now());
        feed(&mut conn, &clock, b"GET /a HTTP/1.1\r\n", clock.now());
        // 17 bytes earn 0.17 s beyond the 2 s grace, far less than the header timeout.
        assert_eq!(
            conn.deadline(),
            clock.now() + RATE_GRACE + Duration::from_millis(170)
        );
        feed(&mut conn, &clock, b"Host: x\r\n\r\n", clock.now() + secs(1));
        let Action::Send(_) = conn.poll(&clock, &FakeSite) else {
            panic!("answered")
        };
    }

    #[test]
    fn drain_finishes_the_response_in_flight_then_ends() {
        let clock = clock();
        let mut conn = Connection::new(Settings::default(), clock.now());
        let pipeline = format!("{GET_A}{GET_A}");
        feed(&mut conn, &clock, pipeline.as_bytes(), clock.now());
        let Action::Send(Transmit::Bytes { bytes, .. }) = conn.poll(&clock, &FakeSite) else {
            panic!()
        };
        assert_eq!(
            text(bytes).matches("HTTP/1.1 200 OK").count(),
            2,
            "both were in flight"
        );
        let n = bytes.len();
        conn.drain();
        conn.sent(n, clock.now());
        assert!(
            matches!(conn.poll(&clock, &FakeSite), Action::Finish),
            "no new request after drain"
        );

        let mut idle = Connection::new(Settings::default(), clock.now());
        idle.drain();
        assert!(
            matches!(idle.poll(&clock, &FakeSite), Action::Finish),
            "an idle connection ends at once"
        );
    }

    #[test]
    fn overloaded_says_503_and_closes() {
        let clock = clock();
        let mut conn = Connection::overloaded(Settings::default(), &clock);
        let Action::Send(Transmit::Bytes { bytes, .. }) = conn.poll(&clock, &FakeSite) else {
            panic!()
        };
        assert!(text(bytes).starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(text(bytes).contains("Connection: close\r\n"));
        let n = bytes.len();
        conn.sent(n, clock.now());
        assert!(matches!(conn.poll(&clock, &FakeSite), Action::Finish));
    }

    #[test]
    fn expect_continue_with_a_body_closes_after_the_answer() {
        let raw = "GET /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
        let (out, _, _) = run(&[raw.as_bytes()]);
        assert!(text(&out).contains("Connection: close\r\n"));
    }

    #[test]
    fn oversized_bodies_are_refused() {
        let raw = "GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n";
        let (out, _, _) = run(&[raw.as_bytes()]);
        assert!(text(&out).starts_with("HTTP/1.1 413 Content Too Large\r\n"));
        let _ = SystemTime::now();
    }
}
