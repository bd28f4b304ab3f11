//! Who is at a TCP port: whether something listens at an address (the one probe the xtask makes
//! before it talks to a registry, picks a free port or waits for a server it started), and which
//! processes hold a listening socket on a port (`up`'s taken ports, the engine's registry port).

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// True when `host:port` resolves and a TCP connection to it opens within `limit`.
pub(crate) fn answers(host_port: &str, limit: Duration) -> bool {
    host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, limit).is_ok())
}

/// The inodes of sockets listening on `port` in a `/proc/net/tcp` or `tcp6` table, on any local
/// address (a listener on 0.0.0.0 or :: holds 127.0.0.1 too).
pub(crate) fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f.get(1)?.rsplit(':').next()?;
            let listening = *f.get(3)? == LISTEN;
            let matches = u16::from_str_radix(local_port, 16).ok()? == port;
            (listening && matches).then(|| f.get(9)?.parse().ok()).flatten()
        })
        .collect()
}

/// A process holding a socket: its pid and program name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Holder {
    pub(crate) pid: u32,
    pub(crate) program: String,
}

/// The processes holding a listening socket on `port` (Linux; empty elsewhere, or when the
/// process table cannot be read).
pub(crate) fn holders(port: u16) -> Vec<Holder> {
    #[cfg(target_os = "linux")]
    {
        let mut inodes = Vec::new();
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            inodes.extend(listening_inodes(&std::fs::read_to_string(table).unwrap_or_default(), port));
        }
        let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
        let mut found = Vec::new();
        let Ok(procs) = std::fs::read_dir("/proc") else { return found };
        for entry in procs.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else { continue };
            let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
            let holds = fds.flatten().any(|fd| {
                std::fs::read_link(fd.path()).is_ok_and(|l| wanted.iter().any(|w| l.as_os_str() == w.as_str()))
            });
            if holds {
                let program = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                found.push(Holder { pid, program: program.trim().to_string() });
            }
        }
        found
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = port;
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_listening_port_answers_and_a_closed_one_does_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        assert!(answers(&addr, Duration::from_secs(1)));
        // Port 1 is outside the ephemeral range, so no other test's listener can take it meanwhile.
        assert!(!answers("127.0.0.1:1", Duration::from_secs(1)));
        assert!(!answers("not a host:1", Duration::from_secs(1)));
    }
}
