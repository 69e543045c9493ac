//! Reading a directory under ROOT for a listing.
//!
//! The directory was opened beneath ROOT by [`Root::lookup`](super::Root::lookup), so its
//! entries are read from that descriptor and never from a path. What is listed is what
//! a request could fetch: regular files and directories, including symlinks that lead to
//! one beneath ROOT. FIFOs, sockets, devices, dangling symlinks and symlinks leading
//! outside are left out, because a request for them is answered 404 anyway; and stating
//! an escaping link's target would tell a client the size and age of a file outside ROOT.

use std::cmp::Ordering;
use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, Dir, FileType, Stat};
use rustix::io::Errno;

use super::root::Root;

/// A directory beneath ROOT, open for reading its entries.
#[derive(Debug)]
pub struct Directory {
    /// The directory itself, from the same `openat2(RESOLVE_BENEATH)` (or checked) open
    /// as any file, and known to be a directory by `fstat` of this very descriptor.
    fd: OwnedFd,
    /// Symlinks inside the directory are resolved again from ROOT, with the site's
    /// resolver, so that a link is listed exactly when a request could follow it.
    root: Root,
    /// The directory's path relative to ROOT (`b""` for ROOT itself).
    relative: Vec<u8>,
}

/// One listed name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The raw file name: not necessarily UTF-8.
    pub name: Vec<u8>,
    pub is_dir: bool,
    /// The content length of a file; 0 for a directory, whose own size means nothing
    /// to a reader.
    pub size: u64,
    pub modified: SystemTime,
}

impl Directory {
    pub(super) fn new(fd: OwnedFd, root: Root, relative: Vec<u8>) -> Directory {
        Directory { fd, root, relative }
    }

    /// The entries that can be fetched, without `.` and `..`, dotfiles only when
    /// `hidden`: directories first, then by name (bytewise). A symlink is listed with
    /// what it leads to; one that dangles or leaves ROOT is skipped.
    pub fn entries(&self, hidden: bool) -> io::Result<Vec<Entry>> {
        // `read_from` opens its own descriptor for "." beneath `fd`, so every call starts
        // reading at the first entry.
        let mut entries = Vec::new();
        for item in Dir::read_from(&self.fd)? {
            let item = item?;
            let name = item.file_name().to_bytes();
            if !is_listed_name(name, hidden) {
                continue;
            }
            if let Some(entry) = self.entry(name)? {
                entries.push(entry);
            }
        }
        entries.sort_by(directories_first);
        Ok(entries)
    }

    /// `None` for a name that is gone since it was read, or that names nothing servable.
    fn entry(&self, name: &[u8]) -> io::Result<Option<Entry>> {
        let stat = match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            // Removed between reading the directory and stating the name.
            Err(Errno::NOENT) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let stat = if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink {
            match self.link_target(name)? {
                Some(target) => target,
                None => return Ok(None),
            }
        } else {
            stat
        };
        Ok(entry_from_stat(name, &stat))
    }

