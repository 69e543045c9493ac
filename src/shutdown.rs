//! The shutdown signal every model watches, and the drain before it (`--drain-delay`).
//!
//! A stop is asked ([`Shutdown::trigger`], or SIGINT/SIGTERM to the binary); the first time,
//! the server drains softly for the drain delay — it keeps serving, every response closes its
//! connection ([`Shutdown::closing`], which the core reads) and `/healthz` says `draining` —
//! then the stop descriptor ([`Shutdown::fd`]) turns readable and the models stop as they
//! always have: no more accepting, responses in flight finished, idle connections closed. A
//! second ask stops at once.
//!
//! The stop descriptor is a timerfd armed for the end of the delay, and what the processes of
//! one server must agree on (serving yet? draining? stop when?) lives in a shared mapping:
//! both are made before any fork, so the forking models' children, workers and endpoint
//! process see the one timer and the one state, whichever process read the signal. Signals
//! are read per process: on a thread in a serving process ([`Shutdown::read_signals_on_thread`]),
//! in their own loop by the forking parents (through `engine::Children`).

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::time::{clock_gettime, ClockId};
use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags, Timespec};
use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A descriptor that becomes readable when the server should stop, and stays readable (nobody
/// reads it), so any number of event loops, threads or forked workers can wait on it with
/// `poll` or `epoll` alongside their sockets; and the drain that comes before.
#[derive(Debug)]
pub struct Shutdown {
    /// A timerfd on CLOCK_MONOTONIC, armed (for the end of the drain delay) when a stop is
    /// asked; expired, it stays readable.
    stop: OwnedFd,
    /// The binary's SIGINT and SIGTERM, blocked, read by whoever reads them in each process.
    signals: Option<SignalFd>,
    /// What every process of the server sees alike.
    shared: &'static Shared,
    /// `--drain-delay` in nanoseconds, set by the server before it serves (so before any fork).
    drain_delay: AtomicU64,
    /// A stop was asked of this process already: asked again, it stops at once.
    asked: AtomicBool,
}

/// The state the processes of one server share, in an anonymous shared mapping.
#[derive(Debug)]
#[repr(C)]
struct Shared {
    /// The server has started serving (its model has the listener).
    serving: AtomicBool,
    /// Draining: every response closes its connection.
    closing: AtomicBool,
    /// When the stop is due, in CLOCK_MONOTONIC nanoseconds (the same clock in every
    /// process); 0 while no stop was asked.
    due: AtomicU64,
    /// An upgrade (SIGUSR2) is under way: a new copy of the server is starting.
    upgrading: AtomicBool,
    /// The listening sockets were handed to a new copy of the server, which serves them now.
    handed_over: AtomicBool,
}

/// Where the server is in its life, as `/healthz` tells a load balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not serving yet.
    Starting,
    Serving,
    /// A stop was asked: still serving, but every response closes its connection, until the
    /// drain delay has passed and the server stops.
    Draining,
}

impl Shutdown {
    /// A shutdown triggered by calling [`Shutdown::trigger`].
    pub fn new() -> io::Result<Arc<Shutdown>> {
        Shutdown::with_signals(None)
    }

    /// A shutdown triggered by SIGINT or SIGTERM. Call it before starting any thread: it
    /// blocks both signals in the calling thread, and threads and processes started later
    /// inherit that. No handler runs, so the program stays single-threaded, which the forking
    /// models need; the signals are read through a signalfd (see the module's header).
    ///
    /// SIGHUP and SIGUSR2 are blocked too, so that they never stop the server: each process
    /// reads SIGHUP (see [`hangups`]) to reload its certificates and reopen its access log,
    /// and the server's main process SIGUSR2, to upgrade.
    pub fn on_signals() -> io::Result<Arc<Shutdown>> {
        let signals = stop_signals();
        let mut blocked = signals;
        blocked.add(Signal::SIGHUP);
        blocked.add(Signal::SIGUSR2);
        blocked.thread_block()?;
        let fd = SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
        Shutdown::with_signals(Some(fd))
    }

