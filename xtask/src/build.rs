//! The building recipes (`build`, `backend`, `frontend`, `production`, `multiplatform`, and
//! `print`, `check` and `--dry-run` on the same path): flags → request → inputs (read) →
//! provision (changes, skipped by a dry run) → plan (pure) → run → report.

use anyhow::Result;

use crate::inputs::{self, Inputs};
use crate::plan::{self, Output};
pub use crate::request::{Options, Recipe, Request};
use crate::settings::Settings;
use crate::{cachegc, check, print, provision, request, run};

/// Plans and runs one recipe.
pub fn run(recipe: Recipe, names: &[String], opts: &Options) -> Result<()> {
    // Held until the build ends, so that `clean` removes nothing it uses.
    let _lock = if opts.dry_run { None } else { Some(crate::lock::shared()?) };
    // A signing request that cannot succeed is refused before anything is built.
    let key = if opts.sign { Some(crate::signing::key_for_build(opts.push, opts.key.as_deref())?) } else { None };
    let started = std::time::Instant::now();
    request::check_options(opts)?;
    let settings = Settings::load()?;
    let targets = crate::bake::Defaults::read(&crate::paths::project_root())?.targets();
    let request = Request::new(recipe, &request::recipe_names(recipe, names, &targets), opts, &settings)?;
    if opts.dry_run {
        // Read and plan only: no engine is started, no stand-in made, no file written.
        let inputs = Inputs::gather(&request, &settings, inputs::engine_if_any(&settings))?;
        return print::print_plan(&plan::plan(&request, &inputs)?);
    }
    let engine = provision::engine(&settings)?;
    let mut inputs = Inputs::gather(&request, &settings, engine)?;
    provision::standins(&mut inputs, request.registry.as_deref())?;
    let mut plan = plan::plan(&request, &inputs)?;
    provision::files(&plan)?;
    provision::sbom_generator(&plan)?;
    provision::fresh_contexts(&plan);
    plan.planned_in = started.elapsed().as_secs_f64();
    for note in &plan.notes {
        eprintln!("xtask: {note}");
    }
    if plan.output == Output::Check {
        return check::run(&plan);
    }
    run::build(&plan)?;
    if let Some(key) = &key {
        crate::signing::sign_last_build(key)?;
    }
    if let Some(line) = cachegc::after_build(&plan.local_caches) {
        eprintln!("xtask: {line}");
    }
    Ok(())
}
