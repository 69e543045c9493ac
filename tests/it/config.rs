//! The built `bingfa` binary configured as a new user would: a `--config` file, `BINGFA_*`
//! variables and the command line over them, `--print-config`, `--completions` and `--man`,
//! and one line on stderr for a bad file or variable. Variables are set on the child process
//! only, never in this (multi-threaded) test process.

use std::collections::HashMap;
use std::fs;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::binary::{self, Bingfa, Started, BIN};
use crate::support::*;

/// An environment variable for the child: name and value.
type Var<'a> = (&'a str, &'a str);
type Vars<'a> = &'a [Var<'a>];

/// `bingfa ARGS` with the variables `vars` (and no `BINGFA_*` inherited from this process),
/// in `cwd`.
fn command(args: &[&str], vars: &[(&str, &str)], cwd: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(cwd).stdin(Stdio::null());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("BINGFA_") {
            cmd.env_remove(name);
        }
    }
    cmd.envs(vars.iter().copied());
    cmd
}

/// Runs `bingfa ARGS` (which must exit by itself: it prints and exits, or fails) to its end,
/// bounded: a server that started by mistake is killed after `SAFETY`.
fn output(args: &[&str], vars: &[(&str, &str)], cwd: &Path) -> Output {
    let mut cmd = command(args, vars, cwd);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = Running::spawn(cmd);
    let pid = child.pid;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(SAFETY) {
        Ok(output) => output,
        Err(_) => {
            let _ = kill(pid, Signal::SIGKILL);
            panic!("bingfa {args:?} did not exit within {SAFETY:?}");
        }
    }
}

/// A `bingfa` child, killed (and reaped) when dropped if it still runs, and by the kernel if
/// this test process dies first.
struct Running {
    child: Option<Child>,
    pid: Pid,
}

impl Running {
    fn spawn(mut cmd: Command) -> Running {
        // SAFETY: prctl(2) is a single system call, safe between fork and exec.
        unsafe {
            cmd.pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from));
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid fits i32"));
        Running {
            child: Some(child),
            pid,
        }
    }

    fn wait_with_output(mut self) -> Output {
        let child = self.child.take().expect("a child");
        child.wait_with_output().expect("wait for bingfa")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `bingfa ARGS` with `vars` in `cwd`, which must print its start line (bounded).
fn serve(args: &[&str], vars: &[(&str, &str)], cwd: &Path) -> Bingfa {
    match binary::launch(command(args, vars, cwd), &binary::args(args)) {
        Started::Serving(running) => running,
        Started::Failed { status, stderr } => {
            panic!("bingfa {args:?} with {vars:?} exited ({status}) before its start line: {stderr:?}")
        }
    }
}

fn fetch(addr: SocketAddr, path: &str) -> Response {
    let mut c = Client::connect(addr);
    c.send(req("GET", path, "Connection: close\r\n"));
    c.read_response()
}

/// Writes `text` as `bingfa.toml` beside the site's root (in its temporary folder).
fn write_config(site: &Site, text: &str) -> PathBuf {
    let path = site.root().parent().expect("a parent").join("bingfa.toml");
    fs::write(&path, text).expect("write bingfa.toml");
    path
}

/// The printed configuration as key → value (comments and sources dropped).
fn values(printed: &str) -> HashMap<String, toml::Value> {
    let table: toml::Table = printed
        .parse()
        .unwrap_or_else(|e| panic!("--print-config is not TOML: {e}\n{printed}"));
    table.into_iter().collect()
}

fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {}; stderr {:?}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stderr.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("UTF-8 stdout")
}

