//! The access log: lines formatted where requests are answered, written by one writer
//! thread per process, so no event loop ever waits for the disk.
//!
//! Each line is formatted into a per-thread buffer, then appended under a lock to the
//! process's pending batch (a copy, no system call). The writer swaps the batch out every
//! 100 ms, or sooner once it is large, and writes it with one `write`. If the writer falls
//! behind by more than `MAX_PENDING` bytes, new lines are dropped and counted rather than
//! letting memory grow or a server thread wait.
//!
//! A process that runs no writer (the per-connection children of `process`, and its parent
//! when it answers 503 itself) writes each line at once, opening the file for it: such a
//! process serves one connection with blocking calls, so there is no loop to hold up, and a
//! writer thread per connection would cost more than the write.
//!
//! SIGHUP reopens the file, as logrotate's `postrotate` expects after it has renamed it: the
//! process's SIGHUP watcher asks ([`AccessLog::reopen`]) and the writer does it on its next
//! pass.

use super::format::{write_line, LogFormat};
use super::metrics::Metrics;
use crate::http::Exchange;
use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the writer writes what has accumulated (and looks whether to reopen the file).
const INTERVAL: Duration = Duration::from_millis(100);
/// A batch this large wakes the writer before its interval is over.
const WAKE_AT: usize = 256 * 1024;
/// Beyond this many bytes waiting, lines are dropped.
const MAX_PENDING: usize = 8 * 1024 * 1024;
/// Lines dropped are reported on stderr at most this often.
const DROPS_TOLD_EVERY: Duration = Duration::from_secs(1);
/// Writes to a pipe up to this size are atomic (POSIX PIPE_BUF on Linux): stdout is written
/// in pieces of whole lines no larger, so processes sharing it never interleave their lines.
const PIPE_BUF: usize = 4096;

/// Where the lines go: a file, or `-` for stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Stdout,
    File(PathBuf),
}

/// The access log of one server.
#[derive(Debug)]
pub(crate) struct AccessLog {
    target: Target,
    format: LogFormat,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    /// Lines dropped since the writer last said so.
    dropped: AtomicU64,
    /// The last write failed: said once, not for every line after it.
    failing: AtomicBool,
    /// The file is to be opened again by its path before the next write.
    reopen: AtomicBool,
}

#[derive(Debug, Default)]
struct Pending {
    lines: Vec<u8>,
    /// A writer thread runs in this process and takes `lines`.
    writing: bool,
    stopping: bool,
}

