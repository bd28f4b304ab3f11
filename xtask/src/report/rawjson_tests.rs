//! Unit tests of the rawjson stream reader (`rawjson.rs`).

use super::*;

#[test]
fn an_excerpt_that_shows_a_braced_name_as_a_bare_dollar_still_matches_its_file() {
    let text =
        "ARG PYTHON_IMAGE=python:3.11-slim\nFROM --platform=$BUILDPLATFORM ${PYTHON_IMAGE} AS requirements\nRUNN x\n";
    let shown =
        |l: &str| Snippet { lines: vec![(2, l.to_string()), (3, "RUNN x".into())], line: 3, error: String::new() };
    assert!(snippet_matches(&shown("FROM --platform=$BUILDPLATFORM $ AS requirements"), text));
    assert!(snippet_matches(&shown("FROM --platform=$BUILDPLATFORM ${PYTHON_IMAGE} AS requirements"), text));
    assert!(!snippet_matches(&shown("FROM --platform=$BUILDPLATFORM $ AS deps"), text));
    assert_eq!(without_braced_names("a ${B} c ${ d"), "a $ c ${ d");
}

#[test]
fn splitter_handles_pretty_printed_and_line_delimited_objects_across_chunks() {
    let stream = b"warning: x\n{\n  \"vertexes\": [{\"digest\": \"a\", \"name\": \"[b} {\\\"q\\\"] x\"}]\n}{\"logs\": []}\n{\"statuses\":[]}";
    let mut s = Splitter::default();
    let mut all = Vec::new();
    for chunk in stream.chunks(7) {
        all.extend(s.feed(chunk));
    }
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].vertexes[0].name, "[b} {\"q\"] x");
    assert!(s.stray().contains("warning: x"));
    assert_eq!(s.stray_note(), None);
}

/// The tail buildx 0.13.1 wrote under `bake backend frontend` with `RUNN` on line 25 of the
/// backend's Dockerfile (captured on the private engine).
const PARSE_ERROR_TAIL: &str = "WARNING: local cache import at target/buildx-cache/backend not found due to err: could not read target/buildx-cache/backend/index.json
Dockerfile:25
--------------------
  24 |     # hadolint ignore=DL3008
  25 | >>> RUNN --mount=type=cache,target=/var/cache/apt,sharing=locked \\
  26 | >>>     --mount=type=cache,target=/var/lib/apt,sharing=locked \\
  27 | >>>     rm -f /etc/apt/apt.conf.d/docker-clean
  28 |     
--------------------
ERROR: failed to solve: dockerfile parse error on line 25: unknown instruction: RUNN (did you mean RUN?)
";

#[test]
fn a_dockerfile_excerpt_is_read_and_matched_to_its_file() {
    let found = snippets(PARSE_ERROR_TAIL);
    assert_eq!(found.len(), 1);
    let s = &found[0];
    assert_eq!(s.line, 25);
    assert_eq!(s.lines.len(), 5);
    assert_eq!(s.lines[1], (25, "RUNN --mount=type=cache,target=/var/cache/apt,sharing=locked \\".to_string()));
    assert_eq!(
        s.error,
        "failed to solve: dockerfile parse error on line 25: unknown instruction: RUNN (did you mean RUN?)"
    );
    let mut backend: Vec<String> = (1..=30).map(|i| format!("# line {i}")).collect();
    backend[23] = "# hadolint ignore=DL3008".into();
    backend[24] = "RUNN --mount=type=cache,target=/var/cache/apt,sharing=locked \\".into();
    backend[25] = "    --mount=type=cache,target=/var/lib/apt,sharing=locked \\".into();
    backend[26] = "    rm -f /etc/apt/apt.conf.d/docker-clean".into();
    backend[27] = String::new();
    assert!(snippet_matches(s, &backend.join("\n")));
    backend[24] = "RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \\".into();
    assert!(!snippet_matches(s, &backend.join("\n")), "another Dockerfile does not match");
    assert!(!snippet_matches(s, "FROM x\n"));
    assert!(snippets("ERROR: failed to solve: no excerpt\n").is_empty());
    assert!(is_cancel("failed to create lease: context canceled: context canceled"));
    assert!(!is_cancel("process \"/bin/sh -c x\" did not complete successfully: exit code: 1"));
}

#[test]
fn base64_round_trips_known_values() {
    assert_eq!(decode_log("aGVsbG8gd29ybGQK"), b"hello world\n");
    assert_eq!(decode_log("YQ=="), b"a");
    assert_eq!(decode_log(""), b"");
}

#[test]
fn targets_come_from_the_step_prefix() {
    let targets = vec!["backend".to_string(), "frontend-production".to_string()];
    assert_eq!(target_of("[backend deps 2/3] RUN x", &targets).map(String::as_str), Some("backend"));
    assert_eq!(
        target_of("[frontend-production internal] load .dockerignore", &targets).map(String::as_str),
        Some("frontend-production")
    );
    assert_eq!(target_of("[internal] load build definition", &targets), None);
    assert_eq!(target_of("exporting to image", &targets), None);
}

#[test]
fn last_state_per_vertex_wins_and_events_fire_once() {
    let mut p = Progress::default();
    let started = SolveStatus {
        vertexes: vec![Vertex {
            digest: "d".into(),
            started: Some("2026-01-01T00:00:00Z".into()),
            ..Vertex::default()
        }],
        ..SolveStatus::default()
    };
    assert_eq!(p.apply(started).len(), 1);
    let done = SolveStatus {
        vertexes: vec![Vertex {
            digest: "d".into(),
            started: Some("2026-01-01T00:00:00Z".into()),
            completed: Some("2026-01-01T00:00:01.5Z".into()),
            ..Vertex::default()
        }],
        ..SolveStatus::default()
    };
    assert!(matches!(p.apply(done).as_slice(), [Event::Completed(_)]));
    assert_eq!(duration(&p.vertexes["d"]), 1.5);
    assert_eq!(p.order.len(), 1);
}

#[test]
fn a_step_from_a_registry_cache_stays_cached_when_its_layer_is_fetched() {
    let mut p = Progress::default();
    let at = |completed: &str, cached: bool| SolveStatus {
        vertexes: vec![Vertex {
            digest: "copy".into(),
            started: Some("2026-01-01T00:00:00Z".into()),
            completed: Some(completed.into()),
            cached,
            ..Vertex::default()
        }],
        ..SolveStatus::default()
    };
    p.apply(at("2026-01-01T00:00:00Z", true));
    p.apply(at("2026-01-01T00:00:00.3Z", false));
    assert!(p.vertexes["copy"].cached);
    assert_eq!(duration(&p.vertexes["copy"]), 0.3);
}
