//! Who the client is when a proxy stands in front: the addresses trusted to say so
//! (`--trusted-proxies`), and the client named by `X-Forwarded-For` or `Forwarded` (RFC 7239)
//! from one of them.
//!
//! Pure values, no I/O: the seam's PROXY protocol stage asks [`TrustedProxies::contains`] of a
//! connection's source, and the access log [`TrustedProxies::client`] of each request.
//!
//! A proxy appends the address it heard from to these fields, so the list reads from the
//! client on the left to the last proxy on the right, and only its right end is vouched for.
//! The client is the rightmost address that is not itself a trusted proxy: whatever lies to
//! its left was written by the client, or by a proxy nobody trusts. A request from an
//! untrusted source is taken as coming from that source, whatever its fields say.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// A block of addresses: `10.0.0.0/8`, `::1/128`, or one address (`192.0.2.7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `address` lies in the block (an IPv4-mapped IPv6 address as its IPv4 one).
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(address)) => same_prefix(
                network.to_bits().into(),
                address.to_bits().into(),
                32,
                self.prefix,
            ),
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                same_prefix(network.to_bits(), address.to_bits(), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether the first `prefix` of the `width` low bits of `a` and `b` agree.
fn same_prefix(a: u128, b: u128, width: u8, prefix: u8) -> bool {
    let host_bits = u32::from(width - prefix);
    a.checked_shr(host_bits).unwrap_or(0) == b.checked_shr(host_bits).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Cidr, String> {
        let invalid = || format!("expected an address or ADDRESS/PREFIX (10.0.0.0/8, ::1/128), got '{text}'");
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let network: IpAddr = address.parse().map_err(|_| invalid())?;
        let network = network.to_canonical();
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= width)
                .ok_or_else(invalid)?,
            None => width,
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The sources trusted to name the client: by a PROXY protocol header, or by
/// `X-Forwarded-For` / `Forwarded`. By default loopback only (`127.0.0.0/8`, `::1/128`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies(Arc<[Cidr]>);

impl Default for TrustedProxies {
    fn default() -> TrustedProxies {
        let loopback = [
            Cidr {
                network: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
                prefix: 8,
            },
            Cidr {
                network: IpAddr::V6(Ipv6Addr::LOCALHOST),
                prefix: 128,
            },
        ];
        TrustedProxies(loopback.into())
    }
}

impl TrustedProxies {
    pub fn new(blocks: impl IntoIterator<Item = Cidr>) -> TrustedProxies {
        TrustedProxies(blocks.into_iter().collect())
    }

    pub fn blocks(&self) -> &[Cidr] {
        &self.0
    }

    /// Whether `address` is a trusted proxy.
    pub fn contains(&self, address: IpAddr) -> bool {
        self.0.iter().any(|block| block.contains(address))
    }

    /// The client of a request that came from `peer` with these values of `Forwarded` and
    /// `X-Forwarded-For` (each field's lines joined by commas): from a trusted peer, the
    /// rightmost address of the list (`Forwarded`'s if it has one) that is not a trusted
    /// proxy; from anyone else, or without the fields, `peer`.
    ///
    /// The walk from the right stops at an entry that is no address (`unknown`, an
    /// obfuscated name, garbage): what lies left of it cannot be placed, so the last address
    /// walked, a trusted proxy, is the client. So it is if every entry is a trusted proxy.
    pub fn client(
        &self,
        peer: Option<IpAddr>,
        forwarded: Option<&[u8]>,
        forwarded_for: Option<&[u8]>,
    ) -> Option<IpAddr> {
        let Some(trusted_peer) = peer.filter(|&peer| self.contains(peer)) else {
            return peer;
        };
        let hops: Vec<Option<IpAddr>> = match (forwarded, forwarded_for) {
            (Some(forwarded), _) => entries(forwarded).map(forwarded_for_node).collect(),
            (None, Some(list)) => entries(list).map(node).collect(),
            (None, None) => return peer,
        };
        let mut client = trusted_peer;
        for hop in hops.into_iter().rev() {
            let Some(address) = hop else { break };
            client = address;
            if !self.contains(address) {
                break;
            }
        }
        Some(client)
    }
}

/// The comma-separated entries of a field value, trimmed, as text (a non-UTF-8 one is empty,
/// and so no address).
fn entries(value: &[u8]) -> impl DoubleEndedIterator<Item = &str> {
    value
        .split(|&b| b == b',')
        .map(|entry| std::str::from_utf8(entry).unwrap_or("").trim())
}

/// The `for=` node of one `Forwarded` element (`for=192.0.2.60;proto=http`), if an address.
fn forwarded_for_node(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| node(value.trim().trim_matches('"')))?
    })
}

