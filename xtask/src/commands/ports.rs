//! Who holds a TCP port: the listening socket in `/proc/net/tcp{,6}`, the process whose file
//! descriptors include it, and, when that is Docker's port proxy, the container it serves.
//! Used by `up` to refuse a taken port in one line before anything starts.

use std::net::{Ipv4Addr, TcpListener};

/// A port the stack publishes (`127.0.0.1:8000`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Published {
    pub(crate) service: String,
    pub(crate) host_ip: String,
    pub(crate) port: u16,
}

/// True when the address can be bound now (nothing listens on it, nor on all addresses).
pub(crate) fn free(host_ip: &str, port: u16) -> bool {
    let ip: Ipv4Addr = host_ip.parse().unwrap_or(Ipv4Addr::LOCALHOST);
    TcpListener::bind((ip, port)).is_ok()
}

// Who holds a port is a question the engine asks too (its registry's port): it lives in util.
pub(crate) use crate::util::net::{holders, Holder};

/// The one line `up` prints for a taken port. `container` is a container of the engine in use
/// that publishes the port, if any.
pub(crate) fn taken_line(p: &Published, holders: &[Holder], container: Option<&str>) -> String {
    let addr = format!("{}:{}", p.host_ip, p.port);
    let who = match (container, holders.first()) {
        (Some(c), _) => format!("container `{c}` of this engine publishes it (`docker stop {c}`)"),
        (None, Some(h)) if h.program == "docker-proxy" => {
            format!("docker-proxy (pid {}) holds it for a container of another Docker engine", h.pid)
        }
        (None, Some(h)) => format!("{} (pid {}) listens on it", h.program, h.pid),
        (None, None) => "another program holds it (not one this user can see)".to_string(),
    };
    format!("port {addr} for {} is taken: {who}; free it and run `cargo xtask up` again", p.service)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::net::listening_inodes;

    // Two lines of a real /proc/net/tcp: a listener on 127.0.0.1:8000 (0x1F40) and an
    // established connection from port 3000 (0x0BB8).
    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41331 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0BB8 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 51234 1 0000000000000000 20 4 30 10 -1";

    #[test]
    fn only_listeners_on_the_port_count() {
        assert_eq!(listening_inodes(TABLE, 8000), vec![41331]);
        assert_eq!(listening_inodes(TABLE, 3000), Vec::<u64>::new(), "an established socket holds no port");
        assert_eq!(listening_inodes("", 8000), Vec::<u64>::new());
    }

    #[test]
    fn the_line_names_the_port_and_its_holder() {
        let p = Published { service: "backend".into(), host_ip: "127.0.0.1".into(), port: 8000 };
        let python = [Holder { pid: 42, program: "python3".into() }];
        assert_eq!(
            taken_line(&p, &python, None),
            "port 127.0.0.1:8000 for backend is taken: python3 (pid 42) listens on it; free it and run `cargo xtask up` again"
        );
        assert!(taken_line(&p, &[], Some("web")).contains("container `web` of this engine publishes it"));
        let proxy = [Holder { pid: 7, program: "docker-proxy".into() }];
        assert!(taken_line(&p, &proxy, None).contains("a container of another Docker engine"));
    }

    #[test]
    fn a_bound_port_is_not_free() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(!free("127.0.0.1", port));
        #[cfg(target_os = "linux")]
        assert!(holders(port).iter().any(|h| h.pid == std::process::id()), "this test process holds it");
        drop(l);
        assert!(free("127.0.0.1", port));
    }
}
