//! Why each step ran, on the real engine: each kind of change made in a scratch copy names
//! exactly its cause, in the report's JSON, the end-of-build table and `report --why`.

use super::*;

/// Unique text: the engine's cache is content-addressed, and an earlier run's change would come
/// back from it.
fn mark() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

fn append(path: &Path, text: &str) {
    xtask::commands::bench::scratch::append(path, text).unwrap_or_else(|e| panic!("{e:#}"));
}

/// The root cause of each step of `name` that ran, as (step, cause) from the report's JSON.
fn causes(report: &Value, name: &str) -> Vec<(String, Value)> {
    let t = target(report, name);
    t["causes"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let mut cause = &c["cause"];
            while cause["kind"] == "upstream" {
                cause = &cause["cause"];
            }
            (c["step"].as_str().unwrap().to_string(), cause.clone())
        })
        .collect()
}

/// Every instruction that ran has a cause, and every cause is of a step that ran.
fn each_ran_step_has_a_cause(report: &Value, name: &str) {
    let ran: Vec<String> =
        executed(report, name, "] ").into_iter().filter(|s| xtask::report::is_instruction(s)).collect();
    let named: Vec<String> = causes(report, name).into_iter().map(|(s, _)| s).collect();
    assert_eq!(named, ran, "{name}: a cause per step that ran");
}

