//! handshake: TLS handshakes per second, each on a new connection with one small GET (the
//! `tls-full` and `tls-resumed` workloads of bench/run).
//!
//!   handshake --addr 127.0.0.1:PORT --tls CERT [--secs 8] [--threads 4] [--path /index.html]
//!             [--resume] [--timeout-ms 3000]
//!
//! `--threads` threads each loop for `--secs` seconds: connect, TLS 1.3 handshake (trusting the
//! PEM certificate CERT alone), `GET --path` with `Connection: close`, read the whole response,
//! close. Without `--resume` no session is kept, so every handshake is a full one (ECDHE and
//! the server's signature); with it, the threads share one cache of the server's TLS 1.3
//! session tickets and offer one in every handshake, so after each thread's first all are
//! resumed (a PSK with a fresh ECDHE, no certificate, no signature). The kind of each handshake
//! is counted as rustls saw it, so a server that declines to resume shows as `full`.
//!
//! Prints one line of JSON: handshakes completed with their response (`handshakes`, and the
//! rate over the run's wall time), how many were full, full after a HelloRetryRequest, or
//! resumed, the failures by kind, the cipher suite and key exchange of the last one, and
//! p50/p99/max (µs) from connect to the response's last byte. A thread stops early after 32
//! failures in a row (a server that stopped answering). Exits 0 whatever the server did; 2 on
//! a bad command line.

use bingfa_bench_tools::client::{self, exchange, percentile, Fails};
use bingfa_bench_tools::tls;
use rustls::{ClientConfig, HandshakeKind};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FAILS_IN_A_ROW: usize = 32;

struct Args {
    addr: SocketAddr,
    secs: u64,
    threads: usize,
    path: String,
    timeout: Duration,
    tls: Arc<ClientConfig>,
}

fn usage(msg: &str) -> ! {
    eprintln!("handshake: {msg}");
    eprintln!(
        "usage: handshake --addr HOST:PORT --tls CERT [--secs S] [--threads N] [--path P] \
         [--resume] [--timeout-ms MS]"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let (mut addr, mut cert, mut resume) = (None, None, false);
    let (mut secs, mut threads, mut path, mut timeout) = (8, 4, "/index.html".to_string(), 3000);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--resume" {
            resume = true;
            continue;
        }
        let Some(value) = it.next() else {
            usage(&format!("{flag} needs a value"))
        };
        let num = || {
            value
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .unwrap_or_else(|| usage(&format!("{flag}: not a positive number")))
        };
        match flag.as_str() {
            "--addr" => addr = Some(value.parse().unwrap_or_else(|_| usage("--addr: not HOST:PORT"))),
            "--tls" => cert = Some(value.clone()),
            "--secs" => secs = num(),
            "--threads" => threads = num() as usize,
            "--path" => path = value.clone(),
            "--timeout-ms" => timeout = num(),
            _ => usage(&format!("unknown option {flag}")),
        }
    }
    let cert = cert.unwrap_or_else(|| usage("--tls is required"));
    Args {
        addr: addr.unwrap_or_else(|| usage("--addr is required")),
        secs,
        threads,
        path,
        timeout: Duration::from_millis(timeout),
        tls: tls::pinned_config(Path::new(&cert), resume).unwrap_or_else(|e| usage(&e)),
    }
}

/// What one thread (and then the whole run) saw.
#[derive(Default)]
struct Tally {
    micros: Vec<u64>,
    full: u64,
    retried: u64,
    resumed: u64,
    fails: Fails,
    /// The cipher suite and key exchange group of the last handshake.
    suite: Option<(String, String)>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.micros.extend(other.micros);
        self.full += other.full;
        self.retried += other.retried;
        self.resumed += other.resumed;
        self.fails.merge(&other.fails);
        self.suite = self.suite.take().or(other.suite);
    }

    fn count(&mut self, kind: Option<HandshakeKind>) {
        match kind {
            Some(HandshakeKind::Resumed) => self.resumed += 1,
            Some(HandshakeKind::FullWithHelloRetryRequest) => self.retried += 1,
            _ => self.full += 1,
        }
    }
}

/// One thread's loop until `until`.
fn run(args: &Args, until: Instant) -> Tally {
    let req = client::request(&args.path, args.addr, true);
    let mut buf = Vec::new();
    let mut tally = Tally::default();
    let mut in_a_row = 0;
    while Instant::now() < until && in_a_row < FAILS_IN_A_ROW {
        let t = Instant::now();
        let result = client::connect(args.addr, args.timeout, Some(&args.tls)).and_then(|mut c| {
            exchange(&mut c, &req, &mut buf)?;
            Ok(c)
        });
        match result {
            Ok(c) => {
                tally.micros.push(t.elapsed().as_micros() as u64);
                tally.count(c.handshake_kind());
                tally.suite = suite(&c);
                in_a_row = 0;
            }
            Err(f) => {
                tally.fails.add(f);
                in_a_row += 1;
            }
        }
    }
    tally
}

fn suite(c: &client::Conn) -> Option<(String, String)> {
    let client::Conn::Tls(t) = c else { return None };
    let suite = t.conn.negotiated_cipher_suite()?.suite();
    let group = t.conn.negotiated_key_exchange_group()?.name();
    Some((format!("{suite:?}"), format!("{group:?}")))
}

fn main() {
    let args = parse_args();
    let started = Instant::now();
    let until = started + Duration::from_secs(args.secs);
    let total = Mutex::new(Tally::default());
    std::thread::scope(|scope| {
        for _ in 0..args.threads {
            scope.spawn(|| {
                let mine = run(&args, until);
                total.lock().unwrap().merge(mine);
            });
        }
    });
    let wall = started.elapsed().as_secs_f64();
    let mut t = total.into_inner().unwrap();
    t.micros.sort_unstable();
    let n = t.micros.len();
    let us = |q: f64| percentile(&t.micros, q).map_or("null".into(), |v| v.to_string());
    let (suite, group) = t.suite.clone().unwrap_or_default();
    println!(
        "{{\"threads\":{},\"secs\":{:.3},\"handshakes\":{n},\"rate\":{:.1},\"full\":{},\
         \"full_retried\":{},\"resumed\":{},\"failed\":{},\"errors\":{},\"suite\":\"{suite}\",\
         \"group\":\"{group}\",\"p50_us\":{},\"p99_us\":{},\"max_us\":{}}}",
        args.threads,
        wall,
        n as f64 / wall,
        t.full,
        t.retried,
        t.resumed,
        t.fails.total(),
        t.fails.json(),
        us(0.5),
        us(0.99),
        us(1.0)
    );
}
