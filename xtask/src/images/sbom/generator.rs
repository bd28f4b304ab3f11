//! The project's own SBOM generator image (`sbom/`, the bake target `sbom-generator`): its
//! reference, read from the bake file; the attestation the production targets ask for with it;
//! and building it into the engine before a build that needs it (a provision step).

use std::path::Path;

use anyhow::{Context, Result};

use crate::images::bake;
use crate::build::plan::Plan;
use crate::util::runner;

/// The bake variable whose default names the generator image.
const VARIABLE: &str = "SBOM_GENERATOR";
/// The label that carries the fingerprint of the recipe an image was made from.
const LABEL: &str = "org.contextcleanse.sbom.recipe";
/// What the generator image is made from, under the project root.
const RECIPE_FILES: [&str; 2] = ["sbom/Dockerfile", "sbom/scan.py"];

/// The generator's reference: the bake file's default of SBOM_GENERATOR; None for a bake file
/// without it (a commit from before SBOMs, which `verify` rebuilds as it was).
pub fn reference(root: &Path) -> Result<Option<String>> {
    Ok(named_in(&bake::Defaults::read(root)?))
}

/// As [`reference`], from bake file defaults already read.
pub fn named_in(defaults: &bake::Defaults) -> Option<String> {
    defaults.get(VARIABLE).filter(|g| !g.is_empty())
}

/// The attestation each production target gets beside the provenance the bake file asks for.
pub fn attest(generator: &str) -> String {
    format!("type=sbom,generator={generator}")
}

/// Eight hex digits of the generator's recipe (its Dockerfile and scanner).
fn recipe(root: &Path) -> Result<String> {
    let mut bytes = Vec::new();
    for file in RECIPE_FILES {
        let path = root.join(file);
        bytes.extend(std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?);
        bytes.push(0);
    }
    Ok(format!("{:08x}", crate::images::standin::fnv1a(bytes) >> 32))
}

/// Builds the generator into the engine's store unless it holds one made from the same recipe:
/// BuildKit resolves the `generator=` image from there without a pull. The plan names it only
/// when the builder can attach attestations, so nothing is built otherwise. Returns a line to
/// show when it built one.
pub fn provision(plan: &Plan) -> Result<Option<String>> {
    let Some(generator) = &plan.sbom_generator else { return Ok(None) };
    let recipe = recipe(&plan.root)?;
    let inspect = plan.engine.docker().args([
        "image",
        "inspect",
        "--format",
        &format!("{{{{index .Config.Labels \"{LABEL}\"}}}}"),
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

/// `doctor`'s line: whether production images get an SBOM on this builder, and with what.
pub fn doctor_line(engine: &crate::engine::Engine, attestations: bool, builder: &str) -> Result<String, String> {
    if !attestations {
        return Err(format!("left out with the provenance: this builder ({builder}) cannot attach attestations (the containerd image store can)"));
    }
    let generator = reference(&crate::util::paths::project_root())
        .map_err(|e| format!("{e:#}"))?
        .ok_or_else(|| format!("none: the bake file names no generator ({VARIABLE})"))?;
    let state = if engine.has_image(&generator) { "in the engine" } else { "built from sbom/ before the first one" };
    Ok(format!("production and multiplatform attach one per image and platform, made by {generator} ({state})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_named_once_in_the_bake_file() {
        let root = crate::util::paths::project_root();
        assert_eq!(reference(&root).unwrap().as_deref(), Some("localhost/contextcleanse-sbom:dev"));
        assert_eq!(attest("g:1"), "type=sbom,generator=g:1");
        assert_eq!(recipe(&root).unwrap().len(), 8);
    }
}
