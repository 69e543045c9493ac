//! Behind a real HAProxy (issue 19): three instances of the binary, each with
//! `--proxy-protocol` and `--drain-delay`, behind HAProxy sending PROXY v2 and
//! checking `/healthz` on each metrics listener, in the shape of
//! `contrib/haproxy.cfg`. Under keep-alive load from 127.0.0.2 for the whole
//! test, the three are restarted one after another (SIGTERM, exit 0, start
//! again on the same ports): no request fails, and the access logs name the
//! load generator (127.0.0.2), never HAProxy (127.0.0.1).
//!
//! Once with HAProxy's retries off, so that only the drain keeps every request
//! (with `--drain-delay 0` that run loses hundreds, as HAProxy's own 503s), and
//! once with `contrib/haproxy.cfg`'s retries and `bingfa --health-check` as the
//! readiness probe of a restarted instance.
//!
//! Skipped with a note where HAProxy is not installed, except under
//! `CI=true` (`.ci/run` installs it), where that fails the test.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::binary::{self, poll_until, Bingfa};
use crate::support::{Site, SAFETY};

const HAPROXY: &str = "/usr/sbin/haproxy";
/// The file every load request asks for.
pub(crate) const FILE: &str = "readme.txt";
/// The load generator's source address: not HAProxy's (127.0.0.1).
const LOAD_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const LOAD_THREADS: usize = 3;
/// Bounds on the load, whatever happens: requests per thread, and time.
const MAX_REQUESTS_PER_THREAD: u64 = 100_000;
const MAX_LOAD_TIME: Duration = Duration::from_secs(120);
/// Failures kept for the message (all are counted).
const FAILURES_KEPT: usize = 10;

/// How a restarted instance is found ready before HAProxy is asked about it.
#[derive(Clone, Copy, Debug)]
enum Readiness {
    /// A GET of `/healthz` on its metrics listener answers 200.
    Healthz,
    /// `bingfa --health-check http://METRICS/healthz` exits 0.
    HealthCheckFlag,
}

/// Whether HAProxy may hide a lost request by trying it again elsewhere.
#[derive(Clone, Copy, Debug)]
enum Retries {
    /// None: every request HAProxy sends to an instance must be answered by it, so no
    /// request is lost only if the drain works (a stop without `--drain-delay` loses some).
    Off,
    /// As `contrib/haproxy.cfg`: `retry-on conn-failure empty-response`, `option redispatch`.
    AsContrib,
}

impl Retries {
    fn config(self) -> &'static str {
        match self {
            Retries::Off => "    retries 0\n",
            Retries::AsContrib => {
                "    retries 2\n    option redispatch\n    retry-on conn-failure empty-response\n"
            }
        }
    }
}

/// Without HAProxy's retries: the drain alone keeps every request.
#[test]
fn rolling_restart_behind_haproxy_loses_no_request() {
    rolling_restart(Readiness::Healthz, Retries::Off);
}

/// As `contrib/haproxy.cfg` has it, with `bingfa --health-check` as the readiness probe.
#[test]
fn rolling_restart_with_health_check_flag_as_readiness() {
    rolling_restart(Readiness::HealthCheckFlag, Retries::AsContrib);
}

