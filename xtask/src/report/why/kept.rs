//! The inputs kept beside each report (`reports/inputs/ID.json`), the last build's found again,
//! and the causes put into a finished build's report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{bases, explain, BuildInputs, Previous, TargetInputs};
use crate::engine::EngineRecord;
use crate::report::model::{BuildReport, HistoryLine, Status};
use crate::util::paths::{self, write_atomic};

/// A build's kept inputs in the reports folder `dir`: a folder of their own, so whatever reads
/// `reports/*.json` as reports does not meet them.
fn file(dir: &Path, id: &str) -> PathBuf {
    dir.join("inputs").join(format!("{id}.json"))
}

/// The build a target's causes are found against.
#[derive(Debug)]
enum Baseline<'h> {
    None,
    /// The last build that passed with this target on this engine.
    Own(&'h HistoryLine),
    /// A newer build (on another engine, as a rule) that wrote the registry cache this build read.
    Writer(&'h HistoryLine, String),
    /// This build read a registry cache that no build of this history wrote, and this engine
    /// built the target never before.
    Foreign(String),
}

/// The last build that passed with this target on this engine; or, when it is newer, the one
/// that wrote the registry cache this build read, known by the cache manifest's digest each of
/// them saw (`read`: reference → digest as this build started).
fn baseline<'h>(
    history: &'h [HistoryLine],
    engine: &Option<EngineRecord>,
    target: &str,
    read: &BTreeMap<String, String>,
) -> Baseline<'h> {
    let passed = |h: &HistoryLine| h.status == Status::Ok;
    let own =
        history.iter().rposition(|h| passed(h) && &h.engine == engine && h.targets.iter().any(|t| t.name == target));
    let writer = history.iter().enumerate().rev().filter(|(_, h)| passed(h)).find_map(|(i, h)| {
        let t = h.targets.iter().find(|t| t.name == target)?;
        t.cache_written.iter().find(|(r, d)| read.get(*r) == Some(*d)).map(|(r, _)| (i, r.clone()))
    });
    match (own, writer) {
        (Some(o), Some((w, r))) if w > o => Baseline::Writer(&history[w], r),
        (Some(o), _) => Baseline::Own(&history[o]),
        (None, Some((w, r))) => Baseline::Writer(&history[w], r),
        (None, None) => read.keys().next().map_or(Baseline::None, |r| Baseline::Foreign(r.clone())),
    }
}

impl Baseline<'_> {
    fn line(&self) -> Option<&HistoryLine> {
        match self {
            Baseline::Own(h) | Baseline::Writer(h, _) => Some(h),
            _ => None,
        }
    }

    /// What the report says the causes were found against.
    fn words(&self) -> Option<String> {
        match self {
            Baseline::Own(h) => Some(format!("build {} on this engine", h.id)),
            Baseline::Writer(h, r) => Some(format!(
                "build {} on {}, which wrote the registry cache {r} this build read",
                h.id,
                h.engine.as_ref().map_or("an engine not recorded".to_string(), EngineRecord::short)
            )),
            _ => None,
        }
    }
}

/// Puts each target's causes into the report and keeps this build's inputs beside it (a build
/// whose inputs cannot be written says so; the next one then calls its causes unknown). The
/// bases are those the build's own `FROM` steps resolved.
/// `prunes` tells the engine's prunes of its build cache since a time (see
/// `engine::events`), asked only for a target with a step whose cache was dropped.
pub(crate) fn attach(
    report: &mut BuildReport,
    inputs: BTreeMap<String, TargetInputs>,
    history: &[HistoryLine],
    prunes: &dyn Fn(&str) -> Vec<String>,
) {
    attach_in(&paths::reports_dir(), report, inputs, history, prunes);
}

