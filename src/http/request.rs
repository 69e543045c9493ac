//! Reading one request head: `httparse` does the syntax, this file the rules it leaves to the
//! server (RFC 9112 §3–§7, RFC 9110 §7.2, §8.6, §9).
//!
//! Every rejection carries the status to answer with, as h11's `error_status_hint` does, and
//! every rejection here is a framing error: the connection closes after the answer.

use super::status::Status;
use std::borrow::Cow;
use std::mem::MaybeUninit;
use std::ops::Range;
use std::time::Instant;

/// Size limits on a request head; beyond them the answer is 414 or 431.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest request target accepted (414 beyond).
    pub max_target: usize,
    /// Largest header section accepted, in bytes, request line excluded (431 beyond).
    pub max_header_bytes: usize,
    /// Largest request body the server is willing to read and drop (413 beyond).
    pub max_body: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_target: 8 * 1024,
            max_header_bytes: 16 * 1024,
            max_body: 1024 * 1024,
        }
    }
}

/// Most header fields accepted in one request (431 beyond).
pub const MAX_HEADERS: usize = 100;

/// Slack for the method, spaces and version around the target on the request line.
const REQUEST_LINE_SLACK: usize = 64;

/// What the handler gets to see of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: Method,
    /// The target's path, still percent-encoded, without query: `/a%20b/index.html`.
    pub path: &'a [u8],
    /// When the request is answered, on the I/O layer's clock: for a handler's own caches.
    pub now: Instant,
    /// The request target as sent: `/a%20b/index.html?q=1`, or `http://host/a` (absolute form).
    pub(crate) target: &'a [u8],
    /// The head's bytes, into which `fields` points.
    pub(crate) head: &'a [u8],
    pub(crate) fields: &'a FieldValues,
    /// The server name the connection's client gave in TLS (SNI), kept only with
    /// `Settings::match_sni`: a request for another host is then misdirected.
    pub(crate) sni: Option<&'a str>,
}

impl<'a> Request<'a> {
    /// The Host field's value, trimmed (parsing keeps its place: it checks the field anyway).
    fn host_field(&self) -> Option<&'a [u8]> {
        self.fields.value(self.head, Field::Host)
    }

    /// The target's query, still percent-encoded, without the `?`: `q=1` of `/a?q=1#top`.
    pub fn query(&self) -> Option<&'a [u8]> {
        let after = self.target.iter().position(|&b| b == b'?')? + 1;
        let rest = &self.target[after..];
        let end = rest.iter().position(|&b| b == b'#').unwrap_or(rest.len());
        Some(&rest[..end])
    }

    /// The authority the client asked for: an absolute-form target's (RFC 9112 §3.2.2), else
    /// the Host field's, as sent (`example.com:8443`, `[::1]`). `None` for an HTTP/1.0
    /// request without one; never empty.
    pub fn host(&self) -> Option<&'a [u8]> {
        let host = match path_start_after_authority(self.target) {
            Some(end) => {
                let start = self.target.iter().position(|&b| b == b':')? + b"://".len();
                &self.target[start..end]
            }
            None => self.host_field()?,
        };
        (!host.is_empty()).then_some(host)
    }

    /// The host of [`host`](Request::host) without its port or a trailing dot, case as sent:
    /// `Example.COM` of `Example.COM.:8080`, `[::1]` of `[::1]:80`; what picks a virtual host.
    pub fn host_name(&self) -> Option<&'a [u8]> {
        let (host, _) = split_port(self.host()?)?;
        let host = host.strip_suffix(b".").unwrap_or(host);
        (!host.is_empty()).then_some(host)
    }

    /// The server name the client gave in its TLS handshake (SNI), with
    /// `Settings::match_sni` only.
    pub fn sni(&self) -> Option<&'a str> {
        self.sni
    }

    /// The connection was made for another host than the request names (its SNI is not the
    /// request's host): RFC 9110 §15.5.20's 421, so that a client that reused a connection
    /// for another name (HTTP/2 coalescing) asks again on a connection of its own. A request
    /// naming no host (HTTP/1.0) is not misdirected.
    pub(crate) fn misdirected(&self) -> bool {
        let Some(sni) = self.sni else {
            return false;
        };
        let sni = sni.strip_suffix('.').unwrap_or(sni);
        self.host_name()
            .is_some_and(|host| !host.eq_ignore_ascii_case(sni.as_bytes()))
    }

    /// The value of a field the server acts on, trimmed. A field sent on several lines is
    /// combined into one comma-separated list, as RFC 9110 §5.3 says (which turns a
    /// repeated singleton such as `Range` into an invalid value, to be ignored).
    pub fn field(&self, field: Field) -> Option<Cow<'a, [u8]>> {
        self.fields.combined(self.head, field)
    }
}

