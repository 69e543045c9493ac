//! The `bingfa` binary, run as a child process: the start line, serving
//! through the printed URL, stopping on SIGTERM/SIGINT, and one-line errors
//! for bad command lines. These run once, not per model.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_bingfa");

/// A running `bingfa` child, killed on drop if the test did not stop it.
struct Running {
    child: Child,
    start_line: String,
    addr: SocketAddr,
    stderr: Option<JoinHandle<String>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut out = Vec::new();
        let _ = r.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
}

/// Polls for the child's exit for at most `SAFETY`.
fn wait_bounded(child: &mut Child) -> Option<ExitStatus> {
    let deadline = Instant::now() + SAFETY;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Starts `bingfa ARGS` in `cwd` and reads its start line.
fn start(args: &[&str], cwd: Option<&Path>) -> Running {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().expect("spawn bingfa");
    let stdout = child.stdout.take().unwrap();
    let stderr = Some(drain(child.stderr.take().unwrap()));
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    let mut running = Running {
        child,
        start_line: String::new(),
        addr: ([0, 0, 0, 0], 0).into(),
        stderr,
    };
    let line = match rx.recv_timeout(SAFETY) {
        Ok(line) if !line.is_empty() => line,
        other => {
            let _ = running.child.kill();
            let err = running.stderr.take().unwrap().join().unwrap_or_default();
            panic!("bingfa {args:?} printed no start line ({other:?}); stderr: {err:?}");
        }
    };
    running.addr = url_addr(&line);
    running.start_line = line;
    running
}

/// The address in `http://127.0.0.1:PORT/` within the start line.
fn url_addr(line: &str) -> SocketAddr {
    let prefix = "http://127.0.0.1:";
    let at = line
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} in {line:?}"));
    let port: String = line[at + prefix.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert!(
        line[at + prefix.len() + port.len()..].starts_with('/'),
        "the URL in {line:?} should end in '/'"
    );
    let port: u16 = port.parse().unwrap_or_else(|_| panic!("bad port in {line:?}"));
    assert_ne!(port, 0, "the start line should show the real port: {line:?}");
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn signal(running: &Running, sig: &str) {
    let pid = running.child.id().to_string();
    let status = Command::new("kill").args([sig, &pid]).status().expect("run kill");
    assert!(status.success(), "kill {sig} {pid} failed");
}

/// Sends `sig` and asserts a clean exit with status 0.
fn stop_with(mut running: Running, sig: &str) {
    signal(&running, sig);
    let status = wait_bounded(&mut running.child)
        .unwrap_or_else(|| panic!("bingfa still running {SAFETY:?} after {sig}"));
    let stderr = running.stderr.take().unwrap().join().unwrap_or_default();
    assert!(
        status.success(),
        "exit status after {sig}: {status}; stderr: {stderr:?}"
    );
    assert!(!stderr.contains("panicked"), "stderr: {stderr:?}");
}

fn fetch(addr: SocketAddr, path: &str) -> Response {
    let mut c = Client::connect(addr);
    c.send(req("GET", path, "Connection: close\r\n"));
    c.read_response()
}

fn serves_with_model(model: &str) {
    let site = Site::new();
    let root = site.root();
    let running = start(
        &[
            "--bind",
            "127.0.0.1:0",
            "-m",
            model,
            "-w",
            "2",
            root.to_str().unwrap(),
        ],
        None,
    );
    let line = &running.start_line;
    let canonical = fs::canonicalize(&root).unwrap();
    for part in [
        "bingfa",
        env!("CARGO_PKG_VERSION"),
        canonical.to_str().unwrap(),
        "http://127.0.0.1:",
        model,
        "workers",
    ] {
        assert!(line.contains(part), "start line {line:?} lacks {part:?}");
    }
    assert_body(&fetch(running.addr, "/"), &site.read("index.html"));
    assert_body(&fetch(running.addr, "/big.bin"), &big_bin());
    stop_with(running, "-TERM");
}

#[test]
fn serves_with_model_thread() {
    serves_with_model("thread");
}

#[test]
fn serves_with_model_epoll() {
    serves_with_model("epoll");
}

#[test]
fn serves_with_model_reactor() {
    serves_with_model("reactor");
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
    stop_with(running, "-TERM");
}

#[test]
fn sigint_exits_with_status_0() {
    let site = Site::new();
    let running = start(&["-b", "127.0.0.1:0", site.root().to_str().unwrap()], None);
    // With an idle keep-alive connection open.
    let mut c = Client::connect(running.addr);
    c.send(get_req("/readme.txt"));
    assert_body(&c.read_response(), &site.read("readme.txt"));
    stop_with(running, "-INT");
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
            "--max-connections",
            "10",
            "--hidden",
            root.to_str().unwrap(),
        ],
        None,
    );
    let line = &running.start_line;
    assert!(line.contains("epoll") && line.contains('3'), "{line:?}");
    assert_body(&fetch(running.addr, "/.hidden.txt"), &site.read(".hidden.txt"));
    stop_with(running, "-TERM");
}

/// Runs `bingfa ARGS` to its exit (bounded) and returns status and stderr.
fn run_to_exit(args: &[&str]) -> (ExitStatus, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bingfa");
    let stderr = drain(child.stderr.take().unwrap());
    let status = match wait_bounded(&mut child) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("bingfa {args:?} was still running after {SAFETY:?}; it should have failed");
        }
    };
    (status, stderr.join().unwrap_or_default())
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
        ("port in use", vec!["--bind", &taken_addr, root]),
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
