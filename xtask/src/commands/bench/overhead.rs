//! The xtask's own overhead, measured paired: a warm no-change `cargo xtask build` against the raw
//! bake command that `print --json` gives for the same build, run alternately (the order flips
//! each pair, so neither always meets a cache the other just warmed), and the median of the
//! differences. The xtask's runs are traced (`XTASK_TRACE=1`) to show where its time goes.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};

use super::median;
use crate::util::runner::{self, Cmd};
use crate::util::trace;

pub(crate) const PAIRS: usize = 7;
/// The target for the median difference, in seconds.
pub(crate) const TARGET_SECS: f64 = 0.1;

/// What the pairs measured.
#[derive(Debug, Default)]
pub(crate) struct Overhead {
    pub(crate) xtask: Vec<f64>,
    pub(crate) raw: Vec<f64>,
    /// The median seconds of each traced phase, in the order the xtask runs them.
    pub(crate) phases: Vec<(String, f64)>,
}

impl Overhead {
    /// The median of the pairs' differences (xtask minus raw).
    pub(crate) fn median_difference(&self) -> f64 {
        let mut d: Vec<f64> = self.xtask.iter().zip(&self.raw).map(|(x, r)| x - r).collect();
        median(&mut d)
    }
}

/// Runs the pairs in the scratch copy, which holds a warm build of `names` already.
pub(crate) fn measure(scratch: &Path, names: &[String], identity: &[(String, String)]) -> Result<Overhead> {
    let exe = std::env::current_exe().context("finding the xtask binary")?;
    let xtask =
        Cmd::new(exe.display().to_string()).env("XTASK_PROJECT_ROOT", scratch.display().to_string()).envs(identity);
    let raw = raw_bake(&xtask, names)?;
    let traced = xtask.arg("build").args(names.iter().cloned()).args(["--progress", "tty"]).env("XTASK_TRACE", "1");
    let mut out = Overhead::default();
    let mut traces = Vec::new();
    for pair in 0..PAIRS {
        let mut run_xtask = || -> Result<f64> {
            let t = Instant::now();
            let output = runner::read_merged(&traced)?;
            let secs = t.elapsed().as_secs_f64();
            traces.push(trace::read(&output));
            Ok(secs)
        };
        let run_raw = || -> Result<f64> {
            let t = Instant::now();
            runner::run_quiet(&raw).context("the raw bake command")?;
            Ok(t.elapsed().as_secs_f64())
        };
        if pair % 2 == 0 {
            out.xtask.push(run_xtask()?);
            out.raw.push(run_raw()?);
        } else {
            out.raw.push(run_raw()?);
            out.xtask.push(run_xtask()?);
        }
    }
    out.phases = phase_medians(&traces);
    Ok(out)
}

/// The bake command the xtask runs for this build, as `print --json` gives it.
fn raw_bake(xtask: &Cmd, names: &[String]) -> Result<Cmd> {
    let json = runner::read(&xtask.clone().arg("print").args(names.iter().cloned()).arg("--json"))?;
    serde_json::from_str(&json).context("reading the bake command `print --json` gave")
}

/// Each phase's median over the traced runs, in the order of the first run.
fn phase_medians(traces: &[Vec<(String, f64)>]) -> Vec<(String, f64)> {
    let Some(first) = traces.first() else { return Vec::new() };
    first
        .iter()
        .map(|(name, _)| {
            let mut secs: Vec<f64> =
                traces.iter().flat_map(|t| t.iter().filter(|(n, _)| n == name).map(|(_, s)| *s)).collect();
            (name.clone(), median(&mut secs))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overhead_is_the_median_of_paired_differences() {
        let o = Overhead { xtask: vec![0.60, 0.58, 0.70], raw: vec![0.55, 0.50, 0.52], ..Overhead::default() };
        // Differences 0.05, 0.08, 0.18: the median is 0.08, not the difference of the medians.
        assert!((o.median_difference() - 0.08).abs() < 1e-9, "{}", o.median_difference());
    }

    #[test]
    fn phases_keep_the_first_runs_order_with_their_medians() {
        let run = |a: f64, b: f64| vec![("inputs".to_string(), a), ("plan".to_string(), b)];
        let p = phase_medians(&[run(0.03, 0.001), run(0.01, 0.003), run(0.02, 0.002)]);
        assert_eq!(p, [("inputs".to_string(), 0.02), ("plan".to_string(), 0.002)]);
    }
}
