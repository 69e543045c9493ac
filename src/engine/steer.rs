//! Steering each new connection to the worker on the CPU that received it (`reactor`).
//!
//! Each worker's `SO_REUSEPORT` listener is tagged with one of the CPUs the server may run on
//! (`SO_INCOMING_CPU`). The kernel then gives a new connection to the listener tagged with the
//! CPU that processed its SYN, and hashes it as usual when none is (a fix of late 2022, commit
//! b261eda84ec1; kernels from 4.6 to it ignore the tag on a reuseport group). That CPU
//! is the one the client called `connect` on over loopback, or the one whose NIC queue the
//! flow arrives on; the connection's later packets arrive there too. So a worker serves the
//! connections that arrive on one CPU, the scheduler keeps it near the CPU that wakes it, and
//! a connection's socket stays in one core's cache instead of moving between two. This is
//! the use the kernel's authors describe: one listener per receive queue, "to keep CPU
//! caches hot". With the hash, instead, each client thread talks to every worker.
//!
//! The risk is a skew: if nearly every connection arrives on one CPU (a NIC with a single
//! queue, a single-threaded client on the same host, a client whose threads all connected
//! from one CPU), nearly every connection goes to one worker. So at each sweep a worker
//! compares its part of all open connections with its fair share. A worker holding far more
//! stops steering: its tag is cleared, and new connections from its CPU are hashed across all
//! workers again, as with no tags at all. It also hands the connections beyond its share to
//! the workers below theirs: each goes, state and all, through a queue and a doorbell (an
//! eventfd the receiving loop waits on), and the receiver adds its socket to its own epoll
//! set, which reports at once whatever the socket has pending.

use super::readiness::Client;
use crate::net::Listener;
use crate::observe::trace::{trace_event, Kind, Trace};
use rustix::event::{eventfd, EventfdFlags};
use rustix::net::sockopt::{set_socket_incoming_cpu, socket_incoming_cpu};
use rustix::thread::{sched_getaffinity, CpuSet};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// A worker's share is judged only once the workers hold this many connections each on
/// average: with fewer, an uneven split means nothing.
const JUDGE_FROM_PER_WORKER: usize = 16;

/// A worker gives up its tag after this many sweeps in a row found it holding far more than
/// its share. The others' counts are a sweep old, so while clients are still connecting one
/// sweep can see a skew that is not there.
const SWEEPS_TO_CONVICT: u8 = 3;

/// `SO_INCOMING_CPU` of -1: no CPU, the listener takes part in the hash only.
const NO_CPU: u32 = u32::MAX;

/// What the workers of one server share about steering.
pub(crate) struct Steering {
    /// Each worker's open connections, as it last reported them.
    held: Box<[AtomicUsize]>,
    /// Connections handed to each worker by one holding too many, until it takes them.
    handed: Box<[Mutex<Vec<Client>>]>,
    /// Each worker's doorbell for them: an eventfd its loop waits on.
    doorbells: Box<[OwnedFd]>,
    /// The CPU each worker's listener was tagged with.
    cpus: Box<[u32]>,
}

/// Connections a worker should pass on: `count` of them to worker `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Handover {
    pub to: usize,
    pub count: usize,
}

/// One worker's part: its slot in the counts, and whether its listener is still tagged.
pub(crate) struct WorkerSteering<'a> {
    steering: &'a Steering,
    worker: usize,
    tagged: bool,
    /// Sweeps in a row that found this worker holding far more than its share.
    strikes: u8,
}

impl Steering {
    /// Tags listener `i` with the `i`-th CPU the server may run on (round robin when there
    /// are more workers than CPUs). `None` with a single listener, or if the kernel refuses:
    /// connections are then hashed across the listeners, as they would be without this.
    pub fn tag(listeners: &[Listener]) -> Option<Steering> {
        if listeners.len() < 2 {
            return None;
        }
        // The doorbells first: a tag is set only once nothing else can fail.
        let doorbells = listeners
            .iter()
            .map(|_| eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK))
            .collect::<Result<_, _>>()
            .ok()?;
        let allowed = allowed_cpus().ok()?;
        let cpus: Box<[u32]> = allowed.iter().cycle().take(listeners.len()).copied().collect();
        for (listener, &cpu) in listeners.iter().zip(&cpus) {
            if set_socket_incoming_cpu(listener, cpu).is_err() {
                // Not all or nothing: untag the ones done, and hash them all.
                for listener in listeners {
                    let _ = set_socket_incoming_cpu(listener, NO_CPU);
                }
                return None;
            }
        }
        Some(Steering {
            held: listeners.iter().map(|_| AtomicUsize::new(0)).collect(),
            handed: listeners.iter().map(|_| Mutex::default()).collect(),
            doorbells,
            cpus,
        })
    }

    /// The CPU whose connections worker `worker`'s listener takes.
    pub fn cpu(&self, worker: usize) -> u32 {
        self.cpus[worker]
    }

    pub fn for_worker(&self, worker: usize) -> WorkerSteering<'_> {
        WorkerSteering {
            steering: self,
            worker,
            tagged: true,
            strikes: 0,
        }
    }
}

