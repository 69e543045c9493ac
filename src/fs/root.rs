//! Opening files under ROOT without ever leaving it.
//!
//! ROOT is opened once as a directory file descriptor. With the kernel resolver every
//! request is opened relative to that descriptor with `openat2(RESOLVE_BENEATH)`, so
//! the kernel itself refuses any resolution, `..` or symlink included, that would
//! step outside ROOT. The checked resolver is the fallback where `openat2` is missing.

use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use rustix::fs::{Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

use super::listing::Directory;
use super::path::SitePath;

/// Flags for every file opened on behalf of a client. `NONBLOCK` makes opening a
/// FIFO return at once instead of parking a worker until a writer shows up, and
/// `NOCTTY` keeps a terminal device from becoming our controlling terminal; both are
/// then rejected as "not a regular file".
const OPEN_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::CLOEXEC)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY);

/// Flags for a descriptor that is only stated: `O_PATH` needs no read permission and
/// opens nothing (no FIFO to wait on, no device driver to wake). With `O_PATH`,
/// `openat2` accepts no flags but `CLOEXEC`, `DIRECTORY` and `NOFOLLOW`.
const STAT_FLAGS: OFlags = OFlags::PATH.union(OFlags::CLOEXEC);

/// `BENEATH` refuses any resolution that leaves ROOT: `..` above it, absolute paths,
/// and symlinks whose target lies outside (absolute symlinks always fail, even when
/// they point back inside ROOT). `NO_MAGICLINKS` refuses `/proc/*/fd`-style links,
/// which could otherwise jump to any file the process has open.
const RESOLVE_FLAGS: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);

/// The index file name when none are configured.
pub const DEFAULT_INDEX: &str = "index.html";

/// How a request path is turned into an open file under ROOT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    /// `openat2` relative to the ROOT descriptor with `RESOLVE_BENEATH`: race-free.
    Kernel,
    /// Canonicalize `ROOT/relative` and require it to stay under the canonical ROOT.
    Checked,
}

/// The directory being served. Cloning it is cheap and shares the one descriptor.
#[derive(Debug, Clone)]
pub struct Root {
    dir: Arc<OwnedFd>,
    canonical: Arc<Path>,
    resolver: Resolver,
    /// The names a directory's index file may have, tried in order (`--index`).
    index_names: Arc<[Arc<str>]>,
}

/// The outcome of looking up a request path.
#[derive(Debug)]
pub enum Lookup {
    File(OpenFile),
    /// A directory named without its trailing slash: answer 301 to this location.
    Redirect(String),
    /// A directory named with its trailing slash that has no index file: list it, or
    /// answer 404, as the site is configured.
    Directory(Directory),
    NotFound,
    Forbidden,
    /// The server ran out of descriptors or memory opening it: try again later.
    Exhausted,
    Failed(io::Error),
}

/// What identifies one version of a file's content, as seen by `fstat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
    pub mtime_sec: i64,
    pub mtime_nsec: i64,
    pub ctime_sec: i64,
    pub ctime_nsec: i64,
}

/// A regular file under ROOT, opened for reading.
#[derive(Debug)]
pub struct OpenFile {
    pub file: File,
    /// From `fstat` of this very descriptor, so it describes what will be read.
    pub identity: FileIdentity,
    pub modified: SystemTime,
    /// When this is a directory's index file: the name it was found under (its extension
    /// gives the content type, and its precompressed siblings carry it).
    pub index_name: Option<Arc<str>>,
}

