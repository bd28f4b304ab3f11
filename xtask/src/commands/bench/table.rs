//! The bench's Markdown table: one row per scenario, then a line per target, met or missed.

use super::overhead::Overhead;
use super::{median, Sample, Scenario, SCENARIOS};

pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| t.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()))
        .unwrap_or(0);
    format!("{cores} cores ({cpu}), {:.0} GiB", mem_kb as f64 / 1048576.0)
}

/// The whole table: the scenarios' rows, then each target met or missed, then where the xtask's
/// own time goes.
pub(crate) fn markdown(
    names: &[String],
    runs: usize,
    samples: &[Vec<Sample>],
    compiles: &[f64],
    overhead: &Overhead,
) -> String {
    let mut cold_walls: Vec<f64> = samples[0].iter().map(|s| s.wall).collect();
    let cold = median(&mut cold_walls);
    let mut out = format!(
        "Bench of `{}`, {runs} run(s) per scenario, {} on {}.\n\n",
        names.join(" "),
        machine(),
        chrono::Utc::now().format("%Y-%m-%d")
    );
    out.push_str(
        "| scenario | median | spread | RUN steps re-run (median) | dependency steps re-run (max) | ratio to cold |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|\n");
    let mut verdicts = Vec::new();
    for ((scenario, label), s) in SCENARIOS.iter().zip(samples) {
        let mut walls: Vec<f64> = s.iter().map(|x| x.wall).collect();
        let med = median(&mut walls);
        let ratio = if cold > 0.0 { med / cold } else { 0.0 };
        out.push_str(&row(label, s, med, ratio));
        verdicts.extend(verdict(*scenario, s, ratio));
    }
    let mut compile = compiles.to_vec();
    let compile = median(&mut compile);
    verdicts.push(format!(
        "- {} the xtask's cold compile (`cargo build -p xtask`, empty target folder) has a median of {compile:.1} s (target <= 15 s)",
        met(compile <= 15.0)
    ));
    verdicts.push(overhead_line(overhead));
    out.push('\n');
    out.push_str(&verdicts.join("\n"));
    out.push('\n');
    out.push_str(&phases(overhead));
    out
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met:"
    } else {
        "MISSED:"
    }
}

fn row(label: &str, s: &[Sample], med: f64, ratio: f64) -> String {
    if s.is_empty() {
        return format!("| {label} | not run | | | | |\n");
    }
    let mut walls: Vec<f64> = s.iter().map(|x| x.wall).collect();
    walls.sort_by(f64::total_cmp);
    let spread = walls.last().unwrap_or(&0.0) - walls.first().unwrap_or(&0.0);
    let mut runs_ex: Vec<f64> = s.iter().map(|x| x.run_executed as f64).collect();
    let deps = s.iter().map(|x| x.dep_steps_executed).max().unwrap_or(0);
    format!("| {label} | {med:.1} s | {spread:.1} s | {:.0} | {deps} | {:.1}% |\n", median(&mut runs_ex), ratio * 100.0)
}

/// The lines a scenario's target gives, met or missed.
fn verdict(scenario: Scenario, s: &[Sample], ratio: f64) -> Vec<String> {
    let check = |ok: bool, text: String| format!("- {} {text}", met(ok));
    let of_other = if ratio > 0.0 { 100.0 / ratio } else { 0.0 };
    match scenario {
        Scenario::Warm => vec![check(
            ratio <= 0.05,
            format!("warm no-change rebuild is {:.1}% of cold (target <= 5%)", ratio * 100.0),
        )],
        Scenario::Deps => {
            vec![check(
                ratio <= 0.50,
                format!("dependency-manifest change is {:.1}% of cold (target <= 50%)", ratio * 100.0),
            )]
        }
        Scenario::ColdIssue if s.is_empty() => {
            vec!["- not measured: the first recipe's commit is not in this clone".to_string()]
        }
        Scenario::ColdIssue => vec![check(
            ratio >= 1.0 / 0.6,
            format!("cold is {of_other:.1}% of a cold build of the first recipe (target <= 60%)"),
        )],
        Scenario::ColdFormer => vec![check(
            ratio >= 1.0 / 0.6,
            format!("cold is {of_other:.1}% of a cold build as configured before (target <= 60%)"),
        )],
        Scenario::Source => {
            let deps = s.iter().map(|x| x.dep_steps_executed).max().unwrap_or(0);
            vec![
                check(ratio <= 0.20, format!("source-only change is {:.1}% of cold (target <= 20%)", ratio * 100.0)),
                check(deps == 0, format!("source-only change re-ran {deps} dependency step(s) (target 0)")),
            ]
        }
        Scenario::Metadata => {
            let max = s.iter().map(|x| x.run_executed).max().unwrap_or(0);
            vec![check(max == 0, format!("metadata-only change re-ran {max} RUN step(s) (target 0)"))]
        }
        Scenario::Repeat => {
            let kept = s.iter().filter(|x| x.same_ids == Some(true)).count();
            vec![check(kept == s.len(), format!("a repeat build kept every image id in {kept} of {} run(s)", s.len()))]
        }
        Scenario::ColdExport => vec![format!(
            "- the export adds {:.0}% to a cold build (it runs only with --cache-export or a registry)",
            (ratio - 1.0) * 100.0
        )],
        Scenario::Cold => Vec::new(),
    }
}

