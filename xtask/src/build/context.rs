//! What each target's build reads, taken before buildx starts: the content manifest of its
//! context as the Dockerfile's `COPY`, `ADD` and bind mounts see it after `.dockerignore`, its
//! build arguments and its Dockerfile. A file whose size and modification time are as last seen
//! keeps its hash from a small stat cache (`target/xtask/context-stat.json`) and is not read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::plan::Plan;
use crate::report::why::TargetInputs;
use crate::util::hash::fnv1a;
use crate::util::pathmatch::Ignore;
use crate::util::paths::{self, write_atomic};

/// A file as last hashed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Seen {
    size: u64,
    mtime_ns: u128,
    hash: String,
}

/// The stat cache: absolute path → the file as last hashed.
type StatCache = BTreeMap<String, Seen>;

/// A change this close to the hashing could land in the same tick of the clock after it: such a
/// file is hashed again next time rather than trusted by its time.
const RACY: Duration = Duration::from_secs(2);

fn stat_file() -> PathBuf {
    paths::xtask_dir().join("context-stat.json")
}

/// Each target's inputs (its bases are filled in from the build's own steps afterwards). A
/// context that cannot be read is recorded as unread, never as empty: its causes are then unknown.
pub(crate) fn inputs(plan: &Plan) -> BTreeMap<String, TargetInputs> {
    let file = stat_file();
    let before: StatCache = crate::util::paths::read_json(&file);
    let mut cache = StatCache::new();
    let mut out = BTreeMap::new();
    for t in &plan.targets {
        let Some(def) = plan.definition.target.get(t) else { continue };
        let context = plan.root.join(def.context.as_deref().unwrap_or("."));
        let dockerfile = context.join(def.dockerfile.as_deref().unwrap_or("Dockerfile"));
        let mut args = def.args.clone();
        args.extend(plan.build_args.iter().cloned());
        args.extend(set_args(&plan.sets, t));
        hide_secrets(&mut args);
        let ignore = dockerignore(&context, &dockerfile);
        out.insert(
            t.clone(),
            TargetInputs {
                files: ignore.and_then(|i| manifest(&context, &i, &before, &mut cache)),
                args,
                dockerfile: std::fs::read_to_string(&dockerfile).unwrap_or_default(),
                bases: BTreeMap::new(),
                no_cache: plan.no_cache,
                platforms: set_platforms(&plan.sets, t).unwrap_or_else(|| def.platforms.clone()),
            },
        );
    }
    if cache != before {
        // Only files still in some context stay: the cache does not grow with every file ever seen.
        if let Ok(text) = serde_json::to_vec(&cache) {
            let _ = write_atomic(&file, &text);
        }
    }
    out
}

/// The build arguments bake's `--set` lines give the target (`*.args.K=V` or `TARGET.args.K=V`),
/// such as the commit's `SOURCE_DATE_EPOCH`.
fn set_args(sets: &[String], target: &str) -> Vec<(String, String)> {
    sets.iter()
        .filter_map(|s| {
            let (key, value) = s.split_once('=')?;
            let (who, name) = key.split_once(".args.")?;
            (who == "*" || who == target).then(|| (name.to_string(), value.to_string()))
        })
        .collect()
}

/// The platforms the last `--set` of them for the target gives (`*.platform=a,b`), if any.
fn set_platforms(sets: &[String], target: &str) -> Option<Vec<String>> {
    sets.iter().rev().find_map(|s| {
        let (key, value) = s.split_once('=')?;
        let who = key.strip_suffix(".platform")?;
        (who == "*" || who == target).then(|| value.split(',').map(str::to_string).collect())
    })
}

/// The `.dockerignore` BuildKit uses: the Dockerfile's own (`Dockerfile.dockerignore`) first,
/// else the context's. None when one exists but cannot be read.
fn dockerignore(context: &Path, dockerfile: &Path) -> Option<Ignore> {
    let own = PathBuf::from(format!("{}.dockerignore", dockerfile.display()));
    for file in [own, context.join(".dockerignore")] {
        match std::fs::read_to_string(&file) {
            Ok(text) => return Some(Ignore::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => return None,
        }
    }
    Some(Ignore::default())
}

/// The context's files (relative, `/`-separated) → content hash; none when it is not a folder
/// that can be read whole. `seen` is the stat cache as read; `kept` gets the files of this context.
fn manifest(
    context: &Path,
    ignore: &Ignore,
    seen: &StatCache,
    kept: &mut StatCache,
) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![String::new()];
    let now = SystemTime::now();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(context.join(&dir)).ok()? {
            let entry = entry.ok()?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if dir.is_empty() { name } else { format!("{dir}/{name}") };
            let meta = entry.path().symlink_metadata().ok()?;
            if meta.is_dir() {
                if !ignore.excludes(&rel) || ignore.may_bring_back_below(&rel) {
                    dirs.push(rel);
                }
                continue;
            }
            if ignore.excludes(&rel) {
                continue;
            }
            let hash = if meta.file_type().is_symlink() {
                let target = std::fs::read_link(entry.path()).ok()?;
                format!("link:{}", target.display())
            } else {
                hash_file(&entry.path(), &meta, now, seen, kept)?
            };
            out.insert(rel, hash);
        }
    }
    Some(out)
}

