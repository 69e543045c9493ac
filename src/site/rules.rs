//! The site's rules, fixed at start-up: header fields (`--header`, `[[headers]]`), CORS
//! (`--cors`) and redirects and rewrites (`[[redirects]]`, see `rewrite.rs`).
//!
//! What the fields of a response are depends on its path (which `[[headers]]` globs match
//! it) and, with listed CORS origins, on the request's `Origin`. Both are worked out once per
//! path into a [`PathFields`]: one field list per listed origin and one for every other
//! request, so that answering a request only picks one (an `Arc` clone). A path no
//! `[[headers]]` rule matches shares the site-wide one; with no rules at all there is no list
//! and nothing is done per request.

use super::glob::{Glob, GlobError};
use super::rewrite::{Outcome, RedirectRule};
use crate::fs::SitePath;
use crate::http::{Body, Field, FieldList, InvalidField, Reply, Request, Status};
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// One `--header 'Name: value'`: a field on every response of the site; an empty value
/// (`'X-Content-Type-Options:'`) removes the server's own field of that name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderField {
    name: Box<str>,
    value: Box<str>,
}

impl FromStr for HeaderField {
    type Err = String;

    fn from_str(text: &str) -> Result<HeaderField, String> {
        let (name, value) = text
            .split_once(':')
            .ok_or_else(|| format!("expected 'Name: value', got '{}'", text.escape_debug()))?;
        let value = value.trim_matches([' ', '\t']);
        FieldList::default()
            .set(name, value)
            .map_err(|error| error.to_string())?;
        Ok(HeaderField {
            name: name.into(),
            value: value.into(),
        })
    }
}

impl fmt::Display for HeaderField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.value {
            "" => write!(f, "{}:", self.name),
            value => write!(f, "{}: {value}", self.name),
        }
    }
}

/// One `[[headers]]` table: the fields `set` on every response whose path `path` matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderRule {
    glob: Glob,
    fields: FieldList,
}

/// Why a `[[headers]]` table is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderRuleError {
    #[error("path: {0}")]
    Path(#[from] GlobError),
    /// The field at `index` of those given.
    #[error("{error}")]
    Field { index: usize, error: InvalidField },
}

impl HeaderRule {
    /// `set` in the order written: a later field of the same name wins.
    pub fn new(path: &str, set: &[(String, String)]) -> Result<HeaderRule, HeaderRuleError> {
        let glob = Glob::new(path)?;
        let mut fields = FieldList::default();
        for (index, (name, value)) in set.iter().enumerate() {
            fields
                .set(name, value)
                .map_err(|error| HeaderRuleError::Field { index, error })?;
        }
        Ok(HeaderRule { glob, fields })
    }

    pub fn path(&self) -> &str {
        self.glob.as_str()
    }

    /// The fields set, in order (empty values are removals).
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter()
    }
}

/// Which origins may read the site's responses from a script elsewhere (`--cors`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Cors {
    #[default]
    Off,
    /// `Access-Control-Allow-Origin: *`
    AnyOrigin,
    /// These, each echoed when it is the request's `Origin`.
    Origins(Vec<Origin>),
}

/// One `--cors` value: `*`, or an origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowOrigin {
    Any,
    Listed(Origin),
}

/// An origin as browsers send it: `scheme://host[:port]`, lower case, no path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(Arc<str>);

impl Origin {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for AllowOrigin {
    type Err = String;