fn rolling_restart(readiness: Readiness, retries: Retries) {
    if !haproxy_installed() {
        return;
    }
    let site = Site::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut instances: Vec<Instance> = (1..=3).map(|n| Instance::new(n, &site, dir.path())).collect();
    for instance in &mut instances {
        instance.start(readiness);
    }
    let haproxy = Haproxy::start(dir.path(), &instances, retries);
    for instance in &instances {
        haproxy.wait_for(&instance.name, "UP");
    }

    let load = Load::start(haproxy.front, site.read(FILE));
    // Logged lines per instance once it is back: it must serve more after.
    let mut logged_when_back = Vec::new();
    for instance in &mut instances {
        // The load must be reaching the instances before each restart.
        load.wait_for_more_requests();
        instance.restart(&haproxy, readiness);
        logged_when_back.push(instance.logged_lines().len());
    }
    for (instance, before) in instances.iter().zip(&logged_when_back) {
        let served = poll_until(SAFETY, || (instance.logged_lines().len() > *before).then_some(()));
        assert!(
            served.is_some(),
            "{} served nothing through HAProxy within {SAFETY:?} of its restart",
            instance.name
        );
    }
    let (requests, failures, failed) = load.stop();

    for instance in &mut instances {
        instance.begin_stop();
    }
    for instance in &mut instances {
        instance.finish_stop();
    }
    drop(haproxy);
    let _ = writeln!(
        std::io::stderr(),
        "haproxy rolling restart ({readiness:?} readiness, retries {retries:?}): \
         {requests} requests, {failed} failed"
    );
    assert_eq!(
        failed, 0,
        "{failed} of {requests} requests failed; the first: {failures:#?}"
    );
    assert!(requests > 0, "no request was made");
    for instance in &instances {
        let lines = instance.logged_lines();
        assert!(!lines.is_empty(), "{} logged nothing", instance.name);
        let wrong: Vec<&String> = lines.iter().filter(|l| !l.starts_with("127.0.0.2 ")).collect();
        assert!(
            wrong.is_empty(),
            "{} logged {} of {} lines with another client than 127.0.0.2; the first: {:?}",
            instance.name,
            wrong.len(),
            lines.len(),
            wrong.first()
        );
    }
}

/// Whether HAProxy is here to test with; if not, a note (or, under `CI=true`, a failure).
fn haproxy_installed() -> bool {
    if Path::new(HAPROXY).is_file() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{HAPROXY} is not installed, and CI=true: .ci/run should have installed it");
    }
    // Straight to stderr: the test harness would capture `eprintln!`.
    let _ = writeln!(std::io::stderr(), "skipped: haproxy not installed");
    false
}

/// A free port on 127.0.0.1 now (bound, then released): an instance keeps it across its
/// restart, which port 0 would not give.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

// ---------------------------------------------------------------------------
// The instances
// ---------------------------------------------------------------------------

/// One bingfa behind HAProxy, on fixed ports, restarted in place.
struct Instance {
    name: String,
    port: u16,
    metrics: u16,
    log: PathBuf,
    args: Vec<String>,
    running: Option<Bingfa>,
}

impl Instance {
    fn new(n: usize, site: &Site, dir: &Path) -> Instance {
        let (port, metrics) = (free_port(), free_port());
        let log = dir.join(format!("b{n}.log"));
        let args = binary::args(&[
            "-m",
            "reactor",
            "-w",
            "1",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--metrics",
            &format!("127.0.0.1:{metrics}"),
            "--proxy-protocol",
            "--trusted-proxies",
            "127.0.0.1",
            "--drain-delay",
            "1",
            "--access-log",
            log.to_str().expect("UTF-8 temp dir"),
            site.root().to_str().expect("UTF-8 temp dir"),
        ]);
        Instance {
            name: format!("b{n}"),
            port,
            metrics,
            log,
            args,
            running: None,
        }
    }

    /// Starts it and waits (bounded) until it says it is ready.
    fn start(&mut self, readiness: Readiness) {
        self.running = Some(binary::start(&self.args, None));
        let url = format!("http://127.0.0.1:{}/healthz", self.metrics);
        let ready = poll_until(SAFETY, || match readiness {
            Readiness::Healthz => healthz_ok(self.metrics).then_some(()),
            Readiness::HealthCheckFlag => health_check_flag_ok(&url).then_some(()),
        });
        assert!(ready.is_some(), "{} was not ready within {SAFETY:?}", self.name);
    }

    /// SIGTERM; HAProxy sees it draining and takes it out; exit 0; started again on the
    /// same ports, and HAProxy has it back.
    fn restart(&mut self, haproxy: &Haproxy, readiness: Readiness) {
        self.begin_stop();
        haproxy.wait_for(&self.name, "DOWN");
        self.finish_stop();
        self.start(readiness);
        haproxy.wait_for(&self.name, "UP");
    }

    fn begin_stop(&mut self) {
        let running = self.running.as_mut().expect("running");
        running
            .begin_stop(Signal::SIGTERM)
            .unwrap_or_else(|e| panic!("{}: {e}", self.name));
    }

    fn finish_stop(&mut self) {
        let mut running = self.running.take().expect("stopping");
        running
            .finish_stop(false)
            .unwrap_or_else(|e| panic!("{}: {e}", self.name));
    }

    /// Its access log so far, a line each.
    fn logged_lines(&self) -> Vec<String> {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().map(str::to_string).collect()
    }
}

