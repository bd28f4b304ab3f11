//! The building recipes (`build`, `backend`, `frontend`, `production`, `multiplatform`): each one
//! resolves a plan (the bake command as a value, with its environment) and runs it through the
//! measured runner in `run`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::adapt;
use crate::bake::{self, Definition};
use crate::engine::{self, Engine, Facts};
use crate::meta::{self, Metadata};
use crate::paths;
use crate::runner::Cmd;
use crate::settings::Settings;
use crate::standin;
use crate::syntax;

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
    /// Sign the pushed images with cosign (`--sign`), with the key file `--key` names, if any.
    pub sign: bool,
    pub key: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recipe {
    /// Local images loaded into the engine (`build`, `backend`, `frontend`).
    Local,
    Production,
    Multiplatform,
}

/// Where the built images go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Into the engine's image store.
    Load,
    Push,
    /// An OCI archive per target in this folder.
    Oci(PathBuf),
    /// No image: BuildKit's Dockerfile checks only.
    Check,
}

/// Everything a build will do, resolved but not run.
pub struct Plan {
    pub names: Vec<String>,
    pub targets: Vec<String>,
    pub metadata: Metadata,
    /// Bake variables, set in the bake command's environment.
    pub vars: Vec<(String, String)>,
    /// Client-side BuildKit settings from `.env`, also set in its environment.
    pub client_env: Vec<(String, String)>,
    pub build_args: Vec<(String, String)>,
    pub bake: Cmd,
    pub output: Output,
    pub definition: Definition,
    pub notes: Vec<String>,
    pub metadata_file: PathBuf,
    pub progress: String,
    pub engine: Engine,
    /// What the engine said of itself (none in a dry run without an engine).
    pub facts: Option<Facts>,
    /// Seconds spent resolving the plan (the xtask's own overhead before buildx starts).
    pub planned_in: f64,
}

