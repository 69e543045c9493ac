//! What every TLS link of a server shares: rustls's configuration, the certificates it offers
//! (chosen by the name the client asks for, and replaceable while the server runs), and the
//! session-ticket keys.
//!
//! Several certificates: each handshake's SNI name picks the first certificate valid for it
//! (by the rules a browser checks a name with, wildcards included); a client that names none,
//! or a name no certificate covers, gets the first one, the default, as nginx's default server
//! answers. Replacing them ([`TlsConfig::replace`], on SIGHUP, or when automatic HTTPS has
//! obtained one) changes what new handshakes get; a connection keeps the certificate it started
//! with.
//!
//! Certificates obtained by ACME are offered by name only: a name none covers (yet) gets no
//! certificate, and its handshake fails with an alert, rather than one for another name. While
//! an order is in flight, a validator's handshake that offers ALPN `acme-tls/1` alone gets the
//! TLS-ALPN-01 challenge certificate for its name (RFC 8737), asked for from the server's
//! [`ChallengeCertificates`] at that moment (such a hello is rare, and other processes may have
//! put the certificate there); the connection then ends with the handshake.

use crate::http::Settings;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, ServerConnection};
use std::fmt::Debug;
use std::sync::{Arc, PoisonError, RwLock};

/// The longest session a ticket carries, with room to spare: what a session holds besides its
/// server name (at most 255 bytes) and ALPN protocol is under a hundred bytes.
const LONGEST_SESSION: usize = 512;

/// Ticket keys made once, before any fork, so that every worker or child of a forking model
/// takes the tickets any other made. rustls's ticketer also refuses a ticket longer than the
/// longest it has made itself (a guard against partitioning-oracle attacks), which in a fresh
/// process is none at all: so one ticket of the longest size is made here, for the rest.
fn shared_ticketer() -> Result<Arc<dyn rustls::server::ProducesTickets>, rustls::Error> {
    let ticketer = rustls::crypto::ring::Ticketer::new()?;
    let _ = ticketer.encrypt(&[0; LONGEST_SESSION]);
    Ok(ticketer)
}

/// Why a certificate and key cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("no certificate in the PEM file")]
    NoCertificate,
    #[error("the certificate file is not PEM: {0}")]
    Certificate(rustls::pki_types::pem::Error),
    #[error("the key file holds no private key in PEM: {0}")]
    Key(rustls::pki_types::pem::Error),
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

/// A certificate chain and its private key, as PEM files hold them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pem<'a> {
    pub chain: &'a [u8],
    pub key: &'a [u8],
}

/// The ALPN protocol of TLS-ALPN-01 validation (RFC 8737).
pub(crate) const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The certificates offered, in order; with `fallback`, the first is the default.
#[derive(Debug)]
pub(crate) struct Certificates {
    keys: Vec<Arc<CertifiedKey>>,
    /// A client whose name none covers gets the first (files the operator names); without,
    /// none (certificates obtained by ACME, each for its own name).
    fallback: bool,
}

