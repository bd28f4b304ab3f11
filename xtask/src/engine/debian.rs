//! Debian packages into a private prefix: the machine's own archive, downloads kept between runs
//! (per suite, shared by every channel), pins checked before anything is unpacked.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::channel::{check_pin, PinCheck};
use super::layout::{host_arch, Layout};
use crate::util::paths::write_atomic;
use crate::util::runner::{self, Cmd};

/// The suites any channel takes packages from.
const SUITES: [&str; 3] = ["testing", "trixie", "bookworm"];

/// The Debian archive this machine already uses (from its apt sources), so the xtask never names
/// a host of its own; `DEBIAN_MIRROR` overrides it.
pub(crate) fn debian_mirror() -> Result<String> {
    // Written into an apt sources file: a line break in it would add a source of its own.
    if let Some(m) = crate::settings::from_env("DEBIAN_MIRROR")? {
        return Ok(m.trim_end_matches('/').to_string());
    }
    let mut texts = vec![std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default()];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut files: Vec<_> = dir.flatten().map(|e| e.path()).collect();
        files.sort();
        texts.extend(files.iter().filter_map(|f| std::fs::read_to_string(f).ok()));
    }
    texts
        .iter()
        .find_map(|t| mirror_from_sources(t))
        .context("no Debian archive in /etc/apt/sources.list*; set DEBIAN_MIRROR to one (its URL, ending in /debian)")
}

/// Finds the URI of a Debian archive (not the security one) in one-line or deb822 apt sources.
pub(crate) fn mirror_from_sources(text: &str) -> Option<String> {
    let good = |uri: &str| uri.starts_with("http") && uri.trim_end_matches('/').ends_with("/debian");
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"deb") {
            if let Some(uri) = words.iter().skip(1).find(|w| !w.starts_with('[')) {
                if good(uri) {
                    return Some(uri.trim_end_matches('/').to_string());
                }
            }
        }
        if let Some(uris) = line.strip_prefix("URIs:") {
            if let Some(uri) = uris.split_whitespace().find(|u| good(u)) {
                return Some(uri.trim_end_matches('/').to_string());
            }
        }
    }
    None
}

/// apt-get with private lists and cache, so the machine's own apt state is never touched.
fn apt_get(apt: &Path, args: &[&str]) -> Cmd {
    let opt = |k: &str, v: &Path| format!("{k}={}", v.display());
    Cmd::new("apt-get")
        .args(["-q", "-o", &opt("Dir::Etc::SourceList", &apt.join("sources.list"))])
        .args(["-o", "Dir::Etc::SourceParts=/dev/null"])
        .args(["-o", &opt("Dir::State::Lists", &apt.join("lists"))])
        .args(["-o", &opt("Dir::Cache", &apt.join("cache"))])
        .args(["-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root"])
        .args(args.iter().copied())
}

