//! `cargo xtask bench`: the build scenarios that matter, measured in a scratch copy of the
//! sources (the user's files are never touched), each run through the xtask itself so its own
//! overhead is measured too. Writes a Markdown table to `target/xtask/bench.md`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::paths::{self, write_atomic};
use crate::report::{self, BuildReport};
use crate::runner::{self, Cmd};

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
    buildx: f64,
    run_executed: usize,
    dep_steps_executed: usize,
    /// For the repeat build: whether every image kept its id.
    same_ids: Option<bool>,
}

pub fn run(names: &[String], runs: usize) -> Result<()> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let names: Vec<String> = if names.is_empty() { vec!["backend".into(), "frontend".into()] } else { names.to_vec() };
    let scratch = scratch_copy()?;
    // The scratch copy has no git: it is told the checkout's commit and time, so that its
    // images are dated as the checkout's would be (and a repeat build can keep their ids).
    let root = paths::project_root();
    let git = |args: &[&str]| runner::read(&Cmd::new("git").args(args.iter().copied()).dir(&root));
    let identity = vec![
        ("XTASK_SOURCE_COMMIT".to_string(), format!("{}-bench", git(&["rev-parse", "HEAD"])?)),
        ("SOURCE_DATE_EPOCH".to_string(), git(&["log", "-1", "--format=%ct"])?),
    ];
    let docker = crate::engine::connect(&crate::settings::Settings::load()?, false)?.docker();
    let ids = || -> Vec<String> {
        let id = |n: &String| {
            let image = format!("contextcleanse-{n}:dev");
            runner::read(&docker.clone().args(["image", "inspect", "--format", "{{.Id}}", &image])).unwrap_or_default()
        };
        names.iter().map(id).collect()
    };
    let build = |dir: &Path, names: &[String], extra: &[String], env: &[(String, String)]| {
        let env: Vec<(String, String)> = identity.iter().chain(env).cloned().collect();
        build(dir, names, extra, &env)
    };
    let mut samples: Vec<Vec<Sample>> = SCENARIOS.iter().map(|_| Vec::new()).collect();
    let mut engine = None;
    let mut compiles: Vec<f64> = Vec::new();
    // Warm the scratch copy's caches once, so the first `warm` run measures what it says.
    build(&scratch, &names, &[], &[])?;
    let former_cache = scratch.join("target/bench-former-cache");
    let issue = issue_tree(&scratch)?;
    for round in 0..runs {
        eprintln!("bench: round {}/{runs}: the xtask's cold compile", round + 1);
        compiles.push(cold_compile(&scratch)?);
        for (i, (scenario, label)) in SCENARIOS.iter().enumerate() {
            eprintln!("bench: round {}/{runs}: {label}", round + 1);
            let mut extra_args: Vec<String> = Vec::new();
            let mut env: Vec<(String, String)> = Vec::new();
            match scenario {
                Scenario::Cold => {
                    // Layer cache off and a cache-mount namespace of its own: cold for this
                    // project only, without pruning anything another project relies on.
                    extra_args.push("--no-cache".into());
                    env.push((
                        "BUILDKIT_CACHE_MOUNT_NS".into(),
                        format!("{}{}-{round}", crate::usage::BENCH_NS_PREFIX, std::process::id()),
                    ));
                }
                Scenario::ColdExport => {
                    extra_args.extend(["--no-cache".into(), "--cache-export".into()]);
                    env.push((
                        "BUILDKIT_CACHE_MOUNT_NS".into(),
                        format!("{}export-{}-{round}", crate::usage::BENCH_NS_PREFIX, std::process::id()),
                    ));
                }
                Scenario::ColdFormer => {
                    // The cache export every build made before: mode=max to a local folder,
                    // BuildKit's default compression (gzip).
                    extra_args.push("--no-cache".into());
                    for n in &names {
                        let dest = former_cache.join(n);
                        extra_args.extend([
                            "--set".into(),
                            format!("{n}.cache-to=type=local,dest={},mode=max", dest.display()),
                        ]);
                    }
                    env.push((
                        "BUILDKIT_CACHE_MOUNT_NS".into(),
                        format!("{}former-{}-{round}", crate::usage::BENCH_NS_PREFIX, std::process::id()),
                    ));
                }
                Scenario::ColdIssue => {
                    extra_args.push("--no-cache".into());
                    env.push((
                        "BUILDKIT_CACHE_MOUNT_NS".into(),
                        format!("{}issue-{}-{round}", crate::usage::BENCH_NS_PREFIX, std::process::id()),
                    ));
                }
                Scenario::Warm | Scenario::Repeat => {}
                Scenario::Source => touch_sources(&scratch, round)?,
                Scenario::Deps => touch_manifests(&scratch, round)?,
                Scenario::Metadata => {
                    env.push(("SOURCE_DATE_EPOCH".into(), (1_700_000_000 + round * 86_400).to_string()))
                }
            }
            let dir = match (scenario, &issue) {
                (Scenario::ColdIssue, Some(tree)) => tree,
                (Scenario::ColdIssue, None) => continue,
                _ => &scratch,
            };
            let before = ids();
            let r = build(dir, &names, &extra_args, &env)?;
            engine = engine.or(r.engine.clone());
            let mut s = sample(&r);
            if *scenario == Scenario::Repeat {
                s.same_ids = Some(before == ids() && before.iter().all(|id| !id.is_empty()));
            }
            samples[i].push(s);
            if matches!(scenario, Scenario::Cold | Scenario::ColdExport | Scenario::ColdFormer | Scenario::ColdIssue) {
                std::fs::remove_dir_all(&former_cache).ok();
                if let Some(tree) = &issue {
                    std::fs::remove_dir_all(tree.join("target/buildx-cache")).ok();
                }
                // The next scenarios compare against a warm cache in the normal namespace.
                build(&scratch, &names, &[], &[])?;
            }
        }
    }
    let table = markdown(&names, runs, &samples, &compiles);
    let out = paths::xtask_dir().join("bench.md");
    write_atomic(&out, table.as_bytes())?;
    print!("{table}");
    eprintln!("bench: table written to {}", out.display());
    publish("builds", "Builds", engine.as_ref(), &table)?;
    std::fs::remove_dir_all(&scratch).ok();
    if let Some(tree) = issue {
        std::fs::remove_dir_all(tree).ok();
    }
    Ok(())
}

