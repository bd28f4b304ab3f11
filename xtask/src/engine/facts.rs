//! What an engine, buildx and the builder say about themselves, and what the builder can do
//! with them (cache export, several platforms, OCI archives, attestations, bake entitlements).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use semver::Version;

use super::Engine;
use crate::engine::api;
use crate::util::memo::Cache;
use crate::util::runner;

/// What the engine, buildx and the builder say about themselves.
#[derive(Clone, Debug, Default)]
pub(crate) struct Facts {
    pub(crate) endpoint: String,
    pub(crate) engine_version: String,
    pub(crate) buildx_version: Option<Version>,
    pub(crate) buildkit_version: Option<Version>,
    pub(crate) buildkit_note: String,
    pub(crate) driver: String,
    pub(crate) containerd_store: bool,
    pub(crate) platforms: Vec<String>,
}

/// What the builder can do, which decides what a plan may ask of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Capabilities {
    /// `cache-to` of any kind (the docker driver needs the containerd image store for it).
    pub(crate) cache_export: bool,
    /// Several platforms in one image (the same condition).
    pub(crate) multi_platform: bool,
    /// `type=oci` archives.
    pub(crate) oci_export: bool,
    /// Provenance and SBOM attestations.
    pub(crate) attestations: bool,
    /// bake checks reads and writes outside the working folder (buildx 0.19+): the plan must
    /// pass `--allow fs.read=...` / `fs.write=...` for them.
    pub(crate) fs_entitlements: bool,
    /// `docker buildx history` (buildx 0.20+).
    pub(crate) history: bool,
    /// `bake --call check`: BuildKit's own Dockerfile checks (BuildKit 0.15+, buildx 0.15+).
    pub(crate) checks: bool,
    /// The image exporter dates the config and history from `source-date-epoch` (the docker
    /// driver needs the containerd image store for it).
    pub(crate) source_epoch: bool,
    /// The exporter's `rewrite-timestamp`: file times in layers clamped too (BuildKit 0.13+).
    pub(crate) rewrite_timestamp: bool,
    /// A push with `store=false`, which `rewrite-timestamp` needs on the docker driver: BuildKit
    /// pushes without unpacking into the engine. Tested with buildx 0.29; buildx 0.13 pushes
    /// through the engine's store instead and finds no tag there.
    pub(crate) push_unstored: bool,
}

/// The engine a build ran on, as its report and history line keep it: enough to tell two engines
/// apart, so that a build is compared only with builds on the same one.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EngineRecord {
    /// DOCKER_HOST, else `docker context NAME` (a context other than the default), else "the current docker context".
    pub(crate) endpoint: String,
    /// The private engine (`current`, `floor-classic`, ...); none for an engine the user runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) private: Option<String>,
    pub(crate) docker: String,
    /// As [`facts`] gives it: the builder's own answer, else the one Docker's release notes name.
    pub(crate) buildkit: Option<String>,
    pub(crate) buildx: Option<String>,
    /// "containerd" or "classic".
    pub(crate) store: String,
    pub(crate) driver: String,
}

impl EngineRecord {
    /// A few words for a list: the private engine's name, else the Docker version.
    pub(crate) fn short(&self) -> String {
        match &self.private {
            Some(name) => name.clone(),
            None => format!("docker {}", self.docker),
        }
    }

    /// One line for people: "private current engine: Docker 28.5.2, BuildKit 0.25.1, ...".
    pub(crate) fn line(&self) -> String {
        let or = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown".to_string());
        let whose = match &self.private {
            Some(name) => format!("private {name} engine at {}", self.endpoint),
            None => self.endpoint.clone(),
        };
        format!(
            "{whose}: Docker {}, BuildKit {}, buildx {}, {} image store, {} driver",
            self.docker,
            or(&self.buildkit),
            or(&self.buildx),
            self.store,
            self.driver
        )
    }
}

