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
use std::cmp::Ordering;
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

/// The listing of the directory `path` (which ends in `/`): JSON when `json`, else HTML
/// sorted as `query` asks (see [`Sort`]). The JSON keeps the file system's order whatever
/// the query: programs that read it sort for themselves.
pub(super) fn reply(path: &SitePath, entries: &[Entry], json: bool, query: Option<&[u8]>) -> Reply {
    let (content_type, body) = if json {
        (JSON, json_page(entries))
    } else {
        (HTML, html_page(path, entries, Sort::from_query(query)))
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

/// The page's style: readable on a phone (the name wraps, size and date do not) and in
/// the reader's colour scheme. Inline, so the listing needs no second request.
const STYLE: &str = "\
:root{color-scheme:light dark;--fg:#1f2328;--bg:#fff;--mute:#59636e;--line:#d1d9e0;\
--link:#0969da;--hover:#f6f8fa}\
@media(prefers-color-scheme:dark){:root{--fg:#e6edf3;--bg:#0d1117;--mute:#9198a1;\
--line:#3d444d;--link:#4493f8;--hover:#161b22}}\
body{margin:0 auto;max-width:60rem;padding:1rem;font:16px/1.5 system-ui,sans-serif;\
color:var(--fg);background:var(--bg)}\
h1{font-size:1.25rem;font-weight:600;overflow-wrap:anywhere}\
a{color:var(--link);text-decoration:none}a:hover{text-decoration:underline}\
table{width:100%;border-collapse:collapse}\
th,td{padding:.4rem .5rem;border-bottom:1px solid var(--line)}\
th{text-align:left;border-bottom-width:2px}th a{color:inherit}\
td:first-child{overflow-wrap:anywhere}\
th+th,td+td{text-align:right;white-space:nowrap;color:var(--mute)}\
tr:hover td{background:var(--hover)}\
@media(max-width:40rem){body{padding:.5rem;font-size:15px}th,td{padding:.4rem .25rem}\
tr>:last-child{white-space:normal}}";

fn html_page(path: &SitePath, entries: &[Entry], sort: Sort) -> String {
    let title = html_escape(&directory_name(path));
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n\
         <title>Index of {title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
    );
    push_breadcrumb(&mut page, path, sort);
    page.push_str("<table>\n<tr>");
    for key in [Key::Name, Key::Size, Key::Date] {
        push_column_header(&mut page, key, sort);
    }
    page.push_str("</tr>\n");
    if !path.relative().is_empty() {
        let _ = writeln!(
            page,
            "<tr><td><a href=\"../{carried}\">../</a></td><td>-</td><td></td></tr>",
            carried = sort.carried()
        );
    }
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| sort.compare(a, b));
    for entry in sorted {
        push_html_row(&mut page, entry, sort);
    }
    page.push_str("</table>\n</body>\n</html>\n");
    page
}

/// `Index of /docs/api/` with `/` and `docs` as links to those directories. The links
/// are `../` steps, never built from a name, so the names only ever appear as escaped
/// text; and, like the entries' links, they stay right behind a proxy that mounts the
/// site under a prefix.
fn push_breadcrumb(page: &mut String, path: &SitePath, sort: Sort) {
    let relative = path.relative();
    let segments: Vec<&[u8]> = if relative.is_empty() {
        Vec::new()
    } else {
        relative.split(|&byte| byte == b'/').collect()
    };
    page.push_str("<h1>Index of ");
    let depth = segments.len();
    if depth == 0 {
        page.push('/');
    } else {
        push_ancestor_link(page, depth, "/", sort);
    }
    for (index, segment) in segments.iter().enumerate() {
        let text = html_escape(&String::from_utf8_lossy(segment));
        let steps_up = depth - index - 1;
        if steps_up == 0 {
            let _ = write!(page, "{text}/");
        } else {
            push_ancestor_link(page, steps_up, &text, sort);
            page.push('/');
        }
    }
    page.push_str("</h1>\n");
}

/// A link `steps_up` directories up from the listed one, showing `text` (already escaped).
fn push_ancestor_link(page: &mut String, steps_up: usize, text: &str, sort: Sort) {
    let _ = write!(
        page,
        "<a href=\"{up}{carried}\">{text}</a>",
        up = "../".repeat(steps_up),
        carried = sort.carried()
    );
}

/// A column's header: a link to the listing sorted by that column, in the other order
/// when it is the column sorted by now (marked with an arrow and `aria-sort`).
fn push_column_header(page: &mut String, key: Key, sort: Sort) {
    let (order, mark, aria) = if sort.key == key {
        let (mark, aria) = match sort.order {
            Order::Asc => (" \u{25b2}", " aria-sort=\"ascending\""),
            Order::Desc => (" \u{25bc}", " aria-sort=\"descending\""),
        };
        (sort.order.reversed(), mark, aria)
    } else {
        (key.first_order(), "", "")
    };
    let _ = write!(
        page,
        "<th{aria}><a href=\"{query}\">{label}{mark}</a></th>",
        query = Sort { key, order }.query(),
        label = key.label(),
    );
}

fn push_html_row(page: &mut String, entry: &Entry, sort: Sort) {
    let (slash, carried, size) = if entry.is_dir {
        ("/", sort.carried(), "-".to_owned())
    } else {
        ("", String::new(), human_size(entry.size))
    };
    // Writing into a String cannot fail.
    let _ = writeln!(
        page,
        "<tr><td><a href=\"{href}{slash}{carried}\">{text}{slash}</a></td><td>{size}</td><td>{date}</td></tr>",
        href = href(&entry.name),
        text = html_escape(&String::from_utf8_lossy(&entry.name)),
        date = utc_minute(entry.modified),
    );
}

/// How the HTML listing is ordered, from the query: `?sort=name|size|date&order=asc|desc`.
/// Directories always come first; a value it does not know leaves the default (name,
/// ascending), so an old or mistyped link still lists the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sort {
    key: Key,
    order: Order,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Name,
    Size,
    Date,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Asc,
    Desc,
}

