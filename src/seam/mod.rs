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
pub mod proxy;
mod tls;

use crate::http;
pub(crate) use crate::http::{Clock, Handler, Settings, Transmit, TrustedProxies};
pub(crate) use certificates::{Certificates, ChallengeCertificates, Pem, ACME_TLS_ALPN};
pub use certificates::{TlsConfig, TlsError};
use protocol::Protocol;
use proxy::{Carried, ProxyHeader, State};
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
    /// With `--proxy-protocol`, until the PROXY header is read: the stage before the
    /// transport, which sees no byte until then.
    proxy: Option<Box<ProxyHeader>>,
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
                proxy: None,
            };
        };
        let settings = config.settings(settings);
        match Tls::new(config.server_config(), &settings, now) {
            Some(tls) => Link {
                protocol: protocol(settings),
                tls: Some(Box::new(tls)),
                proxy: None,
            },
            None => Link::refused(settings, now),
        }
    }

    /// A connection that closes at once, without a word: one from a source not trusted to
    /// send the PROXY header this listener expects.
    pub fn refused(settings: Settings, now: Instant) -> Link {
        Link {
            protocol: Protocol::http1(http::Connection::closed(settings, now)),
            tls: None,
            proxy: None,
        }
    }

    /// The connection opens with a PROXY protocol header (`proxy`), read before the transport
    /// sees a byte, within the header timeout from `now`: the client it names is the one
    /// logged. Without a valid header the connection closes unanswered.
    pub fn expect_proxy_header(&mut self, now: Instant) {
        let deadline = now + self.protocol.settings().header_timeout;
        self.proxy = Some(Box::new(ProxyHeader::new(deadline)));
    }

    /// The next step for the model; requests are answered by `handler` on the way.
    #[inline]
    pub fn poll(&mut self, clock: &Clock, handler: &impl Handler) -> Step<'_> {
        if self.proxy.is_some() && !self.header_read(clock, handler) {
            return self.header_step();
        }
        self.poll_transport(clock, handler)
    }

    /// Whether the PROXY header has been read (then it is told, and the bytes after it are
    /// handed to the transport).
    fn header_read(&mut self, clock: &Clock, handler: &impl Handler) -> bool {
        let Some(stage) = self
            .proxy
            .take_if(|stage| matches!(stage.state(), State::Read { .. }))
        else {
            return false;
        };
        if let State::Read {
            carried: Carried::Client(client),
            ..
        } = stage.state()
        {
            self.protocol.set_peer(client);
        }
        self.pass_on(stage.rest(), clock, handler);
        true
    }

    /// What the model does while the PROXY header is read: read more, or close.
    fn header_step(&mut self) -> Step<'_> {
        match self.proxy.as_deref_mut() {
            Some(stage) if stage.state() == State::Reading => {
                let deadline = stage.deadline();
                Step::Receive {
                    buf: stage.room(),
                    deadline,
                }
            }
            _ => Step::Close,
        }
    }

    /// Hands `bytes`, read with the PROXY header, to the transport as if read now. A transport
    /// that does not read first (a link beyond the limit says 503 at once) drops them, as it
    /// would drop what it reads after.
    fn pass_on(&mut self, mut bytes: &[u8], clock: &Clock, handler: &impl Handler) {
        while !bytes.is_empty() {
            let n = match self.poll_transport(clock, handler) {
                Step::Receive { buf, .. } => {
                    let n = buf.len().min(bytes.len());
                    buf[..n].copy_from_slice(&bytes[..n]);
                    n
                }
                _ => return,
            };
            self.received_by_transport(n, clock.now());
            bytes = &bytes[n..];
        }
    }

    /// [`Link::poll`] once any PROXY header is read.
    #[inline]
    fn poll_transport(&mut self, clock: &Clock, handler: &impl Handler) -> Step<'_> {
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
        match &mut self.proxy {
            Some(stage) => stage.received(n),
            None => self.received_by_transport(n, now),
        }
    }

    #[inline]
    fn received_by_transport(&mut self, n: usize, now: Instant) {
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
        if let Some(stage) = &self.proxy {
            return stage.deadline();
        }
        match &self.tls {
            None => self.protocol.deadline(),
            Some(tls) => tls.deadline(self.protocol.deadline()),
        }
    }
}