    fn with_signals(signals: Option<SignalFd>) -> io::Result<Arc<Shutdown>> {
        let stop = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::CLOEXEC | TimerfdFlags::NONBLOCK,
        )?;
        Ok(Arc::new(Shutdown {
            stop,
            signals,
            shared: Shared::map()?,
            drain_delay: AtomicU64::new(0),
            asked: AtomicBool::new(false),
        }))
    }

    /// Asks the server to stop. The first ask starts the drain (with no drain delay, the stop
    /// is due at once); a later one makes the stop due now.
    pub fn trigger(&self) {
        if self.asked.swap(true, Ordering::SeqCst) {
            return self.stop_now();
        }
        let delay = self.drain_delay.load(Ordering::Relaxed);
        if delay > 0 {
            self.shared.closing.store(true, Ordering::SeqCst);
        }
        self.stop_at(monotonic_now().saturating_add(delay));
    }

    /// Another copy of the server serves the listeners now (an upgrade): this one drains as
    /// on a first stop, for the drain delay, or for `fallback` without one, so that its
    /// keep-alive clients get `Connection: close` on their next request rather than a socket
    /// closed under it. Asked to stop already, it goes on as it was.
    pub(crate) fn hand_over(&self, fallback: Duration) {
        self.shared.handed_over.store(true, Ordering::SeqCst);
        if self.asked.swap(true, Ordering::SeqCst) {
            return;
        }
        let delay = match self.drain_delay.load(Ordering::Relaxed) {
            0 => u64::try_from(fallback.as_nanos()).unwrap_or(u64::MAX),
            delay => delay,
        };
        self.shared.closing.store(true, Ordering::SeqCst);
        self.stop_at(monotonic_now().saturating_add(delay));
    }

    /// Whether the listening sockets were handed over to another copy of the server.
    pub fn handed_over(&self) -> bool {
        self.shared.handed_over.load(Ordering::SeqCst)
    }

    /// An upgrade begins, unless one is under way already (false), in any process of the
    /// server; [`Shutdown::upgrade_failed`] ends it.
    pub(crate) fn upgrade_begins(&self) -> bool {
        !self.shared.upgrading.swap(true, Ordering::SeqCst)
    }

    /// The upgrade under way failed: another may be tried.
    pub(crate) fn upgrade_failed(&self) {
        self.shared.upgrading.store(false, Ordering::SeqCst);
    }

    /// The stop is due now, drain delay or not (a forking parent ending its children).
    pub(crate) fn stop_now(&self) {
        self.stop_at(monotonic_now());
    }

    /// Makes the stop due at `due` (CLOCK_MONOTONIC nanoseconds), unless it is due sooner
    /// already; the timer follows the shared deadline, whichever process moved it last.
    fn stop_at(&self, due: u64) {
        let mut current = self.shared.due.load(Ordering::SeqCst);
        loop {
            if current != 0 && current <= due {
                return;
            }
            match self
                .shared
                .due
                .compare_exchange(current, due, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => break,
                Err(now_there) => current = now_there,
            }
        }
        // Another process may move the deadline between the swap above and the arming
        // below: arm again until the timer was set to what the shared deadline says.
        let mut armed = due;
        loop {
            let at = Itimerspec {
                it_interval: Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                // Never zero, which would disarm the timer; a time past expires at once.
                it_value: nanos_to_timespec(armed.max(1)),
            };
            // Fails only for an invalid time, which this is not.
            let _ = timerfd_settime(&self.stop, TimerfdTimerFlags::ABSTIME, &at);
            let latest = self.shared.due.load(Ordering::SeqCst);
            if latest == armed {
                return;
            }
            armed = latest;
        }
    }

    /// How long the server drains before it stops, once a stop is asked (`--drain-delay`).
    /// Set before serving starts.
    pub(crate) fn set_drain_delay(&self, delay: Duration) {
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        self.drain_delay.store(nanos, Ordering::Relaxed);
    }

    /// The server's model has its listener: `/healthz` says so from now on.
    pub(crate) fn serving(&self) {
        self.shared.serving.store(true, Ordering::SeqCst);
    }

    pub fn phase(&self) -> Phase {
        if self.shared.closing.load(Ordering::Relaxed) || self.is_triggered() {
            Phase::Draining
        } else if self.shared.serving.load(Ordering::Relaxed) {
            Phase::Serving
        } else {
            Phase::Starting
        }
    }

    /// Raised while the server drains: every response then closes its connection. For the
    /// core's `Settings`, which every connection reads; it lives as long as the process.
    pub(crate) fn closing(&self) -> &'static AtomicBool {
        &self.shared.closing
    }

    /// Whether this is the binary's shutdown, on signals (which also blocks SIGHUP).
    pub(crate) fn watches_signals(&self) -> bool {
        self.signals.is_some()
    }

    /// Reads the pending SIGINT and SIGTERM of the calling process, each an ask to stop.
    pub(crate) fn read_signals(&self) {
        let Some(signals) = &self.signals else {
            return;
        };
        while let Ok(Some(_)) = signals.read_signal() {
            self.trigger();
        }
    }

    /// A signal the calling process read itself (a forking parent reads SIGINT and SIGTERM
    /// with its SIGCHLD): an ask to stop, if it is one of ours.
    pub(crate) fn signalled(&self, signal: u32) {
        let ours = [Signal::SIGINT, Signal::SIGTERM].map(|s| s as u32);
        if self.watches_signals() && ours.contains(&signal) {
            self.trigger();
        }
    }

    /// In a process that may run threads (not a forking parent): a thread that reads this
    /// process's SIGINT and SIGTERM; dropped, it stops. `None` without the binary's signals.
    pub(crate) fn read_signals_on_thread(self: &Arc<Self>) -> io::Result<Option<SignalReader>> {
        if !self.watches_signals() {
            return Ok(None);
        }
        let done = Arc::new(eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?);
        let (shutdown, finished) = (Arc::clone(self), Arc::clone(&done));
        let thread = std::thread::Builder::new()
            .name("bingfa-signals".into())
            .spawn(move || {
                let Some(signals) = &shutdown.signals else {
                    return;
                };
                while let Ok([signalled, false]) = wait_readable([signals.as_fd(), finished.as_fd()], None) {
                    if signalled {
                        shutdown.read_signals();
                    }
                }
            })?;
        Ok(Some(SignalReader {
            done,
            thread: Some(thread),
        }))
    }

    pub fn is_triggered(&self) -> bool {
        let due = self.shared.due.load(Ordering::SeqCst);
        due != 0 && monotonic_now() >= due
    }

    /// Readable once the stop is due.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.stop.as_fd()
    }
}

