//! Real clients against every model, run as child processes: curl, wget, ApacheBench, h2load,
//! Python's urllib and headless Chromium, and over HTTPS (trusting the test CA of pki.rs)
//! curl, openssl s_client, urllib, wget and Chromium. Over HTTP/2: curl, nghttp and h2load both
//! on plaintext (h2c, by prior knowledge) and over TLS (ALPN h2), and Chromium over HTTPS
//! (httpwg's conformance cases are in conformance.rs). `.ci/run` installs them from Debian's
//! packages; on a machine without one, its tests pass after a one-line note (`skipped: wget not
//! installed`), except under `CI=true`, where a missing client fails the test.
//!
//! Every server here also serves `tests/fixture/browser/` as `/browser/`: a page whose
//! stylesheet, script and image must all load, and whose pages link to each other (for
//! `wget -r`).

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::binary::poll_until;
use crate::pki::server_spki_sha256;
use crate::support::*;

/// A client still running after this long is killed, with whatever it started, and the test
/// fails. A safety net against hangs: every run here takes a few seconds at most.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Requests and concurrent connections of the load tools (ab, h2load): enough to reuse every
/// connection many times, small enough to take well under a second.
const LOAD_REQUESTS: u32 = 2000;
const LOAD_CONNECTIONS: u32 = 10;
/// h2load over HTTP/2: more requests, since each connection has this many in flight at once
/// (still under a second on a debug build).
const H2_LOAD_REQUESTS: u32 = 10_000;
const H2_LOAD_STREAMS: u32 = 10;

// ---------------------------------------------------------------------------
// Client programs and running them
// ---------------------------------------------------------------------------

/// An installed client program.
pub(crate) struct Program {
    path: PathBuf,
}

/// The client program `name` from `PATH`. If it is not installed: under `CI=true` the test
/// fails (CI installs every client); otherwise `None`, after a one-line note on stderr, so
/// `cargo test` passes on a machine without it.
pub(crate) fn client(name: &str) -> Option<Program> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
    });
    match found {
        Some(path) => Some(Program { path }),
        None if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{name} is not installed, and CI=true: .ci/run should have installed it")
        }
        None => {
            // Straight to stderr: the test harness would capture `eprintln!`.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "skipped: {name} not installed");
            None
        }
    }
}

/// How a client run ended.
pub(crate) struct Ran {
    /// The command line, for messages.
    command: String,
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Program {
    /// Where it is installed: for a program run other than through `run` (a server under
    /// valgrind, in trace.rs).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Runs the program with `args` (stdin empty, proxies unset) and waits for it, at most
    /// `CLIENT_TIMEOUT`: past that it is killed with its whole process group and the test
    /// fails. Whatever it leaves running when it exits is killed too.
    pub(crate) fn run(&self, args: &[&str]) -> Ran {
        self.run_with(args, Stdio::null())
    }

    /// As `run`, with `input` on its stdin.
    pub(crate) fn run_fed(&self, args: &[&str], input: &[u8]) -> Ran {
        let file = tempfile::tempfile().expect("temp file for stdin");
        (&file).write_all(input).expect("write stdin");
        let mut file = file;
        std::io::Seek::rewind(&mut file).expect("rewind stdin");
        self.run_with(args, Stdio::from(file))
    }

    fn run_with(&self, args: &[&str], stdin: Stdio) -> Ran {
        let out = tempfile::tempdir().expect("temp dir for output");
        let (stdout_path, stderr_path) = (out.path().join("stdout"), out.path().join("stderr"));
        let mut cmd = Command::new(&self.path);
        cmd.args(args)
            .stdin(stdin)
            // Files, not pipes: nothing can block on a full pipe, or keep one open after exit.
            .stdout(fs::File::create(&stdout_path).expect("create stdout file"))
            .stderr(fs::File::create(&stderr_path).expect("create stderr file"))
            .process_group(0);
        for proxy in [
            "http_proxy",
            "HTTP_PROXY",
            "https_proxy",
            "HTTPS_PROXY",
            "all_proxy",
            "ALL_PROXY",
        ] {
            cmd.env_remove(proxy);
        }
        // SAFETY: prctl(2) is a single system call, safe between fork and exec. If the test
        // process dies, the client dies too.
        unsafe {
            cmd.pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from));
        }
        let command = format!("{} {args:?}", self.path.display());
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {command}: {e}"));
        let group = Pid::from_raw(i32::try_from(child.id()).expect("pid fits i32"));
        let status = poll_until(CLIENT_TIMEOUT, || child.try_wait().expect("try_wait"));
        // Its helpers (Chromium's renderer, say) go too, whether it exited or not.
        let _ = killpg(group, Signal::SIGKILL);
        let read = |path: &Path| String::from_utf8_lossy(&fs::read(path).unwrap_or_default()).into_owned();
        let (stdout, stderr) = (read(&stdout_path), read(&stderr_path));
        let Some(status) = status else {
            let _ = child.wait();
            panic!(
                "{command} was still running after {:?} and was killed\nstdout: {}\nstderr: {}",
                started.elapsed(),
                tail(&stdout),
                tail(&stderr)
            );
        };
        Ran {
            command,
            status,
            stdout,
            stderr,
        }
    }
}

impl Ran {
    /// Asserts exit status 0; gives `self` back for the checks that follow.
    #[track_caller]
    pub(crate) fn success(self) -> Ran {
        assert!(
            self.status.success(),
            "{} ended with {}\n{}",
            self.command,
            self.status,
            self.output()
        );
        self
    }

