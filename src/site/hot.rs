//! Small files served a moment ago, found by the request's path: a hit answers with no system
//! call at all — no open, no stat, no close.
//!
//! An entry is trusted for `valid_for` after the file was last looked up (through the safe
//! resolver, its inode, size, mtime and ctime compared with the cached copy), as nginx's
//! `open_file_cache_valid` does. An edit therefore shows within that time rather than at once;
//! `valid_for` zero turns the cache off and every request looks the file up again.
//!
//! When an entry goes stale, the first request to see it looks the file up again; the others
//! meanwhile keep the old answer, for at most another `valid_for`. Otherwise, with thousands
//! of threads (the `thread` model), all would open the file at once the moment it expired.
//!
//! Entries are keyed by the raw (still percent-encoded) request path, so a hit does not even
//! decode it. Every spelling of a path was resolved safely once before it got an entry; a
//! flood of spellings only fills the table, which is then emptied and refilled.
//!
//! A file that negotiates (a `.br`/`.zst`/`.gz` sibling, or `--compress`) keeps, beside its
//! plain answer, the answer chosen for each `Accept-Encoding` value as sent: the choice is a
//! function of that value and of the file, so a browser's next request (which sends the same
//! value) is answered from memory in its encoding, as nginx's `gzip_static` with
//! `open_file_cache` does. A handful of values per path are kept; clients that each send a
//! value of their own take the full path.

use super::rules::PathFields;
use crate::http::{Body, Field, Reply, Request, Validators};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// A small file's whole answer, but for the framing the core adds.
#[derive(Debug)]
pub(super) struct HotFile {
    pub content_type: Cow<'static, str>,
    /// The coding `bytes` are in: a precompressed sibling's or a compressed copy's.
    pub content_encoding: Option<&'static str>,
    pub validators: Validators,
    pub bytes: Arc<[u8]>,
    pub cache_control: Option<Arc<str>>,
    /// A `.br`/`.zst`/`.gz` sibling exists, or `--compress` compresses the file: a request
    /// that accepts an encoding must choose.
    pub negotiates: bool,
    /// When the file was last looked up and found to be this version.
    pub checked_at: Instant,
    /// Set by the request that looks the file up again once the entry is stale.
    pub revalidating: AtomicBool,
    /// The site's rules' fields for this path, worked out once (see rules.rs).
    pub fields: Arc<PathFields>,
}

/// Every answer kept for one request path.
#[derive(Debug, Default)]
struct HotPath {
    /// The answer to a request that names no encoding, and to every request when the file
    /// has nothing to negotiate.
    plain: Option<HotFile>,
    /// The answer chosen for each `Accept-Encoding` value, as sent.
    by_accept: Vec<(Box<[u8]>, HotFile)>,
}

/// `Accept-Encoding` values remembered per path: browsers of one family send one value, and a
/// few families cover nearly all clients.
const ACCEPT_VALUES_PER_PATH: usize = 4;

#[derive(Debug)]
pub(super) struct HotFiles {
    entries: RwLock<HashMap<Box<[u8]>, HotPath>>,
    valid_for: Duration,
    max_entries: usize,
}

impl HotFiles {
    pub fn new(valid_for: Duration, max_entries: usize) -> HotFiles {
        HotFiles {
            entries: RwLock::new(HashMap::new()),
            valid_for,
            max_entries,
        }
    }

    /// The reply for `request` if its path was looked up less than `valid_for` ago and the
    /// answer for its `Accept-Encoding` is known.
    pub fn reply(&self, request: &Request<'_>) -> Option<Reply> {
        // The map is whole after any panic (entries are inserted whole): a poisoned lock is safe.
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let hot = entries.get(request.path)?.answer_for(request)?;
        let age = request.now.saturating_duration_since(hot.checked_at);
        let usable = age < self.valid_for
            || (age < self.valid_for * 2 && hot.revalidating.swap(true, Ordering::Relaxed));
        usable.then(|| hot.reply(request))
    }

