//! `epoll`: one thread, non-blocking sockets, one epoll loop.
//!
//! How it works: the listener, the shutdown eventfd and every connection are registered with
//! one epoll instance. Connections are registered once, edge-triggered, for both reading and
//! writing; on each event the connection is pumped — write what the core has queued, read
//! what has arrived, repeat — until the socket would block. Timeouts are found by a sweep of
//! all connections a few times per timeout period.
//!
//! What it costs: one thread, so one core; a few hundred bytes of state per connection (plus
//! its input buffer while a request is arriving), and one `epoll_wait` for any number of
//! ready sockets. Anything slow inside the loop — a cold disk read — stalls every client.
//! Measured (`bench/run --models "reactor epoll" --peers h2o --no-tls --no-h2`, one pass): the
//! small page with keep-alive, 8.5 µs of CPU and 2.1 system calls per request (h2o: 9.0 µs,
//! 3.2, on both cores); `Connection: close` churn, 20 µs and 4.0: `accept4`, `recv`, `send`,
//! `close` (h2o: 28 µs, 10).
//!
//! Slowloris: a silent slow client costs its entry in the interest list and its input
//! buffer; a normal client is served at once.
//!
//! When it wins: many connections, mostly idle (C10K and beyond), on one core. To use more
//! cores, run one loop per core: that is the `reactor` model.
//!
//! The loop itself is `engine::EventLoop`, which `reactor` and `prefork` run too. It avoids
//! the tutorial epoll server's three bugs (ARCHITECTURE.md, "Lessons"): every event pumps
//! its connection, so a hang-up (`EPOLLIN | EPOLLHUP`) is read to its end instead of spinning;
//! a closed socket leaves the epoll set by itself, with no `unregister` after `close`; and a
//! request is read until the core has a whole head, never taken from one `recv(1024)`.

use crate::engine::{Context, EventLoop};
use crate::error::Error;
use crate::net::Listener;
use crate::seam::Handler;

pub(super) fn run<H: Handler>(listener: Listener, context: &Context<H>) -> Result<(), Error> {
    EventLoop::new(listener, context)
        .map_err(Error::io("setting up the event loop"))?
        .run()
}
