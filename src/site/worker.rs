//! One background thread per process for the site's slow work (compressing a file, checking a
//! password), fed by a bounded queue that holds each job once: an event loop never waits on
//! it. A request asks for the work and is answered without it (`--compress` sends the file as
//! it is) or asked again a little later (`[[auth]]`, through `Handler::ready`).
//!
//! The thread starts with the first job of each process. A forking model's children
//! (`process`, `prefork`) inherit the queue but not the thread: each starts its own, and drops
//! the jobs its parent had queued, which only the parent's thread would have done.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// What became of a request for work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// Queued, now or by an earlier request, and not done yet: its result is on its way.
    Waiting,
    /// The queue is full or closed, no thread could start, or there was nothing to do: no
    /// result will come of this request.
    Refused,
}

/// A queue of jobs keyed by `K` and the thread that runs them.
pub struct Worker<K, J> {
    shared: Arc<Shared<K, J>>,
    /// Names the thread, and the work in a warning when the thread cannot start.
    name: &'static str,
    capacity: usize,
    run: Arc<dyn Fn(K, J) + Send + Sync>,
}

struct Shared<K, J> {
    queue: Mutex<Queue<K, J>>,
    /// Signalled when a job is queued or the worker closes.
    queued: Condvar,
}

struct Queue<K, J> {
    jobs: VecDeque<(K, J)>,
    /// The keys of the queued jobs and of the one running: each is done once.
    pending: HashSet<K>,
    /// The process whose thread runs: after a fork the thread is gone.
    thread_of: Option<u32>,
    closed: bool,
}

impl<K, J> Worker<K, J>
where
    K: Copy + Eq + Hash + Send + 'static,
    J: Send + 'static,
{
    /// A worker whose thread (`bingfa-NAME`) calls `run` with each job, up to `capacity` queued.
    pub fn new(name: &'static str, capacity: usize, run: impl Fn(K, J) + Send + Sync + 'static) -> Self {
        let queue = Queue {
            jobs: VecDeque::new(),
            pending: HashSet::new(),
            thread_of: None,
            closed: false,
        };
        Worker {
            shared: Arc::new(Shared {
                queue: Mutex::new(queue),
                queued: Condvar::new(),
            }),
            name,
            capacity,
            run: Arc::new(run),
        }
    }

    /// Queues the job `key` unless it is queued already; `job` is called only for a job that
    /// is queued (it may copy a file's bytes or a password), and `None` from it queues
    /// nothing.
    pub fn request(&self, key: K, job: impl FnOnce() -> Option<J>) -> Queued {
        let mut queue = self.shared.lock();
        if queue.pending.contains(&key) {
            return Queued::Waiting;
        }
        if queue.closed || queue.jobs.len() >= self.capacity || !self.ensure_thread(&mut queue) {
            return Queued::Refused;
        }
        let Some(job) = job() else {
            return Queued::Refused;
        };
        queue.pending.insert(key);
        queue.jobs.push_back((key, job));
        self.shared.queued.notify_one();
        Queued::Waiting
    }

    /// Starts this process's thread unless it runs; false if it cannot start.
    fn ensure_thread(&self, queue: &mut Queue<K, J>) -> bool {
        let pid = std::process::id();
        if queue.thread_of == Some(pid) {
            return true;
        }
        // Forked from a process whose thread ran: its jobs went with it.
        queue.jobs.clear();
        queue.pending.clear();
        let (shared, run) = (Arc::clone(&self.shared), Arc::clone(&self.run));
        let spawned = std::thread::Builder::new()
            .name(format!("bingfa-{}", self.name))
            .spawn(move || shared.work(&*run));
        match spawned {
            Ok(_) => {
                queue.thread_of = Some(pid);
                true
            }
            Err(error) => {
                tracing::warn!("{}: cannot start its thread: {error}", self.name);
                false
            }
        }
    }
}

impl<K, J> Drop for Worker<K, J> {
    /// The thread finishes the job at hand, if any, and ends; queued jobs are dropped.
    fn drop(&mut self) {
        let mut queue = self.shared.lock();
        queue.closed = true;
        queue.jobs.clear();
        self.shared.queued.notify_all();
    }
}

