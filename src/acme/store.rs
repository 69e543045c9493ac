//! What automatic HTTPS keeps in the state directory, one folder per CA (named after its
//! directory URL, so that a certificate from the staging CA is never taken for a production
//! one):
//!
//! ```text
//! STATE/acme-v02.api.letsencrypt.org-directory/
//!     account.json              the ACME account (its key, its URL)
//!     certificates/NAME.pem     a name's certificate chain, then its key: one file, replaced
//!                               whole, so a reader never pairs a new chain with an old key
//!     challenges/NAME.pem       a TLS-ALPN-01 challenge certificate and key, while an
//!                               order waits on its validation
//!     lock                      held by the one process ordering
//! ```

use super::schedule::Validity;
use crate::fs::{StateDir, StateLock};
use crate::seam::{Certificates, Pem};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The state directory's folder for one CA.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    dir: StateDir,
    ca: PathBuf,
}

/// A certificate as stored: its PEM (chain and key) and when it is valid.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub pem: Vec<u8>,
    pub validity: Validity,
}

impl Store {
    /// The folder of the CA whose directory is at `directory` (a URL), inside `dir`.
    pub fn new(dir: StateDir, directory: &str) -> Store {
        Store {
            dir,
            ca: PathBuf::from(folder_name(directory)),
        }
    }

    /// The folder, for messages.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join(&self.ca)
    }

    pub fn account(&self) -> io::Result<Option<Vec<u8>>> {
        self.dir.read(&self.ca.join("account.json"))
    }

    pub fn save_account(&self, json: &[u8]) -> io::Result<()> {
        self.dir.write(&self.ca.join("account.json"), json)
    }

    /// `name`'s stored certificate, if there is one that parses (any validity: the caller
    /// decides what to do with an expired one).
    pub fn certificate(&self, name: &str) -> io::Result<Option<Stored>> {
        let Some(pem) = self.dir.read(&certificate_file(&self.ca, name))? else {
            return Ok(None);
        };
        Ok(validity_of(&pem).map(|validity| Stored { pem, validity }))
    }

    pub fn save_certificate(&self, name: &str, chain: &str, key: &str) -> io::Result<()> {
        let pem = format!("{}\n{}", chain.trim_end(), key);
        self.dir.write(&certificate_file(&self.ca, name), pem.as_bytes())
    }

    /// The certificates of `names` valid at `now`, ready to serve (each to its own name), and
    /// the names they are for; one that does not load is left out, with a line saying why.
    pub fn certificates(&self, names: &[String], now: SystemTime) -> (Certificates, Vec<String>) {
        let mut pems = Vec::with_capacity(names.len());
        for name in names {
            match self.certificate(name) {
                Ok(Some(stored)) if stored.validity.valid_at(now) => pems.push((name, stored.pem)),
                Ok(_) => {}
                Err(e) => tracing::warn!("cannot read the certificate of {name}: {e}"),
            }
        }
        loop {
            let borrowed: Vec<Pem<'_>> = pems.iter().map(|(_, pem)| Pem { chain: pem, key: pem }).collect();
            match Certificates::by_name_only(&borrowed) {
                Ok(certificates) => {
                    return (
                        certificates,
                        pems.into_iter().map(|(name, _)| name.clone()).collect(),
                    )
                }
                Err((at, e)) => {
                    tracing::warn!("the stored certificate of {} does not load: {e}", pems[at].0);
                    pems.remove(at);
                }
            }
        }
    }

    pub fn challenge(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        self.dir.read(&challenge_file(&self.ca, name))
    }

    pub fn save_challenge(&self, name: &str, pem: &str) -> io::Result<()> {
        self.dir.write(&challenge_file(&self.ca, name), pem.as_bytes())
    }

    pub fn remove_challenge(&self, name: &str) -> io::Result<()> {
        self.dir.remove(&challenge_file(&self.ca, name))
    }

    /// The right to order, if no other process holds it.
    pub fn try_lock(&self) -> io::Result<Option<StateLock>> {
        self.dir.try_lock(&self.ca.join("lock"))
    }
}

fn certificate_file(ca: &Path, name: &str) -> PathBuf {
    ca.join("certificates").join(format!("{name}.pem"))
}

fn challenge_file(ca: &Path, name: &str) -> PathBuf {
    ca.join("challenges").join(format!("{name}.pem"))
}

/// A CA's folder: its directory URL without the scheme, each character other than a letter,
/// digit, dot or hyphen made `-` (`https://acme-v02.api.letsencrypt.org/directory` →
/// `acme-v02.api.letsencrypt.org-directory`).
fn folder_name(directory: &str) -> String {
    let rest = directory.split_once("://").map_or(directory, |(_, rest)| rest);
    let name: String = rest
        .trim_end_matches('/')
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' => c,
            _ => '-',
        })
        .collect();
    // Never `.` or `..`, which would not be a folder of its own.
    match name.trim_start_matches('.') {
        "" => "ca".to_string(),
        name => name.to_string(),
    }
}

/// When the first certificate of `pem` (the leaf) is valid; `None` if it does not parse.
pub(crate) fn validity_of(pem: &[u8]) -> Option<Validity> {
    let leaf = CertificateDer::pem_slice_iter(pem).next()?.ok()?;
    let (_, certificate) = x509_parser::parse_x509_certificate(&leaf).ok()?;
    let validity = certificate.validity();
    Some(Validity {
        not_before: unix_time(validity.not_before.timestamp())?,
        not_after: unix_time(validity.not_after.timestamp())?,
    })
}

fn unix_time(seconds: i64) -> Option<SystemTime> {
    let seconds = u64::try_from(seconds).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cas_folder_is_named_after_its_directory() {
        assert_eq!(
            folder_name("https://acme-v02.api.letsencrypt.org/directory"),
            "acme-v02.api.letsencrypt.org-directory"
        );
        assert_eq!(folder_name("https://127.0.0.1:14000/dir"), "127.0.0.1-14000-dir");
        assert_eq!(folder_name("https://../x"), "-x");
        assert_eq!(folder_name("https://"), "ca");
    }

    #[test]
    fn a_stored_certificate_is_read_back_with_its_validity() {
        let temp = tempfile::tempdir().unwrap();
        let store = Store::new(StateDir::open(temp.path()).unwrap(), "https://ca.test/dir");
        let mut params = rcgen::CertificateParams::new(vec!["a.test".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2099, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        store
            .save_certificate("a.test", &cert.pem(), &key.serialize_pem())
            .unwrap();
        let stored = store.certificate("a.test").unwrap().unwrap();
        let year_2020 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_836_800);
        assert_eq!(stored.validity.not_before, year_2020);
        let names = ["a.test".to_string(), "b.test".to_string()];
        let now = SystemTime::now();
        assert!(store.certificate("b.test").unwrap().is_none());
        // Both halves in one file load as one certificate, for a.test alone.
        let (_, loaded) = store.certificates(&names, now);
        assert_eq!(loaded, ["a.test"]);
        let (_, early) = store.certificates(&names, year_2020 - Duration::from_secs(1));
        assert!(early.is_empty(), "not valid yet: not served");
    }
}
