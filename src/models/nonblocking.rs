//! `nonblocking`: one thread trying every non-blocking socket in turn, no readiness API.
//!
//! How it works: the listener and every connection are non-blocking; each pass tries to
//! accept, then pumps every connection — a `read` or `write` that returns EAGAIN at once
//! when nothing is ready. No system call says which sockets are ready: the loop finds out by
//! trying them all.
//!
//! What it costs: a pass is n failed system calls when nothing happens. Looping flat out,
//! that burns a whole core while idle. So when a whole pass made no progress, the loop
//! sleeps — 50 µs at first, doubling with every idle pass up to 2 ms — and starts again at
//! full speed as soon as a pass moves a byte. The price is latency: a request arriving at an
//! idle server waits up to 2 ms before the loop looks (epoll wakes within microseconds).
//! Measured here (2 cores, release build, no connections): idle CPU 1.6% of a core with the
//! back-off, 76% without it (epoll: 0%); time to first response byte on an idle server,
//! median 0.86 ms, p90 2.2 ms, against epoll's 0.21 ms and 0.27 ms.
//!
//! Slowloris: a slow client costs one failed read per pass; a thousand of them make every
//! pass a thousand system calls longer, so everyone's latency grows, but a normal client is
//! still served.
//!
//! Measured (the full `bench/run` of 2026-12-02 22:57 UTC, commit 8b33600, on a quiet 2-core
//! machine: `-w 2`, `wrk -t2 -c100`; CPU is the server's utime+stime over its requests, system
//! calls counted by `perf`): a small page over keep-alive costs 11.4 µs and 4.1 system calls per
//! request (`reactor`: 8.4 µs, 2.1); `Connection: close` churn 24.3 µs and 7.6 (`reactor`: 31.2 µs,
//! 6.6): the extra calls are the reads that find nothing.
//!
//! When it wins: never in production; it shows what readiness APIs are for, and it needs no
//! API beyond non-blocking sockets.
//!
//! The tutorial's polling loop spun at 100% CPU while idle, took one `recv(1024)` as a whole
//! request and removed sockets from the list it was iterating (ARCHITECTURE.md, "Lessons"):
//! here the nap, the core's reading to a whole head, and `retain_mut` avoid each.

use crate::engine::{accept_nonblocking, clock_now, tick, Client, Context, Pumped, Reads};
use crate::error::Error;
use crate::net::Listener;
use crate::observe::trace::{trace_event, Kind};
use crate::seam::{Clock, Handler};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

const FIRST_NAP: Duration = Duration::from_micros(50);
const LONGEST_NAP: Duration = Duration::from_millis(2);

pub(super) fn run<H: Handler>(listener: Listener, context: &Context<H>) -> Result<(), Error> {
    listener
        .set_nonblocking(true)
        .map_err(Error::io("setting up the listener"))?;
    let mut listener = Some(listener);
    let mut clock = clock_now();
    let mut clients: Vec<Client> = Vec::new();
    let mut nap = FIRST_NAP;
    let mut draining_until: Option<Instant> = None;
    while draining_until.is_none_or(|until| !clients.is_empty() && clock.now() < until) {
        tick(&mut clock);
        if draining_until.is_none() && context.shutdown.is_triggered() {
            // Refuse new clients; let each connection finish its response, then end.
            listener = None;
            draining_until = Some(clock.now() + context.shutdown_timeout);
            clients.iter_mut().for_each(|client| {
                client.link.drain();
            });
        }
        let accepted = match &listener {
            Some(listener) => accept_all(listener, context, &clock, &mut clients),
            None => false,
        };
        let tried = clients.len();
        let (mut moved, mut closed) = (0, 0);
        clients.retain_mut(|client| match client.pump(&clock, context, Reads::UntilBlocked) {
            Pumped::Blocked { progressed, .. } => {
                moved += usize::from(progressed);
                !client.expired(&clock, context)
            }
            Pumped::Over => {
                closed += 1;
                false
            }
        });
        if accepted || moved > 0 {
            trace_event!(
                context.trace,
                Kind::Pass,
                "tried {tried} sockets: {moved} made progress, {closed} closed"
            );
            nap = FIRST_NAP;
        } else {
            std::thread::sleep(nap);
            nap = (nap * 2).min(LONGEST_NAP);
        }
    }
    Ok(())
}

/// Accepts every waiting connection; true if there was any.
fn accept_all<H>(
    listener: &Listener,
    context: &Context<H>,
    clock: &Clock,
    clients: &mut Vec<Client>,
) -> bool {
    let mut accepted = false;
    loop {
        match accept_nonblocking(listener) {
            Ok(socket) => {
                trace_event!(context.trace, Kind::Accept, "fd {}", socket.as_raw_fd());
                clients.push(Client::new(socket, context, clock));
                accepted = true;
            }
            // Nothing waiting (EAGAIN) — or out of descriptors, which the nap then paces.
            Err(_) => return accepted,
        }
    }
}
