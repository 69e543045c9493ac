//! One order, through instant-acme: the account (made once, then kept in the state
//! directory), a new order for one name, its challenge answered, the key and certificate
//! request made (rcgen, inside instant-acme), the certificate fetched.

use super::challenge::{tls_alpn01_certificate, Http01Tokens};
use super::schedule::Failure;
use super::store::Store;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, ChallengeType, HttpClient, Identifier,
    NewAccount, NewOrder, Order, OrderStatus, RetryPolicy,
};
use rustls::pki_types::CertificateDer;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// How long an order may wait on the CA's validation, then on its certificate.
const ORDER_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a whole order may take, requests and waits included: a CA that takes a
/// connection and never answers is given up on, and tried again later.
pub(super) const ORDER_LIMIT: Duration = Duration::from_secs(4 * 60);

/// The challenges this server can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Challenge {
    Http01,
    TlsAlpn01,
}

impl Challenge {
    pub fn name(self) -> &'static str {
        match self {
            Challenge::Http01 => "HTTP-01",
            Challenge::TlsAlpn01 => "TLS-ALPN-01",
        }
    }

    fn kind(self) -> ChallengeType {
        match self {
            Challenge::Http01 => ChallengeType::Http01,
            Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        }
    }
}

/// Why an order failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OrderError {
    #[error("{0}")]
    Acme(#[from] instant_acme::Error),
    #[error("the CA offers no {0} challenge")]
    NoChallenge(&'static str),
    #[error("validation failed: {0}")]
    Invalid(String),
    #[error("the state directory: {0}")]
    State(#[from] io::Error),
    #[error("the stored account: {0}")]
    Account(#[from] serde_json::Error),
    #[error("making the challenge certificate: {0}")]
    ChallengeCertificate(#[from] rcgen::Error),
    #[error("no answer within {} s", ORDER_LIMIT.as_secs())]
    TimedOut,
}

impl OrderError {
    /// Whether the CA said no (a problem document, a failed validation) or was not heard
    /// from at all: what decides the next attempt's delay, and whether the other challenge
    /// is worth trying.
    pub fn failure(&self) -> Failure {
        match self {
            OrderError::Acme(instant_acme::Error::Api(_))
            | OrderError::Acme(instant_acme::Error::Timeout(_)) => Failure::Refused,
            OrderError::Acme(_) | OrderError::TimedOut => Failure::Unreachable,
            _ => Failure::Refused,
        }
    }
}

/// A certificate chain and its key, in PEM.
#[derive(Debug)]
pub(crate) struct Obtained {
    pub chain: String,
    pub key: String,
}

/// The CA: its directory, the account's contact, and the roots its HTTPS is checked with.
#[derive(Debug, Clone)]
pub(crate) struct Ca {
    pub directory: String,
    pub email: Option<String>,
    /// `--acme-ca-root`: trust these instead of the platform's roots.
    pub roots: Option<Vec<CertificateDer<'static>>>,
}

impl Ca {
    /// The account: the one stored for this CA, else a new one, stored at once.
    pub async fn account(&self, store: &Store) -> Result<Account, OrderError> {
        if let Some(json) = store.account()? {
            let credentials: AccountCredentials = serde_json::from_slice(&json)?;
            return Ok(self.builder()?.from_credentials(credentials).await?);
        }
        let contact = self
            .email
            .iter()
            .map(|email| format!("mailto:{email}"))
            .collect::<Vec<_>>();
        let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
        let new = NewAccount {
            contact: &contact,
            terms_of_service_agreed: true,
            only_return_existing: false,
        };
        let (account, credentials) = self.builder()?.create(&new, self.directory.clone(), None).await?;
        store.save_account(&serde_json::to_vec(&credentials)?)?;
        tracing::info!(
            "ACME account made at {} (kept in {})",
            self.directory,
            store.path().display()
        );
        Ok(account)
    }

    fn builder(&self) -> Result<instant_acme::AccountBuilder, OrderError> {
        let Some(roots) = &self.roots else {
            return Ok(Account::builder()?);
        };
        Ok(Account::builder_with_http(client_trusting(roots)?))
    }
}

/// An HTTPS client (hyper, rustls with ring) that trusts `roots` alone.
fn client_trusting(roots: &[CertificateDer<'static>]) -> Result<Box<dyn HttpClient>, OrderError> {
    let mut store = rustls::RootCertStore::empty();
    store.add_parsable_certificates(roots.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| instant_acme::Error::Other(Box::new(e)))?
        .with_root_certificates(store)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, BodyWrapper<bytes::Bytes>>(connector);
    Ok(Box::new(client))
}

/// Where challenges are answered from: HTTP-01 tokens in this process's memory (when the
/// plaintext listener runs here), TLS-ALPN-01 certificates in the state directory.
#[derive(Debug)]
pub(crate) struct Responders<'a> {
    pub http01: &'a Http01Tokens,
    pub store: &'a Store,
}

/// Orders a certificate for `name` from `account`, answering `challenge`.
pub(crate) async fn obtain(
    account: &Account,
    name: &str,
    challenge: Challenge,
    responders: &Responders<'_>,
) -> Result<Obtained, OrderError> {
    let identifiers = [Identifier::Dns(name.to_string())];
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
    // Whatever becomes of the order, the answers go once it is over.
    let mut answered = Answered {
        responders,
        token: None,
        certificate_for: None,
    };
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization?;
        match authorization.status {
            AuthorizationStatus::Pending => {}
            // Validated for this account not long ago: the CA reuses it.
            AuthorizationStatus::Valid => continue,
            status => return Err(OrderError::Invalid(format!("authorization {status:?}"))),
        }
        let mut handle = authorization
            .challenge(challenge.kind())
            .ok_or(OrderError::NoChallenge(challenge.name()))?;
        let key_authorization = handle.key_authorization();
        match challenge {
            Challenge::Http01 => {
                let token = handle.token.clone();
                responders.http01.insert(&token, key_authorization.as_str());
                answered.token = Some(token);
            }
            Challenge::TlsAlpn01 => {
                let pem = tls_alpn01_certificate(name, key_authorization.digest().as_ref())?;
                responders.store.save_challenge(name, &pem)?;
                answered.certificate_for = Some(name.to_string());
            }
        }
        handle.set_ready().await?;
    }
    let patience = RetryPolicy::new().timeout(ORDER_TIMEOUT);
    let status = order.poll_ready(&patience).await?;
    if status != OrderStatus::Ready {
        return Err(OrderError::Invalid(problem_of(&mut order).await));
    }
    let key = order.finalize().await?;
    let chain = order.poll_certificate(&patience).await?;
    Ok(Obtained { chain, key })
}

/// The CA's problem document for an order that became invalid: the first challenge's error.
async fn problem_of(order: &mut Order) -> String {
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authorization)) = authorizations.next().await {
        let Ok(state) = authorization.refresh().await else {
            continue;
        };
        if let Some(problem) = state.challenges.iter().find_map(|c| c.error.as_ref()) {
            return problem.to_string();
        }
    }
    "the order became invalid, and the CA said no more".to_string()
}

/// The answers given for an order, taken back when it is over.
struct Answered<'a> {
    responders: &'a Responders<'a>,
    token: Option<String>,
    certificate_for: Option<String>,
}

impl Drop for Answered<'_> {
    fn drop(&mut self) {
        if let Some(token) = &self.token {
            self.responders.http01.remove(token);
        }
        if let Some(name) = &self.certificate_for {
            if let Err(e) = self.responders.store.remove_challenge(name) {
                tracing::warn!("cannot remove the challenge certificate of {name}: {e}");
            }
        }
    }
}
