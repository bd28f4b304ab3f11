//! The trend of a constructed history of twelve builds.

use super::*;
use crate::report::model::{HistoryTarget, Status, Step, TargetReport};

fn build(n: usize, steps: &[(&str, bool, f64)]) -> BuildReport {
    BuildReport {
        id: format!("b{n:02}"),
        status: Status::Ok,
        targets: vec![TargetReport {
            name: "backend".into(),
            wall_secs: steps.iter().map(|s| s.2).sum(),
            steps: steps.len(),
            cached: steps.iter().filter(|s| s.1).count(),
            steps_detail: steps
                .iter()
                .map(|(name, cached, secs)| Step {
                    name: name.to_string(),
                    cached: *cached,
                    secs: *secs,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Twelve builds: the pip step comes from cache in the first eight and runs in the last four;
/// the copy runs each time, 1 s, then 5 s in the newest; a step renumbered halfway stays one.
fn history() -> Vec<BuildReport> {
    (0..12)
        .map(|n| {
            let pip = ("[backend deps 3/3] RUN pip install", n < 8, if n < 8 { 0.0 } else { 30.0 });
            let copy = ("[backend app 5/5] COPY app/ ./app/", false, if n == 11 { 5.0 } else { 1.0 });
            let counter = if n < 6 { "[backend app 2/5] RUN echo" } else { "[backend app 2/6] RUN echo" };
            build(n, &[pip, (counter, true, 0.0), copy, ("[backend deps 1/3] FROM py", true, 0.0)])
        })
        .collect()
}

#[test]
fn medians_hit_rates_and_the_steps_that_got_worse() {
    let t = trend(&history());
    let steps: Vec<&str> = t.iter().map(|s| s.step.as_str()).collect();
    assert_eq!(steps, ["[backend deps] RUN pip install", "[backend app] RUN echo", "[backend app] COPY app/ ./app/"]);
    let pip = &t[0];
    assert_eq!((pip.builds, pip.median_run), (12, Some(30.0)));
    assert!((pip.hit_rate - 8.0 / 12.0).abs() < 1e-9);
    assert_eq!(pip.worse.as_deref(), Some("hit rate fell from 100% to 33%"));
    assert_eq!((t[1].builds, t[1].hit_rate, t[1].median_run, &t[1].worse), (12, 1.0, None, &None));
    assert_eq!(t[2].median_run, Some(1.0));
    assert_eq!(t[2].worse.as_deref(), Some("took 5.0s, more than twice its median of 1.0s"));
    let text = text(&t, 12);
    assert!(text.starts_with("trend over the last 12 builds that passed\n\nbackend\n"), "{text}");
    assert!(text.contains("backend [backend deps] RUN pip install: hit rate fell from 100% to 33%"), "{text}");
    // Steady builds name nothing.
    let steady: Vec<BuildReport> = (0..10).map(|n| build(n, &[("[b a 1/1] RUN x", false, 2.0)])).collect();
    assert!(trend(&steady).iter().all(|s| s.worse.is_none()));
    assert!(text_of(&steady).contains("no step got worse"));
}

fn text_of(r: &[BuildReport]) -> String {
    text(&trend(r), r.len())
}

#[test]
fn a_small_change_in_a_short_step_is_noise() {
    let r: Vec<BuildReport> =
        (0..5).map(|n| build(n, &[("[b a 1/1] RUN x", false, if n == 4 { 0.3 } else { 0.1 })])).collect();
    assert_eq!(trend(&r)[0].worse, None);
    assert_eq!(median(&mut [3.0, 1.0, 2.0, 10.0]), Some(2.5));
    assert_eq!(median(&mut []), None);
}

#[test]
fn the_chart_has_a_bar_per_build_ending_with_this_one() {
    let line = |id: &str, secs: f64, status: Status| HistoryLine {
        id: id.into(),
        status,
        targets: vec![HistoryTarget {
            name: "backend".into(),
            wall_secs: secs,
            steps: 4,
            cached: 3,
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut h: Vec<HistoryLine> = (0..25).map(|n| line(&format!("h{n}"), n as f64, Status::Ok)).collect();
    h.push(line("failed", 99.0, Status::Failed));
    let now = build(99, &[("[backend a 1/1] RUN x", false, 7.0)]);
    let points = series(&h, &now, "backend", DEFAULT_LAST);
    assert_eq!(points.len(), DEFAULT_LAST);
    assert_eq!(points.last().unwrap(), &Point { secs: 7.0, cached: 0, steps: 1 });
    assert_eq!(points[0].secs, 6.0, "the oldest kept is the 20th from the end");
    let svg = chart(&points);
    assert!(svg.starts_with("<svg class=\"chart\"") && svg.ends_with("</svg>"));
    assert_eq!(svg.matches("<g>").count(), DEFAULT_LAST);
    assert!(svg.contains("<title>build 20: 7.0s, 0 from cache, 1 ran</title>"), "{svg}");
    assert!(series(&h, &now, "frontend", DEFAULT_LAST).is_empty());
}
