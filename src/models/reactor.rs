//! `reactor` (the default): one epoll loop per worker thread, each with its own listener.
//!
//! How it works: `--workers` threads each run the `epoll` model's event loop. Each has its
//! own `SO_REUSEPORT` listener on the same address, so the kernel spreads new connections
//! across them by a hash of the peer's address — no shared accept queue, no lock, no
//! thundering herd — and a connection stays on the thread that accepted it. This is nginx's
//! design (`worker_processes auto; listen ... reuseport`), with threads instead of processes.
//!
//! What it costs: what `epoll` costs, times the workers; connections are not rebalanced, so
//! one worker can be busy while another idles, and a stall in one loop stalls the clients
//! hashed to it.
//!
//! Slowloris: as for `epoll`: slow clients cost memory, not service.
//!
//! When it wins: nearly always for a static server: every core serves, and nothing is shared
//! on the hot path but the read-mostly file cache.

use super::epoll::EventLoop;
use super::Context;
use crate::error::Error;
use crate::server::listen_reuseport;
use std::net::TcpListener;
use std::thread;

pub(super) fn run(listener: TcpListener, context: &Context) -> Result<(), Error> {
    let addr = listener
        .local_addr()
        .map_err(Error::io("reading the listening address"))?;
    let mut listeners = vec![listener];
    for _ in 1..context.workers {
        let listener = listen_reuseport(addr).map_err(|source| Error::Listen { addr, source })?;
        listeners.push(listener);
    }
    let loops = listeners
        .into_iter()
        .map(|listener| EventLoop::new(listener, context))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::io("setting up the event loops"))?;
    thread::scope(|scope| {
        let workers: Vec<_> = loops
            .into_iter()
            .map(|event_loop| scope.spawn(|| event_loop.run()))
            .collect();
        // Every worker returns when shutdown is triggered; report the first failure.
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .fold(Ok(()), Result::and)
    })
}
