//! Progress on every long wait: a phase (making stand-ins, starting the engine, …) that has run
//! for 5 s is shown at least every 10 s with its step, its elapsed time and how long it took last
//! time on this machine, e.g. `stand-ins: debootstrap linux/amd64 (2/5, 0:41, last time 0:52)`.
//! A terminal gets one line, rewritten in place; a pipe gets plain lines. The durations are kept in
//! `target/xtask/phase-times.json`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A phase says nothing for this long: most end sooner, and a line for them would be noise.
pub(crate) const QUIET: Duration = Duration::from_secs(5);
/// The longest a running phase goes without a line (kept under the 10 s it promises, so that a
/// slow write or a busy machine cannot push a gap past it).
pub(crate) const EVERY: Duration = Duration::from_secs(8);

struct Running {
    id: u64,
    label: String,
    step: Option<(usize, usize)>,
    started: Instant,
    last: Option<Duration>,
    /// When it was last shown; None before its first line.
    shown: Option<Instant>,
}

#[derive(Default)]
struct Board {
    running: Vec<Running>,
    next_id: u64,
    ticker: bool,
}

fn board() -> &'static Mutex<Board> {
    static BOARD: OnceLock<Mutex<Board>> = OnceLock::new();
    BOARD.get_or_init(Default::default)
}

/// `m:ss`, or `h:mm:ss` past an hour.
pub(crate) fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// One phase's line: `label (k/n, elapsed, last time t)`, each part only where known.
pub(crate) fn line(label: &str, step: Option<(usize, usize)>, elapsed: Duration, last: Option<Duration>) -> String {
    let mut parts = Vec::new();
    if let Some((k, n)) = step {
        parts.push(format!("{k}/{n}"));
    }
    parts.push(clock(elapsed));
    if let Some(last) = last {
        parts.push(format!("last time {}", clock(last)));
    }
    format!("{label} ({})", parts.join(", "))
}

/// Which running phases are due a line at `now`: past [`QUIET`] and not shown for [`EVERY`].
fn due(running: &[Running], now: Instant) -> Vec<usize> {
    (0..running.len())
        .filter(|&i| {
            let r = &running[i];
            now.duration_since(r.started) >= QUIET && r.shown.is_none_or(|s| now.duration_since(s) >= EVERY)
        })
        .collect()
}

/// A phase while it runs; dropping it ends the phase and records how long it took (only when it
/// ended well: see [`Phase::done`]).
pub(crate) struct Phase {
    id: u64,
    key: String,
    started: Instant,
    ok: bool,
}

impl Phase {
    /// Starts showing `label` (with `step` k of n where known); `label` also names its record of
    /// durations, so one phase of one command keeps one label.
    pub(crate) fn start(label: &str, step: Option<(usize, usize)>) -> Phase {
        let last = times::read().get(label).map(|s| Duration::from_secs_f64(*s));
        let mut b = board().lock().unwrap_or_else(|e| e.into_inner());
        b.next_id += 1;
        let id = b.next_id;
        let started = Instant::now();
        b.running.push(Running { id, label: label.to_string(), step, started, last, shown: None });
        if !b.ticker {
            b.ticker = true;
            std::thread::spawn(tick);
        }
        Phase { id, key: label.to_string(), started, ok: false }
    }

    /// Marks the phase as ended well, so its duration is kept for next time.
    pub(crate) fn done(mut self) {
        self.ok = true;
    }
}

impl Drop for Phase {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        let mut b = board().lock().unwrap_or_else(|e| e.into_inner());
        let was_shown = b.running.iter().any(|r| r.id == self.id && r.shown.is_some());
        b.running.retain(|r| r.id != self.id);
        if was_shown && std::io::stderr().is_terminal() {
            // The updating line showed it: end that line so the next output starts clean.
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
        drop(b);
        if self.ok {
            if elapsed >= QUIET {
                eprintln!("xtask: {} took {}", self.key, clock(elapsed));
            }
            times::record(&self.key, elapsed);
        }
    }
}

/// The one thread that shows every running phase: on a terminal one line, rewritten; on a pipe a
/// plain line per phase that is due.
fn tick() {
    let terminal = std::io::stderr().is_terminal();
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let now = Instant::now();
        let mut b = board().lock().unwrap_or_else(|e| e.into_inner());
        let due = due(&b.running, now);
        if due.is_empty() {
            continue;
        }
        let text = render(&mut b.running, &due, now, terminal.then(width));
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    }
}

