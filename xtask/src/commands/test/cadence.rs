//! The stand-ins' progress as a newcomer sees it, read from the suite's own first making of them
//! on a fresh engine (the Dockerfile checks make them): this machine's platform only, no silence
//! over 10 s from the line that says they are being made to the end of the last stand-in phase,
//! and the root file system's lines give step k of n and the elapsed time.

use std::time::Duration;

/// Below this a making shows no cadence worth judging (a rerun whose root file system was kept
/// only builds the two images).
const LONG_ENOUGH: Duration = Duration::from_secs(15);
const LONGEST_SILENCE: Duration = Duration::from_secs(10);

/// What the lines of one run show.
#[derive(Debug, PartialEq)]
pub(super) enum Cadence {
    /// No stand-ins were made in this run.
    NotMade,
    /// Made too quickly to judge (see [`LONG_ENOUGH`]).
    TooShort(Duration),
    /// Made over `span`, never silent longer than `longest`.
    Kept { span: Duration, longest: Duration },
}

/// Judges `lines` (each with when it came) of a command that may make stand-ins, on a machine
/// whose platform is `host` (`linux/amd64`); an error names what is wrong.
pub(super) fn judge(lines: &[(Duration, String)], host: &str) -> Result<Cadence, String> {
    let Some(making) = lines.iter().position(|(_, l)| l.contains("making stand-ins once for")) else {
        return Ok(Cadence::NotMade);
    };
    let said = &lines[making].1;
    if !said.ends_with(&format!("once for {host}")) {
        return Err(format!("stand-ins made for more than this machine's platform: {said}"));
    }
    let end = lines.iter().rposition(|(_, l)| l.starts_with("xtask: stand-ins:")).unwrap_or(making);
    let window = &lines[making..=end];
    if let Some((_, l)) = window.iter().find(|(_, l)| l.contains("debootstrap ") && !l.contains(host)) {
        return Err(format!("a root file system for another platform was made: {l}"));
    }
    // The root file system's phase, ticking: "(2/4, 0:13" is step 2 of 4 at 13 s.
    let ticks = window.iter().filter(|(_, l)| l.starts_with("xtask: stand-ins: debootstrap ") && !l.contains(" took "));
    if let Some((_, l)) = ticks.clone().find(|(_, l)| !l.contains("(2/4, 0:")) {
        return Err(format!("a progress line without step k of 4 and the elapsed time: {l}"));
    }
    let longest = window.windows(2).map(|w| w[1].0.saturating_sub(w[0].0)).max().unwrap_or_default();
    if longest > LONGEST_SILENCE {
        return Err(format!("a silence of {:.1} s while stand-ins were made", longest.as_secs_f64()));
    }
    let span = window.last().map_or(Duration::ZERO, |(t, _)| t.saturating_sub(window[0].0));
    if span <= LONG_ENOUGH {
        return Ok(Cadence::TooShort(span));
    }
    if ticks.count() == 0 {
        return Err("the root file system was made without a progress line".to_string());
    }
    Ok(Cadence::Kept { span, longest })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(lines: &[(u64, &str)]) -> Vec<(Duration, String)> {
        lines.iter().map(|(ms, l)| (Duration::from_millis(*ms), l.to_string())).collect()
    }

    const MAKING: &str =
        "xtask: python:3.11-slim and node:22-alpine cannot be pulled; making stand-ins once for linux/amd64";

    fn made(gap_ms: u64) -> Vec<(Duration, String)> {
        at(&[
            (0, "==> check"),
            (100, MAKING),
            (5_100, "xtask: stand-ins: debootstrap linux/amd64 (2/4, 0:05)"),
            (5_100 + gap_ms, "xtask: stand-ins: debootstrap linux/amd64 (2/4, 0:13)"),
            (13_100 + gap_ms, "xtask: stand-ins: debootstrap linux/amd64 took 0:21"),
            (18_100 + gap_ms, "xtask: stand-ins: building localhost/standin-node for linux/amd64 took 0:05"),
            (19_000 + gap_ms, "Check complete, no warnings found."),
        ])
    }

    #[test]
    fn a_line_every_8_s_is_kept_and_11_s_of_silence_is_named() {
        let kept = judge(&made(8_000), "linux/amd64").unwrap();
        assert_eq!(kept, Cadence::Kept { span: Duration::from_secs(26), longest: Duration::from_secs(8) });
        let err = judge(&made(11_000), "linux/amd64").unwrap_err();
        assert!(err.contains("a silence of 11.0 s"), "{err}");
    }

    #[test]
    fn another_platform_a_line_without_its_step_and_nothing_made_are_told_apart() {
        let both = MAKING.replace("linux/amd64", "linux/amd64 and linux/arm64");
        let mut lines = made(8_000);
        lines[1].1 = both;
        assert!(judge(&lines, "linux/amd64").unwrap_err().contains("more than this machine's platform"));
        let mut lines = made(8_000);
        lines[2].1 = "xtask: stand-ins: debootstrap linux/amd64 (0:05)".to_string();
        assert!(judge(&lines, "linux/amd64").unwrap_err().contains("step k of 4"));
        assert_eq!(judge(&at(&[(0, "==> check"), (500, "Check complete")]), "linux/amd64"), Ok(Cadence::NotMade));
    }

    #[test]
    fn a_quick_making_is_too_short_to_judge() {
        let lines =
            at(&[(0, MAKING), (9_000, "xtask: stand-ins: building localhost/standin-node for linux/amd64 took 0:09")]);
        assert_eq!(judge(&lines, "linux/amd64"), Ok(Cadence::TooShort(Duration::from_secs(9))));
    }
}
