//! `cargo xtask bench --second-engine`: what a second engine with an empty store (a CI runner, a
//! colleague's machine) gains from the first engine's registry cache. The first engine exports
//! its mode=max cache to its registry; a private engine named `bench-second` (same channel,
//! started for the bench, stopped after it) then builds the same sources from that cache, and
//! cold (`--no-cache`, empty cache mounts, no cache export). Writes
//! `target/xtask/bench-second-engine.md`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::commands::bench::{self, median};
use crate::engine::{self, Engine, Layout, Spec};
use crate::images::standin::BASES;
use crate::images::standin_share;
use crate::report::BuildReport;
use crate::settings::Settings;
use crate::util::paths::{self, write_atomic};
use crate::util::runner::{self, Cmd};

const NAME: &str = "bench-second";

/// One build of the second engine.
struct Sample {
    wall: f64,
    steps: usize,
    cached: usize,
    digests: Vec<(String, Option<String>)>,
}

impl Sample {
    fn of(r: &BuildReport) -> Sample {
        Sample {
            wall: r.wall_secs,
            steps: r.targets.iter().map(|t| t.steps).sum(),
            cached: r.targets.iter().map(|t| t.cached).sum(),
            digests: r.targets.iter().map(|t| (t.name.clone(), t.digest.clone())).collect(),
        }
    }
}

/// Stops the bench's engine however the bench ends.
struct Stop;

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = runner::run_quiet(&xtask().args(["engine", "down", "--name", NAME]));
    }
}

fn xtask() -> Cmd {
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "cargo-xtask".into());
    Cmd::new(exe)
}

pub fn run(names: &[String], runs: usize) -> Result<()> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let names: Vec<String> = if names.is_empty() { vec!["backend".into(), "frontend".into()] } else { names.to_vec() };
    let settings = Settings::load()?;
    let first = engine::connect(&settings, true)?;
    let Some(spec) = first.spec else {
        bail!("bench --second-engine starts a private engine beside the first: run it on a private engine (`cargo xtask engine up`, then `eval \"$(cargo xtask engine env)\"`)");
    };
    let registry = format!("{}/bench-second-engine", first.registry_addr());
    if !standin_share::answers(&registry) {
        bail!(
            "the first engine's registry {} does not answer: `cargo xtask engine up` starts it",
            first.registry_addr()
        );
    }
    let from_cache_dir = bench::scratch_copy()?;
    let cold_dir = PathBuf::from(format!("{}-cold", from_cache_dir.display()));
    runner::run(&Cmd::new("cp").args(["-a", &from_cache_dir.display().to_string(), &cold_dir.display().to_string()]))?;
    // The scratch copies have no .git: the commit's time dates every build, as it would a checkout.
    let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(e) => e,
        Err(_) => runner::read(&Cmd::new("git").args(["log", "-1", "--format=%ct"]).dir(paths::project_root()))
            .context("reading the commit time")?,
    };
    let with_registry =
        vec![("REGISTRY".to_string(), registry.clone()), ("SOURCE_DATE_EPOCH".to_string(), epoch.clone())];
    eprintln!("bench: the first engine exports its cache to {registry}");
    let first_report = bench::build(&from_cache_dir, &names, &[], &with_registry)?;
    let (stop, layout, second) = start_second(spec, &registry)?;
    let client = layout.client_env();
    let mut from_cache = Vec::new();
    let mut cold = Vec::new();
    for round in 0..runs {
        eprintln!("bench: round {}/{runs}: second engine from the registry cache", round + 1);
        empty_store(&second)?;
        let env: Vec<(String, String)> = client.iter().cloned().chain(with_registry.iter().cloned()).collect();
        // It reads the registry cache and writes none back: every round reads what the first
        // engine exported, not what the round before wrote over it.
        let no_export = ["--set", "*.cache-to="].map(String::from);
        from_cache.push(Sample::of(&bench::build(&from_cache_dir, &names, &no_export, &env)?));
        eprintln!("bench: round {}/{runs}: second engine cold", round + 1);
        empty_store(&second)?;
        let mut env = client.clone();
        env.push(("SOURCE_DATE_EPOCH".into(), epoch.clone()));
        env.push(("BUILDKIT_CACHE_MOUNT_NS".into(), format!("bench-second-cold-{}-{round}", std::process::id())));
        let cold_args: Vec<String> = ["--no-cache".to_string()].into_iter().chain(no_export).collect();
        cold.push(Sample::of(&bench::build(&cold_dir, &names, &cold_args, &env)?));
    }
    drop(stop);
    let first_digests = Sample::of(&first_report).digests;
    let table = markdown(&names, runs, &from_cache, &cold, &first_digests);
    let out = paths::xtask_dir().join("bench-second-engine.md");
    write_atomic(&out, table.as_bytes())?;
    print!("{table}");
    eprintln!("bench: table written to {}", out.display());
    bench::publish("second-engine", "A second engine from the registry cache", first_report.engine.as_ref(), &table)?;
    for dir in [from_cache_dir, cold_dir] {
        std::fs::remove_dir_all(dir).ok();
    }
    Ok(())
}

