//! Directory listings (`listing: true`): an HTML page whose every link works
//! and whose names are escaped, or JSON for `Accept: application/json`.
//! Each test builds `odd/` in its own copy of the site, with names that need
//! percent-encoding in a URL (RFC 3986 §2.1) and escaping in HTML.

use std::collections::BTreeMap;

use percent_encoding::percent_decode_str;

use crate::support::*;

/// The files of `odd/`; `.dot.txt` is hidden unless `hidden: true`.
const ODD: [&str; 9] = [
    "a b.txt",
    "#hash.txt",
    "q?.txt",
    "100%.txt",
    "quote\".txt",
    "<tag>.txt",
    "a&b.txt",
    "中文.txt",
    ".dot.txt",
];

fn content(name: &str) -> String {
    format!("the file named {name}\n")
}

/// Creates `odd/` with the `ODD` files (each holding `content(name)`) and
/// the directory `odd/sub/`.
fn make_odd(site: &Site) {
    for name in ODD {
        site.write(&format!("odd/{name}"), content(name).as_bytes());
    }
    site.write("odd/sub/inner.txt", b"inside sub\n");
}

fn start(m: bingfa::Model, listing: bool, hidden: bool) -> TestServer {
    TestServer::start_prepared(m, make_odd, |c| {
        c.listing = listing;
        c.hidden = hidden;
    })
}

/// The entries a listing of `odd/` must show.
fn visible(hidden: bool) -> Vec<&'static str> {
    ODD.iter()
        .copied()
        .filter(|n| hidden || !n.starts_with('.'))
        .collect()
}

// ---------------------------------------------------------------------------
// HTML links
// ---------------------------------------------------------------------------

/// The values of every `href` attribute, in document order, with character
/// references decoded (HTML: attribute values are escaped text).
fn hrefs(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = lower[from..].find("href") {
        let mut pos = from + i + 4;
        from = pos;
        let rest = &html[pos..];
        let trimmed = rest.trim_start();
        if !trimmed.starts_with('=') {
            continue;
        }
        pos += rest.len() - trimmed.len() + 1;
        let value = html[pos..].trim_start();
        let raw = match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or(""),
            _ => value
                .split(|c: char| c.is_whitespace() || c == '>')
                .next()
                .unwrap_or(""),
        };
        out.push(unescape_html(raw));
    }
    out
}

/// Decodes `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;` and numeric
/// character references.
fn unescape_html(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';').filter(|&e| e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .map(|hex| u32::from_str_radix(hex, 16))
                .or_else(|| entity.strip_prefix('#').map(|dec| dec.parse::<u32>()))
                .and_then(|n| n.ok())
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// What a browser requests for `href` on the page `base` (a path ending in
/// `/`): the fragment dropped (RFC 3986 §3.5), a relative reference resolved
/// with dot segments removed (§5.2), and the characters a URL may not hold
/// raw (space, `"`, `<`, `>`, non-ASCII) percent-encoded as UTF-8 (§2.1);
/// `%` is kept as it is, so a raw `%` in a name breaks the link.
fn resolve(base: &str, href: &str) -> String {
    let href = href.split('#').next().unwrap_or("");
    assert!(
        !href.contains("://") && !href.starts_with("//"),
        "link off the site: {href:?}"
    );
    let (path, query) = match href.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (href, None),
    };
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{base}{path}")
    };
    let mut segments: Vec<&str> = Vec::new();
    let parts: Vec<&str> = joined.split('/').collect();
    for (i, seg) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        match *seg {
            "." => {
                if last {
                    segments.push("");
                }
            }
            ".." => {
                if segments.len() > 1 {
                    segments.pop();
                }
                if last {
                    segments.push("");
                }
            }
            s => segments.push(s),
        }
    }
    let mut target = segments.join("/");
    if !target.starts_with('/') {
        target.insert(0, '/');
    }
    if let Some(q) = query {
        target.push('?');
        target.push_str(q);
    }
    let mut encoded = String::new();
    for b in target.bytes() {
        if b <= b' ' || b >= 0x7f || matches!(b, b'"' | b'<' | b'>' | b'`') {
            encoded.push_str(&format!("%{b:02X}"));
        } else {
            encoded.push(b as char);
        }
    }
    encoded
}

