//! The connection seam: the one layer between a socket and the protocol, and the only one the
//! models talk to about a connection.
//!
//! A model holds a [`Link`] per connection and drives it with one loop, whatever the model:
//!
//! ```text
//! loop {
//!     match link.poll(&clock, &handler) {
//!         Step::Send(what)                => { let n = write(socket, what)?; link.sent(n, now) }
//!         Step::Receive { buf, deadline } => { let n = read(socket, buf)?; link.received(n, now) }
//!         Step::Finish                    => shutdown(socket, Write),
//!         Step::Close                     => break,
//!     }
//! }
//! ```
//! and closes the connection when `link.deadline()` has passed (unless `link.expire(now)`
//! says the link has a last word to send first: then it goes on driving it).
//!
//! A link has two halves, and models learn neither:
//! - the **transport** turns what the socket carries into what the protocol reads, and back.
//!   Plaintext (TCP or Unix) is the identity: bytes and file ranges pass through. TLS (`tls`)
//!   hands out its own buffer to `Receive`, decrypts what `received` brings into the
//!   protocol's input, and hands out ciphertext to `Send`. A file range the protocol wants sent
//!   is read into the link's own buffer (`pread`, here, never in the core) and encrypted, so
//!   `Transmit::File` reaches a model only where no encryption is needed (or, with kernel TLS,
//!   where the kernel does it): the model `sendfile`s it without knowing which case it is in.
//! - the **protocol** turns bytes into requests for the handler and replies into bytes:
//!   HTTP/1.1 ([`http::Connection`]) or HTTP/2 (`h2`: the h2 crate driven from memory). It is
//!   chosen per connection, once (`protocol`): HTTP/2 when TLS negotiates `h2` by ALPN or a
//!   connection opens with the `PRI * HTTP/2.0` preface, HTTP/1.1 otherwise; both answer
//!   through the same [`Handler`].
//!
//! Everything here is sans-IO, like the core: bytes and time come in as arguments (but for
//! the `pread` of a file range the protocol already opened, to encrypt it or to frame it).

mod certificates;
mod guard;
mod h2;
mod protocol;
mod tls;

use crate::http;
pub(crate) use crate::http::{Clock, Handler, Settings, Transmit};
pub(crate) use certificates::{Certificates, Pem};
pub use certificates::{TlsConfig, TlsError};
use protocol::Protocol;
use std::net::IpAddr;
use std::time::Instant;
use tls::Tls;

/// What the model should do next with the connection's socket: `Send(Transmit)` (write,
/// then [`Link::sent`]), `Receive { buf, deadline }` (read into `buf`, then
/// [`Link::received`]; give up if nothing arrives by `deadline`), `Finish` (shut down the write
/// side, keep reading until the peer closes) or `Close`. It is the core's own vocabulary, so
/// that a plaintext link passes the protocol's steps on without translating them; a TLS
/// transport makes its own, of the same kind.
pub type Step<'a> = http::Action<'a>;

/// One connection as a model sees it: whatever it reads goes in, whatever it must write comes
/// out. See the module's documentation for what sits behind it.
///
/// It owns no socket, so it can be driven from memory as well: the fuzz target `tls` plays
/// the client's side of a TLS connection into one.
#[derive(Debug)]
pub struct Link {
    protocol: Protocol,
    /// `None`: plaintext, the protocol's bytes pass through. Boxed, so a plaintext link stays
    /// small.
    tls: Option<Box<Tls>>,
}

impl Link {
    /// A connection accepted at `now`, over TLS if `tls` is given.
    pub fn new(settings: Settings, now: Instant, tls: Option<&TlsConfig>) -> Link {
        Link::over(tls, settings, now, |settings| {
            Protocol::new(http::Connection::new(settings, now))
        })
    }

    /// A connection accepted beyond the connection limit: it only says 503 and closes.
    pub fn overloaded(settings: Settings, clock: &Clock, tls: Option<&TlsConfig>) -> Link {
        // Its 503 is HTTP/1.1's whatever the client speaks: it is not served.
        Link::over(tls, settings, clock.now(), |settings| {
            Protocol::http1(http::Connection::overloaded(settings, clock))
        })
    }

