//! The command line: `bingfa [OPTIONS] [ROOT]`, and what is generated from its definition
//! (shell completions, the man page). `config` layers the environment and a `--config` file
//! beneath it.

pub mod config;
pub mod health;

use crate::models::Model;
use crate::net::Address;
use crate::observe::{LogFormat, LogLevel};
use crate::server::{check_index_name, AllowOrigin, Cidr, Config, Cors, HeaderField, HostName, LETS_ENCRYPT};
use clap::{CommandFactory, Parser};
use clap_complete::Shell;
use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// Shown under the options in `--help` and in the man page.
const AFTER_HELP: &str = "\
Configuration: every option can also be set in a TOML file given with --config FILE
(or BINGFA_CONFIG), whose keys are the long option names and root:
    root = \"site\"    # relative to the file's folder
    header-timeout = 5
    hidden = true
or in the environment, as BINGFA_ and the name in capitals with _ for -:
    BINGFA_MODEL=epoll  BINGFA_HEADER_TIMEOUT=5  BINGFA_HIDDEN=1  BINGFA_ROOT=site
The command line wins over the environment, which wins over the file;
--print-config shows the result.";

/// `AFTER_HELP` for the man page, where roff fills lines into paragraphs: indented examples
/// would run into the text after them.
const MAN_AFTER_HELP: &str = "\
Every option can also be set in a TOML file given with --config FILE (or the BINGFA_CONFIG \
environment variable), whose keys are the long option names and root, for example \
header-timeout = 5, hidden = true, root = \"site\" (a relative root is taken from the \
file's folder); or in the environment, as BINGFA_ and the option name in capitals with _ for \
-, for example BINGFA_MODEL=epoll, BINGFA_HEADER_TIMEOUT=5, BINGFA_HIDDEN=1 (true, false, 1 \
or 0), BINGFA_ROOT=site. The command line wins over the environment, which wins over the \
file; --print-config prints the result as TOML that --config reads back.";

/// A static-file HTTP/1.1 server whose concurrency model you choose.
#[derive(Debug, Parser)]
#[command(name = "bingfa", version, about, after_help = AFTER_HELP)]
#[command(group = clap::ArgGroup::new("https").args(["tls_cert", "acme_domain"]).multiple(true))]
pub struct Args {
    /// The folder to serve
    #[arg(default_value = ".")]
    pub root: PathBuf,

    /// Address to listen on: IP:PORT, [IPv6]:PORT, HOST:PORT or unix:PATH (not used when systemd passes a socket)
    #[arg(short, long, value_name = "ADDR", default_value = "127.0.0.1:8000", value_parser = parse_address)]
    pub bind: Address,

    /// Concurrency model
    #[arg(short, long, value_name = "NAME", value_enum, default_value_t = Model::Reactor)]
    pub model: Model,

    /// Worker threads for models that have several [default: the number of cores]
    #[arg(short, long, value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: Option<u16>,

    /// Close a connection whose request head takes longer than this (fractions allowed: 0.5)
    #[arg(long, value_name = "SECS", allow_negative_numbers = true, default_value = "10", value_parser = parse_seconds)]
    pub header_timeout: Duration,

    /// Close a keep-alive connection idle for longer than this
    #[arg(long, value_name = "SECS", allow_negative_numbers = true, default_value = "60", value_parser = parse_seconds)]
    pub idle_timeout: Duration,

    /// Drop a client that takes no response data for this long
    #[arg(long, value_name = "SECS", allow_negative_numbers = true, default_value = "60", value_parser = parse_seconds)]
    pub send_timeout: Duration,