/// The entry of `/odd/` a request target names (`sub/` for the directory),
/// if it names one.
fn entry_of(target: &str) -> Option<String> {
    let path = target.split('?').next().unwrap_or("");
    let name = percent_decode_str(path)
        .decode_utf8()
        .ok()?
        .strip_prefix("/odd/")?
        .to_string();
    match name.as_str() {
        "" => None,
        "sub" | "sub/" => Some("sub/".into()),
        n if n.contains('/') => None,
        n => Some(n.to_string()),
    }
}

/// GETs `/odd/` as HTML and follows every link on it: each must answer 200,
/// a file link with that file's content; every visible entry must be
/// linked, directories before files. Returns the page.
#[track_caller]
fn follow_every_link(s: &TestServer, hidden: bool) -> String {
    let resp = exchange(s, "GET", "/odd/", "");
    assert_eq!(resp.status, 200, "{}", resp.summary());
    assert_eq!(
        resp.header("content-type"),
        Some("text/html; charset=utf-8"),
        "{}",
        resp.summary()
    );
    let html = String::from_utf8(resp.body.clone()).expect("the listing is UTF-8");
    let links = hrefs(&html);
    assert!(!links.is_empty(), "no links in {html}");
    let mut linked: Vec<String> = Vec::new();
    let mut failures = Vec::new();
    for href in &links {
        let target = resolve("/odd/", href);
        let got = exchange(s, "GET", &target, "");
        let entry = entry_of(&target);
        let expected = match entry.as_deref() {
            Some("sub/") => None,
            Some(name) if ODD.contains(&name) => Some(content(name)),
            Some(name) => {
                failures.push(format!(
                    "href {href:?} -> {target}: names no entry of odd/ ({name:?})"
                ));
                continue;
            }
            None => None,
        };
        if got.status != 200 {
            failures.push(format!("href {href:?} -> {target}: {}", got.summary()));
        } else if let Some(expected) = expected {
            if got.body != expected.as_bytes() {
                failures.push(format!(
                    "href {href:?} -> {target}: wrong content {}",
                    got.summary()
                ));
            }
        }
        if let Some(entry) = entry {
            if !linked.contains(&entry) {
                linked.push(entry);
            }
        }
    }
    for name in visible(hidden).into_iter().chain(["sub/"]) {
        if !linked.iter().any(|l| l == name) {
            failures.push(format!("{name:?} is not linked (links: {links:?})"));
        }
    }
    if !hidden && linked.iter().any(|l| l == ".dot.txt") {
        failures.push("the hidden .dot.txt is linked".into());
    }
    // Directories first: sub/ before every file.
    if linked.first().map(String::as_str) != Some("sub/") {
        failures.push(format!("the directory is not listed first: {linked:?}"));
    }
    assert!(
        failures.is_empty(),
        "[{}] broken listing:\n  {}\n{html}",
        s.model,
        failures.join("\n  ")
    );
    html
}

// ---------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------

/// Just enough JSON (RFC 8259) to read a listing.
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(f64),
    Str(String),
    Array(Vec<Json>),
    Object(BTreeMap<String, Json>),
}

struct JsonParser<'a> {
    text: &'a [u8],
    pos: usize,
}

