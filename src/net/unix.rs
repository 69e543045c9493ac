//! `--bind unix:PATH`: a Unix stream socket at a path, typically behind a reverse proxy on the
//! same machine (no TCP, no port, and file permissions decide who may connect).
//!
//! A socket file outlives a server that was killed, and binding the path again then fails
//! although nobody listens. So a socket file found at the path is connected to first: if the
//! connection is refused, nobody listens and the file is removed; if it is accepted, another
//! server has the path. A file that is not a socket is never removed. When the server stops,
//! it removes its socket file, unless another has taken its place meanwhile.
//!
//! The file's permissions follow the umask, as nginx's do: connecting needs write
//! permission, so with the usual umask 022 only the server's user may connect.

use super::{Address, Kind, ListenError, Listener};
use socket2::{Domain, SockAddr, Socket, Type};
use std::fs;
use std::io::{self, ErrorKind};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Binds and listens on a Unix socket at `path`, first removing a stale socket file there.
pub(super) fn bind(path: &Path) -> Result<Listener, ListenError> {
    let fail = |source| ListenError::new(Address::Unix(path.to_path_buf()), source);
    remove_stale(path)?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM.cloexec(), None).map_err(fail)?;
    socket.bind(&SockAddr::unix(path).map_err(fail)?).map_err(fail)?;
    // From here on the file is ours: removed again if listening fails.
    let file = SocketFile::new(path).map_err(fail)?;
    socket.listen(4096).map_err(fail)?;
    Ok(Listener::new(socket, Kind::Unix, false, Some(file)))
}

/// Removes the socket file at `path` if nobody listens on it; fails if someone does, or if the
/// file there is not a socket.
fn remove_stale(path: &Path) -> Result<(), ListenError> {
    let address = || Address::Unix(path.to_path_buf());
    // Nothing there, or nothing this process may look at: `bind` says what is wrong.
    let Ok(found) = fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !found.file_type().is_socket() {
        let source = io::Error::new(
            ErrorKind::AlreadyExists,
            "a file that is not a socket is in the way",
        );
        return Err(ListenError::new(address(), source));
    }
    match listening(path) {
        Ok(true) => Err(ListenError::new(address(), ErrorKind::AddrInUse.into())),
        Ok(false) => fs::remove_file(path).map_err(|source| ListenError::new(address(), source)),
        Err(_) => Ok(()),
    }
}

/// Whether a server listens on the socket file at `path`. Non-blocking, so a live server with
/// a full backlog counts as listening instead of stalling the start.
fn listening(path: &Path) -> io::Result<bool> {
    let probe = Socket::new(Domain::UNIX, Type::STREAM.nonblocking().cloexec(), None)?;
    match probe.connect(&SockAddr::unix(path)?) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(true),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => Ok(false),
        Err(e) => Err(e),
    }
}

/// A socket file this process created (or was handed by the server it upgraded), removed
/// when dropped.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    /// Which file it is: another server may have put its own at the path since.
    dev: u64,
    ino: u64,
    /// Forked workers and children hold copies of the listener; they must leave the file.
    owner: u32,
}

impl SocketFile {
    fn new(path: &Path) -> io::Result<SocketFile> {
        let found = fs::symlink_metadata(path)?;
        Ok(SocketFile {
            path: std::path::absolute(path)?,
            dev: found.dev(),
            ino: found.ino(),
            owner: std::process::id(),
        })
    }

    /// The file of a listening Unix socket handed over by the server this one upgraded: ours
    /// to remove from now on. `None` for an abstract or unnamed socket, or a file gone.
    pub(super) fn of_handed_over(socket: &Socket) -> Option<SocketFile> {
        let addr = socket.local_addr().ok()?;
        SocketFile::new(addr.as_pathname()?).ok()
    }

    /// Leaves the file where it is: another process serves the socket now.
    pub fn keep(mut self) {
        self.owner = 0;
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if std::process::id() != self.owner {
            return;
        }
        let ours = fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == (self.dev, self.ino));
        if ours {
            // Left behind, it is removed as stale by the next start.
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::{UnixListener, UnixStream};

    #[test]
    fn binds_serves_and_removes_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = bind(&path).unwrap();
        assert_eq!(listener.urls().unwrap(), [format!("unix:{}", path.display())]);
        let _client = UnixStream::connect(&path).unwrap();
        let _accepted = listener.accept().unwrap();
        // A copy (a worker's) leaves the file; the original removes it.
        drop(listener.try_clone().unwrap());
        assert!(path.exists());
        drop(listener);
        assert!(!path.exists());
    }

    #[test]
    fn a_stale_socket_file_is_replaced_and_a_live_one_is_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let live = UnixListener::bind(&path).unwrap();
        let error = bind(&path).unwrap_err().to_string();
        assert!(error.ends_with("address already in use"), "{error}");
        assert!(error.contains(&format!("unix:{}", path.display())), "{error}");
        // Closed without removing its file, as a killed server leaves it.
        drop(live);
        assert!(path.exists());
        let listener = bind(&path).unwrap();
        let _client = UnixStream::connect(&path).unwrap();
        drop(listener);
    }

    #[test]
    fn a_file_that_is_not_a_socket_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        fs::write(&path, "keep me").unwrap();
        let error = bind(&path).unwrap_err().to_string();
        assert!(error.contains("not a socket"), "{error}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "keep me");
    }

    #[test]
    fn a_file_replaced_meanwhile_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = bind(&path).unwrap();
        fs::remove_file(&path).unwrap();
        let other = UnixListener::bind(&path).unwrap();
        drop(listener);
        assert!(path.exists(), "another server's socket file was removed");
        drop(other);
    }
}