/// The request fields that shape a response beyond its framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    IfMatch,
    IfNoneMatch,
    IfModifiedSince,
    IfUnmodifiedSince,
    Range,
    IfRange,
    AcceptEncoding,
    Accept,
    /// For the access log.
    Referer,
    UserAgent,
    /// For CORS (a site's `--cors`).
    Origin,
    AccessControlRequestMethod,
    AccessControlRequestHeaders,
    /// For the access log: who the client is, said by a trusted proxy.
    Forwarded,
    XForwardedFor,
    /// Basic auth (`[[auth]]`).
    Authorization,
    /// The host a request names (checked while parsing, so its place is kept there).
    Host,
}

impl Field {
    const ALL: [(Field, &'static str); 17] = [
        (Field::IfMatch, "if-match"),
        (Field::IfNoneMatch, "if-none-match"),
        (Field::IfModifiedSince, "if-modified-since"),
        (Field::IfUnmodifiedSince, "if-unmodified-since"),
        (Field::Range, "range"),
        (Field::IfRange, "if-range"),
        (Field::AcceptEncoding, "accept-encoding"),
        (Field::Accept, "accept"),
        (Field::Referer, "referer"),
        (Field::UserAgent, "user-agent"),
        (Field::Origin, "origin"),
        (Field::AccessControlRequestMethod, "access-control-request-method"),
        (
            Field::AccessControlRequestHeaders,
            "access-control-request-headers",
        ),
        (Field::Forwarded, "forwarded"),
        (Field::XForwardedFor, "x-forwarded-for"),
        (Field::Authorization, "authorization"),
        (Field::Host, "host"),
    ];

    fn named(name: &str) -> Option<Field> {
        Field::ALL
            .iter()
            .find(|(_, known)| name.eq_ignore_ascii_case(known))
            .map(|(field, _)| *field)
    }
}

/// Where each [`Field`]'s first value lies in the head (start, length), so a parsed head need
/// not borrow it, and which fields came on more than one line. A head is far below 64 KiB
/// (see `Limits`), so 16 bits locate any byte of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FieldValues {
    first: [Option<(u16, u16)>; Field::ALL.len()],
    repeated: u32,
}

impl FieldValues {
    /// `value`, within `buf`, is a value of `field`: where the first lies, and whether there
    /// are more.
    fn note(&mut self, field: Field, buf: &[u8], value: &[u8]) {
        let slot = &mut self.first[field as usize];
        if slot.is_none() {
            let start = u16::try_from(offset_in(buf, value)).ok();
            let len = u16::try_from(value.len()).ok();
            *slot = start.zip(len);
        } else {
            self.repeated |= 1 << field as u8;
        }
    }

    /// The first line's value of `field` in `head`, as sent (trimmed): enough for a log.
    pub(crate) fn value<'h>(&self, head: &'h [u8], field: Field) -> Option<&'h [u8]> {
        let (start, len) = self.first[field as usize]?;
        head.get(usize::from(start)..usize::from(start) + usize::from(len))
    }

    /// The value of `field` in `head`, trimmed; a field sent on several lines is combined
    /// into one comma-separated list, as RFC 9110 §5.3 says (which turns a repeated singleton
    /// such as `Range` into an invalid value, to be ignored).
    pub(crate) fn combined<'h>(&self, head: &'h [u8], field: Field) -> Option<Cow<'h, [u8]>> {
        let first = self.value(head, field)?;
        if self.repeated & (1 << field as u8) == 0 {
            return Some(Cow::Borrowed(first));
        }
        Some(Cow::Owned(every_line(head, field)))
    }
}

/// Every line of `field` in `head`, joined with ", ". Rare, so it simply rescans.
fn every_line(head: &[u8], field: Field) -> Vec<u8> {
    let name = Field::ALL[field as usize].1;
    let lines = head
        .split(|&b| b == b'\n')
        .skip(1)
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let values = lines.take_while(|line| !line.is_empty()).filter_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        line[..colon]
            .eq_ignore_ascii_case(name.as_bytes())
            .then(|| trim(&line[colon + 1..]))
    });
    let mut joined = Vec::new();
    for value in values {
        if !joined.is_empty() {
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(value);
    }
    joined
}