    /// Minimum bytes per second while a request arrives, after a 2 s grace (0: off)
    #[arg(
        long,
        value_name = "BYTES",
        allow_negative_numbers = true,
        default_value_t = 500
    )]
    pub min_rate: u64,

    /// On SIGTERM/SIGINT, time allowed for responses in flight before they are cut
    #[arg(long, value_name = "SECS", allow_negative_numbers = true, default_value = "30", value_parser = parse_seconds)]
    pub shutdown_timeout: Duration,

    /// On SIGTERM/SIGINT, serve on this long first, /healthz saying 503 draining and every response closing its connection, so a load balancer moves clients elsewhere [at most --shutdown-timeout]
    #[arg(long, value_name = "SECS", allow_negative_numbers = true, default_value = "0", value_parser = parse_seconds_or_zero)]
    pub drain_delay: Duration,

    /// Answer connections beyond this many with 503 [default: from the open-file limit]
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,

    /// HTTP/2: requests one connection may have in flight at once
    #[arg(long, value_name = "N", allow_negative_numbers = true, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..))]
    pub h2_max_streams: u32,

    /// Serve dotfiles and dot-directories (hidden by default)
    #[arg(long)]
    pub hidden: bool,

    /// List directories that have no index file (HTML, or JSON for `Accept: application/json`)
    #[arg(long)]
    pub listing: bool,

    /// Page served with status 404 for missing files, a path inside ROOT [default: 404.html if present]
    #[arg(long, value_name = "PATH")]
    pub error_page: Option<PathBuf>,

    /// Answer a GET that would be a 404 with this page (inside ROOT) and 200, for single-page apps; not for paths whose last segment has an extension other than .html
    #[arg(long, value_name = "PATH")]
    pub fallback: Option<PathBuf>,

    /// Serve /about from about.html, and redirect /about.html to /about (308)
    #[arg(long)]
    pub clean_urls: bool,

    /// A directory's index file names, comma-separated, tried in order
    #[arg(long, value_name = "NAMES", default_value = "index.html", value_parser = parse_index_names)]
    pub index: IndexNames,

    /// Cache-Control header for every file, e.g. "public, max-age=3600"
    #[arg(long, value_name = "VALUE", value_parser = parse_header_value)]
    pub cache_control: Option<String>,

    /// Cache files whose names carry a content hash (app.3f9a1c2b.js) for a year, immutable
    #[arg(long)]
    pub immutable_fingerprints: bool,

    /// Leave out `X-Content-Type-Options: nosniff`, sent on every response by default
    #[arg(long)]
    pub no_nosniff: bool,

    /// Add this header field to every response ('Name: value'; 'Name:' removes the server's own), repeatable
    #[arg(long, value_name = "NAME: VALUE", value_parser = parse_header_field)]
    pub header: Vec<HeaderField>,

    /// Let scripts of other origins read the site: --cors for any, --cors=ORIGIN (repeatable) for those
    #[arg(
        long,
        value_name = "ORIGIN",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "*",
        value_parser = parse_allowed_origin
    )]
    pub cors: Vec<AllowOrigin>,

    /// Serve a small file from memory for this long before looking it up again (0: every request)
    #[arg(long, value_name = "SECS", allow_negative_numbers = true, default_value = "1", value_parser = parse_seconds_or_zero)]
    pub file_cache_valid: Duration,

    /// Compress text, JavaScript, JSON, SVG, XML and wasm files that have no .br/.zst/.gz sibling, in the background, and keep the results in memory
    #[arg(long)]
    pub compress: bool,

    /// Largest file --compress compresses (bytes, or with K, M or G: powers of 1024, as 512KiB or 8M)
    #[arg(long, value_name = "SIZE", default_value = "8MiB", value_parser = parse_size)]
    pub compress_max: u64,

    /// Memory for the files --compress compressed, least recently used out (SIZE as for --compress-max)
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size)]
    pub compress_cache: u64,

    /// Log each request to this file (appended to, reopened on SIGHUP), or to stdout for -
    #[arg(long, value_name = "PATH")]
    pub access_log: Option<PathBuf>,

    /// Format of the access-log lines
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = LogFormat::Combined)]
    pub log_format: LogFormat,

    /// Least severe event written to stderr (info: the lifecycle; error: errors only)
    #[arg(long, value_name = "LEVEL", value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,

    /// Say on stderr what the concurrency model does (accept, fork, epoll_wait, would-block...), at most 20 lines a second: to watch a model work
    #[arg(long)]
    pub trace_model: bool,

    /// Serve Prometheus metrics at http://ADDR/metrics and a health check at /healthz
    #[arg(long, value_name = "ADDR", value_parser = parse_tcp_address)]
    pub metrics: Option<SocketAddr>,

    /// Serve HTTPS with this certificate chain (PEM), with --tls-key
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM: RSA, ECDSA P-256/P-384 or Ed25519) of --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Strict-Transport-Security: max-age=SECONDS on every HTTPS response
    #[arg(long, value_name = "SECONDS", requires = "https")]
    pub hsts: Option<u64>,

    /// Listen for plaintext HTTP here too, answering each request with 308 to https (and ACME's HTTP-01 challenges)
    #[arg(long, value_name = "ADDR", value_parser = parse_tcp_address, requires = "https")]
    pub redirect_http: Option<SocketAddr>,

    /// Automatic HTTPS: obtain a certificate for NAME from an ACME CA, renew it, and serve HTTPS with it on --bind; repeatable (a file lists them: acme-domains = [...])
    #[arg(
        long,
        value_name = "NAME",
        alias = "acme-domains",
        value_delimiter = ',',
        value_parser = parse_acme_domain,
        conflicts_with_all = ["tls_cert", "tls_key"]
    )]
    pub acme_domain: Vec<String>,

    /// The ACME account's contact address, for the CA's notices (expiry, policy)
    #[arg(long, value_name = "ADDR", value_parser = parse_email, requires = "acme_domain")]
    pub acme_email: Option<String>,

    /// The ACME CA's directory URL; to try things out, Let's Encrypt's staging one: https://acme-staging-v02.api.letsencrypt.org/directory
    #[arg(long, value_name = "URL", default_value = LETS_ENCRYPT, value_parser = parse_directory_url)]
    pub acme_directory: String,

    /// Trust the ACME CA's HTTPS by the root certificates in this PEM file (a private or test CA)
    #[arg(long, value_name = "FILE", requires = "acme_domain")]
    pub acme_ca_root: Option<PathBuf>,

    /// Where automatic HTTPS keeps its account and certificates (made 0700) [default: $XDG_STATE_HOME/bingfa, else ~/.local/state/bingfa]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    // For the tests only, which cannot wait for a third of a certificate's lifetime: renew
    // with this many seconds of it left instead.
    #[arg(long, value_name = "SECS", hide = true, requires = "acme_domain", value_parser = parse_seconds)]
    pub acme_renew_before: Option<Duration>,

    /// Every connection opens with a PROXY protocol header (v1 or v2, as HAProxy's send-proxy sends) naming the client; only from --trusted-proxies (and any Unix socket client), others are refused
    #[arg(long)]
    pub proxy_protocol: bool,

    /// Sources trusted to name the client: by a PROXY header, and by Forwarded or X-Forwarded-For in the access log (rightmost address that is not one of them)
    #[arg(long, value_name = "CIDR,...", value_delimiter = ',', default_value = "127.0.0.0/8,::1/128", value_parser = clap::value_parser!(Cidr))]
    pub trusted_proxies: Vec<Cidr>,

    // The options below steer the program rather than the server; `config::META` keeps them
    // out of files and the environment (but BINGFA_CONFIG names a file).
    /// Read options from this TOML file; the environment and the command line override it
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print the effective configuration as TOML (which --config reads back) and exit
    #[arg(long)]
    pub print_config: bool,

    /// Print a completion script for SHELL and exit
    #[arg(long, value_name = "SHELL", conflicts_with = "man")]
    pub completions: Option<Shell>,

    /// Print the man page (roff) and exit
    #[arg(long)]
    pub man: bool,

    /// Read a password (one line) from stdin, print its argon2id hash for [[auth]] and exit
    #[arg(long, conflicts_with_all = ["man", "completions"])]
    pub hash_password: bool,

    /// GET URL (normally http://METRICS/healthz) and exit 0 if it answers 200, 1 otherwise
    #[arg(long, value_name = "URL")]
    pub health_check: Option<String>,
}

