//! Stopping: SIGINT, SIGTERM and SIGHUP stop the build running now (its whole process group),
//! are recorded by the caller, and end the xtask with 128+N.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Result;

use crate::util::os;

/// A signal that asked the xtask to stop: SIGINT (Ctrl-C), SIGTERM (`kill`, `timeout`, a CI job
/// cancelled) or SIGHUP (the terminal closed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stop(pub i32);

impl Stop {
    pub fn name(self) -> String {
        match self.0 {
            os::SIGINT => "SIGINT".to_string(),
            os::SIGTERM => "SIGTERM".to_string(),
            os::SIGHUP => "SIGHUP".to_string(),
            n => format!("signal {n}"),
        }
    }

    /// The shell's convention for a program ended by signal N, which `timeout` and CI runners read.
    pub fn exit_code(self) -> i32 {
        128 + self.0
    }
}

/// The error a stopped build ends with; `main` turns it into the exit code 128+N.
#[derive(Debug)]
pub struct Stopped {
    pub stop: Stop,
    pub(crate) history: PathBuf,
}

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stopped by {}; the build is recorded as interrupted in {}", self.stop.name(), self.history.display())
    }
}

impl std::error::Error for Stopped {}

/// The first stop signal received (0: none yet).
static STOP: AtomicI32 = AtomicI32::new(0);
/// The process group of the streaming child running now (0: none).
pub(crate) static GROUP: AtomicU32 = AtomicU32::new(0);
/// How many builds are being run and recorded now: while one is, a stop is recorded, not obeyed
/// at once.
static RECORDING: AtomicUsize = AtomicUsize::new(0);
/// How long buildx gets to cancel its solve after SIGINT before its group is killed.
pub(crate) const GRACE: Duration = Duration::from_secs(3);

/// The stop received so far, if any.
pub(crate) fn stopped() -> Option<Stop> {
    match STOP.load(Ordering::SeqCst) {
        0 => None,
        n => Some(Stop(n)),
    }
}

/// While the returned guard lives, a stop signal stops the streaming child (if one runs) and is
/// left for the caller to record; without one, the xtask exits at once.
pub(crate) fn recording() -> RecordingGuard {
    RECORDING.fetch_add(1, Ordering::SeqCst);
    RecordingGuard(())
}

pub(crate) struct RecordingGuard(());

impl Drop for RecordingGuard {
    fn drop(&mut self) {
        RECORDING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Handles SIGINT, SIGTERM and SIGHUP on a thread of their own (not in a signal handler, so it
/// may start threads and allocate). Outside a build nothing is worth recording and every file is
/// written atomically, so `exit` (main's: the one place the process ends) is called at once with
/// the stop. (Off Unix there is no handler: the console's Ctrl-C ends the xtask and its build
/// together.)
pub fn handler(exit: fn(Stop) -> !) -> Result<()> {
    os::on_stop_signals(move |signal| {
        let first = STOP.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst).is_ok();
        if RECORDING.load(Ordering::SeqCst) == 0 {
            exit(Stop(signal));
        }
        let group = GROUP.load(Ordering::SeqCst);
        if group != 0 {
            // A second signal means the person does not want to wait for the cancel.
            stop_group(group, first);
        }
    })
}

/// Asks the group to cancel (SIGINT: buildx cancels its solve and exits), and kills it if it is
/// still there after [`GRACE`]; with `gently` false, kills it at once.
pub(crate) fn stop_group(group: u32, gently: bool) {
    if !gently {
        os::kill_group(group);
        return;
    }
    os::signal_group(group, os::SIGINT);
    std::thread::spawn(move || {
        // Signal 0 fails once no process of the group is left. (Polled here rather than with the
        // runner's helper: the runner uses this module, not the other way.)
        let asked = std::time::Instant::now();
        while os::signal_group(group, 0) && asked.elapsed() < GRACE {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if os::signal_group(group, 0) {
            os::kill_group(group);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_are_named_and_exit_as_the_shell_expects() {
        assert_eq!((Stop(os::SIGINT).name(), Stop(os::SIGINT).exit_code()), ("SIGINT".to_string(), 130));
        assert_eq!((Stop(os::SIGTERM).name(), Stop(os::SIGTERM).exit_code()), ("SIGTERM".to_string(), 143));
        assert_eq!((Stop(os::SIGHUP).name(), Stop(os::SIGHUP).exit_code()), ("SIGHUP".to_string(), 129));
    }
}
