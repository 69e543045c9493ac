//! An io_uring as the `uring` model uses it: set up with every operation it needs checked,
//! entries pushed (submitting when the queue is full), completions taken in batches; the
//! receive buffers the kernel picks from (a provided-buffer ring); the tags (`user_data`) its
//! completions carry, and how a connection's buffer grows.

use crate::error::Error;
use crate::observe::trace::{Kind, Trace};
use crate::seam::{Clock, Handler, Link, Step};
use io_uring::types::{BufRingEntry, Fd, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring, Probe};
use rustix::event::PollFlags;
use rustix::io::Errno;
use rustix::mm::{mmap_anonymous, munmap, MapFlags, ProtFlags};
use rustix::net::SocketFlags;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Once;
use std::time::Duration;

/// Entries in each submission queue; the completion queue has four times as many, and the
/// kernel keeps any overflow (`IORING_FEAT_NODROP`).
const RING_ENTRIES: u32 = 1024;

/// The buffers a ring's receives pick from, each `BUFFER_SIZE` bytes. Enough for every
/// receive that completes in one turn of a busy loop (a few dozen); more would only cost
/// memory, as the kernel takes them in turn and so touches every one. When a turn's
/// receives find none left, they complete with `ENOBUFS` and are submitted again on the next
/// turn, by when every buffer has been given back.
const BUFFERS: u16 = 128;
/// As large as a receive needs: a request head, or a TLS transport's 4 KiB of records.
const BUFFER_SIZE: usize = 4096;
/// The group of provided buffers receives name; a ring has only this one.
const BUFFER_GROUP: u16 = 0;

