//! What the core tells its handler about each answered request, for an access log and
//! metrics, and the per-connection bookkeeping that finds out when a response is out; and
//! what the I/O layer tells of a TLS handshake ([`Handshake`], [`TlsSession`]), in plain
//! values, so that the core never learns the TLS library.
//!
//! A connection keeps this only when [`Settings::observe`](super::Settings) is on; otherwise
//! it records nothing and its handler hears nothing.

use super::clock::Clock;
use super::conn::Handler;
use super::request::{Field, FieldValues, Head, RequestSpans, Version};
use super::shape::Shaped;
// A plain value from `core`: the core is told an address, it never sees a socket.
use core::net::IpAddr;
use std::collections::VecDeque;
use std::ops::Range;
use std::time::{Instant, SystemTime};

/// One request and its response, reported as soon as the response's last byte has been
/// handed to the kernel (at the I/O layer's next `poll`). A response cut short (the client
/// left, a timeout, the shutdown timeout) is not reported.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    /// The client's address, if the I/O layer gave one ([`Connection::set_peer`](super::Connection::set_peer)).
    pub peer: Option<IpAddr>,
    /// The TLS session the connection runs over; `None` over plaintext
    /// ([`Connection::set_tls`](super::Connection::set_tls)).
    pub tls: Option<&'a TlsSession>,
    /// `None` when there was no request line to show: a malformed head (400, 414, 431, ...)
    /// or a refusal at the connection limit (503).
    pub request: Option<RequestLine<'a>>,
    pub referer: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    /// `Forwarded` and `X-Forwarded-For` as sent (several lines joined by commas): the client
    /// a proxy names, believed only of a trusted one (`TrustedProxies::client`).
    pub forwarded: Option<&'a [u8]>,
    pub forwarded_for: Option<&'a [u8]>,
    pub status: u16,
    /// Bytes of the response's content sent: 0 for HEAD and 304 (Apache's `%b`).
    pub body_bytes: u64,
    /// Bytes of the whole response, head included.
    pub bytes: u64,
    /// When the request's first byte was read, on the I/O layer's clock. That clock moves
    /// once per turn of an event loop, so a handler that wants the time the exchange took
    /// reads its own clock now, when the last byte has just gone out.
    pub received: Instant,
    /// The wall-clock time of the report, on the I/O layer's clock.
    pub time: SystemTime,
}

/// A request line as the client sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLine<'a> {
    pub method: &'a [u8],
    /// The request target, query included.
    pub target: &'a [u8],
    /// `HTTP/1.0` or `HTTP/1.1` (a later 1.x is answered, and shown, as 1.1).
    pub version: &'static str,
}

/// The TLS session a connection runs over, once its handshake is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSession {
    pub version: TlsVersion,
    /// The cipher suite's IANA name, as the TLS library names it: `TLS13_AES_128_GCM_SHA256`.
    pub cipher: &'static str,
    /// The server name the client asked for (SNI), if it sent one.
    pub sni: Option<Box<str>>,
    /// The protocol agreed by ALPN, if any: `http/1.1`.
    pub alpn: Option<Box<str>>,
}

/// A TLS version the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    /// Every version, in the order of their discriminants (the index of a counter).
    pub const ALL: [TlsVersion; 2] = [TlsVersion::Tls12, TlsVersion::Tls13];

    /// As OpenSSL and nginx's `$ssl_protocol` write it.
    pub fn name(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        }
    }
}

/// How a connection's TLS handshake ended: told to the handler once per connection that
/// sent a byte ([`Handler::handshake`], with `Settings::observe` only). A handshake cut by a
/// timeout or the server's stop is not told: the connection closes without another step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake<'a> {
    Completed(&'a TlsSession),
    Failed(HandshakeFailure),
}

