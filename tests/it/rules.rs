//! The site's rules: `--header` and `[[headers]]` (on files, error pages and redirects, from
//! memory or not, over HTTP/1.1 and HTTP/2), `--cors` (any origin, listed origins, preflights,
//! OPTIONS without CORS), `[[redirects]]` (every status, `:splat` and `:name`, the query,
//! rewrites, attempts at header injection and open redirects), and bad rules as one line
//! naming the file and line.

use bingfa::server::{AllowOrigin, Cors, HeaderField, HeaderRule, RedirectRule};
use bingfa::Config;
use std::process::Command;

use crate::binary::BIN;
use crate::h2::H2Client;
use crate::support::*;

fn field(text: &str) -> HeaderField {
    text.parse().unwrap()
}

fn header_rule(path: &str, set: &[(&str, &str)]) -> HeaderRule {
    let set: Vec<(String, String)> = set.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    HeaderRule::new(path, &set).unwrap()
}

fn redirect(from: &str, to: &str, status: u16) -> RedirectRule {
    RedirectRule::new(from, to, status).unwrap()
}

fn origins(list: &[&str]) -> Cors {
    Cors::new(list.iter().map(|o| o.parse::<AllowOrigin>().unwrap()))
}

/// `[[headers]]` for the docs and for text files, which drop nosniff.
fn docs_rules(c: &mut Config) {
    c.header_rules = vec![
        header_rule("/docs/**", &[("X-Docs", "yes"), ("Cache-Control", "no-store")]),
        header_rule("/*.txt", &[("X-Content-Type-Options", "")]),
    ];
}

/// Sends `target` twice on one connection (the second may come from memory) with `extra`
/// header lines, and checks both answers with `check`.
#[track_caller]
fn twice(s: &TestServer, method: &str, target: &str, extra: &str, check: impl Fn(&Response)) {
    let mut c = s.connect();
    for _ in 0..2 {
        c.send(req(method, target, extra));
        let resp = if method == "HEAD" {
            c.read_head_response()
        } else {
            c.read_response()
        };
        check(&resp);
    }
}

/// A Location is header-safe: visible ASCII only, and on-site when relative.
#[track_caller]
fn assert_clean_location(resp: &Response) -> &str {
    let location = resp
        .header("location")
        .unwrap_or_else(|| panic!("no Location: {}", resp.summary()));
    assert!(location.bytes().all(|b| b.is_ascii_graphic()), "{location:?}");
    assert!(
        !location.starts_with("//") && !location.starts_with("/\\"),
        "{location:?}"
    );
    location
}

