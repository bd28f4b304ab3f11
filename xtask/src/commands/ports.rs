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

use crate::util::net::Holder;

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
    use crate::util::net::holders;

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
