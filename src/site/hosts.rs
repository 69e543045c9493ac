//! Virtual hosts: several sites on one server, each answering for its own host names, and
//! the default site for every other host (and for a request naming none).
//!
//! [`Hosts`] is the core's handler when the configuration has `[[hosts]]` tables: it picks
//! the site by the request's host (port and a trailing dot stripped, case ignored) and hands
//! the request to it. Each site keeps its own caches and rules; the observer (access log,
//! metrics) is the server's, told once. A server without hosts serves its `Site` directly,
//! so a single site pays nothing for this.

use super::Site;
use crate::http::{Exchange, Handler, Handshake, Method, Reply, Request, Status};
use crate::observe::Observer;
use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// The longest host name (RFC 1035 §2.3.4: 253 characters written without the final dot);
/// a longer host names no configured site.
const MAX_NAME: usize = 253;
/// The longest label of a DNS name (RFC 1035 §2.3.4).
const MAX_LABEL: usize = 63;

/// A name a virtual host answers to, checked and lowercased: a DNS name (`example.com`), an
/// IPv4 address, an IPv6 address in brackets (`[::1]`, as a `Host` field writes it), or a
/// wildcard `*.example.com`, which stands for any one label in front of `example.com`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostName(Box<str>);

/// Why a host name is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostNameError {
    name: String,
    why: &'static str,
}

impl fmt::Display for HostNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'{}' is not a host name: {}",
            self.name.escape_debug(),
            self.why
        )
    }
}

impl std::error::Error for HostNameError {}

impl HostName {
    /// `text` as a host name: lowercased, a final dot dropped (`example.com.` is
    /// `example.com`, as requests are matched).
    pub fn new(text: &str) -> Result<HostName, HostNameError> {
        let refused = |why| HostNameError {
            name: text.to_owned(),
            why,
        };
        let lower = text.to_ascii_lowercase();
        let name = lower.strip_suffix('.').unwrap_or(&lower);
        if name.is_empty() {
            return Err(refused("it is empty"));
        }
        if let Some(inside) = name.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
            return match inside.parse::<Ipv6Addr>() {
                Ok(_) => Ok(HostName(name.into())),
                Err(_) => Err(refused("not an IPv6 address in brackets")),
            };
        }
        if name.contains(':') {
            let why = match name.parse::<Ipv6Addr>() {
                Ok(_) => "write an IPv6 address in brackets, as in [::1]",
                Err(_) => "a host name has no port",
            };
            return Err(refused(why));
        }
        if name.parse::<Ipv4Addr>().is_ok() {
            return Ok(HostName(name.into()));
        }
        let dns_name = name.strip_prefix("*.").unwrap_or(name);
        check_dns_name(dns_name).map_err(refused)?;
        Ok(HostName(name.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A DNS name of labels of letters, digits, `-` and `_` (as found in real names), none empty
/// or longer than 63, none starting or ending with `-`; a `*` only as a whole first label.
fn check_dns_name(name: &str) -> Result<(), &'static str> {
    if name.len() > MAX_NAME {
        return Err("longer than 253 characters");
    }
    for label in name.split('.') {
        if label.contains('*') {
            return Err("a wildcard is only '*.' in front of a name, as in *.example.com");
        }
        if label.is_empty() || label.len() > MAX_LABEL {
            return Err("each dot-separated label has 1 to 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("only letters, digits, '-', '_' and dots");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label neither starts nor ends with '-'");
        }
    }
    Ok(())
}

/// The same name given to two sites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateHostName(pub HostName);

impl fmt::Display for DuplicateHostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the host name {} is given to two [[hosts]] tables", self.0)
    }
}

impl std::error::Error for DuplicateHostName {}

/// The sites of a server with virtual hosts: the core's handler, which hands each request to
/// the site its host names.
#[derive(Debug)]
pub struct Hosts {
    /// For every host no site names, and requests that name none.
    default: Site,
    sites: Vec<Site>,
    /// Each name (lowercase; a wildcard as `*.example.com`) → its site in `sites`.
    by_name: HashMap<Box<[u8]>, usize>,
    /// Whether any site answers OPTIONS (CORS preflight).
    answers_options: bool,
    /// Told of every exchange and handshake, for `--access-log` and `--metrics`.
    observer: Option<Arc<Observer>>,
}

