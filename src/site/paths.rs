//! What a path that names no file as it is spelled is answered with: `--clean-urls` (`/about`
//! serves `about.html`, and `/about.html` is redirected to `/about`) and `--fallback` (a
//! single-page app's page for any path it routes itself).
//!
//! Neither answer is a different file for the same raw path over time than a plain lookup
//! would give, so a clean URL's answer may be kept by the hot-file cache under its raw path,
//! like any file's. A fallback answer never is: any path at all gets it, and a flood of made-up
//! paths would otherwise empty the cache of the files that are really asked for.

use super::{redirect, Site};
use crate::fs::{Lookup, SitePath};
use crate::http::{Method, Reply, Request};
use std::borrow::Cow;

/// The extension a clean URL leaves out.
const HTML: &[u8] = b".html";

impl Site {
    /// Looks `path` up; with `--clean-urls`, a path that finds nothing is tried again with
    /// `.html` appended. Also returns the path whose lookup answered.
    pub(super) fn find<'p>(&self, path: &'p SitePath) -> (Cow<'p, SitePath>, Lookup) {
        let lookup = self.root.lookup(path, self.options.hidden);
        if self.options.clean_urls && matches!(lookup, Lookup::NotFound) {
            if let Some(page) = html_page(path) {
                // A folder or anything else named `about.html` is no page: keep the 404.
                if let page_lookup @ Lookup::File(_) = self.root.lookup(&page, self.options.hidden) {
                    return (Cow::Owned(page), page_lookup);
                }
            }
        }
        (Cow::Borrowed(path), lookup)
    }

    /// With `--clean-urls`, the `308` from a page's `.html` URL (or its folder's index file's)
    /// to its clean URL, the query kept: only when the clean URL serves that very file, so that
    /// a page is never sent where it cannot be found (`about.html` beside a folder `about`).
    pub(super) fn clean_redirect(&self, path: &SitePath, request: &Request<'_>) -> Option<Reply> {
        if !self.options.clean_urls || path.has_trailing_slash() {
            return None;
        }
        let clean = self.clean_form(path)?;
        let Lookup::File(requested) = self.root.lookup(path, self.options.hidden) else {
            return None;
        };
        let (_, Lookup::File(there)) = self.find(&clean) else {
            return None;
        };
        if !there.is_same_file(&requested) {
            return None;
        }
        // Built from the decoded path, escaped again: one leading `/`, nothing to break out of
        // the field with; the query's bytes outside printable ASCII are escaped too.
        let mut location = clean.location();
        if let Some(query) = request.query() {
            location.push('?');
            redirect::encode_into(&mut location, query);
        }
        Some(Reply::permanent_redirect(location))
    }

    /// `/about.html` → `/about`; a folder's index file (`/docs/index.html`, `/index.html`)
    /// → the folder (`/docs/`, `/`). `None` for a path not ending in `.html`.
    fn clean_form(&self, path: &SitePath) -> Option<SitePath> {
        let name = path.file_name()?;
        let is_index = self.options.index.iter().any(|index| index.as_bytes() == name);
        if is_index && name.ends_with(HTML) {
            return Some(path.parent());
        }
        path.without_suffix(HTML)
    }

    /// The paths whose files a request may be answered with, for `[[auth]]`: its own, a
    /// rewrite's target, its `.html` page (`--clean-urls`), its folder's index files
    /// (`--index`), the fallback page (`--fallback`). Which one serves is known only once the
    /// file system has been asked; a rule protecting any of them asks for the password, so no
    /// second name reaches a protected file. Empty for a path that does not decode (a 400).
    pub(super) fn served_names(&self, request: &Request<'_>) -> Vec<SitePath> {
        let Ok(path) = crate::fs::decode_path(request.path) else {
            return Vec::new();
        };
        let mut names = Vec::new();
        if let Some(super::rewrite::Outcome::Rewrite(target)) = self.rules.redirect(&path, request.query()) {
            names.push(target);
        }
        if self.options.clean_urls {
            names.extend(html_page(&path));
        }
        if path.has_trailing_slash() {
            names.extend(self.options.index.iter().map(|index| path.join(index.as_bytes())));
        }
        if let Some(fallback) = self
            .fallback
            .as_ref()
            .filter(|_| wants_fallback(&path, request.method))
        {
            names.push(fallback.clone());
        }
        names.push(path);
        names
    }

    /// What a GET or HEAD that found nothing gets: the fallback page with 200 where
    /// `--fallback` applies, else the 404.
    pub(super) fn missing(&self, path: &SitePath, request: &Request<'_>) -> Reply {
        if let Some(fallback) = &self.fallback {
            if wants_fallback(path, request.method) {
                // Gone since the start (checked then): the 404 it would have been.
                if let Lookup::File(file) = self.root.lookup(fallback, self.options.hidden) {
                    return self.file_reply(fallback, file, request, None);
                }
            }
        }
        self.not_found(request.method)
    }
}

