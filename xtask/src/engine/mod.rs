//! The Docker engine to build with: the one the environment reaches, or one of the project's
//! private engines (`cargo xtask engine up | down | status | env`).
//!
//! A private engine is dockerd with BuildKit, the buildx and compose plug-ins, QEMU registered
//! through binfmt_misc for the other architecture, and a registry on loopback, all unpacked from
//! pinned Debian packages under `target/engine/<name>`: the `current` channel (Debian testing's
//! Docker, the default) or the `floor` (Debian stable's), each with the containerd image store or,
//! as `<channel>-classic`, the classic one. Nothing is installed system-wide.

mod channel;
mod debian;
mod facts;
mod private;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use semver::Version;

pub use channel::{Channel, Spec};
pub use debian::{debian_mirror, host_arch};
pub use facts::{binfmt_status, facts, Capabilities, EngineRecord, Facts};
pub use private::Layout;

use crate::cache::Cache;
use crate::dockerapi;
use crate::runner::{self, Cmd};
use crate::settings::Settings;

/// The floors below which the xtask refuses to build: bake with `--metadata-file` and rawjson
/// progress needs buildx 0.13; the Dockerfile 1.7 features the images use need BuildKit 0.13.
pub const BUILDX_FLOOR: Version = Version::new(0, 13, 0);
pub const BUILDKIT_FLOOR: Version = Version::new(0, 13, 0);

/// How to reach an engine: the variables every docker command gets.
#[derive(Clone, Debug, Default)]
pub struct Engine {
    pub env: Vec<(String, String)>,
    /// Which private engine this is; None for an engine the user runs.
    pub spec: Option<Spec>,
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

impl Engine {
    pub fn is_private(&self) -> bool {
        self.spec.is_some()
    }

    /// The registry this engine's pushes and registry caches go to by default.
    pub fn registry_addr(&self) -> String {
        Layout::new(self.spec.unwrap_or(Spec::DEFAULT)).registry_addr()
    }
}

/// The private engine builds start when none runs: `XTASK_ENGINE` (e.g. `floor-classic`), else
/// the current channel with the containerd store.
fn wanted_spec() -> Result<Option<Spec>> {
    match std::env::var("XTASK_ENGINE").ok().filter(|v| !v.is_empty()) {
        Some(v) => v.parse().map(Some).map_err(|e| anyhow::anyhow!("XTASK_ENGINE: {e:#}")),
        None => Ok(None),
    }
}

/// The engine to build with: the one DOCKER_HOST names, else the current context's, else a
/// running private engine, else (when `start` is set) a private engine started now, said in one
/// line.
pub fn connect(settings: &Settings, start: bool) -> Result<Engine> {
    let wanted = wanted_spec()?;
    if let Some(host) = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()) {
        // An engine named on purpose is the one to use: never fall back to another silently.
        if let Some(layout) = Spec::ALL.iter().map(|s| Layout::new(*s)).find(|l| l.client_env()[0].1 == host) {
            let engine = layout.engine(false);
            if engine.answers() {
                return Ok(engine);
            }
            bail!("the private {} engine at DOCKER_HOST={host} does not answer: `cargo xtask engine up --channel {}{}`, or unset DOCKER_HOST", layout.spec.name(), layout.spec.channel, if layout.spec.classic { " --classic" } else { "" })
        }
        if Engine::default().answers() {
            return Ok(Engine::default());
        }
        bail!("no Docker engine answers at DOCKER_HOST={host}: start it, or unset DOCKER_HOST to use the current context or the project's private engine")
    }
    if wanted.is_none() && Engine::default().answers() {
        return Ok(Engine::default());
    }
    let order: Vec<Spec> = match wanted {
        Some(s) => vec![s],
        None => Spec::ALL.to_vec(),
    };
    if let Some(layout) = order.iter().map(|s| Layout::new(*s)).find(Layout::running) {
        let engine = layout.engine(false);
        if engine.answers() {
            return Ok(engine);
        }
    }
    let spec = wanted.unwrap_or(Spec::DEFAULT);
    if !start {
        bail!("no Docker engine answers (DOCKER_HOST or the current context); start one with `cargo xtask engine up`")
    }
    eprintln!(
        "xtask: no Docker engine answered; starting the project's private {} engine (`cargo xtask engine down` stops it)",
        spec.name()
    );
    let layout = Layout::new(spec);
    private::start(&layout, settings)?;
    Ok(layout.engine(true))
}

/// The named private engine: the running one, or one started now.
pub fn private_engine(spec: Spec, settings: &Settings) -> Result<Engine> {
    let layout = Layout::new(spec);
    if layout.running() && layout.engine(false).answers() {
        return Ok(layout.engine(false));
    }
    eprintln!("xtask: starting the project's private {} engine", spec.name());
    private::start(&layout, settings)?;
    Ok(layout.engine(true))
}

