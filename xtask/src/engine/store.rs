//! The engine's store: an image's id and the platforms it holds, and its disk usage (images and build
//! cache records) as `/system/df` lists it.

use anyhow::{bail, Context, Result};

use super::{api, Engine};

/// The engine's answer to `path` (`/system/df`, with a `type` query or without), asked again
/// while it raced a removal.
pub(crate) fn disk_usage(engine: &Engine, path: &str) -> Result<String> {
    let endpoint = engine.api();
    let mut attempt = 0;
    let (code, body) = loop {
        let (code, body) = endpoint
            .get(path)
            .with_context(|| format!("asking the engine at {} for its disk usage", engine.describe()))?;
        attempt += 1;
        if code == 200 || attempt == 5 || !df_raced_a_removal(&body) {
            break (code, body);
        }
        std::thread::sleep(std::time::Duration::from_millis(300 * attempt));
    };
    if code != 200 {
        bail!("the engine's /system/df answered {code}: {}", body.trim());
    }
    Ok(body)
}

/// While a build runs or a cancelled one is torn down, the engine can list a snapshot that is gone
/// by the time it measures it ("snapshot ... does not exist", or an `lstat` of a file inside it
/// failing): asking again a moment later answers.
fn df_raced_a_removal(body: &str) -> bool {
    body.contains("does not exist") || (body.contains("lstat ") && body.contains("no such file or directory"))
}

/// The platforms of an image in the engine's store, or None when the engine cannot say (no unix
/// socket, an API before 1.48, the classic store) or does not hold the image.
pub(crate) fn image_platforms(engine: &Engine, image: &str) -> Option<Vec<String>> {
    let socket = engine.socket()?;
    let path = format!("/v1.48/images/{}/json?manifests=1", api::escape(image));
    platforms_available(&api::get_json(&socket, &path)?)
}

/// The id of an image in the store (with the containerd store, the digest of its index or
/// manifest: what it holds follows from it), or None when it does not hold the image.
pub(crate) fn image_id(engine: &Engine, image: &str) -> Option<String> {
    let (code, body) = engine.api().get(&format!("/images/{}/json", api::escape(image)))?;
    let inspect: serde_json::Value = serde_json::from_str(&body).ok().filter(|_| code == 200)?;
    inspect["Id"].as_str().map(String::from)
}

/// The platforms whose content an image inspection (`?manifests=1`) says the store holds. An
/// index names each manifest's platform in its descriptor; a single-platform image has no index,
/// so its one descriptor carries none, and the platform is only in the image data.
pub fn platforms_available(inspect: &serde_json::Value) -> Option<Vec<String>> {
    let manifests = inspect.get("Manifests")?.as_array()?;
    let mut out: Vec<String> = manifests
        .iter()
        .filter(|m| m["Kind"] == "image" && m["Available"] == true)
        .filter_map(|m| {
            let p = [&m["ImageData"]["Platform"], &m["Descriptor"]["platform"]].into_iter().find(|p| p.is_object())?;
            Some(format!("{}/{}", p["os"].as_str()?, p["architecture"].as_str()?))
        })
        .collect();
    out.sort();
    out.dedup();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn df_is_asked_again_only_when_it_raced_a_removal() {
        assert!(df_raced_a_removal(r#"{"message":"snapshot abc does not exist"}"#));
        let lstat = r#"{"message":"lstat /x/snapshots/573/fs/app/node_modules/tslib: no such file or directory"}"#;
        assert!(df_raced_a_removal(lstat));
        assert!(!df_raced_a_removal(r#"{"message":"permission denied"}"#));
        assert!(!df_raced_a_removal(r#"{"message":"open /etc/x: no such file or directory"}"#));
    }

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn held_platforms_come_from_an_index_and_from_a_single_image() {
        let index = serde_json::json!({"Manifests": [
            {"Kind": "image", "Available": true, "Descriptor": {"platform": {"os": "linux", "architecture": "arm64"}}},
            {"Kind": "image", "Available": false, "Descriptor": {"platform": {"os": "linux", "architecture": "s390x"}}},
            {"Kind": "attestation", "Available": true, "Descriptor": {"platform": {"os": "unknown", "architecture": "unknown"}}},
            {"Kind": "image", "Available": true, "Descriptor": {"platform": {"os": "linux", "architecture": "amd64"}},
             "ImageData": {"Platform": {"os": "linux", "architecture": "amd64"}}},
        ]});
        assert_eq!(platforms_available(&index), Some(v(&["linux/amd64", "linux/arm64"])));
        // What Docker 28 answers for an image built for one platform: no platform in the descriptor.
        let single = serde_json::json!({"Manifests": [
            {"Kind": "image", "Available": true, "Descriptor": {"mediaType": "application/vnd.oci.image.manifest.v1+json"},
             "ImageData": {"Platform": {"architecture": "amd64", "os": "linux"}}},
        ]});
        assert_eq!(platforms_available(&single), Some(v(&["linux/amd64"])));
        assert_eq!(platforms_available(&serde_json::json!({"Id": "sha256:ab"})), None, "an API before 1.48");
    }
}
