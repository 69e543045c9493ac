//! Where the server listens: a Unix socket (`--bind unix:PATH`) with every
//! model, a socket passed in by systemd (socket activation) with every model,
//! the URLs the start line lists for 0.0.0.0 and [::], and the systemd units
//! in `contrib/`.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Write};
use std::mem::ManuallyDrop;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::thread::JoinHandle;

use bingfa::{Address, Config, Model, Shutdown};
use nix::sys::signal::Signal;

use crate::binary::{self, Bingfa, Started};
use crate::support::*;

// ---------------------------------------------------------------------------
// Unix sockets
// ---------------------------------------------------------------------------

/// A server on a Unix socket: in the test process, or the binary for the
/// forking models (as `TestServer` runs them).
enum UnixServer {
    InProcess {
        shutdown: Arc<Shutdown>,
        handle: JoinHandle<Result<(), String>>,
    },
    Binary(Bingfa),
}

impl UnixServer {
    fn start(model: Model, site: &Site, path: &Path) -> UnixServer {
        let mut config = Config::new(site.root());
        config.model = model;
        config.workers = 2;
        if model.forks() || std::env::var_os("BINGFA_IT_BINARY").is_some() {
            let mut args = flags(&config);
            let bind = args.iter().position(|a| a == "-b").expect("flags has -b");
            args[bind + 1] = format!("unix:{}", path.display());
            let running = binary::start(&args, None);
            let line = &running.start_line;
            let at = format!(" at unix:{} (model {model}, 2 workers)", path.display());
            assert!(line.contains(&at), "start line {line:?} lacks {at:?}");
            return UnixServer::Binary(running);
        }
        let listener = bingfa::bind(Address::Unix(path.to_path_buf()))
            .unwrap_or_else(|e| panic!("bind unix:{}: {e}", path.display()));
        let shutdown = Shutdown::new().expect("Shutdown::new");
        let stop = Arc::clone(&shutdown);
        let handle =
            std::thread::spawn(move || bingfa::serve(listener, &config, stop).map_err(|e| e.to_string()));
        UnixServer::InProcess { shutdown, handle }
    }

    /// Stops it and asserts a clean stop (`serve` returns `Ok`, or the
    /// binary exits 0 after SIGTERM).
    fn stop(self) {
        match self {
            UnixServer::InProcess { shutdown, handle } => {
                shutdown.trigger();
                let ended = binary::poll_until(SAFETY, || handle.is_finished().then_some(()));
                assert!(ended.is_some(), "serve did not return within {SAFETY:?}");
                let result = handle.join().expect("the serve thread panicked");
                result.unwrap_or_else(|e| panic!("serve returned an error: {e}"));
            }
            UnixServer::Binary(mut running) => {
                if let Err(e) = running.stop_with(Signal::SIGTERM) {
                    panic!("{e}");
                }
            }
        }
    }
}

/// A socket path in a fresh temporary folder (kept while the guard lives).
fn socket_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bingfa.sock");
    (dir, path)
}

/// Connects to the Unix socket at `path`, with the safety timeouts.
fn connect_unix(path: &Path) -> UnixStream {
    let stream = UnixStream::connect(path).unwrap_or_else(|e| panic!("connect to {}: {e}", path.display()));
    stream.set_read_timeout(Some(SAFETY)).unwrap();
    stream.set_write_timeout(Some(SAFETY)).unwrap();
    stream
}

/// Sends `requests` over a new connection to `path` and returns the responses (status and
/// body) it gets before the server closes.
fn exchange_unix(path: &Path, requests: &str) -> Vec<(u16, Vec<u8>)> {
    let mut stream = connect_unix(path);
    stream.write_all(requests.as_bytes()).unwrap();
    let mut received = Vec::new();
    stream.read_to_end(&mut received).unwrap();
    responses(&received)
}

/// The status and body of each response in `bytes`, framed by
/// Content-Length (every response here has one).
fn responses(mut bytes: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut found = Vec::new();
    while !bytes.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        let head = match response.parse(bytes) {
            Ok(httparse::Status::Complete(head)) => head,
            other => panic!(
                "not a complete response ({other:?}): {:?}",
                String::from_utf8_lossy(bytes)
            ),
        };
        let length = response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
            .expect("a Content-Length");
        let body = bytes
            .get(head..head + length)
            .unwrap_or_else(|| panic!("{} of {length} body bytes", bytes.len() - head));
        found.push((response.code.unwrap_or(0), body.to_vec()));
        bytes = &bytes[head + length..];
    }
    found
}

