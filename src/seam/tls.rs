//! The TLS transport of a link: rustls, driven with byte slices, never a socket.
//!
//! Ciphertext from the socket goes into `incoming` (the model reads into it) and on into
//! rustls; the plaintext rustls decrypts is read into the protocol's own buffer. What the
//! protocol wants sent — bytes, or a range of an open file, read here with `pread` — is
//! written into rustls, and the records it makes are handed to the model from `outgoing`.
//! So a model never sees a `Transmit::File` on a TLS link, and never learns it is one.
//!
//! Every buffer is bounded: `incoming` by `INCOMING`, rustls's plaintext in both directions by
//! its limits (`SENDABLE`, and rustls's own for received plaintext: when full, ciphertext
//! waits in `incoming` until the protocol takes what is decrypted), `outgoing` by what one
//! batch of `SENDABLE` plaintext encrypts to. Buffers with nothing pending are let go at rest.
//!
//! The protocol speaks only once the handshake is done (a link beyond the connection limit has
//! its 503 ready at once), and once the model has been told to `Finish`, nothing more goes
//! out: what rustls still makes then is dropped.
//!
//! With `Settings::observe`, the handshake's end is told once: to the handler, how it ended
//! (`Handler::handshake`), and to the protocol, the session it gave (`set_tls`), in the core's
//! plain values.

use super::{Protocol, Step, ACME_TLS_ALPN};
use crate::http::{Action, Arrival, Clock, Handler, Handshake, HandshakeFailure, Settings, Transmit};
use crate::http::{TlsSession, TlsVersion};
use rustls::{ProtocolVersion, ServerConfig, ServerConnection};
use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Ciphertext read from the socket at most at once. rustls gathers a record across reads
/// itself, so this need not hold a whole one (16 KiB and its header); requests are small, and
/// a model that must keep a read posted on an idle connection (`uring`) holds this much.
const INCOMING: usize = 4 * 1024;
/// Plaintext encrypted per batch before its records go out: a file is sent in pieces of this.
const SENDABLE: usize = 64 * 1024;
/// A file range is read into memory at most this much at a time, to be encrypted.
const FILE_PIECE: usize = 16 * 1024;

/// One TLS connection beneath a protocol.
#[derive(Debug)]
pub(super) struct Tls {
    conn: ServerConnection,
    incoming: Vec<u8>,
    /// `incoming[fed..filled]` is ciphertext received and not yet taken by rustls.
    fed: usize,
    filled: usize,
    outgoing: Vec<u8>,
    /// `outgoing[written..]` is ciphertext handed to the model and not yet written.
    written: usize,
    /// A file range read into memory, to be encrypted.
    piece: Vec<u8>,
    /// The socket reached its end of stream.
    peer_closed: bool,
    /// A TLS error: the alert rustls queued goes out, then the connection closes.
    failed: bool,
    /// When the first byte arrived (none yet: `None`), and how many came during the
    /// handshake: the minimum data rate applies to the handshake as to a request head.
    arrival: Option<Arrival>,
    /// The first bytes were not TLS but an HTTP request line.
    plaintext_http: bool,
    /// With `Settings::observe` or `match_sni`: how the handshake ended is yet to be told.
    untold: bool,
    /// With `Settings::observe`: the handler hears how the handshake ended.
    observe: bool,
    /// The protocol ALPN agreed on is yet to be told to the protocol.
    alpn_untold: bool,
    /// Why the handshake failed, if rustls refused it.
    failure: Option<HandshakeFailure>,
    /// The protocol asked to finish (half-close) or close: `close_notify` goes out first.
    ending: Option<Ending>,
    close_notify_sent: bool,
    /// The model was told to shut the write side down (`Finish`): nothing more goes out.
    write_shut: bool,
    send_timeout: Duration,
    min_rate: u64,
    /// The handshake must be over by then: `--header-timeout` from accept, whatever the
    /// protocol waits for (a link beyond the connection limit has its 503 ready at once).
    handshake_by: Instant,
    /// While ciphertext waits to be written: when the last of it was.
    sending_since: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Finish,
    Close,
}