impl OpenFile {
    pub fn len(&self) -> u64 {
        self.identity.len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn new(file: File, metadata: &Metadata, index_name: Option<Arc<str>>) -> io::Result<OpenFile> {
        Ok(OpenFile {
            identity: identity_of(metadata),
            modified: metadata.modified()?,
            file,
            index_name,
        })
    }

    /// Whether `self` and `other` are the same file (not only the same content).
    pub fn is_same_file(&self, other: &OpenFile) -> bool {
        (self.identity.dev, self.identity.ino) == (other.identity.dev, other.identity.ino)
    }
}

impl FileIdentity {
    /// The identity of the open `file` now.
    pub fn of(file: &File) -> io::Result<FileIdentity> {
        Ok(identity_of(&file.metadata()?))
    }
}

fn identity_of(metadata: &Metadata) -> FileIdentity {
    FileIdentity {
        dev: metadata.dev(),
        ino: metadata.ino(),
        len: metadata.size(),
        mtime_sec: metadata.mtime(),
        mtime_nsec: metadata.mtime_nsec(),
        ctime_sec: metadata.ctime(),
        ctime_nsec: metadata.ctime_nsec(),
    }
}

impl Root {
    /// Opens ROOT, using the kernel resolver when `openat2` works here and the
    /// checked resolver otherwise.
    pub fn open(path: &Path) -> io::Result<Root> {
        let mut root = Root::open_with(path, Resolver::Kernel)?;
        if !root.openat2_available() {
            root.resolver = Resolver::Checked;
        }
        Ok(root)
    }

    /// Opens ROOT with the given resolver. Fails when ROOT is missing or is not a
    /// directory (`ErrorKind::NotADirectory`).
    pub fn open_with(path: &Path, resolver: Resolver) -> io::Result<Root> {
        let canonical = std::fs::canonicalize(path)?;
        // Opening the canonical path keeps the descriptor and the path the checked
        // resolver compares against naming the same directory.
        let dir = rustix::fs::open(
            &canonical,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root {
            dir: Arc::new(dir),
            canonical: Arc::from(canonical),
            resolver,
            index_names: Arc::from([Arc::from(DEFAULT_INDEX)]),
        })
    }

    /// Looks for a directory's index file under `names`, in order, instead of `index.html`.
    /// Fails (`InvalidInput`) on an empty list or a name that is no plain file name.
    pub fn with_index_names(mut self, names: &[String]) -> io::Result<Root> {
        if names.is_empty() {
            return Err(invalid_index("no index file name given".into()));
        }
        for name in names {
            check_index_name(name).map_err(|why| invalid_index(format!("index name '{name}' {why}")))?;
        }
        self.index_names = names.iter().map(|name| Arc::from(name.as_str())).collect();
        Ok(self)
    }

    pub fn canonical(&self) -> &Path {
        &self.canonical
    }

    pub fn resolver(&self) -> Resolver {
        self.resolver
    }

    /// Finds what `path` names under ROOT. Hidden names (a segment starting with
    /// `.`) are not found unless `hidden` is set. Anything the resolver refuses to
    /// reach, such as a symlink leading outside ROOT or (with the kernel resolver)
    /// any absolute symlink, is reported as not found rather than forbidden, so
    /// clients learn nothing about what lies outside.
    pub fn lookup(&self, path: &SitePath, hidden: bool) -> Lookup {
        if path.is_hidden() && !hidden {
            return Lookup::NotFound;
        }
        self.lookup_visible(path).unwrap_or_else(classify)
    }

    /// The precompressed sibling of a file [`Root::lookup`] found at `path` (for an index
    /// file, the directory's path joined with its name): the same path with `suffix` (`.br`,
    /// `.zst`, `.gz`) appended, if that is a regular file beneath ROOT.
    pub fn sidecar(&self, path: &SitePath, suffix: &str) -> Option<OpenFile> {
        let relative = [path.relative(), suffix.as_bytes()].concat();
        let (file, metadata) = self.open_beneath(&relative).ok()?;
        if !metadata.file_type().is_file() {
            return None;
        }
        OpenFile::new(file, &metadata, None).ok()
    }

    fn lookup_visible(&self, path: &SitePath) -> io::Result<Lookup> {
        let (file, metadata) = self.open_beneath(path.relative())?;
        let file_type = metadata.file_type();
        if file_type.is_dir() {
            if !path.has_trailing_slash() {
                return Ok(Lookup::Redirect(path.directory_location()));
            }
            return self.lookup_index(path.relative(), file.into());
        }
        // A trailing slash promises a directory; FIFOs, sockets and devices are
        // never content to serve.
        if !file_type.is_file() || path.has_trailing_slash() {
            return Ok(Lookup::NotFound);
        }
        Ok(Lookup::File(OpenFile::new(file, &metadata, None)?))
    }

