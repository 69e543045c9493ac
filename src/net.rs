//! The sockets HTTP travels over: TCP, or a Unix stream socket (`--bind unix:/path`), bound
//! here or passed in by systemd (socket activation). The models hold one `Listener` type and
//! one `Stream` type and never ask which kind they hold; the kinds differ only where this file
//! says so: TCP options, and whether more listeners can be opened on the same address.

mod activation;
mod handover;
mod interfaces;
mod tcp;
mod unix;

pub use activation::{inherited, ActivationError, Inherited};
pub use handover::{taken_over, Handover, Ready, TakenOver, HANDOVER_VARIABLE};
pub(crate) use tcp::listen_reuseport;
pub use unix::SocketFile;

use socket2::{SockAddr, Socket};
use std::fmt;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Where to listen: `--bind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Tcp(SocketAddr),
    /// A Unix socket at this path, written `unix:PATH`.
    Unix(PathBuf),
}

const UNIX_PREFIX: &str = "unix:";

impl FromStr for Address {
    type Err = String;

    /// `IP:PORT`, `[IPv6]:PORT` or `unix:PATH` (host names are resolved by the command line).
    fn from_str(text: &str) -> Result<Address, String> {
        let Some(path) = text.strip_prefix(UNIX_PREFIX) else {
            return text
                .parse()
                .map(Address::Tcp)
                .map_err(|_| format!("expected IP:PORT or [IPv6]:PORT, got '{text}'"));
        };
        if path.is_empty() {
            return Err(format!("expected a path after 'unix:', got '{text}'"));
        }
        // The kernel's limit (sun_path): checked here so a long path fails as a bad option.
        std::os::unix::net::SocketAddr::from_pathname(path)
            .map_err(|_| format!("a Unix socket path must be shorter than 108 bytes, got '{text}'"))?;
        Ok(Address::Unix(PathBuf::from(path)))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(addr) => addr.fmt(f),
            Address::Unix(path) => write!(f, "{UNIX_PREFIX}{}", path.display()),
        }
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Address {
        Address::Tcp(addr)
    }
}

/// Binds a listener on `address`: a TCP one (`SO_REUSEPORT`, so that the reactor can open one
/// per worker on the same address), or a Unix socket (a stale socket file is removed first).
pub fn bind(address: Address) -> Result<Listener, ListenError> {
    match address {
        Address::Tcp(addr) => tcp::bind(addr),
        Address::Unix(path) => unix::bind(&path),
    }
}

/// Binding or listening on an address failed; "address in use" is told apart.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot listen on {addr}: address already in use")]
    AddressInUse { addr: Address },
    #[error("cannot listen on {addr}: {source}")]
    Other { addr: Address, source: io::Error },
}

impl ListenError {
    fn new(addr: impl Into<Address>, source: io::Error) -> ListenError {
        let addr = addr.into();
        if source.kind() == io::ErrorKind::AddrInUse {
            ListenError::AddressInUse { addr }
        } else {
            ListenError::Other { addr, source }
        }
    }
}

/// The kinds of stream socket served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// IPv4 or IPv6.
    Tcp,
    Unix,
}

/// A listening socket, ready to accept.
#[derive(Debug)]
pub struct Listener {
    /// Shared only with a [`Handover`], which holds it weakly: a stopped server's socket
    /// closes as before, and one being handed over cannot close under the hand-over.
    socket: Arc<Socket>,
    kind: Kind,
    /// Bound here with `SO_REUSEPORT`: more listeners can be opened on its address, and the
    /// kernel spreads new connections across them.
    reuse_port: bool,
    /// More `SO_REUSEPORT` listeners on its address, one per further worker of the models
    /// that run one per worker, opened before serving ([`Listener::open_siblings`]) or
    /// handed over by the server before this one, so that an upgrade can hand them on: a
    /// listener of the group closed with connections in its queue would reset them.
    siblings: Vec<Listener>,
    /// The socket file this listener created, removed when it is dropped (not by copies).
    file: Option<unix::SocketFile>,
}

impl Listener {
    fn new(socket: Socket, kind: Kind, reuse_port: bool, file: Option<unix::SocketFile>) -> Listener {
        Listener {
            socket: Arc::new(socket),
            kind,
            reuse_port,
            siblings: Vec::new(),
            file,
        }
    }

    /// A TCP listener bound here with `SO_REUSEPORT`.
    pub(crate) fn reusing_port(socket: Socket) -> Listener {
        Listener::new(socket, Kind::Tcp, true, None)
    }

    /// Makes sure `count` more `SO_REUSEPORT` listeners are open on its address beside it (for
    /// the workers of `reactor` and `uring`); a listener that no other can join gets none.
    pub fn open_siblings(&mut self, count: usize) -> io::Result<()> {
        if !self.reuse_port {
            return Ok(());
        }
        let addr = self.local_addr()?;
        while self.siblings.len() < count {
            self.siblings
                .push(listen_reuseport(addr).map_err(io::Error::other)?);
        }
        Ok(())
    }

    /// The siblings opened beside it (see [`Listener::open_siblings`]), taken out of it.
    pub(crate) fn take_siblings(&mut self) -> Vec<Listener> {
        std::mem::take(&mut self.siblings)
    }

    /// The socket file it created, to be removed when dropped; taken out of it, so that the
    /// server decides when (and, once it has handed the socket over, whether).
    pub fn take_socket_file(&mut self) -> Option<SocketFile> {
        self.file.take()
    }

    /// Weak handles on the socket and its siblings, for a [`Handover`].
    fn weak_sockets(&self) -> Vec<Weak<Socket>> {
        std::iter::once(self)
            .chain(&self.siblings)
            .map(|listener| Arc::downgrade(&listener.socket))
            .collect()
    }

    /// The address of a TCP listener.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a TCP listener"))
    }

    /// Where clients reach this listener, as the start line lists it: `http://ADDR/`, one per
    /// local interface address if it is bound to `0.0.0.0` or `[::]`; or `unix:PATH`.
    pub fn urls(&self) -> io::Result<Vec<String>> {
        match self.kind {
            Kind::Tcp => {
                let addr = self.local_addr()?;
                // An IPv6 socket that is not IPv6-only (an inherited one may be) takes IPv4 too.
                let dual_stack = addr.is_ipv6() && !self.socket.only_v6()?;
                Ok(interfaces::urls(addr, dual_stack))
            }
            Kind::Unix => Ok(vec![unix_url(&self.socket.local_addr()?)]),
        }
    }

    /// Whether more `SO_REUSEPORT` listeners can be opened on its address.
    pub(crate) fn reuse_port(&self) -> bool {
        self.reuse_port
    }

    /// Another handle on the same listening socket (a workers' shared one). It never removes
    /// the socket file: the original does.
    pub(crate) fn try_clone(&self) -> io::Result<Listener> {
        Ok(Listener::new(
            self.socket.try_clone()?,
            self.kind,
            self.reuse_port,
            None,
        ))
    }

    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.socket.set_nonblocking(nonblocking)
    }

    /// A TCP listener reports a new connection only once its first bytes have arrived
    /// (`TCP_DEFER_ACCEPT`), so a loop that reads right after accepting finds the request
    /// there instead of an empty socket. A client that connects and says nothing is accepted
    /// all the same, after about `wait` (the kernel's next SYN-ACK retransmission), and its
    /// header timeout runs from then. A Unix listener has no such option: left as it is.
    pub(crate) fn defer_accept(&self, wait: Duration) {
        if self.kind != Kind::Tcp {
            return;
        }
        let seconds = nix::libc::c_int::try_from(wait.as_secs()).unwrap_or(nix::libc::c_int::MAX);
        // SAFETY: a valid descriptor, and a pointer to an `int` that lives through the call,
        // with its size: what TCP_DEFER_ACCEPT takes. (Neither rustix, socket2 nor nix wraps
        // this option.)
        unsafe {
            nix::libc::setsockopt(
                self.socket.as_raw_fd(),
                nix::libc::IPPROTO_TCP,
                nix::libc::TCP_DEFER_ACCEPT,
                std::ptr::from_ref(&seconds).cast(),
                std::mem::size_of_val(&seconds) as nix::libc::socklen_t,
            );
        }
    }

    /// Accepts one connection (blocking unless the listener is non-blocking).
    pub(crate) fn accept(&self) -> io::Result<Stream> {
        let (socket, peer) = self.socket.accept()?;
        let peer = match peer.as_socket() {
            Some(peer) => Peer::Ip(peer.ip().to_canonical()),
            None => Peer::Local,
        };
        Ok(Stream::accepted(socket, peer))
    }
}

