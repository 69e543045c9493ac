//! The concurrency models. Each file is one way to move bytes between sockets and the HTTP
//! core, headed by a comment on how it works, what it costs and when it wins. None of them
//! looks inside the bytes: parsing and answering are the core's job.

mod async_tasks;
mod children;
mod epoll;
mod limit;
mod nonblocking;
mod poll;
mod pool;
mod prefork;
mod process;
mod reactor;
mod steer;
mod thread;
mod uring;

use crate::error::Error;
use crate::http::{Action, Clock, Connection, Settings, Transmit};
use crate::net::{Listener, Stream};
use crate::observe::{Observer, Writer};
use crate::server::{listen_reuseport, Model};
use crate::shutdown::Shutdown;
use crate::site::Site;
pub(crate) use limit::{Admission, ConnectionLimit};
use rustix::event::Timespec;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;
use rustix::ioctl::{ioctl, Getter, Opcode};
use rustix::net::{SendFlags, SocketFlags};
use slab::Slab;
use std::ffi::c_int;
use std::io::{self, ErrorKind, Read};
use std::marker::PhantomData;
use std::net::Shutdown as Direction;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// What every model shares: the site, the connection policy and the shutdown signal.
#[derive(Debug)]
pub(crate) struct Context {
    pub site: Site,
    pub settings: Settings,
    pub workers: usize,
    pub limit: ConnectionLimit,
    pub shutdown: Arc<Shutdown>,
    /// After shutdown is triggered, how long responses in flight may take.
    pub shutdown_timeout: Duration,
    /// The sockets the blocking models' threads are serving.
    pub live: LiveSockets,
    /// With `--access-log` or `--metrics`: told of each accepted connection.
    pub observer: Option<Arc<Observer>>,
}

impl Context {
    pub fn new(
        site: Site,
        settings: Settings,
        workers: usize,
        max_connections: usize,
        shutdown: Arc<Shutdown>,
        shutdown_timeout: Duration,
        observer: Option<Arc<Observer>>,
    ) -> Context {
        let gauge = observer.as_ref().and_then(|observer| observer.open_gauge());
        let limit = ConnectionLimit::new(max_connections, gauge);
        Context {
            site,
            settings,
            workers,
            limit,
            shutdown,
            shutdown_timeout,
            live: LiveSockets::default(),
            observer,
        }
    }

    /// After the accept loop stopped: waits until every admitted connection has ended, or
    /// the shutdown timeout has passed (the caller then returns, cutting what is left).
    pub fn wait_for_connections(&self) {
        let give_up = Instant::now() + self.shutdown_timeout;
        while self.limit.open() > 0 && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.live.cut_all();
    }

    /// The protocol state for a newly accepted connection on `socket`, with its place under
    /// the connection limit; beyond the limit, a connection that only answers 503.
    pub fn accept(&self, clock: &Clock, socket: impl AsFd) -> (Connection, Option<Admission>) {
        match self.limit.admit() {
            Some(admission) => (
                self.observed(Connection::new(self.settings, clock.now()), socket),
                Some(admission),
            ),
            None => (self.overloaded(clock, socket), None),
        }
    }

    /// A connection that only answers 503, for a model that refuses one itself.
    pub fn overloaded(&self, clock: &Clock, socket: impl AsFd) -> Connection {
        self.observed(Connection::overloaded(self.settings, clock), socket)
    }

    fn observed(&self, mut conn: Connection, socket: impl AsFd) -> Connection {
        if let Some(observer) = &self.observer {
            observer.accepted(&mut conn, socket.as_fd());
        }
        conn
    }

    /// Starts this process's access-log writer, if there is a log: for a process that
    /// serves and may start threads (a `prefork` worker). Dropped, it writes what is left.
    pub fn log_writer(&self) -> Option<Writer> {
        self.observer
            .as_ref()?
            .start_writer(self.shutdown.watches_signals())
    }
}

pub(crate) fn run(model: Model, listener: Listener, context: Arc<Context>) -> Result<(), Error> {
    match model {
        Model::Process => process::run(listener, &context),
        Model::Thread => thread::run(listener, context),
        Model::Pool => pool::run(listener, context),
        Model::Async => async_tasks::run(listener, context),
        Model::Nonblocking => nonblocking::run(listener, &context),
        Model::Poll => poll::run(listener, &context),
        Model::Epoll => epoll::run(listener, &context),
        Model::Reactor => reactor::run(listener, &context),
        Model::Prefork => prefork::run(listener, &context),
        Model::Uring => uring::run(listener, &context),
    }
}

