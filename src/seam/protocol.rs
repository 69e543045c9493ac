//! The protocol half of a link: HTTP/1.1 or HTTP/2, chosen once per connection.
//!
//! Over TLS, ALPN chooses (`h2`, else HTTP/1.1). Otherwise the first bytes do: a connection
//! that opens with HTTP/2's preface (prior knowledge, RFC 9113 §3.3) is HTTP/2, and any
//! other is HTTP/1.1 from its first byte that differs from the preface, so a short HTTP/1.x
//! request is never held waiting for 24 bytes. Until then the bytes sit in the HTTP/1.1
//! connection's buffer, unanswered, and move to HTTP/2 if the preface completes.

use super::h2::{Http2, PREFACE};
use crate::http::{self, Action, Clock, Handler, Settings, TlsSession};
use std::net::IpAddr;
use std::time::Instant;

// HTTP/1.1 inline, HTTP/2 boxed: the common case costs no allocation more than before.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(super) enum Protocol {
    /// `sniffing`: the first bytes may still turn out to be HTTP/2's preface.
    Http1 {
        conn: http::Connection,
        sniffing: bool,
    },
    Http2(Box<Http2>),
}

/// What the first bytes say.
enum Sniffed {
    Http1,
    Http2,
    TooFewToTell,
}

impl Protocol {
    /// HTTP/1.1, unless the first bytes turn out to be HTTP/2's preface.
    pub fn new(conn: http::Connection) -> Protocol {
        Protocol::Http1 { conn, sniffing: true }
    }

    /// HTTP/1.1 whatever comes: a connection that only refuses.
    pub fn http1(conn: http::Connection) -> Protocol {
        Protocol::Http1 {
            conn,
            sniffing: false,
        }
    }

    #[inline]
    pub fn poll(&mut self, clock: &Clock, handler: &impl Handler) -> Action<'_> {
        if let Protocol::Http1 { conn, sniffing: true } = self {
            match sniff(conn.unparsed()) {
                Sniffed::Http2 => self.become_http2(clock.now()),
                Sniffed::TooFewToTell if conn.unparsed().is_empty() => {}
                Sniffed::TooFewToTell if !conn.input_ended() => {
                    let Protocol::Http1 { conn, .. } = self else {
                        unreachable!("matched above")
                    };
                    return conn.await_more();
                }
                // Not the preface, or a prefix of it and then the end: HTTP/1.1 answers.
                Sniffed::Http1 | Sniffed::TooFewToTell => self.stop_sniffing(),
            }
        }
        match self {
            Protocol::Http1 { conn, .. } => conn.poll(clock, handler),
            Protocol::Http2(h2) => h2.poll(clock, handler),
        }
    }

    fn stop_sniffing(&mut self) {
        if let Protocol::Http1 { sniffing, .. } = self {
            *sniffing = false;
        }
    }

    /// TLS agreed on `alpn`: `h2` makes this connection HTTP/2, `http/1.1` HTTP/1.1; none
    /// leaves the choice to the first bytes. A connection that is HTTP/1.1 whatever comes
    /// (one that only refuses) stays so.
    pub fn negotiated(&mut self, alpn: Option<&[u8]>, now: Instant) {
        let choosing = matches!(self, Protocol::Http1 { sniffing: true, .. });
        match alpn {
            Some(b"h2") if choosing => self.become_http2(now),
            Some(_) => self.stop_sniffing(),
            None => {}
        }
    }

    /// Moves what HTTP/1.1 has buffered, and what it knows of the peer, to HTTP/2.
    fn become_http2(&mut self, now: Instant) {
        let Protocol::Http1 { conn, .. } = self else {
            return;
        };
        let mut h2 = Http2::new(conn.settings(), now, conn.unparsed());
        h2.set_peer(conn.peer());
        *self = Protocol::Http2(Box::new(h2));
    }

    #[inline]
    pub fn received(&mut self, n: usize, now: Instant) {
        match self {
            Protocol::Http1 { conn, .. } => conn.received(n, now),
            Protocol::Http2(h2) => h2.received(n, now),
        }
    }

    #[inline]
    pub fn sent(&mut self, n: usize, now: Instant) {
        match self {
            Protocol::Http1 { conn, .. } => conn.sent(n, now),
            Protocol::Http2(h2) => h2.sent(n, now),
        }
    }

    pub fn progressed(&mut self, now: Instant) {
        match self {
            Protocol::Http1 { conn, .. } => conn.progressed(now),
            Protocol::Http2(h2) => h2.progressed(now),
        }
    }

    pub fn set_peer(&mut self, peer: Option<IpAddr>) {
        match self {
            Protocol::Http1 { conn, .. } => conn.set_peer(peer),
            Protocol::Http2(h2) => h2.set_peer(peer),
        }
    }

    pub fn peer(&self) -> Option<IpAddr> {
        match self {
            Protocol::Http1 { conn, .. } => conn.peer(),
            Protocol::Http2(h2) => h2.peer(),
        }
    }

    pub fn set_tls(&mut self, session: TlsSession) {
        match self {
            Protocol::Http1 { conn, .. } => conn.set_tls(session),
            Protocol::Http2(h2) => h2.set_tls(Some(session)),
        }
    }

    #[inline]
    pub fn rest(&mut self) {
        match self {
            Protocol::Http1 { conn, .. } => conn.rest(),
            Protocol::Http2(h2) => h2.rest(),
        }
    }

    /// Whether there is something left to send (see `Link::drain`).
    pub fn drain(&mut self) -> bool {
        match self {
            Protocol::Http1 { conn, .. } => {
                conn.drain();
                false
            }
            Protocol::Http2(h2) => h2.drain(),
        }
    }

    /// Whether there is a last word to send (see `Link::expire`).
    pub fn expire(&mut self, now: Instant) -> bool {
        match self {
            Protocol::Http1 { conn, .. } => conn.expire(now),
            Protocol::Http2(h2) => h2.expire(now),
        }
    }

    pub fn settings(&self) -> Settings {
        match self {
            Protocol::Http1 { conn, .. } => conn.settings(),
            Protocol::Http2(h2) => h2.settings(),
        }
    }

    #[inline]
    pub fn deadline(&self) -> Instant {
        match self {
            Protocol::Http1 { conn, .. } => conn.deadline(),
            Protocol::Http2(h2) => h2.deadline(),
        }
    }
}

