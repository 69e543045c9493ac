//! An io_uring as the `uring` model uses it: set up with every operation it needs checked,
//! entries pushed (submitting when the queue is full), completions taken in batches; the
//! tags (`user_data`) its completions carry, and how a connection's buffer grows.

use crate::error::Error;
use crate::observe::trace::{Kind, Trace};
use io_uring::{cqueue, opcode, squeue, IoUring, Probe};
use rustix::io::Errno;

/// Entries in each submission queue; the completion queue has four times as many, and the
/// kernel keeps any overflow (`IORING_FEAT_NODROP`).
const RING_ENTRIES: u32 = 1024;

/// One ring, and the completions taken from it but not yet handled.
pub(crate) struct Ring {
    ring: IoUring,
    completions: Vec<cqueue::Entry>,
}

/// Fails with one clear line where io_uring cannot be used, before the server says it is up.
pub(crate) fn check_uring() -> Result<(), Error> {
    Ring::new().map(drop)
}

impl Ring {
    /// A ring that works and supports every operation the `uring` model uses, or why not.
    pub fn new() -> Result<Ring, Error> {
        let unavailable = |reason: String| Error::Unavailable {
            model: "uring",
            reason,
        };
        // Cooperative task running (5.19+): the kernel finishes operations when the loop
        // enters the ring, instead of interrupting whatever system call the thread is in.
        let ring = IoUring::builder()
            .setup_cqsize(RING_ENTRIES * 4)
            .setup_coop_taskrun()
            .build(RING_ENTRIES)
            .or_else(|_| {
                IoUring::builder()
                    .setup_cqsize(RING_ENTRIES * 4)
                    .build(RING_ENTRIES)
            })
            .map_err(|e| unavailable(format!("io_uring_setup failed: {e}")))?;
        let mut probe = Probe::new();
        ring.submitter()
            .register_probe(&mut probe)
            .map_err(|e| unavailable(format!("probing io_uring operations failed: {e}")))?;
        let needed = [
            ("accept", opcode::Accept::CODE),
            ("recv", opcode::Recv::CODE),
            ("send", opcode::Send::CODE),
            ("read", opcode::Read::CODE),
            ("poll_add", opcode::PollAdd::CODE),
            ("timeout", opcode::Timeout::CODE),
            ("async_cancel", opcode::AsyncCancel::CODE),
        ];
        match needed.iter().find(|(_, code)| !probe.is_supported(*code)) {
            Some((name, _)) => Err(unavailable(format!("io_uring has no {name} operation"))),
            None => Ok(Ring {
                ring,
                completions: Vec::new(),
            }),
        }
    }

    /// Submits what is queued and waits for at least one completion; takes all there are.
    pub fn submit_and_wait(&mut self, trace: &Trace) -> Result<(), Error> {
        if let Some(tracer) = trace.tracer() {
            let queued = self.ring.submission().len();
            if queued > 0 {
                let what = format_args!("{queued} queued; one io_uring_enter submits them and waits");
                tracer.say(Kind::Submit, what);
            }
        }
        match self.ring.submit_and_wait(1) {
            Ok(_) => {}
            // EBUSY: the completion queue is full; taking its entries makes room.
            Err(e) if matches!(Errno::from_io_error(&e), Some(Errno::INTR | Errno::BUSY)) => {}
            Err(e) => return Err(Error::io("waiting for io_uring completions")(e)),
        }
        self.reap();
        Ok(())
    }

    /// The next completion taken from the ring and not yet handled.
    pub fn next_completion(&mut self) -> Option<cqueue::Entry> {
        self.completions.pop()
    }

    fn reap(&mut self) {
        self.completions.extend(self.ring.completion());
    }

    /// Queues `entry` for submission, first submitting what is queued if the queue is full.
    ///
    /// # Safety
    /// Any memory `entry` points to must stay valid and unmoved until its completion has
    /// been reaped (or forever: the `uring` model leaks what is still in flight at its end).
    pub unsafe fn push(&mut self, entry: squeue::Entry) -> Result<(), Error> {
        loop {
            // SAFETY: passed on to the caller.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return Ok(());
            }
            match self.ring.submit() {
                Ok(_) => {}
                // The completion queue is full: taking its entries makes room.
                Err(e) if Errno::from_io_error(&e) == Some(Errno::BUSY) => self.reap(),
                Err(e) if Errno::from_io_error(&e) == Some(Errno::INTR) => {}
                Err(e) => return Err(Error::io("submitting to io_uring")(e)),
            }
        }
    }
}

/// An operation's result as a trace line says it: bytes moved, or the error.
pub(crate) fn outcome(result: i32) -> String {
    match usize::try_from(result) {
        Ok(bytes) => format!("{bytes} bytes"),
        Err(_) => std::io::Error::from_raw_os_error(-result).to_string(),
    }
}

// `user_data` of the ring's own operations. A connection's operation carries its slab key
// shifted left by two bits, with the `Op` in the low bits; no key reaches these values.
pub(crate) const ACCEPT: u64 = u64::MAX;
pub(crate) const SHUTDOWN: u64 = u64::MAX - 1;
pub(crate) const TIMER: u64 = u64::MAX - 2;
/// An `AsyncCancel`: its own completion says nothing we need.
pub(crate) const CANCEL: u64 = u64::MAX - 3;

/// The operation a connection has in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Receive = 0,
    Send = 1,
    ReadFile = 2,
}

impl Op {
    pub(crate) fn user_data(self, key: usize) -> u64 {
        (key as u64) << 2 | self as u64
    }

    pub(crate) fn decode(user_data: u64) -> Option<(usize, Op)> {
        let op = match user_data & 3 {
            0 => Op::Receive,
            1 => Op::Send,
            2 => Op::ReadFile,
            _ => return None,
        };
        Some(((user_data >> 2) as usize, op))
    }
}

/// The first `len` bytes of `buffer`, grown to hold them. Growing is rare: a buffer ends up
/// as large as the largest piece its connection moved.
pub(crate) fn grown(buffer: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if buffer.len() < len {
        buffer.resize(len, 0);
    }
    &mut buffer[..len]
}
