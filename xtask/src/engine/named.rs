//! Named private engines (`engine up --name second`) and what keeps any two engines on one host
//! apart: the check, before anything is started, that a new engine takes no name, socket,
//! bridge, subnet or registry port of one that runs.
//!
//! A named engine is a private engine like the built-in ones (`current`, `floor`, ...), with a
//! folder of its own under the engines' folder and a record there (`engine.json`) of its channel,
//! image store and registry port, so `env`, `status` and `down` find it again by name alone.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::channel::{Channel, Spec};
use super::layout::Layout;
use crate::util::paths::{self, write_atomic};

/// Folder names under the engines' folder that are not engines (shared downloads, and the files
/// of the single engine of older versions).
const RESERVED: [&str; 6] = ["apt", "debs", "prefix", "data", "registry", "docker-config"];

/// Registry ports of named engines: after the four built-in engines' 5000–5003.
const NAMED_PORTS: std::ops::Range<u16> = 5004..5100;

/// What `up` records of a named engine, so later commands need only its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Record {
    channel: Channel,
    classic: bool,
    registry_port: u16,
}

/// The name people give an engine: a folder name and part of a report, so kept plain.
pub(crate) fn check_name(name: &str) -> Result<()> {
    let plain = !name.is_empty()
        && name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !plain {
        bail!("engine name `{name}`: use up to 32 lowercase letters, digits and -, starting with a letter");
    }
    if Spec::ALL.iter().any(|s| s.name() == name) {
        bail!("engine name `{name}` is a built-in engine's: use `--channel`/`--classic` for it, or another name");
    }
    if RESERVED.contains(&name) {
        bail!("engine name `{name}` is a folder the engines share: choose another name");
    }
    Ok(())
}

impl Layout {
    fn record_file(&self) -> PathBuf {
        self.root.join("engine.json")
    }

    /// The private engine a command names: a built-in one by its name, else a named one that `up`
    /// made here.
    pub(crate) fn open(name: &str) -> Result<Layout> {
        if let Ok(spec) = name.parse::<Spec>() {
            return Ok(Layout::new(spec));
        }
        check_name(name)?;
        let root = paths::engine_dir().join(name);
        let record = read_record(&root)
            .with_context(|| format!("no private engine named `{name}` here: `cargo xtask engine up --name {name}`"))?;
        Ok(Layout::at(Spec { channel: record.channel, classic: record.classic }, name, record.registry_port))
    }

    /// A named engine for `up`: as recorded, or new with the first registry port no engine holds.
    /// Asking for another channel or store than the recorded one is refused (its prefix and data
    /// are of that one).
    pub(crate) fn for_up(name: &str, spec: Spec, running: &[Claim]) -> Result<Layout> {
        check_name(name)?;
        let root = paths::engine_dir().join(name);
        if let Some(record) = read_record(&root) {
            let had = Spec { channel: record.channel, classic: record.classic };
            if had != spec {
                bail!(
                    "the engine `{name}` was made as `{}`, not `{}`: choose another name, or `cargo xtask engine down --name {name}` and remove {}",
                    had.name(),
                    spec.name(),
                    root.display()
                );
            }
            return Ok(Layout::at(spec, name, record.registry_port));
        }
        let recorded: Vec<u16> = named_layouts().iter().map(Layout::registry_port).collect();
        let port = NAMED_PORTS
            .clone()
            .find(|p| {
                !recorded.contains(p)
                    && !running.iter().any(|c| c.port == Some(*p))
                    && !crate::util::net::answers(&format!("127.0.0.1:{p}"), std::time::Duration::from_secs(1))
            })
            .context("no free registry port in 5004–5099 for a named engine")?;
        let layout = Layout::at(spec, name, port);
        std::fs::create_dir_all(&layout.root)?;
        let record = Record { channel: spec.channel, classic: spec.classic, registry_port: port };
        write_atomic(&layout.record_file(), &serde_json::to_vec_pretty(&record)?)?;
        Ok(layout)
    }

    /// Every private engine of this engines' folder: the built-in ones, then the named ones.
    pub(crate) fn all() -> Vec<Layout> {
        Spec::ALL.iter().map(|s| Layout::new(*s)).chain(named_layouts()).collect()
    }
}

