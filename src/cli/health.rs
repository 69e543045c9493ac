//! `bingfa --health-check URL`: one GET, for container health checks where no curl exists.
//! Exit 0 if the answer is 200; one line on stderr and a failure otherwise, a refused
//! connection and a timeout included.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The whole check (connect, send, answer) gives up after this: a health check that hangs
/// is worse than one that fails.
const TIMEOUT: Duration = Duration::from_secs(5);
/// A response head larger than this is not a health check's answer.
const MAX_HEAD: usize = 16 * 1024;

/// What went wrong, in the one line the binary prints.
#[derive(Debug, thiserror::Error)]
pub enum Unhealthy {
    #[error("{0}: not an http:// URL with a host (https is not checked; use the metrics listener)")]
    Url(String),
    #[error("{url}: {error}")]
    Io { url: String, error: io::Error },
    #[error("{url}: the answer is not an HTTP response")]
    NotHttp { url: String },
    #[error("{url}: {status} {reason}")]
    Status {
        url: String,
        status: u16,
        reason: String,
    },
}

/// GETs `url` (`http://host[:port][/path]`); Ok if the answer is 200.
pub fn check(url: &str) -> Result<(), Unhealthy> {
    let target = Target::parse(url).ok_or_else(|| Unhealthy::Url(url.to_owned()))?;
    let io = |error| Unhealthy::Io {
        url: url.to_owned(),
        error,
    };
    let mut stream = connect(&target.authority).map_err(io)?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: bingfa-health-check\r\nConnection: close\r\n\r\n",
        target.path, target.authority
    );
    stream.write_all(request.as_bytes()).map_err(io)?;
    let head = read_head(&mut stream).map_err(io)?;
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let not_http = || Unhealthy::NotHttp { url: url.to_owned() };
    match response.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(not_http()),
    }
    match response.code.ok_or_else(not_http)? {
        200 => Ok(()),
        status => Err(Unhealthy::Status {
            url: url.to_owned(),
            status,
            reason: response.reason.unwrap_or_default().to_owned(),
        }),
    }
}

/// The parts of an `http://` URL a request needs.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// `host:port`, as the Host field says it too.
    authority: String,
    /// `/path?query`; `/` when the URL has none.
    path: String,
}

impl Target {
    fn parse(url: &str) -> Option<Target> {
        let scheme_end = url.find("://")?;
        if !url[..scheme_end].eq_ignore_ascii_case("http") {
            return None;
        }
        let rest = &url[scheme_end + 3..];
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) if rest[at..].starts_with('?') => (&rest[..at], format!("/{}", &rest[at..])),
            Some(at) => (&rest[..at], rest[at..].to_owned()),
            None => (rest, "/".to_owned()),
        };
        let printable = |text: &str| text.bytes().all(|b| b.is_ascii_graphic());
        if authority.is_empty() || authority.contains('@') || !printable(authority) || !printable(&path) {
            return None;
        }
        let authority = if has_port(authority) {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Some(Target { authority, path })
    }
}

/// `host:80` and `[::1]:80` have a port; `host` and `[::1]` do not.
fn has_port(authority: &str) -> bool {
    match authority.rfind(':') {
        Some(colon) => !authority[colon..].contains(']'),
        None => false,
    }
}

/// The first address of `authority` that accepts, within the timeout each.
fn connect(authority: &str) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address for the host");
    for address in authority.to_socket_addrs()? {
        match TcpStream::connect_timeout(&address, TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(error) => last = error,
        }
    }
    Err(last)
}

/// Reads until the end of the response head (or the peer closes).
fn read_head(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let target = |url: &str| Target::parse(url).map(|t| (t.authority, t.path));
        let some = |a: &str, p: &str| Some((a.to_owned(), p.to_owned()));
        assert_eq!(
            target("http://127.0.0.1:9090/healthz"),
            some("127.0.0.1:9090", "/healthz")
        );
        assert_eq!(
            target("HTTP://localhost/healthz?x=1"),
            some("localhost:80", "/healthz?x=1")
        );
        assert_eq!(target("http://[::1]:9090"), some("[::1]:9090", "/"));
        assert_eq!(target("http://[::1]"), some("[::1]:80", "/"));
        assert_eq!(target("http://host?x"), some("host:80", "/?x"));
        assert_eq!(target("https://host/healthz"), None);
        assert_eq!(target("host:9090/healthz"), None);
        assert_eq!(target("http:///healthz"), None);
        assert_eq!(target("http://user@host/"), None);
        assert_eq!(target("http://host/a b"), None);
    }
}
