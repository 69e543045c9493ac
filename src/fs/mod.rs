//! Everything that touches the file system: mapping a request path to a file under
//! ROOT, reading a directory for a listing, and keeping small files in memory.
//!
//! Invariant: this is the only module of the server that opens files, and it can
//! only open regular files (and directories, to list them) beneath ROOT. Request
//! paths are decoded and normalized purely lexically ([`decode_path`]), then opened
//! relative to a descriptor of ROOT with `openat2(RESOLVE_BENEATH)` so the kernel
//! refuses any escape, whatever the spelling (`..`, encoded dots or slashes,
//! symlinks). Where `openat2` is not available a checked resolver (canonicalize, then
//! prefix check) takes its place. The one file written, the access log, is the exception
//! the operator names (`log_file`), and the TLS certificate and key it reads (`named`); and
//! the state directory of automatic HTTPS (`state`), also the operator's, where the server
//! keeps its ACME account and the certificates it obtained.

mod cache;
mod listing;
mod log_file;
mod named;
mod path;
mod root;
mod state;

pub use cache::{content_if_unchanged, CachedFile, SmallFileCache};
pub use listing::{Directory, Entry};
pub use log_file::{append_once, open_log};
pub use named::load_named;
pub use path::{decode_path, PathError, SitePath};
pub use root::{check_index_name, FileIdentity, Lookup, OpenFile, Resolver, Root, DEFAULT_INDEX};
pub use state::{StateDir, StateLock};