fn overhead_line(o: &Overhead) -> String {
    let (mut x, mut r) = (o.xtask.clone(), o.raw.clone());
    let d = o.median_difference();
    format!(
        "- {} the xtask's own overhead, paired against the raw bake command ({} alternating pairs of warm no-change builds: xtask {:.3} s, raw {:.3} s, medians), has a median difference of {d:.3} s (target <= {} s)",
        met(d <= super::overhead::TARGET_SECS),
        o.xtask.len(),
        median(&mut x),
        median(&mut r),
        super::overhead::TARGET_SECS
    )
}

/// Where the xtask's own time goes in a warm build, per traced phase (medians).
fn phases(o: &Overhead) -> String {
    if o.phases.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n| phase of a warm build (`XTASK_TRACE=1`) | median |\n|---|---:|\n");
    for (name, secs) in &o.phases {
        out.push_str(&format!("| {name} | {:.3} s |\n", secs));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }

    #[test]
    fn table_reports_ratios_and_missed_targets() {
        let s = |wall: f64, run: usize, dep: usize| Sample {
            wall,
            run_executed: run,
            dep_steps_executed: dep,
            same_ids: None,
        };
        let same = |ok: bool| Sample { same_ids: Some(ok), ..s(1.0, 0, 0) };
        let samples = vec![
            vec![s(100.0, 6, 3), s(110.0, 6, 3)],
            vec![s(140.0, 6, 3), s(150.0, 6, 3)],
            vec![s(200.0, 6, 3), s(190.0, 6, 3)],
            vec![s(250.0, 4, 3), s(250.0, 4, 3)],
            vec![s(3.0, 0, 0), s(4.0, 0, 0)],
            vec![same(true), same(false)],
            vec![s(30.0, 1, 1), s(30.0, 1, 1)],
            vec![s(60.0, 3, 2), s(62.0, 3, 2)],
            vec![s(2.0, 0, 0), s(2.0, 0, 0)],
        ];
        let overhead = Overhead {
            xtask: vec![0.60, 0.62, 0.58],
            raw: vec![0.55, 0.50, 0.52],
            phases: vec![("engine and inputs".into(), 0.021)],
        };
        let md = markdown(&["backend".into()], 2, &samples, &[14.0, 17.0, 16.0], &overhead);
        assert!(md.contains("| warm, no change | 3.5 s | 1.0 s | 0 | 0 | 3.3% |"), "{md}");
        assert!(md.contains("met: warm no-change rebuild is 3.3% of cold"), "{md}");
        assert!(md.contains("MISSED: source-only change is 28.6% of cold"), "{md}");
        assert!(md.contains("MISSED: source-only change re-ran 1 dependency step(s)"), "{md}");
        assert!(md.contains("met: metadata-only change re-ran 0 RUN step(s)"), "{md}");
        assert!(
            md.contains("met: the xtask's own overhead, paired against the raw bake command (3 alternating pairs"),
            "{md}"
        );
        assert!(md.contains("has a median difference of 0.060 s (target <= 0.1 s)"), "{md}");
        assert!(md.contains("| engine and inputs | 0.021 s |"), "{md}");
        let slow = Overhead { xtask: vec![0.8], raw: vec![0.5], phases: Vec::new() };
        let md3 = markdown(&["backend".into()], 2, &samples, &[14.0], &slow);
        assert!(md3.contains("MISSED: the xtask's own overhead"), "{md3}");
        assert!(md.contains("MISSED: a repeat build kept every image id in 1 of 2 run(s)"), "{md}");
        assert!(md.contains("the export adds 38% to a cold build"), "{md}");
        assert!(md.contains("met: cold is 53.8% of a cold build as configured before"), "{md}");
        assert!(md.contains("MISSED: dependency-manifest change is 58.1% of cold"), "{md}");
        assert!(md.contains("met: cold is 42.0% of a cold build of the first recipe"), "{md}");
        let mut without_issue = samples.clone();
        without_issue[3].clear();
        let md2 = markdown(&["backend".into()], 2, &without_issue, &[14.0], &Overhead::default());
        assert!(md2.contains("- not measured: the first recipe's commit is not in this clone"), "{md2}");
        assert!(!md2.contains("of a cold build of the first recipe"), "{md2}");
        assert!(md2.contains("which export on every build) | not run |"), "{md2}");
        assert!(
            md.contains(
                "MISSED: the xtask's cold compile (`cargo build -p xtask`, empty target folder) has a median of 16.0 s"
            ),
            "{md}"
        );
    }
}
