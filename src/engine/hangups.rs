//! SIGHUP, the operator's "read your files again": the certificates (new handshakes get the
//! new ones) and the access log's file (after logrotate has renamed it).
//!
//! The binary blocks SIGHUP (see `Shutdown::on_signals`), so it is read through a signalfd,
//! one per process. A serving process that runs threads watches it on a thread of its own
//! ([`Watcher`]); a process that forks stays single-threaded and looks for it in its own loop
//! (the parents of `process` and `prefork`). Either way the work is the server's
//! [`OnHangup`], which the engine calls without knowing what it reloads.

use crate::shutdown::{hangups, wait_readable};
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

/// Whether what a reload did is told on stderr. Each process reloads its own copy; where a
/// parent has already told the operator, its workers reload quietly, so a file that does not
/// load is one line in the log, not one per worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Report {
    Tell,
    Quietly,
}

/// A thread that waits for SIGHUP and runs the server's [`OnHangup`]; dropped, it stops.
#[derive(Debug)]
pub(crate) struct Watcher {
    stop: Arc<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    pub fn start(on_hangup: OnHangup, report: Report) -> io::Result<Watcher> {
        let signal = hangups()?;
        let stop = Arc::new(eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?);
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("bingfa-sighup".into())
            .spawn(move || loop {
                let Ok([hung_up, stopping]) = wait_readable([signal.as_fd(), stopped.as_fd()], None) else {
                    return;
                };
                if stopping {
                    return;
                }
                if hung_up {
                    while let Ok(Some(_)) = signal.read_signal() {}
                    on_hangup.run(report);
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
