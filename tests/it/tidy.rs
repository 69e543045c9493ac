//! Repository rules that a reviewer would otherwise have to remember (as rust-analyzer's tidy
//! test does): the invariants of ARCHITECTURE.md, checked by reading the sources.
//!
//! Code after the first `#[cfg(test)]` of a file is its tests, and exempt from every rule;
//! comments before it count as code (a doc link names its target too).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers of the library, top to bottom. Each names only the layers below it and the
/// modules beside it, never one above (ARCHITECTURE.md draws the same picture):
///
/// ```text
/// main.rs        the binary (checked by `the_binary_names_only_the_top_layers`)
///  └ cli
///    └ server ─ acme (automatic HTTPS: wiring and a network client, beside the server)
///      └ models
///        └ engine
///          └ seam
///            └ site, http   the core's handler for a folder, and the sans-IO core
///              └ fs
/// beside them: net, shutdown, observe, error
/// ```
///
/// One row per top-level module of `src/` (a file `src/X.rs`, a folder `src/X/`, or both):
/// the other top-level modules it may name as `crate::X`; a module may always name itself.
/// Every module of `src/` must have a row, so that a new one is placed on purpose.
#[rustfmt::skip]
const LAYERS: &[(&str, &[&str])] = &[
    ("cli", &["models", "server", "net", "observe"]), // the command line, --config, completions, man page
    ("server", &["acme", "engine", "models", "seam", "http", "net", "observe", "shutdown", "site", "fs", "error"]), // wiring only
    ("acme", &["seam", "http", "fs", "observe", "shutdown"]), // beside server: automatic HTTPS, wiring and an ACME client
    ("models", &["engine", "seam", "net", "shutdown", "observe", "error"]), // one file per concurrency model
    ("engine", &["seam", "net", "shutdown", "observe", "error"]), // what the models share
    ("seam", &["http"]), // the connection seam: a model's one door to the protocol
    ("site", &["http", "fs", "observe"]), // the static folder: the core's handler
    ("http", &[]), // the sans-IO protocol core: bytes in, what to send out
    ("fs", &[]), // the only code that touches the file system
    ("net", &[]), // beside: the sockets, TCP or Unix, bound here or passed in by systemd
    ("shutdown", &[]), // beside: the stop signal
    ("observe", &["http", "fs", "error"]), // beside: access log, metrics, stderr
    ("error", &["net"]), // beside: the errors that stop the server
];

/// What the binary, `src/main.rs`, may name as `bingfa::X`, besides the crate root's
/// re-exports (`pub use` in `src/lib.rs`: `bingfa::{Error, Server, bind, ...}`).
const BINARY_MAY_NAME: &[&str] = &["cli", "server", "net", "observe"];

/// The calls that touch the file system by a path (an already-open file is fine: `std::fs::File`
/// as a type, or `rustix::fs::sendfile`).
const FILE_SYSTEM_CALLS: &[&str] = &[
    "File::open",
    "File::create",
    "File::options",
    "OpenOptions",
    "openat",
    "OpenAt",
    "read_dir",
    "read_link",
    "canonicalize",
    "symlink_metadata",
    "remove_file",
    "remove_dir",
    "create_dir",
    "set_permissions",
    "hard_link",
    "unlink",
    "mkdir",
    "fs::read",
    "fs::write",
    "fs::metadata",
    "fs::rename",
    "fs::copy",
    ".exists()",
    ".try_exists()",
];

