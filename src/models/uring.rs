//! `uring`: one io_uring per worker thread; accepts, receives and sends are completions.
//!
//! How it works. The readiness-based models (`epoll`, `reactor`) ask the kernel "which of
//! these sockets could I read or write without blocking?", then make the `read` and `write`
//! system calls themselves. Completion-based I/O turns this around: the program hands the
//! kernel whole operations — "receive into this buffer", "send these bytes", "accept on this
//! listener" — as entries in a submission queue shared with the kernel, and later finds each
//! result ("517 bytes received", "-ECONNRESET") in a completion queue, tagged with the
//! `user_data` it attached. One `io_uring_enter` submits any number of operations and waits
//! for any number of results, so a busy loop makes about one system call per batch of
//! completions instead of one per read and one per write.
//!
//! Handing over buffers has a price: the kernel reads or writes them when it chooses, so a
//! buffer must stay alive and in place from submission until its completion has been seen —
//! also when the connection is being closed meanwhile. The rules here that make this easy:
//!
//! - A connection has at most one operation in flight: the link's single next step (receive,
//!   send, or read the next piece of a file). Its completion is reported to the link, which
//!   then gives the next step.
//! - The kernel only ever touches memory this model owns. Receives take a buffer from the
//!   ring's provided buffers (`engine/ring.rs`: 128 of 4 KiB per ring, 5.19+), which the
//!   kernel picks only once data has arrived: a receive waiting for a request holds no buffer.
//!   The completion names the buffer; its bytes are copied into the link's buffer and it is
//!   given back at once. Each connection has one buffer of its own for what it sends (one is
//!   enough, as only one operation is in flight): bytes to send are copied out of the link's,
//!   and file bodies are read a piece at a time into it and sent from it. It is let go when
//!   the link next waits for input, and so is the link's (`Link::rest`), so an idle connection
//!   costs its slab entry, its link and its socket, as in `reactor`. The copies are a few
//!   hundred bytes per request for heads, and keep the memory safety of this model
//!   independent of how the link manages its memory. Where the kernel has no provided
//!   buffers, a connection's own buffer takes its receives too, and is kept.
//! - A receive may bring more than the link, having let its buffer go, then asks for: the
//!   rest waits in the connection (`unread`) and is handed over before anything is received
//!   again. When a turn's receives find no provided buffer left, they fail with `ENOBUFS` and
//!   are submitted again: by the next turn every buffer has been given back.
//! - A connection is dropped only when it has no operation in flight. A timed-out one gets an
//!   `AsyncCancel` and is dropped when its (cancelled) operation completes. At shutdown every
//!   operation is cancelled and its completion awaited; a buffer still in the kernel's hands
//!   after that is leaked, never freed (the provided buffers, if a receive is).
//!
//! Files are read into the connection's buffer, then sent: one copy from the page cache
//! through user space, which `sendfile` avoids. The zero-copy alternative, `Splice` (file to
//! pipe to socket), costs a pipe (two descriptors) per connection sending a file, and io_uring
//! runs every splice on a blocking kernel worker thread — one per stalled client — rather
//! than completing it in place as it does reads of cached files and sends.
//!
//! Accepts are multishot where the kernel has it (5.19+): one submission yields a completion
//! per new connection. Each loop also keeps a `PollAdd` on the shutdown descriptor and a
//! `Timeout` that wakes it for the timeout sweep, so shutdown and timeouts are completions too.
//! Each ring accepts on its own `SO_REUSEPORT` listener, as in `reactor`; on a listener no
//! other can join (a Unix socket, or one passed in by systemd), every ring accepts on a copy
//! of the one listener, and each new connection completes the accept of one of them.
//!
//! What it costs: what `reactor` costs, plus a buffer per connection while it sends (as large
//! as the largest piece it moved, at most `CHUNK`), 512 KiB of provided buffers per ring, and
//! a copy of every byte received and of every byte of a file body. io_uring is also
//! often disabled (containers' seccomp profiles, the `io_uring_disabled` sysctl), and
//! the code needs `unsafe` to hand buffers to the kernel.
//!
//! Slowloris: a slow client costs a pending receive (and the link's buffer for its partial
//! head); others are served as usual.
//!
//! Measured (kernel 6.18, `-w 2`, `wrk -t2 -c100 -d5s`, a fresh server per run, rounds
//! interleaved with `reactor`; CPU is the server's utime+stime over its requests; on the
//! shared 2-core machine, loaded by other builds, so medians of several rounds):
//!
//! - Small page, keep-alive: 0.3 system calls per request (reactor 2.1) and reactor's CPU:
//!   medians of three sessions 7.15, 6.75 and 6.9 µs (reactor 7.25, 6.85, 6.8); req/s 0.73x,
//!   0.89x and 0.86x reactor's (the lead's full `bench/run` on a quiet machine: 0.97x).
//! - Churn, a connection per request: 1.9 system calls (reactor 5.8; per connection its
//!   `close` is a direct call) and 8% more CPU: 31.6 and 26.0 µs in two sessions (reactor 29.3
//!   and 24.0); req/s 0.86x and 0.91x (the lead's: 0.79x). On both, req/s falls further
//!   behind than CPU does when the machine is loaded.
//! - 1 MiB file: 43% of the CPU is the two copies (`_copy_to_iter` reading into the buffer,
//!   `_copy_from_iter` sending from it, `perf record -e cpu-clock`), which `sendfile` spares
//!   `reactor`: the lead's full `bench/run` had 479 µs per request against 150.
//! - Where churn's CPU goes (`perf record -e cpu-clock -g` on the workers): 88% in the
//!   kernel, nearly all TCP, accepting and scheduling, the work `reactor`'s system calls do
//!   too; io_uring's own part (submitting, arming polls, task work, completions) about 5%; no
//!   io-wq worker threads are started (no `iou-wrk` thread under churn). Voluntary context
//!   switches per request are `reactor`'s or fewer (churn 0.63 against 0.65, small 0.09
//!   against 0.12). In one run user space took 2.6 µs per churn request against
//!   `reactor`'s 1.2 (the copies, the slab, a buffer per connection).
//! - Tried and reverted: `SINGLE_ISSUER | DEFER_TASKRUN` (the ring enabled by its worker's
//!   thread) in place of `COOP_TASKRUN`. Medians of each round's ratio to uring without it,
//!   two sessions pooled: churn req/s 1.10x and CPU per request 0.98x (11 rounds, 8 of them
//!   faster), small req/s 0.94x and CPU 1.06x (13 rounds): a gain on churn as large as the
//!   rounds' spread, and a loss on small.
//! - Tried and reverted: `IORING_RECVSEND_POLL_FIRST` on a receive after a response (wait for
//!   the next request instead of trying at once): small's CPU per request 1.08x, req/s 0.91x
//!   (medians of 6 rounds' ratios).
//! - Tried and reverted: `SEND_ZC` for file pieces of 16 KiB or more, the send kept in flight
//!   until its second completion (the notification that the kernel is done with the buffer).
//!   On this machine (kernel 6.18 in a Firecracker VM, TCP on loopback) every such send
//!   completed with `EPERM`, with or without `MSG_NOSIGNAL`, so there was nothing to measure.
//!   Where it works, zero-copy pages sent to a socket on the same host are copied when they
//!   arrive (the kernel's `msg_zerocopy.rst`, "Loopback"), as in this benchmark.
//! - Provided buffers for receives (kept), with the connection's and the link's buffers let
//!   go while it waits for input: `bench/uring.sh 5 3 reactor=NEW:reactor before=OLD:uring
//!   after=NEW:uring`, twice (six rounds, on the shared machine). PSS with 9,000 idle
//!   keep-alive connections 13.0 to 13.4 MiB, was 29.3 to 29.8 (reactor 11.0 to 11.6; the
//!   rest of the gap is the 512 KiB of buffers per ring, all touched as the kernel takes them
//!   in turn, and a larger slab entry); p99 of fresh requests beside them no worse (0.18,
//!   0.23, 0.53 ms against 0.15, 0.27, 0.81). Medians of the six rounds' ratios to the old
//!   build: CPU per request small 1.00x, pipeline 1.01x, churn 0.94x, 1 MiB file 1.04x (its
//!   64 KiB buffer is now taken and let go per response); req/s 1.05x, 1.01x, 0.92x, 1.00x.
//!   System calls per request (round 1, counted): small 0.14 and 0.32 (were 0.18 and 0.39),
//!   churn 1.94 and 1.92 (1.94, 1.92), pipeline 0.01 to 0.02, 1 MiB 4.0 (4.1 to 4.4).
//! - The second run's medians (rounds 2 and 3), uring beside reactor: small 7.9 µs and 0.32
//!   system calls per request (reactor 7.1 µs, 2.1), 0.92x its req/s; churn 28.5 µs and 1.92
//!   (reactor 23.4 µs, 4.7), 0.93x; idle PSS 13.0 MiB (reactor 11.3).
//! - `TCP_DEFER_ACCEPT` on the listener (kept), as the readiness loops have it: an accept
//!   completes once the request is there, so the first receive completes as it is submitted
//!   instead of arming a poll and waking the ring again. Churn, per request (`perf stat`):
//!   polls armed 0.75 -> 0, context switches 0.53 -> 0.24. `bench/uring.sh 5 5`, medians of
//!   rounds 2-5: churn CPU per request 30.2 -> 27.7 µs (each round's ratio 0.84 to 0.97; reactor
//!   beside it 22.4), req/s 23,139 -> 22,692 (ratios 0.93 to 1.07; reactor 27,681); small,
//!   pipeline, 1 MiB and idle memory within the rounds' spread (small's CPU ratios 0.90 to 1.21).
//!   What is left of churn's gap is mostly user space: `perf record -e cpu-clock` put it at
//!   ~3.9 µs per request against reactor's ~2.7 (allocation, copies into and out of the
//!   connection's buffers, the slab), with the kernel's share level.
//! - The full `bench/run` of 4882cde (quiet machine, main pass, no rounds), uring against
//!   reactor: small 1.08x its req/s at 0.88x its CPU per request, churn 1.09x at 0.91x, 1 MiB
//!   0.58x at 3.1x (BENCHMARKS.md). The run before it, without `TCP_DEFER_ACCEPT` or
//!   provided buffers, had churn at 0.79x and 1.29x.
//! - Not tried: registered (fixed) files. They spare each operation the lookup of its
//!   descriptor (`fget`, `fput`): 0.5% of the server's CPU under churn (`perf record -e
//!   cpu-clock`, 4 s), below what rounds here can tell apart. Accepting straight into the
//!   fixed table would also leave a connection without the ordinary descriptor this model
//!   still uses (the peer's address for the log and `--proxy-protocol`, `SIOCOUTQ` for the
//!   send timeout, `shutdown`); registering both costs an operation per connection.
//! - Not tried: multishot receives (`RecvMulti`). What they would spare is measured: on small
//!   keep-alive, 0.87 polls armed per request (`perf stat`), and the arming and its task work
//!   (`io_arm_apoll`, `tcp_poll`, the poll handler, the queueing) are about 2% of the server's
//!   CPU (`perf record -e cpu-clock`; io_uring's whole part about 10%), plus one submission.
//!   The price: a receive armed while the response is sent breaks the one-operation rule
//!   above; bytes arriving while the link is not asking for them need a bound and a way to
//!   pause; and a connection the server closes first (churn) would need a cancellation, and
//!   one more completion, before it can be dropped, since the armed receive holds the socket.
//!
//! When it wins: many busy connections per core, where the system calls of a readiness loop
//! (`epoll_wait`, then `read` and `write` per socket) dominate; batching them into one
//! `io_uring_enter` per round saves most of the kernel entries.

