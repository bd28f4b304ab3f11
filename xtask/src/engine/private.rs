//! The life of a private engine: its files, its own bridge and subnet, dockerd, the registry,
//! QEMU through binfmt_misc, and stopping exactly what `up` started.
//!
//! Several private engines can run side by side on one host (a channel each, or a classic-store
//! variant). Each has its own prefix, data root, sockets, registry port, bridge and subnet, and
//! runs with dockerd's own iptables management off: engines share iptables chain names, and a
//! dockerd that manages another's `docker0` can delete it. The few rules an engine needs (NAT out
//! of its subnets, forwarding in and out) are added by `up` and removed by `down`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::debian;
use super::layout::{host_arch, prefix_env, read_pid, Layout};
use super::network::Network;
use crate::settings::Settings;
use crate::util::net;
use crate::util::paths::write_atomic;
use crate::util::runner::{self, Cmd};

pub(crate) fn check_host() -> Result<()> {
    let steps = "install Docker Engine 26+ with the buildx and compose plug-ins, start it, and check \
                 `docker buildx version`; or run as root on Debian/Ubuntu where `cargo xtask engine up` \
                 builds a private one";
    if !cfg!(target_os = "linux") {
        bail!(
            "the private engine needs Linux (it is dockerd from Debian packages): start Docker Desktop, or another \
             Docker Engine 26+ with buildx and compose, and the xtask uses it through the docker CLI"
        );
    }
    let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let debian_like = os
        .lines()
        .any(|l| (l.starts_with("ID=") || l.starts_with("ID_LIKE=")) && (l.contains("debian") || l.contains("ubuntu")));
    if !debian_like || which::which("apt-get").is_err() || which::which("dpkg-deb").is_err() {
        bail!("no Docker engine answers and a private one needs Debian or Ubuntu with apt-get: {steps}");
    }
    if which::which("ip").is_err() {
        bail!("a private engine needs the `ip` command for its own bridge: apt-get install iproute2");
    }
    let uid = runner::read(&Cmd::new("id").arg("-u")).unwrap_or_default();
    if uid != "0" {
        bail!("no Docker engine answers and a private one needs root (dockerd, iptables, binfmt): {steps}");
    }
    Ok(())
}

