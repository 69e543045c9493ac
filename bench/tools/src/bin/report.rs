//! report: turns the results of bench/run into BENCHMARKS.md, SVG charts and one HTML page.
//!
//!   report [--results bench/results/latest.jsonl] [--out BENCHMARKS.md] [--charts bench/charts]
//!          [--html BENCHMARKS.html]
//!   report [--results FILE] --best WORKLOAD
//!
//! `--best` prints, for bench/run's rounds, the peers that did best on WORKLOAD in the main pass
//! (the most req/s and the least CPU per request; on an idle test the least memory), one or
//! two names on a line.
//!
//! The results file has one JSON object a line, told apart by `kind`: one `meta` (the machine,
//! versions and settings of the run), then `load` (a wrk workload, or TLS handshakes, on one
//! server), `round` (the same, in the rounds of the targets), `idle` (the idle-connections test,
//! plaintext or TLS) and `sweep` (one step of the connections sweep) records, and an `end`
//! record with the run's duration; a `peer` record holds each peer's version and configuration
//! as it ran. The peers (nginx, measured with `tcp_nopush` off and on as `nginx` and
//! `nginx-nopush`, h2o, lighttpd, Caddy, static-web-server, miniserve) and the `ceiling` probe
//! (a canned response to every request: this machine's limit) are servers like the models;
//! every comparison is with the best peer on that line, never with one peer chosen in advance.
//! The HTTP/2 part (which `bench/run --only h2` can measure
//! again on its own) has an `h2meta` record of its own, `load`, `round` and `idle` records
//! whose workloads start with `h2` (h2load's, with a mean latency and no percentiles; h2o among
//! the servers), and an `h2end`. Missing or failed measurements show as `—`.
//!
//! Writes the report, the same report as one self-contained HTML page (the charts inlined, no
//! network), and, under the charts folder, `models.svg`, `tls.svg` and `h2.svg` (req/s
//! per workload, plaintext, over TLS and over HTTP/2, every server side by side),
//! `sweep-rps.svg` and `sweep-memory.svg` (req/s and memory against the number of concurrent
//! connections, log scales). Chart paths in the report are relative to the report's folder.

use plotters::coord::ranged1d::SegmentValue;
use plotters::coord::Shift;
use plotters::prelude::*;
use pulldown_cmark::{html, Event, Options, Parser, Tag, TagEnd};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct Meta {
    date: String,
    nproc: u32,
    cpu: String,
    kernel: String,
    mem_total_kib: u64,
    nginx: String,
    wrk: String,
    rustc: String,
    commit: String,
    secs: u32,
    sweep_secs: u32,
    conns: u32,
    workers: u32,
    depth: u32,
    idle_conns: u32,
    fresh: u32,
    sweep: Vec<u32>,
    models: Vec<String>,
    quick: bool,
    nofile: String,
    page_size: u64,
    /// Whether the run had the TLS workloads.
    tls: bool,
    tls_secs: u32,
    handshake_threads: u32,
    /// The system's OpenSSL (nginx's and wrk's TLS), and the rustls bingfa was built with.
    openssl: String,
    rustls: String,
    /// The peers of the main pass (`nginx-nopush` among them), those measured over TLS and
    /// HTTP/2, the models measured there, and the peers left out (with why).
    peers: Vec<String>,
    tls_peers: Vec<String>,
    tls_models: Vec<String>,
    skipped: Vec<String>,
    /// Whether system calls were counted (perf), and if not why not.
    syscalls: bool,
    syscalls_note: String,
    perf: String,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct Load {
    server: String,
    workload: String,
    ok: bool,
    rps: Option<f64>,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    /// wrk's maximum latency: bounds the p99 where wrk lost count of it (see `bench/run`).
    max_ms: Option<f64>,
    /// h2load's mean time per request (it gives no percentiles).
    mean_ms: Option<f64>,
    /// The cipher suite h2load and the server agreed on, over TLS.
    suite: Option<String>,
    requests: Option<u64>,
    errors: Option<u64>,
    mem_kib: Option<u64>,
    /// The server's CPU time (user + system, whole process tree) over the measurement, µs.
    cpu_us: Option<u64>,
    /// The system calls the server's process tree made over the measurement (perf).
    syscalls: Option<u64>,
    error: Option<String>,
    /// Set on the rounds of the targets (`kind: round`).
    round: Option<u32>,
    /// What `handshake` saw, on the tls-full and tls-resumed workloads.
    result: Option<Handshakes>,
}

/// `bench/tools handshake`'s count of each kind of handshake, and the last one's suite.
#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct Handshakes {
    full: u64,
    full_retried: u64,
    resumed: u64,
    suite: String,
    group: String,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct Series {
    n: u64,
    failed: u64,
    p50_us: Option<u64>,
    p99_us: Option<u64>,
    max_us: Option<u64>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct IdleOut {
    conns: u64,
    held: u64,
    failed: u64,
    open_ms: u64,
    still_open: u64,
    fresh: Series,
    keepalive: Series,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct Idle {
    server: String,
    /// `idle` or `tls-idle` (empty in results from before TLS: `idle`).
    workload: String,
    /// Set on the rounds of the targets.
    round: Option<u32>,
    ok: bool,
    mem_base_kib: Option<u64>,
    mem_kib: Option<u64>,
    rss_kib: Option<u64>,
    procs: Option<u64>,
    result: Option<IdleOut>,
    error: Option<String>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct Sweep {
    server: String,
    conns: u32,
    ok: bool,
    rps: Option<f64>,
    p99_ms: Option<f64>,
    errors: Option<u64>,
    mem_kib: Option<u64>,
    error: Option<String>,
}

/// A peer as it ran: its version and its configuration file or command line.
#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct Peer {
    server: String,
    version: String,
    config: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct End {
    duration_s: u64,
}

/// The HTTP/2 part of a run: when, with what, and its servers.
#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct H2Meta {
    date: String,
    commit: String,
    workers: u32,
    h2load: String,
    h2o: String,
    nginx: String,
    caddy: String,
    secs: u32,
    /// h2load's connections and streams in flight on each, on the small and the 1 MiB file.
    small_conns: u32,
    small_streams: u32,
    big_conns: u32,
    big_streams: u32,
    idle_conns: u32,
    fresh: u32,
    /// The servers bingfa is compared with (nginx, h2o), then the models.
    peers: Vec<String>,
    models: Vec<String>,
    rounds: u32,
    quick: bool,
}

/// `bench/callgrind.sh`: user-space instructions per request, `depth` requests per write.
#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct Callgrind {
    model: String,
    depth: u32,
    instructions: u64,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Record {
    Meta(Meta),
    Load(Load),
    Round(Load),
    Idle(Idle),
    Sweep(Sweep),
    Callgrind(Callgrind),
    Peer(Peer),
    End(End),
    H2meta(H2Meta),
    H2end(End),
}

#[derive(Default)]
struct Results {
    meta: Meta,
    load: BTreeMap<(String, String), Load>,
    /// The rounds of the targets, in order, per server and workload.
    rounds: BTreeMap<(String, String), Vec<Load>>,
    /// Per server and workload (`idle`, `tls-idle`).
    idle: BTreeMap<(String, String), Idle>,
    /// The idle test's rounds, in order, per server and workload.
    idle_rounds: BTreeMap<(String, String), Vec<Idle>>,
    sweep: BTreeMap<(String, u32), Sweep>,
    callgrind: Vec<Callgrind>,
    peer_configs: Vec<Peer>,
    duration_s: Option<u64>,
    h2: Option<H2Meta>,
    h2_duration_s: Option<u64>,
}

impl Results {
    fn read(path: &Path) -> Result<Results, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut r = Results::default();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let rec: Record =
                serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
            match rec {
                Record::Meta(m) => r.meta = m,
                Record::Load(l) => {
                    r.load.insert((l.server.clone(), l.workload.clone()), l);
                }
                Record::Round(l) => {
                    let key = (l.server.clone(), l.workload.clone());
                    r.rounds.entry(key).or_default().push(l);
                }
                Record::Idle(mut d) => {
                    if d.workload.is_empty() {
                        d.workload = "idle".into();
                    }
                    let key = (d.server.clone(), d.workload.clone());
                    if d.round.is_some() {
                        r.idle_rounds.entry(key).or_default().push(d);
                    } else {
                        r.idle.insert(key, d);
                    }
                }
                Record::Sweep(s) => {
                    r.sweep.insert((s.server.clone(), s.conns), s);
                }
                Record::Callgrind(c) => r.callgrind.push(c),
                Record::Peer(p) => r.peer_configs.push(p),
                Record::End(e) => r.duration_s = Some(e.duration_s),
                Record::H2meta(m) => r.h2 = Some(m),
                Record::H2end(e) => r.h2_duration_s = Some(e.duration_s),
            }
        }
        Ok(r)
    }

    /// The peers of the main pass (results from before the peers had nginx alone).
    fn peers(&self) -> Vec<String> {
        if self.meta.peers.is_empty() {
            vec!["nginx".to_string()]
        } else {
            self.meta.peers.clone()
        }
    }

    /// The peers measured on `workload`: over TLS, over HTTP/2, or those of the main pass.
    fn peers_for(&self, workload: &str) -> Vec<String> {
        if workload.starts_with("h2") {
            self.h2.as_ref().map(|h| h.peers.clone()).unwrap_or_default()
        } else if workload.starts_with("tls-") && !self.meta.tls_peers.is_empty() {
            self.meta.tls_peers.clone()
        } else {
            self.peers()
        }
    }

    /// The servers the connections sweep measured, in the order of the run.
    fn sweep_servers(&self) -> Vec<String> {
        self.servers()
            .into_iter()
            .filter(|s| self.sweep.keys().any(|(x, _)| x == s))
            .collect()
    }

    /// Whether the ceiling probe was measured.
    fn has_ceiling(&self) -> bool {
        self.load.keys().any(|(s, _)| s == CEILING)
    }

    /// The peers, the ceiling probe, then the models in the order of the run.
    fn servers(&self) -> Vec<String> {
        let mut s = self.peers();
        if self.has_ceiling() {
            s.push(CEILING.to_string());
        }
        let models: Vec<String> = self
            .meta
            .models
            .iter()
            .filter(|m| !s.contains(m))
            .cloned()
            .collect();
        s.extend(models);
        s
    }

    /// The servers measured over TLS: its peers, then its models.
    fn tls_servers(&self) -> Vec<String> {
        if self.meta.tls_peers.is_empty() {
            return self.servers();
        }
        let mut s = self.meta.tls_peers.clone();
        s.extend(self.meta.tls_models.iter().cloned());
        s
    }

    /// The best of `peers` on `workload` in the main pass, by `of` (the highest, or with
    /// `lowest` the lowest), and which peer it was.
    fn best_main(
        &self,
        workload: &str,
        lowest: bool,
        of: impl Fn(&Load) -> Option<f64>,
    ) -> Option<(String, f64)> {
        let values = self
            .peers_for(workload)
            .into_iter()
            .filter_map(|p| Some((p.clone(), self.load(&p, workload).and_then(&of)?)))
            .collect();
        best_of(values, lowest)
    }

    /// The best peer on `workload` for the targets: over the medians of the rounds among the
    /// peers that had rounds there, else over the main pass.
    fn best_target(
        &self,
        workload: &str,
        lowest: bool,
        of: impl Fn(&Load) -> Option<f64>,
    ) -> Option<(String, f64)> {
        let peers = self.peers_for(workload);
        let with_rounds: Vec<(String, f64)> = peers
            .iter()
            .filter_map(|p| {
                Some((
                    p.clone(),
                    median(self.rounds(p, workload).into_iter().filter_map(&of).collect())?,
                ))
            })
            .collect();
        if with_rounds.is_empty() {
            return self.best_main(workload, lowest, of);
        }
        best_of(with_rounds, lowest)
    }

    /// The peer whose idle test `workload` used the least memory: over the rounds' medians if
    /// there were rounds, else the main pass.
    fn best_idle(&self, workload: &str) -> Option<(String, f64)> {
        let peers = self.peers_for(workload);
        let rounds: Vec<(String, f64)> = peers
            .iter()
            .filter_map(|p| {
                let all = self.idle_rounds(p, workload)?;
                Some((
                    p.clone(),
                    median(all.iter().filter(|d| d.ok).filter_map(idle_mem).collect())?,
                ))
            })
            .collect();
        if !rounds.is_empty() {
            return best_of(rounds, true);
        }
        best_of(
            peers
                .iter()
                .filter_map(|p| Some((p.clone(), self.idle_ok(p, workload).and_then(idle_mem)?)))
                .collect(),
            true,
        )
    }

    /// For bench/run's rounds: the best peers of the main pass on `workload`, deduplicated.
    fn best_for_rounds(&self, workload: &str) -> Vec<String> {
        let mut best: Vec<String> = if is_idle(workload) {
            let main = self
                .peers_for(workload)
                .into_iter()
                .filter_map(|p| Some((p.clone(), self.idle_ok(&p, workload).and_then(idle_mem)?)))
                .collect();
            best_of(main, true).into_iter().map(|b| b.0).collect()
        } else {
            [
                self.best_main(workload, false, |l| l.rps),
                self.best_main(workload, true, cpu_per_request),
            ]
            .into_iter()
            .flatten()
            .map(|b| b.0)
            .collect()
        };
        best.dedup();
        best
    }

    fn load(&self, server: &str, workload: &str) -> Option<&Load> {
        self.load
            .get(&(server.to_string(), workload.to_string()))
            .filter(|l| l.ok)
    }

    fn rps(&self, server: &str, workload: &str) -> Option<f64> {
        self.load(server, workload).and_then(|l| l.rps)
    }

    /// Whether `server`'s p99 on `workload` in the targets is a bound (some measurement
    /// behind it had only wrk's maximum).
    fn p99_is_bound(&self, server: &str, workload: &str) -> bool {
        let bound = |l: &Load| l.p99_ms.is_none() && l.max_ms.is_some();
        if self.rounds.is_empty() {
            return self.load(server, workload).is_some_and(bound);
        }
        self.rounds(server, workload).into_iter().any(bound)
    }

    /// The rounds of `server` on `workload` that went well.
    fn rounds(&self, server: &str, workload: &str) -> Vec<&Load> {
        let key = (server.to_string(), workload.to_string());
        self.rounds
            .get(&key)
            .map_or(Vec::new(), |all| all.iter().filter(|l| l.ok).collect())
    }

    /// What the targets compare: the median over the rounds if there were any, else the one
    /// measurement of the main pass.
    fn target_value(&self, server: &str, workload: &str, of: impl Fn(&Load) -> Option<f64>) -> Option<f64> {
        if self.rounds.is_empty() {
            return self.load(server, workload).and_then(of);
        }
        median(self.rounds(server, workload).into_iter().filter_map(of).collect())
    }

    fn idle(&self, server: &str, workload: &str) -> Option<&Idle> {
        self.idle.get(&(server.to_string(), workload.to_string()))
    }

    fn idle_ok(&self, server: &str, workload: &str) -> Option<&Idle> {
        self.idle(server, workload).filter(|d| d.ok)
    }

    fn idle_rounds(&self, server: &str, workload: &str) -> Option<&Vec<Idle>> {
        self.idle_rounds.get(&(server.to_string(), workload.to_string()))
    }

    /// What the idle targets compare: the median over the idle rounds if there were any,
    /// else the one idle test of the main pass.
    fn idle_target(&self, server: &str, workload: &str, of: impl Fn(&Idle) -> Option<f64>) -> Option<f64> {
        match self.idle_rounds(server, workload) {
            Some(all) => median(all.iter().filter(|d| d.ok).filter_map(of).collect()),
            None => self.idle_ok(server, workload).and_then(of),
        }
    }

    /// Whether any TLS workload was measured (results from before TLS have none).
    fn has_tls(&self) -> bool {
        self.meta.tls || self.load.keys().any(|(_, wl)| wl.starts_with("tls-"))
    }

    fn sweep(&self, server: &str, conns: u32) -> Option<&Sweep> {
        self.sweep.get(&(server.to_string(), conns)).filter(|s| s.ok)
    }

    /// The HTTP/2 part's servers: its peers, then its models.
    fn h2_servers(&self) -> Vec<String> {
        let h2 = self.h2.clone().unwrap_or_default();
        h2.peers.into_iter().chain(h2.models).collect()
    }

    /// What the HTTP/2 targets compare: the median over the part's rounds if it had any, else
    /// the one measurement of its main pass.
    fn h2_value(&self, server: &str, workload: &str, of: impl Fn(&Load) -> Option<f64>) -> Option<f64> {
        if self.h2.as_ref().is_some_and(|h| h.rounds > 0) {
            return median(self.rounds(server, workload).into_iter().filter_map(of).collect());
        }
        self.load(server, workload).and_then(of)
    }
}

const WORKLOADS: [(&str, &str); 4] = [
    ("small", "small file, keep-alive"),
    ("pipeline", "16-deep pipelining"),
    ("1m", "1 MiB file"),
    ("churn", "Connection: close churn"),
];

/// The TLS workloads: wrk over HTTPS, then `handshake` (a rate of handshakes, each with a GET).
const TLS_WORKLOADS: [(&str, &str); 4] = [
    ("tls-small", "TLS: small file, keep-alive"),
    ("tls-1m", "TLS: 1 MiB file"),
    ("tls-full", "TLS: new connections, full handshake"),
    ("tls-resumed", "TLS: new connections, resumed handshake"),
];

/// The HTTP/2 workloads (h2load): h2c is HTTP/2 on plaintext by prior knowledge, h2 over TLS.
const H2_WORKLOADS: [(&str, &str); 4] = [
    ("h2c-small", "h2c: small file"),
    ("h2c-1m", "h2c: 1 MiB file"),
    ("h2-small", "h2 over TLS: small file"),
    ("h2-1m", "h2 over TLS: 1 MiB file"),
];

/// The HTTP/2 idle tests.
const H2_IDLE: [(&str, &str); 2] = [("h2c-idle", "h2c"), ("h2-idle", "h2 over TLS")];

/// The ceiling probe's name among the servers.
const CEILING: &str = "ceiling";

/// bingfa's models: shown as code in the tables, every other server by its name.
const MODELS: [&str; 10] = [
    "process",
    "thread",
    "pool",
    "async",
    "nonblocking",
    "poll",
    "epoll",
    "reactor",
    "prefork",
    "uring",
];

fn is_idle(workload: &str) -> bool {
    workload.ends_with("idle")
}

fn is_handshake(workload: &str) -> bool {
    matches!(workload, "tls-full" | "tls-resumed")
}

/// The server's CPU time per request (per handshake on the handshake workloads), in µs.
fn cpu_per_request(l: &Load) -> Option<f64> {
    match (l.cpu_us, l.requests) {
        (Some(c), Some(n)) if n > 0 => Some(c as f64 / n as f64),
        _ => None,
    }
}

/// The server's system calls per request (per handshake on the handshake workloads).
fn syscalls_per_request(l: &Load) -> Option<f64> {
    match (l.syscalls, l.requests) {
        (Some(c), Some(n)) if n > 0 => Some(c as f64 / n as f64),
        _ => None,
    }
}

// --- formatting ------------------------------------------------------------------------------

const DASH: &str = "—";

fn thousands(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| DASH.to_string())
}

fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} ms")
    } else if v < 100.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.0} ms")
    }
}

fn us(v: u64) -> String {
    ms(v as f64 / 1000.0)
}

/// CPU time per request: a decimal below 10 µs, where a tenth is still a tenth of the cost.
fn micros(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.1} µs")
    } else {
        format!("{} µs", thousands(v))
    }
}

fn mib(kib: u64) -> String {
    let m = kib as f64 / 1024.0;
    if m < 10.0 {
        format!("{m:.2} MiB")
    } else if m < 1000.0 {
        format!("{m:.1} MiB")
    } else {
        format!("{m:.0} MiB")
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// A p99, or where wrk lost count of it, its upper bound: the maximum, shown as "≤".
fn p99_or_bound(l: &Load) -> Option<f64> {
    l.p99_ms.or(l.max_ms)
}

/// `text` of a value that is only an upper bound gets "≤ ".
fn at_most(bound: bool, text: String) -> String {
    if bound && text != DASH {
        format!("≤ {text}")
    } else {
        text
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn times(r: f64) -> String {
    if r < 10.0 {
        format!("{r:.2}×")
    } else {
        format!("{r:.1}×")
    }
}

fn conns_label(c: u32) -> String {
    if c >= 1000 && c.is_multiple_of(1000) {
        format!("{}k", c / 1000)
    } else {
        c.to_string()
    }
}

fn mark(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "✓",
        Some(false) => "✗",
        None => "? (not measured)",
    }
}

// --- the report ------------------------------------------------------------------------------

fn report(r: &Results, charts_rel: &str) -> String {
    let m = &r.meta;
    let mut o = String::new();
    let w = &mut o;
    let _ = writeln!(w, "# Benchmarks\n");
    let _ = writeln!(
        w,
        "Generated by `bench/run`{} on {} from commit `{}`{}. Every server ran on this machine in \
         the same run, one at a time, over loopback; ratios compare with the **best peer** on \
         each line in that run (the peer with the most req/s for a rate, the least CPU time \
         for a cost, the least memory for memory), never with one peer chosen in advance. \
         Numbers from a shared {}-core machine are noisy: compare within one run; the CPU \
         time per request moves far less than req/s.\n",
        if m.quick { " --quick" } else { "" },
        m.date,
        m.commit,
        r.duration_s
            .map(|d| format!(" (the run took {} min {} s)", d / 60, d % 60))
            .unwrap_or_default(),
        m.nproc,
    );
    if m.quick {
        let _ = writeln!(
            w,
            "> **A `--quick` smoke run**: short durations, fewer connections; regenerate with \
             `bench/run` for numbers worth quoting.\n"
        );
    }
    if m.peers.is_empty() {
        let _ = writeln!(
            w,
            "> **Measured before the harness had its other peers**: nginx (with `tcp_nopush \
             on`) is the only peer here, with no ceiling probe and no system call counts. \
             `bench/run` measures every model beside nginx (with `tcp_nopush` off and on), \
             h2o, lighttpd, Caddy, static-web-server, miniserve and the probe.\n"
        );
    }

    let _ = writeln!(w, "## Machine and method\n");
    let _ = writeln!(
        w,
        "- **Machine**: {} ({} cores), Linux {}, {:.1} GiB of memory; open-file limit {}.",
        m.cpu,
        m.nproc,
        m.kernel,
        m.mem_total_kib as f64 / 1048576.0,
        m.nofile
    );
    let _ = writeln!(
        w,
        "- **Tools**: {}, {}, {}{}.",
        m.nginx,
        m.wrk,
        m.rustc,
        if m.perf.is_empty() {
            String::new()
        } else {
            format!(", {}", m.perf)
        }
    );
    peers_method(w, r);
    let _ = writeln!(
        w,
        "- **Load**: `wrk -t2 -c{} -d{}s --latency` per workload; fixture: a {}-byte `index.html`, \
         a 1 MiB file (and a 64 MiB one). Each measurement starts a fresh server.",
        m.conns, m.secs, m.page_size
    );
    let _ = writeln!(
        w,
        "- **Pipelining**: `bench/pipeline.lua` writes {} GETs at once; wrk counts every response, \
         so req/s are responses per second, but its latency is that of a whole batch of {}.",
        m.depth, m.depth
    );
    let _ = writeln!(
        w,
        "- **Memory** is **PSS** (proportional set size, `Pss:` of `/proc/PID/smaps_rollup`) \
         summed over the server's process tree (nginx's master and workers, bingfa and its forked \
         children): a page shared by n processes counts 1/n in each, so forked workers are not \
         counted many times. Under load it is the peak of a few samples taken during the run."
    );
    let _ = writeln!(
        w,
        "- **Idle test**: `bench/tools` `idle` opens {} keep-alive connections, one GET each, \
         holds them, then the server's memory is read; with them still held it times {} requests \
         one after another on new connections (connect to last byte) and {} on one keep-alive \
         connection.",
        thousands(m.idle_conns as f64),
        thousands(m.fresh as f64),
        thousands(m.fresh as f64)
    );
    let _ = writeln!(
        w,
        "- **Sweep**: `wrk -t2 -cN -d{}s` on the small page for N in {}; memory is the peak \
         sampled during each run.",
        m.sweep_secs,
        m.sweep
            .iter()
            .map(|c| thousands(*c as f64))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        w,
        "- **CPU per request** is the server's user and system time over a measurement (its \
         whole process tree from `/proc/PID/stat`, children reaped meanwhile included: \
         `bench/tools memtree --cpu`), read just before the client starts and just after it \
         ends, divided by the requests answered (by the handshakes, on the handshake \
         workloads). The machine's load moves it far less than it moves req/s."
    );
    if m.syscalls {
        let _ = writeln!(
            w,
            "- **System calls per request**: every system call the server's process tree made \
             over the same measurement, counted by the kernel (`perf stat -e \
             raw_syscalls:sys_enter -p` on every process and thread of the tree, inheriting \
             into the children it forks; no ptrace), divided by the requests answered. Idle \
             wake-ups count too (a timer tick, an `epoll_wait` that times out), so a server \
             that batches more under load makes fewer per request at a higher rate. Counted \
             in the main pass only: the count costs a little CPU of its own (a tracepoint on \
             every system call), which the main pass's CPU times include and the rounds', \
             behind the targets, do not."
        );
    } else if !m.syscalls_note.is_empty() {
        let _ = writeln!(w, "- **System calls** were not counted: {}.", m.syscalls_note);
    }
    if r.has_tls() {
        tls_method(w, r);
    }
    let _ = writeln!(
        w,
        "- req/s count 2xx answers only; errors are wrk's socket errors (connect, read, write, \
         timeout) plus non-2xx answers. wrk counts only requests that were answered: a model \
         that leaves some connections waiting (`pool` beyond its `--workers`) shows the rate of \
         those it serves; the idle test shows how many connections it actually holds.\n\
         - `—`: the step failed (the server did not start, died, or wrk got no answer in time).\n"
    );

    targets(w, r);
    instructions(w, r);

    let _ = writeln!(w, "## Throughput\n");
    let _ = writeln!(
        w,
        "![req/s per workload, every server]({charts_rel}/models.svg)\n"
    );
    let _ = writeln!(
        w,
        "Requests per second, and the ratio to the best peer's on that workload:\n"
    );
    summary_table(w, r, &WORKLOADS, &r.servers());
    ceiling_table(w, r);
    for (wl, title) in WORKLOADS {
        workload_table(w, r, wl, title, &r.servers());
    }
    idle_table(w, r, "idle");

    let _ = writeln!(w, "## Concurrent connections sweep\n");
    let _ = writeln!(
        w,
        "How each model's cost grows with its load: the small page at N concurrent keep-alive \
         connections (the C10K picture: poll's O(n) turns, a thread or process per connection).\n"
    );
    let _ = writeln!(w, "![req/s against connections]({charts_rel}/sweep-rps.svg)\n");
    let _ = writeln!(
        w,
        "![memory against connections]({charts_rel}/sweep-memory.svg)\n"
    );
    let head: Vec<String> = m.sweep.iter().map(|c| thousands(*c as f64)).collect();
    let servers = r.sweep_servers();
    for (title, cell) in [
        (
            "req/s",
            &(|s: &Sweep| opt(s.rps, thousands)) as &dyn Fn(&Sweep) -> String,
        ),
        ("p99 latency", &|s: &Sweep| opt(s.p99_ms, ms)),
        ("memory (PSS, peak)", &|s: &Sweep| opt(s.mem_kib, mib)),
    ] {
        let _ = writeln!(w, "{title}:\n");
        let _ = writeln!(w, "| server | {} |", head.join(" | "));
        let _ = writeln!(w, "|---|{}", "---:|".repeat(head.len()));
        for s in &servers {
            let cells: Vec<String> = m
                .sweep
                .iter()
                .map(|c| match r.sweep.get(&(s.clone(), *c)) {
                    Some(x) if x.ok => {
                        let mut v = cell(x);
                        if x.errors.unwrap_or(0) > 0 && title == "req/s" {
                            v.push_str(&format!(" ({} errors)", thousands(x.errors.unwrap_or(0) as f64)));
                        }
                        v
                    }
                    Some(x) => format!("{DASH} ({})", x.error.clone().unwrap_or_else(|| "failed".into())),
                    None => DASH.to_string(),
                })
                .collect();
            let _ = writeln!(w, "| {} | {} |", name(s), cells.join(" | "));
        }
        let _ = writeln!(w);
    }
    if r.has_tls() {
        tls_section(w, r, charts_rel);
    }
    if let Some(h2) = &r.h2 {
        h2_section(w, r, h2, charts_rel);
    }
    peer_configs(w, r);
    o
}

/// A server's name in a table: bingfa's models as code, the peers and the probe as they are
/// (nginx with tcp_nopush on says so).
fn name(s: &str) -> String {
    if MODELS.contains(&s) {
        format!("`{s}`")
    } else if s == "nginx-nopush" {
        "nginx (tcp_nopush on)".into()
    } else {
        s.into()
    }
}

/// What each peer is and how it was set up to do its best; the files themselves are in the
/// report's last section.
fn peers_method(w: &mut String, r: &Results) {
    let m = &r.meta;
    if m.peers.is_empty() {
        let _ = writeln!(
            w,
            "- **nginx**, the one peer of this run: `worker_processes {}`, \
             `worker_connections 20480`, `sendfile on`, `tcp_nopush on` (not measured off), \
             `open_file_cache`, `access_log off`, `keepalive_requests` unbounded, `listen … \
             reuseport`.\n- **bingfa**: release build, `-w {} --max-connections 100000`, each \
             model in turn.",
            m.nproc, m.workers
        );
        return;
    }
    let _ = writeln!(
        w,
        "- **Peers**, each at its best for these workloads (configurations in full under \
         [Peer configurations](#peer-configurations)): a worker per core where they have \
         workers ({} here), access logs off, on-the-fly compression off, `sendfile` and an \
         open-file cache where they have them, keep-alive requests unbounded where they bound \
         them. A fresh server for every measurement.",
        m.nproc
    );
    let about = [
        (
            "nginx",
            "`worker_processes` = cores, `worker_connections 20480`, `sendfile on`, \
             `open_file_cache`, `access_log off`, `keepalive_requests` unbounded, `listen … \
             reuseport`; measured twice on every plaintext workload, `tcp_nopush off` (its \
             default; `nginx`) and `tcp_nopush on` (`nginx (tcp_nopush on)`), and its better \
             number counts as the best peer's. nginx allocates its connection table for \
             `worker_connections` in every worker at start (about 0.4 KiB a slot): see the \
             idle table's `at start`.",
        ),
        (
            "h2o",
            "Debian's; `num-threads` = cores, `file.dir`, no access log, no `compress`, \
             `max-connections: 100000`.",
        ),
        (
            "lighttpd",
            "Debian's; `server.max-worker` = cores (one process per core), \
             `server.network-backend = \"sendfile\"`, the stat cache, \
             `server.max-keep-alive-requests` unbounded (its default of 1,000 closes \
             connections under load), no mod_accesslog, no mod_deflate.",
        ),
        (
            "caddy",
            "Debian's; `file_server`, Go's runtime on every core (GOMAXPROCS), no `encode`, \
             no `log`, admin endpoint and automatic HTTPS off.",
        ),
        (
            "static-web-server",
            "`cargo install --locked`; `--threads-multiplier 1` (a worker thread per core), \
             `--compression false`, `--compression-static false`, error-level log (no access \
             log).",
        ),
        (
            "miniserve",
            "`cargo install --locked`; actix-web with a worker per core (its default), no \
             compression (its default), `--index index.html`.",
        ),
    ];
    for (peer, text) in about {
        if r.peers().iter().any(|p| p == peer) {
            let version = r
                .peer_configs
                .iter()
                .find(|c| c.server == peer && !c.version.is_empty())
                .map(|c| format!(" ({})", c.version))
                .unwrap_or_default();
            let _ = writeln!(w, "  - **{peer}**{version}: {text}");
        }
    }
    for skipped in &m.skipped {
        let _ = writeln!(w, "  - left out: {skipped}");
    }
    let _ = writeln!(
        w,
        "- **bingfa**: release build, `-w {} --max-connections 100000`, each model in turn.",
        m.workers
    );
}

/// Each peer's configuration as it ran (`$WORK` is the run's temporary folder, `$PORT` its
/// port), for a rival to check.
fn peer_configs(w: &mut String, r: &Results) {
    if r.peer_configs.is_empty() {
        return;
    }
    let _ = writeln!(
        w,
        "## Peer configurations
"
    );
    let _ = writeln!(
        w,
        "As each peer ran on the plaintext workloads (written by `bench/run`; `$WORK` is the \
         run's temporary folder, `$PORT` the port of each measurement). Over TLS nginx adds \
         `listen … ssl`, `ssl_protocols TLSv1.3`, `ssl_session_tickets on` and \
         `ssl_session_cache shared:SSL:10m`; h2o an `ssl` block (TLS 1.3, OCSP stapling off); \
         Caddy a `tls` directive with `protocols tls1.3`; the HTTP/2 part's changes are in its \
         method.\n"
    );
    for c in &r.peer_configs {
        let _ = writeln!(
            w,
            "<details><summary>{}{}</summary>\n\n```\n{}\n```\n\n</details>\n",
            name(&c.server),
            if c.version.is_empty() {
                String::new()
            } else {
                format!(" — {}", c.version)
            },
            c.config.trim_end()
        );
    }
}

/// How the TLS workloads were run.
fn tls_method(w: &mut String, r: &Results) {
    let m = &r.meta;
    // The suite and group every server agreed on with the handshake client.
    let mut suites: Vec<String> = r
        .load
        .values()
        .filter_map(|l| l.result.as_ref())
        .filter(|h| !h.suite.is_empty())
        .map(|h| format!("`{}` with `{}`", h.suite, h.group))
        .collect();
    suites.sort();
    suites.dedup();
    let _ = writeln!(
        w,
        "- **TLS**: one certificate, made by `bench/run` for the run (`openssl req`, ECDSA P-256, \
         self-signed for 127.0.0.1), served by every server; every client offers TLS 1.3 alone. \
         nginx as above, plus `listen … ssl`, `ssl_protocols TLSv1.3`, `ssl_session_tickets \
         on`, `ssl_session_cache shared:SSL:10m`, and `ssl_buffer_size` at its default of 16k, \
         the largest record (no http2); {} is its library. bingfa: `--tls-cert --tls-key`, \
         rustls {} with ring, ALPN http/1.1. Both send two session tickets after each handshake \
         (OpenSSL's and rustls's default). This kernel has no kTLS, so neither can `sendfile` a \
         file over TLS: each reads and encrypts it in user space, and wrk decrypts it on the \
         same cores.",
        m.openssl, m.rustls
    );
    let _ = writeln!(
        w,
        "- **TLS load** (`tls-small`, `tls-1m`): `wrk -t2 -c{} -d{}s --latency` over https (wrk \
         uses the system's OpenSSL and prefers `TLS_AES_256_GCM_SHA384`); each of its \
         connections makes one handshake, then keeps alive.",
        m.conns, m.tls_secs
    );
    let _ = writeln!(
        w,
        "- **Handshakes** (`tls-full`, `tls-resumed`): `bench/tools handshake`, {} client \
         threads for {} s, each in a loop: connect, a TLS 1.3 handshake (rustls with ring; the \
         certificate pinned, the server's signature verified), one GET of the small page with \
         `Connection: close`, the whole response, close; the rate is handshakes completed with \
         their response per second, the latency from connect to the last byte. `tls-full` keeps \
         no session, so every handshake is full (ECDHE and the server's ECDSA signature); \
         `tls-resumed` keeps the TLS 1.3 tickets and offers one each time (a PSK with a fresh \
         ECDHE, no signature). The client counts each kind as rustls saw it, and the run fails \
         a `tls-resumed` where the server resumed fewer than 90%. Negotiated: {}. wrk with \
         `Connection: close` is no substitute: it resumes the session on each of its new \
         connections. The client spends about as much CPU per handshake as the server, on the \
         same two cores, so the rates are those of a server given part of the machine: the CPU \
         per handshake compares the servers' costs more directly.",
        m.handshake_threads,
        m.tls_secs,
        if suites.is_empty() {
            DASH.to_string()
        } else {
            suites.join(", ")
        }
    );
    let _ = writeln!(
        w,
        "- **TLS idle test**: as the idle test, with `idle --tls`: every held connection and \
         every timed new one makes a full handshake of its own."
    );
}

/// One line per server: the rate on each workload, and its ratio to the best peer's.
fn summary_table(w: &mut String, r: &Results, workloads: &[(&str, &str)], servers: &[String]) {
    let titles: Vec<&str> = workloads.iter().map(|(_, t)| *t).collect();
    let _ = writeln!(w, "| server | {} |", titles.join(" | "));
    let _ = writeln!(w, "|---|{}", "---:|".repeat(workloads.len()));
    for s in servers {
        let cells: Vec<String> = workloads
            .iter()
            .map(|(wl, _)| {
                let v = r.rps(s, wl);
                let best = r.best_main(wl, false, |l| l.rps).map(|b| b.1);
                match (v, ratio(v, best)) {
                    (Some(v), Some(rt)) => format!("{} ({})", thousands(v), times(rt)),
                    (Some(v), None) => thousands(v),
                    _ => DASH.to_string(),
                }
            })
            .collect();
        let _ = writeln!(w, "| {} | {} |", name(s), cells.join(" | "));
    }
    let _ = writeln!(w);
}

/// Each server's rate as a share of the ceiling probe's on the same workload.
fn ceiling_table(w: &mut String, r: &Results) {
    if !r.has_ceiling() {
        return;
    }
    let _ = writeln!(w, "### This machine's limit\n");
    let _ = writeln!(
        w,
        "The `ceiling` probe (`bench/tools ceiling`) answers every request with a canned \
         response of the workload's size from memory: it finds the end of each request and \
         nothing more (no parsing, no file, no headers but `Connection: close`), one thread \
         per core, each with its own `SO_REUSEPORT` listener and epoll, pipelined answers in \
         one `writev`, a large body sent from memory with `sendfile`. What a server does \
         beyond that is what separates it from the probe. Each server's req/s as a share of \
         the probe's, then its CPU time per request as a multiple of the probe's (steadier: \
         a rate measured once moves with the machine's load, and can pass the probe's when \
         the probe's turn came at a worse moment; the targets above take the probe's median \
         over the rounds). On the 1 MiB file the probe is no ceiling: the kernel's `sendfile` \
         does most of the work for it and for the servers alike, and in trial runs `reactor` \
         did better than the probe there (a share above 100%). The probe's own numbers \
         first:\n"
    );
    let titles: Vec<&str> = WORKLOADS.iter().map(|(_, t)| *t).collect();
    let _ = writeln!(w, "| server | {} |", titles.join(" | "));
    let _ = writeln!(w, "|---|{}", "---:|".repeat(WORKLOADS.len()));
    let probe: Vec<String> = WORKLOADS
        .iter()
        .map(|(wl, _)| {
            let l = r.load(CEILING, wl);
            match (l.and_then(|l| l.rps), l.and_then(cpu_per_request)) {
                (Some(v), Some(c)) => format!("{} req/s, {}/req", thousands(v), micros(c)),
                (Some(v), None) => format!("{} req/s", thousands(v)),
                _ => DASH.to_string(),
            }
        })
        .collect();
    let _ = writeln!(w, "| **ceiling** | {} |", probe.join(" | "));
    for s in r.servers().iter().filter(|s| *s != CEILING) {
        let cells: Vec<String> = WORKLOADS
            .iter()
            .map(|(wl, _)| {
                let share = opt(ratio(r.rps(s, wl), r.rps(CEILING, wl)), percent);
                let cpu = |x: &str| r.load(x, wl).and_then(cpu_per_request);
                match ratio(cpu(s), cpu(CEILING)) {
                    Some(c) => format!("{share} · {} CPU", times(c)),
                    None => share,
                }
            })
            .collect();
        let _ = writeln!(w, "| {} | {} |", name(s), cells.join(" | "));
    }
    let _ = writeln!(w);
}

fn percent(v: f64) -> String {
    format!("{:.0}%", v * 100.0)
}

/// Every server on one workload: rate, server CPU time and system calls per request, latency,
/// errors, memory, each ratio to the best peer's; on the handshake workloads, how many
/// handshakes were resumed.
fn workload_table(w: &mut String, r: &Results, wl: &str, title: &str, servers: &[String]) {
    let handshakes = is_handshake(wl);
    let (rate, per) = if handshakes {
        ("handshakes/s", "per handshake")
    } else {
        ("req/s", "per request")
    };
    let _ = writeln!(w, "### {title}\n");
    let extra = if handshakes { " resumed |" } else { "" };
    let _ = writeln!(
        w,
        "| server | {rate} | × best peer | CPU {per} | × best peer | syscalls {per} | p50 | p99 | errors | peak memory |{extra}"
    );
    let _ = writeln!(
        w,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|{}",
        if handshakes { "---:|" } else { "" }
    );
    let best_rps = r.best_main(wl, false, |l| l.rps).map(|b| b.1);
    let best_cpu = r.best_main(wl, true, cpu_per_request).map(|b| b.1);
    for s in servers {
        let l = r.load.get(&(s.clone(), wl.to_string()));
        let Some(l) = l.filter(|l| l.ok) else {
            let why = l
                .and_then(|l| l.error.clone())
                .unwrap_or_else(|| "not run".into());
            let blanks = if handshakes { 10 } else { 9 };
            let _ = writeln!(w, "| {} | {DASH} ({why}) |{}", name(s), " |".repeat(blanks - 1));
            continue;
        };
        let bound = l.p99_ms.is_none();
        let resumed = match (&l.result, l.requests) {
            (Some(h), Some(n)) if handshakes => {
                format!(" {} of {} |", thousands(h.resumed as f64), thousands(n as f64))
            }
            _ if handshakes => format!(" {DASH} |"),
            _ => String::new(),
        };
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |{resumed}",
            name(s),
            opt(l.rps, thousands),
            opt(ratio(l.rps, best_rps), times),
            opt(cpu_per_request(l), micros),
            opt(ratio(cpu_per_request(l), best_cpu), times),
            opt(syscalls_per_request(l), calls),
            opt(l.p50_ms, ms),
            at_most(bound, opt(p99_or_bound(l), ms)),
            opt(l.errors, |e| thousands(e as f64)),
            opt(l.mem_kib, mib),
        );
    }
    let _ = writeln!(w);
}

/// System calls per request: a decimal below 10, where a tenth is still a tenth of the cost.
fn calls(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else {
        thousands(v)
    }
}

/// The HTTPS workloads: a chart, the rates beside the best peer's, one table each, the idle test.
fn tls_section(w: &mut String, r: &Results, charts_rel: &str) {
    let _ = writeln!(w, "## HTTPS\n");
    let _ = writeln!(
        w,
        "The same site over TLS 1.3 (see the method above), the peers that speak it ({}) and \
         the models {}. Each server's CPU time per request or handshake moves far less with the \
         machine's load than its rate does, and the handshake client takes its share of the \
         two cores from the server it measures.\n",
        r.peers_for("tls-small").join(", "),
        if r.meta.tls_models.is_empty() {
            "of the main pass".to_string()
        } else {
            r.meta
                .tls_models
                .iter()
                .map(|m| name(m))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    let _ = writeln!(
        w,
        "![req/s and handshakes/s per TLS workload, every server]({charts_rel}/tls.svg)\n"
    );
    let _ = writeln!(
        w,
        "Requests per second (handshakes per second on the last two), and the ratio to the best peer:\n"
    );
    let servers = r.tls_servers();
    summary_table(w, r, &TLS_WORKLOADS, &servers);
    for (wl, title) in TLS_WORKLOADS {
        workload_table(w, r, wl, title, &servers);
    }
    idle_table(w, r, "tls-idle");
}

/// The idle test (`idle` or `tls-idle`) of every server.
fn idle_table(w: &mut String, r: &Results, workload: &str) {
    let m = &r.meta;
    let tls = workload == "tls-idle";
    let _ = writeln!(
        w,
        "{} {} idle keep-alive {}connections\n",
        if tls { "###" } else { "##" },
        thousands(m.idle_conns as f64),
        if tls { "TLS " } else { "" }
    );
    if tls {
        let _ = writeln!(
            w,
            "As the plaintext idle test, each connection made with a full TLS 1.3 handshake of \
             its own (no resumption), and so are the timed new connections.\n"
        );
    } else {
        let _ = writeln!(
            w,
            "Memory (PSS of the process tree) at start and with the connections held, what each \
             held connection added, and the latency of requests made beside them: on a new \
             connection each (connect to last byte) and on one keep-alive connection. RSS, summed \
             over the tree (a page shared by several processes counts in each), is there for \
             reference. `held` counts the connections that got their response; if the server closed \
             some of them before the end, the number still open is in brackets.\n"
        );
    }
    let servers: Vec<String> = if tls { r.tls_servers() } else { r.servers() };
    let servers: Vec<String> = servers.into_iter().filter(|s| s != CEILING).collect();
    idle_rows(w, r, workload, &servers);
}

/// The idle test `workload` of each of `servers`, with memory compared with the best peer's
/// (the least, in the main pass).
fn idle_rows(w: &mut String, r: &Results, workload: &str, servers: &[String]) {
    let _ = writeln!(
        w,
        "| server | held | memory at start | memory, connections held | × best peer | per connection | \
         RSS, held | new conn p50 | p99 | max | keep-alive p50 | p99 |"
    );
    let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let best_idle_mem = best_of(
        r.peers_for(workload)
            .iter()
            .filter_map(|p| Some((p.clone(), r.idle_ok(p, workload).and_then(idle_mem)?)))
            .collect(),
        true,
    )
    .map(|b| b.1);
    for s in servers {
        let Some(d) = r.idle(s, workload) else {
            let _ = writeln!(w, "| {} | {DASH} (not run) | | | | | | | | | | |", name(s));
            continue;
        };
        let res = d.result.clone().unwrap_or_default();
        if !d.ok || d.result.is_none() {
            let why = d.error.clone().unwrap_or_else(|| "failed".into());
            let _ = writeln!(w, "| {} | {DASH} ({why}) | | | | | | | | | | |", name(s));
            continue;
        }
        let per_conn = match (d.mem_kib, d.mem_base_kib) {
            // Over a handful of connections the difference is noise, not a cost per connection.
            (Some(m), Some(b)) if res.held >= 100 => {
                Some(format!("{:.1} KiB", (m as f64 - b as f64) / res.held as f64))
            }
            _ => None,
        };
        let mut held = if res.held == res.conns {
            thousands(res.held as f64)
        } else {
            format!(
                "{} of {}",
                thousands(res.held as f64),
                thousands(res.conns as f64)
            )
        };
        if res.still_open < res.held {
            held.push_str(&format!(" ({} still open)", thousands(res.still_open as f64)));
        }
        let series = |x: &Series, v: Option<u64>| -> String {
            match v {
                Some(v) if x.failed == 0 => us(v),
                Some(v) => format!("{} ({} failed)", us(v), x.failed),
                None if x.failed > 0 => format!("{DASH} ({} failed)", x.failed),
                None => DASH.to_string(),
            }
        };
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            name(s),
            held,
            opt(d.mem_base_kib, mib),
            opt(d.mem_kib, mib),
            opt(ratio(d.mem_kib.map(|v| v as f64), best_idle_mem), times),
            per_conn.unwrap_or_else(|| DASH.into()),
            opt(d.rss_kib, mib),
            opt(res.fresh.p50_us, us),
            series(&res.fresh, res.fresh.p99_us),
            opt(res.fresh.max_us, us),
            opt(res.keepalive.p50_us, us),
            series(&res.keepalive, res.keepalive.p99_us),
        );
    }
    let _ = writeln!(w);
}

/// Instructions per request from `bench/callgrind.sh`, if the run measured them.
fn instructions(w: &mut String, r: &Results) {
    if r.callgrind.is_empty() {
        return;
    }
    let _ = writeln!(
        w,
        "## Instructions per request\n\n\
         User-space instructions per request on the small page, counted by `valgrind \
         --tool=callgrind` (`bench/callgrind.sh`: one worker, the difference between runs of 2,000 and \
         10,000 keep-alive writes, so start-up cancels out). Unlike req/s this does not move \
         with the machine's load; the kernel's share (the `recv` and `send` of each request) is \
         not counted.\n\n\
         | model | requests per write | instructions per request |\n|---|---:|---:|"
    );
    for c in &r.callgrind {
        let _ = writeln!(
            w,
            "| `{}` | {} | {} |",
            c.model,
            c.depth,
            thousands(c.instructions as f64)
        );
    }
    let _ = writeln!(w);
}

/// The targets of the default model: on every workload, its CPU time per request (the
/// headline) and its rate against the best peer's, its system calls per request and its
/// share of the machine's limit; then memory and latency; then a plain list of where it is
/// not ahead.
fn targets(w: &mut String, r: &Results) {
    let model = "reactor";
    let _ = writeln!(
        w,
        "## Targets: the default model (`{model}`) against the best peer\n"
    );
    if !r.meta.models.iter().any(|m| m == model) {
        let _ = writeln!(w, "`{model}` was not part of this run.\n");
        return;
    }
    let _ = writeln!(
        w,
        "Per workload, the server's **CPU time per request** (lower is better; per handshake \
         on the handshake lines) beside the peer that spent least, then req/s beside the peer \
         that served most (issue 6's goals for the rate in brackets), system calls per request \
         and `{model}`'s share of the ceiling probe's rate. Best peer = the best of {} on that \
         line{}.\n",
        r.peers().iter().map(|p| name(p)).collect::<Vec<_>>().join(", "),
        if r.peers().iter().any(|p| p == "nginx-nopush") {
            "; nginx counts with its better number of `tcp_nopush` off and on"
        } else {
            ""
        }
    );
    let _ = writeln!(
        w,
        "| workload | CPU/req `{model}` | best peer | × | req/s `{model}` | best peer | × (goal) | syscalls/req `{model}` / that peer | % of ceiling | ahead |"
    );
    let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|:-:|");
    let goals: [(&str, Option<f64>); 8] = [
        ("small", Some(1.5)),
        ("pipeline", Some(10.0)),
        ("1m", Some(1.0)),
        ("churn", None),
        ("tls-small", Some(1.5)),
        ("tls-1m", Some(1.0)),
        ("tls-full", Some(1.0)),
        ("tls-resumed", Some(1.0)),
    ];
    let mut behind: Vec<String> = Vec::new();
    for (wl, title) in WORKLOADS.iter().chain(TLS_WORKLOADS.iter()) {
        if wl.starts_with("tls-") && !r.has_tls() {
            continue;
        }
        let goal = goals.iter().find(|g| g.0 == *wl).and_then(|g| g.1);
        let cpu = r.target_value(model, wl, cpu_per_request);
        let best_cpu = r.best_target(wl, true, cpu_per_request);
        let rps = r.target_value(model, wl, |l| l.rps);
        let best_rps = r.best_target(wl, false, |l| l.rps);
        let cpu_ratio = ratio(cpu, best_cpu.as_ref().map(|b| b.1));
        let rps_ratio = ratio(rps, best_rps.as_ref().map(|b| b.1));
        // Counted in the main pass alone (the count costs a little CPU; the rounds go without).
        let sys = r.load(model, wl).and_then(syscalls_per_request);
        let peer_sys = best_cpu
            .as_ref()
            .and_then(|(p, _)| r.load(p, wl).and_then(syscalls_per_request));
        let ceiling = if wl.starts_with("tls-") {
            None
        } else {
            ratio(rps, r.target_value(CEILING, wl, |l| l.rps))
        };
        let ahead = match (cpu_ratio, rps_ratio) {
            (Some(c), Some(q)) => Some(c <= 1.0 && q >= 1.0),
            _ => None,
        };
        if ahead == Some(false) {
            let mut why = Vec::new();
            if let (Some(c), Some((p, _))) = (cpu_ratio, &best_cpu) {
                if c > 1.0 {
                    why.push(format!("{} the CPU per request of {}", times(c), name(p)));
                }
            }
            if let (Some(q), Some((p, _))) = (rps_ratio, &best_rps) {
                if q < 1.0 {
                    why.push(format!("{} the req/s of {}", times(q), name(p)));
                }
            }
            behind.push(format!("{title}: {}", why.join(", ")));
        }
        let goal_text = match (goal, rps_ratio) {
            (Some(g), Some(q)) => format!("{} (≥ {g:.1}× {})", times(q), if q >= g { "✓" } else { "✗" }),
            (None, Some(q)) => times(q),
            _ => DASH.to_string(),
        };
        let _ = writeln!(
            w,
            "| {title} | **{}** | {} | **{}** | {} | {} | {} | {} / {} | {} | {} |",
            opt(cpu, micros),
            opt(best_cpu, |(p, v)| format!("{} ({})", micros(v), name(&p))),
            opt(cpu_ratio, times),
            opt(rps, thousands),
            opt(best_rps, |(p, v)| format!("{} ({})", thousands(v), name(&p))),
            goal_text,
            opt(sys, calls),
            opt(peer_sys, calls),
            opt(ceiling, percent),
            mark(ahead)
        );
    }
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "`ahead` ✓: no more CPU per request than the thriftiest peer and at least the rate of \
         the fastest, strictly (no margin), from this one run; on a shared machine, run again \
         before drawing conclusions from a near miss.\n"
    );
    memory_and_latency_targets(w, r, model, &mut behind);
    if behind.is_empty() {
        let _ = writeln!(w, "**Where `{model}` is not ahead**: nowhere in this run.\n");
    } else {
        let _ = writeln!(
            w,
            "**Where `{model}` is not ahead** of the best peer in this run:\n"
        );
        for b in &behind {
            let _ = writeln!(w, "- {b}");
        }
        let _ = writeln!(w);
    }
    lead_goals(w, r, model);
    rounds(w, r, model);
}

/// Issue 22's goals: a clear lead in CPU per request and in rate over the best peer, and
/// `uring` near the default model; each with what was measured, and for a miss what would
/// meet it and what the ceiling probe says of it.
fn lead_goals(w: &mut String, r: &Results, model: &str) {
    let _ = writeln!(
        w,
        "### The lead issue 22 asks for\n\n\
         The best peer's CPU per request over `{model}`'s (higher is better for `{model}`), \
         `{model}`'s req/s over the fastest peer's, from the same medians as the table above; \
         `uring` against `{model}` from the main pass (`uring` has no rounds).\n\n\
         | goal | measured | met |\n|---|---|:-:|"
    );
    let mut misses = Vec::new();
    for (wl, title, goal) in [
        ("small", "small file, keep-alive", 1.5),
        ("churn", "Connection: close churn", 1.2),
    ] {
        let cpu = r.target_value(model, wl, cpu_per_request);
        if let (Some(cpu), Some((peer, best))) = (cpu, r.best_target(wl, true, cpu_per_request)) {
            let lead = best / cpu;
            let _ = writeln!(
                w,
                "| {title}: the best peer's CPU per request ≥ {goal:.1}× `{model}`'s | {} {} / {} = {} | {} |",
                name(&peer), micros(best), micros(cpu), times(lead), mark(Some(lead >= goal))
            );
            if lead < goal {
                misses.push(cpu_miss(r, model, wl, title, goal, cpu, &peer, best));
            }
        }
        let rps = r.target_value(model, wl, |l| l.rps);
        if let (Some(rps), Some((peer, best))) = (rps, r.best_target(wl, false, |l| l.rps)) {
            let lead = rps / best;
            let _ = writeln!(
                w,
                "| {title}: req/s ≥ {goal:.1}× the fastest peer's | {} / {} ({}) = {} | {} |",
                thousands(rps),
                thousands(best),
                name(&peer),
                times(lead),
                mark(Some(lead >= goal))
            );
            if lead < goal {
                misses.push(rate_miss(r, model, wl, title, goal, lead));
            }
        }
    }
    if let (Some(rps), Some((peer, best))) = (
        r.target_value(model, "1m", |l| l.rps),
        r.best_target("1m", false, |l| l.rps),
    ) {
        let lead = rps / best;
        let _ = writeln!(
            w,
            "| 1 MiB file: req/s ≥ the fastest peer's | {} / {} ({}) = {} | {} |",
            thousands(rps),
            thousands(best),
            name(&peer),
            times(lead),
            mark(Some(lead >= 1.0))
        );
    }
    for (wl, title) in [("small", "small file"), ("churn", "churn")] {
        let (Some(uring), Some(base)) = (r.load("uring", wl), r.load(model, wl)) else {
            continue;
        };
        let Some(rate) = ratio(uring.rps, base.rps) else {
            continue;
        };
        let cpu = ratio(cpu_per_request(uring), cpu_per_request(base));
        let met = rate >= 0.9 && cpu.is_none_or(|c| c <= 1.1);
        let _ = writeln!(
            w,
            "| `uring` within 10% of `{model}` or ahead, {title}: req/s, CPU per request | {}, {} | {} |",
            times(rate),
            opt(cpu, times),
            mark(Some(met))
        );
        if !met {
            misses.push(format!(
                "`uring`, {title}: {} `{model}`'s req/s and {} its CPU per request in the main pass; \
                 where its CPU goes and what was tried is in `src/models/uring.rs`'s header.",
                times(rate),
                opt(cpu, times)
            ));
        }
    }
    let _ = writeln!(w);
    if !misses.is_empty() {
        let _ = writeln!(w, "Why the misses, from this run's own numbers:\n");
        for m in &misses {
            let _ = writeln!(w, "- {m}");
        }
        let _ = writeln!(w);
    }
}

/// What a CPU goal missed by `model` would take, beside what the ceiling probe (no parsing,
/// no files, a canned answer) spends: the part of a request no server's own code can save.
#[allow(clippy::too_many_arguments)]
fn cpu_miss(
    r: &Results,
    model: &str,
    wl: &str,
    title: &str,
    goal: f64,
    cpu: f64,
    peer: &str,
    best: f64,
) -> String {
    let needed = best / goal;
    let ceiling = r.target_value(CEILING, wl, cpu_per_request);
    let sys = r.load(model, wl).and_then(syscalls_per_request);
    let peer_sys = r.load(peer, wl).and_then(syscalls_per_request);
    let mut text = format!(
        "{title}, CPU: the goal needs `{model}` at {} per request or less, {:.0}% below its {}.",
        micros(needed),
        (1.0 - needed / cpu) * 100.0,
        micros(cpu)
    );
    if let Some(ceiling) = ceiling {
        let _ = write!(
            text,
            " The ceiling probe, which parses nothing and opens no file, spent {} per request on \
             the same workload{}: most of a request's CPU is the kernel's work for the \
             connection, the same whoever serves it",
            micros(ceiling),
            if ceiling >= needed {
                format!(", no less than the goal asks of `{model}`")
            } else {
                String::new()
            }
        );
        if let (Some(s), Some(p)) = (sys, peer_sys) {
            let _ = write!(
                text,
                " (`{model}` makes {} system calls per request, {} {})",
                calls(s),
                name(peer),
                calls(p)
            );
        }
        text.push('.');
    }
    if let Some(c) = r.callgrind.iter().find(|c| c.model == model && c.depth == 1) {
        let _ = write!(
            text,
            " `{model}`'s own code runs {} user-space instructions per keep-alive request (below).",
            thousands(c.instructions as f64)
        );
    }
    text
}

/// What a rate goal missed by `model` says: the load generator shares the machine's cores,
/// so the rate follows the CPU left to it; the ceiling probe's rate is the bound.
fn rate_miss(r: &Results, model: &str, wl: &str, title: &str, goal: f64, lead: f64) -> String {
    let mut text = format!(
        "{title}, req/s: {} the fastest peer's against a goal of {goal:.1}×.",
        times(lead)
    );
    if let Some(share) = ratio(
        r.target_value(model, wl, |l| l.rps),
        r.target_value(CEILING, wl, |l| l.rps),
    ) {
        let _ = write!(
            text,
            " wrk runs on the same {} cores as the server, so a server's rate is bounded by what \
             the client can drive: `{model}` reached {} of the ceiling probe's rate, a server \
             that does no work of its own.",
            r.meta.nproc,
            percent(share)
        );
    }
    text
}

/// Memory with the idle connections held, and the p99 latencies, against the best peer.
fn memory_and_latency_targets(w: &mut String, r: &Results, model: &str, behind: &mut Vec<String>) {
    let _ = writeln!(w, "| target | `{model}` | best peer | ratio | met |");
    let _ = writeln!(w, "|---|---:|---:|---:|:-:|");
    let mut line = |w: &mut String,
                    title: String,
                    ours: Option<f64>,
                    best: Option<(String, f64)>,
                    f: &dyn Fn(f64) -> String| {
        let rt = ratio(ours, best.as_ref().map(|b| b.1));
        let met = rt.map(|x| x <= 1.0);
        if met == Some(false) {
            if let (Some(x), Some((p, _))) = (rt, &best) {
                behind.push(format!("{title}: {} {}'s", times(x), name(p)));
            }
        }
        let _ = writeln!(
            w,
            "| {title} | {} | {} | {} | {} |",
            opt(ours, f),
            opt(best, |(p, v)| format!("{} ({})", f(v), name(&p))),
            opt(rt, times),
            mark(met)
        );
    };
    let mib_of = |v: f64| mib(v as u64);
    let mut idle_lines = vec![("idle", "keep-alive connections")];
    if r.has_tls() {
        idle_lines.push(("tls-idle", "TLS connections"));
    }
    for (wl, what) in idle_lines {
        line(
            w,
            format!(
                "memory with {} idle {what} ≤ best peer's",
                thousands(r.meta.idle_conns as f64)
            ),
            r.idle_target(model, wl, idle_mem),
            r.best_idle(wl),
            &mib_of,
        );
    }
    for (wl, title) in WORKLOADS {
        let bound = r.p99_is_bound(model, wl);
        let ours = r.target_value(model, wl, p99_or_bound);
        let best = r.best_target(wl, true, |l| l.p99_ms);
        let fmt = |v: f64| ms(v);
        if bound {
            line(
                w,
                format!("p99 latency no worse: {title} (≤: wrk's maximum)"),
                ours,
                best,
                &fmt,
            );
        } else {
            line(w, format!("p99 latency no worse: {title}"), ours, best, &fmt);
        }
    }
    let best_fresh = best_of(
        r.peers()
            .iter()
            .filter_map(|p| Some((p.clone(), r.idle_target(p, "idle", fresh_p99)?)))
            .collect(),
        true,
    );
    line(
        w,
        "p99 latency no worse: new connection beside the idle ones".into(),
        r.idle_target(model, "idle", fresh_p99),
        best_fresh,
        &|v| ms(v),
    );
    let _ = writeln!(
        w,
        "\nA p99 marked ≤ is wrk's maximum latency: wrk 4.1 lost count of its percentiles (it \
         prints 0 for them when its correction for coordinated omission adds samples below the \
         lowest it saw, as with pipelining), and the maximum is a real sample, so an upper \
         bound.\n"
    );
}

/// The idle test's memory, in KiB, as a number the targets can take a median of.
fn idle_mem(d: &Idle) -> Option<f64> {
    d.mem_kib.map(|v| v as f64)
}

/// The p99 of the idle test's requests on new connections, in ms.
fn fresh_p99(d: &Idle) -> Option<f64> {
    let us = d.result.as_ref()?.fresh.p99_us?;
    Some(us as f64 / 1000.0)
}

/// Every round behind the targets' medians, so a reader sees how much they moved.
fn rounds(w: &mut String, r: &Results, model: &str) {
    if r.rounds.is_empty() {
        let _ = writeln!(
            w,
            "Every number above is the single measurement of the tables below.\n"
        );
        return;
    }
    let count = r.rounds.values().map(Vec::len).max().unwrap_or(0);
    let _ = writeln!(
        w,
        "Every number above is a median over {} run after the tables below: in each, `{model}` \
         and the peers that did best on that workload in the main pass (the most req/s, the \
         least CPU per request; on the idle tests the least memory) took it back to back, a \
         fresh server each time, so that they are measured minutes, not the whole run, apart. \
         Every round:\n",
        if count == 1 {
            "1 round".to_string()
        } else {
            format!("{count} rounds")
        }
    );
    let _ = writeln!(w, "| workload | round | server | req/s | CPU per request | p99 |");
    let _ = writeln!(w, "|---|---:|---|---:|---:|---:|");
    for (wl, title) in WORKLOADS.iter().chain(TLS_WORKLOADS.iter()) {
        let mut all: Vec<&Load> = r
            .rounds
            .iter()
            .filter(|((_, w), _)| w == wl)
            .flat_map(|(_, v)| v.iter())
            .collect();
        all.sort_by_key(|l| (l.round, l.server != model, l.server.clone()));
        for l in all {
            let round = l.round.map_or(DASH.to_string(), |n| n.to_string());
            let cell =
                |v: Option<f64>, f: &dyn Fn(f64) -> String| if l.ok { opt(v, f) } else { DASH.to_string() };
            let _ = writeln!(
                w,
                "| {title} | {round} | {} | {} | {} | {} |",
                name(&l.server),
                cell(l.rps, &thousands),
                cell(cpu_per_request(l), &micros),
                at_most(l.p99_ms.is_none(), cell(p99_or_bound(l), &ms)),
            );
        }
    }
    let _ = writeln!(w);
    idle_rounds(w, r);
}

/// The idle tests' rounds: memory and the new-connection p99 of each server in them.
fn idle_rounds(w: &mut String, r: &Results) {
    let tests = [("idle", "plaintext"), ("tls-idle", "TLS")];
    let mut rows = Vec::new();
    for (wl, title) in tests {
        let mut all: Vec<&Idle> = r
            .idle_rounds
            .iter()
            .filter(|((_, w), _)| w == wl)
            .flat_map(|(_, v)| v.iter())
            .collect();
        all.sort_by_key(|d| (d.round, d.server.clone()));
        for d in all {
            let of = |f: fn(&Idle) -> Option<f64>| if d.ok { f(d) } else { None };
            rows.push(format!(
                "| {title} | {} | {} | {} | {} |",
                d.round.map_or(DASH.to_string(), |n| n.to_string()),
                name(&d.server),
                opt(of(idle_mem), |v| mib(v as u64)),
                opt(of(fresh_p99), ms)
            ));
        }
    }
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        w,
        "And the idle test ({} keep-alive connections held), in the same rounds:\n",
        thousands(r.meta.idle_conns as f64)
    );
    let _ = writeln!(
        w,
        "| connections | round | server | memory | p99, new connection |"
    );
    let _ = writeln!(w, "|---|---:|---|---:|---:|");
    for row in rows {
        let _ = writeln!(w, "{row}");
    }
    let _ = writeln!(w);
}

// --- charts ----------------------------------------------------------------------------------

/// The peers in greys and browns, the probe in black, the models in bright colours: each
/// server keeps its colour from one chart to the next.
const PEER_COLORS: [(&str, RGBColor); 8] = [
    ("nginx", RGBColor(0x44, 0x44, 0x44)),
    ("nginx-nopush", RGBColor(0x88, 0x88, 0x88)),
    ("h2o", RGBColor(0x8b, 0x6d, 0x00)),
    ("lighttpd", RGBColor(0xa0, 0x52, 0x2d)),
    ("caddy", RGBColor(0x2f, 0x4f, 0x4f)),
    ("static-web-server", RGBColor(0x6b, 0x8e, 0x23)),
    ("miniserve", RGBColor(0xb0, 0x8d, 0x57)),
    (CEILING, RGBColor(0x00, 0x00, 0x00)),
];

/// The models' colours, in the order of MODELS.
const MODEL_COLORS: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
];

