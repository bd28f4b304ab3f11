//! The text renderers: the table after each build, `report --compare`, and `report --list`.

use std::io::Write;

use serde::Serialize;

use super::model::{mb, pct, BuildReport, HistoryLine, HistoryTarget, Outcome};
use crate::engine::EngineRecord;

/// The short table printed after each build.
pub(crate) fn table(r: &BuildReport, previous: Option<&HistoryLine>) -> String {
    let mut out = format!("{:<24} {:>8} {:>10} {:>10}  {}\n", "target", "time", "cached", "size", "vs previous build");
    for t in &r.targets {
        let before = previous.and_then(|p| p.targets.iter().find(|x| x.name == t.name));
        let vs = match before {
            Some(b) => {
                let size = match (b.size_bytes, t.size_bytes) {
                    (Some(x), Some(y)) => format!(", size {:+.1} MB", (y as f64 - x as f64) / 1e6),
                    _ => String::new(),
                };
                format!("time {:+.1}s ({}){size}", t.wall_secs - b.wall_secs, pct(b.wall_secs, t.wall_secs))
            }
            None => "first build on this engine".to_string(),
        };
        // A failed or cancelled target's numbers cover only what ran before it stopped.
        let vs = match t.outcome {
            Outcome::Failed if r.failed_first.as_ref() == Some(&t.name) => "FAILED (first)".to_string(),
            Outcome::Failed => "FAILED".to_string(),
            Outcome::Cancelled => "cancelled".to_string(),
            Outcome::Ok => vs,
        };
        out.push_str(&format!(
            "{:<24} {:>7.1}s {:>10} {:>10}  {}\n",
            t.name,
            t.wall_secs,
            format!("{}/{}", t.cached, t.steps),
            mb(t.size_bytes),
            vs
        ));
    }
    for t in &r.targets {
        if let Some(line) = super::why::top_cause(&t.causes) {
            out.push_str(&format!("why {}: {line}\n", t.name));
        }
    }
    for t in r.targets.iter().filter(|t| !t.platform_sizes.is_empty()) {
        let each: Vec<String> = t.platform_sizes.iter().map(|(p, b)| format!("{p} {}", mb(Some(*b)))).collect();
        out.push_str(&format!("{}: {} (compressed layers per platform)\n", t.name, each.join(", ")));
    }
    for w in &r.cache_warnings {
        out.push_str(&format!("cache not used or kept: {w}\n"));
    }
    if let Some(e) = &r.engine {
        out.push_str(&format!("engine: {}\n", e.line()));
    }
    if !r.history.is_empty() {
        out.push_str(&format!("{}\n", r.history));
    }
    let signal = r.signal.as_ref().map(|s| format!(" by {s}")).unwrap_or_default();
    out.push_str(&format!("{}{signal} in {:.1}s (buildx {:.1}s)\n", r.status, r.wall_secs, r.buildx_secs));
    out
}

pub(crate) fn print_table(r: &BuildReport, previous: Option<&HistoryLine>) {
    let _ = std::io::stderr().write_all(table(r, previous).as_bytes());
}

/// The targets two builds share, and those only one of them built (each in its build's order).
pub(crate) struct TargetSets {
    pub(crate) shared: Vec<String>,
    pub(crate) only_before: Vec<String>,
    pub(crate) only_after: Vec<String>,
}

pub(crate) fn target_sets(a: &HistoryLine, b: &HistoryLine) -> TargetSets {
    let has = |h: &HistoryLine, name: &str| h.targets.iter().any(|t| t.name == name);
    let names = |h: &HistoryLine| h.targets.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    TargetSets {
        shared: names(b).into_iter().filter(|n| has(a, n)).collect(),
        only_before: names(a).into_iter().filter(|n| !has(b, n)).collect(),
        only_after: names(b).into_iter().filter(|n| !has(a, n)).collect(),
    }
}

/// The one warning line when two compared builds built different targets, if they did.
pub(crate) fn different_targets_warning(sets: &TargetSets) -> Option<String> {
    if sets.only_before.is_empty() && sets.only_after.is_empty() {
        return None;
    }
    let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
    Some(format!(
        "xtask: warning: the builds built different targets (only before: {}; only after: {}): comparing the ones they share ({})",
        list(&sets.only_before),
        list(&sets.only_after),
        list(&sets.shared)
    ))
}