    /// Its output, shortened, for messages.
    pub(crate) fn output(&self) -> String {
        format!("stdout: {}\nstderr: {}", tail(&self.stdout), tail(&self.stderr))
    }
}

/// The last 3,000 bytes of `text` (Chromium is verbose on stderr).
pub(crate) fn tail(text: &str) -> &str {
    let mut start = text.len().saturating_sub(3000);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

// ---------------------------------------------------------------------------
// The server and the browser fixture
// ---------------------------------------------------------------------------

fn browser_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture/browser")
}

/// Every file under `dir`, as sorted relative paths with `/` between folders.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
        let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.expect("dir entry");
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if entry.file_type().expect("file type").is_dir() {
                walk(&entry.path(), &format!("{name}/"), out);
            } else {
                out.push(name);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out);
    out.sort();
    out
}

/// Workers of the `pool` model here. A pool worker serves one connection for its whole life,
/// and the clients keep theirs open (ab and h2load 10, Chromium several): with the usual 2
/// workers the rest would wait for the idle timeout, as the README says of `pool`.
const POOL_WORKERS: usize = 16;

/// A server of `model` on the usual fixture site, with `tests/fixture/browser/` copied in as
/// `browser/`.
fn serve(model: bingfa::Model) -> TestServer {
    serve_with(model, |_| {})
}

/// As `serve`, after `adjust` has changed the config.
fn serve_with(model: bingfa::Model, adjust: impl FnOnce(&mut bingfa::Config)) -> TestServer {
    let add_browser = |site: &Site| {
        let from = browser_fixture();
        for rel in files_under(&from) {
            let bytes = fs::read(from.join(&rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"));
            site.write(&format!("browser/{rel}"), &bytes);
        }
    };
    TestServer::start_prepared(model, add_browser, |config| {
        if model == bingfa::Model::Pool {
            config.workers = POOL_WORKERS;
        }
        adjust(config);
    })
}

fn url(s: &TestServer, path: &str) -> String {
    format!("http://{}{path}", s.addr)
}

/// How a client reaches `s`: over plain HTTP, or over HTTPS trusting the test CA.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Over {
    Http,
    Https,
}

impl Over {
    /// The URL of `path` on `s`.
    fn url(self, s: &TestServer, path: &str) -> String {
        let scheme = match self {
            Over::Http => "http",
            Over::Https => "https",
        };
        format!("{scheme}://{}{path}", s.addr)
    }
}

/// curl with `args` then the URL of `path` on `s`, over `over`.
fn curl_to(curl: &Program, s: &TestServer, over: Over, args: &[&str], path: &str) -> Ran {
    let ca = tls_fixture("ca.pem");
    let trust = match over {
        Over::Http => vec![],
        Over::Https => vec!["--cacert", arg(&ca)],
    };
    let target = over.url(s, path);
    let all: Vec<&str> = trust
        .into_iter()
        .chain(args.iter().copied())
        .chain([target.as_str()])
        .collect();
    curl_run(curl, &all)
}

/// Asserts that the file at `path` holds exactly `expected`, without dumping megabytes.
#[track_caller]
fn assert_file(path: &Path, expected: &[u8]) {
    let got = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    if got != expected {
        let first_diff = got.iter().zip(expected).position(|(a, b)| a != b);
        panic!(
            "{}: {} bytes, expected {}; first differing offset {first_diff:?}",
            path.display(),
            got.len(),
            expected.len()
        );
    }
}

/// The value after `label` on the line of `text` that starts with it (ab's report).
#[track_caller]
fn field<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|line| line.strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no line {label:?} in:\n{text}"))
}

/// `path` as an argument (the temporary directories have UTF-8 names).
pub(crate) fn arg(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

// ---------------------------------------------------------------------------
// curl
// ---------------------------------------------------------------------------

/// Writes the status and the body's length after the transfer.
const STATUS_AND_SIZE: &str = "%{http_code} %{size_download}";

/// curl with `args`, `-q` first (no `~/.curlrc`), quiet but for errors.
fn curl_run(curl: &Program, args: &[&str]) -> Ran {
    let all: Vec<&str> = ["-q", "--silent", "--show-error"]
        .iter()
        .chain(args)
        .copied()
        .collect();
    curl.run(&all).success()
}

/// A plain GET, byte-exact: a file sent with sendfile (1 MiB) and one from the memory cache.
fn curl_get(s: &TestServer, curl: &Program) {
    let dir = tempfile::tempdir().unwrap();
    for rel in ["big.bin", "browser/style.css"] {
        let out = dir.path().join(rel.replace('/', "_"));
        let ran = curl_run(
            curl,
            &[
                "-o",
                arg(&out),
                "-w",
                STATUS_AND_SIZE,
                &url(s, &format!("/{rel}")),
            ],
        );
        let expected = s.site.read(rel);
        assert_eq!(ran.stdout, format!("200 {}", expected.len()), "{}", ran.output());
        assert_file(&out, &expected);
    }
}

/// With `--clean-urls`, curl following redirects (`-L`) from a page's `.html` URL ends at its
/// clean URL, the query kept, after one redirect, with the page.
fn curl_clean_urls(s: &TestServer, curl: &Program) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("page");
    let ran = curl_run(
        curl,
        &[
            "-L",
            "-o",
            arg(&out),
            "-w",
            "%{http_code} %{num_redirects} %{url_effective}",
            &url(s, "/browser/pages/about.html?from=old"),
        ],
    );
    let clean = url(s, "/browser/pages/about?from=old");
    assert_eq!(ran.stdout, format!("200 1 {clean}"), "{}", ran.output());
    assert_file(&out, &s.site.read("browser/pages/about.html"));
}