fn color(s: &str) -> RGBColor {
    if let Some((_, c)) = PEER_COLORS.iter().find(|(p, _)| *p == s) {
        return *c;
    }
    MODELS
        .iter()
        .position(|m| *m == s)
        .map_or(RGBColor(0x33, 0x33, 0x33), |i| MODEL_COLORS[i])
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// What a bar chart of rates shows: a panel per workload, a bar per server; each server that
/// is not a peer is labelled with its ratio to the best of the peers.
struct Bars<'a> {
    title: String,
    workloads: &'a [(&'a str, &'a str)],
    servers: Vec<String>,
    peers: Vec<String>,
}

/// The chart's title: what it shows, on how many cores, and whether the run was a quick one.
fn chart_title(what: &str, nproc: u32, quick: bool) -> String {
    format!("{what}, {nproc} cores{}", if quick { ", quick run" } else { "" })
}

/// One panel per workload (four: two by two), a bar per server with its ratio to the best peer.
fn models_chart(r: &Results, path: &Path, bars: &Bars<'_>) -> DrawResult {
    let servers = &bars.servers;
    let n = servers.len();
    let height = 180 + 2 * (n as u32 * 26 + 80);
    let root = SVGBackend::new(path, (1200, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(&bars.title, ("sans-serif", 24))?;
    let panels = root.split_evenly((2, 2));
    for ((wl, wl_title), panel) in bars.workloads.iter().zip(panels.iter()) {
        let values: Vec<Option<f64>> = servers.iter().map(|s| r.rps(s, wl)).collect();
        let max = values.iter().flatten().cloned().fold(0.0, f64::max).max(1.0);
        let best_peer = bars.peers.iter().filter_map(|p| r.rps(p, wl)).reduce(f64::max);
        let mut chart = ChartBuilder::on(panel)
            .caption(*wl_title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(110)
            .build_cartesian_2d(0.0..max * 1.3, (0..n as i32 - 1).into_segmented())?;
        let names = servers.clone();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .light_line_style(TRANSPARENT)
            .y_labels(n)
            .y_label_formatter(&|v: &SegmentValue<i32>| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                    names.get(n - 1 - *i as usize).cloned().unwrap_or_default()
                }
                SegmentValue::Last => String::new(),
            })
            .x_labels(5)
            .x_label_formatter(&|v: &f64| short(*v))
            .label_style(("sans-serif", 13))
            .draw()?;
        let upper = |i: i32| {
            if i as usize >= n {
                SegmentValue::Last
            } else {
                SegmentValue::Exact(i)
            }
        };
        for (i, (s, v)) in servers.iter().zip(&values).enumerate() {
            let row = (n - 1 - i) as i32;
            let Some(v) = *v else {
                chart.draw_series(std::iter::once(Text::new(
                    "failed",
                    (max * 0.01, SegmentValue::CenterOf(row)),
                    ("sans-serif", 12).into_font().color(&RED),
                )))?;
                continue;
            };
            let mut bar = Rectangle::new(
                [(0.0, SegmentValue::Exact(row)), (v, upper(row + 1))],
                color(s).filled(),
            );
            bar.set_margin(4, 4, 0, 0);
            chart.draw_series(std::iter::once(bar))?;
            let label = match ratio(Some(v), best_peer) {
                Some(rt) if !bars.peers.contains(s) => format!("{} ({})", short(v), times(rt)),
                _ => short(v),
            };
            chart.draw_series(std::iter::once(Text::new(
                label,
                (v + max * 0.01, SegmentValue::CenterOf(row)),
                ("sans-serif", 12),
            )))?;
        }
    }
    root.present()?;
    Ok(())
}

fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// One line per server against the sweep's connection counts (log x); `log_y` for memory.
fn sweep_chart(
    r: &Results,
    path: &Path,
    title: &str,
    y_desc: &str,
    value: &dyn Fn(&Sweep) -> Option<f64>,
    log_y: bool,
) -> DrawResult {
    let servers = r.sweep_servers();
    let steps = &r.meta.sweep;
    let root = SVGBackend::new(path, (1100, 650)).into_drawing_area();
    root.fill(&WHITE)?;
    let lines: Vec<(String, Vec<(f64, f64)>)> = servers
        .iter()
        .map(|s| {
            let pts = steps
                .iter()
                .filter_map(|c| r.sweep(s, *c).and_then(value).map(|v| (*c as f64, v)))
                .collect();
            (s.clone(), pts)
        })
        .collect();
    let all: Vec<f64> = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, v)| *v))
        .collect();
    let ymax = all.iter().cloned().fold(0.0, f64::max).max(1.0);
    let ymin = all.iter().cloned().fold(f64::INFINITY, f64::min).min(ymax);
    let xmin = steps.iter().cloned().min().unwrap_or(10).max(1) as f64;
    let xmax = steps.iter().cloned().max().unwrap_or(10000).max(2) as f64;
    let x_range = (xmin / 1.5..xmax * 1.5)
        .log_scale()
        .with_key_points(steps.iter().map(|c| *c as f64).collect());
    let caption = format!(
        "{title} ({} cores{})",
        r.meta.nproc,
        if r.meta.quick { ", quick run" } else { "" }
    );
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(caption, ("sans-serif", 22))
        .margin(15)
        .margin_right(170)
        .x_label_area_size(45)
        .y_label_area_size(80);
    let step_labels = |x: &f64| conns_label(x.round() as u32);
    if log_y {
        let (lo, hi) = (ymin / 1.5, ymax * 3.0);
        let mut keys = Vec::new();
        let mut decade = 10f64.powf(lo.log10().floor());
        while decade <= hi {
            keys.extend(
                [decade, 2.0 * decade, 5.0 * decade]
                    .into_iter()
                    .filter(|k| (lo..=hi).contains(k)),
            );
            decade *= 10.0;
        }
        let mut chart = builder.build_cartesian_2d(x_range, (lo..hi).log_scale().with_key_points(keys))?;
        chart
            .configure_mesh()
            .x_desc("concurrent connections")
            .y_desc(y_desc)
            .x_label_formatter(&step_labels)
            .y_label_formatter(&|v: &f64| {
                if *v >= 1.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v}")
                }
            })
            .light_line_style(TRANSPARENT)
            .label_style(("sans-serif", 14))
            .draw()?;
        draw_lines(&mut chart, &lines)?;
    } else {
        let mut chart = builder.build_cartesian_2d(x_range, 0.0..ymax * 1.15)?;
        chart
            .configure_mesh()
            .x_desc("concurrent connections")
            .y_desc(y_desc)
            .x_label_formatter(&step_labels)
            .y_label_formatter(&|v: &f64| short(*v))
            .light_line_style(TRANSPARENT)
            .label_style(("sans-serif", 14))
            .draw()?;
        draw_lines(&mut chart, &lines)?;
    }
    legend(&root, &servers, 1100 - 160, 70)?;
    root.present()?;
    Ok(())
}

