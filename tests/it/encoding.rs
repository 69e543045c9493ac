//! Precompressed files: `app.js` has the sidecars `app.js.br`, `app.js.zst`
//! and `app.js.gz` in the fixture (made with `brotli -k`, `zstd -19 -k`,
//! `gzip -9 -k -n`), chosen by `Accept-Encoding` (RFC 9110 §12.5.3) and sent
//! with `Content-Encoding` (§8.4) and `Vary: Accept-Encoding` (§12.5.5).
//! Bodies are compared byte for byte with the sidecar files.

use crate::support::*;
use std::time::Duration;

/// The sidecar of `app.js` for a content-coding.
fn sidecar(coding: &str) -> &'static str {
    match coding {
        "br" => "app.js.br",
        "zstd" => "app.js.zst",
        "gzip" => "app.js.gz",
        _ => panic!("no sidecar for {coding:?}"),
    }
}

/// Gives `app.js` and its sidecars one modification time (the copy of the
/// site does not keep the fixture's), so no sidecar looks older than its
/// original.
fn same_mtimes(s: &TestServer) {
    for rel in ["app.js", "app.js.br", "app.js.zst", "app.js.gz"] {
        s.site.set_mtime(rel, long_ago());
    }
}

/// `GET /app.js` with `Accept-Encoding: {ae}` (none for `None`).
fn app_js(s: &TestServer, method: &str, ae: Option<&str>, extra: &str) -> Response {
    let ae = ae
        .map(|v| format!("Accept-Encoding: {v}\r\n"))
        .unwrap_or_default();
    exchange(s, method, "/app.js", &format!("{ae}{extra}"))
}

// ---------------------------------------------------------------------------
// --compress: compressed on the fly, in the background
// ---------------------------------------------------------------------------

/// Requests made while waiting for the compressor; each is answered at once
/// (with the file as it is until the compressed copy is ready).
const POLLS: usize = 500;

/// Text of `len` bytes that compresses as source code does: lines that
/// repeat with variations.
fn source_text(len: usize) -> Vec<u8> {
    let mut text = Vec::with_capacity(len + 64);
    let mut i = 0u64;
    while text.len() < len {
        text.extend_from_slice(
            format!(
                "export function f{i}(x) {{ return x * {} + {}; }}\n",
                i % 17,
                i % 5
            )
            .as_bytes(),
        );
        i += 1;
    }
    text.truncate(len);
    text
}

/// The compressible files the tests write: one sent from the open file
/// (above the small-file size), one from memory, and JSON.
const COMPRESSIBLE: [(&str, usize); 3] = [("bundle.js", 200_000), ("site.css", 4096), ("big.json", 2048)];

/// A server with `--compress` (or without, for `compress: false`) whose site
/// has the files of `COMPRESSIBLE`, `large.png` (a compressible-looking
/// image) and `noise.txt` (text that compression makes no smaller).
fn compress_server(model: bingfa::Model, compress: bool) -> TestServer {
    compress_server_with(model, |config| config.compress = compress)
}

/// A server with `--compress` and the files above, its configuration changed by `adjust`.
fn compress_server_with(model: bingfa::Model, adjust: impl FnOnce(&mut bingfa::Config)) -> TestServer {
    TestServer::start_prepared(
        model,
        |site| {
            for (name, len) in COMPRESSIBLE {
                site.write(name, &source_text(len));
            }
            site.write("large.png", &source_text(8192));
            site.write("noise.txt", &pseudo_random(8192));
        },
        |config| {
            config.compress = true;
            adjust(config);
        },
    )
}

fn decode(coding: &str, bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    match coding {
        "br" => brotli::Decompressor::new(bytes, 4096).read_to_end(&mut out),
        "zstd" => zstd::stream::Decoder::new(bytes).unwrap().read_to_end(&mut out),
        "gzip" => flate2::read::GzDecoder::new(bytes).read_to_end(&mut out),
        _ => panic!("no decoder for {coding:?}"),
    }
    .unwrap_or_else(|e| panic!("{coding} body does not decode: {e}"));
    out
}

