//! The counters behind `--metrics`, in memory every process of the server shares, and their
//! Prometheus text (exposition format 0.0.4).
//!
//! The counters live in an anonymous shared mapping made before any fork, so the worker
//! processes of `prefork` and the per-connection children of `process` all count into the
//! same numbers, which the endpoint reads whichever process it runs in. Updates are relaxed
//! atomic additions: a scrape may see a request counted in one series a moment before
//! another, never a count going down.

use crate::http::{Exchange, Handshake, HandshakeFailure, TlsVersion};
use std::fmt::Write as _;
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// Upper bounds of the request-duration histogram's buckets, in seconds (`+Inf` follows).
const DURATION_BOUNDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The status classes counted, 1xx to 5xx.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The protocols requests are counted by, as the access log names them.
const PROTOCOLS: [&str; 3] = ["HTTP/1.0", "HTTP/1.1", "HTTP/2.0"];

/// What is counted. All zero bytes is a valid value (every field is an atomic integer),
/// which is what a fresh anonymous mapping holds.
#[repr(C)]
#[derive(Debug)]
struct Counters {
    requests: [AtomicU64; CLASSES.len()],
    /// Requests with a request line, by protocol (an index of `PROTOCOLS`).
    protocols: [AtomicU64; PROTOCOLS.len()],
    response_bytes: AtomicU64,
    accepted: AtomicU64,
    open: AtomicI64,
    /// Requests per bucket, not cumulative: `[i]` counts durations within bound `i` and above
    /// bound `i - 1`; the last one, those above every bound.
    durations: [AtomicU64; DURATION_BOUNDS.len() + 1],
    duration_nanos: AtomicU64,
    log_dropped: AtomicU64,
    /// Completed TLS handshakes, by `TlsVersion` (its discriminant).
    handshakes: [AtomicU64; TlsVersion::ALL.len()],
    /// Failed TLS handshakes, by `HandshakeFailure` (its discriminant).
    handshake_failures: [AtomicU64; HandshakeFailure::ALL.len()],
    /// Connections closed unanswered at once: with `--proxy-protocol`, from a source not in
    /// `--trusted-proxies`.
    proxy_refused: AtomicU64,
}

/// What is kept of each name whose certificate automatic HTTPS obtains. Zero is valid.
#[repr(C)]
#[derive(Debug)]
struct CertificateCounters {
    /// When the certificate served expires, in Unix seconds; 0 until there is one.
    expiry: AtomicI64,
    /// Orders for it that failed.
    failures: AtomicU64,
}

/// The counters of one server, labelled with its model.
#[derive(Debug)]
pub(crate) struct Metrics {
    model: &'static str,
    counters: Shared<Counters>,
    /// The names of automatic HTTPS, and their counters (the same order).
    certificate_names: Vec<String>,
    certificates: Option<Shared<CertificateCounters>>,
}

impl Metrics {
    /// The counters, and for each of `names` (automatic HTTPS's), its certificate's expiry
    /// and the orders for it that failed.
    pub fn with_certificates(model: &'static str, names: &[String]) -> io::Result<Arc<Metrics>> {
        let counters = Shared::new(1)?;
        let certificates = match names.len() {
            0 => None,
            n => Some(Shared::new(n)?),
        };
        Ok(Arc::new(Metrics {
            model,
            counters,
            certificate_names: names.to_vec(),
            certificates,
        }))
    }

    fn certificate(&self, name: &str) -> Option<&CertificateCounters> {
        let at = self.certificate_names.iter().position(|n| n == name)?;
        self.certificates.as_ref().map(|slots| &slots.all()[at])
    }

    /// The certificate served for `name` now expires at `unix_seconds`.
    pub fn certificate_expires(&self, name: &str, unix_seconds: i64) {
        if let Some(counters) = self.certificate(name) {
            counters.expiry.store(unix_seconds, Relaxed);
        }
    }

    /// An order for `name`'s certificate failed.
    pub fn certificate_order_failed(&self, name: &str) {
        if let Some(counters) = self.certificate(name) {
            counters.failures.fetch_add(1, Relaxed);
        }
    }

    pub fn accepted(&self) {
        self.counters.accepted.fetch_add(1, Relaxed);
    }

