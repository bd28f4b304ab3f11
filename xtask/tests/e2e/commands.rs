//! The command line under faults and in daily use: bad input, stops by signal, a Dockerfile
//! error, a cache registry that is down, two builds at once, and `status`, `doctor`, `print`,
//! `report` and the README's own bake commands.

use super::*;

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn h_bad_input_gives_one_clear_line_and_a_nonzero_exit() {
    one_line_error(&xtask(&["build", "backnd"], &[]), "unknown service or group `backnd`; valid ones are:");
    one_line_error(&xtask(&["build", "-f../elsewhere.hcl"], &[]), "`build` has no flag `-f../elsewhere.hcl`");
    one_line_error(&xtask(&["build", "--set", "backend.args.X"], &[]), "expected TARGET.KEY=VALUE");
    one_line_error(&xtask(&["build", "--release-version", "1.2"], &[]), "`1.2` is not a semver version");
    one_line_error(&xtask(&["build", "--set", "*.platform=linux/s390x"], &[]), "unknown platform `linux/s390x`");
    // verify checks what it says: no public key is a refusal, not "signature: not checked".
    let image = "127.0.0.1:5999/contextcleanse-backend:0.0.1";
    let no_key = [("COSIGN_PUBLIC_KEY", "")];
    one_line_error(&xtask(&["verify", image], &no_key), "verify needs the public key to check the image's signature");
    one_line_error(
        &xtask(&["verify", "--no-rebuild", image, "--accept-unchecked-signature"], &no_key),
        "verify --no-rebuild checks only the signature, and there is no public key",
    );
    one_line_error(
        &xtask(&["production", "--push", "--registry", "127.0.0.1:5999"], &[]),
        "registry 127.0.0.1:5999 is unreachable",
    );
    let dir = scratch_copy("bad-env");
    std::fs::write(dir.join(".env"), "DOCKER_BUILDKIT=1\nnot a setting\n").unwrap();
    let out = xtask(&["build"], &[("XTASK_PROJECT_ROOT", dir.to_str().unwrap())]);
    one_line_error(&out, ".env:2: cannot parse `not a setting`");
    // A value the parser itself refuses is named with its line and key too.
    std::fs::write(dir.join(".env"), "DOCKER_BUILDKIT=1\n\nREGISTRY=not a host\n").unwrap();
    let out = xtask(&["build"], &[("XTASK_PROJECT_ROOT", dir.to_str().unwrap())]);
    one_line_error(&out, ".env:3: cannot parse `REGISTRY=not a host` (the value of REGISTRY)");
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

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn i_interrupted_build_leaves_a_valid_history() {
    let dir = scratch_copy("interrupt");
    default_images();
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
    let (version, npm) = (product_version(), xtask::images::meta::npm_pin().unwrap());
    assert!(
        text.contains(&format!("export VERSION={version}")) && text.contains(&format!("NPM_VERSION={npm}")),
        "{text}"
    );
    assert!(text.contains("export VERSION_TAGS="), "production is tagged from the release tags:\n{text}");
    // A dev build's plan shows only what that build uses: no release tags, no setting without effect.
    let dev = String::from_utf8_lossy(&must(&["print"], &[]).stdout).to_string();
    for unused in ["VERSION_TAGS", "DOCKER_BUILDKIT", "COMPOSE_DOCKER_CLI_BUILD", "BUILDKIT_PROGRESS="] {
        assert!(!dev.contains(unused), "`print` of a dev build shows {unused}:\n{dev}");
    }
    assert!(dev.contains(&format!("export VERSION={version}")), "{dev}");
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
fn documented_bake_commands() -> Vec<Vec<String>> {
    let doc = std::fs::read_to_string(root().join("docs/images.md")).unwrap();
    let section = doc.split("## Without the xtask").nth(1).expect("docs/images.md has a Without the xtask section");
    let section = section.split("\n#").next().unwrap();
    section
        .lines()
        .filter(|l| l.starts_with("docker buildx bake"))
        .map(|l| l.split("  #").next().unwrap().split_whitespace().map(str::to_string).collect())
        .collect()
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn p_the_documented_bake_commands_ask_for_exactly_the_access_they_show() {
    let commands = documented_bake_commands();
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
    // The images the slow builds start from, once; then each signal stops a build of its own,
    // side by side (most of the time goes on waiting).
    default_images();
    std::thread::scope(|s| {
        for (signal, number) in [("SIGINT", 2), ("SIGTERM", 15), ("SIGHUP", 1)] {
            s.spawn(move || one_signal_stops_a_build(signal, number));
        }
    });
}

/// One signal, sent to a build in a scratch copy while buildx runs: buildx and everything under
/// the xtask stop, the exit code says which signal, and the history and the report name it.
fn one_signal_stops_a_build(signal: &str, number: i32) {
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

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn l_a_dockerfile_parse_error_names_the_file_line_and_target_and_the_other_is_never_ok() {
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
    let envs = [("XTASK_PROJECT_ROOT", dir.to_str().unwrap())];
    // How far the frontend gets before buildx closes its session, and the words it closes it
    // with, vary from run to run: only repetition shows that no variant reads as a success.
    for run in 1..=10 {
        let out = xtask(&["build"], &envs);
        one_line_error(
            &out,
            &format!("failing: backend: backend/Dockerfile:{line}: dockerfile parse error on line {line}"),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("failing: frontend"), "run {run}: the frontend was only cancelled:\n{err}");
        assert!(!err.contains("xtask: warning: the build passed"), "run {run}: no cache warning:\n{err}");
        let report = last_report(&dir);
        assert_eq!(report["status"], "failed", "run {run}");
        assert_eq!(report["failed_first"], "backend", "run {run}");
        assert_eq!(target(&report, "backend")["outcome"], "failed", "run {run}");
        let frontend = target(&report, "frontend");
        assert_eq!(frontend["outcome"], "cancelled", "run {run}: {frontend}");
        let table = err.lines().find(|l| l.starts_with("frontend ")).unwrap_or_default();
        assert!(table.contains("cancelled"), "run {run}: the table's frontend row: {table:?}\n{err}");
        let markdown = String::from_utf8(must(&["report", "--markdown"], &envs).stdout).unwrap();
        let row = markdown.lines().find(|l| l.starts_with("| frontend ")).unwrap_or_default();
        assert!(row.contains("| cancelled |"), "run {run}: {row:?}\n{markdown}");
        let metrics = String::from_utf8(must(&["metrics"], &envs).stdout).unwrap();
        let success = metrics.lines().find(|l| l.starts_with("xtask_target_success") && l.contains("\"frontend\""));
        assert!(success.is_some_and(|l| l.ends_with(" 0")), "run {run}:\n{metrics}");
    }
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
    assert_eq!((&listed["schema_version"], &listed["kind"]), (&Value::from(3), &Value::from("list")), "{listed}");
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
    // Each build counts the steps a build alone counts. The cached counts can differ from the
    // lone build's where the engine ran a step again (it keeps no promise of a cache hit), but
    // a step both builds need is done once: never counted as run by both.
    let reports: Vec<Value> = copies[1..].iter().map(|d| last_report(d)).collect();
    let steps = |r: &Value| -> Vec<(String, u64)> { counts(r).into_iter().map(|(n, s, _)| (n, s)).collect() };
    let alone_steps: Vec<(String, u64)> = alone.iter().map(|(n, s, _)| (n.clone(), *s)).collect();
    for (dir, r) in copies[1..].iter().zip(&reports) {
        assert_eq!(steps(r), alone_steps, "{}", dir.display());
    }
    let ran = |r: &Value| -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for t in r["targets"].as_array().unwrap() {
            for s in t["steps_detail"].as_array().unwrap() {
                let name = s["name"].as_str().unwrap();
                if s["cached"] == false && xtask::report::is_instruction(name) {
                    names.push(name.to_string());
                }
            }
        }
        names
    };
    let (first, second) = (ran(&reports[0]), ran(&reports[1]));
    let twice: Vec<&String> = first.iter().filter(|n| second.contains(n)).collect();
    assert!(twice.is_empty(), "counted as run by both builds: {twice:?}");
    for (r, ran) in reports.iter().zip([&first, &second]) {
        let (steps, cached) = counts(r).iter().fold((0, 0), |(s, c), (_, st, ca)| (s + st, c + ca));
        assert_eq!(steps - cached, ran.len() as u64, "cached counts agree with the steps that ran: {ran:?}");
    }
    for dir in copies {
        std::fs::remove_dir_all(dir).unwrap();
    }
}
