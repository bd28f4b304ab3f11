//! `cargo xtask audit`: the locked Python and npm dependencies against the advisory sources this
//! machine reaches. Python: the package index's JSON API, whose answer for a project lists the
//! advisories of its latest release. npm: the registry's bulk advisory endpoint. A package no
//! source could answer for is "not checked", with the reason, and the audit then fails as
//! incomplete: it never calls a package clean that it could not look up.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::Value;

use crate::util::paths;
use crate::util::runner::{self, Cmd};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) enum Ecosystem {
    PyPI,
    #[serde(rename = "npm")]
    Npm,
}

/// What the sources said of one locked package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub(crate) enum Finding {
    /// A source answered for this version and listed no advisory.
    Clean,
    /// The advisories' ids.
    Advisories {
        ids: Vec<String>,
    },
    NotChecked {
        reason: String,
    },
}

#[derive(Debug, Serialize)]
pub(crate) struct Entry {
    pub(crate) ecosystem: Ecosystem,
    pub(crate) name: String,
    pub(crate) version: String,
    #[serde(flatten)]
    pub(crate) finding: Finding,
}

/// The `name==version` pins of a requirements file (hash lines and comments left out).
pub(crate) fn python_pins(requirements: &str) -> Vec<(String, String)> {
    requirements
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().trim_end_matches('\\').trim())
        .filter_map(|l| l.split_once("=="))
        .map(|(n, v)| (n.trim().to_lowercase(), v.trim().to_string()))
        .collect()
}

