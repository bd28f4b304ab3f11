//! `cargo xtask bench`: the build scenarios that matter, measured in a scratch copy of the
//! sources (`scratch`), each run through the xtask itself; the xtask's own overhead measured
//! against the raw bake command it runs (`overhead`); the table of it all (`table`), written to
//! `target/xtask/bench.md` and as its engine's section of `docs/benchmarks.md` (`doc`).

mod doc;
mod overhead;
pub mod scratch;
mod table;

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::report::BuildReport;
use crate::util::paths::{self, write_atomic};
use crate::util::runner::{self, Cmd};

pub(crate) use scratch::{build, scratch_copy};
pub(crate) use table::machine;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Cold,
    ColdExport,
    ColdFormer,
    ColdIssue,
    Warm,
    Repeat,
    Source,
    Deps,
    Metadata,
}

const SCENARIOS: [(Scenario, &str); 9] = [
    (Scenario::Cold, "cold (no layer cache, empty cache mounts)"),
    (Scenario::ColdExport, "cold with the mode=max cache export (`--cache-export`)"),
    (Scenario::ColdFormer, "cold as configured before (mode=max gzip export on every build)"),
    (Scenario::ColdIssue, "cold on the first recipe (its Dockerfiles and bake file, which export on every build)"),
    (Scenario::Warm, "warm, no change"),
    (Scenario::Repeat, "repeat build (same image ids?)"),
    (Scenario::Source, "source-only change"),
    (Scenario::Deps, "dependency-manifest change"),
    (Scenario::Metadata, "metadata-only change (new BUILD_DATE)"),
];

/// One measured build.
#[derive(Clone)]
struct Sample {
    wall: f64,
    run_executed: usize,
    dep_steps_executed: usize,
    /// For the repeat build: whether every image kept its id.
    same_ids: Option<bool>,
}

/// The middle value (the mean of the two middle ones for an even count); 0 for none, which a
/// bench table shows as a scenario not run.
pub(crate) fn median(values: &mut [f64]) -> f64 {
    crate::report::trend::median(values).unwrap_or(0.0)
}

/// The scratch copy the rounds build, and the identity its builds are given.
struct Bench {
    names: Vec<String>,
    scratch: PathBuf,
    issue: Option<PathBuf>,
    former_cache: PathBuf,
    /// The scratch copy has no git: it is told the checkout's commit and time, so that its images
    /// are dated as the checkout's would be (and a repeat build can keep their ids).
    identity: Vec<(String, String)>,
    docker: Cmd,
    settings: crate::settings::Settings,
    /// The engine the builds ran on, as their reports record it (for `docs/benchmarks.md`).
    engine: std::sync::OnceLock<crate::engine::EngineRecord>,
}

impl Bench {
    fn build(&self, dir: &Path, extra: &[String], env: &[(String, String)]) -> Result<BuildReport> {
        let env: Vec<(String, String)> = self.identity.iter().chain(env).cloned().collect();
        let report = build(dir, &self.names, extra, &env)?;
        if let Some(e) = &report.engine {
            let _ = self.engine.set(e.clone());
        }
        Ok(report)
    }

    fn ids(&self) -> Vec<String> {
        let id = |n: &String| {
            let image = format!("contextcleanse-{n}:dev");
            runner::read(&self.docker.clone().args(["image", "inspect", "--format", "{{.Id}}", &image]))
                .unwrap_or_default()
        };
        self.names.iter().map(id).collect()
    }

