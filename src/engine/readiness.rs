//! Driving a connection on a non-blocking socket: the body of every readiness-based model
//! (`nonblocking`, `poll`, `epoll`, `reactor`, `prefork`), and the writes every model but
//! `uring` makes.

use super::context::{clock_now, Context};
use super::limit::Admission;
use crate::net::Stream;
use crate::observe::trace::{trace_event, Kind, Trace};
use crate::seam::{Clock, Handler, Link, Step, Transmit};
use rustix::ioctl::{ioctl, Getter, Opcode};
use rustix::net::SendFlags;
use std::ffi::c_int;
use std::io::{self, ErrorKind, Read};
use std::net::Shutdown as Direction;
use std::os::fd::{AsFd, AsRawFd};

/// A connection as the readiness-based models hold it: the socket, its link to the protocol,
/// and its place under the connection limit.
pub(crate) struct Client {
    pub socket: Stream,
    pub link: Link,
    watch: SendWatch,
    _admission: Option<Admission>,
}

impl Client {
    pub fn new<H>(socket: Stream, context: &Context<H>, clock: &Clock) -> Client {
        let (link, admission) = context.accept(clock, &socket);
        Client {
            socket,
            link,
            watch: SendWatch::default(),
            _admission: admission,
        }
    }

    /// Pumps the connection (see [`pump`]); a panic while serving it ends only it.
    #[inline]
    pub fn pump<H: Handler>(&mut self, clock: &Clock, context: &Context<H>, reads: Reads) -> Pumped {
        let pumped = isolated(Pumped::Over, || {
            pump(&self.socket, &mut self.link, clock, context, reads)
        });
        if let Pumped::Blocked {
            wants: Interest::Write,
            ..
        } = pumped
        {
            self.watch.blocked(&self.socket);
        }
        pumped
    }

    /// True once the link's deadline has passed, unless the client turns out to be still
    /// taking a response (see [`SendWatch`]), or the link has a last word to say first
    /// (`Link::expire`), which is sent here.
    pub fn expired<H: Handler>(&mut self, clock: &Clock, context: &Context<H>) -> bool {
        let now = clock.now();
        if self.link.deadline() > now {
            return false;
        }
        if self.watch.moving(&self.socket) {
            self.link.progressed(now);
        }
        if self.link.deadline() > now {
            return false;
        }
        !(self.link.expire(now)
            && matches!(
                self.pump(clock, context, Reads::UntilBlocked),
                Pumped::Blocked { .. }
            ))
    }
}

/// Tells a client that takes a response slowly from one that takes none. The core's send
/// timeout counts from the last bytes the server wrote, but the kernel reports room to write
/// only once the unsent part of the socket's queue is below half its `TCP_NOTSENT_LOWAT`; a
/// slow client can take longer than the timeout to drain that much while taking data all
/// along. So when the timeout runs out, the socket's queue is measured (`SIOCOUTQ`): shorter
/// than when the server last had to wait means the client is still reading.
#[derive(Debug, Default)]
pub(crate) struct SendWatch {
    /// Bytes the socket held, not yet acknowledged, at the last look.
    held: Option<u32>,
}

impl SendWatch {
    /// A send would block: notes how much the socket holds.
    pub fn blocked(&mut self, socket: impl AsFd) {
        self.held = unacknowledged(socket);
    }

    /// Whether the socket holds less than at the last look; notes the new level.
    pub fn moving(&mut self, socket: impl AsFd) -> bool {
        let held = unacknowledged(socket);
        let moving = matches!((self.held, held), (Some(before), Some(now)) if now < before);
        self.held = held;
        moving
    }
}

/// The bytes a socket holds that the peer has not acknowledged (sent or not).
fn unacknowledged(socket: impl AsFd) -> Option<u32> {
    const SIOCOUTQ: Opcode = 0x5411;
    // SAFETY: SIOCOUTQ is a valid request on TCP and Unix stream sockets, and the kernel
    // writes an `int` for it.
    let getter = unsafe { Getter::<SIOCOUTQ, c_int>::new() };
    // SAFETY: as above; the getter owns the memory written.
    let held = unsafe { ioctl(socket, getter) };
    held.ok().and_then(|held| u32::try_from(held).ok())
}

/// Runs one connection's step; if a bug makes it panic, the panic hook has already logged
/// it to stderr, and `fallback` (which ends that connection) is returned so the server goes
/// on serving everyone else. Whatever the step left half-done belongs to the connection
/// that is being dropped; shared state (the file cache) recovers from a poisoned lock.
#[inline]
pub(crate) fn isolated<T>(fallback: T, step: impl FnOnce() -> T) -> T {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)).unwrap_or(fallback)
}

/// Answers a connection accepted over the limit (its link only says 503) without tying up a
/// worker: one non-blocking pump — the 503, the half-close, a drain of what the client
/// already sent so the close is not a reset — then close.
pub(crate) fn refuse<H: Handler>(socket: Stream, mut link: Link, context: &Context<H>) {
    if socket.set_nonblocking(true).is_ok() {
        let _ = pump(&socket, &mut link, &clock_now(), context, Reads::UntilBlocked);
    }
}

