//! Which file a path finds: `--fallback` (a single-page app's page for its routes),
//! `--clean-urls` (`/about` serves `about.html`, `/about.html` redirects there), `--index`
//! (a directory's index names, in order), and `/.well-known/` (RFC 8615) served while
//! dotfiles are hidden.

use crate::support::*;

const HTML: &str = "text/html; charset=utf-8";

/// A server of `model` whose 404s for routes are `index.html`.
fn spa(model: bingfa::Model) -> TestServer {
    TestServer::start_with(model, |c| c.fallback = Some("index.html".into()))
}

/// A server of `model` with clean URLs, and pages at `about.html` and `evil.com/x.html`.
fn clean(model: bingfa::Model) -> TestServer {
    TestServer::start_prepared(
        model,
        |site| {
            site.write("about.html", b"<!doctype html><title>About</title>\n");
            site.write("evil.com/x.html", b"<!doctype html><title>x</title>\n");
        },
        |c| c.clean_urls = true,
    )
}

/// Asserts a 200 of `page` (all of it for GET, its length for HEAD) as HTML.
#[track_caller]
fn assert_page(resp: &Response, method: &str, page: &[u8]) {
    assert_eq!(resp.status, 200, "{}", resp.summary());
    assert_eq!(resp.header("content-type"), Some(HTML), "{}", resp.summary());
    assert_eq!(
        resp.content_length(),
        Some(page.len() as u64),
        "{}",
        resp.summary()
    );
    if method == "GET" {
        assert!(resp.body == page, "not the page: {}", resp.summary());
    }
}

