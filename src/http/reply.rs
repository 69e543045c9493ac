//! What a handler answers, and how the core turns it into a response head (RFC 9110 §6, RFC 9112 §4).

use super::clock::Clock;
use super::conn::Settings;
use super::shape::{Layout, Shaped};
use super::status::Status;
use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::Write;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A handler's answer to one request. The core adds the framing headers (`Date`, `Server`,
/// `Content-Length`, `Connection`), leaves the body out for HEAD, and — for a 200 that
/// carries [`Validators`] — answers conditional and range requests itself (304, 412, 206,
/// 416), so every handler and every model gets them alike.
#[derive(Debug)]
pub struct Reply {
    pub status: Status,
    pub content_type: Option<Cow<'static, str>>,
    /// `Location` of a redirect.
    pub location: Option<String>,
    pub body: Body,
    /// Validators of the representation in `body` (RFC 9110 §8.8); `None` for generated pages.
    pub validators: Option<Validators>,
    /// `Content-Encoding` of a precompressed body (`br`, `zstd`, `gzip`).
    pub content_encoding: Option<&'static str>,
    /// The request fields the choice of this body depended on (`Vary`, RFC 9110 §12.5.5).
    pub vary: Option<&'static str>,
    pub cache_control: Option<Arc<str>>,
    /// Fields the handler adds beyond the core's (a site's `--header` rules, CORS,
    /// `WWW-Authenticate`); a name here replaces the core's field of that name where the
    /// core allows it (see [`FieldList`]).
    pub extra_fields: Option<Arc<FieldList>>,
}

