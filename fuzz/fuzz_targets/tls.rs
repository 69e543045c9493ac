//! The TLS + HTTP path: a `bingfa::seam::Link` over TLS (the test certificate in `tls/`), fed
//! from memory in one of two modes.
//!
//! Input layout: `data[0]` and `data[1]` are options, the next `k - 1` bytes are the lengths of
//! the first `k - 1` pieces, and the rest is the stream:
//!
//! `data[0]`:
//! - bits 0-2: `k - 1`, so the stream comes in 1 to 8 pieces (the last takes what is left);
//! - bit 3: the client's TCP end follows the last piece (`received(0)`);
//! - bits 4-5: how much of each `Send` the "socket" takes: all, 1000, 100 or 7 bytes;
//! - bit 6: the mode: raw (0) or client (1);
//! - bit 7: `Settings::observe` (the handshake's end and every exchange are told).
//!
//! `data[1]`:
//! - bit 0: client mode: TLS 1.2 instead of 1.3;
//! - bit 1: client mode: the client sends `close_notify` after the last piece;
//! - bit 2: client mode, TLS 1.3: the client updates its keys after the first piece, and asks
//!   the link to update its own;
//! - bit 3: the link is one beyond the connection limit (`Link::overloaded`): it has a 503 to
//!   say;
//! - bits 4-5: client mode: how much ciphertext each read takes: all, 1000, 100 or 7 bytes;
//! - bit 6: small limits (as in `core`);
//! - bit 7: the server stops before the second piece (`Link::drain`); in raw mode, an empty
//!   first piece makes that before any byte.
//!
//! Raw mode: each piece is one read of what a client sends on the socket: garbage, broken
//! ClientHellos, plain HTTP. Client mode: a rustls client that trusts the certificate does a
//! handshake (ALPN `http/1.1`) first; each piece is then plaintext it writes (requests,
//! pipelined or cut anywhere), which reaches the link as records.
//!
//! Checked, in both modes:
//! 1. nothing panics; the link never asks to read after the peer closed, never offers an empty
//!    buffer to read into (a socket would read it as the end), never sends after `Finish`, and
//!    settles within `MAX_STEPS` steps (more is a hang); while ciphertext waits to be sent, the
//!    send timeout bounds its deadline;
//! 2. with `observe`, a handshake's end is told once at most, and once if the link closed after
//!    hearing a byte.
//!
//! Raw mode:
//! 3. a stream opening with an uppercase letter (plain HTTP) gets one plaintext `HTTP/1.1 400`
//!    with `Connection: close`, nothing else, and the link finishes (unless the server stopped
//!    before it, see 4);
//! 4. anything else gets whole TLS records: none but alerts (at least one, then the close)
//!    when its first byte is no TLS content type; none but the link's `close_notify` when it
//!    heard no byte before it ended (the end of stream, or a server stopping first, whatever
//!    comes after); after a fatal alert the link closes, after `close_notify` it finishes or
//!    closes.
//!
//! Client mode:
//! 5. the handshake completes in the version asked for, with ALPN `http/1.1`, and the client
//!    accepts every record the link sends;
//! 6. the plaintext the client decrypts is well-formed HTTP/1.1 responses to what the handler
//!    answered (the checker of `core`), each with `Strict-Transport-Security`; beyond the
//!    connection limit, one 503 with `Connection: close`, and the handler is never called;
//! 7. when the link finishes or closes, its `close_notify` went first.

#![no_main]

mod common;

use bingfa::http::{
    Clock, Exchange, Handler, Handshake, HandshakeFailure, Limits, Reply, Request, Settings, TlsVersion,
    Transmit,
};
use bingfa::seam::{Link, Step, TlsConfig};
use common::{check_responses, pieces, FakeSite, NOW};
use libfuzzer_sys::fuzz_target;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, UNIX_EPOCH};

