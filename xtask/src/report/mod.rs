//! Measured builds: runs a plan's bake command with rawjson progress, shows a readable display,
//! and keeps a JSON + HTML report per build and a line per build in the history.
//! Also `cargo xtask report [--last | --compare A B | --list | --json]`.

mod buildx_history;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::build::{Output, Plan};
use crate::engine::EngineRecord;
use crate::oci;
use crate::paths::{self, write_atomic};
use crate::rawjson::{self, Event, Progress, Splitter};
use crate::runner;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BuildReport {
    pub id: String,
    pub started: String,
    /// "ok", "failed" or "interrupted".
    pub status: String,
    /// For an interrupted build, the signal that stopped it ("SIGINT", "SIGTERM", "SIGHUP").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// buildx's exit code (none when a signal ended it).
    pub exit_code: Option<i32>,
    pub names: Vec<String>,
    pub version: String,
    pub git_commit: String,
    /// Wall time of the whole xtask command, and of buildx alone; the difference is the xtask's
    /// own overhead (engine checks, planning, reading sizes).
    pub wall_secs: f64,
    pub buildx_secs: f64,
    pub command: String,
    pub notes: Vec<String>,
    /// Cache imports and exports that failed while the build went on without them (a registry
    /// down or refusing): the build passes, but the next one may not find its cache.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_warnings: Vec<String>,
    /// In a failed build, the target whose failure came first (the others were cancelled by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_first: Option<String>,
    pub targets: Vec<TargetReport>,
    #[serde(default)]
    pub errors: Vec<String>,
    /// The engine the build ran on (none in reports written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineRecord>,
    /// The cross-check against `docker buildx history` in one line, or why there is none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub history: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TargetReport {
    pub name: String,
    /// "ok", "failed", or "cancelled": stopped unfinished because another target failed or the
    /// build was stopped (BuildKit then cancels every step still running).
    #[serde(default)]
    pub outcome: String,
    pub wall_secs: f64,
    pub steps: usize,
    pub cached: usize,
    pub cache_hit_ratio: f64,
    /// Steps that really ran a command (RUN), and how many of them did.
    pub run_steps: usize,
    pub run_steps_executed: usize,
    pub context_bytes: i64,
    pub image: Option<String>,
    pub digest: Option<String>,
    /// Uncompressed bytes of the image's layers for the engine's platform (see `image_size`).
    pub size_bytes: Option<u64>,
    /// For a multi-platform image: compressed layer bytes per platform, from its manifests.
    #[serde(default)]
    pub platform_sizes: BTreeMap<String, u64>,
    pub slowest: Vec<Step>,
    pub steps_detail: Vec<Step>,
    pub errors: Vec<String>,
    /// BuildKit's record of this target's build (`builder/node/id`, for `docker buildx history`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_check: Option<buildx_history::HistoryCheck>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Step {
    pub name: String,
    /// Seconds from the start of the target's first step.
    pub start: f64,
    pub secs: f64,
    pub cached: bool,
    pub error: bool,
}

/// One line of history.jsonl: the numbers needed to compare builds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HistoryLine {
    pub id: String,
    pub started: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    pub names: Vec<String>,
    pub wall_secs: f64,
    pub targets: Vec<HistoryTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineRecord>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HistoryTarget {
    pub name: String,
    pub wall_secs: f64,
    pub steps: usize,
    pub cached: usize,
    pub size_bytes: Option<u64>,
}

/// Runs the plan's build, then writes the report and history, prints the table, and turns a
/// failure into an error naming the failing targets with their last log lines.
pub fn build(plan: &Plan) -> Result<()> {
    match attempt(plan) {
        Err(e) if is_transient(&format!("{e:#}")) && runner::stopped().is_none() => {
            eprintln!(
                "xtask: the engine hit a known intermittent error while unpacking the image (moby/buildkit#6521); building once more"
            );
            attempt(plan)
        }
        other => other,
    }
}

/// The containerd image store sometimes loses a parent snapshot while unpacking a fresh image; a
/// second attempt, fully cached, goes through.
pub fn is_transient(error: &str) -> bool {
    error.contains("failed to prepare extraction snapshot") && error.contains("parent snapshot")
}

/// One run of the build, recorded in the history whatever its outcome: a stop signal included,
/// which then ends the run with [`runner::Stopped`].
fn attempt(plan: &Plan) -> Result<()> {
    let _recording = runner::recording();
    let started_at = Utc::now();
    let t0 = Instant::now();
    let mut display = Display::new(&plan.progress);
    let mut splitter = Splitter::default();
    let mut progress = Progress::default();
    let tb = Instant::now();
    let status = runner::run_streaming(&plan.bake, |chunk| {
        display.raw(chunk);
        for s in splitter.feed(chunk) {
            for ev in progress.apply(s) {
                display.event(&progress, &ev);
            }
        }
    })?;
    let buildx_secs = tb.elapsed().as_secs_f64();
    let stop = runner::stopped();
    let mut report =
        summarize(&plan.targets, &progress, started_at.to_rfc3339_opts(SecondsFormat::Millis, true), status.success());
    report.names = plan.names.clone();
    report.version = plan.metadata.version.to_string();
    report.git_commit = plan.metadata.git_commit.clone();
    report.command = plan.bake.command_line();
    report.notes = plan.notes.clone();
    // A stop wins over buildx's own status: buildx may still have finished before it took effect,
    // but the person asked for the build to end, and the exit code says so.
    report.status = if stop.is_some() {
        "interrupted"
    } else if status.success() {
        "ok"
    } else {
        "failed"
    }
    .to_string();
    report.signal = stop.map(|s| s.name());
    report.exit_code = status.code();
    report.buildx_secs = buildx_secs;
    report.engine = plan.facts.as_ref().map(|f| f.record(plan.engine.spec.map(|s| s.name())));
    let meta: serde_json::Value = std::fs::read_to_string(&plan.metadata_file)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    buildx_history::references(&meta, &mut report);
    if status.success() && stop.is_none() {
        fill_images(plan, &meta, &mut report);
    }
    let _ = std::fs::remove_file(&plan.metadata_file);
    let history_warning = buildx_history::cross_check(
        &plan.engine,
        &mut report,
        plan.facts.as_ref().is_some_and(|f| f.capabilities().history),
    );
    if !status.success() {
        let stray = runner::last_lines(&splitter.stray, 8);
        if !stray.is_empty() {
            report.errors.push(stray);
        }
    }
    let succeeded = status.success() && stop.is_none();
    // Only a failure needs the Dockerfiles, to place an error buildx only printed.
    let sources = if succeeded { Vec::new() } else { sources(plan) };
    judge(&mut report, &progress, succeeded, &splitter.stray, &sources);
    report.cache_warnings = cache_trouble(&progress);
    // The planning before buildx started counts too: the report's wall time is the whole command's.
    report.wall_secs = t0.elapsed().as_secs_f64() + plan.planned_in;
    let previous = history().into_iter().rev().find(|h| comparable(h, &report.names, &report.engine));
    let path = save(&report)?;
    print_table(&report, previous.as_ref());
    // After SIGHUP the terminal may be gone: a failed write must not end the run before its exit code.
    let _ = writeln!(std::io::stderr(), "report: {}", path.display());
    if !report.cache_warnings.is_empty() {
        let _ = writeln!(std::io::stderr(), "{}", cache_warning_line(&report.cache_warnings));
    }
    if let Some(line) = history_warning {
        let _ = writeln!(std::io::stderr(), "{line}");
    }
    if let Some(stop) = stop {
        return Err(runner::Stopped { stop, history: paths::history_file() }.into());
    }
    if !status.success() {
        let summary = failure_summary(&report);
        let mut msg = if plan.engine.answers() {
            format!("`docker buildx bake` failed ({})", runner::describe(status))
        } else {
            format!(
                "the Docker engine at {} stopped answering during the build (`docker buildx bake` {}): restart it (`cargo xtask engine up` for the private one) and build again",
                plan.engine.describe(),
                runner::describe(status)
            )
        };
        if !summary.is_empty() {
            msg.push_str(&format!("; {summary}"));
        }
        let tail = failing_log_tail(&progress);
        if !tail.is_empty() {
            msg.push_str(&format!("\nlast lines of the failing step:\n{tail}"));
        } else if let Some(e) = report.errors.first() {
            msg.push_str(&format!("\n{e}"));
        }
        bail!(msg);
    }
    Ok(())
}

