//! Behind a proxy: the PROXY protocol (`--proxy-protocol`, v1 and v2) and
//! `--trusted-proxies`, whose `X-Forwarded-For` / `Forwarded` name the client in the access
//! log. The client a proxy names is what the access log shows; a connection that should
//! start with a PROXY header and does not, or comes from an untrusted source, is closed
//! unanswered.
//!
//! Over TLS the header goes on the bare TCP stream before the ClientHello, as HAProxy sends
//! it (`support::Client::connect_after`).

use std::path::PathBuf;

use bingfa::observe::LogFormat;
use bingfa::Config;

use crate::binary::poll_until;
use crate::support::*;

/// The PROXY protocol version 2 signature.
const V2: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// A version 2 PROXY header from `source` (IPv4) to 127.0.0.1:80.
fn v2_ipv4(source: [u8; 4]) -> Vec<u8> {
    let mut header = V2.to_vec();
    header.extend([0x21, 0x11, 0, 12]);
    header.extend(source);
    header.extend([127, 0, 0, 1, 0xdc, 0x04, 0, 80]);
    header
}

/// A version 2 PROXY header from `source` (IPv6) to [::1]:443, with an ALPN TLV.
fn v2_ipv6(source: std::net::Ipv6Addr) -> Vec<u8> {
    let mut header = V2.to_vec();
    header.extend([0x21, 0x21, 0, 36 + 5]);
    header.extend(source.octets());
    header.extend(std::net::Ipv6Addr::LOCALHOST.octets());
    header.extend([0xdc, 0x04, 0x01, 0xbb]);
    header.extend([0x01, 0, 2, b'h', b'2']);
    header
}

/// A version 2 LOCAL header: the proxy speaks for itself (a health check).
fn v2_local() -> Vec<u8> {
    let mut header = V2.to_vec();
    header.extend([0x20, 0x00, 0, 0]);
    header
}

/// `config` with a common-format access log in the site's temporary folder.
fn with_log(config: &mut Config) {
    config.access_log = Some(log_path(config));
    config.log_format = LogFormat::Common;
}

fn log_path(config: &Config) -> PathBuf {
    config
        .root
        .parent()
        .expect("the site has a parent")
        .join("access.log")
}

/// The client address of each of the first `count` lines of `s`'s access log, by request
/// target (waiting boundedly for them).
#[track_caller]
fn logged_clients(s: &TestServer, count: usize) -> Vec<(String, String)> {
    let path = s.site.root().parent().unwrap().join("access.log");
    let lines = poll_until(SAFETY, || {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        (lines.len() >= count).then_some(lines)
    })
    .unwrap_or_else(|| panic!("fewer than {count} lines in {}", path.display()));
    let mut clients: Vec<(String, String)> = lines
        .iter()
        .map(|line| {
            let client = line.split(' ').next().unwrap_or_default().to_string();
            let target = line
                .split('"')
                .nth(1)
                .and_then(|r| r.split(' ').nth(1))
                .unwrap_or_default();
            (target.to_string(), client)
        })
        .collect();
    clients.sort();
    clients
}

/// A GET of `target` on a connection that first sends `header` in `parts` pieces, answered.
#[track_caller]
fn get_after(s: &TestServer, header: &[u8], pieces: usize, target: &str, extra: &str) -> Response {
    let size = header.len().div_ceil(pieces.max(1)).max(1);
    let parts: Vec<&[u8]> = header.chunks(size).collect();
    let mut c = Client::connect_after(s.addr, &parts).expect("a connection");
    c.send(req("GET", target, &format!("{extra}Connection: close\r\n")));
    c.read_response()
}

/// Whether a connection that first sends `header`, then a request, is closed without a
/// byte of answer (or reset). A raw TCP client: what it sends is never read as TLS or HTTP.
#[track_caller]
fn closed_unanswered(s: &TestServer, header: &[u8]) -> bool {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(s.addr).expect("connect");
    stream.set_read_timeout(Some(SAFETY)).expect("a read timeout");
    // A server that refused the connection may have closed it already.
    let _ = stream.write_all(header);
    let _ = stream.write_all(get_req("/readme.txt").as_bytes());
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => answer.is_empty(),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => answer.is_empty(),
        Err(e) => panic!("reading what the server answered: {e}"),
    }
}