model_tests! {
    // Two pipelined requests over one Unix connection: a small file from
    // memory, then a large one (sendfile, or reads for uring); the socket
    // file is removed when the server stops.
    fn serves_over_a_unix_socket(model m) {
        let site = Site::new();
        let (_dir, path) = socket_path();
        let server = UnixServer::start(m, &site, &path);
        let served = panic::catch_unwind(AssertUnwindSafe(|| {
            let requests = format!(
                "{}{}",
                get_req("/readme.txt"),
                req("GET", "/big.bin", "Connection: close\r\n")
            );
            let got = exchange_unix(&path, &requests);
            assert_eq!(got.len(), 2, "{} responses", got.len());
            assert_eq!(got[0], (200, site.read("readme.txt")));
            assert_eq!(got[1].0, 200);
            assert!(got[1].1 == big_bin(), "big.bin differs over a Unix socket");
        }));
        server.stop();
        if let Err(e) = served {
            panic::resume_unwind(e);
        }
        assert!(!path.exists(), "{} is left after the stop", path.display());
    }
}

/// A socket file left by a server that was killed is replaced; a live
/// server's socket makes the start fail with one line.
#[test]
fn a_stale_socket_file_is_replaced_and_a_live_one_is_in_use() {
    let site = Site::new();
    let (_dir, path) = socket_path();
    let bind = format!("unix:{}", path.display());
    let args = |model: &str| binary::args(&["-b", &bind, "-m", model, site.root().to_str().unwrap()]);
    // Closed without removing its file, as a killed server leaves it.
    drop(UnixListener::bind(&path).unwrap());
    let mut running = binary::start(&args("thread"), None);
    let got = exchange_unix(&path, &req("GET", "/readme.txt", "Connection: close\r\n"));
    assert_eq!(got, [(200, site.read("readme.txt"))]);
    match binary::spawn(&args("epoll"), None) {
        Started::Failed { status, stderr } => {
            assert!(!status.success());
            assert_eq!(
                stderr,
                format!("bingfa: cannot listen on {bind}: address already in use\n")
            );
        }
        Started::Serving(second) => panic!("a second server started: {:?}", second.start_line),
    }
    running
        .stop_with(Signal::SIGTERM)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!path.exists());
}

/// `unix:` needs a path the kernel can take.
#[test]
fn bad_unix_addresses_fail_with_one_line() {
    let long = format!("unix:/tmp/{}", "x".repeat(120));
    for (bind, words) in [
        ("unix:", "a path after 'unix:'"),
        (long.as_str(), "shorter than 108 bytes"),
    ] {
        let args = binary::args(&["-b", bind, fixture_dir().to_str().unwrap()]);
        let Started::Failed { status, stderr } = binary::spawn(&args, None) else {
            panic!("bingfa -b {bind} started");
        };
        assert!(!status.success() && stderr.lines().count() == 1, "{stderr:?}");
        assert!(stderr.contains(words), "{stderr:?}");
    }
}

// ---------------------------------------------------------------------------
// systemd socket activation
// ---------------------------------------------------------------------------

/// Starts `bingfa ARGS` as systemd would for socket activation: `socket` as
/// descriptor 3, `LISTEN_FDS=1` and `LISTEN_PID` its own pid. The pid is
/// known only in the child, so a shell sets it and execs bingfa, keeping the
/// pid.
fn spawn_activated(socket: BorrowedFd<'_>, args: &[String]) -> Started {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"export LISTEN_PID=$$ LISTEN_FDS=1; exec "$0" "$@""#)
        .arg(binary::BIN)
        .args(args);
    let fd = socket.as_raw_fd();
    // SAFETY: `as_descriptor_3` makes two system calls and allocates nothing,
    // as is required between fork and exec in a multi-threaded program.
    unsafe {
        cmd.pre_exec(move || as_descriptor_3(fd));
    }
    binary::launch(cmd, args)
}

