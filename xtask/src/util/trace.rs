//! An opt-in trace of where the xtask's own time goes. With `XTASK_TRACE=1` each phase of a build
//! prints one line `xtask trace: PHASE SECONDS` on stderr as it ends; the bench reads them back.

use std::time::Instant;

const PREFIX: &str = "xtask trace: ";

/// A phase under way; it prints its line when dropped.
pub(crate) struct Phase {
    name: &'static str,
    started: Instant,
    on: bool,
}

/// Starts timing a phase.
pub(crate) fn phase(name: &'static str) -> Phase {
    Phase { name, started: Instant::now(), on: std::env::var_os("XTASK_TRACE").is_some_and(|v| v == "1") }
}

impl Drop for Phase {
    fn drop(&mut self) {
        if self.on {
            eprintln!("{PREFIX}{} {:.4}", self.name, self.started.elapsed().as_secs_f64());
        }
    }
}

/// The phases and seconds in a traced run's output, in order.
pub(crate) fn read(output: &str) -> Vec<(String, f64)> {
    output
        .lines()
        .filter_map(|l| {
            let (name, secs) = l.strip_prefix(PREFIX)?.rsplit_once(' ')?;
            Some((name.to_string(), secs.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn traced_lines_are_read_back_and_others_ignored() {
        let out = "xtask: note\nxtask trace: inputs 0.0123\nxtask trace: plan 0.0004\nxtask trace: broken\n";
        assert_eq!(super::read(out), [("inputs".to_string(), 0.0123), ("plan".to_string(), 0.0004)]);
    }
}
