//! The static site: the HTTP core's [`Handler`], answering GET and HEAD from the file module.
//!
//! The site decides *what* to send — which file, which precompressed variant, its validators
//! and caching headers, the error page. The core decides *how*: 304, 412, ranges and framing.

use crate::fs::{self, FileIdentity, Lookup, OpenFile, SitePath, SmallFileCache};
use crate::http::{
    self, Body, EntityTag, Exchange, Field, FieldList, Handler, Handshake, Method, Reply, Request, Status,
    Validators,
};
use crate::observe::Observer;
use auth::Auth;
use compress::{Cached, Coding, Compressor, Source};
use hot::{HotFile, HotFiles};
use rules::{PathFields, Rules};
use std::borrow::Cow;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

mod auth;
mod compress;
mod glob;
mod hosts;
mod hot;
mod listing;
mod paths;
mod redirect;
mod rewrite;
mod rules;
mod worker;

pub use auth::{hash_password, AuthRule, AuthRuleError};
pub use glob::{Glob, GlobError};
pub use hosts::{DuplicateHostName, HostName, HostNameError, Hosts};
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
    /// Compress text-like files without a precompressed sibling on the fly (`--compress`).
    pub compress: bool,
    /// Larger files are sent as they are.
    pub compress_max: u64,
    /// Bytes of compressed files kept in memory, least recently used out.
    pub compress_cache: u64,
    /// The page a GET or HEAD that would be a 404 gets with 200 (`--fallback`), a path inside
    /// the root; it must exist at start.
    pub fallback: Option<PathBuf>,
    /// `/about` serves `about.html`, and `/about.html` redirects there (`--clean-urls`).
    pub clean_urls: bool,
    /// A directory's index file names, tried in order (`--index`); plain file names.
    pub index: Vec<String>,
    /// `--header`: fields on every response.
    pub headers: Vec<HeaderField>,
    /// `[[headers]]`: fields on the responses for the paths each matches, in order.
    pub header_rules: Vec<HeaderRule>,
    pub cors: Cors,
    /// `[[redirects]]`: the first that matches a path redirects or rewrites it.
    pub redirects: Vec<RedirectRule>,
    /// `[[auth]]`: basic auth for the paths each rule's glob matches, the first that matches.
    pub auth: Vec<AuthRule>,
}

/// `--compress-max`: 8 MiB takes a fast level well under a second, and covers all but the
/// largest bundles.
pub const DEFAULT_COMPRESS_MAX: u64 = 8 << 20;
/// `--compress-cache`: the compressed copies of a typical site's text.
pub const DEFAULT_COMPRESS_CACHE: u64 = 64 << 20;

/// A second: an edit shows within it; a busy file is looked up once a second, not per request.
pub const DEFAULT_FILE_CACHE_VALID: Duration = Duration::from_secs(1);

/// A folder served over HTTP.
#[derive(Debug)]
pub struct Site {
    root: fs::Root,
    cache: SmallFileCache,
    hot: HotFiles,
    /// With `--compress`.
    compressor: Option<Compressor>,
    /// With `[[auth]]` rules.
    auth: Option<Auth>,
    options: SiteOptions,
    error_page: SitePath,
    /// `--fallback`, as a path in the root that was a file at start.
    fallback: Option<SitePath>,
    cache_control: Option<Arc<str>>,
    immutable: Arc<str>,
    rules: Rules,
    /// Told of every exchange, for `--access-log` and `--metrics`.
    pub(crate) observer: Option<Arc<Observer>>,
}

