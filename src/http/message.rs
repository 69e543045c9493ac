//! One request and its response as messages, for a protocol that frames them itself
//! (HTTP/2): the request is checked by the same rules as an HTTP/1.1 head, the same handler
//! answers it and the same shaping applies (304, 412, 206, 416), and the response comes back
//! as a status, its header fields and the pieces of its body. So the site answers alike
//! whatever the protocol; only the framing differs.

use super::clock::Clock;
use super::conn::{ask, Handler, Output, Settings, Transmit};
#[cfg(test)]
use super::reply::FieldName;
use super::reply::{self, FieldSink, Reply};
use super::request::{self, Intent, Limits, Method, Parsed, Request};
use super::shape::{shape, Layout, Shaped};
use super::status::Status;

/// A request as a multiplexed protocol carries it: its pseudo-header values and its fields,
/// names in lower case and values already checked for valid field content by the framing.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub method: &'a [u8],
    /// `:path`: the request target in origin form (`/a?q=1`), or `*`.
    pub path: &'a [u8],
    /// `:authority`, which stands for `Host` (RFC 9113 §8.3.1).
    pub authority: Option<&'a [u8]>,
}

/// A request HTTP/2 calls malformed (RFC 9113 §8.1.1): the stream is reset with
/// PROTOCOL_ERROR, not answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// The response to one [`Message`].
#[derive(Debug)]
pub struct Answer {
    response: Shaped,
    head_only: bool,
}

/// Answers `message`, whose other fields are `fields`, with `handler`: the same checks, the
/// same handler and the same shaping as an HTTP/1.1 request. `head` is scratch space for the
/// request written as an HTTP/1.1 head, the form the core's rules read; `sni`, the TLS
/// client's server name with `Settings::match_sni` (see `Request::sni`). `None` while the
/// handler is not [ready](Handler::ready) for it: ask again after
/// [`RETRY_LATER`](super::RETRY_LATER).
pub fn answer<'f>(
    message: Message<'_>,
    fields: impl Iterator<Item = (&'f [u8], &'f [u8])>,
    head: &mut Vec<u8>,
    limits: &Limits,
    sni: Option<&str>,
    clock: &Clock,
    handler: &impl Handler,
) -> Result<Option<Answer>, Malformed> {
    if message.method == b"CONNECT" && message.authority.is_none() {
        return Err(Malformed); // §8.5: CONNECT names its authority
    }
    write_head(message, fields, head)?;
    Ok(answer_head(head, limits, sni, clock, handler))
}

/// Answers the request written in `head`, unless the handler is not ready for it.
fn answer_head(
    head: &mut [u8],
    limits: &Limits,
    sni: Option<&str>,
    clock: &Clock,
    handler: &impl Handler,
) -> Option<Answer> {
    let parsed = request::parse(head, limits);
    let Parsed::Complete { head: parsed, .. } = parsed else {
        let status = match parsed {
            Parsed::Invalid(status) => status,
            _ => Status::BadRequest,
        };
        return Some(Answer::refusal(status));
    };
    match parsed.intent {
        Intent::Serve { method, path } => {
            let path = if path.is_empty() { b"/" } else { &head[path] };
            let (target_at, target_len) = parsed.spans.target;
            let request = Request {
                method,
                path,
                now: clock.now(),
                target: &head[target_at..target_at + target_len],
                head,
                fields: &parsed.fields,
                sni,
            };
            let reply = ask(handler, &request)?;
            Some(Answer {
                response: shape(reply, &request),
                head_only: method == Method::Head,
            })
        }
        Intent::Refuse(status) => Some(Answer::refusal(status)),
    }
}

/// `message` and `fields` as the HTTP/1.1 head that asks the same: `:authority` becomes
/// `Host` (a `Host` field beside it must name the same, RFC 9113 §8.3.1). A value with
/// whitespace at either end is malformed (§8.2.1).
fn write_head<'f>(
    message: Message<'_>,
    fields: impl Iterator<Item = (&'f [u8], &'f [u8])>,
    head: &mut Vec<u8>,
) -> Result<(), Malformed> {
    head.clear();
    head.extend_from_slice(message.method);
    head.push(b' ');
    head.extend_from_slice(message.path);
    head.extend_from_slice(b" HTTP/1.1\r\n");
    if let Some(authority) = message.authority {
        head.extend_from_slice(b"host: ");
        head.extend_from_slice(authority);
        head.extend_from_slice(b"\r\n");
    }
    for (name, value) in fields {
        let padded = |at: Option<&u8>| matches!(at, Some(b' ' | b'\t'));
        if padded(value.first()) || padded(value.last()) {
            return Err(Malformed);
        }
        if let (Some(authority), b"host") = (message.authority, name) {
            if !value.eq_ignore_ascii_case(authority) {
                return Err(Malformed);
            }
            continue;
        }
        head.extend_from_slice(name);
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    Ok(())
}

impl Answer {
    /// `status` with its page: a request the core refuses.
    fn refusal(status: Status) -> Answer {
        Answer {
            response: Shaped::whole(Reply::error(status)),
            head_only: false,
        }
    }

    pub fn status(&self) -> u16 {
        self.response.reply.status.code()
    }

    /// Gives `sink` the response's header fields, as HTTP/1.1 would send them less its
    /// connection management; what every response carries as `settings` say.
    pub fn write_fields(&self, sink: &mut impl FieldSink, clock: &Clock, settings: &Settings) {
        reply::write_fields(sink, &self.response, clock, settings);
    }

    /// Bytes of content this response sends: 0 for HEAD and 304.
    pub fn content_bytes(&self) -> u64 {
        match self.response.content_length() {
            Some(len) if !self.head_only => len,
            _ => 0,
        }
    }

    /// Whether the response ends with its head: HEAD, 304, an empty body.
    pub fn head_only(&self) -> bool {
        self.content_bytes() == 0 || self.response.layout == Layout::NotModified
    }

    /// The content: bytes in memory and ranges of an open file, in order.
    pub fn into_body(self) -> Pieces {
        let mut output = Output::default();
        if !self.head_only() {
            output.push_body(self.response);
        }
        Pieces { output }
    }
}

/// A response's content still to be sent, piece by piece.
#[derive(Debug, Default)]
pub struct Pieces {
    output: Output,
}

impl Pieces {
    pub fn is_empty(&self) -> bool {
        self.output.is_empty()
    }

    /// The next piece: bytes, or a range of an open file. Call only when not empty.
    pub fn front(&self) -> Transmit<'_> {
        self.output.front()
    }

    /// `n` bytes of the front piece went out.
    pub fn advance(&mut self, n: usize) {
        self.output.advance(n);
    }
}