/// `GET /healthz` on 127.0.0.1:`port` answers 200.
fn healthz_ok(port: u16) -> bool {
    let answer = || -> std::io::Result<Vec<u8>> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(SAFETY))?;
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        Ok(answer)
    };
    answer().is_ok_and(|a| a.starts_with(b"HTTP/1.1 200 "))
}

/// `bingfa --health-check URL` exits 0.
fn health_check_flag_ok(url: &str) -> bool {
    let ran = Command::new(binary::BIN)
        .args(["--health-check", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run bingfa --health-check");
    ran.success()
}

// ---------------------------------------------------------------------------
// HAProxy
// ---------------------------------------------------------------------------

/// HAProxy in the foreground, killed when dropped.
struct Haproxy {
    child: Child,
    front: SocketAddr,
    stats: PathBuf,
    stderr: PathBuf,
}

impl Haproxy {
    /// Starts it with a config in the shape of `contrib/haproxy.cfg` (quicker checks, a
    /// stats socket) and waits (bounded) until its frontend accepts.
    fn start(dir: &Path, instances: &[Instance], retries: Retries) -> Haproxy {
        let front = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let stats = dir.join("haproxy.sock");
        let cfg = dir.join("haproxy.cfg");
        fs::write(&cfg, config(front, &stats, instances, retries)).expect("write haproxy.cfg");
        let stderr = dir.join("haproxy.stderr");
        let mut cmd = Command::new(HAPROXY);
        cmd.args(["-db", "-f"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).expect("create haproxy.stderr"))
            .process_group(0);
        // SAFETY: prctl(2) is a single system call, safe between fork and exec. If this test
        // dies without dropping it, the kernel kills HAProxy too.
        unsafe {
            cmd.pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from));
        }
        let child = cmd.spawn().expect("spawn haproxy");
        let haproxy = Haproxy {
            child,
            front,
            stats,
            stderr,
        };
        let accepts = poll_until(SAFETY, || TcpStream::connect(front).ok());
        assert!(
            accepts.is_some(),
            "HAProxy did not accept on {front} within {SAFETY:?}; stderr: {}",
            haproxy.stderr_now()
        );
        haproxy
    }

    fn stderr_now(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The status HAProxy gives server `name` of the backend (`UP`, `DOWN`, ...), from
    /// `show stat` on its stats socket.
    fn status(&self, name: &str) -> Option<String> {
        let mut socket = UnixStream::connect(&self.stats).ok()?;
        socket.set_read_timeout(Some(SAFETY)).ok()?;
        socket.write_all(b"show stat\n").ok()?;
        let mut csv = String::new();
        socket.read_to_string(&mut csv).ok()?;
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
        let column = header.iter().position(|&h| h == "status")?;
        lines
            .map(|line| line.split(',').collect::<Vec<&str>>())
            .find(|row| row.first() == Some(&"bingfa") && row.get(1) == Some(&name))
            .and_then(|row| row.get(column).map(|s| s.to_string()))
    }

    /// Waits (bounded) until HAProxy gives server `name` the status `wanted`.
    fn wait_for(&self, name: &str, wanted: &str) {
        let seen = poll_until(SAFETY, || {
            (self.status(name).as_deref() == Some(wanted)).then_some(())
        });
        assert!(
            seen.is_some(),
            "HAProxy did not see {name} {wanted} within {SAFETY:?} (now {:?}); stderr: {}",
            self.status(name),
            self.stderr_now()
        );
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `contrib/haproxy.cfg` for these instances: PROXY v2 to each, HTTP checks of `/healthz`
/// on its metrics port, `retries` as given; checks every 200 ms, one to fall or rise.
fn config(front: SocketAddr, stats: &Path, instances: &[Instance], retries: Retries) -> String {
    let mut cfg = format!(
        "global
    maxconn 1000
    stats socket {stats} level admin

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 10s
{retries}
frontend www
    bind {front}
    default_backend bingfa

backend bingfa
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    default-server send-proxy-v2 check inter 200ms fall 1 rise 1
",
        stats = stats.display(),
        retries = retries.config(),
    );
    for i in instances {
        cfg += &format!(
            "    server {} 127.0.0.1:{} check port {}\n",
            i.name, i.port, i.metrics
        );
    }
    cfg
}

// ---------------------------------------------------------------------------
// The load
// ---------------------------------------------------------------------------

/// Threads doing keep-alive GETs through HAProxy from `LOAD_SOURCE` until stopped (also
/// straight to a server: `upgrade.rs`).
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    threads: Vec<thread::JoinHandle<()>>,
}

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    failed: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, why: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut kept = self.failures.lock().unwrap();
        if kept.len() < FAILURES_KEPT {
            kept.push(why);
        }
    }
}