/// `curl -C -` finishes a download whose first part is already on disk: a 206 for the rest,
/// and the file is whole.
fn curl_resume(s: &TestServer, curl: &Program, over: Over) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("big.bin");
    let full = s.site.read("big.bin");
    let have = 300_000;
    fs::write(&out, &full[..have]).unwrap();
    let args = ["-C", "-", "-o", arg(&out), "-w", STATUS_AND_SIZE];
    let ran = curl_to(curl, s, over, &args, "/big.bin");
    assert_eq!(
        ran.stdout,
        format!("206 {}", full.len() - have),
        "{}",
        ran.output()
    );
    assert_file(&out, &full);
}

/// `curl -z FILE` (If-Modified-Since: FILE's mtime): a 304 without a body when the local copy is
/// newer than the served file, the file (200) when it is older.
fn curl_conditional(s: &TestServer, curl: &Program, over: Over) {
    let rel = "browser/index.html";
    s.site.set_mtime(rel, long_ago());
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local-copy");
    fs::write(&local, b"an older download").unwrap();
    let day = Duration::from_secs(24 * 60 * 60);
    for (local_mtime, status) in [(long_ago() + day, 304), (long_ago() - day, 200)] {
        fs::File::options()
            .write(true)
            .open(&local)
            .and_then(|f| f.set_modified(local_mtime))
            .unwrap();
        let out = dir.path().join(format!("got-{status}"));
        let args = ["-z", arg(&local), "-o", arg(&out), "-w", STATUS_AND_SIZE];
        let ran = curl_to(curl, s, over, &args, &format!("/{rel}"));
        if status == 304 {
            assert_eq!(ran.stdout, "304 0", "local copy newer: {}", ran.output());
            assert!(fs::read(&out).unwrap_or_default().is_empty(), "a 304 has no body");
        } else {
            let expected = s.site.read(rel);
            assert_eq!(
                ran.stdout,
                format!("200 {}", expected.len()),
                "local copy older: {}",
                ran.output()
            );
            assert_file(&out, &expected);
        }
    }
}

/// Two URLs in one curl run share one connection: the second transfer makes no new connect
/// (`%{num_connects}` 0) and leaves from the same local port. (curl -v says "Re-using existing
/// connection" or, from 8.x, "Reusing existing connection".)
fn curl_reuse(s: &TestServer, curl: &Program) {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("style.css"), dir.path().join("square.png"));
    let ran = curl_run(
        curl,
        &[
            "--verbose",
            "-o",
            arg(&first),
            "-o",
            arg(&second),
            "-w",
            "%{num_connects} %{local_port}\n",
            &url(s, "/browser/style.css"),
            &url(s, "/browser/square.png"),
        ],
    );
    let lines: Vec<(&str, &str)> = ran
        .stdout
        .lines()
        .map(|line| line.split_once(' ').expect("NUM_CONNECTS PORT"))
        .collect();
    assert!(
        matches!(lines[..], [("1", port1), ("0", port2)] if port1 == port2),
        "expected one connect, then the same connection again: {:?}\n{}",
        lines,
        ran.output()
    );
    assert_file(&first, &s.site.read("browser/style.css"));
    assert_file(&second, &s.site.read("browser/square.png"));
}

// ---------------------------------------------------------------------------
// wget
// ---------------------------------------------------------------------------

/// `wget -r -np` mirrors `/browser/` (pages, stylesheet, script, image, a subfolder) byte-exact,
/// and fetches nothing outside it (index.html links to `../readme.txt`).
fn wget_mirror(s: &TestServer, wget: &Program) {
    let dir = tempfile::tempdir().unwrap();
    let ran = wget
        .run(&[
            "--no-config",
            "--no-verbose",
            "-r",
            "-np",
            "-nH",
            "--cut-dirs=1",
            "-P",
            arg(dir.path()),
            &url(s, "/browser/"),
        ])
        .success();
    let fixture = browser_fixture();
    let expected = files_under(&fixture);
    assert_eq!(
        files_under(dir.path()),
        expected,
        "wget -r saved another set of files\n{}",
        ran.output()
    );
    for rel in expected {
        assert_file(&dir.path().join(&rel), &fs::read(fixture.join(&rel)).unwrap());
    }
}

/// `wget --ca-certificate` over HTTPS: a 1 MiB file (read and encrypted in pieces) and a small
/// one from memory, byte-exact. `--no-hsts`: the server sends Strict-Transport-Security, which
/// wget would otherwise note in `~/.wget-hsts`.
fn wget_https(s: &TestServer, wget: &Program) {
    let dir = tempfile::tempdir().unwrap();
    let ca = tls_fixture("ca.pem");
    let url = |path: &str| format!("https://{}{path}", s.addr);
    let ran = wget
        .run(&[
            "--no-config",
            "--no-verbose",
            "--no-hsts",
            &format!("--ca-certificate={}", arg(&ca)),
            "-P",
            arg(dir.path()),
            &url("/big.bin"),
            &url("/readme.txt"),
        ])
        .success();
    assert_eq!(
        files_under(dir.path()),
        ["big.bin", "readme.txt"],
        "{}",
        ran.output()
    );
    for rel in ["big.bin", "readme.txt"] {
        assert_file(&dir.path().join(rel), &s.site.read(rel));
    }
}

// ---------------------------------------------------------------------------
// ApacheBench and h2load
// ---------------------------------------------------------------------------