fn stdout(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn why_a_source_only_change_names_the_changed_file() {
    let dir = scratch_copy("why-source");
    let env = [("XTASK_PROJECT_ROOT", dir.to_str().unwrap())];
    must(&["backend"], &env);
    append(&dir.join("backend/app/main.py"), &format!("\n# a source-only change {}\n", mark()));
    let out = must(&["backend"], &env);
    let report = last_report(&dir);
    each_ran_step_has_a_cause(&report, "backend");
    let found = causes(&report, "backend");
    assert!(!found.is_empty(), "the changed source ran a step");
    for (step, cause) in &found {
        assert_eq!(cause["kind"], "files", "{step}: {cause}");
        assert_eq!(cause["paths"], serde_json::json!(["app/main.py"]), "{step}: {cause}");
    }
    assert!(stdout(&out).contains("why backend: "), "{}", stdout(&out));
    assert!(stdout(&out).contains("context file changed: app/main.py"), "{}", stdout(&out));
    let listed = stdout(&must(&["report", "--why", "backend"], &env));
    // A one-target build's steps carry no target in their names: `[source 2/2] RUN ...`.
    assert!(listed.contains("[source ") && listed.contains("context file changed: app/main.py"), "{listed}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn why_a_dependency_manifest_change_names_requirements_txt() {
    let dir = scratch_copy("why-manifest");
    let env = [("XTASK_PROJECT_ROOT", dir.to_str().unwrap())];
    must(&["backend"], &env);
    append(&dir.join("backend/requirements.txt"), &format!("# a manifest change {}\n", mark()));
    must(&["backend"], &env);
    let report = last_report(&dir);
    each_ran_step_has_a_cause(&report, "backend");
    let found = causes(&report, "backend");
    assert!(found.iter().any(|(s, _)| s.starts_with("[requirements ")), "{found:?}");
    for (step, cause) in &found {
        assert_eq!(
            (&cause["kind"], &cause["paths"]),
            (&"files".into(), &serde_json::json!(["requirements.txt"])),
            "{step}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn why_a_metadata_only_change_runs_no_step_and_names_no_cause() {
    let dir = scratch_copy("why-metadata");
    let env = [("XTASK_PROJECT_ROOT", dir.to_str().unwrap())];
    must(&["build"], &env);
    let out = must(&["build"], &[env[0], ("SOURCE_DATE_EPOCH", "1700000000")]);
    let report = last_report(&dir);
    for name in ["backend", "frontend"] {
        assert_eq!(executed(&report, name, "] RUN "), Vec::<String>::new(), "{name}: a RUN step ran");
        assert_eq!(causes(&report, name), Vec::new(), "{name}: no step ran, so no cause");
    }
    assert!(!stdout(&out).contains("why backend") && !stdout(&out).contains("why frontend"), "{}", stdout(&out));
    let listed = stdout(&must(&["report", "--why"], &env));
    assert!(listed.contains("backend: every step came from cache"), "{listed}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn why_no_cache_names_the_flag() {
    let dir = scratch_copy("why-no-cache");
    let env = [("XTASK_PROJECT_ROOT", dir.to_str().unwrap())];
    must(&["backend"], &env);
    let out = must(&["backend", "--no-cache"], &env);
    let report = last_report(&dir);
    each_ran_step_has_a_cause(&report, "backend");
    let found = causes(&report, "backend");
    assert!(found.len() >= 4, "every step ran: {found:?}");
    assert!(found.iter().all(|(_, c)| c["kind"] == "no_cache"), "{found:?}");
    assert!(stdout(&out).contains("steps ran: --no-cache"), "{}", stdout(&out));
    std::fs::remove_dir_all(dir).unwrap();
}

/// The engine's build cache records whose description holds `text`. Another checkout's build or
/// clean can remove a snapshot while the engine lists them ("snapshot ... does not exist"): the
/// listing is asked for again then.
fn records_with(text: &str) -> Vec<String> {
    let args = ["system", "df", "-v", "--format", "{{json .BuildCache}}"];
    let listed = (0..3)
        .find_map(|_| {
            let out = Command::new("docker").args(args).output().expect("running docker");
            out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .unwrap_or_else(|| docker(&args));
    let records: Vec<Value> = serde_json::from_str(&listed).unwrap_or_default();
    records
        .iter()
        .filter(|r| r["Description"].as_str().is_some_and(|d| d.contains(text)))
        .map(|r| r["ID"].as_str().unwrap().to_string())
        .collect()
}

/// The engine is shared with other checkouts: only the one record this test made (its step's
/// command holds a unique mark) is pruned, by its id, so no other build loses its cache. The prune
/// goes through the engine's API, as `clean` prunes, so the engine records it as an event (and
/// BuildKit then runs more of the build again than the one step: nothing those steps read changed).
#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn why_a_pruned_step_names_the_dropped_cache() {
    let dir = scratch_copy("why-pruned");
    let env = [("XTASK_PROJECT_ROOT", dir.to_str().unwrap())];
    let marker = format!("why-pruned-{}", mark());
    // Above the build metadata's ARG lines: a RUN after them sees BUILD_DATE, new on every build.
    let dockerfile = dir.join("backend/Dockerfile");
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    let at = text.find("\nHEALTHCHECK ").expect("the backend's Dockerfile has a HEALTHCHECK");
    let text = format!("{}\nRUN echo {marker} > /tmp/why-marker\n{}", &text[..at], &text[at..]);
    std::fs::write(&dockerfile, text).unwrap();
    must(&["backend"], &env);
    let ours = records_with(&marker);
    assert_eq!(ours.len(), 1, "one record holds the mark: {ours:?}");
    let socket = std::env::var("DOCKER_HOST").unwrap().trim_start_matches("unix://").to_string();
    let filters = format!("%7B%22id%22%3A%5B%22{}%22%5D%7D", ours[0]);
    let pruned =
        xtask::engine::api::request(Path::new(&socket), "POST", &format!("/build/prune?all=1&filters={filters}"));
    assert_eq!(pruned.as_ref().map(|(c, _)| *c), Some(200), "{pruned:?}");
    assert_eq!(records_with(&marker), Vec::<String>::new(), "the record was pruned");
    let out = must(&["backend"], &env);
    let report = last_report(&dir);
    each_ran_step_has_a_cause(&report, "backend");
    let found = causes(&report, "backend");
    let marked = found.iter().find(|(s, _)| s.contains(&marker));
    assert!(marked.is_some_and(|(_, c)| c["kind"] == "cache_dropped"), "the pruned step ran: {found:?}");
    // Nothing changed, so no step gets a change as its cause (one whose name shows an argument's
    // value rather than the Dockerfile's text is not placed, and is unknown).
    assert!(found.iter().all(|(_, c)| c["kind"] == "cache_dropped" || c["kind"] == "unknown"), "{found:?}");
    assert!(stdout(&out).contains("the engine no longer held this step's cache"), "{}", stdout(&out));
    let prunes = target(&report, "backend")["cache_prunes"].clone();
    assert!(
        prunes.as_array().is_some_and(|p| p.iter().any(|p| p.as_str().unwrap().starts_with("pruned at "))),
        "{prunes}"
    );
    let texts: Vec<&str> = target(&report, "backend")["causes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["text"].as_str().unwrap().contains("no longer held"))
        .filter_map(|c| c["text"].as_str())
        .collect();
    assert!(
        !texts.is_empty() && texts.iter().all(|t| t.contains("the engine's build cache was pruned at")),
        "{texts:?}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Builds `tag` from `base` with one extra file holding `text`: a new digest under the same name.
fn base_copy(base: &str, tag: &str, text: &str) {
    let dir = std::env::temp_dir().join(format!("xtask-e2e-why-base-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), format!("FROM {base}\nRUN echo {text} > /why-extra\n")).unwrap();
    docker(&["buildx", "build", "--load", "--tag", tag, dir.to_str().unwrap()]);
    std::fs::remove_dir_all(dir).unwrap();
}

/// The backend's `app` stage starts from a copy of its base made for this test alone (so no other
/// checkout's image changes), which is then made again with another extra file.
#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn why_a_new_base_digest_names_old_and_new() {
    let dir = scratch_copy("why-base");
    let env = [("XTASK_PROJECT_ROOT", dir.to_str().unwrap())];
    must(&["backend"], &env);
    let first = last_report(&dir);
    let from = target(&first, "backend")["steps_detail"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|s| s["name"].as_str().unwrap().split_once("] FROM ").map(|(_, image)| image.to_string()))
        .expect("a FROM step names the base");
    let tag = format!("localhost/why-base-{}:1", mark());
    // Unique contents: the engine would serve the same step of an earlier run from its cache.
    let unique = mark();
    base_copy(&from, &tag, &format!("one-{unique}"));
    let dockerfile = dir.join("backend/Dockerfile");
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    let text = text.replace("FROM ${PYTHON_IMAGE} AS app", &format!("FROM {tag} AS app"));
    std::fs::write(&dockerfile, text).unwrap();
    must(&["backend"], &env);
    base_copy(&from, &tag, &format!("two-{unique}"));
    let out = must(&["backend"], &env);
    let report = last_report(&dir);
    each_ran_step_has_a_cause(&report, "backend");
    let found = causes(&report, "backend");
    assert!(!found.is_empty(), "the new base ran the app stage");
    for (step, cause) in &found {
        assert_eq!(cause["kind"], "base", "{step}: {cause}");
        let (old, new) = (cause["old"].as_str().unwrap(), cause["new"].as_str().unwrap());
        assert!(old.starts_with(&format!("{tag}@sha256:")) && new.starts_with(&format!("{tag}@sha256:")), "{cause}");
        assert_ne!(old, new);
    }
    assert!(stdout(&out).contains(&format!("base image changed: {tag}@sha256:")), "{}", stdout(&out));
    docker(&["image", "rm", &tag]);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Ten builds, the source changed in every third: the trend names the source step's hit rate and
/// the HTML report's chart has a bar per build, as headless Chromium renders it.
#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn why_trend_and_chart_over_ten_builds() {
    let dir = scratch_copy("why-trend");
    let env = [("XTASK_PROJECT_ROOT", dir.to_str().unwrap())];
    for n in 0..10 {
        if n % 3 == 2 {
            append(&dir.join("backend/app/main.py"), &format!("\n# build {n} of the trend test {}\n", mark()));
        }
        must(&["backend"], &env);
    }
    let trend = stdout(&must(&["report", "--trend", "--last", "10"], &env));
    assert!(trend.contains("trend over the last 10 builds that passed"), "{trend}");
    // The source step ran in builds 3, 6 and 9 at least (its input changed); on a shared engine it
    // may run in others too (a base made again by another checkout, a cache dropped).
    let source = trend.lines().find(|l| l.contains("[source] RUN")).unwrap_or_else(|| panic!("{trend}"));
    let cached: u32 = source.split_whitespace().nth(1).unwrap().trim_end_matches('%').parse().unwrap();
    assert!(cached <= 70, "source step from cache in at most 7 of 10 builds: {source}");
    let last = xtask::report::last_saved(&xtask::util::paths::reports_dir_in(&dir)).unwrap();
    let page = last.with_extension("html");
    let dom = super::home_page::browse(&format!("file://{}", page.display()), &["--dump-dom"]);
    let chart = dom.split("<svg class=\"chart\"").nth(1).unwrap_or_else(|| panic!("no chart in the page: {dom}"));
    let bars = chart.split("</svg>").next().unwrap().matches("<g>").count();
    assert_eq!(bars, 10, "a bar per build");
    assert!(dom.contains("build 10: "), "each bar names its build");
    let shot = xtask::util::paths::checkout_target().join("xtask/e2e/why-chart.png");
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    let flag = format!("--screenshot={}", shot.display());
    super::home_page::browse(&format!("file://{}", page.display()), &[&flag, "--window-size=1200,900"]);
    assert!(std::fs::metadata(&shot).unwrap().len() > 1000, "a screenshot of the report for CI to keep");
    std::fs::remove_dir_all(dir).unwrap();
}
