//! The Docker engine's API over its unix socket, with plain HTTP/1.1 requests: the questions every
//! build asks (is it there, what is it, is an image in its store, how big is an image) as GETs,
//! and the removals `clean` makes (`request` with POST or DELETE). Each docker CLI start costs tens
//! of milliseconds of CPU; these cost one. Engines reached any other way (tcp, ssh, contexts) are
//! asked through the CLI instead: its commands, or for `du` and `clean` the same API requests
//! carried by `docker system dial-stdio` (`Endpoint::Cli`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::util::os;

/// The engine's unix socket when the docker CLI would use one: `DOCKER_HOST=unix://…`, or the
/// default socket when neither DOCKER_HOST nor a docker context is set.
pub(crate) fn socket(docker_host: Option<&str>) -> Option<PathBuf> {
    if !cfg!(unix) {
        // Docker Desktop on Windows listens on a named pipe: the CLI knows the way.
        return None;
    }
    match docker_host {
        Some(host) => host.strip_prefix("unix://").map(PathBuf::from),
        None => {
            if current_context().is_some() {
                return None;
            }
            Some(PathBuf::from("/var/run/docker.sock"))
        }
    }
}

/// The docker context the CLI uses when DOCKER_HOST is unset: `DOCKER_CONTEXT`, else the config's
/// `currentContext`; None for the default context.
pub(crate) fn current_context() -> Option<String> {
    let config = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")));
    let configured = || {
        let text = std::fs::read_to_string(config?.join("config.json")).ok()?;
        serde_json::from_str::<serde_json::Value>(&text).ok()?["currentContext"].as_str().map(str::to_string)
    };
    std::env::var("DOCKER_CONTEXT").ok().or_else(configured).filter(|c| !c.is_empty() && c != "default")
}

/// Where the engine's API is asked: its unix socket, or through the docker CLI's connection (the
/// variables that point the CLI at the engine).
#[derive(Clone, Debug)]
pub enum Endpoint {
    Socket(PathBuf),
    Cli(Vec<(String, String)>),
}

impl Endpoint {
    /// A request without a body; the status code and body, or None when the engine does not answer.
    pub fn request(&self, method: &str, path: &str) -> Option<(u16, String)> {
        match self {
            Endpoint::Socket(socket) => request(socket, method, path),
            Endpoint::Cli(env) => super::dialstdio::request(env, method, path, timeout(method)),
        }
    }

    pub(crate) fn get(&self, path: &str) -> Option<(u16, String)> {
        self.request("GET", path)
    }
}

/// A prune of a large record can take a while; a GET answers at once.
fn timeout(method: &str) -> Duration {
    Duration::from_secs(if method == "GET" { 10 } else { 120 })
}

/// GET `path`; the status code and body, or None when the socket does not answer.
pub(crate) fn get(socket: &Path, path: &str) -> Option<(u16, String)> {
    request(socket, "GET", path)
}

/// A request without a body (`clean`'s POST /build/prune and DELETE /images/…, besides GET).
pub fn request(socket: &Path, method: &str, path: &str) -> Option<(u16, String)> {
    let stream = os::connect_socket(socket).ok()?;
    stream.set_read_timeout(Some(timeout(method))).ok()?;
    let (code, body) = crate::util::http::request(stream, method, "docker", path, &[])?;
    Some((code, String::from_utf8_lossy(&body).to_string()))
}

/// GET `path` as JSON, for a 200 answer only.
pub(crate) fn get_json(socket: &Path, path: &str) -> Option<serde_json::Value> {
    match get(socket, path)? {
        (200, body) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

/// Image references go into the URL path: escape what a path cannot hold.
pub(crate) fn escape(reference: &str) -> String {
    reference
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b':' | b'@' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_escaped_for_the_path() {
        assert_eq!(escape("localhost/standin-python:3.11"), "localhost%2Fstandin-python:3.11");
        assert_eq!(escape("127.0.0.1:5000/x@sha256:ab"), "127.0.0.1:5000%2Fx@sha256:ab");
    }

    #[test]
    fn socket_follows_docker_host() {
        // Off Unix the engine is always asked through the docker CLI.
        let unix = cfg!(unix).then(|| PathBuf::from("/run/x/docker.sock"));
        assert_eq!(socket(Some("unix:///run/x/docker.sock")), unix);
        assert_eq!(socket(Some("tcp://127.0.0.1:2375")), None);
    }
}
