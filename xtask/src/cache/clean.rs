//! `cargo xtask clean [--cache] [--images] [--all] [--dry-run] [--yes]`: removes this project's
//! build cache records, local cache folders and images (see `usage` for how they are told from
//! other projects'), and says what it freed. With no scope flag it lists what would go and asks
//! first (on a terminal; elsewhere `--yes` is the answer). The stand-in base images stay (making
//! them again takes minutes), as does the registry's storage.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::cache::lock;
use crate::cache::ownership::{self, Record, World};
use crate::engine::api;
use crate::util::units::human;

/// What to remove; neither flag means both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asked {
    pub(crate) cache: bool,
    pub(crate) images: bool,
}

impl Asked {
    pub fn from_flags(cache: bool, images: bool, all: bool) -> Asked {
        let none = !cache && !images;
        Asked { cache: cache || all || none, images: images || all || none }
    }
}

/// One image to remove: the references to delete (its own tags, or its id when untagged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ImageRemoval {
    pub(crate) refs: Vec<String>,
    pub(crate) size: u64,
}

/// What a clean removes, in the order it removes it.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Record ids, every record after the records built on it.
    pub(crate) records: Vec<String>,
    pub(crate) record_bytes: u64,
    pub(crate) images: Vec<ImageRemoval>,
    pub(crate) dirs: Vec<(PathBuf, u64)>,
    /// Local cache folders the bake file names outside the project's `target/` (an absolute
    /// `CACHE_DIR`): never removed, whatever they hold.
    pub(crate) outside: Vec<PathBuf>,
    /// The project's records that stay (see [`held`]).
    pub(crate) held: usize,
}

impl Plan {
    pub(crate) fn is_empty(&self) -> bool {
        self.records.is_empty() && self.images.is_empty() && self.dirs.iter().all(|(_, b)| *b == 0)
    }
}

/// Orders the chosen records so that each comes after every chosen record built on it (BuildKit
/// removes no record another still holds as its parent).
pub(crate) fn removal_order(records: &[Record], chosen: &BTreeSet<String>) -> Vec<String> {
    let mut left: BTreeSet<String> = chosen.clone();
    let mut order = Vec::new();
    while !left.is_empty() {
        let leaves: Vec<String> = left
            .iter()
            .filter(|id| !records.iter().any(|r| left.contains(&r.id) && r.parents.iter().flatten().any(|p| p == *id)))
            .cloned()
            .collect();
        // A cycle cannot happen in BuildKit's records; if it did, take the rest as they come.
        let step = if leaves.is_empty() { left.iter().cloned().collect() } else { leaves };
        for id in step {
            left.remove(&id);
            order.push(id);
        }
    }
    order
}

/// The project's records that must stay: in use, or below a record that is not the project's,
/// and everything below those.
pub(crate) fn held(records: &[Record], ours: &BTreeSet<String>) -> BTreeSet<String> {
    let mut held: BTreeSet<String> =
        records.iter().filter(|r| ours.contains(&r.id) && r.in_use).map(|r| r.id.clone()).collect();
    let mut holders: Vec<&Record> = records.iter().filter(|r| !ours.contains(&r.id) || r.in_use).collect();
    while let Some(r) = holders.pop() {
        for p in r.parents.iter().flatten() {
            if ours.contains(p) && held.insert(p.clone()) {
                holders.extend(records.iter().filter(|x| &x.id == p));
            }
        }
    }
    held
}

