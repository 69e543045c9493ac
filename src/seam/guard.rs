//! What h2 lets through or answers with a vaguer error, read from the frame headers as the
//! bytes go by, before h2 parses the frames:
//!
//! - **Floods** of frames that are each harmless: SETTINGS, PING, WINDOW_UPDATE, RST_STREAM,
//!   PRIORITY, CONTINUATION, empty DATA and unknown types. Each costs the server work (an
//!   ACK to write, a stream to look up, a header block to grow) and the client next to
//!   nothing, so a client that sends far more of them than its requests and downloads
//!   explain is cut with ENHANCE_YOUR_CALM, as nginx and h2o do (CVE-2019-9512, -9515,
//!   -9518, CVE-2023-44487, CVE-2024-27316).
//! - **The error codes RFC 9113 names** where h2 answers PROTOCOL_ERROR: FRAME_SIZE_ERROR
//!   for a frame longer than allowed or a fixed-size frame of the wrong size (§4.2, §6),
//!   FLOW_CONTROL_ERROR for an initial window above 2^31-1 (§6.5.2), STREAM_CLOSED for
//!   HEADERS or DATA on a stream the client has closed (§5.1).
//!
//! - **What a server never takes from a client**: PUSH_PROMISE is a connection error
//!   (§8.4). A client's GOAWAY is checked (stream 0, at least 8 bytes) and then kept from h2:
//!   it only says which pushed streams the client saw, and the server pushes none; given to
//!   h2, it would close the connection as soon as no stream is open, before the frames the
//!   client still sends (a PING) are answered. The client closes when it is done.
//!
//! It passes the bytes on as they come (a frame's header once whole), reading the 9-byte
//! frame headers (§4.1) and the entries of SETTINGS, nothing else.

use h2::Reason;

/// Cheap frames a connection may send before it has earned any.
const ALLOWANCE: i64 = 1000;
/// What a request earns: a page's worth of control frames around it.
const PER_REQUEST: i64 = 8;
/// What each piece of a response body earns: a WINDOW_UPDATE or two per piece read.
pub(super) const PER_PIECE: i64 = 2;

const FRAME_HEADER: usize = 9;
/// SETTINGS_MAX_FRAME_SIZE: the server never raises it from the protocol's initial value.
const MAX_FRAME: usize = 16_384;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const PRIORITY: u8 = 0x2;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const PUSH_PROMISE: u8 = 0x5;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// Streams the client may keep open that the guard follows; beyond them, h2 refuses new
/// streams anyway (`--h2-max-streams` is far below), and a refused stream is closed.
const MOST_OPEN: usize = 1024;
/// Stream identifiers the client skipped (never opened, so not closed by it either) that
/// the guard remembers, as ranges; older ones are forgotten.
const MOST_SKIPPED: usize = 16;

const SETTINGS_ENTRY: usize = 6;
const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
const MAX_WINDOW: u32 = (1 << 31) - 1;

/// Reads frame headers as they arrive, across reads.
#[derive(Debug)]
pub(super) struct FrameGuard {
    /// Cheap frames still allowed.
    budget: i64,
    /// A frame header cut across reads.
    header: [u8; FRAME_HEADER],
    header_len: usize,
    /// Payload bytes of the current frame still to pass.
    payload_left: usize,
    /// The current frame is SETTINGS: its entries are read.
    in_settings: bool,
    /// The current frame is kept from h2 (a client's GOAWAY).
    dropping: bool,
    /// A SETTINGS frame is held until its entries are checked, so that h2 never acts on
    /// one the guard refuses.
    held: Vec<u8>,
    entry: [u8; SETTINGS_ENTRY],
    entry_len: usize,
    /// The highest stream the client has opened, those it has not yet closed, and the
    /// identifiers it skipped below the highest.
    highest: u32,
    open: Vec<u32>,
    skipped: Vec<(u32, u32)>,
    /// A header block of this stream is open: only its CONTINUATION may come (§6.10).
    continuing: Option<u32>,
    stopped: Option<Reason>,
}

