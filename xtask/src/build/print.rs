//! `cargo xtask print` and `--dry-run`: the resolved plan as a person reads it, with the exact
//! bake command to paste and the bake definition as buildx resolves it.

use anyhow::{Context, Result};

use crate::build::plan::Plan;
use crate::images::bake;
use crate::util::runner;

/// Prints the build's bake command as JSON (program, arguments, environment, folder, and the
/// variables it must not inherit): what a script or the bench runs to compare with the xtask.
pub(crate) fn print_json(plan: &Plan) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(&plan.bake())?);
    Ok(())
}

/// Prints the plan: what a person would paste, and the bake definition buildx resolves.
pub(crate) fn print_plan(plan: &Plan) -> Result<()> {
    println!("# targets: {} ({})", plan.targets.join(", "), plan.names.join(", "));
    println!(
        "# version {} from {}; commit {}; date {}",
        plan.metadata.version, plan.metadata.version_source, plan.metadata.git_commit, plan.metadata.build_date
    );
    for note in &plan.notes {
        println!("# note: {note}");
    }
    if plan.output == crate::build::plan::Output::Load {
        println!("# note: {}", crate::build::reproducible::LOAD_NOTE);
    }
    println!("# environment this command sets for buildx:");
    for (k, v) in plan.engine.env.iter().chain(&plan.vars) {
        println!("export {k}={}", runner::quote(v));
    }
    println!(
        "# build arguments from .env: {}",
        plan.build_args.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
    );
    println!("# the build (the xtask shows its progress as {} and keeps a report):", plan.progress);
    println!("cd {} && {}", runner::quote(&plan.root.display().to_string()), plan.bake().command_line());
    for (name, g) in &plan.definition.group {
        println!("# group {name}: {}", g.targets.join(", "));
    }
    for (name, t) in &plan.definition.target {
        let kinds = |entries: &[std::collections::BTreeMap<String, String>]| {
            entries.iter().map(|e| e.get("type").cloned().unwrap_or_default()).collect::<Vec<_>>().join("+")
        };
        println!(
            "# {name}: stage {}, platforms {}, tags {}, cache from {} to {}, attestations {}, output {}",
            t.target.as_deref().unwrap_or("(last)"),
            if t.platforms.is_empty() { "engine default".to_string() } else { t.platforms.join(",") },
            t.tags.join(","),
            kinds(&t.cache_from),
            if t.cache_to.is_empty() { "none (the engine's own cache)".to_string() } else { kinds(&t.cache_to) },
            match (t.attest.is_empty(), &plan.sbom_generator) {
                (true, _) => "none".to_string(),
                // The plan adds the SBOM to the targets the bake file attests.
                (false, Some(g)) => format!("{}+sbom (by {g})", kinds(&t.attest)),
                (false, None) => kinds(&t.attest),
            },
            if t.output.is_empty() { "from the command line".to_string() } else { kinds(&t.output) },
        );
    }
    println!("# the bake definition as buildx resolves it:");
    // The flags before the names: bake reads everything after the `--` that leads them as names.
    let mut print = bake::print_cmd(&plan.engine.docker(), &plan.vars, &[] as &[String]);
    let kept = resolvable_sets(plan);
    if kept.len() < plan.sets.len() {
        println!("# (without the OCI outputs: buildx opens their folder, which the build itself makes)");
    }
    for s in kept {
        print = print.args(["--set", s]);
    }
    let json = runner::read(&print.names(&plan.names)).context("resolving the bake definition")?;
    println!("{json}");
    Ok(())
}

/// The plan's `--set`s that `bake --print` can resolve now. buildx opens an OCI output's folder
/// while resolving, and on a fresh checkout `target/xtask/oci/` does not exist until the build
/// makes it (a dry run writes nothing): those sets are left out of the print, not the plan.
fn resolvable_sets(plan: &Plan) -> Vec<&String> {
    let missing = match &plan.output {
        crate::build::plan::Output::Oci(dir) if !dir.is_dir() => Some(dir.display().to_string()),
        _ => None,
    };
    plan.sets
        .iter()
        .filter(|s| {
            missing.as_ref().is_none_or(|dir| !(s.contains(".output=type=oci,") && s.contains(&format!("dest={dir}/"))))
        })
        .collect()
}
