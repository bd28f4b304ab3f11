//! The end-to-end suite's legs: with the project's private engines, the whole suite on the current
//! channel, then the tests that differ on the floor channel and on a classic-store engine, those
//! two side by side. The current engine starts, and the images its tests build on are made, while
//! the other suites run.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use anyhow::{Context, Result};

use super::cadence::{self, Cadence};
use super::{cargo_counts, suite, Tally};
use crate::engine::{self, Channel, Engine, Spec};
use crate::settings::Settings;
use crate::util::paths;
use crate::util::runner::{self, Cmd};

/// The engines the end-to-end suite runs on when the project brings its own, with the tests each
/// runs and leaves out: the whole suite on the current channel; on the floor channel and on a
/// classic-store engine, what differs there: building (every build there goes through the
/// `# syntax` fallback), production push, bad input, Ctrl-C, status, doctor, print and reports
/// (the engine record, and history's absence on the floor's buildx 0.13), and on the classic
/// store the refusal of multiplatform. The floor builds multi-platform images as the current
/// channel does, under the same emulation, so that test (the suite's costliest) runs once.
const LEGS: [(Spec, &[&str], &[&str]); 3] = [
    (Spec::DEFAULT, &[], &[]),
    (Spec { channel: Channel::Floor, classic: false }, SUBSET, &["two_platforms::"]),
    (Spec { channel: Channel::Current, classic: true }, SUBSET, &[]),
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
];

/// Each names one test by its module and the start of its name, as `cargo test` filters.
pub const SUBSET: &[&str] = &[
    "builds::a_default_build",
    "builds::f_production_push",
    "two_platforms::arm64_images_run",
    "commands::h_bad_input",
    "commands::i_interrupted",
    "commands::j_status_doctor",
    "commands::o_engine_record",
];

/// A leg's outcome: whether it passed, and its counts (passed, failed, ignored).
type LegResult = Result<(bool, (usize, usize, usize))>;

/// One engine's share of the suite: its tests, and those it leaves out.
struct Leg {
    spec: Spec,
    subset: &'static [&'static str],
    skip: &'static [&'static str],
}

/// What the end-to-end suite runs on, made ready while the other suites run.
enum Ready {
    /// An engine the user runs (DOCKER_HOST or the current context): the suite runs there alone.
    User(Engine),
    /// The project's private engines, one leg each: the first leg's found or started, the
    /// others' started in turn.
    Private { legs: Vec<Leg>, first: Result<Engine>, settings: Settings },
}

/// A suite's name, whether it passed, and its counts (passed, failed, ignored).
type Suite = (String, bool, (usize, usize, usize));

pub(super) struct Prepared {
    ready: Ready,
    /// Suites run while preparing (the Dockerfile checks) and what could not be had (a browser).
    results: Vec<Suite>,
    /// The other architecture's root file system for the stand-ins, made while tests run.
    rootfs: Option<JoinHandle<Result<()>>>,
}