/// `ab -k`: HTTP/1.0 with `Connection: keep-alive`; every request completes, none fails, and
/// every response keeps its connection open.
fn ab_keep_alive(s: &TestServer, ab: &Program) {
    let (n, c) = (LOAD_REQUESTS.to_string(), LOAD_CONNECTIONS.to_string());
    let path = "/browser/index.html";
    let ran = ab
        .run(&["-q", "-k", "-n", &n, "-c", &c, "-s", "30", &url(s, path)])
        .success();
    let report = &ran.stdout;
    assert_eq!(field(report, "Complete requests:"), n, "{report}");
    assert_eq!(field(report, "Failed requests:"), "0", "{report}");
    assert_eq!(field(report, "Keep-Alive requests:"), n, "{report}");
    assert!(!report.contains("Non-2xx responses"), "{report}");
    let len = s.site.read(&path[1..]).len();
    assert_eq!(
        field(report, "Document Length:"),
        format!("{len} bytes"),
        "{report}"
    );
}

/// `h2load --h1`: HTTP/1.1 keep-alive; every request succeeds with a 2xx.
fn h2load_h1(s: &TestServer, h2load: &Program) {
    let (n, c) = (LOAD_REQUESTS.to_string(), LOAD_CONNECTIONS.to_string());
    let ran = h2load
        .run(&["--h1", "-n", &n, "-c", &c, &url(s, "/browser/style.css")])
        .success();
    assert_all_succeeded(&ran.stdout, &n);
}

/// h2load over HTTP/2, h2c by prior knowledge or h2 by ALPN: several requests in flight on
/// each connection; every request succeeds with a 2xx.
fn h2load_h2(s: &TestServer, h2load: &Program, over: Over) {
    let (n, c, m) = (
        H2_LOAD_REQUESTS.to_string(),
        LOAD_CONNECTIONS.to_string(),
        H2_LOAD_STREAMS.to_string(),
    );
    let target = over.url(s, "/browser/style.css");
    let ran = h2load.run(&["-n", &n, "-c", &c, "-m", &m, &target]).success();
    let report = &ran.stdout;
    let protocol = match over {
        Over::Http => "h2c",
        Over::Https => "h2",
    };
    assert_eq!(field(report, "Application protocol:"), protocol, "{report}");
    assert_all_succeeded(report, &n);
}

/// h2load's `report` says that all `n` requests succeeded, each with a 2xx.
#[track_caller]
fn assert_all_succeeded(report: &str, n: &str) {
    let requests = field(report, "requests:");
    let all_fine = format!("{n} total, {n} started, {n} done, {n} succeeded, 0 failed, 0 errored");
    assert!(requests.starts_with(&all_fine), "requests: {requests}\n{report}");
    let codes = field(report, "status codes:");
    assert_eq!(codes, format!("{n} 2xx, 0 3xx, 0 4xx, 0 5xx"), "{report}");
}

// ---------------------------------------------------------------------------
// nghttp
// ---------------------------------------------------------------------------

/// `nghttp -a` fetches the browser fixture's page, then the stylesheet, script and image it
/// names, as streams of one HTTP/2 connection (h2c by prior knowledge, or h2 by ALPN: nghttp
/// checks no certificate, curl does that): all four 200, each of its file's length.
fn nghttp_assets(s: &TestServer, nghttp: &Program, over: Over) {
    let ran = nghttp
        .run(&["-a", "-n", "-s", "-v", &over.url(s, "/browser/")])
        .success();
    if over == Over::Https {
        assert!(
            ran.stdout.contains("The negotiated protocol: h2\n"),
            "{}",
            ran.output()
        );
    }
    let mut got = nghttp_statistics(&ran);
    got.sort();
    let mut expected: Vec<(String, String, String)> = ["index.html", "style.css", "app.js", "square.png"]
        .iter()
        .map(|rel| {
            let path = format!("/browser/{}", rel.trim_start_matches("index.html"));
            let len = s.site.read(&format!("browser/{rel}")).len();
            (path, "200".into(), len.to_string())
        })
        .collect();
    expected.sort();
    assert_eq!(got, expected, "{}", ran.output());
}