/// Starts the private engine; false when another `up` had started it meanwhile.
pub(crate) fn start(layout: &Layout, settings: &Settings) -> Result<bool> {
    check_host()?;
    std::fs::create_dir_all(&layout.root)?;
    // Two `up`s at once: the second waits here, then finds the engine running.
    let lock = File::create(layout.root.join("lock")).context("creating the engine lock file")?;
    lock.lock().context("waiting for another `engine up` to finish")?;
    if layout.running() {
        return Ok(false);
    }
    let net = Network::choose(layout)?;
    super::named::refuse_collisions(layout, net.n)?;
    let phase = |k: usize, what: &str| {
        crate::util::progress::Phase::start(&format!("engine {}: {what}", layout.name), Some((k, 3)))
    };
    let p = phase(1, "installing its packages");
    debian::install_prefix(layout)?;
    super::integrity::check(layout)?;
    p.done();
    std::fs::create_dir_all(&layout.run)?;
    register_binfmt(layout)?;
    // A start that fails halfway leaves nothing behind: what did start is stopped, and the bridge,
    // its rules and the binfmt entry go, as with `down`.
    let p = phase(2, "starting dockerd");
    let started = net.create(layout).and_then(|()| start_dockerd(layout, settings, &net)).map(|()| p.done());
    let started = started.and_then(|()| {
        let p = phase(3, "starting its registry");
        start_registry(layout).map(|()| p.done())
    });
    if let Err(e) = started {
        let _ = stop_engine(layout);
        return Err(e);
    }
    Ok(true)
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
pub(crate) fn binfmt_entry(host: &str) -> (&'static str, &'static str, &'static str) {
    const MASK: &str = r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff";
    if host == "arm64" {
        ("qemu-x86_64", r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00", MASK)
    } else {
        ("qemu-aarch64", r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00", MASK)
    }
}

/// dockerd's configuration: the image store, the engine's own bridge and address pool, its own
/// cgroup parent where given, and no iptables management (see the module's comment).
fn daemon_json(layout: &Layout, net: &Network, cgroup_parent: Option<String>) -> String {
    let mut config = serde_json::json!({
        "features": {"containerd-snapshotter": !layout.spec.classic},
        "bridge": layout.bridge(),
        "iptables": false,
        "ip6tables": false,
        "default-address-pools": [{"base": net.subnets()[1], "size": 26}],
    });
    if let Some(parent) = cgroup_parent {
        config["cgroup-parent"] = parent.into();
    }
    config.to_string()
}

/// The engine's own cgroup parent ([`super::cgroup`]), where dockerd takes a path: under systemd
/// it may manage cgroups itself and then wants a slice instead, so there dockerd keeps its default.
fn cgroup_parent(layout: &Layout) -> Option<String> {
    (!Path::new("/run/systemd/system").exists()).then(|| super::cgroup::parent(&layout.run))
}

fn start_dockerd(layout: &Layout, settings: &Settings, net: &Network) -> Result<()> {
    let data = layout.root.join("data");
    std::fs::create_dir_all(&data).with_context(|| format!("creating the engine's data root {}", data.display()))?;
    // dockerd deletes the host's `docker0` when it finds its own default network stored from an
    // earlier run while address pools are configured (it takes docker0 for its stale bridge):
    // that would cut another engine's containers off. Networks are forgotten between runs
    // instead; a build engine keeps none worth keeping (compose makes its own again).
    let store = data.join("network/files/local-kv.db");
    if store.exists() {
        std::fs::remove_file(&store).with_context(|| format!("removing {}", store.display()))?;
    }
    let config = layout.root.join("daemon.json");
    write_atomic(&config, daemon_json(layout, net, cgroup_parent(layout)).as_bytes())?;
    let log = layout.root.join("dockerd.log");
    let dockerd = Cmd::new(layout.bin("dockerd").display().to_string())
        .args(["--config-file", &config.display().to_string()])
        .args(["--data-root", &data.display().to_string()])
        .args(["--exec-root", &layout.run.join("exec").display().to_string()])
        .args(["--pidfile", &layout.dockerd_pid().display().to_string()])
        .args(["--host", &format!("unix://{}", layout.socket().display())])
        .envs(&prefix_env(layout))
        // BuildKit's step-log limits are read by the daemon, so this is where they take effect.
        .envs(&settings.daemon_env());
    runner::spawn_daemon(&dockerd, &log)?;
    let engine = layout.engine(true);
    if !runner::wait_until(Duration::from_secs(60), || engine.answers()) {
        let tail = runner::last_lines(&std::fs::read_to_string(&log).unwrap_or_default(), 8);
        bail!("the private dockerd did not answer within 60s; last lines of {}:\n{tail}", log.display());
    }
    Ok(())
}

fn start_registry(layout: &Layout) -> Result<()> {
    let addr = layout.registry_addr();
    if net::answers(&addr, Duration::from_secs(1)) {
        let own = read_pid(&layout.registry_pid()).filter(|p| layout.owns(*p));
        return super::registry::check_holder(
            &layout.name,
            &addr,
            own,
            &crate::util::net::holders(layout.registry_port()),
        );
    }
    let storage = layout.root.join("registry");
    std::fs::create_dir_all(&storage)?;
    let config = layout.root.join("registry.yml");
    write_atomic(&config, super::registry::config(&storage, &addr).as_bytes())?;
    let cmd =
        Cmd::new(layout.bin("docker-registry").display().to_string()).args(["serve", &config.display().to_string()]);
    let pid = runner::spawn_daemon(&cmd, &layout.root.join("registry.log"))?;
    write_atomic(&layout.registry_pid(), format!("{pid}\n").as_bytes())?;
    if !runner::wait_until(Duration::from_secs(15), || net::answers(&addr, Duration::from_secs(1))) {
        bail!("the registry did not listen on {addr} within 15s; see {}", layout.root.join("registry.log").display());
    }
    Ok(())
}

/// Sets a stopped private engine's store (images, containers, build cache) and its registry's
/// storage aside together, so that neither holds a stand-in the other no longer has; keeps its
/// packages and settings. What the next start makes again is the stand-ins and the cache. The
/// renames are instant; the returned [`SetAside`] removes the folders (gigabytes: seconds of
/// disk work that a caller may do while something else runs).
pub(crate) fn forget_store(engine: &super::Engine) -> Result<SetAside> {
    let layout = engine.layout();
    if engine.spec.is_none() || layout.running() {
        anyhow::bail!("only a stopped private engine's store is removed");
    }
    let mut dirs = Vec::new();
    for name in ["data", "registry"] {
        let (dir, aside) = (layout.root.join(name), layout.root.join(format!(".forgotten-{name}")));
        // One left by a run that was stopped before it removed it.
        if aside.exists() {
            std::fs::remove_dir_all(&aside).with_context(|| format!("removing {}", aside.display()))?;
        }
        if dir.exists() {
            std::fs::rename(&dir, &aside).with_context(|| format!("moving {} aside", dir.display()))?;
            dirs.push(aside);
        }
    }
    Ok(SetAside(dirs))
}

/// A forgotten store's folders, moved out of the engine's way and not yet removed.
pub(crate) struct SetAside(Vec<PathBuf>);

impl SetAside {
    /// Removes the folders; returns the bytes freed.
    pub(crate) fn remove(self) -> Result<u64> {
        let mut bytes = 0;
        for dir in self.0 {
            bytes += crate::util::paths::dir_size(&dir);
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        Ok(bytes)
    }
}

/// Stops the registry and dockerd that `up` started, by pid file, and nothing else; returns how
/// many processes it stopped.
pub(crate) fn stop_engine(layout: &Layout) -> Result<usize> {
    let mut stopped = 0;
    let mut failures = Vec::new();
    for (what, file) in [("registry", layout.registry_pid()), ("dockerd", layout.dockerd_pid())] {
        let Some(pid) = read_pid(&file) else { continue };
        if !layout.owns(pid) {
            eprintln!("xtask: {what}'s pid file names {pid}, which is not ours any more; leaving it alone");
            let _ = std::fs::remove_file(&file);
            continue;
        }
        match stop(pid) {
            Ok(()) => {
                let _ = std::fs::remove_file(&file);
                println!("stopped the {} engine's {what} (pid {pid})", layout.name);
                stopped += 1;
            }
            // Keep going: one stuck process must not leave the others running.
            Err(e) => failures.push(format!("{what}: {e:#}")),
        }
    }
    if !failures.is_empty() {
        bail!("could not stop {}", failures.join("; "));
    }
    let ended = super::cgroup::end_leftovers(&super::cgroup::parent(&layout.run));
    if ended > 0 {
        println!("ended {ended} process(es) the {} engine's dockerd left running", layout.name);
    }
    Network::remove(layout);
    release_binfmt(layout)?;
    // The run folder (its exec root, sockets) goes once nothing of the engine runs.
    if !layout.running() && !super::rundir::clear(&layout.run).unwrap_or(false) && layout.run.exists() {
        eprintln!("xtask: kept {}: something in it is still mounted, or is not the engine's", layout.run.display());
    }
    Ok(stopped)
}

/// Unregisters QEMU if this engine registered it and no other private engine still runs; else
/// hands the duty to one that does.
fn release_binfmt(layout: &Layout) -> Result<()> {
    let Ok(name) = std::fs::read_to_string(layout.binfmt_marker()) else { return Ok(()) };
    let _ = std::fs::remove_file(layout.binfmt_marker());
    let others: Vec<Layout> = Layout::all().into_iter().filter(|l| l.root != layout.root && l.running()).collect();
    if let Some(other) = others.first() {
        std::fs::write(other.binfmt_marker(), &name)?;
        return Ok(());
    }
    let entry = Path::new("/proc/sys/fs/binfmt_misc").join(name.trim());
    if entry.exists() {
        std::fs::write(&entry, "-1").with_context(|| format!("unregistering {}", entry.display()))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::channel::{Channel, Spec};

    #[test]
    fn each_host_registers_the_other_architecture() {
        assert_eq!(binfmt_entry("amd64").0, "qemu-aarch64");
        assert_eq!(binfmt_entry("arm64").0, "qemu-x86_64");
        assert!(binfmt_entry("amd64").1.ends_with(r"\xb7\x00"), "EM_AARCH64 is 0xb7");
    }

    #[test]
    fn daemon_config_keeps_off_iptables_and_names_the_store() {
        let classic = Layout::new(Spec { channel: Channel::Floor, classic: true });
        let parent = Some(super::super::cgroup::parent(&classic.run));
        let json: serde_json::Value = serde_json::from_str(&daemon_json(&classic, &Network { n: 9 }, parent)).unwrap();
        assert_eq!(json["features"]["containerd-snapshotter"], false);
        assert_eq!(json["iptables"], false);
        let parent = json["cgroup-parent"].as_str().unwrap();
        assert!(parent.starts_with("/xtask-engine-") && parent.len() > "/xtask-engine-".len(), "{parent}");
        let without: serde_json::Value = serde_json::from_str(&daemon_json(&classic, &Network { n: 9 }, None)).unwrap();
        assert!(without.get("cgroup-parent").is_none(), "dockerd's default where none is given: {without}");
        assert_eq!(json["bridge"], classic.bridge());
        assert_eq!(json["default-address-pools"][0]["base"], "10.214.9.0/24");
    }
}
