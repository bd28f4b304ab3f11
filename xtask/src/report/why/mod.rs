//! Why each step that ran did: this build's inputs (the context's content manifest, the build
//! arguments, the Dockerfile, the bases as resolved) against those of the last build of the same
//! target on the same engine. [`explain`] is pure; the orchestrator gathers the inputs.

pub(crate) mod dockerfile;
mod explain;
mod kept;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub(crate) use explain::{bases, explain};
pub(crate) use kept::attach;

/// What one target's build read, kept beside its report (`reports/inputs/ID.json`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct TargetInputs {
    /// The context as the Dockerfile sees it after `.dockerignore`: path → content hash. None when
    /// the context is not a local folder.
    #[serde(default)]
    pub(crate) files: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub(crate) args: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) dockerfile: String,
    /// Each stage's `FROM` step as the engine named it (the image with its digest).
    #[serde(default)]
    pub(crate) bases: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) no_cache: bool,
    /// The platforms the target is built for; empty: the engine's own.
    #[serde(default)]
    pub(crate) platforms: Vec<String>,
}

/// A build's inputs, per target.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct BuildInputs {
    pub(crate) id: String,
    pub(crate) targets: BTreeMap<String, TargetInputs>,
}

/// The build to compare with, as far as it could be found.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Previous<'a> {
    /// No earlier build of this target on this engine.
    None,
    /// One was found, but its inputs were not kept or cannot be read.
    Unreadable,
    Found(&'a TargetInputs),
    /// None on this engine, and the registry cache this build read was written by a build this
    /// history does not hold.
    Foreign(&'a str),
}

/// Why one step ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Cause {
    /// Files of the context that the step reads changed: the first few, and how many.
    Files {
        paths: Vec<String>,
        count: usize,
    },
    /// A build argument in the step's scope changed (values hidden for a secret-like name).
    Arg {
        name: String,
        old: Option<String>,
        new: Option<String>,
    },
    /// The target is built for other platforms (empty: the engine's own).
    Platforms {
        old: Vec<String>,
        new: Vec<String>,
    },
    /// The stage's base image resolved to another digest.
    Base {
        old: String,
        new: String,
    },
    /// The instruction, or one before it in its stage, changed.
    Instruction {
        line: usize,
        before: Option<String>,
        after: Option<String>,
    },
    /// A step it builds on ran; the cause is the first one found upstream.
    Upstream {
        step: String,
        cause: Box<Cause>,
    },
    /// Nothing that feeds it changed: the engine did not have the step's cache any more.
    CacheDropped,
    FirstBuild,
    NoCache,
    Unknown {
        why: String,
    },
}

/// A step that ran, with its cause as data and as one line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct StepCause {
    pub(crate) step: String,
    pub(crate) cause: Cause,
    pub(crate) text: String,
}

/// How many changed paths a cause names before it only counts.
pub(crate) const NAMED_PATHS: usize = 3;

/// Whether a build argument's value must not be shown.
pub(crate) fn secret_like(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    ["SECRET", "TOKEN", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL", "AUTH", "PRIVATE", "CERT"]
        .iter()
        .any(|w| n.contains(w))
}

impl Cause {
    /// The cause as the table, `report --why` and the HTML show it.
    pub(crate) fn text(&self) -> String {
        match self {
            Cause::Files { paths, count } => {
                let more = count.saturating_sub(paths.len());
                let tail = if more > 0 { format!(" and {more} more") } else { String::new() };
                let word = if *count == 1 { "file" } else { "files" };
                format!("context {word} changed: {}{tail}", paths.join(", "))
            }
            Cause::Arg { name, old, new } => {
                let show = |v: &Option<String>| match v {
                    _ if secret_like(name) => "(hidden)".to_string(),
                    Some(v) => format!("{v:?}"),
                    None => "(unset)".to_string(),
                };
                format!("build argument {name} changed: {} -> {}", show(old), show(new))
            }
            Cause::Platforms { old, new } => {
                let show = |v: &Vec<String>| if v.is_empty() { "the engine's own".to_string() } else { v.join(",") };
                format!("the target's platforms changed: {} -> {}", show(old), show(new))
            }
            Cause::Base { old, new } => format!("base image changed: {old} -> {new}"),
            Cause::Instruction { line, before, after } => {
                let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".to_string());
                format!("Dockerfile line {line} changed: `{}` -> `{}`", show(before), show(after))
            }
            Cause::Upstream { step, cause } => format!("an earlier step ran ({step}): {}", cause.text()),
            Cause::CacheDropped => {
                "nothing it reads changed: the engine no longer held this step's cache (pruned, evicted, or another engine)"
                    .to_string()
            }
            Cause::FirstBuild => "first build of this target on this engine (no earlier one in this history)".to_string(),
            Cause::NoCache => "--no-cache".to_string(),
            Cause::Unknown { why } => format!("cause unknown ({why})"),
        }
    }

    /// The cause at the root of a chain of steps that ran.
    pub(crate) fn root(&self) -> &Cause {
        match self {
            Cause::Upstream { cause, .. } => cause.root(),
            c => c,
        }
    }
}

/// The line a target's steps that ran get in the end-of-build table: how many ran, and the cause
/// of the first one.
pub(crate) fn top_cause(causes: &[StepCause]) -> Option<String> {
    let first = causes.first()?;
    let n = causes.len();
    let steps = if n == 1 { "1 step ran" } else { "steps ran" };
    let count = if n == 1 { steps.to_string() } else { format!("{n} {steps}") };
    Some(format!("{count}: {}", first.cause.root().text()))
}

/// `report --why [TARGET]`: each step of a build that ran, with its cause; an error names the
/// build's targets when `target` is not one of them.
pub(crate) fn listing(r: &crate::report::BuildReport, target: Option<&str>) -> Result<String, String> {
    if let Some(name) = target.filter(|n| !r.targets.iter().any(|t| t.name == *n)) {
        let names: Vec<&str> = r.targets.iter().map(|t| t.name.as_str()).collect();
        return Err(format!("build {} has no target `{name}`: it built {}", r.id, names.join(", ")));
    }
    let mut out = format!("build {} ({})\n", r.id, r.status);
    for t in r.targets.iter().filter(|t| target.is_none_or(|n| n == t.name)) {
        let ran: Vec<&crate::report::model::Step> =
            t.steps_detail.iter().filter(|s| !s.cached && crate::report::is_instruction(&s.name)).collect();
        if ran.is_empty() {
            out.push_str(&format!("{}: every step came from cache\n", t.name));
            continue;
        }
        out.push_str(&format!("{}: {} of {} steps ran\n", t.name, ran.len(), t.steps));
        if let Some(base) = &t.compared_with {
            out.push_str(&format!("  (against {base})\n"));
        }
        for s in ran {
            let why = t.causes.iter().find(|c| c.step == s.name).map_or_else(
                || "cause not recorded (the report was written before causes were kept)".to_string(),
                |c| c.text.clone(),
            );
            out.push_str(&format!("  {} ({:.1}s)\n      {why}\n", s.name, s.secs));
        }
    }
    Ok(out)
}
