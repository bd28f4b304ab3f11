//! Keeps the local build cache bounded: a `type=local` cache export is an OCI image layout
//! (`index.json` and `blobs/sha256/…`) to which BuildKit adds blobs but never removes any, so
//! after each build the blobs that no index, manifest or cache config refers to are deleted.
//!
//! The clean-up never races a build: it runs only while it holds the build lock exclusively,
//! which it takes without waiting after its own build has let go of its share. Any other build
//! running then (exporting to the folder, or importing from it) holds a share, so the clean-up is
//! left for a later build, and no build starts while it runs.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::images::bake::Definition;
use crate::util::units::human;

/// Blobs larger than this are layers: they are never read as JSON (cache configs of the
/// project's builds are a few KB).
const JSON_LIMIT: u64 = 64 << 20;

/// What one clean-up removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Freed {
    pub(crate) blobs: usize,
    pub(crate) bytes: u64,
}

/// The `type=local` cache destinations of the resolved bake definition; relative ones are
/// relative to `root`, where bake runs.
pub(crate) fn local_dirs(def: &Definition, root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = def
        .target
        .values()
        .flat_map(|t| &t.cache_to)
        .filter(|e| e.get("type").is_some_and(|t| t == "local"))
        .filter_map(|e| e.get("dest"))
        .map(|d| root.join(d))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// Cleans every local cache folder the build exported to, and returns
/// the line to print, if anything was freed or a folder could not be cleaned.
fn clean_all(dirs: &[PathBuf]) -> Option<String> {
    let mut total = Freed::default();
    let mut trouble = Vec::new();
    for dir in dirs {
        match collect(dir) {
            Ok(f) => {
                total.blobs += f.blobs;
                total.bytes += f.bytes;
            }
            Err(e) => trouble.push(format!("{}: {e:#}", dir.display())),
        }
    }
    let mut parts = Vec::new();
    if total.blobs > 0 {
        parts.push(format!("local cache: removed {} unreferenced blob(s), {} freed", total.blobs, human(total.bytes)));
    }
    if !trouble.is_empty() {
        parts.push(format!("local cache clean-up skipped for {}", trouble.join("; ")));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// After a successful build that has let go of its share of the build lock: [`clean_all`] while
/// no other build runs, else a line saying it was left for later. Only folders under the
/// project's `target/` are cleaned: the lock covers the builds of this xtask alone, and a folder
/// elsewhere (an absolute `CACHE_DIR`) may be another checkout's export in progress.
pub(crate) fn after_build(dirs: &[PathBuf]) -> Result<Option<String>> {
    let target = crate::util::paths::normalize(&crate::util::paths::project_root().join("target"));
    let ours: Vec<PathBuf> =
        dirs.iter().filter(|d| crate::util::paths::normalize(d).starts_with(&target)).cloned().collect();
    after_build_at(&crate::cache::lock::project_file(), &ours)
}

fn after_build_at(lock: &Path, dirs: &[PathBuf]) -> Result<Option<String>> {
    if dirs.is_empty() {
        return Ok(None);
    }
    let Some(_alone) = crate::cache::lock::exclusive_now_at(lock)? else {
        return Ok(Some(
            "local cache clean-up left for a later build: another build is running and may be writing or reading it"
                .to_string(),
        ));
    };
    Ok(clean_all(dirs))
}

/// Every blob digest (`sha256:…`) reachable from the layout's `index.json`: indexes, manifests,
/// configs, layers, and the layers a BuildKit cache config names. `None` without an index.
pub(crate) fn reachable(dir: &Path) -> Result<Option<BTreeSet<String>>> {
    let index_file = dir.join("index.json");
    let text = match std::fs::read_to_string(&index_file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", index_file.display())),
    };
    let index: Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", index_file.display()))?;
    let mut seen = BTreeSet::new();
    let mut todo = Vec::new();
    digests_in(&index, &mut todo);
    while let Some(digest) = todo.pop() {
        if !seen.insert(digest.clone()) {
            continue;
        }
        if let Some(doc) = read_json_blob(&blob_path(dir, &digest)) {
            digests_in(&doc, &mut todo);
        }
    }
    Ok(Some(seen))
}

/// Descriptors hold `digest`; a BuildKit cache config names its layers by `blob`. Any such
/// value counts, wherever it sits: keeping a blob too many is harmless, deleting one in use is not.
fn digests_in(doc: &Value, out: &mut Vec<String>) {
    match doc {
        Value::Object(map) => {
            for (key, value) in map {
                match value.as_str() {
                    Some(s) if (key == "digest" || key == "blob") && s.starts_with("sha256:") => {
                        out.push(s.to_string())
                    }
                    _ => digests_in(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| digests_in(v, out)),
        _ => {}
    }
}

fn blob_path(dir: &Path, digest: &str) -> PathBuf {
    let (algo, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
    dir.join("blobs").join(algo).join(hex)
}

/// A blob's JSON, when it is a JSON document of reasonable size (layers are compressed tar
/// streams: only their first byte is read).
fn read_json_blob(path: &Path) -> Option<Value> {
    let mut file = std::fs::File::open(path).ok()?;
    if file.metadata().ok()?.len() > JSON_LIMIT {
        return None;
    }
    let mut first = [0u8; 1];
    file.read_exact(&mut first).ok()?;
    if first[0] != b'{' {
        return None;
    }
    let mut rest = Vec::new();
    file.read_to_end(&mut rest).ok()?;
    let mut all = first.to_vec();
    all.extend(rest);
    serde_json::from_slice(&all).ok()
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Deletes the blobs of one cache folder that `index.json` no longer reaches. A blob written
/// after the index may belong to an export still running in another build (its index comes
/// last), so only blobs older than the index go; and if the index changes while this runs,
/// nothing is deleted this time.
pub(crate) fn collect(dir: &Path) -> Result<Freed> {
    let index_file = dir.join("index.json");
    let Some(index_time) = modified(&index_file) else { return Ok(Freed::default()) };
    let Some(keep) = reachable(dir)? else { return Ok(Freed::default()) };
    if keep.is_empty() {
        // An index that names nothing is not a reason to empty the folder.
        return Ok(Freed::default());
    }
    let mut doomed = Vec::new();
    for (algo, path) in blobs(dir)? {
        let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        if keep.contains(&format!("{algo}:{name}")) {
            continue;
        }
        let meta = std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?;
        if meta.modified().is_ok_and(|t| t <= index_time) {
            doomed.push((path, meta.len()));
        }
    }
    if modified(&index_file) != Some(index_time) {
        return Ok(Freed::default());
    }
    let mut freed = Freed::default();
    for (path, len) in doomed {
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        freed.blobs += 1;
        freed.bytes += len;
    }
    Ok(freed)
}

/// Every blob file of a layout, with its algorithm (the folder name under `blobs/`).
fn blobs(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let root = dir.join("blobs");
    let Ok(algos) = std::fs::read_dir(&root) else { return Ok(out) };
    for algo in algos.flatten().filter(|e| e.path().is_dir()) {
        let name = algo.file_name().to_string_lossy().to_string();
        for blob in std::fs::read_dir(algo.path()).with_context(|| format!("listing {}", algo.path().display()))? {
            let blob = blob?;
            if blob.path().is_file() {
                out.push((name.clone(), blob.path()));
            }
        }
    }
    Ok(out)
}

/// Size of a cache folder: all blob bytes, and how many of them no index reaches.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) bytes: u64,
    pub(crate) unreferenced: u64,
}

pub(crate) fn usage(dir: &Path) -> Result<Usage> {
    let keep = reachable(dir)?.unwrap_or_default();
    let mut u = Usage::default();
    for (algo, path) in blobs(dir)? {
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        u.bytes += len;
        let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        if !keep.contains(&format!("{algo}:{name}")) {
            u.unreferenced += len;
        }
    }
    Ok(u)
}

/// `doctor`'s line: the local cache folders of the default group and their sizes.
pub(crate) fn doctor_line(def: Option<&Definition>, root: &Path) -> String {
    let Some(def) = def else { return "size unknown: the bake file could not be resolved".to_string() };
    let dirs = local_dirs(def, root);
    if dirs.is_empty() {
        return "no local cache export in the bake file (registry cache or none)".to_string();
    }
    let parts: Vec<String> = dirs
        .iter()
        .map(|d| {
            let shown = d.strip_prefix(root).unwrap_or(d).display().to_string();
            match usage(d) {
                Ok(u) if u.unreferenced > 0 => {
                    format!("{shown} {} ({} unreferenced)", human(u.bytes), human(u.unreferenced))
                }
                Ok(u) => format!("{shown} {}", human(u.bytes)),
                Err(e) => format!("{shown}: {e:#}"),
            }
        })
        .collect();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A cache folder as BuildKit's local exporter writes it, with blobs named by fake digests.
    struct Layout(PathBuf);

    impl Layout {
        fn new(name: &str) -> Layout {
            let dir = std::env::temp_dir().join(format!("xtask-cachegc-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
            Layout(dir)
        }

        fn blob(&self, hex: &str, body: &[u8]) -> String {
            std::fs::write(self.0.join("blobs/sha256").join(hex), body).unwrap();
            format!("sha256:{hex}")
        }

        fn json(&self, hex: &str, doc: Value) -> String {
            self.blob(hex, doc.to_string().as_bytes())
        }

        fn index(&self, top: &str) {
            let doc = json!({"schemaVersion": 2, "manifests": [{"digest": top, "size": 1}]});
            std::fs::write(self.0.join("index.json"), doc.to_string()).unwrap();
        }

        fn has(&self, hex: &str) -> bool {
            self.0.join("blobs/sha256").join(hex).exists()
        }
    }

    impl Drop for Layout {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Gzip's magic bytes: what a layer blob starts with, so it is never parsed.
    const LAYER: &[u8] = &[0x1f, 0x8b, 8, 0, 1, 2, 3];

    /// A cache export (an index of layers plus a cache config naming them by `blob`) and an
    /// image manifest below a nested index, with two orphans left by an earlier export.
    fn populated(l: &Layout) {
        let layer_a = l.blob("aa", LAYER);
        let layer_b = l.blob("bb", LAYER);
        let cfg = l.json("cf", json!({"layers": [{"blob": layer_a}, {"blob": layer_b, "parent": 0}], "records": []}));
        let img_cfg = l.json("ic", json!({"architecture": "amd64"}));
        let layer_c = l.blob("cc", LAYER);
        let manifest = l.json("mf", json!({"config": {"digest": img_cfg}, "layers": [{"digest": layer_c}]}));
        let nested = l.json("nx", json!({"manifests": [{"digest": manifest}]}));
        let top = l.json(
            "tp",
            json!({"manifests": [
                {"digest": layer_a}, {"digest": cfg, "mediaType": "application/vnd.buildkit.cacheconfig.v0"},
                {"digest": nested}
            ]}),
        );
        l.blob("old1", &vec![7u8; 1000]);
        l.json("old2", json!({"layers": [{"digest": layer_a}]}));
        // Written before the index, as an export's blobs are.
        std::thread::sleep(std::time::Duration::from_millis(20));
        l.index(&top);
    }

    #[test]
    fn unreferenced_blobs_go_and_every_reachable_one_stays() {
        let l = Layout::new("walk");
        populated(&l);
        let kept = ["aa", "bb", "cf", "ic", "cc", "mf", "nx", "tp"];
        let reach = reachable(&l.0).unwrap().unwrap();
        for hex in kept {
            assert!(reach.contains(&format!("sha256:{hex}")), "{hex} is reachable: {reach:?}");
        }
        let before = usage(&l.0).unwrap();
        let old2_len = std::fs::metadata(l.0.join("blobs/sha256/old2")).unwrap().len();
        assert_eq!(before.unreferenced, 1000 + old2_len);
        let freed = collect(&l.0).unwrap();
        assert_eq!(freed, Freed { blobs: 2, bytes: 1000 + old2_len });
        assert!(!l.has("old1") && !l.has("old2"));
        for hex in kept {
            assert!(l.has(hex), "{hex} was deleted");
        }
        assert_eq!(usage(&l.0).unwrap().unreferenced, 0);
        assert_eq!(collect(&l.0).unwrap(), Freed::default(), "a second run finds nothing");
    }

    #[test]
    fn blobs_newer_than_the_index_are_kept() {
        // Another build's export in progress writes its blobs before its index.
        let l = Layout::new("newer");
        populated(&l);
        std::thread::sleep(std::time::Duration::from_millis(20));
        l.blob("fresh", LAYER);
        assert_eq!(collect(&l.0).unwrap().blobs, 2);
        assert!(l.has("fresh"));
    }

    #[test]
    fn a_folder_without_an_index_or_with_an_empty_one_is_left_alone() {
        let l = Layout::new("noindex");
        l.blob("aa", LAYER);
        assert_eq!(collect(&l.0).unwrap(), Freed::default());
        std::fs::write(l.0.join("index.json"), r#"{"schemaVersion": 2, "manifests": []}"#).unwrap();
        assert_eq!(collect(&l.0).unwrap(), Freed::default());
        assert!(l.has("aa"));
        std::fs::write(l.0.join("index.json"), "{not json").unwrap();
        assert!(collect(&l.0).is_err(), "a broken index is an error, not a reason to delete");
        assert!(l.has("aa"));
    }

    #[test]
    fn local_destinations_come_from_the_definition() {
        let def = Definition::parse(
            r#"{"target": {
                "a": {"cache-to": ["type=local,dest=target/buildx-cache/a,mode=max"]},
                "b": {"cache-to": [{"type": "registry", "ref": "r/x:buildcache"}]},
                "c": {"cache-to": [{"type": "local", "dest": "/abs/c"}]},
                "d": {"cache-to": ["type=local,dest=target/buildx-cache/a"]}
            }}"#,
        )
        .unwrap();
        let dirs = local_dirs(&def, Path::new("/root"));
        assert_eq!(dirs, [PathBuf::from("/abs/c"), PathBuf::from("/root/target/buildx-cache/a")]);
    }

    #[test]
    fn after_build_says_what_was_freed_and_nothing_when_nothing_was() {
        let l = Layout::new("after");
        populated(&l);
        let def = Definition::parse(&format!(
            r#"{{"target": {{"a": {{"cache-to": ["type=local,dest={}"]}}}}}}"#,
            l.0.display()
        ))
        .unwrap();
        let line = clean_all(&local_dirs(&def, Path::new("/"))).expect("something was freed");
        assert!(line.starts_with("local cache: removed 2 unreferenced blob(s), 1."), "{line}");
        assert_eq!(clean_all(&local_dirs(&def, Path::new("/"))), None);
    }

    #[test]
    fn the_clean_up_waits_for_no_build_and_removes_nothing_while_one_runs() {
        let l = Layout::new("alone");
        populated(&l);
        let lock = l.0.with_extension("lock");
        let dirs = [l.0.clone()];
        let other_build = crate::cache::lock::shared_at(&lock).unwrap();
        let line = after_build_at(&lock, &dirs).unwrap().unwrap();
        assert!(line.starts_with("local cache clean-up left for a later build"), "{line}");
        assert!(l.has("old1") && l.has("old2"), "nothing removed while another build runs");
        drop(other_build);
        let line = after_build_at(&lock, &dirs).unwrap().unwrap();
        assert!(line.starts_with("local cache: removed 2"), "{line}");
        assert!(crate::cache::lock::shared_at(&lock).is_ok(), "the clean-up let go of the lock");
        assert_eq!(after_build_at(&lock, &[]).unwrap(), None);
        std::fs::remove_file(lock).unwrap();
    }
}
