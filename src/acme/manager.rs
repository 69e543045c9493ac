//! The loop that keeps every name's certificate fresh: it sleeps until a name is due (none
//! stored, or a third of its lifetime left, or its backoff over), takes the state directory's
//! lock, looks again (another process may have renewed it meanwhile: then that one is served),
//! orders, stores, and has the serving processes load the new set ([`Publish`]). New handshakes
//! get the new certificate; connections open keep theirs.
//!
//! It runs on a small current-thread tokio runtime (instant-acme is async) on a thread of the
//! process that also answers HTTP-01 (see `server/endpoint.rs`), until that stops.

use super::challenge::Http01Tokens;
use super::order::{obtain, Ca, Challenge, OrderError, Responders, ORDER_LIMIT};
use super::schedule::{Backoff, Failure, LEAST_GAP};
use super::store::{Store, Stored};
use crate::observe::CertificateMetrics;
use crate::shutdown::Shutdown;
use instant_acme::Account;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// The longest sleep between two looks at the schedule, so that a clock stepped forward (or a
/// machine resumed) is noticed within it.
const LONGEST_SLEEP: Duration = Duration::from_secs(60 * 60);
/// While another process holds the lock, how often to try for it.
const LOCK_RETRY: Duration = Duration::from_secs(1);

/// How the serving processes learn that the stored certificates changed.
#[derive(Clone)]
pub(crate) enum Publish {
    /// This process serves: reload them here (the TLS configuration is shared by its threads).
    Reload(Arc<dyn Fn() + Send + Sync>),
    /// A forking model's parent serves (and its workers): SIGHUP it, which it reads in its
    /// loop, reloads and passes on (see `engine/hangups.rs`).
    Signal(Pid),
}

impl std::fmt::Debug for Publish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Publish::Reload(_) => f.write_str("Reload"),
            Publish::Signal(pid) => write!(f, "Signal({pid})"),
        }
    }
}

impl Publish {
    fn publish(&self) {
        match self {
            Publish::Reload(reload) => reload(),
            Publish::Signal(pid) => {
                if let Err(e) = kill(*pid, Signal::SIGHUP) {
                    tracing::error!("cannot tell the server (pid {pid}) to load the new certificate: {e}");
                }
            }
        }
    }
}

/// What the loop knows of one name.
#[derive(Debug, Default)]
struct Name {
    /// The certificate the servers have (its expiry), as this loop last saw it stored.
    served: Option<SystemTime>,
    backoff: Backoff,
    /// Not before then, after a failure.
    retry_at: Option<SystemTime>,
    /// This certificate's share of the renewal jitter (0 to 1), drawn when it is first seen.
    jitter: f64,
    /// When this loop last obtained it.
    obtained: Option<Instant>,
}

/// The loop, and what it needs.
pub(crate) struct Manager {
    pub(super) store: Store,
    pub(super) ca: Ca,
    pub(super) renew_before: Option<Duration>,
    /// HTTP-01 is answered from these (this process serves the plaintext listener), or not at
    /// all (`None`): then TLS-ALPN-01 alone.
    pub(super) http01: Option<Http01Tokens>,
    pub(super) publish: Option<Publish>,
    pub(super) metrics: Option<CertificateMetrics>,
    names: Vec<(String, Name)>,
    account: Option<Account>,
}

impl Manager {
    pub(super) fn new(store: Store, ca: Ca, names: &[String]) -> Manager {
        Manager {
            store,
            ca,
            renew_before: None,
            http01: None,
            publish: None,
            metrics: None,
            names: names.iter().map(|name| (name.clone(), Name::default())).collect(),
            account: None,
        }
    }

