//! `cargo xtask check`: BuildKit's own Dockerfile checks (`docker buildx bake --call check`) on
//! every target of the named groups, through the same plan as a build (stand-in bases, the
//! `# syntax` fallback, entitlements), with the result read target by target.

use anyhow::{bail, Context, Result};

use crate::build::plan::Plan;
use crate::util::runner;

/// The groups whose targets cover every stage the project builds.
pub const GROUPS: [&str; 3] = ["default", "development", "production"];

pub(crate) fn run(plan: &Plan) -> Result<()> {
    // A plan that is not a dry run always asked the engine (`plan::known_facts`).
    let facts = plan.facts.clone().context("the plan holds no answers from the engine")?;
    if !facts.capabilities().checks {
        bail!(
            "BuildKit's Dockerfile checks need BuildKit 0.15+ and buildx 0.15+; this engine has BuildKit {} and buildx {}: use `cargo xtask engine up --channel current`",
            facts.buildkit_version.map_or("unknown".to_string(), |v| v.to_string()),
            facts.buildx_version.map_or("unknown".to_string(), |v| v.to_string())
        );
    }
    let (status, out) = runner::run_kept(&plan.bake(), false).context("running BuildKit's Dockerfile checks")?;
    // The plan asks buildx for its progress as JSON, which is for the xtask to read; the checks'
    // own text is for the user.
    for line in out.lines().filter(|l| !l.starts_with('{')) {
        println!("{line}");
    }
    let verdict = verdict(&out, &plan.targets);
    match (status.success(), verdict) {
        (true, Ok(n)) => {
            println!("BuildKit's Dockerfile checks: {n} targets, no warnings");
            Ok(())
        }
        (_, Err(e)) => Err(e),
        (false, Ok(_)) => bail!("`docker buildx bake --call check` failed ({})", runner::describe(status)),
    }
}

/// Reads `--call check`'s report: each target's name on a line of its own, then either
/// "Check complete, no warnings found." or its warnings. Returns how many targets were clean.
pub(crate) fn verdict(out: &str, targets: &[String]) -> Result<usize> {
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    let mut dirty = Vec::new();
    let mut clean = 0;
    for t in targets {
        let Some(at) = lines.iter().position(|l| l == t) else {
            dirty.push(format!("{t}: no check result"));
            continue;
        };
        let result = lines[at + 1..].iter().find(|l| !l.is_empty()).copied().unwrap_or("");
        if result.starts_with("Check complete, no warnings found") {
            clean += 1;
        } else {
            dirty.push(format!("{t}: {result}"));
        }
    }
    if !dirty.is_empty() {
        bail!("BuildKit's Dockerfile checks found problems: {}", dirty.join("; "));
    }
    Ok(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_must_come_back_clean() {
        let targets = vec!["backend".to_string(), "frontend".to_string()];
        let clean = "#9 DONE 0.0s\nbackend\n\nCheck complete, no warnings found.\n\nfrontend\n\nCheck complete, no warnings found.\n";
        assert_eq!(verdict(clean, &targets).unwrap(), 2);
        let warned =
            "backend\n\nCheck complete, 1 warning has been found!\n\nfrontend\n\nCheck complete, no warnings found.\n";
        let err = verdict(warned, &targets).unwrap_err().to_string();
        assert!(err.contains("backend: Check complete, 1 warning has been found!"), "{err}");
        let missing = "backend\n\nCheck complete, no warnings found.\n";
        assert!(verdict(missing, &targets).unwrap_err().to_string().contains("frontend: no check result"));
    }
}
