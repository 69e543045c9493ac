//! From a handler's reply to the response this request asked for: conditional requests
//! (RFC 9110 §13) and ranges (§14) applied to any 200 that carries validators.

use super::conditional::{self, Precondition};
use super::range::{self, Ranges};
use super::reply::{Reply, Validators};
use super::request::{Field, Method, Request};
use super::status::Status;
use std::borrow::Cow;
use std::ops::Range;

/// A reply with its final status, and which of its body's bytes go out how.
#[derive(Debug)]
pub(crate) struct Shaped {
    pub reply: Reply,
    pub layout: Layout,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Layout {
    /// The body as it is.
    Whole,
    /// 304: no content, and only the fields a cache needs to update its copy.
    NotModified,
    /// 206 with one range: `Content-Range: bytes first-last/size`.
    Single { range: Range<u64>, size: u64 },
    /// 206 `multipart/byteranges`: each part's head, then its range; then the closing line.
    Multipart {
        parts: Vec<(Vec<u8>, Range<u64>)>,
        closing: Vec<u8>,
    },
    /// 416: `Content-Range: bytes */size`.
    Unsatisfiable { size: u64 },
}

impl Shaped {
    pub fn whole(reply: Reply) -> Shaped {
        Shaped {
            reply,
            layout: Layout::Whole,
        }
    }

    /// The `Content-Length` this response announces; `None` for 304 and 204, which have no
    /// content (RFC 9110 §8.6: a 204 must not announce a length).
    pub fn content_length(&self) -> Option<u64> {
        match &self.layout {
            Layout::Whole if self.reply.status == Status::NoContent => None,
            Layout::Whole | Layout::Unsatisfiable { .. } => Some(self.reply.body.len()),
            Layout::NotModified => None,
            Layout::Single { range, .. } => Some(range.end - range.start),
            Layout::Multipart { parts, closing } => {
                let parts: u64 = parts
                    .iter()
                    .map(|(head, range)| head.len() as u64 + range.end - range.start)
                    .sum();
                Some(parts + closing.len() as u64)
            }
        }
    }
}

/// Applies the request's preconditions and ranges to `reply`.
pub(crate) fn shape(mut reply: Reply, request: &Request<'_>) -> Shaped {
    let Some(validators) = reply.validators.as_ref().filter(|_| reply.status == Status::Ok) else {
        return Shaped::whole(reply);
    };
    match conditional::evaluate(request, validators) {
        Precondition::Failed => return Shaped::whole(Reply::error(Status::PreconditionFailed)),
        Precondition::NotModified => {
            reply.status = Status::NotModified;
            return Shaped {
                reply,
                layout: Layout::NotModified,
            };
        }
        Precondition::Proceed => {}
    }
    // RFC 9110 §14.2: Range is defined for GET only; on HEAD it is ignored.
    let range_field = request
        .field(Field::Range)
        .filter(|_| request.method == Method::Get);
    let Some(range_field) = range_field.filter(|_| conditional::if_range_holds(request, validators)) else {
        return Shaped::whole(reply);
    };
    let size = reply.body.len();
    match range::parse(&range_field, size) {
        Ranges::Whole => Shaped::whole(reply),
        Ranges::Unsatisfiable => {
            let refusal = Reply {
                cache_control: reply.cache_control,
                ..Reply::error(Status::RangeNotSatisfiable)
            };
            Shaped {
                reply: refusal,
                layout: Layout::Unsatisfiable { size },
            }
        }
        Ranges::Parts(mut parts) if parts.len() == 1 => {
            reply.status = Status::PartialContent;
            let range = parts.remove(0);
            Shaped {
                reply,
                layout: Layout::Single { range, size },
            }
        }
        Ranges::Parts(parts) => {
            reply.status = Status::PartialContent;
            let boundary = boundary_for(validators, &parts);
            let part_type = reply.content_type.take();
            reply.content_type = Some(Cow::Owned(format!("multipart/byteranges; boundary={boundary}")));
            let layout = multipart(&boundary, part_type.as_deref(), parts, size);
            Shaped { reply, layout }
        }
    }
}

/// RFC 9110 §14.6: each part is a delimiter line, its own Content-Type and Content-Range,
/// an empty line and the bytes; a closing delimiter ends the body.
fn multipart(boundary: &str, part_type: Option<&str>, ranges: Vec<Range<u64>>, size: u64) -> Layout {
    let parts = ranges
        .into_iter()
        .map(|range| {
            let mut head = format!("\r\n--{boundary}\r\n");
            if let Some(part_type) = part_type {
                head.push_str(&format!("Content-Type: {part_type}\r\n"));
            }
            head.push_str(&format!(
                "Content-Range: bytes {}-{}/{size}\r\n\r\n",
                range.start,
                range.end - 1
            ));
            (head.into_bytes(), range)
        })
        .collect();
    Layout::Multipart {
        parts,
        closing: format!("\r\n--{boundary}--\r\n").into_bytes(),
    }
}

/// A boundary unlikely to occur in the parts. The core has no randomness, so it is a hash of
/// the representation's tag and the ranges asked for: 64 bits, as likely to collide with the
/// content as a random one of the same length.
fn boundary_for(validators: &Validators, ranges: &[Range<u64>]) -> String {
    // FNV-1a: small, and good enough to spread the input over 64 bits.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &byte in bytes {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(validators.etag.as_bytes());
    for range in ranges {
        feed(&range.start.to_le_bytes());
        feed(&range.end.to_le_bytes());
    }
    format!("bingfa-{hash:016x}")
}
