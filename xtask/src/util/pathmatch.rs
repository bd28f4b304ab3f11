//! Paths matched as BuildKit matches them: `.dockerignore` read as BuildKit reads it, patterns relative to the context, `**` for any number of
//! folders, `!` to bring a match back, the last matching line winning, and a matched folder
//! taking everything under it.

/// One line of the file: its parts split on `/`, and whether it brings a match back.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pattern {
    parts: Vec<String>,
    negated: bool,
}

/// The patterns of one `.dockerignore`, in file order.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ignore {
    patterns: Vec<Pattern>,
}

impl Ignore {
    /// Reads the file's text: comments and blank lines skipped, each path cleaned as BuildKit
    /// does (a leading `/` or `./` and a trailing `/` mean nothing).
    pub(crate) fn parse(text: &str) -> Ignore {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (negated, body) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let parts: Vec<String> =
                body.split('/').filter(|p| !p.is_empty() && *p != ".").map(str::to_string).collect();
            if !parts.is_empty() {
                patterns.push(Pattern { parts, negated });
            }
        }
        Ignore { patterns }
    }

    /// Whether the path (relative, `/`-separated) is left out of the context: the last pattern
    /// that matches it or one of its folders decides.
    pub(crate) fn excludes(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').collect();
        let mut out = false;
        for p in &self.patterns {
            let hit = (1..=parts.len()).any(|n| matches(&p.parts, &parts[..n]));
            if hit {
                out = !p.negated;
            }
        }
        out
    }

    /// Whether a left-out folder must still be walked: a `!` line may bring back something
    /// below it. Without this, a folder such as `node_modules` would be read file by file.
    pub(crate) fn may_bring_back_below(&self, dir: &str) -> bool {
        let parts: Vec<&str> = dir.split('/').collect();
        self.patterns.iter().filter(|p| p.negated).any(|p| prefix_may_match(&p.parts, &parts))
    }
}

/// Whether a `COPY` source or bind-mount `source` (relative to the context, with `*`, `?` and
/// `[set]`) takes the path: the pattern names it, or a folder above it.
pub(crate) fn source_takes(source: &str, path: &str) -> bool {
    let pat: Vec<String> = source.split('/').filter(|p| !p.is_empty() && *p != ".").map(str::to_string).collect();
    if pat.is_empty() {
        return true;
    }
    let parts: Vec<&str> = path.split('/').collect();
    (1..=parts.len()).any(|n| matches(&pat, &parts[..n]))
}

/// Whether the pattern's parts match the path's parts exactly, `**` standing for any number.
fn matches(pat: &[String], path: &[&str]) -> bool {
    match pat.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => (0..=path.len()).any(|skip| matches(rest, &path[skip..])),
        Some((first, rest)) => path.split_first().is_some_and(|(p, more)| glob(first, p) && matches(rest, more)),
    }
}

/// Whether some path below the folder `dir` could match the pattern.
fn prefix_may_match(pat: &[String], dir: &[&str]) -> bool {
    match (pat.split_first(), dir.split_first()) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some((first, _)), Some(_)) if first == "**" => true,
        (Some((first, rest)), Some((d, more))) => glob(first, d) && prefix_may_match(rest, more),
    }
}

/// One path part against one pattern part: `*`, `?`, `[set]` (with `^` or `!` and ranges) and
/// `\` escapes, none of them crossing a `/`.
fn glob(pat: &str, name: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob_at(&p, &n)
}

fn glob_at(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len()).any(|k| glob_at(&p[1..], &n[k..])),
        Some('?') => !n.is_empty() && glob_at(&p[1..], &n[1..]),
        Some('[') => match n.first().and_then(|c| class(&p[1..], *c)) {
            Some((hit, used)) => hit && glob_at(&p[1 + used..], &n[1..]),
            None => false,
        },
        Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && glob_at(&p[2..], &n[1..]),
        Some(c) => n.first() == Some(c) && glob_at(&p[1..], &n[1..]),
    }
}

/// A `[...]` class after its `[` against one character: whether it matches, and how many
/// pattern characters the class took (its `]` included); none when it is not closed.
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let negated = matches!(p.first(), Some('^') | Some('!'));
    let start = usize::from(negated);
    let close = p.iter().skip(start + 1).position(|c| *c == ']')? + start + 1;
    let set = &p[start..close];
    let mut i = 0;
    let mut hit = false;
    while i < set.len() {
        if i + 2 < set.len() && set[i + 1] == '-' {
            hit |= set[i] <= c && c <= set[i + 2];
            i += 3;
        } else {
            hit |= set[i] == c;
            i += 1;
        }
    }
    Some((hit != negated, close + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_file_keeps_only_the_requirements_and_the_app() {
        let text = std::fs::read_to_string(crate::util::paths::project_root().join("backend/.dockerignore")).unwrap();
        let i = Ignore::parse(&text);
        for kept in ["requirements.txt", "app/main.py", "app/rules/x.py"] {
            assert!(!i.excludes(kept), "{kept}");
        }
        for gone in ["Dockerfile", "tests/test_x.py", "app/.env", "app/__pycache__/m.pyc", "app/k.pem", "README.md"] {
            assert!(i.excludes(gone), "{gone}");
        }
        assert!(i.may_bring_back_below("app") && !i.may_bring_back_below("tests"));
    }

    #[test]
    fn double_star_negation_and_folders() {
        let i = Ignore::parse("# a comment\n\n**/node_modules\n/build/\n*.log\n!keep.log\ndocs/**/*.md\n");
        assert!(i.excludes("node_modules/a/b.js") && i.excludes("web/node_modules/x"));
        assert!(i.excludes("build/out.js") && !i.excludes("src/build/out.js"), "a bare name is at the top only");
        assert!(i.excludes("a.log") && !i.excludes("keep.log") && !i.excludes("sub/a.log"));
        assert!(i.excludes("docs/a.md") && i.excludes("docs/x/y/a.md") && !i.excludes("docs/a.txt"));
        assert!(!i.may_bring_back_below("node_modules"));
    }

    #[test]
    fn a_source_takes_the_files_below_it() {
        assert!(source_takes(".", "a/b.txt") && source_takes("./", "x"));
        assert!(source_takes("app", "app/main.py") && source_takes("app/", "app/x/y.py"));
        assert!(!source_takes("app", "apps/main.py") && !source_takes("package.json", "package-lock.json"));
        assert!(source_takes("*.json", "package.json") && !source_takes("*.json", "sub/package.json"));
    }

    #[test]
    fn the_last_matching_line_wins_and_classes_match_one_character() {
        let i = Ignore::parse("*.py[cod]\n!app/\n**/.env*\nfile?.txt\n[!a]x\n");
        assert!(i.excludes("m.pyc") && i.excludes("m.pyo") && !i.excludes("m.py"));
        assert!(i.excludes("app/.env.local"), "a later exclusion beats the earlier `!`");
        assert!(i.excludes("file1.txt") && !i.excludes("file10.txt"));
        assert!(i.excludes("bx") && !i.excludes("ax"));
    }
}
