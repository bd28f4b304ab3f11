//! `cargo xtask verify IMAGE`: rebuilds the commit a pushed image names (its revision label) from
//! a clean `git archive` of that commit in a scratch folder, without cache and with a fresh
//! cache-mount namespace, and compares the per-platform manifest digests; where one differs, it
//! names the config fields and the layers (with the step that made each) that differ.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::engine;
use crate::settings::Settings;
use crate::util::paths;
use crate::util::runner::{self, Cmd};

/// The public key the signature is checked with: `--key`, else COSIGN_PUBLIC_KEY (empty counts as
/// unset). None only when the user said they accept an unchecked signature, and never with
/// `--no-rebuild`, which would then check nothing that could fail.
pub fn signature_key(
    flag: Option<String>,
    env: Option<String>,
    accept_unchecked: bool,
    no_rebuild: bool,
) -> Result<Option<String>> {
    let key = flag.or(env).filter(|k| !k.is_empty());
    match (key, accept_unchecked, no_rebuild) {
        (Some(key), _, _) => Ok(Some(key)),
        (None, _, true) => bail!(
            "verify --no-rebuild checks only the signature, and there is no public key to check it with: pass --key FILE.pub or set COSIGN_PUBLIC_KEY"
        ),
        (None, false, false) => bail!(
            "verify needs the public key to check the image's signature: pass --key FILE.pub or set COSIGN_PUBLIC_KEY (or --accept-unchecked-signature to rebuild and compare without checking it)"
        ),
        (None, true, false) => Ok(None),
    }
}

/// One platform's image: its manifest's digest, the manifest and the config.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Platform {
    pub(crate) digest: String,
    pub(crate) manifest: Value,
    pub(crate) config: Value,
}

/// What the labels of an image say about where it came from.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) commit: String,
    /// The service, from the title label (`contextcleanse-backend` gives `backend`).
    pub(crate) service: String,
    pub(crate) version: String,
}

/// Reads the labels of an image's config; one clear line for an image this project did not build.
pub(crate) fn origin(image: &str, config: &Value) -> Result<Origin> {
    let labels = &config["config"]["Labels"];
    let label = |k: &str| labels[format!("org.opencontainers.image.{k}")].as_str().unwrap_or_default().to_string();
    let commit = label("revision");
    if commit.is_empty() || commit == "unknown" {
        bail!("`{image}` has no org.opencontainers.image.revision label: it was not built by this project's xtask, so there is no commit to rebuild");
    }
    if commit.ends_with("-dirty") {
        bail!("`{image}` was built from a checkout with uncommitted changes ({commit}): no commit holds its sources");
    }
    let Some(service) = label("title").strip_prefix("contextcleanse-").map(str::to_string) else {
        bail!("`{image}` has no contextcleanse-* title label: it is not one of this project's images");
    };
    Ok(Origin { commit, service, version: label("version") })
}

/// The per-platform manifests below an index (attestations, platform unknown/unknown, left out),
/// fetching each child by digest; a single manifest stands for the platform in its config.
pub(crate) fn platforms(
    top: &Value,
    top_digest: &str,
    fetch: &dyn Fn(&str) -> Option<Value>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(list) = top["manifests"].as_array() else {
        out.insert(String::new(), top_digest.to_string());
        return out;
    };
    for desc in list {
        let Some(digest) = desc["digest"].as_str() else { continue };
        let p = &desc["platform"];
        match (p["os"].as_str(), p["architecture"].as_str()) {
            (Some("unknown"), _) => {}
            (Some(os), Some(arch)) => {
                out.insert(format!("{os}/{arch}"), digest.to_string());
            }
            _ => {
                // A nested index (an OCI layout's index.json points at the image's index).
                if let Some(child) = fetch(digest) {
                    out.extend(platforms(&child, digest, fetch));
                }
            }
        }
    }
    out
}