impl Sort {
    const DEFAULT: Sort = Sort {
        key: Key::Name,
        order: Order::Asc,
    };

    /// The sort a query asks for (the query still percent-encoded; the values it knows
    /// need no encoding). The last `sort` and the last `order` win.
    fn from_query(query: Option<&[u8]>) -> Sort {
        let mut sort = Sort::DEFAULT;
        for pair in query.unwrap_or_default().split(|&byte| byte == b'&') {
            let Some(at) = pair.iter().position(|&byte| byte == b'=') else {
                continue;
            };
            let (name, value) = (&pair[..at], &pair[at + 1..]);
            match name {
                b"sort" => sort.key = Key::parse(value).unwrap_or(Sort::DEFAULT.key),
                b"order" => sort.order = Order::parse(value).unwrap_or(Sort::DEFAULT.order),
                _ => {}
            }
        }
        sort
    }

    /// Directories first, then by the key in the order asked, then by name.
    fn compare(self, a: &Entry, b: &Entry) -> Ordering {
        let by_key = match self.key {
            Key::Name => by_name(a, b),
            Key::Size => a.size.cmp(&b.size),
            Key::Date => a.modified.cmp(&b.modified),
        };
        let by_key = match self.order {
            Order::Asc => by_key,
            Order::Desc => by_key.reverse(),
        };
        b.is_dir.cmp(&a.is_dir).then(by_key).then_with(|| by_name(a, b))
    }

    /// The query selecting this sort, escaped for an HTML attribute.
    fn query(self) -> String {
        format!("?sort={}&amp;order={}", self.key.word(), self.order.word())
    }

    /// What links to directories carry so that the sort stays as the reader goes: nothing
    /// for the default, which keeps the plain links plain.
    fn carried(self) -> String {
        if self == Sort::DEFAULT {
            String::new()
        } else {
            self.query()
        }
    }
}

impl Key {
    fn parse(word: &[u8]) -> Option<Key> {
        [Key::Name, Key::Size, Key::Date]
            .into_iter()
            .find(|key| word.eq_ignore_ascii_case(key.word().as_bytes()))
    }

    fn word(self) -> &'static str {
        match self {
            Key::Name => "name",
            Key::Size => "size",
            Key::Date => "date",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Key::Name => "Name",
            Key::Size => "Size",
            Key::Date => "Modified (UTC)",
        }
    }

    /// The order of a first click on the column: names A to Z, but the biggest and the
    /// newest first, which is what a reader sorting by size or date looks for.
    fn first_order(self) -> Order {
        match self {
            Key::Name => Order::Asc,
            Key::Size | Key::Date => Order::Desc,
        }
    }
}