/// Each target's Dockerfile as the repository has it: the syntax fallback builds from a copy under
/// `target/xtask/dockerfiles/`, but a person fixes the file they wrote.
fn sources(plan: &Plan) -> Vec<Source> {
    let root = paths::project_root();
    plan.targets
        .iter()
        .filter_map(|t| {
            let def = plan.definition.target.get(t)?;
            let context = std::path::Path::new(def.context.as_deref().unwrap_or("."));
            let path = context.join(def.dockerfile.as_deref().unwrap_or("Dockerfile"));
            let text = std::fs::read_to_string(root.join(&path)).ok()?;
            let shown = path.strip_prefix(".").unwrap_or(&path).display().to_string();
            Some(Source { target: t.clone(), path: shown, text })
        })
        .collect()
}

fn failing_log_tail(progress: &Progress) -> String {
    progress
        .order
        .iter()
        .filter(|d| is_failure(&progress.vertexes[*d]))
        .filter_map(|d| progress.log_tail.get(d))
        .flat_map(|lines| lines.iter().rev().take(10).rev().cloned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Per-target numbers from the final state of every vertex. `succeeded`: buildx finished the
/// build (then a step it never started was not needed by this build: see [`merge_step`]).
pub fn summarize(targets: &[String], progress: &Progress, started: String, succeeded: bool) -> BuildReport {
    let mut per: BTreeMap<String, Vec<&rawjson::Vertex>> = BTreeMap::new();
    for d in &progress.order {
        let v = &progress.vertexes[d];
        if let Some(t) = owner(&v.name, targets) {
            per.entry(t.clone()).or_default().push(v);
        }
    }
    let mut out = BuildReport { id: new_id(), started, ..BuildReport::default() };
    for name in targets {
        let vs = per.get(name).cloned().unwrap_or_default();
        let first = vs.iter().filter_map(|v| rawjson::timestamp(&v.started)).min();
        let last = vs.iter().filter_map(|v| rawjson::timestamp(&v.completed)).max();
        let wall = match (first, last) {
            (Some(a), Some(b)) => (b - a).num_milliseconds() as f64 / 1000.0,
            _ => 0.0,
        };
        // One step per name: a digest is sent again whenever its vertex changes (the last state
        // per digest already wins in `Progress`), and when another build runs the same step at
        // the same moment, BuildKit's solver shares it and this stream also carries the other
        // build's vertex under another digest, with the same name.
        let mut names: Vec<&str> = Vec::new();
        let mut same: BTreeMap<&str, Vec<&rawjson::Vertex>> = BTreeMap::new();
        for v in &vs {
            if !same.contains_key(v.name.as_str()) {
                names.push(&v.name);
            }
            same.entry(&v.name).or_default().push(v);
        }
        let mut steps: Vec<Step> = names.iter().map(|n| merge_step(&same[n], first, succeeded)).collect();
        steps.sort_by(|a, b| a.start.total_cmp(&b.start));
        // The cache counts cover the Dockerfile's own instructions (`[stage n/m] RUN ...`), not
        // BuildKit's bookkeeping (loading the definition, exporting) nor FROM, which is resolved
        // anew on every build: a warm build then shows 100%.
        let instructions: Vec<&Step> = steps.iter().filter(|s| is_instruction(&s.name)).collect();
        let cached = instructions.iter().filter(|s| s.cached).count();
        let is_run = |s: &Step| s.name.contains("] RUN ");
        let mut slowest: Vec<Step> = steps.iter().filter(|s| !s.cached).cloned().collect();
        slowest.sort_by(|a, b| b.secs.total_cmp(&a.secs));
        slowest.truncate(5);
        out.targets.push(TargetReport {
            name: name.clone(),
            wall_secs: wall,
            steps: instructions.len(),
            cached,
            cache_hit_ratio: if instructions.is_empty() { 0.0 } else { cached as f64 / instructions.len() as f64 },
            run_steps: steps.iter().filter(|s| is_run(s)).count(),
            run_steps_executed: steps.iter().filter(|s| is_run(s) && !s.cached).count(),
            context_bytes: vs
                .iter()
                .filter(|v| v.name.contains("load build context"))
                .filter_map(|v| progress.context_bytes.get(&v.digest))
                .sum(),
            errors: vs.iter().filter(|v| is_failure(v)).map(|v| format!("{}: {}", v.name, v.error)).collect(),
            slowest,
            steps_detail: steps,
            ..TargetReport::default()
        });
    }
    out
}

/// One step from the vertices that carry its name. The timings are those of a vertex that
/// completed; the step counts as cached when every completed one was, or when the build finished
/// without ever starting it (another build's identical step did the work, or a cached later step
/// made it unnecessary): either way this build did not run it.
fn merge_step(
    vertices: &[&rawjson::Vertex],
    first: Option<chrono::DateTime<chrono::FixedOffset>>,
    succeeded: bool,
) -> Step {
    let done: Vec<&&rawjson::Vertex> = vertices.iter().filter(|v| v.completed.is_some()).collect();
    let v = done.first().copied().unwrap_or(&vertices[0]);
    let never_started = vertices.iter().all(|v| v.started.is_none());
    Step {
        name: v.name.clone(),
        start: match (first, rawjson::timestamp(&v.started)) {
            (Some(a), Some(s)) => (s - a).num_milliseconds() as f64 / 1000.0,
            _ => 0.0,
        },
        secs: rawjson::duration(v),
        cached: (!done.is_empty() && done.iter().all(|v| v.cached)) || (succeeded && never_started),
        error: vertices.iter().any(|v| !v.error.is_empty()),
    }
}

/// The target a step belongs to; in a one-target build every step is its own.
fn owner<'a>(name: &str, targets: &'a [String]) -> Option<&'a String> {
    rawjson::target_of(name, targets).or_else(|| (targets.len() == 1).then(|| &targets[0]))
}

/// A Dockerfile instruction other than FROM: its name carries the step counter, `[... n/m] RUN`.
pub fn is_instruction(name: &str) -> bool {
    let Some(end) = name.find("] ") else { return false };
    let counter = name[..end].rsplit(' ').next().unwrap_or("");
    let numbered = counter.split_once('/').is_some_and(|(a, b)| {
        let a = a.trim_start_matches('[');
        !a.is_empty() && a.chars().all(|c| c.is_ascii_digit()) && !b.is_empty() && b.chars().all(|c| c.is_ascii_digit())
    });
    numbered && !name[end + 2..].starts_with("FROM ")
}

