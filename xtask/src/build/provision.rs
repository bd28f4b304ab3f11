//! Changing the world so a plan can run: the private engine started when none answers, the
//! stand-in base images made when neither the official images nor stand-ins can be had, and the
//! files the plan builds from written. A dry run calls none of this (see `build::run`).

use std::path::Path;

use anyhow::{Context, Result};

use crate::build::inputs::Inputs;
use crate::build::plan::{Output, Plan};
use crate::engine::{self, Engine};
use crate::images::{standin, standin_share};
use crate::settings::Settings;
use crate::util::paths::write_atomic;
use crate::util::runner;

/// The engine that answers, or the project's private one, started now.
pub(crate) fn engine(settings: &Settings) -> Result<Engine> {
    engine::connect(settings, true)
}

/// Gets the stand-ins the inputs found missing: pulled from the cache registry when another
/// engine shared them there, else made (a few minutes, once per engine and recipe). With a cache
/// registry that answers, the stand-ins this engine holds are shared through it in turn. Only the
/// platforms this command builds are made (see `standin_platforms`).
pub(crate) fn standins(inputs: &mut Inputs, registry: Option<&str>) -> Result<()> {
    let shared = registry.filter(|r| !inputs.bases.standin_images.is_empty() && standin_share::answers(r));
    let bases = &mut inputs.bases;
    if let Some(r) = shared {
        let platforms = bases.platforms.clone();
        let mut pulled = Vec::new();
        for (official, standin) in &bases.standin_images {
            if !bases.missing.contains(official) {
                continue;
            }
            match standin_share::pull(&inputs.engine, r, standin, &platforms) {
                Ok(true) => pulled.push(official.clone()),
                Ok(false) => {}
                Err(e) => bases.notes.push(format!("{e:#}; making it here instead")),
            }
        }
        bases.missing.retain(|m| !pulled.contains(m));
        if !pulled.is_empty() {
            bases.notes.push(format!("stand-ins for {} pulled from {r}", pulled.join(", ")));
        }
    }
    if !bases.missing.is_empty() {
        eprintln!("xtask: {}", bases.making_line());
        standin::make_standins(&inputs.engine, &bases.platforms)?;
        bases.missing.clear();
    }
    if let Some(r) = shared {
        for (_, standin) in &bases.standin_images {
            match standin_share::push(&inputs.engine, r, standin) {
                Ok(true) => bases.notes.push(format!("stand-in {standin} pushed to {r} for other engines")),
                Ok(false) => {}
                Err(e) => bases.notes.push(format!("the stand-ins are not shared through {r}: {e:#}")),
            }
        }
    }
    Ok(())
}

/// Builds the SBOM generator the plan attests with, when the engine lacks it.
pub(crate) fn sbom_generator(plan: &Plan) -> Result<()> {
    // Most builds attest nothing: no phase is timed (nor its record written) for them.
    if plan.sbom_generator.is_none() {
        return Ok(());
    }
    let phase = crate::util::progress::Phase::start("SBOM generator: checking or building it", None);
    if let Some(line) = build_sbom_generator(plan)? {
        eprintln!("xtask: {line}");
    }
    phase.done();
    Ok(())
}

/// The label that carries the fingerprint of the recipe the SBOM generator image was made from.
const RECIPE_LABEL: &str = "org.contextcleanse.sbom.recipe";
/// What the generator image is made from, under the project root.
const RECIPE_FILES: [&str; 2] = ["sbom/Dockerfile", "sbom/scan.py"];

/// Eight hex digits of the generator's recipe (its Dockerfile and scanner).
fn recipe(root: &Path) -> Result<String> {
    let mut bytes = Vec::new();
    for file in RECIPE_FILES {
        let path = root.join(file);
        bytes.extend(std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?);
        bytes.push(0);
    }
    Ok(format!("{:08x}", crate::util::hash::fnv1a(bytes) >> 32))
}

/// Builds the generator into the engine's store unless it holds one made from the same recipe:
/// BuildKit resolves the `generator=` image from there without a pull. The plan names it only
/// when the builder can attach attestations, so nothing is built otherwise. Returns a line to
/// show when it built one.
fn build_sbom_generator(plan: &Plan) -> Result<Option<String>> {
    let Some(generator) = &plan.sbom_generator else { return Ok(None) };
    let recipe = recipe(&plan.root)?;
    let inspect = plan.engine.docker().args([
        "image",
        "inspect",
        "--format",
        &format!("{{{{index .Config.Labels \"{RECIPE_LABEL}\"}}}}"),
        generator,
    ]);
    if runner::read(&inspect).is_ok_and(|found| found.trim() == recipe) {
        return Ok(None);
    }
    let mut bake = plan.engine.docker().envs(&plan.vars).dir(&plan.root).args([
        "buildx",
        "bake",
        "--file",
        "docker-bake.hcl",
        "--progress",
        "plain",
        "--load",
    ]);
    if let Some(b) = &plan.builder {
        bake = bake.args(["--builder", b]);
    }
    let bake = bake.args(["--set", &format!("sbom-generator.args.RECIPE={recipe}"), "sbom-generator"]);
    runner::run_quiet(&bake).with_context(|| format!("building the SBOM generator {generator} (sbom/)"))?;
    Ok(Some(format!("built the SBOM generator {generator} from sbom/ (recipe {recipe})")))
}

/// Drops the engine's kept copies of build contexts when the plan says so, so that the contexts
/// are sent whole and key their steps as any other engine's would. A prune that fails costs a
/// note, never the build.
pub(crate) fn fresh_contexts(plan: &Plan) {
    if !plan.fresh_contexts {
        return;
    }
    let prune = plan.engine.docker().args(["builder", "prune", "--force", "--filter", "type=source.local"]);
    if let Err(e) = runner::run_quiet(&prune) {
        eprintln!("xtask: the engine's kept build contexts were not dropped ({e:#}); another engine may miss this build's registry cache for the steps that read them");
    }
}

/// Writes the Dockerfile copies the plan builds from and makes the OCI archives' folder.
pub(crate) fn files(plan: &Plan) -> Result<()> {
    for (path, text) in &plan.files {
        write_atomic(path, text.as_bytes())?;
    }
    if let Output::Oci(dir) = &plan.output {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_generator_recipe_is_eight_hex_digits() {
        let recipe = super::recipe(&crate::util::paths::project_root()).unwrap();
        assert_eq!(recipe.len(), 8);
        assert!(recipe.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
