//! Option values from the `BINGFA_*` environment and a TOML file (`--config`), beneath the
//! command line: command line > environment > file > built-in default.
//!
//! The clap definition in `cli.rs` is the one list of options. A file key is an option's long
//! name (`root` for ROOT), its environment variable is `BINGFA_` and that name in capitals
//! with `_` for `-`, and every value goes through the option's own clap value parser, so it
//! means the same and fails with the same words wherever it is written. A new option needs no
//! code here, only its line in `effective` for `--print-config` (a test checks that it has one).

use super::{format_size, one_line, Args};
use crate::server::{
    AuthRule, AuthRuleError, Config, Cors, HeaderRule, HeaderRuleError, HostName, RedirectRule, VirtualHost,
    DEFAULT_REDIRECT_STATUS,
};
use clap::error::{ContextKind, ContextValue};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches, Parser};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::{Spanned, Value};

/// Options that steer the program rather than the server: only the command line sets them
/// (a file that names another file, or an environment that prints a man page, would surprise).
const META: &[&str] = &[
    "config",
    "print_config",
    "completions",
    "man",
    "hash_password",
    "health_check",
    "help",
    "version",
];

/// Repeatable options whose file key (and environment variable) names the list, as the
/// option's contract spells it; each is also an alias of its option, so that the key's
/// `--KEY=VALUE` reads back.
const LIST_KEYS: &[(&str, &str)] = &[("acme-domain", "acme-domains")];

/// Names the config file when `--config` is not given.
pub const CONFIG_VAR: &str = "BINGFA_CONFIG";

/// Reads one environment variable: `std::env::var_os` in the binary, a map in tests, so that
/// tests running in parallel never change the process environment under each other.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<OsString>;

#[derive(Debug)]
pub enum Error {
    /// From the command line, `--help` and `--version` included (clap reports them as errors
    /// that print to stdout).
    Clap(clap::Error),
    /// A bad file or environment value, as one line to print after `bingfa: `.
    Message(String),
}

/// Where an option's effective value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    CommandLine,
    /// The environment variable's name.
    Env(String),
    File {
        path: PathBuf,
        line: usize,
    },
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::CommandLine => f.write_str("command line"),
            Source::Env(var) => f.write_str(var),
            Source::File { path, line } => write!(f, "{} line {line}", path.display()),
            Source::Default => f.write_str("default"),
        }
    }
}

/// The command line with the environment and the file layered beneath it.
#[derive(Debug)]
pub struct Resolved {
    pub args: Args,
    /// Each option's key and where its value came from, in the order of `--help`.
    pub sources: Vec<(String, Source)>,
    /// The file's `[[tls]]` certificates chosen by SNI, beside the default one (`tls-cert`).
    pub sni_certificates: Vec<TlsTable>,
    /// The file's `[[headers]]` tables, checked, and where each is.
    pub header_rules: Vec<(HeaderRule, Source)>,
    /// The file's `[[redirects]]` tables, checked, and where each is.
    pub redirects: Vec<(RedirectRule, Source)>,
    /// The file's `[[auth]]` tables, checked, and where each is.
    pub auth: Vec<(AuthRule, Source)>,
    /// The file's `[[hosts]]` tables, checked.
    pub hosts: Vec<HostTable>,
}

/// One `[[hosts]]` table of a config file: a virtual host, and where it and its rules are.
#[derive(Debug, Clone)]
pub struct HostTable {
    pub host: VirtualHost,
    pub source: Source,
    /// Where each of `host.header_rules` and `host.redirects` is.
    pub header_sources: Vec<Source>,
    pub redirect_sources: Vec<Source>,
}

/// One `[[tls]]` table of a config file: a certificate chain and its key, absolute paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsTable {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub source: Source,
}

impl Resolved {
    /// The server's configuration: the options, and the tables (`[[tls]]`, `[[headers]]`,
    /// `[[redirects]]`).
    pub fn config(&self) -> Config {
        let mut config = self.args.config();
        config.sni_certificates = self
            .sni_certificates
            .iter()
            .map(|table| (table.cert.clone(), table.key.clone()))
            .collect();
        config.header_rules = self.header_rules.iter().map(|(rule, _)| rule.clone()).collect();
        config.redirects = self.redirects.iter().map(|(rule, _)| rule.clone()).collect();
        config.auth = self.auth.iter().map(|(rule, _)| rule.clone()).collect();
        config.hosts = self.hosts.iter().map(|table| table.host.clone()).collect();
        config
    }
}

/// Parses `argv` (program name first) and fills every option it leaves unset from the
/// environment (`env`), then from the config file (`--config`, else `BINGFA_CONFIG`).
/// `--completions`, `--man` and `--hash-password` read neither: a broken config must not
/// stop them.
pub fn resolve(argv: Vec<OsString>, env: Env) -> Result<Resolved, Error> {
    let mut command = Args::command();
    let cli = command.try_get_matches_from_mut(&argv).map_err(Error::Clap)?;
    if cli.get_flag("man") || cli.contains_id("completions") || cli.get_flag("hash_password") {
        let args = Args::from_arg_matches(&cli).map_err(Error::Clap)?;
        return Ok(Resolved {
            args,
            sources: Vec::new(),
            sni_certificates: Vec::new(),
            header_rules: Vec::new(),
            redirects: Vec::new(),
            auth: Vec::new(),
            hosts: Vec::new(),
        });
    }
    let file = match config_path(&cli, env) {
        Some(path) => Some(File::read(&path).map_err(Error::Message)?),
        None => None,
    };
    let layers = layers(&command, &cli, env, file.as_ref()).map_err(Error::Message)?;
    let mut args = Args::try_parse_from(compose(&argv, layers.args)).map_err(Error::Clap)?;
    // ROOT is positional, so it is set here rather than spliced into the arguments.
    if let Some(root) = layers.root {
        args.root = root;
    }
    let hosts = match &file {
        Some(file) => file.host_tables(&command)?,
        None => Vec::new(),
    };
    let (header_rules, redirects, auth) = file
        .map(|file| (file.header_rules, file.redirects, file.auth))
        .unwrap_or_default();
    Ok(Resolved {
        args,
        sources: layers.sources,
        sni_certificates: layers.sni_certificates,
        header_rules,
        redirects,
        auth,
        hosts,
    })
}

/// What the environment and the file add to the command line.
struct Layers {
    /// Options to add: `--key=VALUE` and `--flag`.
    args: Vec<OsString>,
    root: Option<PathBuf>,
    sources: Vec<(String, Source)>,
    sni_certificates: Vec<TlsTable>,
}

/// Looks up every option the command line (`cli`) leaves unset in the environment, then in
/// the file (whose keys must all be options).
fn layers(command: &Command, cli: &ArgMatches, env: Env, file: Option<&File>) -> Result<Layers, String> {
    let settings = settings(command);
    if let Some(file) = file {
        file.check_keys(command, &settings)?;
    }
    let mut layers = Layers {
        args: Vec::new(),
        root: None,
        sources: Vec::new(),
        sni_certificates: Vec::new(),
    };
    for setting in &settings {
        let (source, found) = layer(command, setting, cli, env, file)?;
        match found {
            Some(Found::Args(args)) => layers.args.extend(args),
            Some(Found::Root(path)) => layers.root = Some(path),
            None => {}
        }
        layers.sources.push((setting.key.to_string(), source));
    }
    if let Some(file) = file {
        layers.add_tls_tables(&file.tls);
    }
    Ok(layers)
}

impl Layers {
    /// The `[[tls]]` tables: the first is the default certificate, `tls-cert` and `tls-key`,
    /// unless something above the tables set those; the others are chosen by SNI.
    fn add_tls_tables(&mut self, tables: &[TlsTable]) {
        let mut tables = tables.iter();
        let default_unset = self
            .sources
            .iter()
            .any(|(key, source)| key == "tls-cert" && *source == Source::Default);
        if let Some(first) = tables.next() {
            if default_unset {
                for (key, path) in [("tls-cert", &first.cert), ("tls-key", &first.key)] {
                    let mut arg = OsString::from(format!("--{key}="));
                    arg.push(path);
                    self.args.push(arg);
                    if let Some((_, source)) = self.sources.iter_mut().find(|(k, _)| k == key) {
                        *source = first.source.clone();
                    }
                }
            } else {
                self.sni_certificates.push(first.clone());
            }
        }
        self.sni_certificates.extend(tables.cloned());
    }
}

/// `argv` with `extra` in front of its arguments. None of `extra` is on the command line
/// (those options were skipped), so clap sees each option once.
fn compose(argv: &[OsString], extra: Vec<OsString>) -> Vec<OsString> {
    let (program, rest) = match argv.split_first() {
        Some((program, rest)) => (program.clone(), rest),
        None => (OsString::from("bingfa"), argv),
    };
    let mut composed = vec![program];
    composed.extend(extra);
    composed.extend_from_slice(rest);
    composed
}

/// `--config FILE`, else a non-empty `BINGFA_CONFIG`.
fn config_path(cli: &ArgMatches, env: Env) -> Option<PathBuf> {
    if let Some(path) = cli.get_one::<PathBuf>("config") {
        return Some(path.clone());
    }
    env(CONFIG_VAR)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

/// One option that the environment or a file may set.
struct Setting<'c> {
    arg: &'c Arg,
    /// The file key: the long name, or the id for ROOT.
    key: &'c str,
}

impl Setting<'_> {
    fn env_var(&self) -> String {
        format!("BINGFA_{}", self.key.to_ascii_uppercase().replace('-', "_"))
    }

    fn is_flag(&self) -> bool {
        matches!(self.arg.get_action(), ArgAction::SetTrue)
    }

    fn is_root(&self) -> bool {
        self.arg.is_positional()
    }

    /// An option given any number of times (`--header`, `--cors`): a file may list values.
    fn is_repeatable(&self) -> bool {
        matches!(self.arg.get_action(), ArgAction::Append)
    }
}

/// Every option of the command line but the `META` ones, in the order of `--help`.
fn settings(command: &Command) -> Vec<Setting<'_>> {
    command
        .get_arguments()
        .filter(|arg| !META.contains(&arg.get_id().as_str()))
        .map(|arg| {
            let long = arg.get_long().unwrap_or(arg.get_id().as_str());
            let list = LIST_KEYS.iter().find(|(option, _)| *option == long);
            Setting {
                arg,
                key: list.map_or(long, |(_, key)| key),
            }
        })
        .collect()
}

