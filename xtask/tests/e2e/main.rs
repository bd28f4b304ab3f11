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

mod home_page;
mod metrics;
mod reports;
mod sbom;
mod second_engine;
mod signing;
mod stack;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn xtask(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(args).current_dir(root());
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
    xtask::meta::version(None).unwrap_or_else(|e| panic!("{e:#}")).0.to_string()
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
    let (code, body) = xtask::http::get(s, "127.0.0.1", path, &[]).unwrap_or_default();
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
    let path = xtask::report::last_saved(&xtask::paths::reports_dir_in(dir)).unwrap_or_else(|e| panic!("{e:#}"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every report of the last xtask run in `dir`: one, or two when the run retried a known
/// transient engine error (the retry then finds cached what the first attempt built).
fn last_run_reports(dir: &Path) -> Vec<Value> {
    let last = xtask::report::last_saved(&xtask::paths::reports_dir_in(dir)).unwrap_or_else(|e| panic!("{e:#}"));
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
    xtask::paths::copy_sources(&root(), &dir).unwrap_or_else(|e| panic!("{e:#}"));
    dir
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn a_default_build_runs_healthy_non_root_with_its_commit() {
    let out = default_images();
    let shown = String::from_utf8_lossy(&out.stderr);
    assert!(shown.contains("cached") && shown.contains("report: "), "the build prints its table and report path");
    let report = last_report(&root());
    assert_eq!(report["status"], "ok");
    let head = git_head();
    let version = product_version();
    let mut running = Vec::new();
    for (name, image, port, inner, path, uid) in [
        ("backend", "contextcleanse-backend:dev", 18100u16, 8000u16, "/health", "1000"),
        ("frontend", "contextcleanse-frontend:dev", 18101, 3000, "/api/health", "1001"),
    ] {
        let t = target(&report, name);
        assert!(t["steps"].as_u64().unwrap() > 3 && t["size_bytes"].as_u64().unwrap() > 0, "{t}");
        let publish = format!("127.0.0.1:{port}:{inner}");
        let c = Container::run(&format!("e2e-{name}"), &["-p", &publish, image]);
        c.wait_healthy(Duration::from_secs(90));
        let h = health(port, path);
        assert_eq!(h["status"], "ok");
        assert_eq!(h["version"], version.as_str());
        assert!(h["revision"].as_str().unwrap().starts_with(&head), "{h} should name commit {head}");
        assert!(h["built"].as_str().unwrap().ends_with('Z'), "{h}");
        assert_eq!(c.exec(&["id", "-u"]), uid, "{name} runs as its own user");
        assert!(label(image, "org.opencontainers.image.revision").starts_with(&head));
        assert_eq!(label(image, "org.opencontainers.image.version"), version);
        assert_eq!(label(image, "org.opencontainers.image.created"), h["built"].as_str().unwrap());
        assert_eq!(label(image, "org.opencontainers.image.title"), format!("contextcleanse-{name}"));
        let published = docker(&["port", &c.0]);
        assert!(published.lines().all(|l| l.contains("127.0.0.1:")), "published on loopback only: {published}");
        running.push(c);
    }
    let (code, page) = http_get(18101, "/");
    assert_eq!(code, 200);
    assert!(home_page::text(&page).contains(&version), "the home page shows the frontend's health");
}

/// Walks a tar stream (as `docker export` writes it): names and contents of regular files.
fn tar_entries(data: &[u8], mut visit: impl FnMut(&str, &[u8])) {
    xtask::tar::for_each_file(data, |_, _| true, |name, body| visit(name, &body)).unwrap_or_else(|e| panic!("{e:#}"));
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

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn b_no_ca_bundle_or_env_file_in_any_layer() {
    let bundle = std::fs::read("/etc/ssl/certs/ca-certificates.crt").expect("the host CA bundle the builds were given");
    default_images();
    for image in ["contextcleanse-backend:dev", "contextcleanse-frontend:dev"] {
        let mut files = 0;
        let layers = layer_files(image, |name, body| {
            files += 1;
            let base = name.rsplit('/').next().unwrap_or(name);
            assert!(!(base == ".env" || base.starts_with(".env.")), "{image} holds {name}");
            assert!(!name.contains("run/secrets/"), "{image} holds a secret at {name}");
            assert!(body != bundle.as_slice(), "{image} holds the host's CA bundle at {name}");
        });
        assert!(layers >= 3 && files > 100, "walked {files} files in {layers} layers of {image}");
    }
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn b_each_image_adds_at_most_60_mb_to_its_base() {
    default_images();
    // Uncompressed layer bytes for this platform, as the xtask's reports count them.
    let size = |image: &str| -> i64 {
        docker(&["history", "--human=false", "--format", "{{.Size}}", image])
            .lines()
            .map(|l| l.parse::<i64>().unwrap())
            .sum()
    };
    for (image, arg) in [("contextcleanse-backend:dev", "PYTHON_IMAGE"), ("contextcleanse-frontend:dev", "NODE_IMAGE")]
    {
        let print = must(&["print", if arg == "PYTHON_IMAGE" { "backend" } else { "frontend" }], &[]);
        let text = String::from_utf8_lossy(&print.stdout).to_string();
        let base = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("export {arg}=")))
            .expect("print names the base image")
            .to_string();
        let added = size(image) - size(&base);
        eprintln!("{image}: {} bytes over {base}", added);
        assert!(added <= 60_000_000, "{image} adds {added} bytes over {base}");
    }
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn c_source_only_change_reruns_no_dependency_step() {
    let dir = scratch_copy("source-change");
    let env = [("XTASK_PROJECT_ROOT", dir.to_str().unwrap())];
    must(&["backend"], &env);
    let main = dir.join("backend/app/main.py");
    let mut text = std::fs::read_to_string(&main).unwrap();
    // Unique content: the engine's cache is content-addressed, and an earlier run's change would
    // come back from it.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    text.push_str(&format!("\n# a source-only change made by the end-to-end test at {now}\n"));
    std::fs::write(&main, text).unwrap();
    must(&["backend"], &env);
    let reports = last_run_reports(&dir);
    let all = |part: &str| reports.iter().flat_map(|r| executed(r, "backend", part)).collect::<Vec<_>>();
    assert_eq!(all("[deps"), Vec::<String>::new(), "dependency steps re-ran");
    let copies = all("COPY app/");
    assert_eq!(copies.len(), 1, "the changed source was copied again: {copies:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn d_metadata_only_change_reruns_no_run_step() {
    must(&["build"], &[]);
    must(&["build"], &[("SOURCE_DATE_EPOCH", "1700000000")]);
    let report = last_report(&root());
    for name in ["backend", "frontend"] {
        assert_eq!(
            executed(&report, name, "] RUN "),
            Vec::<String>::new(),
            "{name}: RUN steps re-ran for a new BUILD_DATE"
        );
    }
    let built = label("contextcleanse-backend:dev", "org.opencontainers.image.created");
    assert_eq!(built, "2023-11-14T22:13:20Z", "the new date reached the label");
    must(&["build"], &[]);
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn e_compose_up_reaches_healthy_and_down_cleans_up() {
    let compose = |args: &[&str]| {
        let out = Command::new("docker").arg("compose").args(args).current_dir(root()).output().unwrap();
        assert!(out.status.success(), "docker compose {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    compose(&["config", "--quiet"]);
    // Compose runs the images the xtask built (`--no-build`).
    default_images();
    compose(&["up", "--detach", "--wait", "--no-build"]);
    let ps = compose(&["ps", "--format", "{{.Service}} {{.Health}} {{.Ports}}"]);
    assert_eq!(ps.lines().filter(|l| l.contains(" healthy ")).count(), 2, "{ps}");
    assert!(!ps.contains("0.0.0.0"), "ports on 127.0.0.1 only: {ps}");
    let (code, page) = http_get(3000, "/");
    assert_eq!(code, 200);
    assert!(page.contains("ok") && !page.contains("unreachable"), "the home page shows the backend's health");
    compose(&["down", "--volumes", "--remove-orphans"]);
    let left =
        docker(&["ps", "-a", "--filter", "label=com.docker.compose.project=contextcleanse", "--format", "{{.Names}}"]);
    assert_eq!(left, "", "compose down left containers");
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn f_production_push_to_local_registry_and_pull_back_by_digest() {
    let registry = registry();
    let out = must(&["production", "--push", "--registry", &registry, "--version", "1.2.3"], &[]);
    let classic = classic_store();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(said.contains("provenance attestation left out"), classic, "{said}");
    let report = last_report(&root());
    for name in ["backend", "frontend"] {
        let t = target(&report, &format!("{name}-production"));
        let digest = t["digest"].as_str().expect("the metadata file gave a digest");
        let repo = format!("{registry}/contextcleanse-{name}");
        for tag in ["1.2.3", "1.2", "1", "latest"] {
            let raw = docker(&["buildx", "imagetools", "inspect", "--raw", &format!("{repo}:{tag}")]);
            if classic {
                assert!(raw.contains("\"layers\""), "{repo}:{tag} is one image manifest: {raw}");
            } else {
                assert!(raw.contains("manifests"), "{repo}:{tag} is an index (image + provenance)");
            }
        }
        let by_digest = format!("{repo}@{digest}");
        let _ = Command::new("docker").args(["image", "rm", &by_digest]).output();
        docker(&["pull", "--quiet", &by_digest]);
        assert_eq!(label(&by_digest, "org.opencontainers.image.version"), "1.2.3");
        let _ = Command::new("docker").args(["image", "rm", &by_digest]).output();
    }
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn g_multiplatform_arm64_images_run_under_emulation() {
    if classic_store() {
        // The docker driver on the classic store cannot hold two platforms: refused before
        // anything is built, in one line, as `doctor` says too.
        for args in [&["multiplatform"][..], &["multiplatform", "--oci"]] {
            one_line_error(&xtask(args, &[]), "multiplatform needs a builder that can build several platforms");
        }
        let doctor = must(&["doctor"], &[]);
        let text = String::from_utf8_lossy(&doctor.stdout);
        assert_eq!(text.lines().filter(|l| l.contains("multiplatform needs a builder")).count(), 1, "{text}");
        return;
    }
    must(&["multiplatform", "--version", "1.2.3"], &[]);
    let arch = docker(&[
        "run",
        "--rm",
        "--platform",
        "linux/arm64",
        "--entrypoint",
        "uname",
        "contextcleanse-backend:1.2.3",
        "-m",
    ]);
    assert_eq!(arch, "aarch64");
    for (name, port, inner, path) in
        [("backend", 18102u16, 8000u16, "/health"), ("frontend", 18103, 3000, "/api/health")]
    {
        let publish = format!("127.0.0.1:{port}:{inner}");
        let image = format!("contextcleanse-{name}:1.2.3");
        let c = Container::run(&format!("e2e-arm64-{name}"), &["--platform", "linux/arm64", "-p", &publish, &image]);
        assert_eq!(c.exec(&["uname", "-m"]), "aarch64");
        c.wait_healthy(Duration::from_secs(240));
        assert_eq!(health(port, path)["version"], "1.2.3");
    }
    must(&["multiplatform", "--version", "1.2.3", "--oci"], &[]);
    let report = last_report(&root());
    for name in ["backend", "frontend"] {
        let sizes = &target(&report, &format!("{name}-multiplatform"))["platform_sizes"];
        for platform in ["linux/amd64", "linux/arm64"] {
            assert!(sizes[platform].as_u64().unwrap_or(0) > 10_000_000, "{name} {platform}: {sizes}");
        }
        let archive = root().join(format!("target/xtask/oci/{name}-multiplatform.tar"));
        assert!(std::fs::metadata(&archive).is_ok_and(|m| m.len() > 1_000_000), "{} exists", archive.display());
    }
}

fn one_line_error(out: &Output, expected: &str) {
    assert!(!out.status.success(), "expected a failure");
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.lines().find(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("no error line in:\n{err}"));
    assert!(line.contains(expected), "`{line}` should say `{expected}`");
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn h_bad_input_gives_one_clear_line_and_a_nonzero_exit() {
    one_line_error(&xtask(&["build", "backnd"], &[]), "unknown service or group `backnd`; valid ones are:");
    one_line_error(&xtask(&["build", "--set", "backend.args.X"], &[]), "expected TARGET.KEY=VALUE");
    one_line_error(&xtask(&["build", "--version", "1.2"], &[]), "`1.2` is not a semver version");
    one_line_error(&xtask(&["build", "--set", "*.platform=linux/s390x"], &[]), "unknown platform `linux/s390x`");
    one_line_error(
        &xtask(&["production", "--push", "--registry", "127.0.0.1:5999"], &[]),
        "registry 127.0.0.1:5999 is unreachable",
    );
    let dir = scratch_copy("bad-env");
    std::fs::write(dir.join(".env"), "DOCKER_BUILDKIT=1\nnot a setting\n").unwrap();
    let out = xtask(&["build"], &[("XTASK_PROJECT_ROOT", dir.to_str().unwrap())]);
    one_line_error(&out, ".env:2: cannot parse `not a setting`");
    // A value the flags would refuse is refused in .env too, with its line, by build and doctor.
    std::fs::write(dir.join(".env"), "DOCKER_BUILDKIT=1\nBUILDKIT_PROGRESS=fancy\n").unwrap();
    for args in [&["build"][..], &["doctor"]] {
        let out = xtask(args, &[("XTASK_PROJECT_ROOT", dir.to_str().unwrap())]);
        let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && said.contains(".env:2: BUILDKIT_PROGRESS=`fancy`: use one of"), "{said}");
    }
    let history_before = std::fs::read_to_string(root().join("target/xtask/reports/history.jsonl")).unwrap_or_default();
    one_line_error(
        &xtask(&["build", "--set", "nosuchtarget.args.X=1"], &[]),
        "`nosuchtarget` is not a target of this build; its targets are backend, frontend",
    );
    let history_after = std::fs::read_to_string(root().join("target/xtask/reports/history.jsonl")).unwrap_or_default();
    assert_eq!(history_before, history_after, "a refused --set starts no build");
    assert!(!dir.join("target/xtask/reports").exists(), "nothing written for a refused build");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Starts a build that takes a while (the frontend without cache) in a scratch copy, and returns
/// once buildx has had time to start its steps.
fn slow_build_in(dir: &Path) -> std::process::Child {
    let child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["frontend", "--no-cache", "--progress", "tty"])
        .env("XTASK_PROJECT_ROOT", dir)
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(8));
    child
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn i_interrupted_build_leaves_a_valid_history() {
    let dir = scratch_copy("interrupt");
    let child = slow_build_in(&dir);
    // Interrupt the xtask as Ctrl-C would, while buildx runs.
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let status = child.wait_with_output().unwrap().status;
    assert!(!status.success(), "an interrupted build exits non-zero");
    let history = std::fs::read_to_string(dir.join("target/xtask/reports/history.jsonl")).expect("history written");
    let lines: Vec<Value> =
        history.lines().map(|l| serde_json::from_str(l).expect("every history line is JSON")).collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["status"], "interrupted", "{}", lines[0]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn j_status_doctor_print_and_report_work() {
    let status = String::from_utf8_lossy(&must(&["engine", "status"], &[]).stdout).to_string();
    let store = if classic_store() { "classic image store" } else { "containerd image store" };
    assert!(status.contains(store), "{status}");
    assert!(status.contains("linux/amd64") && status.contains("linux/arm64"), "{status}");
    assert!(status.contains(&format!("{} answers", registry())), "{status}");
    // Each private engine shows its channel's versions (BuildKit from Docker's release notes).
    let expected: &[&str] = match std::env::var("XTASK_TEST_ENGINE").as_deref() {
        Ok("current" | "current-classic") => {
            &["Docker 28.5", "buildkit   0.25", "buildx     0.29", "channel    current"]
        }
        Ok("floor" | "floor-classic") => &["Docker 26.1", "buildkit   0.13", "buildx     0.13", "channel    floor"],
        _ => &[],
    };
    for e in expected {
        assert!(status.contains(e), "`{e}` in:\n{status}");
    }
    let doctor = must(&["doctor"], &[]);
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(!text.contains("FAIL"), "{text}");
    assert!(
        text.contains("npm pin") && text.contains("buildx") && text.contains("BUILDKIT_STEP_LOG_MAX_SIZE"),
        "{text}"
    );
    let images = || {
        let mut ids: Vec<String> =
            docker(&["image", "ls", "--quiet", "--no-trunc"]).lines().map(str::to_string).collect();
        ids.sort();
        ids.dedup();
        ids
    };
    let images_before = images();
    let print = must(&["print", "production"], &[]);
    let text = String::from_utf8_lossy(&print.stdout);
    assert!(text.contains("docker buildx bake") && text.contains("\"backend-production\""), "{text}");
    let (version, npm) = (product_version(), xtask::meta::npm_pin().unwrap());
    assert!(
        text.contains(&format!("export VERSION={version}")) && text.contains(&format!("NPM_VERSION={npm}")),
        "{text}"
    );
    must(&["build", "--dry-run"], &[]);
    assert_eq!(images(), images_before, "print and --dry-run built nothing");
    for group in ["default", "development", "production", "multiplatform"] {
        // The bake file works without the xtask.
        let json =
            docker(&["buildx", "bake", "--file", root().join("docker-bake.hcl").to_str().unwrap(), "--print", group]);
        assert!(json.contains("\"target\""), "bake --print {group}: {json}");
    }
    // Two builds of its own to compare, whatever ran before.
    default_images();
    default_images();
    let cmp = must(&["report", "--compare", "last~1", "last"], &[]);
    assert!(String::from_utf8_lossy(&cmp.stdout).contains("whole build"));
    assert!(docker_ok(&["buildx", "version"]));
}

/// The `docker buildx bake` lines of the README's "Without the xtask" section, as argument vectors.
fn readme_bake_commands() -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme.split("### Without the xtask").nth(1).expect("the README has a Without the xtask section");
    let section = section.split("\n#").next().unwrap();
    section
        .lines()
        .filter(|l| l.starts_with("docker buildx bake"))
        .map(|l| l.split("  #").next().unwrap().split_whitespace().map(str::to_string).collect())
        .collect()
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn p_readme_bake_commands_ask_for_exactly_the_access_they_show() {
    let commands = readme_bake_commands();
    assert!(commands.len() >= 2, "{commands:?}");
    let run = |args: &[String]| {
        Command::new("docker").args(&args[1..]).current_dir(root()).stdin(std::process::Stdio::null()).output().unwrap()
    };
    for cmd in &commands {
        let out = run(cmd);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!err.contains("additional privileges requested"), "{cmd:?} asks for more than it shows:\n{err}");
        if !out.status.success() {
            // Offline, a real build stops at the `# syntax` frontend image (the xtask's fallback
            // is not there without it); anything else is a failure of the command as written.
            assert!(err.contains("docker/dockerfile"), "{cmd:?} failed for another reason:\n{err}");
        }
        if let Some(i) = cmd.iter().position(|a| a.starts_with("--allow=")) {
            // Without its --allow the same command is refused: the flag is needed, not decoration.
            let mut bare = cmd.clone();
            bare.remove(i);
            let err = String::from_utf8_lossy(&run(&bare).stderr).to_string();
            assert!(err.contains("additional privileges requested") && err.contains(&cmd[i]), "{bare:?}:\n{err}");
        }
    }
}

/// The names of this host's network interfaces.
fn interfaces() -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect()
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
    let made_docker0 = !interfaces().contains(&"docker0".to_string());
    if made_docker0 {
        let ip = |args: &[&str]| assert!(Command::new("ip").args(args).status().unwrap().success(), "ip {args:?}");
        ip(&["link", "add", "docker0", "type", "bridge"]);
        ip(&["addr", "add", "172.17.0.1/16", "dev", "docker0"]);
    }
    must(&["engine", "up", "--channel", "floor", "--classic"], &[]);
    must(&["engine", "down", "--channel", "floor", "--classic"], &[]);
    let before = interfaces();
    let up = must(&["engine", "up", "--channel", "floor", "--classic"], &[]);
    let said = String::from_utf8_lossy(&up.stdout).to_string();
    let host =
        said.lines().find_map(|l| l.strip_prefix("export DOCKER_HOST=")).expect("up prints the exports").to_string();
    let config = said.lines().find_map(|l| l.strip_prefix("export DOCKER_CONFIG=")).unwrap().to_string();
    let second = status(&[("DOCKER_HOST", &host), ("DOCKER_CONFIG", &config)]);
    assert!(second.contains("private floor-classic engine") && second.contains("classic image store"), "{second}");
    assert!(second.contains("Docker 26.1") && second.contains("127.0.0.1:5003 answers"), "{second}");
    let added: Vec<String> = interfaces().into_iter().filter(|i| !before.contains(i)).collect();
    assert_eq!(added.len(), 1, "the second engine brings one bridge of its own: {added:?}");
    assert!(before.iter().all(|i| interfaces().contains(i)), "no interface of the first engine went away");
    // The first engine still runs containers on its own bridge while the second one is up.
    let image = "contextcleanse-backend:dev";
    let run = docker(&["run", "--rm", "--entrypoint", "python3", image, "-c", "print('up')"]);
    assert_eq!(run, "up");
    must(&["engine", "down", "--channel", "floor", "--classic"], &[]);
    assert_eq!(interfaces(), before, "down removed the second engine's bridge and nothing else");
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
    // the lists, so the first download fails, named with its package and suite.
    let out = engine_up_elsewhere(&dir, "http://127.0.0.1:9/debian", false);
    one_line_error(&out, "downloading package docker.io from Debian testing (rerun to resume)");
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
    let child = slow_build_in(&dir);
    must(&["engine", "down"], &[]);
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

/// True while that process exists, a zombie included.
fn still_there(pid: u32, start: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        rest.split_whitespace().nth(19).and_then(|s| s.parse::<u64>().ok()) == Some(start)
    })
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn k_sigint_sigterm_and_sighup_each_stop_buildx_and_are_recorded() {
    for (signal, number) in [("SIGINT", 2), ("SIGTERM", 15), ("SIGHUP", 1)] {
        let dir = scratch_copy(&format!("stop-{signal}-{}", std::process::id()));
        let child = slow_build_in(&dir);
        let below = descendants(child.id());
        assert!(
            below.iter().any(|(_, comm, _)| comm.starts_with("docker")),
            "{signal}: buildx should be running under the xtask: {below:?}"
        );
        let sent = Instant::now();
        let kill = Command::new("kill").args(["-s", &signal[3..], &child.id().to_string()]).status().unwrap();
        assert!(kill.success());
        let out = child.wait_with_output().unwrap();
        eprintln!("{signal}: exited after {:?}\n{}", sent.elapsed(), tail(&out, 8));
        assert_eq!(out.status.code(), Some(128 + number), "{signal}: exit code 128+{number}");
        std::thread::sleep(Duration::from_secs(5).saturating_sub(sent.elapsed()));
        let left: Vec<_> = below.iter().filter(|(pid, _, start)| still_there(*pid, *start)).collect();
        assert!(left.is_empty(), "{signal}: still there (or not reaped) 5 s later: {left:?}");
        let history = std::fs::read_to_string(dir.join("target/xtask/reports/history.jsonl")).expect("history written");
        let line: Value = serde_json::from_str(history.lines().last().unwrap()).unwrap();
        assert_eq!((line["status"].as_str(), line["signal"].as_str()), (Some("interrupted"), Some(signal)), "{line}");
        assert_eq!(last_report(&dir)["signal"], signal, "the report names the signal too");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn l_a_dockerfile_parse_error_names_the_file_line_and_target_and_the_other_is_cancelled() {
    let dir = scratch_copy(&format!("parse-error-{}", std::process::id()));
    let dockerfile = dir.join("backend/Dockerfile");
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    let line = text.lines().position(|l| l.starts_with("RUN ")).expect("the backend has a RUN step") + 1;
    let broken: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| if i + 1 == line { l.replacen("RUN ", "RUNN ", 1) } else { l.to_string() })
        .collect();
    std::fs::write(&dockerfile, broken.join("\n") + "\n").unwrap();
    let out = xtask(&["build"], &[("XTASK_PROJECT_ROOT", dir.to_str().unwrap())]);
    one_line_error(
        &out,
        &format!("failing: backend: backend/Dockerfile:{line}: dockerfile parse error on line {line}"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("failing: frontend"), "the frontend was only cancelled:\n{err}");
    let report = last_report(&dir);
    assert_eq!(report["status"], "failed");
    assert_eq!(report["failed_first"], "backend");
    assert_eq!(target(&report, "backend")["outcome"], "failed");
    assert_ne!(target(&report, "frontend")["outcome"], "failed", "{}", target(&report, "frontend"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn m_a_registry_cache_that_is_down_gives_one_warning_and_the_build_passes() {
    let dir = scratch_copy(&format!("cache-down-{}", std::process::id()));
    // A closed port on loopback: the cache import and export are refused at once.
    let out = must(&["backend"], &[("XTASK_PROJECT_ROOT", dir.to_str().unwrap()), ("REGISTRY", "127.0.0.1:5999")]);
    let err = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("xtask: warning:")).collect();
    assert_eq!(warnings.len(), 1, "one warning line:\n{err}");
    assert!(warnings[0].contains("cache") && warnings[0].contains("127.0.0.1:5999"), "{}", warnings[0]);
    let report = last_report(&dir);
    assert_eq!(report["status"], "ok");
    let notes = report["cache_warnings"].as_array().expect("the report keeps the cache trouble");
    assert!(!notes.is_empty() && notes.iter().all(|n| n.as_str().unwrap().contains("cache")), "{notes:?}");
    assert_eq!(target(&report, "backend")["outcome"], "ok");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn o_engine_record_history_cross_check_list_json_and_compare_of_unlike_builds() {
    let dir = scratch_copy(&format!("engine-record-{}", std::process::id()));
    let envs = [("XTASK_PROJECT_ROOT", dir.to_str().unwrap())];
    must(&["backend"], &envs);
    let out = must(&["backend"], &envs);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("first build"), "the second build on one engine is compared with the first:\n{err}");
    assert!(err.contains("\nengine: "), "the table names the engine:\n{err}");
    let report = last_report(&dir);
    let engine = &report["engine"];
    let buildx = docker(&["buildx", "version"]);
    assert!(buildx.contains(engine["buildx"].as_str().unwrap()), "{engine} against `{buildx}`");
    assert_eq!(engine["docker"], docker(&["version", "--format", "{{.Server.Version}}"]).as_str(), "{engine}");
    assert_eq!(engine["store"], if classic_store() { "classic" } else { "containerd" }, "{engine}");
    assert!(engine["buildkit"].as_str().is_some_and(|v| !v.is_empty()) && engine["driver"] == "docker", "{engine}");
    // `cargo xtask test` names a private engine by its channel, and an engine the user runs (a CI
    // runner's) as "your engine": that one has no private name.
    match std::env::var("XTASK_TEST_ENGINE").as_deref() {
        Ok("your engine") => assert!(engine.get("private").is_none(), "{engine}"),
        Ok(channel) => assert_eq!(engine["private"], channel, "{engine}"),
        Err(_) => {}
    }
    // A build leaves BuildKit's records alone; `report` reads them the first time it shows the
    // build, and keeps the cross-check in the report.
    assert!(report.get("history").is_none(), "the build itself asks no history: {report}");
    let shown = must(&["report", "--json"], &envs);
    let err = String::from_utf8_lossy(&shown.stderr);
    let report: Value = serde_json::from_slice(&shown.stdout).expect("report --json is JSON");
    assert_eq!(report, last_report(&dir), "the cross-check is kept in the report file");
    let backend = target(&report, "backend");
    let minor: u64 = engine["buildx"].as_str().unwrap().split('.').nth(1).unwrap().parse().unwrap();
    if minor >= 20 {
        // BuildKit's own record of the same build agrees with the stream's numbers.
        let reference = backend["history_ref"].as_str().expect("a history reference");
        let id = reference.rsplit('/').next().unwrap();
        assert!(docker(&["buildx", "history", "ls", "--format", "{{.Ref}}"]).contains(id), "{reference}");
        let check = &backend["history_check"];
        assert_eq!(check["agrees"], true, "{check}");
        assert_eq!(check["record_steps"], check["report_steps"], "{check}");
        assert!(report["history"].as_str().unwrap().starts_with("buildx history agrees: backend: "), "{report}");
        assert!(!err.contains("disagree"), "{err}");
        let text = String::from_utf8_lossy(&must(&["report"], &envs).stdout).to_string();
        assert!(text.contains("\nbuildx history agrees: backend: "), "{text}");
    } else {
        assert_eq!(report["history"], "history not available (buildx < 0.20)");
        assert!(backend.get("history_check").is_none(), "{backend}");
    }
    // The history as JSON, then as a table with a header.
    let listed = must(&["report", "--list", "--json"], &envs);
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("report --list --json is JSON");
    assert_eq!((&listed["schema_version"], &listed["kind"]), (&Value::from(1), &Value::from("list")), "{listed}");
    let lines = listed["builds"].as_array().expect("an array of builds");
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["engine"], *engine, "the history line records the same engine");
    let table = String::from_utf8_lossy(&must(&["report", "--list"], &envs).stdout).to_string();
    assert!(table.lines().next().unwrap().starts_with("id "), "{table}");
    assert_eq!(table.lines().count(), 3, "{table}");
    // Unlike builds: one warning line, a row for the shared target, one for the other.
    must(&["build", "backend", "frontend"], &envs);
    let cmp = must(&["report", "--compare", "last~1", "last"], &envs);
    let (shown, warned) = (String::from_utf8_lossy(&cmp.stdout), String::from_utf8_lossy(&cmp.stderr));
    let warnings: Vec<&str> = warned.lines().filter(|l| l.starts_with("xtask: warning:")).collect();
    assert_eq!(warnings.len(), 1, "{warned}");
    assert!(warnings[0].contains("only after: frontend") && warnings[0].ends_with("(backend)"), "{}", warnings[0]);
    assert!(shown.lines().any(|l| l.starts_with("backend ") && l.contains('s')), "{shown}");
    assert!(shown.contains("only in the after build") && shown.contains("whole build (not alike)"), "{shown}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn n_two_builds_at_once_count_the_steps_a_build_alone_counts() {
    let counts = |report: &Value| -> Vec<(String, u64, u64)> {
        report["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (t["name"].as_str().unwrap().to_string(), t["steps"].as_u64().unwrap(), t["cached"].as_u64().unwrap())
            })
            .collect()
    };
    let copies: Vec<PathBuf> = ["alone", "first", "second"]
        .iter()
        .map(|n| scratch_copy(&format!("at-once-{n}-{}", std::process::id())))
        .collect();
    // Twice alone: the second build finds everything cached, as the two at once then will.
    must(&["build"], &[("XTASK_PROJECT_ROOT", copies[0].to_str().unwrap())]);
    must(&["build"], &[("XTASK_PROJECT_ROOT", copies[0].to_str().unwrap())]);
    let alone = counts(&last_report(&copies[0]));
    assert!(alone.iter().all(|(_, steps, cached)| *steps > 3 && cached == steps), "{alone:?}");
    std::thread::scope(|s| {
        let runs: Vec<_> = copies[1..]
            .iter()
            .map(|dir| s.spawn(move || must(&["build"], &[("XTASK_PROJECT_ROOT", dir.to_str().unwrap())])))
            .collect();
        for run in runs {
            run.join().unwrap();
        }
    });
    for dir in &copies[1..] {
        assert_eq!(counts(&last_report(dir)), alone, "{}", dir.display());
    }
    for dir in copies {
        std::fs::remove_dir_all(dir).unwrap();
    }
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

/// `docker run --rm [--platform P] --entrypoint PROGRAM IMAGE ARGS…`: one of the image's own
/// programs, no shell in between.
fn run_in(image: &str, platform: Option<&str>, program: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new("docker");
    cmd.args(["run", "--rm"]);
    if let Some(p) = platform {
        cmd.args(["--platform", p]);
    }
    cmd.args(["--entrypoint", program, image]).args(args);
    cmd.output().expect("running docker")
}

fn run_ok(image: &str, platform: Option<&str>, program: &str, args: &[&str]) -> String {
    let out = run_in(image, platform, program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} in {image} ({platform:?}) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn q_standins_are_laid_out_like_the_official_images() {
    // A build makes the stand-ins when the official bases cannot be had (and takes seconds when
    // everything is cached); `print` then names what this engine's builds use.
    must(&["build"], &[]);
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    // The stand-ins hold both platforms wherever the engine can (not on the classic store).
    let platforms: &[Option<&str>] =
        if classic_store() { &[None] } else { &[Some("linux/amd64"), Some("linux/arm64")] };
    for (var, image) in resolved_bases() {
        if !image.starts_with("localhost/standin-") {
            // The official image (or a mirror's copy) is used here: there is no stand-in to check.
            // CI must check them, so there this fails rather than skips.
            assert!(!ci, "CI=true: {var} is {image}, not a stand-in, so the stand-ins' layout went untested");
            eprintln!("skipped: {var} is {image}, not a stand-in");
            continue;
        }
        for &platform in platforms {
            let run = |program: &str, args: &[&str]| run_ok(&image, platform, program, args);
            if var == "NODE_IMAGE" {
                // As on Alpine: /bin/sh and the everyday commands are busybox, and there is no bash.
                let commands = ["sh", "ls", "cat", "cp", "env", "id", "grep", "sed", "head", "readlink", "chown"];
                let found = run("which", &commands);
                let paths: Vec<&str> = found.lines().collect();
                assert_eq!(
                    paths.len(),
                    commands.len(),
                    "{image} {platform:?}: all of {commands:?} on the PATH: {found}"
                );
                // busybox's readlink takes one file; its realpath takes several.
                let targets = run("realpath", &paths);
                assert!(
                    targets.lines().count() == commands.len() && targets.lines().all(|t| t == "/bin/busybox"),
                    "{image} {platform:?}: {paths:?} are not all busybox: {targets}"
                );
                assert!(
                    !run_in(&image, platform, "which", &["bash"]).status.success(),
                    "{image} {platform:?}: bash on the PATH"
                );
                assert!(
                    !run_in(&image, platform, "ls", &["/bin/bash"]).status.success(),
                    "{image} {platform:?}: /bin/bash"
                );
                let version = run("node", &["--version"]);
                assert!(version.starts_with("v22."), "{image} {platform:?}: node {version}");
            } else {
                // As in python:3.11-slim: python, python3, pip and pip3 in /usr/local/bin, found
                // first on the PATH, and pip's own files under /usr/local.
                let found = run("which", &["python", "python3", "pip", "pip3"]);
                assert_eq!(
                    found.lines().collect::<Vec<_>>(),
                    ["/usr/local/bin/python", "/usr/local/bin/python3", "/usr/local/bin/pip", "/usr/local/bin/pip3"],
                    "{image} {platform:?}"
                );
                let version = run("python", &["--version"]);
                assert!(version.starts_with("Python 3.11."), "{image} {platform:?}: {version}");
                let pip = run("pip", &["--version"]);
                assert!(
                    pip.contains(" from /usr/local/lib/python3.11/site-packages/pip "),
                    "{image} {platform:?}: {pip}"
                );
            }
        }
        if var == "PYTHON_IMAGE" {
            // `pip install` as a Dockerfile runs it: into the image's own site-packages under
            // /usr/local, with no PEP 668 refusal. The host's CA bundle lets pip through a
            // TLS-intercepting proxy, as the builds' `cacert` secret does.
            let ca = "/etc/ssl/certs/ca-certificates.crt";
            let mount = format!("{ca}:/tmp/host-ca.crt:ro");
            let mut args = vec!["--entrypoint", "sleep"];
            if Path::new(ca).is_file() {
                args.extend(["-v", mount.as_str(), "-e", "PIP_CERT=/tmp/host-ca.crt"]);
            }
            args.extend([image.as_str(), "300"]);
            let c = Container::run("e2e-standin-pip", &args);
            let quiet = ["--no-cache-dir", "--disable-pip-version-check", "--root-user-action=ignore"];
            c.exec(&[&["pip", "install"][..], &quiet, &["six==1.17.0"]].concat());
            let place = c.exec(&["python", "-c", "import six; print(six.__file__)"]);
            assert_eq!(place, "/usr/local/lib/python3.11/site-packages/six.py", "{image}: pip installed into {place}");
        }
    }
}

/// A token no earlier run can have left anywhere: random per process and per call.
fn random_token(what: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(what.as_bytes());
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    let mut h2 = std::collections::hash_map::RandomState::new().build_hasher();
    h2.write_u64(h.finish());
    format!("planted-{:016x}{:016x}", h.finish(), h2.finish())
}

/// The blobs of a local cache folder (an OCI layout) whose bytes, gunzipped when they are gzip,
/// contain `needle`.
fn cache_blobs_holding(cache: &Path, needles: &[String]) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(cache.join("blobs/sha256")) else { return found };
    for blob in entries.flatten() {
        let raw = std::fs::read(blob.path()).unwrap();
        // The bake file exports zstd; gzip blobs come from older exports or layers shared with an image.
        let data = if raw.starts_with(&[0x1f, 0x8b]) {
            Command::new("gzip").args(["-dc", blob.path().to_str().unwrap()]).output().unwrap().stdout
        } else if raw.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            let out =
                Command::new("zstd").args(["-dcq", blob.path().to_str().unwrap()]).output().expect("the zstd CLI");
            assert!(out.status.success(), "zstd -dc {}", blob.path().display());
            out.stdout
        } else {
            raw
        };
        // grep searches hundreds of megabytes for every token at once; a byte-by-byte search in
        // this unoptimised test binary took minutes.
        let scratch = std::env::temp_dir().join(format!("xtask-e2e-blob-{}", std::process::id()));
        std::fs::write(&scratch, &data).unwrap();
        let patterns = scratch.with_extension("tokens");
        std::fs::write(&patterns, needles.join("\n")).unwrap();
        let grep =
            Command::new("grep").args(["-a", "-o", "-F", "-f"]).arg(&patterns).arg(&scratch).output().expect("grep");
        assert!(grep.status.code().is_some_and(|c| c <= 1), "grep failed on {}", blob.path().display());
        for hit in String::from_utf8_lossy(&grep.stdout).lines().collect::<std::collections::BTreeSet<_>>() {
            found.push((blob.path(), hit.to_string()));
        }
        let _ = std::fs::remove_file(&scratch);
        let _ = std::fs::remove_file(&patterns);
    }
    found
}

/// How many blobs a local cache folder holds.
fn cache_blob_count(cache: &Path) -> usize {
    std::fs::read_dir(cache.join("blobs/sha256")).map(|d| d.count()).unwrap_or(0)
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn k_planted_secrets_reach_no_layer_and_no_cache() {
    let dir = scratch_copy("planted-secrets");
    // The secrets a careless checkout holds, at the top of each context and deep inside the
    // folders the images do copy.
    let plant = [
        "backend/.env.local",
        "backend/app/.env.local",
        "backend/app/routes/deeper/.env.production.local",
        "backend/app/.npmrc",
        "backend/secrets.txt",
        "backend/app/secrets.txt",
        "backend/app/certs/server.pem",
        "backend/app/certs/server.key",
        "backend/app/.git/config",
        "frontend/.env.local",
        "frontend/app/.env.local",
        "frontend/app/api/health/.env.production.local",
        "frontend/.npmrc",
        "frontend/lib/.npmrc",
        "frontend/secrets.txt",
        "frontend/app/secrets.txt",
        "frontend/public/tls/server.pem",
        "frontend/lib/keys/signing.key",
        "frontend/app/.git/config",
    ];
    let mut tokens = Vec::new();
    for file in plant {
        let token = random_token(file);
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("TOKEN={token}\n")).unwrap();
        tokens.push(token);
    }
    let tag = |name: &str| format!("contextcleanse-{name}:e2e-secrets");
    let sets = [format!("backend.tags={}", tag("backend")), format!("frontend.tags={}", tag("frontend"))];
    // A local build exports no cache unless asked: ask, so the exported cache can be searched.
    must(
        &["build", "--cache-export", "--set", &sets[0], "--set", &sets[1]],
        &[("XTASK_PROJECT_ROOT", dir.to_str().unwrap())],
    );
    for (name, user) in [("backend", "1000:1000"), ("frontend", "1001:1001")] {
        let image = tag(name);
        let mut files = 0;
        let layers = layer_files(&image, |path, body| {
            files += 1;
            for token in &tokens {
                assert!(
                    !body.windows(token.len()).any(|w| w == token.as_bytes()),
                    "{image} holds a planted secret at {path}"
                );
            }
        });
        assert!(layers >= 3 && files > 100, "walked {files} files in {layers} layers of {image}");
        assert_eq!(docker(&["image", "inspect", "--format", "{{.Config.User}}", &image]), user, "{image} runs as ids");
        let uid = docker(&["run", "--rm", "--network", "none", "--entrypoint", "id", &image, "-u"]);
        assert_eq!(uid, user.split(':').next().unwrap(), "{image}");
        let cache = dir.join("target/buildx-cache").join(name);
        assert!(cache_blob_count(&cache) > 3, "the build exported its cache to {}", cache.display());
        let leaks = cache_blobs_holding(&cache, &tokens);
        assert!(leaks.is_empty(), "planted secrets in the exported cache: {leaks:?}");
        let _ = Command::new("docker").args(["image", "rm", &image]).output();
    }
    // The same build with its mode=max cache exported to the engine's registry: no blob the
    // registry holds for it may carry a token either.
    let registry = registry();
    let repo = |name: &str| format!("e2e-secrets-{name}-{}", std::process::id());
    let mut args = vec!["build".to_string()];
    for name in ["backend", "frontend"] {
        args.extend(["--set".to_string(), format!("{name}.tags={}", tag(name))]);
        args.extend([
            "--set".to_string(),
            format!("{name}.cache-to=type=registry,ref={registry}/{}:buildcache,mode=max", repo(name)),
        ]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    must(&args, &[("XTASK_PROJECT_ROOT", dir.to_str().unwrap())]);
    for name in ["backend", "frontend"] {
        let copy = dir.join("target/registry-cache").join(name);
        let blobs = registry_blobs(&registry, &repo(name), "buildcache", &copy);
        assert!(blobs > 3, "the registry holds the cache of {name} ({blobs} blobs)");
        let leaks = cache_blobs_holding(&copy, &tokens);
        assert!(leaks.is_empty(), "planted secrets in the registry cache of {name}: {leaks:?}");
        let _ = Command::new("docker").args(["image", "rm", &tag(name)]).output();
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// GET on the registry at `addr` (loopback), asking for any kind of manifest.
fn registry_get(addr: &str, path: &str) -> Vec<u8> {
    let s = TcpStream::connect(addr).expect("connecting to the registry");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
                  application/vnd.docker.distribution.manifest.list.v2+json, \
                  application/vnd.docker.distribution.manifest.v2+json";
    let (code, body) = xtask::http::get(s, addr, path, &[("Accept", accept)]).expect("an HTTP response");
    assert_eq!(code, 200, "GET {path}: {}", String::from_utf8_lossy(&body));
    body
}

/// Copies every blob the manifest `repo:reference` reaches into `dir/blobs/sha256/` (the local
/// cache's layout) and returns how many there are.
fn registry_blobs(addr: &str, repo: &str, reference: &str, dir: &Path) -> usize {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let mut todo: Vec<Value> =
        vec![serde_json::from_slice(&registry_get(addr, &format!("/v2/{repo}/manifests/{reference}"))).unwrap()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(doc) = todo.pop() {
        let mut digests = Vec::new();
        collect_digests(&doc, &mut digests);
        for d in digests {
            if !seen.insert(d.clone()) {
                continue;
            }
            let body = registry_get(addr, &format!("/v2/{repo}/blobs/{d}"));
            std::fs::write(dir.join("blobs/sha256").join(d.trim_start_matches("sha256:")), &body).unwrap();
            if let Ok(inner) = serde_json::from_slice::<Value>(&body) {
                todo.push(inner);
            }
        }
    }
    seen.len()
}

/// The digests of every descriptor (an object with a media type, a digest and a size) in `v`; a
/// cache config's records carry digests of cache keys too, which are not blobs.
fn collect_digests(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            let descriptor = m.contains_key("size") && m.contains_key("mediaType");
            if let (true, Some(d)) = (descriptor, m.get("digest").and_then(Value::as_str)) {
                out.push(d.to_string());
            }
            m.values().for_each(|x| collect_digests(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_digests(x, out)),
        _ => {}
    }
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn l_local_cache_drops_the_blob_of_a_deleted_file() {
    let dir = scratch_copy("cache-gc");
    let env = [("XTASK_PROJECT_ROOT", dir.to_str().unwrap())];
    let set = "backend.tags=contextcleanse-backend:e2e-cache-gc";
    let token = random_token("cache-gc");
    let planted = dir.join("backend/app/planted_for_the_test.py");
    std::fs::write(&planted, format!("PLANTED = \"{token}\"\n")).unwrap();
    must(&["backend", "--cache-export", "--set", set], &env);
    let cache = dir.join("target/buildx-cache/backend");
    let holding: Vec<PathBuf> =
        cache_blobs_holding(&cache, std::slice::from_ref(&token)).into_iter().map(|(p, _)| p).collect();
    assert!(!holding.is_empty(), "the planted file's layer is in the exported cache {}", cache.display());
    std::fs::remove_file(&planted).unwrap();
    let out = must(&["backend", "--cache-export", "--set", set], &env);
    for blob in &holding {
        assert!(!blob.exists(), "{} still holds the deleted file", blob.display());
    }
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("xtask: local cache: removed "), "the clean-up says what it freed:\n{said}");
    // What is left is whole: the index still reaches a cache the next build can use.
    assert!(cache_blob_count(&cache) > 3);
    let doctor = must(&["doctor"], &env);
    let line =
        String::from_utf8_lossy(&doctor.stdout).lines().find(|l| l.starts_with("ok   cache ")).map(str::to_string);
    let line = line.expect("doctor has a cache line");
    assert!(line.contains("target/buildx-cache/backend") && !line.contains("unreferenced"), "{line}");
    let _ = Command::new("docker").args(["image", "rm", "contextcleanse-backend:e2e-cache-gc"]).output();
    std::fs::remove_dir_all(dir).unwrap();
}

mod reproducible;
