//! The Markdown renderers, for a CI job summary (`report --markdown >> "$GITHUB_STEP_SUMMARY"`)
//! or a pull request comment: a build, two builds compared, and the history.

use super::model::{mb, pct, BuildReport, HistoryLine};
use super::table::Row;
use crate::engine::EngineRecord;

/// A table cell: pipes would end the cell and newlines the row.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// One build: a line with its outcome, a row per target, then the engine, the cross-check with
/// BuildKit's records, cache warnings and errors.
pub(crate) fn build(r: &BuildReport) -> String {
    let signal = r.signal.as_ref().map(|s| format!(" by {s}")).unwrap_or_default();
    let mut out = format!(
        "### Build `{}`: {}{signal} in {:.1} s\n\n{} · version {} · commit `{}` · buildx {:.1} s\n\n",
        r.id,
        r.status,
        r.wall_secs,
        cell(&r.names.join(", ")),
        cell(&r.version),
        cell(&r.git_commit),
        r.buildx_secs
    );
    out.push_str("| target | outcome | time | cached/steps | size | image |\n|---|---|---:|---:|---:|---|\n");
    for t in &r.targets {
        let image = match (&t.image, &t.digest) {
            (Some(i), Some(d)) => format!("`{}@{}`", cell(i), cell(d)),
            (Some(i), None) => format!("`{}`", cell(i)),
            _ => "-".to_string(),
        };
        let first = if r.failed_first.as_ref() == Some(&t.name) { " (first)" } else { "" };
        out.push_str(&format!(
            "| {} | {}{first} | {:.1} s | {}/{} | {} | {image} |\n",
            cell(&t.name),
            cell(&t.outcome.to_string()),
            t.wall_secs,
            t.cached,
            t.steps,
            mb(t.size_bytes)
        ));
    }
    out.push('\n');
    for t in r.targets.iter().filter(|t| !t.platform_sizes.is_empty()) {
        let each: Vec<String> = t.platform_sizes.iter().map(|(p, b)| format!("{p} {}", mb(Some(*b)))).collect();
        out.push_str(&format!("- {} per platform (compressed layers): {}\n", cell(&t.name), each.join(", ")));
    }
    for t in &r.targets {
        if let Some(line) = super::why::top_cause(&t.causes) {
            out.push_str(&format!("- why {}: {}\n", cell(&t.name), cell(&line)));
        }
    }
    out.push_str(&format!("- engine: {}\n", r.engine.as_ref().map_or("not recorded".to_string(), EngineRecord::line)));
    if !r.history.is_empty() {
        out.push_str(&format!("- {}\n", cell(&r.history)));
    }
    for w in &r.cache_warnings {
        out.push_str(&format!("- cache not used or kept: {}\n", cell(w)));
    }
    if !r.errors.is_empty() || r.targets.iter().any(|t| !t.errors.is_empty()) {
        out.push_str("\n```text\n");
        for e in r.errors.iter().chain(r.targets.iter().flat_map(|t| &t.errors)) {
            out.push_str(&e.replace("```", "'''"));
            out.push('\n');
        }
        out.push_str("```\n");
    }
    out
}

/// Two builds compared: a row per target present in either, the whole build last, and the
/// warnings above the table.
pub(crate) fn compare(a: &HistoryLine, b: &HistoryLine, rows: &[Row], warnings: &[String]) -> String {
    let mut out = format!("### Builds `{}` ({}) and `{}` ({})\n\n", a.id, a.status, b.id, b.status);
    for w in warnings {
        out.push_str(&format!("> {}\n", cell(w.trim_start_matches("xtask: "))));
    }
    if !warnings.is_empty() {
        out.push('\n');
    }
    out.push_str("| target | time before | time after | change | size before | size after | change |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    for row in rows {
        match (&row.before, &row.after) {
            (Some(x), Some(y)) => {
                let (sx, sy) = (x.size_bytes.unwrap_or(0) as f64, y.size_bytes.unwrap_or(0) as f64);
                out.push_str(&format!(
                    "| {} | {:.1} s | {:.1} s | {:+.1} s ({}) | {} | {} | {:+.1} MB ({}) |\n",
                    cell(&row.name),
                    x.wall_secs,
                    y.wall_secs,
                    y.wall_secs - x.wall_secs,
                    pct(x.wall_secs, y.wall_secs),
                    mb(x.size_bytes),
                    mb(y.size_bytes),
                    (sy - sx) / 1e6,
                    pct(sx, sy)
                ));
            }
            (x, y) => {
                let time = |t: &Option<super::model::HistoryTarget>| {
                    t.as_ref().map_or("not built".to_string(), |t| format!("{:.1} s", t.wall_secs))
                };
                let size =
                    |t: &Option<super::model::HistoryTarget>| t.as_ref().map_or("-".to_string(), |t| mb(t.size_bytes));
                out.push_str(&format!(
                    "| {} | {} | {} | - | {} | {} | - |\n",
                    cell(&row.name),
                    time(x),
                    time(y),
                    size(x),
                    size(y)
                ));
            }
        }
    }
    out.push_str(&format!(
        "| **whole build** | {:.1} s | {:.1} s | {:+.1} s ({}) | | | |\n",
        a.wall_secs,
        b.wall_secs,
        b.wall_secs - a.wall_secs,
        pct(a.wall_secs, b.wall_secs)
    ));
    out
}

