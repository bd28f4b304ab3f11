//! The bench's scratch copies of the sources (the user's files are never touched), the changes
//! its scenarios make to them, and one measured build of a copy through the xtask itself.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::report::{self, BuildReport};
use crate::util::paths;
use crate::util::runner::{self, Cmd};

/// The commit issue 10 measured ("today's configuration": its Dockerfiles, and a bake file that
/// exports the mode=max cache, gzip, to a local folder on every build).
pub(crate) const ISSUE_COMMIT: &str = "8edd2d8";

/// A copy of the scratch tree with the images' recipe of `ISSUE_COMMIT` (backend/, frontend/,
/// docker-bake.hcl), built by today's xtask on the same bases; `None`, with a line, when this
/// clone lacks that commit. The old bake file gets the two variables today's xtask reads the
/// defaults of; its targets use neither.
pub(super) fn issue_tree(scratch: &Path) -> Result<Option<PathBuf>> {
    let tree = PathBuf::from(format!("{}-issue", scratch.display()));
    let recipe = PathBuf::from(format!("{}-issue-recipe", scratch.display()));
    let parts = ["backend", "frontend", "docker-bake.hcl"];
    if paths::export_commit(&paths::project_root(), ISSUE_COMMIT, &parts, &recipe).is_err() {
        eprintln!(
            "bench: commit {ISSUE_COMMIT} is not in this clone: the cold build at the issue's commit is left out"
        );
        std::fs::remove_dir_all(&recipe).ok();
        return Ok(None);
    }
    runner::run(&Cmd::new("cp").args(["-a", &scratch.display().to_string(), &tree.display().to_string()]))?;
    for part in parts {
        let (old, new) = (tree.join(part), recipe.join(part));
        if old.is_dir() { std::fs::remove_dir_all(&old) } else { std::fs::remove_file(&old) }
            .with_context(|| format!("replacing {}", old.display()))?;
        std::fs::rename(&new, &old).with_context(|| format!("moving {} into place", new.display()))?;
    }
    std::fs::remove_dir_all(&recipe).ok();
    append(
        &tree.join("docker-bake.hcl"),
        "\nvariable \"SOURCE_URL\" {\n  default = \"\"\n}\n\nvariable \"SBOM_GENERATOR\" {\n  default = \"\"\n}\n",
    )?;
    Ok(Some(tree))
}

/// A scratch copy of the sources, one per benchmark run.
pub(crate) fn scratch_copy() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("xtask-bench-{}", std::process::id()));
    paths::copy_sources(&paths::project_root(), &dir).context("copying the sources for the benchmark")?;
    Ok(dir)
}

/// Seconds for `cargo build -p xtask` into an empty target folder: what every contributor waits
/// for before a first build (the crates already downloaded).
pub(super) fn cold_compile(scratch: &Path) -> Result<f64> {
    let target = scratch.join("target/bench-compile");
    std::fs::remove_dir_all(&target).ok();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let cmd = Cmd::new(cargo)
        .args(["build", "--quiet", "--package", "xtask", "--target-dir"])
        .arg(target.display().to_string())
        .dir(paths::project_root());
    let started = std::time::Instant::now();
    runner::run_quiet(&cmd).context("compiling the xtask into an empty target folder")?;
    let secs = started.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&target).ok();
    Ok(secs)
}

/// Adds text at the end of a file (the end-to-end tests change files this way too).
pub fn append(path: &Path, line: &str) -> Result<()> {
    let mut text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.push_str(line);
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// A mark no earlier build has seen: the engine's cache is content-addressed, so a change that
/// repeats an earlier run's content would be served from the cache and measure nothing.
fn nonce(round: usize) -> String {
    format!("{}-{}-{round}", std::process::id(), chrono::Utc::now().timestamp_micros())
}

pub(super) fn touch_sources(dir: &Path, round: usize) -> Result<()> {
    let mark = nonce(round);
    append(&dir.join("backend/app/main.py"), &format!("\n# bench source change {mark}\n"))?;
    append(&dir.join("frontend/app/page.js"), &format!("\n// bench source change {mark}\n"))
}

/// A change to each dependency manifest that keeps it valid: a comment in requirements.txt, and
/// a new `description` in package.json (npm ci still agrees with the lock file).
pub(super) fn touch_manifests(dir: &Path, round: usize) -> Result<()> {
    let mark = nonce(round);
    append(&dir.join("backend/requirements.txt"), &format!("# bench manifest change {mark}\n"))?;
    let path = dir.join("frontend/package.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    json["description"] = serde_json::Value::String(format!("bench manifest change {mark}"));
    std::fs::write(&path, serde_json::to_string_pretty(&json)? + "\n")?;
    Ok(())
}

pub(crate) fn build(dir: &Path, names: &[String], extra: &[String], env: &[(String, String)]) -> Result<BuildReport> {
    let exe = std::env::current_exe().context("finding the xtask binary")?;
    let cmd = Cmd::new(exe.display().to_string())
        .arg("build")
        .args(names.iter().cloned())
        .args(["--progress", "tty"])
        .args(extra.iter().cloned())
        .env("XTASK_PROJECT_ROOT", dir.display().to_string())
        // Each scenario says itself whether it exports; CI=true would decide it for them (see
        // cache::policy), so a bench run in CI measures what it does on a developer's machine.
        .env_remove("CI")
        .envs(env);
    runner::run_quiet(&cmd)?;
    let path = report::last_saved(&paths::reports_dir_in(dir))?;
    Ok(serde_json::from_str(&std::fs::read_to_string(&path)?)?)
}
