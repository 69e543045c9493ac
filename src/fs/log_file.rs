//! The access log's file: the one file the server writes, outside ROOT by design.
//!
//! It is opened with O_APPEND, and every write is one batch of whole lines: the kernel puts
//! each write at the end of the file as a unit, so the worker processes of the forking models,
//! each with its own descriptor, never interleave their lines.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Opens (creating it if need be) the log file at `path` for appending.
pub fn open_log(path: &Path) -> io::Result<File> {
    OpenOptions::new().append(true).create(true).open(path)
}

/// Appends `lines` (whole lines) to the file at `path`, opened for this write alone: for a
/// process that writes rarely, which then needs no reopening after a rotation.
pub fn append_once(path: &Path, lines: &[u8]) -> io::Result<()> {
    open_log(path)?.write_all(lines)
}
