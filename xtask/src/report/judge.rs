//! Judging a finished build: which targets failed, which were only cancelled, which failed
//! first, the Dockerfile and line behind an error, and the cache imports and exports that failed.

use super::model::{owner, BuildReport, Outcome, TargetReport};
use super::rawjson::{self, is_cache_step, is_failure, Progress};

/// The step that hands a target's result over (`exporting to image`, `exporting to oci image
/// format`, `exporting to docker image format`, with a `[target]` prefix in a multi-target bake).
/// Every target the xtask builds has an output, so in a failed build a target counts as built only
/// once this step finished cleanly: buildx may close a cancelled target's session with any message
/// (`Unavailable: connection error` was seen) after its first steps completed and before the rest
/// ever reached the stream.
pub(crate) fn is_export_step(name: &str) -> bool {
    name.contains("exporting to ")
}

/// The cache imports and exports that failed, one line each: the step, and the cause as the
/// last part of BuildKit's error chain (`dial tcp 127.0.0.1:5999: connect: connection refused`)
/// next to the whole chain for the report.
pub(crate) fn cache_trouble(progress: &Progress) -> Vec<String> {
    let mut out = Vec::new();
    for d in &progress.order {
        let v = &progress.vertexes[d];
        if !is_cache_step(&v.name) || rawjson::is_cancel(&v.error) || no_cache_yet(&v.name, &v.error) {
            continue;
        }
        let logged: Vec<&String> = progress
            .log_tail
            .get(d)
            .map(|lines| lines.iter().filter(|l| l.trim_start().starts_with("ERROR")).collect())
            .unwrap_or_default();
        if !v.error.is_empty() {
            out.push(format!("{}: {}", v.name, v.error));
        } else if let Some(line) = logged.last() {
            out.push(format!("{}: {}", v.name, line.trim()));
        }
    }
    out
}

/// A registry that answered that it holds no cache under the reference: the first build to
/// export there (a new registry, a new path), as a missing local cache folder is. Not trouble.
pub(crate) fn no_cache_yet(step: &str, error: &str) -> bool {
    step.contains("importing cache manifest") && error.ends_with(": not found")
}

/// The one warning line for cache trouble: each step with the innermost cause only.
pub(crate) fn cache_warning_line(trouble: &[String]) -> String {
    let short: Vec<String> = trouble
        .iter()
        .map(|t| {
            let (step, error) = t.split_once(": ").unwrap_or((t, ""));
            let cause = error.rsplit_once("\": ").map_or(error, |(_, c)| c);
            format!("{step} ({cause})")
        })
        .collect();
    format!(
        "xtask: warning: the build passed, but its cache did not work: {}; see `cargo xtask report`",
        short.join("; ")
    )
}

/// A Dockerfile a target builds from: its path in the repository and its text.
pub(crate) struct Source {
    pub(crate) target: String,
    pub(crate) path: String,
    pub(crate) text: String,
}

