//! ceiling: the machine's limit for bench/run, a server that does as little as a server can.
//!
//!   ceiling --addr 127.0.0.1:PORT [--threads N] [--body-bytes B]
//!
//! Every request gets the same canned response (`200 OK`, `Content-Length: B`, a body of B
//! bytes made at start): no parsing beyond finding each request's end (`\r\n\r\n`), no file
//! looked up, no headers looked at but `Connection: close` (answered with the same response
//! marked `Connection: close`, then a close: without it the churn workload would not churn).
//! One thread per core (the default), each with its own `SO_REUSEPORT` listener and its own
//! epoll (mio, edge-triggered). A small response is held in memory and pipelined requests are
//! answered together, in one `writev` of up to 64 copies; a body of 64 KiB or more is held in
//! an unlinked file in /dev/shm (memory) and sent with `sendfile` after its headers (sent with
//! `MSG_MORE`, so that they share a packet with the body), as the servers send a file, since
//! copying it from user space would cost the probe more than them. Whatever a real server does beyond this (parse, route, look up
//! and open a file, build headers) is what separates its rate from the probe's: bench/run
//! measures the probe with the same wrk workloads, and BENCHMARKS.md gives each server's rate
//! as a fraction of it.
//!
//! What it costs: nothing to speak of; it never allocates per request. It is not a server: it
//! answers garbage with 200 too, and never times a connection out. Exits on SIGTERM (the
//! default action) or on a bad command line (status 2).

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use nix::sys::sendfile::sendfile;
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use std::fs::File;
use std::io::{ErrorKind, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

const LISTENER: Token = Token(usize::MAX);
/// The most responses one `writev` carries.
const BATCH: usize = 64;

/// From this size on the body is sent with `sendfile` from memory.
const SENDFILE_FROM: usize = 64 * 1024;

/// The two canned responses: kept alive, and with `Connection: close`. Below SENDFILE_FROM
/// each holds its body; from it on, each is the headers alone and `body` holds the body.
struct Canned {
    keep: Vec<u8>,
    close: Vec<u8>,
    body: Option<(File, usize)>,
}

impl Canned {
    fn new(body_bytes: usize) -> std::io::Result<Canned> {
        let body = vec![b'x'; body_bytes];
        let big = body_bytes >= SENDFILE_FROM;
        let with = |extra: &str| {
            let mut r = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {body_bytes}\r\n{extra}\r\n"
            )
            .into_bytes();
            if !big {
                r.extend_from_slice(&body);
            }
            r
        };
        let body = if big {
            // Unlinked at once: the open file is all that is left of it.
            let path = format!("/dev/shm/bingfa-ceiling-{}", std::process::id());
            let mut file = File::options()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)?;
            std::fs::remove_file(&path)?;
            file.write_all(&body)?;
            Some((file, body_bytes))
        } else {
            None
        };
        Ok(Canned {
            keep: with(""),
            close: with("Connection: close\r\n"),
            body,
        })
    }

    /// A whole response's length: headers, and the body if it is sent from the file.
    fn len(&self, i: usize, owed: usize, closing: bool) -> usize {
        self.nth(i, owed, closing).len() + self.body.as_ref().map_or(0, |b| b.1)
    }

    /// The `i`th of `owed` responses: the last is the close one if a request asked for it.
    fn nth(&self, i: usize, owed: usize, closing: bool) -> &[u8] {
        if closing && i + 1 == owed {
            &self.close
        } else {
            &self.keep
        }
    }
}

/// One connection: what it has read and not yet answered, and the responses it owes.
struct Conn {
    stream: TcpStream,
    input: Vec<u8>,
    /// Responses owed, and how much of the first has been written.
    owed: usize,
    written: usize,
    /// A request asked for `Connection: close`: it is the last one answered.
    closing: bool,
}

impl Conn {
    /// Counts the complete requests in `input` (keeps an incomplete one's start).
    fn take_requests(&mut self) {
        let mut start = 0;
        while !self.closing {
            let Some(end) = find(&self.input[start..], b"\r\n\r\n") else {
                break;
            };
            let head = &self.input[start..start + end];
            self.closing = asks_close(head);
            self.owed += 1;
            start += end + 4;
        }
        self.input.drain(..start);
    }

