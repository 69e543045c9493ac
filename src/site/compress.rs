//! On-the-fly compression (`--compress`): text-like files without a precompressed sibling are
//! compressed once per version and coding, and the result kept in memory.
//!
//! Compressing a few MiB takes milliseconds, far too long to do on an event loop that serves
//! thousands of connections. So a request never waits for it: the site answers with the file
//! as it is and hands a job to one background thread per process, which reads the file,
//! compresses it and puts the result in the cache; later requests for that version get the
//! compressed bytes from memory. The thread is started on the first job a process hands over
//! (and again in a process forked after it started, where it does not exist), and stops when
//! the site is dropped.
//!
//! Entries are keyed by the file's identity (device, inode, size, times) and the coding: an
//! edited file has a new identity, so a stale result is never served; it ages out of the cache,
//! which drops the least recently used entries once its byte budget is reached.

use super::worker::Worker;
use crate::fs::{self, FileIdentity};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// Smaller files gain too little: a few hundred bytes saved cost a compressed copy in memory,
/// and the headers of the response are not much smaller than that.
pub const MIN_SIZE: u64 = 1024;
/// Jobs waiting for the compressor; beyond this a job is dropped (a later request asks again).
const QUEUE_CAPACITY: usize = 64;
/// What an entry costs the cache besides its bytes (the key, the map's slot), so that many
/// tiny entries are bounded too.
const ENTRY_OVERHEAD: u64 = 128;

/// The levels: each version of a file is compressed once and then served many times, but
/// until it is, its requests go uncompressed, so fast ones. On 1 MiB of real JavaScript and CSS
/// (this machine, release build, best of 5), compressed to / taking:
///   gzip 3 18.1% 9 ms, gzip 6 17.4% 20 ms, gzip 9 17.4% 32 ms;
///   brotli 4 10.9% 7 ms, brotli 5 9.7% 12 ms, brotli 6 9.6% 15 ms, brotli 11 8.5% 1 s;
///   zstd 1 12.8% 1.6 ms, zstd 3 11.1% 1.9 ms, zstd 6 10.2% 6.5 ms.
/// Each level chosen is where the next one up costs much more for little: 8 MiB in gzip 6, the
/// slowest, takes about 160 ms of the compressor thread.
const BROTLI_QUALITY: u32 = 5;
/// Brotli's window, 4 MiB (its default): RFC 7932 allows 16, which helps only larger files.
const BROTLI_WINDOW_BITS: u32 = 22;
const ZSTD_LEVEL: i32 = 3;
const GZIP_LEVEL: u32 = 6;

/// A content-coding the server can apply (RFC 9110 §8.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    Br,
    Zstd,
    Gzip,
}

impl Coding {
    /// The coding named `name`, as `http::acceptable_codings` names them.
    pub fn named(name: &str) -> Option<Coding> {
        match name {
            "br" => Some(Coding::Br),
            "zstd" => Some(Coding::Zstd),
            "gzip" => Some(Coding::Gzip),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
        }
    }

    fn compress(self, input: &[u8]) -> io::Result<Vec<u8>> {
        // About a third of the input is a fair first guess for text.
        let out = Vec::with_capacity(input.len() / 3);
        match self {
            Coding::Br => {
                let mut writer =
                    brotli::CompressorWriter::new(out, 64 * 1024, BROTLI_QUALITY, BROTLI_WINDOW_BITS);
                writer.write_all(input)?;
                writer.flush()?;
                Ok(writer.into_inner())
            }
            Coding::Zstd => zstd::bulk::compress(input, ZSTD_LEVEL),
            Coding::Gzip => {
                let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::new(GZIP_LEVEL));
                encoder.write_all(input)?;
                encoder.finish()
            }
        }
    }
}

/// Whether a response of this `Content-Type` is worth compressing: text, and the structured
/// text formats that are not `text/*` (JavaScript, JSON, XML, SVG), and WebAssembly, whose
/// code compresses well. Images, audio, video, fonts and archives are compressed already.
pub fn is_compressible(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || matches!(
            essence,
            "application/javascript" | "application/json" | "application/xml" | "application/wasm"
        )
}

/// One version of a file in one coding.
type Key = (FileIdentity, Coding);

/// What the cache knows of a key.
#[derive(Debug, PartialEq, Eq)]
pub enum Cached {
    /// The compressed bytes, smaller than the file.
    Compressed(Arc<[u8]>),
    /// Compressed, it was no smaller: send the file as it is.
    Incompressible,
    /// Not compressed yet (or no longer cached).
    Missing,
}

