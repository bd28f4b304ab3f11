//! Where things are: the project's root and the files and folders the xtask owns.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The workspace root, found from this crate's manifest so that `cargo xtask` works from any
/// folder of the checkout. `XTASK_PROJECT_ROOT` points the recipes at another copy of the sources
/// (the benchmark's and the tests' scratch copies); the engine always stays with the checkout.
pub(crate) fn project_root() -> PathBuf {
    match std::env::var_os("XTASK_PROJECT_ROOT") {
        Some(dir) => PathBuf::from(dir),
        None => checkout_root(),
    }
}

fn checkout_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives one level below the root").to_path_buf()
}

pub(crate) fn dotenv_file() -> PathBuf {
    project_root().join(".env")
}

pub(crate) fn package_json() -> PathBuf {
    project_root().join("frontend").join("package.json")
}

/// Everything the xtask writes lives under `target/`, which `cargo clean` removes.
pub(crate) fn xtask_dir() -> PathBuf {
    project_root().join("target").join("xtask")
}

pub(crate) fn reports_dir() -> PathBuf {
    reports_dir_in(&project_root())
}

/// The reports folder of the sources at `root` (a scratch copy's, for the benchmark and tests).
pub fn reports_dir_in(root: &Path) -> PathBuf {
    root.join("target").join("xtask").join("reports")
}

pub(crate) fn history_file() -> PathBuf {
    reports_dir().join("history.jsonl")
}

/// The private engine's prefix, state and logs. `XTASK_ENGINE_DIR` puts them elsewhere (one
/// engine shared by several checkouts, or a throwaway one in a test).
pub(crate) fn engine_dir() -> PathBuf {
    match std::env::var_os("XTASK_ENGINE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => checkout_target().join("engine"),
    }
}

/// The checkout's own `target/` (not a scratch copy's): what belongs to this machine's engine.
/// Bytes under a folder (files only, symbolic links not followed).
pub(crate) fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

pub fn checkout_target() -> PathBuf {
    checkout_root().join("target")
}

/// Opens a lock file, making it and its folder when missing (its contents are never read).
pub(crate) fn open_lock(path: &Path) -> Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Holds the lock file `path` exclusively, after any other holder lets go, until the returned
/// file is dropped (or the process ends, however it ends).
pub(crate) fn lock_exclusive(path: &Path) -> Result<std::fs::File> {
    let file = open_lock(path)?;
    crate::util::os::flock(&file, true, true).with_context(|| format!("locking {}", path.display()))?;
    Ok(file)
}

/// A JSON file the xtask keeps for itself: what it holds, or the empty value when it is missing or
/// unreadable (such a file only ever saves asking again).
pub(crate) fn read_json<T: serde::de::DeserializeOwned + Default>(file: &Path) -> T {
    std::fs::read(file).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

/// Changes a kept JSON file under an exclusive lock beside it (`NAME.lock`): processes that change
/// it at the same time each keep their change. An unchanged value is not written again.
pub(crate) fn update_json<T>(file: &Path, change: impl FnOnce(&mut T)) -> Result<()>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Default + PartialEq + Clone,
{
    let _lock = lock_exclusive(&file.with_extension("lock"))?;
    let mut value: T = read_json(file);
    let before = value.clone();
    change(&mut value);
    if value == before {
        return Ok(());
    }
    write_atomic(file, &serde_json::to_vec_pretty(&value)?)
}

/// Writes a file atomically and durably: a temporary file in the same folder, flushed to disk,
/// then a rename, then the folder flushed, so a reader never sees half a file, and after a crash or
/// power cut the path holds either the old file or the new one whole.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().context("a file to write needs a parent folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path.file_name().context("a file to write needs a name")?.to_string_lossy();
    remove_stale_temporaries(dir, &name);
    // Unique per process and per call: threads of one process may write the same file at once.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(contents)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", tmp.display()));
    }
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    crate::util::os::sync_dir(dir).with_context(|| format!("flushing the folder {} to disk", dir.display()))
}

/// Removes the temporary files that [`write_atomic`] left for `name` in `dir` when its process
/// was killed between writing and renaming. A temporary of a process that still runs is its
/// writer's, and stays.
fn remove_stale_temporaries(dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(rest) = file.to_str().and_then(|f| f.strip_prefix(&prefix)?.strip_suffix(".tmp")) else { continue };
        let Some(Ok(pid)) = rest.split_once('.').map(|(pid, _)| pid.parse::<u32>()) else { continue };
        if pid != std::process::id() && !crate::util::os::process_exists(pid) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Copies the tracked and untracked-but-not-ignored files of the checkout at `root` into `dir`
/// (emptied first), so the benchmark and the tests can change files without touching the real ones.
pub fn copy_sources(root: &Path, dir: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    copy_files(root, dir)
}

/// A checkout of its own at `dir` (emptied first) holding what the checkout at `root` holds: a
/// clone sharing its objects, at its commit, with its tracked and untracked-but-not-ignored files
/// copied over. git answers there as in the checkout (the commit, and what a copy of it takes).
pub(crate) fn clone_sources(root: &Path, dir: &Path) -> Result<()> {
    use crate::util::runner::{read, run_quiet, Cmd};
    let _ = std::fs::remove_dir_all(dir);
    let clone = Cmd::new("git").args(["clone", "--quiet", "--shared", "--no-checkout"]);
    run_quiet(&clone.arg(root.display().to_string()).arg(dir.display().to_string())).context("cloning the checkout")?;
    let head = read(&Cmd::new("git").args(["rev-parse", "HEAD"]).dir(root))?;
    run_quiet(&Cmd::new("git").args(["checkout", "--quiet", "--detach", &head]).dir(dir))
        .context("checking out the clone")?;
    copy_files(root, dir)?;
    for file in read(&Cmd::new("git").args(["ls-files", "--deleted", "-z"]).dir(root))?.split('\0') {
        if !file.is_empty() {
            let _ = std::fs::remove_file(dir.join(file));
        }
    }
    Ok(())
}

fn copy_files(root: &Path, dir: &Path) -> Result<()> {
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
pub(crate) fn export_commit(root: &Path, commit: &str, only: &[&str], dest: &Path) -> Result<()> {
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
    let unpack =
        Cmd::new("tar").args(["-x", "-f"]).arg(tar.display().to_string()).arg("-C").arg(dest.display().to_string());
    let unpacked = run_quiet(&unpack).context("unpacking the export");
    let _ = std::fs::remove_file(&tar);
    unpacked
}

/// A path with `.` and `..` resolved by text alone (the files need not exist yet).
pub(crate) fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
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

    #[cfg(unix)]
    #[test]
    fn a_killed_writers_temporary_is_removed_by_the_next_write_and_a_live_ones_stays() {
        let dir = std::env::temp_dir().join(format!("xtask-atomic-stale-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = dir.join(format!(".a.json.{dead}.0.tmp"));
        // The parent of this test process runs for as long as the test does.
        let live = dir.join(format!(".a.json.{}.0.tmp", std::os::unix::process::parent_id()));
        let other = dir.join(format!(".b.json.{dead}.0.tmp"));
        for f in [&stale, &live, &other] {
            std::fs::write(f, "half").unwrap();
        }
        write_atomic(&dir.join("a.json"), b"whole").unwrap();
        assert!(!stale.exists(), "a dead writer's temporary is removed");
        assert!(live.exists(), "a running writer's temporary stays");
        assert!(other.exists(), "another file's temporary is that file's writer's to clean");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn root_holds_the_workspace_manifest() {
        assert!(project_root().join("Cargo.toml").is_file());
        assert!(project_root().join(".cargo/config.toml").is_file());
    }
}