/// What identifies one version of a representation (RFC 9110 §8.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validators {
    pub etag: EntityTag,
    pub last_modified: SystemTime,
    /// `last_modified` as an HTTP date, formatted once rather than per response.
    last_modified_text: [u8; HTTP_DATE_LEN],
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`
const HTTP_DATE_LEN: usize = 29;

impl Validators {
    pub fn new(etag: EntityTag, last_modified: SystemTime) -> Validators {
        // httpdate panics before 1970, and a file's mtime can be anything.
        let latest = UNIX_EPOCH + std::time::Duration::from_secs(253_402_300_799); // 9999-12-31
        let shown = httpdate::HttpDate::from(last_modified.clamp(UNIX_EPOCH, latest));
        let mut last_modified_text = [b' '; HTTP_DATE_LEN];
        let mut room = &mut last_modified_text[..];
        // An HTTP date is always 29 bytes: the write fills the array exactly.
        let _ = write!(room, "{shown}");
        Validators {
            etag,
            last_modified,
            last_modified_text,
        }
    }
}

/// A strong entity tag, quotes included: `"1a2b-3c-4d5e6f"` (RFC 9110 §8.8.3). Kept inline,
/// so that making, copying and writing one allocates nothing on the hot path.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EntityTag {
    text: [u8; ENTITY_TAG_CAPACITY],
    len: u8,
}

/// Room for three 64-bit numbers in hex and then some.
const ENTITY_TAG_CAPACITY: usize = 80;

impl EntityTag {
    /// The strong tag `"opaque"`; `None` if `opaque` is too long or holds a character an
    /// entity tag cannot (a quote, a space, a control).
    pub fn strong(opaque: impl fmt::Display) -> Option<EntityTag> {
        let mut tag = EntityTag {
            text: [0; ENTITY_TAG_CAPACITY],
            len: 0,
        };
        tag.push(b"\"").ok()?;
        fmt::write(&mut tag, format_args!("{opaque}")).ok()?;
        tag.push(b"\"").ok()?;
        // etagc = %x21 / %x23-7E / obs-text
        let opaque = &tag.as_bytes()[1..tag.len as usize - 1];
        let valid = opaque
            .iter()
            .all(|&b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80);
        valid.then_some(tag)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.text[..usize::from(self.len)]
    }

    fn push(&mut self, bytes: &[u8]) -> fmt::Result {
        let start = usize::from(self.len);
        let end = start + bytes.len();
        let room = self.text.get_mut(start..end).ok_or(fmt::Error)?;
        room.copy_from_slice(bytes);
        self.len = end as u8; // end <= ENTITY_TAG_CAPACITY < 256
        Ok(())
    }
}

impl fmt::Write for EntityTag {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.push(text.as_bytes())
    }
}

impl fmt::Debug for EntityTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", String::from_utf8_lossy(self.as_bytes()))
    }
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
    /// A 200 with this body and nothing else said about it.
    pub fn ok(content_type: Cow<'static, str>, body: Body) -> Reply {
        Reply {
            status: Status::Ok,
            content_type: Some(content_type),
            location: None,
            body,
            validators: None,
            content_encoding: None,
            vary: None,
            cache_control: None,
            extra_fields: None,
        }
    }

    /// A status answered with its short HTML page.
    pub fn error(status: Status) -> Reply {
        Reply {
            status,
            ..Reply::ok(Cow::Borrowed(HTML), Body::Static(status.page()))
        }
    }

    /// 301 to `location` (RFC 9110 §15.4.2), e.g. a directory named without its slash.
    pub fn moved_permanently(location: String) -> Reply {
        Reply {
            location: Some(location),
            ..Reply::error(Status::MovedPermanently)
        }
    }

    /// 308 to `location` (RFC 9110 §15.4.9): the same request, there, from now on.
    pub fn permanent_redirect(location: String) -> Reply {
        Reply {
            location: Some(location),
            ..Reply::error(Status::PermanentRedirect)
        }
    }
}

const HTML: &str = "text/html; charset=utf-8";

/// Header fields a handler adds to a response, each checked when added, so that writing
/// them can never produce an invalid head. A field with an empty value is not sent: it
/// removes the core's field of that name (`Server`, `Cache-Control`,
/// `X-Content-Type-Options`), and otherwise says nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldList {
    fields: Vec<(Box<str>, Box<str>)>,
    /// The fields as an HTTP/1.1 head writes them, so that writing them is one copy.
    head_lines: Vec<u8>,
    /// The core's fields this list names, which the core then leaves out.
    replaces: Replaced,
}

/// Core fields a [`FieldList`] names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Replaced {
    server: bool,
    cache_control: bool,
    nosniff: bool,
}

/// Why a field cannot be added to a [`FieldList`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidField {
    #[error("{0:?} is not a valid header field name")]
    Name(String),
    #[error("the value of {0} is not valid header field content")]
    Value(String),
    #[error("{0} is set by the server itself (framing, validators or connection management)")]
    Reserved(String),
}

/// Fields only the core may write: framing, validators, the connection's management.
const RESERVED: [&str; 14] = [
    "connection",
    "content-length",
    "content-range",
    "content-encoding",
    "date",
    "etag",
    "keep-alive",
    "last-modified",
    "location",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

impl FieldList {
    /// Sets `name` to `value`, replacing an earlier field of that name (in any case).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), InvalidField> {
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(InvalidField::Name(name.to_owned()));
        }
        if RESERVED
            .iter()
            .any(|reserved| name.eq_ignore_ascii_case(reserved))
        {
            return Err(InvalidField::Reserved(name.to_owned()));
        }
        if !is_field_content(value.as_bytes()) {
            return Err(InvalidField::Value(name.to_owned()));
        }
        self.fields.retain(|(old, _)| !old.eq_ignore_ascii_case(name));
        self.fields.push((name.into(), value.into()));
        self.prepare();
        Ok(())
    }

    /// Every field of `other` set here, in its order.
    pub fn extend(&mut self, other: &FieldList) {
        for (name, value) in &other.fields {
            self.fields.retain(|(old, _)| !old.eq_ignore_ascii_case(name));
            self.fields.push((name.clone(), value.clone()));
        }
        self.prepare();
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The fields, in the order set, empty values (removals) included.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(name, value)| (&**name, &**value))
    }

    /// The value set for `name`, if any.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(set, _)| set.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }

    fn prepare(&mut self) {
        self.head_lines.clear();
        for (name, value) in self.fields.iter().filter(|(_, value)| !value.is_empty()) {
            self.head_lines
                .extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        self.replaces = Replaced {
            server: self.get("server").is_some(),
            cache_control: self.get("cache-control").is_some(),
            nosniff: self.get("x-content-type-options").is_some(),
        };
    }
}

/// RFC 9110 §5.6.2: `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 9110 §5.5: visible characters, spaces and tabs between them, none at either end.
fn is_field_content(value: &[u8]) -> bool {
    let allowed = |&b: &u8| b == b' ' || b == b'\t' || (0x21..=0x7e).contains(&b) || b >= 0x80;
    let padded = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    value.iter().all(allowed) && !padded(value.first()) && !padded(value.last())
}

