//! Reading an SBOM back from a pushed image: the platforms its index lists, which of them have
//! an attestation manifest, each platform's SPDX document (the in-toto layer of predicate type
//! `https://spdx.dev/Document`, as buildx reads it), and the document as a table. Pure functions
//! of the registry's answers; `sbom::run` asks.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde_json::Value;

/// Each platform's manifest digest and, when it has one, its attestation manifest's digest.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Image {
    pub(crate) platforms: BTreeMap<String, String>,
    /// Keyed by the digest of the manifest the attestation is about.
    pub(crate) attestations: BTreeMap<String, String>,
}

/// Reads an image index (a single manifest has no attestations: BuildKit makes an index when it
/// attaches any).
pub(crate) fn image(index: &Value) -> Image {
    let mut out = Image::default();
    for desc in index["manifests"].as_array().into_iter().flatten() {
        let Some(digest) = desc["digest"].as_str() else { continue };
        let annotations = &desc["annotations"];
        if annotations["vnd.docker.reference.type"] == "attestation-manifest" {
            if let Some(about) = annotations["vnd.docker.reference.digest"].as_str() {
                out.attestations.insert(about.to_string(), digest.to_string());
            }
            continue;
        }
        let p = &desc["platform"];
        if let (Some(os), Some(arch)) = (p["os"].as_str(), p["architecture"].as_str()) {
            let name = match p["variant"].as_str() {
                Some(v) => format!("{os}/{arch}/{v}"),
                None => format!("{os}/{arch}"),
            };
            out.platforms.insert(name, digest.to_string());
        }
    }
    out
}

/// The platforms to show: `--platform`'s (which the image must have), else all of them; `--json`
/// prints one document, so it needs one platform.
pub(crate) fn wanted(image: &Image, reference: &str, only: Option<&str>, json: bool) -> Result<Vec<String>> {
    let has = || image.platforms.keys().cloned().collect::<Vec<_>>().join(", ");
    if image.platforms.is_empty() {
        bail!("`{reference}` is a single image without an index, so it carries no attestation: build it with `cargo xtask production --push`");
    }
    match only {
        Some(p) if image.platforms.contains_key(p) => Ok(vec![p.to_string()]),
        Some(p) => bail!("--platform `{p}`: `{reference}` has no such platform; it has {}", has()),
        None if json && image.platforms.len() > 1 => {
            bail!("--json prints one SPDX document: name a platform of `{reference}` with --platform ({})", has())
        }
        None => Ok(image.platforms.keys().cloned().collect()),
    }
}

/// A platform's SPDX document from buildx's `{{json .SBOM}}` of the image: keyed by platform
/// for an index of several, the document itself for one.
pub(crate) fn document(sbom: &Value, platform: &str) -> Option<Value> {
    let entry = if sbom.get("SPDX").is_some() { sbom } else { sbom.get(platform)? };
    entry.get("SPDX").filter(|d| d.is_object()).cloned()
}

/// The SPDX ids the document says it describes (`SPDXRef-DOCUMENT DESCRIBES …`).
pub fn described(doc: &Value) -> Vec<&Value> {
    doc["relationships"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["spdxElementId"] == "SPDXRef-DOCUMENT" && r["relationshipType"] == "DESCRIBES")
        .map(|r| &r["relatedSpdxElement"])
        .collect()
}

/// One package of an SPDX document as a row: name, version, type (the package URL's), hash. The
/// package the document describes (the image itself, which contains the others) is no row.
pub(crate) fn rows(doc: &Value) -> Vec<[String; 4]> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let described = described(doc);
    let mut rows: Vec<[String; 4]> = doc["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| !described.contains(&&p["SPDXID"]))
        .map(|p| {
            let purl = p["externalRefs"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["referenceType"] == "purl")
                .map(|r| text(&r["referenceLocator"]))
                .unwrap_or_default();
            let kind = purl.strip_prefix("pkg:").and_then(|r| r.split('/').next()).unwrap_or("-").to_string();
            let hash = p["checksums"].as_array().and_then(|c| c.first()).map(hash).unwrap_or_else(|| "-".to_string());
            [text(&p["name"]), text(&p["versionInfo"]), kind, hash]
        })
        .collect();
    rows.sort();
    rows
}