/// Why a handshake failed: a small fixed set, so that each can have its counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// Plain HTTP came to the TLS port (it is answered with a plaintext 400).
    PlaintextHttp,
    /// The client closed the connection mid-handshake, without an alert.
    PeerClosed,
    /// The client sent an alert: it does not trust the certificate, or gave up.
    Alert,
    /// No version, cipher suite or ALPN protocol both sides speak.
    Incompatible,
    /// Records or handshake messages that are not TLS, or not in order.
    Malformed,
    Other,
}

impl HandshakeFailure {
    /// Every reason, in the order of their discriminants (the index of a counter).
    pub const ALL: [HandshakeFailure; 6] = [
        HandshakeFailure::PlaintextHttp,
        HandshakeFailure::PeerClosed,
        HandshakeFailure::Alert,
        HandshakeFailure::Incompatible,
        HandshakeFailure::Malformed,
        HandshakeFailure::Other,
    ];

    /// Its label in the metrics.
    pub fn name(self) -> &'static str {
        match self {
            HandshakeFailure::PlaintextHttp => "plaintext_http",
            HandshakeFailure::PeerClosed => "peer_closed",
            HandshakeFailure::Alert => "alert",
            HandshakeFailure::Incompatible => "incompatible",
            HandshakeFailure::Malformed => "malformed",
            HandshakeFailure::Other => "other",
        }
    }
}

/// Where a parsed request's parts lie in the connection's input buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Answered {
    /// The head's first byte.
    pub start: usize,
    pub spans: RequestSpans,
    pub version: Version,
    pub fields: FieldValues,
}

impl Answered {
    pub fn of(head: &Head, start: usize) -> Answered {
        Answered {
            start,
            spans: head.spans,
            version: head.version,
            fields: head.fields,
        }
    }
}

/// What the log says of a response: its status, and the content bytes it sends.
pub(crate) fn summary(response: &Shaped, head_only: bool) -> (u16, u64) {
    let body_bytes = match response.content_length() {
        Some(len) if !head_only => len,
        _ => 0,
    };
    (response.reply.status.code(), body_bytes)
}

/// The exchanges of one connection whose responses are queued but not all sent.
#[derive(Debug, Default)]
pub(crate) struct Exchanges {
    peer: Option<IpAddr>,
    tls: Option<TlsSession>,
    /// Response bytes handed to the kernel so far on this connection.
    sent: u64,
    /// Response bytes queued so far: where the last record's response ends.
    queued: u64,
    records: VecDeque<Record>,
    /// Text buffers of records already reported, to be reused.
    spare: Vec<Vec<u8>>,
}

/// One queued response and what is known of its request; its text is copied out of the
/// input buffer, which the next request reuses.
#[derive(Debug)]
struct Record {
    /// Method, target, Referer, User-Agent, Forwarded and X-Forwarded-For, one after the
    /// other.
    text: Vec<u8>,
    line: Option<(Range<usize>, Range<usize>, Version)>,
    referer: Option<Range<usize>>,
    user_agent: Option<Range<usize>>,
    forwarded: Option<Range<usize>>,
    forwarded_for: Option<Range<usize>>,
    status: u16,
    body_bytes: u64,
    bytes: u64,
    /// The connection's byte count at which this response is all sent.
    end: u64,
    since: Instant,
    /// Its last byte has been handed to the kernel.
    done: bool,
}

impl Exchanges {
    pub fn set_peer(&mut self, peer: Option<IpAddr>) {
        self.peer = peer;
    }

    pub fn peer(&self) -> Option<IpAddr> {
        self.peer
    }

    pub fn set_tls(&mut self, session: TlsSession) {
        self.tls = Some(session);
    }

    /// A response to `request` (`None`: no request line; else with the head's bytes) was
    /// queued; its last byte is `pending` bytes beyond what has been sent. `since`: when the
    /// request began to arrive.
    pub fn queued(
        &mut self,
        request: Option<(&[u8], Answered)>,
        (status, body_bytes): (u16, u64),
        pending: u64,
        since: Instant,
    ) {
        let end = self.sent + pending;
        let mut record = Record {
            text: self.spare.pop().unwrap_or_default(),
            line: None,
            referer: None,
            user_agent: None,
            forwarded: None,
            forwarded_for: None,
            status,
            body_bytes,
            bytes: end.saturating_sub(self.queued),
            end,
            since,
            done: false,
        };
        self.queued = end;
        if let Some((head, request)) = request {
            record.copy_request(head, &request);
        }
        self.records.push_back(record);
    }

