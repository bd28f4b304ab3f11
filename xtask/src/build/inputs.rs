//! Reading the world for a plan: the settings, git, the engine's answers, the base images it can
//! have, the Dockerfile frontend, and the bake definition as buildx resolves it. It changes
//! nothing in the engine or the checkout: starting an engine and making stand-ins are
//! `provision`'s. The only files it writes are answers kept for the next build under
//! `target/xtask/` (the resolved definition, registry probes, builder facts).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::build::request::Request;
use crate::build::syntax::{self, FrontendSource};
use crate::cache::policy;
use crate::engine::{self, Engine, Facts};
use crate::images::bake::{self, Definition};
use crate::images::bases::{self, Choice};
use crate::images::meta::{self, Metadata};
use crate::settings::{ProgressMode, Settings};
use crate::util::paths;
use crate::util::runner;

/// Where Debian and Ubuntu keep the host's CA bundle (also compose's default in
/// docker-compose.yml).
const DEFAULT_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Everything a plan is made from besides the request.
pub(crate) struct Inputs {
    /// Where bake runs (the checkout, or the scratch copy of `XTASK_PROJECT_ROOT`).
    pub(crate) root: PathBuf,
    /// The xtask's own folder under `root`'s `target/`.
    pub(crate) xtask_dir: PathBuf,
    /// One per run, so two builds at once never read each other's digests.
    pub(crate) metadata_file: PathBuf,
    pub(crate) metadata: Metadata,
    /// The CA bundle given to the build as a secret: `CA_BUNDLE`, else the host's if it has one.
    pub(crate) ca_bundle: Option<String>,
    pub(crate) build_args: Vec<(String, String)>,
    /// `BUILDKIT_PROGRESS` from `.env`.
    pub(crate) progress: Option<ProgressMode>,
    pub(crate) engine: Engine,
    /// What the engine and buildx said of themselves, or why they could not say.
    pub(crate) facts: Result<Facts, String>,
    pub(crate) bases: Choice,
    pub(crate) frontend: FrontendSource,
    /// The bake definition of the request's names, resolved without the base image variables
    /// (they change build arguments only, not the set of targets).
    pub(crate) definition: Definition,
    /// Each target's Dockerfile, when the syntax fallback may need a copy of it.
    pub(crate) dockerfiles: BTreeMap<PathBuf, String>,
    /// Every platform the bake file builds for, read only when a `--set` names a platform.
    pub(crate) platforms: Vec<String>,
    /// Whether (and why) this build exports its cache: decided before the definition is
    /// resolved, since the bake file's `cache-to` depends on it.
    pub(crate) cache_export: Option<policy::Export>,
    /// Why a CI build exports nothing, when it does not (see `policy::note`).
    pub(crate) cache_note: Option<&'static str>,
    /// The checkout's `origin` remote (provenance records a source only when it is public).
    pub(crate) origin: Option<String>,
    /// `BUILDKIT_INLINE_CACHE` is on.
    pub(crate) inline_cache: bool,
    /// `SOURCE_URL` from the settings, else the bake file's default (empty: record no source).
    pub(crate) source_url: String,
    /// The SBOM generator image the bake file names (none in a bake file from before SBOMs).
    pub(crate) sbom_generator: Option<String>,
    /// The bake variables the definition was resolved with (metadata, npm pin, registry, CA
    /// bundle, cache export): the plan starts from them.
    pub(crate) vars: Vec<(String, String)>,
}

/// The engine that answers, else (for a dry run, which starts none) the private engine's
/// plug-ins if its prefix exists, so `bake --print` still resolves the file.
pub(crate) fn engine_if_any(settings: &Settings) -> Engine {
    engine::connect(settings, false).unwrap_or_else(|_| {
        let layout = engine::Layout::new(engine::Spec::DEFAULT);
        if layout.prefix.exists() {
            layout.engine(false)
        } else {
            Engine::default()
        }
    })
}