/// Finds or starts the first engine the suite needs; then the Dockerfile checks make this
/// platform's stand-ins there, and the other platform's root file system is begun for the
/// multi-platform tests.
pub(super) fn prepare(root: &Path, filter: Option<&str>) -> Result<Prepared> {
    let settings = Settings::load()?;
    let mut results = Vec::new();
    // The home page test and the report chart's are looked at in a real browser: without one they
    // fail, never skip.
    if filter.is_none_or(|f| f.contains("home_page") || f.contains("why_")) {
        if let Err(e) = crate::commands::chromium::ensure() {
            eprintln!("error: {e:#}");
            results.push(("Chromium for the home page test".to_string(), false, (0, 0, 0)));
        }
    }
    if let Some(engine) = engine::connect(&settings, false).ok().filter(|e| !e.is_private()) {
        return Ok(Prepared { ready: Ready::User(engine), results, rootfs: None });
    }
    // A filter is for a developer's quick run: one engine (XTASK_ENGINE, else the current one).
    let legs: Vec<Leg> = match (filter, std::env::var("XTASK_ENGINE").ok()) {
        (Some(_), wanted) => {
            vec![Leg { spec: wanted.as_deref().unwrap_or("current").parse()?, subset: &[], skip: &[] }]
        }
        (None, _) => LEGS.iter().map(|&(spec, subset, skip)| Leg { spec, subset, skip }).collect(),
    };
    let first = legs.first().context("the suite names an engine")?;
    let engine = engine::private_engine(first.spec, &settings);
    let mut rootfs = None;
    if let (Ok(engine), None) = (&engine, filter) {
        results.extend(dockerfile_checks(root, engine)?);
        // Begun once this platform's stand-ins are made (the two debootstraps at once took this
        // platform's from 44 s to 79 s), it runs beside the tests before the first one that
        // builds for arm64.
        let (kept, arch) = (engine.clone(), other_arch());
        rootfs = Some(std::thread::spawn(move || crate::images::standin::prepare_rootfs(&kept, arch)));
    }
    Ok(Prepared { ready: Ready::Private { legs, first: engine, settings }, results, rootfs })
}

/// The multi-platform group's platform that is not this machine's.
fn other_arch() -> &'static str {
    if engine::host_arch() == "arm64" {
        "amd64"
    } else {
        "arm64"
    }
}

/// BuildKit's own Dockerfile checks beside hadolint: `cargo xtask check` on the engine, which
/// fails on any warning (suppressions, if ever needed, go in the Dockerfiles with a reason). On a
/// fresh engine it makes the stand-ins first, and their progress lines are judged as a newcomer's
/// first build shows them (`cadence`).
fn dockerfile_checks(root: &Path, engine: &Engine) -> Result<Vec<Suite>> {
    let exe = std::env::current_exe().context("finding the xtask's own binary")?;
    let cmd = Cmd::new(exe.display().to_string()).arg("check").envs(&engine.env).dir(root);
    // An engine started now on an empty store, without a kept root file system: the check must
    // make the stand-ins, debootstrap included, so their progress must be seen and judged.
    let fresh = engine.started_now && !crate::images::standin::rootfs_kept(engine::host_arch());
    println!("==> {cmd}");
    let (status, lines) = runner::run_timed(&cmd, true)?;
    let ok = status.success();
    let mut results = vec![("BuildKit Dockerfile checks".to_string(), ok, (usize::from(ok), 0, 0))];
    let name = "stand-ins made for this platform with a line at least every 10 s".to_string();
    let host = format!("linux/{}", engine::host_arch());
    let judged = match cadence::judge(&lines, &host) {
        Ok(Cadence::Kept { span, longest }) => {
            println!("stand-ins made in {:.0} s, never silent over {:.1} s", span.as_secs_f64(), longest.as_secs_f64());
            (true, (1, 0, 0))
        }
        Ok(other) if fresh => {
            eprintln!("error: {name}: not seen, though this run's engine is fresh ({other:?})");
            (false, (0, 1, 0))
        }
        Ok(other) => {
            println!("{name}: not judged ({other:?}: the engine held them or their root file system was kept)");
            (true, (0, 0, 1))
        }
        Err(e) => {
            eprintln!("error: {name}: {e}");
            (false, (0, 1, 0))
        }
    };
    results.push((name, judged.0, judged.1));
    Ok(results)
}

/// Builds the end-to-end test binary (while the engines are still being prepared) and returns
/// its path: every leg runs that one binary.
pub(super) fn compile(root: &Path) -> Result<PathBuf> {
    let cmd = Cmd::new("cargo")
        .args(["test", "--package", "xtask", "--test", "e2e", "--no-run", "--quiet"])
        .arg("--message-format=json-render-diagnostics")
        .dir(root);
    let out = runner::read(&cmd).context("building the end-to-end tests")?;
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["target"]["name"] == "e2e")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .context("cargo named no end-to-end test binary")
}

