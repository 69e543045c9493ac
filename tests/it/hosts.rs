//! Virtual hosts (`[[hosts]]`): each site answers the requests naming one of its hosts (port,
//! case and a trailing dot aside; `*.name` for one label in front), with its own files and
//! rules; every other host, and a request naming none, gets ROOT and the top-level rules.
//! Over TLS the client's SNI names the host it asks for (so that the certificate is right
//! for it); a request naming another host than the SNI gets 421.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use bingfa::server::{AuthRule, HeaderRule, HostName, RedirectRule, VirtualHost};
use bingfa::Config;

use crate::support::*;

const A_HOME: &[u8] = b"<title>A</title>\n";
const A_APP: &[u8] = b"<title>A's app</title>\n";
const B_HOME: &[u8] = b"<title>B</title>\n";

/// Where host `name`'s site is: beside the default site's root, outside it.
fn host_root(default_root: &Path, name: &str) -> PathBuf {
    default_root.parent().expect("a parent").join(name)
}

fn write(root: &Path, rel: &str, content: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn names(names: &[&str]) -> Vec<HostName> {
    names.iter().map(|name| HostName::new(name).unwrap()).collect()
}

/// A server with two virtual hosts beside the default site (the fixture):
/// - `a.example`, `www.a.example`: its own files, the fallback `app.html`, a header rule
///   `X-Site: a` and a redirect `/old` → `/new`;
/// - `b.example`, `*.w.example`: its own files, no rules.
///
/// The top level sets `X-Top: 1` on every response of the default site. Over TLS, the server
/// also has a certificate for the hosts' names, which their clients ask for by SNI.
fn start_hosts(model: bingfa::Model, adjust: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::start_prepared(
        model,
        |site| {
            let a = host_root(&site.root(), "a-site");
            write(&a, "index.html", A_HOME);
            write(&a, "app.html", A_APP);
            write(&a, "only-a.txt", b"a\n");
            write(&a, "new", b"new\n");
            let b = host_root(&site.root(), "b-site");
            write(&b, "index.html", B_HOME);
            write(&b, "only-b.txt", b"b\n");
        },
        |config| {
            let a_root = host_root(&config.root, "a-site");
            let b_root = host_root(&config.root, "b-site");
            let mut a = VirtualHost::new(names(&["a.example", "www.a.example"]), a_root);
            a.fallback = Some("app.html".into());
            a.header_rules = vec![HeaderRule::new("/**", &[("X-Site".into(), "a".into())]).unwrap()];
            a.redirects = vec![RedirectRule::new("/old", "/new", 301).unwrap()];
            let b = VirtualHost::new(names(&["b.example", "*.w.example"]), b_root);
            config.hosts = vec![a, b];
            config.headers = vec!["X-Top: 1".parse().unwrap()];
            if over_tls() {
                let names = [
                    "a.example",
                    "www.a.example",
                    "b.example",
                    "*.w.example",
                    // The names that go to the default site.
                    "other.example",
                    "a.example.net",
                    "w.example",
                    "y.x.w.example",
                ];
                config.sni_certificates.push(issue_cert(&names));
            }
            adjust(config);
        },
    )
}

/// GET `target` with `Host: host` on a connection of its own, whose SNI (over TLS) is `sni`.
fn fetch_as(s: &TestServer, sni: &str, host: &str, target: &str) -> Response {
    let mut c = Client::connect_named(s.addr, sni);
    c.send(format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    ));
    c.read_response()
}

/// GET `target` with `Host: host`, over TLS for that host (its SNI is the host's name).
fn fetch(s: &TestServer, host: &str, target: &str) -> Response {
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    fetch_as(s, &name, host, target)
}