/// The file's content hash, from the stat cache when its size and time are as last seen.
fn hash_file(
    path: &Path,
    meta: &std::fs::Metadata,
    now: SystemTime,
    seen: &StatCache,
    kept: &mut StatCache,
) -> Option<String> {
    let key = path.display().to_string();
    let modified = meta.modified().ok()?;
    let mtime_ns = modified.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    if let Some(same) = seen.get(&key).filter(|s| s.size == meta.len() && s.mtime_ns == mtime_ns) {
        kept.insert(key, same.clone());
        return Some(same.hash.clone());
    }
    let bytes = std::fs::read(path).ok()?;
    let hash = format!("{:016x}", fnv1a(bytes));
    let settled = now.duration_since(modified).is_ok_and(|age| age > RACY);
    if settled {
        kept.insert(key, Seen { size: meta.len(), mtime_ns, hash: hash.clone() });
    }
    Some(hash)
}

/// A secret-like argument is kept as a fingerprint of its value: enough to tell that it changed,
/// while neither the kept inputs nor the causes in a report hold the value itself.
fn hide_secrets<'a>(args: impl IntoIterator<Item = (&'a String, &'a mut String)>) {
    for (name, value) in args {
        if crate::report::why::secret_like(name) {
            *value = format!("fingerprint {:016x}", crate::util::hash::fnv1a(value.bytes()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_like_argument_is_kept_as_a_fingerprint_that_still_tells_a_change() {
        let args = |token: &str| {
            let mut a: BTreeMap<String, String> =
                [("API_TOKEN".to_string(), token.to_string()), ("VERSION".to_string(), "1.2.3".to_string())].into();
            hide_secrets(&mut a);
            a
        };
        let (one, two) = (args("abc123"), args("abc124"));
        assert!(!one["API_TOKEN"].contains("abc123") && one["API_TOKEN"].starts_with("fingerprint "));
        assert_ne!(one["API_TOKEN"], two["API_TOKEN"], "a changed secret still shows as changed");
        assert_eq!(one["VERSION"], "1.2.3", "other arguments are kept as they are");
    }

    fn tree(name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-context-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, text) in files {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    /// Dates a file a minute back, so the stat cache trusts it.
    fn settle(path: &Path) {
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(60)).unwrap();
    }

    #[test]
    fn the_manifest_is_the_context_after_dockerignore() {
        let dir = tree(
            "ignore",
            &[
                ("app/main.py", "x"),
                ("app/.env", "SECRET"),
                ("node_modules/a/b.js", "y"),
                ("README.md", "r"),
                ("req.txt", "z"),
            ],
        );
        let ignore = Ignore::parse("**/node_modules\n*.md\n**/.env*\n");
        let m = manifest(&dir, &ignore, &StatCache::new(), &mut StatCache::new()).unwrap();
        assert_eq!(m.keys().collect::<Vec<_>>(), ["app/main.py", "req.txt"]);
        assert_eq!(m["app/main.py"], format!("{:016x}", fnv1a(*b"x")));
        assert!(manifest(&dir.join("missing"), &ignore, &StatCache::new(), &mut StatCache::new()).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn set_lines_give_their_targets_arguments() {
        let sets =
            ["*.args.SOURCE_DATE_EPOCH=5", "backend.args.X=1", "frontend.args.Y=2", "backend.tags=t"].map(String::from);
        assert_eq!(set_platforms(&sets, "backend"), None);
        let platforms = ["*.platform=linux/amd64", "frontend.platform=linux/amd64,linux/arm64"].map(String::from);
        assert_eq!(set_platforms(&platforms, "backend").unwrap(), ["linux/amd64"]);
        assert_eq!(set_platforms(&platforms, "frontend").unwrap(), ["linux/amd64", "linux/arm64"]);
        assert_eq!(
            set_args(&sets, "backend"),
            [("SOURCE_DATE_EPOCH".to_string(), "5".to_string()), ("X".to_string(), "1".to_string())]
        );
    }

    #[test]
    fn an_unchanged_file_is_known_by_size_and_time_and_a_changed_one_is_read_again() {
        let dir = tree("stat", &[("a.txt", "one")]);
        let file = dir.join("a.txt");
        settle(&file);
        let mut cache = StatCache::new();
        let first = manifest(&dir, &Ignore::default(), &StatCache::new(), &mut cache).unwrap();
        // The cache, not the file, answers for a file whose size and time are as seen.
        let key = file.display().to_string();
        cache.get_mut(&key).unwrap().hash = "from-cache".into();
        let mut kept = StatCache::new();
        assert_eq!(manifest(&dir, &Ignore::default(), &cache, &mut kept).unwrap()["a.txt"], "from-cache");
        assert_eq!(kept, cache, "what was seen again is kept");
        std::fs::write(&file, "two").unwrap();
        let mut kept = StatCache::new();
        let fresh = manifest(&dir, &Ignore::default(), &cache, &mut kept).unwrap();
        assert_ne!(fresh["a.txt"], first["a.txt"]);
        assert!(kept.is_empty(), "a file changed just now is not trusted by its time");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
