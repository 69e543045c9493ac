//! Turning the path of a request target into a normalized path relative to ROOT.
//!
//! Pure byte manipulation, no I/O. The result can never name anything above ROOT
//! lexically: it has no `.`, `..` or empty segments, no NUL and no backslash, and it
//! does not start with `/`. Symlinks are the kernel's business (see `root.rs`).

use percent_encoding::{percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Bytes escaped in one segment of a redirect `Location`: everything except the
/// RFC 3986 `pchar` set (unreserved characters, sub-delims, `:` and `@`), none of
/// which can change how a path that starts with `/` is parsed. Non-ASCII bytes are
/// always escaped.
const SEGMENT_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@');

/// The one dot-directory that is served even when dotfiles are hidden (RFC 8615).
const WELL_KNOWN: &[u8] = b".well-known";

/// A request path after decoding and normalization, relative to ROOT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SitePath {
    /// Segments joined by `/`, e.g. `b"docs/a b.html"`; empty for the root itself.
    relative: Vec<u8>,
    /// Whether the request named a directory: it ended in `/`, `/.` or `/..`.
    trailing_slash: bool,
}

impl SitePath {
    /// The normalized path relative to ROOT (`b""` for the root itself).
    pub fn relative(&self) -> &[u8] {
        &self.relative
    }

    /// True when the request path ended like a directory (`/`, `/docs/`, `/a/..`).
    pub fn has_trailing_slash(&self) -> bool {
        self.trailing_slash
    }

    /// True when any segment is a dotfile or dot-directory name, but for a first segment of
    /// `.well-known`: RFC 8615 puts what others must be able to fetch there (ACME challenges,
    /// `security.txt`). Dot names inside it stay hidden.
    pub fn is_hidden(&self) -> bool {
        self.segments()
            .enumerate()
            .any(|(at, segment)| segment.starts_with(b".") && !(at == 0 && segment == WELL_KNOWN))
    }

    /// True when any segment starts with `.`, `.well-known` included.
    pub fn has_dot_segment(&self) -> bool {
        self.segments().any(|segment| segment.starts_with(b"."))
    }

    /// The last segment (`b"b.html"` for `/a/b.html`, `b"a"` for `/a/`); `None` for the root.
    pub fn file_name(&self) -> Option<&[u8]> {
        self.segments().last()
    }

    /// `name` inside this path taken as a directory: `/docs/` joined with `index.html` is
    /// `/docs/index.html`. `name` is one file name (no `/`, not `.` or `..`).
    pub fn join(&self, name: &[u8]) -> SitePath {
        let relative = if self.relative.is_empty() {
            name.to_vec()
        } else {
            [&self.relative[..], b"/", name].concat()
        };
        SitePath {
            relative,
            trailing_slash: false,
        }
    }

    /// This path with `suffix` appended to its last segment, naming a file: `/about` with
    /// `.html` is `/about.html`. `None` for the root, which has no last segment.
    pub fn with_suffix(&self, suffix: &[u8]) -> Option<SitePath> {
        self.file_name()?;
        Some(SitePath {
            relative: [&self.relative[..], suffix].concat(),
            trailing_slash: false,
        })
    }

    /// This path with `suffix` cut from its last segment, naming a file: `/about.html` less
    /// `.html` is `/about`. `None` when the last segment does not end in `suffix` or is no
    /// more than it.
    pub fn without_suffix(&self, suffix: &[u8]) -> Option<SitePath> {
        let name = self.file_name()?;
        if name.len() <= suffix.len() || !name.ends_with(suffix) {
            return None;
        }
        Some(SitePath {
            relative: self.relative[..self.relative.len() - suffix.len()].to_vec(),
            trailing_slash: false,
        })
    }

    /// The directory holding the last segment, as a directory: `/about/` for
    /// `/about/index.html`, `/` for `/index.html`.
    pub fn parent(&self) -> SitePath {
        let cut = self.relative.iter().rposition(|&byte| byte == b'/').unwrap_or(0);
        SitePath {
            relative: self.relative[..cut].to_vec(),
            trailing_slash: true,
        }
    }

