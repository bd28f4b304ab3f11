//! A second private engine with an empty store, beside the first, builds the same commit from
//! the first engine's registry cache; engines that would collide are refused.

use super::*;

/// The folder the private engines live in, as the xtask finds it.
fn engine_dir() -> PathBuf {
    std::env::var_os("XTASK_ENGINE_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target/engine"))
}

/// The `export K=V` lines `engine up` and `engine env` print, as variables for a command.
fn exports(out: &Output) -> Vec<(String, String)> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

/// Stops the second engine when the test ends, pass or fail (never the first one).
struct SecondEngine;

impl Drop for SecondEngine {
    fn drop(&mut self) {
        let _ = xtask(&["engine", "down", "--name", "second"], &[]);
    }
}

/// The dockerd pid `engine status` names.
fn dockerd_pid(envs: &[(&str, &str)]) -> String {
    let status = String::from_utf8_lossy(&must(&["engine", "status"], envs).stdout).to_string();
    status.split("dockerd pid ").nth(1).unwrap_or("").chars().take_while(char::is_ascii_digit).collect()
}

/// Steps and cached steps of a report, over all its targets.
fn cached_share(report: &Value) -> (u64, u64) {
    report["targets"].as_array().unwrap().iter().fold((0, 0), |(steps, cached), t| {
        (steps + t["steps"].as_u64().unwrap(), cached + t["cached"].as_u64().unwrap())
    })
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn a_second_engine_builds_from_the_first_ones_registry_cache() {
    let started = Instant::now();
    let first_status = String::from_utf8_lossy(&must(&["engine", "status"], &[]).stdout).to_string();
    if !first_status.contains("private current engine") {
        assert!(std::env::var("CI").is_err(), "CI runs this on the private current engine");
        eprintln!("not the private current engine: no second engine is started beside it");
        return;
    }
    let first_pid = dockerd_pid(&[]);

    // Collisions are refused before anything is installed, and the first engine stays as it is.
    let elsewhere = std::env::temp_dir().join(format!("xtask-e2e-collide-{}", std::process::id()));
    let out = xtask(&["engine", "up", "--channel", "current"], &[("XTASK_ENGINE_DIR", elsewhere.to_str().unwrap())]);
    one_line_error(&out, &format!("registry port: {} is held by the running engine `current`", registry()));
    assert!(!elsewhere.join("current/prefix").exists(), "nothing installed for a refused engine");
    std::fs::remove_dir_all(&elsewhere).unwrap();

    // An empty store: what an earlier run left in the second engine's folder goes first.
    let _ = xtask(&["engine", "down", "--name", "second"], &[]);
    let data = engine_dir().join("second/data");
    if data.is_file() {
        std::fs::remove_file(&data).unwrap();
    } else if data.exists() {
        std::fs::remove_dir_all(&data).unwrap();
    }
    let first_bridges = bridges();

    // A start that fails after the bridge is made (here dockerd's data root cannot be created)
    // names the cause and leaves no bridge, QEMU entry or process behind.
    let binfmt = || names_in("/proc/sys/fs/binfmt_misc");
    let binfmt_before = binfmt();
    std::fs::create_dir_all(data.parent().unwrap()).unwrap();
    std::fs::write(&data, "not a folder").unwrap();
    let out = xtask(&["engine", "up", "--name", "second"], &[]);
    one_line_error(&out, &format!("creating the engine's data root {}", data.display()));
    assert_eq!(bridges(), first_bridges, "a failed start leaves no bridge behind");
    assert_eq!(binfmt(), binfmt_before, "a failed start leaves the QEMU entries as they were");
    let status = xtask(&["engine", "status", "--name", "second"], &[]);
    assert!(!status.status.success(), "nothing of the second engine answers:\n{}", tail(&status, 5));
    std::fs::remove_file(&data).unwrap();
    let guard = SecondEngine;
    let up = must(&["engine", "up", "--name", "second"], &[]);
    let second_env = exports(&up);
    assert_eq!(second_env.len(), 2, "up prints DOCKER_HOST and DOCKER_CONFIG");
    let same_name = xtask(&["engine", "up", "--name", "second", "--channel", "floor"], &[]);
    one_line_error(&same_name, "the engine `second` was made as `current`, not `floor`");
    let second_status =
        String::from_utf8_lossy(&must(&["engine", "status", "--name", "second"], &[]).stdout).to_string();
    assert!(second_status.contains("private second engine"), "{second_status}");
    let second_registry = second_status.lines().find(|l| l.starts_with("registry")).unwrap().to_string();
    assert!(!second_registry.contains(&registry()), "the second engine has a registry of its own: {second_registry}");
    let added: Vec<String> = bridges().into_iter().filter(|i| !first_bridges.contains(i)).collect();
    assert_eq!(added.len(), 1, "the second engine brings one bridge of its own: {added:?}");

    // The first engine builds both images and exports their cache to its registry; a path of
    // this test's own keeps other builds' caches on the same registry out of the way.
    let cache = format!("{}/e2e-second-engine", registry());
    let dir = scratch_copy("second-engine");
    let project = dir.to_str().unwrap().to_string();
    // A scratch copy has no .git: the commit's time, given as SOURCE_DATE_EPOCH, dates both builds.
    let out = Command::new("git").args(["log", "-1", "--format=%ct"]).current_dir(root()).output().unwrap();
    let epoch = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let on_first =
        [("XTASK_PROJECT_ROOT", project.as_str()), ("REGISTRY", cache.as_str()), ("SOURCE_DATE_EPOCH", epoch.as_str())];
    must(&["build"], &on_first);
    let first = last_report(&dir);
    let standins = foreign_image_under_each_standin_tag(&cache);

    // The second engine builds the same commit from that cache while the first keeps building
    // (warm builds of another copy, one after the other, until the second engine is done).
    let mut on_second: Vec<(&str, &str)> = second_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    on_second.extend(on_first);
    assert_eq!(
        docker_with(&on_second, &["image", "ls", "--quiet"]),
        "",
        "the second engine starts with an empty store"
    );
    let other = scratch_copy("second-engine-first-builds");
    let other_root = other.to_str().unwrap().to_string();
    let second_took = Instant::now();
    let done = std::sync::atomic::AtomicBool::new(false);
    let first_builds = std::thread::scope(|s| {
        let builds_on_first = s.spawn(|| {
            let mut builds = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                must(&["build", "backend"], &[("XTASK_PROJECT_ROOT", other_root.as_str())]);
                builds += 1;
            }
            builds
        });
        let out = xtask(&["build"], &on_second);
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(out.status.success(), "the second engine's build failed:\n{}", tail(&out, 40));
        builds_on_first.join().unwrap()
    });
    let second_took = second_took.elapsed();
    assert!(first_builds >= 1, "the first engine built while the second one did");
    let second = last_report(&dir);
    assert_eq!(second["engine"]["private"], "second", "{}", second["engine"]);
    for (local, digest) in &standins {
        let id = docker_with(&on_second, &["image", "inspect", "--format", "{{.Id}}", local]);
        assert_eq!(&id, digest, "the second engine holds {local} as recorded, not what its tag names now");
    }
    let (steps, cached) = cached_share(&second);
    assert!(cached * 10 >= steps * 9, "{cached} of {steps} steps came from the registry cache (at least 90%)");

    // A cache registry that does not answer costs the second engine one warning line, no failure.
    let mut down: Vec<(&str, &str)> = second_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    down.extend([("XTASK_PROJECT_ROOT", project.as_str()), ("REGISTRY", "127.0.0.1:5999")]);
    let out = must(&["build"], &down);
    let err = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("xtask: warning:")).collect();
    assert_eq!(warnings.len(), 1, "one warning line:\n{err}");
    assert!(warnings[0].contains("cache") && warnings[0].contains("127.0.0.1:5999"), "{}", warnings[0]);

    // The first engine writes the registry cache again; then a file changes, and the second
    // engine's build of it names that file, found against the build that wrote the cache it read
    // (newer than the second engine's own last build).
    must(&["build", "backend"], &on_first);
    let writer = last_report(&dir);
    assert!(target(&writer, "backend")["cache_written"].as_object().is_some_and(|m| !m.is_empty()), "{writer}");
    let main = dir.join("backend/app/main.py");
    let mut text = std::fs::read_to_string(&main).unwrap();
    text.push_str(&format!("\n# changed for the second engine at {:?}\n", std::time::SystemTime::now()));
    std::fs::write(&main, text).unwrap();
    must(&["build", "backend"], &on_second);
    let changed = target(&last_report(&dir), "backend").clone();
    let against = changed["compared_with"].as_str().unwrap_or_default().to_string();
    let expected = format!("build {} on current, which wrote the registry cache", writer["id"].as_str().unwrap());
    assert!(against.starts_with(&expected), "compared with `{against}`, not `{expected} ...`");
    let causes: Vec<&str> = changed["causes"].as_array().unwrap().iter().filter_map(|c| c["text"].as_str()).collect();
    assert!(!causes.is_empty() && causes.iter().all(|c| c.contains("app/main.py")), "{causes:?}");

    // Down stops the second engine only: its bridge goes, the first engine runs on as before.
    drop(guard);
    let now = bridges();
    assert!(!now.contains(&added[0]), "down removed the second engine's bridge {}", added[0]);
    assert!(first_bridges.iter().all(|i| now.contains(i)), "no bridge of the first engine went away: {now:?}");
    assert_eq!(dockerd_pid(&[]), first_pid, "the first engine kept running");

    // A port that answers but is not the engine's registry is refused in one line naming its
    // holder, and nothing of the engine is left behind.
    let port: u16 = second_registry
        .split_whitespace()
        .find_map(|w| w.strip_prefix("127.0.0.1:")?.parse().ok())
        .unwrap_or_else(|| panic!("no port in `{second_registry}`"));
    let holder = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let out = xtask(&["engine", "up", "--name", "second"], &[]);
    one_line_error(&out, &format!("127.0.0.1:{port}, the second engine's registry port, is held by"));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains(&format!("(pid {})", std::process::id())), "the holder is named: {said}");
    assert_eq!(bridges(), now, "a refused start leaves no bridge behind");
    drop(holder);
    // Its store is of no use to a later test, and holds the stand-ins and both images.
    std::fs::remove_dir_all(&data).unwrap();
    eprintln!(
        "second engine: {cached} of {steps} steps cached, its build {:.1}s while the first built {first_builds} time(s); test {:.0}s",
        second_took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    // Same commit, same image: the digests agree across engines.
    for t in ["backend", "frontend"] {
        let (a, b) = (&target(&first, t)["digest"], &target(&second, t)["digest"]);
        assert!(a.is_string() && a == b, "{t}: first engine {a}, second engine {b}");
    }
    for d in [dir, other] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// `docker` with the variables of another engine.
fn docker_with(envs: &[(&str, &str)], args: &[&str]) -> String {
    let out = Command::new("docker").args(args).envs(envs.iter().copied()).output().expect("running docker");
    assert!(out.status.success(), "docker {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// One request to the first engine's registry: its status and body.
fn registry_request(method: &str, path: &str) -> (u16, String) {
    let stream = TcpStream::connect(registry()).expect("connecting to the registry");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let accept = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, \
                  application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
    let (code, body) =
        xtask::util::http::request(stream, method, &registry(), path, &[("Accept", accept)]).unwrap_or_default();
    (code, String::from_utf8_lossy(&body).to_string())
}

/// Any local process can push to the registry. For each stand-in the first engine pushed under
/// `cache` (and recorded), this checks that the registry refuses to delete it, then pushes an
/// image of another content under its tag. Returns each stand-in's local name and recorded digest.
fn foreign_image_under_each_standin_tag(cache: &str) -> Vec<(String, String)> {
    let file = engine_dir().join("standin-digests.json");
    let recorded: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(&file).expect("the recorded stand-in digests")).unwrap();
    let prefix = format!("{cache}/");
    let ours: Vec<(&String, &String)> = recorded.iter().filter(|(k, _)| k.starts_with(&prefix)).collect();
    assert_eq!(ours.len(), 2, "both stand-ins pushed under {cache} and recorded: {recorded:?}");
    let foreign = std::env::temp_dir().join(format!("xtask-e2e-foreign-{}", std::process::id()));
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("Dockerfile"), "FROM scratch\nCOPY marker /marker\n").unwrap();
    std::fs::write(foreign.join("marker"), "not a stand-in\n").unwrap();
    let mut standins = Vec::new();
    for (remote, digest) in ours {
        let (repo, _tag) = remote.strip_prefix(&format!("{}/", registry())).unwrap().rsplit_once(':').unwrap();
        let (code, body) = registry_request("DELETE", &format!("/v2/{repo}/manifests/{digest}"));
        assert_eq!(code, 405, "the registry refuses a delete: {body}");
        assert_eq!(
            registry_request("GET", &format!("/v2/{repo}/manifests/{digest}")).0,
            200,
            "{remote} is still there"
        );
        let output = format!("type=image,name={remote},push=true");
        docker(&["buildx", "build", "--provenance=false", "--output", &output, foreign.to_str().unwrap()]);
        docker(&["image", "rm", remote]);
        let local = format!("localhost/{}", remote.strip_prefix(&prefix).unwrap());
        standins.push((local, digest.clone()));
    }
    std::fs::remove_dir_all(&foreign).unwrap();
    standins
}