/// `engine up`: without a channel, uses whatever engine answers; with one (or `--classic`),
/// starts that private engine even beside another, and says which engine builds will use.
pub fn up(settings: &Settings, channel: Option<Channel>, classic: bool) -> Result<()> {
    let asked = channel.is_some() || classic;
    let spec = Spec { channel: channel.unwrap_or(Channel::Current), classic };
    let spec = if asked { spec } else { wanted_spec()?.unwrap_or(spec) };
    let layout = Layout::new(spec);
    let other = Engine::default();
    if layout.running() {
        // A tool pinned since the engine started (cosign) is added beside it.
        debian::install_prefix(&layout)?;
        println!("the private {} engine is already up; nothing to do", spec.name());
    } else if !asked && wanted_spec()?.is_none() && other.answers() {
        let version = runner::read(&other.docker().args(["version", "--format", "{{.Server.Version}}"]))?;
        println!("an engine already answers ({}, Docker {version}); builds use it, so nothing is started (`engine up --channel current` starts a private one beside it)", other.describe());
        return Ok(());
    } else if private::start(&layout, settings)? {
        let versions = layout.installed_versions();
        let of = |name: &str| versions.iter().find(|(n, _)| n == name).map_or("?", |(_, v)| v.as_str()).to_string();
        println!(
            "started the private {} engine: dockerd {}, buildx {}, compose {}, {} image store, registry {} (dockerd pid {})",
            spec.name(),
            of("docker.io"),
            of("docker-buildx"),
            of("docker-compose"),
            if spec.classic { "classic" } else { "containerd" },
            layout.registry_addr(),
            layout.dockerd().unwrap_or(0)
        );
    } else {
        println!("the private {} engine is already up (another `engine up` started it); nothing to do", spec.name());
    }
    if asked && other.answers() {
        println!(
            "note: another engine answers at {}; builds use that one until DOCKER_HOST points here",
            other.describe()
        );
    }
    println!("point a shell at it with:");
    print_exports(&layout);
    Ok(())
}

fn print_exports(layout: &Layout) {
    for (k, v) in layout.client_env() {
        println!("export {k}={}", runner::quote(&v));
    }
}

/// `engine env`: the exports that point a shell at the running private engine.
pub fn env(channel: Option<Channel>, classic: bool) -> Result<()> {
    let layout = pick_running(channel, classic)?;
    print_exports(&layout);
    Ok(())
}

/// The private engine a command names, or the only one running.
fn pick_running(channel: Option<Channel>, classic: bool) -> Result<Layout> {
    if channel.is_some() || classic {
        let spec = Spec { channel: channel.unwrap_or(Channel::Current), classic };
        let layout = Layout::new(spec);
        if !layout.running() {
            bail!(
                "the private {} engine is not running: `cargo xtask engine up --channel {}{}`",
                spec.name(),
                spec.channel,
                if classic { " --classic" } else { "" }
            );
        }
        return Ok(layout);
    }
    let running: Vec<Layout> = Spec::ALL.iter().map(|s| Layout::new(*s)).filter(Layout::running).collect();
    match running.len() {
        0 => bail!("no private engine is running: `cargo xtask engine up` starts one"),
        _ => Ok(running.into_iter().next().expect("one running engine")),
    }
}

/// `engine down`: stops the named private engine, or every one this checkout runs.
pub fn down(channel: Option<Channel>, classic: bool) -> Result<()> {
    let specs: Vec<Spec> = if channel.is_some() || classic {
        vec![Spec { channel: channel.unwrap_or(Channel::Current), classic }]
    } else {
        Spec::ALL.to_vec()
    };
    let mut stopped = 0;
    for spec in specs {
        stopped += private::stop_engine(&Layout::new(spec))?;
    }
    if stopped == 0 {
        println!("no private engine of this checkout is running; nothing to stop");
    }
    Ok(())
}

/// Stops one private engine (the one a command started).
pub fn down_one(engine: &Engine) -> Result<()> {
    match engine.spec {
        Some(spec) => private::stop_engine(&Layout::new(spec)).map(|_| ()),
        None => Ok(()),
    }
}

pub use private::check_host;

/// `engine status`: one line each.
pub fn status(settings: &Settings) -> Result<()> {
    let engine = connect(settings, false)?;
    let f = facts(&engine, None)?;
    let show = |v: &Option<Version>| v.as_ref().map_or("unknown".to_string(), Version::to_string);
    let layout = engine.spec.map(Layout::new);
    let owner = match layout.as_ref().and_then(|l| l.dockerd().map(|pid| (l, pid))) {
        Some((l, pid)) => format!("private {} engine of this checkout, dockerd pid {pid}", l.spec.name()),
        None => "not managed by the xtask".to_string(),
    };
    println!("engine     {} (Docker {}, {owner})", f.endpoint, f.engine_version);
    if let Some(l) = &layout {
        let versions = l.installed_versions();
        let list: Vec<String> = versions
            .iter()
            .filter(|(n, _)| n.starts_with("docker") || n == "containerd")
            .map(|(n, v)| format!("{n} {v}"))
            .collect();
        println!("channel    {} ({})", l.spec.channel, list.join(", "));
    }
    println!("buildkit   {}{}", show(&f.buildkit_version), f.buildkit_note);
    println!("buildx     {}", show(&f.buildx_version));
    println!("store      {}", if f.containerd_store { "containerd image store" } else { "classic image store" });
    println!("builder    driver {}", f.driver);
    println!("platforms  {}", f.platforms.join(", "));
    let addr = engine.registry_addr();
    let registry = match std::net::TcpStream::connect_timeout(&addr.parse()?, Duration::from_secs(1)) {
        Ok(_) => format!("{addr} answers"),
        Err(_) => format!("{addr} does not answer"),
    };
    let pid = layout.as_ref().and_then(Layout::registry);
    println!("registry   {registry}{}", pid.map_or(String::new(), |p| format!(" (private, pid {p})")));
    println!("binfmt     {}", binfmt_status());
    Ok(())
}
