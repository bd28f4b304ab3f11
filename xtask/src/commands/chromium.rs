//! Headless Chromium for the end-to-end test of the home page: found on PATH, or installed from
//! the machine's own Debian archive when the xtask runs as root on Debian (as CI does), the way
//! `test` prepares its other tools.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::util::runner::{self, Cmd};

/// The names Chromium goes by on PATH, Debian's first.
const NAMES: [&str; 3] = ["chromium", "chromium-browser", "google-chrome"];

/// The browser on PATH, if any.
pub(crate) fn find() -> Option<PathBuf> {
    NAMES.iter().find_map(|n| which::which(n).ok())
}

/// The browser, installed first when it is missing and this machine can install it.
pub(crate) fn ensure() -> Result<PathBuf> {
    if let Some(path) = find() {
        return Ok(path);
    }
    let how = "install Chromium (Debian: `apt-get install chromium`) and rerun";
    let root = runner::read(&Cmd::new("id").arg("-u")).is_ok_and(|uid| uid == "0");
    if !root || which::which("apt-get").is_err() {
        bail!("the home page test needs headless Chromium and this machine cannot install it here: {how}");
    }
    println!("==> installing Chromium from Debian for the home page test");
    let apt = |args: &[&str]| {
        Cmd::new("apt-get").args(["-q", "-y"]).args(args.iter().copied()).env("DEBIAN_FRONTEND", "noninteractive")
    };
    runner::run_quiet(&apt(&["update"])).context("apt-get update before installing Chromium")?;
    runner::run_quiet(&apt(&["install", "--no-install-recommends", "chromium"]))
        .with_context(|| format!("installing Chromium: {how}"))?;
    find().with_context(|| format!("Chromium is installed but not on PATH: {how}"))
}