impl Args {
    pub fn config(&self) -> Config {
        let mut config = Config::new(&self.root);
        config.model = self.model;
        if let Some(workers) = self.workers {
            config.workers = usize::from(workers);
        }
        config.header_timeout = self.header_timeout;
        config.idle_timeout = self.idle_timeout;
        config.send_timeout = self.send_timeout;
        config.min_rate = self.min_rate;
        config.shutdown_timeout = self.shutdown_timeout;
        config.drain_delay = self.drain_delay;
        if let Some(max) = self.max_connections {
            config.max_connections = usize::try_from(max).unwrap_or(usize::MAX);
        }
        config.h2_max_streams = self.h2_max_streams;
        config.hidden = self.hidden;
        config.listing = self.listing;
        config.error_page = self.error_page.clone();
        config.fallback = self.fallback.clone();
        config.clean_urls = self.clean_urls;
        config.index = self.index.0.clone();
        config.cache_control = self.cache_control.clone();
        config.immutable_fingerprints = self.immutable_fingerprints;
        config.nosniff = !self.no_nosniff;
        config.file_cache_valid = self.file_cache_valid;
        config.compress = self.compress;
        config.compress_max = self.compress_max;
        config.compress_cache = self.compress_cache;
        config.headers = self.header.clone();
        config.cors = Cors::new(self.cors.iter().cloned());
        config.access_log = self.access_log.clone();
        config.log_format = self.log_format;
        config.trace_model = self.trace_model;
        config.metrics = self.metrics;
        config.tls_cert = self.tls_cert.clone();
        config.tls_key = self.tls_key.clone();
        config.hsts = self.hsts;
        config.redirect_http = self.redirect_http;
        config.acme_domains = self.acme_domain.clone();
        config.acme_email = self.acme_email.clone();
        config.acme_directory = self.acme_directory.clone();
        config.acme_ca_root = self.acme_ca_root.clone();
        config.state_dir = self.state_dir.clone();
        config.acme_renew_before = self.acme_renew_before;
        config.proxy_protocol = self.proxy_protocol;
        config.trusted_proxies = self.trusted_proxies.clone();
        config
    }
}

