//! Directory listings (`--listing`): an HTML page for people, JSON for programs that ask
//! for `application/json`.
//!
//! File names are whatever bytes the file system holds, so each one is written twice:
//! percent-encoded for the link, so that no name can change how the link parses (`#`,
//! `?`, `%`, `:`, bytes that are not UTF-8), and HTML- or JSON-escaped for the text, so
//! that no name can inject markup or break the JSON.

use crate::fs::{Entry, SitePath};
use crate::http::{Body, Reply};
use percent_encoding::{percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::borrow::Cow;
use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const HTML: &str = "text/html; charset=utf-8";
const JSON: &str = "application/json";

/// Everything but RFC 3986 unreserved characters is escaped in a link to an entry. That
/// is more than a path segment needs, but it also covers `:` (a first segment `a:b`
/// would read as a URI scheme) and leaves only bytes that need no HTML escaping in the
/// `href` attribute.
const NAME_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `httpdate` panics outside 1970..=9999; a file's modification time can be anything.
const LATEST_HTTP_DATE: Duration = Duration::from_secs(253_402_300_799);

/// The listing of the directory `path` (which ends in `/`): JSON when `json`, else HTML.
pub(super) fn reply(path: &SitePath, entries: &[Entry], json: bool) -> Reply {
    let (content_type, body) = if json {
        (JSON, json_page(entries))
    } else {
        (HTML, html_page(path, entries))
    };
    let mut reply = Reply::ok(
        Cow::Borrowed(content_type),
        Body::Shared(Arc::from(body.into_bytes())),
    );
    // The same URL gives HTML or JSON depending on Accept: caches must keep both apart.
    reply.vary = Some("Accept");
    reply
}

/// Whether the client prefers JSON: `Accept` names `application/json` itself with q > 0,
/// ranked strictly above what it gives `text/html`. Wildcards never choose JSON, and a
/// tie goes to HTML, so browsers (`text/html,...,*/*;q=0.8`) always get the page.
pub(super) fn wants_json(accept: Option<&[u8]>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    let accept = String::from_utf8_lossy(accept);
    let ranges: Vec<MediaRange<'_>> = accept.split(',').filter_map(MediaRange::parse).collect();
    let json = ranges
        .iter()
        .filter(|range| range.is("application", "json"))
        .map(|range| range.quality)
        .max();
    let Some(json) = json.filter(|&quality| quality > 0) else {
        return false;
    };
    json > html_quality(&ranges)
}

/// One element of an `Accept` list (RFC 9110 §12.5.1), with q in thousandths.
struct MediaRange<'a> {
    kind: &'a str,
    subtype: &'a str,
    quality: u16,
}

