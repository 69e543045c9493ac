//! `reactor` (the default): one epoll loop per worker thread, each with its own listener.
//!
//! How it works: `--workers` threads each run the `epoll` model's event loop. Each has its
//! own `SO_REUSEPORT` listener on the same address, so the kernel spreads new connections
//! across them by a hash of the peer's address — no shared accept queue, no lock, no
//! thundering herd — and a connection stays on the thread that accepted it. This is nginx's
//! design (`worker_processes auto; listen ... reuseport`), with threads instead of processes.
//! A listener that no other can join — a Unix socket, or one passed in by systemd, whose
//! address more listeners of ours would take connections from — is shared instead: every
//! loop waits on it with EPOLLEXCLUSIVE, as `prefork`'s workers do, and the kernel wakes one
//! loop per new connection.
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
use super::{listener_per_worker, run_workers, Context};
use crate::error::Error;
use crate::net::Listener;

pub(super) fn run(listener: Listener, context: &Context) -> Result<(), Error> {
    let shared = !listener.reuse_port();
    let loops = listener_per_worker(listener, context.workers)?
        .into_iter()
        .map(|listener| {
            if shared {
                EventLoop::sharing(listener, context)
            } else {
                EventLoop::new(listener, context)
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::io("setting up the event loops"))?;
    run_workers(loops, EventLoop::run)
}
