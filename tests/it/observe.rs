//! The access log (`--access-log`, `--log-format`), its reopening on SIGHUP, the metrics
//! endpoint (`--metrics`) and the log level of stderr (`--log-level`).
//!
//! Lines and counts appear a moment after the responses (the writer writes every 100 ms, and
//! an exchange is counted once its last byte is out): every check waits for them, boundedly.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use bingfa::observe::LogFormat;
use bingfa::{Config, Model};
use nix::sys::signal::Signal;

use crate::binary::{self, poll_until};
use crate::support::*;

/// The requests every access-log test makes, on one keep-alive connection (so their lines
/// come in this order), and what each line must say.
struct Logged {
    raw: String,
    line: &'static str,
    referer: Option<&'static str>,
    user_agent: Option<&'static str>,
}

fn requests() -> Vec<Logged> {
    let logged = |raw: String, line, referer, user_agent| Logged {
        raw,
        line,
        referer,
        user_agent,
    };
    vec![
        logged(
            req(
                "GET",
                "/index.html?n=1",
                "Referer: http://ref.example/page\r\nUser-Agent: bingfa-test/1.0\r\n",
            ),
            "GET /index.html?n=1 HTTP/1.1",
            Some("http://ref.example/page"),
            Some("bingfa-test/1.0"),
        ),
        logged(
            req("HEAD", "/index.html?n=2", ""),
            "HEAD /index.html?n=2 HTTP/1.1",
            None,
            None,
        ),
        logged(
            req("GET", "/missing?n=3", ""),
            "GET /missing?n=3 HTTP/1.1",
            None,
            None,
        ),
        logged(
            req("GET", "/index.html?n=4", "User-Agent: say \"hi\" \\o/\r\n"),
            "GET /index.html?n=4 HTTP/1.1",
            None,
            Some("say \"hi\" \\o/"),
        ),
        logged(
            req(
                "GET",
                "/readme.txt?n=5",
                "Range: bytes=0-9\r\nConnection: close\r\n",
            ),
            "GET /readme.txt?n=5 HTTP/1.1",
            None,
            None,
        ),
    ]
}

/// `config` with an access log in `format`, in the site's temporary folder.
fn with_log(config: &mut Config, format: LogFormat) {
    config.access_log = Some(log_path(config));
    config.log_format = format;
}

fn log_path(config: &Config) -> PathBuf {
    config
        .root
        .parent()
        .expect("the site has a parent")
        .join("access.log")
}

/// The lines of the file at `path` once it has at least `count` (waiting boundedly).
#[track_caller]
fn wait_for_lines(path: &Path, count: usize) -> Vec<String> {
    let lines = || -> Vec<String> {
        let text = fs::read_to_string(path).unwrap_or_default();
        text.lines().map(str::to_string).collect()
    };
    poll_until(SAFETY, || Some(lines()).filter(|l| l.len() >= count))
        .unwrap_or_else(|| panic!("{} has {:?}, not {count} lines", path.display(), lines()))
}

/// The status and content bytes of each response to `requests()`.
fn answers(s: &TestServer) -> Vec<(u16, usize)> {
    let raw: String = requests().iter().map(|r| r.raw.as_str()).collect();
    let mut c = s.connect();
    c.send(raw);
    requests()
        .iter()
        .map(|r| {
            let resp = if r.raw.starts_with("HEAD") {
                c.read_head_response()
            } else {
                c.read_response()
            };
            (resp.status, resp.body.len())
        })
        .collect()
}

/// `127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "REQUEST" STATUS BYTES ["REFERER" "AGENT"]`
/// as its fields: before the first quote, then every quoted part and what lies between.
fn split_common(line: &str) -> Vec<&str> {
    line.split('"').collect()
}

/// nginx's escaping, as the log must show `text`.
fn escaped(text: &str) -> String {
    text.replace('\\', "\\x5C").replace('"', "\\x22")
}