impl<'a> MediaRange<'a> {
    /// `None` for an element that is empty or malformed; it then counts for nothing.
    fn parse(element: &'a str) -> Option<MediaRange<'a>> {
        let mut parts = element.split(';');
        let (kind, subtype) = parts.next()?.trim().split_once('/')?;
        let mut quality = 1000;
        for parameter in parts {
            let Some((name, value)) = parameter.split_once('=') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("q") {
                quality = parse_quality(value.trim())?;
                break;
            }
        }
        Some(MediaRange {
            kind: kind.trim(),
            subtype: subtype.trim(),
            quality,
        })
    }

    fn is(&self, kind: &str, subtype: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind) && self.subtype.eq_ignore_ascii_case(subtype)
    }
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_quality(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let thousandths = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0, |value, digit| value * 10 + u16::from(digit - b'0'));
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The quality the client gives `text/html`: from the most specific range that matches
/// it (`text/html`, then `text/*`, then `*/*`), 0 when none does.
fn html_quality(ranges: &[MediaRange<'_>]) -> u16 {
    [("text", "html"), ("text", "*"), ("*", "*")]
        .iter()
        .find_map(|&(kind, subtype)| {
            ranges
                .iter()
                .filter(|range| range.is(kind, subtype))
                .map(|range| range.quality)
                .max()
        })
        .unwrap_or(0)
}

fn html_page(path: &SitePath, entries: &[Entry]) -> String {
    let title = html_escape(&directory_name(path));
    let mut page = format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Index of {title}</title>\n\
         <style>td:nth-child(2){{text-align:right}}td{{padding:0 1em 0 0}}</style>\n\
         </head>\n<body>\n<h1>Index of {title}</h1>\n<table>\n\
         <tr><th>Name</th><th>Size</th><th>Modified</th></tr>\n"
    );
    if !path.relative().is_empty() {
        page.push_str("<tr><td><a href=\"../\">../</a></td><td>-</td><td></td></tr>\n");
    }
    for entry in entries {
        push_html_row(&mut page, entry);
    }
    page.push_str("</table>\n</body>\n</html>\n");
    page
}

fn push_html_row(page: &mut String, entry: &Entry) {
    let slash = if entry.is_dir { "/" } else { "" };
    let size = if entry.is_dir {
        "-".to_owned()
    } else {
        entry.size.to_string()
    };
    // Writing into a String cannot fail.
    let _ = writeln!(
        page,
        "<tr><td><a href=\"{href}{slash}\">{text}{slash}</a></td><td>{size}</td><td>{date}</td></tr>",
        href = href(&entry.name),
        text = html_escape(&String::from_utf8_lossy(&entry.name)),
        date = http_date(entry.modified),
    );
}

fn json_page(entries: &[Entry]) -> String {
    let mut page = String::from("[");
    for (index, entry) in entries.iter().enumerate() {
        if index > 0 {
            page.push(',');
        }
        let _ = write!(
            page,
            "\n{{\"name\":\"{name}\",\"type\":\"{kind}\",\"size\":{size},\"modified\":\"{date}\"}}",
            name = json_escape(&String::from_utf8_lossy(&entry.name)),
            kind = if entry.is_dir { "directory" } else { "file" },
            size = entry.size,
            date = http_date(entry.modified),
        );
    }
    page.push_str("\n]\n");
    page
}

/// The directory as the client named it, decoded: `/` or `/docs/a b/`. Bytes that are
/// not UTF-8 show as U+FFFD.
fn directory_name(path: &SitePath) -> String {
    if path.relative().is_empty() {
        return "/".to_owned();
    }
    format!("/{}/", String::from_utf8_lossy(path.relative()))
}

/// The link to an entry, relative to the directory's own URL. The raw bytes are encoded,
/// not a lossy UTF-8 version of them, so a name that is not UTF-8 still leads to its file.
fn href(name: &[u8]) -> String {
    percent_encode(name, NAME_ESCAPES).to_string()
}

/// Escapes text for HTML element content and quoted attribute values alike.
fn html_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// Escapes text for the inside of a JSON string (RFC 8259 §7): the quote, the backslash
/// and the control characters, which JSON forbids raw.
fn json_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            control if u32::from(control) < 0x20 => {
                let _ = write!(escaped, "\\u{:04x}", u32::from(control));
            }
            other => escaped.push(other),
        }
    }
    escaped
}

