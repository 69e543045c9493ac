//! The `bingfa` binary, run as a child process: the start line, serving
//! through the printed URL with every model, stopping on SIGTERM/SIGINT, and
//! one-line errors for bad command lines. These are not expanded per model
//! by `model_tests!`; the ones about models go through tables of them.

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use bingfa::Model;
use nix::sys::signal::Signal;

use crate::binary::{self, poll_until, Bingfa};
use crate::support::*;

/// Starts `bingfa ARGS` in `cwd` and reads its start line.
fn start(args: &[&str], cwd: Option<&Path>) -> Bingfa {
    binary::start(&binary::args(args), cwd)
}

/// Sends `sig` and asserts a clean exit with status 0, after which no
/// process of its group is left (for the forking models: every worker or
/// per-connection child is gone too).
#[track_caller]
fn stop_with(mut running: Bingfa, sig: Signal) {
    if let Err(e) = running.stop_with(sig) {
        panic!("{e}");
    }
}

fn fetch(addr: SocketAddr, path: &str) -> Response {
    let mut c = Client::connect(addr);
    c.send(req("GET", path, "Connection: close\r\n"));
    c.read_response()
}

/// Starts `-m MODEL -w 2`, checks the start line, serves two files (with an
/// idle keep-alive connection open, which in the process model is a child
/// busy with it), then `sig` must end it with status 0 and, once the parent
/// has exited, no process it started may be left.
fn serves_then_stops(model: Model, sig: Signal) {
    let site = Site::new();
    let root = site.root();
    let name = model.name();
    let mut running = start(
        &[
            "--bind",
            "127.0.0.1:0",
            "-m",
            name,
            "-w",
            "2",
            root.to_str().unwrap(),
        ],
        None,
    );
    let serving = panic::catch_unwind(AssertUnwindSafe(|| {
        let line = &running.start_line;
        let canonical = fs::canonicalize(&root).unwrap();
        for part in [
            "bingfa",
            env!("CARGO_PKG_VERSION"),
            canonical.to_str().unwrap(),
            "http://127.0.0.1:",
            &format!("(model {name}, 2 workers)"),
        ] {
            assert!(line.contains(part), "start line {line:?} lacks {part:?}");
        }
        let mut idle = Client::connect(running.addr);
        idle.send(get_req("/readme.txt"));
        assert_body(&idle.read_response(), &site.read("readme.txt"));
        assert_body(&fetch(running.addr, "/"), &site.read("index.html"));
        assert_body(&fetch(running.addr, "/big.bin"), &big_bin());
        if model.forks() {
            assert!(
                !running.children().is_empty(),
                "{name}: a forking model with a connection open should have a child: {line:?}"
            );
        }
        idle
    }));
    let mut idle = match serving {
        Ok(idle) => idle,
        Err(e) => {
            // What the server said is the likeliest explanation.
            let status = running
                .try_exit()
                .map_or("running".to_string(), |s| s.to_string());
            running.kill_group();
            panic!(
                "{}; bingfa: {status}, stderr {:?}",
                panic_message(&e),
                running.stderr_now()
            );
        }
    };
    stop_with(running, sig);
    // The server is gone, so is the connection.
    idle.assert_closed();
}

/// Runs `serves_then_stops` for every model in `models`, then fails once
/// listing every model that failed. A model that cannot run here is skipped
/// with a note (see `support::unavailable`).
fn every_model(models: &[Model], sig: Signal) {
    let failures: Vec<String> = models
        .iter()
        .filter(|m| !skip(**m, &format!("cli::{m} with {sig}")))
        .filter_map(|&m| {
            panic::catch_unwind(AssertUnwindSafe(|| serves_then_stops(m, sig)))
                .err()
                .map(|e| format!("  {m}: {}", panic_message(&e)))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} models failed to serve and stop on {sig}:\n{}",
        failures.len(),
        models.len(),
        failures.join("\n")
    );
}

#[test]
fn every_model_serves_and_exits_0_on_sigterm() {
    every_model(Model::ALL, Signal::SIGTERM);
}

/// SIGINT (Ctrl-C) ends a threaded and both forking models as SIGTERM does.
#[test]
fn sigint_exits_with_status_0() {
    every_model(&[Model::Thread, Model::Process, Model::Prefork], Signal::SIGINT);
}