/// The content a job compresses: already in memory (a small file), or an open file to read.
#[derive(Debug)]
pub enum Source {
    Bytes(Arc<[u8]>),
    File(File),
}

/// The compressor of one site: its cache, and the worker that fills it.
#[derive(Debug)]
pub struct Compressor {
    cache: Arc<Cache>,
    worker: Worker<Key, Source>,
    /// Larger files are not compressed; never more than the cache holds.
    max_size: u64,
}

impl Compressor {
    /// Compresses files of up to `max_size` bytes, keeping up to `cache_size` bytes of results.
    pub fn new(max_size: u64, cache_size: u64) -> Compressor {
        let cache = Arc::new(Cache::new(cache_size));
        let filled = Arc::clone(&cache);
        Compressor {
            worker: Worker::new("compress", QUEUE_CAPACITY, move |key, source| {
                compress_into(&filled, key, source);
            }),
            cache,
            max_size: max_size.min(cache_size),
        }
    }

    /// Whether a file of this type and length is compressed.
    pub fn applies(&self, content_type: &str, len: u64) -> bool {
        (MIN_SIZE..=self.max_size).contains(&len) && is_compressible(content_type)
    }

    pub fn cached(&self, identity: &FileIdentity, coding: Coding) -> Cached {
        self.cache.get(&(*identity, coding))
    }

    /// Asks for the file `identity` in `coding`, unless that is asked for already or the
    /// queue is full (a later request asks again). `source` is called only for a job that
    /// is queued.
    pub fn request(&self, identity: &FileIdentity, coding: Coding, source: impl FnOnce() -> Option<Source>) {
        let _ = self.worker.request((*identity, coding), source);
    }
}

/// The worker's job: `source` compressed into `cache` under `key`. A file that changed or
/// cannot be read is left alone; a request for its new version asks again.
fn compress_into(cache: &Cache, key: Key, source: Source) {
    if cache.get(&key) != Cached::Missing {
        return;
    }
    if let Ok(Some(content)) = read(source, &key.0) {
        if let Ok(compressed) = key.1.compress(&content) {
            cache.insert(key, compressed, content.len());
        }
    }
}

/// The content of `source`, if it is still the version `identity` describes.
fn read(source: Source, identity: &FileIdentity) -> io::Result<Option<Arc<[u8]>>> {
    match source {
        Source::Bytes(bytes) => Ok(Some(bytes)),
        Source::File(file) => Ok(fs::content_if_unchanged(&file, identity)?.map(Arc::from)),
    }
}

/// Compressed results within a byte budget, least recently used out.
#[derive(Debug)]
struct Cache {
    entries: RwLock<Entries>,
    budget: u64,
    /// Ticks on every use: an entry's last tick orders it for eviction.
    clock: AtomicU64,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<Key, Entry>,
    /// The cost of all entries, at most the budget.
    used: u64,
}

#[derive(Debug)]
struct Entry {
    /// `None`: compressed, it was no smaller than the file.
    bytes: Option<Arc<[u8]>>,
    /// Updated under the read lock, so that a hit takes no exclusive lock.
    last_used: AtomicU64,
}

impl Entry {
    fn cost(&self) -> u64 {
        self.bytes.as_ref().map_or(0, |bytes| bytes.len() as u64) + ENTRY_OVERHEAD
    }
}

impl Cache {
    fn new(budget: u64) -> Cache {
        Cache {
            entries: RwLock::default(),
            budget,
            clock: AtomicU64::new(0),
        }
    }

    fn get(&self, key: &Key) -> Cached {
        // Entries are inserted and removed whole: the map is sound after any panic.
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let Some(entry) = entries.map.get(key) else {
            return Cached::Missing;
        };
        entry.last_used.store(self.tick(), Ordering::Relaxed);
        match &entry.bytes {
            Some(bytes) => Cached::Compressed(Arc::clone(bytes)),
            None => Cached::Incompressible,
        }
    }