    pub fn proxy_refused(&self) {
        self.counters.proxy_refused.fetch_add(1, Relaxed);
    }

    /// Counts an exchange that took `duration`.
    pub fn exchanged(&self, exchange: &Exchange<'_>, duration: Duration) {
        let counters = &self.counters;
        let class = usize::from(exchange.status / 100).clamp(1, CLASSES.len()) - 1;
        counters.requests[class].fetch_add(1, Relaxed);
        let protocol = exchange
            .request
            .and_then(|line| PROTOCOLS.iter().position(|&name| name == line.version));
        if let Some(protocol) = protocol {
            counters.protocols[protocol].fetch_add(1, Relaxed);
        }
        counters.response_bytes.fetch_add(exchange.bytes, Relaxed);
        counters.durations[bucket(duration)].fetch_add(1, Relaxed);
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        counters.duration_nanos.fetch_add(nanos, Relaxed);
    }

    /// Counts a TLS handshake, completed or failed.
    pub fn handshake(&self, outcome: Handshake<'_>) {
        let counter = match outcome {
            Handshake::Completed(session) => &self.counters.handshakes[session.version as usize],
            Handshake::Failed(reason) => &self.counters.handshake_failures[reason as usize],
        };
        counter.fetch_add(1, Relaxed);
    }

    pub fn log_dropped(&self) {
        self.counters.log_dropped.fetch_add(1, Relaxed);
    }

    /// The gauge of open connections, for the connection limit to move.
    pub fn open_gauge(self: &Arc<Metrics>) -> OpenGauge {
        OpenGauge(Arc::clone(self))
    }

    /// Every series as Prometheus text.
    pub fn render(&self) -> String {
        let c = &self.counters;
        let model = self.model;
        let mut text = String::with_capacity(4096);
        // Writing to a String cannot fail.
        let out = &mut text;
        header(
            out,
            "bingfa_requests_total",
            "counter",
            "Requests answered, by status class.",
        );
        for (class, count) in CLASSES.iter().zip(&c.requests) {
            let count = count.load(Relaxed);
            let _ = writeln!(
                out,
                "bingfa_requests_total{{model=\"{model}\",class=\"{class}\"}} {count}"
            );
        }
        let name = "bingfa_protocol_requests_total";
        header(out, name, "counter", "Requests answered, by protocol.");
        for (protocol, count) in PROTOCOLS.iter().zip(&c.protocols) {
            let count = count.load(Relaxed);
            let _ = writeln!(out, "{name}{{model=\"{model}\",protocol=\"{protocol}\"}} {count}");
        }
        let help = "Bytes of the responses sent, heads included (over HTTP/2, content only).";
        simple(
            out,
            "bingfa_response_bytes_total",
            "counter",
            help,
            model,
            c.response_bytes.load(Relaxed),
        );
        let help = "Connections accepted, those refused at --max-connections or as untrusted \
                    sources of --proxy-protocol included.";
        simple(
            out,
            "bingfa_connections_accepted_total",
            "counter",
            help,
            model,
            c.accepted.load(Relaxed),
        );
        let help = "Connections from sources not in --trusted-proxies, closed unanswered \
                    (--proxy-protocol).";
        simple(
            out,
            "bingfa_proxy_refused_total",
            "counter",
            help,
            model,
            c.proxy_refused.load(Relaxed),
        );
        let help = "Connections being served (those counted against --max-connections).";
        let open = c.open.load(Relaxed).max(0) as u64;
        simple(out, "bingfa_connections_open", "gauge", help, model, open);
        self.render_durations(out);
        let help = "Access-log lines dropped because the writer fell behind.";
        simple(
            out,
            "bingfa_access_log_dropped_total",
            "counter",
            help,
            model,
            c.log_dropped.load(Relaxed),
        );
        self.render_handshakes(out);
        self.render_certificates(out);
        text
    }

