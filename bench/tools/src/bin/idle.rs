//! idle: holds many idle keep-alive connections to a server, then times fresh requests beside
//! them (the C10K test of bench/run).
//!
//!   idle --addr 127.0.0.1:PORT [--conns 9000] [--path /index.html] [--fresh 2000]
//!        [--threads 8] [--timeout-ms 3000] [--open-secs 120] [--no-wait] [--tls CERT] [--h2]
//!
//! 1. Opens `--conns` connections from `--threads` threads; on each it sends one keep-alive GET
//!    and reads the response whole (by Content-Length), then leaves the connection idle.
//!    With `--tls CERT` every connection is HTTPS (TLS 1.3, trusting the PEM certificate CERT
//!    alone) and makes a full handshake of its own, as as many different clients would: no
//!    session is resumed, here or in the timed series.
//!    With `--h2` every connection speaks HTTP/2 instead: over TLS it offers ALPN `h2` alone
//!    (a server that picks nothing else fails the handshake), on plaintext it starts with the
//!    prior-knowledge preface (h2c). A held connection sends the preface and an empty SETTINGS
//!    frame, reads the server's SETTINGS (and acknowledges them) and the acknowledgement of
//!    its own, and is then left idle without a request; the timed series below make their
//!    GETs as HTTP/2 streams (`bingfa_bench_tools::h2`).
//! 2. Prints `held N failed M open_ms T` on stdout and waits for a line (or end of file) on
//!    stdin, so the caller can measure the server's memory while the connections are held
//!    (`--no-wait`: go straight on).
//! 3. With the connections still held, times `--fresh` requests one after another, each on a
//!    new connection (connect, GET, whole response, close), then `--fresh` requests one after
//!    another on a single keep-alive connection (with `--h2`: one stream after another).
//! 4. Prints one line of JSON: how many connections were held and why the others failed, and
//!    p50/p99/max (µs) of both series. Exits 0 whatever the server did; 2 on a bad command line.
//!
//! Every wait is bounded: `--timeout-ms` for each connect and response, `--open-secs` for the
//! opening phase (it also stops after 32 failures in a row: a server that serves only a few
//! connections at a time, like `pool`, would otherwise take hours), and 60 s or 5 failures in
//! a row for each timed series.

use bingfa_bench_tools::client::{self, exchange, percentile, Conn, Fail, Fails};
use bingfa_bench_tools::{h2, tls};
use rustls::ClientConfig;
use std::io::{self, BufRead, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FAILS_IN_A_ROW: usize = 32;
/// A timed series stops after this many failures in a row (a server that has stopped answering).
const SERIES_FAILS_IN_A_ROW: usize = 5;
const SERIES_LIMIT: Duration = Duration::from_secs(60);

struct Args {
    addr: SocketAddr,
    conns: usize,
    path: String,
    fresh: usize,
    threads: usize,
    timeout: Duration,
    open_secs: u64,
    wait: bool,
    tls: Option<Arc<ClientConfig>>,
    h2: bool,
    /// The HTTP/1.1 GET of `path`, made once.
    get: Vec<u8>,
}

fn usage(msg: &str) -> ! {
    eprintln!("idle: {msg}");
    eprintln!(
        "usage: idle --addr HOST:PORT [--conns N] [--path P] [--fresh N] [--threads N] \
         [--timeout-ms MS] [--open-secs S] [--no-wait] [--tls CERT] [--h2]"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut args = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 8000)),
        conns: 9000,
        path: "/index.html".into(),
        fresh: 2000,
        threads: 8,
        timeout: Duration::from_millis(3000),
        open_secs: 120,
        wait: true,
        tls: None,
        h2: false,
        get: Vec::new(),
    };
    let mut addr = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--no-wait" {
            args.wait = false;
            continue;
        }
        if flag == "--h2" {
            args.h2 = true;
            continue;
        }
        let Some(value) = it.next() else {
            usage(&format!("{flag} needs a value"))
        };
        let num = || {
            value
                .parse::<u64>()
                .unwrap_or_else(|_| usage(&format!("{flag}: not a number")))
        };
        match flag.as_str() {
            "--addr" => addr = Some(value.parse().unwrap_or_else(|_| usage("--addr: not HOST:PORT"))),
            "--conns" => args.conns = num() as usize,
            "--path" => args.path = value.clone(),
            "--fresh" => args.fresh = num() as usize,
            "--threads" => args.threads = (num() as usize).max(1),
            "--timeout-ms" => args.timeout = Duration::from_millis(num().max(1)),
            "--open-secs" => args.open_secs = num(),
            "--tls" => {
                let config = tls::pinned_config(Path::new(&value), false);
                args.tls = Some(config.unwrap_or_else(|e| usage(&e)));
            }
            _ => usage(&format!("unknown option {flag}")),
        }
    }
    args.addr = addr.unwrap_or_else(|| usage("--addr is required"));
    args.get = client::request(&args.path, args.addr, false);
    if let (true, Some(config)) = (args.h2, &args.tls) {
        let mut h2_only = (**config).clone();
        h2_only.alpn_protocols = vec![b"h2".to_vec()];
        args.tls = Some(Arc::new(h2_only));
    }
    args
}