thread_local! {
    /// Where a line is formatted before it is copied to the batch: kept per thread, so the
    /// lock is held only for the copy and formatting allocates nothing once warm.
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl AccessLog {
    /// The log at `path` (`-`: stdout). The file is opened once here, so that a path that
    /// cannot be written is an error at start rather than a line lost later.
    pub fn open(path: &Path, format: LogFormat) -> io::Result<AccessLog> {
        let target = if path == Path::new("-") {
            Target::Stdout
        } else {
            crate::fs::open_log(path)?;
            Target::File(path.to_path_buf())
        };
        let shared = Arc::default();
        Ok(AccessLog {
            target,
            format,
            shared,
        })
    }

    pub fn format(&self) -> LogFormat {
        self.format
    }

    /// Where it writes, as the operator named it.
    pub fn describe(&self) -> String {
        match &self.target {
            Target::Stdout => "stdout".to_string(),
            Target::File(path) => path.display().to_string(),
        }
    }

    /// Logs one exchange: formats it and hands it to the writer, or drops it (counted in
    /// `metrics`, if any) if the writer is too far behind.
    pub fn record(&self, exchange: &Exchange<'_>, duration: Duration, metrics: Option<&Metrics>) {
        LINE.with_borrow_mut(|line| {
            line.clear();
            write_line(line, self.format, exchange, duration);
            if !self.submit(line) {
                self.shared.dropped.fetch_add(1, Relaxed);
                if let Some(metrics) = metrics {
                    metrics.log_dropped();
                }
            }
        });
    }

    /// Queues `line` for the writer, or writes it now if this process has none; false if it
    /// had to be dropped.
    fn submit(&self, line: &[u8]) -> bool {
        let mut pending = self.shared.lock();
        if !pending.writing {
            drop(pending);
            let written = self.write_once(line);
            self.shared.note(written, &self.target);
            return true;
        }
        let before = pending.lines.len();
        if before + line.len() > MAX_PENDING {
            return false;
        }
        pending.lines.extend_from_slice(line);
        if before < WAKE_AT && pending.lines.len() >= WAKE_AT {
            self.shared.wake.notify_one();
        }
        true
    }

    /// Writes `lines` opening the file for it alone (so a rotation needs no reopening).
    fn write_once(&self, lines: &[u8]) -> io::Result<()> {
        match &self.target {
            Target::Stdout => write_stdout(lines),
            Target::File(path) => crate::fs::append_once(path, lines),
        }
    }

    /// The file was rotated: the writer opens it again by its path. (A process without a
    /// writer opens it for every line anyway.)
    pub fn reopen(&self) {
        self.shared.reopen.store(true, Relaxed);
        self.shared.wake.notify_one();
    }

    /// Starts this process's writer thread, which writes every line from now until the
    /// returned [`Writer`] is dropped.
    pub fn start(&self) -> io::Result<Writer> {
        let out = Out::open(&self.target)?;
        self.shared.lock().writing = true;
        let shared = Arc::clone(&self.shared);
        let target = self.target.clone();
        let thread = std::thread::Builder::new()
            .name("bingfa-log".into())
            .spawn(move || write_until_stopped(&shared, out, &target));
        match thread {
            Ok(thread) => Ok(Writer {
                shared: Arc::clone(&self.shared),
                thread: Some(thread),
            }),
            Err(e) => {
                self.shared.lock().writing = false;
                Err(e)
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A thread that panicked while holding the lock left at worst a partial line.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Says, once, that writing fails, and once that it works again.
    fn note(&self, written: io::Result<()>, target: &Target) {
        let name = match target {
            Target::Stdout => Path::new("stdout"),
            Target::File(path) => path,
        };
        match written {
            Err(e) if !self.failing.swap(true, Relaxed) => {
                tracing::error!("cannot write the access log {}: {e}", name.display());
            }
            Ok(()) if self.failing.swap(false, Relaxed) => {
                tracing::info!("writing the access log {} again", name.display());
            }
            _ => {}
        }
    }
}

/// The running writer of a process: dropping it writes what is left and stops the thread.
#[derive(Debug)]
pub(crate) struct Writer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.shared.lock().stopping = false;
    }
}

/// The writer thread's loop: every interval (or when woken), takes the batch and writes it.
fn write_until_stopped(shared: &Shared, mut out: Out, target: &Target) {
    let mut batch = Vec::new();
    let mut drops_told = Instant::now();
    loop {
        let stopping = {
            let mut pending = shared.lock();
            if !pending.stopping && pending.lines.len() < WAKE_AT {
                pending = shared
                    .wake
                    .wait_timeout(pending, INTERVAL)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            std::mem::swap(&mut pending.lines, &mut batch);
            // Lines logged after this are written at once by the thread that logs them.
            pending.writing &= !pending.stopping;
            pending.stopping
        };
        if shared.reopen.swap(false, Relaxed) {
            out = reopen(out, target);
        }
        if !batch.is_empty() {
            shared.note(out.write(&batch), target);
            batch.clear();
        }
        // Once a second at most, however long the disk stays behind.
        if drops_told.elapsed() >= DROPS_TOLD_EVERY || stopping {
            let dropped = shared.dropped.swap(0, Relaxed);
            if dropped > 0 {
                tracing::warn!("the access log fell behind: {dropped} lines dropped");
                drops_told = Instant::now();
            }
        }
        if stopping {
            return;
        }
    }
}

/// After SIGHUP: the file at the path again (a new one if it was renamed); the old one is
/// kept if that fails, so no line is lost to a mistake in the rotation.
fn reopen(out: Out, target: &Target) -> Out {
    match Out::open(target) {
        Ok(reopened) => {
            tracing::debug!("reopened the access log on SIGHUP");
            reopened
        }
        Err(e) => {
            tracing::error!("cannot reopen the access log on SIGHUP: {e}; writing on to the old file");
            out
        }
    }
}

/// The writer's open destination.
enum Out {
    Stdout,
    File(File),
}

impl Out {
    fn open(target: &Target) -> io::Result<Out> {
        Ok(match target {
            Target::Stdout => Out::Stdout,
            Target::File(path) => Out::File(crate::fs::open_log(path)?),
        })
    }

    fn write(&mut self, lines: &[u8]) -> io::Result<()> {
        match self {
            Out::Stdout => write_stdout(lines),
            // O_APPEND: the whole batch lands at the end of the file, in one piece.
            Out::File(file) => file.write_all(lines),
        }
    }
}

/// Writes whole lines to stdout in pieces of at most `PIPE_BUF` bytes (a longer line alone).
fn write_stdout(lines: &[u8]) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    let mut rest = lines;
    while !rest.is_empty() {
        let end = piece_end(rest);
        stdout.write_all(&rest[..end])?;
        rest = &rest[end..];
    }
    stdout.flush()
}

/// Where the first piece of `lines` ends: after the last line that ends within `PIPE_BUF`
/// bytes, or after the first line if that is longer.
fn piece_end(lines: &[u8]) -> usize {
    let window = &lines[..lines.len().min(PIPE_BUF)];
    match window.iter().rposition(|&b| b == b'\n') {
        Some(last) => last + 1,
        None => lines
            .iter()
            .position(|&b| b == b'\n')
            .map_or(lines.len(), |first| first + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::RequestLine;
    use std::time::{Instant, SystemTime};

    const MS: Duration = Duration::from_millis(1);

    fn exchange(target: &[u8]) -> Exchange<'_> {
        Exchange {
            peer: None,
            tls: None,
            request: Some(RequestLine {
                method: b"GET",
                target,
                version: "HTTP/1.1",
            }),
            referer: None,
            user_agent: None,
            forwarded: None,
            forwarded_for: None,
            status: 200,
            body_bytes: 5,
            bytes: 100,
            received: Instant::now(),
            time: SystemTime::now(),
        }
    }

    #[test]
    fn the_writer_writes_every_line_in_order_and_flushes_when_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::open(&path, LogFormat::Common).unwrap();
        let writer = log.start().unwrap();
        let targets: Vec<String> = (0..1000).map(|i| format!("/{i}")).collect();
        for target in &targets {
            log.record(&exchange(target.as_bytes()), MS, None);
        }
        drop(writer);
        let text = std::fs::read_to_string(&path).unwrap();
        let logged: Vec<&str> = text.lines().map(|line| line.split(' ').nth(6).unwrap()).collect();
        assert_eq!(logged, targets);
        // With no writer, a line is written at once.
        log.record(&exchange(b"/after"), MS, None);
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("GET /after HTTP/1.1"));
    }

    #[test]
    fn lines_beyond_the_limit_are_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let log = AccessLog::open(&dir.path().join("a.log"), LogFormat::Combined).unwrap();
        // A writer that never writes: mark one as running without starting it.
        log.shared.lock().writing = true;
        let metrics = Metrics::with_certificates("epoll", &[]).unwrap();
        let long = vec![b'a'; 64 * 1024];
        let fit = MAX_PENDING / (long.len() + 100);
        for _ in 0..fit + 10 {
            log.record(&exchange(&long), MS, Some(&metrics));
        }
        let dropped = log.shared.dropped.load(Relaxed);
        assert!((10..=11).contains(&dropped), "{dropped}");
        assert!(log.shared.lock().lines.len() <= MAX_PENDING);
        let rendered = metrics.render();
        assert!(rendered.contains(&format!(
            "bingfa_access_log_dropped_total{{model=\"epoll\"}} {dropped}\n"
        )));
    }

    #[test]
    fn stdout_pieces_end_at_line_ends() {
        let line = |n: usize| [vec![b'x'; n - 1], vec![b'\n']].concat();
        let lines = [line(3000), line(2000)].concat();
        assert_eq!(piece_end(&lines), 3000);
        let long = [line(5000), line(10)].concat();
        assert_eq!(piece_end(&long), 5000, "a line longer than PIPE_BUF goes alone");
        assert_eq!(piece_end(b"a\nb\n"), 4);
        assert_eq!(piece_end(b"no end"), 6);
    }
}
