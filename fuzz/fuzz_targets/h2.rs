//! The HTTP/2 path: a plaintext `bingfa::seam::Link` that hears HTTP/2's preface (prior
//! knowledge) and then arbitrary frames, fed from memory.
//!
//! Input layout: `data[0]` holds options, the next `k - 1` bytes are the lengths of the first
//! `k - 1` pieces, and the rest is what follows the preface:
//!
//! - bits 0-2: `k - 1`, so the frames come in 1 to 8 reads (the last takes what is left);
//! - bit 3: the client's TCP end follows the last piece (`received(0)`);
//! - bits 4-5: how much of each `Send` the "socket" takes: all, 1000, 100 or 7 bytes;
//! - bit 6: the server stops before the second piece (`Link::drain`);
//! - bit 7: `Settings::observe` (every exchange is told to the handler, with `HTTP/2.0`).
//!
//! The handler is `core`'s fake site (bodies in memory, ranges, a 70 000-byte body, a file
//! read with `pread` and framed by the seam).
//!
//! Checked: nothing panics (h2, the frame guard, the core's answers); the link never asks to
//! read after the peer closed, never offers an empty buffer to read into, never sends after
//! `Finish`, and settles within `MAX_STEPS` steps (more is a hang); after the deadline,
//! `Link::expire` leads to the end; every exchange told says `HTTP/2.0`.

#![no_main]

// The fake site, not the HTTP/1.1 response checker: the responses here are HTTP/2 frames.
#[allow(dead_code)]
mod common;

use bingfa::http::{Clock, Exchange, Handler, Reply, Request, Settings, Transmit};
use bingfa::seam::{Link, Step};
use common::{pieces, FakeSite, NOW};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant, UNIX_EPOCH};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const MAX_STEPS: usize = 1 << 20;

struct Site(FakeSite);

impl Handler for Site {
    fn handle(&self, request: &Request<'_>) -> Reply {
        self.0.handle(request)
    }

    fn exchanged(&self, exchange: &Exchange<'_>) {
        let version = exchange.request.map(|line| line.version);
        assert_eq!(version, Some("HTTP/2.0"), "an exchange over HTTP/2 says so");
    }
}

struct Wire {
    link: Link,
    clock: Clock,
    to_link: Vec<u8>,
    send_step: usize,
    peer_closed: bool,
    told_closed: bool,
    finished: bool,
    closed: bool,
    steps: usize,
}

impl Wire {
    /// Drives the link until it waits for bytes that have not come, or ends.
    fn settle(&mut self, site: &Site) {
        while !self.closed {
            self.steps += 1;
            assert!(self.steps <= MAX_STEPS, "the link never settles");
            let now = self.clock.now();
            match self.link.poll(&self.clock, site) {
                Step::Send(Transmit::Bytes { bytes, .. }) => {
                    assert!(!self.finished, "bytes sent after Finish");
                    let n = bytes.len().min(self.send_step);
                    self.link.sent(n, now);
                }
                Step::Send(Transmit::File { len, .. }) => {
                    assert!(!self.finished, "a file sent after Finish");
                    self.link.sent(len.min(self.send_step), now);
                }
                Step::Receive { buf, .. } => {
                    assert!(!self.told_closed, "asked to read after the end of stream");
                    assert!(!buf.is_empty(), "an empty buffer to read into");
                    if self.to_link.is_empty() {
                        if !self.peer_closed {
                            self.link.rest();
                            return;
                        }
                        self.told_closed = true;
                        self.link.received(0, now);
                        continue;
                    }
                    let n = buf.len().min(self.to_link.len());
                    buf[..n].copy_from_slice(&self.to_link[..n]);
                    self.to_link.drain(..n);
                    self.link.received(n, now);
                }
                Step::Finish => self.finished = true,
                Step::Close => self.closed = true,
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&options, rest)) = data.split_first() else {
        return;
    };
    let (pieces, _) = pieces(usize::from(options & 0x7) + 1, rest);
    let settings = Settings {
        observe: options & 0x80 != 0,
        ..Settings::default()
    };
    let clock = Clock::new(UNIX_EPOCH + Duration::from_secs(NOW), Instant::now());
    let site = Site(FakeSite::default());
    let mut wire = Wire {
        link: Link::new(settings, clock.now(), None),
        clock,
        to_link: PREFACE.to_vec(),
        send_step: [usize::MAX, 1000, 100, 7][usize::from(options >> 4 & 0x3)],
        peer_closed: false,
        told_closed: false,
        finished: false,
        closed: false,
        steps: 0,
    };
    for (at, piece) in pieces.iter().enumerate() {
        if at == 1 && options & 0x40 != 0 {
            wire.link.drain();
        }
        wire.to_link.extend_from_slice(piece);
        wire.settle(&site);
    }
    wire.peer_closed = options & 0x8 != 0;
    wire.settle(&site);
    // Time runs out: an idle link says its last word (GOAWAY) and ends, or closes at once.
    let mut expiries = 0;
    while !wire.closed {
        let now = wire.link.deadline();
        wire.clock.tick(UNIX_EPOCH + Duration::from_secs(NOW + 1000), now);
        expiries += 1;
        assert!(expiries <= 3, "the link never ends after its deadline");
        if !wire.link.expire(now) {
            break;
        }
        wire.peer_closed = true;
        wire.settle(&site);
    }
});