/// In the child, between fork and exec: `fd` becomes descriptor 3, and stays
/// open across exec.
fn as_descriptor_3(fd: RawFd) -> io::Result<()> {
    const THREE: RawFd = 3;
    // SAFETY: `fd` is the test's socket, open until the spawn returns.
    let socket = unsafe { BorrowedFd::borrow_raw(fd) };
    if fd == THREE {
        // dup2 onto itself would keep close-on-exec, which std sets.
        return Ok(rustix::io::fcntl_setfd(socket, rustix::io::FdFlags::empty())?);
    }
    // SAFETY: descriptor 3 is replaced, never closed by this handle.
    let mut three = ManuallyDrop::new(unsafe { OwnedFd::from_raw_fd(THREE) });
    Ok(rustix::io::dup2(socket, &mut three)?)
}

fn fetch(addr: SocketAddr, path: &str) -> Response {
    let mut c = Client::connect(addr);
    c.send(req("GET", path, "Connection: close\r\n"));
    c.read_response()
}

/// With a socket from systemd, `--bind` is not used: the inherited socket is
/// served, by every model (reactor and uring share it between workers), and
/// closed when the server stops.
#[test]
fn every_model_serves_the_socket_systemd_passes() {
    let site = Site::new();
    let failures: Vec<String> = Model::ALL
        .iter()
        .filter(|m| !skip(**m, &format!("listening::systemd with {m}")))
        .filter_map(|&model| {
            panic::catch_unwind(AssertUnwindSafe(|| serves_activated(model, &site)))
                .err()
                .map(|e| format!("  {model}: {}", panic_message(&e)))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "models that failed to serve the socket from systemd:\n{}",
        failures.join("\n")
    );
}

fn serves_activated(model: Model, site: &Site) {
    let socket = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    // `--bind` names a port nothing else here listens on, which must stay unused.
    let ignored = "127.0.0.1:1";
    let args = binary::args(&[
        "-b",
        ignored,
        "-m",
        model.name(),
        "-w",
        "2",
        site.root().to_str().unwrap(),
    ]);
    let mut running = match spawn_activated(socket.as_fd(), &args) {
        Started::Serving(running) => running,
        Started::Failed { status, stderr } => panic!("exited ({status}): {stderr:?}"),
    };
    // The server holds the socket now; the test's copy would keep it open.
    drop(socket);
    let line = running.start_line.clone();
    let expected = format!("at http://{addr}/ (socket from systemd, model {model}, 2 workers)");
    assert!(line.contains(&expected), "start line {line:?} lacks {expected:?}");
    for _ in 0..4 {
        assert_body(&fetch(addr, "/readme.txt"), &site.read("readme.txt"));
    }
    assert!(TcpStream::connect(ignored).is_err(), "--bind was used: {line:?}");
    running
        .stop_with(Signal::SIGTERM)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        TcpStream::connect(addr).is_err(),
        "{addr} still accepts after the stop"
    );
}

/// A Unix socket from systemd is served, and left in place at the stop:
/// systemd owns its file.
#[test]
fn a_unix_socket_from_systemd_is_served_and_left_in_place() {
    let site = Site::new();
    let (_dir, path) = socket_path();
    let socket = UnixListener::bind(&path).unwrap();
    let args = binary::args(&["-m", "reactor", "-w", "2", site.root().to_str().unwrap()]);
    let mut running = match spawn_activated(socket.as_fd(), &args) {
        Started::Serving(running) => running,
        Started::Failed { status, stderr } => panic!("exited ({status}): {stderr:?}"),
    };
    drop(socket);
    let line = &running.start_line;
    let expected = format!("at unix:{} (socket from systemd, model reactor", path.display());
    assert!(line.contains(&expected), "start line {line:?} lacks {expected:?}");
    for _ in 0..4 {
        let got = exchange_unix(&path, &req("GET", "/readme.txt", "Connection: close\r\n"));
        assert_eq!(got, [(200, site.read("readme.txt"))]);
    }
    running
        .stop_with(Signal::SIGTERM)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(path.exists(), "the socket file systemd made was removed");
}

/// Variables meant for another process are not taken up: the server binds
/// `--bind`.
#[test]
fn listen_variables_for_another_process_are_ignored() {
    let site = Site::new();
    let args = binary::args(&["-b", "127.0.0.1:0", site.root().to_str().unwrap()]);
    let mut cmd = Command::new(binary::BIN);
    cmd.args(&args).env("LISTEN_PID", "1").env("LISTEN_FDS", "1");
    let Started::Serving(mut running) = binary::launch(cmd, &args) else {
        panic!("bingfa did not start");
    };
    assert!(
        !running.start_line.contains("systemd"),
        "{:?}",
        running.start_line
    );
    assert_body(&fetch(running.addr, "/readme.txt"), &site.read("readme.txt"));
    running
        .stop_with(Signal::SIGTERM)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Descriptor 3 must be a listening stream socket: anything else is one
/// line on stderr and exit status 1.
#[test]
fn a_passed_descriptor_that_is_no_listener_fails_with_one_line() {
    let file = fs::File::open(fixture_dir().join("readme.txt")).unwrap();
    let args = binary::args(&[fixture_dir().to_str().unwrap()]);
    let Started::Failed { status, stderr } = spawn_activated(file.as_fd(), &args) else {
        panic!("bingfa served a file as its socket");
    };
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        stderr,
        "bingfa: cannot use the socket systemd passed (LISTEN_FDS): \
         descriptor 3 is not a listening stream socket\n"
    );
}