/// Starts the bench's second engine with an empty store and pulls the stand-in bases into it, as
/// a runner would pull them: they are part of neither measured build. The engine stops when the
/// returned guard is dropped.
fn start_second(spec: Spec, registry: &str) -> Result<(Stop, Layout, Engine)> {
    eprintln!("bench: starting the private engine `{NAME}` with an empty store");
    let _ = runner::run_quiet(&xtask().args(["engine", "down", "--name", NAME]));
    let data = paths::engine_dir().join(NAME).join("data");
    if data.exists() {
        std::fs::remove_dir_all(&data).with_context(|| format!("emptying {}", data.display()))?;
    }
    let mut up = xtask().args(["engine", "up", "--name", NAME, "--channel", &spec.channel.to_string()]);
    if spec.classic {
        up = up.arg("--classic");
    }
    runner::run_quiet(&up).context("starting the bench's second engine")?;
    let stop = Stop;
    let layout = Layout::open(NAME)?;
    let second = layout.engine(false);
    // The bases come first, as a runner would pull them; they are not part of either build.
    let platforms = crate::images::standin_platforms::all(!spec.classic);
    for base in &BASES {
        if !standin_share::pull(&second, &registry, &base.standin(), &platforms)? && !second.has_image(&base.standin())
        {
            bail!(
                "{registry} has no stand-in {}: build once on the first engine with REGISTRY={registry}",
                base.standin()
            );
        }
    }
    Ok((stop, layout, second))
}

/// Removes every image but the stand-ins, and all build cache: the store of an engine that has
/// only pulled its bases.
fn empty_store(engine: &Engine) -> Result<()> {
    let listed = runner::read(&engine.docker().args(["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]))?;
    let built: Vec<String> = listed
        .lines()
        .filter(|i| !i.starts_with("localhost/standin-") && !i.contains("<none>"))
        .map(String::from)
        .collect();
    if !built.is_empty() {
        runner::run_quiet(&engine.docker().args(["image", "rm", "--force"]).args(built))?;
    }
    runner::run_quiet(&engine.docker().args(["builder", "prune", "--all", "--force"]))?;
    Ok(())
}

fn markdown(
    names: &[String],
    runs: usize,
    from_cache: &[Sample],
    cold: &[Sample],
    first: &[(String, Option<String>)],
) -> String {
    let med = |s: &[Sample]| median(&mut s.iter().map(|x| x.wall).collect::<Vec<_>>());
    let spread = |s: &[Sample]| {
        let walls: Vec<f64> = s.iter().map(|x| x.wall).collect();
        walls.iter().cloned().fold(f64::MIN, f64::max) - walls.iter().cloned().fold(f64::MAX, f64::min)
    };
    let (c, k) = (med(from_cache), med(cold));
    let ratio = if k > 0.0 { c / k } else { 0.0 };
    let steps: usize = from_cache.iter().map(|s| s.steps).min().unwrap_or(0);
    let cached: usize = from_cache.iter().map(|s| s.cached).min().unwrap_or(0);
    let share = if steps > 0 { cached as f64 / steps as f64 } else { 0.0 };
    let mut out = format!(
        "Bench of a second engine, `{}`, {runs} run(s) per scenario, {} on {}.\n\n",
        names.join(" "),
        bench::machine(),
        chrono::Utc::now().format("%Y-%m-%d")
    );
    out.push_str("| scenario (second engine, empty store, stand-ins pulled) | median | spread | steps cached | ratio to its cold |\n");
    out.push_str("|---|---:|---:|---:|---:|\n");
    let cold_cached: usize = cold.iter().map(|s| s.cached).max().unwrap_or(0);
    let cold_steps: usize = cold.iter().map(|s| s.steps).max().unwrap_or(0);
    out.push_str(&format!(
        "| from the first engine's registry cache | {c:.1} s | {:.1} s | {cached}/{steps} | {:.1}% |\n",
        spread(from_cache),
        ratio * 100.0
    ));
    out.push_str(&format!(
        "| cold (no cache, empty cache mounts, no cache export) | {k:.1} s | {:.1} s | {cold_cached}/{cold_steps} | 100.0% |\n\n",
        spread(cold)
    ));
    let verdict = |ok: bool| if ok { "met:" } else { "MISSED:" };
    out.push_str(&format!(
        "- {} from the registry cache in {:.1}% of its cold build (target <= 25%)\n",
        verdict(ratio <= 0.25),
        ratio * 100.0
    ));
    out.push_str(&format!(
        "- {} {:.0}% of steps came from the registry cache (target >= 90%)\n",
        verdict(share >= 0.9),
        share * 100.0
    ));
    let same = from_cache.iter().all(|s| same_digests(&s.digests, first));
    out.push_str(&format!("- {} the same digests as the first engine's build (target: equal)\n", verdict(same)));
    out
}

fn same_digests(a: &[(String, Option<String>)], b: &[(String, Option<String>)]) -> bool {
    !a.is_empty() && a.len() == b.len() && a.iter().all(|x| x.1.is_some() && b.contains(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(wall: f64, cached: usize, digest: &str) -> Sample {
        Sample { wall, steps: 18, cached, digests: vec![("backend".into(), Some(digest.into()))] }
    }

    #[test]
    fn table_names_the_ratio_the_cached_share_and_the_digests() {
        let first = vec![("backend".to_string(), Some("sha256:a".to_string()))];
        let md = markdown(
            &["backend".into()],
            2,
            &[s(5.0, 18, "sha256:a"), s(7.0, 18, "sha256:a")],
            &[s(40.0, 0, "x"), s(40.0, 0, "y")],
            &first,
        );
        assert!(md.contains("| from the first engine's registry cache | 6.0 s | 2.0 s | 18/18 | 15.0% |"), "{md}");
        assert!(md.contains("met: from the registry cache in 15.0% of its cold build"), "{md}");
        assert!(md.contains("met: 100% of steps came from the registry cache"), "{md}");
        assert!(md.contains("met: the same digests"), "{md}");
        let md = markdown(&["backend".into()], 1, &[s(20.0, 15, "sha256:b")], &[s(40.0, 0, "x")], &first);
        assert!(md.contains("MISSED: from the registry cache in 50.0%") && md.contains("MISSED: 83% of steps"), "{md}");
        assert!(md.contains("MISSED: the same digests"), "{md}");
    }
}
