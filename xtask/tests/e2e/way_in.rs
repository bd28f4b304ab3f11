//! The first commands a newcomer meets, under the conditions they meet them in: `clean` without a
//! scope flag and without a terminal, and `doctor` before a socket that refuses this user. (The
//! stand-ins' progress is judged on the suite's own first making of them: `cargo xtask test`.)

use super::*;

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn clean_without_a_scope_flag_or_a_terminal_removes_nothing() {
    must(&["build", "backend"], &[]);
    // A safety net for the shared engine: with a build's share of the lock held, a clean that
    // failed to ask would still stop at the lock, and the message below tells the two apart.
    let _held = xtask::cache::lock::shared().unwrap();
    // The test's stdin is no terminal (`output()` gives the child none).
    let out = xtask(&["clean"], &[]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("this would remove") && stdout.contains("image contextcleanse-backend:dev"), "{stdout}");
    assert!(stderr.contains("no terminal to ask on: nothing removed") && stderr.contains("--yes"), "{stderr}");
    assert!(docker_ok(&["image", "inspect", "contextcleanse-backend:dev"]), "the image stays");
}

#[cfg(unix)]
#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn doctor_names_a_socket_that_refuses_this_user_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    // A real listening socket this user may not open: mode 000. Root passes file modes by its
    // capabilities, so as root the xtask runs without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH,
    // and the kernel answers its connect with EACCES as it would a user outside the socket's group.
    let dir = std::env::temp_dir().join(format!("xtask-e2e-denied-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("docker.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o000)).unwrap();
    let host = format!("unix://{}", socket.display());
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let mut cmd = match root {
        true => {
            let mut c = Command::new("setpriv");
            c.args(["--bounding-set", "-dac_override,-dac_read_search", "--", env!("CARGO_BIN_EXE_xtask")]);
            c
        }
        false => Command::new(env!("CARGO_BIN_EXE_xtask")),
    };
    let out = cmd.arg("doctor").current_dir(super::root()).env("DOCKER_HOST", &host).env_remove("CI").output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    let line = said.lines().find(|l| l.contains(" engine ")).unwrap_or_else(|| panic!("no engine line:\n{said}"));
    assert!(!out.status.success(), "{said}");
    assert!(
        line.starts_with("FAIL")
            && line.contains(&format!("{} refuses this user (permission denied)", socket.display()))
            && line.contains("usermod -aG docker"),
        "{line}"
    );
}
