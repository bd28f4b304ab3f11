//! The plan: a pure function of the request and the inputs that says everything a build will do
//! (the bake command's parts, its environment, the files it needs, where images go) and runs
//! nothing. `Plan::bake` makes the command at the end; `print` and `run` read the same values.

use std::path::PathBuf;

use anyhow::{bail, Result};

use super::{fit, reproducible};
use crate::build::inputs::{self, Inputs};
use crate::build::request::{Options, Request};
use crate::build::syntax;
use crate::cache::gc;
use crate::cache::policy;
use crate::engine::{self, Capabilities, Engine, Facts};
use crate::images::bake::Definition;
use crate::images::meta::Metadata;
use crate::settings::ProgressMode;
use crate::util::runner::Cmd;

/// Where the built images go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    /// Into the engine's image store.
    Load,
    Push,
    /// An OCI archive per target in this folder.
    Oci(PathBuf),
    /// No image: BuildKit's Dockerfile checks only.
    Check,
}

/// Everything a build will do, resolved but not run.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) names: Vec<String>,
    pub(crate) targets: Vec<String>,
    pub(crate) metadata: Metadata,
    /// Bake variables, set in the bake command's environment.
    pub(crate) vars: Vec<(String, String)>,
    pub(crate) build_args: Vec<(String, String)>,
    pub(crate) output: Output,
    pub(crate) definition: Definition,
    pub(crate) notes: Vec<String>,
    pub(crate) metadata_file: PathBuf,
    pub(crate) progress: ProgressMode,
    pub(crate) engine: Engine,
    /// What the engine said of itself (none in a dry run without an engine).
    pub(crate) facts: Option<Facts>,
    /// Where bake runs.
    pub(crate) root: PathBuf,
    /// bake's own flags.
    pub(crate) builder: Option<String>,
    pub(crate) no_cache: bool,
    pub(crate) pull: bool,
    /// `--allow` entitlements and `--set` overrides, in the order they are passed.
    pub(crate) allow: Vec<String>,
    pub(crate) sets: Vec<String>,
    /// The outputs are set per target (in `sets`), so neither `--load` nor `--push` is passed.
    pub(crate) outputs_in_sets: bool,
    /// Files the build reads that are written before it runs (path, text).
    pub(crate) files: Vec<(PathBuf, String)>,
    /// The local cache folders this build exports to: cleaned after it succeeds.
    pub(crate) local_caches: Vec<PathBuf>,
    /// The SBOM generator the build attests with: built into the engine first (provision).
    pub(crate) sbom_generator: Option<String>,
    /// Drop the engine's kept copies of build contexts first (see `policy::fresh_contexts`).
    pub(crate) fresh_contexts: bool,
    /// Seconds spent before buildx starts (the xtask's own overhead), filled in by the caller.
    pub(crate) planned_in: f64,
}

/// Whether some target is tagged from VERSION_TAGS (the release targets: X.Y.Z, X.Y, X, latest).
/// The variable goes to bake only then, so that a dev build's plan, and `print`, name no tags the
/// build never applies.
pub(crate) fn uses_release_tags(def: &Definition, version: &semver::Version) -> bool {
    let release = crate::images::meta::release_tags(version);
    def.target.values().flat_map(|t| &t.tags).any(|tag| release.iter().any(|r| tag.ends_with(&format!(":{r}"))))
}