fn read_record(root: &Path) -> Option<Record> {
    serde_json::from_slice(&std::fs::read(root.join("engine.json")).ok()?).ok()
}

fn named_layouts() -> Vec<Layout> {
    let mut names: Vec<String> = std::fs::read_dir(paths::engine_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("engine.json").is_file())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    names.into_iter().filter_map(|n| Layout::open(&n).ok()).collect()
}

/// What one engine holds on the host while it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Claim {
    pub(crate) root: PathBuf,
    /// `current`, `second`, ...: the engine's folder name.
    pub(crate) name: String,
    /// The channel and store, where known (an engine of an older xtask has no record of them).
    pub(crate) spec: Option<Spec>,
    pub(crate) socket: PathBuf,
    pub(crate) bridge: String,
    /// N of its subnets 10.213.N.0/24 and 10.214.N.0/24.
    pub(crate) subnet: Option<u8>,
    pub(crate) port: Option<u16>,
}

/// Why `want` cannot start beside the running engines: one reason a line, none when it can.
/// The same folder with the same channel and store is the engine itself, not a collision.
pub(crate) fn collisions(want: &Claim, running: &[Claim]) -> Vec<String> {
    let mut reasons = Vec::new();
    for r in running {
        let whose = format!("the running engine `{}` ({})", r.name, r.root.display());
        if r.root == want.root {
            if r.spec.is_some() && r.spec != want.spec {
                let name = |s: Option<Spec>| s.map_or("?".to_string(), |s| s.name());
                reasons.push(format!(
                    "name: `{}` already runs as `{}`, not `{}` (`cargo xtask engine down --name {}` first)",
                    want.name,
                    name(r.spec),
                    name(want.spec),
                    want.name
                ));
            }
            continue;
        }
        if r.socket == want.socket {
            reasons.push(format!("socket: {} is held by {whose}", want.socket.display()));
        }
        if r.bridge == want.bridge {
            reasons.push(format!("bridge: {} is held by {whose}", want.bridge));
        }
        if let (Some(a), Some(b)) = (want.subnet, r.subnet) {
            if a == b {
                reasons.push(format!("subnet: 10.213.{a}.0/24 and 10.214.{a}.0/24 are held by {whose}"));
            }
        }
        if let (Some(a), Some(b)) = (want.port, r.port) {
            if a == b {
                reasons.push(format!("registry port: 127.0.0.1:{a} is held by {whose}"));
            }
        }
    }
    reasons
}

/// Refuses, in one line naming every reason, an engine that would collide with a running one.
pub(crate) fn refuse_collisions(layout: &Layout, subnet: u8) -> Result<()> {
    let want = Claim {
        root: layout.root.clone(),
        name: layout.name.clone(),
        spec: Some(layout.spec),
        socket: layout.socket(),
        bridge: layout.bridge(),
        subnet: Some(subnet),
        port: Some(layout.registry_port()),
    };
    let reasons = collisions(&want, &running_claims());
    if !reasons.is_empty() {
        bail!(
            "the private engine `{}` cannot start beside the running one(s), which stay as they are: {}",
            layout.name,
            reasons.join("; ")
        );
    }
    Ok(())
}

/// Every private engine running on this host, of any checkout or engines' folder: found by the
/// pid files under /run, and read from the files its dockerd was started with.
pub(crate) fn running_claims() -> Vec<Claim> {
    let runs = std::fs::read_dir("/run").into_iter().flatten().flatten();
    runs.filter(|e| e.file_name().to_string_lossy().starts_with("xtask-engine-"))
        .filter_map(|e| claim_of_pid_file(&e.path().join("dockerd.pid")))
        .collect()
}