    /// Forgets `path`: it no longer names a small file (gone, grown, now a directory).
    pub fn remove(&self, path: &[u8]) {
        let known = self
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(path);
        if known {
            self.entries
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(path);
        }
    }

    /// False with `valid_for` zero: nothing is kept, so there is no entry worth making.
    pub fn is_on(&self) -> bool {
        !self.valid_for.is_zero()
    }

    /// Keeps `hot` as the plain answer for `path` (raw, as in the request).
    pub fn insert(&self, path: &[u8], hot: HotFile) {
        self.update(path, |kept| {
            // Another version of the file: the encodings chosen for the old one are stale.
            if kept
                .plain
                .as_ref()
                .is_some_and(|old| old.validators != hot.validators)
            {
                kept.by_accept.clear();
            }
            kept.plain = Some(hot);
        });
    }

    /// Keeps `hot` as the answer for `path` to requests whose `Accept-Encoding` is `accept`.
    pub fn insert_chosen(&self, path: &[u8], accept: &[u8], hot: HotFile) {
        self.update(path, |kept| {
            match kept.by_accept.iter_mut().find(|(value, _)| **value == *accept) {
                Some((_, old)) => *old = hot,
                None => {
                    if kept.by_accept.len() >= ACCEPT_VALUES_PER_PATH {
                        kept.by_accept.remove(0);
                    }
                    kept.by_accept.push((accept.into(), hot));
                }
            }
        });
    }

