//! The machinery the models share, so that each model file is only its answer to "how does
//! this model move bytes": none of it knows HTTP (connections are [`seam::Link`]s), and none of
//! it is a model.
//!
//! - `context`: [`Context`], what every model is given: the handler, the connection policy,
//!   the shutdown signal; and the sockets blocking threads serve, to cut them at the end.
//! - `readiness`: the driver of a non-blocking socket ([`pump`], [`transmit`]), the
//!   [`Client`] the readiness models hold, and the check that a slow client still reads.
//! - `accept`: accept loops, and one listener per worker.
//! - `workers`: running workers on threads until all return.
//! - `event_loop`: the edge-triggered epoll loop `epoll`, `reactor` and `prefork` run;
//!   `steer`: the reactor's add-on that gives each connection to the worker of its CPU.
//! - `ring`: setting up an io_uring and handing it operations (`uring`).
//! - `children`: forked children (`process`, `prefork`); `limit`: `--max-connections`.
//! - `hangups`: SIGHUP and SIGUSR2, on a watcher thread or in a forking parent's loop.
//!
//! [`seam::Link`]: crate::seam::Link

mod accept;
mod children;
mod context;
mod event_loop;
mod hangups;
mod limit;
mod readiness;
mod ring;
mod steer;
mod workers;

pub(crate) use accept::{accept_nonblocking, accept_until_shutdown, listener_per_worker, DEFER_ACCEPT};
pub(crate) use children::Children;
pub(crate) use context::{clock_now, sweep_interval, tick, Context};
pub(crate) use event_loop::EventLoop;
pub(crate) use hangups::{pending, OnHangup, OnUpgrade, Pending, Report};
pub(crate) use limit::{Admission, SharedTally};
pub(crate) use readiness::{isolated, refuse, transmit, Client, Interest, Pumped, Reads, SendWatch};
pub(crate) use ring::{check_uring, feed, grown, outcome, Op, Ring, ACCEPT, CANCEL, SHUTDOWN, TIMER};
pub(crate) use steer::Steering;
pub(crate) use workers::run_workers;