// ---------------------------------------------------------------------------
// The start line on every interface
// ---------------------------------------------------------------------------

/// Bound to 0.0.0.0, the start line lists a URL per local IPv4 address,
/// 127.0.0.1 first with the real port, which serves. (The tests send nothing
/// to addresses beyond loopback.)
#[test]
fn bound_to_every_interface_the_start_line_lists_their_urls() {
    let site = Site::new();
    let running = binary::start(
        &binary::args(&["-b", "0.0.0.0:0", site.root().to_str().unwrap()]),
        None,
    );
    let line = running.start_line.clone();
    let urls = listed_urls(&line);
    let port = running.addr.port();
    assert_eq!(urls[0], format!("http://127.0.0.1:{port}/"), "{line:?}");
    assert!(!line.contains("0.0.0.0"), "{line:?}");
    for url in &urls {
        let addr: SocketAddr = url
            .strip_prefix("http://")
            .and_then(|rest| rest.strip_suffix('/'))
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("{url} in {line:?}"));
        assert!(addr.is_ipv4() && addr.port() == port, "{url} in {line:?}");
    }
    assert_body(&fetch(running.addr, "/readme.txt"), &site.read("readme.txt"));
    let mut running = running;
    running
        .stop_with(Signal::SIGTERM)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Bound to [::], IPv6 addresses, ::1 first, in brackets.
#[test]
fn bound_to_every_ipv6_interface_the_start_line_lists_their_urls() {
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("note: skipping listening::bound_to_every_ipv6_interface: no IPv6 loopback here");
        return;
    }
    let site = Site::new();
    let args = binary::args(&["-b", "[::]:0", site.root().to_str().unwrap()]);
    let Started::Serving(mut running) = binary::spawn(&args, None) else {
        panic!("bingfa -b [::]:0 did not start");
    };
    let line = running.start_line.clone();
    let urls = listed_urls(&line);
    assert!(urls[0].starts_with("http://[::1]:"), "{line:?}");
    assert!(urls.iter().all(|url| url.starts_with("http://[")), "{line:?}");
    let addr: SocketAddr = urls[0]["http://".len()..urls[0].len() - 1].parse().unwrap();
    assert_ne!(addr.port(), 0, "{line:?}");
    assert_body(&fetch(addr, "/readme.txt"), &site.read("readme.txt"));
    running
        .stop_with(Signal::SIGTERM)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The URLs between " at " and " (model".
fn listed_urls(line: &str) -> Vec<String> {
    let start = line
        .find(" at ")
        .unwrap_or_else(|| panic!("no ' at ' in {line:?}"))
        + 4;
    let end = line
        .find(" (model")
        .unwrap_or_else(|| panic!("no ' (model' in {line:?}"));
    line[start..end].split(", ").map(str::to_string).collect()
}

// ---------------------------------------------------------------------------
// contrib/
// ---------------------------------------------------------------------------

fn contrib(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib").join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A unit file's `Key=value` lines by section, comments and blank lines left out.
fn unit_entries(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut entries = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not Key=value: {line:?}"));
        assert!(!section.is_empty(), "{line:?} before any section");
        entries.push((section.clone(), key.to_string(), value.to_string()));
    }
    entries
}

fn value<'e>(entries: &'e [(String, String, String)], section: &str, key: &str) -> &'e str {
    let found = entries.iter().find(|(s, k, _)| s == section && k == key);
    &found.unwrap_or_else(|| panic!("no {key}= in [{section}]")).2
}