/// The sockets of the connections the blocking models' threads are serving. A thread
/// blocked in `send` cannot be told to stop, but its socket can be shut down under it: that
/// is how a stopping server cuts what is still open after its shutdown timeout.
///
/// It holds descriptor numbers, not duplicates, so a connection costs one descriptor, not two
/// (with duplicates, `thread` ran out of descriptors at 10,000 connections). A number is safe
/// to use because a socket leaves the table, under its lock, before it is closed (see
/// [`Tracked`]), and `cut_all` uses the numbers under the same lock: a number in the table
/// always names the connection's own open socket, never a later file given the same number.
#[derive(Debug, Default)]
pub(crate) struct LiveSockets(Mutex<Slab<RawFd>>);

/// A socket's place in [`LiveSockets`], given up when dropped: it borrows the socket, so it
/// is dropped before the socket can be closed.
pub(crate) struct Tracked<'a> {
    live: &'a LiveSockets,
    key: usize,
    _socket: PhantomData<&'a Stream>,
}

impl LiveSockets {
    /// Tracks `stream` until the returned guard is dropped.
    pub fn track<'a>(&'a self, stream: &'a Stream) -> Tracked<'a> {
        let key = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(stream.as_raw_fd());
        Tracked {
            live: self,
            key,
            _socket: PhantomData,
        }
    }

    /// Shuts down every tracked socket: blocked reads and writes on it fail at once.
    fn cut_all(&self) {
        for (_, &fd) in self.0.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            // SAFETY: the descriptor is open, and still this connection's socket: it leaves
            // the table (under this lock, held here) before its socket is closed.
            let socket = unsafe { BorrowedFd::borrow_raw(fd) };
            let _ = rustix::net::shutdown(socket, rustix::net::Shutdown::Both);
        }
    }
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        self.live
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .try_remove(self.key);
    }
}

/// A connection as the readiness-based models hold it: the socket, its protocol state, and
/// its place under the connection limit.
pub(crate) struct Client {
    pub socket: Stream,
    pub conn: Connection,
    watch: SendWatch,
    _admission: Option<Admission>,
}

impl Client {
    pub fn new(socket: Stream, context: &Context, clock: &Clock) -> Client {
        let (conn, admission) = context.accept(clock, &socket);
        Client {
            socket,
            conn,
            watch: SendWatch::default(),
            _admission: admission,
        }
    }

