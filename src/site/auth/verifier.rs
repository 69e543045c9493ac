//! Password hashes checked off the event loops, and what they said kept for later requests.
//!
//! An argon2 or bcrypt check takes tens of milliseconds on purpose: done on an event loop, it
//! would stall every connection the loop serves. So the site hands each credential it has no
//! verdict for to one background thread per process (started on the first job, and again in
//! a process forked after it started, where it does not exist) and tells the core it is not
//! ready; the core asks again a little later, and by then the verdict is here.
//!
//! Verdicts are keyed by the rule and a keyed digest of the credential (see `Key`): the
//! password itself is kept only while its job waits, and wiped after the check. Passes and
//! failures are kept apart, each bounded and least recently used out, so a flood of wrong
//! passwords never pushes out the credentials of people who have them right, and a repeated
//! wrong password costs one hash, not one per request.

use super::PasswordHash;
pub use crate::site::worker::Queued;
use crate::site::worker::Worker;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use zeroize::Zeroizing;

/// Credentials waiting for the verifier; beyond this a request is answered 503 (Retry-After)
/// rather than queued: at tens of milliseconds a check, 64 is already seconds of work.
pub const QUEUE_CAPACITY: usize = 64;
/// Verdicts kept of each kind.
pub const PASSES_KEPT: usize = 1024;
pub const FAILURES_KEPT: usize = 1024;

/// A keyed digest (BLAKE3 keyed with a random key per server) of a `user:password`:
/// it tells credentials apart without keeping the password, and cannot be reversed or
/// computed by anyone without the key. Compared without an early exit: all of it, every time.
#[derive(Clone, Copy)]
pub struct Digest(pub [u8; 32]);

impl PartialEq for Digest {
    fn eq(&self, other: &Digest) -> bool {
        let word = |digest: &Digest, at: usize| {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(&digest.0[at..at + 8]);
            u64::from_ne_bytes(bytes)
        };
        let differ = [0, 8, 16, 24]
            .into_iter()
            .fold(0, |differ, at| differ | (word(self, at) ^ word(other, at)));
        differ == 0
    }
}

impl Eq for Digest {}

impl Hash for Digest {
    /// A digest's bytes are uniform already: eight of them make a good hash.
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(&self.0[..8]);
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Digest(..)")
    }
}

/// One credential for one `[[auth]]` rule (by its index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub rule: usize,
    pub digest: Digest,
}

/// What a job checks: the password against the user's hash. For a user the rule does not
/// name, the check runs against another user's hash and fails whatever it says, so that an
/// unknown name takes as long as a wrong password (no user names found by timing).
#[derive(Debug)]
pub struct Check {
    pub hash: Arc<PasswordHash>,
    pub password: Zeroizing<Vec<u8>>,
    pub known_user: bool,
}

impl Check {
    fn passes(&self) -> bool {
        let matches = self.hash.verify(&self.password);
        matches && self.known_user
    }
}

/// The verifier of one site: its verdicts, and the worker that checks passwords.
#[derive(Debug)]
pub struct Verifier {
    known: Arc<Known>,
    worker: Worker<Key, Check>,
}

/// The verdicts so far, kept apart by kind.
#[derive(Debug)]
struct Known {
    passes: Verdicts,
    failures: Verdicts,
}

impl Verifier {
    pub fn new() -> Verifier {
        let known = Arc::new(Known {
            passes: Verdicts::new(PASSES_KEPT),
            failures: Verdicts::new(FAILURES_KEPT),
        });
        let learned = Arc::clone(&known);
        Verifier {
            worker: Worker::new("auth", QUEUE_CAPACITY, move |key, check: Check| {
                let verdicts = if check.passes() {
                    &learned.passes
                } else {
                    &learned.failures
                };
                verdicts.insert(key);
                // `check` drops here, which wipes the password.
            }),
            known,
        }
    }

    /// Whether `key`'s credential passed (`Some(true)`), failed, or is not known (yet).
    pub fn verdict(&self, key: &Key) -> Option<bool> {
        if self.known.passes.contains(key) {
            Some(true)
        } else if self.known.failures.contains(key) {
            Some(false)
        } else {
            None
        }
    }

    /// Queues `key`'s check unless it is queued already; `check` is called only for a job
    /// that is queued (it copies the password). `Refused`: the queue is full, or no verifier
    /// thread could start (answer 503 now).
    pub fn request(&self, key: Key, check: impl FnOnce() -> Check) -> Queued {
        self.worker.request(key, || Some(check()))
    }
}

/// Keys of one kind of verdict, at most `capacity`, least recently used out.
#[derive(Debug)]
struct Verdicts {
    /// Each key's last use, on `clock`; updated under the read lock, so a hit takes no
    /// exclusive lock.
    entries: RwLock<HashMap<Key, AtomicU64, BuildHasherDefault<DigestHasher>>>,
    clock: AtomicU64,
    capacity: usize,
}

impl Verdicts {
    fn new(capacity: usize) -> Verdicts {
        Verdicts {
            entries: RwLock::new(HashMap::with_capacity_and_hasher(capacity, Default::default())),
            clock: AtomicU64::new(0),
            capacity,
        }
    }

