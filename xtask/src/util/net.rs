//! Whether something listens at a TCP address: the one probe the xtask makes before it talks to a
//! registry, picks a free port or waits for a server it started.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// True when `host:port` resolves and a TCP connection to it opens within `limit`.
pub fn answers(host_port: &str, limit: Duration) -> bool {
    host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, limit).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_port_answers_and_a_closed_one_does_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        assert!(answers(&addr, Duration::from_secs(1)));
        drop(listener);
        assert!(!answers(&addr, Duration::from_secs(1)));
        assert!(!answers("not a host:1", Duration::from_secs(1)));
    }
}