/// The rows of nghttp's `-s` table, after its header line (`id  responseEnd requestStart
/// process code size request path`): each request's path, status and body length.
fn nghttp_statistics(ran: &Ran) -> Vec<(String, String, String)> {
    let table = ran
        .stdout
        .split_once("request path\n")
        .unwrap_or_else(|| panic!("no statistics table:\n{}", ran.output()))
        .1;
    table
        .lines()
        .map(|row| match row.split_whitespace().collect::<Vec<_>>()[..] {
            [_id, _end, _start, _process, code, size, path] => (path.into(), code.into(), size.into()),
            _ => panic!("not a statistics row: {row:?}\n{}", ran.output()),
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Python
// ---------------------------------------------------------------------------

/// Fetches BASE/big.bin into OUT, printing status, length and Content-Type; then a missing
/// file, which must raise HTTPError. Given a CAFILE, Python's `ssl` trusts it alone: its
/// default context checks the certificate's chain and that it names the host (here an IP
/// address, 127.0.0.1).
const URLLIB_SCRIPT: &str = r#"
import ssl, sys, urllib.error, urllib.request
base, out = sys.argv[1], sys.argv[2]
context = ssl.create_default_context(cafile=sys.argv[3]) if len(sys.argv) > 3 else None
with urllib.request.urlopen(base + "/big.bin", timeout=30, context=context) as r:
    body = r.read()
    print(r.status, len(body), r.headers["Content-Type"])
with open(out, "wb") as f:
    f.write(body)
try:
    urllib.request.urlopen(base + "/no-such-file.txt", timeout=30, context=context)
    print("no error for a missing file")
except urllib.error.HTTPError as e:
    print("HTTPError", e.code)
"#;

/// urllib over plain HTTP, or over HTTPS trusting the CA at `ca`.
fn python_urllib(s: &TestServer, python: &Program, ca: Option<&Path>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("big.bin");
    let base = match ca {
        Some(_) => format!("https://{}", s.addr),
        None => url(s, ""),
    };
    let mut args = vec!["-c", URLLIB_SCRIPT, &base, arg(&out)];
    args.extend(ca.map(arg));
    let ran = python.run(&args).success();
    let expected = s.site.read("big.bin");
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            &format!("200 {} application/octet-stream", expected.len()),
            "HTTPError 404"
        ],
        "{}",
        ran.output()
    );
    assert_file(&out, &expected);
}

// ---------------------------------------------------------------------------
// Chromium
// ---------------------------------------------------------------------------

/// What app.js writes into the page once style.css applied, the script ran and square.png
/// loaded.
const ALL_LOADED: &str = r#"<p id="result">css=ok js=ok img=ok</p>"#;

/// style.css's background (#123456), and square.png's colour.
const BACKGROUND: [u8; 3] = [0x12, 0x34, 0x56];
const SQUARE: [u8; 3] = [200, 50, 20];

/// Headless Chromium loads the browser fixture at `page` (`/browser/` of a server from
/// `serve`) with a fresh profile, `extra` flags added: the DOM it dumps after the load shows
/// what app.js found, and the 800×600 screenshot has style.css's background and square.png
/// where style.css puts it (64×64 at 100,200). One run does both, to halve Chromium's
/// start-up cost.
fn chromium_page(page: &str, extra: &[&str], chromium: &Program) {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile");
    let shot = dir.path().join("shot.png");
    let (profile, shot_flag) = (
        format!("--user-data-dir={}", arg(&profile)),
        format!("--screenshot={}", arg(&shot)),
    );
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        &profile,
        "--hide-scrollbars",
        "--window-size=800,600",
        &shot_flag,
        "--dump-dom",
    ];
    let args: Vec<&str> = flags.iter().chain(extra).copied().chain([page]).collect();
    let ran = chromium.run(&args).success();
    assert!(
        ran.stdout.contains(ALL_LOADED),
        "no {ALL_LOADED} in the DOM:\n{}",
        ran.output()
    );
    let png =
        fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot {}: {e}\n{}", shot.display(), ran.output()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot is not a PNG"
    );
    let image = Rgb::decode(&png);
    assert_eq!((image.width, image.height), (800, 600), "screenshot size");
    for (x, y) in [(700, 500), (10, 590), (790, 300)] {
        assert_colour(image.pixel(x, y), BACKGROUND, &format!("background at {x},{y}"));
    }
    for (x, y) in [(101, 201), (132, 232), (162, 262)] {
        assert_colour(image.pixel(x, y), SQUARE, &format!("square.png at {x},{y}"));
    }
}

/// A single-page app: its page, and its script (by an absolute path, as apps link them, so
/// that it loads from any route), which writes the route it finds into the page.
const SPA_PAGE: &[u8] = b"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<title>a single-page app</title>\n<script src=\"/spa/app.js\" defer></script>\n</head>\n\
<body>\n<p id=\"route\">not routed</p>\n</body>\n</html>\n";
const SPA_SCRIPT: &[u8] = b"document.getElementById('route').textContent = 'route=' + location.pathname;\n";

/// Headless Chromium reloads a single-page app on a deep link (`/users/42`), served with
/// `--fallback spa/index.html`: the page comes for the route, its script from its own path
/// (not the page again), and the script finds the route in `location`.
fn chromium_spa(model: bingfa::Model, chromium: &Program) {
    let s = TestServer::start_prepared(
        model,
        |site| {
            site.write("spa/index.html", SPA_PAGE);
            site.write("spa/app.js", SPA_SCRIPT);
        },
        |config| {
            config.fallback = Some("spa/index.html".into());
            if model == bingfa::Model::Pool {
                config.workers = POOL_WORKERS;
            }
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let profile = format!("--user-data-dir={}", arg(&dir.path().join("profile")));
    let page = url(&s, "/users/42");
    let ran = chromium
        .run(&[
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &profile,
            "--dump-dom",
            &page,
        ])
        .success();
    let routed = r#"<p id="route">route=/users/42</p>"#;
    assert!(
        ran.stdout.contains(routed),
        "no {routed} in the DOM:\n{}",
        ran.output()
    );
}

/// A decoded 8-bit RGB or RGBA image.
struct Rgb {
    width: u32,
    height: u32,
    samples: usize,
    line: usize,
    pixels: Vec<u8>,
}

impl Rgb {
    fn decode(png: &[u8]) -> Rgb {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(png));
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder.read_info().expect("PNG header");
        let mut pixels = vec![0; reader.output_buffer_size().expect("PNG size")];
        let info = reader.next_frame(&mut pixels).expect("PNG image data");
        let samples = info.color_type.samples();
        assert!(samples >= 3, "a colour screenshot, not {:?}", info.color_type);
        Rgb {
            width: info.width,
            height: info.height,
            samples,
            line: info.line_size,
            pixels,
        }
    }

    fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let at = y * self.line + x * self.samples;
        [self.pixels[at], self.pixels[at + 1], self.pixels[at + 2]]
    }
}

