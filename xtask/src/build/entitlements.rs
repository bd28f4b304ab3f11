//! Bake's filesystem entitlements, asked for rather than taken: the xtask grants only the paths it
//! names itself (the CA bundle setting, and its own folders under `target/`), a path the person
//! granted with `--allow fs.read=PATH` (buildx's spelling) is passed on as given, and any other path
//! outside the checkout that the resolved definition reads or writes is refused in one line.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::images::bake::Definition;
use crate::util::paths::normalize;

/// Whether bake reads or writes a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Access {
    Read,
    Write,
}

impl Access {
    fn entitlement(self) -> &'static str {
        match self {
            Access::Read => "fs.read",
            Access::Write => "fs.write",
        }
    }
}

/// The paths the xtask may grant by itself, and what the person granted.
pub(crate) struct Granted<'a> {
    /// The folder bake runs in: paths inside it need no entitlement.
    pub(crate) root: &'a Path,
    /// The CA bundle the build mounts as a secret (the `CA_BUNDLE` setting, or the system's).
    pub(crate) ca_bundle: Option<&'a Path>,
    /// The project's own folders under `target/` (the checkout's, when the sources are a copy).
    pub(crate) own: &'a [PathBuf],
    /// `--allow` values, as given: `fs.read=PATH`, `fs.write=PATH` or `fs=PATH`.
    pub(crate) by_user: &'a [String],
}

/// Checks one `--allow` value before anything runs.
pub(crate) fn check_flag(value: &str) -> Result<()> {
    match value.split_once('=') {
        Some(("fs.read" | "fs.write" | "fs", path)) if !path.is_empty() => Ok(()),
        _ => bail!("--allow `{value}`: give fs.read=PATH or fs.write=PATH (buildx's spelling), one path each"),
    }
}

/// The paths outside the root that bake reads (secrets, local cache imports) and writes (local
/// cache exports, OCI archives), each with the target that names it.
pub(crate) fn outside(
    def: &Definition,
    exports: bool,
    oci_dir: Option<&Path>,
    root: &Path,
) -> Vec<(String, Access, PathBuf)> {
    let outside = |p: &str| {
        let path = root.join(p);
        (!normalize(&path).starts_with(normalize(root))).then_some(path)
    };
    let local = |e: &std::collections::BTreeMap<String, String>, key: &str| {
        (e.get("type").map(String::as_str) == Some("local")).then(|| e.get(key).cloned()).flatten()
    };
    let mut found = Vec::new();
    for (name, t) in &def.target {
        let reads = t.secret.iter().filter_map(|s| s.get("src").cloned());
        let reads = reads.chain(t.cache_from.iter().filter_map(|e| local(e, "src")));
        found.extend(reads.filter_map(|p| outside(&p)).map(|p| (name.clone(), Access::Read, p)));
        if exports {
            let writes = t.cache_to.iter().filter_map(|e| local(e, "dest")).filter_map(|p| outside(&p));
            found.extend(writes.map(|p| (name.clone(), Access::Write, p)));
        }
        if let Some(p) = oci_dir.and_then(|d| outside(&d.display().to_string())) {
            found.push((name.clone(), Access::Write, p));
        }
    }
    found.sort();
    found.dedup();
    found
}

/// The `--allow` values for bake: the xtask's own grants, then the person's; a path neither
/// covers is refused in one line naming its target.
pub(crate) fn grant(found: &[(String, Access, PathBuf)], granted: &Granted) -> Result<Vec<String>> {
    let mut allow = Vec::new();
    for (target, access, path) in found {
        let by_user = granted.by_user.iter().any(|g| covers(g, *access, path));
        let own = granted.own.iter().any(|d| normalize(path).starts_with(normalize(d)));
        let ca = *access == Access::Read
            && granted.ca_bundle.is_some_and(|c| normalize(&granted.root.join(c)) == normalize(path));
        if by_user {
            continue;
        }
        if !own && !ca {
            let e = access.entitlement();
            let verb = if *access == Access::Read { "reads" } else { "writes" };
            bail!(
                "`{target}` {verb} {} outside the checkout: pass `--allow {e}={}` to grant it",
                path.display(),
                path.display()
            );
        }
        let value = format!("{}={}", access.entitlement(), path.display());
        if !allow.contains(&value) {
            allow.push(value);
        }
    }
    allow.extend(granted.by_user.iter().cloned());
    Ok(allow)
}

