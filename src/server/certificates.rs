//! The server's certificates: read from their files at start (`--tls-cert`, `[[tls]]`), and
//! again on SIGHUP.

use super::Config;
use crate::acme::Acme;
use crate::engine::{OnHangup, Report};
use crate::error::Error;
use crate::fs;
use crate::observe::Observer;
use crate::seam::{Certificates, Pem, TlsConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The content of each certificate file (PEM), for the redirect to read their names.
pub(super) type Chains = Vec<Vec<u8>>;

/// The certificates of `--tls-cert` (and `[[tls]]`), if given, ready to serve; and each
/// one's certificate file content.
pub(super) fn load_tls(config: &Config) -> Result<Option<(TlsConfig, Chains)>, Error> {
    let files = certificate_files(config)?;
    if files.is_empty() {
        return Ok(None);
    }
    let (certificates, chains) = read_certificates(&files)?;
    let tls = TlsConfig::new(certificates).map_err(|e| Error::Tls {
        cert: files[0].0.clone(),
        reason: e.to_string(),
    })?;
    Ok(Some((tls.with_hsts(config.hsts), chains)))
}

/// Every certificate file and its key file: the default first.
fn certificate_files(config: &Config) -> Result<Vec<(PathBuf, PathBuf)>, Error> {
    let default = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        _ if config.sni_certificates.is_empty() => return Ok(Vec::new()),
        _ => {
            return Err(Error::Tls {
                cert: config.sni_certificates[0].0.clone(),
                reason: "certificates by SNI need a default one: --tls-cert and --tls-key".into(),
            })
        }
    };
    let mut files = vec![default];
    files.extend(config.sni_certificates.iter().cloned());
    Ok(files)
}

/// Reads and checks every certificate and key; also returns each certificate file's content.
fn read_certificates(files: &[(PathBuf, PathBuf)]) -> Result<(Certificates, Chains), Error> {
    let read = |path: &Path| {
        fs::load_named(path).map_err(|source| Error::TlsFile {
            path: path.to_path_buf(),
            source,
        })
    };
    let mut pems = Vec::with_capacity(files.len());
    for (cert, key) in files {
        pems.push((read(cert)?, read(key)?));
    }
    let borrowed: Vec<Pem<'_>> = pems.iter().map(|(chain, key)| Pem { chain, key }).collect();
    let certificates = Certificates::from_pem(&borrowed).map_err(|(at, e)| Error::Tls {
        cert: files[at].0.clone(),
        reason: e.to_string(),
    })?;
    Ok((certificates, pems.into_iter().map(|(chain, _)| chain).collect()))
}

/// What SIGHUP does: the access log's file is opened again, and the certificates are read
/// again; new handshakes get them, and if one does not load, the ones in use stay.
///
/// With automatic HTTPS, the certificates are those stored for its names (SIGHUP is also how
/// the process that orders tells a forking model's processes of a new one).
pub(super) fn reload_on_hangup(
    config: &Config,
    tls: Option<TlsConfig>,
    observer: Option<Arc<Observer>>,
    acme: Option<Acme>,
) -> OnHangup {
    let files = certificate_files(config).unwrap_or_default();
    OnHangup::new(move |report| {
        if let Some(observer) = &observer {
            observer.reopen_log();
        }
        let Some(tls) = &tls else {
            return;
        };
        let tell = report == Report::Tell;
        if let Some(acme) = &acme {
            let loaded = acme.reload(tls);
            match loaded.is_empty() {
                _ if !tell => {}
                true => tracing::info!("SIGHUP: no certificate stored yet"),
                false => tracing::info!("SIGHUP: serving the certificates of {}", loaded.join(", ")),
            }
            return;
        }
        let read = read_certificates(&files);
        match read {
            Ok((certificates, _)) => {
                tls.replace(certificates);
                if tell {
                    tracing::info!("SIGHUP: reloaded {} certificate(s)", files.len());
                }
            }
            Err(e) if tell => tracing::error!("SIGHUP: {e}; new connections keep the certificates in use"),
            Err(_) => {}
        }
    })
}
