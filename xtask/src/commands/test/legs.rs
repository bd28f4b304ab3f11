//! The end-to-end suite's legs. With the project's private engines, the whole suite runs on the
//! current channel, and beside it, each in a copy of the sources of its own, the tests that differ
//! on the floor channel and on a classic-store engine. Every engine starts before the first test
//! and stops after the last one, so no test sees another engine come or go.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use anyhow::{Context, Result};

use super::{cargo_counts, suite, Tally};
use crate::engine::{self, Channel, Engine, Spec};
use crate::settings::Settings;
use crate::util::paths;
use crate::util::runner::{self, Cmd};

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

/// One engine's share of the suite.
pub(super) struct Leg {
    spec: Spec,
    subset: &'static [&'static str],
    engine: Result<Engine>,
}

/// What the end-to-end suite runs on, made ready while the other suites run.
pub(super) enum Ready {
    /// An engine the user runs (DOCKER_HOST or the current context): the suite runs there alone.
    User(Engine),
    Private(Vec<Leg>),
}

pub(super) struct Prepared {
    ready: Ready,
    /// Suites run while preparing (the Dockerfile checks) and what could not be had (a browser).
    results: Vec<(String, bool, (usize, usize, usize))>,
    /// The other architecture's root file system for the stand-ins, made while tests run.
    rootfs: Option<JoinHandle<Result<()>>>,
}

/// Finds or starts every engine the suite needs, first the current one; then, side by side, the
/// others start, the Dockerfile checks make this platform's stand-ins, and the other platform's
/// root file system is begun for the multi-platform tests.
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
    let specs: Vec<(Spec, &'static [&'static str])> = match (filter, std::env::var("XTASK_ENGINE").ok()) {
        (Some(_), wanted) => vec![(wanted.as_deref().unwrap_or("current").parse()?, &[])],
        (None, _) => LEGS.to_vec(),
    };
    let (&(spec, subset), others) = specs.split_first().context("the suite names an engine")?;
    let first = Leg { spec, subset, engine: engine::private_engine(spec, &settings) };
    let mut rootfs = None;
    let others = std::thread::scope(|s| -> Result<Vec<Leg>> {
        let others = s.spawn(|| {
            others
                .iter()
                .map(|&(spec, subset)| Leg { spec, subset, engine: engine::private_engine(spec, &settings) })
                .collect::<Vec<_>>()
        });
        if let (Ok(engine), None) = (&first.engine, filter) {
            let (kept, arch) = (engine.clone(), other_arch());
            rootfs = Some(std::thread::spawn(move || crate::images::standin::prepare_rootfs(&kept, arch)));
            results.push(dockerfile_checks(root, engine)?);
        }
        others.join().map_err(|_| anyhow::anyhow!("starting the other engines panicked"))
    })?;
    let legs = std::iter::once(first).chain(others).collect();
    Ok(Prepared { ready: Ready::Private(legs), results, rootfs })
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
/// fails on any warning (suppressions, if ever needed, go in the Dockerfiles with a reason).
fn dockerfile_checks(root: &Path, engine: &Engine) -> Result<(String, bool, (usize, usize, usize))> {
    let exe = std::env::current_exe().context("finding the xtask's own binary")?;
    let cmd = Cmd::new(exe.display().to_string()).arg("check").envs(&engine.env).dir(root);
    let (ok, _) = suite(&cmd)?;
    Ok(("BuildKit Dockerfile checks".to_string(), ok, (usize::from(ok), 0, 0)))
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
            let run = Run { root, binary, engine: &engine, name: "your engine", extra: vec![] };
            let (ok, counts) = run.tests(filter, &[], PRIVATE_ONLY, true)?;
            tally.add("end-to-end", ok, counts);
        }
        Ready::Private(legs) => private(root, binary, &legs, filter, tally)?,
    }
    if let Some(Err(e)) = prepared.rootfs.map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("it panicked")))) {
        // The multi-platform tests make it themselves when it is missing.
        eprintln!("warning: making the stand-ins' {} root file system ahead of the tests: {e:#}", other_arch());
    }
    Ok(())
}

