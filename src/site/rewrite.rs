//! `[[redirects]]`: redirect and rewrite rules, as Netlify writes them.
//!
//! ```toml
//! [[redirects]]
//! from = "/blog/:year/*"        # `:name` captures one segment, a last `*` the rest
//! to = "/posts/:year/:splat"    # or an absolute URL: "https://new.example/:splat"
//! status = 301                  # 301 (the default), 302, 303, 307, 308; 200 = rewrite
//! ```
//!
//! `from` is matched against the decoded, normalized request path, a trailing slash aside
//! (`/old` and `/old/` alike); a last `*` matches zero or more segments. A redirect keeps the
//! request's query unless `to` has one of its own; a rewrite (200) serves `to` as if it had
//! been asked for, beneath ROOT like any request.
//!
//! A `Location` is never built from an unchecked request byte: captured parts are
//! percent-encoded again (only unreserved characters pass, and `/` in a splat), the query is
//! passed through only where it is made of URI characters, and `to` itself was checked at
//! start-up (URI characters only; a relative one starts with exactly one `/`), and leading
//! slashes are collapsed once the captures are in (an empty splat in `/:splat/x`). So no CR,
//! LF or space can reach the header, and a relative `to` can never become `//host`.

use crate::fs::{self, SitePath};
use crate::http::Status;
use std::fmt::Write;

/// One `[[redirects]]` table, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectRule {
    from: Box<str>,
    to: Box<str>,
    status: u16,
    pattern: Box<[FromSegment]>,
    /// Whether `from` ends in `*`.
    splat: bool,
    template: Box<[Piece]>,
    /// `to` has its own query: the request's is not appended.
    own_query: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum FromSegment {
    Literal(Box<[u8]>),
    /// `:name`, captured.
    Param(Box<str>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(Box<str>),
    /// The segment captured by the `from` param at this index.
    Param(usize),
    Splat,
}

/// What a matching rule makes of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Redirect {
        status: Status,
        location: String,
    },
    /// Serve this path instead.
    Rewrite(SitePath),
}

/// Why a `[[redirects]]` table is refused; [`RedirectError::key`] says which of its keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectError {
    #[error("'from' must be a path starting with '/', got '{0}'")]
    FromNotAbsolute(String),
    #[error("'from' has no empty, '.' or '..' segments (it is matched against normalized paths), got '{0}'")]
    FromNotNormalized(String),
    #[error("'*' in 'from' must be the whole last segment (/blog/*), got '{0}'")]
    MisplacedSplat(String),
    #[error("':{0}' appears twice in 'from'")]
    DuplicateName(String),
    #[error("':{0}' is not a name 'from' captures")]
    UnknownName(String),
    #[error("'to' must be a path starting with one '/' or an absolute URL (https://...), got '{0}'")]
    BadTarget(String),
    #[error("'to' may hold only URI characters (percent-encode others), got '{0}'")]
    BadCharacter(String),
    #[error("a rewrite (status 200) serves a path of this site: 'to' must start with '/' and have no query or fragment, got '{0}'")]
    RewriteElsewhere(String),
    #[error("a rewrite (status 200) must name a path beneath the root, got '{0}'")]
    RewriteOutside(String),
    #[error("status must be 301, 302, 303, 307, 308, or 200 for a rewrite, got {0}")]
    Status(u16),
}

impl RedirectError {
    /// The key of the table the error is about.
    pub fn key(&self) -> &'static str {
        match self {
            RedirectError::FromNotAbsolute(_)
            | RedirectError::FromNotNormalized(_)
            | RedirectError::MisplacedSplat(_)
            | RedirectError::DuplicateName(_) => "from",
            RedirectError::Status(_) => "status",
            _ => "to",
        }
    }
}

/// The status of a rule without one, as Netlify's.
pub const DEFAULT_STATUS: u16 = 301;
const REWRITE: u16 = 200;