    /// Reads until the socket would block; false once the peer has closed or failed.
    fn read(&mut self) -> bool {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => {
                    self.input.extend_from_slice(&buf[..n]);
                    self.take_requests();
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    /// Writes what is owed until done or the socket would block; false to close.
    fn write(&mut self, canned: &Canned) -> bool {
        match &canned.body {
            Some((file, size)) => self.send_files(canned, file, *size),
            None => self.write_inline(canned),
        }
    }

    /// Each response in turn: its headers written, then its body sent from the file.
    fn send_files(&mut self, canned: &Canned, file: &File, size: usize) -> bool {
        while self.owed > 0 {
            let head = canned.nth(0, self.owed, self.closing);
            let sent = if self.written < head.len() {
                // MSG_MORE: the headers wait to share a packet with the body's first bytes.
                SockRef::from(&self.stream).send_with_flags(&head[self.written..], libc::MSG_MORE)
            } else {
                let mut offset = (self.written - head.len()) as libc::off_t;
                let left = size - (self.written - head.len());
                sendfile(&self.stream, file, Some(&mut offset), left).map_err(std::io::Error::from)
            };
            match sent {
                Ok(0) => return false,
                Ok(n) => self.advance(n, canned),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        !self.closing
    }

    /// Up to BATCH whole responses at a time, in one `writev`.
    fn write_inline(&mut self, canned: &Canned) -> bool {
        while self.owed > 0 {
            let count = self.owed.min(BATCH);
            let (owed, closing, written) = (self.owed, self.closing, self.written);
            let slices: Vec<IoSlice<'_>> = (0..count)
                .map(|i| {
                    let r = canned.nth(i, owed, closing);
                    IoSlice::new(if i == 0 { &r[written..] } else { r })
                })
                .collect();
            match self.stream.write_vectored(&slices) {
                Ok(0) => return false,
                Ok(n) => self.advance(n, canned),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        !self.closing
    }

    /// Counts `n` bytes written off the responses owed.
    fn advance(&mut self, mut n: usize, canned: &Canned) {
        while n > 0 && self.owed > 0 {
            let left = canned.len(0, self.owed, self.closing) - self.written;
            if n < left {
                self.written += n;
                return;
            }
            n -= left;
            self.owed -= 1;
            self.written = 0;
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether a request head carries `Connection: close` (any case): wrk's churn sends exactly it.
fn asks_close(head: &[u8]) -> bool {
    head.windows(17)
        .any(|w| w.eq_ignore_ascii_case(b"connection: close"))
}

/// A listener of its own for one thread: `SO_REUSEPORT` lets the kernel spread connections.
fn listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// One thread's loop: accept, read, answer, forever.
fn serve(mut listener: TcpListener, canned: Arc<Canned>) -> std::io::Result<()> {
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(1024);
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in &events {
            if event.token() == LISTENER {
                accept_all(&listener, &poll, &mut conns, &mut free);
                continue;
            }
            let slot = event.token().0;
            let Some(conn) = conns.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            let mut open = true;
            if event.is_readable() || event.is_read_closed() {
                open = conn.read();
            }
            if open {
                open = conn.write(&canned);
            }
            if !open {
                if let Some(mut c) = conns[slot].take() {
                    let _ = poll.registry().deregister(&mut c.stream);
                }
                free.push(slot);
            }
        }
    }
}

fn accept_all(listener: &TcpListener, poll: &Poll, conns: &mut Vec<Option<Conn>>, free: &mut Vec<usize>) {
    loop {
        let mut stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // Out of descriptors or the like: the connection waits in the backlog.
            Err(_) => return,
        };
        let _ = stream.set_nodelay(true);
        let slot = free.pop().unwrap_or_else(|| {
            conns.push(None);
            conns.len() - 1
        });
        let interest = Interest::READABLE | Interest::WRITABLE;
        if poll
            .registry()
            .register(&mut stream, Token(slot), interest)
            .is_err()
        {
            free.push(slot);
            continue;
        }
        conns[slot] = Some(Conn {
            stream,
            input: Vec::new(),
            owed: 0,
            written: 0,
            closing: false,
        });
    }
}

fn usage() -> ! {
    eprintln!("usage: ceiling --addr HOST:PORT [--threads N] [--body-bytes B]");
    std::process::exit(2);
}

fn main() {
    let mut addr: Option<SocketAddr> = None;
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut body_bytes = 612;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--addr" => addr = Some(value.parse().unwrap_or_else(|_| usage())),
            "--threads" => threads = value.parse().unwrap_or_else(|_| usage()),
            "--body-bytes" => body_bytes = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    let Some(addr) = addr else { usage() };
    let canned = match Canned::new(body_bytes) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("ceiling: the body in /dev/shm: {e}");
            std::process::exit(1);
        }
    };
    let mut handles = Vec::new();
    for _ in 0..threads.max(1) {
        let l = match listener(addr) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("ceiling: {addr}: {e}");
                std::process::exit(1);
            }
        };
        let canned = canned.clone();
        handles.push(std::thread::spawn(move || serve(l, canned)));
    }
    for h in handles {
        if let Ok(Err(e)) = h.join() {
            eprintln!("ceiling: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn_with(input: &[u8]) -> Conn {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let std_stream = std::net::TcpStream::connect(std_listener.local_addr().unwrap()).unwrap();
        let mut c = Conn {
            stream: TcpStream::from_std(std_stream),
            input: input.to_vec(),
            owed: 0,
            written: 0,
            closing: false,
        };
        c.take_requests();
        c
    }

    #[test]
    fn counts_pipelined_requests_and_keeps_a_partial_one() {
        let c = conn_with(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\n\r\nGET /x HT");
        assert_eq!(c.owed, 2);
        assert_eq!(c.input, b"GET /x HT");
        assert!(!c.closing);
    }

    #[test]
    fn connection_close_ends_the_connection_after_its_answer() {
        let c = conn_with(b"GET / HTTP/1.1\r\nconnection: Close\r\n\r\nGET / HTTP/1.1\r\n\r\n");
        assert_eq!(c.owed, 1);
        assert!(c.closing);
    }

    #[test]
    fn canned_responses_carry_the_body_length() {
        let c = Canned::new(10).unwrap();
        assert!(c.keep.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert!(c.keep.ends_with(b"\r\n\r\nxxxxxxxxxx"));
        assert!(find(&c.close, b"Connection: close\r\n").is_some());
        assert_eq!(c.len(0, 1, false), c.keep.len());
    }

    #[test]
    fn a_big_body_is_sent_from_memory_after_the_headers() {
        let c = Canned::new(SENDFILE_FROM).unwrap();
        assert!(c.keep.ends_with(b"\r\n\r\n"));
        assert_eq!(c.body.as_ref().map(|b| b.1), Some(SENDFILE_FROM));
        assert_eq!(c.len(0, 1, false), c.keep.len() + SENDFILE_FROM);
    }
}
