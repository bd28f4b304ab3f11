//! The resolved bake definition kept between builds. `docker buildx bake --print` costs a docker
//! CLI start and a plug-in start (about a quarter of a second on two cores), and its answer
//! depends only on what the key below holds: the bake file, `.env`, the variables and names
//! given, the environment bake reads, and the docker CLI and buildx plug-in binaries. A build with
//! all of those unchanged reuses the answer.
//!
//! The kept answer is parsed like a fresh one, and one that does not parse is asked for again.

use std::path::Path;

use anyhow::Result;

use super::bake::{self, Definition};
use crate::util::runner::Cmd;

/// Resolves the names as `bake::resolve` does, from the kept answer when its key still holds.
pub(crate) fn resolve(
    docker: &Cmd,
    vars: &[(String, String)],
    names: &[String],
    root: &Path,
    dir: &Path,
) -> Result<Definition> {
    let hcl = std::fs::read(root.join("docker-bake.hcl")).unwrap_or_default();
    let key = key(&hcl, docker, vars, names, root);
    // One answer kept per set of names, so `build` and `production` do not push out each other's.
    let prefix = format!("bake-print-{:08x}-", crate::util::hash::fnv1a_32(names.join(" ").bytes()));
    let file = dir.join(format!("{prefix}{key:016x}.json"));
    if let Some(def) = std::fs::read_to_string(&file).ok().and_then(|t| Definition::parse(&t).ok()) {
        return Ok(def);
    }
    let json = bake::resolve_json(docker, vars, names)?;
    let def = Definition::parse(&json)?;
    // A definition that cannot be kept is still used: keeping it is only a saving.
    if std::fs::create_dir_all(dir).is_ok() {
        forget_others(dir, &prefix, &file);
        let _ = crate::util::paths::write_atomic(&file, json.as_bytes());
    }
    Ok(def)
}

/// What the answer of `bake --print` depends on, hashed.
fn key(hcl: &[u8], docker: &Cmd, vars: &[(String, String)], names: &[String], root: &Path) -> u64 {
    let mut text = Vec::new();
    let mut add = |part: &[u8]| {
        text.extend_from_slice(part);
        text.push(0);
    };
    add(hcl);
    add(&std::fs::read(root.join(".env")).unwrap_or_default());
    add(root.display().to_string().as_bytes());
    for (k, v) in docker.env.iter().chain(vars) {
        add(format!("{k}={v}").as_bytes());
    }
    for n in names {
        add(n.as_bytes());
    }
    for (k, v) in environment(&String::from_utf8_lossy(hcl)) {
        add(format!("{k}={v}").as_bytes());
    }
    if let Ok(cli) = which::which(&docker.program) {
        add(identity(&cli).as_bytes());
    }
    add(crate::engine::buildx_identity(&docker.env).as_bytes());
    crate::util::hash::fnv1a(text)
}

/// The environment bake reads: a variable of the same name as one the bake file declares, and
/// the docker CLI's and buildx's own settings.
fn environment(hcl: &str) -> Vec<(String, String)> {
    let declared: Vec<&str> = hcl.split("variable \"").skip(1).filter_map(|rest| rest.split('"').next()).collect();
    let mut vars: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| {
            declared.contains(&k.as_str())
                || k.starts_with("BUILDX_")
                || k.starts_with("DOCKER_")
                || k.starts_with("BAKE_")
        })
        .collect();
    vars.sort();
    vars
}

/// A binary's path, size and modification time: a new version is a new file.
fn identity(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => format!("{}:{}:{:?}", path.display(), m.len(), m.modified().ok()),
        Err(_) => format!("{}:none", path.display()),
    }
}

/// Only the newest answer for these names is kept: others are from an older bake file or setting.
fn forget_others(dir: &Path, prefix: &str, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with(prefix) && name.ends_with(".json") && path != keep {
            let _ = std::fs::remove_file(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_changes_with_each_thing_the_answer_depends_on() {
        let root = crate::util::paths::project_root();
        let docker = Cmd::new("docker").env("DOCKER_HOST", "unix:///a.sock");
        let vars = vec![("VERSION".to_string(), "0.4.0".to_string())];
        let names = vec!["backend".to_string()];
        let base = key(b"hcl", &docker, &vars, &names, &root);
        assert_eq!(base, key(b"hcl", &docker, &vars, &names, &root), "the same inputs give the same key");
        assert_ne!(base, key(b"hcl2", &docker, &vars, &names, &root), "the bake file");
        let other_engine = Cmd::new("docker").env("DOCKER_HOST", "unix:///b.sock");
        assert_ne!(base, key(b"hcl", &other_engine, &vars, &names, &root), "the engine");
        let other_vars = vec![("VERSION".to_string(), "0.4.1".to_string())];
        assert_ne!(base, key(b"hcl", &docker, &other_vars, &names, &root), "a variable");
        assert_ne!(base, key(b"hcl", &docker, &vars, &["frontend".to_string()], &root), "the names");
        assert_ne!(base, key(b"hcl", &docker, &vars, &names, Path::new("/elsewhere")), "the checkout");
    }

    #[test]
    fn the_environment_read_is_the_declared_variables_and_the_tools_own() {
        let declared = environment("variable \"PATH\" {\n  default = \"\"\n}\n");
        assert!(declared.iter().any(|(k, _)| k == "PATH"), "a variable the bake file declares");
        assert!(environment("").iter().all(|(k, _)| k != "PATH"), "not one it does not");
    }
}