/// Judges each target of a finished build: failed, cancelled or ok, which failed first, and the
/// Dockerfile and line behind an error buildx only printed (a parse error fails before any step,
/// so no step carries it). `stray` is the text buildx wrote outside the JSON objects. It also keeps
/// the cache trouble of a build that passed (a failed build's cache steps only failed with it).
pub(crate) fn judge(report: &mut BuildReport, progress: &Progress, succeeded: bool, stray: &str, sources: &[Source]) {
    let targets: Vec<String> = report.targets.iter().map(|t| t.name.clone()).collect();
    // buildx names every Dockerfile `Dockerfile` (the syntax fallback's copy too): the excerpt's
    // lines say which one it is.
    let located: Option<(&Source, rawjson::Snippet)> = rawjson::snippets(stray).into_iter().find_map(|s| {
        let mut matching = sources.iter().filter(|src| rawjson::snippet_matches(&s, &src.text));
        match (matching.next(), matching.next()) {
            (Some(src), None) => Some((src, s)),
            _ => None,
        }
    });
    report.cache_warnings = if succeeded { cache_trouble(progress) } else { Vec::new() };
    let mut first: Option<(chrono::DateTime<chrono::FixedOffset>, String)> = None;
    for t in &mut report.targets {
        if succeeded {
            t.outcome = Outcome::Ok;
            continue;
        }
        let steps: Vec<&rawjson::Vertex> = progress
            .order
            .iter()
            .map(|d| &progress.vertexes[d])
            .filter(|v| owner(&v.name, &targets) == Some(&t.name))
            .collect();
        for v in steps.iter().filter(|v| is_failure(v) && !rawjson::is_session_lost(&v.error)) {
            if let Some(at) = rawjson::timestamp(&v.completed) {
                if first.as_ref().is_none_or(|(when, _)| at < *when) {
                    first = Some((at, t.name.clone()));
                }
            }
        }
        let named = located.as_ref().is_some_and(|(src, _)| src.target == t.name);
        if named {
            let (src, s) = located.as_ref().unwrap();
            let error = solve_error(&s.error);
            t.errors.insert(0, format!("{}:{}: {error}", src.path, s.line));
        }
        let exported = steps.iter().any(|v| is_export_step(&v.name) && v.completed.is_some() && v.error.is_empty());
        let unfinished = !exported || steps.iter().any(|v| v.completed.is_none() || rawjson::is_cancel(&v.error));
        t.outcome = if !t.errors.is_empty() {
            Outcome::Failed
        } else if unfinished {
            Outcome::Cancelled
        } else {
            Outcome::Ok
        };
    }
    // A target whose only errors are a lost session, beside one that failed on its own account,
    // was cancelled with the build.
    let own = |t: &TargetReport| t.errors.iter().any(|e| !rawjson::is_session_lost(e));
    if report.targets.iter().any(own) {
        for t in report.targets.iter_mut().filter(|t| t.outcome == Outcome::Failed && !own(t)) {
            t.errors.clear();
            t.outcome = Outcome::Cancelled;
        }
    }
    // A parse error stops its target before any step ran: nothing can have failed before it.
    report.failed_first = match (&located, first) {
        (Some((src, _)), _) if report.targets.iter().any(|t| t.name == src.target && t.outcome == Outcome::Failed) => {
            Some(src.target.clone())
        }
        (_, Some((_, name))) => Some(name),
        _ => report.targets.iter().find(|t| t.outcome == Outcome::Failed).map(|t| t.name.clone()),
    };
}

/// The error without buildx's wrapping: `failed to solve: ` (buildx 0.13) or
/// `target backend: failed to solve: ` (buildx 0.29, which names the bake target first; the report
/// names the target and its Dockerfile already).
pub(crate) fn solve_error(error: &str) -> &str {
    let unnamed = match error.strip_prefix("target ").and_then(|rest| rest.split_once(": ")) {
        Some((_, rest)) if rest.starts_with("failed to solve: ") => rest,
        _ => error,
    };
    unnamed.strip_prefix("failed to solve: ").unwrap_or(unnamed)
}