    fn from_str(text: &str) -> Result<AllowOrigin, String> {
        if text == "*" {
            return Ok(AllowOrigin::Any);
        }
        let refused =
            || format!("expected * or an origin such as https://example.com (no path), got '{text}'");
        let (scheme, host) = text.split_once("://").ok_or_else(refused)?;
        let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~:[]".contains(&b));
        if !(scheme_ok && host_ok) {
            return Err(refused());
        }
        // Browsers send scheme and host in lower case.
        Ok(AllowOrigin::Listed(Origin(text.to_ascii_lowercase().into())))
    }
}

impl Cors {
    /// From the `--cors` values: off with none, any origin if one is `*`, else those listed.
    pub fn new(values: impl IntoIterator<Item = AllowOrigin>) -> Cors {
        let mut cors = Cors::Off;
        for value in values {
            cors = match (cors, value) {
                (Cors::AnyOrigin, _) | (_, AllowOrigin::Any) => Cors::AnyOrigin,
                (Cors::Off, AllowOrigin::Listed(origin)) => Cors::Origins(vec![origin]),
                (Cors::Origins(mut origins), AllowOrigin::Listed(origin)) => {
                    if !origins.contains(&origin) {
                        origins.push(origin);
                    }
                    Cors::Origins(origins)
                }
            };
        }
        cors
    }
}

/// A preflight's answer may be cached this long (a day; browsers cap it lower).
const PREFLIGHT_MAX_AGE: &str = "86400";

/// The fields of the site's responses for one path.
#[derive(Debug, Default)]
pub(super) struct PathFields {
    /// For a request without a listed `Origin`; `None`: nothing to add.
    base: Option<Arc<FieldList>>,
    /// For each listed origin: `base` and that origin allowed.
    by_origin: Box<[(Origin, Arc<FieldList>)]>,
}

impl PathFields {
    /// The fields for `request`.
    pub fn for_request(&self, request: &Request<'_>) -> Option<Arc<FieldList>> {
        if !self.by_origin.is_empty() {
            if let Some(origin) = request.field(Field::Origin) {
                let allowed = self
                    .by_origin
                    .iter()
                    .find(|(listed, _)| listed.as_str().as_bytes() == &*origin);
                if let Some((_, fields)) = allowed {
                    return Some(Arc::clone(fields));
                }
            }
        }
        self.base.clone()
    }
}

/// The rules of one site, ready for requests.
#[derive(Debug)]
pub(super) struct Rules {
    site_wide_fields: FieldList,
    headers: Vec<HeaderRule>,
    cors: Cors,
    redirects: Vec<RedirectRule>,
    /// The fields of a path no `[[headers]]` rule matches.
    site_wide: Arc<PathFields>,
}

impl Rules {
    pub fn new(
        fields: &[HeaderField],
        headers: Vec<HeaderRule>,
        cors: Cors,
        redirects: Vec<RedirectRule>,
    ) -> Rules {
        let mut site_wide_fields = FieldList::default();
        for field in fields {
            // Checked when the HeaderField was made.
            let _ = site_wide_fields.set(&field.name, &field.value);
        }
        let mut rules = Rules {
            site_wide_fields,
            headers,
            cors,
            redirects,
            site_wide: Arc::default(),
        };
        rules.site_wide = Arc::new(rules.path_fields(&rules.site_wide_fields));
        rules
    }

    /// OPTIONS reaches the site only with CORS on, for preflights.
    pub fn answers_options(&self) -> bool {
        self.cors != Cors::Off
    }

    /// The fields of every response for `path`.
    pub fn fields_for(&self, path: &SitePath) -> Arc<PathFields> {
        let mut matching = self
            .headers
            .iter()
            .filter(|rule| rule.glob.matches(path))
            .peekable();
        if matching.peek().is_none() {
            return Arc::clone(&self.site_wide);
        }
        let mut fields = self.site_wide_fields.clone();
        for rule in matching {
            fields.extend(&rule.fields);
        }
        Arc::new(self.path_fields(&fields))
    }

    /// The fields of a response that has no path (its target could not be decoded).
    pub fn site_wide(&self) -> Arc<PathFields> {
        Arc::clone(&self.site_wide)
    }

    /// The first `[[redirects]]` rule's outcome for `path`, if one matches.
    pub fn redirect(&self, path: &SitePath, query: Option<&[u8]>) -> Option<Outcome> {
        self.redirects.iter().find_map(|rule| rule.apply(path, query))
    }

    /// An OPTIONS request: a CORS preflight (with `Origin` and
    /// `Access-Control-Request-Method`) gets 204 and what it may do; anything else 405.
    pub fn options(&self, request: &Request<'_>, fields: &PathFields) -> Reply {
        let preflight = request.field(Field::Origin).is_some()
            && request.field(Field::AccessControlRequestMethod).is_some();
        if !preflight {
            return Reply::error(Status::MethodNotAllowed);
        }
        let mut list = fields
            .for_request(request)
            .map_or_else(FieldList::default, |list| (*list).clone());
        // Constant names and values: they cannot be refused.
        let _ = list.set("Access-Control-Allow-Methods", "GET, HEAD");
        let _ = list.set("Access-Control-Max-Age", PREFLIGHT_MAX_AGE);
        if let Some(asked) = request.field(Field::AccessControlRequestHeaders) {
            if let Some(asked) = token_list(&asked) {
                let _ = list.set("Access-Control-Allow-Headers", asked);
            }
        }
        Reply {
            status: Status::NoContent,
            content_type: None,
            extra_fields: Some(Arc::new(list)),
            ..Reply::ok(Cow::Borrowed(""), Body::Static(b""))
        }
    }