model_tests! {
    /// A version 1 header names the client: TCP4 and TCP6 addresses are what the log shows;
    /// `PROXY UNKNOWN` is served under the proxy's own address. The header may arrive in
    /// pieces.
    fn v1_header_names_the_client_in_the_log(model m) {
        let s = TestServer::start_with(m, |c| {
            with_log(c);
            c.proxy_protocol = true;
        });
        let four = b"PROXY TCP4 192.0.2.7 127.0.0.1 56324 80\r\n";
        assert_eq!(get_after(&s, four, 3, "/readme.txt?v1=4", "").status, 200, "[{m}]");
        let six = b"PROXY TCP6 2001:db8::7 ::1 56324 80\r\n";
        assert_eq!(get_after(&s, six, 1, "/readme.txt?v1=6", "").status, 200, "[{m}]");
        assert_eq!(get_after(&s, b"PROXY UNKNOWN\r\n", 1, "/readme.txt?v1=unknown", "").status, 200, "[{m}]");
        let clients = logged_clients(&s, 3);
        assert_eq!(
            clients,
            [
                ("/readme.txt?v1=4".to_string(), "192.0.2.7".to_string()),
                ("/readme.txt?v1=6".to_string(), "2001:db8::7".to_string()),
                ("/readme.txt?v1=unknown".to_string(), "127.0.0.1".to_string()),
            ],
            "[{m}]"
        );
        s.stop();
    }

    #[tls]
    /// A version 2 header names the client (IPv4, or IPv6 with a TLV after the addresses),
    /// also when it arrives a few bytes at a time; `LOCAL` is the proxy itself. Over TLS the
    /// header comes before the ClientHello.
    fn v2_header_names_the_client_in_the_log(model m) {
        let s = TestServer::start_with(m, |c| {
            with_log(c);
            c.proxy_protocol = true;
        });
        assert_eq!(get_after(&s, &v2_ipv4([198, 51, 100, 9]), 1, "/readme.txt?v2=4", "").status, 200, "[{m}]");
        let six = v2_ipv6("2001:db8::9".parse().unwrap());
        assert_eq!(get_after(&s, &six, 4, "/readme.txt?v2=6", "").status, 200, "[{m}]");
        assert_eq!(get_after(&s, &v2_local(), 1, "/readme.txt?v2=local", "").status, 200, "[{m}]");
        let clients = logged_clients(&s, 3);
        assert_eq!(
            clients,
            [
                ("/readme.txt?v2=4".to_string(), "198.51.100.9".to_string()),
                ("/readme.txt?v2=6".to_string(), "2001:db8::9".to_string()),
                ("/readme.txt?v2=local".to_string(), "127.0.0.1".to_string()),
            ],
            "[{m}]"
        );
        s.stop();
    }

    /// From a trusted source, a connection without a valid header is closed unanswered:
    /// never served under the proxy's address. A header cut short by the client's close
    /// is no header either.
    fn no_header_from_a_trusted_source_is_closed_unanswered(model m) {
        let s = TestServer::start_with(m, |c| c.proxy_protocol = true);
        assert!(closed_unanswered(&s, b""), "[{m}] a request with no header was answered");
        assert!(closed_unanswered(&s, b"PROXY TCP4 192.0.2.7\r\n"), "[{m}] a truncated v1 header");
        let mut unknown_family = v2_ipv4([192, 0, 2, 7]);
        unknown_family[13] = 0x41;
        assert!(closed_unanswered(&s, &unknown_family), "[{m}] a v2 header of an unknown family");
        let mut oversized = V2.to_vec();
        oversized.extend([0x21, 0x11, 0xff, 0xff]);
        assert!(closed_unanswered(&s, &oversized), "[{m}] an oversized v2 header");
        // The server still serves a proper one.
        assert_eq!(get_after(&s, &v2_ipv4([192, 0, 2, 7]), 1, "/readme.txt", "").status, 200, "[{m}]");
        s.stop();
    }

    /// A source that is not a trusted proxy is refused, valid header or not, and counted in
    /// `bingfa_proxy_refused_total`.
    fn an_untrusted_source_is_refused(model m) {
        let s = TestServer::start_with(m, |c| {
            c.proxy_protocol = true;
            c.trusted_proxies = vec!["192.0.2.0/24".parse().unwrap()];
            c.metrics = Some("127.0.0.1:0".parse().unwrap());
        });
        assert!(closed_unanswered(&s, &v2_ipv4([198, 51, 100, 9])), "[{m}] an untrusted source was served");
        assert!(closed_unanswered(&s, b""), "[{m}] an untrusted source was served");
        let metrics = s.metrics.expect("--metrics is on");
        let wanted = format!("bingfa_proxy_refused_total{{model=\"{m}\"}} 2\n");
        let counted = crate::binary::poll_until(SAFETY, || {
            let mut c = Client::connect(metrics);
            c.send(req("GET", "/metrics", "Connection: close\r\n"));
            c.read_response().body_str().contains(&wanted).then_some(())
        });
        assert!(counted.is_some(), "[{m}] no {wanted:?} in /metrics");
        s.stop();
    }

    /// Without the PROXY protocol, a trusted proxy's `X-Forwarded-For` or `Forwarded` names
    /// the client in the log: the rightmost address that is not itself a trusted proxy.
    /// Nobody else's is believed.
    fn forwarded_fields_name_the_client_only_from_a_trusted_proxy(model m) {
        let trusting = TestServer::start_with(m, with_log);
        let forwarded_for = "X-Forwarded-For: 203.0.113.1, 198.51.100.9, 127.0.0.5\r\n";
        assert_eq!(exchange(&trusting, "GET", "/readme.txt?xff", forwarded_for).status, 200, "[{m}]");
        let forwarded = "Forwarded: for=\"[2001:db8::5]:4711\";proto=https\r\n";
        assert_eq!(exchange(&trusting, "GET", "/readme.txt?forwarded", forwarded).status, 200, "[{m}]");
        assert_eq!(
            logged_clients(&trusting, 2),
            [
                ("/readme.txt?forwarded".to_string(), "2001:db8::5".to_string()),
                ("/readme.txt?xff".to_string(), "198.51.100.9".to_string()),
            ],
            "[{m}]"
        );
        trusting.stop();

        let distrusting = TestServer::start_with(m, |c| {
            with_log(c);
            c.trusted_proxies = vec!["192.0.2.0/24".parse().unwrap()];
        });
        assert_eq!(exchange(&distrusting, "GET", "/readme.txt?xff", forwarded_for).status, 200, "[{m}]");
        assert_eq!(
            logged_clients(&distrusting, 1),
            [("/readme.txt?xff".to_string(), "127.0.0.1".to_string())],
            "[{m}]"
        );
        distrusting.stop();
    }
}

