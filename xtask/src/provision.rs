//! Changing the world so a plan can run: the private engine started when none answers, the
//! stand-in base images made when neither the official images nor stand-ins can be had, and the
//! files the plan builds from written. A dry run calls none of this (see `build::run`).

use anyhow::{Context, Result};

use crate::engine::{self, Engine};
use crate::inputs::Inputs;
use crate::paths::write_atomic;
use crate::plan::{Output, Plan};
use crate::settings::Settings;
use crate::standin;

/// The engine that answers, or the project's private one, started now.
pub fn engine(settings: &Settings) -> Result<Engine> {
    engine::connect(settings, true)
}

/// Makes the stand-ins the inputs found missing (a few minutes, once per engine and recipe).
pub fn standins(inputs: &mut Inputs) -> Result<()> {
    if inputs.bases.missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: {}", inputs.bases.making_line());
    standin::make_standins(&inputs.engine)?;
    inputs.bases.missing.clear();
    Ok(())
}

/// Writes the Dockerfile copies the plan builds from and makes the OCI archives' folder.
pub fn files(plan: &Plan) -> Result<()> {
    for (path, text) in &plan.files {
        write_atomic(path, text.as_bytes())?;
    }
    if let Output::Oci(dir) = &plan.output {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}
