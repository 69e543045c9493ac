//! Precompressed files: `app.js` has the sidecars `app.js.br`, `app.js.zst`
//! and `app.js.gz` in the fixture (made with `brotli -k`, `zstd -19 -k`,
//! `gzip -9 -k -n`), chosen by `Accept-Encoding` (RFC 9110 §12.5.3) and sent
//! with `Content-Encoding` (§8.4) and `Vary: Accept-Encoding` (§12.5.5).
//! Bodies are compared byte for byte with the sidecar files.

use crate::support::*;

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
}