    /// `protocol` over plaintext, or over TLS with `tls`. Should rustls refuse to start a
    /// connection (its configuration was tried at start, so it does not), the link only
    /// closes: a TLS port never answers in plaintext.
    fn over(
        tls: Option<&TlsConfig>,
        settings: Settings,
        now: Instant,
        protocol: impl FnOnce(Settings) -> Protocol,
    ) -> Link {
        let Some(config) = tls else {
            return Link {
                protocol: protocol(settings),
                tls: None,
            };
        };
        let settings = config.settings(settings);
        match Tls::new(config.server_config(), &settings, now) {
            Some(tls) => Link {
                protocol: protocol(settings),
                tls: Some(Box::new(tls)),
            },
            None => Link {
                protocol: Protocol::http1(http::Connection::closed(settings, now)),
                tls: None,
            },
        }
    }

    /// The next step for the model; requests are answered by `handler` on the way.
    #[inline]
    pub fn poll(&mut self, clock: &Clock, handler: &impl Handler) -> Step<'_> {
        if self.tls.as_ref().is_some_and(|tls| tls.heard_plaintext_http()) {
            self.refuse_plaintext_http(clock, handler);
        }
        match &mut self.tls {
            None => self.protocol.poll(clock, handler),
            Some(tls) => tls.poll(&mut self.protocol, clock, handler),
        }
    }

    /// Plain HTTP came to the HTTPS port: a short plaintext 400 and a close, as nginx answers
    /// it, rather than a TLS alert the client cannot read. Observed, the failed handshake is
    /// told, and the 400 is logged with the client's address.
    fn refuse_plaintext_http(&mut self, clock: &Clock, handler: &impl Handler) {
        if let Some(tls) = &mut self.tls {
            tls.tell_handshake(&mut self.protocol, handler);
        }
        let settings = Settings {
            hsts: None,
            ..self.protocol.settings()
        };
        let peer = self.protocol.peer();
        let refusing = http::Connection::refusing(settings, clock, http::Status::BadRequest);
        self.protocol = Protocol::http1(refusing);
        self.protocol.set_peer(peer);
        self.tls = None;
    }

    /// `n` bytes were read into the buffer of the last [`Step::Receive`]; 0: the peer closed.
    #[inline]
    pub fn received(&mut self, n: usize, now: Instant) {
        match &mut self.tls {
            None => self.protocol.received(n, now),
            Some(tls) => tls.received(n, now),
        }
    }

    /// `n` bytes of the last [`Step::Send`] were written.
    #[inline]
    pub fn sent(&mut self, n: usize, now: Instant) {
        match &mut self.tls {
            None => self.protocol.sent(n, now),
            Some(tls) => tls.sent(n, now),
        }
    }

    /// The client took some of what the kernel holds for it: the send timeout starts over.
    pub fn progressed(&mut self, now: Instant) {
        if let Some(tls) = &mut self.tls {
            tls.progressed(now);
        }
        self.protocol.progressed(now);
    }

    /// The client's address, for the access log.
    pub fn set_peer(&mut self, peer: Option<IpAddr>) {
        self.protocol.set_peer(peer);
    }

    /// Nothing more to read for now: buffers holding nothing pending are let go, so an idle
    /// connection costs none.
    #[inline]
    pub fn rest(&mut self) {
        if let Some(tls) = &mut self.tls {
            tls.rest();
        }
        self.protocol.rest();
    }

    /// The server is stopping: finish the response in flight, take no further request.
    /// Whether the link has something to send even if it now waits for input (HTTP/2: its
    /// GOAWAY, and the streams in flight): a model that closes a connection waiting for
    /// input at the stop drives such a link on instead.
    pub fn drain(&mut self) -> bool {
        self.protocol.drain()
    }

    /// [`Link::deadline`] has passed. Whether the link has a last word before the close
    /// (HTTP/2: GOAWAY, RFC 9113 §6.8); if so the model drives it on as usual, under a new
    /// deadline of at most the linger time, and closes it when that passes too. HTTP/1.1 has
    /// none: the model closes at once.
    pub fn expire(&mut self, now: Instant) -> bool {
        self.protocol.expire(now)
    }

    /// When to close the connection if nothing happens before.
    #[inline]
    pub fn deadline(&self) -> Instant {
        match &self.tls {
            None => self.protocol.deadline(),
            Some(tls) => tls.deadline(self.protocol.deadline()),
        }
    }
}
