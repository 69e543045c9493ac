//! The guided tour (`docs/zh/`, `docs/en/`, issue 21) stays true: every command block marked
//! runnable runs, and every file path the docs name exists.
//!
//! A block is runnable when its fence says so: ```` ```sh runnable ````. Such a block is a
//! whole shell script a reader can paste: it starts what it needs (the tutorials' Python
//! servers in `docs/tutorial-code/`, or `bingfa`), shows something, and stops what it started.
//! Here each one runs with `bash -e` from the repository's root, with:
//!
//! - `bingfa` on `PATH`: the built binary (a reader installs it with `cargo install --path .`);
//! - its ports moved: every `7890` (the tutorials' port) and `8000` (bingfa's) in the block
//!   becomes a free port, and `BINGFA_BIND` points bingfa there, so that a block never meets
//!   a server already running on this machine;
//! - a bound: a block still running after `BLOCK_TIMEOUT` fails, and whatever a block leaves
//!   running is killed with its process group.
//!
//! The same block in both languages runs once (blocks are compared without their comments).
//!
//! Quoted Rust stays true too: a block fenced ```` ```rust quote PATH ```` must be lines of
//! the file at PATH, in order (`...` stands for lines left out).
//! Blocks need python3 and curl; without them the test passes after a note, except under
//! `CI=true`, where `.ci/run` has installed both.

use std::collections::BTreeSet;
use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::binary::{poll_until, BIN};
use crate::clients::client;

/// The most a runnable block may take; each takes a few seconds.
const BLOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// The fence of a runnable block.
const RUNNABLE: &str = "```sh runnable";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every Markdown file under `docs/`, sorted.
fn doc_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|ext| ext == "md") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&repo().join("docs"), &mut files);
    files.sort();
    files
}

/// The runnable blocks of a Markdown text, each as its lines.
fn runnable_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim_end() == RUNNABLE {
            let body: Vec<&str> = lines
                .by_ref()
                .take_while(|line| line.trim_end() != "```")
                .collect();
            blocks.push(body.join("\n") + "\n");
        }
    }
    blocks
}

/// A block without its comments (`# ...` to the end of a line), to find the same block in
/// both languages.
fn without_comments(block: &str) -> String {
    block
        .lines()
        .map(|line| match line.find('#') {
            Some(at) if at == 0 || line[..at].ends_with(' ') => line[..at].trim_end(),
            _ => line.trim_end(),
        })
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// `block` with the port numbers 7890 and 8000 (as whole numbers) replaced.
fn with_ports(block: &str, tutorial: u16, bingfa: u16) -> String {
    let mut out = String::new();
    let mut rest = block;
    while let Some(at) = rest.find(|c: char| c.is_ascii_digit()) {
        out.push_str(&rest[..at]);
        let digits: String = rest[at..].chars().take_while(char::is_ascii_digit).collect();
        let whole = !out.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
        match digits.as_str() {
            "7890" if whole => out.push_str(&tutorial.to_string()),
            "8000" if whole => out.push_str(&bingfa.to_string()),
            _ => out.push_str(&digits),
        }
        rest = &rest[at + digits.len()..];
    }
    out.push_str(rest);
    out
}

/// Runs one block as the header says; returns its output if it failed.
fn run_block(block: &str) -> Result<(), String> {
    let (tutorial, bingfa) = (free_port(), free_port());
    let script = with_ports(block, tutorial, bingfa);
    let bin_dir = Path::new(BIN).parent().expect("the binary's folder");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = tempfile::tempdir().expect("temp dir for output");
    let (stdout, stderr) = (out.path().join("stdout"), out.path().join("stderr"));
    let mut command = Command::new("bash");
    command
        .args(["-e", "-c", &script])
        .current_dir(repo())
        .env("PATH", path)
        .env("BINGFA_BIND", format!("127.0.0.1:{bingfa}"))
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout).expect("stdout file"))
        .stderr(fs::File::create(&stderr).expect("stderr file"))
        .process_group(0);
    // SAFETY: prctl(2) is a single system call, safe between fork and exec: if the test dies,
    // the block's shell dies too.
    unsafe {
        command.pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from));
    }
    let mut child = command.spawn().expect("spawn bash");
    let group = Pid::from_raw(i32::try_from(child.id()).expect("pid fits i32"));
    let status = poll_until(BLOCK_TIMEOUT, || child.try_wait().expect("try_wait"));
    // Whatever it started and left running goes with it.
    let _ = killpg(group, Signal::SIGKILL);
    let _ = child.wait();
    let read = |path: &Path| String::from_utf8_lossy(&fs::read(path).unwrap_or_default()).into_owned();
    let output = format!("stdout:\n{}\nstderr:\n{}", read(&stdout), read(&stderr));
    match status {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(format!("ended with {status}\n{output}")),
        None => Err(format!("still running after {BLOCK_TIMEOUT:?}\n{output}")),
    }
}

/// Every runnable block of `docs/` runs and ends with status 0.
#[test]
fn every_runnable_command_in_docs_runs() {
    if client("python3").is_none() || client("curl").is_none() {
        return;
    }
    let mut seen = BTreeSet::new();
    let mut failures = Vec::new();
    let mut ran = 0;
    for file in doc_files() {
        let text = fs::read_to_string(&file).expect("read a doc");
        for block in runnable_blocks(&text) {
            if !seen.insert(without_comments(&block)) {
                continue;
            }
            ran += 1;
            if let Err(why) = run_block(&block) {
                failures.push(format!("{}:\n{block}\n{why}", file.display()));
            }
        }
    }
    assert!(ran > 0, "no ```sh runnable block found under docs/");
    assert!(
        failures.is_empty(),
        "runnable blocks failed:\n\n{}",
        failures.join("\n\n")
    );
}

