//! The command line as data: every subcommand and flag once, with its help text, and the one
//! parser that reads `argv` against that table.
//!
//! Why not a macro or a derive: the five building commands share eight flags, and a table lets
//! them be stated once (`BUILD`); each subcommand gets a `--help` of its own, made from the same
//! table; and the crate compiles without a proc-macro dependency.

use std::fmt::Write as _;

/// One `--flag`: a switch when `value` is `None`, else it takes a value named `value`.
#[derive(Debug)]
pub struct Flag {
    pub long: &'static str,
    /// A one-letter form, for the few flags people type all day (`logs -f`).
    pub short: Option<char>,
    pub(crate) value: Option<&'static str>,
    pub(crate) repeated: bool,
    pub(crate) help: &'static str,
}

pub(super) const fn switch(long: &'static str, help: &'static str) -> Flag {
    Flag { long, short: None, value: None, repeated: false, help }
}

pub(super) const fn valued(long: &'static str, value: &'static str, help: &'static str) -> Flag {
    Flag { long, short: None, value: Some(value), repeated: false, help }
}

pub(super) const fn repeated(long: &'static str, value: &'static str, help: &'static str) -> Flag {
    Flag { long, short: None, value: Some(value), repeated: true, help }
}

/// The words after the flags, e.g. the services to build.
#[derive(Debug)]
pub(crate) struct Positional {
    pub(crate) name: &'static str,
    pub(crate) repeated: bool,
    pub(crate) help: &'static str,
}

/// Which subcommand ran: `main` matches on it, so a new entry cannot be left unhandled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sub {
    Build,
    Backend,
    Frontend,
    Production,
    Multiplatform,
    Print,
    Check,
    Doctor,
    Verify,
    Sbom,
    Audit,
    EngineUp,
    EngineDown,
    EngineStatus,
    EngineEnv,
    Up,
    Down,
    Logs,
    Ps,
    Du,
    Clean,
    Report,
    Bench,
    Metrics,
    Test,
}

#[derive(Debug)]
pub struct Command {
    pub sub: Sub,
    /// The words that name it: `build`, or `engine up`.
    pub name: &'static str,
    pub(crate) about: &'static str,
    pub(crate) positional: Option<Positional>,
    /// Groups of flags: shared groups are stated once and listed here by name.
    pub flags: &'static [&'static [Flag]],
    /// One to three command lines that end its `--help`; a unit test parses each.
    pub(crate) examples: &'static [&'static str],
}

mod help;
mod table;

pub(crate) use help::help;
#[cfg(test)]
use help::wrap;

pub use table::{BUILD, COMMANDS};

/// A parsed command line: the subcommand and what was given to it.
#[derive(Debug)]
pub struct Args {
    pub command: &'static Command,
    given: Vec<(&'static str, String)>,
    pub positionals: Vec<String>,
    /// Lines for stderr: an old spelling that was taken for its new name.
    pub warnings: Vec<String>,
}

impl Args {
    fn declared(&self, long: &str) -> &'static Flag {
        self.command
            .flags
            .iter()
            .flat_map(|g| g.iter())
            .find(|f| f.long == long)
            .unwrap_or_else(|| panic!("`{}` declares no --{long}", self.command.name))
    }

    /// A switch: true when given.
    pub fn switch(&self, long: &str) -> bool {
        debug_assert!(self.declared(long).value.is_none());
        self.given.iter().any(|(l, _)| *l == long)
    }

    /// A flag's value, when given.
    pub fn value(&self, long: &str) -> Option<String> {
        debug_assert!(self.declared(long).value.is_some());
        self.given.iter().find(|(l, _)| *l == long).map(|(_, v)| v.clone())
    }

    /// A switch that only some of the commands reading it declare (`--push`): false where this
    /// one does not (the parser refuses a flag its command does not declare).
    pub fn switch_if_declared(&self, long: &str) -> bool {
        self.given.iter().any(|(l, _)| *l == long)
    }

    /// A value that only some of the commands reading it declare (`--key`): None where this one
    /// does not.
    pub fn value_if_declared(&self, long: &str) -> Option<String> {
        self.given.iter().find(|(l, _)| *l == long).map(|(_, v)| v.clone())
    }