/// A value found outside the command line.
enum Found {
    /// To put on the command line: `--key=VALUE`, `--flag`, or nothing for a flag set false.
    Args(Vec<OsString>),
    Root(PathBuf),
}

/// The highest layer that sets `setting`, and what it sets it to (`None` for the command
/// line, which clap already holds, and for the default).
fn layer(
    command: &Command,
    setting: &Setting,
    cli: &ArgMatches,
    env: Env,
    file: Option<&File>,
) -> Result<(Source, Option<Found>), String> {
    if cli.value_source(setting.arg.get_id().as_str()) == Some(ValueSource::CommandLine) {
        return Ok((Source::CommandLine, None));
    }
    let var = setting.env_var();
    // Empty counts as unset, so `BINGFA_MODEL= bingfa` undoes an inherited variable.
    if let Some(value) = env(&var).filter(|value| !value.is_empty()) {
        let found = from_env(command, setting, value).map_err(|m| format!("{var}: {m}"))?;
        return Ok((Source::Env(var), Some(found)));
    }
    if let Some(file) = file {
        if let Some((value, line)) = file.entries.get(setting.key) {
            let found = file
                .found(command, setting, value)
                .map_err(|m| format!("{} line {line}: {}: {m}", file.path.display(), setting.key))?;
            let path = file.path.clone();
            return Ok((Source::File { path, line: *line }, Some(found)));
        }
    }
    Ok((Source::Default, None))
}

fn from_env(command: &Command, setting: &Setting, value: OsString) -> Result<Found, String> {
    if setting.is_root() {
        // Relative to the working directory, as on the command line.
        return Ok(Found::Root(PathBuf::from(value)));
    }
    let text = value
        .into_string()
        .map_err(|value| format!("not valid UTF-8: '{}'", value.to_string_lossy()))?;
    if setting.is_flag() {
        return parse_bool(&text).map(|on| flag(setting, on));
    }
    option(command, setting, &text)
}

/// A boolean environment value: true, false, 1 or 0 (any case).
fn parse_bool(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("expected true, false, 1 or 0, got '{text}'")),
    }
}

fn flag(setting: &Setting, on: bool) -> Found {
    let args = if on {
        vec![OsString::from(format!("--{}", setting.key))]
    } else {
        Vec::new()
    };
    Found::Args(args)
}

/// `--key=TEXT`, once the option's own value parser has accepted `TEXT`.
fn option(command: &Command, setting: &Setting, text: &str) -> Result<Found, String> {
    Ok(Found::Args(vec![option_arg(command, setting, text)?]))
}

fn option_arg(command: &Command, setting: &Setting, text: &str) -> Result<OsString, String> {
    // The `=` form takes any text as the value, even one that starts with `-`.
    let arg = format!("--{}={text}", setting.key);
    match command.clone().try_get_matches_from(["bingfa", arg.as_str()]) {
        // The value is fine; the options it needs (`--hsts` needs `--tls-cert`) may come from
        // another layer, and the final parse of all of them checks that they do.
        Err(error) if error.kind() == clap::error::ErrorKind::MissingRequiredArgument => {}
        Err(error) => return Err(value_error(&error, text)),
        Ok(_) => {}
    }
    Ok(OsString::from(arg))
}

/// A clap value error as the words after `KEY: `: the value parser's own message (with the
/// value in it), or clap's line without the option it names, since the key already does.
fn value_error(error: &clap::Error, text: &str) -> String {
    if let Some(inner) = std::error::Error::source(error) {
        let inner = inner.to_string();
        return if inner.contains(&format!("'{text}'")) {
            inner
        } else {
            format!("invalid value '{text}': {inner}")
        };
    }
    let line = one_line(error);
    match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => line.replacen(&format!(" for '{arg}'"), "", 1),
        _ => line,
    }
}

/// A config file: each key's value and line, and its tables.
struct File {
    path: PathBuf,
    entries: BTreeMap<String, (Value, usize)>,
    tls: Vec<TlsTable>,
    header_rules: Vec<(HeaderRule, Source)>,
    redirects: Vec<(RedirectRule, Source)>,
    auth: Vec<(AuthRule, Source)>,
    hosts: Vec<RawHost>,
}

/// The keys of a file that are no options: the certificates chosen by SNI, the rules, and
/// the virtual hosts.
const TABLES: [&str; 5] = ["tls", "headers", "redirects", "auth", "hosts"];

/// The top level of a config file, with where each key and value is (byte offsets).
#[derive(Deserialize)]
#[serde(transparent)]
struct Document(BTreeMap<Spanned<String>, Spanned<Value>>);

impl File {
    fn read(path: &Path) -> Result<File, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        File::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<File, String> {
        let document: Document = toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
        let entries = document
            .0
            .into_iter()
            .filter(|(key, _)| !TABLES.contains(&key.get_ref().as_str()))
            .map(|(key, value)| {
                let line = line_of(text, key.span().start);
                (key.into_inner(), (value.into_inner(), line))
            })
            .collect();
        let tables: Tables = toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
        let tls = tls_tables(path, text, tables.tls)?;
        let header_rules = header_tables(path, text, tables.headers)?;
        let redirects = redirect_tables(path, text, tables.redirects)?;
        let auth = auth_tables(path, text, tables.auth)?;
        let hosts = tables
            .hosts
            .into_iter()
            .map(|table| RawHost::read(path, text, table))
            .collect::<Result<_, _>>()?;
        Ok(File {
            path: path.to_path_buf(),
            entries,
            tls,
            header_rules,
            redirects,
            auth,
            hosts,
        })
    }

    /// The `[[hosts]]` tables as virtual hosts: their options read by the command line's own
    /// parsers (`command`), as the top level's are; a name given twice is an error naming
    /// both lines.
    fn host_tables(&self, command: &Command) -> Result<Vec<HostTable>, Error> {
        let mut tables: Vec<HostTable> = Vec::with_capacity(self.hosts.len());
        for raw in &self.hosts {
            let table = self.host_table(command, raw)?;
            for name in &table.host.names {
                let other = tables.iter().find(|t| t.host.names.contains(name));
                if let Some(other) = other {
                    return Err(Error::Message(format!(
                        "{}: hosts: the name {name} is also the table's at {}",
                        table.source, other.source
                    )));
                }
            }
            tables.push(table);
        }
        Ok(tables)
    }

    fn host_table(&self, command: &Command, raw: &RawHost) -> Result<HostTable, Error> {
        let settings = settings(command);
        let mut args = vec![OsString::from("bingfa")];
        for (key, value, line) in &raw.options {
            let at_line = |m: String| {
                let path = self.path.display();
                Error::Message(format!("{path} line {line}: hosts: {key}: {m}"))
            };
            let setting = settings
                .iter()
                .find(|setting| setting.key == *key)
                .ok_or_else(|| at_line("not an option".into()))?;
            match self.found(command, setting, value).map_err(at_line)? {
                Found::Args(found) => args.extend(found),
                Found::Root(_) => return Err(at_line("not an option".into())),
            }
        }
        let own = Args::try_parse_from(args).map_err(Error::Clap)?.config();
        let host = VirtualHost {
            hidden: own.hidden,
            listing: own.listing,
            error_page: own.error_page,
            fallback: own.fallback,
            clean_urls: own.clean_urls,
            index: own.index,
            cache_control: own.cache_control,
            headers: own.headers,
            cors: own.cors,
            header_rules: raw.header_rules.iter().map(|(rule, _)| rule.clone()).collect(),
            redirects: raw.redirects.iter().map(|(rule, _)| rule.clone()).collect(),
            auth: raw.auth.iter().map(|(rule, _)| rule.clone()).collect(),
            ..VirtualHost::new(raw.names.clone(), raw.root.clone())
        };
        Ok(HostTable {
            host,
            source: raw.source.clone(),
            header_sources: raw.header_rules.iter().map(|(_, s)| s.clone()).collect(),
            redirect_sources: raw.redirects.iter().map(|(_, s)| s.clone()).collect(),
        })
    }

    /// Fails on the first key (by line) that names no option.
    fn check_keys(&self, command: &Command, settings: &[Setting]) -> Result<(), String> {
        let unknown = self
            .entries
            .iter()
            .filter(|(key, _)| !settings.iter().any(|s| s.key == key.as_str()))
            .min_by_key(|(_, (_, line))| *line);
        let Some((key, (_, line))) = unknown else {
            return Ok(());
        };
        let list = LIST_KEYS.iter().find(|(option, _)| option == key);
        let why = if let Some((_, list)) = list {
            format!("'{key}' is written '{list}' in a file, as a list")
        } else if command.get_arguments().any(|a| a.get_long() == Some(key)) {
            format!("'{key}' can only be given on the command line")
        } else {
            format!("unknown key '{key}' (keys are the long option names of bingfa --help, and root)")
        };
        Err(format!("{} line {line}: {why}", self.path.display()))
    }

    /// What the file's `value` sets `setting` to.
    fn found(&self, command: &Command, setting: &Setting, value: &Value) -> Result<Found, String> {
        if setting.is_root() {
            return match value {
                Value::String(root) if !root.is_empty() => Ok(Found::Root(self.folder().join(root))),
                _ => Err(format!("expected a folder name, got {}", describe(value))),
            };
        }
        if setting.is_flag() {
            return match value {
                Value::Boolean(on) => Ok(flag(setting, *on)),
                _ => Err(format!("expected true or false, got {}", describe(value))),
            };
        }
        match value {
            Value::Array(values) if setting.is_repeatable() => {
                let args = values
                    .iter()
                    .map(|value| option_arg(command, setting, &scalar(value)?))
                    .collect::<Result<_, String>>()?;
                Ok(Found::Args(args))
            }
            _ => option(command, setting, &scalar(value)?),
        }
    }

    /// The folder a relative root is taken from, as nginx takes paths from its prefix: the
    /// file's, so that a config and its site can move together.
    fn folder(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new(""))
    }
}

/// A file value given as an option's text: a string, a number or a boolean.
fn scalar(value: &Value) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Integer(n) => Ok(n.to_string()),
        Value::Float(x) => Ok(x.to_string()),
        Value::Boolean(b) => Ok(b.to_string()),
        _ => Err(format!("expected a string or a number, got {}", describe(value))),
    }
}

