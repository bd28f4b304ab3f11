//! The host as found: a private engine's `up` adds only rules that name its own interfaces, and
//! its `down` leaves iptables and IPv4 forwarding exactly as they were before the `up`.

use super::*;

/// Stops the engine this test starts when the test ends, pass or fail (never another one).
struct HostCheckEngine;

impl Drop for HostCheckEngine {
    fn drop(&mut self) {
        let _ = xtask(&["engine", "down", "--name", "hostcheck"], &[]);
    }
}

/// The filter and nat tables' rules as the engines' own iptables lists them (no counters).
fn rules(prefix: &Path) -> Vec<String> {
    let libs = prefix.join("usr/lib/x86_64-linux-gnu");
    let list = |table: &str| {
        let out = Command::new(prefix.join("usr/sbin/iptables"))
            .args(["-w", "-t", table, "-S"])
            .env("LD_LIBRARY_PATH", &libs)
            .env("XTABLES_LIBDIR", libs.join("xtables"))
            .output()
            .unwrap();
        assert!(out.status.success(), "iptables -t {table} -S: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(|l| format!("{table} {l}")).collect::<Vec<_>>()
    };
    let mut all = list("filter");
    all.extend(list("nat"));
    all
}

fn forwarding() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap().trim().to_string()
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn engine_up_and_down_leave_iptables_and_forwarding_as_found() {
    let first = String::from_utf8_lossy(&must(&["engine", "status"], &[]).stdout).to_string();
    let dir = std::env::var_os("XTASK_ENGINE_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target/engine"));
    let prefix = dir.join("current/prefix");
    if !first.contains("private current engine") || !prefix.join("usr/sbin/iptables").exists() {
        assert!(std::env::var("CI").is_err(), "CI runs this on the private current engine");
        eprintln!("not the private current engine: no engine is started beside it");
        return;
    }
    let (before, forwarding_before, bridges_before) = (rules(&prefix), forwarding(), bridges());
    let _stop = HostCheckEngine;
    must(&["engine", "up", "--name", "hostcheck"], &[]);
    let bridge = bridges().into_iter().find(|i| i.starts_with("xtask") && !bridges_before.contains(i));
    let bridge = bridge.expect("the engine brings a bridge of its own");
    let added: Vec<String> = rules(&prefix).into_iter().filter(|r| !before.contains(r)).collect();
    assert_eq!(added.len(), 6, "three rules for each of its two subnets: {added:?}");
    for rule in &added {
        let named = rule.contains(&format!("-i {bridge} "))
            || rule.contains(&format!("-o {bridge} "))
            || rule.contains("-i br-+ ")
            || rule.contains("-o br-+ ");
        assert!(named, "every rule names the interfaces its subnet lives on: {rule}");
    }
    assert_eq!(forwarding(), "1", "the engine's bridge forwards");
    must(&["engine", "down", "--name", "hostcheck"], &[]);
    assert_eq!(rules(&prefix), before, "down left iptables as up found it");
    assert_eq!(forwarding(), forwarding_before, "and IPv4 forwarding");
    assert_eq!(bridges(), bridges_before, "and the bridges");
    assert_eq!(String::from_utf8_lossy(&must(&["engine", "status"], &[]).stdout).lines().next(), first.lines().next());
}
