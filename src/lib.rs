//! bingfa (并发, "concurrency"): a static-file HTTP/1.1 server whose concurrency model is
//! chosen at the command line, every model driving one shared, sans-IO HTTP core.
//!
//! # Layout
//! From the top down; each layer names only those below it (see ARCHITECTURE.md).
//! - [`cli`]: the command line.
//! - [`server`]: wiring: configuration, the site, observation, and a model to run.
//! - `acme`: automatic HTTPS beside it: certificates from an ACME CA, obtained and renewed.
//! - `models`: one file per concurrency model, moving bytes between sockets and the seam.
//! - `engine`: what the models share: context, readiness driver, accept loops, event loop.
//! - [`seam`]: the connection seam, one `Link` per connection: transport (plaintext or TLS)
//!   and protocol.
//! - [`http`]: the protocol core. Bytes in, what to send out; no I/O, no clock.
//! - [`site`]: the core's handler for a static folder.
//! - [`fs`]: the only code that touches the file system: safe URL-to-file mapping, metadata,
//!   the small-file cache.
//!
//! Beside them: [`net`] (sockets, TCP or Unix, bound here or passed in by systemd),
//! [`Shutdown`], [`observe`] (access log, metrics, events on stderr) and [`Error`].
//!
//! See ARCHITECTURE.md for the flow of one request and the invariants.

mod acme;
pub mod cli;
mod engine;
mod error;
pub mod fs;
pub mod http;
mod models;
pub mod net;
pub mod observe;
pub mod seam;
pub mod server;
mod shutdown;
pub mod site;

pub use error::Error;
pub use models::Model;
pub use net::{bind, Address, Listener};
pub use server::{serve, serve_handler, Config, Server};
pub use shutdown::Shutdown;
