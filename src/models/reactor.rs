//! `reactor` (the default): one epoll loop per worker thread, each with its own listener.
//!
//! How it works: `--workers` threads each run the `epoll` model's event loop. Each has its
//! own `SO_REUSEPORT` listener on the same address, so the kernel spreads new connections
//! across them by a hash of the peer's address — no shared accept queue, no lock, no
//! thundering herd — and a connection usually stays on the thread that accepted it. This is
//! nginx's design (`worker_processes auto; listen ... reuseport`), with threads instead of
//! processes. Each listener is also tagged with a CPU, so a connection goes to the worker of
//! the CPU its packets arrive on, not to one picked by hash (see `engine::steer`: fewer cache misses
//! and cross-CPU wake-ups). A worker that gets far more than its share gives its tag up and
//! hands the connections beyond its share to the others.
//! A listener that no other can join — a Unix socket, or one passed in by systemd, whose
//! address more listeners of ours would take connections from — is shared instead: every
//! loop waits on it with EPOLLEXCLUSIVE, as `prefork`'s workers do, and the kernel wakes one
//! loop per new connection.
//!
//! What it costs: what `epoll` costs, times the workers. Measured (`bench/run --models
//! "reactor epoll" --peers h2o --no-tls --no-h2 --rounds 3`, 2 workers on 2 cores, medians of
//! the rounds): the small page with keep-alive, 7.2 µs of CPU and 2.1 system calls per request
//! (`recv`, `send`; h2o 8.7 µs, 3.2); `Connection: close` churn, 21 µs and 4.7 (`accept4`,
//! `recv`, `send`, `close`, and a share of `epoll_wait` and of the `accept4` that finds the
//! queue empty; h2o 29 µs, 10). Connections move only when one
//! worker holds far more than its share, so one worker can be busy while another idles, and
//! a stall in one loop stalls the clients it holds.
//!
//! Busy polling (`SO_BUSY_POLL`, here tried for every socket at once with the
//! `net.core.busy_read` and `busy_poll` sysctls at 50 µs) was measured and is not used: with
//! `wrk -c100` on loopback, alternated with it off, CPU per request 0.96x and 1.04x on the small
//! page, 1.03x and 0.92x on churn, req/s within the same spread: no effect. The kernel
//! busy-polls a socket through the NAPI context its packets arrived on, and loopback's come
//! through the per-CPU backlog, which (as we read the kernel) marks them with none. On a real
//! NIC it would spend idle cores spinning to save latency: to be measured there before use.
//!
//! Slowloris: as for `epoll`: slow clients cost memory, not service.
//!
//! When it wins: nearly always for a static server: every core serves, and nothing is shared
//! on the hot path but the read-mostly file cache.

use crate::engine::{listener_per_worker, run_workers, Context, EventLoop, Steering};
use crate::error::Error;
use crate::net::Listener;
use crate::observe::trace::{trace_event, Kind};
use crate::seam::Handler;

pub(super) fn run<H: Handler + Sync>(listener: Listener, context: &Context<H>) -> Result<(), Error> {
    let shared = !listener.reuse_port();
    let listeners = listener_per_worker(listener, context.workers)?;
    let steering = if shared { None } else { Steering::tag(&listeners) };
    if let Some(steering) = &steering {
        for worker in 0..listeners.len() {
            let cpu = steering.cpu(worker);
            trace_event!(
                context.trace,
                Kind::Steer,
                "worker {worker}'s listener takes the connections arriving on CPU {cpu}"
            );
        }
    }
    let loops = listeners
        .into_iter()
        .enumerate()
        .map(|(index, listener)| {
            if shared {
                return EventLoop::sharing(listener, context);
            }
            let event_loop = EventLoop::new(listener, context)?;
            Ok(match &steering {
                Some(steering) => event_loop.steered(steering.for_worker(index))?,
                None => event_loop,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::io("setting up the event loops"))?;
    run_workers(loops, EventLoop::run)
}