    /// `n` more bytes were handed to the kernel.
    pub fn sent(&mut self, n: usize) {
        self.sent += n as u64;
        let sent = self.sent;
        for record in self.records.iter_mut().filter(|r| !r.done) {
            if record.end > sent {
                break;
            }
            record.done = true;
        }
    }

    /// Tells `handler` of every exchange whose response is all sent, in order.
    pub fn report(&mut self, clock: &Clock, handler: &impl Handler) {
        while self.records.front().is_some_and(|r| r.done) {
            let Some(mut record) = self.records.pop_front() else {
                return;
            };
            handler.exchanged(&record.exchange(self.peer, self.tls.as_ref(), clock.wall()));
            record.text.clear();
            self.spare.push(record.text);
        }
    }
}

impl Record {
    fn copy_request(&mut self, head: &[u8], request: &Answered) {
        let (method_at, method_len) = request.spans.method;
        let (target_at, target_len) = request.spans.target;
        let method = self.append(head.get(method_at..method_at + method_len));
        let target = self.append(head.get(target_at..target_at + target_len));
        if let (Some(method), Some(target)) = (method, target) {
            self.line = Some((method, target, request.version));
        }
        self.referer = self.append(request.fields.value(head, Field::Referer));
        self.user_agent = self.append(request.fields.value(head, Field::UserAgent));
        self.forwarded = self.append(request.fields.combined(head, Field::Forwarded).as_deref());
        self.forwarded_for = self.append(request.fields.combined(head, Field::XForwardedFor).as_deref());
    }

    /// Copies `part` into the text; where it lies there.
    fn append(&mut self, part: Option<&[u8]>) -> Option<Range<usize>> {
        let part = part?;
        let start = self.text.len();
        self.text.extend_from_slice(part);
        Some(start..self.text.len())
    }

