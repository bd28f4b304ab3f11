//! The project's own SBOM generator image (`sbom/`, the bake target `sbom-generator`): its
//! reference, read from the bake file, and the attestation the production targets ask for with it.
//! Building it into the engine is a provision step (`build::provision`).

use std::path::Path;

use anyhow::Result;

use crate::images::bake;

/// The bake variable whose default names the generator image.
const VARIABLE: &str = "SBOM_GENERATOR";

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
    }
}