use crate::engine::{
    clock_now, feed, grown, isolated, listener_per_worker, outcome, run_workers, sweep_interval, tick,
    Admission, Context, Op, Ring, SendWatch, ACCEPT, CANCEL, DEFER_ACCEPT, SHUTDOWN, TIMER,
};
use crate::error::Error;
use crate::net::{Listener, Stream};
use crate::observe::trace::{trace_event, Kind};
use crate::seam::{Clock, Handler, Link, Step, Transmit};
use io_uring::{cqueue, opcode, squeue, types};
use rustix::io::Errno;
use rustix::net::SendFlags;
use slab::Slab;
use std::net::Shutdown as Direction;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// The most one operation moves: the largest a connection's buffer grows.
const CHUNK: usize = 64 * 1024;
/// How long shutdown waits for cancelled operations to complete.
const CANCEL_GRACE: Duration = Duration::from_secs(1);

pub(super) fn run<H: Handler + Sync>(listener: Listener, context: &Context<H>) -> Result<(), Error> {
    // Every ring is set up before any serving starts, so a kernel without io_uring makes the
    // server fail at once with one clear line.
    let workers = listener_per_worker(listener, context.workers)?
        .into_iter()
        .map(|listener| Worker::new(listener, context))
        .collect::<Result<Vec<_>, _>>()?;
    run_workers(workers, Worker::run)
}

