//! The static site: the HTTP core's [`Handler`], answering GET and HEAD from the file module.
//!
//! The site decides *what* to send — which file, which precompressed variant, its validators
//! and caching headers, the error page. The core decides *how*: 304, 412, ranges and framing.

use crate::fs::{self, FileIdentity, Lookup, OpenFile, SitePath, SmallFileCache};
use crate::http::{
    self, Body, EntityTag, Exchange, Field, Handler, Handshake, Method, Reply, Request, Status, Validators,
};
use crate::observe::Observer;
use hot::{HotFile, HotFiles};
use rules::{PathFields, Rules};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

mod glob;
mod hot;
mod listing;
mod redirect;
mod rewrite;
mod rules;

pub use glob::{Glob, GlobError};
pub use redirect::HttpsRedirect;
pub use rewrite::{Outcome, RedirectError, RedirectRule, DEFAULT_STATUS as DEFAULT_REDIRECT_STATUS};
pub use rules::{AllowOrigin, Cors, HeaderField, HeaderRule, HeaderRuleError, Origin};

/// Files up to this size are kept in memory, so their responses can be batched in one write.
const SMALL_FILE: u64 = 32 * 1024;
const SMALL_FILE_ENTRIES: usize = 2048;
/// The error page used when none is configured and this file exists at the root.
const DEFAULT_ERROR_PAGE: &str = "404.html";
/// For names carrying a content hash: the content at that name never changes.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// How a folder is served, beyond which folder it is.
#[derive(Debug, Clone)]
pub struct SiteOptions {
    pub hidden: bool,
    pub listing: bool,
    pub error_page: Option<PathBuf>,
    pub cache_control: Option<String>,
    pub immutable_fingerprints: bool,
    /// How long a small file, once looked up, is served from memory without looking again;
    /// zero: look up on every request.
    pub file_cache_valid: Duration,
    /// `--header`: fields on every response.
    pub headers: Vec<HeaderField>,
    /// `[[headers]]`: fields on the responses for the paths each matches, in order.
    pub header_rules: Vec<HeaderRule>,
    pub cors: Cors,
    /// `[[redirects]]`: the first that matches a path redirects or rewrites it.
    pub redirects: Vec<RedirectRule>,
}

/// A second: an edit shows within it; a busy file is looked up once a second, not per request.
pub const DEFAULT_FILE_CACHE_VALID: Duration = Duration::from_secs(1);

/// A folder served over HTTP.
#[derive(Debug)]
pub struct Site {
    root: fs::Root,
    cache: SmallFileCache,
    hot: HotFiles,
    options: SiteOptions,
    error_page: SitePath,
    cache_control: Option<Arc<str>>,
    immutable: Arc<str>,
    rules: Rules,
    /// Told of every exchange, for `--access-log` and `--metrics`.
    pub(crate) observer: Option<Arc<Observer>>,
}

impl Site {
    /// Opens `root` once; requests are resolved beneath that open directory.
    pub fn open(root: &Path, options: SiteOptions) -> io::Result<Site> {
        let root = fs::Root::open(root)?;
        let error_page = error_page_path(&root, options.error_page.as_deref())?;
        Ok(Site {
            cache: SmallFileCache::new(SMALL_FILE, SMALL_FILE_ENTRIES),
            hot: HotFiles::new(options.file_cache_valid, SMALL_FILE_ENTRIES),
            error_page,
            cache_control: options.cache_control.as_deref().map(Arc::from),
            immutable: Arc::from(IMMUTABLE),
            rules: Rules::new(
                &options.headers,
                options.header_rules.clone(),
                options.cors.clone(),
                options.redirects.clone(),
            ),
            root,
            options,
            observer: None,
        })
    }

    /// The absolute, symlink-free path being served.
    pub fn root(&self) -> &Path {
        self.root.canonical()
    }

    /// `hot_fields`: the fields of `path`, when the reply may be remembered as the answer for
    /// the request's raw path (not for a rewrite, whose path is not the request's).
    fn file_reply(
        &self,
        path: &SitePath,
        file: OpenFile,
        request: &Request<'_>,
        hot_fields: Option<&Arc<PathFields>>,
    ) -> Reply {
        let extension = if file.is_index {
            Some("html")
        } else {
            path.extension()
        };
        let is_index = file.is_index;
        let (file, encoding) = self.choose_encoding(path, file, request);
        let validators = Validators::new(entity_tag(&file.identity), file.modified);
        let reply = Reply {
            validators: Some(validators),
            content_encoding: encoding,
            // Whether a precompressed variant was chosen depends on Accept-Encoding.
            vary: Some("Accept-Encoding"),
            cache_control: self.cache_control_for(path),
            ..Reply::ok(http::content_type(extension), self.body(file, request.method))
        };
        match (encoding, &reply.body, hot_fields) {
            // Remembered as the answer for this raw path (see hot.rs).
            (None, Body::Shared(bytes), Some(fields)) if self.hot.is_on() => {
                let hot = HotFile {
                    content_type: reply.content_type.clone().unwrap_or_default(),
                    validators,
                    bytes: Arc::clone(bytes),
                    cache_control: reply.cache_control.clone(),
                    has_precompressed: self.has_precompressed(path, is_index),
                    checked_at: request.now,
                    revalidating: AtomicBool::new(false),
                    fields: Arc::clone(fields),
                };
                self.hot.insert(request.path, hot);
            }
            // Grown past the small-file size: no longer answered from memory.
            (None, Body::File { .. }, _) if request.method == Method::Get => self.hot.remove(request.path),
            _ => {}
        }
        reply
    }

