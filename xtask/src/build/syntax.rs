//! The `# syntax=docker/dockerfile:1.7` line when its frontend image cannot be had: from a
//! mirror, or the engine's built-in Dockerfile frontend reading a copy of the Dockerfile without
//! that line (kept under `target/xtask/dockerfiles/`, line numbers unchanged). The fallback is
//! pure: the Dockerfiles are read beforehand and the copies written by the caller.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::engine::{self, Engine, Facts};
use crate::images::bake::{Definition, Target};
use crate::settings::Settings;

const FRONTEND: &str = "docker/dockerfile:1.7";

/// Where the `# syntax=docker/dockerfile:1.7` frontend can come from.
pub(crate) enum FrontendSource {
    Registry,
    Mirror(String),
    Unreachable,
}

/// Asks the registry (then the mirror) for the Dockerfile frontend image; nothing is pulled.
pub(crate) fn frontend_source(engine: &Engine, settings: &Settings) -> FrontendSource {
    if engine.registry_has(FRONTEND) {
        return FrontendSource::Registry;
    }
    match settings.get("BASE_MIRROR").map(|m| format!("{}/{FRONTEND}", m.trim_end_matches('/'))) {
        Some(mirrored) if engine.registry_has(&mirrored) => FrontendSource::Mirror(mirrored),
        _ => FrontendSource::Unreachable,
    }
}

/// What the fallback adds to a plan: bake `--set`s, notes, and the Dockerfile copies to write
/// before the build (path and text).
#[derive(Debug, Default)]
pub(crate) struct Fallback {
    pub(crate) sets: Vec<String>,
    pub(crate) notes: Vec<String>,
    pub(crate) files: Vec<(PathBuf, String)>,
}

/// Each target's Dockerfile, by its path below `root` as the definition names it (read only when
/// the frontend is unreachable: the fallback may build from copies of them).
pub(crate) fn dockerfiles(source: &FrontendSource, def: &Definition, root: &Path) -> BTreeMap<PathBuf, String> {
    if !matches!(source, FrontendSource::Unreachable) {
        return BTreeMap::new();
    }
    def.target
        .values()
        .map(dockerfile_of)
        .filter_map(|path| std::fs::read_to_string(root.join(&path)).ok().map(|text| (path, text)))
        .collect()
}

fn dockerfile_of(target: &Target) -> PathBuf {
    let context = target.context.as_deref().unwrap_or(".");
    Path::new(context).join(target.dockerfile.as_deref().unwrap_or("Dockerfile"))
}

/// When the frontend cannot be resolved, builds from the same Dockerfile text minus the syntax
/// line, so the engine's built-in frontend (Dockerfile 1.7 in BuildKit 0.13) reads it; with a
/// mirror, BUILDKIT_SYNTAX points at the mirror's copy instead. Pure: the copies are returned,
/// written under `xtask_dir` by the caller.
pub(crate) fn fallback(
    source: &FrontendSource,
    facts: Option<&Facts>,
    def: &Definition,
    dockerfiles: &BTreeMap<PathBuf, String>,
    xtask_dir: &Path,
) -> Result<Fallback> {
    match source {
        FrontendSource::Registry => return Ok(Fallback::default()),
        FrontendSource::Mirror(mirrored) => {
            return Ok(Fallback {
                sets: vec![format!("*.args.BUILDKIT_SYNTAX={mirrored}")],
                notes: vec![format!("Dockerfile frontend from the mirror: {mirrored}")],
                files: vec![],
            })
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
            return Ok(Fallback {
                sets: vec!["*.args.BUILDKIT_SYNTAX=dockerfile.v0".to_string()],
                notes: vec![note],
                files: vec![],
            });
        }
    }
    let mut out = Fallback::default();
    let dir = xtask_dir.join("dockerfiles");
    for (t, target) in &def.target {
        let source = dockerfile_of(target);
        let text = dockerfiles.get(&source).with_context(|| format!("reading {}: not found", source.display()))?;
        let context = target.context.clone().unwrap_or_else(|| ".".to_string());
        let copy = dir.join(context.replace('/', "_")).join("Dockerfile");
        out.sets.push(format!("{t}.dockerfile={}", copy.display()));
        out.files.push((copy, strip_syntax(text)));
    }
    out.notes.push(format!(
        "{FRONTEND} cannot be resolved: built with the engine's built-in Dockerfile frontend (BuildKit 0.13+ embeds 1.7)"
    ));
    Ok(out)
}

/// The Dockerfile without its `# syntax=` directive (only a leading parser directive counts).
pub(crate) fn strip_syntax(text: &str) -> String {
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