    /// The extension of the last segment (`"gz"` for `a.tar.gz`), when that segment is
    /// UTF-8 and has one. A leading dot alone (`.bashrc`) does not start an extension.
    pub fn extension(&self) -> Option<&str> {
        let name = std::str::from_utf8(self.segments().last()?).ok()?;
        let (stem, extension) = name.rsplit_once('.')?;
        (!stem.is_empty() && !extension.is_empty()).then_some(extension)
    }

    /// The location to redirect a directory request without its trailing slash to.
    ///
    /// Built from the decoded segments, escaped again, and never from the raw request:
    /// that way the result always starts with exactly one `/` (so `//evil.com` cannot
    /// become a protocol-relative redirect) and cannot smuggle `?`, `#` or `\`.
    pub fn directory_location(&self) -> String {
        let mut location = String::from("/");
        for segment in self.segments() {
            location.extend(percent_encode(segment, SEGMENT_ESCAPES));
            location.push('/');
        }
        location
    }

    /// The location a client asks for this path at: `directory_location` for a directory,
    /// else the same without the trailing `/`. Escaped the same way, for the same reasons.
    pub fn location(&self) -> String {
        let mut location = self.directory_location();
        if !self.trailing_slash && !self.relative.is_empty() {
            location.pop();
        }
        location
    }

    fn segments(&self) -> impl Iterator<Item = &[u8]> {
        // `split` yields one empty item for the root; it is not a segment.
        self.relative
            .split(|&byte| byte == b'/')
            .filter(|segment| !segment.is_empty())
    }
}

/// Why a request path cannot name anything under ROOT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path does not start with '/'")]
    NotAbsolute,
    #[error("invalid percent escape in path")]
    BadEscape,
    #[error("path contains a NUL byte")]
    Nul,
    #[error("path contains a backslash")]
    Backslash,
    #[error("path climbs above the root")]
    AboveRoot,
}

/// Decodes and normalizes the path part of a request target (query already removed),
/// e.g. `b"/a%20b/../c.html"`.
///
/// Percent escapes are decoded exactly once, so `%252e` becomes the literal name
/// `%2e`. A decoded `/` (from `%2F`) separates segments like any other slash, so
/// `..%2F..` is two `..` segments and cannot hide a climb above the root.
pub fn decode_path(raw: &[u8]) -> Result<SitePath, PathError> {
    if raw.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    let decoded = percent_decode_strict(raw)?;
    reject_forbidden_bytes(&decoded)?;
    normalize(&decoded)
}

