//! Per-platform image sizes from an OCI image layout in a tar stream, as `docker image save` and
//! buildx's `type=oci` output write it. Only `index.json` and the small JSON blobs (indexes and
//! manifests) are kept; layer blobs stream past unread.

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{Context, Result};
use serde_json::Value;

/// Blobs larger than this are layers (or configs too big to matter here): skipped.
const JSON_LIMIT: u64 = 1 << 20;

/// Compressed layer bytes per platform (`linux/amd64`, `linux/arm64/v8`, …) of the image in an
/// OCI layout tar stream. Attestation manifests (platform unknown/unknown) are left out.
pub(crate) fn platform_sizes(reader: impl Read) -> Result<BTreeMap<String, u64>> {
    let files = small_files(reader)?;
    let index: Value = serde_json::from_slice(files.get("index.json").context("no index.json in the OCI layout")?)
        .context("parsing index.json")?;
    Ok(sizes(&index, |digest| {
        files.get(&format!("blobs/{}", digest.replacen(':', "/", 1))).and_then(|b| serde_json::from_slice(b).ok())
    }))
}

/// Sums each platform's layer sizes below an index, fetching indexes and manifests by digest.
/// A descriptor listed several times (one per tag in `index.json`) counts once.
pub(crate) fn sizes(root: &Value, fetch: impl Fn(&str) -> Option<Value>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    walk(root, None, &fetch, &mut seen, &mut out, 0);
    out
}

fn walk(
    doc: &Value,
    platform: Option<String>,
    fetch: &impl Fn(&str) -> Option<Value>,
    seen: &mut std::collections::BTreeSet<String>,
    out: &mut BTreeMap<String, u64>,
    depth: usize,
) {
    if depth > 4 {
        return;
    }
    if let Some(layers) = doc["layers"].as_array() {
        if let Some(p) = platform.filter(|p| p != "unknown/unknown") {
            *out.entry(p).or_default() += layers.iter().filter_map(|l| l["size"].as_u64()).sum::<u64>();
        }
        return;
    }
    for desc in doc["manifests"].as_array().into_iter().flatten() {
        let Some(digest) = desc["digest"].as_str() else { continue };
        if !seen.insert(digest.to_string()) {
            continue;
        }
        let Some(child) = fetch(digest) else { continue };
        let p = &desc["platform"];
        let here = match (p["os"].as_str(), p["architecture"].as_str()) {
            (Some(os), Some(arch)) => Some(match p["variant"].as_str() {
                Some(v) => format!("{os}/{arch}/{v}"),
                None => format!("{os}/{arch}"),
            }),
            _ => platform.clone(),
        };
        walk(&child, here, fetch, seen, out, depth + 1);
    }
}

/// Reads a tar stream, keeping the files no larger than `JSON_LIMIT`.
pub(crate) fn small_files(reader: impl Read) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    crate::util::tar::for_each_file(
        reader,
        |_, size| size <= JSON_LIMIT,
        |name, body| {
            files.insert(name.to_string(), body);
        },
    )?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_per_platform_from_an_index_of_manifests() {
        let dir = std::env::temp_dir().join(format!("xtask-oci-{}", std::process::id()));
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let write = |name: &str, json: Value| std::fs::write(blobs.join(name), json.to_string()).unwrap();
        write("aa", serde_json::json!({"layers": [{"size": 100}, {"size": 23}]}));
        write("bb", serde_json::json!({"layers": [{"size": 7}]}));
        write("cc", serde_json::json!({"layers": [{"size": 999}]}));
        write(
            "ix",
            serde_json::json!({"manifests": [
                {"digest": "sha256:aa", "platform": {"os": "linux", "architecture": "amd64"}},
                {"digest": "sha256:bb", "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
                {"digest": "sha256:cc", "platform": {"os": "unknown", "architecture": "unknown"}}
            ]}),
        );
        // A layer-sized blob that must be skipped, not read.
        std::fs::write(blobs.join("big"), vec![b'x'; (JSON_LIMIT + 1) as usize]).unwrap();
        std::fs::write(dir.join("index.json"), serde_json::json!({"manifests": [{"digest": "sha256:ix"}]}).to_string())
            .unwrap();
        let tar =
            std::process::Command::new("tar").args(["-C", dir.to_str().unwrap(), "-cf", "-", "."]).output().unwrap();
        assert!(tar.status.success());
        let sizes = platform_sizes(tar.stdout.as_slice()).unwrap();
        assert_eq!(
            sizes.into_iter().collect::<Vec<_>>(),
            [("linux/amd64".to_string(), 123), ("linux/arm64/v8".to_string(), 7)]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_stream_without_an_index_is_an_error() {
        assert!(platform_sizes(&[0u8; 1024][..]).is_err());
    }
}
