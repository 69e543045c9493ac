//! An in-memory copy of small files, shared by all worker threads.
//!
//! Entries are keyed by (device, inode) and are only used while the `fstat` of the
//! file just opened still matches what was cached (size, mtime and ctime, both with
//! nanoseconds), so an edited or replaced file is read afresh.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, PoisonError, RwLock};

use super::root::{FileIdentity, OpenFile};

/// The whole content of one version of a file.
#[derive(Debug)]
pub struct CachedFile {
    pub identity: FileIdentity,
    pub bytes: Arc<[u8]>,
}

/// A bounded cache of small files.
#[derive(Debug)]
pub struct SmallFileCache {
    entries: RwLock<HashMap<(u64, u64), Arc<CachedFile>>>,
    max_file_size: u64,
    max_entries: usize,
}

impl SmallFileCache {
    pub fn new(max_file_size: u64, max_entries: usize) -> Self {
        SmallFileCache {
            entries: RwLock::new(HashMap::new()),
            max_file_size,
            max_entries,
        }
    }

    /// The whole content of `file` from memory when a current copy is cached;
    /// otherwise reads it (pread from offset 0, checking the length read matches
    /// `identity.len`) and caches it.
    ///
    /// `None` when the file is larger than `max_file_size`, or when it changed size
    /// while being read: such a file is neither cached nor returned, since its bytes
    /// would not match the identity; the caller serves it from the descriptor as it
    /// would a large file.
    pub fn get_or_read(&self, file: &OpenFile) -> io::Result<Option<Arc<CachedFile>>> {
        if file.identity.len > self.max_file_size {
            return Ok(None);
        }
        if let Some(cached) = self.current(&file.identity) {
            return Ok(Some(cached));
        }
        let Some(bytes) = read_whole(file)? else {
            return Ok(None);
        };
        let cached = Arc::new(CachedFile {
            identity: file.identity,
            bytes: bytes.into(),
        });
        self.insert(Arc::clone(&cached));
        Ok(Some(cached))
    }

    fn current(&self, identity: &FileIdentity) -> Option<Arc<CachedFile>> {
        // The map is valid after any panic (entries are inserted whole), so a
        // poisoned lock is still safe to use.
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(&key_of(identity))
            .filter(|cached| cached.identity == *identity)
            .map(Arc::clone)
    }

    /// Replaces a stale copy of the same file; adds a new file only while there is
    /// room. No eviction: the entry bound is only there to cap memory use.
    fn insert(&self, cached: Arc<CachedFile>) {
        let key = key_of(&cached.identity);
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.contains_key(&key) || entries.len() < self.max_entries {
            entries.insert(key, cached);
        }
    }
}

fn key_of(identity: &FileIdentity) -> (u64, u64) {
    (identity.dev, identity.ino)
}

/// Reads exactly `identity.len` bytes from offset 0; `None` when the file turns out
/// shorter or longer than that.
fn read_whole(file: &OpenFile) -> io::Result<Option<Vec<u8>>> {
    // `len` is at most `max_file_size`, which the caller chose to hold in memory.
    read_exact_len(&file.file, file.identity.len)
}

/// The whole content of `file` if it is still the version `identity` describes (for work
/// done off the loops, such as `--compress`): bytes read while the file was written belong
/// to no version, so its identity is looked at again after the read.
pub fn content_if_unchanged(file: &File, identity: &FileIdentity) -> io::Result<Option<Vec<u8>>> {
    let Some(bytes) = read_exact_len(file, identity.len)? else {
        return Ok(None);
    };
    Ok((FileIdentity::of(file)? == *identity).then_some(bytes))
}

/// Exactly `len` bytes from offset 0; `None` when the file is shorter or longer.
fn read_exact_len(file: &File, len: u64) -> io::Result<Option<Vec<u8>>> {
    let mut bytes = vec![0; usize::try_from(len).map_err(io::Error::other)?];
    match file.read_exact_at(&mut bytes, 0) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error),
    }
    if has_byte_at(file, len)? {
        return Ok(None);
    }
    Ok(Some(bytes))
}

