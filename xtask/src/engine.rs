//! `cargo xtask engine up | down | status`: find the Docker engine to build with, or bring up the
//! project's private one from pinned Debian packages under `target/engine`.
//!
//! The private engine is dockerd with BuildKit and the containerd image store, the buildx and
//! compose plug-ins, QEMU registered through binfmt_misc for the other architecture, and a
//! registry on 127.0.0.1:5000. Nothing is installed system-wide: packages are unpacked into a
//! prefix, and `down` stops exactly the processes whose pid files `up` wrote.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use semver::Version;

use crate::cache::Cache;
use crate::dockerapi;
use crate::paths::{self, write_atomic};
use crate::runner::{self, Cmd};
use crate::settings::Settings;

/// The floors below which the xtask refuses to build: bake with `--metadata-file` and rawjson
/// progress needs buildx 0.13; the Dockerfile 1.7 features the images use need BuildKit 0.13.
pub const BUILDX_FLOOR: Version = Version::new(0, 13, 0);
pub const BUILDKIT_FLOOR: Version = Version::new(0, 13, 0);

pub const REGISTRY_ADDR: &str = "127.0.0.1:5000";

/// One pinned Debian package: its suite and the upstream `major.minor` it must have.
struct Package {
    name: &'static str,
    suite: &'static str,
    series: &'static str,
}

const fn pkg(name: &'static str, suite: &'static str, series: &'static str) -> Package {
    Package { name, suite, series }
}

/// What the private engine is made of. The engine, plug-ins and registry come from trixie, whose
/// builds run on bookworm's glibc; runc comes from bookworm, since trixie's needs glibc 2.38.
const PACKAGES: &[Package] = &[
    pkg("docker.io", "trixie", "26.1"),
    pkg("docker-buildx", "trixie", "0.13"),
    pkg("docker-compose", "trixie", "2.26"),
    pkg("containerd", "trixie", "1.7"),
    pkg("tini", "trixie", "0.19"),
    pkg("docker-registry", "trixie", "2.8"),
    pkg("runc", "bookworm", "1.1"),
    pkg("qemu-user-static", "bookworm", "7.2"),
    pkg("debootstrap", "bookworm", "1.0"),
    pkg("iptables", "bookworm", "1.8"),
    pkg("libip4tc2", "bookworm", "1.8"),
    pkg("libip6tc2", "bookworm", "1.8"),
    pkg("libxtables12", "bookworm", "1.8"),
    pkg("libnftnl11", "bookworm", "1.2"),
    pkg("libnetfilter-conntrack3", "bookworm", "1.0"),
    pkg("libnfnetlink0", "bookworm", "1.0"),
    pkg("libmnl0", "bookworm", "1.0"),
];

/// How to reach an engine: the variables every docker command gets.
#[derive(Clone, Debug, Default)]
pub struct Engine {
    pub env: Vec<(String, String)>,
    /// True when this is the project's private engine.
    pub private: bool,
    /// True when this run of the xtask started it (so `test` knows to stop it again).
    pub started_now: bool,
}

impl Engine {
    pub fn docker(&self) -> Cmd {
        Cmd::new("docker").envs(&self.env)
    }