/// A TCP listener bound elsewhere (the metrics endpoint's): served as it is.
impl From<std::net::TcpListener> for Listener {
    fn from(listener: std::net::TcpListener) -> Listener {
        Listener::new(Socket::from(listener), Kind::Tcp, false, None)
    }
}

/// `unix:PATH` for a socket's address; systemd may also pass an abstract one (`@name`).
fn unix_url(addr: &SockAddr) -> String {
    if let Some(path) = addr.as_pathname() {
        format!("{UNIX_PREFIX}{}", path.display())
    } else if let Some(name) = addr.as_abstract_namespace() {
        format!("{UNIX_PREFIX}@{}", String::from_utf8_lossy(name))
    } else {
        format!("{UNIX_PREFIX}(unnamed)")
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

/// Who is at the other end of an accepted connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peer {
    /// A TCP client, IPv4 clients of an IPv6 socket as IPv4.
    Ip(std::net::IpAddr),
    /// A Unix socket's client: a process on this machine, with no IP address.
    Local,
    /// The socket could not say (the client has already gone).
    Unknown,
}

impl Peer {
    /// The peer of `socket`: one `getpeername`.
    pub fn of(socket: BorrowedFd<'_>) -> Peer {
        match rustix::net::getpeername(socket) {
            Ok(address) => Peer::at(address),
            Err(_) => Peer::Unknown,
        }
    }

    /// The peer at `address`, as `accept4` or `getpeername` gave it.
    pub fn at(address: Option<rustix::net::SocketAddrAny>) -> Peer {
        match address.map(SocketAddr::try_from) {
            Some(Ok(peer)) => Peer::Ip(peer.ip().to_canonical()),
            // A Unix socket's client; an unnamed one has no address at all.
            Some(Err(_)) | None => Peer::Local,
        }
    }

    pub fn ip(self) -> Option<std::net::IpAddr> {
        match self {
            Peer::Ip(ip) => Some(ip),
            Peer::Local | Peer::Unknown => None,
        }
    }
}

/// An accepted connection.
#[derive(Debug)]
pub(crate) struct Stream {
    socket: Socket,
    /// Who connected, when the accept said (it saves a `getpeername`).
    peer: Option<Peer>,
}

impl Stream {
    /// A connection accepted on a listener, of whatever kind.
    pub fn new(socket: impl Into<Socket>) -> Stream {
        Stream {
            socket: socket.into(),
            peer: None,
        }
    }

    /// A connection from `peer`, as the accept that took it said.
    pub fn accepted(socket: impl Into<Socket>, peer: Peer) -> Stream {
        Stream {
            socket: socket.into(),
            peer: Some(peer),
        }
    }

    /// Who is at the other end: as accepted, or asked of the socket.
    pub fn peer(&self) -> Peer {
        self.peer.unwrap_or_else(|| Peer::of(self.as_fd()))
    }

    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.socket.set_write_timeout(timeout)
    }

    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.socket.set_nonblocking(nonblocking)
    }

    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.socket.shutdown(how)
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.socket).read(buf)
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_print_alike() {
        for text in [
            "127.0.0.1:8000",
            "[::1]:80",
            "0.0.0.0:0",
            "unix:/run/bingfa.sock",
            "unix:rel/x.sock",
        ] {
            let address: Address = text.parse().unwrap();
            assert_eq!(address.to_string(), text);
        }
        assert_eq!(
            "unix:/tmp/a".parse::<Address>(),
            Ok(Address::Unix(PathBuf::from("/tmp/a")))
        );
        assert_eq!(
            "10.0.0.1:80".parse::<Address>(),
            Ok(Address::Tcp("10.0.0.1:80".parse().unwrap()))
        );
    }

    #[test]
    fn bad_addresses_say_what_was_expected() {
        let long = format!("unix:/{}", "x".repeat(200));
        for (text, words) in [
            ("unix:", "a path after 'unix:'"),
            (long.as_str(), "shorter than 108 bytes"),
            ("localhost", "IP:PORT"),
            ("127.0.0.1", "IP:PORT"),
        ] {
            let error = text.parse::<Address>().unwrap_err();
            assert!(error.contains(words), "{text}: {error}");
        }
    }
}
