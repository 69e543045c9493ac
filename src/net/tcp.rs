//! `--bind IP:PORT`: TCP listeners, and the options every TCP listener gets.

use super::{ListenError, Listener};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;

/// Binds a TCP listener on `addr`. Every TCP listener is `SO_REUSEPORT`, so the reactor can
/// open one per worker on the same address.
pub(super) fn bind(addr: SocketAddr) -> Result<Listener, ListenError> {
    if addr.port() != 0 {
        check_address_free(addr)?;
    }
    listen_reuseport(addr)
}

/// With `SO_REUSEPORT`, a second server of the same user could silently share a port with
/// the first. A plain bind first makes "address in use" an error, as users expect. (A server
/// that takes the port between this check and the real bind would still share it.)
fn check_address_free(addr: SocketAddr) -> Result<(), ListenError> {
    let fail = |source| ListenError::new(addr, source);
    new_socket(addr).map_err(fail)?.bind(&addr.into()).map_err(fail)
}

/// Another listener on `addr`, which the kernel then spreads new connections across with
/// the others bound there.
pub(crate) fn listen_reuseport(addr: SocketAddr) -> Result<Listener, ListenError> {
    let listen = || {
        let socket = new_socket(addr)?;
        socket.set_reuse_port(true)?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.bind(&addr.into())?;
        socket.listen(4096)?;
        Ok(Listener::reusing_port(socket))
    };
    listen().map_err(|source| ListenError::new(addr, source))
}

/// Unsent bytes below which a connection counts as writable again. It also caps what one
/// `sendfile` may leave unsent, so it sets how many rounds of wake-up and `sendfile` a large
/// body takes: at 256 KiB, a 1 MiB file took at least four, and reactor served 25-40% fewer
/// of them per second than at 2 MiB, which is as fast as no mark at all (wrk -c100 on the
/// 1 MiB file, 2 cores). A client slower than the kernel's wake-up is still seen taking data:
/// see `engine::SendWatch`.
const NOTSENT_LOWAT: u32 = 2 << 20;

fn new_socket(addr: SocketAddr) -> std::io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.cloexec(),
        Some(Protocol::TCP),
    )?;
    // Restarting must not wait for old connections in TIME_WAIT.
    socket.set_reuse_address(true)?;
    tune(&socket);
    Ok(socket)
}

/// Settings for a TCP listener, bound here or passed in by systemd.
pub(super) fn tune(socket: &Socket) {
    // Report a socket writable once its *unsent* backlog is small, not once the whole
    // (autotuned, megabytes large) send buffer has drained: a client reading slowly but
    // steadily then shows progress often, so only one that stops reading meets the send
    // timeout. Accepted sockets inherit it. Old kernels lack it; nothing else depends on it.
    let _ = socket.set_tcp_notsent_lowat(NOTSENT_LOWAT);
    // Small responses must not wait for Nagle's algorithm. Set once here, since accepted
    // sockets inherit it: a system call saved on every connection.
    let _ = socket.set_tcp_nodelay(true);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nagle's algorithm is turned off once, on the listener: accepted sockets inherit it.
    #[test]
    fn accepted_sockets_inherit_no_delay() {
        let listener = listen_reuseport("127.0.0.1:0".parse().unwrap()).unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let accepted = listener.accept().unwrap();
        let fd = std::os::fd::AsFd::as_fd(&accepted);
        assert!(rustix::net::sockopt::tcp_nodelay(fd).unwrap());
    }
}