/// The test certificate (self-signed, for `localhost`) and its key: see README.md.
const CERT: &[u8] = include_bytes!("../tls/cert.pem");
const KEY: &[u8] = include_bytes!("../tls/key.pem");
/// `Strict-Transport-Security: max-age=` this, on every response over TLS.
const HSTS: u64 = 600;
/// Polls of one run at most: all but a few move at least a byte (or end a side), and the few
/// KiB of an input ask for a few MB of responses at most, sent 7 bytes at a time at worst.
const MAX_STEPS: usize = 1 << 22;
/// The content types of TLS records: change_cipher_spec, alert, handshake, application_data
/// and heartbeat (RFC 6520), which rustls knows of, so it waits for the rest of such a record.
const RECORD_TYPES: std::ops::RangeInclusive<u8> = 20..=24;
/// The most a TLS record may carry, with what encryption adds (RFC 8446 §5.2).
const LONGEST_RECORD: usize = (1 << 14) + 256;

/// What every link of the process shares, as in a server.
fn server() -> &'static TlsConfig {
    static SERVER: OnceLock<TlsConfig> = OnceLock::new();
    SERVER.get_or_init(|| {
        let config = TlsConfig::from_pem(CERT, KEY).expect("the test certificate serves");
        config.with_hsts(Some(HSTS))
    })
}

/// A client of one version that trusts the test certificate alone, offers `http/1.1`, and
/// resumes no session, so that every run starts from nothing.
fn client_config(version: TlsVersion) -> Arc<ClientConfig> {
    static CONFIGS: OnceLock<[Arc<ClientConfig>; 2]> = OnceLock::new();
    let configs = CONFIGS.get_or_init(|| {
        let make = |version: &'static rustls::SupportedProtocolVersion| {
            let mut roots = RootCertStore::empty();
            let cert = CertificateDer::from_pem_slice(CERT).expect("the certificate is PEM");
            roots.add(cert).expect("the certificate is a trust anchor");
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&[version])
                .expect("the version is supported")
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            config.resumption = rustls::client::Resumption::disabled();
            Arc::new(config)
        };
        [make(&rustls::version::TLS12), make(&rustls::version::TLS13)]
    });
    Arc::clone(&configs[usize::from(version == TlsVersion::Tls13)])
}

/// How a handshake's end was told.
#[derive(Debug, PartialEq, Eq)]
enum Told {
    Completed(TlsVersion),
    Failed(HandshakeFailure),
}

/// The fake site of `core`, with a file, that also notes how handshakes ended.
struct Site {
    site: FakeSite,
    told: RefCell<Vec<Told>>,
    /// Exchanges carry a TLS session: in client mode, not for raw mode's plaintext 400.
    over_tls: bool,
}

impl Site {
    fn new(over_tls: bool) -> Site {
        Site {
            site: FakeSite::default(),
            told: RefCell::default(),
            over_tls,
        }
    }
}

impl Handler for Site {
    fn handle(&self, request: &Request<'_>) -> Reply {
        self.site.handle(request)
    }

    fn exchanged(&self, exchange: &Exchange<'_>) {
        assert_eq!(exchange.tls.is_some(), self.over_tls, "{exchange:?}");
        self.site.exchanged(exchange);
    }

    fn handshake(&self, outcome: Handshake<'_>) {
        let told = match outcome {
            Handshake::Completed(session) => Told::Completed(session.version),
            Handshake::Failed(reason) => Told::Failed(reason),
        };
        self.told.borrow_mut().push(told);
    }
}

/// The rustls client of client mode, and what it decrypted.
struct Client {
    conn: ClientConnection,
    plaintext: Vec<u8>,
    /// The link's TCP end has been read.
    ended: bool,
}

impl Client {
    fn new(version: TlsVersion) -> Client {
        let name = ServerName::try_from("localhost").expect("a server name");
        let conn = ClientConnection::new(client_config(version), name).expect("a client");
        Client {
            conn,
            plaintext: Vec::new(),
            ended: false,
        }
    }

    /// Puts what the client has to send on the wire to the link.
    fn say(&mut self, wire: &mut Vec<u8>) {
        while self.conn.wants_write() {
            self.conn.write_tls(wire).expect("writing into a Vec");
        }
    }

