//! Where things are: the project's root and the files and folders the xtask owns.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The workspace root, found from this crate's manifest so that `cargo xtask` works from any
/// folder of the checkout. `XTASK_PROJECT_ROOT` points the recipes at another copy of the sources
/// (the benchmark's and the tests' scratch copies); the engine always stays with the checkout.
pub fn project_root() -> PathBuf {
    match std::env::var_os("XTASK_PROJECT_ROOT") {
        Some(dir) => PathBuf::from(dir),
        None => checkout_root(),
    }
}

fn checkout_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives one level below the root").to_path_buf()
}

pub fn dotenv_file() -> PathBuf {
    project_root().join(".env")
}

pub fn package_json() -> PathBuf {
    project_root().join("frontend").join("package.json")
}

/// Everything the xtask writes lives under `target/`, which `cargo clean` removes.
pub fn xtask_dir() -> PathBuf {
    project_root().join("target").join("xtask")
}

pub fn reports_dir() -> PathBuf {
    reports_dir_in(&project_root())
}

/// The reports folder of the sources at `root` (a scratch copy's, for the benchmark and tests).
pub fn reports_dir_in(root: &Path) -> PathBuf {
    root.join("target").join("xtask").join("reports")
}

pub fn history_file() -> PathBuf {
    reports_dir().join("history.jsonl")
}

/// The private engine's prefix, state and logs. `XTASK_ENGINE_DIR` puts them elsewhere (one
/// engine shared by several checkouts, or a throwaway one in a test).
pub fn engine_dir() -> PathBuf {
    match std::env::var_os("XTASK_ENGINE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => checkout_target().join("engine"),
    }
}

/// The checkout's own `target/` (not a scratch copy's): what belongs to this machine's engine.
pub fn checkout_target() -> PathBuf {
    checkout_root().join("target")
}

/// Writes a file atomically: a temporary file in the same folder, then a rename, so a reader
/// never sees half a file and an interrupted write leaves the old one intact.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path.parent().context("a file to write needs a parent folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path.file_name().context("a file to write needs a name")?.to_string_lossy();
    // Unique per process and per call: threads of one process may write the same file at once.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    std::fs::write(&tmp, contents).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// Copies the tracked and untracked-but-not-ignored files of the checkout at `root` into `dir`
/// (emptied first), so the benchmark and the tests can change files without touching the real ones.
pub fn copy_sources(root: &Path, dir: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    let list = crate::util::runner::Cmd::new("git").args(["ls-files", "-co", "--exclude-standard", "-z"]).dir(root);
    let files = crate::util::runner::read(&list).context("listing the sources to copy")?;
    for file in files.split('\0').filter(|f| !f.is_empty()) {
        let from = root.join(file);
        if from.is_file() {
            let to = dir.join(file);
            std::fs::create_dir_all(to.parent().context("a file has a folder")?)?;
            std::fs::copy(&from, &to).with_context(|| format!("copying {file} to {}", dir.display()))?;
        }
    }
    Ok(())
}

/// The files of `commit` (all of them, or only `only`) unpacked into `dest`, which is created:
/// `git archive` to a tar beside it, then `tar -x`. No .git and nothing untracked comes along.
pub fn export_commit(root: &Path, commit: &str, only: &[&str], dest: &Path) -> Result<()> {
    use crate::util::runner::{run_quiet, Cmd};
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let tar = PathBuf::from(format!("{}.tar", dest.display()));
    let archive = Cmd::new("git")
        .args(["archive", "--format=tar", "--output"])
        .arg(tar.display().to_string())
        .arg(commit)
        .args(only.iter().copied())
        .dir(root);
    run_quiet(&archive).with_context(|| format!("exporting commit {commit} with git archive"))?;
    let unpack = Cmd::new("tar").args(["-x", "-f"]).arg(tar.display().to_string()).arg("-C").arg(dest.display().to_string());
    let unpacked = run_quiet(&unpack).context("unpacking the export");
    let _ = std::fs::remove_file(&tar);
    unpacked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("xtask-atomic-{}", std::process::id()));
        let file = dir.join("a.json");
        write_atomic(&file, b"first").unwrap();
        write_atomic(&file, b"second").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "second");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn root_holds_the_workspace_manifest() {
        assert!(project_root().join("Cargo.toml").is_file());
        assert!(project_root().join(".cargo/config.toml").is_file());
    }
}