/// Downloads the channel's pinned packages (kept, so a rerun resumes), checks each against its
/// pin, and unpacks them into the prefix. The prefix appears whole or not at all: it is unpacked
/// beside, then renamed; a refused pin leaves nothing behind.
pub(crate) fn install_prefix(layout: &Layout) -> Result<Vec<(String, String)>> {
    if layout.prefix.join(".complete").exists() {
        return add_missing(layout);
    }
    fetch(layout, &layout.spec.packages().iter().collect::<Vec<_>>())?;
    let packages = layout.spec.packages();
    let debs = |suite: &str| layout.base.join("debs").join(suite);
    // Every pin is checked before the first package is unpacked.
    let mut chosen = Vec::new();
    for p in packages {
        let deb =
            find_deb(&debs(p.suite), p.name).with_context(|| format!("package {} missing after download", p.name))?;
        let version = deb_version(&deb);
        if let PinCheck::Drifted(line) = check_pin(p, &version)? {
            eprintln!("xtask: {line}");
        }
        chosen.push((p.name.to_string(), version, deb));
    }
    let partial = layout.root.join("prefix.partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial)?;
    }
    let versions: Vec<(String, String)> = chosen.iter().map(|(n, v, _)| (n.clone(), v.clone())).collect();
    match twin(layout, &versions) {
        // Another engine of these very packages (a named engine, the classic store beside the
        // containerd one): its files are linked, not copied, and the disk holds them once. The
        // integrity check that follows reads them as this engine's own.
        Some(other) => {
            runner::run(&Cmd::new("cp").arg("-al").arg(other.display().to_string()).arg(partial.display().to_string()))?
        }
        None => {
            for (_, _, deb) in &chosen {
                let unpack =
                    Cmd::new("dpkg-deb").arg("-x").arg(deb.display().to_string()).arg(partial.display().to_string());
                runner::run(&unpack)?;
            }
            // Debian chooses iptables' backend with update-alternatives; the prefix has none, so
            // link the legacy backend, which needs no nftables support in the kernel.
            for link in ["iptables", "ip6tables"] {
                let path = partial.join("usr/sbin").join(link);
                let _ = std::fs::remove_file(&path);
                crate::util::os::symlink("xtables-legacy-multi", &path)?;
            }
        }
    }
    // New files, never written through a link into the twin's.
    for name in ["versions.json", ".complete"] {
        let _ = std::fs::remove_file(partial.join(name));
    }
    std::fs::write(partial.join("versions.json"), serde_json::to_vec_pretty(&versions)?)?;
    std::fs::write(partial.join(".complete"), format!("{}\n", host_arch()))?;
    if layout.prefix.exists() {
        std::fs::remove_dir_all(&layout.prefix)?;
    }
    std::fs::rename(&partial, &layout.prefix)?;
    // The docker CLI finds plug-ins in $DOCKER_CONFIG/cli-plugins.
    let plugins = layout.docker_config().join("cli-plugins");
    std::fs::create_dir_all(&plugins)?;
    for name in ["docker-buildx", "docker-compose"] {
        let link = plugins.join(name);
        let _ = std::fs::remove_file(&link);
        crate::util::os::symlink(layout.prefix.join("usr/libexec/docker/cli-plugins").join(name), &link)?;
    }
    Ok(versions)
}

/// The complete prefix of another engine in the same folder that holds exactly `versions`.
fn twin(layout: &Layout, versions: &[(String, String)]) -> Option<PathBuf> {
    Layout::all().into_iter().filter(|l| l.root != layout.root).map(|l| l.prefix).find(|prefix| {
        let theirs: Option<Vec<(String, String)>> =
            std::fs::read(prefix.join("versions.json")).ok().and_then(|b| serde_json::from_slice(&b).ok());
        prefix.join(".complete").is_file() && theirs.as_deref() == Some(versions)
    })
}