impl Tls {
    /// A TLS connection accepted at `now`, for a protocol with `settings`.
    pub fn new(config: &Arc<ServerConfig>, settings: &Settings, now: Instant) -> Option<Tls> {
        let mut conn = ServerConnection::new(Arc::clone(config)).ok()?;
        conn.set_buffer_limit(Some(SENDABLE));
        Some(Tls {
            conn,
            incoming: Vec::new(),
            fed: 0,
            filled: 0,
            outgoing: Vec::new(),
            written: 0,
            piece: Vec::new(),
            peer_closed: false,
            failed: false,
            arrival: None,
            plaintext_http: false,
            untold: settings.observe || settings.match_sni,
            observe: settings.observe,
            alpn_untold: true,
            failure: None,
            ending: None,
            close_notify_sent: false,
            write_shut: false,
            send_timeout: settings.send_timeout,
            min_rate: settings.min_rate,
            handshake_by: now + settings.header_timeout,
            sending_since: now,
        })
    }

    /// The next step: ciphertext to write, room for ciphertext to read, or the end; the
    /// protocol is driven on the way.
    pub fn poll<'a>(
        &'a mut self,
        protocol: &'a mut Protocol,
        clock: &Clock,
        handler: &impl Handler,
    ) -> Step<'a> {
        loop {
            // ALPN chooses the protocol as soon as the handshake is over, before the first
            // plaintext reaches it (and before the session is told to it).
            if self.alpn_untold && !self.conn.is_handshaking() {
                self.alpn_untold = false;
                protocol.negotiated(self.conn.alpn_protocol(), clock.now());
                // A TLS-ALPN-01 validator has seen the challenge certificate, which is all
                // such a connection is for (RFC 8737): no HTTP over it.
                if self.conn.alpn_protocol() == Some(ACME_TLS_ALPN) {
                    self.end(Ending::Close);
                }
            }
            // Checked here as well as inside: a call is spared on every turn after the handshake.
            if self.untold {
                self.tell_handshake(protocol, handler);
            }
            if self.written < self.outgoing.len() {
                let bytes = &self.outgoing[self.written..];
                return Action::Send(Transmit::Bytes { bytes, more: false });
            }
            if self.conn.wants_write() {
                self.encode();
                continue;
            }
            if self.failed {
                return Action::Close;
            }
            if let Some(ending) = self.ending.take() {
                return match ending {
                    Ending::Finish => {
                        self.write_shut = true;
                        Action::Finish
                    }
                    Ending::Close => Action::Close,
                };
            }
            match protocol.poll(clock, handler) {
                // A protocol that speaks first (a link beyond the connection limit says 503 at
                // once) waits for the handshake: rustls would only hold its bytes, and the end
                // that follows them would cut the handshake short with a `close_notify`.
                Action::Send(_) if self.conn.is_handshaking() => {
                    let deadline = self.deadline(protocol.deadline());
                    if self.handshake_awaits_input() {
                        return Action::Receive {
                            buf: self.room(),
                            deadline,
                        };
                    }
                }
                Action::Send(what) => {
                    let taken = self.encrypt(what);
                    match taken {
                        // rustls is full until its records are written. (Full with none to
                        // write would be a bug, as no protocol gets here before the
                        // handshake: end the connection.)
                        Some(0) if self.conn.wants_write() => self.encode(),
                        Some(0) => self.failed = true,
                        Some(n) => protocol.sent(n, clock.now()),
                        // The file shrank after its length was announced: the response cannot
                        // be completed, and closing is the only honest end.
                        None => self.failed = true,
                    }
                }
                Action::Receive { buf, deadline } => {
                    self.feed();
                    if self.alpn_untold && !self.conn.is_handshaking() {
                        continue; // the protocol may change before it reads
                    }
                    match self.conn.reader().read(buf) {
                        Ok(n) if n > 0 => protocol.received(n, clock.now()),
                        Err(e) if e.kind() == ErrorKind::WouldBlock && !self.peer_closed => {
                            if self.failed || self.conn.wants_write() {
                                continue;
                            }
                            // The handshake's own limits too, for a model that waits on this.
                            let deadline = self.deadline(deadline);
                            return Action::Receive {
                                buf: self.room(),
                                deadline,
                            };
                        }
                        // `close_notify` (Ok(0)), or the end of stream without one.
                        _ => protocol.received(0, clock.now()),
                    }
                }
                Action::Finish => self.end(Ending::Finish),
                Action::Close => self.end(Ending::Close),
            }
        }
    }

    /// While the protocol waits for the handshake to speak: whether the handshake needs more
    /// from the client. Not when there is something else to do first (records to write, an
    /// error to end on) or the handshake is over; a client gone mid-handshake ends the link.
    fn handshake_awaits_input(&mut self) -> bool {
        self.feed();
        if self.failed || self.conn.wants_write() || !self.conn.is_handshaking() {
            return false;
        }
        if self.peer_closed {
            self.end(Ending::Close);
            return false;
        }
        true
    }

    /// `n` bytes of ciphertext arrived at `now` in the room [`Tls::poll`] handed out; 0: end
    /// of stream.
    pub fn received(&mut self, n: usize, now: Instant) {
        if n == 0 {
            self.peer_closed = true;
            // Tells rustls, so that its reader can say whether `close_notify` came first.
            let _ = self.conn.read_tls(&mut &[][..]);
            return;
        }
        let first = self.arrival.is_none();
        if self.conn.is_handshaking() {
            self.arrival.get_or_insert(Arrival::new(now, 0)).add(n);
        }
        self.filled += n;
        // Every TLS connection opens with a handshake record (content type 22); an HTTP
        // request opens with the letters of its method. Not once the link has said
        // `close_notify` (a server stopping before the first byte): it answers nothing more.
        if first && !self.close_notify_sent && self.incoming[0].is_ascii_uppercase() {
            self.plaintext_http = true;
            return;
        }
        self.feed();
    }

    /// Plain HTTP came instead of TLS: the link answers it in plaintext.
    pub fn heard_plaintext_http(&self) -> bool {
        self.plaintext_http
    }

    /// Once the handshake has ended: tells `handler` how (with `Settings::observe`), and
    /// `protocol` the session it gave (with `observe` or `match_sni`, which needs its SNI).
    /// A connection closed before its first byte made no handshake, and tells nothing (a
    /// browser's spare connection, a port check).
    pub fn tell_handshake(&mut self, protocol: &mut Protocol, handler: &impl Handler) {
        if !self.untold {
            return;
        }
        let failure = match self.failure {
            Some(failure) => failure,
            None if self.plaintext_http => HandshakeFailure::PlaintextHttp,
            None if !self.conn.is_handshaking() => {
                self.untold = false;
                // Always a session: rustls completes no handshake in another version.
                if let Some(session) = self.session() {
                    if self.observe {
                        handler.handshake(Handshake::Completed(&session));
                    }
                    protocol.set_tls(session);
                }
                return;
            }
            None if self.peer_closed && self.arrival.is_some() => HandshakeFailure::PeerClosed,
            None => return,
        };
        self.untold = false;
        if self.observe {
            handler.handshake(Handshake::Failed(failure));
        }
    }

    /// The session of a completed handshake, in the core's words.
    fn session(&self) -> Option<TlsSession> {
        let version = match self.conn.protocol_version()? {
            ProtocolVersion::TLSv1_3 => TlsVersion::Tls13,
            ProtocolVersion::TLSv1_2 => TlsVersion::Tls12,
            _ => return None,
        };
        let suite = self.conn.negotiated_cipher_suite()?.suite();
        Some(TlsSession {
            version,
            // Every suite rustls can negotiate has its name.
            cipher: suite.as_str().unwrap_or("unknown"),
            sni: self.conn.server_name().map(Box::from),
            alpn: self
                .conn
                .alpn_protocol()
                .map(|protocol| String::from_utf8_lossy(protocol).into()),
        })
    }

    /// `n` bytes of the ciphertext handed out were written.
    pub fn sent(&mut self, n: usize, now: Instant) {
        self.written += n;
        self.sending_since = now;
        if self.written >= self.outgoing.len() {
            self.outgoing.clear();
            self.written = 0;
        }
    }

    /// The client took some of what the kernel holds for it.
    pub fn progressed(&mut self, now: Instant) {
        self.sending_since = now;
    }

    /// While ciphertext waits to be written, the send timeout applies to it; while the
    /// handshake lasts, the header timeout from accept and the minimum data rate.
    pub fn deadline(&self, protocol: Instant) -> Instant {
        let mut deadline = protocol;
        if self.written < self.outgoing.len() {
            deadline = deadline.min(self.sending_since + self.send_timeout);
        }
        if self.conn.is_handshaking() {
            deadline = deadline.min(self.handshake_by);
            let too_slow = self
                .arrival
                .and_then(|arrival| arrival.too_slow_at(self.min_rate));
            if let Some(too_slow) = too_slow {
                deadline = deadline.min(too_slow);
            }
        }
        deadline
    }

    /// Lets go of buffers holding nothing pending.
    pub fn rest(&mut self) {
        if self.fed == self.filled {
            self.incoming = Vec::new();
            (self.fed, self.filled) = (0, 0);
        }
        if self.outgoing.is_empty() {
            self.outgoing = Vec::new();
        }
        self.piece = Vec::new();
    }

    /// Gives rustls the ciphertext it can take, and decrypts it. A TLS error queues the alert
    /// to send and ends the connection after it.
    fn feed(&mut self) {
        // The link said `close_notify` before a handshake completed (a server stopping): what
        // the client sends now cannot matter, and is dropped unread. (rustls would answer an
        // error in it with a fatal alert after the `close_notify`, which it asserts it never
        // makes.)
        if self.close_notify_sent && self.conn.is_handshaking() {
            (self.fed, self.filled) = (0, 0);
            return;
        }
        while self.fed < self.filled && !self.failed {
            match self.conn.read_tls(&mut &self.incoming[self.fed..self.filled]) {
                Ok(n) if n > 0 => self.fed += n,
                // Its plaintext buffer is full: the rest waits for the protocol to read.
                _ => break,
            }
            if let Err(error) = self.conn.process_new_packets() {
                self.failed = true;
                if self.conn.is_handshaking() {
                    self.failure = Some(failure_of(&error));
                }
            }
        }
        if self.fed == self.filled {
            (self.fed, self.filled) = (0, 0);
        }
    }

    /// Room in `incoming` for the next read from the socket.
    fn room(&mut self) -> &mut [u8] {
        if self.fed > 0 {
            self.incoming.copy_within(self.fed..self.filled, 0);
            (self.fed, self.filled) = (0, self.filled - self.fed);
        }
        if self.incoming.len() < INCOMING {
            self.incoming.resize(INCOMING, 0);
        }
        &mut self.incoming[self.filled..]
    }

    /// Hands what the protocol wants sent to rustls; how much it took (0: rustls is full until
    /// its records are written), or `None` if a file ended early.
    fn encrypt(&mut self, what: Transmit<'_>) -> Option<usize> {
        let plaintext = match what {
            Transmit::Bytes { bytes, .. } => bytes,
            Transmit::File { file, offset, len } => {
                self.piece.resize(len.min(FILE_PIECE), 0);
                match rustix::io::pread(file, &mut self.piece, offset) {
                    Ok(n) if n > 0 => &self.piece[..n],
                    _ => return None,
                }
            }
        };
        Some(self.conn.writer().write(plaintext).unwrap_or(0))
    }

    /// Moves the records rustls has made into `outgoing`; once the write side is shut, drops
    /// them (what the client still sends may make some: a handshake's, an alert).
    fn encode(&mut self) {
        while self.conn.wants_write() {
            let written = if self.write_shut {
                self.conn.write_tls(&mut std::io::sink())
            } else {
                self.conn.write_tls(&mut self.outgoing)
            };
            if written.is_err() {
                break;
            }
        }
    }

    /// The protocol is done: `close_notify`, then the ending it asked for.
    fn end(&mut self, ending: Ending) {
        if !self.close_notify_sent {
            self.conn.send_close_notify();
            self.close_notify_sent = true;
        }
        self.ending = Some(ending);
    }
}

