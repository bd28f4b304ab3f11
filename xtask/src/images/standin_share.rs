//! Stand-in base images shared through the cache registry (`REGISTRY`). Making them costs
//! minutes (apt under QEMU for arm64), and a second engine must build on the very same bases for
//! the first one's registry cache to match: an engine holding the stand-ins pushes them once to
//! `REGISTRY/standin-*:TAG`, and an engine without them pulls them from there (every platform it
//! makes stand-ins for) before it would make them. A registry that does not answer is left alone: sharing is
//! an optimisation, never a reason for a build to fail.
//!
//! Any local process can push to the registry, so a stand-in is pulled only by the digest recorded
//! when an engine of these engines pushed it (`standin-digests.json` beside them), never by its tag,
//! and a pulled image whose digest differs is refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::engine::Engine;
use crate::util::memo::Cache;
use crate::util::runner;

/// Where a stand-in lives in the registry: `localhost/standin-python:3.11-F` becomes
/// `REGISTRY/standin-python:3.11-F`.
pub(crate) fn remote(registry: &str, standin: &str) -> String {
    let name = standin.strip_prefix("localhost/").unwrap_or(standin);
    format!("{}/{name}", registry.trim_end_matches('/'))
}

/// True when something listens at the registry's host and port (a second, not the 15 s a
/// refused pull or push can take).
pub(crate) fn answers(registry: &str) -> bool {
    crate::util::net::answers(registry.split('/').next().unwrap_or(registry), Duration::from_secs(1))
}

/// Pulls the stand-in from the registry for each of `platforms` and tags it under its local
/// name; false when the registry does not have it. A plain pull fetches the host's platform
/// only, and a multi-platform build on the stand-in then looks for the other one at
/// `https://localhost/`.
pub(crate) fn pull(engine: &Engine, registry: &str, standin: &str, platforms: &[String]) -> Result<bool> {
    let remote = remote(registry, standin);
    let Some(digest) = recorded(&digests_file(), &remote) else { return Ok(false) };
    let pinned = crate::images::signing::by_digest(&remote, &digest);
    for platform in platforms {
        runner::run_quiet(&engine.docker().args(["pull", "--quiet", "--platform", platform, &pinned]))
            .with_context(|| format!("pulling the stand-in {pinned} for {platform}"))?;
    }
    // With the containerd store the image's id is the digest of what was pulled: the very index.
    if crate::engine::facts(engine, None).is_ok_and(|f| f.containerd_store) {
        let id = runner::read(&engine.docker().args(["image", "inspect", "--format", "{{.Id}}"]).names(&[&pinned]))?;
        if let Err(e) = check_pulled(&pinned, &digest, &id) {
            let _ = runner::run_quiet(&engine.docker().args(["image", "rm", &pinned]));
            return Err(e);
        }
    }
    runner::run_quiet(&engine.docker().args(["tag", &pinned, standin]))?;
    // The registry's name was only the way in; the local name is the one builds use.
    runner::run_quiet(&engine.docker().args(["image", "rm", &pinned]))?;
    Ok(true)
}

/// Refuses a pulled stand-in that is not the image recorded.
fn check_pulled(pinned: &str, recorded: &str, id: &str) -> Result<()> {
    if id.trim() != recorded {
        bail!("the stand-in pulled as {pinned} is {}, not the recorded image: refused", id.trim());
    }
    Ok(())
}

/// The digests of the stand-ins these engines pushed, by registry name: beside the engines, so
/// that every checkout sharing them (`XTASK_ENGINE_DIR`) pulls by the same digests.
fn digests_file() -> PathBuf {
    crate::util::paths::engine_dir().join("standin-digests.json")
}

fn recorded(file: &Path, remote: &str) -> Option<String> {
    crate::util::paths::read_json::<BTreeMap<String, String>>(file).remove(remote).filter(|d| d.starts_with("sha256:"))
}

fn record(file: &Path, remote: &str, digest: &str) -> Result<()> {
    // Engines building at the same time each record theirs, and none is lost.
    crate::util::paths::update_json(file, |all: &mut BTreeMap<String, String>| {
        all.insert(remote.to_string(), digest.to_string());
    })
}

/// Forgets the digests recorded for stand-ins in `registry` (whose storage is gone): a later
/// engine makes or pushes them again rather than pull what no longer is there.
pub(crate) fn forget_registry(registry: &str) -> Result<()> {
    let prefix = format!("{}/", registry.trim_end_matches('/'));
    crate::util::paths::update_json(&digests_file(), |all: &mut BTreeMap<String, String>| {
        all.retain(|remote, _| !remote.starts_with(&prefix))
    })
}

/// Pushes the engine's stand-in to the registry unless the registry has it already; true when
/// it pushed.
pub(crate) fn push(engine: &Engine, registry: &str, standin: &str) -> Result<bool> {
    let remote = remote(registry, standin);
    if engine.registry_has(&remote) {
        // Pushed before (by an engine of another checkout, or before digests were kept): recorded
        // when it is this engine's very image.
        if recorded(&digests_file(), &remote).is_none() {
            let local = runner::read(&engine.docker().args(["image", "inspect", "--format", "{{.Id}}", standin]));
            let containerd = crate::engine::facts(engine, None).is_ok_and(|f| f.containerd_store);
            if let (true, Ok(local), Some(there)) = (containerd, local, engine.registry_digest(&remote)) {
                if local == there {
                    record(&digests_file(), &remote, &there)?;
                }
            }
        }
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
    let digest = engine
        .registry_digest(&remote)
        .with_context(|| format!("{remote} was pushed, but the registry names no manifest for it"))?;
    record(&digests_file(), &remote, &digest)?;
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
    fn stand_ins_are_pulled_by_the_recorded_digest_and_another_image_is_refused() {
        let file = std::env::temp_dir().join(format!("xtask-standin-digests-{}.json", std::process::id()));
        let remote = "127.0.0.1:5000/standin-python:3.11-7d90c12f";
        assert_eq!(recorded(&file, remote), None, "nothing recorded: nothing pulled");
        record(&file, remote, "sha256:aaa").unwrap();
        record(&file, "127.0.0.1:5000/standin-node:22-1", "sha256:bbb").unwrap();
        assert_eq!(recorded(&file, remote).as_deref(), Some("sha256:aaa"));
        let pinned = crate::images::signing::by_digest(remote, "sha256:aaa");
        assert_eq!(pinned, "127.0.0.1:5000/standin-python@sha256:aaa", "the tag goes: the digest names the image");
        assert!(check_pulled(&pinned, "sha256:aaa", "sha256:aaa\n").is_ok());
        let e = check_pulled(&pinned, "sha256:aaa", "sha256:ccc").unwrap_err().to_string();
        assert_eq!(e, "the stand-in pulled as 127.0.0.1:5000/standin-python@sha256:aaa is sha256:ccc, not the recorded image: refused");
        std::fs::write(&file, "{\"x\": \"latest\"}").unwrap();
        assert_eq!(recorded(&file, "x"), None, "only a digest is a record");
        std::fs::remove_file(file).unwrap();
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
