//! Request paths: decoding never panics, a decoded path can never name anything above ROOT,
//! and looking it up in a real tree never reaches a file outside ROOT.
//!
//! The tree, made once per process in a temporary directory:
//!
//! ```text
//! TMP/site/index.html, a.txt, .hidden, dir/index.html, dir/b.txt, empty/
//! TMP/site/up.txt     -> ../outside/secret.txt     (relative link leading out)
//! TMP/site/abs.txt    -> TMP/outside/secret.txt    (absolute link leading out)
//! TMP/site/out        -> ../outside                (link to the outside directory)
//! TMP/site/dir/deep   -> ../../outside             (the same, from deeper)
//! TMP/site/a.txt.gz   -> ../outside/secret.txt     (a precompressed "sibling" leading out)
//! TMP/site/self       -> .                         (a loop back inside: allowed)
//! TMP/outside/secret.txt, TMP/outside/secret.txt.gz, TMP/outside/index.html
//! ```
//!
//! Every lookup is done with both resolvers (`openat2(RESOLVE_BENEATH)` when the kernel has
//! it, and the checked fallback), with and without hidden files, and every file it opens
//! (and every precompressed sidecar) must not be one of the outside files, by (dev, inode).

#![no_main]

use bingfa::fs::{decode_path, Lookup, OpenFile, Resolver, Root, SitePath};
use libfuzzer_sys::fuzz_target;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::sync::OnceLock;

struct Tree {
    /// Kept so the directory lives as long as the process.
    _dir: tempfile::TempDir,
    roots: Vec<Root>,
    /// (dev, ino) of every file and directory under `outside/`.
    outside: Vec<(u64, u64)>,
}

fn tree() -> &'static Tree {
    static TREE: OnceLock<Tree> = OnceLock::new();
    TREE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let site = dir.path().join("site");
        let outside = dir.path().join("outside");
        for d in [&site, &site.join("dir"), &site.join("empty"), &outside] {
            fs::create_dir_all(d).expect("mkdir");
        }
        for (path, content) in [
            ("site/index.html", "home"),
            ("site/a.txt", "a"),
            ("site/.hidden", "hidden"),
            ("site/dir/index.html", "dir home"),
            ("site/dir/b.txt", "b"),
            ("outside/secret.txt", "SECRET"),
            ("outside/secret.txt.gz", "SECRET GZ"),
            ("outside/index.html", "SECRET INDEX"),
        ] {
            fs::write(dir.path().join(path), content).expect("write");
        }
        let links = [
            ("site/up.txt", "../outside/secret.txt".into()),
            ("site/abs.txt", outside.join("secret.txt")),
            ("site/out", "../outside".into()),
            ("site/dir/deep", "../../outside".into()),
            ("site/a.txt.gz", "../outside/secret.txt".into()),
            ("site/self", ".".into()),
        ];
        for (link, target) in links {
            symlink(target, dir.path().join(link)).expect("symlink");
        }
        let outside_ids = fs::read_dir(&outside)
            .expect("read outside")
            .map(|entry| entry.expect("entry").path())
            .chain([outside.clone()])
            .map(|path| {
                let metadata = fs::metadata(path).expect("stat");
                (metadata.dev(), metadata.ino())
            })
            .collect();
        let mut roots = vec![Root::open_with(&site, Resolver::Checked).expect("open root")];
        let kernel = Root::open(&site).expect("open root");
        if kernel.resolver() == Resolver::Kernel {
            roots.push(kernel);
        }
        Tree {
            _dir: dir,
            roots,
            outside: outside_ids,
        }
    })
}

/// The lexical promises of `decode_path`.
fn check_decoded(raw: &[u8], path: &SitePath) {
    let relative = path.relative();
    let shown = String::from_utf8_lossy(raw);
    assert!(
        !relative.starts_with(b"/"),
        "{shown:?}: relative path starts with /"
    );
    assert!(!relative.contains(&0), "{shown:?}: NUL in the relative path");
    assert!(
        !relative.contains(&b'\\'),
        "{shown:?}: backslash in the relative path"
    );
    if !relative.is_empty() {
        for segment in relative.split(|&b| b == b'/') {
            assert!(
                !matches!(segment, b"" | b"." | b".."),
                "{shown:?}: segment {:?} in {:?}",
                String::from_utf8_lossy(segment),
                String::from_utf8_lossy(relative)
            );
        }
    }
    let _ = path.extension();
    assert_eq!(
        path.is_hidden(),
        relative.split(|&b| b == b'/').any(|s| s.starts_with(b".")),
        "{shown:?}: is_hidden"
    );
    // The redirect location: one leading slash (never protocol-relative), nothing that could
    // end the path or the header, and it names the same directory again.
    let location = path.directory_location();
    assert!(
        location.starts_with('/') && !location.starts_with("//"),
        "{shown:?}: Location {location:?}"
    );
    assert!(location.ends_with('/'), "{shown:?}: Location {location:?}");
    assert!(
        location
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"?#\\".contains(&b)),
        "{shown:?}: Location {location:?}"
    );
    let again = decode_path(location.as_bytes())
        .unwrap_or_else(|e| panic!("{shown:?}: Location {location:?} does not decode: {e}"));
    assert_eq!(
        again.relative(),
        relative,
        "{shown:?}: Location {location:?} names another path"
    );
    assert!(again.has_trailing_slash(), "{shown:?}: Location {location:?}");
}

fn check_not_outside(tree: &Tree, raw: &[u8], file: &OpenFile, what: &str) {
    let id = (file.identity.dev, file.identity.ino);
    assert!(
        !tree.outside.contains(&id),
        "{:?}: {what} opened a file outside the root",
        String::from_utf8_lossy(raw)
    );
}

fuzz_target!(|raw: &[u8]| {
    let Ok(path) = decode_path(raw) else {
        return;
    };
    check_decoded(raw, &path);
    let tree = tree();
    for root in &tree.roots {
        for hidden in [false, true] {
            let found_at = match root.lookup(&path, hidden) {
                Lookup::File(file) => {
                    check_not_outside(tree, raw, &file, "lookup");
                    assert!(hidden || !path.is_hidden(), "a hidden file served");
                    // An index file's siblings are looked up at its own path.
                    match &file.index_name {
                        Some(name) => path.join(name.as_bytes()),
                        None => path.clone(),
                    }
                }
                Lookup::Directory(directory) => {
                    let entries = directory.entries(hidden).expect("list a directory");
                    assert!(
                        entries.iter().all(|e| !e.name.starts_with(b"secret")),
                        "{:?}: listed the outside directory",
                        String::from_utf8_lossy(raw)
                    );
                    continue;
                }
                Lookup::Redirect(location) => {
                    assert_eq!(location, path.directory_location());
                    continue;
                }
                Lookup::NotFound | Lookup::Forbidden | Lookup::Exhausted => continue,
                Lookup::Failed(error) => panic!("lookup failed: {error}"),
            };
            for suffix in [".gz", ".br", ".zst"] {
                if let Some(sidecar) = root.sidecar(&found_at, suffix) {
                    check_not_outside(tree, raw, &sidecar, "sidecar");
                }
            }
        }
    }
});
