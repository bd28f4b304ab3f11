//! The private engine's registry, as configured and as found: its configuration (delete off: no
//! command of the xtask removes anything from it, so no local process may), and the check that
//! the process answering on its port is this engine's registry and not a stranger.

use std::path::Path;

use anyhow::{bail, Result};

use crate::util::net::Holder;

/// The registry's configuration: its storage, its loopback address, and the delete API off.
pub(super) fn config(storage: &Path, addr: &str) -> String {
    format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: false\nhttp:\n  addr: {addr}\n",
        storage.display()
    )
}

/// Whether the port can be left to what holds it: only this engine's own registry (its pid file
/// names the holder). Anything else would receive the stand-in bases and the cache, and answer
/// for them: refused in one line naming it.
pub(super) fn check_holder(engine: &str, addr: &str, own: Option<u32>, holders: &[Holder]) -> Result<()> {
    if holders.iter().any(|h| Some(h.pid) == own) {
        return Ok(());
    }
    let who = match holders.first() {
        Some(h) => format!("{} (pid {})", h.program, h.pid),
        None => "a program this user cannot see".to_string(),
    };
    bail!(
        "{addr}, the {engine} engine's registry port, is held by {who}, not by this engine's registry: stop it, then `cargo xtask engine up` again"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_listens_on_loopback_with_delete_off() {
        let yaml = config(Path::new("/e/registry"), "127.0.0.1:5000");
        assert!(yaml.contains("  delete:\n    enabled: false\n"), "{yaml}");
        assert!(yaml.contains("http:\n  addr: 127.0.0.1:5000\n") && yaml.contains("rootdirectory: /e/registry\n"));
    }

    #[test]
    fn only_the_engines_own_registry_may_hold_its_port() {
        let holder = |pid, program: &str| Holder { pid, program: program.to_string() };
        assert!(check_holder("current", "127.0.0.1:5000", Some(42), &[holder(42, "docker-registry")]).is_ok());
        let e = check_holder("current", "127.0.0.1:5000", Some(42), &[holder(77, "python3")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "127.0.0.1:5000, the current engine's registry port, is held by python3 (pid 77), not by this engine's registry: stop it, then `cargo xtask engine up` again"
        );
        let e = check_holder("current", "127.0.0.1:5000", None, &[]).unwrap_err().to_string();
        assert!(e.contains("held by a program this user cannot see"), "{e}");
    }
}