/// A node: `192.0.2.60`, `192.0.2.60:8080`, `2001:db8::17`, `[2001:db8::17]:4711`.
fn node(text: &str) -> Option<IpAddr> {
    if let Some(bracketed) = text.strip_prefix('[') {
        let (address, _port) = bracketed.split_once(']')?;
        return address
            .parse::<Ipv6Addr>()
            .ok()
            .map(IpAddr::V6)
            .map(|a| a.to_canonical());
    }
    if let Ok(address) = text.parse::<IpAddr>() {
        return Some(address.to_canonical());
    }
    let (address, port) = text.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    address.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn trusted(blocks: &[&str]) -> TrustedProxies {
        TrustedProxies::new(blocks.iter().map(|b| b.parse().unwrap()))
    }

    #[test]
    fn blocks_parse_and_match() {
        let block: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(block.contains(ip("10.255.0.1")));
        assert!(!block.contains(ip("11.0.0.1")));
        assert!(
            block.contains(ip("::ffff:10.1.2.3")),
            "IPv4-mapped counts as IPv4"
        );
        assert!(!block.contains(ip("::1")));
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert_eq!(one.to_string(), "192.0.2.7/32");
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::5")));
        for bad in ["10.0.0.0/33", "::/129", "10.0.0/8", "x", "10.0.0.0/", "/8", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_is_trusted_by_default() {
        let default = TrustedProxies::default();
        assert!(default.contains(ip("127.0.0.1")) && default.contains(ip("127.9.9.9")));
        assert!(default.contains(ip("::1")));
        assert!(!default.contains(ip("192.0.2.1")));
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_address_from_a_trusted_peer() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let peer = Some(ip("10.0.0.2"));
        let list = b"198.51.100.1, 203.0.113.5, 10.0.0.9";
        assert_eq!(proxies.client(peer, None, Some(list)), Some(ip("203.0.113.5")));
        assert_eq!(
            proxies.client(peer, None, Some(b"10.1.1.1, 10.0.0.9")),
            Some(ip("10.1.1.1")),
            "all trusted: the leftmost"
        );
        assert_eq!(proxies.client(peer, None, None), peer);
        assert_eq!(proxies.client(peer, None, Some(b"garbage")), peer);
        assert_eq!(
            proxies.client(peer, None, Some(b"203.0.113.5, unknown, 10.0.0.9")),
            Some(ip("10.0.0.9"))
        );
        assert_eq!(
            proxies.client(peer, None, Some(b"203.0.113.5:4711")),
            Some(ip("203.0.113.5"))
        );
        assert_eq!(
            proxies.client(peer, None, Some(b"[2001:db8::1]:80")),
            Some(ip("2001:db8::1"))
        );
        assert_eq!(
            proxies.client(peer, None, Some(b"2001:db8::1")),
            Some(ip("2001:db8::1"))
        );
    }

    #[test]
    fn an_untrusted_peer_names_itself_whatever_it_sends() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let peer = Some(ip("192.0.2.66"));
        assert_eq!(proxies.client(peer, None, Some(b"203.0.113.5")), peer);
        assert_eq!(proxies.client(peer, Some(b"for=203.0.113.5"), None), peer);
        assert_eq!(
            proxies.client(None, None, Some(b"203.0.113.5")),
            None,
            "no address: none named"
        );
    }

    #[test]
    fn forwarded_names_the_client_by_its_for_parameter_and_wins_over_x_forwarded_for() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let peer = Some(ip("10.0.0.2"));
        let forwarded = b"for=198.51.100.1;proto=https, For=\"[2001:db8:cafe::17]:4711\";by=10.0.0.3";
        assert_eq!(
            proxies.client(peer, Some(forwarded), Some(b"203.0.113.5")),
            Some(ip("2001:db8:cafe::17"))
        );
        assert_eq!(
            proxies.client(peer, Some(b"for=_hidden, for=10.0.0.5"), None),
            Some(ip("10.0.0.5"))
        );
        assert_eq!(proxies.client(peer, Some(b"proto=http"), None), peer);
    }
}