type Lines = [(String, Vec<(f64, f64)>)];

fn draw_lines<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    lines: &Lines,
) -> DrawResult
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (s, pts) in lines {
        let c = color(s);
        chart.draw_series(LineSeries::new(pts.iter().cloned(), c.stroke_width(width(s))).point_size(4))?;
    }
    Ok(())
}

fn width(server: &str) -> u32 {
    if server == "nginx" || server == "reactor" {
        3
    } else {
        2
    }
}

/// The legend, in the right margin of the chart (drawn on the whole area: a chart's own
/// legend is clipped to its plot).
fn legend(root: &DrawingArea<SVGBackend<'_>, Shift>, servers: &[String], x: i32, y: i32) -> DrawResult {
    for (i, s) in servers.iter().enumerate() {
        let y = y + 22 * i as i32;
        let c = color(s);
        root.draw(&PathElement::new(
            vec![(x, y), (x + 24, y)],
            c.stroke_width(width(s)),
        ))?;
        root.draw(&Circle::new((x + 12, y), 4, c.stroke_width(2)))?;
        root.draw(&Text::new(s.clone(), (x + 32, y - 7), ("sans-serif", 15)))?;
    }
    Ok(())
}

fn main() {
    let mut results = PathBuf::from("bench/results/latest.jsonl");
    let mut out = PathBuf::from("BENCHMARKS.md");
    let mut charts = PathBuf::from("bench/charts");
    let mut html = PathBuf::from("BENCHMARKS.html");
    let mut best: Option<String> = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let Some(v) = it.next() else {
            eprintln!("report: {flag} needs a value");
            std::process::exit(2);
        };
        match flag.as_str() {
            "--results" => results = v.into(),
            "--out" => out = v.into(),
            "--charts" => charts = v.into(),
            "--html" => html = v.into(),
            "--best" => best = Some(v),
            _ => {
                eprintln!(
                    "usage: report [--results FILE] [--out BENCHMARKS.md] [--charts DIR] [--html FILE]\n       \
                     report [--results FILE] --best WORKLOAD"
                );
                std::process::exit(2);
            }
        }
    }
    let r = match Results::read(&results) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("report: {e}");
            std::process::exit(1);
        }
    };
    if let Some(workload) = best {
        println!("{}", r.best_for_rounds(&workload).join(" "));
        return;
    }
    if let Err(e) = std::fs::create_dir_all(&charts) {
        eprintln!("report: {}: {e}", charts.display());
        std::process::exit(1);
    }
    let out_dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let charts_rel = relative(&charts, out_dir);
    let mut failed = false;
    let mut run = |what: &str, res: DrawResult| {
        if let Err(e) = res {
            eprintln!("report: {what}: {e}");
            failed = true;
        }
    };
    let nginx = vec!["nginx".to_string()];
    let what = format!("req/s per workload (wrk -t2 -c{})", r.meta.conns);
    let bars = Bars {
        title: chart_title(&what, r.meta.nproc, r.meta.quick),
        workloads: &WORKLOADS,
        servers: r.servers(),
        peers: nginx.clone(),
    };
    run("models.svg", models_chart(&r, &charts.join("models.svg"), &bars));
    let mut written = vec!["models"];
    if r.has_tls() {
        let what = format!(
            "TLS 1.3: req/s (wrk -t2 -c{}) and handshakes/s ({} client threads)",
            r.meta.conns, r.meta.handshake_threads
        );
        let bars = Bars {
            title: chart_title(&what, r.meta.nproc, r.meta.quick),
            workloads: &TLS_WORKLOADS,
            servers: r.servers(),
            peers: nginx,
        };
        run("tls.svg", models_chart(&r, &charts.join("tls.svg"), &bars));
        written.push("tls");
    }
    if let Some(h2) = &r.h2 {
        let what = format!(
            "HTTP/2: req/s (h2load -c{} -m{} on the small file, -c{} -m{} on 1 MiB)",
            h2.small_conns, h2.small_streams, h2.big_conns, h2.big_streams
        );
        let bars = Bars {
            title: chart_title(&what, r.meta.nproc, h2.quick),
            workloads: &H2_WORKLOADS,
            servers: r.h2_servers(),
            peers: h2.peers.clone(),
        };
        run("h2.svg", models_chart(&r, &charts.join("h2.svg"), &bars));
        written.push("h2");
    }
    written.extend(["sweep-rps", "sweep-memory"]);
    run(
        "sweep-rps.svg",
        sweep_chart(
            &r,
            &charts.join("sweep-rps.svg"),
            "req/s against concurrent connections",
            "req/s",
            &|s| s.rps,
            false,
        ),
    );
    run(
        "sweep-memory.svg",
        sweep_chart(
            &r,
            &charts.join("sweep-memory.svg"),
            "memory (PSS of the process tree, peak) against concurrent connections",
            "MiB",
            &|s| s.mem_kib.map(|k| k as f64 / 1024.0),
            true,
        ),
    );
    let markdown = report(&r, &charts_rel);
    if let Err(e) = std::fs::write(&out, &markdown) {
        eprintln!("report: {}: {e}", out.display());
        std::process::exit(1);
    }
    let page = html_page(&markdown, &charts_rel, out_dir, r.meta.quick);
    if let Err(e) = std::fs::create_dir_all(html.parent().unwrap_or(Path::new(".")))
        .and_then(|()| std::fs::write(&html, page))
    {
        eprintln!("report: {}: {e}", html.display());
        std::process::exit(1);
    }
    println!(
        "report: wrote {}, {} and {}/{{{}}}.svg",
        out.display(),
        html.display(),
        charts.display(),
        written.join(",")
    );
    if failed {
        std::process::exit(1);
    }
}