impl Facts {
    /// What a report keeps of these facts; `private` names the private engine, if it is one.
    pub(crate) fn record(&self, private: Option<String>) -> EngineRecord {
        EngineRecord {
            endpoint: self.endpoint.clone(),
            private,
            docker: self.engine_version.clone(),
            buildkit: self.buildkit_version.as_ref().map(Version::to_string),
            buildx: self.buildx_version.as_ref().map(Version::to_string),
            store: if self.containerd_store { "containerd" } else { "classic" }.to_string(),
            driver: self.driver.clone(),
        }
    }

    pub(crate) fn capabilities(&self) -> Capabilities {
        // The docker driver on the classic image store can only load single-platform images;
        // every other driver and store exports caches, OCI archives and attestations.
        let full = self.driver != "docker" || self.containerd_store;
        let buildx = |minor| self.buildx_version.as_ref().is_some_and(|v| *v >= Version::new(0, minor, 0));
        let buildkit = |minor| self.buildkit_version.as_ref().is_some_and(|v| *v >= Version::new(0, minor, 0));
        Capabilities {
            cache_export: full,
            multi_platform: full,
            oci_export: full,
            attestations: full,
            fs_entitlements: buildx(19),
            history: buildx(20),
            checks: buildx(15) && buildkit(15),
            source_epoch: full,
            rewrite_timestamp: full && buildkit(13),
            push_unstored: full && buildkit(13) && buildx(29),
        }
    }

    /// One line for people: "docker driver, classic image store".
    pub(crate) fn builder_line(&self) -> String {
        let store = if self.containerd_store { "containerd image store" } else { "classic image store" };
        format!("{} driver, {store}", self.driver)
    }
}

pub(crate) fn facts(engine: &Engine, builder: Option<&str>) -> Result<Facts> {
    let mut f = Facts { endpoint: engine.describe(), ..Facts::default() };
    let info = match engine.socket().and_then(|sock| api::get_json(&sock, "/info")) {
        Some(info) => info,
        None => {
            let text = runner::read(&engine.docker().args(["info", "--format", "{{json .}}"]))?;
            serde_json::from_str(&text).context("reading `docker info`")?
        }
    };
    f.engine_version = info["ServerVersion"].as_str().unwrap_or_default().to_string();
    f.containerd_store = info["DriverStatus"].to_string().contains("io.containerd.snapshotter");
    let key = format!(
        "{}|{}|{}|{builder:?}|{}|{}",
        f.endpoint,
        info["ID"].as_str().unwrap_or_default(),
        f.engine_version,
        buildx_identity(&engine.env),
        binfmt_status()
    );
    // What buildx says of itself and the builder costs two plug-in starts per build; it is kept
    // for an hour per engine, builder, buildx binary and binfmt state.
    let cache = Cache::new("builder-facts.json", 3600);
    let builder_facts = cache.get::<BuilderFacts>(&key).unwrap_or_else(|| {
        let b = ask_builder(engine, builder);
        cache.put(&key, &b);
        b
    });
    f.buildx_version = builder_facts.buildx_version.as_deref().and_then(|v| Version::parse(v).ok());
    f.driver = builder_facts.driver;
    f.platforms = builder_facts.platforms;
    f.buildkit_version = builder_facts.buildkit_version.as_deref().and_then(|v| Version::parse(v).ok());
    if f.buildkit_version.is_none() && f.driver == "docker" {
        // Distribution builds of dockerd report BuildKit as v0.0.0+unknown; the engine's own
        // version tells which BuildKit it embeds.
        f.buildkit_version = buildkit_of_engine(&f.engine_version);
        f.buildkit_note =
            format!(" (embedded in Docker {}, per its release notes; the engine reports no version)", f.engine_version);
    }
    Ok(f)
}

/// What buildx says of itself and the builder.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct BuilderFacts {
    buildx_version: Option<String>,
    driver: String,
    buildkit_version: Option<String>,
    platforms: Vec<String>,
}