    /// Runs until `stop` is triggered.
    pub fn run(mut self, stop: &Shutdown) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        let runtime = match runtime {
            Ok(runtime) => runtime,
            Err(e) => {
                return tracing::error!("automatic HTTPS cannot start, no certificate will be obtained: {e}")
            }
        };
        runtime.block_on(async {
            // SAFETY: `stop` outlives the runtime, and its descriptor stays open all along.
            let stopped = unsafe { AsyncFd::register_with_interest(stop.fd(), Interest::READABLE) };
            let stopped = match stopped {
                Ok(stopped) => stopped,
                Err(e) => return tracing::error!("automatic HTTPS cannot start: {e}"),
            };
            self.note_stored(SystemTime::now());
            loop {
                tokio::select! {
                    _ = stopped.readable() => return,
                    () = self.turn() => {}
                }
            }
        });
    }

    /// What was stored at start, as the servers loaded it.
    fn note_stored(&mut self, now: SystemTime) {
        for (name, state) in &mut self.names {
            state.jitter = random_fraction();
            if let Ok(Some(stored)) = self.store.certificate(name) {
                if stored.validity.valid_at(now) {
                    state.served = Some(stored.validity.not_after);
                    if let Some(metrics) = &self.metrics {
                        metrics.expires(name, stored.validity.not_after);
                    }
                }
            }
        }
    }

    /// One turn: sleeps until a name is due, then orders what is due.
    async fn turn(&mut self) {
        let now = SystemTime::now();
        let next = self
            .names
            .iter()
            .map(|(name, state)| self.due_at(name, state, now))
            .min();
        let Some(next) = next else {
            return std::future::pending().await;
        };
        if let Ok(wait) = next.duration_since(now) {
            if !wait.is_zero() {
                return tokio::time::sleep(wait.min(LONGEST_SLEEP)).await;
            }
        }
        let Some(_lock) = self.lock().await else {
            return;
        };
        for at in 0..self.names.len() {
            let now = SystemTime::now();
            let name = self.names[at].0.clone();
            // Stored by another process since this one last looked: served from now on (and
            // not due, unless it is as old as the one it replaced).
            let stored = self.store.certificate(&name).ok().flatten();
            if let Some(stored) = stored.filter(|stored| stored.validity.valid_at(now)) {
                if self.names[at].1.served != Some(stored.validity.not_after) {
                    self.adopt(at, &stored);
                }
            }
            if self.due_at(&name, &self.names[at].1, now) <= now {
                self.order(at, &name).await;
            }
        }
    }

    /// When `name` is next due: at once if nothing valid is stored, else at its renewal time,
    /// never before its backoff ends or within `LEAST_GAP` of the last order.
    fn due_at(&self, name: &str, state: &Name, now: SystemTime) -> SystemTime {
        let mut due = match self.store.certificate(name) {
            Ok(Some(stored)) if stored.validity.valid_at(now) => {
                stored.validity.renew_at(self.renew_before, state.jitter)
            }
            _ => now,
        };
        if let Some(retry_at) = state.retry_at {
            due = due.max(retry_at);
        }
        if let Some(obtained) = state.obtained {
            let gap = LEAST_GAP.saturating_sub(obtained.elapsed());
            due = due.max(now + gap);
        }
        due
    }

    /// The ordering lock, waited for while another process holds it (it may be renewing the
    /// same names); `None` if the state directory fails, after a line saying so.
    async fn lock(&mut self) -> Option<crate::fs::StateLock> {
        loop {
            match self.store.try_lock() {
                Ok(Some(lock)) => return Some(lock),
                Ok(None) => tokio::time::sleep(LOCK_RETRY).await,
                Err(e) => {
                    tracing::error!("cannot lock {}: {e}", self.store.path().display());
                    for (_, state) in &mut self.names {
                        let delay = state.backoff.failed(Failure::Refused, random_fraction());
                        state.retry_at = Some(SystemTime::now() + delay);
                    }
                    return None;
                }
            }
        }
    }

    /// Another process stored a new certificate for the name at `at`: served from now on.
    fn adopt(&mut self, at: usize, stored: &Stored) {
        let (name, state) = &mut self.names[at];
        state.backoff.succeeded();
        state.retry_at = None;
        if state.served != Some(stored.validity.not_after) {
            state.served = Some(stored.validity.not_after);
            state.jitter = random_fraction();
            tracing::info!("certificate for {name}: another process stored a new one, serving it");
            self.published(at, stored.validity.not_after);
        }
    }

    /// Orders the certificate of the name at `at` by each challenge this server can answer in
    /// turn, until one is obtained or the CA cannot be reached. Each failed order is one line
    /// with the CA's answer; the last also says what is served meanwhile and when the next
    /// attempt comes.
    async fn order(&mut self, at: usize, name: &str) {
        let challenges = self.challenges();
        let mut failed = None;
        for (tried, challenge) in challenges.iter().enumerate() {
            let ordered = tokio::time::timeout(ORDER_LIMIT, self.order_by(name, *challenge)).await;
            let Err(e) = ordered.unwrap_or(Err(OrderError::TimedOut)) else {
                failed = None;
                break;
            };
            let unreachable = e.failure() == Failure::Unreachable;
            match challenges.get(tried + 1) {
                Some(next) if !unreachable => {
                    tracing::warn!(
                        "certificate for {name}: {} order failed: {e}; trying {}",
                        challenge.name(),
                        next.name()
                    );
                }
                _ => {
                    failed = Some((*challenge, e));
                    break;
                }
            }
        }
        match failed {
            None => self.obtained(at, name),
            Some((challenge, e)) => self.failed(at, name, challenge, &e),
        }
    }

    fn obtained(&mut self, at: usize, name: &str) {
        let state = &mut self.names[at].1;
        state.backoff.succeeded();
        state.retry_at = None;
        state.obtained = Some(Instant::now());
        state.jitter = random_fraction();
        if let Ok(Some(stored)) = self.store.certificate(name) {
            state.served = Some(stored.validity.not_after);
            tracing::info!(
                "certificate for {name} obtained, valid until {}",
                httpdate::fmt_http_date(stored.validity.not_after)
            );
            self.published(at, stored.validity.not_after);
        }
    }

    fn failed(&mut self, at: usize, name: &str, challenge: Challenge, e: &OrderError) {
        if let Some(metrics) = &self.metrics {
            metrics.order_failed(name);
        }
        let state = &mut self.names[at].1;
        let kind = e.failure();
        let delay = state.backoff.failed(kind, random_fraction());
        state.retry_at = Some(SystemTime::now() + delay);
        let serving = match state.served {
            Some(_) => "serving the one stored",
            None => "none to serve yet",
        };
        let next = delay.as_secs().max(1);
        match kind {
            Failure::Unreachable => tracing::error!(
                "certificate for {name}: cannot reach the CA at {}: {e}; {serving}, next attempt in {next}s",
                self.ca.directory
            ),
            Failure::Refused => tracing::error!(
                "certificate for {name}: {} order failed: {e}; {serving}, next attempt in {next}s",
                challenge.name()
            ),
        }
    }

    /// The challenges to try, best first: HTTP-01 where this process answers it (it needs no
    /// more than port 80), then TLS-ALPN-01.
    fn challenges(&self) -> Vec<Challenge> {
        match self.http01 {
            Some(_) => vec![Challenge::Http01, Challenge::TlsAlpn01],
            None => vec![Challenge::TlsAlpn01],
        }
    }

    /// One order for `name` by `challenge`, its certificate stored.
    async fn order_by(&mut self, name: &str, challenge: Challenge) -> Result<(), OrderError> {
        let account = match &self.account {
            Some(account) => account.clone(),
            None => {
                let account = self.ca.account(&self.store).await?;
                self.account = Some(account.clone());
                account
            }
        };
        let unused = Http01Tokens::default();
        let responders = Responders {
            http01: self.http01.as_ref().unwrap_or(&unused),
            store: &self.store,
        };
        let obtained = obtain(&account, name, challenge, &responders).await?;
        self.store
            .save_certificate(name, &obtained.chain, &obtained.key)?;
        Ok(())
    }

    /// The certificate of the name at `at` (valid until `expiry`) is stored: the servers load
    /// it, the metrics show it.
    fn published(&self, at: usize, expiry: SystemTime) {
        if let Some(metrics) = &self.metrics {
            metrics.expires(&self.names[at].0, expiry);
        }
        if let Some(publish) = &self.publish {
            publish.publish();
        }
    }
}

/// A fraction from 0 to 1 for jitter; 0.5 if the system has no randomness to give.
fn random_fraction() -> f64 {
    getrandom::u32().map_or(0.5, |n| f64::from(n) / f64::from(u32::MAX))
}
