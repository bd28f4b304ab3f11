//! End-to-end tests on the real engine, real buildx, real compose and a real registry. They are
//! `#[ignore]`d for a plain `cargo test`; `cargo xtask test` runs them (`--ignored`, one at a
//! time, in name order) after making sure an engine answers. Nothing here is mocked.

// The topic files (`use super::*`) may read and write streams.
#[allow(unused_imports)]
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

mod audit;
mod builds;
mod commands;
mod hardening;
mod home_page;
mod host;
mod metrics;
mod remote;
mod reports;
mod reproducible;
mod sbom;
mod second_engine;
mod secrets;
mod signing;
mod stack;
mod two_platforms;
mod way_in;
mod why;

/// The sources under test: the checkout, or the clone `XTASK_PROJECT_ROOT` names (`cargo xtask
/// test` runs a leg beside another in a clone of its own).
fn root() -> PathBuf {
    match std::env::var_os("XTASK_PROJECT_ROOT") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf(),
    }
}

fn xtask(args: &[&str], envs: &[(&str, &str)]) -> Output {
    xtask_without(args, envs, &[])
}

/// As [`xtask`], with variables of this process's environment left out (`DOCKER_HOST`, for a
/// run that must reach the engine through a docker context).
fn xtask_without(args: &[&str], envs: &[(&str, &str)], remove: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    for name in remove {
        cmd.env_remove(name);
    }
    // The tests' builds are not a CI run's own: each test says what it wants (`--cache-export`,
    // CI), so the runner's CI=true does not change what they build or export.
    cmd.args(args).current_dir(root()).env_remove("CI");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("running the xtask");
    eprintln!("xtask {args:?} -> {}\n{}", out.status, tail(&out, 15));
    out
}