/// The lines that say how a rebuilt platform differs from the original: config fields first,
/// then each layer that differs with the step that made it.
pub(crate) fn differences(original: &Platform, rebuilt: &Platform) -> Vec<String> {
    let mut out = Vec::new();
    // The registry's config is read through buildx, which keeps the OCI fields only (no
    // Healthcheck): compare fields only when the config blobs differ, and only those it has.
    let config_digest = |p: &Platform| p.manifest["config"]["digest"].clone();
    let configs_differ = config_digest(original) != config_digest(rebuilt);
    for key in ["created", "architecture", "os", "config"].into_iter().filter(|_| configs_differ) {
        if original.config[key] != rebuilt.config[key] {
            if key == "config" {
                for (k, v) in rebuilt.config["config"].as_object().into_iter().flatten() {
                    if !original.config["config"][k].is_null() && original.config["config"][k] != *v {
                        out.push(format!("config.{k}: {} here, {} in the image", v, original.config["config"][k]));
                    }
                }
            } else {
                out.push(format!("config {key}: {} here, {} in the image", rebuilt.config[key], original.config[key]));
            }
        }
    }
    let steps: Vec<String> = rebuilt.config["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| h["empty_layer"] != true)
        .map(|h| h["created_by"].as_str().unwrap_or("?").to_string())
        .collect();
    let layers = |p: &Platform| -> Vec<String> {
        p.manifest["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| l["digest"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let (a, b) = (layers(original), layers(rebuilt));
    if a.len() != b.len() {
        out.push(format!("{} layers here, {} in the image", b.len(), a.len()));
    }
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        if x != y {
            let step = steps.get(i).map(|s| s.trim().chars().take(100).collect::<String>()).unwrap_or_default();
            out.push(format!("layer {} differs ({y} here, {x} in the image), made by: {step}", i + 1));
        }
    }
    out
}

/// The platforms to rebuild: `--platform`'s, each one the image has, or all of the image's.
fn wanted_platforms<T>(only: Option<&str>, original: &BTreeMap<String, T>, image: &str) -> Result<Vec<String>> {
    let wanted: Vec<String> = match only {
        Some(list) => list.split(',').map(|p| p.trim().to_string()).collect(),
        None => original.keys().cloned().collect(),
    };
    if let Some(p) = wanted.iter().find(|p| !original.contains_key(*p)) {
        let has: Vec<&str> = original.keys().map(String::as_str).collect();
        bail!("--platform `{p}`: `{image}` has no such platform; it has {}", has.join(", "));
    }
    Ok(wanted)
}

pub fn run(image: &str, only: Option<&str>) -> Result<()> {
    let settings = Settings::load()?;
    let engine = engine::connect(&settings, false)?;
    let docker = engine.docker();
    let pushed = read_pushed(&docker, image)?;
    // An image only in the engine's store is checked as far as its labels go, so that bad input
    // is named as such before the reason it cannot be verified.
    let local = match &pushed {
        Some(_) => None,
        None => Some(read_local(&docker, image)?),
    };
    let config = match (&pushed, &local) {
        (Some(p), _) => p.values().next().context("the image lists no platform")?.config.clone(),
        (None, Some(c)) => c.clone(),
        (None, None) => unreachable!("read_local answers when nothing was pushed"),
    };
    let origin = origin(image, &config)?;
    let root = paths::project_root();
    let git = |args: &[&str]| runner::read(&Cmd::new("git").args(args.iter().copied()).dir(&root));
    if git(&["cat-file", "-e", &format!("{}^{{commit}}", origin.commit)]).is_err() {
        bail!("commit {} (the revision label of `{image}`) is not in this repository: `git fetch` the branch that holds it, or verify from a checkout that has it", origin.commit);
    }
    let Some(original) = pushed else {
        bail!("`{image}` is only in the engine's store: images loaded into the engine keep the file times of their build, so only pushed images are verified; push it (`cargo xtask production --push`) and verify REGISTRY/NAME:TAG");
    };
    let wanted = wanted_platforms(only, &original, image)?;
    let epoch = git(&["log", "-1", "--format=%ct", &origin.commit])?;
    let scratch =
        paths::checkout_target().join("xtask").join("verify").join(&origin.commit[..12.min(origin.commit.len())]);
    export(&root, &origin.commit, &scratch)?;
    let target = format!("{}-multiplatform", origin.service);
    eprintln!(
        "xtask: verify: rebuilding {} of commit {} for {} from a clean export in {}",
        origin.service,
        origin.commit,
        wanted.join(", "),
        scratch.display()
    );
    let exe = std::env::current_exe().context("finding the xtask's own binary")?;
    let rebuild = Cmd::new(exe.display().to_string())
        .args(["multiplatform", "--oci", "--no-cache", "--release-version", &origin.version])
        .args(["--set", &format!("{target}.platform={}", wanted.join(","))])
        .arg(&target)
        .env("XTASK_PROJECT_ROOT", scratch.join("src").display().to_string())
        .env("XTASK_SOURCE_COMMIT", &origin.commit)
        .env("SOURCE_DATE_EPOCH", epoch.trim())
        .env(
            "BUILDKIT_CACHE_MOUNT_NS",
            crate::settings::run_namespace(&settings, &format!("verify-{}", std::process::id())),
        )
        .dir(scratch.join("src"));
    runner::run(&rebuild).context("rebuilding the commit")?;
    let archive = scratch.join("src/target/xtask/oci").join(format!("{target}.tar"));
    let rebuilt = read_archive(&archive)?;
    let mut differing = 0;
    for p in &wanted {
        let (Some(o), Some(r)) = (original.get(p), rebuilt.get(p)) else {
            bail!(
                "{p}: the image or its rebuild has no such platform (the image has {})",
                original.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        };
        if o.digest == r.digest {
            println!("{p}: {} matches", o.digest);
        } else {
            differing += 1;
            println!("{p}: {} in the image, {} rebuilt", o.digest, r.digest);
            for line in differences(o, r) {
                println!("  {line}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if differing > 0 {
        bail!("`{image}` does not match the rebuild of commit {} on {differing} platform(s)", origin.commit);
    }
    println!("`{image}` is what commit {} builds", origin.commit);
    Ok(())
}

/// A clean copy of the commit's files in `scratch/src`.
fn export(root: &Path, commit: &str, scratch: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(scratch);
    crate::util::paths::export_commit(root, commit, &[], &scratch.join("src"))
}

/// The config of an image in the engine's store, shaped as a registry's (labels under `config`).
fn read_local(docker: &Cmd, image: &str) -> Result<Value> {
    let Ok(text) =
        runner::read(&docker.clone().args(["image", "inspect", "--format", "{{json .Config}}"]).names(&[image]))
    else {
        bail!("`{image}` is in no registry this engine reaches and not in its store: name a pushed image, e.g. 127.0.0.1:5000/contextcleanse-backend:TAG");
    };
    let config: Value = serde_json::from_str(&text).context("reading the image's config")?;
    Ok(serde_json::json!({ "config": config }))
}

/// The platforms of a pushed image, read through buildx (which brings the registry's auth);
/// None when no registry has it.
fn read_pushed(docker: &Cmd, image: &str) -> Result<Option<BTreeMap<String, Platform>>> {
    let raw = |reference: &str| {
        runner::read(&docker.clone().args(["buildx", "imagetools", "inspect", "--raw"]).names(&[reference]))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
    };
    let Some(top) = raw(image) else { return Ok(None) };
    let repo = crate::images::meta::repository(image);
    let configs = runner::read(
        &docker.clone().args(["buildx", "imagetools", "inspect", "--format", "{{json .Image}}"]).names(&[image]),
    )
    .ok()
    .and_then(|t| serde_json::from_str::<Value>(&t).ok())
    .context("reading the image's config")?;
    let mut out = BTreeMap::new();
    for (platform, digest) in platforms(&top, "", &|d| raw(&format!("{repo}@{d}"))) {
        let manifest =
            if digest.is_empty() { top.clone() } else { raw(&format!("{repo}@{digest}")).unwrap_or_default() };
        let config = if configs["config"].is_object() { configs.clone() } else { configs[&platform].clone() };
        let platform = if platform.is_empty() { platform_of(&config) } else { platform };
        let digest = if digest.is_empty() { crate::engine::manifest_digest(docker, image)? } else { digest };
        out.insert(platform, Platform { digest, manifest, config });
    }
    Ok(Some(out))
}

fn platform_of(config: &Value) -> String {
    format!("{}/{}", config["os"].as_str().unwrap_or("linux"), config["architecture"].as_str().unwrap_or("amd64"))
}

/// The platforms of the rebuild's OCI archive.
fn read_archive(path: &PathBuf) -> Result<BTreeMap<String, Platform>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let files = crate::images::oci::small_files(std::io::BufReader::new(file))?;
    let blob = |d: &str| -> Option<Value> {
        files.get(&format!("blobs/{}", d.replacen(':', "/", 1))).and_then(|b| serde_json::from_slice(b).ok())
    };
    let index: Value =
        serde_json::from_slice(files.get("index.json").context("no index.json in the rebuild's archive")?)?;
    let mut out = BTreeMap::new();
    for (platform, digest) in platforms(&index, "", &blob) {
        let manifest = blob(&digest).context("a manifest missing from the archive")?;
        let config =
            manifest["config"]["digest"].as_str().and_then(blob).context("a config missing from the archive")?;
        let platform = if platform.is_empty() { platform_of(&config) } else { platform };
        out.insert(platform, Platform { digest, manifest, config });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_key_verify_refuses_unless_the_unchecked_signature_is_accepted() {
        let key = |flag: Option<&str>, env: Option<&str>, accept, no_rebuild| {
            signature_key(flag.map(String::from), env.map(String::from), accept, no_rebuild).map_err(|e| e.to_string())
        };
        assert_eq!(key(Some("k.pub"), Some("e.pub"), false, false).unwrap().as_deref(), Some("k.pub"));
        assert_eq!(key(None, Some("e.pub"), false, true).unwrap().as_deref(), Some("e.pub"));
        assert!(key(None, None, false, false).unwrap_err().contains("--accept-unchecked-signature"));
        assert!(key(None, Some(""), false, false).is_err(), "an empty COSIGN_PUBLIC_KEY is no key");
        assert_eq!(key(None, None, true, false).unwrap(), None);
        for accept in [false, true] {
            assert!(key(None, None, accept, true).unwrap_err().contains("--no-rebuild checks only the signature"));
        }
    }
    use serde_json::json;

    fn config(labels: Value) -> Value {
        json!({"config": {"Labels": labels}})
    }

    #[test]
    fn an_image_without_a_revision_or_with_changes_is_refused_in_one_line() {
        let err = origin("x:1", &config(json!({}))).unwrap_err().to_string();
        assert!(err.starts_with("`x:1` has no org.opencontainers.image.revision label"), "{err}");
        let dirty = config(json!({"org.opencontainers.image.revision": "abc-dirty"}));
        assert!(origin("x:1", &dirty).unwrap_err().to_string().contains("uncommitted changes"));
        let ok = config(json!({
            "org.opencontainers.image.revision": "abc",
            "org.opencontainers.image.title": "contextcleanse-backend",
            "org.opencontainers.image.version": "0.4.0"
        }));
        assert_eq!(
            origin("x:1", &ok).unwrap(),
            Origin { commit: "abc".into(), service: "backend".into(), version: "0.4.0".into() }
        );
    }

    #[test]
    fn platforms_skip_attestations_and_follow_a_layout_index() {
        let image = json!({"manifests": [
            {"digest": "sha256:a", "platform": {"os": "linux", "architecture": "amd64"}},
            {"digest": "sha256:b", "platform": {"os": "linux", "architecture": "arm64"}},
            {"digest": "sha256:c", "platform": {"os": "unknown", "architecture": "unknown"}}
        ]});
        let layout = json!({"manifests": [{"digest": "sha256:ix"}]});
        let got = platforms(&layout, "", &|d| (d == "sha256:ix").then(|| image.clone()));
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            [("linux/amd64".to_string(), "sha256:a".to_string()), ("linux/arm64".to_string(), "sha256:b".to_string())]
        );
    }

    #[test]
    fn differences_name_the_config_field_and_the_step_of_each_layer() {
        let history = json!([{"created_by": "FROM base", "empty_layer": false}, {"created_by": "ENV X=1", "empty_layer": true}, {"created_by": "RUN make"}]);
        let a = Platform {
            digest: "sha256:1".into(),
            manifest: json!({"layers": [{"digest": "sha256:l1"}, {"digest": "sha256:l2"}]}),
            config: json!({"created": "2026-01-01T00:00:00Z", "config": {"User": "1000"}, "history": history}),
        };
        let mut b = a.clone();
        b.manifest =
            json!({"config": {"digest": "sha256:c2"}, "layers": [{"digest": "sha256:l1"}, {"digest": "sha256:l3"}]});
        b.config["config"]["Healthcheck"] = json!({"Test": ["CMD", "true"]});
        b.config["config"]["User"] = json!("0");
        let lines = differences(&a, &b);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0], "config.User: \"0\" here, \"1000\" in the image");
        assert!(
            lines[1].starts_with("layer 2 differs (sha256:l3 here, sha256:l2 in the image), made by: RUN make"),
            "{}",
            lines[1]
        );
        assert!(differences(&a, &a).is_empty());
    }
}
