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

#[derive(Debug)]
pub(super) struct HotFiles {
    entries: RwLock<HashMap<Box<[u8]>, HotFile>>,
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
    /// request does not ask for a choice the entry cannot make (an encoding, when a
    /// precompressed sibling or a compressed copy may exist).
    pub fn reply(&self, request: &Request<'_>) -> Option<Reply> {
        // The map is whole after any panic (entries are inserted whole): a poisoned lock is safe.
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let hot = entries.get(request.path)?;
        if hot.negotiates && request.field(Field::AcceptEncoding).is_some() {
            return None; // the full path negotiates
        }
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

    /// Keeps `hot` as the answer for `path` (raw, as in the request).
    pub fn insert(&self, path: &[u8], hot: HotFile) {
        if !self.is_on() {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.max_entries && !entries.contains_key(path) {
            entries.clear();
        }
        entries.insert(path.into(), hot);
    }
}

impl HotFile {
    fn reply(&self, request: &Request<'_>) -> Reply {
        Reply {
            extra_fields: self.fields.for_request(request),
            validators: Some(self.validators),
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
    fn an_encoding_choice_is_left_to_the_full_path() {
        let start = Instant::now();
        let files = HotFiles::new(Duration::from_secs(1), 8);
        files.insert(b"/a.js", hot(start, true));
        files.insert(b"/b.js", hot(start, false));
        let gzip = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n");
        assert_eq!(ask(&files, &gzip("/a.js"), start), None);
        assert_eq!(ask(&files, &gzip("/b.js"), start), Some(Status::Ok));
        assert_eq!(
            ask(&files, "GET /a.js HTTP/1.1\r\nHost: x\r\n\r\n", start),
            Some(Status::Ok)
        );
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