/// Whether the response says it is the last one on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Persistence {
    /// HTTP/1.1 default: nothing to say.
    Implicit,
    /// An HTTP/1.0 client asked to keep the connection: confirm it.
    KeepAlive,
    Close,
}

/// A header field the core writes in a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldName {
    Server,
    Date,
    ContentType,
    ContentEncoding,
    ContentLength,
    ContentRange,
    AcceptRanges,
    ETag,
    LastModified,
    Vary,
    CacheControl,
    Location,
    Allow,
    StrictTransportSecurity,
    XContentTypeOptions,
}

impl FieldName {
    /// As an HTTP/1.1 head writes it, with the colon and the space after it, so that the
    /// head's writer copies one piece less per line.
    pub fn head_prefix(self) -> &'static str {
        match self {
            FieldName::Server => "Server: ",
            FieldName::Date => "Date: ",
            FieldName::ContentType => "Content-Type: ",
            FieldName::ContentEncoding => "Content-Encoding: ",
            FieldName::ContentLength => "Content-Length: ",
            FieldName::ContentRange => "Content-Range: ",
            FieldName::AcceptRanges => "Accept-Ranges: ",
            FieldName::ETag => "ETag: ",
            FieldName::LastModified => "Last-Modified: ",
            FieldName::Vary => "Vary: ",
            FieldName::CacheControl => "Cache-Control: ",
            FieldName::Location => "Location: ",
            FieldName::Allow => "Allow: ",
            FieldName::StrictTransportSecurity => "Strict-Transport-Security: ",
            FieldName::XContentTypeOptions => "X-Content-Type-Options: ",
        }
    }
}

/// A header field whose value never changes: an HTTP/1.1 head writes it as one piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConstantField {
    Server,
    AcceptRanges,
    Allow,
    NoSniff,
}

impl ConstantField {
    pub fn name(self) -> FieldName {
        match self {
            ConstantField::Server => FieldName::Server,
            ConstantField::AcceptRanges => FieldName::AcceptRanges,
            ConstantField::Allow => FieldName::Allow,
            ConstantField::NoSniff => FieldName::XContentTypeOptions,
        }
    }

    pub fn value(self) -> &'static str {
        match self {
            ConstantField::Server => "bingfa",
            ConstantField::AcceptRanges => "bytes",
            ConstantField::Allow => "GET, HEAD",
            ConstantField::NoSniff => "nosniff",
        }
    }

    /// The whole line of an HTTP/1.1 head.
    fn head_line(self) -> &'static str {
        match self {
            ConstantField::Server => "Server: bingfa\r\n",
            ConstantField::AcceptRanges => "Accept-Ranges: bytes\r\n",
            ConstantField::Allow => "Allow: GET, HEAD\r\n",
            ConstantField::NoSniff => "X-Content-Type-Options: nosniff\r\n",
        }
    }
}

/// Where a response's header fields go: an HTTP/1.1 head (`Name: value` lines), or the
/// field list of an HTTP/2 HEADERS frame (`http::message`).
pub trait FieldSink {
    /// `value` is valid field content.
    fn field(&mut self, name: FieldName, value: &[u8]);

