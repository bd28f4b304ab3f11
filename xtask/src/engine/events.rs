//! What the engine itself recorded of build cache that went away: the `prune` events it logs for
//! each prune asked of its API (`cargo xtask clean`, `docker system prune`, Docker Desktop), read
//! for a window of time. A prune buildx asks of BuildKit directly (`docker builder prune` with the
//! buildx plug-in) and BuildKit's own garbage collection leave none, and an engine reached without
//! a unix socket is not asked: then there is nothing to tell.

use super::{api, Engine};
use crate::util::units::human;

/// Each prune of the build cache from `since` (an RFC 3339 time, as reports keep it) until now, as a
/// few words: when, and how much it freed.
pub(crate) fn cache_prunes_since(engine: &Engine, since: &str) -> Vec<String> {
    let Ok(since) = chrono::DateTime::parse_from_rfc3339(since) else { return Vec::new() };
    cache_prunes(engine, since.timestamp(), chrono::Utc::now().timestamp())
}

fn cache_prunes(engine: &Engine, since: i64, until: i64) -> Vec<String> {
    let Some(socket) = engine.socket() else { return Vec::new() };
    // {"event":["prune"]}, escaped for the query (the API's `type` filter does not know builder
    // events: the type is checked below).
    let filters = "%7B%22event%22%3A%5B%22prune%22%5D%7D";
    let path = format!("/events?since={since}&until={until}&filters={filters}");
    match api::get(&socket, &path) {
        Some((200, body)) => prunes_in(&body),
        _ => Vec::new(),
    }
}

/// The prune events of an events stream (one JSON object a line).
fn prunes_in(stream: &str) -> Vec<String> {
    stream
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["Type"] == "builder" && e["Action"] == "prune")
        // A prune that freed nothing dropped no step's cache.
        .filter(|e| e["Actor"]["Attributes"]["reclaimed"] != "0")
        .map(|e| {
            let when = e["time"]
                .as_i64()
                .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                .map_or("at an unknown time".to_string(), |t| format!("at {}", t.format("%Y-%m-%dT%H:%M:%SZ")));
            let freed = e["Actor"]["Attributes"]["reclaimed"].as_str().and_then(|r| r.parse::<u64>().ok());
            match freed {
                Some(bytes) => format!("pruned {when} ({} freed)", human(bytes)),
                None => format!("pruned {when}"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn prune_events_are_told_with_their_time_and_what_they_freed() {
        let stream = concat!(
            r#"{"Type":"builder","Action":"prune","Actor":{"ID":"","Attributes":{"reclaimed":"1500000"}},"time":1764619200}"#,
            "\n",
            r#"{"Type":"container","Action":"start","Actor":{"ID":"x"},"time":1764619201}"#,
            "\n",
            r#"{"Type":"builder","Action":"prune","Actor":{"ID":"","Attributes":{}},"time":1764619260}"#,
            "\n",
            r#"{"Type":"builder","Action":"prune","Actor":{"ID":"","Attributes":{"reclaimed":"0"}},"time":1764619270}"#,
            "\nnot json\n"
        );
        let told = super::prunes_in(stream);
        assert_eq!(told.len(), 2, "{told:?}");
        assert!(told[0].starts_with("pruned at 2025-12-01T20:00:00Z (") && told[0].ends_with(" freed)"), "{told:?}");
        assert_eq!(told[1], "pruned at 2025-12-01T20:01:00Z");
    }
}