/// The first leg here, shown as it runs; the others beside it, each in a copy of the sources, shown
/// when they end. Then every engine started now stops and its store goes.
fn private(root: &Path, binary: &Path, legs: &[Leg], filter: Option<&str>, tally: &mut Tally) -> Result<()> {
    let (first, others) = legs.split_first().context("the suite names an engine")?;
    let (first_result, others_results) = std::thread::scope(|s| {
        let beside = s.spawn(|| others.iter().map(|leg| beside(root, binary, leg)).collect::<Vec<_>>());
        let first_result = engine_of(first).and_then(|engine| {
            let run = Run { root, binary, engine, name: &first.spec.name(), extra: vec![] };
            run.tests(filter, first.subset, &[], true)
        });
        (first_result, beside.join())
    });
    let others_results = others_results.unwrap_or_else(|_| {
        others.iter().map(|_| Err(anyhow::anyhow!("the run beside the first one panicked"))).collect()
    });
    let mut per_engine = Vec::new();
    for (leg, result) in legs.iter().zip(std::iter::once(first_result).chain(others_results)) {
        let name = leg.spec.name();
        match result {
            // Without an engine, or a test binary that cannot run, the leg proves nothing: that is
            // a failure, never a skip.
            Err(e) => {
                eprintln!("error: end-to-end tests on {name}: {e:#}");
                tally.add(&format!("end-to-end on {name} (not run)"), false, (0, 0, 0));
            }
            Ok((ok, counts)) => {
                per_engine.push(format!("{name} {}", counts.0 + counts.1));
                tally.add(&format!("end-to-end on {name}"), ok, counts);
            }
        }
    }
    for leg in legs {
        if let Ok(engine) = &leg.engine {
            forget(engine, &leg.spec.name());
        }
    }
    println!("end-to-end tests run per engine: {}", per_engine.join(", "));
    Ok(())
}

fn engine_of(leg: &Leg) -> Result<&Engine> {
    leg.engine.as_ref().map_err(|e| anyhow::anyhow!("the {} engine could not be had: {e:#}", leg.spec.name()))
}

/// A leg beside the first: its subset in a copy of the sources (its own reports, history, locks
/// and scratch folders), its output kept in `target/xtask/e2e-NAME.log` and shown when it fails.
fn beside(root: &Path, binary: &Path, leg: &Leg) -> Result<(bool, (usize, usize, usize))> {
    let engine = engine_of(leg)?;
    let name = leg.spec.name();
    let copy = paths::checkout_target().join("xtask").join("e2e-legs").join(&name);
    paths::clone_sources(root, &copy).context("a checkout for a leg of its own")?;
    let tmp = copy.join("target").join("tmp");
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let extra = vec![
        ("XTASK_PROJECT_ROOT".to_string(), copy.display().to_string()),
        ("TMPDIR".to_string(), tmp.display().to_string()),
    ];
    let run = Run { root: &copy, binary, engine, name: &name, extra };
    let result = run.tests(None, leg.subset, &[], false);
    let _ = std::fs::remove_dir_all(&copy);
    result
}

/// One run of the end-to-end binary on one engine.
struct Run<'a> {
    root: &'a Path,
    binary: &'a Path,
    engine: &'a Engine,
    name: &'a str,
    extra: Vec<(String, String)>,
}

impl Run<'_> {
    /// `subset` names the tests (all when empty); `live` shows the output as it comes, else it is
    /// kept in a log and shown if the run fails.
    fn tests(
        &self,
        filter: Option<&str>,
        subset: &[&str],
        skip: &[&str],
        live: bool,
    ) -> Result<(bool, (usize, usize, usize))> {
        println!("==> end-to-end tests on {} ({})", self.name, self.engine.describe());
        let mut cmd = Cmd::new(self.binary.display().to_string())
            // A line per test, as it ends: the suite takes minutes.
            .args(["--ignored", "--test-threads=1"])
            .envs(&self.engine.env)
            .env("XTASK_TEST_REGISTRY", self.engine.registry_addr())
            .env("XTASK_TEST_ENGINE", self.name)
            .envs(&self.extra)
            // Where `cargo test` runs a test binary: its package's folder.
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
        println!(
            "==> end-to-end tests on {}: {} passed, {} failed (output in {})",
            self.name,
            counts.0,
            counts.1,
            log.display()
        );
        if !status.success() {
            println!("{out}");
        }
        Ok((status.success(), counts))
    }
}

/// Stops an engine the suite started and removes its store and its registry's storage: target/
/// stays small, and each run starts from the same state (the packages and the stand-ins' root file
/// systems stay).
fn forget(engine: &Engine, name: &str) {
    if !engine.started_now {
        return;
    }
    let forgotten = engine::down_one(engine).and_then(|()| engine::forget_store(engine));
    let forgotten = forgotten
        .and_then(|bytes| crate::images::standin_share::forget_registry(&engine.registry_addr()).map(|()| bytes));
    match forgotten {
        Ok(bytes) => println!("removed the {name} engine's store ({})", crate::util::units::human(bytes)),
        Err(e) => eprintln!("warning: stopping the {name} engine and removing its store: {e:#}"),
    }
}