/// A step that failed on its own account: not one cancelled because something else failed, and
/// not a cache import or export, which BuildKit gets past without.
fn is_failure(v: &rawjson::Vertex) -> bool {
    !v.error.is_empty() && !rawjson::is_cancel(&v.error) && !is_cache_step(&v.name)
}

/// BuildKit's cache import and export steps: `importing cache manifest from REF`,
/// `exporting cache to registry`, `exporting cache to client directory`, with or without a
/// `[target]` prefix.
fn is_cache_step(name: &str) -> bool {
    name.contains("importing cache manifest") || name.contains("exporting cache")
}

/// The cache imports and exports that failed, one line each: the step, and the cause as the
/// last part of BuildKit's error chain (`dial tcp 127.0.0.1:5999: connect: connection refused`)
/// next to the whole chain for the report.
pub fn cache_trouble(progress: &Progress) -> Vec<String> {
    let mut out = Vec::new();
    for d in &progress.order {
        let v = &progress.vertexes[d];
        if !is_cache_step(&v.name) || rawjson::is_cancel(&v.error) {
            continue;
        }
        let logged: Vec<&String> = progress
            .log_tail
            .get(d)
            .map(|lines| lines.iter().filter(|l| l.trim_start().starts_with("ERROR")).collect())
            .unwrap_or_default();
        if !v.error.is_empty() {
            out.push(format!("{}: {}", v.name, v.error));
        } else if let Some(line) = logged.last() {
            out.push(format!("{}: {}", v.name, line.trim()));
        }
    }
    out
}

/// The one warning line for cache trouble: each step with the innermost cause only.
pub fn cache_warning_line(trouble: &[String]) -> String {
    let short: Vec<String> = trouble
        .iter()
        .map(|t| {
            let (step, error) = t.split_once(": ").unwrap_or((t, ""));
            let cause = error.rsplit_once("\": ").map_or(error, |(_, c)| c);
            format!("{step} ({cause})")
        })
        .collect();
    format!(
        "xtask: warning: the build passed, but its cache did not work: {}; see `cargo xtask report`",
        short.join("; ")
    )
}

/// A Dockerfile a target builds from: its path in the repository and its text.
pub struct Source {
    pub target: String,
    pub path: String,
    pub text: String,
}

/// Judges each target of a finished build: failed, cancelled or ok, which failed first, and the
/// Dockerfile and line behind an error buildx only printed (a parse error fails before any step,
/// so no step carries it). `stray` is the text buildx wrote outside the JSON objects.
pub fn judge(report: &mut BuildReport, progress: &Progress, succeeded: bool, stray: &str, sources: &[Source]) {
    let targets: Vec<String> = report.targets.iter().map(|t| t.name.clone()).collect();
    // buildx names every Dockerfile `Dockerfile` (the syntax fallback's copy too): the excerpt's
    // lines say which one it is.
    let located: Option<(&Source, rawjson::Snippet)> = rawjson::snippets(stray).into_iter().find_map(|s| {
        let mut matching = sources.iter().filter(|src| rawjson::snippet_matches(&s, &src.text));
        match (matching.next(), matching.next()) {
            (Some(src), None) => Some((src, s)),
            _ => None,
        }
    });
    let mut first: Option<(chrono::DateTime<chrono::FixedOffset>, String)> = None;
    for t in &mut report.targets {
        if succeeded {
            t.outcome = "ok".to_string();
            continue;
        }
        let steps: Vec<&rawjson::Vertex> = progress
            .order
            .iter()
            .map(|d| &progress.vertexes[d])
            .filter(|v| owner(&v.name, &targets) == Some(&t.name))
            .collect();
        for v in steps.iter().filter(|v| is_failure(v)) {
            if let Some(at) = rawjson::timestamp(&v.completed) {
                if first.as_ref().is_none_or(|(when, _)| at < *when) {
                    first = Some((at, t.name.clone()));
                }
            }
        }
        let named = located.as_ref().is_some_and(|(src, _)| src.target == t.name);
        if named {
            let (src, s) = located.as_ref().unwrap();
            let error = s.error.strip_prefix("failed to solve: ").unwrap_or(&s.error);
            t.errors.insert(0, format!("{}:{}: {error}", src.path, s.line));
        }
        let unfinished =
            steps.is_empty() || steps.iter().any(|v| v.completed.is_none() || rawjson::is_cancel(&v.error));
        t.outcome = if !t.errors.is_empty() {
            "failed"
        } else if unfinished {
            "cancelled"
        } else {
            "ok"
        }
        .to_string();
    }
    // A parse error stops its target before any step ran: nothing can have failed before it.
    report.failed_first = match (&located, first) {
        (Some((src, _)), _) if report.targets.iter().any(|t| t.name == src.target && t.outcome == "failed") => {
            Some(src.target.clone())
        }
        (_, Some((_, name))) => Some(name),
        _ => report.targets.iter().find(|t| t.outcome == "failed").map(|t| t.name.clone()),
    };
}

/// The failure summary: the target that failed first, then any other failed ones, then the
/// cancelled ones by name only (their steps only say "context canceled").
pub fn failure_summary(report: &BuildReport) -> String {
    let mut failed: Vec<&TargetReport> = report.targets.iter().filter(|t| t.outcome == "failed").collect();
    failed.sort_by_key(|t| Some(&t.name) != report.failed_first.as_ref());
    let mut parts: Vec<String> = Vec::new();
    if !failed.is_empty() {
        let each: Vec<String> = failed.iter().map(|t| format!("{}: {}", t.name, t.errors.join("; "))).collect();
        parts.push(format!("failing: {}", each.join(" | ")));
    }
    let cancelled: Vec<&str> =
        report.targets.iter().filter(|t| t.outcome == "cancelled").map(|t| t.name.as_str()).collect();
    if !cancelled.is_empty() {
        parts.push(format!("cancelled: {}", cancelled.join(", ")));
    }
    parts.join("; ")
}

/// Digest from the metadata file and size from the engine, for each target that has an image.
fn fill_images(plan: &Plan, meta: &serde_json::Value, report: &mut BuildReport) {
    for t in &mut report.targets {
        let m = &meta[&t.name];
        t.digest = m["containerimage.digest"].as_str().map(str::to_string);
        t.image = m["image.name"].as_str().and_then(|n| n.split(',').next()).map(str::to_string);
    }
    // One `docker history` per image, side by side.
    let engine = &plan.engine;
    std::thread::scope(|s| {
        let jobs: Vec<_> = report
            .targets
            .iter()
            .map(|t| t.image.clone().map(|image| s.spawn(move || engine.image_size(&image))))
            .collect();
        for (t, job) in report.targets.iter_mut().zip(jobs) {
            t.size_bytes = job.and_then(|j| j.join().ok().flatten());
        }
    });
    for t in &mut report.targets {
        if plan.definition.target.get(&t.name).is_some_and(|d| d.platforms.len() > 1) {
            t.platform_sizes = platform_sizes(plan, t).unwrap_or_default();
        }
    }
}