    /// DOCKER_HOST as the docker CLI will see it: this engine's own, else the environment's.
    fn docker_host(&self) -> Option<String> {
        match self.env.iter().find(|(k, _)| k == "DOCKER_HOST") {
            Some((_, h)) => Some(h.clone()),
            None => std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()),
        }
    }

    /// The engine's unix socket, when the API can be asked directly.
    pub fn socket(&self) -> Option<PathBuf> {
        dockerapi::socket(self.docker_host().as_deref())
    }

    /// True when the engine answers: a ping over its socket, or `docker version` otherwise.
    pub fn answers(&self) -> bool {
        match self.socket() {
            Some(sock) => dockerapi::get(&sock, "/_ping").is_some_and(|(code, _)| code == 200),
            None => {
                let probe = self.docker().args(["version", "--format", "{{.Server.Version}}"]);
                runner::read_with_timeout(&probe, Duration::from_secs(10)).is_ok()
            }
        }
    }

    pub fn describe(&self) -> String {
        self.docker_host().unwrap_or_else(|| "the current docker context".to_string())
    }

    /// True when the image is in the engine's store.
    pub fn has_image(&self, image: &str) -> bool {
        match self.socket() {
            Some(sock) => dockerapi::get(&sock, &format!("/images/{}/json", dockerapi::escape(image)))
                .is_some_and(|(c, _)| c == 200),
            None => runner::succeeds(&self.docker().args(["image", "inspect", "--format", "{{.Id}}", image])),
        }
    }

    /// Uncompressed bytes of an image's layers for the engine's platform: the sum of `docker
    /// history` sizes. (`docker image inspect`'s Size is not that: with the containerd image store
    /// of Docker 26 it counts the compressed blobs, and older engines counted unpacked layers.)
    pub fn image_size(&self, image: &str) -> Option<u64> {
        if let Some(sock) = self.socket() {
            let history = dockerapi::get_json(&sock, &format!("/images/{}/history", dockerapi::escape(image)))?;
            return history.as_array()?.iter().map(|layer| layer["Size"].as_u64()).sum();
        }
        let history = self.docker().args(["history", "--human=false", "--format", "{{.Size}}", image]);
        runner::read(&history).ok()?.lines().map(|l| l.trim().parse::<u64>().ok()).sum()
    }

    /// True when a registry answers for the image (a lookup of its manifest, nothing pulled).
    /// Being offline (or online) rarely changes from one build to the next, and each lookup costs
    /// a buildx start, so an answer is kept for 10 minutes.
    pub fn registry_has(&self, image: &str) -> bool {
        let cache = Cache::new("registry-probes.json", 600);
        if let Some(answer) = cache.get::<bool>(image) {
            return answer;
        }
        let cmd = self.docker().args(["buildx", "imagetools", "inspect", "--format", "{{json .Manifest}}", image]);
        let answer = runner::read_with_timeout(&cmd, Duration::from_secs(15)).is_ok();
        cache.put(image, answer);
        answer
    }
}

/// The private engine's files. Sockets and exec state go under /run (short paths: a unix socket
/// path is limited to 108 bytes), named after the checkout so two clones never share one.
pub struct Layout {
    pub root: PathBuf,
    pub prefix: PathBuf,
    pub run: PathBuf,
}

impl Layout {
    pub fn new() -> Layout {
        let root = paths::engine_dir();
        let run = PathBuf::from(format!("/run/xtask-engine-{:08x}", short_hash(&root.display().to_string())));
        Layout { prefix: root.join("prefix"), root, run }
    }
    fn socket(&self) -> PathBuf {
        self.run.join("docker.sock")
    }
    fn dockerd_pid(&self) -> PathBuf {
        self.run.join("dockerd.pid")
    }
    fn registry_pid(&self) -> PathBuf {
        self.run.join("registry.pid")
    }
    fn binfmt_marker(&self) -> PathBuf {
        self.run.join("binfmt-registered")
    }
    pub fn docker_config(&self) -> PathBuf {
        self.root.join("docker-config")
    }
    pub fn bin(&self, name: &str) -> PathBuf {
        ["usr/bin", "usr/sbin"]
            .iter()
            .map(|d| self.prefix.join(d).join(name))
            .find(|p| p.exists())
            .unwrap_or_else(|| self.prefix.join("usr/bin").join(name))
    }
    /// The variables that point the docker CLI at the private engine and its plug-ins.
    pub fn client_env(&self) -> Vec<(String, String)> {
        vec![
            ("DOCKER_HOST".to_string(), format!("unix://{}", self.socket().display())),
            ("DOCKER_CONFIG".to_string(), self.docker_config().display().to_string()),
        ]
    }
}

fn short_hash(s: &str) -> u32 {
    // FNV-1a: stable across Rust versions, unlike std's hasher.
    s.bytes().fold(0x811c9dc5u32, |h, b| (h ^ b as u32).wrapping_mul(0x01000193))
}