/// The pure part: what to remove of the world read.
pub(crate) fn plan(world: &World, asked: Asked, dir_sizes: &[(PathBuf, u64)]) -> Plan {
    let mut plan = Plan::default();
    if asked.cache {
        let records = world.usage.records.clone().unwrap_or_default();
        let ours = world.owner.records(&records);
        // A record in use belongs to something running now, and one another project's step
        // builds on cannot go (BuildKit keeps a parent): both stay, with what they stand on.
        let held = held(&records, &ours);
        plan.held = held.len();
        let free: BTreeSet<String> =
            records.iter().filter(|r| ours.contains(&r.id) && !held.contains(&r.id)).map(|r| r.id.clone()).collect();
        plan.record_bytes = records.iter().filter(|r| free.contains(&r.id)).map(|r| r.size).sum();
        plan.records = removal_order(&records, &free);
        let inside = |d: &PathBuf| crate::util::paths::normalize(d).starts_with(&world.target);
        plan.dirs = dir_sizes.iter().filter(|(d, _)| inside(d)).cloned().collect();
        plan.outside = dir_sizes.iter().filter(|(d, _)| !inside(d)).map(|(d, _)| d.clone()).collect();
    }
    if asked.images {
        let images = world.usage.images.clone().unwrap_or_default();
        for image in world.owner.images(&images) {
            let tags = world.owner.own_tags(image);
            let refs = if tags.is_empty() { vec![image.id.clone()] } else { tags };
            plan.images.push(ImageRemoval { refs, size: image.size.max(0) as u64 });
        }
    }
    plan
}

/// The filter that names exactly one record (the engine matches `id` as a pattern; a whole
/// 25-character record id matches only itself).
pub fn prune_path(id: &str) -> String {
    let filters = serde_json::json!({ "id": [id] }).to_string();
    format!("/build/prune?all=1&filters={}", api::escape(&filters))
}

/// What a clean did.
struct Done {
    records: usize,
    images: usize,
    freed: u64,
    /// Image references the engine refused to delete.
    kept: Vec<String>,
}

/// The effects: records one by one, the local cache folders, then the images' own tags.
fn apply(world: &World, plan: &Plan) -> Result<Done> {
    let mut done = Done { records: 0, images: 0, freed: 0, kept: Vec::new() };
    for id in &plan.records {
        if let Some((200, body)) = world.api.request("POST", &prune_path(id)) {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            done.records += v["CachesDeleted"].as_array().map_or(0, Vec::len);
            done.freed += v["SpaceReclaimed"].as_u64().unwrap_or(0);
        }
    }
    for (dir, bytes) in &plan.dirs {
        if dir.is_dir() {
            std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
            done.freed += bytes;
        }
    }
    for image in &plan.images {
        let mut all_gone = true;
        for r in &image.refs {
            match world.api.request("DELETE", &format!("/images/{}", api::escape(r))) {
                Some((200, _)) | Some((404, _)) => {}
                _ => {
                    all_gone = false;
                    done.kept.push(r.clone());
                }
            }
        }
        if all_gone {
            done.images += 1;
            done.freed += image.size;
        }
    }
    Ok(done)
}

/// Whether a clean asks before it removes: only when no scope flag chose what goes (then it would
/// remove everything) and `--yes` did not answer already.
pub fn asks(cache: bool, images: bool, all: bool, yes: bool) -> bool {
    !(cache || images || all || yes)
}

/// Only "y" or "yes" (any case) is a yes; anything else, an empty line included, removes nothing.
pub(crate) fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// What the plan would remove, as the dry run and the question show it.
fn list(plan: &Plan, verb: &str) {
    let dirs_bytes: u64 = plan.dirs.iter().map(|(_, b)| b).sum();
    let image_bytes: u64 = plan.images.iter().map(|i| i.size).sum();
    println!(
        "{verb} {} build cache record(s) ({}), the local cache folders ({}) and {} image(s) ({})",
        plan.records.len(),
        human(plan.record_bytes),
        human(dirs_bytes),
        plan.images.len(),
        human(image_bytes)
    );
    for i in &plan.images {
        println!("  image {}", i.refs.join(", "));
    }
}

