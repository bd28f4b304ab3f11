//! The bake file, as buildx resolves it (`docker buildx bake --print`), and the bake command that
//! builds a group or some targets.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Deserializer};

use crate::util::paths;
use crate::util::runner::{self, Cmd};

/// What `docker buildx bake --print` prints.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Definition {
    #[serde(default)]
    pub(crate) group: BTreeMap<String, Group>,
    #[serde(default)]
    pub(crate) target: BTreeMap<String, Target>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Group {
    #[serde(default)]
    pub(crate) targets: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Target {
    pub(crate) context: Option<String>,
    pub(crate) dockerfile: Option<String>,
    pub(crate) target: Option<String>,
    #[serde(default)]
    pub(crate) platforms: Vec<String>,
    #[serde(default)]
    pub(crate) tags: Vec<String>,
    #[serde(default)]
    pub(crate) args: BTreeMap<String, String>,
    /// Before buildx 0.19 these lists hold CSV strings (`type=local,dest=x`); from 0.19 objects.
    /// Both read as key/value maps.
    #[serde(default, deserialize_with = "entries")]
    pub(crate) output: Vec<BTreeMap<String, String>>,
    #[serde(default, rename = "cache-from", deserialize_with = "entries")]
    pub(crate) cache_from: Vec<BTreeMap<String, String>>,
    #[serde(default, rename = "cache-to", deserialize_with = "entries")]
    pub(crate) cache_to: Vec<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "entries")]
    pub(crate) attest: Vec<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "entries")]
    pub(crate) secret: Vec<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Entry {
    Csv(String),
    Object(BTreeMap<String, serde_json::Value>),
}

fn entries<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<BTreeMap<String, String>>, D::Error> {
    let raw = Vec::<Entry>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|e| match e {
            Entry::Csv(s) => parse_csv(&s),
            Entry::Object(m) => {
                m.into_iter().map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_string))).collect()
            }
        })
        .collect())
}

/// `type=local,dest=x` as a map; a value may be double-quoted to hold a comma.
pub(crate) fn parse_csv(s: &str) -> BTreeMap<String, String> {
    let mut fields = Vec::new();
    let (mut cur, mut quoted) = (String::new(), false);
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    fields.push(cur);
    fields
        .into_iter()
        .filter(|f| !f.is_empty())
        .map(|f| match f.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.to_string()),
            None => (f.trim().to_string(), String::new()),
        })
        .collect()
}

impl Definition {
    pub(crate) fn parse(json: &str) -> Result<Definition> {
        serde_json::from_str(json).context("reading the JSON of `docker buildx bake --print`")
    }

    /// Every group and target name, for error messages.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.group.keys().chain(self.target.keys()).cloned().collect();
        names.sort();
        names.dedup();
        names
    }

    /// Checks that every name is a group or target of the bake file.
    pub(crate) fn check_names(&self, names: &[String]) -> Result<()> {
        check_known(names, &self.names())
    }
}

fn check_known(names: &[String], known: &[String]) -> Result<()> {
    match names.iter().find(|n| !known.contains(n)) {
        Some(name) => bail!("unknown service or group `{name}`; valid ones are: {}", known.join(", ")),
        None => Ok(()),
    }
}

/// The default of `variable "NAME"` in the bake file's text: the bake file states the official
/// base images and the npm pin, and the xtask and the tidy test read them from it.
pub fn variable_default(hcl: &str, name: &str) -> Option<String> {
    let block = &hcl[hcl.find(&format!("variable \"{name}\""))?..];
    let block = &block[..block.find('}')?];
    let line = block.lines().find(|l| l.trim_start().starts_with("default"))?;
    line.split('"').nth(1).map(str::to_string)
}

/// The bake file's variable defaults, read once: the facts the xtask takes from it (the base
/// images, the source URL, the SBOM generator).
pub(crate) struct Defaults {
    path: std::path::PathBuf,
    hcl: String,
}

impl Defaults {
    pub(crate) fn read(root: &std::path::Path) -> Result<Defaults> {
        let path = root.join("docker-bake.hcl");
        let hcl = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Defaults { path, hcl })
    }

    /// The variable's default, when the file has the variable.
    pub(crate) fn get(&self, var: &str) -> Option<String> {
        variable_default(&self.hcl, var)
    }

    /// The variable's default, which the file must have.
    pub(crate) fn require(&self, var: &str) -> Result<String> {
        self.get(var).with_context(|| format!("{} has no default for variable {var}", self.path.display()))
    }

    /// The names of the file's `target "NAME"` blocks (its text, read without buildx: the names a
    /// request may use are known before any engine answers).
    pub(crate) fn targets(&self) -> Vec<String> {
        self.blocks(&["target"])
    }

    /// Refuses a name that no `target` or `group` block of the bake file declares, before any
    /// command carries it (bake would read a name it does not know as a file or a flag's value).
    pub(crate) fn check_names(&self, names: &[String]) -> Result<()> {
        let mut declared: Vec<String> =
            self.blocks(&["target", "group"]).into_iter().filter(|name| !name.starts_with('_')).collect();
        declared.sort();
        check_known(names, &declared)
    }

    /// The names of the file's blocks of the given kinds (`target "NAME" {`), in file order.
    fn blocks(&self, kinds: &[&str]) -> Vec<String> {
        self.hcl
            .lines()
            .filter_map(|l| kinds.iter().find_map(|k| l.strip_prefix(k)?.strip_prefix(" \"")))
            .filter_map(|rest| rest.split_once('"').map(|(name, _)| name.to_string()))
            .collect()
    }

    /// The official base images, in the order of `standin::BASES`.
    pub(crate) fn base_images(&self) -> Result<Vec<String>> {
        crate::images::standin::BASES.iter().map(|b| self.require(b.var)).collect()
    }
}

