//! Globs over request paths, as `[[headers]] path = "/assets/**"` writes them.
//!
//! A glob is matched against the request's path once decoded and normalized ([`SitePath`]),
//! never against its raw bytes, so `/assets/%2e%2e/secret` or `/ASSETS/../assets/x` are
//! matched as what they name. `*` matches any run of bytes within one segment (`/*.js`,
//! `/app.*.js`); a whole segment `**` matches zero or more segments (`/assets/**` matches
//! `/assets`, `/assets/` and `/assets/a/b.js`; `/a/**/b.js` matches `/a/b.js`). A path that
//! ends in `/` has an empty last segment, so `/docs/` matches `/docs/` and `/docs/*`, not
//! `/docs`.
//!
//! Matching allocates nothing and takes at most (pattern segments × path segments) segment
//! comparisons, each linear in the segment: no input makes it backtrack without bound.

use crate::fs::SitePath;
use std::fmt;

/// A compiled glob over request paths.
#[derive(Clone, PartialEq, Eq)]
pub struct Glob {
    text: Box<str>,
    segments: Box<[Segment]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// `**`: zero or more whole segments.
    Deep,
    /// A segment's text cut at each `*`: `app.*.js` is `["app.", ".js"]`; one piece is a
    /// literal segment.
    Pieces(Box<[Box<[u8]>]>),
}

/// Why a text is not a glob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    #[error("a path pattern starts with '/', got '{0}'")]
    NotAbsolute(String),
    #[error("'**' must be a whole segment (/a/**/b), got '{0}'")]
    PartialDeep(String),
    #[error("a path pattern has no empty, '.' or '..' segments (it is matched against normalized paths), got '{0}'")]
    NotNormalized(String),
}

impl Glob {
    pub fn new(text: &str) -> Result<Glob, GlobError> {
        let rest = text
            .strip_prefix('/')
            .ok_or_else(|| GlobError::NotAbsolute(text.to_owned()))?;
        let parts: Vec<&str> = rest.split('/').collect();
        let last = parts.len() - 1;
        let mut segments = Vec::with_capacity(parts.len());
        for (index, part) in parts.into_iter().enumerate() {
            // An empty last segment is a trailing slash; anywhere else it is `//`.
            if (part.is_empty() && index != last) || part == "." || part == ".." {
                return Err(GlobError::NotNormalized(text.to_owned()));
            }
            segments.push(match part {
                "**" => Segment::Deep,
                _ if part.contains("**") => return Err(GlobError::PartialDeep(text.to_owned())),
                _ => Segment::Pieces(part.split('*').map(|piece| piece.as_bytes().into()).collect()),
            });
        }
        Ok(Glob {
            text: text.into(),
            segments: segments.into(),
        })
    }

    /// The glob as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `/**`: every path, the root included.
    pub fn matches_every_path(&self) -> bool {
        matches!(*self.segments, [Segment::Deep])
    }

    pub fn matches(&self, path: &SitePath) -> bool {
        let relative = path.relative();
        // The root is one empty segment (`/`); a trailing slash adds an empty last one.
        let trailing = (path.has_trailing_slash() && !relative.is_empty()).then_some(&b""[..]);
        let segments = relative.split(|&b| b == b'/').chain(trailing);
        matches_segments(&self.segments, segments)
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.text)
    }
}

/// Wildcard matching at the level of segments, `**` being the one star: on a mismatch, the
/// last `**` seen takes one more segment and matching resumes after it. Retrying only the
/// last one is enough, as for `*` in a string: whatever an earlier `**` would take, the
/// later one can take instead.
fn matches_segments<'a>(pattern: &[Segment], mut path: impl Iterator<Item = &'a [u8]> + Clone) -> bool {
    let mut at = 0;
    // The pattern index after the last `**`, and the path from where it would stop.
    let mut retry: Option<(usize, _)> = None;
    loop {
        let mut after = path.clone();
        match (pattern.get(at), after.next()) {
            (Some(Segment::Deep), _) => {
                at += 1;
                retry = Some((at, path.clone()));
                continue;
            }
            (Some(Segment::Pieces(pieces)), Some(segment)) if pieces_match(pieces, segment) => {
                at += 1;
                path = after;
                continue;
            }
            (None, None) => return true,
            _ => {}
        }
        let Some((resume, from)) = &mut retry else {
            return false;
        };
        if from.next().is_none() {
            return false;
        }
        at = *resume;
        path = from.clone();
    }
}

