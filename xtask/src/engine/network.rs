//! A private engine's network: its own bridge with a hardware address of its own, its subnets,
//! and the few iptables rules it needs (dockerd's own iptables management is off; see
//! `private.rs`).

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

    /// Removes the rules of the engine's N and its bridge (the bridge also when N is unknown).
    pub(super) fn remove(layout: &Layout) {
        let n = std::fs::read_to_string(layout.root.join("network")).ok().and_then(|t| t.trim().parse().ok());
        for rule in n.map(|n| Network { n }.rules()).unwrap_or_default() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::channel::{Channel, Spec};

    #[test]
    fn rules_nat_and_forward_each_subnet_with_the_prefixs_iptables() {
        let classic = Layout::new(Spec { channel: Channel::Floor, classic: true });
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
