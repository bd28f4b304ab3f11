//! End-to-end tests on the real engine, real buildx, real compose and a real registry. They are
//! `#[ignore]`d for a plain `cargo test`; `cargo xtask test` runs them (`--ignored`, one at a
//! time, in name order) after making sure an engine answers. Nothing here is mocked.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

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
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connecting to the container's published port");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    let body = if text.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(&body) } else { body };
    (code, body)
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
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
    let reports = dir.join("target/xtask/reports");
    let history = std::fs::read_to_string(reports.join("history.jsonl")).expect("history.jsonl exists");
    let last: Value = serde_json::from_str(history.lines().last().unwrap()).unwrap();
    let id = last["id"].as_str().unwrap();
    serde_json::from_str(&std::fs::read_to_string(reports.join(format!("{id}.json"))).unwrap()).unwrap()
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
    let _ = std::fs::remove_dir_all(&dir);
    let out =
        Command::new("git").args(["ls-files", "-co", "--exclude-standard", "-z"]).current_dir(root()).output().unwrap();
    for file in String::from_utf8_lossy(&out.stdout).split('\0').filter(|f| !f.is_empty()) {
        let from = root().join(file);
        if from.is_file() {
            let to = dir.join(file);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&from, &to).unwrap();
        }
    }
    dir
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn a_default_build_runs_healthy_non_root_with_its_commit() {
    let out = must(&["build"], &[]);
    let shown = String::from_utf8_lossy(&out.stderr);
    assert!(shown.contains("cached") && shown.contains("report: "), "the build prints its table and report path");
    let report = last_report(&root());
    assert_eq!(report["status"], "ok");
    let head = git_head();
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
        assert_eq!(h["version"], "0.4.0");
        assert!(h["revision"].as_str().unwrap().starts_with(&head), "{h} should name commit {head}");
        assert!(h["built"].as_str().unwrap().ends_with('Z'), "{h}");
        assert_eq!(c.exec(&["id", "-u"]), uid, "{name} runs as its own user");
        assert!(label(image, "org.opencontainers.image.revision").starts_with(&head));
        assert_eq!(label(image, "org.opencontainers.image.version"), "0.4.0");
        assert_eq!(label(image, "org.opencontainers.image.created"), h["built"].as_str().unwrap());
        assert_eq!(label(image, "org.opencontainers.image.title"), format!("contextcleanse-{name}"));
        let published = docker(&["port", &c.0]);
        assert!(published.lines().all(|l| l.contains("127.0.0.1:")), "published on loopback only: {published}");
        running.push(c);
    }
    let (code, page) = http_get(18101, "/");
    assert_eq!(code, 200);
    assert!(page.contains("0.4.0"), "the home page shows the frontend's health");
}

/// Walks a tar stream (as `docker export` writes it): names and contents of regular files.
fn tar_entries(mut data: &[u8], mut visit: impl FnMut(&str, &[u8])) {
    while data.len() >= 512 {
        let header = &data[..512];
        if header.iter().all(|b| *b == 0) {
            break;
        }
        let field =
            |a: usize, b: usize| String::from_utf8_lossy(&header[a..b]).trim_end_matches('\0').trim().to_string();
        let name = format!(
            "{}{}",
            {
                let p = field(345, 500);
                if p.is_empty() {
                    p
                } else {
                    p + "/"
                }
            },
            field(0, 100)
        );
        let size = usize::from_str_radix(&field(124, 136), 8).unwrap_or(0);
        let kind = header[156];
        let body = &data[512..(512 + size).min(data.len())];
        if kind == b'0' || kind == 0 {
            visit(&name, body);
        }
        data = &data[(512 + size.div_ceil(512) * 512).min(data.len())..];
    }
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
    let report = last_report(&dir);
    assert_eq!(executed(&report, "backend", "[deps"), Vec::<String>::new(), "dependency steps re-ran");
    let copies = executed(&report, "backend", "COPY app/");
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
    must(&["production", "--push", "--registry", "127.0.0.1:5000", "--version", "1.2.3"], &[]);
    let report = last_report(&root());
    for name in ["backend", "frontend"] {
        let t = target(&report, &format!("{name}-production"));
        let digest = t["digest"].as_str().expect("the metadata file gave a digest");
        let repo = format!("127.0.0.1:5000/contextcleanse-{name}");
        for tag in ["1.2.3", "1.2", "1", "latest"] {
            let raw = docker(&["buildx", "imagetools", "inspect", "--raw", &format!("{repo}:{tag}")]);
            assert!(raw.contains("manifests"), "{repo}:{tag} is an index (image + provenance)");
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
    assert!(status.contains("containerd image store"), "{status}");
    assert!(status.contains("linux/amd64") && status.contains("linux/arm64"), "{status}");
    assert!(status.contains("127.0.0.1:5000 answers"), "{status}");
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
    assert!(text.contains("export VERSION=0.4.0") && text.contains("NPM_VERSION=11.5.2"), "{text}");
    must(&["build", "--dry-run"], &[]);
    assert_eq!(images(), images_before, "print and --dry-run built nothing");
    for group in ["default", "development", "production", "multiplatform"] {
        // The bake file works without the xtask.
        let json =
            docker(&["buildx", "bake", "--file", root().join("docker-bake.hcl").to_str().unwrap(), "--print", group]);
        assert!(json.contains("\"target\""), "bake --print {group}: {json}");
    }
    let cmp = must(&["report", "--compare", "last~1", "last"], &[]);
    assert!(String::from_utf8_lossy(&cmp.stdout).contains("whole build"));
    assert!(docker_ok(&["buildx", "version"]));
}

/// `engine up` for a private engine in a throwaway folder, with no engine reachable otherwise.
fn engine_up_elsewhere(dir: &Path, mirror: &str, as_nobody: bool) -> Output {
    let exe = env!("CARGO_BIN_EXE_xtask");
    let mut cmd = if as_nobody {
        let mut c = Command::new("setpriv");
        c.args(["--reuid", "65534", "--regid", "65534", "--clear-groups", exe]);
        c
    } else {
        Command::new(exe)
    };
    cmd.args(["engine", "up"])
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
    one_line_error(&out, "downloading package docker.io from Debian trixie (rerun to resume)");
    assert!(!dir.join("prefix").exists() && !dir.join("prefix.partial").exists(), "nothing half-installed");
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
    assert_eq!(said.matches("started the private engine").count(), 1, "{said}");
    assert_eq!(said.matches("already up").count(), 1, "{said}");
    let pid_after = private_dockerd_pid().expect("the private engine is up again");
    assert_ne!(pid_before, pid_after);
    std::fs::remove_dir_all(dir).unwrap();
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
        let data = if raw.starts_with(&[0x1f, 0x8b]) {
            Command::new("gzip").args(["-dc", blob.path().to_str().unwrap()]).output().unwrap().stdout
        } else {
            raw
        };
        for needle in needles {
            if data.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push((blob.path(), needle.clone()));
            }
        }
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
    must(&["build", "--set", &sets[0], "--set", &sets[1]], &[("XTASK_PROJECT_ROOT", dir.to_str().unwrap())]);
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
    std::fs::remove_dir_all(dir).unwrap();
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
    must(&["backend", "--set", set], &env);
    let cache = dir.join("target/buildx-cache/backend");
    let holding: Vec<PathBuf> =
        cache_blobs_holding(&cache, std::slice::from_ref(&token)).into_iter().map(|(p, _)| p).collect();
    assert!(!holding.is_empty(), "the planted file's layer is in the exported cache {}", cache.display());
    std::fs::remove_file(&planted).unwrap();
    let out = must(&["backend", "--set", set], &env);
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
