//! The edge-triggered epoll loop that `epoll` runs once, `reactor` once per worker thread and
//! `prefork` once per worker process (see those models for why each wins when).
//!
//! The listener, the shutdown descriptor and every connection are registered with one epoll
//! instance. The listener reports a connection once its request has arrived
//! (`TCP_DEFER_ACCEPT`), and it is served as soon as it is accepted: one that is over by then
//! (`Connection: close`) is never registered. The others are registered once, edge-triggered,
//! for both reading and writing;
//! on each event the connection is pumped — write what the link has queued, read what has
//! arrived, repeat — until the socket would block. Timeouts are found by a sweep of all
//! connections a few times per timeout period. With steering (`reactor` on its own
//! listeners), the loop also reports its connections at each sweep and hands some to, or
//! takes some from, the other loops (see `steer`).

use super::accept::{accept_nonblocking, DEFER_ACCEPT};
use super::context::{clock_now, sweep_interval, tick, Context};
use super::readiness::{Client, Pumped, Reads};
use super::steer::{Handover, WorkerSteering};
use crate::error::Error;
use crate::net::{Listener, Stream};
use crate::observe::trace::{trace_event, Kind};
use crate::seam::{Clock, Handler};
use crate::shutdown::timespec;
use rustix::event::epoll::{self, CreateFlags, EventData, EventFlags};
use rustix::io::Errno;
use slab::Slab;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

const LISTENER: u64 = u64::MAX;
const SHUTDOWN: u64 = u64::MAX - 1;
/// `reactor`: the doorbell another worker rings when it hands connections over (`steer`).
const HANDED: u64 = u64::MAX - 2;
/// Events taken from the kernel per `epoll_wait`.
const EVENT_BATCH: usize = 1024;

/// One epoll loop: the `epoll` model runs one, the `reactor` one per worker.
pub(crate) struct EventLoop<'a, H> {
    context: &'a Context<H>,
    epoll: OwnedFd,
    /// Closed when the server starts to stop, so new clients are refused at once.
    listener: Option<Listener>,
    connections: Slab<Client>,
    /// Set once shutdown is triggered: the loop ends when the last connection has, or then.
    draining_until: Option<Instant>,
    clock: Clock,
    listen_flags: EventFlags,
    /// False while accepting is paused for lack of descriptors.
    listening: bool,
    sweep_every: Duration,
    next_sweep: Instant,
    /// `reactor` on its own listeners: this loop's part in steering connections by CPU.
    steer: Option<WorkerSteering<'a>>,
}

