//! The shape of `xtask/src`: folders that each use only those below them, no cycle between
//! modules, and files and functions small enough to read. Read from the sources as text.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The floors from the top down. A module may use its own folder and any folder below its own.
pub const FLOORS: [&str; 9] = ["commands", "build", "cache", "images", "report", "engine", "settings", "flags", "util"];
pub const MAX_FILE_LINES: usize = 450;
pub const MAX_FN_LINES: usize = 80;

/// Every module of the crate (`build::plan`, `util`, …) with its source text, test modules left out.
pub fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut segs: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
            if segs.last().is_some_and(|s| s == "mod") {
                segs.pop();
            }
            let name = segs.join("::");
            if name == "lib" || name == "main" || name.ends_with("_tests") {
                continue;
            }
            out.insert(name, without_tests(&std::fs::read_to_string(&path).unwrap()));
        }
    }
    out
}

/// The text before the file's test module, with line comments dropped.
fn without_tests(text: &str) -> String {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    code.lines().map(|l| l.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

/// The modules each module names through `crate::…`, `super::…` or a `use` of its own child.
pub fn edges(mods: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for (name, text) in mods {
        let here: Vec<&str> = name.split("::").collect();
        let parent = &here[..here.len() - 1];
        let mut deps = BTreeSet::new();
        for (anchor, base) in [("crate::", Vec::new()), ("super::", parent.to_vec()), ("self::", here.clone())] {
            for path in paths_after(text, anchor) {
                for full in expand(&path) {
                    let mut segs: Vec<&str> = base.clone();
                    segs.extend(full.split("::").filter(|s| !s.is_empty() && *s != "self"));
                    if let Some(m) = longest_module(mods, &segs) {
                        if m != *name {
                            deps.insert(m);
                        }
                    }
                }
            }
        }
        out.insert(name.clone(), deps);
    }
    out
}

/// The path text after each occurrence of `anchor`: `a::b::{c, d::e}`.
fn paths_after(text: &str, anchor: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices(anchor) {
        if text[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &text[i + anchor.len()..];
        let mut depth = 0;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '{' => depth += 1,
                    '}' if depth > 0 => depth -= 1,
                    _ => {}
                }
                depth == 0 && !(c.is_alphanumeric() || c == '_' || c == ':' || c == '}')
            })
            .map_or(rest.len(), |(j, _)| j);
        out.push(rest[..end].to_string());
    }
    out
}

/// `a::{b, c::d}` as `a::b` and `a::c::d` (one level of braces is all rustfmt writes here).
fn expand(path: &str) -> Vec<String> {
    match path.split_once('{') {
        None => vec![path.to_string()],
        Some((head, tail)) => tail
            .trim_end_matches('}')
            .split(',')
            .map(|item| format!("{head}{}", item.split_whitespace().next().unwrap_or_default()))
            .collect(),
    }
}

fn longest_module(mods: &BTreeMap<String, String>, segs: &[&str]) -> Option<String> {
    (1..=segs.len()).rev().map(|n| segs[..n].join("::")).find(|m| mods.contains_key(m))
}

fn floor(module: &str) -> usize {
    let top = module.split("::").next().unwrap_or_default();
    FLOORS.iter().position(|f| *f == top).unwrap_or_else(|| panic!("module {module} is in no floor of FLOORS"))
}

/// Each use of a folder above the user's own, as `user -> used`.
pub fn upward(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut out = Vec::new();
    for (user, deps) in edges {
        for used in deps {
            if floor(used) < floor(user) {
                out.push(format!("{user} -> {used}"));
            }
        }
    }
    out
}

/// The groups of modules that reach each other (strongly connected, more than one module).
pub fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reach = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(m) = todo.pop() {
            for d in edges.get(&m).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> = edges.keys().map(|m| (m, reach(m))).collect();
    let mut out: Vec<Vec<String>> = Vec::new();
    for (m, r) in &reaches {
        if !r.contains(*m) || out.iter().any(|c| c.contains(m)) {
            continue;
        }
        let group: Vec<String> =
            r.iter().filter(|o| reaches.get(o).is_some_and(|back| back.contains(*m))).cloned().collect();
        out.push(group);
    }
    out
}

/// Functions longer than the limit, as `NAME (N lines)`: a function ends at the first line that
/// is its opening line's indentation followed by `}` (rustfmt's layout).
pub fn long_functions(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        let is_fn = ["fn ", "pub fn ", "pub(crate) fn ", "pub(super) fn ", "const fn ", "pub const fn "]
            .iter()
            .any(|p| body.starts_with(p));
        if !is_fn || body.ends_with(';') {
            continue;
        }
        let close = format!("{indent}}}");
        let Some(len) = lines[i + 1..].iter().position(|l| *l == close) else { continue };
        if len + 2 > MAX_FN_LINES {
            let name = body.split("fn ").nth(1).unwrap_or_default().split(['(', '<']).next().unwrap_or_default();
            out.push(format!("{name} ({} lines)", len + 2));
        }
    }
    out
}

#[cfg(test)]
mod checks_catch_what_they_are_for {
    use super::*;

    fn graph(pairs: &[(&str, &str)]) -> BTreeMap<String, BTreeSet<String>> {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in pairs {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    }

    #[test]
    fn an_import_up_the_stack_is_found() {
        assert_eq!(upward(&graph(&[("util::tar", "build::plan")])), ["util::tar -> build::plan"]);
        assert!(upward(&graph(&[("build::plan", "util::tar"), ("build::plan", "build::fit")])).is_empty());
    }

    #[test]
    fn a_cycle_is_found_and_a_chain_is_not() {
        let cyc = cycles(&graph(&[("report::a", "report::b"), ("report::b", "report::c"), ("report::c", "report::a")]));
        assert_eq!(cyc, [vec!["report::a".to_string(), "report::b".into(), "report::c".into()]]);
        assert!(cycles(&graph(&[("report::a", "report::b"), ("report::b", "report::c")])).is_empty());
    }

    #[test]
    fn uses_are_read_through_braces_super_and_self() {
        let mut mods = BTreeMap::new();
        mods.insert("build".to_string(), "pub mod plan;\nuse self::plan::Plan;".to_string());
        mods.insert(
            "build::plan".to_string(),
            "use crate::{util::tar, images::bake::Defaults};\nuse super::fit;".into(),
        );
        mods.insert("build::fit".to_string(), String::new());
        mods.insert("util::tar".to_string(), String::new());
        mods.insert("images::bake".to_string(), String::new());
        let e = edges(&mods);
        assert_eq!(e["build::plan"], ["build::fit", "images::bake", "util::tar"].map(String::from).into());
        assert_eq!(e["build"], ["build::plan".to_string()].into());
    }

    #[test]
    fn a_long_function_is_found() {
        let long = format!("fn big() {{\n{}}}\nfn small() {{\n}}\n", "    x();\n".repeat(MAX_FN_LINES));
        assert_eq!(long_functions(&long), [format!("big ({} lines)", MAX_FN_LINES + 2)]);
    }
}
