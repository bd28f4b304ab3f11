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

/// The last build that passed with this target on this engine, and its kept inputs for it:
/// `Ok(None)` when there is no such build, `Err(())` when its inputs are not kept or not readable.
/// `loaded` keeps each build's inputs file as read, since targets often share their last build.
fn previous(
    dir: &Path,
    history: &[HistoryLine],
    engine: &Option<EngineRecord>,
    target: &str,
    loaded: &mut BTreeMap<String, Option<BuildInputs>>,
) -> Result<Option<TargetInputs>, ()> {
    let Some(line) = history
        .iter()
        .rev()
        .find(|h| h.status == Status::Ok && &h.engine == engine && h.targets.iter().any(|t| t.name == target))
    else {
        return Ok(None);
    };
    let kept = loaded.entry(line.id.clone()).or_insert_with(|| {
        std::fs::read(file(dir, &line.id)).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok())
    });
    kept.as_ref().and_then(|k| k.targets.get(target)).cloned().map(Some).ok_or(())
}

/// Puts each target's causes into the report and keeps this build's inputs beside it (a build
/// whose inputs cannot be written says so; the next one then calls its causes unknown). The
/// bases are those the build's own `FROM` steps resolved.
pub(crate) fn attach(report: &mut BuildReport, inputs: BTreeMap<String, TargetInputs>, history: &[HistoryLine]) {
    attach_in(&paths::reports_dir(), report, inputs, history);
}

fn attach_in(
    dir: &Path,
    report: &mut BuildReport,
    mut inputs: BTreeMap<String, TargetInputs>,
    history: &[HistoryLine],
) {
    let engine = report.engine.clone();
    let mut loaded = BTreeMap::new();
    for t in &mut report.targets {
        let Some(now) = inputs.get_mut(&t.name) else { continue };
        now.bases = bases(&t.steps_detail);
        let before = previous(dir, history, &engine, &t.name, &mut loaded);
        let found = match &before {
            Ok(None) => Previous::None,
            Ok(Some(p)) => Previous::Found(p),
            Err(()) => Previous::Unreadable,
        };
        t.causes = explain(found, now, &t.steps_detail);
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
        attach_in(&dir, &mut first, inputs("1"), &[]);
        assert_eq!(first.targets[0].causes[0].cause, Cause::FirstBuild);
        assert!(file(&dir, "a").is_file(), "the inputs are kept");
        let mut second = build("b", "26", true);
        attach_in(&dir, &mut second, inputs("2"), &[line(&first)]);
        assert_eq!(second.targets[0].causes[0].cause, Cause::Files { paths: vec!["x".into()], count: 1 });
        // Another engine: its builds are not this one's.
        let mut elsewhere = build("c", "28", true);
        attach_in(&dir, &mut elsewhere, inputs("2"), &[line(&first), line(&second)]);
        assert_eq!(elsewhere.targets[0].causes[0].cause, Cause::FirstBuild);
        // A failed build is not compared with.
        let mut failed = line(&second);
        failed.status = Status::Failed;
        let mut third = build("d", "26", true);
        attach_in(&dir, &mut third, inputs("2"), &[line(&first), failed]);
        assert_eq!(third.targets[0].causes[0].cause, Cause::Files { paths: vec!["x".into()], count: 1 });
        // Its inputs gone: unknown, not a guess.
        std::fs::remove_file(file(&dir, "b")).unwrap();
        let mut fourth = build("e", "26", true);
        attach_in(&dir, &mut fourth, inputs("2"), &[line(&second)]);
        assert!(matches!(fourth.targets[0].causes[0].cause, Cause::Unknown { .. }));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