/// Makes the plan. What a dry run could not learn (no engine, stand-ins not made yet) becomes a
/// note instead of an error.
pub(crate) fn plan(request: &Request, inputs: &Inputs) -> Result<Plan> {
    let opts = &request.opts;
    let mut notes = Vec::new();
    let facts = known_facts(inputs, opts.dry_run)?;
    let mut vars = inputs.vars.clone();
    let cache_export = inputs.cache_export;
    notes.extend(cache_export.map(|e| format!("mode=max cache export on ({})", e.reason())));
    notes.extend(inputs.cache_note.map(str::to_string));
    let pull = bases(inputs, opts, &mut vars, &mut notes)?;
    let definition = &inputs.definition;
    if !uses_release_tags(definition, &inputs.metadata.version) {
        vars.retain(|(k, _)| k != "VERSION_TAGS");
    }
    // buildx lists what was asked for as the `default` group and resolves every target in it.
    let targets: Vec<String> = definition.target.keys().cloned().collect();
    check_set_targets(&opts.set, &targets)?;
    check_set_platforms(&opts.set, &inputs.platforms)?;
    let mut sets: Vec<String> = inputs.build_args.iter().map(|(k, v)| format!("*.args.{k}={v}")).collect();
    let syntax =
        syntax::fallback(&inputs.frontend, facts.as_ref(), definition, &inputs.dockerfiles, &inputs.xtask_dir)?;
    sets.extend(syntax.sets);
    notes.extend(syntax.notes);

    let oci_dir = inputs.xtask_dir.join("oci");
    let output = output(request, &oci_dir);
    let exporter_sets_given =
        exporter(request, inputs, facts.as_ref(), &targets, &oci_dir, &mut vars, &mut sets, &mut notes)?;
    // Ask of the builder only what it can do: leave out what it cannot with a line each, refuse
    // what cannot be left out, and grant the paths bake's entitlements check.
    let full = Facts { driver: "docker".to_string(), containerd_store: true, ..Facts::default() };
    let f = facts.as_ref().unwrap_or(&full);
    let caps = f.capabilities();
    let asked = fit::Asked {
        root: &inputs.root,
        oci_dir: opts.oci.then_some(oci_dir.as_path()),
        builder: &f.builder_line(),
        sbom: inputs.sbom_generator.as_deref().filter(|_| output != Output::Check),
        build_date: &inputs.metadata.build_date,
        ca_bundle: inputs.ca_bundle.as_deref().map(std::path::Path::new),
        own: &[inputs.root.join("target"), crate::util::paths::checkout_target()],
        allow: &opts.allow,
    };
    let fit = fit::fit(definition, &caps, &asked)?;
    let platforms = inputs::platforms_of(definition);
    if platforms.len() > 1 && facts.is_some() {
        fit::check_emulation(f, &platforms)?;
    }
    sets.extend(fit.sets);
    notes.extend(fit.notes);
    sets.extend(opts.set.iter().cloned());
    let (local_caches, fresh_contexts) = cache_steps(request, inputs, &caps, &output);
    // Both were checked when read (`--progress` with the flags, BUILDKIT_PROGRESS with `.env`).
    let progress = opts.progress.as_deref().and_then(|p| p.parse().ok()).or(inputs.progress).unwrap_or_default();
    Ok(Plan {
        names: request.names.clone(),
        targets,
        metadata: inputs.metadata.clone(),
        vars,
        build_args: inputs.build_args.clone(),
        output,
        definition: definition.clone(),
        notes,
        metadata_file: inputs.metadata_file.clone(),
        progress,
        engine: inputs.engine.clone(),
        facts,
        root: inputs.root.clone(),
        builder: opts.builder.clone(),
        no_cache: opts.no_cache,
        pull,
        allow: fit.allow,
        sets,
        outputs_in_sets: exporter_sets_given,
        files: syntax.files,
        local_caches,
        sbom_generator: fit.sbom_generator,
        fresh_contexts,
        planned_in: 0.0,
    })
}

/// The cache work around the build on this builder: the local cache folders to clean after it
/// (BuildKit only ever adds to one; none when nothing is exported, or the builder cannot export
/// and the plan left the export out), and whether the engine's kept build contexts are dropped
/// first.
fn cache_steps(request: &Request, inputs: &Inputs, caps: &Capabilities, output: &Output) -> (Vec<PathBuf>, bool) {
    let cache_export = inputs.cache_export;
    let local_caches = if caps.cache_export && cache_export.is_some() {
        gc::local_dirs(&inputs.definition, &inputs.root)
    } else {
        Vec::new()
    };
    let fresh_contexts = caps.cache_export
        && *output != Output::Check
        && policy::fresh_contexts(cache_export, request.registry.is_some(), inputs.engine.is_private());
    (local_caches, fresh_contexts)
}

