//! The building recipes (`build`, `backend`, `frontend`, `production`, `multiplatform`, and
//! `print`, `check` and `--dry-run` on the same path): flags → request → inputs (read) →
//! provision (changes, skipped by a dry run) → plan (pure) → run → report.

use anyhow::Result;

pub mod check;
pub(crate) mod context;
pub(crate) mod entitlements;
pub(crate) mod fit;
pub(crate) mod inputs;
pub(crate) mod plan;
pub(crate) mod print;
pub(crate) mod provision;
pub(crate) mod registry_cache;
pub(crate) mod reproducible;
pub mod request;
pub(crate) mod run;
pub(crate) mod syntax;

use std::collections::BTreeMap;

use inputs::Inputs;
use plan::{Output, Plan};
use registry_cache::Side;
pub use request::{Options, Recipe, Request};

use crate::cache::gc;
use crate::settings::Settings;
use crate::util::trace;

/// Plans and runs one recipe.
pub fn run(recipe: Recipe, names: &[String], opts: &Options) -> Result<()> {
    // Held until the build ends, so that `clean` removes nothing it uses.
    let lock = if opts.dry_run { None } else { Some(crate::cache::lock::shared()?) };
    // A signing request that cannot succeed is refused before anything is built.
    let key = signing_key(opts)?;
    let started = std::time::Instant::now();
    request::check_options(opts)?;
    let settings = {
        let _t = trace::phase("settings and request");
        Settings::load()?
    };
    let targets = crate::images::bake::Defaults::read(&crate::util::paths::project_root())?.targets();
    let request = Request::new(recipe, &request::recipe_names(recipe, names, &targets), opts, &settings)?;
    if opts.dry_run {
        // Read and plan only: no engine is started, no stand-in made, no file written.
        let inputs = Inputs::gather(&request, &settings, inputs::engine_if_any(&settings))?;
        let plan = plan::plan(&request, &inputs)?;
        return if opts.json { print::print_json(&plan) } else { print::print_plan(&plan) };
    }
    let mut inputs = {
        let _t = trace::phase("engine and inputs");
        Inputs::gather(&request, &settings, provision::engine(&settings)?)?
    };
    let mut plan = {
        let _t = trace::phase("provision and plan");
        provision::standins(&mut inputs, request.registry.as_deref())?;
        let plan = plan::plan(&request, &inputs)?;
        provision::files(&plan)?;
        provision::sbom_generator(&plan)?;
        provision::fresh_contexts(&plan);
        plan
    };
    // Held until the clean-up after the build is done.
    let _exporting = crate::cache::lock::exporting(&plan.local_caches)?;
    plan.planned_in = started.elapsed().as_secs_f64();
    plan.notes.iter().for_each(|note| eprintln!("xtask: {note}"));
    if plan.output == Output::Check {
        return check::run(&plan);
    }
    let read = {
        let _t = trace::phase("context manifest");
        context::inputs(&plan)
    };
    let read_caches = registry_cache::digests(&plan, Side::Read);
    let mut outcome = {
        let _t = trace::phase("buildx");
        // BuildKit's own lines can pause for a long step: the phase keeps a line coming meanwhile.
        let progress = crate::util::progress::Phase::start(&format!("build: {}", plan.targets.join(", ")), None);
        let outcome = run::build(&plan)?;
        progress.done();
        outcome
    };
    // The history as it stands before this build's line: read once, for the causes, the table's
    // comparison and the HTML report.
    let history = crate::report::history();
    explain(&plan, &mut outcome.report, &read, &read_caches, &history);
    record(&plan, &outcome.report, &settings, &history);
    if outcome.is_transient() {
        eprintln!("xtask: the engine hit a known intermittent error while unpacking the image (moby/buildkit#6521); building once more");
        let history = crate::report::history();
        outcome = run::build(&plan)?;
        explain(&plan, &mut outcome.report, &read, &read_caches, &history);
        record(&plan, &outcome.report, &settings, &history);
    }
    let report = outcome.result()?;
    if let Some(key) = &key {
        let signed = crate::images::signing::sign_built(key, &report)?;
        if *key == crate::images::signing::KeyRef::Keyless {
            crate::images::keyless::write_summary(&signed)?;
        }
    }
    // The clean-up takes the lock whole, or leaves the folders to a later build (see cache::gc).
    drop(lock);
    match gc::after_build(&plan.local_caches) {
        Ok(Some(line)) => eprintln!("xtask: {line}"),
        Ok(None) => {}
        Err(e) => eprintln!("xtask: local cache clean-up skipped: {e:#}"),
    }
    Ok(())
}

/// Notes the registry caches the build read and wrote, says why each step that ran did (against
/// the last build of its target on this engine, or a newer one that wrote the registry cache it
/// read), and keeps this build's inputs beside its report for the next one.
fn explain(
    plan: &Plan,
    report: &mut crate::report::BuildReport,
    read: &BTreeMap<String, crate::report::why::TargetInputs>,
    read_caches: &BTreeMap<String, BTreeMap<String, String>>,
    history: &[crate::report::HistoryLine],
) {
    let _t = trace::phase("causes");
    // The registry caches the build read (as they were before it) and, when it passed, wrote.
    registry_cache::note(report, Side::Read, read_caches.clone());
    if report.status == crate::report::Status::Ok {
        registry_cache::note(report, Side::Written, registry_cache::digests(plan, Side::Written));
    }
    let prunes = |since: &str| crate::engine::events::cache_prunes_since(&plan.engine, since);
    crate::report::why::attach(report, read.clone(), history, &prunes);
}

/// The key `--sign` signs with (or keyless), checked before anything is built; None without `--sign`.
fn signing_key(opts: &Options) -> Result<Option<crate::images::signing::KeyRef>> {
    if opts.keyless && !opts.sign {
        anyhow::bail!("--keyless is a way to --sign: add --sign");
    }
    if !opts.sign {
        return Ok(None);
    }
    crate::images::signing::key_for_build(opts.push, opts.key.as_deref(), opts.keyless).map(Some)
}

/// Keeps a finished run's report (files and a history line) and the ids of the cache records it
/// made, shows it, and pushes its metrics: every way a run ends leaves this record.
fn record(
    plan: &Plan,
    report: &crate::report::BuildReport,
    settings: &Settings,
    history: &[crate::report::HistoryLine],
) {
    let _t = trace::phase("report");
    let previous = crate::report::last_comparable(report, history);
    match crate::report::save(report, history) {
        Ok(saved) => run::show(report, previous, &saved),
        Err(e) => eprintln!("warning: the build's report was not saved: {e:#}"),
    }
    if report.targets.iter().any(|t| t.steps_detail.iter().any(|s| !s.cached)) {
        if let Err(e) = crate::cache::records::keep_made_since(&plan.engine, &report.started) {
            eprintln!("warning: the cache records this build made were not kept (`clean` will leave them): {e:#}");
        }
    }
    if let Some(url) = settings.get("PUSHGATEWAY").filter(|u| !u.is_empty()) {
        match crate::report::metrics::push(url, report) {
            Ok(()) => eprintln!("metrics: pushed to {url}"),
            Err(e) => eprintln!("warning: metrics not pushed: {e:#}"),
        }
    }
}