    /// Every value of a repeatable flag, in order.
    pub fn values(&self, long: &str) -> Vec<String> {
        debug_assert!(self.declared(long).repeated);
        self.given.iter().filter(|(l, _)| *l == long).map(|(_, v)| v.clone()).collect()
    }
}

/// What the command line asks for: a run, or a help text to print.
#[derive(Debug)]
pub enum Parsed {
    Run(Args),
    Help(String),
}

/// Reads `argv` (without the program name). The error is one line that says what is wrong and
/// where the help is.
pub fn parse(argv: &[String]) -> Result<Parsed, String> {
    let words: Vec<&str> = argv.iter().map(String::as_str).collect();
    let wants_help = |w: &&str| matches!(*w, "--help" | "-h");
    let Some(first) = words.first() else { return Ok(Parsed::Help(overview())) };
    match *first {
        "help" | "--help" | "-h" => return Ok(Parsed::Help(overview())),
        "--version" | "-V" => return Ok(Parsed::Help(format!("xtask {}\n", env!("CARGO_PKG_VERSION")))),
        _ => {}
    }
    // The longest name that the words start with: `engine up` before `engine`.
    let command = COMMANDS
        .iter()
        .filter(|c| c.name.split(' ').zip(&words).all(|(a, b)| a == *b) && words.len() >= c.name.split(' ').count())
        .max_by_key(|c| c.name.len());
    let Some(command) = command else {
        // `engine` alone, or `engine --help`: its subcommands.
        let group: Vec<&Command> = COMMANDS.iter().filter(|c| c.name.starts_with(&format!("{first} "))).collect();
        if !group.is_empty() && words[1..].iter().all(|w| wants_help(w)) {
            return Ok(Parsed::Help(listing(&group)));
        }
        let tried = if group.is_empty() { first.to_string() } else { words[..2.min(words.len())].join(" ") };
        let names: Vec<&str> = COMMANDS.iter().map(|c| c.name).collect();
        return Err(format!("unknown subcommand `{tried}`{}; `cargo xtask` lists them", suggest(&tried, &names, "")));
    };
    let rest = &words[command.name.split(' ').count()..];
    if rest.iter().any(wants_help) {
        return Ok(Parsed::Help(help(command)));
    }
    let flags: Vec<&'static Flag> = command.flags.iter().flat_map(|g| g.iter()).collect();
    let mut args = Args { command, given: Vec::new(), positionals: Vec::new(), warnings: Vec::new() };
    let mut i = 0;
    let usage = |what: String| format!("{what} (see `cargo xtask {} --help`)", command.name);
    while i < rest.len() {
        let word = rest[i];
        i += 1;
        let short = match word.strip_prefix('-').map(|w| w.chars().collect::<Vec<_>>()) {
            Some(c) if c.len() == 1 && c[0] != '-' => flags.iter().find(|f| f.short == Some(c[0])),
            _ => None,
        };
        let body = match short {
            Some(f) => Some(f.long),
            None => word.strip_prefix("--"),
        };
        let Some(body) = body else {
            positional(command, &mut args.positionals, word).map_err(usage)?;
            continue;
        };
        let (long, inline) = match body.split_once('=') {
            Some((l, v)) => (renamed(l, &flags, &mut args.warnings), Some(v)),
            None => (renamed(body, &flags, &mut args.warnings), None),
        };
        let Some(flag) = flags.iter().find(|f| f.long == long) else {
            let longs: Vec<&str> = flags.iter().map(|f| f.long).collect();
            return Err(usage(format!("`{}` has no flag --{long}{}", command.name, suggest(long, &longs, "--"))));
        };
        let value = match (flag.value, inline) {
            (None, None) => String::new(),
            (None, Some(_)) => return Err(usage(format!("--{long} takes no value"))),
            (Some(_), Some(v)) => v.to_string(),
            (Some(name), None) => match rest.get(i) {
                Some(v) if !v.starts_with("--") => {
                    i += 1;
                    v.to_string()
                }
                _ => return Err(usage(format!("--{long} needs a value ({name})"))),
            },
        };
        if !flag.repeated && args.given.iter().any(|(l, _)| *l == flag.long) {
            return Err(usage(format!("--{long} is given twice; it takes one value")));
        }
        args.given.push((flag.long, value));
    }
    Ok(Parsed::Run(args))
}

