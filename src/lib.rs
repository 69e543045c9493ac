//! bingfa (并发, "concurrency"): a static-file HTTP/1.1 server whose concurrency model is
//! chosen at the command line, every model driving one shared, sans-IO HTTP core.
//!
//! # Layout
//! - [`http`]: the protocol core. Bytes in, what to send out; no I/O, no clock.
//! - [`fs`]: the only code that touches the file system: safe URL-to-file mapping, metadata,
//!   the small-file cache.
//! - [`site`]: the core's handler for a static folder, joining the two.
//! - `models`: one file per concurrency model, moving bytes between sockets and the core.
//! - [`net`]: the sockets: TCP or Unix, bound here or passed in by systemd.
//! - [`server`]: configuration, listening, and running a model until [`Shutdown`].
//! - [`observe`]: the access log, metrics, and the log of events on stderr.
//! - [`cli`]: the command line.
//!
//! See ARCHITECTURE.md for the flow of one request and the invariants.

pub mod cli;
mod engine;
mod error;
pub mod fs;
pub mod http;
mod models;
pub mod net;
pub mod observe;
mod seam;
pub mod server;
mod shutdown;
pub mod site;

pub use error::Error;
pub use models::Model;
pub use net::{bind, Address, Listener};
pub use server::{serve, serve_handler, Config, Server};
pub use shutdown::Shutdown;