/// The failure summary: the target that failed first, then any other failed ones, then the
/// cancelled ones by name only (their steps only say "context canceled").
pub(crate) fn failure_summary(report: &BuildReport) -> String {
    let mut failed: Vec<&TargetReport> = report.targets.iter().filter(|t| t.outcome == Outcome::Failed).collect();
    failed.sort_by_key(|t| Some(&t.name) != report.failed_first.as_ref());
    let mut parts: Vec<String> = Vec::new();
    if !failed.is_empty() {
        let each: Vec<String> = failed.iter().map(|t| format!("{}: {}", t.name, t.errors.join("; "))).collect();
        parts.push(format!("failing: {}", each.join(" | ")));
    }
    let cancelled: Vec<&str> =
        report.targets.iter().filter(|t| t.outcome == Outcome::Cancelled).map(|t| t.name.as_str()).collect();
    if !cancelled.is_empty() {
        parts.push(format!("cancelled: {}", cancelled.join(", ")));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::summarize;
    use crate::report::testing::*;
    use crate::report::{html, table};

    /// buildx 0.13.1 on the private engine, `bake backend frontend` with `RUNN` on line 25 of the
    /// backend's Dockerfile, both built from the syntax fallback's copies and run directly (with
    /// PYTHON_IMAGE and NODE_IMAGE set to `scratch`, before the stand-ins existed): the parse error
    /// is only in the text after the stream, and the frontend's steps end in "context canceled".
    const PARSE_ERROR: &[u8] = include_bytes!("../../testdata/rawjson-parse-error-two-targets-buildx-0.13.1.json");
    const BROKEN_BACKEND: &str = include_str!("../../testdata/Dockerfile-backend-RUNN-on-line-25");

    #[test]
    fn a_parse_error_names_the_repository_dockerfile_and_the_other_target_is_cancelled() {
        let (p, stray) = parse_with_stray(PARSE_ERROR);
        let mut r = summarize(&two(), &p, String::new(), false);
        let sources = [
            Source { target: "backend".into(), path: "backend/Dockerfile".into(), text: BROKEN_BACKEND.into() },
            // The frontend's Dockerfile shares no line 24-28 with the excerpt.
            Source { target: "frontend".into(), path: "frontend/Dockerfile".into(), text: "FROM x\n".repeat(40) },
        ];
        judge(&mut r, &p, false, &stray, &sources);
        let (backend, frontend) = (&r.targets[0], &r.targets[1]);
        assert_eq!((backend.outcome, frontend.outcome), (Outcome::Failed, Outcome::Cancelled));
        assert_eq!(
            backend.errors[0],
            "backend/Dockerfile:25: dockerfile parse error on line 25: unknown instruction: RUNN (did you mean RUN?)"
        );
        assert!(frontend.errors.is_empty(), "a cancellation is not an error: {:?}", frontend.errors);
        assert_eq!(r.failed_first.as_deref(), Some("backend"));
        let summary = failure_summary(&r);
        assert!(summary.starts_with("failing: backend: backend/Dockerfile:25: dockerfile parse error"), "{summary}");
        assert!(summary.ends_with("cancelled: frontend"), "{summary}");
        assert!(!summary.contains("target/xtask/dockerfiles"), "{summary}");
        let table = table(&r, None);
        assert!(table.contains("FAILED (first)") && table.contains("cancelled"), "{table}");
    }

    #[test]
    fn buildx_s_wrapping_of_a_solve_error_is_removed_in_both_shapes() {
        let inner = "dockerfile parse error on line 25: unknown instruction: RUNN (did you mean RUN?)";
        assert_eq!(solve_error(&format!("failed to solve: {inner}")), inner);
        // buildx 0.29.1, `bake backend frontend` with the same broken Dockerfile.
        assert_eq!(solve_error(&format!("target backend: failed to solve: {inner}")), inner);
        assert_eq!(solve_error("target of the change: x"), "target of the change: x");
    }

    #[test]
    fn the_target_whose_step_failed_first_is_named_first() {
        let mut p = Progress::default();
        let exit = |cmd: &str, code: u8| {
            format!("process \"/bin/sh -c {cmd}\" did not complete successfully: exit code: {code}")
        };
        one_step(&mut p, "1", "[a app 1/2] RUN late", "09", &exit("late", 2));
        one_step(&mut p, "2", "[b app 1/2] RUN early", "03", &exit("early", 1));
        one_step(
            &mut p,
            "3",
            "[c app 1/2] RUN other",
            "04",
            "failed to create lease: context canceled: context canceled",
        );
        one_step(&mut p, "4", "[d app 1/1] COPY x", "01", "");
        one_step(&mut p, "5", "[d] exporting to image", "02", "");
        let names: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let mut r = summarize(&names, &p, String::new(), false);
        judge(&mut r, &p, false, "", &[]);
        let outcomes: Vec<String> = r.targets.iter().map(|t| t.outcome.to_string()).collect();
        assert_eq!(outcomes, ["failed", "failed", "cancelled", "ok"]);
        assert_eq!(r.failed_first.as_deref(), Some("b"));
        let summary = failure_summary(&r);
        assert!(summary.starts_with("failing: b: [b app 1/2] RUN early"), "{summary}");
        assert!(summary.contains(" | a: ") && summary.ends_with("cancelled: c"), "{summary}");
    }

    fn one_step(p: &mut Progress, d: &str, name: &str, done: &str, error: &str) {
        p.apply(rawjson::SolveStatus {
            vertexes: vec![rawjson::Vertex {
                digest: d.into(),
                name: name.into(),
                started: Some("2026-01-01T00:00:00Z".into()),
                completed: Some(format!("2026-01-01T00:00:{done}Z")),
                error: error.into(),
                ..Default::default()
            }],
            ..Default::default()
        });
    }

    /// Whatever message buildx closed the frontend's session with after the backend's parse
    /// error, and whether or not any of its steps carried it, a frontend that never exported is
    /// not shown as built in the table, the JSON, the Markdown or the metrics.
    #[test]
    fn a_target_that_never_exported_is_never_ok_whatever_ended_its_session() {
        let (_, stray) = parse_with_stray(PARSE_ERROR);
        let sources =
            [Source { target: "backend".into(), path: "backend/Dockerfile".into(), text: BROKEN_BACKEND.into() }];
        for closing in ["", "Unavailable: connection error", "rpc error: code = Unknown desc = a word never seen"] {
            let mut p = Progress::default();
            one_step(&mut p, "1", "[frontend internal] load build definition from Dockerfile", "01", "");
            one_step(&mut p, "2", "[frontend internal] load .dockerignore", "02", closing);
            let stray =
                format!("{stray}ERROR: target frontend: {}\n", if closing.is_empty() { "closed" } else { closing });
            let mut r = summarize(&two(), &p, String::new(), false);
            r.status = crate::report::Status::Failed;
            judge(&mut r, &p, false, &stray, &sources);
            let frontend = &r.targets[1];
            assert_ne!(frontend.outcome, Outcome::Ok, "{closing:?}");
            assert_eq!(r.targets[0].outcome, Outcome::Failed, "{closing:?}");
            assert_eq!(r.failed_first.as_deref(), Some("backend"), "{closing:?}");
            let json = serde_json::to_value(&r).unwrap();
            assert_ne!(json["targets"][1]["outcome"], "ok", "{closing:?}");
            let row = |text: &str| text.lines().find(|l| l.contains("frontend")).unwrap_or_default().to_string();
            let table_row = row(&table(&r, None));
            assert!(table_row.contains("cancelled") || table_row.contains("FAILED"), "{closing:?}: {table_row}");
            let markdown_row = row(&crate::report::markdown::build(&r));
            assert!(!markdown_row.contains("| ok |"), "{closing:?}: {markdown_row}");
            let metrics = crate::report::metrics::exposition(&r);
            let success = metrics.lines().find(|l| l.starts_with("xtask_target_success") && l.contains("frontend"));
            assert!(success.is_some_and(|l| l.ends_with(" 0")), "{closing:?}: {metrics}");
        }
    }

    #[test]
    fn a_failed_build_keeps_no_cache_warning() {
        let (p, stray) = parse_with_stray(CACHE_REFUSED);
        let names = vec!["backend".to_string()];
        let mut r = summarize(&names, &p, String::new(), false);
        judge(&mut r, &p, false, &stray, &[]);
        assert!(r.cache_warnings.is_empty(), "{:?}", r.cache_warnings);
        judge(&mut r, &p, true, &stray, &[]);
        assert_eq!(r.cache_warnings.len(), 2, "the same stream of a build that passed warns");
    }

    const RESET: &str = "rpc error: code = Unavailable desc = error reading from server: connection reset by peer";

    #[test]
    fn a_session_reset_beside_another_target_s_failure_is_a_cancellation() {
        let mut p = Progress::default();
        // As CI saw it on buildx 0.29.1: the reset can even carry the earlier time.
        one_step(&mut p, "1", "[frontend internal] load .dockerignore", "01", RESET);
        one_step(
            &mut p,
            "2",
            "[backend app 1/2] RUN x",
            "03",
            "process \"/bin/sh -c x\" did not complete successfully: exit code: 1",
        );
        let mut r = summarize(&two(), &p, String::new(), false);
        judge(&mut r, &p, false, "", &[]);
        let (backend, frontend) = (&r.targets[0], &r.targets[1]);
        assert_eq!((backend.outcome, frontend.outcome), (Outcome::Failed, Outcome::Cancelled));
        assert!(frontend.errors.is_empty(), "{:?}", frontend.errors);
        assert_eq!(r.failed_first.as_deref(), Some("backend"));
        assert!(failure_summary(&r).ends_with("cancelled: frontend"), "{}", failure_summary(&r));
    }

    #[test]
    fn a_session_reset_everywhere_is_a_failure_of_each_target() {
        let mut p = Progress::default();
        one_step(&mut p, "1", "[frontend internal] load .dockerignore", "01", RESET);
        one_step(&mut p, "2", "[backend internal] load .dockerignore", "02", RESET);
        let mut r = summarize(&two(), &p, String::new(), false);
        judge(&mut r, &p, false, "", &[]);
        let outcomes: Vec<Outcome> = r.targets.iter().map(|t| t.outcome).collect();
        assert_eq!(outcomes, [Outcome::Failed, Outcome::Failed], "an engine that went away fails the build");
        assert!(failure_summary(&r).starts_with("failing: "), "{}", failure_summary(&r));
    }

    /// buildx 0.13.1, `bake backend` with REGISTRY=127.0.0.1:5999 (a closed port): importing the
    /// registry cache and exporting it both fail, and the build passes.
    const CACHE_REFUSED: &[u8] = include_bytes!("../../testdata/rawjson-cache-registry-refused-buildx-0.13.1.json");

    #[test]
    fn a_refused_cache_import_and_export_are_warned_of_but_fail_nothing() {
        let (p, stray) = parse_with_stray(CACHE_REFUSED);
        let names = vec!["backend".to_string()];
        let mut r = summarize(&names, &p, String::new(), true);
        judge(&mut r, &p, true, &stray, &[]);
        assert_eq!(r.targets[0].outcome, Outcome::Ok);
        assert!(r.targets[0].errors.is_empty(), "{:?}", r.targets[0].errors);
        assert_eq!((r.targets[0].steps, r.targets[0].cached), (6, 6));
        let trouble = cache_trouble(&p);
        assert_eq!(trouble.len(), 2, "{trouble:?}");
        assert!(trouble[0].starts_with("importing cache manifest from 127.0.0.1:5999/contextcleanse-backend:buildcache: failed to configure registry cache importer"));
        assert!(trouble[1].starts_with("exporting cache to registry: error writing layer blob"));
        let line = cache_warning_line(&trouble);
        assert_eq!(line.lines().count(), 1);
        assert!(line.starts_with("xtask: warning: "), "{line}");
        assert_eq!(line.matches("dial tcp 127.0.0.1:5999: connect: connection refused").count(), 2, "{line}");
        r.cache_warnings = trouble;
        assert!(table(&r, None).contains("cache not used or kept: importing cache manifest"));
        assert!(html(&r, &[]).contains("class=\"warn\">cache not used or kept: exporting cache to registry"));
        let warm = parse(STREAM);
        assert!(cache_trouble(&warm).is_empty(), "a build whose cache worked has nothing to say");
    }

    #[test]
    fn a_registry_without_the_cache_yet_is_not_trouble() {
        // BuildKit 0.25's words when the registry answers but has no manifest under the reference.
        let step = "[backend] importing cache manifest from 127.0.0.1:5000/x/contextcleanse-backend:buildcache";
        let error = "failed to configure registry cache importer: 127.0.0.1:5000/x/contextcleanse-backend:buildcache: not found";
        assert!(no_cache_yet(step, error));
        assert!(!no_cache_yet(step, "failed to do request: Head \"https://127.0.0.1:5999/v2/\": dial tcp 127.0.0.1:5999: connect: connection refused"));
        assert!(!no_cache_yet("[backend] exporting cache to registry", error), "an export that fails is trouble");
    }
}
