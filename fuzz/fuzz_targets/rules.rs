//! The site's rules: globs (`[[headers]] path`) and redirects (`[[redirects]]`), made from
//! arbitrary text and matched against arbitrary request paths and queries.
//!
//! Input: a first byte choosing the status (301, 302, 303, 307, 308 or 200), then five
//! fields separated by `\n`: the glob, `from`, `to`, the raw request path, the raw query.
//!
//! Asserts: no panic; a glob matches exactly when a reference matcher (dynamic programming
//! over segments and bytes, not the server's greedy one) says it does; a redirect rule matches
//! exactly when its `from` does by a reference reading; every `Location` is valid header
//! content (visible ASCII, no space, CR or LF), never starts with `//` or `/\`, and starts with
//! one `/` when `to` is relative; a rewrite yields a path beneath the root.

#![no_main]

use bingfa::fs::{decode_path, SitePath};
use bingfa::site::{Glob, Outcome, RedirectRule};
use libfuzzer_sys::fuzz_target;

const STATUSES: [u16; 6] = [301, 302, 303, 307, 308, 200];

/// The path as the glob sees it: segments after the leading `/`, a trailing slash adding an
/// empty last one (the root is one empty segment).
fn glob_segments(path: &SitePath) -> Vec<&[u8]> {
    let relative = path.relative();
    let mut segments: Vec<&[u8]> = relative.split(|&b| b == b'/').collect();
    if path.has_trailing_slash() && !relative.is_empty() {
        segments.push(b"");
    }
    segments
}

/// Whether `segment` matches `pattern` (`*` any run of bytes), by a table over prefixes.
fn reference_segment(pattern: &[u8], segment: &[u8]) -> bool {
    // matched[j]: the pattern's prefix so far matches segment[..j].
    let mut matched = vec![false; segment.len() + 1];
    matched[0] = true;
    for &p in pattern {
        let mut next = vec![false; segment.len() + 1];
        for j in 0..=segment.len() {
            next[j] = if p == b'*' {
                matched[j] || (j > 0 && next[j - 1])
            } else {
                j > 0 && matched[j - 1] && segment[j - 1] == p
            };
        }
        matched = next;
    }
    matched[segment.len()]
}

/// Whether the glob `text` (already accepted by `Glob::new`) matches `segments`, by a table
/// over prefixes of segments.
fn reference_glob(text: &str, segments: &[&[u8]]) -> bool {
    let pattern: Vec<&str> = text[1..].split('/').collect();
    let mut matched = vec![false; segments.len() + 1];
    matched[0] = true;
    for part in pattern {
        let mut next = vec![false; segments.len() + 1];
        for j in 0..=segments.len() {
            next[j] = if part == "**" {
                matched[j] || (j > 0 && next[j - 1])
            } else {
                j > 0 && matched[j - 1] && reference_segment(part.as_bytes(), segments[j - 1])
            };
        }
        matched = next;
    }
    matched[segments.len()]
}

/// Whether `from` (accepted by `RedirectRule::new`) matches `path`: its segments, a trailing
/// slash aside, each literal equal or a `:name`, and a last `*` taking the rest.
fn reference_from(from: &str, path: &SitePath) -> bool {
    let segments: Vec<&[u8]> = path
        .relative()
        .split(|&b| b == b'/')
        .filter(|s| !s.is_empty())
        .collect();
    let trimmed = from[1..].strip_suffix('/').unwrap_or(&from[1..]);
    let mut parts: Vec<&str> = if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    };
    let splat = parts.last() == Some(&"*");
    if splat {
        parts.pop();
    }
    let long_enough = if splat {
        segments.len() >= parts.len()
    } else {
        segments.len() == parts.len()
    };
    long_enough
        && parts.iter().zip(&segments).all(|(part, segment)| {
            let is_name = part.len() > 1
                && part.starts_with(':')
                && part[1..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && part[1..].chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            is_name || part.as_bytes() == *segment
        })
}

fn check_location(to: &str, location: &str) {
    assert!(
        location.bytes().all(|b| b.is_ascii_graphic()),
        "{to:?}: Location {location:?} is not visible ASCII"
    );
    assert!(
        !location.starts_with("//") && !location.starts_with("/\\"),
        "{to:?}: Location {location:?} leaves the site"
    );
    if to.starts_with('/') {
        assert!(location.starts_with('/'), "{to:?}: Location {location:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let status = STATUSES[usize::from(choice) % STATUSES.len()];
    let mut fields = rest.splitn(5, |&b| b == b'\n');
    let mut next = || fields.next().unwrap_or_default();
    let (glob, from, to, raw_path, query) = (next(), next(), next(), next(), next());
    let Ok(path) = decode_path(raw_path) else {
        return;
    };
    let glob = String::from_utf8_lossy(glob);
    if let Ok(compiled) = Glob::new(&glob) {
        let segments = glob_segments(&path);
        assert_eq!(
            compiled.matches(&path),
            reference_glob(&glob, &segments),
            "glob {glob:?} against {:?}",
            String::from_utf8_lossy(raw_path)
        );
    }
    let (from, to) = (String::from_utf8_lossy(from), String::from_utf8_lossy(to));
    let Ok(rule) = RedirectRule::new(&from, &to, status) else {
        return;
    };
    let query = (!query.is_empty()).then_some(query);
    let outcome = rule.apply(&path, query);
    assert_eq!(
        outcome.is_some(),
        reference_from(&from, &path),
        "from {from:?} against {:?}",
        String::from_utf8_lossy(raw_path)
    );
    match outcome {
        Some(Outcome::Redirect { location, .. }) => check_location(&to, &location),
        Some(Outcome::Rewrite(target)) => {
            assert_eq!(status, 200, "a rewrite from a redirect rule");
            assert!(!target.relative().starts_with(b"/"));
        }
        None => {}
    }
});
