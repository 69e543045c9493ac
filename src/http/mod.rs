//! The HTTP/1.1 core, sans-IO: bytes in, what to send out, whether to keep the connection.
//!
//! It does no I/O and reads no clock: time arrives as a [`Clock`], files are reached only
//! through the [`Handler`] a caller passes in, and the caller moves the bytes. Every
//! concurrency model drives the same [`Connection`].
//!
//! - `request`: one request head, parsed by httparse and checked against RFC 9112/9110.
//! - `body`: finding where a request body ends, so it can be dropped.
//! - `conn`: the connection state machine: pipelining, persistence, timeouts, output queue.
//! - `message`: one request and its response as messages, for HTTP/2's streams.
//! - `reply`: what a handler answers and how its head is written.
//! - `exchange`: what the handler is told of each answered request and of a TLS handshake,
//!   for logs and metrics.
//! - `forwarded`: the trusted proxies, and the client `X-Forwarded-For`/`Forwarded` name.

mod body;
mod clock;
mod conditional;
mod conn;
mod exchange;
mod forwarded;
mod message;
mod mime;
mod negotiate;
mod range;
mod reply;
mod request;
mod shape;
mod status;

pub use clock::Clock;
pub(crate) use conn::Arrival;
pub use conn::{Action, Connection, Handler, Settings, Transmit, RETRY_LATER};
pub use exchange::{Exchange, Handshake, HandshakeFailure, RequestLine, TlsSession, TlsVersion};
pub use forwarded::{Cidr, TrustedProxies};
pub use message::{answer, Answer, Malformed, Message, Pieces};
pub use mime::content_type;
pub use negotiate::{acceptable_codings, PRECOMPRESSED};
pub use reply::{
    Body, ConstantField, EntityTag, FieldList, FieldName, FieldSink, InvalidField, Reply, Validators,
};
#[cfg(test)]
pub(crate) use request::with_request;
pub use request::{Field, Limits, Method, Request};
pub use status::Status;
