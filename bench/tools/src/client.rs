//! One client connection, plaintext or TLS, and one request on it, every wait bounded by the
//! socket's timeouts.

use rustls::{ClientConfig, ClientConnection, HandshakeKind, StreamOwned};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// Why one connection or request failed.
#[derive(Clone, Copy, Debug)]
pub enum Fail {
    Connect,
    /// The TLS handshake was refused or broken (an alert, or bytes that are not TLS).
    Handshake,
    Write,
    Timeout,
    Closed,
    Bad,
}

impl Fail {
    pub const ALL: [Fail; 6] = [
        Fail::Connect,
        Fail::Handshake,
        Fail::Write,
        Fail::Timeout,
        Fail::Closed,
        Fail::Bad,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fail::Connect => "connect",
            Fail::Handshake => "handshake",
            Fail::Write => "write",
            Fail::Timeout => "timeout",
            Fail::Closed => "closed",
            Fail::Bad => "bad_response",
        }
    }
}

/// Failures counted by kind.
#[derive(Default)]
pub struct Fails(pub [usize; 6]);

impl Fails {
    pub fn add(&mut self, f: Fail) {
        self.0[f as usize] += 1;
    }

    pub fn total(&self) -> usize {
        self.0.iter().sum()
    }

    pub fn merge(&mut self, other: &Fails) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine += theirs;
        }
    }

    pub fn json(&self) -> String {
        let fields: Vec<String> = Fail::ALL
            .iter()
            .map(|f| format!("\"{}\":{}", f.name(), self.0[*f as usize]))
            .collect();
        format!("{{{}}}", fields.join(","))
    }
}

/// A connected socket, with its TLS session once the handshake is done.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Conn {
    /// The socket beneath, to look at it without going through TLS.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(t) => &t.sock,
        }
    }

    /// The protocol TLS agreed on (ALPN); `None` over plaintext or if none was.
    pub fn alpn(&self) -> Option<&[u8]> {
        match self {
            Conn::Plain(_) => None,
            Conn::Tls(t) => t.conn.alpn_protocol(),
        }
    }

    /// Full or resumed; `None` over plaintext.
    pub fn handshake_kind(&self) -> Option<HandshakeKind> {
        match self {
            Conn::Plain(_) => None,
            Conn::Tls(t) => t.conn.handshake_kind(),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(t) => t.flush(),
        }
    }
}

fn read_fail(e: &io::Error) -> Fail {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Fail::Timeout,
        _ => Fail::Closed,
    }
}

/// Connects, and with `tls` completes the handshake before returning (so a caller timing the
/// connection times the handshake too).
pub fn connect(addr: SocketAddr, timeout: Duration, tls: Option<&Arc<ClientConfig>>) -> Result<Conn, Fail> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|_| Fail::Connect)?;
    let _ = s.set_nodelay(true);
    s.set_read_timeout(Some(timeout)).map_err(|_| Fail::Connect)?;
    s.set_write_timeout(Some(timeout)).map_err(|_| Fail::Connect)?;
    let Some(config) = tls else {
        return Ok(Conn::Plain(s));
    };
    let mut conn =
        ClientConnection::new(Arc::clone(config), addr.ip().into()).map_err(|_| Fail::Handshake)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut s).map_err(|e| handshake_fail(&e))?;
    }
    // TLS 1.3: the client's Finished is queued as the handshake ends.
    while conn.wants_write() {
        conn.write_tls(&mut s).map_err(|_| Fail::Write)?;
    }
    Ok(Conn::Tls(Box::new(StreamOwned::new(conn, s))))
}

/// rustls reports a TLS error as InvalidData; anything else is the socket's.
fn handshake_fail(e: &io::Error) -> Fail {
    match e.kind() {
        io::ErrorKind::InvalidData => Fail::Handshake,
        _ => read_fail(e),
    }
}

/// A GET of `path`; `close` asks the server to close after it.
pub fn request(path: &str, addr: SocketAddr, close: bool) -> Vec<u8> {
    let connection = if close { "Connection: close\r\n" } else { "" };
    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{connection}\r\n").into_bytes()
}

/// Sends `req` and reads one whole response (head, then Content-Length bytes of body), which
/// must be a 2xx. Returns the status. `buf` is scratch space, reused between calls.
pub fn exchange(s: &mut (impl Read + Write), req: &[u8], buf: &mut Vec<u8>) -> Result<u16, Fail> {
    s.write_all(req).map_err(|_| Fail::Write)?;
    buf.clear();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err(Fail::Bad);
        }
        match s.read(&mut chunk) {
            Ok(0) => return Err(Fail::Closed),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(read_fail(&e)),
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| Fail::Bad)?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or(Fail::Bad)?;
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .ok_or(Fail::Bad)?;
    let mut have = buf.len() - head_end;
    while have < length {
        match s.read(&mut chunk) {
            Ok(0) => return Err(Fail::Closed),
            Ok(n) => have += n,
            Err(e) => return Err(read_fail(&e)),
        }
    }
    if have != length {
        return Err(Fail::Bad); // more bytes than the response: nothing else was asked for
    }
    if !(200..300).contains(&status) {
        return Err(Fail::Bad);
    }
    Ok(status)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The `q` quantile (0 < q ≤ 1) of sorted values, by the nearest rank.
pub fn percentile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[i])
}
