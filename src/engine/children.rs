//! Child processes of the forking models (`process`, `prefork`): starting, reaping, stopping.
//!
//! SIGCHLD is blocked and read through a signalfd, so the parent's loop waits for "a child
//! exited" with `poll` like for any other event, and reaps at once: no zombies, no signal
//! handler, and no thread (forking from a multi-threaded process is unsafe).

use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use std::collections::HashSet;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

/// The live children of this process.
pub(crate) struct Children {
    exited: SignalFd,
    pids: HashSet<Pid>,
}

impl Children {
    pub fn new() -> io::Result<Children> {
        let mut signals = SigSet::empty();
        signals.add(Signal::SIGCHLD);
        signals.thread_block()?;
        let exited = SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
        Ok(Children {
            exited,
            pids: HashSet::new(),
        })
    }

    /// Forks a child that runs `body` and exits with the status it returns.
    ///
    /// The caller must be single-threaded: after `fork` only the calling thread exists in
    /// the child, and a lock another thread held (in the allocator, say) would stay locked.
    pub fn spawn(&mut self, body: impl FnOnce() -> i32) -> io::Result<Pid> {
        // SAFETY: the forking models run only in a single-threaded process (the binary
        // starts no thread before them; `Model::forks` documents the requirement for library
        // users), so the child may allocate and run ordinary Rust code.
        match unsafe { fork() }? {
            ForkResult::Child => std::process::exit(body()),
            ForkResult::Parent { child } => {
                self.pids.insert(child);
                Ok(child)
            }
        }
    }

    pub fn len(&self) -> usize {
        self.pids.len()
    }

    /// Readable when a child has exited.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.exited.as_fd()
    }

    /// Collects every child that has exited, without blocking; returns their pids.
    pub fn reap(&mut self) -> Vec<Pid> {
        // Empty the signalfd: several exits may have merged into one pending SIGCHLD, which
        // is why waitpid loops below rather than once per signal.
        while let Ok(Some(_)) = self.exited.read_signal() {}
        let mut reaped = Vec::new();
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return reaped,
                Ok(status) => {
                    if let Some(pid) = status.pid() {
                        self.pids.remove(&pid);
                        reaped.push(pid);
                    }
                }
            }
        }
    }

    /// Sends `signal` to every child.
    pub fn signal(&self, signal: Signal) {
        for &pid in &self.pids {
            let _ = kill(pid, signal);
        }
    }

    /// Asks every child to stop (SIGTERM), waits up to `grace` for them, then kills the rest.
    pub fn stop(&mut self, grace: Duration) {
        self.signal(Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while !self.pids.is_empty() && Instant::now() < deadline {
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100));
            let _ = crate::shutdown::wait_readable([self.fd()], Some(wait));
            self.reap();
        }
        for &pid in &self.pids {
            let _ = kill(pid, Signal::SIGKILL);
        }
        while !self.pids.is_empty() {
            match waitpid(None, None) {
                Ok(status) => {
                    if let Some(pid) = status.pid() {
                        self.pids.remove(&pid);
                    }
                }
                Err(_) => return, // no children left to wait for
            }
        }
    }
}
