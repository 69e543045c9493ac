//! `prefork`: `--workers` processes forked at start, each running an epoll loop; the parent
//! supervises.
//!
//! How it works: the parent forks the workers once, before any connection arrives. Each
//! worker runs the `epoll` model's event loop on the listener it inherited; they all wait on
//! it with EPOLLEXCLUSIVE, so the kernel wakes one worker per new connection. The parent
//! serves nothing: it waits (one `poll`) for the shutdown signal or a worker's exit, reaps
//! every exited worker and forks a replacement; on SIGTERM or SIGINT it forwards SIGTERM to
//! the workers, waits for them, and exits; SIGHUP (reload the certificates, reopen the access
//! log) it acts on for itself, then passes on; SIGUSR2 (upgrade) it runs in a child of its own.
//! nginx's master/worker design.
//!
//! What it costs: the fork happens `--workers` times, not per connection; then each worker
//! costs what an `epoll` loop costs, plus a process's memory (its own copy of the small-file
//! cache, for one). State the workers must share needs shared memory: here, the count of
//! open connections held against `--max-connections`, in a page mapped before the fork.
//!
//! Slowloris: as for `epoll`, in each worker.
//!
//! Measured (the full `bench/run` of 2026-12-02 22:57 UTC, commit 8b33600, on a quiet 2-core
//! machine: `-w 2`, `wrk -t2 -c100`; CPU is the server's utime+stime over its requests, system
//! calls counted by `perf`): a small page over keep-alive costs 10.6 µs and 2.2 system calls per
//! request (`reactor`: 8.4 µs, 2.1); `Connection: close` churn 31.6 µs and 6.6 (`reactor`: 31.2 µs,
//! 6.6): each worker is an epoll loop, so churn costs what it costs `reactor`.
//!
//! When it wins: like `reactor`, every core serves; unlike threads, a worker that crashes or
//! leaks takes down only its own connections, and the parent replaces it.

use crate::engine::{pending, Children, Context, EventLoop, Pending, Report, SharedTally};
use crate::error::Error;
use crate::net::Listener;
use crate::observe::trace::{trace_event, Kind};
use crate::seam::Handler;
use crate::shutdown::wait_readable;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// Beyond the shutdown timeout the workers enforce themselves, how long the parent waits
/// for them to exit before it kills them.
const EXIT_MARGIN: Duration = Duration::from_secs(1);
/// A worker that dies sooner than this after it started is replaced only after this pause,
/// so a worker that cannot start does not turn the parent into a fork loop.
const RESTART_PAUSE: Duration = Duration::from_millis(100);

pub(super) fn run<H: Handler>(listener: Listener, context: &Context<H>) -> Result<(), Error> {
    let mut workers = Children::new(&context.shutdown).map_err(Error::io("watching worker processes"))?;
    let tally = SharedTally::new(context.workers).map_err(Error::io("sharing the connection count"))?;
    let result = supervise(&listener, context, &tally, &mut workers);
    // The workers close their copies as they start draining; with this last one closed,
    // new clients are refused.
    drop(listener);
    workers.stop(context.shutdown_timeout + EXIT_MARGIN);
    result
}

fn supervise<H: Handler>(
    listener: &Listener,
    context: &Context<H>,
    tally: &SharedTally,
    workers: &mut Children,
) -> Result<(), Error> {
    // Worker `i` runs as `slots[i]`; the index names its part of the shared count.
    let mut slots = Vec::with_capacity(context.workers);
    for index in 0..context.workers {
        slots.push(start_worker(index, listener, context, tally, workers)?);
    }
    let mut started = Instant::now();
    let hangups = crate::shutdown::hangups(context.upgrades()).map_err(Error::io("watching SIGHUP"))?;
    loop {
        let [stopping, exited, hung_up] =
            wait_readable([context.shutdown.fd(), workers.fd(), hangups.as_fd()], None)
                .map_err(Error::io("supervising workers"))?;
        if stopping {
            return Ok(());
        }
        let pending = if hung_up {
            pending(&hangups)
        } else {
            Pending::default()
        };
        if pending.hangup {
            // The parent's own copy too, for the workers it starts from now on.
            context.hung_up(Report::Tell);
            workers.signal(Signal::SIGHUP);
        }
        if pending.upgrade {
            // Not passed on: the workers hand nothing over, the parent does.
            context.upgrade_in_child(workers);
        }
        if !exited {
            continue;
        }
        let dead = workers.reap();
        for worker in &dead {
            trace_event!(context.trace, Kind::Reap, "worker {worker}");
        }
        if started.elapsed() < RESTART_PAUSE {
            std::thread::sleep(RESTART_PAUSE);
        }
        started = Instant::now();
        for (index, slot) in slots.iter_mut().enumerate() {
            if dead.contains(slot) {
                tracing::warn!("worker {index} (pid {slot}) exited; starting another");
                tally.forget_worker(index);
                *slot = start_worker(index, listener, context, tally, workers)?;
            }
        }
    }
}

fn start_worker<H: Handler>(
    index: usize,
    listener: &Listener,
    context: &Context<H>,
    tally: &SharedTally,
    workers: &mut Children,
) -> Result<Pid, Error> {
    let listener = listener.try_clone().map_err(Error::io("sharing the listener"))?;
    let worker_tally = tally.for_worker(index);
    let serve = move || {
        context.limit.count_in(worker_tally);
        let _services = context.serving_process(Report::Quietly);
        match EventLoop::sharing(listener, context).map(EventLoop::run) {
            Ok(Ok(())) => 0,
            _ => 1,
        }
    };
    let pid = workers
        .spawn(serve)
        .map_err(Error::io("starting a worker process"))?;
    trace_event!(context.trace, Kind::Fork, "worker {index} is process {pid}");
    Ok(pid)
}
