//! What was asked: the building flags as one value (`Options`), the recipe, and the request they
//! make together once checked. Nothing here reads the world.

use anyhow::{bail, Result};

use crate::images::meta;
use crate::settings::Settings;

/// The flags shared by every building command.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub dry_run: bool,
    pub no_cache: bool,
    pub pull: bool,
    pub progress: Option<String>,
    pub builder: Option<String>,
    pub set: Vec<String>,
    pub registry: Option<String>,
    pub version: Option<String>,
    pub push: bool,
    pub oci: bool,
    /// Run BuildKit's Dockerfile checks instead of building (`bake --call check`).
    pub check: bool,
    /// Export the mode=max cache (see `cachepolicy`).
    pub cache_export: bool,
    /// Sign the pushed images with cosign (`--sign`), with the key file `--key` names, if any.
    pub sign: bool,
    pub key: Option<String>,
    /// `--allow fs.read=PATH` and the like: paths outside the checkout the person grants bake.
    pub allow: Vec<String>,
    /// Sign without a key, by the CI workflow's OIDC identity (`--keyless`).
    pub keyless: bool,
    /// With a dry run: print the bake command as JSON instead of the plan (`print --json`).
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recipe {
    /// Local images loaded into the engine (`build`, `backend`, `frontend`).
    Local,
    Production,
    Multiplatform,
}

/// A checked request: the groups or targets it builds (the recipe's default group when none was
/// named), the flags, and the registry (`--registry`, else REGISTRY in `.env`).
#[derive(Clone, Debug)]
pub struct Request {
    pub(crate) names: Vec<String>,
    pub(crate) opts: Options,
    pub(crate) registry: Option<String>,
    /// `--release-version`, parsed (the one place it is).
    pub(crate) version: Option<semver::Version>,
}

impl Request {
    /// Checks the flags against each other and the settings.
    pub fn new(recipe: Recipe, names: &[String], opts: &Options, settings: &Settings) -> Result<Request> {
        let version = opts.version.as_deref().map(|v| meta::parse_version(v, "--release-version")).transpose()?;
        let registry = opts.registry.clone().or_else(|| settings.get("REGISTRY").map(str::to_string));
        if opts.push && registry.is_none() {
            bail!("--push needs a registry: pass --registry HOST:PORT or set REGISTRY in .env")
        }
        let names = if names.is_empty() { vec![default_group(recipe).to_string()] } else { names.to_vec() };
        Ok(Request { names, opts: opts.clone(), registry, version })
    }
}

/// The bake group each recipe builds when no name is given.
pub(crate) fn default_group(recipe: Recipe) -> &'static str {
    match recipe {
        Recipe::Local => "default",
        Recipe::Production => "production",
        Recipe::Multiplatform => "multiplatform",
    }
}

/// The names a recipe builds: for `multiplatform`, a service's name (`backend`) stands for that
/// service's multi-platform target (`backend-multiplatform`) when the bake file has one, since the
/// plain target is built for the engine's platform only. Any other name passes through for bake to
/// resolve (or refuse, naming the valid ones).
pub(crate) fn recipe_names(recipe: Recipe, names: &[String], targets: &[String]) -> Vec<String> {
    names
        .iter()
        .map(|n| {
            let own = format!("{n}-multiplatform");
            match recipe {
                Recipe::Multiplatform if targets.contains(&own) => own,
                _ => n.clone(),
            }
        })
        .collect()
}

/// Checks the flags that need no engine: `--set`, `--progress`, `--release-version`.
pub(crate) fn check_options(opts: &Options) -> Result<()> {
    for kv in &opts.set {
        let Some((key, _)) = kv.split_once('=') else {
            bail!("--set `{kv}`: expected TARGET.KEY=VALUE, e.g. --set backend.args.X=1")
        };
        if !key.contains('.') {
            bail!("--set `{kv}`: the key needs a target, e.g. `*.{key}` or `backend.{key}`");
        }
    }
    if let Some(p) = &opts.progress {
        if let Err(rule) = crate::settings::check_value("BUILDKIT_PROGRESS", p) {
            bail!("--progress `{p}`: {rule}");
        }
    }
    if let Some(r) = &opts.registry {
        if let Err(rule) = crate::settings::check_value("REGISTRY", r) {
            bail!("--registry `{r}`: {rule}");
        }
    }
    for a in &opts.allow {
        super::entitlements::check_flag(a)?;
    }
    if opts.push && opts.oci {
        bail!("--push and --oci both choose where images go: pick one");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_needs_a_target_key_and_a_value() {
        let opts = |s: &str| Options { set: vec![s.to_string()], ..Options::default() };
        assert!(check_options(&opts("backend.args.X=1")).is_ok());
        let err = check_options(&opts("backend.args.X")).unwrap_err().to_string();
        assert_eq!(err, "--set `backend.args.X`: expected TARGET.KEY=VALUE, e.g. --set backend.args.X=1");
        assert!(check_options(&opts("tags=x")).unwrap_err().to_string().contains("needs a target"));
    }

    #[test]
    fn a_service_named_to_multiplatform_is_its_multi_platform_target() {
        let bake = crate::images::bake::Defaults::read(&crate::util::paths::project_root()).unwrap();
        let targets = bake.targets();
        assert!(targets.contains(&"backend".to_string()) && targets.contains(&"sbom-generator".to_string()));
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let asked = names(&["backend", "frontend-multiplatform", "multiplatform", "nope"]);
        assert_eq!(
            recipe_names(Recipe::Multiplatform, &asked, &targets),
            names(&["backend-multiplatform", "frontend-multiplatform", "multiplatform", "nope"])
        );
        assert_eq!(
            recipe_names(Recipe::Multiplatform, &names(&["frontend"]), &targets),
            names(&["frontend-multiplatform"])
        );
        assert_eq!(recipe_names(Recipe::Local, &names(&["backend"]), &targets), names(&["backend"]));
    }

    #[test]
    fn unknown_progress_and_bad_versions_are_refused() {
        let bad = Options { progress: Some("fancy".to_string()), ..Options::default() };
        assert!(check_options(&bad).unwrap_err().to_string().starts_with("--progress `fancy`"));
        let settings = Settings::default();
        let bad = Options { version: Some("one".to_string()), ..Options::default() };
        assert!(Request::new(Recipe::Local, &[], &bad, &settings).is_err());
        let good = Options { version: Some("v1.2.3".to_string()), ..Options::default() };
        let request = Request::new(Recipe::Production, &[], &good, &settings).unwrap();
        assert_eq!(
            (request.version, request.names),
            (Some(semver::Version::new(1, 2, 3)), vec!["production".to_string()])
        );
    }
}
