//! One subcommand's `--help`, made from the table: usage, what it does, its arguments and flags
//! wrapped to 100 columns, then its examples.

use std::fmt::Write as _;

use super::{Command, Flag};

/// The widest a help line grows: text is wrapped to fit 100 columns.
pub(crate) const COLUMNS: usize = 100;

/// `text` broken at spaces into lines of at most `COLUMNS`, the first after `first` (already
/// written), the rest indented by `indent` spaces. A word longer than a line stays whole.
pub(super) fn wrap(text: &str, first: usize, indent: usize) -> String {
    let mut out = String::new();
    let mut used = first;
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 && used + 1 + word.len() > COLUMNS {
            let _ = write!(out, "\n{:indent$}", "");
            used = indent;
        } else if i > 0 {
            out.push(' ');
            used += 1;
        }
        out.push_str(word);
        used += word.len();
    }
    out
}

/// One subcommand's help: usage, what it does, its arguments and flags, then examples.
pub(crate) fn help(command: &Command) -> String {
    let mut usage = format!("cargo xtask {}", command.name);
    if !command.flags.is_empty() {
        usage.push_str(" [FLAGS]");
    }
    if let Some(p) = &command.positional {
        let _ = write!(usage, " [{}{}]", p.name, if p.repeated { "..." } else { "" });
    }
    let mut out = format!("Usage: {usage}\n\n{}\n", wrap(command.about, 0, 0));
    if let Some(p) = &command.positional {
        let lead = format!("  {}  ", p.name);
        let _ = write!(out, "\nArguments:\n{lead}{}\n", wrap(p.help, lead.len(), lead.len()));
    }
    let flags: Vec<&Flag> = command.flags.iter().flat_map(|g| g.iter()).collect();
    if !flags.is_empty() {
        let shown = |f: &Flag| {
            let short = f.short.map(|c| format!("-{c}, ")).unwrap_or_default();
            match f.value {
                Some(v) => format!("{short}--{} {v}", f.long),
                None => format!("{short}--{}", f.long),
            }
        };
        let width = flags.iter().map(|f| shown(f).len()).max().unwrap_or(0);
        out.push_str("\nFlags:\n");
        for f in flags {
            let lead = format!("  {:width$}  ", shown(f));
            let _ = writeln!(out, "{lead}{}", wrap(f.help, lead.len(), lead.len()));
        }
    }
    out.push_str("\nExamples:\n");
    for e in command.examples {
        let _ = writeln!(out, "  {e}");
    }
    out
}