impl<'a, H: Handler> EventLoop<'a, H> {
    /// A loop that owns its listener: the only one accepting on it.
    pub(crate) fn new(listener: Listener, context: &'a Context<H>) -> io::Result<EventLoop<'a, H>> {
        EventLoop::with_listen_flags(listener, context, EventFlags::IN)
    }

    /// A loop on a listener other loops wait on too (`prefork`, and `reactor` on a listener
    /// no other can join). EPOLLEXCLUSIVE wakes one waiter per new connection instead of all
    /// of them (the thundering herd).
    pub(crate) fn sharing(listener: Listener, context: &'a Context<H>) -> io::Result<EventLoop<'a, H>> {
        EventLoop::with_listen_flags(listener, context, EventFlags::IN | EventFlags::EXCLUSIVE)
    }

    fn with_listen_flags(
        listener: Listener,
        context: &'a Context<H>,
        listen_flags: EventFlags,
    ) -> io::Result<EventLoop<'a, H>> {
        listener.set_nonblocking(true)?;
        // New connections are served as they are accepted (`register`): have them reported
        // once their request is there.
        listener.defer_accept(DEFER_ACCEPT);
        let epoll = epoll::create(CreateFlags::CLOEXEC)?;
        epoll::add(&epoll, &listener, EventData::new_u64(LISTENER), listen_flags)?;
        epoll::add(
            &epoll,
            context.shutdown.fd(),
            EventData::new_u64(SHUTDOWN),
            EventFlags::IN,
        )?;
        let clock = clock_now();
        let sweep_every = sweep_interval(&context.settings);
        Ok(EventLoop {
            context,
            epoll,
            listener: Some(listener),
            connections: Slab::new(),
            draining_until: None,
            listen_flags,
            listening: true,
            next_sweep: clock.now() + sweep_every,
            clock,
            sweep_every,
            steer: None,
        })
    }

    /// A loop whose listener was tagged with a CPU (see `steer`): it reports its connections
    /// at each sweep, gives up the tag and hands connections over if it holds far more than
    /// its share, and takes those handed to it.
    pub(crate) fn steered(self, steer: WorkerSteering<'a>) -> io::Result<EventLoop<'a, H>> {
        epoll::add(
            &self.epoll,
            steer.doorbell(),
            EventData::new_u64(HANDED),
            EventFlags::IN,
        )?;
        Ok(EventLoop {
            steer: Some(steer),
            ..self
        })
    }

    pub(crate) fn run(mut self) -> Result<(), Error> {
        let mut events = Vec::with_capacity(EVENT_BATCH);
        loop {
            if let Some(until) = self.draining_until {
                if self.connections.is_empty() || self.clock.now() >= until {
                    return Ok(()); // connections still open now are cut as the loop drops
                }
            }
            events.clear();
            let wake = self
                .draining_until
                .map_or(self.next_sweep, |until| until.min(self.next_sweep));
            let timeout = timespec(wake.saturating_duration_since(Instant::now()));
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                Some(&timeout),
            ) {
                Ok(_) => {}
                Err(Errno::INTR) => continue,
                Err(e) => return Err(Error::io("waiting for events")(e.into())),
            }
            if !events.is_empty() {
                trace_event!(self.context.trace, Kind::EpollWait, "{} ready", events.len());
            }
            tick(&mut self.clock);
            for event in &events {
                match event.data.u64() {
                    SHUTDOWN => self.start_draining(),
                    LISTENER => self.accept_all(),
                    HANDED => self.take_handed(),
                    key => self.pump(key as usize, reads_after(event.flags)),
                }
            }
            if self.clock.now() >= self.next_sweep {
                self.close_expired();
                self.set_listening(true);
                if let (Some(steer), Some(listener)) = (&mut self.steer, &self.listener) {
                    let held = self.connections.len();
                    for handover in steer.check(held, listener, &self.context.trace) {
                        self.hand_over(handover);
                    }
                }
                self.next_sweep = self.clock.now() + self.sweep_every;
            }
        }
    }

    /// Shutdown: stop accepting (closing the listener refuses new clients), then let every
    /// connection finish the response it is sending and end, within the shutdown timeout.
    fn start_draining(&mut self) {
        if let Some(listener) = self.listener.take() {
            let _ = epoll::delete(&self.epoll, &listener);
        }
        // The shutdown descriptor stays readable: stop watching it, or every wait would
        // return at once.
        let _ = epoll::delete(&self.epoll, self.context.shutdown.fd());
        self.draining_until = Some(self.clock.now() + self.context.shutdown_timeout);
        let keys: Vec<usize> = self.connections.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.connections[key].link.drain();
            // Idle ones end now; the others when their response is out.
            self.pump(key, Reads::UntilBlocked);
        }
    }