/// The tables of a file: `[[tls]]`, `[[headers]]`, `[[redirects]]`, `[[hosts]]`.
#[derive(Deserialize)]
struct Tables {
    #[serde(default)]
    tls: Vec<Spanned<RawTlsTable>>,
    #[serde(default)]
    headers: Vec<Spanned<RawHeaderTable>>,
    #[serde(default)]
    redirects: Vec<Spanned<RawRedirectTable>>,
    #[serde(default)]
    auth: Vec<Spanned<RawAuthTable>>,
    #[serde(default)]
    hosts: Vec<Spanned<RawHostTable>>,
}

/// A `[[hosts]]` table as written: its names and root, the options a site of its own may
/// set (the command line's keys, read as the top level's are), and its own rule tables.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawHostTable {
    names: Spanned<Vec<Spanned<String>>>,
    root: Spanned<String>,
    fallback: Option<Spanned<Value>>,
    clean_urls: Option<Spanned<Value>>,
    index: Option<Spanned<Value>>,
    listing: Option<Spanned<Value>>,
    hidden: Option<Spanned<Value>>,
    error_page: Option<Spanned<Value>>,
    cache_control: Option<Spanned<Value>>,
    header: Option<Spanned<Value>>,
    cors: Option<Spanned<Value>>,
    #[serde(default)]
    headers: Vec<Spanned<RawHeaderTable>>,
    #[serde(default)]
    redirects: Vec<Spanned<RawRedirectTable>>,
    #[serde(default)]
    auth: Vec<Spanned<RawAuthTable>>,
}

/// The option keys a `[[hosts]]` table may set, in the order `--print-config` writes them.
const HOST_OPTIONS: [&str; 9] = [
    "hidden",
    "listing",
    "error-page",
    "fallback",
    "clean-urls",
    "index",
    "cache-control",
    "header",
    "cors",
];

