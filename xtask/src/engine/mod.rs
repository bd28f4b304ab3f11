//! The Docker engine to build with: the one the environment reaches, or one of the project's
//! private engines (`cargo xtask engine up | down | status | env`).
//!
//! A private engine is dockerd with BuildKit, the buildx and compose plug-ins, QEMU registered
//! through binfmt_misc for the other architecture, and a registry on loopback, all unpacked from
//! pinned Debian packages under `target/engine/<name>`: the `current` channel (Debian testing's
//! Docker, the default) or the `floor` (Debian stable's), each with the containerd image store or,
//! as `<channel>-classic`, the classic one. Nothing is installed system-wide.

pub(crate) mod access;
pub mod api;
pub mod cgroup;
mod channel;
mod debian;
pub(crate) mod dialstdio;
pub(crate) mod events;
mod facts;
mod integrity;
mod layout;
mod named;
mod network;
mod private;
mod registry;
mod remote;
pub(crate) mod rundir;
pub mod store;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use semver::Version;

pub use channel::{Channel, Spec};
pub(crate) use debian::debian_mirror;
pub(crate) use facts::{binfmt_status, buildx_identity, facts, Capabilities, EngineRecord, Facts};
pub use layout::host_arch;
pub use layout::Layout;

use crate::settings::Settings;
use crate::util::memo::Cache;
use crate::util::runner::{self, Cmd};

/// The floors below which the xtask refuses to build: bake with `--metadata-file` and rawjson
/// progress needs buildx 0.13; the Dockerfile 1.7 features the images use need BuildKit 0.13.
pub(crate) const BUILDX_FLOOR: Version = Version::new(0, 13, 0);
pub(crate) const BUILDKIT_FLOOR: Version = Version::new(0, 13, 0);

/// How to reach an engine: the variables every docker command gets.
#[derive(Clone, Debug, Default)]
pub struct Engine {
    pub(crate) env: Vec<(String, String)>,
    /// Which private engine this is; None for an engine the user runs.
    pub(crate) spec: Option<Spec>,
    /// The private engine's name (`current`, or one given with `engine up --name`).
    pub(crate) name: Option<String>,
    /// True when this run of the xtask started it (so `test` knows to stop it again).
    pub(crate) started_now: bool,
}

impl Engine {
    pub(crate) fn docker(&self) -> Cmd {
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
    pub(crate) fn socket(&self) -> Option<PathBuf> {
        api::socket(self.docker_host().as_deref())
    }

    /// Where its API is asked: the socket, else through the docker CLI's connection.
    pub(crate) fn api(&self) -> api::Endpoint {
        match self.socket() {
            Some(socket) => api::Endpoint::Socket(socket),
            None => api::Endpoint::Cli(self.env.clone()),
        }
    }

    /// True when the engine answers: a ping over its socket, or `docker version` otherwise.
    pub(crate) fn answers(&self) -> bool {
        match self.socket() {
            Some(sock) => api::get(&sock, "/_ping").is_some_and(|(code, _)| code == 200),
            None => {
                let probe = self.docker().args(["version", "--format", "{{.Server.Version}}"]);
                runner::read_with_timeout(&probe, Duration::from_secs(10)).is_ok()
            }
        }
    }

    /// The engine as a person names it: DOCKER_HOST, else the docker context in use.
    pub(crate) fn describe(&self) -> String {
        match (self.docker_host(), api::current_context()) {
            (Some(host), _) => host,
            (None, Some(context)) => format!("docker context {context}"),
            (None, None) => "the current docker context".to_string(),
        }
    }

    /// True when the image is in the engine's store.
    pub(crate) fn has_image(&self, image: &str) -> bool {
        store::image_id(self, image).is_some()
    }

    /// Uncompressed bytes of an image's layers for the engine's platform: the sum of `docker
    /// history` sizes. (`docker image inspect`'s Size is not that: with the containerd image store
    /// of Docker 26 it counts the compressed blobs, and older engines counted unpacked layers.)
    pub(crate) fn image_size(&self, image: &str) -> Option<u64> {
        if let Some(sock) = self.socket() {
            let history = api::get_json(&sock, &format!("/images/{}/history", api::escape(image)))?;
            return history.as_array()?.iter().map(|layer| layer["Size"].as_u64()).sum();
        }
        let history = self.docker().args(["history", "--human=false", "--format", "{{.Size}}", image]);
        runner::read(&history).ok()?.lines().map(|l| l.trim().parse::<u64>().ok()).sum()
    }

    /// True when a registry answers for the image (a lookup of its manifest, nothing pulled).
    /// Being offline (or online) rarely changes from one build to the next, and each lookup costs
    /// a buildx start, so an answer is kept for 10 minutes.
    pub(crate) fn registry_has(&self, image: &str) -> bool {
        let cache = Cache::new("registry-probes.json", 600);
        if let Some(answer) = cache.get::<bool>(image) {
            return answer;
        }
        let answer = self.registry_digest(image).is_some();
        cache.put(image, answer);
        answer
    }

    /// The digest of what `image` names in its registry (an index or a manifest); `None` when the
    /// registry does not name one within 15 s.
    pub(crate) fn registry_digest(&self, image: &str) -> Option<String> {
        manifest_digest(&self.docker(), image).ok()
    }
}

impl Engine {
    pub(crate) fn is_private(&self) -> bool {
        self.spec.is_some()
    }