    /// Re-resolving `dir/index.html` from ROOT (rather than from the directory just
    /// opened) keeps both resolvers on the one code path that checks containment.
    ///
    /// The index names are tried in order; the first that exists decides. `dir` is the
    /// directory, opened beneath ROOT like any file and known to be a directory from `fstat`
    /// of that descriptor (so no `O_DIRECTORY` is needed); it becomes the [`Directory`] when
    /// no index name exists. An index that exists but cannot be served (a directory, a FIFO,
    /// an escaping link) still answers as before rather than turning into a listing.
    fn lookup_index(&self, dir_relative: &[u8], dir: OwnedFd) -> io::Result<Lookup> {
        for name in self.index_names.iter() {
            let (file, metadata) = match self.open_beneath(&index_path(dir_relative, name)) {
                Ok(opened) => opened,
                // No such index, or a dangling link of that name: try the next name.
                Err(error) if Errno::from_io_error(&error) == Some(Errno::NOENT) => continue,
                Err(error) => return Err(error),
            };
            if !metadata.file_type().is_file() {
                return Ok(Lookup::NotFound);
            }
            let index_name = Some(Arc::clone(name));
            return Ok(Lookup::File(OpenFile::new(file, &metadata, index_name)?));
        }
        let directory = Directory::new(dir, self.clone(), dir_relative.to_vec());
        Ok(Lookup::Directory(directory))
    }

    /// Stats what `relative` leads to beneath ROOT, following symlinks exactly as far as
    /// a request would be allowed to, without opening it for reading.
    pub(super) fn stat_beneath(&self, relative: &[u8]) -> io::Result<Stat> {
        let fd = self.open_fd(relative, STAT_FLAGS)?;
        Ok(rustix::fs::fstat(&fd)?)
    }

    /// Opens `relative` (no leading `/`, no `.`/`..`/empty segments) under ROOT and
    /// stats the resulting descriptor.
    fn open_beneath(&self, relative: &[u8]) -> io::Result<(File, Metadata)> {
        let file = File::from(self.open_fd(relative, OPEN_FLAGS)?);
        let metadata = file.metadata()?;
        Ok((file, metadata))
    }

    fn open_fd(&self, relative: &[u8], flags: OFlags) -> io::Result<OwnedFd> {
        match self.resolver {
            Resolver::Kernel => self.open_kernel(relative, flags),
            Resolver::Checked => self.open_checked(relative, flags),
        }
    }

    fn open_kernel(&self, relative: &[u8], flags: OFlags) -> io::Result<OwnedFd> {
        let relative = if relative.is_empty() { b"." } else { relative };
        let fd = rustix::fs::openat2(
            &*self.dir,
            OsStr::from_bytes(relative),
            flags,
            Mode::empty(),
            RESOLVE_FLAGS,
        )?;
        Ok(fd)
    }

    /// The fallback for kernels without `openat2` (before Linux 5.6) or sandboxes
    /// whose seccomp filter forbids it.
    ///
    /// It has a time-of-check/time-of-use race the kernel resolver does not: between
    /// `canonicalize` and `open`, someone able to write inside ROOT could replace a
    /// directory on the checked path with a symlink leading outside, and `open` would
    /// follow it. `O_NOFOLLOW` closes the race for the last component only. Whoever
    /// can write inside ROOT can usually publish what they like anyway, which is why
    /// this is acceptable as a fallback, but not as the default.
    fn open_checked(&self, relative: &[u8], flags: OFlags) -> io::Result<OwnedFd> {
        // `relative` never starts with '/', so `join` cannot replace ROOT.
        let target = std::fs::canonicalize(self.canonical.join(OsStr::from_bytes(relative)))?;
        // `starts_with` compares whole components: "/srv/site2" is not under "/srv/site".
        if !target.starts_with(&self.canonical) {
            // The same answer the kernel resolver gets for an escape.
            return Err(Errno::XDEV.into());
        }
        let fd = rustix::fs::open(&target, flags | OFlags::NOFOLLOW, Mode::empty())?;
        Ok(fd)
    }

