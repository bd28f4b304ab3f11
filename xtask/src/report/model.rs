//! The report's data: a build, its targets and steps, and the line each build adds to the
//! history; and the per-target numbers summed up from the progress stream's final state.

use std::collections::BTreeMap;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::rawjson::{self, is_failure, Progress};
use crate::engine::EngineRecord;

/// How a build ended, as the report and the history record it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Ok,
    Failed,
    /// A stop signal ended it.
    Interrupted,
}

/// How one target of a build ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Reports written before outcomes were recorded read as ok.
    #[default]
    Ok,
    Failed,
    /// Stopped unfinished because another target failed or the build was stopped (BuildKit then
    /// cancels every step still running).
    Cancelled,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
        })
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
        })
    }
}

/// A build's report as `target/xtask/reports/ID.json` keeps it; `xtask/report.schema.json` is its
/// documented format (a field added here goes there too, with a new schema version).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BuildReport {
    /// [`super::schema::VERSION`]; 0 in reports written before there was one.
    #[serde(default)]
    pub(crate) schema_version: u32,
    pub id: String,
    pub(crate) started: String,
    pub(crate) status: Status,
    /// For an interrupted build, the signal that stopped it ("SIGINT", "SIGTERM", "SIGHUP").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) signal: Option<String>,
    /// buildx's exit code (none when a signal ended it).
    pub(crate) exit_code: Option<i32>,
    pub names: Vec<String>,
    pub(crate) version: String,
    pub(crate) git_commit: String,
    /// Wall time of the whole xtask command, and of buildx alone; the difference is the xtask's
    /// own overhead (engine checks, planning, reading sizes).
    pub(crate) wall_secs: f64,
    pub(crate) buildx_secs: f64,
    pub(crate) command: String,
    pub(crate) notes: Vec<String>,
    /// Cache imports and exports that failed while the build went on without them (a registry
    /// down or refusing): the build passes, but the next one may not find its cache.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) cache_warnings: Vec<String>,
    /// In a failed build, the target whose failure came first (the others were cancelled by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) failed_first: Option<String>,
    pub targets: Vec<TargetReport>,
    #[serde(default)]
    pub(crate) errors: Vec<String>,
    /// The engine the build ran on (none in reports written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) engine: Option<EngineRecord>,
    /// The cross-check against `docker buildx history` in one line, or why there is none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) history: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TargetReport {
    pub name: String,
    #[serde(default)]
    pub(crate) outcome: Outcome,
    pub(crate) wall_secs: f64,
    pub(crate) steps: usize,
    pub(crate) cached: usize,
    pub(crate) cache_hit_ratio: f64,
    /// Steps that really ran a command (RUN), and how many of them did.
    pub(crate) run_steps: usize,
    pub(crate) run_steps_executed: usize,
    pub(crate) context_bytes: i64,
    pub(crate) image: Option<String>,
    pub(crate) digest: Option<String>,
    /// Uncompressed bytes of the image's layers for the engine's platform (see `image_size`).
    pub(crate) size_bytes: Option<u64>,
    /// For a multi-platform image: compressed layer bytes per platform, from its manifests.
    #[serde(default)]
    pub(crate) platform_sizes: BTreeMap<String, u64>,
    pub(crate) slowest: Vec<Step>,
    pub(crate) steps_detail: Vec<Step>,
    pub(crate) errors: Vec<String>,
    /// BuildKit's record of this target's build (`builder/node/id`, for `docker buildx history`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) history_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) history_check: Option<HistoryCheck>,
    /// Why each step that ran did, against the last build of this target on this engine.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) causes: Vec<super::why::StepCause>,
    /// The build the causes were found against, in words (none when there was none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) compared_with: Option<String>,
    /// Each registry cache the target imported, with its cache manifest's digest as the build
    /// started; and each it exported, with the digest after the build.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) cache_read: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) cache_written: BTreeMap<String, String>,
    /// When a step's cache was dropped: the engine's prunes of its build cache since the build
    /// compared with, as it recorded them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) cache_prunes: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Step {
    pub(crate) name: String,
    /// Seconds from the start of the target's first step.
    pub(crate) start: f64,
    pub(crate) secs: f64,
    pub(crate) cached: bool,
    pub(crate) error: bool,
}

