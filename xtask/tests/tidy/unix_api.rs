//! Finds Unix-only APIs outside `#[cfg(unix)]` code, so the xtask keeps compiling on Windows
//! (where no standard library for it can be had on this project's machines to try).
//!
//! A small scanner, not a parser: comments and literals are blanked, then each `#[cfg(…)]` whose
//! condition implies Unix gates the item after it (to its `;` or its closing brace), a
//! `#![cfg(…)]` gates its whole file, and a gated `mod name;` gates that module's files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Names only Unix has. (`CommandExt`, `MetadataExt` and the like exist on Windows too, under
/// another path: the `os::unix` / `unix::` paths they are imported by are what gives them away.)
const UNIX_ONLY: &[&str] = &[
    "os::unix",
    "unix::fs",
    "unix::net",
    "unix::process",
    "unix::io",
    "unix::prelude",
    "os::fd",
    "libc::",
    "signal_hook",
    "UnixStream",
    "UnixListener",
    "UnixDatagram",
    "PermissionsExt",
    "AsRawFd",
    "FromRawFd",
    "nix::",
];

/// The source with comments and the insides of string and char literals replaced by spaces
/// (newlines kept), so that offsets and line numbers stay those of the original.
pub fn blank(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let mut i = 0;
    let clear = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to.min(b.len())] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let end = src[i..].find('\n').map_or(b.len(), |n| i + n);
                clear(&mut out, i, end);
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let (mut depth, mut j) = (1, i + 2);
                while j < b.len() && depth > 0 {
                    if b[j..].starts_with(b"/*") {
                        depth += 1;
                        j += 2;
                    } else if b[j..].starts_with(b"*/") {
                        depth -= 1;
                        j += 2;
                    } else {
                        j += 1;
                    }
                }
                clear(&mut out, i, j);
                i = j;
            }
            b'r' if (i == 0 || !is_ident(b[i - 1])) && matches!(b.get(i + 1), Some(b'"' | b'#')) => {
                let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
                if b.get(i + 1 + hashes) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close = format!("\"{}", "#".repeat(hashes));
                let start = i + 2 + hashes;
                let end = src[start..].find(&close).map_or(b.len(), |n| start + n);
                clear(&mut out, start, end);
                i = end + close.len();
            }
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                clear(&mut out, i + 1, j);
                i = j + 1;
            }
            b'\'' => {
                // A char literal ('x', '\n', '\u{..}'), or else a lifetime ('a), left alone.
                let end = if b.get(i + 1) == Some(&b'\\') {
                    // The escaped character may itself be a quote: the closing one comes after.
                    src.get(i + 3..).and_then(|r| r.find('\'')).map(|n| i + 3 + n)
                } else {
                    let len = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                    (b.get(i + 1 + len) == Some(&b'\'')).then_some(i + 1 + len)
                };
                match end {
                    Some(end) => {
                        clear(&mut out, i + 1, end);
                        i = end + 1;
                    }
                    None => i += 1,
                }
            }
            _ => i += 1,
        }
    }
    String::from_utf8(out).expect("only ASCII bytes were replaced")
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// True when a `cfg` condition holds only on Unix.
pub fn implies_unix(cond: &str) -> bool {
    let cond = cond.trim();
    if let Some(args) = cond.strip_prefix("all(").and_then(|r| r.strip_suffix(')')) {
        return split_args(args).iter().any(|a| implies_unix(a));
    }
    if let Some(args) = cond.strip_prefix("any(").and_then(|r| r.strip_suffix(')')) {
        let args = split_args(args);
        return !args.is_empty() && args.iter().all(|a| implies_unix(a));
    }
    if cond == "unix" {
        return true;
    }
    let Some((key, value)) = cond.split_once('=') else { return false };
    let value = value.trim().trim_matches('"');
    match key.trim() {
        "target_family" => value == "unix",
        "target_os" => {
            ["linux", "macos", "ios", "android", "freebsd", "netbsd", "openbsd", "dragonfly", "solaris", "illumos"]
                .contains(&value)
        }
        _ => false,
    }
}

fn split_args(args: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in args.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&args[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&args[start..]);
    parts.into_iter().map(str::trim).filter(|p| !p.is_empty()).collect()
}

/// What one file says: the byte ranges its Unix `cfg`s gate, whether the whole file is gated,
/// and the modules it declares (`mod name;`) under such a `cfg`.
#[derive(Debug, Default)]
pub struct Gates {
    pub ranges: Vec<(usize, usize)>,
    pub whole_file: bool,
    pub modules: Vec<String>,
}

pub fn gates(src: &str) -> Gates {
    let code = blank(src);
    let b = code.as_bytes();
    let mut gates = Gates::default();
    let mut from = 0;
    while let Some(n) = code[from..].find("#") {
        let at = from + n;
        from = at + 1;
        let inner = b.get(at + 1) == Some(&b'!');
        let open = at + 1 + usize::from(inner);
        if b.get(open) != Some(&b'[') {
            continue;
        }
        let Some(close) = matching(b, open) else { continue };
        // The condition is read from the original text: blanking emptied its strings.
        let attr = src[open + 1..close].trim();
        let Some(cond) = attr.strip_prefix("cfg").map(str::trim_start).and_then(|a| a.strip_prefix('(')) else {
            continue;
        };
        if !implies_unix(cond.strip_suffix(')').unwrap_or(cond)) {
            continue;
        }
        if inner {
            gates.whole_file = true;
            continue;
        }
        let end = item_end(b, close + 1);
        let item = code[close + 1..end].split_whitespace().collect::<Vec<_>>().join(" ");
        let item = item.strip_prefix("pub ").unwrap_or(&item);
        if let Some(name) = item.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
            gates.modules.push(name.trim().to_string());
        }
        gates.ranges.push((at, end));
    }
    gates
}