    /// Whether `openat2` can be used here. Old kernels lack it (`ENOSYS`) and some
    /// seccomp sandboxes refuse it (`EPERM`); any other outcome means the system call
    /// works, and a failure is about this directory, which requests will report.
    fn openat2_available(&self) -> bool {
        let probe = rustix::fs::openat2(
            &*self.dir,
            ".",
            OPEN_FLAGS | OFlags::DIRECTORY,
            Mode::empty(),
            RESOLVE_FLAGS,
        );
        !matches!(probe, Err(Errno::NOSYS | Errno::PERM))
    }
}

fn index_path(dir_relative: &[u8], name: &str) -> Vec<u8> {
    if dir_relative.is_empty() {
        return name.as_bytes().to_vec();
    }
    [dir_relative, b"/", name.as_bytes()].concat()
}

/// Why `name` cannot name a directory's index file, if it cannot: it must be one file name
/// in that directory, never a path that leads elsewhere.
pub fn check_index_name(name: &str) -> Result<(), &'static str> {
    match name {
        "" => Err("is empty"),
        "." | ".." => Err("is not a file name"),
        _ if name.contains('/') => Err("is a path: give a file name, without '/'"),
        _ if name.contains(['\\', '\0']) => Err("has a backslash or a NUL byte"),
        _ => Ok(()),
    }
}