/// What a non-blocking socket waits for after [`pump`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pumped {
    /// The socket would block; `progressed` if any bytes moved before it did.
    Blocked { wants: Interest, progressed: bool },
    /// The connection is over: an error, a timeout, or the link said close.
    Over,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interest {
    Read,
    Write,
}

impl Interest {
    /// What the socket must become: "readable" or "writable".
    pub fn readiness(self) -> &'static str {
        match self {
            Interest::Read => "readable",
            Interest::Write => "writable",
        }
    }
}

/// How far [`pump`] reads: what the caller knows of the socket's input saves the read that
/// would only say EAGAIN — one system call per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reads {
    /// Until the socket would block: nothing else will say when more bytes are there.
    UntilBlocked,
    /// An edge-triggered report without hang-up stands behind the call, and the kernel
    /// reports again any byte that arrives after it. So a read that does not fill the
    /// buffer is the last (the socket was empty then), and with `readable: false` the
    /// report said there was nothing to read at all. (A report with a hang-up needs
    /// `UntilBlocked`: the end of stream that came before it is not reported again.)
    Reported { readable: bool },
}

/// Moves bytes between a non-blocking socket and the link until the socket would block or
/// the connection is over: the body of every readiness-based model.
pub(crate) fn pump<H: Handler>(
    socket: &Stream,
    link: &mut Link,
    clock: &Clock,
    context: &Context<H>,
    reads: Reads,
) -> Pumped {
    let mut progressed = false;
    let mut may_read = !matches!(reads, Reads::Reported { readable: false });
    loop {
        let (result, wants) = match link.poll(clock, &context.handler) {
            Step::Send(what) => (
                transmit(socket, what, &context.trace).map(|n| link.sent(n, clock.now())),
                Interest::Write,
            ),
            Step::Receive { .. } if !may_read => (Err(ErrorKind::WouldBlock.into()), Interest::Read),
            Step::Receive { buf, .. } => {
                let room = buf.len();
                let read = (&*socket).read(buf);
                if let Ok(n) = read {
                    may_read = n == room || matches!(reads, Reads::UntilBlocked);
                    link.received(n, clock.now());
                }
                (read.map(drop), Interest::Read)
            }
            Step::Finish => (socket.shutdown(Direction::Write), Interest::Read),
            Step::Close => return Pumped::Over,
        };
        match result {
            Ok(()) => progressed = true,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if matches!(wants, Interest::Read) {
                    link.rest(); // waiting between requests costs no buffer
                }
                // Only after progress: a polling loop finds most sockets idle on every pass.
                if progressed {
                    trace_event!(
                        context.trace,
                        Kind::WouldBlock,
                        "fd {} waits until {}",
                        socket.as_raw_fd(),
                        wants.readiness()
                    );
                }
                return Pumped::Blocked { wants, progressed };
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Pumped::Over,
        }
    }
}

/// Writes what the link handed out: bytes with `send`, a file range with `sendfile`, so file
/// bodies go from the page cache to the socket without passing through user space.
pub(crate) fn transmit(socket: impl AsFd, what: Transmit<'_>, trace: &Trace) -> io::Result<usize> {
    match what {
        // MSG_NOSIGNAL: a peer that went away is an error to handle, not a SIGPIPE.
        Transmit::Bytes { bytes, more } => {
            let more = if more { SendFlags::MORE } else { SendFlags::empty() };
            Ok(rustix::net::send(socket, bytes, SendFlags::NOSIGNAL | more)?)
        }
        Transmit::File { file, offset, len } => {
            let mut offset = offset;
            match rustix::fs::sendfile(&socket, file, Some(&mut offset), len)? {
                // The file shrank after its length was announced: the response cannot be
                // completed, and closing is the only honest end.
                0 => Err(io::ErrorKind::UnexpectedEof.into()),
                n => {
                    if n < len {
                        let fd = socket.as_fd().as_raw_fd();
                        trace_event!(trace, Kind::Sendfile, "fd {fd} took {n} of {len} bytes");
                    }
                    Ok(n)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    /// A client that reads a little is seen taking data; one that reads nothing is not.
    #[test]
    fn send_watch_sees_a_slow_reader_move() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let chunk = [7u8; 64 * 1024];
        while server.write(&chunk).is_ok() {} // until the socket would block
        let mut watch = SendWatch::default();
        watch.blocked(&server);
        assert!(!watch.moving(&server), "nothing read yet");
        let mut taken = vec![0u8; 256 * 1024];
        client.read_exact(&mut taken).unwrap();
        // The acknowledgements travel over loopback: give them a moment.
        let moved = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            watch.moving(&server)
        });
        assert!(moved, "the reader took 256 KiB");
        // What the reader made room for is delivered, then the queue stands still again.
        let settled = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            !watch.moving(&server)
        });
        assert!(settled, "the queue kept shrinking with nothing read");
    }
}
