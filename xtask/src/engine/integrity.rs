//! What root runs is what was installed: dockerd, containerd, iptables, the registry and cosign run
//! as root from an engine's prefix, so before any of them runs, the prefix, everything in it, and
//! every folder above it must be changeable by root alone. A prefix someone else could write is
//! refused, naming the path and who could change it: that person could otherwise put a program of
//! their own where root will run it. (The other way, checking each file against the package
//! checksums, would need the signed archive's lists kept where only root writes too.)

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use super::layout::Layout;

/// Who besides root can change an entry with this owner, group and mode: None when nobody can.
/// A symbolic link's own bits change nothing (its folder's do); a folder with the sticky bit that
/// root owns (`/tmp`) lets nobody rename or remove what root keeps in it.
fn who_else(uid: u32, gid: u32, mode: u32, symlink: bool) -> Option<String> {
    const STICKY: u32 = 0o1000;
    if uid != 0 {
        return Some(format!("its owner (uid {uid})"));
    }
    if symlink || mode & STICKY != 0 {
        return None;
    }
    if mode & 0o002 != 0 {
        return Some("every user".to_string());
    }
    (mode & 0o020 != 0 && gid != 0).then(|| format!("its group (gid {gid})"))
}

/// The first entry that someone besides root can change: the folders above `prefix`, then the
/// prefix and everything under it. (The engine's data root beside the prefix holds images' files
/// of any owner, and root runs nothing from it.)
pub(super) fn first_open(prefix: &Path) -> Option<(PathBuf, String)> {
    let dir = prefix;
    let check = |p: &Path, follow: bool| {
        let meta = if follow { std::fs::metadata(p) } else { std::fs::symlink_metadata(p) }.ok()?;
        let (uid, gid, mode) = crate::util::os::owner_and_mode(&meta)?;
        who_else(uid, gid, mode, meta.file_type().is_symlink()).map(|who| (p.to_path_buf(), who))
    };
    let mut above: Vec<&Path> = dir.ancestors().skip(1).collect();
    above.reverse();
    if let Some(found) = above.into_iter().find_map(|p| check(p, true)) {
        return Some(found);
    }
    let mut todo = vec![dir.to_path_buf()];
    while let Some(p) = todo.pop() {
        if let Some(found) = check(&p, false) {
            return Some(found);
        }
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            let entries = std::fs::read_dir(&p).into_iter().flatten().flatten();
            todo.extend(entries.map(|e| e.path()));
        }
    }
    None
}

/// Refuses to run the engine's programs as root when anyone else could have changed them.
pub(super) fn check(layout: &Layout) -> Result<()> {
    if let Some((path, who)) = first_open(&layout.prefix) {
        bail!(
            "refusing to run the {} engine's programs as root: {} can be changed by {who}; make it root's alone (`chown root:root` and `chmod go-w`), or set XTASK_ENGINE_DIR to a folder only root can write",
            layout.name,
            path.display()
        );
    }
    Ok(())
}

impl Layout {
    /// Whether root alone can change this engine's prefix and the folders above it (so its programs
    /// may run).
    pub(crate) fn root_only(&self) -> bool {
        first_open(&self.prefix).is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_root_may_be_able_to_change_what_root_runs() {
        assert_eq!(who_else(0, 0, 0o40755, false), None);
        assert_eq!(who_else(0, 0, 0o100644, false), None);
        assert_eq!(who_else(1000, 1000, 0o40755, false).as_deref(), Some("its owner (uid 1000)"));
        assert_eq!(who_else(0, 0, 0o100666, false).as_deref(), Some("every user"));
        assert_eq!(who_else(0, 50, 0o40775, false).as_deref(), Some("its group (gid 50)"));
        assert_eq!(who_else(0, 0, 0o40775, false), None, "root's own group is root");
        assert_eq!(who_else(0, 0, 0o41777, false), None, "a sticky folder of root's, as /tmp");
        assert_eq!(who_else(0, 0, 0o120777, true), None, "a link's own bits change nothing");
    }

    #[cfg(unix)]
    #[test]
    fn a_file_anyone_can_write_in_the_engine_folder_is_named() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("xtask-integrity-{}", std::process::id()));
        let prefix = dir.join("prefix");
        let bin = dir.join("prefix/usr/bin");
        std::fs::create_dir_all(&bin).unwrap();
        for d in [&dir, &dir.join("prefix"), &dir.join("prefix/usr"), &bin] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(bin.join("dockerd"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(bin.join("dockerd"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let uid = std::fs::metadata(&dir).map(|m| crate::util::os::owner_and_mode(&m).unwrap().0).unwrap();
        if uid == 0 {
            assert_eq!(first_open(&prefix), None);
            std::fs::set_permissions(bin.join("dockerd"), std::fs::Permissions::from_mode(0o757)).unwrap();
            assert_eq!(first_open(&prefix), Some((bin.join("dockerd"), "every user".to_string())));
            std::fs::set_permissions(bin.join("dockerd"), std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
            assert_eq!(first_open(&prefix), Some((dir.clone(), "every user".to_string())), "a folder above");
        } else {
            // Not root (a CI runner): the folder itself is the first thing someone else owns.
            assert_eq!(first_open(&prefix), Some((dir.clone(), format!("its owner (uid {uid})"))));
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