/// Lists what a clean without a scope flag would remove and asks; true on a yes. Without a
/// terminal to ask on it refuses, so a script never removes everything by leaving a flag out.
/// The build lock is not held meanwhile: a build must not wait on a person's answer.
fn confirm(asked: &Asked) -> Result<bool> {
    use std::io::IsTerminal;
    let world = ownership::read_world()?;
    let dir_sizes: Vec<(PathBuf, u64)> =
        world.cache_dirs.iter().map(|d| (d.clone(), crate::util::paths::dir_size(d))).collect();
    let plan = plan(&world, *asked, &dir_sizes);
    if plan.is_empty() {
        return Ok(true); // nothing to ask about: the run below says so
    }
    list(&plan, "this would remove");
    if !std::io::stdin().is_terminal() {
        bail!(
            "clean without --cache, --images or --all removes all of the above and asks first, but there is no \
             terminal to ask on: nothing removed; run `cargo xtask clean --yes` to remove it all, or name what goes"
        );
    }
    eprint!("remove all of it? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).context("reading the answer")?;
    if !is_yes(&answer) {
        println!("nothing removed");
    }
    Ok(is_yes(&answer))
}

pub fn run(asked: &Asked, dry_run: bool, ask: bool) -> Result<()> {
    if ask && !dry_run && !confirm(asked)? {
        return Ok(());
    }
    let Some(_lock) = lock::exclusive_now()? else {
        bail!(
            "a build is running (it holds {}): nothing removed; run `cargo xtask clean` again when it has ended",
            lock::file().display()
        )
    };
    let world = ownership::read_world()?;
    let dir_sizes: Vec<(PathBuf, u64)> =
        world.cache_dirs.iter().map(|d| (d.clone(), crate::util::paths::dir_size(d))).collect();
    let plan = plan(&world, *asked, &dir_sizes);
    for dir in &plan.outside {
        println!("left {} alone: a cache folder outside target/ is not the xtask's to remove", dir.display());
    }
    let held_line = || {
        if plan.held > 0 {
            println!("kept {} record(s) in use or built on by something else", plan.held);
        }
    };
    if plan.is_empty() {
        println!(
            "nothing of this project's to clean on {}; other projects' cache and images left alone",
            world.engine.describe()
        );
        held_line();
        return Ok(());
    }
    if dry_run {
        list(&plan, "would remove");
        println!("nothing removed");
        return Ok(());
    }
    let done = apply(&world, &plan)?;
    println!(
        "removed {} build cache record(s), {} local cache folder(s) and {} image(s): {} freed",
        done.records,
        plan.dirs.iter().filter(|(_, b)| *b > 0).count(),
        done.images,
        human(done.freed)
    );
    if !done.kept.is_empty() {
        println!("kept {} (a container uses it: `cargo xtask down` first)", done.kept.join(", "));
    }
    held_line();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, parent: Option<&str>) -> Record {
        Record { id: id.into(), parents: parent.map(|p| vec![p.to_string()]), ..Record::default() }
    }

    #[test]
    fn only_a_clean_without_scope_or_yes_asks_and_only_yes_is_yes() {
        assert!(asks(false, false, false, false));
        assert!(
            !asks(false, false, false, true) && !asks(true, false, false, false) && !asks(false, false, true, false)
        );
        for yes in ["y", "Y", "yes", " YES\n"] {
            assert!(is_yes(yes), "{yes:?}");
        }
        for no in ["", "\n", "n", "no", "yes please", "ja", "y e s"] {
            assert!(!is_yes(no), "{no:?}");
        }
    }

    #[test]
    fn flags_choose_what_goes_and_none_means_both() {
        assert_eq!(Asked::from_flags(false, false, false), Asked { cache: true, images: true });
        assert_eq!(Asked::from_flags(true, false, false), Asked { cache: true, images: false });
        assert_eq!(Asked::from_flags(false, true, false), Asked { cache: false, images: true });
        assert_eq!(Asked::from_flags(false, false, true), Asked { cache: true, images: true });
    }

    #[test]
    fn records_go_after_what_is_built_on_them() {
        let records = vec![record("a", None), record("b", Some("a")), record("c", Some("b")), record("x", None)];
        let chosen: BTreeSet<String> = ["a", "b", "c", "x"].map(String::from).into();
        assert_eq!(removal_order(&records, &chosen), ["c", "x", "b", "a"]);
        // A parent whose child is not chosen still comes (BuildKit keeps it if the child holds it).
        let chosen: BTreeSet<String> = ["a"].map(String::from).into();
        assert_eq!(removal_order(&records, &chosen), ["a"]);
    }

    #[test]
    fn a_record_another_builds_on_stays_with_what_it_stands_on() {
        let mut records = vec![record("a", None), record("b", Some("a")), record("f", Some("b")), record("c", None)];
        let ours: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
        assert_eq!(held(&records, &ours), ["a", "b"].map(String::from).into());
        records[3].in_use = true;
        assert_eq!(held(&records, &ours), ["a", "b", "c"].map(String::from).into());
    }

    #[test]
    fn the_plan_takes_only_what_was_asked_and_only_the_projects() {
        use crate::cache::ownership::{DiskUsage, Image, Owner};
        let kept = ["run", "copy"].map(String::from).into();
        let owner = Owner::new(vec!["contextcleanse".into()], kept, ["contextcleanse-backend".to_string()].into());
        let described = |id: &str, parent: Option<&str>, description: &str| Record {
            description: description.into(),
            size: 5,
            ..record(id, parent)
        };
        let image = |id: &str, tag: &str| Image { id: id.into(), tags: Some(vec![tag.into()]), labels: None, size: 7 };
        let world = World {
            engine: crate::engine::Engine::default(),
            api: crate::engine::api::Endpoint::Socket(PathBuf::new()),
            usage: DiskUsage {
                records: Some(vec![
                    described("run", Some("base"), "mount / from exec /bin/sh -c make"),
                    described("copy", Some("run"), "[app 2/2] COPY app/ ./app/"),
                    described("foreign", Some("base"), "mount / from exec /bin/sh -c make install"),
                ]),
                images: Some(vec![image("a", "contextcleanse-backend:dev"), image("b", "foreignproj:1")]),
                layers_size: 0,
            },
            owner,
            cache_dirs: vec![],
            target: PathBuf::from("/c/target"),
        };
        let dirs = [(PathBuf::from("/c/target/buildx-cache/backend"), 3)];
        let all = plan(&world, Asked::from_flags(false, false, true), &dirs);
        assert_eq!(all.records, ["copy", "run"]);
        assert_eq!(all.record_bytes, 10);
        assert_eq!(all.images, [ImageRemoval { refs: vec!["contextcleanse-backend:dev".into()], size: 7 }]);
        assert_eq!(all.dirs, dirs);
        let images = plan(&world, Asked::from_flags(false, true, false), &dirs);
        assert!(images.records.is_empty() && images.dirs.is_empty() && images.images.len() == 1);
        let cache = plan(&world, Asked::from_flags(true, false, false), &dirs);
        assert!(cache.images.is_empty() && cache.records.len() == 2);
        // CACHE_DIR pointing elsewhere: named, never removed, whatever it holds.
        let elsewhere = [(PathBuf::from("/home/me"), 9), (PathBuf::from("/c/target/../home"), 9)];
        let cache = plan(&world, Asked::from_flags(true, false, false), &elsewhere);
        assert!(cache.dirs.is_empty(), "{:?}", cache.dirs);
        assert_eq!(cache.outside, [PathBuf::from("/home/me"), PathBuf::from("/c/target/../home")]);
    }

    #[test]
    fn one_record_per_prune() {
        assert_eq!(
            prune_path("qs0wy5wzhwkohom4l5vx1hbel"),
            "/build/prune?all=1&filters=%7B%22id%22:%5B%22qs0wy5wzhwkohom4l5vx1hbel%22%5D%7D"
        );
    }
}