/// On a Unix socket every client counts as trusted (the socket file's permissions decide who
/// connects): a header is required, and the client it names is logged. Through the binary,
/// so the command line's `--proxy-protocol` is what turns it on.
#[test]
fn a_unix_socket_client_is_trusted_and_must_send_a_header() {
    use std::io::{Read, Write};
    let site = Site::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("bingfa.sock");
    let mut config = Config::new(site.root());
    config.model = bingfa::Model::Epoll;
    config.proxy_protocol = true;
    // No TCP source is trusted: a Unix socket's client still is.
    config.trusted_proxies = vec!["192.0.2.0/24".parse().unwrap()];
    with_log(&mut config);
    let mut args = flags(&config);
    let bind = args.iter().position(|a| a == "-b").expect("flags has -b");
    args[bind + 1] = format!("unix:{}", socket.display());
    let mut running = crate::binary::start(&args, None);
    let answer = |bytes: &[u8]| {
        let mut stream = std::os::unix::net::UnixStream::connect(&socket).expect("connect");
        stream.set_read_timeout(Some(SAFETY)).unwrap();
        let _ = stream.write_all(bytes);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    };
    let request = req("GET", "/readme.txt?unix", "Connection: close\r\n");
    let mut proxied = v2_ipv4([192, 0, 2, 7]);
    proxied.extend_from_slice(request.as_bytes());
    let served = answer(&proxied);
    let unproxied = answer(request.as_bytes());
    let log = poll_until(SAFETY, || {
        let text = std::fs::read_to_string(log_path(&config)).unwrap_or_default();
        (!text.is_empty()).then_some(text)
    });
    running
        .stop_with(nix::sys::signal::Signal::SIGTERM)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(served.starts_with("HTTP/1.1 200 OK\r\n"), "{served}");
    assert_eq!(unproxied, "", "a request without a header was answered");
    let log = log.expect("a line in the access log");
    assert!(log.starts_with("192.0.2.7 - - ["), "{log}");
    assert_eq!(log.lines().count(), 1, "{log}");
}
