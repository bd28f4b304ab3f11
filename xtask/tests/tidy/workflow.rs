//! The GitHub workflows' hygiene: every action pinned by a full commit with its version in a
//! comment, each job with its own least permissions, and no `${{ }}` expression in a `run:` script.
//!
//! The files are read line by line (indentation is YAML's structure, and the workflows are
//! written plainly), so the checks need no YAML parser in the xtask's dependencies.

use super::root;

/// The write scopes a job may ask for, each with why it needs it. Anything else a job asks to
/// write fails the check: give the reason here when a new step really needs it.
const ALLOWED_WRITES: &[(&str, &str, &str)] = &[
    ("test", "packages", "writes the build cache to CACHE_REGISTRY"),
    ("release", "packages", "pushes the images, attestations and signatures"),
    ("release", "id-token", "the OIDC token keyless signing uses"),
];

/// Indentation and content of a line, with a sequence item's `- ` counted as indentation.
fn split(line: &str) -> (usize, &str) {
    let body = line.trim_start();
    let indent = line.len() - body.len();
    match body.strip_prefix("- ") {
        Some(rest) => (indent + 2, rest.trim_start()),
        None => (indent, body),
    }
}

/// The value of `key:` on this line's content, if the line is that key.
fn value<'a>(content: &'a str, key: &str) -> Option<&'a str> {
    content.strip_prefix(key)?.strip_prefix(':').map(str::trim)
}

/// `uses:` lines that are not a local action and not `OWNER/REPO[/PATH]@<40 hex> # vX...`.
fn pins(file: &str, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let Some(uses) = value(split(line).1, "uses") else { continue };
        if uses.starts_with("./") {
            continue;
        }
        let (reference, comment) = uses.split_once('#').map_or((uses, ""), |(r, c)| (r.trim(), c.trim()));
        let commit = reference.rsplit_once('@').map_or("", |(_, c)| c);
        let full = commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        let versioned = comment.strip_prefix('v').is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()));
        if !full || !versioned || reference.starts_with("docker://") {
            problems.push(format!(
                "{file}:{}: `{uses}` is not pinned by a full commit with its version: write `OWNER/REPO@<the release's 40-hex commit> # vX.Y.Z` (a tag can be moved; a commit cannot)",
                n + 1
            ));
        }
    }
    problems
}

/// A `run:` script holding `${{`: GitHub pastes the expression's value into the script before the
/// shell reads it, so a branch name or PR title can become a command. Values go through `env:`.
fn run_expressions(file: &str, text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut problems = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let (indent, content) = split(lines[i]);
        let Some(inline) = value(content, "run") else {
            i += 1;
            continue;
        };
        let start = i;
        let mut script = vec![inline];
        i += 1;
        while i < lines.len()
            && (lines[i].trim().is_empty() || split(lines[i]).0 > indent && !lines[i].trim_start().starts_with("- "))
        {
            script.push(lines[i]);
            i += 1;
        }
        if script.iter().any(|l| l.contains("${{")) {
            problems.push(format!(
                "{file}:{}: a `run:` script holds a `${{{{ }}}}` expression: set it in the step's `env:` and use \"$NAME\" in the script",
                start + 1
            ));
        }
    }
    problems
}

/// A job's permissions as `(scope, level)` pairs (`*` for `read-all` and the like).
type Scopes = Vec<(String, String)>;

/// Each job's `permissions:` (inline or as a block of `scope: level`), or None when it has none.
fn job_permissions(text: &str) -> Vec<(String, Option<Scopes>)> {
    let mut jobs: Vec<(String, Option<Scopes>)> = Vec::new();
    let mut in_jobs = false;
    let mut block: Option<usize> = None;
    for line in text.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')) {
        let (indent, content) = split(line);
        if indent == 0 {
            in_jobs = content == "jobs:";
            continue;
        }
        if !in_jobs {
            continue;
        }
        if indent == 2 && content.ends_with(':') {
            jobs.push((content.trim_end_matches(':').to_string(), None));
            block = None;
            continue;
        }
        let Some((_, perms)) = jobs.last_mut() else { continue };
        if indent == 4 {
            block = None;
            if let Some(v) = value(content, "permissions") {
                *perms = Some(match v {
                    "" => {
                        block = Some(6);
                        Vec::new()
                    }
                    "{}" => Vec::new(),
                    all => vec![("*".to_string(), all.trim_end_matches("-all").to_string())],
                });
            }
        } else if block == Some(indent) {
            if let (Some(p), Some((scope, level))) = (perms.as_mut(), content.split_once(':')) {
                p.push((scope.trim().to_string(), level.trim().to_string()));
            }
        }
    }
    jobs
}

