//! Which platforms the stand-ins are made for: the ones the command builds (the engine's own for
//! `build` and `production`; linux/amd64 and linux/arm64 for `multiplatform`), plus whatever the
//! engine already holds of them, so that making them again never drops a platform. arm64 under
//! QEMU costs minutes, so it is made only when a command first builds for it.

use crate::engine::api as dockerapi;
use crate::engine::{self, Engine};
use crate::images::bases::Choice;

/// Every platform a stand-in can be made for (an engine that cannot hold several gets its own).
pub(crate) fn all(multi_platform: bool) -> Vec<String> {
    let arches: &[&str] = if multi_platform { &["amd64", "arm64"] } else { &[engine::host_arch()] };
    arches.iter().map(|a| format!("linux/{a}")).collect()
}

/// The platforms this command builds: those its targets name, and those its `--set
/// *.platform=…` values ask for (each a comma-separated list); the engine's own when neither names
/// any. Only platforms a stand-in can be made for count: the plan refuses any other with the valid
/// ones, before anything is made.
pub(crate) fn needed(target_platforms: &[String], set_values: &[String]) -> Vec<String> {
    let mut out: Vec<String> = target_platforms.to_vec();
    for value in set_values {
        out.extend(value.split(',').map(str::trim).filter(|p| !p.is_empty()).map(String::from));
    }
    let known = all(true);
    out.retain(|p| known.contains(p));
    if out.is_empty() {
        out.push(format!("linux/{}", engine::host_arch()));
    }
    out.sort();
    out.dedup();
    out
}

/// The platforms to make: on an engine that holds one platform per image, its own; on one whose
/// images' platforms cannot be listed (an engine API before 1.48), every platform as before, since
/// a later command could not tell that one was missing; else what is needed and what is held.
pub(crate) fn to_make(needed: &[String], held: &[String], multi_platform: bool, lists: bool) -> Vec<String> {
    if !multi_platform {
        return all(false);
    }
    if !lists {
        return all(true);
    }
    let mut out: Vec<String> = needed.iter().chain(held).cloned().collect();
    out.sort();
    out.dedup();
    out
}

/// True when the engine can list an image's platforms (API 1.48 and newer).
pub(crate) fn lists(engine: &Engine) -> bool {
    let Some(socket) = engine.socket() else { return false };
    let api = dockerapi::get_json(&socket, "/version").and_then(|v| v["ApiVersion"].as_str().map(String::from));
    api.and_then(|v| {
        let (major, minor) = v.split_once('.')?;
        Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?) >= (1, 48))
    })
    .unwrap_or(false)
}

/// Marks as missing the stand-ins the engine holds without a platform this command builds, and
/// sets the platforms the missing ones are to be made for.
/// `lists`: the engine can list an image's platforms (see [`lists`]).
pub(crate) fn complete(choice: &mut Choice, needed: &[String], multi_platform: bool, lists: bool) {
    if choice.standin_images.is_empty() {
        return;
    }
    let lists = multi_platform && lists;
    let mut held_all: Vec<String> = Vec::new();
    for ((official, _), held) in choice.standin_images.iter().zip(choice.held.clone()) {
        if choice.missing.contains(official) || !lists {
            continue;
        }
        let held = held.unwrap_or_default();
        if needed.iter().any(|p| !held.contains(p)) {
            choice.missing.push(official.clone());
            choice.adding = true;
        }
        held_all.extend(held);
    }
    choice.platforms = to_make(needed, &held_all, multi_platform, lists);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_command_needs_the_platforms_its_targets_and_sets_name_else_the_engine_s() {
        let host = format!("linux/{}", engine::host_arch());
        assert_eq!(needed(&[], &[]), [host.clone()]);
        assert_eq!(needed(&v(&["linux/arm64", "linux/amd64"]), &[]), v(&["linux/amd64", "linux/arm64"]));
        assert_eq!(needed(&[], &v(&["linux/arm64"])), v(&["linux/arm64"]));
        assert_eq!(needed(&[], &v(&["linux/s390x"])), [host.clone()], "the plan refuses it, nothing is made");
    }

    #[test]
    fn only_what_is_needed_is_made_and_nothing_held_is_dropped() {
        let amd = v(&["linux/amd64"]);
        let both = v(&["linux/amd64", "linux/arm64"]);
        assert_eq!(to_make(&amd, &[], true, true), amd, "build: the host's only");
        assert_eq!(to_make(&both, &amd, true, true), both, "multiplatform adds arm64 and keeps amd64");
        assert_eq!(to_make(&amd, &v(&["linux/arm64"]), true, true), both, "a held platform stays");
        assert_eq!(to_make(&amd, &[], true, false), both, "an engine that cannot list platforms gets both");
        assert_eq!(to_make(&both, &[], false, true), all(false), "a classic store holds one platform");
    }
}
