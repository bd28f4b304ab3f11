//! The HTML renderer: a self-contained page with the summary and a timeline per target.

use super::model::{mb, BuildReport, HistoryLine, Outcome};
use super::trend;
use crate::engine::EngineRecord;

/// A self-contained page: the summary table and a timeline per target, cached steps grey, each
/// step that ran with its cause, and a chart of the target's last builds from `history`.
pub(crate) fn html(r: &BuildReport, history: &[HistoryLine]) -> String {
    let (rows, timelines) = (rows(r), timelines(r, history));
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Build {id}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
.tl {{ border: 1px solid #ddd; padding: 6px; }}
.row {{ display: flex; align-items: center; height: 20px; }}
.label {{ width: 46%; overflow: hidden; white-space: nowrap; text-overflow: ellipsis; font-family: monospace; font-size: 12px; }}
.track {{ position: relative; flex: 1; height: 12px; background: #f4f4f4; }}
.bar {{ position: absolute; top: 0; height: 12px; }}
.ran {{ background: #2b6cb0; }} .cached {{ background: #b8b8b8; }} .err {{ background: #c53030; }}
.warn {{ background: #fff4d6; border-left: 4px solid #d69e2e; padding: 4px 8px; }}
.why {{ margin: 0 0 4px 2%; font-size: 12px; color: #555; }}
.secs {{ width: 70px; text-align: right; font-size: 12px; }}
.legend span {{ display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; vertical-align: middle; }}
</style></head><body>
<h1>Build {id}: {status}</h1>
<p>{names} &middot; version {version} &middot; commit {commit} &middot; started {started} &middot; {wall:.1}s (buildx {bx:.1}s)</p>
<p>engine: {engine}</p>
{history}{warnings}<table><tr><th>target</th><th>time</th><th>cached/steps</th><th>cache hits</th><th>size</th><th>per platform (compressed)</th><th>RUN executed</th></tr>
{rows}</table>
<p class="legend">Timeline:<span class="ran"></span>executed<span class="cached"></span>cached<span class="err"></span>failed</p>
{timelines}
</body></html>
"#,
        id = esc(&r.id),
        status = esc(&format!("{}{}", r.status, r.signal.as_ref().map(|s| format!(" by {s}")).unwrap_or_default())),
        warnings = r
            .cache_warnings
            .iter()
            .map(|w| format!("<p class=\"warn\">cache not used or kept: {}</p>\n", esc(w)))
            .collect::<String>(),
        names = esc(&r.names.join(", ")),
        version = esc(&r.version),
        commit = esc(&r.git_commit),
        started = esc(&r.started),
        engine = esc(&r.engine.as_ref().map_or("not recorded".to_string(), EngineRecord::line)),
        history = if r.history.is_empty() { String::new() } else { format!("<p>{}</p>\n", esc(&r.history)) },
        wall = r.wall_secs,
        bx = r.buildx_secs,
    )
}

/// Text as HTML: the report's strings are step names and error messages, full of `<` and `"`.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The summary table's rows, one per target.
fn rows(r: &BuildReport) -> String {
    let mut rows = String::new();
    for t in &r.targets {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{:.1}s</td><td>{}/{}</td><td>{:.0}%</td><td>{}</td><td>{}</td><td>{}/{}</td></tr>\n",
            esc(&t.name),
            t.wall_secs,
            t.cached,
            t.steps,
            t.cache_hit_ratio * 100.0,
            mb(t.size_bytes),
            if t.platform_sizes.is_empty() {
                "-".to_string()
            } else {
                t.platform_sizes.iter().map(|(p, b)| format!("{p} {}", mb(Some(*b)))).collect::<Vec<_>>().join("<br>")
            },
            t.run_steps_executed,
            t.run_steps
        ));
    }
    rows
}

/// A timeline per target: each step a bar placed by its start and length, cached ones grey.
fn timelines(r: &BuildReport, history: &[HistoryLine]) -> String {
    let mut timelines = String::new();
    for t in &r.targets {
        let span = t.steps_detail.iter().map(|s| s.start + s.secs).fold(t.wall_secs, f64::max).max(0.001);
        let outcome = match t.outcome {
            Outcome::Ok => String::new(),
            o => format!(" ({o})"),
        };
        timelines.push_str(&format!("<h2>{}{}</h2>\n", esc(&t.name), esc(&outcome)));
        let points = trend::series(history, r, &t.name, trend::DEFAULT_LAST);
        if points.len() > 1 {
            timelines.push_str(&format!(
                "<p class=\"legend\">The last {} builds: time (dark), steps from cache (grey) and that ran (light)</p>\n{}\n",
                points.len(),
                trend::chart(&points)
            ));
        }
        timelines.push_str("<div class=\"tl\">\n");
        for s in &t.steps_detail {
            let class = if s.error {
                "err"
            } else if s.cached {
                "cached"
            } else {
                "ran"
            };
            let left = s.start / span * 100.0;
            let width = (s.secs / span * 100.0).max(0.3);
            timelines.push_str(&format!(
                "<div class=\"row\"><span class=\"label\" title=\"{n}\">{n}</span><span class=\"track\"><span class=\"bar {class}\" style=\"left:{left:.2}%;width:{width:.2}%\"></span></span><span class=\"secs\">{}</span></div>\n",
                if s.cached { "cached".to_string() } else { format!("{:.2}s", s.secs) },
                n = esc(&s.name)
            ));
            if let Some(c) = t.causes.iter().find(|c| c.step == s.name) {
                timelines.push_str(&format!("<div class=\"why\">why: {}</div>\n", esc(&c.text)));
            }
        }
        timelines.push_str("</div>\n");
    }
    timelines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::{Step, TargetReport};

    #[test]
    fn html_is_self_contained_and_marks_cached_steps() {
        let r = BuildReport {
            id: "t".into(),
            targets: vec![TargetReport {
                name: "backend".into(),
                wall_secs: 2.0,
                steps_detail: vec![
                    Step {
                        name: "[backend deps 1/2] RUN <pip>".into(),
                        start: 0.0,
                        secs: 0.0,
                        cached: true,
                        error: false,
                    },
                    Step { name: "[backend app 2/2] COPY".into(), start: 0.5, secs: 1.5, cached: false, error: false },
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let page = html(&r, &[]);
        assert!(!page.contains("<svg"), "one build draws no chart");
        assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("<script"));
        assert!(page.contains("bar cached") && page.contains("bar ran"));
        assert!(page.contains("RUN &lt;pip&gt;"));
        assert!(!page.contains("class=\"why\""), "no cause recorded, none shown");
        let mut r = r;
        let cause = crate::report::why::Cause::Files { paths: vec!["app/<x>.py".into()], count: 1 };
        r.targets[0].causes =
            vec![crate::report::why::StepCause { step: "[backend app 2/2] COPY".into(), text: cause.text(), cause }];
        let earlier = crate::report::store::history_line(&r);
        let page = html(&r, &[crate::report::model::HistoryLine { id: "e".into(), ..earlier }]);
        assert_eq!(page.matches("<svg class=\"chart\"").count(), 1, "a chart once there are two builds");
        let copy = page.find("[backend app 2/2] COPY").unwrap();
        let why = page.find("<div class=\"why\">why: context file changed: app/&lt;x&gt;.py</div>").unwrap();
        assert!(why > copy, "the cause is under its step");
    }
}
