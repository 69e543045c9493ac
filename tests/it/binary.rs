//! The built `bingfa` binary as a child process, and the process table under
//! `/proc`: how the forking models are tested (forking inside the
//! multi-threaded test runner is unsafe), and how the command line is tested.
//!
//! Every child is started in a process group of its own (pgid = its pid), so
//! that whatever it forks can be found (and, after a failure, killed) even
//! once the parent has exited and its children have been re-parented.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use crate::support::SAFETY;

pub const BIN: &str = env!("CARGO_BIN_EXE_bingfa");

/// How often bounded polls look again.
pub const POLL: Duration = Duration::from_millis(10);

/// A running `bingfa` that printed its start line. Dropping it kills its
/// whole process group if it is still running (the tests that care stop it
/// with `stop` and check how it went).
pub struct Bingfa {
    child: Child,
    pub pid: i32,
    pub start_line: String,
    pub addr: SocketAddr,
    stderr: Arc<Collected>,
    status: Option<ExitStatus>,
    /// Set by `begin_stop`: its descendants just before the signal.
    stopping: Option<Vec<Proc>>,
}

/// What became of `bingfa ARGS`.
pub enum Started {
    Serving(Bingfa),
    /// It exited before printing a start line.
    Failed {
        status: ExitStatus,
        stderr: String,
    },
}

/// Collects everything a pipe delivers until every writer has closed it.
/// Nobody joins the thread: a forked worker that outlives its parent would
/// keep the pipe open, and `stderr_now` must not wait for it.
fn collect(mut r: impl Read + Send + 'static) -> Arc<Collected> {
    let out = Arc::new(Collected::default());
    let sink = Arc::clone(&out);
    thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.bytes.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
        sink.closed.store(true, Ordering::Release);
    });
    out
}

#[derive(Default)]
struct Collected {
    bytes: Mutex<Vec<u8>>,
    /// Every writer has closed the pipe.
    closed: AtomicBool,
}

/// Starts `bingfa ARGS` (in `cwd` if given) and waits, at most `SAFETY`, for
/// its start line or its exit.
pub fn spawn(args: &[String], cwd: Option<&Path>) -> Started {
    spawn_limited(args, cwd, None)
}

/// Like `spawn`, with its open-file limit (soft and hard: it cannot raise
/// it) set to `nofile` if given, as `prlimit --nofile=N:N bingfa ARGS`
/// would.
pub fn spawn_limited(args: &[String], cwd: Option<&Path>, nofile: Option<u64>) -> Started {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    if let Some(n) = nofile {
        let limit = rustix::process::Rlimit {
            current: Some(n),
            maximum: Some(n),
        };
        // SAFETY: setrlimit(2) is a single system call, safe between fork
        // and exec.
        unsafe {
            cmd.pre_exec(move || {
                rustix::process::setrlimit(rustix::process::Resource::Nofile, limit)
                    .map_err(std::io::Error::from)
            });
        }
    }
    launch(cmd, args)
}

/// Starts `cmd`, which runs `bingfa ARGS` (or execs it, from a wrapper),
/// and waits as `spawn` does.
pub fn launch(cmd: Command, args: &[String]) -> Started {
    launch_within(cmd, args, SAFETY)
}

