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

/// The engines' bridges on this host (containers' veth pairs come and go with other builds).
fn bridges() -> Vec<String> {
    interfaces().into_iter().filter(|i| i.starts_with("xtask") || i == "docker0").collect()
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

    // The second engine builds the same commit from that cache while the first keeps building
    // (warm builds of another copy, one after the other, until the second engine is done).
    let mut on_second: Vec<(&str, &str)> = second_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    on_second.extend(on_first);
    let images = |envs: &[(&str, &str)]| -> String {
        let mut cmd = Command::new("docker");
        cmd.args(["image", "ls", "--quiet"]);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        String::from_utf8_lossy(&cmd.output().unwrap().stdout).trim().to_string()
    };
    assert_eq!(images(&on_second), "", "the second engine starts with an empty store");
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

    // Down stops the second engine only: its bridge goes, the first engine runs on as before.
    drop(guard);
    let now = bridges();
    assert!(!now.contains(&added[0]), "down removed the second engine's bridge {}", added[0]);
    assert!(first_bridges.iter().all(|i| now.contains(i)), "no bridge of the first engine went away: {now:?}");
    assert_eq!(dockerd_pid(&[]), first_pid, "the first engine kept running");
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
