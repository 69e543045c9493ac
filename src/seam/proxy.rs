//! The PROXY protocol (HAProxy's, versions 1 and 2): the first stage of a link behind a load
//! balancer that says who the client is. The header comes before anything else, TLS's
//! ClientHello included, so this stage reads it before the transport sees a byte, then hands
//! the bytes that followed it on.
//!
//! Parsing is the `ppp` crate's. For version 2 it tells a header that needs more bytes from a
//! wrong one, so the header is parsed again from the start as each read adds to it (it is
//! at most [`CAPACITY`] bytes); a version 1 line is parsed once it has ended (see
//! `parse_v1`). What this stage decides itself is when to give up: a header longer
//! than a version allows, one that is not a header at all, the end of the stream, or the
//! header timeout (the link's deadline while the stage reads).
//!
//! Whether a connection must open with a header is decided before it is made a link, from
//! the address it came from (`--trusted-proxies`): nothing here trusts anyone.

use ppp::v1::Addresses as V1;
use ppp::v2::{Addresses as V2, Command, ParseError as V2Error};
use ppp::PartialResult;
use std::net::IpAddr;
use std::time::Instant;

/// The longest version 1 header, line end included.
const V1_LONGEST: usize = 107;
/// A version 2 header's fixed part: signature, version and command, family, length.
const V2_FIXED: usize = 16;
/// The longest header read: a version 2 header with Unix addresses (216 bytes) and 304 bytes
/// of TLVs, which is more than the TLVs a load balancer sends (ALPN, authority, a unique
/// id, TLS details).
pub const CAPACITY: usize = 536;

/// What the header said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carried {
    /// The client the proxy relays: its IP address, or none it can say in one (a version 2
    /// header with Unix addresses: logged as `-`).
    Client(Option<IpAddr>),
    /// The proxy speaks for itself (version 2 `LOCAL`, a health check; version 1 `UNKNOWN`;
    /// an unspecified family): the connection is the proxy's, under its own address.
    Proxy,
}

/// The outcome of parsing what has arrived so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A header may still come: read more.
    Incomplete,
    /// A header of `len` bytes; what follows is the connection's.
    Complete { carried: Carried, len: usize },
    /// Not a PROXY header, or one this server does not take.
    Invalid,
}

/// Parses a PROXY header at the start of `bytes`.
pub fn parse(bytes: &[u8]) -> Parsed {
    match bytes.first() {
        None => Parsed::Incomplete,
        Some(b'P') => parse_v1(bytes),
        Some(_) => parse_v2(bytes),
    }
}

/// A version 1 header: one line, `PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\n`. `ppp` is given
/// the line alone, once it has ended at its first `\n`, which must follow a `\r`: before, a
/// prefix that stops after a space reads to it as a wrong header (an empty port), not as one
/// still arriving; and beyond the first `\n` it would read an `UNKNOWN` line on to a later
/// `\r\n`, so where the header ends would depend on how its bytes arrived.
fn parse_v1(bytes: &[u8]) -> Parsed {
    const PREFIX: &[u8] = b"PROXY ";
    let Some(newline) = memchr::memchr(b'\n', bytes) else {
        let may_be_one = PREFIX.starts_with(bytes) || bytes.starts_with(PREFIX);
        return if may_be_one && bytes.len() < V1_LONGEST {
            Parsed::Incomplete
        } else {
            Parsed::Invalid
        };
    };
    let line = &bytes[..=newline];
    if !line.ends_with(b"\r\n") {
        return Parsed::Invalid;
    }
    match plain_tcp_v1(line).or_else(|| ppp_v1(line)) {
        Some(carried) => Parsed::Complete {
            carried,
            len: line.len(),
        },
        None => Parsed::Invalid,
    }
}

/// What `ppp` makes of a whole version 1 line; `None` if it is not one header exactly.
fn ppp_v1(line: &[u8]) -> Option<Carried> {
    let header = ppp::v1::Header::try_from(line).ok()?;
    if header.header.len() != line.len() {
        return None;
    }
    Some(match header.addresses {
        V1::Tcp4(ip) => Carried::Client(Some(ip.source_address.into())),
        V1::Tcp6(ip) => Carried::Client(Some(IpAddr::V6(ip.source_address).to_canonical())),
        V1::Unknown => Carried::Proxy,
    })
}