/// A config file as the README shows it, with a root relative to the file, run from another
/// folder: the server serves that root with the file's settings.
#[test]
fn serves_from_a_config_file() {
    let site = Site::new();
    let path = write_config(
        &site,
        "# bingfa.toml\n\
         root = \"site\"\n\
         bind = \"127.0.0.1:0\"\n\
         model = \"epoll\"\n\
         hidden = true\n\
         cache-control = \"public, max-age=300\"\n",
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let mut running = serve(&["--config", path.to_str().unwrap()], &[], elsewhere.path());
    let line = &running.start_line;
    let canonical = fs::canonicalize(site.root()).unwrap();
    assert!(line.contains(canonical.to_str().unwrap()), "{line:?}");
    assert!(line.contains("(model epoll,"), "{line:?}");
    let page = fetch(running.addr, "/readme.txt");
    assert_body(&page, &site.read("readme.txt"));
    assert_eq!(page.header("cache-control"), Some("public, max-age=300"));
    assert_body(&fetch(running.addr, "/.hidden.txt"), &site.read(".hidden.txt"));
    running
        .stop_with(Signal::SIGTERM)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// `BINGFA_MODEL` wins over the file, `-m` over `BINGFA_MODEL`; `BINGFA_CONFIG` names the file.
#[test]
fn environment_overrides_the_file_and_the_command_line_overrides_both() {
    let site = Site::new();
    let path = write_config(
        &site,
        "root = \"site\"\nbind = \"127.0.0.1:0\"\nmodel = \"epoll\"\nworkers = 3\n",
    );
    let config = path.to_str().unwrap();
    let cwd = site.root();
    let cases: [(&[&str], Vars, &str); 4] = [
        (&["--config", config], &[], "(model epoll, 3 workers)"),
        (
            &["--config", config],
            &[("BINGFA_MODEL", "thread")],
            "(model thread, 3 workers)",
        ),
        (
            &["--config", config, "-m", "poll"],
            &[("BINGFA_MODEL", "thread")],
            "(model poll, 3 workers)",
        ),
        (
            &[],
            &[("BINGFA_CONFIG", config), ("BINGFA_WORKERS", "2")],
            "(model epoll, 2 workers)",
        ),
    ];
    for (args, vars, expected) in cases {
        let mut running = serve(args, vars, &cwd);
        let line = &running.start_line;
        assert!(line.contains(expected), "{args:?} {vars:?}: {line:?}");
        assert_body(&fetch(running.addr, "/readme.txt"), &site.read("readme.txt"));
        running
            .stop_with(Signal::SIGTERM)
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// `--print-config` shows every value and where it came from, exits 0 without binding, and
/// its output is a config file giving the same configuration.
#[test]
fn print_config_shows_the_effective_configuration_and_reads_back() {
    let site = Site::new();
    let path = write_config(
        &site,
        "root = \"site\"\nmodel = \"epoll\"\nheader-timeout = 0.5\n",
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bind = taken.local_addr().unwrap().to_string();
    let args = [
        "--config",
        path.to_str().unwrap(),
        "--print-config",
        "--bind",
        &bind,
        "--listing",
    ];
    let vars = [("BINGFA_IDLE_TIMEOUT", "7")];
    let printed = stdout_of(&output(&args, &vars, Path::new("/")));
    let expected = [
        ("root", toml::Value::String(site.root().to_str().unwrap().into())),
        ("bind", toml::Value::String(bind.clone())),
        ("model", toml::Value::String("epoll".into())),
        ("header-timeout", toml::Value::Float(0.5)),
        ("idle-timeout", toml::Value::Integer(7)),
        ("send-timeout", toml::Value::Integer(60)),
        ("listing", toml::Value::Boolean(true)),
        ("hidden", toml::Value::Boolean(false)),
    ];
    let first = values(&printed);
    for (key, value) in expected {
        assert_eq!(first.get(key), Some(&value), "{key} in\n{printed}");
    }
    for source in [
        "# command line",
        "# BINGFA_IDLE_TIMEOUT",
        "bingfa.toml line 2",
        "# default",
    ] {
        assert!(printed.contains(source), "no {source:?} in\n{printed}");
    }
    // Read back, from anywhere, it gives the same values.
    let again = tempfile::tempdir().unwrap();
    let saved = again.path().join("saved.toml");
    fs::write(&saved, &printed).unwrap();
    let args = ["--config", saved.to_str().unwrap(), "--print-config"];
    let reprinted = stdout_of(&output(&args, &[], again.path()));
    assert_eq!(values(&reprinted), first, "{printed}\n{reprinted}");
    drop(taken);
}

#[test]
fn completions_and_man_page_print_and_exit_0() {
    let cwd = std::env::temp_dir();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = stdout_of(&output(&["--completions", shell], &[], &cwd));
        assert!(
            script.contains("bingfa") && script.contains("header-timeout"),
            "{shell}"
        );
    }
    let bash = stdout_of(&output(&["--completions", "bash"], &[], &cwd));
    assert!(bash.contains("complete -F _bingfa"), "{bash}");
    // Even with a broken config in the environment.
    let vars = [("BINGFA_CONFIG", "/nonexistent/bingfa.toml")];
    let man = stdout_of(&output(&["--man"], &vars, &cwd));
    assert!(man.lines().any(|l| l.starts_with(".TH bingfa 1")), "{man}");
    assert!(
        man.contains(".SH OPTIONS") || man.contains(".SH \"OPTIONS\""),
        "{man}"
    );
}

/// A bad file or variable is one line on stderr naming the file and line, or the variable,
/// and exit status 1.
#[test]
fn bad_configuration_fails_with_one_line() {
    let site = Site::new();
    let cwd = site.root();
    let root = site.root();
    let root = root.to_str().unwrap();
    let file = |name: &str, text: &str| {
        let path = site.root().parent().unwrap().join(name);
        fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let typo = file("typo.toml", "model = \"epoll\"\nheder-timeout = 10\n");
    let bad_value = file("value.toml", "model = \"epoll\"\n\n\nheader-timeout = -1\n");
    let bad_toml = file("syntax.toml", "model = epoll\n");
    let missing = format!("{root}/missing.toml");
    let cases: Vec<(Vec<&str>, Vec<Var>, String)> = vec![
        (
            vec!["--config", &typo],
            vec![],
            format!("bingfa: {typo} line 2: unknown key 'heder-timeout'"),
        ),
        (
            vec!["--config", &bad_value],
            vec![],
            format!("bingfa: {bad_value} line 4: header-timeout: expected seconds above 0"),
        ),
        (
            vec!["--config", &bad_toml],
            vec![],
            format!("bingfa: {bad_toml} line 1: "),
        ),
        (vec!["--config", &missing], vec![], format!("bingfa: {missing}: ")),
        (
            vec![],
            vec![("BINGFA_CONFIG", missing.as_str())],
            format!("bingfa: {missing}: "),
        ),
        (
            vec![],
            vec![("BINGFA_WORKERS", "abc")],
            "bingfa: BINGFA_WORKERS: invalid value 'abc'".to_string(),
        ),
        (
            vec![],
            vec![("BINGFA_HIDDEN", "yes")],
            "bingfa: BINGFA_HIDDEN: expected true, false, 1 or 0".to_string(),
        ),
        (
            vec!["--print-config"],
            vec![("BINGFA_MODEL", "nosuch")],
            "bingfa: BINGFA_MODEL: invalid value 'nosuch' [possible values:".to_string(),
        ),
    ];
    let mut failures = Vec::new();
    for (args, vars, start) in &cases {
        let out = output(args, vars, &cwd);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        let ok = out.status.code() == Some(1)
            && lines.len() == 1
            && lines[0].starts_with(start.as_str())
            && out.stdout.is_empty();
        if !ok {
            failures.push(format!(
                "  {args:?} {vars:?}: exit {}, stderr {stderr:?}",
                out.status
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "a bad configuration should fail with one line on stderr and exit 1:\n{}",
        failures.join("\n")
    );
}

/// A new user's `--help` tells of the file, the variables and the new options.
#[test]
fn help_mentions_the_configuration() {
    let help = stdout_of(&output(&["--help"], &[], Path::new("/")));
    for word in [
        "--config <FILE>",
        "--print-config",
        "BINGFA_HEADER_TIMEOUT",
        "--man",
    ] {
        assert!(help.contains(word), "no {word} in --help:\n{help}");
    }
}

/// `fallback`, `clean-urls` and `index` in a file serve as on the command line, and
/// `--print-config` writes them so that the file it makes reads back the same.
#[test]
fn path_options_serve_from_a_file_and_print_back() {
    let site = Site::new();
    site.write("about.html", b"<title>about</title>\n");
    site.write("docs/index.htm", b"<title>htm</title>\n");
    let path = write_config(
        &site,
        "root = \"site\"\n\
         bind = \"127.0.0.1:0\"\n\
         fallback = \"index.html\"\n\
         clean-urls = true\n\
         index = \"index.htm,index.html\"\n",
    );
    let config = path.to_str().unwrap();
    let mut running = serve(&["--config", config], &[], &site.root());
    assert_body(&fetch(running.addr, "/users/42"), &site.read("index.html"));
    assert_body(&fetch(running.addr, "/about"), &site.read("about.html"));
    assert_eq!(
        fetch(running.addr, "/about.html?x=1").header("location"),
        Some("/about?x=1")
    );
    assert_body(&fetch(running.addr, "/docs/"), &site.read("docs/index.htm"));
    running
        .stop_with(Signal::SIGTERM)
        .unwrap_or_else(|e| panic!("{e}"));

    let printed = stdout_of(&output(
        &["--config", config, "--print-config"],
        &[],
        Path::new("/"),
    ));
    let first = values(&printed);
    for (key, value) in [
        ("fallback", toml::Value::String("index.html".into())),
        ("clean-urls", toml::Value::Boolean(true)),
        ("index", toml::Value::String("index.htm,index.html".into())),
    ] {
        assert_eq!(first.get(key), Some(&value), "{key} in\n{printed}");
    }
    let saved = site.root().parent().unwrap().join("saved.toml");
    fs::write(&saved, &printed).unwrap();
    let reprinted = stdout_of(&output(
        &["--config", saved.to_str().unwrap(), "--print-config"],
        &[],
        Path::new("/"),
    ));
    assert_eq!(values(&reprinted), first, "{printed}\n{reprinted}");
}

/// A bad index name in a file names the file's line; a fallback that is not there stops the
/// start with one line.
#[test]
fn bad_path_options_fail_with_one_line() {
    let site = Site::new();
    let bad_index = write_config(&site, "root = \"site\"\n\nindex = \"index.html,../x\"\n");
    let bad_index = bad_index.to_str().unwrap();
    let root = site.root();
    let root = root.to_str().unwrap();
    let cases: [(&[&str], String); 3] = [
        (
            &["--config", bad_index],
            format!("bingfa: {bad_index} line 3: index: invalid value 'index.html,../x': index file name '../x' is a path"),
        ),
        (
            &[root, "--index", "a/b"],
            "bingfa: invalid value 'a/b' for '--index <NAMES>'".to_string(),
        ),
        (
            &[root, "-b", "127.0.0.1:0", "--fallback", "missing.html"],
            format!("bingfa: cannot serve {root}: the fallback missing.html is not a file"),
        ),
    ];
    for (args, start) in cases {
        let out = output(args, &[], Path::new("/"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
        assert!(
            lines[0].starts_with(&start),
            "{args:?}: {stderr}\nexpected: {start}"
        );
    }
}

/// `[[hosts]]` in a file: each host's root relative to the file, its own options and rules;
/// `--print-config` writes the tables so that the file it makes reads back the same.
#[test]
fn hosts_serve_from_a_file_and_print_back() {
    let site = Site::new();
    let folder = site.root().parent().unwrap().to_path_buf();
    fs::create_dir_all(folder.join("a-site")).unwrap();
    fs::write(folder.join("a-site/index.html"), b"<title>A</title>\n").unwrap();
    let path = write_config(
        &site,
        "root = \"site\"\n\
         bind = \"127.0.0.1:0\"\n\
         \n\
         [[hosts]]\n\
         names = [\"a.example\"]\n\
         root = \"a-site\"\n\
         listing = true\n\
         \n\
         [[hosts.headers]]\n\
         path = \"/**\"\n\
         set = { X-Site = \"a\" }\n",
    );
    let config = path.to_str().unwrap();
    let mut running = serve(&["--config", config], &[], Path::new("/"));
    let fetch_host = |host: &str| {
        let mut c = Client::connect(running.addr);
        c.send(format!(
            "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        ));
        c.read_response()
    };
    let a = fetch_host("a.example:8000");
    assert_body(&a, b"<title>A</title>\n");
    assert_eq!(a.header("x-site"), Some("a"));
    let other = fetch_host("b.example");
    assert_body(&other, &site.read("index.html"));
    assert_eq!(other.header("x-site"), None);
    running
        .stop_with(Signal::SIGTERM)
        .unwrap_or_else(|e| panic!("{e}"));

    let printed = stdout_of(&output(
        &["--config", config, "--print-config"],
        &[],
        Path::new("/"),
    ));
    let first = values(&printed);
    let hosts = first.get("hosts").and_then(|h| h.as_array()).expect("[[hosts]]");
    let host = hosts[0].as_table().unwrap();
    assert_eq!(
        host.get("root").and_then(|r| r.as_str()),
        folder.join("a-site").to_str()
    );
    assert_eq!(host.get("listing"), Some(&toml::Value::Boolean(true)));
    assert!(host.get("headers").is_some(), "{printed}");
    let saved = folder.join("saved.toml");
    fs::write(&saved, &printed).unwrap();
    let reprinted = stdout_of(&output(
        &["--config", saved.to_str().unwrap(), "--print-config"],
        &[],
        Path::new("/"),
    ));
    assert_eq!(values(&reprinted), first, "{printed}\n{reprinted}");
}