model_tests! {
    // A route of a single-page app, which exists only in the app's script, gets the app's
    // page: any path without an extension, a folder path, a `.html` path.
    fn the_fallback_page_answers_routes(model m) {
        let s = spa(m);
        let page = s.site.read("index.html");
        let etag = strong_etag(&exchange(&s, "GET", "/index.html", ""));
        let rows: Vec<(&str, &str)> = ["/deep/link", "/users/42", "/deep/link/", "/x.html", "/docs/x.html"]
            .iter()
            .flat_map(|path| [("GET", *path), ("HEAD", *path)])
            .collect();
        table(s.model, &rows, |(method, path)| format!("{method} {path}"), |&(method, path)| {
            let resp = exchange(&s, method, path, "");
            assert_page(&resp, method, &page);
            // The page's own validators, so that a browser's cached copy serves every route.
            assert_eq!(resp.header("etag"), Some(etag.as_str()), "{}", resp.summary());
            assert!(resp.header("last-modified").is_some(), "{}", resp.summary());
        });
        // What exists is served as it is.
        assert_body(&exchange(&s, "GET", "/readme.txt", ""), &s.site.read("readme.txt"));
        assert_body(&exchange(&s, "GET", "/docs/guide.html", ""), &s.site.read("docs/guide.html"));
    }

    // A missing asset stays a 404: a broken script or stylesheet must never come back as
    // HTML. Nor does a dot path get the page: `/.env` must not look like it exists.
    fn missing_assets_and_dot_paths_stay_404(model m) {
        let s = spa(m);
        let page = s.site.read("index.html");
        for path in ["/app2.js", "/missing.css", "/img/logo.png", "/users/john.doe", "/.env", "/.secret",
                     "/.well-known/acme-challenge/token"] {
            let resp = check(&s, get_req(path), 404, After::Any);
            assert!(resp.body != page, "{path}: the fallback page with a 404");
        }
        check(&s, req("POST", "/deep/link", "Content-Length: 0\r\n"), 405, After::Any);
    }

    // RFC 9110 §13.1.2 and §14: conditional requests and ranges on a route work on the page,
    // since its validators are the page's.
    fn the_fallback_page_answers_conditions_and_ranges(model m) {
        let s = spa(m);
        s.site.set_mtime("index.html", long_ago());
        let page = s.site.read("index.html");
        let etag = strong_etag(&exchange(&s, "GET", "/index.html", ""));
        let resp = exchange(&s, "GET", "/users/42", &format!("If-None-Match: {etag}\r\n"));
        assert_eq!(resp.status, 304, "{}", resp.summary());
        assert_eq!(resp.header("etag"), Some(etag.as_str()), "{}", resp.summary());
        let resp = exchange(&s, "GET", "/users/42", &format!("If-Modified-Since: {}\r\n", LONG_AGO[0]));
        assert_eq!(resp.status, 304, "{}", resp.summary());
        let resp = exchange(&s, "GET", "/users/42", "Range: bytes=0-9\r\n");
        assert_eq!(resp.status, 206, "{}", resp.summary());
        assert_eq!(resp.body, &page[..10], "{}", resp.summary());
        let resp = exchange(&s, "GET", "/users/42", "If-None-Match: \"other\"\r\n");
        assert_page(&resp, "GET", &page);
    }

    // Asked again and again, a route keeps getting the page; and the page is never kept
    // in memory as the route's answer (the hot-file cache keeps a small file's answer by raw
    // path for `--file-cache-valid`, 1 s here): a file created at the route's path is served
    // on the very next request.
    fn a_route_is_the_page_until_a_file_takes_its_path(model m) {
        let s = spa(m);
        let page = s.site.read("index.html");
        for _ in 0..3 {
            assert_page(&exchange(&s, "GET", "/later", ""), "GET", &page);
        }
        s.site.write("later", b"a file now");
        assert_body(&exchange(&s, "GET", "/later", ""), b"a file now");
    }

    // `/about` serves `about.html`, with its validators and as HTML.
    fn clean_urls_serve_the_html_page(model m) {
        let s = clean(m);
        let page = s.site.read("about.html");
        for method in ["GET", "HEAD"] {
            let resp = exchange(&s, method, "/about", "");
            assert_page(&resp, method, &page);
        }
        let first = exchange(&s, "GET", "/about", "");
        let again = exchange(&s, "GET", "/about", &format!("If-None-Match: {}\r\n", strong_etag(&first)));
        assert_eq!(again.status, 304, "{}", again.summary());
        assert_page(&exchange(&s, "GET", "/docs/guide", ""), "GET", &s.site.read("docs/guide.html"));
        // A folder of the name wins, as does a file of it; nothing of it is a 404.
        assert_eq!(exchange(&s, "GET", "/docs", "").status, 301);
        assert_body(&exchange(&s, "GET", "/readme.txt", ""), &s.site.read("readme.txt"));
        for missing in ["/nope", "/about/", "/readme"] {
            check(&s, get_req(missing), 404, After::Any);
        }
    }

    // RFC 9110 §15.4.9: each page has one URL; its `.html` URL (or its folder's index file's)
    // is redirected there with 308, the query kept, the `Location` built from the decoded
    // path (one leading slash, escaped again).
    fn clean_urls_redirect_to_the_one_url(model m) {
        let s = clean(m);
        let rows = [
            ("/about.html", "/about"),
            ("/about.html?q=1&r=%7E", "/about?q=1&r=%7E"),
            ("/docs/guide.html", "/docs/guide"),
            ("/docs/index.html", "/docs/"),
            ("/docs/index.html?page=2", "/docs/?page=2"),
            ("/index.html", "/"),
            ("//about.html", "/about"),
            ("//evil.com/x.html", "/evil.com/x"),
            ("/%2F%2Fevil.com/x.html", "/evil.com/x"),
            ("/docs/../about.html", "/about"),
        ];
        table(s.model, &rows, |(path, _)| path.to_string(), |&(path, location)| {
            for method in ["GET", "HEAD"] {
                let resp = exchange(&s, method, path, "");
                assert_eq!(resp.status, 308, "{method} {path}: {}", resp.summary());
                assert_eq!(resp.header("location"), Some(location), "{method} {path}: {}", resp.summary());
                assert_eq!(resp.header_count("location"), 1, "{}", resp.summary());
            }
        });
        // Followed, the redirect leads to the page.
        assert_page(&exchange(&s, "GET", "/about?q=1&r=%7E", ""), "GET", &s.site.read("about.html"));
    }

    // Several index names, tried in order; each served as what its name says.
    fn index_names_are_tried_in_order(model m) {
        let s = TestServer::start_prepared(
            m,
            |site| {
                site.write("docs/index.htm", b"<p>htm first</p>\n");
                site.write("docs/index.htm.gz", b"gzipped htm");
                site.write("plain/index.txt", b"plain text index\n");
                site.write("plain/index.txt.gz", b"gzipped txt");
            },
            |c| c.index = ["index.htm", "index.html", "index.txt"].map(String::from).to_vec(),
        );
        let resp = exchange(&s, "GET", "/docs/", "");
        assert_page(&resp, "GET", b"<p>htm first</p>\n");
        let resp = exchange(&s, "GET", "/", "");
        assert_page(&resp, "GET", &s.site.read("index.html"));
        let resp = exchange(&s, "GET", "/plain/", "");
        assert_body(&resp, b"plain text index\n");
        assert_eq!(resp.header("content-type"), Some("text/plain; charset=utf-8"), "{}", resp.summary());
        // The chosen name's precompressed sibling, with the chosen name's type.
        let resp = exchange(&s, "GET", "/docs/", "Accept-Encoding: gzip\r\n");
        assert_body(&resp, b"gzipped htm");
        assert_eq!(resp.header("content-encoding"), Some("gzip"), "{}", resp.summary());
        assert_eq!(resp.header("content-type"), Some(HTML), "{}", resp.summary());
        let resp = exchange(&s, "GET", "/plain/", "Accept-Encoding: gzip\r\n");
        assert_body(&resp, b"gzipped txt");
        assert_eq!(resp.header("content-type"), Some("text/plain; charset=utf-8"), "{}", resp.summary());
        // No name there and no listing: 404.
        check(&s, get_req("/noindex/"), 404, After::Any);
    }

    // RFC 8615: `/.well-known/` is for what others must fetch (ACME challenges,
    // security.txt), so it is served while dotfiles are hidden; dot names in it and every
    // other dot name stay hidden.
    fn well_known_is_served_while_dotfiles_are_hidden(model m) {
        let s = TestServer::start_prepared(
            m,
            |site| {
                site.write(".well-known/security.txt", b"Contact: mailto:security@example.com\n");
                site.write(".well-known/acme-challenge/tok-123", b"tok-123.thumbprint");
                site.write(".well-known/.secret", b"hidden");
                site.write(".env", b"SECRET=1\n");
            },
            |_| {},
        );
        let resp = exchange(&s, "GET", "/.well-known/security.txt", "");
        assert_body(&resp, b"Contact: mailto:security@example.com\n");
        assert_eq!(resp.header("content-type"), Some("text/plain; charset=utf-8"), "{}", resp.summary());
        assert_body(&exchange(&s, "GET", "/.well-known/acme-challenge/tok-123", ""), b"tok-123.thumbprint");
        assert_body(&exchange(&s, "GET", "/%2Ewell-known/security.txt", ""), b"Contact: mailto:security@example.com\n");
        for hidden in ["/.env", "/.secret", "/.hidden.txt", "/.well-known/.secret", "/docs/.well-known/x"] {
            check(&s, get_req(hidden), 404, After::Any);
        }
    }
}
