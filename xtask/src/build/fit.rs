//! Fitting a resolved bake definition to the builder at hand: what the builder cannot do is left
//! out with a line saying so (cache export, attestations) or refused before anything runs
//! (several platforms, OCI archives), and the filesystem entitlements bake checks are granted
//! exactly. A pure function of the definition, the builder's capabilities and the paths.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use super::entitlements::{self, Granted};
use crate::engine::{Capabilities, Facts};
use crate::images::bake::Definition;

/// What the plan adds to the bake command for this builder.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Fit {
    /// `--set` overrides that leave out what the builder cannot do.
    pub(crate) sets: Vec<String>,
    /// `--allow` entitlements, each naming one path outside the working folder.
    pub(crate) allow: Vec<String>,
    pub(crate) notes: Vec<String>,
    /// The SBOM generator the attesting targets name, when they get an SBOM.
    pub(crate) sbom_generator: Option<String>,
}

/// What the builder is asked to do besides the definition itself.
pub(crate) struct Asked<'a> {
    /// The folder bake runs in: paths inside it need no entitlement.
    pub(crate) root: &'a Path,
    /// `--oci`: the folder the archives go to.
    pub(crate) oci_dir: Option<&'a Path>,
    /// One line naming the builder, for messages ("docker driver, classic image store").
    pub(crate) builder: &'a str,
    /// The SBOM generator to attest with beside the provenance (none for `--call check`).
    pub(crate) sbom: Option<&'a str>,
    /// The build date (RFC 3339), the SBOMs' `created`.
    pub(crate) build_date: &'a str,
    /// The CA bundle the build mounts, granted for reading by the xtask itself.
    pub(crate) ca_bundle: Option<&'a Path>,
    /// The project's own folders under `target/`, granted by the xtask itself.
    pub(crate) own: &'a [PathBuf],
    /// `--allow` values the person gave.
    pub(crate) allow: &'a [String],
}

pub(crate) fn fit(def: &Definition, caps: &Capabilities, asked: &Asked) -> Result<Fit> {
    let mut fit = Fit::default();
    let multi: Vec<&String> = def.target.iter().filter(|(_, t)| t.platforms.len() > 1).map(|(n, _)| n).collect();
    if !multi.is_empty() && !caps.multi_platform {
        bail!("{}", multiplatform_refusal(asked.builder));
    }
    if asked.oci_dir.is_some() && !caps.oci_export {
        bail!("--oci needs a builder that exports OCI archives, and this one ({}) cannot: turn on the containerd image store, or use `cargo xtask engine up --channel current`", asked.builder);
    }
    let exporting: Vec<&String> = def.target.iter().filter(|(_, t)| !t.cache_to.is_empty()).map(|(n, _)| n).collect();
    if !exporting.is_empty() && !caps.cache_export {
        fit.sets.extend(exporting.iter().map(|t| format!("{t}.cache-to=")));
        fit.notes.push(format!(
            "cache export left out: this builder ({}) cannot export caches; the engine's own layer cache still serves rebuilds",
            asked.builder
        ));
    }
    let attesting: Vec<&String> = def.target.iter().filter(|(_, t)| !t.attest.is_empty()).map(|(n, _)| n).collect();
    if !attesting.is_empty() && !caps.attestations {
        fit.sets.extend(attesting.iter().map(|t| format!("{t}.attest=type=provenance,disabled=true")));
        fit.notes.push(format!(
            "provenance attestation left out, and the SBOM with it: this builder ({}) cannot attach attestations",
            asked.builder
        ));
    } else if let (false, Some(generator)) = (attesting.is_empty(), asked.sbom) {
        // The targets the bake file attests (the production ones) get an SBOM too; bake adds a
        // `--set` attestation to the file's own.
        fit.sets.extend(attesting.iter().map(|t| {
            let image = crate::images::sbom::generator::image_name(t, &def.target[*t].tags);
            format!("{t}.attest={}", crate::images::sbom::generator::attest(generator, &image, asked.build_date))
        }));
        fit.notes.push(format!("SBOM attestation made by {generator} (the project's generator, sbom/)"));
        fit.sbom_generator = Some(generator.to_string());
    }
    // Checked on every builder: a path outside the checkout is the xtask's to refuse, whether or
    // not this buildx checks entitlements itself (before 0.19 it has no `--allow` for paths).
    let found = entitlements::outside(def, caps.cache_export, asked.oci_dir, asked.root);
    let granted = Granted { root: asked.root, ca_bundle: asked.ca_bundle, own: asked.own, by_user: asked.allow };
    let allow = entitlements::grant(&found, &granted)?;
    if caps.fs_entitlements {
        fit.allow = allow;
    }
    Ok(fit)
}

