//! Basic auth (`[[auth]]`): 401 with the rule's challenge without a right credential, the
//! file with one (argon2 and bcrypt hashes), nothing asked outside the rule's paths; a
//! credential checked once is served from the cache; over HTTP/2 as over HTTP/1.1; headless
//! Chromium with the credentials in the URL; `bingfa --hash-password`.

use crate::binary::BIN;
use crate::clients::client;
use crate::support::*;
use argon2::password_hash::PasswordHasher;
use base64::Engine as _;
use bingfa::server::{AuthRule, RedirectRule};
use bingfa::{Config, Model};
use std::io::Write;
use std::process::{Command, Stdio};

const PAGE: &[u8] = b"<!doctype html>\n<title>Staff</title>\n<p id=\"secret\">behind basic auth</p>\n";
const CHALLENGE: &str = "Basic realm=\"staff\", charset=\"UTF-8\"";

/// An argon2id hash with parameters cheap enough for tests (64 KiB, one pass).
fn cheap_argon2(password: &str) -> String {
    let params = argon2::Params::new(64, 1, 1, None).unwrap();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(password.as_bytes())
        .unwrap()
        .to_string()
}

/// `/private/**` for alice (argon2) and bob (bcrypt, cost 4), realm "staff".
fn guard(config: &mut Config) {
    let users = [
        format!("alice:{}", cheap_argon2("wonderland")),
        format!("bob:{}", bcrypt::hash("builder", 4).unwrap()),
    ];
    config.auth = vec![AuthRule::new("/private/**", "staff", &users).unwrap()];
}

fn start(m: Model) -> TestServer {
    TestServer::start_prepared(m, |site| site.write("private/page.html", PAGE), guard)
}

fn authorization(user_password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(user_password);
    format!("Authorization: Basic {encoded}\r\n")
}

#[track_caller]
fn assert_challenged(resp: &Response, what: &str) {
    assert_eq!(resp.status, 401, "{what}: {}", resp.summary());
    assert_eq!(
        resp.header("www-authenticate"),
        Some(CHALLENGE),
        "{what}: {}",
        resp.summary()
    );
}

model_tests! {
    // A rule protects a file under every name that reaches it, not only the one it spells:
    // the clean URL of a page, a folder's index file, a rewrite's target.
    fn other_names_of_a_protected_file_are_protected_too(model m) {
        let s = TestServer::start_prepared(
            m,
            |site| {
                site.write("admin.html", PAGE);
                site.write("docs/index.html", PAGE);
                site.write("private/page.html", PAGE);
            },
            |config| {
                guard(config);
                config.headers = vec!["X-Frame-Options: DENY".parse().unwrap()];
                let users = [format!("alice:{}", cheap_argon2("wonderland"))];
                config.auth.push(AuthRule::new("/admin.html", "staff", &users).unwrap());
                config.auth.push(AuthRule::new("/docs/index.html", "staff", &users).unwrap());
                config.clean_urls = true;
                config.redirects = vec![RedirectRule::new("/open/*", "/private/:splat", 200).unwrap()];
            },
        );
        let refused = exchange(&s, "GET", "/admin.html", "");
        assert_challenged(&refused, "/admin.html");
        assert_eq!(refused.header("x-frame-options"), Some("DENY"), "a 401 carries the site's fields");
        for path in ["/admin", "/docs/", "/open/page.html"] {
            assert_challenged(&exchange(&s, "GET", path, ""), path);
            let resp = exchange(&s, "GET", path, &authorization("alice:wonderland"));
            assert_eq!(resp.status, 200, "{path} with the credential: {}", resp.summary());
            assert_eq!(resp.body, PAGE, "{path}");
            assert_challenged(&exchange(&s, "GET", path, ""), &format!("{path} again, after a 200"));
        }
    }

    // RFC 7617 §2: no credential, or a wrong one, gets 401 with the challenge (GET and HEAD,
    // the files, a missing file and the folder under the rule alike).
    #[tls]
    fn without_the_right_credential_401_with_the_challenge(model m) {
        let s = start(m);
        for path in ["/private/page.html", "/private/missing.html", "/private/", "/private"] {
            for method in ["GET", "HEAD"] {
                assert_challenged(&exchange(&s, method, path, ""), &format!("{method} {path}"));
            }
        }
        for credential in ["alice:builder", "bob:wonderland", "carol:wonderland", "alice:", "alice"] {
            let resp = exchange(&s, "GET", "/private/page.html", &authorization(credential));
            assert_challenged(&resp, credential);
        }
        let resp = exchange(&s, "GET", "/private/page.html", "Authorization: Bearer abc\r\n");
        assert_challenged(&resp, "a Bearer token");
        // Outside the rule nothing is asked.
        let resp = exchange(&s, "GET", "/readme.txt", "");
        assert_body(&resp, &s.site.read("readme.txt"));
        assert_eq!(resp.header("www-authenticate"), None);
    }

    // The right password for an argon2 and a bcrypt hash: the file, as without auth; and the
    // same credential again is answered from the cache, pipelined on one connection too.
    #[tls]
    fn the_right_credential_is_served_and_then_cached(model m) {
        let s = start(m);
        for credential in ["alice:wonderland", "bob:builder"] {
            let resp = exchange(&s, "GET", "/private/page.html", &authorization(credential));
            assert_body(&resp, PAGE);
            let head = exchange(&s, "HEAD", "/private/page.html", &authorization(credential));
            assert_eq!(head.status, 200, "HEAD {credential}: {}", head.summary());
            assert_eq!(head.content_length(), Some(PAGE.len() as u64));
            let missing = exchange(&s, "GET", "/private/missing.html", &authorization(credential));
            assert_eq!(missing.status, 404, "{credential}: {}", missing.summary());
        }
        let mut c = s.connect();
        let alice = authorization("alice:wonderland");
        let one = req("GET", "/private/page.html", &alice);
        c.send(format!("{one}{one}{}", req("GET", "/readme.txt", "")));
        for _ in 0..2 {
            assert_body(&c.read_response(), PAGE);
        }
        assert_body(&c.read_response(), &s.site.read("readme.txt"));
    }
}

