//! Automatic HTTPS (`--acme-domain`): certificates from an ACME CA (RFC 8555; Let's Encrypt
//! by default), obtained at start when none is stored, renewed in the background with a third
//! of their lifetime left, and served without a restart.
//!
//! How it works: the state directory keeps the account and each name's certificate
//! (`store`). At start the server serves what is stored and valid, each certificate to its own
//! name only (a name with none yet fails its handshake cleanly). One loop (`manager`) orders
//! what is missing or due through instant-acme (`order`), answering HTTP-01 from memory on the
//! `--redirect-http` listener when there is one, else (or when that fails) TLS-ALPN-01 on the
//! HTTPS listener (`challenge`), then has the serving processes reload: in place, or by SIGHUP
//! to a forking model's parent, which passes it on to its workers. Failed orders back off
//! (`schedule`); the lock in the state directory lets one process of several sharing it order.
//!
//! What it costs: nothing per request or handshake. The loop sleeps until a name is due; a
//! handshake offering ALPN `acme-tls/1` alone (a validator) costs one small file read.
//!
//! When it wins: a public server with names pointing at it and port 80 or 443 reachable by
//! the CA; with a certificate from elsewhere, `--tls-cert` remains.

mod challenge;
mod manager;
mod order;
mod schedule;
mod store;

pub use challenge::AnswerHttp01;
use challenge::{Http01Tokens, StoredChallenges};
pub(crate) use manager::{Manager, Publish};
use order::Ca;
use store::Store;

use crate::fs::{load_named, StateDir};
use crate::observe::CertificateMetrics;
use crate::seam::{Certificates, TlsConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Let's Encrypt's production directory, the default CA.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory: untrusted certificates, generous rate limits, for trying.
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// What automatic HTTPS is told.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    /// The names to obtain certificates for (checked host names, lowercase, no wildcard).
    pub names: Vec<String>,
    /// The account's contact, for the CA's expiry notices.
    pub email: Option<String>,
    /// The CA's directory URL.
    pub directory: String,
    /// A PEM file of the roots that the CA's HTTPS is checked with, instead of the platform's.
    pub ca_root: Option<PathBuf>,
    /// Where the account and certificates are kept.
    pub state_dir: PathBuf,
    /// Test-only: renew with this much lifetime left instead of a third.
    pub renew_before: Option<Duration>,
}

/// Why automatic HTTPS cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("cannot use the state directory {}: {source}", path.display())]
    StateDir { path: PathBuf, source: std::io::Error },
    #[error("cannot read --acme-ca-root {}: {source}", path.display())]
    CaRootFile { path: PathBuf, source: std::io::Error },
    #[error("--acme-ca-root {} holds no PEM certificate", path.display())]
    CaRoot { path: PathBuf },
    #[error("cannot serve HTTPS: {0}")]
    Tls(#[from] crate::seam::TlsError),
    #[error("no state directory: set --state-dir, XDG_STATE_HOME or HOME")]
    NoStateDir,
}