impl Hosts {
    /// `default` for every other host, and each of `sites` for its names; a name given twice
    /// is refused.
    pub(crate) fn new(
        default: Site,
        sites: Vec<(Vec<HostName>, Site)>,
        observer: Option<Arc<Observer>>,
    ) -> Result<Hosts, DuplicateHostName> {
        let mut by_name = HashMap::new();
        let mut served = Vec::with_capacity(sites.len());
        for (index, (names, site)) in sites.into_iter().enumerate() {
            for name in names {
                let key: Box<[u8]> = name.as_str().as_bytes().into();
                if by_name.insert(key, index).is_some() {
                    return Err(DuplicateHostName(name));
                }
            }
            served.push(site);
        }
        let answers_options = default.answers_options() || served.iter().any(Handler::answers_options);
        Ok(Hosts {
            default,
            sites: served,
            by_name,
            answers_options,
            observer,
        })
    }

    /// The default site (whose root is the server's ROOT).
    pub fn default_site(&self) -> &Site {
        &self.default
    }

    /// The site for `request`'s host: by its exact name, else by the wildcard for its first
    /// label, else the default. No allocation: the name is lowercased on the stack.
    fn site_for(&self, request: &Request<'_>) -> &Site {
        let Some(host) = request.host_name() else {
            return &self.default;
        };
        let mut buf = [0u8; MAX_NAME];
        let Some(name) = buf.get_mut(..host.len()) else {
            return &self.default; // too long to be any site's
        };
        name.copy_from_slice(host);
        name.make_ascii_lowercase();
        if let Some(&index) = self.by_name.get(&name[..]) {
            return &self.sites[index];
        }
        // `a.example.com` → `*.example.com`, written over the end of the first label.
        if let Some(dot) = name.iter().position(|&b| b == b'.').filter(|&dot| dot > 0) {
            name[dot - 1] = b'*';
            if let Some(&index) = self.by_name.get(&name[dot - 1..]) {
                return &self.sites[index];
            }
        }
        &self.default
    }
}

impl Handler for Hosts {
    fn handle(&self, request: &Request<'_>) -> Reply {
        let site = self.site_for(request);
        // Another site answers OPTIONS, so the core let this one through: answer as the
        // core does for a site that does not.
        if request.method == Method::Options && !site.answers_options() {
            return Reply::error(Status::MethodNotAllowed);
        }
        site.handle(request)
    }

    fn answers_options(&self) -> bool {
        self.answers_options
    }

    fn ready(&self, request: &Request<'_>) -> bool {
        self.site_for(request).ready(request)
    }

    fn exchanged(&self, exchange: &Exchange<'_>) {
        if let Some(observer) = &self.observer {
            observer.exchanged(exchange);
        }
    }

    fn handshake(&self, outcome: Handshake<'_>) {
        if let Some(observer) = &self.observer {
            observer.handshake(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_checked_and_lowercased() {
        for (text, name) in [
            ("Example.COM", "example.com"),
            ("www.example.com.", "www.example.com"),
            ("localhost", "localhost"),
            ("_acme.example", "_acme.example"),
            ("127.0.0.1", "127.0.0.1"),
            ("[::1]", "[::1]"),
            ("[2001:DB8::1]", "[2001:db8::1]"),
            ("*.Example.com", "*.example.com"),
        ] {
            assert_eq!(
                HostName::new(text).map(|n| n.to_string()),
                Ok(name.to_owned()),
                "{text}"
            );
        }
        for (text, why) in [
            ("", "empty"),
            (".", "empty"),
            ("example.com:8080", "no port"),
            ("::1", "in brackets"),
            ("[nope]", "IPv6"),
            ("*", "wildcard"),
            ("*example.com", "wildcard"),
            ("a.*.example.com", "wildcard"),
            ("*.*.example.com", "wildcard"),
            ("a..example", "1 to 63"),
            ("-a.example", "'-'"),
            ("a b.example", "letters"),
            ("a/b", "letters"),
        ] {
            let error = HostName::new(text).expect_err(text).to_string();
            assert!(error.contains(why), "{text}: {error}");
        }
        let long = format!("{}.example", "a".repeat(64));
        assert!(HostName::new(&long).is_err());
    }
}
