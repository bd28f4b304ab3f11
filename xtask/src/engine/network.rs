//! A private engine's network: its own bridge with a hardware address of its own, its subnets,
//! and the few iptables rules it needs (dockerd's own iptables management is off; see
//! `private.rs`), each naming the engine's interfaces; and the host's IPv4 forwarding, turned on
//! for the engines and off again after the last one when it was off before.

use anyhow::{Context, Result};

use super::layout::{prefix_env, short_hash, Layout};
use crate::util::paths::write_atomic;
use crate::util::runner::{self, Cmd};

/// This engine's own bridge and address ranges: the bridge's /24 in 10.213.N.0, and a /24 in
/// 10.214.N.0 for the networks compose creates. N is kept in the engine's folder.
pub(super) struct Network {
    pub(super) n: u8,
}

impl Network {
    pub(super) fn subnets(&self) -> [String; 2] {
        [format!("10.213.{}.0/24", self.n), format!("10.214.{}.0/24", self.n)]
    }

    /// The engine's N from last time, or the first one no interface of this host uses.
    pub(super) fn choose(layout: &Layout) -> Result<Network> {
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
    /// the old one until its ARP entry expires. dockerd sets an address only on a bridge it made.
    fn bridge_mac(&self) -> String {
        format!("02:78:74:d5:{:02x}:01", self.n)
    }

    pub(super) fn create(&self, layout: &Layout) -> Result<()> {
        let bridge = layout.bridge();
        if !runner::succeeds(&Cmd::new("ip").args(["link", "show", &bridge])) {
            runner::run(&Cmd::new("ip").args(["link", "add", &bridge, "type", "bridge"]))?;
            runner::run(&Cmd::new("ip").args(["addr", "add", &format!("10.213.{}.1/24", self.n), "dev", &bridge]))?;
        }
        runner::run(&Cmd::new("ip").args(["link", "set", &bridge, "address", &self.bridge_mac(), "up"]))?;
        turn_on_forwarding()?;
        for rule in self.rules(&bridge) {
            let check = iptables(layout, "-C", &rule);
            if !runner::succeeds(&check) {
                let add = if rule[0] == "-t" { "-A" } else { "-I" };
                runner::run(&iptables(layout, add, &rule)).context("adding the engine's forwarding rules")?;
            }
        }
        Ok(())
    }

    /// NAT out of each subnet, and forwarding in and out of it (another engine on the host may have
    /// set the FORWARD policy to DROP), each matching the interfaces the subnet lives on: the
    /// engine's bridge for build steps, and the bridges compose's networks get (`br-…`, named by
    /// dockerd) for the compose subnet. A packet of that range on any other interface matches none.
    fn rules(&self, bridge: &str) -> Vec<Vec<String>> {
        let [steps, compose] = self.subnets();
        let mut rules = Vec::new();
        for (s, dev) in [(steps, bridge), (compose, "br-+")] {
            let v = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
            rules.push(v(&["-t", "nat", "POSTROUTING", "-s", &s, "!", "-o", dev, "-j", "MASQUERADE"]));
            rules.push(v(&["FORWARD", "-i", dev, "-s", &s, "-j", "ACCEPT"]));
            rules.push(v(&["FORWARD", "-o", dev, "-d", &s, "-j", "ACCEPT"]));
        }
        rules
    }

    /// The rules engines started by earlier versions of the xtask added, without interfaces: still
    /// removed by `down`, so stopping such an engine leaves iptables as it was before it.
    fn legacy_rules(&self) -> Vec<Vec<String>> {
        let mut rules = Vec::new();
        for s in self.subnets() {
            let v = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
            rules.push(v(&["-t", "nat", "POSTROUTING", "-s", &s, "!", "-d", &s, "-j", "MASQUERADE"]));
            rules.push(v(&["FORWARD", "-s", &s, "-j", "ACCEPT"]));
            rules.push(v(&["FORWARD", "-d", &s, "-j", "ACCEPT"]));
        }
        rules
    }

    /// Removes the rules of the engine's N and its bridge (the bridge also when N is unknown), and
    /// turns IPv4 forwarding off again if the xtask turned it on and no private engine runs now.
    pub(super) fn remove(layout: &Layout) {
        let n = std::fs::read_to_string(layout.root.join("network")).ok().and_then(|t| t.trim().parse().ok());
        let bridge = layout.bridge();
        let rules = n.map(|n| Network { n }).map(|net| [net.rules(&bridge), net.legacy_rules()].concat());
        for rule in rules.unwrap_or_default() {
            while runner::succeeds(&iptables(layout, "-D", &rule)) {}
        }
        let _ = runner::run_quiet(&Cmd::new("ip").args(["link", "del", &bridge]));
        let others = super::named::running_claims().len();
        if restore_forwarding(std::path::Path::new(FORWARD_MARKER).exists(), others) {
            match std::fs::write(FORWARD_FILE, "0") {
                Ok(()) => drop(std::fs::remove_file(FORWARD_MARKER)),
                Err(e) => eprintln!("xtask: warning: could not turn IPv4 forwarding off again ({FORWARD_FILE}: {e})"),
            }
        }
    }
}

const FORWARD_FILE: &str = "/proc/sys/net/ipv4/ip_forward";

/// Left by the `up` that turned forwarding on, for whichever `down` stops the last engine (of any
/// checkout: the setting is the host's). Under /run, so a reboot, which resets the setting, drops it.
const FORWARD_MARKER: &str = "/run/xtask-ip-forward-was-off";

/// Turns IPv4 forwarding on for the engines' bridges, noting when it was off.
fn turn_on_forwarding() -> Result<()> {
    let was = std::fs::read_to_string(FORWARD_FILE).context("reading the host's IPv4 forwarding setting")?;
    if was.trim() == "1" {
        return Ok(());
    }
    write_atomic(std::path::Path::new(FORWARD_MARKER), b"0\n")?;
    std::fs::write(FORWARD_FILE, "1").context("turning on IPv4 forwarding")
}

/// Whether `down` turns forwarding off: only when the xtask turned it on, and no engine is left.
fn restore_forwarding(xtask_turned_it_on: bool, engines_running: usize) -> bool {
    xtask_turned_it_on && engines_running == 0
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::channel::{Channel, Spec};

    #[test]
    fn rules_nat_and_forward_each_subnet_on_its_own_interfaces_with_the_prefixs_iptables() {
        let classic = Layout::new(Spec { channel: Channel::Floor, classic: true });
        let rules: Vec<String> = Network { n: 9 }.rules("xtaskab12").iter().map(|r| r.join(" ")).collect();
        assert_eq!(
            rules,
            [
                "-t nat POSTROUTING -s 10.213.9.0/24 ! -o xtaskab12 -j MASQUERADE",
                "FORWARD -i xtaskab12 -s 10.213.9.0/24 -j ACCEPT",
                "FORWARD -o xtaskab12 -d 10.213.9.0/24 -j ACCEPT",
                "-t nat POSTROUTING -s 10.214.9.0/24 ! -o br-+ -j MASQUERADE",
                "FORWARD -i br-+ -s 10.214.9.0/24 -j ACCEPT",
                "FORWARD -o br-+ -d 10.214.9.0/24 -j ACCEPT",
            ]
        );
        let cmd = iptables(&classic, "-C", &Network { n: 9 }.rules("x")[0]);
        assert_eq!(cmd.args[..4], ["-t", "nat", "-w", "-C"]);
        let legacy = Network { n: 9 }.legacy_rules();
        assert!(legacy.iter().all(|r| !r.contains(&"-i".to_string()) && !r.contains(&"-o".to_string())));
    }

    #[test]
    fn forwarding_goes_off_only_after_the_last_engine_and_only_if_the_xtask_turned_it_on() {
        assert!(restore_forwarding(true, 0));
        assert!(!restore_forwarding(true, 1), "another engine still needs it");
        assert!(!restore_forwarding(false, 0), "it was on before any engine: left on");
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
