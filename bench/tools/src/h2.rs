//! Just enough of an HTTP/2 client for the idle test (RFC 9113): the connection preface, the
//! SETTINGS exchange, and GETs of small files, one stream at a time.
//!
//! Requests are encoded with HPACK's static table and literals that are never indexed, so the
//! client keeps no dynamic table; of a response it reads the frame headers, the status (which
//! every server tried encodes as the static table's `:status: 200`) and counts the body to the
//! end of its stream. No priorities, no pushes (SETTINGS_ENABLE_PUSH is left at the default,
//! but no server here pushes), bodies no larger than the initial stream window.

use crate::client::{Conn, Fail};
use std::io::{self, Read, Write};

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// The largest frame a server may send before it has our SETTINGS (SETTINGS_MAX_FRAME_SIZE's
/// default), which we never raise.
const MAX_FRAME: usize = 16 * 1024;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = Vec::with_capacity(9 + payload.len());
    f.extend_from_slice(&len.to_be_bytes()[1..]);
    f.push(kind);
    f.push(flags);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// What a client sends first: the preface and an empty SETTINGS frame (every setting at its
/// default). `for_requests` adds a WINDOW_UPDATE that opens the connection's receive window
/// to its maximum, so that a connection making thousands of requests never has to give
/// credit back (each stream's own window, 64 KiB, holds a small file whole).
pub fn client_preface(for_requests: bool) -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    if for_requests {
        let increment: u32 = (1 << 31) - 1 - 65_535;
        out.extend(frame(WINDOW_UPDATE, 0, 0, &increment.to_be_bytes()));
    }
    out
}

/// An HPACK integer with an `n`-bit prefix whose high bits are `first` (RFC 7541, 5.1).
fn hpack_int(out: &mut Vec<u8>, first: u8, n: u32, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// A literal field never indexed, its name from the static table (RFC 7541, 6.2.3), its value
/// not Huffman-coded.
fn literal(out: &mut Vec<u8>, name_index: usize, value: &str) {
    hpack_int(out, 0x10, 4, name_index);
    hpack_int(out, 0x00, 7, value.len());
    out.extend_from_slice(value.as_bytes());
}

/// The HEADERS frame of `GET path` on `stream` (odd, and higher than the last one).
pub fn get(stream: u32, tls: bool, authority: &str, path: &str) -> Vec<u8> {
    // Static table: 2 = :method GET, 6/7 = :scheme http/https, 1 = :authority, 4 = :path.
    let mut block = vec![0x82, if tls { 0x87 } else { 0x86 }];
    literal(&mut block, 1, authority);
    literal(&mut block, 4, path);
    frame(HEADERS, 0x4 | END_STREAM, stream, &block) // END_HEADERS | END_STREAM
}

struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

fn read_fail(e: &io::Error) -> Fail {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Fail::Timeout,
        _ => Fail::Closed, // UnexpectedEof among them: the server closed
    }
}

fn read_frame(s: &mut Conn) -> Result<Frame, Fail> {
    let mut head = [0u8; 9];
    s.read_exact(&mut head).map_err(|e| read_fail(&e))?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    if len > MAX_FRAME {
        return Err(Fail::Bad);
    }
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).map_err(|e| read_fail(&e))?;
    Ok(Frame {
        kind: head[3],
        flags: head[4],
        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
        payload,
    })
}

/// Answers what the connection itself asks of a client (SETTINGS, PING), and fails on a
/// GOAWAY. Returns whether the frame was a SETTINGS from the server (not an ACK of ours).
fn connection_frame(s: &mut Conn, f: &Frame) -> Result<bool, Fail> {
    match f.kind {
        SETTINGS if f.flags & ACK == 0 => {
            s.write_all(&frame(SETTINGS, ACK, 0, &[]))
                .map_err(|_| Fail::Write)?;
            Ok(true)
        }
        PING if f.flags & ACK == 0 => {
            s.write_all(&frame(PING, ACK, 0, &f.payload))
                .map_err(|_| Fail::Write)?;
            Ok(false)
        }
        GOAWAY => Err(Fail::Closed),
        _ => Ok(false),
    }
}