impl Order {
    fn parse(word: &[u8]) -> Option<Order> {
        [Order::Asc, Order::Desc]
            .into_iter()
            .find(|order| word.eq_ignore_ascii_case(order.word().as_bytes()))
    }

    fn word(self) -> &'static str {
        match self {
            Order::Asc => "asc",
            Order::Desc => "desc",
        }
    }

    fn reversed(self) -> Order {
        match self {
            Order::Asc => Order::Desc,
            Order::Desc => Order::Asc,
        }
    }
}

/// Names as a reader expects them, `README` beside `readme.txt`: ASCII letters compared
/// without case, then bytewise so that the order is total.
fn by_name(a: &Entry, b: &Entry) -> Ordering {
    let a_folded = a.name.iter().map(u8::to_ascii_lowercase);
    let b_folded = b.name.iter().map(u8::to_ascii_lowercase);
    a_folded.cmp(b_folded).then_with(|| a.name.cmp(&b.name))
}

/// A size as a reader takes it in: `512 B`, `15.6 KiB`, `1.0 MiB` (binary units, one
/// decimal). A value that would round to 1024.0 of a unit is shown in the next one.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    // Precision lost above 2^53 bytes is far below the one decimal shown.
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1023.95 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `time` as `1994-11-06 08:49`, in UTC, clamped to the years the JSON's HTTP-dates can
/// hold (1970..=9999), so the two forms never disagree.
fn utc_minute(time: SystemTime) -> String {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .min(LATEST_HTTP_DATE)
        .as_secs();
    let (year, month, day) = civil_date(seconds / 86_400);
    let second_of_day = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        second_of_day / 3600,
        second_of_day % 3600 / 60
    )
}

