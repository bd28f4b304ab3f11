//! buildx's `--progress=rawjson` stream: BuildKit SolveStatus objects, concatenated (pretty-printed
//! over many lines by buildx 0.13, one per line by newer ones). Each vertex is sent again whenever
//! it changes, so the last state per digest wins.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct SolveStatus {
    #[serde(default)]
    pub vertexes: Vec<Vertex>,
    #[serde(default)]
    pub statuses: Vec<VertexStatus>,
    #[serde(default)]
    pub logs: Vec<VertexLog>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Vertex {
    pub digest: String,
    #[serde(default)]
    pub name: String,
    pub started: Option<String>,
    pub completed: Option<String>,
    #[serde(default)]
    pub cached: bool,
    #[serde(default)]
    pub error: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct VertexStatus {
    #[serde(default)]
    pub vertex: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub current: i64,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct VertexLog {
    #[serde(default)]
    pub vertex: String,
    /// Base64, as BuildKit's JSON encoding of bytes.
    #[serde(default)]
    pub data: String,
}

/// Splits a byte stream into top-level JSON objects, whatever the line breaks, skipping any text
/// between them (a warning line, a message from the docker CLI).
#[derive(Default)]
pub struct Splitter {
    buf: Vec<u8>,
    depth: usize,
    in_string: bool,
    escaped: bool,
    start: Option<usize>,
    /// Text outside JSON objects, kept for error messages.
    pub stray: String,
}

impl Splitter {
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SolveStatus> {
        let mut out = Vec::new();
        for &b in chunk {
            if self.start.is_none() {
                if b == b'{' {
                    self.start = Some(0);
                    self.buf.clear();
                    self.depth = 0;
                } else {
                    self.stray.push(b as char);
                    if self.stray.len() > 16 * 1024 {
                        self.stray.drain(..8 * 1024);
                    }
                    continue;
                }
            }
            self.buf.push(b);
            if self.in_string {
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' => self.depth += 1,
                b'}' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        if let Ok(status) = serde_json::from_slice::<SolveStatus>(&self.buf) {
                            out.push(status);
                        }
                        self.start = None;
                        self.buf.clear();
                    }
                }
                _ => {}
            }
        }
        out
    }
}

/// The last known state of every vertex, in the order first seen, with context bytes and logs.
#[derive(Default)]
pub struct Progress {
    pub order: Vec<String>,
    pub vertexes: BTreeMap<String, Vertex>,
    /// Bytes of build context sent, per vertex (the "transferring context" status).
    pub context_bytes: BTreeMap<String, i64>,
    pub log_tail: BTreeMap<String, Vec<String>>,
}

impl Progress {
    /// Applies one status; returns the vertices that changed, for the display.
    pub fn apply(&mut self, s: SolveStatus) -> Vec<Event> {
        let mut events = Vec::new();
        for v in s.vertexes {
            let previous = self.vertexes.get(&v.digest);
            let was_started = previous.is_some_and(|p| p.started.is_some());
            let was_completed = previous.is_some_and(|p| p.completed.is_some());
            if previous.is_none() {
                self.order.push(v.digest.clone());
            }
            if v.started.is_some() && !was_started {
                events.push(Event::Started(v.digest.clone()));
            }
            if v.completed.is_some() && !was_completed {
                events.push(Event::Completed(v.digest.clone()));
            }
            // A step found in an imported registry cache is sent as cached, then again, not
            // cached, once its layer has been fetched for the export: it still ran nothing
            // (BuildKit's own record counts it cached), so cached stays.
            let was_cached = previous.is_some_and(|p| p.cached);
            let mut v = v;
            v.cached |= was_cached;
            self.vertexes.insert(v.digest.clone(), v);
        }
        for st in s.statuses {
            if st.name.starts_with("transferring") {
                let e = self.context_bytes.entry(st.vertex).or_default();
                *e = (*e).max(st.current);
            }
        }
        for log in s.logs {
            let text = String::from_utf8_lossy(&base64_decode(&log.data)).to_string();
            let tail = self.log_tail.entry(log.vertex.clone()).or_default();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                tail.push(line.to_string());
                events.push(Event::Log(log.vertex.clone(), line.to_string()));
            }
            if tail.len() > 40 {
                tail.drain(..tail.len() - 40);
            }
        }
        events
    }

    pub fn index(&self, digest: &str) -> usize {
        self.order.iter().position(|d| d == digest).map_or(0, |i| i + 1)
    }
}

pub enum Event {
    Started(String),
    Completed(String),
    Log(String, String),
}

pub fn timestamp(t: &Option<String>) -> Option<DateTime<FixedOffset>> {
    t.as_deref().and_then(|s| DateTime::parse_from_rfc3339(s).ok())
}

/// Seconds between a vertex's start and completion (0 for one that never ran).
pub fn duration(v: &Vertex) -> f64 {
    match (timestamp(&v.started), timestamp(&v.completed)) {
        (Some(a), Some(b)) => (b - a).num_microseconds().unwrap_or(0) as f64 / 1e6,
        _ => 0.0,
    }
}

