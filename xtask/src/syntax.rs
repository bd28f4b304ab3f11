//! The `# syntax=docker/dockerfile:1.7` line when its frontend image cannot be had: from a
//! mirror, or the engine's built-in Dockerfile frontend reading a copy of the Dockerfile without
//! that line (kept under `target/xtask/dockerfiles/`, line numbers unchanged).

use anyhow::{bail, Context, Result};

use crate::bake::Definition;
use crate::engine::{self, Engine, Facts};
use crate::paths::{self, write_atomic};
use crate::settings::Settings;

const FRONTEND: &str = "docker/dockerfile:1.7";

/// Where the `# syntax=docker/dockerfile:1.7` frontend can come from.
pub enum FrontendSource {
    Registry,
    Mirror(String),
    Unreachable,
}

/// Asks the registry (then the mirror) for the Dockerfile frontend image; nothing is pulled.
pub fn frontend_source(engine: &Engine, settings: &Settings) -> FrontendSource {
    if engine.registry_has(FRONTEND) {
        return FrontendSource::Registry;
    }
    match settings.get("BASE_MIRROR").map(|m| format!("{}/{FRONTEND}", m.trim_end_matches('/'))) {
        Some(mirrored) if engine.registry_has(&mirrored) => FrontendSource::Mirror(mirrored),
        _ => FrontendSource::Unreachable,
    }
}

/// When the frontend cannot be resolved, builds from the same Dockerfile text minus the syntax
/// line, so the engine's built-in frontend (Dockerfile 1.7 in BuildKit 0.13) reads it; with a
/// mirror, BUILDKIT_SYNTAX points at the mirror's copy instead. Returns bake `--set`s and notes.
pub fn fallback(
    source: FrontendSource,
    facts: Option<&Facts>,
    def: &Definition,
    dry_run: bool,
) -> Result<(Vec<String>, Vec<String>)> {
    match source {
        FrontendSource::Registry => return Ok((vec![], vec![])),
        FrontendSource::Mirror(mirrored) => {
            return Ok((
                vec![format!("*.args.BUILDKIT_SYNTAX={mirrored}")],
                vec![format!("Dockerfile frontend from the mirror: {mirrored}")],
            ))
        }
        FrontendSource::Unreachable => {}
    }
    let buildkit = facts.and_then(|f| f.buildkit_version.clone());
    if let Some(v) = &buildkit {
        if *v < engine::BUILDKIT_FLOOR {
            bail!("{FRONTEND} cannot be resolved and BuildKit {v} embeds an older Dockerfile frontend: set BASE_MIRROR to a registry that has {FRONTEND}");
        }
        // Newer BuildKit can be told to ignore the directive: no copy of the Dockerfile needed.
        if *v >= semver::Version::new(0, 30, 0) {
            let note = format!("{FRONTEND} cannot be resolved: built with BuildKit {v}'s built-in Dockerfile frontend (BUILDKIT_SYNTAX=dockerfile.v0)");
            return Ok((vec!["*.args.BUILDKIT_SYNTAX=dockerfile.v0".to_string()], vec![note]));
        }
    }
    let mut sets = Vec::new();
    let dir = paths::xtask_dir().join("dockerfiles");
    for (t, target) in &def.target {
        let context = target.context.clone().unwrap_or_else(|| ".".to_string());
        let dockerfile = target.dockerfile.clone().unwrap_or_else(|| "Dockerfile".to_string());
        let source = paths::project_root().join(&context).join(&dockerfile);
        let text = std::fs::read_to_string(&source).with_context(|| format!("reading {}", source.display()))?;
        let copy = dir.join(context.replace('/', "_")).join("Dockerfile");
        if !dry_run {
            write_atomic(&copy, strip_syntax(&text).as_bytes())?;
        }
        sets.push(format!("{t}.dockerfile={}", copy.display()));
    }
    Ok((
        sets,
        vec![format!(
            "{FRONTEND} cannot be resolved: built with the engine's built-in Dockerfile frontend (BuildKit 0.13+ embeds 1.7)"
        )],
    ))
}

/// The Dockerfile without its `# syntax=` directive (only a leading parser directive counts).
pub fn strip_syntax(text: &str) -> String {
    let mut lines = text.lines();
    let mut out = String::new();
    if let Some(first) = lines.next() {
        let directive = first.trim_start_matches('#').trim().to_ascii_lowercase();
        if !(first.starts_with('#') && directive.starts_with("syntax")) {
            out.push_str(first);
            out.push('\n');
        } else {
            // Keep the line count, so BuildKit's error messages point at the same lines.
            out.push('\n');
        }
    }
    for l in lines {
        out.push_str(l);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_line_is_removed_and_line_numbers_kept() {
        let text = "# syntax=docker/dockerfile:1.7\nARG A=1\nFROM x\n";
        assert_eq!(strip_syntax(text), "\nARG A=1\nFROM x\n");
        let no_directive = "ARG A=1\n# syntax=late\n";
        assert_eq!(strip_syntax(no_directive), no_directive);
    }
}