/// The quoted Rust blocks of a Markdown text: (the file they quote, their lines).
fn rust_quotes(text: &str) -> Vec<(String, Vec<String>)> {
    let mut quotes = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some(path) = line.trim_end().strip_prefix("```rust quote ") {
            let body = lines.by_ref().take_while(|line| line.trim_end() != "```");
            quotes.push((path.to_string(), body.map(str::to_string).collect()));
        }
    }
    quotes
}

/// Whether `quote`'s lines appear in `source` in order, each whole (trimmed), a run of them
/// consecutive until a `...` line lets lines be skipped.
fn quoted_in(quote: &[String], source: &str) -> bool {
    let source: Vec<&str> = source.lines().map(str::trim).collect();
    let runs: Vec<Vec<&str>> = quote
        .split(|line| line.trim() == "...")
        .map(|run| run.iter().map(|line| line.trim()).collect())
        .collect();
    let mut from = 0;
    for run in runs.iter().filter(|run| !run.is_empty()) {
        let found = (from..source.len()).find(|&at| source[at..].starts_with(run));
        match found {
            Some(at) => from = at + run.len(),
            None => return false,
        }
    }
    true
}

/// Every ```` ```rust quote PATH ```` block of `docs/` is lines of PATH, in order.
#[test]
fn quoted_rust_matches_the_source() {
    let mut stale = Vec::new();
    let mut checked = 0;
    for file in doc_files() {
        let text = fs::read_to_string(&file).expect("read a doc");
        for (path, quote) in rust_quotes(&text) {
            checked += 1;
            let source = fs::read_to_string(repo().join(&path)).unwrap_or_default();
            if !quoted_in(&quote, &source) {
                stale.push(format!(
                    "{}: the quote of {path}:\n{}",
                    file.display(),
                    quote.join("\n")
                ));
            }
        }
    }
    assert!(checked > 0, "no ```rust quote block found under docs/");
    assert!(
        stale.is_empty(),
        "quotes that are no longer in their files:\n\n{}",
        stale.join("\n\n")
    );
}

#[test]
fn a_quote_is_found_in_order_with_gaps_only_at_ellipses() {
    let source = "fn a() {\n    one();\n    two();\n    three();\n}\n";
    let quote = |lines: &[&str]| lines.iter().map(|l| l.to_string()).collect::<Vec<_>>();
    assert!(quoted_in(&quote(&["one();", "two();"]), source));
    assert!(quoted_in(&quote(&["one();", "...", "three();"]), source));
    assert!(!quoted_in(&quote(&["one();", "three();"]), source));
    assert!(!quoted_in(&quote(&["two();", "...", "one();"]), source));
}

/// The paths a text names: tokens that start with one of the repository's folders or are
/// one of its top-level files, and the targets of relative Markdown links (from `dir`).
fn named_paths(text: &str, dir: &Path) -> Vec<PathBuf> {
    const FOLDERS: [&str; 7] = ["src/", "tests/", "bench/", "docs/", "contrib/", "fuzz/", ".ci/"];
    const FILES: [&str; 4] = ["README.md", "ARCHITECTURE.md", "BENCHMARKS.md", "Cargo.toml"];
    let mut paths = Vec::new();
    let is_path_char = |c: char| c.is_ascii_alphanumeric() || "_-./".contains(c);
    for (at, _) in text.char_indices() {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| is_path_char(c) || c == ':') {
            continue; // inside a longer token, a URL or a relative link
        }
        let rest = &text[at..];
        if FOLDERS.iter().any(|f| rest.starts_with(f)) || FILES.iter().any(|f| rest.starts_with(f)) {
            let token: String = rest.chars().take_while(|&c| is_path_char(c)).collect();
            let token = token.trim_end_matches(['.', '/']);
            paths.push(repo().join(token));
        }
    }
    for target in text.split("](").skip(1) {
        let target = target.split([')', '#', ' ']).next().unwrap_or_default();
        if !target.is_empty() && !target.contains("://") {
            paths.push(dir.join(target));
        }
    }
    paths
}

/// Every file or folder the docs name, as a path or a relative link, exists.
#[test]
fn every_path_named_in_docs_exists() {
    let mut missing = Vec::new();
    let mut checked = 0;
    for file in doc_files() {
        let text = fs::read_to_string(&file).expect("read a doc");
        let dir = file.parent().expect("a doc's folder");
        for path in named_paths(&text, dir) {
            checked += 1;
            if !path.exists() {
                missing.push(format!("{}: {}", file.display(), path.display()));
            }
        }
    }
    assert!(checked > 0, "no path found in docs/");
    assert!(
        missing.is_empty(),
        "the docs name paths that do not exist:\n{}",
        missing.join("\n")
    );
}

#[test]
fn ports_are_replaced_as_whole_numbers() {
    assert_eq!(
        with_ports("curl 127.0.0.1:8000/ x.py site 7890 78901 18000", 1, 2),
        "curl 127.0.0.1:2/ x.py site 1 78901 18000"
    );
}

#[test]
fn paths_are_found_in_text_and_links() {
    let dir = repo().join("docs/zh");
    let found = named_paths(
        "see `src/models/process.rs` and [tour](../en/README.md), https://x.org/src/a, README.md.",
        &dir,
    );
    assert_eq!(
        found,
        [
            repo().join("src/models/process.rs"),
            repo().join("README.md"),
            dir.join("../en/README.md"),
        ]
    );
}