/// Over HTTP/2 (prior knowledge): the same 401 and the same file; the handler does not know
/// the protocol.
#[test]
fn over_http2_as_over_http1() {
    if skip(Model::Reactor, "auth::over_http2_as_over_http1") {
        return;
    }
    let Some(curl) = client("curl") else {
        return;
    };
    let s = start(Model::Reactor);
    let url = format!("http://{}/private/page.html", s.addr);
    let fetch = |extra: &[&str]| {
        let mut args = vec![
            "--http2-prior-knowledge",
            "-s",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "--max-time",
            "30",
        ];
        args.extend_from_slice(extra);
        args.push(&url);
        curl.run(&args).success().stdout
    };
    let refused = fetch(&[]);
    assert!(refused.starts_with("HTTP/2 401"), "{refused}");
    assert!(
        refused.contains(&format!("www-authenticate: {CHALLENGE}")),
        "{refused}"
    );
    for credential in ["alice:wonderland", "bob:builder", "bob:builder"] {
        let served = fetch(&["-u", credential]);
        assert!(served.starts_with("HTTP/2 200"), "{credential}: {served}");
        assert!(
            served.contains(&format!("content-length: {}", PAGE.len())),
            "{served}"
        );
    }
}

/// Headless Chromium with the credentials in the URL: asked with the challenge, it sends
/// them and shows the page; without them, or with wrong ones, it does not.
#[test]
fn chromium_with_credentials_in_the_url() {
    if skip(Model::Reactor, "auth::chromium_with_credentials_in_the_url") {
        return;
    }
    let Some(chromium) = client("chromium") else {
        return;
    };
    let s = start(Model::Reactor);
    let dump = |url: &str| {
        let dir = tempfile::tempdir().unwrap();
        let profile = format!("--user-data-dir={}", dir.path().join("profile").display());
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &profile,
            "--dump-dom",
            url,
        ];
        chromium.run(&args).success()
    };
    let with = dump(&format!("http://alice:wonderland@{}/private/page.html", s.addr));
    assert!(
        with.stdout.contains(r#"<p id="secret">behind basic auth</p>"#),
        "{}",
        with.output()
    );
    // Without credentials, or with wrong ones, headless Chromium cannot ask for others: the
    // load ends (net::ERR_INVALID_AUTH_CREDENTIALS) and the page is not shown.
    for url in [
        format!("http://{}/private/page.html", s.addr),
        format!("http://alice:builder@{}/private/page.html", s.addr),
    ] {
        let refused = dump(&url);
        assert!(
            !refused.stdout.contains("behind basic auth"),
            "{url}: {}",
            refused.output()
        );
    }
}

/// `bingfa --hash-password` prints an argon2id hash of the line on stdin (OWASP parameters)
/// that `[[auth]]` takes and that verifies the password.
#[test]
fn hash_password_through_the_binary() {
    let mut child = Command::new(BIN)
        .arg("--hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
    child.stdin.take().unwrap().write_all(b"open sesame\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8(out.stdout).unwrap();
    let hash = printed.strip_suffix('\n').expect("one line");
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
    let parsed = argon2::password_hash::phc::PasswordHash::new(hash).unwrap();
    use argon2::password_hash::PasswordVerifier;
    assert!(argon2::Argon2::default()
        .verify_password(b"open sesame", &parsed)
        .is_ok());
    assert!(AuthRule::new("/**", "r", &[format!("a:{hash}")]).is_ok());
    // Nothing on stdin: an error, exit 1.
    let empty = Command::new(BIN)
        .arg("--hash-password")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(empty.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&empty.stderr).starts_with("bingfa: no password on stdin"));
}