/// What the bytes just seen call for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Pass,
    /// End the connection with GOAWAY `reason`; what was passed on ends before the frame at
    /// fault.
    Stop(Reason),
}

impl Default for FrameGuard {
    fn default() -> FrameGuard {
        FrameGuard {
            budget: ALLOWANCE,
            header: [0; FRAME_HEADER],
            header_len: 0,
            // The client's preface comes before its first frame.
            payload_left: super::h2::PREFACE.len(),
            in_settings: false,
            dropping: false,
            held: Vec::new(),
            entry: [0; SETTINGS_ENTRY],
            entry_len: 0,
            highest: 0,
            open: Vec::new(),
            skipped: Vec::new(),
            continuing: None,
            stopped: None,
        }
    }
}

impl FrameGuard {
    /// `bytes` arrived (the preface, then frames): appends to `out` what h2 is to read.
    pub fn pass(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Verdict {
        if let Some(reason) = self.stopped {
            return Verdict::Stop(reason);
        }
        let mut at = 0;
        while at < bytes.len() {
            if self.payload_left > 0 {
                let n = self.payload_left.min(bytes.len() - at);
                let payload = &bytes[at..at + n];
                self.payload_left -= n;
                at += n;
                if self.in_settings {
                    self.settings_entries(payload);
                    self.held.extend_from_slice(payload);
                    if self.payload_left == 0 && self.stopped.is_none() {
                        out.append(&mut self.held);
                    }
                } else if !self.dropping {
                    out.extend_from_slice(payload);
                }
            } else {
                let n = (FRAME_HEADER - self.header_len).min(bytes.len() - at);
                self.header[self.header_len..self.header_len + n].copy_from_slice(&bytes[at..at + n]);
                self.header_len += n;
                at += n;
                if self.header_len == FRAME_HEADER {
                    self.header_len = 0;
                    self.frame_header();
                    let held = if self.in_settings && self.payload_left > 0 {
                        &mut self.held
                    } else {
                        &mut *out
                    };
                    if self.stopped.is_none() && !self.dropping {
                        held.extend_from_slice(&self.header);
                    }
                }
            }
            if let Some(reason) = self.stopped {
                return Verdict::Stop(reason);
            }
        }
        Verdict::Pass
    }

    /// Whether the bytes so far end inside a frame (its header or payload) or inside a
    /// header block (HEADERS awaiting CONTINUATION): something has begun and not ended.
    pub fn within_frame(&self) -> bool {
        self.header_len > 0 || self.payload_left > 0 || self.continuing.is_some()
    }

    /// A piece of a response body went out: the client's WINDOW_UPDATEs for it are due.
    pub fn earned(&mut self, amount: i64) {
        self.budget = self.budget.saturating_add(amount);
    }

    fn frame_header(&mut self) {
        let [l0, l1, l2, kind, flags, s0, s1, s2, s3] = self.header;
        let len = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
        let stream = u32::from_be_bytes([s0 & 0x7f, s1, s2, s3]);
        self.payload_left = len;
        self.in_settings = kind == SETTINGS;
        self.dropping = kind == GOAWAY;
        self.entry_len = 0;
        if let Err(reason) = self.check(kind, flags, len, stream) {
            self.stopped = Some(reason);
        }
    }

    fn check(&mut self, kind: u8, flags: u8, len: usize, stream: u32) -> Result<(), Reason> {
        let fixed_size = match kind {
            PING => Some(8),
            PRIORITY => Some(5),
            RST_STREAM | WINDOW_UPDATE => Some(4),
            SETTINGS if flags & ACK != 0 => Some(0),
            _ => None,
        };
        let wrong_size = fixed_size.is_some_and(|size| len != size)
            || (kind == SETTINGS && !len.is_multiple_of(SETTINGS_ENTRY))
            || (kind == GOAWAY && len < 8);
        if len > MAX_FRAME || wrong_size {
            return Err(Reason::FRAME_SIZE_ERROR);
        }
        if kind == PUSH_PROMISE || (kind == GOAWAY && stream != 0) {
            return Err(Reason::PROTOCOL_ERROR);
        }
        match (self.continuing, kind) {
            (Some(open), CONTINUATION) if open == stream => {
                if flags & END_HEADERS != 0 {
                    self.continuing = None;
                }
                return self.spend();
            }
            (Some(_), _) | (None, CONTINUATION) => return Err(Reason::PROTOCOL_ERROR),
            (None, _) => {}
        }
        if kind == HEADERS && flags & END_HEADERS == 0 {
            self.continuing = Some(stream);
        }
        match kind {
            HEADERS if stream > self.highest => {
                self.opened(stream, flags);
                self.earned(PER_REQUEST);
                Ok(())
            }
            // Trailers, or a body, on a stream the client keeps open.
            HEADERS | DATA if stream != 0 && stream <= self.highest && !self.was_skipped(stream) => {
                let Some(index) = self.open.iter().position(|&open| open == stream) else {
                    return Err(Reason::STREAM_CLOSED);
                };
                if flags & END_STREAM != 0 {
                    self.open.swap_remove(index);
                } else if kind == DATA && len == 0 {
                    self.spend()?;
                }
                Ok(())
            }
            HEADERS | DATA => Ok(()), // h2 answers what is left (stream 0, DATA on an idle stream)
            RST_STREAM => {
                self.open.retain(|&open| open != stream);
                self.spend()
            }
            _ => self.spend(),
        }
    }

    /// The client opened `stream` (above every one before).
    fn opened(&mut self, stream: u32, flags: u8) {
        let next = if self.highest == 0 { 1 } else { self.highest + 2 };
        if stream > next {
            if self.skipped.len() == MOST_SKIPPED {
                self.skipped.remove(0);
            }
            self.skipped.push((next, stream - 1));
        }
        self.highest = stream;
        if flags & END_STREAM == 0 && self.open.len() < MOST_OPEN {
            self.open.push(stream);
        }
    }

    /// Whether the client never opened `stream`, below its highest (h2 answers frames on it).
    fn was_skipped(&self, stream: u32) -> bool {
        self.skipped
            .iter()
            .any(|&(first, last)| (first..=last).contains(&stream))
    }

    /// One cheap frame more.
    fn spend(&mut self) -> Result<(), Reason> {
        self.budget -= 1;
        if self.budget < 0 {
            Err(Reason::ENHANCE_YOUR_CALM)
        } else {
            Ok(())
        }
    }

    /// Reads SETTINGS entries (identifier: 2 bytes, value: 4), however the bytes are cut.
    fn settings_entries(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let n = (SETTINGS_ENTRY - self.entry_len).min(bytes.len());
            self.entry[self.entry_len..self.entry_len + n].copy_from_slice(&bytes[..n]);
            self.entry_len += n;
            bytes = &bytes[n..];
            if self.entry_len == SETTINGS_ENTRY {
                self.entry_len = 0;
                let [i0, i1, v0, v1, v2, v3] = self.entry;
                let id = u16::from_be_bytes([i0, i1]);
                let value = u32::from_be_bytes([v0, v1, v2, v3]);
                if id == SETTINGS_INITIAL_WINDOW_SIZE && value > MAX_WINDOW {
                    self.stopped = Some(Reason::FLOW_CONTROL_ERROR);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::h2::PREFACE;
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len().to_be_bytes();
        let mut frame = vec![len[5], len[6], len[7], kind, flags];
        frame.extend_from_slice(&stream.to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    fn guard() -> FrameGuard {
        let mut guard = FrameGuard::default();
        assert_eq!(guard.saw(PREFACE), Verdict::Pass);
        guard
    }

    impl FrameGuard {
        /// `pass`, dropping what it passes on.
        fn saw(&mut self, bytes: &[u8]) -> Verdict {
            self.pass(bytes, &mut Vec::new())
        }
    }

    #[test]
    fn pings_beyond_the_allowance_are_a_flood_however_they_are_cut() {
        let ping = frame(PING, 0, 0, &[0; 8]);
        let flood = [PREFACE, &ping.repeat(ALLOWANCE as usize + 1)].concat();
        let mut guard = FrameGuard::default();
        let pieces: Vec<&[u8]> = flood.chunks(7).collect();
        let (last, first) = pieces.split_last().unwrap();
        for piece in first.iter().take(first.len() - 2) {
            assert_eq!(guard.saw(piece), Verdict::Pass);
        }
        let _ = last;
        let mut guard = FrameGuard::default();
        let mut passed = Vec::new();
        let verdict = guard.pass(&flood, &mut passed);
        assert_eq!(verdict, Verdict::Stop(Reason::ENHANCE_YOUR_CALM));
        assert_eq!(passed, flood[..flood.len() - ping.len()], "all but the last ping");
        assert!(
            matches!(guard.saw(&ping), Verdict::Stop { .. }),
            "a flood stays one"
        );
    }

    #[test]
    fn requests_earn_control_frames_but_not_without_end() {
        let mut guard = guard();
        let ping = frame(PING, 0, 0, &[0; 8]);
        for stream in (1..2000).step_by(2) {
            let mut round = frame(HEADERS, 0x5, stream, &[0x82, 0x84, 0x86]);
            for _ in 0..PER_REQUEST + 4 {
                round.extend_from_slice(&ping);
            }
            if guard.saw(&round) != Verdict::Pass {
                return; // four more than earned each round: the allowance runs out
            }
        }
        panic!("a client sending more control frames than its requests earn is never cut");
    }

    #[test]
    fn downloads_pay_for_their_window_updates() {
        let mut guard = guard();
        let window_update = frame(WINDOW_UPDATE, 0, 0, &[0, 0, 0x40, 0]);
        for _ in 0..100 * ALLOWANCE {
            guard.earned(PER_PIECE);
            assert_eq!(guard.saw(&window_update), Verdict::Pass);
        }
    }

    #[test]
    fn fixed_size_frames_of_another_size_are_frame_size_errors() {
        let cases = [
            frame(PING, 0, 0, &[0; 6]),
            frame(PRIORITY, 0, 1, &[0; 4]),
            frame(RST_STREAM, 0, 1, &[0; 3]),
            frame(WINDOW_UPDATE, 0, 0, &[0; 3]),
            frame(SETTINGS, ACK, 0, &[0; 6]),
            frame(SETTINGS, 0, 0, &[0; 3]),
            frame(DATA, 0, 1, &[0; MAX_FRAME + 1]),
        ];
        for case in cases {
            let before = frame(PING, 0, 0, &[0; 8]);
            let bytes = [&before[..], &case].concat();
            let mut passed = Vec::new();
            let verdict = guard().pass(&bytes, &mut passed);
            assert_eq!(verdict, Verdict::Stop(Reason::FRAME_SIZE_ERROR), "{case:?}");
            assert_eq!(passed, before, "the frames before the one at fault pass on");
        }
    }

    #[test]
    fn an_initial_window_beyond_the_maximum_is_a_flow_control_error_even_when_cut() {
        let mut payload = vec![0, 0x3, 0, 0, 0, 100];
        payload.extend_from_slice(&[0, 0x4, 0x80, 0, 0, 0]);
        let settings = frame(SETTINGS, 0, 0, &payload);
        let mut guard = guard();
        let mut passed = Vec::new();
        assert_eq!(guard.pass(&settings[..12], &mut passed), Verdict::Pass);
        let verdict = guard.pass(&settings[12..], &mut passed);
        assert_eq!(verdict, Verdict::Stop(Reason::FLOW_CONTROL_ERROR));
        assert!(
            passed.is_empty(),
            "h2 never sees a SETTINGS frame the guard refuses"
        );
        let fine = frame(SETTINGS, 0, 0, &[0, 0x4, 0x7f, 0xff, 0xff, 0xff]);
        let mut passed = Vec::new();
        for piece in fine.chunks(4) {
            assert_eq!(self::guard().pass(piece, &mut passed), Verdict::Pass);
        }
        let mut guard = self::guard();
        passed.clear();
        for piece in fine.chunks(4) {
            assert_eq!(guard.pass(piece, &mut passed), Verdict::Pass);
        }
        assert_eq!(passed, fine, "a SETTINGS frame passes on whole once checked");
    }

    #[test]
    fn frames_on_a_stream_the_client_closed_are_stream_closed() {
        let request = frame(HEADERS, 0x5, 1, &[0x82]);
        let again = frame(HEADERS, 0x5, 1, &[0x82]);
        let data = frame(DATA, 0, 1, b"x");
        let mut guard = guard();
        assert_eq!(guard.saw(&request), Verdict::Pass);
        assert_eq!(guard.saw(&again), Verdict::Stop(Reason::STREAM_CLOSED));
        let mut guard = self::guard();
        assert_eq!(guard.saw(&request), Verdict::Pass);
        assert_eq!(guard.saw(&data), Verdict::Stop(Reason::STREAM_CLOSED));

        let open = frame(HEADERS, 0x4, 3, &[0x82]);
        let body = frame(DATA, END_STREAM, 3, b"body");
        let reset = frame(RST_STREAM, 0, 5, &[0, 0, 0, 8]);
        let mut guard = self::guard();
        assert_eq!(guard.saw(&[open.clone(), body].concat()), Verdict::Pass);
        let opened_then_reset = [frame(HEADERS, 0x4, 5, &[0x82]), reset].concat();
        assert_eq!(guard.saw(&opened_then_reset), Verdict::Pass);
        let late = frame(DATA, 0, 5, b"late");
        assert_eq!(guard.saw(&late), Verdict::Stop(Reason::STREAM_CLOSED));
    }

    #[test]
    fn only_the_continuation_of_an_open_header_block_may_follow_it() {
        let open = frame(HEADERS, 0x1, 1, &[0x82]);
        let continuation = frame(CONTINUATION, END_HEADERS, 1, &[0x84]);
        let mut guard = guard();
        assert_eq!(
            guard.saw(&[open.clone(), continuation.clone()].concat()),
            Verdict::Pass
        );
        assert_eq!(guard.saw(&continuation), Verdict::Stop(Reason::PROTOCOL_ERROR));
        let ping = frame(PING, 0, 0, &[0; 8]);
        let mut guard = self::guard();
        let interrupted = [frame(HEADERS, 0x1, 3, &[0x82]), ping].concat();
        assert_eq!(guard.saw(&interrupted), Verdict::Stop(Reason::PROTOCOL_ERROR));
    }

    #[test]
    fn frames_pass_on_whole_and_a_clients_goaway_is_kept_from_h2() {
        let ping = frame(PING, 0, 0, &[7; 8]);
        let goaway = frame(GOAWAY, 0, 0, &[0, 0, 0, 0, 0, 0, 0, 0x17]);
        let stream = [PREFACE, &ping, &goaway, &ping].concat();
        let mut guard = FrameGuard::default();
        let mut passed = Vec::new();
        for piece in stream.chunks(5) {
            assert_eq!(guard.pass(piece, &mut passed), Verdict::Pass);
        }
        assert_eq!(passed, [PREFACE, &ping, &ping].concat());
    }

    #[test]
    fn push_promise_and_a_goaway_on_a_stream_are_protocol_errors() {
        let push = frame(PUSH_PROMISE, END_HEADERS, 1, &[0, 0, 0, 2, 0x88]);
        assert_eq!(guard().saw(&push), Verdict::Stop(Reason::PROTOCOL_ERROR));
        let goaway = frame(GOAWAY, 0, 1, &[0; 8]);
        assert_eq!(guard().saw(&goaway), Verdict::Stop(Reason::PROTOCOL_ERROR));
        let short = frame(GOAWAY, 0, 0, &[0; 4]);
        assert_eq!(guard().saw(&short), Verdict::Stop(Reason::FRAME_SIZE_ERROR));
    }

    #[test]
    fn a_stream_skipped_below_the_highest_is_left_to_h2() {
        let mut guard = guard();
        assert_eq!(guard.saw(&frame(HEADERS, 0x5, 5, &[0x82])), Verdict::Pass);
        assert_eq!(guard.saw(&frame(HEADERS, 0x5, 3, &[0x82])), Verdict::Pass);
    }
}