/// Equal within 2 per channel (rounding in colour conversion).
#[track_caller]
fn assert_colour(got: [u8; 3], expected: [u8; 3], what: &str) {
    let close = got.iter().zip(expected).all(|(&g, e)| g.abs_diff(e) <= 2);
    assert!(close, "{what}: colour {got:?}, expected {expected:?}");
}

// ---------------------------------------------------------------------------
// HTTPS (pki.rs: a test CA made at test time, and a certificate it signed for 127.0.0.1)
// ---------------------------------------------------------------------------

/// A server of `model` as from `serve`, speaking HTTPS with the test PKI's certificate.
fn serve_tls(model: bingfa::Model) -> TestServer {
    serve_tls_with(model, |_| {})
}

/// As `serve_tls`, after `adjust` has changed the config.
fn serve_tls_with(model: bingfa::Model, adjust: impl FnOnce(&mut bingfa::Config)) -> TestServer {
    serve_with(model, |config| {
        config.tls_cert = Some(tls_fixture("cert.pem"));
        config.tls_key = Some(tls_fixture("key.pem"));
        config.hsts = Some(31_536_000);
        config.redirect_http = Some("127.0.0.1:0".parse().unwrap());
        adjust(config);
    })
}

/// The HTTP version curl is made to speak.
#[derive(Clone, Copy)]
enum Version {
    Http1_1,
    Http2,
}

impl Version {
    /// curl's flag for it over `over`: HTTP/2 is asked for by ALPN over TLS, and spoken from
    /// the first byte on plaintext (h2c by prior knowledge, RFC 9113 §3.3, as bingfa takes it).
    fn curl_flag(self, over: Over) -> &'static str {
        match (self, over) {
            (Version::Http1_1, _) => "--http1.1",
            (Version::Http2, Over::Https) => "--http2",
            (Version::Http2, Over::Http) => "--http2-prior-knowledge",
        }
    }

    /// What curl's `%{http_version}` says after a transfer over it.
    fn curl_name(self) -> &'static str {
        match self {
            Version::Http1_1 => "1.1",
            Version::Http2 => "2",
        }
    }
}

/// Over HTTPS in `version`, byte-exact: a 1 MiB file (read and encrypted in pieces, since a
/// TLS link cannot sendfile) and a small one from memory, on one connection, trusting the
/// test CA; both carry the HSTS header (its name in lower case over HTTP/2).
fn curl_https(s: &TestServer, curl: &Program, version: Version) {
    let dir = tempfile::tempdir().unwrap();
    let (big, small) = (dir.path().join("big.bin"), dir.path().join("readme.txt"));
    let heads = dir.path().join("heads.txt");
    let ca = tls_fixture("ca.pem");
    let url = |path: &str| Over::Https.url(s, path);
    let ran = curl_run(
        curl,
        &[
            version.curl_flag(Over::Https),
            "--cacert",
            arg(&ca),
            "--dump-header",
            arg(&heads),
            "-o",
            arg(&big),
            "-o",
            arg(&small),
            "-w",
            "%{http_code} %{http_version} %{num_connects} %{ssl_verify_result}\n",
            &url("/big.bin"),
            &url("/readme.txt"),
        ],
    );
    let v = version.curl_name();
    assert_eq!(
        ran.stdout,
        format!("200 {v} 1 0\n200 {v} 0 0\n"),
        "{}",
        ran.output()
    );
    assert_file(&big, &s.site.read("big.bin"));
    assert_file(&small, &s.site.read("readme.txt"));
    let heads = fs::read_to_string(&heads).unwrap();
    let hsts = "strict-transport-security: max-age=31536000\r\n";
    assert_eq!(heads.to_ascii_lowercase().matches(hsts).count(), 2, "{heads}");
}

/// h2c, HTTP/2 on plaintext by prior knowledge, byte-exact: a 1 MiB file (in DATA frames under
/// flow control) and a small one from memory. One file a run: curl 7.88 (Debian 12's) fails
/// the second transfer on a reused prior-knowledge connection with error 16, whatever the
/// server (nginx too; curl/curl#10634, fixed in curl 8.0).
fn curl_h2c(s: &TestServer, curl: &Program) {
    let dir = tempfile::tempdir().unwrap();
    for rel in ["big.bin", "readme.txt"] {
        let out = dir.path().join(rel);
        let args = [
            Version::Http2.curl_flag(Over::Http),
            "-o",
            arg(&out),
            "-w",
            "%{http_code} %{http_version} %{size_download}",
        ];
        let ran = curl_to(curl, s, Over::Http, &args, &format!("/{rel}"));
        let expected = s.site.read(rel);
        assert_eq!(
            ran.stdout,
            format!("200 2 {}", expected.len()),
            "{}",
            ran.output()
        );
        assert_file(&out, &expected);
    }
}

/// openssl s_client: TLS 1.3 and 1.2 both negotiate `http/1.1` by ALPN with a verified
/// certificate, answer a request, and resume the session on a second connection.
fn openssl_versions_alpn_and_resumption(s: &TestServer, openssl: &Program) {
    let dir = tempfile::tempdir().unwrap();
    let ca = tls_fixture("ca.pem");
    let connect = s.addr.to_string();
    let request = b"GET /readme.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    for (version, name) in [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")] {
        let session = dir.path().join(format!("{name}.pem"));
        let client = |session_flag: &str| {
            let args = [
                "s_client",
                "-ign_eof",
                version,
                "-alpn",
                "http/1.1",
                "-connect",
                &connect,
                "-servername",
                "localhost",
                "-CAfile",
                arg(&ca),
                session_flag,
                arg(&session),
            ];
            openssl.run_fed(&args, request).success()
        };
        let first = client("-sess_out");
        for words in [
            format!("New, {name}"),
            "ALPN protocol: http/1.1".into(),
            "Verify return code: 0 (ok)".into(),
        ] {
            assert!(first.stdout.contains(&words), "{words}: {}", first.output());
        }
        assert!(first.stdout.contains("HTTP/1.1 200 OK\r\n"), "{}", first.output());
        let second = client("-sess_in");
        assert!(
            second.stdout.contains(&format!("Reused, {name}")),
            "{}",
            second.output()
        );
    }
}