/// The engine to build with: the one the environment already reaches, else the private one if it
/// runs, else (when `start` is set) a private engine started now, said in one line.
pub fn connect(settings: &Settings, start: bool) -> Result<Engine> {
    let layout = Layout::new();
    let private = Engine { env: layout.client_env(), private: true, started_now: false };
    let private_host = &private.env[0].1;
    match std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()) {
        // An engine named on purpose is the one to use: never fall back to another silently.
        Some(host) if host != *private_host => {
            if Engine::default().answers() {
                return Ok(Engine::default());
            }
            bail!("no Docker engine answers at DOCKER_HOST={host}: start it, or unset DOCKER_HOST to use the current context or the project's private engine")
        }
        Some(_) => {}
        None => {
            if Engine::default().answers() {
                return Ok(Engine::default());
            }
        }
    }
    if private_running(&layout) && private.answers() {
        return Ok(private);
    }
    if !start {
        bail!("no Docker engine answers (DOCKER_HOST or the current context); start one with `cargo xtask engine up`")
    }
    eprintln!(
        "xtask: no Docker engine answered; starting the project's private engine (`cargo xtask engine down` stops it)"
    );
    up_private(&layout, settings)?;
    Ok(Engine { started_now: true, ..private })
}

fn private_running(layout: &Layout) -> bool {
    read_pid(&layout.dockerd_pid()).is_some_and(|pid| pid_is_ours(pid, layout))
}

fn read_pid(file: &Path) -> Option<u32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// A pid counts as ours only while it runs a program from our prefix: a stale pid file whose
/// number was reused by something else is never signalled.
fn pid_is_ours(pid: u32, layout: &Layout) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe.starts_with(&layout.prefix))
}

/// `engine up`.
pub fn up(settings: &Settings) -> Result<()> {
    let layout = Layout::new();
    if private_running(&layout) {
        println!("the private engine is already up; nothing to do");
    } else if Engine::default().answers() {
        let version = runner::read(&Cmd::new("docker").args(["version", "--format", "{{.Server.Version}}"]))?;
        println!("an engine already answers ({}, Docker {version}); nothing to start", Engine::default().describe());
        return Ok(());
    } else if up_private(&layout, settings)? {
        println!("started the private engine (dockerd pid {})", read_pid(&layout.dockerd_pid()).unwrap_or(0));
    } else {
        println!("the private engine is already up (another `engine up` started it); nothing to do");
    }
    println!("point a shell at it with:");
    for (k, v) in layout.client_env() {
        println!("  export {k}={}", runner::quote(&v));
    }
    Ok(())
}

/// Starts the private engine; false when another `up` had started it meanwhile.
fn up_private(layout: &Layout, settings: &Settings) -> Result<bool> {
    check_host()?;
    std::fs::create_dir_all(&layout.root)?;
    // Two `up`s at once: the second waits here, then finds the engine running.
    let lock = File::create(layout.root.join("lock")).context("creating the engine lock file")?;
    lock.lock().context("waiting for another `engine up` to finish")?;
    if private_running(layout) {
        return Ok(false);
    }
    install_prefix(layout)?;
    std::fs::create_dir_all(&layout.run)?;
    register_binfmt(layout)?;
    start_dockerd(layout, settings)?;
    start_registry(layout)?;
    Ok(true)
}

pub fn check_host() -> Result<()> {
    let steps = "install Docker Engine 26+ with the buildx and compose plug-ins and the containerd image \
                 store, start it, and check `docker buildx version`; or run as root on Debian/Ubuntu where \
                 `cargo xtask engine up` builds a private one";
    if !cfg!(target_os = "linux") {
        bail!("no Docker engine answers and a private one needs Linux: {steps}");
    }
    let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let debian_like = os
        .lines()
        .any(|l| (l.starts_with("ID=") || l.starts_with("ID_LIKE=")) && (l.contains("debian") || l.contains("ubuntu")));
    if !debian_like || which::which("apt-get").is_err() || which::which("dpkg-deb").is_err() {
        bail!("no Docker engine answers and a private one needs Debian or Ubuntu with apt-get: {steps}");
    }
    let uid = runner::read(&Cmd::new("id").arg("-u")).unwrap_or_default();
    if uid != "0" {
        bail!("no Docker engine answers and a private one needs root (dockerd, iptables, binfmt): {steps}");
    }
    Ok(())
}

