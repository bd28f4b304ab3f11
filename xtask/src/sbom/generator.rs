//! The project's own SBOM generator image (`sbom/`, the bake target `sbom-generator`): its
//! reference, read from the bake file; the attestation the production targets ask for with it;
//! and building it into the engine before a build that needs it (a provision step).

use std::path::Path;

use anyhow::{Context, Result};

use crate::bake;
use crate::plan::Plan;
use crate::runner;

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
/// BuildKit 0.16 and later hand the generator each further key as `BUILDKIT_SCAN_<key>` (earlier
/// ones ignore them): the image's name for the SBOM's root package, and the build date for its
/// `created` (the generator sees only the image's files, which carry neither).
pub fn attest(generator: &str, image: &str, build_date: &str) -> String {
    format!("type=sbom,generator={generator},image={image},build_date={build_date}")
}

/// The image's name without registry or tag (`127.0.0.1:5000/contextcleanse-backend:1.2.3` gives
/// `contextcleanse-backend`), from a target's first tag; else the target's name.
pub fn image_name(target: &str, tags: &[String]) -> String {
    let Some(tag) = tags.first() else { return target.to_string() };
    let last = tag.rsplit('/').next().unwrap_or(tag);
    last.split([':', '@']).next().unwrap_or(last).to_string()
}

/// Eight hex digits of the generator's recipe (its Dockerfile and scanner).
fn recipe(root: &Path) -> Result<String> {
    let mut bytes = Vec::new();
    for file in RECIPE_FILES {
        let path = root.join(file);
        bytes.extend(std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?);
        bytes.push(0);
    }
    Ok(format!("{:08x}", crate::standin::fnv1a(bytes) >> 32))
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
    let generator = reference(&crate::paths::project_root())
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
        let root = crate::paths::project_root();
        assert_eq!(reference(&root).unwrap().as_deref(), Some("localhost/contextcleanse-sbom:dev"));
        assert_eq!(attest("g:1", "i", "2026-01-01T00:00:00Z"), "type=sbom,generator=g:1,image=i,build_date=2026-01-01T00:00:00Z");
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(image_name("backend", &tags(&["127.0.0.1:5000/contextcleanse-backend:1.2.3"])), "contextcleanse-backend");
        assert_eq!(image_name("backend", &tags(&["contextcleanse-backend:dev", "x:y"])), "contextcleanse-backend");
        assert_eq!(image_name("backend", &[]), "backend");
        assert_eq!(recipe(&root).unwrap().len(), 8);
    }
}
