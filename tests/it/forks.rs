//! What only the forking models (`Model::forks()`: process, prefork) can get
//! wrong: children left as zombies, and (prefork) a dead worker not replaced.
//! These servers run through the binary (see `support::TestServer`), so their
//! processes can be read in `/proc`.

use std::thread::scope;
use std::time::Duration;

use bingfa::Model;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::binary::{self, poll_until, Proc};
use crate::support::*;

/// How long a zombie may take to be reaped before it counts as left. Children
/// exit asynchronously; this is a bound on the polling, not a speed check.
const REAP_BOUND: Duration = Duration::from_secs(10);

/// Children of the server now, zombies included.
fn children(s: &TestServer) -> Vec<Proc> {
    server_process(s).children()
}

fn server_process(s: &TestServer) -> &binary::Bingfa {
    s.bingfa()
        .unwrap_or_else(|| panic!("[{}] a forking model should run as a child process", s.model))
}

/// 200 connections: 4 clients at once, each making 40 one-request
/// connections with `Connection: close` and 10 keep-alive connections of 3
/// requests that the client closes. Then, polling for at most `REAP_BOUND`,
/// no child of the server may be a zombie, and no child may be left but
/// prefork's workers.
fn no_zombies_after_200_connections(model: Model) {
    let s = TestServer::start(model);
    let addr = s.addr;
    let readme = s.site.read("readme.txt");
    let style = s.site.read("style.css");
    scope(|scope| {
        for _ in 0..4 {
            let (readme, style) = (&readme, &style);
            scope.spawn(move || {
                for i in 0..50 {
                    let mut c = Client::connect(addr);
                    if i % 5 == 4 {
                        for _ in 0..3 {
                            c.send(get_req("/style.css"));
                            assert_body(&c.read_response(), style);
                        }
                        // Closed by the client.
                    } else {
                        c.send(req("GET", "/readme.txt", "Connection: close\r\n"));
                        assert_body(&c.read_response(), readme);
                        c.assert_closed();
                    }
                }
            });
        }
    });
    let reaped = poll_until(REAP_BOUND, || {
        let zombies: Vec<Proc> = children(&s).into_iter().filter(Proc::is_zombie).collect();
        zombies.is_empty().then_some(())
    });
    if reaped.is_none() {
        let all = children(&s);
        let zombies = all.iter().filter(|p| p.is_zombie()).count();
        panic!(
            "[{model}] {zombies} zombie child(ren) of pid {} still unreaped {REAP_BOUND:?} after \
             200 connections; children: {all:?}",
            server_process(&s).pid
        );
    }
    // Nor is any child left serving a connection that is over: process
    // keeps none once its clients are gone, prefork keeps its 2 workers.
    let expected = if model == Model::Prefork { 2 } else { 0 };
    let settled = poll_until(REAP_BOUND, || (children(&s).len() == expected).then_some(()));
    assert!(
        settled.is_some(),
        "[{model}] expected {expected} children once the 200 connections were closed; has {:?}",
        children(&s)
    );
    // And it still serves.
    let resps = get(&s, req("GET", "/data.json", "Connection: close\r\n"));
    assert_body(&resps[0], &s.site.read("data.json"));
    s.stop();
}

#[test]
fn process_leaves_no_zombies() {
    no_zombies_after_200_connections(Model::Process);
}

#[test]
fn prefork_leaves_no_zombies() {
    no_zombies_after_200_connections(Model::Prefork);
}

/// The live (non-zombie) children, sorted.
fn live_children(s: &TestServer) -> Vec<i32> {
    let mut pids: Vec<i32> = children(s)
        .into_iter()
        .filter(|p| !p.is_zombie())
        .map(|p| p.pid)
        .collect();
    pids.sort();
    pids
}

#[track_caller]
fn served(s: &TestServer, what: &str) {
    let resps = get(s, req("GET", "/readme.txt", "Connection: close\r\n"));
    assert_eq!(resps.len(), 1, "{what}: {resps:?}");
    assert_body(&resps[0], &s.site.read("readme.txt"));
}

/// `-w 2`: two workers. One is killed with SIGKILL; requests are still
/// served, and the parent forks a replacement, so that there are two workers
/// again, one of them new.
#[test]
fn prefork_replaces_a_killed_worker() {
    let s = TestServer::start_with(Model::Prefork, |c| c.workers = 2);
    served(&s, "before the kill");
    // The start line comes before the workers are forked: wait for them.
    let workers = poll_until(SAFETY, || {
        let live = live_children(&s);
        (live.len() == 2).then_some(live)
    })
    .unwrap_or_else(|| {
        panic!(
            "prefork -w 2 should have 2 worker children; it has {:?}",
            children(&s)
        )
    });

    let victim = workers[0];
    kill(Pid::from_raw(victim), Signal::SIGKILL).expect("kill a worker");
    // Once it is dead (a zombie, or reaped and gone), its sockets are closed
    // and no new connection can be queued to it.
    poll_until(SAFETY, || {
        binary::process(victim)
            .is_none_or(|p| p.is_zombie() || p.ppid != server_process(&s).pid)
            .then_some(())
    })
    .unwrap_or_else(|| panic!("worker {victim} still alive {SAFETY:?} after SIGKILL"));
    served(&s, "right after a worker was killed");

    // A request on every look, so that serving goes on while the parent
    // notices and replaces.
    let replaced = poll_until(SAFETY, || {
        served(&s, "while the worker is being replaced");
        let live = live_children(&s);
        let renewed = live.len() == 2 && !live.contains(&victim) && live.iter().any(|p| !workers.contains(p));
        renewed.then_some(live)
    });
    let now = replaced.unwrap_or_else(|| {
        panic!(
            "no replacement for killed worker {victim} within {SAFETY:?}: workers were {workers:?}, \
             children now {:?}",
            children(&s)
        )
    });
    // The killed worker was reaped, not left a zombie.
    let reaped = poll_until(SAFETY, || {
        children(&s).iter().all(|p| p.pid != victim).then_some(())
    });
    assert!(
        reaped.is_some(),
        "killed worker {victim} was not reaped: children {:?}",
        children(&s)
    );
    // Both workers serve: enough connections that each gets some.
    for i in 0..20 {
        served(
            &s,
            &format!("request {i} after the replacement (workers {now:?})"),
        );
    }
    s.stop();
}
