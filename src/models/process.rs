//! `process`: one process per connection, forked from the accept loop.
//!
//! How it works: a single-threaded parent waits (one `poll`) for a connection, the shutdown
//! signal, or a child's exit. It forks a child per accepted connection; the child serves that
//! connection's keep-alive requests with blocking I/O, exactly as a `thread` model thread
//! does, then exits. The parent closes its copy of the socket at once and reaps children as
//! they exit. At `--max-connections` live children it answers 503 itself, without forking.
//! SIGHUP it acts on in the same loop, so that children forked after it get what it reloaded;
//! SIGUSR2 too, starting the upgrade in a child of its own.
//!
//! What it costs: a `fork` per connection — copying page tables and descriptor tables, then
//! page faults as the child touches memory (copy-on-write) — and a whole process (its own
//! address space, file cache and kernel task) per open connection. Connection churn is where
//! it hurts most; memory per idle keep-alive connection is the highest of all models.
//!
//! Slowloris: each slow client holds a whole process until the header timeout or the minimum
//! data rate ends it. A normal client is still served while the process and memory limits
//! allow another fork; a thousand slow clients are a thousand processes.
//!
//! Measured (the full `bench/run` of 2026-12-02 22:57 UTC, commit 8b33600, on a quiet 2-core
//! machine: `-w 2`, `wrk -t2 -c100`; CPU is the server's utime+stime over its requests, system
//! calls counted by `perf`): a small page over keep-alive costs 24.0 µs and 3.0 system calls per
//! request (`reactor`: 8.4 µs, 2.1); `Connection: close` churn 737 µs and 23 (`reactor`: 31.2 µs,
//! 6.6): a `fork` and a reap per connection are most of it: 2,100 connections a second.
//!
//! When it wins: isolation. A crash, a leak or a corrupted heap in one child affects one
//! connection only; the classic Apache prefork/inetd design for untrusted or fragile code.
//!
//! Two things a forking server must not forget (ARCHITECTURE.md, "Lessons"): to reap its
//! children, or zombies pile up until the parent exits; and to close the parent's copy of
//! the socket, or the connection stays open after the child is done and the browser spins.
//! Here SIGCHLD wakes the loop through a signalfd and every exited child is reaped; the
//! parent's copy of the socket is dropped right after the fork.

use super::thread;
use crate::engine::{clock_now, pending, refuse, Children, Context, Report};
use crate::error::Error;
use crate::net::Listener;
use crate::observe::trace::{trace_event, Kind};
use crate::seam::Handler;
use crate::shutdown::{hangups, wait_readable};
use std::io::ErrorKind;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

pub(super) fn run<H: Handler>(listener: Listener, context: &Context<H>) -> Result<(), Error> {
    // Non-blocking, as in the other blocking models (see `engine::accept_until_shutdown`);
    // the accepted sockets are blocking all the same.
    listener
        .set_nonblocking(true)
        .map_err(Error::io("setting up the listener"))?;
    let mut children = Children::new(&context.shutdown).map_err(Error::io("watching child processes"))?;
    let result = accept_and_fork(&listener, context, &mut children);
    // New clients are refused from here. Children finish the response in flight (SIGTERM
    // makes them stop at the next request), within the shutdown timeout.
    drop(listener);
    children.stop(context.shutdown_timeout);
    result
}

fn accept_and_fork<H: Handler>(
    listener: &Listener,
    context: &Context<H>,
    children: &mut Children,
) -> Result<(), Error> {
    let hangups = hangups(context.upgrades()).map_err(Error::io("watching SIGHUP"))?;
    loop {
        let [stopping, exited, hung_up, incoming] = wait_readable(
            [
                context.shutdown.fd(),
                children.fd(),
                hangups.as_fd(),
                listener.as_fd(),
            ],
            None,
        )
        .map_err(Error::io("waiting for connections"))?;
        if stopping {
            return Ok(());
        }
        if exited {
            for child in children.reap() {
                trace_event!(context.trace, Kind::Reap, "child {child}");
            }
        }
        if hung_up {
            // Here, not on a thread: a process that forks must stay single-threaded.
            let pending = pending(&hangups);
            if pending.hangup {
                context.hung_up(Report::Tell);
            }
            if pending.upgrade {
                context.upgrade_in_child(children);
            }
        }
        if incoming {
            accept_one(listener, context, children);
        }
    }
}

fn accept_one<H: Handler>(listener: &Listener, context: &Context<H>, children: &mut Children) {
    let stream = match listener.accept() {
        Ok(stream) => stream,
        // Or another process took it (see `engine::accept_until_shutdown`).
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::ConnectionAborted | ErrorKind::Interrupted | ErrorKind::WouldBlock
            ) =>
        {
            return
        }
        // Out of descriptors or memory: pause rather than spin; clients wait in the backlog.
        Err(e) => {
            crate::observe::accept_failed(&e);
            return std::thread::sleep(Duration::from_millis(10));
        }
    };
    let fd = stream.as_raw_fd();
    trace_event!(context.trace, Kind::Accept, "fd {fd}");
    if children.len() >= context.limit.max() {
        // One child per connection: the children are the connections to count.
        let refusal = context.overloaded(&clock_now(), &stream);
        return refuse(stream, refusal, context);
    }
    // The stream moves into the child's closure: the child serves it, and in the parent
    // the closure, never called, is dropped when `spawn` returns, closing the parent's copy.
    let served = children.spawn(move || {
        let (link, _admission) = context.accept(&clock_now(), &stream);
        thread::serve(stream, link, context);
        0
    });
    if let Ok(child) = served {
        trace_event!(context.trace, Kind::Fork, "child {child} serves fd {fd}");
    } else {
        // fork failed (out of memory or processes): this client sees its connection close;
        // pause so that the next ones wait in the backlog rather than fail in a burst.
        std::thread::sleep(Duration::from_millis(10));
    }
}
