//! Reports of measured builds: a JSON + HTML report per build and a line per build in the
//! history, and `cargo xtask report [--last | --compare A B | --list | --json]`.
//!
//! The model holds the data; `judge` and `buildx_history` fill in what a finished build's stream
//! and BuildKit's own records say; `store` keeps the history; `table` and `html` render.

mod buildx_history;
mod html;
mod judge;
mod model;
mod store;
mod table;

use anyhow::{bail, Context, Result};

pub use buildx_history::{cross_check, references};
pub use html::html;
pub use judge::{cache_trouble, cache_warning_line, failure_summary, is_failure, judge, Source};
pub use model::{summarize, BuildReport, HistoryLine, Outcome, Status, TargetReport};
pub use store::{comparable, history, last_saved, read_history};
pub use table::{print_table, table};

use crate::engine::EngineRecord;
use crate::paths::{self, write_atomic};
use store::{append_history, history_line, pick};
use table::{compare, different_targets_warning, list, target_sets};

/// Writes the JSON and HTML reports (each atomically), then adds the build's line to the history.
pub fn save(report: &BuildReport) -> Result<std::path::PathBuf> {
    let dir = paths::reports_dir();
    let json = dir.join(format!("{}.json", report.id));
    write_atomic(&json, serde_json::to_string_pretty(report)?.as_bytes())?;
    write_atomic(&dir.join(format!("{}.html", report.id)), html(report).as_bytes())?;
    append_history(&paths::history_file(), &history_line(report))?;
    Ok(dir.join(format!("{}.html", report.id)))
}

/// `cargo xtask report`.
pub fn command(compare_flag: bool, list: bool, json: bool, ids: &[String]) -> Result<()> {
    let history = history();
    if history.is_empty() {
        bail!("no builds recorded yet in {}: run `cargo xtask build` first", paths::history_file().display());
    }
    if list {
        if json {
            println!("{}", serde_json::to_string_pretty(&history)?);
        } else {
            print!("{}", self::list(&history));
        }
        return Ok(());
    }
    if compare_flag {
        let [a, b] = ids else { bail!("--compare takes two builds, e.g. `--compare last~1 last`") };
        let (a, b) = (pick(&history, a)?, pick(&history, b)?);
        return print_compare(a, b, json);
    }
    let id = ids.first().map_or("last", String::as_str);
    let h = pick(&history, id)?;
    let path = paths::reports_dir().join(format!("{}.json", h.id));
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    if json {
        println!("{text}");
        return Ok(());
    }
    let report: BuildReport = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let previous = history.iter().take_while(|x| x.id != h.id).filter(|x| comparable(x, &h.names, &h.engine)).last();
    print!("{}", table(&report, previous));
    for t in &report.targets {
        println!(
            "{}: {} of {} RUN steps executed, context {} bytes",
            t.name, t.run_steps_executed, t.run_steps, t.context_bytes
        );
        for s in &t.slowest {
            println!("  {:>7.1}s  {}", s.secs, s.name);
        }
    }
    println!("html: {}", paths::reports_dir().join(format!("{}.html", h.id)).display());
    Ok(())
}

/// `report --compare A B`: a warning line each when the builds' targets or engines differ, then
/// the table (or both history lines and the target sets as JSON).
fn print_compare(a: &HistoryLine, b: &HistoryLine, json: bool) -> Result<()> {
    let sets = target_sets(a, b);
    if let Some(line) = different_targets_warning(&sets) {
        eprintln!("{line}");
    }
    if a.engine != b.engine {
        let which = |e: &Option<EngineRecord>| {
            e.as_ref().map_or("not recorded".to_string(), |e| format!("{}, Docker {}", e.short(), e.docker))
        };
        eprintln!(
        "xtask: warning: the builds ran on different engines ({} before, {} after): the difference measures the engine too",
        which(&a.engine),
        which(&b.engine)
    );
    }
    if json {
        let value = serde_json::json!({
            "before": a,
            "after": b,
            "shared": sets.shared,
            "only_before": sets.only_before,
            "only_after": sets.only_after,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", compare(a, b));
    }
    Ok(())
}

/// Captured streams and small builders the renderers' and judges' tests share.
#[cfg(test)]
pub mod testing {
    use crate::rawjson::{Progress, Splitter};
    use crate::report::model::{HistoryLine, HistoryTarget};

    /// A rawjson stream of `bake default` captured from buildx 0.13.1 on Docker 26.1.5 (private
    /// engine), a warm build after a source-only change to the backend.
    pub const STREAM: &[u8] = include_bytes!("../../testdata/rawjson-bake-default-buildx-0.13.1.json");

    pub fn parse(stream: &[u8]) -> Progress {
        let mut s = Splitter::default();
        let mut p = Progress::default();
        for chunk in stream.chunks(4096) {
            for st in s.feed(chunk) {
                p.apply(st);
            }
        }
        p
    }

    pub fn parse_with_stray(stream: &[u8]) -> (Progress, String) {
        let mut s = Splitter::default();
        let mut p = Progress::default();
        for chunk in stream.chunks(4096) {
            for st in s.feed(chunk) {
                p.apply(st);
            }
        }
        (p, s.stray)
    }

    pub fn two() -> Vec<String> {
        vec!["backend".to_string(), "frontend".to_string()]
    }

    pub fn built(id: &str, targets: &[&str]) -> HistoryLine {
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