/// The host's Debian architecture name.
fn host_arch() -> &'static str {
    if std::env::consts::ARCH == "aarch64" {
        "arm64"
    } else {
        "amd64"
    }
}

fn multiarch(arch: &str) -> &'static str {
    if arch == "arm64" {
        "aarch64-linux-gnu"
    } else {
        "x86_64-linux-gnu"
    }
}

/// The Debian archive this machine already uses (from its apt sources), so the xtask never names
/// a host of its own; `DEBIAN_MIRROR` overrides it.
pub fn debian_mirror() -> Result<String> {
    if let Ok(m) = std::env::var("DEBIAN_MIRROR") {
        return Ok(m.trim_end_matches('/').to_string());
    }
    let mut texts = vec![std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default()];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut files: Vec<_> = dir.flatten().map(|e| e.path()).collect();
        files.sort();
        texts.extend(files.iter().filter_map(|f| std::fs::read_to_string(f).ok()));
    }
    texts
        .iter()
        .find_map(|t| mirror_from_sources(t))
        .context("no Debian archive in /etc/apt/sources.list*; set DEBIAN_MIRROR to one (its URL, ending in /debian)")
}

/// Finds the URI of a Debian archive (not the security one) in one-line or deb822 apt sources.
pub fn mirror_from_sources(text: &str) -> Option<String> {
    let good = |uri: &str| uri.starts_with("http") && uri.trim_end_matches('/').ends_with("/debian");
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"deb") {
            if let Some(uri) = words.iter().skip(1).find(|w| !w.starts_with('[')) {
                if good(uri) {
                    return Some(uri.trim_end_matches('/').to_string());
                }
            }
        }
        if let Some(uris) = line.strip_prefix("URIs:") {
            if let Some(uri) = uris.split_whitespace().find(|u| good(u)) {
                return Some(uri.trim_end_matches('/').to_string());
            }
        }
    }
    None
}