/// What makes one commit one image (see `reproducible`): the epoch as a build argument, the
/// exporter's attributes on each target's output, the buildx environment. Returns whether the
/// outputs are set per target (then neither `--load` nor `--push` is passed).
#[allow(clippy::too_many_arguments)]
fn exporter(
    request: &Request,
    inputs: &Inputs,
    facts: Option<&Facts>,
    targets: &[String],
    oci_dir: &std::path::Path,
    vars: &mut Vec<(String, String)>,
    sets: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Result<bool> {
    let opts = &request.opts;
    let repro = reproducible::for_plan(
        reproducible::Exporter::of(opts.check, opts.push, opts.oci),
        &inputs.metadata,
        facts,
        inputs.inline_cache,
        &inputs.source_url,
        inputs.origin.as_deref(),
    )?;
    vars.extend(repro.vars.iter().chain(&repro.env).cloned());
    notes.extend(repro.notes.iter().cloned());
    sets.extend(repro.sets.iter().cloned());
    if opts.oci {
        for t in targets {
            let attrs = &repro.attrs;
            sets.push(format!("{t}.output=type=oci,dest={}{attrs}", oci_dir.join(format!("{t}.tar")).display()));
        }
    }
    // `--load` and `--push` cannot carry the exporter's attributes: each target's output says them.
    let per_target = reproducible::output_sets(repro.exporter, targets, &repro.attrs);
    let given = per_target.is_some();
    sets.extend(per_target.into_iter().flatten());
    Ok(given)
}

/// Adds the base images' variables and notes; returns whether to pull (a stand-in lives only in
/// this engine's store: there is nothing to pull).
fn bases(inputs: &Inputs, opts: &Options, vars: &mut Vec<(String, String)>, notes: &mut Vec<String>) -> Result<bool> {
    let mut pull = opts.pull;
    match inputs.bases.missing_line() {
        None => {
            if pull && inputs.bases.standin {
                notes.push("--pull dropped: the base images are local stand-ins".to_string());
                pull = false;
            }
            vars.extend(inputs.bases.vars.iter().cloned());
            notes.extend(inputs.bases.notes.iter().cloned());
        }
        Some(line) if opts.dry_run => notes.push(format!("base images: {line}")),
        Some(line) => bail!("{line}"),
    }
    Ok(pull)
}

/// The engine's facts, checked against the floors; a dry run goes on without them.
fn known_facts(inputs: &Inputs, dry_run: bool) -> Result<Option<Facts>> {
    match &inputs.facts {
        Ok(f) if dry_run => Ok(Some(f.clone())),
        Ok(f) => {
            check_floors(f)?;
            Ok(Some(f.clone()))
        }
        Err(_) if dry_run => Ok(None),
        Err(e) => bail!("asking the engine and buildx for their versions: {e}"),
    }
}

/// Where the images go: `--call check`, `--push`, `--oci`, or the engine's store.
fn output(request: &Request, oci_dir: &std::path::Path) -> Output {
    let opts = &request.opts;
    if opts.check {
        Output::Check
    } else if opts.push {
        Output::Push
    } else if opts.oci {
        Output::Oci(oci_dir.to_path_buf())
    } else {
        Output::Load
    }
}

impl Plan {
    /// The bake command, made from the plan's parts.
    pub(crate) fn bake(&self) -> Cmd {
        let mut bake = self
            .engine
            .docker()
            .envs(&self.vars)
            // The xtask reads SOURCE_DATE_EPOCH as the build date and passes it on itself (the build
            // argument and the exporter's option, see `reproducible`): buildx must not forward the
            // environment's value as well.
            .env_remove("SOURCE_DATE_EPOCH")
            .dir(&self.root)
            .args(["buildx", "bake", "--file", "docker-bake.hcl", "--progress", "rawjson"])
            .args(["--metadata-file", &self.metadata_file.display().to_string()]);
        if let Some(b) = &self.builder {
            bake = bake.args(["--builder", b]);
        }
        if self.no_cache {
            bake = bake.arg("--no-cache");
        }
        if self.pull {
            bake = bake.arg("--pull");
        }
        match self.output {
            Output::Load | Output::Push if self.outputs_in_sets => {}
            Output::Load => bake = bake.arg("--load"),
            Output::Push => bake = bake.arg("--push"),
            Output::Oci(_) => {}
            Output::Check => bake = bake.args(["--call", "check"]),
        }
        for a in &self.allow {
            bake = bake.arg(format!("--allow={a}"));
        }
        for s in &self.sets {
            bake = bake.args(["--set", s]);
        }
        bake.names(&self.names)
    }
}

/// Refuses a platform in a `--set` that the bake file builds for no target: a typo, or a
/// platform nobody tested.
fn check_set_platforms(sets: &[String], known: &[String]) -> Result<()> {
    for value in sets.iter().filter(|kv| inputs::names_platform(kv)).filter_map(|kv| kv.split_once('=')).map(|(_, v)| v)
    {
        for p in value.split(',').map(str::trim) {
            if !known.iter().any(|k| k == p) {
                bail!("unknown platform `{p}`: this project builds for {}", known.join(" and "));
            }
        }
    }
    Ok(())
}

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

pub(crate) fn check_floors(f: &Facts) -> Result<()> {
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

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
