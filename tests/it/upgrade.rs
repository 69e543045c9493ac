//! SIGUSR2, an upgrade in place (issue 19), in every model: the binary is
//! replaced on disk, SIGUSR2 starts the new file with the listening sockets,
//! and once it serves the old one drains and exits 0. Under keep-alive load
//! for the whole test, no request fails, and the load goes on against the new
//! process after the old one is gone. A new binary that cannot start leaves
//! the old one serving, with one line saying why.
//!
//! Every model runs through the built binary (only a binary can be started
//! again), from a hard link in a temporary folder that the test replaces.

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::binary::{self, poll_until, process, Bingfa};
use crate::haproxy::{Load, FILE};
use crate::support::*;

/// The binary under test, linked (or copied) into `dir` as `bingfa`.
fn install(dir: &Path) -> PathBuf {
    let path = dir.join("bingfa");
    replace(&path, |staged| {
        if fs::hard_link(binary::BIN, staged).is_err() {
            fs::copy(binary::BIN, staged).expect("copy the binary");
        }
    });
    path
}

/// Replaces the file at `path` by what `make` puts at a staging path: a new
/// file (a new directory entry, as a package manager installs one), never the
/// old one written over.
fn replace(path: &Path, make: impl FnOnce(&Path)) {
    let staged = path.with_extension("new");
    make(&staged);
    fs::rename(&staged, path).expect("rename over the binary");
}

/// Starts `program` (the installed binary) serving a fixture site with a
/// metrics listener, in `model`; waits until `/healthz` says 200.
fn start(program: &Path, model: bingfa::Model, site: &Site) -> (Bingfa, SocketAddr) {
    let args = binary::args(&[
        "-m",
        model.name(),
        "-w",
        "2",
        "--bind",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
        "--drain-delay",
        "1",
        "--shutdown-timeout",
        "10",
        site.root().to_str().expect("UTF-8 temp dir"),
    ]);
    let mut command = Command::new(program);
    command.args(&args);
    let running = match binary::launch(command, &args) {
        binary::Started::Serving(running) => running,
        binary::Started::Failed { status, stderr } => panic!("[{model}] exited ({status}): {stderr}"),
    };
    let metrics = metrics_addr(&running);
    let ready = poll_until(SAFETY, || (healthz(metrics) == Some(200)).then_some(()));
    assert!(ready.is_some(), "[{model}] /healthz never said 200");
    (running, metrics)
}

/// The status of `GET /healthz` on `metrics`, if it answers.
fn healthz(metrics: SocketAddr) -> Option<u16> {
    let mut c = Client::try_connect(metrics).ok()?;
    c.send(req("GET", "/healthz", "Connection: close\r\n"));
    Some(c.read_response().status)
}

/// The new process's pid, once the old one has said it serves.
fn new_pid(old: &Bingfa, model: bingfa::Model) -> i32 {
    let said = poll_until(SAFETY, || {
        let stderr = old.stderr_now();
        let at = stderr.find("upgrade: the new bingfa (pid ")?;
        let digits: String = stderr[at + 29..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    });
    said.unwrap_or_else(|| {
        panic!(
            "[{model}] no upgrade within {SAFETY:?}; stderr: {}",
            old.stderr_now()
        )
    })
}

/// The new process stopped with SIGTERM, and gone (bounded).
fn stop_new(pid: i32, model: bingfa::Model) {
    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    let gone = poll_until(SAFETY, || {
        process(pid).is_none_or(|p| p.is_zombie()).then_some(())
    });
    assert!(
        gone.is_some(),
        "[{model}] the new bingfa (pid {pid}) did not stop on SIGTERM"
    );
}

model_tests! {
    // Under load, SIGUSR2 with a new binary on disk: the new process serves
    // (started from the file now at the path, not the old one), the old one
    // exits 0, and not one request fails, before, during or after.
    fn sigusr2_hands_over_under_load_and_loses_no_request(model m) {
        let site = Site::new();
        let dir = tempfile::tempdir().expect("temp dir");
        let program = install(dir.path());
        let (mut old, metrics) = start(&program, m, &site);
        let load = Load::start(old.addr, site.read(FILE));
        load.wait_for_more_requests();

        // A new version installed over the old: the old one's file is
        // unlinked, so the new process can only have come from the path.
        replace(&program, |staged| fs::hard_link(binary::BIN, staged).expect("hard link"));
        old.signal(Signal::SIGUSR2);
        let new = new_pid(&old, m);
        let status = poll_until(SAFETY, || old.try_exit());
        assert!(
            status.is_some_and(|s| s.success()),
            "[{m}] the old bingfa did not exit 0 after handing over: {status:?}; stderr: {}",
            old.stderr_now()
        );
        // The load goes on against the new process alone.
        load.wait_for_more_requests();
        load.wait_for_more_requests();
        let (requests, failures, failed) = load.stop();
        let _ = writeln!(std::io::stderr(), "[{m}] upgrade under load: {requests} requests, {failed} failed");

        let exe = fs::read_link(format!("/proc/{new}/exe")).expect("the new process's exe");
        assert_eq!(exe, program, "[{m}] the new process runs another file than the one at the path");
        assert_eq!(healthz(metrics), Some(200), "[{m}] the new process's /healthz");
        stop_new(new, m);
        assert_eq!(failed, 0, "[{m}] {failed} of {requests} requests failed; the first: {failures:#?}");
        assert!(
            !old.stderr_now().contains("panicked"),
            "[{m}] stderr: {}",
            old.stderr_now()
        );
    }

    // The new binary on disk cannot start (exit 1): one line says why, and
    // the old process goes on serving, its health unchanged; it still stops
    // as ever.
    fn a_new_binary_that_fails_leaves_the_old_one_serving(model m) {
        let site = Site::new();
        let dir = tempfile::tempdir().expect("temp dir");
        let program = install(dir.path());
        let (mut old, metrics) = start(&program, m, &site);
        replace(&program, |staged| {
            fs::write(staged, "#!/bin/sh\nexit 1\n").expect("write the script");
            fs::set_permissions(staged, fs::Permissions::from_mode(0o755)).expect("chmod");
        });
        old.signal(Signal::SIGUSR2);
        let said = poll_until(SAFETY, || {
            let stderr = old.stderr_now();
            stderr.contains("upgrade failed").then_some(stderr)
        });
        let stderr = said.unwrap_or_else(|| panic!("[{m}] no word of the failure; stderr: {}", old.stderr_now()));
        let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("upgrade failed")).collect();
        assert_eq!(lines.len(), 1, "[{m}] {stderr}");
        assert!(
            lines[0].contains("stopped before it served (exit status: 1); still serving"),
            "[{m}] {}",
            lines[0]
        );
        let mut c = Client::connect(old.addr);
        c.send(get_req(&format!("/{FILE}")));
        assert_body(&c.read_response(), &site.read(FILE));
        assert_eq!(healthz(metrics), Some(200), "[{m}] /healthz after the failed upgrade");
        old.stop_with(Signal::SIGTERM).unwrap_or_else(|e| panic!("[{m}] {e}"));
    }
}