/// `--redirect-http`: plaintext requests get a 308 to the same path and query over HTTPS,
/// which curl follows to the file; a host the certificate does not name gets a 421.
fn curl_redirected_to_https(s: &TestServer, curl: &Program) {
    let redirect = s.redirect.expect("a redirect listener");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("readme.txt");
    let ca = tls_fixture("ca.pem");
    let from = format!("http://{redirect}/readme.txt?x=1");
    let ran = curl_run(
        curl,
        &["-w", "%{http_code} %{redirect_url}", "-o", "/dev/null", &from],
    );
    let to = format!("https://{}/readme.txt?x=1", s.addr);
    assert_eq!(ran.stdout, format!("308 {to}"), "{}", ran.output());
    let ran = curl_run(
        curl,
        &[
            "-L",
            "--cacert",
            arg(&ca),
            "-w",
            "%{http_code} %{num_redirects}",
            "-o",
            arg(&out),
            &from,
        ],
    );
    assert_eq!(ran.stdout, "200 1", "{}", ran.output());
    assert_file(&out, &s.site.read("readme.txt"));
    let mut c = Client::connect(redirect);
    c.send("GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n");
    assert_eq!(c.read_response().status, 421);
}

/// Headless Chromium loads the browser fixture over HTTPS, accepting the test PKI's
/// certificate by its public key's hash, and does so over HTTP/2 (ALPN h2): the server's access
/// log shows the page, stylesheet, script and image each requested as `HTTP/2.0`, and no
/// request in another version. Chromium 156 matches that list against the chain the server
/// sent (here the certificate alone, `cert.pem`): the CA's hash is accepted only from a server
/// that sends the CA's certificate too, so it is the certificate's own that is given.
fn chromium_https(model: bingfa::Model, chromium: &Program) {
    let mut log = PathBuf::new();
    let s = serve_tls_with(model, |config| {
        log = config
            .root
            .parent()
            .expect("the site has a parent")
            .join("access.log");
        config.access_log = Some(log.clone());
    });
    let accept = format!("--ignore-certificate-errors-spki-list={}", server_spki_sha256());
    let page = format!("https://{}/browser/", s.addr);
    chromium_page(&page, &[&accept], chromium);
    let requests = logged_requests(
        &log,
        &[
            "/browser/",
            "/browser/style.css",
            "/browser/app.js",
            "/browser/square.png",
        ],
    );
    let other: Vec<&String> = requests.iter().filter(|r| !r.ends_with(" HTTP/2.0")).collect();
    assert!(
        other.is_empty(),
        "requests not over HTTP/2: {other:?}\nall: {requests:?}"
    );
}

/// The request lines (`GET /path HTTP/2.0`) of the access log at `log`, once it holds a
/// `GET` of each of `paths` (the writer writes every 100 ms; waiting is bounded).
#[track_caller]
fn logged_requests(log: &Path, paths: &[&str]) -> Vec<String> {
    let requests = || -> Vec<String> {
        let text = fs::read_to_string(log).unwrap_or_default();
        text.lines()
            .filter_map(|line| line.split('"').nth(1))
            .map(str::to_string)
            .collect()
    };
    let has_all = |requests: &[String]| {
        paths.iter().all(|path| {
            let get = format!("GET {path} ");
            requests.iter().any(|r| r.starts_with(&get))
        })
    };
    poll_until(SAFETY, || Some(requests()).filter(|r| has_all(r))).unwrap_or_else(|| {
        panic!(
            "{} lacks a GET of one of {paths:?}: {:?}",
            log.display(),
            requests()
        )
    })
}

