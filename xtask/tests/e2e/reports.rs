//! Reports as data: what real builds write, and every form of `report --json`, match
//! xtask/report.schema.json under a complete validator (Python's jsonschema); `--markdown` is a
//! table; a report that does not match is named with its field while the others are still listed.

use super::*;

/// Runs the jsonschema check on the files: whether all matched, and what it said. The validator
/// lives in the virtualenv `cargo xtask test` prepares.
fn jsonschema(files: &[PathBuf]) -> (bool, String) {
    let python = root().join("target/xtask/venv/bin/python");
    let out = Command::new(&python)
        .arg(root().join("xtask/tests/e2e/check_reports.py"))
        .arg(root().join("xtask/report.schema.json"))
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (`cargo xtask test` prepares it)", python.display()));
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("checked "), "the validator did not run: {said}");
    (out.status.success(), said)
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn every_form_matches_the_schema_and_a_bad_report_is_named() {
    let dir = scratch_copy(&format!("reports-{}", std::process::id()));
    let envs = [("XTASK_PROJECT_ROOT", dir.to_str().unwrap())];
    must(&["backend"], &envs);
    must(&["build", "backend", "frontend"], &envs);
    let json = |args: &[&str]| -> Value {
        serde_json::from_slice(&must(args, &envs).stdout).unwrap_or_else(|e| panic!("{args:?} is not JSON: {e}"))
    };
    let shown = json(&["report", "--json"]);
    let listed = json(&["report", "--list", "--json"]);
    let compared = json(&["report", "--compare", "last~1", "last", "--json"]);
    assert_eq!((listed["kind"].as_str(), listed["builds"].as_array().map(Vec::len)), (Some("list"), Some(2)));
    // A row per target in either build; the one the first build lacks has no before side.
    let rows: Vec<(&str, bool, bool)> = compared["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["before"].is_null(), r["after"].is_null()))
        .collect();
    assert_eq!(rows, [("backend", false, false), ("frontend", true, false)], "{compared}");
    assert_eq!(compared["warnings"].as_array().unwrap().len(), 1, "{compared}");

    // Every report file, the history and the three printed forms, under the complete validator.
    let reports = dir.join("target/xtask/reports");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&reports)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "jsonl"))
        .collect();
    for (name, doc) in [("shown", &shown), ("listed", &listed), ("compared", &compared)] {
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_vec(doc).unwrap()).unwrap();
        files.push(path);
    }
    let (ok, said) = jsonschema(&files);
    assert!(ok, "{said}");
    assert!(said.contains("checked 7 documents"), "2 reports, 2 history lines and 3 forms: {said}");

    // Markdown for a CI job summary: a table with a row per target.
    let md = String::from_utf8_lossy(&must(&["report", "--markdown"], &envs).stdout).to_string();
    assert!(md.starts_with("### Build `") && md.contains("| target | outcome |"), "{md}");
    assert!(md.contains("| backend | ok |") && md.contains("| frontend | ok |"), "{md}");

    // A hand-edited report: named with its field, the others still listed, and not shown.
    let first = listed["builds"][0]["id"].as_str().unwrap().to_string();
    let path = reports.join(format!("{first}.json"));
    let mut edited: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edited["targets"][0]["wall_secs"] = Value::String("fast".into());
    std::fs::write(&path, serde_json::to_vec_pretty(&edited).unwrap()).unwrap();
    let (ok, said) = jsonschema(&[path.clone()]);
    assert!(!ok && said.contains("wall_secs"), "jsonschema agrees the edited report is wrong: {said}");
    let out = must(&["report", "--list"], &envs);
    let (table, warned) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(table.lines().count(), 3, "header and both builds:\n{table}");
    let expected = format!("{first}.json does not match the report schema (version 3) at /targets/0/wall_secs");
    assert!(warned.contains(&expected), "{warned}");
    let listed = json(&["report", "--list", "--json"]);
    assert_eq!(listed["unreadable"][0]["field"], "/targets/0/wall_secs", "{listed}");
    one_line_error(&xtask(&["report", &first], &envs), &expected);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn a_history_line_that_is_not_utf8_is_named_kept_and_the_next_build_adds_to_it() {
    let dir = scratch_copy(&format!("history-bytes-{}", std::process::id()));
    let envs = [("XTASK_PROJECT_ROOT", dir.to_str().unwrap())];
    must(&["backend"], &envs);
    let history = dir.join("target/xtask/reports/history.jsonl");
    let mut before = std::fs::read(&history).unwrap();
    // Latin-1 text, as an editor with the wrong encoding would save it.
    before.extend(b"{\"id\": \"caf\xe9\"}\n");
    std::fs::write(&history, &before).unwrap();
    must(&["backend"], &envs);
    let after = std::fs::read(&history).unwrap();
    assert!(after.starts_with(&before), "the build appended and rewrote nothing before its line");
    let out = must(&["report", "--list"], &envs);
    let (table, warned) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(table.lines().count(), 3, "header and both builds:\n{table}");
    assert!(warned.contains("history.jsonl:2 ") && warned.contains("not UTF-8 (byte 12 of the line)"), "{warned}");
    std::fs::remove_dir_all(dir).unwrap();
}