/// One ring and the connections it serves.
struct Worker<'a, H> {
    ring: Ring,
    context: &'a Context<H>,
    /// Closed once the accept has ended during a drain, so new clients are refused.
    listener: Option<Listener>,
    connections: Slab<RingClient>,
    clock: Clock,
    /// Cleared if the kernel refuses multishot accepts (before 5.19).
    multishot: bool,
    /// An accept is in flight.
    accepting: bool,
    /// Accepting stopped for lack of descriptors or memory; resumed by the next sweep.
    accept_paused: bool,
    /// Set once shutdown is triggered: serving ends when the last connection has, or then.
    draining_until: Option<Instant>,
    /// Everything still in flight is being cancelled: no new operations.
    stopping: bool,
}

/// A connection as a ring holds it: unlike a readiness model's, it owns the memory the kernel
/// reads and writes for it.
struct RingClient {
    socket: Stream,
    link: Link,
    /// The memory the kernel reads from and writes to; see the header. It changes (grows) only
    /// while no operation is in flight.
    buffer: Vec<u8>,
    /// Received bytes the link has not asked for yet (it asked for less than came), handed
    /// to it before anything more is received.
    unread: Vec<u8>,
    /// `buffer[sent..staged]` is output taken from the link and not yet written. The link is
    /// told it was sent once all of it has been.
    staged: usize,
    sent: usize,
    in_flight: Option<Op>,
    /// Past its deadline: dropped as soon as its operation completes.
    expired: bool,
    /// Its receive is cancelled for the link to say a last word (`Link::expire`, `drain`).
    last_words: bool,
    /// It has sent something. At the stop, a connection that has not is left to bring its
    /// first request, answered and then drained: its client has sent it or is sending it,
    /// and a receive cancelled now would fail it (a new connection accepted just before the
    /// stop, from a shared listener that another server, an upgrade, goes on serving).
    answered: bool,
    /// To be drained once it has answered.
    drain_when_answered: bool,
    /// Looked at on every sweep while a send is in flight, which may wait long for room.
    watch: SendWatch,
    _admission: Option<Admission>,
}