fn ask_builder(engine: &Engine, builder: Option<&str>) -> BuilderFacts {
    let mut inspect = engine.docker().args(["buildx", "inspect"]);
    if let Some(b) = builder {
        inspect = inspect.arg(b);
    }
    let version_cmd = engine.docker().args(["buildx", "version"]);
    let (version, inspected) = std::thread::scope(|s| {
        let version = s.spawn(|| runner::read(&version_cmd));
        let inspected = s.spawn(|| runner::read(&inspect));
        (version.join(), inspected.join())
    });
    let mut b = BuilderFacts::default();
    if let Ok(Ok(v)) = version {
        b.buildx_version = parse_buildx_version(&v).map(|v| v.to_string());
    }
    if let Ok(Ok(text)) = inspected {
        let (driver, buildkit, platforms) = parse_inspect(&text);
        b.driver = driver;
        b.platforms = platforms;
        b.buildkit_version = buildkit.map(|v| v.to_string());
    }
    b
}

/// Which buildx binary the docker CLI will run with these variables on top of the environment,
/// as path, size and modification time: a new version is a new identity.
pub(crate) fn buildx_identity(env: &[(String, String)]) -> String {
    let config = env
        .iter()
        .find(|(k, _)| k == "DOCKER_CONFIG")
        .map(|(_, v)| PathBuf::from(v))
        .or_else(|| std::env::var_os("DOCKER_CONFIG").map(PathBuf::from))
        .or_else(|| crate::util::os::home_dir().map(|h| h.join(".docker")));
    let candidates = config.into_iter().map(|c| c.join("cli-plugins")).chain(
        [
            "/usr/local/lib/docker/cli-plugins",
            "/usr/local/libexec/docker/cli-plugins",
            "/usr/lib/docker/cli-plugins",
            "/usr/libexec/docker/cli-plugins",
        ]
        .iter()
        .map(PathBuf::from),
    );
    for dir in candidates {
        let path = dir.join(format!("docker-buildx{}", std::env::consts::EXE_SUFFIX));
        if let Ok(meta) = std::fs::metadata(&path) {
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            return format!("{}:{}:{mtime}", path.display(), meta.len());
        }
    }
    "unknown".to_string()
}

/// `github.com/docker/buildx v0.13.1 abc` or Debian's `... 0.13.1+ds1 0.13.1+ds1-3`.
pub(crate) fn parse_buildx_version(text: &str) -> Option<Version> {
    text.split_whitespace().nth(1).and_then(loose_version)
}

/// Reads `1.2.3`, `v1.2.3`, `1.2.3+ds1` or `26.1.5+dfsg1` as a plain semver version.
pub(crate) fn loose_version(text: &str) -> Option<Version> {
    let core = text.trim().trim_start_matches('v');
    let core: String = core.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let mut parts = core.split('.').filter(|p| !p.is_empty()).map(|p| p.parse::<u64>());
    let major = parts.next()?.ok()?;
    let minor = parts.next().unwrap_or(Ok(0)).ok()?;
    let patch = parts.next().unwrap_or(Ok(0)).ok()?;
    Some(Version::new(major, minor, patch))
}

/// The driver, the BuildKit version (None when unknown) and the platforms from `buildx inspect`.
pub(crate) fn parse_inspect(text: &str) -> (String, Option<Version>, Vec<String>) {
    let field = |name: &str| {
        text.lines().find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim_start_matches(':').trim().to_string()))
    };
    let driver = field("Driver:").unwrap_or_default();
    let buildkit = field("BuildKit version:").or_else(|| field("Buildkit:")).and_then(|v| loose_version(&v));
    let buildkit = buildkit.filter(|v| *v != Version::new(0, 0, 0));
    let platforms = field("Platforms:")
        .map(|p| p.split(',').map(|s| s.trim().trim_end_matches('*').to_string()).filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    (driver, buildkit, platforms)
}