/// Whether `first`, the bytes a connection opened with, are HTTP/2's preface.
fn sniff(first: &[u8]) -> Sniffed {
    let common = first.len().min(PREFACE.len());
    if first[..common] != PREFACE[..common] {
        Sniffed::Http1
    } else if common == PREFACE.len() {
        Sniffed::Http2
    } else {
        Sniffed::TooFewToTell
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Link, Step};
    use super::*;
    use crate::http::{Reply, Request, Status, Transmit};
    use std::time::{Duration, UNIX_EPOCH};

    struct NotFound;

    impl Handler for NotFound {
        fn handle(&self, _request: &Request<'_>) -> Reply {
            Reply::error(Status::NotFound)
        }
    }

    /// What `link` sends when it hears `bytes` and then the end of stream.
    fn answer_to(mut link: Link, bytes: &[u8]) -> Vec<u8> {
        let clock = Clock::new(UNIX_EPOCH + Duration::from_secs(784_111_777), Instant::now());
        let (mut to_link, mut out, mut ended) = (bytes.to_vec(), Vec::new(), false);
        for _ in 0..100 {
            match link.poll(&clock, &NotFound) {
                Step::Send(Transmit::Bytes { bytes, .. }) => {
                    out.extend_from_slice(bytes);
                    let n = bytes.len();
                    link.sent(n, clock.now());
                }
                Step::Receive { buf, .. } if !to_link.is_empty() => {
                    let n = buf.len().min(to_link.len());
                    buf[..n].copy_from_slice(&to_link[..n]);
                    to_link.drain(..n);
                    link.received(n, clock.now());
                }
                Step::Receive { .. } if !ended => {
                    ended = true;
                    link.received(0, clock.now());
                }
                _ => break,
            }
        }
        out
    }

    #[test]
    fn the_preface_makes_http2_and_a_short_http1_request_is_answered_at_once() {
        let settings = Settings::default();
        let now = Instant::now();
        let h2 = answer_to(Link::new(settings, now, None), PREFACE);
        assert_eq!(h2.get(3), Some(&0x4), "a SETTINGS frame first: {h2:?}");
        let h1 = answer_to(Link::new(settings, now, None), b"GET / HTTP/1.0\r\n\r\n");
        assert!(
            h1.starts_with(b"HTTP/1.1 404 "),
            "{}",
            String::from_utf8_lossy(&h1)
        );
    }

    #[test]
    fn beyond_the_connection_limit_the_preface_gets_http1s_503() {
        let clock = Clock::new(UNIX_EPOCH, Instant::now());
        let link = Link::overloaded(Settings::default(), &clock, None);
        let out = answer_to(link, PREFACE);
        assert!(
            out.starts_with(b"HTTP/1.1 503 "),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }

    #[test]
    fn the_first_differing_byte_decides() {
        assert!(matches!(sniff(b"G"), Sniffed::Http1));
        assert!(matches!(sniff(b"PRI * HTTP/1.1"), Sniffed::Http1));
        assert!(matches!(sniff(b""), Sniffed::TooFewToTell));
        assert!(matches!(sniff(b"PRI * HTTP/2.0\r\n\r\n"), Sniffed::TooFewToTell));
        assert!(matches!(sniff(PREFACE), Sniffed::Http2));
        let mut more = PREFACE.to_vec();
        more.extend_from_slice(&[0, 0, 0, 4]);
        assert!(matches!(sniff(&more), Sniffed::Http2));
    }
}