pub(super) fn run(
    root: &Path,
    binary: &Path,
    prepared: Prepared,
    filter: Option<&str>,
    tally: &mut Tally,
) -> Result<()> {
    for (name, ok, counts) in &prepared.results {
        tally.add(name, *ok, *counts);
    }
    match prepared.ready {
        Ready::User(engine) => {
            println!(
                "end-to-end tests not run on your engine (they start, stop or provision the project's private engines): {}",
                PRIVATE_ONLY.join(", ")
            );
            let run = Run { binary, root, engine: &engine, name: "your engine", extra: vec![] };
            let (ok, counts) = run.tests(filter, &[], PRIVATE_ONLY, true)?;
            tally.add("end-to-end", ok, counts);
        }
        Ready::Private { legs, first, settings } => private(root, binary, &legs, first, &settings, filter, tally),
    }
    if let Some(Err(e)) = prepared.rootfs.map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("it panicked")))) {
        // The first test that builds for arm64 makes it when it is missing.
        eprintln!("warning: making the stand-ins' {} root file system ahead of the tests: {e:#}", other_arch());
    }
    Ok(())
}

/// The first leg alone (the whole suite); then the others side by side, each keeping only what
/// differs on its engine (a few tests: on 2 cores their builds and waits overlap well, and each
/// store is smaller than the first one's, removed meanwhile). The first of those runs in the
/// checkout, shown as it runs; each other one in a clone of its own, shown if it fails.
fn private(
    root: &Path,
    binary: &Path,
    legs: &[Leg],
    first: Result<Engine>,
    settings: &Settings,
    filter: Option<&str>,
    tally: &mut Tally,
) {
    let Some((head, rest)) = legs.split_first() else { return };
    let mut removals = Vec::new();
    let head_result = first.and_then(|engine| {
        let name = head.spec.name();
        let run = Run { binary, root, engine: &engine, name: &name, extra: vec![] };
        let result = run.tests(filter.filter(|_| head.subset.is_empty()), head.subset, head.skip, true);
        removals.extend(forget(&engine, &name));
        result
    });
    // Started one after the other: two starts at once would choose their networks at once.
    let engines: Vec<Result<Engine>> = rest.iter().map(|leg| engine::private_engine(leg.spec, settings)).collect();
    let rest_results: Vec<LegResult> = std::thread::scope(|s| {
        let runs: Vec<_> = (rest.iter().zip(&engines).enumerate())
            .map(|(i, (leg, engine))| {
                s.spawn(move || {
                    let engine = engine.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
                    let name = leg.spec.name();
                    match i {
                        0 => Run { binary, root, engine, name: &name, extra: vec![] }
                            .tests(None, leg.subset, leg.skip, true),
                        _ => beside(root, binary, engine, leg),
                    }
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap_or_else(|_| Err(anyhow::anyhow!("the run panicked")))).collect()
    });
    for (leg, engine) in rest.iter().zip(&engines) {
        if let Ok(engine) = engine {
            removals.extend(forget(engine, &leg.spec.name()));
        }
    }
    let mut per_engine = Vec::new();
    for (leg, result) in legs.iter().zip(std::iter::once(head_result).chain(rest_results)) {
        let name = leg.spec.name();
        match result {
            Ok((ok, counts)) => {
                per_engine.push(format!("{name} {}", counts.0 + counts.1));
                tally.add(&format!("end-to-end on {name}"), ok, counts);
            }
            // Without an engine, or a test binary that cannot run, the leg proves nothing: that
            // is a failure, never a skip.
            Err(e) => {
                eprintln!("error: end-to-end tests on {name}: {e:#}");
                tally.add(&format!("end-to-end on {name} (not run)"), false, (0, 0, 0));
            }
        }
    }
    for removal in removals {
        let _ = removal.join();
    }
    println!("end-to-end tests run per engine: {}", per_engine.join(", "));
}

/// A leg beside another one: its tests in a clone of the checkout (its own reports, history,
/// scratch copies and temporary files), the clone removed afterwards.
fn beside(root: &Path, binary: &Path, engine: &Engine, leg: &Leg) -> LegResult {
    let name = leg.spec.name();
    let copy = paths::checkout_target().join("xtask").join("e2e-legs").join(&name);
    paths::clone_sources(root, &copy).context("a checkout for a leg of its own")?;
    let tmp = copy.join("target").join("tmp");
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let extra = vec![
        ("XTASK_PROJECT_ROOT".to_string(), copy.display().to_string()),
        ("TMPDIR".to_string(), tmp.display().to_string()),
    ];
    let result = Run { binary, root: &copy, engine, name: &name, extra }.tests(None, leg.subset, leg.skip, false);
    let _ = std::fs::remove_dir_all(&copy);
    result
}

/// One run of the end-to-end binary on one engine.
struct Run<'a> {
    binary: &'a Path,
    root: &'a Path,
    engine: &'a Engine,
    name: &'a str,
    extra: Vec<(String, String)>,
}

impl Run<'_> {
    /// `subset` names the tests (all when empty), `skip` those left out. `live`: shown as it
    /// runs, a line per test as it ends; else kept in `target/xtask/e2e-NAME.log`, shown if it
    /// fails.
    fn tests(&self, filter: Option<&str>, subset: &[&str], skip: &[&str], live: bool) -> LegResult {
        println!("==> end-to-end tests on {} ({})", self.name, self.engine.describe());
        // Run where `cargo test` runs a test binary: its package's folder.
        let mut cmd = Cmd::new(self.binary.display().to_string())
            .args(["--ignored", "--test-threads=1"])
            .envs(&self.engine.env)
            .env("XTASK_TEST_REGISTRY", self.engine.registry_addr())
            .env("XTASK_TEST_ENGINE", self.name)
            .envs(&self.extra)
            .dir(self.root.join("xtask"));
        match filter {
            Some(f) => cmd = cmd.arg(f),
            None => cmd = cmd.args(subset.iter().copied()),
        }
        for s in skip {
            cmd = cmd.args(["--skip", s]);
        }
        if live {
            let (ok, out) = suite(&cmd)?;
            return Ok((ok, cargo_counts(&out)));
        }
        let (status, out) = runner::run_kept(&cmd, false)?;
        let log = paths::checkout_target().join("xtask").join(format!("e2e-{}.log", self.name));
        std::fs::write(&log, &out).with_context(|| format!("writing {}", log.display()))?;
        let counts = cargo_counts(&out);
        println!("==> end-to-end tests on {}: {} passed, {} failed ({})", self.name, counts.0, counts.1, log.display());
        if !status.success() {
            println!("{out}");
        }
        Ok((status.success(), counts))
    }
}

/// Stops an engine the suite started and removes its store and its registry's storage: target/
/// stays small, and each run starts from the same state (the packages and the stand-ins' root file
/// systems stay). The store is moved aside at once and removed while the next leg runs.
fn forget(engine: &Engine, name: &str) -> Option<JoinHandle<()>> {
    if !engine.started_now {
        return None;
    }
    let set_aside = engine::down_one(engine).and_then(|()| engine::forget_store(engine));
    let set_aside = set_aside.and_then(|s| {
        crate::images::standin_share::forget_registry(&engine.registry_addr())?;
        Ok(s)
    });
    let warn = |name: &str, e: anyhow::Error| {
        eprintln!("warning: stopping the {name} engine and removing its store: {e:#}");
    };
    match set_aside {
        Ok(s) => {
            let name = name.to_string();
            Some(std::thread::spawn(move || match s.remove() {
                Ok(bytes) => println!("removed the {name} engine's store ({})", crate::util::units::human(bytes)),
                Err(e) => warn(&name, e),
            }))
        }
        Err(e) => {
            warn(name, e);
            None
        }
    }
}