/// The files outside `src/fs/` that touch the file system, each with why. Exactly those: a
/// file that no longer touches it must leave this list.
#[rustfmt::skip]
const FILE_SYSTEM_EXCEPTIONS: &[(&str, &str)] = &[
    ("src/net/unix.rs", "a Unix socket's file: a stale one removed at start, ours at the stop"),
    ("src/cli/config.rs", "reads the `--config FILE` the operator names"),
];

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, recursively, as paths relative to the crate (`src/http/conn.rs`).
fn rust_files(dir: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![PathBuf::from(dir)];
    while let Some(dir) = dirs.pop() {
        let full = manifest_dir().join(&dir);
        for entry in fs::read_dir(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display())) {
            let path = dir.join(entry.unwrap().file_name());
            if manifest_dir().join(&path).is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(!files.is_empty(), "no sources in {dir}");
    files
}

/// The code of `file` (relative to the crate) before its tests: up to the first `#[cfg(test)]`.
fn code(file: &Path) -> String {
    let text = fs::read_to_string(manifest_dir().join(file)).unwrap();
    text.split("#[cfg(test)]").next().unwrap_or(&text).to_string()
}

fn line_of(code: &str, at: usize) -> usize {
    code[..at].matches('\n').count() + 1
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The identifier `s` starts with (empty if none).
fn ident(s: &str) -> &str {
    &s[..s.find(|c| !is_ident_char(c)).unwrap_or(s.len())]
}

/// Every occurrence of one of `needles` in `code`, as (line, needle), in the order of lines.
fn occurrences<'a>(code: &str, needles: &[&'a str]) -> Vec<(usize, &'a str)> {
    let mut found: Vec<(usize, &str)> = needles
        .iter()
        .flat_map(|needle| {
            code.match_indices(needle)
                .map(|(at, _)| (line_of(code, at), *needle))
        })
        .collect();
    found.sort();
    found
}

/// Fails listing every file under `dir` that contains one of `forbidden`, outside its tests.
fn forbid(dir: &str, forbidden: &[&str], why: &str) {
    let mut offences = Vec::new();
    for file in rust_files(dir) {
        for (line, needle) in occurrences(&code(&file), forbidden) {
            offences.push(format!("{}:{line} names `{needle}`", file.display()));
        }
    }
    assert!(offences.is_empty(), "{why}:\n{}", offences.join("\n"));
}

/// The items of a `{a, b::c, ...}` group, `group` being the text after its `{`: each with its
/// offset in `group`, leading blanks and line comments skipped. Stops at the closing `}`.
fn group_items(group: &str) -> Vec<(usize, &str)> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (at, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth > 0 => depth -= 1,
            '}' | ',' if depth == 0 => {
                items.push((start, &group[start..at]));
                start = at + 1;
                if c == '}' {
                    break;
                }
            }
            _ => {}
        }
    }
    for (offset, item) in &mut items {
        loop {
            let trimmed = item.trim_start();
            let trimmed = match trimmed.strip_prefix("//") {
                Some(comment) => comment.split_once('\n').map_or("", |(_, rest)| rest),
                None => trimmed,
            };
            if trimmed.len() == item.len() {
                break;
            }
            *offset += item.len() - trimmed.len();
            *item = trimmed;
        }
    }
    items
}

/// Every top-level module `code` names through `root::` (`crate` or `bingfa`), with its line:
/// the first segment of `root::X...`, and of every item of a `root::{a, b::c, ...}` group.
fn named(code: &str, root: &str) -> Vec<(usize, String)> {
    let prefix = format!("{root}::");
    let mut found = Vec::new();
    for (at, _) in code.match_indices(&prefix) {
        if code[..at].ends_with(is_ident_char) {
            continue; // `other_crate::`, not ours
        }
        let after = at + prefix.len();
        match code[after..].strip_prefix('{') {
            Some(group) => {
                for (offset, item) in group_items(group) {
                    found.push((line_of(code, after + 1 + offset), ident(item).to_string()));
                }
            }
            None => found.push((line_of(code, after), ident(&code[after..]).to_string())),
        }
    }
    found.retain(|(_, name)| !name.is_empty() && name != "self");
    found
}

/// The crate root's re-exports (`pub use MODULE::...;` in `src/lib.rs`): name → its module.
fn reexports() -> BTreeMap<String, String> {
    let lib = code(Path::new("src/lib.rs"));
    let mut names = BTreeMap::new();
    for (at, _) in lib.match_indices("pub use ") {
        let path = lib[at + "pub use ".len()..].split(';').next().unwrap();
        let module = ident(path).to_string();
        let items = match path.split_once('{') {
            Some((_, group)) => group_items(group).into_iter().map(|(_, item)| item).collect(),
            None => vec![path],
        };
        for item in items {
            let name = item.rsplit([':', ' ']).next().unwrap().trim();
            if !name.is_empty() && name != "self" {
                names.insert(name.to_string(), module.clone());
            }
        }
    }
    assert!(
        !names.is_empty(),
        "src/lib.rs re-exports nothing: is `reexports` still right?"
    );
    names
}

