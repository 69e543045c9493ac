//! Child processes of the forking models (`process`, `prefork`): starting, reaping, stopping.
//!
//! SIGCHLD is blocked and read through a signalfd, so the parent's loop waits for "a child
//! exited" with `poll` like for any other event, and reaps at once: no zombies, no signal
//! handler, and no thread (forking from a multi-threaded process is unsafe). The binary's
//! SIGINT and SIGTERM come through the same signalfd, for the same reason: the parent reads
//! them there and asks its shutdown to stop (which starts the drain, see `shutdown`).

use crate::shutdown::Shutdown;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use std::collections::HashSet;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The live children of this process.
pub(crate) struct Children {
    exited: SignalFd,
    pids: HashSet<Pid>,
    shutdown: Arc<Shutdown>,
}

impl Children {
    /// Children of a parent that stops with `shutdown`, and reads its stop signals here.
    pub fn new(shutdown: &Arc<Shutdown>) -> io::Result<Children> {
        let mut signals = SigSet::empty();
        signals.add(Signal::SIGCHLD);
        signals.thread_block()?;
        if shutdown.watches_signals() {
            // Blocked already, by `Shutdown::on_signals`.
            crate::shutdown::stop_signals()
                .iter()
                .for_each(|signal| signals.add(signal));
        }
        let exited = SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
        Ok(Children {
            exited,
            pids: HashSet::new(),
            shutdown: Arc::clone(shutdown),
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

    /// Readable when a child has exited (or a stop signal came: see the header).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.exited.as_fd()
    }

    /// Collects every child that has exited, without blocking; returns their pids. A stop
    /// signal read meanwhile goes to the shutdown.
    pub fn reap(&mut self) -> Vec<Pid> {
        // Empty the signalfd: several exits may have merged into one pending SIGCHLD, which
        // is why waitpid loops below rather than once per signal.
        while let Ok(Some(signal)) = self.exited.read_signal() {
            self.shutdown.signalled(signal.ssi_signo);
        }
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

    /// Asks every child to stop (the shutdown's stop made due, which children watch, and
    /// SIGTERM), waits up to `grace` for them, then kills the rest.
    pub fn stop(&mut self, grace: Duration) {
        self.shutdown.stop_now();
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