/// Resolves the bake file with the given variables. `names` empty means the default group.
pub(crate) fn print(docker: &Cmd, vars: &[(String, String)], names: &[String]) -> Result<Definition> {
    let cmd = print_cmd(docker, vars, names);
    let json = runner::read(&cmd).context("resolving docker-bake.hcl")?;
    Definition::parse(&json)
}

pub(crate) fn print_cmd(docker: &Cmd, vars: &[(String, String)], names: &[String]) -> Cmd {
    docker
        .clone()
        .envs(vars)
        .dir(paths::project_root())
        .args(["buildx", "bake", "--file", "docker-bake.hcl", "--print"])
        .names(names)
}

/// The whole graph: every group and target (the bake file's `all` group names every group).
pub(crate) fn graph(docker: &Cmd, vars: &[(String, String)]) -> Result<Definition> {
    print(docker, vars, &["all".to_string()])
}

/// Resolves the given groups or targets as JSON. An unknown name is reported with the valid ones,
/// read from the whole graph (only then, to keep a normal build to one `bake --print`).
pub(crate) fn resolve_json(docker: &Cmd, vars: &[(String, String)], names: &[String]) -> Result<String> {
    match runner::read(&print_cmd(docker, vars, names)).context("resolving docker-bake.hcl") {
        Ok(json) => Ok(json),
        Err(e) => {
            graph(docker, vars)?.check_names(names)?;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docker buildx bake --print all` from buildx 0.13.1 (CSV strings).
    const PRINT_0_13: &str = include_str!("../../testdata/bake-print-all-buildx-0.13.1.json");

    #[test]
    fn both_shapes_of_cache_and_output_read_alike() {
        let old: Target = serde_json::from_str(
            r#"{"cache-to": ["type=local,dest=x,mode=max"], "output": ["type=oci,dest=\"a,b.tar\""]}"#,
        )
        .unwrap();
        let new: Target = serde_json::from_str(
            r#"{"cache-to": [{"type": "local", "dest": "x", "mode": "max"}], "output": [{"type": "oci", "dest": "a,b.tar"}]}"#,
        )
        .unwrap();
        assert_eq!(old.cache_to, new.cache_to);
        assert_eq!(old.output, new.output);
        assert_eq!(new.output[0]["dest"], "a,b.tar");
    }

    #[test]
    fn captured_print_reads_groups_targets_and_lists() {
        let def = Definition::parse(PRINT_0_13).unwrap();
        assert_eq!(def.group["production"].targets, ["backend-production", "frontend-production"]);
        assert_eq!(def.group["all"].targets, ["default", "development", "production", "multiplatform"]);
        assert_eq!(def.target.len(), 7);
        assert_eq!(def.target["backend-multiplatform"].platforms, ["linux/amd64", "linux/arm64"]);
        assert_eq!(def.target["backend"].cache_to[0]["mode"], "max");
    }

    #[test]
    fn variable_defaults_are_read_from_the_bake_file() {
        let hcl = "variable \"A\" {\n  # a comment\n  default = \"x:1\"\n}\nvariable \"B\" {\n}\n";
        assert_eq!(variable_default(hcl, "A").as_deref(), Some("x:1"));
        assert_eq!(variable_default(hcl, "B"), None);
        let bases = Defaults::read(&paths::project_root()).unwrap().base_images().unwrap();
        assert_eq!(bases.len(), 2);
        assert!(bases.iter().all(|b| b.contains(':')), "{bases:?}");
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        let def = Definition::parse(PRINT_0_13).unwrap();
        let err = def.check_names(&["backnd".to_string()]).unwrap_err().to_string();
        assert!(err.starts_with("unknown service or group `backnd`; valid ones are: all, backend,"), "{err}");
        assert!(def.check_names(&["multiplatform".to_string(), "backend".to_string()]).is_ok());
    }

    #[test]
    fn names_are_checked_against_the_bake_files_own_blocks_before_any_command() {
        let defaults = Defaults::read(&crate::util::paths::project_root()).unwrap();
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(defaults.check_names(&names(&["default", "backend", "frontend-production", "all"])).is_ok());
        for wrong in ["backnd", "-f../elsewhere.hcl", "../x.hcl", "_common", ""] {
            let err = defaults.check_names(&names(&["backend", wrong])).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("unknown service or group `{wrong}`; valid ones are: all, backend,")),
                "{err}"
            );
        }
        // Every target and group of the whole graph (bake --print all) is declared.
        let def = Definition::parse(PRINT_0_13).unwrap();
        assert!(defaults.check_names(&def.names()).is_ok());
    }
}
