//! Counting open connections against `--max-connections`: within one process, or across the
//! forked workers of `prefork`, whose own memory is private to each.

use crate::observe::OpenGauge;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// The connection limit of one server.
#[derive(Debug)]
pub(crate) struct ConnectionLimit {
    counts: Arc<Counts>,
}

#[derive(Debug)]
struct Counts {
    max: usize,
    open: AtomicUsize,
    /// Set in a forked worker: from then on it counts in memory all workers share.
    shared: OnceLock<WorkerTally>,
    /// `--metrics`: the gauge of open connections, moved with the count.
    gauge: Option<OpenGauge>,
}

/// A place under the limit, given back when dropped. It owns what it counts in, so it can
/// travel with its connection (through a queue, into a detached thread).
#[derive(Debug)]
pub(crate) struct Admission {
    counts: Arc<Counts>,
}

impl ConnectionLimit {
    pub fn new(max: usize, gauge: Option<OpenGauge>) -> ConnectionLimit {
        ConnectionLimit {
            counts: Arc::new(Counts {
                max,
                open: AtomicUsize::new(0),
                shared: OnceLock::new(),
                gauge,
            }),
        }
    }

    pub fn max(&self) -> usize {
        self.counts.max
    }

    /// Connections admitted and not yet ended, in this process.
    pub fn open(&self) -> usize {
        self.counts.open.load(Ordering::Relaxed)
    }

    /// A place for one more connection, or `None` at the limit.
    pub fn admit(&self) -> Option<Admission> {
        let total = self.counts.total();
        if total.fetch_add(1, Ordering::Relaxed) >= self.counts.max {
            total.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        // With a shared tally, the total was counted there: count here too, and the part
        // of the total this worker holds.
        if let Some(tally) = self.counts.shared.get() {
            self.counts.open.fetch_add(1, Ordering::Relaxed);
            tally.worker.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(gauge) = &self.counts.gauge {
            gauge.opened();
        }
        Some(Admission {
            counts: Arc::clone(&self.counts),
        })
    }

    /// In a forked worker, before it serves: count in the shared tally.
    pub fn count_in(&self, tally: WorkerTally) {
        // Set once per worker process; a second call would be a bug, and is ignored.
        let _ = self.counts.shared.set(tally);
    }
}

impl Counts {
    /// What the limit is checked against: this process's count, or all workers' together.
    fn total(&self) -> &AtomicUsize {
        match self.shared.get() {
            Some(tally) => tally.open,
            None => &self.open,
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(tally) = self.counts.shared.get() {
            tally.open.fetch_sub(1, Ordering::Relaxed);
            tally.worker.fetch_sub(1, Ordering::Relaxed);
        }
        self.counts.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(gauge) = &self.counts.gauge {
            gauge.closed();
        }
    }
}

/// One worker's view of a [`SharedTally`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct WorkerTally {
    open: &'static AtomicUsize,
    worker: &'static AtomicUsize,
}

/// Connection counts in memory shared by a `prefork` parent and its workers: the total,
/// which every worker checks and updates, and each worker's own part of it.
#[derive(Debug)]
pub(crate) struct SharedTally {
    /// `[0]` is the total, `[1 + i]` worker `i`'s part.
    counts: &'static [AtomicUsize],
}

impl SharedTally {
    pub fn new(workers: usize) -> io::Result<SharedTally> {
        use rustix::mm::{mmap_anonymous, MapFlags, ProtFlags};
        let len = (workers + 1) * size_of::<AtomicUsize>();
        // SAFETY: a fresh anonymous mapping aliases nothing. It is shared, so forked workers
        // see the same pages, and zero-filled, which is a valid `AtomicUsize` array; mmap
        // returns page-aligned memory. It is never unmapped: the `'static` borrow holds for
        // the life of the process (one page, once per server).
        let counts = unsafe {
            let memory = mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
            )?;
            std::slice::from_raw_parts(memory.cast::<AtomicUsize>(), workers + 1)
        };
        Ok(SharedTally { counts })
    }

    pub fn for_worker(&self, index: usize) -> WorkerTally {
        WorkerTally {
            open: &self.counts[0],
            worker: &self.counts[1 + index],
        }
    }

    /// Worker `index` died: its connections died with it, so their places are free again.
    pub fn forget_worker(&self, index: usize) {
        let held = self.counts[1 + index].swap(0, Ordering::Relaxed);
        self.counts[0].fetch_sub(held, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_and_gives_places_back() {
        let limit = ConnectionLimit::new(2, None);
        let first = limit.admit();
        let second = limit.admit();
        assert!(first.is_some() && second.is_some());
        assert!(limit.admit().is_none());
        drop(first);
        assert!(limit.admit().is_some());
    }

    #[test]
    fn workers_share_one_limit_and_a_dead_workers_places_come_back() {
        let tally = SharedTally::new(2).unwrap();
        let (a, b) = (ConnectionLimit::new(2, None), ConnectionLimit::new(2, None));
        a.count_in(tally.for_worker(0));
        b.count_in(tally.for_worker(1));
        let held_by_a = a.admit();
        assert!(held_by_a.is_some());
        let held_by_b = b.admit();
        assert!(held_by_b.is_some());
        assert!(
            a.admit().is_none() && b.admit().is_none(),
            "the limit is for all workers"
        );
        std::mem::forget(held_by_a); // worker 0 is killed: it never gives its place back
        tally.forget_worker(0);
        assert!(b.admit().is_some());
    }
}