/// `target` as seen from `from` (both relative to the current directory or both absolute).
fn relative(target: &Path, from: &Path) -> String {
    let abs = |p: &Path| {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    };
    let (t, f) = (normalize(&abs(target)), normalize(&abs(from)));
    let common = t.iter().zip(f.iter()).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = f.iter().skip(common).map(|_| "..".to_string()).collect();
    parts.extend(t.iter().skip(common).map(|c| c.to_string_lossy().into_owned()));
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

// --- HTTP/2 ----------------------------------------------------------------------------------

/// The best of `values` (server, value): the highest, or with `lowest` the lowest.
fn best_of(values: Vec<(String, f64)>, lowest: bool) -> Option<(String, f64)> {
    values.into_iter().reduce(|a, b| {
        let better = if lowest { b.1 < a.1 } else { b.1 > a.1 };
        if better {
            b
        } else {
            a
        }
    })
}

/// The best peer's value of `of` on `wl` (the highest, or with `lowest` the lowest), and which
/// peer it was; `value` picks main pass or rounds.
fn best_peer(h2: &H2Meta, lowest: bool, value: impl Fn(&str) -> Option<f64>) -> Option<(String, f64)> {
    best_of(
        h2.peers
            .iter()
            .filter_map(|p| Some((p.clone(), value(p)?)))
            .collect(),
        lowest,
    )
}

/// The HTTP/2 part: how it was run, its targets, every round, a chart and a table per
/// workload, the idle tests.
fn h2_section(w: &mut String, r: &Results, h2: &H2Meta, charts_rel: &str) {
    let _ = writeln!(w, "## HTTP/2\n");
    let _ = writeln!(
        w,
        "The HTTP/2 part of the run{}, measured on {} from commit `{}`{} (`bench/run --only h2` \
         measures it again alone and keeps the tables above, so its date may differ from \
         theirs). Ratios compare with the best peer in this part ({}), whichever did better on \
         that line (the higher req/s, the lower CPU time, the less memory).\n",
        if h2.quick { " (a `--quick` smoke run)" } else { "" },
        h2.date,
        h2.commit,
        r.h2_duration_s
            .map(|d| format!(" in {} min {} s", d / 60, d % 60))
            .unwrap_or_default(),
        h2.peers.iter().map(|p| name(p)).collect::<Vec<_>>().join(", "),
    );
    h2_method(w, r, h2);
    h2_targets(w, r, h2);
    h2_rounds(w, r, h2);
    let _ = writeln!(
        w,
        "![req/s per HTTP/2 workload, every server]({charts_rel}/h2.svg)\n"
    );
    let servers = r.h2_servers();
    let _ = writeln!(w, "Requests per second, and the ratio to the best peer:\n");
    let titles: Vec<&str> = H2_WORKLOADS.iter().map(|(_, t)| *t).collect();
    let _ = writeln!(w, "| server | {} |", titles.join(" | "));
    let _ = writeln!(w, "|---|{}", "---:|".repeat(H2_WORKLOADS.len()));
    for s in &servers {
        let cells: Vec<String> = H2_WORKLOADS
            .iter()
            .map(|(wl, _)| {
                let v = r.rps(s, wl);
                let best = best_peer(h2, false, |p| r.rps(p, wl)).map(|(_, b)| b);
                match (v, ratio(v, best)) {
                    (Some(v), Some(rt)) => format!("{} ({})", thousands(v), times(rt)),
                    (Some(v), None) => thousands(v),
                    _ => DASH.to_string(),
                }
            })
            .collect();
        let _ = writeln!(w, "| {} | {} |", name(s), cells.join(" | "));
    }
    let _ = writeln!(w);
    for (wl, title) in H2_WORKLOADS {
        h2_workload_table(w, r, h2, wl, title);
    }
    for (wl, title) in H2_IDLE {
        let _ = writeln!(
            w,
            "### {} idle {title} connections\n",
            thousands(h2.idle_conns as f64)
        );
        let _ = writeln!(
            w,
            "Each connection held after the SETTINGS exchange, without a request (see the \
             method); `held` counts those that got that far. The timed requests beside them are \
             HTTP/2 GETs: on a new connection each (connect, {}the preface, the response's last \
             byte), and as streams one after another on one connection.\n",
            if wl == "h2-idle" {
                "the TLS handshake, "
            } else {
                ""
            }
        );
        idle_rows(w, r, wl, &servers);
    }
}

/// The cipher suites h2load agreed on with the servers over TLS, if the results say.
fn h2_suites(r: &Results) -> String {
    let mut suites: Vec<&str> = r
        .load
        .iter()
        .chain(
            r.rounds
                .iter()
                .flat_map(|(k, all)| all.iter().map(move |l| (k, l))),
        )
        .filter(|((_, wl), _)| wl.starts_with("h2-"))
        .filter_map(|(_, l)| l.suite.as_deref())
        .collect();
    suites.sort_unstable();
    suites.dedup();
    if suites.is_empty() {
        return String::new();
    }
    let listed: Vec<String> = suites.iter().map(|s| format!("`{s}`")).collect();
    format!("; negotiated: {}", listed.join(", "))
}

fn h2_method(w: &mut String, r: &Results, h2: &H2Meta) {
    let _ = writeln!(
        w,
        "- **Load**: {}: `h2load -t2 -c{} -m{} -D {}` on the small page ({} connections, {} \
         streams in flight on each) and `h2load -t2 -c{} -m{} -D {}` on the 1 MiB file. \
         **h2c**: `http://`, HTTP/2 from the first byte (prior knowledge, no Upgrade); **h2**: \
         `https://`, TLS 1.3 with ALPN `h2` (h2load's OpenSSL, a full handshake per \
         connection{}). h2load opens its stream and connection windows to 2^30−1 bytes, so flow \
         control does not hold the 1 MiB file back. req/s count 2xx answers; errors are h2load's \
         failed requests plus any 3xx. h2load gives no percentiles: the latency columns are its \
         mean and maximum time per request. Each measurement starts a fresh server.",
        h2.h2load,
        h2.small_conns,
        h2.small_streams,
        h2.secs,
        h2.small_conns,
        h2.small_streams,
        h2.big_conns,
        h2.big_streams,
        h2.secs,
        h2_suites(r)
    );
    let _ = writeln!(
        w,
        "- **nginx** ({}): as above, plus `listen … http2` (1.22's syntax: with `ssl` for h2; \
         without, for h2c, that port speaks HTTP/2 alone) and `sendfile off`: over h2c, nginx \
         1.22 writes a response's HEADERS frame, then turns `TCP_NODELAY` off to cork the DATA \
         frame it sends with `sendfile`, so the DATA waits behind the unacknowledged HEADERS \
         for the client's delayed ACK (about 40 ms: one GET at a time took 44 ms; the 1 MiB \
         file at `-c20 -m1` went from about 1,000 to 2,800 req/s with it off). Over TLS, \
         sendfile does not apply.",
        h2.nginx
    );
    if h2.peers.iter().any(|p| p == "h2o") {
        let _ = writeln!(
            w,
            "- **h2o** ({}, Debian's package): `num-threads: {}`, `max-connections: 100000` \
             (its default of 1,024 would turn the idle test away), `http2-idle-timeout: 60` \
             (its default of 10 s would close the idle test's first connections before the \
             last are open; bingfa's idle timeout is 60 s, nginx's 75 s), `file.dir` on the \
             site, no access log; one listener per measurement, plaintext (HTTP/1.1, and h2c by \
             prior knowledge) or TLS (`minimum-version: TLSv1.3`, OCSP stapling off). Its \
             process tree holds, beside the server, the helpers h2o starts (a spawner and a \
             perl process that annotates crash logs): they are counted in its memory.",
            h2.h2o, h2.workers
        );
    }
    if h2.peers.iter().any(|p| p == "caddy") {
        let _ = writeln!(
            w,
            "- **Caddy** ({}, Debian's package): as on the plaintext workloads, plus \
             `protocols h1 h2 h2c` (h2c by prior knowledge on the plaintext listener); over \
             TLS a `tls` directive with the run's certificate and `protocols tls1.3`, ALPN \
             offering `h2` and `http/1.1`.",
            h2.caddy
        );
    }
    let _ = writeln!(
        w,
        "- **bingfa**: `-w {}`; h2c is recognised by its preface on the same port as \
         HTTP/1.1; over TLS, ALPN offers `h2` and `http/1.1`.",
        h2.workers
    );
    let _ = writeln!(
        w,
        "- **Idle HTTP/2 connections**: `bench/tools idle --h2` opens {} connections; on each it \
         sends the preface and an empty SETTINGS frame, reads the server's SETTINGS (and \
         acknowledges them) and the acknowledgement of its own, then holds the connection \
         without a request (over TLS, `--tls` as well: a full TLS 1.3 handshake each, ALPN `h2` \
         alone). The server's memory is read while they are held (PSS of its process tree, as \
         above); then {} GETs are timed beside them.\n",
        thousands(h2.idle_conns as f64),
        thousands(h2.fresh as f64)
    );
}

/// The issue's goals for the default model over HTTP/2, each with ✓ or ✗.
fn h2_targets(w: &mut String, r: &Results, h2: &H2Meta) {
    let model = "reactor";
    let _ = writeln!(
        w,
        "### HTTP/2 targets for the default model (`{model}`), as ratios to the best peer\n"
    );
    if !h2.models.iter().any(|m| m == model) {
        let _ = writeln!(w, "`{model}` was not part of this run.\n");
        return;
    }
    let _ = writeln!(w, "| target | {model} | best peer | ratio | met |");
    let _ = writeln!(w, "|---|---:|---:|---:|:-:|");
    let lines = [
        ("h2c-small", "h2c: small file req/s ≥ 1.5×", 1.5),
        ("h2c-1m", "h2c: 1 MiB file req/s ≥ 1.0×", 1.0),
        ("h2-small", "h2 over TLS: small file req/s ≥ 1.5×", 1.5),
        ("h2-1m", "h2 over TLS: 1 MiB file req/s ≥ 1.0×", 1.0),
    ];
    for (wl, title, at_least) in lines {
        let ours = r.h2_value(model, wl, |l| l.rps);
        let best = best_peer(h2, false, |p| r.h2_value(p, wl, |l| l.rps));
        let rt = ratio(ours, best.as_ref().map(|b| b.1));
        let _ = writeln!(
            w,
            "| {title} | {} | {} | {} | {} |",
            opt(ours, thousands),
            opt(best, |(p, v)| format!("{} ({p})", thousands(v))),
            opt(rt, times),
            mark(rt.map(|x| x >= at_least))
        );
    }
    for (wl, title) in H2_IDLE {
        let ours = r.idle_target(model, wl, idle_mem);
        let best = r.best_idle(wl);
        let rt = ratio(ours, best.as_ref().map(|b| b.1));
        let _ = writeln!(
            w,
            "| memory with {} idle {title} connections ≤ best peer's | {} | {} | {} | {} |",
            thousands(h2.idle_conns as f64),
            opt(ours.map(|v| v as u64), mib),
            opt(best, |(p, v)| format!("{} ({})", mib(v as u64), name(&p))),
            opt(rt, times),
            mark(rt.map(|x| x <= 1.0))
        );
    }
    let _ = writeln!(
        w,
        "\nAs above, strictly, from this one run. CPU time per request beside it (lower is \
         better; the ratio is to the peer that spent less):\n"
    );
    let peers = &h2.peers;
    let _ = writeln!(w, "| workload | {model} | {} | ratio |", peers.join(" | "));
    let _ = writeln!(w, "|---|---:|{}---:|", "---:|".repeat(peers.len()));
    for (wl, title) in H2_WORKLOADS {
        let ours = r.h2_value(model, wl, cpu_per_request);
        let theirs: Vec<String> = peers
            .iter()
            .map(|p| opt(r.h2_value(p, wl, cpu_per_request), micros))
            .collect();
        let best = best_peer(h2, true, |p| r.h2_value(p, wl, cpu_per_request));
        let _ = writeln!(
            w,
            "| {title} | {} | {} | {} |",
            opt(ours, micros),
            theirs.join(" | "),
            opt(ratio(ours, best.map(|b| b.1)), times)
        );
    }
    let _ = writeln!(w);
}

/// Every round behind the HTTP/2 targets' medians.
fn h2_rounds(w: &mut String, r: &Results, h2: &H2Meta) {
    let model = "reactor";
    if h2.rounds == 0 {
        let _ = writeln!(
            w,
            "Every number above is the single measurement of the tables below.\n"
        );
        return;
    }
    let servers: Vec<&str> = std::iter::once(model)
        .chain(h2.peers.iter().map(String::as_str))
        .collect();
    let peers: Vec<String> = h2.peers.iter().map(|p| name(p)).collect();
    let in_run_order = format!("{} and {}", peers.join(", "), name(model));
    let _ = writeln!(
        w,
        "Every number above is a median over {} run after the tables below: in each, {} took \
         each HTTP/2 workload and then the idle tests back to back, a fresh server each time. \
         Every round ({}, and `{model}`'s ratio to the best peer):\n",
        if h2.rounds == 1 {
            "1 round".to_string()
        } else {
            format!("{} rounds", h2.rounds)
        },
        in_run_order,
        servers.iter().map(|s| name(s)).collect::<Vec<_>>().join(" / ")
    );
    let _ = writeln!(
        w,
        "| workload | round | req/s | ratio | CPU per request | ratio | mean latency |"
    );
    let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|---:|");
    for (wl, title) in H2_WORKLOADS {
        for round in 1..=h2.rounds {
            let of_round = |s: &str| r.rounds(s, wl).into_iter().find(|l| l.round == Some(round));
            let cells = |f: &dyn Fn(&Load) -> Option<f64>, fmt: &dyn Fn(f64) -> String| {
                servers
                    .iter()
                    .map(|s| opt(of_round(s).and_then(f), fmt))
                    .collect::<Vec<_>>()
                    .join(" / ")
            };
            let ours = |f: &dyn Fn(&Load) -> Option<f64>| of_round(model).and_then(f);
            let best = |f: &dyn Fn(&Load) -> Option<f64>, lowest: bool| {
                best_peer(h2, lowest, |p| of_round(p).and_then(f)).map(|b| b.1)
            };
            let rps = |l: &Load| l.rps;
            let mean = |l: &Load| l.mean_ms;
            let _ = writeln!(
                w,
                "| {title} | {round} | {} | {} | {} | {} | {} |",
                cells(&rps, &thousands),
                opt(ratio(ours(&rps), best(&rps, false)), times),
                cells(&cpu_per_request, &micros),
                opt(ratio(ours(&cpu_per_request), best(&cpu_per_request, true)), times),
                cells(&mean, &ms),
            );
        }
    }
    let _ = writeln!(w);
    h2_idle_rounds(w, r, h2, &servers);
}

/// The HTTP/2 idle tests' rounds, from results whose rounds had them (bench/run no longer
/// runs them again: their memory hardly moves with the machine's load).
fn h2_idle_rounds(w: &mut String, r: &Results, h2: &H2Meta, servers: &[&str]) {
    if !H2_IDLE
        .iter()
        .any(|(wl, _)| r.idle_rounds("reactor", wl).is_some())
    {
        return;
    }
    let _ = writeln!(
        w,
        "And the idle tests ({} connections held), in the same rounds ({}):\n",
        thousands(h2.idle_conns as f64),
        servers.iter().map(|s| name(s)).collect::<Vec<_>>().join(" / ")
    );
    let _ = writeln!(w, "| connections | round | memory |");
    let _ = writeln!(w, "|---|---:|---:|");
    for (wl, title) in H2_IDLE {
        for round in 1..=h2.rounds {
            let of_round = |s: &str| {
                r.idle_rounds(s, wl)
                    .and_then(|all| all.iter().find(|d| d.round == Some(round) && d.ok))
                    .and_then(idle_mem)
            };
            let cells: Vec<String> = servers
                .iter()
                .map(|s| opt(of_round(s), |v| mib(v as u64)))
                .collect();
            let _ = writeln!(w, "| {title} | {round} | {} |", cells.join(" / "));
        }
    }
    let _ = writeln!(w);
}

/// Every server on one HTTP/2 workload: rate, CPU time per request, latency, errors, memory.
fn h2_workload_table(w: &mut String, r: &Results, h2: &H2Meta, wl: &str, title: &str) {
    let _ = writeln!(w, "### {title}\n");
    let _ = writeln!(
        w,
        "| server | req/s | × best peer | CPU per request | × best peer | syscalls per request | \
         mean latency | max | errors | peak memory |"
    );
    let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let best_rps = best_peer(h2, false, |p| r.rps(p, wl)).map(|b| b.1);
    let best_cpu = best_peer(h2, true, |p| r.load(p, wl).and_then(cpu_per_request)).map(|b| b.1);
    for s in &r.h2_servers() {
        let l = r.load.get(&(s.clone(), wl.to_string()));
        let Some(l) = l.filter(|l| l.ok) else {
            let why = l
                .and_then(|l| l.error.clone())
                .unwrap_or_else(|| "not run".into());
            let _ = writeln!(w, "| {} | {DASH} ({why}) |{}", name(s), " |".repeat(9));
            continue;
        };
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            name(s),
            opt(l.rps, thousands),
            opt(ratio(l.rps, best_rps), times),
            opt(cpu_per_request(l), micros),
            opt(ratio(cpu_per_request(l), best_cpu), times),
            opt(syscalls_per_request(l), calls),
            opt(l.mean_ms, ms),
            opt(l.max_ms, ms),
            opt(l.errors, |e| thousands(e as f64)),
            opt(l.mem_kib, mib),
        );
    }
    let _ = writeln!(w);
}

