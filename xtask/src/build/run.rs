//! Running a plan's build: rawjson progress parsed as it streams, the live display, the retry of
//! a known intermittent engine error, the images' digests and sizes, and the report made from the
//! outcome. A stop signal ends the run with [`crate::util::stop::Stopped`] after the build is recorded.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use anyhow::Result;
use chrono::{SecondsFormat, Utc};

use crate::build::plan::{Output, Plan};
use crate::images::oci;
use crate::report::rawjson::{self, Event, Progress, Splitter};
use crate::report::{self, BuildReport, Source, Status, TargetReport};
use crate::settings::ProgressMode;
use crate::util::paths;
use crate::util::runner;

/// What one run of a plan's build left: its report (all but the saving), and how it ended. The
/// orchestrator (`build::run`) carries it forward to the store, the metrics, signing and the cache
/// clean-up; nothing after the run reads the history to find out what was built.
pub struct Outcome {
    pub(crate) report: BuildReport,
    /// Set when a stop signal ended the run.
    pub(crate) stop: Option<crate::util::stop::Stop>,
    /// Set when buildx failed: the error that names the failing targets and their last lines.
    pub(crate) failure: Option<anyhow::Error>,
}

impl Outcome {
    /// The known intermittent engine error, worth one more attempt.
    pub(crate) fn is_transient(&self) -> bool {
        self.stop.is_none() && self.failure.as_ref().is_some_and(|e| is_transient(&format!("{e:#}")))
    }

    /// The run as the command's result: the stop, the failure, or success.
    pub(crate) fn result(self) -> Result<BuildReport> {
        if let Some(stop) = self.stop {
            return Err(crate::util::stop::Stopped { stop, history: paths::history_file() }.into());
        }
        match self.failure {
            Some(e) => Err(e),
            None => Ok(self.report),
        }
    }
}

/// The containerd image store sometimes loses a parent snapshot while unpacking a fresh image; a
/// second attempt, fully cached, goes through.
pub(crate) fn is_transient(error: &str) -> bool {
    error.contains("failed to prepare extraction snapshot") && error.contains("parent snapshot")
}

/// What buildx left behind: its exit status, the parsed stream, and the text outside it.
struct Streamed {
    status: std::process::ExitStatus,
    progress: Progress,
    stray: String,
    stray_note: Option<String>,
    started: String,
    buildx_secs: f64,
}

/// Runs the plan's build once and makes its report, whatever the outcome: a stop signal included.
/// The caller records it (`build::run`).
pub(crate) fn build(plan: &Plan) -> Result<Outcome> {
    let _recording = crate::util::stop::recording();
    let t0 = Instant::now();
    let streamed = stream(plan)?;
    let stop = crate::util::stop::stopped();
    let mut report = record(plan, &streamed, stop);
    // The planning before buildx started counts too: the report's wall time is the whole command's.
    report.wall_secs = t0.elapsed().as_secs_f64() + plan.planned_in;
    let failure = (stop.is_none() && !streamed.status.success()).then(|| failure(plan, &streamed, &report));
    Ok(Outcome { report, stop, failure })
}

/// Runs buildx, showing its progress as it comes.
fn stream(plan: &Plan) -> Result<Streamed> {
    let started = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut display = Display::new(plan.progress);
    let mut splitter = Splitter::default();
    let mut progress = Progress::default();
    let tb = Instant::now();
    let status = runner::run_streaming(&plan.bake(), |chunk| {
        display.raw(chunk);
        for s in splitter.feed(chunk) {
            for ev in progress.apply(s) {
                display.event(&progress, &ev);
            }
        }
    })?;
    Ok(Streamed {
        status,
        progress,
        stray: splitter.stray(),
        stray_note: splitter.stray_note(),
        started,
        buildx_secs: tb.elapsed().as_secs_f64(),
    })
}

/// The report of a finished run (all but the wall time). BuildKit's own records of it are read
/// when the report is first shown (`cargo xtask report`), not here: a build does not wait for them.
fn record(plan: &Plan, run: &Streamed, stop: Option<crate::util::stop::Stop>) -> BuildReport {
    let ok = run.status.success();
    let mut report = report::summarize(&plan.targets, &run.progress, run.started.clone(), ok);
    report.names = plan.names.clone();
    report.version = plan.metadata.version.to_string();
    report.git_commit = plan.metadata.git_commit.clone();
    report.command = plan.bake().command_line();
    report.notes = plan.notes.clone();
    report.notes.extend(run.stray_note.clone());
    // A stop wins over buildx's own status: buildx may still have finished before it took effect,
    // but the person asked for the build to end, and the exit code says so.
    report.status = match (stop, ok) {
        (Some(_), _) => Status::Interrupted,
        (None, true) => Status::Ok,
        (None, false) => Status::Failed,
    };
    report.signal = stop.map(|s| s.name());
    report.exit_code = run.status.code();
    report.buildx_secs = run.buildx_secs;
    report.engine = plan.facts.as_ref().map(|f| f.record(plan.engine.name.clone()));
    let meta: serde_json::Value = std::fs::read_to_string(&plan.metadata_file)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    report::references(&meta, &mut report);
    let succeeded = ok && stop.is_none();
    if succeeded {
        fill_images(plan, &meta, &mut report);
    }
    let _ = std::fs::remove_file(&plan.metadata_file);
    if !ok {
        let stray = runner::last_lines(&run.stray, 8);
        if !stray.is_empty() {
            report.errors.push(stray);
        }
    }
    // Only a failure needs the Dockerfiles, to place an error buildx only printed.
    let sources = if succeeded { Vec::new() } else { sources(plan) };
    report::judge(&mut report, &run.progress, succeeded, &run.stray, &sources);
    report
}