/// The units hang together: the service requires the socket, the socket
/// listens, and the services' command lines are ones bingfa accepts. Where
/// `systemd-analyze` is installed, it verifies them (on copies that run the
/// built binary, since it checks that the program exists).
#[test]
fn contrib_units_are_valid() {
    let (socket, service) = (contrib("bingfa.socket"), contrib("bingfa.service"));
    let https = contrib("bingfa-https.service");
    let socket_entries = unit_entries(&socket);
    let service_entries = unit_entries(&service);
    assert!(!value(&socket_entries, "Socket", "ListenStream").is_empty());
    assert_eq!(value(&service_entries, "Unit", "Requires"), "bingfa.socket");
    for unit in [&service, &https] {
        let entries = unit_entries(unit);
        assert_eq!(value(&entries, "Service", "DynamicUser"), "yes");
        let exec = value(&entries, "Service", "ExecStart");
        let mut words = exec.split_whitespace();
        assert_eq!(words.next(), Some("/usr/local/bin/bingfa"), "{exec}");
        let argv = std::iter::once("bingfa")
            .chain(words)
            .map(OsString::from)
            .collect();
        let parsed = bingfa::cli::config::resolve(argv, &|_| None);
        assert!(parsed.is_ok(), "ExecStart={exec}: {parsed:?}");
    }

    let analyze = Command::new("systemd-analyze").arg("--version").output();
    if !analyze.is_ok_and(|out| out.status.success()) {
        eprintln!("note: skipping systemd-analyze verify: systemd-analyze is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("bingfa.socket"), &socket).unwrap();
    let mut verify = Command::new("systemd-analyze");
    verify.arg("verify").arg(dir.path().join("bingfa.socket"));
    for (name, unit) in [("bingfa.service", &service), ("bingfa-https.service", &https)] {
        let runnable = unit.replace("/usr/local/bin/bingfa", binary::BIN);
        fs::write(dir.path().join(name), runnable).unwrap();
        verify.arg(dir.path().join(name));
    }
    let out = verify.output().expect("run systemd-analyze verify");
    let said = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    // It warns of unknown keys without failing: any output is a finding.
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
}

/// `reactor` gives each connection to the worker tagged with the CPU it arrives on
/// (`models::steer`). When every connection arrives on one CPU, the worker holding them all
/// gives its tag up after three sweeps (every 0.1 s here, a quarter of the header timeout),
/// hands about half of them to the other worker, says so, and every connection is served on.
/// (How many it holds when it is convicted depends on how fast the client connects.)
#[test]
fn reactor_spreads_connections_again_when_all_arrive_on_one_cpu() {
    let allowed = rustix::thread::sched_getaffinity(None).unwrap();
    let cpus: Vec<usize> = (0..rustix::thread::CpuSet::MAX_CPU)
        .filter(|&cpu| allowed.is_set(cpu))
        .collect();
    if cpus.len() < 2 {
        eprintln!("one CPU: both workers carry it, and nothing is steered");
        return;
    }
    let site = Site::new();
    let root = site.root().to_str().unwrap().to_string();
    let args = binary::args(&[
        "-b",
        "127.0.0.1:0",
        "-m",
        "reactor",
        "-w",
        "2",
        "--header-timeout",
        "0.4",
        &root,
    ]);
    let mut running = binary::start(&args, None);
    let addr = running.addr;
    let one_cpu = cpus[0];
    // Over loopback, a connection arrives on the CPU its client connects from.
    let held = std::thread::spawn(move || {
        let mut only = rustix::thread::CpuSet::new();
        only.set(one_cpu);
        rustix::thread::sched_setaffinity(None, &only).unwrap();
        (0..40)
            .map(|_| {
                let mut c = Client::connect(addr);
                c.send(get_req("/readme.txt"));
                assert_eq!(c.read_response().status, 200);
                c
            })
            .collect::<Vec<_>>()
    })
    .join()
    .unwrap();
    for said in [
        "connections: new connections on its CPU are now spread across all workers",
        "connections to others",
    ] {
        let seen = binary::poll_until(SAFETY, || running.stderr_now().contains(said).then_some(()));
        assert!(
            seen.is_some(),
            "no {said:?} on stderr: {:?}",
            running.stderr_now()
        );
    }
    assert_eq!(fetch(addr, "/readme.txt").status, 200);
    // The connections handed over, and those kept, answer their next request.
    for mut c in held {
        c.send(get_req("/readme.txt"));
        assert_eq!(c.read_response().status, 200);
    }
    running
        .stop_with(Signal::SIGTERM)
        .unwrap_or_else(|e| panic!("{e}"));
}