/// `launch`, waiting up to `patience` for the start line: a server under valgrind starts
/// tens of times slower, the more so on a machine busy with the rest of the suite.
pub fn launch_within(mut cmd: Command, args: &[String], patience: Duration) -> Started {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: prctl(2) is a single system call, safe between fork and exec.
    // If this test thread dies without stopping the server (the test binary
    // is killed, say), the kernel kills the server too instead of leaving it
    // running.
    unsafe {
        cmd.pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from));
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
    let pid = i32::try_from(child.id()).expect("pid fits i32");
    let stderr = collect(child.stderr.take().unwrap());
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        // Whatever else it prints goes nowhere, and never blocks it.
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    let mut running = Bingfa {
        child,
        pid,
        start_line: String::new(),
        addr: ([127, 0, 0, 1], 0).into(),
        stderr,
        status: None,
        stopping: None,
    };
    match rx.recv_timeout(patience) {
        Ok(line) if !line.is_empty() => {
            // A server on a Unix socket or on IPv6 only has no such URL.
            if line.contains(" at http://127.0.0.1:") || line.contains(" at https://127.0.0.1:") {
                running.addr = url_addr(&line);
            }
            running.start_line = line;
            Started::Serving(running)
        }
        // EOF on stdout: it exited (or closed stdout, and will exit).
        Ok(_) | Err(mpsc::RecvTimeoutError::Disconnected) => match running.wait_exit() {
            Some(status) => Started::Failed {
                status,
                stderr: running.stderr_now(),
            },
            None => panic!(
                "bingfa {args:?} closed its stdout without a start line but did not exit \
                 within {SAFETY:?}; stderr: {:?}",
                running.stderr_now()
            ),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!(
            "bingfa {args:?} printed no start line within {patience:?}; stderr: {:?}",
            running.stderr_now()
        ),
    }
}

/// Starts `bingfa ARGS`, which must print its start line.
pub fn start(args: &[String], cwd: Option<&Path>) -> Bingfa {
    match spawn(args, cwd) {
        Started::Serving(running) => running,
        Started::Failed { status, stderr } => {
            panic!("bingfa {args:?} exited ({status}) before its start line; stderr: {stderr:?}")
        }
    }
}

/// Starts `bingfa ARGS`, which must refuse to serve: exit status 1 and one line on stderr,
/// `bingfa: ...` with `words` in it.
#[track_caller]
pub fn fails_in_one_line(args: &[String], words: &str) {
    match spawn(args, None) {
        Started::Failed { status, stderr } => {
            assert_eq!(status.code(), Some(1), "{args:?}");
            assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
            assert!(
                stderr.starts_with("bingfa: ") && stderr.contains(words),
                "{args:?}: {stderr}"
            );
        }
        Started::Serving(_) => panic!("bingfa {args:?} started"),
    }
}

/// `&[&str]` as the owned arguments `spawn` takes.
pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|a| a.to_string()).collect()
}

