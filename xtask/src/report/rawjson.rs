//! buildx's `--progress=rawjson` stream: BuildKit SolveStatus objects, concatenated (pretty-printed
//! over many lines by buildx 0.13, one per line by newer ones). Each vertex is sent again whenever
//! it changes, so the last state per digest wins.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SolveStatus {
    #[serde(default)]
    pub(crate) vertexes: Vec<Vertex>,
    #[serde(default)]
    pub(crate) statuses: Vec<VertexStatus>,
    #[serde(default)]
    pub(crate) logs: Vec<VertexLog>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Vertex {
    pub(crate) digest: String,
    #[serde(default)]
    pub(crate) name: String,
    pub(crate) started: Option<String>,
    pub(crate) completed: Option<String>,
    #[serde(default)]
    pub(crate) cached: bool,
    #[serde(default)]
    pub(crate) error: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct VertexStatus {
    #[serde(default)]
    pub(crate) vertex: String,
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) current: i64,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct VertexLog {
    #[serde(default)]
    pub(crate) vertex: String,
    /// Base64, as BuildKit's JSON encoding of bytes.
    #[serde(default)]
    pub(crate) data: String,
}

#[path = "rawjson_split.rs"]
mod split;
pub(crate) use split::Splitter;

/// The last known state of every vertex, in the order first seen, with context bytes and logs.
#[derive(Default)]
pub struct Progress {
    pub(crate) order: Vec<String>,
    pub(crate) vertexes: BTreeMap<String, Vertex>,
    /// Bytes of build context sent, per vertex (the "transferring context" status).
    pub(crate) context_bytes: BTreeMap<String, i64>,
    pub(crate) log_tail: BTreeMap<String, Vec<String>>,
}

impl Progress {
    /// Applies one status; returns the vertices that changed, for the display.
    pub(crate) fn apply(&mut self, s: SolveStatus) -> Vec<Event> {
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
            let text = String::from_utf8_lossy(&decode_log(&log.data)).to_string();
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

    pub(crate) fn index(&self, digest: &str) -> usize {
        self.order.iter().position(|d| d == digest).map_or(0, |i| i + 1)
    }
}

pub(crate) enum Event {
    Started(String),
    Completed(String),
    Log(String, String),
}

pub(crate) fn timestamp(t: &Option<String>) -> Option<DateTime<FixedOffset>> {
    t.as_deref().and_then(|s| DateTime::parse_from_rfc3339(s).ok())
}

/// Seconds between a vertex's start and completion (0 for one that never ran).
pub(crate) fn duration(v: &Vertex) -> f64 {
    match (timestamp(&v.started), timestamp(&v.completed)) {
        (Some(a), Some(b)) => (b - a).num_microseconds().unwrap_or(0) as f64 / 1e6,
        _ => 0.0,
    }
}

/// The bake target a step belongs to: in a multi-target bake, step names start with
/// `[target stage n/m]` or `[target internal]`.
pub(crate) fn target_of<'a>(name: &str, targets: &'a [String]) -> Option<&'a String> {
    let inner = name.strip_prefix('[')?;
    let first = inner.split([' ', ']']).next()?;
    targets.iter().find(|t| t.as_str() == first)
}

/// A vertex error that only says the step was stopped because the build as a whole was (another
/// target failed, or the build was interrupted): BuildKit cancels the solve's context.
pub(crate) fn is_cancel(error: &str) -> bool {
    error.contains("context canceled")
}

/// A step that ended because its connection to BuildKit went away rather than on its own account.
/// buildx 0.29.1 closes a cancelled target's session while its first steps still run: the
/// frontend's `[frontend internal] load .dockerignore` then ends in `rpc error: code = Unavailable
/// desc = error reading from server: connection reset by peer` after the backend's parse error.
/// buildx also words it `Unavailable: connection error`. Alone (an engine that died), it is a
/// failure; beside another target's failure, a cancellation.
pub(crate) fn is_session_lost(error: &str) -> bool {
    ["code = Unavailable", "Unavailable: ", "code = Canceled", "transport is closing"].iter().any(|s| error.contains(s))
}

/// The Dockerfile excerpt buildx prints under a failed build (`Dockerfile:25`, a rule, numbered
/// lines with `>>>` marking the culprit), and the `ERROR:` line that follows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Snippet {
    /// The line numbers and text shown, culprit lines and context alike.
    pub(crate) lines: Vec<(usize, String)>,
    /// The first line marked `>>>`.
    pub(crate) line: usize,
    pub(crate) error: String,
}

/// Every excerpt in the text buildx wrote outside the JSON objects, in order.
pub(crate) fn snippets(stray: &str) -> Vec<Snippet> {
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
pub(crate) fn snippet_matches(snippet: &Snippet, text: &str) -> bool {
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

/// A log chunk's bytes: Go's encoding/json writes []byte as standard base64 with padding. A chunk
/// that is not base64 shows as nothing rather than as noise.
fn decode_log(data: &str) -> Vec<u8> {
    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, data).unwrap_or_default()
}

/// A step that failed on its own account: not one cancelled because something else failed, and
/// not a cache import or export, which BuildKit gets past without.
pub(crate) fn is_failure(v: &Vertex) -> bool {
    !v.error.is_empty() && !is_cancel(&v.error) && !is_cache_step(&v.name)
}

/// BuildKit's cache import and export steps: `importing cache manifest from REF`,
/// `exporting cache to registry`, `exporting cache to client directory`, with or without a
/// `[target]` prefix.
pub(crate) fn is_cache_step(name: &str) -> bool {
    name.contains("importing cache manifest") || name.contains("exporting cache")
}

#[cfg(test)]
#[path = "rawjson_tests.rs"]
mod tests;