impl JsonParser<'_> {
    fn parse(text: &str) -> Result<Json, String> {
        let mut p = JsonParser {
            text: text.as_bytes(),
            pos: 0,
        };
        let value = p.value()?;
        p.ws();
        if p.pos != p.text.len() {
            return Err(format!("trailing text at {}", p.pos));
        }
        Ok(value)
    }

    fn ws(&mut self) {
        while self.pos < self.text.len() && matches!(self.text[self.pos], b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.text.get(self.pos).copied()
    }

    fn expect(&mut self, b: u8) -> Result<(), String> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected {:?} at {}", b as char, self.pos))
        }
    }

    fn literal(&mut self, word: &str, value: Json) -> Result<Json, String> {
        if self.text[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(format!("bad literal at {}", self.pos))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        match self.peek() {
            Some(b'{') => {
                self.pos += 1;
                let mut map = BTreeMap::new();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    return Ok(Json::Object(map));
                }
                loop {
                    let Json::Str(key) = self.value()? else {
                        return Err(format!("object key at {} is not a string", self.pos));
                    };
                    self.expect(b':')?;
                    let value = self.value()?;
                    if map.insert(key.clone(), value).is_some() {
                        return Err(format!("duplicate key {key:?}"));
                    }
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(Json::Object(map));
                        }
                        _ => return Err(format!("expected , or }} at {}", self.pos)),
                    }
                }
            }
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(self.value()?);
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Json::Array(items));
                        }
                        _ => return Err(format!("expected , or ] at {}", self.pos)),
                    }
                }
            }
            Some(b'"') => self.string().map(Json::Str),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.pos;
                while self.pos < self.text.len()
                    && matches!(
                        self.text[self.pos],
                        b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                    )
                {
                    self.pos += 1;
                }
                let number = std::str::from_utf8(&self.text[start..self.pos]).unwrap();
                number
                    .parse()
                    .map(Json::Number)
                    .map_err(|_| format!("bad number {number:?}"))
            }
            _ => Err(format!("unexpected input at {}", self.pos)),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut units: Vec<u16> = Vec::new();
        let mut out = String::new();
        let flush = |units: &mut Vec<u16>, out: &mut String| -> Result<(), String> {
            if !units.is_empty() {
                out.push_str(&String::from_utf16(units).map_err(|_| "bad \\u escape".to_string())?);
                units.clear();
            }
            Ok(())
        };
        loop {
            let Some(&b) = self.text.get(self.pos) else {
                return Err("unterminated string".into());
            };
            match b {
                b'"' => {
                    self.pos += 1;
                    flush(&mut units, &mut out)?;
                    return Ok(out);
                }
                b'\\' => {
                    let esc = *self.text.get(self.pos + 1).ok_or("unterminated escape")?;
                    self.pos += 2;
                    if esc == b'u' {
                        let hex = self.text.get(self.pos..self.pos + 4).ok_or("short \\u escape")?;
                        let hex = std::str::from_utf8(hex).map_err(|_| "bad \\u escape")?;
                        units.push(u16::from_str_radix(hex, 16).map_err(|_| "bad \\u escape")?);
                        self.pos += 4;
                        continue;
                    }
                    flush(&mut units, &mut out)?;
                    out.push(match esc {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        _ => return Err(format!("bad escape \\{}", esc as char)),
                    });
                }
                0..=0x1f => return Err(format!("raw control character in a string at {}", self.pos)),
                _ => {
                    flush(&mut units, &mut out)?;
                    let len = match b {
                        0..=0x7f => 1,
                        0xc0..=0xdf => 2,
                        0xe0..=0xef => 3,
                        _ => 4,
                    };
                    let ch = self.text.get(self.pos..self.pos + len).ok_or("truncated UTF-8")?;
                    out.push_str(std::str::from_utf8(ch).map_err(|_| "bad UTF-8")?);
                    self.pos += len;
                }
            }
        }
    }
}

impl Json {
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(map) => map.get(key),
            _ => None,
        }
    }
}

#[test]
fn json_parser_reads_what_it_must() {
    let text = r#" [ {"name": "q\"\u4e2d\u6587\ud83d\ude00<", "size": 12, "ok": true, "n": null},
                     [], {} , -1.5e2 ] "#;
    let Json::Array(items) = JsonParser::parse(text).unwrap() else {
        panic!("not an array")
    };
    assert_eq!(items[0].get("name"), Some(&Json::Str("q\"中文😀<".into())));
    assert_eq!(items[0].get("size"), Some(&Json::Number(12.0)));
    assert_eq!(items[0].get("ok"), Some(&Json::Bool(true)));
    assert_eq!(items[0].get("n"), Some(&Json::Null));
    assert_eq!(items[3], Json::Number(-150.0));
    for bad in [
        "[1,]",
        "{\"a\" 1}",
        "[\"a\nb\"]",
        "[1] 2",
        "{\"a\":1,\"a\":2}",
        "\"\\x\"",
    ] {
        assert!(JsonParser::parse(bad).is_err(), "{bad:?} parsed");
    }
}