/// The workflow's own default must grant nothing; each job names what it needs, and writes only
/// what [`ALLOWED_WRITES`] gives a reason for.
fn permissions(file: &str, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let top = text.lines().find_map(|l| value(l, "permissions"));
    if !matches!(top, Some("{}")) {
        problems.push(format!(
            "{file}: the workflow's own `permissions:` must be `{{}}` (each job then names the least it needs)"
        ));
    }
    for (job, perms) in job_permissions(text) {
        let Some(perms) = perms else {
            problems.push(format!("{file}: job `{job}` names no `permissions:`: give it the least it needs (`contents: read` to check out)"));
            continue;
        };
        for (scope, level) in perms.iter().filter(|(_, l)| l != "read" && l != "none") {
            if !ALLOWED_WRITES.iter().any(|(j, s, _)| *j == job && s == scope) {
                problems.push(format!(
                    "{file}: job `{job}` asks for `{scope}: {level}`: drop it, or add it to ALLOWED_WRITES in xtask/tests/tidy/workflow.rs with the reason"
                ));
            }
        }
    }
    problems
}

/// Every problem of one workflow (or composite action) file.
fn problems(file: &str, text: &str) -> Vec<String> {
    let mut all = pins(file, text);
    all.extend(run_expressions(file, text));
    if file.contains("workflows/") {
        all.extend(permissions(file, text));
    }
    all
}

/// The workflows and the repository's own composite actions, as (path, text).
fn files() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for dir in [".github/workflows", ".github/actions"] {
        let mut stack = vec![root().join(dir)];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
                    let shown = path.strip_prefix(root()).unwrap().display().to_string();
                    out.push((shown, std::fs::read_to_string(&path).unwrap()));
                }
            }
        }
    }
    out
}

#[test]
fn workflows_pin_every_action_keep_least_permissions_and_no_expression_in_scripts() {
    let files = files();
    assert!(files.iter().any(|(f, _)| f.ends_with("ci.yml")), "no .github/workflows/ci.yml found");
    let all: Vec<String> = files.iter().flat_map(|(f, t)| problems(f, t)).collect();
    assert!(all.is_empty(), "the workflows break their conventions:\n{}", all.join("\n"));
}

fn ci() -> String {
    std::fs::read_to_string(root().join(".github/workflows/ci.yml")).unwrap()
}

#[test]
fn a_planted_unpinned_action_fails_the_check() {
    let text = ci();
    let pinned = text.lines().find(|l| l.contains("uses: actions/checkout@")).expect("ci.yml checks out").trim();
    for planted in ["uses: actions/checkout@v7", "uses: actions/checkout@3d3c42e # v7.0.1"] {
        let bad = text.replacen(pinned.trim_start_matches("- "), planted, 1);
        let found = problems(".github/workflows/ci.yml", &bad);
        assert_eq!(found.len(), 1, "{planted}: {found:?}");
        assert!(
            found[0].contains("not pinned by a full commit") && found[0].contains(planted.trim_start_matches("uses: ")),
            "{found:?}"
        );
    }
    let no_comment = text.replacen(" # v7.0.1", "", 1);
    assert_eq!(pins("ci.yml", &no_comment).len(), 1, "a commit without its version in a comment");
}

#[test]
fn a_planted_expression_in_a_script_or_a_job_without_least_permissions_fails() {
    let text = ci();
    let bad = text.replacen("run: cargo xtask doctor", "run: echo \"${{ github.event.pull_request.title }}\"", 1);
    let found = problems("ci.yml", &bad);
    assert!(found.len() == 1 && found[0].contains("`run:` script holds"), "{found:?}");
    let block = "      - name: A recorded build's report\n        run: |\n          echo ok\n          echo ${{ github.head_ref }}\n";
    assert_eq!(run_expressions("x.yml", block).len(), 1, "an expression on a later line of a block");

    let job =
        "permissions: {}\njobs:\n  a:\n    runs-on: x\n    steps: []\n  b:\n    permissions:\n      contents: write\n";
    let found = permissions("x.yml", job);
    assert!(found.iter().any(|p| p.contains("job `a` names no")), "{found:?}");
    assert!(found.iter().any(|p| p.contains("job `b` asks for `contents: write`")), "{found:?}");
    let all = permissions("x.yml", "permissions: write-all\njobs:\n  release:\n    permissions: write-all\n");
    assert_eq!(all.len(), 2, "{all:?}");
    let allowed = permissions("x.yml", "permissions: {}\njobs:\n  release:\n    permissions:\n      id-token: write\n");
    assert!(allowed.is_empty(), "{allowed:?}");
}