/// After `client_preface` has been written: reads until the server has sent its SETTINGS
/// (which the client acknowledges) and acknowledged ours, so that nothing is left unread on
/// a connection about to be held idle (any byte that comes later means the server is done).
pub fn settle(s: &mut Conn) -> Result<(), Fail> {
    let (mut theirs, mut ack) = (false, false);
    while !(theirs && ack) {
        let f = read_frame(s)?;
        if f.kind == SETTINGS && f.flags & ACK != 0 {
            ack = true;
        }
        theirs |= connection_frame(s, &f)?;
    }
    Ok(())
}

/// The status of a response's header block, if it starts with one of the static table's
/// `:status` entries 200, 204 or 206 (RFC 7541, appendix A: 8, 9, 10), after any dynamic
/// table size updates. Any other start is not a 2xx this client can tell.
fn status(block: &[u8]) -> Option<u16> {
    let mut i = 0;
    while block.get(i)? & 0xe0 == 0x20 {
        // A size update: its integer's continuation bytes have the high bit set.
        i += 1;
        if block[i - 1] & 0x1f == 0x1f {
            while block.get(i)? & 0x80 != 0 {
                i += 1;
            }
            i += 1;
        }
    }
    match block.get(i)? {
        0x88 => Some(200),
        0x89 => Some(204),
        0x8a => Some(206),
        _ => None,
    }
}

/// The header block fragment of a HEADERS frame, without its padding and priority fields.
fn header_block(f: &Frame) -> Option<&[u8]> {
    let mut p = &f.payload[..];
    let mut pad = 0;
    if f.flags & PADDED != 0 {
        pad = *p.first()? as usize;
        p = &p[1..];
    }
    if f.flags & PRIORITY != 0 {
        p = p.get(5..)?;
    }
    p.get(..p.len().checked_sub(pad)?)
}

/// Sends `req` (a `get` on `stream`) and reads frames until that stream ends: the response
/// must be a 2xx. Returns its body's length.
pub fn exchange(s: &mut Conn, req: &[u8], stream: u32) -> Result<usize, Fail> {
    s.write_all(req).map_err(|_| Fail::Write)?;
    let mut body = 0;
    let mut ok = false;
    loop {
        let f = read_frame(s)?;
        if f.stream != stream {
            connection_frame(s, &f)?;
            continue;
        }
        match f.kind {
            HEADERS => ok = header_block(&f).and_then(status).is_some(),
            DATA => body += f.payload.len(),
            RST_STREAM => return Err(Fail::Bad),
            _ => {}
        }
        if f.flags & END_STREAM != 0 && matches!(f.kind, HEADERS | DATA) {
            return if ok { Ok(body) } else { Err(Fail::Bad) };
        }
    }
}

/// Connection-level setup for a connection that will make requests: the preface (with the
/// wide connection window), nothing read yet; the first `exchange` reads the server's
/// SETTINGS on its way.
pub fn start(s: &mut Conn) -> Result<(), Fail> {
    s.write_all(&client_preface(true)).map_err(|_| Fail::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpack_integers_follow_rfc7541_c1() {
        let mut out = Vec::new();
        hpack_int(&mut out, 0, 5, 10);
        assert_eq!(out, [10]);
        out.clear();
        hpack_int(&mut out, 0, 5, 1337);
        assert_eq!(out, [31, 154, 10]);
    }

    #[test]
    fn status_skips_size_updates() {
        assert_eq!(status(&[0x88]), Some(200));
        assert_eq!(status(&[0x20, 0x88]), Some(200));
        assert_eq!(status(&[0x3f, 0xe1, 0x1f, 0x88]), Some(200));
        assert_eq!(status(&[0x8d]), None); // 404
    }
}