/// One line of history.jsonl: the numbers needed to compare builds (`history_line` in the schema).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HistoryLine {
    pub id: String,
    pub(crate) started: String,
    pub(crate) status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) signal: Option<String>,
    pub names: Vec<String>,
    pub(crate) wall_secs: f64,
    pub targets: Vec<HistoryTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) engine: Option<EngineRecord>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HistoryTarget {
    pub name: String,
    pub(crate) wall_secs: f64,
    pub(crate) steps: usize,
    pub(crate) cached: usize,
    pub(crate) size_bytes: Option<u64>,
    /// The registry caches this target's build exported, with their digests (see `TargetReport`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) cache_written: BTreeMap<String, String>,
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
    let mut out =
        BuildReport { schema_version: super::schema::VERSION, id: new_id(), started, ..BuildReport::default() };
    for name in targets {
        let vs = per.get(name).cloned().unwrap_or_default();
        // The span of what this build ran. A cached vertex can carry the times of the build
        // that made it when another build on the engine still holds it (seen: a cached FROM
        // dated seven minutes before the build began), so it counts only when nothing ran.
        let ran: Vec<&rawjson::Vertex> = vs.iter().copied().filter(|v| !v.cached).collect();
        let timed = if ran.is_empty() { &vs } else { &ran };
        let first = timed.iter().filter_map(|v| rawjson::timestamp(&v.started)).min();
        let last = timed.iter().filter_map(|v| rawjson::timestamp(&v.completed)).max();
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
pub(crate) fn merge_step(
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
            (Some(a), Some(s)) => ((s - a).num_milliseconds() as f64 / 1000.0).max(0.0),
            _ => 0.0,
        },
        secs: rawjson::duration(v),
        cached: (!done.is_empty() && done.iter().all(|v| v.cached)) || (succeeded && never_started),
        error: vertices.iter().any(|v| !v.error.is_empty()),
    }
}

/// The target a step belongs to; in a one-target build every step is its own.
pub(crate) fn owner<'a>(name: &str, targets: &'a [String]) -> Option<&'a String> {
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

pub(crate) fn new_id() -> String {
    format!("{}-{}", Utc::now().format("%Y%m%dT%H%M%S%.3fZ"), std::process::id())
}

pub(crate) fn mb(bytes: Option<u64>) -> String {
    bytes.map_or("-".to_string(), crate::util::units::human)
}

pub(crate) fn pct(old: f64, new: f64) -> String {
    if old == 0.0 {
        return "-".to_string();
    }
    format!("{:+.0}%", (new - old) / old * 100.0)
}

/// A target's build record next to the report's numbers for it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct HistoryCheck {
    pub(crate) record_secs: f64,
    pub(crate) report_secs: f64,
    pub(crate) record_steps: usize,
    pub(crate) report_steps: usize,
    pub(crate) record_cached: usize,
    pub(crate) report_cached: usize,
    /// Same step count, and durations within the tolerance.
    pub(crate) agrees: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testing::*;

    #[test]
    fn status_and_outcome_read_and_write_as_the_words_of_earlier_reports() {
        for (status, word) in [(Status::Ok, "ok"), (Status::Failed, "failed"), (Status::Interrupted, "interrupted")] {
            assert_eq!(serde_json::to_string(&status).unwrap(), format!("\"{word}\""));
            assert_eq!(serde_json::from_str::<Status>(&format!("\"{word}\"")).unwrap(), status);
            assert_eq!(status.to_string(), word);
        }
        assert_eq!(serde_json::to_string(&Outcome::Cancelled).unwrap(), "\"cancelled\"");
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
    fn a_cached_step_dated_by_an_earlier_build_does_not_stretch_the_target_s_time() {
        let mut p = Progress::default();
        let v = |d: &str, name: &str, cached: bool, start: &str, end: &str| rawjson::Vertex {
            digest: d.into(),
            name: name.into(),
            cached,
            started: Some(format!("2026-01-01T00:{start}Z")),
            completed: Some(format!("2026-01-01T00:{end}Z")),
            error: String::new(),
        };
        p.apply(rawjson::SolveStatus {
            vertexes: vec![
                // As on the engine beside another build: the base's vertex kept the other build's times.
                v("1", "[a 1/2] FROM base", true, "00:00", "00:00"),
                v("2", "[a internal] load build definition from Dockerfile", false, "07:00", "07:01"),
                v("3", "[a app 2/2] RUN x", false, "07:01", "07:04"),
            ],
            ..Default::default()
        });
        let r = summarize(&["a".to_string()], &p, String::new(), true);
        assert_eq!(r.targets[0].wall_secs, 4.0);
        let starts: Vec<f64> = r.targets[0].steps_detail.iter().map(|s| s.start).collect();
        assert_eq!(starts, [0.0, 0.0, 1.0]);
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
}