/// A connection (TLS done; with `--h2`, HTTP/2 agreed on by ALPN over TLS).
fn connect(args: &Args) -> Result<Conn, Fail> {
    let conn = client::connect(args.addr, args.timeout, args.tls.as_ref())?;
    if args.h2 && args.tls.is_some() && conn.alpn() != Some(b"h2") {
        return Err(Fail::Handshake);
    }
    Ok(conn)
}

/// A connection that makes requests, and the stream its next HTTP/2 request goes on.
struct Session {
    conn: Conn,
    next_stream: u32,
}

/// A new connection ready for requests (an HTTP/2 one has sent its preface).
fn open(args: &Args) -> Result<Session, Fail> {
    let mut conn = connect(args)?;
    if args.h2 {
        h2::start(&mut conn)?;
    }
    Ok(Session { conn, next_stream: 1 })
}

/// One GET of `--path` and its whole 2xx response. `buf` is scratch space for HTTP/1.1.
fn request(args: &Args, s: &mut Session, buf: &mut Vec<u8>) -> Result<(), Fail> {
    if args.h2 {
        let stream = s.next_stream;
        s.next_stream += 2;
        let get = h2::get(stream, args.tls.is_some(), &args.addr.to_string(), &args.path);
        return h2::exchange(&mut s.conn, &get, stream).map(drop);
    }
    exchange(&mut s.conn, &args.get, buf).map(drop)
}

/// Phase 1, one connection: a GET and its response, or with `--h2` the SETTINGS exchange.
fn hold_one(args: &Args, buf: &mut Vec<u8>) -> Result<Conn, Fail> {
    if !args.h2 {
        let mut s = open(args)?;
        request(args, &mut s, buf)?;
        return Ok(s.conn);
    }
    let mut conn = connect(args)?;
    conn.write_all(&h2::client_preface(false))
        .map_err(|_| Fail::Write)?;
    h2::settle(&mut conn)?;
    Ok(conn)
}

/// Phase 1: the idle connections.
fn open_all(args: &Args) -> (Vec<Conn>, Fails) {
    let deadline = Instant::now() + Duration::from_secs(args.open_secs);
    let next = AtomicUsize::new(0);
    let in_a_row = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let held = Mutex::new(Vec::with_capacity(args.conns));
    let fails = Mutex::new(Fails::default());
    std::thread::scope(|scope| {
        for _ in 0..args.threads {
            scope.spawn(|| {
                let mut buf = Vec::new();
                let mut mine = Vec::new();
                let mut my_fails = Fails::default();
                while !stop.load(Ordering::Relaxed) && next.fetch_add(1, Ordering::Relaxed) < args.conns {
                    if Instant::now() > deadline {
                        stop.store(true, Ordering::Relaxed);
                        break;
                    }
                    match hold_one(args, &mut buf) {
                        Ok(s) => {
                            in_a_row.store(0, Ordering::Relaxed);
                            mine.push(s);
                        }
                        Err(f) => {
                            my_fails.add(f);
                            if in_a_row.fetch_add(1, Ordering::Relaxed) + 1 >= FAILS_IN_A_ROW {
                                stop.store(true, Ordering::Relaxed);
                            }
                        }
                    }
                }
                held.lock().unwrap().extend(mine);
                fails.lock().unwrap().merge(&my_fails);
            });
        }
    });
    (held.into_inner().unwrap(), fails.into_inner().unwrap())
}