/// The completion script for `shell`, generated from the clap definition.
pub fn completions(shell: Shell) -> Vec<u8> {
    // Into memory first: clap_complete panics on a write error, such as a closed pipe.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Args::command(), "bingfa", &mut script);
    script
}

/// The man page, in roff, generated from the clap definition.
pub fn man_page() -> io::Result<Vec<u8>> {
    let mut page = Vec::new();
    let command = Args::command().after_help(MAN_AFTER_HELP);
    clap_mangen::Man::new(command).render(&mut page)?;
    Ok(page)
}

/// `--hash-password`: the first line of `input`, without its line ending, as an argon2id PHC
/// string with a newline, for a `users` entry of `[[auth]]` (`"alice:$argon2id$..."`).
pub fn hash_password_from(mut input: impl io::BufRead) -> Result<String, String> {
    let mut line = zeroize::Zeroizing::new(String::new());
    input
        .read_line(&mut line)
        .map_err(|e| format!("reading the password from stdin: {e}"))?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err("no password on stdin (one line: the password)".to_owned());
    }
    let hash = crate::server::hash_password(password.as_bytes())?;
    Ok(format!("{hash}\n"))
}

/// Writes `bytes` to stdout. A reader that went away early (`bingfa --man | head`) is no
/// failure: it has what it wanted.
pub fn print(bytes: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e),
        _ => Ok(()),
    }
}

/// A positive number of seconds, whole or not: `10`, `0.3`.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("expected a number of seconds, got '{text}'"))?;
    if seconds > 0.0 && seconds <= 1e9 {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(format!("expected seconds above 0 and at most 1e9, got '{text}'"))
    }
}