impl<'a, H: Handler> Worker<'a, H> {
    fn new(listener: Listener, context: &'a Context<H>) -> Result<Worker<'a, H>, Error> {
        // A connection's first receive then finds its request there and completes as it is
        // submitted, instead of arming a poll and waking the ring once more.
        listener.defer_accept(DEFER_ACCEPT);
        Ok(Worker {
            ring: Ring::new()?.sweeping_every(sweep_interval(&context.settings)),
            context,
            listener: Some(listener),
            connections: Slab::new(),
            clock: clock_now(),
            multishot: true,
            accepting: false,
            accept_paused: false,
            draining_until: None,
            stopping: false,
        })
    }

    fn run(mut self) -> Result<(), Error> {
        self.accept()?;
        let shutdown = self.context.shutdown.fd().as_raw_fd();
        self.ring.poll_readable(shutdown, SHUTDOWN)?;
        self.ring.arm_timer()?;
        while !self.stopping {
            self.turn()?;
            if let Some(until) = self.draining_until {
                let drained = self.connections.is_empty() && !self.accepting;
                self.stopping = drained || self.clock.now() >= until;
            }
        }
        self.cancel_everything()?;
        let grace = Instant::now() + CANCEL_GRACE;
        while self.busy() && Instant::now() < grace {
            self.turn()?;
        }
        // Whatever is still in flight is leaked by `drop`.
        Ok(())
    }

    /// Submits what is queued, waits for at least one completion, handles all there are.
    fn turn(&mut self) -> Result<(), Error> {
        self.ring.submit_and_wait(&self.context.trace)?;
        tick(&mut self.clock);
        while let Some(completion) = self.ring.next_completion() {
            self.complete(completion)?;
        }
        Ok(())
    }

    fn complete(&mut self, completion: cqueue::Entry) -> Result<(), Error> {
        let result = completion.result();
        match completion.user_data() {
            SHUTDOWN => self.start_draining()?,
            TIMER => self.on_timer()?,
            ACCEPT => self.on_accept(result, completion.flags())?,
            CANCEL => {}
            user_data => {
                if let Some((key, op)) = Op::decode(user_data) {
                    self.on_operation(key, op, result, completion.flags())?;
                }
                self.ring.give_back(completion.flags());
            }
        }
        Ok(())
    }

    fn accept(&mut self) -> Result<(), Error> {
        let Some(listener) = &self.listener else {
            return Ok(());
        };
        self.ring.accept(listener.as_raw_fd(), self.multishot)?;
        self.accepting = true;
        Ok(())
    }

    fn on_accept(&mut self, result: i32, flags: u32) -> Result<(), Error> {
        // A multishot accept ends (and must be submitted again) when a completion says so.
        self.accepting &= cqueue::more(flags);
        if let Ok(fd) = u32::try_from(result) {
            trace_event!(
                self.context.trace,
                Kind::Accept,
                "fd {fd}, a completion of the accept"
            );
            // SAFETY: the kernel just created this descriptor for us; nothing else owns it.
            let socket = Stream::new(unsafe { OwnedFd::from_raw_fd(fd as i32) });
            if !self.stopping {
                self.register(socket)?; // (Accepted as the server stops: closed at once.)
            }
        } else if -result == Errno::INVAL.raw_os_error() && self.multishot {
            self.multishot = false; // A kernel before 5.19: accept one at a time.
        } else if ![Errno::CONNABORTED, Errno::INTR, Errno::CANCELED]
            .contains(&Errno::from_raw_os_error(-result))
        {
            // Out of descriptors or memory: the backlog stays non-empty, so accepting again
            // now would fail again at once. Wait for the next sweep; clients wait in the backlog.
            crate::observe::accept_failed(&std::io::Error::from_raw_os_error(-result));
            self.accept_paused = true;
        }
        if self.draining_until.is_some() {
            if !self.accepting {
                self.listener = None; // the cancelled accept has ended: refuse new clients
            }
            return Ok(());
        }
        if !self.accepting && !self.accept_paused && !self.stopping {
            self.accept()?;
        }
        Ok(())
    }

    /// Shutdown: stop accepting, and let every connection finish the response it is sending
    /// and end, within the shutdown timeout. Connections waiting for a request are ended at
    /// once by cancelling their receive.
    fn start_draining(&mut self) -> Result<(), Error> {
        self.draining_until = Some(self.clock.now() + self.context.shutdown_timeout);
        if self.accepting {
            self.ring.cancel(ACCEPT)?;
        }
        let waiting: Vec<usize> = self
            .connections
            .iter_mut()
            .filter_map(|(key, client)| {
                let receiving = client.in_flight == Some(Op::Receive);
                if receiving && !client.answered {
                    client.drain_when_answered = true;
                    return None;
                }
                client.last_words = client.link.drain() && receiving;
                receiving.then_some(key)
            })
            .collect();
        for key in waiting {
            self.ring.cancel(Op::Receive.user_data(key))?;
        }
        Ok(())
    }

    fn register(&mut self, socket: Stream) -> Result<(), Error> {
        let (link, admission) = self.context.accept(&self.clock, &socket);
        let key = self.connections.insert(RingClient {
            socket,
            link,
            buffer: Vec::new(),
            unread: Vec::new(),
            staged: 0,
            sent: 0,
            in_flight: None,
            expired: false,
            last_words: false,
            answered: false,
            drain_when_answered: self.draining_until.is_some(),
            watch: SendWatch::default(),
            _admission: admission,
        });
        self.advance(key)
    }

    /// A connection's operation completed: tells the link, then starts the next step.
    fn on_operation(&mut self, key: usize, op: Op, result: i32, flags: u32) -> Result<(), Error> {
        let Some(client) = self.connections.get_mut(key) else {
            return Ok(()); // Cannot happen: a connection with an operation in flight is kept.
        };
        client.in_flight = None;
        trace_event!(
            self.context.trace,
            Kind::Complete,
            "{op:?} on fd {}: {}",
            client.socket.as_raw_fd(),
            outcome(result)
        );
        if self.stopping {
            return Ok(()); // Shutting down: no new operations; the connection goes with the worker.
        }
        let now = self.clock.now();
        let provided = self.ring.provided(result, flags);
        // A panic in the link or the handler (a bug) ends only this connection.
        let progressed = !client.expired
            && isolated(false, || match op {
                Op::Receive => client.received(result, provided, &self.clock, &self.context.handler),
                Op::Send => client.wrote(result, now),
                Op::ReadFile => client.read_file(result),
            });
        if progressed {
            if client.drain_when_answered && client.answered {
                client.drain_when_answered = false;
                client.link.drain();
            }
            self.advance(key)
        } else {
            self.connections.remove(key);
            Ok(())
        }
    }

    /// Submits the connection's next operation, or drops the connection if the link is done
    /// with it.
    fn advance(&mut self, key: usize) -> Result<(), Error> {
        let client = &mut self.connections[key];
        let (clock, handler) = (&self.clock, &self.context.handler);
        // Nothing is in flight while the link decides, so a panic there (a bug) can end the
        // connection safely.
        let ring = &self.ring;
        match isolated(None, || client.next_operation(ring, clock, handler)) {
            Some((entry, op)) => {
                client.in_flight = Some(op);
                // SAFETY: the entry points into `client.buffer`, or into the ring's provided
                // buffers (which it owns), or names a file the link keeps open until told the
                // file was sent. The buffer's heap memory does not move when the slab does, is
                // not resized or replaced while an operation is in flight, and is freed only once
                // none is (see `on_operation`, `close_expired` and `drop`). The link is not told
                // of anything until the completion.
                unsafe { self.ring.push(entry.user_data(op.user_data(key))) }
            }
            None => {
                self.connections.remove(key);
                Ok(())
            }
        }
    }

    /// The periodic wake-up: closes connections past their deadline, resumes accepting.
    fn on_timer(&mut self) -> Result<(), Error> {
        self.close_expired()?;
        if self.accept_paused && !self.stopping && self.draining_until.is_none() {
            self.accept_paused = false;
            if !self.accepting {
                self.accept()?;
            }
        }
        self.ring.arm_timer()
    }

    /// Cancels the operation of every connection past its deadline; each is dropped when its
    /// operation completes.
    fn close_expired(&mut self) -> Result<(), Error> {
        let now = self.clock.now();
        let expired: Vec<usize> = self
            .connections
            .iter_mut()
            .filter_map(|(key, client)| client.past_deadline(now).then_some(key))
            .collect();
        for key in expired {
            let client = &mut self.connections[key];
            client.last_words = client.in_flight == Some(Op::Receive) && client.link.expire(now);
            client.expired = !client.last_words;
            match client.in_flight {
                Some(op) => self.ring.cancel(op.user_data(key))?,
                None => drop(self.connections.remove(key)),
            }
        }
        Ok(())
    }

    fn cancel_everything(&mut self) -> Result<(), Error> {
        let in_flight: Vec<u64> = self
            .connections
            .iter()
            .filter_map(|(key, client)| Some(client.in_flight?.user_data(key)))
            .collect();
        for user_data in in_flight {
            self.ring.cancel(user_data)?;
        }
        // The accept holds the listening socket open: the port must close with the server.
        if self.accepting {
            self.ring.cancel(ACCEPT)?;
        }
        Ok(())
    }

    /// Something is still in the kernel's hands.
    fn busy(&self) -> bool {
        self.accepting || self.connections.iter().any(|(_, c)| c.in_flight.is_some())
    }
}

impl<H> Drop for Worker<'_, H> {
    /// However the worker ends — shutdown, error or panic — a buffer the kernel may still
    /// write to is leaked rather than freed. After a clean shutdown there is none.
    fn drop(&mut self) {
        for (_, client) in self.connections.iter_mut() {
            if client.in_flight == Some(Op::Receive) {
                self.ring.leak_buffers();
            }
            if client.in_flight.is_some() {
                std::mem::forget(std::mem::take(&mut client.buffer));
            }
        }
    }
}

