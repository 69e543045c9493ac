//! `--trace-model`: the events that make each concurrency model what it is, said on stderr so
//! that a learner can watch a model work (the guided tour, `docs/zh/`, `docs/en/`, uses it).
//!
//! What it says: one line per event, `trace SECONDS PID/THREAD KIND: DETAIL`, for example
//!
//! ```text
//! trace   0.412803 81514/main accept: fd 7
//! trace   0.412911 81514/main fork: child 81519 serves fd 7
//! trace   0.415307 81514/main reap: child 81519
//! ```
//!
//! SECONDS counts from the start of tracing, THREAD is the thread's name (`main`,
//! `bingfa-worker-1`, `bingfa-conn`...). The kinds are the [`Kind`]s: accept, fork and reap,
//! a thread's spawn and exit, a connection put on a queue and a worker taking it, a task
//! spawned and done, a pass of the polling loop, `poll` and `epoll_wait` returning, a socket
//! that would block after making progress, a partial `sendfile`, steering and handover, ring
//! submissions and completions. They are said by the models and the engine where they happen
//! (`trace_event!`), never by the core, which knows nothing of sockets.
//!
//! Rate limit: at most [`LINES_PER_SECOND`] lines per second per process. Beyond them,
//! events are counted, not formatted, and the count is said in one `suppressed` line with the
//! first event of a later second. (A burst's count therefore waits for the next event; a
//! learner watching one request at a time never meets the limit.)
//!
//! What it costs: off (the default) the server holds no tracer, and each place an event could
//! be said tests one `Option` in the model's context: one load and one branch, predicted not
//! taken. No formatting, allocation, clock read or lock happens, as `trace_event!` evaluates
//! its detail only inside that branch. `tests/it/trace.rs` checks, under callgrind, that no
//! instruction of this module runs while a server with tracing off answers requests; and
//! `bench/callgrind.sh reactor` (release build) counted 4,983 instructions per request before
//! tracing was added and 4,985 after, 3,522 and 3,522 with 16 requests per write. On, each
//! event takes a lock, a clock read and a write to stderr: fine to watch a model, not to
//! benchmark one.
//!
//! The lines go straight to stderr, not through `--log-level`'s subscriber: they are what the
//! option asks for, whatever the level.

use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// At most this many lines a second per process; the rest are counted.
pub const LINES_PER_SECOND: u32 = 20;

/// What a model's context holds: a tracer with `--trace-model`, nothing without it.
#[derive(Debug)]
pub struct Trace(Option<Arc<Tracer>>);

impl Trace {
    /// No tracing: every `trace_event!` on it is one branch, not taken.
    pub const OFF: Trace = Trace(None);

    /// Tracing to stderr if `on`.
    pub fn new(on: bool) -> Trace {
        Trace(on.then(|| Arc::new(Tracer::new())))
    }

    /// The tracer, if tracing is on. `trace_event!` calls this; inlined even in debug builds,
    /// so that with tracing off no instruction of this module runs.
    #[inline(always)]
    pub fn tracer(&self) -> Option<&Tracer> {
        self.0.as_deref()
    }
}

/// Says an event when tracing is on: `trace_event!(context.trace, Kind::Accept, "fd {fd}")`.
/// The detail is a `format!` string whose arguments are evaluated only when tracing is on.
macro_rules! trace_event {
    ($trace:expr, $kind:expr, $($detail:tt)+) => {
        if let Some(tracer) = $trace.tracer() {
            tracer.say($kind, format_args!($($detail)+));
        }
    };
}
pub(crate) use trace_event;