    /// Whether the client's Accept-Encoding could change which file is sent.
    fn has_precompressed(&self, path: &SitePath, is_index: bool) -> bool {
        !is_precompressed(path)
            && http::PRECOMPRESSED
                .iter()
                .any(|(_, suffix)| self.root.sidecar(path, is_index, suffix).is_some())
    }

    /// The precompressed sibling (`x.js.br`, `.zst`, `.gz`) the client accepts best, if any
    /// exists; else the file itself. A file that is itself compressed is never looked up
    /// again (`x.js.gz.gz`): no coding is applied twice.
    fn choose_encoding(
        &self,
        path: &SitePath,
        file: OpenFile,
        request: &Request<'_>,
    ) -> (OpenFile, Option<&'static str>) {
        let Some(accept_encoding) = request.field(Field::AcceptEncoding) else {
            return (file, None);
        };
        if is_precompressed(path) {
            return (file, None);
        }
        for (coding, suffix) in http::acceptable_codings(&accept_encoding) {
            if let Some(sidecar) = self.root.sidecar(path, file.is_index, suffix) {
                return (sidecar, Some(coding));
            }
        }
        (file, None)
    }

    fn body(&self, file: OpenFile, method: Method) -> Body {
        match method {
            // HEAD needs only the length: don't read the file.
            Method::Head | Method::Options => Body::File {
                len: file.len(),
                file: file.file,
            },
            Method::Get => match self.cache.get_or_read(&file) {
                Ok(Some(cached)) => Body::Shared(cached.bytes.clone()),
                // Too big for memory, or changed while read: send it from the open file.
                Ok(None) | Err(_) => Body::File {
                    len: file.len(),
                    file: file.file,
                },
            },
        }
    }

    fn cache_control_for(&self, path: &SitePath) -> Option<Arc<str>> {
        if self.options.immutable_fingerprints && has_fingerprint(path) {
            return Some(Arc::clone(&self.immutable));
        }
        self.cache_control.clone()
    }

    /// 404, with the site's error page when it has one.
    fn not_found(&self, method: Method) -> Reply {
        match self.root.lookup(&self.error_page, self.options.hidden) {
            Lookup::File(page) => Reply {
                status: Status::NotFound,
                ..Reply::ok(
                    http::content_type(self.error_page.extension()),
                    self.body(page, method),
                )
            },
            _ => Reply::error(Status::NotFound),
        }
    }
}

impl Handler for Site {
    fn handle(&self, request: &Request<'_>) -> Reply {
        #[cfg(feature = "fault-injection")]
        if request.path == b"/__bingfa_panic__" {
            panic!("fault injected by a test: /__bingfa_panic__");
        }
        // A preflight is never a file's answer.
        if request.method != Method::Options {
            if let Some(reply) = self.hot.reply(request) {
                return reply;
            }
        }
        let Ok(path) = fs::decode_path(request.path) else {
            let fields = self.rules.site_wide();
            return with_fields(Reply::error(Status::BadRequest), &fields, request);
        };
        // The rules, before any lookup: the fields of this path, then OPTIONS and
        // [[redirects]]. A path a redirect matches never reaches `file_reply`, so never
        // enters the hot cache; a rewritten one is served but not remembered.
        let fields = self.rules.fields_for(&path);
        if request.method == Method::Options {
            return self.rules.options(request, &fields);
        }
        let (path, hot_fields) = match self.rules.redirect(&path, request.query()) {
            None => (path, Some(&fields)),
            Some(Outcome::Rewrite(target)) => (target, None),
            Some(Outcome::Redirect { status, location }) => {
                let reply = Reply {
                    location: Some(location),
                    ..Reply::error(status)
                };
                return with_fields(reply, &fields, request);
            }
        };
        let reply = self.lookup_reply(&path, request, hot_fields);
        with_fields(reply, &fields, request)
    }

    fn answers_options(&self) -> bool {
        self.rules.answers_options()
    }

    fn exchanged(&self, exchange: &Exchange<'_>) {
        if let Some(observer) = &self.observer {
            observer.exchanged(exchange);
        }
    }

