//! Serving files: bodies, headers, content types, directories, dotfiles,
//! symlinks inside the root and the small-file cache.

use std::time::{Duration, SystemTime};

use crate::support::*;

/// GETs `path` on a fresh connection that the server then closes.
fn fetch(s: &TestServer, path: &str) -> Response {
    let mut resps = get(s, req("GET", path, "Connection: close\r\n"));
    assert_eq!(resps.len(), 1, "GET {path}: {resps:?}");
    resps.remove(0)
}

model_tests! {
    fn index_html_at_root(s) {
        let resp = fetch(&s, "/");
        assert_body(&resp, &s.site.read("index.html"));
        assert_eq!(resp.minor, 1);
        // RFC 9110 §6.6.1: Date, an IMF-fixdate.
        let date = resp.header("date").unwrap_or_else(|| panic!("no Date: {}", resp.summary()));
        let parsed = httpdate::parse_http_date(date)
            .unwrap_or_else(|e| panic!("Date {date:?} is not an HTTP date: {e}"));
        assert!(parsed > SystemTime::UNIX_EPOCH);
        assert_eq!(resp.header_count("date"), 1);
        assert_eq!(resp.header("server"), Some("bingfa"));
        assert_eq!(resp.content_length(), Some(s.site.read("index.html").len() as u64));
        assert_eq!(resp.header_count("content-length"), 1);
        assert_eq!(resp.header("content-type"), Some("text/html; charset=utf-8"));
    }

    // RFC 9110 §8.3: Content-Type by file extension.
    fn content_types(s) {
        let table: &[(&str, &[&str])] = &[
            ("/index.html", &["text/html; charset=utf-8"]),
            ("/style.css", &["text/css; charset=utf-8"]),
            (
                "/app.js",
                &["text/javascript; charset=utf-8", "application/javascript; charset=utf-8"],
            ),
            ("/data.json", &["application/json", "application/json; charset=utf-8"]),
            ("/logo.svg", &["image/svg+xml"]),
            ("/pixel.png", &["image/png"]),
            ("/photo.jpg", &["image/jpeg"]),
            ("/readme.txt", &["text/plain; charset=utf-8"]),
            ("/notes.unknownext", &["application/octet-stream"]),
        ];
        let mut c = s.connect();
        let mut wrong = Vec::new();
        for (path, accepted) in table {
            c.send(get_req(path));
            let resp = c.read_response();
            assert_body(&resp, &s.site.read(&path[1..]));
            let ct = resp.header("content-type").unwrap_or("(none)").to_string();
            if !accepted.contains(&ct.as_str()) {
                wrong.push(format!("{path}: {ct:?}, expected one of {accepted:?}"));
            }
        }
        assert!(wrong.is_empty(), "wrong Content-Type:\n{}", wrong.join("\n"));
    }

    #[tls]
    fn big_file_is_byte_exact(s) {
        let expected = big_bin();
        let mut c = s.connect();
        c.send(get_req("/big.bin"));
        let resp = c.read_response();
        assert_eq!(resp.content_length(), Some(BIG_LEN as u64));
        assert_body(&resp, &expected);
        // And again on the same keep-alive connection.
        c.send(get_req("/big.bin"));
        assert_body(&c.read_response(), &expected);
        c.send(get_req("/readme.txt"));
        assert_body(&c.read_response(), &s.site.read("readme.txt"));
    }

    #[tls]
    fn pipelined_big_files(s) {
        let expected = big_bin();
        let mut c = s.connect();
        c.send(get_req("/big.bin") + &get_req("/readme.txt") + &get_req("/big.bin"));
        assert_body(&c.read_response(), &expected);
        assert_body(&c.read_response(), &s.site.read("readme.txt"));
        assert_body(&c.read_response(), &expected);
    }

    // RFC 3986 §2.1: percent-encoded octets, UTF-8 file names.
    fn percent_encoded_names(s) {
        assert_body(&fetch(&s, "/%E4%B8%AD%E6%96%87.txt"), &s.site.read("中文.txt"));
        assert_body(&fetch(&s, "/%e4%b8%ad%e6%96%87.txt"), &s.site.read("中文.txt"));
        assert_body(&fetch(&s, "/a%20b.html"), &s.site.read("a b.html"));
        assert_body(&fetch(&s, "/read%6De.txt"), &s.site.read("readme.txt"));
    }

    // RFC 9110 §15.4.2: a directory without the trailing slash redirects.
    fn directory_without_slash_redirects(s) {
        let resp = fetch(&s, "/docs");
        assert_eq!(resp.status, 301, "{}", resp.summary());
        assert_eq!(resp.header("location"), Some("/docs/"));
        assert!(resp.header("content-length").is_some(), "{}", resp.summary());
    }

    fn directory_serves_its_index(s) {
        let resp = fetch(&s, "/docs/");
        assert_body(&resp, &s.site.read("docs/index.html"));
        assert_eq!(resp.header("content-type"), Some("text/html; charset=utf-8"));
        assert_body(&fetch(&s, "/docs/guide.html"), &s.site.read("docs/guide.html"));
    }

    fn directory_without_index_is_404(s) {
        let resp = fetch(&s, "/noindex/");
        assert_eq!(resp.status, 404, "{}", resp.summary());
        assert_body(&fetch(&s, "/noindex/file.txt"), &s.site.read("noindex/file.txt"));
    }

    fn missing_file_is_404(s) {
        for path in ["/nope.html", "/docs/nope", "/readme.txt/more", "/nope/"] {
            let resp = fetch(&s, path);
            assert_eq!(resp.status, 404, "GET {path}: {}", resp.summary());
            assert!(resp.header("content-length").is_some(), "GET {path}: {}", resp.summary());
            let ct = resp.header("content-type").unwrap_or("");
            assert!(ct.starts_with("text/html"), "GET {path}: Content-Type {ct:?}");
            assert!(
                !resp.body.is_empty() && resp.body.len() <= 1024,
                "GET {path}: {}",
                resp.summary()
            );
        }
    }

    fn dotfiles_are_hidden_by_default(s) {
        for path in ["/.hidden.txt", "/.secret/key.txt", "/.secret/", "/docs/../.hidden.txt"] {
            let resp = fetch(&s, path);
            assert!(
                resp.status == 404 || (resp.status == 400 && path.contains("..")),
                "GET {path}: {}",
                resp.summary()
            );
            assert!(!resp.body_str().contains("secret key"), "GET {path}: {}", resp.summary());
            assert!(!resp.body_str().contains("hidden dotfile"), "GET {path}: {}", resp.summary());
        }
    }

    fn dotfiles_are_served_with_hidden(model m) {
        let s = TestServer::start_with(m, |c| c.hidden = true);
        assert_body(&fetch(&s, "/.hidden.txt"), &s.site.read(".hidden.txt"));
        assert_body(&fetch(&s, "/.secret/key.txt"), &s.site.read(".secret/key.txt"));
        // Traversal stays refused with hidden files on.
        let resp = fetch(&s, "/../outside/secret.txt");
        assert_eq!(resp.status, 400, "{}", resp.summary());
    }

    fn symlinks_inside_the_root_are_followed(s) {
        assert_body(&fetch(&s, "/link.html"), &s.site.read("index.html"));
        assert_body(&fetch(&s, "/docs-link/guide.html"), &s.site.read("docs/guide.html"));
        assert_body(&fetch(&s, "/docs-link/"), &s.site.read("docs/index.html"));
    }

    // With `--file-cache-valid 0` every request looks the file up again.
    fn modified_file_is_served_fresh(model m) {
        let s = TestServer::start_with(m, |c| c.file_cache_valid = Duration::ZERO);
        let mut c = s.connect();
        c.send(get_req("/readme.txt"));
        assert_body(&c.read_response(), &s.site.read("readme.txt"));
        // Twice, so that a cache has surely been filled.
        c.send(get_req("/readme.txt"));
        assert_body(&c.read_response(), &s.site.read("readme.txt"));
        let new = b"The read-me was rewritten with other content, of another length.\n";
        s.site.write("readme.txt", new);
        c.send(get_req("/readme.txt"));
        assert_body(&c.read_response(), new);
        // And shrunk.
        s.site.write("readme.txt", b"short\n");
        c.send(get_req("/readme.txt"));
        assert_body(&c.read_response(), b"short\n");
    }

    fn new_and_deleted_files(model m) {
        let s = TestServer::start_with(m, |c| c.file_cache_valid = Duration::ZERO);
        assert_eq!(fetch(&s, "/fresh.txt").status, 404);
        s.site.write("fresh.txt", b"created while serving\n");
        assert_body(&fetch(&s, "/fresh.txt"), b"created while serving\n");
        std::fs::remove_file(s.site.root().join("fresh.txt")).unwrap();
        assert_eq!(fetch(&s, "/fresh.txt").status, 404);
    }

    // Within `--file-cache-valid` a small file is answered from memory without a look at the
    // disk: an edit is not seen yet, and the answer stays whole and consistent (the old
    // bytes with their own length and ETag), never a mix of the two versions. The forking
    // models keep the cache per process: a new connection may meet one that never had it.
    fn within_the_file_cache_validity_an_edit_waits(model m) {
        let s = TestServer::start_with(m, |c| c.file_cache_valid = Duration::from_secs(3600));
        let old = s.site.read("readme.txt");
        let new = b"rewritten, with another length\n";
        let first = fetch(&s, "/readme.txt");
        assert_body(&first, &old);
        s.site.write("readme.txt", new);
        let second = fetch(&s, "/readme.txt");
        if m.forks() && second.body == new {
            return;
        }
        assert_body(&second, &old);
        assert_eq!(second.header("etag"), first.header("etag"));
    }
}
