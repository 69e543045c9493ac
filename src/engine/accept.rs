//! Taking new connections off a listener: the blocking models' accept loop, a non-blocking
//! accept, and a listener per worker for the models that run several loops.

use crate::error::Error;
use crate::net::{Listener, Peer, Stream};
use crate::shutdown::{readable_unless_shutdown, Shutdown};
use rustix::io::Errno;
use rustix::net::SocketFlags;
use std::io::{self, ErrorKind};
use std::time::Duration;

/// How long the kernel may hold a new connection that has sent nothing before reporting it
/// all the same (see `Listener::defer_accept`): its first SYN-ACK retransmission.
pub(crate) const DEFER_ACCEPT: Duration = Duration::from_secs(1);

/// Accepts one connection as a non-blocking socket (accept4 sets the flag: no extra fcntl).
pub(crate) fn accept_nonblocking(listener: &Listener) -> io::Result<Stream> {
    loop {
        match rustix::net::acceptfrom_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC) {
            Ok((fd, peer)) => return Ok(Stream::accepted(fd, Peer::at(peer))),
            // A signal, or a client that gave up while waiting in the backlog: next one.
            Err(Errno::INTR | Errno::CONNABORTED) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The blocking models' accept loop: waits for a connection or the shutdown, hands each
/// accepted socket to `serve` (blocking, as accepted sockets always are), and returns once
/// shutdown is triggered.
///
/// The listener is non-blocking: another process may accept on the same socket (the new
/// server, during an upgrade; others of systemd's), and take the connection between the
/// wake-up and the `accept`, which must then not block until the next client comes.
pub(crate) fn accept_until_shutdown(
    listener: &Listener,
    shutdown: &Shutdown,
    mut serve: impl FnMut(Stream),
) -> Result<(), Error> {
    listener
        .set_nonblocking(true)
        .map_err(Error::io("setting up the listener"))?;
    while readable_unless_shutdown(listener, shutdown, None).map_err(Error::io("waiting for connections"))? {
        match listener.accept() {
            Ok(stream) => serve(stream),
            // The peer gave up before we accepted, a signal interrupted us, or another
            // process took the connection: wait again.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionAborted | ErrorKind::Interrupted | ErrorKind::WouldBlock
                ) => {}
            // Out of descriptors or memory: pause rather than fail in a tight loop; the
            // clients wait in the backlog meanwhile.
            Err(e) => {
                crate::observe::accept_failed(&e);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    Ok(())
}

/// One listener per worker: the one given, and `workers - 1` more `SO_REUSEPORT` ones on its
/// address (its siblings, opened before or handed over by the server this one upgraded, then
/// new ones), so the kernel spreads new connections across the workers. A listener that no
/// other can join (a Unix socket, or one passed in by systemd) is shared instead: every worker
/// gets a copy of it, and they take turns accepting.
pub(crate) fn listener_per_worker(mut listener: Listener, workers: usize) -> Result<Vec<Listener>, Error> {
    let mut siblings = listener.take_siblings().into_iter();
    let mut listeners = Vec::with_capacity(workers);
    listeners.push(listener);
    for _ in 1..workers {
        let next = match siblings.next() {
            Some(sibling) => sibling,
            None => another_listener(&listeners[0])?,
        };
        listeners.push(next);
    }
    if siblings.len() > 0 {
        // Handed over by a server that ran more workers: served by none, their queues would
        // hang; closed, they reset what is queued. Closed at once, before more can queue.
        tracing::warn!(
            "{} listeners handed over beyond the workers are closed",
            siblings.len()
        );
    }
    Ok(listeners)
}

/// A new `SO_REUSEPORT` listener on `listener`'s address, or a copy where none can join it.
fn another_listener(listener: &Listener) -> Result<Listener, Error> {
    if !listener.reuse_port() {
        return listener.try_clone().map_err(Error::io("sharing the listener"));
    }
    let addr = listener
        .local_addr()
        .map_err(Error::io("reading the listening address"))?;
    Ok(crate::net::listen_reuseport(addr)?)
}
