//! Build metadata (VERSION, GIT_COMMIT, BUILD_DATE) and the tags a release version gets.

use anyhow::{bail, Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use semver::Version;

use crate::util::paths;
use crate::util::runner::{self, Cmd};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Metadata {
    pub(crate) version: Version,
    /// Where the version came from, for `print` and `doctor`.
    pub(crate) version_source: String,
    pub(crate) git_commit: String,
    pub(crate) build_date: String,
}

impl Metadata {
    /// The bake variables that carry the metadata. VERSION_TAGS is a list passed as one
    /// comma-joined string and split by the bake file: bake reads variables from the environment,
    /// and buildx before typed variables (0.13, the floor, included) cannot override a list
    /// variable from there (docker/buildx#3160). The alternatives are worse: `--set
    /// TARGET.tags=...` would restate the image names in Rust, and a generated override file
    /// would leave `docker buildx bake --print production` on its own with other tags than the
    /// xtask's. Tags hold no comma, so the join loses nothing.
    pub(crate) fn bake_vars(&self) -> Vec<(String, String)> {
        vec![
            ("VERSION".to_string(), self.version.to_string()),
            ("VERSION_TAGS".to_string(), release_tags(&self.version).join(",")),
            ("GIT_COMMIT".to_string(), self.git_commit.clone()),
            ("BUILD_DATE".to_string(), self.build_date.clone()),
        ]
    }
}

/// The version to build and where it came from: `explicit` (from `--release-version`) wins, then a
/// `vX.Y.Z` tag on HEAD, then the version in the workspace manifest. The end-to-end tests ask
/// this too, so they expect what the product builds.
pub fn version(explicit: Option<&Version>) -> Result<(Version, String)> {
    if let Some(v) = explicit {
        return Ok((v.clone(), "--release-version".to_string()));
    }
    let tags = runner::read(&Cmd::new("git").args(["tag", "--points-at", "HEAD"]).dir(paths::project_root()));
    Ok(match tags.ok().and_then(|t| version_from_tags(&t)) {
        Some(v) => (v.clone(), format!("git tag v{v}")),
        None => (manifest_version()?, "Cargo.toml [workspace.metadata.contextcleanse]".to_string()),
    })
}

/// Collects the metadata of the checkout (the version as [`version`] finds it).
pub(crate) fn collect(explicit: Option<&Version>) -> Result<Metadata> {
    let root = paths::project_root();
    let git = |args: &[&str]| runner::read(&Cmd::new("git").args(args.iter().copied()).dir(&root));
    // Each git question is a process start: asked side by side, and the commit with its time in one.
    let (version, head, status) = std::thread::scope(|s| {
        let version = s.spawn(|| version(explicit));
        let status = s.spawn(|| git(&["status", "--porcelain", "--untracked-files=no"]));
        let head = git(&["log", "-1", "--format=%H %ct"]);
        let panicked = |_| anyhow::anyhow!("asking git panicked");
        (version.join().map_err(panicked).and_then(|v| v), head, status.join().map_err(panicked).and_then(|v| v))
    });
    let (version, version_source) = version?;
    let (git_commit, build_date) = match head.as_deref().map(|h| h.split_once(' ')) {
        Ok(Some((commit, time))) => {
            let dirty = !status?.is_empty();
            let commit = if dirty { format!("{commit}-dirty") } else { commit.to_string() };
            let epoch = std::env::var("SOURCE_DATE_EPOCH").unwrap_or_else(|_| time.to_string());
            (commit, rfc3339(&epoch)?)
        }
        // A tarball without .git: say so rather than invent a commit; `verify`'s scratch export
        // of a commit is told its commit and time, and SOURCE_DATE_EPOCH alone dates it (two
        // engines building one export of a commit then agree); else now.
        _ => match (std::env::var("XTASK_SOURCE_COMMIT"), std::env::var("SOURCE_DATE_EPOCH")) {
            (Ok(commit), Ok(epoch)) if !commit.is_empty() => (commit, rfc3339(&epoch)?),
            (_, Ok(epoch)) => ("unknown".to_string(), rfc3339(&epoch)?),
            _ => ("unknown".to_string(), Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)),
        },
    };
    Ok(Metadata { version, version_source, git_commit, build_date })
}

pub(crate) fn parse_version(text: &str, origin: &str) -> Result<Version> {
    Version::parse(text.trim().trim_start_matches('v'))
        .with_context(|| format!("{origin}: `{text}` is not a semver version (write it as X.Y.Z or X.Y.Z-pre)"))
}

fn version_from_tags(tags: &str) -> Option<Version> {
    tags.lines().filter_map(|t| t.strip_prefix('v')).filter_map(|t| Version::parse(t).ok()).max()
}