/// Checks the flags that need no engine: `--set`, `--progress`, `--version`.
pub fn check_options(opts: &Options) -> Result<()> {
    for kv in &opts.set {
        let Some((key, value)) = kv.split_once('=') else {
            bail!("--set `{kv}`: expected TARGET.KEY=VALUE, e.g. --set backend.args.X=1")
        };
        if !key.contains('.') {
            bail!("--set `{kv}`: the key needs a target, e.g. `*.{key}` or `backend.{key}`");
        }
        if key.ends_with(".platform") || key.ends_with(".platforms") {
            check_platforms(value)?;
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
    if let Some(v) = &opts.version {
        meta::parse_version(v, "--version")?;
    }
    if opts.push && opts.oci {
        bail!("--push and --oci both choose where images go: pick one");
    }
    Ok(())
}

/// Where Debian and Ubuntu keep the host's CA bundle (also compose's default in
/// docker-compose.yml).
const DEFAULT_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Refuses a `--set` whose target is not one this build makes (a typo would otherwise fail the
/// build half-way, or do nothing); patterns with `*`, `?` or `[` are left to bake.
fn check_set_targets(sets: &[String], targets: &[String]) -> Result<()> {
    for kv in sets {
        let target = kv.split('.').next().unwrap_or_default();
        let pattern = target.contains(['*', '?', '[']);
        if !pattern && !targets.iter().any(|t| t == target) {
            bail!("--set `{kv}`: `{target}` is not a target of this build; its targets are {}", targets.join(", "));
        }
    }
    Ok(())
}

/// The platforms the project builds for; anything else is a typo or a platform nobody tested.
pub const PLATFORMS: [&str; 2] = ["linux/amd64", "linux/arm64"];

pub fn check_platforms(list: &str) -> Result<()> {
    for p in list.split(',').map(str::trim) {
        if !PLATFORMS.contains(&p) {
            bail!("unknown platform `{p}`: this project builds for {}", PLATFORMS.join(" and "));
        }
    }
    Ok(())
}

/// The npm version pinned by package.json's `packageManager` (`npm@X.Y.Z`).
pub fn npm_pin() -> Result<String> {
    let path = paths::package_json();
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let pm =
        json["packageManager"].as_str().with_context(|| format!("{} has no packageManager field", path.display()))?;
    let version = pm
        .strip_prefix("npm@")
        .with_context(|| format!("{}: packageManager `{pm}` is not npm@X.Y.Z", path.display()))?;
    meta::parse_version(version, "package.json packageManager")?;
    Ok(version.to_string())
}

/// Resolves a plan. With `dry_run` nothing is started or built: no engine is brought up and no
/// stand-in is made, and what cannot be known without them is said.
pub fn plan(recipe: Recipe, names: &[String], opts: &Options) -> Result<Plan> {
    let started = std::time::Instant::now();
    check_options(opts)?;
    let settings = Settings::load()?;
    let registry = opts.registry.clone().or_else(|| settings.get("REGISTRY").map(str::to_string));
    if opts.push && registry.is_none() {
        bail!("--push needs a registry: pass --registry HOST:PORT or set REGISTRY in .env")
    }
    // Reading git and finding the engine are independent; so are the questions asked of the
    // engine afterwards. Each is a program start of tens of milliseconds, so they run side by side
    // (the xtask's own overhead per build is one of the project's measured targets).
    let (metadata, engine) = std::thread::scope(|s| {
        let metadata = s.spawn(|| meta::collect(opts.version.as_deref()));
        let engine = if opts.dry_run {
            Ok(engine::connect(&settings, false).unwrap_or_else(|_| dry_run_engine()))
        } else {
            engine::connect(&settings, true)
        };
        (metadata.join().unwrap_or_else(|_| Err(anyhow::anyhow!("reading git panicked"))), engine)
    });
    let (metadata, engine) = (metadata?, engine?);
    if let (true, Some(registry)) = (opts.push, &registry) {
        check_registry(registry, &engine)?;
    }
    let names: Vec<String> = if names.is_empty() { vec![default_group(recipe).to_string()] } else { names.to_vec() };
    let mut vars = metadata.bake_vars();
    vars.push(("NPM_VERSION".to_string(), npm_pin()?));
    if let Some(r) = &registry {
        vars.push(("REGISTRY".to_string(), r.clone()));
    }
    // A CA_BUNDLE that is set was checked to exist; unset, the host's bundle is used if it has one.
    let ca = settings.get("CA_BUNDLE").or(Some(DEFAULT_CA_BUNDLE).filter(|p| std::path::Path::new(p).is_file()));
    if let Some(ca) = ca {
        vars.push(("CA_BUNDLE".to_string(), ca.to_string()));
    }
    let (facts, bases, frontend, definition) = std::thread::scope(|s| {
        let facts = s.spawn(|| engine::facts(&engine, opts.builder.as_deref()));
        let bases = s.spawn(|| standin::resolve(&engine, &settings, !opts.dry_run));
        let frontend = s.spawn(|| syntax::frontend_source(&engine, &settings));
        // The base images change build arguments only, not the set of targets: resolve now.
        let definition = bake::resolve(&engine.docker(), &vars, &names);
        let joined = |what: &str| anyhow::anyhow!("{what} panicked");
        (
            facts.join().map_err(|_| joined("asking the engine")).and_then(|r| r),
            bases.join().map_err(|_| joined("resolving base images")).and_then(|r| r),
            frontend.join().unwrap_or(syntax::FrontendSource::Unreachable),
            definition,
        )
    });
    let mut notes = Vec::new();
    let facts = if opts.dry_run {
        facts.ok()
    } else {
        let f = facts.context("asking the engine and buildx for their versions")?;
        check_floors(&f)?;
        Some(f)
    };
    let mut pull = opts.pull;
    match bases {
        Ok(choice) => {
            if pull && choice.standin {
                // A stand-in lives only in this engine's store: there is nothing to pull.
                notes.push("--pull dropped: the base images are local stand-ins".to_string());
                pull = false;
            }
            vars.extend(choice.vars);
            notes.extend(choice.notes);
        }
        Err(e) if opts.dry_run => notes.push(format!("base images: {e:#}")),
        Err(e) => return Err(e),
    }
    let definition = definition?;
    // buildx lists what was asked for as the `default` group and resolves every target in it.
    let targets: Vec<String> = definition.target.keys().cloned().collect();

    check_set_targets(&opts.set, &targets)?;
    let build_args = settings.build_args();
    let mut sets: Vec<String> = build_args.iter().map(|(k, v)| format!("*.args.{k}={v}")).collect();
    let syntax = syntax::fallback(frontend, facts.as_ref(), &definition, opts.dry_run)?;
    sets.extend(syntax.0);
    notes.extend(syntax.1);

    let oci_dir = paths::xtask_dir().join("oci");
    let output = if opts.check {
        Output::Check
    } else if opts.push {
        Output::Push
    } else if opts.oci {
        for t in &targets {
            sets.push(format!("{t}.output=type=oci,dest={}", oci_dir.join(format!("{t}.tar")).display()));
        }
        Output::Oci(oci_dir.clone())
    } else {
        Output::Load
    };
    // Ask of the builder only what it can do: leave out what it cannot with a line each, refuse
    // what cannot be left out, and grant the paths bake's entitlements check.
    let platforms: Vec<String> = definition
        .target
        .values()
        .flat_map(|t| t.platforms.iter().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let full = Facts { driver: "docker".to_string(), containerd_store: true, ..Facts::default() };
    let f = facts.as_ref().unwrap_or(&full);
    let builder = f.builder_line();
    let fit = adapt::fit(
        &definition,
        &f.capabilities(),
        &adapt::Asked {
            root: &paths::project_root(),
            oci_dir: opts.oci.then_some(oci_dir.as_path()),
            builder: &builder,
        },
    )?;
    if platforms.len() > 1 && facts.is_some() {
        adapt::check_multiplatform(f, &platforms)?;
    }
    if opts.oci && !opts.dry_run {
        std::fs::create_dir_all(&oci_dir).with_context(|| format!("creating {}", oci_dir.display()))?;
    }
    sets.extend(fit.sets);
    notes.extend(fit.notes);
    sets.extend(opts.set.iter().cloned());

    let progress = opts
        .progress
        .clone()
        .or_else(|| settings.get("BUILDKIT_PROGRESS").map(str::to_string))
        .unwrap_or_else(|| "auto".to_string());
    // One file per run, so two builds at once never read each other's digests.
    let metadata_file = paths::xtask_dir().join(format!("metadata-{}.json", std::process::id()));
    let client_env = settings.client_env();
    let mut bake = engine
        .docker()
        .envs(&client_env)
        .envs(&vars)
        // The xtask reads SOURCE_DATE_EPOCH as the build date; buildx would also pass it on as a
        // build argument, which newer BuildKit applies to every step (re-running them all for a
        // new date), so it stays out of buildx's environment.
        .env_remove("SOURCE_DATE_EPOCH")
        .dir(paths::project_root())
        .args(["buildx", "bake", "--file", "docker-bake.hcl", "--progress", "rawjson"])
        .args(["--metadata-file", &metadata_file.display().to_string()]);
    if let Some(b) = &opts.builder {
        bake = bake.args(["--builder", b]);
    }
    if opts.no_cache {
        bake = bake.arg("--no-cache");
    }
    if pull {
        bake = bake.arg("--pull");
    }
    match output {
        Output::Load => bake = bake.arg("--load"),
        Output::Push => bake = bake.arg("--push"),
        Output::Oci(_) => {}
        Output::Check => bake = bake.args(["--call", "check"]),
    }
    for a in &fit.allow {
        bake = bake.arg(format!("--allow={a}"));
    }
    for s in &sets {
        bake = bake.args(["--set", s]);
    }
    bake = bake.args(names.iter().cloned());
    Ok(Plan {
        names,
        targets,
        metadata,
        vars,
        client_env,
        build_args,
        bake,
        output,
        definition,
        notes,
        metadata_file,
        progress,
        engine,
        facts,
        planned_in: started.elapsed().as_secs_f64(),
    })
}

fn default_group(recipe: Recipe) -> &'static str {
    match recipe {
        Recipe::Local => "default",
        Recipe::Production => "production",
        Recipe::Multiplatform => "multiplatform",
    }
}

/// For `print --dry-run` on a machine without an engine: the private engine's plug-ins if the
/// prefix exists, so `bake --print` still resolves the file.
fn dry_run_engine() -> Engine {
    let layout = engine::Layout::new(engine::Spec::DEFAULT);
    if layout.prefix.exists() {
        layout.engine(false)
    } else {
        Engine::default()
    }
}

pub fn check_floors(f: &Facts) -> Result<()> {
    match &f.buildx_version {
        None => bail!(
            "docker buildx is missing: install the buildx plug-in {}+ (or use `cargo xtask engine up`)",
            engine::BUILDX_FLOOR
        ),
        Some(v) if *v < engine::BUILDX_FLOOR => {
            bail!("buildx {v} is below the floor {}: upgrade the docker-buildx plug-in", engine::BUILDX_FLOOR)
        }
        _ => {}
    }
    if let Some(v) = &f.buildkit_version {
        if *v < engine::BUILDKIT_FLOOR {
            bail!("BuildKit {v} is below the floor {}: upgrade Docker Engine to 26 or newer", engine::BUILDKIT_FLOOR);
        }
    }
    Ok(())
}

fn check_registry(registry: &str, engine: &Engine) -> Result<()> {
    use std::net::ToSocketAddrs;
    let host_port = registry.split('/').next().unwrap_or(registry);
    let addr = if host_port.contains(':') { host_port.to_string() } else { format!("{host_port}:443") };
    let reachable = addr
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(3)).is_ok());
    if !reachable {
        bail!("registry {registry} is unreachable for --push: start it (the private engine runs one on {}) or fix --registry", engine.registry_addr());
    }
    Ok(())
}

/// Plans and runs one recipe.
pub fn run(recipe: Recipe, names: &[String], opts: &Options) -> Result<()> {
    // Held until the build ends, so that `clean` removes nothing it uses.
    let _lock = if opts.dry_run { None } else { Some(crate::lock::shared()?) };
    // A signing request that cannot succeed is refused before anything is built.
    let key = if opts.sign { Some(crate::signing::key_for_build(opts.push, opts.key.as_deref())?) } else { None };
    let plan = plan(recipe, names, opts)?;
    if opts.dry_run {
        return crate::print::print_plan(&plan);
    }
    for note in &plan.notes {
        eprintln!("xtask: {note}");
    }
    if plan.output == Output::Check {
        return crate::check::run(&plan);
    }
    crate::run::build(&plan)?;
    if let Some(key) = &key {
        crate::signing::sign_last_build(key)?;
    }
    // BuildKit only ever adds to a local cache folder: drop what this export left unreferenced.
    if let Some(line) = crate::cachegc::after_build(&plan.definition, &paths::project_root()) {
        eprintln!("xtask: {line}");
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
    fn unknown_platform_and_progress_are_refused() {
        let bad = Options { set: vec!["*.platform=linux/amd64,linux/s390x".to_string()], ..Options::default() };
        assert_eq!(
            check_options(&bad).unwrap_err().to_string(),
            "unknown platform `linux/s390x`: this project builds for linux/amd64 and linux/arm64"
        );
        let bad = Options { progress: Some("fancy".to_string()), ..Options::default() };
        assert!(check_options(&bad).unwrap_err().to_string().starts_with("--progress `fancy`"));
        let bad = Options { version: Some("one".to_string()), ..Options::default() };
        assert!(check_options(&bad).is_err());
    }

    #[test]
    fn set_for_a_target_outside_the_build_is_refused_with_the_valid_ones() {
        let targets = vec!["backend".to_string(), "frontend".to_string()];
        let err = check_set_targets(&["nosuchtarget.args.X=1".to_string()], &targets).unwrap_err().to_string();
        assert_eq!(err, "--set `nosuchtarget.args.X=1`: `nosuchtarget` is not a target of this build; its targets are backend, frontend");
        assert!(check_set_targets(&["*.args.X=1".to_string(), "backend.args.Y=2".to_string()], &targets).is_ok());
    }

    #[test]
    fn floors_refuse_old_tools_with_a_fix() {
        let mut f = Facts { buildx_version: Some(semver::Version::new(0, 12, 1)), ..Facts::default() };
        assert!(check_floors(&f).unwrap_err().to_string().contains("upgrade the docker-buildx plug-in"));
        f.buildx_version = Some(semver::Version::new(0, 13, 1));
        f.buildkit_version = Some(semver::Version::new(0, 12, 5));
        assert!(check_floors(&f).unwrap_err().to_string().contains("BuildKit 0.12.5 is below"));
        f.buildkit_version = Some(semver::Version::new(0, 13, 0));
        assert!(check_floors(&f).is_ok());
    }

    #[test]
    fn npm_pin_comes_from_package_json() {
        let pin = npm_pin().unwrap();
        assert!(semver::Version::parse(&pin).is_ok(), "{pin}");
    }
}
