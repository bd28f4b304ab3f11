//! An engine on another machine (`DOCKER_HOST=ssh://…`, or a docker context pointing there):
//! builds, pushes, reports, `du` and `clean` reach it through the docker CLI, but the private
//! engine's own start and stop act on this machine only, so they say so instead of acting.

use anyhow::{bail, Result};

use super::api as dockerapi;
use crate::util::runner::{self, Cmd};

/// Whether an engine address is on another machine: ssh always (even to this one, it is a login
/// elsewhere as far as the engine's files go), tcp unless to loopback; unix sockets and Windows
/// pipes are local.
pub(crate) fn is_remote(host: &str) -> bool {
    if host.starts_with("ssh://") {
        return true;
    }
    let Some(rest) = host.strip_prefix("tcp://") else { return false };
    let authority = rest.split('/').next().unwrap_or_default();
    let name = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    !matches!(name, "127.0.0.1" | "localhost" | "::1")
}

/// The refusal `engine up` and `engine down` give when the engine in use is elsewhere: `how` names
/// where the address came from (DOCKER_HOST, or the context).
pub(crate) fn refusal(command: &str, host: &str, how: &str) -> Option<String> {
    is_remote(host).then(|| {
        format!(
            "`engine {command}` starts and stops the project's private engine on this machine, and the engine in use is {host} ({how}): run it on that machine, or unset {} to manage this one's",
            if how == "DOCKER_HOST" { "DOCKER_HOST" } else { "DOCKER_CONTEXT (or `docker context use default`)" }
        )
    })
}

/// The same, read from the world: DOCKER_HOST, else the current context's docker endpoint.
pub(crate) fn refuse_if_remote(command: &str) -> Result<()> {
    let found = match std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()) {
        Some(host) => Some((host, "DOCKER_HOST".to_string())),
        None => dockerapi::current_context().and_then(|name| {
            let inspect =
                Cmd::new("docker").args(["context", "inspect", &name, "--format", "{{.Endpoints.docker.Host}}"]);
            runner::read(&inspect).ok().map(|host| (host.trim().to_string(), format!("docker context {name}")))
        }),
    };
    if let Some(line) = found.and_then(|(host, how)| refusal(command, &host, &how)) {
        bail!("{line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_and_tcp_elsewhere_are_remote() {
        assert!(is_remote("ssh://builder@big-box"));
        assert!(is_remote("ssh://root@127.0.0.1:2222"));
        assert!(is_remote("tcp://10.0.0.5:2375"));
        assert!(!is_remote("tcp://127.0.0.1:2375"));
        assert!(!is_remote("tcp://[::1]:2375"));
        assert!(!is_remote("unix:///run/xtask-engine-ab/docker.sock"));
        assert!(!is_remote("npipe:////./pipe/docker_engine"));
    }

    #[test]
    fn an_engine_without_a_local_socket_is_asked_through_the_cli() {
        let engine = |host: &str| super::super::Engine {
            env: vec![("DOCKER_HOST".to_string(), host.to_string())],
            ..Default::default()
        };
        match engine("ssh://root@big-box").api() {
            dockerapi::Endpoint::Cli(env) => assert_eq!(env[0].1, "ssh://root@big-box"),
            other => panic!("{other:?}"),
        }
        let local = engine("unix:///run/x/docker.sock").api();
        assert_eq!(matches!(local, dockerapi::Endpoint::Socket(_)), cfg!(unix), "{local:?}");
    }

    #[test]
    fn start_and_stop_of_a_remote_engine_are_refused_in_one_line() {
        let line = refusal("down", "ssh://root@big-box", "DOCKER_HOST").unwrap();
        assert!(
            line.starts_with("`engine down` starts and stops the project's private engine on this machine"),
            "{line}"
        );
        assert!(
            line.contains("ssh://root@big-box (DOCKER_HOST)")
                && line.contains("unset DOCKER_HOST")
                && !line.contains('\n')
        );
        let line = refusal("up", "ssh://b", "docker context big").unwrap();
        assert!(line.contains("(docker context big)") && line.contains("DOCKER_CONTEXT"), "{line}");
        assert_eq!(refusal("up", "unix:///run/x/docker.sock", "DOCKER_HOST"), None);
    }
}