#[test]
fn coroutine_is_another_name_for_async() {
    if skip(Model::Async, "cli::coroutine_is_another_name_for_async") {
        return;
    }
    let site = Site::new();
    let running = start(
        &[
            "-b",
            "127.0.0.1:0",
            "-m",
            "coroutine",
            site.root().to_str().unwrap(),
        ],
        None,
    );
    assert!(
        running.start_line.contains("(model async,"),
        "{:?}",
        running.start_line
    );
    assert_body(&fetch(running.addr, "/readme.txt"), &site.read("readme.txt"));
    stop_with(running, Signal::SIGTERM);
}

/// Every worker of prefork is gone after SIGTERM, even with connections
/// open on several of them.
#[test]
fn prefork_workers_exit_with_the_parent() {
    let site = Site::new();
    let running = start(
        &[
            "-b",
            "127.0.0.1:0",
            "-m",
            "prefork",
            "-w",
            "3",
            site.root().to_str().unwrap(),
        ],
        None,
    );
    let mut open = Vec::new();
    for _ in 0..6 {
        let mut c = Client::connect(running.addr);
        c.send(get_req("/readme.txt"));
        assert_body(&c.read_response(), &site.read("readme.txt"));
        open.push(c);
    }
    let workers = poll_until(SAFETY, || {
        let live: Vec<_> = running
            .children()
            .into_iter()
            .filter(|p| !p.is_zombie())
            .collect();
        (live.len() == 3).then_some(live)
    });
    assert!(
        workers.is_some(),
        "prefork -w 3 should have 3 workers: {:?}",
        running.children()
    );
    stop_with(running, Signal::SIGTERM);
    for mut c in open {
        c.assert_closed();
    }
}

#[test]
fn default_model_is_reactor_and_root_is_cwd() {
    let site = Site::new();
    let running = start(&["-b", "127.0.0.1:0"], Some(&site.root()));
    let line = &running.start_line;
    let canonical = fs::canonicalize(site.root()).unwrap();
    assert!(line.contains(canonical.to_str().unwrap()), "{line:?}");
    assert!(line.contains("reactor"), "{line:?}");
    assert_body(&fetch(running.addr, "/readme.txt"), &site.read("readme.txt"));
    stop_with(running, Signal::SIGTERM);
}

#[test]
fn all_options_are_accepted() {
    let site = Site::new();
    let root = site.root();
    let running = start(
        &[
            "--bind",
            "127.0.0.1:0",
            "--model",
            "epoll",
            "--workers",
            "3",
            "--header-timeout",
            "5",
            "--idle-timeout",
            "7",
            "--send-timeout",
            "9",
            "--min-rate",
            "0",
            "--shutdown-timeout",
            "4",
            "--max-connections",
            "10",
            "--hidden",
            "--listing",
            "--error-page",
            "docs/guide.html",
            "--cache-control",
            "public, max-age=5",
            "--immutable-fingerprints",
            root.to_str().unwrap(),
        ],
        None,
    );
    let line = &running.start_line;
    assert!(line.contains("epoll") && line.contains('3'), "{line:?}");
    let hidden = fetch(running.addr, "/.hidden.txt");
    assert_body(&hidden, &site.read(".hidden.txt"));
    assert_eq!(hidden.header("cache-control"), Some("public, max-age=5"));
    assert_eq!(fetch(running.addr, "/noindex/").status, 200, "--listing");
    let missing = fetch(running.addr, "/nope");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body, site.read("docs/guide.html"), "--error-page");
    stop_with(running, Signal::SIGTERM);
}

/// Runs `bingfa ARGS` to its exit (bounded) and returns status and stderr.
fn run_to_exit(args: &[&str]) -> (ExitStatus, String) {
    match binary::spawn(&binary::args(args), None) {
        binary::Started::Failed { status, stderr } => (status, stderr),
        binary::Started::Serving(running) => panic!(
            "bingfa {args:?} started serving ({:?}); it should have failed",
            running.start_line
        ),
    }
}

