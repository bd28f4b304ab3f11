//! Commands as values, and the one place that runs them.
//!
//! Every program the xtask starts is first described by a [`Cmd`] (program, arguments, extra
//! environment, working directory). That value can be printed for a person to paste (`print`,
//! `--dry-run`), compared in unit tests, or handed to one of the runners below.
//!
//! The runners use duct, which streams and tees a child's output while it is parsed and starts
//! the build in a process group of its own; xshell's commands borrow a `Shell` and cannot be kept
//! as plain values (ARCHITECTURE.md says more).

use std::collections::VecDeque;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::util::os;
use crate::util::stop;

/// A program to run: never a shell string, always an argument vector.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Cmd {
    pub(crate) program: String,
    pub(crate) args: Vec<String>,
    /// Variables set for this command only, on top of the xtask's own environment.
    pub(crate) env: Vec<(String, String)>,
    /// Variables of the xtask's own environment this command must not see.
    pub(crate) unset: Vec<String>,
    pub(crate) dir: Option<PathBuf>,
    /// Whether the xtask's [`SECRETS`] reach this command (cosign's signing alone).
    pub(crate) secrets: bool,
}

/// Variables of the xtask's environment that hold secrets: removed from every child's environment
/// except a command's that asks for them ([`Cmd::pass_secrets`]), so that no other program
/// (curl, npm, apt-get, a build step's tools) can read or log them.
pub(crate) const SECRETS: [&str; 2] = ["COSIGN_PRIVATE_KEY", "COSIGN_PASSWORD"];

impl Cmd {
    pub fn new(program: impl Into<String>) -> Cmd {
        Cmd { program: program.into(), args: Vec::new(), env: Vec::new(), unset: Vec::new(), dir: None, secrets: false }
    }

    pub(crate) fn arg(mut self, arg: impl Into<String>) -> Cmd {
        self.args.push(arg.into());
        self
    }

    pub(crate) fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Names (targets, services, images) after `--`, so that none is read as a flag whatever it
    /// holds; for the tools that take `--` (buildx, compose and cosign, through their flag parser).
    pub(crate) fn names<S: AsRef<str>>(self, names: &[S]) -> Cmd {
        if names.is_empty() {
            return self;
        }
        self.arg("--").args(names.iter().map(|n| n.as_ref().to_string()))
    }

    /// Sets a variable for this command, replacing an earlier value of the same name.
    pub(crate) fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Cmd {
        let key = key.into();
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.into()));
        self
    }

    pub(crate) fn envs(mut self, vars: &[(String, String)]) -> Cmd {
        for (k, v) in vars {
            self = self.env(k.clone(), v.clone());
        }
        self
    }

    /// Keeps a variable of the xtask's own environment away from this command.
    pub(crate) fn env_remove(mut self, key: impl Into<String>) -> Cmd {
        let key = key.into();
        self.env.retain(|(k, _)| *k != key);
        self.unset.push(key);
        self
    }

    pub(crate) fn dir(mut self, dir: impl AsRef<Path>) -> Cmd {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Lets the xtask's [`SECRETS`] through to this command, from the xtask's own environment (their
    /// values never enter the `Cmd`, so printing it shows none).
    pub(crate) fn pass_secrets(mut self) -> Cmd {
        self.secrets = true;
        self
    }

    /// The variables of the xtask's environment the child does not get: the asked ones, and the
    /// secrets unless passed.
    fn removed(&self) -> impl Iterator<Item = &str> {
        let secrets = SECRETS.iter().copied().filter(|_| !self.secrets);
        self.unset.iter().map(String::as_str).chain(secrets)
    }

    fn expression(&self) -> duct::Expression {
        let mut expr = duct::cmd(&self.program, &self.args);
        for k in self.removed() {
            expr = expr.env_remove(k);
        }
        for (k, v) in &self.env {
            expr = expr.env(k, v);
        }
        if let Some(dir) = &self.dir {
            expr = expr.dir(dir);
        }
        expr
    }

    /// The command line alone, quoted so that a POSIX shell reads it back as the same vector.
    pub(crate) fn command_line(&self) -> String {
        std::iter::once(&self.program).chain(&self.args).map(|a| quote(a)).collect::<Vec<_>>().join(" ")
    }
}

/// `Display` gives what a person can paste: `cd DIR && VAR=value program args`.
impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(dir) = &self.dir {
            write!(f, "cd {} && ", quote(&dir.display().to_string()))?;
        }
        if !self.unset.is_empty() {
            let names: Vec<String> = self.unset.iter().map(|k| format!("-u {k}")).collect();
            write!(f, "env {} ", names.join(" "))?;
        }
        for (k, v) in &self.env {
            write!(f, "{k}={} ", quote(v))?;
        }
        f.write_str(&self.command_line())
    }
}