/// The address in `http://127.0.0.1:PORT/` (or `https://`) within the start line.
pub fn url_addr(line: &str) -> SocketAddr {
    let prefix = "://127.0.0.1:";
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

impl Bingfa {
    /// What it has written to stderr so far; once it has exited, all of it
    /// (waiting, bounded, for the pipe to be drained).
    pub fn stderr_now(&self) -> String {
        if self.status.is_some() {
            poll_until(SAFETY, || {
                self.stderr.closed.load(Ordering::Acquire).then_some(())
            });
        }
        String::from_utf8_lossy(&self.stderr.bytes.lock().unwrap()).into_owned()
    }

    pub fn signal(&self, sig: Signal) {
        if self.status.is_none() {
            kill(Pid::from_raw(self.pid), sig).unwrap_or_else(|e| panic!("kill {sig} {}: {e}", self.pid));
        }
    }

    /// Its exit status if it has exited (it is then reaped).
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Polls for its exit for at most `SAFETY`.
    pub fn wait_exit(&mut self) -> Option<ExitStatus> {
        poll_until(SAFETY, || self.try_exit())
    }

    /// Sends `sig` and waits (bounded) for the exit, which must be status 0
    /// with nothing alarming on stderr; then waits (bounded) until no process
    /// of its group is left: every worker or per-connection child has exited
    /// and been reaped.
    pub fn stop_with(&mut self, sig: Signal) -> Result<(), String> {
        self.begin_stop(sig)?;
        self.finish_stop(false)
    }

    /// The first half of `stop_with`: sends `sig` (once: a second call does
    /// nothing, so a server draining after SIGTERM is not signalled again).
    pub fn begin_stop(&mut self, sig: Signal) -> Result<(), String> {
        if self.stopping.is_some() {
            return Ok(());
        }
        let already = self.try_exit();
        if let Some(status) = already {
            return Err(format!(
                "bingfa had already exited ({status}) before {sig}; stderr: {:?}",
                self.stderr_now()
            ));
        }
        // Whatever it has started, even in another process group, must go too.
        self.stopping = Some(descendants(self.pid));
        self.signal(sig);
        Ok(())
    }

    /// The second half of `stop_with`, after `begin_stop`: the exit (status
    /// 0, within `SAFETY`), no process of its group or of its descendants
    /// left, and no panic on stderr unless `panics_expected`.
    pub fn finish_stop(&mut self, panics_expected: bool) -> Result<(), String> {
        let before = self.stopping.clone().expect("finish_stop without begin_stop");
        let Some(status) = self.wait_exit() else {
            self.kill_group();
            return Err(format!(
                "bingfa was still running {SAFETY:?} after the signal; stderr: {:?}",
                self.stderr_now()
            ));
        };
        if !status.success() {
            return Err(format!(
                "exit status after the signal: {status}; stderr: {:?}",
                self.stderr_now()
            ));
        }
        self.group_gone()?;
        let left: Vec<Proc> = before.into_iter().filter(still_there).collect();
        if !left.is_empty() {
            return Err(format!(
                "processes it had started outlive it (in another process group): {left:?}"
            ));
        }
        let stderr = self.stderr_now();
        if stderr.contains("panicked") && !panics_expected {
            return Err(format!("bingfa panicked; stderr: {stderr:?}"));
        }
        Ok(())
    }

    /// Waits (bounded) until no process is left in its process group, and
    /// reports the ones that are.
    pub fn group_gone(&self) -> Result<(), String> {
        let left = poll_until(SAFETY, || {
            let left = group(self.pid);
            left.is_empty().then_some(())
        });
        match left {
            Some(()) => Ok(()),
            None => {
                let left = group(self.pid);
                self.kill_group();
                Err(format!(
                    "{} process(es) of bingfa's group were left {SAFETY:?} after it exited: {left:?}",
                    left.len()
                ))
            }
        }
    }

    /// SIGKILL to the whole group (ignored if there is none left).
    pub fn kill_group(&self) {
        let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
    }

    /// Its children (of any state, zombies included).
    pub fn children(&self) -> Vec<Proc> {
        processes().into_iter().filter(|p| p.ppid == self.pid).collect()
    }
}

impl Drop for Bingfa {
    fn drop(&mut self) {
        self.kill_group();
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Calls `f` every `POLL` until it gives something, for at most `bound`.
pub fn poll_until<T>(bound: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(found) = f() {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(POLL);
    }
}

// ---------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------

/// One line of the process table, from `/proc/PID/stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    /// R, S, D, Z, ...
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    /// Clock ticks after boot at which it started: with `pid`, names one
    /// process even if the pid is later reused.
    pub start: u64,
}

impl Proc {
    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }
}

/// `/proc/PID/stat` parsed, if the process still exists.
pub fn process(pid: i32) -> Option<Proc> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "PID (COMM) STATE PPID PGRP ...": COMM may hold spaces and parentheses.
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    // Field 22 of proc_pid_stat(5); `fields` is at field 6 now.
    let start = fields.nth(16)?.parse().ok()?;
    Some(Proc {
        pid,
        state,
        ppid,
        pgrp,
        start,
    })
}

/// Every process visible in `/proc`.
pub fn processes() -> Vec<Proc> {
    let entries = fs::read_dir("/proc").expect("read /proc");
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(process)
        .collect()
}

/// Every process in process group `pgid`.
pub fn group(pgid: i32) -> Vec<Proc> {
    processes().into_iter().filter(|p| p.pgrp == pgid).collect()
}

/// Every descendant of `pid` (children, their children, ...).
pub fn descendants(pid: i32) -> Vec<Proc> {
    let all = processes();
    let mut found: Vec<Proc> = Vec::new();
    let mut parents = vec![pid];
    while let Some(parent) = parents.pop() {
        for p in all.iter().filter(|p| p.ppid == parent) {
            parents.push(p.pid);
            found.push(p.clone());
        }
    }
    found
}