impl RedirectRule {
    pub fn new(from: &str, to: &str, status: u16) -> Result<RedirectRule, RedirectError> {
        if status != REWRITE {
            redirect_status(status).ok_or(RedirectError::Status(status))?;
        }
        let (pattern, splat) = parse_from(from)?;
        let names: Vec<&str> = pattern
            .iter()
            .filter_map(|segment| match segment {
                FromSegment::Param(name) => Some(&**name),
                FromSegment::Literal(_) => None,
            })
            .collect();
        let template = parse_to(to, &names, splat)?;
        let rule = RedirectRule {
            from: from.into(),
            to: to.into(),
            status,
            pattern: pattern.into(),
            splat,
            template: template.into(),
            own_query: to.contains('?'),
        };
        if status == REWRITE {
            rule.check_rewrite()?;
        }
        Ok(rule)
    }

    pub fn from(&self) -> &str {
        &self.from
    }

    pub fn to(&self) -> &str {
        &self.to
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    /// What this rule makes of a request for `path` with `query`, if `from` matches it.
    pub fn apply(&self, path: &SitePath, query: Option<&[u8]>) -> Option<Outcome> {
        let captures = self.captures(path)?;
        let mut target = String::new();
        for piece in self.template.iter() {
            match piece {
                Piece::Literal(text) => target.push_str(text),
                Piece::Param(index) => encode(&mut target, captures.params[*index], PARAM),
                Piece::Splat => {
                    encode(&mut target, captures.splat, SPLAT);
                    if path.has_trailing_slash() && !captures.splat.is_empty() {
                        target.push('/');
                    }
                }
            }
        }
        // An empty splat can put two slashes first (`/:splat/x` for `/blog`): `//x` would
        // name another host, so leading slashes are collapsed to one.
        if target.starts_with("//") {
            target.replace_range(..target.len() - target.trim_start_matches('/').len(), "/");
        }
        let Some(status) = redirect_status(self.status) else {
            // A rewrite: `to` was checked to decode with any captures (which are encoded).
            return fs::decode_path(target.as_bytes()).ok().map(Outcome::Rewrite);
        };
        if let Some(query) = query.filter(|query| !query.is_empty() && !self.own_query) {
            target.push('?');
            encode(&mut target, query, QUERY);
        }
        Some(Outcome::Redirect {
            status,
            location: target,
        })
    }

    /// The segments `from` captured, if it matches `path`; allocates only on a match.
    fn captures<'p>(&self, path: &'p SitePath) -> Option<Captures<'p>> {
        let relative = path.relative();
        let mut segments = relative.split(|&b| b == b'/').filter(|s| !s.is_empty());
        let mut params = Vec::new();
        let mut consumed = 0;
        for expected in self.pattern.iter() {
            let segment = segments.next()?;
            match expected {
                FromSegment::Literal(literal) if **literal != *segment => return None,
                FromSegment::Literal(_) => {}
                FromSegment::Param(_) => params.push(segment),
            }
            consumed += segment.len() + 1;
        }
        let rest = relative.get(consumed..).unwrap_or_default();
        if !self.splat && !rest.is_empty() {
            return None;
        }
        Some(Captures { params, splat: rest })
    }

    /// A rewrite's `to`, with every capture as some segment, must name a path beneath the
    /// root: one that does not (`/../x`, `%00`) is refused at start-up, not per request.
    fn check_rewrite(&self) -> Result<(), RedirectError> {
        if !self.to.starts_with('/') || self.to.contains(['?', '#']) {
            return Err(RedirectError::RewriteElsewhere(self.to.to_string()));
        }
        // A name is never empty; a splat may be (`/app/*` matches `/app`).
        for splat in ["x", ""] {
            let probe = self.template.iter().fold(String::new(), |mut text, piece| {
                match piece {
                    Piece::Literal(literal) => text.push_str(literal),
                    Piece::Param(_) => text.push('x'),
                    Piece::Splat => text.push_str(splat),
                }
                text
            });
            fs::decode_path(probe.as_bytes())
                .map_err(|_| RedirectError::RewriteOutside(self.to.to_string()))?;
        }
        Ok(())
    }
}