/// Which BuildKit a dockerd release embeds, from Docker Engine's release notes ("Update BuildKit
/// to ..."). Distribution builds of dockerd report their BuildKit as v0.0.0+unknown, so this table
/// is the one source for them; a patch level is given only where the notes name it.
pub(crate) fn buildkit_of_engine(engine: &str) -> Option<Version> {
    let v = loose_version(engine)?;
    let (minor, patch) = match (v.major, v.minor, v.patch) {
        (23 | 24, _, _) => (11, 0),
        (25, _, _) => (12, 0),
        (26, _, _) => (13, 0),
        (27, 0, _) => (14, 0),
        (27, 1 | 2, _) => (15, 0),
        (27, 3, _) => (16, 0),
        (27, 4, _) => (17, 0),
        (27, _, _) => (18, 0),
        (28, 5, p) if p >= 1 => (25, 1),
        (28, m, _) if m <= 5 => (20 + m, 0),
        (m, _, _) if m >= 28 => (25, 0),
        _ => return None,
    };
    Some(Version::new(0, minor, patch))
}

pub(crate) fn binfmt_status() -> String {
    let dir = Path::new("/proc/sys/fs/binfmt_misc");
    let names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.starts_with("qemu-"))
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        return "no QEMU handler registered (only native platforms can run RUN steps)".to_string();
    }
    names
        .iter()
        .map(|n| {
            let text = std::fs::read_to_string(dir.join(n)).unwrap_or_default();
            let flags = text.lines().find_map(|l| l.strip_prefix("flags: ")).unwrap_or("");
            format!("{n} ({}, flags {flags})", text.lines().next().unwrap_or("?"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildx_versions_of_both_kinds_parse() {
        assert_eq!(
            parse_buildx_version("github.com/docker/buildx 0.13.1+ds1 0.13.1+ds1-3"),
            Some(Version::new(0, 13, 1))
        );
        assert_eq!(parse_buildx_version("github.com/docker/buildx v0.29.1 a0b1c2"), Some(Version::new(0, 29, 1)));
        assert_eq!(parse_buildx_version("garbage"), None);
    }

    #[test]
    fn inspect_output_gives_driver_platforms_and_hides_unknown_buildkit() {
        let text = "Name:   default\nDriver: docker\n\nNodes:\nName: default\nStatus: running\n\
                    BuildKit version: v0.0.0+unknown\nPlatforms: linux/amd64, linux/amd64/v2, linux/arm64*\n";
        let (driver, buildkit, platforms) = parse_inspect(text);
        assert_eq!(driver, "docker");
        assert_eq!(buildkit, None);
        assert_eq!(platforms, ["linux/amd64", "linux/amd64/v2", "linux/arm64"]);
        let (_, buildkit, _) = parse_inspect("Driver: docker-container\nBuildKit version: v0.16.0\n");
        assert_eq!(buildkit, Some(Version::new(0, 16, 0)));
    }

    #[test]
    fn engine_versions_map_to_their_buildkit() {
        assert_eq!(buildkit_of_engine("26.1.5+dfsg1"), Some(Version::new(0, 13, 0)));
        assert_eq!(buildkit_of_engine("28.5.2+dfsg4"), Some(Version::new(0, 25, 1)));
        assert_eq!(buildkit_of_engine("28.5.0"), Some(Version::new(0, 25, 0)));
        assert_eq!(buildkit_of_engine("28.3.1"), Some(Version::new(0, 23, 0)));
        assert!(buildkit_of_engine("25.0.3").unwrap() < super::super::BUILDKIT_FLOOR);
        assert_eq!(buildkit_of_engine("nonsense"), None);
    }

    #[test]
    fn the_classic_store_limits_the_docker_driver_only() {
        let mut f = Facts {
            driver: "docker".to_string(),
            buildx_version: Some(Version::new(0, 29, 1)),
            buildkit_version: Some(Version::new(0, 25, 1)),
            ..Facts::default()
        };
        let c = f.capabilities();
        assert!(!c.cache_export && !c.multi_platform && !c.oci_export && !c.attestations);
        assert!(c.fs_entitlements && c.history && c.checks);
        f.containerd_store = true;
        assert!(f.capabilities().cache_export && f.capabilities().attestations);
        f.containerd_store = false;
        f.driver = "docker-container".to_string();
        assert!(f.capabilities().multi_platform);
        f.buildx_version = Some(Version::new(0, 13, 1));
        f.buildkit_version = Some(Version::new(0, 13, 0));
        let c = f.capabilities();
        assert!(!c.fs_entitlements && !c.history && !c.checks);
    }
}