    fn constant(&mut self, field: ConstantField) {
        self.field(field.name(), field.value().as_bytes());
    }

    /// A field a handler added (a [`FieldList`]'s), valid and not empty.
    fn extra(&mut self, name: &str, value: &str);

    fn extras(&mut self, list: &FieldList) {
        for (name, value) in list.iter().filter(|(_, value)| !value.is_empty()) {
            self.extra(name, value);
        }
    }
}

impl FieldSink for Vec<u8> {
    #[inline]
    fn field(&mut self, name: FieldName, value: &[u8]) {
        self.extend_from_slice(name.head_prefix().as_bytes());
        self.extend_from_slice(value);
        self.extend_from_slice(b"\r\n");
    }

    #[inline]
    fn constant(&mut self, field: ConstantField) {
        self.extend_from_slice(field.head_line().as_bytes());
    }

    fn extra(&mut self, name: &str, value: &str) {
        self.extend_from_slice(name.as_bytes());
        self.extend_from_slice(b": ");
        self.extend_from_slice(value.as_bytes());
        self.extend_from_slice(b"\r\n");
    }

    fn extras(&mut self, list: &FieldList) {
        self.extend_from_slice(&list.head_lines);
    }
}

/// Appends the head of `response` to `out`.
pub(crate) fn write_head(
    out: &mut Vec<u8>,
    response: &Shaped,
    clock: &Clock,
    persistence: Persistence,
    settings: &Settings,
) {
    out.extend_from_slice(response.reply.status.status_line().as_bytes());
    write_fields(out, response, clock, settings);
    match persistence {
        Persistence::Implicit => {}
        Persistence::KeepAlive => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        Persistence::Close => out.extend_from_slice(b"Connection: close\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// Gives `sink` every header field of `response` but those of HTTP/1.1's connection
/// management (`Connection`): the same fields, in the same order, whatever the protocol.
pub(crate) fn write_fields(sink: &mut impl FieldSink, response: &Shaped, clock: &Clock, settings: &Settings) {
    let reply = &response.reply;
    let replaced = reply
        .extra_fields
        .as_deref()
        .map_or(Replaced::default(), |list| list.replaces);
    if !replaced.server {
        sink.constant(ConstantField::Server);
    }
    sink.field(FieldName::Date, clock.date().as_bytes());
    let not_modified = response.layout == Layout::NotModified;
    if !not_modified {
        field(sink, FieldName::ContentType, reply.content_type.as_deref());
        field(sink, FieldName::ContentEncoding, reply.content_encoding);
    }
    if let Some(length) = response.content_length() {
        // itoa: a quarter of the cost of `write!`, on every response.
        sink.field(
            FieldName::ContentLength,
            itoa::Buffer::new().format(length).as_bytes(),
        );
    }
    // `bytes 18446744073709551615-18446744073709551615/18446744073709551615` fits.
    let mut text = [0u8; 80];
    match &response.layout {
        Layout::Single { range, size } => {
            let value = format_into(
                &mut text,
                format_args!("bytes {}-{}/{size}", range.start, range.end - 1),
            );
            sink.field(FieldName::ContentRange, value);
        }
        Layout::Unsatisfiable { size } => {
            let value = format_into(&mut text, format_args!("bytes */{size}"));
            sink.field(FieldName::ContentRange, value);
        }
        _ => {}
    }
    if let Some(validators) = &reply.validators {
        if !not_modified {
            sink.constant(ConstantField::AcceptRanges);
        }
        sink.field(FieldName::ETag, validators.etag.as_bytes());
        // RFC 9110 §15.4.5: a 304 with an ETag needs no other validator. §8.8.2.1: never
        // later than Date, even for a file stamped in the future.
        if !not_modified {
            let last_modified = if validators.last_modified > clock.wall() {
                clock.date().as_bytes()
            } else {
                &validators.last_modified_text
            };
            sink.field(FieldName::LastModified, last_modified);
        }
    }
    field(sink, FieldName::Vary, reply.vary);
    if !replaced.cache_control {
        field(sink, FieldName::CacheControl, reply.cache_control.as_deref());
    }
    field(sink, FieldName::Location, reply.location.as_deref());
    if reply.status == Status::MethodNotAllowed {
        sink.constant(ConstantField::Allow);
    }
    if settings.nosniff && !replaced.nosniff {
        sink.constant(ConstantField::NoSniff);
    }
    if let Some(list) = &reply.extra_fields {
        sink.extras(list);
    }
    if let Some(max_age) = settings.hsts {
        let value = format_into(&mut text, format_args!("max-age={max_age}"));
        sink.field(FieldName::StrictTransportSecurity, value);
    }
}

/// `args` written into `room`: the part written (all of it, for the short values here).
fn format_into<'a>(room: &'a mut [u8], args: std::fmt::Arguments<'_>) -> &'a [u8] {
    let capacity = room.len();
    let mut rest = &mut room[..];
    let _ = rest.write_fmt(args);
    let written = capacity - rest.len();
    &room[..written]
}

fn field(sink: &mut impl FieldSink, name: FieldName, value: Option<&str>) {
    if let Some(value) = value {
        sink.field(name, value.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_tags_are_quoted_and_checked() {
        let tag = EntityTag::strong(format_args!("{:x}-{:x}", 255, 16)).unwrap();
        assert_eq!(tag.as_bytes(), b"\"ff-10\"");
        assert!(EntityTag::strong("a\"b").is_none(), "a quote inside");
        assert!(EntityTag::strong("a b").is_none(), "a space");
        assert!(EntityTag::strong("").is_some(), "\"\" is a valid tag");
        let longest = "f".repeat(ENTITY_TAG_CAPACITY - 2);
        assert!(EntityTag::strong(&longest).is_some());
        assert!(
            EntityTag::strong(format!("{longest}f")).is_none(),
            "too long for the room"
        );
    }

    #[test]
    fn field_lists_check_and_replace() {
        let mut list = FieldList::default();
        list.set("X-Frame-Options", "DENY").unwrap();
        list.set("x-frame-options", "SAMEORIGIN").unwrap();
        list.set("Cache-Control", "no-store").unwrap();
        list.set("X-Content-Type-Options", "").unwrap();
        assert_eq!(
            String::from_utf8_lossy(&list.head_lines),
            "x-frame-options: SAMEORIGIN\r\nCache-Control: no-store\r\n",
            "one line per name, the last set wins, empty values not sent"
        );
        assert!(list.replaces.cache_control && list.replaces.nosniff && !list.replaces.server);
        assert!(matches!(list.set("Bad Name", "x"), Err(InvalidField::Name(_))));
        assert!(matches!(
            list.set("X", "a\r\nInjected: 1"),
            Err(InvalidField::Value(_))
        ));
        assert!(matches!(list.set("X", " padded"), Err(InvalidField::Value(_))));
        assert!(matches!(
            list.set("Content-Length", "1"),
            Err(InvalidField::Reserved(_))
        ));
        assert!(matches!(
            list.set("Transfer-Encoding", "chunked"),
            Err(InvalidField::Reserved(_))
        ));
    }

    #[test]
    fn last_modified_is_formatted_once_and_clamped() {
        let etag = EntityTag::strong("x").unwrap();
        let date = UNIX_EPOCH + std::time::Duration::from_secs(784_111_777);
        let validators = Validators::new(etag, date);
        assert_eq!(&validators.last_modified_text, b"Sun, 06 Nov 1994 08:49:37 GMT");
        let before_1970 = UNIX_EPOCH - std::time::Duration::from_secs(1);
        let validators = Validators::new(etag, before_1970);
        assert_eq!(&validators.last_modified_text, b"Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
