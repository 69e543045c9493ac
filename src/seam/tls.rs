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

use super::Step;
use crate::http::{self, Action, Clock, Handler, Settings, Transmit};
use rustls::{ServerConfig, ServerConnection};
use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Ciphertext read from the socket at most at once: one whole TLS record and its header.
const INCOMING: usize = 16 * 1024 + 512;
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
    /// Whether any byte has arrived yet.
    heard: bool,
    /// The first bytes were not TLS but an HTTP request line.
    plaintext_http: bool,
    /// The protocol asked to finish (half-close) or close: `close_notify` goes out first.
    ending: Option<Ending>,
    close_notify_sent: bool,
    send_timeout: Duration,
    /// While ciphertext waits to be written: when the last of it was.
    sending_since: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Finish,
    Close,
}

impl Tls {
    pub fn new(config: &Arc<ServerConfig>, send_timeout: Duration, now: Instant) -> Option<Tls> {
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
            heard: false,
            plaintext_http: false,
            ending: None,
            close_notify_sent: false,
            send_timeout,
            sending_since: now,
        })
    }

    /// The next step: ciphertext to write, room for ciphertext to read, or the end; the
    /// protocol is driven on the way.
    pub fn poll<'a>(
        &'a mut self,
        protocol: &'a mut http::Connection,
        clock: &Clock,
        handler: &impl Handler,
    ) -> Step<'a> {
        loop {
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
                    Ending::Finish => Action::Finish,
                    Ending::Close => Action::Close,
                };
            }
            match protocol.poll(clock, handler) {
                // Output before the handshake is done (a connection over the limit answers 503
                // at once) waits in the protocol until it is: rustls would hold it, and the
                // protocol's end right after it (`close_notify`, then the half-close) would cut
                // the handshake short, and the answer with it.
                Action::Send(_) if self.conn.is_handshaking() => {
                    if self.peer_closed {
                        return Action::Close;
                    }
                    return Action::Receive {
                        buf: self.room(),
                        deadline: protocol.deadline(),
                    };
                }
                Action::Send(what) => {
                    let taken = self.encrypt(what);
                    match taken {
                        // rustls is full until its records are written. (Before the
                        // handshake it has none to write; a protocol only answers a request
                        // after one, so that would be a bug: end the connection.)
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
                    match self.conn.reader().read(buf) {
                        Ok(n) if n > 0 => protocol.received(n, clock.now()),
                        Err(e) if e.kind() == ErrorKind::WouldBlock && !self.peer_closed => {
                            if self.failed || self.conn.wants_write() {
                                continue;
                            }
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

    /// `n` bytes of ciphertext arrived in the room [`Tls::poll`] handed out; 0: end of stream.
    pub fn received(&mut self, n: usize) {
        if n == 0 {
            self.peer_closed = true;
            // Tells rustls, so that its reader can say whether `close_notify` came first.
            let _ = self.conn.read_tls(&mut &[][..]);
            return;
        }
        let first = !self.heard;
        self.heard = true;
        self.filled += n;
        // Every TLS connection opens with a handshake record (content type 22); an HTTP
        // request opens with the letters of its method.
        if first && self.incoming[0].is_ascii_uppercase() {
            self.plaintext_http = true;
            return;
        }
        self.feed();
    }

    /// Plain HTTP came instead of TLS: the link answers it in plaintext.
    pub fn heard_plaintext_http(&self) -> bool {
        self.plaintext_http
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

    /// While ciphertext waits to be written, the send timeout applies to it.
    pub fn deadline(&self, protocol: Instant) -> Instant {
        if self.written < self.outgoing.len() {
            protocol.min(self.sending_since + self.send_timeout)
        } else {
            protocol
        }
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
        while self.fed < self.filled && !self.failed {
            match self.conn.read_tls(&mut &self.incoming[self.fed..self.filled]) {
                Ok(n) if n > 0 => self.fed += n,
                // Its plaintext buffer is full: the rest waits for the protocol to read.
                _ => break,
            }
            if self.conn.process_new_packets().is_err() {
                self.failed = true;
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

    /// Moves the records rustls has made into `outgoing`.
    fn encode(&mut self) {
        while self.conn.wants_write() {
            if self.conn.write_tls(&mut self.outgoing).is_err() {
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

/// The longest session a ticket carries, with room to spare: what a session holds besides its
/// server name (at most 255 bytes) and ALPN protocol is under a hundred bytes.
const LONGEST_SESSION: usize = 512;

/// Ticket keys made once, before any fork, so that every worker or child of a forking model
/// takes the tickets any other made. rustls's ticketer also refuses a ticket longer than the
/// longest it has made itself (a guard against partitioning-oracle attacks), which in a fresh
/// process is none at all: so one ticket of the longest size is made here, for the rest.
fn shared_ticketer() -> Result<Arc<dyn rustls::server::ProducesTickets>, rustls::Error> {
    let ticketer = rustls::crypto::ring::Ticketer::new()?;
    let _ = ticketer.encrypt(&[0; LONGEST_SESSION]);
    Ok(ticketer)
}

/// What every TLS link of a server shares: its certificate and key, the session state, and
/// the `Strict-Transport-Security` its responses carry.
#[derive(Debug, Clone)]
pub(crate) struct TlsConfig {
    server: Arc<ServerConfig>,
    hsts: Option<u64>,
}

/// Why a certificate and key cannot be served.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("no certificate in the PEM file")]
    NoCertificate,
    #[error("the certificate file is not PEM: {0}")]
    Certificate(rustls::pki_types::pem::Error),
    #[error("the key file holds no private key in PEM: {0}")]
    Key(rustls::pki_types::pem::Error),
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

impl TlsConfig {
    /// rustls's defaults (TLS 1.3 and 1.2, its cipher suites), ALPN `http/1.1`, session
    /// resumption by ticket (keys rotated every few hours) and by a session cache; no 0-RTT.
    pub fn from_pem(certificates: &[u8], key: &[u8]) -> Result<TlsConfig, TlsError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_slice_iter(certificates)
            .collect::<Result<Vec<_>, _>>()
            .map_err(TlsError::Certificate)?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate);
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(TlsError::Key)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.ticketer = shared_ticketer()?;
        let config = Arc::new(config);
        // What every connection will do: fail here, at start, rather than on each of them.
        ServerConnection::new(Arc::clone(&config))?;
        Ok(TlsConfig {
            server: config,
            hsts: None,
        })
    }

    /// Every response over TLS says `Strict-Transport-Security: max-age=SECONDS`.
    pub fn with_hsts(self, seconds: Option<u64>) -> TlsConfig {
        TlsConfig {
            hsts: seconds,
            ..self
        }
    }

    pub(super) fn server_config(&self) -> &Arc<ServerConfig> {
        &self.server
    }

    /// The protocol's settings on a TLS link.
    pub(super) fn settings(&self, plaintext: Settings) -> Settings {
        Settings {
            hsts: self.hsts,
            ..plaintext
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Link;
    use super::*;
    use crate::http::{Body, Reply, Request};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use rustls::{ClientConfig, ClientConnection, RootCertStore};
    use std::borrow::Cow;
    use std::time::SystemTime;

    const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixture/tls");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURE}/{name}")).unwrap()
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

    fn client() -> ClientConnection {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(&fixture("ca.pem")).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap()).unwrap()
    }

    fn link() -> Link {
        let tls = TlsConfig::from_pem(&fixture("cert.pem"), &fixture("key.pem")).unwrap();
        Link::new(
            Settings::default(),
            Instant::now(),
            Some(&tls.with_hsts(Some(600))),
        )
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
                client.process_new_packets().unwrap();
                let _ = client.reader().read_to_end(&mut plaintext);
            }
        }
        panic!("the conversation never settled");
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

    /// Sends `bytes` to a new TLS link; returns what it answers, and how it ends.
    fn first_words(bytes: &[u8]) -> (Vec<u8>, &'static str) {
        let handler = FileHandler("/nonexistent".into());
        let mut link = link();
        let clock = Clock::new(SystemTime::now(), Instant::now());
        let Action::Receive { buf, .. } = link.poll(&clock, &handler) else {
            panic!("a new link reads first");
        };
        buf[..bytes.len()].copy_from_slice(bytes);
        link.received(bytes.len(), clock.now());
        let mut answer = Vec::new();
        loop {
            match link.poll(&clock, &handler) {
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
    fn a_link_over_the_connection_limit_answers_503_after_the_handshake() {
        let tls = TlsConfig::from_pem(&fixture("cert.pem"), &fixture("key.pem")).unwrap();
        let clock = Clock::new(SystemTime::now(), Instant::now());
        let mut link = Link::overloaded(Settings::default(), &clock, Some(&tls));
        let mut client = client();
        let handler = FileHandler("/nonexistent".into());
        let (got, _) = converse(&mut link, &mut client, &handler);
        assert!(!client.is_handshaking());
        let got = String::from_utf8_lossy(&got);
        assert!(got.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{got}");
        assert!(got.contains("Connection: close\r\n"), "{got}");
    }

    #[test]
    fn plaintext_http_gets_a_plaintext_400_and_the_end() {
        let (answer, end) = first_words(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let answer = String::from_utf8(answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{answer}");
        assert!(answer.contains("Connection: close\r\n"), "{answer}");
        assert!(!answer.contains("Strict-Transport-Security"), "{answer}");
        assert_eq!(end, "finish", "then the input is drained and the link closes");
    }

    #[test]
    fn garbage_or_a_broken_hello_gets_an_alert_and_a_close() {
        // A handshake record holding a ClientHello cut short after its version.
        let broken_hello = b"\x16\x03\x01\x00\x08\x01\x00\x00\x04\x03\x03\x00\x00";
        for bytes in [&b"\x00\x01\x02\x03 not tls"[..], broken_hello] {
            let (answer, end) = first_words(bytes);
            assert_eq!(answer.first(), Some(&0x15), "a TLS alert record: {answer:?}");
            assert_eq!(end, "close", "{bytes:?}");
        }
    }
}