    /// The flags and variables a scenario builds with, after the change it makes to the copy.
    fn prepare(&self, scenario: Scenario, round: usize) -> Result<(Vec<String>, Vec<(String, String)>)> {
        let mut extra: Vec<String> = Vec::new();
        let mut env: Vec<(String, String)> = Vec::new();
        // Cold runs: layer cache off and a cache-mount namespace of their own, cold for this
        // project only, without pruning anything another project relies on.
        let cold_ns = |kind: &str| {
            let what = format!("bench-cold-{kind}{}-{round}", std::process::id());
            ("BUILDKIT_CACHE_MOUNT_NS".to_string(), crate::settings::run_namespace(&self.settings, &what))
        };
        match scenario {
            Scenario::Cold | Scenario::ColdIssue | Scenario::ColdExport | Scenario::ColdFormer => {
                extra.push("--no-cache".into());
            }
            _ => {}
        }
        match scenario {
            Scenario::Cold => env.push(cold_ns("")),
            Scenario::ColdIssue => env.push(cold_ns("issue-")),
            Scenario::ColdExport => {
                extra.push("--cache-export".into());
                env.push(cold_ns("export-"));
            }
            Scenario::ColdFormer => {
                // A mode=max export to a local folder on every build, BuildKit's default
                // compression (gzip).
                for n in &self.names {
                    let dest = self.former_cache.join(n);
                    extra.extend(["--set".into(), format!("{n}.cache-to=type=local,dest={},mode=max", dest.display())]);
                }
                env.push(cold_ns("former-"));
            }
            Scenario::Warm | Scenario::Repeat => {}
            Scenario::Source => scratch::touch_sources(&self.scratch, round)?,
            Scenario::Deps => scratch::touch_manifests(&self.scratch, round)?,
            Scenario::Metadata => env.push(("SOURCE_DATE_EPOCH".into(), (1_700_000_000 + round * 86_400).to_string())),
        }
        Ok((extra, env))
    }

    /// One measured build of a scenario; a cold one is followed by a warm build, so the next
    /// scenarios compare against a warm cache in the normal namespace.
    fn measure(&self, scenario: Scenario, round: usize) -> Result<Option<Sample>> {
        let dir = match (scenario, &self.issue) {
            (Scenario::ColdIssue, Some(tree)) => tree,
            (Scenario::ColdIssue, None) => return Ok(None),
            _ => &self.scratch,
        };
        let (extra, env) = self.prepare(scenario, round)?;
        let before = self.ids();
        let mut s = sample(&self.build(dir, &extra, &env)?);
        if scenario == Scenario::Repeat {
            s.same_ids = Some(before == self.ids() && before.iter().all(|id| !id.is_empty()));
        }
        if matches!(scenario, Scenario::Cold | Scenario::ColdExport | Scenario::ColdFormer | Scenario::ColdIssue) {
            std::fs::remove_dir_all(&self.former_cache).ok();
            if let Some(tree) = &self.issue {
                std::fs::remove_dir_all(tree.join("target/buildx-cache")).ok();
            }
            self.build(&self.scratch, &[], &[])?;
        }
        Ok(Some(s))
    }
}

pub fn run(names: &[String], runs: usize) -> Result<()> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let names: Vec<String> = if names.is_empty() { vec!["backend".into(), "frontend".into()] } else { names.to_vec() };
    let scratch = scratch_copy()?;
    let root = paths::project_root();
    let git = |args: &[&str]| runner::read(&Cmd::new("git").args(args.iter().copied()).dir(&root));
    let identity = vec![
        ("XTASK_SOURCE_COMMIT".to_string(), format!("{}-bench", git(&["rev-parse", "HEAD"])?)),
        ("SOURCE_DATE_EPOCH".to_string(), git(&["log", "-1", "--format=%ct"])?),
    ];
    let settings = crate::settings::Settings::load()?;
    let docker = crate::engine::connect(&settings, false)?.docker();
    let bench = Bench {
        former_cache: scratch.join("target/bench-former-cache"),
        issue: scratch::issue_tree(&scratch)?,
        names,
        scratch,
        identity,
        docker,
        settings,
        engine: std::sync::OnceLock::new(),
    };
    // Warm the scratch copy's caches once, so the first `warm` run measures what it says.
    bench.build(&bench.scratch, &[], &[])?;
    let mut samples: Vec<Vec<Sample>> = SCENARIOS.iter().map(|_| Vec::new()).collect();
    let mut compiles: Vec<f64> = Vec::new();
    for round in 0..runs {
        eprintln!("bench: round {}/{runs}: the xtask's cold compile", round + 1);
        compiles.push(scratch::cold_compile(&bench.scratch)?);
        for (i, (scenario, label)) in SCENARIOS.iter().enumerate() {
            eprintln!("bench: round {}/{runs}: {label}", round + 1);
            samples[i].extend(bench.measure(*scenario, round)?);
        }
    }
    eprintln!("bench: the xtask's overhead, {} alternating pairs", overhead::PAIRS);
    let overhead = overhead::measure(&bench.scratch, &bench.names, &bench.identity)?;
    let table = table::markdown(&bench.names, runs, &samples, &compiles, &overhead);
    let out = paths::xtask_dir().join("bench.md");
    write_atomic(&out, table.as_bytes())?;
    print!("{table}");
    eprintln!("bench: table written to {}", out.display());
    publish("builds", "Builds", bench.engine.get(), &table)?;
    std::fs::remove_dir_all(&bench.scratch).ok();
    if let Some(tree) = bench.issue {
        std::fs::remove_dir_all(tree).ok();
    }
    Ok(())
}

