//! How an HTTP/2 connection ends, in every model: GOAWAY when it has been idle for
//! `--idle-timeout` (and then the close), and at a server stop the two GOAWAYs of a graceful
//! shutdown (RFC 9113 §6.8: the first with the highest stream id and a PING, the last with
//! the last stream answered once the PING is answered), and a client that never answers
//! the PING still gets the last GOAWAY, after the header timeout.
//!
//! The frames are written by hand (a 9-byte header and a payload, RFC 9113 §4.1; the request
//! from HPACK's static table), with prior knowledge on plaintext: over TLS, ALPN chooses
//! HTTP/2, which the h2 and clients tests cover.

use std::time::Duration;

use crate::h2::{frame, ACK, END_STREAM, GOAWAY, HEADERS, PING, PREFACE, SETTINGS};
use crate::support::*;

const NO_ERROR: u32 = 0;
const HIGHEST_STREAM: u32 = (1 << 31) - 1;

/// The preface, an empty SETTINGS, and `GET /readme.txt` on stream 1.
fn opening() -> Vec<u8> {
    // :method GET, :scheme http (static table 2, 6), :path and :authority as literals
    // without indexing on their static names (4, 1).
    let mut block = vec![0x82, 0x86, 0x04, 11];
    block.extend_from_slice(b"/readme.txt");
    block.extend_from_slice(&[0x01, 9]);
    block.extend_from_slice(b"127.0.0.1");
    [
        PREFACE,
        &frame(SETTINGS, 0, 0, &[]),
        &frame(HEADERS, END_STREAM | 0x4, 1, &block),
    ]
    .concat()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Frame { kind: u8, flags: u8, stream: u32 },
    GoAway { last_stream: u32, code: u32 },
}

/// Reads frames until the server closes, answering its PINGs if `pong`; panics if it
/// neither sends nor closes within the client's timeout.
fn frames_until_close(client: &mut Client, pong: bool) -> Vec<Seen> {
    let mut seen = Vec::new();
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match client.read_some(&mut chunk) {
            Some(0) => return seen,
            Some(n) => bytes.extend_from_slice(&chunk[..n]),
            None => panic!("the server neither sent nor closed; frames so far: {seen:?}"),
        }
        while bytes.len() >= 9 {
            let len = usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
            if bytes.len() < 9 + len {
                break;
            }
            let (kind, flags) = (bytes[3], bytes[4]);
            let stream = u32::from_be_bytes([bytes[5] & 0x7f, bytes[6], bytes[7], bytes[8]]);
            let payload: Vec<u8> = bytes.drain(..9 + len).skip(9).collect();
            if kind == GOAWAY {
                let word = |at: usize| u32::from_be_bytes(payload[at..at + 4].try_into().unwrap());
                seen.push(Seen::GoAway {
                    last_stream: word(0) & HIGHEST_STREAM,
                    code: word(4),
                });
                continue;
            }
            if kind == PING && flags & ACK == 0 && pong {
                client.send(frame(PING, ACK, 0, &payload));
            }
            seen.push(Seen::Frame { kind, flags, stream });
        }
    }
}

fn goaways(seen: &[Seen]) -> Vec<(u32, u32)> {
    seen.iter()
        .filter_map(|frame| match frame {
            Seen::GoAway { last_stream, code } => Some((*last_stream, *code)),
            Seen::Frame { .. } => None,
        })
        .collect()
}

fn answered_stream_one(seen: &[Seen]) -> bool {
    seen.iter()
        .any(|frame| matches!(frame, Seen::Frame { kind, stream: 1, .. } if *kind == HEADERS))
}

model_tests! {
    fn an_idle_connection_says_goaway_before_it_closes(model m) {
        let s = TestServer::start_with(m, |c| c.idle_timeout = Duration::from_millis(500));
        let mut client = s.connect();
        client.send(opening());
        let seen = frames_until_close(&mut client, true);
        assert!(answered_stream_one(&seen), "[{m}] {seen:?}");
        assert_eq!(goaways(&seen), [(1, NO_ERROR)], "[{m}] {seen:?}");
        s.stop();
    }

    fn a_stop_says_goaway_twice_and_the_server_ends(model m) {
        let mut s = TestServer::start(m);
        let mut client = s.connect();
        client.send(opening());
        let mut first = [0u8; 4096];
        assert!(client.read_some(&mut first).is_some_and(|n| n > 0), "[{m}] no answer");
        s.begin_stop();
        let seen = frames_until_close(&mut client, true);
        let expected = [(HIGHEST_STREAM, NO_ERROR), (1, NO_ERROR)];
        assert_eq!(goaways(&seen), expected, "[{m}] {seen:?}");
        s.stop();
    }

    fn a_client_that_never_answers_the_stop_ping_still_gets_the_last_goaway(model m) {
        let mut s = TestServer::start_with(m, |c| c.header_timeout = Duration::from_millis(500));
        let mut client = s.connect();
        client.send(opening());
        let mut first = [0u8; 4096];
        assert!(client.read_some(&mut first).is_some_and(|n| n > 0), "[{m}] no answer");
        s.begin_stop();
        let seen = frames_until_close(&mut client, false);
        assert_eq!(goaways(&seen).last(), Some(&(1, NO_ERROR)), "[{m}] {seen:?}");
        s.stop();
    }
}
