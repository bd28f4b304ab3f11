//! Reports of measured builds: a JSON + HTML report per build and a line per build in the
//! history, and `cargo xtask report [--last | --compare A B | --list] [--json | --markdown]`.
//!
//! The model holds the data and `schema` its documented format; `judge` fills in what a finished
//! build's stream says and `buildx_history` what BuildKit's own records say; `store` keeps the
//! history; `table`, `markdown` and `html` render; `command` is the subcommand.

mod buildx_history;
mod command;
mod html;
mod judge;
mod markdown;
pub mod metrics;
mod model;
pub(crate) mod rawjson;
mod schema;
mod store;
mod table;
pub(crate) mod trend;
pub(crate) mod why;

use anyhow::Result;

pub(crate) use buildx_history::references;
pub use command::{command, Request};
pub(crate) use html::html;
pub(crate) use judge::{cache_warning_line, failure_summary, judge, Source};
pub use model::{is_instruction, summarize, BuildReport, HistoryLine, Outcome, Status, TargetReport};
pub(crate) use rawjson::is_failure;
pub use store::{comparable, history, last_saved, pick, read_history, read_report};
pub(crate) use table::{print_table, table};

use crate::util::paths::{self, write_atomic};
use store::{append_history, history_line};

/// The last build of the same targets on the same engine that passed: what a report's table
/// compares against.
pub(crate) fn last_comparable<'a>(report: &BuildReport, history: &'a [HistoryLine]) -> Option<&'a HistoryLine> {
    history.iter().rev().find(|h| comparable(h, &report.names, &report.engine))
}

/// Writes the JSON and HTML reports (each atomically), then adds the build's line to the history
/// (`history`: its lines as read before this build's).
pub(crate) fn save(report: &BuildReport, history: &[HistoryLine]) -> Result<std::path::PathBuf> {
    write_files(report, history)?;
    append_history(&paths::history_file(), &history_line(report))?;
    Ok(paths::reports_dir().join(format!("{}.html", report.id)))
}

/// The JSON and HTML reports of a build, each written atomically (again, when `report` adds the
/// cross-check with BuildKit's records).
fn write_files(report: &BuildReport, history: &[HistoryLine]) -> Result<()> {
    let dir = paths::reports_dir();
    write_atomic(&dir.join(format!("{}.json", report.id)), serde_json::to_string_pretty(report)?.as_bytes())?;
    write_atomic(&dir.join(format!("{}.html", report.id)), html(report, history).as_bytes())
}

/// Captured streams and small builders the renderers' and judges' tests share.
#[cfg(test)]
pub(crate) mod testing {
    use crate::report::model::{HistoryLine, HistoryTarget};
    use crate::report::rawjson::{Progress, Splitter};

    /// A rawjson stream of `bake default` captured from buildx 0.13.1 on Docker 26.1.5 (private
    /// engine), a warm build after a source-only change to the backend.
    pub(crate) const STREAM: &[u8] = include_bytes!("../../testdata/rawjson-bake-default-buildx-0.13.1.json");

    pub(crate) fn parse(stream: &[u8]) -> Progress {
        let mut s = Splitter::default();
        let mut p = Progress::default();
        for chunk in stream.chunks(4096) {
            for st in s.feed(chunk) {
                p.apply(st);
            }
        }
        p
    }

    pub(crate) fn parse_with_stray(stream: &[u8]) -> (Progress, String) {
        let mut s = Splitter::default();
        let mut p = Progress::default();
        for chunk in stream.chunks(4096) {
            for st in s.feed(chunk) {
                p.apply(st);
            }
        }
        (p, s.stray())
    }

    pub(crate) fn two() -> Vec<String> {
        vec!["backend".to_string(), "frontend".to_string()]
    }

    pub(crate) fn built(id: &str, targets: &[&str]) -> HistoryLine {
        HistoryLine {
            id: id.into(),
            status: super::Status::Ok,
            wall_secs: 10.0,
            targets: targets
                .iter()
                .map(|t| HistoryTarget { name: t.to_string(), wall_secs: 5.0, ..Default::default() })
                .collect(),
            ..Default::default()
        }
    }
}
