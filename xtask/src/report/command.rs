//! `cargo xtask report`: one build, the history, or two builds compared, as text, JSON (the format
//! `xtask/report.schema.json` documents) or Markdown. Every file is checked against the schema as
//! it is read: one that does not match is named with its field, and the others are still shown.

use anyhow::{bail, Result};
use serde_json::json;

use super::model::{BuildReport, HistoryLine};
use super::store::{comparable, pick, read_history_checked, read_report, Unreadable};
use super::{buildx_history, markdown, schema, table, write_files};
use crate::util::paths;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Text,
    Json,
    Markdown,
}

/// At most this many unreadable files are named one a line; the JSON form names them all.
const NAMED: usize = 5;

/// What `cargo xtask report` was asked for.
pub struct Request {
    pub compare: bool,
    pub list: bool,
    pub json: bool,
    pub markdown: bool,
    /// `--why [TARGET]`: each step of the last build that ran, with its cause.
    pub why: bool,
    /// `--trend [--last N]`: steps over the last builds.
    pub trend: bool,
    pub last: bool,
    pub ids: Vec<String>,
}

/// `cargo xtask report`; `reach` connects to the engine when a report's cross-check needs it.
pub fn command(f: &Request, reach: &dyn Fn() -> Result<crate::engine::Engine>) -> Result<()> {
    let format = match (f.json, f.markdown) {
        (true, true) => bail!("--json and --markdown each choose the output: give one of them"),
        (true, false) => Format::Json,
        (false, true) => Format::Markdown,
        (false, false) => Format::Text,
    };
    let chosen: Vec<&str> = [(f.list, "--list"), (f.compare, "--compare"), (f.why, "--why"), (f.trend, "--trend")]
        .iter()
        .filter_map(|(on, name)| on.then_some(*name))
        .collect();
    if chosen.len() > 1 {
        bail!("{} are different reports: give one of them", chosen.join(" and "));
    }
    let (history, unreadable) = read_history_checked(&paths::history_file());
    if f.list {
        return list(&history, unreadable, format);
    }
    warn(&unreadable);
    if history.is_empty() {
        bail!("no builds recorded yet in {}: run `cargo xtask build` first", paths::history_file().display());
    }
    if f.trend {
        return trend(&history, f, format);
    }
    if f.why {
        if f.ids.len() > 1 {
            bail!("--why takes one target at most, e.g. `report --why backend`");
        }
        let last = pick(&history, "last")?;
        let report =
            read_report(&paths::reports_dir().join(format!("{}.json", last.id))).map_err(|u| anyhow::anyhow!("{u}"))?;
        let text = super::why::listing(&report, f.ids.first().map(String::as_str)).map_err(|e| anyhow::anyhow!(e))?;
        print!("{text}");
        return Ok(());
    }
    if f.compare {
        let [a, b] = f.ids.as_slice() else { bail!("--compare takes two builds, e.g. `--compare last~1 last`") };
        return compare(pick(&history, a)?, pick(&history, b)?, format);
    }
    if f.ids.len() > 1 {
        bail!("`report` shows one build: give one id (or --compare A B)");
    }
    let id = f.ids.first().map_or("last", String::as_str);
    show(pick(&history, id)?, &history, format, reach)
}

/// One warning line per unreadable file, up to [`NAMED`].
fn warn(unreadable: &[Unreadable]) {
    for u in unreadable.iter().take(NAMED) {
        eprintln!("xtask: warning: {u}");
    }
    if unreadable.len() > NAMED {
        eprintln!(
            "xtask: warning: and {} more files that do not match the report schema (`cargo xtask report --list --json` names them all)",
            unreadable.len() - NAMED
        );
    }
}

