//! The concurrency models. Each file is one way to move bytes between sockets and the HTTP
//! core, headed by a comment on how it works, what it costs and when it wins. None of them
//! looks inside the bytes: parsing and answering are the core's job.

mod epoll;
mod reactor;
mod thread;

use crate::error::Error;
use crate::http::{Clock, Connection, Settings, Transmit};
use crate::server::Model;
use crate::shutdown::Shutdown;
use crate::site::Site;
use rustix::event::Timespec;
use rustix::net::SendFlags;
use std::io;
use std::net::TcpListener;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// What every model shares: the site, the connection policy and the shutdown signal.
#[derive(Debug)]
pub(crate) struct Context {
    pub site: Site,
    pub settings: Settings,
    pub workers: usize,
    max_connections: usize,
    open_connections: AtomicUsize,
    pub shutdown: Arc<Shutdown>,
}

impl Context {
    pub fn new(
        site: Site,
        settings: Settings,
        workers: usize,
        max_connections: usize,
        shutdown: Arc<Shutdown>,
    ) -> Context {
        Context {
            site,
            settings,
            workers,
            max_connections,
            open_connections: AtomicUsize::new(0),
            shutdown,
        }
    }

    /// The protocol state for a newly accepted connection, with its place under the
    /// connection limit; beyond the limit, a connection that only answers 503.
    pub fn accept(&self, clock: &Clock) -> (Connection, Option<Admission<'_>>) {
        let open = self.open_connections.fetch_add(1, Ordering::Relaxed);
        if open < self.max_connections {
            let admission = Admission {
                counter: &self.open_connections,
            };
            (Connection::new(self.settings, clock.now()), Some(admission))
        } else {
            self.open_connections.fetch_sub(1, Ordering::Relaxed);
            (Connection::overloaded(self.settings, clock), None)
        }
    }
}

/// A place under the connection limit, given back when dropped.
#[derive(Debug)]
pub(crate) struct Admission<'a> {
    counter: &'a AtomicUsize,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(crate) fn run(model: Model, listener: TcpListener, context: Arc<Context>) -> Result<(), Error> {
    match model {
        Model::Thread => thread::run(listener, context),
        Model::Epoll => epoll::run(listener, &context),
        Model::Reactor => reactor::run(listener, &context),
    }
}

/// Reads both OS clocks for the core.
pub(crate) fn clock_now() -> Clock {
    Clock::new(SystemTime::now(), Instant::now())
}

pub(crate) fn tick(clock: &mut Clock) {
    clock.tick(SystemTime::now(), Instant::now());
}

/// Writes what the core handed out: bytes with `send`, a file range with `sendfile`, so file
/// bodies go from the page cache to the socket without passing through user space.
pub(crate) fn transmit(socket: impl AsFd, what: Transmit<'_>) -> io::Result<usize> {
    match what {
        // MSG_NOSIGNAL: a peer that went away is an error to handle, not a SIGPIPE.
        Transmit::Bytes(bytes) => Ok(rustix::net::send(socket, bytes, SendFlags::NOSIGNAL)?),
        Transmit::File { file, offset, len } => {
            let mut offset = offset;
            match rustix::fs::sendfile(socket, file, Some(&mut offset), len)? {
                // The file shrank after its length was announced: the response cannot be
                // completed, and closing is the only honest end.
                0 => Err(io::ErrorKind::UnexpectedEof.into()),
                n => Ok(n),
            }
        }
    }
}

/// A `Duration` as the timeout of `poll` and `epoll_wait`.
pub(crate) fn timespec(duration: Duration) -> Timespec {
    Timespec {
        tv_sec: duration.as_secs().try_into().unwrap_or(i64::MAX),
        tv_nsec: duration.subsec_nanos().into(),
    }
}
