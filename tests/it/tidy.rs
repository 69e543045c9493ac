//! Repository rules that a reviewer would otherwise have to remember (as rust-analyzer's tidy
//! test does): the invariants of ARCHITECTURE.md, checked by reading the sources.

use std::fs;
use std::path::{Path, PathBuf};

fn rust_files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no sources in {}", dir.display());
    files
}

/// Fails listing every file of `dir` that contains one of `forbidden`, outside its tests.
fn forbid(dir: &str, forbidden: &[&str], why: &str) {
    let mut offences = Vec::new();
    for file in rust_files(dir) {
        let text = fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or(&text);
        for needle in forbidden {
            if code.contains(needle) {
                offences.push(format!("{} names `{needle}`", file.display()));
            }
        }
    }
    assert!(offences.is_empty(), "{why}:\n{}", offences.join("\n"));
}

#[test]
fn http_core_does_no_io_and_reads_no_clock() {
    forbid(
        "src/http",
        &[
            "std::net",
            "File::open",
            "std::io::Read",
            "Instant::now",
            "SystemTime::now",
            "rustix",
            "nix::",
            "crate::fs",
        ],
        "the HTTP core is sans-IO: time and files come in as arguments",
    );
}

#[test]
fn models_never_look_inside_http_bytes() {
    forbid(
        "src/models",
        &["httparse", "HTTP/1", "\\r\\n", "Content-Length", "crate::fs"],
        "models move bytes between sockets and the core; protocol work belongs in src/http",
    );
}

#[test]
fn only_the_file_module_opens_files() {
    for dir in ["src/http", "src/models"] {
        forbid(
            dir,
            &["File::open", "openat", "read_dir", "canonicalize"],
            "only src/fs touches the file system",
        );
    }
}