impl WorkerSteering<'_> {
    /// Readable when connections were handed to this worker: its loop waits on it.
    pub fn doorbell(&self) -> BorrowedFd<'_> {
        self.steering.doorbells[self.worker].as_fd()
    }

    /// At each sweep: reports the connections this worker holds. Once it has held far more
    /// than its share of all of them for a few sweeps, clears its listener's tag (the first
    /// time) and says which connections to hand to whom; the loop then calls `hand_over`.
    pub fn check(&mut self, held: usize, listener: &Listener, trace: &Trace) -> Vec<Handover> {
        let counts = &self.steering.held;
        counts[self.worker].store(held, Ordering::Relaxed);
        let now: Vec<usize> = counts.iter().map(|count| count.load(Ordering::Relaxed)).collect();
        let total = now.iter().sum();
        if !overloaded(held, total, now.len()) {
            self.strikes = 0;
            return Vec::new();
        }
        self.strikes = self.strikes.saturating_add(1);
        if self.strikes < SWEEPS_TO_CONVICT {
            return Vec::new();
        }
        self.strikes = 0;
        if self.tagged && set_socket_incoming_cpu(listener, NO_CPU).is_ok() {
            self.tagged = false;
            trace_event!(
                trace,
                Kind::Steer,
                "worker {} holds {held} of {total} connections: its CPU's are hashed again",
                self.worker
            );
            tracing::info!(
                "worker {} holds {held} of {total} connections: new connections on its CPU are \
                 now spread across all workers",
                self.worker
            );
        }
        let handovers = shares_to_hand(&now, self.worker);
        let count: usize = handovers.iter().map(|handover| handover.count).sum();
        tracing::info!(
            "worker {} hands {count} of its {held} connections to others",
            self.worker
        );
        handovers
    }

    /// Whether `socket`'s packets now arrive on the CPU of worker `to`: when a client thread
    /// has moved to another CPU since it connected, its connections are best handed to the
    /// worker there (the kernel notes the CPU of each packet a socket receives).
    pub fn arrives_for(&self, to: usize, socket: impl AsFd) -> bool {
        socket_incoming_cpu(socket).ok() == Some(self.steering.cpus[to])
    }

    /// Queues `clients` for worker `to` and rings its doorbell.
    pub fn hand_over(&self, to: usize, clients: Vec<Client>) {
        let steering = self.steering;
        steering.held[self.worker].fetch_sub(clients.len(), Ordering::Relaxed);
        steering.held[to].fetch_add(clients.len(), Ordering::Relaxed);
        lock(&steering.handed[to]).extend(clients);
        // Fails only if the counter would overflow: the bell is already ringing then.
        let _ = rustix::io::write(&steering.doorbells[to], &1u64.to_ne_bytes());
    }

    /// The connections handed to this worker since it last looked; quiets its doorbell.
    pub fn take_handed(&self) -> Vec<Client> {
        // Quiet the bell first: a handover after this rings it again.
        let _ = rustix::io::read(&self.steering.doorbells[self.worker], &mut [0; 8]);
        std::mem::take(&mut *lock(&self.steering.handed[self.worker]))
    }
}

/// A queue is whole after any panic (clients are moved in and out whole): a poisoned lock
/// is safe to use.
fn lock(queue: &Mutex<Vec<Client>>) -> std::sync::MutexGuard<'_, Vec<Client>> {
    queue.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What worker `from` should hand to the others so that it keeps its fair share and fills
/// theirs, given every worker's count `held`: to each worker below the share, what it lacks,
/// fewest first, as far as `from`'s excess goes.
fn shares_to_hand(held: &[usize], from: usize) -> Vec<Handover> {
    let share = held.iter().sum::<usize>() / held.len();
    let mut excess = held[from].saturating_sub(share);
    let mut below: Vec<(usize, usize)> = (0..held.len())
        .filter(|&worker| worker != from && held[worker] < share)
        .map(|worker| (worker, held[worker]))
        .collect();
    below.sort_by_key(|&(_, count)| count);
    let mut handovers = Vec::new();
    for (to, count) in below {
        let lacking = (share - count).min(excess);
        if lacking > 0 {
            handovers.push(Handover { to, count: lacking });
            excess -= lacking;
        }
    }
    handovers
}

/// Whether a worker holding `held` of `total` connections holds far more than its share:
/// more than twice it, or with two workers more than three quarters — in general, more than
/// the lesser of `2/n` and halfway from `1/n` to all.
fn overloaded(held: usize, total: usize, workers: usize) -> bool {
    if workers < 2 || total < JUDGE_FROM_PER_WORKER * workers {
        return false;
    }
    // held / total > min(2/n, (n+1)/2n), multiplied through by 2n·total.
    2 * held * workers > total * (workers + 1).min(4)
}

