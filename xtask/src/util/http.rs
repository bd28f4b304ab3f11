//! Plain HTTP/1.1 requests without a body over a stream the caller opened (the engine's unix socket, a loopback TCP
//! port): enough for the engine's API, a local registry and a container's health endpoint,
//! without an HTTP client crate to compile; and a TCP exchange bounded in time, size and by a
//! stop signal, for a peer the xtask does not run (the Pushgateway).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// GET `path` with the given extra headers; the status code and body, or None when the stream
/// fails or the answer is not HTTP. The connection is closed after one answer.
pub fn get(stream: impl Read + Write, host: &str, path: &str, headers: &[(&str, &str)]) -> Option<(u16, Vec<u8>)> {
    request(stream, "GET", host, path, headers)
}

/// A request without a body (GET, or the engine API's POST and DELETE); as [`get`].
pub fn request(
    mut stream: impl Read + Write,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<(u16, Vec<u8>)> {
    let length = if method == "GET" { "" } else { "Content-Length: 0\r\n" };
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n{length}Connection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    parse_response(&raw)
}

/// How long and how much a TCP exchange may take, and what stops it early.
pub(crate) struct Bounds<'a> {
    /// For the whole exchange: connecting, sending and reading the answer.
    pub(crate) deadline: Duration,
    /// The most of the answer that is read; the rest is left unread.
    pub(crate) cap: usize,
    /// Asked between waits of at most [`SLICE`]: true ends the exchange (a stop signal came).
    pub(crate) stopped: &'a dyn Fn() -> bool,
}

/// The longest a bounded exchange waits before it looks at its deadline and its stop again.
const SLICE: Duration = Duration::from_millis(200);

/// Sends `request` to `addr` and reads the answer until the peer closes, `cap` bytes or the
/// deadline, whichever comes first; fails at the deadline or a stop, with what it was doing.
pub(crate) fn exchange(addr: SocketAddr, request: &[u8], bounds: &Bounds) -> Result<Vec<u8>> {
    let end = Instant::now() + bounds.deadline;
    let check = |doing: &str| -> Result<()> {
        if (bounds.stopped)() {
            bail!("stopped while {doing}");
        }
        if Instant::now() >= end {
            bail!("no answer within {} s while {doing}", bounds.deadline.as_secs());
        }
        Ok(())
    };
    let mut stream = loop {
        check("connecting")?;
        match TcpStream::connect_timeout(&addr, SLICE) {
            Ok(s) => break s,
            Err(e) if e.kind() == ErrorKind::TimedOut => continue,
            Err(e) => return Err(e).context("connecting"),
        }
    };
    stream.set_write_timeout(Some(SLICE))?;
    stream.set_read_timeout(Some(SLICE))?;
    let mut sent = 0;
    while sent < request.len() {
        check("sending")?;
        match stream.write(&request[sent..]) {
            Ok(0) => bail!("the connection closed while sending"),
            Ok(n) => sent += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(e) => return Err(e).context("sending"),
        }
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    while answer.len() < bounds.cap {
        check("reading the answer")?;
        let room = (bounds.cap - answer.len()).min(buf.len());
        match stream.read(&mut buf[..room]) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(e) => return Err(e).context("reading the answer"),
        }
    }
    Ok(answer)
}

/// The status code and body of a whole response, chunked or not.
pub(crate) fn parse_response(raw: &[u8]) -> Option<(u16, Vec<u8>)> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = &raw[split + 4..];
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked { dechunk(body)? } else { body.to_vec() };
    Some((code, body))
}

fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&body[..line_end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A loopback listener that accepts one connection and hands it to `serve` on a thread.
    fn listener(serve: impl FnOnce(TcpStream) + Send + 'static) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((s, _)) = l.accept() {
                serve(s);
            }
        });
        addr
    }

    /// A peer that accepts and then says nothing for five seconds.
    fn stalling() -> SocketAddr {
        listener(|s| {
            std::thread::sleep(Duration::from_secs(5));
            drop(s);
        })
    }

    fn never() -> bool {
        false
    }

    #[test]
    fn a_peer_that_stalls_is_given_up_at_the_deadline() {
        let addr = stalling();
        let t = Instant::now();
        let bounds = Bounds { deadline: Duration::from_secs(1), cap: 1024, stopped: &never };
        let e = exchange(addr, b"PUT / HTTP/1.1\r\n\r\n", &bounds).unwrap_err().to_string();
        assert!(t.elapsed() < Duration::from_millis(1600), "{:?}", t.elapsed());
        assert_eq!(e, "no answer within 1 s while reading the answer");
    }

    #[test]
    fn a_peer_that_trickles_is_given_up_at_the_deadline_too() {
        let addr = listener(|mut s| {
            for _ in 0..50 {
                if s.write_all(b"H").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let t = Instant::now();
        let bounds = Bounds { deadline: Duration::from_secs(1), cap: 1024, stopped: &never };
        assert!(exchange(addr, b"x", &bounds).is_err());
        assert!(t.elapsed() < Duration::from_millis(1600), "{:?}", t.elapsed());
    }

    #[test]
    fn an_endless_answer_is_read_up_to_the_cap() {
        let addr = listener(|mut s| {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\n");
            while s.write_all(&[b'x'; 4096]).is_ok() {}
        });
        let bounds = Bounds { deadline: Duration::from_secs(5), cap: 64 * 1024, stopped: &never };
        let answer = exchange(addr, b"x", &bounds).unwrap();
        assert_eq!(answer.len(), 64 * 1024);
        assert!(answer.starts_with(b"HTTP/1.1 200 OK"));
    }

    #[test]
    fn a_stop_ends_the_wait_within_a_slice() {
        let addr = stalling();
        let t = Instant::now();
        let stop = move || t.elapsed() > Duration::from_millis(300);
        let bounds = Bounds { deadline: Duration::from_secs(10), cap: 1024, stopped: &stop };
        let e = exchange(addr, b"x", &bounds).unwrap_err().to_string();
        assert_eq!(e, "stopped while reading the answer");
        assert!(t.elapsed() < Duration::from_millis(800), "{:?}", t.elapsed());
    }

    #[test]
    fn plain_and_chunked_responses_parse() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK";
        assert_eq!(parse_response(plain), Some((200, b"OK".to_vec())));
        let chunked =
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked), Some((404, b"{\"a\":1}".to_vec())));
        assert_eq!(parse_response(b"garbage"), None);
    }
}