/// Per-platform sizes of a multi-platform image, from its manifests: in the OCI archive it was
/// written to, or in the registry it was pushed to. An image loaded into the engine is not
/// measured per platform: exporting it whole to read its manifests costs seconds per build.
fn platform_sizes(plan: &Plan, t: &TargetReport) -> Option<BTreeMap<String, u64>> {
    match &plan.output {
        Output::Oci(dir) => {
            let archive = std::fs::File::open(dir.join(format!("{}.tar", t.name))).ok()?;
            return oci::platform_sizes(archive).ok();
        }
        Output::Load | Output::Check => return None,
        Output::Push => {}
    }
    let image = t.image.as_deref()?;
    let repo = image.rsplit_once(':').filter(|(r, _)| !r.ends_with('/')).map_or(image, |(r, _)| r);
    let raw = |reference: &str| -> Option<serde_json::Value> {
        let cmd = plan.engine.docker().args(["buildx", "imagetools", "inspect", "--raw", reference]);
        serde_json::from_str(&runner::read(&cmd).ok()?).ok()
    };
    let index = raw(&format!("{repo}@{}", t.digest.as_deref()?))?;
    Some(oci::sizes(&index, |digest| raw(&format!("{repo}@{digest}"))))
}

fn save(report: &BuildReport) -> Result<std::path::PathBuf> {
    let dir = paths::reports_dir();
    let json = dir.join(format!("{}.json", report.id));
    write_atomic(&json, serde_json::to_string_pretty(report)?.as_bytes())?;
    write_atomic(&dir.join(format!("{}.html", report.id)), html(report).as_bytes())?;
    append_history(&paths::history_file(), &history_line(report))?;
    Ok(dir.join(format!("{}.html", report.id)))
}

pub fn history_line(r: &BuildReport) -> HistoryLine {
    HistoryLine {
        id: r.id.clone(),
        started: r.started.clone(),
        status: r.status.clone(),
        signal: r.signal.clone(),
        names: r.names.clone(),
        wall_secs: r.wall_secs,
        targets: r
            .targets
            .iter()
            .map(|t| HistoryTarget {
                name: t.name.clone(),
                wall_secs: t.wall_secs,
                steps: t.steps,
                cached: t.cached,
                size_bytes: t.size_bytes,
            })
            .collect(),
        engine: r.engine.clone(),
    }
}

/// A build to compare with: one that passed, of the same targets, on the same engine (a build on
/// another engine or another version of it measures the engine, not the change).
pub fn comparable(h: &HistoryLine, names: &[String], engine: &Option<EngineRecord>) -> bool {
    h.status == "ok" && h.names == names && &h.engine == engine
}

/// Appends one line by writing the whole file anew and renaming it into place: a reader (or a
/// crash) never sees a half-written line.
pub fn append_history(path: &std::path::Path, line: &HistoryLine) -> Result<()> {
    let mut text = std::fs::read_to_string(path).unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&serde_json::to_string(line)?);
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

pub fn read_history(path: &std::path::Path) -> Vec<HistoryLine> {
    std::fs::read_to_string(path).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn history() -> Vec<HistoryLine> {
    read_history(&paths::history_file())
}

pub fn new_id() -> String {
    format!("{}-{}", Utc::now().format("%Y%m%dT%H%M%S%.3fZ"), std::process::id())
}

fn mb(bytes: Option<u64>) -> String {
    bytes.map_or("-".to_string(), |b| format!("{:.1} MB", b as f64 / 1e6))
}

fn pct(old: f64, new: f64) -> String {
    if old == 0.0 {
        return "-".to_string();
    }
    format!("{:+.0}%", (new - old) / old * 100.0)
}

/// The short table printed after each build.
pub fn table(r: &BuildReport, previous: Option<&HistoryLine>) -> String {
    let mut out = format!("{:<24} {:>8} {:>10} {:>10}  {}\n", "target", "time", "cached", "size", "vs previous build");
    for t in &r.targets {
        let before = previous.and_then(|p| p.targets.iter().find(|x| x.name == t.name));
        let vs = match before {
            Some(b) => {
                let size = match (b.size_bytes, t.size_bytes) {
                    (Some(x), Some(y)) => format!(", size {:+.1} MB", (y as f64 - x as f64) / 1e6),
                    _ => String::new(),
                };
                format!("time {:+.1}s ({}){size}", t.wall_secs - b.wall_secs, pct(b.wall_secs, t.wall_secs))
            }
            None => "first build on this engine".to_string(),
        };
        // A failed or cancelled target's numbers cover only what ran before it stopped.
        let vs = match t.outcome.as_str() {
            "failed" if r.failed_first.as_ref() == Some(&t.name) => "FAILED (first)".to_string(),
            "failed" => "FAILED".to_string(),
            "cancelled" => "cancelled".to_string(),
            _ => vs,
        };
        out.push_str(&format!(
            "{:<24} {:>7.1}s {:>10} {:>10}  {}\n",
            t.name,
            t.wall_secs,
            format!("{}/{}", t.cached, t.steps),
            mb(t.size_bytes),
            vs
        ));
    }
    for t in r.targets.iter().filter(|t| !t.platform_sizes.is_empty()) {
        let each: Vec<String> = t.platform_sizes.iter().map(|(p, b)| format!("{p} {}", mb(Some(*b)))).collect();
        out.push_str(&format!("{}: {} (compressed layers per platform)\n", t.name, each.join(", ")));
    }
    for w in &r.cache_warnings {
        out.push_str(&format!("cache not used or kept: {w}\n"));
    }
    if let Some(e) = &r.engine {
        out.push_str(&format!("engine: {}\n", e.line()));
    }
    if !r.history.is_empty() {
        out.push_str(&format!("{}\n", r.history));
    }
    let signal = r.signal.as_ref().map(|s| format!(" by {s}")).unwrap_or_default();
    out.push_str(&format!("{}{signal} in {:.1}s (buildx {:.1}s)\n", r.status, r.wall_secs, r.buildx_secs));
    out
}

fn print_table(r: &BuildReport, previous: Option<&HistoryLine>) {
    let _ = std::io::stderr().write_all(table(r, previous).as_bytes());
}

/// The targets two builds share, and those only one of them built (each in its build's order).
pub struct TargetSets {
    pub shared: Vec<String>,
    pub only_before: Vec<String>,
    pub only_after: Vec<String>,
}

pub fn target_sets(a: &HistoryLine, b: &HistoryLine) -> TargetSets {
    let has = |h: &HistoryLine, name: &str| h.targets.iter().any(|t| t.name == name);
    let names = |h: &HistoryLine| h.targets.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    TargetSets {
        shared: names(b).into_iter().filter(|n| has(a, n)).collect(),
        only_before: names(a).into_iter().filter(|n| !has(b, n)).collect(),
        only_after: names(b).into_iter().filter(|n| !has(a, n)).collect(),
    }
}

/// The one warning line when two compared builds built different targets, if they did.
pub fn different_targets_warning(sets: &TargetSets) -> Option<String> {
    if sets.only_before.is_empty() && sets.only_after.is_empty() {
        return None;
    }
    let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
    Some(format!(
        "xtask: warning: the builds built different targets (only before: {}; only after: {}): comparing the ones they share ({})",
        list(&sets.only_before),
        list(&sets.only_after),
        list(&sets.shared)
    ))
}

/// Two builds side by side: time and size, absolute and percent, for the targets both built; a
/// target only one built gets a row saying so.
pub fn compare(a: &HistoryLine, b: &HistoryLine) -> String {
    let sets = target_sets(a, b);
    let mut out = format!("before {} ({})  after {} ({})\n", a.id, a.status, b.id, b.status);
    out.push_str(&format!(
        "{:<24} {:>9} {:>9} {:>9} {:>7}   {:>10} {:>10} {:>10} {:>7}\n",
        "target", "time A", "time B", "delta", "%", "size A", "size B", "delta", "%"
    ));
    let find = |h: &'_ HistoryLine, name: &str| h.targets.iter().find(|t| t.name == name).cloned().unwrap_or_default();
    for name in &sets.shared {
        let (ta, tb) = (find(a, name), find(b, name));
        let (sa, sb) = (ta.size_bytes.unwrap_or(0) as f64, tb.size_bytes.unwrap_or(0) as f64);
        out.push_str(&format!(
            "{:<24} {:>8.1}s {:>8.1}s {:>+8.1}s {:>7}   {:>10} {:>10} {:>+7.1} MB {:>7}\n",
            name,
            ta.wall_secs,
            tb.wall_secs,
            tb.wall_secs - ta.wall_secs,
            pct(ta.wall_secs, tb.wall_secs),
            mb(ta.size_bytes),
            mb(tb.size_bytes),
            (sb - sa) / 1e6,
            pct(sa, sb)
        ));
    }
    for (names, side) in [(&sets.only_before, "before"), (&sets.only_after, "after")] {
        for name in names {
            out.push_str(&format!("{name:<24} only in the {side} build: not compared\n"));
        }
    }
    let whole = if sets.only_before.is_empty() && sets.only_after.is_empty() {
        "whole build"
    } else {
        "whole build (not alike)"
    };
    out.push_str(&format!(
        "{:<24} {:>8.1}s {:>8.1}s {:>+8.1}s {:>7}\n",
        whole,
        a.wall_secs,
        b.wall_secs,
        b.wall_secs - a.wall_secs,
        pct(a.wall_secs, b.wall_secs)
    ));
    out
}

/// The history as a table with a header; the id column is as wide as the longest id, so the
/// columns stay aligned whatever the process ids were.
pub fn list(history: &[HistoryLine]) -> String {
    let width = history.iter().map(|h| h.id.len()).max().unwrap_or(0).max(2);
    let mut out = format!(
        "{:<width$}  {:<24}  {:<18}  {:>8}  {:<16}  {}\n",
        "id", "started", "status", "time", "engine", "built"
    );
    for h in history {
        let status = match &h.signal {
            Some(s) => format!("{} {}", h.status, s),
            None => h.status.clone(),
        };
        out.push_str(&format!(
            "{:<width$}  {:<24}  {:<18}  {:>7.1}s  {:<16}  {}\n",
            h.id,
            h.started,
            status,
            h.wall_secs,
            h.engine.as_ref().map_or("-".to_string(), EngineRecord::short),
            h.names.join(",")
        ));
    }
    out
}

/// Finds a build by id, `last` or `last~N`.
pub fn pick<'a>(history: &'a [HistoryLine], id: &str) -> Result<&'a HistoryLine> {
    let back = if id == "last" {
        Some(0)
    } else {
        id.strip_prefix("last~")
            .map(|n| n.parse::<usize>())
            .transpose()
            .with_context(|| format!("`{id}`: write last~N with a number"))?
    };
    let found = match back {
        Some(n) => history.iter().rev().nth(n),
        None => history.iter().find(|h| h.id == id),
    };
    found.with_context(|| format!("no build `{id}` in the history: see `cargo xtask report --list`"))
}