#[test]
fn link_helpers() {
    assert_eq!(
        hrefs(r#"<a href="a&amp;b.txt">x</a> <A HREF='q%3F.txt'> <a href=sub/>"#),
        ["a&b.txt", "q%3F.txt", "sub/"]
    );
    assert_eq!(
        unescape_html("&lt;tag&gt;&#34;&#x22;&amp;amp;&nbsp"),
        "<tag>\"\"&amp;&nbsp"
    );
    assert_eq!(resolve("/odd/", "a b.txt"), "/odd/a%20b.txt");
    assert_eq!(resolve("/odd/", "#hash.txt"), "/odd/");
    assert_eq!(resolve("/odd/", "%23hash.txt"), "/odd/%23hash.txt");
    assert_eq!(resolve("/odd/", "q?.txt"), "/odd/q?.txt");
    assert_eq!(resolve("/odd/", "../"), "/");
    assert_eq!(resolve("/odd/", "./sub/"), "/odd/sub/");
    assert_eq!(resolve("/odd/", "/odd/%E4%B8%AD.txt"), "/odd/%E4%B8%AD.txt");
    assert_eq!(resolve("/odd/", "中"), "/odd/%E4%B8%AD");
    assert_eq!(entry_of("/odd/%3Ctag%3E.txt").as_deref(), Some("<tag>.txt"));
    assert_eq!(entry_of("/odd/sub/").as_deref(), Some("sub/"));
    assert_eq!(entry_of("/odd/?sort=name"), None);
    assert_eq!(entry_of("/"), None);
}

// ---------------------------------------------------------------------------
// Sorting, sizes, breadcrumb, style
// ---------------------------------------------------------------------------

/// The files of `sizes/`: name, length, and modification time (seconds since
/// the epoch). Sorted by name, by size and by date, they come in three
/// different orders.
const SIZED: [(&str, usize, u64); 3] = [
    ("a-small.txt", 10, 1_577_836_800),  // 2020-01-01 00:00 UTC
    ("b-big.bin", 20_000, 946_684_800),  // 2000-01-01 00:00 UTC
    ("c-mid.txt", 2_000, 1_262_304_000), // 2010-01-01 00:00 UTC
];

/// Creates `sizes/` with the `SIZED` files and the directory `sizes/dir/`.
fn make_sized(site: &Site) {
    for (name, len, modified) in SIZED {
        let rel = format!("sizes/{name}");
        site.write(&rel, &vec![b'x'; len]);
        std::fs::File::options()
            .write(true)
            .open(site.root().join(&rel))
            .unwrap()
            .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(modified))
            .unwrap();
    }
    site.write("sizes/dir/inner.txt", b"inside\n");
}

/// The entries a listing page links to, in page order, without their query:
/// the links that are neither a column header (`?sort=...`) nor a step up
/// (`../`, the parent row and the breadcrumb).
fn entry_links(html: &str) -> Vec<String> {
    hrefs(html)
        .into_iter()
        .filter(|h| !h.starts_with('?') && !h.starts_with("../"))
        .map(|h| h.split('?').next().unwrap_or("").to_string())
        .collect()
}

/// The HTML listing at `target`, asserted to be a 200.
#[track_caller]
fn listing_page(s: &TestServer, target: &str) -> String {
    let resp = exchange(s, "GET", target, "");
    assert_eq!(resp.status, 200, "{target}: {}", resp.summary());
    assert_eq!(
        resp.header("content-type"),
        Some("text/html; charset=utf-8"),
        "{target}: {}",
        resp.summary()
    );
    resp.body_str()
}

/// The `<h1>` of a listing page: the breadcrumb.
fn heading(html: &str) -> &str {
    let start = html.find("<h1>").expect("an <h1>");
    let end = html[start..].find("</h1>").expect("a </h1>") + start;
    &html[start..end]
}

// ---------------------------------------------------------------------------