/// The history. A build whose report file does not match the schema is still listed (its history
/// line is enough), and the file is named.
fn list(history: &[HistoryLine], mut unreadable: Vec<Unreadable>, format: Format) -> Result<()> {
    let dir = paths::reports_dir();
    for h in history {
        if let Err(u) = read_report(&dir.join(format!("{}.json", h.id))) {
            unreadable.push(u);
        }
    }
    match format {
        Format::Json => {
            let doc =
                json!({"schema_version": schema::VERSION, "kind": "list", "builds": history, "unreadable": unreadable});
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Format::Markdown => print!("{}", markdown::list(history)),
        Format::Text => print!("{}", table::list(history)),
    }
    warn(&unreadable);
    Ok(())
}

/// Two builds: warning lines when their targets or engines differ, then a row per target.
fn compare(a: &HistoryLine, b: &HistoryLine, format: Format) -> Result<()> {
    let warnings = table::compare_warnings(a, b);
    for w in &warnings {
        eprintln!("{w}");
    }
    let rows = table::rows(a, b);
    match format {
        Format::Json => {
            let doc = json!({
                "schema_version": schema::VERSION,
                "kind": "compare",
                "before": a,
                "after": b,
                "targets": rows,
                "warnings": warnings,
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Format::Markdown => print!("{}", markdown::compare(a, b, &rows, &warnings)),
        Format::Text => print!("{}", table::compare(a, b)),
    }
    Ok(())
}

/// `--trend [--last N]`: the steps of the last N builds that passed. A report that cannot be read
/// is named and left out.
fn trend(history: &[HistoryLine], f: &Request, format: Format) -> Result<()> {
    if format != Format::Text {
        bail!("--trend prints a table only: leave out --json and --markdown");
    }
    let last = match (f.last, f.ids.as_slice()) {
        (false, []) => super::trend::DEFAULT_LAST,
        (true, [n]) => n.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
            anyhow::anyhow!("--trend --last wants a number of builds above 0, e.g. `--trend --last 30`, got `{n}`")
        })?,
        _ => bail!("--trend takes no build ids: `report --trend --last N` covers the last N builds"),
    };
    let passed: Vec<&HistoryLine> = history.iter().filter(|h| h.status == super::Status::Ok).collect();
    let dir = paths::reports_dir();
    let mut reports = Vec::new();
    for h in &passed[passed.len().saturating_sub(last)..] {
        match read_report(&dir.join(format!("{}.json", h.id))) {
            Ok(r) => reports.push(r),
            Err(u) => eprintln!("xtask: warning: {u}"),
        }
    }
    if reports.is_empty() {
        bail!("no build that passed has a readable report: run `cargo xtask build` first");
    }
    print!("{}", super::trend::text(&super::trend::trend(&reports), reports.len()));
    Ok(())
}

/// One build's report, cross-checked with BuildKit's records the first time it is shown.
fn show(
    h: &HistoryLine,
    history: &[HistoryLine],
    format: Format,
    reach: &dyn Fn() -> Result<crate::engine::Engine>,
) -> Result<()> {
    let path = paths::reports_dir().join(format!("{}.json", h.id));
    let mut report = read_report(&path)
        .map_err(|u| anyhow::anyhow!("{u}; `cargo xtask report --list` shows the builds whose reports can be read"))?;
    let (changed, warning) = buildx_history::check_when_shown(&mut report, reach);
    // Keeping the result saves asking again; a report that cannot be written is still shown.
    if changed {
        let before: Vec<HistoryLine> = history.iter().take_while(|x| x.id != report.id).cloned().collect();
        if let Err(e) = write_files(&report, &before) {
            eprintln!("xtask: warning: the cross-check is shown but not kept in {}: {e:#}", path.display());
        }
    }
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Markdown => print!("{}", markdown::build(&report)),
        Format::Text => print!("{}", text(&report, history)),
    }
    if let Some(w) = warning {
        eprintln!("{w}");
    }
    Ok(())
}

/// The table after a build (against the last comparable build before it), each target's RUN
/// steps and slowest steps, and where the HTML report is.
fn text(report: &BuildReport, history: &[HistoryLine]) -> String {
    let previous = history
        .iter()
        .take_while(|x| x.id != report.id)
        .filter(|x| comparable(x, &report.names, &report.engine))
        .last();
    let mut out = table::table(report, previous);
    for t in &report.targets {
        out.push_str(&format!(
            "{}: {} of {} RUN steps executed, context {} bytes\n",
            t.name, t.run_steps_executed, t.run_steps, t.context_bytes
        ));
        for s in &t.slowest {
            out.push_str(&format!("  {:>7.1}s  {}\n", s.secs, s.name));
        }
    }
    out.push_str(&format!("html: {}\n", paths::reports_dir().join(format!("{}.html", report.id)).display()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::{summarize, Outcome, Status};
    use crate::report::testing::*;

    /// The report a build writes, from a captured stream and with every optional part filled in,
    /// matches the schema; so do the list and comparison documents.
    #[test]
    fn the_documents_the_crate_writes_match_the_schema() {
        let mut r = summarize(&two(), &parse(STREAM), "2026-11-28T00:00:00.000Z".into(), true);
        r.status = Status::Ok;
        r.signal = Some("SIGINT".into());
        r.failed_first = Some("backend".into());
        r.cache_warnings = vec!["exporting cache: refused".into()];
        r.engine = Some(crate::engine::EngineRecord {
            private: Some("current".into()),
            store: "containerd".into(),
            ..Default::default()
        });
        r.history = "buildx history agrees".into();
        for t in &mut r.targets {
            t.outcome = Outcome::Ok;
            t.history_ref = Some("default/default/x".into());
            t.history_check = Some(Default::default());
            t.platform_sizes.insert("linux/arm64".into(), 1);
            t.size_bytes = Some(3);
        }
        let value = serde_json::to_value(&r).unwrap();
        assert_eq!(schema::check(&value, ""), Ok(()));
        assert_eq!(schema::check(&value, "build"), Ok(()));
        let captured: serde_json::Value =
            serde_json::from_str(include_str!("../../testdata/report-backend-buildx-0.29.1.json")).unwrap();
        let mut old = serde_json::from_value::<BuildReport>(captured).unwrap();
        old.schema_version = schema::VERSION;
        assert_eq!(schema::check(&serde_json::to_value(&old).unwrap(), "build"), Ok(()));
        let (a, b) = (built("a", &["backend"]), built("b", &["backend", "frontend"]));
        let line = serde_json::to_value(super::super::store::history_line(&r)).unwrap();
        assert_eq!(schema::check(&line, "history_line"), Ok(()));
        let listed = json!({"schema_version": schema::VERSION, "kind": "list", "builds": [&a, &b], "unreadable": [
            Unreadable { file: "f".into(), field: "/x".into(), problem: "p".into() }]});
        assert_eq!(schema::check(&listed, ""), Ok(()));
        let compared = json!({"schema_version": schema::VERSION, "kind": "compare", "before": &a, "after": &b,
            "targets": table::rows(&a, &b), "warnings": table::compare_warnings(&a, &b)});
        assert_eq!(schema::check(&compared, ""), Ok(()));
        assert_eq!(compared["targets"][1]["before"], serde_json::Value::Null, "a missing side is null");
    }
}