/// The kinds of event, each the word after the thread on a trace line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A connection accepted (every model).
    Accept,
    /// A process forked: a child per connection (`process`), a worker (`prefork`).
    Fork,
    /// Exited children collected with `waitpid` (`process`, `prefork`).
    Reap,
    /// A thread started: one per connection (`thread`), the pool's workers (`pool`).
    Spawn,
    /// A connection's thread ends (`thread`).
    Exit,
    /// A connection put on the queue for a worker (`pool`).
    Queue,
    /// A worker took a connection from the queue (`pool`).
    Take,
    /// A task spawned for a connection, or done (`async`).
    Task,
    /// One pass of the polling loop over every socket (`nonblocking`).
    Pass,
    /// `poll` returned (`poll`).
    Poll,
    /// `epoll_wait` returned (`epoll`, `reactor`, `prefork`).
    EpollWait,
    /// A socket that made progress would block now: back to waiting for readiness.
    WouldBlock,
    /// `sendfile` sent less than asked: the rest waits for room in the socket.
    Sendfile,
    /// A listener tagged with a CPU, or its tag given up (`reactor`).
    Steer,
    /// Connections handed from one worker's loop to another's (`reactor`).
    Handover,
    /// Operations submitted to the ring (`uring`).
    Submit,
    /// An operation's completion taken from the ring (`uring`).
    Complete,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Accept => "accept",
            Kind::Fork => "fork",
            Kind::Reap => "reap",
            Kind::Spawn => "spawn",
            Kind::Exit => "exit",
            Kind::Queue => "queue",
            Kind::Take => "take",
            Kind::Task => "task",
            Kind::Pass => "pass",
            Kind::Poll => "poll",
            Kind::EpollWait => "epoll_wait",
            Kind::WouldBlock => "would-block",
            Kind::Sendfile => "sendfile",
            Kind::Steer => "steer",
            Kind::Handover => "handover",
            Kind::Submit => "submit",
            Kind::Complete => "complete",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Writes trace lines to stderr, at most [`LINES_PER_SECOND`] a second.
#[derive(Debug)]
pub struct Tracer {
    started: Instant,
    window: Mutex<Window>,
}

/// The current second of the rate limit. A forked child gets a copy, and its own limit.
#[derive(Debug)]
struct Window {
    began: Instant,
    said: u32,
    suppressed: u64,
}

impl Tracer {
    fn new() -> Tracer {
        let now = Instant::now();
        Tracer {
            started: now,
            window: Mutex::new(Window {
                began: now,
                said: 0,
                suppressed: 0,
            }),
        }
    }

    /// Says one event, unless this second's lines are used up.
    #[cold]
    #[inline(never)]
    pub fn say(&self, kind: Kind, detail: fmt::Arguments<'_>) {
        let now = Instant::now();
        // A panic while holding the lock leaves a count, which is whole: use it.
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let mut text = String::new();
        if now.duration_since(window.began) >= Duration::from_secs(1) {
            if window.suppressed > 0 {
                let line = self.line(
                    now,
                    "suppressed",
                    format_args!(
                        "{} events in the second after the first {LINES_PER_SECOND}",
                        window.suppressed
                    ),
                );
                text.push_str(&line);
            }
            *window = Window {
                began: now,
                said: 0,
                suppressed: 0,
            };
        }
        if window.said >= LINES_PER_SECOND {
            window.suppressed += 1;
        } else {
            window.said += 1;
            text.push_str(&self.line(now, kind.name(), detail));
        }
        // Under the lock, so that lines keep their order; stderr is unbuffered, one write.
        if !text.is_empty() {
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
        }
    }

    fn line(&self, now: Instant, kind: &str, detail: fmt::Arguments<'_>) -> String {
        let seconds = now.duration_since(self.started).as_secs_f64();
        let thread = std::thread::current();
        let pid = std::process::id();
        match thread.name() {
            Some(name) => format!("trace {seconds:10.6} {pid}/{name} {kind}: {detail}\n"),
            None => format!("trace {seconds:10.6} {pid}/{:?} {kind}: {detail}\n", thread.id()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_has_no_tracer() {
        assert!(Trace::OFF.tracer().is_none());
        assert!(Trace::new(false).tracer().is_none());
        assert!(Trace::new(true).tracer().is_some());
    }

    #[test]
    fn a_line_names_the_kind_after_the_thread() {
        let tracer = Tracer::new();
        let line = tracer.line(
            Instant::now(),
            Kind::EpollWait.name(),
            format_args!("{} ready", 3),
        );
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words[0], "trace");
        assert!(
            words[2].starts_with(&format!("{}/", std::process::id())),
            "{line}"
        );
        assert_eq!(words[3], "epoll_wait:");
        assert!(line.ends_with("3 ready\n"), "{line}");
    }

    #[test]
    fn beyond_the_limit_events_are_counted_then_said_once() {
        let tracer = Tracer::new();
        for _ in 0..LINES_PER_SECOND + 5 {
            tracer.say(Kind::Pass, format_args!("x"));
        }
        {
            let window = tracer.window.lock().unwrap();
            assert_eq!(window.said, LINES_PER_SECOND);
            assert_eq!(window.suppressed, 5);
        }
        // A second later the count is said, and a new second begins with this event.
        tracer.window.lock().unwrap().began -= Duration::from_secs(1);
        tracer.say(Kind::Pass, format_args!("x"));
        let window = tracer.window.lock().unwrap();
        assert_eq!((window.said, window.suppressed), (1, 0));
    }
}
