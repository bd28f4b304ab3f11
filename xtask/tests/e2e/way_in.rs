//! The first commands a newcomer meets, under the conditions they meet them in: `clean` without a
//! scope flag and without a terminal, `doctor` before a socket that refuses this user, and stand-ins
//! made for this machine's platform only, with a progress line at least every 10 s.

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

/// Each stderr line of a child, with when it came.
fn timed_lines(child: &mut std::process::Child) -> Vec<(Instant, String)> {
    use std::io::BufRead;
    let err = std::io::BufReader::new(child.stderr.take().unwrap());
    err.lines().map_while(Result::ok).map(|l| (Instant::now(), l)).collect()
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn stand_ins_are_made_for_this_platform_with_a_line_at_least_every_10_s() {
    // Stand-ins under a scratch tag and work folder: the engine's own stay as they are, and the
    // root file system is made afresh, so the long phases really run. `check` builds no image.
    let scratch = format!("e2e{}", std::process::id());
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["check", "backend"])
        .current_dir(root())
        .env("XTASK_STANDIN_SCRATCH", &scratch)
        .env_remove("CI")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines = timed_lines(&mut child);
    let status = child.wait().unwrap();
    let took = started.elapsed();
    for repo in ["localhost/standin-python", "localhost/standin-node"] {
        for tag in docker(&["images", repo, "--format", "{{.Repository}}:{{.Tag}}"]).lines() {
            if tag.ends_with(&format!("-{scratch}")) {
                docker(&["image", "rm", tag]);
            }
        }
    }
    let _ = std::fs::remove_dir_all(root().join(format!("target/xtask/standin-{scratch}")));
    let text: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    let all = text.join("\n");
    assert!(status.success(), "{all}");
    let host = format!("linux/{}", xtask::engine::host_arch());
    let making =
        lines.iter().position(|(_, l)| l.contains("making stand-ins once for")).unwrap_or_else(|| panic!("{all}"));
    assert!(text[making].ends_with(&format!("once for {host}")), "only this machine's platform: {}", text[making]);
    assert!(!all.contains("debootstrap linux/arm64"), "{all}");
    // From the line that says stand-ins are being made to the last stand-in phase's end, no
    // silence is longer than 10 s, and the phase lines say step, elapsed time and (where kept)
    // the last time.
    let end = lines.iter().rposition(|(_, l)| l.starts_with("xtask: stand-ins:")).unwrap_or_else(|| panic!("{all}"));
    let gaps: Vec<f64> = lines[making..=end].windows(2).map(|w| w[1].0.duration_since(w[0].0).as_secs_f64()).collect();
    let longest = gaps.iter().cloned().fold(0.0, f64::max);
    let span = lines[end].0.duration_since(lines[making].0).as_secs_f64();
    eprintln!("stand-ins: {span:.0} s, longest silence {longest:.1} s, whole check {:.0} s", took.as_secs_f64());
    assert!(span > 15.0, "the stand-ins were made in {span:.0} s: too short to show a cadence\n{all}");
    assert!(longest <= 10.0, "a silence of {longest:.1} s while stand-ins were made:\n{all}");
    let ticking =
        text.iter().find(|l| l.starts_with("xtask: stand-ins: debootstrap ")).unwrap_or_else(|| panic!("{all}"));
    let steps = ticking.rsplit_once('(').map(|(_, s)| s).unwrap_or_default();
    // Node.js, one root file system, the two images: four steps on one platform.
    assert!(steps.starts_with("2/4, 0:"), "step k of 4 and the elapsed time: {ticking}");
    eprintln!("{all}");
}