/// `cargo xtask report`.
pub fn command(compare_flag: bool, list: bool, json: bool, ids: &[String]) -> Result<()> {
    let history = history();
    if history.is_empty() {
        bail!("no builds recorded yet in {}: run `cargo xtask build` first", paths::history_file().display());
    }
    if list {
        if json {
            println!("{}", serde_json::to_string_pretty(&history)?);
        } else {
            print!("{}", self::list(&history));
        }
        return Ok(());
    }
    if compare_flag {
        let [a, b] = ids else { bail!("--compare takes two builds, e.g. `--compare last~1 last`") };
        let (a, b) = (pick(&history, a)?, pick(&history, b)?);
        let sets = target_sets(a, b);
        if let Some(line) = different_targets_warning(&sets) {
            eprintln!("{line}");
        }
        if a.engine != b.engine {
            let which = |e: &Option<EngineRecord>| {
                e.as_ref().map_or("not recorded".to_string(), |e| format!("{}, Docker {}", e.short(), e.docker))
            };
            eprintln!(
                "xtask: warning: the builds ran on different engines ({} before, {} after): the difference measures the engine too",
                which(&a.engine),
                which(&b.engine)
            );
        }
        if json {
            let value = serde_json::json!({
                "before": a,
                "after": b,
                "shared": sets.shared,
                "only_before": sets.only_before,
                "only_after": sets.only_after,
            });
            println!("{}", serde_json::to_string_pretty(&value)?);
        } else {
            print!("{}", compare(a, b));
        }
        return Ok(());
    }
    let id = ids.first().map_or("last", String::as_str);
    let h = pick(&history, id)?;
    let path = paths::reports_dir().join(format!("{}.json", h.id));
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    if json {
        println!("{text}");
        return Ok(());
    }
    let report: BuildReport = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let previous = history.iter().take_while(|x| x.id != h.id).filter(|x| comparable(x, &h.names, &h.engine)).last();
    print!("{}", table(&report, previous));
    for t in &report.targets {
        println!(
            "{}: {} of {} RUN steps executed, context {} bytes",
            t.name, t.run_steps_executed, t.run_steps, t.context_bytes
        );
        for s in &t.slowest {
            println!("  {:>7.1}s  {}", s.secs, s.name);
        }
    }
    println!("html: {}", paths::reports_dir().join(format!("{}.html", h.id)).display());
    Ok(())
}