    /// `fields` with the CORS fields added: one list for any request, and one per listed
    /// origin.
    fn path_fields(&self, fields: &FieldList) -> PathFields {
        let mut base = fields.clone();
        let mut by_origin = Vec::new();
        match &self.cors {
            Cors::Off => {}
            Cors::AnyOrigin => {
                let _ = base.set("Access-Control-Allow-Origin", "*");
            }
            Cors::Origins(origins) => {
                // Every response varies by Origin, those without a CORS field too: a cache
                // must not give one origin's answer to another.
                let vary = match base.get("vary") {
                    Some(other) if !other.is_empty() => format!("{other}, Origin"),
                    _ => "Origin".to_owned(),
                };
                let _ = base.set("Vary", &vary);
                for origin in origins {
                    let mut allowed = base.clone();
                    // An Origin was checked to be visible ASCII when parsed.
                    let _ = allowed.set("Access-Control-Allow-Origin", origin.as_str());
                    by_origin.push((origin.clone(), Arc::new(allowed)));
                }
            }
        }
        PathFields {
            base: (!base.is_empty()).then(|| Arc::new(base)),
            by_origin: by_origin.into(),
        }
    }
}

/// `value` trimmed, if it is a comma-separated list of tokens (RFC 9110 §5.6.1), as
/// `Access-Control-Request-Headers` is: `content-type, x-requested-with`.
fn token_list(value: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(value).ok()?.trim_matches([' ', '\t']);
    let is_token = |item: &str| {
        !item.is_empty()
            && item
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    text.split(',')
        .all(|item| is_token(item.trim_matches([' ', '\t'])))
        .then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::decode_path;
    use std::time::Instant;

    fn path(raw: &str) -> SitePath {
        decode_path(raw.as_bytes()).unwrap()
    }

    /// The fields `rules` give a GET of `target` with the extra header lines `extra`.
    fn fields(rules: &Rules, target: &str, extra: &str) -> Vec<(String, String)> {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
        crate::http::with_request(raw.as_bytes(), Instant::now(), |request| {
            let list = rules.fields_for(&path(target)).for_request(request);
            list.map(|list| list.iter().map(|(n, v)| (n.to_owned(), v.to_owned())).collect())
                .unwrap_or_default()
        })
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    fn rule(glob: &str, set: &[(&str, &str)]) -> HeaderRule {
        HeaderRule::new(glob, &pairs(set)).unwrap()
    }

    #[test]
    fn header_fields_parse_and_print_back() {
        let field: HeaderField = "X-Frame-Options:  DENY ".parse().unwrap();
        assert_eq!(field.to_string(), "X-Frame-Options: DENY");
        let removal: HeaderField = "X-Content-Type-Options:".parse().unwrap();
        assert_eq!(removal.to_string(), "X-Content-Type-Options:");
        assert_eq!(removal.to_string().parse::<HeaderField>().unwrap(), removal);
        for bad in [
            "no colon",
            "Bad Name: x",
            ": x",
            "X: a\u{7f}b",
            "Content-Length: 1",
            "Location: /x",
        ] {
            assert!(bad.parse::<HeaderField>().is_err(), "{bad}");
        }
    }

    #[test]
    fn matching_rules_apply_in_order_later_wins() {
        let rules = Rules::new(
            &["X-Site: 1".parse().unwrap()],
            vec![
                rule("/assets/**", &[("Cache-Control", "immutable"), ("X-A", "assets")]),
                rule("/**/*.js", &[("X-A", "js"), ("X-Content-Type-Options", "")]),
            ],
            Cors::Off,
            Vec::new(),
        );
        assert_eq!(fields(&rules, "/index.html", ""), pairs(&[("X-Site", "1")]));
        assert_eq!(
            fields(&rules, "/assets/a.css", ""),
            pairs(&[("X-Site", "1"), ("Cache-Control", "immutable"), ("X-A", "assets")])
        );
        assert_eq!(
            fields(&rules, "/assets/%2e%2e/app.js", ""),
            pairs(&[("X-Site", "1"), ("X-A", "js"), ("X-Content-Type-Options", "")]),
            "matched as decoded: /app.js is not in /assets/"
        );
        assert_eq!(
            fields(&rules, "/assets/app.js", ""),
            pairs(&[
                ("X-Site", "1"),
                ("Cache-Control", "immutable"),
                ("X-A", "js"),
                ("X-Content-Type-Options", "")
            ])
        );
    }

    #[test]
    fn no_rules_no_fields() {
        let rules = Rules::new(&[], Vec::new(), Cors::Off, Vec::new());
        assert!(rules.site_wide.base.is_none());
        assert!(!rules.answers_options());
        assert_eq!(fields(&rules, "/a", "Origin: https://a.example\r\n"), []);
    }

    #[test]
    fn cors_any_or_listed_origins() {
        let any = Rules::new(&[], Vec::new(), Cors::new([AllowOrigin::Any]), Vec::new());
        assert!(any.answers_options());
        assert_eq!(
            fields(&any, "/a", ""),
            pairs(&[("Access-Control-Allow-Origin", "*")])
        );

        let listed: Vec<AllowOrigin> = ["https://A.example", "http://b.example:8080"]
            .iter()
            .map(|o| o.parse().unwrap())
            .collect();
        let rules = Rules::new(
            &[],
            vec![rule("/x", &[("Vary", "Cookie")])],
            Cors::new(listed),
            Vec::new(),
        );
        assert_eq!(
            fields(&rules, "/a", "Origin: https://a.example\r\n"),
            pairs(&[
                ("Vary", "Origin"),
                ("Access-Control-Allow-Origin", "https://a.example")
            ])
        );
        assert_eq!(
            fields(&rules, "/a", "Origin: http://b.example:8080\r\n"),
            pairs(&[
                ("Vary", "Origin"),
                ("Access-Control-Allow-Origin", "http://b.example:8080")
            ])
        );
        assert_eq!(
            fields(&rules, "/a", "Origin: https://evil.example\r\n"),
            pairs(&[("Vary", "Origin")])
        );
        assert_eq!(fields(&rules, "/a", ""), pairs(&[("Vary", "Origin")]));
        assert_eq!(fields(&rules, "/x", ""), pairs(&[("Vary", "Cookie, Origin")]));
    }

    #[test]
    fn cors_values() {
        assert_eq!(Cors::new([]), Cors::Off);
        let a: AllowOrigin = "https://a.example".parse().unwrap();
        assert_eq!(Cors::new([a.clone(), AllowOrigin::Any]), Cors::AnyOrigin);
        assert!(matches!(Cors::new([a.clone(), a]), Cors::Origins(o) if o.len() == 1));
        for bad in [
            "",
            "a.example",
            "https://",
            "https://a.example/",
            "https://a b",
            "https://a\r\n",
            "1http://a",
        ] {
            assert!(bad.parse::<AllowOrigin>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn preflights_and_other_options() {
        let rules = Rules::new(&[], Vec::new(), Cors::new([AllowOrigin::Any]), Vec::new());
        let answer = |extra: &str| {
            let raw = format!("OPTIONS /a HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
            crate::http::with_request(raw.as_bytes(), Instant::now(), |request| {
                let reply = rules.options(request, &rules.fields_for(&path("/a")));
                let list = reply.extra_fields.map(|l| {
                    l.iter()
                        .map(|(n, v)| format!("{n}: {v}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                });
                (reply.status, list.unwrap_or_default())
            })
        };
        let (status, fields) = answer(
            "Origin: https://a.example\r\nAccess-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: content-type, x-b\r\n",
        );
        assert_eq!(status, Status::NoContent);
        assert_eq!(
            fields,
            "Access-Control-Allow-Origin: *\nAccess-Control-Allow-Methods: GET, HEAD\nAccess-Control-Max-Age: 86400\nAccess-Control-Allow-Headers: content-type, x-b"
        );
        let (_, fields) = answer(
            "Origin: https://a.example\r\nAccess-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: a b, (c)\r\n",
        );
        assert!(!fields.contains("Allow-Headers"), "{fields}");
        assert_eq!(answer("").0, Status::MethodNotAllowed);
        assert_eq!(
            answer("Origin: https://a.example\r\n").0,
            Status::MethodNotAllowed
        );
    }
}