/// Quotes one word for a POSIX shell, leaving plain words as they are.
pub(crate) fn quote(word: &str) -> String {
    let plain = !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%^".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Runs a command with the terminal attached; a failure names the command and its status.
pub(crate) fn run(cmd: &Cmd) -> Result<()> {
    let out = cmd.expression().unchecked().run().with_context(|| format!("starting `{}`", cmd.command_line()))?;
    check_status(cmd, out.status, "")
}

/// Runs a command and returns its standard output, trimmed. Its standard error is kept for the
/// error message only.
pub(crate) fn read(cmd: &Cmd) -> Result<String> {
    let out = cmd
        .expression()
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .with_context(|| format!("starting `{}`", cmd.command_line()))?;
    check_status(cmd, out.status, &String::from_utf8_lossy(&out.stderr))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Like [`read`], but gives up after `limit` (a probe of something that may hang, like a
/// registry lookup on a network that drops packets).
pub(crate) fn read_with_timeout(cmd: &Cmd, limit: Duration) -> Result<String> {
    let handle = cmd
        .expression()
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .start()
        .with_context(|| format!("starting `{}`", cmd.command_line()))?;
    if !wait_until(limit, || !matches!(handle.try_wait(), Ok(None))) {
        let _ = handle.kill();
        bail!("`{}` did not answer within {}s", cmd.command_line(), limit.as_secs());
    }
    let out = handle.wait()?;
    check_status(cmd, out.status, &String::from_utf8_lossy(&out.stderr))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Polls `done` until it holds or `limit` passes; false on the time-out.
pub(crate) fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    loop {
        if done() {
            return true;
        }
        if started.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// True when the command runs and exits 0; its output is discarded.
pub(crate) fn succeeds(cmd: &Cmd) -> bool {
    cmd.expression().stdout_null().stderr_null().unchecked().run().map(|o| o.status.success()).unwrap_or(false)
}

/// Runs a command whose standard error is a stream the caller parses as it arrives (buildx's
/// rawjson progress); `on_chunk` sees every chunk of its output as it arrives.
///
/// The child leads a process group of its own, so a stop reaches it and everything it started
/// (`docker` runs buildx as a plug-in, a child of its own) through one `kill`, and only from
/// [`stop::handler`]: a Ctrl-C in the terminal reaches the xtask, which passes it on. Its standard
/// input is closed: bake reads none, and a background group touching the terminal would stop.
pub(crate) fn run_streaming(cmd: &Cmd, mut on_chunk: impl FnMut(&[u8])) -> Result<ExitStatus> {
    // stderr and stdout are merged here: buildx bake writes nothing to stdout without --print, and
    // the stream parser skips any text between JSON objects.
    let mut reader = cmd
        .expression()
        .stderr_to_stdout()
        .stdin_null()
        .before_spawn(|c| {
            os::own_process_group(c);
            Ok(())
        })
        .unchecked()
        .reader()
        .with_context(|| format!("starting `{}`", cmd.command_line()))?;
    if let Some(pid) = reader.pids().first() {
        stop::GROUP.store(*pid, Ordering::SeqCst);
        // A stop that came while the child was being started found no group to stop.
        if stop::stopped().is_some() {
            stop::stop_group(*pid, true);
        }
    }
    let mut buf = vec![0u8; 64 * 1024];
    let outcome = loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(e),
        };
        on_chunk(&buf[..n]);
    };
    // At the end of its output duct has waited for (reaped) the child: its pid may be reused now.
    stop::GROUP.store(0, Ordering::SeqCst);
    outcome.context("reading the build's progress stream")?;
    let out = reader.try_wait()?.context("child still running after its output closed")?;
    Ok(out.status)
}

/// Runs a command and hands each line of its merged standard output and error to `on_line`.
fn each_line(cmd: &Cmd, mut on_line: impl FnMut(String)) -> Result<ExitStatus> {
    let reader = cmd
        .expression()
        .stderr_to_stdout()
        .unchecked()
        .reader()
        .with_context(|| format!("starting `{}`", cmd.command_line()))?;
    for line in BufReader::new(&reader).lines() {
        on_line(line.unwrap_or_default());
    }
    Ok(reader.try_wait()?.context("child still running after its output closed")?.status)
}

/// Runs a command with its merged output kept out of the terminal: long setup steps whose output
/// is only worth showing when they fail (the last lines then go into the error).
pub(crate) fn run_quiet(cmd: &Cmd) -> Result<()> {
    let mut tail = VecDeque::new();
    let status = each_line(cmd, |line| {
        if tail.len() == 20 {
            tail.pop_front();
        }
        tail.push_back(line);
    })?;
    check_status(cmd, status, &tail.into_iter().collect::<Vec<_>>().join("\n"))
}

/// Runs a command with its merged output kept out of the terminal and returned whole (a traced
/// run's lines); a failure is an error with its last lines.
pub(crate) fn read_merged(cmd: &Cmd) -> Result<String> {
    let mut all = String::new();
    let status = each_line(cmd, |line| {
        all.push_str(&line);
        all.push('\n');
    })?;
    check_status(cmd, status, &all)?;
    Ok(all)
}

/// Runs a command with its merged output returned, and shown live when `shown` (a test runner's
/// closing summary is read from it; a suite that runs beside another is shown when it has ended).
pub(crate) fn run_kept(cmd: &Cmd, shown: bool) -> Result<(ExitStatus, String)> {
    let (status, lines) = run_timed(cmd, shown)?;
    Ok((status, lines.into_iter().map(|(_, line)| line + "\n").collect()))
}

/// As [`run_kept`], each line with when it came (since the start).
pub(crate) fn run_timed(cmd: &Cmd, shown: bool) -> Result<(ExitStatus, Vec<(Duration, String)>)> {
    let started = Instant::now();
    let mut lines = Vec::new();
    let status = each_line(cmd, |line| {
        if shown {
            println!("{line}");
        }
        lines.push((started.elapsed(), line));
    })?;
    Ok((status, lines))
}

/// Turns a non-zero exit into an error naming the command, the status and the last lines it wrote.
pub(crate) fn check_status(cmd: &Cmd, status: ExitStatus, output: &str) -> Result<()> {
    if status.success() {
        return Ok(());
    }
    let tail = last_lines(output, 12);
    if tail.is_empty() {
        bail!("`{}` failed ({})", cmd.command_line(), describe(status))
    }
    bail!("`{}` failed ({}); its last lines:\n{}", cmd.command_line(), describe(status), tail)
}

pub(crate) fn describe(status: ExitStatus) -> String {
    match (status.code(), os::exit_signal(status)) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "unknown status".to_string(),
    }
}

pub(crate) fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Starts a long-running program detached from the xtask (its own process group, so Ctrl-C in
/// this terminal does not reach it), with output appended to `log`. Returns its pid.
pub(crate) fn spawn_daemon(cmd: &Cmd, log: &Path) -> Result<u32> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let mut command = std::process::Command::new(&cmd.program);
    for k in cmd.removed() {
        command.env_remove(k);
    }
    command.args(&cmd.args).envs(cmd.env.iter().cloned()).stdin(Stdio::null());
    command.stdout(out.try_clone()?).stderr(out);
    os::own_process_group(&mut command);
    if let Some(dir) = &cmd.dir {
        command.current_dir(dir);
    }
    let child = command.spawn().with_context(|| format!("starting `{}`", cmd.command_line()))?;
    Ok(child.id())
}

#[cfg(all(test, unix))]
#[path = "runner_secrets_tests.rs"]
mod secrets_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_what_a_shell_would_split() {
        let cmd = Cmd::new("docker")
            .args(["buildx", "bake", "--set", "*.args.X=a b", "it's"])
            .env("VERSION", "1.2.3")
            .dir("/tmp/x y");
        assert_eq!(
            cmd.to_string(),
            "cd '/tmp/x y' && VERSION=1.2.3 docker buildx bake --set '*.args.X=a b' 'it'\\''s'"
        );
    }

    // It runs Unix programs.
    #[cfg(unix)]
    #[test]
    fn a_removed_variable_is_not_seen_and_is_shown() {
        std::env::set_var("XTASK_RUNNER_TEST_UNSET", "leaked");
        assert!(read(&Cmd::new("env")).unwrap().contains("XTASK_RUNNER_TEST_UNSET=leaked"));
        let cmd = Cmd::new("env").env_remove("XTASK_RUNNER_TEST_UNSET");
        assert!(!read(&cmd).unwrap().contains("XTASK_RUNNER_TEST_UNSET"));
        assert_eq!(cmd.to_string(), "env -u XTASK_RUNNER_TEST_UNSET env");
        std::env::remove_var("XTASK_RUNNER_TEST_UNSET");
    }

    #[test]
    fn env_replaces_an_earlier_value() {
        let cmd = Cmd::new("x").env("A", "1").env("A", "2");
        assert_eq!(cmd.env, vec![("A".to_string(), "2".to_string())]);
    }

    // It runs Unix programs.
    #[cfg(unix)]
    #[test]
    fn failure_names_command_status_and_tail() {
        let err = read(&Cmd::new("false").arg("two words")).unwrap_err().to_string();
        assert!(err.contains("`false 'two words'` failed (exit status 1)"), "{err}");
    }

    // It runs Unix programs and reads /proc.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_stopped_build_group_ends_with_its_grandchildren_even_when_it_ignores_sigint() {
        // The shell ignores SIGINT, as does its background child: only the kill after the grace
        // ends them, and it must reach the grandchild the shell started too.
        let cmd = Cmd::new("sh").args(["-c", "trap '' INT; sleep 60 & echo $!; wait"]);
        let started = Instant::now();
        let stopper = std::thread::spawn(|| {
            assert!(wait_until(Duration::from_secs(5), || stop::GROUP.load(Ordering::SeqCst) != 0));
            std::thread::sleep(Duration::from_millis(200));
            stop::stop_group(stop::GROUP.load(Ordering::SeqCst), true);
        });
        let mut said = Vec::new();
        let status = run_streaming(&cmd, |chunk| said.extend_from_slice(chunk)).unwrap();
        stopper.join().unwrap();
        let elapsed = started.elapsed();
        assert!(!status.success());
        assert!(elapsed >= stop::GRACE && elapsed < stop::GRACE + Duration::from_secs(3), "{elapsed:?}");
        let grandchild = String::from_utf8_lossy(&said).trim().to_string();
        assert!(grandchild.parse::<u32>().is_ok(), "{grandchild:?}");
        let gone = wait_until(Duration::from_secs(2), || !Path::new(&format!("/proc/{grandchild}")).exists());
        assert!(gone, "the grandchild {grandchild} outlived its group's stop");
        assert_eq!(stop::GROUP.load(Ordering::SeqCst), 0, "no group is left to stop");
    }

    // It runs Unix programs.
    #[cfg(unix)]
    #[test]
    fn timeout_stops_a_hanging_probe() {
        let started = Instant::now();
        let err = read_with_timeout(&Cmd::new("sleep").arg("5"), Duration::from_millis(200)).unwrap_err();
        assert!(err.to_string().contains("did not answer"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
