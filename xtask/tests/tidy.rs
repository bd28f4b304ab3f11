//! Tidy: the repository agrees with itself. No engine needed; each failure says what to change.

use std::path::{Path, PathBuf};

#[path = "tidy/architecture.rs"]
mod architecture;
#[path = "tidy/unix_api.rs"]
mod unix_api;
#[path = "tidy/workflow.rs"]
mod workflow;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// The pin as the xtask reads it (package.json's packageManager).
fn npm_pin() -> String {
    xtask::images::meta::npm_pin().unwrap_or_else(|e| panic!("{e:#}"))
}

/// The default of `variable "NAME"` in the bake file, read as the xtask reads it.
fn bake_default(name: &str) -> String {
    xtask::images::bake::variable_default(&read("docker-bake.hcl"), name)
        .unwrap_or_else(|| panic!("docker-bake.hcl has no default for variable {name}"))
}

#[test]
fn npm_pin_agrees_everywhere() {
    let pin = npm_pin();
    let fix = "package.json's packageManager is the pin: change the other copies to it";
    assert_eq!(bake_default("NPM_VERSION"), pin, "docker-bake.hcl NPM_VERSION default: {fix}");
    assert!(
        read("frontend/Dockerfile").contains(&format!("ARG NPM_VERSION={pin}\n")),
        "frontend/Dockerfile ARG NPM_VERSION: {fix}"
    );
    assert!(
        read("docker-compose.yml").contains(&format!("${{NPM_VERSION:-{pin}}}")),
        "docker-compose.yml NPM_VERSION default: {fix}"
    );
    let lock: serde_json::Value = serde_json::from_str(&read("frontend/package-lock.json")).unwrap();
    assert_eq!(
        lock["lockfileVersion"], 3,
        "package-lock.json must be made by npm {pin}: `cd frontend && npx -y npm@{pin} install`"
    );
}

#[test]
fn base_images_agree_with_the_bake_file() {
    for (var, dockerfile) in [("PYTHON_IMAGE", "backend/Dockerfile"), ("NODE_IMAGE", "frontend/Dockerfile")] {
        let image = bake_default(var);
        let fix = format!("docker-bake.hcl's {var} default ({image}) is the source: change the other copies to it");
        assert!(read(dockerfile).contains(&format!("ARG {var}={image}\n")), "{dockerfile} ARG {var}: {fix}");
        assert!(
            read("docker-compose.yml").contains(&format!("${{{var}:-{image}}}")),
            "docker-compose.yml {var} default: {fix}"
        );
    }
}

#[test]
fn the_bench_s_dependency_stages_are_stages_of_the_dockerfiles() {
    let dockerfiles = read("backend/Dockerfile") + &read("frontend/Dockerfile");
    for stage in xtask::commands::bench::DEPENDENCY_STAGES {
        assert!(
            dockerfiles.lines().any(|l| l.starts_with("FROM ") && l.ends_with(&format!(" AS {stage}"))),
            "no Dockerfile has a stage `{stage}`: change bench::DEPENDENCY_STAGES to the stages that install dependencies"
        );
    }
}

#[test]
fn product_version_agrees_everywhere() {
    let cargo: serde_json::Value = basic_toml::from_str(&read("Cargo.toml")).unwrap();
    let version = cargo["workspace"]["metadata"]["contextcleanse"]["version"].as_str().unwrap().to_string();
    let pkg: serde_json::Value = serde_json::from_str(&read("frontend/package.json")).unwrap();
    assert_eq!(
        pkg["version"],
        version.as_str(),
        "frontend/package.json version: set it to {version} (Cargo.toml is the source)"
    );
}

#[test]
fn every_subcommand_is_in_the_readme_table() {
    let readme = read("README.md");
    let rows: Vec<&str> = readme.lines().filter(|l| l.starts_with("| ")).collect();
    // The engine's subcommands share one row (`engine up`, `down`, `status`, `env`).
    let names = flags::COMMANDS.iter().map(|c| c.name.split(' ').next().unwrap());
    for name in names {
        let named =
            |l: &&str| l.contains(&format!("`cargo xtask {name}`")) || l.contains(&format!("`cargo xtask {name} "));
        assert!(rows.iter().any(named), "README.md's command table lacks `cargo xtask {name}`: add it to a row");
    }
    assert!(
        readme.contains("cargo xtask build") && readme.contains("cargo xtask test"),
        "README.md shows the two commands"
    );
}