/// One ring, and the completions taken from it but not yet handled.
pub(crate) struct Ring {
    ring: IoUring,
    completions: Vec<cqueue::Entry>,
    /// `None` where the kernel has no provided-buffer rings (before 5.19): each connection
    /// then lends its own buffer to its receive.
    buffers: Option<Buffers>,
    /// The interval of the timer, boxed so that its address is stable while the kernel reads it.
    sweep: Box<Timespec>,
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
        if let Some((name, _)) = needed.iter().find(|(_, code)| !probe.is_supported(*code)) {
            return Err(unavailable(format!("io_uring has no {name} operation")));
        }
        let buffers = Buffers::register(&ring)
            .inspect_err(|e| {
                static SAID: Once = Once::new();
                SAID.call_once(|| {
                    tracing::info!("uring: no provided buffers ({e}): each connection receives into its own")
                });
            })
            .ok();
        Ok(Ring {
            ring,
            completions: Vec::new(),
            buffers,
            sweep: Box::default(),
        })
    }

    /// The ring with its timer (`arm_timer`) set to go off every `interval`.
    pub fn sweeping_every(mut self, interval: Duration) -> Ring {
        *self.sweep = interval.into();
        self
    }

    /// Sets the timer: its completion, tagged `TIMER`, comes after the sweep interval.
    pub fn arm_timer(&mut self) -> Result<(), Error> {
        let entry = opcode::Timeout::new(&*self.sweep).build().user_data(TIMER);
        // SAFETY: the timespec is boxed and lives as long as the ring, and is changed only
        // by `sweeping_every`, before any timer is set.
        unsafe { self.push(entry) }
    }

    /// A receive of at most `len` bytes on `fd`: into a provided buffer the kernel picks once
    /// data has arrived, or where there are none, into `own` (grown to `len`), which must
    /// then stay in place until the completion.
    pub fn receive(&self, fd: Fd, len: usize, own: &mut Vec<u8>) -> squeue::Entry {
        match self.buffers {
            Some(_) => opcode::Recv::new(fd, std::ptr::null_mut(), len.min(BUFFER_SIZE) as u32)
                .buf_group(BUFFER_GROUP)
                .build()
                .flags(squeue::Flags::BUFFER_SELECT),
            None => {
                let buffer = grown(own, len);
                opcode::Recv::new(fd, buffer.as_mut_ptr(), buffer.len() as u32).build()
            }
        }
    }

    /// Whether receives take provided buffers, so that a connection waiting for input needs
    /// no buffer of its own.
    pub fn provides_buffers(&self) -> bool {
        self.buffers.is_some()
    }

    /// The bytes a receive completing with `result` and `flags` put into a provided buffer;
    /// `None` if it took none (it failed, or received into its connection's own buffer).
    pub fn provided(&self, result: i32, flags: u32) -> Option<&[u8]> {
        let len = usize::try_from(result).ok()?;
        Some(self.buffers.as_ref()?.filled(cqueue::buffer_select(flags)?, len))
    }

    /// Gives back to the kernel the provided buffer a completion with `flags` took, if any:
    /// done for every completion, once its bytes have been copied out.
    pub fn give_back(&mut self, flags: u32) {
        if let (Some(buffers), Some(id)) = (&mut self.buffers, cqueue::buffer_select(flags)) {
            buffers.give_back(id);
        }
    }

    /// Leaks the provided buffers instead of unmapping them: a receive still in flight
    /// could write into one.
    pub fn leak_buffers(&mut self) {
        std::mem::forget(self.buffers.take());
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

    /// Accepts connections on `listener`: all of them with one multishot accept, or one.
    pub fn accept(&mut self, listener: RawFd, multishot: bool) -> Result<(), Error> {
        let listener = Fd(listener);
        let flags = SocketFlags::CLOEXEC.bits() as i32;
        let entry = if multishot {
            opcode::AcceptMulti::new(listener).flags(flags).build()
        } else {
            opcode::Accept::new(listener, std::ptr::null_mut(), std::ptr::null_mut())
                .flags(flags)
                .build()
        };
        // SAFETY: no peer address is asked for, so the accept refers to no memory of ours.
        unsafe { self.push(entry.user_data(ACCEPT)) }
    }

    /// Waits for `fd` to be readable; the completion carries `user_data`.
    pub fn poll_readable(&mut self, fd: RawFd, user_data: u64) -> Result<(), Error> {
        let poll = opcode::PollAdd::new(Fd(fd), PollFlags::IN.bits().into());
        // SAFETY: a poll refers to no memory of ours.
        unsafe { self.push(poll.build().user_data(user_data)) }
    }

    /// Asks the kernel to cancel the operation tagged `user_data`. It then completes with
    /// `-ECANCELED`, or with its own result if it was finishing anyway. The cancellation cannot
    /// hit a later connection that reuses the key: a key is reused only after its operation's
    /// completion has been seen, so the reuser's operation is queued after this cancellation,
    /// and the kernel takes submissions in order.
    pub fn cancel(&mut self, user_data: u64) -> Result<(), Error> {
        let entry = opcode::AsyncCancel::new(user_data).build().user_data(CANCEL);
        // SAFETY: a cancellation refers to no memory of ours.
        unsafe { self.push(entry) }
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

/// Receive buffers the kernel picks one of when data arrives (a provided-buffer ring, 5.19+),
/// rather than one lent to each receive when it is submitted: a receive waiting for data
/// holds none, so an idle connection costs no buffer. A completion names the buffer it
/// filled; its bytes are copied out and it is given back at once, to the ring's tail.
struct Buffers {
    /// The ring of `BUFFERS` entries the kernel takes buffers from, registered with it; its
    /// tail is the `resv` field of the first entry (`BufRingEntry::tail`).
    entries: NonNull<BufRingEntry>,
    /// `BUFFERS` buffers of `BUFFER_SIZE` bytes, one after another. Anonymous memory: a page
    /// costs memory only once the kernel has written into it.
    memory: NonNull<u8>,
    /// How many buffers have been handed to the kernel, wrapping: the ring's tail.
    tail: u16,
}

// SAFETY: the mappings belong to this value alone, and the kernel's use of them does not
// depend on which thread the ring is driven from.
unsafe impl Send for Buffers {}

impl Buffers {
    const ENTRIES_BYTES: usize = BUFFERS as usize * size_of::<BufRingEntry>();
    const MEMORY_BYTES: usize = BUFFERS as usize * BUFFER_SIZE;

    /// Maps the ring and the buffers, registers them with `ring` and hands the kernel every
    /// buffer; or why not.
    fn register(ring: &IoUring) -> std::io::Result<Buffers> {
        let entries: NonNull<BufRingEntry> = map(Self::ENTRIES_BYTES)?.cast();
        let memory = match map(Self::MEMORY_BYTES) {
            Ok(memory) => memory,
            Err(e) => {
                // SAFETY: mapped just above with this length, and used by nothing yet.
                let _ = unsafe { munmap(entries.as_ptr().cast(), Self::ENTRIES_BYTES) };
                return Err(e);
            }
        };
        let mut buffers = Buffers {
            entries,
            memory,
            tail: 0,
        };
        // SAFETY: the ring's memory is valid for `BUFFERS` entries until `drop`, which
        // comes after the ring's end (a `Ring` drops its `IoUring` first), or never (`leak`).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                entries.as_ptr() as u64,
                BUFFERS,
                BUFFER_GROUP,
                0,
            )?;
        }
        for id in 0..BUFFERS {
            buffers.give_back(id);
        }
        Ok(buffers)
    }

    /// The first `len` bytes of buffer `id`, which a completion just handed over.
    fn filled(&self, id: u16, len: usize) -> &[u8] {
        let id = usize::from(id) % usize::from(BUFFERS);
        // SAFETY: buffer `id` lies inside the mapping, which lives as long as `self`. The
        // kernel does not write into it again before it is given back (`give_back`, which
        // takes `&mut self`, so this borrow has ended).
        unsafe {
            let start = self.memory.as_ptr().add(id * BUFFER_SIZE);
            std::slice::from_raw_parts(start, len.min(BUFFER_SIZE))
        }
    }

    /// Puts buffer `id` at the ring's tail, for the kernel to fill again.
    fn give_back(&mut self, id: u16) {
        let id = id % BUFFERS;
        let slot = usize::from(self.tail % BUFFERS);
        // SAFETY: `slot` is inside the ring, and the kernel reads no entry at or past the
        // tail until the tail is moved past it, below; the setters leave the first entry's
        // `resv` (the tail) alone. The address is that of buffer `id`, inside the mapping.
        unsafe {
            let entry = &mut *self.entries.as_ptr().add(slot);
            entry.set_addr(self.memory.as_ptr().add(usize::from(id) * BUFFER_SIZE) as u64);
            entry.set_len(BUFFER_SIZE as u32);
            entry.set_bid(id);
        }
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail is a `u16` inside the ring's first entry, aligned for it, which
        // the kernel reads and never writes; a release store makes the entry visible first.
        unsafe {
            let tail = BufRingEntry::tail(self.entries.as_ptr()).cast::<AtomicU16>();
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}

/// `len` bytes of fresh memory, page-aligned and zero-filled, as a provided-buffer ring must
/// be; a page costs memory only once written to.
fn map(len: usize) -> std::io::Result<NonNull<u8>> {
    // SAFETY: a fresh anonymous mapping aliases nothing.
    let memory = unsafe {
        mmap_anonymous(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )?
    };
    NonNull::new(memory.cast()).ok_or_else(|| std::io::Error::other("mmap returned a null mapping"))
}

impl Drop for Buffers {
    fn drop(&mut self) {
        // SAFETY: both were mapped by `register` with these lengths. The ring has been
        // dropped or still holds no receive that could write into a buffer (else the buffers
        // are leaked, not dropped: `Ring::leak_buffers`); the kernel pins the entries' pages
        // for as long as it may read them.
        unsafe {
            let _ = munmap(self.memory.as_ptr().cast(), Self::MEMORY_BYTES);
            let _ = munmap(self.entries.as_ptr().cast(), Self::ENTRIES_BYTES);
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

/// Hands `input`, received, to the link for as long as it asks for bytes (nothing: the end of
/// the stream); returns what it did not take. It may ask for less than a receive brought,
/// having let its buffer go while it waited (`Link::rest`): the caller keeps the rest for
/// its next receive.
pub(crate) fn feed<'a>(
    link: &mut Link,
    mut input: &'a [u8],
    clock: &Clock,
    handler: &impl Handler,
) -> &'a [u8] {
    if input.is_empty() {
        link.received(0, clock.now());
    }
    while !input.is_empty() {
        match link.poll(clock, handler) {
            Step::Receive { buf, .. } if !buf.is_empty() => {
                let taken = buf.len().min(input.len());
                buf[..taken].copy_from_slice(&input[..taken]);
                link.received(taken, clock.now());
                input = &input[taken..];
            }
            _ => break,
        }
    }
    input
}

/// The first `len` bytes of `buffer`, grown to hold them. Growing is rare: a buffer ends up
/// as large as the largest piece its connection moved.
pub(crate) fn grown(buffer: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if buffer.len() < len {
        buffer.resize(len, 0);
    }
    &mut buffer[..len]
}