/// `/about` → `/about.html`; `None` for the root, a folder path and a name already ending in
/// `.html` (no `about.html.html`).
fn html_page(path: &SitePath) -> Option<SitePath> {
    if path.has_trailing_slash() || path.file_name()?.ends_with(HTML) {
        return None;
    }
    path.with_suffix(HTML)
}

/// Whether a missing `path` is a route of a single-page app rather than a missing file: a
/// folder path, or a last segment with no extension or `.html`. A missing `app.js` stays a
/// 404 (a broken asset must not come back as HTML), and so does any path with a segment
/// starting with `.`: a dotfile is no route, scanners probing `/.env` must not be told it
/// exists, and what lives under `/.well-known/` is read by machines, never an HTML page.
fn wants_fallback(path: &SitePath, method: Method) -> bool {
    if !matches!(method, Method::Get | Method::Head) || path.has_dot_segment() {
        return false;
    }
    if path.has_trailing_slash() {
        return true;
    }
    match path.file_name().and_then(extension) {
        None => true,
        Some(extension) => extension.eq_ignore_ascii_case(b"html"),
    }
}

/// The bytes after the last `.` of a file name, unless the name starts with its only dot or
/// ends with it (`.bashrc` and `trailing.` have none). Bytes, not text: a name that is no
/// UTF-8 still has an extension.
fn extension(name: &[u8]) -> Option<&[u8]> {
    let dot = name.iter().rposition(|&byte| byte == b'.')?;
    (dot > 0 && dot + 1 < name.len()).then(|| &name[dot + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::decode_path;
    use crate::http::{with_request, Body, Handler, Status};
    use crate::site::SiteOptions;
    use std::time::{Duration, Instant};

    fn path(raw: &str) -> SitePath {
        decode_path(raw.as_bytes()).unwrap()
    }

    #[test]
    fn routes_get_the_fallback_and_missing_assets_do_not() {
        for route in [
            "/users/42",
            "/",
            "/deep/link/",
            "/x.html",
            "/x.HTML",
            "/app.js/",
            "/v1.2/",
            "/%ff",
        ] {
            assert!(wants_fallback(&path(route), Method::Get), "{route}");
            assert!(wants_fallback(&path(route), Method::Head), "{route}");
        }
        for asset in [
            "/app.js",
            "/static/style.css",
            "/x.htm",
            "/users/john.doe",
            "/%ff.js",
            "/.env",
            "/.git/config",
            "/a/.hidden/route",
            "/.well-known/acme-challenge/token",
            "/.well-known/",
        ] {
            assert!(!wants_fallback(&path(asset), Method::Get), "{asset}");
        }
        assert!(!wants_fallback(&path("/users/42"), Method::Options));
    }

    #[test]
    fn extensions_are_read_from_bytes() {
        assert_eq!(extension(b"app.js"), Some(&b"js"[..]));
        assert_eq!(extension(b"a.tar.gz"), Some(&b"gz"[..]));
        assert_eq!(extension(b"\xff.js"), Some(&b"js"[..]));
        assert_eq!(extension(b".bashrc"), None);
        assert_eq!(extension(b"trailing."), None);
        assert_eq!(extension(b"README"), None);
    }

    fn options() -> SiteOptions {
        SiteOptions {
            hidden: false,
            listing: false,
            error_page: None,
            cache_control: None,
            immutable_fingerprints: false,
            file_cache_valid: Duration::from_secs(60),
            compress: false,
            compress_max: crate::site::DEFAULT_COMPRESS_MAX,
            compress_cache: crate::site::DEFAULT_COMPRESS_CACHE,
            fallback: None,
            clean_urls: false,
            index: vec!["index.html".into()],
            headers: Vec::new(),
            header_rules: Vec::new(),
            cors: crate::site::rules::Cors::default(),
            redirects: Vec::new(),
            auth: Vec::new(),
        }
    }

    /// A site with pages, a folder beside a page of its name, and the options `adjust` sets.
    fn site(adjust: impl FnOnce(&mut SiteOptions)) -> (tempfile::TempDir, Site) {
        let dir = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("index.html", "home");
        write("about.html", "about");
        write("docs/index.html", "docs");
        write("both.html", "the page");
        write("both/index.html", "the folder");
        write("app.js", "js");
        let mut options = options();
        adjust(&mut options);
        let site = Site::open(dir.path(), options).unwrap();
        (dir, site)
    }

    fn ask(site: &Site, target: &str) -> Reply {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        with_request(raw.as_bytes(), Instant::now(), |request| site.handle(request))
    }

    fn body(reply: &Reply) -> &[u8] {
        match &reply.body {
            Body::Shared(bytes) => bytes,
            other => panic!("not from memory: {other:?}"),
        }
    }

    #[test]
    fn clean_urls_serve_pages_and_redirect_to_them() {
        let (_dir, site) = site(|options| options.clean_urls = true);
        let about = ask(&site, "/about");
        assert_eq!((about.status, body(&about)), (Status::Ok, &b"about"[..]));
        assert_eq!(about.content_type.as_deref(), Some("text/html; charset=utf-8"));
        for (target, location) in [
            ("/about.html", "/about"),
            ("/about.html?a=1&b=%20", "/about?a=1&b=%20"),
            ("/docs/index.html", "/docs/"),
            ("/index.html?x", "/?x"),
            ("//about.html", "/about"),
            ("/docs/../about.html", "/about"),
        ] {
            let reply = ask(&site, target);
            assert_eq!(reply.status, Status::PermanentRedirect, "{target}");
            assert_eq!(reply.location.as_deref(), Some(location), "{target}");
        }
        // `/both` is the folder: the page keeps the one URL it can be found at.
        let both = ask(&site, "/both.html");
        assert_eq!((both.status, body(&both)), (Status::Ok, &b"the page"[..]));
        assert_eq!(ask(&site, "/both").status, Status::MovedPermanently);
        for missing in ["/nope", "/nope.html", "/about/", "/app"] {
            assert_eq!(ask(&site, missing).status, Status::NotFound, "{missing}");
        }
    }

    #[test]
    fn without_clean_urls_html_is_served_as_named() {
        let (_dir, site) = site(|_| {});
        assert_eq!(ask(&site, "/about.html").status, Status::Ok);
        assert_eq!(ask(&site, "/about").status, Status::NotFound);
    }

    #[test]
    fn the_fallback_answers_routes_and_is_never_kept_for_them() {
        let (_dir, site) = site(|options| options.fallback = Some("index.html".into()));
        let page = ask(&site, "/index.html");
        assert_eq!(site.hot.len(), 1, "the page itself is kept");
        for route in ["/users/42", "/deep/link/", "/x.html"] {
            let reply = ask(&site, route);
            assert_eq!(
                (reply.status, body(&reply)),
                (Status::Ok, &b"home"[..]),
                "{route}"
            );
            assert_eq!(reply.validators, page.validators, "{route}");
        }
        assert_eq!(site.hot.len(), 1, "no route is kept");
        assert_eq!(ask(&site, "/app.css").status, Status::NotFound);
        assert_eq!(ask(&site, "/.env").status, Status::NotFound);
        assert_eq!(body(&ask(&site, "/app.js")), b"js");
    }

    #[test]
    fn a_fallback_that_is_not_there_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".app.html"), "hidden").unwrap();
        std::fs::create_dir(dir.path().join("folder")).unwrap();
        // Missing, outside the root, hidden (dotfiles are not served), a folder.
        for fallback in ["missing.html", "/etc/passwd", ".app.html", "folder"] {
            let options = SiteOptions {
                fallback: Some(fallback.into()),
                ..options()
            };
            let error = Site::open(dir.path(), options).unwrap_err();
            assert!(error.to_string().contains("fallback"), "{fallback}: {error}");
        }
        let shown = SiteOptions {
            hidden: true,
            fallback: Some(".app.html".into()),
            ..options()
        };
        assert!(Site::open(dir.path(), shown).is_ok());
    }

    #[test]
    fn html_pages_of_clean_urls() {
        let page = |raw: &str| html_page(&path(raw)).map(|page| page.location());
        assert_eq!(page("/about"), Some("/about.html".into()));
        assert_eq!(page("/docs/a%20b"), Some("/docs/a%20b.html".into()));
        assert_eq!(page("/v1.2"), Some("/v1.2.html".into()));
        assert_eq!(page("/about.html"), None);
        assert_eq!(page("/about/"), None);
        assert_eq!(page("/"), None);
    }
}