/// `time` as an HTTP-date, clamped to the years `httpdate` can write.
fn http_date(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    httpdate::fmt_http_date(UNIX_EPOCH + since_epoch.min(LATEST_HTTP_DATE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::decode_path;

    const TRICKY: &str = "a b#?%\"'<&>中文.txt";

    fn entry(name: &[u8], is_dir: bool, size: u64) -> Entry {
        Entry {
            name: name.to_vec(),
            is_dir,
            size,
            modified: UNIX_EPOCH + Duration::from_secs(784_111_777),
        }
    }

    fn body(reply: &Reply) -> String {
        match &reply.body {
            Body::Shared(bytes) => String::from_utf8(bytes.to_vec()).unwrap(),
            other => panic!("not an in-memory body: {other:?}"),
        }
    }

    fn path(raw: &str) -> SitePath {
        decode_path(raw.as_bytes()).unwrap()
    }

    #[test]
    fn links_escape_everything_but_unreserved() {
        assert_eq!(
            href(TRICKY.as_bytes()),
            "a%20b%23%3F%25%22%27%3C%26%3E%E4%B8%AD%E6%96%87.txt"
        );
        assert_eq!(href(b"A-z_0.9~"), "A-z_0.9~");
        assert_eq!(href(b"a:b/c;d"), "a%3Ab%2Fc%3Bd");
        assert_eq!(href(b"caf\xe9"), "caf%E9");
    }

    #[test]
    fn html_text_is_escaped() {
        assert_eq!(html_escape(TRICKY), "a b#?%&quot;&#39;&lt;&amp;&gt;中文.txt");
        assert_eq!(html_escape("&amp;"), "&amp;amp;");
    }

    #[test]
    fn json_text_is_escaped() {
        assert_eq!(json_escape(TRICKY), "a b#?%\\\"'<&>中文.txt");
        assert_eq!(json_escape("back\\slash"), "back\\\\slash");
        assert_eq!(
            json_escape("tab\tnl\n\u{1}\u{7f}"),
            "tab\\u0009nl\\u000a\\u0001\u{7f}"
        );
    }

    #[test]
    fn html_page_lists_entries() {
        let entries = [
            entry(b"sub dir", true, 0),
            entry(TRICKY.as_bytes(), false, 1234),
            entry(b"caf\xe9", false, 3),
        ];
        let reply = reply(&path("/a%20%3Cb%3E/"), &entries, false);
        assert_eq!(reply.content_type.as_deref(), Some(HTML));
        assert_eq!(reply.vary, Some("Accept"));
        let page = body(&reply);
        assert!(page.contains("<title>Index of /a &lt;b&gt;/</title>"), "{page}");
        assert!(page.contains("<h1>Index of /a &lt;b&gt;/</h1>"), "{page}");
        assert!(page.contains("<a href=\"../\">../</a>"), "{page}");
        let rows = [
            "<tr><td><a href=\"sub%20dir/\">sub dir/</a></td><td>-</td>\
             <td>Sun, 06 Nov 1994 08:49:37 GMT</td></tr>",
            "<tr><td><a href=\"a%20b%23%3F%25%22%27%3C%26%3E%E4%B8%AD%E6%96%87.txt\">\
             a b#?%&quot;&#39;&lt;&amp;&gt;中文.txt</a></td><td>1234</td>",
            "<tr><td><a href=\"caf%E9\">caf\u{fffd}</a></td><td>3</td>",
        ];
        let mut from = 0;
        for row in rows {
            let at = page[from..]
                .find(row)
                .unwrap_or_else(|| panic!("{row} in {page}"));
            from += at + row.len();
        }
    }

    #[test]
    fn root_has_no_parent_link() {
        let page = body(&reply(&path("/"), &[], false));
        assert!(page.contains("<h1>Index of /</h1>"), "{page}");
        assert!(!page.contains("../"), "{page}");
    }

    #[test]
    fn json_lists_entries() {
        let entries = [
            entry(b"sub", true, 0),
            entry(TRICKY.as_bytes(), false, 1234),
            entry(b"caf\xe9", false, 3),
        ];
        let reply = reply(&path("/x/"), &entries, true);
        assert_eq!(reply.content_type.as_deref(), Some(JSON));
        assert_eq!(reply.vary, Some("Accept"));
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        let expected = format!(
            "[\n\
             {{\"name\":\"sub\",\"type\":\"directory\",\"size\":0,\"modified\":\"{date}\"}},\n\
             {{\"name\":\"a b#?%\\\"'<&>中文.txt\",\"type\":\"file\",\"size\":1234,\"modified\":\"{date}\"}},\n\
             {{\"name\":\"caf\u{fffd}\",\"type\":\"file\",\"size\":3,\"modified\":\"{date}\"}}\n\
             ]\n"
        );
        assert_eq!(body(&reply), expected);
        assert_eq!(json_page(&[]), "[\n]\n");
    }

    #[test]
    fn dates_outside_what_httpdate_writes_are_clamped() {
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(http_date(before), "Thu, 01 Jan 1970 00:00:00 GMT");
        let far = UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(http_date(far), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn json_is_chosen_by_accept() {
        let cases: &[(Option<&str>, bool)] = &[
            (None, false),
            (Some(""), false),
            (Some("application/json"), true),
            (Some("Application/JSON"), true),
            (Some("text/html,application/json;q=0.9"), false),
            (Some("application/json, text/html;q=0.5"), true),
            (Some("application/json;q=0.5, text/html;q=0.5"), false),
            (Some("application/json, text/html"), false),
            (Some("*/*"), false),
            (Some("application/*"), false),
            (Some("application/json;q=0"), false),
            (Some("application/json;q=0.000"), false),
            (Some("application/json ; q=0.001"), true),
            (Some("application/json;charset=utf-8;q=1.0"), true),
            (Some("application/json;q=0.5, */*;q=0.4"), true),
            (Some("application/json;q=0.5, */*"), false),
            (Some("application/json;q=0.5, text/*;q=0.6, */*;q=0.1"), false),
            (Some("application/json;q=0.5, text/plain, */*;q=0.1"), true),
            (Some("text/html,application/xhtml+xml,*/*;q=0.8"), false),
            (Some("application/json;q=2"), false),
            (Some("application/json;q=abc"), false),
            (Some("application/json;q=1.5"), false),
            (Some("application/json;q=0.1234"), false),
        ];
        for &(accept, expected) in cases {
            assert_eq!(wants_json(accept.map(str::as_bytes)), expected, "{accept:?}");
        }
        assert!(wants_json(Some(b"application/json, \xff/\xfe")));
    }

    #[test]
    fn quality_values() {
        assert_eq!(parse_quality("1"), Some(1000));
        assert_eq!(parse_quality("1.000"), Some(1000));
        assert_eq!(parse_quality("0.5"), Some(500));
        assert_eq!(parse_quality("0.05"), Some(50));
        assert_eq!(parse_quality("0."), Some(0));
        assert_eq!(parse_quality("1.001"), None);
        assert_eq!(parse_quality(".5"), None);
        assert_eq!(parse_quality(""), None);
        assert_eq!(parse_quality("0.-1"), None);
    }
}