    /// Takes ciphertext the link sent.
    fn hear(&mut self, mut records: &[u8]) {
        while !records.is_empty() {
            let n = self
                .conn
                .read_tls(&mut records)
                .expect("the client takes records");
            assert!(n > 0, "the client took none of the records");
            self.decrypt();
        }
    }

    /// The link shut its side down: finished or closed.
    fn hear_the_end(&mut self) {
        if !self.ended {
            self.ended = true;
            self.conn.read_tls(&mut &[][..]).expect("the end of stream");
            self.decrypt();
            assert!(
                self.conn.reader().read(&mut [0; 1]).is_ok_and(|n| n == 0),
                "the link ended without close_notify"
            );
        }
    }

    fn decrypt(&mut self) {
        if let Err(error) = self.conn.process_new_packets() {
            panic!("the client refused what the link sent: {error}");
        }
        let mut buf = [0; 4096];
        loop {
            match self.conn.reader().read(&mut buf) {
                Ok(0) => return, // close_notify
                Ok(n) => self.plaintext.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                // The end without close_notify: `hear_the_end` says so.
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return,
                Err(e) => panic!("the client's reader: {e}"),
            }
        }
    }
}

/// One link and the socket between it and its client, moved by hand.
struct Wire<'a> {
    link: Link,
    clock: Clock,
    site: &'a Site,
    send_step: usize,
    read_step: usize,
    send_timeout: Duration,
    /// What the client sent that the link has not read yet.
    to_link: Vec<u8>,
    /// No client in raw mode: what the link sent.
    from_link: Vec<u8>,
    /// The client's side has ended: once `to_link` is read, the link reads the end.
    client_ended: bool,
    end_read: bool,
    finished: bool,
    closed: bool,
    steps: usize,
}