/// The one line `multiplatform` and `doctor` give when the builder cannot hold two platforms.
pub(crate) fn multiplatform_refusal(builder: &str) -> String {
    format!("multiplatform needs a builder that can build several platforms into one image, and this one ({builder}) cannot: turn on the containerd image store (`\"features\": {{\"containerd-snapshotter\": true}}` in daemon.json), or create a docker-container builder (`docker buildx create --use --driver docker-container`, which pulls moby/buildkit), or use `cargo xtask engine up --channel current`")
}

/// The doctor's check of the store and QEMU, for a linux/amd64 + linux/arm64 build.
pub(crate) fn check_multiplatform(f: &Facts, platforms: &[String]) -> Result<()> {
    if !f.capabilities().multi_platform {
        bail!("{}", multiplatform_refusal(&f.builder_line()));
    }
    check_emulation(f, platforms)
}

/// A build for several platforms needs each one registered with binfmt_misc (the store was
/// already checked by [`fit`]).
pub(crate) fn check_emulation(f: &Facts, platforms: &[String]) -> Result<()> {
    let missing: Vec<&str> =
        platforms.iter().map(String::as_str).filter(|p| !f.platforms.iter().any(|q| q == p)).collect();
    if !missing.is_empty() {
        bail!(
            "the builder cannot build {}: register QEMU with binfmt_misc (`cargo xtask engine up` does, or `docker run --privileged --rm tonistiigi/binfmt --install arm64`)",
            missing.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::bake::Target;

    fn caps(full: bool, entitlements: bool) -> Capabilities {
        Capabilities {
            cache_export: full,
            multi_platform: full,
            oci_export: full,
            attestations: full,
            fs_entitlements: entitlements,
            history: entitlements,
            checks: entitlements,
            ..Capabilities::default()
        }
    }

    fn def(platforms: usize, attest: bool) -> Definition {
        let entry = |s: &str| crate::images::bake::parse_csv(s);
        let mut d = Definition::default();
        let t = Target {
            platforms: ["linux/amd64", "linux/arm64"][..platforms].iter().map(|p| p.to_string()).collect(),
            cache_from: vec![entry("type=local,src=target/buildx-cache/backend")],
            cache_to: vec![entry("type=local,dest=target/buildx-cache/backend,mode=max")],
            attest: if attest { vec![entry("type=provenance,mode=min")] } else { vec![] },
            secret: vec![entry("id=cacert,src=/etc/ssl/certs/ca-certificates.crt")],
            ..Target::default()
        };
        d.target.insert("backend".to_string(), t);
        d
    }

    fn asked<'a>(oci: Option<&'a Path>) -> Asked<'a> {
        Asked {
            root: Path::new("/src/cc"),
            oci_dir: oci,
            builder: "docker driver, classic image store",
            sbom: None,
            build_date: "2026-01-01T00:00:00Z",
            ca_bundle: Some(Path::new("/etc/ssl/certs/ca-certificates.crt")),
            own: &[],
            allow: &[],
        }
    }

    #[test]
    fn classic_store_drops_cache_export_and_attestations_with_a_note_each() {
        let fit = fit(&def(1, true), &caps(false, false), &asked(None)).unwrap();
        assert_eq!(fit.sets, ["backend.cache-to=", "backend.attest=type=provenance,disabled=true"]);
        assert_eq!(fit.notes.len(), 2);
        assert!(fit.notes[0].starts_with("cache export left out"), "{:?}", fit.notes);
        let full = super::fit(&def(1, true), &caps(true, false), &asked(None)).unwrap();
        assert_eq!(full, Fit::default());
        let sbom = Asked { sbom: Some("g:1"), ..asked(None) };
        let fit = super::fit(&def(1, true), &caps(true, false), &sbom).unwrap();
        assert_eq!(fit.sets, ["backend.attest=type=sbom,generator=g:1,image=backend,build_date=2026-01-01T00:00:00Z"]);
        assert_eq!(fit.sbom_generator.as_deref(), Some("g:1"));
        let fit = super::fit(&def(1, false), &caps(true, false), &sbom).unwrap();
        assert!(fit.sets.is_empty() && fit.sbom_generator.is_none(), "a target without attestations gets no SBOM");
        let fit = super::fit(&def(1, true), &caps(false, false), &sbom).unwrap();
        assert_eq!(fit.sets, ["backend.cache-to=", "backend.attest=type=provenance,disabled=true"]);
        assert!(fit.sbom_generator.is_none());
    }

    #[test]
    fn several_platforms_or_oci_on_a_limited_builder_are_refused_in_one_line() {
        let err = fit(&def(2, false), &caps(false, true), &asked(None)).unwrap_err().to_string();
        assert!(err.starts_with("multiplatform needs a builder") && err.contains("classic image store"), "{err}");
        assert!(!err.contains('\n'));
        let err = fit(&def(1, false), &caps(false, true), &asked(Some(Path::new("/src/cc/target/oci"))))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--oci needs"), "{err}");
    }

    #[test]
    fn entitlements_name_exactly_the_paths_outside_the_checkout() {
        let oci = Path::new("/src/cc/target/xtask/oci");
        let fit = fit(&def(2, false), &caps(true, true), &asked(Some(oci))).unwrap();
        assert_eq!(fit.allow, ["fs.read=/etc/ssl/certs/ca-certificates.crt"]);
        let elsewhere = Path::new("/tmp/oci");
        let own = [PathBuf::from("/tmp")];
        let fit =
            super::fit(&def(1, false), &caps(true, true), &Asked { own: &own, ..asked(Some(elsewhere)) }).unwrap();
        assert_eq!(fit.allow, ["fs.read=/etc/ssl/certs/ca-certificates.crt", "fs.write=/tmp/oci"]);
        let mut d = def(1, false);
        d.target.get_mut("backend").unwrap().cache_to =
            vec![crate::images::bake::parse_csv("type=local,dest=../cache")];
        let refused = super::fit(&d, &caps(true, true), &asked(None)).unwrap_err().to_string();
        assert!(refused.starts_with("`backend` writes /src/cc/../cache outside the checkout"), "{refused}");
        let allow = ["fs.write=/src/cache".to_string()];
        let fit = super::fit(&d, &caps(true, true), &Asked { allow: &allow, ..asked(None) }).unwrap();
        assert_eq!(fit.allow, ["fs.read=/etc/ssl/certs/ca-certificates.crt", "fs.write=/src/cache"]);
        let old = super::fit(&def(1, false), &caps(true, false), &asked(None)).unwrap();
        assert!(old.allow.is_empty(), "buildx before 0.19 has no --allow for paths");
        let old = super::fit(&d, &caps(true, false), &asked(None));
        assert!(old.is_err(), "an older buildx checks nothing, so the xtask's refusal is the only one");
    }

    #[test]
    fn multiplatform_check_names_what_is_missing() {
        let mut f = Facts {
            driver: "docker".to_string(),
            containerd_store: true,
            platforms: vec!["linux/amd64".to_string()],
            ..Facts::default()
        };
        let both = ["linux/amd64".to_string(), "linux/arm64".to_string()];
        assert!(check_multiplatform(&f, &both)
            .unwrap_err()
            .to_string()
            .contains("cannot build linux/arm64: register QEMU"));
        f.platforms.push("linux/arm64".to_string());
        assert!(check_multiplatform(&f, &both).is_ok());
        f.containerd_store = false;
        assert!(check_multiplatform(&f, &both).unwrap_err().to_string().starts_with("multiplatform needs"));
    }
}