model_tests! {
    // --header: on files (from disk and from memory), HEAD, 404 pages and redirects.
    fn header_option_is_on_every_response(model m) {
        let s = TestServer::start_with(m, |c| {
            c.headers = vec![field("X-Site: rules test"), field("X-Frame-Options: DENY")];
        });
        let check = |resp: &Response, status: u16| {
            assert_eq!(resp.status, status, "{}", resp.summary());
            assert_eq!(resp.header("x-site"), Some("rules test"), "{}", resp.summary());
            assert_eq!(resp.header("x-frame-options"), Some("DENY"), "{}", resp.summary());
            assert_eq!(resp.header("x-content-type-options"), Some("nosniff"), "{}", resp.summary());
        };
        twice(&s, "GET", "/readme.txt", "", |resp| {
            check(resp, 200);
            assert_body(resp, &s.site.read("readme.txt"));
        });
        twice(&s, "HEAD", "/readme.txt", "", |resp| check(resp, 200));
        twice(&s, "GET", "/nope.html", "", |resp| check(resp, 404));
        twice(&s, "GET", "/docs", "", |resp| check(resp, 301));
        check(&exchange(&s, "GET", "/readme.txt", "Range: bytes=0-1\r\n"), 206);
    }

    // [[headers]]: a glob's fields on the paths it matches (decoded: `%2e%2e` cannot dodge
    // or borrow a rule), on 404s beneath it too, and nosniff dropped by an empty value.
    fn header_rules_follow_their_globs(model m) {
        let s = TestServer::start_with(m, docs_rules);
        twice(&s, "GET", "/docs/guide.html", "", |resp| {
            assert_eq!(resp.status, 200, "{}", resp.summary());
            assert_eq!(resp.header("x-docs"), Some("yes"), "{}", resp.summary());
            assert_eq!(resp.header("cache-control"), Some("no-store"), "{}", resp.summary());
            assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
        });
        twice(&s, "GET", "/docs/nope.html", "", |resp| {
            assert_eq!(resp.status, 404, "{}", resp.summary());
            assert_eq!(resp.header("x-docs"), Some("yes"), "{}", resp.summary());
        });
        twice(&s, "GET", "/readme.txt", "", |resp| {
            assert_eq!(resp.status, 200, "{}", resp.summary());
            assert_eq!(resp.header("x-docs"), None, "{}", resp.summary());
            assert_eq!(resp.header("x-content-type-options"), None, "{}", resp.summary());
        });
        twice(&s, "GET", "/docs/%2e%2e/readme.txt", "", |resp| {
            assert_eq!(resp.status, 200, "{}", resp.summary());
            assert_eq!(resp.header("x-docs"), None, "/readme.txt is not in /docs: {}", resp.summary());
            assert_eq!(resp.header("x-content-type-options"), None, "{}", resp.summary());
        });
        twice(&s, "GET", "/index.html", "", |resp| {
            assert_eq!(resp.header("x-docs"), None, "{}", resp.summary());
            assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
        });
    }

    // --cors alone: `*` on every response; a preflight gets 204 and what it may do.
    fn cors_for_any_origin(model m) {
        let s = TestServer::start_with(m, |c| c.cors = Cors::AnyOrigin);
        for extra in ["", "Origin: https://a.example\r\n"] {
            twice(&s, "GET", "/readme.txt", extra, |resp| {
                assert_eq!(resp.status, 200, "{}", resp.summary());
                assert_eq!(resp.header("access-control-allow-origin"), Some("*"), "{}", resp.summary());
                assert_eq!(resp.header("vary"), Some("Accept-Encoding"), "{}", resp.summary());
            });
        }
        let preflight = "Origin: https://a.example\r\nAccess-Control-Request-Method: GET\r\n\
                         Access-Control-Request-Headers: content-type, x-token\r\n";
        twice(&s, "OPTIONS", "/readme.txt", preflight, |resp| {
            assert_eq!(resp.status, 204, "{}", resp.summary());
            assert_eq!(resp.header("access-control-allow-origin"), Some("*"));
            assert_eq!(resp.header("access-control-allow-methods"), Some("GET, HEAD"));
            assert_eq!(resp.header("access-control-max-age"), Some("86400"));
            assert_eq!(resp.header("access-control-allow-headers"), Some("content-type, x-token"));
            assert_eq!(resp.header("content-length"), None, "{}", resp.summary());
            assert!(resp.body.is_empty());
        });
        let bad_list = "Origin: https://a.example\r\nAccess-Control-Request-Method: GET\r\n\
                        Access-Control-Request-Headers: a b\r\n";
        let resp = exchange(&s, "OPTIONS", "/nope", bad_list);
        assert_eq!(resp.status, 204, "{}", resp.summary());
        assert_eq!(resp.header("access-control-allow-headers"), None, "{}", resp.summary());
        // Not a preflight: the site says 405, as the core does without CORS.
        for extra in ["", "Origin: https://a.example\r\n"] {
            let resp = exchange(&s, "OPTIONS", "/readme.txt", extra);
            assert_eq!(resp.status, 405, "{extra}: {}", resp.summary());
            assert_eq!(resp.header("allow"), Some("GET, HEAD"), "{}", resp.summary());
        }
    }

    // --cors=ORIGIN: a listed Origin is echoed, with `Vary: Origin` on every response; any
    // other gets no CORS field, from disk or from memory, in any order.
    fn cors_for_listed_origins(model m) {
        let s = TestServer::start_with(m, |c| {
            c.cors = origins(&["https://a.example", "http://localhost:8080"]);
        });
        let mut c = s.connect();
        for (origin, allowed) in [
            (Some("https://a.example"), Some("https://a.example")),
            (Some("https://evil.example"), None),
            (None, None),
            (Some("http://localhost:8080"), Some("http://localhost:8080")),
            (Some("https://a.example.evil.example"), None),
            (Some("https://a.example"), Some("https://a.example")),
        ] {
            let extra = origin.map(|o| format!("Origin: {o}\r\n")).unwrap_or_default();
            c.send(req("GET", "/readme.txt", &extra));
            let resp = c.read_response();
            assert_eq!(resp.status, 200, "{}", resp.summary());
            assert_eq!(resp.header("access-control-allow-origin"), allowed, "{origin:?}: {}", resp.summary());
            assert!(resp.has_token("vary", "origin"), "{origin:?}: {}", resp.summary());
        }
        let preflight = |origin: &str| {
            format!("Origin: {origin}\r\nAccess-Control-Request-Method: GET\r\n")
        };
        let resp = exchange(&s, "OPTIONS", "/readme.txt", &preflight("https://a.example"));
        assert_eq!(resp.status, 204, "{}", resp.summary());
        assert_eq!(resp.header("access-control-allow-origin"), Some("https://a.example"));
        let resp = exchange(&s, "OPTIONS", "/readme.txt", &preflight("https://evil.example"));
        assert_eq!(resp.status, 204, "{}", resp.summary());
        assert_eq!(resp.header("access-control-allow-origin"), None, "{}", resp.summary());
    }

    // Without --cors, OPTIONS is the core's 405, preflight or not.
    fn options_without_cors_is_405(s) {
        let preflight = "Origin: https://a.example\r\nAccess-Control-Request-Method: GET\r\n";
        let resp = exchange(&s, "OPTIONS", "/readme.txt", preflight);
        assert_eq!(resp.status, 405, "{}", resp.summary());
        assert_eq!(resp.header("allow"), Some("GET, HEAD"), "{}", resp.summary());
        assert_eq!(resp.header("access-control-allow-origin"), None);
    }

    // Every redirect status, :splat and :name, the query kept unless `to` has one, an
    // absolute URL; first match wins; fields on redirects too.
    fn redirects_by_status_and_capture(model m) {
        let s = TestServer::start_with(m, |c| {
            c.headers = vec![field("X-Site: 1")];
            c.redirects = vec![
                redirect("/r301/*", "/to/:splat", 301),
                redirect("/r302/*", "/to/:splat", 302),
                redirect("/r303/*", "/to/:splat", 303),
                redirect("/r307/*", "/to/:splat", 307),
                redirect("/r308/*", "/to/:splat", 308),
                redirect("/blog/:year/:slug", "/posts/:year/:slug.html", 301),
                redirect("/blog/*", "/never", 302),
                redirect("/away/*", "https://new.example/:splat", 308),
                redirect("/fixed", "/to?from=fixed", 302),
            ];
        });
        let check = |target: &str, status: u16, location: &str| {
            twice(&s, "GET", target, "", |resp| {
                assert_eq!(resp.status, status, "{target}: {}", resp.summary());
                assert_eq!(assert_clean_location(resp), location, "{target}");
                assert_eq!(resp.header("x-site"), Some("1"), "{target}: {}", resp.summary());
            });
        };
        for status in [301, 302, 303, 307, 308] {
            check(&format!("/r{status}/a/b.html"), status, "/to/a/b.html");
        }
        check("/r301/dir/", 301, "/to/dir/");
        check("/r302/a?x=1&y=%20z", 302, "/to/a?x=1&y=%20z");
        check("/blog/2024/hello", 301, "/posts/2024/hello.html");
        check("/blog/2024/hello/more", 302, "/never");
        check("/away/a%20b/c?q=1", 308, "https://new.example/a%20b/c?q=1");
        check("/fixed?x=1", 302, "/to?from=fixed");
        let resp = exchange(&s, "HEAD", "/r307/x", "");
        assert_eq!(resp.status, 307, "{}", resp.summary());
        assert_eq!(assert_clean_location(&resp), "/to/x");
    }

    // A rewrite serves its target as if asked for: no redirect, the target's content, again
    // and again; a redirect holds even for a file that exists, however it is spelled.
    fn rewrites_serve_their_target(model m) {
        let s = TestServer::start_prepared(
            m,
            |site| site.write("old.txt", b"old content\n"),
            |c| {
                c.redirects = vec![
                    redirect("/app/*", "/index.html", 200),
                    redirect("/guide/:page", "/docs/:page.html", 200),
                    redirect("/old.txt", "/readme.txt", 301),
                ];
            },
        );
        for target in ["/app/", "/app/deep/link", "/app/deep/link?q=1"] {
            twice(&s, "GET", target, "", |resp| {
                assert_eq!(resp.status, 200, "{target}: {}", resp.summary());
                assert_eq!(resp.header("location"), None);
                assert_eq!(resp.header("content-type"), Some("text/html; charset=utf-8"));
                assert_body(resp, &s.site.read("index.html"));
            });
        }
        twice(&s, "GET", "/guide/guide", "", |resp| assert_body(resp, &s.site.read("docs/guide.html")));
        twice(&s, "GET", "/guide/nope", "", |resp| assert_eq!(resp.status, 404, "{}", resp.summary()));
        for target in ["/old.txt", "/ol%64.txt", "/docs/../old.txt"] {
            twice(&s, "GET", target, "", |resp| {
                assert_eq!(resp.status, 301, "{target}: {}", resp.summary());
                assert_eq!(resp.header("location"), Some("/readme.txt"));
            });
        }
        assert_body(&exchange(&s, "GET", "/index.html", ""), &s.site.read("index.html"));
    }

    // What a request holds never reaches a Location unencoded: no CR/LF (no injected
    // field), no `//host` and no `/\host` (no open redirect).
    fn redirect_locations_are_clean(model m) {
        let s = TestServer::start_with(m, |c| {
            c.redirects = vec![
                redirect("/blog/*", "/posts/:splat", 301),
                redirect("/go/*", "/:splat", 302),
                redirect("/u/:name", "/:name/", 302),
                redirect("/e/*", "/:splat/evil.example", 302),
            ];
        });
        let resp = exchange(&s, "GET", "/blog/%0d%0aSet-Cookie:x", "");
        assert_eq!(resp.status, 301, "{}", resp.summary());
        assert_eq!(assert_clean_location(&resp), "/posts/%0D%0ASet-Cookie%3Ax");
        assert_eq!(resp.header("set-cookie"), None, "{}", resp.summary());
        for target in [
            "/go//evil.example",
            "/go/%2F%2Fevil.example",
            "/go/%2fevil.example/x",
            "/go/.//evil.example",
            "/u/%2F%2Fevil.example",
        ] {
            let resp = exchange(&s, "GET", target, "");
            if resp.status == 404 {
                continue; // `/u/` with two segments matches no rule
            }
            assert_eq!(resp.status, 302, "{target}: {}", resp.summary());
            let location = assert_clean_location(&resp);
            assert!(location.starts_with("/evil.example"), "{target}: {location}");
        }
        // An empty splat first in `to` does not make `//evil.example` either.
        for target in ["/e", "/e/", "/e//"] {
            let resp = exchange(&s, "GET", target, "");
            assert_eq!(assert_clean_location(&resp), "/evil.example", "{target}");
        }
        let resp = exchange(&s, "GET", "/go/%5Cevil.example", "");
        assert_eq!(resp.status, 400, "a backslash is never a path: {}", resp.summary());
        let resp = exchange(&s, "GET", "/go/a?b=%0d%0a", "");
        assert_eq!(assert_clean_location(&resp), "/a?b=%0d%0a");
    }

    // The rules are the site's, not HTTP/1.1's: the same over HTTP/2.
    fn rules_apply_over_http2(model m) {
        let s = TestServer::start_with(m, |c| {
            docs_rules(c);
            c.cors = Cors::AnyOrigin;
            c.redirects = vec![redirect("/blog/*", "/posts/:splat", 308)];
        });
        let mut client = H2Client::connect(&s);
        for _ in 0..2 {
            let answer = client.get("/docs/guide.html");
            assert_eq!(answer.status, 200, "{answer:?}");
            let field = |name: &str| {
                answer.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
            };
            assert_eq!(field("x-docs"), Some("yes"), "{answer:?}");
            assert_eq!(field("cache-control"), Some("no-store"), "{answer:?}");
            assert_eq!(field("access-control-allow-origin"), Some("*"), "{answer:?}");
        }
        let answer = client.get("/readme.txt");
        assert!(!answer.fields.iter().any(|(n, _)| n == "x-content-type-options"), "{answer:?}");
        let answer = client.get("/blog/a%0d%0ab");
        assert_eq!(answer.status, 308, "{answer:?}");
        let location = answer.fields.iter().find(|(n, _)| n == "location").map(|(_, v)| v.as_str());
        assert_eq!(location, Some("/posts/a%0D%0Ab"), "{answer:?}");
    }
}

