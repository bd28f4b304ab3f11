//! The engine's build cache records this project's builds made, by id: the mark `du` and `clean`
//! know the project's layers by (BuildKit records carry no label, and their text is the same in
//! any project with the same Dockerfiles). After a build that ran a step, the records the engine
//! created since the build started are added to the project's `target/xtask/cache-records.json`,
//! per engine; a build that ran none made none, and asks nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::{DateTime, FixedOffset};

use crate::engine::Engine;
use crate::util::paths;

/// Engine (as `Engine::describe` names it) → the ids of the records the project's builds made.
type Kept = BTreeMap<String, BTreeSet<String>>;

/// The project's own (a scratch copy of the sources is another project).
fn file() -> PathBuf {
    paths::xtask_dir().join("cache-records.json")
}

/// The ids the project's builds made on this engine.
pub(crate) fn kept(engine: &Engine) -> BTreeSet<String> {
    paths::read_json::<Kept>(&file()).remove(&engine.describe()).unwrap_or_default()
}

/// One record as the engine lists it: its id and when it was made.
#[derive(serde::Deserialize)]
struct Listed {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "CreatedAt", default)]
    created: String,
}

/// Keeps the ids of the records the engine made since `started` (an RFC 3339 time), and forgets
/// kept ids the engine no longer has. No slack: an engine whose clock runs behind the host's
/// leaves some of the build's records unkept (and so never removed), never another's kept.
/// Another build on the same engine in the same seconds cannot be told apart by time: its new
/// records are kept too.
pub(crate) fn keep_made_since(engine: &Engine, started: &str) -> Result<()> {
    let since = DateTime::parse_from_rfc3339(started).context("reading the build's start time")?;
    let body = crate::engine::store::disk_usage(engine, "/system/df?type=build-cache")?;
    let listed: serde_json::Value = serde_json::from_str(&body).context("reading the engine's /system/df")?;
    let records: Vec<Listed> = serde_json::from_value(listed["BuildCache"].clone()).unwrap_or_default();
    // Builds may end at the same time: each keeps its records.
    paths::update_json(&file(), |all: &mut Kept| {
        let ids = all.entry(engine.describe()).or_default();
        *ids = merged(ids, &records, since);
    })
}

/// The kept ids the engine still lists, and those it made since `since`.
fn merged(kept: &BTreeSet<String>, records: &[Listed], since: DateTime<FixedOffset>) -> BTreeSet<String> {
    let listed: BTreeSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
    let made = records
        .iter()
        .filter(|r| DateTime::parse_from_rfc3339(&r.created).is_ok_and(|c| c >= since))
        .map(|r| r.id.clone());
    kept.iter().filter(|id| listed.contains(id.as_str())).cloned().chain(made).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_made_since_the_start_are_kept_and_gone_ones_forgotten() {
        let listed = |id: &str, created: &str| Listed { id: id.into(), created: created.into() };
        let records = [
            listed("old-ours", "2026-12-01T10:00:00Z"),
            listed("old-other", "2026-12-01T10:00:00Z"),
            listed("new", "2026-12-01T12:00:01.5Z"),
            listed("undated", ""),
        ];
        let kept: BTreeSet<String> = ["old-ours", "pruned"].map(String::from).into();
        let since = DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z").unwrap();
        assert_eq!(merged(&kept, &records, since), ["new", "old-ours"].map(String::from).into());
    }
}