fn has_byte_at(file: &File, offset: u64) -> io::Result<bool> {
    let mut probe = [0; 1];
    loop {
        match file.read_at(&mut probe, offset) {
            Ok(read) => return Ok(read > 0),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{decode_path, Lookup, Root};
    use std::path::Path;
    use std::time::{Duration, SystemTime};

    fn open(root: &Root, path: &str) -> OpenFile {
        match root.lookup(&decode_path(path.as_bytes()).unwrap(), false) {
            Lookup::File(file) => file,
            other => panic!("{path}: {other:?}"),
        }
    }

    fn site(files: &[(&str, &str)]) -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        let root = Root::open(dir.path()).unwrap();
        (dir, root)
    }

    fn set_modified(path: &Path, time: SystemTime) {
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(time).unwrap();
    }

    #[test]
    fn hit_returns_the_same_copy() {
        let (_dir, root) = site(&[("a.txt", "hello")]);
        let cache = SmallFileCache::new(1024, 8);
        let first = cache.get_or_read(&open(&root, "/a.txt")).unwrap().unwrap();
        let second = cache.get_or_read(&open(&root, "/a.txt")).unwrap().unwrap();
        assert_eq!(&*first.bytes, b"hello");
        assert!(Arc::ptr_eq(&first, &second));
    }

    #[test]
    fn changed_file_is_read_again() {
        let (dir, root) = site(&[("a.txt", "hello")]);
        let path = dir.path().join("a.txt");
        set_modified(&path, SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
        let cache = SmallFileCache::new(1024, 8);
        let first = cache.get_or_read(&open(&root, "/a.txt")).unwrap().unwrap();

        std::fs::write(&path, "HELLO").unwrap();
        set_modified(&path, SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000));
        let second = cache.get_or_read(&open(&root, "/a.txt")).unwrap().unwrap();

        assert_eq!(&*second.bytes, b"HELLO");
        assert!(!Arc::ptr_eq(&first, &second));
        let third = cache.get_or_read(&open(&root, "/a.txt")).unwrap().unwrap();
        assert!(
            Arc::ptr_eq(&second, &third),
            "the fresh copy replaced the stale one"
        );
    }

    #[test]
    fn large_file_is_not_cached() {
        let (_dir, root) = site(&[("big.txt", "0123456789"), ("fits.txt", "012345678")]);
        let cache = SmallFileCache::new(9, 8);
        assert!(cache.get_or_read(&open(&root, "/big.txt")).unwrap().is_none());
        assert!(cache.get_or_read(&open(&root, "/fits.txt")).unwrap().is_some());
    }

    #[test]
    fn empty_file_is_cached() {
        let (_dir, root) = site(&[("empty.txt", "")]);
        let cache = SmallFileCache::new(9, 8);
        let cached = cache.get_or_read(&open(&root, "/empty.txt")).unwrap().unwrap();
        assert!(cached.bytes.is_empty());
    }

    #[test]
    fn full_cache_serves_without_inserting() {
        let (_dir, root) = site(&[("a.txt", "a"), ("b.txt", "b")]);
        let cache = SmallFileCache::new(1024, 1);
        let a = cache.get_or_read(&open(&root, "/a.txt")).unwrap().unwrap();
        let b1 = cache.get_or_read(&open(&root, "/b.txt")).unwrap().unwrap();
        let b2 = cache.get_or_read(&open(&root, "/b.txt")).unwrap().unwrap();
        assert_eq!(&*b1.bytes, b"b");
        assert!(!Arc::ptr_eq(&b1, &b2), "b was not cached");
        let a_again = cache.get_or_read(&open(&root, "/a.txt")).unwrap().unwrap();
        assert!(Arc::ptr_eq(&a, &a_again), "a stayed cached");
    }

    #[test]
    fn file_that_changed_size_is_not_cached() {
        let (dir, root) = site(&[("shrinks.txt", "hello"), ("grows.txt", "hello")]);
        let cache = SmallFileCache::new(1024, 8);

        let shrinks = open(&root, "/shrinks.txt");
        std::fs::write(dir.path().join("shrinks.txt"), "he").unwrap();
        assert!(cache.get_or_read(&shrinks).unwrap().is_none());

        let grows = open(&root, "/grows.txt");
        std::fs::write(dir.path().join("grows.txt"), "hello world").unwrap();
        assert!(cache.get_or_read(&grows).unwrap().is_none());

        assert!(cache.entries.read().unwrap().is_empty());
    }

    #[test]
    fn shared_between_threads() {
        let (_dir, root) = site(&[("a.txt", "hello")]);
        let cache = SmallFileCache::new(1024, 8);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    let cached = cache.get_or_read(&open(&root, "/a.txt")).unwrap().unwrap();
                    assert_eq!(&*cached.bytes, b"hello");
                });
            }
        });
        assert_eq!(cache.entries.read().unwrap().len(), 1);
    }
}