    fn render_certificates(&self, out: &mut String) {
        let Some(slots) = &self.certificates else {
            return;
        };
        let model = self.model;
        let series = self.certificate_names.iter().zip(slots.all());
        let name = "bingfa_certificate_expiry_seconds";
        let help = "When the certificate served for a name (--acme-domain) expires, in Unix time; 0 until one is obtained.";
        header(out, name, "gauge", help);
        for (domain, counters) in series.clone() {
            let expiry = counters.expiry.load(Relaxed);
            let _ = writeln!(out, "{name}{{model=\"{model}\",name=\"{domain}\"}} {expiry}");
        }
        let name = "bingfa_certificate_renewal_failures_total";
        let help = "Orders for a name's certificate (--acme-domain) that failed.";
        header(out, name, "counter", help);
        for (domain, counters) in series {
            let failures = counters.failures.load(Relaxed);
            let _ = writeln!(out, "{name}{{model=\"{model}\",name=\"{domain}\"}} {failures}");
        }
    }

    fn render_handshakes(&self, out: &mut String) {
        let c = &self.counters;
        let model = self.model;
        let name = "bingfa_tls_handshakes_total";
        header(out, name, "counter", "TLS handshakes completed, by version.");
        for (version, count) in TlsVersion::ALL.iter().zip(&c.handshakes) {
            let (version, count) = (version.name(), count.load(Relaxed));
            let _ = writeln!(out, "{name}{{model=\"{model}\",version=\"{version}\"}} {count}");
        }
        let name = "bingfa_tls_handshake_failures_total";
        header(out, name, "counter", "TLS handshakes failed, by reason.");
        for (reason, count) in HandshakeFailure::ALL.iter().zip(&c.handshake_failures) {
            let (reason, count) = (reason.name(), count.load(Relaxed));
            let _ = writeln!(out, "{name}{{model=\"{model}\",reason=\"{reason}\"}} {count}");
        }
    }

    fn render_durations(&self, out: &mut String) {
        let c = &self.counters;
        let model = self.model;
        let name = "bingfa_request_duration_seconds";
        let help = "Time from a request's first byte to its response's last byte handed to the kernel.";
        header(out, name, "histogram", help);
        let mut cumulative = 0;
        let bounds = DURATION_BOUNDS.iter().map(|b| b.to_string());
        for (le, count) in bounds.chain(["+Inf".to_string()]).zip(&c.durations) {
            cumulative += count.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{model=\"{model}\",le=\"{le}\"}} {cumulative}");
        }
        let sum = c.duration_nanos.load(Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{model=\"{model}\"}} {sum}");
        let _ = writeln!(out, "{name}_count{{model=\"{model}\"}} {cumulative}");
    }
}

/// `# HELP` and `# TYPE` of one metric.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A metric with one series, labelled with the model.
fn simple(out: &mut String, name: &str, kind: &str, help: &str, model: &str, value: u64) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name}{{model=\"{model}\"}} {value}");
}

/// The histogram bucket of `duration`.
fn bucket(duration: Duration) -> usize {
    let seconds = duration.as_secs_f64();
    DURATION_BOUNDS
        .iter()
        .position(|&bound| seconds <= bound)
        .unwrap_or(DURATION_BOUNDS.len())
}

/// Connections open, moved by the connection limit as it admits and lets go.
#[derive(Debug, Clone)]
pub(crate) struct OpenGauge(Arc<Metrics>);

impl OpenGauge {
    pub fn opened(&self) {
        self.0.counters.open.fetch_add(1, Relaxed);
    }

    pub fn closed(&self) {
        self.0.counters.open.fetch_sub(1, Relaxed);
    }
}

/// `len` values of `T` in an anonymous shared mapping: processes forked after it is made see
/// the same memory. Each process unmaps its own view when it drops it. `T` must be valid as
/// all zero bytes (the counters: only atomic integers).
#[derive(Debug)]
struct Shared<T> {
    start: NonNull<T>,
    len: usize,
}

// SAFETY: the mapping holds only atomics, which any thread may use through a shared reference.
unsafe impl<T> Send for Shared<T> {}
// SAFETY: as for Send.
unsafe impl<T> Sync for Shared<T> {}

impl<T> Shared<T> {
    fn new(len: usize) -> io::Result<Shared<T>> {
        use rustix::mm::{mmap_anonymous, MapFlags, ProtFlags};
        // SAFETY: a fresh anonymous mapping aliases nothing; it is zero-filled, which is a
        // valid `T` (see above), and page-aligned, which is aligned enough for it.
        let memory = unsafe {
            mmap_anonymous(
                std::ptr::null_mut(),
                Shared::<T>::bytes(len),
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
            )?
        };
        let start = NonNull::new(memory.cast::<T>())
            .ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        Ok(Shared { start, len })
    }

