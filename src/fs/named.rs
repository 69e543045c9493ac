//! Files the operator names, outside ROOT, that the server reads whole at start: the TLS
//! certificate chain and its private key.

use std::io;
use std::path::Path;

/// The whole content of the file at `path`.
pub fn load_named(path: &Path) -> io::Result<Vec<u8>> {
    std::fs::read(path)
}