/// Prints a saved report's table (against the last comparable build before it), its path and
/// any warning lines.
pub(crate) fn show(report: &BuildReport, previous: Option<&report::HistoryLine>, saved: &std::path::Path) {
    report::print_table(report, previous);
    // After SIGHUP the terminal may be gone: a failed write must not end the run before its exit code.
    let mut err = std::io::stderr();
    let _ = writeln!(err, "report: {}", saved.display());
    if !report.cache_warnings.is_empty() {
        let _ = writeln!(err, "{}", report::cache_warning_line(&report.cache_warnings));
    }
}

/// The error of a failed build: what failed first, what was cancelled, and the failing step's
/// last log lines (or the text buildx printed outside the stream).
fn failure(plan: &Plan, run: &Streamed, report: &BuildReport) -> anyhow::Error {
    let summary = report::failure_summary(report);
    let mut msg = if plan.engine.answers() {
        format!("`docker buildx bake` failed ({})", runner::describe(run.status))
    } else {
        format!(
            "the Docker engine at {} stopped answering during the build (`docker buildx bake` {}): restart it (`cargo xtask engine up` for the private one) and build again",
            plan.engine.describe(),
            runner::describe(run.status)
        )
    };
    if !summary.is_empty() {
        msg.push_str(&format!("; {summary}"));
    }
    let tail = failing_log_tail(&run.progress);
    if !tail.is_empty() {
        msg.push_str(&format!("\nlast lines of the failing step:\n{tail}"));
    } else if let Some(e) = report.errors.first() {
        msg.push_str(&format!("\n{e}"));
    }
    anyhow::anyhow!(msg)
}

/// Each target's Dockerfile as the repository has it: the syntax fallback builds from a copy under
/// `target/xtask/dockerfiles/`, but a person fixes the file they wrote.
fn sources(plan: &Plan) -> Vec<Source> {
    let root = &plan.root;
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
        .filter(|d| report::is_failure(&progress.vertexes[*d]))
        .filter_map(|d| progress.log_tail.get(d))
        .flat_map(|lines| lines.iter().rev().take(10).rev().cloned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Digest from the metadata file and size from the engine, for each target that has an image.
fn fill_images(plan: &Plan, meta: &serde_json::Value, report: &mut BuildReport) {
    for t in &mut report.targets {
        let m = &meta[&t.name];
        t.digest = m["containerimage.digest"].as_str().map(str::to_string);
        t.image = m["image.name"].as_str().and_then(|n| n.split(',').next()).map(str::to_string);
    }
    // One `docker history` per image, side by side. What an image of a given digest weighs on an
    // engine never changes: a warm build, whose images are those of the last one, asks nothing.
    let engine = &plan.engine;
    let sizes = crate::util::memo::Cache::new("image-sizes.json", 30 * 24 * 3600);
    let keys: Vec<Option<String>> =
        report.targets.iter().map(|t| t.digest.as_ref().map(|d| format!("{}|{d}", engine.describe()))).collect();
    let known: Vec<Option<u64>> = keys.iter().map(|k| k.as_ref().and_then(|k| sizes.get::<u64>(k))).collect();
    std::thread::scope(|s| {
        let jobs: Vec<_> = (report.targets.iter().zip(&known))
            .map(|(t, known)| match known {
                Some(_) => None,
                None => t.image.clone().map(|image| s.spawn(move || engine.image_size(&image))),
            })
            .collect();
        for (((t, job), known), key) in report.targets.iter_mut().zip(jobs).zip(&known).zip(&keys) {
            t.size_bytes = known.or_else(|| job.and_then(|j| j.join().ok().flatten()));
            if let (None, Some(k), Some(size)) = (known, key, t.size_bytes) {
                sizes.put(k, size);
            }
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
    let repo = crate::images::meta::repository(image);
    let raw = |reference: &str| -> Option<serde_json::Value> {
        let cmd = plan.engine.docker().args(["buildx", "imagetools", "inspect", "--raw", reference]);
        serde_json::from_str(&runner::read(&cmd).ok()?).ok()
    };
    let index = raw(&format!("{repo}@{}", t.digest.as_deref()?))?;
    Some(oci::sizes(&index, |digest| raw(&format!("{repo}@{digest}"))))
}

/// What the person at the terminal sees while the build runs.
struct Display {
    mode: ProgressMode,
}

impl Display {
    fn new(mode: ProgressMode) -> Display {
        use std::io::IsTerminal;
        let mode = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Tty,
            ProgressMode::Auto => ProgressMode::Plain,
            m => m,
        };
        Display { mode }
    }

    fn raw(&mut self, chunk: &[u8]) {
        if self.mode == ProgressMode::Rawjson {
            let _ = std::io::stderr().write_all(chunk);
        }
    }

    fn event(&mut self, p: &Progress, ev: &Event) {
        if self.mode == ProgressMode::Rawjson {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.mode == ProgressMode::Tty {
            // A phase's updating line (see `progress`) may stand there: start on a clean line.
            let _ = write!(err, "\r\x1b[2K");
        }
        match ev {
            Event::Started(d) if self.mode == ProgressMode::Plain => {
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
                if self.mode == ProgressMode::Plain {
                    let _ = writeln!(err, "#{} {what}", p.index(d));
                } else {
                    let _ = writeln!(err, "{what:>12}  {}", v.name);
                }
            }
            Event::Log(d, line) if self.mode == ProgressMode::Plain => {
                let _ = writeln!(err, "#{} {line}", p.index(d));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_snapshot_race_is_retried() {
        assert!(is_transient("[frontend] exporting to image: failed to prepare extraction snapshot \"extract-1 sha256:7a\": parent snapshot sha256:f9 does not exist: not found"));
        assert!(!is_transient("process \"/bin/sh -c npm ci\" did not complete successfully: exit code: 1"));
    }
}
