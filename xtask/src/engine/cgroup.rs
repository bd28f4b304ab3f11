//! A private engine's control groups. Its dockerd puts containers and BuildKit's build steps under
//! a cgroup parent of its own (`/xtask-engine-HASH`, daemon.json's `cgroup-parent`; BuildKit's
//! steps go in its `buildkit/` child), so that `down` finds what a stopped dockerd left running:
//! a build step interrupted by the stop is not always ended with the daemon, and would go on
//! using the host's CPU with nothing left to own it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::util::runner::{self, Cmd};

/// Where the kernel's cgroup file systems are mounted: one hierarchy per controller under it
/// (cgroup v1), or the unified one at it (v2).
const MOUNTS: &str = "/sys/fs/cgroup";

/// The cgroup parent of the engine whose run folder is `run`: its name (`xtask-engine-HASH`) is
/// unique per engine on the host.
pub fn parent(run: &Path) -> String {
    format!("/{}", run.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default())
}

/// Every cgroup folder under `parent`, in every hierarchy, children before their parents.
fn folders(parent: &str) -> Vec<PathBuf> {
    let relative = parent.trim_start_matches('/');
    if relative.is_empty() {
        return Vec::new();
    }
    let hierarchies = std::fs::read_dir(MOUNTS).into_iter().flatten().flatten().map(|e| e.path());
    let mut todo: Vec<PathBuf> = std::iter::once(PathBuf::from(MOUNTS))
        .chain(hierarchies)
        .map(|h| h.join(relative))
        .filter(|d| d.is_dir())
        .collect();
    let mut all = Vec::new();
    while let Some(dir) = todo.pop() {
        todo.extend(std::fs::read_dir(&dir).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        all.push(dir);
    }
    all.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    all
}

/// The processes in the engine's cgroups, each once.
pub fn processes(parent: &str) -> Vec<u32> {
    let mut pids: Vec<u32> = folders(parent)
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect::<Vec<u32>>())
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Ends every process left in the engine's cgroups (once its dockerd has stopped) and removes
/// the emptied cgroups; returns how many processes it ended.
pub(crate) fn end_leftovers(parent: &str) -> usize {
    let pids = processes(parent);
    if !pids.is_empty() {
        let _ = runner::run_quiet(&Cmd::new("kill").arg("-KILL").args(pids.iter().map(u32::to_string)));
        runner::wait_until(Duration::from_secs(10), || processes(parent).is_empty());
    }
    for dir in folders(parent) {
        let _ = std::fs::remove_dir(dir);
    }
    pids.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_is_the_run_folders_name_and_never_the_root() {
        assert_eq!(parent(Path::new("/run/xtask-engine-1a2b3c4d")), "/xtask-engine-1a2b3c4d");
        assert!(folders(&parent(Path::new("/"))).is_empty(), "no name: no folder, never the whole hierarchy");
        assert!(processes("/xtask-engine-no-such-engine").is_empty());
    }
}
