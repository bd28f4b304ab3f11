//! `cargo xtask report --trend [--last N]`: per target and step, the median time a step takes
//! when it runs and how often it comes from cache over the last builds, the steps that got worse,
//! and the small chart per target that the HTML report carries.

use std::collections::BTreeMap;

use super::model::{is_instruction, BuildReport, HistoryLine};

/// The builds a trend covers unless `--last N` says otherwise.
pub(crate) const DEFAULT_LAST: usize = 20;

/// One step over the builds that had it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StepTrend {
    pub(crate) target: String,
    /// The step's name without its `n/m` counter, which moves when a line is added above it.
    pub(crate) step: String,
    pub(crate) builds: usize,
    pub(crate) hit_rate: f64,
    /// The median seconds of the builds in which it ran; none if it never ran.
    pub(crate) median_run: Option<f64>,
    /// Why it is named as worse, if it is.
    pub(crate) worse: Option<String>,
}

/// The step's name without its counter: `[backend app 2/5] COPY x` → `[backend app] COPY x`.
pub(crate) fn key(name: &str) -> String {
    let Some((inside, text)) = name.strip_prefix('[').and_then(|n| n.split_once("] ")) else { return name.to_string() };
    let words: Vec<&str> = inside.split(' ').filter(|w| !w.contains('/')).collect();
    format!("[{}] {text}", words.join(" "))
}

/// The middle value (the mean of the two middle ones for an even count); None for none.
pub(crate) fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 })
}

/// A run shorter than this is noise, never "more than doubled".
const NOISE_SECS: f64 = 0.5;

/// The trend of each step of the reports (oldest first). A step is worse when its hit rate in the
/// newer half of its builds is below that of the older half (with four builds at least), or when
/// its newest run took more than twice the median of its runs before.
pub(crate) fn trend(reports: &[BuildReport]) -> Vec<StepTrend> {
    // (target, step) → (cached, seconds) per build, oldest first; in first-seen order.
    let mut order: Vec<(String, String)> = Vec::new();
    let mut seen: BTreeMap<(String, String), Vec<(bool, f64)>> = BTreeMap::new();
    for r in reports {
        for t in &r.targets {
            for s in t.steps_detail.iter().filter(|s| is_instruction(&s.name) && !s.error) {
                let k = (t.name.clone(), key(&s.name));
                if !seen.contains_key(&k) {
                    order.push(k.clone());
                }
                seen.entry(k).or_default().push((s.cached, s.secs));
            }
        }
    }
    order
        .into_iter()
        .map(|k| {
            let runs = &seen[&k];
            let rate = |part: &[(bool, f64)]| part.iter().filter(|(c, _)| *c).count() as f64 / part.len().max(1) as f64;
            let mut ran: Vec<f64> = runs.iter().filter(|(c, _)| !c).map(|(_, s)| *s).collect();
            let median_run = median(&mut ran.clone());
            let half = runs.len() / 2;
            let mut worse = None;
            if runs.len() >= 4 && rate(&runs[half..]) < rate(&runs[..half]) {
                worse = Some(format!(
                    "hit rate fell from {:.0}% to {:.0}%",
                    rate(&runs[..half]) * 100.0,
                    rate(&runs[half..]) * 100.0
                ));
            }
            if let Some(&(false, last)) = runs.last() {
                ran.pop();
                if let Some(before) = median(&mut ran).filter(|m| last > 2.0 * m && last - m > NOISE_SECS) {
                    worse = Some(format!("took {last:.1}s, more than twice its median of {before:.1}s"));
                }
            }
            StepTrend { target: k.0, step: k.1, builds: runs.len(), hit_rate: rate(runs), median_run, worse }
        })
        .collect()
}

/// The trend as text: a table per target, then the steps that got worse.
pub(crate) fn text(trends: &[StepTrend], builds: usize) -> String {
    let mut out = format!("trend over the last {builds} builds that passed\n");
    let mut target = "";
    for t in trends {
        if t.target != target {
            target = &t.target;
            out.push_str(&format!("\n{target}\n  {:>6} {:>8} {:>10}  step\n", "builds", "cached", "median run"));
        }
        let median = t.median_run.map_or("-".to_string(), |m| format!("{m:.1}s"));
        let step: String = t.step.chars().take(90).collect();
        out.push_str(&format!("  {:>6} {:>7.0}% {:>10}  {step}\n", t.builds, t.hit_rate * 100.0, median));
    }
    let worse: Vec<&StepTrend> = trends.iter().filter(|t| t.worse.is_some()).collect();
    if worse.is_empty() {
        out.push_str("\nno step got worse\n");
    } else {
        out.push_str("\ngot worse:\n");
        for t in worse {
            let step: String = t.step.chars().take(90).collect();
            out.push_str(&format!("  {} {step}: {}\n", t.target, t.worse.as_deref().unwrap_or("")));
        }
    }
    out
}

/// One build of a target, as the chart draws it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Point {
    pub(crate) secs: f64,
    pub(crate) cached: usize,
    pub(crate) steps: usize,
}

/// The target's last builds that passed from the history, ending with `report`'s own.
pub(crate) fn series(history: &[HistoryLine], report: &BuildReport, target: &str, last: usize) -> Vec<Point> {
    let mut points: Vec<Point> = history
        .iter()
        .filter(|h| h.status == super::Status::Ok && h.id != report.id)
        .filter_map(|h| h.targets.iter().find(|t| t.name == target))
        .map(|t| Point { secs: t.wall_secs, cached: t.cached, steps: t.steps })
        .collect();
    if let Some(t) = report.targets.iter().find(|t| t.name == target) {
        points.push(Point { secs: t.wall_secs, cached: t.cached, steps: t.steps });
    }
    let skip = points.len().saturating_sub(last);
    points.split_off(skip)
}

/// A small inline SVG: a bar per build for its time (top) and its steps from cache against
/// those that ran (bottom, grey and blue).
pub(crate) fn chart(points: &[Point]) -> String {
    let (w, top, low) = (12.0, 60.0, 24.0);
    let max = points.iter().map(|p| p.secs).fold(0.001, f64::max);
    let mut bars = String::new();
    for (i, p) in points.iter().enumerate() {
        let x = i as f64 * w;
        let h = (p.secs / max * top).max(1.0);
        let ran = p.steps.saturating_sub(p.cached);
        let steps = p.steps.max(1) as f64;
        let hit = p.cached as f64 / steps * low;
        bars.push_str(&format!(
            "<g><title>build {n}: {secs:.1}s, {cached} from cache, {ran} ran</title><rect class=\"t\" x=\"{x}\" y=\"{y:.1}\" width=\"{bw}\" height=\"{h:.1}\"/><rect class=\"h\" x=\"{x}\" y=\"{hy:.1}\" width=\"{bw}\" height=\"{hit:.1}\"/><rect class=\"r\" x=\"{x}\" y=\"{ry:.1}\" width=\"{bw}\" height=\"{rh:.1}\"/></g>",
            n = i + 1,
            secs = p.secs,
            cached = p.cached,
            y = top - h,
            bw = w - 2.0,
            hy = top + 6.0,
            ry = top + 6.0 + hit,
            rh = low - hit,
        ));
    }
    format!(
        "<svg class=\"chart\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"time per build, and steps from cache against steps that ran\"><style>.t{{fill:#2b6cb0}}.h{{fill:#b8b8b8}}.r{{fill:#63b3ed}}</style>{bars}</svg>",
        width = (points.len().max(1) as f64 * w) as usize,
        height = (top + 6.0 + low) as usize,
    )
}

#[cfg(test)]
#[path = "trend_tests.rs"]
mod tests;
