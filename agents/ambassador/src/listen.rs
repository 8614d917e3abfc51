//! Listening sockets. [`bind`] makes a route's socket (plain TCP routes on Linux share it
//! between the `engine` loops, registered with `EPOLLEXCLUSIVE`). The tokio event loops of
//! routes with TLS get one each ([`per_loop`]), bound to the same address with `SO_REUSEPORT`
//! (Linux), so the kernel spreads new connections over the loops and wakes only the loop a
//! connection went to: tokio cannot register a socket with `EPOLLEXCLUSIVE`, and a single socket
//! shared by every loop woke them all for each connection (one `accept` per extra loop found
//! nothing) and let the first loop awake take a whole burst. `TCP_NODELAY` is set on the
//! listeners: accepted sockets inherit it on Linux. Another process on the same address is
//! still an error (see [`bind`]).
use std::{io, net::SocketAddr};

use socket2::{Domain, Socket, Type};

/// Backlog of each listening socket (tokio's default).
const BACKLOG: i32 = 1024;

/// A route's listening sockets, one per event loop.
pub struct Listeners {
    /// Non-blocking sockets, the first bound at start.
    pub sockets: Vec<std::net::TcpListener>,
    /// Whether accepted sockets still need `TCP_NODELAY` set one by one.
    pub set_nodelay: bool,
}

fn socket(addr: SocketAddr, reuse_port: bool) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    #[cfg(unix)]
    s.set_reuse_address(true)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = reuse_port;
    s.bind(&addr.into())?;
    s.listen(BACKLOG)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Binds the route's first listening socket (an error here is the route's bind error).
///
/// A socket without `SO_REUSEPORT` is bound first and closed again: it fails when any other
/// socket holds the address, so a second process on the same port is an error rather than a
/// silent share of its connections (which `SO_REUSEPORT` alone would allow within one user).
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    if !cfg!(any(target_os = "linux", target_os = "android")) {
        return Ok(socket(addr, false)?.into());
    }
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    probe.set_reuse_address(true)?;
    probe.bind(&addr.into())?;
    // Port 0: the port the kernel chose.
    let addr = probe.local_addr()?.as_socket().unwrap_or(addr);
    drop(probe);
    Ok(socket(addr, true)?.into())
}

/// One socket per event loop: `first` and `loops - 1` more on its address; when one cannot be
/// bound, the loops share `first` instead (each its own registration of the same socket).
pub fn per_loop(first: std::net::TcpListener, loops: usize) -> io::Result<Listeners> {
    let addr = first.local_addr()?;
    // Accepted sockets inherit TCP_NODELAY from the listener on Linux.
    let nodelay = |l: &std::net::TcpListener| {
        cfg!(any(target_os = "linux", target_os = "android"))
            && socket2::SockRef::from(l).set_tcp_nodelay(true).is_ok()
    };
    let mut set_nodelay = !nodelay(&first);
    let mut sockets = Vec::with_capacity(loops);
    for _ in 1..loops {
        match socket(addr, true) {
            Ok(s) => {
                let s: std::net::TcpListener = s.into();
                set_nodelay |= !nodelay(&s);
                sockets.push(s);
            }
            Err(error) => {
                tracing::debug!(%addr, %error, "cannot bind one more listening socket; the event loops share one");
                sockets.clear();
                for _ in 1..loops {
                    sockets.push(first.try_clone()?);
                }
                break;
            }
        }
    }
    sockets.insert(0, first);
    Ok(Listeners {
        sockets,
        set_nodelay,
    })
}
