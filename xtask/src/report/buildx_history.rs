//! The cross-check against BuildKit's own build records (`docker buildx history`, buildx 0.20+):
//! each target's record reference from the metadata file, and what the record says of the build's
//! duration and steps beside the report's numbers from the progress stream.
//!
//! A build only keeps the references; the records are read the first time `cargo xtask report`
//! shows the build, and the result is kept in its report. Reading them costs a buildx start per
//! target, time no build should wait for.

use anyhow::{Context, Result};
use serde::Deserialize;

use super::model::{BuildReport, HistoryCheck, Status, TargetReport};
use crate::engine::Engine;
use crate::util::runner;

/// Seconds the record's duration may differ from the report's before the two are said to
/// disagree: a fixed part plus a share of the duration. The record spans the solve request, from
/// its creation to its completion; the report spans the stream's first step start to its last
/// step end. On a warm backend build with buildx 0.29.1 they agreed within 2 ms (see the unit
/// test's captures), but the solve may begin a little before its first step (session and
/// frontend set-up), more so on a loaded machine. A step counted under the wrong target or a
/// lost part of the stream shows up as whole seconds and as a different step count, far beyond it.
pub(crate) const TOLERANCE_SECS: f64 = 0.5;
pub(crate) const TOLERANCE_SHARE: f64 = 0.05;

/// What a report says when buildx keeps no records.
pub(crate) const NOT_AVAILABLE: &str = "history not available (buildx < 0.20)";

/// The part of `docker buildx history inspect --format json` the cross-check reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Record {
    /// Nanoseconds.
    pub(crate) duration: u64,
    pub(crate) num_total_steps: usize,
    pub(crate) num_cached_steps: usize,
}

/// Steps buildx runs in the client, which the stream shows but BuildKit's record does not count:
/// reading the bake file and resolving provenance for the metadata file.
fn client_side(name: &str) -> bool {
    name.contains("load local bake definitions") || name.contains("resolving provenance for metadata file")
}

/// Compares one record with the report's steps for the same target (BuildKit's steps only).
pub(crate) fn check(record: &Record, target: &TargetReport) -> HistoryCheck {
    let steps: Vec<_> = target.steps_detail.iter().filter(|s| !client_side(&s.name)).collect();
    let first = steps.iter().map(|s| s.start).fold(f64::INFINITY, f64::min);
    let last = steps.iter().map(|s| s.start + s.secs).fold(0.0, f64::max);
    let report_secs = if steps.is_empty() { 0.0 } else { last - first };
    let record_secs = record.duration as f64 / 1e9;
    let tolerance = TOLERANCE_SECS + TOLERANCE_SHARE * record_secs;
    HistoryCheck {
        record_secs,
        report_secs,
        record_steps: record.num_total_steps,
        report_steps: steps.len(),
        record_cached: record.num_cached_steps,
        report_cached: steps.iter().filter(|s| s.cached).count(),
        agrees: record.num_total_steps == steps.len() && (record_secs - report_secs).abs() <= tolerance,
    }
}

/// Each target's record reference (`builder/node/id`) from the bake metadata file.
pub(crate) fn references(meta: &serde_json::Value, report: &mut BuildReport) {
    for t in &mut report.targets {
        t.history_ref = meta[&t.name]["buildx.build.ref"].as_str().map(str::to_string);
    }
}

/// Reads one record: `history inspect` takes the record's id and its builder, not the whole ref.
fn inspect(engine: &Engine, reference: &str) -> Result<Record> {
    let mut parts = reference.split('/');
    let (builder, id) = match (parts.next(), parts.next(), parts.next()) {
        (Some(b), Some(_), Some(id)) => (b, id),
        _ => anyhow::bail!("`{reference}` is not a builder/node/id reference"),
    };
    let cmd = engine.docker().args(["buildx", "history", "inspect", "--builder", builder, id, "--format", "json"]);
    let text = runner::read(&cmd)?;
    serde_json::from_str(&text).with_context(|| format!("reading the record of {reference}"))
}

/// The cross-check of a report about to be shown, made once: returns whether the report changed
/// for good (to be saved), and the warning line when a record and the report disagree. The
/// records are asked of the engine the build ran on, and only when this shell reaches it (`reach`
/// connects, and is called only when the records can be read); else the report says why and
/// stays as it was, to be cross-checked another time.
pub(crate) fn check_when_shown(report: &mut BuildReport, reach: &dyn Fn() -> Result<Engine>) -> (bool, Option<String>) {
    if !report.history.is_empty() {
        return (false, None);
    }
    let Some(record) = report.engine.clone() else {
        report.history = "not cross-checked: the report does not name the engine it ran on".to_string();
        return (true, None);
    };
    let floor = semver::Version::new(0, 20, 0);
    let available = record.buildx.as_deref().and_then(|v| semver::Version::parse(v).ok()).is_some_and(|v| v >= floor);
    if !available || report.status != Status::Ok {
        return (true, cross_check(&Engine::default(), report, available));
    }
    let engine = match reach() {
        Ok(e) if e.describe() == record.endpoint => e,
        Ok(e) => {
            report.history = format!(
                "not cross-checked yet: the build ran on {}, and this shell reaches {}",
                record.endpoint,
                e.describe()
            );
            return (false, None);
        }
        Err(e) => {
            report.history = format!("not cross-checked yet: {e:#}");
            return (false, None);
        }
    };
    let warning = cross_check(&engine, report, true);
    (true, warning)
}