/// The top-level modules of the library: name → how `src/` holds it (`src/X.rs` or `src/X/`).
fn top_level_modules() -> BTreeMap<String, String> {
    let mut modules = BTreeMap::new();
    for entry in fs::read_dir(manifest_dir().join("src")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if path.is_dir() {
            modules.entry(name.clone()).or_insert(format!("src/{name}/"));
        } else if let Some(module) = name.strip_suffix(".rs") {
            if module != "lib" && module != "main" {
                modules.insert(module.to_string(), format!("src/{name}"));
            }
        }
    }
    modules
}

/// The top-level module `file` (`src/engine/ring.rs`) belongs to (`engine`); `lib`, `main` for
/// the crate roots.
fn module_of(file: &Path) -> String {
    let first = file
        .strip_prefix("src")
        .unwrap()
        .iter()
        .next()
        .unwrap()
        .to_str()
        .unwrap();
    first.strip_suffix(".rs").unwrap_or(first).to_string()
}

fn may_name(module: &str) -> Option<&'static [&'static str]> {
    LAYERS
        .iter()
        .find(|(placed, _)| *placed == module)
        .map(|(_, allowed)| *allowed)
}

/// Every module `module` may name, directly or through the modules it names.
fn reachable(module: &str) -> BTreeSet<&'static str> {
    let mut seen = BTreeSet::new();
    let mut next = may_name(module).unwrap_or_default().to_vec();
    while let Some(module) = next.pop() {
        if seen.insert(module) {
            next.extend(may_name(module).unwrap_or_default());
        }
    }
    seen
}

fn listed(modules: &[&str]) -> String {
    if modules.is_empty() {
        "nothing of the crate".to_string()
    } else {
        format!("only {}", modules.join(", "))
    }
}

#[test]
fn every_top_level_module_is_placed_in_the_layers() {
    let modules = top_level_modules();
    let mut offences = Vec::new();
    for (module, held) in &modules {
        if may_name(module).is_none() {
            offences.push(format!("{held} is a top-level module LAYERS does not place"));
        }
    }
    for (module, allowed) in LAYERS {
        if !modules.contains_key(*module) {
            offences.push(format!("LAYERS places `{module}`, which src/ no longer has"));
        }
        for other in *allowed {
            if may_name(other).is_none() {
                offences.push(format!(
                    "LAYERS lets `{module}` name `{other}`, which it does not place"
                ));
            }
        }
        if reachable(module).contains(module) {
            offences.push(format!(
                "LAYERS has a cycle through `{module}`: it may name modules that may name it"
            ));
        }
    }
    for other in BINARY_MAY_NAME {
        if may_name(other).is_none() {
            offences.push(format!(
                "BINARY_MAY_NAME lets src/main.rs name `{other}`, which LAYERS does not place"
            ));
        }
    }
    assert!(
        offences.is_empty(),
        "LAYERS in tests/it/tidy.rs places every top-level module of src/, and only those, in \
         layers that point one way:\n{}",
        offences.join("\n")
    );
}