#[path = "tidy/docs.rs"]
mod docs;

#[test]
fn bake_groups_the_xtask_names_exist_and_all_lists_every_group() {
    let bake = read("docker-bake.hcl");
    let groups: Vec<String> = bake
        .lines()
        .filter_map(|l| l.strip_prefix("group \""))
        .map(|l| l.split('"').next().unwrap().to_string())
        .collect();
    for wanted in ["default", "development", "production", "multiplatform", "all"] {
        assert!(groups.iter().any(|g| g == wanted), "docker-bake.hcl lacks group \"{wanted}\" (the xtask builds it)");
    }
    let all = &bake[bake.find("group \"all\"").unwrap()..];
    let all = &all[..all.find('}').unwrap()];
    for g in groups.iter().filter(|g| *g != "all") {
        assert!(
            all.contains(&format!("\"{g}\"")),
            "group \"all\" must list group \"{g}\" (unknown-name errors list from it)"
        );
    }
}

#[test]
fn dockerfiles_keep_their_syntax_line_and_compose_binds_loopback_only() {
    for path in ["backend/Dockerfile", "frontend/Dockerfile"] {
        assert!(
            read(path).starts_with("# syntax=docker/dockerfile:1.7\n"),
            "{path} must start with # syntax=docker/dockerfile:1.7"
        );
        assert!(
            !read(path).contains("COPY --parents") && !read(path).contains("COPY --exclude"),
            "{path}: labs-only COPY flags"
        );
    }
    let compose = read("docker-compose.yml");
    let ports: Vec<&str> =
        compose.lines().map(str::trim).filter(|l| l.starts_with("- \"") && l.contains(':')).collect();
    assert!(!ports.is_empty());
    for p in ports {
        assert!(p.starts_with("- \"127.0.0.1:"), "docker-compose.yml publishes `{p}`: publish on 127.0.0.1 only");
    }
}

/// What must never reach a build context, at any depth (`**/` matches in every folder; a bare
/// name only at the context's top).
const SECRET_PATTERNS: [&str; 13] = [
    "**/.env*",
    "**/*.pem",
    "**/*.key",
    "**/*.p12",
    "**/.npmrc",
    "**/.pypirc",
    "**/.netrc",
    "**/secrets*",
    "**/id_rsa*",
    "**/.ssh",
    "**/.aws",
    "**/.docker",
    "**/.git",
];

#[test]
fn no_secret_can_reach_a_build_context_at_any_depth() {
    for ctx in ["backend", "frontend"] {
        let path = format!("{ctx}/.dockerignore");
        let ignore = read(&path);
        let lines: Vec<&str> = ignore.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
        let mut first = usize::MAX;
        for pattern in SECRET_PATTERNS {
            let at = lines
                .iter()
                .position(|l| *l == pattern)
                .unwrap_or_else(|| panic!("{path} lacks `{pattern}`: add that line below every `!` line"));
            first = first.min(at);
        }
        // The last matching line wins: a `!` line after the secret patterns could let one back in.
        // The one exception allowed is a committed example file, e.g. `!**/.env.example`.
        for l in &lines[first..] {
            if let Some(back) = l.strip_prefix('!') {
                let committed = std::process::Command::new("git")
                    .args(["ls-files", "--error-unmatch", &format!("{ctx}/{}", back.trim_start_matches("**/"))])
                    .current_dir(root())
                    .output()
                    .is_ok_and(|o| o.status.success());
                assert!(
                    committed && back.contains(".example"),
                    "{path}: `{l}` comes after the secret patterns and could let a secret back in: move it above them"
                );
            }
        }
    }
}

#[test]
fn images_run_as_numeric_users() {
    // Kubernetes' runAsNonRoot can only verify a numeric user; the names stay in /etc/passwd.
    for (path, user) in [("backend/Dockerfile", "1000:1000"), ("frontend/Dockerfile", "1001:1001")] {
        let text = read(path);
        let users: Vec<&str> = text.lines().filter_map(|l| l.trim().strip_prefix("USER ")).map(str::trim).collect();
        assert_eq!(users, [user], "{path}: the runtime stage must say `USER {user}` (ids, not names), and only once");
    }
}