model_tests! {
    // RFC 3986 §2.1: names are percent-encoded in links, so every link on
    // the page leads to its file; HTML escaping keeps names text.
    fn every_link_of_a_listing_works(model m) {
        let s = start(m, true, false);
        let html = follow_every_link(&s, false);
        assert!(!html.contains("<tag>"), "a raw <tag> in the listing:\n{html}");
        assert!(html.contains("&lt;tag&gt;.txt"), "the name <tag>.txt is not shown escaped:\n{html}");
        assert!(!html.contains(".dot.txt"), "the hidden .dot.txt is shown:\n{html}");
        let resp = exchange(&s, "GET", "/odd/", "");
        // RFC 9110 §12.5.5: the representation depends on Accept.
        assert!(resp.has_token("vary", "accept"), "no Vary: Accept: {}", resp.summary());
        // RFC 9110 §8.8: a generated page has no validators.
        assert_eq!(resp.header("etag"), None, "{}", resp.summary());
        let head = exchange(&s, "HEAD", "/odd/", "");
        assert_eq!(head.status, 200, "{}", head.summary());
        // The subdirectory lists its own file; the parent is served as before.
        let sub = exchange(&s, "GET", "/odd/sub/", "");
        assert_eq!(sub.status, 200, "{}", sub.summary());
        assert!(hrefs(&sub.body_str()).iter().any(|h| resolve("/odd/sub/", h) == "/odd/sub/inner.txt"), "{}", sub.summary());
        assert_body(&exchange(&s, "GET", "/", ""), &s.site.read("index.html"));
        // RFC 9110 §15.4.2: a directory without its slash still redirects.
        let resp = exchange(&s, "GET", "/odd", "");
        assert_eq!(resp.status, 301, "{}", resp.summary());
        assert_eq!(resp.header("location"), Some("/odd/"));
    }

    // RFC 3986 §2.1: with `hidden`, `.dot.txt` is listed too, and its link
    // works like the others.
    fn listing_shows_dotfiles_with_hidden(model m) {
        let s = start(m, true, true);
        follow_every_link(&s, true);
    }

    // RFC 9110 §12.5.1: `Accept: application/json` selects the JSON form, an
    // array of {name, type, size, modified} (RFC 8259: names escaped as
    // JSON strings); a browser's Accept gets HTML.
    fn listing_as_json(model m) {
        let s = start(m, true, false);
        let resp = exchange(&s, "GET", "/odd/", "Accept: application/json\r\n");
        assert_eq!(resp.status, 200, "{}", resp.summary());
        let ct = resp.header("content-type").unwrap_or("");
        assert!(ct.starts_with("application/json"), "Content-Type {ct:?}");
        assert!(resp.has_token("vary", "accept"), "no Vary: Accept: {}", resp.summary());
        let text = String::from_utf8(resp.body.clone()).expect("UTF-8 JSON");
        let json = JsonParser::parse(&text).unwrap_or_else(|e| panic!("invalid JSON ({e}): {text}"));
        let Json::Array(entries) = json else {
            panic!("not an array: {text}")
        };
        let mut seen = BTreeMap::new();
        for entry in &entries {
            let name = match entry.get("name") {
                Some(Json::Str(n)) => n.trim_end_matches('/').to_string(),
                _ => panic!("entry without a string name: {entry:?}"),
            };
            for key in ["type", "size", "modified"] {
                assert!(entry.get(key).is_some(), "{name:?} has no {key}: {entry:?}");
            }
            seen.insert(name, entry.clone());
        }
        let mut names: Vec<&str> = seen.keys().map(String::as_str).collect();
        let mut expected = visible(false);
        expected.push("sub");
        names.sort();
        expected.sort();
        assert_eq!(names, expected, "the entries of {text}");
        let file_type = seen["a b.txt"].get("type").cloned();
        for name in visible(false) {
            let entry = &seen[name];
            assert_eq!(entry.get("type").cloned(), file_type, "{name:?}: {entry:?}");
            assert_eq!(entry.get("size"), Some(&Json::Number(content(name).len() as f64)), "{name:?}: {entry:?}");
        }
        assert_ne!(seen["sub"].get("type").cloned(), file_type, "sub has a file's type: {text}");
        // Directories first here too.
        assert_eq!(entries[0].get("name").cloned().map(|n| matches!(n, Json::Str(s) if s.trim_end_matches('/') == "sub")), Some(true), "{text}");
        // What a browser sends, and anything: HTML.
        for accept in [
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "*/*",
            "application/json;q=0.1, text/html",
        ] {
            let resp = exchange(&s, "GET", "/odd/", &format!("Accept: {accept}\r\n"));
            assert_eq!(resp.status, 200, "{}", resp.summary());
            assert_eq!(resp.header("content-type"), Some("text/html; charset=utf-8"), "Accept: {accept}: {}", resp.summary());
        }
    }

    // RFC 9110 §15.5.5: without `listing`, a directory without index.html
    // is not found, whatever the Accept.
    fn no_listing_without_the_option(model m) {
        let s = start(m, false, false);
        for accept in ["", "Accept: application/json\r\n"] {
            let resp = exchange(&s, "GET", "/odd/", accept);
            assert_eq!(resp.status, 404, "{}", resp.summary());
            assert!(!resp.body_str().contains("a b.txt"), "{}", resp.summary());
        }
        assert_body(&exchange(&s, "GET", "/odd/a%20b.txt", ""), content("a b.txt").as_bytes());
    }

    // `?sort=size|date|name&order=asc|desc` orders the HTML listing,
    // directories first in every order; sizes read in binary units, dates
    // in UTC; a directory's link keeps the sort, and leads to its listing.
    fn listing_sorts_by_the_query(model m) {
        let s = TestServer::start_prepared(m, make_sized, |c| c.listing = true);
        for (query, expected) in [
            ("", ["dir/", "a-small.txt", "b-big.bin", "c-mid.txt"]),
            ("?sort=name&order=desc", ["dir/", "c-mid.txt", "b-big.bin", "a-small.txt"]),
            ("?sort=size&order=desc", ["dir/", "b-big.bin", "c-mid.txt", "a-small.txt"]),
            ("?sort=size&order=asc", ["dir/", "a-small.txt", "c-mid.txt", "b-big.bin"]),
            ("?sort=date&order=desc", ["dir/", "a-small.txt", "c-mid.txt", "b-big.bin"]),
            ("?order=asc&sort=date", ["dir/", "b-big.bin", "c-mid.txt", "a-small.txt"]),
        ] {
            let html = listing_page(&s, &format!("/sizes/{query}"));
            assert_eq!(entry_links(&html), expected, "/sizes/{query}:\n{html}");
        }
        let html = listing_page(&s, "/sizes/?sort=size&order=desc");
        for text in ["<td>19.5 KiB</td>", "<td>2.0 KiB</td>", "<td>10 B</td>", "2000-01-01 00:00", "2020-01-01 00:00"] {
            assert!(html.contains(text), "no {text:?} in:\n{html}");
        }
        let dir = hrefs(&html).into_iter().find(|h| h.starts_with("dir/")).unwrap();
        assert_eq!(dir, "dir/?sort=size&order=desc", "{html}");
        let inner = listing_page(&s, &resolve("/sizes/", &dir));
        assert_eq!(entry_links(&inner), ["inner.txt"], "{inner}");
        // Every header link is a listing again, and the size header now
        // reverses the order.
        for link in hrefs(&html).into_iter().filter(|h| h.starts_with('?')) {
            listing_page(&s, &resolve("/sizes/", &link));
        }
        assert!(hrefs(&html).contains(&"?sort=size&order=asc".to_string()), "{html}");
    }

    // A sort or order it does not know is the default order, never an
    // error; the JSON form ignores the query.
    fn unknown_sort_values_fall_back_to_the_default(model m) {
        let s = TestServer::start_prepared(m, make_sized, |c| c.listing = true);
        let default = listing_page(&s, "/sizes/");
        for query in ["?sort=bogus&order=sideways", "?sort=&order=", "?sort=%zz", "?sort=name&order=asc"] {
            let html = listing_page(&s, &format!("/sizes/{query}"));
            assert_eq!(html, default, "/sizes/{query}");
        }
        let bogus_order = listing_page(&s, "/sizes/?sort=size&order=bogus");
        assert_eq!(entry_links(&bogus_order), ["dir/", "a-small.txt", "c-mid.txt", "b-big.bin"]);
        let json = "Accept: application/json\r\n";
        let plain = exchange(&s, "GET", "/sizes/", json);
        let sorted = exchange(&s, "GET", "/sizes/?sort=size&order=desc", json);
        assert_eq!(sorted.status, 200, "{}", sorted.summary());
        assert_eq!(sorted.body_str(), plain.body_str());
    }

    // The heading is a breadcrumb: every ancestor directory is a link to
    // its listing (the site root to its index.html), names escaped.
    fn listing_has_a_breadcrumb(model m) {
        let s = start(m, true, false);
        let html = listing_page(&s, "/odd/sub/");
        let crumbs: Vec<String> = hrefs(heading(&html)).iter().map(|h| resolve("/odd/sub/", h)).collect();
        assert_eq!(crumbs, ["/", "/odd/"], "{html}");
        assert!(heading(&html).contains(">odd</a>/sub/"), "{html}");
        assert_body(&exchange(&s, "GET", &crumbs[0], ""), &s.site.read("index.html"));
        assert!(listing_page(&s, &crumbs[1]).contains("&lt;tag&gt;.txt"));
    }

    // The page fits a phone (viewport, inline responsive CSS), follows the
    // reader's dark mode, and loads nothing else.
    fn listing_works_on_a_phone_and_in_dark_mode(model m) {
        let s = start(m, true, false);
        let html = listing_page(&s, "/odd/");
        assert!(html.contains("<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"), "{html}");
        assert!(html.contains("@media(prefers-color-scheme:dark)"), "{html}");
        assert!(html.contains("color-scheme:light dark"), "{html}");
        for external in ["<script", "<link", "src=", "url(", "http:", "https:"] {
            assert!(!html.contains(external), "{external} in:\n{html}");
        }
    }
}