fn manifest_version() -> Result<Version> {
    let path = paths::project_root().join("Cargo.toml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let doc: serde_json::Value = basic_toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let version = doc
        .get("workspace")
        .and_then(|w| w.get("metadata"))
        .and_then(|m| m.get("contextcleanse"))
        .and_then(|c| c.get("version"))
        .and_then(|v| v.as_str())
        .context("Cargo.toml has no [workspace.metadata.contextcleanse] version")?;
    parse_version(version, "Cargo.toml [workspace.metadata.contextcleanse] version")
}

/// The npm version pinned by package.json's `packageManager` (`npm@X.Y.Z`).
pub fn npm_pin() -> Result<String> {
    let path = paths::package_json();
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let pm =
        json["packageManager"].as_str().with_context(|| format!("{} has no packageManager field", path.display()))?;
    let version = pm
        .strip_prefix("npm@")
        .with_context(|| format!("{}: packageManager `{pm}` is not npm@X.Y.Z", path.display()))?;
    parse_version(version, "package.json packageManager")?;
    Ok(version.to_string())
}

/// Seconds since the epoch as RFC 3339 UTC (`2026-11-27T21:57:05Z`).
pub(crate) fn rfc3339(epoch: &str) -> Result<String> {
    let secs: i64 =
        epoch.trim().parse().with_context(|| format!("`{epoch}` is not a number of seconds (SOURCE_DATE_EPOCH)"))?;
    let Some(date) = DateTime::<Utc>::from_timestamp(secs, 0) else { bail!("{secs} is out of range for a date") };
    Ok(date.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// A release X.Y.Z is tagged X.Y.Z, X.Y, X and latest; a pre-release only with its full version.
/// Docker tags cannot hold `+`, so build metadata is joined with `-`.
pub(crate) fn release_tags(v: &Version) -> Vec<String> {
    let full = v.to_string().replace('+', "-");
    if !v.pre.is_empty() {
        return vec![full];
    }
    vec![full, format!("{}.{}", v.major, v.minor), v.major.to_string(), "latest".to_string()]
}

/// The repository part of an image reference: `host:port/name:tag` and `host:port/name@sha256:…`
/// both give `host:port/name` (a registry's port is not a tag).
pub(crate) fn repository(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    match image.rfind(':') {
        Some(i) if !image[i..].contains('/') => &image[..i],
        _ => image,
    }
}

/// The repository's last path part: `127.0.0.1:5000/contextcleanse-backend:dev` gives
/// `contextcleanse-backend`.
pub(crate) fn short_name(image: &str) -> &str {
    let repo = repository(image);
    repo.rsplit('/').next().unwrap_or(repo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_get_four_tags_and_prereleases_one() {
        assert_eq!(release_tags(&Version::parse("1.4.2").unwrap()), ["1.4.2", "1.4", "1", "latest"]);
        assert_eq!(release_tags(&Version::parse("2.0.0-rc.1").unwrap()), ["2.0.0-rc.1"]);
        assert_eq!(release_tags(&Version::parse("1.0.0+build.5").unwrap())[0], "1.0.0-build.5");
    }

    #[test]
    fn bad_versions_are_named_with_their_origin() {
        let err = parse_version("1.2", "--release-version").unwrap_err().to_string();
        assert_eq!(err, "--release-version: `1.2` is not a semver version (write it as X.Y.Z or X.Y.Z-pre)");
        assert_eq!(parse_version("v1.2.3", "x").unwrap(), Version::new(1, 2, 3));
    }

    #[test]
    fn highest_release_tag_on_head_wins() {
        assert_eq!(version_from_tags("v1.0.0\nnightly\nv1.2.0\n"), Some(Version::new(1, 2, 0)));
        assert_eq!(version_from_tags("nightly\n"), None);
    }

    #[test]
    fn dates_are_rfc3339_utc() {
        assert_eq!(rfc3339("0").unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339("1700000000").unwrap(), "2023-11-14T22:13:20Z");
        assert!(rfc3339("soon").is_err());
    }

    #[test]
    fn manifest_holds_a_valid_version() {
        assert!(manifest_version().is_ok());
    }

    #[test]
    fn npm_pin_comes_from_package_json() {
        let pin = npm_pin().unwrap();
        assert!(semver::Version::parse(&pin).is_ok(), "{pin}");
    }

    #[test]
    fn the_repository_drops_the_tag_or_digest_but_keeps_the_port() {
        assert_eq!(repository("127.0.0.1:5000/contextcleanse-backend:0.4.0"), "127.0.0.1:5000/contextcleanse-backend");
        assert_eq!(repository("127.0.0.1:5000/cc@sha256:ab"), "127.0.0.1:5000/cc");
        assert_eq!(repository("127.0.0.1:5000/cc"), "127.0.0.1:5000/cc");
        assert_eq!(short_name("127.0.0.1:5000/contextcleanse-backend:0.4.0"), "contextcleanse-backend");
        assert_eq!(short_name("contextcleanse-frontend@sha256:ab"), "contextcleanse-frontend");
    }
}
