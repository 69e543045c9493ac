//! What a handler answers, and how the core turns it into a response head (RFC 9110 §6, RFC 9112 §4).

use super::status::Status;
use std::borrow::Cow;
use std::fs::File;
use std::io::Write;
use std::sync::Arc;

/// A handler's answer to one request. The core adds the framing headers (`Date`, `Server`,
/// `Content-Length`, `Connection`) and leaves the body out for HEAD.
#[derive(Debug)]
pub struct Reply {
    pub status: Status,
    pub content_type: Option<Cow<'static, str>>,
    /// `Location` of a redirect.
    pub location: Option<String>,
    pub body: Body,
}

/// Where the bytes of a body come from.
#[derive(Debug)]
pub enum Body {
    /// A short fixed page, such as an error page.
    Static(&'static [u8]),
    /// A small file's content, shared from the cache.
    Shared(Arc<[u8]>),
    /// A whole file, sent from the kernel's page cache (sendfile); `len` is its size at open.
    File { file: File, len: u64 },
}

impl Body {
    pub fn len(&self) -> u64 {
        match self {
            Body::Static(bytes) => bytes.len() as u64,
            Body::Shared(bytes) => bytes.len() as u64,
            Body::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Reply {
    /// A status answered with its short HTML page.
    pub fn error(status: Status) -> Reply {
        Reply {
            status,
            content_type: Some(Cow::Borrowed(HTML)),
            location: None,
            body: Body::Static(status.page()),
        }
    }

    /// 301 to `location` (RFC 9110 §15.4.2), e.g. a directory named without its slash.
    pub fn moved_permanently(location: String) -> Reply {
        Reply {
            location: Some(location),
            ..Reply::error(Status::MovedPermanently)
        }
    }
}

const HTML: &str = "text/html; charset=utf-8";

/// Whether the response says it is the last one on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Persistence {
    /// HTTP/1.1 default: nothing to say.
    Implicit,
    /// An HTTP/1.0 client asked to keep the connection: confirm it.
    KeepAlive,
    Close,
}

/// Appends the head of `reply` to `out`.
pub(crate) fn write_head(out: &mut Vec<u8>, reply: &Reply, date: &str, persistence: Persistence) {
    out.extend_from_slice(reply.status.status_line().as_bytes());
    out.extend_from_slice(b"Server: bingfa\r\nDate: ");
    out.extend_from_slice(date.as_bytes());
    if let Some(content_type) = &reply.content_type {
        out.extend_from_slice(b"\r\nContent-Type: ");
        out.extend_from_slice(content_type.as_bytes());
    }
    // Writing into a Vec cannot fail.
    let _ = write!(out, "\r\nContent-Length: {}\r\n", reply.body.len());
    if let Some(location) = &reply.location {
        out.extend_from_slice(b"Location: ");
        out.extend_from_slice(location.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if reply.status == Status::MethodNotAllowed {
        out.extend_from_slice(b"Allow: GET, HEAD\r\n");
    }
    match persistence {
        Persistence::Implicit => {}
        Persistence::KeepAlive => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        Persistence::Close => out.extend_from_slice(b"Connection: close\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}