model_tests! {
    #[tls]
    fn each_host_gets_its_own_files(model m) {
        let s = start_hosts(m, |_| {});
        let a = host_root(&s.site.root(), "a-site");
        assert_body(&fetch(&s, "a.example", "/"), A_HOME);
        assert_body(&fetch(&s, "www.a.example", "/only-a.txt"), b"a\n");
        assert_body(&fetch(&s, "b.example", "/"), B_HOME);
        assert_body(&fetch(&s, "b.example", "/only-b.txt"), b"b\n");
        // Each site sees only its own root.
        assert_eq!(fetch(&s, "b.example", "/only-a.txt").status, 404);
        assert_eq!(fetch(&s, "a.example", "/readme.txt").status, 404);
        assert_body(&fetch(&s, "localhost", "/readme.txt"), &s.site.read("readme.txt"));
        assert_eq!(fetch(&s, "localhost", "/only-a.txt").status, 404);
        // A site's own caches: an edit shows on its host only.
        std::fs::write(a.join("only-a.txt"), b"A\n").unwrap();
        let fresh = crate::binary::poll_until(SAFETY, || {
            (fetch(&s, "a.example", "/only-a.txt").body == b"A\n").then_some(())
        });
        assert!(fresh.is_some(), "the edit never showed");
    }

    fn the_host_is_matched_without_port_case_or_final_dot(model m) {
        let s = start_hosts(m, |_| {});
        for host in ["A.EXAMPLE", "a.example:8080", "Www.A.Example:443", "a.example."] {
            assert_body(&fetch(&s, host, "/"), A_HOME);
        }
        // `*.w.example`: one label in front, not the name itself, not two labels.
        assert_body(&fetch(&s, "x.w.example", "/"), B_HOME);
        assert_body(&fetch(&s, "X-1.W.Example:80", "/"), B_HOME);
        let default_home = s.site.read("index.html");
        assert_body(&fetch(&s, "w.example", "/"), &default_home);
        assert_body(&fetch(&s, "y.x.w.example", "/"), &default_home);
    }

    #[tls]
    fn every_other_host_gets_the_default_site(model m) {
        let s = start_hosts(m, |_| {});
        let home = s.site.read("index.html");
        for host in ["other.example", "localhost", "127.0.0.1", "a.example.net"] {
            let resp = fetch(&s, host, "/");
            assert_body(&resp, &home);
            assert_eq!(resp.header("x-top"), Some("1"), "{host}: {}", resp.summary());
        }
        // HTTP/1.0 without a Host names no site.
        let mut c = s.connect();
        c.send("GET / HTTP/1.0\r\n\r\n");
        assert_body(&c.read_response(), &home);
    }

    #[tls]
    fn a_hosts_rules_apply_only_there(model m) {
        let s = start_hosts(m, |_| {});
        // a.example: its header rule, its redirect, its fallback; not the top level's header.
        let file = fetch(&s, "a.example", "/only-a.txt");
        assert_eq!(file.header("x-site"), Some("a"), "{}", file.summary());
        assert_eq!(file.header("x-top"), None, "{}", file.summary());
        let moved = fetch(&s, "a.example", "/old");
        assert_eq!(moved.status, 301, "{}", moved.summary());
        assert_eq!(moved.header("location"), Some("/new"));
        assert_eq!(moved.header("x-site"), Some("a"));
        assert_body(&fetch(&s, "a.example", "/deep/route"), A_APP);
        assert_eq!(fetch(&s, "a.example", "/missing.js").status, 404);
        // b.example and the default site have none of them.
        for host in ["b.example", "localhost"] {
            let resp = fetch(&s, host, "/old");
            assert_eq!(resp.status, 404, "{host}: {}", resp.summary());
            assert_eq!(resp.header("x-site"), None, "{host}: {}", resp.summary());
            assert_eq!(fetch(&s, host, "/deep/route").status, 404, "{host}");
        }
        assert_eq!(fetch(&s, "b.example", "/").header("x-top"), None);
    }

    #[tls]
    /// A host's `[[hosts.auth]]` guards that host's paths alone: the default site and the
    /// other hosts serve the same path without asking.
    fn a_hosts_basic_auth_guards_only_that_host(model m) {
        let users = [format!("bob:{}", bcrypt::hash("builder", 4).unwrap())];
        let s = start_hosts(m, |config| {
            config.hosts[0].auth = vec![AuthRule::new("/only-a.txt", "a-staff", &users).unwrap()];
        });
        let refused = fetch(&s, "a.example", "/only-a.txt");
        assert_eq!(refused.status, 401, "{}", refused.summary());
        let challenge = refused.header("www-authenticate").unwrap_or_default();
        assert!(challenge.contains("realm=\"a-staff\""), "{}", refused.summary());
        let credential = base64::engine::general_purpose::STANDARD.encode("bob:builder");
        let mut c = Client::connect_named(s.addr, "a.example");
        c.send(format!(
            "GET /only-a.txt HTTP/1.1\r\nHost: a.example\r\nAuthorization: Basic {credential}\r\nConnection: close\r\n\r\n"
        ));
        assert_body(&c.read_response(), b"a\n");
        for host in ["b.example", "localhost"] {
            let resp = fetch(&s, host, "/only-a.txt");
            assert_eq!(resp.status, 404, "{host}: not its file, and no password asked: {}", resp.summary());
        }
    }

    #[tls]
    /// Over TLS, the SNI picks the certificate and the Host the site: when they disagree the
    /// answer is 421, over HTTP/1.1 and HTTP/2. Over plaintext there is no SNI, and the Host
    /// alone picks the site.
    fn sni_and_host_must_agree(model m) {
        let s = start_hosts(m, |_| {});
        if !serves_tls(s.addr) {
            assert_body(&fetch_as(&s, "a.example", "b.example", "/"), B_HOME);
            return;
        }
        for (sni, host) in [
            ("a.example", "b.example"),
            ("a.example", "www.a.example"),
            ("localhost", "a.example"),
            ("b.example", "x.w.example"),
            ("a.example", "other.example"),
        ] {
            let resp = fetch_as(&s, sni, host, "/");
            assert_eq!(resp.status, 421, "SNI {sni}, Host {host}: {}", resp.summary());
        }
        // The same names in another case, or with a port, agree.
        assert_body(&fetch_as(&s, "a.example", "A.Example:443", "/"), A_HOME);
        assert_body(&fetch_as(&s, "x.w.example", "x.w.example", "/"), B_HOME);
        // HTTP/1.0 without a Host: nothing to disagree with.
        let mut c = Client::connect_named(s.addr, "a.example");
        c.send("GET / HTTP/1.0\r\n\r\n");
        assert_body(&c.read_response(), &s.site.read("index.html"));
        // HTTP/2: `:authority` is the host.
        let port = s.addr.port();
        let curl = |host: &str| {
            let out = Command::new("curl")
                .args(["-sS", "--http2", "-o", "/dev/null", "-w", "%{http_code} %{http_version}"])
                .arg("--cacert")
                .arg(tls_fixture("ca.pem"))
                .args(["--resolve", &format!("a.example:{port}:127.0.0.1")])
                .args(["-H", &format!("Host: {host}")])
                .arg(format!("https://a.example:{port}/"))
                .output()
                .expect("run curl");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        assert_eq!(curl("b.example"), "421 2");
        assert_eq!(curl(&format!("a.example:{port}")), "200 2");
    }
}