    fn handshake(&self, outcome: Handshake<'_>) {
        if let Some(observer) = &self.observer {
            observer.handshake(outcome);
        }
    }
}

impl Site {
    /// The reply for `path` from the files beneath ROOT.
    fn lookup_reply(
        &self,
        path: &SitePath,
        request: &Request<'_>,
        hot_fields: Option<&Arc<PathFields>>,
    ) -> Reply {
        let lookup = self.root.lookup(path, self.options.hidden);
        if !matches!(lookup, Lookup::File(_)) {
            self.hot.remove(request.path); // a file served a moment ago may be gone
        }
        match lookup {
            Lookup::File(file) => self.file_reply(path, file, request, hot_fields),
            Lookup::Redirect(location) => Reply::moved_permanently(location),
            Lookup::Directory(dir) if self.options.listing => match dir.entries(self.options.hidden) {
                Ok(entries) => listing::reply(
                    path,
                    &entries,
                    listing::wants_json(request.field(Field::Accept).as_deref()),
                    request.query(),
                ),
                Err(_) => Reply::error(Status::InternalServerError),
            },
            Lookup::Directory(_) | Lookup::NotFound => self.not_found(request.method),
            Lookup::Forbidden => Reply::error(Status::Forbidden),
            Lookup::Exhausted => Reply::error(Status::ServiceUnavailable),
            Lookup::Failed(_) => Reply::error(Status::InternalServerError),
        }
    }
}

/// `reply` with the rules' fields for `request` (every response of the site carries them:
/// files, redirects, error pages).
fn with_fields(reply: Reply, fields: &PathFields, request: &Request<'_>) -> Reply {
    Reply {
        extra_fields: fields.for_request(request),
        ..reply
    }
}

/// A file that is itself compressed (`x.js.gz`) is never looked up again (`x.js.gz.gz`).
fn is_precompressed(path: &SitePath) -> bool {
    path.extension()
        .is_some_and(|ext| http::PRECOMPRESSED.iter().any(|(_, suffix)| &suffix[1..] == ext))
}

/// A strong entity tag from what changes whenever the content does: inode, size and
/// modification time to the nanosecond. Hashing the content would also catch a file
/// rewritten with its old mtime restored, but costs reading every file on every change;
/// nginx makes the same choice (with mtime in seconds only).
fn entity_tag(identity: &FileIdentity) -> EntityTag {
    let mtime_ns = i128::from(identity.mtime_sec) * 1_000_000_000 + i128::from(identity.mtime_nsec);
    let opaque = format_args!("{:x}-{:x}-{:x}", identity.ino, identity.len, mtime_ns as u128);
    // Three hex numbers of at most 16, 16 and 32 digits fit the tag's inline room.
    EntityTag::strong(opaque).expect("hex digits and dashes make a valid, short entity tag")
}

/// `app.3f9a1c2b.js`: a dot-separated part of 8 to 64 hex digits between the name and the
/// extension, as bundlers write content hashes.
fn has_fingerprint(path: &SitePath) -> bool {
    let name = path.relative().rsplit(|&b| b == b'/').next().unwrap_or_default();
    let parts: Vec<&[u8]> = name.split(|&b| b == b'.').collect();
    parts.len() >= 3
        && parts[1..parts.len() - 1]
            .iter()
            .any(|part| (8..=64).contains(&part.len()) && part.iter().all(u8::is_ascii_hexdigit))
}

/// The error page as a site path: `--error-page` (inside ROOT, relative to it or absolute
/// beneath it), else `404.html` at the root.
fn error_page_path(root: &fs::Root, configured: Option<&Path>) -> io::Result<SitePath> {
    let relative = match configured {
        None => Path::new(DEFAULT_ERROR_PAGE),
        Some(path) if path.is_absolute() => {
            path.strip_prefix(root.canonical()).map_err(|_| outside_root())?
        }
        Some(path) => path,
    };
    let text = relative.to_str().ok_or_else(outside_root)?;
    // The path is a file name, not a URL: escape what decoding would otherwise interpret.
    const LITERAL: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%').add(b'?').add(b'#');
    let encoded = percent_encoding::utf8_percent_encode(text, LITERAL);
    fs::decode_path(format!("/{encoded}").as_bytes()).map_err(|_| outside_root())
}

fn outside_root() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "the error page must be a UTF-8 path inside the root",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints() {
        let check = |raw: &str, expected: bool| {
            let path = fs::decode_path(raw.as_bytes()).unwrap();
            assert_eq!(has_fingerprint(&path), expected, "{raw}");
        };
        check("/app.3f9a1c2b.js", true);
        check("/static/main.0123456789abcdef.css", true);
        check("/app.js", false);
        check("/3f9a1c2b.js", false);
        check("/app.3f9a1c2.js", false);
        check("/app.3f9a1c2g.js", false);
        check("/app.js.3f9a1c2b", false);
    }
}
