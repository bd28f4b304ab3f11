//! The run folder a private engine leaves once it stopped (`/run/xtask-engine-<hash>`): what of it
//! `engine down` may remove, and removing it; and detaching what is mounted under a folder before
//! it is removed (this one, or a stand-in root file system a killed debootstrap left).

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
    detach_under(dir, Some("nsfs"));
    clear_in(dir, false)
}

/// Detaches (lazily) every mount under `dir` of file system `kind`, or of any kind, deepest
/// first, so that removing the folder never walks into what is mounted there.
pub(crate) fn detach_under(dir: &Path, kind: Option<&str>) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    for point in mounts_under(&mounts, dir, kind) {
        let detach = crate::util::runner::Cmd::new("umount").args(["--lazy", "--"]).arg(point);
        let _ = crate::util::runner::run_quiet(&detach);
    }
}

/// The mount points under `dir` (of file system `kind`, or any), from a `/proc/mounts` text,
/// deepest first.
fn mounts_under(mounts: &str, dir: &Path, kind: Option<&str>) -> Vec<String> {
    let mut points: Vec<String> = mounts
        .lines()
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let (_, point, fs) = (fields.next()?, fields.next()?, fields.next()?);
            (kind.is_none_or(|k| k == fs) && Path::new(point).starts_with(dir)).then(|| point.to_string())
        })
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    points
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
        assert_eq!(
            mounts_under(mounts, Path::new("/run/xtask-engine-1"), Some("nsfs")),
            ["/run/xtask-engine-1/exec/netns/abc"]
        );
    }

    #[test]
    fn every_mount_under_a_folder_is_found_deepest_first() {
        let mounts = "proc /w/rootfs/proc proc rw 0 0\nsysfs /w/rootfs/proc/sys/x sysfs rw 0 0\n\
                      proc /proc proc rw 0 0\ntmpfs /w/rootfs-other tmpfs rw 0 0\n";
        assert_eq!(mounts_under(mounts, Path::new("/w/rootfs"), None), ["/w/rootfs/proc/sys/x", "/w/rootfs/proc"]);
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