/// `bingfa --config FILE --print-config` (which exits, whatever the file says) with `text`
/// as the file: its status and stderr.
fn print_config_with(text: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, text).unwrap();
    let path = path.to_str().unwrap().to_string();
    let out = Command::new(BIN)
        .args(["--config", &path, "--print-config"])
        .current_dir(dir.path())
        .env_remove("BINGFA_CONFIG")
        .output()
        .expect("run bingfa");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        path,
    )
}

#[test]
fn bad_rules_are_one_line_naming_the_file_and_line() {
    for (text, line, words) in [
        (
            "[[headers]]\npath = \"/a\"\nset = { \"Bad Name\" = \"x\" }\n",
            3,
            "headers: \"Bad Name\" is not a valid header field name",
        ),
        (
            "[[headers]]\npath = \"/a\"\n\n[headers.set]\nX-A = \"1\"\nX-B = \"a\\u0000b\"\n",
            6,
            "headers: the value of X-B is not valid header field content",
        ),
        (
            "[[headers]]\npath = \"a/**\"\nset = {}\n",
            2,
            "headers: path: a path pattern starts with '/'",
        ),
        (
            "[[redirects]]\nfrom = \"/a\"\nto = \"/b\"\nstatus = 305\n",
            4,
            "redirects: status must be 301, 302, 303, 307, 308, or 200 for a rewrite, got 305",
        ),
        (
            "[[redirects]]\nfrom = \"/a/:id\"\nto = \"/b/:slug\"\n",
            3,
            "redirects: ':slug' is not a name 'from' captures",
        ),
        (
            "[[redirects]]\nfrom = \"a\"\nto = \"/b\"\n",
            2,
            "redirects: 'from' must be a path starting with '/'",
        ),
        (
            "[[redirects]]\nfrom = \"/a\"\nto = \"//evil.example\"\n",
            3,
            "redirects: 'to' must be a path starting with one '/'",
        ),
        (
            "header = \"Bad Name: x\"\n",
            1,
            "header: invalid value 'Bad Name: x'",
        ),
        (
            "cors = [\"https://a.example/path\"]\n",
            1,
            "cors: expected * or an origin",
        ),
    ] {
        let (status, stderr, path) = print_config_with(text);
        let expected = format!("bingfa: {path} line {line}: {words}");
        assert_eq!(status, Some(1), "{text}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{text}: {stderr}");
        assert!(
            stderr.starts_with(&expected),
            "{text}:\n{stderr}\nnot:\n{expected}"
        );
    }
}