/// A checksum as people compare it: SHA-512 in the integrity form npm's lock file writes
/// (`sha512-BASE64`), others as `algorithm:hex`.
fn hash(checksum: &Value) -> String {
    let algorithm = checksum["algorithm"].as_str().unwrap_or_default().to_ascii_lowercase();
    let hex = checksum["checksumValue"].as_str().unwrap_or_default();
    match (algorithm.as_str(), from_hex(hex)) {
        ("sha512", Some(bytes)) => {
            format!("sha512-{}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes))
        }
        _ => format!("{algorithm}:{hex}"),
    }
}

fn from_hex(hex: &str) -> Option<Vec<u8>> {
    (hex.len() % 2 == 0).then_some(())?;
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect()
}

/// The rows as aligned columns under a header.
pub(crate) fn table(rows: &[[String; 4]]) -> String {
    let header = ["NAME", "VERSION", "TYPE", "HASH"].map(String::from);
    let all: Vec<&[String; 4]> = std::iter::once(&header).chain(rows).collect();
    let width = |c: usize| all.iter().map(|r| r[c].chars().count()).max().unwrap_or(0);
    let widths = [width(0), width(1), width(2)];
    all.iter()
        .map(|r| {
            format!(
                "{:w0$}  {:w1$}  {:w2$}  {}\n",
                r[0],
                r[1],
                r[2],
                r[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn index() -> Value {
        json!({"manifests": [
            {"digest": "sha256:a", "platform": {"os": "linux", "architecture": "amd64"}},
            {"digest": "sha256:b", "platform": {"os": "linux", "architecture": "arm64"}},
            {"digest": "sha256:aa", "platform": {"os": "unknown", "architecture": "unknown"},
             "annotations": {"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": "sha256:a"}}
        ]})
    }

    #[test]
    fn an_index_lists_platforms_and_the_attestation_of_each() {
        let img = image(&index());
        assert_eq!(img.platforms.keys().collect::<Vec<_>>(), ["linux/amd64", "linux/arm64"]);
        assert_eq!(img.attestations["sha256:a"], "sha256:aa");
        assert!(!img.attestations.contains_key("sha256:b"));
    }

    #[test]
    fn platforms_asked_for_must_exist_and_json_needs_one() {
        let img = image(&index());
        assert_eq!(wanted(&img, "r/i:1", None, false).unwrap(), ["linux/amd64", "linux/arm64"]);
        assert_eq!(wanted(&img, "r/i:1", Some("linux/arm64"), true).unwrap(), ["linux/arm64"]);
        let err = wanted(&img, "r/i:1", Some("linux/s390x"), false).unwrap_err().to_string();
        assert_eq!(err, "--platform `linux/s390x`: `r/i:1` has no such platform; it has linux/amd64, linux/arm64");
        let err = wanted(&img, "r/i:1", None, true).unwrap_err().to_string();
        assert!(err.starts_with("--json prints one SPDX document"), "{err}");
        let err = wanted(&Image::default(), "r/i:1", None, false).unwrap_err().to_string();
        assert!(err.contains("carries no attestation"), "{err}");
    }

    #[test]
    fn the_document_of_a_platform_in_either_shape() {
        let doc = json!({"spdxVersion": "SPDX-2.3"});
        let several = json!({"linux/amd64": {"SPDX": doc}, "linux/arm64": {}});
        assert_eq!(document(&several, "linux/amd64"), Some(doc.clone()));
        assert_eq!(document(&several, "linux/arm64"), None);
        assert_eq!(document(&json!({"SPDX": doc}), "linux/amd64"), Some(doc));
        assert_eq!(document(&json!(null), "linux/amd64"), None);
    }

    #[test]
    fn rows_carry_the_purl_type_and_the_lock_file_integrity() {
        let doc = json!({"packages": [
            {"name": "next", "versionInfo": "16.0.0",
             "externalRefs": [{"referenceType": "purl", "referenceLocator": "pkg:npm/next@16.0.0"}],
             "checksums": [{"algorithm": "SHA512", "checksumValue": "000000"}]},
            {"name": "libc6", "versionInfo": "2.36", "externalRefs": [{"referenceType": "purl", "referenceLocator": "pkg:deb/debian/libc6@2.36"}]}
        ]});
        let mut described = doc.clone();
        described["packages"]
            .as_array_mut()
            .unwrap()
            .push(json!({"SPDXID": "SPDXRef-Image", "name": "contextcleanse-frontend"}));
        described["relationships"] = json!([{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": "SPDXRef-Image"}]);
        assert_eq!(super::rows(&described), super::rows(&doc), "the image itself is no row");
        let rows = rows(&doc);
        assert_eq!(rows[0], ["libc6", "2.36", "deb", "-"].map(String::from));
        assert_eq!(rows[1], ["next", "16.0.0", "npm", "sha512-AAAA"].map(String::from));
        let t = table(&rows);
        assert!(t.starts_with("NAME   VERSION  TYPE  HASH\nlibc6  2.36     deb   -\n"), "{t}");
    }
}
