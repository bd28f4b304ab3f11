//! The Docker engine's API over its unix socket, with plain HTTP/1.1 requests: the questions every
//! build asks (is it there, what is it, is an image in its store, how big is an image) as GETs,
//! and the removals `clean` makes (`request` with POST or DELETE). Each docker CLI start costs tens of milliseconds of CPU; these cost one. Engines
//! reached any other way (tcp, ssh, contexts) are asked through the CLI instead.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::util::os;

/// The engine's unix socket when the docker CLI would use one: `DOCKER_HOST=unix://…`, or the
/// default socket when neither DOCKER_HOST nor a docker context is set.
pub fn socket(docker_host: Option<&str>) -> Option<PathBuf> {
    if !cfg!(unix) {
        // Docker Desktop on Windows listens on a named pipe: the CLI knows the way.
        return None;
    }
    match docker_host {
        Some(host) => host.strip_prefix("unix://").map(PathBuf::from),
        None => {
            if std::env::var_os("DOCKER_CONTEXT").is_some() || context_configured() {
                return None;
            }
            Some(PathBuf::from("/var/run/docker.sock"))
        }
    }
}

fn context_configured() -> bool {
    let config = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")));
    config
        .and_then(|dir| std::fs::read_to_string(dir.join("config.json")).ok())
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|json| json["currentContext"].as_str().map(|c| c != "default"))
        .unwrap_or(false)
}

/// GET `path`; the status code and body, or None when the socket does not answer.
pub fn get(socket: &Path, path: &str) -> Option<(u16, String)> {
    request(socket, "GET", path)
}

/// A request without a body (`clean`'s POST /build/prune and DELETE /images/…, besides GET).
pub fn request(socket: &Path, method: &str, path: &str) -> Option<(u16, String)> {
    let stream = os::connect_socket(socket).ok()?;
    // A prune of a large record can take a while; a GET answers at once.
    stream.set_read_timeout(Some(Duration::from_secs(if method == "GET" { 10 } else { 120 }))).ok()?;
    let (code, body) = crate::util::http::request(stream, method, "docker", path, &[])?;
    Some((code, String::from_utf8_lossy(&body).to_string()))
}

/// GET `path` as JSON, for a 200 answer only.
pub fn get_json(socket: &Path, path: &str) -> Option<serde_json::Value> {
    match get(socket, path)? {
        (200, body) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

/// Image references go into the URL path: escape what a path cannot hold.
pub fn escape(reference: &str) -> String {
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