    fn contains(&self, key: &Key) -> bool {
        // Keys are inserted and removed whole: the map is sound after any panic.
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let Some(last_used) = entries.get(key) else {
            return false;
        };
        last_used.store(self.tick(), Ordering::Relaxed);
        true
    }

    /// Keeps `key`, dropping the least recently used key if full. The scan for it is paid by
    /// the verifier thread, after a hash check that costs far more.
    fn insert(&self, key: Key) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            let oldest = entries
                .iter()
                .min_by_key(|(_, last_used)| last_used.load(Ordering::Relaxed))
                .map(|(key, _)| *key);
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
        entries.insert(key, AtomicU64::new(self.tick()));
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }
}

/// Hashes a `Key` as its bytes come (the rule, eight bytes of the digest) with no mixing: a
/// digest is uniform already, and unknown to anyone without the server's key, so a keyed
/// hash on top (std's SipHash) would cost more than the rest of a lookup and buy nothing.
#[derive(Debug, Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(word);
        }
    }
}

#[cfg(test)]
impl Verifier {
    /// As if this process's thread ran, but none does: jobs stay queued (for tests of a full
    /// queue).
    pub fn stall(&self) {
        self.worker.stall();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn key(rule: usize, byte: u8) -> Key {
        Key {
            rule,
            digest: Digest([byte; 32]),
        }
    }

    fn bcrypt_check(password: &str, known_user: bool) -> Check {
        let hash = bcrypt::hash("right", 4).unwrap();
        Check {
            hash: Arc::new(PasswordHash::parse(&hash).unwrap()),
            password: Zeroizing::new(password.as_bytes().to_vec()),
            known_user,
        }
    }

    /// Polls until the verifier has a verdict for `key` (bounded).
    fn wait_for(verifier: &Verifier, key: &Key) -> Option<bool> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let verdict = verifier.verdict(key);
            if verdict.is_some() || Instant::now() > deadline {
                return verdict;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn digests_compare_in_constant_time_and_by_every_byte() {
        let a = Digest([7; 32]);
        let mut b = a;
        assert_eq!(a, b);
        b.0[31] ^= 1;
        assert_ne!(a, b, "a difference in the last byte counts");
        assert_ne!(key(0, 7), key(1, 7), "another rule is another credential");
        assert_eq!(format!("{a:?}"), "Digest(..)", "never printed");
    }

    #[test]
    fn checked_off_the_caller_passes_and_failures_both_kept() {
        let verifier = Verifier::new();
        let (right, wrong, stranger) = (key(0, 1), key(0, 2), key(0, 3));
        assert_eq!(verifier.verdict(&right), None);
        assert_eq!(
            verifier.request(right, || bcrypt_check("right", true)),
            Queued::Waiting
        );
        verifier.request(wrong, || bcrypt_check("wrong", true));
        // The right password, for a name the rule does not have: still a failure.
        verifier.request(stranger, || bcrypt_check("right", false));
        assert_eq!(wait_for(&verifier, &right), Some(true));
        assert_eq!(wait_for(&verifier, &wrong), Some(false));
        assert_eq!(wait_for(&verifier, &stranger), Some(false));
        // Known now: asking again queues nothing.
        assert!(!verifier.worker.is_pending(&right));
    }

    #[test]
    fn duplicate_checks_are_queued_once_and_a_full_queue_refuses() {
        let verifier = Verifier::new();
        verifier.stall();
        let mut copies = 0;
        for _ in 0..3 {
            let queued = verifier.request(key(0, 1), || {
                copies += 1;
                bcrypt_check("a", true)
            });
            assert_eq!(queued, Queued::Waiting);
        }
        assert_eq!(copies, 1, "the password of a duplicate is not even copied");
        for byte in 2..=QUEUE_CAPACITY as u8 {
            assert_eq!(
                verifier.request(key(0, byte), || bcrypt_check("a", true)),
                Queued::Waiting
            );
        }
        assert_eq!(
            verifier.request(key(0, 200), || bcrypt_check("a", true)),
            Queued::Refused
        );
        assert_eq!(
            verifier.request(key(0, 1), || bcrypt_check("a", true)),
            Queued::Waiting,
            "one queued already still waits"
        );
        assert_eq!(verifier.worker.queued(), QUEUE_CAPACITY);
    }

    #[test]
    fn a_forked_process_starts_its_own_thread() {
        let verifier = Verifier::new();
        // As a child sees it: the thread of another process, and that process's jobs.
        let stale = key(0, 9);
        verifier.worker.pretend_forked(stale);
        let fresh = key(0, 1);
        verifier.request(fresh, || bcrypt_check("right", true));
        assert_eq!(wait_for(&verifier, &fresh), Some(true));
        assert!(!verifier.worker.is_pending(&stale));
    }

    #[test]
    fn verdicts_are_bounded_least_recently_used_out() {
        let verdicts = Verdicts::new(3);
        for byte in 1..=3 {
            verdicts.insert(key(0, byte));
        }
        assert!(verdicts.contains(&key(0, 1)));
        verdicts.insert(key(0, 4));
        assert!(!verdicts.contains(&key(0, 2)), "the least recently used went");
        for byte in [1, 3, 4] {
            assert!(verdicts.contains(&key(0, byte)), "{byte}");
        }
        assert_eq!(verdicts.entries.read().unwrap().len(), 3);
    }
}