/// Downloads the pinned packages (kept, so a rerun resumes) and unpacks them into the prefix.
/// The prefix appears whole or not at all: it is unpacked beside, then renamed.
fn install_prefix(layout: &Layout) -> Result<()> {
    if layout.prefix.join(".complete").exists() {
        return Ok(());
    }
    let apt = layout.root.join("apt");
    let debs = apt.join("debs");
    std::fs::create_dir_all(apt.join("lists/partial"))?;
    std::fs::create_dir_all(apt.join("cache/archives/partial"))?;
    std::fs::create_dir_all(&debs)?;
    let mirror = debian_mirror()?;
    let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
    let sources = ["trixie", "bookworm"]
        .iter()
        .map(|s| format!("deb [signed-by={keyring}] {mirror} {s} main\n"))
        .collect::<String>();
    write_atomic(&apt.join("sources.list"), sources.as_bytes())?;
    let apt_get = |args: &[&str]| {
        Cmd::new("apt-get")
            .args([
                "-q",
                "-o",
                &format!("Dir::Etc::SourceList={}", apt.join("sources.list").display()),
                "-o",
                "Dir::Etc::SourceParts=/dev/null",
                "-o",
                &format!("Dir::State::Lists={}", apt.join("lists").display()),
                "-o",
                &format!("Dir::Cache={}", apt.join("cache").display()),
                "-o",
                "Debug::NoLocking=1",
                "-o",
                "APT::Sandbox::User=root",
            ])
            .args(args.iter().copied())
    };
    let arch = host_arch();
    let missing: Vec<&Package> = PACKAGES.iter().filter(|p| find_deb(&debs, p.name).is_none()).collect();
    if !missing.is_empty() {
        eprintln!("xtask: fetching {} engine packages from the Debian archive", missing.len());
        runner::run_quiet(&apt_get(&["update"]))
            .with_context(|| format!("reading the package lists of the Debian archive at {mirror}"))?;
        // Each package lands in a folder of its own first: an interrupted download never leaves
        // a half file where the next run would take it for a finished one.
        let incoming = debs.join(".incoming");
        for p in missing {
            if incoming.exists() {
                std::fs::remove_dir_all(&incoming)?;
            }
            std::fs::create_dir_all(&incoming)?;
            runner::run_quiet(&apt_get(&["download", &format!("{}/{}", p.name, p.suite)]).dir(&incoming))
                .with_context(|| format!("downloading package {} from Debian {} (rerun to resume)", p.name, p.suite))?;
            let deb = find_deb(&incoming, p.name).with_context(|| format!("apt-get left no .deb for {}", p.name))?;
            std::fs::rename(&deb, debs.join(deb.file_name().context("a .deb has a name")?))?;
        }
        std::fs::remove_dir_all(&incoming)?;
    }
    let partial = layout.root.join("prefix.partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial)?;
    }
    for p in PACKAGES {
        let deb = find_deb(&debs, p.name).with_context(|| format!("package {} missing after download", p.name))?;
        let version = deb_version(&deb);
        if !series_matches(&version, p.series) {
            bail!(
                "package {} from Debian {} is {version}, not the pinned {}.x: update the pin in xtask/src/engine.rs after testing it",
                p.name, p.suite, p.series
            );
        }
        runner::run(&Cmd::new("dpkg-deb").arg("-x").arg(deb.display().to_string()).arg(partial.display().to_string()))?;
    }
    // Debian chooses iptables' backend with update-alternatives; the prefix has none, so link
    // the legacy backend, which needs no nftables support in the kernel.
    for (link, target) in [("iptables", "xtables-legacy-multi"), ("ip6tables", "xtables-legacy-multi")] {
        let path = partial.join("usr/sbin").join(link);
        let _ = std::fs::remove_file(&path);
        std::os::unix::fs::symlink(target, &path)?;
    }
    std::fs::write(partial.join(".complete"), format!("{arch}\n"))?;
    if layout.prefix.exists() {
        std::fs::remove_dir_all(&layout.prefix)?;
    }
    std::fs::rename(&partial, &layout.prefix)?;
    // The docker CLI finds plug-ins in $DOCKER_CONFIG/cli-plugins.
    let plugins = layout.docker_config().join("cli-plugins");
    std::fs::create_dir_all(&plugins)?;
    for name in ["docker-buildx", "docker-compose"] {
        let link = plugins.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(layout.prefix.join("usr/libexec/docker/cli-plugins").join(name), &link)?;
    }
    Ok(())
}

fn find_deb(dir: &Path, name: &str) -> Option<PathBuf> {
    let prefix = format!("{name}_");
    std::fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).find(|p| {
        p.file_name().is_some_and(|f| f.to_string_lossy().starts_with(&prefix) && f.to_string_lossy().ends_with(".deb"))
    })
}

/// The version in a downloaded file name (`name_1%3a7.2+dfsg-7_amd64.deb` is `7.2+dfsg-7`).
pub fn deb_version(deb: &Path) -> String {
    let name = deb.file_name().unwrap_or_default().to_string_lossy();
    let version = name.split('_').nth(1).unwrap_or_default().replace("%3a", ":");
    version.split_once(':').map_or(version.clone(), |(_, v)| v.to_string())
}

pub fn series_matches(version: &str, series: &str) -> bool {
    version
        .strip_prefix(series)
        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('+') || rest.starts_with('-'))
}

/// Registers QEMU for the other architecture with the `F` flag (the kernel opens the interpreter
/// now, so it also works inside containers), unless something already handles it.
fn register_binfmt(layout: &Layout) -> Result<()> {
    let dir = Path::new("/proc/sys/fs/binfmt_misc");
    if !dir.join("register").exists() {
        runner::run(&Cmd::new("mount").args(["-t", "binfmt_misc", "binfmt_misc", "/proc/sys/fs/binfmt_misc"]))
            .context("mounting binfmt_misc (needed to run arm64 steps under QEMU)")?;
    }
    let (name, magic, mask) = binfmt_entry(host_arch());
    if dir.join(name).exists() {
        return Ok(());
    }
    let interpreter = layout.bin(&format!("{name}-static"));
    let line = format!(":{name}:M::{magic}:{mask}:{}:F", interpreter.display());
    std::fs::write(dir.join("register"), line).with_context(|| format!("registering {name} with binfmt_misc"))?;
    std::fs::write(layout.binfmt_marker(), name)?;
    Ok(())
}