    fn bytes(len: usize) -> usize {
        size_of::<T>() * len.max(1)
    }

    fn all(&self) -> &[T] {
        // SAFETY: the mapping holds `len` initialized values from `new` until `drop`.
        unsafe { std::slice::from_raw_parts(self.start.as_ptr(), self.len) }
    }
}

impl<T> std::ops::Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the mapping is valid and initialized from `new` until `drop`, and holds at
        // least one value.
        unsafe { self.start.as_ref() }
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `new` with this length, and no reference to it
        // outlives `self` (every user borrows through `Deref` or `all`).
        let _ = unsafe { rustix::mm::munmap(self.start.as_ptr().cast(), Shared::<T>::bytes(self.len)) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::TlsSession;
    use std::time::{Instant, SystemTime};

    fn exchange(status: u16, bytes: u64) -> Exchange<'static> {
        Exchange {
            peer: None,
            tls: None,
            request: None,
            referer: None,
            user_agent: None,
            forwarded: None,
            forwarded_for: None,
            status,
            body_bytes: bytes,
            bytes,
            received: Instant::now(),
            time: SystemTime::UNIX_EPOCH,
        }
    }

    /// The value of the series `series` (name and labels, exactly as written).
    fn value(text: &str, series: &str) -> f64 {
        let line = text
            .lines()
            .find(|line| line.rsplit_once(' ').is_some_and(|(s, _)| s == series))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"));
        line.rsplit_once(' ').unwrap().1.parse().unwrap()
    }

    #[test]
    fn requests_count_by_protocol_when_they_have_a_request_line() {
        let metrics = Metrics::with_certificates("epoll", &[]).unwrap();
        metrics.exchanged(&exchange(400, 1), Duration::from_micros(50));
        let line = crate::http::RequestLine {
            method: b"GET",
            target: b"/",
            version: "HTTP/2.0",
        };
        let h2 = Exchange {
            request: Some(line),
            ..exchange(200, 1)
        };
        metrics.exchanged(&h2, Duration::from_micros(50));
        let text = metrics.render();
        let protocol = |p: &str| {
            value(
                &text,
                &format!(r#"bingfa_protocol_requests_total{{model="epoll",protocol="{p}"}}"#),
            )
        };
        assert_eq!(protocol("HTTP/2.0"), 1.0);
        assert_eq!(protocol("HTTP/1.1"), 0.0, "no request line, no protocol");
    }

    #[test]
    fn counts_render_as_prometheus_text() {
        let metrics = Metrics::with_certificates("epoll", &[]).unwrap();
        metrics.accepted();
        metrics.accepted();
        metrics.exchanged(&exchange(200, 100), Duration::from_micros(50));
        metrics.exchanged(&exchange(404, 10), Duration::from_millis(3));
        metrics.exchanged(&exchange(304, 0), Duration::from_secs(60));
        let gauge = metrics.open_gauge();
        gauge.opened();
        let text = metrics.render();
        let series = |s: &str| value(&text, s);
        assert_eq!(series(r#"bingfa_requests_total{model="epoll",class="2xx"}"#), 1.0);
        assert_eq!(series(r#"bingfa_requests_total{model="epoll",class="3xx"}"#), 1.0);
        assert_eq!(series(r#"bingfa_requests_total{model="epoll",class="5xx"}"#), 0.0);
        assert_eq!(series(r#"bingfa_response_bytes_total{model="epoll"}"#), 110.0);
        assert_eq!(series(r#"bingfa_connections_accepted_total{model="epoll"}"#), 2.0);
        assert_eq!(series(r#"bingfa_connections_open{model="epoll"}"#), 1.0);
        let bucket = |le: &str| {
            series(&format!(
                r#"bingfa_request_duration_seconds_bucket{{model="epoll",le="{le}"}}"#
            ))
        };
        assert_eq!(bucket("0.0001"), 1.0);
        assert_eq!(bucket("0.0025"), 1.0);
        assert_eq!(bucket("0.005"), 2.0);
        assert_eq!(bucket("10"), 2.0);
        assert_eq!(bucket("+Inf"), 3.0);
        assert_eq!(
            series(r#"bingfa_request_duration_seconds_count{model="epoll"}"#),
            3.0
        );
        let sum = series(r#"bingfa_request_duration_seconds_sum{model="epoll"}"#);
        assert!((sum - 60.00305).abs() < 1e-9, "{sum}");
        gauge.closed();
        assert!(metrics
            .render()
            .contains("bingfa_connections_open{model=\"epoll\"} 0\n"));
    }

    #[test]
    fn handshakes_count_by_version_and_failures_by_reason() {
        let metrics = Metrics::with_certificates("epoll", &[]).unwrap();
        let session = |version| TlsSession {
            version,
            cipher: "TLS13_AES_128_GCM_SHA256",
            sni: None,
            alpn: None,
        };
        let (tls13, tls12) = (session(TlsVersion::Tls13), session(TlsVersion::Tls12));
        metrics.handshake(Handshake::Completed(&tls13));
        metrics.handshake(Handshake::Completed(&tls13));
        metrics.handshake(Handshake::Completed(&tls12));
        metrics.handshake(Handshake::Failed(HandshakeFailure::Alert));
        metrics.handshake(Handshake::Failed(HandshakeFailure::PlaintextHttp));
        metrics.handshake(Handshake::Failed(HandshakeFailure::Alert));
        let text = metrics.render();
        let series = |s: &str| value(&text, s);
        let handshakes = |v: &str| {
            series(&format!(
                r#"bingfa_tls_handshakes_total{{model="epoll",version="{v}"}}"#
            ))
        };
        assert_eq!((handshakes("TLSv1.3"), handshakes("TLSv1.2")), (2.0, 1.0));
        let failures = |r: &str| {
            series(&format!(
                r#"bingfa_tls_handshake_failures_total{{model="epoll",reason="{r}"}}"#
            ))
        };
        assert_eq!(failures("alert"), 2.0);
        assert_eq!(failures("plaintext_http"), 1.0);
        for reason in ["peer_closed", "incompatible", "malformed", "other"] {
            assert_eq!(failures(reason), 0.0, "every reason is shown, counted or not");
        }
        assert!(text.contains("# TYPE bingfa_tls_handshake_failures_total counter\n"));
    }

    #[test]
    fn certificates_show_their_expiry_and_failed_orders_by_name() {
        let names = ["a.test".to_string(), "b.test".to_string()];
        let metrics = Metrics::with_certificates("epoll", &names).unwrap();
        metrics.certificate_expires("b.test", 1_900_000_000);
        metrics.certificate_order_failed("a.test");
        metrics.certificate_order_failed("a.test");
        metrics.certificate_order_failed("unknown.test");
        let text = metrics.render();
        let series = |s: &str| value(&text, s);
        let expiry = |n: &str| {
            series(&format!(
                r#"bingfa_certificate_expiry_seconds{{model="epoll",name="{n}"}}"#
            ))
        };
        assert_eq!((expiry("a.test"), expiry("b.test")), (0.0, 1.9e9));
        let failures = |n: &str| {
            series(&format!(
                r#"bingfa_certificate_renewal_failures_total{{model="epoll",name="{n}"}}"#
            ))
        };
        assert_eq!((failures("a.test"), failures("b.test")), (2.0, 0.0));
        assert!(!Metrics::with_certificates("epoll", &[])
            .unwrap()
            .render()
            .contains("certificate"));
    }

    #[test]
    fn the_counters_are_shared_with_a_forked_child() {
        // Forking a multi-threaded test process is safe here: the child only adds to an
        // atomic and exits, touching no lock.
        let metrics = Metrics::with_certificates("prefork", &[]).unwrap();
        // SAFETY: the child calls only async-signal-safe operations (an atomic add, _exit).
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                metrics.accepted();
                unsafe { nix::libc::_exit(0) };
            }
            nix::unistd::ForkResult::Parent { child } => {
                nix::sys::wait::waitpid(child, None).unwrap();
            }
        }
        assert!(metrics
            .render()
            .contains("bingfa_connections_accepted_total{model=\"prefork\"} 1\n"));
    }
}