/// Plaintext HTTP sent to the HTTPS port gets a short plaintext 400 and a close, as from
/// nginx; bytes that are neither HTTP nor TLS get a TLS alert and a close.
fn plaintext_to_https(s: &TestServer) {
    let answer = |sent: &[u8]| {
        let mut stream = std::net::TcpStream::connect(s.addr).unwrap();
        stream.set_read_timeout(Some(SAFETY)).unwrap();
        stream.write_all(sent).unwrap();
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .expect("the server closes the connection");
        answer
    };
    let http = answer(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let text = String::from_utf8_lossy(&http);
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    let garbage = answer(b"\x00\x01\x02\x03 not tls");
    assert_eq!(garbage.first(), Some(&0x15), "a TLS alert record: {garbage:?}");
}

/// A certificate `issue_cert` made for other names is trusted through the test CA: curl,
/// sent to the server for a name it holds (a wildcard's too), verifies it; for a name it does
/// not hold, curl refuses (exit 60: the peer's certificate cannot be authenticated).
#[test]
fn curl_trusts_a_certificate_issued_for_other_names() {
    let Some(curl) = client("curl") else {
        return;
    };
    let (cert, key) = issue_cert(&["example.com", "*.example.org"]);
    let s = TestServer::start_with(bingfa::Model::Epoll, |config| {
        config.tls_cert = Some(cert);
        config.tls_key = Some(key);
    });
    let ca = tls_fixture("ca.pem");
    let port = s.addr.port();
    let get = |host: &str| {
        let resolve = format!("{host}:{port}:127.0.0.1");
        let url = format!("https://{host}:{port}/readme.txt");
        let args = [
            "-q",
            "--silent",
            "--show-error",
            "--cacert",
            arg(&ca),
            "--resolve",
            &resolve,
        ];
        let args: Vec<&str> = args
            .into_iter()
            .chain(["-w", "%{http_code}", "-o", "/dev/null", &url])
            .collect();
        curl.run(&args)
    };
    for host in ["example.com", "www.example.org"] {
        let ran = get(host).success();
        assert_eq!(ran.stdout, "200", "{host}: {}", ran.output());
    }
    let refused = get("other.example.net");
    assert_eq!(refused.status.code(), Some(60), "{}", refused.output());
}

// ---------------------------------------------------------------------------
// Every client against every model
// ---------------------------------------------------------------------------

model_tests! {
    fn curl_gets_https_byte_exact_in_http11_and_h2(model m) {
        if let Some(curl) = client("curl") {
            let s = serve_tls(m);
            curl_https(&s, &curl, Version::Http1_1);
            curl_https(&s, &curl, Version::Http2);
        }
    }

    fn curl_h2c_prior_knowledge_is_byte_exact(model m) {
        if let Some(curl) = client("curl") {
            curl_h2c(&serve(m), &curl);
        }
    }

    fn nghttp_fetches_page_and_assets_over_h2c(model m) {
        if let Some(nghttp) = client("nghttp") {
            nghttp_assets(&serve(m), &nghttp, Over::Http);
        }
    }

    fn nghttp_fetches_page_and_assets_over_tls_h2(model m) {
        if let Some(nghttp) = client("nghttp") {
            nghttp_assets(&serve_tls(m), &nghttp, Over::Https);
        }
    }

    fn h2load_h2c_has_no_failures(model m) {
        if let Some(h2load) = client("h2load") {
            h2load_h2(&serve(m), &h2load, Over::Http);
        }
    }

    fn h2load_h2_over_tls_has_no_failures(model m) {
        if let Some(h2load) = client("h2load") {
            h2load_h2(&serve_tls(m), &h2load, Over::Https);
        }
    }

    fn curl_resumes_and_gets_304_over_https(model m) {
        if let Some(curl) = client("curl") {
            let s = serve_tls(m);
            curl_resume(&s, &curl, Over::Https);
            curl_conditional(&s, &curl, Over::Https);
        }
    }

    fn openssl_negotiates_tls13_tls12_alpn_and_resumes(model m) {
        if let Some(openssl) = client("openssl") {
            openssl_versions_alpn_and_resumption(&serve_tls(m), &openssl);
        }
    }

    fn curl_follows_the_redirect_to_https(model m) {
        if let Some(curl) = client("curl") {
            curl_redirected_to_https(&serve_tls(m), &curl);
        }
    }

    fn python_urllib_fetches_over_https_and_gets_404(model m) {
        if let Some(python) = client("python3") {
            python_urllib(&serve_tls(m), &python, Some(&tls_fixture("ca.pem")));
        }
    }

    fn wget_gets_https_byte_exact(model m) {
        if let Some(wget) = client("wget") {
            wget_https(&serve_tls(m), &wget);
        }
    }

    fn chromium_loads_stylesheet_script_and_image_over_https_in_h2(model m) {
        if let Some(chromium) = client("chromium") {
            chromium_https(m, &chromium);
        }
    }

    fn plaintext_http_to_the_https_port_gets_a_400(model m) {
        plaintext_to_https(&serve_tls(m));
    }

    fn curl_get_is_byte_exact(model m) {
        if let Some(curl) = client("curl") {
            curl_get(&serve(m), &curl);
        }
    }

    fn curl_resumes_with_continue_at(model m) {
        if let Some(curl) = client("curl") {
            curl_resume(&serve(m), &curl, Over::Http);
        }
    }

    fn curl_time_condition_gets_304_or_200(model m) {
        if let Some(curl) = client("curl") {
            curl_conditional(&serve(m), &curl, Over::Http);
        }
    }

    fn curl_reuses_the_connection_for_two_urls(model m) {
        if let Some(curl) = client("curl") {
            curl_reuse(&serve(m), &curl);
        }
    }

    fn wget_mirrors_the_browser_fixture(model m) {
        if let Some(wget) = client("wget") {
            wget_mirror(&serve(m), &wget);
        }
    }

    fn ab_keep_alive_has_no_failures(model m) {
        if let Some(ab) = client("ab") {
            ab_keep_alive(&serve(m), &ab);
        }
    }

    fn h2load_h1_has_no_failures(model m) {
        if let Some(h2load) = client("h2load") {
            h2load_h1(&serve(m), &h2load);
        }
    }

    fn python_urllib_fetches_and_gets_404(model m) {
        if let Some(python) = client("python3") {
            python_urllib(&serve(m), &python, None);
        }
    }

    fn curl_follows_clean_urls(model m) {
        if let Some(curl) = client("curl") {
            curl_clean_urls(&serve_with(m, |c| c.clean_urls = true), &curl);
        }
    }

    fn chromium_reloads_a_single_page_app_on_a_deep_link(model m) {
        if let Some(chromium) = client("chromium") {
            chromium_spa(m, &chromium);
        }
    }

    fn chromium_loads_stylesheet_script_and_image(model m) {
        if let Some(chromium) = client("chromium") {
            let s = serve(m);
            chromium_page(&url(&s, "/browser/"), &[], &chromium);
        }
    }
}
