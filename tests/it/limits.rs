//! Running out of descriptors (EMFILE). The binary is started with an
//! open-file limit of 64 (soft and hard, as `prlimit --nofile=64:64` would
//! set it: the server cannot raise it) and `--max-connections 1000`, so the
//! limit it meets is the kernel's, not its own 503. 100 clients connect and
//! wait; the server fills its descriptor table and the rest wait in the
//! backlog. It must neither spin a core retrying `accept` nor stop serving
//! once descriptors are free again.
//!
//! The non-forking models, through the binary (a descriptor limit for the
//! test process would starve every other test). The forking models are
//! left out: their parent closes each socket it hands over (process) or
//! shares the load with workers (prefork), so this case is not theirs.
//! (The limit on targets, heads and fields is in `errors.rs`; the default
//! `max_connections` is checked in `support::config_defaults`.)
//!
//! Also: holding a connection costs the server one descriptor, so the limit
//! bounds connections one for one.

use std::time::{Duration, Instant};

use bingfa::{Config, Model};

use crate::binary::{self, cpu_time, open_descriptors, poll_until};
use crate::support::*;

const NOFILE: u64 = 64;
const CLIENTS: usize = 100;
/// The wall time over which CPU time is measured, and the CPU time it may
/// cost at most: a server that retries a failing `accept` in a loop burns
/// about a core (3 s per 3 s); a waiting one, next to nothing. A budget, not
/// a latency check.
const WINDOW: Duration = Duration::from_secs(3);
const CPU_BUDGET: Duration = Duration::from_secs(1);

fn out_of_descriptors(model: Model) {
    let site = Site::new();
    let mut config = Config::new(site.root());
    config.model = model;
    config.workers = 2;
    config.max_connections = 1000;
    // Silent clients must stay open through the measurement.
    config.header_timeout = Duration::from_secs(30);
    config.min_rate = 0;
    let mut bingfa = match binary::spawn_limited(&flags(&config), None, Some(NOFILE)) {
        binary::Started::Serving(bingfa) => bingfa,
        binary::Started::Failed { status, stderr } => {
            panic!("[{model}] with {NOFILE} descriptors, bingfa exited ({status}) at start: {stderr:?}")
        }
    };
    let pid = bingfa.pid;
    let fetch = || {
        let mut c = Client::connect(bingfa.addr);
        c.send(req("GET", "/readme.txt", "Connection: close\r\n"));
        c.read_response()
    };
    assert_body(&fetch(), &site.read("readme.txt"));

    let clients: Vec<Client> = (0..CLIENTS).map(|_| Client::connect(bingfa.addr)).collect();
    // The premise: the server has run out of descriptors (or nearly: it may
    // keep a few in reserve).
    let full = poll_until(SAFETY, || {
        open_descriptors(pid).filter(|&n| n as u64 >= NOFILE - 8)
    });
    assert!(
        full.is_some(),
        "[{model}] with {CLIENTS} clients connected, the server uses only {:?} of its {NOFILE} \
         descriptors: the test did not reach EMFILE",
        open_descriptors(pid)
    );
    let (cpu0, wall0) = (cpu_time(pid).expect("server stat"), Instant::now());
    std::thread::sleep(WINDOW);
    let (cpu1, wall) = (cpu_time(pid).expect("server stat"), wall0.elapsed());
    let used = cpu1.saturating_sub(cpu0);
    assert!(
        used < CPU_BUDGET,
        "[{model}] out of descriptors with {CLIENTS} clients waiting, the server used {used:?} of \
         CPU in {wall:?} (budget {CPU_BUDGET:?}): it spins"
    );

    drop(clients);
    // The waiting connections were closed by their clients; the server
    // sees that, frees their descriptors, and serves again. The new client
    // waits behind them in the backlog (bounded by the read timeout).
    assert_body(&fetch(), &site.read("readme.txt"));
    assert_body(&fetch(), &site.read("readme.txt"));
    if let Err(e) = bingfa.stop_with(nix::sys::signal::Signal::SIGTERM) {
        panic!("[{model}] {e}");
    }
}

/// Keep-alive connections held while their count of descriptors is read.
const HELD: usize = 40;

/// Each connection costs the server one descriptor, its socket: the descriptor limit is
/// what bounds how many connections it can hold, so a second one per connection (as the
/// thread models once kept, a duplicate to cut it at shutdown) would halve that.
fn one_descriptor_per_connection(model: Model) {
    let site = Site::new();
    let mut config = Config::new(site.root());
    config.model = model;
    // `pool` serves as many connections at once as it has workers.
    config.workers = if model == Model::Pool { HELD + 1 } else { 2 };
    let mut bingfa = match binary::spawn(&flags(&config), None) {
        binary::Started::Serving(bingfa) => bingfa,
        binary::Started::Failed { status, stderr } => {
            panic!("[{model}] bingfa exited ({status}) at start: {stderr:?}")
        }
    };
    let pid = bingfa.pid;
    let answered = |c: &mut Client| assert_body(&c.read_response(), &site.read("readme.txt"));
    let mut first = Client::connect(bingfa.addr);
    first.send(get_req("/readme.txt"));
    answered(&mut first);
    let before = open_descriptors(pid).expect("server fds");
    let mut clients: Vec<Client> = (0..HELD).map(|_| Client::connect(bingfa.addr)).collect();
    for c in &mut clients {
        c.send(get_req("/readme.txt"));
        answered(c); // accepted and served, now idle and held
    }
    let grown = open_descriptors(pid).expect("server fds") - before;
    assert!(
        (HELD..HELD + 4).contains(&grown),
        "[{model}] holding {HELD} more keep-alive connections took {grown} more descriptors"
    );
    drop(clients);
    if let Err(e) = bingfa.stop_with(nix::sys::signal::Signal::SIGTERM) {
        panic!("[{model}] {e}");
    }
}

macro_rules! emfile_tests {
    ($($module:ident $variant:ident),*) => {$(
        mod $module {
            #[test]
            fn out_of_descriptors_neither_spins_nor_stops_serving() {
                if crate::support::skip(bingfa::Model::$variant, module_path!()) {
                    return;
                }
                super::out_of_descriptors(bingfa::Model::$variant);
            }

            #[test]
            fn one_descriptor_per_connection() {
                if crate::support::skip(bingfa::Model::$variant, module_path!()) {
                    return;
                }
                super::one_descriptor_per_connection(bingfa::Model::$variant);
            }
        }
    )*};
}

emfile_tests!(
    thread Thread,
    pool Pool,
    r#async Async,
    nonblocking Nonblocking,
    poll Poll,
    epoll Epoll,
    reactor Reactor,
    uring Uring
);