/// The bench's table as its section of `docs/benchmarks.md`, one section per bench and engine.
pub(crate) fn publish(
    kind: &str,
    title: &str,
    engine: Option<&crate::engine::EngineRecord>,
    table: &str,
) -> Result<()> {
    // The engine without its endpoint: a socket path names this machine, not the engine.
    let or = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown".to_string());
    let (short, line) = engine.map_or(("unrecorded".to_string(), "not recorded".to_string()), |e| {
        let line = format!(
            "{}: Docker {}, BuildKit {}, buildx {}, {} image store, {} driver",
            e.private.as_ref().map_or("an engine the user runs".to_string(), |p| format!("private {p} engine")),
            e.docker,
            or(&e.buildkit),
            or(&e.buildx),
            e.store,
            e.driver
        );
        (e.short(), line)
    });
    doc::write(&format!("{kind} {short}"), &format!("{title}: {short}"), &format!("Engine: {line}.\n\n{table}"))
}

/// The Dockerfile stages that install dependencies (backend `deps`, frontend `base` and `deps`):
/// a source-only change must re-run none of their RUN steps. The tidy test checks each is a stage
/// of a Dockerfile.
pub const DEPENDENCY_STAGES: [&str; 2] = ["base", "deps"];

/// True for a RUN step of a dependency stage, named by BuildKit `[TARGET STAGE N/M] RUN …`.
fn is_dependency_run(step: &str) -> bool {
    let Some((label, instruction)) = step.strip_prefix('[').and_then(|s| s.split_once("] ")) else { return false };
    // After the target may come a platform (`[backend linux/arm64 deps 2/4]`), then the stage.
    let stage = label.split_whitespace().skip(1).any(|w| DEPENDENCY_STAGES.contains(&w));
    stage && instruction.starts_with("RUN ")
}

fn sample(r: &BuildReport) -> Sample {
    Sample {
        wall: r.wall_secs,
        run_executed: r.targets.iter().map(|t| t.run_steps_executed).sum(),
        dep_steps_executed: r
            .targets
            .iter()
            .flat_map(|t| &t.steps_detail)
            .filter(|s| !s.cached && is_dependency_run(&s.name))
            .count(),
        same_ids: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_runs_are_told_by_their_stage() {
        assert!(is_dependency_run("[backend deps 2/4] RUN pip install -r requirements.txt"));
        assert!(is_dependency_run("[frontend base 1/2] RUN apk add x"));
        assert!(!is_dependency_run("[backend app 3/5] RUN python -m compileall"));
        assert!(!is_dependency_run("[frontend deps 3/4] COPY package.json ."));
        assert!(!is_dependency_run("[internal] load build definition"));
    }
}