/// The binfmt_misc name, ELF magic and mask of the architecture the host cannot run natively.
fn binfmt_entry(host: &str) -> (&'static str, &'static str, &'static str) {
    const MASK: &str = r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff";
    if host == "arm64" {
        ("qemu-x86_64", r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00", MASK)
    } else {
        ("qemu-aarch64", r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00", MASK)
    }
}

fn prefix_env(layout: &Layout) -> Result<Vec<(String, String)>> {
    let libs = layout.prefix.join("usr/lib").join(multiarch(host_arch()));
    let path = format!(
        "{}:{}:{}",
        layout.prefix.join("usr/sbin").display(),
        layout.prefix.join("usr/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Ok(vec![
        ("PATH".to_string(), path),
        ("LD_LIBRARY_PATH".to_string(), libs.display().to_string()),
        ("XTABLES_LIBDIR".to_string(), libs.join("xtables").display().to_string()),
    ])
}

fn start_dockerd(layout: &Layout, settings: &Settings) -> Result<()> {
    let data = layout.root.join("data");
    std::fs::create_dir_all(&data)?;
    let config = layout.root.join("daemon.json");
    write_atomic(&config, br#"{"features": {"containerd-snapshotter": true}}"#)?;
    let log = layout.root.join("dockerd.log");
    let dockerd = Cmd::new(layout.bin("dockerd").display().to_string())
        .args(["--config-file", &config.display().to_string()])
        .args(["--data-root", &data.display().to_string()])
        .args(["--exec-root", &layout.run.join("exec").display().to_string()])
        .args(["--pidfile", &layout.dockerd_pid().display().to_string()])
        .args(["--host", &format!("unix://{}", layout.socket().display())])
        .envs(&prefix_env(layout)?)
        // BuildKit's step-log limits are read by the daemon, so this is where they take effect.
        .envs(&settings.daemon_env());
    runner::spawn_daemon(&dockerd, &log)?;
    let engine = Engine { env: layout.client_env(), private: true, started_now: true };
    if !runner::wait_until(Duration::from_secs(60), || engine.answers()) {
        let tail = runner::last_lines(&std::fs::read_to_string(&log).unwrap_or_default(), 8);
        bail!("the private dockerd did not answer within 60s; last lines of {}:\n{tail}", log.display());
    }
    Ok(())
}

fn start_registry(layout: &Layout) -> Result<()> {
    if std::net::TcpStream::connect(REGISTRY_ADDR).is_ok() {
        eprintln!("xtask: {REGISTRY_ADDR} is already taken; using whatever registry listens there");
        return Ok(());
    }
    let storage = layout.root.join("registry");
    std::fs::create_dir_all(&storage)?;
    let config = layout.root.join("registry.yml");
    let yaml = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {REGISTRY_ADDR}\n",
        storage.display()
    );
    write_atomic(&config, yaml.as_bytes())?;
    let cmd =
        Cmd::new(layout.bin("docker-registry").display().to_string()).args(["serve", &config.display().to_string()]);
    let pid = runner::spawn_daemon(&cmd, &layout.root.join("registry.log"))?;
    write_atomic(&layout.registry_pid(), format!("{pid}\n").as_bytes())?;
    if !runner::wait_until(Duration::from_secs(15), || std::net::TcpStream::connect(REGISTRY_ADDR).is_ok()) {
        bail!(
            "the registry did not listen on {REGISTRY_ADDR} within 15s; see {}",
            layout.root.join("registry.log").display()
        );
    }
    Ok(())
}

/// `engine down`: stops the registry and dockerd that `up` started, by pid file, and nothing else.
pub fn down() -> Result<()> {
    let layout = Layout::new();
    let mut stopped = 0;
    let mut failures = Vec::new();
    for (what, file) in [("registry", layout.registry_pid()), ("dockerd", layout.dockerd_pid())] {
        let Some(pid) = read_pid(&file) else { continue };
        if !pid_is_ours(pid, &layout) {
            eprintln!("xtask: {what}'s pid file names {pid}, which is not ours any more; leaving it alone");
            let _ = std::fs::remove_file(&file);
            continue;
        }
        match stop(pid) {
            Ok(()) => {
                let _ = std::fs::remove_file(&file);
                println!("stopped {what} (pid {pid})");
                stopped += 1;
            }
            // Keep going: one stuck process must not leave the others running.
            Err(e) => failures.push(format!("{what}: {e:#}")),
        }
    }
    if let Ok(name) = std::fs::read_to_string(layout.binfmt_marker()) {
        let entry = Path::new("/proc/sys/fs/binfmt_misc").join(name.trim());
        if entry.exists() {
            std::fs::write(&entry, "-1").with_context(|| format!("unregistering {}", entry.display()))?;
        }
        let _ = std::fs::remove_file(layout.binfmt_marker());
    }
    if !failures.is_empty() {
        bail!("could not stop {}", failures.join("; "));
    }
    if stopped == 0 {
        println!("the private engine is not running; nothing to stop");
    }
    Ok(())
}

/// SIGTERM, then waits up to 30 s for the process to end.
fn stop(pid: u32) -> Result<()> {
    runner::run(&Cmd::new("kill").args(["-TERM", &pid.to_string()]))?;
    if !runner::wait_until(Duration::from_secs(30), || !alive(pid)) {
        bail!("pid {pid} did not stop within 30s of SIGTERM");
    }
    Ok(())
}

/// A process that exited but was not reaped yet (a zombie, as a daemon started by this very
/// process is until it exits) counts as gone.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

/// What the engine, buildx and the builder say about themselves.
#[derive(Debug, Default)]
pub struct Facts {
    pub endpoint: String,
    pub engine_version: String,
    pub buildx_version: Option<Version>,
    pub buildkit_version: Option<Version>,
    pub buildkit_note: String,
    pub driver: String,
    pub containerd_store: bool,
    pub platforms: Vec<String>,
}

pub fn facts(engine: &Engine, builder: Option<&str>) -> Result<Facts> {
    let mut f = Facts { endpoint: engine.describe(), ..Facts::default() };
    let info = match engine.socket().and_then(|sock| dockerapi::get_json(&sock, "/info")) {
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
        buildx_identity(engine),
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
        f.buildkit_note = format!(" (embedded in Docker {}; the engine does not report it)", f.engine_version);
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

/// Which buildx binary the docker CLI will run, as path, size and modification time.
fn buildx_identity(engine: &Engine) -> String {
    let config = engine
        .env
        .iter()
        .find(|(k, _)| k == "DOCKER_CONFIG")
        .map(|(_, v)| PathBuf::from(v))
        .or_else(|| std::env::var_os("DOCKER_CONFIG").map(PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")));
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
        let path = dir.join("docker-buildx");
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
pub fn parse_buildx_version(text: &str) -> Option<Version> {
    text.split_whitespace().nth(1).and_then(loose_version)
}

/// Reads `1.2.3`, `v1.2.3`, `1.2.3+ds1` or `26.1.5+dfsg1` as a plain semver version.
pub fn loose_version(text: &str) -> Option<Version> {
    let core = text.trim().trim_start_matches('v');
    let core: String = core.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let mut parts = core.split('.').filter(|p| !p.is_empty()).map(|p| p.parse::<u64>());
    let major = parts.next()?.ok()?;
    let minor = parts.next().unwrap_or(Ok(0)).ok()?;
    let patch = parts.next().unwrap_or(Ok(0)).ok()?;
    Some(Version::new(major, minor, patch))
}

/// The driver, the BuildKit version (None when unknown) and the platforms from `buildx inspect`.
pub fn parse_inspect(text: &str) -> (String, Option<Version>, Vec<String>) {
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

/// Which BuildKit a dockerd release embeds (from moby's release notes).
pub fn buildkit_of_engine(engine: &str) -> Option<Version> {
    let v = loose_version(engine)?;
    let minor = match (v.major, v.minor) {
        (23, _) => 11,
        (24, _) => 11,
        (25, _) => 12,
        (26, _) => 13,
        (27, 0..=2) => 15,
        (27, _) => 16,
        (28, 0) => 20,
        (28, _) => 23,
        (m, _) if m >= 29 => 25,
        _ => return None,
    };
    Some(Version::new(0, minor, 0))
}

/// `engine status`: one line each.
pub fn status(settings: &Settings) -> Result<()> {
    let engine = connect(settings, false)?;
    let layout = Layout::new();
    let f = facts(&engine, None)?;
    let show = |v: &Option<Version>| v.as_ref().map_or("unknown".to_string(), Version::to_string);
    let owner = match read_pid(&layout.dockerd_pid()).filter(|p| engine.private && pid_is_ours(*p, &layout)) {
        Some(pid) => format!("private engine of this checkout, dockerd pid {pid}"),
        None => "not managed by the xtask".to_string(),
    };
    println!("engine     {} (Docker {}, {owner})", f.endpoint, f.engine_version);
    println!("buildkit   {}{}", show(&f.buildkit_version), f.buildkit_note);
    println!("buildx     {}", show(&f.buildx_version));
    println!("store      {}", if f.containerd_store { "containerd image store" } else { "classic (graph driver)" });
    println!("builder    driver {}", f.driver);
    println!("platforms  {}", f.platforms.join(", "));
    let registry = match std::net::TcpStream::connect_timeout(&REGISTRY_ADDR.parse()?, Duration::from_secs(1)) {
        Ok(_) => format!("{REGISTRY_ADDR} answers"),
        Err(_) => format!("{REGISTRY_ADDR} does not answer"),
    };
    let pid = read_pid(&layout.registry_pid()).filter(|p| pid_is_ours(*p, &layout));
    println!("registry   {registry}{}", pid.map_or(String::new(), |p| format!(" (private, pid {p})")));
    println!("binfmt     {}", binfmt_status());
    Ok(())
}

pub fn binfmt_status() -> String {
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
    fn mirror_is_read_from_either_apt_format() {
        let one_line = "# x\ndeb [arch=amd64] http://mirror.example/debian bookworm main\n";
        assert_eq!(mirror_from_sources(one_line).as_deref(), Some("http://mirror.example/debian"));
        let deb822 = "Types: deb\nURIs: http://m.example/debian-security\n\nTypes: deb\nURIs: http://m.example/debian/\nSuites: bookworm\n";
        assert_eq!(mirror_from_sources(deb822).as_deref(), Some("http://m.example/debian"));
        assert_eq!(mirror_from_sources("deb http://archive.example/ubuntu jammy main"), None);
    }

    #[test]
    fn deb_versions_lose_their_epoch_and_match_series() {
        let v = deb_version(Path::new("/x/qemu-user-static_1%3a7.2+dfsg-7+deb12u18+b3_amd64.deb"));
        assert_eq!(v, "7.2+dfsg-7+deb12u18+b3");
        assert!(series_matches(&v, "7.2"));
        assert!(series_matches("26.1.5+dfsg1-9", "26.1"));
        assert!(!series_matches("26.10.1", "26.1"));
        assert!(!series_matches("27.0.1", "26.1"));
    }

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
        assert!(buildkit_of_engine("25.0.3").unwrap() < BUILDKIT_FLOOR);
        assert!(buildkit_of_engine("28.2.2").unwrap() >= BUILDKIT_FLOOR);
        assert_eq!(buildkit_of_engine("nonsense"), None);
    }

    #[test]
    fn each_host_registers_the_other_architecture() {
        assert_eq!(binfmt_entry("amd64").0, "qemu-aarch64");
        assert_eq!(binfmt_entry("arm64").0, "qemu-x86_64");
        assert!(binfmt_entry("amd64").1.ends_with(r"\xb7\x00"), "EM_AARCH64 is 0xb7");
    }
}
