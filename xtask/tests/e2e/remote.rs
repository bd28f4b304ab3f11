//! A remote engine by one setting: Debian's OpenSSH server on 127.0.0.1, with a throwaway key and
//! configuration in a temporary folder, in front of the engine under test. The xtask reaches that
//! engine through `DOCKER_HOST=ssh://…` and through a docker context, and builds, pushes, reports,
//! measures (`du`) and plans a clean there; the private engine's start is refused in one line.

use super::*;

use std::process::{Child, Stdio};

/// Debian's sshd: on the machine already, or installed from its own archive as root (as the home
/// page test installs Chromium), without letting the package start a system-wide service.
fn sshd_program() -> PathBuf {
    let sshd = PathBuf::from("/usr/sbin/sshd");
    if sshd.is_file() {
        return sshd;
    }
    assert!(which("apt-get").is_some(), "the ssh test needs Debian's openssh-server: apt-get install openssh-server");
    // A package's own service would listen on every address: policy-rc.d (Debian's switch for
    // that) keeps it from starting, and is removed again if this test made it.
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let made_policy = !policy.exists();
    if made_policy {
        std::fs::write(policy, "#!/bin/sh\nexit 101\n").unwrap();
        chmod(policy, 0o755);
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(["-q", "-y"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .expect("running apt-get")
    };
    let mut out = apt(&["install", "--no-install-recommends", "openssh-server"]);
    if !out.status.success() {
        apt(&["update"]);
        out = apt(&["install", "--no-install-recommends", "openssh-server"]);
    }
    if made_policy {
        std::fs::remove_file(policy).unwrap();
    }
    assert!(
        out.status.success() && sshd.is_file(),
        "apt-get install openssh-server: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    sshd
}

/// Through the program, so that the test still compiles where the Unix permission API is absent.
fn chmod(path: &Path, mode: u32) {
    let ok = Command::new("chmod").arg(format!("{mode:o}")).arg(path).status().unwrap();
    assert!(ok.success(), "chmod {mode:o} {}", path.display());
}

fn keygen(path: &Path) -> String {
    let ok = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(path).status().unwrap();
    assert!(ok.success(), "ssh-keygen {}", path.display());
    std::fs::read_to_string(path.with_extension("pub")).unwrap().trim().to_string()
}

/// sshd on a free loopback port, its keys and configuration, and the client's side: its key, a
/// known_hosts naming only this server, and a docker config (with the engine's CLI plug-ins) that
/// holds the test's context. Dropped, it stops sshd and removes every file it made.
struct Sshd {
    child: Child,
    dir: PathBuf,
    port: u16,
    made_privsep_dir: bool,
}

impl Sshd {
    fn start() -> Sshd {
        let sshd = sshd_program();
        let dir = std::env::temp_dir().join(format!("xtask-e2e-sshd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        chmod(&dir, 0o700);
        let host_key = keygen(&dir.join("host_key"));
        std::fs::write(dir.join("authorized_keys"), keygen(&dir.join("client_key")) + "\n").unwrap();
        let port = free_port();
        // The remote login runs `docker system dial-stdio`: it needs a docker CLI on its PATH and
        // the engine's address, which sshd sets for its sessions.
        let docker = which("docker").expect("a docker CLI on PATH");
        let engine: Vec<String> = ["DOCKER_HOST", "DOCKER_CONFIG"]
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v}")))
            .collect();
        let path = format!("PATH={}:/usr/local/bin:/usr/bin:/bin", docker.parent().unwrap().display());
        let d = dir.display();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nAuthenticationMethods publickey\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n\
             PrintMotd no\nSetEnv {} {path}\n",
            engine.join(" ")
        );
        std::fs::write(dir.join("sshd_config"), config).unwrap();
        // sshd running as root wants its privilege-separation folder.
        let privsep = Path::new("/run/sshd");
        let made_privsep_dir = !privsep.exists();
        if made_privsep_dir {
            std::fs::create_dir_all(privsep).unwrap();
            chmod(privsep, 0o755);
        }
        let child = Command::new(&sshd)
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
            .spawn()
            .expect("starting sshd");
        let server = Sshd { child, dir, port, made_privsep_dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not listen on 127.0.0.1:{port}: {}", server.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        server.client(&host_key);
        server
    }

    /// ssh reads its user configuration from the account's home (not $HOME), so the throwaway
    /// one is given with `-F` by an `ssh` first on the PATH of the commands under test.
    fn client(&self, host_key: &str) {
        let d = self.dir.display();
        let key_type_and_key = host_key.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        std::fs::write(self.dir.join("known_hosts"), format!("[127.0.0.1]:{} {key_type_and_key}\n", self.port))
            .unwrap();
        // One connection carries every docker call, as a team's ssh configuration for a build
        // machine would have it: each call then costs no handshake.
        let config = format!(
            "Host 127.0.0.1\n  IdentityFile {d}/client_key\n  IdentitiesOnly yes\n  UserKnownHostsFile {d}/known_hosts\n\
             \x20 GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  BatchMode yes\n\
             \x20 ControlMaster auto\n  ControlPath {d}/control-%C\n  ControlPersist 120\n"
        );
        std::fs::write(self.dir.join("ssh_config"), config).unwrap();
        let ssh = which("ssh").expect("an ssh client on PATH");
        let wrapper = self.dir.join("bin/ssh");
        std::fs::write(&wrapper, format!("#!/bin/sh\nexec {} -F {d}/ssh_config \"$@\"\n", ssh.display())).unwrap();
        chmod(&wrapper, 0o755);
        let plugins = std::env::var("DOCKER_CONFIG").map(|c| format!("{c}/cli-plugins")).unwrap_or_default();
        std::fs::create_dir_all(self.dir.join("docker-config")).unwrap();
        let config = serde_json::json!({ "cliPluginsExtraDirs": [plugins] });
        std::fs::write(self.dir.join("docker-config/config.json"), config.to_string()).unwrap();
    }

    fn host(&self) -> String {
        format!("ssh://root@127.0.0.1:{}", self.port)
    }

    /// The variables of a command that reaches the engine through this server.
    fn env(&self) -> Vec<(String, String)> {
        let path = format!("{}:{}", self.dir.join("bin").display(), std::env::var("PATH").unwrap_or_default());
        vec![("PATH".into(), path), ("DOCKER_CONFIG".into(), self.dir.join("docker-config").display().to_string())]
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // The shared connection's master outlives sshd's listener unless told to end.
        let _ = Command::new("ssh")
            .args(["-F", &self.dir.join("ssh_config").display().to_string(), "-O", "exit", "-p"])
            .arg(self.port.to_string())
            .arg("root@127.0.0.1")
            .output();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
        if self.made_privsep_dir {
            let _ = std::fs::remove_dir("/run/sshd");
        }
    }
}

fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Both images built cold (no cache) then warm, the report naming `endpoint`, a production push,
/// `du` and a planned clean: all through the engine `env` reaches.
fn builds_and_measures(env: &[(&str, &str)], remove: &[&str], endpoint: &str, cold: bool) {
    let run = |args: &[&str]| {
        let out = xtask_without(args, env, remove);
        assert!(out.status.success(), "xtask {args:?} through {endpoint} failed:\n{}", tail(&out, 40));
        out
    };
    if cold {
        run(&["build", "--no-cache"]);
        let report = last_report(&root());
        assert_eq!(report["engine"]["endpoint"], endpoint, "the report names the engine it built on");
        assert!(!executed(&report, "backend", "/root/.cache/pip").is_empty(), "a cold build runs pip");
    }
    run(&["build"]);
    let report = last_report(&root());
    assert_eq!(report["engine"]["endpoint"], endpoint, "the report names the engine it built on");
    // Warm: the engine's own cache serves the build. (Which records survive between two builds
    // is the engine's business, and other builds on a shared engine can push one out, so this
    // asks only that the cache was reached through the remote connection.)
    let cached: u64 = report["targets"].as_array().unwrap().iter().map(|t| t["cached"].as_u64().unwrap()).sum();
    assert!(cached > 0, "a warm build through {endpoint} took nothing from the cache");
    let shown = String::from_utf8_lossy(&run(&["report"]).stdout).to_string();
    assert!(shown.contains(&format!("engine: {endpoint}: Docker ")), "`report` names {endpoint}:\n{shown}");

    run(&["production", "--push", "--registry", &registry()]);
    let pushed = last_report(&root());
    assert!(pushed["targets"].as_array().unwrap().iter().all(|t| t["digest"].is_string()), "{pushed}");

    let du = String::from_utf8_lossy(&run(&["du"]).stdout).to_string();
    assert!(du.contains(&format!("build cache (this project's, on {endpoint})")), "{du}");
    assert!(du.contains("contextcleanse-backend"), "du lists the project's images:\n{du}");
    let clean = String::from_utf8_lossy(&run(&["clean", "--dry-run"]).stdout).to_string();
    assert!(clean.contains("would remove") || clean.contains("nothing of this project's"), "{clean}");
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn an_engine_over_ssh_and_through_a_docker_context_builds_pushes_reports_and_measures() {
    let sshd = Sshd::start();
    let host = sshd.host();
    let mut env = sshd.env();
    env.push(("DOCKER_HOST".into(), host.clone()));
    let probe =
        Command::new("docker").args(["version", "--format", "{{.Server.Version}}"]).envs(env.clone()).output().unwrap();
    assert!(
        probe.status.success(),
        "docker over {host}: {}\nsshd: {}",
        String::from_utf8_lossy(&probe.stderr),
        sshd.log()
    );

    builds_and_measures(&pairs(&env), &[], &host, true);

    // The API requests `clean` makes, carried over ssh: answers, not refusals.
    let api = xtask::engine::api::Endpoint::Cli(env.clone());
    let (code, _) = api.request("DELETE", "/images/xtask-e2e-no-such-image:none").expect("the engine answers over ssh");
    assert_eq!(code, 404);
    let (code, body) = api.request("POST", &xtask::cache::clean::prune_path("xtaske2enosuchrecord00000")).unwrap();
    assert_eq!(code, 200, "{body}");

    // The private engine's own start acts on this machine only: refused, in one line.
    let out = xtask(&["engine", "up", "--channel", "current"], &pairs(&env));
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert!(!out.status.success() && err.lines().count() == 1, "{err}");
    assert!(err.contains(&format!("the engine in use is {host} (DOCKER_HOST)")), "{err}");

    // A docker context pointing there, chosen by DOCKER_CONTEXT (DOCKER_HOST would win over it).
    let context = "xtask-e2e-ssh";
    let mut ctx_env = sshd.env();
    let made = Command::new("docker")
        .args(["context", "create", context, "--docker", &format!("host={host}")])
        .envs(ctx_env.clone())
        .env_remove("DOCKER_HOST")
        .output()
        .unwrap();
    assert!(made.status.success(), "docker context create: {}", String::from_utf8_lossy(&made.stderr));
    ctx_env.push(("DOCKER_CONTEXT".into(), context.into()));
    builds_and_measures(&pairs(&ctx_env), &["DOCKER_HOST"], &format!("docker context {context}"), false);
    let dir = sshd.dir.clone();
    drop(sshd);
    assert!(!dir.exists(), "{} is left behind", dir.display());
}