/// Every package a package-lock.json (version 2 or 3) installs, by name and version.
pub(crate) fn npm_packages(lock: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = lock["packages"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(path, p)| {
            let name = path.rsplit_once("node_modules/")?.1;
            Some((name.to_string(), p["version"].as_str()?.to_string()))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The finding for `version` from the index's JSON answer for its project: its advisories
/// (withdrawn ones left out) describe the latest release only.
pub(crate) fn pypi_finding(version: &str, project: &Value) -> Finding {
    let latest = project["info"]["version"].as_str().unwrap_or("");
    if latest != version {
        return Finding::NotChecked {
            reason: format!("the index lists advisories for the latest release only ({latest})"),
        };
    }
    let ids: Vec<String> = project["vulnerabilities"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["withdrawn"].is_null())
        .filter_map(|v| v["id"].as_str().map(str::to_string))
        .collect();
    if ids.is_empty() {
        Finding::Clean
    } else {
        Finding::Advisories { ids }
    }
}

/// The findings for npm packages from the bulk endpoint's answer (`{name: [advisory, ...]}`
/// for the versions asked about), or the reason none could be had.
pub(crate) fn npm_findings(packages: &[(String, String)], status: u16, body: &str) -> Vec<Finding> {
    let answer: Option<Value> = (status == 200).then(|| serde_json::from_str(body).ok()).flatten();
    packages
        .iter()
        .map(|(name, _)| match &answer {
            Some(a) => {
                let ids: Vec<String> = a[name.as_str()]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x["id"].as_u64().map(|i| i.to_string()).or(x["url"].as_str().map(str::to_string)))
                    .collect();
                if ids.is_empty() {
                    Finding::Clean
                } else {
                    Finding::Advisories { ids }
                }
            }
            None if status == 200 => {
                Finding::NotChecked { reason: "the advisory endpoint's answer is not JSON".into() }
            }
            None if status == 0 => {
                Finding::NotChecked { reason: "the registry's advisory endpoint did not answer".into() }
            }
            None => Finding::NotChecked { reason: format!("the registry answered {status} to its advisory endpoint") },
        })
        .collect()
}

/// The table, and the error that ends the audit when anything was found or left unchecked.
pub(crate) fn verdict(entries: &[Entry]) -> (String, Option<String>) {
    let width = entries.iter().map(|e| e.name.len()).max().unwrap_or(7).max(7);
    let mut table = format!("{:<9} {:<width$} {:<12} result\n", "ecosystem", "package", "version");
    for e in entries {
        let result = match &e.finding {
            Finding::Clean => "no known advisory".to_string(),
            Finding::Advisories { ids } => format!("ADVISORIES: {}", ids.join(", ")),
            Finding::NotChecked { reason } => format!("not checked: {reason}"),
        };
        let eco = match e.ecosystem {
            Ecosystem::PyPI => "PyPI",
            Ecosystem::Npm => "npm",
        };
        table.push_str(&format!("{eco:<9} {:<width$} {:<12} {result}\n", e.name, e.version));
    }
    let count = |f: fn(&Finding) -> bool| entries.iter().filter(|e| f(&e.finding)).count();
    let (found, unchecked) =
        (count(|f| matches!(f, Finding::Advisories { .. })), count(|f| matches!(f, Finding::NotChecked { .. })));
    let clean = entries.len() - found - unchecked;
    table.push_str(&format!(
        "{} packages: {clean} without a known advisory, {found} with advisories, {unchecked} not checked\n",
        entries.len()
    ));
    let error = if found > 0 {
        Some(format!("{found} locked package(s) have advisories: update them (see the table)"))
    } else if unchecked > 0 {
        Some(format!(
            "audit incomplete: {unchecked} of {} packages could not be checked against any reachable advisory source, so nothing is said of them",
            entries.len()
        ))
    } else {
        None
    };
    (table, error)
}

/// GETs or POSTs through curl: the status (0 when nothing answered) and the body.
fn fetch(url: &str, post: Option<&Path>) -> (u16, String) {
    let mut cmd = Cmd::new("curl").args(["-sS", "--max-time", "30", "-w", "\n%{http_code}"]);
    if let Some(body) = post {
        cmd = cmd.args(["-X", "POST", "-H", "content-type: application/json", "--data-binary"]);
        cmd = cmd.arg(format!("@{}", body.display()));
    }
    let out = runner::read(&cmd.arg(url)).unwrap_or_default();
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// The index pip installs from (its configuration, else pip's own default), as the base of the
/// JSON API: `https://HOST/simple` answers JSON under `https://HOST/pypi/NAME/json`.
fn pypi_json_base() -> Result<String> {
    let pip = |args: &[&str]| runner::read(&Cmd::new("python3").args(args.iter().copied()));
    let simple = pip(&["-m", "pip", "config", "get", "global.index-url"])
        .or_else(|_| pip(&["-c", "from pip._internal.models.index import PyPI; print(PyPI.simple_url)"]))
        .context("asking pip for its package index (is python3 with pip installed?)")?;
    Ok(simple.trim_end_matches('/').trim_end_matches("/simple").to_string())
}

pub fn run(json: bool) -> Result<()> {
    let root = paths::project_root();
    let read = |p: &str| std::fs::read_to_string(root.join(p)).with_context(|| format!("reading {p}"));
    let pins = python_pins(&read("backend/requirements.txt")?);
    let lock: Value =
        serde_json::from_str(&read("frontend/package-lock.json")?).context("parsing package-lock.json")?;
    let npm = npm_packages(&lock);
    let mut entries = Vec::new();
    let base = pypi_json_base();
    for (name, version) in pins {
        let finding = match &base {
            Err(e) => Finding::NotChecked { reason: format!("{e:#}") },
            Ok(base) => match fetch(&format!("{base}/pypi/{name}/json"), None) {
                (200, body) => match serde_json::from_str::<Value>(&body) {
                    Ok(project) => pypi_finding(&version, &project),
                    Err(_) => Finding::NotChecked { reason: "the index's JSON API answered with no JSON".into() },
                },
                (0, _) => Finding::NotChecked { reason: "the index's JSON API did not answer".into() },
                (status, _) => Finding::NotChecked { reason: format!("the index's JSON API answered {status}") },
            },
        };
        entries.push(Entry { ecosystem: Ecosystem::PyPI, name, version, finding });
    }
    let registry = runner::read(&Cmd::new("npm").args(["config", "get", "registry"]).dir(root.join("frontend")));
    let (status, body) = match &registry {
        Ok(r) => {
            let mut ask: serde_json::Map<String, Value> = serde_json::Map::new();
            for (name, version) in &npm {
                ask.entry(name.clone())
                    .or_insert_with(|| Value::Array(vec![]))
                    .as_array_mut()
                    .unwrap()
                    .push(version.clone().into());
            }
            let file = paths::xtask_dir().join(format!("audit-npm-{}.json", std::process::id()));
            paths::write_atomic(&file, serde_json::to_string(&ask)?.as_bytes())?;
            let answer = fetch(&format!("{}/-/npm/v1/security/advisories/bulk", r.trim_end_matches('/')), Some(&file));
            let _ = std::fs::remove_file(&file);
            answer
        }
        Err(_) => (0, String::new()),
    };
    for ((name, version), finding) in npm.iter().zip(npm_findings(&npm, status, &body)) {
        let finding = match (&registry, finding) {
            (Err(e), _) => Finding::NotChecked { reason: format!("no npm registry: {e:#}") },
            (Ok(_), f) => f,
        };
        entries.push(Entry { ecosystem: Ecosystem::Npm, name: name.clone(), version: version.clone(), finding });
    }
    let (table, error) = verdict(&entries);
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
    } else {
        print!("{table}");
    }
    match error {
        Some(e) => bail!(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_come_from_the_requirement_lines_only() {
        let text = "#\n# pip-compile\nfastapi==0.165.0 \\\n    --hash=sha256:ab \\\n    --hash=sha256:cd\n    # via -r requirements.in\nTyping-Extensions==4.16.0 \\\n";
        assert_eq!(
            python_pins(text),
            [("fastapi".into(), "0.165.0".into()), ("typing-extensions".into(), "4.16.0".into())]
        );
    }

    #[test]
    fn every_locked_npm_package_once_by_its_own_name() {
        let lock = serde_json::json!({"packages": {
            "": {"name": "app", "version": "1.0.0"},
            "node_modules/next": {"version": "16.4.6"},
            "node_modules/@img/colour": {"version": "1.1.0"},
            "node_modules/next/node_modules/postcss": {"version": "8.4.31"}
        }});
        assert_eq!(
            npm_packages(&lock),
            [
                ("@img/colour".into(), "1.1.0".into()),
                ("next".into(), "16.4.6".into()),
                ("postcss".into(), "8.4.31".into())
            ]
        );
    }

    #[test]
    fn the_index_speaks_for_its_latest_release_only() {
        let project = serde_json::json!({"info": {"version": "2.0"}, "vulnerabilities": [
            {"id": "PYSEC-1", "withdrawn": null}, {"id": "GHSA-x", "withdrawn": "2025-01-01"}
        ]});
        assert_eq!(pypi_finding("2.0", &project), Finding::Advisories { ids: vec!["PYSEC-1".into()] });
        let clean = serde_json::json!({"info": {"version": "2.0"}, "vulnerabilities": []});
        assert_eq!(pypi_finding("2.0", &clean), Finding::Clean);
        match pypi_finding("1.9", &project) {
            Finding::NotChecked { reason } => assert!(reason.contains("latest release only (2.0)"), "{reason}"),
            other => panic!("an older pin is not checked, not {other:?}"),
        }
    }

    #[test]
    fn a_refused_advisory_endpoint_leaves_every_npm_package_unchecked() {
        let pkgs = vec![("next".to_string(), "16.4.6".to_string()), ("react".to_string(), "19.3.1".to_string())];
        let refused = npm_findings(&pkgs, 405, "");
        assert!(refused.iter().all(|f| matches!(f, Finding::NotChecked { reason } if reason.contains("405"))));
        let answered = npm_findings(&pkgs, 200, r#"{"next": [{"id": 1099, "title": "x"}]}"#);
        assert_eq!(answered, [Finding::Advisories { ids: vec!["1099".into()] }, Finding::Clean]);
    }

    #[test]
    fn the_verdict_fails_on_advisories_and_on_anything_unchecked() {
        let e = |name: &str, finding: Finding| Entry {
            ecosystem: Ecosystem::PyPI,
            name: name.into(),
            version: "1".into(),
            finding,
        };
        let (table, error) = verdict(&[e("a", Finding::Clean)]);
        assert!(error.is_none() && table.contains("1 packages: 1 without a known advisory"), "{table}");
        let (_, error) = verdict(&[e("a", Finding::Clean), e("b", Finding::NotChecked { reason: "405".into() })]);
        assert!(error.unwrap().starts_with("audit incomplete: 1 of 2 packages"));
        let (table, error) = verdict(&[
            e("a", Finding::Advisories { ids: vec!["PYSEC-1".into()] }),
            e("b", Finding::NotChecked { reason: "405".into() }),
        ]);
        assert!(error.unwrap().contains("have advisories") && table.contains("ADVISORIES: PYSEC-1"), "{table}");
    }
}