/// The methods that reach the handler; everything else is answered by the core. OPTIONS
/// reaches only a handler that answers it ([`Handler::answers_options`](super::Handler)),
/// for CORS preflight; for any other the core answers 405.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Options,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    Http10,
    Http11,
}

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(u64),
    Chunked,
}

/// What the request asks of the server, decided before any file is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Intent {
    /// GET or HEAD of this path: a range into the parsed buffer; empty stands for `/`
    /// (an absolute-form target with no path, RFC 9112 §3.2.2).
    Serve { method: Method, path: Range<usize> },
    /// A well-framed request the core answers itself (405, 501).
    Refuse(Status),
}

/// A parsed and validated request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub version: Version,
    pub keep_alive: bool,
    pub framing: Option<Framing>,
    /// `Expect: 100-continue` was sent: the client may hold its body back until told.
    pub expects_continue: bool,
    pub intent: Intent,
    pub fields: FieldValues,
    /// Where the method and the target lie in the parsed buffer, for the access log.
    pub spans: RequestSpans,
}

/// The offsets of a request line's method and target in the buffer it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestSpans {
    pub method: (usize, usize),
    pub target: (usize, usize),
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// Not a whole head yet; read more.
    Partial,
    /// A head of `len` bytes.
    Complete { head: Head, len: usize },
    /// A framing error: answer with this status, then close.
    Invalid(Status),
}

/// Parses the head at the start of `buf`. It takes `&mut` because an `HTTP/1.x` version with a
/// minor above 1 is rewritten in place to `HTTP/1.1` (RFC 9110 §2.5), which httparse rejects.
pub(crate) fn parse(buf: &mut [u8], limits: &Limits) -> Parsed {
    // The answer must not depend on how the head was cut into reads: the first problem in
    // byte order wins. So an oversized head is judged on the part within the limits; an
    // error there is the answer, otherwise the size is.
    match oversized(buf, limits) {
        None => parse_within(buf, limits),
        Some((within, status)) => match parse_within(&mut buf[..within], limits) {
            Parsed::Invalid(earlier) => Parsed::Invalid(earlier),
            _ => Parsed::Invalid(status),
        },
    }
}

fn parse_within(buf: &mut [u8], limits: &Limits) -> Parsed {
    match parse_once(buf, limits) {
        Err(Retry::AsHttp11(at)) => {
            buf[at..at + 8].copy_from_slice(b"HTTP/1.1");
            parse_once(buf, limits).unwrap_or(Parsed::Invalid(Status::BadRequest))
        }
        Err(Retry::NeedMore) => Parsed::Partial,
        Ok(parsed) => parsed,
    }
}

enum Retry {
    /// The version at this offset is `HTTP/1.x`, x > 1: parse again as `HTTP/1.1`.
    AsHttp11(usize),
    /// httparse rejected a version it has not fully seen yet.
    NeedMore,
}

fn parse_once(buf: &[u8], limits: &Limits) -> Result<Parsed, Retry> {
    // Uninitialized: httparse fills in only the fields there are, and a head has a handful,
    // not MAX_HEADERS.
    let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    match request.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Partial) => Ok(Parsed::Partial),
        Ok(httparse::Status::Complete(len)) => Ok(check_complete(&request, buf, len, limits)),
        Err(httparse::Error::TooManyHeaders) => Ok(Parsed::Invalid(Status::HeaderFieldsTooLarge)),
        Err(httparse::Error::Version) => classify_version(buf),
        Err(_) => Ok(Parsed::Invalid(Status::BadRequest)),
    }
}

/// If the head (so far) breaks a size limit: how many bytes of it are within the limits,
/// and the status for breaking it — 414 for a request line longer than a target within the
/// limit could make it, 431 for a header section over its limit. Judged on the raw bytes,
/// the same whether the head is complete or not.
fn oversized(buf: &[u8], limits: &Limits) -> Option<(usize, Status)> {
    let line_limit = limits.max_target + REQUEST_LINE_SLACK;
    if buf.len() <= line_limit.min(limits.max_header_bytes) {
        return None; // too short to break either limit: the common case, not worth a scan
    }
    let start = leading_empty_lines(buf);
    let line_end = buf[start..].iter().position(|&b| b == b'\n').map(|i| start + i);
    if line_end.unwrap_or(buf.len()) - start > line_limit {
        return Some((start + line_limit, Status::UriTooLong));
    }
    let fields_start = line_end? + 1;
    let fields_end = head_end(buf, fields_start).unwrap_or(buf.len());
    (fields_end - fields_start > limits.max_header_bytes).then_some((
        fields_start + limits.max_header_bytes,
        Status::HeaderFieldsTooLarge,
    ))
}

