//! The build locks. Every build holds two shared for as long as it runs: its engine's
//! `target/xtask/build-ENGINE.lock`, which `clean` takes exclusively without waiting, so a clean
//! never removes what a running build uses and says so instead; and its project's
//! `target/xtask/build.lock`, which the local cache's clean-up takes the same way, so it never
//! removes a blob another build of the project may be reading. The kernel drops a lock with the
//! process, however it ends.

use std::fs::File;
use std::path::PathBuf;

use anyhow::{Context, Result};

/// The lock `clean` takes: one per engine, as the docker CLI finds it (`DOCKER_HOST`, else
/// `DOCKER_CONTEXT`, else the current context). A clean waits only for the builds on the engine
/// it cleans; builds on other engines never hold it off.
pub(crate) fn file() -> PathBuf {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let engine = var("DOCKER_HOST").or_else(|| var("DOCKER_CONTEXT").map(|c| format!("context {c}")));
    let name = match engine {
        Some(e) => format!("build-{:08x}.lock", crate::util::hash::fnv1a_32(e.bytes())),
        None => "build.lock".to_string(),
    };
    crate::util::paths::checkout_target().join("xtask").join(name)
}

/// The lock the local cache's clean-up takes: one per project, whose `target/` holds the folders
/// it cleans.
pub(crate) fn project_file() -> PathBuf {
    crate::util::paths::xtask_dir().join("build.lock")
}

/// Held until dropped.
pub struct Lock {
    _files: Vec<File>,
}

/// A build's share of both locks; waits while a clean or a clean-up holds one.
pub fn shared() -> Result<Lock> {
    Ok(Lock { _files: vec![shared_file(&file())?, shared_file(&project_file())?] })
}

#[cfg(test)]
pub(crate) fn shared_at(path: &std::path::Path) -> Result<Lock> {
    Ok(Lock { _files: vec![shared_file(path)?] })
}

fn shared_file(path: &std::path::Path) -> Result<File> {
    let file = crate::util::paths::open_lock(path)?;
    flock(&file, false, true)?;
    Ok(file)
}

/// Exclusive locks on the local cache folders a build exports to, one `FOLDER.lock` beside each,
/// held for the whole build: BuildKit's local exporter cannot share a folder with another export
/// running at the same time (both write one blob's `ingest/` entry, and one of them fails), so a
/// second build exporting there waits for the first, whichever checkout it runs in.
pub(crate) fn exporting(dirs: &[std::path::PathBuf]) -> Result<Vec<Lock>> {
    dirs.iter()
        .map(|dir| {
            let file = crate::util::paths::open_lock(&dir.with_extension("lock"))?;
            if !flock(&file, true, false)? {
                eprintln!("xtask: waiting for another build that exports its cache to {}", dir.display());
                flock(&file, true, true)?;
            }
            Ok(Lock { _files: vec![file] })
        })
        .collect()
}

/// The whole lock, or None at once when a build holds it.
pub(crate) fn exclusive_now() -> Result<Option<Lock>> {
    exclusive_now_at(&file())
}

pub(crate) fn exclusive_now_at(path: &std::path::Path) -> Result<Option<Lock>> {
    let file = crate::util::paths::open_lock(path)?;
    Ok(flock(&file, true, false)?.then_some(Lock { _files: vec![file] }))
}

/// True when the lock was taken; false when `wait` is off and someone else holds it.
fn flock(file: &File, exclusive: bool, wait: bool) -> Result<bool> {
    crate::util::os::flock(file, exclusive, wait).context("taking the build lock")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_keeps_clean_out_until_it_ends() {
        // A lock of its own: a real build in this checkout must not disturb the test.
        let path = std::env::temp_dir().join(format!("xtask-lock-test-{}", std::process::id()));
        let build = shared_at(&path).unwrap();
        let second_build = shared_at(&path).unwrap();
        assert!(exclusive_now_at(&path).unwrap().is_none(), "a clean waits for no build");
        drop(build);
        assert!(exclusive_now_at(&path).unwrap().is_none(), "the other build still runs");
        drop(second_build);
        assert!(exclusive_now_at(&path).unwrap().is_some());
        std::fs::remove_file(path).unwrap();
    }
}