    /// Pumps the connection (see [`pump`]); a panic while serving it ends only it.
    pub fn pump(&mut self, clock: &Clock, site: &Site, reads: Reads) -> Pumped {
        let pumped = isolated(Pumped::Over, || {
            pump(&self.socket, &mut self.conn, clock, site, reads)
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

    /// True once the core's deadline has passed, unless the client turns out to be still
    /// taking a response (see [`SendWatch`]).
    pub fn expired(&mut self, now: Instant) -> bool {
        if self.conn.deadline() > now {
            return false;
        }
        if self.watch.moving(&self.socket) {
            self.conn.progressed(now);
        }
        self.conn.deadline() <= now
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
pub(crate) fn isolated<T>(fallback: T, step: impl FnOnce() -> T) -> T {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)).unwrap_or(fallback)
}

/// Answers a connection accepted over the limit (its `Connection` only says 503) without
/// tying up a worker: one non-blocking pump — the 503, the half-close, a drain of what the
/// client already sent so the close is not a reset — then close.
pub(crate) fn refuse(socket: Stream, mut conn: Connection, site: &Site) {
    if socket.set_nonblocking(true).is_ok() {
        let _ = pump(&socket, &mut conn, &clock_now(), site, Reads::UntilBlocked);
    }
}

/// Accepts one connection as a non-blocking socket (accept4 sets the flag: no extra fcntl).
pub(crate) fn accept_nonblocking(listener: &Listener) -> io::Result<Stream> {
    loop {
        match rustix::net::accept_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC) {
            Ok(fd) => return Ok(Stream::new(fd)),
            // A signal, or a client that gave up while waiting in the backlog: next one.
            Err(Errno::INTR | Errno::CONNABORTED) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The blocking models' accept loop: waits for a connection or the shutdown, hands each
/// accepted socket to `serve`, and returns once shutdown is triggered.
pub(crate) fn accept_until_shutdown(
    listener: &Listener,
    shutdown: &Shutdown,
    mut serve: impl FnMut(Stream),
) -> Result<(), Error> {
    while readable_unless_shutdown(listener, shutdown, None).map_err(Error::io("waiting for connections"))? {
        match listener.accept() {
            Ok((stream, _peer)) => serve(stream),
            // The peer gave up before we accepted, or a signal interrupted us: try again.
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionAborted | ErrorKind::Interrupted) => {}
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

/// Blocks until `fd` is readable (true), or until shutdown is triggered or `timeout` has
/// passed (false). One `poll` on two descriptors: the socket and the shutdown signal.
pub(crate) fn readable_unless_shutdown(
    fd: impl AsFd,
    shutdown: &Shutdown,
    timeout: Option<Duration>,
) -> io::Result<bool> {
    let [readable, stopping] = wait_readable([fd.as_fd(), shutdown.fd()], timeout)?;
    Ok(readable && !stopping)
}

/// Blocks until one of `fds` is readable or `timeout` passes (`None`: no limit); says which
/// are readable (an error or hang-up counts: the next read will report it).
pub(crate) fn wait_readable<const N: usize>(
    fds: [BorrowedFd<'_>; N],
    timeout: Option<Duration>,
) -> io::Result<[bool; N]> {
    let mut polled = fds.map(|fd| PollFd::from_borrowed_fd(fd, PollFlags::IN));
    let timeout = timeout.map(timespec);
    loop {
        match poll(&mut polled, timeout.as_ref()) {
            Ok(_) => return Ok(polled.each_ref().map(|fd| !fd.revents().is_empty())),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// One listener per worker: the one given, and `workers - 1` more `SO_REUSEPORT` ones on its
/// address, so the kernel spreads new connections across the workers. A listener that no
/// other can join (a Unix socket, or one passed in by systemd) is shared instead: every worker
/// gets a copy of it, and they take turns accepting.
pub(crate) fn listener_per_worker(listener: Listener, workers: usize) -> Result<Vec<Listener>, Error> {
    let mut listeners = Vec::with_capacity(workers);
    for _ in 1..workers {
        listeners.push(another_listener(&listener)?);
    }
    listeners.insert(0, listener);
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
    listen_reuseport(addr).map_err(|source| Error::listen(addr, source))
}

/// Runs each worker on its own thread until all return (they do when shutdown is
/// triggered); reports the first failure. A worker's panic is not a connection's (those are
/// caught inside): it is passed on.
pub(crate) fn run_workers<W: Send>(
    workers: Vec<W>,
    run: impl Fn(W) -> Result<(), Error> + Sync,
) -> Result<(), Error> {
    std::thread::scope(|scope| {
        let running: Vec<_> = workers
            .into_iter()
            .map(|worker| scope.spawn(|| run(worker)))
            .collect();
        running
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .fold(Ok(()), Result::and)
    })
}

/// Checks, before serving starts, what a model needs from the kernel that may be missing.
pub(crate) fn check_available(model: Model) -> Result<(), Error> {
    match model {
        Model::Uring => uring::check_available(),
        _ => Ok(()),
    }
}

/// What a non-blocking socket waits for after [`pump`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pumped {
    /// The socket would block; `progressed` if any bytes moved before it did.
    Blocked { wants: Interest, progressed: bool },
    /// The connection is over: an error, a timeout, or the core said close.
    Over,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interest {
    Read,
    Write,
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

/// Moves bytes between a non-blocking socket and the core until the socket would block or
/// the connection is over: the body of every readiness-based model.
pub(crate) fn pump(
    socket: &Stream,
    conn: &mut Connection,
    clock: &Clock,
    site: &Site,
    reads: Reads,
) -> Pumped {
    let mut progressed = false;
    let mut may_read = reads != Reads::Reported { readable: false };
    loop {
        let (result, wants) = match conn.poll(clock, site) {
            Action::Send(what) => (
                transmit(socket, what).map(|n| conn.sent(n, clock.now())),
                Interest::Write,
            ),
            Action::Receive { .. } if !may_read => (Err(ErrorKind::WouldBlock.into()), Interest::Read),
            Action::Receive { buf, .. } => {
                let room = buf.len();
                let read = (&*socket).read(buf);
                if let Ok(n) = read {
                    may_read = n == room || reads == Reads::UntilBlocked;
                    conn.received(n, clock.now());
                }
                (read.map(drop), Interest::Read)
            }
            Action::Finish => (socket.shutdown(Direction::Write), Interest::Read),
            Action::Close => return Pumped::Over,
        };
        match result {
            Ok(()) => progressed = true,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if wants == Interest::Read {
                    conn.rest(); // waiting between requests costs no buffer
                }
                return Pumped::Blocked { wants, progressed };
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Pumped::Over,
        }
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
        Transmit::Bytes { bytes, more } => {
            let more = if more { SendFlags::MORE } else { SendFlags::empty() };
            Ok(rustix::net::send(socket, bytes, SendFlags::NOSIGNAL | more)?)
        }
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

/// Timeouts are checked a few times per shortest timeout, and at least once a second.
pub(crate) fn sweep_interval(context: &Context) -> Duration {
    let settings = &context.settings;
    let shortest = settings
        .header_timeout
        .min(settings.idle_timeout)
        .min(settings.linger);
    (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

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
