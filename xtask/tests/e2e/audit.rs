//! The dependency audit against the advisory sources this machine really reaches: every locked
//! package is named with a finding, and the audit passes only when every one was looked up.

use super::*;

#[test]
#[ignore = "needs the network: run through `cargo xtask test`"]
fn names_every_locked_package_and_fails_as_incomplete_when_one_was_not_looked_up() {
    let out = xtask(&["audit", "--json"], &[]);
    let entries: Vec<Value> = serde_json::from_slice(&out.stdout).expect("audit --json prints a JSON array");
    // The pins and the lock, read here without the xtask's own parsers.
    let requirements = std::fs::read_to_string(root().join("backend/requirements.txt")).unwrap();
    let pins = requirements.lines().filter(|l| l.contains("==") && !l.trim_start().starts_with('#')).count();
    let lock: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("frontend/package-lock.json")).unwrap()).unwrap();
    let locked = lock["packages"].as_object().unwrap().keys().filter(|k| k.contains("node_modules/")).count();
    let of = |eco: &str| entries.iter().filter(|e| e["ecosystem"] == eco).count();
    assert_eq!((of("PyPI"), of("npm")), (pins, locked), "one entry per pin and per locked package");
    let mut unchecked = 0;
    let mut advisories = 0;
    for e in &entries {
        match e["result"].as_str() {
            Some("clean") => {}
            Some("advisories") => advisories += 1,
            Some("not-checked") => {
                unchecked += 1;
                assert!(!e["reason"].as_str().unwrap_or("").is_empty(), "a reason for {e}");
            }
            other => panic!("no finding for {e}: {other:?}"),
        }
    }
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.success(), unchecked == 0 && advisories == 0, "{said}");
    if advisories == 0 && unchecked > 0 {
        assert!(said.contains(&format!("audit incomplete: {unchecked} of {}", entries.len())), "{said}");
    }
    eprintln!("audit: {} packages, {advisories} with advisories, {unchecked} not checked", entries.len());
}
