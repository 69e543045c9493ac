//! `thread`: one OS thread per connection, blocking I/O (the seeds' second server).
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
//! When it wins: the code is the easiest to read and debug (a connection's story is one
//! stack), and with few busy connections it is as fast as anything, since the kernel's
//! scheduler does the multiplexing.
//!
//! Slowloris: every slow client holds a thread (and its stack) until the header timeout or
//! the minimum data rate ends it; a thousand of them are a thousand sleeping threads, which
//! Linux handles, but memory and the thread limit bound how many.
//!
//! What the seeds got wrong: one `recv(1024)` taken as the whole request, and no timeouts.

use super::{accept_until_shutdown, readable_unless_shutdown, tick, transmit, Context};
use crate::error::Error;
use crate::http::{Action, Connection};
use crate::net::{Listener, Stream};
use std::io::{self, ErrorKind, Read};
use std::net::Shutdown as Direction;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

pub(super) fn run(listener: Listener, context: Arc<Context>) -> Result<(), Error> {
    accept_until_shutdown(&listener, &context.shutdown, |stream| {
        spawn_connection(stream, &context)
    })?;
    // New clients are refused from here; those being answered get the shutdown timeout.
    drop(listener);
    context.wait_for_connections();
    Ok(())
}

fn spawn_connection(stream: Stream, context: &Arc<Context>) {
    let context = Arc::clone(context);
    // If no thread can be started, the stream is dropped with the closure: the client sees
    // the connection close, and the server carries on.
    let _ = thread::Builder::new().name("bingfa-conn".into()).spawn(move || {
        let clock = super::clock_now();
        let (conn, _admission) = context.accept(&clock, &stream);
        serve(stream, conn, &context);
    });
}

/// Serves one connection with blocking calls until it is over: the whole life of a
/// connection in the `thread`, `pool` and `process` models.
pub(super) fn serve(stream: Stream, mut conn: Connection, context: &Context) {
    // So that a server stopping past its shutdown timeout can cut this connection.
    let _tracked = context.live.track(&stream);
    // A blocking send waits at most this long for the client to take more data: the
    // core's send timeout, enforced by the kernel.
    let _ = stream.set_write_timeout(Some(context.settings.send_timeout));
    // Any I/O error ends the connection; there is no one to report it to.
    let _ = drive(&stream, &mut conn, context);
}

fn drive(stream: &Stream, conn: &mut Connection, context: &Context) -> io::Result<()> {
    let mut clock = super::clock_now();
    loop {
        tick(&mut clock);
        match conn.poll(&clock, &context.site) {
            Action::Send(what) => match transmit(stream, what) {
                Ok(n) => conn.sent(n, Instant::now()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            },
            Action::Receive { buf, deadline } => {
                // Waiting for the next request is where a stopping server lets go: a
                // response in flight is finished first, an idle connection closes at once.
                let wait = deadline.saturating_duration_since(clock.now());
                if !readable_unless_shutdown(stream, &context.shutdown, Some(wait))? {
                    return Ok(());
                }
                match (&*stream).read(buf) {
                    Ok(n) => conn.received(n, Instant::now()),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Action::Finish => stream.shutdown(Direction::Write)?,
            Action::Close => return Ok(()),
        }
    }
}