/// Whether `p` (the same process, not a reuse of its pid) still exists.
pub fn still_there(p: &Proc) -> bool {
    process(p.pid).is_some_and(|now| now.start == p.start)
}

#[test]
fn proc_stat_is_read_right() {
    let me = process(std::process::id() as i32).expect("own /proc/PID/stat");
    assert_eq!(me.ppid, nix::unistd::getppid().as_raw());
    assert_eq!(me.pgrp, nix::unistd::getpgrp().as_raw());
    let mut sleeper = Command::new("sleep").arg("5").spawn().expect("spawn sleep");
    let pid = sleeper.id() as i32;
    let child = process(pid).expect("the child's stat");
    assert_eq!(child.ppid, me.pid);
    assert!(child.start >= me.start && me.start > 0, "{child:?} {me:?}");
    assert!(descendants(me.pid).iter().any(|p| p.pid == pid));
    assert!(still_there(&child));
    sleeper.kill().unwrap();
    // Killed but not yet waited for: a zombie, as the zombie tests see one.
    let zombie = poll_until(SAFETY, || process(pid).filter(Proc::is_zombie));
    assert!(zombie.is_some(), "{:?}", process(pid));
    sleeper.wait().unwrap();
    assert!(!still_there(&child));
}

/// CPU time a process has used so far, all its threads together (utime +
/// stime of `/proc/PID/stat`), if it still exists.
pub fn cpu_time(pid: i32) -> Option<Duration> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    // Fields 14 and 15 of proc_pid_stat(5); `fields` starts at field 3.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // In clock ticks of USER_HZ, which Linux fixes at 100 for /proc on every
    // architecture this runs on.
    let hz = 100;
    Some(Duration::from_secs_f64((utime + stime) as f64 / hz as f64))
}

/// How many descriptors a process has open, if it still exists.
pub fn open_descriptors(pid: i32) -> Option<usize> {
    Some(fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// TCP state of the IPv4 socket whose local end is `local` and remote end
/// `remote`, from `/proc/net/tcp` (this network namespace, any process):
/// 1 is ESTABLISHED; `None` if there is no such socket (any more).
pub fn tcp_state(local: SocketAddr, remote: SocketAddr) -> Option<u8> {
    let table = fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table.lines().skip(1).find_map(|line| {
        let mut fields = line.split_whitespace().skip(1);
        let (l, r, st) = (fields.next()?, fields.next()?, fields.next()?);
        (proc_net_addr(l)? == local && proc_net_addr(r)? == remote)
            .then(|| u8::from_str_radix(st, 16).ok())
            .flatten()
    })
}

/// `0100007F:1F90` (the address as the kernel's native-endian u32, the port
/// in hex) as a `SocketAddr`.
fn proc_net_addr(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let ip = u32::from_str_radix(ip, 16).ok()?.to_ne_bytes();
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddr::from((ip, port)))
}

#[test]
fn proc_net_tcp_and_cpu_time_are_read_right() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    let (s, c) = (server.local_addr().unwrap(), client.local_addr().unwrap());
    assert_eq!(tcp_state(s, c), Some(1), "the server side is ESTABLISHED");
    assert_eq!(tcp_state(c, s), Some(1), "the client side is ESTABLISHED");
    drop(server);
    // Closed first: FIN_WAIT (2 or 3), or TIME_WAIT (6) once the client closes too.
    let left = poll_until(SAFETY, || tcp_state(s, c).filter(|&st| st != 1));
    assert!(left.is_some(), "still ESTABLISHED after close");
    let me = std::process::id() as i32;
    let busy = cpu_time(me).unwrap();
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        std::hint::black_box(busy);
    }
    assert!(cpu_time(me).unwrap() > busy, "a busy loop uses CPU time");
    assert!(open_descriptors(me).unwrap() >= 3);
}