/// The index of the bracket closing the one at `open`.
fn matching(b: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, c) in b.iter().enumerate().skip(open) {
        match c {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Where the item starting at `from` (after its attribute) ends: just past its `;` or its
/// closing brace (and a `;` or an `else` branch that follows that brace).
fn item_end(b: &[u8], from: usize) -> usize {
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b';' => return i + 1,
            // Further attributes and argument lists are skipped whole.
            b'[' | b'(' => i = matching(b, i).map_or(b.len(), |c| c + 1),
            b'{' => {
                let close = matching(b, i).map_or(b.len(), |c| c + 1);
                let rest = std::str::from_utf8(&b[close..]).unwrap_or("").trim_start();
                if rest.starts_with(';') {
                    return close + (b.len() - close - rest.len()) + 1;
                }
                if rest.starts_with("else") {
                    i = close;
                    continue;
                }
                return close;
            }
            _ => i += 1,
        }
    }
    b.len()
}

/// Each use of a Unix-only name outside a gate: (line, name).
pub fn ungated_uses(src: &str, gates: &Gates) -> Vec<(usize, &'static str)> {
    if gates.whole_file {
        return Vec::new();
    }
    let code = blank(src);
    let mut found = Vec::new();
    for name in UNIX_ONLY {
        for (at, _) in code.match_indices(name) {
            let word_start = at == 0 || !is_ident(code.as_bytes()[at - 1]);
            if word_start && !gates.ranges.iter().any(|(a, b)| (*a..*b).contains(&at)) {
                found.push((code[..at].matches('\n').count() + 1, *name));
            }
        }
    }
    found.sort();
    found
}

/// Every `.rs` file under `dir`.
pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The folder a file's submodules live in (`a.rs` → `a/`; `main.rs`, `lib.rs`, `mod.rs` → their own).
fn module_dir(file: &Path) -> PathBuf {
    let parent = file.parent().unwrap().to_path_buf();
    match file.file_stem().and_then(|s| s.to_str()) {
        Some("main" | "lib" | "mod") => parent,
        Some(stem) => parent.join(stem),
        None => parent,
    }
}

/// The files of modules declared under a Unix gate (and of their submodules).
pub fn gated_module_files(files: &[(PathBuf, Gates)]) -> BTreeSet<PathBuf> {
    let mut gated_dirs = Vec::new();
    let mut gated = BTreeSet::new();
    for (file, g) in files {
        for name in &g.modules {
            let dir = module_dir(file);
            gated.insert(dir.join(format!("{name}.rs")));
            gated_dirs.push(dir.join(name));
        }
    }
    for (file, _) in files {
        if gated_dirs.iter().any(|d| file.starts_with(d)) {
            gated.insert(file.clone());
        }
    }
    gated
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_that_hold_only_on_unix_are_recognised() {
        for yes in ["unix", "target_os = \"linux\"", "all(test, unix)", "any(target_os = \"macos\", unix)"] {
            assert!(implies_unix(yes), "{yes}");
        }
        for no in ["test", "not(unix)", "windows", "any(unix, windows)", "all(test, not(unix))", "any()"] {
            assert!(!implies_unix(no), "{no}");
        }
    }

    #[test]
    fn uses_inside_a_gated_item_pass_and_others_are_found_by_line() {
        let src = r#"//! Mentions std::os::unix in a comment only.
use std::path::Path;
#[cfg(unix)]
use std::os::unix::fs::symlink;
#[cfg(unix)]
fn kill(pid: i32) {
    let text = "libc::kill in a string";
    unsafe { libc::kill(pid, 9) };
}
#[cfg(not(unix))]
fn kill(_pid: i32) { libc::nothing(); }
fn stop() { let c = 'x'; let _ = std::os::unix::process::CommandExt::process_group; }
#[cfg(target_os = "linux")]
mod linux { fn f() { let _ = UnixStream::connect("/x"); } }
#[cfg(unix)] let x = if a { libc::A } else { libc::B };
let y = libc::C;
"#;
        let g = gates(src);
        assert_eq!(
            ungated_uses(src, &g),
            vec![(11, "libc::"), (12, "os::unix"), (12, "unix::process"), (16, "libc::")]
        );
        assert!(ungated_uses(&format!("#![cfg(unix)]\n{src}"), &gates(&format!("#![cfg(unix)]\n{src}"))).is_empty());
    }

    #[test]
    fn a_module_declared_under_a_unix_gate_gates_its_files() {
        let src = "mod common;\n#[cfg(unix)]\nmod signals;\n#[cfg(target_os = \"linux\")] pub mod engine;\n";
        let g = gates(src);
        assert_eq!(g.modules, ["signals", "engine"]);
        let files = vec![
            (PathBuf::from("src/main.rs"), g),
            (PathBuf::from("src/engine/private.rs"), Gates::default()),
            (PathBuf::from("src/common.rs"), Gates::default()),
        ];
        let gated = gated_module_files(&files);
        assert!(gated.contains(Path::new("src/signals.rs")) && gated.contains(Path::new("src/engine/private.rs")));
        assert!(!gated.contains(Path::new("src/common.rs")));
    }

    #[test]
    fn raw_strings_lifetimes_and_escapes_do_not_confuse_the_blanking() {
        let src = "fn f<'a>(x: &'a str) -> char { let _ = r#\"libc::x \"q\" \"#; let _ = \"\\\"libc::\"; '\\'' }";
        let code = blank(src);
        assert_eq!(code.len(), src.len());
        assert!(!code.contains("libc::") && code.contains("<'a>") && code.contains("&'a str"), "{code}");
    }
}