/// Latencies of one timed series, in microseconds.
struct Series {
    micros: Vec<u64>,
    fails: Fails,
}

impl Series {
    fn json(&mut self) -> String {
        self.micros.sort_unstable();
        let pct = |q: f64| percentile(&self.micros, q).map_or("null".into(), |v| v.to_string());
        format!(
            "{{\"n\":{},\"failed\":{},\"errors\":{},\"p50_us\":{},\"p99_us\":{},\"max_us\":{}}}",
            self.micros.len(),
            self.fails.total(),
            self.fails.json(),
            pct(0.5),
            pct(0.99),
            pct(1.0)
        )
    }
}

/// Phase 3a: each request on a new connection.
fn fresh_connections(args: &Args) -> Series {
    let mut series = Series {
        micros: Vec::with_capacity(args.fresh),
        fails: Fails::default(),
    };
    let mut buf = Vec::new();
    let limit = Instant::now() + SERIES_LIMIT;
    let mut in_a_row = 0;
    for _ in 0..args.fresh {
        if Instant::now() > limit || in_a_row >= SERIES_FAILS_IN_A_ROW {
            break;
        }
        let t = Instant::now();
        match open(args).and_then(|mut s| request(args, &mut s, &mut buf)) {
            Ok(_) => {
                series.micros.push(t.elapsed().as_micros() as u64);
                in_a_row = 0;
            }
            Err(f) => {
                series.fails.add(f);
                in_a_row += 1;
            }
        }
    }
    series
}

/// Phase 3b: every request on one keep-alive connection (a new one if it breaks).
fn keep_alive(args: &Args) -> Series {
    let mut series = Series {
        micros: Vec::with_capacity(args.fresh),
        fails: Fails::default(),
    };
    let mut buf = Vec::new();
    let limit = Instant::now() + SERIES_LIMIT;
    let mut conn: Option<Session> = None;
    let mut in_a_row = 0;
    for _ in 0..args.fresh {
        if Instant::now() > limit || in_a_row >= SERIES_FAILS_IN_A_ROW {
            break;
        }
        let s = match conn.take() {
            Some(s) => s,
            None => match open(args) {
                Ok(s) => s,
                Err(f) => {
                    series.fails.add(f);
                    in_a_row += 1;
                    continue;
                }
            },
        };
        let mut s = s;
        let t = Instant::now();
        match request(args, &mut s, &mut buf) {
            Ok(_) => {
                series.micros.push(t.elapsed().as_micros() as u64);
                conn = Some(s);
                in_a_row = 0;
            }
            Err(f) => {
                series.fails.add(f);
                in_a_row += 1;
            }
        }
    }
    series
}

fn main() {
    let args = parse_args();
    let started = Instant::now();
    let (held, open_fails) = open_all(&args);
    let open_ms = started.elapsed().as_millis();
    let not_tried = args.conns.saturating_sub(held.len() + open_fails.total());
    println!(
        "held {} failed {} open_ms {}",
        held.len(),
        args.conns - held.len(),
        open_ms
    );
    let _ = io::stdout().flush();
    if args.wait {
        let mut line = String::new();
        let _ = io::stdin().lock().read_line(&mut line);
    }
    let mut fresh = fresh_connections(&args);
    let mut keep = keep_alive(&args);
    // How many of the held connections the server still keeps open (a closed one reads EOF;
    // over TLS, its close_notify comes first: any byte at all means the server is done).
    let mut still_open = 0;
    for s in held.iter().map(Conn::tcp) {
        let _ = s.set_nonblocking(true);
        let mut byte = [0u8; 1];
        match (&*s).read(&mut byte) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => still_open += 1,
            _ => {}
        }
    }
    println!(
        "{{\"conns\":{},\"held\":{},\"failed\":{},\"not_tried\":{},\"open_errors\":{},\"open_ms\":{},\
         \"still_open\":{},\"fresh\":{},\"keepalive\":{}}}",
        args.conns,
        held.len(),
        args.conns - held.len(),
        not_tried,
        open_fails.json(),
        open_ms,
        still_open,
        fresh.json(),
        keep.json()
    );
}