/// The commit issue 10 measured ("today's configuration": its Dockerfiles, and a bake file that
/// exports the mode=max cache, gzip, to a local folder on every build).
pub const ISSUE_COMMIT: &str = "8edd2d8";

/// A copy of the scratch tree with the images' recipe of `ISSUE_COMMIT` (backend/, frontend/,
/// docker-bake.hcl), built by today's xtask on the same bases; `None`, with a line, when this
/// clone lacks that commit. The old bake file gets the two variables today's xtask reads the
/// defaults of; its targets use neither.
fn issue_tree(scratch: &Path) -> Result<Option<PathBuf>> {
    let tree = PathBuf::from(format!("{}-issue", scratch.display()));
    let tar = PathBuf::from(format!("{}-issue.tar", scratch.display()));
    let archive = Cmd::new("git")
        .args(["archive", "--format=tar", "--output"])
        .arg(tar.display().to_string())
        .args([ISSUE_COMMIT, "backend", "frontend", "docker-bake.hcl"])
        .dir(paths::project_root());
    if runner::run_quiet(&archive).is_err() {
        eprintln!(
            "bench: commit {ISSUE_COMMIT} is not in this clone: the cold build at the issue's commit is left out"
        );
        return Ok(None);
    }
    runner::run(&Cmd::new("cp").args(["-a", &scratch.display().to_string(), &tree.display().to_string()]))?;
    for old in ["backend", "frontend", "docker-bake.hcl"] {
        let path = tree.join(old);
        if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) }
            .with_context(|| format!("replacing {}", path.display()))?;
    }
    let unpack =
        Cmd::new("tar").args(["-x", "-f"]).arg(tar.display().to_string()).args(["-C"]).arg(tree.display().to_string());
    runner::run_quiet(&unpack).context("unpacking the issue's recipe")?;
    std::fs::remove_file(&tar).ok();
    append(
        &tree.join("docker-bake.hcl"),
        "\nvariable \"SOURCE_URL\" {\n  default = \"\"\n}\n\nvariable \"SBOM_GENERATOR\" {\n  default = \"\"\n}\n",
    )?;
    Ok(Some(tree))
}

/// A scratch copy of the sources, one per benchmark run.
pub fn scratch_copy() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("xtask-bench-{}", std::process::id()));
    paths::copy_sources(&paths::project_root(), &dir).context("copying the sources for the benchmark")?;
    Ok(dir)
}

