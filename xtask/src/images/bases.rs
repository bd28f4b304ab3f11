//! Which image each base variable resolves to: a mirror's copy, the official image (in the
//! engine's store or its registry), or else the stand-in (`images::standin`) the engine holds or
//! must make.

use crate::engine::Engine;
use crate::images::standin::{Base, BASES};
use crate::settings::Settings;

/// The image each base variable resolves to, and a line for each choice worth telling.
#[derive(Debug, Default)]
pub(crate) struct Choice {
    pub(crate) vars: Vec<(String, String)>,
    pub(crate) notes: Vec<String>,
    /// True when at least one image is a stand-in.
    pub(crate) standin: bool,
    /// Bases that are neither reachable nor in the engine as stand-ins yet (or lack a platform
    /// this command builds): their stand-ins must be made ([`make_standins`]) before a build.
    pub(crate) missing: Vec<String>,
    /// The platforms to make the missing stand-ins for (see `standin_platforms`).
    pub(crate) platforms: Vec<String>,
    /// True when stand-ins the engine holds lack a platform this command builds.
    pub(crate) adding: bool,
    /// Each base built on a stand-in, found or missing: (official image, stand-in image).
    pub(crate) standin_images: Vec<(String, String)>,
    /// For each of `standin_images`, the platforms the engine holds of the stand-in (None: it
    /// cannot say, see `engine::store`).
    pub(crate) held: Vec<Option<Vec<String>>>,
}

impl Choice {
    /// Why the build cannot start yet, when stand-ins are missing.
    pub(crate) fn missing_line(&self) -> Option<String> {
        (!self.missing.is_empty()).then(|| {
            format!(
                "base images {} are not reachable and no stand-ins exist yet: run `cargo xtask build` once to make them",
                names(&self.missing)
            )
        })
    }

    /// The line said before the missing stand-ins are made.
    pub(crate) fn making_line(&self) -> String {
        let platforms = self.platforms.join(" and ");
        match self.adding {
            true => format!(
                "the stand-ins for {} lack a platform this command builds: making them for {platforms} once (arm64 runs under QEMU: several minutes)",
                names(&self.missing)
            ),
            false => format!("{} cannot be pulled; making stand-ins once for {platforms}", names(&self.missing)),
        }
    }
}

/// How each base image can be had, tried in order (a mirror, the engine's store, the registry,
/// a stand-in in the store); a base none of them has is `missing`. `officials` are the official
/// images of [`BASES`], in order, as the bake file names them. It changes nothing in the engine;
/// registry answers are kept for a while under `target/xtask/` (`util::memo`).
pub(crate) fn look(engine: &Engine, settings: &Settings, officials: &[String]) -> Choice {
    let mirror = settings.get("BASE_MIRROR").map(|m| m.trim_end_matches('/').to_string());
    // The probes are independent and mostly wait on the network: run them side by side.
    let found: Vec<Found> = std::thread::scope(|s| {
        let handles: Vec<_> = BASES
            .iter()
            .zip(officials)
            .map(|(b, o)| s.spawn(|| find_existing(engine, b, o, mirror.as_deref())))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    });
    let mut choice = Choice::default();
    let mut standins = Vec::new();
    for ((base, official), found) in BASES.iter().zip(officials).zip(found) {
        let standin = base.standin();
        let image = found.image.unwrap_or_else(|| {
            choice.missing.push(official.clone());
            standin.clone()
        });
        if image == standin {
            standins.push(official.clone());
            choice.standin_images.push((official.clone(), standin.clone()));
            choice.held.push(found.held);
        }
        choice.vars.push((base.var.to_string(), image));
    }
    if !standins.is_empty() {
        choice.standin = true;
        choice.notes.push(format!(
            "images built on stand-ins for {} (official images unreachable; set BASE_MIRROR to use a mirror)",
            names(&standins)
        ));
    }
    choice
}

fn names(officials: &[String]) -> String {
    officials.join(" and ")
}

/// What was found for one base: the image to build on (none: its stand-in is missing), and the
/// platforms the engine holds of its stand-in.
#[derive(Default)]
struct Found {
    image: Option<String>,
    held: Option<Vec<String>>,
}

/// A mirror's copy, the official image in the engine's store, or the official image from its
/// registry, whichever answers first; a stand-in already in the store otherwise. The store is
/// asked for the official image and the stand-in side by side (each lookup takes a while with
/// the containerd store), and one lookup of the stand-in says both whether it is there and which
/// platforms it holds.
fn find_existing(engine: &Engine, base: &Base, official: &str, mirror: Option<&str>) -> Found {
    if let Some(m) = mirror {
        let mirrored = format!("{m}/library/{official}");
        if engine.registry_has(&mirrored) {
            return Found { image: Some(mirrored), held: None };
        }
    }
    let standin = base.standin();
    let (official_there, held) = std::thread::scope(|s| {
        let official_there = s.spawn(|| engine.has_image(official) || engine.registry_has(official));
        let held = crate::engine::store::image_platforms(engine, &standin);
        (official_there.join().unwrap_or(false), held)
    });
    if official_there {
        return Found { image: Some(official.to_string()), held: None };
    }
    if held.is_some() {
        return Found { image: Some(standin), held };
    }
    // An engine that cannot list platforms answers presence only: the platforms are those
    // recorded for the stand-in's id when it was made, if any.
    match crate::engine::store::image_id(engine, &standin) {
        Some(id) => Found { image: Some(standin), held: crate::images::standin_records::recorded(&id) },
        None => Found::default(),
    }
}