/// The line every load balancer sends, `PROXY TCP4|TCP6 SOURCE DESTINATION SPORT DPORT\r\n`
/// with single spaces and plain decimal ports, read with the standard library's address
/// parsers: `ppp`'s general parser costs about 2,000 instructions a line, a tenth of this
/// server's whole work for a new connection. Anything else (`UNKNOWN`, odd spacing, a wrong
/// field) is left to `ppp`, which then decides; a line this accepts, `ppp` accepts with the
/// same source (a test checks both on many lines).
fn plain_tcp_v1(line: &[u8]) -> Option<Carried> {
    let mut fields = line
        .strip_prefix(b"PROXY ")?
        .strip_suffix(b"\r\n")?
        .split(|&b| b == b' ');
    let (family, source, destination) = (fields.next()?, fields.next()?, fields.next()?);
    let ports = [fields.next()?, fields.next()?];
    if fields.next().is_some() || !ports.iter().all(|port| is_plain_port(port)) {
        return None;
    }
    let (source, destination) = (
        std::str::from_utf8(source).ok()?,
        std::str::from_utf8(destination).ok()?,
    );
    let source = match family {
        b"TCP4" => {
            destination.parse::<std::net::Ipv4Addr>().ok()?;
            IpAddr::V4(source.parse().ok()?)
        }
        b"TCP6" => {
            destination.parse::<std::net::Ipv6Addr>().ok()?;
            IpAddr::V6(source.parse::<std::net::Ipv6Addr>().ok()?).to_canonical()
        }
        _ => return None,
    };
    Some(Carried::Client(Some(source)))
}

/// A port as HAProxy writes it: 0 to 65535 in decimal, no sign, no leading zero.
fn is_plain_port(port: &[u8]) -> bool {
    let value = port.iter().try_fold(0u32, |value, &b| {
        b.is_ascii_digit()
            .then(|| value * 10 + u32::from(b - b'0'))
            .filter(|&v| v <= 65535)
    });
    let canonical = port == b"0" || port.first().is_some_and(|&b| b != b'0');
    canonical && value.is_some()
}

/// A version 2 header: 16 bytes that say how long the rest is, then addresses and TLVs.
fn parse_v2(bytes: &[u8]) -> Parsed {
    let header = match ppp::v2::Header::try_from(bytes) {
        Ok(header) if header.len() <= CAPACITY => header,
        // Refused as soon as the length says the header will not fit, not once it has come.
        Err(V2Error::Partial(_, length)) if V2_FIXED + length > CAPACITY => return Parsed::Invalid,
        Err(error) if error.is_incomplete() => return Parsed::Incomplete,
        _ => return Parsed::Invalid,
    };
    let carried = match (header.command, header.addresses) {
        (Command::Local, _) | (_, V2::Unspecified) => Carried::Proxy,
        (Command::Proxy, V2::IPv4(ip)) => Carried::Client(Some(ip.source_address.into())),
        (Command::Proxy, V2::IPv6(ip)) => Carried::Client(Some(IpAddr::V6(ip.source_address).to_canonical())),
        (Command::Proxy, V2::Unix(_)) => Carried::Client(None),
    };
    Parsed::Complete {
        carried,
        len: header.len(),
    }
}

/// The stage: the header's bytes as they arrive, until it is whole.
#[derive(Debug)]
pub(super) struct ProxyHeader {
    buf: Box<[u8; CAPACITY]>,
    filled: usize,
    /// The header timeout: by then the header is whole, or the connection closes.
    deadline: Instant,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Reading,
    /// The header was `len` bytes; `buf[len..filled]` came after it.
    Read {
        carried: Carried,
        len: usize,
    },
    /// The connection ends without a word: no header, a wrong one, or the end of stream.
    Refused,
}

