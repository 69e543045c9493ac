//! Conditional requests (RFC 9110 §13): whether a GET or HEAD is answered in full, with 304,
//! or with 412, given the representation's validators.

use super::reply::{EntityTag, Validators};
use super::request::{Field, Request};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precondition {
    Proceed,
    NotModified,
    Failed,
}

/// Evaluates the preconditions in the order of RFC 9110 §13.2.2, for GET and HEAD.
pub(crate) fn evaluate(request: &Request<'_>, validators: &Validators) -> Precondition {
    // 1. If-Match, else 2. If-Unmodified-Since: a lost update would follow; refuse.
    if let Some(value) = request.field(Field::IfMatch) {
        if !matches_any(&value, &validators.etag, Comparison::Strong) {
            return Precondition::Failed;
        }
    } else if let Some(since) = request
        .field(Field::IfUnmodifiedSince)
        .and_then(|v| parse_date(&v))
    {
        if seconds(validators.last_modified) > since {
            return Precondition::Failed;
        }
    }
    // 3. If-None-Match, else 4. If-Modified-Since: the client's copy is current.
    if let Some(value) = request.field(Field::IfNoneMatch) {
        if matches_any(&value, &validators.etag, Comparison::Weak) {
            return Precondition::NotModified;
        }
    } else if let Some(since) = request.field(Field::IfModifiedSince).and_then(|v| parse_date(&v)) {
        if seconds(validators.last_modified) <= since {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// RFC 9110 §13.1.5: a range request applies only if `If-Range` still names this
/// representation — by a strong ETag, or by a date equal to Last-Modified.
pub(crate) fn if_range_holds(request: &Request<'_>, validators: &Validators) -> bool {
    let Some(value) = request.field(Field::IfRange) else {
        return true;
    };
    if value.starts_with(b"\"") {
        *value == *validators.etag.as_bytes()
    } else if value.starts_with(b"W/") {
        false // a weak tag never validates a range
    } else {
        parse_date(&value) == Some(seconds(validators.last_modified))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    /// RFC 9110 §8.8.3.2: both strong and identical.
    Strong,
    /// Identical once any `W/` is set aside.
    Weak,
}

/// Whether a field value — `*` or a list of entity tags — matches `etag` (strong, quoted).
fn matches_any(value: &[u8], etag: &EntityTag, comparison: Comparison) -> bool {
    if value == b"*" {
        return true; // the representation exists, which is all `*` asks
    }
    EntityTags(value).any(|(weak, tag)| tag == etag.as_bytes() && !(weak && comparison == Comparison::Strong))
}

/// The entity tags of a list (RFC 9110 §8.8.3): `(is weak, "opaque")`. A quoted tag may hold
/// commas, so the list is scanned, not split. Scanning stops at anything malformed.
struct EntityTags<'a>(&'a [u8]);

impl<'a> Iterator for EntityTags<'a> {
    type Item = (bool, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.0.trim_ascii_start();
        let rest = rest.strip_prefix(b",").unwrap_or(rest).trim_ascii_start();
        let (weak, rest) = match rest.strip_prefix(b"W/") {
            Some(after) => (true, after),
            None => (false, rest),
        };
        let body = rest.strip_prefix(b"\"")?;
        let end = body.iter().position(|&b| b == b'"')?;
        let tag = &rest[..end + 2];
        self.0 = &body[end + 1..];
        Some((weak, tag))
    }
}

/// An HTTP-date as whole seconds since the epoch; `None` if it is not one (§13.1.3: ignore).
fn parse_date(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?;
    httpdate::parse_http_date(text).ok().map(seconds)
}

/// HTTP dates have one-second resolution; compare at that resolution.
pub(crate) fn seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::{self, Limits, Parsed};
    use std::time::Duration;

    const ETAG: &str = "\"abc-1\"";

    fn validators() -> Validators {
        Validators::new(
            EntityTag::strong(&ETAG[1..ETAG.len() - 1]).unwrap(),
            UNIX_EPOCH + Duration::from_secs(784_111_777),
        )
    }

    /// Parses `fields` as a request's header lines and runs `f` on the request.
    fn with_request<T>(fields: &str, f: impl Fn(&Request<'_>) -> T) -> T {
        let mut head = format!("GET / HTTP/1.1\r\nHost: x\r\n{fields}\r\n").into_bytes();
        let Parsed::Complete { head: parsed, .. } = request::parse(&mut head, &Limits::default()) else {
            panic!("not a valid head: {fields}");
        };
        f(&Request {
            method: request::Method::Get,
            path: b"/",
            now: std::time::Instant::now(),
            target: b"/",
            head: &head,
            fields: &parsed.fields,
            sni: None,
        })
    }

    #[test]
    fn precedence_and_comparison() {
        use Precondition::*;
        let cases = [
            ("", Proceed),
            ("If-None-Match: \"abc-1\"\r\n", NotModified),
            ("If-None-Match: \"x\", \"abc-1\"\r\n", NotModified),
            ("If-None-Match: \"a,b\", \"abc-1\"\r\n", NotModified),
            ("If-None-Match: W/\"abc-1\"\r\n", NotModified),
            ("If-None-Match: *\r\n", NotModified),
            ("If-None-Match: \"other\"\r\n", Proceed),
            (
                "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n",
                NotModified,
            ),
            (
                "If-Modified-Since: Sun, 06 Nov 1994 08:49:38 GMT\r\n",
                NotModified,
            ),
            ("If-Modified-Since: Sun, 06 Nov 1994 08:49:36 GMT\r\n", Proceed),
            ("If-Modified-Since: yesterday\r\n", Proceed),
            (
                "If-None-Match: \"other\"\r\nIf-Modified-Since: Sun, 06 Nov 2094 08:49:37 GMT\r\n",
                Proceed,
            ),
            ("If-Match: \"abc-1\"\r\n", Proceed),
            ("If-Match: *\r\n", Proceed),
            ("If-Match: \"other\"\r\n", Failed),
            ("If-Match: W/\"abc-1\"\r\n", Failed),
            ("If-Unmodified-Since: Sun, 06 Nov 1994 08:49:36 GMT\r\n", Failed),
            ("If-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n", Proceed),
            (
                "If-Match: \"abc-1\"\r\nIf-Unmodified-Since: Sun, 06 Nov 1994 08:49:36 GMT\r\n",
                Proceed,
            ),
            ("If-Match: \"other\"\r\nIf-None-Match: \"abc-1\"\r\n", Failed),
            (
                "If-None-Match: \"x\"\r\nIf-None-Match: \"abc-1\"\r\n",
                NotModified,
            ),
            ("If-Match: \"x\"\r\nIf-Match: \"abc-1\"\r\n", Proceed),
            (
                "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\nIf-Modified-Since: x\r\n",
                Proceed,
            ),
        ];
        for (fields, expected) in cases {
            assert_eq!(
                with_request(fields, |r| evaluate(r, &validators())),
                expected,
                "{fields:?}"
            );
        }
    }

    #[test]
    fn if_range() {
        let cases = [
            ("", true),
            ("If-Range: \"abc-1\"\r\n", true),
            ("If-Range: \"other\"\r\n", false),
            ("If-Range: W/\"abc-1\"\r\n", false),
            ("If-Range: Sun, 06 Nov 1994 08:49:37 GMT\r\n", true),
            ("If-Range: Sun, 06 Nov 1994 08:49:38 GMT\r\n", false),
            ("If-Range: garbage\r\n", false),
        ];
        for (fields, expected) in cases {
            assert_eq!(
                with_request(fields, |r| if_range_holds(r, &validators())),
                expected,
                "{fields:?}"
            );
        }
    }
}