fn claim_of_pid_file(pid_file: &Path) -> Option<Claim> {
    let pid: u32 = std::fs::read_to_string(pid_file).ok()?.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).to_string()).collect();
    let after = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let config = PathBuf::from(after("--config-file")?);
    let root = config.parent()?.to_path_buf();
    let socket = PathBuf::from(after("--host")?.strip_prefix("unix://")?);
    let daemon: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).ok()?).ok()?;
    let registry = std::fs::read_to_string(root.join("registry.yml")).unwrap_or_default();
    let name = root.file_name()?.to_string_lossy().to_string();
    let spec = read_record(&root)
        .map(|r| Spec { channel: r.channel, classic: r.classic })
        .or_else(|| name.parse::<Spec>().ok());
    Some(Claim {
        spec,
        socket,
        bridge: daemon["bridge"].as_str()?.to_string(),
        subnet: daemon["default-address-pools"][0]["base"].as_str().and_then(pool_subnet),
        port: registry.lines().find_map(|l| l.trim().strip_prefix("addr: ")?.rsplit(':').next()?.parse().ok()),
        name,
        root,
    })
}

/// N of a compose address pool `10.214.N.0/24`.
fn pool_subnet(base: &str) -> Option<u8> {
    base.strip_prefix("10.214.")?.split('.').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(root: &str, n: u8, port: u16) -> Claim {
        Claim {
            root: PathBuf::from(root),
            name: root.rsplit('/').next().unwrap().to_string(),
            spec: Some(Spec::DEFAULT),
            socket: PathBuf::from(format!("/run/xtask-engine-{n}/docker.sock")),
            bridge: format!("xtask{n}"),
            subnet: Some(n),
            port: Some(port),
        }
    }

    #[test]
    fn names_are_plain_and_never_a_built_in_or_shared_folder() {
        check_name("second").unwrap();
        check_name("ci-runner-2").unwrap();
        for bad in ["", "Second", "2nd", "a b", "../x", &"x".repeat(33)] {
            assert!(check_name(bad).unwrap_err().to_string().contains("lowercase letters"), "{bad}");
        }
        assert!(check_name("floor-classic").unwrap_err().to_string().contains("built-in"));
        assert!(check_name("apt").unwrap_err().to_string().contains("share"));
    }

    #[test]
    fn an_engine_apart_from_the_running_ones_collides_with_none() {
        let running = [claim("/e/current", 1, 5000), claim("/e/floor", 2, 5001)];
        assert!(collisions(&claim("/e/second", 3, 5004), &running).is_empty());
        // The engine itself, running already with the same channel: not a collision.
        assert!(collisions(&claim("/e/current", 1, 5000), &running).is_empty());
    }

    #[test]
    fn each_shared_resource_is_named_with_the_engine_holding_it() {
        let running = [claim("/e/current", 1, 5000)];
        let mut want = claim("/elsewhere/current", 2, 5000);
        assert_eq!(
            collisions(&want, &running),
            ["registry port: 127.0.0.1:5000 is held by the running engine `current` (/e/current)"]
        );
        want.subnet = Some(1);
        want.socket = running[0].socket.clone();
        want.bridge = running[0].bridge.clone();
        let reasons = collisions(&want, &running);
        let kinds: Vec<&str> = reasons.iter().map(|r| r.split(':').next().unwrap()).collect();
        assert_eq!(kinds, ["socket", "bridge", "subnet", "registry port"], "{reasons:?}");
        assert!(reasons[2].contains("10.213.1.0/24"), "{}", reasons[2]);
    }

    #[test]
    fn the_same_folder_with_another_channel_is_a_name_collision() {
        let running = [claim("/e/second", 3, 5004)];
        let mut want = claim("/e/second", 3, 5004);
        want.spec = Some(Spec { channel: Channel::Floor, classic: false });
        let reasons = collisions(&want, &running);
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(reasons[0].starts_with("name: `second` already runs as `current`, not `floor`"), "{}", reasons[0]);
    }

    #[test]
    fn a_named_engine_shares_no_socket_bridge_or_port_with_the_built_in_ones() {
        let second = Layout::at(Spec::DEFAULT, "second", NAMED_PORTS.start);
        assert!(second.bridge().len() <= 15, "{} is too long for an interface name", second.bridge());
        for builtin in Spec::ALL.map(Layout::new) {
            assert_ne!(builtin.socket(), second.socket());
            assert_ne!(builtin.bridge(), second.bridge());
            assert_ne!(builtin.registry_port(), second.registry_port());
        }
    }

    #[test]
    fn pools_give_their_subnet() {
        assert_eq!(pool_subnet("10.214.37.0/24"), Some(37));
        assert_eq!(pool_subnet("172.17.0.0/16"), None);
    }
}
