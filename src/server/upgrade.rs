//! SIGUSR2: an upgrade in place, as nginx's. The binary at the path this server was started
//! from (so a new version installed over it) is started again with the same arguments and
//! handed the listening sockets (`net::Handover`); once it says it serves, this server stops
//! its endpoints (the new one answers `/healthz` on the same socket now) and drains as on
//! SIGTERM, then exits 0. If the new one exits first, or does not serve within
//! [`READY_WITHIN`], this one goes on serving as if nothing happened and says why in one line.
//!
//! What it costs: nothing until SIGUSR2; then a process start, and for the drain what
//! `--drain-delay` costs.

use super::endpoint::Endpoint;
use crate::net::Handover;
use crate::shutdown::{wait_readable, Phase, Shutdown};
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::sync::Arc;
use std::time::Duration;

/// How long the new copy may take to serve before this one gives up on it (and kills it).
pub const READY_WITHIN: Duration = Duration::from_secs(30);
/// Once the new copy has closed its pipe unready, how long it may take to exit.
const EXIT_WITHIN: Duration = Duration::from_secs(5);

/// How to start this server again: its program and arguments.
#[derive(Debug, Clone)]
pub struct Relaunch {
    program: PathBuf,
    args: Vec<OsString>,
}

impl Relaunch {
    /// This process's program and arguments, as it was started. Call it at start: the path
    /// is resolved now, so a binary replaced on disk later is the one an upgrade starts
    /// (`/proc/self/exe` would name the old, deleted file). `argv[0]` if it is a path (made
    /// absolute, not resolved: a symlink re-pointed at a new version is followed), else the
    /// executable the shell found on `PATH`.
    pub fn of_this_process() -> io::Result<Relaunch> {
        let mut argv = std::env::args_os();
        let program = match argv.next() {
            Some(first) if first.as_encoded_bytes().contains(&b'/') => std::path::absolute(first)?,
            _ => std::env::current_exe()?,
        };
        Ok(Relaunch {
            program,
            args: argv.collect(),
        })
    }
}

/// Why an upgrade did not happen: one line, after "upgrade failed: ".
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("the server is stopping")]
    Stopping,
    #[error("an upgrade is under way already")]
    UnderWay,
    #[error("cannot hand the sockets over: {0}")]
    Handover(io::Error),
    #[error("cannot start {program}: {source}")]
    Start { program: String, source: io::Error },
    #[error("the new bingfa (pid {pid}) stopped before it served ({status})")]
    Exited { pid: u32, status: ExitStatus },
    #[error("the new bingfa (pid {pid}) did not serve within {}s; it was killed", READY_WITHIN.as_secs())]
    NotReady { pid: u32 },
    #[error("the server was asked to stop; the new bingfa (pid {pid}) was killed")]
    Stopped { pid: u32 },
}

/// Everything an upgrade needs, made before serving; run on SIGUSR2.
pub(super) struct Upgrade {
    relaunch: Relaunch,
    handover: Handover,
    shutdown: Arc<Shutdown>,
    /// The endpoints' stops: they stop at once, their sockets served by the new copy.
    endpoints: Vec<Arc<Shutdown>>,
    /// The drain without `--drain-delay`: keep-alive clients are never cut sooner than their
    /// idle timeout would have cut them (see `Shutdown::hand_over`).
    drain: Duration,
}

impl Upgrade {
    pub fn new(
        relaunch: Relaunch,
        handover: Handover,
        shutdown: Arc<Shutdown>,
        endpoints: &[Endpoint],
        drain: Duration,
    ) -> Upgrade {
        Upgrade {
            relaunch,
            handover,
            shutdown,
            endpoints: endpoints.iter().map(Endpoint::stopper).collect(),
            drain,
        }
    }

    /// Starts the new copy and waits for it; then hands over and drains, or says why not.
    pub fn run(&self) {
        if self.shutdown.phase() != Phase::Serving {
            return tracing::error!("upgrade failed: {}; still serving", Failure::Stopping);
        }
        if !self.shutdown.upgrade_begins() {
            return tracing::error!("upgrade failed: {}; still serving", Failure::UnderWay);
        }
        tracing::info!("upgrade: starting {}", self.relaunch.program.display());
        match self.start_successor() {
            Ok(pid) => {
                self.endpoints.iter().for_each(|endpoint| endpoint.trigger());
                self.shutdown.hand_over(self.drain);
                tracing::info!(
                    "upgrade: the new bingfa (pid {pid}) serves; this one (pid {}) drains and exits",
                    std::process::id()
                );
            }
            Err(failure) => {
                self.shutdown.upgrade_failed();
                tracing::error!("upgrade failed: {failure}; still serving");
            }
        }
    }

    /// Starts the new copy with the sockets; its pid once it serves.
    fn start_successor(&self) -> Result<u32, Failure> {
        let mut command = Command::new(&self.relaunch.program);
        command.args(&self.relaunch.args);
        let ready = self.handover.prepare(&mut command).map_err(Failure::Handover)?;
        let spawned = command.spawn();
        // The command's copies of the sockets close now: only the new copy holds them.
        drop(command);
        let mut child = spawned.map_err(|source| Failure::Start {
            program: self.relaunch.program.display().to_string(),
            source,
        })?;
        let pid = child.id();
        let outcome = match wait_readable([ready.as_fd(), self.shutdown.fd()], Some(READY_WITHIN)) {
            Ok([true, _]) if said_ready(&ready) => return Ok(pid),
            Ok([true, _]) => return Err(exited(&mut child)),
            Ok([false, true]) => Failure::Stopped { pid },
            Ok([false, false]) | Err(_) => Failure::NotReady { pid },
        };
        let _ = child.kill();
        let _ = child.wait();
        Err(outcome)
    }
}

/// Whether the new copy wrote its byte (rather than closing the pipe unready).
fn said_ready(ready: &OwnedFd) -> bool {
    let mut byte = [0u8; 1];
    matches!(rustix::io::read(ready, &mut byte), Ok(1))
}

/// The new copy closed its pipe without serving: it is exiting. Its status, once it has.
fn exited(child: &mut Child) -> Failure {
    let pid = child.id();
    let deadline = std::time::Instant::now() + EXIT_WITHIN;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Failure::Exited { pid, status },
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Failure::NotReady { pid };
            }
        }
    }
}
