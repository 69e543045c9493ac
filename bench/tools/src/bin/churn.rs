//! churn: new connections per second, each with one small GET, bare or behind a PROXY protocol
//! header as a load balancer sends it (`send-proxy`, `send-proxy-v2`): the workload of
//! bench/proxy.sh, the price of `--proxy-protocol`. wrk cannot send such a header.
//!
//!   churn --addr 127.0.0.1:PORT [--proxy none|v1|v2] [--secs 8] [--threads 16]
//!         [--path /index.html] [--timeout-ms 3000]
//!
//! `--threads` threads each loop for `--secs` seconds: connect, write the PROXY header (if
//! any) and `GET --path` with `Connection: close` together, read the whole response, close.
//! The header names the connection's own two ends (its local address as the client's, the
//! server's as the destination), built per connection by the `ppp` crate: version 1's text
//! line, or version 2's 28 bytes (TCP over IPv4, the `PROXY` command, no TLVs). Header and
//! request go in one write, as HAProxy sends them when the request is already waiting (it
//! writes the header with MSG_MORE), so the server's extra work is reading and parsing the
//! header, not an extra wake-up that a client's second write would add.
//!
//! Prints one line of JSON: the requests answered (a whole 2xx response; `requests`, and
//! the rate over the run's wall time), the failures by kind, and p50/p99/max (µs) from connect
//! to the response's last byte. A thread stops early after 32 failures in a row (a server that
//! stopped answering). Exits 0 whatever the server did; 2 on a bad command line.

use bingfa_bench_tools::client::{self, exchange, percentile, Fail, Fails};
use ppp::v2::{Builder, Command, Protocol, Version};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const FAILS_IN_A_ROW: usize = 32;

/// What opens each connection before the request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Proxy {
    None,
    V1,
    V2,
}

impl Proxy {
    fn name(self) -> &'static str {
        match self {
            Proxy::None => "none",
            Proxy::V1 => "v1",
            Proxy::V2 => "v2",
        }
    }

    /// The header for a connection from `client` to `server`; empty for `None`.
    fn header(self, client: SocketAddr, server: SocketAddr) -> Result<Vec<u8>, Fail> {
        Ok(match self {
            Proxy::None => Vec::new(),
            Proxy::V1 => ppp::v1::Addresses::from((client, server))
                .to_string()
                .into_bytes(),
            Proxy::V2 => {
                Builder::with_addresses(Version::Two | Command::Proxy, Protocol::Stream, (client, server))
                    .build()
                    .map_err(|_| Fail::Write)?
            }
        })
    }
}

struct Args {
    addr: SocketAddr,
    proxy: Proxy,
    secs: u64,
    threads: usize,
    path: String,
    timeout: Duration,
}

fn usage(msg: &str) -> ! {
    eprintln!("churn: {msg}");
    eprintln!(
        "usage: churn --addr HOST:PORT [--proxy none|v1|v2] [--secs S] [--threads N] [--path P] \
         [--timeout-ms MS]"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut addr = None;
    let (mut proxy, mut secs, mut threads) = (Proxy::None, 8, 16);
    let (mut path, mut timeout) = ("/index.html".to_string(), 3000);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
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
            "--proxy" => {
                proxy = match value.as_str() {
                    "none" => Proxy::None,
                    "v1" => Proxy::V1,
                    "v2" => Proxy::V2,
                    _ => usage("--proxy: none, v1 or v2"),
                }
            }
            "--secs" => secs = num(),
            "--threads" => threads = num() as usize,
            "--path" => path = value.clone(),
            "--timeout-ms" => timeout = num(),
            _ => usage(&format!("unknown option {flag}")),
        }
    }
    Args {
        addr: addr.unwrap_or_else(|| usage("--addr is required")),
        proxy,
        secs,
        threads,
        path,
        timeout: Duration::from_millis(timeout),
    }
}

/// What one thread (and then the whole run) saw.
#[derive(Default)]
struct Tally {
    micros: Vec<u64>,
    fails: Fails,
}

/// One connection: connect, header and request in one write, the whole response.
fn once(args: &Args, request: &[u8], buf: &mut Vec<u8>) -> Result<(), Fail> {
    let client::Conn::Plain(mut stream) = client::connect(args.addr, args.timeout, None)? else {
        return Err(Fail::Connect); // no TLS was asked for
    };
    let mut first = args.proxy.header(local(&stream)?, args.addr)?;
    first.extend_from_slice(request);
    exchange(&mut stream, &first, buf).map(drop)
}

fn local(stream: &TcpStream) -> Result<SocketAddr, Fail> {
    stream.local_addr().map_err(|_| Fail::Connect)
}

/// One thread's loop until `until`.
fn run(args: &Args, until: Instant) -> Tally {
    let request = client::request(&args.path, args.addr, true);
    let mut buf = Vec::new();
    let mut tally = Tally::default();
    let mut in_a_row = 0;
    while Instant::now() < until && in_a_row < FAILS_IN_A_ROW {
        let t = Instant::now();
        match once(args, &request, &mut buf) {
            Ok(()) => {
                tally.micros.push(t.elapsed().as_micros() as u64);
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

fn main() {
    let args = parse_args();
    let started = Instant::now();
    let until = started + Duration::from_secs(args.secs);
    let total = Mutex::new(Tally::default());
    std::thread::scope(|scope| {
        for _ in 0..args.threads {
            scope.spawn(|| {
                let mine = run(&args, until);
                let mut total = total.lock().unwrap();
                total.micros.extend(mine.micros);
                total.fails.merge(&mine.fails);
            });
        }
    });
    let wall = started.elapsed().as_secs_f64();
    let mut t = total.into_inner().unwrap();
    t.micros.sort_unstable();
    let n = t.micros.len();
    let us = |q: f64| percentile(&t.micros, q).map_or("null".into(), |v| v.to_string());
    println!(
        "{{\"proxy\":\"{}\",\"threads\":{},\"secs\":{:.3},\"requests\":{n},\"rate\":{:.1},\
         \"failed\":{},\"errors\":{},\"p50_us\":{},\"p99_us\":{},\"max_us\":{}}}",
        args.proxy.name(),
        args.threads,
        wall,
        n as f64 / wall,
        t.fails.total(),
        t.fails.json(),
        us(0.5),
        us(0.99),
        us(1.0)
    );
}