    fn exchange<'a>(
        &'a self,
        peer: Option<IpAddr>,
        tls: Option<&'a TlsSession>,
        time: SystemTime,
    ) -> Exchange<'a> {
        let text = |range: &Range<usize>| &self.text[range.clone()];
        Exchange {
            peer,
            tls,
            request: self.line.as_ref().map(|(method, target, version)| RequestLine {
                method: text(method),
                target: text(target),
                version: match version {
                    Version::Http10 => "HTTP/1.0",
                    Version::Http11 => "HTTP/1.1",
                },
            }),
            referer: self.referer.as_ref().map(text),
            user_agent: self.user_agent.as_ref().map(text),
            forwarded: self.forwarded.as_ref().map(text),
            forwarded_for: self.forwarded_for.as_ref().map(text),
            status: self.status,
            body_bytes: self.body_bytes,
            bytes: self.bytes,
            received: self.since,
            time,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::conn::{Action, Connection, Settings, Transmit};
    use super::super::reply::{Body, Reply};
    use super::super::request::Request;
    use super::super::status::Status;
    use super::*;
    use std::borrow::Cow;
    use std::cell::RefCell;
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    /// What the log would see of an exchange, owned.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Seen {
        line: Option<String>,
        referer: Option<String>,
        user_agent: Option<String>,
        status: u16,
        body_bytes: u64,
        bytes: u64,
        peer: Option<IpAddr>,
        received: Instant,
    }

    /// Serves every path with a 5-byte body, `/missing` as 404; records every exchange.
    #[derive(Default)]
    struct Recorder(RefCell<Vec<Seen>>);

    impl Handler for Recorder {
        fn handle(&self, request: &Request<'_>) -> Reply {
            if request.path == b"/missing" {
                return Reply::error(Status::NotFound);
            }
            Reply::ok(
                Cow::Borrowed("text/plain"),
                Body::Shared(Arc::from(&b"hello"[..])),
            )
        }

        fn exchanged(&self, exchange: &Exchange<'_>) {
            let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
            self.0.borrow_mut().push(Seen {
                line: exchange
                    .request
                    .map(|r| format!("{} {} {}", text(r.method), text(r.target), r.version)),
                referer: exchange.referer.map(text),
                user_agent: exchange.user_agent.map(text),
                status: exchange.status,
                body_bytes: exchange.body_bytes,
                bytes: exchange.bytes,
                peer: exchange.peer,
                received: exchange.received,
            });
        }
    }

    fn clock(at: Instant) -> Clock {
        Clock::new(UNIX_EPOCH + Duration::from_secs(784_111_777), at)
    }

    fn observed() -> Settings {
        Settings {
            observe: true,
            ..Settings::default()
        }
    }

    /// Feeds `input` at `start`, then sends everything in writes of at most `chunk` bytes,
    /// each 1 ms after the last. Returns the bytes sent.
    fn serve(conn: &mut Connection, handler: &Recorder, input: &[u8], start: Instant, chunk: usize) -> usize {
        let mut clock = clock(start);
        let Action::Receive { buf, .. } = conn.poll(&clock, handler) else {
            panic!("wants input first")
        };
        buf[..input.len()].copy_from_slice(input);
        conn.received(input.len(), start);
        let mut total = 0;
        loop {
            match conn.poll(&clock, handler) {
                Action::Send(Transmit::Bytes { bytes, .. }) => {
                    let n = bytes.len().min(chunk);
                    total += n;
                    clock.tick(clock.wall(), clock.now() + Duration::from_millis(1));
                    conn.sent(n, clock.now());
                }
                Action::Send(Transmit::File { .. }) => unreachable!("no files here"),
                Action::Receive { .. } | Action::Finish | Action::Close => return total,
            }
        }
    }

    #[test]
    fn each_exchange_is_reported_once_its_response_is_out() {
        let recorder = Recorder::default();
        let start = Instant::now();
        let mut conn = Connection::new(observed(), start);
        conn.set_peer(Some([192, 0, 2, 7].into()));
        let pipeline = concat!(
            "GET /a?q=1 HTTP/1.1\r\nHost: x\r\nReferer: http://r/\r\nUser-Agent: t/1\r\n\r\n",
            "HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /missing HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            "DELETE /c HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        let sent = serve(&mut conn, &recorder, pipeline.as_bytes(), start, 50);
        let seen = recorder.0.borrow().clone();
        let lines: Vec<_> = seen
            .iter()
            .map(|s| (s.line.clone().unwrap(), s.status, s.body_bytes))
            .collect();
        assert_eq!(
            lines,
            [
                ("GET /a?q=1 HTTP/1.1".to_string(), 200, 5),
                ("HEAD /b HTTP/1.1".to_string(), 200, 0),
                (
                    "GET /missing HTTP/1.0".to_string(),
                    404,
                    Status::NotFound.page().len() as u64
                ),
                (
                    "DELETE /c HTTP/1.1".to_string(),
                    405,
                    Status::MethodNotAllowed.page().len() as u64
                ),
            ]
        );
        assert_eq!(seen[0].referer.as_deref(), Some("http://r/"));
        assert_eq!(seen[0].user_agent.as_deref(), Some("t/1"));
        assert_eq!(seen[1].referer, None);
        assert!(seen.iter().all(|s| s.peer == Some([192, 0, 2, 7].into())));
        assert_eq!(
            seen.iter().map(|s| s.bytes).sum::<u64>(),
            sent as u64,
            "every byte belongs to one"
        );
        assert!(
            seen.iter().all(|s| s.received == start),
            "all arrived at once: {seen:?}"
        );
    }

    #[test]
    fn nothing_is_reported_before_the_last_byte_is_sent() {
        let recorder = Recorder::default();
        let start = Instant::now();
        let clock = clock(start);
        let mut conn = Connection::new(observed(), start);
        let Action::Receive { buf, .. } = conn.poll(&clock, &recorder) else {
            panic!()
        };
        let request = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
        buf[..request.len()].copy_from_slice(request);
        conn.received(request.len(), start);
        let Action::Send(Transmit::Bytes { bytes, .. }) = conn.poll(&clock, &recorder) else {
            panic!()
        };
        let n = bytes.len();
        conn.sent(n - 1, start);
        let _ = conn.poll(&clock, &recorder);
        assert!(recorder.0.borrow().is_empty(), "one byte is still queued");
        conn.sent(1, start);
        let _ = conn.poll(&clock, &recorder);
        assert_eq!(recorder.0.borrow().len(), 1);
    }

    #[test]
    fn errors_without_a_request_line_and_refusals_are_reported_too() {
        let recorder = Recorder::default();
        let start = Instant::now();
        let mut conn = Connection::new(observed(), start);
        serve(&mut conn, &recorder, b"GET / HTTP/1.1\r\n\r\n", start, usize::MAX);
        let mut refused = Connection::overloaded(observed(), &clock(start));
        let mut clock = clock(start);
        while let Action::Send(Transmit::Bytes { bytes, .. }) = refused.poll(&clock, &recorder) {
            let n = bytes.len();
            clock.tick(clock.wall(), clock.now());
            refused.sent(n, clock.now());
        }
        let seen = recorder.0.borrow();
        assert_eq!(seen.len(), 2);
        assert_eq!((seen[0].line.as_deref(), seen[0].status), (None, 400));
        assert_eq!((seen[1].line.as_deref(), seen[1].status), (None, 503));
        assert_eq!(seen[1].peer, None);
    }

    #[test]
    fn the_tls_session_is_on_every_exchange_of_its_connection() {
        #[derive(Default)]
        struct Sessions(RefCell<Vec<Option<TlsSession>>>);
        impl Handler for Sessions {
            fn handle(&self, _request: &Request<'_>) -> Reply {
                Reply::error(Status::NotFound)
            }
            fn exchanged(&self, exchange: &Exchange<'_>) {
                self.0.borrow_mut().push(exchange.tls.cloned());
            }
        }
        let session = TlsSession {
            version: TlsVersion::Tls13,
            cipher: "TLS13_AES_256_GCM_SHA384",
            sni: Some("localhost".into()),
            alpn: Some("http/1.1".into()),
        };
        let start = Instant::now();
        let clock = clock(start);
        let mut conn = Connection::new(observed(), start);
        conn.set_tls(session.clone());
        let Action::Receive { buf, .. } = conn.poll(&clock, &Sessions::default()) else {
            panic!("wants input first")
        };
        let two = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
        buf[..two.len()].copy_from_slice(two);
        conn.received(two.len(), start);
        let sessions = Sessions::default();
        while let Action::Send(Transmit::Bytes { bytes, .. }) = conn.poll(&clock, &sessions) {
            let n = bytes.len();
            conn.sent(n, start);
        }
        assert_eq!(*sessions.0.borrow(), [Some(session.clone()), Some(session)]);
    }

    #[test]
    fn counters_are_indexed_by_discriminant() {
        for (i, version) in TlsVersion::ALL.into_iter().enumerate() {
            assert_eq!(version as usize, i, "{version:?}");
        }
        for (i, reason) in HandshakeFailure::ALL.into_iter().enumerate() {
            assert_eq!(reason as usize, i, "{reason:?}");
        }
    }

    #[test]
    fn without_observe_the_handler_hears_nothing() {
        let recorder = Recorder::default();
        let start = Instant::now();
        let mut conn = Connection::new(Settings::default(), start);
        conn.set_peer(Some([127, 0, 0, 1].into()));
        serve(
            &mut conn,
            &recorder,
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
            start,
            usize::MAX,
        );
        assert!(recorder.0.borrow().is_empty());
    }
}