/// The history, one build a row.
pub(crate) fn list(history: &[HistoryLine]) -> String {
    let mut out = "| id | started | status | time | engine | built |\n|---|---|---|---:|---|---|\n".to_string();
    for h in history {
        let signal = h.signal.as_ref().map(|s| format!(" {s}")).unwrap_or_default();
        out.push_str(&format!(
            "| `{}` | {} | {}{signal} | {:.1} s | {} | {} |\n",
            h.id,
            cell(&h.started),
            h.status,
            h.wall_secs,
            cell(&h.engine.as_ref().map_or("-".to_string(), EngineRecord::short)),
            cell(&h.names.join(", "))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::{Outcome, Status, TargetReport};
    use crate::report::table::rows;
    use crate::report::testing::*;

    /// Every table row has as many cells as the header: a stray pipe would shift the columns.
    fn columns_agree(md: &str) {
        let cells = |l: &str| l.replace("\\|", "").matches('|').count();
        for table in md.split("\n\n").filter(|b| b.starts_with('|')) {
            let mut lines = table.lines();
            let header = cells(lines.next().unwrap());
            for l in lines {
                assert_eq!(cells(l), header, "{l}\nin\n{md}");
            }
        }
    }

    #[test]
    fn a_build_is_a_table_with_a_row_per_target_and_pipes_escaped() {
        let r = BuildReport {
            id: "x".into(),
            status: Status::Failed,
            names: vec!["default".into()],
            failed_first: Some("backend".into()),
            targets: vec![
                TargetReport {
                    name: "backend".into(),
                    outcome: Outcome::Failed,
                    errors: vec!["RUN a | b: exit code 1".into()],
                    ..Default::default()
                },
                TargetReport {
                    name: "frontend".into(),
                    outcome: Outcome::Ok,
                    image: Some("f:1".into()),
                    size_bytes: Some(2_000_000),
                    causes: vec![crate::report::why::StepCause {
                        step: "s".into(),
                        cause: crate::report::why::Cause::NoCache,
                        text: "--no-cache".into(),
                    }],
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let md = build(&r);
        columns_agree(&md);
        assert!(md.contains("| backend | failed (first) |"), "{md}");
        assert!(md.contains("| frontend | ok | 0.0 s | 0/0 | 2.0 MB | `f:1` |"), "{md}");
        assert!(md.contains("```text\nRUN a | b: exit code 1\n```"), "{md}");
        assert!(md.contains("- why frontend: 1 step ran: --no-cache\n") && !md.contains("why backend"), "{md}");
    }

    #[test]
    fn a_comparison_has_a_row_per_target_in_either_build() {
        let (a, b) = (built("a", &["backend", "frontend"]), built("b", &["backend", "worker"]));
        let md = compare(&a, &b, &rows(&a, &b), &["xtask: warning: different | targets".into()]);
        columns_agree(&md);
        assert!(md.contains("> warning: different \\| targets"), "{md}");
        assert!(md.contains("| frontend | 5.0 s | not built |"), "{md}");
        assert!(md.contains("| worker | not built | 5.0 s |"), "{md}");
        let listed = list(&[a, b]);
        columns_agree(&listed);
        assert_eq!(listed.lines().count(), 4);
    }
}