    /// Keeps `compressed` (of a file of `original_len` bytes), making room by dropping the
    /// least recently used entries; an entry larger than the whole budget is not kept.
    fn insert(&self, key: Key, compressed: Vec<u8>, original_len: usize) {
        let entry = Entry {
            bytes: (compressed.len() < original_len).then(|| compressed.into()),
            last_used: AtomicU64::new(self.tick()),
        };
        let cost = entry.cost();
        if cost > self.budget {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = entries.map.remove(&key) {
            entries.used -= old.cost();
        }
        if entries.used + cost > self.budget {
            entries.evict(self.budget - cost);
        }
        entries.used += cost;
        entries.map.insert(key, entry);
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }
}

impl Entries {
    /// Drops the least recently used entries until at most `room` is used. Sorting them all is
    /// paid only when the cache is full, by the compressor thread, after a compression that
    /// costs far more.
    fn evict(&mut self, room: u64) {
        let mut by_age: Vec<(u64, Key)> = self
            .map
            .iter()
            .map(|(key, entry)| (entry.last_used.load(Ordering::Relaxed), *key))
            .collect();
        by_age.sort_unstable_by_key(|&(last_used, _)| last_used);
        for (_, key) in by_age {
            if self.used <= room {
                break;
            }
            if let Some(entry) = self.map.remove(&key) {
                self.used -= entry.cost();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::time::{Duration, Instant};

    fn identity(ino: u64, len: u64, mtime_sec: i64) -> FileIdentity {
        FileIdentity {
            dev: 1,
            ino,
            len,
            mtime_sec,
            mtime_nsec: 0,
            ctime_sec: mtime_sec,
            ctime_nsec: 0,
        }
    }

    fn text(len: usize) -> Vec<u8> {
        b"function hello(world) { return world + 1; }\n"
            .iter()
            .copied()
            .cycle()
            .take(len)
            .collect()
    }

    fn decompress(coding: Coding, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match coding {
            Coding::Br => brotli::Decompressor::new(bytes, 4096)
                .read_to_end(&mut out)
                .unwrap(),
            Coding::Zstd => zstd::stream::Decoder::new(bytes)
                .unwrap()
                .read_to_end(&mut out)
                .unwrap(),
            Coding::Gzip => flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap(),
        };
        out
    }

    /// Polls until the compressor has a result for `key` (bounded).
    fn wait_for(compressor: &Compressor, identity: &FileIdentity, coding: Coding) -> Cached {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let cached = compressor.cached(identity, coding);
            if cached != Cached::Missing || Instant::now() > deadline {
                return cached;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn every_coding_round_trips() {
        let input = text(100_000);
        for coding in [Coding::Br, Coding::Zstd, Coding::Gzip] {
            let compressed = coding.compress(&input).unwrap();
            assert!(
                compressed.len() < input.len() / 10,
                "{coding:?}: {}",
                compressed.len()
            );
            assert_eq!(decompress(coding, &compressed), input, "{coding:?}");
            assert_eq!(Coding::named(coding.name()), Some(coding));
        }
    }

    #[test]
    fn compressible_types() {
        for yes in [
            "text/html; charset=utf-8",
            "text/css; charset=utf-8",
            "text/javascript; charset=utf-8",
            "application/javascript; charset=utf-8",
            "application/json",
            "application/manifest+json",
            "image/svg+xml",
            "application/xml",
            "application/wasm",
        ] {
            assert!(is_compressible(yes), "{yes}");
        }
        for no in [
            "image/png",
            "image/jpeg",
            "font/woff2",
            "application/octet-stream",
            "application/gzip",
        ] {
            assert!(!is_compressible(no), "{no}");
        }
        let compressor = Compressor::new(8 << 20, 64 << 20);
        assert!(!compressor.applies("text/plain", MIN_SIZE - 1));
        assert!(compressor.applies("text/plain", MIN_SIZE));
        assert!(compressor.applies("text/plain", 8 << 20));
        assert!(!compressor.applies("text/plain", (8 << 20) + 1));
        assert!(!compressor.applies("image/png", 4096));
        let small_cache = Compressor::new(8 << 20, 4096);
        assert!(
            !small_cache.applies("text/plain", 4097),
            "never more than the cache holds"
        );
    }

    #[test]
    fn least_recently_used_out_within_the_budget() {
        let cache = Cache::new(3 * (1000 + ENTRY_OVERHEAD));
        let key = |ino| (identity(ino, 2000, 0), Coding::Gzip);
        for ino in 1..=3 {
            cache.insert(key(ino), vec![0; 1000], 2000);
        }
        // 1 is used, so 2 is the least recently used when 4 needs room.
        assert!(matches!(cache.get(&key(1)), Cached::Compressed(_)));
        cache.insert(key(4), vec![0; 1000], 2000);
        assert_eq!(cache.get(&key(2)), Cached::Missing);
        for ino in [1, 3, 4] {
            assert!(matches!(cache.get(&key(ino)), Cached::Compressed(_)), "{ino}");
        }
        // Twice the size: two entries go.
        cache.insert(key(5), vec![0; 2000], 2500);
        let kept: Vec<u64> = (1..=5)
            .filter(|&ino| cache.get(&key(ino)) != Cached::Missing)
            .collect();
        assert_eq!(kept, [4, 5]);
        let entries = cache.entries.read().unwrap();
        assert!(entries.used <= cache.budget);
        assert_eq!(entries.used, entries.map.values().map(Entry::cost).sum::<u64>());
        drop(entries);
        // Larger than the whole budget: not kept, and nothing evicted for it.
        cache.insert(key(6), vec![0; 4000], 5000);
        assert_eq!(cache.get(&key(6)), Cached::Missing);
        assert!(matches!(cache.get(&key(4)), Cached::Compressed(_)));
    }

    #[test]
    fn no_smaller_is_remembered_as_incompressible() {
        let cache = Cache::new(1 << 20);
        let key = (identity(1, 100, 0), Coding::Br);
        cache.insert(key, vec![0; 100], 100);
        assert_eq!(cache.get(&key), Cached::Incompressible);
    }

    #[test]
    fn compressed_off_the_caller_and_keyed_by_identity() {
        let compressor = Compressor::new(8 << 20, 64 << 20);
        let first = text(50_000);
        let v1 = identity(7, first.len() as u64, 100);
        assert_eq!(compressor.cached(&v1, Coding::Zstd), Cached::Missing);
        compressor.request(&v1, Coding::Zstd, || Some(Source::Bytes(first.clone().into())));
        let Cached::Compressed(bytes) = wait_for(&compressor, &v1, Coding::Zstd) else {
            panic!("never compressed");
        };
        assert_eq!(decompress(Coding::Zstd, &bytes), first);
        // The same file edited (same inode, new mtime): the old result is not its result.
        let second = text(40_000);
        let v2 = identity(7, second.len() as u64, 101);
        assert_eq!(compressor.cached(&v2, Coding::Zstd), Cached::Missing);
        assert_eq!(
            compressor.cached(&v1, Coding::Gzip),
            Cached::Missing,
            "another coding"
        );
        compressor.request(&v2, Coding::Zstd, || Some(Source::Bytes(second.clone().into())));
        let Cached::Compressed(bytes) = wait_for(&compressor, &v2, Coding::Zstd) else {
            panic!("never compressed");
        };
        assert_eq!(decompress(Coding::Zstd, &bytes), second);
    }

    #[test]
    fn a_file_is_read_only_while_it_is_the_version_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.js");
        let content = text(10_000);
        std::fs::write(&path, &content).unwrap();
        let file = File::open(&path).unwrap();
        let current = FileIdentity::of(&file).unwrap();
        let read_now = read(Source::File(file.try_clone().unwrap()), &current).unwrap();
        assert_eq!(read_now.as_deref(), Some(&content[..]));
        let older = FileIdentity {
            mtime_sec: current.mtime_sec - 1,
            ..current
        };
        assert_eq!(read(Source::File(file), &older).unwrap(), None);
    }

    #[test]
    fn duplicate_jobs_are_queued_once_and_a_full_queue_drops_jobs() {
        let compressor = Compressor::new(8 << 20, 64 << 20);
        // As if the thread ran, but none does: the jobs stay queued to be counted.
        compressor.worker.stall();
        let mut sources = 0;
        for _ in 0..3 {
            compressor.request(&identity(1, 5000, 0), Coding::Gzip, || {
                sources += 1;
                Some(Source::Bytes(text(5000).into()))
            });
        }
        assert_eq!(sources, 1, "the source of a duplicate is not even taken");
        compressor.request(&identity(1, 5000, 0), Coding::Br, || {
            Some(Source::Bytes(text(5000).into()))
        });
        assert_eq!(compressor.worker.queued(), 2, "another coding is another job");
        for ino in 2..200 {
            compressor.request(&identity(ino, 5000, 0), Coding::Gzip, || {
                Some(Source::Bytes(text(5000).into()))
            });
        }
        assert_eq!(compressor.worker.queued(), QUEUE_CAPACITY);
    }

    #[test]
    fn a_forked_process_starts_its_own_thread() {
        let compressor = Compressor::new(8 << 20, 64 << 20);
        // As a child sees it: the thread of another process, and that process's jobs.
        let stale = (identity(1, 5000, 0), Coding::Gzip);
        compressor.worker.pretend_forked(stale);
        let fresh = identity(2, 5000, 0);
        compressor.request(&fresh, Coding::Gzip, || Some(Source::Bytes(text(5000).into())));
        assert!(matches!(
            wait_for(&compressor, &fresh, Coding::Gzip),
            Cached::Compressed(_)
        ));
        assert!(!compressor.worker.is_pending(&stale));
    }
}
