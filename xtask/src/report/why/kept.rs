//! The inputs kept beside each report (`reports/ID.inputs.json`), the last build's found again,
//! and the causes put into a finished build's report.

use std::collections::BTreeMap;

use super::{bases, explain, BuildInputs, Previous, TargetInputs};
use crate::engine::EngineRecord;
use crate::report::model::{BuildReport, HistoryLine, Status};
use crate::util::paths::{self, write_atomic};

fn file(id: &str) -> std::path::PathBuf {
    paths::reports_dir().join(format!("{id}.inputs.json"))
}

/// The last build that passed with this target on this engine, and its kept inputs for it:
/// `Ok(None)` when there is no such build, `Err(())` when its inputs are not kept or not readable.
fn previous(history: &[HistoryLine], engine: &Option<EngineRecord>, target: &str) -> Result<Option<TargetInputs>, ()> {
    let Some(line) = history
        .iter()
        .rev()
        .find(|h| h.status == Status::Ok && &h.engine == engine && h.targets.iter().any(|t| t.name == target))
    else {
        return Ok(None);
    };
    let bytes = std::fs::read(file(&line.id)).map_err(|_| ())?;
    let kept: BuildInputs = serde_json::from_slice(&bytes).map_err(|_| ())?;
    kept.targets.get(target).cloned().map(Some).ok_or(())
}

/// Puts each target's causes into the report and keeps this build's inputs beside it (a build
/// whose inputs cannot be written says so; the next one then calls its causes unknown). The
/// bases are those the build's own `FROM` steps resolved.
pub fn attach(report: &mut BuildReport, mut inputs: BTreeMap<String, TargetInputs>, history: &[HistoryLine]) {
    let engine = report.engine.clone();
    for t in &mut report.targets {
        let Some(now) = inputs.get_mut(&t.name) else { continue };
        now.bases = bases(&t.steps_detail);
        let before = previous(history, &engine, &t.name);
        let found = match &before {
            Ok(None) => Previous::None,
            Ok(Some(p)) => Previous::Found(p),
            Err(()) => Previous::Unreadable,
        };
        t.causes = explain(found, now, &t.steps_detail);
    }
    let kept = BuildInputs { id: report.id.clone(), targets: inputs };
    let written =
        serde_json::to_vec(&kept).map_err(anyhow::Error::from).and_then(|b| write_atomic(&file(&report.id), &b));
    if let Err(e) = written {
        eprintln!("warning: this build's inputs were not kept, so the next build cannot say why its steps ran: {e:#}");
    }
}