/// One target of a comparison: its numbers in each build, none where that build did not build it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) before: Option<HistoryTarget>,
    pub(crate) after: Option<HistoryTarget>,
}

/// A row per target present in either build: the before build's targets in its order, then those
/// only the after build has.
pub(crate) fn rows(a: &HistoryLine, b: &HistoryLine) -> Vec<Row> {
    let find = |h: &HistoryLine, name: &str| h.targets.iter().find(|t| t.name == name).cloned();
    let mut names: Vec<&String> = a.targets.iter().map(|t| &t.name).collect();
    names.extend(b.targets.iter().map(|t| &t.name).filter(|n| !a.targets.iter().any(|t| &t.name == *n)));
    names.into_iter().map(|n| Row { name: n.clone(), before: find(a, n), after: find(b, n) }).collect()
}

/// The warning lines of a comparison: different targets, different engines.
pub(crate) fn compare_warnings(a: &HistoryLine, b: &HistoryLine) -> Vec<String> {
    let mut out: Vec<String> = different_targets_warning(&target_sets(a, b)).into_iter().collect();
    if a.engine != b.engine {
        let which = |e: &Option<EngineRecord>| {
            e.as_ref().map_or("not recorded".to_string(), |e| format!("{}, Docker {}", e.short(), e.docker))
        };
        out.push(format!(
            "xtask: warning: the builds ran on different engines ({} before, {} after): the difference measures the engine too",
            which(&a.engine),
            which(&b.engine)
        ));
    }
    out
}

/// Two builds side by side: time and size, absolute and percent, for the targets both built; a
/// target only one built gets a row saying so.
pub(crate) fn compare(a: &HistoryLine, b: &HistoryLine) -> String {
    let sets = target_sets(a, b);
    let mut out = format!("before {} ({})  after {} ({})\n", a.id, a.status, b.id, b.status);
    out.push_str(&format!(
        "{:<24} {:>9} {:>9} {:>9} {:>7}   {:>10} {:>10} {:>10} {:>7}\n",
        "target", "time A", "time B", "delta", "%", "size A", "size B", "delta", "%"
    ));
    for row in rows(a, b) {
        let (ta, tb) = match (&row.before, &row.after) {
            (Some(ta), Some(tb)) => (ta, tb),
            (before, _) => {
                let side = if before.is_some() { "before" } else { "after" };
                out.push_str(&format!("{:<24} only in the {side} build: not compared\n", row.name));
                continue;
            }
        };
        let (sa, sb) = (ta.size_bytes.unwrap_or(0) as f64, tb.size_bytes.unwrap_or(0) as f64);
        out.push_str(&format!(
            "{:<24} {:>8.1}s {:>8.1}s {:>+8.1}s {:>7}   {:>10} {:>10} {:>+7.1} MB {:>7}\n",
            row.name,
            ta.wall_secs,
            tb.wall_secs,
            tb.wall_secs - ta.wall_secs,
            pct(ta.wall_secs, tb.wall_secs),
            mb(ta.size_bytes),
            mb(tb.size_bytes),
            (sb - sa) / 1e6,
            pct(sa, sb)
        ));
    }
    let whole = if sets.only_before.is_empty() && sets.only_after.is_empty() {
        "whole build"
    } else {
        "whole build (not alike)"
    };
    out.push_str(&format!(
        "{:<24} {:>8.1}s {:>8.1}s {:>+8.1}s {:>7}\n",
        whole,
        a.wall_secs,
        b.wall_secs,
        b.wall_secs - a.wall_secs,
        pct(a.wall_secs, b.wall_secs)
    ));
    out
}

