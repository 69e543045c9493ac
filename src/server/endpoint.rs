//! Endpoints beside the server: a handler served on a listener of its own by the `epoll`
//! model — `--metrics` (the metrics handler) and `--redirect-http` (the way to HTTPS). One
//! thread is enough for what they answer, and its loop takes any number of connections
//! without a thread each.
//!
//! Each runs on a thread of its own; for the forking models in a process of its own instead,
//! forked before the model starts, since their parent must stay single-threaded to fork (the
//! metrics counters are shared by every process: see `observe::metrics`). Each answers until
//! the server has stopped, draining included.
//!
//! An endpoint may have a companion: work that runs on a thread beside its loop, in the same
//! process, until it stops — automatic HTTPS's ordering loop, which answers HTTP-01 from the
//! memory it shares with the `--redirect-http` listener. Without that listener the companion
//! runs alone, on a thread or in a process of its own.

use crate::engine::Context;
use crate::error::Error;
use crate::http::Settings;
use crate::models::{self, Model};
use crate::net::Listener;
use crate::seam::Handler;
use crate::shutdown::Shutdown;
use nix::sys::signal::Signal;
use nix::unistd::{fork, ForkResult, Pid};
use std::net::TcpListener;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Once the server has stopped, how long a request in flight may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// The running endpoint; dropping it stops it.
#[derive(Debug)]
pub(super) struct Endpoint {
    stop: Arc<Shutdown>,
    running: Running,
}

#[derive(Debug)]
enum Running {
    Thread(Option<JoinHandle<()>>),
    Process(Pid),
}

/// Work run beside an endpoint until the endpoint is stopped (its argument says when).
pub(super) type Companion = Box<dyn FnOnce(&Shutdown) + Send>;

impl Endpoint {
    /// Serves `handler` on `listener`, at most `max_connections` at once (beyond, a 503):
    /// from a child process if `in_process` (the caller must then be single-threaded), else
    /// from a thread. `server_listener`, the server's own listener, is closed in such a
    /// child, so that the port stops listening when the server closes it. `companion`, if
    /// any, runs on a thread beside it, in the same process.
    pub fn start<H>(
        listener: TcpListener,
        handler: H,
        max_connections: usize,
        companion: Option<Companion>,
        in_process: bool,
        server_listener: RawFd,
    ) -> Result<Endpoint, Error>
    where
        H: Handler + Send + Sync + 'static,
    {
        // An eventfd made before any fork: the server's write wakes the endpoint's loop.
        let stop = Shutdown::new().map_err(Error::io("starting an endpoint"))?;
        let context = Context::new(
            handler,
            Settings::default(),
            1,
            max_connections,
            Arc::clone(&stop),
            STOP_TIMEOUT,
            None,
        );
        let listener = Listener::from(listener);
        let stopping = Arc::clone(&stop);
        let body = move || {
            let beside = companion.and_then(|companion| beside(companion, stopping));
            serve(listener, context);
            if let Some(beside) = beside {
                let _ = beside.join();
            }
        };
        let running = launch(body, in_process, server_listener)?;
        Ok(Endpoint { stop, running })
    }

    /// Runs `companion` alone until it is stopped, as [`start`](Endpoint::start) runs an
    /// endpoint: in a child process if `in_process`, else on a thread.
    pub fn alone(companion: Companion, in_process: bool, server_listener: RawFd) -> Result<Endpoint, Error> {
        let stop = Shutdown::new().map_err(Error::io("starting an endpoint"))?;
        let stopping = Arc::clone(&stop);
        let running = launch(move || companion(&stopping), in_process, server_listener)?;
        Ok(Endpoint { stop, running })
    }
}

/// Starts `companion` on a thread of its own; `None` (after a line) if it cannot.
fn beside(companion: Companion, stop: Arc<Shutdown>) -> Option<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("bingfa-acme".into())
        .spawn(move || companion(&stop))
        .map_err(|e| tracing::error!("cannot start automatic HTTPS: {e}"))
        .ok()
}

/// Runs `body` in a child process if `in_process`, else on a thread.
fn launch(
    body: impl FnOnce() + Send + 'static,
    in_process: bool,
    server_listener: RawFd,
) -> Result<Running, Error> {
    if in_process {
        return Ok(Running::Process(run_in_process(body, server_listener)?));
    }
    let thread = std::thread::Builder::new()
        .name("bingfa-endpoint".into())
        .spawn(body)
        .map_err(Error::io("starting an endpoint"))?;
    Ok(Running::Thread(Some(thread)))
}

impl Endpoint {
    /// What stops it, for an upgrade to stop it early (from whichever process).
    pub fn stopper(&self) -> Arc<Shutdown> {
        Arc::clone(&self.stop)
    }
}

/// Serves until the endpoint is stopped; a failure is logged, not fatal to the server.
fn serve<H: Handler + Send + Sync + 'static>(listener: Listener, context: Context<H>) {
    if let Err(e) = models::run(Model::Epoll, listener, Arc::new(context)) {
        tracing::error!("endpoint beside the server: {e}");
    }
}

/// Forks the endpoint's process, which runs `body` and exits; returns its pid.
fn run_in_process(body: impl FnOnce(), server_listener: RawFd) -> Result<Pid, Error> {
    let server = nix::unistd::getpid();
    // SAFETY: the caller is single-threaded (the forking models run only in such a process,
    // see `Model::forks`), so the child may run ordinary Rust code.
    let forked = unsafe { fork() }.map_err(|e| Error::io("starting an endpoint")(e.into()))?;
    match forked {
        ForkResult::Child => {
            // SAFETY: in this child the server's listener is never used: it runs only the
            // endpoint, then exits without running the parent's destructors.
            drop(unsafe { OwnedFd::from_raw_fd(server_listener) });
            // Should the server die without stopping it, so does the endpoint (and if it died
            // before that was asked for, the endpoint has no one left to serve).
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            if nix::unistd::getppid() == server {
                body();
            }
            std::process::exit(0)
        }
        // The parent's copies of what `body` holds close as it drops here.
        ForkResult::Parent { child } => Ok(child),
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.trigger();
        match &mut self.running {
            Running::Thread(thread) => {
                if let Some(thread) = thread.take() {
                    let _ = thread.join();
                }
            }
            // The forking models reap any child that exits, this one too: an error here
            // means it is gone already.
            Running::Process(pid) => drop(nix::sys::wait::waitpid(*pid, None)),
        }
    }
}
