//! Which platforms the stand-ins are made for: the ones the command builds (the engine's own for
//! `build` and `production`; linux/amd64 and linux/arm64 for `multiplatform`), plus whatever the
//! engine already holds of them, so that making them again never drops a platform. arm64 under
//! QEMU costs minutes, so it is made only when a command first builds for it.
//! Where the engine cannot list them, they are recorded (`standin_records`).

use crate::engine;
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

/// The platforms to make: on an engine that holds one platform per image, its own; else what is
/// needed and what is held.
pub(crate) fn to_make(needed: &[String], held: &[String], multi_platform: bool) -> Vec<String> {
    if !multi_platform {
        return all(false);
    }
    let mut out: Vec<String> = needed.iter().chain(held).cloned().collect();
    out.sort();
    out.dedup();
    out
}

/// Marks as missing the stand-ins the engine holds without a platform this command builds, and
/// sets the platforms the missing ones are to be made for. A held stand-in whose platforms are
/// not known (see `standin_records`) counts as holding this machine's platform only.
pub(crate) fn complete(choice: &mut Choice, needed: &[String], multi_platform: bool) {
    if choice.standin_images.is_empty() {
        return;
    }
    let mut held_all: Vec<String> = Vec::new();
    for ((official, _), held) in choice.standin_images.iter().zip(choice.held.clone()) {
        if choice.missing.contains(official) || !multi_platform {
            continue;
        }
        let held = held.unwrap_or_else(|| all(false));
        if needed.iter().any(|p| !held.contains(p)) {
            choice.missing.push(official.clone());
            choice.adding = true;
        }
        held_all.extend(held);
    }
    choice.platforms = to_make(needed, &held_all, multi_platform);
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
        assert_eq!(to_make(&amd, &[], true), amd, "build: the host's only");
        assert_eq!(to_make(&both, &amd, true), both, "multiplatform adds arm64 and keeps amd64");
        assert_eq!(to_make(&amd, &v(&["linux/arm64"]), true), both, "a held platform stays");
        assert_eq!(to_make(&both, &[], false), all(false), "a classic store holds one platform");
    }

    fn choice(held: Option<Vec<String>>) -> Choice {
        let standin = ("python:3.11-slim".to_string(), "localhost/standin-python:3.11-x".to_string());
        Choice { standin_images: vec![standin], held: vec![held], ..Choice::default() }
    }

    #[test]
    fn a_stand_in_of_unknown_platforms_holds_the_host_s_and_is_made_again_for_another() {
        let host = all(false);
        let both = all(true);
        // `build` on an engine that cannot list platforms: nothing to make.
        let mut c = choice(None);
        complete(&mut c, &host, true);
        assert!(c.missing.is_empty(), "{:?}", c.missing);
        // `multiplatform` there: made again for both, said as adding a platform.
        let mut c = choice(None);
        complete(&mut c, &both, true);
        assert_eq!((c.missing.len(), c.adding, c.platforms.clone()), (1, true, both.clone()));
        // A record that names both: nothing to make.
        let mut c = choice(Some(both.clone()));
        complete(&mut c, &both, true);
        assert!(c.missing.is_empty());
        // Missing altogether on a fresh engine: `build` makes the host's only.
        let mut c = choice(None);
        c.missing.push("python:3.11-slim".to_string());
        complete(&mut c, &host, true);
        assert_eq!(c.platforms, host);
    }
}