/// The CPUs this process may run on, in order.
fn allowed_cpus() -> io::Result<Vec<u32>> {
    let set = sched_getaffinity(None)?;
    let cpus: Vec<u32> = (0..CpuSet::MAX_CPU)
        .filter(|&cpu| set.is_set(cpu))
        .filter_map(|cpu| u32::try_from(cpu).ok())
        .collect();
    if cpus.is_empty() {
        return Err(io::Error::other("no CPU in the affinity mask"));
    }
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::listen_reuseport;
    use std::net::{SocketAddr, TcpStream};

    #[test]
    fn overloaded_means_far_beyond_a_fair_share() {
        assert!(!overloaded(20, 20, 2), "too few connections to judge");
        assert!(!overloaded(60, 100, 2));
        assert!(!overloaded(75, 100, 2));
        assert!(overloaded(76, 100, 2));
        assert!(!overloaded(66, 100, 3));
        assert!(overloaded(67, 100, 3));
        assert!(!overloaded(100, 100, 8), "8 workers: judged from 128 connections");
        assert!(!overloaded(50, 200, 8), "8 workers: a quarter is twice the share");
        assert!(overloaded(51, 200, 8));
        assert!(!overloaded(100, 100, 1), "one worker: nothing to steer");
    }

    /// Two listeners on one port, tagged; the client connects from each CPU in turn.
    #[test]
    fn a_connection_goes_to_the_listener_of_the_cpu_it_came_from() {
        let cpus = allowed_cpus().unwrap();
        let first = listen_reuseport(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let addr = first.local_addr().unwrap();
        let listeners = [first, listen_reuseport(addr).unwrap()];
        let _steering = Steering::tag(&listeners).unwrap();
        for (index, listener) in listeners.iter().enumerate() {
            let cpu = cpus[index % cpus.len()];
            assert_eq!(socket_incoming_cpu(listener).unwrap(), cpu);
            listener.set_nonblocking(true).unwrap();
        }
        if cpus.len() < 2 {
            return; // one CPU: both listeners carry it, and there is no choice to see
        }
        for (index, cpu) in cpus.iter().take(2).enumerate() {
            // The SYN is processed on the connecting thread's CPU (loopback).
            let client = std::thread::spawn({
                let cpu = *cpu as usize;
                move || {
                    let mut only = CpuSet::new();
                    only.set(cpu);
                    rustix::thread::sched_setaffinity(None, &only).unwrap();
                    TcpStream::connect(addr).unwrap()
                }
            })
            .join()
            .unwrap();
            assert!(listeners[index].accept().is_ok(), "listener {index} got it");
            assert!(listeners[1 - index].accept().is_err(), "the other did not");
            drop(client);
        }
    }

    #[test]
    fn a_worker_holding_nearly_everything_stops_steering() {
        let first = listen_reuseport(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let addr = first.local_addr().unwrap();
        let listeners = [first, listen_reuseport(addr).unwrap()];
        let steering = Steering::tag(&listeners).unwrap();
        let (mut busy, mut idle) = (steering.for_worker(0), steering.for_worker(1));
        idle.check(40, &listeners[1], &Trace::OFF);
        assert_eq!(idle.strikes, 1, "40 of 40 (the other has not reported yet)");
        busy.check(60, &listeners[0], &Trace::OFF);
        idle.check(40, &listeners[1], &Trace::OFF);
        assert_eq!(
            (busy.strikes, idle.strikes),
            (0, 0),
            "60 and 40 of 100 is no skew"
        );
        for _ in 0..SWEEPS_TO_CONVICT - 1 {
            idle.check(2, &listeners[1], &Trace::OFF);
            let handovers = busy.check(98, &listeners[0], &Trace::OFF);
            assert!(busy.tagged && handovers.is_empty(), "not yet: a skew must last");
        }
        let handovers = busy.check(98, &listeners[0], &Trace::OFF);
        assert_eq!(
            handovers,
            [Handover { to: 1, count: 48 }],
            "down to its share of 50"
        );
        assert!(!busy.tagged && idle.tagged);
        assert_eq!(socket_incoming_cpu(&listeners[0]).unwrap(), NO_CPU);
        assert_ne!(socket_incoming_cpu(&listeners[1]).unwrap(), NO_CPU);
        assert!(busy.take_handed().is_empty() && idle.take_handed().is_empty());
    }

    #[test]
    fn the_excess_fills_the_emptiest_workers_first() {
        let to = |to, count| Handover { to, count };
        assert_eq!(shares_to_hand(&[100, 0], 0), [to(1, 50)]);
        assert_eq!(shares_to_hand(&[0, 101], 1), [to(0, 50)], "the odd one stays");
        assert_eq!(
            shares_to_hand(&[100, 0, 0, 0], 0),
            [to(1, 25), to(2, 25), to(3, 25)]
        );
        assert_eq!(
            shares_to_hand(&[70, 20, 10, 0], 0),
            [to(3, 25), to(2, 15), to(1, 5)]
        );
        assert_eq!(shares_to_hand(&[50, 50], 0), [], "at its share: nothing to hand");
    }
}