struct Captures<'p> {
    params: Vec<&'p [u8]>,
    splat: &'p [u8],
}

fn redirect_status(status: u16) -> Option<Status> {
    Some(match status {
        301 => Status::MovedPermanently,
        302 => Status::Found,
        303 => Status::SeeOther,
        307 => Status::TemporaryRedirect,
        308 => Status::PermanentRedirect,
        _ => return None,
    })
}

fn parse_from(from: &str) -> Result<(Vec<FromSegment>, bool), RedirectError> {
    let rest = from
        .strip_prefix('/')
        .ok_or_else(|| RedirectError::FromNotAbsolute(from.to_owned()))?;
    // A trailing slash does not count: `/old/` matches `/old` and `/old/` alike.
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let mut pattern = Vec::new();
    let mut splat = false;
    if rest.is_empty() {
        return Ok((pattern, splat));
    }
    for part in rest.split('/') {
        if splat || (part.contains('*') && part != "*") {
            return Err(RedirectError::MisplacedSplat(from.to_owned()));
        }
        if matches!(part, "" | "." | "..") {
            return Err(RedirectError::FromNotNormalized(from.to_owned()));
        }
        if part == "*" {
            splat = true;
            continue;
        }
        let segment = match part.strip_prefix(':').filter(|name| is_name(name)) {
            Some(name) if pattern.contains(&FromSegment::Param(name.into())) => {
                return Err(RedirectError::DuplicateName(name.to_owned()))
            }
            Some(name) => FromSegment::Param(name.into()),
            None => FromSegment::Literal(part.as_bytes().into()),
        };
        pattern.push(segment);
    }
    Ok((pattern, splat))
}

fn parse_to(to: &str, names: &[&str], splat: bool) -> Result<Vec<Piece>, RedirectError> {
    if !to.bytes().all(is_uri_byte) || !percent_escapes_are_whole(to) {
        return Err(RedirectError::BadCharacter(to.to_owned()));
    }
    let relative = to.starts_with('/') && !to.starts_with("//");
    if !relative && !is_absolute_url(to) {
        return Err(RedirectError::BadTarget(to.to_owned()));
    }
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = to;
    while let Some(colon) = rest.find(':') {
        literal.push_str(&rest[..colon]);
        let after = &rest[colon + 1..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..name_len];
        if !is_name(name) {
            // `https:` or a port (`:8443`): not a placeholder.
            literal.push(':');
            rest = after;
            continue;
        }
        let piece = if name == "splat" && splat {
            Piece::Splat
        } else {
            let index = names.iter().position(|known| *known == name);
            Piece::Param(index.ok_or_else(|| RedirectError::UnknownName(name.to_owned()))?)
        };
        if !literal.is_empty() {
            pieces.push(Piece::Literal(std::mem::take(&mut literal).into()));
        }
        pieces.push(piece);
        rest = &after[name_len..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal.into()));
    }
    Ok(pieces)
}

/// `:name`: a letter or `_`, then letters, digits and `_`.
fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `scheme://` then something, as RFC 3986 §3.1 spells a scheme.
fn is_absolute_url(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once("://") else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !rest.is_empty()
        && !rest.starts_with('/')
}

/// RFC 3986 §2: unreserved, reserved and `%`.
fn is_uri_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b)
}