impl Site {
    /// Opens `root` once; requests are resolved beneath that open directory.
    pub fn open(root: &Path, options: SiteOptions) -> io::Result<Site> {
        let root = fs::Root::open(root)?.with_index_names(&options.index)?;
        let error_page = error_page_path(&root, options.error_page.as_deref())?;
        let fallback = match &options.fallback {
            Some(page) => Some(fallback_path(&root, page, options.hidden)?),
            None => None,
        };
        Ok(Site {
            cache: SmallFileCache::new(SMALL_FILE, SMALL_FILE_ENTRIES),
            hot: HotFiles::new(options.file_cache_valid, SMALL_FILE_ENTRIES),
            compressor: options
                .compress
                .then(|| Compressor::new(options.compress_max, options.compress_cache)),
            auth: match options.auth.is_empty() {
                true => None,
                false => Some(Auth::new(options.auth.clone())?),
            },
            error_page,
            fallback,
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
    /// the request's raw path (not for a rewrite or the fallback page, whose path is not the
    /// request's).
    fn file_reply(
        &self,
        path: &SitePath,
        file: OpenFile,
        request: &Request<'_>,
        hot_fields: Option<&Arc<PathFields>>,
    ) -> Reply {
        // An index file is served as what it is named: its type, its precompressed siblings.
        let path = match &file.index_name {
            Some(name) => Cow::Owned(path.join(name.as_bytes())),
            None => Cow::Borrowed(path),
        };
        let path = path.as_ref();
        let content_type = http::content_type(path.extension());
        let codings = self.acceptable_codings(path, request);
        let (file, encoding) = self.choose_sidecar(path, file, &codings);
        let on_the_fly = match encoding {
            None => self.on_the_fly(&file, &content_type, &codings, request),
            Some(_) => None,
        };
        // --compress: the compressed copy from memory if it is ready; if not, the file goes as
        // it is, and the copy is asked for.
        let mut to_compress = None;
        if let Some((compressor, coding)) = on_the_fly {
            match compressor.cached(&file.identity, coding) {
                Cached::Compressed(bytes) => {
                    let reply = self.compressed_reply(path, &file, content_type, coding, bytes);
                    if let Some(fields) = hot_fields {
                        self.remember_hot(path, request, &reply, Settled::Yes, fields);
                    }
                    return reply;
                }
                Cached::Missing => to_compress = on_the_fly,
                Cached::Incompressible => {}
            }
        }
        let identity = file.identity;
        let validators = Validators::new(entity_tag(&identity, ""), file.modified);
        let reply = Reply {
            validators: Some(validators),
            content_encoding: encoding,
            // Whether a precompressed variant was chosen depends on Accept-Encoding.
            vary: Some("Accept-Encoding"),
            cache_control: self.cache_control_for(path),
            ..Reply::ok(content_type, self.body(file, request.method))
        };
        let settled = match to_compress {
            Some((compressor, coding)) => {
                compressor.request(&identity, coding, || source_of(&reply.body));
                Settled::No
            }
            None => Settled::Yes,
        };
        if let Some(fields) = hot_fields {
            self.remember_hot(path, request, &reply, settled, fields);
        }
        reply
    }

    /// Keeps an answer from memory for the request's raw path (see hot.rs): as the plain
    /// answer when it is the file as it is, and as the answer to this `Accept-Encoding` when
    /// the file negotiates and the choice is `settled`. Forgets the path once its file is too
    /// large to answer from memory.
    fn remember_hot(
        &self,
        path: &SitePath,
        request: &Request<'_>,
        reply: &Reply,
        settled: Settled,
        fields: &Arc<PathFields>,
    ) {
        if !self.hot.is_on() {
            return;
        }
        let (Body::Shared(bytes), Some(validators)) = (&reply.body, reply.validators) else {
            // Grown past the small-file size: no longer answered from memory.
            let grown = matches!(reply.body, Body::File { .. }) && reply.content_encoding.is_none();
            if grown && request.method == Method::Get {
                self.hot.remove(request.path);
            }
            return;
        };
        // A large file's compressed copy stays in the compressor's cache, which bounds it.
        if bytes.len() as u64 > SMALL_FILE {
            return;
        }
        let content_type = reply.content_type.clone().unwrap_or_default();
        let negotiates =
            reply.content_encoding.is_some() || self.negotiates(path, &content_type, bytes.len() as u64);
        let hot = || HotFile {
            negotiates,
            content_type: content_type.clone(),
            content_encoding: reply.content_encoding,
            validators,
            bytes: Arc::clone(bytes),
            cache_control: reply.cache_control.clone(),
            checked_at: request.now,
            revalidating: AtomicBool::new(false),
            fields: Arc::clone(fields),
        };
        if reply.content_encoding.is_none() {
            self.hot.insert(request.path, hot());
        }
        let accept = request.field(Field::AcceptEncoding);
        // A range may be answered from another representation than the whole (see on_the_fly).
        let chosen = negotiates && settled == Settled::Yes && request.field(Field::Range).is_none();
        if let Some(accept) = accept.filter(|_| chosen) {
            self.hot.insert_chosen(request.path, &accept, hot());
        }
    }

    /// The compressed copy of `file` from the cache: another representation, with its own
    /// entity tag (RFC 9110 §8.8.3).
    fn compressed_reply(
        &self,
        path: &SitePath,
        file: &OpenFile,
        content_type: Cow<'static, str>,
        coding: Coding,
        bytes: Arc<[u8]>,
    ) -> Reply {
        let suffix = format_args!("-{}", coding.name());
        let validators = Validators::new(entity_tag(&file.identity, suffix), file.modified);
        Reply {
            validators: Some(validators),
            content_encoding: Some(coding.name()),
            vary: Some("Accept-Encoding"),
            cache_control: self.cache_control_for(path),
            ..Reply::ok(content_type, Body::Shared(bytes))
        }
    }

    /// Whether the client's Accept-Encoding could change what is sent for this file: it has a
    /// precompressed sibling, or `--compress` compresses it.
    fn negotiates(&self, path: &SitePath, content_type: &str, len: u64) -> bool {
        let compressed = self
            .compressor
            .as_ref()
            .is_some_and(|compressor| compressor.applies(content_type, len));
        compressed || self.has_precompressed(path)
    }

    /// Whether a `.br`/`.zst`/`.gz` sibling of the file exists.
    fn has_precompressed(&self, path: &SitePath) -> bool {
        !is_precompressed(path)
            && http::PRECOMPRESSED
                .iter()
                .any(|(_, suffix)| self.root.sidecar(path, suffix).is_some())
    }

    /// The codings the client accepts, best first, with the suffix of each one's sibling
    /// file. None for a file that is itself compressed (`x.js.gz`): no coding is applied twice.
    fn acceptable_codings(
        &self,
        path: &SitePath,
        request: &Request<'_>,
    ) -> Vec<(&'static str, &'static str)> {
        match request.field(Field::AcceptEncoding) {
            Some(accept_encoding) if !is_precompressed(path) => http::acceptable_codings(&accept_encoding),
            _ => Vec::new(),
        }
    }

    /// The precompressed sibling (`x.js.br`, `.zst`, `.gz`) the client accepts best, if any
    /// exists; else the file itself.
    fn choose_sidecar(
        &self,
        path: &SitePath,
        file: OpenFile,
        codings: &[(&'static str, &'static str)],
    ) -> (OpenFile, Option<&'static str>) {
        for (coding, suffix) in codings {
            if let Some(sidecar) = self.root.sidecar(path, suffix) {
                return (sidecar, Some(coding));
            }
        }
        (file, None)
    }

    /// The coding to compress `file` in on the fly (`--compress`): the one the client accepts
    /// best, if the file's type and size are compressed. A range request is answered from the
    /// file as it is (ranges of a compressed copy would change with the compressor).
    fn on_the_fly(
        &self,
        file: &OpenFile,
        content_type: &str,
        codings: &[(&'static str, &'static str)],
        request: &Request<'_>,
    ) -> Option<(&Compressor, Coding)> {
        let compressor = self.compressor.as_ref()?;
        let (best, _) = codings.first()?;
        let wanted = compressor.applies(content_type, file.len()) && request.field(Field::Range).is_none();
        wanted.then_some((compressor, Coding::named(best)?))
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
        let served_names = || self.served_names(request);
        if let Some(refusal) = self
            .auth
            .as_ref()
            .and_then(|auth| auth.refusal(request, served_names))
        {
            let fields = match fs::decode_path(request.path) {
                Ok(path) => self.rules.fields_for(&path),
                Err(_) => self.rules.site_wide(),
            };
            return with_fields(refusal, &fields, request);
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

    /// Only `[[auth]]` makes a request wait (for its password check); without rules this is
    /// one branch.
    fn ready(&self, request: &Request<'_>) -> bool {
        match &self.auth {
            None => true,
            Some(auth) => auth.ready(request, || self.served_names(request)),
        }
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
    /// The reply for `path` from the files beneath ROOT (`--clean-urls`, `--index` and
    /// `--fallback` included, see paths.rs). `hot_fields` is `None` for a rewrite's target,
    /// which is served as it is: redirecting to its clean form would show the client the
    /// path the rewrite hides.
    fn lookup_reply(
        &self,
        path: &SitePath,
        request: &Request<'_>,
        hot_fields: Option<&Arc<PathFields>>,
    ) -> Reply {
        if hot_fields.is_some() {
            if let Some(redirect) = self.clean_redirect(path, request) {
                return redirect; // --clean-urls: the page's one URL
            }
        }
        let (found_at, lookup) = self.find(path);
        if !matches!(lookup, Lookup::File(_)) {
            self.hot.remove(request.path); // a file served a moment ago may be gone
        }
        match lookup {
            Lookup::File(file) => self.file_reply(&found_at, file, request, hot_fields),
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
            Lookup::Directory(_) | Lookup::NotFound => self.missing(path, request),
            Lookup::Forbidden => Reply::error(Status::Forbidden),
            Lookup::Exhausted => Reply::error(Status::ServiceUnavailable),
            Lookup::Failed(_) => Reply::error(Status::InternalServerError),
        }
    }
}

/// `reply` with the rules' fields for `request` (every response of the site carries them:
/// files, redirects, error pages, auth's 401). Fields the reply has of its own (a 401's
/// challenge) win over the rules'.
fn with_fields(reply: Reply, fields: &PathFields, request: &Request<'_>) -> Reply {
    let extra_fields = match (reply.extra_fields, fields.for_request(request)) {
        (Some(own), Some(rules)) => {
            let mut merged = FieldList::clone(&rules);
            merged.extend(&own);
            Some(Arc::new(merged))
        }
        (own, rules) => own.or(rules),
    };
    Reply {
        extra_fields,
        ..reply
    }
}

/// Whether an answer is the one the same request will get next time: not while `--compress`
/// is still making the copy the client would rather have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    Yes,
    No,
}

/// A file that is itself compressed (`x.js.gz`) is never looked up again (`x.js.gz.gz`).
fn is_precompressed(path: &SitePath) -> bool {
    path.extension()
        .is_some_and(|ext| http::PRECOMPRESSED.iter().any(|(_, suffix)| &suffix[1..] == ext))
}

/// A strong entity tag from what changes whenever the content does: inode, size and
/// modification time to the nanosecond. Hashing the content would also catch a file
/// rewritten with its old mtime restored, but costs reading every file on every change;
/// nginx makes the same choice (with mtime in seconds only). A compressed copy made on the
/// fly carries its coding after that (`-br`): the same version, another representation.
fn entity_tag(identity: &FileIdentity, coding_suffix: impl fmt::Display) -> EntityTag {
    let mtime_ns = i128::from(identity.mtime_sec) * 1_000_000_000 + i128::from(identity.mtime_nsec);
    let opaque = format_args!(
        "{:x}-{:x}-{:x}{coding_suffix}",
        identity.ino, identity.len, mtime_ns as u128
    );
    // Three hex numbers of at most 16, 16 and 32 digits and `-zstd` fit the tag's inline room.
    EntityTag::strong(opaque).expect("hex digits and dashes make a valid, short entity tag")
}

/// What the compressor reads for a job: the bytes in memory, or its own descriptor of the file
/// (the body's goes with the response). `None` if no descriptor is left to make one.
fn source_of(body: &Body) -> Option<Source> {
    match body {
        Body::Shared(bytes) => Some(Source::Bytes(Arc::clone(bytes))),
        Body::File { file, .. } => file.try_clone().ok().map(Source::File),
        Body::Static(_) => None,
    }
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
    path_in_root(
        root,
        configured.unwrap_or(Path::new(DEFAULT_ERROR_PAGE)),
        "error page",
    )
}

/// `--fallback` as a site path (as `--error-page` is taken), which must name a file that is
/// served: a fallback that is not there would turn every route of the app into a 404.
fn fallback_path(root: &fs::Root, configured: &Path, hidden: bool) -> io::Result<SitePath> {
    let path = path_in_root(root, configured, "fallback")?;
    match root.lookup(&path, hidden) {
        Lookup::File(_) => Ok(path),
        _ => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "the fallback {} is not a file served from the root",
                configured.display()
            ),
        )),
    }
}

/// A path inside the root, relative to it or absolute beneath it, as a site path; `what`
/// names it in the error.
fn path_in_root(root: &fs::Root, configured: &Path, what: &str) -> io::Result<SitePath> {
    let outside_root = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the {what} must be a UTF-8 path inside the root"),
        )
    };
    let relative = match configured.strip_prefix(root.canonical()) {
        Ok(relative) => relative,
        Err(_) if configured.is_absolute() => return Err(outside_root()),
        Err(_) => configured,
    };
    let text = relative.to_str().ok_or_else(outside_root)?;
    // The path is a file name, not a URL: escape what decoding would otherwise interpret.
    const LITERAL: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%').add(b'?').add(b'#');
    let encoded = percent_encoding::utf8_percent_encode(text, LITERAL);
    fs::decode_path(format!("/{encoded}").as_bytes()).map_err(|_| outside_root())
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
