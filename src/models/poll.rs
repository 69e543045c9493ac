//! `poll`: one thread, `poll(2)` over every socket each turn.
//!
//! How it works: each turn builds an array with the shutdown signal, the listener and every
//! connection — each asking for readable or writable, whichever its last pump stopped on —
//! and hands the whole array to `poll`. The kernel checks every entry and marks the ready
//! ones; the loop then scans the whole array for marks and pumps those connections.
//!
//! What it costs: every turn is O(n) twice — the kernel walks all n descriptors (and copies
//! the array in and out), then the loop walks them again — even when one connection out of
//! ten thousand is ready. epoll keeps the interest list in the kernel and returns only the
//! ready ones, which is why it wins as connections grow: this model is kept to show that.
//!
//! Slowloris: slow clients cost nothing while silent, but each one lengthens every `poll`
//! call; a normal client is still served, a little later per thousand slow ones.
//!
//! Measured (the full `bench/run` of 2026-12-02 22:57 UTC, commit 8b33600, on a quiet 2-core
//! machine: `-w 2`, `wrk -t2 -c100`; CPU is the server's utime+stime over its requests, system
//! calls counted by `perf`): a small page over keep-alive costs 8.9 µs and 3.0 system calls per
//! request (`reactor`: 8.4 µs, 2.1); `Connection: close` churn 22.3 µs and 4.4 (`reactor`: 31.2 µs,
//! 6.6): at 100 connections the O(n) walk is still short.
//!
//! When it wins: a few hundred connections or fewer, where the O(n) is small; and
//! portability (poll is POSIX; epoll is Linux-only).

use crate::engine::{
    accept_nonblocking, clock_now, sweep_interval, tick, Client, Context, Interest, Pumped, Reads,
};
use crate::error::Error;
use crate::net::Listener;
use crate::observe::trace::{trace_event, Kind};
use crate::seam::{Clock, Handler};
use crate::shutdown::timespec;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;
use std::io::ErrorKind;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Instant;

/// A connection and what its socket must become before pumping it again.
struct Waiting {
    client: Client,
    wants: Interest,
}

pub(super) fn run<H: Handler>(listener: Listener, context: &Context<H>) -> Result<(), Error> {
    listener
        .set_nonblocking(true)
        .map_err(Error::io("setting up the listener"))?;
    let mut listener = Some(listener);
    let mut clock = clock_now();
    let mut waiting: Vec<Waiting> = Vec::new();
    let mut ready: Vec<usize> = Vec::new();
    let mut accept_paused_until: Option<Instant> = None;
    let mut draining_until: Option<Instant> = None;
    loop {
        if draining_until.is_some_and(|until| waiting.is_empty() || clock.now() >= until) {
            return Ok(()); // connections still open now are cut as they drop
        }
        let accepting = accept_paused_until.is_none_or(|until| clock.now() >= until);
        let turn = Turn {
            // Once draining, the shutdown descriptor (which stays readable) is not watched.
            shutdown: draining_until.is_none().then(|| context.shutdown.fd()),
            listener: listener.as_ref().filter(|_| accepting).map(|l| l.as_fd()),
        };
        let (stopping, incoming) = turn.wait(context, &waiting, &mut ready)?;
        tick(&mut clock);
        if stopping {
            // Refuse new clients; let each connection finish its response, then end.
            listener = None;
            draining_until = Some(clock.now() + context.shutdown_timeout);
            waiting.iter_mut().for_each(|entry| {
                entry.client.link.drain();
            });
            ready.clear();
            ready.extend(0..waiting.len());
        }
        if let (true, Some(listener)) = (incoming, &listener) {
            accept_paused_until = accept_all(listener, context, &clock, &mut waiting);
        }
        // Backwards, so that `swap_remove` only moves entries already handled this turn.
        for &index in ready.iter().rev() {
            match waiting[index].client.pump(&clock, context, Reads::UntilBlocked) {
                Pumped::Blocked { wants, .. } => waiting[index].wants = wants,
                Pumped::Over => drop(waiting.swap_remove(index)),
            }
        }
        waiting.retain_mut(|entry| !entry.client.expired(&clock, context));
    }
}

/// What one `poll` watches besides the connections.
struct Turn<'a> {
    shutdown: Option<BorrowedFd<'a>>,
    listener: Option<BorrowedFd<'a>>,
}

impl Turn<'_> {
    /// One `poll` over everything; fills `ready` with the indices of ready connections and
    /// says whether shutdown was triggered and whether clients are waiting to be accepted.
    fn wait<H>(
        &self,
        context: &Context<H>,
        waiting: &[Waiting],
        ready: &mut Vec<usize>,
    ) -> Result<(bool, bool), Error> {
        let mut fds = Vec::with_capacity(waiting.len() + 2);
        fds.extend(
            self.shutdown
                .map(|fd| PollFd::from_borrowed_fd(fd, PollFlags::IN)),
        );
        fds.extend(
            self.listener
                .map(|fd| PollFd::from_borrowed_fd(fd, PollFlags::IN)),
        );
        let first_client = fds.len();
        fds.extend(waiting.iter().map(|entry| {
            let flags = match entry.wants {
                Interest::Read => PollFlags::IN,
                Interest::Write => PollFlags::OUT,
            };
            PollFd::from_borrowed_fd(entry.client.socket.as_fd(), flags)
        }));
        // Wake up at least once per sweep interval so that timeouts are noticed.
        let timeout = timespec(sweep_interval(&context.settings));
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) | Err(Errno::INTR) => {}
            Ok(ready) => {
                let watched = fds.len();
                trace_event!(
                    context.trace,
                    Kind::Poll,
                    "{ready} of {watched} descriptors ready"
                );
            }
            Err(e) => return Err(Error::io("polling sockets")(e.into())),
        }
        let is_ready = |fd: &PollFd| !fd.revents().is_empty();
        ready.clear();
        ready.extend(
            (first_client..fds.len())
                .filter(|&i| is_ready(&fds[i]))
                .map(|i| i - first_client),
        );
        let stopping = self.shutdown.is_some() && is_ready(&fds[0]);
        let listener_slot = usize::from(self.shutdown.is_some());
        let incoming = self.listener.is_some() && is_ready(&fds[listener_slot]);
        Ok((stopping, incoming))
    }
}

/// Accepts every waiting connection and pumps it at once (its request may be there already).
/// Returns when to try accepting again if the process ran out of descriptors.
fn accept_all<H: Handler>(
    listener: &Listener,
    context: &Context<H>,
    clock: &Clock,
    waiting: &mut Vec<Waiting>,
) -> Option<Instant> {
    loop {
        match accept_nonblocking(listener) {
            Ok(socket) => {
                trace_event!(context.trace, Kind::Accept, "fd {}", socket.as_raw_fd());
                let mut client = Client::new(socket, context, clock);
                if let Pumped::Blocked { wants, .. } = client.pump(clock, context, Reads::UntilBlocked) {
                    waiting.push(Waiting { client, wants });
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
            // Out of descriptors: the backlog stays readable; leave it out of `poll` for a
            // sweep interval rather than spin.
            Err(e) => {
                crate::observe::accept_failed(&e);
                return Some(clock.now() + sweep_interval(&context.settings));
            }
        }
    }
}