fn percent_escapes_are_whole(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().all(|(at, &b)| {
        b != b'%'
            || bytes
                .get(at + 1..at + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    })
}

/// Bytes that pass unencoded into a captured `:name`: RFC 3986's unreserved.
const PARAM: &[u8] = b"-._~";
/// In a splat, `/` too: it keeps its segments.
const SPLAT: &[u8] = b"-._~/";
/// In the query: what RFC 3986 §3.4 allows there, a `%` included (the client's escapes).
const QUERY: &[u8] = b"-._~!$&'()*+,;=:@/?%";

/// Appends `bytes` to `out`, alphanumerics and `passing` as they are, every other byte as
/// `%XX`.
fn encode(out: &mut String, bytes: &[u8], passing: &[u8]) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || passing.contains(&b) {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(from: &str, to: &str, status: u16, target: &str) -> Option<Outcome> {
        let rule = RedirectRule::new(from, to, status).unwrap();
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query.as_bytes())),
            None => (target, None),
        };
        rule.apply(&fs::decode_path(path.as_bytes()).unwrap(), query)
    }

    fn location(from: &str, to: &str, target: &str) -> Option<String> {
        match apply(from, to, 301, target)? {
            Outcome::Redirect { location, .. } => Some(location),
            Outcome::Rewrite(_) => panic!("a rewrite"),
        }
    }

    #[test]
    fn splat_and_names_are_captured() {
        let blog = |target| location("/blog/*", "/posts/:splat", target);
        assert_eq!(blog("/blog/a/b.html").as_deref(), Some("/posts/a/b.html"));
        assert_eq!(blog("/blog/a/").as_deref(), Some("/posts/a/"));
        assert_eq!(blog("/blog/").as_deref(), Some("/posts/"));
        assert_eq!(blog("/blog").as_deref(), Some("/posts/"));
        assert_eq!(blog("/blogs/a"), None);
        assert_eq!(blog("/x/blog/a"), None);
        let dated = |target| location("/blog/:year/:slug", "/:year/posts/:slug.html", target);
        assert_eq!(
            dated("/blog/2024/hello").as_deref(),
            Some("/2024/posts/hello.html")
        );
        assert_eq!(
            dated("/blog/2024/hello/").as_deref(),
            Some("/2024/posts/hello.html")
        );
        assert_eq!(dated("/blog/2024"), None);
        assert_eq!(dated("/blog/2024/hello/more"), None);
        assert_eq!(location("/old", "/new", "/old/").as_deref(), Some("/new"));
        assert_eq!(location("/", "/home", "/").as_deref(), Some("/home"));
        assert_eq!(location("/", "/home", "/a"), None);
        assert_eq!(
            location("/*", "https://new.example:8443/:splat", "/a/b").as_deref(),
            Some("https://new.example:8443/a/b")
        );
    }

    #[test]
    fn the_query_is_kept_unless_to_has_one() {
        assert_eq!(
            location("/a", "/b", "/a?x=1&y=%20").as_deref(),
            Some("/b?x=1&y=%20")
        );
        assert_eq!(
            location("/a", "/b?from=a", "/a?x=1").as_deref(),
            Some("/b?from=a")
        );
        assert_eq!(location("/a", "/b", "/a?").as_deref(), Some("/b"));
        // Bytes a URI cannot hold are encoded, whatever the parser let through.
        let rule = RedirectRule::new("/a", "/b", 302).unwrap();
        let path = fs::decode_path(b"/a").unwrap();
        let Some(Outcome::Redirect { location, status }) = rule.apply(&path, Some(b"q=\"<x>\"\r\n \xff"))
        else {
            panic!("no redirect");
        };
        assert_eq!(status, Status::Found);
        assert_eq!(location, "/b?q=%22%3Cx%3E%22%0D%0A%20%FF");
    }

    #[test]
    fn captures_are_encoded_again() {
        let blog = |target| location("/blog/*", "/posts/:splat", target).unwrap();
        assert_eq!(blog("/blog/%0d%0aSet-Cookie:x"), "/posts/%0D%0ASet-Cookie%3Ax");
        assert_eq!(blog("/blog/a%20b/%E4%B8%AD"), "/posts/a%20b/%E4%B8%AD");
        assert_eq!(blog("/blog/a%3Fb%23c"), "/posts/a%3Fb%23c");
        let named = |target| location("/u/:name", "/users/:name", target);
        assert_eq!(named("/u/a%20b~c.d").as_deref(), Some("/users/a%20b~c.d"));
        assert_eq!(named("/u/a:b").as_deref(), Some("/users/a%3Ab"));
        assert_eq!(named("/u/a%2Fb"), None, "a decoded slash separates segments");
    }

    #[test]
    fn a_relative_target_never_leaves_the_site() {
        // Whatever the request holds, the location starts with one `/`.
        for target in [
            "/%2F%2Fevil.com",
            "//evil.com",
            "/%5Cevil.com",
            "/%2F/evil.com/x",
            "/\\evil",
        ] {
            let Ok(path) = fs::decode_path(target.as_bytes()) else {
                continue;
            };
            let rule = RedirectRule::new("/*", "/:splat", 302).unwrap();
            let Some(Outcome::Redirect { location, .. }) = rule.apply(&path, None) else {
                panic!("{target}: no redirect");
            };
            assert!(
                location.starts_with('/') && !location.starts_with("//"),
                "{target}: {location}"
            );
            assert!(!location.contains('\\'), "{target}: {location}");
        }
        // An empty splat cannot make `//host` either.
        let rule = RedirectRule::new("/go/*", "/:splat/evil.com", 302).unwrap();
        for target in ["/go", "/go/", "/go//"] {
            let path = fs::decode_path(target.as_bytes()).unwrap();
            let Some(Outcome::Redirect { location, .. }) = rule.apply(&path, None) else {
                panic!("{target}: no redirect");
            };
            assert_eq!(location, "/evil.com", "{target}");
        }
        let rule = RedirectRule::new("/go/*", "/:splat/", 302).unwrap();
        let Some(Outcome::Redirect { location, .. }) = rule.apply(&fs::decode_path(b"/go").unwrap(), None)
        else {
            panic!("no redirect");
        };
        assert_eq!(location, "/");
        for to in [
            "//evil.com/:splat",
            "/\\evil.com",
            "evil.com",
            "javascript:alert(1)",
            "https:///x",
        ] {
            assert!(RedirectRule::new("/*", to, 301).is_err(), "{to}");
        }
    }

    #[test]
    fn rewrites_name_a_path_of_the_site() {
        let Some(Outcome::Rewrite(path)) = apply("/app/*", "/index.html", 200, "/app/deep/link") else {
            panic!("no rewrite");
        };
        assert_eq!(path.relative(), b"index.html");
        let Some(Outcome::Rewrite(path)) = apply("/u/:id", "/users/:id.json", 200, "/u/a%20b") else {
            panic!("no rewrite");
        };
        assert_eq!(path.relative(), b"users/a b.json");
        for (to, why) in [
            ("https://x.example/", "RewriteElsewhere"),
            ("/a?b", "RewriteElsewhere"),
            ("/../x", "RewriteOutside"),
            ("/a%00", "RewriteOutside"),
            ("/..:splat", "RewriteOutside"),
        ] {
            let error = RedirectRule::new("/*", to, 200).unwrap_err();
            assert!(format!("{error:?}").starts_with(why), "{to}: {error:?}");
            assert_eq!(error.key(), "to");
        }
    }

    #[test]
    fn bad_rules_name_their_key() {
        for (from, to, status, key) in [
            ("blog/*", "/x", 301, "from"),
            ("/a//b", "/x", 301, "from"),
            ("/a/*/b", "/x", 301, "from"),
            ("/a*", "/x", 301, "from"),
            ("/:a/:a", "/x", 301, "from"),
            ("/a", "/:splat", 301, "to"),
            ("/:a", "/:b", 301, "to"),
            ("/a", "/x y", 301, "to"),
            ("/a", "/x\r\nSet-Cookie: a", 301, "to"),
            ("/a", "/%zz", 301, "to"),
            ("/a", "/é", 301, "to"),
            ("/a", "/x", 304, "status"),
            ("/a", "/x", 404, "status"),
        ] {
            let error = RedirectRule::new(from, to, status).unwrap_err();
            assert_eq!(error.key(), key, "{from} {to} {status}: {error}");
        }
        for status in [301, 302, 303, 307, 308, 200] {
            assert_eq!(RedirectRule::new("/a", "/b", status).unwrap().status(), status);
        }
    }
}
