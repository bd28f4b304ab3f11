//! The registry caches a build reads and writes, each named by its cache manifest's digest. A
//! build on another engine finds by them, in this history, the build that wrote the cache it read
//! (`report::why`). Only targets with a registry cache ask: one manifest lookup per cache, side by
//! side, before the build for those it reads and after it for those it wrote.

use std::collections::BTreeMap;

use crate::build::plan::Plan;
use crate::report::BuildReport;

/// Which of a target's caches: those it imports or those it exports.
#[derive(Clone, Copy)]
pub(crate) enum Side {
    Read,
    Written,
}

/// Each target's registry cache references on one side, as the plan's definition names them.
fn refs(plan: &Plan, side: Side) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in &plan.targets {
        let Some(t) = plan.definition.target.get(name) else { continue };
        let entries = match side {
            Side::Read => &t.cache_from,
            Side::Written => &t.cache_to,
        };
        for e in entries.iter().filter(|e| e.get("type").map(String::as_str) == Some("registry")) {
            if let Some(r) = e.get("ref") {
                out.push((name.clone(), r.clone()));
            }
        }
    }
    out
}

/// Per target, each registry cache on `side` with the digest its registry names now; a cache the
/// registry does not have (yet), or a registry that does not answer, is left out.
pub(crate) fn digests(plan: &Plan, side: Side) -> BTreeMap<String, BTreeMap<String, String>> {
    let wanted = refs(plan, side);
    let found: Vec<Option<String>> = std::thread::scope(|s| {
        let asks: Vec<_> = wanted
            .iter()
            .map(|(_, r)| s.spawn(|| answers(r).then(|| plan.engine.registry_digest(r)).flatten()))
            .collect();
        asks.into_iter().map(|h| h.join().unwrap_or(None)).collect()
    });
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for ((target, r), digest) in wanted.into_iter().zip(found) {
        if let Some(d) = digest {
            out.entry(target).or_default().insert(r, d);
        }
    }
    out
}

/// False when the registry a reference names with a port does not take a connection within a
/// second (a lookup would wait for its own timeout; the build has warned of it already).
fn answers(reference: &str) -> bool {
    let host = reference.split('/').next().unwrap_or(reference);
    !host.contains(':') || crate::util::net::answers(host, std::time::Duration::from_secs(1))
}

/// Puts the digests into the report's targets.
pub(crate) fn note(report: &mut BuildReport, side: Side, mut digests: BTreeMap<String, BTreeMap<String, String>>) {
    for t in &mut report.targets {
        let Some(found) = digests.remove(&t.name) else { continue };
        match side {
            Side::Read => t.cache_read = found,
            Side::Written => t.cache_written = found,
        }
    }
}