impl Certificates {
    /// Parses every chain and key, checking that each key is its certificate's; on error,
    /// which one failed (its index in `pems`) and why. The first is the default.
    pub fn from_pem(pems: &[Pem<'_>]) -> Result<Certificates, (usize, TlsError)> {
        let keys = parse_all(pems)?;
        if keys.is_empty() {
            return Err((0, TlsError::NoCertificate));
        }
        Ok(Certificates { keys, fallback: true })
    }

    /// As [`from_pem`](Certificates::from_pem), but offered only to the names they cover,
    /// with no default; none at all is fine (nothing obtained yet).
    pub fn by_name_only(pems: &[Pem<'_>]) -> Result<Certificates, (usize, TlsError)> {
        Ok(Certificates {
            keys: parse_all(pems)?,
            fallback: false,
        })
    }

    /// The certificate for a client that asked for `name`, if there is one.
    fn choose(&self, name: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        let covering = name
            .and_then(|name| ServerName::try_from(name).ok())
            .and_then(|name| self.keys.iter().find(|key| covers(key, &name)));
        match covering {
            Some(key) => Some(key),
            None if self.fallback => self.keys.first(),
            None => None,
        }
    }
}

fn parse_all(pems: &[Pem<'_>]) -> Result<Vec<Arc<CertifiedKey>>, (usize, TlsError)> {
    let provider = provider();
    pems.iter()
        .enumerate()
        .map(|(at, pem)| certified_key(pem, &provider).map_err(|e| (at, e)))
        .collect()
}

/// Where the TLS-ALPN-01 challenge certificates of the orders in flight are found.
pub(crate) trait ChallengeCertificates: Send + Sync + Debug {
    /// The challenge certificate and its key for `name` (PEM, both in one), while an order
    /// for it waits on its validation.
    fn for_name(&self, name: &str) -> Option<Vec<u8>>;
}

/// Whether `key`'s certificate is valid for `name`.
fn covers(key: &CertifiedKey, name: &ServerName<'_>) -> bool {
    key.end_entity_cert()
        .ok()
        .and_then(|der| webpki::EndEntityCert::try_from(der).ok())
        .is_some_and(|cert| cert.verify_is_valid_for_subject_name(name).is_ok())
}

fn certified_key(pem: &Pem<'_>, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(pem.chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(TlsError::Certificate)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(pem.key).map_err(TlsError::Key)?;
    Ok(Arc::new(CertifiedKey::from_der(chain, key, provider)?))
}

/// A TLS-ALPN-01 challenge certificate and its key (one PEM). Unlike [`certified_key`], the
/// key is not checked against the certificate: that check parses the certificate with webpki,
/// which refuses the critical acmeIdentifier extension every challenge certificate carries.
fn challenge_key(pem: &[u8]) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = vec![CertificateDer::from_pem_slice(pem).map_err(TlsError::Certificate)?];
    let key = PrivateKeyDer::from_pem_slice(pem).map_err(TlsError::Key)?;
    let signing = provider().key_provider.load_private_key(key)?;
    Ok(Arc::new(CertifiedKey::new(chain, signing)))
}

fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Hands rustls the certificate for each handshake, from the set in force.
///
/// A lock, not something cleverer: a handshake holds it for the time of a lookup, and a
/// reload for the time of a pointer swap. It is safe across `fork` because no process that
/// forks runs a thread that could hold it: the forking models' parents are single-threaded
/// and reload on their own thread.
#[derive(Debug)]
struct ChooseByName {
    current: RwLock<Arc<Certificates>>,
    /// With automatic HTTPS: the challenge certificates for `acme-tls/1` handshakes.
    challenges: Option<Arc<dyn ChallengeCertificates>>,
}

impl ResolvesServerCert for ChooseByName {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(challenges) = &self.challenges {
            if offers_only_acme_tls(&hello) {
                let pem = challenges.for_name(hello.server_name()?)?;
                return challenge_key(&pem).ok();
            }
        }
        let certificates = self.current.read().unwrap_or_else(PoisonError::into_inner);
        certificates.choose(hello.server_name()).map(Arc::clone)
    }
}

/// A TLS-ALPN-01 validator offers `acme-tls/1` and nothing else (RFC 8737, section 3).
fn offers_only_acme_tls(hello: &ClientHello<'_>) -> bool {
    let Some(mut offered) = hello.alpn() else {
        return false;
    };
    offered.next() == Some(ACME_TLS_ALPN) && offered.next().is_none()
}

/// What every TLS link of a server shares: its certificates, the session state, and the
/// `Strict-Transport-Security` its responses carry. Clones share the certificates: replacing
/// them through one replaces them for all.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    server: Arc<ServerConfig>,
    certificates: Arc<ChooseByName>,
    hsts: Option<u64>,
}

impl TlsConfig {
    /// rustls's defaults (TLS 1.3 and 1.2, its cipher suites), ALPN `h2` and `http/1.1`, session
    /// resumption by ticket (keys rotated every few hours) and by a session cache; no 0-RTT.
    pub(crate) fn new(certificates: Certificates) -> Result<TlsConfig, TlsError> {
        TlsConfig::answering(certificates, None)
    }

    /// As [`new`](TlsConfig::new), also answering TLS-ALPN-01 validation with the challenge
    /// certificates `challenges` holds (automatic HTTPS).
    pub(crate) fn with_challenges(
        certificates: Certificates,
        challenges: Arc<dyn ChallengeCertificates>,
    ) -> Result<TlsConfig, TlsError> {
        TlsConfig::answering(certificates, Some(challenges))
    }