    fn update(&self, path: &[u8], change: impl FnOnce(&mut HotPath)) {
        if !self.is_on() {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.max_entries && !entries.contains_key(path) {
            entries.clear();
        }
        match entries.get_mut(path) {
            Some(kept) => change(kept),
            None => change(entries.entry(path.into()).or_default()),
        }
    }
}

impl HotPath {
    /// The kept answer that fits `request`'s `Accept-Encoding`, if there is one. A range of a
    /// negotiated file is left to the full path, which answers it from the file as it is.
    fn answer_for(&self, request: &Request<'_>) -> Option<&HotFile> {
        let plain = self.plain.as_ref();
        let Some(accept) = request.field(Field::AcceptEncoding) else {
            return plain;
        };
        if plain.is_some_and(|plain| !plain.negotiates) {
            return plain;
        }
        if request.field(Field::Range).is_some() {
            return None;
        }
        let chosen = self.by_accept.iter().find(|(value, _)| **value == *accept);
        chosen.map(|(_, hot)| hot)
    }
}

impl HotFile {
    fn reply(&self, request: &Request<'_>) -> Reply {
        Reply {
            extra_fields: self.fields.for_request(request),
            validators: Some(self.validators),
            content_encoding: self.content_encoding,
            // Whether a precompressed variant was chosen depends on Accept-Encoding.
            vary: Some("Accept-Encoding"),
            cache_control: self.cache_control.clone(),
            ..Reply::ok(self.content_type.clone(), Body::Shared(Arc::clone(&self.bytes)))
        }
    }
}

#[cfg(test)]
impl HotFiles {
    pub(super) fn len(&self) -> usize {
        self.entries.read().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{EntityTag, Status};
    use std::time::UNIX_EPOCH;

    fn hot(at: Instant, negotiates: bool) -> HotFile {
        HotFile {
            content_type: Cow::Borrowed("text/plain"),
            content_encoding: None,
            validators: Validators::new(EntityTag::strong("2-5-3").unwrap(), UNIX_EPOCH),
            bytes: Arc::from(&b"hello"[..]),
            cache_control: None,
            negotiates,
            checked_at: at,
            revalidating: AtomicBool::new(false),
            fields: Arc::default(),
        }
    }

    /// Parses `raw` and asks `files` for a reply at `now`; `Some(status)` on a hit.
    fn ask(files: &HotFiles, raw: &str, now: Instant) -> Option<Status> {
        crate::http::with_request(raw.as_bytes(), now, |request| {
            files.reply(request).map(|reply| reply.status)
        })
    }

    #[test]
    fn trusted_for_the_validity_time_only() {
        let start = Instant::now();
        let files = HotFiles::new(Duration::from_secs(1), 8);
        files.insert(b"/a.txt", hot(start, false));
        let get = "GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(ask(&files, get, start), Some(Status::Ok));
        assert_eq!(
            ask(&files, get, start + Duration::from_millis(999)),
            Some(Status::Ok)
        );
        let stale = start + Duration::from_secs(1);
        assert_eq!(
            ask(&files, get, stale),
            None,
            "stale: the first to see it looks again"
        );
        assert_eq!(
            ask(&files, get, stale),
            Some(Status::Ok),
            "the others keep the old answer"
        );
        let later = start + Duration::from_secs(2);
        assert_eq!(ask(&files, get, later), None, "but not past twice the validity");
        assert_eq!(ask(&files, "GET /b.txt HTTP/1.1\r\nHost: x\r\n\r\n", start), None);
        files.remove(b"/a.txt");
        assert_eq!(ask(&files, get, start), None, "removed");
    }

    #[test]
    fn an_encoding_is_answered_from_memory_once_chosen_for_that_accept_encoding() {
        let start = Instant::now();
        let files = HotFiles::new(Duration::from_secs(1), 8);
        files.insert(b"/a.js", hot(start, true));
        files.insert(b"/b.js", hot(start, false));
        let with = |path: &str, accept: &str| {
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: {accept}\r\n\r\n")
        };
        let coding = |raw: &str| {
            crate::http::with_request(raw.as_bytes(), start, |request| {
                files.reply(request).map(|reply| reply.content_encoding)
            })
        };
        assert_eq!(
            coding(&with("/a.js", "gzip")),
            None,
            "not chosen yet: the full path"
        );
        assert_eq!(coding(&with("/b.js", "gzip")), Some(None), "nothing to negotiate");
        assert_eq!(coding("GET /a.js HTTP/1.1\r\nHost: x\r\n\r\n"), Some(None));

        let gzipped = HotFile {
            content_encoding: Some("gzip"),
            ..hot(start, true)
        };
        files.insert_chosen(b"/a.js", b"gzip", gzipped);
        assert_eq!(coding(&with("/a.js", "gzip")), Some(Some("gzip")));
        assert_eq!(coding(&with("/a.js", "br")), None, "another value chooses again");
        let range = "GET /a.js HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nRange: bytes=0-1\r\n\r\n";
        assert_eq!(coding(range), None, "a range takes the full path");

        for accept in ["br", "zstd", "deflate", "identity"] {
            files.insert_chosen(b"/a.js", accept.as_bytes(), hot(start, true));
        }
        assert_eq!(coding(&with("/a.js", "gzip")), None, "the oldest value made room");
        assert_eq!(coding(&with("/a.js", "identity")), Some(None));

        let edited = HotFile {
            validators: Validators::new(EntityTag::strong("2-6-3").unwrap(), UNIX_EPOCH),
            ..hot(start, true)
        };
        files.insert(b"/a.js", edited);
        assert_eq!(coding(&with("/a.js", "br")), None, "a new version chooses again");
    }

    #[test]
    fn zero_validity_keeps_nothing_and_a_full_table_starts_over() {
        let start = Instant::now();
        let off = HotFiles::new(Duration::ZERO, 8);
        off.insert(b"/a", hot(start, false));
        assert_eq!(off.len(), 0);

        let files = HotFiles::new(Duration::from_secs(1), 2);
        files.insert(b"/a", hot(start, false));
        files.insert(b"/b", hot(start, false));
        files.insert(b"/b", hot(start, false));
        assert_eq!(files.len(), 2, "replacing an entry needs no room");
        files.insert(b"/c", hot(start, false));
        assert_eq!(files.len(), 1, "emptied, then /c");
    }
}
