//! The `--metrics` listener: `GET /metrics` (Prometheus text) and `GET /healthz`, served one
//! short connection at a time, apart from the models.
//!
//! It runs on a thread of its own; for the forking models in a process of its own instead,
//! forked before the model starts, since their parent must stay single-threaded to fork. The
//! counters it reads are shared by every process (see `metrics`). It answers until the
//! server has stopped, draining included, and closes each connection after its answer.

use super::metrics::Metrics;
use crate::error::Error;
use crate::models::readable_unless_shutdown;
use crate::shutdown::Shutdown;
use nix::sys::signal::Signal;
use nix::unistd::{fork, ForkResult, Pid};
use std::io::{self, Read, Write};
use std::net::{Shutdown as Direction, TcpListener, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a client may take to send its request or take the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest request head read.
const MAX_HEAD: usize = 8 * 1024;

/// The running endpoint; dropping it stops it.
#[derive(Debug)]
pub(crate) struct Endpoint {
    stop: Arc<Shutdown>,
    running: Running,
}

#[derive(Debug)]
enum Running {
    Thread(Option<JoinHandle<()>>),
    Process(Pid),
}

impl Endpoint {
    /// Serves `metrics` on `listener` from a thread.
    pub fn on_thread(listener: TcpListener, metrics: Arc<Metrics>) -> Result<Endpoint, Error> {
        let stop = Shutdown::new().map_err(Error::io("starting the metrics endpoint"))?;
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("bingfa-metrics".into())
            .spawn(move || serve(&listener, &metrics, &stopped))
            .map_err(Error::io("starting the metrics endpoint"))?;
        Ok(Endpoint {
            stop,
            running: Running::Thread(Some(thread)),
        })
    }

    /// Serves `metrics` on `listener` from a child process. `server_listener`, the server's
    /// own listener, is closed in the child, so that the port stops listening when the
    /// server closes it.
    ///
    /// The caller must be single-threaded (as the forking models require).
    pub fn in_process(
        listener: TcpListener,
        metrics: Arc<Metrics>,
        server_listener: RawFd,
    ) -> Result<Endpoint, Error> {
        // An eventfd made before the fork: the parent's write wakes the child.
        let stop = Shutdown::new().map_err(Error::io("starting the metrics endpoint"))?;
        let server = nix::unistd::getpid();
        // SAFETY: the caller is single-threaded (the forking models run only in such a
        // process, see `Model::forks`), so the child may run ordinary Rust code.
        let forked = unsafe { fork() }.map_err(|e| Error::io("starting the metrics endpoint")(e.into()))?;
        match forked {
            ForkResult::Child => {
                // SAFETY: in this child the server's listener is never used: it runs only
                // the endpoint, then exits without running the parent's destructors.
                drop(unsafe { OwnedFd::from_raw_fd(server_listener) });
                // Should the server die without stopping it, so does the endpoint (and if it
                // died before that was asked for, the endpoint has no one left to serve).
                let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
                if nix::unistd::getppid() == server {
                    serve(&listener, &metrics, &stop);
                }
                std::process::exit(0)
            }
            ForkResult::Parent { child } => Ok(Endpoint {
                stop,
                running: Running::Process(child),
            }),
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.trigger();
        match &mut self.running {
            Running::Thread(thread) => {
                if let Some(thread) = thread.take() {
                    let _ = thread.join();
                }
            }
            // The forking models reap any child that exits, this one too: an error here
            // means it is gone already.
            Running::Process(pid) => drop(nix::sys::wait::waitpid(*pid, None)),
        }
    }
}

/// Answers connections one after the other until `stop` is triggered.
fn serve(listener: &TcpListener, metrics: &Metrics, stop: &Shutdown) {
    loop {
        match readable_unless_shutdown(listener, stop, None) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::error!("metrics endpoint: {e}");
                return;
            }
        }
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = answer(&stream, metrics) {
                    tracing::debug!("metrics endpoint: a client: {e}");
                }
            }
            Err(e) => {
                tracing::warn!("metrics endpoint: accepting a connection: {e}");
                // Out of descriptors, most likely: let some close.
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Reads one request head, answers it, closes.
fn answer(mut stream: &TcpStream, metrics: &Metrics) -> io::Result<()> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut head = vec![0; MAX_HEAD];
    let mut filled = 0;
    let response = loop {
        let n = stream.read(&mut head[filled..])?;
        if n == 0 {
            return Ok(()); // closed before a whole request
        }
        filled += n;
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut fields);
        match request.parse(&head[..filled]) {
            Ok(httparse::Status::Complete(_)) => {
                break respond(request.method.unwrap_or(""), request.path.unwrap_or(""), metrics);
            }
            Ok(httparse::Status::Partial) if filled < head.len() => {}
            _ => break Response::text(400, "bad request\n"),
        }
    };
    stream.write_all(&response)?;
    stream.shutdown(Direction::Write)
}

/// What to answer `METHOD PATH`.
fn respond(method: &str, target: &str, metrics: &Metrics) -> Vec<u8> {
    let path = target.split('?').next().unwrap_or(target);
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return Response::text(405, "method not allowed\n");
    }
    let response = match path {
        "/metrics" => Response {
            status: 200,
            // The Prometheus text exposition format.
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: metrics.render(),
        },
        "/healthz" => Response::text_body(200, "ok\n"),
        _ => Response::text_body(404, "not found\n"),
    };
    response.encode(head_only)
}

struct Response {
    status: u16,
    content_type: &'static str,
    body: String,
}

impl Response {
    fn text_body(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.to_string(),
        }
    }

    fn text(status: u16, body: &str) -> Vec<u8> {
        Response::text_body(status, body).encode(false)
    }

    fn encode(&self, head_only: bool) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            _ => "Method Not Allowed",
        };
        let allow = if self.status == 405 {
            "Allow: GET, HEAD\r\n"
        } else {
            ""
        };
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        if !head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(addr: std::net::SocketAddr, raw: &str) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.write_all(raw.as_bytes()).unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    }

    #[test]
    fn answers_metrics_healthz_and_nothing_else() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Metrics::new("thread").unwrap();
        metrics.accepted();
        let endpoint = Endpoint::on_thread(listener, metrics).unwrap();
        let scrape = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(scrape.starts_with("HTTP/1.1 200 OK\r\n"), "{scrape}");
        assert!(scrape.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        assert!(scrape.contains("bingfa_connections_accepted_total{model=\"thread\"} 1\n"));
        let health = get(addr, "GET /healthz HTTP/1.0\r\n\r\n");
        assert!(
            health.starts_with("HTTP/1.1 200 OK\r\n") && health.ends_with("\r\n\r\nok\n"),
            "{health}"
        );
        let head = get(addr, "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(
            head.ends_with("Content-Length: 3\r\nConnection: close\r\n\r\n"),
            "{head}"
        );
        assert!(get(addr, "GET /other HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 Not Found\r\n"));
        let post = get(addr, "POST /metrics HTTP/1.1\r\n\r\n");
        assert!(
            post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n") && post.contains("Allow: GET, HEAD\r\n")
        );
        assert!(get(addr, "nonsense\r\n\r\n").starts_with("HTTP/1.1 400 Bad Request\r\n"));
        drop(endpoint);
        assert!(TcpStream::connect(addr).is_err(), "stopped: the port is closed");
    }
}
