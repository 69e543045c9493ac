//! `pool`: a fixed pool of `--workers` threads taking accepted connections from a queue.
//!
//! How it works: the main thread accepts and puts each connection on a queue (a channel);
//! `--workers` threads each take one connection at a time and serve it to the end with
//! blocking I/O, exactly as a `thread` model thread does. The connection's header timeout
//! starts at accept, so time spent waiting in the queue counts against it.
//!
//! What it costs: a fixed number of threads and stacks however many clients come; but a
//! worker is held for a connection's whole life, keep-alive pauses included, so with more
//! open connections than workers the rest wait in the queue, served only as others end.
//!
//! Slowloris: it is this model's weak spot. Each slow client holds a whole worker; with
//! `--workers` of them sending a byte at a time, every other client waits in the queue. The
//! header timeout bounds it — a worker is freed at most `--header-timeout` after its slow
//! client connected, and a queued connection whose header timeout passed while waiting is
//! closed at once — but until then the server is unavailable. Raising `--workers` raises the
//! number of slow clients needed; only the event-driven models remove the problem.
//!
//! Measured (the full `bench/run` of 2026-12-02 22:57 UTC, commit 8b33600, on a quiet 2-core
//! machine: `-w 2`, `wrk -t2 -c100`; CPU is the server's utime+stime over its requests, system
//! calls counted by `perf`): a small page over keep-alive costs 18.8 µs and 3.0 system calls per
//! request (`reactor`: 8.4 µs, 2.1); `Connection: close` churn 37.9 µs and 7.0 (`reactor`: 31.2 µs,
//! 6.6): no thread is made per connection (`thread`: 155 µs), and each hand-over through the queue
//! wakes a thread.
//!
//! When it wins: bounded memory and threads with blocking, easy-to-read code, for short
//! requests from well-behaved clients (a classic Java servlet container design).

use super::thread::serve;
use crate::engine::{accept_until_shutdown, clock_now, isolated, refuse, Admission, Context};
use crate::error::Error;
use crate::net::{Listener, Stream};
use crate::observe::trace::{trace_event, Kind};
use crate::seam::{Handler, Link};
use std::os::fd::AsRawFd;
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

/// A connection waiting for a worker, with its protocol state already started (so its
/// header timeout runs) and its place under the connection limit.
type Queued = (Stream, Link, Admission);

pub(super) fn run<H>(listener: Listener, context: Arc<Context<H>>) -> Result<(), Error>
where
    H: Handler + Send + Sync + 'static,
{
    let (queue, waiting) = channel::<Queued>();
    let waiting = Arc::new(Mutex::new(waiting));
    // Workers are detached, not scoped to this call: one stuck sending to a client that
    // stopped reading must not keep a stopping server from returning after its timeout.
    for worker in 0..context.workers {
        let (waiting, context) = (Arc::clone(&waiting), Arc::clone(&context));
        thread::Builder::new()
            .name(format!("bingfa-pool-{worker}"))
            .spawn(move || {
                trace_event!(context.trace, Kind::Spawn, "worker {worker} waits on the queue");
                work(&waiting, &context)
            })
            .map_err(Error::io("starting the worker threads"))?;
    }
    accept_until_shutdown(&listener, &context.shutdown, |stream| {
        let fd = stream.as_raw_fd();
        trace_event!(context.trace, Kind::Accept, "fd {fd}");
        match context.accept(&clock_now(), &stream) {
            // Fails only if every worker is gone, which they are not while the server runs.
            (link, Some(admission)) => {
                trace_event!(context.trace, Kind::Queue, "fd {fd} waits for a worker");
                drop(queue.send((stream, link, admission)))
            }
            // Over the limit: every worker may be busy, so say 503 from here.
            (link, None) => refuse(stream, link, &context),
        }
    })?;
    // Closing the queue tells the workers to finish their connection and leave; queued
    // connections are dropped (closed) unanswered, as is anyone still connecting.
    drop(queue);
    drop(listener);
    context.wait_for_connections();
    Ok(())
}

/// One worker: take a connection, serve it to the end, repeat until the queue closes.
fn work<H: Handler>(waiting: &Mutex<Receiver<Queued>>, context: &Context<H>) {
    loop {
        // One worker at a time waits on the queue; the others wait for the lock. A worker
        // that panicked while holding it left nothing half-done in a Receiver.
        let next = waiting.lock().unwrap_or_else(PoisonError::into_inner).recv();
        match next {
            Ok((stream, link, _admission)) if !context.shutdown.is_triggered() => {
                trace_event!(context.trace, Kind::Take, "fd {}", stream.as_raw_fd());
                // A bug while serving one connection must not cost the pool a worker.
                isolated((), || serve(stream, link, context));
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}