/// The default `--state-dir`: `bingfa` in the XDG state directory (`$XDG_STATE_HOME`, else
/// `~/.local/state`), from `env`.
pub fn default_state_dir(env: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<PathBuf, AcmeError> {
    if let Some(state) = env("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        return Ok(state.join("bingfa"));
    }
    let home = env("HOME").map(PathBuf::from).filter(|p| p.is_absolute());
    home.map(|home| home.join(".local/state/bingfa"))
        .ok_or(AcmeError::NoStateDir)
}

/// Automatic HTTPS, ready to serve what is stored and to order the rest.
#[derive(Debug, Clone)]
pub(crate) struct Acme {
    names: Vec<String>,
    store: Store,
    ca: Ca,
    renew_before: Option<Duration>,
    /// The HTTP-01 answers of the process that orders (shared with its plaintext listener).
    http01: Http01Tokens,
}

impl Acme {
    /// Opens the state directory (made 0700 if missing) and reads the CA's roots, so that
    /// either mistake shows at start.
    pub fn open(settings: &AcmeSettings) -> Result<Acme, AcmeError> {
        let dir = StateDir::open(&settings.state_dir).map_err(|source| AcmeError::StateDir {
            path: settings.state_dir.clone(),
            source,
        })?;
        let roots = settings.ca_root.as_deref().map(read_roots).transpose()?;
        Ok(Acme {
            names: settings.names.clone(),
            store: Store::new(dir, &settings.directory),
            ca: Ca {
                directory: settings.directory.clone(),
                email: settings.email.clone(),
                roots,
            },
            renew_before: settings.renew_before,
            http01: Http01Tokens::default(),
        })
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The TLS configuration: the stored certificates, and the TLS-ALPN-01 answers.
    pub fn tls(&self) -> Result<TlsConfig, AcmeError> {
        let challenges = Arc::new(StoredChallenges {
            store: self.store.clone(),
            names: self.names.clone(),
        });
        let (certificates, loaded) = self.store.certificates(&self.names, SystemTime::now());
        let missing: Vec<&str> = self
            .names
            .iter()
            .filter(|name| !loaded.contains(name))
            .map(String::as_str)
            .collect();
        if !loaded.is_empty() {
            tracing::info!("serving the stored certificates of {}", loaded.join(", "));
        }
        if !missing.is_empty() {
            tracing::info!(
                "no valid certificate stored for {}: ordering it",
                missing.join(", ")
            );
        }
        Ok(TlsConfig::with_challenges(certificates, challenges)?)
    }

    /// The stored certificates valid now, for `tls` to serve from its next handshake.
    pub fn reload(&self, tls: &TlsConfig) -> Vec<String> {
        let (certificates, loaded) = self.certificates();
        tls.replace(certificates);
        loaded
    }

    fn certificates(&self) -> (Certificates, Vec<String>) {
        self.store.certificates(&self.names, SystemTime::now())
    }

    /// `inner` (the redirect to HTTPS), answering HTTP-01 first.
    pub fn answer_http01<H>(&self, inner: H) -> AnswerHttp01<H> {
        AnswerHttp01::new(self.http01.clone(), inner)
    }

    /// The loop that orders, telling `publish` of each new certificate and `metrics` of
    /// expiries and failures; `http01`: whether the process it runs in answers HTTP-01.
    pub fn manager(
        &self,
        http01: bool,
        publish: Option<Publish>,
        metrics: Option<CertificateMetrics>,
    ) -> Manager {
        let mut manager = Manager::new(self.store.clone(), self.ca.clone(), &self.names);
        manager.renew_before = self.renew_before;
        manager.http01 = http01.then(|| self.http01.clone());
        manager.publish = publish;
        manager.metrics = metrics;
        manager
    }
}

/// The roots in the PEM file at `path`.
fn read_roots(path: &Path) -> Result<Vec<CertificateDer<'static>>, AcmeError> {
    let pem = load_named(path).map_err(|source| AcmeError::CaRootFile {
        path: path.to_path_buf(),
        source,
    })?;
    let roots: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    if roots.is_empty() {
        return Err(AcmeError::CaRoot {
            path: path.to_path_buf(),
        });
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    #[test]
    fn the_default_state_dir_follows_xdg_then_home() {
        let env = |pairs: &'static [(&str, &str)]| {
            move |key: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let xdg = default_state_dir(env(&[("XDG_STATE_HOME", "/s"), ("HOME", "/h")])).unwrap();
        assert_eq!(xdg, Path::new("/s/bingfa"));
        let home = default_state_dir(env(&[("XDG_STATE_HOME", "rel"), ("HOME", "/h")])).unwrap();
        assert_eq!(
            home,
            Path::new("/h/.local/state/bingfa"),
            "a relative XDG path is ignored"
        );
        assert!(default_state_dir(env(&[])).is_err());
    }
}