/// Flags that have a new name, taken under the old one with a warning: `--version` after a
/// building command named the product version to build, which read like the xtask's own.
const RENAMED: &[(&str, &str)] = &[("version", "release-version")];

/// The flag's current name, with a warning when `long` is an old spelling this command knows.
fn renamed<'a>(long: &'a str, flags: &[&'static Flag], warnings: &mut Vec<String>) -> &'a str {
    match RENAMED.iter().find(|(old, new)| *old == long && flags.iter().any(|f| f.long == *new)) {
        Some((old, new)) => {
            warnings.push(format!("--{old} after a subcommand is now --{new}; the old spelling will go away"));
            new
        }
        None => long,
    }
}

/// Takes a word that is not a flag as the command's next argument. A name never starts with `-`:
/// such a word is a flag this command lacks, and passed on as a name it would become a flag of the
/// tool that receives it (`-f../x.hcl`).
fn positional(command: &Command, positionals: &mut Vec<String>, word: &str) -> Result<(), String> {
    if word.starts_with('-') {
        let why = if command.positional.is_some() { " (a name never starts with `-`)" } else { "" };
        return Err(format!("`{}` has no flag `{word}`{why}", command.name));
    }
    match &command.positional {
        Some(p) if p.repeated || positionals.is_empty() => positionals.push(word.to_string()),
        Some(p) => return Err(format!("`{}` takes one {}, got a second: `{word}`", command.name, p.name)),
        None => return Err(format!("`{}` takes no arguments, got `{word}`", command.name)),
    }
    Ok(())
}

/// ` (did you mean `x`?)` when a known name is one or two edits away.
fn suggest(wrong: &str, known: &[&str], prefix: &str) -> String {
    let best = known.iter().map(|k| (edits(wrong, k), *k)).min();
    match best {
        Some((d, k)) if d <= 2 && d < wrong.len() => format!(" (did you mean `{prefix}{k}`?)"),
        _ => String::new(),
    }
}

/// Levenshtein distance, one row at a time.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// `cargo xtask` alone: the two commands people start with, then every subcommand.
pub(crate) fn overview() -> String {
    let mut out = String::from(
        "ContextCleanse's build recipes: Docker BuildKit through `docker buildx bake`.\n\
         `cargo xtask build` builds both images; `cargo xtask test` runs every test suite.\n\n",
    );
    out.push_str(&listing(&COMMANDS.iter().collect::<Vec<_>>()));
    out.push_str("\nEach subcommand takes --help, which ends with examples; --version prints this version.\n");
    out
}

fn listing(commands: &[&Command]) -> String {
    let width = commands.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut out = String::from("Subcommands:\n");
    for c in commands {
        // The first sentence only: a listing line fits `COLUMNS` (a unit test keeps it so).
        let first = c.about.split(". ").next().unwrap_or(c.about).trim_end_matches('.');
        let _ = writeln!(out, "  {:width$}  {first}", c.name);
    }
    out
}

#[cfg(test)]
mod help_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &str) -> Result<Args, String> {
        let argv: Vec<String> = line.split_whitespace().map(String::from).collect();
        match parse(&argv)? {
            Parsed::Run(a) => Ok(a),
            Parsed::Help(h) => Err(format!("help: {h}")),
        }
    }

    #[test]
    fn the_building_commands_share_one_declaration_of_their_flags() {
        for name in ["build", "backend", "frontend", "production", "multiplatform"] {
            let c = COMMANDS.iter().find(|c| c.name == name).unwrap();
            let longs = |g: &[Flag]| g.iter().map(|f| f.long).collect::<Vec<_>>();
            assert!(c.flags.iter().any(|g| longs(g) == longs(BUILD)), "{name}");
        }
        let a = run("production --push --set a.b=1 --set=c.d=2 --release-version 1.2.3 --dry-run").unwrap();
        assert_eq!(a.command.sub, Sub::Production);
        assert!(a.switch("push") && a.switch("dry-run") && !a.switch("pull"));
        assert_eq!(a.values("set"), ["a.b=1", "c.d=2"]);
        assert_eq!(a.value("release-version").as_deref(), Some("1.2.3"));
    }

    #[test]
    fn two_word_subcommands_and_positionals() {
        let a = run("engine up --channel floor --classic").unwrap();
        assert_eq!(a.command.sub, Sub::EngineUp);
        assert_eq!(a.value("channel").as_deref(), Some("floor"));
        let a = run("build backend frontend --no-cache").unwrap();
        assert_eq!(a.positionals, ["backend", "frontend"]);
        assert!(run("sbom a b").unwrap_err().contains("takes one IMAGE"));
        let a = run("logs -f --tail 5 backend").unwrap();
        assert!(a.switch("follow") && a.positionals == ["backend"]);
        assert!(run("ps -x").unwrap_err().contains("`ps` has no flag `-x`"), "{}", run("ps -x").unwrap_err());
        // `up` and `engine up` are two commands; the longer name wins.
        assert_eq!(run("up").unwrap().command.sub, Sub::Up);
        assert_eq!(run("engine up").unwrap().command.sub, Sub::EngineUp);
    }

    #[test]
    fn mistakes_are_one_line_with_a_suggestion_and_where_the_help_is() {
        let e = run("biuld").unwrap_err();
        assert_eq!(e, "unknown subcommand `biuld` (did you mean `build`?); `cargo xtask` lists them");
        let e = run("build --no-cahce").unwrap_err();
        assert!(
            e.contains("no flag --no-cahce (did you mean `--no-cache`?)") && e.contains("cargo xtask build --help"),
            "{e}"
        );
        assert!(run("build --release-version").unwrap_err().contains("--release-version needs a value"));
        assert!(run("build --pull=yes").unwrap_err().contains("takes no value"));
        assert!(run("build --release-version 1 --release-version 2").unwrap_err().contains("given twice"));
        assert!(run("engine upp").unwrap_err().contains("unknown subcommand `engine upp` (did you mean `engine up`?)"));
        assert!(run("doctor now").unwrap_err().contains("takes no arguments"));
    }

    #[test]
    fn a_word_starting_with_a_dash_is_never_a_name() {
        for (line, word) in [
            ("build -f../elsewhere.hcl", "-f../elsewhere.hcl"),
            ("build -n", "-n"),
            ("build backend -x", "-x"),
            ("verify -oops", "-oops"),
            ("sbom -f", "-f"),
            ("logs backend -ff", "-ff"),
            ("report --compare -1 last", "-1"),
        ] {
            let e = run(line).unwrap_err();
            let cmd = line.split(' ').next().unwrap();
            let expected = format!("`{cmd}` has no flag `{word}` (a name never starts with `-`)");
            assert!(e.starts_with(&expected) && !e.contains('\n'), "{line}: {e}");
        }
        assert_eq!(run("logs -f backend").unwrap().positionals, ["backend"], "a short flag is still a flag");
    }

    #[test]
    fn each_subcommand_has_a_help_of_its_own() {
        let h = run("frontend --help").unwrap_err();
        assert!(h.contains("Usage: cargo xtask frontend [FLAGS]") && h.contains("--registry HOST:PORT"), "{h}");
        assert!(!h.contains("--oci") && !h.contains("--e2e-filter"), "{h}");
        let h = run("engine").unwrap_err();
        assert!(h.contains("engine up") && h.contains("engine env") && !h.contains("bench"), "{h}");
        assert!(run("").unwrap_err().contains("Subcommands:"));
        for c in COMMANDS {
            let text = help(c);
            assert!(text.lines().count() < 40, "{} has a help of {} lines", c.name, text.lines().count());
        }
    }

    #[test]
    fn no_command_declares_a_flag_twice() {
        for c in COMMANDS {
            let mut longs: Vec<&str> = c.flags.iter().flat_map(|g| g.iter()).map(|f| f.long).collect();
            let n = longs.len();
            longs.sort_unstable();
            longs.dedup();
            assert_eq!(longs.len(), n, "{}", c.name);
        }
    }
}