// --- the HTML page ---------------------------------------------------------------------------

/// The style of the HTML page: readable tables that scroll sideways on a narrow screen.
const CSS: &str = "body{font:15px/1.5 system-ui,sans-serif;max-width:1200px;margin:2em auto;\
padding:0 1em;color:#222}table{border-collapse:collapse;display:block;overflow-x:auto;\
margin:1em 0}th,td{border:1px solid #ccc;padding:.25em .5em;white-space:nowrap}\
th{background:#f3f3f3}tr:nth-child(even) td{background:#fafafa}code{background:#f3f3f3;\
padding:0 .2em}pre{background:#f6f6f6;padding:.8em;overflow-x:auto}svg{max-width:100%;\
height:auto;display:block;margin:1em 0}blockquote{border-left:4px solid #e0a000;margin:1em 0;\
padding:.2em 1em;background:#fff8e0}details{margin:.5em 0}";

/// The report as one HTML page that needs nothing else: the Markdown rendered (tables too),
/// each chart's SVG inlined where the Markdown links it (a chart that cannot be read is left
/// as its alt text). `charts_rel` is the charts' folder as the Markdown names it, relative to
/// `out_dir`, the report's folder.
fn html_page(markdown: &str, charts_rel: &str, out_dir: &Path, quick: bool) -> String {
    let mut events = Vec::new();
    let mut in_image = false;
    for event in Parser::new_ext(markdown, Options::ENABLE_TABLES) {
        match event {
            Event::Start(Tag::Image { dest_url, .. }) => {
                match inline_svg(&out_dir.join(dest_url.as_ref()), charts_rel) {
                    Some(svg) => {
                        events.push(Event::Html(svg.into()));
                        in_image = true;
                    }
                    None => events.push(Event::Start(Tag::Image {
                        link_type: pulldown_cmark::LinkType::Inline,
                        dest_url,
                        title: "".into(),
                        id: "".into(),
                    })),
                }
            }
            Event::End(TagEnd::Image) if in_image => in_image = false,
            _ if in_image => {}
            other => events.push(other),
        }
    }
    name_headings(&mut events);
    let mut body = String::new();
    html::push_html(&mut body, events.into_iter());
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>bingfa benchmarks{}</title><style>{CSS}</style></head>\n<body>\n{body}</body></html>\n",
        if quick { " (quick run)" } else { "" }
    )
}

