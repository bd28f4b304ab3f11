//! Tests of the command line's conventions: `--version`, examples at the end of every help, the
//! 100-column listing, and the build input's old spelling.

use super::*;
use crate::flags::help::COLUMNS;

fn parsed(line: &str) -> Result<Parsed, String> {
    parse(&line.split_whitespace().map(String::from).collect::<Vec<_>>())
}

#[test]
fn version_and_v_print_the_xtask_s_own_version() {
    for line in ["--version", "-V"] {
        match parsed(line) {
            Ok(Parsed::Help(text)) => assert_eq!(text, format!("xtask {}\n", env!("CARGO_PKG_VERSION"))),
            other => panic!("`cargo xtask {line}` gave {other:?}"),
        }
    }
}

/// The words of an example after `cargo xtask`, up to a shell operator or the end of `$(…)`.
fn example_words(example: &str) -> Vec<String> {
    let (_, rest) = example.split_once("cargo xtask ").unwrap_or_else(|| panic!("`{example}` runs no cargo xtask"));
    rest.split(')').next().unwrap().split_whitespace().take_while(|w| !w.starts_with(">")).map(String::from).collect()
}

#[test]
fn every_help_ends_with_one_to_three_examples_that_parse() {
    for c in COMMANDS {
        assert!((1..=3).contains(&c.examples.len()), "`{}` has {} examples (1 to 3)", c.name, c.examples.len());
        let text = help(c);
        let tail = &text[text.rfind("\nExamples:\n").unwrap_or_else(|| panic!("{} has no examples", c.name))..];
        assert_eq!(
            tail.lines().filter(|l| l.starts_with("  cargo") || l.starts_with("  eval")).count(),
            c.examples.len()
        );
        for e in c.examples {
            match parse(&example_words(e)) {
                Ok(Parsed::Run(a)) => assert_eq!(a.command.name, c.name, "`{e}`"),
                other => panic!("the example `{e}` of `{}` does not parse: {other:?}", c.name),
            }
        }
    }
}

#[test]
fn the_listing_and_every_help_fit_100_columns() {
    for line in overview().lines() {
        assert!(line.chars().count() <= COLUMNS, "listing line of {} columns: {line}", line.chars().count());
    }
    for c in COMMANDS {
        for line in help(c).lines() {
            // A single word longer than a line (a long example) is left whole.
            let one_word = !line.trim().contains(' ');
            assert!(
                one_word || line.chars().count() <= COLUMNS,
                "`{} --help` line of {} columns: {line}",
                c.name,
                line.len()
            );
        }
    }
}

#[test]
fn wrapping_keeps_every_word_and_indents_the_rest() {
    let text = "word ".repeat(40);
    let wrapped = wrap(text.trim_end(), 10, 10);
    assert_eq!(wrapped.split_whitespace().count(), 40);
    assert!(wrapped.lines().skip(1).all(|l| l.starts_with("          word")));
    assert!(wrapped.lines().next().unwrap().len() + 10 <= COLUMNS);
}

#[test]
fn the_old_spelling_of_the_build_input_is_taken_with_a_warning() {
    let Ok(Parsed::Run(a)) = parsed("build --version 1.2.3") else { panic!("`build --version 1.2.3` refused") };
    assert_eq!(a.value("release-version").as_deref(), Some("1.2.3"));
    assert!(a.warnings.iter().any(|w| w.contains("now --release-version")), "{:?}", a.warnings);
    let Ok(Parsed::Run(a)) = parsed("build --release-version 1.2.3") else { panic!() };
    assert!(a.warnings.is_empty());
    // Where no command takes the build input, `--version` is no flag at all.
    assert!(parsed("doctor --version").unwrap_err().contains("has no flag --version"));
}