#[test]
fn unix_only_apis_stay_behind_cfg_unix() {
    let dirs = ["xtask/src", "xtask/tests"].map(|d| root().join(d));
    let files: Vec<_> = dirs
        .iter()
        .flat_map(|d| unix_api::rust_files(d))
        .map(|f| {
            let gates = unix_api::gates(&std::fs::read_to_string(&f).unwrap());
            (f, gates)
        })
        .collect();
    let gated_files = unix_api::gated_module_files(&files);
    let mut found = Vec::new();
    for (file, gates) in files.iter().filter(|(f, _)| !gated_files.contains(f)) {
        let src = std::fs::read_to_string(file).unwrap();
        for (line, name) in unix_api::ungated_uses(&src, gates) {
            found.push(format!("{}:{line}: {name}", file.strip_prefix(root()).unwrap().display()));
        }
    }
    assert!(
        found.is_empty(),
        "Unix-only APIs outside #[cfg(unix)] code: the xtask would not compile on Windows. Call a function of \
         xtask/src/util/os.rs instead (add one there, with a #[cfg(unix)] body and one for elsewhere), or put the \
         item under #[cfg(unix)]:\n{}",
        found.join("\n")
    );
    let cargo: serde_json::Value = basic_toml::from_str(&read("xtask/Cargo.toml")).unwrap();
    for dep in ["libc", "signal-hook"] {
        assert!(
            cargo["dependencies"].get(dep).is_none(),
            "xtask/Cargo.toml: move {dep} to [target.'cfg(unix)'.dependencies] (it is Unix-only)"
        );
    }
}

/// The xtask's own command line, read from its flag definitions (not restated here).
use xtask::flags;

/// The argument vectors of every `cargo xtask ...` a workflow runs: the words after it up to the
/// end of the line, a shell operator or a comment, quotes removed. Comment lines are prose.
fn xtask_calls(workflow: &str) -> Vec<Vec<String>> {
    let mut calls = Vec::new();
    for line in workflow.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let mut rest = line;
        while let Some(at) = rest.find("cargo xtask") {
            rest = &rest[at + "cargo xtask".len()..];
            let words: Vec<String> = rest
                .split_whitespace()
                .take_while(|w| !["|", "||", "&&", ";", ">", ">>", "2>&1"].contains(w) && !w.starts_with('#'))
                .map(|w| w.trim_matches(['"', '\'']).to_string())
                .collect();
            calls.push(words);
        }
    }
    calls
}

fn parses(args: &[String]) -> Result<(), String> {
    flags::parse(args).map(|_| ())
}

