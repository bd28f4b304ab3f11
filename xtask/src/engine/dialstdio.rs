//! The engine's API through the docker CLI's own connection: `docker system dial-stdio` carries
//! the bytes of one HTTP request to whatever engine the CLI reaches (ssh://, tcp://, a docker
//! context, a Windows named pipe), so `du` and `clean` ask a remote engine the very questions they
//! ask a local socket, with the same answers to parse.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The two pipes of a running `dial-stdio`, read and written as one stream.
struct Pipe {
    stdin: ChildStdin,
    stdout: ChildStdout,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stdout.read(buf)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stdin.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.stdin.flush()
    }
}

/// One request (without a body) through `docker system dial-stdio` with the engine's variables.
/// The pipe stays open for writing until the answer is read: an HTTP server that sees its input
/// end may drop the request it is serving. Past `timeout` the CLI is stopped and None returned.
pub fn request(env: &[(String, String)], method: &str, path: &str, timeout: Duration) -> Option<(u16, String)> {
    let mut child: Child = Command::new("docker")
        .args(["system", "dial-stdio"])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let pipe = Pipe { stdin: child.stdin.take()?, stdout: child.stdout.take()? };
    let (method, path) = (method.to_string(), path.to_string());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(crate::util::http::request(pipe, &method, "docker", &path, &[]));
    });
    let answer = rx.recv_timeout(timeout).ok().flatten();
    let _ = child.kill();
    let _ = child.wait();
    answer.map(|(code, body)| (code, String::from_utf8_lossy(&body).to_string()))
}
