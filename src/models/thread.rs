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
//! What the seeds got wrong: one `recv(1024)` taken as the whole request, and no timeouts.

use super::{tick, timespec, transmit, Context};
use crate::error::Error;
use crate::http::{Action, Clock, Connection};
use crate::shutdown::Shutdown;
use rustix::event::{poll, PollFd, PollFlags};
use std::io::{self, ErrorKind, Read};
use std::net::{Shutdown as Direction, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

pub(super) fn run(listener: TcpListener, context: Arc<Context>) -> Result<(), Error> {
    while readable_unless_shutdown(&listener, &context.shutdown, None)
        .map_err(Error::io("waiting for connections"))?
    {
        match listener.accept() {
            Ok((stream, _peer)) => spawn_connection(stream, &context),
            // The peer gave up before we accepted, or a signal interrupted us: try again.
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionAborted | ErrorKind::Interrupted) => {}
            // Out of descriptors or memory: pause instead of failing in a tight loop.
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
    Ok(())
}

fn spawn_connection(stream: TcpStream, context: &Arc<Context>) {
    let context = Arc::clone(context);
    // If no thread can be started, the stream is dropped with the closure: the client sees
    // the connection close, and the server carries on.
    let _ = thread::Builder::new()
        .name("bingfa-conn".into())
        .spawn(move || serve(stream, &context));
}

fn serve(stream: TcpStream, context: &Context) {
    let _ = stream.set_nodelay(true);
    let mut clock = super::clock_now();
    let (mut conn, _admission) = context.accept(&clock);
    // Any I/O error ends the connection; there is no one to report it to.
    let _ = drive(&stream, &mut conn, &mut clock, context);
}

/// The whole life of one connection, in blocking calls.
fn drive(stream: &TcpStream, conn: &mut Connection, clock: &mut Clock, context: &Context) -> io::Result<()> {
    loop {
        tick(clock);
        match conn.poll(clock, &context.site) {
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

/// Blocks until `fd` is readable (true), or until shutdown is triggered or `timeout` has
/// passed (false). One `poll` on two descriptors: the socket and the shutdown eventfd.
fn readable_unless_shutdown(
    fd: impl AsFd,
    shutdown: &Shutdown,
    timeout: Option<Duration>,
) -> io::Result<bool> {
    let wake = shutdown.fd();
    let mut fds = [PollFd::new(&fd, PollFlags::IN), PollFd::new(&wake, PollFlags::IN)];
    let timeout = timeout.map(timespec);
    loop {
        match poll(&mut fds, timeout.as_ref()) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(fds[1].revents().is_empty()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