impl Inputs {
    /// Reads what the plan needs, asking the engine several questions side by side (each is a
    /// program start or a socket round trip; the xtask's own overhead per build is measured).
    pub(crate) fn gather(request: &Request, settings: &Settings, engine: Engine) -> Result<Inputs> {
        let opts = &request.opts;
        let metadata = meta::collect(request.version.as_ref())?;
        if let (true, Some(registry)) = (opts.push, &request.registry) {
            check_registry(registry, &engine)?;
        }
        let npm_pin = meta::npm_pin()?;
        // A CA_BUNDLE that is set was checked to exist; unset, the host's bundle is used if it has one.
        let ca_bundle = settings
            .get("CA_BUNDLE")
            .or(Some(DEFAULT_CA_BUNDLE).filter(|p| std::path::Path::new(p).is_file()))
            .map(str::to_string);
        let root = paths::project_root();
        let bake_defaults = bake::Defaults::read(&root)?;
        bake_defaults.check_names(&request.names)?;
        let officials = bake_defaults.base_images()?;
        let sbom_generator = crate::images::sbom::generator::named_in(&bake_defaults);
        let source_url = match settings.iter().find(|(k, _, _)| *k == "SOURCE_URL") {
            Some((_, v, _)) => v.to_string(),
            None => bake_defaults.require("SOURCE_URL")?,
        };
        let ci = crate::settings::in_ci();
        let cache_export = policy::decide(opts.cache_export, ci, request.registry.is_some());
        let cache_note = policy::note(ci, request.registry.is_some());
        let mut vars = bake_vars(&metadata, &npm_pin, request.registry.as_deref(), ca_bundle.as_deref());
        vars.extend(policy::bake_var(cache_export));
        let origin_url = runner::Cmd::new("git").args(["config", "--get", "remote.origin.url"]).dir(&root);
        let (facts, bases, frontend, definition, origin) = std::thread::scope(|s| {
            let origin = s.spawn(|| runner::read(&origin_url).ok());
            let facts = s.spawn(|| engine::facts(&engine, opts.builder.as_deref()));
            let bases = s.spawn(|| bases::look(&engine, settings, &officials));
            let frontend = s.spawn(|| syntax::frontend_source(&engine, settings));
            let definition =
                crate::images::bake_kept::resolve(&engine.docker(), &vars, &request.names, &root, &paths::xtask_dir());
            let joined = |what: &str| anyhow::anyhow!("{what} panicked");
            (
                facts.join().map_err(|_| joined("asking the engine")).and_then(|r| r),
                bases.join().unwrap_or_default(),
                frontend.join().unwrap_or(FrontendSource::Unreachable),
                definition,
                origin.join().ok().flatten(),
            )
        });
        let definition = definition?;
        let bases = standin_platforms(bases, &definition, &opts.set, facts.as_ref().ok());
        let dockerfiles = syntax::dockerfiles(&frontend, &definition, &root);
        let platforms = if opts.set.iter().any(|kv| names_platform(kv)) {
            platforms_of(&bake::graph(&engine.docker(), &vars)?)
        } else {
            Vec::new()
        };
        let build_args = settings.build_args();
        let inline_cache =
            build_args.iter().any(|(k, v)| k == "BUILDKIT_INLINE_CACHE" && matches!(v.as_str(), "1" | "true"));
        Ok(Inputs {
            xtask_dir: paths::xtask_dir(),
            metadata_file: paths::xtask_dir().join(format!("metadata-{}.json", std::process::id())),
            root,
            metadata,
            ca_bundle,
            build_args,
            progress: settings.get("BUILDKIT_PROGRESS").and_then(|p| p.parse().ok()),
            engine,
            facts: facts.map_err(|e| format!("{e:#}")),
            bases,
            frontend,
            definition,
            dockerfiles,
            platforms,
            cache_export,
            cache_note,
            origin,
            inline_cache,
            source_url,
            sbom_generator,
            vars,
        })
    }
}

/// The bake variables that carry the metadata, the npm pin, the registry and the CA bundle (the
/// base images are added once they are known).
pub(crate) fn bake_vars(
    metadata: &Metadata,
    npm_pin: &str,
    registry: Option<&str>,
    ca_bundle: Option<&str>,
) -> Vec<(String, String)> {
    let mut vars = metadata.bake_vars();
    vars.push(("NPM_VERSION".to_string(), npm_pin.to_string()));
    if let Some(r) = registry {
        vars.push(("REGISTRY".to_string(), r.to_string()));
    }
    if let Some(ca) = ca_bundle {
        vars.push(("CA_BUNDLE".to_string(), ca.to_string()));
    }
    vars
}

/// Which platforms the stand-ins must hold for this command (see `images::standin_platforms`):
/// those its targets and its `--set *.platform=…` name.
fn standin_platforms(mut bases: Choice, def: &Definition, sets: &[String], facts: Option<&Facts>) -> Choice {
    let multi = facts.is_some_and(|f| f.capabilities().multi_platform);
    let set_platforms: Vec<String> = (sets.iter().filter(|kv| names_platform(kv)))
        .filter_map(|kv| kv.split_once('=').map(|(_, v)| v.to_string()))
        .collect();
    let needed = crate::images::standin_platforms::needed(&platforms_of(def), &set_platforms);
    crate::images::standin_platforms::complete(&mut bases, &needed, multi);
    bases
}

/// True for a `--set` of a target's platforms (`*.platform=…`).
pub(crate) fn names_platform(kv: &str) -> bool {
    kv.split_once('=').is_some_and(|(key, _)| key.ends_with(".platform") || key.ends_with(".platforms"))
}

/// The platforms some target of the definition builds for: the bake file is their one statement.
pub(crate) fn platforms_of(def: &Definition) -> Vec<String> {
    let set: std::collections::BTreeSet<String> =
        def.target.values().flat_map(|t| t.platforms.iter().cloned()).collect();
    set.into_iter().collect()
}

fn check_registry(registry: &str, engine: &Engine) -> Result<()> {
    let host_port = registry.split('/').next().unwrap_or(registry);
    let addr = if host_port.contains(':') { host_port.to_string() } else { format!("{host_port}:443") };
    let reachable = crate::util::net::answers(&addr, std::time::Duration::from_secs(3));
    if !reachable {
        bail!("registry {registry} is unreachable for --push: start it (the private engine runs one on {}) or fix --registry", engine.registry_addr());
    }
    Ok(())
}
