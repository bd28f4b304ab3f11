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
    clear_in(dir, false)
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
