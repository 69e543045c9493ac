//! The state directory (`--state-dir`): what the server keeps between runs for automatic
//! HTTPS — the ACME account, the certificates obtained and their keys, the challenge
//! certificate of an order in flight — and the lock that lets one process at a time order.
//!
//! Private by construction: the directory and every folder in it are made 0700, every file
//! 0600 (keys are in them). A file is replaced whole, never seen half-written by another
//! process: it is written beside its place under a temporary name, synced, then renamed over
//! it. Names inside come from the server (a CA's folder, a checked domain name), never from a
//! client; [`StateDir`] still refuses any that would leave the directory.

use rustix::fs::{flock, FlockOperation};
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Folders: only the server's user may list or enter them.
const PRIVATE_DIR: u32 = 0o700;
/// Files: only the server's user may read them.
const PRIVATE_FILE: u32 = 0o600;

/// A directory the server owns, made (with its parents) if missing.
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
}

/// A lock held on a file of the state directory until it is dropped (`flock`, so it goes
/// with the process too, however it ends).
#[derive(Debug)]
pub struct StateLock {
    _held: OwnedFd,
}

impl StateDir {
    /// Opens the state directory at `path`, making it 0700 if it does not exist. An existing
    /// one is left as the operator made it, but must be a directory.
    pub fn open(path: &Path) -> io::Result<StateDir> {
        DirBuilder::new().recursive(true).mode(PRIVATE_DIR).create(path)?;
        if !std::fs::metadata(path)?.is_dir() {
            return Err(io::Error::new(ErrorKind::NotADirectory, "not a directory"));
        }
        Ok(StateDir {
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The content of the file at `relative`, or `None` if there is none.
    pub fn read(&self, relative: &Path) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.inside(relative)?) {
            Ok(content) => Ok(Some(content)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces the file at `relative` with `content` (0600), its folders made 0700: written
    /// under a temporary name, synced, then renamed, so a reader sees the old file or the new.
    pub fn write(&self, relative: &Path, content: &[u8]) -> io::Result<()> {
        let path = self.inside(relative)?;
        let folder = path.parent().unwrap_or(&self.path);
        DirBuilder::new()
            .recursive(true)
            .mode(PRIVATE_DIR)
            .create(folder)?;
        let mut temporary = path.clone().into_os_string();
        temporary.push(format!(".{}.tmp", std::process::id()));
        let temporary = PathBuf::from(temporary);
        let written = write_synced(&temporary, content).and_then(|()| std::fs::rename(&temporary, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        written
    }

    /// Removes the file at `relative`; one that is already gone is fine.
    pub fn remove(&self, relative: &Path) -> io::Result<()> {
        match std::fs::remove_file(self.inside(relative)?) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The lock on the file at `relative` (made if missing), if no other process holds it.
    pub fn try_lock(&self, relative: &Path) -> io::Result<Option<StateLock>> {
        let path = self.inside(relative)?;
        if let Some(folder) = path.parent() {
            DirBuilder::new()
                .recursive(true)
                .mode(PRIVATE_DIR)
                .create(folder)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(PRIVATE_FILE)
            .open(&path)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(StateLock { _held: file.into() })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// `relative` beneath the directory: plain names only, no `..`, no absolute path.
    fn inside(&self, relative: &Path) -> io::Result<PathBuf> {
        let plain = relative.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain || relative.as_os_str().is_empty() {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                format!("{} is not a name inside the state directory", relative.display()),
            ));
        }
        Ok(self.path.join(relative))
    }
}

fn write_synced(path: &Path, content: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(PRIVATE_FILE)
        .open(path)?;
    // An existing temporary file keeps its mode through `open`; this one must be private.
    file.set_permissions(std::fs::Permissions::from_mode(PRIVATE_FILE))?;
    file.write_all(content)?;
    File::sync_all(&file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn folders_are_private_files_too_and_writes_replace_whole() {
        let temp = tempfile::tempdir().unwrap();
        let state = StateDir::open(&temp.path().join("a/bingfa")).unwrap();
        assert_eq!(mode(state.path()), 0o700);
        let file = Path::new("ca/example.com.pem");
        assert_eq!(state.read(file).unwrap(), None);
        state.write(file, b"one").unwrap();
        state.write(file, b"two").unwrap();
        assert_eq!(state.read(file).unwrap().as_deref(), Some(&b"two"[..]));
        assert_eq!(mode(&state.path().join("ca")), 0o700);
        assert_eq!(mode(&state.path().join(file)), 0o600);
        let names: Vec<_> = std::fs::read_dir(state.path().join("ca")).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left behind");
        state.remove(file).unwrap();
        state.remove(file).unwrap();
        assert_eq!(state.read(file).unwrap(), None);
    }

    #[test]
    fn names_that_leave_the_directory_are_refused() {
        let temp = tempfile::tempdir().unwrap();
        let state = StateDir::open(temp.path()).unwrap();
        for name in ["../x", "/etc/passwd", "a/../../x", ""] {
            assert!(state.write(Path::new(name), b"x").is_err(), "{name}");
            assert!(state.read(Path::new(name)).is_err(), "{name}");
        }
    }

    #[test]
    fn one_holder_of_a_lock_at_a_time() {
        let temp = tempfile::tempdir().unwrap();
        let state = StateDir::open(temp.path()).unwrap();
        let lock = Path::new("ca/lock");
        let held = state.try_lock(lock).unwrap().expect("free at first");
        // flock locks belong to the open file: a second open is another holder.
        assert!(state.try_lock(lock).unwrap().is_none());
        drop(held);
        assert!(state.try_lock(lock).unwrap().is_some());
    }
}