impl RingClient {
    /// Whether the connection has run out of time (and is not already being dropped). A send
    /// in flight may wait long for room in the socket: each sweep measures the socket's queue,
    /// and a client seen taking data has its send timeout start over.
    fn past_deadline(&mut self, now: Instant) -> bool {
        if self.expired {
            return false;
        }
        if self.in_flight == Some(Op::Send) && self.watch.moving(&self.socket) {
            self.link.progressed(now);
        }
        self.link.deadline() <= now
    }

    /// Drives the link until it needs the kernel: the operation to submit, or `None` when the
    /// connection is over.
    fn next_operation(
        &mut self,
        ring: &Ring,
        clock: &Clock,
        handler: &impl Handler,
    ) -> Option<(squeue::Entry, Op)> {
        let socket = types::Fd(self.socket.as_raw_fd());
        loop {
            if self.sent < self.staged {
                let pending = &self.buffer[self.sent..self.staged];
                let send = opcode::Send::new(socket, pending.as_ptr(), pending.len() as u32)
                    // A peer that went away is an error to handle, not a SIGPIPE.
                    .flags(SendFlags::NOSIGNAL.bits() as i32);
                return Some((send.build(), Op::Send));
            }
            match self.link.poll(clock, handler) {
                Step::Send(Transmit::Bytes { bytes, .. }) => {
                    let len = bytes.len().min(CHUNK);
                    if len == 0 {
                        return None; // The link never asks this; looping on it would never end.
                    }
                    grown(&mut self.buffer, len).copy_from_slice(&bytes[..len]);
                    (self.sent, self.staged) = (0, len);
                }
                Step::Send(Transmit::File { file, offset, len }) => {
                    let buffer = grown(&mut self.buffer, len.min(CHUNK));
                    let fd = types::Fd(file.as_raw_fd());
                    let read = opcode::Read::new(fd, buffer.as_mut_ptr(), buffer.len() as u32).offset(offset);
                    return Some((read.build(), Op::ReadFile));
                }
                Step::Receive { .. } if !self.unread.is_empty() => {
                    let taken = self.unread.len() - feed(&mut self.link, &self.unread, clock, handler).len();
                    self.unread = self.unread.split_off(taken); // (freed once all is taken)
                }
                Step::Receive { buf, .. } => {
                    let len = buf.len().min(CHUNK);
                    if ring.provides_buffers() {
                        // Waiting for input costs no buffer: the kernel picks one when it comes.
                        self.link.rest();
                        self.buffer = Vec::new();
                    }
                    return Some((ring.receive(socket, len, &mut self.buffer), Op::Receive));
                }
                // `shutdown` never blocks, so it is simply called.
                Step::Finish => self.socket.shutdown(Direction::Write).ok()?,
                Step::Close => return None,
            }
        }
    }

