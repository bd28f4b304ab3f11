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
pub(crate) fn reference(root: &Path) -> Result<Option<String>> {
    Ok(named_in(&bake::Defaults::read(root)?))
}

/// As [`reference`], from bake file defaults already read.
pub(crate) fn named_in(defaults: &bake::Defaults) -> Option<String> {
    defaults.get(VARIABLE).filter(|g| !g.is_empty())
}

/// The attestation each production target gets beside the provenance the bake file asks for.
/// BuildKit 0.16 and later hand the generator each further key as `BUILDKIT_SCAN_<key>` (earlier
/// ones ignore them): the image's name for the SBOM's root package, and the build date for its
/// `created` (the generator sees only the image's files, which carry neither).
pub(crate) fn attest(generator: &str, image: &str, build_date: &str) -> String {
    format!("type=sbom,generator={generator},image={image},build_date={build_date}")
}

/// The image's name without registry or tag (`127.0.0.1:5000/contextcleanse-backend:1.2.3` gives
/// `contextcleanse-backend`), from a target's first tag; else the target's name.
pub(crate) fn image_name(target: &str, tags: &[String]) -> String {
    let Some(tag) = tags.first() else { return target.to_string() };
    let last = tag.rsplit('/').next().unwrap_or(tag);
    last.split([':', '@']).next().unwrap_or(last).to_string()
}

/// `doctor`'s line: whether production images get an SBOM on this builder, and with what.
pub(crate) fn doctor_line(engine: &crate::engine::Engine, attestations: bool, builder: &str) -> Result<String, String> {
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
        assert_eq!(
            attest("g:1", "i", "2026-01-01T00:00:00Z"),
            "type=sbom,generator=g:1,image=i,build_date=2026-01-01T00:00:00Z"
        );
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            image_name("backend", &tags(&["127.0.0.1:5000/contextcleanse-backend:1.2.3"])),
            "contextcleanse-backend"
        );
        assert_eq!(image_name("backend", &tags(&["contextcleanse-backend:dev", "x:y"])), "contextcleanse-backend");
        assert_eq!(image_name("backend", &[]), "backend");
    }
}
