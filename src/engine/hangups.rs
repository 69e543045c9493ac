//! SIGHUP, the operator's "read your files again": the certificates (new handshakes get the
//! new ones) and the access log's file (after logrotate has renamed it); and SIGUSR2, "start
//! the binary again and hand it the sockets" (an upgrade in place), which only the server's
//! main process acts on.
//!
//! The binary blocks both (see `Shutdown::on_signals`), so they are read through a signalfd,
//! one per process. A serving process that runs threads watches it on a thread of its own
//! ([`Watcher`]); a process that forks stays single-threaded and looks for them in its own
//! loop (the parents of `process` and `prefork`), and runs an upgrade, which waits for the new
//! copy to serve, in a child of its own. Either way the work is the server's [`OnHangup`] and
//! [`OnUpgrade`], which the engine calls without knowing what they do.

use crate::shutdown::{hangups, wait_readable};
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use rustix::event::{eventfd, EventfdFlags};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::thread::JoinHandle;

/// What a process does on SIGHUP.
#[derive(Clone)]
pub(crate) struct OnHangup(Arc<dyn Fn(Report) + Send + Sync>);

impl OnHangup {
    pub fn new(action: impl Fn(Report) + Send + Sync + 'static) -> OnHangup {
        OnHangup(Arc::new(action))
    }

    pub fn run(&self, report: Report) {
        (self.0)(report);
    }
}

impl std::fmt::Debug for OnHangup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnHangup")
    }
}

/// What the server's main process does on SIGUSR2: start its successor, hand it the
/// sockets and drain, or say in one line why not. It returns once it knows which.
#[derive(Clone)]
pub(crate) struct OnUpgrade(Arc<dyn Fn() + Send + Sync>);

impl OnUpgrade {
    pub fn new(action: impl Fn() + Send + Sync + 'static) -> OnUpgrade {
        OnUpgrade(Arc::new(action))
    }

    pub fn run(&self) {
        (self.0)();
    }
}

impl std::fmt::Debug for OnUpgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnUpgrade")
    }
}

/// What a `hangups` descriptor had pending.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Pending {
    pub hangup: bool,
    pub upgrade: bool,
}

/// Reads every signal pending on `signals` (made by `shutdown::hangups`).
pub(crate) fn pending(signals: &SignalFd) -> Pending {
    let mut pending = Pending::default();
    while let Ok(Some(signal)) = signals.read_signal() {
        match Signal::try_from(signal.ssi_signo as i32) {
            Ok(Signal::SIGUSR2) => pending.upgrade = true,
            _ => pending.hangup = true,
        }
    }
    pending
}

/// Whether what a reload did is told on stderr. Each process reloads its own copy; where a
/// parent has already told the operator, its workers reload quietly, so a file that does not
/// load is one line in the log, not one per worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Report {
    Tell,
    Quietly,
}

/// A thread that waits for SIGHUP and runs the server's [`OnHangup`], and, given an
/// [`OnUpgrade`], for SIGUSR2; dropped, it stops.
#[derive(Debug)]
pub(crate) struct Watcher {
    stop: Arc<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    pub fn start(on_hangup: OnHangup, report: Report, on_upgrade: Option<OnUpgrade>) -> io::Result<Watcher> {
        let signal = hangups(on_upgrade.is_some())?;
        let stop = Arc::new(eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?);
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("bingfa-sighup".into())
            .spawn(move || loop {
                let Ok([signalled, stopping]) = wait_readable([signal.as_fd(), stopped.as_fd()], None) else {
                    return;
                };
                if stopping {
                    return;
                }
                if !signalled {
                    continue;
                }
                let pending = pending(&signal);
                if pending.hangup {
                    on_hangup.run(report);
                }
                if let (true, Some(on_upgrade)) = (pending.upgrade, &on_upgrade) {
                    // On this thread: it waits for the new copy, or for the stop.
                    on_upgrade.run();
                }
            })?;
        Ok(Watcher {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // Fails only if the counter would overflow, i.e. it is already readable.
        let _ = rustix::io::write(&*self.stop, &1u64.to_ne_bytes());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