    /// What the symlink `name` leads to, when a request could follow it. Resolving
    /// `relative/name` from ROOT (not `statat` without `NOFOLLOW`, which would follow
    /// the link anywhere) keeps links leading outside ROOT out of the listing, and
    /// links to `../sibling` inside ROOT in it, exactly as `Root::lookup` treats them.
    fn link_target(&self, name: &[u8]) -> io::Result<Option<Stat>> {
        match self.root.stat_beneath(&child_path(&self.relative, name)) {
            Ok(stat) => Ok(Some(stat)),
            Err(error) if is_unreachable(&error) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

/// `.` and `..` are not entries a reader can use; dotfiles follow the `--hidden` rule
/// that `Root::lookup` applies to request paths.
fn is_listed_name(name: &[u8], hidden: bool) -> bool {
    if name == b"." || name == b".." {
        return false;
    }
    hidden || !name.starts_with(b".")
}

/// Errors that mean a link leads nowhere a request may go (dangling, a loop, out of
/// ROOT, not permitted), as opposed to the server itself failing (no descriptors left).
fn is_unreachable(error: &io::Error) -> bool {
    matches!(
        Errno::from_io_error(error),
        Some(
            Errno::NOENT
                | Errno::NOTDIR
                | Errno::LOOP
                | Errno::XDEV
                | Errno::NAMETOOLONG
                | Errno::ACCESS
                | Errno::PERM
        )
    )
}

fn child_path(dir_relative: &[u8], name: &[u8]) -> Vec<u8> {
    if dir_relative.is_empty() {
        return name.to_vec();
    }
    [dir_relative, b"/", name].concat()
}

/// An entry for a regular file or a directory; `None` for anything a request would be
/// refused (FIFOs, sockets, devices).
fn entry_from_stat(name: &[u8], stat: &Stat) -> Option<Entry> {
    let is_dir = match FileType::from_raw_mode(stat.st_mode) {
        FileType::Directory => true,
        FileType::RegularFile => false,
        _ => return None,
    };
    let size = if is_dir {
        0
    } else {
        u64::try_from(stat.st_size).unwrap_or(0)
    };
    Some(Entry {
        name: name.to_vec(),
        is_dir,
        size,
        modified: modified(stat),
    })
}

/// The modification time of `stat`, which may lie before 1970; the epoch when it cannot
/// be represented.
// The field types of `Stat` differ between architectures (`c_long` on one, `i64` or
// `u32` on another), so the casts that are no-ops here are needed elsewhere.
#[allow(clippy::unnecessary_cast)]
fn modified(stat: &Stat) -> SystemTime {
    let seconds = stat.st_mtime as i64;
    let nanoseconds = Duration::from_nanos(stat.st_mtime_nsec as u64);
    let whole = Duration::from_secs(seconds.unsigned_abs());
    let at_second = if seconds >= 0 {
        UNIX_EPOCH.checked_add(whole)
    } else {
        UNIX_EPOCH.checked_sub(whole)
    };
    at_second
        .and_then(|time| time.checked_add(nanoseconds))
        .unwrap_or(UNIX_EPOCH)
}

fn directories_first(a: &Entry, b: &Entry) -> Ordering {
    b.is_dir.cmp(&a.is_dir).then_with(|| a.name.cmp(&b.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{decode_path, Lookup, Resolver};
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::symlink;
    use std::path::Path;

    const RESOLVERS: [Resolver; 2] = [Resolver::Kernel, Resolver::Checked];

    /// `base/site` is ROOT and `base/site/list` the directory listed; `base/outside.txt`
    /// must stay invisible.
    fn tree() -> tempfile::TempDir {
        let base = tempfile::tempdir().unwrap();
        std::fs::write(base.path().join("outside.txt"), "outside!").unwrap();
        let site = base.path().join("site");
        std::fs::create_dir(&site).unwrap();
        std::fs::write(site.join("hello.txt"), "hello").unwrap();
        std::fs::create_dir(site.join("docs")).unwrap();

        let list = site.join("list");
        std::fs::create_dir(&list).unwrap();
        std::fs::write(list.join("b.txt"), "bb").unwrap();
        std::fs::write(list.join("a.txt"), "a").unwrap();
        std::fs::write(list.join("Z.txt"), "").unwrap();
        std::fs::create_dir(list.join("zdir")).unwrap();
        std::fs::create_dir(list.join("adir")).unwrap();
        std::fs::write(list.join(".env"), "secret").unwrap();
        std::fs::create_dir(list.join(".git")).unwrap();
        std::fs::write(list.join(OsStr::from_bytes(b"caf\xe9")), "raw").unwrap();
        // Links inside ROOT, even above the listed directory, are listed as what they
        // lead to; dangling and escaping ones are not listed at all.
        symlink("../hello.txt", list.join("up.txt")).unwrap();
        symlink("../docs", list.join("updocs")).unwrap();
        symlink("a.txt", list.join("same.txt")).unwrap();
        symlink("../../outside.txt", list.join("escape.txt")).unwrap();
        symlink("/etc/passwd", list.join("passwd")).unwrap();
        symlink("missing", list.join("dangling")).unwrap();
        symlink("loop", list.join("loop")).unwrap();
        rustix::fs::mkfifoat(rustix::fs::CWD, list.join("fifo"), rustix::fs::Mode::from(0o644)).unwrap();
        base
    }

    fn directory(site: &Path, resolver: Resolver, path: &str, hidden: bool) -> Directory {
        let root = Root::open_with(site, resolver).unwrap();
        match root.lookup(&decode_path(path.as_bytes()).unwrap(), hidden) {
            Lookup::Directory(directory) => directory,
            other => panic!("{path} with {resolver:?}: {other:?}"),
        }
    }

    fn summary(entries: &[Entry]) -> Vec<(String, bool, u64)> {
        entries
            .iter()
            .map(|entry| {
                let name = String::from_utf8_lossy(&entry.name).into_owned();
                (name, entry.is_dir, entry.size)
            })
            .collect()
    }

    fn owned(expected: &[(&str, bool, u64)]) -> Vec<(String, bool, u64)> {
        expected
            .iter()
            .map(|&(name, is_dir, size)| (name.to_owned(), is_dir, size))
            .collect()
    }

    #[test]
    fn lists_directories_first_then_files_by_name() {
        let base = tree();
        for resolver in RESOLVERS {
            let listed = directory(&base.path().join("site"), resolver, "/list/", false);
            let entries = listed.entries(false).unwrap();
            let expected = [
                ("adir", true, 0),
                ("updocs", true, 0),
                ("zdir", true, 0),
                ("Z.txt", false, 0),
                ("a.txt", false, 1),
                ("b.txt", false, 2),
                ("caf\u{fffd}", false, 3),
                ("same.txt", false, 1),
                ("up.txt", false, 5),
            ];
            assert_eq!(summary(&entries), owned(&expected), "{resolver:?}");
            let raw = entries.iter().find(|entry| entry.name.starts_with(b"caf"));
            assert_eq!(raw.map(|entry| entry.name.as_slice()), Some(&b"caf\xe9"[..]));
        }
    }

    #[test]
    fn dotfiles_only_when_hidden() {
        let base = tree();
        for resolver in RESOLVERS {
            let listed = directory(&base.path().join("site"), resolver, "/list/", false);
            let names: Vec<Vec<u8>> = listed
                .entries(true)
                .unwrap()
                .into_iter()
                .map(|entry| entry.name)
                .collect();
            assert_eq!(names[0], b".git", "{resolver:?}");
            assert!(names.contains(&b".env".to_vec()), "{resolver:?}");
            assert!(!names.contains(&b".".to_vec()) && !names.contains(&b"..".to_vec()));
        }
    }

    #[test]
    fn modification_times_are_the_targets() {
        let base = tree();
        let site = base.path().join("site");
        let hello = std::fs::metadata(site.join("hello.txt")).unwrap();
        let a = std::fs::metadata(site.join("list/a.txt")).unwrap();
        for resolver in RESOLVERS {
            let entries = directory(&site, resolver, "/list/", false)
                .entries(false)
                .unwrap();
            let modified = |name: &[u8]| {
                entries
                    .iter()
                    .find(|entry| entry.name == name)
                    .map(|entry| entry.modified)
            };
            assert_eq!(modified(b"up.txt"), Some(hello.modified().unwrap()));
            assert_eq!(modified(b"a.txt"), Some(a.modified().unwrap()));
        }
    }

    #[test]
    fn entries_can_be_read_again() {
        let base = tree();
        let listed = directory(&base.path().join("site"), Resolver::Kernel, "/list/", false);
        assert_eq!(listed.entries(false).unwrap(), listed.entries(false).unwrap());
    }

    #[test]
    fn root_lists_its_own_links() {
        let base = tempfile::tempdir().unwrap();
        std::fs::write(base.path().join("file"), "12345").unwrap();
        symlink("file", base.path().join("link")).unwrap();
        for resolver in RESOLVERS {
            let entries = directory(base.path(), resolver, "/", false)
                .entries(false)
                .unwrap();
            let expected = [("file", false, 5), ("link", false, 5)];
            assert_eq!(summary(&entries), owned(&expected), "{resolver:?}");
        }
    }

    #[test]
    fn times_before_the_epoch_survive() {
        let base = tempfile::tempdir().unwrap();
        let old = base.path().join("old");
        std::fs::write(&old, "").unwrap();
        let before = UNIX_EPOCH - Duration::from_secs(86_400);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(before)
            .unwrap();
        let entries = directory(base.path(), Resolver::Kernel, "/", false)
            .entries(false)
            .unwrap();
        assert_eq!(entries[0].modified, before);
    }
}