/// The bake target a step belongs to: in a multi-target bake, step names start with
/// `[target stage n/m]` or `[target internal]`.
pub fn target_of<'a>(name: &str, targets: &'a [String]) -> Option<&'a String> {
    let inner = name.strip_prefix('[')?;
    let first = inner.split([' ', ']']).next()?;
    targets.iter().find(|t| t.as_str() == first)
}

/// A vertex error that only says the step was stopped because the build as a whole was (another
/// target failed, or the build was interrupted): BuildKit cancels the solve's context.
pub fn is_cancel(error: &str) -> bool {
    error.contains("context canceled")
}

/// A step that ended because its connection to BuildKit went away rather than on its own account.
/// buildx 0.29.1 closes a cancelled target's session while its first steps still run: the
/// frontend's `[frontend internal] load .dockerignore` then ends in `rpc error: code = Unavailable
/// desc = error reading from server: connection reset by peer` after the backend's parse error.
/// buildx also words it `Unavailable: connection error`. Alone (an engine that died), it is a
/// failure; beside another target's failure, a cancellation.
pub fn is_session_lost(error: &str) -> bool {
    ["code = Unavailable", "Unavailable: ", "code = Canceled", "transport is closing"].iter().any(|s| error.contains(s))
}

/// The Dockerfile excerpt buildx prints under a failed build (`Dockerfile:25`, a rule, numbered
/// lines with `>>>` marking the culprit), and the `ERROR:` line that follows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snippet {
    /// The line numbers and text shown, culprit lines and context alike.
    pub lines: Vec<(usize, String)>,
    /// The first line marked `>>>`.
    pub line: usize,
    pub error: String,
}

/// Every excerpt in the text buildx wrote outside the JSON objects, in order.
pub fn snippets(stray: &str) -> Vec<Snippet> {
    let mut out = Vec::new();
    let mut current: Option<Snippet> = None;
    for raw in stray.lines() {
        let line = raw.trim_end();
        // `  25 | >>> RUNN x` or `  24 |     # comment`: buildx pads the number and writes `>>> `
        // or four spaces before the text (a blank line keeps only those spaces).
        let numbered = raw
            .trim_end_matches('\r')
            .split_once(" |")
            .and_then(|(n, text)| Some((n.trim().parse::<usize>().ok()?, text.strip_prefix(' ').unwrap_or(text))));
        match (numbered, current.as_mut()) {
            (Some((n, text)), Some(s)) => {
                let (marked, text) = match text.strip_prefix(">>> ") {
                    Some(rest) => (true, rest),
                    None => (false, text.strip_prefix("    ").unwrap_or(text)),
                };
                if marked && s.line == 0 {
                    s.line = n;
                }
                s.lines.push((n, text.to_string()));
            }
            _ if line.starts_with("ERROR: ") => {
                if let Some(mut s) = current.take() {
                    s.error = line.trim_start_matches("ERROR: ").to_string();
                    out.push(s);
                }
            }
            _ if is_snippet_header(line) => current = Some(Snippet::default()),
            _ => {}
        }
    }
    out
}

/// `Dockerfile:25` (the name buildx shows, then the line): the start of an excerpt.
fn is_snippet_header(line: &str) -> bool {
    line.rsplit_once(':').is_some_and(|(file, n)| {
        !file.is_empty() && !file.contains(' ') && !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())
    })
}

/// True when the file's text holds the excerpt's lines at their numbers: which of several
/// Dockerfiles an excerpt came from (buildx names every one `Dockerfile`).
pub fn snippet_matches(snippet: &Snippet, text: &str) -> bool {
    let file: Vec<&str> = text.lines().collect();
    !snippet.lines.is_empty()
        && snippet.lines.iter().all(|(n, shown)| {
            n.checked_sub(1).and_then(|i| file.get(i)).is_some_and(|l| {
                let (l, shown) = (l.trim_end(), shown.trim_end());
                l == shown || without_braced_names(l) == shown
            })
        })
}

/// The line as buildx 0.29.1 shows it in an excerpt: `${NAME}` as a bare `$` (seen:
/// `FROM --platform=$BUILDPLATFORM ${PYTHON_IMAGE} AS requirements` shown as
/// `FROM --platform=$BUILDPLATFORM $ AS requirements`).
fn without_braced_names(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at + 1]);
        rest = &rest[at + 2..];
        match rest.find('}') {
            Some(end) => rest = &rest[end + 1..],
            None => {
                out.push('{');
            }
        }
    }
    out.push_str(rest);
    out
}

/// Standard base64 with padding, as Go's encoding/json writes []byte.
pub fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in text.bytes().filter_map(value) {
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_excerpt_that_shows_a_braced_name_as_a_bare_dollar_still_matches_its_file() {
        let text = "ARG PYTHON_IMAGE=python:3.11-slim\nFROM --platform=$BUILDPLATFORM ${PYTHON_IMAGE} AS requirements\nRUNN x\n";
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
        assert!(s.stray.contains("warning: x"));
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
        assert_eq!(base64_decode("aGVsbG8gd29ybGQK"), b"hello world\n");
        assert_eq!(base64_decode("YQ=="), b"a");
        assert_eq!(base64_decode(""), b"");
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
}