impl<K, J> fmt::Debug for Worker<K, J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("name", &self.name)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<K, J> Shared<K, J> {
    fn lock(&self) -> MutexGuard<'_, Queue<K, J>> {
        // The queue is whole after any panic (changed only in whole steps): poison is harmless.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<K: Copy + Eq + Hash, J> Shared<K, J> {
    /// The thread: one job after another until the worker is dropped.
    fn work(&self, run: &(dyn Fn(K, J) + Send + Sync)) {
        while let Some((key, job)) = self.next_job() {
            run(key, job);
            // Only now, so that no request queues it again while its result is on its way.
            self.lock().pending.remove(&key);
        }
    }

    fn next_job(&self) -> Option<(K, J)> {
        let mut queue = self.lock();
        loop {
            if queue.closed {
                return None;
            }
            if let Some(job) = queue.jobs.pop_front() {
                return Some(job);
            }
            queue = self.queued.wait(queue).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

#[cfg(test)]
impl<K: Eq + Hash, J> Worker<K, J> {
    /// As if this process's thread ran, but none does: jobs stay queued, to be counted.
    pub fn stall(&self) {
        self.shared.lock().thread_of = Some(std::process::id());
    }

    /// Jobs queued and not yet taken by the thread.
    pub fn queued(&self) -> usize {
        self.shared.lock().jobs.len()
    }

    pub fn is_pending(&self, key: &K) -> bool {
        self.shared.lock().pending.contains(key)
    }

    /// As a forked child sees its worker: the thread of another process, and a job of its.
    pub fn pretend_forked(&self, stale: K) {
        let mut queue = self.shared.lock();
        queue.thread_of = Some(std::process::id().wrapping_add(1));
        queue.pending.insert(stale);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn duplicates_are_queued_once_and_a_full_queue_refuses() {
        let worker = Worker::new("test", 3, |_: u8, _: ()| {});
        worker.stall();
        let mut made = 0;
        for _ in 0..3 {
            let queued = worker.request(1, || {
                made += 1;
                Some(())
            });
            assert_eq!(queued, Queued::Waiting);
        }
        assert_eq!(made, 1, "the job of a duplicate is not even made");
        assert_eq!(worker.request(2, || None), Queued::Refused, "nothing to do");
        assert_eq!(worker.request(2, || Some(())), Queued::Waiting);
        assert_eq!(worker.request(3, || Some(())), Queued::Waiting);
        assert_eq!(worker.request(4, || Some(())), Queued::Refused, "full");
        assert_eq!(worker.request(1, || Some(())), Queued::Waiting, "queued already");
        assert_eq!(worker.queued(), 3);
    }

    #[test]
    fn jobs_run_on_the_thread_then_may_be_asked_again() {
        let (done, results) = mpsc::channel();
        let done = Mutex::new(done);
        let worker = Worker::new("test", 8, move |key: u8, job: u8| {
            let _ = done.lock().unwrap().send(key + job);
        });
        assert_eq!(worker.request(1, || Some(10)), Queued::Waiting);
        assert_eq!(results.recv_timeout(Duration::from_secs(10)), Ok(11));
        let asked_again = (0..1000).any(|_| {
            std::thread::sleep(Duration::from_millis(2));
            !worker.is_pending(&1)
        });
        assert!(asked_again, "done: no longer pending");
        assert_eq!(worker.request(1, || Some(20)), Queued::Waiting);
        assert_eq!(results.recv_timeout(Duration::from_secs(10)), Ok(21));
    }

    #[test]
    fn a_forked_process_starts_its_own_thread_and_drops_its_parents_jobs() {
        let (done, results) = mpsc::channel();
        let done = Mutex::new(done);
        let worker = Worker::new("test", 8, move |key: u8, _: ()| {
            let _ = done.lock().unwrap().send(key);
        });
        worker.pretend_forked(9);
        assert_eq!(worker.request(1, || Some(())), Queued::Waiting);
        assert_eq!(results.recv_timeout(Duration::from_secs(10)), Ok(1));
        assert!(!worker.is_pending(&9), "the parent's job is gone");
    }
}
