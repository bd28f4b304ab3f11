//! The run folder a private engine leaves once it stopped (`/run/xtask-engine-<hash>`): what of it
//! `engine down` may remove, and removing it.

use std::io::ErrorKind;
use std::path::Path;

/// Removes what a stopped engine left under `dir`: sockets nobody listens on any more, dockerd's
/// exec root (`exec/`, its own state: the embedded containerd writes its generated config there),
/// and folders that are empty once those are gone, deepest first. Anything else (a regular file
/// outside the exec root, a folder a mount still fills) stays, and so does every folder above it.
/// Returns whether `dir` itself is gone.
pub(crate) fn clear(dir: &Path) -> std::io::Result<bool> {
    // dockerd bind-mounts each container's network namespace under its exec root and, stopped,
    // can leave some behind: they hold nothing once the engine is gone, but keep the folder.
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    for point in namespace_mounts(&mounts, dir) {
        let detach = crate::util::runner::Cmd::new("umount").args(["--lazy", "--"]).arg(point);
        let _ = crate::util::runner::run_quiet(&detach);
    }
    clear_in(dir, false)
}

/// The network-namespace mounts (`nsfs`) under `dir`, from a `/proc/mounts` text.
fn namespace_mounts(mounts: &str, dir: &Path) -> Vec<String> {
    mounts
        .lines()
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let (_, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            (kind == "nsfs" && Path::new(point).starts_with(dir)).then(|| point.to_string())
        })
        .collect()
}

fn clear_in(dir: &Path, exec_root: bool) -> std::io::Result<bool> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(!dir.exists()) };
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            clear_in(&entry.path(), exec_root || entry.file_name() == "exec")?;
        } else if crate::util::os::is_socket(&kind) || (exec_root && kind.is_file()) {
            remove(std::fs::remove_file(entry.path()))?;
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(true),
        // Not empty, or a mount point: kept.
        Err(e) if matches!(e.kind(), ErrorKind::DirectoryNotEmpty | ErrorKind::ResourceBusy) => Ok(false),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e),
    }
}

/// A removal that found nothing to remove is no failure.
fn remove(result: std::io::Result<()>) -> std::io::Result<()> {
    match result {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

// Sockets are made with Unix-only calls.
#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-rundir-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn only_namespace_mounts_under_the_run_folder_are_detached() {
        let mounts = "nsfs /run/xtask-engine-1/exec/netns/abc nsfs rw 0 0\n\
                      nsfs /run/docker/netns/def nsfs rw 0 0\n\
                      tmpfs /run/xtask-engine-1/exec/other tmpfs rw 0 0\n";
        assert_eq!(namespace_mounts(mounts, Path::new("/run/xtask-engine-1")), ["/run/xtask-engine-1/exec/netns/abc"]);
    }

    #[test]
    fn a_stopped_engine_s_empty_exec_root_and_dead_sockets_go_with_the_folder() {
        let run = scratch("stopped");
        std::fs::create_dir_all(run.join("exec/containerd/daemon")).unwrap();
        std::fs::write(run.join("exec/containerd/containerd.toml"), "version = 2\n").unwrap();
        drop(std::os::unix::net::UnixListener::bind(run.join("docker.sock")).unwrap());
        drop(std::os::unix::net::UnixListener::bind(run.join("exec/containerd/containerd.sock")).unwrap());
        assert!(clear(&run).unwrap());
        assert!(!run.exists());
        assert!(clear(&run).unwrap(), "a folder already gone is no failure");
    }

    #[test]
    fn a_file_the_engine_did_not_leave_keeps_its_folders() {
        let run = scratch("kept");
        std::fs::create_dir_all(run.join("exec/empty")).unwrap();
        std::fs::create_dir_all(run.join("other")).unwrap();
        std::fs::write(run.join("other/notes.txt"), "mine").unwrap();
        assert!(!clear(&run).unwrap());
        assert!(run.join("other/notes.txt").is_file(), "a regular file is never removed");
        assert!(!run.join("exec").exists(), "the empty exec root went all the same");
        std::fs::remove_dir_all(&run).unwrap();
    }
}