impl RawHostTable {
    /// The options it sets, by key, in the order of [`HOST_OPTIONS`].
    fn options(&self) -> [(&'static str, &Option<Spanned<Value>>); HOST_OPTIONS.len()] {
        [
            ("hidden", &self.hidden),
            ("listing", &self.listing),
            ("error-page", &self.error_page),
            ("fallback", &self.fallback),
            ("clean-urls", &self.clean_urls),
            ("index", &self.index),
            ("cache-control", &self.cache_control),
            ("header", &self.header),
            ("cors", &self.cors),
        ]
    }
}

/// A `[[hosts]]` table with its names, root and rules checked; its options still as written
/// (the command line's parsers read them once the file is read).
struct RawHost {
    names: Vec<HostName>,
    /// Absolute: relative to the file's folder when written relative (as ROOT is).
    root: PathBuf,
    /// Each option it sets: key, value, line.
    options: Vec<(&'static str, Value, usize)>,
    header_rules: Vec<(HeaderRule, Source)>,
    redirects: Vec<(RedirectRule, Source)>,
    auth: Vec<(AuthRule, Source)>,
    source: Source,
}

impl RawHost {
    fn read(path: &Path, text: &str, table: Spanned<RawHostTable>) -> Result<RawHost, String> {
        let line = |span: std::ops::Range<usize>| line_of(text, span.start);
        let error =
            |span, message: String| format!("{} line {}: hosts: {message}", path.display(), line(span));
        let source = Source::File {
            path: path.to_path_buf(),
            line: line(table.span()),
        };
        let table = table.into_inner();
        if table.names.get_ref().is_empty() {
            return Err(error(
                table.names.span(),
                "names: list at least one host name".into(),
            ));
        }
        let names = table
            .names
            .get_ref()
            .iter()
            .map(|name| HostName::new(name.get_ref()).map_err(|e| error(name.span(), format!("names: {e}"))))
            .collect::<Result<_, _>>()?;
        if table.root.get_ref().is_empty() {
            return Err(error(table.root.span(), "root: expected a folder name".into()));
        }
        let folder = path.parent().unwrap_or(Path::new(""));
        let root = std::path::absolute(folder.join(table.root.get_ref()))
            .map_err(|e| error(table.root.span(), format!("root: {e}")))?;
        let options = table
            .options()
            .into_iter()
            .filter_map(|(key, value)| {
                let value = value.as_ref()?;
                Some((key, value.get_ref().clone(), line(value.span())))
            })
            .collect();
        Ok(RawHost {
            names,
            root,
            options,
            header_rules: header_tables(path, text, table.headers)?,
            redirects: redirect_tables(path, text, table.redirects)?,
            auth: auth_tables(path, text, table.auth)?,
            source,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeaderTable {
    path: Spanned<String>,
    set: BTreeMap<Spanned<String>, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedirectTable {
    from: Spanned<String>,
    to: Spanned<String>,
    status: Option<Spanned<u16>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTlsTable {
    cert: PathBuf,
    key: PathBuf,
}

/// The `[[tls]]` tables of the file at `path`: each file is taken from the file's folder when
/// relative (as ROOT is) and made absolute, so that `--print-config` writes what means the
/// same anywhere.
fn tls_tables(path: &Path, text: &str, tables: Vec<Spanned<RawTlsTable>>) -> Result<Vec<TlsTable>, String> {
    let folder = path.parent().unwrap_or(Path::new(""));
    let absolute = |name: &Path, line: usize| {
        std::path::absolute(folder.join(name))
            .map_err(|e| format!("{} line {line}: tls: {e}", path.display()))
    };
    tables
        .into_iter()
        .map(|table| {
            let line = line_of(text, table.span().start);
            let table = table.into_inner();
            Ok(TlsTable {
                cert: absolute(&table.cert, line)?,
                key: absolute(&table.key, line)?,
                source: Source::File {
                    path: path.to_path_buf(),
                    line,
                },
            })
        })
        .collect()
}

/// The `[[headers]]` tables of the file at `path`, each checked: a bad glob or field is an
/// error naming the line it is on.
fn header_tables(
    path: &Path,
    text: &str,
    tables: Vec<Spanned<RawHeaderTable>>,
) -> Result<Vec<(HeaderRule, Source)>, String> {
    let at = |span: std::ops::Range<usize>| Source::File {
        path: path.to_path_buf(),
        line: line_of(text, span.start),
    };
    tables
        .into_iter()
        .map(|table| {
            let source = at(table.span());
            let table = table.into_inner();
            // In the order written: a later field of the same name wins.
            let mut set: Vec<_> = table.set.into_iter().collect();
            set.sort_by_key(|(name, _)| name.span().start);
            let fields: Vec<(String, String)> = set
                .iter()
                .map(|(name, value)| (name.get_ref().clone(), value.get_ref().clone()))
                .collect();
            HeaderRule::new(table.path.get_ref(), &fields)
                .map(|rule| (rule, source))
                .map_err(|error| {
                    let span = match &error {
                        HeaderRuleError::Path(_) => table.path.span(),
                        HeaderRuleError::Field { index, .. } => set[*index].0.span(),
                    };
                    format!("{}: headers: {error}", at(span))
                })
        })
        .collect()
}

/// The `[[redirects]]` tables of the file at `path`, each checked: a bad one is an error
/// naming the line of the key at fault.
fn redirect_tables(
    path: &Path,
    text: &str,
    tables: Vec<Spanned<RawRedirectTable>>,
) -> Result<Vec<(RedirectRule, Source)>, String> {
    let at = |span: std::ops::Range<usize>| Source::File {
        path: path.to_path_buf(),
        line: line_of(text, span.start),
    };
    tables
        .into_iter()
        .map(|table| {
            let source = at(table.span());
            let table = table.into_inner();
            let status = table
                .status
                .as_ref()
                .map_or(DEFAULT_REDIRECT_STATUS, |s| *s.get_ref());
            RedirectRule::new(table.from.get_ref(), table.to.get_ref(), status)
                .map(|rule| (rule, source))
                .map_err(|error| {
                    let span = match (error.key(), &table.status) {
                        ("from", _) => table.from.span(),
                        ("status", Some(status)) => status.span(),
                        _ => table.to.span(),
                    };
                    format!("{}: redirects: {error}", at(span))
                })
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuthTable {
    path: Spanned<String>,
    realm: Option<Spanned<String>>,
    users: Spanned<Vec<Spanned<String>>>,
}

/// The realm of an `[[auth]]` table that names none, as Caddy's.
const DEFAULT_REALM: &str = "restricted";

/// The `[[auth]]` tables of the file at `path`, each checked: a bad glob, realm or user (a
/// password that is not a bcrypt or argon2 hash) is an error naming the line it is on.
fn auth_tables(
    path: &Path,
    text: &str,
    tables: Vec<Spanned<RawAuthTable>>,
) -> Result<Vec<(AuthRule, Source)>, String> {
    let at = |span: std::ops::Range<usize>| Source::File {
        path: path.to_path_buf(),
        line: line_of(text, span.start),
    };
    tables
        .into_iter()
        .map(|table| {
            let source = at(table.span());
            let table = table.into_inner();
            let realm = table
                .realm
                .as_ref()
                .map_or(DEFAULT_REALM, |realm| realm.get_ref());
            let users: Vec<String> = table
                .users
                .get_ref()
                .iter()
                .map(|u| u.get_ref().clone())
                .collect();
            AuthRule::new(table.path.get_ref(), realm, &users)
                .map(|rule| (rule, source))
                .map_err(|error| {
                    let span = match (&error, &table.realm) {
                        (AuthRuleError::Path(_), _) => table.path.span(),
                        (AuthRuleError::Realm, Some(realm)) => realm.span(),
                        (AuthRuleError::User { index, .. }, _) => table.users.get_ref()[*index].span(),
                        _ => table.users.span(),
                    };
                    format!("{}: auth: {error}", at(span))
                })
        })
        .collect()
}

/// A TOML error as one line: toml's message may run over several lines; the first says what
/// is wrong.
fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> String {
    let message = e.message().lines().next().unwrap_or("not valid TOML");
    match e.span() {
        Some(span) => format!("{} line {}: {message}", path.display(), line_of(text, span.start)),
        None => format!("{}: {message}", path.display()),
    }
}

/// A TOML value as an error message shows it: its type and text.
fn describe(value: &Value) -> String {
    format!("{} {value}", value.type_str())
}

/// The line (from 1) holding byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let before = &text.as_bytes()[..offset.min(text.len())];
    before.iter().filter(|&&b| b == b'\n').count() + 1
}

/// The effective configuration as TOML that `--config` reads back: every option in the order
/// of `--help`, each followed by where its value came from. ROOT is written absolute, so the
/// output means the same wherever it is saved.
pub fn render(resolved: &Resolved, config: &Config) -> Result<String, String> {
    let values = effective(&resolved.args, config)?;
    let mut lines = Vec::new();
    for (key, source) in &resolved.sources {
        let value = values
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, value)| value)
            .ok_or_else(|| format!("--print-config has no value for '{key}'"))?;
        let line = match value {
            Some(value) => format!("{key} = {value}"),
            None => format!("# {key} is not set"),
        };
        lines.push((line, source));
    }
    let width = lines.iter().map(|(line, _)| line.len()).max().unwrap_or(0);
    let mut out = String::from(
        "# bingfa's effective configuration; `bingfa --config FILE` reads it back.\n\
         # After each value: the command line, the variable or the file line that set it, or default.\n",
    );
    for (line, source) in lines {
        out.push_str(&format!("{line:width$}  # {source}\n"));
    }
    for table in &resolved.sni_certificates {
        let cert = Value::String(utf8("tls cert", &table.cert)?);
        let key = Value::String(utf8("tls key", &table.key)?);
        out.push_str(&format!(
            "\n[[tls]]  # {}\ncert = {cert}\nkey = {key}\n",
            table.source
        ));
    }
    for (rule, source) in &resolved.header_rules {
        out.push_str(&header_table("headers", rule, &format!("  # {source}")));
    }
    for (rule, source) in &resolved.redirects {
        out.push_str(&redirect_table("redirects", rule, &format!("  # {source}")));
    }
    for table in &resolved.hosts {
        let comment = |source: &Source| format!("  # {source}");
        let header_comments: Vec<String> = table.header_sources.iter().map(comment).collect();
        let redirect_comments: Vec<String> = table.redirect_sources.iter().map(comment).collect();
        out.push_str(&host_table(
            &table.host,
            &comment(&table.source),
            &header_comments,
            &redirect_comments,
        )?);
    }
    for (rule, source) in &resolved.auth {
        out.push_str(&auth_table("auth", rule, &format!("  # {source}")));
    }
    Ok(out)
}

/// `config`'s `[[headers]]`, `[[redirects]]`, `[[auth]]` and `[[hosts]]` as TOML that `--config`
/// reads back, for a program that starts bingfa with a configuration made in code (the
/// integration tests).
pub fn rule_tables(config: &Config) -> Result<String, String> {
    let headers = config
        .header_rules
        .iter()
        .map(|rule| header_table("headers", rule, ""));
    let redirects = config
        .redirects
        .iter()
        .map(|rule| redirect_table("redirects", rule, ""));
    let auth = config.auth.iter().map(|rule| auth_table("auth", rule, ""));
    let mut out: String = headers.chain(redirects).chain(auth).collect();
    for host in &config.hosts {
        out.push_str(&host_table(host, "", &[], &[])?);
    }
    Ok(out)
}

/// One `[[hosts]]` table: its names, root and every option it may set, then its own rule
/// tables; `comment` after its header line, and each of `header_comments` and
/// `redirect_comments` after its rule's (none: no comment).
fn host_table(
    host: &VirtualHost,
    comment: &str,
    header_comments: &[String],
    redirect_comments: &[String],
) -> Result<String, String> {
    let names: Vec<Value> = host
        .names
        .iter()
        .map(|name| Value::String(name.to_string()))
        .collect();
    let root = Value::String(utf8("hosts root", &host.root)?);
    let mut out = format!(
        "\n[[hosts]]{comment}\nnames = {}\nroot = {root}\n",
        Value::Array(names)
    );
    for (key, value) in host_values(host)? {
        match value {
            Some(value) => out.push_str(&format!("{key} = {value}\n")),
            None => out.push_str(&format!("# {key} is not set\n")),
        }
    }
    let no_comment = String::new();
    for (i, rule) in host.header_rules.iter().enumerate() {
        let comment = header_comments.get(i).unwrap_or(&no_comment);
        out.push_str(&header_table("hosts.headers", rule, comment));
    }
    for (i, rule) in host.redirects.iter().enumerate() {
        let comment = redirect_comments.get(i).unwrap_or(&no_comment);
        out.push_str(&redirect_table("hosts.redirects", rule, comment));
    }
    for rule in &host.auth {
        out.push_str(&auth_table("hosts.auth", rule, ""));
    }
    Ok(out)
}

/// The value of each of [`HOST_OPTIONS`] for `host`, as `effective` writes the top level's.
fn host_values(host: &VirtualHost) -> Result<Vec<(&'static str, Option<Value>)>, String> {
    let path = |key, path: &Option<PathBuf>| -> Result<Option<Value>, String> {
        Ok(path
            .as_deref()
            .map(|p| utf8(key, p))
            .transpose()?
            .map(Value::String))
    };
    let values = vec![
        ("hidden", Some(Value::Boolean(host.hidden))),
        ("listing", Some(Value::Boolean(host.listing))),
        ("error-page", path("error-page", &host.error_page)?),
        ("fallback", path("fallback", &host.fallback)?),
        ("clean-urls", Some(Value::Boolean(host.clean_urls))),
        ("index", Some(Value::String(host.index.join(",")))),
        ("cache-control", host.cache_control.clone().map(Value::String)),
        ("header", list(host.headers.iter().map(ToString::to_string))),
        ("cors", cors_value(&host.cors)),
    ];
    debug_assert!(values.iter().map(|(key, _)| *key).eq(HOST_OPTIONS));
    Ok(values)
}

/// One `[[headers]]` table (`table`: `headers`, or `hosts.headers` inside a host), `comment`
/// after its header line; names and values quoted as TOML strings.
fn header_table(table: &str, rule: &HeaderRule, comment: &str) -> String {
    let quoted = |text: &str| Value::String(text.to_owned()).to_string();
    let set: Vec<String> = rule
        .fields()
        .map(|(name, value)| format!("{} = {}", quoted(name), quoted(value)))
        .collect();
    format!(
        "\n[[{table}]]{comment}\npath = {}\nset = {{ {} }}\n",
        quoted(rule.path()),
        set.join(", ")
    )
}

/// One `[[auth]]` table (`table`: `auth`, or `hosts.auth`) as `--config` reads it, `comment`
/// after its header line.
fn auth_table(table: &str, rule: &AuthRule, comment: &str) -> String {
    let quoted = |text: &str| Value::String(text.to_owned()).to_string();
    let users: Vec<String> = rule.users().map(quoted).collect();
    format!(
        "\n[[{table}]]{comment}\npath = {}\nrealm = {}\nusers = [{}]\n",
        quoted(rule.path()),
        quoted(rule.realm()),
        users.join(", ")
    )
}

/// One `[[redirects]]` table (`table`: `redirects`, or `hosts.redirects`).
fn redirect_table(table: &str, rule: &RedirectRule, comment: &str) -> String {
    let quoted = |text: &str| Value::String(text.to_owned()).to_string();
    format!(
        "\n[[{table}]]{comment}\nfrom = {}\nto = {}\nstatus = {}\n",
        quoted(rule.from()),
        quoted(rule.to()),
        rule.status()
    )
}

/// Every option's effective value by key; `None` for an option that is not set.
fn effective(args: &Args, config: &Config) -> Result<Vec<(&'static str, Option<Value>)>, String> {
    // Every field named, so that a new one does not compile until it is printed here.
    let Config {
        root,
        model,
        workers,
        header_timeout,
        idle_timeout,
        send_timeout,
        min_rate,
        shutdown_timeout,
        drain_delay,
        max_connections,
        h2_max_streams,
        hidden,
        listing,
        error_page,
        fallback,
        clean_urls,
        index,
        cache_control,
        immutable_fingerprints,
        nosniff,
        headers,
        // Not options: rendered as `[[headers]]` and `[[redirects]]` tables after them.
        header_rules: _,
        cors,
        redirects: _,
        file_cache_valid,
        compress,
        compress_max,
        compress_cache,
        // Not options: rendered as `[[auth]]` tables after them.
        auth: _,
        access_log,
        log_format,
        trace_model,
        metrics,
        tls_cert,
        tls_key,
        // Not options: rendered as `[[tls]]` tables after them.
        sni_certificates: _,
        hsts,
        redirect_http,
        acme_domains,
        acme_email,
        acme_directory,
        acme_ca_root,
        state_dir,
        acme_renew_before,
        proxy_protocol,
        trusted_proxies,
        // Not options: rendered as `[[hosts]]` tables after them.
        hosts: _,
    } = config;
    let path = |key, path: &Option<PathBuf>| -> Result<Option<Value>, String> {
        Ok(path
            .as_deref()
            .map(|p| utf8(key, p))
            .transpose()?
            .map(Value::String))
    };
    let root = std::path::absolute(root).map_err(|e| format!("root: {e}"))?;
    // Inside ROOT, as on the command line: written as given.
    let error_page = path("error-page", error_page)?;
    let fallback = path("fallback", fallback)?;
    Ok(vec![
        ("root", Some(Value::String(utf8("root", &root)?))),
        ("bind", Some(Value::String(args.bind.to_string()))),
        ("model", Some(Value::String(model.name().to_string()))),
        ("workers", Some(integer(*workers as u64))),
        ("header-timeout", Some(seconds(*header_timeout))),
        ("idle-timeout", Some(seconds(*idle_timeout))),
        ("send-timeout", Some(seconds(*send_timeout))),
        ("min-rate", Some(integer(*min_rate))),
        ("shutdown-timeout", Some(seconds(*shutdown_timeout))),
        ("drain-delay", Some(seconds(*drain_delay))),
        ("max-connections", Some(integer(*max_connections as u64))),
        ("h2-max-streams", Some(integer(u64::from(*h2_max_streams)))),
        ("hidden", Some(Value::Boolean(*hidden))),
        ("listing", Some(Value::Boolean(*listing))),
        ("error-page", error_page),
        ("fallback", fallback),
        ("clean-urls", Some(Value::Boolean(*clean_urls))),
        ("index", Some(Value::String(index.join(",")))),
        ("cache-control", cache_control.clone().map(Value::String)),
        (
            "immutable-fingerprints",
            Some(Value::Boolean(*immutable_fingerprints)),
        ),
        ("no-nosniff", Some(Value::Boolean(!*nosniff))),
        ("header", list(headers.iter().map(ToString::to_string))),
        ("cors", cors_value(cors)),
        ("file-cache-valid", Some(seconds(*file_cache_valid))),
        ("compress", Some(Value::Boolean(*compress))),
        ("compress-max", Some(size(*compress_max))),
        ("compress-cache", Some(size(*compress_cache))),
        (
            "access-log",
            access_log
                .as_deref()
                .map(|p| utf8("access-log", p))
                .transpose()?
                .map(Value::String),
        ),
        ("log-format", Some(Value::String(log_format.name().to_string()))),
        (
            "log-level",
            Some(Value::String(args.log_level.name().to_string())),
        ),
        ("trace-model", Some(Value::Boolean(*trace_model))),
        ("metrics", metrics.map(|addr| Value::String(addr.to_string()))),
        ("tls-cert", path("tls-cert", tls_cert)?),
        ("tls-key", path("tls-key", tls_key)?),
        ("hsts", hsts.map(integer)),
        (
            "redirect-http",
            redirect_http.map(|addr| Value::String(addr.to_string())),
        ),
        ("acme-domains", list(acme_domains.iter().cloned())),
        ("acme-email", acme_email.clone().map(Value::String)),
        ("acme-directory", Some(Value::String(acme_directory.clone()))),
        ("acme-ca-root", path("acme-ca-root", acme_ca_root)?),
        ("state-dir", path("state-dir", state_dir)?),
        ("acme-renew-before", acme_renew_before.map(seconds)),
        ("proxy-protocol", Some(Value::Boolean(*proxy_protocol))),
        (
            "trusted-proxies",
            Some(Value::String(
                trusted_proxies
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            )),
        ),
    ])
}

/// A list of strings; `None` (not set) when empty.
fn list(items: impl Iterator<Item = String>) -> Option<Value> {
    let items: Vec<Value> = items.map(Value::String).collect();
    (!items.is_empty()).then_some(Value::Array(items))
}

/// `--cors` as the file writes it: `"*"`, or the list of origins.
fn cors_value(cors: &Cors) -> Option<Value> {
    match cors {
        Cors::Off => None,
        Cors::AnyOrigin => Some(Value::String("*".to_owned())),
        Cors::Origins(origins) => list(origins.iter().map(|origin| origin.as_str().to_owned())),
    }
}

fn utf8(key: &str, path: &Path) -> Result<String, String> {
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{key} is not valid UTF-8, so it cannot be written as TOML"))
}

fn integer(n: u64) -> Value {
    Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

/// A size in the largest unit that divides it (`"8MiB"`), else a number of bytes.
fn size(bytes: u64) -> Value {
    let text = format_size(bytes);
    match text.parse() {
        Ok(plain) => integer(plain),
        Err(_) => Value::String(text),
    }
}

/// Whole seconds as an integer (`10`), others as a float (`0.25`), as the options take them.
fn seconds(duration: Duration) -> Value {
    match i64::try_from(duration.as_secs()) {
        Ok(whole) if duration.subsec_nanos() == 0 => Value::Integer(whole),
        _ => Value::Float(duration.as_secs_f64()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Model;
    use std::collections::HashMap;

    /// `bingfa ARGS` with exactly the variables `vars` set.
    fn resolve_in(args: &[&str], vars: &[(&str, &str)]) -> Result<Resolved, Error> {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(name, value)| (name.to_string(), OsString::from(value)))
            .collect();
        let env = move |name: &str| vars.get(name).cloned();
        let argv = std::iter::once("bingfa").chain(args.iter().copied());
        resolve(argv.map(OsString::from).collect(), &env)
    }

    fn message(result: Result<Resolved, Error>) -> String {
        match result {
            Ok(resolved) => panic!("should have failed: {:?}", resolved.args),
            Err(Error::Message(message)) => message,
            Err(Error::Clap(error)) => panic!("a command-line error: {}", one_line(&error)),
        }
    }

    fn ok(result: Result<Resolved, Error>) -> Resolved {
        match result {
            Ok(resolved) => resolved,
            Err(Error::Message(message)) => panic!("{message}"),
            Err(Error::Clap(error)) => panic!("{}", one_line(&error)),
        }
    }

    /// A config file holding `text` in a temporary folder (kept while the guard lives).
    fn config_file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bingfa.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn source<'r>(resolved: &'r Resolved, key: &str) -> &'r Source {
        let found = resolved.sources.iter().find(|(k, _)| k == key);
        &found.unwrap_or_else(|| panic!("no source for {key}")).1
    }

    const FILE: &str = "\
model = \"epoll\"
header-timeout = 3
workers = 4
hidden = true
cache-control = \"public, max-age=5\"
bind = \"127.0.0.1:9001\"
idle-timeout = 0.5
";

    #[test]
    fn precedence_is_command_line_then_environment_then_file_then_default() {
        let (_dir, path) = config_file(FILE);
        let path_arg = path.to_str().unwrap();
        let vars = [
            ("BINGFA_MODEL", "poll"),
            ("BINGFA_HEADER_TIMEOUT", "2"),
            ("BINGFA_HIDDEN", "0"),
            ("BINGFA_LISTING", "TRUE"),
        ];
        let resolved = ok(resolve_in(&["--config", path_arg, "-m", "thread"], &vars));
        let args = &resolved.args;
        // Command line over environment over file: an enum.
        assert_eq!(args.model, Model::Thread);
        assert_eq!(source(&resolved, "model"), &Source::CommandLine);
        // Environment over file: seconds, and a flag turned off.
        assert_eq!(args.header_timeout, Duration::from_secs(2));
        assert_eq!(
            source(&resolved, "header-timeout"),
            &Source::Env("BINGFA_HEADER_TIMEOUT".into())
        );
        assert!(!args.hidden);
        // Environment over default: a flag turned on.
        assert!(args.listing);
        // File over default: a number, a string, an address, fractional seconds.
        assert_eq!(args.workers, Some(4));
        assert_eq!(args.cache_control.as_deref(), Some("public, max-age=5"));
        assert_eq!(args.bind, "127.0.0.1:9001".parse().unwrap());
        assert_eq!(args.idle_timeout, Duration::from_millis(500));
        assert_eq!(
            source(&resolved, "workers"),
            &Source::File {
                path: path.clone(),
                line: 3
            }
        );
        // Default when nobody sets it.
        assert_eq!(args.send_timeout, Duration::from_secs(60));
        assert_eq!(args.min_rate, 500);
        assert_eq!(source(&resolved, "send-timeout"), &Source::Default);
        assert_eq!(args.root, PathBuf::from("."));

        // Without the command line, the environment wins; without both, the file.
        let resolved = ok(resolve_in(&["--config", path_arg], &vars));
        assert_eq!(resolved.args.model, Model::Poll);
        let resolved = ok(resolve_in(&["--config", path_arg], &[]));
        assert_eq!(resolved.args.model, Model::Epoll);
        assert_eq!(resolved.args.header_timeout, Duration::from_secs(3));
        assert!(resolved.args.hidden);
    }

    #[test]
    fn without_a_file_or_environment_the_command_line_is_unchanged() {
        let resolved = ok(resolve_in(&["-m", "epoll", "-w", "3", "--hidden", "site"], &[]));
        assert_eq!(resolved.args.model, Model::Epoll);
        assert_eq!(resolved.args.workers, Some(3));
        assert!(resolved.args.hidden);
        assert_eq!(resolved.args.root, PathBuf::from("site"));
        assert_eq!(resolved.args.header_timeout, Duration::from_secs(10));
    }

    #[test]
    fn the_config_file_may_come_from_the_environment() {
        let (_dir, path) = config_file("model = \"epoll\"\n");
        let (_other, other) = config_file("model = \"poll\"\n");
        let vars = [("BINGFA_CONFIG", path.to_str().unwrap())];
        assert_eq!(ok(resolve_in(&[], &vars)).args.model, Model::Epoll);
        let args = ["--config", other.to_str().unwrap()];
        assert_eq!(
            ok(resolve_in(&args, &vars)).args.model,
            Model::Poll,
            "--config wins"
        );
    }

    #[test]
    fn an_empty_variable_counts_as_unset() {
        let (_dir, path) = config_file("model = \"epoll\"\n");
        let vars = [("BINGFA_CONFIG", path.to_str().unwrap()), ("BINGFA_MODEL", "")];
        assert_eq!(ok(resolve_in(&[], &vars)).args.model, Model::Epoll);
        assert_eq!(
            ok(resolve_in(&[], &[("BINGFA_CONFIG", "")])).args.model,
            Model::Reactor
        );
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let (_dir, path) = config_file("model = \"epoll\"\n\n# timeouts\nheder-timeout = 10\n");
        let error = message(resolve_in(&["--config", path.to_str().unwrap()], &[]));
        let expected = format!("{} line 4: unknown key 'heder-timeout'", path.display());
        assert!(error.starts_with(&expected), "{error}");
        let (_dir, path) = config_file("[server]\nbind = \"127.0.0.1:80\"\n");
        let error = message(resolve_in(&["--config", path.to_str().unwrap()], &[]));
        assert!(error.contains("line 1: unknown key 'server'"), "{error}");
        // The options that steer the program are not keys.
        for key in ["config = \"other.toml\"", "print-config = true", "man = true"] {
            let (_dir, path) = config_file(key);
            let error = message(resolve_in(&["--config", path.to_str().unwrap()], &[]));
            assert!(
                error.contains("line 1: '") && error.ends_with("only be given on the command line"),
                "{error}"
            );
        }
    }

    #[test]
    fn a_bad_value_is_named_with_its_key_and_line_in_the_command_lines_words() {
        let cases = [
            ("header-timeout = -1", "--header-timeout=-1"),
            ("idle-timeout = 0", "--idle-timeout=0"),
            ("send-timeout = nan", "--send-timeout=NaN"),
            ("workers = 0", "--workers=0"),
            ("workers = \"abc\"", "--workers=abc"),
            ("min-rate = -5", "--min-rate=-5"),
            ("bind = \"nonsense\"", "--bind=nonsense"),
            ("cache-control = \"\"", "--cache-control="),
            ("model = \"nosuch\"", "--model=nosuch"),
        ];
        for (line, flag) in cases {
            let key = line.split(' ').next().unwrap();
            let (_dir, path) = config_file(&format!("# bingfa\n\n{line}\n"));
            let error = message(resolve_in(&["--config", path.to_str().unwrap()], &[]));
            let prefix = format!("{} line 3: {key}: ", path.display());
            assert!(error.starts_with(&prefix), "{line}: {error}");
            assert!(!error.contains('\n'), "{line}: {error}");
            // The same words as the command line gives for the same value.
            let Err(Error::Clap(cli)) = resolve_in(&[flag], &[]) else {
                panic!("{flag} should be a command-line error");
            };
            let text = flag.split_once('=').unwrap().1;
            let words = value_error(&cli, text);
            assert!(error.ends_with(&words), "{line}: {error} vs {words}");
        }
        let (_dir, path) = config_file("hidden = \"yes\"\n");
        let error = message(resolve_in(&["--config", path.to_str().unwrap()], &[]));
        assert!(
            error.ends_with("line 1: hidden: expected true or false, got string \"yes\""),
            "{error}"
        );
        let (_dir, path) = config_file("bind = [1, 2]\n");
        let error = message(resolve_in(&["--config", path.to_str().unwrap()], &[]));
        assert!(
            error.contains("line 1: bind: expected a string or a number, got array"),
            "{error}"
        );
        let error = message(resolve_in(&[], &[("BINGFA_MODEL", "nosuch")]));
        assert!(error.contains("possible values"), "{error}");
    }

    #[test]
    fn not_toml_is_an_error_with_its_line() {
        let (_dir, path) = config_file("model = \"epoll\"\nworkers = \n");
        let error = message(resolve_in(&["--config", path.to_str().unwrap()], &[]));
        assert!(
            error.starts_with(&format!("{} line 2: ", path.display())),
            "{error}"
        );
        assert!(!error.contains('\n'), "{error}");
        let missing = path.with_file_name("missing.toml");
        let error = message(resolve_in(&["--config", missing.to_str().unwrap()], &[]));
        assert!(error.starts_with(&format!("{}: ", missing.display())), "{error}");
    }

    #[test]
    fn a_bad_environment_value_names_the_variable() {
        for (var, value, words) in [
            ("BINGFA_WORKERS", "abc", "BINGFA_WORKERS: invalid value 'abc'"),
            (
                "BINGFA_HEADER_TIMEOUT",
                "0",
                "BINGFA_HEADER_TIMEOUT: expected seconds above 0",
            ),
            (
                "BINGFA_HIDDEN",
                "yes",
                "BINGFA_HIDDEN: expected true, false, 1 or 0, got 'yes'",
            ),
            ("BINGFA_BIND", "nonsense", "BINGFA_BIND: expected IP:PORT"),
        ] {
            let error = message(resolve_in(&[], &[(var, value)]));
            assert!(error.starts_with(words), "{var}={value}: {error}");
        }
        // Shadowed by the command line, a bad variable is never read.
        assert!(resolve_in(&["-w", "2"], &[("BINGFA_WORKERS", "abc")]).is_ok());
    }

    #[test]
    fn a_relative_root_in_a_file_is_taken_from_the_files_folder() {
        let (dir, path) = config_file("root = \"site\"\n");
        let config = ["--config", path.to_str().unwrap()];
        assert_eq!(ok(resolve_in(&config, &[])).args.root, dir.path().join("site"));
        // An absolute root stays as it is.
        let (_dir, path) = config_file("root = \"/srv/www\"\n");
        let args = ["--config", path.to_str().unwrap()];
        assert_eq!(ok(resolve_in(&args, &[])).args.root, PathBuf::from("/srv/www"));
        // From the environment or the command line, relative to the working directory.
        let resolved = ok(resolve_in(&config, &[("BINGFA_ROOT", "public")]));
        assert_eq!(resolved.args.root, PathBuf::from("public"));
        let resolved = ok(resolve_in(
            &[config[0], config[1], "www"],
            &[("BINGFA_ROOT", "public")],
        ));
        assert_eq!(resolved.args.root, PathBuf::from("www"));
        assert_eq!(source(&resolved, "root"), &Source::CommandLine);
        // The error page stays a path inside ROOT, as on the command line.
        let (_dir, path) = config_file("error-page = \"errors/404.html\"\n");
        let resolved = ok(resolve_in(&["--config", path.to_str().unwrap()], &[]));
        assert_eq!(resolved.args.error_page, Some(PathBuf::from("errors/404.html")));
    }

    /// `--print-config` of `args` (with `vars`): the TOML text and the config it came from.
    fn printed(args: &[&str], vars: &[(&str, &str)]) -> (String, Config) {
        let resolved = ok(resolve_in(args, vars));
        let config = resolved.args.config();
        (render(&resolved, &config).unwrap(), config)
    }

    #[test]
    fn print_config_round_trips_through_config() {
        let (text, mut config) = printed(
            &[
                "-b",
                "127.0.0.1:8123",
                "-m",
                "epoll",
                "-w",
                "3",
                "--header-timeout",
                "0.25",
                "--idle-timeout",
                "7",
                "--min-rate",
                "0",
                "--max-connections",
                "77",
                "--hidden",
                "--error-page",
                "docs/guide.html",
                "--fallback",
                "app/index.html",
                "--clean-urls",
                "--index",
                "index.htm,index.html",
                "--cache-control",
                "public, \"quoted\"",
                "--compress",
                "--compress-max",
                "1536",
                "site",
            ],
            &[("BINGFA_SHUTDOWN_TIMEOUT", "4")],
        );
        assert!(text.contains("model = \"epoll\""), "{text}");
        assert!(text.contains("compress = true"), "{text}");
        assert!(text.contains("compress-max = 1536"), "{text}");
        assert!(text.contains("compress-cache = \"64MiB\""), "{text}");
        assert!(text.contains("index = \"index.htm,index.html\""), "{text}");
        assert!(text.contains("clean-urls = true"), "{text}");
        assert!(text.contains("fallback = \"app/index.html\""), "{text}");
        assert!(text.contains("# command line"), "{text}");
        assert!(text.contains("# BINGFA_SHUTDOWN_TIMEOUT"), "{text}");
        assert!(text.contains("# default"), "{text}");
        let (_dir, path) = config_file(&text);
        let (again, reread) = printed(&["--config", path.to_str().unwrap()], &[]);
        // The same values (the comments say where they came from, which differs).
        let values = |text: &str| text.parse::<toml::Table>().unwrap();
        assert_eq!(values(&again), values(&text), "{text}\n{again}");
        // ROOT is written absolute; all else is as it was.
        config.root = std::path::absolute("site").unwrap();
        assert_eq!(format!("{reread:?}"), format!("{config:?}"));
    }

    #[test]
    fn print_config_shows_every_option_and_nothing_else() {
        let (text, _) = printed(&[], &[]);
        let command = Args::command();
        let keys: Vec<&str> = settings(&command).iter().map(|s| s.key).collect();
        let mut printed: Vec<&str> = text
            .lines()
            .filter(|line| !line.starts_with("# bingfa") && !line.starts_with("# After"))
            .map(|line| line.trim_start_matches("# ").split([' ', '=']).next().unwrap())
            .collect();
        assert_eq!(printed, keys, "{text}");
        printed.dedup();
        assert_eq!(printed.len(), keys.len());
        assert!(text.contains("# error-page is not set"), "{text}");
        // Every option that --print-config knows is one of the command line's.
        let resolved = ok(resolve_in(&[], &[]));
        let known = effective(&resolved.args, &resolved.args.config()).unwrap();
        assert_eq!(known.iter().map(|(k, _)| *k).collect::<Vec<_>>(), keys);
    }

    #[test]
    fn completions_and_man_read_no_config() {
        let vars = [
            ("BINGFA_CONFIG", "/nonexistent/bingfa.toml"),
            ("BINGFA_WORKERS", "x"),
        ];
        assert!(resolve_in(&["--man"], &vars).is_ok());
        assert!(resolve_in(&["--completions", "bash"], &vars).is_ok());
        assert!(matches!(resolve_in(&[], &vars), Err(Error::Message(_))));
    }

    #[test]
    fn environment_names_follow_the_long_names() {
        let command = Args::command();
        let names: Vec<String> = settings(&command).iter().map(Setting::env_var).collect();
        for name in [
            "BINGFA_ROOT",
            "BINGFA_BIND",
            "BINGFA_HEADER_TIMEOUT",
            "BINGFA_MAX_CONNECTIONS",
            "BINGFA_IMMUTABLE_FINGERPRINTS",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
        }
        assert!(
            !names
                .iter()
                .any(|n| n == "BINGFA_PRINT_CONFIG" || n == "BINGFA_HELP"),
            "{names:?}"
        );
    }

    #[test]
    fn tls_tables_give_the_default_certificate_then_those_chosen_by_sni() {
        let text = "hsts = 60\n\n[[tls]]\ncert = \"a.pem\"\nkey = \"a.key\"\n\n[[tls]]\ncert = \"/etc/b.pem\"\nkey = \"b.key\"\n";
        let (dir, path) = config_file(text);
        let path_arg = path.to_str().unwrap();
        let resolved = ok(resolve_in(&["--config", path_arg], &[]));
        let config = resolved.config();
        // Relative to the file's folder, as ROOT is.
        assert_eq!(config.tls_cert, Some(dir.path().join("a.pem")));
        assert_eq!(config.tls_key, Some(dir.path().join("a.key")));
        assert_eq!(
            source(&resolved, "tls-cert"),
            &Source::File {
                path: path.clone(),
                line: 3
            }
        );
        assert_eq!(
            config.sni_certificates,
            [(PathBuf::from("/etc/b.pem"), dir.path().join("b.key"))]
        );
        assert_eq!(
            config.hsts,
            Some(60),
            "--hsts needs a certificate, which the tables give"
        );

        // With --tls-cert above the file, every table is one chosen by SNI.
        let resolved = ok(resolve_in(
            &["--config", path_arg, "--tls-cert", "c.pem", "--tls-key", "c.key"],
            &[],
        ));
        let config = resolved.config();
        assert_eq!(config.tls_cert, Some(PathBuf::from("c.pem")));
        assert_eq!(config.sni_certificates.len(), 2);
        assert_eq!(
            resolved.sni_certificates[1].source,
            Source::File {
                path: path.clone(),
                line: 7
            }
        );

        // --print-config writes the tables back, and reading them back means the same.
        let printed = render(&resolved, &config).unwrap();
        let (_again_dir, again) = config_file(&printed);
        let reread = ok(resolve_in(&["--config", again.to_str().unwrap()], &[])).config();
        assert_eq!(reread.tls_cert, config.tls_cert);
        assert_eq!(reread.sni_certificates, config.sni_certificates);
    }

    #[test]
    fn acme_domains_are_a_list_in_a_file_and_printed_back() {
        let text = "\
acme-domains = [\"example.com\", \"WWW.example.com\"]
acme-email = \"ops@example.com\"
state-dir = \"/var/lib/bingfa\"
redirect-http = \"127.0.0.1:8080\"
";
        let (_dir, path) = config_file(text);
        let resolved = ok(resolve_in(&["--config", path.to_str().unwrap()], &[]));
        let config = resolved.config();
        assert_eq!(config.acme_domains, ["example.com", "www.example.com"]);
        assert_eq!(config.acme_email.as_deref(), Some("ops@example.com"));
        assert_eq!(config.state_dir, Some(PathBuf::from("/var/lib/bingfa")));
        let printed = render(&resolved, &config).unwrap();
        assert!(
            printed.contains("acme-domains = [\"example.com\", \"www.example.com\"]"),
            "{printed}"
        );
        let (_again_dir, again) = config_file(&printed);
        let reread = ok(resolve_in(&["--config", again.to_str().unwrap()], &[])).config();
        assert_eq!(reread.acme_domains, config.acme_domains);
        assert_eq!(reread.acme_email, config.acme_email);
        assert_eq!(reread.acme_directory, config.acme_directory);
        assert_eq!(reread.state_dir, config.state_dir);

        // The environment names the list too; the singular key is pointed to the list.
        let env = ok(resolve_in(&[], &[("BINGFA_ACME_DOMAINS", "a.example,b.example")])).config();
        assert_eq!(env.acme_domains, ["a.example", "b.example"]);
        let (_dir, singular) = config_file("acme-domain = \"a.example\"\n");
        let error = message(resolve_in(&["--config", singular.to_str().unwrap()], &[]));
        assert!(error.contains("written 'acme-domains'"), "{error}");
    }

    #[test]
    fn a_tls_table_without_a_key_or_with_an_unknown_one_names_its_line() {
        for (table, why) in [
            ("[[tls]]\ncert = \"a.pem\"\n", "missing field `key`"),
            (
                "[[tls]]\ncert = \"a.pem\"\nkey = \"a.key\"\nnames = 1\n",
                "unknown field `names`",
            ),
            ("tls = 3\n", "invalid type"),
        ] {
            let (_dir, path) = config_file(&format!("hsts = 1\n{table}"));
            let error = message(resolve_in(&["--config", path.to_str().unwrap()], &[]));
            assert!(error.starts_with(&format!("{} line ", path.display())), "{error}");
            assert!(error.contains(why), "{error}");
        }
    }

    #[test]
    fn rules_read_from_the_file_and_printed_back_mean_the_same() {
        let text = "\
header = [\"X-Site: docs\", \"X-Content-Type-Options:\"]
cors = [\"https://A.example\", \"http://localhost:8080\"]

[[headers]]
path = \"/assets/**\"
set = { \"Cache-Control\" = \"public, max-age=31536000, immutable\", \"X-Frame-Options\" = \"DENY\", \"Access-Control-Allow-Origin\" = \"\" }

[[headers]]
path = \"/*.html\"
set = { Z-Last = \"1\", A-First = \"2\" }

[[redirects]]
from = \"/blog/:year/*\"
to = \"https://new.example/:year/:splat\"
status = 308

[[redirects]]
from = \"/app/*\"
to = \"/index.html\"
status = 200

[[redirects]]
from = \"/old\"
to = \"/new?from=old\"
";
        let (_dir, path) = config_file(text);
        let resolved = ok(resolve_in(&["--config", path.to_str().unwrap()], &[]));
        let config = resolved.config();
        let headers: Vec<String> = config.headers.iter().map(ToString::to_string).collect();
        assert_eq!(headers, ["X-Site: docs", "X-Content-Type-Options:"]);
        assert!(matches!(&config.cors, Cors::Origins(o) if o[0].as_str() == "https://a.example"));
        assert_eq!(config.header_rules.len(), 2);
        let fields: Vec<_> = config.header_rules[1].fields().collect();
        assert_eq!(
            fields,
            [("Z-Last", "1"), ("A-First", "2")],
            "in the order written"
        );
        let redirects: Vec<_> = config
            .redirects
            .iter()
            .map(|r| (r.from(), r.to(), r.status()))
            .collect();
        assert_eq!(
            redirects,
            [
                ("/blog/:year/*", "https://new.example/:year/:splat", 308),
                ("/app/*", "/index.html", 200),
                ("/old", "/new?from=old", 301)
            ]
        );
        assert_eq!(
            resolved.redirects[2].1,
            Source::File {
                path: path.clone(),
                line: 22
            }
        );

        let printed = render(&resolved, &config).unwrap();
        assert!(
            printed.contains(&format!("[[redirects]]  # {} line 17", path.display())),
            "{printed}"
        );
        let (_again_dir, again) = config_file(&printed);
        let reread = ok(resolve_in(&["--config", again.to_str().unwrap()], &[])).config();
        assert_eq!(
            format!("{:?}", reread.header_rules),
            format!("{:?}", config.header_rules)
        );
        assert_eq!(
            format!("{:?}", reread.redirects),
            format!("{:?}", config.redirects)
        );
        assert_eq!(reread.headers, config.headers);
        assert_eq!(reread.cors, config.cors);

        // The same tables for a program that made its configuration in code.
        let (_tables_dir, tables) = config_file(&rule_tables(&config).unwrap());
        let reread = ok(resolve_in(&["--config", tables.to_str().unwrap()], &[])).config();
        assert_eq!(
            format!("{:?}", reread.redirects),
            format!("{:?}", config.redirects)
        );
        assert_eq!(
            format!("{:?}", reread.header_rules),
            format!("{:?}", config.header_rules)
        );
    }

    const HOSTS: &str = "\
hidden = true
header = \"X-Top: 1\"

[[hosts]]
names = [\"Example.com\", \"www.example.com.\", \"*.example.org\"]
root = \"sites/example\"
fallback = \"index.html\"
clean-urls = true
index = \"index.htm,index.html\"
cache-control = \"public, max-age=60\"
header = [\"X-Site: example\"]
cors = \"https://a.example\"

[[hosts.headers]]
path = \"/assets/**\"
set = { \"Cache-Control\" = \"immutable\" }

[[hosts.redirects]]
from = \"/old\"
to = \"/new\"

[[hosts.auth]]
path = \"/private/**\"
users = [\"alice:$argon2id$v=19$m=19456,t=2,p=1$yhtte9h1TSUigqQCb2HJHg$TCM9Wv0yQjsOUTijQ6R7HFvOlqCGq6hllY5MdB7vado\"]

[[hosts]]
names = [\"[::1]\", \"127.0.0.1\"]
root = \"/srv/other\"
";

    #[test]
    fn hosts_are_read_with_their_own_options_and_printed_back() {
        let (dir, path) = config_file(HOSTS);
        let resolved = ok(resolve_in(&["--config", path.to_str().unwrap()], &[]));
        let config = resolved.config();
        assert!(config.hidden);
        let [example, other] = &config.hosts[..] else {
            panic!("{:?}", config.hosts);
        };
        let names: Vec<&str> = example.names.iter().map(HostName::as_str).collect();
        assert_eq!(names, ["example.com", "www.example.com", "*.example.org"]);
        assert_eq!(example.root, dir.path().join("sites/example"));
        assert_eq!(example.fallback, Some(PathBuf::from("index.html")));
        assert!(example.clean_urls);
        assert_eq!(example.index, ["index.htm", "index.html"]);
        assert_eq!(example.cache_control.as_deref(), Some("public, max-age=60"));
        assert_eq!(example.headers[0].to_string(), "X-Site: example");
        assert!(matches!(&example.cors, Cors::Origins(o) if o[0].as_str() == "https://a.example"));
        assert_eq!(example.header_rules[0].path(), "/assets/**");
        assert_eq!(example.redirects[0].to(), "/new");
        assert_eq!(example.auth[0].path(), "/private/**");
        assert!(
            other.auth.is_empty() && config.auth.is_empty(),
            "a host's auth is its own"
        );
        // Not inherited: what a table does not set has its default, not the top level's.
        assert!(!example.hidden && !other.hidden);
        assert!(other.headers.is_empty() && other.header_rules.is_empty());
        assert_eq!(other.root, PathBuf::from("/srv/other"));
        assert_eq!(
            resolved.hosts[0].redirect_sources[0],
            Source::File {
                path: path.clone(),
                line: 18
            }
        );

        let printed = render(&resolved, &config).unwrap();
        assert!(
            printed.contains(&format!("[[hosts]]  # {} line 4", path.display())),
            "{printed}"
        );
        assert!(printed.contains("[[hosts.redirects]]"), "{printed}");
        assert!(printed.contains("[[hosts.auth]]"), "{printed}");
        let (_again_dir, again) = config_file(&printed);
        let reread = ok(resolve_in(&["--config", again.to_str().unwrap()], &[])).config();
        assert_eq!(format!("{:?}", reread.hosts), format!("{:?}", config.hosts));
        let (_tables_dir, tables) = config_file(&rule_tables(&config).unwrap());
        let reread = ok(resolve_in(&["--config", tables.to_str().unwrap()], &[])).config();
        assert_eq!(format!("{:?}", reread.hosts), format!("{:?}", config.hosts));
    }

    #[test]
    fn a_bad_host_table_names_its_file_and_line() {
        let table = |rest: &str| format!("[[hosts]]\nnames = [\"a.example\"]\nroot = \"a\"\n{rest}");
        for (text, line, words) in [
            (
                "[[hosts]]\nroot = \"a\"\n".to_string(),
                1,
                "missing field `names`",
            ),
            (
                "[[hosts]]\nnames = [\"a.example\"]\n".to_string(),
                1,
                "missing field `root`",
            ),
            (
                "[[hosts]]\nnames = []\nroot = \"a\"\n".to_string(),
                2,
                "hosts: names: list at least one",
            ),
            (
                "[[hosts]]\nnames = \"a.example\"\nroot = \"a\"\n".to_string(),
                2,
                "invalid type",
            ),
            (
                "[[hosts]]\nnames = [\"a.example:80\"]\nroot = \"a\"\n".to_string(),
                2,
                "hosts: names: 'a.example:80' is not a host name: a host name has no port",
            ),
            (
                "[[hosts]]\nnames = [\"a.*.example\"]\nroot = \"a\"\n".to_string(),
                2,
                "is not a host name: a wildcard",
            ),
            (
                table("listing = \"yes\"\n"),
                4,
                "hosts: listing: expected true or false",
            ),
            (
                table("index = \"../x\"\n"),
                4,
                "hosts: index: index file name '../x' is a path",
            ),
            (
                table("header = [\"Bad Name: x\"]\n"),
                4,
                "hosts: header: invalid value",
            ),
            (table("model = \"epoll\"\n"), 4, "unknown field `model`"),
            (
                table("\n[[hosts.headers]]\npath = \"a\"\nset = {}\n"),
                6,
                "headers: path: a path pattern starts with '/'",
            ),
            (
                table("\n[[hosts.redirects]]\nfrom = \"/a\"\nto = \"/b\"\nstatus = 404\n"),
                8,
                "redirects: status must be",
            ),
            (
                format!("{}\n{}", table(""), table("").replace("a.example", "A.example")),
                5,
                "hosts: the name a.example is also the table's at",
            ),
        ] {
            let (_dir, path) = config_file(&format!("# hosts\n\n{text}"));
            let error = message(resolve_in(&["--config", path.to_str().unwrap()], &[]));
            let prefix = format!("{} line {}: ", path.display(), line + 2);
            assert!(error.starts_with(&prefix), "{text}: {error}");
            assert!(error.contains(words), "{text}: {error}");
            assert!(!error.contains('\n'), "{text}: {error}");
        }
    }

    #[test]
    fn cors_for_any_origin_and_one_header_as_a_string() {
        for (text, printed) in [
            ("cors = \"*\"\nheader = \"X-A: 1\"\n", "cors = \"*\""),
            ("cors = [\"https://a.example\", \"*\"]\n", "cors = \"*\""),
            ("cors = \"https://a.example\"\n", "cors = [\"https://a.example\"]"),
        ] {
            let (_dir, path) = config_file(text);
            let resolved = ok(resolve_in(&["--config", path.to_str().unwrap()], &[]));
            let config = resolved.config();
            let out = render(&resolved, &config).unwrap();
            assert!(out.contains(printed), "{text}: {out}");
            let (_again_dir, again) = config_file(&out);
            let reread = ok(resolve_in(&["--config", again.to_str().unwrap()], &[])).config();
            assert_eq!(reread.cors, config.cors, "{text}");
            assert_eq!(reread.headers, config.headers, "{text}");
        }
        // --cors alone does not take ROOT as its origin.
        let resolved = ok(resolve_in(&["--cors", "site"], &[]));
        assert_eq!(resolved.config().cors, Cors::AnyOrigin);
        assert_eq!(resolved.args.root, PathBuf::from("site"));
        let resolved = ok(resolve_in(
            &["--cors=https://a.example", "--cors=https://b.example"],
            &[],
        ));
        assert!(matches!(resolved.config().cors, Cors::Origins(o) if o.len() == 2));
    }

    #[test]
    fn a_bad_rule_names_its_file_and_line() {
        for (text, line, words) in [
            (
                "header = [\"Bad Name: x\"]\n",
                1,
                "header: invalid value 'Bad Name: x': \"Bad Name\" is not a valid header field name",
            ),
            (
                "header = \"X-A: a\\u0001b\"\n",
                1,
                "the value of X-A is not valid header field content",
            ),
            (
                "header = \"Content-Length: 1\"\n",
                1,
                "Content-Length is set by the server itself",
            ),
            (
                "cors = [\"https://a.example/\"]\n",
                1,
                "cors: expected * or an origin",
            ),
            (
                "[[headers]]\npath = \"assets/**\"\nset = {}\n",
                2,
                "headers: path: a path pattern starts with '/'",
            ),
            (
                "[[headers]]\npath = \"/a**\"\nset = {}\n",
                2,
                "headers: path: '**' must be a whole segment",
            ),
            (
                "[[headers]]\npath = \"/a\"\nset = { A = \"1\", \"B C\" = \"2\" }\n",
                3,
                "headers: \"B C\" is not a valid header field name",
            ),
            (
                "[[headers]]\npath = \"/a\"\n\n[headers.set]\nX-A = \"1\"\nLocation = \"/x\"\n",
                6,
                "headers: Location is set by the server itself",
            ),
            (
                "[[headers]]\npath = \"/a\"\nset = { X = \"a\\nb\" }\n",
                3,
                "headers: the value of X is not valid",
            ),
            ("[[headers]]\npath = \"/a\"\n", 1, "missing field `set`"),
            ("[[headers]]\npath = \"/a\"\nset = { X = 1 }\n", 3, "invalid type"),
            (
                "[[redirects]]\nfrom = \"/a\"\nto = \"/b\"\nstatus = 404\n",
                4,
                "redirects: status must be 301, 302, 303, 307, 308, or 200",
            ),
            (
                "[[redirects]]\nfrom = \"a\"\nto = \"/b\"\n",
                2,
                "redirects: 'from' must be a path starting with '/'",
            ),
            (
                "[[redirects]]\nfrom = \"/a/:x\"\nto = \"/b/:y\"\n",
                3,
                "redirects: ':y' is not a name 'from' captures",
            ),
            (
                "[[redirects]]\nfrom = \"/a\"\nto = \"//evil.example/\"\n",
                3,
                "redirects: 'to' must be a path starting with one '/'",
            ),
            (
                "[[redirects]]\nfrom = \"/a\"\nto = \"/b\"\nstatus = \"301\"\n",
                4,
                "invalid type",
            ),
            (
                "[[redirects]]\nfrom = \"/a\"\nto = \"/b\"\ncode = 301\n",
                4,
                "unknown field `code`",
            ),
        ] {
            let (_dir, path) = config_file(&format!("# rules\n\n{text}"));
            let error = message(resolve_in(&["--config", path.to_str().unwrap()], &[]));
            let prefix = format!("{} line {}: ", path.display(), line + 2);
            assert!(error.starts_with(&prefix), "{text}: {error}");
            assert!(error.contains(words), "{text}: {error}");
            assert!(!error.contains('\n'), "{text}: {error}");
        }
    }

    /// `[[auth]]` tables with a bcrypt hash (cost 4) and an argon2 one (64 KiB, one pass).
    fn auth_text() -> (String, String, String) {
        let bcrypt = bcrypt::hash("builder", 4).unwrap();
        let argon2 = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$ZmFrZWhhc2hmYWtlaGFzaGZha2VoYXNoZmFrZQ";
        let text = format!(
            "listing = true\n\n[[auth]]\npath = \"/private/**\"\nrealm = \"staff\"\nusers = [\"alice:{argon2}\", \"bob:{bcrypt}\"]\n\n[[auth]]\npath = \"/team/*.html\"\nusers = [\n  \"carol:{bcrypt}\",\n]\n"
        );
        (text, argon2.to_owned(), bcrypt)
    }

    #[test]
    fn auth_tables_read_from_the_file_and_printed_back_mean_the_same() {
        let (text, argon2, bcrypt) = auth_text();
        let (_dir, path) = config_file(&text);
        let resolved = ok(resolve_in(&["--config", path.to_str().unwrap()], &[]));
        let config = resolved.config();
        let tables: Vec<(&str, &str, Vec<&str>)> = config
            .auth
            .iter()
            .map(|rule| (rule.path(), rule.realm(), rule.users().collect()))
            .collect();
        let (alice, bob, carol) = (
            format!("alice:{argon2}"),
            format!("bob:{bcrypt}"),
            format!("carol:{bcrypt}"),
        );
        assert_eq!(
            tables,
            [
                ("/private/**", "staff", vec![&*alice, &*bob]),
                ("/team/*.html", DEFAULT_REALM, vec![&*carol]),
            ]
        );
        assert_eq!(
            resolved.auth[1].1,
            Source::File {
                path: path.clone(),
                line: 8
            }
        );
        let printed = render(&resolved, &config).unwrap();
        assert!(
            printed.contains(&format!("[[auth]]  # {} line 3", path.display())),
            "{printed}"
        );
        let (_again_dir, again) = config_file(&printed);
        let reread = ok(resolve_in(&["--config", again.to_str().unwrap()], &[])).config();
        assert_eq!(format!("{:?}", reread.auth), format!("{:?}", config.auth));
        // The same tables for a program that made its configuration in code.
        let (_tables_dir, tables) = config_file(&rule_tables(&config).unwrap());
        let reread = ok(resolve_in(&["--config", tables.to_str().unwrap()], &[])).config();
        assert_eq!(format!("{:?}", reread.auth), format!("{:?}", config.auth));
    }

    #[test]
    fn a_bad_auth_table_names_its_file_and_line() {
        let bcrypt = bcrypt::hash("x", 4).unwrap();
        for (table, line, why) in [
            (
                format!("[[auth]]\npath = \"/a\"\nusers = [\n  \"alice:{bcrypt}\",\n  \"bob:secret\",\n]\n"),
                5,
                "auth: users: the password of 'bob' must be a bcrypt or argon2 hash",
            ),
            (
                "[[auth]]\npath = \"/a\"\nusers = [\"bob:$md5$abc\"]\n".to_owned(),
                3,
                "auth: users: the hash of 'bob': unknown scheme",
            ),
            (
                "[[auth]]\npath = \"/a\"\nusers = [\"bob:$2b$12$short\"]\n".to_owned(),
                3,
                "auth: users: the hash of 'bob': not a valid bcrypt hash",
            ),
            (
                format!("[[auth]]\npath = \"/a\"\nusers = [\"b:ob:{bcrypt}\"]\n"),
                3,
                "auth: users: 'b:ob' is no user name",
            ),
            (
                format!("[[auth]]\npath = \"a/**\"\nusers = [\"bob:{bcrypt}\"]\n"),
                2,
                "auth: path: a path pattern starts with '/'",
            ),
            (
                format!("[[auth]]\npath = \"/a\"\nrealm = \"say \\\"hi\\\"\"\nusers = [\"bob:{bcrypt}\"]\n"),
                3,
                "auth: realm: expected printable ASCII",
            ),
            (
                "[[auth]]\npath = \"/a\"\nusers = []\n".to_owned(),
                3,
                "auth: users: expected at least one",
            ),
            ("[[auth]]\npath = \"/a\"\n".to_owned(), 1, "missing field `users`"),
            (
                format!("[[auth]]\npath = \"/a\"\nusers = [\"bob:{bcrypt}\"]\npassword = 1\n"),
                4,
                "unknown field `password`",
            ),
        ] {
            let (_dir, path) = config_file(&format!("# auth\n\n{table}"));
            let error = message(resolve_in(&["--config", path.to_str().unwrap()], &[]));
            let prefix = format!("{} line {}: ", path.display(), line + 2);
            assert!(error.starts_with(&prefix), "{table}: {error}");
            assert!(error.contains(why), "{table}: {error}");
            assert!(!error.contains("secret"), "a password is never shown: {error}");
            assert!(!error.contains('\n'), "{error}");
        }
    }
}