#[test]
fn bad_command_lines_fail_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let site = Site::new();
    let root = site.root();
    let root = root.to_str().unwrap();
    let missing = tmp.path().join("does-not-exist");
    let file = site.root().join("readme.txt");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let any = "127.0.0.1:0";

    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("missing root", vec!["-b", any, missing.to_str().unwrap()]),
        ("root is a file", vec!["-b", any, file.to_str().unwrap()]),
        ("unknown model", vec!["-b", any, "--model", "nosuch", root]),
        ("zero workers", vec!["-b", any, "--workers", "0", root]),
        ("workers not a number", vec!["-b", any, "--workers", "abc", root]),
        ("bad bind address", vec!["--bind", "nonsense", root]),
        (
            "negative header timeout",
            vec!["-b", any, "--header-timeout", "-1", root],
        ),
        ("zero send timeout", vec!["-b", any, "--send-timeout", "0", root]),
        (
            "negative shutdown timeout",
            vec!["-b", any, "--shutdown-timeout", "-1", root],
        ),
        ("negative min rate", vec!["-b", any, "--min-rate", "-5", root]),
        (
            "min rate not a number",
            vec!["-b", any, "--min-rate", "fast", root],
        ),
        ("port in use", vec!["--bind", &taken_addr, root]),
        (
            "empty cache-control",
            vec!["-b", any, "--cache-control", "", root],
        ),
        (
            "control character in cache-control",
            vec!["-b", any, "--cache-control", "max-age=1\nX: y", root],
        ),
    ];
    let mut failures = Vec::new();
    for (name, args) in &cases {
        let (status, stderr) = run_to_exit(args);
        let lines: Vec<&str> = stderr.lines().collect();
        let ok = !status.success()
            && lines.len() == 1
            && !lines[0].trim().is_empty()
            && !stderr.contains("panicked")
            && !stderr.to_lowercase().contains("backtrace");
        if !ok {
            failures.push(format!("  {name} {args:?}: exit {status}, stderr {stderr:?}"));
        }
    }
    drop(taken);
    assert!(
        failures.is_empty(),
        "bad command lines should fail with exactly one stderr line:\n{}",
        failures.join("\n")
    );
}

/// With `--tls-cert` the start line says `https://`; a certificate or key that cannot be
/// served stops the start with one line naming the file.
#[test]
fn tls_files_are_checked_at_start() {
    let site = Site::new();
    let root = site.root().to_str().unwrap().to_string();
    let file = |name: &str| tls_fixture(name).to_str().unwrap().to_string();
    let (cert, key, ca) = (file("cert.pem"), file("key.pem"), file("ca.pem"));
    let running = start(
        &["-b", "127.0.0.1:0", "--tls-cert", &cert, "--tls-key", &key, &root],
        None,
    );
    assert!(
        running.start_line.contains(" at https://127.0.0.1:"),
        "{}",
        running.start_line
    );
    stop_with(running, Signal::SIGTERM);
    let missing = site.root().join("no-such.pem");
    for (pair, words) in [
        ([missing.to_str().unwrap(), key.as_str()], "cannot read"),
        ([key.as_str(), key.as_str()], "no certificate in the PEM file"),
        ([cert.as_str(), cert.as_str()], "holds no private key"),
        // The CA's certificate with the server's key: they do not belong together.
        ([ca.as_str(), key.as_str()], "cannot serve HTTPS with"),
    ] {
        let args = binary::args(&[
            "-b",
            "127.0.0.1:0",
            "--tls-cert",
            pair[0],
            "--tls-key",
            pair[1],
            &root,
        ]);
        binary::fails_in_one_line(&args, words);
    }
}

/// `--health-check URL`: exit 0 for a 200, else 1 with one line saying why.
#[test]
fn health_check_exits_0_only_for_a_200() {
    let site = Site::new();
    let root = site.root();
    let running = start(
        &[
            "--bind",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
            root.to_str().unwrap(),
        ],
        None,
    );
    let metrics = metrics_addr(&running);
    // /healthz says 503 `starting` until the model serves: healthy within a bound.
    let healthz = format!("http://{metrics}/healthz");
    let healthy = poll_until(Duration::from_secs(10), || {
        let (status, stderr) = run_to_exit(&["--health-check", &healthz]);
        status.success().then_some(stderr)
    });
    let stderr = healthy.expect("healthy once started");
    assert!(stderr.is_empty(), "nothing said when healthy: {stderr}");
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    for (url, says) in [
        (format!("http://{metrics}/missing"), "404 Not Found"),
        (format!("http://{closed}/healthz"), "refused"),
        (format!("https://{metrics}/healthz"), "not an http:// URL"),
    ] {
        let (status, stderr) = run_to_exit(&["--health-check", &url]);
        assert_eq!(status.code(), Some(1), "{url}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{url}: one line: {stderr}");
        assert!(
            stderr.starts_with("bingfa: ") && stderr.contains(says),
            "{url}: {stderr}"
        );
    }
    stop_with(running, Signal::SIGTERM);
}