#[test]
fn a_bad_header_option_names_the_option() {
    let out = Command::new(BIN)
        .args(["--header", "X-A: a\u{7f}b", "--print-config"])
        .env_remove("BINGFA_CONFIG")
        .output()
        .expect("run bingfa");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("'--header <NAME: VALUE>'") && stderr.contains("the value of X-A is not valid"),
        "{stderr}"
    );
}

#[test]
fn print_config_shows_the_rules_and_reads_them_back() {
    let text = "header = [\"X-A: 1\"]\ncors = \"*\"\n\n[[headers]]\npath = \"/assets/**\"\nset = { \"Cache-Control\" = \"immutable\", \"X-Content-Type-Options\" = \"\" }\n\n[[redirects]]\nfrom = \"/blog/*\"\nto = \"/posts/:splat\"\n";
    let dir = tempfile::tempdir().unwrap();
    let print = |text: &str, name: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = Command::new(BIN)
            .args(["--config", path.to_str().unwrap(), "--print-config"])
            .env_remove("BINGFA_CONFIG")
            .output()
            .expect("run bingfa");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let printed = print(text, "first.toml");
    for line in [
        "header = [\"X-A: 1\"]",
        "cors = \"*\"",
        "path = \"/assets/**\"",
        "set = { \"Cache-Control\" = \"immutable\", \"X-Content-Type-Options\" = \"\" }",
        "from = \"/blog/*\"",
        "to = \"/posts/:splat\"",
        "status = 301",
    ] {
        assert!(
            printed.lines().any(|l| l.starts_with(line)),
            "no {line} in\n{printed}"
        );
    }
    let again = print(&printed, "second.toml");
    let values = |text: &str| text.parse::<toml::Table>().unwrap();
    assert_eq!(values(&again), values(&printed), "{printed}\n{again}");
}