/// Where the empty line ending the header section starts, if it has arrived.
fn head_end(buf: &[u8], fields_start: usize) -> Option<usize> {
    let fields = &buf[fields_start..];
    if fields.starts_with(b"\r\n") || fields.starts_with(b"\n") {
        return Some(fields_start); // no fields at all
    }
    // The first line end followed by an empty line (CRLF or bare LF).
    let blank_line = (0..fields.len()).find(|&i| {
        fields[i] == b'\n' && (fields[i + 1..].starts_with(b"\n") || fields[i + 1..].starts_with(b"\r\n"))
    });
    blank_line.map(|i| fields_start + i + 1)
}

/// RFC 9112 §2.2: a server SHOULD ignore empty lines received before the request line.
fn leading_empty_lines(buf: &[u8]) -> usize {
    let mut at = 0;
    loop {
        if buf[at..].starts_with(b"\r\n") {
            at += 2;
        } else if buf[at..].starts_with(b"\n") {
            at += 1;
        } else {
            return at;
        }
    }
}

/// httparse knows only `HTTP/1.0` and `HTTP/1.1`. Decide between a later 1.x (served as 1.1),
/// a version we do not speak (505) and a malformed line (400).
fn classify_version(buf: &[u8]) -> Result<Parsed, Retry> {
    let start = leading_empty_lines(buf);
    let Some(line_len) = buf[start..].iter().position(|&b| b == b'\n') else {
        return Err(Retry::NeedMore);
    };
    let line = buf[start..start + line_len]
        .strip_suffix(b"\r")
        .unwrap_or(&buf[start..start + line_len]);
    let Some(space) = line.iter().rposition(|&b| b == b' ') else {
        return Ok(Parsed::Invalid(Status::BadRequest));
    };
    match line[space + 1..] {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor] if minor.is_ascii_digit() => {
            Err(Retry::AsHttp11(start + space + 1))
        }
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Ok(Parsed::Invalid(Status::VersionNotSupported))
        }
        _ => Ok(Parsed::Invalid(Status::BadRequest)),
    }
}

fn check_complete(request: &httparse::Request, buf: &[u8], len: usize, limits: &Limits) -> Parsed {
    let (Some(method), Some(target), Some(minor)) = (request.method, request.path, request.version) else {
        return Parsed::Invalid(Status::BadRequest);
    };
    let target = target.as_bytes();
    if target.len() > limits.max_target {
        return Parsed::Invalid(Status::UriTooLong);
    }
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let fields = match Fields::read(request.headers, version, buf) {
        Ok(fields) => fields,
        Err(status) => return Parsed::Invalid(status),
    };
    if let Some(Framing::Length(n)) = fields.framing {
        if n > limits.max_body {
            return Parsed::Invalid(Status::ContentTooLarge);
        }
    }
    let intent = match decide_intent(method, target) {
        Ok(intent) => intent,
        Err(status) => return Parsed::Invalid(status),
    };
    let intent = match intent {
        // Turn the path slice into offsets, so the head does not borrow the buffer.
        Target::Path(path) => Intent::Serve {
            method: match method {
                "HEAD" => Method::Head,
                "OPTIONS" => Method::Options,
                _ => Method::Get,
            },
            path: offset_in(buf, target) + path.start..offset_in(buf, target) + path.end,
        },
        Target::Refused(status) => Intent::Refuse(status),
    };
    Parsed::Complete {
        head: Head {
            version,
            keep_alive: fields.keep_alive(version),
            framing: fields.framing,
            expects_continue: fields.expects_continue,
            intent,
            fields: fields.values,
            spans: RequestSpans {
                method: (offset_in(buf, method.as_bytes()), method.len()),
                target: (offset_in(buf, target), target.len()),
            },
        },
        len,
    }
}

/// Where `part`, a slice httparse returned from `buf`, starts in it.
fn offset_in(buf: &[u8], part: &[u8]) -> usize {
    part.as_ptr() as usize - buf.as_ptr() as usize
}

/// What the header fields say about framing and persistence.
#[derive(Debug, Default)]
struct Fields {
    framing: Option<Framing>,
    close: bool,
    keep_alive: bool,
    expects_continue: bool,
    values: FieldValues,
}