/// Seconds as for [`parse_seconds`], or 0 to turn something off.
fn parse_seconds_or_zero(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(0.0) => Ok(Duration::ZERO),
        _ => parse_seconds(text),
    }
}

/// A number of bytes: `1048576`, or with a unit that is a power of 1024 however it is written
/// (`512K`, `512KB`, `512KiB`, `8m`, `1G`), as nginx reads sizes; a `B` alone means bytes.
fn parse_size(text: &str) -> Result<u64, String> {
    let expected = || format!("expected bytes, or a whole number with K, M or G (512KiB, 8M), got '{text}'");
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &text[digits.len()..];
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(expected()),
    };
    // Digits only: no sign, no space, no fraction.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(expected());
    }
    let number: u64 = digits.parse().map_err(|_| expected())?;
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("'{text}' is too large"))
}

/// A size as [`parse_size`] reads it back: in the largest unit that divides it (`8MiB`).
pub fn format_size(bytes: u64) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes != 0 && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// A header value as RFC 9110 §5.5 allows it: visible ASCII, spaces and tabs, not empty.
fn parse_header_value(text: &str) -> Result<String, String> {
    let valid = !text.trim().is_empty()
        && text
            .bytes()
            .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic());
    if valid {
        Ok(text.trim().to_string())
    } else {
        Err(format!("not a valid header value: '{}'", text.escape_debug()))
    }
}

/// `--index`: file names, in the order they are tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexNames(pub Vec<String>);

/// `index.html,index.htm`: each a file name the root accepts as an index name.
fn parse_index_names(text: &str) -> Result<IndexNames, String> {
    let names: Vec<String> = text.split(',').map(|name| name.trim().to_string()).collect();
    for name in &names {
        check_index_name(name).map_err(|why| format!("index file name '{name}' {why}"))?;
    }
    Ok(IndexNames(names))
}

/// `Name: value`, a valid field the server lets a site add (not framing, not `Location`).
fn parse_header_field(text: &str) -> Result<HeaderField, String> {
    text.parse()
}

/// `*` or an origin: `https://example.com`, `http://localhost:8080`.
fn parse_allowed_origin(text: &str) -> Result<AllowOrigin, String> {
    text.parse()
}

/// An address as `Address` parses it, or a host name and port, resolved.
fn parse_address(text: &str) -> Result<Address, String> {
    let literal = text.parse::<Address>();
    if literal.is_ok() || text.starts_with("unix:") {
        return literal;
    }
    let mut resolved = text
        .to_socket_addrs()
        .map_err(|_| format!("expected IP:PORT, [IPv6]:PORT, HOST:PORT or unix:PATH, got '{text}'"))?;
    resolved
        .next()
        .map(Address::Tcp)
        .ok_or_else(|| format!("'{text}' resolves to no address"))
}

/// A TCP address only (the metrics listener): IP:PORT, [IPv6]:PORT or HOST:PORT.
/// `--acme-domain`: a DNS name (lowercased), which HTTP-01 or TLS-ALPN-01 can prove; not a
/// wildcard (DNS-01 only) nor an IP address.
fn parse_acme_domain(text: &str) -> Result<String, String> {
    let name = HostName::new(text).map_err(|e| e.to_string())?;
    let name = name.as_str();
    if name.starts_with("*.") {
        return Err(format!(
            "'{text}' is a wildcard, which only ACME's DNS-01 challenge proves, and bingfa answers HTTP-01 and TLS-ALPN-01"
        ));
    }
    if name.starts_with('[') || name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(format!(
            "'{text}' is an IP address; automatic HTTPS is for DNS names"
        ));
    }
    Ok(name.to_string())
}