/// One request on `c` (kept alive: in the `process` model a connection is
/// one process, with its own compressor).
fn on(c: &mut Client, method: &str, path: &str, extra: &str) -> Response {
    c.send(req(method, path, extra));
    if method == "HEAD" {
        c.read_head_response()
    } else {
        c.read_response()
    }
}

/// GETs `path` with `Accept-Encoding: {coding}` on `c` until the answer is
/// coded (at most `POLLS` requests); each answer before it is the file as it is.
fn poll_compressed(c: &mut Client, s: &TestServer, path: &str, coding: &str) -> Response {
    let original = s.site.read(&path[1..]);
    for _ in 0..POLLS {
        let resp = on(c, "GET", path, &format!("Accept-Encoding: {coding}\r\n"));
        assert_eq!(resp.status, 200, "{}", resp.summary());
        match resp.header("content-encoding") {
            Some(got) => {
                assert_eq!(got, coding, "{}", resp.summary());
                return resp;
            }
            None => assert_body(&resp, &original),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!(
        "[{}] {path} never came back {coding}-coded in {POLLS} requests",
        s.model
    );
}

model_tests! {
    // RFC 9110 §12.5.3: the coding with the highest qvalue among those the
    // client accepts, the server preferring br, then zstd, then gzip among
    // equals; q=0 is "not acceptable"; `*` is any coding not listed;
    // identity is always there. §8.4.1: codings are case-insensitive.
    // §12.5.5: Vary: Accept-Encoding whenever the field was consulted.
    fn accept_encoding_selects_the_sidecar(s) {
        same_mtimes(&s);
        let plain = app_js(&s, "GET", None, "");
        assert_body(&plain, &s.site.read("app.js"));
        assert_eq!(plain.header("content-encoding"), None, "{}", plain.summary());
        let content_type = plain.header("content-type").expect("Content-Type").to_string();
        assert_eq!(content_type, "text/javascript; charset=utf-8");
        // (Accept-Encoding, the coding chosen)
        let rows: &[(&str, Option<&str>)] = &[
            ("br", Some("br")),
            ("gzip", Some("gzip")),
            ("zstd", Some("zstd")),
            ("gzip, br", Some("br")),
            ("gzip, zstd", Some("zstd")),
            ("gzip, zstd, br", Some("br")),
            ("br;q=0.5, gzip", Some("gzip")),
            ("gzip;q=1.0, br;q=0.9", Some("gzip")),
            ("gzip;q=0.5, br;q=0.5", Some("br")),
            ("gzip;q=0.001", Some("gzip")),
            ("br;q=0, gzip;q=0", None),
            ("br;q=0, gzip", Some("gzip")),
            ("*", Some("br")),
            ("*;q=0.1, gzip;q=0.5", Some("gzip")),
            ("br;q=0, *", Some("zstd")),
            ("GZIP", Some("gzip")),
            ("Br", Some("br")),
            ("identity", None),
            ("identity;q=0.5, gzip;q=0.4", None),
            ("deflate", None),
            ("compress, deflate", None),
            // An empty field value: no coding wanted.
            ("", None),
        ];
        let cases: Vec<(&str, &str, Option<&str>)> = rows
            .iter()
            .flat_map(|&(ae, coding)| [("GET", ae, coding), ("HEAD", ae, coding)])
            .collect();
        table(s.model, &cases, |(m, ae, _)| format!("{m} /app.js Accept-Encoding: {ae:?}"), |&(method, ae, coding)| {
            let resp = app_js(&s, method, Some(ae), "");
            assert_eq!(resp.status, 200, "{}", resp.summary());
            let expected = s.site.read(coding.map(sidecar).unwrap_or("app.js"));
            assert_eq!(resp.header("content-encoding"), coding, "{}", resp.summary());
            assert_eq!(resp.header_count("content-encoding"), usize::from(coding.is_some()));
            assert_eq!(resp.content_length(), Some(expected.len() as u64), "{}", resp.summary());
            if method == "GET" {
                assert_body(&resp, &expected);
            }
            assert_eq!(resp.header("content-type"), Some(content_type.as_str()), "{}", resp.summary());
            assert!(resp.has_token("vary", "accept-encoding"), "no Vary: Accept-Encoding: {}", resp.summary());
        });
    }

    // RFC 9110 §8.4: a file without sidecars is sent as it is, whatever the
    // client accepts; a sidecar requested by its own name is a file like
    // any other, never coded a second time.
    fn files_without_sidecars_and_sidecars_themselves(s) {
        same_mtimes(&s);
        let rows: &[(&str, &str, &str)] = &[
            ("/style.css", "gzip, br, zstd", "style.css"),
            ("/readme.txt", "*", "readme.txt"),
            ("/big.bin", "gzip", "big.bin"),
            ("/app.js.gz", "gzip", "app.js.gz"),
            ("/app.js.gz", "gzip, br, zstd", "app.js.gz"),
            ("/app.js.br", "br", "app.js.br"),
            ("/app.js.zst", "zstd, gzip", "app.js.zst"),
        ];
        table(s.model, rows, |(path, ae, _)| format!("GET {path} Accept-Encoding: {ae}"), |&(path, ae, file)| {
            let resp = exchange(&s, "GET", path, &format!("Accept-Encoding: {ae}\r\n"));
            assert_body(&resp, &s.site.read(file));
            assert_eq!(resp.header("content-encoding"), None, "{}", resp.summary());
        });
    }

    // RFC 9110 §12.5.5: Vary is optional only where nothing was negotiated;
    // without Accept-Encoding the original is sent (identity, §12.5.3).
    fn no_accept_encoding_is_the_original(s) {
        same_mtimes(&s);
        for method in ["GET", "HEAD"] {
            let resp = app_js(&s, method, None, "");
            assert_eq!(resp.status, 200, "{}", resp.summary());
            assert_eq!(resp.header("content-encoding"), None, "{}", resp.summary());
            assert_eq!(resp.content_length(), Some(s.site.read("app.js").len() as u64));
        }
    }

    // RFC 9110 §8.8.3: every coding of app.js is another representation
    // with its own strong entity-tag, and §13.1.2 compares If-None-Match
    // with the tag of the representation selected: a 304 carries that tag
    // and Vary (§15.4.5).
    fn each_coding_has_its_own_etag(s) {
        same_mtimes(&s);
        let codings = [None, Some("br"), Some("zstd"), Some("gzip")];
        let etags: Vec<String> = codings.iter().map(|c| strong_etag(&app_js(&s, "GET", *c, ""))).collect();
        for (i, a) in etags.iter().enumerate() {
            for b in &etags[i + 1..] {
                assert_ne!(a, b, "two codings of app.js share an ETag: {etags:?}");
            }
        }
        let (plain, br) = (&etags[0], &etags[1]);
        for method in ["GET", "HEAD"] {
            let resp = app_js(&s, method, Some("br"), &format!("If-None-Match: {br}\r\n"));
            assert_eq!(resp.status, 304, "{method}: {}", resp.summary());
            assert_eq!(resp.header("etag"), Some(br.as_str()), "{}", resp.summary());
            assert!(resp.has_token("vary", "accept-encoding"), "304 without Vary: {}", resp.summary());
        }
        // The identity tag does not match the br representation...
        let resp = app_js(&s, "GET", Some("br"), &format!("If-None-Match: {plain}\r\n"));
        assert_body(&resp, &s.site.read("app.js.br"));
        assert_eq!(resp.header("content-encoding"), Some("br"));
        // ...nor the br tag the identity one.
        let resp = app_js(&s, "GET", None, &format!("If-None-Match: {br}\r\n"));
        assert_body(&resp, &s.site.read("app.js"));
        // If-Match compares with the selected representation too.
        let resp = app_js(&s, "GET", Some("gzip"), &format!("If-Match: {}\r\n", etags[3]));
        assert_body(&resp, &s.site.read("app.js.gz"));
        let resp = app_js(&s, "GET", Some("gzip"), &format!("If-Match: {plain}\r\n"));
        assert_eq!(resp.status, 412, "{}", resp.summary());
    }

    // RFC 9112 §9.3: codings chosen per request on one keep-alive
    // connection, pipelined.
    fn codings_on_one_connection(s) {
        same_mtimes(&s);
        let mut c = s.connect();
        let order = [Some("br"), None, Some("gzip"), Some("zstd"), Some("br")];
        let pipeline: String = order
            .iter()
            .map(|ae| req("GET", "/app.js", &ae.map(|v| format!("Accept-Encoding: {v}\r\n")).unwrap_or_default()))
            .collect();
        c.send(pipeline);
        for ae in order {
            let resp = c.read_response();
            assert_body(&resp, &s.site.read(ae.map(sidecar).unwrap_or("app.js")));
            assert_eq!(resp.header("content-encoding"), ae, "{}", resp.summary());
        }
    }

    // --compress. RFC 9110 §8.4, §8.8.3, §12.5.5: a compressed copy is another
    // representation: its Content-Encoding, its own strong ETag, Vary; HEAD
    // answers as GET does, and If-None-Match with its tag is a 304.
    fn compress_codes_text_on_the_fly(model m) {
        let s = compress_server(m, true);
        let mut c = s.connect();
        for (name, _) in COMPRESSIBLE {
            let path = format!("/{name}");
            // Served once as it is first: in memory for the next request by its path (hot.rs).
            let plain = on(&mut c, "GET", &path, "");
            assert_eq!(plain.header("content-encoding"), None, "{}", plain.summary());
            let identity_tag = strong_etag(&plain);
            let mut tags = vec![identity_tag.clone()];
            for coding in ["br", "zstd", "gzip"] {
                let resp = poll_compressed(&mut c, &s, &path, coding);
                assert_eq!(decode(coding, &resp.body), s.site.read(name), "{path} {coding}");
                assert!(resp.body.len() < s.site.read(name).len() / 2, "{path} {coding}: {}", resp.summary());
                assert!(resp.has_token("vary", "accept-encoding"), "{}", resp.summary());
                assert_eq!(resp.header("content-type"), plain.header("content-type"));
                assert_eq!(resp.header("last-modified"), plain.header("last-modified"));
                let tag = strong_etag(&resp);
                assert!(tag.ends_with(&format!("-{coding}\"")), "{tag}");
                tags.push(tag.clone());
                let head = on(&mut c, "HEAD", &path, &format!("Accept-Encoding: {coding}\r\n"));
                for field in ["content-encoding", "content-length", "etag", "vary", "content-type"] {
                    assert_eq!(head.header(field), resp.header(field), "HEAD {path} {coding}: {field}");
                }
                let not_modified = on(&mut c, "GET", &path, &format!("Accept-Encoding: {coding}\r\nIf-None-Match: {tag}\r\n"));
                assert_eq!(not_modified.status, 304, "{}", not_modified.summary());
                assert_eq!(not_modified.header("etag"), Some(tag.as_str()));
                // The identity's tag does not match the coded copy.
                let coded = on(&mut c, "GET", &path, &format!("Accept-Encoding: {coding}\r\nIf-None-Match: {identity_tag}\r\n"));
                assert_eq!(coded.status, 200, "{}", coded.summary());
            }
            let mut distinct = tags.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), tags.len(), "{path}: {tags:?}");
            // Without Accept-Encoding: still the file as it is, with its own tag.
            let again = on(&mut c, "GET", &path, "");
            assert_body(&again, &s.site.read(name));
            assert_eq!(again.header("content-encoding"), None);
            assert_eq!(strong_etag(&again), identity_tag);
        }
    }

    // Small files, types that are compressed already, files that do not get
    // smaller and ranges (RFC 9110 §14: ranges of the identity) are sent as
    // they are. The compressor takes
    // its jobs in order, so once a later file comes back coded, an earlier
    // one would have too.
    fn compress_leaves_small_files_images_and_ranges_alone(model m) {
        let s = compress_server(m, true);
        let mut c = s.connect();
        let ranged = "Accept-Encoding: gzip\r\nRange: bytes=10-99\r\n";
        let gzip = "Accept-Encoding: gzip\r\n";
        for (path, extra) in [("/readme.txt", gzip), ("/large.png", gzip), ("/noise.txt", gzip), ("/big.json", ranged)] {
            let resp = on(&mut c, "GET", path, extra);
            assert_eq!(resp.header("content-encoding"), None, "{}", resp.summary());
        }
        poll_compressed(&mut c, &s, "/bundle.js", "gzip");
        for path in ["/readme.txt", "/large.png", "/noise.txt"] {
            let resp = on(&mut c, "GET", path, "Accept-Encoding: gzip, br, zstd\r\n");
            assert_eq!(resp.header("content-encoding"), None, "{}", resp.summary());
            assert_body(&resp, &s.site.read(&path[1..]));
        }
        // A range of a file whose coded copy is ready: still of the identity.
        let range = on(&mut c, "GET", "/bundle.js", ranged);
        assert_eq!(range.status, 206, "{}", range.summary());
        assert_eq!(range.header("content-encoding"), None, "{}", range.summary());
        assert_eq!(range.body, &s.site.read("bundle.js")[10..100]);
        let head = on(&mut c, "HEAD", "/bundle.js", ranged);
        assert_eq!(head.header("content-encoding"), None, "{}", head.summary());
    }

    // The compressed copy belongs to one version of the file: with every
    // request looking the file up, an edited file is never answered with the
    // copy of its old content.
    fn compress_follows_an_edited_file(model m) {
        let s = compress_server_with(m, |config| config.file_cache_valid = Duration::ZERO);
        let mut c = s.connect();
        let old = poll_compressed(&mut c, &s, "/bundle.js", "br");
        let edited = source_text(150_000);
        s.site.write("bundle.js", &edited);
        let new = poll_compressed(&mut c, &s, "/bundle.js", "br");
        assert_eq!(decode("br", &new.body), edited);
        assert_ne!(strong_etag(&new), strong_etag(&old));
    }

    // Within --file-cache-valid a coded answer comes from memory, as the
    // plain one does: an edit shows once the validity is over (whole, never a
    // mix of the two versions).
    fn a_coded_answer_from_memory_follows_an_edit(model m) {
        let s = compress_server_with(m, |config| config.file_cache_valid = Duration::from_millis(200));
        let mut c = s.connect();
        let old_text = s.site.read("site.css");
        let old = poll_compressed(&mut c, &s, "/site.css", "gzip");
        assert_eq!(decode("gzip", &old.body), old_text);
        let edited = source_text(5000);
        s.site.write("site.css", &edited);
        for _ in 0..POLLS {
            let resp = on(&mut c, "GET", "/site.css", "Accept-Encoding: gzip\r\n");
            let body = match resp.header("content-encoding") {
                Some(coding) => decode(coding, &resp.body),
                None => resp.body.clone(),
            };
            if resp.header("content-encoding").is_some() && body == edited {
                assert_ne!(strong_etag(&resp), strong_etag(&old));
                return;
            }
            assert!(body == old_text || body == edited, "[{}] neither version: {}", s.model, resp.summary());
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("[{}] the edit never came back gzip-coded in {POLLS} requests", s.model);
    }

    // Without --compress nothing is coded but the precompressed siblings.
    fn without_compress_nothing_is_coded_on_the_fly(model m) {
        let s = compress_server(m, false);
        let mut c = s.connect();
        for _ in 0..3 {
            for (name, _) in COMPRESSIBLE {
                let resp = on(&mut c, "GET", &format!("/{name}"), "Accept-Encoding: gzip, br, zstd\r\n");
                assert_eq!(resp.header("content-encoding"), None, "{}", resp.summary());
                assert_body(&resp, &s.site.read(name));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