/// The proleptic Gregorian (year, month, day) of a day counted from 1970-01-01: Howard
/// Hinnant's `civil_from_days`, for days on or after the epoch. Years start in March
/// there, so that the leap day is the last of its year.
fn civil_date(days_since_epoch: u64) -> (u64, u64, u64) {
    let days = days_since_epoch + 719_468; // from 0000-03-01
    let era = days / 146_097;
    let day_of_era = days % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
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
        let reply = reply(&path("/a%20%3Cb%3E/"), &entries, false, None);
        assert_eq!(reply.content_type.as_deref(), Some(HTML));
        assert_eq!(reply.vary, Some("Accept"));
        let page = body(&reply);
        assert!(page.contains("<title>Index of /a &lt;b&gt;/</title>"), "{page}");
        assert!(
            page.contains("<h1>Index of <a href=\"../\">/</a>a &lt;b&gt;/</h1>"),
            "{page}"
        );
        assert!(page.contains("<a href=\"../\">../</a>"), "{page}");
        let rows = [
            "<tr><td><a href=\"sub%20dir/\">sub dir/</a></td><td>-</td>\
             <td>1994-11-06 08:49</td></tr>",
            "<tr><td><a href=\"a%20b%23%3F%25%22%27%3C%26%3E%E4%B8%AD%E6%96%87.txt\">\
             a b#?%&quot;&#39;&lt;&amp;&gt;中文.txt</a></td><td>1.2 KiB</td>",
            "<tr><td><a href=\"caf%E9\">caf\u{fffd}</a></td><td>3 B</td>",
        ];
        assert_in_order(&page, &rows);
    }

    #[track_caller]
    fn assert_in_order(page: &str, parts: &[&str]) {
        let mut from = 0;
        for part in parts {
            let at = page[from..]
                .find(part)
                .unwrap_or_else(|| panic!("{part} (in this order) in {page}"));
            from += at + part.len();
        }
    }

    #[test]
    fn root_has_no_parent_link() {
        let page = body(&reply(&path("/"), &[], false, None));
        assert!(page.contains("<h1>Index of /</h1>"), "{page}");
        assert!(!page.contains("../"), "{page}");
    }

    #[test]
    fn breadcrumb_links_every_ancestor_by_steps_up() {
        let page = body(&reply(&path("/a%20%3Cb%3E/c%26d/e/"), &[], false, None));
        assert!(
            page.contains(
                "<h1>Index of <a href=\"../../../\">/</a><a href=\"../../\">a &lt;b&gt;</a>/\
                 <a href=\"../\">c&amp;d</a>/e/</h1>"
            ),
            "{page}"
        );
        let sorted = Some(&b"sort=date&order=desc"[..]);
        let page = body(&reply(&path("/a/b/"), &[], false, sorted));
        let carried = "?sort=date&amp;order=desc";
        assert!(
            page.contains(&format!(
                "<h1>Index of <a href=\"../../{carried}\">/</a><a href=\"../{carried}\">a</a>/b/</h1>"
            )),
            "{page}"
        );
        assert!(
            page.contains(&format!("<a href=\"../{carried}\">../</a>")),
            "{page}"
        );
    }

    #[test]
    fn the_page_is_small_works_on_a_phone_and_follows_the_colour_scheme() {
        let page = body(&reply(&path("/"), &[], false, None));
        assert!(page.len() < 3 * 1024, "{} bytes: {page}", page.len());
        assert!(page.contains("name=\"viewport\""), "{page}");
        assert!(page.contains("@media(prefers-color-scheme:dark)"), "{page}");
        assert!(page.contains("@media(max-width:"), "{page}");
        for external in ["<script", "<link", "src=", "url(", "http:", "https:"] {
            assert!(!page.contains(external), "{external} in {page}");
        }
    }

    #[test]
    fn column_headers_link_to_their_sort_and_toggle_the_current_one() {
        let headers = |query: &str| {
            let page = body(&reply(&path("/"), &[], false, Some(query.as_bytes())));
            let start = page.find("<tr><th").unwrap();
            let end = start + page[start..].find("</tr>").unwrap();
            page[start..end].to_owned()
        };
        assert_eq!(
            headers(""),
            "<tr><th aria-sort=\"ascending\"><a href=\"?sort=name&amp;order=desc\">Name \u{25b2}</a></th>\
             <th><a href=\"?sort=size&amp;order=desc\">Size</a></th>\
             <th><a href=\"?sort=date&amp;order=desc\">Modified (UTC)</a></th>"
        );
        assert_eq!(
            headers("sort=size&order=desc"),
            "<tr><th><a href=\"?sort=name&amp;order=asc\">Name</a></th>\
             <th aria-sort=\"descending\"><a href=\"?sort=size&amp;order=asc\">Size \u{25bc}</a></th>\
             <th><a href=\"?sort=date&amp;order=desc\">Modified (UTC)</a></th>"
        );
        assert!(headers("sort=date&order=asc")
            .contains("<th aria-sort=\"ascending\"><a href=\"?sort=date&amp;order=desc\">"));
    }

    #[test]
    fn sort_is_read_from_the_query_and_falls_back_to_the_default() {
        let sort = |query: Option<&str>| Sort::from_query(query.map(str::as_bytes));
        let of = |key, order| Sort { key, order };
        assert_eq!(sort(None), Sort::DEFAULT);
        assert_eq!(Sort::DEFAULT, of(Key::Name, Order::Asc));
        assert_eq!(sort(Some("sort=size&order=desc")), of(Key::Size, Order::Desc));
        assert_eq!(sort(Some("order=desc&sort=date")), of(Key::Date, Order::Desc));
        assert_eq!(sort(Some("sort=SIZE&x=1&order=Desc")), of(Key::Size, Order::Desc));
        assert_eq!(sort(Some("sort=size")), of(Key::Size, Order::Asc));
        assert_eq!(sort(Some("order=desc")), of(Key::Name, Order::Desc));
        assert_eq!(sort(Some("sort=size&sort=date")), of(Key::Date, Order::Asc));
        for unknown in [
            "",
            "sort=bogus&order=sideways",
            "sort=&order=",
            "sort&order",
            "sort=size%00&order=desc ",
            "Sort=size&ORDER=desc",
            "sort=si\u{e9}ze",
            "&&=&",
        ] {
            assert_eq!(sort(Some(unknown)), Sort::DEFAULT, "{unknown:?}");
        }
        assert_eq!(sort(Some("sort=size&order=bogus")), of(Key::Size, Order::Asc));
    }

    #[test]
    fn entries_are_sorted_directories_first_in_every_order() {
        let at = |seconds| UNIX_EPOCH + Duration::from_secs(seconds);
        let with = |name: &[u8], is_dir, size, seconds| Entry {
            modified: at(seconds),
            ..entry(name, is_dir, size)
        };
        let entries = [
            with(b"b-dir", true, 0, 5),
            with(b"A-dir", true, 0, 9),
            with(b"big", false, 5000, 1),
            with(b"Mid", false, 300, 3),
            with(b"small", false, 2, 7),
            with(b"also-small", false, 2, 8),
        ];
        let names = |query: &str| {
            let mut sorted: Vec<&Entry> = entries.iter().collect();
            let sort = Sort::from_query(Some(query.as_bytes()));
            sorted.sort_by(|a, b| sort.compare(a, b));
            sorted
                .iter()
                .map(|entry| String::from_utf8(entry.name.clone()).unwrap())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(names(""), "A-dir b-dir also-small big Mid small");
        assert_eq!(names("order=desc"), "b-dir A-dir small Mid big also-small");
        assert_eq!(names("sort=size"), "A-dir b-dir also-small small Mid big");
        assert_eq!(
            names("sort=size&order=desc"),
            "A-dir b-dir big Mid also-small small"
        );
        assert_eq!(names("sort=date"), "b-dir A-dir big Mid small also-small");
        assert_eq!(
            names("sort=date&order=desc"),
            "A-dir b-dir also-small small Mid big"
        );
    }

    #[test]
    fn the_sort_is_carried_by_directory_links_only() {
        let entries = [entry(b"sub", true, 0), entry(b"file", false, 5000)];
        let sorted = Some(&b"sort=size&order=desc"[..]);
        let page = body(&reply(&path("/x/"), &entries, false, sorted));
        assert_in_order(
            &page,
            &[
                "<a href=\"sub/?sort=size&amp;order=desc\">sub/</a>",
                "<a href=\"file\">file</a></td><td>4.9 KiB</td>",
            ],
        );
        let page = body(&reply(&path("/x/"), &entries, false, Some(b"sort=name")));
        assert!(page.contains("<a href=\"sub/\">sub/</a>"), "{page}");
    }

    #[test]
    fn sizes_read_in_binary_units() {
        let cases = [
            (0, "0 B"),
            (512, "512 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (15_974, "15.6 KiB"),
            (1_048_524, "1023.9 KiB"),
            (1_048_525, "1.0 MiB"),
            (1_048_576, "1.0 MiB"),
            (5 << 30, "5.0 GiB"),
            (3 << 40, "3.0 TiB"),
            (7 << 50, "7.0 PiB"),
            (u64::MAX, "16.0 EiB"),
        ];
        for (bytes, expected) in cases {
            assert_eq!(human_size(bytes), expected, "{bytes}");
        }
    }

    #[test]
    fn dates_read_as_utc_minutes() {
        let at = |seconds| UNIX_EPOCH + Duration::from_secs(seconds);
        assert_eq!(utc_minute(at(784_111_777)), "1994-11-06 08:49");
        assert_eq!(utc_minute(at(0)), "1970-01-01 00:00");
        assert_eq!(utc_minute(at(951_782_399)), "2000-02-28 23:59");
        assert_eq!(utc_minute(at(951_782_400)), "2000-02-29 00:00");
        assert_eq!(
            utc_minute(UNIX_EPOCH - Duration::from_secs(1)),
            "1970-01-01 00:00"
        );
        assert_eq!(utc_minute(at(400_000_000_000)), "9999-12-31 23:59");
    }

    /// The calendar arithmetic agrees with `httpdate` across its whole range.
    #[test]
    fn dates_agree_with_httpdate() {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let mut seconds = 0;
        while seconds <= LATEST_HTTP_DATE.as_secs() {
            let time = UNIX_EPOCH + Duration::from_secs(seconds);
            // "Sun, 06 Nov 1994 08:49:37 GMT"
            let http = http_date(time);
            let fields: Vec<&str> = http.split([' ', ':']).collect();
            let month = MONTHS.iter().position(|&m| m == fields[2]).unwrap() + 1;
            let expected = format!(
                "{}-{month:02}-{} {}:{}",
                fields[3], fields[1], fields[4], fields[5]
            );
            assert_eq!(utc_minute(time), expected, "{seconds}");
            seconds += 86_399 * 37 + 1_234;
        }
    }

    #[test]
    fn json_lists_entries() {
        let entries = [
            entry(b"sub", true, 0),
            entry(TRICKY.as_bytes(), false, 1234),
            entry(b"caf\xe9", false, 3),
        ];
        let reply = reply(&path("/x/"), &entries, true, None);
        let sorted = Some(&b"sort=size&order=desc"[..]);
        assert_eq!(
            body(&reply),
            body(&super::reply(&path("/x/"), &entries, true, sorted))
        );
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
