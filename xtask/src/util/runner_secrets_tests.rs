//! The runner's secrets rule, tried with real children: `COSIGN_PRIVATE_KEY` and
//! `COSIGN_PASSWORD` reach only a command that asks for them. It sets those variables in this
//! test process, which no other test reads.

use std::time::Duration;

use super::*;

#[test]
fn secrets_reach_only_the_command_that_asks_for_them() {
    std::env::set_var("COSIGN_PRIVATE_KEY", "test-key-text");
    std::env::set_var("COSIGN_PASSWORD", "test-password");
    let env = |cmd: Cmd| read(&cmd).unwrap();
    let plain = env(Cmd::new("env"));
    let daemon_log = std::env::temp_dir().join(format!("xtask-secrets-{}.log", std::process::id()));
    let pid = spawn_daemon(&Cmd::new("env"), &daemon_log).unwrap();
    let passed = env(Cmd::new("env").pass_secrets());
    std::env::remove_var("COSIGN_PRIVATE_KEY");
    std::env::remove_var("COSIGN_PASSWORD");
    assert!(!plain.contains("test-key-text") && !plain.contains("test-password"), "{plain}");
    assert!(plain.contains("PATH="), "the rest of the environment stays");
    assert!(passed.contains("COSIGN_PRIVATE_KEY=test-key-text") && passed.contains("COSIGN_PASSWORD=test-password"));
    assert!(wait_until(Duration::from_secs(5), || !crate::util::os::process_exists(pid)
        || std::fs::read_to_string(&daemon_log).is_ok_and(|t| t.contains("PATH="))));
    let daemon = std::fs::read_to_string(&daemon_log).unwrap();
    assert!(daemon.contains("PATH=") && !daemon.contains("test-key-text"), "{daemon}");
    std::fs::remove_file(daemon_log).unwrap();
    assert!(!Cmd::new("cosign").pass_secrets().to_string().contains("COSIGN"), "nothing of them is printed");
}