impl<'a> Wire<'a> {
    fn new(options: &Options, site: &'a Site, read_step: usize) -> Wire<'a> {
        let clock = Clock::new(UNIX_EPOCH + Duration::from_secs(NOW), Instant::now());
        let settings = options.settings;
        let link = if options.overloaded {
            Link::overloaded(settings, &clock, Some(server()))
        } else {
            Link::new(settings, clock.now(), Some(server()))
        };
        Wire {
            link,
            clock,
            site,
            send_step: options.send_step,
            read_step,
            send_timeout: settings.send_timeout,
            to_link: Vec::new(),
            from_link: Vec::new(),
            client_ended: false,
            end_read: false,
            finished: false,
            closed: false,
            steps: 0,
        }
    }

    /// Moves bytes both ways until the link closes or waits for a client with nothing more to
    /// say.
    fn settle(&mut self, mut client: Option<&mut Client>) {
        while !self.closed {
            self.steps += 1;
            assert!(self.steps <= MAX_STEPS, "the link never settles");
            if let Some(client) = client.as_deref_mut() {
                client.say(&mut self.to_link);
            }
            let now = self.clock.now();
            match self.link.poll(&self.clock, self.site) {
                Step::Send(Transmit::Bytes { bytes, .. }) => {
                    assert!(!self.finished, "sends after Finish");
                    assert!(!bytes.is_empty(), "Send with nothing to send");
                    let n = bytes.len().min(self.send_step);
                    let pending = n < bytes.len();
                    match client.as_deref_mut() {
                        Some(client) => client.hear(&bytes[..n]),
                        None => self.from_link.extend_from_slice(&bytes[..n]),
                    }
                    self.link.sent(n, now);
                    if pending {
                        assert!(
                            self.link.deadline() <= now + self.send_timeout,
                            "the send timeout while ciphertext waits"
                        );
                    }
                }
                Step::Send(Transmit::File { .. }) => panic!("a TLS link handed out a file"),
                Step::Receive { buf, .. } => {
                    // A socket would read 0 again, and a link that keeps asking would spin.
                    assert!(!self.end_read, "asks to read again after the peer closed");
                    assert!(!buf.is_empty(), "an empty receive buffer reads as end of stream");
                    if !self.to_link.is_empty() {
                        let n = buf.len().min(self.read_step).min(self.to_link.len());
                        buf[..n].copy_from_slice(&self.to_link[..n]);
                        self.to_link.drain(..n);
                        self.link.received(n, now);
                    } else if self.client_ended {
                        self.end_read = true;
                        self.link.received(0, now);
                    } else {
                        return;
                    }
                }
                Step::Finish => {
                    assert!(!self.finished, "Finish twice");
                    self.finished = true;
                    if let Some(client) = client.as_deref_mut() {
                        client.hear_the_end();
                    }
                }
                Step::Close => {
                    self.closed = true;
                    if let Some(client) = client.as_deref_mut() {
                        client.hear_the_end();
                    }
                }
            }
        }
    }
}

struct Options {
    close_at_end: bool,
    send_step: usize,
    read_step: usize,
    version: TlsVersion,
    close_notify: bool,
    key_update: bool,
    overloaded: bool,
    drain: bool,
    settings: Settings,
}

/// Each piece is one read of what the client sends.
fn raw(pieces: &[&[u8]], stream: &[u8], options: &Options) {
    let site = Site::new(false);
    let mut wire = Wire::new(options, &site, usize::MAX);
    for (at, piece) in pieces.iter().enumerate() {
        if wire.closed {
            break;
        }
        if at == 1 && options.drain {
            wire.link.drain();
        }
        wire.to_link.extend_from_slice(piece);
        wire.settle(None);
    }
    wire.client_ended = options.close_at_end;
    wire.settle(None);

    let out = &wire.from_link;
    // The server stopped before the first byte: the link has said `close_notify`, and all
    // that comes after is read to find the end, never answered. (Not beyond the limit: the
    // 503 is a response in flight, which a stopping server still sends.)
    let stopped_first = options.drain && pieces[0].is_empty() && !options.overloaded;
    let first = stream.first().filter(|_| !stopped_first);
    let plaintext_http = first.is_some_and(u8::is_ascii_uppercase);
    if plaintext_http {
        let starts = check_responses(out, &[]);
        assert_eq!(starts.len(), 1, "one answer to plain HTTP");
        assert!(out.starts_with(b"HTTP/1.1 400 "), "plain HTTP gets a 400");
        assert!(contains(out, b"\r\nConnection: close\r\n"));
        assert!(
            !contains(out, b"Strict-Transport-Security"),
            "HSTS over plaintext"
        );
        assert!(wire.finished, "the link finishes after the 400");
    } else {
        let records = records(out);
        // Nothing heard: at most the link's `close_notify`.
        if first.is_none() {
            let close_notify = (0x15, &[1, 0][..]);
            assert!(
                records.iter().all(|r| *r == close_notify),
                "{records:?} to nothing"
            );
        }
        if first.is_some_and(|first| !RECORD_TYPES.contains(first)) {
            assert!(!records.is_empty(), "no alert for a stream that is not TLS");
            assert!(
                records.iter().all(|(t, _)| *t == 0x15),
                "records but alerts: {records:?}"
            );
        }
        for (_, alert) in records.iter().filter(|(t, _)| *t == 0x15) {
            match alert[..] {
                // `close_notify`: the link has finished, or closed.
                [1, 0] => assert!(wire.finished || wire.closed, "no end after close_notify"),
                _ => assert!(wire.closed, "the link did not close after its alert {alert:?}"),
            }
        }
    }
    if options.settings.observe {
        let told = site.told.borrow();
        match &told[..] {
            [] => assert!(!wire.closed || stream.is_empty(), "closed, and nothing told"),
            [Told::Failed(reason)] => assert_eq!(
                *reason == HandshakeFailure::PlaintextHttp,
                plaintext_http,
                "{reason:?}"
            ),
            _ => panic!("told {told:?}"),
        }
    } else {
        assert!(site.told.borrow().is_empty());
    }
}

/// A real client does the handshake, then writes each piece as plaintext.
fn converse(pieces: &[&[u8]], options: &Options) {
    let site = Site::new(true);
    let mut client = Client::new(options.version);
    let mut wire = Wire::new(options, &site, options.read_step);
    wire.settle(Some(&mut client));
    assert!(!client.conn.is_handshaking(), "the handshake did not complete");
    assert_eq!(client.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    let version = match options.version {
        TlsVersion::Tls12 => rustls::ProtocolVersion::TLSv1_2,
        TlsVersion::Tls13 => rustls::ProtocolVersion::TLSv1_3,
    };
    assert_eq!(client.conn.protocol_version(), Some(version));
    for (at, piece) in pieces.iter().enumerate() {
        if wire.closed {
            break;
        }
        if at == 1 && options.drain {
            wire.link.drain();
        }
        client.conn.writer().write_all(piece).expect("the client writes");
        if at == 0 && options.key_update && options.version == TlsVersion::Tls13 {
            client.conn.refresh_traffic_keys().expect("a key update");
        }
        wire.settle(Some(&mut client));
    }
    if !wire.closed {
        if options.close_notify {
            client.conn.send_close_notify();
        }
        wire.client_ended = options.close_at_end;
        wire.settle(Some(&mut client));
    }

    let starts = check_responses(&client.plaintext, &site.site.calls.borrow());
    if options.overloaded {
        assert_eq!(starts.len(), 1, "one answer beyond the connection limit");
        assert!(
            client.plaintext.starts_with(b"HTTP/1.1 503 "),
            "a 503 beyond the limit"
        );
        assert!(contains(&client.plaintext, b"\r\nConnection: close\r\n"));
    }
    for (at, &start) in starts.iter().enumerate() {
        let end = starts.get(at + 1).copied().unwrap_or(client.plaintext.len());
        let response = &client.plaintext[start..end];
        let head = &response[..find(response, b"\r\n\r\n").expect("a head") + 4];
        let hsts = format!("\r\nStrict-Transport-Security: max-age={HSTS}\r\n");
        assert!(contains(head, hsts.as_bytes()), "a response without HSTS");
    }
    let told = site.told.borrow();
    if options.settings.observe {
        assert_eq!(*told, [Told::Completed(options.version)]);
    } else {
        assert!(told.is_empty());
    }
}

/// The content type and payload of every record in `out`, which must hold whole records only.
fn records(mut out: &[u8]) -> Vec<(u8, &[u8])> {
    let mut records = Vec::new();
    while !out.is_empty() {
        assert!(out.len() >= 5, "a record header cut short: {out:?}");
        let version = u16::from_be_bytes([out[1], out[2]]);
        let len = usize::from(u16::from_be_bytes([out[3], out[4]]));
        assert!((20..=23).contains(&out[0]), "content type {} sent", out[0]);
        assert!(
            (0x0301..=0x0303).contains(&version),
            "record version {version:#06x}"
        );
        assert!(len <= LONGEST_RECORD, "a record of {len} bytes");
        assert!(out.len() >= 5 + len, "a record cut short");
        records.push((out[0], &out[5..5 + len]));
        out = &out[5 + len..];
    }
    records
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

fuzz_target!(|data: &[u8]| {
    let [flags, more, rest @ ..] = data else {
        return;
    };
    let (pieces, stream) = pieces(usize::from(flags & 0b111) + 1, rest);
    let step = |bits: u8| [usize::MAX, 1000, 100, 7][usize::from(bits & 0b11)];
    let mut settings = Settings::default();
    settings.observe = flags & 0b1000_0000 != 0;
    if more & 0b0100_0000 != 0 {
        settings.limits = Limits {
            max_target: 64,
            max_header_bytes: 256,
            max_body: 1000,
        };
    }
    let options = Options {
        close_at_end: flags & 0b1000 != 0,
        send_step: step(flags >> 4),
        read_step: step(more >> 4),
        version: if more & 1 != 0 {
            TlsVersion::Tls12
        } else {
            TlsVersion::Tls13
        },
        close_notify: more & 0b10 != 0,
        key_update: more & 0b100 != 0,
        overloaded: more & 0b1000 != 0,
        drain: more & 0b1000_0000 != 0,
        settings,
    };
    if flags & 0b0100_0000 == 0 {
        raw(&pieces, stream, &options);
    } else {
        converse(&pieces, &options);
    }
});