fn attach_in(
    dir: &Path,
    report: &mut BuildReport,
    mut inputs: BTreeMap<String, TargetInputs>,
    history: &[HistoryLine],
    prunes: &dyn Fn(&str) -> Vec<String>,
) {
    let engine = report.engine.clone();
    // Each build's inputs file as read: targets often share their baseline.
    let mut loaded: BTreeMap<String, Option<BuildInputs>> = BTreeMap::new();
    for t in &mut report.targets {
        let Some(now) = inputs.get_mut(&t.name) else { continue };
        now.bases = bases(&t.steps_detail);
        let base = baseline(history, &engine, &t.name, &t.cache_read);
        let before = base.line().map(|line| {
            let kept = loaded.entry(line.id.clone()).or_insert_with(|| {
                std::fs::read(file(dir, &line.id)).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok())
            });
            kept.as_ref().and_then(|k| k.targets.get(&t.name)).cloned()
        });
        let found = match (&base, &before) {
            (Baseline::Foreign(r), _) => Previous::Foreign(r),
            (_, None) => Previous::None,
            (_, Some(Some(p))) => Previous::Found(p),
            (_, Some(None)) => Previous::Unreadable,
        };
        t.causes = explain(found, now, &t.steps_detail);
        t.compared_with = base.words();
        let dropped = |c: &&mut super::StepCause| c.cause.root() == &super::Cause::CacheDropped;
        if let (true, Some(line)) = (t.causes.iter_mut().any(|c| dropped(&c)), base.line()) {
            t.cache_prunes = prunes(&line.started);
            if !t.cache_prunes.is_empty() {
                let told = format!("; the engine's build cache was {}", t.cache_prunes.join(", "));
                t.causes.iter_mut().filter(dropped).for_each(|c| c.text.push_str(&told));
            }
        }
    }
    let kept = BuildInputs { id: report.id.clone(), targets: inputs };
    let written =
        serde_json::to_vec(&kept).map_err(anyhow::Error::from).and_then(|b| write_atomic(&file(dir, &report.id), &b));
    if let Err(e) = written {
        eprintln!("warning: this build's inputs were not kept, so the next build cannot say why its steps ran: {e:#}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::{HistoryTarget, Step, TargetReport};
    use crate::report::why::Cause;

    fn attach_in_quiet(
        dir: &Path,
        report: &mut BuildReport,
        inputs: BTreeMap<String, TargetInputs>,
        history: &[HistoryLine],
    ) {
        attach_in(dir, report, inputs, history, &|_| Vec::new());
    }

    fn build(id: &str, engine: &str, ran: bool) -> BuildReport {
        BuildReport {
            id: id.into(),
            status: Status::Ok,
            engine: Some(EngineRecord { docker: engine.into(), ..Default::default() }),
            targets: vec![TargetReport {
                name: "t".into(),
                steps_detail: vec![Step { name: "[t a 1/1] COPY x .".into(), cached: !ran, ..Default::default() }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn inputs(hash: &str) -> BTreeMap<String, TargetInputs> {
        let files = BTreeMap::from([("x".to_string(), hash.to_string())]);
        let t = TargetInputs {
            files: Some(files),
            dockerfile: "FROM scratch AS a\nCOPY x .\n".into(),
            ..Default::default()
        };
        BTreeMap::from([("t".to_string(), t)])
    }

    fn line(r: &BuildReport) -> HistoryLine {
        HistoryLine {
            targets: vec![HistoryTarget { name: "t".into(), ..Default::default() }],
            ..crate::report::store::history_line(r)
        }
    }

    #[test]
    fn the_last_build_on_the_same_engine_is_found_by_its_kept_inputs() {
        let dir = std::env::temp_dir().join(format!("xtask-kept-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut first = build("a", "26", true);
        attach_in_quiet(&dir, &mut first, inputs("1"), &[]);
        assert_eq!(first.targets[0].causes[0].cause, Cause::FirstBuild);
        assert!(file(&dir, "a").is_file(), "the inputs are kept");
        let mut second = build("b", "26", true);
        attach_in_quiet(&dir, &mut second, inputs("2"), &[line(&first)]);
        assert_eq!(second.targets[0].causes[0].cause, Cause::Files { paths: vec!["x".into()], count: 1 });
        // Another engine: its builds are not this one's.
        let mut elsewhere = build("c", "28", true);
        attach_in_quiet(&dir, &mut elsewhere, inputs("2"), &[line(&first), line(&second)]);
        assert_eq!(elsewhere.targets[0].causes[0].cause, Cause::FirstBuild);
        // A failed build is not compared with.
        let mut failed = line(&second);
        failed.status = Status::Failed;
        let mut third = build("d", "26", true);
        attach_in_quiet(&dir, &mut third, inputs("2"), &[line(&first), failed]);
        assert_eq!(third.targets[0].causes[0].cause, Cause::Files { paths: vec!["x".into()], count: 1 });
        // Its inputs gone: unknown, not a guess.
        std::fs::remove_file(file(&dir, "b")).unwrap();
        let mut fourth = build("e", "26", true);
        attach_in_quiet(&dir, &mut fourth, inputs("2"), &[line(&second)]);
        assert!(matches!(fourth.targets[0].causes[0].cause, Cause::Unknown { .. }));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_newer_build_that_wrote_the_registry_cache_read_is_the_baseline_and_an_unknown_writer_is_no_guess() {
        let dir = std::env::temp_dir().join(format!("xtask-kept-writer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cache = |digest: &str| BTreeMap::from([("reg/c:t".to_string(), digest.to_string())]);
        let mut writer = build("w", "28", true);
        writer.targets[0].cache_written = cache("sha256:1");
        attach_in_quiet(&dir, &mut writer, inputs("1"), &[]);
        let written = crate::report::store::history_line(&writer);
        // Another engine, reading the cache that build wrote: found against it.
        let mut reader = build("r", "26", true);
        reader.targets[0].cache_read = cache("sha256:1");
        attach_in_quiet(&dir, &mut reader, inputs("2"), std::slice::from_ref(&written));
        assert_eq!(reader.targets[0].causes[0].cause, Cause::Files { paths: vec!["x".into()], count: 1 });
        let said = reader.targets[0].compared_with.clone().unwrap();
        assert!(said.starts_with("build w on docker 28, which wrote the registry cache reg/c:t"), "{said}");
        // A cache manifest no build of this history wrote: unknown, neither a first build nor a guess.
        let mut stranger = build("s", "26", true);
        stranger.targets[0].cache_read = cache("sha256:2");
        attach_in_quiet(&dir, &mut stranger, inputs("2"), std::slice::from_ref(&written));
        assert!(
            matches!(&stranger.targets[0].causes[0].cause, Cause::Unknown { why } if why.contains("reg/c:t")),
            "{:?}",
            stranger.targets[0].causes
        );
        // This engine's own build, newer than the writer, is the baseline.
        let mut own = build("o", "26", true);
        attach_in_quiet(&dir, &mut own, inputs("3"), std::slice::from_ref(&written));
        let mut next = build("n", "26", true);
        next.targets[0].cache_read = cache("sha256:1");
        attach_in_quiet(&dir, &mut next, inputs("3"), &[written.clone(), crate::report::store::history_line(&own)]);
        assert_eq!(next.targets[0].compared_with.as_deref(), Some("build o on this engine"));
        assert_eq!(next.targets[0].causes[0].cause, Cause::CacheDropped);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
