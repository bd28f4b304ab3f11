//! `docs/benchmarks.md`: the bench's own tables, one section per bench and engine, rewritten in
//! place by each `cargo xtask bench` so that the published figures are always a bench's output.

use anyhow::{Context, Result};

use crate::util::paths::{self, write_atomic};

const HEAD: &str = "# Benchmarks\n\n\
Written by `cargo xtask bench` and `cargo xtask bench --second-engine`: each section below is the\n\
output of the last run of one bench on one engine, with the machine and the date it ran on. Do not\n\
edit it by hand: run the bench again, and it replaces its own section and keeps the others.\n";

fn open_marker(key: &str) -> String {
    format!("<!-- bench: {key} -->")
}

fn close_marker(key: &str) -> String {
    format!("<!-- /bench: {key} -->")
}

/// The document with the section `key` replaced by `title` and `body` (appended when new); other
/// sections keep their text and order. A document without the head gets it.
pub(crate) fn merge(existing: &str, key: &str, title: &str, body: &str) -> String {
    let section = format!("{}\n## {title}\n\n{}\n{}\n", open_marker(key), body.trim_end(), close_marker(key));
    let mut doc = if existing.starts_with("# Benchmarks") { existing.to_string() } else { HEAD.to_string() };
    let (open, close) = (open_marker(key), close_marker(key));
    match (doc.find(&open), doc.find(&close)) {
        (Some(a), Some(b)) if b > a => {
            let end = b + close.len() + usize::from(doc[b + close.len()..].starts_with('\n'));
            doc.replace_range(a..end, &section);
        }
        _ => {
            doc.truncate(doc.trim_end().len());
            doc.push_str("\n\n");
            doc.push_str(&section);
        }
    }
    doc
}

/// Replaces the section `key` of the repository's `docs/benchmarks.md`.
pub(crate) fn write(key: &str, title: &str, body: &str) -> Result<()> {
    let path = paths::project_root().join("docs/benchmarks.md");
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    write_atomic(&path, merge(&existing, key, title, body).as_bytes())?;
    eprintln!("bench: {} updated (section `{key}`)", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_is_replaced_in_place_and_others_are_kept() {
        let one = merge("", "bench current", "Builds on current", "| a | 1 s |\n");
        assert!(one.starts_with("# Benchmarks\n") && one.contains("## Builds on current\n\n| a | 1 s |\n<!-- /bench"));
        let two = merge(&one, "bench floor", "Builds on floor", "| a | 2 s |");
        let three = merge(&two, "bench current", "Builds on current", "| a | 3 s |");
        assert!(!three.contains("| a | 1 s |") && three.contains("| a | 3 s |") && three.contains("| a | 2 s |"));
        assert!(three.find("3 s").unwrap() < three.find("2 s").unwrap(), "the replaced section keeps its place");
        assert_eq!(merge(&three, "bench current", "Builds on current", "| a | 3 s |"), three, "idempotent");
        assert_eq!(three.matches("# Benchmarks").count(), 1);
    }
}
