//! The stack and the disk: `up`/`down` on the real engine and compose, a taken port, and `du` and
//! `clean` beside another project's image and build cache.

use super::*;

const PROJECT_LABEL: &str = "label=com.docker.compose.project=contextcleanse";

fn stack_containers() -> String {
    docker(&["ps", "-a", "--filter", PROJECT_LABEL, "--format", "{{.Names}}"])
}

fn stack_networks() -> String {
    docker(&["network", "ls", "--filter", PROJECT_LABEL, "--format", "{{.Name}}"])
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr).lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect()
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn up_brings_both_services_healthy_and_down_leaves_no_container_or_network() {
    let started = Instant::now();
    let out = must(&["up"], &[]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("http://127.0.0.1:8000/") && said.contains("http://127.0.0.1:3000/"), "{said}");
    let health = docker(&["ps", "--filter", PROJECT_LABEL, "--format", "{{.Names}} {{.Status}}"]);
    assert_eq!(health.lines().filter(|l| l.contains("(healthy)")).count(), 2, "{health}");
    // The images carry the build's metadata: the backend reports this commit.
    let backend = super::health(8000, "/health");
    assert!(backend["revision"].as_str().unwrap_or_default().starts_with(&git_head()), "{backend}");
    // The running stack under abuse (see hardening.rs), and compose's memory limits.
    super::hardening::backend_holds_up(8000);
    super::hardening::page_headers_hold(3000);
    for service in ["backend", "frontend"] {
        let limit = super::hardening::memory_limit(&format!("contextcleanse-{service}-1"));
        assert!(limit > 0 && limit <= 512 << 20, "{service}: memory limit {limit}");
    }
    let ps = must(&["ps"], &[]);
    assert!(String::from_utf8_lossy(&ps.stdout).contains("contextcleanse-frontend-1"));
    // A second `up` with the stack running reuses it: its own ports are not "taken".
    must(&["up"], &[]);
    must(&["down"], &[]);
    assert_eq!(stack_containers(), "", "down left containers");
    assert_eq!(stack_networks(), "", "down left a network");
    assert!(docker_ok(&["image", "inspect", "contextcleanse-backend:dev"]), "down keeps the images");
    eprintln!("up, up again and down took {:.1}s", started.elapsed().as_secs_f64());
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn up_refuses_a_taken_port_in_one_line_and_starts_nothing() {
    let listener = std::net::TcpListener::bind("127.0.0.1:8000").expect("127.0.0.1:8000 is free for the test");
    let out = xtask(&["up"], &[]);
    assert!(!out.status.success());
    let lines = stderr_lines(&out);
    let error: Vec<&String> = lines.iter().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(error.len(), 1, "{lines:?}");
    let pid = std::process::id();
    assert!(error[0].contains("port 127.0.0.1:8000") && error[0].contains(&format!("(pid {pid})")), "{}", error[0]);
    assert_eq!(stack_containers(), "", "nothing started");
    assert_eq!(stack_networks(), "", "no network made");
    drop(listener);
}

/// A build of another project: an image, a step and a cache mount of its own.
fn foreign_build(token: &str) -> PathBuf {
    let dir = std::env::temp_dir().join("xtask-e2e-foreign");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let base = docker(&["images", "--format", "{{.Repository}}:{{.Tag}}", "localhost/standin-node"]);
    let base = base.lines().next().expect("the node stand-in exists (made by the build)").to_string();
    let dockerfile =
        format!("FROM {base}\nRUN --mount=type=cache,id={token},target=/c echo {token} > /c/x && echo {token} > /f\n");
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    docker(&["buildx", "build", "--load", "--tag", "foreignproj:e2e", dir.to_str().unwrap()]);
    dir
}

/// The ids of the engine's build cache records whose description holds `needle`.
fn records_with(needle: &str) -> Vec<String> {
    let text = docker(&["buildx", "du", "--verbose"]);
    text.split("\n\n")
        .filter(|block| block.contains(needle))
        .filter_map(|block| block.lines().find_map(|l| l.strip_prefix("ID:")).map(|id| id.trim().to_string()))
        .collect()
}

/// The count of this project's step-layer records in `du`'s output.
fn layer_records(du: &str) -> usize {
    let line = du.lines().find(|l| l.trim_start().starts_with("step layers")).expect("du shows the step layers");
    line.split_whitespace().nth(2).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{line}"))
}

fn du() -> String {
    String::from_utf8_lossy(&must(&["du"], &[]).stdout).to_string()
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn clean_all_leaves_other_projects_alone_then_build_works_and_du_shows_the_difference() {
    let started = Instant::now();
    must(&["build"], &[]);
    let token = format!("foreign-{}", std::process::id());
    let dir = foreign_build(&token);
    let foreign = records_with(&token);
    assert_eq!(foreign.len(), 2, "the foreign step and its cache mount: {foreign:?}");
    let before = du();
    assert!(before.contains("contextcleanse-backend:dev") && !before.contains("foreignproj"), "{before}");

    // While a build runs, clean removes nothing and says so.
    let scratch = scratch_copy("clean-lock");
    default_images();
    let mut build = slow_build_in(&scratch);
    let refused = xtask(&["clean", "--all"], &[]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("a build is running"), "{}", tail(&refused, 5));
    Command::new("kill").args(["-INT", &build.id().to_string()]).status().unwrap();
    let _ = build.wait();
    std::fs::remove_dir_all(scratch).unwrap();
    assert!(docker_ok(&["image", "inspect", "contextcleanse-backend:dev"]), "the refused clean removed nothing");

    let dry = must(&["clean", "--all", "--dry-run"], &[]);
    assert!(String::from_utf8_lossy(&dry.stdout).contains("nothing removed"));
    assert!(docker_ok(&["image", "inspect", "contextcleanse-backend:dev"]), "a dry run removes nothing");

    let cleaned = must(&["clean", "--all"], &[]);
    let said = String::from_utf8_lossy(&cleaned.stdout).to_string();
    assert!(said.contains("freed"), "{said}");
    assert!(!docker_ok(&["image", "inspect", "contextcleanse-backend:dev"]), "the project's image went");
    assert!(docker_ok(&["image", "inspect", "foreignproj:e2e"]), "the foreign image stays");
    assert_eq!(records_with(&token), foreign, "the foreign records stay");
    let after = du();
    assert!(!after.contains("contextcleanse-backend:dev"), "{after}");
    // What stays of the project's is only what clean named: records a step of something else
    // (here, other tests' changed Dockerfiles) still builds on.
    let kept: usize =
        said.lines().find_map(|l| l.strip_prefix("kept ")?.split_once(" record(s)")?.0.parse().ok()).unwrap_or(0);
    assert!(layer_records(&before) >= kept && layer_records(&after) == kept, "before:\n{before}\nafter:\n{after}");
    let again = must(&["clean", "--all"], &[]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing of this project's to clean"));

    must(&["build"], &[]);
    assert!(docker_ok(&["image", "inspect", "contextcleanse-backend:dev"]), "build works after clean --all");
    eprintln!("du before:\n{before}\ndu after clean:\n{after}");

    docker(&["image", "rm", "foreignproj:e2e"]);
    for id in foreign {
        docker(&["builder", "prune", "--force", "--all", "--filter", &format!("id={id}")]);
    }
    std::fs::remove_dir_all(dir).unwrap();
    eprintln!("took {:.1}s", started.elapsed().as_secs_f64());
}

/// Every record id a checkout's builds kept (`target/xtask/cache-records.json`, any engine).
fn kept_ids(checkout: &Path) -> std::collections::BTreeSet<String> {
    let file = checkout.join("target/xtask/cache-records.json");
    let kept: std::collections::BTreeMap<String, Vec<String>> =
        serde_json::from_slice(&std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))).unwrap();
    kept.into_values().flatten().collect()
}

/// The ids of every build cache record the engine lists.
fn engine_record_ids() -> std::collections::BTreeSet<String> {
    let listed = docker(&["system", "df", "-v", "--format", "{{json .BuildCache}}"]);
    let records: Vec<Value> = serde_json::from_str(&listed).unwrap_or_default();
    records.iter().filter_map(|r| r["ID"].as_str().map(str::to_string)).collect()
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn clean_in_another_project_with_the_same_dockerfiles_leaves_this_ones_records() {
    // The first project: a source file of its own, so its build makes records of its own.
    let first = scratch_copy("owner-first");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let planted = ("backend/app/owned_by_first.py", format!("MARK = {now}\n"));
    std::fs::write(first.join(planted.0), &planted.1).unwrap();
    let tag = |p: &str| format!("backend.tags=contextcleanse-backend:e2e-{p}");
    must(&["backend", "--set", &tag("first")], &[("XTASK_PROJECT_ROOT", first.to_str().unwrap())]);
    let firsts = kept_ids(&first);
    assert!(!firsts.is_empty(), "the first project's build kept the records it made");
    // Another project: the same files and Dockerfiles, its own cache mount namespace.
    let second = scratch_copy("owner-second");
    std::fs::write(second.join(planted.0), &planted.1).unwrap();
    let env = std::fs::read_to_string(second.join(".env")).unwrap();
    let env = env.replace("BUILDKIT_CACHE_MOUNT_NS=contextcleanse", "BUILDKIT_CACHE_MOUNT_NS=otherproject");
    std::fs::write(second.join(".env"), env).unwrap();
    let on_second = [("XTASK_PROJECT_ROOT", second.to_str().unwrap())];
    must(&["backend", "--set", &tag("second")], &on_second);
    let seconds = kept_ids(&second);
    assert!(firsts.is_disjoint(&seconds), "each project kept only what its own build made");
    must(&["clean", "--cache", "--yes"], &on_second);
    let listed = engine_record_ids();
    let short = |id: &String| id.chars().take(12).collect::<String>();
    let missing: Vec<&String> = firsts.iter().filter(|id| !listed.iter().any(|l| l.starts_with(&short(id)))).collect();
    assert!(missing.is_empty(), "clean in the other project removed the first one's records {missing:?}");
    let left: Vec<&String> = seconds.iter().filter(|id| listed.iter().any(|l| l.starts_with(&short(id)))).collect();
    assert!(left.len() < seconds.len(), "clean removed records the second project made: {left:?} of {seconds:?}");
    for p in ["first", "second"] {
        let _ = Command::new("docker").args(["image", "rm", &format!("contextcleanse-backend:e2e-{p}")]).output();
    }
    for d in [first, second] {
        std::fs::remove_dir_all(d).unwrap();
    }
}
