//! `thread`: one OS thread per connection, blocking I/O.
//!
//! How it works: the main thread blocks in `accept`; each connection gets its own thread,
//! which blocks in `read` and `write` and drives the HTTP core in a plain loop. Before each
//! read it waits in `poll` on the socket and the shutdown signal, with the core's deadline as
//! the timeout, so timeouts and a server stop both end an idle connection at once.
//!
//! What it costs: a thread per connection — a stack (8 MiB reserved, tens of KiB touched),
//! a kernel task, and a context switch whenever a connection becomes ready. Thousands of
//! mostly idle keep-alive connections mean thousands of sleeping threads, and every slow
//! client holds one until a timeout frees it.
//!
//! Measured (the full `bench/run` of 2026-12-02 22:57 UTC, commit 8b33600, on a quiet 2-core
//! machine: `-w 2`, `wrk -t2 -c100`; CPU is the server's utime+stime over its requests, system
//! calls counted by `perf`): a small page over keep-alive costs 22.2 µs and 3.0 system calls per
//! request (`reactor`: 8.4 µs, 2.1); `Connection: close` churn 155 µs and 26 (`reactor`: 31.2 µs,
//! 6.6): a thread created and ended per connection; 7,000 connections a second.
//!
//! When it wins: the code is the easiest to read and debug (a connection's story is one
//! stack), and with few busy connections it is as fast as anything, since the kernel's
//! scheduler does the multiplexing.
//!
//! Slowloris: every slow client holds a thread (and its stack) until the header timeout or
//! the minimum data rate ends it; a thousand of them are a thousand sleeping threads, which
//! Linux handles, but memory and the thread limit bound how many.
//!
//! Unlike the tutorial's thread server (ARCHITECTURE.md, "Lessons"), a request is read until
//! the core has a whole head, not taken from one `recv(1024)`, and every wait has a deadline.

use crate::engine::{accept_until_shutdown, clock_now, tick, transmit, Context};
use crate::error::Error;
use crate::net::{Listener, Stream};
use crate::observe::trace::{trace_event, Kind};
use crate::seam::{Handler, Link, Step};
use crate::shutdown::wait_readable;
use std::io::{self, ErrorKind, Read};
use std::net::Shutdown as Direction;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

pub(super) fn run<H>(listener: Listener, context: Arc<Context<H>>) -> Result<(), Error>
where
    H: Handler + Send + Sync + 'static,
{
    accept_until_shutdown(&listener, &context.shutdown, |stream| {
        spawn_connection(stream, &context)
    })?;
    // New clients are refused from here; those being answered get the shutdown timeout.
    drop(listener);
    context.wait_for_connections();
    Ok(())
}

fn spawn_connection<H>(stream: Stream, context: &Arc<Context<H>>)
where
    H: Handler + Send + Sync + 'static,
{
    let fd = stream.as_raw_fd();
    trace_event!(context.trace, Kind::Accept, "fd {fd}");
    let shared = Arc::clone(context);
    // If no thread can be started, the stream is dropped with the closure: the client sees
    // the connection close, and the server carries on.
    let _ = thread::Builder::new().name("bingfa-conn".into()).spawn(move || {
        // Said by the new thread itself, so that its lines come in the order they happen.
        trace_event!(
            shared.trace,
            Kind::Spawn,
            "{:?} for fd {fd}",
            thread::current().id()
        );
        let (link, _admission) = shared.accept(&clock_now(), &stream);
        serve(stream, link, &shared);
        trace_event!(
            shared.trace,
            Kind::Exit,
            "{:?}: fd {fd} closed",
            thread::current().id()
        );
    });
}

/// Serves one connection with blocking calls until it is over: the whole life of a
/// connection in the `thread`, `pool` and `process` models.
pub(super) fn serve<H: Handler>(stream: Stream, mut link: Link, context: &Context<H>) {
    // So that a server stopping past its shutdown timeout can cut this connection.
    let _tracked = context.live.track(&stream);
    // A blocking send waits at most this long for the client to take more data: the
    // core's send timeout, enforced by the kernel.
    let _ = stream.set_write_timeout(Some(context.settings.send_timeout));
    // Any I/O error ends the connection; there is no one to report it to.
    let _ = drive(&stream, &mut link, context);
}

fn drive<H: Handler>(stream: &Stream, link: &mut Link, context: &Context<H>) -> io::Result<()> {
    let mut clock = clock_now();
    let mut stopping = false;
    loop {
        tick(&mut clock);
        match link.poll(&clock, &context.handler) {
            Step::Send(what) => match transmit(stream, what, &context.trace) {
                Ok(n) => link.sent(n, Instant::now()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            },
            Step::Receive { buf, deadline } => {
                // Waiting for the next request is where a stopping server lets go: a
                // response in flight is finished first, an idle connection closes at once
                // (but for a last word: HTTP/2's GOAWAY, and its streams in flight).
                let wait = Some(deadline.saturating_duration_since(clock.now()));
                let [readable, stopped] = if stopping {
                    [wait_readable([stream.as_fd()], wait)?[0], false]
                } else {
                    wait_readable([stream.as_fd(), context.shutdown.fd()], wait)?
                };
                if stopped {
                    stopping = true;
                    if !link.drain() {
                        return Ok(());
                    }
                    continue;
                }
                if !readable {
                    if link.expire(Instant::now()) {
                        continue;
                    }
                    return Ok(());
                }
                match (&*stream).read(buf) {
                    Ok(n) => link.received(n, Instant::now()),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Step::Finish => stream.shutdown(Direction::Write)?,
            Step::Close => return Ok(()),
        }
    }
}