/// `--acme-email`: an address the CA can write to (`mailto:` is added).
fn parse_email(text: &str) -> Result<String, String> {
    let valid = matches!(text.split_once('@'), Some((user, domain))
        if !user.is_empty() && domain.contains('.') && !domain.contains('@'))
        && !text.contains(|c: char| c.is_whitespace() || c == ',' || c.is_control());
    if valid {
        Ok(text.to_string())
    } else {
        Err(format!("expected an email address, got '{text}'"))
    }
}

/// `--acme-directory`: an https URL (RFC 8555 speaks only HTTPS).
fn parse_directory_url(text: &str) -> Result<String, String> {
    let valid = text.strip_prefix("https://").is_some_and(|rest| {
        !rest.is_empty() && !rest.contains(|c: char| c.is_whitespace() || c.is_control())
    });
    if valid {
        Ok(text.to_string())
    } else {
        Err(format!("expected an https:// URL, got '{text}'"))
    }
}

fn parse_tcp_address(text: &str) -> Result<SocketAddr, String> {
    match parse_address(text)? {
        Address::Tcp(addr) => Ok(addr),
        Address::Unix(_) => Err(format!(
            "expected IP:PORT, [IPv6]:PORT or HOST:PORT, got '{text}'"
        )),
    }
}

/// A clap error as one line: its first line, plus the possible values if it lists them.
pub fn one_line(error: &clap::Error) -> String {
    let text = error.render().to_string();
    let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
    let first = lines.next().unwrap_or("error: invalid command line");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // "the following required arguments were not provided:" lists them on the next lines.
    if first.ends_with(':') {
        let missing: Vec<&str> = lines.take_while(|line| !line.starts_with("Usage:")).collect();
        return format!("{first} {}", missing.join(", "));
    }
    match lines.find(|line| line.starts_with("[possible values:")) {
        Some(values) => format!("{first} {values}"),
        None => first.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::LETS_ENCRYPT_STAGING;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("bingfa").chain(args.iter().copied()))
    }

    #[test]
    fn a_missing_companion_option_is_named_on_the_one_line() {
        let error = parse(&["--tls-cert", "c.pem"]).unwrap_err();
        assert_eq!(
            one_line(&error),
            "the following required arguments were not provided: --tls-key <FILE>"
        );
    }

    #[test]
    fn acme_domains_are_dns_names_and_stand_for_tls_cert() {
        let args = parse(&[
            "--acme-domain",
            "Example.COM",
            "--acme-domain=b.example,c.example",
        ])
        .unwrap();
        let config = args.config();
        assert_eq!(config.acme_domains, ["example.com", "b.example", "c.example"]);
        assert_eq!(config.acme_directory, LETS_ENCRYPT);
        for (name, why) in [
            ("*.example.com", "wildcard"),
            ("192.0.2.1", "IP address"),
            ("[::1]", "IP address"),
            ("a..b", "not a host name"),
        ] {
            let error = one_line(&parse(&["--acme-domain", name]).unwrap_err());
            assert!(error.contains(why), "{name}: {error}");
        }
        // HTTPS by either means, never both.
        assert!(parse(&[
            "--acme-domain",
            "a.example",
            "--redirect-http",
            "127.0.0.1:80",
            "--hsts",
            "60"
        ])
        .is_ok());
        assert!(parse(&["--redirect-http", "127.0.0.1:80"]).is_err());
        let both = parse(&["--acme-domain", "a.example", "--tls-cert", "c", "--tls-key", "k"]);
        assert!(one_line(&both.unwrap_err()).contains("cannot be used with"));
        assert!(
            parse(&["--acme-email", "a@example.com"]).is_err(),
            "no domain, no email"
        );
    }

    #[test]
    fn acme_email_and_directory_are_checked() {
        let ok = |args: &[&str]| parse(&[&["--acme-domain", "a.example"], args].concat()).map(|a| a.config());
        let config = ok(&[
            "--acme-email",
            "ops@example.com",
            "--acme-directory",
            LETS_ENCRYPT_STAGING,
        ])
        .unwrap();
        assert_eq!(config.acme_email.as_deref(), Some("ops@example.com"));
        assert_eq!(config.acme_directory, LETS_ENCRYPT_STAGING);
        for bad in [
            ["--acme-email", "ops"],
            ["--acme-email", "a b@example.com"],
            ["--acme-directory", "http://ca.example/dir"],
        ] {
            assert!(ok(&bad).is_err(), "{bad:?}");
        }
        let renew = ok(&["--acme-renew-before", "30"]).unwrap();
        assert_eq!(renew.acme_renew_before, Some(Duration::from_secs(30)));
    }

    #[test]
    fn defaults() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.root, PathBuf::from("."));
        assert_eq!(args.bind, "127.0.0.1:8000".parse().unwrap());
        assert_eq!(args.model, Model::Reactor);
        let config = args.config();
        assert_eq!(config.header_timeout, Duration::from_secs(10));
        assert_eq!(config.idle_timeout, Duration::from_secs(60));
        assert!(config.workers >= 1);
        assert!(!config.hidden);
    }

    #[test]
    fn options() {
        let args = parse(&["-b", "[::1]:9000", "-m", "epoll", "-w", "3", "--hidden", "site"]).unwrap();
        assert_eq!(args.bind, "[::1]:9000".parse().unwrap());
        assert_eq!(args.config().model, Model::Epoll);
        assert_eq!(args.config().workers, 3);
        assert!(args.config().hidden);
        assert_eq!(args.root, PathBuf::from("site"));
        let args = parse(&["--header-timeout", "0.25", "--idle-timeout", "2"]).unwrap();
        assert_eq!(args.config().header_timeout, Duration::from_millis(250));
        assert_eq!(args.config().idle_timeout, Duration::from_secs(2));
        assert_eq!(parse(&["-m", "coroutine"]).unwrap().model, Model::Async);
    }

    #[test]
    fn index_names_are_a_list_of_file_names() {
        assert_eq!(parse(&[]).unwrap().config().index, ["index.html"]);
        let args = parse(&["--index", "index.html, index.htm,default.html"]).unwrap();
        assert_eq!(args.config().index, ["index.html", "index.htm", "default.html"]);
        let error = parse(&["--index", "index.html,../x"]).unwrap_err();
        assert!(one_line(&error).contains("'../x'"), "{}", one_line(&error));
    }

    #[test]
    fn bind_takes_a_unix_socket_path() {
        let args = parse(&["-b", "unix:/run/bingfa.sock"]).unwrap();
        assert_eq!(args.bind, Address::Unix(PathBuf::from("/run/bingfa.sock")));
        assert_eq!(args.bind.to_string(), "unix:/run/bingfa.sock");
        let args = parse(&["--bind", "localhost:8080"]).unwrap();
        assert!(matches!(args.bind, Address::Tcp(addr) if addr.ip().is_loopback()));
        let error = parse(&["-b", "unix:"]).unwrap_err();
        assert!(
            one_line(&error).contains("a path after 'unix:'"),
            "{}",
            one_line(&error)
        );
    }

    #[test]
    fn bad_values_are_one_line() {
        for bad in [
            &["--model", "nosuch"][..],
            &["--workers", "0"],
            &["--workers", "abc"],
            &["--bind", "nonsense"],
            &["--header-timeout", "-1"],
            &["--idle-timeout", "0"],
            &["--idle-timeout", "NaN"],
            &["--idle-timeout", "inf"],
            &["--nosuch"],
            &["--cache-control", ""],
            &["--cache-control", "a\nb"],
            &["--index", ""],
            &["--index", "index.html,"],
            &["--index", "a/index.html"],
            &["--index", "index.html,.."],
        ] {
            let error = parse(bad).unwrap_err();
            let line = one_line(&error);
            assert!(!line.is_empty() && !line.contains('\n'), "{bad:?}: {line}");
        }
        let error = parse(&["--model", "nosuch"]).unwrap_err();
        assert!(
            one_line(&error).contains("process, thread, pool, async"),
            "{}",
            one_line(&error)
        );
    }

    #[test]
    fn sizes() {
        for (text, bytes) in [
            ("0", 0),
            ("1000", 1000),
            ("1000B", 1000),
            ("512K", 512 << 10),
            ("512kb", 512 << 10),
            ("512KiB", 512 << 10),
            ("8M", 8 << 20),
            ("8MiB", 8 << 20),
            ("64m", 64 << 20),
            ("1G", 1 << 30),
            ("2gib", 2 << 30),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
        for bad in [
            "",
            "K",
            "-1",
            "+1",
            "1.5M",
            "1 M",
            "1T",
            "1KiBB",
            "M1",
            "99999999999G",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        for bytes in [0, 1, 1000, 1024, 1536, 8 << 20, 64 << 20, 3 << 30, u64::MAX] {
            assert_eq!(parse_size(&format_size(bytes)), Ok(bytes), "{bytes}");
        }
        assert_eq!(format_size(8 << 20), "8MiB");
        assert_eq!(format_size(1536), "1536");
        // The defaults of the command line are those of the server's Config.
        let config = parse(&[]).unwrap().config();
        let defaults = Config::new(".");
        assert_eq!(config.compress_max, defaults.compress_max);
        assert_eq!(config.compress_cache, defaults.compress_cache);
        let config = parse(&["--compress", "--compress-max", "1M", "--compress-cache", "16MiB"])
            .unwrap()
            .config();
        assert!(config.compress);
        assert_eq!((config.compress_max, config.compress_cache), (1 << 20, 16 << 20));
    }

    #[test]
    fn completions_for_every_shell_name_the_options() {
        for shell in [
            Shell::Bash,
            Shell::Zsh,
            Shell::Fish,
            Shell::Elvish,
            Shell::PowerShell,
        ] {
            let script = String::from_utf8(completions(shell)).unwrap();
            for word in ["bingfa", "header-timeout", "print-config"] {
                assert!(script.contains(word), "{shell}: no {word}");
            }
        }
        // Where the shell completes values, the models are among them.
        let bash = String::from_utf8(completions(Shell::Bash)).unwrap();
        assert!(bash.contains("reactor"));
        let args = parse(&["--completions", "zsh"]).unwrap();
        assert_eq!(args.completions, Some(Shell::Zsh));
        assert!(parse(&["--completions", "cmd"]).is_err());
    }

    #[test]
    fn man_page_is_roff_with_every_option() {
        let page = String::from_utf8(man_page().unwrap()).unwrap();
        assert!(
            page.lines().any(|line| line.starts_with(".TH bingfa 1")),
            "{page}"
        );
        for word in [
            "header\\-timeout",
            "immutable\\-fingerprints",
            "BINGFA_CONFIG",
            "reactor",
        ] {
            assert!(page.contains(word), "no {word} in the man page");
        }
    }

    #[test]
    fn hash_password_hashes_one_line_without_its_ending() {
        let printed = hash_password_from(&b"s3cret pass\r\nignored\n"[..]).unwrap();
        let hash = printed.strip_suffix('\n').unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        let rule = crate::server::AuthRule::new("/a", "r", &[format!("alice:{hash}")]);
        assert!(rule.is_ok(), "a users entry takes it as it is");
        // The same password again: another salt, another hash.
        let again = hash_password_from(&b"s3cret pass"[..]).unwrap();
        assert_ne!(again, printed);
        assert!(hash_password_from(&b"\n"[..]).is_err());
        assert!(hash_password_from(&b""[..]).is_err());
        assert!(parse(&["--hash-password"]).unwrap().hash_password);
        assert!(parse(&["--hash-password", "--man"]).is_err());
    }

    #[test]
    fn help_tells_of_the_config_file_and_environment() {
        let help = Args::command().render_help().to_string();
        for word in [
            "--config <FILE>",
            "--print-config",
            "--completions <SHELL>",
            "--man",
            "BINGFA_",
        ] {
            assert!(help.contains(word), "no {word} in --help");
        }
    }
}