/// Why rustls refused a handshake, as the metrics count it.
fn failure_of(error: &rustls::Error) -> HandshakeFailure {
    use rustls::Error;
    match error {
        Error::AlertReceived(_) => HandshakeFailure::Alert,
        Error::PeerIncompatible(_) | Error::NoApplicationProtocol => HandshakeFailure::Incompatible,
        Error::InvalidMessage(_)
        | Error::InappropriateMessage { .. }
        | Error::InappropriateHandshakeMessage { .. }
        | Error::PeerMisbehaved(_)
        | Error::DecryptError
        | Error::PeerSentOversizedRecord => HandshakeFailure::Malformed,
        _ => HandshakeFailure::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Link, TlsConfig};
    use super::*;
    use crate::http::{Body, Exchange, Reply, Request};
    use rustls::pki_types::{CertificateDer, ServerName};
    use rustls::{ClientConfig, ClientConnection, RootCertStore};
    use std::borrow::Cow;
    use std::cell::RefCell;
    use std::net::IpAddr;
    use std::time::SystemTime;

    /// A test CA's certificate (DER), and the certificate it signed for `localhost` with its
    /// key (PEM), all made for this process (ECDSA P-256).
    struct Pki {
        ca: CertificateDer<'static>,
        cert_pem: String,
        key_pem: String,
    }

    fn pki() -> &'static Pki {
        static PKI: std::sync::OnceLock<Pki> = std::sync::OnceLock::new();
        PKI.get_or_init(|| {
            let new_key = || rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let (ca_key, leaf_key) = (new_key(), new_key());
            let mut ca = rcgen::CertificateParams::default();
            ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let ca_cert = ca.self_signed(&ca_key).unwrap();
            let issuer = rcgen::Issuer::new(ca, ca_key);
            let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
            Pki {
                ca: ca_cert.der().clone(),
                cert_pem: leaf.signed_by(&leaf_key, &issuer).unwrap().pem(),
                key_pem: leaf_key.serialize_pem(),
            }
        })
    }

    /// Answers every request with the same file, so that its range is read and encrypted.
    struct FileHandler(std::path::PathBuf);

    impl Handler for FileHandler {
        fn handle(&self, _request: &Request<'_>) -> Reply {
            let file = std::fs::File::open(&self.0).unwrap();
            let len = file.metadata().unwrap().len();
            Reply::ok(
                Cow::Borrowed("application/octet-stream"),
                Body::File { file, len },
            )
        }
    }

    /// A client of `versions` offering `alpn`, trusting the test CA if `trusting`.
    fn client_of(
        versions: &[&'static rustls::SupportedProtocolVersion],
        alpn: &[u8],
        trusting: bool,
    ) -> ClientConnection {
        let mut roots = RootCertStore::empty();
        if trusting {
            roots.add(pki().ca.clone()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap()).unwrap()
    }

    fn client() -> ClientConnection {
        client_of(rustls::DEFAULT_VERSIONS, b"http/1.1", true)
    }

    fn link() -> Link {
        link_with(Settings::default())
    }

    /// The server's side: the test certificate and its key.
    fn tls_config() -> TlsConfig {
        let pki = pki();
        TlsConfig::from_pem(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes()).unwrap()
    }

    fn link_with(settings: Settings) -> Link {
        let tls = tls_config();
        Link::new(settings, Instant::now(), Some(&tls.with_hsts(Some(600))))
    }

    /// An observed link, as with an access log or metrics, whose client is 192.0.2.7.
    fn observed_link() -> Link {
        let mut link = link_with(Settings {
            observe: true,
            ..Settings::default()
        });
        link.set_peer(Some([192, 0, 2, 7].into()));
        link
    }

    /// The status, peer and session of an exchange.
    type Seen = (u16, Option<IpAddr>, Option<TlsSession>);

    /// Answers every request with a short text; notes every handshake and exchange.
    #[derive(Default)]
    struct Watcher {
        handshakes: RefCell<Vec<Result<TlsSession, HandshakeFailure>>>,
        exchanges: RefCell<Vec<Seen>>,
    }

    impl Handler for Watcher {
        fn handle(&self, _request: &Request<'_>) -> Reply {
            Reply::ok(Cow::Borrowed("text/plain"), Body::Static(b"hi"))
        }

        fn exchanged(&self, exchange: &Exchange<'_>) {
            let seen = (exchange.status, exchange.peer, exchange.tls.cloned());
            self.exchanges.borrow_mut().push(seen);
        }

        fn handshake(&self, outcome: Handshake<'_>) {
            let outcome = match outcome {
                Handshake::Completed(session) => Ok(session.clone()),
                Handshake::Failed(reason) => Err(reason),
            };
            self.handshakes.borrow_mut().push(outcome);
        }
    }

    /// Moves bytes both ways between `client` and `link` until neither has anything to say;
    /// returns the plaintext the client received, and whether the link closed. After a
    /// `Finish` (the half-close of a socket) the link must send nothing more.
    fn converse(link: &mut Link, client: &mut ClientConnection, handler: &impl Handler) -> (Vec<u8>, bool) {
        let clock = Clock::new(SystemTime::now(), Instant::now());
        let mut to_link = Vec::new();
        let mut plaintext = Vec::new();
        let mut finished = false;
        for _ in 0..10_000 {
            while client.wants_write() {
                client.write_tls(&mut to_link).unwrap();
            }
            let to_client = match link.poll(&clock, handler) {
                Action::Send(_) if finished => panic!("the link sent after its half-close"),
                Action::Send(Transmit::Bytes { bytes, .. }) => bytes.to_vec(),
                Action::Send(Transmit::File { .. }) => panic!("a TLS link handed out a file"),
                Action::Receive { buf, .. } if !to_link.is_empty() => {
                    let n = buf.len().min(to_link.len());
                    buf[..n].copy_from_slice(&to_link[..n]);
                    to_link.drain(..n);
                    link.received(n, clock.now());
                    continue;
                }
                Action::Receive { .. } => return (plaintext, false),
                Action::Finish => {
                    finished = true;
                    continue;
                }
                Action::Close => return (plaintext, true),
            };
            link.sent(to_client.len(), clock.now());
            let mut records = &to_client[..];
            while !records.is_empty() {
                client.read_tls(&mut records).unwrap();
                // A client that refuses the server queues its alert, which goes out on the
                // next turn; what came through is for the caller to check.
                if client.process_new_packets().is_err() {
                    break;
                }
                let _ = client.reader().read_to_end(&mut plaintext);
            }
        }
        panic!("the conversation never settled");
    }

    /// Challenge certificates for automatic HTTPS: the test certificate, for `localhost`.
    #[derive(Debug)]
    struct Challenges;

    impl crate::seam::ChallengeCertificates for Challenges {
        fn for_name(&self, name: &str) -> Option<Vec<u8>> {
            let pki = pki();
            (name == "localhost").then(|| format!("{}{}", pki.cert_pem, pki.key_pem).into_bytes())
        }
    }

    #[test]
    fn a_validator_gets_the_challenge_certificate_then_the_end_and_others_get_an_alert() {
        // Automatic HTTPS before anything is obtained: no certificate for any name.
        let nothing = crate::seam::Certificates::by_name_only(&[]).unwrap();
        let tls = TlsConfig::with_challenges(nothing, Arc::new(Challenges)).unwrap();
        let new_link = || Link::new(Settings::default(), Instant::now(), Some(&tls));

        // A TLS-ALPN-01 validator: `acme-tls/1` alone.
        let mut validator = client_of(rustls::DEFAULT_VERSIONS, b"acme-tls/1", true);
        let (plaintext, closed) = converse(&mut new_link(), &mut validator, &Watcher::default());
        assert!(
            !validator.is_handshaking(),
            "the challenge certificate was accepted"
        );
        assert_eq!(validator.alpn_protocol(), Some(&b"acme-tls/1"[..]));
        assert!(plaintext.is_empty() && closed, "no HTTP over a validation");

        // Anyone else gets no certificate yet: a handshake failure.
        let mut browser = client();
        let (_, closed) = converse(&mut new_link(), &mut browser, &Watcher::default());
        assert!(closed && browser.is_handshaking());
    }

    #[test]
    fn a_file_is_read_encrypted_and_sent_in_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let handler = FileHandler(path);
        let (mut link, mut client) = (link(), client());
        client
            .writer()
            .write_all(b"GET /f.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let (got, closed) = converse(&mut link, &mut client, &handler);
        assert!(!closed, "keep-alive");
        assert_eq!(client.alpn_protocol(), Some(&b"http/1.1"[..]));
        let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&got[..head_end]);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("Content-Length: 200000\r\n"), "{head}");
        assert!(
            head.contains("Strict-Transport-Security: max-age=600\r\n"),
            "{head}"
        );
        assert!(got[head_end..] == content[..], "the body differs");
        // The client says it is done: close_notify, then the link closes.
        client.send_close_notify();
        let (_, closed) = converse(&mut link, &mut client, &handler);
        assert!(closed);
    }

    /// Sends `bytes` to a new observed TLS link; returns what it answers, and how it ends.
    fn first_words(bytes: &[u8], handler: &Watcher) -> (Vec<u8>, &'static str) {
        let mut link = observed_link();
        let clock = Clock::new(SystemTime::now(), Instant::now());
        let Action::Receive { buf, .. } = link.poll(&clock, handler) else {
            panic!("a new link reads first");
        };
        buf[..bytes.len()].copy_from_slice(bytes);
        link.received(bytes.len(), clock.now());
        let mut answer = Vec::new();
        loop {
            match link.poll(&clock, handler) {
                Action::Send(Transmit::Bytes { bytes, .. }) => {
                    answer.extend_from_slice(bytes);
                    let n = bytes.len();
                    link.sent(n, clock.now());
                }
                Action::Finish => return (answer, "finish"),
                Action::Close => return (answer, "close"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn plaintext_http_gets_a_plaintext_400_and_the_end() {
        let watcher = Watcher::default();
        let (answer, end) = first_words(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", &watcher);
        let answer = String::from_utf8(answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{answer}");
        assert!(answer.contains("Connection: close\r\n"), "{answer}");
        assert!(!answer.contains("Strict-Transport-Security"), "{answer}");
        assert_eq!(end, "finish", "then the input is drained and the link closes");
        assert_eq!(
            *watcher.handshakes.borrow(),
            [Err(HandshakeFailure::PlaintextHttp)]
        );
        let peer = Some([192, 0, 2, 7].into());
        assert_eq!(
            *watcher.exchanges.borrow(),
            [(400, peer, None)],
            "logged, with its client"
        );
    }

    #[test]
    fn garbage_or_a_broken_hello_gets_an_alert_and_a_close() {
        // A handshake record holding a ClientHello cut short after its version.
        let broken_hello = b"\x16\x03\x01\x00\x08\x01\x00\x00\x04\x03\x03\x00\x00";
        for bytes in [&b"\x00\x01\x02\x03 not tls"[..], broken_hello] {
            let watcher = Watcher::default();
            let (answer, end) = first_words(bytes, &watcher);
            assert_eq!(answer.first(), Some(&0x15), "a TLS alert record: {answer:?}");
            assert_eq!(end, "close", "{bytes:?}");
            assert_eq!(*watcher.handshakes.borrow(), [Err(HandshakeFailure::Malformed)]);
        }
    }

    /// Sends a request from `client` to `link` and back until both settle: what the handler
    /// was told.
    fn handshakes(mut link: Link, mut client: ClientConnection) -> Watcher {
        let watcher = Watcher::default();
        client
            .writer()
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        converse(&mut link, &mut client, &watcher);
        watcher
    }

    #[test]
    fn an_observed_handshake_is_told_with_its_session() {
        for (versions, version, cipher) in [
            (&[&rustls::version::TLS13][..], TlsVersion::Tls13, "TLS13_"),
            (&[&rustls::version::TLS12][..], TlsVersion::Tls12, "TLS_ECDHE_"),
        ] {
            let watcher = handshakes(observed_link(), client_of(versions, b"http/1.1", true));
            let told = watcher.handshakes.borrow();
            let [Ok(session)] = &told[..] else {
                panic!("{version:?}: {told:?}")
            };
            assert_eq!(session.version, version);
            assert!(session.cipher.starts_with(cipher), "{session:?}");
            assert_eq!(session.sni.as_deref(), Some("localhost"));
            assert_eq!(session.alpn.as_deref(), Some("http/1.1"));
            let peer = Some([192, 0, 2, 7].into());
            let exchange = (200, peer, Some(session.clone()));
            assert_eq!(*watcher.exchanges.borrow(), [exchange]);
        }
        let unobserved = handshakes(link(), client());
        assert!(unobserved.handshakes.borrow().is_empty());
        assert!(unobserved.exchanges.borrow().is_empty());
    }

    #[test]
    fn a_failed_handshake_is_told_with_its_reason() {
        let distrustful = client_of(rustls::DEFAULT_VERSIONS, b"http/1.1", false);
        let told = handshakes(observed_link(), distrustful).handshakes.take();
        assert_eq!(
            told,
            [Err(HandshakeFailure::Alert)],
            "the client does not trust us"
        );
        let spdy_only = client_of(rustls::DEFAULT_VERSIONS, b"spdy/3", true);
        let told = handshakes(observed_link(), spdy_only).handshakes.take();
        assert_eq!(
            told,
            [Err(HandshakeFailure::Incompatible)],
            "no common ALPN protocol"
        );
    }

    #[test]
    fn beyond_the_limit_a_link_says_503_once_its_handshake_is_done() {
        let tls = tls_config();
        let clock = Clock::new(SystemTime::now(), Instant::now());
        let mut link = Link::overloaded(Settings::default(), &clock, Some(&tls));
        let mut client = client();
        client
            .writer()
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let (got, _) = converse(&mut link, &mut client, &Watcher::default());
        assert!(!client.is_handshaking(), "the handshake was cut short");
        let got = String::from_utf8(got).unwrap();
        assert!(got.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{got}");
        assert!(got.contains("Connection: close\r\n"), "{got}");
    }

    #[test]
    fn a_link_that_has_finished_sends_nothing_more() {
        // A server stopping before the client's first byte says close_notify and finishes;
        // whatever comes next, plain HTTP, a ClientHello or garbage, gets no answer.
        let clock = Clock::new(SystemTime::now(), Instant::now());
        let mut hello = Vec::new();
        client().write_tls(&mut hello).unwrap();
        let plain_http = &b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"[..];
        for late in [plain_http, &hello, b"\x00\x01\x02\x03 not tls"] {
            let watcher = Watcher::default();
            let mut link = observed_link();
            link.drain();
            loop {
                match link.poll(&clock, &watcher) {
                    Action::Send(Transmit::Bytes { bytes, .. }) => {
                        let n = bytes.len();
                        link.sent(n, clock.now());
                    }
                    Action::Finish => break,
                    other => panic!("{other:?}"),
                }
            }
            let Action::Receive { buf, .. } = link.poll(&clock, &watcher) else {
                panic!("a finished link drains");
            };
            buf[..late.len()].copy_from_slice(late);
            link.received(late.len(), clock.now());
            let step = link.poll(&clock, &watcher);
            assert!(!matches!(step, Action::Send(_)), "{step:?} after Finish");
        }
    }

    #[test]
    fn a_client_gone_mid_handshake_is_told_and_one_never_heard_from_is_not() {
        let clock = Clock::new(SystemTime::now(), Instant::now());
        // A handshake record announcing 512 bytes, cut after its first three.
        let partial_hello = &b"\x16\x03\x01\x02\x00\x01\x00"[..];
        for (bytes, expected) in [
            (partial_hello, vec![Err(HandshakeFailure::PeerClosed)]),
            (&b""[..], vec![]),
        ] {
            let watcher = Watcher::default();
            let mut link = observed_link();
            let Action::Receive { buf, .. } = link.poll(&clock, &watcher) else {
                panic!("a new link reads first");
            };
            if !bytes.is_empty() {
                buf[..bytes.len()].copy_from_slice(bytes);
                link.received(bytes.len(), clock.now());
                assert!(matches!(link.poll(&clock, &watcher), Action::Receive { .. }));
            }
            link.received(0, clock.now());
            while let Action::Send(Transmit::Bytes { bytes, .. }) = link.poll(&clock, &watcher) {
                let n = bytes.len();
                link.sent(n, clock.now());
            }
            assert_eq!(*watcher.handshakes.borrow(), expected, "{bytes:?}");
        }
    }

    #[test]
    fn a_trickling_handshake_is_held_to_the_minimum_rate_and_a_finished_one_is_not() {
        let settings = Settings {
            min_rate: 500,
            ..Settings::default()
        };
        let mut link = link_with(settings);
        let handler = FileHandler("/nonexistent".into());
        let clock = Clock::new(SystemTime::now(), Instant::now());
        let mut hello = Vec::new();
        client().write_tls(&mut hello).unwrap();
        // The record header alone, 5 bytes: 2 s of grace, and 10 ms for the 5 bytes at 500 B/s,
        // well before the header timeout.
        let Action::Receive { buf, .. } = link.poll(&clock, &handler) else {
            panic!("a new link reads first");
        };
        buf[..5].copy_from_slice(&hello[..5]);
        link.received(5, clock.now());
        let expected = clock.now() + Duration::from_millis(2010);
        assert_eq!(link.deadline(), expected);

        let mut link = link_with(settings);
        let (_, closed) = converse(&mut link, &mut client(), &handler);
        assert!(!closed);
        assert!(
            link.deadline() >= clock.now() + settings.header_timeout,
            "after the handshake, the protocol's own deadline"
        );
    }

    #[test]
    fn beyond_the_limit_the_handshake_still_has_only_the_header_timeout() {
        let tls = tls_config();
        let clock = Clock::new(SystemTime::now(), Instant::now());
        let settings = Settings::default();
        let mut link = Link::overloaded(settings, &clock, Some(&tls));
        let handler = FileHandler("/nonexistent".into());
        let Action::Receive { deadline, .. } = link.poll(&clock, &handler) else {
            panic!("the 503 waits for a handshake");
        };
        assert_eq!(deadline, clock.now() + settings.header_timeout);
        assert_eq!(link.deadline(), deadline);
    }
}
