//! Builds and the images they make: a default build that runs healthy as non-root, what each layer holds
//! and weighs, which steps a change re-runs, compose, and a push pulled back by digest (both
//! platforms are in `two_platforms.rs`).

use super::*;

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
    let frontend_port = free_port();
    for (name, image, port, inner, path, uid) in [
        ("backend", "contextcleanse-backend:dev", free_port(), 8000u16, "/health", "1000"),
        ("frontend", "contextcleanse-frontend:dev", frontend_port, 3000, "/api/health", "1001"),
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
        // Probed every second while it starts, so a wait for healthy ends when it answers.
        let probe = docker(&["image", "inspect", "--format", "{{json .Config.Healthcheck}}", image]);
        let probe: Value = serde_json::from_str(&probe).unwrap();
        assert_eq!(probe["StartInterval"].as_u64(), Some(1_000_000_000), "{name}: {probe}");
        let published = docker(&["port", &c.0]);
        assert!(published.lines().all(|l| l.contains("127.0.0.1:")), "published on loopback only: {published}");
        running.push(c);
    }
    let (code, page) = http_get(frontend_port, "/");
    assert_eq!(code, 200);
    assert!(home_page::text(&page).contains(&version), "the home page shows the frontend's health");
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
    let copies = all("[source ");
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
    let out = must(&["production", "--push", "--registry", &registry, "--release-version", "1.2.3"], &[]);
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
