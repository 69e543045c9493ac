//! The concurrency models. Each file is one way to move bytes between sockets and the
//! connection seam, headed by a comment on how it works, what it costs and when it wins. None
//! of them looks inside the bytes: the protocol is behind the seam (`crate::seam`), and what
//! the models share is in `crate::engine`.

mod async_tasks;
mod epoll;
mod nonblocking;
mod poll;
mod pool;
mod prefork;
mod process;
mod reactor;
mod thread;
mod uring;

use crate::engine::Context;
use crate::error::Error;
use crate::net::Listener;
use crate::seam::Handler;
use std::fmt;
use std::sync::Arc;

/// The concurrency models; each lives in `src/models/<name>.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Model {
    /// One process per connection (fork).
    Process,
    /// One thread per connection, blocking I/O.
    Thread,
    /// A fixed pool of worker threads taking connections from a queue.
    Pool,
    /// Tokio tasks, one per connection, on a multi-thread runtime.
    #[value(alias = "coroutine")]
    Async,
    /// One thread trying every non-blocking socket in turn, no readiness API.
    Nonblocking,
    /// One thread, poll(2) over every socket each turn.
    Poll,
    /// One thread, non-blocking sockets, one epoll loop.
    Epoll,
    /// One epoll loop per worker thread, each with its own SO_REUSEPORT listener.
    Reactor,
    /// Worker processes forked at start, each running an epoll loop; the parent supervises.
    Prefork,
    /// io_uring: accept, receive and send driven by completions, one ring per worker.
    Uring,
}

impl Model {
    pub const ALL: &'static [Model] = &[
        Model::Process,
        Model::Thread,
        Model::Pool,
        Model::Async,
        Model::Nonblocking,
        Model::Poll,
        Model::Epoll,
        Model::Reactor,
        Model::Prefork,
        Model::Uring,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Model::Process => "process",
            Model::Thread => "thread",
            Model::Pool => "pool",
            Model::Async => "async",
            Model::Nonblocking => "nonblocking",
            Model::Poll => "poll",
            Model::Epoll => "epoll",
            Model::Reactor => "reactor",
            Model::Prefork => "prefork",
            Model::Uring => "uring",
        }
    }

    /// Models that fork. They must be started from a single-threaded program (the
    /// `bingfa` binary is one), never from inside a multi-threaded one such as a test runner.
    pub fn forks(self) -> bool {
        matches!(self, Model::Process | Model::Prefork)
    }

    /// Models that run a loop per worker, each on a listener of its own where it can have one
    /// (`SO_REUSEPORT`).
    pub fn listens_per_worker(self) -> bool {
        matches!(self, Model::Reactor | Model::Uring)
    }

    /// Checks, before serving starts, what the model needs from the kernel that may be missing.
    pub fn check_available(self) -> Result<(), Error> {
        match self {
            Model::Uring => crate::engine::check_uring(),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Serves `listener` with `model` until `context.shutdown` is triggered, every request
/// answered by `context.handler`.
pub(crate) fn run<H>(model: Model, listener: Listener, context: Arc<Context<H>>) -> Result<(), Error>
where
    H: Handler + Send + Sync + 'static,
{
    match model {
        Model::Process => process::run(listener, &context),
        Model::Thread => thread::run(listener, context),
        Model::Pool => pool::run(listener, context),
        Model::Async => async_tasks::run(listener, context),
        Model::Nonblocking => nonblocking::run(listener, &context),
        Model::Poll => poll::run(listener, &context),
        Model::Epoll => epoll::run(listener, &context),
        Model::Reactor => reactor::run(listener, &context),
        Model::Prefork => prefork::run(listener, &context),
        Model::Uring => uring::run(listener, &context),
    }
}
