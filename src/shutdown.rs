//! The shutdown signal every model watches.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustix::event::{eventfd, EventfdFlags};

/// Set once, seen by every worker. It is an eventfd as well as a flag, so that event loops
/// blocked in `epoll_wait` or `poll` wake up: the descriptor becomes readable on trigger and
/// stays readable (nobody reads it), so any number of loops see it.
#[derive(Debug)]
pub struct Shutdown {
    triggered: AtomicBool,
    wake: OwnedFd,
}

impl Shutdown {
    pub fn new() -> io::Result<Arc<Shutdown>> {
        let wake = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(Arc::new(Shutdown {
            triggered: AtomicBool::new(false),
            wake,
        }))
    }

    pub fn trigger(&self) {
        self.triggered.store(true, Ordering::SeqCst);
        // Only fails if the counter would overflow, i.e. it is already readable.
        let _ = rustix::io::write(&self.wake, &1u64.to_ne_bytes());
    }

    pub fn is_triggered(&self) -> bool {
        self.triggered.load(Ordering::SeqCst)
    }

    /// Readable once the shutdown has been triggered.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }
}
