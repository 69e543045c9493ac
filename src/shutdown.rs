//! The shutdown signal every model watches.

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags, Timespec};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

/// A descriptor that becomes readable when the server should stop, and stays readable (nobody
/// reads it), so any number of event loops, threads or forked workers can wait on it with
/// `poll` or `epoll` alongside their sockets.
#[derive(Debug)]
pub struct Shutdown {
    wake: Wake,
}

#[derive(Debug)]
enum Wake {
    /// An eventfd, written by [`Shutdown::trigger`]: for servers run inside a program.
    Event(OwnedFd),
    /// A signalfd for SIGINT and SIGTERM, which are blocked: for the `bingfa` binary.
    Signals(OwnedFd),
}

impl Shutdown {
    /// A shutdown triggered by calling [`Shutdown::trigger`].
    pub fn new() -> io::Result<Arc<Shutdown>> {
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(Arc::new(Shutdown {
            wake: Wake::Event(fd),
        }))
    }

    /// A shutdown triggered by SIGINT or SIGTERM. Call it before starting any thread: it
    /// blocks both signals in the calling thread, and threads and processes started later
    /// inherit that. No handler runs and no thread waits for signals, so the program stays
    /// single-threaded, which the forking models need.
    ///
    /// SIGHUP is blocked too, so that it never stops the server: each process reads it
    /// (see [`hangups`]) to reload its certificates and reopen its access log.
    pub fn on_signals() -> io::Result<Arc<Shutdown>> {
        let mut signals = SigSet::empty();
        signals.add(Signal::SIGINT);
        signals.add(Signal::SIGTERM);
        let mut blocked = signals;
        blocked.add(Signal::SIGHUP);
        blocked.thread_block()?;
        let fd = SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
        Ok(Arc::new(Shutdown {
            wake: Wake::Signals(fd.into()),
        }))
    }

    pub fn trigger(&self) {
        match &self.wake {
            // Fails only if the counter would overflow, i.e. it is already readable.
            Wake::Event(fd) => drop(rustix::io::write(fd, &1u64.to_ne_bytes())),
            // The signal stays pending (it is blocked), which makes the signalfd readable.
            Wake::Signals(_) => drop(nix::sys::signal::kill(nix::unistd::getpid(), Signal::SIGTERM)),
        }
    }

    /// Whether this is the binary's shutdown, on signals (which also blocks SIGHUP).
    pub(crate) fn watches_signals(&self) -> bool {
        matches!(self.wake, Wake::Signals(_))
    }

    pub fn is_triggered(&self) -> bool {
        let fd = self.fd();
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        matches!(poll(&mut fds, Some(&now)), Ok(1))
    }

    /// Readable once the shutdown has been triggered.
    pub fn fd(&self) -> BorrowedFd<'_> {
        match &self.wake {
            Wake::Event(fd) | Wake::Signals(fd) => fd.as_fd(),
        }
    }
}

/// SIGHUP as a descriptor, readable while one is pending for the calling process (each
/// process makes its own): a serving process's watcher thread reads it, and so do the
/// forking parents, in their loops (the parent of `prefork` also passes it on to its workers). Meant for the binary, where [`Shutdown::on_signals`] has
/// blocked SIGHUP; unblocked, it would stop the process before anyone read it.
pub(crate) fn hangups() -> io::Result<SignalFd> {
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGHUP);
    Ok(SignalFd::with_flags(
        &signals,
        SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK,
    )?)
}

/// Blocks until `fd` is readable (true), or until shutdown is triggered or `timeout` has
/// passed (false). One `poll` on two descriptors: the socket and the shutdown signal.
pub(crate) fn readable_unless_shutdown(
    fd: impl AsFd,
    shutdown: &Shutdown,
    timeout: Option<Duration>,
) -> io::Result<bool> {
    let [readable, stopping] = wait_readable([fd.as_fd(), shutdown.fd()], timeout)?;
    Ok(readable && !stopping)
}

/// Blocks until one of `fds` is readable or `timeout` passes (`None`: no limit); says which
/// are readable (an error or hang-up counts: the next read will report it).
pub(crate) fn wait_readable<const N: usize>(
    fds: [BorrowedFd<'_>; N],
    timeout: Option<Duration>,
) -> io::Result<[bool; N]> {
    let mut polled = fds.map(|fd| PollFd::from_borrowed_fd(fd, PollFlags::IN));
    let timeout = timeout.map(timespec);
    loop {
        match poll(&mut polled, timeout.as_ref()) {
            Ok(_) => return Ok(polled.each_ref().map(|fd| !fd.revents().is_empty())),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// A `Duration` as the timeout of `poll`, `epoll_wait` and io_uring.
pub(crate) fn timespec(duration: Duration) -> Timespec {
    Timespec {
        tv_sec: duration.as_secs().try_into().unwrap_or(i64::MAX),
        tv_nsec: duration.subsec_nanos().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::Shutdown;

    #[test]
    fn trigger_makes_it_readable() {
        let shutdown = Shutdown::new().unwrap();
        assert!(!shutdown.is_triggered());
        shutdown.trigger();
        assert!(shutdown.is_triggered());
        shutdown.trigger();
        assert!(shutdown.is_triggered(), "stays triggered");
    }
}
