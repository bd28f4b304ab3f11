//! `cargo xtask du`, and what `clean` may remove: which of the engine's build cache records and
//! images are this project's, and the disk the project uses besides (registry storage, `target/`).
//!
//! BuildKit's records carry no project label, and a layer's description is the same in every
//! project with the same Dockerfiles, so a record is the project's only by a mark the project set:
//! - a cache mount whose id lies in the project's namespace (`BUILDKIT_CACHE_MOUNT_NS`, or one of
//!   the runs inside it, `NS--…`: the bench's cold builds, `verify`'s rebuild), or
//! - a record one of the project's builds made, by the id it kept (`cache::records`).
//!
//! Anything else (another project's steps, layers this project only reused, the build contexts
//! BuildKit keeps for every project) is left alone: a record that cannot be told apart is never
//! taken. Images are the project's by their repository (`contextcleanse-backend`, from the bake
//! file's tags) or, untagged, by their `org.opencontainers.image.title` label.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::engine::api;
use crate::engine::{self, Engine, Layout};
use crate::settings::Settings;
use crate::util::paths;
use crate::util::units::human;

/// One build cache record, as the engine's `/system/df` lists it.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Record {
    #[serde(rename = "ID")]
    pub(crate) id: String,
    // Docker 26 spells the key with a leading space; newer engines fixed it.
    #[serde(rename = "Parents", alias = " Parents", default)]
    pub(crate) parents: Option<Vec<String>>,
    #[serde(rename = "Type", default)]
    pub(crate) kind: String,
    #[serde(rename = "Description", default)]
    pub(crate) description: String,
    #[serde(rename = "Size", default)]
    pub(crate) size: u64,
    #[serde(rename = "InUse", default)]
    pub(crate) in_use: bool,
}

/// One image, as `/system/df` lists it.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Image {
    #[serde(rename = "Id")]
    pub(crate) id: String,
    #[serde(rename = "RepoTags", default)]
    pub(crate) tags: Option<Vec<String>>,
    #[serde(rename = "Labels", default)]
    pub(crate) labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "Size", default)]
    pub(crate) size: i64,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct DiskUsage {
    #[serde(rename = "BuildCache", default)]
    pub(crate) records: Option<Vec<Record>>,
    #[serde(rename = "Images", default)]
    pub(crate) images: Option<Vec<Image>>,
    #[serde(rename = "LayersSize", default)]
    pub(crate) layers_size: i64,
}

/// What marks a thing as the project's.
#[derive(Clone, Debug, Default)]
pub(crate) struct Owner {
    pub(crate) namespaces: Vec<String>,
    /// The ids of the records the project's builds made on this engine.
    pub(crate) kept: BTreeSet<String>,
    /// Image repositories without a registry (`contextcleanse-backend`).
    pub(crate) repos: BTreeSet<String>,
}

impl Owner {
    pub fn new(namespaces: Vec<String>, kept: BTreeSet<String>, repos: BTreeSet<String>) -> Owner {
        Owner { namespaces, kept, repos }
    }

    /// The namespace of a cache mount's description (`… with id "NS//path"`).
    fn cache_mount_ns(description: &str) -> Option<&str> {
        let id = description.rsplit_once(" with id \"")?.1.strip_suffix('"')?;
        Some(id.split_once('/')?.0)
    }

    fn is_ours(&self, r: &Record) -> bool {
        if r.kind == "exec.cachemount" {
            return Owner::cache_mount_ns(&r.description).is_some_and(|ns| {
                !ns.is_empty() && self.namespaces.iter().any(|n| ns == n || (n.ends_with('-') && ns.starts_with(n)))
            });
        }
        self.kept.contains(&r.id)
    }

    /// The ids of the project's records.
    pub(crate) fn records(&self, records: &[Record]) -> BTreeSet<String> {
        records.iter().filter(|r| self.is_ours(r)).map(|r| r.id.clone()).collect()
    }

    /// The project's images: by repository, or, untagged, by title label.
    pub(crate) fn images<'a>(&self, images: &'a [Image]) -> Vec<&'a Image> {
        images
            .iter()
            .filter(|i| {
                let tags = i.tags.clone().unwrap_or_default();
                let tagged: Vec<&String> = tags.iter().filter(|t| !t.starts_with("<none>")).collect();
                if tagged.is_empty() {
                    let title = i.labels.as_ref().and_then(|l| l.get("org.opencontainers.image.title"));
                    return title.is_some_and(|t| self.repos.contains(t));
                }
                tagged.iter().any(|t| self.repos.contains(crate::images::meta::short_name(t)))
            })
            .collect()
    }

    /// The tags of an image that are the project's (a foreign tag on the same image stays).
    pub(crate) fn own_tags(&self, image: &Image) -> Vec<String> {
        let tags = image.tags.clone().unwrap_or_default();
        tags.into_iter()
            .filter(|t| !t.starts_with("<none>") && self.repos.contains(crate::images::meta::short_name(t)))
            .collect()
    }
}

/// Everything `du` and `clean` read, read once.
pub(crate) struct World {
    pub(crate) engine: Engine,
    /// The engine's API: its unix socket, or the docker CLI's connection (ssh://, a context).
    pub(crate) api: api::Endpoint,
    pub(crate) usage: DiskUsage,
    pub(crate) owner: Owner,
    /// The local cache folders the bake file exports to.
    pub(crate) cache_dirs: Vec<PathBuf>,
    /// The project's `target/`: the only place `clean` removes a cache folder from.
    pub(crate) target: PathBuf,
}

