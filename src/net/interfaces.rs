//! For a server bound to every interface (`0.0.0.0` or `[::]`), the start line lists a URL per
//! address of this machine, as a person would type or click them, instead of one they cannot
//! connect to.

use nix::ifaddrs::getifaddrs;
use nix::net::if_::InterfaceFlags;
use std::net::{IpAddr, SocketAddr};

/// `http://ADDR/` for `addr`, or for an unspecified `addr` one per local address of the
/// families served (IPv4 too if `dual_stack`).
pub(super) fn urls(addr: SocketAddr, dual_stack: bool) -> Vec<String> {
    let url = |addr: SocketAddr| format!("http://{addr}/");
    if !addr.ip().is_unspecified() {
        return vec![url(addr)];
    }
    let ips = reachable(interface_ips(), addr.is_ipv4() || dual_stack, addr.is_ipv6());
    if ips.is_empty() {
        return vec![url(addr)];
    }
    ips.into_iter()
        .map(|ip| url(SocketAddr::new(ip, addr.port())))
        .collect()
}

/// The addresses of the interfaces that are up, in the kernel's order. If they cannot be read
/// (an odd sandbox), none: the start line then shows the address bound to.
fn interface_ips() -> Vec<IpAddr> {
    let Ok(interfaces) = getifaddrs() else {
        return Vec::new();
    };
    interfaces
        .filter(|interface| interface.flags.contains(InterfaceFlags::IFF_UP))
        .filter_map(|interface| {
            let address = interface.address?;
            let v4 = address.as_sockaddr_in().map(|a| IpAddr::V4(a.ip()));
            v4.or_else(|| address.as_sockaddr_in6().map(|a| IpAddr::V6(a.ip())))
        })
        .collect()
}

/// Of `ips`, those of the families served, each once: loopback first (the tests and a person
/// at the machine use it), IPv4 before IPv6, otherwise in the kernel's order. IPv6 link-local
/// addresses are left out: their URL needs the interface's name, which browsers do not take.
fn reachable(ips: Vec<IpAddr>, v4: bool, v6: bool) -> Vec<IpAddr> {
    let mut kept: Vec<IpAddr> = Vec::new();
    for ip in ips {
        let served = match ip {
            IpAddr::V4(_) => v4,
            IpAddr::V6(ip) => v6 && !ip.is_unicast_link_local(),
        };
        if served && !kept.contains(&ip) {
            kept.push(ip);
        }
    }
    kept.sort_by_key(|ip| (!ip.is_loopback(), ip.is_ipv6()));
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|ip| ip.parse().unwrap()).collect()
    }

    #[test]
    fn loopback_first_then_the_rest_of_the_families_served() {
        let found = ips(&[
            "10.0.0.5",
            "127.0.0.1",
            "fe80::1",
            "2001:db8::7",
            "::1",
            "10.0.0.5",
        ]);
        assert_eq!(
            reachable(found.clone(), true, false),
            ips(&["127.0.0.1", "10.0.0.5"])
        );
        assert_eq!(
            reachable(found.clone(), false, true),
            ips(&["::1", "2001:db8::7"])
        );
        assert_eq!(
            reachable(found, true, true),
            ips(&["127.0.0.1", "::1", "10.0.0.5", "2001:db8::7"])
        );
    }

    #[test]
    fn a_specific_address_is_its_own_url() {
        let urls = |addr: &str| urls(addr.parse().unwrap(), false);
        assert_eq!(urls("127.0.0.1:8000"), ["http://127.0.0.1:8000/"]);
        assert_eq!(urls("[::1]:80"), ["http://[::1]:80/"]);
    }

    #[test]
    fn every_interface_lists_loopback_first() {
        let all = urls("0.0.0.0:8000".parse().unwrap(), false);
        assert_eq!(
            all.first().map(String::as_str),
            Some("http://127.0.0.1:8000/"),
            "{all:?}"
        );
        assert!(all.iter().all(|url| !url.contains("0.0.0.0")), "{all:?}");
    }
}
