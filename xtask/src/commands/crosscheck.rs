//! `cargo check` of the xtask for Windows and macOS, on a machine that has their standard
//! libraries (`rustup target add TARGET`): short of running there, the proof that every Unix-only
//! call stays behind `cfg(unix)`. A target whose library is missing is named, not checked.

use std::path::Path;

use anyhow::Result;

use crate::util::runner::{self, Cmd};

/// Docker Desktop's two other homes: Windows on x86-64 and macOS on Apple silicon.
const TARGETS: [&str; 2] = ["x86_64-pc-windows-gnu", "aarch64-apple-darwin"];

/// True when the toolchain has the target's standard library (no linker is needed to check).
fn installed(target: &str) -> bool {
    runner::read(&Cmd::new("rustc").args(["--print", "sysroot"]))
        .is_ok_and(|sysroot| Path::new(&sysroot).join("lib/rustlib").join(target).join("lib").is_dir())
}

fn check(target: &str, root: &Path) -> Cmd {
    Cmd::new("cargo").args(["check", "--package", "xtask", "--all-targets", "--quiet", "--target", target]).dir(root)
}

/// Checks each target that can be checked here: (suite name, passed) for each.
pub(crate) fn run(root: &Path) -> Result<Vec<(String, bool)>> {
    let mut outcomes = Vec::new();
    for target in TARGETS {
        if !installed(target) {
            println!("xtask for {target}: not checked, no standard library for it here (`rustup target add {target}`)");
            continue;
        }
        let cmd = check(target, root);
        println!("==> {cmd}");
        let (status, _) = runner::run_kept(&cmd, true)?;
        outcomes.push((format!("xtask compiles for {target}"), status.success()));
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_without_its_library_is_not_installed_and_the_check_names_its_target() {
        assert!(!installed("no-such-target"));
        let cmd = check("aarch64-apple-darwin", Path::new("/x"));
        assert_eq!(
            cmd.to_string(),
            "cd /x && cargo check --package xtask --all-targets --quiet --target aarch64-apple-darwin"
        );
    }
}