/// What one tick writes, and each phase it shows marked shown: on a terminal (`width` given) one
/// line of every running phase, rewritten in place; on a pipe a plain line per phase that is due.
fn render(running: &mut [Running], due: &[usize], now: Instant, width: Option<usize>) -> String {
    let of = |r: &Running| line(&r.label, r.step, now.duration_since(r.started), r.last);
    let text = match width {
        Some(width) => {
            let all: Vec<String> = running.iter().map(of).collect();
            format!("\r\x1b[2K{}", fit(&format!("xtask: {}", all.join(" | ")), width))
        }
        None => due.iter().map(|&i| format!("xtask: {}\n", of(&running[i]))).collect(),
    };
    for (i, r) in running.iter_mut().enumerate() {
        if width.is_some() || due.contains(&i) {
            r.shown = Some(now);
        }
    }
    text
}

/// The terminal's width as the shell tells it (`COLUMNS`), else 100.
fn width() -> usize {
    std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).filter(|&w| w > 20).unwrap_or(100)
}

/// `text` cut to `width` characters: a line longer than the terminal would wrap, and `\r` would
/// then rewrite only its last row.
fn fit(text: &str, width: usize) -> String {
    match text.char_indices().nth(width.saturating_sub(1)) {
        Some((at, _)) if text.chars().count() > width => format!("{}…", &text[..at]),
        _ => text.to_string(),
    }
}

/// The durations of phases on this machine, by label.
mod times {
    use super::*;

    fn file() -> std::path::PathBuf {
        crate::util::paths::checkout_target().join("xtask").join("phase-times.json")
    }

    /// The kept durations; a file that cannot be read is named once and then started again.
    pub(super) fn read() -> BTreeMap<String, f64> {
        let path = file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                eprintln!("xtask: warning: {} cannot be read ({e}); phase times start again", path.display());
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        }
    }

    pub(super) fn record(label: &str, took: Duration) {
        // Threads of one build end phases at the same moment: one writer at a time.
        static WRITING: Mutex<()> = Mutex::new(());
        let _guard = WRITING.lock().unwrap_or_else(|e| e.into_inner());
        let mut all = read();
        all.insert(label.to_string(), (took.as_secs_f64() * 10.0).round() / 10.0);
        if let Ok(text) = serde_json::to_string_pretty(&all) {
            if let Err(e) = crate::util::paths::write_atomic(&file(), text.as_bytes()) {
                eprintln!("xtask: warning: phase times not kept: {e:#}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_says_the_step_the_time_and_the_last_time_where_known() {
        let d = Duration::from_secs;
        assert_eq!(
            line("stand-ins: debootstrap linux/amd64", Some((2, 5)), d(41), Some(d(52))),
            "stand-ins: debootstrap linux/amd64 (2/5, 0:41, last time 0:52)"
        );
        assert_eq!(line("engine: starting dockerd", None, d(7), None), "engine: starting dockerd (0:07)");
        assert_eq!(clock(d(3725)), "1:02:05");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abcd", 4), "abcd");
    }

    #[test]
    fn a_phase_is_quiet_for_5_s_then_shown_at_least_every_10_s() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let phase = |started: Instant, shown: Option<Instant>| Running {
            id: 0,
            label: String::new(),
            step: None,
            started,
            last: None,
            shown,
        };
        assert!(due(&[phase(t0, None)], at(4)).is_empty(), "quiet before 5 s");
        assert_eq!(due(&[phase(t0, None)], at(5)), [0]);
        assert!(due(&[phase(t0, Some(at(5)))], at(12)).is_empty());
        assert_eq!(due(&[phase(t0, Some(at(5)))], at(13)), [0]);
        assert!(EVERY < Duration::from_secs(10) && QUIET <= Duration::from_secs(5));
        // Two phases at once are each shown on their own schedule.
        assert_eq!(due(&[phase(t0, Some(at(10))), phase(at(3), None)], at(9)), [1]);
    }

    #[test]
    fn a_terminal_gets_one_line_rewritten_and_a_pipe_a_plain_line_per_due_phase() {
        let t0 = Instant::now();
        let phases = || {
            ["debootstrap", "Node.js"].map(|label| Running {
                id: 0,
                label: label.to_string(),
                step: None,
                started: t0,
                last: None,
                shown: None,
            })
        };
        let now = t0 + Duration::from_secs(7);
        let mut running = phases();
        let tty = render(&mut running, &[1], now, Some(100));
        assert_eq!(tty, "\r\x1b[2Kxtask: debootstrap (0:07) | Node.js (0:07)");
        assert!(running.iter().all(|r| r.shown == Some(now)), "the line shows every running phase");
        let mut running = phases();
        let piped = render(&mut running, &[1], now, None);
        assert_eq!(piped, "xtask: Node.js (0:07)\n");
        assert_eq!(running.map(|r| r.shown.is_some()), [false, true], "only the due phase is shown");
        let narrow = render(&mut phases(), &[0], now, Some(30));
        assert_eq!(narrow.chars().count(), "\r\x1b[2K".chars().count() + 30, "cut to the terminal's width: {narrow}");
    }
}
