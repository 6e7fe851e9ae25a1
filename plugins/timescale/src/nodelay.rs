//! TCP_NODELAY for the pool's TCP connections.
//!
//! sqlx 0.9.0 opens TCP connections without TCP_NODELAY (transact-rs/sqlx#4335; fixed upstream
//! by #4336, not in a release yet). With Nagle's algorithm on, the last partial segment of a
//! large message (a batch's bind parameters) waits for the server's delayed ACK, up to 40 ms
//! per statement: writes over TCP ran well below the same writes through the Unix socket, where
//! Nagle does not apply (BENCHMARKS.md, "Timescale store"). sqlx gives no access to its socket,
//! so after each connect we find it among the process's descriptors by its address and set the
//! option on it. Remove this module once a sqlx release sets TCP_NODELAY itself.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// What became of the pool's connections, for the `schema` answer.
#[derive(Debug, Default)]
pub struct Tally {
    set: AtomicU64,
    missed: AtomicU64,
}

impl Tally {
    /// Counts one connection: TCP_NODELAY set on it or not.
    pub fn count(&self, set: bool) {
        let c = if set { &self.set } else { &self.missed };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// `{"set": n, "not_set": m}`: connections opened so far (over TCP; none through a socket).
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "set": self.set.load(Ordering::Relaxed),
            "not_set": self.missed.load(Ordering::Relaxed),
        })
    }
}

/// Sets TCP_NODELAY on this process's TCP socket whose local address is `local` and whose peer
/// is `peer` (both as the server saw them). Returns whether such a socket was found.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn set_on_connection(local: SocketAddr, peer: SocketAddr) -> std::io::Result<bool> {
    use std::os::fd::{BorrowedFd, RawFd};

    let mut failed = None;
    for entry in std::fs::read_dir("/proc/self/fd")?.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path()).is_ok_and(|target| {
            target
                .as_os_str()
                .as_encoded_bytes()
                .starts_with(b"socket:")
        });
        if !is_socket {
            continue;
        }
        // SAFETY: `fd` was open when /proc listed it, and the borrow is used only for the three
        // socket calls below, none of which closes or writes through it. Should another thread
        // close it meanwhile, they fail with EBADF; should the number be reused at once, the
        // check of both addresses below refuses anything but the connection being set up, which
        // stays open for as long as this runs.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let sock = socket2::SockRef::from(&borrowed);
        let addr = |a: std::io::Result<socket2::SockAddr>| a.ok().and_then(|a| a.as_socket());
        if addr(sock.local_addr()) == Some(local) && addr(sock.peer_addr()) == Some(peer) {
            match sock.set_tcp_nodelay(true) {
                Ok(()) => return Ok(true),
                Err(e) => failed = Some(e),
            }
        }
    }
    failed.map_or(Ok(false), Err)
}

/// Elsewhere the connection keeps the system's default.
#[cfg(not(target_os = "linux"))]
pub fn set_on_connection(_local: SocketAddr, _peer: SocketAddr) -> std::io::Result<bool> {
    Ok(false)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn finds_the_connection_by_its_addresses_and_sets_nodelay() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let server = listener.local_addr().expect("addr");
        let client = std::net::TcpStream::connect(server).expect("connect");
        let (accepted, _) = listener.accept().expect("accept");
        assert!(!client.nodelay().expect("nodelay"), "off by default");
        let local = client.local_addr().expect("addr");
        assert!(set_on_connection(local, server).expect("scan"));
        assert!(client.nodelay().expect("nodelay"));
        // The server's side of the same connection has the two addresses the other way round.
        assert!(!accepted.nodelay().expect("nodelay"));
        // No such connection: nothing found, nothing changed.
        let elsewhere = SocketAddr::new(server.ip(), server.port().wrapping_add(1));
        assert!(!set_on_connection(local, elsewhere).expect("scan"));
    }
}