/// The history as a table with a header; the id column is as wide as the longest id, so the
/// columns stay aligned whatever the process ids were.
pub(crate) fn list(history: &[HistoryLine]) -> String {
    let width = history.iter().map(|h| h.id.len()).max().unwrap_or(0).max(2);
    let mut out = format!(
        "{:<width$}  {:<24}  {:<18}  {:>8}  {:<16}  {}\n",
        "id", "started", "status", "time", "engine", "built"
    );
    for h in history {
        let status = match &h.signal {
            Some(s) => format!("{} {}", h.status, s),
            None => h.status.to_string(),
        };
        out.push_str(&format!(
            "{:<width$}  {:<24}  {:<18}  {:>7.1}s  {:<16}  {}\n",
            h.id,
            h.started,
            status,
            h.wall_secs,
            h.engine.as_ref().map_or("-".to_string(), EngineRecord::short),
            h.names.join(",")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::HistoryTarget;
    use crate::report::testing::*;

    #[test]
    fn compare_shows_absolute_and_percent_changes() {
        let line = |id: &str, secs: f64, size: u64| HistoryLine {
            id: id.into(),
            status: crate::report::Status::Ok,
            wall_secs: secs,
            targets: vec![HistoryTarget {
                name: "backend".into(),
                wall_secs: secs,
                steps: 5,
                cached: 0,
                size_bytes: Some(size),
                ..Default::default()
            }],
            ..Default::default()
        };
        let out = compare(&line("a", 100.0, 200_000_000), &line("b", 25.0, 150_000_000));
        assert!(out.contains("-75.0s"), "{out}");
        assert!(out.contains("-75%"), "{out}");
        assert!(out.contains("-50.0 MB"), "{out}");
        assert!(out.contains("-25%"), "{out}");
    }

    #[test]
    fn compare_of_different_target_sets_warns_once_and_compares_the_shared_ones() {
        let (a, b) = (built("a", &["backend", "frontend"]), built("b", &["backend", "worker"]));
        let sets = target_sets(&a, &b);
        assert_eq!(
            (sets.shared.as_slice(), sets.only_before.as_slice()),
            (&["backend".to_string()][..], &["frontend".to_string()][..])
        );
        let line = different_targets_warning(&sets).unwrap();
        assert_eq!(line.lines().count(), 1);
        assert!(
            line.starts_with("xtask: warning: ") && line.ends_with("comparing the ones they share (backend)"),
            "{line}"
        );
        let out = compare(&a, &b);
        assert!(out.lines().any(|l| l.starts_with("backend ") && l.contains("+0.0s")), "{out}");
        assert!(out.contains("frontend                 only in the before build"), "{out}");
        assert!(out.contains("worker                   only in the after build"), "{out}");
        assert!(out.contains("whole build (not alike)"), "{out}");
        let rows = rows(&a, &b);
        let names: Vec<(&str, bool, bool)> =
            rows.iter().map(|r| (r.name.as_str(), r.before.is_some(), r.after.is_some())).collect();
        assert_eq!(names, [("backend", true, true), ("frontend", true, false), ("worker", false, true)]);
        assert_eq!(compare_warnings(&a, &b).len(), 1);
        assert_eq!(different_targets_warning(&target_sets(&a, &a)), None);
        assert!(compare(&a, &a).contains("whole build "));
    }

    #[test]
    fn list_has_a_header_and_columns_that_stay_put_whatever_the_id_width() {
        let mut h =
            vec![built("20261128T041140.438Z-32209", &["backend"]), built("20261128T041150.966Z-9", &["backend"])];
        h[1].engine = Some(crate::engine::EngineRecord { private: Some("floor".into()), ..Default::default() });
        h[1].status = crate::report::Status::Interrupted;
        h[1].signal = Some("SIGINT".into());
        let out = list(&h);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("id ") && lines[0].contains("status") && lines[0].contains("engine"), "{out}");
        let column = |l: &str, word: &str| l.find(word).unwrap();
        assert_eq!(column(lines[0], "status"), column(lines[1], "ok"), "{out}");
        assert_eq!(column(lines[1], "ok"), column(lines[2], "interrupted SIGINT"), "{out}");
        assert_eq!(column(lines[0], "engine"), column(lines[2], "floor"), "{out}");
        assert_eq!(column(lines[1], "10.0s"), column(lines[2], "10.0s"), "{out}");
    }
}