#[test]
fn layers_point_one_way() {
    let reexports = reexports();
    let mut offences = Vec::new();
    for file in rust_files("src") {
        let module = module_of(&file);
        // src/lib.rs declares the modules; src/main.rs has its own test; an unplaced module is
        // reported by `every_top_level_module_is_placed_in_the_layers`.
        let Some(allowed) = may_name(&module) else {
            continue;
        };
        for (line, name) in named(&code(&file), "crate") {
            let (target, via) = match reexports.get(&name) {
                Some(origin) => (origin.as_str(), format!(" (a re-export of `{origin}`)")),
                None => (name.as_str(), String::new()),
            };
            if target != module && !allowed.contains(&target) {
                offences.push(format!(
                    "{}:{line} names `crate::{name}`{via}, but `{module}` may name {}",
                    file.display(),
                    listed(allowed)
                ));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "layers point one way (LAYERS in tests/it/tidy.rs, ARCHITECTURE.md): move the code down, \
         pass it in (an argument, a generic), or change the table on purpose:\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_binary_names_only_the_top_layers() {
    let reexports = reexports();
    let mut offences = Vec::new();
    for (line, name) in named(&code(Path::new("src/main.rs")), "bingfa") {
        if !BINARY_MAY_NAME.contains(&name.as_str()) && !reexports.contains_key(&name) {
            offences.push(format!(
                "src/main.rs:{line} names `bingfa::{name}`, but the binary may name only {} and the \
                 crate root's re-exports",
                BINARY_MAY_NAME.join(", ")
            ));
        }
    }
    assert!(
        offences.is_empty(),
        "the binary parses, binds and serves through the top layers:\n{}",
        offences.join("\n")
    );
}

#[test]
fn paths_do_not_climb_to_the_crate_root() {
    let mut offences = Vec::new();
    for file in rust_files("src") {
        // `super` in `src/X.rs` or `src/X/mod.rs` is the crate root.
        let top_level = file.parent() == Some(Path::new("src"))
            || (file.ends_with("mod.rs") && file.parent().and_then(Path::parent) == Some(Path::new("src")));
        let code = code(&file);
        for (at, _) in code.match_indices("super::") {
            let before = &code[..at];
            if before.ends_with(is_ident_char) || before.ends_with("super::") {
                continue;
            }
            let line = line_of(&code, at);
            if code[at..].starts_with("super::super") {
                offences.push(format!("{}:{line} names `super::super`", file.display()));
            } else if top_level {
                offences.push(format!(
                    "{}:{line} names `super::` in a top-level module",
                    file.display()
                ));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "a path that climbs to the crate root hides from the layer check which module it names: \
         write `crate::X`:\n{}",
        offences.join("\n")
    );
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
fn models_and_the_engine_never_look_inside_http_bytes() {
    for dir in ["src/models", "src/engine"] {
        forbid(
            dir,
            &["httparse", "HTTP/1", "\\r\\n", "Content-Length"],
            "models and the engine move bytes between sockets and the seam; protocol work belongs \
             in src/http",
        );
    }
}

#[test]
fn only_the_file_module_touches_the_file_system() {
    let mut offences = Vec::new();
    let mut touching = BTreeSet::new();
    for file in rust_files("src") {
        if file.starts_with("src/fs") {
            continue;
        }
        let found = occurrences(&code(&file), FILE_SYSTEM_CALLS);
        let shown = file.display().to_string();
        if found.is_empty() {
            continue;
        }
        if !FILE_SYSTEM_EXCEPTIONS
            .iter()
            .any(|(excused, _)| *excused == shown)
        {
            for (line, needle) in found {
                offences.push(format!("{shown}:{line} names `{needle}`"));
            }
        }
        touching.insert(shown);
    }
    for (excused, why) in FILE_SYSTEM_EXCEPTIONS {
        if !touching.contains(*excused) {
            offences.push(format!(
                "{excused} is excused ({why}) but no longer touches the file system: drop the exception"
            ));
        }
    }
    assert!(
        offences.is_empty(),
        "only src/fs touches the file system, but for the named exceptions (FILE_SYSTEM_EXCEPTIONS \
         in tests/it/tidy.rs):\n{}",
        offences.join("\n")
    );
}

/// The most code lines (neither blank nor comment, tests left out) a model file may have, so
/// that each stays a short answer to "how does this model move bytes"; what models share
/// belongs in `src/engine`. io_uring's buffer rules need more (its completions' tags live in
/// `engine/ring.rs`).
const MODEL_CODE_LINES: usize = 300;
const URING_CODE_LINES: usize = 400;

#[test]
fn model_files_stay_short() {
    let mut offences = Vec::new();
    for file in rust_files("src/models") {
        let lines = code(&file)
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with("//"))
            .count();
        let most = if file.ends_with("uring.rs") {
            URING_CODE_LINES
        } else {
            MODEL_CODE_LINES
        };
        if lines > most {
            offences.push(format!("{} has {lines} code lines", file.display()));
        }
    }
    assert!(
        offences.is_empty(),
        "a model file holds at most {MODEL_CODE_LINES} code lines (uring {URING_CODE_LINES}); \
         move what models share into src/engine:\n{}",
        offences.join("\n")
    );
}