impl ProxyHeader {
    pub fn new(deadline: Instant) -> ProxyHeader {
        ProxyHeader {
            buf: Box::new([0; CAPACITY]),
            filled: 0,
            deadline,
            state: State::Reading,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Where the next read goes: only as much as a header can still take.
    pub fn room(&mut self) -> &mut [u8] {
        &mut self.buf[self.filled..]
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// `n` bytes were read into [`ProxyHeader::room`]; 0: the peer closed.
    pub fn received(&mut self, n: usize) {
        if n == 0 {
            self.state = State::Refused;
            return;
        }
        self.filled = (self.filled + n).min(CAPACITY);
        self.state = match parse(&self.buf[..self.filled]) {
            Parsed::Incomplete => State::Reading,
            Parsed::Complete { carried, len } => State::Read { carried, len },
            Parsed::Invalid => State::Refused,
        };
    }

    /// The bytes that came after the header, once it is read.
    pub fn rest(&self) -> &[u8] {
        match self.state {
            State::Read { len, .. } => &self.buf[len..self.filled],
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

    fn v2(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
        let mut header = V2_SIGNATURE.to_vec();
        header.push(0x20 | command);
        header.push(family);
        header.extend_from_slice(&u16::try_from(addresses.len()).unwrap().to_be_bytes());
        header.extend_from_slice(addresses);
        header
    }

    fn v2_ipv4(source: [u8; 4]) -> Vec<u8> {
        let mut addresses = source.to_vec();
        addresses.extend_from_slice(&[127, 0, 0, 1, 0x30, 0x39, 0, 80]);
        v2(1, 0x11, &addresses)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn client(text: &str) -> Carried {
        Carried::Client(Some(ip(text)))
    }

    #[test]
    fn version_1_names_the_client() {
        let header = b"PROXY TCP4 192.0.2.7 127.0.0.1 56324 443\r\n";
        let len = header.len();
        assert_eq!(
            parse(header),
            Parsed::Complete {
                carried: client("192.0.2.7"),
                len
            }
        );
        let mut more = header.to_vec();
        more.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(
            parse(&more),
            Parsed::Complete {
                carried: client("192.0.2.7"),
                len
            }
        );
        let six = b"PROXY TCP6 2001:db8::1 ::1 56324 443\r\n";
        assert_eq!(
            parse(six),
            Parsed::Complete {
                carried: client("2001:db8::1"),
                len: six.len()
            }
        );
        let unknown = b"PROXY UNKNOWN\r\n";
        assert_eq!(
            parse(unknown),
            Parsed::Complete {
                carried: Carried::Proxy,
                len: unknown.len()
            }
        );
    }

    #[test]
    fn the_plain_version_1_line_reads_as_ppp_reads_it() {
        let families = ["TCP4", "TCP6", "UNKNOWN", "tcp4", "TCP5", ""];
        let addresses = [
            "192.0.2.7",
            "10.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "01.2.3.4",
            "1.2.3",
            "300.1.1.1",
            "1.2.3.4.5",
            "::1",
            "2001:db8::1",
            "::ffff:192.0.2.7",
            "fe80::1%eth0",
            "[::1]",
            "",
        ];
        let ports = [
            "0", "80", "443", "65535", "65536", "080", "+80", "-1", "", "8 0", "00",
        ];
        let mut taken = 0;
        for family in families {
            for (source, destination) in addresses
                .iter()
                .flat_map(|a| addresses.iter().map(move |b| (a, b)))
            {
                for (sport, dport) in ports.iter().zip(ports.iter().cycle().skip(1)) {
                    for space in [" ", "  "] {
                        let line = format!("PROXY {family} {source}{space}{destination} {sport} {dport}\r\n");
                        if let Some(carried) = plain_tcp_v1(line.as_bytes()) {
                            assert_eq!(ppp_v1(line.as_bytes()), Some(carried), "{line:?}");
                            taken += 1;
                        }
                    }
                }
            }
        }
        assert!(taken > 10, "the plain lines take the short way ({taken})");
        for line in [
            "PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\n",
            "PROXY TCP6 2001:db8::1 ::1 0 65535\r\n",
            "PROXY TCP6 ::ffff:192.0.2.7 ::1 1 2\r\n",
        ] {
            let fast = plain_tcp_v1(line.as_bytes());
            assert!(fast.is_some(), "{line:?}");
            assert_eq!(fast, ppp_v1(line.as_bytes()), "{line:?}");
        }
    }

    #[test]
    fn version_2_names_the_client() {
        let header = v2_ipv4([192, 0, 2, 7]);
        assert_eq!(
            parse(&header),
            Parsed::Complete {
                carried: client("192.0.2.7"),
                len: 28
            }
        );
        let mut addresses = ip_bytes("2001:db8::1");
        addresses.extend(ip_bytes("::1"));
        addresses.extend([0, 1, 0, 2]);
        let six = v2(1, 0x21, &addresses);
        assert_eq!(
            parse(&six),
            Parsed::Complete {
                carried: client("2001:db8::1"),
                len: 52
            }
        );
        let unix = v2(1, 0x31, &[0; 216]);
        assert_eq!(
            parse(&unix),
            Parsed::Complete {
                carried: Carried::Client(None),
                len: 232
            }
        );
    }

    fn ip_bytes(text: &str) -> Vec<u8> {
        match ip(text) {
            IpAddr::V6(v6) => v6.octets().to_vec(),
            IpAddr::V4(v4) => v4.octets().to_vec(),
        }
    }

    #[test]
    fn tlvs_are_skipped() {
        let mut addresses = vec![192, 0, 2, 7, 127, 0, 0, 1, 0, 1, 0, 2];
        addresses.extend([0x01, 0, 2, b'h', b'2']); // ALPN
        let header = v2(1, 0x11, &addresses);
        assert_eq!(
            parse(&header),
            Parsed::Complete {
                carried: client("192.0.2.7"),
                len: header.len()
            }
        );
    }

    #[test]
    fn local_and_unspecified_are_the_proxy_itself() {
        let local = v2(0, 0x00, &[]);
        assert_eq!(
            parse(&local),
            Parsed::Complete {
                carried: Carried::Proxy,
                len: 16
            }
        );
        let local_with_addresses = v2(0, 0x11, &[10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2]);
        assert_eq!(
            parse(&local_with_addresses),
            Parsed::Complete {
                carried: Carried::Proxy,
                len: 28
            }
        );
        let unspecified = v2(1, 0x00, &[]);
        assert_eq!(
            parse(&unspecified),
            Parsed::Complete {
                carried: Carried::Proxy,
                len: 16
            }
        );
    }

    #[test]
    fn every_prefix_of_a_header_is_incomplete() {
        let v1 = b"PROXY TCP4 192.0.2.7 127.0.0.1 56324 443\r\n".to_vec();
        for header in [v1, v2_ipv4([192, 0, 2, 7])] {
            for end in 0..header.len() {
                assert_eq!(parse(&header[..end]), Parsed::Incomplete, "{:?}", &header[..end]);
            }
        }
    }

    #[test]
    fn what_is_no_header_is_invalid() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n\r\n"), Parsed::Invalid);
        assert_eq!(
            parse(&[0x16, 0x03, 0x01, 0x02, 0x00]),
            Parsed::Invalid,
            "a ClientHello"
        );
        assert_eq!(
            parse(b"PROXY TCP4 192.0.2.7\r\n"),
            Parsed::Invalid,
            "truncated addresses"
        );
        assert_eq!(parse(b"PROXY TCP4 300.0.2.7 127.0.0.1 1 2\r\n"), Parsed::Invalid);
        assert_eq!(
            parse(b"PROXY UDP4 192.0.2.7 127.0.0.1 1 2\r\n"),
            Parsed::Invalid,
            "unknown family"
        );
        let mut unknown_family = v2_ipv4([192, 0, 2, 7]);
        unknown_family[13] = 0x41;
        assert_eq!(parse(&unknown_family), Parsed::Invalid, "unknown family");
        let mut version_3 = v2_ipv4([192, 0, 2, 7]);
        version_3[12] = 0x31;
        assert_eq!(parse(&version_3), Parsed::Invalid);
        let short_addresses = v2(1, 0x11, &[192, 0, 2, 7]);
        assert_eq!(parse(&short_addresses), Parsed::Invalid, "truncated addresses");
    }

    #[test]
    fn oversized_headers_are_invalid_before_they_arrive() {
        let mut long_v1 = b"PROXY TCP4 ".to_vec();
        long_v1.resize(120, b'1');
        assert_eq!(parse(&long_v1), Parsed::Invalid);
        let too_long = v2(1, 0x11, &[0; CAPACITY - V2_FIXED + 1]);
        assert_eq!(
            parse(&too_long[..V2_FIXED]),
            Parsed::Invalid,
            "refused on its length alone"
        );
        assert_eq!(parse(&too_long), Parsed::Invalid);
        let longest = v2(1, 0x11, &[0; CAPACITY - V2_FIXED]);
        assert!(matches!(parse(&longest), Parsed::Complete { len: CAPACITY, .. }));
    }

    /// Feeds `bytes` to a stage `step` bytes at a time; its state once it stops reading.
    fn feed(bytes: &[u8], step: usize) -> (State, Vec<u8>) {
        let mut stage = ProxyHeader::new(Instant::now());
        let mut at = 0;
        while stage.state() == State::Reading {
            let room = stage.room();
            let n = step.min(room.len()).min(bytes.len() - at);
            room[..n].copy_from_slice(&bytes[at..at + n]);
            stage.received(n);
            at += n;
        }
        (stage.state(), stage.rest().to_vec())
    }

    #[test]
    fn a_header_split_byte_by_byte_is_read_and_what_follows_kept() {
        for mut header in [
            b"PROXY TCP4 192.0.2.7 127.0.0.1 56324 443\r\n".to_vec(),
            v2_ipv4([192, 0, 2, 7]),
        ] {
            let len = header.len();
            header.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
            for step in [1, 2, 7, 1000] {
                let (state, rest) = feed(&header, step);
                assert_eq!(
                    state,
                    State::Read {
                        carried: client("192.0.2.7"),
                        len
                    },
                    "step {step}"
                );
                let expected: &[u8] = if step == 1 { b"" } else { &header[len..] };
                assert!(expected.starts_with(&rest) && rest.len() <= header.len() - len);
                if step == 1000 {
                    assert_eq!(rest, b"GET / HTTP/1.1\r\n\r\n");
                }
            }
        }
    }

    #[test]
    fn the_end_of_stream_before_a_whole_header_refuses() {
        let header = v2_ipv4([192, 0, 2, 7]);
        let (state, _) = feed(&header[..20], 20);
        assert_eq!(state, State::Refused);
        let mut stage = ProxyHeader::new(Instant::now());
        stage.room()[..5].copy_from_slice(b"PROXY");
        stage.received(5);
        assert_eq!(stage.state(), State::Reading);
        stage.received(0);
        assert_eq!(stage.state(), State::Refused);
    }
}