fn check_common(line: &str, request: &Logged, (status, bytes): (u16, usize), combined: bool) {
    let parts = split_common(line);
    let prefix = parts[0];
    assert!(prefix.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(prefix.ends_with(" +0000] "), "{line}");
    assert_eq!(parts[1], request.line, "{line}");
    let bytes = if bytes == 0 {
        "-".to_string()
    } else {
        bytes.to_string()
    };
    let expected_tail = format!(" {status} {bytes}");
    if !combined {
        assert_eq!(parts.len(), 3, "{line}");
        assert_eq!(parts[2], expected_tail, "{line}");
        return;
    }
    assert_eq!(parts.len(), 7, "{line}");
    assert_eq!(parts[2], format!("{expected_tail} "), "{line}");
    assert_eq!(parts[3], request.referer.map_or("-".into(), escaped), "{line}");
    assert_eq!(parts[5], request.user_agent.map_or("-".into(), escaped), "{line}");
}

fn check_json(line: &str, request: &Logged, (status, bytes): (u16, usize)) {
    let value: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    let (method, rest) = request.line.split_once(' ').unwrap();
    let (path, version) = rest.split_once(' ').unwrap();
    assert_eq!(value["remote"], "127.0.0.1", "{line}");
    assert_eq!(value["method"], method, "{line}");
    assert_eq!(value["path"], path, "{line}");
    assert_eq!(value["version"], version, "{line}");
    assert_eq!(value["status"], status, "{line}");
    assert_eq!(value["bytes"], bytes, "{line}");
    assert_eq!(value["referer"].as_str(), request.referer, "{line}");
    assert_eq!(value["user_agent"].as_str(), request.user_agent, "{line}");
    assert!(
        value["duration_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{line}"
    );
    let ts = value["ts"].as_str().unwrap_or_default();
    assert!(
        ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
        "{line}"
    );
}

model_tests! {
    /// Each format, one line per request with its request line, status and content bytes
    /// (`-` for none), the referer and agent escaped as nginx escapes them, or valid JSON.
    fn access_log_lines_match_the_requests(model m) {
        for format in [LogFormat::Common, LogFormat::Combined, LogFormat::Json] {
            let s = TestServer::start_with(m, |c| with_log(c, format));
            let path = s.site.root().parent().unwrap().join("access.log");
            let answers = answers(&s);
            assert_eq!(answers.iter().map(|a| a.0).collect::<Vec<_>>(), [200, 200, 404, 200, 206]);
            let lines = wait_for_lines(&path, requests().len());
            assert_eq!(lines.len(), requests().len(), "[{m} {format}] {lines:#?}");
            for ((line, request), answer) in lines.iter().zip(requests()).zip(answers) {
                match format {
                    LogFormat::Json => check_json(line, &request, answer),
                    _ => check_common(line, &request, answer, format == LogFormat::Combined),
                }
            }
            s.stop();
        }
    }

    /// A scrape of `/metrics` is well-formed Prometheus text whose counts match the
    /// requests made; `/healthz` says ok.
    fn metrics_count_the_requests(model m) {
        let s = TestServer::start_with(m, |c| c.metrics = Some("127.0.0.1:0".parse().unwrap()));
        let metrics = s.metrics.expect("a metrics address");
        answers(&s); // 5 requests on one connection: 4 2xx, 1 4xx
        let mut c = s.connect();
        c.send(req("GET", "/style.css", "Connection: close\r\n"));
        assert_eq!(c.read_response().status, 200);
        c.assert_closed();
        let model = m.name();
        let scraped = poll_until(SAFETY, || {
            let text = scrape(metrics, "/metrics");
            let samples = parse_exposition(&text);
            let done = samples.get(&format!("bingfa_connections_open{{model=\"{model}\"}}")) == Some(&0.0)
                && samples.get(&format!("bingfa_request_duration_seconds_count{{model=\"{model}\"}}")) == Some(&6.0);
            done.then_some(samples)
        });
        let samples = scraped.unwrap_or_else(|| panic!("[{m}] counts never settled:\n{}", scrape(metrics, "/metrics")));
        let get = |series: &str| samples.get(&series.replace("MODEL", model)).copied();
        assert_eq!(get(r#"bingfa_requests_total{model="MODEL",class="2xx"}"#), Some(5.0));
        assert_eq!(get(r#"bingfa_requests_total{model="MODEL",class="4xx"}"#), Some(1.0));
        assert_eq!(get(r#"bingfa_requests_total{model="MODEL",class="5xx"}"#), Some(0.0));
        assert_eq!(get(r#"bingfa_connections_accepted_total{model="MODEL"}"#), Some(2.0));
        assert_eq!(get(r#"bingfa_access_log_dropped_total{model="MODEL"}"#), Some(0.0));
        let bodies = (s.site.read("index.html").len() * 2 + s.site.read("style.css").len() + 10) as f64;
        let bytes = get(r#"bingfa_response_bytes_total{model="MODEL"}"#).unwrap_or_default();
        assert!(bytes > bodies, "[{m}] {bytes} response bytes, heads included, for {bodies} of content");
        let inf = get(r#"bingfa_request_duration_seconds_bucket{model="MODEL",le="+Inf"}"#);
        assert_eq!(inf, Some(6.0));
        let health = scrape(metrics, "/healthz");
        assert_eq!(health, "ok\n");
        s.stop();
    }

    /// Over HTTPS, with a JSON log and metrics: a request's line carries its TLS session;
    /// plain HTTP sent to the HTTPS port (answered 400, logged with its client) and a client
    /// that does not trust the certificate (it sends an alert) are counted as failed
    /// handshakes by reason, beside the completed one.
    fn tls_sessions_are_logged_and_handshakes_counted(model m) {
        let s = TestServer::start_with(m, |c| {
            with_log(c, LogFormat::Json);
            c.metrics = Some("127.0.0.1:0".parse().unwrap());
            c.tls_cert = Some(tls_fixture("cert.pem"));
            c.tls_key = Some(tls_fixture("key.pem"));
        });
        let answer = https_get(s.addr, true).unwrap_or_else(|e| panic!("[{m}] {e}"));
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "[{m}] {answer}");
        let mut c = s.connect();
        c.send(req("GET", "/readme.txt", ""));
        assert_eq!(c.read_response().status, 400, "[{m}] plain HTTP to the HTTPS port");
        let refused = https_get(s.addr, false);
        assert!(refused.is_err(), "[{m}] a client without the CA was served: {refused:?}");

        let lines = wait_for_lines(&s.site.root().parent().unwrap().join("access.log"), 2);
        let values: Vec<serde_json::Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        let [tls, plain] = ["/readme.txt", "-"].map(|path| {
            values.iter().find(|v| v["path"].as_str().unwrap_or("-") == path)
                .unwrap_or_else(|| panic!("[{m}] no line for {path}: {lines:#?}"))
        });
        assert_eq!((&tls["status"], &tls["remote"]), (&200.into(), &"127.0.0.1".into()), "[{m}] {tls}");
        assert_eq!(tls["tls_version"], "TLSv1.3", "[{m}] {tls}");
        assert!(tls["cipher"].as_str().is_some_and(|c| c.starts_with("TLS13_")), "[{m}] {tls}");
        assert_eq!((&tls["sni"], &tls["alpn"]), (&"localhost".into(), &"http/1.1".into()), "[{m}] {tls}");
        assert_eq!((&plain["status"], &plain["remote"]), (&400.into(), &"127.0.0.1".into()), "[{m}] {plain}");
        for key in ["tls_version", "cipher", "sni", "alpn"] {
            assert_eq!(plain[key], serde_json::Value::Null, "[{m}] {plain}");
        }

        let metrics = s.metrics.expect("a metrics address");
        let model = m.name();
        let series = |text: &str, name: &str, label: &str| {
            parse_exposition(text).get(&format!("bingfa_tls_{name}{{model=\"{model}\",{label}}}")).copied()
        };
        let expected = [
            ("handshakes_total", r#"version="TLSv1.3""#, 1.0),
            ("handshakes_total", r#"version="TLSv1.2""#, 0.0),
            ("handshake_failures_total", r#"reason="plaintext_http""#, 1.0),
            ("handshake_failures_total", r#"reason="alert""#, 1.0),
            ("handshake_failures_total", r#"reason="malformed""#, 0.0),
        ];
        let settled = poll_until(SAFETY, || {
            let text = scrape(metrics, "/metrics");
            let counted = expected.iter().all(|(name, label, n)| series(&text, name, label) == Some(*n));
            counted.then_some(())
        });
        assert!(settled.is_some(), "[{m}] handshakes never counted:\n{}", scrape(metrics, "/metrics"));
        s.stop();
    }
}

/// A GET of `/readme.txt` over TLS on a fresh connection by a rustls client (TLS 1.3 or 1.2,
/// SNI `localhost`, ALPN `http/1.1`) that trusts the test CA if `trusting`: the answer, up to
/// the server's close, or why the client gave up.
fn https_get(addr: std::net::SocketAddr, trusting: bool) -> std::io::Result<String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use std::io::{Read, Write};
    use std::sync::Arc;
    let mut roots = rustls::RootCertStore::empty();
    if trusting {
        let ca = fs::read(tls_fixture("ca.pem")).unwrap();
        roots.add(CertificateDer::from_pem_slice(&ca).unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let socket = std::net::TcpStream::connect(addr)?;
    socket.set_read_timeout(Some(SAFETY))?;
    let mut tls = rustls::StreamOwned::new(conn, socket);
    // A client that refuses the certificate sends its alert as it fails (rustls's last write).
    tls.write_all(b"GET /readme.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer)?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// `GET path` from the metrics endpoint: the body of its 200 answer.
fn scrape(addr: std::net::SocketAddr, path: &str) -> String {
    let mut c = Client::connect(addr);
    c.send(req("GET", path, ""));
    let resp = c.read_response();
    assert_eq!(resp.status, 200, "{path}: {}", resp.summary());
    if path == "/metrics" {
        assert_eq!(
            resp.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
    }
    String::from_utf8(resp.body).expect("UTF-8")
}

/// Parses Prometheus text (format 0.0.4) into series → value, checking as it goes: every
/// sample belongs to a metric announced by `# HELP` and `# TYPE` lines before it, each metric
/// is announced once, and a histogram's buckets are cumulative, end in `+Inf` and match its
/// `_count`.
fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    let mut helped: Vec<&str> = Vec::new();
    let mut types: BTreeMap<&str, &str> = BTreeMap::new();
    let mut previous_bucket: Option<f64> = None;
    for line in text.lines() {
        if let Some(help) = line.strip_prefix("# HELP ") {
            let (name, words) = help.split_once(' ').expect("HELP NAME TEXT");
            assert!(!words.is_empty() && !helped.contains(&name), "{line}");
            helped.push(name);
            continue;
        }
        if let Some(kind) = line.strip_prefix("# TYPE ") {
            let (name, kind) = kind.split_once(' ').expect("TYPE NAME KIND");
            assert_eq!(helped.last(), Some(&name), "TYPE after its HELP: {line}");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(types.insert(name, kind).is_none(), "{line}");
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(series.ends_with('}') && series.contains("model=\""), "{line}");
        let metric = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|base| types.get(base) == Some(&"histogram"))
            })
            .unwrap_or(name);
        let kind = types
            .get(metric)
            .unwrap_or_else(|| panic!("sample before its TYPE: {line}"));
        if name.ends_with("_total") || *kind == "gauge" {
            assert!(value >= 0.0, "{line}");
        }
        if name.ends_with("_bucket") {
            assert!(
                previous_bucket.is_none_or(|p| p <= value),
                "buckets must be cumulative: {line}"
            );
            previous_bucket = Some(value);
            if series.contains("le=\"+Inf\"") {
                let count = format!(
                    "{metric}_count{}",
                    &series[series.find('{').unwrap()..].replace(",le=\"+Inf\"", "")
                );
                assert!(
                    text.contains(&format!("{count} {value}\n")),
                    "+Inf bucket and {count} differ"
                );
                previous_bucket = None;
            }
        }
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "repeated: {line}"
        );
    }
    samples
}

// ---------------------------------------------------------------------------
// Through the binary
// ---------------------------------------------------------------------------

/// The binary with `extra` flags on a fresh site, for `model`.
fn start_binary(model: Model, site: &Site, extra: &[&str]) -> binary::Bingfa {
    let mut config = Config::new(site.root());
    config.model = model;
    config.workers = 2;
    let mut args = flags(&config);
    args.extend(extra.iter().map(|a| a.to_string()));
    binary::start(&args, None)
}

/// A GET of `target` on a fresh connection, answered 200.
fn fetch(addr: std::net::SocketAddr, target: &str) {
    let mut c = Client::connect(addr);
    c.send(req("GET", target, "Connection: close\r\n"));
    assert_eq!(c.read_response().status, 200, "{target}");
}

/// logrotate's `create` then `postrotate kill -HUP`: the file is renamed, SIGHUP sent;
/// lines before go to the renamed file, lines after to a new file at the path, none lost.
/// For the three ways a process writes: a writer thread (reactor), a writer per worker that
/// the parent passes SIGHUP on to (prefork), and a write per line (process).
#[test]
fn sighup_reopens_the_access_log() {
    for model in [Model::Reactor, Model::Prefork, Model::Process] {
        let site = Site::new();
        let path = site.root().parent().unwrap().join("access.log");
        let rotated = path.with_extension("log.1");
        let mut bingfa = start_binary(model, &site, &["--access-log", path.to_str().unwrap()]);
        for n in 0..3 {
            fetch(bingfa.addr, &format!("/readme.txt?before={n}"));
        }
        wait_for_lines(&path, 3);
        fs::rename(&path, &rotated).expect("rename the log");
        bingfa.signal(Signal::SIGHUP);
        // The parent of prefork passes SIGHUP on a moment later: until the new file shows a
        // line, a worker may still write to the renamed one, which loses nothing.
        let mut after = 0;
        let reopened = poll_until(SAFETY, || {
            fetch(bingfa.addr, &format!("/readme.txt?after={after}"));
            after += 1;
            path.exists().then_some(())
        });
        assert!(reopened.is_some(), "[{model}] no new log file after SIGHUP");
        for _ in 0..3 {
            fetch(bingfa.addr, &format!("/readme.txt?after={after}"));
            after += 1;
        }
        let total = 3 + after;
        let settled = poll_until(SAFETY, || {
            let count = |p: &Path| fs::read_to_string(p).unwrap_or_default().lines().count();
            (count(&path) + count(&rotated) == total).then_some(())
        });
        let old = fs::read_to_string(&rotated).unwrap();
        let new = fs::read_to_string(&path).unwrap();
        assert!(
            settled.is_some(),
            "[{model}] {total} requests; logged:\n{old}---\n{new}"
        );
        for n in 0..3 {
            assert!(
                old.contains(&format!("?before={n} ")),
                "[{model}] before={n} not in the old file:\n{old}"
            );
        }
        assert!(
            !new.contains("?before="),
            "[{model}] the new file has old lines:\n{new}"
        );
        assert!(
            new.contains(&format!("?after={} ", after - 1)),
            "[{model}] the last line is not in the new file:\n{new}"
        );
        bingfa
            .stop_with(Signal::SIGTERM)
            .unwrap_or_else(|e| panic!("[{model}] {e}"));
    }
}

/// Without an access log SIGHUP changes nothing: the server goes on, and stops as usual.
#[test]
fn sighup_without_an_access_log_is_ignored() {
    for model in [Model::Reactor, Model::Prefork] {
        let site = Site::new();
        let mut bingfa = start_binary(model, &site, &[]);
        bingfa.signal(Signal::SIGHUP);
        fetch(bingfa.addr, "/readme.txt");
        bingfa
            .stop_with(Signal::SIGTERM)
            .unwrap_or_else(|e| panic!("[{model}] {e}"));
    }
}

/// `--access-log -`: the lines go to stdout, after the start line.
#[test]
fn access_log_to_stdout() {
    let site = Site::new();
    let root = site.root();
    let mut child = Command::new(binary::BIN)
        .args([
            "-b",
            "127.0.0.1:0",
            "-w",
            "1",
            "--access-log",
            "-",
            "--log-format",
            "common",
        ])
        .arg(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn bingfa");
    let (lines, read) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let start = read.recv_timeout(SAFETY).expect("a start line");
    fetch(binary::url_addr(&start), "/readme.txt?to=stdout");
    let logged = read.recv_timeout(SAFETY).expect("an access-log line on stdout");
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let status = poll_until(SAFETY, || child.try_wait().ok().flatten());
    let _ = child.kill();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    assert!(
        logged.starts_with("127.0.0.1 - - [")
            && logged.contains("\"GET /readme.txt?to=stdout HTTP/1.1\" 200 "),
        "{logged}"
    );
}

/// `--log-level`: `info` (the default) says where the metrics are and that it stopped;
/// `debug` says more; `error` says nothing on a normal run.
#[test]
fn log_level_sets_what_stderr_says() {
    let run = |extra: &[&str]| {
        let site = Site::new();
        let mut bingfa = start_binary(Model::Reactor, &site, extra);
        fetch(bingfa.addr, "/readme.txt");
        bingfa
            .stop_with(Signal::SIGTERM)
            .unwrap_or_else(|e| panic!("{extra:?}: {e}"));
        bingfa.stderr_now()
    };
    let metrics = ["--metrics", "127.0.0.1:0"];
    let info = run(&metrics);
    assert!(
        info.contains(" INFO ") && info.contains("metrics at http://127.0.0.1:"),
        "{info}"
    );
    assert!(
        info.lines().last().is_some_and(|l| l.ends_with("stopped")),
        "{info}"
    );
    assert!(!info.contains("DEBUG"), "{info}");
    let debug = run(&["--log-level", "debug"]);
    assert!(debug.contains(" DEBUG "), "{debug}");
    let quiet = run(&["--log-level", "error", metrics[0], metrics[1]]);
    assert_eq!(quiet, "", "errors only");
}

/// A log that cannot be opened, or a metrics port in use, stops the start with one line.
#[test]
fn bad_log_or_metrics_address_is_one_line() {
    let site = Site::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let missing = site.root().join("no/such/folder/access.log");
    for (extra, words) in [
        (
            ["--access-log", missing.to_str().unwrap()],
            "cannot open the access log",
        ),
        (["--metrics", &taken], "cannot serve metrics on"),
    ] {
        let mut config = Config::new(site.root());
        config.workers = 1;
        let mut args = flags(&config);
        args.extend(extra.iter().map(|a| a.to_string()));
        binary::fails_in_one_line(&args, words);
    }
}