/// The thread of [`Shutdown::read_signals_on_thread`].
#[derive(Debug)]
pub(crate) struct SignalReader {
    done: Arc<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for SignalReader {
    fn drop(&mut self) {
        // Fails only if the counter would overflow, i.e. it is already readable.
        let _ = rustix::io::write(&*self.done, &1u64.to_ne_bytes());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    /// A fresh shared mapping, never unmapped: the `'static` borrow holds for the life of the
    /// process (one page per shutdown, which a program makes once per server).
    fn map() -> io::Result<&'static Shared> {
        use rustix::mm::{mmap_anonymous, MapFlags, ProtFlags};
        // SAFETY: a fresh anonymous mapping aliases nothing. It is shared, so forked processes
        // see the same page; zero-filled, which is a valid `Shared` (atomics, all false or 0);
        // page-aligned, which is aligned enough.
        unsafe {
            let memory = mmap_anonymous(
                std::ptr::null_mut(),
                size_of::<Shared>(),
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
            )?;
            memory
                .cast::<Shared>()
                .as_ref()
                .ok_or_else(|| io::Error::other("mmap returned a null mapping"))
        }
    }
}

/// SIGINT and SIGTERM: what stops the binary.
pub(crate) fn stop_signals() -> SigSet {
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals
}

/// CLOCK_MONOTONIC in nanoseconds: the same clock in every process, and `Instant`'s.
///
/// Read through libc (nix), not rustix: rustix finds the vDSO itself and reads its ELF
/// header, which valgrind does not map, so the server crashed under callgrind
/// (`bench/callgrind.sh`, and the cost check of `tests/it/trace.rs`).
fn monotonic_now() -> u64 {
    // Unreachable: clock_gettime fails only for an unknown clock or a bad pointer.
    let Ok(now) = clock_gettime(ClockId::CLOCK_MONOTONIC) else {
        return 0;
    };
    let nanos = i128::from(now.tv_sec()) * 1_000_000_000 + i128::from(now.tv_nsec());
    u64::try_from(nanos).unwrap_or(u64::MAX)
}

fn nanos_to_timespec(nanos: u64) -> Timespec {
    Timespec {
        tv_sec: i64::try_from(nanos / 1_000_000_000).unwrap_or(i64::MAX),
        tv_nsec: (nanos % 1_000_000_000) as i64,
    }
}

/// SIGHUP (and SIGUSR2 if `upgrades`) as a descriptor, readable while one is pending for the
/// calling process (each process makes its own): a serving process's watcher thread reads
/// it, and so do the forking parents, in their loops (the parent of `prefork` also passes
/// SIGHUP on to its workers). Meant for the binary, where [`Shutdown::on_signals`] has
/// blocked both; unblocked, they would stop the process before anyone read them. Only the
/// server's main process reads SIGUSR2: in the others it stays blocked, and does nothing.
pub(crate) fn hangups(upgrades: bool) -> io::Result<SignalFd> {
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGHUP);
    if upgrades {
        signals.add(Signal::SIGUSR2);
    }
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
    use super::{Phase, Shutdown};
    use std::time::Duration;

    #[test]
    fn trigger_makes_it_readable() {
        let shutdown = Shutdown::new().unwrap();
        assert!(!shutdown.is_triggered());
        shutdown.trigger();
        assert!(shutdown.is_triggered());
        shutdown.trigger();
        assert!(shutdown.is_triggered(), "stays triggered");
        assert!(
            super::wait_readable([shutdown.fd()], Some(Duration::from_secs(10))).unwrap()[0],
            "and the descriptor turns readable"
        );
    }

    #[test]
    fn with_a_drain_delay_the_first_trigger_drains_and_the_second_stops() {
        let shutdown = Shutdown::new().unwrap();
        assert_eq!(shutdown.phase(), Phase::Starting);
        shutdown.serving();
        assert_eq!(shutdown.phase(), Phase::Serving);
        shutdown.set_drain_delay(Duration::from_secs(3600));
        shutdown.trigger();
        assert_eq!(shutdown.phase(), Phase::Draining);
        assert!(shutdown.closing().load(std::sync::atomic::Ordering::SeqCst));
        assert!(!shutdown.is_triggered(), "an hour to go");
        assert!(!super::wait_readable([shutdown.fd()], Some(Duration::ZERO)).unwrap()[0]);
        shutdown.trigger();
        assert!(shutdown.is_triggered(), "asked twice: now");
        assert!(super::wait_readable([shutdown.fd()], Some(Duration::from_secs(10))).unwrap()[0]);
    }
}