#[cfg(test)]
mod tests {
    use super::super::reply::Body;
    use super::*;
    use std::borrow::Cow;
    use std::time::{Duration, Instant, UNIX_EPOCH};

    struct Echo;

    impl Handler for Echo {
        fn handle(&self, request: &Request<'_>) -> Reply {
            let host = request.host().map(<[u8]>::to_vec).unwrap_or_default();
            let mut body = request.path.to_vec();
            body.push(b' ');
            body.extend_from_slice(&host);
            Reply::ok(Cow::Borrowed("text/plain"), Body::Shared(body.into()))
        }
    }

    struct Fields(Vec<(FieldName, Vec<u8>)>);

    impl FieldSink for Fields {
        fn field(&mut self, name: FieldName, value: &[u8]) {
            self.0.push((name, value.to_vec()));
        }

        fn extra(&mut self, _: &str, _: &str) {
            unreachable!("the test handler adds no fields")
        }
    }

    fn ask(method: &str, path: &str, fields: &[(&str, &str)]) -> (u16, Vec<u8>) {
        let clock = Clock::new(UNIX_EPOCH + Duration::from_secs(784_111_777), Instant::now());
        let message = Message {
            method: method.as_bytes(),
            path: path.as_bytes(),
            authority: Some(b"example.com"),
        };
        let fields = fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()));
        let mut head = Vec::new();
        let answer = answer(
            message,
            fields,
            &mut head,
            &Limits::default(),
            None,
            &clock,
            &Echo,
        )
        .unwrap()
        .expect("the test handler is always ready");
        let status = answer.status();
        let mut pieces = answer.into_body();
        let mut body = Vec::new();
        while !pieces.is_empty() {
            let Transmit::Bytes { bytes, .. } = pieces.front() else {
                unreachable!("no files here")
            };
            let n = bytes.len();
            body.extend_from_slice(bytes);
            pieces.advance(n);
        }
        (status, body)
    }

    #[test]
    fn the_authority_is_the_host_and_the_handler_answers() {
        let (status, body) = ask("GET", "/a?q=1", &[("host", "Example.COM")]);
        assert_eq!(status, 200);
        assert_eq!(body, b"/a example.com");
    }

    #[test]
    fn methods_and_targets_are_refused_as_over_http1() {
        assert_eq!(ask("POST", "/", &[]).0, 405);
        assert_eq!(ask("BREW", "/", &[]).0, 501);
        assert_eq!(ask("GET", "*", &[]).0, 400);
    }

    #[test]
    fn malformed_requests_are_told_apart() {
        let clock = Clock::new(UNIX_EPOCH, Instant::now());
        let limits = Limits::default();
        let mut head = Vec::new();
        let mut ask = |message: Message<'_>, fields: &[(&[u8], &[u8])]| {
            let fields = fields.iter().copied();
            answer(message, fields, &mut head, &limits, None, &clock, &Echo).err()
        };
        let get = Message {
            method: b"GET",
            path: b"/",
            authority: Some(b"a.example"),
        };
        assert_eq!(ask(get, &[(b"accept", b" text/html")]), Some(Malformed));
        assert_eq!(ask(get, &[(b"accept", b"text/html\t")]), Some(Malformed));
        assert_eq!(ask(get, &[(b"host", b"b.example")]), Some(Malformed));
        assert_eq!(ask(get, &[(b"accept", b"text/html")]), None);
        let connect = Message {
            method: b"CONNECT",
            path: b"",
            authority: None,
        };
        assert_eq!(ask(connect, &[]), Some(Malformed));
    }

    #[test]
    fn fields_come_without_connection_management() {
        let clock = Clock::new(UNIX_EPOCH, Instant::now());
        let message = Message {
            method: b"HEAD",
            path: b"/x",
            authority: Some(b"h"),
        };
        let mut head = Vec::new();
        let answer = answer(
            message,
            std::iter::empty(),
            &mut head,
            &Limits::default(),
            None,
            &clock,
            &Echo,
        )
        .unwrap()
        .expect("the test handler is always ready");
        let mut fields = Fields(Vec::new());
        let settings = Settings {
            hsts: Some(60),
            ..Settings::default()
        };
        answer.write_fields(&mut fields, &clock, &settings);
        let names: Vec<FieldName> = fields.0.iter().map(|(name, _)| *name).collect();
        use FieldName::*;
        let expected = [
            Server,
            Date,
            ContentType,
            ContentLength,
            XContentTypeOptions,
            StrictTransportSecurity,
        ];
        assert_eq!(names, expected);
        assert_eq!(fields.0[3].1, b"4", "HEAD announces the length GET would have");
        assert!(answer.head_only());
        assert!(answer.into_body().is_empty());
    }
}