    /// The private engine's files; the default engine's for an engine the user runs.
    pub(crate) fn layout(&self) -> Layout {
        let named = self.name.as_deref().and_then(|n| Layout::open(n).ok());
        named.unwrap_or_else(|| Layout::new(self.spec.unwrap_or(Spec::DEFAULT)))
    }

    /// The registry this engine's pushes and registry caches go to by default.
    pub(crate) fn registry_addr(&self) -> String {
        self.layout().registry_addr()
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
        if let Some(layout) = Layout::all().into_iter().find(|l| l.client_env()[0].1 == host) {
            let engine = layout.engine(false);
            if engine.answers() {
                return Ok(engine);
            }
            bail!("the private {} engine at DOCKER_HOST={host} does not answer: `cargo xtask engine up {}`, or unset DOCKER_HOST", layout.name, up_flags(&layout))
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
pub(crate) fn private_engine(spec: Spec, settings: &Settings) -> Result<Engine> {
    let layout = Layout::new(spec);
    if layout.running() && layout.engine(false).answers() {
        return Ok(layout.engine(false));
    }
    eprintln!("xtask: starting the project's private {} engine", spec.name());
    private::start(&layout, settings)?;
    Ok(layout.engine(true))
}

/// The flags of `engine up` that bring this engine up.
fn up_flags(layout: &Layout) -> String {
    let spec = layout.spec;
    let mut flags = format!("--channel {}", spec.channel);
    if spec.classic {
        flags.push_str(" --classic");
    }
    if layout.name != spec.name() {
        flags = format!("--name {} {flags}", layout.name);
    }
    flags
}

/// Which private engine `engine up | down | env | status` means: `--name`, else the channel
/// and store; None when neither was given.
pub struct Which {
    pub name: Option<String>,
    pub channel: Option<Channel>,
    pub classic: bool,
}

impl Which {
    fn given(&self) -> bool {
        self.name.is_some() || self.channel.is_some() || self.classic
    }
    fn spec(&self) -> Spec {
        Spec { channel: self.channel.unwrap_or(Channel::Current), classic: self.classic }
    }
    /// The engine as recorded (for `env`, `status`, `down`).
    fn layout(&self) -> Result<Layout> {
        match &self.name {
            Some(name) => {
                let layout = Layout::open(name)?;
                if (self.channel.is_some() || self.classic) && layout.spec != self.spec() {
                    let (is, asked) = (layout.spec.name(), self.spec().name());
                    bail!("the engine `{name}` is `{is}`, not `{asked}`: leave out --channel/--classic");
                }
                Ok(layout)
            }
            None => Ok(Layout::new(self.spec())),
        }
    }
}

/// `engine up`: without a channel, uses whatever engine answers; with one (or `--classic`, or a
/// `--name`), starts that private engine even beside another, and says which engine builds will
/// use.
pub fn up(settings: &Settings, which: &Which) -> Result<()> {
    remote::refuse_if_remote("up")?;
    let asked = which.given();
    let spec = if asked { which.spec() } else { wanted_spec()?.unwrap_or(which.spec()) };
    let layout = match &which.name {
        // Root first: the record of a named engine is written into the engines' folder.
        Some(name) => {
            check_host()?;
            Layout::for_up(name, spec, &named::running_claims())?
        }
        None => Layout::new(spec),
    };
    let other = Engine::default();
    if layout.running() {
        // A tool pinned since the engine started (cosign) is added beside it.
        debian::install_prefix(&layout)?;
        println!("the private {} engine is already up; nothing to do", layout.name);
    } else if !asked && wanted_spec()?.is_none() && other.answers() {
        let version = runner::read(&other.docker().args(["version", "--format", "{{.Server.Version}}"]))?;
        println!("an engine already answers ({}, Docker {version}); builds use it, so nothing is started (`engine up --channel current` starts a private one beside it)", other.describe());
        return Ok(());
    } else if private::start(&layout, settings)? {
        let versions = layout.installed_versions();
        let of = |name: &str| versions.iter().find(|(n, _)| n == name).map_or("?", |(_, v)| v.as_str()).to_string();
        println!(
            "started the private {} engine: dockerd {}, buildx {}, compose {}, {} image store, registry {} (dockerd pid {})",
            layout.name,
            of("docker.io"),
            of("docker-buildx"),
            of("docker-compose"),
            if spec.classic { "classic" } else { "containerd" },
            layout.registry_addr(),
            layout.dockerd().unwrap_or(0)
        );
    } else {
        println!("the private {} engine is already up (another `engine up` started it); nothing to do", layout.name);
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
pub fn env(which: &Which) -> Result<()> {
    let layout = pick_running(which)?;
    print_exports(&layout);
    Ok(())
}

/// The private engine a command names, or the first one running.
fn pick_running(which: &Which) -> Result<Layout> {
    if which.given() {
        let layout = which.layout()?;
        if !layout.running() {
            bail!("the private {} engine is not running: `cargo xtask engine up {}`", layout.name, up_flags(&layout));
        }
        return Ok(layout);
    }
    let running: Vec<Layout> = Layout::all().into_iter().filter(Layout::running).collect();
    match running.len() {
        0 => bail!("no private engine is running: `cargo xtask engine up` starts one"),
        _ => Ok(running.into_iter().next().expect("one running engine")),
    }
}

/// `engine down`: stops the named private engine, or every one this checkout runs.
pub fn down(which: &Which) -> Result<()> {
    remote::refuse_if_remote("down")?;
    let layouts = if which.given() { vec![which.layout()?] } else { Layout::all() };
    let mut stopped = 0;
    for layout in layouts {
        stopped += private::stop_engine(&layout)?;
    }
    if stopped == 0 {
        println!("no private engine of this checkout is running; nothing to stop");
    }
    Ok(())
}

/// Stops one private engine (the one a command started).
pub(crate) fn down_one(engine: &Engine) -> Result<()> {
    match engine.spec {
        Some(_) => private::stop_engine(&engine.layout()).map(|_| ()),
        None => Ok(()),
    }
}

pub(crate) use private::{check_host, forget_store};

/// `engine status`: one line each, of the engine builds use, or of the private one named.
pub fn status(settings: &Settings, which: &Which) -> Result<()> {
    let engine = if which.given() { pick_running(which)?.engine(false) } else { connect(settings, false)? };
    let f = facts(&engine, None)?;
    let show = |v: &Option<Version>| v.as_ref().map_or("unknown".to_string(), Version::to_string);
    let layout = engine.spec.map(|_| engine.layout());
    let owner = match layout.as_ref().and_then(|l| l.dockerd().map(|pid| (l, pid))) {
        Some((l, pid)) => format!("private {} engine of this checkout, dockerd pid {pid}", l.name),
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
    let registry = match crate::util::net::answers(&addr, Duration::from_secs(1)) {
        true => format!("{addr} answers"),
        false => format!("{addr} does not answer"),
    };
    let pid = layout.as_ref().and_then(Layout::registry);
    println!("registry   {registry}{}", pid.map_or(String::new(), |p| format!(" (private, pid {p})")));
    println!("binfmt     {}", binfmt_status());
    Ok(())
}

/// The digest of an image's top manifest (its index, for a multi-platform image) in the registry
/// that holds it, as buildx reads it with the registry's auth.
pub(crate) fn manifest_digest(docker: &Cmd, image: &str) -> Result<String> {
    let cmd =
        docker.clone().args(["buildx", "imagetools", "inspect", "--format", "{{json .Manifest}}"]).names(&[image]);
    let manifest: serde_json::Value = serde_json::from_str(&runner::read_with_timeout(&cmd, Duration::from_secs(15))?)
        .with_context(|| format!("reading the manifest of {image}"))?;
    manifest["digest"].as_str().map(str::to_string).with_context(|| format!("{image} has no digest"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_to_bring_an_engine_up_name_it_when_it_has_a_name_of_its_own() {
        assert_eq!(up_flags(&Layout::new(Spec::DEFAULT)), "--channel current");
        let floor_classic = Spec { channel: Channel::Floor, classic: true };
        assert_eq!(up_flags(&Layout::new(floor_classic)), "--channel floor --classic");
        assert_eq!(up_flags(&Layout::at(Spec::DEFAULT, "second", 5004)), "--name second --channel current");
        assert_eq!(Layout::at(Spec::DEFAULT, "second", 5004).registry_addr(), "127.0.0.1:5004");
    }
}