/// Whether the person's `--allow` value grants this access to this path (the path itself, or a
/// folder above it).
fn covers(grant: &str, access: Access, path: &Path) -> bool {
    let Some((kind, granted)) = grant.split_once('=') else { return false };
    let kind_fits = kind == "fs" || kind == access.entitlement();
    kind_fits && normalize(path).starts_with(normalize(Path::new(granted)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::bake::{parse_csv, Target};

    fn def(secret: &str, cache: &str) -> Definition {
        let mut d = Definition::default();
        let t = Target {
            secret: vec![parse_csv(&format!("id=cacert,src={secret}"))],
            cache_from: vec![parse_csv(&format!("type=local,src={cache}"))],
            cache_to: vec![parse_csv(&format!("type=local,dest={cache},mode=max"))],
            ..Target::default()
        };
        d.target.insert("backend".to_string(), t);
        d
    }

    const ROOT: &str = "/src/cc";
    const CA: &str = "/etc/ssl/certs/ca-certificates.crt";

    fn granted<'a>(own: &'a [PathBuf], by_user: &'a [String]) -> Granted<'a> {
        Granted { root: Path::new(ROOT), ca_bundle: Some(Path::new(CA)), own, by_user }
    }

    fn plan(d: &Definition, own: &[PathBuf], by_user: &[String]) -> Result<Vec<String>> {
        grant(&outside(d, true, None, Path::new(ROOT)), &granted(own, by_user))
    }

    #[test]
    fn the_xtask_grants_the_ca_bundle_and_its_own_folders_and_nothing_else() {
        let d = def(CA, "target/buildx-cache/backend");
        assert_eq!(plan(&d, &[], &[]).unwrap(), [format!("fs.read={CA}")]);
        // A scratch copy's build writes to the checkout's own cache folder.
        let own = [PathBuf::from("/home/me/cc/target")];
        let d = def(CA, "/home/me/cc/target/buildx-cache/backend");
        assert_eq!(
            plan(&d, &own, &[]).unwrap(),
            [
                format!("fs.read={CA}"),
                "fs.read=/home/me/cc/target/buildx-cache/backend".to_string(),
                "fs.write=/home/me/cc/target/buildx-cache/backend".to_string()
            ]
        );
        let oci = outside(&def(CA, "target/c"), false, Some(Path::new("/src/cc/target/xtask/oci")), Path::new(ROOT));
        assert_eq!(oci.len(), 1, "an OCI folder inside the checkout needs nothing: {oci:?}");
    }

    #[test]
    fn any_other_path_outside_is_refused_in_one_line_naming_target_and_path() {
        let e = plan(&def("/home/me/.ssh/id_rsa", "target/c"), &[], &[]).unwrap_err().to_string();
        assert_eq!(
            e,
            "`backend` reads /home/me/.ssh/id_rsa outside the checkout: pass `--allow fs.read=/home/me/.ssh/id_rsa` to grant it"
        );
        let e = plan(&def(CA, "../elsewhere/cache"), &[], &[]).unwrap_err().to_string();
        assert!(e.starts_with("`backend` reads /src/cc/../elsewhere/cache outside the checkout"), "{e}");
        // A sibling whose name starts like the checkout's is outside too.
        let e = plan(&def(CA, "/src/cc-other/cache"), &[], &[]).unwrap_err().to_string();
        assert!(e.contains("/src/cc-other/cache outside"), "{e}");
    }

    #[test]
    fn a_path_the_person_grants_is_passed_as_given() {
        let d = def(CA, "/var/cache/cc");
        let by_user = ["fs.read=/var/cache".to_string()];
        let e = plan(&d, &[], &by_user).unwrap_err().to_string();
        assert!(
            e.starts_with("`backend` writes /var/cache/cc outside the checkout: pass `--allow fs.write=/var/cache/cc`"),
            "{e}"
        );
        let by_user = ["fs.read=/var/cache".to_string(), "fs.write=/var/cache/cc".to_string()];
        assert_eq!(
            plan(&d, &[], &by_user).unwrap(),
            [format!("fs.read={CA}"), "fs.read=/var/cache".to_string(), "fs.write=/var/cache/cc".to_string()]
        );
        assert_eq!(plan(&d, &[], &["fs=/var".to_string()]).unwrap(), [format!("fs.read={CA}"), "fs=/var".to_string()]);
    }

    #[test]
    fn allow_values_are_checked_before_anything_runs() {
        assert!(check_flag("fs.read=/x").is_ok() && check_flag("fs.write=/x").is_ok() && check_flag("fs=/x").is_ok());
        for bad in ["network.host", "fs.read=", "security.insecure", "/x"] {
            let e = check_flag(bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("--allow `{bad}`: give fs.read=PATH or fs.write=PATH")), "{e}");
        }
    }
}
