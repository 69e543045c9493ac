//! Answering the CA's validation of an order (RFC 8555 section 8): the two challenges a web
//! server can answer by itself.
//!
//! - HTTP-01: the CA asks `http://NAME/.well-known/acme-challenge/TOKEN` on port 80 and must
//!   get the key authorization. Answered from memory ([`Http01Tokens`]) by the plaintext
//!   listener of `--redirect-http`, which runs in the process that orders, ahead of its
//!   redirect ([`AnswerHttp01`]).
//! - TLS-ALPN-01 (RFC 8737): the CA connects to port 443 offering ALPN `acme-tls/1` alone,
//!   and must be shown a self-signed certificate for NAME carrying the key authorization's
//!   digest. The HTTPS listener answers it, in whichever process holds the connection: so the
//!   certificate goes into the state directory, where the seam asks for it
//!   ([`StoredChallenges`]) for such a handshake only.

use super::store::Store;
use crate::http::{Body, Handler, Reply, Request};
use crate::seam::ChallengeCertificates;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

const HTTP01_PREFIX: &[u8] = b"/.well-known/acme-challenge/";

/// The HTTP-01 tokens of the orders in flight and their key authorizations.
#[derive(Debug, Clone, Default)]
pub(crate) struct Http01Tokens(Arc<Mutex<HashMap<String, Arc<[u8]>>>>);

impl Http01Tokens {
    pub fn insert(&self, token: &str, key_authorization: &str) {
        self.lock()
            .insert(token.to_string(), Arc::from(key_authorization.as_bytes()));
    }

    pub fn remove(&self, token: &str) {
        self.lock().remove(token);
    }

    fn get(&self, token: &[u8]) -> Option<Arc<[u8]>> {
        let token = std::str::from_utf8(token).ok()?;
        self.lock().get(token).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<[u8]>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A handler that answers HTTP-01 validation requests for the tokens in flight and hands
/// every other request to `inner` (the redirect to HTTPS).
#[derive(Debug)]
pub struct AnswerHttp01<H> {
    tokens: Http01Tokens,
    inner: H,
}

impl<H> AnswerHttp01<H> {
    pub(crate) fn new(tokens: Http01Tokens, inner: H) -> AnswerHttp01<H> {
        AnswerHttp01 { tokens, inner }
    }
}

impl<H: Handler> Handler for AnswerHttp01<H> {
    fn handle(&self, request: &Request<'_>) -> Reply {
        let answer = request
            .path
            .strip_prefix(HTTP01_PREFIX)
            .and_then(|token| self.tokens.get(token));
        match answer {
            Some(key_authorization) => {
                Reply::ok("application/octet-stream".into(), Body::Shared(key_authorization))
            }
            None => self.inner.handle(request),
        }
    }
}

/// The TLS-ALPN-01 challenge certificate for `name` (self-signed, with the critical
/// acmeIdentifier extension holding `digest`, the SHA-256 of the key authorization) and its
/// key, both in one PEM.
pub(crate) fn tls_alpn01_certificate(name: &str, digest: &[u8]) -> Result<String, rcgen::Error> {
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()])?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .custom_extensions
        .push(rcgen::CustomExtension::new_acme_identifier(digest));
    let key = rcgen::KeyPair::generate()?;
    let certificate = params.self_signed(&key)?;
    Ok(format!("{}{}", certificate.pem(), key.serialize_pem()))
}

/// The challenge certificates in the state directory, for the names this server orders.
#[derive(Debug)]
pub(crate) struct StoredChallenges {
    pub store: Store,
    pub names: Vec<String>,
}

impl ChallengeCertificates for StoredChallenges {
    fn for_name(&self, name: &str) -> Option<Vec<u8>> {
        // Only a name ordered for reaches the file system.
        let name = self.names.iter().find(|ours| ours.eq_ignore_ascii_case(name))?;
        self.store.challenge(name).ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{with_request, Status};
    use rustls::pki_types::pem::PemObject;
    use std::time::Instant;

    struct Elsewhere;

    impl Handler for Elsewhere {
        fn handle(&self, _request: &Request<'_>) -> Reply {
            Reply::permanent_redirect("https://a.test/".into())
        }
    }

    /// What the handler answers to a GET of `path`: its status and body.
    fn get(handler: &impl Handler, path: &str) -> (Status, Vec<u8>) {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: a.test\r\n\r\n");
        let reply = with_request(raw.as_bytes(), Instant::now(), |request| handler.handle(request));
        let body = match reply.body {
            Body::Shared(bytes) => bytes.to_vec(),
            _ => Vec::new(),
        };
        (reply.status, body)
    }

    #[test]
    fn tokens_in_flight_are_answered_and_the_rest_is_redirected() {
        let tokens = Http01Tokens::default();
        let handler = AnswerHttp01::new(tokens.clone(), Elsewhere);
        tokens.insert("tok3n", "tok3n.thumbprint");
        let path = "/.well-known/acme-challenge/tok3n";
        assert_eq!(get(&handler, path), (Status::Ok, b"tok3n.thumbprint".to_vec()));
        let other = get(&handler, "/.well-known/acme-challenge/other");
        assert_eq!(other.0, Status::PermanentRedirect);
        tokens.remove("tok3n");
        assert_eq!(get(&handler, path).0, Status::PermanentRedirect);
    }

    #[test]
    fn the_challenge_certificate_carries_the_digest_in_a_critical_extension() {
        let digest = [7u8; 32];
        let pem = tls_alpn01_certificate("a.test", &digest).unwrap();
        let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let (_, certificate) = x509_parser::parse_x509_certificate(&der).unwrap();
        let acme = certificate
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("the acmeIdentifier extension");
        assert!(acme.critical);
        assert_eq!(&acme.value[2..], &digest, "an OCTET STRING of the digest");
        assert!(pem.contains("PRIVATE KEY"), "its key follows it");
    }
}
