//! `async` (alias `coroutine`): one tokio task per connection on a multi-threaded runtime.
//!
//! How it works: the Rust counterpart of the tutorial's gevent server. gevent monkey-patched
//! sockets so that blocking-looking code yields to a hub; here each `.await` marks the point
//! where a task yields. The accept loop spawns a task per connection; the task drives the
//! HTTP core in the same plain loop as the `thread` model, but waits for socket readiness
//! with `.await` instead of blocking a thread. Bytes still move with the shared `transmit`
//! (`send`, or `sendfile` for file bodies) and `recv`, called once tokio says the socket is
//! ready: every socket, TCP or Unix, is registered with tokio as an `AsyncFd`. `--workers` threads run the tasks and steal work from each other; tokio's epoll
//! driver wakes them; the accept loop runs on the calling thread. While waiting for a request
//! a task also waits for the shutdown signal, so stopping the server ends idle connections at
//! once; responses in flight get a short grace period, then the runtime drops what is left.
//!
//! What it costs: a task is one allocation holding the connection's state (the future has
//! no stack of its own beyond what is live across an `.await`), so an idle connection costs
//! about what it costs in the `epoll` model. Each wait goes through the runtime: a waker, a
//! queue, and sometimes a hand-off between threads; and every connection waiting for a
//! request is also a waiter on the one shared shutdown descriptor, a list behind a mutex.
//!
//! Slowloris: a slow client costs one suspended task and its input buffer; others are
//! served as usual.
//!
//! Measured (the full `bench/run` of 2026-12-02 22:57 UTC, commit 8b33600, on a quiet 2-core
//! machine: `-w 2`, `wrk -t2 -c100`; CPU is the server's utime+stime over its requests, system
//! calls counted by `perf`): a small page over keep-alive costs 12.5 µs and 3.0 system calls per
//! request (`reactor`: 8.4 µs, 2.1); `Connection: close` churn 34.4 µs and 7.0 (`reactor`: 31.2 µs,
//! 6.6): the runtime's wakers and its readiness calls on top of the reads and writes.
//!
//! When it wins: many connections, mostly idle, on every core, written as straight-line code
//! per connection — the readability of `thread` with the footprint of `epoll`. `reactor`
//! does the same work without a scheduler in the way, so it has the edge on raw throughput
//! when requests are short; tasks win back balance, since any worker can run any connection.

use crate::engine::{accept_nonblocking, clock_now, tick, transmit, Context, SendWatch};
use crate::error::Error;
use crate::net::{Listener, Stream};
use crate::observe::trace::{trace_event, Kind};
use crate::seam::{Clock, Handler, Link, Step};
use std::future::{poll_fn, Future};
use std::io::{self, ErrorKind, Read};
use std::net::Shutdown as Direction;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};
use tokio::io::Interest;

/// What every connection task holds: the server's context and the shutdown signal.
struct Shared<H> {
    context: Arc<Context<H>>,
    /// One registration of the shutdown descriptor, awaited by every task.
    stop: AsyncFd<OwnedFd>,
}

