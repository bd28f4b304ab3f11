//! The history: one line per build in `history.jsonl`, appended atomically, read back, and
//! searched by id or `last~N`; and the reading of a report file, checked against the schema.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::model::{BuildReport, HistoryLine, HistoryTarget, Status};
use super::schema;
use crate::engine::EngineRecord;
use crate::util::paths;

/// A report file or history line that does not match the schema (older, or edited by hand).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    /// Relative to the project root; `history.jsonl:N` for a history line.
    pub(crate) file: String,
    pub(crate) field: String,
    pub(crate) problem: String,
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

/// The history's lines that match the schema, and the others named by line. The file is read as
/// bytes, so one line that is not UTF-8 is named (and stays in the file) while the others are
/// read. An empty line is skipped; a torn one (a writer that died mid-line) is named like any other.
pub(crate) fn read_history_checked(path: &Path) -> (Vec<HistoryLine>, Vec<Unreadable>) {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return (Vec::new(), vec![Unreadable { file: shown(path), field: String::new(), problem: e.to_string() }])
        }
    };
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for (n, line) in bytes.split(|b| *b == b'\n').enumerate().filter(|(_, l)| !l.trim_ascii().is_empty()) {
        let file = format!("{}:{}", shown(path), n + 1);
        let parsed = std::str::from_utf8(line)
            .map_err(|e| Unreadable {
                file: file.clone(),
                field: String::new(),
                problem: format!("not UTF-8 (byte {} of the line); the line is kept in the file", e.valid_up_to() + 1),
            })
            .and_then(|text| checked(text, "history_line", file));
        match parsed {
            Ok(h) => good.push(h),
            Err(u) => bad.push(u),
        }
    }
    (good, bad)
}

pub(crate) fn history_line(r: &BuildReport) -> HistoryLine {
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
                cache_written: t.cache_written.clone(),
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

/// Appends one line under the file's exclusive lock, flushed to disk before the lock goes. Earlier
/// lines are never rewritten: a line that cannot be read stays for a person to look at, and a torn
/// last line (its writer died) is ended first so the new line stays whole.
pub(crate) fn append_history(path: &Path, line: &HistoryLine) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let dir = path.parent().context("the history needs a folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let created = !path.exists();
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    crate::util::os::flock(&file, true, true).with_context(|| format!("locking {}", path.display()))?;
    let mut text = Vec::new();
    if file.metadata()?.len() > 0 {
        let mut last = [0u8];
        file.seek(SeekFrom::End(-1))?;
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            text.push(b'\n');
        }
    }
    text.extend(serde_json::to_vec(line)?);
    text.push(b'\n');
    // One write of an append-mode file: a reader sees the line whole or not at all.
    file.write_all(&text).with_context(|| format!("appending to {}", path.display()))?;
    file.sync_all().with_context(|| format!("flushing {} to disk", path.display()))?;
    if created {
        crate::util::os::sync_dir(dir).with_context(|| format!("flushing the folder {} to disk", dir.display()))?;
    }
    Ok(())
}

/// The history's readable lines (`report --list` names the others).
pub fn read_history(path: &Path) -> Vec<HistoryLine> {
    read_history_checked(path).0
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
    fn a_line_that_is_not_utf8_is_named_kept_and_never_rewritten() {
        let dir = std::env::temp_dir().join(format!("xtask-history-bytes-{}", std::process::id()));
        let file = dir.join("history.jsonl");
        let _ = std::fs::remove_dir_all(&dir);
        append_history(&file, &HistoryLine { id: "a".into(), status: Status::Ok, ..Default::default() }).unwrap();
        let mut bytes = std::fs::read(&file).unwrap();
        bytes.extend(b"{\"id\": \"caf\xe9\"}\n");
        let good = serde_json::to_string(&built("b", &["backend"])).unwrap();
        bytes.extend(format!("{good}\n").as_bytes());
        std::fs::write(&file, &bytes).unwrap();
        let (lines, bad) = read_history_checked(&file);
        assert_eq!(lines.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(bad[0].file.ends_with("history.jsonl:2"), "{bad:?}");
        assert!(bad[0].problem.starts_with("not UTF-8 (byte 12 of the line)"), "{bad:?}");
        append_history(&file, &HistoryLine { id: "c".into(), status: Status::Ok, ..Default::default() }).unwrap();
        let after = std::fs::read(&file).unwrap();
        assert!(after.starts_with(&bytes), "earlier lines, the unreadable one included, stay byte for byte");
        assert_eq!(read_history(&file).iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn appends_from_many_writers_at_once_all_land_whole() {
        let dir = std::env::temp_dir().join(format!("xtask-history-many-{}", std::process::id()));
        let file = dir.join("history.jsonl");
        let _ = std::fs::remove_dir_all(&dir);
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let file = file.clone();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let line = HistoryLine { id: format!("{w}-{i}"), status: Status::Ok, ..Default::default() };
                        append_history(&file, &line).unwrap();
                    }
                })
            })
            .collect();
        writers.into_iter().for_each(|w| w.join().unwrap());
        let (lines, bad) = read_history_checked(&file);
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(lines.len(), 200);
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
            old.to_string().contains(&format!(
                "old.json does not match the report schema (version {}) at /schema_version: missing",
                crate::report::schema::VERSION
            )),
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