/// Gives each heading the id GitHub gives it (its text, lower case, spaces as dashes, only
/// letters, digits, dashes and underscores kept), so that the report's links to its own
/// sections work in the page too.
fn name_headings(events: &mut [Event<'_>]) {
    for i in 0..events.len() {
        if let Event::Start(Tag::Heading { .. }) = &events[i] {
            let mut text = String::new();
            for e in &events[i + 1..] {
                match e {
                    Event::End(TagEnd::Heading(_)) => break,
                    Event::Text(t) | Event::Code(t) => text.push_str(t),
                    _ => {}
                }
            }
            if let Event::Start(Tag::Heading { id, .. }) = &mut events[i] {
                *id = Some(slug(&text).into());
            }
        }
    }
}

fn slug(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// A chart's SVG for inlining, if it is one of ours (under the charts' folder) and readable.
fn inline_svg(path: &Path, charts_rel: &str) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    if !name.ends_with(".svg")
        || !path
            .to_string_lossy()
            .contains(charts_rel.trim_start_matches("./"))
    {
        return None;
    }
    let svg = std::fs::read_to_string(path).ok()?;
    let start = svg.find("<svg")?;
    Some(svg[start..].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A results file: the meta record, then one main-pass load record per (server, workload,
    /// req/s, CPU µs per request, system calls per request).
    fn results(loads: &[(&str, &str, f64, f64, f64)]) -> Results {
        let mut lines = vec![serde_json::json!({
            "kind": "meta", "nproc": 2, "models": ["reactor"], "idle_conns": 9000,
            "peers": ["nginx", "nginx-nopush", "h2o"], "syscalls": true,
        })
        .to_string()];
        for (server, workload, rps, cpu, calls) in loads {
            let requests = 100_000.0;
            lines.push(
                serde_json::json!({
                    "kind": "load", "server": server, "workload": workload, "ok": true,
                    "rps": rps, "requests": requests as u64, "cpu_us": (cpu * requests) as u64,
                    "syscalls": (calls * requests) as u64, "p99_ms": 5.0,
                })
                .to_string(),
            );
        }
        lines.push(
            serde_json::json!({
                "kind": "peer", "server": "h2o", "version": "h2o version 2.2.5",
                "config": "num-threads: 2\nhosts: {}",
            })
            .to_string(),
        );
        let dir = std::env::temp_dir().join(format!("report-test-{}-{}", std::process::id(), lines.len()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("results.jsonl");
        std::fs::write(&file, lines.join("\n")).unwrap();
        let r = Results::read(&file).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        r
    }

    #[test]
    fn the_best_peer_is_the_best_of_every_peer_nginx_counting_its_better_variant() {
        let r = results(&[
            ("nginx", "1m", 2000.0, 150.0, 5.0),
            ("nginx-nopush", "1m", 2500.0, 120.0, 4.0),
            ("h2o", "1m", 2200.0, 300.0, 30.0),
            ("reactor", "1m", 2400.0, 110.0, 6.0),
        ]);
        assert_eq!(
            r.best_main("1m", false, |l| l.rps).map(|b| b.0),
            Some("nginx-nopush".into())
        );
        assert_eq!(
            r.best_main("1m", true, cpu_per_request).map(|b| b.0),
            Some("nginx-nopush".into())
        );
        let md = report(&r, "bench/charts");
        // reactor spends less CPU but serves less than nginx with tcp_nopush on: not ahead.
        assert!(
            md.contains("| 1 MiB file | **110 µs** | 120 µs (nginx (tcp_nopush on)) | **0.92×** |"),
            "{md}"
        );
        assert!(
            md.contains("- 1 MiB file: 0.96× the req/s of nginx (tcp_nopush on)"),
            "{md}"
        );
    }

    #[test]
    fn the_rounds_take_the_fastest_and_the_thriftiest_peer_once_each() {
        let r = results(&[
            ("nginx", "small", 50_000.0, 12.0, 3.0),
            ("nginx-nopush", "small", 48_000.0, 13.0, 3.0),
            ("h2o", "small", 80_000.0, 10.0, 3.0),
            ("nginx", "pipeline", 40_000.0, 6.0, 2.0),
            ("h2o", "pipeline", 120_000.0, 7.0, 2.0),
        ]);
        assert_eq!(r.best_for_rounds("small"), vec!["h2o".to_string()]);
        assert_eq!(
            r.best_for_rounds("pipeline"),
            vec!["h2o".to_string(), "nginx".to_string()]
        );
    }

    #[test]
    fn system_calls_and_the_ceiling_are_reported_per_request() {
        let r = results(&[
            ("h2o", "small", 80_000.0, 10.0, 3.25),
            ("ceiling", "small", 100_000.0, 7.0, 2.0),
            ("reactor", "small", 90_000.0, 8.0, 2.0),
        ]);
        let md = report(&r, "bench/charts");
        assert!(md.contains("| 2.00 / 3.25 | 90% | ✓ |"), "{md}");
        assert!(md.contains("| `reactor` | 90% · 1.14× CPU |"), "{md}");
        assert!(md.contains("num-threads: 2\nhosts: {}"), "{md}");
    }

    #[test]
    fn the_html_page_inlines_the_charts_and_needs_no_network() {
        let dir = std::env::temp_dir().join(format!("report-html-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("charts")).unwrap();
        std::fs::write(
            dir.join("charts/models.svg"),
            "<?xml version=\"1.0\"?>\n<svg width=\"10\" height=\"10\" xmlns=\"http://www.w3.org/2000/svg\"><rect/></svg>",
        )
        .unwrap();
        let md = "# Benchmarks\n\n![chart](charts/models.svg)\n\n| a | b |\n|---|---:|\n| `x` | 1 |\n";
        let page = html_page(md, "charts", &dir, false);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("<svg width=\"10\""), "{page}");
        assert!(!page.contains("<?xml"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(page.contains("<td><code>x</code></td>"), "{page}");
        assert!(page.contains("<h1 id=\"benchmarks\">"), "{page}");
        for attr in ["src=\"http", "href=\"http", "@import", "url("] {
            assert!(!page.contains(attr), "{attr} in {page}");
        }
    }
}
