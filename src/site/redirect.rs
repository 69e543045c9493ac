//! `--redirect-http`: what the plaintext listener beside an HTTPS one answers. Every request
//! gets a `308 Permanent Redirect` to the same host, path and query over `https://`, with the
//! HTTPS listener's port (left out when it is 443).
//!
//! Never an open redirect: the host must be one a served certificate is valid for (by the
//! same rules a browser checks it with), else the answer is `421 Misdirected Request`; a
//! request without a host is a 400. The host comes from the request, which the parser has
//! already checked, and every byte of the path and query outside printable ASCII is
//! percent-encoded, so nothing a client sends can break out of the `Location` field.

use crate::http::{Handler, Reply, Request, Status};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::fmt::Write;

/// Answers every request with the way to it over HTTPS.
#[derive(Debug)]
pub struct HttpsRedirect {
    to: Served,
    /// The HTTPS listener's port.
    port: u16,
}

/// The names HTTPS serves, one of which a host must be.
#[derive(Debug)]
enum Served {
    /// The DER of each served certificate. Those the server started with: a certificate
    /// reloaded with new names needs a restart for the redirect to send clients to them.
    Certificates(Vec<CertificateDer<'static>>),
    /// The names of automatic HTTPS (lowercase), served as soon as each has its certificate.
    Names(Vec<String>),
}

impl HttpsRedirect {
    /// Redirects to the names of the served certificates (the first in each PEM of `chains`),
    /// on `port`; `None` if one has none.
    pub fn new(chains: &[Vec<u8>], port: u16) -> Option<HttpsRedirect> {
        let certificates = chains
            .iter()
            .map(|pem| CertificateDer::pem_slice_iter(pem).next()?.ok())
            .collect::<Option<Vec<_>>>()?;
        Some(HttpsRedirect {
            to: Served::Certificates(certificates),
            port,
        })
    }

    /// Redirects to `names` (lowercase host names) on `port`.
    pub fn for_names(names: &[String], port: u16) -> HttpsRedirect {
        HttpsRedirect {
            to: Served::Names(names.to_vec()),
            port,
        }
    }

    /// Whether HTTPS serves `name` (a DNS name or an IP address).
    fn covers(&self, name: &str) -> bool {
        let certificates = match &self.to {
            Served::Names(names) => return names.iter().any(|ours| ours.eq_ignore_ascii_case(name)),
            Served::Certificates(certificates) => certificates,
        };
        let Ok(name) = ServerName::try_from(name) else {
            return false;
        };
        certificates.iter().any(|certificate| {
            webpki::EndEntityCert::try_from(certificate)
                .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(&name).is_ok())
        })
    }
}

impl Handler for HttpsRedirect {
    fn handle(&self, request: &Request<'_>) -> Reply {
        let Some(host) = request.host().and_then(|host| std::str::from_utf8(host).ok()) else {
            return Reply::error(Status::BadRequest);
        };
        let name = without_port(host);
        if !self.covers(name.trim_start_matches('[').trim_end_matches(']')) {
            return Reply::error(Status::MisdirectedRequest);
        }
        let mut location = format!("https://{name}");
        if self.port != 443 {
            let _ = write!(location, ":{}", self.port);
        }
        encode_into(&mut location, request.path);
        if let Some(query) = request.query() {
            location.push('?');
            encode_into(&mut location, query);
        }
        Reply::permanent_redirect(location)
    }
}

/// `example.com:80` → `example.com`, `[::1]:80` → `[::1]`.
fn without_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(colon) if !host[colon..].contains(']') => &host[..colon],
        _ => host,
    }
}

/// Appends `bytes`, percent-encoding any that is not printable ASCII.
pub(super) fn encode_into(out: &mut String, bytes: &[u8]) {
    for &byte in bytes {
        if byte.is_ascii_graphic() {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::with_request;
    use std::time::Instant;

    fn redirect(port: u16, raw: &str) -> (Status, Option<String>) {
        // A certificate for the names the cases ask for; who signed it does not matter here.
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let pem = rcgen::generate_simple_self_signed(names).unwrap().cert.pem();
        let handler = HttpsRedirect::new(&[pem.into_bytes()], port).unwrap();
        let reply = with_request(raw.as_bytes(), Instant::now(), |request| handler.handle(request));
        (reply.status, reply.location)
    }

    #[test]
    fn redirects_to_the_same_host_path_and_query_over_https() {
        let cases = [
            (
                8443,
                "GET /a%20b/c?q=1 HTTP/1.1\r\nHost: localhost:8080\r\n\r\n",
                "https://localhost:8443/a%20b/c?q=1",
            ),
            (
                443,
                "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
                "https://localhost/",
            ),
            (
                443,
                "HEAD /x HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n",
                "https://127.0.0.1/x",
            ),
            (
                443,
                "GET //evil.example/ HTTP/1.1\r\nHost: localhost\r\n\r\n",
                "https://localhost//evil.example/",
            ),
            (
                443,
                "GET http://localhost/p?x HTTP/1.1\r\nHost: localhost\r\n\r\n",
                "https://localhost/p?x",
            ),
        ];
        for (port, raw, location) in cases {
            assert_eq!(
                redirect(port, raw),
                (Status::PermanentRedirect, Some(location.into())),
                "{raw}"
            );
        }
    }

    #[test]
    fn a_host_the_certificate_does_not_name_is_misdirected() {
        for raw in [
            "GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
            "GET http://evil.example/ HTTP/1.1\r\nHost: localhost\r\n\r\n",
        ] {
            assert_eq!(redirect(443, raw), (Status::MisdirectedRequest, None), "{raw}");
        }
        assert_eq!(
            redirect(443, "GET / HTTP/1.0\r\n\r\n"),
            (Status::BadRequest, None)
        );
    }

    #[test]
    fn ports_are_cut_from_names_and_addresses() {
        assert_eq!(without_port("example.com:80"), "example.com");
        assert_eq!(without_port("example.com"), "example.com");
        assert_eq!(without_port("[::1]:80"), "[::1]");
        assert_eq!(without_port("[::1]"), "[::1]");
    }
}