/// Fills each target's cross-check and the report's one-line summary of it; returns the warning
/// line when a record and the report disagree. `available`: buildx keeps records (0.20+).
pub(crate) fn cross_check(engine: &Engine, report: &mut BuildReport, available: bool) -> Option<String> {
    if !available {
        report.history = NOT_AVAILABLE.to_string();
        return None;
    }
    if report.status != Status::Ok {
        report.history = "not cross-checked: the build did not pass".to_string();
        return None;
    }
    // One buildx start per target, side by side.
    let records: Vec<Option<Result<Record>>> = std::thread::scope(|s| {
        let jobs: Vec<_> = report
            .targets
            .iter()
            .map(|t| t.history_ref.clone().map(|r| s.spawn(move || inspect(engine, &r))))
            .collect();
        jobs.into_iter()
            .map(|j| j.map(|j| j.join().unwrap_or_else(|_| Err(anyhow::anyhow!("reading the record panicked")))))
            .collect()
    });
    let mut said = Vec::new();
    let mut disagree = Vec::new();
    for (t, record) in report.targets.iter_mut().zip(records) {
        match record {
            None => said.push(format!("{}: no record reference in the metadata file", t.name)),
            Some(Err(e)) => said.push(format!("{}: record unreadable ({e:#})", t.name)),
            Some(Ok(r)) => {
                let c = check(&r, t);
                let line = format!(
                    "{}: record {:.2}s, {} steps ({} cached); report {:.2}s, {} steps ({} cached)",
                    t.name,
                    c.record_secs,
                    c.record_steps,
                    c.record_cached,
                    c.report_secs,
                    c.report_steps,
                    c.report_cached
                );
                if !c.agrees {
                    disagree.push(line.clone());
                }
                said.push(line);
                t.history_check = Some(c);
            }
        }
    }
    let verdict = if disagree.is_empty() { "agrees" } else { "DISAGREES" };
    report.history = format!("buildx history {verdict}: {}", said.join("; "));
    (!disagree.is_empty()).then(|| {
        format!(
            "xtask: warning: the report and `docker buildx history` disagree (tolerance {TOLERANCE_SECS} s + {:.0}%, same step count): {}",
            TOLERANCE_SHARE * 100.0,
            disagree.join("; ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docker buildx history inspect --format json` of a warm `cargo xtask build backend` on the
    /// private current engine (buildx 0.29.1, Docker 28.5.2), and the report the xtask wrote for
    /// the same build.
    const RECORD: &str = include_str!("../../testdata/buildx-history-inspect-backend-buildx-0.29.1.json");
    const REPORT: &str = include_str!("../../testdata/report-backend-buildx-0.29.1.json");

    #[test]
    fn the_captured_record_agrees_with_the_report_of_the_same_build() {
        let record: Record = serde_json::from_str(RECORD).unwrap();
        let report: BuildReport = serde_json::from_str(REPORT).unwrap();
        let c = check(&record, &report.targets[0]);
        assert_eq!((c.record_steps, c.report_steps), (13, 13), "the two client-side steps are left out");
        assert_eq!((c.record_cached, c.report_cached), (6, 6));
        assert!((c.record_secs - c.report_secs).abs() < 0.01, "{c:?}");
        assert!(c.agrees);
    }

    #[test]
    fn a_different_step_count_or_a_far_duration_disagrees() {
        let report: BuildReport = serde_json::from_str(REPORT).unwrap();
        let r = |duration, steps| Record { duration, num_total_steps: steps, num_cached_steps: 0 };
        assert!(!check(&r(1_417_672_401, 12), &report.targets[0]).agrees);
        // 1.42 s in the report: 1.9 s is within 0.5 s + 5%, 2.1 s is not.
        assert!(check(&r(1_900_000_000, 13), &report.targets[0]).agrees);
        assert!(!check(&r(2_100_000_000, 13), &report.targets[0]).agrees);
    }

    #[test]
    fn old_buildx_is_said_and_nothing_is_asked() {
        let mut report = BuildReport { status: Status::Ok, ..Default::default() };
        assert_eq!(cross_check(&Engine::default(), &mut report, false), None);
        assert_eq!(report.history, NOT_AVAILABLE);
    }

    #[test]
    fn references_come_from_the_metadata_file() {
        let meta = serde_json::json!({"backend": {"buildx.build.ref": "default/default/abc"}, "frontend": {}});
        let mut report = BuildReport {
            targets: vec![
                TargetReport { name: "backend".into(), ..Default::default() },
                TargetReport { name: "frontend".into(), ..Default::default() },
            ],
            ..Default::default()
        };
        references(&meta, &mut report);
        assert_eq!(report.targets[0].history_ref.as_deref(), Some("default/default/abc"));
        assert_eq!(report.targets[1].history_ref, None);
    }
}
