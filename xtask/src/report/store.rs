//! The history: one line per build in `history.jsonl`, appended atomically, read back, and
//! searched by id or `last~N`; and the reading of a report file, checked against the schema.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::model::{BuildReport, HistoryLine, HistoryTarget, Status};
use super::schema;
use crate::engine::EngineRecord;
use crate::util::paths::{self, write_atomic};

/// A report file or history line that does not match the schema (older, or edited by hand).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    /// Relative to the project root; `history.jsonl:N` for a history line.
    pub file: String,
    pub field: String,
    pub problem: String,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let field = if self.field.is_empty() { "the document" } else { &self.field };
        write!(
            f,
            "{} does not match the report schema (version {}) at {field}: {}",
            self.file,
            schema::VERSION,
            self.problem
        )
    }
}

fn shown(path: &Path) -> String {
    let root = paths::project_root();
    path.strip_prefix(&root).unwrap_or(path).display().to_string()
}

/// Parses a document and checks it against one of the schema's definitions.
fn checked<T: serde::de::DeserializeOwned>(text: &str, def: &str, file: String) -> Result<T, Unreadable> {
    let fault = |field: String, problem: String| Unreadable { file: file.clone(), field, problem };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| fault(String::new(), format!("not JSON ({e})")))?;
    schema::check(&value, def).map_err(|m| fault(m.field, m.problem))?;
    serde_json::from_value(value).map_err(|e| fault(String::new(), e.to_string()))
}

/// A build's report file, checked against the schema.
pub fn read_report(path: &Path) -> Result<BuildReport, Unreadable> {
    let text = std::fs::read_to_string(path).map_err(|e| Unreadable {
        file: shown(path),
        field: String::new(),
        problem: e.to_string(),
    })?;
    checked(&text, "build", shown(path))
}

/// The history's lines that match the schema, and the others named by line. An empty line is
/// skipped; a torn one (a writer that died mid-line) is named like any other.
pub fn read_history_checked(path: &Path) -> (Vec<HistoryLine>, Vec<Unreadable>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        match checked(line, "history_line", format!("{}:{}", shown(path), n + 1)) {
            Ok(h) => good.push(h),
            Err(u) => bad.push(u),
        }
    }
    (good, bad)
}

pub fn history_line(r: &BuildReport) -> HistoryLine {
    HistoryLine {
        id: r.id.clone(),
        started: r.started.clone(),
        status: r.status,
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
    h.status == Status::Ok && h.names == names && &h.engine == engine
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

pub fn history() -> Vec<HistoryLine> {
    read_history(&paths::history_file())
}

/// The JSON report of the newest build in the history of the reports folder `dir`.
pub fn last_saved(dir: &std::path::Path) -> Result<std::path::PathBuf> {
    let history = read_history(&dir.join("history.jsonl"));
    let last = history.last().with_context(|| format!("no build in the history under {}", dir.display()))?;
    Ok(dir.join(format!("{}.json", last.id)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testing::*;

    #[test]
    fn history_appends_stay_valid_and_a_torn_line_is_skipped() {
        let dir = std::env::temp_dir().join(format!("xtask-history-{}", std::process::id()));
        let file = dir.join("history.jsonl");
        let _ = std::fs::remove_dir_all(&dir);
        append_history(&file, &HistoryLine { id: "a".into(), status: Status::Ok, ..Default::default() }).unwrap();
        // A torn last line (as if another writer died mid-line) must not hide earlier builds.
        let mut text = std::fs::read_to_string(&file).unwrap();
        text.push_str("{\"id\": \"torn");
        std::fs::write(&file, text).unwrap();
        append_history(&file, &HistoryLine { id: "b".into(), status: Status::Interrupted, ..Default::default() })
            .unwrap();
        let h = read_history(&file);
        assert_eq!(h.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(h[1].status, Status::Interrupted);
        std::fs::remove_dir_all(&dir).unwrap();
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
    fn a_history_line_or_report_that_does_not_match_is_named_and_the_others_are_read() {
        let dir = std::env::temp_dir().join(format!("xtask-checked-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let good = serde_json::to_string(&built("a", &["backend"])).unwrap();
        let edited = good.replace("\"wall_secs\":10.0", "\"wall_secs\":\"ten\"").replace("\"a\"", "\"b\"");
        std::fs::write(dir.join("history.jsonl"), format!("{good}\n{edited}\n\n{good}\n{{\"id\": \"torn")).unwrap();
        let (lines, bad) = read_history_checked(&dir.join("history.jsonl"));
        assert_eq!(lines.len(), 2);
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad[0].file.ends_with("history.jsonl:2") && bad[0].field == "/wall_secs", "{bad:?}");
        assert!(bad[1].file.ends_with("history.jsonl:5") && bad[1].problem.starts_with("not JSON"), "{bad:?}");
        std::fs::write(dir.join("old.json"), "{\"id\": \"x\", \"status\": \"ok\"}").unwrap();
        let old = read_report(&dir.join("old.json")).unwrap_err();
        assert_eq!(old.field, "/schema_version");
        assert!(
            old.to_string()
                .contains("old.json does not match the report schema (version 1) at /schema_version: missing"),
            "{old}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
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
}