#[test]
fn every_xtask_command_the_workflows_run_exists() {
    let dir = root().join(".github/workflows");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for call in xtask_calls(&text) {
            if let Err(e) = parses(&call) {
                panic!(
                    "{}: `cargo xtask {}` is not a command the xtask has ({e}): see `cargo xtask --help` and change the workflow",
                    path.display(),
                    call.join(" ")
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 5, "found only {checked} `cargo xtask` calls in {}", dir.display());
    // The check can fail: a flag or subcommand the xtask lacks is refused.
    let bad = xtask_calls("run: cargo xtask report --markdwn >> \"$GITHUB_STEP_SUMMARY\"\n  cargo xtask deploy");
    assert_eq!(bad, [vec!["report".to_string(), "--markdwn".to_string()], vec!["deploy".to_string()]]);
    assert!(bad.iter().all(|c| parses(c).is_err()));
}

#[test]
fn the_tests_left_out_on_a_users_engine_exist() {
    // A renamed test would otherwise run (and fail) on a CI runner's engine, or a typo skip nothing.
    let dir = root().join("xtask/tests/e2e");
    // The floor and classic runs name theirs by module and name: each must be exactly one test.
    for name in xtask::commands::test::SUBSET.iter().chain([&xtask::commands::test::QUICK_BUILD]) {
        let (module, start) = name.split_once("::").expect("module::name");
        let text = std::fs::read_to_string(dir.join(format!("{module}.rs"))).unwrap_or_default();
        let matching = text.matches(&format!("fn {start}")).count();
        assert_eq!(
            matching, 1,
            "xtask/src/commands/test/legs.rs SUBSET or QUICK_BUILD (QUICK_BUILD in test/mod.rs) names `{name}`, which is {matching} end-to-end tests, not one: fix the name there"
        );
    }
    let sources: String = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    for name in xtask::commands::test::PRIVATE_ONLY {
        let found = match name.strip_suffix("::") {
            Some(module) => dir.join(format!("{module}.rs")).is_file(),
            None => sources.contains(&format!("fn {name}")),
        };
        assert!(
            found,
            "xtask/src/commands/test/legs.rs PRIVATE_ONLY names `{name}`, which no end-to-end test is: fix the name there"
        );
    }
}

/// The recorded build CI's macOS and Windows jobs show with `report` (no engine there): its
/// report must still read under today's schema, and its history line name the same build.
#[test]
fn the_report_fixture_ci_shows_still_reads() {
    let dir = root().join("xtask/testdata/history");
    let history = xtask::report::read_history(&dir.join("history.jsonl"));
    assert_eq!(history.len(), 1, "xtask/testdata/history/history.jsonl holds one build");
    let line = &history[0];
    let report = xtask::report::read_report(&dir.join(format!("{}.json", line.id)))
        .unwrap_or_else(|u| panic!("{u}: rewrite the fixture from a fresh build's target/xtask/reports/"));
    assert_eq!((report.id.as_str(), &report.names), (line.id.as_str(), &line.names));
    let targets: Vec<&str> = report.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(targets, line.targets.iter().map(|t| t.name.as_str()).collect::<Vec<_>>());
}

#[test]
fn no_text_says_a_mode_min_provenance_holds_build_arguments() {
    // BuildKit's mode=min provenance keeps no build argument: SOURCE_URL reaches the label only.
    if !read("docker-bake.hcl").contains("type=provenance,mode=min") {
        return;
    }
    let docs = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .flatten()
        .map(|e| format!("docs/{}", e.file_name().to_string_lossy()));
    for path in ["README.md", "docker-bake.hcl", ".env"].map(String::from).into_iter().chain(docs) {
        let text = read(&path).split_whitespace().collect::<Vec<_>>().join(" ").replace(" # ", " ");
        for claim in [
            "as a build argument, in the provenance",
            "build arguments of the provenance",
            "and in their provenance",
            "source label and provenance",
        ] {
            assert!(!text.contains(claim), "{path} says `{claim}`: a mode=min provenance holds no build argument");
        }
    }
}

#[test]
fn folders_use_only_those_below_them_and_no_module_cycle() {
    let mods = architecture::modules(&root().join("xtask/src"));
    let edges = architecture::edges(&mods);
    let up = architecture::upward(&edges);
    assert!(
        up.is_empty(),
        "imports up the stack (floors from the top: {:?}); move the shared item down to the lower folder: {up:#?}",
        architecture::FLOORS
    );
    let cycles = architecture::cycles(&edges);
    assert!(
        cycles.is_empty(),
        "modules that import each other; move what both need into one of them or below: {cycles:#?}"
    );
    let lib = read("xtask/src/lib.rs");
    let declared: Vec<&str> = lib.lines().filter_map(|l| l.strip_prefix("pub mod ")?.strip_suffix(';')).collect();
    assert_eq!(declared, architecture::FLOORS, "xtask/src/lib.rs declares exactly the floors, top down");
}

/// Every file under xtask/src, as its path from the root and its text.
fn product_sources() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root().join("xtask/src")];
    while let Some(dir) = stack.pop() {
        for path in std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()) {
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(root()).unwrap().display().to_string();
                out.push((rel, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn files_and_functions_stay_small() {
    let mut too_big = Vec::new();
    for (rel, text) in product_sources() {
        let lines = text.lines().count();
        if lines > architecture::MAX_FILE_LINES {
            too_big.push(format!("{rel}: {lines} lines (at most {})", architecture::MAX_FILE_LINES));
        }
        for f in architecture::long_functions(&text) {
            too_big.push(format!("{rel}: fn {f} (at most {})", architecture::MAX_FN_LINES));
        }
    }
    too_big.sort();
    assert!(too_big.is_empty(), "split these by job: {too_big:#?}");
}

#[test]
fn only_the_orchestrator_acts_on_a_finished_build() {
    // Signing, the metrics push and the cache clean-up work from the outcome `build::run` holds.
    let sources = product_sources();
    for call in ["sign_built(", "metrics::push(", "gc::after_build("] {
        let callers: Vec<String> = sources
            .iter()
            .filter(|(_, text)| {
                text.split("#[cfg(test)]").next().unwrap().lines().any(|l| l.contains(call) && !l.contains("fn "))
            })
            .map(|(rel, _)| rel.clone())
            .collect();
        assert_eq!(callers, ["xtask/src/build/mod.rs"], "`{call}` belongs to build::run alone: pass the outcome there");
    }
}
