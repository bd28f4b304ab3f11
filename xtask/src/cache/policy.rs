//! Where a build's cache goes. On a developer's machine the engine keeps its own layer cache and
//! nothing reads an exported one, so a local build exports none; the mode=max export (to
//! `target/buildx-cache/`, or to the registry when one is set) happens only when someone will
//! read it: `--cache-export`, or a configured cache registry. In CI a folder on the runner is
//! thrown away with it, so there only a cache registry gets an export.

/// Why this build exports its cache, or `None` when it does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Export {
    /// `--cache-export` on the command line.
    Flag,
    /// REGISTRY (or `--registry`) is set: other engines import from it.
    Registry,
}

impl Export {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Export::Flag => "--cache-export",
            Export::Registry => "a cache registry is set",
        }
    }
}

/// The decision, from the flag, the CI variable's value and whether a registry is configured.
/// A registry is read by the next run wherever it runs; a local folder only by this machine, which
/// in CI is discarded after the job, so there the folder export is never made, even when asked.
pub(crate) fn decide(flag: bool, ci: bool, registry: bool) -> Option<Export> {
    match (flag, registry) {
        (true, true) => Some(Export::Flag),
        (false, true) => Some(Export::Registry),
        (true, false) if !ci => Some(Export::Flag),
        _ => None,
    }
}

/// What a CI build without a cache registry is told: it exports nothing, and how to keep a cache.
pub(crate) fn note(ci: bool, registry: bool) -> Option<&'static str> {
    (ci && !registry).then_some(
        "no cache exported: CI=true and no cache registry (a folder on the runner is thrown away with it; set REGISTRY to keep the cache)",
    )
}

/// The bake variable that turns the bake file's `cache-to` on (empty leaves it off).
pub(crate) fn bake_var(export: Option<Export>) -> Option<(String, String)> {
    export.map(|_| ("CACHE_EXPORT".to_string(), "1".to_string()))
}

/// Whether to drop the engine's kept copies of build contexts before the build. BuildKit keeps
/// each context it was sent and sends only what changed the next time; after files came and went,
/// such a copy can key a step that reads a context folder differently from a copy sent whole
/// (on BuildKit 0.25 the same commit's folder can then miss another engine's registry cache until
/// the copies are dropped). That matters only when another engine reads this build's registry
/// cache, and the copies are only dropped on the project's private engines, which hold no other
/// project's: elsewhere they are another project's too.
pub(crate) fn fresh_contexts(export: Option<Export>, registry: bool, private_engine: bool) -> bool {
    export.is_some() && registry && private_engine
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_contexts_are_dropped_only_for_a_registry_cache_on_a_private_engine() {
        assert!(fresh_contexts(Some(Export::Registry), true, true));
        assert!(fresh_contexts(Some(Export::Flag), true, true));
        assert!(!fresh_contexts(Some(Export::Flag), false, true), "a local cache folder is read by this engine");
        assert!(!fresh_contexts(None, true, true), "nothing exported");
        assert!(
            !fresh_contexts(Some(Export::Registry), true, false),
            "an engine the user runs keeps other projects' contexts"
        );
    }

    #[test]
    fn a_local_build_exports_nothing_and_each_reader_turns_it_on() {
        assert_eq!(decide(false, false, false), None);
        assert_eq!(decide(false, false, false), None);
        assert_eq!(decide(true, false, false), Some(Export::Flag));
        assert_eq!(decide(true, false, false), Some(Export::Flag));
        assert_eq!(decide(false, false, true), Some(Export::Registry));
        assert_eq!(decide(true, false, true), Some(Export::Flag));
        assert_eq!(bake_var(None), None);
        assert_eq!(bake_var(Some(Export::Registry)), Some(("CACHE_EXPORT".to_string(), "1".to_string())));
    }

    #[test]
    fn ci_exports_only_to_a_cache_registry_and_says_so_otherwise() {
        // A folder on a CI runner is discarded with it: nothing is exported, even with the flag.
        assert_eq!(decide(false, true, false), None);
        assert_eq!(decide(true, true, false), None);
        assert_eq!(decide(true, true, false), None);
        assert_eq!(decide(false, true, true), Some(Export::Registry));
        assert_eq!(decide(true, true, true), Some(Export::Flag));
        let n = note(true, false).unwrap();
        assert!(n.starts_with("no cache exported") && n.contains("set REGISTRY") && !n.contains('\n'), "{n}");
        assert_eq!(note(true, true), None);
        assert_eq!(note(false, false), None, "a developer's machine is not told anything");
    }
}