    /// Accepts until the backlog is empty: with many clients connecting, one wake-up
    /// serves them all.
    fn accept_all(&mut self) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match accept_nonblocking(listener) {
                Ok(socket) => {
                    trace_event!(self.context.trace, Kind::Accept, "fd {}", socket.as_raw_fd());
                    self.register(socket)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // Out of descriptors or memory: the backlog stays non-empty, so the listener
                // would wake us at once, forever. Stop listening until the next sweep; the
                // clients wait in the backlog meanwhile.
                Err(e) => {
                    crate::observe::accept_failed(&e);
                    return self.set_listening(false);
                }
            }
        }
    }

    /// Removes or restores the listener's registration (EPOLLEXCLUSIVE entries cannot be
    /// modified, only deleted and added again).
    fn set_listening(&mut self, listening: bool) {
        let Some(listener) = &self.listener else {
            return;
        };
        let done = match (self.listening, listening) {
            (true, false) => epoll::delete(&self.epoll, listener),
            (false, true) => {
                let data = EventData::new_u64(LISTENER);
                epoll::add(&self.epoll, listener, data, self.listen_flags)
            }
            _ => return,
        };
        if done.is_ok() {
            self.listening = listening;
        }
    }

    /// Serves a new connection at once, and adds it to the epoll set only if it is not over
    /// then. A client usually sends its request right after connecting, so by the time it is
    /// accepted the request is there: a connection that asks for one response and closes
    /// (`Connection: close`) is read, answered and closed in this call, with no
    /// `epoll_ctl` and no wait for the event that adding it would report. The read trusts
    /// what it finds (a read that does not fill the buffer is the last) because the
    /// `epoll_ctl` that follows reports whatever arrived since.
    fn register(&mut self, socket: Stream) {
        let mut client = Client::new(socket, self.context, &self.clock);
        let first = Reads::Reported { readable: true };
        if let Pumped::Blocked { .. } = client.pump(&self.clock, self.context, first) {
            self.watch(client);
        }
    }

    /// Adds `client`'s socket to the epoll set; the key to its events is its slot. Adding
    /// a socket reports at once what it has pending, so one that comes from another loop
    /// (`hand_over`) misses no event. Returns the key, or `None` if epoll refused the socket
    /// (it is then dropped, which closes it).
    fn watch(&mut self, client: Client) -> Option<usize> {
        let entry = self.connections.vacant_entry();
        let key = entry.key();
        let interest = EventFlags::IN | EventFlags::OUT | EventFlags::RDHUP | EventFlags::ET;
        epoll::add(
            &self.epoll,
            &client.socket,
            EventData::new_u64(key as u64),
            interest,
        )
        .ok()?;
        entry.insert(client);
        Some(key)
    }

    /// Passes `handover.count` connections to another loop (see `steer`), first those whose
    /// packets now arrive on its CPU. Each leaves this epoll set first, so that no event of
    /// its comes here after it has gone.
    fn hand_over(&mut self, handover: Handover) {
        let Some(steer) = &self.steer else {
            return;
        };
        let (mut keys, others): (Vec<usize>, Vec<usize>) = self
            .connections
            .iter()
            .map(|(key, _)| key)
            .partition(|&key| steer.arrives_for(handover.to, &self.connections[key].socket));
        keys.extend(others);
        keys.truncate(handover.count);
        trace_event!(
            self.context.trace,
            Kind::Handover,
            "{} connections to worker {}",
            keys.len(),
            handover.to
        );
        let clients = keys
            .into_iter()
            .map(|key| self.connections.remove(key))
            .filter(|client| epoll::delete(&self.epoll, &client.socket).is_ok())
            .collect();
        steer.hand_over(handover.to, clients);
    }

    /// Takes the connections another loop handed to this one. While draining, they are told
    /// to finish as the others were.
    fn take_handed(&mut self) {
        let Some(steer) = &self.steer else {
            return;
        };
        let handed = steer.take_handed();
        trace_event!(
            self.context.trace,
            Kind::Handover,
            "{} connections taken from another worker",
            handed.len()
        );
        for mut client in handed {
            if self.draining_until.is_some() {
                client.link.drain();
            }
            if let Some(key) = self.watch(client) {
                if self.draining_until.is_some() {
                    self.pump(key, Reads::UntilBlocked);
                }
            }
        }
    }

    fn pump(&mut self, key: usize, reads: Reads) {
        let Some(client) = self.connections.get_mut(key) else {
            return; // closed earlier in this batch
        };
        // Edge-triggered epoll reports a socket again once it has more to read or room to
        // write, and `pump` stops only where it would block or has read all there was;
        // so the interest never has to change.
        if matches!(client.pump(&self.clock, self.context, reads), Pumped::Over) {
            self.close(key);
        }
    }

    /// Closing the socket takes it out of the interest list: a socket is the only descriptor
    /// of its connection (never duplicated, accepted after any fork), and the kernel drops
    /// an epoll entry with the last descriptor of its file. So no `EPOLL_CTL_DEL`, one
    /// system call fewer per connection. (Deleting after closing fails: see ARCHITECTURE.md,
    /// "Lessons".)
    fn close(&mut self, key: usize) {
        self.connections.remove(key);
    }

    fn close_expired(&mut self) {
        let (clock, context) = (&self.clock, self.context);
        let expired: Vec<usize> = self
            .connections
            .iter_mut()
            .filter_map(|(key, client)| client.expired(clock, context).then_some(key))
            .collect();
        for key in expired {
            self.close(key);
        }
    }
}

/// What an event says of a socket's input: a hang-up or error must be read through to the
/// end of stream; otherwise the report is trusted (see [`Reads::Reported`]).
fn reads_after(flags: EventFlags) -> Reads {
    if flags.intersects(EventFlags::RDHUP | EventFlags::HUP | EventFlags::ERR) {
        Reads::UntilBlocked
    } else {
        Reads::Reported {
            readable: flags.contains(EventFlags::IN),
        }
    }
}