pub(crate) fn read_world() -> Result<World> {
    let settings = Settings::load()?;
    let engine = engine::connect(&settings, false)?;
    let endpoint = engine.api();
    let body = crate::engine::store::disk_usage(&engine, "/system/df")?;
    let usage: DiskUsage = serde_json::from_str(&body).context("reading the engine's /system/df")?;
    let root = paths::project_root();
    let def = crate::images::bake::print(&engine.docker(), &[], &["all".to_string()])?;
    let repos = def
        .target
        .values()
        .flat_map(|t| t.tags.iter())
        .map(|t| crate::images::meta::short_name(t).to_string())
        .collect();
    let own = crate::settings::own_namespace(&settings);
    let namespaces = vec![own.clone(), format!("{own}--")];
    let owner = Owner::new(namespaces, crate::cache::records::kept(&engine), repos);
    let cache_dirs = crate::cache::gc::local_dirs(&def, &root);
    let target = crate::util::paths::normalize(&root.join("target"));
    Ok(World { engine, api: endpoint, usage, owner, cache_dirs, target })
}

/// The bytes of the blobs the private registry keeps for the project's repositories.
fn registry_bytes(engine: &Engine, owner: &Owner) -> Option<(PathBuf, u64)> {
    let storage = Layout::new(engine.spec?).root.join("registry/docker/registry/v2");
    let mut digests = BTreeSet::new();
    // Repositories nest (`127.0.0.1:5000/team/contextcleanse-backend`): a folder holding
    // `_layers` is one, named by its last part.
    let mut dirs = vec![storage.join("repositories")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if !path.join("_layers").is_dir() {
                if path.is_dir() && !entry.file_name().to_string_lossy().starts_with('_') {
                    dirs.push(path);
                }
                continue;
            }
            if !owner.repos.contains(entry.file_name().to_string_lossy().as_ref()) {
                continue;
            }
            for part in ["_layers/sha256", "_manifests/revisions/sha256"] {
                for d in std::fs::read_dir(path.join(part)).into_iter().flatten().flatten() {
                    digests.insert(d.file_name().to_string_lossy().to_string());
                }
            }
        }
    }
    let blobs = storage.join("blobs/sha256");
    let bytes = digests
        .iter()
        .filter_map(|d| std::fs::metadata(blobs.join(d.get(..2)?).join(d).join("data")).ok())
        .map(|m| m.len())
        .sum();
    Some((storage, bytes))
}

pub fn du() -> Result<()> {
    let w = read_world()?;
    let records = w.usage.records.clone().unwrap_or_default();
    let ours = w.owner.records(&records);
    let mut by_ns: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    let (mut layers, mut layer_bytes) = (0, 0);
    for r in records.iter().filter(|r| ours.contains(&r.id)) {
        match Owner::cache_mount_ns(&r.description).filter(|_| r.kind == "exec.cachemount") {
            Some(ns) => {
                let e = by_ns.entry(ns.to_string()).or_default();
                e.0 += 1;
                e.1 += r.size;
            }
            None => (layers, layer_bytes) = (layers + 1, layer_bytes + r.size),
        }
    }
    let all_bytes: u64 = records.iter().map(|r| r.size).sum();
    println!("build cache (this project's, on {}):", w.engine.describe());
    println!("  {:<44} {:>5} records {:>10}", "step layers", layers, human(layer_bytes));
    for (ns, (n, bytes)) in &by_ns {
        println!("  {:<44} {:>5} records {:>10}", format!("cache mounts, namespace {ns}"), n, human(*bytes));
    }
    for dir in &w.cache_dirs {
        let shown = dir.strip_prefix(paths::project_root()).unwrap_or(dir);
        println!("  {:<44} {:>13} {:>10}", shown.display(), "local", human(paths::dir_size(dir)));
    }
    let images = w.usage.images.clone().unwrap_or_default();
    let own = w.owner.images(&images);
    println!("images (this project's; the engine's sizes):");
    for i in &own {
        let tags = w.owner.own_tags(i);
        let name = if tags.is_empty() { format!("(untagged) {}", short(&i.id)) } else { tags.join(", ") };
        println!("  {:<60} {:>10}", name, human(i.size.max(0) as u64));
    }
    match registry_bytes(&w.engine, &w.owner) {
        Some((dir, bytes)) => {
            println!("registry storage: {} of the project's blobs in {}", human(bytes), dir.display())
        }
        None => println!("registry storage: none of the xtask's (the engine is not a private one)"),
    }
    println!("target/:");
    let target = paths::project_root().join("target");
    for e in std::fs::read_dir(&target).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name == "engine" {
            println!("  {name:<20} (the private engines: their disk is the engine's, below)");
        } else if e.file_type().is_ok_and(|t| t.is_dir()) {
            println!("  {name:<20} {:>10}", human(paths::dir_size(&e.path())));
        }
    }
    let image_bytes: i64 = images.iter().map(|i| i.size.max(0)).sum();
    println!(
        "engine totals (every project): build cache {} records {}, images {} {} (layers {})",
        records.len(),
        human(all_bytes),
        images.len(),
        human(image_bytes as u64),
        human(w.usage.layers_size.max(0) as u64)
    );
    Ok(())
}

pub(crate) fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
#[path = "ownership_tests.rs"]
mod tests;