impl Fields {
    fn read(headers: &[httparse::Header], version: Version, buf: &[u8]) -> Result<Fields, Status> {
        let mut fields = Fields::default();
        let mut hosts = 0;
        let mut length: Option<u64> = None;
        let mut codings = Codings::default();
        for header in headers {
            let value = trim(header.value);
            let name = header.name;
            if name.eq_ignore_ascii_case("host") {
                hosts += 1;
                check_host(value)?;
                fields.values.note(Field::Host, buf, value);
            } else if name.eq_ignore_ascii_case("content-length") {
                length = Some(merge_content_length(length, value)?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                codings.add(value)?;
            } else if name.eq_ignore_ascii_case("connection") {
                for option in list(value) {
                    fields.close |= option.eq_ignore_ascii_case(b"close");
                    fields.keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
                }
            } else if name.eq_ignore_ascii_case("expect") {
                // RFC 9110 §10.1.1: the only expectation defined; any other is a 417.
                if !value.eq_ignore_ascii_case(b"100-continue") {
                    return Err(Status::ExpectationFailed);
                }
                fields.expects_continue = true;
            } else if let Some(field) = Field::named(name) {
                fields.values.note(field, buf, value);
            }
        }
        // RFC 9112 §3.2: a 1.1 request without exactly one Host is a 400.
        if (version == Version::Http11 && hosts != 1) || hosts > 1 {
            return Err(Status::BadRequest);
        }
        fields.framing = match (codings.seen, length) {
            // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
            (true, _) if version == Version::Http10 => return Err(Status::BadRequest),
            // RFC 9112 §6.3: both together may be request smuggling; reject.
            (true, Some(_)) => return Err(Status::BadRequest),
            (true, None) => Some(codings.framing()?),
            (false, Some(n)) => Some(Framing::Length(n)),
            (false, None) => None,
        };
        Ok(fields)
    }

    /// RFC 9112 §9.3: 1.1 persists unless `close`; 1.0 only with `keep-alive`.
    fn keep_alive(&self, version: Version) -> bool {
        match version {
            Version::Http11 => !self.close,
            Version::Http10 => self.keep_alive && !self.close,
        }
    }
}

/// RFC 9110 §8.6: `1*DIGIT`; a list of identical values may stand for one, differing values
/// (in one field or across several) are an error.
fn merge_content_length(previous: Option<u64>, value: &[u8]) -> Result<u64, Status> {
    let mut merged = previous;
    let mut any = false;
    for item in list(value) {
        any = true;
        let n = parse_decimal(item).ok_or(Status::BadRequest)?;
        if merged.is_some_and(|m| m != n) {
            return Err(Status::BadRequest);
        }
        merged = Some(n);
    }
    match (any, merged) {
        (true, Some(n)) => Ok(n),
        _ => Err(Status::BadRequest),
    }
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits
        .iter()
        .try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// Transfer codings seen across all Transfer-Encoding fields, in order.
#[derive(Debug, Default)]
struct Codings {
    seen: bool,
    unknown: bool,
    chunked_count: usize,
    last_is_chunked: bool,
}

impl Codings {
    fn add(&mut self, value: &[u8]) -> Result<(), Status> {
        self.seen = true;
        let mut any = false;
        for item in list(value) {
            any = true;
            // A coding may carry parameters: `gzip;q=1` names gzip.
            let name = trim(item.split(|&b| b == b';').next().unwrap_or(item));
            let chunked = name.eq_ignore_ascii_case(b"chunked");
            self.chunked_count += usize::from(chunked);
            self.last_is_chunked = chunked;
            self.unknown |= !chunked && !is_known_coding(name);
        }
        if any {
            Ok(())
        } else {
            Err(Status::BadRequest)
        }
    }

    /// RFC 9112 §6.1: chunked must be last and only once; an unknown coding is a 501.
    fn framing(&self) -> Result<Framing, Status> {
        if self.unknown {
            Err(Status::NotImplemented)
        } else if !self.last_is_chunked || self.chunked_count > 1 {
            Err(Status::BadRequest)
        } else {
            Ok(Framing::Chunked)
        }
    }
}

/// The codings registered with IANA for Transfer-Encoding besides chunked.
fn is_known_coding(name: &[u8]) -> bool {
    ["gzip", "x-gzip", "deflate", "compress", "x-compress"]
        .iter()
        .any(|known| name.eq_ignore_ascii_case(known.as_bytes()))
}

/// RFC 9110 §7.2: Host is `uri-host [ ":" port ]` (RFC 3986 §3.2.2); an empty value is
/// allowed. RFC 9112 §3.2 says a server MUST answer 400 to any other, and virtual hosts pick
/// a site by this value, so it is checked whole: a bracketed IP literal or a registered name
/// (without commas, which would make the field a list of hosts), then digits for a port.
pub(crate) fn check_host(value: &[u8]) -> Result<(), Status> {
    let (host, port) = split_port(value).ok_or(Status::BadRequest)?;
    let is_ip_literal = |host: &[u8]| {
        host.len() > 2
            && host
                .iter()
                .skip(1)
                .take(host.len() - 2)
                .all(|&b| b.is_ascii_alphanumeric() || b":.-_~!$&'()*+;=".contains(&b))
    };
    let is_reg_name = |host: &[u8]| {
        host.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+;=%".contains(&b))
    };
    let host_ok = if host.starts_with(b"[") {
        host.ends_with(b"]") && is_ip_literal(host)
    } else {
        is_reg_name(host)
    };
    let port_ok = port.is_none_or(|port| port.iter().all(u8::is_ascii_digit));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(Status::BadRequest)
    }
}

/// `host:port` → (`host`, `port`); `[::1]:80` → (`[::1]`, `80`). `None` for a second colon
/// outside brackets.
fn split_port(value: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let host_end = if value.starts_with(b"[") {
        value
            .iter()
            .position(|&b| b == b']')
            .map_or(value.len(), |i| i + 1)
    } else {
        value.iter().position(|&b| b == b':').unwrap_or(value.len())
    };
    let (host, rest) = value.split_at(host_end);
    match rest {
        [] => Some((host, None)),
        [b':', port @ ..] if !port.contains(&b':') => Some((host, Some(port))),
        _ => None,
    }
}

enum Target {
    /// The path's place in the target.
    Path(Range<usize>),
    Refused(Status),
}

/// The method decides who answers; the target form must suit it (RFC 9112 §3.2).
fn decide_intent(method: &str, target: &[u8]) -> Result<Target, Status> {
    match method {
        "GET" | "HEAD" => Ok(Target::Path(path_of(target)?)),
        // `OPTIONS *` asks about the server, not a resource: nothing a handler decides.
        "OPTIONS" if target != b"*" => Ok(Target::Path(path_of(target)?)),
        // RFC 9110 §9: methods this server knows but does not allow on static files.
        "POST" | "PUT" | "DELETE" | "CONNECT" | "OPTIONS" | "TRACE" | "PATCH" => {
            Ok(Target::Refused(Status::MethodNotAllowed))
        }
        // Methods are case-sensitive: `get` is simply unknown.
        _ => Ok(Target::Refused(Status::NotImplemented)),
    }
}

/// Where the path of an origin-form (`/a?q`) or absolute-form (`http://host/a?q`) target
/// lies in it; the query plays no part in finding a file.
fn path_of(target: &[u8]) -> Result<Range<usize>, Status> {
    let start = if target.starts_with(b"/") {
        0
    } else {
        path_start_after_authority(target).ok_or(Status::BadRequest)?
    };
    let end = target[start..]
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .map_or(target.len(), |i| start + i);
    Ok(start..end)
}

/// In `http://host[:port]/path`, where `/path` starts (possibly at the end: no path).
fn path_start_after_authority(target: &[u8]) -> Option<usize> {
    let scheme_end = target.iter().position(|&b| b == b':')?;
    let scheme = &target[..scheme_end];
    if !scheme.eq_ignore_ascii_case(b"http") && !scheme.eq_ignore_ascii_case(b"https") {
        return None;
    }
    let authority_start = scheme_end + b"://".len();
    if !target[scheme_end..].starts_with(b"://") {
        return None;
    }
    let authority_len = target[authority_start..]
        .iter()
        .position(|&b| b == b'/' || b == b'?' || b == b'#')
        .unwrap_or(target.len() - authority_start);
    (authority_len > 0).then_some(authority_start + authority_len)
}

/// The elements of a comma-separated field value, trimmed, empty ones skipped (RFC 9110 §5.6.1).
fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim)
        .filter(|item| !item.is_empty())
}