fn tail(out: &Output, n: usize) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn must(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let out = xtask(args, envs);
    assert!(out.status.success(), "xtask {args:?} failed:\n{}", tail(&out, 40));
    out
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("running docker");
    assert!(out.status.success(), "docker {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn docker_ok(args: &[&str]) -> bool {
    Command::new("docker").args(args).output().is_ok_and(|o| o.status.success())
}

/// A program on PATH.
fn which(program: &str) -> Option<PathBuf> {
    std::env::var("PATH").ok()?.split(':').map(|d| Path::new(d).join(program)).find(|p| p.is_file())
}

/// A loopback port nobody listens on now, for a server a test starts; never the same one twice in
/// a run, so two asked for at once stay apart.
fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap();
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// The registry of the engine under test (`cargo xtask test` passes it; each private engine has
/// its own port).
fn registry() -> String {
    std::env::var("XTASK_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".to_string())
}

/// True when the engine keeps images in the classic store (so the docker driver can hold neither
/// several platforms nor attestations).
fn classic_store() -> bool {
    !docker(&["info", "--format", "{{json .DriverStatus}}"]).contains("io.containerd.snapshotter")
}

/// The version the product builds when none is asked for, found the way the xtask finds it.
fn product_version() -> String {
    xtask::images::meta::version(None).unwrap_or_else(|e| panic!("{e:#}")).0.to_string()
}

/// The default group's images (`contextcleanse-*:dev`) built in the checkout, for a test that
/// reads them whatever ran before it (with a warm cache this takes seconds).
fn default_images() -> Output {
    must(&["build"], &[])
}

fn git_head() -> String {
    let out = Command::new("git").args(["rev-parse", "HEAD"]).current_dir(root()).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The bases `print` resolves for this engine, by build variable (`PYTHON_IMAGE`, `NODE_IMAGE`).
fn resolved_bases() -> Vec<(String, String)> {
    let print = must(&["print"], &[]);
    let text = String::from_utf8_lossy(&print.stdout).to_string();
    ["PYTHON_IMAGE", "NODE_IMAGE"]
        .iter()
        .map(|var| {
            let image = text
                .lines()
                .find_map(|l| l.strip_prefix(&format!("export {var}=")))
                .unwrap_or_else(|| panic!("print names {var}:\n{text}"));
            (var.to_string(), image.to_string())
        })
        .collect()
}

/// The platforms the engine's store holds of an image (API 1.48 and newer, over its unix socket),
/// or None where it cannot say or does not hold the image.
fn held_platforms(image: &str) -> Option<Vec<String>> {
    let socket = std::env::var("DOCKER_HOST").ok()?.strip_prefix("unix://")?.to_string();
    // Stand-ins' and the project's names need no escaping in the path.
    let path = format!("/v1.48/images/{image}/json?manifests=1");
    let (code, body) = xtask::engine::api::request(Path::new(&socket), "GET", &path)?;
    let inspect: Value = serde_json::from_str(&body).ok().filter(|_| code == 200)?;
    xtask::engine::store::platforms_available(&inspect)
}

/// A container removed when the test ends, pass or fail.
struct Container(String);

impl Container {
    fn run(name: &str, args: &[&str]) -> Container {
        let _ = Command::new("docker").args(["rm", "-f", name]).output();
        let mut all = vec!["run", "-d", "--name", name];
        all.extend_from_slice(args);
        docker(&all);
        Container(name.to_string())
    }

    fn wait_healthy(&self, limit: Duration) {
        let started = Instant::now();
        loop {
            let state = docker(&["inspect", "--format", "{{.State.Health.Status}}", &self.0]);
            if state == "healthy" {
                return;
            }
            if started.elapsed() > limit {
                let logs = Command::new("docker").args(["logs", "--tail", "30", &self.0]).output().unwrap();
                panic!(
                    "{} is `{state}` after {limit:?}; logs:\n{}{}",
                    self.0,
                    String::from_utf8_lossy(&logs.stdout),
                    String::from_utf8_lossy(&logs.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn exec(&self, args: &[&str]) -> String {
        let mut all = vec!["exec", self.0.as_str()];
        all.extend_from_slice(args);
        docker(&all)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

/// A plain HTTP/1.1 GET on loopback; returns the status code and body.
fn http_get(port: u16, path: &str) -> (u16, String) {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connecting to the container's published port");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let (code, body) = xtask::util::http::get(s, "127.0.0.1", path, &[]).unwrap_or_default();
    (code, String::from_utf8_lossy(&body).to_string())
}

fn health(port: u16, path: &str) -> Value {
    let (code, body) = http_get(port, path);
    assert_eq!(code, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path} is not JSON ({e}): {body}"))
}

fn label(image: &str, key: &str) -> String {
    docker(&["image", "inspect", "--format", &format!("{{{{index .Config.Labels \"{key}\"}}}}"), image])
}

/// The newest report the xtask wrote under `dir`/target/xtask/reports.
fn last_report(dir: &Path) -> Value {
    let path = xtask::report::last_saved(&xtask::util::paths::reports_dir_in(dir)).unwrap_or_else(|e| panic!("{e:#}"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every report of the last xtask run in `dir`: one, or two when the run retried a known
/// transient engine error (the retry then finds cached what the first attempt built).
fn last_run_reports(dir: &Path) -> Vec<Value> {
    let last = xtask::report::last_saved(&xtask::util::paths::reports_dir_in(dir)).unwrap_or_else(|e| panic!("{e:#}"));
    let name = last.file_name().unwrap().to_string_lossy().to_string();
    let pid = name.rsplit_once('-').map(|(_, p)| p.to_string()).unwrap();
    let mut runs: Vec<PathBuf> = std::fs::read_dir(last.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().ends_with(&format!("-{pid}")))
        .collect();
    runs.sort();
    runs.iter().map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()).collect()
}

fn target<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no target {name} in the report"))
}

/// The instructions of a report's target whose names contain `part` and that really ran (FROM is
/// resolved anew on every build, so it is not an instruction that can be cached).
fn executed(report: &Value, name: &str, part: &str) -> Vec<String> {
    target(report, name)["steps_detail"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["cached"] == false)
        .filter(|s| {
            let n = s["name"].as_str().unwrap();
            n.contains(part) && !n.contains("] FROM ")
        })
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

/// A copy of the checkout's sources (tracked and untracked-but-not-ignored files) in a scratch
/// folder, so tests can change files without touching the real ones.
fn scratch_copy(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xtask-e2e-{name}"));
    xtask::util::paths::copy_sources(&root(), &dir).unwrap_or_else(|e| panic!("{e:#}"));
    dir
}

/// Walks a tar stream (as `docker export` writes it): names and contents of regular files.
fn tar_entries(data: &[u8], mut visit: impl FnMut(&str, &[u8])) {
    xtask::util::tar::for_each_file(data, |_, _| true, |name, body| visit(name, &body))
        .unwrap_or_else(|e| panic!("{e:#}"));
}

/// Every file of every layer of an image, as `docker image save` writes it (an OCI layout whose
/// layer blobs are tar streams, gzip-compressed or not).
fn layer_files(image: &str, mut visit: impl FnMut(&str, &[u8])) -> usize {
    let dir = std::env::temp_dir().join(format!("xtask-e2e-save-{}", image.replace([':', '/'], "_")));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let archive = dir.join("image.tar");
    docker(&["image", "save", "--output", archive.to_str().unwrap(), image]);
    let unpack =
        Command::new("tar").args(["-xf", archive.to_str().unwrap(), "-C", dir.to_str().unwrap()]).status().unwrap();
    assert!(unpack.success());
    let mut layers = 0;
    for blob in std::fs::read_dir(dir.join("blobs/sha256")).unwrap().flatten() {
        let raw = std::fs::read(blob.path()).unwrap();
        let data = if raw.starts_with(&[0x1f, 0x8b]) {
            Command::new("gzip").args(["-dc", blob.path().to_str().unwrap()]).output().unwrap().stdout
        } else {
            raw
        };
        // A layer is a tar stream: its first header has "ustar" at offset 257.
        if data.len() > 512 && &data[257..262] == b"ustar" {
            layers += 1;
            tar_entries(&data, &mut visit);
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    layers
}

fn one_line_error(out: &Output, expected: &str) {
    assert!(!out.status.success(), "expected a failure");
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.lines().find(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("no error line in:\n{err}"));
    assert!(line.contains(expected), "`{line}` should say `{expected}`");
}

/// Starts a build that takes a while (the frontend without cache) in a scratch copy, and returns
/// once buildx runs below the xtask and has had a moment to start the build. Callers build
/// [`default_images`] first: the stand-ins and the engine's base layers are then there, so a
/// signal reaches buildx and not the making of the stand-ins, whatever ran before.
fn slow_build_in(dir: &Path) -> std::process::Child {
    let child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["frontend", "--no-cache", "--progress", "tty"])
        .env("XTASK_PROJECT_ROOT", dir)
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The build itself, not the planning's `bake --print`: only the build writes a metadata file.
    let building = |pid: &u32| {
        std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.windows(15).any(|w| w == b"--metadata-file"))
    };
    let started = Instant::now();
    while !descendants(child.id()).iter().any(|(pid, _, _)| building(pid)) {
        assert!(started.elapsed() < Duration::from_secs(60), "no build below the xtask after 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    child
}

/// Every process below `pid` now, as (pid, command name, start time in clock ticks): a pid can be
/// reused, the pair cannot.
fn descendants(pid: u32) -> Vec<(u32, String, u64)> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // `pid (comm) state ppid ...`: comm may hold spaces and parentheses, so split at the last `)`.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let (Ok(me), Some(Ok(parent)), Some(Ok(start))) = (
            stat[..open].trim().parse::<u32>(),
            fields.get(1).map(|p| p.parse::<u32>()),
            fields.get(19).map(|s| s.parse::<u64>()),
        ) else {
            continue;
        };
        all.push((me, parent, stat[open + 1..close].to_string(), start));
    }
    let mut found = Vec::new();
    let mut parents = vec![pid];
    while let Some(p) = parents.pop() {
        for (me, _, comm, start) in all.iter().filter(|(_, parent, _, _)| *parent == p) {
            found.push((*me, comm.clone(), *start));
            parents.push(*me);
        }
    }
    found
}

/// The names of this host's network interfaces.
fn interfaces() -> Vec<String> {
    names_in("/sys/class/net")
}

/// The bridges on this host (containers' veth pairs come and go with other engines' builds).
fn bridges() -> Vec<String> {
    interfaces().into_iter().filter(|i| i.starts_with("xtask") || i.starts_with("br-") || i == "docker0").collect()
}

/// The sorted names in one of the kernel's folders (network interfaces, binfmt_misc entries).
fn names_in(dir: &str) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect();
    names.sort();
    names
}

/// A bridge that takes the lowest address of its ports changes it whenever a container comes or
/// goes, and a container that learnt the old one loses its network until its ARP entry expires.
#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn e_the_engines_bridge_keeps_its_address_while_containers_come_and_go() {
    let format = r#"{{index .Options "com.docker.network.bridge.name"}}"#;
    let bridge = docker(&["network", "inspect", "bridge", "--format", format]);
    let file = PathBuf::from(format!("/sys/class/net/{bridge}/address"));
    if !file.exists() {
        assert!(std::env::var("CI").is_err(), "CI runs the engine on this host: no bridge {bridge}");
        eprintln!("the engine's bridge {bridge} is not on this host");
        return;
    }
    let address = || std::fs::read_to_string(&file).unwrap().trim().to_string();
    let first = address();
    assert_ne!(first, "00:00:00:00:00:00", "the bridge {bridge} has an address of its own");
    must(&["build", "backend"], &[]);
    let mut seen = Vec::new();
    let mut started = Vec::new();
    for _ in 0..3 {
        let args = ["run", "-d", "--rm", "--entrypoint", "sleep", "contextcleanse-backend:dev", "60"];
        started.push(docker(&args));
        seen.push(address());
    }
    for id in &started {
        docker(&["rm", "-f", id]);
        seen.push(address());
    }
    assert!(seen.iter().all(|a| *a == first), "{bridge} was {first}, then {seen:?}");
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn r_a_second_engine_runs_beside_the_first_and_leaves_it_untouched() {
    let status = |envs: &[(&str, &str)]| String::from_utf8_lossy(&must(&["engine", "status"], envs).stdout).to_string();
    let first = status(&[]);
    if !first.contains("private current engine") {
        assert!(std::env::var("CI").is_err(), "CI runs this on the private current engine");
        eprintln!("not the private current engine: no second engine is started beside it");
        return;
    }
    must(&["build", "backend"], &[]);
    // An engine the user runs has `docker0`; a second dockerd can delete it (engine-facts.md).
    // Stand one in when the host has none, and start the second engine twice (the second start
    // finds the state of the first), which is when dockerd would take it for its own.
    let made_docker0 = !bridges().contains(&"docker0".to_string());
    if made_docker0 {
        let ip = |args: &[&str]| assert!(Command::new("ip").args(args).status().unwrap().success(), "ip {args:?}");
        ip(&["link", "add", "docker0", "type", "bridge"]);
        ip(&["addr", "add", "172.17.0.1/16", "dev", "docker0"]);
    }
    must(&["engine", "up", "--channel", "floor", "--classic"], &[]);
    must(&["engine", "down", "--channel", "floor", "--classic"], &[]);
    let before = bridges();
    let up = must(&["engine", "up", "--channel", "floor", "--classic"], &[]);
    let said = String::from_utf8_lossy(&up.stdout).to_string();
    let host =
        said.lines().find_map(|l| l.strip_prefix("export DOCKER_HOST=")).expect("up prints the exports").to_string();
    let config = said.lines().find_map(|l| l.strip_prefix("export DOCKER_CONFIG=")).unwrap().to_string();
    let second = status(&[("DOCKER_HOST", &host), ("DOCKER_CONFIG", &config)]);
    assert!(second.contains("private floor-classic engine") && second.contains("classic image store"), "{second}");
    assert!(second.contains("Docker 26.1") && second.contains("127.0.0.1:5003 answers"), "{second}");
    let added: Vec<String> = bridges().into_iter().filter(|i| !before.contains(i)).collect();
    assert_eq!(added.len(), 1, "the second engine brings one bridge of its own: {added:?}");
    assert!(before.iter().all(|i| bridges().contains(i)), "no bridge of the first engine went away");
    // The first engine still runs containers on its own bridge while the second one is up.
    let image = "contextcleanse-backend:dev";
    let run = docker(&["run", "--rm", "--entrypoint", "python3", image, "-c", "print('up')"]);
    assert_eq!(run, "up");
    must(&["engine", "down", "--channel", "floor", "--classic"], &[]);
    assert_eq!(bridges(), before, "down removed the second engine's bridge and nothing else");
    let run = xtask::engine::Layout::new("floor-classic".parse().unwrap()).run;
    assert!(!run.exists(), "down removed the second engine's run folder {}", run.display());
    assert!(before.contains(&"docker0".to_string()), "docker0 outlived two starts of the second engine");
    if made_docker0 {
        let _ = Command::new("ip").args(["link", "del", "docker0"]).status();
    }
    assert_eq!(status(&[]).lines().next(), first.lines().next(), "the first engine answers as before");
}

/// `engine up` for a private engine in a throwaway folder, with no engine reachable otherwise. It
/// is a named one: a second `current` engine would be refused at once, as the first one running
/// holds its registry port.
fn engine_up_elsewhere(dir: &Path, mirror: &str, as_nobody: bool) -> Output {
    let exe = env!("CARGO_BIN_EXE_xtask");
    let mut cmd = if as_nobody {
        let mut c = Command::new("setpriv");
        c.args(["--reuid", "65534", "--regid", "65534", "--clear-groups", exe]);
        c
    } else {
        Command::new(exe)
    };
    cmd.args(["engine", "up", "--name", "elsewhere"])
        .current_dir(root())
        .env_remove("DOCKER_HOST")
        .env("XTASK_ENGINE_DIR", dir)
        .env("DEBIAN_MIRROR", mirror);
    cmd.output().unwrap()
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn y_engine_up_refuses_cleanly_and_leaves_nothing_half_installed() {
    let dir = std::env::temp_dir().join("xtask-e2e-engine-elsewhere");
    let _ = std::fs::remove_dir_all(&dir);
    if Path::new("/var/run/docker.sock").exists() {
        eprintln!("a system engine answers at the default socket: `engine up` would use it");
        assert!(std::env::var("CI").is_err(), "CI machines have no system engine");
        return;
    }
    // A Debian archive that does not answer (a closed port on loopback): apt-get only warns about
    // the lists, so the download fails, named with its first package and suite.
    let out = engine_up_elsewhere(&dir, "http://127.0.0.1:9/debian", false);
    one_line_error(&out, "downloading package docker.io from Debian testing and ");
    one_line_error(&out, " more (rerun to try again)");
    let engine = dir.join("elsewhere");
    assert!(!engine.join("prefix").exists() && !engine.join("prefix.partial").exists(), "nothing half-installed");
    // Not root: the private engine is impossible; the message says what to do instead.
    let out = engine_up_elsewhere(&dir, "http://127.0.0.1:9/debian", true);
    one_line_error(&out, "a private one needs root");
    assert!(String::from_utf8_lossy(&out.stderr).contains("install Docker Engine 26+"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The dockerd pid of the private engine, from `engine status`.
fn private_dockerd_pid() -> Option<String> {
    let status = String::from_utf8_lossy(&must(&["engine", "status"], &[]).stdout).to_string();
    status.split("dockerd pid ").nth(1).map(|rest| rest.trim_end_matches(|c: char| !c.is_ascii_digit()).to_string())
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn z_engine_stopping_mid_build_is_named_and_two_ups_start_one_engine() {
    let Some(pid_before) = private_dockerd_pid() else {
        // Only the private engine may be stopped by a test; another engine is someone's own.
        assert!(std::env::var("CI").is_err(), "CI runs on the private engine");
        eprintln!("not the private engine: not stopping it");
        return;
    };
    let dir = scratch_copy("engine-dies");
    default_images();
    let child = slow_build_in(&dir);
    // This engine only: `cargo xtask test` runs other engines' tests beside this one.
    let name = std::env::var("XTASK_TEST_ENGINE").unwrap_or_else(|_| "current".to_string());
    let (channel, classic) = name.strip_suffix("-classic").map_or((name.as_str(), false), |c| (c, true));
    let mut down = vec!["engine", "down", "--channel", channel];
    if classic {
        down.push("--classic");
    }
    // The build's steps run in the engine's own cgroup, and none is left running once it is down
    // (a step the stopped daemon leaves behind would go on using the CPU unowned).
    let parent = xtask::engine::cgroup::parent(&xtask::engine::Layout::new(name.parse().unwrap()).run);
    let started = Instant::now();
    while xtask::engine::cgroup::processes(&parent).is_empty() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!xtask::engine::cgroup::processes(&parent).is_empty(), "no build step runs in the cgroup {parent}");
    must(&down, &[]);
    let left = xtask::engine::cgroup::processes(&parent);
    assert!(left.is_empty(), "processes left in {parent} after down: {left:?}");
    let out = child.wait_with_output().unwrap();
    one_line_error(&out, "stopped answering during the build");
    let history = std::fs::read_to_string(dir.join("target/xtask/reports/history.jsonl")).unwrap();
    assert!(history.contains("\"failed\""), "the failed build is in the history: {history}");
    // Two `up`s at once: one starts the engine, the other waits for it and finds it running.
    let spawn_up = || Command::new(env!("CARGO_BIN_EXE_xtask")).args(["engine", "up"]).current_dir(root()).output();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(spawn_up);
        let b = s.spawn(spawn_up);
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    assert!(a.status.success() && b.status.success());
    let said = format!("{}{}", String::from_utf8_lossy(&a.stdout), String::from_utf8_lossy(&b.stdout));
    assert_eq!(said.matches("started the private").count(), 1, "{said}");
    assert_eq!(said.matches("already up").count(), 1, "{said}");
    let pid_after = private_dockerd_pid().expect("the private engine is up again");
    assert_ne!(pid_before, pid_after);
    std::fs::remove_dir_all(dir).unwrap();
}

/// GET on the registry at `addr` (loopback), asking for any kind of manifest.
fn registry_get(addr: &str, path: &str) -> Vec<u8> {
    let s = TcpStream::connect(addr).expect("connecting to the registry");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
                  application/vnd.docker.distribution.manifest.list.v2+json, \
                  application/vnd.docker.distribution.manifest.v2+json";
    let (code, body) = xtask::util::http::get(s, addr, path, &[("Accept", accept)]).expect("an HTTP response");
    assert_eq!(code, 200, "GET {path}: {}", String::from_utf8_lossy(&body));
    body
}