impl Load {
    pub(crate) fn start(front: SocketAddr, body: Vec<u8>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let body = Arc::new(body);
        let threads = (0..LOAD_THREADS)
            .map(|_| {
                let (stop, tally, body) = (Arc::clone(&stop), Arc::clone(&tally), Arc::clone(&body));
                thread::spawn(move || load_thread(front, &stop, &tally, &body))
            })
            .collect();
        Load { stop, tally, threads }
    }

    /// Waits (bounded) until more requests have been answered than now.
    pub(crate) fn wait_for_more_requests(&self) {
        let now = self.tally.requests.load(Ordering::Relaxed);
        let more = poll_until(SAFETY, || {
            (self.tally.requests.load(Ordering::Relaxed) > now).then_some(())
        });
        assert!(more.is_some(), "the load made no request in {SAFETY:?}");
    }

    /// Stops the threads: requests made, the first failures, failures counted.
    pub(crate) fn stop(self) -> (u64, Vec<String>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("load thread");
        }
        let failures = self.tally.failures.lock().unwrap().clone();
        (
            self.tally.requests.load(Ordering::Relaxed),
            failures,
            self.tally.failed.load(Ordering::Relaxed),
        )
    }
}

fn load_thread(front: SocketAddr, stop: &AtomicBool, tally: &Tally, body: &[u8]) {
    let deadline = Instant::now() + MAX_LOAD_TIME;
    let mut conn: Option<Conn> = None;
    for _ in 0..MAX_REQUESTS_PER_THREAD {
        if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
            return;
        }
        let c = match conn.take().map_or_else(|| Conn::open(front), Ok) {
            Ok(c) => conn.insert(c),
            Err(e) => {
                tally.fail(format!("connect to {front}: {e}"));
                continue;
            }
        };
        tally.requests.fetch_add(1, Ordering::Relaxed);
        match c.get(FILE) {
            Ok(answer) if answer.status == 200 && answer.body == body => {
                if answer.closes {
                    conn = None;
                }
            }
            Ok(answer) => {
                tally.fail(format!(
                    "status {} with {} body bytes: {:?}",
                    answer.status,
                    answer.body.len(),
                    String::from_utf8_lossy(&answer.head)
                ));
                conn = None;
            }
            Err(e) => {
                tally.fail(format!("GET /{FILE}: {e}"));
                conn = None;
            }
        }
    }
}

/// A keep-alive HTTP/1.1 connection from `LOAD_SOURCE`.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

struct Answer {
    status: u16,
    head: Vec<u8>,
    body: Vec<u8>,
    /// It said `Connection: close`: the connection is not to be used again.
    closes: bool,
}

impl Conn {
    fn open(to: SocketAddr) -> std::io::Result<Conn> {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        socket.bind(&SocketAddr::from((LOAD_SOURCE, 0)).into())?;
        socket.connect(&to.into())?;
        let stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(SAFETY))?;
        stream.set_write_timeout(Some(SAFETY))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
        })
    }

    fn get(&mut self, file: &str) -> std::io::Result<Answer> {
        self.stream
            .write_all(format!("GET /{file} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())?;
        let end = loop {
            if let Some(at) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            self.fill()?;
        };
        let head: Vec<u8> = self.buf.drain(..end).collect();
        let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let status = text
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line: {text:?}")))?;
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
        };
        let length: usize = field("content-length:")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("no Content-Length: {text:?}")))?;
        while self.buf.len() < length {
            self.fill()?;
        }
        let body = self.buf.drain(..length).collect();
        let closes = field("connection:").is_some_and(|v| v == "close");
        Ok(Answer {
            status,
            head,
            body,
            closes,
        })
    }

    fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk)? {
            0 => Err(std::io::Error::other("closed before a whole response")),
            n => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
        }
    }
}