/// Unlike `percent_encoding::percent_decode`, which passes malformed escapes through
/// untouched, this rejects them: a path we cannot read unambiguously is not served.
fn percent_decode_strict(raw: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut decoded = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some((&byte, tail)) = rest.split_first() {
        rest = if byte == b'%' {
            let [high, low, after @ ..] = tail else {
                return Err(PathError::BadEscape);
            };
            let (Some(high), Some(low)) = (hex_value(*high), hex_value(*low)) else {
                return Err(PathError::BadEscape);
            };
            decoded.push(high << 4 | low);
            after
        } else {
            decoded.push(byte);
            tail
        };
    }
    Ok(decoded)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// NUL would truncate the path at the system call; a backslash is a separator on
/// other systems and has no business in a URL path, so neither is allowed.
fn reject_forbidden_bytes(decoded: &[u8]) -> Result<(), PathError> {
    if decoded.contains(&0) {
        return Err(PathError::Nul);
    }
    if decoded.contains(&b'\\') {
        return Err(PathError::Backslash);
    }
    Ok(())
}

/// Resolves `.`, `..` and empty segments of a decoded path that starts with `/`.
fn normalize(decoded: &[u8]) -> Result<SitePath, PathError> {
    let mut segments: Vec<&[u8]> = Vec::new();
    // A path ending in "/", "/." or "/.." names a directory, like in a shell.
    let mut ends_like_directory = true;
    for segment in decoded.split(|&byte| byte == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => {
                // Clamping would silently serve a different resource than the one named.
                segments.pop().ok_or(PathError::AboveRoot)?;
            }
            name => segments.push(name),
        }
        ends_like_directory = matches!(segment, b"" | b"." | b"..");
    }
    Ok(SitePath {
        relative: segments.join(&b'/'),
        trailing_slash: ends_like_directory,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `expected` is `Ok((relative, trailing_slash))` or the error.
    fn check(input: &[u8], expected: Result<(&[u8], bool), PathError>) {
        let actual = decode_path(input);
        let actual = actual
            .as_ref()
            .map(|path| (path.relative(), path.has_trailing_slash()))
            .map_err(|error| *error);
        assert_eq!(actual, expected, "decoding {:?}", String::from_utf8_lossy(input));
    }

    #[test]
    fn plain_paths() {
        check(b"/", Ok((b"", true)));
        check(b"/a/b", Ok((b"a/b", false)));
        check(b"/dir/", Ok((b"dir", true)));
        check(b"/a%20b.html", Ok((b"a b.html", false)));
    }

    #[test]
    fn empty_and_dot_segments() {
        check(b"/a//b", Ok((b"a/b", false)));
        check(b"//", Ok((b"", true)));
        check(b"/a/./b", Ok((b"a/b", false)));
        check(b"/a/../b", Ok((b"b", false)));
        check(b"/a/b/..", Ok((b"a", true)));
        check(b"/a/b/.", Ok((b"a/b", true)));
        check(b"/a/..", Ok((b"", true)));
    }

    #[test]
    fn climbing_above_root() {
        check(b"/..", Err(PathError::AboveRoot));
        check(b"/../etc/passwd", Err(PathError::AboveRoot));
        check(b"/a/../../etc", Err(PathError::AboveRoot));
        check(b"/%2e%2e/x", Err(PathError::AboveRoot));
        check(b"/%2E%2e%2f..%2fetc", Err(PathError::AboveRoot));
        check(b"/..%2F..%2Fetc", Err(PathError::AboveRoot));
    }

    #[test]
    fn double_encoding_decodes_once() {
        check(b"/%252e%252e/x", Ok((b"%2e%2e/x", false)));
        check(b"/a%252Fb", Ok((b"a%2Fb", false)));
    }

    #[test]
    fn encoded_slash_splits_segments() {
        check(b"/a%2Fb", Ok((b"a/b", false)));
        check(b"/a%2F", Ok((b"a", true)));
    }

    #[test]
    fn bad_escapes() {
        check(b"/%zz", Err(PathError::BadEscape));
        check(b"/%4", Err(PathError::BadEscape));
        check(b"/a%", Err(PathError::BadEscape));
        check(b"/%g0", Err(PathError::BadEscape));
    }

    #[test]
    fn forbidden_bytes() {
        check(b"/a%00b", Err(PathError::Nul));
        check(b"/a\\..\\b", Err(PathError::Backslash));
        check(b"/a%5c..%5cb", Err(PathError::Backslash));
        check(b"/a%5C", Err(PathError::Backslash));
    }

    #[test]
    fn non_utf8_and_unicode() {
        check(b"/%ff", Ok((b"\xff", false)));
        check(b"/%E4%B8%AD.txt", Ok(("中.txt".as_bytes(), false)));
        check("/中.txt".as_bytes(), Ok(("中.txt".as_bytes(), false)));
    }

    #[test]
    fn not_absolute() {
        check(b"a", Err(PathError::NotAbsolute));
        check(b"*", Err(PathError::NotAbsolute));
        check(b"", Err(PathError::NotAbsolute));
        check(b"%2Fa", Err(PathError::NotAbsolute));
    }

    fn decoded(input: &str) -> SitePath {
        decode_path(input.as_bytes()).unwrap()
    }

    #[test]
    fn hidden_segments() {
        assert!(decoded("/.git/config").is_hidden());
        assert!(decoded("/a/.bashrc").is_hidden());
        assert!(decoded("/%2ehtaccess").is_hidden());
        assert!(!decoded("/a/b.c").is_hidden());
        assert!(!decoded("/a/./b/../c").is_hidden());
        assert!(!decoded("/").is_hidden());
    }

    #[test]
    fn well_known_is_not_hidden_but_dot_names_inside_it_are() {
        assert!(!decoded("/.well-known/security.txt").is_hidden());
        assert!(!decoded("/.well-known/acme-challenge/abc-123").is_hidden());
        assert!(!decoded("/.well-known/").is_hidden());
        assert!(!decoded("/%2Ewell-known/security.txt").is_hidden());
        assert!(decoded("/.well-known/.secret").is_hidden());
        assert!(decoded("/.well-known/a/.git/config").is_hidden());
        assert!(decoded("/a/.well-known/security.txt").is_hidden());
        assert!(decoded("/.well-known-not/x").is_hidden());
        assert!(decoded("/.env").is_hidden());
    }

    #[test]
    fn joined_suffixed_and_cut_paths() {
        let relative = |path: SitePath| (String::from_utf8(path.relative).unwrap(), path.trailing_slash);
        assert_eq!(
            relative(decoded("/docs/").join(b"index.htm")),
            ("docs/index.htm".into(), false)
        );
        assert_eq!(
            relative(decoded("/").join(b"index.html")),
            ("index.html".into(), false)
        );
        assert_eq!(
            relative(decoded("/a/about").with_suffix(b".html").unwrap()),
            ("a/about.html".into(), false)
        );
        assert_eq!(decoded("/").with_suffix(b".html"), None);
        assert_eq!(
            relative(decoded("/a/b.html").without_suffix(b".html").unwrap()),
            ("a/b".into(), false)
        );
        assert_eq!(decoded("/a/.html").without_suffix(b".html"), None);
        assert_eq!(decoded("/a/b.htm").without_suffix(b".html"), None);
        assert_eq!(decoded("/").without_suffix(b".html"), None);
        assert_eq!(relative(decoded("/a/index.html").parent()), ("a".into(), true));
        assert_eq!(relative(decoded("/index.html").parent()), ("".into(), true));
        assert_eq!(decoded("/a/b.html").file_name(), Some(&b"b.html"[..]));
        assert_eq!(decoded("/a/").file_name(), Some(&b"a"[..]));
        assert_eq!(decoded("/").file_name(), None);
    }

    #[test]
    fn locations() {
        assert_eq!(decoded("/").location(), "/");
        assert_eq!(decoded("/about").location(), "/about");
        assert_eq!(decoded("/docs/").location(), "/docs/");
        assert_eq!(decoded("/a%20b/c%3Fd").location(), "/a%20b/c%3Fd");
        assert_eq!(decoded("//evil.com").location(), "/evil.com");
        assert_eq!(decoded("/%2F%2Fevil.com").location(), "/evil.com");
        assert_eq!(decoded("/a%0D%0Ab").location(), "/a%0D%0Ab");
    }

    #[test]
    fn extensions() {
        assert_eq!(decoded("/a/b.html").extension(), Some("html"));
        assert_eq!(decoded("/a.tar.gz").extension(), Some("gz"));
        assert_eq!(decoded("/.bashrc").extension(), None);
        assert_eq!(decoded("/.config.toml").extension(), Some("toml"));
        assert_eq!(decoded("/README").extension(), None);
        assert_eq!(decoded("/trailing.").extension(), None);
        assert_eq!(decoded("/a.d/b").extension(), None);
        assert_eq!(decoded("/%E4%B8%AD.txt").extension(), Some("txt"));
        assert_eq!(decoded("/%ff.txt").extension(), None);
        assert_eq!(decoded("/").extension(), None);
    }

    #[test]
    fn directory_locations() {
        assert_eq!(decoded("/").directory_location(), "/");
        assert_eq!(decoded("/docs").directory_location(), "/docs/");
        assert_eq!(decoded("/docs/a%20b").directory_location(), "/docs/a%20b/");
        assert_eq!(decoded("/a%23b%3Fc").directory_location(), "/a%23b%3Fc/");
        assert_eq!(decoded("/100%25").directory_location(), "/100%25/");
        assert_eq!(decoded("/%E4%B8%AD").directory_location(), "/%E4%B8%AD/");
        assert_eq!(decoded("/%ff").directory_location(), "/%FF/");
        assert_eq!(decoded("/a-b_c~d.e").directory_location(), "/a-b_c~d.e/");
        assert_eq!(decoded("/x%3Cy%3E%22").directory_location(), "/x%3Cy%3E%22/");
    }

    #[test]
    fn directory_location_is_never_protocol_relative() {
        assert_eq!(decoded("//evil.com").directory_location(), "/evil.com/");
        assert_eq!(decoded("/%2F%2Fevil.com").directory_location(), "/evil.com/");
        assert_eq!(decoded("/./evil.com").directory_location(), "/evil.com/");
    }
}