pub(super) fn run<H>(listener: Listener, context: Arc<Context<H>>) -> Result<(), Error>
where
    H: Handler + Send + Sync + 'static,
{
    listener
        .set_nonblocking(true)
        .map_err(Error::io("setting up the listener"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(context.workers.max(1))
        .thread_name("bingfa-async")
        .enable_all()
        .build()
        .map_err(Error::io("starting the runtime"))?;
    let result = runtime.block_on(serve_all(listener, context));
    // Tasks still running are dropped at their next `.await`, closing their sockets; the
    // timeout only bounds the wait for threads, of which there are none outside tokio.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// Accepts until shutdown, one task per connection; then waits for the tasks, boundedly.
async fn serve_all<H>(listener: Listener, context: Arc<Context<H>>) -> Result<(), Error>
where
    H: Handler + Send + Sync + 'static,
{
    // SAFETY: a `Listener` owns its descriptor and closes it only when dropped, which the
    // `AsyncFd` does.
    let listener = unsafe { AsyncFd::register_with_interest(listener, Interest::READABLE) }
        .map_err(|e| Error::io("setting up the listener")(e.into()))?;
    let stop = watch_shutdown(&context).map_err(Error::io("watching for shutdown"))?;
    let shared = Arc::new(Shared { context, stop });
    while let Some(accepted) = unless_stopped(&shared.stop, accept(&listener)).await {
        match accepted {
            Ok(stream) => {
                trace_event!(shared.context.trace, Kind::Accept, "fd {}", stream.as_raw_fd());
                drop(tokio::spawn(serve(stream, Arc::clone(&shared))))
            }
            // The peer gave up before we accepted, or a signal interrupted us: try again.
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionAborted | ErrorKind::Interrupted) => {}
            // Out of descriptors or memory: pause instead of failing in a tight loop.
            Err(e) => {
                crate::observe::accept_failed(&e);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    // Refuse new clients now rather than leave them in the backlog during the grace period.
    drop(listener);
    let give_up = Instant::now() + shared.context.shutdown_timeout;
    // Every task holds a reference, so the count says how many are still running. Polling
    // it is crude, but it happens once, for a moment, at the end.
    while Arc::strong_count(&shared) > 1 && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Accepts one connection, as a non-blocking socket, once the listener is ready.
async fn accept(listener: &AsyncFd<Listener>) -> io::Result<Stream> {
    loop {
        let mut ready = listener.readable().await?;
        // `try_io` clears tokio's readiness flag if accepting would block (another worker's
        // task took the connection), so the next `readable` really waits.
        if let Ok(accepted) = ready.try_io(|listener| accept_nonblocking(listener.get_ref())) {
            return accepted;
        }
    }
}

/// Registers a duplicate of the shutdown descriptor with tokio, which needs an owner for it.
fn watch_shutdown<H>(context: &Context<H>) -> io::Result<AsyncFd<OwnedFd>> {
    let fd = context.shutdown.fd().try_clone_to_owned()?;
    // SAFETY: tokio needs the descriptor to stay open, and the same, while it is registered;
    // an `OwnedFd` moved into the `AsyncFd` is closed by nothing else.
    Ok(unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?)
}

/// Runs `work` to completion (`Some`), unless shutdown is triggered first (`None`).
/// Without tokio's `select!` macro, a hand-written future polls both.
async fn unless_stopped<T>(stop: &AsyncFd<OwnedFd>, work: impl Future<Output = T>) -> Option<T> {
    // `readable` (unlike `poll_read_ready`) keeps a waker per waiting task, so every task
    // can wait on the same registration. Nobody reads the descriptor: once triggered it
    // stays ready, and every later wait ends at once. An error also means: stop.
    let mut stopped = pin!(stop.readable());
    let mut work = pin!(work);
    poll_fn(|cx| {
        if stopped.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        work.as_mut().poll(cx).map(Some)
    })
    .await
}

async fn serve<H: Handler>(stream: Stream, shared: Arc<Shared<H>>) {
    let fd = stream.as_raw_fd();
    // Said by the task itself, on whichever worker thread runs it.
    trace_event!(shared.context.trace, Kind::Task, "spawned for fd {fd}");
    let mut clock = clock_now();
    let (mut link, _admission) = shared.context.accept(&clock, &stream);
    // Registered from inside the runtime, on whichever worker runs this task. If tokio cannot
    // take it, the connection is closed unanswered.
    // SAFETY: as for the listener: a `Stream` owns its descriptor until the `AsyncFd` drops it.
    let registered =
        unsafe { AsyncFd::register_with_interest(stream, Interest::READABLE | Interest::WRITABLE) };
    let Ok(stream) = registered else {
        return;
    };
    // Any I/O error ends the connection; there is no one to report it to.
    let _ = drive(&stream, &mut link, &mut clock, &shared).await;
    trace_event!(shared.context.trace, Kind::Task, "done: fd {fd} closed");
}

/// Waits until `stream` can take more of a response, within the core's send timeout: a
/// client that takes no data for this long is dropped. Every wait here follows progress, so
/// the timeout counts from now, and starts over while the client is seen still taking what
/// the kernel holds ([`SendWatch`]).
async fn writable<'a, H>(
    stream: &'a AsyncFd<Stream>,
    watch: &mut SendWatch,
    shared: &Shared<H>,
) -> io::Result<AsyncFdReadyGuard<'a, Stream>> {
    loop {
        let deadline = Instant::now() + shared.context.settings.send_timeout;
        match tokio::time::timeout_at(deadline.into(), stream.writable()).await {
            Ok(ready) => return ready,
            Err(_elapsed) if watch.moving(stream.get_ref()) => {}
            Err(_elapsed) => return Err(ErrorKind::TimedOut.into()),
        }
    }
}

/// The whole life of one connection: the `thread` model's loop, with `.await` where it
/// would block.
async fn drive<H: Handler>(
    stream: &AsyncFd<Stream>,
    link: &mut Link,
    clock: &mut Clock,
    shared: &Shared<H>,
) -> io::Result<()> {
    let mut watch = SendWatch::default();
    let mut stopping = false;
    loop {
        tick(clock);
        let done = match link.poll(clock, &shared.context.handler) {
            Step::Send(what) => {
                let mut ready = writable(stream, &mut watch, shared).await?;
                // `try_io` clears tokio's readiness flag if the send would block, so the
                // next `writable` really waits.
                ready
                    .try_io(|stream| transmit(stream.get_ref(), what, &shared.context.trace))
                    .unwrap_or_else(|_would_block| {
                        watch.blocked(stream.get_ref());
                        trace_event!(
                            shared.context.trace,
                            Kind::WouldBlock,
                            "fd {} is full: the task waits until writable",
                            stream.get_ref().as_raw_fd()
                        );
                        Err(ErrorKind::WouldBlock.into())
                    })
                    .map(|n| link.sent(n, Instant::now()))
            }
            Step::Receive { buf, deadline } => {
                // Waiting for the next request is where a stopping server lets go, and
                // where the core's header and idle timeouts apply (after a last word:
                // HTTP/2's GOAWAY, and its streams in flight).
                let ready = tokio::time::timeout_at(deadline.into(), stream.readable());
                let waited = if stopping {
                    Some(ready.await)
                } else {
                    unless_stopped(&shared.stop, ready).await
                };
                let mut ready = match waited {
                    Some(Ok(ready)) => ready?,
                    None if link.drain() => {
                        stopping = true;
                        continue;
                    }
                    Some(Err(_elapsed)) if link.expire(Instant::now()) => continue,
                    None | Some(Err(_)) => return Ok(()),
                };
                ready
                    .try_io(|stream| stream.get_ref().read(buf))
                    .unwrap_or_else(|_would_block| {
                        trace_event!(
                            shared.context.trace,
                            Kind::WouldBlock,
                            "fd {} is empty: the task waits until readable",
                            stream.get_ref().as_raw_fd()
                        );
                        Err(ErrorKind::WouldBlock.into())
                    })
                    .map(|n| link.received(n, Instant::now()))
            }
            Step::Finish => stream.get_ref().shutdown(Direction::Write),
            Step::Close => return Ok(()),
        };
        match done {
            Ok(()) => {}
            // Readiness was stale, or a signal interrupted the call: ask the core again.
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(e) => return Err(e),
        }
    }
}