/// Downloads the packages not yet in the shared download folder (kept, so a rerun resumes).
fn fetch(layout: &Layout, packages: &[&super::channel::Package]) -> Result<()> {
    let apt = layout.base.join("apt");
    let debs = |suite: &str| layout.base.join("debs").join(suite);
    std::fs::create_dir_all(apt.join("lists/partial"))?;
    std::fs::create_dir_all(apt.join("cache/archives/partial"))?;
    let mirror = debian_mirror()?;
    let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
    let sources: String = SUITES.iter().map(|s| format!("deb [signed-by={keyring}] {mirror} {s} main\n")).collect();
    write_atomic(&apt.join("sources.list"), sources.as_bytes())?;
    let missing: Vec<_> = packages.iter().filter(|p| find_deb(&debs(p.suite), p.name).is_none()).collect();
    if !missing.is_empty() {
        eprintln!(
            "xtask: fetching {} engine packages for the {} engine from the Debian archive",
            missing.len(),
            layout.spec.name()
        );
        runner::run_quiet(&apt_get(&apt, &["update"]))
            .with_context(|| format!("reading the package lists of the Debian archive at {mirror}"))?;
        // One apt-get for all of them: each run reads every suite's package lists first, which
        // costs seconds of CPU. They land in a folder of their own first: an interrupted download
        // never leaves a half file where the next run would take it for a finished one.
        let incoming = layout.base.join("debs").join(format!(".incoming-{}", layout.name));
        if incoming.exists() {
            std::fs::remove_dir_all(&incoming)?;
        }
        std::fs::create_dir_all(&incoming)?;
        let wanted: Vec<String> = missing.iter().map(|p| format!("{}/{}", p.name, p.suite)).collect();
        let args: Vec<&str> = std::iter::once("download").chain(wanted.iter().map(String::as_str)).collect();
        let more = match missing.len() {
            1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        runner::run_quiet(&apt_get(&apt, &args).dir(&incoming)).with_context(|| {
            let first = missing[0];
            format!("downloading package {} from Debian {}{more} (rerun to try again)", first.name, first.suite)
        })?;
        for p in missing {
            let deb = find_deb(&incoming, p.name).with_context(|| format!("apt-get left no .deb for {}", p.name))?;
            std::fs::create_dir_all(debs(p.suite))?;
            std::fs::rename(&deb, debs(p.suite).join(deb.file_name().context("a .deb has a name")?))?;
        }
        std::fs::remove_dir_all(&incoming)?;
    }
    Ok(())
}

/// A complete prefix lacking a package the channel now pins (a tool added since, such as cosign):
/// that package alone is fetched, checked and unpacked into it, beside a running engine, which
/// none of the added files touch.
fn add_missing(layout: &Layout) -> Result<Vec<(String, String)>> {
    let mut versions = layout.installed_versions();
    let missing: Vec<_> =
        layout.spec.packages().iter().filter(|p| !versions.iter().any(|(n, _)| n == p.name)).collect();
    if missing.is_empty() {
        return Ok(versions);
    }
    fetch(layout, &missing)?;
    for p in missing {
        let dir = layout.base.join("debs").join(p.suite);
        let deb = find_deb(&dir, p.name).with_context(|| format!("package {} missing after download", p.name))?;
        let version = deb_version(&deb);
        if let PinCheck::Drifted(line) = check_pin(p, &version)? {
            eprintln!("xtask: {line}");
        }
        runner::run(
            &Cmd::new("dpkg-deb").arg("-x").arg(deb.display().to_string()).arg(layout.prefix.display().to_string()),
        )?;
        eprintln!("xtask: added {} {version} to the {} engine's prefix", p.name, layout.spec.name());
        versions.push((p.name.to_string(), version));
    }
    write_atomic(&layout.prefix.join("versions.json"), &serde_json::to_vec_pretty(&versions)?)?;
    Ok(versions)
}

fn find_deb(dir: &Path, name: &str) -> Option<PathBuf> {
    let prefix = format!("{name}_");
    std::fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).find(|p| {
        p.file_name().is_some_and(|f| f.to_string_lossy().starts_with(&prefix) && f.to_string_lossy().ends_with(".deb"))
    })
}

/// The version in a downloaded file name (`name_1%3a7.2+dfsg-7_amd64.deb` is `7.2+dfsg-7`).
pub(crate) fn deb_version(deb: &Path) -> String {
    let name = deb.file_name().unwrap_or_default().to_string_lossy();
    let version = name.split('_').nth(1).unwrap_or_default().replace("%3a", ":");
    version.split_once(':').map_or(version.clone(), |(_, v)| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_is_read_from_either_apt_format() {
        let one_line = "# x\ndeb [arch=amd64] http://mirror.example/debian bookworm main\n";
        assert_eq!(mirror_from_sources(one_line).as_deref(), Some("http://mirror.example/debian"));
        let deb822 = "Types: deb\nURIs: http://m.example/debian-security\n\nTypes: deb\nURIs: http://m.example/debian/\nSuites: bookworm\n";
        assert_eq!(mirror_from_sources(deb822).as_deref(), Some("http://m.example/debian"));
        assert_eq!(mirror_from_sources("deb http://archive.example/ubuntu jammy main"), None);
    }

    #[test]
    fn deb_versions_lose_their_epoch() {
        let v = deb_version(Path::new("/x/qemu-user-static_1%3a7.2+dfsg-7+deb12u18+b3_amd64.deb"));
        assert_eq!(v, "7.2+dfsg-7+deb12u18+b3");
        assert_eq!(deb_version(Path::new("docker.io_28.5.2+dfsg4-5_amd64.deb")), "28.5.2+dfsg4-5");
    }
}