fn invalid_index(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

fn classify(error: io::Error) -> Lookup {
    match Errno::from_io_error(&error) {
        // EXDEV is RESOLVE_BENEATH refusing an escape (or any absolute symlink).
        Some(Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::XDEV | Errno::NAMETOOLONG) => {
            Lookup::NotFound
        }
        Some(Errno::ACCESS | Errno::PERM) => Lookup::Forbidden,
        // Out of descriptors or memory: the file is fine, the server is busy.
        Some(Errno::MFILE | Errno::NFILE | Errno::NOMEM) => Lookup::Exhausted,
        _ => Lookup::Failed(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::decode_path;
    use std::io::Read;
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::path::PathBuf;
    use std::sync::mpsc;
    use std::time::Duration;

    const RESOLVERS: [Resolver; 2] = [Resolver::Kernel, Resolver::Checked];

    /// A temporary directory holding ROOT (`site`) next to things that must stay
    /// unreachable: `outside.txt` and `site2/secret.txt` (a sibling whose name
    /// shares ROOT's name as a prefix).
    struct Tree {
        dir: tempfile::TempDir,
    }

    impl Tree {
        fn new() -> Tree {
            let dir = tempfile::tempdir().unwrap();
            let base = dir.path();
            std::fs::write(base.join("outside.txt"), "outside").unwrap();
            std::fs::create_dir(base.join("site2")).unwrap();
            std::fs::write(base.join("site2/secret.txt"), "secret").unwrap();

            let site = base.join("site");
            std::fs::create_dir(&site).unwrap();
            std::fs::write(site.join("hello.txt"), "hello").unwrap();
            std::fs::write(site.join("index.html"), "root index").unwrap();
            std::fs::create_dir(site.join("docs")).unwrap();
            std::fs::write(site.join("docs/index.html"), "docs index").unwrap();
            std::fs::write(site.join("docs/a b.html"), "a b").unwrap();
            std::fs::create_dir(site.join("empty")).unwrap();
            std::fs::create_dir(site.join("a b")).unwrap();
            std::fs::write(site.join(".secret"), "dotfile").unwrap();
            std::fs::create_dir(site.join(".git")).unwrap();
            std::fs::write(site.join(".git/config"), "dotdir").unwrap();
            std::fs::create_dir(site.join("odd")).unwrap();
            std::fs::create_dir(site.join("odd/index.html")).unwrap();
            std::fs::create_dir(site.join("noindex")).unwrap();
            std::fs::write(site.join("noindex/file.txt"), "file").unwrap();
            std::fs::create_dir(site.join("dangling")).unwrap();
            symlink("missing.html", site.join("dangling/index.html")).unwrap();
            symlink("hello.txt", site.join("link.txt")).unwrap();
            symlink("docs", site.join("linkdocs")).unwrap();
            symlink("../outside.txt", site.join("escape.txt")).unwrap();
            symlink("../site2/secret.txt", site.join("sibling.txt")).unwrap();
            symlink("..", site.join("up")).unwrap();
            symlink("/etc/passwd", site.join("passwd")).unwrap();
            rustix::fs::mkfifoat(rustix::fs::CWD, site.join("fifo"), Mode::from(0o644)).unwrap();
            std::fs::write(site.join("locked.txt"), "locked").unwrap();
            std::fs::set_permissions(site.join("locked.txt"), PermissionsExt::from_mode(0o000)).unwrap();
            Tree { dir }
        }

        fn site(&self) -> PathBuf {
            self.dir.path().join("site")
        }
    }

    /// Runs `test` against a fresh tree once per resolver.
    fn for_each_resolver(test: impl Fn(&Root)) {
        let tree = Tree::new();
        for resolver in RESOLVERS {
            let root = Root::open_with(&tree.site(), resolver).unwrap();
            assert_eq!(root.resolver(), resolver);
            test(&root);
        }
    }

    fn lookup(root: &Root, path: &str) -> Lookup {
        root.lookup(&decode_path(path.as_bytes()).unwrap(), false)
    }

    fn assert_serves(root: &Root, path: &str, content: &str, is_index: bool) {
        match lookup(root, path) {
            Lookup::File(mut open) => {
                let mut body = String::new();
                open.file.read_to_string(&mut body).unwrap();
                assert_eq!(body, content, "{path} with {:?}", root.resolver());
                assert_eq!(
                    open.index_name.is_some(),
                    is_index,
                    "{path} with {:?}",
                    root.resolver()
                );
                assert_eq!(open.len(), content.len() as u64);
            }
            other => panic!("{path} with {:?}: {other:?}", root.resolver()),
        }
    }

    fn assert_not_found(root: &Root, path: &str) {
        let result = lookup(root, path);
        assert!(
            matches!(result, Lookup::NotFound),
            "{path} with {:?}: {result:?}",
            root.resolver()
        );
    }

    #[test]
    fn serves_regular_files() {
        for_each_resolver(|root| {
            assert_serves(root, "/hello.txt", "hello", false);
            assert_serves(root, "/docs/a%20b.html", "a b", false);
            assert_serves(root, "/docs/../hello.txt", "hello", false);
        });
    }

    #[test]
    fn serves_directory_index_with_trailing_slash() {
        for_each_resolver(|root| {
            assert_serves(root, "/", "root index", true);
            assert_serves(root, "/docs/", "docs index", true);
            assert_serves(root, "/docs/a/..", "docs index", true);
        });
    }

    fn assert_directory(root: &Root, path: &str, hidden: bool) {
        let result = root.lookup(&decode_path(path.as_bytes()).unwrap(), hidden);
        assert!(
            matches!(result, Lookup::Directory(_)),
            "{path} with {:?}: {result:?}",
            root.resolver()
        );
    }

    #[test]
    fn index_names_are_tried_in_order() {
        let tree = Tree::new();
        let site = tree.site();
        std::fs::write(site.join("docs/index.htm"), "docs htm").unwrap();
        std::fs::write(site.join("noindex/default.txt"), "default").unwrap();
        let names = ["index.htm", "index.html", "default.txt"].map(String::from);
        for resolver in RESOLVERS {
            let root = Root::open_with(&site, resolver)
                .unwrap()
                .with_index_names(&names)
                .unwrap();
            assert_serves(&root, "/docs/", "docs htm", true);
            assert_serves(&root, "/", "root index", true);
            assert_serves(&root, "/noindex/", "default", true);
            let Lookup::File(file) = lookup(&root, "/noindex/") else {
                panic!("no index in /noindex/");
            };
            assert_eq!(file.index_name.as_deref(), Some("default.txt"));
            // An index of the name tried first that is no file answers, as one name did.
            assert_not_found(&root, "/odd/");
            assert_directory(&root, "/empty/", false);
        }
    }

    #[test]
    fn index_names_are_file_names() {
        let tree = Tree::new();
        let root = || Root::open_with(&tree.site(), Resolver::Kernel).unwrap();
        for bad in [
            &[][..],
            &[""],
            &["."],
            &[".."],
            &["a/index.html"],
            &["/index.html"],
            &["a\\b"],
        ] {
            let names: Vec<String> = bad.iter().map(|name| name.to_string()).collect();
            let error = root().with_index_names(&names).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
        assert!(root()
            .with_index_names(&["index.htm".into(), ".index".into()])
            .is_ok());
    }

    #[test]
    fn directory_without_index_is_a_directory() {
        for_each_resolver(|root| {
            assert_directory(root, "/noindex/", false);
            assert_directory(root, "/empty/", false);
            assert_directory(root, "/a%20b/", false);
            assert_directory(root, "/docs/../noindex/", false);
            // An index.html that is a dangling link is no index either.
            assert_directory(root, "/dangling/", false);
        });
    }

    #[test]
    fn directory_lookup_keeps_the_other_answers() {
        for_each_resolver(|root| {
            assert_not_found(root, "/missing/");
            assert_not_found(root, "/noindex/missing/");
            assert_not_found(root, "/noindex/file.txt/");
            // An index.html that exists but is no file is not served, nor listed.
            assert_not_found(root, "/odd/");
            assert_not_found(root, "/.git/");
            assert_directory(root, "/.git/", true);
            let result = lookup(root, "/noindex");
            assert!(
                matches!(&result, Lookup::Redirect(to) if to == "/noindex/"),
                "{:?}: {result:?}",
                root.resolver()
            );
        });
    }

    #[test]
    fn directory_listing_stays_beneath_root() {
        for_each_resolver(|root| {
            assert_not_found(root, "/up/");
            let Lookup::Directory(directory) = lookup(root, "/noindex/") else {
                panic!("/noindex/ with {:?} is no directory", root.resolver());
            };
            let names: Vec<Vec<u8>> = directory
                .entries(false)
                .unwrap()
                .into_iter()
                .map(|entry| entry.name)
                .collect();
            assert_eq!(names, [b"file.txt".to_vec()], "{:?}", root.resolver());
        });
    }

    #[test]
    fn stat_beneath_follows_links_only_inside_root() {
        for_each_resolver(|root| {
            let stat = root.stat_beneath(b"link.txt").unwrap();
            assert_eq!(stat.st_size, 5);
            // Reading needs no permission: only the name is resolved.
            assert!(root.stat_beneath(b"locked.txt").is_ok());
            for outside in [&b"escape.txt"[..], b"sibling.txt", b"passwd", b"up/outside.txt"] {
                let error = root.stat_beneath(outside).unwrap_err();
                assert!(
                    matches!(classify(error), Lookup::NotFound),
                    "{} with {:?}",
                    String::from_utf8_lossy(outside),
                    root.resolver()
                );
            }
        });
    }

    #[test]
    fn directory_without_trailing_slash_redirects() {
        for_each_resolver(|root| {
            for (path, location) in [
                ("/docs", "/docs/"),
                ("/empty", "/empty/"),
                ("/a%20b", "/a%20b/"),
                ("//docs", "/docs/"),
            ] {
                let result = lookup(root, path);
                assert!(
                    matches!(&result, Lookup::Redirect(to) if to == location),
                    "{path} with {:?}: {result:?}",
                    root.resolver()
                );
            }
        });
    }

    #[test]
    fn hidden_names_need_permission() {
        for_each_resolver(|root| {
            assert_not_found(root, "/.secret");
            assert_not_found(root, "/.git/config");
            assert_not_found(root, "/%2egit/config");
            let hidden = |path: &str| root.lookup(&decode_path(path.as_bytes()).unwrap(), true);
            assert!(matches!(hidden("/.secret"), Lookup::File(_)));
            assert!(matches!(hidden("/.git/config"), Lookup::File(_)));
        });
    }

    #[test]
    fn symlinks_inside_root_work() {
        for_each_resolver(|root| {
            assert_serves(root, "/link.txt", "hello", false);
            assert_serves(root, "/linkdocs/", "docs index", true);
            assert_serves(root, "/linkdocs/a%20b.html", "a b", false);
        });
    }

    #[test]
    fn symlinks_leading_outside_are_not_found() {
        for_each_resolver(|root| {
            assert_not_found(root, "/escape.txt");
            assert_not_found(root, "/sibling.txt");
            assert_not_found(root, "/passwd");
            assert_not_found(root, "/up/outside.txt");
            assert_not_found(root, "/up/site2/secret.txt");
            assert_not_found(root, "/up/");
        });
    }

    #[test]
    fn missing_files_are_not_found() {
        for_each_resolver(|root| {
            assert_not_found(root, "/missing.txt");
            assert_not_found(root, "/%252e%252e/outside.txt");
            assert_not_found(root, "/hello.txt/more");
            assert_not_found(root, &format!("/{}", "x".repeat(300)));
        });
    }

    #[test]
    fn trailing_slash_on_a_file_is_not_found() {
        for_each_resolver(|root| {
            assert_not_found(root, "/hello.txt/");
            assert_not_found(root, "/link.txt/");
        });
    }

    #[test]
    fn fifo_is_not_found_without_blocking() {
        let tree = Tree::new();
        let (done, finished) = mpsc::channel();
        let site = tree.site();
        std::thread::spawn(move || {
            for resolver in RESOLVERS {
                let root = Root::open_with(&site, resolver).unwrap();
                let found = matches!(lookup(&root, "/fifo"), Lookup::NotFound);
                done.send((resolver, found)).unwrap();
            }
        });
        for _ in RESOLVERS {
            let (resolver, found) = finished
                .recv_timeout(Duration::from_secs(10))
                .expect("looking up a FIFO blocked");
            assert!(found, "fifo with {resolver:?}");
        }
    }

    #[test]
    fn unreadable_file_is_forbidden() {
        if rustix::process::geteuid().is_root() {
            // Root bypasses permission checks; nothing to observe.
            return;
        }
        for_each_resolver(|root| {
            let result = lookup(root, "/locked.txt");
            assert!(matches!(result, Lookup::Forbidden), "{result:?}");
        });
    }

    #[test]
    fn identity_describes_the_open_file() {
        for_each_resolver(|root| {
            let Lookup::File(open) = lookup(root, "/link.txt") else {
                panic!("link.txt not served");
            };
            let target = std::fs::metadata(root.canonical().join("hello.txt")).unwrap();
            assert_eq!(open.identity, identity_of(&target));
            assert_eq!(open.modified, target.modified().unwrap());
            assert!(!open.is_empty());
        });
    }

    #[test]
    fn open_picks_a_working_resolver() {
        let tree = Tree::new();
        let root = Root::open(&tree.site()).unwrap();
        assert_eq!(root.canonical(), tree.site().canonicalize().unwrap());
        assert_serves(&root, "/hello.txt", "hello", false);
        assert_not_found(&root, "/escape.txt");
    }

    #[test]
    fn open_rejects_missing_or_non_directory_root() {
        let tree = Tree::new();
        assert!(Root::open(&tree.site().join("missing")).is_err());
        let error = Root::open(&tree.site().join("hello.txt")).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotADirectory);
    }
}