fn trim(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !is_ows(b)).map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// Parses `raw`, a whole head asking to serve a path, and runs `f` on the request; for the
/// tests of handlers.
#[cfg(test)]
pub(crate) fn with_request<T>(raw: &[u8], now: Instant, f: impl FnOnce(&Request<'_>) -> T) -> T {
    let mut head = raw.to_vec();
    let Parsed::Complete { head: parsed, .. } = parse(&mut head, &Limits::default()) else {
        panic!("not a whole head: {}", String::from_utf8_lossy(raw));
    };
    let Intent::Serve { method, path } = parsed.intent else {
        panic!("not a request to serve: {}", String::from_utf8_lossy(raw));
    };
    let (target_at, target_len) = parsed.spans.target;
    f(&Request {
        method,
        path: &head[path.clone()],
        now,
        target: &head[target_at..target_at + target_len],
        head: &head,
        fields: &parsed.fields,
        sni: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handler_sees_host_and_query_as_sent() {
        let cases: [(&str, Option<&str>, Option<&str>); 6] = [
            (
                "GET /a?q=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
                Some("example.com:8080"),
                Some("q=1"),
            ),
            (
                "GET /a?q=1#top HTTP/1.1\r\nHost: [::1]\r\n\r\n",
                Some("[::1]"),
                Some("q=1"),
            ),
            ("GET /a HTTP/1.1\r\nHost: a\r\n\r\n", Some("a"), None),
            ("GET /a? HTTP/1.1\r\nHost: a\r\n\r\n", Some("a"), Some("")),
            // RFC 9112 §3.2.2: the absolute form's authority, not Host.
            (
                "GET http://b.example/x?y HTTP/1.1\r\nHost: a\r\n\r\n",
                Some("b.example"),
                Some("y"),
            ),
            ("GET / HTTP/1.0\r\n\r\n", None, None),
        ];
        for (raw, host, query) in cases {
            with_request(raw.as_bytes(), Instant::now(), |request| {
                assert_eq!(request.host(), host.map(str::as_bytes), "{raw}");
                assert_eq!(request.query(), query.map(str::as_bytes), "{raw}");
            });
        }
    }

    fn parse_str(raw: &str) -> Parsed {
        parse(&mut raw.as_bytes().to_vec(), &Limits::default())
    }

    fn status_of(raw: &str) -> Option<u16> {
        match parse_str(raw) {
            Parsed::Invalid(status) => Some(status.code()),
            Parsed::Complete { head, .. } => match head.intent {
                Intent::Refuse(status) => Some(status.code()),
                Intent::Serve { .. } => Some(200),
            },
            Parsed::Partial => None,
        }
    }

    /// One table: raw head → the status the core answers with (200 = handed to the handler).
    #[test]
    fn head_rules() {
        let cases: &[(&str, Option<u16>)] = &[
            ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", Some(200)),
            ("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", Some(200)),
            ("GET / HTTP/1.0\r\n\r\n", Some(200)),
            ("GET / HTTP/1.1\r\nHost: a\r\n", None),
            ("GET / HTTP/1.1\r\n\r\n", Some(400)),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", Some(400)),
            ("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", Some(400)),
            ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", Some(400)),
            ("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", Some(400)),
            ("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", Some(200)),
            ("GET / HTTP/1.1\r\nHost:\r\n\r\n", Some(200)),
            ("GET/ HTTP/1.1\r\nHost: a\r\n\r\n", Some(400)),
            ("GET / HTTP/1.1 x\r\nHost: a\r\n\r\n", Some(400)),
            ("GET / HTTP/1.1\r\nHost a\r\n\r\n", Some(400)),
            ("GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", Some(400)),
            ("GET / HTTP/1.1\r\nHost: a\r\nB@d: x\r\n\r\n", Some(400)),
            ("GET / HTTP/1.1\r\nHost : a\r\n\r\n", Some(400)),
            ("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", Some(400)),
            ("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", Some(400)),
            ("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", Some(400)),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n",
                Some(400),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
                Some(400),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n",
                Some(400),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                Some(400),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\n",
                Some(400),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n",
                Some(200),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
                Some(400),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n",
                Some(413),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                Some(400),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
                Some(200),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                Some(200),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
                Some(200),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
                Some(400),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                Some(400),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
                Some(400),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n",
                Some(400),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo, chunked\r\n\r\n",
                Some(501),
            ),
            ("GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", Some(400)),
            ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", Some(505)),
            ("GET / HTTP/3.0\r\nHost: a\r\n\r\n", Some(505)),
            ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Some(505)),
            ("GET / HTTP/1.2\r\nHost: a\r\n\r\n", Some(200)),
            ("GET / HTTP/1\r\nHost: a\r\n\r\n", Some(400)),
            ("GET / FTP/1.1\r\nHost: a\r\n\r\n", Some(400)),
            ("GET / HTTP/2", None),
            ("POST / HTTP/1.1\r\nHost: a\r\n\r\n", Some(405)),
            ("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", Some(405)),
            ("OPTIONS / HTTP/1.1\r\nHost: a\r\n\r\n", Some(200)),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
                Some(200),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n\r\n",
                Some(200),
            ),
            ("GET / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n", Some(417)),
            ("GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", Some(400)),
            ("GET / HTTP/1.1\r\nHost: example.com:abc\r\n\r\n", Some(400)),
            ("GET / HTTP/1.1\r\nHost: example.com:80:81\r\n\r\n", Some(400)),
            ("GET / HTTP/1.1\r\nHost: example.com:\r\n\r\n", Some(200)),
            ("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", Some(400)),
            ("GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", Some(400)),
            ("GET / HTTP/1.1\r\nHost: []\r\n\r\n", Some(400)),
            ("GET / HTTP/1.1\r\nHost: [v1.fe80::a+en1]:8080\r\n\r\n", Some(200)),
            ("GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n", Some(200)),
            ("GET / HTTP/1.1\r\nHost: xn--fsq.example\r\n\r\n", Some(200)),
            ("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", Some(405)),
            ("BREW / HTTP/1.1\r\nHost: a\r\n\r\n", Some(501)),
            ("get / HTTP/1.1\r\nHost: a\r\n\r\n", Some(501)),
            ("GET * HTTP/1.1\r\nHost: a\r\n\r\n", Some(400)),
            ("GET a HTTP/1.1\r\nHost: a\r\n\r\n", Some(400)),
            ("GET ftp://a/b HTTP/1.1\r\nHost: a\r\n\r\n", Some(400)),
            ("GET http:///b HTTP/1.1\r\nHost: a\r\n\r\n", Some(400)),
        ];
        for (raw, expected) in cases {
            assert_eq!(status_of(raw), *expected, "for {raw:?}");
        }
    }

    fn served_path(raw: &str) -> String {
        let mut buf = raw.as_bytes().to_vec();
        match parse(&mut buf, &Limits::default()) {
            Parsed::Complete {
                head:
                    Head {
                        intent: Intent::Serve { path, .. },
                        ..
                    },
                ..
            } => String::from_utf8_lossy(&buf[path]).into_owned(),
            other => panic!("{raw:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn target_forms() {
        assert_eq!(served_path("GET /a/b?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"), "/a/b");
        assert_eq!(
            served_path("GET http://h/x.txt?q HTTP/1.1\r\nHost: h\r\n\r\n"),
            "/x.txt"
        );
        assert_eq!(
            served_path("GET HTTP://h:8000 HTTP/1.1\r\nHost: h\r\n\r\n"),
            "",
            "empty: /"
        );
        assert_eq!(
            served_path("GET https://h?q HTTP/1.1\r\nHost: h\r\n\r\n"),
            "",
            "empty: /"
        );
    }

    #[test]
    fn persistence() {
        let keep = |raw: &str| match parse_str(raw) {
            Parsed::Complete { head, .. } => head.keep_alive,
            other => panic!("{other:?}"),
        };
        assert!(keep("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(!keep("GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n"));
        assert!(!keep("GET / HTTP/1.1\r\nHost: a\r\nConnection: x, close\r\n\r\n"));
        assert!(!keep("GET / HTTP/1.0\r\n\r\n"));
        assert!(keep("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn size_limits() {
        let long_target = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(9000));
        assert_eq!(status_of(&long_target), Some(414));
        let unfinished_target = format!("GET /{}", "a".repeat(9000));
        assert_eq!(status_of(&unfinished_target), Some(414));
        let big_field = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "v".repeat(17_000));
        assert_eq!(status_of(&big_field), Some(431));
        let unfinished_field = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}", "v".repeat(17_000));
        assert_eq!(status_of(&unfinished_field), Some(431));
        let many: String = (0..MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            status_of(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")),
            Some(431)
        );
        let just_enough: String = (0..MAX_HEADERS - 1).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            status_of(&format!("GET / HTTP/1.1\r\nHost: a\r\n{just_enough}\r\n")),
            Some(200)
        );
    }
}