    /// A receive completed with `result`, its bytes in the provided buffer it `got` or else in
    /// the connection's own; false if the connection is over.
    fn received(&mut self, result: i32, got: Option<&[u8]>, clock: &Clock, handler: &impl Handler) -> bool {
        let Ok(n) = usize::try_from(result) else {
            // Cancelled for a last word; or no provided buffer was left: receive again.
            return std::mem::take(&mut self.last_words) || -result == Errno::NOBUFS.raw_os_error();
        };
        let Some(input) = got.or(self.buffer.get(..n)) else {
            return false;
        };
        let left = feed(&mut self.link, input, clock, handler);
        self.unread.extend_from_slice(left);
        true
    }

    /// A send completed with `result`.
    fn wrote(&mut self, result: i32, now: Instant) -> bool {
        match usize::try_from(result) {
            Ok(n) if n > 0 => {
                self.answered = true;
                self.sent += n;
                if self.sent >= self.staged {
                    self.link.sent(self.staged, now);
                    (self.sent, self.staged) = (0, 0);
                }
                true
            }
            _ => false,
        }
    }

    /// A read of a file completed with `result`. 0 means the file shrank after its length
    /// was announced: the response cannot be completed, and closing is the only honest end.
    fn read_file(&mut self, result: i32) -> bool {
        match usize::try_from(result) {
            Ok(n) if n > 0 => {
                (self.sent, self.staged) = (0, n);
                true
            }
            _ => false,
        }
    }
}
