//! Stand-in base images shared through the cache registry (`REGISTRY`). Making them costs
//! minutes (apt under QEMU for arm64), and a second engine must build on the very same bases for
//! the first one's registry cache to match: an engine holding the stand-ins pushes them once to
//! `REGISTRY/standin-*:TAG`, and an engine without them pulls them from there (every platform it
//! makes stand-ins for) before it would make them. A registry that does not answer is left alone: sharing is
//! an optimisation, never a reason for a build to fail.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::util::memo::Cache;
use crate::engine::Engine;
use crate::util::runner;

/// Where a stand-in lives in the registry: `localhost/standin-python:3.11-F` becomes
/// `REGISTRY/standin-python:3.11-F`.
pub fn remote(registry: &str, standin: &str) -> String {
    let name = standin.strip_prefix("localhost/").unwrap_or(standin);
    format!("{}/{name}", registry.trim_end_matches('/'))
}

/// True when something listens at the registry's host and port (a second, not the 15 s a
/// refused pull or push can take).
pub fn answers(registry: &str) -> bool {
    crate::util::net::answers(registry.split('/').next().unwrap_or(registry), Duration::from_secs(1))
}

/// Pulls the stand-in from the registry for each of `platforms` and tags it under its local
/// name; false when the registry does not have it. A plain pull fetches the host's platform
/// only, and a multi-platform build on the stand-in then looks for the other one at
/// `https://localhost/`.
pub fn pull(engine: &Engine, registry: &str, standin: &str, platforms: &[String]) -> Result<bool> {
    let remote = remote(registry, standin);
    if !engine.registry_has(&remote) {
        return Ok(false);
    }
    for platform in platforms {
        runner::run_quiet(&engine.docker().args(["pull", "--quiet", "--platform", platform, &remote]))
            .with_context(|| format!("pulling the stand-in {remote} for {platform}"))?;
    }
    runner::run_quiet(&engine.docker().args(["tag", &remote, standin]))?;
    // The registry's name was only the way in; the local name is the one builds use.
    runner::run_quiet(&engine.docker().args(["image", "rm", &remote]))?;
    Ok(true)
}

/// Pushes the engine's stand-in to the registry unless the registry has it already; true when
/// it pushed.
pub fn push(engine: &Engine, registry: &str, standin: &str) -> Result<bool> {
    let remote = remote(registry, standin);
    if engine.registry_has(&remote) {
        return Ok(false);
    }
    runner::run_quiet(&engine.docker().args(["tag", standin, &remote]))?;
    let pushed = runner::run_quiet(&engine.docker().args(["push", "--quiet", &remote]))
        .with_context(|| format!("pushing the stand-in {remote}"));
    let _ = runner::run_quiet(&engine.docker().args(["image", "rm", &remote]));
    pushed?;
    // The lookup said "absent" a moment ago and is kept for minutes: correct it.
    Cache::new("registry-probes.json", 600).put(&remote, true);
    same_digest_there(engine, standin, &remote)?;
    Ok(true)
}

/// With the containerd store an image's id is its index digest, the digest builds key their
/// steps by. A store missing some of an index's content pushes one platform's manifest instead,
/// under another digest: an engine that pulls that keys every step by another base and finds
/// none of this engine's registry cache. Said, so that it is not found out by a slow build.
fn same_digest_there(engine: &Engine, standin: &str, remote: &str) -> Result<()> {
    if !crate::engine::facts(engine, None).is_ok_and(|f| f.containerd_store) {
        return Ok(());
    }
    let local = runner::read(&engine.docker().args(["image", "inspect", "--format", "{{.Id}}", standin]))?;
    let there = engine
        .registry_digest(remote)
        .with_context(|| format!("{remote} was pushed, but the registry names no manifest for it"))?;
    if there != local {
        anyhow::bail!(
            "{remote} is {there}, not this engine's {local} (the engine lacks part of the image index): \
             an engine that pulls it will not match this engine's cache; remove the stand-in here \
             (`docker image rm {standin}`) so that the next build makes it whole"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standins_keep_their_name_and_tag_under_the_registry() {
        assert_eq!(
            remote("127.0.0.1:5000", "localhost/standin-python:3.11-7d90c12f"),
            "127.0.0.1:5000/standin-python:3.11-7d90c12f"
        );
        assert_eq!(remote("reg.example/team/", "localhost/standin-node:22-1"), "reg.example/team/standin-node:22-1");
    }

    #[test]
    fn a_closed_port_does_not_answer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        assert!(answers(&format!("{addr}/path")));
        drop(listener);
        assert!(!answers(&addr));
    }
}
