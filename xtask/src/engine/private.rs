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

use super::channel::Spec;
use super::debian::{self, host_arch, multiarch};
use super::Engine;
use crate::paths::{self, write_atomic};
use crate::runner::{self, Cmd};
use crate::settings::Settings;

/// One private engine's files. Sockets and exec state go under /run (short paths: a unix socket
/// path is limited to 108 bytes), named after the engine's folder so two never share one.
pub struct Layout {
    pub spec: Spec,
    /// The folder's name: the spec's (`current`, ...) or one given with `engine up --name`.
    pub name: String,
    port: u16,
    /// The folder every private engine of this checkout lives in (downloads are shared there).
    pub base: PathBuf,
    pub root: PathBuf,
    pub prefix: PathBuf,
    pub run: PathBuf,
}

impl Layout {
    pub fn new(spec: Spec) -> Layout {
        Layout::at(spec, &spec.name(), spec.registry_port())
    }
    pub(super) fn at(spec: Spec, name: &str, port: u16) -> Layout {
        let base = paths::engine_dir();
        let root = base.join(name);
        let run = PathBuf::from(format!("/run/xtask-engine-{:08x}", short_hash(&root.display().to_string())));
        Layout { spec, name: name.to_string(), port, prefix: root.join("prefix"), root, run, base }
    }
    pub fn socket(&self) -> PathBuf {
        self.run.join("docker.sock")
    }
    pub fn dockerd_pid(&self) -> PathBuf {
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
    pub fn registry_addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
    pub fn registry_port(&self) -> u16 {
        self.port
    }
    /// A bridge name of at most 15 bytes, unique to this engine's folder.
    pub(super) fn bridge(&self) -> String {
        format!("xtask{:08x}", short_hash(&self.root.display().to_string()))
    }
    pub fn bin(&self, name: &str) -> PathBuf {
        ["usr/bin", "usr/sbin"]
            .iter()
            .map(|d| self.prefix.join(d).join(name))
            .find(|p| p.exists())
            .unwrap_or_else(|| self.prefix.join("usr/bin").join(name))
    }
    /// The variables that point the docker CLI at this engine and its plug-ins.
    pub fn client_env(&self) -> Vec<(String, String)> {
        vec![
            ("DOCKER_HOST".to_string(), format!("unix://{}", self.socket().display())),
            ("DOCKER_CONFIG".to_string(), self.docker_config().display().to_string()),
        ]
    }
    pub fn engine(&self, started_now: bool) -> Engine {
        Engine { env: self.client_env(), spec: Some(self.spec), name: Some(self.name.clone()), started_now }
    }
    /// The exact package versions unpacked into the prefix.
    pub fn installed_versions(&self) -> Vec<(String, String)> {
        std::fs::read(self.prefix.join("versions.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }
    pub fn running(&self) -> bool {
        read_pid(&self.dockerd_pid()).is_some_and(|pid| self.owns(pid))
    }
    /// A pid counts as ours only while it runs a program from our prefix: a stale pid file whose
    /// number was reused by something else is never signalled.
    pub fn owns(&self, pid: u32) -> bool {
        std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe.starts_with(&self.prefix))
    }
    pub fn dockerd(&self) -> Option<u32> {
        read_pid(&self.dockerd_pid()).filter(|p| self.owns(*p))
    }
    pub fn registry(&self) -> Option<u32> {
        read_pid(&self.registry_pid()).filter(|p| self.owns(*p))
    }
}

fn short_hash(s: &str) -> u32 {
    // FNV-1a: stable across Rust versions, unlike std's hasher.
    s.bytes().fold(0x811c9dc5u32, |h, b| (h ^ b as u32).wrapping_mul(0x01000193))
}

fn read_pid(file: &Path) -> Option<u32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

pub fn check_host() -> Result<()> {
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
pub fn start(layout: &Layout, settings: &Settings) -> Result<bool> {
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
    debian::install_prefix(layout)?;
    std::fs::create_dir_all(&layout.run)?;
    register_binfmt(layout)?;
    net.create(layout)?;
    start_dockerd(layout, settings, &net)?;
    start_registry(layout)?;
    Ok(true)
}

/// This engine's own bridge and address ranges: the bridge's /24 in 10.213.N.0, and a /24 in
/// 10.214.N.0 for the networks compose creates. N is kept in the engine's folder.
struct Network {
    n: u8,
}

impl Network {
    fn subnets(&self) -> [String; 2] {
        [format!("10.213.{}.0/24", self.n), format!("10.214.{}.0/24", self.n)]
    }

    /// The engine's N from last time, or the first one no interface of this host uses.
    fn choose(layout: &Layout) -> Result<Network> {
        let file = layout.root.join("network");
        let addrs = runner::read(&Cmd::new("ip").args(["-o", "-4", "addr", "show"])).unwrap_or_default();
        let bridge = layout.bridge();
        let taken = |n: u8| {
            addrs
                .lines()
                .filter(|l| !l.contains(&format!(" {bridge} ")))
                .any(|l| l.contains(&format!(" 10.213.{n}.")) || l.contains(&format!(" 10.214.{n}.")))
        };
        if let Some(n) = std::fs::read_to_string(&file).ok().and_then(|t| t.trim().parse::<u8>().ok()) {
            if !taken(n) {
                return Ok(Network { n });
            }
        }
        let start = (short_hash(&layout.root.display().to_string()) % 240) as u8 + 8;
        let n = (0..240u16)
            .map(|i| ((start as u16 - 8 + i) % 240 + 8) as u8)
            .find(|n| !taken(*n))
            .context("no free 10.213.N.0/24 range for the engine's bridge")?;
        write_atomic(&file, format!("{n}\n").as_bytes())?;
        Ok(Network { n })
    }

    /// The bridge's own hardware address (one per N). A Linux bridge without one takes its ports'
    /// lowest, which changes as build steps' veths come and go, cutting off a container that learnt
    /// the old one until its ARP entry expires (pip stalled 30–60 s). dockerd sets none on ours.
    fn bridge_mac(&self) -> String {
        format!("02:78:74:d5:{:02x}:01", self.n)
    }

    fn create(&self, layout: &Layout) -> Result<()> {
        let bridge = layout.bridge();
        if !runner::succeeds(&Cmd::new("ip").args(["link", "show", &bridge])) {
            runner::run(&Cmd::new("ip").args(["link", "add", &bridge, "type", "bridge"]))?;
            runner::run(&Cmd::new("ip").args(["addr", "add", &format!("10.213.{}.1/24", self.n), "dev", &bridge]))?;
        }
        runner::run(&Cmd::new("ip").args(["link", "set", &bridge, "address", &self.bridge_mac(), "up"]))?;
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").context("turning on IPv4 forwarding")?;
        for rule in self.rules() {
            let check = iptables(layout, "-C", &rule);
            if !runner::succeeds(&check) {
                let add = if rule[0] == "-t" { "-A" } else { "-I" };
                runner::run(&iptables(layout, add, &rule)).context("adding the engine's forwarding rules")?;
            }
        }
        Ok(())
    }

    /// NAT out of each subnet, and forwarding in and out of it (another engine on the host may have
    /// set the FORWARD policy to DROP).
    fn rules(&self) -> Vec<Vec<String>> {
        let mut rules = Vec::new();
        for s in self.subnets() {
            let v = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
            rules.push(v(&["-t", "nat", "POSTROUTING", "-s", &s, "!", "-d", &s, "-j", "MASQUERADE"]));
            rules.push(v(&["FORWARD", "-s", &s, "-j", "ACCEPT"]));
            rules.push(v(&["FORWARD", "-d", &s, "-j", "ACCEPT"]));
        }
        rules
    }

    fn remove(layout: &Layout) {
        let Some(n) = std::fs::read_to_string(layout.root.join("network")).ok().and_then(|t| t.trim().parse().ok())
        else {
            return;
        };
        for rule in (Network { n }).rules() {
            while runner::succeeds(&iptables(layout, "-D", &rule)) {}
        }
        let _ = runner::run_quiet(&Cmd::new("ip").args(["link", "del", &layout.bridge()]));
    }
}

/// The prefix's iptables: `action` goes where the chain name is (after `-t TABLE` if any).
fn iptables(layout: &Layout, action: &str, rule: &[String]) -> Cmd {
    let mut args: Vec<String> = Vec::new();
    let mut rest = rule;
    if rule.first().map(String::as_str) == Some("-t") {
        args.extend(rule[..2].iter().cloned());
        rest = &rule[2..];
    }
    args.push("-w".to_string());
    args.push(action.to_string());
    args.extend(rest.iter().cloned());
    Cmd::new(layout.bin("iptables").display().to_string()).args(args).envs(&prefix_env(layout))
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
pub fn binfmt_entry(host: &str) -> (&'static str, &'static str, &'static str) {
    const MASK: &str = r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff";
    if host == "arm64" {
        ("qemu-x86_64", r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00", MASK)
    } else {
        ("qemu-aarch64", r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00", MASK)
    }
}

fn prefix_env(layout: &Layout) -> Vec<(String, String)> {
    let libs = layout.prefix.join("usr/lib").join(multiarch(host_arch()));
    let path = format!(
        "{}:{}:{}",
        layout.prefix.join("usr/sbin").display(),
        layout.prefix.join("usr/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    vec![
        ("PATH".to_string(), path),
        ("LD_LIBRARY_PATH".to_string(), libs.display().to_string()),
        ("XTABLES_LIBDIR".to_string(), libs.join("xtables").display().to_string()),
    ]
}

/// dockerd's configuration: the image store, the engine's own bridge and address pool, and no
/// iptables management (see the module's comment).
fn daemon_json(layout: &Layout, net: &Network) -> String {
    serde_json::json!({
        "features": {"containerd-snapshotter": !layout.spec.classic},
        "bridge": layout.bridge(),
        "iptables": false,
        "ip6tables": false,
        "default-address-pools": [{"base": net.subnets()[1], "size": 26}],
    })
    .to_string()
}

fn start_dockerd(layout: &Layout, settings: &Settings, net: &Network) -> Result<()> {
    let data = layout.root.join("data");
    std::fs::create_dir_all(&data)?;
    // dockerd deletes the host's `docker0` when it finds its own default network stored from an
    // earlier run while address pools are configured (it takes docker0 for its stale bridge):
    // that would cut another engine's containers off. Networks are forgotten between runs
    // instead; a build engine keeps none worth keeping (compose makes its own again).
    let store = data.join("network/files/local-kv.db");
    if store.exists() {
        std::fs::remove_file(&store).with_context(|| format!("removing {}", store.display()))?;
    }
    let config = layout.root.join("daemon.json");
    write_atomic(&config, daemon_json(layout, net).as_bytes())?;
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
    if std::net::TcpStream::connect(&addr).is_ok() {
        eprintln!("xtask: {addr} is already taken; using whatever registry listens there");
        return Ok(());
    }
    let storage = layout.root.join("registry");
    std::fs::create_dir_all(&storage)?;
    let config = layout.root.join("registry.yml");
    let yaml = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
        storage.display()
    );
    write_atomic(&config, yaml.as_bytes())?;
    let cmd =
        Cmd::new(layout.bin("docker-registry").display().to_string()).args(["serve", &config.display().to_string()]);
    let pid = runner::spawn_daemon(&cmd, &layout.root.join("registry.log"))?;
    write_atomic(&layout.registry_pid(), format!("{pid}\n").as_bytes())?;
    if !runner::wait_until(Duration::from_secs(15), || std::net::TcpStream::connect(&addr).is_ok()) {
        bail!("the registry did not listen on {addr} within 15s; see {}", layout.root.join("registry.log").display());
    }
    Ok(())
}

/// Stops the registry and dockerd that `up` started, by pid file, and nothing else; returns how
/// many processes it stopped.
pub fn stop_engine(layout: &Layout) -> Result<usize> {
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
    Network::remove(layout);
    release_binfmt(layout)?;
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
    use crate::engine::channel::Channel;

    #[test]
    fn each_host_registers_the_other_architecture() {
        assert_eq!(binfmt_entry("amd64").0, "qemu-aarch64");
        assert_eq!(binfmt_entry("arm64").0, "qemu-x86_64");
        assert!(binfmt_entry("amd64").1.ends_with(r"\xb7\x00"), "EM_AARCH64 is 0xb7");
    }

    #[test]
    fn engines_side_by_side_share_no_socket_bridge_or_port() {
        let layouts: Vec<Layout> = Spec::ALL.iter().map(|s| Layout::new(*s)).collect();
        for (i, a) in layouts.iter().enumerate() {
            assert!(a.bridge().len() <= 15, "{} is too long for an interface name", a.bridge());
            assert!(a.socket().display().to_string().len() < 108);
            for b in &layouts[i + 1..] {
                assert_ne!(a.socket(), b.socket());
                assert_ne!(a.bridge(), b.bridge());
                assert_ne!(a.registry_addr(), b.registry_addr());
                assert_ne!(a.root, b.root);
            }
        }
    }

    #[test]
    fn daemon_config_keeps_off_iptables_and_names_the_store() {
        let classic = Layout::new(Spec { channel: Channel::Floor, classic: true });
        let json: serde_json::Value = serde_json::from_str(&daemon_json(&classic, &Network { n: 9 })).unwrap();
        assert_eq!(json["features"]["containerd-snapshotter"], false);
        assert_eq!(json["iptables"], false);
        assert_eq!(json["bridge"], classic.bridge());
        assert_eq!(json["default-address-pools"][0]["base"], "10.214.9.0/24");
        let rules = Network { n: 9 }.rules();
        assert!(rules
            .iter()
            .any(|r| r.join(" ") == "-t nat POSTROUTING -s 10.213.9.0/24 ! -d 10.213.9.0/24 -j MASQUERADE"));
        let cmd = iptables(&classic, "-C", &rules[0]);
        assert_eq!(cmd.args[..4], ["-t", "nat", "-w", "-C"]);
    }

    #[test]
    fn each_bridge_has_its_own_locally_administered_unicast_address() {
        let octets = |n: u8| -> Vec<u8> {
            Network { n }.bridge_mac().split(':').map(|o| u8::from_str_radix(o, 16).unwrap()).collect()
        };
        assert_eq!(octets(8).len(), 6);
        assert_eq!(octets(8)[0] & 0b11, 0b10, "locally administered (bit 1) and unicast (bit 0 clear)");
        let all: std::collections::HashSet<Vec<u8>> = (8..=247).map(octets).collect();
        assert_eq!(all.len(), 240, "every N the engines choose from gets an address of its own");
    }
}