    fn answering(
        certificates: Certificates,
        challenges: Option<Arc<dyn ChallengeCertificates>>,
    ) -> Result<TlsConfig, TlsError> {
        let validated = challenges.is_some();
        let chooser = Arc::new(ChooseByName {
            current: RwLock::new(Arc::new(certificates)),
            challenges,
        });
        let mut config = ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&chooser) as Arc<dyn ResolvesServerCert>);
        // HTTP/2 first: a client offering both gets it. A validator offers `acme-tls/1` alone,
        // so no other client ever gets it.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        if validated {
            config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
        }
        config.ticketer = shared_ticketer()?;
        let config = Arc::new(config);
        // What every connection will do: fail here, at start, rather than on each of them.
        ServerConnection::new(Arc::clone(&config))?;
        Ok(TlsConfig {
            server: config,
            certificates: chooser,
            hsts: None,
        })
    }

    /// One certificate chain (the leaf first) and its private key, both in PEM: what every
    /// client gets, whatever name it asks for. The rest is a server's configuration: rustls's
    /// defaults (TLS 1.3 and 1.2), ALPN `http/1.1`, resumption, no 0-RTT. Fails if either is
    /// not PEM, or the key is not the certificate's.
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<TlsConfig, TlsError> {
        let certificates = Certificates::from_pem(&[Pem { chain, key }]).map_err(|(_, e)| e)?;
        TlsConfig::new(certificates)
    }

    /// Every response over TLS says `Strict-Transport-Security: max-age=SECONDS`.
    pub fn with_hsts(self, seconds: Option<u64>) -> TlsConfig {
        TlsConfig {
            hsts: seconds,
            ..self
        }
    }

    /// From the next handshake on, `certificates` are offered instead.
    pub(crate) fn replace(&self, certificates: Certificates) {
        let mut current = self
            .certificates
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *current = Arc::new(certificates);
    }

    pub(super) fn server_config(&self) -> &Arc<ServerConfig> {
        &self.server
    }

    /// The protocol's settings on a TLS link.
    pub(super) fn settings(&self, plaintext: Settings) -> Settings {
        Settings {
            hsts: self.hsts,
            ..plaintext
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for `names`, and its key, in PEM.
    fn made_for(names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let made = rcgen::generate_simple_self_signed(names).unwrap();
        (made.cert.pem(), made.signing_key.serialize_pem())
    }

    fn certificates(made: &[(String, String)]) -> Result<Certificates, (usize, TlsError)> {
        let pems: Vec<_> = made
            .iter()
            .map(|(chain, key)| Pem {
                chain: chain.as_bytes(),
                key: key.as_bytes(),
            })
            .collect();
        Certificates::from_pem(&pems)
    }

    #[test]
    fn the_name_asked_for_picks_the_certificate_else_the_first() {
        let certificates = certificates(&[
            made_for(&["default.test"]),
            made_for(&["example.com", "www.example.com"]),
            made_for(&["*.example.org"]),
        ])
        .unwrap();
        let chosen = |name| {
            let key = certificates.choose(name).unwrap();
            certificates
                .keys
                .iter()
                .position(|k| Arc::ptr_eq(k, key))
                .unwrap()
        };
        assert_eq!(chosen(Some("example.com")), 1);
        assert_eq!(chosen(Some("WWW.Example.COM")), 1, "names are case-insensitive");
        assert_eq!(chosen(Some("a.example.org")), 2, "a wildcard covers one label");
        assert_eq!(chosen(Some("a.b.example.org")), 0, "and no more");
        assert_eq!(chosen(Some("example.org")), 0);
        assert_eq!(chosen(Some("unknown.test")), 0, "the default");
        assert_eq!(chosen(None), 0, "no SNI: the default");
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused_and_named() {
        let (chain, _) = made_for(&["a.test"]);
        let (_, other_key) = made_for(&["a.test"]);
        let good = made_for(&["b.test"]);
        let Err((at, error)) = certificates(&[good, (chain, other_key)]) else {
            panic!("a mismatched key was accepted");
        };
        assert_eq!(at, 1);
        assert!(error.to_string().contains("key"), "{error}");
        assert!(matches!(certificates(&[]), Err((0, TlsError::NoCertificate))));
    }

    #[test]
    fn replaced_certificates_are_offered_to_new_handshakes() {
        let config = TlsConfig::new(certificates(&[made_for(&["old.test"])]).unwrap()).unwrap();
        let clone = config.clone();
        let new = certificates(&[made_for(&["new.test"])]).unwrap();
        let new_key = Arc::clone(&new.keys[0]);
        config.replace(new);
        let current = clone.certificates.current.read().unwrap();
        assert!(
            Arc::ptr_eq(current.choose(None).unwrap(), &new_key),
            "clones share the set"
        );
    }

    #[test]
    fn by_name_only_a_name_none_covers_gets_nothing() {
        let made = [made_for(&["a.test"])];
        let pems: Vec<_> = made
            .iter()
            .map(|(chain, key)| Pem {
                chain: chain.as_bytes(),
                key: key.as_bytes(),
            })
            .collect();
        let certificates = Certificates::by_name_only(&pems).unwrap();
        assert!(certificates.choose(Some("a.test")).is_some());
        assert!(certificates.choose(Some("b.test")).is_none());
        assert!(certificates.choose(None).is_none(), "no SNI: no certificate");
        let none = Certificates::by_name_only(&[]).unwrap();
        assert!(none.choose(Some("a.test")).is_none(), "nothing obtained yet");
    }
}