/// Whether `segment` is the pieces with any run of bytes between each two: it starts with the
/// first, ends with the last, and holds the others in order between them (each taken at its
/// leftmost place, which leaves the most room for the rest).
fn pieces_match(pieces: &[Box<[u8]>], segment: &[u8]) -> bool {
    let [first, middle @ .., last] = pieces else {
        return pieces.first().is_some_and(|only| **only == *segment);
    };
    if segment.len() < first.len() + last.len() || !segment.starts_with(first) || !segment.ends_with(last) {
        return false;
    }
    let mut between = &segment[first.len()..segment.len() - last.len()];
    for piece in middle {
        match find(between, piece) {
            Some(at) => between = &between[at + piece.len()..],
            None => return false,
        }
    }
    true
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::decode_path;

    fn matches(glob: &str, raw: &str) -> bool {
        Glob::new(glob)
            .unwrap()
            .matches(&decode_path(raw.as_bytes()).unwrap())
    }

    #[test]
    fn a_star_stays_within_its_segment() {
        assert!(matches("/*.js", "/app.js"));
        assert!(matches("/*.js", "/.js"));
        assert!(!matches("/*.js", "/lib/app.js"));
        assert!(!matches("/*.js", "/app.css"));
        assert!(matches("/app.*.js", "/app.3f9a.js"));
        assert!(matches("/a*b*c", "/abc"));
        assert!(matches("/a*b*c", "/axxbyybc"));
        assert!(!matches("/a*b*c", "/acb"));
        assert!(
            !matches("/ab*ba", "/aba"),
            "the first and last pieces may not overlap"
        );
        assert!(matches("/docs/*", "/docs/guide.html"));
        assert!(matches("/docs/*", "/docs/"));
        assert!(!matches("/docs/*", "/docs/a/b"));
        assert!(!matches("/docs/*", "/docs"));
    }

    #[test]
    fn a_double_star_crosses_segments() {
        assert!(matches("/assets/**", "/assets/a/b.js"));
        assert!(matches("/assets/**", "/assets/"));
        assert!(matches("/assets/**", "/assets"));
        assert!(!matches("/assets/**", "/assetsx/a"));
        assert!(!matches("/assets/**", "/"));
        assert!(matches("/a/**/b.js", "/a/b.js"));
        assert!(matches("/a/**/b.js", "/a/x/y/b.js"));
        assert!(!matches("/a/**/b.js", "/a/x/y/c.js"));
        assert!(matches("/**/*.map", "/deep/er/app.js.map"));
        assert!(matches("/**", "/"));
        assert!(matches("/**", "/any/thing/"));
        assert!(matches("/**/x/**/y", "/x/x/x/y"));
        assert!(!matches("/**/x/**/y", "/y/x"));
        assert!(Glob::new("/**").unwrap().matches_every_path());
        for narrower in ["/**/x", "/a/**", "/*", "/**/"] {
            assert!(!Glob::new(narrower).unwrap().matches_every_path(), "{narrower}");
        }
    }

    #[test]
    fn literal_paths_and_trailing_slashes() {
        assert!(matches("/", "/"));
        assert!(!matches("/", "/a"));
        assert!(matches("/index.html", "/index.html"));
        assert!(!matches("/index.html", "/index.htm"));
        assert!(matches("/docs/", "/docs/"));
        assert!(!matches("/docs/", "/docs"));
        assert!(matches("/docs", "/docs"));
        assert!(!matches("/docs", "/docs/"));
    }

    #[test]
    fn matched_against_the_decoded_normalized_path() {
        assert!(matches("/secret/**", "/assets/%2e%2e/secret/x"));
        assert!(matches("/secret/**", "/public/../secret/x"));
        assert!(matches("/secret/**", "/secret%2Fx"));
        assert!(matches("/a b.html", "/a%20b.html"));
        assert!(matches("/中文.txt", "/%E4%B8%AD%E6%96%87.txt"));
        assert!(!matches("/assets/**", "/assets/%2e%2e/secret"));
    }

    #[test]
    fn bad_globs_say_why() {
        assert!(matches!(Glob::new("assets/**"), Err(GlobError::NotAbsolute(_))));
        assert!(matches!(Glob::new(""), Err(GlobError::NotAbsolute(_))));
        assert!(matches!(Glob::new("/a**"), Err(GlobError::PartialDeep(_))));
        for bad in ["/a//b", "/a/./b", "/../a", "//"] {
            assert!(
                matches!(Glob::new(bad), Err(GlobError::NotNormalized(_))),
                "{bad}"
            );
        }
        assert_eq!(Glob::new("/a/*").unwrap().as_str(), "/a/*");
    }

    #[test]
    fn many_stars_against_a_long_segment_stay_cheap() {
        // Backtracking without bound would take ages here; this takes microseconds.
        let glob = "/**/".to_string() + &"*a".repeat(30) + "b";
        let path = "/".to_string() + &"x/".repeat(200) + &"a".repeat(4000);
        assert!(!matches(&glob, &path));
    }
}
