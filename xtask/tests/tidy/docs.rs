//! Tidy checks of the README and `docs/`: the README stays a short manual, every `cargo xtask …`
//! they show is a command the xtask has, and they name no commit.

use super::{read, root};
use xtask::flags::{self, Command};

/// The longest the README may grow: past this, reference belongs in `docs/`.
const README_MAX_LINES: usize = 250;

/// The README and every Markdown file under `docs/`, as (path, text).
fn manuals() -> Vec<(String, String)> {
    let mut files = vec![("README.md".to_string(), read("README.md"))];
    let dir = root().join("docs");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .collect();
    names.sort();
    for name in names {
        let path = format!("docs/{name}");
        files.push((path.clone(), read(&path)));
    }
    files
}

/// The words after each `cargo xtask` on a line, up to the end of the code span, a comment or a
/// shell operator; brackets and quotes of usage notation are dropped.
fn calls(line: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("cargo xtask") {
        rest = &rest[at + "cargo xtask".len()..];
        if !(rest.is_empty() || rest.starts_with([' ', '`'])) {
            continue; // "the cargo xtask's …": prose
        }
        let span = rest.split('`').next().unwrap_or("");
        let words = span
            .split_whitespace()
            .take_while(|w| !["|", "||", "&&", ";", ">", ">>", "2>&1"].contains(w) && !w.starts_with('#'))
            .map(|w| w.trim_matches(|c| "[]()\"',.:".contains(c)).to_string())
            .filter(|w| !w.is_empty() && !["\\|", "…", "..."].contains(&w.as_str()))
            .collect();
        out.push(words);
    }
    out
}

/// None when `words` name a subcommand and only flags it declares; else what is wrong.
fn check(words: &[String]) -> Option<String> {
    let is_flag = |w: &str| w.starts_with('-') && w.len() > 1;
    let Some(first) = words.first() else { return None };
    if is_flag(first) {
        let known = ["--help", "-h", "--version", "-V"];
        return (!known.contains(&first.as_str())).then(|| format!("`{first}` is no top-level flag"));
    }
    let command: Option<&Command> = flags::COMMANDS
        .iter()
        .filter(|c| c.name.split(' ').zip(words).all(|(a, b)| a == b) && words.len() >= c.name.split(' ').count())
        .max_by_key(|c| c.name.len());
    let Some(command) = command else { return Some(format!("no subcommand `{first}`")) };
    let declared = |w: &str| {
        let long = w.strip_prefix("--").map(|l| l.split('=').next().unwrap_or(l));
        let short = w.strip_prefix('-').filter(|s| s.chars().count() == 1).and_then(|s| s.chars().next());
        matches!(w, "--help" | "-h")
            || command
                .flags
                .iter()
                .flat_map(|g| g.iter())
                .any(|f| Some(f.long) == long || f.short.is_some() && f.short == short)
    };
    words
        .iter()
        .filter(|w| is_flag(w))
        .find(|w| !declared(w))
        .map(|w| format!("`cargo xtask {}` has no flag `{w}`", command.name))
}

#[test]
fn the_readme_is_a_short_manual_that_points_into_docs() {
    let readme = read("README.md");
    let lines = readme.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines (at most {README_MAX_LINES}): move reference text into docs/<topic>.md and link it"
    );
    for link in ["ARCHITECTURE.md", "docs/engines.md", "docs/caching.md", "docs/benchmarks.md"] {
        assert!(readme.contains(&format!("]({link})")), "README.md must link {link}");
    }
}

#[test]
fn every_xtask_command_in_the_readme_and_docs_exists() {
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (path, text) in manuals() {
        for (n, line) in text.lines().enumerate() {
            for words in calls(line) {
                checked += 1;
                if let Some(why) = check(&words) {
                    wrong.push(format!("{path}:{}: `cargo xtask {}`: {why}", n + 1, words.join(" ")));
                }
            }
        }
    }
    assert!(checked >= 30, "found only {checked} `cargo xtask` commands in README.md and docs/");
    assert!(
        wrong.is_empty(),
        "commands the xtask does not have (see `cargo xtask <command> --help`, and change the text):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_command_check_refuses_what_the_xtask_lacks() {
    let one = |line: &str| calls(line).into_iter().next().unwrap();
    assert_eq!(check(&one("`cargo xtask clean [--cache \\| --images] [--yes]` removes")), None);
    assert_eq!(check(&one("`cargo xtask logs [-f]`")), None);
    assert_eq!(check(&one("eval \"$(cargo xtask engine env --name second)\"")), None);
    assert_eq!(check(&one("cargo xtask --version")), None);
    assert!(check(&one("`cargo xtask deploy`")).is_some());
    assert!(check(&one("`cargo xtask build --versoin 1.2.3`")).is_some());
    assert!(check(&one("cargo xtask report --markdwn >> \"$GITHUB_STEP_SUMMARY\"")).is_some());
    assert!(calls("the cargo xtask's flags").is_empty());
}

/// A word of 7 to 40 hexadecimal characters with both a digit and a letter: a commit id.
fn commit_ids(text: &str) -> Vec<&str> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| (7..=40).contains(&w.len()) && w.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()))
        .filter(|w| w.chars().any(|c| c.is_ascii_digit()) && w.chars().any(|c| c.is_ascii_alphabetic()))
        .collect()
}

#[test]
fn the_readme_and_docs_name_no_commit() {
    assert_eq!(commit_ids("fixed in e6926bd, see 8edd2d8's files; sha256 abc; decade 2026"), ["e6926bd", "8edd2d8"]);
    let mut found = Vec::new();
    for (path, text) in manuals() {
        for (n, line) in text.lines().enumerate() {
            for id in commit_ids(line) {
                found.push(format!("{path}:{}: {id}", n + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "commit ids in README.md or docs/ (git keeps history; say what is true today):\n{}",
        found.join("\n")
    );
}