/// Seconds for `cargo build -p xtask` into an empty target folder: what every contributor waits
/// for before a first build (the crates already downloaded).
fn cold_compile(scratch: &Path) -> Result<f64> {
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

fn append(path: &Path, line: &str) -> Result<()> {
    let mut text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.push_str(line);
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// A mark no earlier build has seen: the engine's cache is content-addressed, so a change that
/// repeats an earlier run's content would be served from the cache and measure nothing.
fn nonce(round: usize) -> String {
    format!("{}-{}-{round}", std::process::id(), chrono::Utc::now().timestamp_micros())
}

fn touch_sources(dir: &Path, round: usize) -> Result<()> {
    let mark = nonce(round);
    append(&dir.join("backend/app/main.py"), &format!("\n# bench source change {mark}\n"))?;
    append(&dir.join("frontend/app/page.js"), &format!("\n// bench source change {mark}\n"))
}

/// A change to each dependency manifest that keeps it valid: a comment in requirements.txt, and
/// a new `description` in package.json (npm ci still agrees with the lock file).
fn touch_manifests(dir: &Path, round: usize) -> Result<()> {
    let mark = nonce(round);
    append(&dir.join("backend/requirements.txt"), &format!("# bench manifest change {mark}\n"))?;
    let path = dir.join("frontend/package.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    json["description"] = serde_json::Value::String(format!("bench manifest change {mark}"));
    std::fs::write(&path, serde_json::to_string_pretty(&json)? + "\n")?;
    Ok(())
}

pub fn build(dir: &Path, names: &[String], extra: &[String], env: &[(String, String)]) -> Result<BuildReport> {
    let exe = std::env::current_exe().context("finding the xtask binary")?;
    let cmd = Cmd::new(exe.display().to_string())
        .arg("build")
        .args(names.iter().cloned())
        .args(["--progress", "tty"])
        .args(extra.iter().cloned())
        .env("XTASK_PROJECT_ROOT", dir.display().to_string())
        .envs(env);
    runner::run_quiet(&cmd)?;
    let path = report::last_saved(&paths::reports_dir_in(dir))?;
    Ok(serde_json::from_str(&std::fs::read_to_string(&path)?)?)
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
        buildx: r.buildx_secs,
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

pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The bench's table as its section of `docs/benchmarks.md`, one section per bench and engine.
pub(crate) fn publish(kind: &str, title: &str, engine: Option<&crate::engine::EngineRecord>, table: &str) -> Result<()> {
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
    crate::bench_doc::write(&format!("{kind} {short}"), &format!("{title}: {short}"), &format!("Engine: {line}.\n\n{table}"))
}

pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| t.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()))
        .unwrap_or(0);
    format!("{cores} cores ({cpu}), {:.0} GiB", mem_kb as f64 / 1048576.0)
}

fn markdown(names: &[String], runs: usize, samples: &[Vec<Sample>], compiles: &[f64]) -> String {
    let mut cold_walls: Vec<f64> = samples[0].iter().map(|s| s.wall).collect();
    let cold = median(&mut cold_walls);
    let mut out = format!(
        "Bench of `{}`, {runs} run(s) per scenario, {} on {}.\n\n",
        names.join(" "),
        machine(),
        chrono::Utc::now().format("%Y-%m-%d")
    );
    out.push_str(
        "| scenario | median | spread | RUN steps re-run (median) | dependency steps re-run (max) | ratio to cold |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|\n");
    let mut verdicts = Vec::new();
    for ((scenario, label), s) in SCENARIOS.iter().zip(samples) {
        let mut walls: Vec<f64> = s.iter().map(|x| x.wall).collect();
        let med = median(&mut walls);
        let spread = walls.last().unwrap_or(&0.0) - walls.first().unwrap_or(&0.0);
        let mut runs_ex: Vec<f64> = s.iter().map(|x| x.run_executed as f64).collect();
        let deps = s.iter().map(|x| x.dep_steps_executed).max().unwrap_or(0);
        let ratio = if cold > 0.0 { med / cold } else { 0.0 };
        out.push_str(&if s.is_empty() {
            format!("| {label} | not run | | | | |\n")
        } else {
            format!(
                "| {label} | {med:.1} s | {spread:.1} s | {:.0} | {deps} | {:.1}% |\n",
                median(&mut runs_ex),
                ratio * 100.0
            )
        });
        let mut check =
            |ok: bool, text: String| verdicts.push(format!("- {} {text}", if ok { "met:" } else { "MISSED:" }));
        match scenario {
            Scenario::Warm => {
                check(ratio <= 0.05, format!("warm no-change rebuild is {:.1}% of cold (target <= 5%)", ratio * 100.0))
            }
            Scenario::Deps => check(
                ratio <= 0.50,
                format!("dependency-manifest change is {:.1}% of cold (target <= 50%)", ratio * 100.0),
            ),
            Scenario::ColdIssue if s.is_empty() => {
                verdicts.push("- not measured: the first recipe's commit is not in this clone".to_string())
            }
            Scenario::ColdIssue => check(
                ratio >= 1.0 / 0.6,
                format!(
                    "cold is {:.1}% of a cold build of the first recipe (target <= 60%)",
                    if ratio > 0.0 { 100.0 / ratio } else { 0.0 }
                ),
            ),
            Scenario::ColdFormer => check(
                ratio >= 1.0 / 0.6,
                format!(
                    "cold is {:.1}% of a cold build as configured before (target <= 60%)",
                    if ratio > 0.0 { 100.0 / ratio } else { 0.0 }
                ),
            ),
            Scenario::Source => {
                check(ratio <= 0.20, format!("source-only change is {:.1}% of cold (target <= 20%)", ratio * 100.0));
                check(deps == 0, format!("source-only change re-ran {deps} dependency step(s) (target 0)"));
            }
            Scenario::Metadata => {
                let max = s.iter().map(|x| x.run_executed).max().unwrap_or(0);
                check(max == 0, format!("metadata-only change re-ran {max} RUN step(s) (target 0)"));
            }
            Scenario::Repeat => {
                let kept = s.iter().filter(|x| x.same_ids == Some(true)).count();
                check(kept == s.len(), format!("a repeat build kept every image id in {kept} of {} run(s)", s.len()));
            }
            Scenario::ColdExport => verdicts.push(format!(
                "- the export adds {:.0}% to a cold build (it runs only with --cache-export, CI=true or a registry)",
                (ratio - 1.0) * 100.0
            )),
            _ => {}
        }
    }
    let mut compile = compiles.to_vec();
    let compile = median(&mut compile);
    verdicts.push(format!(
        "- {} the xtask's cold compile (`cargo build -p xtask`, empty target folder) has a median of {compile:.1} s (target <= 15 s)",
        if compile <= 15.0 { "met:" } else { "MISSED:" }
    ));
    let mut overhead: Vec<f64> = samples.iter().flatten().map(|s| s.wall - s.buildx).collect();
    let oh = median(&mut overhead);
    verdicts.push(format!(
        "- {} the xtask's own overhead (wall time minus buildx's) has a median of {oh:.2} s per build (target <= 0.2 s)",
        if oh <= 0.2 { "met:" } else { "MISSED:" }
    ));
    out.push('\n');
    out.push_str(&verdicts.join("\n"));
    out.push('\n');
    out
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

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }

    #[test]
    fn table_reports_ratios_and_missed_targets() {
        let s = |wall: f64, run: usize, dep: usize| Sample {
            wall,
            buildx: wall - 0.1,
            run_executed: run,
            dep_steps_executed: dep,
            same_ids: None,
        };
        let same = |ok: bool| Sample { same_ids: Some(ok), ..s(1.0, 0, 0) };
        let samples = vec![
            vec![s(100.0, 6, 3), s(110.0, 6, 3)],
            vec![s(140.0, 6, 3), s(150.0, 6, 3)],
            vec![s(200.0, 6, 3), s(190.0, 6, 3)],
            vec![s(250.0, 4, 3), s(250.0, 4, 3)],
            vec![s(3.0, 0, 0), s(4.0, 0, 0)],
            vec![same(true), same(false)],
            vec![s(30.0, 1, 1), s(30.0, 1, 1)],
            vec![s(60.0, 3, 2), s(62.0, 3, 2)],
            vec![s(2.0, 0, 0), s(2.0, 0, 0)],
        ];
        let md = markdown(&["backend".into()], 2, &samples, &[14.0, 17.0, 16.0]);
        assert!(md.contains("| warm, no change | 3.5 s | 1.0 s | 0 | 0 | 3.3% |"), "{md}");
        assert!(md.contains("met: warm no-change rebuild is 3.3% of cold"), "{md}");
        assert!(md.contains("MISSED: source-only change is 28.6% of cold"), "{md}");
        assert!(md.contains("MISSED: source-only change re-ran 1 dependency step(s)"), "{md}");
        assert!(md.contains("met: metadata-only change re-ran 0 RUN step(s)"), "{md}");
        assert!(md.contains("met: the xtask's own overhead"), "{md}");
        assert!(md.contains("MISSED: a repeat build kept every image id in 1 of 2 run(s)"), "{md}");
        assert!(md.contains("the export adds 38% to a cold build"), "{md}");
        assert!(md.contains("met: cold is 53.8% of a cold build as configured before"), "{md}");
        assert!(md.contains("MISSED: dependency-manifest change is 58.1% of cold"), "{md}");
        assert!(md.contains("met: cold is 42.0% of a cold build of the first recipe"), "{md}");
        let mut without_issue = samples.clone();
        without_issue[3].clear();
        let md2 = markdown(&["backend".into()], 2, &without_issue, &[14.0]);
        assert!(md2.contains("- not measured: the first recipe's commit is not in this clone"), "{md2}");
        assert!(!md2.contains("of a cold build of the first recipe"), "{md2}");
        assert!(md2.contains("which export on every build) | not run |"), "{md2}");
        assert!(
            md.contains(
                "MISSED: the xtask's cold compile (`cargo build -p xtask`, empty target folder) has a median of 16.0 s"
            ),
            "{md}"
        );
    }
}