/// A self-contained page: the summary table and a timeline per target, cached steps grey.
pub fn html(r: &BuildReport) -> String {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let mut rows = String::new();
    for t in &r.targets {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{:.1}s</td><td>{}/{}</td><td>{:.0}%</td><td>{}</td><td>{}</td><td>{}/{}</td></tr>\n",
            esc(&t.name),
            t.wall_secs,
            t.cached,
            t.steps,
            t.cache_hit_ratio * 100.0,
            mb(t.size_bytes),
            if t.platform_sizes.is_empty() {
                "-".to_string()
            } else {
                t.platform_sizes.iter().map(|(p, b)| format!("{p} {}", mb(Some(*b)))).collect::<Vec<_>>().join("<br>")
            },
            t.run_steps_executed,
            t.run_steps
        ));
    }
    let mut timelines = String::new();
    for t in &r.targets {
        let span = t.steps_detail.iter().map(|s| s.start + s.secs).fold(t.wall_secs, f64::max).max(0.001);
        let outcome = match t.outcome.as_str() {
            "" | "ok" => String::new(),
            o => format!(" ({o})"),
        };
        timelines.push_str(&format!("<h2>{}{}</h2>\n<div class=\"tl\">\n", esc(&t.name), esc(&outcome)));
        for s in &t.steps_detail {
            let class = if s.error {
                "err"
            } else if s.cached {
                "cached"
            } else {
                "ran"
            };
            let left = s.start / span * 100.0;
            let width = (s.secs / span * 100.0).max(0.3);
            timelines.push_str(&format!(
                "<div class=\"row\"><span class=\"label\" title=\"{n}\">{n}</span><span class=\"track\"><span class=\"bar {class}\" style=\"left:{left:.2}%;width:{width:.2}%\"></span></span><span class=\"secs\">{}</span></div>\n",
                if s.cached { "cached".to_string() } else { format!("{:.2}s", s.secs) },
                n = esc(&s.name)
            ));
        }
        timelines.push_str("</div>\n");
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Build {id}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
.tl {{ border: 1px solid #ddd; padding: 6px; }}
.row {{ display: flex; align-items: center; height: 20px; }}
.label {{ width: 46%; overflow: hidden; white-space: nowrap; text-overflow: ellipsis; font-family: monospace; font-size: 12px; }}
.track {{ position: relative; flex: 1; height: 12px; background: #f4f4f4; }}
.bar {{ position: absolute; top: 0; height: 12px; }}
.ran {{ background: #2b6cb0; }} .cached {{ background: #b8b8b8; }} .err {{ background: #c53030; }}
.warn {{ background: #fff4d6; border-left: 4px solid #d69e2e; padding: 4px 8px; }}
.secs {{ width: 70px; text-align: right; font-size: 12px; }}
.legend span {{ display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; vertical-align: middle; }}
</style></head><body>
<h1>Build {id}: {status}</h1>
<p>{names} &middot; version {version} &middot; commit {commit} &middot; started {started} &middot; {wall:.1}s (buildx {bx:.1}s)</p>
<p>engine: {engine}</p>
{history}{warnings}<table><tr><th>target</th><th>time</th><th>cached/steps</th><th>cache hits</th><th>size</th><th>per platform (compressed)</th><th>RUN executed</th></tr>
{rows}</table>
<p class="legend">Timeline:<span class="ran"></span>executed<span class="cached"></span>cached<span class="err"></span>failed</p>
{timelines}
</body></html>
"#,
        id = esc(&r.id),
        status = esc(&format!("{}{}", r.status, r.signal.as_ref().map(|s| format!(" by {s}")).unwrap_or_default())),
        warnings = r
            .cache_warnings
            .iter()
            .map(|w| format!("<p class=\"warn\">cache not used or kept: {}</p>\n", esc(w)))
            .collect::<String>(),
        names = esc(&r.names.join(", ")),
        version = esc(&r.version),
        commit = esc(&r.git_commit),
        started = esc(&r.started),
        engine = esc(&r.engine.as_ref().map_or("not recorded".to_string(), EngineRecord::line)),
        history = if r.history.is_empty() { String::new() } else { format!("<p>{}</p>\n", esc(&r.history)) },
        wall = r.wall_secs,
        bx = r.buildx_secs,
    )
}

/// What the person at the terminal sees while the build runs.
struct Display {
    mode: String,
}

impl Display {
    fn new(mode: &str) -> Display {
        use std::io::IsTerminal;
        let mode = match mode {
            "auto" if std::io::stderr().is_terminal() => "tty",
            "auto" => "plain",
            m => m,
        };
        Display { mode: mode.to_string() }
    }

    fn raw(&mut self, chunk: &[u8]) {
        if self.mode == "rawjson" {
            let _ = std::io::stderr().write_all(chunk);
        }
    }

    fn event(&mut self, p: &Progress, ev: &Event) {
        if self.mode == "rawjson" {
            return;
        }
        let mut err = std::io::stderr().lock();
        match ev {
            Event::Started(d) if self.mode == "plain" => {
                let _ = writeln!(err, "#{} {}", p.index(d), p.vertexes[d].name);
            }
            Event::Completed(d) => {
                let v = &p.vertexes[d];
                let what = if !v.error.is_empty() {
                    format!("ERROR: {}", v.error)
                } else if v.cached {
                    "CACHED".to_string()
                } else {
                    format!("DONE {:.1}s", rawjson::duration(v))
                };
                if self.mode == "plain" {
                    let _ = writeln!(err, "#{} {what}", p.index(d));
                } else {
                    let _ = writeln!(err, "{what:>12}  {}", v.name);
                }
            }
            Event::Log(d, line) if self.mode == "plain" => {
                let _ = writeln!(err, "#{} {line}", p.index(d));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rawjson stream of `bake default` captured from buildx 0.13.1 on Docker 26.1.5 (private
    /// engine), a warm build after a source-only change to the backend.
    const STREAM: &[u8] = include_bytes!("../../testdata/rawjson-bake-default-buildx-0.13.1.json");

    fn parse(stream: &[u8]) -> Progress {
        let mut s = Splitter::default();
        let mut p = Progress::default();
        for chunk in stream.chunks(4096) {
            for st in s.feed(chunk) {
                p.apply(st);
            }
        }
        p
    }

    #[test]
    fn captured_stream_gives_per_target_steps_and_cache_hits() {
        let p = parse(STREAM);
        let names = vec!["backend".to_string(), "frontend".to_string()];
        let r = summarize(&names, &p, "x".to_string(), true);
        assert_eq!(r.targets.len(), 2);
        for t in &r.targets {
            assert!(t.steps > 3, "{}: {} steps", t.name, t.steps);
            assert!(t.cached <= t.steps);
            assert!((t.cache_hit_ratio - t.cached as f64 / t.steps as f64).abs() < 1e-9);
            assert!(t.wall_secs >= 0.0);
        }
        let backend = &r.targets[0];
        assert!(backend.run_steps > 0);
    }

    fn parse_with_stray(stream: &[u8]) -> (Progress, String) {
        let mut s = Splitter::default();
        let mut p = Progress::default();
        for chunk in stream.chunks(4096) {
            for st in s.feed(chunk) {
                p.apply(st);
            }
        }
        (p, s.stray)
    }

    fn two() -> Vec<String> {
        vec!["backend".to_string(), "frontend".to_string()]
    }

    /// buildx 0.13.1 on the private engine, `bake backend frontend` with `RUNN` on line 25 of the
    /// backend's Dockerfile, both built from the syntax fallback's copies and run directly (with
    /// PYTHON_IMAGE and NODE_IMAGE set to `scratch`, before the stand-ins existed): the parse error
    /// is only in the text after the stream, and the frontend's steps end in "context canceled".
    const PARSE_ERROR: &[u8] = include_bytes!("../../testdata/rawjson-parse-error-two-targets-buildx-0.13.1.json");
    const BROKEN_BACKEND: &str = include_str!("../../testdata/Dockerfile-backend-RUNN-on-line-25");

    #[test]
    fn a_parse_error_names_the_repository_dockerfile_and_the_other_target_is_cancelled() {
        let (p, stray) = parse_with_stray(PARSE_ERROR);
        let mut r = summarize(&two(), &p, String::new(), false);
        let sources = [
            Source { target: "backend".into(), path: "backend/Dockerfile".into(), text: BROKEN_BACKEND.into() },
            // The frontend's Dockerfile shares no line 24-28 with the excerpt.
            Source { target: "frontend".into(), path: "frontend/Dockerfile".into(), text: "FROM x\n".repeat(40) },
        ];
        judge(&mut r, &p, false, &stray, &sources);
        let (backend, frontend) = (&r.targets[0], &r.targets[1]);
        assert_eq!((backend.outcome.as_str(), frontend.outcome.as_str()), ("failed", "cancelled"));
        assert_eq!(
            backend.errors[0],
            "backend/Dockerfile:25: dockerfile parse error on line 25: unknown instruction: RUNN (did you mean RUN?)"
        );
        assert!(frontend.errors.is_empty(), "a cancellation is not an error: {:?}", frontend.errors);
        assert_eq!(r.failed_first.as_deref(), Some("backend"));
        let summary = failure_summary(&r);
        assert!(summary.starts_with("failing: backend: backend/Dockerfile:25: dockerfile parse error"), "{summary}");
        assert!(summary.ends_with("cancelled: frontend"), "{summary}");
        assert!(!summary.contains("target/xtask/dockerfiles"), "{summary}");
        let table = table(&r, None);
        assert!(table.contains("FAILED (first)") && table.contains("cancelled"), "{table}");
    }

    #[test]
    fn the_target_whose_step_failed_first_is_named_first() {
        let mut p = Progress::default();
        let v = |d: &str, name: &str, done: &str, error: &str| rawjson::Vertex {
            digest: d.into(),
            name: name.into(),
            started: Some("2026-01-01T00:00:00Z".into()),
            completed: Some(format!("2026-01-01T00:00:{done}Z")),
            error: error.into(),
            ..Default::default()
        };
        p.apply(rawjson::SolveStatus {
            vertexes: vec![
                v(
                    "1",
                    "[a app 1/2] RUN late",
                    "09",
                    "process \"/bin/sh -c late\" did not complete successfully: exit code: 2",
                ),
                v(
                    "2",
                    "[b app 1/2] RUN early",
                    "03",
                    "process \"/bin/sh -c early\" did not complete successfully: exit code: 1",
                ),
                v("3", "[c app 1/2] RUN other", "04", "failed to create lease: context canceled: context canceled"),
                v("4", "[d app 1/1] COPY x", "01", ""),
            ],
            ..Default::default()
        });
        let names: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let mut r = summarize(&names, &p, String::new(), false);
        judge(&mut r, &p, false, "", &[]);
        let outcomes: Vec<&str> = r.targets.iter().map(|t| t.outcome.as_str()).collect();
        assert_eq!(outcomes, ["failed", "failed", "cancelled", "ok"]);
        assert_eq!(r.failed_first.as_deref(), Some("b"));
        let summary = failure_summary(&r);
        assert!(summary.starts_with("failing: b: [b app 1/2] RUN early"), "{summary}");
        assert!(summary.contains(" | a: ") && summary.ends_with("cancelled: c"), "{summary}");
    }

    /// buildx 0.13.1, `bake backend` with REGISTRY=127.0.0.1:5999 (a closed port): importing the
    /// registry cache and exporting it both fail, and the build passes.
    const CACHE_REFUSED: &[u8] = include_bytes!("../../testdata/rawjson-cache-registry-refused-buildx-0.13.1.json");

    #[test]
    fn a_refused_cache_import_and_export_are_warned_of_but_fail_nothing() {
        let (p, stray) = parse_with_stray(CACHE_REFUSED);
        let names = vec!["backend".to_string()];
        let mut r = summarize(&names, &p, String::new(), true);
        judge(&mut r, &p, true, &stray, &[]);
        assert_eq!(r.targets[0].outcome, "ok");
        assert!(r.targets[0].errors.is_empty(), "{:?}", r.targets[0].errors);
        assert_eq!((r.targets[0].steps, r.targets[0].cached), (6, 6));
        let trouble = cache_trouble(&p);
        assert_eq!(trouble.len(), 2, "{trouble:?}");
        assert!(trouble[0].starts_with("importing cache manifest from 127.0.0.1:5999/contextcleanse-backend:buildcache: failed to configure registry cache importer"));
        assert!(trouble[1].starts_with("exporting cache to registry: error writing layer blob"));
        let line = cache_warning_line(&trouble);
        assert_eq!(line.lines().count(), 1);
        assert!(line.starts_with("xtask: warning: "), "{line}");
        assert_eq!(line.matches("dial tcp 127.0.0.1:5999: connect: connection refused").count(), 2, "{line}");
        r.cache_warnings = trouble;
        assert!(table(&r, None).contains("cache not used or kept: importing cache manifest"));
        assert!(html(&r).contains("class=\"warn\">cache not used or kept: exporting cache to registry"));
        let warm = parse(STREAM);
        assert!(cache_trouble(&warm).is_empty(), "a build whose cache worked has nothing to say");
    }

    /// buildx 0.13.1, `bake default` in one scratch copy while another copy's identical build ran
    /// on the same engine: this build's own steps were never started (the solver shared the
    /// other build's), and one of them came again under the other build's digest.
    const BESIDE_ANOTHER: &[u8] =
        include_bytes!("../../testdata/rawjson-bake-default-beside-another-build-buildx-0.13.1.json");

    #[test]
    fn counts_stay_true_beside_another_build_and_with_re_sent_vertices() {
        let (p, _) = parse_with_stray(BESIDE_ANOTHER);
        let r = summarize(&two(), &p, String::new(), true);
        let counts: Vec<(usize, usize)> = r.targets.iter().map(|t| (t.steps, t.cached)).collect();
        // The same build run alone, warm: backend 6/6, frontend 9/9 (as the report of
        // rawjson-bake-default's build and a lone run on the private engine show).
        assert_eq!(counts, [(6, 6), (9, 9)]);
        // Re-sent vertices: the same digest four times, and one name under two digests.
        let mut p = Progress::default();
        let v = |d: &str, started: bool, cached: bool| rawjson::Vertex {
            digest: d.into(),
            name: "[a app 1/1] RUN x".into(),
            started: started.then(|| "2026-01-01T00:00:00Z".to_string()),
            completed: started.then(|| "2026-01-01T00:00:02Z".to_string()),
            cached,
            ..Default::default()
        };
        for status in
            [vec![v("1", false, false)], vec![v("1", true, false)], vec![v("1", true, false), v("2", true, true)]]
        {
            p.apply(rawjson::SolveStatus { vertexes: status, ..Default::default() });
        }
        let r = summarize(&["a".to_string()], &p, String::new(), true);
        assert_eq!((r.targets[0].steps, r.targets[0].cached, r.targets[0].run_steps_executed), (1, 0, 1));
    }

    #[test]
    fn cache_hit_arithmetic() {
        let mut p = Progress::default();
        let v = |d: &str, name: &str, cached: bool, secs: u32| rawjson::Vertex {
            digest: d.into(),
            name: name.into(),
            cached,
            started: Some("2026-01-01T00:00:00Z".into()),
            completed: Some(format!("2026-01-01T00:00:{secs:02}Z")),
            error: String::new(),
        };
        p.apply(rawjson::SolveStatus {
            vertexes: vec![
                v("1", "[a deps 1/3] RUN pip", true, 0),
                v("2", "[a app 2/3] COPY x", false, 2),
                v("3", "[a app 3/3] RUN y", false, 5),
                v("4", "[b base 1/2] FROM z", false, 0),
                v("5", "[b base 2/2] RUN z", true, 0),
                v("6", "[b internal] load build context", false, 0),
            ],
            ..Default::default()
        });
        let r = summarize(&["a".to_string(), "b".to_string()], &p, String::new(), true);
        let a = &r.targets[0];
        assert_eq!((a.steps, a.cached, a.run_steps, a.run_steps_executed), (3, 1, 2, 1));
        assert!((a.cache_hit_ratio - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(a.slowest[0].name, "[a app 3/3] RUN y");
        assert_eq!(a.wall_secs, 5.0);
        let b = &r.targets[1];
        assert_eq!((b.steps, b.cached, b.cache_hit_ratio), (1, 1, 1.0), "FROM and bookkeeping are not counted");
        assert_eq!(b.steps_detail.len(), 3, "but they are in the timeline");
        assert!(is_instruction("[app 2/5] COPY x") && !is_instruction("[backend internal] load .dockerignore"));
        assert!(!is_instruction("[backend deps 1/3] FROM python") && !is_instruction("[backend] exporting to image"));
    }

    #[test]
    fn history_appends_stay_valid_and_a_torn_line_is_skipped() {
        let dir = std::env::temp_dir().join(format!("xtask-history-{}", std::process::id()));
        let file = dir.join("history.jsonl");
        let _ = std::fs::remove_dir_all(&dir);
        append_history(&file, &HistoryLine { id: "a".into(), status: "ok".into(), ..Default::default() }).unwrap();
        // A torn last line (as if another writer died mid-line) must not hide earlier builds.
        let mut text = std::fs::read_to_string(&file).unwrap();
        text.push_str("{\"id\": \"torn");
        std::fs::write(&file, text).unwrap();
        append_history(&file, &HistoryLine { id: "b".into(), status: "interrupted".into(), ..Default::default() })
            .unwrap();
        let h = read_history(&file);
        assert_eq!(h.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(h[1].status, "interrupted");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn compare_shows_absolute_and_percent_changes() {
        let line = |id: &str, secs: f64, size: u64| HistoryLine {
            id: id.into(),
            status: "ok".into(),
            wall_secs: secs,
            targets: vec![HistoryTarget {
                name: "backend".into(),
                wall_secs: secs,
                steps: 5,
                cached: 0,
                size_bytes: Some(size),
            }],
            ..Default::default()
        };
        let out = compare(&line("a", 100.0, 200_000_000), &line("b", 25.0, 150_000_000));
        assert!(out.contains("-75.0s"), "{out}");
        assert!(out.contains("-75%"), "{out}");
        assert!(out.contains("-50.0 MB"), "{out}");
        assert!(out.contains("-25%"), "{out}");
    }

    fn built(id: &str, targets: &[&str]) -> HistoryLine {
        HistoryLine {
            id: id.into(),
            status: "ok".into(),
            wall_secs: 10.0,
            targets: targets
                .iter()
                .map(|t| HistoryTarget { name: t.to_string(), wall_secs: 5.0, ..Default::default() })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn compare_of_different_target_sets_warns_once_and_compares_the_shared_ones() {
        let (a, b) = (built("a", &["backend", "frontend"]), built("b", &["backend", "worker"]));
        let sets = target_sets(&a, &b);
        assert_eq!(
            (sets.shared.as_slice(), sets.only_before.as_slice()),
            (&["backend".to_string()][..], &["frontend".to_string()][..])
        );
        let line = different_targets_warning(&sets).unwrap();
        assert_eq!(line.lines().count(), 1);
        assert!(
            line.starts_with("xtask: warning: ") && line.ends_with("comparing the ones they share (backend)"),
            "{line}"
        );
        let out = compare(&a, &b);
        assert!(out.lines().any(|l| l.starts_with("backend ") && l.contains("+0.0s")), "{out}");
        assert!(out.contains("frontend                 only in the before build"), "{out}");
        assert!(out.contains("worker                   only in the after build"), "{out}");
        assert!(out.contains("whole build (not alike)"), "{out}");
        assert_eq!(different_targets_warning(&target_sets(&a, &a)), None);
        assert!(compare(&a, &a).contains("whole build "));
    }

    #[test]
    fn list_has_a_header_and_columns_that_stay_put_whatever_the_id_width() {
        let mut h =
            vec![built("20261128T041140.438Z-32209", &["backend"]), built("20261128T041150.966Z-9", &["backend"])];
        h[1].engine = Some(crate::engine::EngineRecord { private: Some("floor".into()), ..Default::default() });
        h[1].status = "interrupted".into();
        h[1].signal = Some("SIGINT".into());
        let out = list(&h);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("id ") && lines[0].contains("status") && lines[0].contains("engine"), "{out}");
        let column = |l: &str, word: &str| l.find(word).unwrap();
        assert_eq!(column(lines[0], "status"), column(lines[1], "ok"), "{out}");
        assert_eq!(column(lines[1], "ok"), column(lines[2], "interrupted SIGINT"), "{out}");
        assert_eq!(column(lines[0], "engine"), column(lines[2], "floor"), "{out}");
        assert_eq!(column(lines[1], "10.0s"), column(lines[2], "10.0s"), "{out}");
    }

    #[test]
    fn only_builds_on_the_same_engine_are_compared() {
        let names = vec!["backend".to_string()];
        let engine = |docker: &str| Some(crate::engine::EngineRecord { docker: docker.into(), ..Default::default() });
        let mut h = built("a", &["backend"]);
        h.names = names.clone();
        h.engine = engine("26.1.5");
        assert!(comparable(&h, &names, &engine("26.1.5")));
        assert!(!comparable(&h, &names, &engine("28.5.2")));
        assert!(!comparable(&h, &names, &None), "a line without an engine is not the same engine");
    }

    #[test]
    fn only_the_snapshot_race_is_retried() {
        assert!(is_transient("[frontend] exporting to image: failed to prepare extraction snapshot \"extract-1 sha256:7a\": parent snapshot sha256:f9 does not exist: not found"));
        assert!(!is_transient("process \"/bin/sh -c npm ci\" did not complete successfully: exit code: 1"));
    }

    #[test]
    fn pick_understands_last_and_ids() {
        let h: Vec<HistoryLine> =
            ["x", "y", "z"].iter().map(|i| HistoryLine { id: i.to_string(), ..Default::default() }).collect();
        assert_eq!(pick(&h, "last").unwrap().id, "z");
        assert_eq!(pick(&h, "last~2").unwrap().id, "x");
        assert_eq!(pick(&h, "y").unwrap().id, "y");
        assert!(pick(&h, "last~9").is_err());
        assert!(pick(&h, "last~x").is_err());
    }

    #[test]
    fn html_is_self_contained_and_marks_cached_steps() {
        let r = BuildReport {
            id: "t".into(),
            targets: vec![TargetReport {
                name: "backend".into(),
                wall_secs: 2.0,
                steps_detail: vec![
                    Step {
                        name: "[backend deps 1/2] RUN <pip>".into(),
                        start: 0.0,
                        secs: 0.0,
                        cached: true,
                        error: false,
                    },
                    Step { name: "[backend app 2/2] COPY".into(), start: 0.5, secs: 1.5, cached: false, error: false },
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let page = html(&r);
        assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("<script"));
        assert!(page.contains("bar cached") && page.contains("bar ran"));
        assert!(page.contains("RUN &lt;pip&gt;"));
    }
}
